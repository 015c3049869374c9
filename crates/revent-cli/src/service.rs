//! What `revent echo` and `revent http` share: a base on the `--method` asked for, and how a service
//! that runs one base per thread stops (the main thread's base takes SIGINT and SIGTERM and passes
//! the stop on to each worker's base through a socket of its own).

use revent::{Config, EventBase, EventId, Method, What};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

/// A base on `method` alone, or on the library's choice without one.
pub fn new_base(method: Option<Method>) -> Result<EventBase, String> {
    let Some(m) = method else {
        return EventBase::new().map_err(|e| e.to_string());
    };
    let mut cfg = Config::new();
    for other in Method::ALL {
        if other != m {
            cfg.avoid_method(other);
        }
    }
    EventBase::with_config(&cfg).map_err(|e| format!("method {}: {e}", m.name()))
}

/// What a base runs to stop.
pub type Stop = Rc<dyn Fn(&mut EventBase)>;

/// Installs (adds) the events that stop `base` with `stop`: on a worker (`stop_rx` is its end of
/// the socket), the socket becoming readable; on the main thread (`stop_rx` None), SIGINT or
/// SIGTERM, which first writes to every worker's socket in `stoppers`. Returns the events, for the
/// caller to free once the loop has ended.
pub fn install_stop(
    base: &mut EventBase,
    stop_rx: Option<&OwnedFd>,
    stoppers: Vec<OwnedFd>,
    stop: Stop,
) -> Result<Vec<EventId>, String> {
    let mut events = Vec::new();
    match stop_rx {
        Some(rx) => {
            let ev = base
                .new_event(rx.as_raw_fd(), What::READ, move |base, _| stop(base))
                .map_err(|e| e.to_string())?;
            events.push(ev);
        }
        None => {
            let stoppers = Rc::new(stoppers);
            for sig in [libc::SIGINT, libc::SIGTERM] {
                let (stop, stoppers) = (stop.clone(), stoppers.clone());
                let ev = base
                    .new_signal(sig, move |base, _| {
                        for tx in stoppers.iter() {
                            if let Ok(tx) = tx.try_clone() {
                                let _ = std::os::unix::net::UnixStream::from(tx).write_all(b"x");
                            }
                        }
                        stop(base);
                    })
                    .map_err(|e| e.to_string())?;
                events.push(ev);
            }
        }
    }
    for ev in &events {
        base.add(*ev, None).map_err(|e| e.to_string())?;
    }
    Ok(events)
}
