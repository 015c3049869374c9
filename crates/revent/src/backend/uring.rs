//! The io_uring backend (Linux 5.13+): readiness through `IORING_OP_POLL_ADD` requests, every
//! interest change queued as a submission entry and sent in the same `io_uring_enter` as the wait.
//!
//! # Level-triggered events: one-shot polls, re-armed
//!
//! libevent's events are level-triggered: an fd left readable is reported again by the next wait.
//! A multishot poll (`IORING_POLL_ADD_MULTI`) posts a completion on each *wake-up* of the file, not
//! while it stays ready, so an undrained fd would be reported once and then never again.
//! `IORING_POLL_ADD_LEVEL` does not help: this kernel (6.18) refuses it (`-EINVAL`, measured with
//! both one-shot and multishot polls), and where it existed it only changed how the first arm
//! completed. So a level-triggered fd gets a *one-shot* poll; when it completes, the fd is queued
//! and the next wait arms a fresh one-shot poll in its own `io_uring_enter`. A poll armed on a ready
//! fd completes at once, during submission, so that wait reports the fd again: exactly epoll's level
//! semantics, at the cost of one submission entry (no syscall) per fired fd per wait.
//!
//! ET registrations get a multishot poll: a completion per wake-up, as `EPOLLET` gives. One that
//! ends (no `IORING_CQE_F_MORE`) is re-armed the same way.
//!
//! # Interest changes
//!
//! An fd's poll is replaced (a `POLL_REMOVE` of the old request, a `POLL_ADD` of the new one), queued
//! and submitted with the next wait. Full removals are the exception: a poll request holds a
//! reference to the file, so until the cancellation reaches the kernel a socket that the caller
//! closes right after `del` would stay open, and its peer would see no EOF (epoll drops a closed fd
//! by itself). They are submitted at once, which costs what epoll's `EPOLL_CTL_DEL` costs.
//!
//! Each request's `user_data` holds the fd and a generation that every change bumps: a completion
//! from a cancelled request (`-ECANCELED`, or a readiness posted before the cancellation arrived),
//! even for an fd number since closed and reused, carries an old generation and is ignored.
//!
//! # Cost, and why epoll stays first
//!
//! On revent-bench's pipes (2 vCPU AMD EPYC VM, Linux 6.18, 2026-12-01) io_uring makes exactly as
//! many syscalls per fired event as epoll (2.99 with one active pair, 1.5-2.0 with 100: the enter
//! replaces `epoll_wait`, and the re-arms ride along), but costs more user-space instructions per
//! event (about 930 against 590 with one active pair, 546 against 338 with 100): each fired fd is
//! a submission entry out and a completion entry in, where epoll hands back a filled array. Wall
//! time is within about 20% either way (faster with 100 active pairs at N = 1000, slower with one).
//! So readiness through io_uring alone does not justify taking epoll's place. Completion-based I/O
//! is where io_uring wins: socket bufferevents on this backend receive and send on the ring itself
//! (`ops.rs` here, and `bufferevent/ring.rs`), with no `readv`/`writev` at all.
//!
//! A zero-timeout wait passes no timeout to the kernel at all: even a zero one arms a timer, which
//! traps into the hypervisor on this VM and made each event 7 times slower.
//!
//! # Errors
//!
//! A poll armed on an fd that was closed behind our back completes with `-EBADF`: it is reported
//! `invalid` (as poll reports `POLLNVAL`) so the base stops watching it. Any other error on a poll is
//! treated the same way, since re-arming would fail again and spin the loop. Completions that do not
//! fit the completion queue wait in the kernel (`IORING_FEAT_NODROP`, required) and are flushed by
//! the next enter. An interrupted wait returns with what was already complete.

mod ops;

pub(crate) use ops::{Done, Op, OpSlot, RING_BUFS, RING_BUF_SIZE};

