//! Socket bufferevents on an io_uring base: completion-based I/O (libevent's IOCP bufferevents,
//! `bufferevent_async.c`, are the model).
//!
//! Instead of waiting for readiness and then calling `readv`/`writev`, the bufferevent keeps a
//! receive on the ring while reading is wanted, and hands its output to the ring as a send; both
//! go to the kernel with the loop's one `io_uring_enter` per iteration, and their completions come
//! back through one internal event per bufferevent (`io_ev`), which runs them as a callback of the
//! loop at the bufferevent's priority (`backend::uring::ops` has the mechanics and who owns which
//! memory when).
//!
//! - Reading: with no rate limit, and no high watermark or one at least the buffer ring's size
//!   away, a multishot receive that stays armed; otherwise one receive at a time of at most what
//!   the watermark and the rate allow. A ring buffer at least half full becomes a chunk of the
//!   input as it is (the ring gets fresh memory in its place); fewer bytes are copied into the
//!   input. Disabling reading cancels the receive; bytes it delivered before the cancellation took
//!   effect are still added to the input (never lost), so the input can exceed the high watermark
//!   by at most one ring buffer per completion that was already on its way.
//! - Writing: one send at a time, so the bytes go out in order; a short send is resubmitted with
//!   its rest before anything newer. A first chunk of 4 KiB or more is sent from the output's own
//!   memory (shared with the send, read-only from then on), less is copied. The bytes stay in the
//!   output (its front frozen) until the completion says how many went out, so its length and the
//!   write callback behave as on epoll.
//! - Timeouts are two timer events, reset by every completion in their direction; connecting waits
//!   for writability with a poll request on the ring, then reads `SO_ERROR` as the epoll path does.
//! - Freeing cancels what is in flight at once (so the socket can close) and leaves the memory of a
//!   send in flight with the ring until its completion.
//! - After fork, requests the parent armed stay in the parent's ring: a receive there takes bytes
//!   from a socket both processes hold even while the parent's loop is not running, and the
//!   child's reinit submits its own again (a send in flight is sent again from the child's copy).
//!   As on epoll, where two processes reading one socket split its bytes, a child should close
//!   the parent's connections rather than use them.

use super::bev::{
    self, read_done, report, run_queued, write_done, Cx, Store, SUSPEND_RATE, SUSPEND_WM,
};
use super::kind::Kind;
use super::socket::Socket;
use super::{ratelimit, BevFlags, BufferEvent};
use crate::backend::uring::{Op, OpSlot, RING_BUFS, RING_BUF_SIZE};
use crate::base::{Core, EventBase};
use crate::buffer::BufferEnd;
use crate::error::Result;
use crate::event::{EventId, What};
use socket2::SockRef;

/// A multishot receive is armed under a high watermark while the watermark is at least this far
/// away: what the buffer ring holds in all. Between two prepare phases the kernel can fill no more
/// buffers than the ring has (it gets them back only when this loop's callbacks have run), so the
/// input cannot pass the watermark before the prepare phase has cancelled the multishot receive
/// for a one-shot of the exact rest.
const MULTI_FROM: usize = RING_BUFS as usize * RING_BUF_SIZE;

/// The state of the bufferevent's receive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Recv {
    Idle,
    Armed,
    /// A cancellation was asked for; the final completion is still to come.
    Cancelling,
}

pub(crate) struct RingIo {
    slot: OpSlot,
    /// Completions land here.
    io_ev: EventId,
    recv: Recv,
    sending: bool,
    connect_armed: bool,
    read_timer: bool,
    write_timer: bool,
    /// Bytes arrived while reading was disabled (a receive completes before its cancellation takes
    /// effect): they wait in the input, and the read callback is told when reading is enabled
    /// again, as on epoll they would be read then.
    held_back: bool,
    /// The send froze the output's front (it was not frozen already).
    froze: bool,
    /// The send in flight is being cancelled (writing was disabled).
    cancelling_send: bool,
    /// The armed receive's size limit (0: a multishot one, no limit but a buffer's).
    recv_len: u32,
}

impl RingIo {
    pub(crate) fn io_event(&self) -> EventId {
        self.io_ev
    }

