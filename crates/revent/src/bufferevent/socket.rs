//! Socket bufferevents: a persistent read event and a persistent write event on one socket.
//!
//! Reading: when readable, one `readv` straight into the input's tail, as much as the socket holds up
//! to the high watermark (no size query first). Writing: eagerly, when the bufferevent is flushed
//! before the loop sleeps; the write event is armed only while the kernel refuses more.

use super::{
    after_read, after_write, report, run_cb, BevFlags, BevOptions, BufferEvent, Cb, FlushMode,
    Kind, SUSPEND_RATE,
};
use crate::base::EventBase;
use crate::error::{Error, Result};
use crate::event::{EventId, What};
use socket2::{Domain, SockRef, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};

#[derive(Default)]
pub(crate) struct Socket {
    fd: Option<OwnedFd>,
    read_ev: Option<EventId>,
    write_ev: Option<EventId>,
    read_armed: bool,
    write_armed: bool,
    connecting: bool,
    /// `flush(Finished)`: shut down writing once the output is empty.
    shutdown_pending: bool,
}

impl Socket {
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    pub(crate) fn events(&self) -> impl Iterator<Item = EventId> {
        [self.read_ev, self.write_ev].into_iter().flatten()
    }

    fn release_events(&mut self, base: &mut EventBase) {
        for ev in [self.read_ev.take(), self.write_ev.take()]
            .into_iter()
            .flatten()
        {
            let _ = base.free(ev);
        }
        self.read_armed = false;
        self.write_armed = false;
    }

    /// Lets go of the socket: closed with CLOSE_ON_FREE, otherwise left open for its owner.
    fn release_fd(&mut self, options: BevOptions) {
        if let Some(fd) = self.fd.take() {
            if options.contains(BevOptions::CLOSE_ON_FREE) {
                drop(fd);
            } else {
                let _ = fd.into_raw_fd();
            }
        }
    }

    pub(crate) fn forget_unowned_fd(&mut self, options: BevOptions) {
        if !options.contains(BevOptions::CLOSE_ON_FREE) {
            if let Some(fd) = self.fd.take() {
                let _ = fd.into_raw_fd();
            }
        }
    }

    /// On free: one last attempt to write pending output, then release everything.
    pub(crate) fn close(mut self, base: &mut EventBase, b: &mut super::Bev) {
        if let Some(fd) = &self.fd {
            if !self.connecting && !b.output.is_empty() {
                let _ = b.output.write(fd.as_fd());
            }
        }
        self.release_events(base);
        self.release_fd(b.options);
    }
}

fn sock(base: &mut EventBase, h: BufferEvent) -> Option<&mut Socket> {
    match &mut base.bevs.get_mut(h).ok()?.kind {
        Kind::Socket(s) => Some(s),
        _ => None,
    }
}

/// Installs `fd` (or none), replacing the previous socket and its events.
pub(crate) fn set_fd(base: &mut EventBase, h: BufferEvent, fd: Option<OwnedFd>) -> Result<()> {
    let options = base.bevs.get(h)?.options;
    let priority = base.bevs.get(h)?.priority;
    if let Some(s) = sock(base, h) {
        let mut old = std::mem::take(s);
        old.release_events(base);
        old.release_fd(options);
    }
    let Some(fd) = fd else { return Ok(()) };
    SockRef::from(&fd).set_nonblocking(true)?;
    let raw = fd.as_raw_fd();
    let read_ev = base.new_event(raw, What::READ | What::PERSIST, move |base, f| {
        on_readable(base, h, f.what)
    })?;
    let write_ev = match base.new_event(raw, What::WRITE | What::PERSIST, move |base, f| {
        on_writable(base, h, f.what)
    }) {
        Ok(ev) => ev,
        Err(e) => {
            let _ = base.free(read_ev);
            return Err(e);
        }
    };
    if let Some(p) = priority {
        base.set_priority(read_ev, p)?;
        base.set_priority(write_ev, p)?;
    }
    if let Some(s) = sock(base, h) {
        *s = Socket {
            fd: Some(fd),
            read_ev: Some(read_ev),
            write_ev: Some(write_ev),
            ..Socket::default()
        };
    }
    base.bevs.mark_dirty(h);
    Ok(())
}

