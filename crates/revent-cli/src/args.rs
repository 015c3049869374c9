//! The command line, parsed with clap: one subcommand per service, each with its own `--help`.

use clap::{Args, Parser, Subcommand};
use revent::Method;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Services built on revent.
#[derive(Parser, Debug)]
#[command(
    name = "revent",
    about,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Echo every byte back (the seed's service, port 9999 by default)
    #[command(long_about = ECHO_ABOUT)]
    Echo(EchoArgs),
    /// Answer "Hello, World!\n" and close (libevent's hello-world sample)
    Hello(HelloArgs),
    /// Resolve names (and addresses, in reverse) with revent-dns, all at once
    #[command(long_about = RESOLVE_ABOUT)]
    Resolve(ResolveArgs),
    /// Serve a directory over HTTP/1.1 with revent-http (port 8080 by default)
    #[command(long_about = HTTP_ABOUT)]
    Http(HttpArgs),
}

const HTTP_ABOUT: &str = "Serve a directory over HTTP/1.1 with revent-http.

Listens on 0.0.0.0:8080 unless told otherwise and serves --dir (the current directory by default):
GET and HEAD of files (content type by extension, single byte ranges with 206, 416 when
unsatisfiable), directory listings (or a directory's index.html), and /plaintext answering
\"Hello, World!\" for benchmarks. Paths never leave the directory: `..` segments (also
percent-encoded) and symlinks that point outside are refused with 403.

SIGINT or SIGTERM stops taking connections, lets requests in progress finish (up to five seconds)
and prints one summary line: requests served, reply bytes, connections.";

#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// Listen address
    #[arg(long, value_name = "A", default_value = "0.0.0.0")]
    pub addr: IpAddr,

    /// Listen port (0: any free port, printed at start)
    #[arg(long, value_name = "P", default_value_t = 8080)]
    pub port: u16,

    /// Directory to serve
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: std::path::PathBuf,

    /// N event bases sharing the port with SO_REUSEPORT
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one)]
    pub threads: usize,

    /// Event backend: epoll, io_uring, poll or select [default: the library's choice]
    #[arg(long, value_name = "NAME", value_parser = method)]
    pub method: Option<Method>,
}

const RESOLVE_ABOUT: &str = "Resolve names with revent-dns, all of them concurrently.

Each NAME is looked up for its IPv4 and IPv6 addresses (through the search list); a NAME that is an
IP address is looked up in reverse (PTR). One line per NAME, in the order given: its addresses or
host names, or the error (NXDOMAIN, SERVFAIL, TIMEOUT, ...). The nameservers are those of
/etc/resolv.conf unless --server names others. Exits 1 if any lookup failed.";

#[derive(Args, Debug, Clone)]
pub struct ResolveArgs {
    /// Nameserver to ask, IP:PORT or IP (port 53); repeat for several [default: /etc/resolv.conf's]
    #[arg(long, value_name = "IP:PORT", value_parser = server)]
    pub server: Vec<SocketAddr>,

    /// Only IPv4 addresses (A records)
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Only IPv6 addresses (AAAA records)
    #[arg(short = '6', long)]
    pub ipv6: bool,

    /// Seconds to wait for each attempt [default: resolv.conf's, else 5]
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub timeout: Option<Duration>,

    /// Attempts per query before it fails with TIMEOUT [default: resolv.conf's, else 3]
    #[arg(long, value_name = "N")]
    pub attempts: Option<u32>,

    /// Queries in flight at once; the rest wait [default: 64]
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub max_inflight: Option<usize>,

    /// Names (or addresses) to resolve
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

/// A nameserver: `IP:PORT`, `[IPv6]:PORT`, or a bare IP for port 53.
fn server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("not IP:PORT or IP: {s:?}"))
}

const ECHO_ABOUT: &str = "Echo every byte back (the seed's service).

Listens on 0.0.0.0:9999 unless told otherwise. SIGINT or SIGTERM stops it and prints one summary
line: connections served, connections refused, and bytes echoed (bytes that reached the clients,
not bytes read from them).

A client that sends without reading costs at most about --max-output bytes of memory plus one
read (at most --read-high if set, else 512 KiB; on io_uring, plus the receives that had completed
when reading stopped): past --max-output of pending echo the server stops reading from it until
half of that has gone out. A client that half-closes gets all its echo before the server closes,
unless the echo makes no progress for --drain-timeout seconds.

With --tls CERT KEY the service speaks TLS (1.2 and 1.3, rustls): the same echo over each
connection's plaintext. A client that does not speak TLS is dropped after the failed handshake.
Over TLS the byte count is of plaintext handed to the TLS session.";

#[derive(Args, Debug, Clone)]
pub struct EchoArgs {
    /// Listen address
    #[arg(long, value_name = "A", default_value = "0.0.0.0")]
    pub addr: IpAddr,

    /// Listen port (0: any free port, printed at start)
    #[arg(long, value_name = "P", default_value_t = 9999)]
    pub port: u16,

    /// Close connections idle for S seconds [default: never]
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub idle_timeout: Option<Duration>,

    /// Refuse connections beyond N open at once [default: unlimited]
    #[arg(long, value_name = "N")]
    pub max_conns: Option<usize>,

    /// Read high watermark per connection: read at most this much before echoing it (0: no
    /// limit; on io_uring, a limit under 4 MiB costs one receive request per read)
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub read_high: usize,

    /// Stop reading from a connection while more than BYTES of its echo wait to be sent; resume
    /// once they drained to half of that. Bounds what a client that sends without reading costs.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = at_least_one)]
    pub max_output: usize,

    /// After a client half-closes, its remaining echo is still sent; close anyway if that makes
    /// no progress for S seconds
    #[arg(long, value_name = "S", default_value = "30", value_parser = seconds)]
    pub drain_timeout: Duration,