use super::{mask_of, what_of_mask, Ready};
use crate::event::What;
use crate::sys::uring::{self, Sqe};
use io_uring::{cqueue, types, IoUring};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Submission queue entries: changes beyond this in one iteration are submitted early, in batches.
const SQ_ENTRIES: u32 = 256;
/// Completion queue entries. Each watched fd has at most one poll request in flight, plus two
/// completions per cancelled one; more than this at once overflow into the kernel's list.
const CQ_ENTRIES: u32 = 4096;
/// The longest single wait (a year).
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);
/// The `user_data` of `POLL_REMOVE` requests: its low half is never an fd.
const REMOVE: u64 = u32::MAX as u64;

/// The backend's state for one fd number.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// The kernel interest the base asked for.
    interest: What,
    /// Generation of the current poll request (the high half of its `user_data`).
    gen: u32,
    /// A poll request of generation `gen` is in flight (or queued for submission).
    armed: bool,
    /// The fd is on the re-arm list.
    queued: bool,
    /// The wait that last reported the fd, and the fd's index in `ready` then (to merge two
    /// completions for one fd into one report).
    seen: u32,
    pos: u32,
}

pub(crate) struct Uring {
    ring: IoUring,
    slots: Vec<Slot>,
    /// fds whose poll completed and that are still interested: the next wait arms them again.
    rearm: Vec<RawFd>,
    /// Number of the current wait, for `Slot::seen`.
    waits: u32,
    /// The process that made the ring: a child after fork must not touch it (see `Drop`).
    pid: u32,
    /// Completion-based requests of bufferevents (`ops.rs`).
    ops: ops::Ops,
    /// The base stays on the thread that made it: the ring may be `SINGLE_ISSUER`.
    thread_bound: bool,
    /// `io_uring_enter` calls made, for the tests that check batching.
    #[cfg(test)]
    enters: u64,
}

fn user_data(fd: RawFd, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(fd as u32)
}

fn is_err(e: &io::Error, codes: &[i32]) -> bool {
    e.raw_os_error().is_some_and(|c| codes.contains(&c))
}

/// A ring for one base. `COOP_TASKRUN` (5.19+) lets the kernel leave completion work for our next
/// enter instead of interrupting the thread, which always enters to wait anyway. A base that stays
/// on its thread (`thread_bound`) asks for more (6.1+): `SINGLE_ISSUER` and `DEFER_TASKRUN`, so
/// completion work runs only when we enter with `GETEVENTS` (every wait does, the zero-timeout one
/// included: see `enter`), in one batch, never interrupting a callback; `TASKRUN_FLAG` makes the
/// io-uring crate's own submit carry `GETEVENTS` too when such work is pending. Each falls back to
/// the one before on EINVAL.
fn new_ring(thread_bound: bool) -> io::Result<IoUring> {
    let built = if thread_bound {
        IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .build(SQ_ENTRIES)
    } else {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    };
    let ring = match built {
        Err(e) if is_err(&e, &[libc::EINVAL]) => match IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_coop_taskrun()
            .build(SQ_ENTRIES)
        {
            Err(e) if is_err(&e, &[libc::EINVAL]) => IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)?,
            r => r?,
        },
        r => r?,
    };
    let p = ring.params();
    // NODROP (5.5): no completion is ever lost to an overflow. EXT_ARG (5.11): the wait's timeout
    // goes in the enter itself. Resource tagging came with multishot poll (5.13), which has no flag.
    if !(p.is_feature_nodrop() && p.is_feature_ext_arg() && p.is_feature_resource_tagging()) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring lacks multishot poll, NODROP or EXT_ARG (kernel older than 5.13)",
        ));
    }
    Ok(ring)
}

impl Uring {
    pub(crate) fn new(thread_bound: bool) -> io::Result<Uring> {
        Ok(Uring {
            ring: new_ring(thread_bound)?,
            thread_bound,
            slots: Vec::new(),
            rearm: Vec::new(),
            waits: 0,
            pid: crate::sys::getpid(),
            ops: ops::Ops::default(),
            #[cfg(test)]
            enters: 0,
        })
    }

