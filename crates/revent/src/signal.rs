//! Signals: a process-wide handler that only counts and wakes a loop; delivery happens in the loop.
//!
//! The handler increments a per-signal counter and writes one byte to the wake-up pipe of the base
//! that most recently started watching that signal (libevent's rule: one base receives a signal).
//! The base's internal read event on that pipe drains it and activates the signal's events with the
//! number of arrivals. The disposition a signal had before is saved when a base starts watching it and
//! restored when the base's last event for it goes away.
//!
//! Wake-up pipes are never closed once a handler may know their write end. The handler loads the fd
//! from `WAKE` and then writes to it, and another thread can change `WAKE` in between; had that thread
//! closed the pipe, the number could already name a new file, which would get the byte. So a base that
//! goes away leaves its pipe in `POOL`, and the next base that watches a signal takes it from there. A
//! late handler's byte then lands in a pipe revent owns and at worst wakes a loop for nothing: arrivals
//! are counted in `COUNTS`, the bytes only wake. The process keeps as many pipes open as the most
//! bases that watched signals at one time.
//!
//! A forked child shares its parent's pipes: reading one would take the parent's wake-ups. So the
//! child never uses a pipe made before the fork (see `pool` and `Signals::reinit`).

use crate::sys::{self, SavedAction, NSIG};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU32 = AtomicU32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NO_FD: AtomicI32 = AtomicI32::new(-1);
#[allow(clippy::declare_interior_mutable_const)]
const NO_BASE: AtomicU64 = AtomicU64::new(0);

/// Arrivals of each signal not yet delivered.
static COUNTS: [AtomicU32; NSIG] = [ZERO; NSIG];
/// For each signal, the write end of the wake-up pipe of the base that receives it. Every fd ever
/// stored here stays open for as long as this process may use it (see the module docs).
static WAKE: [AtomicI32; NSIG] = [NO_FD; NSIG];
/// For each signal, the id of the base that last started watching it: whose arrivals `COUNTS` holds.
static OWNER: [AtomicU64; NSIG] = [NO_BASE; NSIG];
/// The next base id (0 is no base).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

extern "C" fn on_signal(signo: libc::c_int) {
    let s = signo as usize;
    if s >= NSIG {
        return;
    }
    // Only async-signal-safe work here: atomics and write(2).
    sys::with_errno_preserved(|| {
        COUNTS[s].fetch_add(1, Ordering::Relaxed);
        let fd = WAKE[s].load(Ordering::Relaxed);
        if fd >= 0 {
            sys::write_from_handler(fd, signo as u8);
        }
    });
}

/// Wake-up pipes of bases that went away, kept for the next base. Never touched by the handler.
struct Pool {
    /// The process the pipes belong to; another value means the list came through fork.
    pid: u32,
    pipes: Vec<(RawFd, RawFd)>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    pid: 0,
    pipes: Vec::new(),
});

/// Locks the pool, first emptying a list inherited from the parent process.
///
/// Closing the inherited pipes is safe: no handler in this process can hold their write ends. A pipe
/// enters the pool only after its base took it out of `WAKE` (`release`) and no base puts it back, and
/// `fork` copies only the calling thread, which was not inside `on_signal` (that blocks every signal,
/// so no other handler that could call `fork` runs on top of it). Like any lock, this one deadlocks a
/// child forked while another thread held it; it is only held to push or pop.
fn pool() -> MutexGuard<'static, Pool> {
    // Push and pop leave the list whole even if a panic poisoned the lock.
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pid = sys::getpid();
    if pool.pid != pid {
        for (r, w) in pool.pipes.drain(..) {
            sys::close(r);
            sys::close(w);
        }
        pool.pid = pid;
    }
    pool
}

/// A base's wake-up pipe and the process that got it.
#[derive(Clone, Copy)]
struct WakePipe {
    r: RawFd,
    w: RawFd,
    pid: u32,
}

impl WakePipe {
    /// A pipe from the pool (emptied of bytes a late handler wrote for its last owner), or a new one.
    fn take() -> io::Result<WakePipe> {
        let reused = pool().pipes.pop();
        let (r, w) = match reused {
            Some((r, w)) => {
                drain(r);
                (r, w)
            }
            None => sys::pipe()?,
        };
        Ok(WakePipe {
            r,
            w,
            pid: sys::getpid(),
        })
    }

    /// Hands the pipe on when its base goes away.
    fn give_back(self) {
        if self.pid == sys::getpid() {
            pool().pipes.push((self.r, self.w));
        } else {
            // Made before a fork and shared with the parent, so never reused here. Handlers only write
            // to write ends, so the read end can go; the write end stays open (leaked), as a handler
            // in this process may have loaded it from `WAKE`.
            sys::close(self.r);
        }
    }
}

/// Reads everything waiting in a wake-up pipe (non-blocking).
fn drain(r: RawFd) {
    let mut buf = [0u8; 256];
    while let Ok(n) = sys::read(r, &mut buf) {
        if n < buf.len() {
            break;
        }
    }
}

