//! `revent-bench echo-load HOST PORT CONNS SIZE SECS`: the closed-loop echo load generator.
//!
//! The same semantics and output line as the reference `echo-load.c` (shared/tools): CONNS connections
//! (TCP_NODELAY, non-blocking after a blocking connect, edge-triggered epoll for both directions); each
//! sends a message of SIZE bytes, reads until SIZE bytes came back, checks every byte against what it
//! sent, and sends again, for SECS seconds. Prints one line:
//! `conns=C size=S secs=T trips=N trips_per_s=X MBps=Y errors=E mismatches=M`
//! and exits 1 when any connection saw an error, an early EOF or a wrong byte.
//!
//! `--reply TEXT` after the five arguments: the server answers every message with TEXT instead of
//! echoing it (the seed's echo_server.c answers `reply`); the message is then SIZE - 1 letters and a NUL
//! byte (that server prints what it received with `%s` from a buffer it does not terminate), and every
//! byte of TEXT is checked.

use super::sys::Epoll;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

struct Conn {
    stream: TcpStream,
    sent: usize,
    got: usize,
    trips: u64,
}

/// What one load run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub conns: usize,
    pub size: usize,
    pub secs: f64,
    pub trips: u64,
    pub errors: u64,
    pub mismatches: u64,
}

impl Summary {
    pub fn line(&self) -> String {
        let tps = self.trips as f64 / self.secs;
        format!(
            "conns={} size={} secs={:.2} trips={} trips_per_s={:.0} MBps={:.1} errors={} mismatches={}",
            self.conns,
            self.size,
            self.secs,
            self.trips,
            tps,
            tps * self.size as f64 * 2.0 / 1e6,
            self.errors,
            self.mismatches
        )
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: revent-bench echo-load HOST PORT CONNS SIZE SECS [--reply TEXT]";
    let (args, reply) = match args {
        [a @ .., flag, text] if flag == "--reply" && !text.is_empty() => (a, Some(text.as_bytes())),
        a => (a, None),
    };
    let [host, port, conns, size, secs] = args else {
        return Err(usage.into());
    };
    let ip: IpAddr = host.parse().map_err(|_| format!("bad host {host:?}"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let conns: usize = conns.parse().map_err(|_| format!("bad CONNS {conns:?}"))?;
    let size: usize = size.parse().map_err(|_| format!("bad SIZE {size:?}"))?;
    let secs: f64 = secs.parse().map_err(|_| format!("bad SECS {secs:?}"))?;
    if size == 0 || !(secs.is_finite() && secs > 0.0) {
        return Err("SIZE and SECS must be positive".into());
    }
    crate::sys::raise_nofile(conns as u64 + 64).map_err(|e| e.to_string())?;
    let s = load(SocketAddr::new(ip, port), conns, size, secs, reply).map_err(|e| e.to_string())?;
    println!("{}", s.line());
    if s.errors > 0 || s.mismatches > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs the closed loop against `addr`: each trip sends SIZE bytes and expects them back, or `reply`.
pub fn load(
    addr: SocketAddr,
    n: usize,
    size: usize,
    secs: f64,
    reply: Option<&[u8]>,
) -> io::Result<Summary> {
    let mut msg: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    if reply.is_some() {
        msg[size - 1] = 0;
    }
    let expect: &[u8] = reply.unwrap_or(&msg);
    let want = expect.len();
    let mut buf = vec![0u8; want.max(65536)];
    let ep = Epoll::new()?;
    let mut c = Vec::with_capacity(n);
    for i in 0..n {
        let stream = TcpStream::connect(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("connect to {addr}: {e}")))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let ev = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET) as u32;
        ep.add(stream.as_raw_fd(), ev, i as u64)?;
        c.push(Conn {
            stream,
            sent: 0,
            got: 0,
            trips: 0,
        });
    }
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let (mut errors, mut mismatches) = (0u64, 0u64);
    while Instant::now() < end {
        let k = ep.wait(&mut evs, 100)?;
        for e in &evs[..k] {
            let (events, idx) = (e.events, e.u64);
            let x = &mut c[idx as usize];
            if events & libc::EPOLLOUT as u32 != 0 && x.sent < size {
                match (&x.stream).write(&msg[x.sent..]) {
                    Ok(w) => x.sent += w,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => errors += 1,
                }
            }
            if events & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 == 0 {
                continue;
            }
            loop {
                match (&x.stream).read(&mut buf[..want - x.got]) {
                    Ok(0) => {
                        errors += 1;
                        ep.delete(x.stream.as_raw_fd());
                        break;
                    }
                    Ok(r) => {
                        if buf[..r] != expect[x.got..x.got + r] {
                            mismatches += 1;
                        }
                        x.got += r;
                        if x.got == want {
                            x.trips += 1;
                            x.got = 0;
                            x.sent = 0;
                            if let Ok(w) = (&x.stream).write(&msg) {
                                x.sent = w;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        errors += 1;
                        ep.delete(x.stream.as_raw_fd());
                        break;
                    }
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Summary {
        conns: n,
        size,
        secs,
        trips: c.iter().map(|x| x.trips).sum(),
        errors,
        mismatches,
    })
}
