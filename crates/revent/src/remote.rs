//! [`Remote`]: the `Send + Sync` handle other threads use to reach a base.
//!
//! An [`EventBase`] runs on one thread. Another thread posts to it through a `Remote`: activate an
//! event, break or exit the loop, or run a closure on the loop's thread. Posts go into an inbox under
//! a mutex; the loop drains it from an internal event, so what a post asks for happens inside the loop
//! (with its priorities and `loopbreak` rules), never on the posting thread.
//!
//! Wake-ups coalesce. One atomic word holds two bits: `PENDING` (the inbox has news the loop has not
//! taken) and `SLEEPING` (the loop is, or is about to be, blocked in the kernel). A post sets
//! `PENDING`; only the post that sets it while `SLEEPING` is set writes the eventfd. The loop sets
//! `SLEEPING` before it blocks and does not block if `PENDING` was already set; because both bits live
//! in one word, either the poster sees `SLEEPING` (and writes) or the loop sees `PENDING` (and does
//! not sleep). So a burst of posts costs one `write` and one `read`, and a post to a loop that is
//! busy running callbacks costs the poster no syscall at all: the loop sees it at the top of its
//! next iteration, whose wait then does not block. A loop that just handled posts polls briefly
//! before it sleeps (`SPIN_NS`), so a thread handing it work one piece at a time rarely has to
//! wake it.
//!
//! The eventfd belongs to the shared state, which lives until the base and every `Remote` are gone:
//! a poster can never write into an fd number that was closed and reused.

use crate::base::{Core, EventBase};
use crate::config::Features;
use crate::error::{Error, Result};
use crate::event::{EventId, Fired, What};
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const PENDING: u32 = 1;
const SLEEPING: u32 = 2;

type Job = Box<dyn FnOnce(&mut EventBase) + Send>;

/// What a post asks of the loop.
enum Msg {
    Activate(EventId, What),
    Break,
    Exit(Option<Duration>),
    Run(Job),
}

struct Inbox {
    /// False once the base is dropped: posts then fail instead of queueing forever.
    alive: bool,
    msgs: Vec<Msg>,
}

struct Shared {
    state: AtomicU32,
    inbox: Mutex<Inbox>,
    wake: OwnedFd,
}

impl Shared {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // A poisoned lock only means a poster panicked between two plain Vec operations; the inbox is
        // still consistent.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle that other threads use to wake a base's loop, activate its events, stop it, or run a
/// closure on its thread. Get one with [`EventBase::remote`]; clone it freely.
///
/// Every call returns [`Error::BaseGone`] once the base has been dropped; none blocks for longer
/// than a short mutex hold. An activation of an event that is freed by the time the loop sees it is
/// ignored.
///
/// ```
/// use revent::{EventBase, LoopFlags, What};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// let mut base = EventBase::new().unwrap();
/// let hits = Arc::new(AtomicU32::new(0));
/// let h = hits.clone();
/// let ev = base.new_event(-1, What::NONE, move |_, _| { h.fetch_add(1, Ordering::Relaxed); }).unwrap();
/// let remote = base.remote().unwrap();
/// let worker = std::thread::spawn(move || {
///     remote.activate(ev, What::READ).unwrap();
///     // Exit once this iteration's callbacks (the activated event's among them) have run.
///     remote.run(|base| base.loopexit(None).unwrap()).unwrap();
/// });
/// base.run(LoopFlags::NO_EXIT_ON_EMPTY).unwrap();
/// worker.join().unwrap();
/// assert_eq!(hits.load(Ordering::Relaxed), 1);
/// ```
#[derive(Clone)]
pub struct Remote {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("wake_fd", &self.shared.wake.as_raw_fd())
            .finish()
    }
}

impl Remote {
    /// Makes the loop go round once (returning from its wait) without asking anything else.
    pub fn wake(&self) -> Result<()> {
        self.post(None)
    }

    /// Activates event `id` with `what`, as [`EventBase::activate`] would on the loop's thread
    /// (libevent's `event_active` from another thread).
    pub fn activate(&self, id: EventId, what: What) -> Result<()> {
        self.post(Some(Msg::Activate(id, what)))
    }

