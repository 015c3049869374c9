//! The select backend: two fd_sets, copied for each wait. Only fds below FD_SETSIZE.

use super::Ready;
use crate::event::What;
use crate::sys::{self, FdSet};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// fds must be below this.
pub(crate) const LIMIT: usize = sys::FD_SETSIZE;

pub(crate) struct Select {
    read: FdSet,
    write: FdSet,
    /// Every fd with any interest, to find the highest and to check after EBADF.
    watched: Vec<RawFd>,
    max_fd: RawFd,
}

impl Select {
    pub(crate) fn new() -> Select {
        Select {
            read: FdSet::new(),
            write: FdSet::new(),
            watched: Vec::new(),
            max_fd: -1,
        }
    }

    pub(crate) fn update(&mut self, fd: RawFd, new: What) {
        if new.contains(What::READ) {
            self.read.insert(fd);
        } else {
            self.read.remove(fd);
        }
        if new.contains(What::WRITE) {
            self.write.insert(fd);
        } else {
            self.write.remove(fd);
        }
        let pos = self.watched.iter().position(|&f| f == fd);
        match (pos, new.is_empty()) {
            (None, false) => {
                self.watched.push(fd);
                self.max_fd = self.max_fd.max(fd);
            }
            (Some(i), true) => {
                self.watched.swap_remove(i);
                if fd == self.max_fd {
                    self.max_fd = self.watched.iter().copied().max().unwrap_or(-1);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        let mut r = self.read;
        let mut w = self.write;
        match sys::select(self.max_fd + 1, &mut r, &mut w, timeout) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                // Some watched fd was closed behind our back; select will not say which. Report the
                // closed ones as invalid so the base stops watching them.
                for &fd in &self.watched {
                    if !sys::fd_is_open(fd) {
                        ready.push(Ready {
                            fd,
                            what: What::READ | What::WRITE,
                            invalid: true,
                        });
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        for &fd in &self.watched {
            let mut what = What::NONE;
            if r.contains(fd) {
                what |= What::READ;
            }
            if w.contains(fd) {
                what |= What::WRITE;
            }
            if !what.is_empty() {
                ready.push(Ready {
                    fd,
                    what,
                    invalid: false,
                });
            }
        }
        Ok(())
    }
}
