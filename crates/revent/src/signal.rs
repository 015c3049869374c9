//! Signals: a process-wide handler that only counts and wakes a loop; delivery happens in the loop.
//!
//! The handler increments a per-signal counter and writes one byte to the wake-up pipe of the base
//! that most recently started watching that signal (libevent's rule: one base receives a signal).
//! The base's internal read event on that pipe drains it and activates the signal's events with the
//! number of arrivals. The disposition a signal had before is saved when a base starts watching it and
//! restored when the base's last event for it goes away.

use crate::sys::{self, SavedAction, NSIG};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU32 = AtomicU32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NO_FD: AtomicI32 = AtomicI32::new(-1);

/// Arrivals of each signal not yet delivered.
static COUNTS: [AtomicU32; NSIG] = [ZERO; NSIG];
/// For each signal, the write end of the wake-up pipe of the base that receives it.
static WAKE: [AtomicI32; NSIG] = [NO_FD; NSIG];

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

/// One base's signal state.
pub(crate) struct Signals {
    /// The wake-up pipe (read end, write end), made when the first signal is watched.
    pipe: Option<(RawFd, RawFd)>,
    /// Event keys watching each signal.
    pub(crate) events: Vec<Vec<u32>>,
    saved: Vec<Option<SavedAction>>,
}

impl Signals {
    pub(crate) fn new() -> Signals {
        Signals {
            pipe: None,
            events: (0..NSIG).map(|_| Vec::new()).collect(),
            saved: (0..NSIG).map(|_| None).collect(),
        }
    }

    /// The read end of the wake-up pipe, creating the pipe if needed. Returns `(fd, created)`.
    pub(crate) fn wake_fd(&mut self) -> io::Result<(RawFd, bool)> {
        if let Some((r, _)) = self.pipe {
            return Ok((r, false));
        }
        let p = sys::pipe()?;
        self.pipe = Some(p);
        Ok((p.0, true))
    }

    /// Starts delivering `signo` to this base; the first event for a signal installs the handler.
    pub(crate) fn watch(&mut self, signo: i32, key: u32) -> io::Result<()> {
        let s = signo as usize;
        let (_, w) = self.pipe.expect("wake pipe made before watching");
        if self.events[s].is_empty() {
            let old = sys::install_handler(signo, on_signal)?;
            self.saved[s] = Some(old);
            WAKE[s].store(w, Ordering::Relaxed);
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

    fn release(&mut self, s: usize) {
        if let Some(old) = self.saved[s].take() {
            let _ = sys::restore_handler(s as i32, &old);
        }
        if let Some((_, w)) = self.pipe {
            let _ = WAKE[s].compare_exchange(w, -1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Drains the wake-up pipe and returns, for each watched signal that arrived, how many times.
    pub(crate) fn take_arrivals(&mut self, out: &mut Vec<(i32, u32)>) {
        if let Some((r, _)) = self.pipe {
            let mut buf = [0u8; 256];
            while let Ok(n) = sys::read(r, &mut buf) {
                if n < buf.len() {
                    break;
                }
            }
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

    /// After fork: a fresh pipe (the old one is shared with the parent). Returns the new read end
    /// and the old one, which the caller stops watching.
    pub(crate) fn reinit(&mut self) -> io::Result<Option<(RawFd, RawFd)>> {
        let Some((old_r, old_w)) = self.pipe else {
            return Ok(None);
        };
        let (r, w) = sys::pipe()?;
        for (s, keys) in self.events.iter().enumerate() {
            if !keys.is_empty() {
                WAKE[s].store(w, Ordering::Relaxed);
            }
        }
        sys::close(old_w);
        self.pipe = Some((r, w));
        Ok(Some((r, old_r)))
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
        if let Some((r, w)) = self.pipe.take() {
            sys::close(r);
            sys::close(w);
        }
    }
}
