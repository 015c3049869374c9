//! Helpers shared by the integration tests of the event core.
//!
//! Every test of an area is a plain function `fn name(m: Method)`; [`per_backend!`] turns a list of them
//! into `epoll::name`, `io_uring::name`, `poll::name` and `select::name` tests, each of which builds its base with
//! [`base`] (or [`base_with`]) so that the backend is forced and checked. Filter one backend with
//! `cargo test -p revent --test events epoll::`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use revent::{Config, ConfigFlags, Error, EventBase, EventId, Fired, Method, What};

/// Generates one `#[test]` per backend for each listed `fn name(m: Method)`.
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),+ $(,)?) => {
        mod epoll {
            $( #[test] fn $name() {
                let _w = $crate::common::watchdog(concat!("epoll::", stringify!($name)));
                super::$name(revent::Method::Epoll)
            } )+
        }
        mod io_uring {
            $( #[test] fn $name() {
                if $crate::common::io_uring_refused() {
                    return;
                }
                let _w = $crate::common::watchdog(concat!("io_uring::", stringify!($name)));
                super::$name(revent::Method::IoUring)
            } )+
        }
        mod poll {
            $( #[test] fn $name() {
                let _w = $crate::common::watchdog(concat!("poll::", stringify!($name)));
                super::$name(revent::Method::Poll)
            } )+
        }
        mod select {
            $( #[test] fn $name() {
                let _w = $crate::common::watchdog(concat!("select::", stringify!($name)));
                super::$name(revent::Method::Select)
            } )+
        }
    };
}

/// Aborts the test process if the returned value is not dropped within 60 s: a loop that never returns
/// (the bug some tests look for) fails the run instead of hanging it.
pub struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

pub fn watchdog(test: &'static str) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(Duration::from_secs(60))
        {
            // Straight to fd 2: the test harness captures eprintln! output, and abort loses it.
            let msg = format!(
                "\nWATCHDOG: test {test} still running after 60 s (the loop hangs); aborting\n"
            );
            // SAFETY: `msg` is a live buffer of `msg.len()` bytes.
            unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
            std::process::abort();
        }
    });
    Watchdog(tx)
}

/// How early, measured with `Instant`, a timer may legitimately fire: never. revent always reads
/// `CLOCK_MONOTONIC`, the clock `Instant` reads (libevent's default coarse clock would need a tick of
/// slack here).
pub fn slack() -> Duration {
    Duration::ZERO
}

/// Tolerance for comparing an `Instant` that the base reports (`now_cached`, `pending` deadlines) with
/// `Instant::now()` read by the test: the clock [`slack`], plus 1 ms for the base's conversion from its
/// own clock reading to `Instant` (see `timers::now_cached_agrees_with_instant`, which checks that
/// conversion strictly).
pub fn tol() -> Duration {
    slack() + Duration::from_millis(1)
}

/// Asserts `later - earlier >= min` (less the clock [`slack`]).
#[track_caller]
pub fn assert_at_least(
    earlier: std::time::Instant,
    later: std::time::Instant,
    min: Duration,
    what: &str,
) {
    let elapsed = later.saturating_duration_since(earlier);
    assert!(
        elapsed + slack() >= min,
        "{what}: after {elapsed:?}, expected at least {min:?}"
    );
}

/// All backends this machine has, for tests that loop over them themselves (io_uring as
/// [`io_uring_refused`] decides).
pub fn all() -> Vec<Method> {
    let mut v = vec![Method::Epoll];
    if !io_uring_refused() {
        v.push(Method::IoUring);
    }
    v.extend([Method::Poll, Method::Select]);
    v
}

/// Whether io_uring tests must be skipped because the kernel refuses io_uring here (too old, or a
/// seccomp profile such as a container's default one). Under CI (`CI=true`) that fails the test
/// instead: CI runs on a kernel that has it.
pub fn io_uring_refused() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *AVAILABLE.get_or_init(|| revent::EventBase::method_available(Method::IoUring)) {
        return false;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "io_uring is unavailable on this machine, and CI=true requires it"
    );
    eprintln!("note: the kernel refuses io_uring here: io_uring test skipped");
    true
}

/// The name `EventBase::method()` reports for `m`.
pub fn name(m: Method) -> &'static str {
    match m {
        Method::Epoll => "epoll",
        Method::Poll => "poll",
        Method::Select => "select",
        Method::IoUring => "io_uring",
    }
}

/// A config that can only pick `m` and ignores the `EVENT_*` environment variables.
pub fn config(m: Method) -> Config {
    let mut cfg = Config::new();
    for other in Method::ALL {
        if name(other) != name(m) {
            cfg.avoid_method(other);
        }
    }
    cfg.set_flag(ConfigFlags::IGNORE_ENV);
    cfg
}

/// A base on backend `m` built from `cfg` (which should come from [`config`]); checks the backend.
pub fn base_with(m: Method, cfg: &Config) -> EventBase {
    let base = EventBase::with_config(cfg)
        .unwrap_or_else(|e| panic!("cannot build a base on {}: {e}", name(m)));
    assert_eq!(base.method(), name(m), "the config forced {}", name(m));
    base
}

