//! `Core`: everything the loop works on except the layers above it: the registry of events, the
//! per-fd interest and changelist, timers, signals, the backend and the clock.
//!
//! [`EventBase`](super::EventBase) wraps a `Core` and the higher layers' state side by side, so that a
//! layer can hold `&mut Core` and `&mut` its own state at once (see `EventBase::split`).

use super::{EventBase, EventInfo};
use crate::backend::{Backend, Ready};
use crate::config::{Config, ConfigFlags, Features, Method};
use crate::error::{Error, Result};
use crate::event::{EventId, Fired, What};
use crate::io_map::{IoMap, IO_BITS};
use crate::registry::{
    Callback, Registry, Run, ACTIVE, EDGE_OK, INSERTED, INTERNAL, NONE, NO_INTERVAL, ONCE, TIMEOUT,
};
use crate::signal::Signals;
use crate::sys;
use crate::time::{duration_ns, Clock};
use crate::timer::Timers;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::time::{Duration, Instant, SystemTime};

pub(crate) struct Core {
    pub(crate) reg: Registry,
    io: IoMap,
    timers: Timers,
    signals: Signals,
    /// The internal event on the signal wake-up pipe.
    signal_key: u32,
    backend: Backend,
    pub(crate) clock: Clock,
    ready: Vec<Ready>,
    changes: Vec<(RawFd, What, What)>,
    /// Events to activate after the next wait (`activate_later`), with what they will see.
    later: Vec<(EventId, What)>,
    arrivals: Vec<(i32, u32)>,
    pub(crate) running: bool,
    /// While expired timers are collected: their fd removals are deferred (see `io_remove`).
    internal_removal: bool,
    /// A removal was deferred that way and is still queued: it must reach the kernel before the
    /// next callback (without the changelist). Saves a scan of the whole changelist per callback.
    removals_queued: bool,
    pub(crate) got_exit: bool,
    pub(crate) got_break: bool,
    pub(crate) cont: bool,
    use_changelist: bool,
    max_interval: Option<u64>,
    max_callbacks: usize,
    limit_after_prio: usize,
    /// Socket bufferevents do their I/O on the io_uring backend's ring (see `backend::uring::ops`).
    completion_io: bool,
}

impl Core {
    pub(crate) fn with_config(cfg: &Config) -> Result<Core> {
        let mut backend = None;
        for m in cfg.candidates() {
            match Backend::new(m, !cfg.any_thread) {
                Ok(b) => {
                    backend = Some(b);
                    break;
                }
                // The kernel refused this method (io_uring: ENOSYS, EPERM from seccomp or
                // `kernel.io_uring_disabled`): take the next one, and say why when asked to.
                Err(e) if cfg.show_method() => {
                    eprintln!(
                        "[msg] revent: {} unavailable ({e}); trying the next method",
                        m.name()
                    );
                }
                Err(_) => {}
            }
        }
        let backend = backend.ok_or(Error::NoBackend)?;
        if cfg.show_method() {
            eprintln!("[msg] libevent using: {}", backend.method().name());
        }
        let flags = cfg.flags;
        Ok(Core {
            reg: Registry::new(),
            io: IoMap::default(),
            timers: Timers::new(),
            signals: Signals::new(),
            signal_key: NONE,
            backend,
            clock: Clock::new(flags.contains(ConfigFlags::NO_CACHE_TIME)),
            ready: Vec::new(),
            changes: Vec::new(),
            later: Vec::new(),
            arrivals: Vec::new(),
            running: false,
            internal_removal: false,
            removals_queued: false,
            got_exit: false,
            got_break: false,
            cont: false,
            completion_io: cfg.completion_io(),
            use_changelist: flags.contains(ConfigFlags::EPOLL_USE_CHANGELIST),
            max_interval: cfg.max_dispatch_interval.map(duration_ns),
            max_callbacks: if cfg.max_callbacks == 0 {
                usize::MAX
            } else {
                cfg.max_callbacks
            },
            limit_after_prio: if cfg.max_dispatch_interval.is_some() || cfg.max_callbacks > 0 {
                cfg.min_priority
            } else {
                usize::MAX
            },
        })
    }

    /// The ring, when socket bufferevents do completion-based I/O on it.
    #[inline]
    pub(crate) fn ring(&mut self) -> Option<&mut crate::backend::uring::Uring> {
        if self.completion_io {
            self.backend.ring()
        } else {
            None
        }
    }

