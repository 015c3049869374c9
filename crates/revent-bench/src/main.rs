//! `revent-bench`: revent against C libevent and the raw syscalls, side by side.
//!
//! `cargo run --release -p revent-bench -- <subcommand> [options]`; see `--help` of each subcommand and
//! BENCHMARKS.md at the repository root for the tables and how they were taken.

mod args;
mod capi;
mod child;
mod cref;
mod dns;
mod echo;
mod evbuffer;
mod http;
mod machine;
mod memcached;
mod pipes;
mod server;
mod sidebyside;
mod stats;
mod sys;
mod timers;
mod tls;
mod wakeup;

const USAGE: &str = "\
usage: revent-bench <subcommand> [options]
  pipes     libevent's classic bench: revent vs C libevent vs raw epoll/poll; with
            --contenders ...,capi also the C program on revent's C ABI (pipes --help)
  timers    add/delete/fire 1,000,000 timers: revent vs C libevent (and capi) (timers --help)
  evbuffer  Evbuffer vs libevent's evbuffer: add/drain, readln, search, socketpair transfer
            (evbuffer [--rounds N] [--only NAME] [--scale F] [--rust-only])
  echo      echo servers: revent vs C libevent vs raw epoll vs tokio; capi, seed-libevent,
            seed-capi: C servers on libevent and on revent's C ABI (echo --help)
  echo-load HOST PORT CONNS SIZE SECS [--reply TEXT]   the closed-loop, byte-verifying echo
            load generator
  wakeup    cross-thread wake-ups: revent's Remote vs libevent's event_active vs tokio's
            Handle::spawn (wakeup --help)
  http      plaintext HTTP servers under wrk: revent http vs C libevent's evhttp vs hyper
            (tokio current-thread), keep-alive, pipelined x16 and a 1 MiB file; requests/s,
            syscalls and server CPU per request (http --help; needs apt-get install wrk)
  memcached Debian's memcached on Debian's libevent and on revent's C ABI, under memcaslap
            (memcached --help)
  dns       100,000 lookups, 1,000 in flight, against a local server: revent-dns vs C
            libevent's evdns vs hickory-resolver (dns --help)
  tls       TLS echo servers: revent echo --tls (rustls) vs C libevent with libevent_openssl vs
            that program on revent's C ABI; trips/s, handshakes/s (tls --help; needs apt-get
            install libevent-dev libssl-dev)
  tls-load HOST PORT CONNS SIZE SECS CA.pem [--handshakes]   the TLS echo load generator
  cref NAME [LINK...]   compile the C reference program c/NAME.c and print its path
internal (spawned by the above): pipes-child, timers-child, echo-server-tokio PORT,
  echo-server-uring PORT, wakeup-child KIND, http-server-hyper PORT DIR, dns-server,
  dns-client KIND ADDR N INFLIGHT EXPECT";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    let result = match args.first().map(String::as_str) {
        Some("pipes") => pipes::run(rest),
        Some("timers") => timers::run(rest),
        Some("evbuffer") => {
            evbuffer::run(rest);
            Ok(())
        }
        Some("wakeup") => wakeup::run(rest),
        Some("memcached") => memcached::run(rest),
        Some("dns") => dns::run(rest),
        Some("dns-server") => dns::server(rest),
        Some("dns-client") => dns::client(rest),
        Some("pipes-child") => pipes::child(rest),
        Some("wakeup-child") => wakeup::child(rest),
        Some("timers-child") => timers::child(rest),
        Some(cmd @ ("echo" | "echo-load" | "echo-server-tokio" | "echo-server-uring")) => {
            echo::dispatch(cmd, rest).map_err(Into::into)
        }
        Some(cmd @ ("http" | "http-server-hyper")) => http::dispatch(cmd, rest).map_err(Into::into),
        Some(cmd @ ("tls" | "tls-load")) => tls::dispatch(cmd, rest).map_err(Into::into),
        Some("cref") if !rest.is_empty() => {
            let link: Vec<&str> = rest[1..].iter().map(String::as_str).collect();
            println!("{}", cref::build(&rest[0], &link).display());
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("revent-bench: {e}");
        std::process::exit(1);
    }
}
