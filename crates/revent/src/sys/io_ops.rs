//! Byte I/O syscalls for buffers: read, readv, write, writev, sendfile.
//!
//! `pread` needs no wrapper: file segments own their fd as a `std::fs::File`, whose `read_exact_at`
//! is safe.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use super::syscall;

/// Most iovecs passed to one call. Linux's IOV_MAX is 1024; a few dozen chunks already make a write far
/// larger than a socket buffer.
pub(crate) const MAX_IOV: usize = 64;

/// `readv(fd, bufs)`.
pub(crate) fn readv(fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    let cnt = bufs.len().min(MAX_IOV) as libc::c_int;
    // SAFETY: IoSliceMut is guaranteed ABI-compatible with `struct iovec` on Unix; `bufs` is a live
    // slice of at least `cnt` of them, each describing a live, writable byte slice.
    let n = syscall!(readv(fd, bufs.as_mut_ptr().cast::<libc::iovec>(), cnt))?;
    Ok(n as usize)
}

/// `readv` into `buf`, then into `spill`, which need not be initialized (a stack area for what
/// may not fit, not worth zeroing per read). Returns the count and the part of `spill` the kernel
/// filled.
pub(crate) fn read_spilling<'s>(
    fd: RawFd,
    buf: &mut [u8],
    spill: &'s mut [MaybeUninit<u8>],
) -> io::Result<(usize, &'s [u8])> {
    let iov = [
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
        libc::iovec {
            iov_base: spill.as_mut_ptr().cast(),
            iov_len: spill.len(),
        },
    ];
    // SAFETY: both iovecs describe live, writable memory for the whole call (`buf` and `spill` are
    // borrowed mutably); the kernel writes bytes only, so uninitialized memory is fine.
    let n = syscall!(readv(fd, iov.as_ptr(), 2))? as usize;
    let filled = n.saturating_sub(buf.len()).min(spill.len());
    // SAFETY: readv fills its iovecs in order: `n` bytes went first into all of `buf`, then the
    // first `filled` bytes of `spill`, which are therefore initialized.
    let spilled = unsafe { std::slice::from_raw_parts(spill.as_ptr().cast::<u8>(), filled) };
    Ok((n, spilled))
}

/// `read(fd, buf)`.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable byte slice of `buf.len()` bytes for the whole call.
    let n = syscall!(read(fd, buf.as_mut_ptr().cast::<libc::c_void>(), buf.len()))?;
    Ok(n as usize)
}

/// `write(fd, buf)`.
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live byte slice of `buf.len()` bytes for the whole call; the kernel only
    // reads it.
    let n = syscall!(write(fd, buf.as_ptr().cast::<libc::c_void>(), buf.len()))?;
    Ok(n as usize)
}

/// `writev(fd, bufs)`.
pub(crate) fn writev(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let cnt = bufs.len().min(MAX_IOV) as libc::c_int;
    // SAFETY: IoSlice is guaranteed ABI-compatible with `struct iovec` on Unix; `bufs` is a live slice
    // of at least `cnt` of them, each describing a live byte slice the kernel only reads.
    let n = syscall!(writev(fd, bufs.as_ptr().cast::<libc::iovec>(), cnt))?;
    Ok(n as usize)
}

/// `sendfile(out_fd, in_fd, &offset, count)`: copies `count` bytes of `in_fd` from `offset` to
/// `out_fd` inside the kernel; returns how many.
pub(crate) fn sendfile(
    out_fd: RawFd,
    in_fd: RawFd,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    // SAFETY: `off` is a live local off_t; the fds are plain integers (a bad one is EBADF).
    let n = syscall!(sendfile(out_fd, in_fd, &mut off, count))?;
    Ok(n as usize)
}