    /// Makes the loop return after the callback it is running (or at once if it is waiting).
    pub fn loopbreak(&self) -> Result<()> {
        self.post(Some(Msg::Break))
    }

    /// Makes the loop return after the current iteration, or once `after` has passed.
    pub fn loopexit(&self, after: Option<Duration>) -> Result<()> {
        self.post(Some(Msg::Exit(after)))
    }

    /// Runs `f` on the loop's thread, from inside the loop, with the base.
    pub fn run<F>(&self, f: F) -> Result<()>
    where
        F: FnOnce(&mut EventBase) + Send + 'static,
    {
        self.post(Some(Msg::Run(Box::new(f))))
    }

    fn post(&self, msg: Option<Msg>) -> Result<()> {
        {
            let mut inbox = self.shared.inbox();
            if !inbox.alive {
                return Err(Error::BaseGone);
            }
            if let Some(m) = msg {
                inbox.msgs.push(m);
            }
        }
        let prev = self.shared.state.fetch_or(PENDING, Ordering::SeqCst);
        if prev & PENDING == 0 && prev & SLEEPING != 0 {
            sys::eventfd_signal(self.shared.wake.as_raw_fd())?;
        }
        Ok(())
    }
}

/// How long a loop that just handled posts polls for the next one before it sleeps, on a machine
/// with more than one CPU. A thread that hands work to a loop and waits for the result posts again
/// within a microsecond or two of getting it; catching that post awake saves the eventfd write, the
/// wake-up from `epoll_wait` and the read (3 syscalls and a context switch, about 4 µs here). A loop
/// that handled no post since it last slept does not spin, and one whose spins keep missing (posts
/// come, but sparsely) spins ever more rarely: after a miss it skips the next 1, 3, 7 ... 63
/// chances, and a hit makes it spin every time again.
const SPIN_NS: u64 = 2_000;
/// The most chances skipped after repeated misses: 2^6 - 1.
const SPIN_MAX_BACKOFF: u32 = 6;

/// The base's side: the shared state, the internal event on the eventfd, and a spare message vector
/// (so draining does not allocate).
pub(crate) struct Local {
    shared: Arc<Shared>,
    ev: EventId,
    spare: Vec<Msg>,
    /// Posts were handled since the loop last went to sleep: spin before the next sleep.
    hot: bool,
    /// Spinning can help: another CPU may be posting while this one polls.
    may_spin: bool,
    /// Chances to spin left to skip, and the exponent of the skip after the last miss.
    spin_skip: u32,
    spin_backoff: u32,
}

impl Local {
    /// Creates the eventfd and its internal event in `base`.
    pub(crate) fn new(base: &mut EventBase) -> Result<Local> {
        let wake = sys::eventfd()?;
        // Edge-triggered where the backend can: the drain reads the counter to zero anyway, so a
        // level-triggered registration would only re-report what the drain handles.
        let et = if base.core.features().contains(Features::ET) {
            What::ET
        } else {
            What::NONE
        };
        let ev =
            base.core
                .new_internal(wake.as_raw_fd(), What::READ | What::PERSIST | et, drain)?;
        // Before user events, as the signal wake-up: what a post activates runs in this iteration.
        if let Err(e) = base
            .core
            .set_priority(ev, 0)
            .and_then(|()| base.core.add(ev, None))
        {
            let _ = base.core.free(ev);
            return Err(e);
        }
        Ok(Local {
            shared: Arc::new(Shared {
                state: AtomicU32::new(0),
                inbox: Mutex::new(Inbox {
                    alive: true,
                    msgs: Vec::new(),
                }),
                wake,
            }),
            ev,
            spare: Vec::new(),
            hot: false,
            may_spin: sys::online_cpus() > 1,
            spin_skip: 0,
            spin_backoff: 0,
        })
    }

    pub(crate) fn handle(&self) -> Remote {
        Remote {
            shared: self.shared.clone(),
        }
    }

    /// At the top of every iteration: posts that arrived without a wake-up (the loop was awake) get
    /// the drain event activated.
    #[inline]
    pub(crate) fn check(&self, core: &mut Core) {
        if self.shared.state.load(Ordering::Acquire) & PENDING != 0 {
            let _ = core.activate(self.ev, What::TIMEOUT, 1);
        }
    }

