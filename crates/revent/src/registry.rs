//! The events (in the crate's generational [`Slab`]) and the active queues.
//!
//! A user holds an [`EventId`] (slot index + generation), so a stale handle is detected, never
//! confused with the slot's next occupant. Active events are linked into one FIFO per
//! priority through links stored in the slots, so removing an event from the middle of a queue (a
//! callback deleting an event that is about to run) is O(1).

use crate::base::EventBase;
use crate::error::{Error, Handle, Result};
use crate::event::{EventId, Fired, What};
use crate::slab::{Key, Slab};
use std::os::fd::RawFd;

pub(crate) const NONE: u32 = u32::MAX;

/// The event is inserted (its fd or signal is watched).
pub(crate) const INSERTED: u8 = 0x01;
/// The event is in an active queue.
pub(crate) const ACTIVE: u8 = 0x02;
/// The event's timer is armed.
pub(crate) const TIMEOUT: u8 = 0x04;
/// Free the event after its callback runs (`EventBase::once`).
pub(crate) const ONCE: u8 = 0x08;
/// The base's own event: not counted as pending, not listed.
pub(crate) const INTERNAL: u8 = 0x10;
/// The event copes with an edge-triggered fd (see `IoMap::insert`'s `soft`). Not a list flag: set
/// directly, outside `event_count`.
pub(crate) const EDGE_OK: u8 = 0x20;

/// Duration value meaning "no persistent timeout".
pub(crate) const NO_INTERVAL: u64 = u64::MAX;

pub(crate) type Callback = dyn FnMut(&mut EventBase, Fired);

pub(crate) struct Ev {
    pub(crate) fd: RawFd,
    pub(crate) events: What,
    /// What happened, while active.
    pub(crate) res: What,
    pub(crate) flags: u8,
    pub(crate) pri: u8,
    pub(crate) ncalls: u32,
    /// The armed timer's deadline (valid with TIMEOUT, and kept after it fires for re-arming).
    pub(crate) deadline: u64,
    /// A persistent event's timeout, re-armed at every fire.
    pub(crate) interval: u64,
    prev: u32,
    next: u32,
    /// Taken out while the callback runs.
    pub(crate) cb: Option<Box<Callback>>,
}

/// An event about to run (see [`Registry::start_run`]).
pub(crate) struct Run {
    pub(crate) fd: RawFd,
    pub(crate) res: What,
    pub(crate) ncalls: u32,
    pub(crate) events: What,
    pub(crate) interval: u64,
    pub(crate) generation: u32,
    pub(crate) cb: Option<Box<Callback>>,
}

#[derive(Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
}

const EMPTY_QUEUE: Queue = Queue {
    head: NONE,
    tail: NONE,
};

