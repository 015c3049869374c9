//! Kernel readiness backends: epoll, io_uring, poll and select, one file each behind one small
//! interface.
//!
//! A backend is told the *kernel interest* of each fd (some of READ, WRITE, CLOSED, plus ET) whenever
//! it changes, and reports ready fds after a wait. Everything above it (which events watch which fd,
//! coalescing changes) lives in `io_map` and `base`. Dispatch is an enum match: no `dyn` on the hot path.

mod epoll;
mod poll;
mod select;
pub(crate) mod uring;

use crate::config::{Features, Method};
use crate::error::{Error, Result};
use crate::event::What;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// One ready fd after a wait.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ready {
    pub fd: RawFd,
    /// Some of READ, WRITE, CLOSED.
    pub what: What,
    /// The kernel says the fd is not open (poll's POLLNVAL, select's EBADF): the base stops watching
    /// it so a closed-but-registered fd cannot make the loop spin.
    pub invalid: bool,
}

/// The readiness mask for an interest (some of READ, WRITE, CLOSED). Linux gives epoll's `EPOLL*`
/// bits and poll's `POLL*` bits the same values, so epoll and io_uring's poll requests share it.
fn mask_of(w: What) -> u32 {
    let mut m = 0;
    if w.contains(What::READ) {
        m |= libc::EPOLLIN as u32;
    }
    if w.contains(What::WRITE) {
        m |= libc::EPOLLOUT as u32;
    }
    if w.contains(What::CLOSED) {
        m |= libc::EPOLLRDHUP as u32;
    }
    m
}

/// What a readiness mask reported by epoll or an io_uring poll means (see [`mask_of`]): a hang-up
/// or an error wakes every direction.
fn what_of_mask(bits: u32) -> What {
    if bits & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
        return What::READ | What::WRITE | What::CLOSED;
    }
    let mut w = What::NONE;
    if bits & libc::EPOLLIN as u32 != 0 {
        w |= What::READ;
    }
    if bits & libc::EPOLLOUT as u32 != 0 {
        w |= What::WRITE;
    }
    if bits & libc::EPOLLRDHUP as u32 != 0 {
        w |= What::CLOSED;
    }
    w
}

pub(crate) enum Backend {
    Epoll(epoll::Epoll),
    Poll(poll::Poll),
    // Boxed: two fd_sets are large, and the hot variants should stay small.
    Select(Box<select::Select>),
    // Boxed: the ring's bookkeeping is large too.
    IoUring(Box<uring::Uring>),
}

impl Backend {
    /// A backend of `method`. `thread_bound`: the base stays on the thread that makes it (see
    /// `Config::run_on_any_thread`), which lets io_uring run completion work only when we wait.
    pub(crate) fn new(method: Method, thread_bound: bool) -> io::Result<Backend> {
        Ok(match method {
            Method::Epoll => Backend::Epoll(epoll::Epoll::new()?),
            Method::Poll => Backend::Poll(poll::Poll::new()),
            Method::Select => Backend::Select(Box::new(select::Select::new())),
            Method::IoUring => Backend::IoUring(Box::new(uring::Uring::new(thread_bound)?)),
        })
    }

    pub(crate) fn method(&self) -> Method {
        match self {
            Backend::Epoll(_) => Method::Epoll,
            Backend::Poll(_) => Method::Poll,
            Backend::Select(_) => Method::Select,
            Backend::IoUring(_) => Method::IoUring,
        }
    }

    /// Refuses what this backend cannot watch, before anything is registered.
    pub(crate) fn check(&self, fd: RawFd, what: What) -> Result<()> {
        let features = self.method().features();
        if what.contains(What::ET) && !features.contains(Features::ET) {
            return Err(Error::Unsupported("edge-triggered events (ET)"));
        }
        if what.contains(What::CLOSED) && !features.contains(Features::EARLY_CLOSE) {
            return Err(Error::Unsupported("early close detection (CLOSED)"));
        }
        if let Backend::Select(_) = self {
            if fd as usize >= select::LIMIT {
                return Err(Error::FdTooLarge {
                    fd,
                    limit: select::LIMIT,
                });
            }
        }
        Ok(())
    }

    /// Whether the backend validates an fd itself when it is first registered (epoll_ctl does);
    /// otherwise the base checks that it is open.
    pub(crate) fn validates_fds(&self) -> bool {
        matches!(self, Backend::Epoll(_))
    }

    /// Changes the kernel interest of `fd` from `old` to `new` (either may be empty).
    #[inline]
    pub(crate) fn update(&mut self, fd: RawFd, old: What, new: What) -> io::Result<()> {
        match self {
            Backend::Epoll(b) => b.update(fd, old, new),
            Backend::Poll(b) => {
                b.update(fd, new);
                Ok(())
            }
            Backend::Select(b) => {
                b.update(fd, new);
                Ok(())
            }
            Backend::IoUring(b) => b.update(fd, new),
        }
    }

    /// Waits up to `timeout` (forever if `None`) and fills `ready`. An interrupted wait (EINTR) is
    /// not an error: it returns with nothing ready.
    #[inline]
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        ready.clear();
        let r = match self {
            Backend::Epoll(b) => b.wait(timeout, ready),
            Backend::Poll(b) => b.wait(timeout, ready),
            Backend::Select(b) => b.wait(timeout, ready),
            Backend::IoUring(b) => b.wait(timeout, ready),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            r => r,
        }
    }

    /// The io_uring backend, for completion-based I/O (`uring::ops`); `None` on the others.
    #[inline]
    pub(crate) fn ring(&mut self) -> Option<&mut uring::Uring> {
        match self {
            Backend::IoUring(b) => Some(b),
            _ => None,
        }
    }

    /// After fork: gives up kernel state shared with the parent. The base then re-registers every fd
    /// with epoll; io_uring keeps its table of interests and polls them all again by itself.
    pub(crate) fn reinit(&mut self) -> io::Result<()> {
        match self {
            Backend::Epoll(b) => b.reinit(),
            Backend::IoUring(b) => b.reinit(),
            Backend::Poll(_) | Backend::Select(_) => Ok(()),
        }
    }
}
