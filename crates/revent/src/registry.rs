//! The slab of events and the active queues.
//!
//! Events live in slots; a user holds an [`EventId`] (slot index + generation), so a stale handle is
//! detected, never confused with the slot's next occupant. Active events are linked into one FIFO per
//! priority through links stored in the slots, so removing an event from the middle of a queue (a
//! callback deleting an event that is about to run) is O(1).

use crate::base::EventBase;
use crate::error::{Error, Result};
use crate::event::{EventId, Fired, What};
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

pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) ev: Option<Ev>,
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
    pub(crate) slots: Vec<Slot>,
    free: Vec<u32>,
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
            slots: Vec::new(),
            free: Vec::new(),
            queues: vec![EMPTY_QUEUE],
            n_active: 0,
            event_count: 0,
        }
    }

    /// The slot index of a live event, or `StaleEvent`.
    #[inline]
    pub(crate) fn key(&self, id: EventId) -> Result<u32> {
        match self.slots.get(id.index as usize) {
            Some(s) if s.generation == id.generation && s.ev.is_some() => Ok(id.index),
            _ => Err(Error::StaleEvent),
        }
    }

    #[inline]
    pub(crate) fn id(&self, key: u32) -> EventId {
        EventId {
            index: key,
            generation: self.slots[key as usize].generation,
        }
    }

    #[inline]
    pub(crate) fn ev(&self, key: u32) -> &Ev {
        self.slots[key as usize].ev.as_ref().expect("live event")
    }

    #[inline]
    pub(crate) fn ev_mut(&mut self, key: u32) -> &mut Ev {
        self.slots[key as usize].ev.as_mut().expect("live event")
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
        match self.free.pop() {
            Some(key) => {
                self.slots[key as usize].ev = Some(ev);
                key
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    ev: Some(ev),
                });
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Empties a slot (the event must be on no list) and returns the event, callback included, so the
    /// caller can drop it outside any borrow.
    pub(crate) fn release(&mut self, key: u32) -> Ev {
        let slot = &mut self.slots[key as usize];
        slot.generation = slot.generation.wrapping_add(1);
        let ev = slot.ev.take().expect("live event");
        self.free.push(key);
        ev
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
        for s in &mut self.slots {
            if let Some(ev) = &mut s.ev {
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
        let Some(ev) = self.slots[key as usize].ev.as_mut() else {
            return;
        };
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
        let slot = &mut self.slots[key as usize];
        let ev = slot.ev.as_mut().expect("live event");
        Run {
            fd: ev.fd,
            res: ev.res,
            ncalls: ev.ncalls,
            events: ev.events,
            interval: ev.interval,
            generation: slot.generation,
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