    /// Cancels what is in flight (submitted at once) and frees the completion event.
    pub(crate) fn release(self, core: &mut Core) {
        if let Some(ring) = core.ring() {
            ring.op_release(self.slot);
        }
        let _ = core.free(self.io_ev);
    }

    pub(crate) fn sending(&self) -> bool {
        self.sending
    }
}

/// Whether new socket bufferevents on this base do their I/O on the ring.
pub(crate) fn enabled(core: &mut Core) -> bool {
    core.ring().is_some()
}

/// The events of a ring-mode socket: read and write timeout timers, and the completion event with
/// its op slot.
pub(crate) fn install(core: &mut Core, h: BufferEvent) -> Result<(EventId, EventId, RingIo)> {
    let read_ev = core.new_event(-1, What::PERSIST, move |base, _| on_timeout(base, h, true))?;
    let write_ev = core.new_event(-1, What::PERSIST, move |base, _| on_timeout(base, h, false))?;
    // Persistent: activating it costs no deletion afterwards.
    let io_ev = core.new_internal(-1, What::PERSIST, move |base, _| on_io(base, h))?;
    let Some(ring) = core.ring() else {
        for ev in [read_ev, write_ev, io_ev] {
            let _ = core.free(ev);
        }
        return Err(crate::error::Error::Unsupported(
            "completion-based I/O needs an io_uring base",
        ));
    };
    let slot = ring.op_slot(io_ev);
    Ok((
        read_ev,
        write_ev,
        RingIo {
            slot,
            io_ev,
            recv: Recv::Idle,
            sending: false,
            connect_armed: false,
            read_timer: false,
            write_timer: false,
            held_back: false,
            froze: false,
            cancelling_send: false,
            recv_len: 0,
        },
    ))
}

fn sock<'c>(cx: &'c mut Cx<'_>, h: BufferEvent) -> Option<&'c mut Socket> {
    sock_in(cx.st, h)
}

/// The socket, borrowing only the store (the core stays usable beside it).
fn sock_in(st: &mut Store, h: BufferEvent) -> Option<&mut Socket> {
    match &mut st.get_mut(h).ok()?.kind {
        Kind::Socket(s) => Some(s),
        _ => None,
    }
}

/// Brings the requests in line with the enable flags, suspensions and buffers.
pub(crate) fn sync(cx: &mut Cx, h: BufferEvent) {
    sync_with(cx, h, true);
}

