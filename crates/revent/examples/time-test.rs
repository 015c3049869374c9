//! libevent's `time-test` sample: a persistent timer that prints the time elapsed between firings.

use revent::{EventBase, What};
use std::time::{Duration, Instant};

fn main() -> Result<(), revent::Error> {
    let mut base = EventBase::new()?;
    println!("revent using {}", base.method());
    let mut last = Instant::now();
    let mut fired = 0;
    let ev = base.new_event(-1, What::PERSIST, move |base, f| {
        let now = Instant::now();
        println!(
            "timeout_cb called at {:?}: {:.3} seconds elapsed.",
            base.wall_cached(),
            now.duration_since(last).as_secs_f64()
        );
        last = now;
        fired += 1;
        if fired == 5 {
            base.del(f.id).expect("the event is live");
        }
    })?;
    base.add(ev, Some(Duration::from_secs(1)))?;
    base.dispatch()?;
    Ok(())
}
