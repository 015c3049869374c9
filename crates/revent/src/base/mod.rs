//! `EventBase`: the loop, its phases, and the state the layers above keep in it.
//!
//! # One iteration
//! 1. Posts from other threads ([`Remote`]) that arrived while the loop was awake get their drain
//!    event activated.
//! 2. The *prepare phase*: each layer that registered a prepare hook (the bufferevents do) brings its
//!    state up to date: a bufferevent whose output grew writes it now, rather than after another
//!    readiness round trip. A hook runs no user callback (only a filter bufferevent's filter
//!    functions, which move bytes between two buffers); anything that would call one is queued as a
//!    *deferred callback*, an internal event in the active queues.
//! 3. Interest changes go to the backend; the loop exits if nothing is pending or active.
//! 4. The wait (zero if anything is active), then ready fds and expired timers join the active
//!    queues.
//! 5. The highest-priority non-empty queue runs. Event callbacks and deferred callbacks are all
//!    entries of these queues, so priorities, `max_dispatch_callbacks`, `ONCE`, `loopbreak` and
//!    `loopexit` hold for every piece of user code.
//!
//! The base does not know what the layers are: a layer's state is stored here as an opaque value
//! (see [`Layer`]), and its hooks and deferred callbacks are plain functions and events. Dependencies
//! point one way, from `bufferevent` and `listener` to `base`.
//!
//! # Re-entering the base from foreign code: the aliasing model
//! A callback receives `&mut EventBase`. Everything it does to the base (add, delete, free, break)
//! goes through that reference: there is never a second `&mut EventBase` made from a raw pointer while
//! the dispatcher's is alive, which would be undefined behaviour even when it appears to work.
//!
//! A foreign caller (the C ABI) keeps the base as a raw pointer from `Box::into_raw`. It follows two
//! rules:
//! - **Outside the loop**, each call makes a short-lived `&mut EventBase` from that pointer.
//! - **Inside a callback**, a call must not use the stored pointer: the dispatcher's `&mut` is alive
//!   further up the stack and a write through the stored pointer would invalidate it. The callback
//!   trampoline stores the pointer *derived from the `&mut EventBase` it received* (for example in a
//!   thread-local) for the duration of the foreign callback, and every re-entrant call uses that one.
//!   Being derived from the live reference, it may be used freely until the trampoline returns.
//!
//! The same holds one level down for buffers. A bufferevent's [`Evbuffer`](crate::Evbuffer)s are heap
//! values owned through raw pointers (never a `Box`, which would be re-asserted unique on every
//! move), so their addresses are stable and a foreign holder's pointer
//! ([`BufferEvent::buffer_ptrs`](crate::BufferEvent::buffer_ptrs)) stays valid until the bufferevent is
//! freed. Rust makes a fresh, short reference from the raw pointer for each operation and never keeps
//! one across a user callback, so the foreign pointer may be used whenever no Rust call on that buffer
//! is in progress. An Evbuffer's change callbacks receive the buffer itself (`&mut Evbuffer`) and run
//! after the operation is done with it; foreign code reading the buffer from such a callback uses the
//! pointer the callback was given. Changes made through a foreign pointer are not missed: the buffer
//! tells its owner, which writes (or resumes reading) in the next prepare phase.
//!
//! `tests/aliasing.rs` drives both paths through raw pointers and runs under Miri with Tree Borrows
//! in CI.

mod core;

pub(crate) use self::core::Core;

use crate::config::{Config, Features, LoopFlags, Method};
use crate::error::{Error, Result};
use crate::event::{EventId, Fired, What};
use crate::registry::NONE;
use crate::remote::{self, Remote};
use crate::sys::AnyBox;
use std::any::{Any, TypeId};
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant, SystemTime};

/// How a loop run ended.
///
/// ```
/// use revent::{EventBase, LoopExit};
/// let mut base = EventBase::new().unwrap();
/// assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
/// base.loopexit(None).unwrap();
/// assert_eq!(base.dispatch().unwrap(), LoopExit::Done);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopExit {
    /// Stopped by `loopexit`, `loopbreak`, or because ONCE/NONBLOCK work was done.
    Done,
    /// No events were pending or active (libevent's return value 1).
    NoEvents,
}

