//! libevent's `le-proxy` sample, the "low-effort proxy": relay TCP connections to another address.
//!
//! Usage: `le-proxy LISTEN-ADDR TARGET-ADDR`, e.g. `le-proxy 127.0.0.1:8080 127.0.0.1:80`. A bare
//! port as LISTEN-ADDR listens on 127.0.0.1 (as libevent's sample does). The bound address is
//! printed first, so that a script (or a test) can use port 0.
//!
//! For each accepted client the proxy connects a second bufferevent to the target, and whatever one
//! side reads is moved (not copied) to the other side's output. Three things make it a proxy one
//! can rely on:
//!
//! - **Back-pressure.** If one side's peer reads slower than the other sends, the output piles up
//!   in the proxy. Once it reaches `MAX_OUTPUT` the proxy stops reading from the sending side, and
//!   resumes when the output has drained to half of that (a write watermark and a write callback).
//!   Memory per connection stays bounded, and the sender is slowed down by TCP itself.
//! - **Half-close.** When one peer finishes sending (EOF), what it sent is delivered and the other
//!   peer is told by a shutdown of the writing side, but the reverse direction keeps going: a
//!   client may send a request, shut down its side and still read the whole reply. The connection
//!   closes once both directions are finished and written out.
//! - **Errors.** When one side fails (reset, connection refused), what it had read is still passed
//!   on, the other side is closed once its output is written, and the failed side is freed at once.
//!
//! Deviations from libevent's sample: no SSL (`-s`/`-W`), and the half-close above, where libevent's
//! sample closes both sides at the first EOF, cutting off a reply still on its way. Callbacks are
//! not deferred (libevent's sample asks for BEV_OPT_DEFER_CALLBACKS): revent never runs a callback
//! from inside an API call, which is what the deferral protected against.

use revent::{
    BevFlags, BevOptions, BufferEvent, EventBase, FlushMode, Listener, ListenerOptions, PeerAddr,
    What,
};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::process::ExitCode;

/// How much output one side may queue before the proxy stops reading from the other side.
const MAX_OUTPUT: usize = 512 * 1024;

