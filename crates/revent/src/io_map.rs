//! Per-fd aggregation of interest, and the changelist.
//!
//! Several events may watch one fd; the kernel is told only the union of their interest. Changes made
//! during an iteration are coalesced: the kernel sees at most one update per fd when the base flushes
//! (before it waits). A change that removes an fd entirely is applied at once unless the base was
//! built with `EPOLL_USE_CHANGELIST` (see `EventBase::io_remove`); with it, an event deleted and
//! re-added in one callback costs no syscall at all.

use crate::error::{Error, Result};
use crate::event::What;
use std::os::fd::RawFd;

/// The interest bits a backend cares about.
pub(crate) const IO_BITS: What = What::from_bits_truncate(0x02 | 0x04 | 0x80 | 0x20);

/// The keys of the events inserted on one fd, in insertion order. The first two are kept inline:
/// a socket bufferevent has a read and a write event on its fd, and the readiness of one should
/// touch no cache line beyond its fd's entry (with many connections every line is a miss).
#[derive(Default, Debug, Clone)]
pub(crate) struct Keys {
    head: [u32; 2],
    n: u32,
    rest: Vec<u32>,
}

impl Keys {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.n as usize
    }

    /// The key at position `i` (`i < len()`). The readiness path indexes rather than iterates:
    /// `iter`'s chained iterator cost ~20 instructions per echo trip (callgrind).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u32 {
        if i < 2 {
            self.head[i]
        } else {
            self.rest[i - 2]
        }
    }

    fn set(&mut self, i: usize, key: u32) {
        if i < 2 {
            self.head[i] = key;
        } else {
            self.rest[i - 2] = key;
        }
    }

    fn push(&mut self, key: u32) {
        if self.n < 2 {
            self.head[self.n as usize] = key;
        } else {
            self.rest.push(key);
        }
        self.n += 1;
    }

    /// Removes `key`, keeping the others in order; whether it was there.
    fn remove(&mut self, key: u32) -> bool {
        let n = self.len();
        let Some(pos) = (0..n).position(|i| self.get(i) == key) else {
            return false;
        };
        for i in pos..n - 1 {
            self.set(i, self.get(i + 1));
        }
        if n > 2 {
            self.rest.pop();
        }
        self.n -= 1;
        true
    }

    /// The keys, in insertion order.
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.head[..self.len().min(2)]
            .iter()
            .chain(&self.rest)
            .copied()
    }
}

/// One cache line per fd (the keys inline, the counts, the registered interest): the readiness of
/// an fd touches that line only.
#[derive(Default, Debug)]
#[repr(align(64))]
pub(crate) struct FdEntry {
    /// Keys of the inserted events watching this fd, in insertion order.
    pub(crate) events: Keys,
    nread: u32,
    nwrite: u32,
    nclose: u32,
    /// Events that asked for edge-triggering (`What::ET`).
    net: u32,
    /// Events that take edges or levels alike (see [`IoMap::insert`]).
    nsoft: u32,
    /// What the backend currently has registered.
    pub(crate) kernel: What,
    /// Whether the fd is on the changelist.
    queued: bool,
}

impl FdEntry {
    /// The union of the interest of the events on this fd.
    pub(crate) fn desired(&self) -> What {
        let mut w = What::NONE;
        if self.nread > 0 {
            w |= What::READ;
        }
        if self.nwrite > 0 {
            w |= What::WRITE;
        }
        if self.nclose > 0 {
            w |= What::CLOSED;
        }
        // Edge-triggered only when no event on the fd needs levels.
        let edged = self.net + self.nsoft;
        if edged > 0 && edged == self.events.len() as u32 && !w.is_empty() {
            w |= What::ET;
        }
        w
    }
}

#[derive(Default, Debug)]
pub(crate) struct IoMap {
    fds: Vec<FdEntry>,
    /// fds whose desired interest may differ from the kernel's.
    changes: Vec<RawFd>,
}

impl IoMap {
    pub(crate) fn get(&self, fd: RawFd) -> Option<&FdEntry> {
        self.fds.get(fd as usize)
    }

    pub(crate) fn kernel(&self, fd: RawFd) -> What {
        self.fds.get(fd as usize).map_or(What::NONE, |e| e.kernel)
    }

    /// Records that event `key` watches `fd` for `what`.
    ///
    /// `soft`: the event copes with edges and levels alike (a socket bufferevent's reader, which
    /// reads again by itself while a read may have left data behind). The fd is registered
    /// edge-triggered when every event on it is ET or soft, level-triggered otherwise. A soft event
    /// mixes with either kind; ET and plain level-triggered events on one fd are refused, as libevent
    /// refuses them.
    pub(crate) fn insert(&mut self, fd: RawFd, key: u32, what: What, soft: bool) -> Result<()> {
        let f = fd as usize;
        if f >= self.fds.len() {
            self.fds.resize_with(f + 1, FdEntry::default);
        }
        let e = &mut self.fds[f];
        let et = what.contains(What::ET);
        let nlevel = e.events.len() as u32 - e.net - e.nsoft;
        if (et && nlevel > 0) || (!et && !soft && e.net > 0) {
            return Err(Error::InvalidArgument(
                "edge-triggered and level-triggered events mixed on one fd",
            ));
        }
        e.events.push(key);
        e.nread += what.contains(What::READ) as u32;
        e.nwrite += what.contains(What::WRITE) as u32;
        e.nclose += what.contains(What::CLOSED) as u32;
        e.net += et as u32;
        e.nsoft += (soft && !et) as u32;
        Ok(())
    }

