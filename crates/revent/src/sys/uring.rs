//! The unsafe steps of the io_uring backend: pushing submission queue entries (the kernel may read
//! what they point to after the push returns) and the provided buffer ring (memory the kernel
//! writes received bytes into).

use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// A request the io_uring backend makes. Neither kind carries a pointer: nothing has to outlive
/// the submission, which is what makes [`push`] sound.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sqe {
    /// Watch `fd` for `mask` (poll bits), one-shot or multishot; completions carry `user_data`.
    PollAdd {
        fd: i32,
        mask: u32,
        multi: bool,
        user_data: u64,
    },
    /// Cancel the poll request whose user_data is `target`; its own completion carries `user_data`.
    PollRemove { target: u64, user_data: u64 },
    /// Receive from `fd` into a buffer the kernel picks from provided-buffer group `group` when
    /// data arrives (at most `len` bytes; 0: the buffer's size), once or (`multi`) until stopped.
    Recv {
        fd: i32,
        group: u16,
        len: u32,
        multi: bool,
        user_data: u64,
    },
    /// A one-shot poll for writability (a connect finishing) that carries an op's `user_data`.
    PollOut { fd: i32, user_data: u64 },
    /// Cancel every request whose user_data is `target`; its own completion carries `user_data`.
    Cancel { target: u64, user_data: u64 },
    /// Accept connections on listening socket `fd` until stopped, each new socket with `flags`
    /// (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
    AcceptMulti { fd: i32, flags: i32, user_data: u64 },
}

impl Sqe {
    fn entry(self) -> squeue::Entry {
        match self {
            Sqe::PollAdd {
                fd,
                mask,
                multi,
                user_data,
            } => opcode::PollAdd::new(types::Fd(fd), mask)
                .multi(multi)
                .build()
                .user_data(user_data),
            Sqe::PollRemove { target, user_data } => {
                opcode::PollRemove::new(target).build().user_data(user_data)
            }
            Sqe::Recv {
                fd,
                group,
                len,
                multi: false,
                user_data,
            } => opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), len)
                .buf_group(group)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(user_data),
            Sqe::Recv {
                fd,
                group,
                len,
                multi: true,
                user_data,
            } => opcode::RecvMulti::new(types::Fd(fd), group)
                .len(len)
                .build()
                .user_data(user_data),
            Sqe::PollOut { fd, user_data } => {
                opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
                    .build()
                    .user_data(user_data)
            }
            Sqe::Cancel { target, user_data } => opcode::AsyncCancel::new(target)
                .build()
                .user_data(user_data),
            Sqe::AcceptMulti {
                fd,
                flags,
                user_data,
            } => opcode::AcceptMulti::new(types::Fd(fd))
                .flags(flags)
                .build()
                .user_data(user_data),
        }
    }
}

/// Submits what is queued and runs the completion work pending for this thread, without waiting
/// (`io_uring_enter` with `GETEVENTS` and no minimum). On a `DEFER_TASKRUN` ring that work (the
/// completions of requests that finished since the last such enter, this submission's included)
/// runs only in an enter that carries `GETEVENTS`.
pub(crate) fn submit_and_run(ring: &mut IoUring) -> io::Result<usize> {
    let to_submit = ring.submission().len() as u32;
    // SAFETY: no argument pointer is passed (`None`), so nothing has to outlive the call; the
    // queued entries were pushed through `push`, which keeps what they refer to valid.
    unsafe {
        ring.submitter().enter::<libc::sigset_t>(
            to_submit,
            0,
            io_uring::EnterFlags::GETEVENTS.bits(),
            None,
        )
    }
}

/// Queues `sqe` on `ring`'s submission queue; `false` if the queue is full (the caller submits and
/// tries again).
pub(crate) fn push(ring: &mut IoUring, sqe: Sqe) -> bool {
    let entry = sqe.entry();
    // SAFETY: `push` is unsafe because the kernel may read buffers an entry points to after this
    // returns. These entries point to nothing of ours (an fd, a mask, a buffer group, user_data
    // values; a receive's memory comes from the buffer ring, see `BufRing`), so there is nothing
    // whose lifetime could end too early.
    unsafe { ring.submission().push(&entry).is_ok() }
}