/// The proxy's state, kept in the base so that every callback can reach it.
struct Proxy {
    target: SocketAddr,
    /// Sides whose peer has finished sending (EOF) while the other direction still runs.
    finished_reading: HashSet<BufferEvent>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(target), 2) = (
        args.first().and_then(|a| parse_listen_addr(a)),
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.len(),
    ) else {
        eprintln!("usage: le-proxy LISTEN-ADDR TARGET-ADDR   (e.g. le-proxy 8080 127.0.0.1:80)");
        return ExitCode::from(2);
    };
    match run(listen, target) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("le-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An address, or a bare port on 127.0.0.1.
fn parse_listen_addr(arg: &str) -> Option<SocketAddr> {
    match arg.parse::<u16>() {
        Ok(port) if port > 0 => Some((Ipv4Addr::LOCALHOST, port).into()),
        Ok(_) => None,
        Err(_) => arg.parse().ok(),
    }
}

fn run(listen: SocketAddr, target: SocketAddr) -> Result<(), revent::Error> {
    let mut base = EventBase::new()?;
    base.set_state(Proxy {
        target,
        finished_reading: HashSet::new(),
    });
    let options = ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_EXEC;
    let listener = Listener::bind(&mut base, listen, options, -1, accept)?;
    println!(
        "Listening on {}, forwarding to {target}",
        listener.local_addr(&base)?
    );
    base.dispatch()?;
    Ok(())
}

fn accept(base: &mut EventBase, conn: OwnedFd, peer: PeerAddr) {
    if let Err(e) = start_session(base, conn) {
        // One connection that cannot be set up is no reason to stop serving the others.
        eprintln!("le-proxy: cannot relay {peer}: {e}");
    }
}

fn start_session(base: &mut EventBase, conn: OwnedFd) -> Result<(), revent::Error> {
    let target = base.state::<Proxy>().expect("set in run").target;
    // CLOSE_ON_FREE: freeing a side closes its socket, which is how the proxy hangs up.
    let client = BufferEvent::socket(base, Some(conn), BevOptions::CLOSE_ON_FREE)?;
    let server = match BufferEvent::socket(base, None, BevOptions::CLOSE_ON_FREE) {
        Ok(server) => server,
        Err(e) => {
            let _ = client.free(base);
            return Err(e);
        }
    };
    let wire = |base: &mut EventBase| -> Result<(), revent::Error> {
        // The connect completes later; its outcome reaches the event callback (CONNECTED, or
        // ERROR for a refusal). What the client sends meanwhile waits in the server side's output.
        server.connect(base, target)?;
        for (me, other) in [(client, server), (server, client)] {
            me.set_read_cb(base, move |base, me| relay(base, me, other))?;
            me.set_event_cb(base, move |base, me, what| on_event(base, me, other, what))?;
            me.enable(base, What::READ | What::WRITE)?;
        }
        Ok(())
    };
    let wired = wire(base);
    if wired.is_err() {
        let _ = client.free(base);
        let _ = server.free(base);
    }
    wired
}

/// The read callback: move what `src` read to `dst`, and pause `src` if `dst` has too much queued.
fn relay(base: &mut EventBase, src: BufferEvent, dst: BufferEvent) {
    if src.move_input_to(base, dst).is_err() {
        // `dst` is gone: nowhere to send this, so drop it (as libevent's sample does). The
        // callbacks below never let it come to this (a side's read callback is cleared before its
        // partner is freed), but a proxy must not keep unbounded input around if they did.
        if let Ok(input) = src.input(base) {
            let n = input.len();
            let _ = input.drain(n);
        }
        return;
    }
    let queued = dst.output(base).map_or(0, |out| out.len());
    if queued >= MAX_OUTPUT {
        // Stop reading from `src` until `dst` has written half of its output. The write callback
        // runs when the output drains to the low watermark, here MAX_OUTPUT / 2.
        let _ = src.disable(base, What::READ);
        let _ = dst.set_watermark(base, What::WRITE, MAX_OUTPUT / 2, MAX_OUTPUT);
        let _ = dst.set_write_cb(base, move |base, dst| resume(base, dst, src));
    }
}

/// `dst`'s write callback while `src` is paused: `dst` drained enough, so read from `src` again.
fn resume(base: &mut EventBase, dst: BufferEvent, src: BufferEvent) {
    let _ = dst.clear_write_cb(base);
    let _ = dst.set_watermark(base, What::WRITE, 0, 0);
    // `src` may have been freed meanwhile (an error on its connection): nothing to resume then.
    let _ = src.enable(base, What::READ);
}

/// The event callback of one side: its connect finished, its peer finished sending, or it failed.
fn on_event(base: &mut EventBase, me: BufferEvent, other: BufferEvent, what: BevFlags) {
    if !what.intersects(BevFlags::EOF | BevFlags::ERROR) {
        // CONNECTED: nothing to do, the data queued meanwhile now goes out by itself.
        return;
    }
    // The read callback has normally moved everything already; moving again costs nothing and
    // makes sure no byte read before the end stays behind.
    let _ = me.move_input_to(base, other);
    if what.contains(BevFlags::ERROR) {
        if let Some(e) = me.error(base) {
            eprintln!("le-proxy: {e}");
        }
        close_when_written(base, other);
        close_now(base, me);
        return;
    }
    // EOF: this direction is finished.
    let proxy = base.state_mut::<Proxy>().expect("set in run");
    if proxy.finished_reading.remove(&other) {
        // The other direction had finished already: nothing more will be read on either side.
        close_when_written(base, me);
        close_when_written(base, other);
    } else {
        proxy.finished_reading.insert(me);
        // Pass the EOF on: `other`'s peer sees its input end once the data before it is written.
        let _ = other.flush(base, What::WRITE, FlushMode::Finished);
    }
}

/// Stops reading on `bev` and frees it once its output is written (at once if it is empty).
fn close_when_written(base: &mut EventBase, bev: BufferEvent) {
    let Ok(out) = bev.output(base) else { return };
    if out.is_empty() {
        close_now(base, bev);
        return;
    }
    let _ = bev.disable(base, What::READ);
    let _ = bev.clear_read_cb(base);
    // With a write low watermark of 0, the write callback runs once the output is empty. This
    // replaces a `resume` callback that back-pressure may have left: nothing is read any more.
    let _ = bev.set_watermark(base, What::WRITE, 0, 0);
    let _ = bev.set_write_cb(base, close_now);
    // If the peer resets instead of reading the rest, give up on it.
    let _ = bev.set_event_cb(base, |base, bev, _| close_now(base, bev));
}

fn close_now(base: &mut EventBase, bev: BufferEvent) {
    if let Some(proxy) = base.state_mut::<Proxy>() {
        proxy.finished_reading.remove(&bev);
    }
    let _ = bev.free(base);
}
