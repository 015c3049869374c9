//! Configuration of an [`EventBase`](crate::EventBase): which backend, which features, which flags.

use crate::flags::flags;
use std::time::Duration;

flags! {
    /// What a backend can do (libevent's `EV_FEATURE_*`).
    ///
    /// ```
    /// use revent::{Config, EventBase, Features};
    /// let mut cfg = Config::new();
    /// cfg.require_features(Features::O1);
    /// assert_eq!(EventBase::with_config(&cfg).unwrap().method(), "epoll");
    /// ```
    Features: u32 {
        /// Edge-triggered events.
        const ET = 0x01;
        /// O(1) work per ready fd, whatever the number watched.
        const O1 = 0x02;
        /// Any kind of fd, not only sockets.
        const FDS = 0x04;
        /// Detects a peer's close without reading (`What::CLOSED`).
        const EARLY_CLOSE = 0x08;
    }
}

flags! {
    /// Flags of a base (libevent's `EVENT_BASE_FLAG_*`).
    ///
    /// ```
    /// use revent::{Config, ConfigFlags, EventBase};
    /// let mut cfg = Config::new();
    /// cfg.set_flag(ConfigFlags::IGNORE_ENV | ConfigFlags::NO_CACHE_TIME);
    /// let _base = EventBase::with_config(&cfg).unwrap();
    /// ```
    ConfigFlags: u32 {
        /// No locking (revent bases are single-threaded; accepted for compatibility).
        const NOLOCK = 0x01;
        /// Ignore the `EVENT_*` environment variables.
        const IGNORE_ENV = 0x02;
        /// Windows only; accepted and ignored.
        const STARTUP_IOCP = 0x04;
        /// Read the clock on every request instead of once per iteration.
        const NO_CACHE_TIME = 0x08;
        /// Defer every interest change to just before the wait, even an fd's removal, so that an
        /// event deleted and re-added in one callback costs no syscall. As in libevent, do not
        /// use it if an fd may be closed and its number reused (or dup'ed) between a delete and an
        /// add within one callback.
        const EPOLL_USE_CHANGELIST = 0x10;
        /// Use the full-resolution monotonic clock: revent always does (see the `time` module), so
        /// this flag and `EVENT_PRECISE_TIMER` are accepted and change nothing.
        const PRECISE_TIMER = 0x20;
    }
}

flags! {
    /// How [`EventBase::run`](crate::EventBase::run) loops (libevent's `EVLOOP_*`).
    ///
    /// ```
    /// use revent::{EventBase, LoopExit, LoopFlags};
    /// let mut base = EventBase::new().unwrap();
    /// // Nothing to do and NONBLOCK: returns at once.
    /// assert_eq!(base.run(LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY).unwrap(), LoopExit::Done);
    /// ```
    LoopFlags: u32 {
        /// Wait for events to become active, run them, then return.
        const ONCE = 0x01;
        /// Do not wait: run what is active now, then return.
        const NONBLOCK = 0x02;
        /// Keep running even when no events are pending (until exit or break).
        const NO_EXIT_ON_EMPTY = 0x04;
    }
}

/// A kernel mechanism for waiting on fds.
///
/// The order of preference is [`Method::ALL`]'s: epoll first, then io_uring (chosen when epoll is
/// avoided or unavailable), then poll and select. Where the kernel refuses io_uring (too old, a
/// seccomp filter, `kernel.io_uring_disabled`), a base that would have used it takes the next
/// method, and `EVENT_SHOW_METHOD` says why.
///
/// ```
/// use revent::{Config, EventBase, Method};
/// let mut cfg = Config::new();
/// cfg.avoid_method(Method::Epoll)
///     .avoid_method(Method::IoUring)
///     .avoid_method(Method::Poll);
/// assert_eq!(EventBase::with_config(&cfg).unwrap().method(), Method::Select.name());
/// assert_eq!(Method::from_name("poll"), Some(Method::Poll));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Method {
    /// Linux epoll.
    Epoll,
    /// POSIX poll.
    Poll,
    /// POSIX select (fds below 1024 only).
    Select,
    /// Linux io_uring (5.13+): readiness through poll requests, every interest change sent in the
    /// wait's own `io_uring_enter`. One kernel behaviour to know: once a base on it is dropped, the
    /// ring's teardown notifies the thread that ran it, and that thread's next blocking syscall
    /// with a timeout (a socket read under `SO_RCVTIMEO`, say) may fail once with EINTR.
    IoUring,
}

impl Method {
    /// In order of preference. epoll stays first: io_uring's readiness polls make as many
    /// syscalls per event on the pipes benchmark and cost more user-space instructions (see the
    /// io_uring backend's notes). io_uring comes next, before poll and select, which scale worse:
    /// a base that avoids epoll (or `EVENT_NOEPOLL`) gets io_uring where the kernel allows it.
    pub const ALL: [Method; 4] = [Method::Epoll, Method::IoUring, Method::Poll, Method::Select];

