//! Socket bufferevents: a persistent read event and a persistent write event on one socket.
//!
//! Reading: when readable, one `readv` straight into the input's tail, as much as the socket holds up
//! to the high watermark (no size query first). On epoll and io_uring the read event is
//! edge-triggered (see `set_fd`): a read that fills its offer, or follows the peer's close, comes
//! back by itself after the next wait. Writing: eagerly, in the prepare phase; the write event is armed only while the
//! kernel refuses more, and is level-triggered.

use super::bev::{
    self, read_done, report, run_queued, write_done, Bev, Cb, Cx, SUSPEND_RATE, SUSPEND_WM,
};
use super::kind::Kind;
use super::ring::{self, RingIo};
use super::{ratelimit, BevFlags, BevOptions, BufferEvent, FlushMode};
use crate::base::{Core, EventBase};
use crate::error::{Error, Result};
use crate::event::{EventId, What};
use socket2::{Domain, SockRef, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Socket {
    pub(super) fd: Option<OwnedFd>,
    /// On epoll, poll and select, and on io_uring with readiness-based I/O: the socket's read and
    /// write events. With completion-based I/O (`ring`): timers for the read and write timeouts.
    pub(super) read_ev: Option<EventId>,
    pub(super) write_ev: Option<EventId>,
    read_armed: bool,
    write_armed: bool,
    /// The read event is told of edges only (epoll): a read that fills its offer, or follows the
    /// peer's close, reads again by itself (see `readable`).
    edge: bool,
    pub(super) connecting: bool,
    /// `flush(Finished)`: shut down writing once the output is empty.
    pub(super) shutdown_pending: bool,
    /// Completion-based I/O on an io_uring base (`ring.rs`).
    pub(super) ring: Option<Box<RingIo>>,
}

impl Socket {
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    pub(crate) fn events(&self) -> impl Iterator<Item = EventId> {
        [
            self.read_ev,
            self.write_ev,
            self.ring.as_ref().map(|r| r.io_event()),
        ]
        .into_iter()
        .flatten()
    }

    fn release_events(&mut self, core: &mut Core) {
        // First: the ring's requests are cancelled (and queued ones submitted) before the socket
        // they name can be closed.
        if let Some(r) = self.ring.take() {
            r.release(core);
        }
        for ev in [self.read_ev.take(), self.write_ev.take()]
            .into_iter()
            .flatten()
        {
            let _ = core.free(ev);
        }
        self.read_armed = false;
        self.write_armed = false;
    }

    /// Lets go of the socket: closed with CLOSE_ON_FREE, otherwise handed back to its owner.
    fn release_fd(&mut self, options: BevOptions) -> Option<OwnedFd> {
        let fd = self.fd.take()?;
        if options.contains(BevOptions::CLOSE_ON_FREE) {
            drop(fd);
            None
        } else {
            Some(fd)
        }
    }

    /// The base is dropped with the bufferevent still there: a socket it does not own stays open,
    /// as libevent leaves it (nobody can take it back now).
    pub(crate) fn forget_unowned_fd(&mut self, options: BevOptions) {
        if !options.contains(BevOptions::CLOSE_ON_FREE) {
            if let Some(fd) = self.fd.take() {
                let _ = fd.into_raw_fd();
            }
        }
    }

    /// On free: one last attempt to write pending output, then release everything. Returns the
    /// socket when the bufferevent does not own it.
    pub(crate) fn destruct(mut self, cx: &mut Cx, b: &mut Bev) -> Option<OwnedFd> {
        // With a send in flight on the ring, the output must wait for it: writing it now could
        // put it on the wire before the bytes in flight.
        let in_flight = self.ring.as_ref().is_some_and(|r| r.sending());
        if let Some(fd) = &self.fd {
            if !self.connecting && !in_flight && !b.output.get().is_empty() {
                let _ = b.output().write(fd.as_fd());
            }
        }
        self.release_events(cx.core);
        self.release_fd(b.options)
    }
}

fn sock(b: &mut Bev) -> Option<&mut Socket> {
    match &mut b.kind {
        Kind::Socket(s) => Some(s),
        _ => None,
    }
}

fn is_ring(cx: &mut Cx, h: BufferEvent) -> bool {
    matches!(cx.st.get(h).map(|b| &b.kind), Ok(Kind::Socket(s)) if s.ring.is_some())
}

fn not_a_socket() -> Error {
    Error::Unsupported("a socket operation on a bufferevent without a socket")
}

/// Installs `fd` (or none), replacing the previous socket and its events. Returns the previous
/// socket when the bufferevent did not own it (no CLOSE_ON_FREE).
pub(crate) fn set_fd(cx: &mut Cx, h: BufferEvent, fd: Option<OwnedFd>) -> Result<Option<OwnedFd>> {
    let Cx { core, st } = cx;
    let b = st.get_mut(h)?;
    let (options, priority) = (b.options, b.priority);
    let s = sock(b).ok_or_else(not_a_socket)?;
    let mut old = std::mem::take(s);
    old.release_events(core);
    let previous = old.release_fd(options);
    let Some(fd) = fd else {
        return Ok(previous);
    };
    SockRef::from(&fd).set_nonblocking(true)?;
    let raw = fd.as_raw_fd();
    // Only stream sockets: a bufferevent may also sit on a pipe or a terminal (tmux puts them on
    // its panes' ptys), where a receive on the ring fails with ENOTSOCK.
    if ring::enabled(core) && SockRef::from(&fd).r#type().is_ok_and(|t| t == Type::STREAM) {
        let (read_ev, write_ev, r) = ring::install(core, h)?;
        if let Some(p) = priority {
            for ev in [read_ev, write_ev, r.io_event()] {
                core.set_priority(ev, p)?;
            }
        }
        if let Some(s) = st.get_mut(h).ok().and_then(sock) {
            *s = Socket {
                fd: Some(fd),
                read_ev: Some(read_ev),
                write_ev: Some(write_ev),
                ring: Some(Box::new(r)),
                ..Socket::default()
            };
        }
        st.mark_dirty(h);
        return Ok(previous);
    }
    // Edge-triggered reading on epoll (and on io_uring's readiness polls, where a bufferevent does
    // not use the ring itself): a level-triggered fd is polled by the kernel once more after every
    // event it reports (`ep_item_poll`), ~6% of a loaded HTTP server's CPU; a level-triggered
    // io_uring poll is re-armed after each. Edges also let a program's own ET event share the fd
    // (see `IoMap::insert`). The reader needs
    // to hear of the peer's close (CLOSED) to know a short read left an end of file behind. The
    // write event stays level-triggered: while it is armed, the fd is.
    let edge = core.edges();
    let read_what = if edge {
        What::READ | What::CLOSED | What::PERSIST
    } else {
        What::READ | What::PERSIST
    };
    let read_ev = core.new_event(raw, read_what, move |base, f| on_readable(base, h, f.what))?;
    let edge = edge && core.edge_ok(read_ev)?;
    let write_ev = match core.new_event(raw, What::WRITE | What::PERSIST, move |base, f| {
        on_writable(base, h, f.what)
    }) {
        Ok(ev) => ev,
        Err(e) => {
            let _ = core.free(read_ev);
            return Err(e);
        }
    };
    if let Some(p) = priority {
        core.set_priority(read_ev, p)?;
        core.set_priority(write_ev, p)?;
    }
    if let Some(s) = st.get_mut(h).ok().and_then(sock) {
        *s = Socket {
            fd: Some(fd),
            read_ev: Some(read_ev),
            write_ev: Some(write_ev),
            edge,
            ..Socket::default()
        };
    }
    st.mark_dirty(h);
    Ok(previous)
}