/// `sync`, optionally leaving a new receive to the prepare phase: after completions, when the
/// callbacks they trigger (which may change the watermarks) have not run yet.
fn sync_with(cx: &mut Cx, h: BufferEvent, arm_recv: bool) {
    let Ok(b) = cx.st.get(h) else { return };
    if b.rate.is_some() {
        ratelimit::refresh(cx, h);
    }
    let Ok(b) = cx.st.get_mut(h) else { return };
    let wants_read = b.wants_read();
    let write_enabled = b.enabled.contains(What::WRITE);
    let budget = b.read_budget();
    let max_read = b.max_read;
    // Multishot where nothing needs counting between receives: no rate limit, and no high
    // watermark or one this iteration cannot reach (see `MULTI_FROM`); nor a cap on one read.
    let multi =
        b.rate.is_none() && (b.read_high == 0 || budget >= MULTI_FROM) && max_read == usize::MAX;
    let (timeout_read, timeout_write) = (b.timeout_read, b.timeout_write);
    let Kind::Socket(s) = &mut b.kind else { return };
    let (Some(fd), Some(read_ev), Some(write_ev)) = (s.raw_fd(), s.read_ev, s.write_ev) else {
        return;
    };
    let connecting = s.connecting;
    let Some(r) = s.ring.as_mut() else { return };
    let slot = r.slot;
    let want_read = wants_read && !connecting;
    if want_read && r.held_back {
        r.held_back = false;
        read_done(cx, h, 0);
        return sync_with(cx, h, arm_recv);
    }
    // A receive armed for more than the watermark or the rate now allows (they changed since)
    // is cancelled and armed again with the right size once it ends.
    let want_len = if multi {
        0
    } else {
        budget.min(max_read).min(RING_BUF_SIZE) as u32
    };
    let too_big = if r.recv_len == 0 {
        !multi
    } else {
        !multi && r.recv_len > want_len
    };
    if want_read && r.recv == Recv::Armed && too_big {
        r.recv = Recv::Cancelling;
        if let Some(ring) = cx.core.ring() {
            ring.cancel(slot, Op::Recv);
        }
        return sync_with(cx, h, arm_recv);
    }
    if want_read && r.recv == Recv::Idle && !arm_recv {
        cx.st.mark_dirty(h);
    } else if want_read && r.recv == Recv::Idle {
        if budget == 0 {
            // At the high watermark or out of read tokens: as the readiness path decides.
            let Ok(b) = cx.st.get_mut(h) else { return };
            if b.read_high > 0 && b.input.get().len() >= b.read_high {
                b.read_suspended |= SUSPEND_WM;
            } else {
                b.read_suspended |= SUSPEND_RATE;
                ratelimit::suspended(cx, h);
            }
        } else {
            let len = want_len;
            let armed = cx
                .core
                .ring()
                .is_some_and(|ring| ring.recv(slot, fd, len, multi).is_ok());
            if let Some(r) = sock(cx, h).and_then(|s| s.ring.as_mut()) {
                if armed {
                    r.recv = Recv::Armed;
                    r.recv_len = len;
                }
            }
            if !armed {
                report(
                    cx,
                    h,
                    BevFlags::ERROR | BevFlags::READING,
                    Some(libc::ENOMEM),
                );
                return;
            }
        }
    } else if !want_read && r.recv == Recv::Armed {
        r.recv = Recv::Cancelling;
        if let Some(ring) = cx.core.ring() {
            ring.cancel(slot, Op::Recv);
        }
    }
    let Some(r) = sock_in(cx.st, h).and_then(|s| s.ring.as_mut()) else {
        return;
    };
    // The read timeout runs while reading is wanted, as a readiness read event stays added: a
    // receive that completed and waits for the prepare phase to be armed again keeps it running
    // (each completion starts it over), rather than stopping and starting it every trip.
    let reading = r.recv == Recv::Armed || (want_read && r.recv == Recv::Idle);
    if reading && !r.read_timer && timeout_read.is_some() {
        r.read_timer = true;
        let _ = cx.core.add(read_ev, timeout_read);
    } else if !reading && r.read_timer {
        r.read_timer = false;
        let _ = cx.core.del(read_ev);
    }

    if connecting {
        if !r.connect_armed {
            r.connect_armed = true;
            let ok = cx
                .core
                .ring()
                .is_some_and(|ring| ring.connect_poll(slot, fd).is_ok());
            arm_write_timer(cx, h, write_ev, timeout_write, true);
            if !ok {
                report(cx, h, BevFlags::ERROR, Some(libc::ENOMEM));
            }
        }
        return;
    }
    if !r.sending {
        send_now(cx, h);
    } else if !write_enabled && !r.cancelling_send {
        // Disabled: nothing more goes out (what the kernel already took stays taken).
        r.cancelling_send = true;
        if let Some(ring) = cx.core.ring() {
            ring.cancel(slot, Op::Send);
        }
    }
    let Some(sk) = sock(cx, h) else { return };
    let shutdown = sk.shutdown_pending;
    let Some(r) = sk.ring.as_mut() else { return };
    let sending = r.sending && write_enabled;
    if sending != r.write_timer {
        arm_write_timer(cx, h, write_ev, timeout_write, sending);
    }
    if shutdown {
        finish_shutdown(cx, h);
    }
}

fn arm_write_timer(
    cx: &mut Cx,
    h: BufferEvent,
    ev: EventId,
    timeout: Option<std::time::Duration>,
    on: bool,
) {
    if on && timeout.is_none() {
        return; // nothing to arm (and an armed timer is switched off by `on == false`)
    }
    let Some(r) = sock(cx, h).and_then(|s| s.ring.as_mut()) else {
        return;
    };
    if on && !r.write_timer && timeout.is_some() {
        r.write_timer = true;
        let _ = cx.core.add(ev, timeout);
    } else if !on && r.write_timer {
        r.write_timer = false;
        let _ = cx.core.del(ev);
    }
}