    /// Forgets that event `key` watches `fd` for `what` (as inserted, `soft` included).
    pub(crate) fn remove(&mut self, fd: RawFd, key: u32, what: What, soft: bool) {
        let Some(e) = self.fds.get_mut(fd as usize) else {
            return;
        };
        if e.events.remove(key) {
            let et = what.contains(What::ET);
            e.nread -= what.contains(What::READ) as u32;
            e.nwrite -= what.contains(What::WRITE) as u32;
            e.nclose -= what.contains(What::CLOSED) as u32;
            e.net -= et as u32;
            e.nsoft -= (soft && !et) as u32;
        }
    }

    /// Puts `fd` on the changelist (once).
    pub(crate) fn queue(&mut self, fd: RawFd) {
        let e = &mut self.fds[fd as usize];
        if !e.queued {
            e.queued = true;
            self.changes.push(fd);
        }
    }

    /// Records that the backend now has `what` for `fd`.
    pub(crate) fn set_kernel(&mut self, fd: RawFd, what: What) {
        self.fds[fd as usize].kernel = what;
    }

    /// Whether anything is waiting on the changelist.
    #[inline]
    pub(crate) fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Takes the changelist for flushing: `(fd, kernel, desired)` for each fd whose interest differs,
    /// restricted to fds whose new interest is empty when `only_removals`. Entries not taken stay
    /// queued.
    pub(crate) fn take_changes(&mut self, only_removals: bool, out: &mut Vec<(RawFd, What, What)>) {
        let fds = &mut self.fds;
        self.changes.retain(|&fd| {
            let e = &mut fds[fd as usize];
            let desired = e.desired();
            if only_removals && !desired.is_empty() {
                return true;
            }
            e.queued = false;
            if desired != e.kernel {
                out.push((fd, e.kernel, desired));
            }
            false
        });
    }

    /// Every fd the backend knows about, with its registered interest (for re-registration after
    /// fork).
    pub(crate) fn registered(&self) -> impl Iterator<Item = (RawFd, What)> + '_ {
        self.fds
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.kernel.is_empty())
            .map(|(fd, e)| (fd as RawFd, e.kernel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_insertion_order_inline_and_spilled() {
        let mut k = Keys::default();
        for key in [10, 11, 12, 13] {
            k.push(key);
        }
        assert_eq!(k.iter().collect::<Vec<_>>(), [10, 11, 12, 13]);
        assert!(k.remove(10), "an inline key");
        assert_eq!(k.iter().collect::<Vec<_>>(), [11, 12, 13]);
        assert!(!k.remove(99));
        assert!(k.remove(13), "a spilled key");
        assert_eq!(k.iter().collect::<Vec<_>>(), [11, 12]);
        k.push(14);
        assert!(k.remove(12));
        assert_eq!(k.iter().collect::<Vec<_>>(), [11, 14]);
        assert!(k.remove(11) && k.remove(14));
        assert_eq!(k.len(), 0);
        assert!(k.rest.is_empty());
    }

    /// One fd's entry is one cache line: readiness touches nothing else of the map.
    #[test]
    fn an_fd_entry_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<FdEntry>(), 64);
        assert_eq!(std::mem::align_of::<FdEntry>(), 64);
    }

    #[test]
    fn insert_and_remove_keep_the_union_of_interest() {
        let mut m = IoMap::default();
        m.insert(5, 1, What::READ, false).unwrap();
        m.insert(5, 2, What::WRITE, false).unwrap();
        m.insert(5, 3, What::READ, false).unwrap();
        assert_eq!(m.get(5).unwrap().desired(), What::READ | What::WRITE);
        m.remove(5, 2, What::WRITE, false);
        assert_eq!(m.get(5).unwrap().desired(), What::READ);
        assert_eq!(m.get(5).unwrap().events.iter().collect::<Vec<_>>(), [1, 3]);
        m.remove(5, 1, What::READ, false);
        m.remove(5, 3, What::READ, false);
        assert!(m.get(5).unwrap().desired().is_empty());
    }

    /// libevent refuses ET and level-triggered events on one fd; a soft event goes with either,
    /// and the fd is edge-triggered only while no event on it needs levels.
    #[test]
    fn soft_events_mix_with_both_and_levels_win() {
        let rw = What::READ | What::WRITE;
        let mut m = IoMap::default();
        m.insert(7, 1, What::READ | What::CLOSED, true).unwrap();
        assert_eq!(
            m.get(7).unwrap().desired(),
            What::READ | What::CLOSED | What::ET
        );
        m.insert(7, 2, What::WRITE, false).unwrap();
        assert_eq!(
            m.get(7).unwrap().desired(),
            rw | What::CLOSED,
            "a level event"
        );
        assert!(
            m.insert(7, 3, What::READ | What::ET, false).is_err(),
            "ET beside a level event"
        );
        m.remove(7, 2, What::WRITE, false);
        assert_eq!(
            m.get(7).unwrap().desired(),
            What::READ | What::CLOSED | What::ET
        );
        m.insert(7, 3, What::WRITE | What::ET, false).unwrap();
        assert_eq!(m.get(7).unwrap().desired(), rw | What::CLOSED | What::ET);
        assert!(
            m.insert(7, 4, What::READ, false).is_err(),
            "a level event beside ET"
        );
        m.insert(7, 4, What::READ, true).unwrap();
        m.remove(7, 3, What::WRITE | What::ET, false);
        m.remove(7, 4, What::READ, true);
        m.remove(7, 1, What::READ | What::CLOSED, true);
        assert!(m.get(7).unwrap().desired().is_empty());
        m.insert(7, 5, What::READ, false).unwrap();
        assert_eq!(
            m.get(7).unwrap().desired(),
            What::READ,
            "no soft count left over"
        );
    }
}