/// Adds the read event. On an edge-triggered fd that the kernel already watches for reading (the
/// event was deleted and is added again before the change reached the kernel), no new edge will
/// come for data already there: the reader is run once to look.
fn arm_read(core: &mut Core, s: &Socket, ev: EventId, timeout: Option<Duration>) -> Result<()> {
    let unseen = s.edge
        && s.raw_fd()
            .is_some_and(|fd| core.kernel_watches(fd, What::READ));
    core.add(ev, timeout)?;
    if unseen {
        let _ = core.activate(ev, What::READ, 1);
    }
    Ok(())
}

/// An event that could not be added (the backend refuses the fd: a regular file on epoll, an fd
/// closed behind the bufferevent's back, no kernel memory) is that direction's error, as a failed
/// read or write is: nothing would ever wake it, and a silent wait is worse than libevent's -1
/// from `bufferevent_enable` (the enable here is deferred, so the event callback hears of it).
fn report_unwatchable(cx: &mut Cx, h: BufferEvent, flags: BevFlags, e: &Error) {
    report(cx, h, BevFlags::ERROR | flags, errno_of(e));
}

/// Arms or disarms the read and write events to match the enable flags and buffers, writing pending
/// output right away when the socket is not known to be full.
pub(crate) fn sync(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    if matches!(&b.kind, Kind::Socket(s) if s.ring.is_some()) {
        return ring::sync(cx, h);
    }
    let want_read = b.wants_read();
    let want_write = b.wants_write();
    let (timeout_read, timeout_write) = (b.timeout_read, b.timeout_write);
    let Some(s) = sock(b) else { return };
    let (Some(read_ev), Some(write_ev)) = (s.read_ev, s.write_ev) else {
        return;
    };
    let want_read = want_read && !s.connecting;
    if want_read != s.read_armed {
        s.read_armed = want_read;
        if want_read {
            if let Err(e) = arm_read(cx.core, s, read_ev, timeout_read) {
                s.read_armed = false;
                // Reporting disables reading, and its sync finishes what this one would have.
                return report_unwatchable(cx, h, BevFlags::READING, &e);
            }
        } else {
            let _ = cx.core.del(read_ev);
        }
    }
    if s.connecting {
        if !s.write_armed {
            s.write_armed = true;
            if let Err(e) = cx.core.add(write_ev, timeout_write) {
                // The connection's outcome can never be seen: a failed connect, as in `writable`.
                s.write_armed = false;
                s.connecting = false;
                b.enabled = What::NONE;
                return report_unwatchable(cx, h, BevFlags::WRITING, &e);
            }
        }
        return;
    }
    let shutdown = s.shutdown_pending;
    if want_write && !s.write_armed {
        // The eager write, on the bufferevent already in hand.
        let w = write_step(b);
        after_write(cx, h, w);
    } else if !want_write && s.write_armed {
        s.write_armed = false;
        let _ = cx.core.del(write_ev);
    }
    if shutdown {
        finish_shutdown(cx, h);
    }
}