/// Takes ownership of the socket an accept completion reports (its result, when not negative).
/// Only for that: the kernel made the fd for this process and nothing else knows it yet.
pub(crate) fn accepted_fd(res: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a non-negative accept result is a new descriptor the kernel installed for us, owned
    // by nobody else (see the function's contract).
    (res >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(res) })
}

/// Memory shared between a buffer and sends on the ring instead of copied: read-only while shared
/// (nothing hands out `&mut` to it), and given to `release` when the last share goes.
pub(crate) struct SharedMem {
    mem: Box<[u8]>,
    release: fn(Box<[u8]>),
}

impl SharedMem {
    pub(crate) fn new(mem: Box<[u8]>, release: fn(Box<[u8]>)) -> SharedMem {
        SharedMem { mem, release }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.mem
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        (self.release)(std::mem::take(&mut self.mem));
    }
}

/// `mem[start..end]`, to send.
pub(crate) struct SharedRange {
    pub(crate) mem: Arc<SharedMem>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl SharedRange {
    pub(crate) fn bytes(&self) -> &[u8] {
        self.mem.bytes().get(self.start..self.end).unwrap_or(&[])
    }
}

/// The bytes of a send on the ring: a copy, or memory shared with a buffer.
///
/// While a send is in flight ([`submit`](Self::submit) until [`complete`](Self::complete), which
/// the owner calls when it reaps that send's completion) the bytes may not change or be freed: the
/// buffer is not handed out, and dropping it then leaks the memory rather than free it under the
/// kernel. The bytes live on the heap, in a `Vec` or behind an `Arc` this value holds, so moving a
/// `SendBuf` does not move them.
pub(crate) struct SendBuf {
    data: Vec<u8>,
    /// Used instead of `data` when set.
    shared: Option<SharedRange>,
    /// Bytes already sent.
    off: usize,
    in_flight: bool,
}

impl SendBuf {
    pub(crate) fn new() -> SendBuf {
        SendBuf {
            data: Vec::new(),
            shared: None,
            off: 0,
            in_flight: false,
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.shared {
            Some(s) => s.bytes(),
            None => &self.data,
        }
    }

    /// The (emptied) buffer to fill with the next send's bytes; `None` while a send is in flight.
    pub(crate) fn buffer(&mut self) -> Option<&mut Vec<u8>> {
        if self.in_flight {
            return None;
        }
        self.shared = None;
        self.data.clear();
        self.off = 0;
        Some(&mut self.data)
    }

    /// Makes `bytes` the next send's, instead of a copy. Gives them back while a send is in flight.
    pub(crate) fn share(&mut self, bytes: SharedRange) -> Result<(), SharedRange> {
        if self.in_flight {
            return Err(bytes);
        }
        self.data.clear();
        self.off = 0;
        self.shared = Some(bytes);
        Ok(())
    }

    /// A send of these bytes is in flight.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Bytes not sent yet.
    pub(crate) fn len(&self) -> usize {
        self.bytes().len() - self.off
    }

    /// Queues a `send` of the unsent bytes on `fd` (one contiguous buffer: no header or iovec for
    /// the kernel to copy in). `false` if the submission queue is full (the caller submits and
    /// tries again) or a send is already in flight.
    pub(crate) fn submit(&mut self, ring: &mut IoUring, fd: i32, user_data: u64) -> bool {
        if self.in_flight {
            return false;
        }
        let rest = &self.bytes()[self.off..];
        let entry = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data);
        // SAFETY: the bytes stay valid and unchanged until `complete`, which the owner calls only
        // after reaping this request's completion: `buffer` and `share` refuse to replace them
        // meanwhile, shared memory is read-only and kept alive by the `Arc` held here, and Drop
        // leaks rather than frees them (see the type's docs). At most 256 KiB (the owner's
        // limit), so the length fits the entry's u32.
        let pushed = unsafe { ring.submission().push(&entry).is_ok() };
        self.in_flight = pushed;
        pushed
    }