/// Hands the output to the ring, if writing is wanted and no send is in flight.
fn send_now(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    if !b.wants_write() {
        return;
    }
    let budget = b.write_budget();
    if budget == 0 {
        b.write_suspended |= SUSPEND_RATE;
        ratelimit::suspended(cx, h);
        return;
    }
    let budget = budget.min(b.max_write);
    let crate::bufferevent::bev::Bev { output, kind, .. } = b;
    let Kind::Socket(s) = kind else { return };
    let (Some(fd), Some(r)) = (s.raw_fd(), s.ring.as_mut()) else {
        return;
    };
    if r.sending {
        return;
    }
    let Some(ring) = cx.core.ring() else { return };
    let slot = r.slot;
    let output = output.get_mut();
    match ring.send(slot, fd, output, budget) {
        Ok(0) => {}
        Ok(_) => {
            r.sending = true;
            // The bytes stay in the output until sent: nobody may take them out meanwhile.
            r.froze = !output.is_frozen(BufferEnd::Start);
            output.freeze(BufferEnd::Start);
        }
        Err(e) => {
            let errno = match &e {
                crate::error::Error::Io(e) => e.raw_os_error(),
                _ => Some(libc::EIO),
            };
            report(cx, h, BevFlags::ERROR | BevFlags::WRITING, errno);
        }
    }
}

/// `flush(Finished)`: shut down writing once everything handed over has been sent.
pub(crate) fn finish_shutdown(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    let empty = b.output.get().is_empty();
    let Kind::Socket(s) = &mut b.kind else { return };
    let sending = s.ring.as_ref().is_some_and(|r| r.sending);
    if s.shutdown_pending && empty && !sending && !s.connecting {
        s.shutdown_pending = false;
        if let Some(fd) = &s.fd {
            let _ = SockRef::from(fd).shutdown(std::net::Shutdown::Write);
        }
    }
}

/// Stops what was just disabled: the receive is cancelled (its final completion still comes).
pub(crate) fn disarm(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    let enabled = b.enabled;
    let Kind::Socket(s) = &mut b.kind else { return };
    let read_ev = s.read_ev;
    let Some(r) = s.ring.as_mut() else { return };
    if !enabled.contains(What::READ) && r.recv == Recv::Armed {
        r.recv = Recv::Cancelling;
        let slot = r.slot;
        if r.read_timer {
            r.read_timer = false;
            if let Some(ev) = read_ev {
                let _ = cx.core.del(ev);
            }
        }
        if let Some(ring) = cx.core.ring() {
            ring.cancel(slot, Op::Recv);
        }
    }
}

/// Re-adds armed timers so that new timeouts take effect.
pub(crate) fn rearm_timeouts(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    let (tr, tw) = (b.timeout_read, b.timeout_write);
    let Kind::Socket(s) = &mut b.kind else { return };
    let (Some(read_ev), Some(write_ev)) = (s.read_ev, s.write_ev) else {
        return;
    };
    let Some(r) = s.ring.as_mut() else { return };
    let reading = r.recv == Recv::Armed;
    let writing = r.sending || r.connect_armed;
    for (active, flag, ev, t) in [
        (reading, &mut r.read_timer, read_ev, tr),
        (writing, &mut r.write_timer, write_ev, tw),
    ] {
        let _ = cx.core.del(ev);
        *flag = active && t.is_some();
        if *flag {
            let _ = cx.core.add(ev, t);
        }
    }
}

fn on_timeout(base: &mut EventBase, h: BufferEvent, read: bool) {
    let mut cx = bev::cx(base);
    if read {
        report(&mut cx, h, BevFlags::TIMEOUT | BevFlags::READING, None);
    } else {
        if let Some(s) = sock(&mut cx, h) {
            if s.connecting {
                s.connecting = false;
                if let Some(r) = s.ring.as_mut() {
                    let slot = r.slot;
                    if let Some(ring) = cx.core.ring() {
                        ring.cancel(slot, Op::Connect);
                    }
                }
            }
        }
        report(&mut cx, h, BevFlags::TIMEOUT | BevFlags::WRITING, None);
    }
    run_queued(base);
}