    /// Cancels every poll in flight and submits the cancellations: closing the ring would cancel
    /// them too, but in a kernel worker, later, and until then each poll keeps its file (a socket
    /// the caller closes next) open.
    fn cancel_all(&mut self) {
        for fd in 0..self.slots.len() {
            let slot = self.slots[fd];
            if slot.armed {
                let target = user_data(fd as RawFd, slot.gen);
                if self
                    .push(Sqe::PollRemove {
                        target,
                        user_data: REMOVE,
                    })
                    .is_err()
                {
                    break; // the ring is unusable: closing it is all that is left
                }
                let slot = &mut self.slots[fd];
                slot.armed = false;
                slot.gen = slot.gen.wrapping_add(1);
            }
        }
        let _ = self.enter(Some(Duration::ZERO));
    }

    /// Queues `sqe`, submitting what is queued first if the submission queue is full.
    fn push(&mut self, sqe: Sqe) -> io::Result<()> {
        if uring::push(&mut self.ring, sqe) {
            return Ok(());
        }
        self.count_enter();
        self.ring.submit()?;
        if uring::push(&mut self.ring, sqe) {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EBUSY))
        }
    }

    #[inline]
    fn count_enter(&mut self) {
        #[cfg(test)]
        {
            self.enters += 1;
        }
    }

    /// Whether op completions wait for their owners (the wait must not block).
    fn ops_ready(&self) -> bool {
        self.ops.has_ready()
    }

    pub(crate) fn update(&mut self, fd: RawFd, new: What) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        let f = fd as usize;
        if f >= self.slots.len() {
            self.slots.resize(f + 1, Slot::default());
        }
        let old = self.slots[f];
        if old.armed {
            self.push(Sqe::PollRemove {
                target: user_data(fd, old.gen),
                user_data: REMOVE,
            })?;
        }
        let slot = &mut self.slots[f];
        // Whatever the old request still posts is stale from here on.
        slot.gen = slot.gen.wrapping_add(1);
        slot.armed = false;
        slot.interest = new;
        if !new.is_empty() {
            self.arm(fd)
        } else if old.armed {
            // The cancellation must reach the kernel now: see "Interest changes" above. Should
            // this enter fail, the entries stay queued and the next wait submits them.
            let _ = self.enter(Some(Duration::ZERO));
            Ok(())
        } else {
            Ok(())
        }
    }

    /// Queues a poll request for `fd`'s interest, with its current generation.
    fn arm(&mut self, fd: RawFd) -> io::Result<()> {
        let slot = self.slots[fd as usize];
        self.push(Sqe::PollAdd {
            fd,
            mask: mask_of(slot.interest),
            multi: slot.interest.contains(What::ET),
            user_data: user_data(fd, slot.gen),
        })?;
        self.slots[fd as usize].armed = true;
        Ok(())
    }

    /// Submits what is queued and waits up to `timeout` for a completion. Running out of time, a
    /// signal, or a completion queue that must be flushed first all end the wait without an error.
    fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.count_enter();
        let sub = self.ring.submitter();
        let r = match timeout {
            None => sub.submit_and_wait(1),
            // No wait at all: a zero timeout would still arm a timer (costly in a VM, where
            // programming it traps: 7x the time per event on the pipes benchmark). Completion work
            // queued for this thread runs on the way out of any syscall, this one included, so
            // the completion queue is as up to date as a zero-timeout wait would leave it. On a
            // DEFER_TASKRUN ring that work runs only in an enter with GETEVENTS: this one carries
            // it (with no minimum, so no timer either).
            Some(d) if d.is_zero() => {
                if self.thread_bound {
                    return match uring::submit_and_run(&mut self.ring) {
                        Err(e) if !is_err(&e, &[libc::EINTR, libc::EBUSY, libc::EAGAIN]) => Err(e),
                        _ => Ok(()),
                    };
                }
                sub.submit()
            }
            Some(d) => {
                // The kernel adds the timeout to the current time without saturating: a huge one
                // would wrap and expire at once, and the loop would spin. A capped wait that ends
                // early only makes the loop wait again.
                let ts = types::Timespec::from(d.min(MAX_WAIT));
                let args = types::SubmitArgs::new().timespec(&ts);
                sub.submit_with_args(1, &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_err(&e, &[libc::ETIME, libc::EINTR, libc::EBUSY, libc::EAGAIN]) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        self.waits = self.waits.wrapping_add(1);
        // Level-triggered fds that fired last time, and ended multishots: poll them again.
        let mut rearm = std::mem::take(&mut self.rearm);
        rearm.retain(|&fd| {
            let slot = self.slots[fd as usize];
            // An fd whose poll cannot be queued now stays on the list for the next wait.
            let keep = !slot.armed && !slot.interest.is_empty() && self.arm(fd).is_err();
            self.slots[fd as usize].queued = keep;
            keep
        });
        self.rearm = rearm;
        // Completions already posted (by an earlier enter) are this wait's news too; with some,
        // the enter only submits.
        self.reap(ready);
        if ready.is_empty() && !self.ops_ready() {
            self.enter(timeout)?;
        } else if !self.ring.submission().is_empty() {
            self.enter(Some(Duration::ZERO))?;
        }
        self.reap(ready);
        // Completions that overflowed the queue wait in the kernel; an enter moves them over.
        let mut rounds = 0;
        while self.ring.submission().cq_overflow() && rounds < 16 {
            self.count_enter();
            match self.ring.submitter().submit_and_wait(0) {
                Ok(_) => {}
                Err(e) if is_err(&e, &[libc::EINTR, libc::EBUSY, libc::EAGAIN]) => {}
                Err(e) => return Err(e),
            }
            self.reap(ready);
            rounds += 1;
        }
        Ok(())
    }

    /// Turns posted completions into `ready` entries, one per fd.
    fn reap(&mut self, ready: &mut Vec<Ready>) {
        let mut completions = self.ring.completion();
        while let Some(cqe) = completions.next() {
            let ud = cqe.user_data();
            if ops::is_op(ud) {
                // Ops may touch the ring (a released slot's buffers go back): let go of the queue
                // view first; the next loop round takes a fresh one.
                drop(completions);
                self.op_completion(ud, cqe.result(), cqe.flags());
                completions = self.ring.completion();
                continue;
            }
            let (slots, rearm, waits) = (&mut self.slots, &mut self.rearm, self.waits);
            let fd = ud as u32;
            if fd == u32::MAX {
                continue; // a POLL_REMOVE's or a cancellation's own completion
            }
            let Some(slot) = slots.get_mut(fd as usize) else {
                continue;
            };
            if !slot.armed || slot.gen != (ud >> 32) as u32 {
                continue; // from a request cancelled or replaced since
            }
            let fd = fd as RawFd;
            let res = cqe.result();
            let last = !cqueue::more(cqe.flags());
            if last {
                slot.armed = false;
            }
            let (what, invalid) = if res >= 0 {
                let mask = res as u32;
                (what_of_mask(mask), mask & libc::POLLNVAL as u32 != 0)
            } else if res == -libc::ECANCELED {
                // Cancelled by the kernel, not by us (ours bump the generation): poll again.
                (What::NONE, false)
            } else {
                (What::READ | What::WRITE, true)
            };
            if last && !invalid && !slot.interest.is_empty() && !slot.queued {
                slot.queued = true;
                rearm.push(fd);
            }
            if what.is_empty() && !invalid {
                continue;
            }
            let pos = slot.pos as usize;
            if slot.seen == waits && ready.get(pos).is_some_and(|r| r.fd == fd) {
                ready[pos].what |= what;
                ready[pos].invalid |= invalid;
            } else {
                slot.seen = waits;
                slot.pos = ready.len() as u32;
                ready.push(Ready { fd, what, invalid });
            }
        }
    }

    /// After fork: a ring of our own (the parent's requests stay the parent's), with every watched
    /// fd polled again by the next wait.
    pub(crate) fn reinit(&mut self) -> io::Result<()> {
        let fresh = new_ring(self.thread_bound)?;
        if self.pid == crate::sys::getpid() {
            // Not after fork, where the old ring's requests are the parent's.
            self.cancel_all();
            self.end_ops();
        }
        self.forget_ops();
        self.ring = fresh;
        self.pid = crate::sys::getpid();
        self.rearm.clear();
        for (fd, slot) in self.slots.iter_mut().enumerate() {
            slot.gen = slot.gen.wrapping_add(1);
            slot.armed = false;
            slot.queued = !slot.interest.is_empty();
            if slot.queued {
                self.rearm.push(fd as RawFd);
            }
        }
        Ok(())
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // After fork the ring is the parent's (its memory shared with ours): only the process that
        // made it may submit to it.
        if self.pid == crate::sys::getpid() {
            self.cancel_all();
            // Memory that requests in flight use is freed after this: wait for them to end.
            self.end_ops();
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)] // dup2 and pthread_kill, to replace an fd's file and interrupt a wait
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    /// A ring, or `None` (the test is skipped) where the kernel refuses io_uring: an old kernel, a
    /// container's seccomp profile. Under CI (`CI=true`) that fails instead. (The op tests use it
    /// too.)
    pub(super) fn ring() -> Option<Uring> {
        ring_for(true)
    }

    /// `ring`, tied to this thread (`SINGLE_ISSUER`, `DEFER_TASKRUN`) or not.
    fn ring_for(thread_bound: bool) -> Option<Uring> {
        match Uring::new(thread_bound) {
            Ok(u) => Some(u),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "io_uring is unavailable ({e}), and CI=true requires it"
                );
                eprintln!("note: the kernel refuses io_uring here ({e}): test skipped");
                None
            }
        }
    }

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn wait_ms(u: &mut Uring, ms: u64) -> Vec<Ready> {
        let mut ready = Vec::new();
        u.wait(Some(Duration::from_millis(ms)), &mut ready).unwrap();
        ready
    }

    fn fds(ready: &[Ready]) -> Vec<RawFd> {
        let mut v: Vec<RawFd> = ready.iter().map(|r| r.fd).collect();
        v.sort_unstable();
        v
    }

    /// Level-triggered: an fd left readable is reported by every wait, and no longer once drained.
    #[test]
    fn level_rereports_an_undrained_fd() {
        let Some(mut u) = ring() else { return };
        let (mut a, mut b) = pair();
        u.update(a.as_raw_fd(), What::READ).unwrap();
        assert!(wait_ms(&mut u, 0).is_empty(), "nothing to read yet");
        b.write_all(b"xy").unwrap();
        for i in 0..3 {
            let r = wait_ms(&mut u, 1000);
            assert_eq!(r.len(), 1, "wait {i}: {r:?}");
            assert_eq!(
                (r[0].fd, r[0].what, r[0].invalid),
                (a.as_raw_fd(), What::READ, false)
            );
        }
        let mut buf = [0u8; 1];
        a.read_exact(&mut buf).unwrap(); // one byte of two: still readable
        assert_eq!(wait_ms(&mut u, 1000).len(), 1, "one byte left");
        a.read_exact(&mut buf).unwrap();
        assert!(wait_ms(&mut u, 20).is_empty(), "drained");
        b.write_all(b"z").unwrap();
        assert_eq!(
            wait_ms(&mut u, 1000).len(),
            1,
            "new data after a quiet wait"
        );
    }

    /// ET: reported once per arrival, not again while the data stays unread.
    #[test]
    fn edge_triggered_is_not_rereported() {
        let Some(mut u) = ring() else { return };
        let (a, mut b) = pair();
        u.update(a.as_raw_fd(), What::READ | What::ET).unwrap();
        b.write_all(b"x").unwrap();
        let r = wait_ms(&mut u, 1000);
        assert_eq!(fds(&r), [a.as_raw_fd()]);
        assert!(wait_ms(&mut u, 20).is_empty(), "undrained, but no new edge");
        assert!(wait_ms(&mut u, 20).is_empty());
        b.write_all(b"y").unwrap();
        assert_eq!(
            fds(&wait_ms(&mut u, 1000)),
            [a.as_raw_fd()],
            "a new arrival"
        );
    }

    /// Adds and changes of interest cost no syscall of their own: the wait's one enter carries them.
    #[test]
    fn interest_changes_go_with_the_wait() {
        let Some(mut u) = ring() else { return };
        let (a, mut b) = pair();
        let (c, _d) = pair();
        u.update(a.as_raw_fd(), What::READ).unwrap();
        u.update(c.as_raw_fd(), What::READ).unwrap();
        u.update(c.as_raw_fd(), What::READ | What::WRITE).unwrap();
        u.update(a.as_raw_fd(), What::READ | What::CLOSED).unwrap();
        assert_eq!(u.enters, 0, "changes are only queued");
        b.write_all(b"x").unwrap();
        let r = wait_ms(&mut u, 1000);
        assert_eq!(u.enters, 1, "one io_uring_enter submitted them and waited");
        assert_eq!(fds(&r), [a.as_raw_fd(), c.as_raw_fd()]);
        let w: Vec<What> = r.iter().map(|r| r.what).collect();
        assert!(w.contains(&What::READ) && w.contains(&What::WRITE), "{r:?}");
        // A full removal is the one change sent at once, when a poll is in flight (it holds the
        // file open). `c`'s one-shot poll completed in that wait: nothing to cancel, no enter.
        u.update(c.as_raw_fd(), What::NONE).unwrap();
        assert_eq!(u.enters, 1);
        let (e, _f) = pair();
        u.update(e.as_raw_fd(), What::READ).unwrap();
        assert!(wait_ms(&mut u, 0).iter().all(|r| r.fd != e.as_raw_fd()));
        assert_eq!(u.enters, 2);
        u.update(e.as_raw_fd(), What::NONE).unwrap();
        assert_eq!(u.enters, 3, "e's poll was in flight: cancelled at once");
    }

    /// A completion posted for an fd's old file, still unread when the fd was removed and its number
    /// given to another socket, is not reported for the new one.
    #[test]
    fn stale_completion_after_fd_reuse_is_ignored() {
        let Some(mut u) = ring() else { return };
        let (a, mut b) = pair();
        let (fresh, _fresh_peer) = pair();
        let fd = a.as_raw_fd();
        b.write_all(b"x").unwrap();
        u.update(fd, What::READ).unwrap();
        // Submit the poll without reading completions: it completes at once, readable.
        u.enter(Some(Duration::ZERO)).unwrap();
        assert!(
            !u.ring.completion().is_empty(),
            "a completion waits in the queue"
        );
        u.update(fd, What::NONE).unwrap();
        // SAFETY: both fds are open and owned by this test; dup2 makes `fd` (still owned by `a`)
        // refer to `fresh`'s socket, closing the old one.
        assert_eq!(unsafe { libc::dup2(fresh.as_raw_fd(), fd) }, fd);
        u.update(fd, What::READ).unwrap();
        let r = wait_ms(&mut u, 30);
        assert!(r.is_empty(), "the old socket's readiness leaked: {r:?}");
        drop(a);
    }

    /// An fd closed before its poll was submitted is reported invalid, as poll's POLLNVAL.
    #[test]
    fn closed_fd_is_reported_invalid() {
        let Some(mut u) = ring() else { return };
        let (a, _b) = pair();
        // A number that is surely not open: a dup far above the numbers the other tests of this
        // binary get (they take the lowest free ones), then closed.
        // SAFETY: F_DUPFD on an open fd creates a new fd, which we close at once.
        let fd = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 5000) };
        assert!(fd >= 5000);
        crate::sys::close(fd);
        u.update(fd, What::READ).unwrap();
        let r = wait_ms(&mut u, 1000);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!((r[0].fd, r[0].invalid), (fd, true));
        // The base then removes it: nothing more is reported.
        u.update(fd, What::NONE).unwrap();
        assert!(wait_ms(&mut u, 20).is_empty());
    }

    /// More completions than the completion queue holds: the rest wait in the kernel and the same
    /// wait collects them all, none lost, each fd once.
    #[test]
    fn completion_queue_overflow_loses_nothing() {
        if ring().is_none() {
            return;
        }
        for thread_bound in [false, true] {
            let mut b = IoUring::builder();
            b.setup_cqsize(8);
            if thread_bound {
                b.setup_single_issuer()
                    .setup_defer_taskrun()
                    .setup_taskrun_flag();
            }
            let u = Uring {
                ring: b.build(8).unwrap(),
                slots: Vec::new(),
                rearm: Vec::new(),
                waits: 0,
                pid: crate::sys::getpid(),
                ops: ops::Ops::default(),
                thread_bound,
                enters: 0,
            };
            overflow_loses_nothing(u);
        }
    }

    fn overflow_loses_nothing(mut u: Uring) {
        let pairs: Vec<(UnixStream, UnixStream)> = (0..40).map(|_| pair()).collect();
        for (a, b) in &pairs {
            (&*b).write_all(b"x").unwrap();
            u.update(a.as_raw_fd(), What::READ).unwrap();
        }
        let mut want: Vec<RawFd> = pairs.iter().map(|(a, _)| a.as_raw_fd()).collect();
        want.sort_unstable();
        assert_eq!(fds(&wait_ms(&mut u, 1000)), want, "first wait");
        assert_eq!(fds(&wait_ms(&mut u, 1000)), want, "level: all again");
    }

    /// A timeout too large for the kernel's clock arithmetic still waits (it is capped), rather
    /// than expiring at once.
    #[test]
    fn huge_timeout_waits() {
        let Some(mut u) = ring() else { return };
        let (a, b) = pair();
        u.update(a.as_raw_fd(), What::READ).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            (&b).write_all(b"x").unwrap();
            b
        });
        let mut ready = Vec::new();
        u.wait(Some(Duration::MAX), &mut ready).unwrap();
        assert_eq!(
            fds(&ready),
            [a.as_raw_fd()],
            "returned before the data came"
        );
        drop(t.join().unwrap());
    }

    /// A poll cancelled by someone else (`-ECANCELED` with the current generation, as when the
    /// kernel gives up on a request) is simply armed again.
    #[test]
    fn foreign_cancellation_rearms() {
        let Some(mut u) = ring() else { return };
        let (a, mut b) = pair();
        let fd = a.as_raw_fd();
        u.update(fd, What::READ).unwrap();
        assert!(wait_ms(&mut u, 0).is_empty()); // in flight
        let target = user_data(fd, u.slots[fd as usize].gen);
        assert!(uring::push(
            &mut u.ring,
            Sqe::PollRemove {
                target,
                user_data: REMOVE
            }
        ));
        let r = wait_ms(&mut u, 0);
        assert!(r.is_empty(), "a cancellation is no readiness: {r:?}");
        assert!(u.slots[fd as usize].queued, "queued for re-arming");
        b.write_all(b"x").unwrap();
        let r = wait_ms(&mut u, 1000);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!((r[0].fd, r[0].what, r[0].invalid), (fd, What::READ, false));
    }

    extern "C" fn on_signal(_: libc::c_int) {}

    /// A signal during the wait ends it without an error and with nothing ready.
    #[test]
    fn interrupted_wait_is_not_an_error() {
        let Some(mut u) = ring() else { return };
        let saved = crate::sys::install_handler(libc::SIGUSR2, on_signal).unwrap();
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() } as usize;
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: `me` is the test thread, alive until it joins this thread.
            unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR2) };
        });
        let start = Instant::now();
        let mut ready = Vec::new();
        let r = u.wait(Some(Duration::from_secs(10)), &mut ready);
        t.join().unwrap();
        crate::sys::restore_handler(libc::SIGUSR2, &saved).unwrap();
        assert!(r.is_ok(), "{r:?}");
        assert!(ready.is_empty());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the signal did not end the wait"
        );
    }

    /// Dropping the backend releases the files its polls held at once: a socket closed right after
    /// is closed for its peer too.
    #[test]
    fn drop_releases_the_files_at_once() {
        for reinit in [false, true] {
            let Some(mut u) = ring() else { return };
            let (a, mut b) = pair();
            u.update(a.as_raw_fd(), What::READ).unwrap();
            assert!(wait_ms(&mut u, 0).is_empty()); // the poll is in flight now
            if reinit {
                u.reinit().unwrap();
            } else {
                drop(u);
            }
            drop(a);
            let mut buf = [0u8; 1];
            match b.read(&mut buf) {
                Ok(0) => {}
                other => panic!("reinit {reinit}: the peer sees no EOF yet: {other:?}"),
            }
        }
    }

    /// A child that drops its copy of the backend after fork (without `reinit`) leaves the
    /// parent's polls alone: the ring is the parent's.
    #[test]
    fn child_drop_leaves_the_parents_polls_alone() {
        let Some(mut u) = ring() else { return };
        let (a, mut b) = pair();
        u.update(a.as_raw_fd(), What::READ).unwrap();
        assert!(wait_ms(&mut u, 0).is_empty()); // the poll is in flight now
                                                // SAFETY: the child only drops `u` (no locks held by other threads are needed: glibc's
                                                // malloc is fork-safe) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            drop(u);
            // SAFETY: ends the child without running the parent's atexit handlers or tests.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a live int.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        b.write_all(b"x").unwrap();
        assert_eq!(
            fds(&wait_ms(&mut u, 1000)),
            [a.as_raw_fd()],
            "the parent's poll survived"
        );
    }

    /// A zero-timeout wait (the loop's `NONBLOCK`) sees readiness that came after the poll was
    /// armed, on either kind of ring: on a `DEFER_TASKRUN` one that completion is deferred work
    /// that only an enter carrying `GETEVENTS` runs.
    #[test]
    fn a_zero_timeout_wait_sees_new_readiness_on_either_ring() {
        for bound in [true, false] {
            let Some(mut u) = ring_for(bound) else { return };
            let (a, mut b) = pair();
            u.update(a.as_raw_fd(), What::READ).unwrap();
            assert!(wait_ms(&mut u, 0).is_empty(), "armed, nothing to read");
            b.write_all(b"x").unwrap();
            assert_eq!(
                fds(&wait_ms(&mut u, 0)),
                vec![a.as_raw_fd()],
                "thread-bound ring: {bound}"
            );
        }
    }

    /// After fork (here: simply on demand) a new ring polls every watched fd again.
    #[test]
    fn reinit_polls_everything_again() {
        let Some(mut u) = ring() else { return };
        let (a, mut b) = pair();
        u.update(a.as_raw_fd(), What::READ | What::ET).unwrap();
        assert!(wait_ms(&mut u, 0).is_empty());
        b.write_all(b"x").unwrap();
        assert_eq!(wait_ms(&mut u, 1000).len(), 1);
        u.reinit().unwrap();
        assert_eq!(
            fds(&wait_ms(&mut u, 1000)),
            [a.as_raw_fd()],
            "re-armed on the new ring"
        );
    }
}