    /// Requests of bufferevents are in flight on the ring: the loop has work even with no event
    /// pending (as a socket bufferevent's read event keeps it going on epoll).
    pub(crate) fn ring_busy(&mut self) -> bool {
        self.backend.ring().is_some_and(|r| r.holds())
    }

    /// The backend's name: "epoll", "io_uring", "poll" or "select".
    pub(crate) fn method(&self) -> &'static str {
        self.backend.method().name()
    }

    /// What the backend supports.
    pub(crate) fn features(&self) -> Features {
        self.backend.method().features()
    }

    // ---- creating events ----

    /// Creates an event on `fd` (or a signal, with `What::SIGNAL`: `fd` is then the signal number; or
    /// a pure timer, with `fd` -1 and no READ/WRITE/CLOSED). It is not pending until [`add`](Self::add).
    pub(crate) fn new_event<F>(&mut self, fd: RawFd, what: What, cb: F) -> Result<EventId>
    where
        F: FnMut(&mut EventBase, Fired) + 'static,
    {
        self.check_new(fd, what)?;
        let key = self.reg.alloc(fd, what, 0, Box::new(cb));
        Ok(self.reg.id(key))
    }

    /// Creates a pure timer event.
    pub(crate) fn new_timer<F>(&mut self, cb: F) -> EventId
    where
        F: FnMut(&mut EventBase, Fired) + 'static,
    {
        let key = self.reg.alloc(-1, What::NONE, 0, Box::new(cb));
        self.reg.id(key)
    }

    /// Creates a persistent event for signal `signo`.
    pub(crate) fn new_signal<F>(&mut self, signo: i32, cb: F) -> Result<EventId>
    where
        F: FnMut(&mut EventBase, Fired) + 'static,
    {
        self.new_event(signo, What::SIGNAL | What::PERSIST, cb)
    }

    /// Creates an event of the layers above (a bufferevent's deferred callbacks, the remote
    /// handle's wake-up): it does not keep the loop alive, and `foreach_event`/`num_events` skip it.
    pub(crate) fn new_internal<F>(&mut self, fd: RawFd, what: What, cb: F) -> Result<EventId>
    where
        F: FnMut(&mut EventBase, Fired) + 'static,
    {
        self.check_new(fd, what)?;
        let key = self.reg.alloc(fd, what, INTERNAL, Box::new(cb));
        Ok(self.reg.id(key))
    }

    fn check_new(&self, fd: RawFd, what: What) -> Result<()> {
        let io = what.intersects(What::READ | What::WRITE | What::CLOSED);
        if what.contains(What::SIGNAL) {
            if io {
                return Err(Error::InvalidArgument(
                    "a signal event cannot also watch READ, WRITE or CLOSED",
                ));
            }
            if !sys::signal_is_catchable(fd) {
                return Err(Error::BadSignal(fd));
            }
        } else if io {
            if fd < 0 {
                return Err(Error::BadFd(fd, io::Error::from_raw_os_error(libc::EBADF)));
            }
            self.backend.check(fd, what)?;
        }
        Ok(())
    }

    /// Runs `cb` once: when `fd` is ready for `what` (READ and/or WRITE), or when `timeout` passes, or
    /// at the next iteration if there is neither. The event frees itself afterwards.
    pub(crate) fn once<F>(
        &mut self,
        fd: RawFd,
        what: What,
        timeout: Option<Duration>,
        cb: F,
    ) -> Result<()>
    where
        F: FnOnce(&mut EventBase, Fired) + 'static,
    {
        if what.intersects(What::SIGNAL | What::PERSIST) {
            return Err(Error::InvalidArgument(
                "once() takes no SIGNAL or PERSIST events",
            ));
        }
        let what = what & !What::TIMEOUT;
        self.check_new(fd, what)?;
        let mut cb = Some(cb);
        let key = self.reg.alloc(
            fd,
            what,
            ONCE,
            Box::new(move |b: &mut EventBase, f: Fired| {
                if let Some(cb) = cb.take() {
                    cb(b, f)
                }
            }),
        );
        let immediate = !what.intersects(What::READ | What::WRITE | What::CLOSED)
            && timeout.unwrap_or_default().is_zero();
        if immediate {
            self.reg.activate(key, What::TIMEOUT, 1);
            return Ok(());
        }
        let deadline = timeout.map(|d| {
            let ns = duration_ns(d);
            (self.clock.deadline(ns), ns)
        });
        if let Err(e) = self.add_key(key, deadline, false) {
            drop(self.reg.release(key));
            return Err(e);
        }
        Ok(())
    }

    // ---- add, del, activate, free ----

    /// Makes an event pending, with an optional timeout (the callback then sees `What::TIMEOUT`).
    /// Adding a pending event again resets its timeout; adding it with `None` keeps a timeout it
    /// already has. A persistent event with a timeout re-arms it every time it fires.
    pub(crate) fn add(&mut self, id: EventId, timeout: Option<Duration>) -> Result<()> {
        let key = self.reg.key(id)?;
        let deadline = timeout.map(|d| {
            let ns = duration_ns(d);
            (self.clock.deadline(ns), ns)
        });
        self.add_key(key, deadline, true)
    }

    /// `deadline` is (absolute ns, the duration it came from). `set_interval`: a persistent event
    /// remembers the duration (false when the loop re-arms it).
    pub(crate) fn add_key(
        &mut self,
        key: u32,
        deadline: Option<(u64, u64)>,
        set_interval: bool,
    ) -> Result<()> {
        let ev = self.reg.ev(key);
        let (fd, events, flags) = (ev.fd, ev.events, ev.flags);
        if flags & INSERTED == 0 {
            if events.contains(What::SIGNAL) {
                self.signal_insert(key, fd)?;
                self.reg.set_flag(key, INSERTED);
            } else if events.intersects(What::READ | What::WRITE | What::CLOSED) {
                let soft = flags & EDGE_OK != 0;
                self.io_insert(key, fd, events & IO_BITS, soft)?;
                self.reg.set_flag(key, INSERTED);
            }
        }
        match deadline {
            Some((at, dur)) => {
                if flags & TIMEOUT != 0 {
                    self.timers.remove(key);
                    self.reg.clear_flag(key, TIMEOUT);
                }
                // A timeout that already fired and waits to run is replaced by the new one.
                let ev = self.reg.ev(key);
                if ev.flags & ACTIVE != 0 && ev.res.contains(What::TIMEOUT) {
                    self.reg.deactivate(key);
                }
                let ev = self.reg.ev_mut(key);
                ev.deadline = at;
                if set_interval && events.contains(What::PERSIST) {
                    ev.interval = dur;
                }
                let queue = self.timers.common_queue(dur);
                self.timers.insert(key, at, queue);
                self.reg.set_flag(key, TIMEOUT);
            }
            None => {
                if flags & TIMEOUT == 0 && set_interval {
                    self.reg.ev_mut(key).interval = NO_INTERVAL;
                }
            }
        }
        Ok(())
    }

    /// Makes an event non-pending: no fd, signal or timeout wakes it, and a callback it has waiting
    /// in an active queue does not run. Deleting an event that is not pending is not an error.
    pub(crate) fn del(&mut self, id: EventId) -> Result<()> {
        let key = self.reg.key(id)?;
        self.del_key(key);
        Ok(())
    }

    pub(crate) fn del_key(&mut self, key: u32) {
        let flags = self.reg.ev(key).flags;
        if flags & TIMEOUT != 0 {
            self.timers.remove(key);
            self.reg.clear_flag(key, TIMEOUT);
        }
        if flags & ACTIVE != 0 {
            self.reg.deactivate(key);
        }
        self.del_watch(key);
    }

    /// Stops watching the event's fd or signal.
    fn del_watch(&mut self, key: u32) {
        let ev = self.reg.ev(key);
        if ev.flags & INSERTED == 0 {
            return;
        }
        let (fd, events, soft) = (ev.fd, ev.events, ev.flags & EDGE_OK != 0);
        if events.contains(What::SIGNAL) {
            self.signals.unwatch(fd, key);
        } else {
            self.io_remove(key, fd, events & IO_BITS, soft);
        }
        self.reg.clear_flag(key, INSERTED);
    }

    /// Frees an event: it is deleted, its callback dropped, and `id` becomes stale. An event may free
    /// itself from its own callback.
    pub(crate) fn free(&mut self, id: EventId) -> Result<()> {
        let key = self.reg.key(id)?;
        self.del_key(key);
        drop(self.reg.release(key));
        Ok(())
    }

    /// Removes the event's timeout (and a persistent event's interval) and leaves it pending on its
    /// fd or signal.
    pub(crate) fn remove_timer(&mut self, id: EventId) -> Result<()> {
        let key = self.reg.key(id)?;
        if self.reg.ev(key).flags & TIMEOUT != 0 {
            self.timers.remove(key);
            self.reg.clear_flag(key, TIMEOUT);
        }
        self.reg.ev_mut(key).interval = NO_INTERVAL;
        Ok(())
    }

    /// Runs the event's callback at the next chance, as if `what` had happened, without I/O.
    /// Activating an event that is already active adds `what` to what it will see.
    pub(crate) fn activate(&mut self, id: EventId, what: What, count: u32) -> Result<()> {
        let key = self.reg.key(id)?;
        self.reg.activate(key, what, count.max(1));
        Ok(())
    }

    /// Activates the event after the next wait (which then does not block), if it is still
    /// pending then: libevent's `event_active_later_`. An fd event that reads again by itself goes
    /// behind the fds the wait reports, so one busy peer cannot keep the loop from the others.
    pub(crate) fn activate_later(&mut self, id: EventId, what: What) {
        self.later.push((id, what));
    }

    /// Marks an fd event, before it is first added, as coping with an edge-triggered fd: it reads
    /// or writes until the kernel refuses, or comes back by itself (see `IoMap::insert`). epoll and
    /// io_uring's readiness polls take the hint; poll and select have no edges. Returns whether the
    /// event may be told of an edge only.
    pub(crate) fn edge_ok(&mut self, id: EventId) -> Result<bool> {
        let key = self.reg.key(id)?;
        let edges = self.edges();
        let ev = self.reg.ev_mut(key);
        if ev.flags & INSERTED != 0 || !edges {
            return Ok(false);
        }
        ev.flags |= EDGE_OK;
        Ok(true)
    }

    /// Whether `edge_ok` takes effect on this base (its backend has edges: epoll, or io_uring's
    /// multishot polls).
    pub(crate) fn edges(&self) -> bool {
        matches!(self.backend.method(), Method::Epoll | Method::IoUring)
    }

    /// Whether the kernel already watches `fd` for some of `what`: adding an event for it then
    /// changes nothing there, and an edge-triggered fd reports nothing new.
    pub(crate) fn kernel_watches(&self, fd: RawFd, what: What) -> bool {
        self.io.kernel(fd).intersects(what)
    }

    /// Which of `what` (READ, WRITE, CLOSED, SIGNAL, TIMEOUT) the event is pending or active on, and
    /// its deadline if TIMEOUT is asked for and armed.
    pub(crate) fn pending(&self, id: EventId, what: What) -> Result<(What, Option<Instant>)> {
        let key = self.reg.key(id)?;
        let ev = self.reg.ev(key);
        let flags = Self::pending_flags(ev.flags, ev.events, ev.res);
        let deadline = (ev.flags & TIMEOUT != 0 && what.contains(What::TIMEOUT))
            .then(|| self.clock.instant(ev.deadline));
        Ok((flags & what, deadline))
    }

    fn pending_flags(flags: u8, events: What, res: What) -> What {
        let mut w = What::NONE;
        if flags & INSERTED != 0 {
            w |= events & (What::READ | What::WRITE | What::CLOSED | What::SIGNAL);
        }
        if flags & ACTIVE != 0 {
            w |= res;
        }
        if flags & TIMEOUT != 0 {
            w |= What::TIMEOUT;
        }
        w
    }

    /// The fd, flags, priority and pending state of an event.
    pub(crate) fn event_info(&self, id: EventId) -> Result<EventInfo> {
        let key = self.reg.key(id)?;
        Ok(self.info(key))
    }

    fn info(&self, key: u32) -> EventInfo {
        let ev = self.reg.ev(key);
        EventInfo {
            id: self.reg.id(key),
            fd: ev.fd,
            what: ev.events,
            priority: ev.pri as usize,
            pending: Self::pending_flags(ev.flags, ev.events, ev.res),
            active: if ev.flags & ACTIVE != 0 {
                ev.res
            } else {
                What::NONE
            },
        }
    }

    // ---- priorities ----

    /// Sets the number of priority queues (1..=255, libevent's limit; default 1). Events made afterwards get priority
    /// `n / 2`. Fails while any event is active.
    pub(crate) fn init_priorities(&mut self, n: usize) -> Result<()> {
        if n == 0 || n > 255 {
            return Err(Error::InvalidArgument("priorities must be 1..=255"));
        }
        if self.reg.n_active > 0 {
            return Err(Error::InvalidArgument(
                "cannot change priorities while events are active",
            ));
        }
        self.reg.set_priorities(n);
        Ok(())
    }

    /// The number of priority queues.
    pub(crate) fn priorities(&self) -> usize {
        self.reg.priorities()
    }

    /// Sets an event's priority (0 is the most urgent). Fails while the event is active.
    pub(crate) fn set_priority(&mut self, id: EventId, pri: usize) -> Result<()> {
        let key = self.reg.key(id)?;
        if pri >= self.reg.priorities() {
            return Err(Error::InvalidArgument("priority out of range"));
        }
        let ev = self.reg.ev_mut(key);
        if ev.flags & ACTIVE != 0 {
            return Err(Error::InvalidArgument(
                "cannot change the priority of an active event",
            ));
        }
        ev.pri = pri as u8;
        Ok(())
    }

    // ---- time ----

    /// The time the loop last read the clock (or now, outside the loop). Monotonic.
    pub(crate) fn now_cached(&self) -> Instant {
        self.clock.now_instant()
    }

    /// Wall-clock time matching [`now_cached`](Self::now_cached) (libevent's `gettimeofday_cached`).
    pub(crate) fn wall_cached(&self) -> SystemTime {
        self.clock.wall()
    }

    /// Refreshes the cached time (useful in a long callback). No effect outside the loop.
    pub(crate) fn update_cache_time(&mut self) {
        if self.running {
            self.clock.update();
        }
    }

    /// Declares `d` a common timeout: afterwards every add with exactly this duration goes on a FIFO
    /// queue and costs O(1) instead of a heap insertion. Returns the duration to pass to `add`.
    pub(crate) fn init_common_timeout(&mut self, d: Duration) -> Result<Duration> {
        self.timers
            .add_common(duration_ns(d))
            .map(|_| d)
            .ok_or(Error::InvalidArgument("too many common timeouts (256)"))
    }

    // ---- one loop iteration's steps (the loop itself is `EventBase::run`) ----

    /// How long the next wait may block: not at all when something is active (or `nonblock`), until
    /// the next timer otherwise, forever without one.
    pub(crate) fn wait_timeout(&mut self, nonblock: bool) -> Option<Duration> {
        if self.reg.n_active > 0 || nonblock || !self.later.is_empty() {
            Some(Duration::ZERO)
        } else {
            self.timers
                .next_deadline()
                .map(|at| Duration::from_nanos(at.saturating_sub(self.clock.now())))
        }
    }

    /// Waits in the backend, then reads the clock and moves ready fds and expired timers into the
    /// active queues.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.backend.wait(timeout, &mut self.ready)?;
        let now = self.clock.update();
        self.activate_ready();
        if !self.later.is_empty() {
            self.activate_deferred();
        }
        if let Some(ring) = self.backend.ring() {
            // Completions of bufferevents' requests: their owners' events run them.
            let reg = &mut self.reg;
            ring.drain_ready(|ev| {
                if let Ok(key) = reg.key(ev) {
                    reg.activate(key, What::READ, 1);
                }
            });
        }
        self.activate_expired(now);
        Ok(())
    }

    /// How many callbacks of priority `pri` may run, and until when (libevent's
    /// `max_dispatch_callbacks` and `max_dispatch_interval`, for priorities at or after the limit).
    #[inline(always)]
    pub(crate) fn dispatch_limits(&self, pri: usize) -> (usize, Option<u64>) {
        if pri < self.limit_after_prio {
            (usize::MAX, None)
        } else {
            (
                self.max_callbacks,
                self.max_interval
                    .map(|i| self.clock.now().saturating_add(i)),
            )
        }
    }

    /// Takes active event `key` off its queue to run it: re-arms a persistent one (deletes another)
    /// and returns its callback, taken out of the slot, with what to tell it. `None` when the callback
    /// is already out (the event is running further up the stack).
    #[inline(always)]
    pub(crate) fn start_run(&mut self, key: u32) -> Option<(Box<Callback>, Fired)> {
        let Run {
            fd,
            res,
            ncalls,
            events,
            interval,
            generation,
            cb,
        } = self.reg.start_run(key);
        if events.contains(What::PERSIST) {
            if interval != NO_INTERVAL {
                // Re-arm from the old deadline if the timeout fired (so a periodic timer does not
                // drift), from now otherwise.
                let now = self.clock.now();
                let mut at = if res.contains(What::TIMEOUT) {
                    self.reg.ev(key).deadline.saturating_add(interval)
                } else {
                    self.clock.deadline_from(now, interval)
                };
                if at < now {
                    at = self.clock.deadline_from(now, interval);
                }
                let _ = self.add_key(key, Some((at, interval)), false);
            }
        } else {
            self.del_key(key);
        }
        let cb = cb?;
        // A removal deferred when the timer expired must reach the kernel before user code runs: the
        // callback may close the fd and get its number back from a new socket.
        if self.removals_queued {
            self.flush_changes(true);
        }
        let fired = Fired {
            id: EventId {
                index: key,
                generation,
            },
            fd,
            what: res,
            count: ncalls,
        };
        Some((cb, fired))
    }

    /// After a callback ran (or unwound): puts it back unless its event was freed meanwhile (the
    /// slot may even hold a new event), and frees a `once` event.
    #[inline(always)]
    pub(crate) fn finish_run(&mut self, id: EventId, cb: Box<Callback>) {
        match self.reg.slots.at_generation_mut(id.index, id.generation) {
            Some(ev) if ev.cb.is_none() => {
                ev.cb = Some(cb);
                if ev.flags & ONCE != 0 {
                    self.del_key(id.index);
                    drop(self.reg.release(id.index));
                }
            }
            _ => drop::<Box<Callback>>(cb),
        }
    }

    /// Makes the running loop return after the current iteration's callbacks, or after `after`.
    pub(crate) fn loopexit(&mut self, after: Option<Duration>) -> Result<()> {
        self.once(-1, What::TIMEOUT, after, |b, _| b.core.got_exit = true)
    }

    // ---- readiness and expiry, moved into the active queues ----

    /// Activates every event inserted on `fd` for some of `what` (READ, WRITE, CLOSED), as if the
    /// kernel had reported it. Returns how many.
    pub(crate) fn activate_fd(&mut self, fd: RawFd, what: What) -> usize {
        let Some(entry) = self.io.get(fd) else {
            return 0;
        };
        let mut n = 0;
        for key in entry.events.iter() {
            let w = what & self.reg.ev(key).events & (What::READ | What::WRITE | What::CLOSED);
            if !w.is_empty() {
                self.reg.activate(key, w, 1);
                n += 1;
            }
        }
        n
    }

    /// Activates every event watching signal `signo`, as if it had arrived once. Returns how many.
    pub(crate) fn activate_signal(&mut self, signo: i32) -> usize {
        let Some(keys) = usize::try_from(signo)
            .ok()
            .and_then(|s| self.signals.events.get(s))
            .cloned()
        else {
            return 0;
        };
        for &key in &keys {
            self.reg.activate(key, What::SIGNAL, 1);
        }
        keys.len()
    }

    pub(crate) fn activate_ready(&mut self) {
        for i in 0..self.ready.len() {
            let r = self.ready[i];
            if let Some(entry) = self.io.get(r.fd) {
                for j in 0..entry.events.len() {
                    let key = entry.events.get(j);
                    let ev = self.reg.ev(key);
                    let what = r.what & ev.events & (What::READ | What::WRITE | What::CLOSED);
                    if !what.is_empty() {
                        self.reg.activate(key, what, 1);
                    }
                }
            }
            if r.invalid {
                self.forget_fd(r.fd);
            }
        }
    }

    /// Activates what `activate_later` put aside, if still pending (an event deleted or freed
    /// since is skipped). After the ready fds: an event that is both merges into one run.
    fn activate_deferred(&mut self) {
        let mut later = std::mem::take(&mut self.later);
        for &(id, what) in &later {
            if let Ok(key) = self.reg.key(id) {
                if self.reg.ev(key).flags & INSERTED != 0 {
                    self.reg.activate(key, what, 1);
                }
            }
        }
        later.clear();
        self.later = later;
    }

    /// Stops watching an fd the kernel says is not open; its events stay inserted but are not polled
    /// until the fd's interest is registered again.
    fn forget_fd(&mut self, fd: RawFd) {
        let kernel = self.io.kernel(fd);
        let _ = self.backend.update(fd, kernel, What::NONE);
        self.io.set_kernel(fd, What::NONE);
    }

    pub(crate) fn activate_expired(&mut self, now: u64) {
        self.internal_removal = true;
        while let Some(key) = self.timers.pop_expired(now) {
            self.reg.clear_flag(key, TIMEOUT);
            // As libevent: a timed-out event is deleted; a persistent one is re-added before its
            // callback runs (the changelist makes that free).
            self.del_key(key);
            self.reg.activate(key, What::TIMEOUT, 1);
        }
        self.internal_removal = false;
    }

    // ---- fds and the changelist ----

    fn io_insert(&mut self, key: u32, fd: RawFd, what: What, soft: bool) -> Result<()> {
        self.io.insert(fd, key, what, soft)?;
        let entry = self.io.get(fd).expect("just inserted");
        let (kernel, desired) = (entry.kernel, entry.desired());
        if kernel == desired {
            return Ok(());
        }
        if !kernel.is_empty() {
            self.io.queue(fd);
            return Ok(());
        }
        // New to the kernel: register now, so that a bad fd is this caller's error.
        let res = if self.backend.validates_fds() || sys::fd_is_open(fd) {
            self.backend.update(fd, What::NONE, desired)
        } else {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        };
        match res {
            Ok(()) => {
                self.io.set_kernel(fd, desired);
                Ok(())
            }
            Err(e) => {
                self.io.remove(fd, key, what, soft);
                Err(Error::BadFd(fd, e))
            }
        }
    }

    fn io_remove(&mut self, key: u32, fd: RawFd, what: What, soft: bool) {
        self.io.remove(fd, key, what, soft);
        let entry = self.io.get(fd).expect("inserted before");
        let (kernel, desired) = (entry.kernel, entry.desired());
        if kernel == desired {
            return;
        }
        if desired.is_empty() && !self.use_changelist && !self.internal_removal {
            // Remove at once (libevent's default): the caller may close the fd and get its number
            // back from the next socket, which must then be registered afresh. A deferred removal
            // would leave us believing the new socket is registered when the kernel dropped it with
            // the old one. EPOLL_USE_CHANGELIST defers this too, with libevent's documented caveat.
            let _ = self.backend.update(fd, kernel, What::NONE);
            self.io.set_kernel(fd, What::NONE);
        } else {
            self.removals_queued |= desired.is_empty() && !self.use_changelist;
            self.io.queue(fd);
        }
    }

    /// Sends queued interest changes to the backend: all of them, or (after a callback) only those
    /// that remove an fd entirely, since the callback may close it and reuse its number.
    #[inline]
    pub(crate) fn flush_changes(&mut self, only_removals: bool) {
        if self.io.has_changes() {
            self.flush_changes_now(only_removals);
        }
    }

    fn flush_changes_now(&mut self, only_removals: bool) {
        // Either way, no removal is left queued afterwards.
        self.removals_queued = false;
        let mut changes = std::mem::take(&mut self.changes);
        self.io.take_changes(only_removals, &mut changes);
        for &(fd, old, new) in &changes {
            match self.backend.update(fd, old, new) {
                Ok(()) => self.io.set_kernel(fd, new),
                Err(_) => {
                    // The fd was closed behind our back. Tell its events (they see READ|WRITE, and
                    // their I/O will report the error), and stop polling it.
                    self.io.set_kernel(fd, old);
                    self.forget_fd(fd);
                    if let Some(entry) = self.io.get(fd) {
                        for key in entry.events.iter() {
                            let w = self.reg.ev(key).events & (What::READ | What::WRITE);
                            if !w.is_empty() {
                                self.reg.activate(key, w, 1);
                            }
                        }
                    }
                }
            }
        }
        changes.clear();
        self.changes = changes;
    }

    // ---- signals ----

    fn signal_insert(&mut self, key: u32, signo: i32) -> Result<()> {
        let (rfd, _) = self.signals.wake_fd()?;
        // Registered whenever it is missing, not only when the pipe was just made: a failed first
        // registration must not leave signals unable to wake the loop for good.
        if self.signal_key == NONE {
            self.add_signal_waker(rfd)?;
        }
        self.signals.watch(signo, key).map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) {
                Error::BadSignal(signo)
            } else {
                Error::Io(e)
            }
        })
    }

    fn add_signal_waker(&mut self, rfd: RawFd) -> Result<()> {
        let key = self.reg.alloc(
            rfd,
            What::READ | What::PERSIST,
            INTERNAL,
            Box::new(|b: &mut EventBase, _| b.core.deliver_signals()),
        );
        // The waker runs before user events so signal callbacks are queued in the same iteration.
        self.reg.ev_mut(key).pri = 0;
        if let Err(e) = self.add_key(key, None, false) {
            drop(self.reg.release(key));
            return Err(e);
        }
        self.signal_key = key;
        Ok(())
    }

    fn deliver_signals(&mut self) {
        let mut arrivals = std::mem::take(&mut self.arrivals);
        self.signals.take_arrivals(&mut arrivals);
        for &(signo, n) in &arrivals {
            for &key in &self.signals.events[signo as usize] {
                self.reg.activate(key, What::SIGNAL, n);
            }
        }
        arrivals.clear();
        self.arrivals = arrivals;
    }

    // ---- fork ----

    /// Re-creates kernel state after `fork()`; call it in the child before using the base there.
    pub(crate) fn reinit(&mut self) -> Result<()> {
        self.backend.reinit()?;
        if matches!(self.backend, Backend::Epoll(_)) {
            let registered: Vec<(RawFd, What)> = self.io.registered().collect();
            for (fd, w) in registered {
                if self.backend.update(fd, What::NONE, w).is_err() {
                    self.io.set_kernel(fd, What::NONE);
                }
            }
        }
        if let Some((new_r, old_r)) = self.signals.reinit()? {
            let old_key = std::mem::replace(&mut self.signal_key, NONE);
            if old_key != NONE {
                self.del_key(old_key);
                drop(self.reg.release(old_key));
            }
            sys::close(old_r);
            self.add_signal_waker(new_r)?;
        }
        Ok(())
    }

    // ---- inspection ----

    /// Writes a list of the inserted and the active events, as libevent's `event_base_dump_events`.
    pub(crate) fn dump_events(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "Inserted events:")?;
        for (k, ev) in self.reg.slots.iter() {
            let key = k.index;
            if ev.flags & (INSERTED | TIMEOUT) == 0 {
                continue;
            }
            let id = self.reg.id(key);
            let kind = if ev.events.contains(What::SIGNAL) {
                "sig"
            } else {
                "fd"
            };
            write!(w, "  {id:?} [{kind} {}]", ev.fd)?;
            for (flag, name) in [
                (What::READ, " Read"),
                (What::WRITE, " Write"),
                (What::CLOSED, " EOF"),
                (What::ET, " ET"),
                (What::PERSIST, " Persist"),
            ] {
                if ev.events.contains(flag) {
                    write!(w, "{name}")?;
                }
            }
            if ev.flags & INTERNAL != 0 {
                write!(w, " Internal")?;
            }
            if ev.flags & TIMEOUT != 0 {
                let left = ev.deadline.saturating_sub(self.clock.now());
                write!(w, " Timeout=+{:.6}s", left as f64 / 1e9)?;
            }
            writeln!(w)?;
        }
        writeln!(w, "Active events:")?;
        for key in self.reg.active_in_order() {
            let ev = self.reg.ev(key);
            write!(
                w,
                "  {:?} [fd {}, priority={}]",
                self.reg.id(key),
                ev.fd,
                ev.pri
            )?;
            for (flag, name) in [
                (What::READ, " Read"),
                (What::WRITE, " Write"),
                (What::CLOSED, " EOF"),
                (What::SIGNAL, " Signal"),
                (What::TIMEOUT, " Timeout"),
            ] {
                if ev.res.contains(flag) {
                    write!(w, "{name}")?;
                }
            }
            writeln!(w, " active")?;
        }
        Ok(())
    }

    /// Calls `f` for every pending or active event (not the base's internal ones) until it returns
    /// false.
    pub(crate) fn foreach_event(&self, mut f: impl FnMut(EventInfo) -> bool) {
        for (k, ev) in self.reg.slots.iter() {
            let key = k.index;
            if ev.flags & INTERNAL != 0 || ev.flags & (INSERTED | TIMEOUT | ACTIVE) == 0 {
                continue;
            }
            if !f(self.info(key)) {
                return;
            }
        }
    }

    /// How many events are pending or active (not counting the base's internal ones).
    pub(crate) fn num_events(&self) -> usize {
        let mut n = 0;
        self.foreach_event(|_| {
            n += 1;
            true
        });
        n
    }
}
