//! libevent's `hello-world` sample: a server that greets every client and hangs up.
//!
//! Each accepted connection gets a bufferevent with "Hello, World!\n" queued on its output; the
//! write callback frees the bufferevent (closing the socket) once the output has drained. SIGINT
//! makes the loop exit two seconds later, so that greetings in flight still go out.
//!
//! Usage: `hello-world [PORT | ADDR:PORT]`. A bare port listens on every interface (as libevent's
//! sample does on 9995, the default); `127.0.0.1:0` picks a free local port. The bound address is
//! printed first, so that a script (or a test) can find it.
//!
//! Try it: `cargo run -p revent --example hello-world`, then `nc 127.0.0.1 9995`.

use revent::{sig, BevFlags, BevOptions, BufferEvent, EventBase, Listener, ListenerOptions, What};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::Duration;

const MESSAGE: &[u8] = b"Hello, World!\n";
const DEFAULT_PORT: u16 = 9995;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let Some(addr) = parse_addr(arg.as_deref()) else {
        eprintln!("usage: hello-world [PORT | ADDR:PORT]");
        return ExitCode::from(2);
    };
    match run(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-world: {e}");
            ExitCode::FAILURE
        }
    }
}

/// No argument: the default port; a number: that port on every interface; else a full address.
fn parse_addr(arg: Option<&str>) -> Option<SocketAddr> {
    let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    match arg {
        None => Some(any(DEFAULT_PORT)),
        Some(a) => a.parse().map(any).or_else(|_| a.parse()).ok(),
    }
}

fn run(addr: SocketAddr) -> Result<(), revent::Error> {
    let mut base = EventBase::new()?;
    // REUSEABLE: restarting the server right after stopping it should not fail with "address in
    // use" because of connections still in TIME_WAIT.
    let listener = Listener::bind(&mut base, addr, ListenerOptions::REUSEABLE, -1, greet)?;
    let on_sigint = base.new_signal(sig::SIGINT, |base, _| {
        println!("Caught an interrupt signal; exiting cleanly in two seconds.");
        // Not loopbreak: greetings already queued get two more seconds to go out.
        base.loopexit(Some(Duration::from_secs(2)))
            .expect("the loop is running");
    })?;
    base.add(on_sigint, None)?;

    // Printed only now that SIGINT is handled: whoever waits for this line may send it.
    println!("Listening on {}", listener.local_addr(&base)?);
    base.dispatch()?;

    // Dropping the base would free these too; freeing them by hand shows what the program owns.
    listener.free(&mut base)?;
    base.free(on_sigint)?;
    println!("done");
    Ok(())
}

/// The accept callback: queue the greeting on a new bufferevent and let the loop write it.
fn greet(base: &mut EventBase, conn: OwnedFd, _peer: revent::PeerAddr) {
    if let Err(e) = start_greeting(base, conn) {
        // One connection failing (e.g. out of memory) is no reason to stop serving the others.
        eprintln!("hello-world: cannot greet a client: {e}");
    }
}

fn start_greeting(base: &mut EventBase, conn: OwnedFd) -> Result<(), revent::Error> {
    // CLOSE_ON_FREE: freeing the bufferevent closes the connection, which is how we hang up.
    let bev = BufferEvent::socket(base, Some(conn), BevOptions::CLOSE_ON_FREE)?;
    bev.set_write_cb(base, |base, bev| {
        // The write callback runs when the output drains to its low watermark (0 by default), so
        // an empty output here means the whole greeting reached the kernel.
        if bev.output(base).is_ok_and(|out| out.is_empty()) {
            println!("flushed answer");
            let _ = bev.free(base);
        }
    })?;
    bev.set_event_cb(base, |base, bev, what| {
        if what.contains(BevFlags::EOF) {
            println!("Connection closed.");
        } else if what.contains(BevFlags::ERROR) {
            let err = bev.error(base).map(|e| e.to_string()).unwrap_or_default();
            println!("Got an error on the connection: {err}");
        }
        // No timeouts are set, so EOF and errors are all that can happen: the connection is over.
        let _ = bev.free(base);
    })?;
    // We only talk: reading stays off, so whatever the client sends is ignored.
    bev.enable(base, What::WRITE)?;
    bev.disable(base, What::READ)?;
    bev.write(base, MESSAGE)
}