/// Arms or disarms the read and write events to match the enable flags and buffers, writing pending
/// output right away when the socket is not known to be full.
pub(crate) fn sync(base: &mut EventBase, h: BufferEvent) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    let (enabled, read_suspended, write_suspended) =
        (b.enabled, b.read_suspended, b.write_suspended);
    let (timeout_read, timeout_write) = (b.timeout_read, b.timeout_write);
    let has_output = !b.output.is_empty();
    let Kind::Socket(s) = &mut b.kind else { return };
    let (Some(read_ev), Some(write_ev)) = (s.read_ev, s.write_ev) else {
        return;
    };

    let want_read = enabled.contains(What::READ) && read_suspended == 0 && !s.connecting;
    if want_read != s.read_armed {
        s.read_armed = want_read;
        let _ = if want_read {
            base.add(read_ev, timeout_read)
        } else {
            base.del(read_ev)
        };
    }

    let Some(s) = sock(base, h) else { return };
    if s.connecting {
        if !s.write_armed {
            s.write_armed = true;
            let _ = base.add(write_ev, timeout_write);
        }
        return;
    }
    let want_write = enabled.contains(What::WRITE) && has_output && write_suspended == 0;
    if want_write && !s.write_armed {
        write_now(base, h, write_ev, timeout_write, false);
    } else if !want_write && s.write_armed {
        s.write_armed = false;
        let _ = base.del(write_ev);
    }
    finish_shutdown(base, h);
}

/// Stops watching what is no longer enabled (no I/O, no callbacks: `disable` calls this).
pub(crate) fn disarm(base: &mut EventBase, h: BufferEvent) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    let enabled = b.enabled;
    let Kind::Socket(s) = &mut b.kind else { return };
    let mut off = [None, None];
    if !enabled.contains(What::READ) && s.read_armed {
        s.read_armed = false;
        off[0] = s.read_ev;
    }
    if !enabled.contains(What::WRITE) && s.write_armed && !s.connecting {
        s.write_armed = false;
        off[1] = s.write_ev;
    }
    for ev in off.into_iter().flatten() {
        let _ = base.del(ev);
    }
}

/// What one write step did.
enum Written {
    /// Wrote this many bytes; `left`: output remains.
    Some { n: usize, left: bool },
    /// The kernel buffer is full.
    Blocked,
    /// Out of write tokens: the direction is suspended until the rate limiter's timer.
    Suspended,
    /// Failed (already reported to the event callback).
    Failed,
    /// No socket.
    Nothing,
}

/// Writes as much of the output as the kernel and the rate limit take. The one place a socket
/// bufferevent writes, for both the eager path and the write event. Forced inline: out of line it
/// cost ~25 instructions per echo round trip (callgrind).
#[inline(always)]
fn write_step(base: &mut EventBase, h: BufferEvent) -> Written {
    let Ok(b) = base.bevs.get_mut(h) else {
        return Written::Nothing;
    };
    let budget = b.write_budget();
    if budget == 0 {
        b.write_suspended |= SUSPEND_RATE;
        super::ratelimit::suspended(base, h);
        return Written::Suspended;
    }
    let super::Bev { output, kind, .. } = b;
    let Kind::Socket(Socket { fd: Some(fd), .. }) = kind else {
        return Written::Nothing;
    };
    match output.write_atmost(fd.as_fd(), budget) {
        Ok(n) => Written::Some {
            n,
            left: !output.is_empty(),
        },
        Err(Error::Io(e)) if is_transient(&e) => Written::Blocked,
        Err(e) => {
            report(base, h, BevFlags::ERROR | BevFlags::WRITING, errno_of(&e));
            Written::Failed
        }
    }
}

/// The eager write: as much as the kernel takes now; arm the write event only for what is left.
/// `defer`: called from an API call (`flush`), so the write callback waits for the loop.
fn write_now(
    base: &mut EventBase,
    h: BufferEvent,
    write_ev: EventId,
    timeout: Option<std::time::Duration>,
    defer: bool,
) {
    match write_step(base, h) {
        Written::Some { n, left } => {
            if left {
                arm_write(base, h, write_ev, timeout);
            }
            after_write(base, h, n, defer);
        }
        Written::Blocked => arm_write(base, h, write_ev, timeout),
        Written::Suspended | Written::Failed | Written::Nothing => {}
    }
}

fn arm_write(
    base: &mut EventBase,
    h: BufferEvent,
    write_ev: EventId,
    timeout: Option<std::time::Duration>,
) {
    if let Some(s) = sock(base, h) {
        if !s.write_armed {
            s.write_armed = true;
            let _ = base.add(write_ev, timeout);
        }
    }
}

fn finish_shutdown(base: &mut EventBase, h: BufferEvent) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    let empty = b.output.is_empty();
    let Kind::Socket(s) = &mut b.kind else { return };
    if s.shutdown_pending && empty {
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
    if what.contains(What::TIMEOUT) {
        report(base, h, BevFlags::TIMEOUT | BevFlags::READING, None);
        return;
    }
    if base.bevs.get(h).map(|b| b.rate.is_some()).unwrap_or(false) {
        super::ratelimit::refresh(base, h);
    }
    let Ok(b) = base.bevs.get_mut(h) else { return };
    let budget = b.read_budget();
    if budget == 0 {
        // At the high watermark or out of read tokens: stop until the user drains or tokens refill.
        if b.read_high > 0 && b.input.len() >= b.read_high {
            b.read_suspended |= super::SUSPEND_WM;
        } else {
            b.read_suspended |= SUSPEND_RATE;
            super::ratelimit::suspended(base, h);
        }
        sync(base, h);
        return;
    }
    let super::Bev { input, kind, .. } = b;
    let Kind::Socket(Socket { fd: Some(fd), .. }) = kind else {
        return;
    };
    match input.read(fd.as_fd(), budget) {
        Ok(0) => report(base, h, BevFlags::EOF | BevFlags::READING, None),
        Ok(n) => after_read(base, h, n),
        Err(Error::Io(e)) if is_transient(&e) => {}
        Err(e) => report(base, h, BevFlags::ERROR | BevFlags::READING, errno_of(&e)),
    }
}