    /// N event bases sharing the port with SO_REUSEPORT
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one)]
    pub threads: usize,

    /// A line per connection on stderr
    #[arg(short, long)]
    pub verbose: bool,

    /// Event backend: epoll, io_uring, poll or select [default: the library's choice]. Only that
    /// one: if this machine cannot have it, the service does not start.
    #[arg(long, value_name = "NAME", value_parser = method)]
    pub method: Option<Method>,

    /// Serve TLS (rustls): CERT is a PEM file with the certificate chain (leaf first), KEY a PEM
    /// file with its private key (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
    pub tls: Option<Vec<std::path::PathBuf>>,
}

impl EchoArgs {
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

#[derive(Args, Debug, Clone)]
pub struct HelloArgs {
    /// Listen address
    #[arg(long, value_name = "A", default_value = "0.0.0.0")]
    pub addr: IpAddr,

    /// Listen port
    #[arg(long, value_name = "P", default_value_t = 9995)]
    pub port: u16,
}

impl HelloArgs {
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// A positive, finite number of seconds (fractions allowed).
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err("must be a positive number of seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("not a number: {s:?}")),
    }
}

/// A backend by its libevent name.
fn method(s: &str) -> Result<Method, String> {
    Method::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        format!("unknown method {s:?} (one of: {})", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("revent").chain(argv.iter().copied()))
    }

    #[test]
    fn resolve_options_parse() {
        let argv = [
            "resolve",
            "--server",
            "127.0.0.1:5353",
            "--server",
            "::1",
            "-4",
            "a",
            "b",
        ];
        let Command::Resolve(a) = parse(&argv).unwrap().command else {
            panic!("not resolve")
        };
        assert_eq!(
            a.server,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert!(a.ipv4 && !a.ipv6);
        assert_eq!(a.names, ["a", "b"]);
        assert!(parse(&["resolve"]).is_err(), "a name is required");
        assert!(parse(&["resolve", "--server", "nonsense", "a"]).is_err());
        assert!(parse(&["resolve", "-4", "-6", "a"]).is_err());
    }

    #[test]
    fn echo_defaults_are_the_seeds_port_on_every_address() {
        let Command::Echo(a) = parse(&["echo"]).unwrap().command else {
            panic!("not echo")
        };
        assert_eq!(a.socket_addr(), "0.0.0.0:9999".parse().unwrap());
        assert_eq!(a.idle_timeout, None);
        assert_eq!(a.max_conns, None);
        assert_eq!((a.read_high, a.max_output, a.threads), (0, 1 << 20, 1));
        assert!(!a.verbose);
    }

    #[test]
    fn http_defaults_and_options() {
        let Command::Http(a) = parse(&["http"]).unwrap().command else {
            panic!("not http")
        };
        assert_eq!(
            SocketAddr::new(a.addr, a.port),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!((a.dir.to_str(), a.threads), (Some("."), 1));
        let argv = [
            "http",
            "--addr",
            "127.0.0.1",
            "--port",
            "0",
            "--dir",
            "/tmp",
            "--threads",
            "2",
        ];
        let Command::Http(a) = parse(&argv).unwrap().command else {
            panic!("not http")
        };
        assert_eq!((a.port, a.threads), (0, 2));
        assert_eq!(a.dir, std::path::PathBuf::from("/tmp"));
        assert!(parse(&["http", "--threads", "0"]).is_err());
    }

    #[test]
    fn hello_defaults_to_9995() {
        let Command::Hello(a) = parse(&["hello"]).unwrap().command else {
            panic!("not hello")
        };
        assert_eq!(a.socket_addr(), "0.0.0.0:9995".parse().unwrap());
    }

    #[test]
    fn echo_options_parse() {
        let argv = [
            "echo",
            "--addr",
            "127.0.0.1",
            "--port",
            "0",
            "--idle-timeout",
            "0.25",
            "--max-conns",
            "5",
            "--read-high",
            "4096",
            "--max-output",
            "65536",
            "--drain-timeout",
            "2.5",
            "--threads",
            "3",
            "-v",
        ];
        let Command::Echo(a) = parse(&argv).unwrap().command else {
            panic!("not echo")
        };
        assert_eq!(a.socket_addr(), "127.0.0.1:0".parse().unwrap());
        assert_eq!(a.idle_timeout, Some(Duration::from_millis(250)));
        assert_eq!(a.max_conns, Some(5));
        assert_eq!((a.read_high, a.max_output, a.threads), (4096, 65536, 3));
        assert_eq!(a.drain_timeout, Duration::from_millis(2500));
        assert!(a.verbose);
        assert!(a.tls.is_none());
    }

    #[test]
    fn echo_tls_takes_a_cert_and_a_key() {
        let Command::Echo(a) = parse(&["echo", "--tls", "c.pem", "k.pem"]).unwrap().command else {
            panic!("not echo")
        };
        let want: Vec<std::path::PathBuf> = vec!["c.pem".into(), "k.pem".into()];
        assert_eq!(a.tls, Some(want));
        assert!(parse(&["echo", "--tls", "c.pem"]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        for argv in [
            &["echo", "--threads", "0"][..],
            &["echo", "--max-output", "0"],
            &["echo", "--drain-timeout", "0"],
            &["echo", "--idle-timeout", "-1"],
            &["echo", "--idle-timeout", "inf"],
            &["echo", "--port", "65536"],
            &["echo", "--addr", "nowhere"],
            &["echo", "--bogus"],
            &["hello", "--threads", "2"],
            &[],
        ] {
            assert!(parse(argv).is_err(), "{argv:?} was accepted");
        }
    }
}
