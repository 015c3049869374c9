//! Thin wrappers over the system calls revent makes.
//!
//! This module (with its children) is the only place in the crate that calls into `libc` with `unsafe`.
//! Each wrapper takes plain Rust values, checks what the kernel needs checked, and turns `-1` into an
//! `io::Error`. Everything above it is safe code.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

mod anybox;
pub(crate) mod io_ops;
mod rawbox;
pub(crate) mod uring;

pub(crate) use anybox::AnyBox;
pub(crate) use rawbox::RawBox;

/// Runs a libc call and turns a `-1` result into the thread's `errno` as an `io::Error`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: each use below passes only valid pointers (to live locals or slices of the stated
        // length) and plain integers; the callers' comments say why.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
#[allow(unused_imports)] // used by io_ops
pub(crate) use syscall;

/// Closes `fd`, ignoring errors: by the time we close, there is nothing useful to do with one.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: closing an integer fd has no memory-safety implications; callers own `fd`.
    unsafe {
        libc::close(fd);
    }
}

/// Checks that `fd` is an open descriptor (one `fcntl`).
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    fd >= 0 && syscall!(fcntl(fd, libc::F_GETFD)).is_ok()
}

/// Makes `fd` non-blocking.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    if flags & libc::O_NONBLOCK == 0 {
        syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Sets close-on-exec on `fd`.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    let flags = syscall!(fcntl(fd, libc::F_GETFD))?;
    if flags & libc::FD_CLOEXEC == 0 {
        syscall!(fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC))?;
    }
    Ok(())
}

/// A non-blocking, close-on-exec pipe: `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a live array of two ints, as pipe2 requires.
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    Ok((fds[0], fds[1]))
}

/// Reads into `buf`; used for draining wake-up pipes.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes.
    let n = syscall!(read(fd, buf.as_mut_ptr().cast(), buf.len()))?;
    Ok(n as usize)
}

/// A non-blocking, close-on-exec eventfd (the cross-thread wake-up counter).
pub(crate) fn eventfd() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
    // SAFETY: eventfd succeeded, so `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter. A full counter (EAGAIN) already means "wake up".
pub(crate) fn eventfd_signal(fd: RawFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local u64, as eventfd requires.
    match syscall!(write(fd, (&one as *const u64).cast(), 8)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Resets an eventfd's counter to zero (one `read`); nothing to read is not an error.
pub(crate) fn eventfd_clear(fd: RawFd) {
    let mut n = [0u8; 8];
    let _ = read(fd, &mut n);
}

/// CPUs online on the machine (not this thread's affinity: a loop pinned to one CPU still shares
/// the machine with threads on others).
pub(crate) fn online_cpus() -> usize {
    // SAFETY: sysconf takes a plain integer and returns one.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

/// Nanoseconds on `CLOCK_MONOTONIC` (the clock `Instant` reads).
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

#[inline]
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec; clock_gettime on a clock Linux always has cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Converts an optional wait into epoll/poll's millisecond timeout, rounding up so that a timer is
/// never woken early (which would cost an extra empty iteration).
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) if d.is_zero() => 0,
        Some(d) => {
            let ms = d
                .as_secs()
                .saturating_mul(1000)
                .saturating_add(d.subsec_nanos().div_ceil(1_000_000) as u64);
            ms.min(i32::MAX as u64) as libc::c_int
        }
    }
}

// ---- epoll ----

pub(crate) type EpollEvent = libc::epoll_event;

pub(crate) fn epoll_create() -> io::Result<RawFd> {
    syscall!(epoll_create1(libc::EPOLL_CLOEXEC))
}

pub(crate) fn epoll_ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: `ev` is a live epoll_event (the kernel ignores it for EPOLL_CTL_DEL).
    syscall!(epoll_ctl(epfd, op, fd, &mut ev))?;
    Ok(())
}

pub(crate) fn epoll_wait(
    epfd: RawFd,
    events: &mut [EpollEvent],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let max = events.len().min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `events` is a live, writable slice of at least `max` epoll_events.
    let n = syscall!(epoll_wait(
        epfd,
        events.as_mut_ptr(),
        max,
        timeout_ms(timeout)
    ))?;
    Ok(n as usize)
}

pub(crate) fn empty_epoll_event() -> EpollEvent {
    libc::epoll_event { events: 0, u64: 0 }
}

// ---- poll ----

pub(crate) type PollFd = libc::pollfd;

pub(crate) fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    // SAFETY: `fds` is a live, writable slice of `fds.len()` pollfds.
    let n = syscall!(poll(
        fds.as_mut_ptr(),
        fds.len() as libc::nfds_t,
        timeout_ms(timeout)
    ))?;
    Ok(n as usize)
}

// ---- select ----

/// The largest fd count `select` can watch.
pub(crate) const FD_SETSIZE: usize = libc::FD_SETSIZE;

/// A `fd_set` with safe accessors.
#[derive(Clone, Copy)]
pub(crate) struct FdSet(libc::fd_set);

impl FdSet {
    pub(crate) fn new() -> FdSet {
        // SAFETY: fd_set is plain bits; all-zero is the empty set (what FD_ZERO writes).
        FdSet(unsafe { std::mem::zeroed() })
    }

    pub(crate) fn insert(&mut self, fd: RawFd) {
        assert!((fd as usize) < FD_SETSIZE && fd >= 0);
        // SAFETY: fd is in 0..FD_SETSIZE (checked above), so FD_SET stays inside the set.
        unsafe { libc::FD_SET(fd, &mut self.0) }
    }