/// What [`EventBase::foreach_event`] and [`EventBase::event_info`] tell about an event.
///
/// ```
/// use revent::{EventBase, What};
/// let mut base = EventBase::new().unwrap();
/// let ev = base.new_timer(|_, _| {});
/// base.add(ev, Some(std::time::Duration::from_secs(5))).unwrap();
/// let info = base.event_info(ev).unwrap();
/// assert_eq!((info.fd, info.pending), (-1, What::TIMEOUT));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventInfo {
    /// The event.
    pub id: EventId,
    /// Its fd (or signal number, or -1).
    pub fd: RawFd,
    /// What it was created to wait for (including PERSIST and ET).
    pub what: What,
    /// Its priority.
    pub priority: usize,
    /// Which of READ/WRITE/CLOSED/SIGNAL/TIMEOUT it is pending on, plus what it is active with.
    pub pending: What,
    /// What it is active with (waiting in an active queue to run), or `What::NONE`.
    pub active: What,
}

/// How many layers the base has room for (each claims one slot with [`Layer::SLOT`]).
const LAYER_SLOTS: usize = 2;

/// State that a layer above the loop (bufferevents, listeners) keeps in the base.
pub(crate) trait Layer: Any + Default {
    /// The layer's slot (below `LAYER_SLOTS`, one per layer): a fixed index, so that finding the
    /// layer costs no search (the bufferevent path looks it up a few times per event).
    const SLOT: usize;
    /// Work the layer does before every wait, once it exists in a base. It returns whether work is
    /// left over (the loop then does not block).
    const PREPARE: Option<fn(&mut EventBase) -> bool> = None;
}

/// Opaque values by type: the application's state ([`EventBase::set_state`]).
#[derive(Default)]
struct Layers {
    entries: Vec<(TypeId, Box<dyn Any>)>,
}

impl Layers {
    #[inline]
    fn position<T: Any>(&self) -> Option<usize> {
        let id = TypeId::of::<T>();
        self.entries.iter().position(|(t, _)| *t == id)
    }

    #[inline]
    fn get<T: Any>(&self) -> Option<&T> {
        let i = self.position::<T>()?;
        self.entries[i].1.downcast_ref()
    }

    #[inline]
    fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        let i = self.position::<T>()?;
        self.entries[i].1.downcast_mut()
    }

    fn insert<T: Any>(&mut self, value: T) -> Option<T> {
        let old = self.remove::<T>();
        self.entries.push((TypeId::of::<T>(), Box::new(value)));
        old
    }

    fn remove<T: Any>(&mut self) -> Option<T> {
        let i = self.position::<T>()?;
        let (_, b) = self.entries.remove(i);
        b.downcast().ok().map(|b| *b)
    }
}

/// The event loop: waits for fds, timers and signals, and runs callbacks by priority.
///
/// ```
/// use revent::{EventBase, LoopExit};
/// use std::time::Duration;
/// use std::rc::Rc;
/// use std::cell::Cell;
///
/// let mut base = EventBase::new().unwrap();
/// let fired = Rc::new(Cell::new(false));
/// let f = fired.clone();
/// let timer = base.new_timer(move |_, _| f.set(true));
/// base.add(timer, Some(Duration::from_millis(5))).unwrap();
/// assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
/// assert!(fired.get());
/// ```
pub struct EventBase {
    // Declared first so the layers (bufferevents, listeners, closing their sockets) drop before the
    // events and the backend.
    layers: [Option<AnyBox>; LAYER_SLOTS],
    state: Layers,
    pub(crate) core: Core,
    prepare: Vec<fn(&mut EventBase) -> bool>,
    /// The event whose callback is running (innermost), for `running_event`.
    running_ev: Option<EventId>,
    pub(crate) remote: Option<remote::Local>,
}

impl Drop for EventBase {
    fn drop(&mut self) {
        if let Some(r) = self.remote.as_mut() {
            r.close();
        }
    }
}