fn on_io(base: &mut EventBase, h: BufferEvent) {
    io_done(&mut bev::cx(base), h);
    run_queued(base);
}

fn io_done(cx: &mut Cx, h: BufferEvent) {
    let Some(r) = sock(cx, h).and_then(|s| s.ring.as_ref()) else {
        return;
    };
    let slot = r.slot;
    let Some(ring) = cx.core.ring() else { return };
    let dones = ring.take(slot);
    let (mut wrote, mut sends_only) = (false, true);
    for d in &dones {
        wrote |= d.op != Op::Recv;
        sends_only &= d.op == Op::Send;
        match d.op {
            Op::Recv => received(cx, h, d),
            Op::Send => sent(cx, h, d.res),
            Op::Connect => connected(cx, h, d.res),
            Op::Accept => {} // listeners only
        }
    }
    if let Some(ring) = cx.core.ring() {
        ring.give_back(slot, dones);
    }
    // After a send: send what is next, finish a shutdown, queued now (submitted with the next
    // wait) so that neither waits for another change. The receive is armed again by the prepare
    // phase, once the callbacks these completions trigger have run (one may change the
    // watermarks).
    // Most sends end with nothing left to do (an echo's output is empty again). Then sends alone
    // need no prepare phase either: what their callbacks change through the handle marks the
    // bufferevent itself, and only a rate limit (refilled there) depends on them otherwise.
    let mut rate = false;
    let follow_up = wrote
        && cx.st.get(h).is_ok_and(|b| {
            rate = b.rate.is_some();
            !b.output.get().is_empty()
                || matches!(&b.kind, Kind::Socket(s)
                    if s.shutdown_pending
                        || s.ring.as_ref().is_some_and(|r| r.write_timer || r.sending))
        });
    if follow_up {
        sync_with(cx, h, false);
    } else if !sends_only || rate {
        cx.st.mark_dirty(h);
    }
}

fn received(cx: &mut Cx, h: BufferEvent, d: &crate::backend::uring::Done) {
    let (read_ev, timeout) = match cx.st.get_mut(h) {
        Ok(b) => (
            match &b.kind {
                Kind::Socket(s) => s.read_ev,
                _ => None,
            },
            b.timeout_read,
        ),
        Err(_) => (None, None),
    };
    let mut reading = false;
    if let Some(r) = sock(cx, h).and_then(|s| s.ring.as_mut()) {
        if !d.more {
            r.recv = Recv::Idle;
        }
        reading = r.read_timer;
    }
    if d.res > 0 {
        let n = d.res as usize;
        let (Ok(b), Some(ring)) = (cx.st.get_mut(h), cx.core.ring()) else {
            return;
        };
        let added = b.input.get_mut().by_owner(|i| ring.recv_into(d, i));
        ring.recycle(d);
        if added.is_err() {
            report(
                cx,
                h,
                BevFlags::ERROR | BevFlags::READING,
                Some(libc::ENOMEM),
            );
            return;
        }
        // Activity in this direction: the read timeout starts over.
        if let (true, Some(ev)) = (reading, read_ev) {
            let _ = cx.core.add(ev, timeout);
        }
        let enabled = cx.st.get(h).is_ok_and(|b| b.enabled.contains(What::READ));
        if enabled {
            read_done(cx, h, n);
        } else {
            if cx.st.get(h).is_ok_and(|b| b.rate.is_some()) {
                ratelimit::consumed(cx, h, n, true);
            }
            if let Some(r) = sock_in(cx.st, h).and_then(|s| s.ring.as_mut()) {
                r.held_back = true;
            }
        }
    } else if let Some(ring) = cx.core.ring() {
        ring.recycle(d);
        match -d.res {
            0 => report(cx, h, BevFlags::EOF | BevFlags::READING, None),
            // Out of ring buffers (the next iteration submits again, when they are back) or
            // cancelled (by a disable, or the ring being replaced).
            libc::ENOBUFS | libc::ECANCELED => {}
            e => report(cx, h, BevFlags::ERROR | BevFlags::READING, Some(e)),
        }
    }
}