    pub(crate) fn remove(&mut self, fd: RawFd) {
        assert!((fd as usize) < FD_SETSIZE && fd >= 0);
        // SAFETY: as in `insert`.
        unsafe { libc::FD_CLR(fd, &mut self.0) }
    }

    pub(crate) fn contains(&self, fd: RawFd) -> bool {
        assert!((fd as usize) < FD_SETSIZE && fd >= 0);
        // SAFETY: as in `insert`.
        unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

/// `select(nfds, r, w, NULL, timeout)`.
pub(crate) fn select(
    nfds: RawFd,
    read: &mut FdSet,
    write: &mut FdSet,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let mut tv = timeout.map(|d| libc::timeval {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        // Round up to a whole microsecond so that a timer is not woken early.
        tv_usec: d.subsec_nanos().div_ceil(1000) as libc::suseconds_t,
    });
    let tvp = match tv.as_mut() {
        Some(tv) => tv as *mut libc::timeval,
        None => std::ptr::null_mut(),
    };
    // SAFETY: the sets are live fd_sets, `tvp` is null or points at the live local `tv`.
    let n = syscall!(select(
        nfds,
        &mut read.0,
        &mut write.0,
        std::ptr::null_mut(),
        tvp
    ))?;
    Ok(n as usize)
}

// ---- signals ----

/// The number of signal numbers (valid signals are 1..NSIG).
pub(crate) const NSIG: usize = 65;

/// A saved signal disposition, restored when revent stops watching that signal.
pub(crate) struct SavedAction(libc::sigaction);

/// Installs `handler` for `signo` (with SA_RESTART, all signals blocked while it runs) and returns the
/// disposition it replaced.
pub(crate) fn install_handler(
    signo: i32,
    handler: extern "C" fn(libc::c_int),
) -> io::Result<SavedAction> {
    // SAFETY: sigaction is plain data; zeroed is a valid starting value that we then fill in.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa.sa_mask` is a live sigset_t.
    unsafe { libc::sigfillset(&mut sa.sa_mask) };
    // SAFETY: zeroed sigaction is valid storage for the old action.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    syscall!(sigaction(signo, &sa, &mut old))?;
    Ok(SavedAction(old))
}

/// Puts back a disposition saved by `install_handler`.
pub(crate) fn restore_handler(signo: i32, saved: &SavedAction) -> io::Result<()> {
    // SAFETY: `saved.0` is the kernel's own description of the earlier action; null old pointer.
    syscall!(sigaction(signo, &saved.0, std::ptr::null_mut()))?;
    Ok(())
}

/// Whether `signo` can have a handler: 1..NSIG, and not SIGKILL or SIGSTOP.
pub(crate) fn signal_is_catchable(signo: i32) -> bool {
    signo > 0 && (signo as usize) < NSIG && signo != libc::SIGKILL && signo != libc::SIGSTOP
}

/// Saves and restores `errno` around work done inside a signal handler.
pub(crate) fn with_errno_preserved(f: impl FnOnce()) {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the thread's life.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: `slot` is valid (above).
    let saved = unsafe { *slot };
    f();
    // SAFETY: `slot` is valid (above).
    unsafe { *slot = saved };
}

/// `write(2)` for use inside a signal handler: async-signal-safe, errors ignored (the pipe being full
/// already means the loop will wake).
pub(crate) fn write_from_handler(fd: RawFd, byte: u8) {
    // SAFETY: writes one byte from a live local; write is async-signal-safe.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

/// The calling process's id, which tells a forked child from its parent.
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// Sends `signo` to the calling thread.
pub(crate) fn raise(signo: i32) -> io::Result<()> {
    // SAFETY: raise takes a plain integer.
    let r = unsafe { libc::raise(signo) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

// ---- sockets ----

/// `accept4` with non-blocking and close-on-exec as asked; returns the new fd and the peer address.
pub(crate) fn accept(
    fd: RawFd,
    nonblocking: bool,
    cloexec: bool,
) -> io::Result<(std::os::fd::OwnedFd, socket2::SockAddr)> {
    use std::os::fd::FromRawFd;
    let mut flags = 0;
    if nonblocking {
        flags |= libc::SOCK_NONBLOCK;
    }
    if cloexec {
        flags |= libc::SOCK_CLOEXEC;
    }
    let mut newfd = -1;
    // SAFETY: `try_init` hands us storage of the right size for any socket address and its length;
    // accept4 writes at most that much.
    let ((), addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            newfd = syscall!(accept4(fd, storage.cast(), len, flags))?;
            Ok(())
        })
    }?;
    // SAFETY: accept4 succeeded, so `newfd` is a fresh descriptor that nothing else owns.
    Ok((unsafe { std::os::fd::OwnedFd::from_raw_fd(newfd) }, addr))
}

/// An ioctl that reports one byte count of a socket queue (FIONREAD, SIOCOUTQ).
pub(crate) fn socket_queue_len(fd: RawFd, request: libc::Ioctl) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: both requests write one int through the pointer, which points to a live local.
    syscall!(ioctl(fd, request, &mut n as *mut libc::c_int))?;
    Ok(n.max(0) as usize)
}

/// The address a socket is bound to (`getsockname`).
pub(crate) fn local_addr(fd: RawFd) -> io::Result<socket2::SockAddr> {
    // SAFETY: `try_init` hands us storage of the right size and its length; getsockname writes at
    // most that much.
    let ((), addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            syscall!(getsockname(fd, storage.cast(), len))?;
            Ok(())
        })
    }?;
    Ok(addr)
}