/// Stops watching what is no longer enabled (no I/O, no callbacks: `disable` calls this).
pub(crate) fn disarm(cx: &mut Cx, h: BufferEvent) {
    if is_ring(cx, h) {
        return ring::disarm(cx, h);
    }
    let Cx { core, st } = cx;
    let Ok(b) = st.get_mut(h) else { return };
    let enabled = b.enabled;
    let Some(s) = sock(b) else { return };
    if !enabled.contains(What::READ) && s.read_armed {
        s.read_armed = false;
        if let Some(ev) = s.read_ev {
            let _ = core.del(ev);
        }
    }
    if !enabled.contains(What::WRITE) && s.write_armed && !s.connecting {
        s.write_armed = false;
        if let Some(ev) = s.write_ev {
            let _ = core.del(ev);
        }
    }
}

/// What one write step did.
enum Written {
    /// Wrote this many bytes; `left`: output remains; `after`: the rate limit or a write callback
    /// wants to hear of it (`write_done`).
    Some { n: usize, left: bool, after: bool },
    /// The kernel buffer is full.
    Blocked,
    /// Out of write tokens: writing is suspended until they refill.
    RateOut,
    /// The write failed: report it.
    Failed(Error),
    /// No socket.
    Stopped,
}

/// Writes as much of `b`'s output as the kernel and the rate limit take. The one place a socket
/// bufferevent writes, for both the eager path and the write event. It works on the bufferevent the
/// caller already looked up and reports through its result, so that the usual write (no rate
/// limit, no write callback) costs no second lookup. Forced inline: out of line it cost ~25
/// instructions per echo round trip (callgrind).
#[inline(always)]
fn write_step(b: &mut Bev) -> Written {
    let budget = b.write_budget().min(b.max_write);
    if budget == 0 {
        b.write_suspended |= SUSPEND_RATE;
        return Written::RateOut;
    }
    let after = b.has_write_followup();
    let Bev { output, kind, .. } = b;
    let Kind::Socket(Socket { fd: Some(fd), .. }) = kind else {
        return Written::Stopped;
    };
    let output = output.get_mut();
    // The bufferevent's own write: no notice through the watch (see `Evbuffer::by_owner`).
    match output.by_owner(|o| o.write_atmost(fd.as_fd(), budget)) {
        Ok(n) => Written::Some {
            n,
            left: !output.is_empty(),
            after,
        },
        Err(Error::Io(e)) if is_transient(&e) => Written::Blocked,
        Err(e) => Written::Failed(e),
    }
}