fn sent(cx: &mut Cx, h: BufferEvent, res: i32) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    let crate::bufferevent::bev::Bev { output, kind, .. } = b;
    let Kind::Socket(s) = kind else { return };
    let Some(fd) = s.raw_fd() else { return };
    let Some(r) = s.ring.as_mut() else { return };
    r.sending = false;
    let cancelled = std::mem::take(&mut r.cancelling_send);
    let slot = r.slot;
    let output = output.get_mut();
    if std::mem::take(&mut r.froze) {
        output.unfreeze(BufferEnd::Start);
    }
    if res > 0 {
        // The bufferevent's own removal: no notice through the watch (see `Evbuffer::by_owner`).
        let _ = output.by_owner(|o| o.drain(res as usize));
    }
    let left = cx.core.ring().map_or(0, |ring| ring.send_pending(slot));
    // The rest is resent unless writing was disabled meanwhile (then the output keeps it, and
    // the next send starts from there).
    if left > 0 && !cancelled && (res >= 0 || res == -libc::ECANCELED) {
        // A short send (or one cancelled when the ring was replaced): the rest goes first.
        let again = cx.core.ring().map(|ring| ring.resend(slot, fd));
        if matches!(again, Some(Ok(()))) {
            r.sending = true;
            r.froze = !output.is_frozen(BufferEnd::Start);
            output.freeze(BufferEnd::Start);
        }
    }
    let still_sending = r.sending;
    let write_timer = r.write_timer;
    if res > 0 {
        if write_timer {
            // Progress in this direction: the write timeout starts over.
            let (ev, timeout) = (s.write_ev, cx.st.get(h).ok().and_then(|b| b.timeout_write));
            if let Some(ev) = ev {
                let _ = cx.core.add(ev, timeout);
            }
        }
        if still_sending {
            // Part went out, the rest is on its way: the write callback waits for it (on epoll,
            // what the kernel did not take would still be in the output too).
            if cx.st.get(h).is_ok_and(|b| b.rate.is_some()) {
                ratelimit::consumed(cx, h, res as usize, false);
            }
        } else {
            write_done(cx, h, res as usize);
        }
    } else if res < 0 && res != -libc::ECANCELED {
        report(cx, h, BevFlags::ERROR | BevFlags::WRITING, Some(-res));
    }
}

