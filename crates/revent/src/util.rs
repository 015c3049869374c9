//! evutil: helpers libevent users reach for.

use std::io;

/// Sends signal `signo` to the calling thread (C's `raise`).
///
/// ```no_run
/// revent::util::raise(libc::SIGUSR1).unwrap();
/// ```
pub fn raise(signo: i32) -> io::Result<()> {
    crate::sys::raise(signo)
}

/// Makes `fd` non-blocking (`evutil_make_socket_nonblocking`).
pub fn make_nonblocking(fd: impl std::os::fd::AsFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    crate::sys::set_nonblocking(fd.as_fd().as_raw_fd())
}

/// Sets close-on-exec on `fd` (`evutil_make_socket_closeonexec`).
pub fn make_closeonexec(fd: impl std::os::fd::AsFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    crate::sys::set_cloexec(fd.as_fd().as_raw_fd())
}