fn on_writable(base: &mut EventBase, h: BufferEvent, what: What) {
    if what.contains(What::TIMEOUT) {
        if let Some(s) = sock(base, h) {
            s.connecting = false;
        }
        report(base, h, BevFlags::TIMEOUT | BevFlags::WRITING, None);
        return;
    }
    let Some(s) = sock(base, h) else { return };
    if s.connecting {
        s.connecting = false;
        let result = match &s.fd {
            Some(fd) => SockRef::from(fd).take_error(),
            None => return,
        };
        match result {
            Ok(None) => {
                super::sync(base, h);
                run_cb(base, h, Cb::Event(BevFlags::CONNECTED), false);
            }
            Ok(Some(e)) | Err(e) => {
                // As for a refusal in `connect`: the socket is useless, stop both directions.
                if let Ok(b) = base.bevs.get_mut(h) {
                    b.enabled = What::NONE;
                }
                super::sync(base, h);
                report(base, h, BevFlags::ERROR, e.raw_os_error());
            }
        }
        return;
    }
    match write_step(base, h) {
        Written::Some { n, .. } => {
            super::sync(base, h);
            after_write(base, h, n, false);
        }
        Written::Suspended => super::sync(base, h),
        Written::Blocked | Written::Failed | Written::Nothing => {}
    }
}

/// Re-adds armed events so that new timeouts take effect.
pub(crate) fn rearm_timeouts(base: &mut EventBase, h: BufferEvent) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    let (tr, tw) = (b.timeout_read, b.timeout_write);
    let Kind::Socket(s) = &b.kind else { return };
    let pairs = [
        (s.read_armed, s.read_ev, tr),
        (s.write_armed, s.write_ev, tw),
    ];
    for (armed, ev, t) in pairs {
        if let (true, Some(ev)) = (armed, ev) {
            let _ = base.del(ev);
            let _ = base.add(ev, t);
        }
    }
}

pub(crate) fn connect(base: &mut EventBase, h: BufferEvent, addr: SocketAddr) -> Result<()> {
    if sock(base, h).ok_or(Error::StaleEvent)?.fd.is_none() {
        let s = socket2::Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            None,
        )?;
        // A socket we create is ours to close.
        let b = base.bevs.get_mut(h)?;
        b.options = b.options | BevOptions::CLOSE_ON_FREE;
        set_fd(base, h, Some(OwnedFd::from(s)))?;
    }
    let s = sock(base, h).ok_or(Error::StaleEvent)?;
    let fd = s.fd.as_ref().ok_or(Error::StaleEvent)?;
    match SockRef::from(fd).connect(&addr.into()) {
        Ok(()) => {
            super::sync(base, h);
            run_cb(base, h, Cb::Event(BevFlags::CONNECTED), true);
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            s.connecting = true;
            super::sync(base, h);
            Ok(())
        }
        // As libevent: a refusal is reported through the event callback, from the loop.
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            if let Ok(b) = base.bevs.get_mut(h) {
                b.errno = e.raw_os_error();
                // Nothing can be read or written on a socket that failed to connect; without this
                // the queued output would be tried and fail again, a second ERROR.
                b.enabled = What::NONE;
            }
            run_cb(base, h, Cb::Event(BevFlags::ERROR), true);
            Ok(())
        }
        Err(e) => Err(Error::Io(e)),
    }
}

pub(crate) fn flush(
    base: &mut EventBase,
    h: BufferEvent,
    what: What,
    mode: FlushMode,
) -> Result<bool> {
    if !what.contains(What::WRITE) {
        return Ok(false);
    }
    let before = base.bevs.get(h)?.output.len();
    if mode == FlushMode::Finished {
        if let Some(s) = sock(base, h) {
            s.shutdown_pending = true;
        }
    }
    if let Some(s) = sock(base, h) {
        if !s.write_armed && !s.connecting && before > 0 {
            if let Some(ev) = s.write_ev {
                let t = base.bevs.get(h)?.timeout_write;
                write_now(base, h, ev, t, true);
            }
        }
    }
    finish_shutdown(base, h);
    let after = base.bevs.get(h).map(|b| b.output.len()).unwrap_or(0);
    Ok(after < before)
}
