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
//!   arrives, so a quiet connection holds no memory. When the bufferevent's callback runs, the
//!   bytes go into its input ([`Uring::recv_into`]: a buffer at least half full is handed over
//!   whole and replaced by fresh memory, a less full one copied), and the buffer goes straight back
//!   ([`Uring::recycle`]). The ring is made when the first receive is submitted: [`RING_BUFS`]
//!   buffers of [`RING_BUF_SIZE`] bytes (4 MiB), per base, and stays that size: a buffer handed
//!   to an input is replaced. What inputs hold is bounded by their high watermarks; a handed-over
//!   buffer is at least half full, so an input's memory is at most twice its bytes.
//! - A send points the kernel at the front of the bufferevent's output: a first chunk of at least
//!   [`SHARE_FROM`] bytes is shared (the slot's `SendBuf` holds an `Arc` of its memory, which turns
//!   read-only), fewer bytes are copied into the slot. The output keeps them (frozen at the
//!   front) until the completion says how many went out. The slot, not the bufferevent, keeps the
//!   memory alive until the send completes: a bufferevent freed with a send in flight leaves its
//!   slot behind, cancelled, and the slot is released only when its last request has completed.
//!   Dropping the ring waits for every request to end first (see `Uring::drop`); one that never
//!   ends leaks its memory rather than free it under the kernel.

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
/// Received buffers at least this full are handed to the input whole rather than copied. Half the
/// buffer: an input then holds at most twice its bytes in memory.
pub(crate) const LEND_FROM: usize = RING_BUF_SIZE / 2;
/// The most bytes one send takes from an output buffer.
const MAX_SEND: usize = 256 * 1024;
/// A send of a first chunk of at least this many bytes shares them with the output rather than
/// copies them: a copy of fewer costs less than sharing (an allocation, and the chunk turned
/// read-only).
const SHARE_FROM: usize = 4096;
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
    /// The receive buffer holding the bytes, to read with [`Uring::recv_into`] and give back with
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
    /// Received buffers handed to an input whole (`recv_into`), for tests.
    lent: u64,
    /// Sends of bytes shared with their buffer rather than copied, for tests.
    shared: u64,
    /// Multishot receives submitted, for tests.
    multishots: u64,
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

    /// Multishot receives submitted so far (tests tell them from one-shot ones by this).
    #[cfg(test)]
    pub(crate) fn multishots(&self) -> u64 {
        self.ops.multishots
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
        self.ops.multishots += u64::from(multi);
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

    /// Submits a send of up to `max` bytes from the front of `src` on `fd` (with the next wait):
    /// a first chunk of at least [`SHARE_FROM`] bytes is shared with `src`, less is copied into the
    /// slot. Returns how many (0: nothing to send, or a send is already in flight: one at a time
    /// per slot, so the bytes go out in order). The bytes stay in `src`: the owner drains what the
    /// completion says was sent (the owner freezes `src`'s front meanwhile).
    pub(crate) fn send(
        &mut self,
        s: OpSlot,
        fd: RawFd,
        src: &mut Evbuffer,
        max: usize,
    ) -> crate::error::Result<usize> {
        let Some(slot) = self.slot_mut(s) else {
            return Ok(0);
        };
        let sb = slot.send.get_or_insert_with(SendBuf::new);
        if sb.in_flight() {
            return Ok(0);
        }
        let max = max.min(MAX_SEND);
        let n = match src.share_front(SHARE_FROM, max) {
            Some(front) => {
                let n = front.bytes().len();
                if sb.share(front).is_err() {
                    return Ok(0);
                }
                self.ops.shared += 1;
                n
            }
            None => {
                let Some(buf) = sb.buffer() else {
                    return Ok(0);
                };
                src.copy_front_to(buf, max, SHARE_FROM)?
            }
        };
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

    /// Appends the bytes a receive completion delivered to `dst`. A buffer at least [`LEND_FROM`]
    /// full becomes `dst`'s last chunk as it is, and the ring gets fresh memory in its place (a
    /// fuller buffer costs more to copy than the memory handing it over wastes); fewer bytes are
    /// copied. Either way the buffer is still to be given back with [`recycle`](Self::recycle).
    pub(crate) fn recv_into(&mut self, d: &Done, dst: &mut Evbuffer) -> crate::error::Result<()> {
        let (Some(bid), Ok(n)) = (d.bid, usize::try_from(d.res)) else {
            return Ok(());
        };
        let bufs = if d.old {
            &mut self.ops.retired
        } else {
            &mut self.ops.bufs
        };
        let Some(bufs) = bufs else { return Ok(()) };
        if n >= LEND_FROM && !d.old {
            if let Ok(fresh) = crate::buffer::chunk_mem(RING_BUF_SIZE) {
                match bufs.swap(bid, fresh) {
                    Ok(mem) => {
                        self.ops.lent += 1;
                        return dst.add_mem(mem, n);
                    }
                    Err(fresh) => drop(fresh),
                }
            }
        }
        dst.add(bufs.data(bid, n))
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
        if let (Some(bid), Some(b)) = (bid, &mut self.ops.bufs) {
            // Every request with a buffer is on the current ring: the previous one's all ended.
            b.received(bid);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use crate::backend::uring::tests::ring;

    /// A slot whose owner is a made-up event: the tests take its completions themselves.
    fn slot(u: &mut Uring) -> OpSlot {
        u.op_slot(EventId {
            index: 0,
            generation: 0,
        })
    }

    /// Full buffers become the input's chunks and the ring goes on with fresh memory in their
    /// place, many times more often than it has buffers; small receives are copied. The input keeps
    /// everything (nothing drained) while later receives land, so a buffer the kernel could still
    /// write into would show as changed bytes.
    #[test]
    fn full_buffers_are_handed_over_and_small_ones_copied() {
        let Some(mut u) = ring() else { return };
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let s = slot(&mut u);
        let mut input = Evbuffer::new();
        let mut expected = Vec::new();
        let (mut big, mut armed) = (0u64, false);
        for round in 0..usize::from(RING_BUFS) + 16 {
            let msg: Vec<u8> = (0..RING_BUF_SIZE).map(|k| (k * 31 + round) as u8).collect();
            b.write_all(&msg).unwrap();
            b.write_all(&round.to_le_bytes()).unwrap();
            expected.extend_from_slice(&msg);
            expected.extend_from_slice(&round.to_le_bytes());
            while input.len() < expected.len() {
                if !armed {
                    u.recv(s, a.as_raw_fd(), 0, true).unwrap();
                    armed = true;
                }
                let mut ready = Vec::new();
                u.wait(Some(Duration::from_secs(5)), &mut ready).unwrap();
                // As the base does: the owners of slots with completions are told (and the wait
                // blocks again only once they have been).
                let mut told = 0;
                u.drain_ready(|_| told += 1);
                assert_eq!(told, 1, "round {round}: no completion");
                let dones = u.take(s);
                for d in &dones {
                    assert!(d.res > 0, "round {round}: {d:?}");
                    armed &= d.more;
                    big += u64::from(d.res as usize >= LEND_FROM);
                    u.recv_into(d, &mut input).unwrap();
                    u.recycle(d);
                }
            }
        }
        assert_eq!(input.len(), expected.len());
        assert!(
            input.pullup_all().unwrap() == expected.as_slice(),
            "bytes changed"
        );
        assert!(big > u64::from(RING_BUFS), "only {big} full buffers");
        assert_eq!(
            u.ops.lent, big,
            "every full buffer handed over, nothing else"
        );
    }

    /// A large first chunk is sent from the buffer's memory, a small one from a copy; short sends
    /// go on from where they stopped, and the peer gets every byte once, in order, while the
    /// buffer still holds them until they are drained.
    #[test]
    fn large_chunks_are_sent_shared_and_small_ones_copied() {
        let Some(mut u) = ring() else { return };
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let s = slot(&mut u);
        let mut out = Evbuffer::new();
        let mut expected = Vec::new();
        for (i, size) in [100usize, 300_000, 5000, 64 * 1024, 7]
            .into_iter()
            .enumerate()
        {
            let msg: Vec<u8> = (0..size).map(|k| (k * 13 + i) as u8).collect();
            expected.extend_from_slice(&msg);
            let mut extra = Evbuffer::new();
            extra.add(&msg).unwrap();
            out.add_buffer(&mut extra).unwrap(); // one chunk per message
        }
        let mut got = Vec::new();
        let mut reader = &b;
        let mut buf = vec![0u8; 1 << 16];
        let mut sends = 0;
        while got.len() < expected.len() {
            if u.send_pending(s) == 0 && !out.is_empty() {
                sends += u64::from(u.send(s, a.as_raw_fd(), &mut out, usize::MAX).unwrap() > 0);
            }
            let mut ready = Vec::new();
            u.wait(Some(Duration::from_millis(50)), &mut ready).unwrap();
            u.drain_ready(|_| {});
            for d in u.take(s) {
                assert!(d.res > 0, "{d:?}");
                out.drain(d.res as usize).unwrap();
                if u.send_pending(s) > 0 {
                    u.resend(s, a.as_raw_fd()).unwrap();
                }
            }
            loop {
                match std::io::Read::read(&mut reader, &mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
        }
        assert!(got == expected, "the peer got other bytes");
        assert!(out.is_empty());
        // 100 copied alone (not with the large chunk behind it); the 300,000-byte chunk in two
        // sends of at most 256 KiB, 5000 and 64 KiB in one each: four shared; 7 copied.
        assert_eq!((sends, u.ops.shared), (6, 4), "sends, shared ones");
    }
}