impl EventBase {
    /// A base with the best available backend (epoll, then io_uring, poll and select).
    pub fn new() -> Result<EventBase> {
        EventBase::with_config(&Config::new())
    }

    /// A base built as `cfg` says.
    pub fn with_config(cfg: &Config) -> Result<EventBase> {
        Ok(EventBase {
            layers: Default::default(),
            state: Layers::default(),
            core: Core::with_config(cfg)?,
            prepare: Vec::new(),
            running_ev: None,
            remote: None,
        })
    }

    /// Whether a method is available on this machine (for tests and tools).
    ///
    /// io_uring is tried on a short-lived thread of its own: when a ring closes, the kernel's
    /// teardown posts work to every thread that used it, and that notice makes the thread's next
    /// blocking syscall with a timeout (a socket read under `SO_RCVTIMEO`, say) fail with EINTR
    /// once. The probe thread takes that notice instead of the caller, and inherits the caller's
    /// seccomp filters, so the answer is the caller's.
    pub fn method_available(m: Method) -> bool {
        if m != Method::IoUring {
            return crate::backend::Backend::new(m, false).is_ok();
        }
        std::thread::Builder::new()
            .name("revent-uring-probe".into())
            .spawn(|| crate::backend::Backend::new(Method::IoUring, false).is_ok())
            .ok()
            .and_then(|t| t.join().ok())
            .unwrap_or(false)
    }