/// A base on backend `m`.
pub fn base(m: Method) -> EventBase {
    base_with(m, &config(m))
}

/// A base on backend `m` with `n` priority queues.
pub fn base_prio(m: Method, n: usize) -> EventBase {
    let mut b = base(m);
    b.init_priorities(n).expect("init_priorities");
    b
}

/// Whether backend `m` supports `What::ET`.
pub fn has_et(m: Method) -> bool {
    matches!(m, Method::Epoll | Method::IoUring)
}

/// Whether backend `m` supports `What::CLOSED` (EPOLLRDHUP / POLLRDHUP).
pub fn has_closed(m: Method) -> bool {
    matches!(m, Method::Epoll | Method::IoUring | Method::Poll)
}

/// A connected, non-blocking pair of Unix stream sockets.
pub fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// A non-blocking pipe: (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is an array of two ints, as pipe2 requires.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 just returned these two fds and nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Writes all of `data` to a raw fd (a pipe end or a socket).
pub fn write_fd(fd: RawFd, data: &[u8]) {
    // SAFETY: `data` is a live slice of `data.len()` bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(
        n,
        data.len() as isize,
        "write: {}",
        std::io::Error::last_os_error()
    );
}

/// Reads whatever is available (non-blocking) from a raw fd; empty on EOF or EAGAIN.
pub fn read_fd(fd: RawFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is a live, writable array of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// Reads everything available on a non-blocking stream.
pub fn drain(s: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Writes all of `data` to a stream (small writes: never blocks on a fresh socketpair).
pub fn send(s: &mut UnixStream, data: &[u8]) {
    s.write_all(data).expect("write");
}

/// A shared, growable log that callbacks push to.
pub struct Log<T>(pub Rc<RefCell<Vec<T>>>);

impl<T: Clone> Log<T> {
    pub fn new() -> Log<T> {
        Log(Rc::new(RefCell::new(Vec::new())))
    }
    pub fn push(&self, t: T) {
        self.0.borrow_mut().push(t);
    }
    pub fn get(&self) -> Vec<T> {
        self.0.borrow().clone()
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(self.0.clone())
    }
}

/// A shared counter.
#[derive(Clone, Default)]
pub struct Counter(pub Rc<Cell<u32>>);

impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }
    pub fn inc(&self) {
        self.0.set(self.0.get() + 1);
    }
    pub fn get(&self) -> u32 {
        self.0.get()
    }
}

/// `new_event` then `add` with no timeout; returns the first error.
pub fn register<F>(base: &mut EventBase, fd: RawFd, what: What, cb: F) -> revent::Result<EventId>
where
    F: FnMut(&mut EventBase, Fired) + 'static,
{
    let id = base.new_event(fd, what, cb)?;
    match base.add(id, None) {
        Ok(()) => Ok(id),
        Err(e) => {
            let _ = base.free(id);
            Err(e)
        }
    }
}

/// One loop iteration without blocking: poll, run what is active, return (`ONCE | NONBLOCK`).
///
/// NONBLOCK alone is not that: like libevent 2.1's EVLOOP_NONBLOCK it keeps iterating while callbacks
/// ran, so a level-triggered fd that stays ready keeps it going forever.
pub fn step(base: &mut EventBase) -> revent::Result<revent::LoopExit> {
    base.run(revent::LoopFlags::ONCE | revent::LoopFlags::NONBLOCK)
}

/// A safety net against a loop that would otherwise never return: a timer that breaks the loop after
/// `after` and records that it fired. Tests assert it did not.
pub fn guard(base: &mut EventBase, after: Duration) -> (EventId, Rc<Cell<bool>>) {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let id = base.new_timer(move |b, _| {
        f.set(true);
        b.loopbreak();
    });
    base.add(id, Some(after)).unwrap();
    (id, fired)
}

/// Asserts that `r` is `Err(Error::Unsupported(_))`.
pub fn assert_unsupported<T: std::fmt::Debug>(r: revent::Result<T>, ctx: &str) {
    match r {
        Err(Error::Unsupported(_)) => {}
        other => panic!("{ctx}: expected Err(Unsupported), got {other:?}"),
    }
}

/// Asserts that `r` is `Err(Error::Stale(Handle::Event))`.
pub fn assert_stale<T: std::fmt::Debug>(r: revent::Result<T>, ctx: &str) {
    match r {
        Err(Error::Stale(revent::Handle::Event)) => {}
        other => panic!("{ctx}: expected Err(Stale(Event)), got {other:?}"),
    }
}

/// Serializes the tests of one binary that must not run concurrently with each other (signals, fork,
/// closing fds whose numbers another test could reuse). Survives a poisoned lock.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Duplicates `fd` onto the lowest free descriptor number >= `min`.
pub fn dup_at_least(fd: &impl AsRawFd, min: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD on an open fd creates a new fd we then own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    assert!(
        n >= min,
        "F_DUPFD {min}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `n` was just created and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(n) }
}