    /// After `fork`: the eventfd is shared with the parent. Handles made before the fork stop
    /// working in the child (they get `BaseGone`); the base makes a fresh `Local`.
    pub(crate) fn forget_after_fork(mut self, core: &mut Core) {
        let _ = core.free(self.ev);
        self.close();
    }

    /// Before a blocking wait: announce it, unless posts are pending (then do not block). Returns
    /// whether the loop may block. A loop that just handled posts first polls for a while (see
    /// `SPIN_NS`).
    #[inline]
    pub(crate) fn going_to_sleep(&mut self) -> bool {
        if self.hot && self.may_spin {
            self.hot = false;
            if self.spin_skip > 0 {
                self.spin_skip -= 1;
            } else if self.spin_for_post() {
                self.spin_backoff = 0;
                return false;
            } else {
                self.spin_backoff = (self.spin_backoff + 1).min(SPIN_MAX_BACKOFF);
                self.spin_skip = (1 << self.spin_backoff) - 1;
            }
        }
        let prev = self.shared.state.fetch_or(SLEEPING, Ordering::SeqCst);
        if prev & PENDING != 0 {
            self.shared.state.fetch_and(!SLEEPING, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Polls for a post for up to `SPIN_NS`; whether one came.
    #[cold]
    fn spin_for_post(&self) -> bool {
        let start = sys::monotonic_ns();
        loop {
            // Reading the clock costs more than a poll: look at it every 32 polls.
            for _ in 0..32 {
                if self.shared.state.load(Ordering::Acquire) & PENDING != 0 {
                    return true;
                }
                std::hint::spin_loop();
            }
            if sys::monotonic_ns().wrapping_sub(start) >= SPIN_NS {
                return false;
            }
        }
    }

    #[inline]
    pub(crate) fn woke_up(&self) {
        self.shared.state.fetch_and(!SLEEPING, Ordering::SeqCst);
    }

    /// The base is going away: refuse further posts and drop what is queued (outside the lock, since
    /// a closure's drop may post).
    pub(crate) fn close(&mut self) {
        let msgs = {
            let mut inbox = self.shared.inbox();
            inbox.alive = false;
            std::mem::take(&mut inbox.msgs)
        };
        drop(msgs);
    }
}

/// The internal event's callback: takes every queued message and carries it out.
fn drain(base: &mut EventBase, fired: Fired) {
    let Some(local) = base.remote.as_mut() else {
        return;
    };
    if fired.what.contains(What::READ) {
        sys::eventfd_clear(local.shared.wake.as_raw_fd());
    }
    // Clear PENDING before taking the messages: a post after this either lands in this batch or sets
    // PENDING again for the next iteration.
    local.shared.state.fetch_and(!PENDING, Ordering::SeqCst);
    let mut msgs = std::mem::take(&mut local.spare);
    std::mem::swap(&mut msgs, &mut local.shared.inbox().msgs);
    local.hot |= !msgs.is_empty();
    let mut rest = msgs.drain(..);
    while let Some(msg) = rest.next() {
        let unwound = match msg {
            Msg::Activate(id, what) => {
                let _ = base.core.activate(id, what, 1);
                None
            }
            Msg::Break => {
                base.core.got_break = true;
                None
            }
            Msg::Exit(after) => {
                let _ = base.core.loopexit(after);
                None
            }
            Msg::Run(job) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(base))).err()
            }
        };
        if unwound.is_some() || base.core.got_break {
            // What was not carried out yet waits for the next iteration (or the next run).
            let left: Vec<Msg> = rest.by_ref().collect();
            if !left.is_empty() {
                requeue(base, left);
            }
            if let Some(payload) = unwound {
                std::panic::resume_unwind(payload);
            }
            break;
        }
    }
    drop(rest);
    if let Some(local) = base.remote.as_mut() {
        local.spare = msgs;
    }
}

/// Puts unprocessed messages back at the front of the inbox and marks them pending.
fn requeue(base: &mut EventBase, mut left: Vec<Msg>) {
    let Some(local) = base.remote.as_ref() else {
        return;
    };
    {
        let mut inbox = local.shared.inbox();
        left.append(&mut inbox.msgs);
        inbox.msgs = left;
    }
    local.shared.state.fetch_or(PENDING, Ordering::SeqCst);
}
