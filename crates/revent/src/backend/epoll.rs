//! The epoll backend (Linux): O(1) per ready fd, edge-triggering, EPOLLRDHUP for early close.

use super::{mask_of, what_of_mask, Ready};
use crate::event::What;
use crate::sys::{self, EpollEvent};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The events buffer starts small and doubles when a wait fills it, up to this many.
const MAX_EVENTS: usize = 4096;

pub(crate) struct Epoll {
    epfd: RawFd,
    events: Vec<EpollEvent>,
}

fn kernel_bits(w: What) -> u32 {
    let mut bits = mask_of(w);
    if w.contains(What::ET) {
        bits |= libc::EPOLLET as u32;
    }
    bits
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        Ok(Epoll {
            epfd: sys::epoll_create()?,
            events: vec![sys::empty_epoll_event(); 32],
        })
    }

    pub(crate) fn update(&mut self, fd: RawFd, old: What, new: What) -> io::Result<()> {
        let (op, bits) = match (old.is_empty(), new.is_empty()) {
            (true, true) => return Ok(()),
            (true, false) => (libc::EPOLL_CTL_ADD, kernel_bits(new)),
            (false, false) => (libc::EPOLL_CTL_MOD, kernel_bits(new)),
            (false, true) => (libc::EPOLL_CTL_DEL, 0),
        };
        match sys::epoll_ctl(self.epfd, op, fd, bits) {
            Ok(()) => Ok(()),
            // The fd was closed and reopened behind our back: the registration is gone (MOD) or still
            // there (ADD). Do what was meant, as libevent does.
            Err(e) if op == libc::EPOLL_CTL_MOD && e.raw_os_error() == Some(libc::ENOENT) => {
                sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, bits)
            }
            Err(e) if op == libc::EPOLL_CTL_ADD && e.raw_os_error() == Some(libc::EEXIST) => {
                sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_MOD, fd, bits)
            }
            // Removing an fd that was already closed: the kernel dropped it by itself.
            Err(e)
                if op == libc::EPOLL_CTL_DEL
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EBADF | libc::ENOENT | libc::EPERM)
                    ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        let n = sys::epoll_wait(self.epfd, &mut self.events, timeout)?;
        for ev in &self.events[..n] {
            let bits = ev.events;
            let fd = ev.u64 as RawFd;
            ready.push(Ready {
                fd,
                what: what_of_mask(bits),
                invalid: false,
            });
        }
        if n == self.events.len() && n < MAX_EVENTS {
            self.events.resize(n * 2, sys::empty_epoll_event());
        }
        Ok(())
    }

    pub(crate) fn reinit(&mut self) -> io::Result<()> {
        let fresh = sys::epoll_create()?;
        sys::close(self.epfd);
        self.epfd = fresh;
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        sys::close(self.epfd);
    }
}
