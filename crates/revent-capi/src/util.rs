//! `event2/util.h`: evutil, the portable socket, string and time helpers.

use crate::{evutil_socket_t, guard};
use libc::c_int;
use std::os::fd::BorrowedFd;

/// Runs `f` on `fd` as a borrowed descriptor; -1 for a negative fd.
fn with_fd(fd: evutil_socket_t, f: impl FnOnce(BorrowedFd<'_>) -> std::io::Result<()>) -> c_int {
    if fd < 0 {
        return -1;
    }
    // SAFETY: the C caller owns `fd` and keeps it open across this call; it is only borrowed here.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    match f(b) {
        Ok(()) => 0,
        Err(e) => {
            log::warn!("fd {fd}: {e}");
            -1
        }
    }
}

#[no_mangle]
pub extern "C" fn evutil_make_socket_nonblocking(fd: evutil_socket_t) -> c_int {
    guard(-1, || with_fd(fd, |b| revent::util::make_nonblocking(b)))
}
