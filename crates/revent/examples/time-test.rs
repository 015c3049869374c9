//! libevent's `time-test` sample: a timer that prints the time elapsed between its firings.
//!
//! Usage: `time-test [-p] [COUNT]`.
//! - Without `-p` the timer is one-shot: each firing adds it again for another two seconds.
//! - With `-p` it is persistent: added once, it fires every two seconds by itself.
//!
//! The two ways look the same from outside; they differ in where the next deadline comes from. A
//! persistent timer's next deadline is its previous one plus the period, so it does not drift; a
//! one-shot timer re-added from its callback counts from the time the loop woke up to run it, so
//! the lateness of every wake-up adds up.
//!
//! libevent's sample runs until killed; `COUNT` (not in libevent's) stops it after that many
//! firings, by deleting the timer: with nothing left pending, `dispatch` returns.

use revent::EventBase;
use std::process::ExitCode;
use std::time::{Duration, Instant, UNIX_EPOCH};

const PERIOD: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let mut persistent = false;
    let mut count = None;
    for arg in std::env::args().skip(1) {
        match (arg.as_str(), arg.parse::<u64>()) {
            ("-p", _) => persistent = true,
            (_, Ok(n)) if n > 0 && count.is_none() => count = Some(n),
            _ => {
                eprintln!("usage: time-test [-p] [COUNT]");
                return ExitCode::from(2);
            }
        }
    }
    match run(persistent, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("time-test: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(persistent: bool, count: Option<u64>) -> Result<(), revent::Error> {
    let mut base = EventBase::new()?;
    println!(
        "time-test: {} timer on {}",
        if persistent { "persistent" } else { "one-shot" },
        base.method()
    );

    // The callback keeps its own state: a closure owns what it captures, no globals needed.
    let mut last = Instant::now();
    let mut fired = 0;
    let on_timeout = move |base: &mut EventBase, f: revent::Fired| {
        let now = Instant::now();
        let wall = base
            .wall_cached()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        println!(
            "timeout_cb called at {}: {:.3} seconds elapsed.",
            wall.as_secs(),
            now.duration_since(last).as_secs_f64()
        );
        last = now;
        fired += 1;
        if count == Some(fired) {
            // Deleting makes the timer non-pending (persistent or not); the loop then has nothing
            // left to wait for and `dispatch` returns.
            base.del(f.id)
                .expect("the timer is alive while its callback runs");
        } else if !persistent {
            // A one-shot timer is no longer pending once it fired: arm it again.
            base.add(f.id, Some(PERIOD))
                .expect("the timer is alive while its callback runs");
        }
    };
    let timer = if persistent {
        // The same as `new_event(-1, What::PERSIST, ..)`: an event with no fd is a timer.
        base.new_persistent_timer(on_timeout)
    } else {
        base.new_timer(on_timeout)
    };
    // Both kinds start the same way: the timeout given to `add` is the (first) delay.
    base.add(timer, Some(PERIOD))?;
    base.dispatch()?;
    base.free(timer)?;
    Ok(())
}