/// What follows a write step beyond the bufferevent's own state: arming the write event for what
/// is left, the rate limit, the write callback, an error report.
#[inline(always)]
fn after_write(cx: &mut Cx, h: BufferEvent, w: Written) {
    match w {
        Written::Some { n, left, after } => {
            if left {
                arm_write(cx, h);
            }
            if after {
                write_done(cx, h, n);
            }
        }
        Written::Blocked => arm_write(cx, h),
        Written::RateOut => ratelimit::suspended(cx, h),
        Written::Failed(e) => report(cx, h, BevFlags::ERROR | BevFlags::WRITING, errno_of(&e)),
        Written::Stopped => {}
    }
}

/// The eager write: as much as the kernel takes now; arm the write event only for what is left.
fn write_now(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    let w = write_step(b);
    after_write(cx, h, w);
}

fn arm_write(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    let timeout = b.timeout_write;
    if let Some(s) = sock(b) {
        if let (false, Some(ev)) = (s.write_armed, s.write_ev) {
            s.write_armed = true;
            if let Err(e) = cx.core.add(ev, timeout) {
                s.write_armed = false;
                report_unwatchable(cx, h, BevFlags::WRITING, &e);
            }
        }
    }
}

fn finish_shutdown(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    let empty = b.output.get().is_empty();
    let Some(s) = sock(b) else { return };
    // Not while connecting: Linux takes a shutdown of a socket in SYN_SENT as an abort. The sync
    // after the connect completes finishes it.
    if s.shutdown_pending && empty && !s.connecting {
        s.shutdown_pending = false;
        if let Some(fd) = &s.fd {
            let _ = SockRef::from(fd).shutdown(std::net::Shutdown::Write);
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn errno_of(e: &Error) -> Option<i32> {
    match e {
        Error::Io(e) | Error::BadFd(_, e) => e.raw_os_error(),
        _ => Some(libc::EINVAL),
    }
}

fn on_readable(base: &mut EventBase, h: BufferEvent, what: What) {
    readable(&mut bev::cx(base), h, what);
    run_queued(base);
}

fn readable(cx: &mut Cx, h: BufferEvent, what: What) {
    if what.contains(What::TIMEOUT) {
        report(cx, h, BevFlags::TIMEOUT | BevFlags::READING, None);
        return;
    }
    let Ok(mut b) = cx.st.get_mut(h) else { return };
    if b.rate.is_some() {
        ratelimit::refresh(cx, h);
        let Ok(again) = cx.st.get_mut(h) else { return };
        b = again;
    }
    let budget = b.read_budget();
    if budget == 0 {
        // At the high watermark or out of read tokens: stop until the user drains or tokens refill.
        if b.read_high > 0 && b.input.get().len() >= b.read_high {
            b.read_suspended |= SUSPEND_WM;
        } else {
            b.read_suspended |= SUSPEND_RATE;
            ratelimit::suspended(cx, h);
        }
        sync(cx, h);
        return;
    }
    let budget = budget.min(b.max_read);
    let Bev { input, kind, .. } = b;
    let Kind::Socket(Socket {
        fd: Some(fd),
        edge,
        read_ev,
        ..
    }) = kind
    else {
        return;
    };
    let (edge, read_ev) = (*edge, *read_ev);
    match input
        .get_mut()
        .by_owner(|i| i.read_offered(fd.as_fd(), budget, edge))
    {
        Ok((0, _)) => report(cx, h, BevFlags::EOF | BevFlags::READING, None),
        Ok((n, offered)) => {
            // Edge-triggered: no new edge for what this read left behind. A full read may have
            // left data; after the peer's close, the end of file is behind the data (and carried
            // along, as the kernel will not say it again). After the next wait, behind the others.
            if edge && (n == offered || what.contains(What::CLOSED)) {
                if let Some(ev) = read_ev {
                    cx.core
                        .activate_later(ev, What::READ | (what & What::CLOSED));
                }
            }
            read_done(cx, h, n)
        }
        Err(Error::Io(e)) if is_transient(&e) => {}
        Err(e) => report(cx, h, BevFlags::ERROR | BevFlags::READING, errno_of(&e)),
    }
}

fn on_writable(base: &mut EventBase, h: BufferEvent, what: What) {
    writable(&mut bev::cx(base), h, what);
    run_queued(base);
}

fn writable(cx: &mut Cx, h: BufferEvent, what: What) {
    if what.contains(What::TIMEOUT) {
        if let Some(s) = cx.st.get_mut(h).ok().and_then(sock) {
            s.connecting = false;
        }
        report(cx, h, BevFlags::TIMEOUT | BevFlags::WRITING, None);
        return;
    }
    let Some(s) = cx.st.get_mut(h).ok().and_then(sock) else {
        return;
    };
    if s.connecting {
        s.connecting = false;
        let result = match &s.fd {
            Some(fd) => SockRef::from(fd).take_error(),
            None => return,
        };
        match result {
            Ok(None) => {
                bev::sync(cx, h);
                bev::run_cb(cx, h, Cb::Event(BevFlags::CONNECTED));
            }
            Ok(Some(e)) | Err(e) => {
                // As for a refusal in `connect`: the socket is useless, stop both directions.
                if let Ok(b) = cx.st.get_mut(h) {
                    b.enabled = What::NONE;
                }
                bev::sync(cx, h);
                report(cx, h, BevFlags::ERROR, e.raw_os_error());
            }
        }
        return;
    }
    let Ok(b) = cx.st.get_mut(h) else { return };
    match write_step(b) {
        Written::Some { n, after, .. } => {
            bev::sync(cx, h);
            if after {
                write_done(cx, h, n);
            }
        }
        Written::Blocked => {}
        Written::RateOut => {
            ratelimit::suspended(cx, h);
            bev::sync(cx, h);
        }
        Written::Failed(e) => {
            report(cx, h, BevFlags::ERROR | BevFlags::WRITING, errno_of(&e));
            bev::sync(cx, h);
        }
        Written::Stopped => bev::sync(cx, h),
    }
}

/// Re-adds armed events so that new timeouts take effect.
pub(crate) fn rearm_timeouts(cx: &mut Cx, h: BufferEvent) {
    if is_ring(cx, h) {
        return ring::rearm_timeouts(cx, h);
    }
    let Cx { core, st } = cx;
    let Ok(b) = st.get_mut(h) else { return };
    let (tr, tw): (Option<Duration>, Option<Duration>) = (b.timeout_read, b.timeout_write);
    let Some(s) = sock(b) else { return };
    // As libevent: the events stay added, only their timers change (no interest change reaches
    // the kernel, and no readiness waiting to run is dropped).
    for (armed, ev, t) in [
        (s.read_armed, s.read_ev, tr),
        (s.write_armed, s.write_ev, tw),
    ] {
        if let (true, Some(ev)) = (armed, ev) {
            let _ = match t {
                Some(_) => core.add(ev, t),
                None => core.remove_timer(ev),
            };
        }
    }
}

/// An API call: the result reaches the event callback from the loop.
pub(crate) fn connect(cx: &mut Cx, h: BufferEvent, addr: SocketAddr) -> Result<()> {
    let b = cx.st.get_mut(h)?;
    if sock(b).ok_or_else(not_a_socket)?.fd.is_none() {
        let s = socket2::Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            None,
        )?;
        // A socket we create is ours to close.
        b.options |= BevOptions::CLOSE_ON_FREE;
        set_fd(cx, h, Some(OwnedFd::from(s)))?;
    }
    let s = cx
        .st
        .get_mut(h)
        .ok()
        .and_then(sock)
        .ok_or_else(not_a_socket)?;
    let fd = s.fd.as_ref().ok_or_else(not_a_socket)?;
    match SockRef::from(fd).connect(&addr.into()) {
        Ok(()) => {
            cx.st.mark_dirty(h);
            bev::defer(cx, h, Cb::Event(BevFlags::CONNECTED));
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            s.connecting = true;
            cx.st.mark_dirty(h);
            bev::deferring(cx, |cx| bev::sync(cx, h));
            Ok(())
        }
        // As libevent: a refusal is reported through the event callback, from the loop.
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            if let Ok(b) = cx.st.get_mut(h) {
                b.errno = e.raw_os_error();
                // Nothing can be read or written on a socket that failed to connect; without this
                // the queued output would be tried and fail again, a second ERROR.
                b.enabled = What::NONE;
            }
            bev::defer(cx, h, Cb::Event(BevFlags::ERROR));
            Ok(())
        }
        Err(e) => Err(Error::Io(e)),
    }
}

/// An API call: callbacks this write would run are deferred to the loop.
pub(crate) fn flush(cx: &mut Cx, h: BufferEvent, what: What, mode: FlushMode) -> Result<bool> {
    if !what.contains(What::WRITE) {
        return Ok(false);
    }
    let b = cx.st.get_mut(h)?;
    let before = b.output.get().len();
    let Some(s) = sock(b) else { return Ok(false) };
    if mode == FlushMode::Finished {
        s.shutdown_pending = true;
    }
    if s.ring.is_some() {
        // Hands the output to the ring now (it goes with the next wait) and shuts down when done.
        // The bytes leave the output when the send completes: handing them over is the "moved".
        let was_sending = s.ring.as_ref().is_some_and(|r| r.sending());
        bev::deferring(cx, |cx| ring::sync(cx, h));
        let Ok(b) = cx.st.get(h) else {
            return Ok(false);
        };
        let sending =
            matches!(&b.kind, Kind::Socket(s) if s.ring.as_ref().is_some_and(|r| r.sending()));
        return Ok(b.output.get().len() < before || (sending && !was_sending));
    }
    if !s.write_armed && !s.connecting && before > 0 {
        bev::deferring(cx, |cx| write_now(cx, h));
    }
    finish_shutdown(cx, h);
    let after = cx.st.get(h).map(|b| b.output.get().len()).unwrap_or(0);
    Ok(after < before)
}
