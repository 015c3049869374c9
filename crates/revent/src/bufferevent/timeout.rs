//! Read and write timeouts of the kinds that have no events of their own (pairs and filters), as
//! libevent's generic ones: one timer a direction, running while that direction is enabled and not
//! suspended (writing: only while output waits), started over whenever data moves that way. When
//! one expires, the direction is disabled and the event callback hears TIMEOUT|READING or
//! TIMEOUT|WRITING. Sockets time their own events; TLS passes its timeouts to what it sits on.

use super::bev::{self, report, run_queued, Cx};
use super::{BevFlags, BufferEvent};
use crate::base::EventBase;
use crate::error::Result;
use crate::event::{EventId, What};

/// The two timers, made when a timeout is first wanted.
pub(crate) struct Timers {
    read: EventId,
    write: EventId,
    read_on: bool,
    write_on: bool,
}

impl Timers {
    pub(crate) fn set_priority(&self, core: &mut crate::base::Core, pri: usize) -> Result<()> {
        core.set_priority(self.read, pri)?;
        core.set_priority(self.write, pri)
    }

    /// Frees the timers (the bufferevent is being freed).
    pub(crate) fn free(self, core: &mut crate::base::Core) {
        let _ = core.free(self.read);
        let _ = core.free(self.write);
    }
}

/// Starts the timers that should run and stops those that should not. Running ones keep their
/// deadline, except in the directions of `restart` (data moved, or the timeouts were set anew).
pub(crate) fn adj(cx: &mut Cx, h: BufferEvent, restart: What) {
    let Cx { core, st } = cx;
    let Ok(b) = st.get_mut(h) else { return };
    let read = b
        .timeout_read
        .filter(|_| b.enabled.contains(What::READ) && b.read_suspended == 0);
    let write = b.timeout_write.filter(|_| {
        b.enabled.contains(What::WRITE) && b.write_suspended == 0 && !b.output.get().is_empty()
    });
    if b.timers.is_none() {
        if read.is_none() && write.is_none() {
            return; // the usual case: no timeouts, nothing made
        }
        let r = core.new_timer(move |base, _| expired(base, h, true));
        let w = core.new_timer(move |base, _| expired(base, h, false));
        if let Some(p) = b.priority {
            let _ = core.set_priority(r, p);
            let _ = core.set_priority(w, p);
        }
        b.timers = Some(Box::new(Timers {
            read: r,
            write: w,
            read_on: false,
            write_on: false,
        }));
    }
    let Some(t) = b.timers.as_mut() else { return };
    for (want, ev, on, dir) in [
        (read, t.read, &mut t.read_on, What::READ),
        (write, t.write, &mut t.write_on, What::WRITE),
    ] {
        match want {
            Some(d) if !*on || restart.contains(dir) => {
                // A timer add fails only for a stale id, which these never are.
                *on = core.add(ev, Some(d)).is_ok();
            }
            Some(_) => {}
            None if *on => {
                *on = false;
                let _ = core.del(ev);
            }
            None => {}
        }
    }
}

/// A timer ran out: the direction stops, and the user hears of it.
fn expired(base: &mut EventBase, h: BufferEvent, read: bool) {
    let mut cx = bev::cx(base);
    if let Some(t) = cx.st.get_mut(h).ok().and_then(|b| b.timers.as_mut()) {
        if read {
            t.read_on = false;
        } else {
            t.write_on = false;
        }
    }
    let dir = if read {
        BevFlags::READING
    } else {
        BevFlags::WRITING
    };
    report(&mut cx, h, BevFlags::TIMEOUT | dir, None);
    run_queued(base);
}