    /// The backend's name: "epoll", "io_uring", "poll" or "select".
    pub fn method(&self) -> &'static str {
        self.core.method()
    }

    /// What the backend supports.
    pub fn features(&self) -> Features {
        self.core.features()
    }

    // ---- creating events ----

    /// Creates an event on `fd` (or a signal, with `What::SIGNAL`: `fd` is then the signal number; or
    /// a pure timer, with `fd` -1 and no READ/WRITE/CLOSED). It is not pending until [`add`](Self::add).
    pub fn new_event<F>(&mut self, fd: RawFd, what: What, cb: F) -> Result<EventId>
    where
        F: FnMut(&mut EventBase, Fired) + 'static,
    {
        self.core.new_event(fd, what, cb)
    }

    /// Creates a one-shot timer: once [`add`](Self::add)ed with a timeout, it fires once and is then
    /// no longer pending (add it again to re-arm it). See [`new_persistent_timer`](Self::new_persistent_timer)
    /// for one that repeats.
    pub fn new_timer<F>(&mut self, cb: F) -> EventId
    where
        F: FnMut(&mut EventBase, Fired) + 'static,
    {
        self.core.new_timer(cb)
    }

    /// Creates a repeating timer: once [`add`](Self::add)ed with a timeout `d`, it fires every `d`
    /// (measured from the previous deadline, so it does not drift) until deleted.
    ///
    /// ```
    /// use revent::EventBase;
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let mut ticks = 0;
    /// let tick = base.new_persistent_timer(move |base, fired| {
    ///     ticks += 1;
    ///     if ticks == 3 {
    ///         base.free(fired.id).unwrap();
    ///     }
    /// });
    /// base.add(tick, Some(Duration::from_millis(1))).unwrap();
    /// base.dispatch().unwrap();
    /// ```
    pub fn new_persistent_timer<F>(&mut self, cb: F) -> EventId
    where
        F: FnMut(&mut EventBase, Fired) + 'static,
    {
        self.core
            .new_event(-1, What::PERSIST, cb)
            .expect("a timer needs no fd")
    }

    /// Creates a persistent event for signal `signo` (see [`crate::sig`] for the numbers).
    pub fn new_signal<F>(&mut self, signo: i32, cb: F) -> Result<EventId>
    where
        F: FnMut(&mut EventBase, Fired) + 'static,
    {
        self.core.new_signal(signo, cb)
    }

    /// Runs `cb` once: when `fd` is ready for `what` (READ and/or WRITE), or when `timeout` passes, or
    /// at the next iteration if there is neither. The event frees itself afterwards.
    pub fn once<F>(&mut self, fd: RawFd, what: What, timeout: Option<Duration>, cb: F) -> Result<()>
    where
        F: FnOnce(&mut EventBase, Fired) + 'static,
    {
        self.core.once(fd, what, timeout, cb)
    }

    // ---- add, del, activate, free ----

    /// Makes an event pending, with an optional timeout (the callback then sees `What::TIMEOUT`).
    /// Adding a pending event again resets its timeout; adding it with `None` keeps a timeout it
    /// already has. A persistent event with a timeout re-arms it every time it fires.
    pub fn add(&mut self, id: EventId, timeout: Option<Duration>) -> Result<()> {
        self.core.add(id, timeout)
    }

    /// Makes an event non-pending: no fd, signal or timeout wakes it, and a callback it has waiting
    /// in an active queue does not run. Deleting an event that is not pending is not an error.
    pub fn del(&mut self, id: EventId) -> Result<()> {
        self.core.del(id)
    }

    /// Frees an event: it is deleted, its callback dropped, and `id` becomes stale. An event may free
    /// itself from its own callback.
    pub fn free(&mut self, id: EventId) -> Result<()> {
        self.core.free(id)
    }

    /// Removes the event's timeout (and a persistent event's interval) but leaves it pending on its fd
    /// or signal (libevent's `event_remove_timer`).
    ///
    /// ```
    /// use revent::{EventBase, What};
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let ev = base.new_signal(revent::sig::SIGUSR2, |_, _| {}).unwrap();
    /// base.add(ev, Some(Duration::from_secs(5))).unwrap();
    /// base.remove_timer(ev).unwrap();
    /// assert_eq!(base.pending(ev, What::SIGNAL | What::TIMEOUT).unwrap().0, What::SIGNAL);
    /// base.free(ev).unwrap();
    /// ```
    pub fn remove_timer(&mut self, id: EventId) -> Result<()> {
        self.core.remove_timer(id)
    }

    /// Activates every event inserted on `fd` for some of `what` (READ, WRITE, CLOSED), as if the
    /// kernel had reported it (libevent's `event_base_active_by_fd`). Returns how many.
    ///
    /// ```
    /// use revent::{EventBase, What};
    /// use std::os::fd::AsRawFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut base = EventBase::new().unwrap();
    /// let ev = base.new_event(a.as_raw_fd(), What::READ, |_, f| assert_eq!(f.what, What::READ)).unwrap();
    /// base.add(ev, None).unwrap();
    /// assert_eq!(base.activate_fd(a.as_raw_fd(), What::READ | What::WRITE), 1);
    /// base.dispatch().unwrap();
    /// ```
    pub fn activate_fd(&mut self, fd: RawFd, what: What) -> usize {
        self.core.activate_fd(fd, what)
    }

    /// Activates every event watching signal `signo`, as if it had arrived once (libevent's
    /// `event_base_active_by_signal`). Returns how many.
    pub fn activate_signal(&mut self, signo: i32) -> usize {
        self.core.activate_signal(signo)
    }

    /// The event whose callback is running now (the innermost, if a callback runs the loop of
    /// another base), or `None` outside callbacks (libevent's `event_base_get_running_event`).
    ///
    /// ```
    /// use revent::{EventBase, What};
    /// let mut base = EventBase::new().unwrap();
    /// let ev = base.new_event(-1, What::NONE, |base, fired| {
    ///     assert_eq!(base.running_event(), Some(fired.id));
    /// }).unwrap();
    /// base.activate(ev, What::TIMEOUT, 1).unwrap();
    /// base.dispatch().unwrap();
    /// assert_eq!(base.running_event(), None);
    /// ```
    pub fn running_event(&self) -> Option<EventId> {
        self.running_ev
    }

    /// Runs the event's callback at the next chance, as if `what` had happened, without I/O.
    /// Activating an event that is already active adds `what` to what it will see.
    pub fn activate(&mut self, id: EventId, what: What, count: u32) -> Result<()> {
        self.core.activate(id, what, count)
    }

    /// Which of `what` (READ, WRITE, CLOSED, SIGNAL, TIMEOUT) the event is pending or active on, and
    /// its deadline if TIMEOUT is asked for and armed.
    pub fn pending(&self, id: EventId, what: What) -> Result<(What, Option<Instant>)> {
        self.core.pending(id, what)
    }

    /// The fd, flags, priority and pending state of an event.
    pub fn event_info(&self, id: EventId) -> Result<EventInfo> {
        self.core.event_info(id)
    }

    // ---- priorities ----

    /// Sets the number of priority queues (1..=255, libevent's limit; default 1). Events made
    /// afterwards get priority `n / 2`. Fails while any event is active.
    pub fn init_priorities(&mut self, n: usize) -> Result<()> {
        self.core.init_priorities(n)
    }

    /// The number of priority queues.
    pub fn priorities(&self) -> usize {
        self.core.priorities()
    }

    /// Sets an event's priority (0 is the most urgent). Fails while the event is active.
    pub fn set_priority(&mut self, id: EventId, pri: usize) -> Result<()> {
        self.core.set_priority(id, pri)
    }

    // ---- time ----

    /// The time the loop last read the clock (or now, outside the loop). Monotonic.
    pub fn now_cached(&self) -> Instant {
        self.core.now_cached()
    }

    /// Wall-clock time matching [`now_cached`](Self::now_cached) (libevent's `gettimeofday_cached`).
    pub fn wall_cached(&self) -> SystemTime {
        self.core.wall_cached()
    }

    /// Refreshes the cached time (useful in a long callback). No effect outside the loop.
    pub fn update_cache_time(&mut self) {
        self.core.update_cache_time()
    }

    /// Declares `d` a common timeout: afterwards every add with exactly this duration goes on a FIFO
    /// queue and costs O(1) instead of a heap insertion. Returns the duration to pass to `add`.
    pub fn init_common_timeout(&mut self, d: Duration) -> Result<Duration> {
        self.core.init_common_timeout(d)
    }

    // ---- the loop ----

    /// Runs the loop until no events are pending, or `loopexit`/`loopbreak`.
    pub fn dispatch(&mut self) -> Result<LoopExit> {
        self.run(LoopFlags::NONE)
    }

    /// Runs the loop as `flags` say (libevent's `event_base_loop`).
    ///
    /// A callback that panics unwinds out of `run`, and the base stays usable: the loop is no longer
    /// marked running, the callback is back in its event (a `once` event is freed), and a later `run`
    /// carries on with what was pending.
    pub fn run(&mut self, flags: LoopFlags) -> Result<LoopExit> {
        if self.core.running {
            return Err(Error::InvalidArgument(
                "the loop is already running on this base",
            ));
        }
        self.core.running = true;
        self.core.got_exit = false;
        self.core.got_break = false;
        let r = catch_unwind(AssertUnwindSafe(|| self.run_loop(flags)));
        self.core.running = false;
        self.core.flush_changes(false);
        self.core.clock.clear();
        r.unwrap_or_else(|payload| resume_unwind(payload))
    }

    #[inline(always)]
    fn run_loop(&mut self, flags: LoopFlags) -> Result<LoopExit> {
        let nonblock = flags.contains(LoopFlags::NONBLOCK);
        loop {
            self.core.cont = false;
            if self.core.got_exit || self.core.got_break {
                return Ok(LoopExit::Done);
            }
            if let Some(r) = &self.remote {
                r.check(&mut self.core);
            }
            let more = self.run_prepare();
            self.core.flush_changes(false);
            if !flags.contains(LoopFlags::NO_EXIT_ON_EMPTY)
                && self.core.reg.event_count == 0
                && self.core.reg.n_active == 0
                && !more
                && !self.core.ring_busy()
            {
                return Ok(LoopExit::NoEvents);
            }
            self.core.clock.clear();
            let mut timeout = self.core.wait_timeout(nonblock || more);
            let mut sleeping = false;
            if timeout != Some(Duration::ZERO) {
                if let Some(r) = &mut self.remote {
                    sleeping = r.going_to_sleep();
                    if !sleeping {
                        r.check(&mut self.core);
                        timeout = Some(Duration::ZERO);
                    }
                }
            }
            let waited = self.core.wait(timeout);
            if sleeping {
                if let Some(r) = &self.remote {
                    r.woke_up();
                }
            }
            waited?;
            let mut done = false;
            if self.core.reg.n_active > 0 {
                let n = self.process_active();
                if flags.contains(LoopFlags::ONCE) && self.core.reg.n_active == 0 && n > 0 {
                    done = true;
                }
            } else if nonblock {
                done = true;
            }
            if done {
                return Ok(LoopExit::Done);
            }
        }
    }

    /// The prepare phase: every layer's hook, in the order the layers appeared. Returns whether any
    /// has work left over.
    #[inline]
    fn run_prepare(&mut self) -> bool {
        let mut more = false;
        for i in 0..self.prepare.len() {
            let hook = self.prepare[i];
            more |= hook(self);
        }
        more
    }

    /// Runs the highest-priority non-empty queue; returns how many callbacks ran.
    fn process_active(&mut self) -> usize {
        let Some((pri, _)) = self.core.reg.first_active() else {
            return 0;
        };
        let (max, end) = self.core.dispatch_limits(pri);
        let mut count = 0;
        loop {
            let key = self.core.reg.head(pri);
            if key == NONE {
                break;
            }
            self.run_one(key);
            count += 1;
            if self.core.got_break || count >= max {
                break;
            }
            if let Some(end) = end {
                if self.core.clock.update() >= end {
                    break;
                }
            }
            if self.core.cont {
                break;
            }
        }
        count
    }

    #[inline]
    fn run_one(&mut self, key: u32) {
        let Some((mut cb, fired)) = self.core.start_run(key) else {
            return;
        };
        let outer = self.running_ev.replace(fired.id);
        // The callback is out of its slot while it runs; if it panics, it goes back all the same.
        let r = catch_unwind(AssertUnwindSafe(|| cb(self, fired)));
        self.running_ev = outer;
        self.core.finish_run(fired.id, cb);
        if let Err(payload) = r {
            resume_unwind(payload);
        }
    }

    /// Makes the running loop return after the current iteration's callbacks, or after `after`.
    pub fn loopexit(&mut self, after: Option<Duration>) -> Result<()> {
        self.core.loopexit(after)
    }

    /// Makes the running loop return right after the current callback.
    pub fn loopbreak(&mut self) {
        self.core.got_break = true;
    }

    /// Makes the running loop stop running callbacks and check for new events now.
    pub fn loopcontinue(&mut self) {
        self.core.cont = true;
    }

    /// Whether the last loop run ended because of `loopexit`.
    pub fn got_exit(&self) -> bool {
        self.core.got_exit
    }

    /// Whether the last loop run ended because of `loopbreak`.
    pub fn got_break(&self) -> bool {
        self.core.got_break
    }

    // ---- other threads ----

    /// A handle that other threads can use to wake this loop, activate its events, stop it, or run
    /// closures on its thread (see [`Remote`]). The first call creates the base's eventfd.
    pub fn remote(&mut self) -> Result<Remote> {
        if self.remote.is_none() {
            let local = remote::Local::new(self)?;
            self.remote = Some(local);
        }
        Ok(self.remote.as_ref().expect("just made").handle())
    }

    // ---- fork ----

    /// Re-creates kernel state after `fork()`; call it in the child before using the base there.
    /// [`Remote`] handles made before the fork report [`Error::BaseGone`] in the child; make new ones.
    pub fn reinit(&mut self) -> Result<()> {
        self.core.reinit()?;
        if let Some(old) = self.remote.take() {
            old.forget_after_fork(&mut self.core);
            let local = remote::Local::new(self)?;
            self.remote = Some(local);
        }
        Ok(())
    }

    // ---- inspection ----

    /// Writes a list of the inserted and the active events, as libevent's `event_base_dump_events`.
    pub fn dump_events(&self, w: &mut dyn Write) -> io::Result<()> {
        self.core.dump_events(w)
    }

    /// Calls `f` for every pending or active event (not the base's internal ones) until it returns
    /// false.
    pub fn foreach_event(&self, f: impl FnMut(EventInfo) -> bool) {
        self.core.foreach_event(f)
    }

    /// How many events are pending or active (not counting the base's internal ones).
    pub fn num_events(&self) -> usize {
        self.core.num_events()
    }

    // ---- the application's state ----

    /// Keeps the application's state of type `T` in the base, so that every callback can reach it
    /// through the base it is given (no `Rc<RefCell<..>>` per callback). Returns the value it
    /// replaces. One value per type.
    ///
    /// ```
    /// use revent::EventBase;
    /// struct Counter(u32);
    /// let mut base = EventBase::new().unwrap();
    /// base.set_state(Counter(0));
    /// let tick = base.new_timer(|base, _| base.state_mut::<Counter>().unwrap().0 += 1);
    /// base.add(tick, None).unwrap();
    /// base.activate(tick, revent::What::TIMEOUT, 1).unwrap();
    /// base.dispatch().unwrap();
    /// assert_eq!(base.state::<Counter>().unwrap().0, 1);
    /// ```
    pub fn set_state<T: Any>(&mut self, state: T) -> Option<T> {
        self.state.insert(state)
    }

    /// The application's state of type `T`, if set.
    pub fn state<T: Any>(&self) -> Option<&T> {
        self.state.get()
    }

    /// The application's state of type `T`, if set, to change it.
    pub fn state_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.state.get_mut()
    }

    /// Takes the application's state of type `T` out of the base.
    pub fn take_state<T: Any>(&mut self) -> Option<T> {
        self.state.remove()
    }

    /// Runs `f` with the base and the application's state of type `T` at once (for calls that need
    /// both). The state is out of the base while `f` runs (so `state::<T>()` is `None` inside) and
    /// goes back afterwards, even if `f` panics. `None` if no state of that type is set.
    ///
    /// ```
    /// use revent::EventBase;
    /// use std::time::Duration;
    /// #[derive(Default)]
    /// struct App { timeouts: u32 }
    /// let mut base = EventBase::new().unwrap();
    /// base.set_state(App::default());
    /// let t = base.new_timer(|base, _| {
    ///     base.with_state(|base, app: &mut App| {
    ///         app.timeouts += 1;
    ///         base.loopbreak();
    ///     });
    /// });
    /// base.add(t, Some(Duration::from_millis(1))).unwrap();
    /// base.dispatch().unwrap();
    /// assert_eq!(base.state::<App>().unwrap().timeouts, 1);
    /// ```
    pub fn with_state<T: Any, R>(
        &mut self,
        f: impl FnOnce(&mut EventBase, &mut T) -> R,
    ) -> Option<R> {
        let mut state = self.state.remove::<T>()?;
        let r = catch_unwind(AssertUnwindSafe(|| f(self, &mut state)));
        if self.state.get::<T>().is_none() {
            self.state.insert(state);
        }
        Some(r.unwrap_or_else(|payload| resume_unwind(payload)))
    }

    // ---- the layers' state ----

    /// The loop's core and layer `T`'s state at once, creating the state (and registering its
    /// prepare hook) on first use.
    #[inline]
    pub(crate) fn split<T: Layer>(&mut self) -> (&mut Core, &mut T) {
        if self.layers[T::SLOT].is_none() {
            self.add_layer::<T>();
        }
        let state = self.layers[T::SLOT]
            .as_mut()
            .and_then(AnyBox::get_mut::<T>)
            .expect("two layers claim one slot");
        (&mut self.core, state)
    }

    /// Layer `T`'s state, if it exists yet.
    #[inline]
    pub(crate) fn layer<T: Layer>(&self) -> Option<&T> {
        self.layers[T::SLOT].as_ref()?.get()
    }

    #[cold]
    fn add_layer<T: Layer>(&mut self) {
        self.layers[T::SLOT] = Some(AnyBox::new(T::default()));
        if let Some(hook) = T::PREPARE {
            self.prepare.push(hook);
        }
    }
}
