//! Completion-based I/O on the ring: receives, sends and connect polls that a bufferevent owns.
//!
//! A bufferevent gets an [`OpSlot`] tied to one of its events. Its requests carry the slot in their
//! `user_data` (the low half has bit 31 set, which no fd has; the high half is the slot's generation),
//! and their completions are kept in the slot's inbox; after the wait the base activates the slot's
//! event, whose callback takes the inbox ([`Uring::take`]) and acts on it. So completions run as
//! callbacks of the loop, in priority order, like readiness.
//!
//! # Memory the kernel uses after submission
//!
//! - Receives pick a buffer from the ring's provided buffer ring ([`BufRing`]) only when data
//!   arrives, so a quiet connection holds no memory. The bytes are copied into the bufferevent's
//!   input when its callback runs ([`Uring::recv_data`]), and the buffer goes straight back
//!   ([`Uring::recycle`]). The ring is made when the first receive is submitted: [`RING_BUFS`]
//!   buffers of [`RING_BUF_SIZE`] bytes (4 MiB), per base.
//! - A send copies its bytes from the front of the bufferevent's output into the slot (`SendBuf`)
//!   and points the kernel at the copy; the output keeps them (frozen at the front) until the
//!   completion says how many went out. The slot, not the bufferevent, owns the copy until the
//!   send completes: a bufferevent freed with a send in flight leaves its slot behind,
//!   cancelled, and the slot is released only when its last request has completed. Dropping the
//!   ring waits for every request to end first (see `Uring::drop`); one that never ends leaks its
//!   memory rather than free it under the kernel.

use super::{Uring, REMOVE};
use crate::buffer::Evbuffer;
use crate::event::EventId;
use crate::sys::uring::{BufRing, SendBuf, Sqe};
use io_uring::cqueue;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Buffers in a base's provided buffer ring, and their size: enough for this many receives to
/// complete between two visits of the loop; a receive that finds none fails with `ENOBUFS` and is
/// submitted again by the next iteration, when the buffers are back.
pub(crate) const RING_BUFS: u16 = 256;
pub(crate) const RING_BUF_SIZE: usize = 16 * 1024;
const GROUP: u16 = 0x5e;
/// The most bytes one send takes from an output buffer (each is copied once, into the slot).
const MAX_SEND: usize = 256 * 1024;
const OP_BIT: u32 = 1 << 31;

/// A bufferevent's handle on its requests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct OpSlot {
    index: u32,
    gen: u32,
}

/// Which request of a slot (a slot has at most one of each in flight).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    Recv = 0,
    Send = 1,
    Connect = 2,
    Accept = 3,
}

/// A completion, as the slot's owner sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Done {
    pub op: Op,
    /// The kernel's result: bytes, or a negative errno.
    pub res: i32,
    /// The receive buffer holding the bytes, to read with [`Uring::recv_data`] and give back with
    /// [`Uring::recycle`].
    pub bid: Option<u16>,
    /// A multishot receive goes on (more completions will come).
    pub more: bool,
    /// `bid` is a buffer of the ring's previous buffer ring (before `reinit`).
    old: bool,
}

#[derive(Default)]
struct Slot {
    gen: u32,
    /// The event to activate when completions arrive; `None` once the owner has let go.
    owner: Option<EventId>,
    in_use: bool,
    /// Per `Op`: a request is in flight.
    inflight: [bool; 4],
    inbox: Vec<Done>,
    /// On `Ops::ready` (its owner's event is or will be activated).
    queued: bool,
    send: Option<SendBuf>,
}

impl Slot {
    fn busy(&self) -> bool {
        self.inflight.iter().any(|&b| b)
    }
}

/// The ring's op slots and receive buffers.
#[derive(Default)]
pub(crate) struct Ops {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots with completions for their owner, in arrival order.
    ready: Vec<u32>,
    bufs: Option<BufRing>,
    /// The buffer ring before the last `reinit`, kept while completions still name its buffers.
    retired: Option<BufRing>,
    /// Requests in flight, over all slots.
    inflight: usize,
    /// Requests in flight for slots that still have an owner: they keep the loop running.
    held: usize,
}