    /// The send's completion was reaped, with `n` bytes sent: returns how many are left (a short
    /// send). Shared bytes are let go of once all are sent.
    pub(crate) fn complete(&mut self, n: usize) -> usize {
        self.in_flight = false;
        let total = self.bytes().len();
        self.off = (self.off + n).min(total);
        if self.off == total {
            self.shared = None;
            self.data.clear();
            self.off = 0;
        }
        self.len()
    }
}

impl Drop for SendBuf {
    fn drop(&mut self) {
        if self.in_flight {
            // The kernel may still read this memory: never free it.
            std::mem::forget(std::mem::take(&mut self.data));
            std::mem::forget(self.shared.take());
        }
    }
}

/// A provided buffer ring: `count` buffers of `size` bytes that receives pick from when data
/// arrives, so that no memory waits in a receive for a connection that stays quiet.
///
/// The kernel writes into a buffer from when it takes it off the ring until a completion names it
/// ([`received`](Self::received)); from then until we hand it back with [`give`](Self::give) it is
/// ours to read, or to exchange for other memory ([`swap`](Self::swap)). Each buffer is its own
/// allocation, so that its memory can be handed on whole.
pub(crate) struct BufRing {
    entries: NonNull<types::BufRingEntry>,
    map_len: usize,
    bufs: Vec<Box<[u8]>>,
    /// Per buffer: named by a completion and not given back yet (the kernel does not touch it).
    ours: Vec<bool>,
    tail: u16,
    count: u16,
    size: usize,
}

impl BufRing {
    /// Maps a ring of `count` (a power of two) entries, registers it with `ring` as group `group`
    /// and hands every buffer to the kernel.
    pub(crate) fn new(ring: &IoUring, count: u16, size: usize, group: u16) -> io::Result<BufRing> {
        debug_assert!(count.is_power_of_two());
        let map_len = usize::from(count) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping (page-aligned, as the kernel requires of a ring),
        // checked for failure; unmapped in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let entries =
            NonNull::new(p.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let mut br = BufRing {
            entries,
            map_len,
            bufs: (0..count)
                .map(|_| vec![0u8; size].into_boxed_slice())
                .collect(),
            ours: vec![true; usize::from(count)],
            tail: 0,
            count,
            size,
        };
        // SAFETY: the mapping holds `count` entries and outlives the registration: the owner
        // unregisters (or closes the ring) before dropping this value (see `Uring`'s Drop).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(p as u64, count, group, 0)?
        };
        for bid in 0..count {
            br.give(bid);
        }
        Ok(br)
    }

    /// A completion named buffer `bid`: the kernel is done writing it.
    pub(crate) fn received(&mut self, bid: u16) {
        if let Some(o) = self.ours.get_mut(usize::from(bid)) {
            *o = true;
        }
    }

    /// Hands buffer `bid` back to the kernel. The caller no longer reads it.
    pub(crate) fn give(&mut self, bid: u16) {
        let Some(o) = self.ours.get_mut(usize::from(bid)) else {
            return;
        };
        if !std::mem::take(o) {
            return; // the kernel has it already: once on the ring is enough
        }
        let addr = self.bufs[usize::from(bid)].as_mut_ptr() as u64;
        let i = usize::from(self.tail & (self.count - 1));
        // SAFETY: `i` < count, inside the mapping. The kernel reads entries only up to the tail we
        // publish below, so this one is not being read.
        let e = unsafe { &mut *self.entries.as_ptr().add(i) };
        e.set_addr(addr);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail overlays entry 0's reserved field, inside the mapping; the kernel reads
        // it concurrently, so it is written atomically, with release order after the entry.
        unsafe {
            let t = types::BufRingEntry::tail(self.entries.as_ptr()).cast_mut();
            (*t.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`, which a completion just handed us (empty if the
    /// kernel has it).
    pub(crate) fn data(&self, bid: u16, len: usize) -> &[u8] {
        match (
            self.ours.get(usize::from(bid)),
            self.bufs.get(usize::from(bid)),
        ) {
            (Some(true), Some(b)) => &b[..len.min(self.size)],
            _ => &[],
        }
    }

    /// Takes buffer `bid`'s memory, with its bytes, and puts `with` (of the ring's buffer size) in
    /// its place, for [`give`](Self::give) to hand to the kernel. `Err(with)` if the buffer is the
    /// kernel's or `with` has another size.
    pub(crate) fn swap(&mut self, bid: u16, with: Box<[u8]>) -> Result<Box<[u8]>, Box<[u8]>> {
        match self.ours.get(usize::from(bid)) {
            Some(true) if with.len() == self.size => {
                Ok(std::mem::replace(&mut self.bufs[usize::from(bid)], with))
            }
            _ => Err(with),
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer registered with a live ring (see `new`).
        unsafe { libc::munmap(self.entries.as_ptr().cast(), self.map_len) };
    }
}