/// One base's signal state.
pub(crate) struct Signals {
    /// This base's id in `OWNER`.
    id: u64,
    /// The wake-up pipe, taken when the first signal is watched.
    pipe: Option<WakePipe>,
    /// Event keys watching each signal.
    pub(crate) events: Vec<Vec<u32>>,
    saved: Vec<Option<SavedAction>>,
}

impl Signals {
    pub(crate) fn new() -> Signals {
        Signals {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pipe: None,
            events: (0..NSIG).map(|_| Vec::new()).collect(),
            saved: (0..NSIG).map(|_| None).collect(),
        }
    }

    /// The read end of the wake-up pipe, taking a pipe if needed. Returns `(fd, taken now)`.
    pub(crate) fn wake_fd(&mut self) -> io::Result<(RawFd, bool)> {
        if let Some(p) = self.pipe {
            return Ok((p.r, false));
        }
        let p = WakePipe::take()?;
        self.pipe = Some(p);
        Ok((p.r, true))
    }

    /// Starts delivering `signo` to this base; the first event for a signal installs the handler.
    pub(crate) fn watch(&mut self, signo: i32, key: u32) -> io::Result<()> {
        let s = signo as usize;
        let w = self.pipe.expect("wake pipe made before watching").w;
        if self.events[s].is_empty() {
            // Arrivals counted while another base received the signal were that base's (libevent
            // leaves them in its pipe, and they die with it); those of this base's own earlier events
            // are still due.
            if OWNER[s].swap(self.id, Ordering::Relaxed) != self.id {
                COUNTS[s].store(0, Ordering::Relaxed);
            }
            // Name the pipe before the handler is in place: an arrival right after installing must
            // wake this base, not only be counted.
            WAKE[s].store(w, Ordering::Relaxed);
            match sys::install_handler(signo, on_signal) {
                Ok(old) => self.saved[s] = Some(old),
                Err(e) => {
                    let _ = WAKE[s].compare_exchange(w, -1, Ordering::Relaxed, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        self.events[s].push(key);
        Ok(())
    }

    /// Stops delivering `signo` to event `key`; the last one restores the old disposition.
    pub(crate) fn unwatch(&mut self, signo: i32, key: u32) {
        let s = signo as usize;
        let Some(i) = self.events[s].iter().position(|&k| k == key) else {
            return;
        };
        self.events[s].remove(i);
        if self.events[s].is_empty() {
            self.release(s);
        }
    }

    /// Restores the old disposition of signal `s` and stops waking this base for it (unless another
    /// base has taken the signal over since).
    fn release(&mut self, s: usize) {
        if let Some(old) = self.saved[s].take() {
            let _ = sys::restore_handler(s as i32, &old);
        }
        if let Some(p) = self.pipe {
            let _ = WAKE[s].compare_exchange(p.w, -1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Drains the wake-up pipe and returns, for each watched signal that arrived, how many times.
    pub(crate) fn take_arrivals(&mut self, out: &mut Vec<(i32, u32)>) {
        if let Some(p) = self.pipe {
            drain(p.r);
        }
        for (s, keys) in self.events.iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            let n = COUNTS[s].swap(0, Ordering::Relaxed);
            if n > 0 {
                out.push((s as i32, n));
            }
        }
    }

    /// After fork: moves to a pipe of this process. Returns the new read end and the old one, which
    /// the caller stops watching and closes (safe: handlers only write to write ends). `None` if
    /// there is nothing to do: no pipe, or no fork since the pipe was taken, so nothing is shared and
    /// the backend re-registers the read end with the other fds.
    ///
    /// The old write end stays open for good: the parent still uses that pipe, so it must not go to
    /// the pool, and a handler in this process may have loaded it from `WAKE` before the switch, so
    /// its number must not be freed for reuse either. One fd per forked base.
    pub(crate) fn reinit(&mut self) -> io::Result<Option<(RawFd, RawFd)>> {
        let Some(old) = self.pipe else {
            return Ok(None);
        };
        if old.pid == sys::getpid() {
            return Ok(None);
        }
        let new = WakePipe::take()?;
        for (s, keys) in self.events.iter().enumerate() {
            if !keys.is_empty() {
                // Arrivals counted before the fork are the parent's to deliver.
                COUNTS[s].store(0, Ordering::Relaxed);
                WAKE[s].store(new.w, Ordering::Relaxed);
            }
        }
        self.pipe = Some(new);
        Ok(Some((new.r, old.r)))
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for s in 0..NSIG {
            if !self.events[s].is_empty() {
                self.events[s].clear();
                self.release(s);
            }
        }
        // After `release`, `WAKE` no longer names this pipe; a handler that loaded it earlier may
        // still write, which is why the pipe is handed on rather than closed.
        if let Some(p) = self.pipe.take() {
            p.give_back();
        }
    }
}