impl Ops {
    pub(super) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

impl Uring {
    /// Requests of live owners are in flight.
    pub(crate) fn holds(&self) -> bool {
        self.ops.held > 0
    }
}

fn user_data(s: OpSlot, op: Op) -> u64 {
    (u64::from(s.gen) << 32) | u64::from(OP_BIT | (s.index << 2) | op as u32)
}

/// Whether a completion's `user_data` is an op's (not a poll's, not a cancellation's own).
pub(super) fn is_op(ud: u64) -> bool {
    let low = ud as u32;
    low & OP_BIT != 0 && low != REMOVE as u32
}

fn op_of(bits: u32) -> Op {
    match bits & 3 {
        0 => Op::Recv,
        1 => Op::Send,
        2 => Op::Connect,
        _ => Op::Accept,
    }
}

impl Uring {
    /// A slot whose completions activate `owner`.
    pub(crate) fn op_slot(&mut self, owner: EventId) -> OpSlot {
        let ops = &mut self.ops;
        let index = ops.free.pop().unwrap_or_else(|| {
            ops.slots.push(Slot::default());
            (ops.slots.len() - 1) as u32
        });
        let slot = &mut ops.slots[index as usize];
        slot.owner = Some(owner);
        slot.in_use = true;
        OpSlot {
            index,
            gen: slot.gen,
        }
    }

    fn slot_mut(&mut self, s: OpSlot) -> Option<&mut Slot> {
        self.ops
            .slots
            .get_mut(s.index as usize)
            .filter(|x| x.in_use && x.gen == s.gen)
    }

    /// The owner lets go of `s`: its requests are cancelled (at once: a receive holds the socket
    /// open, see the backend's "Interest changes") and the slot is reused once they have ended.
    pub(crate) fn op_release(&mut self, s: OpSlot) {
        let Some(slot) = self.slot_mut(s) else { return };
        slot.owner = None;
        // Buffers of receives nobody will read go back now.
        let dones = std::mem::take(&mut slot.inbox);
        for d in &dones {
            self.recycle(d);
            if d.op == Op::Accept {
                drop(crate::sys::uring::accepted_fd(d.res)); // nobody takes it: closed
            }
        }
        let Some(slot) = self.slot_mut(s) else { return };
        let inflight = slot.inflight;
        let n = inflight.iter().filter(|&&b| b).count();
        self.ops.held -= n;
        let Some(slot) = self.slot_mut(s) else { return };
        if !slot.busy() {
            self.free_slot(s.index);
            return;
        }
        for op in [Op::Recv, Op::Send, Op::Connect, Op::Accept] {
            if inflight[op as usize] {
                let _ = self.push(Sqe::Cancel {
                    target: user_data(s, op),
                    user_data: REMOVE,
                });
            }
        }
        let _ = self.enter(Some(Duration::ZERO));
    }

    fn free_slot(&mut self, index: u32) {
        let slot = &mut self.ops.slots[index as usize];
        slot.in_use = false;
        slot.owner = None;
        slot.queued = false;
        slot.inbox.clear();
        slot.send = None;
        slot.gen = slot.gen.wrapping_add(1);
        self.ops.free.push(index);
    }

    fn start(&mut self, s: OpSlot, op: Op, sqe: Sqe) -> io::Result<()> {
        self.push(sqe)?;
        if let Some(slot) = self.slot_mut(s) {
            slot.inflight[op as usize] = true;
        }
        self.ops.inflight += 1;
        self.ops.held += 1;
        Ok(())
    }

    /// Submits a receive on `fd` (with the next wait): multishot, or one completion of at most `len`
    /// bytes (0: a buffer's size).
    pub(crate) fn recv(&mut self, s: OpSlot, fd: RawFd, len: u32, multi: bool) -> io::Result<()> {
        if self.ops.bufs.is_none() {
            self.ops.bufs = Some(BufRing::new(&self.ring, RING_BUFS, RING_BUF_SIZE, GROUP)?);
        }
        let len = len.min(RING_BUF_SIZE as u32);
        self.start(
            s,
            Op::Recv,
            Sqe::Recv {
                fd,
                group: GROUP,
                len,
                multi,
                user_data: user_data(s, Op::Recv),
            },
        )
    }

    /// Submits a one-shot poll for writability on `fd` (a connect finishing).
    pub(crate) fn connect_poll(&mut self, s: OpSlot, fd: RawFd) -> io::Result<()> {
        self.start(
            s,
            Op::Connect,
            Sqe::PollOut {
                fd,
                user_data: user_data(s, Op::Connect),
            },
        )
    }

    /// Submits a multishot accept on listening socket `fd`; new sockets get `flags`.
    pub(crate) fn accept(&mut self, s: OpSlot, fd: RawFd, flags: i32) -> io::Result<()> {
        self.start(
            s,
            Op::Accept,
            Sqe::AcceptMulti {
                fd,
                flags,
                user_data: user_data(s, Op::Accept),
            },
        )
    }