fn connected(cx: &mut Cx, h: BufferEvent, res: i32) {
    let Some(s) = sock(cx, h) else { return };
    if let Some(r) = s.ring.as_mut() {
        r.connect_armed = false;
    }
    if !s.connecting || res == -libc::ECANCELED {
        return; // timed out meanwhile, or replaced
    }
    s.connecting = false;
    let result = match &s.fd {
        Some(fd) => SockRef::from(fd).take_error(),
        None => return,
    };
    match result {
        Ok(None) if res >= 0 => {
            bev::sync(cx, h);
            bev::run_cb(cx, h, bev::Cb::Event(BevFlags::CONNECTED));
        }
        other => {
            let errno = match other {
                Ok(Some(e)) | Err(e) => e.raw_os_error(),
                Ok(None) => Some(-res),
            };
            // As for a refusal in `connect`: the socket is useless, stop both directions.
            if let Ok(b) = cx.st.get_mut(h) {
                b.enabled = What::NONE;
            }
            bev::sync(cx, h);
            report(cx, h, BevFlags::ERROR, errno);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BevOptions, Config, ConfigFlags, LoopFlags, Method};
    use std::cell::Cell;
    use std::io::{ErrorKind, Write};
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    /// An io_uring base with completion-based bufferevents, or `None` (test skipped) where the
    /// kernel refuses io_uring; CI=true fails instead.
    fn base() -> Option<EventBase> {
        let mut cfg = Config::new();
        for m in Method::ALL {
            if m != Method::IoUring {
                cfg.avoid_method(m);
            }
        }
        cfg.set_flag(ConfigFlags::IGNORE_ENV);
        match EventBase::with_config(&cfg) {
            Ok(b) => Some(b),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "io_uring unavailable ({e}) and CI=true"
                );
                None
            }
        }
    }

    fn multishots(base: &mut EventBase) -> u64 {
        bev::cx(base).core.ring().map_or(0, |r| r.multishots())
    }

    fn byte(k: usize) -> u8 {
        (k % 251) as u8
    }

    /// A reading bufferevent under high watermark `high` whose read callback leaves the input be,
    /// its peer (non-blocking), and the most the input held at a read callback.
    fn reader(base: &mut EventBase, high: usize) -> (BufferEvent, UnixStream, Rc<Cell<usize>>) {
        let (a, peer) = UnixStream::pair().unwrap();
        peer.set_nonblocking(true).unwrap();
        let bev = BufferEvent::socket(base, Some(a.into()), BevOptions::CLOSE_ON_FREE).unwrap();
        bev.set_watermark(base, What::READ, 0, high).unwrap();
        let most = Rc::new(Cell::new(0));
        let m = Rc::clone(&most);
        bev.set_read_cb(base, move |base, bev| {
            m.set(m.get().max(bev.input(base).unwrap().len()));
        })
        .unwrap();
        bev.enable(base, What::READ).unwrap();
        base.run(LoopFlags::ONCE | LoopFlags::NONBLOCK).unwrap();
        (bev, peer, most)
    }

    /// Sends the peer's bytes `sent..total` as the socket takes them while the loop runs, until
    /// the input holds `until` bytes; then checks they are `from..` of the stream, in order.
    fn fill(
        base: &mut EventBase,
        (bev, peer): (BufferEvent, &mut UnixStream),
        sent: &mut usize,
        total: usize,
        (from, until): (usize, usize),
    ) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while bev.input(base).unwrap().len() < until {
            assert!(Instant::now() < deadline, "stuck with {sent} bytes sent");
            while *sent < total {
                let chunk: Vec<u8> = (*sent..total.min(*sent + 65536)).map(byte).collect();
                match peer.write(&chunk) {
                    Ok(n) => *sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            base.run(LoopFlags::ONCE | LoopFlags::NONBLOCK).unwrap();
        }
        let got = bev.input(base).unwrap().pullup_all().unwrap().to_vec();
        let want: Vec<u8> = (from..from + until).map(byte).collect();
        assert!(
            got == want,
            "{} bytes, not the {until} of the stream from {from} on",
            got.len()
        );
    }

    /// With the high watermark further away than the buffer ring holds, the receive is multishot
    /// (armed once, not once per completion); nearer, one-shot receives of the rest fill the input
    /// to the watermark exactly, never past it, as on epoll. Drained, it is multishot again.
    #[test]
    fn a_distant_high_watermark_keeps_a_multishot_receive_and_is_never_passed() {
        let Some(mut base) = base() else { return };
        let high = MULTI_FROM + 100_000;
        let (bev, mut peer, most) = reader(&mut base, high);
        assert_eq!(
            multishots(&mut base),
            1,
            "far from the watermark: multishot"
        );
        let (total, mut sent) = (high + MULTI_FROM, 0);
        fill(&mut base, (bev, &mut peer), &mut sent, total, (0, high));
        assert_eq!(
            most.get(),
            high,
            "the input reached the watermark and stopped there"
        );
        assert_eq!(
            multishots(&mut base),
            1,
            "near the watermark: one-shot receives"
        );

        bev.input(&mut base).unwrap().drain(high).unwrap();
        fill(
            &mut base,
            (bev, &mut peer),
            &mut sent,
            total,
            (high, total - high),
        );
        assert_eq!(multishots(&mut base), 2, "drained: multishot again");
        assert!(most.get() <= high);
    }

    /// A high watermark nearer than the buffer ring's size: one receive at a time, each of at most
    /// the rest, and the input stops at the watermark.
    #[test]
    fn a_near_high_watermark_receives_one_at_a_time() {
        let Some(mut base) = base() else { return };
        let high = 100_000;
        let (bev, mut peer, most) = reader(&mut base, high);
        let mut sent = 0;
        fill(&mut base, (bev, &mut peer), &mut sent, 3 * high, (0, high));
        assert_eq!(most.get(), high);
        assert_eq!(multishots(&mut base), 0);
    }
}