    /// libevent's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Epoll => "epoll",
            Method::Poll => "poll",
            Method::Select => "select",
            Method::IoUring => "io_uring",
        }
    }

    /// The method named `name` (as `event_config_avoid_method` takes it).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// What this backend supports.
    pub fn features(self) -> Features {
        match self {
            Method::Epoll => Features::ET | Features::O1 | Features::EARLY_CLOSE,
            // POLLRDHUP gives poll early close detection on Linux.
            Method::Poll => Features::FDS | Features::EARLY_CLOSE,
            Method::Select => Features::FDS,
            // Multishot polls for ET, POLLRDHUP for early close, one request per ready fd.
            Method::IoUring => Features::ET | Features::O1 | Features::EARLY_CLOSE,
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            Method::Epoll => "EVENT_NOEPOLL",
            Method::Poll => "EVENT_NOPOLL",
            Method::Select => "EVENT_NOSELECT",
            Method::IoUring => "EVENT_NOIO_URING",
        }
    }
}

/// How to build an [`EventBase`](crate::EventBase) (libevent's `event_config`).
///
/// ```
/// use revent::{Config, ConfigFlags, EventBase, Method};
/// let mut cfg = Config::new();
/// cfg.avoid_method(Method::Epoll)
///     .avoid_method(Method::IoUring)
///     .set_flag(ConfigFlags::IGNORE_ENV);
/// let base = EventBase::with_config(&cfg).unwrap();
/// assert_eq!(base.method(), "poll");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub(crate) avoid: Vec<Method>,
    pub(crate) require: Features,
    pub(crate) flags: ConfigFlags,
    pub(crate) max_dispatch_interval: Option<Duration>,
    pub(crate) max_callbacks: usize,
    pub(crate) min_priority: usize,
    pub(crate) readiness_only: bool,
    pub(crate) any_thread: bool,
}

impl Config {
    /// The default: the best backend, no requirements, no flags.
    pub fn new() -> Config {
        Config::default()
    }

    /// Never use `m`.
    pub fn avoid_method(&mut self, m: Method) -> &mut Config {
        if !self.avoid.contains(&m) {
            self.avoid.push(m);
        }
        self
    }

    /// Only use a backend with every feature of `f`.
    pub fn require_features(&mut self, f: Features) -> &mut Config {
        self.require = f;
        self
    }

    /// Sets a flag.
    pub fn set_flag(&mut self, f: ConfigFlags) -> &mut Config {
        self.flags |= f;
        self
    }

    /// Limits how long (and how many callbacks) the loop runs callbacks of priority `min_priority`
    /// or lower before checking for new events again. `max_callbacks` 0 means no count limit.
    pub fn max_dispatch_interval(
        &mut self,
        max_interval: Option<Duration>,
        max_callbacks: usize,
        min_priority: usize,
    ) -> &mut Config {
        self.max_dispatch_interval = max_interval;
        self.max_callbacks = max_callbacks;
        self.min_priority = min_priority;
        self
    }

    /// On an io_uring base, gives socket bufferevents readiness-based I/O (a poll request, then
    /// `readv`/`writev`, as on epoll) instead of completion-based I/O (receives and sends on the
    /// ring: the default). The environment variable `REVENT_URING_READINESS` does the same unless
    /// [`ConfigFlags::IGNORE_ENV`] is set.
    ///
    /// ```
    /// use revent::{Config, EventBase};
    /// let mut cfg = Config::new();
    /// cfg.uring_readiness_only(true);
    /// let base = EventBase::with_config(&cfg).unwrap();
    /// # let _ = base;
    /// ```
    pub fn uring_readiness_only(&mut self, yes: bool) -> &mut Config {
        self.readiness_only = yes;
        self
    }

    /// Says that the base may be run or freed on a thread other than the one that made it. A Rust
    /// [`EventBase`](crate::EventBase) cannot move (it is not `Send`), so this is for foreign
    /// code: the C ABI sets it, since a C program may call `event_base_new` on one thread and
    /// `event_base_dispatch` on another (memcached does). On io_uring it gives up
    /// `IORING_SETUP_SINGLE_ISSUER` and `DEFER_TASKRUN`, which tie the ring to the thread that
    /// made it.
    ///
    /// ```
    /// use revent::{Config, EventBase};
    /// let mut cfg = Config::new();
    /// cfg.run_on_any_thread(true);
    /// let base = EventBase::with_config(&cfg).unwrap();
    /// # let _ = base;
    /// ```
    pub fn run_on_any_thread(&mut self, yes: bool) -> &mut Config {
        self.any_thread = yes;
        self
    }

    /// Whether socket bufferevents on an io_uring base do their I/O on the ring.
    pub(crate) fn completion_io(&self) -> bool {
        !self.readiness_only && !self.env_set("REVENT_URING_READINESS")
    }

    fn env_set(&self, var: &str) -> bool {
        !self.flags.contains(ConfigFlags::IGNORE_ENV) && std::env::var_os(var).is_some()
    }

    /// The backends this config allows, best first.
    pub(crate) fn candidates(&self) -> impl Iterator<Item = Method> + '_ {
        Method::ALL.into_iter().filter(move |m| {
            !self.avoid.contains(m)
                && m.features().contains(self.require)
                && !self.env_set(m.env_var())
        })
    }

    pub(crate) fn show_method(&self) -> bool {
        self.env_set("EVENT_SHOW_METHOD")
    }
}