    /// Asks the kernel to stop `op`; its completion (`-ECANCELED`, or whatever it finished with
    /// first) still arrives.
    pub(crate) fn cancel(&mut self, s: OpSlot, op: Op) {
        if self.slot_mut(s).is_some_and(|x| x.inflight[op as usize]) {
            let _ = self.push(Sqe::Cancel {
                target: user_data(s, op),
                user_data: REMOVE,
            });
        }
    }

    /// Copies up to `max` bytes from the front of `src` into the slot and submits a send of them on
    /// `fd` (with the next wait). Returns how many (0: nothing to send, or a send is already in
    /// flight: one at a time per slot, so the bytes go out in order). The bytes stay in `src`: the
    /// owner drains what the completion says was sent (the owner freezes `src`'s front meanwhile).
    pub(crate) fn send(
        &mut self,
        s: OpSlot,
        fd: RawFd,
        src: &Evbuffer,
        max: usize,
    ) -> crate::error::Result<usize> {
        let Some(slot) = self.slot_mut(s) else {
            return Ok(0);
        };
        let Some(buf) = slot.send.get_or_insert_with(SendBuf::new).buffer() else {
            return Ok(0);
        };
        let n = src.copy_front_to(buf, max.min(MAX_SEND))?;
        if n == 0 {
            return Ok(0);
        }
        self.submit_send(s, fd)?;
        Ok(n)
    }

    /// Bytes of the slot's send still unsent.
    pub(crate) fn send_pending(&self, s: OpSlot) -> usize {
        self.ops
            .slots
            .get(s.index as usize)
            .filter(|x| x.in_use && x.gen == s.gen)
            .and_then(|x| x.send.as_ref())
            .map_or(0, SendBuf::len)
    }

    /// A send completed with `n` bytes written (0 for an error): drops them and returns how many
    /// are left (a short send), which [`resend`](Self::resend) submits.
    fn send_done(&mut self, index: u32, n: usize) {
        if let Some(sb) = self.ops.slots[index as usize].send.as_mut() {
            sb.complete(n);
        }
    }

    /// Submits the rest of a short (or cancelled) send.
    pub(crate) fn resend(&mut self, s: OpSlot, fd: RawFd) -> crate::error::Result<()> {
        if self.send_pending(s) > 0 {
            self.submit_send(s, fd)?;
        }
        Ok(())
    }

    fn submit_send(&mut self, s: OpSlot, fd: RawFd) -> crate::error::Result<()> {
        let ud = user_data(s, Op::Send);
        for _ in 0..2 {
            let Uring { ring, ops, .. } = self;
            let Some(sb) = ops
                .slots
                .get_mut(s.index as usize)
                .and_then(|x| x.send.as_mut())
            else {
                return Ok(());
            };
            if sb.submit(ring, fd, ud) {
                if let Some(slot) = self.slot_mut(s) {
                    slot.inflight[Op::Send as usize] = true;
                }
                self.ops.inflight += 1;
                self.ops.held += 1;
                return Ok(());
            }
            // A full submission queue: submit what is there and try again, as `push` does.
            self.count_enter();
            self.ring.submit()?;
        }
        Err(io::Error::from_raw_os_error(libc::EBUSY).into())
    }

    /// Takes the completions waiting for the owner of `s`.
    pub(crate) fn take(&mut self, s: OpSlot) -> Vec<Done> {
        match self.slot_mut(s) {
            Some(slot) => {
                slot.queued = false;
                std::mem::take(&mut slot.inbox)
            }
            None => Vec::new(),
        }
    }

    /// Gives the (emptied) vector back for the next completions: no allocation per iteration.
    pub(crate) fn give_back(&mut self, s: OpSlot, mut v: Vec<Done>) {
        if let Some(slot) = self.slot_mut(s) {
            if slot.inbox.is_empty() {
                v.clear();
                slot.inbox = v;
            }
        }
    }

    /// The bytes a receive completion delivered.
    pub(crate) fn recv_data(&self, d: &Done) -> &[u8] {
        let bufs = if d.old {
            &self.ops.retired
        } else {
            &self.ops.bufs
        };
        match (d.bid, bufs) {
            (Some(bid), Some(b)) if d.res > 0 => b.data(bid, d.res as usize),
            _ => &[],
        }
    }

    /// Gives a receive completion's buffer back to the kernel.
    pub(crate) fn recycle(&mut self, d: &Done) {
        if d.old {
            return; // the old ring's buffers go with it
        }
        if let (Some(bid), Some(b)) = (d.bid, &mut self.ops.bufs) {
            b.give(bid);
        }
    }

