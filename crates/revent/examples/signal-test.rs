//! libevent's `signal-test` sample: handle SIGINT in the event loop a few times, then let it go.
//!
//! A signal event runs its callback from the loop, not from the signal handler, so the callback may
//! do anything (print, allocate, free events). It is persistent: it stays pending after each
//! delivery. On the third delivery the callback frees its own event; with nothing left pending,
//! `dispatch` returns and the program exits with status 0. (libevent's sample deletes its event on
//! the third delivery too.)
//!
//! Try it: `cargo run -p revent --example signal-test`, then press Ctrl-C three times.

use revent::{sig, EventBase};
use std::process::ExitCode;

/// The delivery on which the callback gives up its event.
const LAST_DELIVERY: u32 = 3;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signal-test: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), revent::Error> {
    let mut base = EventBase::new()?;
    let mut delivered = 0;
    let on_sigint = base.new_signal(sig::SIGINT, move |base, fired| {
        // Signals that arrive before the loop gets round to the callback are merged into one call;
        // `count` says how many there were.
        for _ in 0..fired.count {
            delivered += 1;
            // For a signal event, the "fd" is the signal number.
            println!("signal_cb: got signal {}", fired.fd);
            if delivered == LAST_DELIVERY {
                // An event may free itself from its own callback; the handle is stale afterwards.
                base.free(fired.id)
                    .expect("the event is alive while it runs");
                return;
            }
        }
    })?;
    base.add(on_sigint, None)?;
    // libevent's sample prints nothing here; this line says SIGINT is handled from now on (until
    // the event is added, SIGINT would still kill the process).
    println!("signal-test: pid {} waiting for SIGINT", std::process::id());
    base.dispatch()?;
    println!("signal-test: done");
    Ok(())
}
