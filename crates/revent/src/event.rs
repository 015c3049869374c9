//! Event handles, the `What` flags and what a callback is told when it runs.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not};
use std::os::fd::RawFd;

/// What an event waits for, and what happened when it fired.
///
/// The bit values are libevent's (`EV_TIMEOUT` = 0x01 ... `EV_CLOSED` = 0x80), so they cross the C ABI
/// unchanged.
///
/// ```
/// use revent::What;
/// let w = What::READ | What::PERSIST;
/// assert!(w.contains(What::READ));
/// assert!(!w.contains(What::WRITE));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct What(u16);

impl What {
    /// No flags.
    pub const NONE: What = What(0);
    /// The event's timeout expired.
    pub const TIMEOUT: What = What(0x01);
    /// The fd is readable.
    pub const READ: What = What(0x02);
    /// The fd is writable.
    pub const WRITE: What = What(0x04);
    /// A signal arrived (the event's "fd" is the signal number).
    pub const SIGNAL: What = What(0x08);
    /// The event stays pending after it fires.
    pub const PERSIST: What = What(0x10);
    /// Edge-triggered (epoll only).
    pub const ET: What = What(0x20);
    /// libevent's finalize flag; accepted for ABI compatibility, no effect.
    pub const FINALIZE: What = What(0x40);
    /// The peer closed its side of the connection (EPOLLRDHUP / POLLRDHUP).
    pub const CLOSED: What = What(0x80);

    /// The raw bits (libevent's values).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Flags from raw bits; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u16) -> What {
        What(bits & 0xff)
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: What) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set in `self`.
    pub const fn intersects(self, other: What) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for What {
    type Output = What;
    fn bitor(self, rhs: What) -> What {
        What(self.0 | rhs.0)
    }
}
impl BitOrAssign for What {
    fn bitor_assign(&mut self, rhs: What) {
        self.0 |= rhs.0;
    }
}
impl BitAnd for What {
    type Output = What;
    fn bitand(self, rhs: What) -> What {
        What(self.0 & rhs.0)
    }
}
impl BitAndAssign for What {
    fn bitand_assign(&mut self, rhs: What) {
        self.0 &= rhs.0;
    }
}
impl Not for What {
    type Output = What;
    fn not(self) -> What {
        What(!self.0 & 0xff)
    }
}

impl fmt::Debug for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(What, &str); 8] = [
            (What::TIMEOUT, "TIMEOUT"),
            (What::READ, "READ"),
            (What::WRITE, "WRITE"),
            (What::SIGNAL, "SIGNAL"),
            (What::PERSIST, "PERSIST"),
            (What::ET, "ET"),
            (What::FINALIZE, "FINALIZE"),
            (What::CLOSED, "CLOSED"),
        ];
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("NONE")?;
        }
        Ok(())
    }
}

/// A handle to an event inside an [`EventBase`](crate::EventBase).
///
/// Handles are small and `Copy`. Once the event is freed, its handle is stale: every call with it
/// returns [`Error::StaleEvent`](crate::Error::StaleEvent), even after the slot is reused.
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
