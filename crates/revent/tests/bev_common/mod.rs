//! Helpers shared by the bufferevent, pair/filter, listener and rate-limit tests.
#![allow(dead_code)]

use revent::{BevFlags, BufferEvent, Config, ConfigFlags, EventBase, LoopFlags, Method};
use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A base on backend `m` only.
pub fn base(m: Method) -> EventBase {
    let cfg = base_config(m);
    let b = EventBase::with_config(&cfg).unwrap();
    assert_eq!(b.method(), m.name());
    b
}

/// The configuration [`base`] uses, for tests that need a flag more.
pub fn base_config(m: Method) -> Config {
    let mut cfg = Config::new();
    for other in Method::ALL {
        if other != m {
            cfg.avoid_method(other);
        }
    }
    cfg.set_flag(ConfigFlags::IGNORE_ENV);
    // .ci/run runs these suites a second time with readiness-based I/O on io_uring (the default
    // there is completion-based: see `Config::uring_readiness_only`).
    cfg.uring_readiness_only(std::env::var_os("REVENT_TEST_URING_READINESS").is_some());
    cfg
}

/// Every backend this machine has.
pub fn backends() -> Vec<Method> {
    Method::ALL
        .into_iter()
        .filter(|&m| EventBase::method_available(m))
        .collect()
}

/// Runs the loop until `done` holds; panics after `limit` (a generous bound, not a speed claim).
pub fn run_until(
    base: &mut EventBase,
    limit: Duration,
    mut done: impl FnMut(&mut EventBase) -> bool,
) {
    let tick = base.new_timer(|_, _| {});
    let start = Instant::now();
    while !done(base) {
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        base.add(tick, Some(Duration::from_millis(10))).unwrap();
        base.run(LoopFlags::ONCE).unwrap();
    }
    base.free(tick).unwrap();
}

/// Runs the loop for about `d`.
pub fn run_for(base: &mut EventBase, d: Duration) {
    let start = Instant::now();
    run_until(base, d + Duration::from_secs(30), |_| start.elapsed() >= d);
}

/// The test pattern: byte `i` of a stream is `pat(i)`.
pub fn pat(i: usize) -> u8 {
    (i * 31 % 251) as u8
}

pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(pat).collect()
}

pub type Log = Rc<RefCell<Vec<String>>>;

pub fn log() -> Log {
    Rc::default()
}

pub fn push(l: &Log, s: impl Into<String>) {
    l.borrow_mut().push(s.into());
}

pub fn entries(l: &Log) -> Vec<String> {
    l.borrow().clone()
}

/// A Unix socketpair: our end as an `OwnedFd` for a bufferevent, the peer as a blocking stream with
/// a safety read timeout.
pub fn socketpair() -> (OwnedFd, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    b.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    b.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    (a.into(), b)
}

/// Bytes waiting in the kernel to be read on `fd`.
pub fn fionread(fd: i32) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// Whether `fd` is an open file descriptor.
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Raises the soft RLIMIT_NOFILE to at least `n` (up to the hard limit).
pub fn raise_nofile(n: libc::rlim_t) -> libc::rlim_t {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_cur < n {
            rl.rlim_cur = n.min(rl.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
        }
    }
    rl.rlim_cur
}

/// Bytes in the input buffer.
pub fn input_len(base: &mut EventBase, bev: BufferEvent) -> usize {
    bev.input(base).unwrap().len()
}

/// Bytes in the output buffer.
pub fn output_len(base: &mut EventBase, bev: BufferEvent) -> usize {
    bev.output(base).unwrap().len()
}

/// Takes everything from the input buffer.
pub fn drain_input(base: &mut EventBase, bev: BufferEvent) -> Vec<u8> {
    let input = bev.input(base).unwrap();
    let mut v = vec![0u8; input.len()];
    let n = input.remove(&mut v).unwrap();
    v.truncate(n);
    v
}

/// Records every event callback's flags.
/// Sets a read callback that drains the input into the returned vector.
pub fn record_input(base: &mut EventBase, bev: BufferEvent) -> Rc<RefCell<Vec<u8>>> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    bev.set_read_cb(base, move |base, bev| {
        g.borrow_mut().extend(drain_input(base, bev))
    })
    .unwrap();
    got
}

pub fn record_events(base: &mut EventBase, bev: BufferEvent) -> Rc<RefCell<Vec<BevFlags>>> {
    let ev = Rc::new(RefCell::new(Vec::new()));
    let e = ev.clone();
    bev.set_event_cb(base, move |_, _, f| e.borrow_mut().push(f))
        .unwrap();
    ev
}
