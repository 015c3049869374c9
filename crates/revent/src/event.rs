//! Event handles, the `What` flags and what a callback is told when it runs.

use std::fmt;
use std::os::fd::RawFd;

crate::flags::flags! {
    /// What an event waits for, and what happened when it fired.
    ///
    /// The bit values are libevent's (`EV_TIMEOUT` = 0x01 ... `EV_CLOSED` = 0x80), so they cross the C
    /// ABI unchanged.
    ///
    /// ```
    /// use revent::What;
    /// let w = What::READ | What::PERSIST;
    /// assert!(w.contains(What::READ));
    /// assert!(!w.intersects(What::WRITE | What::SIGNAL));
    /// ```
    What: u16 {
        /// The event's timeout expired.
        const TIMEOUT = 0x01;
        /// The fd is readable.
        const READ = 0x02;
        /// The fd is writable.
        const WRITE = 0x04;
        /// A signal arrived (the event's "fd" is the signal number).
        const SIGNAL = 0x08;
        /// The event stays pending after it fires.
        const PERSIST = 0x10;
        /// Edge-triggered (epoll only).
        const ET = 0x20;
        /// libevent's finalize flag; accepted for ABI compatibility, no effect.
        const FINALIZE = 0x40;
        /// The peer closed its side of the connection (EPOLLRDHUP / POLLRDHUP).
        const CLOSED = 0x80;
    }
}

/// A handle to an event inside an [`EventBase`](crate::EventBase).
///
/// Handles are small and `Copy`. Once the event is freed, its handle is stale: every call with it
/// returns [`Error::Stale`](crate::Error::Stale), even after the slot is reused.
///
/// ```
/// use revent::{EventBase, EventId};
/// let mut base = EventBase::new().unwrap();
/// let ev = base.new_timer(|_, _| {});
/// // Kept in foreign memory and back:
/// let again = EventId::from_raw(ev.to_raw());
/// base.free(again).unwrap();
/// let reused = base.new_timer(|_, _| {});
/// assert!(base.add(ev, None).is_err(), "a freed handle never names the slot's next event");
/// base.free(reused).unwrap();
/// ```
#[must_use = "an event lives in the base until freed; keep its handle to free it"]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl EventId {
    /// The slot index and generation, e.g. for a C layer that keeps the id in foreign memory.
    pub fn to_raw(self) -> u64 {
        (self.generation as u64) << 32 | self.index as u64
    }

    /// The inverse of [`to_raw`](Self::to_raw). A forged value is harmless: at worst it is stale.
    pub fn from_raw(raw: u64) -> EventId {
        EventId {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({}v{})", self.index, self.generation)
    }
}

/// What a callback is told when its event runs.
///
/// ```
/// use revent::{EventBase, What};
/// let mut base = EventBase::new().unwrap();
/// let ev = base.new_event(-1, What::NONE, |base, fired| {
///     assert_eq!((fired.fd, fired.what, fired.count), (-1, What::READ, 1));
///     base.free(fired.id).unwrap();
/// }).unwrap();
/// base.activate(ev, What::READ, 1).unwrap();
/// base.dispatch().unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The event that fired (so a callback can delete or free itself).
    pub id: EventId,
    /// The event's fd, or its signal number for a signal event, or -1 for a pure timer.
    pub fd: RawFd,
    /// What happened: some of READ, WRITE, CLOSED, TIMEOUT, SIGNAL, or what `activate` was given.
    pub what: What,
    /// For a signal event, how many times the signal arrived since the callback last ran; otherwise 1.
    pub count: u32,
}
