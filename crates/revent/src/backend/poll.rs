//! The poll backend: one `pollfd` per watched fd, kept in a dense array with an fd → slot index.

use super::Ready;
use crate::event::What;
use crate::sys::{self, PollFd};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

const NO_SLOT: u32 = u32::MAX;

pub(crate) struct Poll {
    fds: Vec<PollFd>,
    /// fd → index in `fds`.
    slot: Vec<u32>,
}

impl Poll {
    pub(crate) fn new() -> Poll {
        Poll {
            fds: Vec::new(),
            slot: Vec::new(),
        }
    }

    pub(crate) fn update(&mut self, fd: RawFd, new: What) {
        let f = fd as usize;
        if f >= self.slot.len() {
            self.slot.resize(f + 1, NO_SLOT);
        }
        let mut events: libc::c_short = 0;
        if new.contains(What::READ) {
            events |= libc::POLLIN;
        }
        if new.contains(What::WRITE) {
            events |= libc::POLLOUT;
        }
        if new.contains(What::CLOSED) {
            events |= libc::POLLRDHUP;
        }
        let slot = self.slot[f];
        match (slot == NO_SLOT, new.is_empty()) {
            (true, true) => {}
            (true, false) => {
                self.slot[f] = self.fds.len() as u32;
                self.fds.push(PollFd {
                    fd,
                    events,
                    revents: 0,
                });
            }
            (false, false) => self.fds[slot as usize].events = events,
            (false, true) => {
                self.fds.swap_remove(slot as usize);
                if let Some(moved) = self.fds.get(slot as usize) {
                    self.slot[moved.fd as usize] = slot;
                }
                self.slot[f] = NO_SLOT;
            }
        }
    }

    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        let mut left = sys::poll(&mut self.fds, timeout)?;
        for p in &self.fds {
            if left == 0 {
                break;
            }
            let r = p.revents;
            if r == 0 {
                continue;
            }
            left -= 1;
            let mut what = What::NONE;
            if r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                what |= What::READ;
            }
            if r & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                what |= What::WRITE;
            }
            if r & (libc::POLLRDHUP | libc::POLLHUP) != 0 {
                what |= What::CLOSED;
            }
            ready.push(Ready {
                fd: p.fd,
                what,
                invalid: r & libc::POLLNVAL != 0,
            });
        }
        Ok(())
    }
}