    /// Files a completion of an op (`is_op(user_data)`).
    pub(super) fn op_completion(&mut self, ud: u64, res: i32, flags: u32) {
        let low = ud as u32 & !OP_BIT;
        let (index, op) = (low >> 2, op_of(low));
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let done = Done {
            op,
            res,
            bid,
            more,
            old: false,
        };
        let Some(slot) = self.ops.slots.get_mut(index as usize) else {
            return;
        };
        if !slot.in_use || slot.gen != (ud >> 32) as u32 {
            // Cannot happen (a slot outlives its requests); a stray buffer still goes back.
            self.recycle(&done);
            return;
        }
        if !more && slot.inflight[op as usize] {
            slot.inflight[op as usize] = false;
            self.ops.inflight -= 1;
            if slot.owner.is_some() {
                self.ops.held -= 1;
            }
            if op == Op::Send {
                // The kernel is done with the bytes: what it sent goes, the rest may be resent.
                self.send_done(index, res.max(0) as usize);
            }
        }
        let slot = &mut self.ops.slots[index as usize];
        if slot.owner.is_none() {
            self.recycle(&done);
            if op == Op::Accept {
                drop(crate::sys::uring::accepted_fd(res)); // nobody takes it: closed
            }
            if !self.ops.slots[index as usize].busy() {
                self.free_slot(index);
            }
            return;
        }
        slot.inbox.push(done);
        if !slot.queued {
            slot.queued = true;
            self.ops.ready.push(index);
        }
    }

    /// Calls `f` with the owner of every slot that has completions waiting.
    pub(crate) fn drain_ready(&mut self, mut f: impl FnMut(EventId)) {
        for index in self.ops.ready.drain(..) {
            if let Some(ev) = self.ops.slots[index as usize].owner {
                f(ev);
            }
        }
    }

    /// Ends every request in flight (cancelled) and waits for the last completion, so that no
    /// memory they use is freed under the kernel. Their completions go to the inboxes as usual.
    pub(super) fn end_ops(&mut self) {
        if self.ops.inflight == 0 {
            return;
        }
        for index in 0..self.ops.slots.len() {
            let slot = &self.ops.slots[index];
            if !slot.in_use {
                continue;
            }
            let s = OpSlot {
                index: index as u32,
                gen: slot.gen,
            };
            let inflight = slot.inflight;
            for op in [Op::Recv, Op::Send, Op::Connect, Op::Accept] {
                if inflight[op as usize] {
                    let _ = self.push(Sqe::Cancel {
                        target: user_data(s, op),
                        user_data: REMOVE,
                    });
                }
            }
        }
        // Cancellation of a socket request is immediate; the bound only guards against a kernel
        // that never answers (the memory is then leaked rather than freed under it).
        for _ in 0..1000 {
            if self.ops.inflight == 0 {
                break;
            }
            let _ = self.enter(Some(Duration::from_millis(10)));
            let mut ready = Vec::new();
            self.reap(&mut ready);
        }
        if self.ops.inflight > 0 {
            // Sends in flight leak their bytes by themselves (`SendBuf`); receive buffers too.
            if let Some(b) = self.ops.bufs.take() {
                std::mem::forget(b);
            }
        }
    }

    /// The ring is being replaced (`reinit`): after `end_ops` in the same process, or after fork in
    /// the child, where the parent's ring carried the requests and none is in flight here. Each
    /// owner is told that requests still counted in flight were cancelled (and submits them again);
    /// received bytes not yet taken stay readable from the old buffers, which the new ring does not
    /// use (it registers buffers of its own when needed).
    pub(super) fn forget_ops(&mut self) {
        self.ops.inflight = 0;
        self.ops.held = 0;
        self.ops.retired = self.ops.bufs.take();
        for index in 0..self.ops.slots.len() {
            let slot = &mut self.ops.slots[index];
            for d in &mut slot.inbox {
                d.old = d.bid.is_some();
            }
            for op in [Op::Recv, Op::Send, Op::Connect, Op::Accept] {
                let was = std::mem::take(&mut slot.inflight[op as usize]);
                if was && op == Op::Send {
                    // Only after fork (in the same process `end_ops` reaped every send): the
                    // parent's ring reads the parent's copy of the bytes, not this one. The owner
                    // resends them from here.
                    if let Some(sb) = slot.send.as_mut() {
                        sb.complete(0);
                    }
                }
                if was && slot.owner.is_some() {
                    slot.inbox.push(Done {
                        op,
                        res: -libc::ECANCELED,
                        bid: None,
                        more: false,
                        old: false,
                    });
                    if !slot.queued {
                        slot.queued = true;
                        self.ops.ready.push(index as u32);
                    }
                }
            }
            if slot.in_use && slot.owner.is_none() {
                self.free_slot(index as u32);
            }
        }
    }
}
