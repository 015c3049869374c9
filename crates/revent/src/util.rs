//! evutil: socket helpers libevent users reach for.

use crate::error::{Error, Result};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Sends signal `signo` to the calling thread (C's `raise`).
///
/// ```no_run
/// revent::util::raise(libc::SIGUSR1).unwrap();
/// ```
pub fn raise(signo: i32) -> io::Result<()> {
    crate::sys::raise(signo)
}

/// The bytes waiting in a connected socket's kernel queues (see [`socket_queues`]).
///
/// ```
/// let q = revent::util::SocketQueues::default();
/// assert_eq!((q.unread, q.unacked), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketQueues {
    /// Received and not yet read by us (`FIONREAD`).
    pub unread: usize,
    /// Handed to the kernel and not yet acknowledged by the peer (`SIOCOUTQ`): sent or not, this is
    /// what a reset would lose.
    pub unacked: usize,
}

/// The byte counts of a TCP socket's receive and send queues.
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
/// let (s, _) = l.accept().unwrap();
/// c.write_all(b"hello").unwrap();
/// std::thread::sleep(std::time::Duration::from_millis(50));
/// assert_eq!(revent::util::socket_queues(s.as_raw_fd()).unwrap().unread, 5);
/// ```
pub fn socket_queues(fd: std::os::fd::RawFd) -> io::Result<SocketQueues> {
    Ok(SocketQueues {
        unread: crate::sys::socket_queue_len(fd, libc::FIONREAD)?,
        // SIOCOUTQ has TIOCOUTQ's value on Linux.
        unacked: crate::sys::socket_queue_len(fd, libc::TIOCOUTQ)?,
    })
}

/// Makes `fd` non-blocking (`evutil_make_socket_nonblocking`).
pub fn make_nonblocking(fd: impl AsFd) -> io::Result<()> {
    crate::sys::set_nonblocking(fd.as_fd().as_raw_fd())
}

/// Sets close-on-exec on `fd` (`evutil_make_socket_closeonexec`).
pub fn make_closeonexec(fd: impl AsFd) -> io::Result<()> {
    crate::sys::set_cloexec(fd.as_fd().as_raw_fd())
}

/// Lets a listening address be reused at once after the socket closes (`SO_REUSEADDR`,
/// `evutil_make_listen_socket_reuseable`).
pub fn make_reusable(fd: impl AsFd) -> io::Result<()> {
    socket2::SockRef::from(&fd).set_reuse_address(true)
}

/// Lets several sockets listen on one port (`SO_REUSEPORT`), the kernel spreading connections.
pub fn make_reusable_port(fd: impl AsFd) -> io::Result<()> {
    socket2::SockRef::from(&fd).set_reuse_port(true)
}

/// A connected pair of non-blocking, close-on-exec Unix stream sockets (`evutil_socketpair`).
///
/// ```
/// let (a, b) = revent::util::socketpair().unwrap();
/// # drop((a, b));
/// ```
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    // std creates the pair with close-on-exec.
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a.into(), b.into()))
}

/// Parses an address with an optional port, as `evutil_parse_sockaddr_port`: `1.2.3.4`, `1.2.3.4:80`,
/// `::1`, `[::1]`, `[::1]:80`. A missing port is 0.
///
/// ```
/// use revent::util::parse_sockaddr_port;
/// assert_eq!(parse_sockaddr_port("127.0.0.1:9999").unwrap().port(), 9999);
/// assert_eq!(parse_sockaddr_port("[::1]:80").unwrap().to_string(), "[::1]:80");
/// assert!(parse_sockaddr_port("[::1]:x").is_err());
/// ```
pub fn parse_sockaddr_port(s: &str) -> Result<SocketAddr> {
    const BAD: Error = Error::InvalidArgument("not an address[:port]");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(BAD)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(BAD)?),
        };
        (host, port)
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address: its colons are not a port separator.
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let ip: IpAddr = host.parse().map_err(|_| BAD)?;
    if s.starts_with('[') && !ip.is_ipv6() {
        return Err(BAD);
    }
    let port = match port {
        None => 0,
        Some(p) => p.parse::<u16>().map_err(|_| BAD)?,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_libevent_accepts() {
        let ok = [
            ("1.2.3.4", "1.2.3.4:0"),
            ("1.2.3.4:80", "1.2.3.4:80"),
            ("::1", "[::1]:0"),
            ("[::1]", "[::1]:0"),
            ("[ffff::1]:65535", "[ffff::1]:65535"),
        ];
        for (input, want) in ok {
            assert_eq!(
                parse_sockaddr_port(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4:",
            "1.2.3.4:65536",
            "[1.2.3.4]:80",
            "[::1",
            "[::1]80",
            "host:80",
        ] {
            assert!(parse_sockaddr_port(bad).is_err(), "{bad:?} accepted");
        }
    }
}