pub(crate) struct Registry {
    pub(crate) slots: Slab<Ev>,
    queues: Vec<Queue>,
    /// Events in the active queues.
    pub(crate) n_active: usize,
    /// libevent's `event_count`: for each non-internal event, one per list it is on (inserted,
    /// timer, active). The loop ends when this is zero.
    pub(crate) event_count: usize,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            slots: Slab::default(),
            queues: vec![EMPTY_QUEUE],
            n_active: 0,
            event_count: 0,
        }
    }

    /// The slot index of a live event, or a stale-handle error.
    #[inline]
    pub(crate) fn key(&self, id: EventId) -> Result<u32> {
        let key = Key {
            index: id.index,
            generation: id.generation,
        };
        if self.slots.contains(key) {
            Ok(id.index)
        } else {
            Err(Error::Stale(Handle::Event))
        }
    }

    #[inline]
    pub(crate) fn id(&self, key: u32) -> EventId {
        let k = self.slots.key_at(key);
        EventId {
            index: k.index,
            generation: k.generation,
        }
    }

    #[inline]
    pub(crate) fn ev(&self, key: u32) -> &Ev {
        self.slots.at(key)
    }

    #[inline]
    pub(crate) fn ev_mut(&mut self, key: u32) -> &mut Ev {
        self.slots.at_mut(key)
    }

    pub(crate) fn alloc(&mut self, fd: RawFd, events: What, flags: u8, cb: Box<Callback>) -> u32 {
        let ev = Ev {
            fd,
            events,
            res: What::NONE,
            flags,
            pri: (self.queues.len() / 2) as u8,
            ncalls: 0,
            deadline: 0,
            interval: NO_INTERVAL,
            prev: NONE,
            next: NONE,
            cb: Some(cb),
        };
        self.slots.insert(ev).index
    }

    /// Empties a slot (the event must be on no list) and returns the event, callback included, so the
    /// caller can drop it outside any borrow.
    pub(crate) fn release(&mut self, key: u32) -> Ev {
        let k = self.slots.key_at(key);
        self.slots.remove(k).expect("live event")
    }

    /// Sets list flags on an event, keeping `event_count` in step.
    #[inline]
    pub(crate) fn set_flag(&mut self, key: u32, flag: u8) {
        let ev = self.ev_mut(key);
        debug_assert!(ev.flags & flag == 0);
        ev.flags |= flag;
        let internal = ev.flags & INTERNAL != 0;
        self.event_count += !internal as usize;
    }

    #[inline]
    pub(crate) fn clear_flag(&mut self, key: u32, flag: u8) {
        let ev = self.ev_mut(key);
        debug_assert!(ev.flags & flag != 0);
        ev.flags &= !flag;
        let internal = ev.flags & INTERNAL != 0;
        self.event_count -= !internal as usize;
    }

    pub(crate) fn priorities(&self) -> usize {
        self.queues.len()
    }

    pub(crate) fn set_priorities(&mut self, n: usize) {
        self.queues = vec![EMPTY_QUEUE; n];
        for k in self.slots.keys() {
            if let Some(ev) = self.slots.get_mut(k) {
                ev.pri = ev.pri.min((n - 1) as u8);
            }
        }
    }

    /// Makes an event active with `what` (or adds `what` to it if it already is).
    pub(crate) fn activate(&mut self, key: u32, what: What, count: u32) {
        let ev = self.ev_mut(key);
        if ev.flags & ACTIVE != 0 {
            ev.res |= what;
            ev.ncalls = ev.ncalls.saturating_add(count);
            return;
        }
        ev.res = what;
        ev.ncalls = count;
        let pri = ev.pri as usize;
        self.set_flag(key, ACTIVE);
        let tail = self.queues[pri].tail;
        {
            let ev = self.ev_mut(key);
            ev.prev = tail;
            ev.next = NONE;
        }
        if tail == NONE {
            self.queues[pri].head = key;
        } else {
            self.ev_mut(tail).next = key;
        }
        self.queues[pri].tail = key;
        self.n_active += 1;
    }

    /// Takes an event off its active queue.
    #[inline]
    pub(crate) fn deactivate(&mut self, key: u32) {
        let ev = self.slots.at_mut(key);
        if ev.flags & ACTIVE == 0 {
            return;
        }
        ev.flags &= !ACTIVE;
        let (prev, next, pri) = (ev.prev, ev.next, ev.pri as usize);
        self.event_count -= (ev.flags & INTERNAL == 0) as usize;
        self.n_active -= 1;
        if prev == NONE {
            self.queues[pri].head = next;
        } else {
            self.ev_mut(prev).next = next;
        }
        if next == NONE {
            self.queues[pri].tail = prev;
        } else {
            self.ev_mut(next).prev = prev;
        }
    }

    /// Takes an active event off its queue to run it: what it fired with, and its callback (taken out
    /// of the slot while it runs).
    #[inline]
    pub(crate) fn start_run(&mut self, key: u32) -> Run {
        self.deactivate(key);
        let (generation, ev) = self.slots.at_mut_with_generation(key);
        Run {
            fd: ev.fd,
            res: ev.res,
            ncalls: ev.ncalls,
            events: ev.events,
            interval: ev.interval,
            generation,
            cb: ev.cb.take(),
        }
    }

    /// The first event of the highest-priority non-empty queue, with its priority.
    #[inline]
    pub(crate) fn first_active(&self) -> Option<(usize, u32)> {
        self.queues
            .iter()
            .enumerate()
            .find(|(_, q)| q.head != NONE)
            .map(|(p, q)| (p, q.head))
    }

    #[inline]
    pub(crate) fn head(&self, pri: usize) -> u32 {
        self.queues[pri].head
    }

    /// Active events in the order they will run.
    pub(crate) fn active_in_order(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.n_active);
        for q in &self.queues {
            let mut k = q.head;
            while k != NONE {
                out.push(k);
                k = self.ev(k).next;
            }
        }
        out
    }
}
