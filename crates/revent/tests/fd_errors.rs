//! Bad fds: closed, negative, of a kind epoll cannot watch, too large for select; an fd closed while
//! registered must not make the loop spin; an fd number reused after del works.
//!
//! These tests close fds and reuse their numbers, so every test of this binary holds `serial()`:
//! another test opening a socket meanwhile could get the number and confuse the check.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use revent::{Error, LoopExit, Method, What};

/// A closed fd number is refused with BadFd, by add (via `register`) and by `once`.
fn closed_fd_is_badfd(m: Method) {
    let _s = serial();
    let mut base = base(m);
    let (a, _b) = socketpair();
    let fd = a.into_raw_fd();
    // SAFETY: we own `fd` (into_raw_fd) and close it exactly once.
    unsafe { libc::close(fd) };
    for what in [
        What::READ,
        What::WRITE,
        What::READ | What::WRITE | What::PERSIST,
    ] {
        match register(&mut base, fd, what, |_, _| {}) {
            Err(Error::BadFd(n, _)) => assert_eq!(n, fd),
            other => panic!("{what:?} on closed fd {fd}: expected BadFd, got {other:?}"),
        }
    }
    match base.once(fd, What::READ, None, |_, _| {}) {
        Err(Error::BadFd(n, _)) => assert_eq!(n, fd),
        other => panic!("once on closed fd {fd}: expected BadFd, got {other:?}"),
    }
    assert_eq!(
        base.dispatch().unwrap(),
        LoopExit::NoEvents,
        "nothing was left registered"
    );
}

/// Negative fds are refused with BadFd when the event watches READ, WRITE or CLOSED.
fn negative_fd_is_badfd(m: Method) {
    let _s = serial();
    let mut base = base(m);
    for fd in [-2, -100] {
        match base.new_event(fd, What::READ, |_, _| {}) {
            Err(Error::BadFd(n, _)) => assert_eq!(n, fd),
            other => panic!("new_event({fd}, READ): expected BadFd, got {other:?}"),
        }
        match base.once(fd, What::WRITE, None, |_, _| {}) {
            Err(Error::BadFd(n, _)) => assert_eq!(n, fd),
            other => panic!("once({fd}, WRITE): expected BadFd, got {other:?}"),
        }
    }
    match base.new_event(-1, What::READ, |_, _| {}) {
        Err(Error::BadFd(-1, _)) => {}
        other => panic!("new_event(-1, READ): expected BadFd, got {other:?}"),
    }
}

/// A regular file: epoll cannot watch it (BadFd); poll and select report it ready at once.
fn regular_file(m: Method) {
    let _s = serial();
    let mut base = base(m);
    let path = std::env::temp_dir().join(format!(
        "revent-test-{}-{}",
        std::process::id(),
        common::name(m)
    ));
    std::fs::write(&path, b"content").unwrap();
    let f = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let c = Counter::new();
    let c2 = c.clone();
    let r = register(&mut base, f.as_raw_fd(), What::READ, move |_, fired| {
        assert_eq!(fired.what, What::READ);
        c2.inc();
    });
    if matches!(m, Method::Epoll) {
        match r {
            Err(Error::BadFd(n, _)) => assert_eq!(n, f.as_raw_fd()),
            other => panic!("epoll on a regular file: expected BadFd, got {other:?}"),
        }
    } else {
        let _ = r.unwrap();
        assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
        assert_eq!(c.get(), 1);
    }
}

/// select refuses fds >= 1024 with FdTooLarge; epoll and poll watch them.
fn fd_too_large_for_select(m: Method) {
    let _s = serial();
    let mut base = base(m);
    let (a, mut b) = socketpair();
    for min in [1024, 1500] {
        let big = dup_at_least(&a, min);
        let fd = big.as_raw_fd();
        let log = Log::new();
        let l = log.clone();
        let r = register(&mut base, fd, What::READ, move |_, f| {
            l.push((f.fd, f.what, read_fd(f.fd)))
        });
        if matches!(m, Method::Select) {
            match r {
                Err(Error::FdTooLarge { fd: n, limit }) => assert_eq!((n, limit), (fd, 1024)),
                other => panic!("select, fd {fd}: expected FdTooLarge, got {other:?}"),
            }
            match base.once(fd, What::READ, None, |_, _| {}) {
                Err(Error::FdTooLarge { fd: n, limit }) => assert_eq!((n, limit), (fd, 1024)),
                other => panic!("select, once on fd {fd}: expected FdTooLarge, got {other:?}"),
            }
        } else {
            let _ = r.unwrap();
            send(&mut b, b"big");
            assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(log.get(), vec![(fd, What::READ, b"big".to_vec())]);
        }
    }
    // 1023 is fine everywhere.
    let (a2, mut b2) = socketpair();
    // SAFETY: dup2 onto 1023, which this serialized test owns (nothing else in it opens fds that high).
    let r = unsafe { libc::dup2(a2.as_raw_fd(), 1023) };
    assert_eq!(r, 1023);
    let c = Counter::new();
    let c2 = c.clone();
    let _ = register(&mut base, 1023, What::READ, move |_, _| c2.inc()).unwrap();
    send(&mut b2, b"x");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(c.get(), 1);
    // SAFETY: closing the dup we made.
    unsafe { libc::close(1023) };
}

/// An fd closed while its persistent events are still added must not make the loop spin: over a
/// 60 ms run the callback runs at most twice, and the loop keeps working (its timer ends it).
fn closed_while_registered_does_not_spin(m: Method) {
    let _s = serial();
    for what in [
        What::READ | What::PERSIST,
        What::READ | What::WRITE | What::PERSIST,
    ] {
        for run_first in [false, true] {
            let mut base = base(m);
            let (a, b) = socketpair();
            let c = Counter::new();
            let c2 = c.clone();
            let id = register(&mut base, a.as_raw_fd(), what, move |_, _| c2.inc()).unwrap();
            if run_first {
                // Let the loop register the fd with the kernel first.
                step(&mut base).unwrap();
            }
            let before = c.get();
            drop(a);
            drop(b);
            base.loopexit(Some(Duration::from_millis(60))).unwrap();
            assert_eq!(
                base.dispatch().unwrap(),
                LoopExit::Done,
                "{what:?} run_first={run_first}"
            );
            assert!(base.got_exit());
            let n = c.get() - before;
            assert!(n <= 2, "{what:?} run_first={run_first}: the callback ran {n} times in 60 ms: the loop spins");
            base.del(id).unwrap();
            assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
        }
    }
}

/// A connected pair whose first socket has fd number `fd` (which must be free).
fn socketpair_at(fd: RawFd) -> (UnixStream, UnixStream) {
    let (x, y) = socketpair();
    if x.as_raw_fd() == fd {
        return (x, y);
    }
    // SAFETY: `fd` is free (the caller closed it); dup2 makes it a second reference to `x`'s socket.
    assert_eq!(unsafe { libc::dup2(x.as_raw_fd(), fd) }, fd);
    drop(x);
    // SAFETY: `fd` was just created by dup2 and nothing else owns it.
    (unsafe { UnixStream::from_raw_fd(fd) }, y)
}

/// After del and close, a new socket that gets the same fd number can be watched: outside the loop.
fn fd_number_reused_after_del(m: Method) {
    let _s = serial();
    let mut base = base(m);
    let (a, _b) = socketpair();
    let fd = a.as_raw_fd();
    let id = register(&mut base, fd, What::READ | What::PERSIST, |_, _| {}).unwrap();
    step(&mut base).unwrap();
    base.del(id).unwrap();
    drop(a);
    drop(_b);
    let (_a2, mut b2) = socketpair_at(fd);
    let c = Counter::new();
    let c2 = c.clone();
    let _ = register(&mut base, fd, What::READ, move |_, _| c2.inc()).unwrap();
    send(&mut b2, b"x");
    let (g, guard_fired) = guard(&mut base, Duration::from_secs(5));
    assert_eq!(base.run(revent::LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert!(
        !guard_fired.get(),
        "the new socket on the reused number was never watched"
    );
    assert_eq!(c.get(), 1);
    base.free(g).unwrap();
}

/// Same, all inside one callback: del the event, close its fd, open a socket that gets the same
/// number, add an event on it. libevent 2.1's epoll backend (no changelist by default) deletes the fd
/// from epoll at del time, so the new socket is added afresh and fires.
fn fd_number_reused_in_one_callback(m: Method) {
    let _s = serial();
    let mut base = base(m);
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    let old = register(&mut base, fd, What::READ | What::PERSIST, |_, _| {}).unwrap();
    step(&mut base).unwrap();
    let log = Log::new();
    let l = log.clone();
    let keep = std::rc::Rc::new(std::cell::RefCell::new(None));
    let k = keep.clone();
    let mut a = Some(a);
    let mut b = Some(b);
    base.once(-1, What::TIMEOUT, None, move |base, _| {
        base.del(old).unwrap();
        drop(a.take());
        drop(b.take());
        let (a2, mut b2) = socketpair_at(fd);
        let l2 = l.clone();
        let _ = register(base, fd, What::READ, move |_, f| l2.push(read_fd(f.fd))).unwrap();
        send(&mut b2, b"new");
        *k.borrow_mut() = Some((a2, b2));
    })
    .unwrap();
    let (g, guard_fired) = guard(&mut base, Duration::from_secs(5));
    // First ONCE runs the callback above; the second must see the new socket's data.
    assert_eq!(base.run(revent::LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert_eq!(base.run(revent::LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert!(
        !guard_fired.get(),
        "the new socket on the reused number was never watched"
    );
    assert_eq!(log.get(), vec![b"new".to_vec()]);
    base.free(g).unwrap();
    drop(keep);
}

/// An event that times out is deleted with its fd's interest, which reaches the kernel before the
/// event's own callback runs: that callback may close the fd, get its number back from a new socket
/// and watch it, and the new socket fires.
fn fd_number_reused_after_timeout(m: Method) {
    let _s = serial();
    let mut base = base(m);
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    let log = Log::new();
    let l = log.clone();
    let keep = std::rc::Rc::new(std::cell::RefCell::new(None));
    let k = keep.clone();
    let mut a = Some(a);
    let mut b = Some(b);
    let timed = base
        .new_event(fd, What::READ, move |base, fired| {
            assert!(fired.what.contains(What::TIMEOUT));
            drop(a.take());
            drop(b.take());
            let (a2, mut b2) = socketpair_at(fd);
            let l2 = l.clone();
            let _ = register(base, fd, What::READ, move |_, f| l2.push(read_fd(f.fd))).unwrap();
            send(&mut b2, b"new");
            *k.borrow_mut() = Some((a2, b2));
        })
        .unwrap();
    base.add(timed, Some(Duration::from_millis(1))).unwrap();
    let (g, guard_fired) = guard(&mut base, Duration::from_secs(5));
    // First ONCE runs the timeout above; the second must see the new socket's data.
    assert_eq!(base.run(revent::LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert_eq!(base.run(revent::LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert!(
        !guard_fired.get(),
        "the new socket on the reused number was never watched"
    );
    assert_eq!(log.get(), vec![b"new".to_vec()]);
    base.free(g).unwrap();
    drop(keep);
}

per_backend!(
    fd_number_reused_after_timeout,
    closed_fd_is_badfd,
    negative_fd_is_badfd,
    regular_file,
    fd_too_large_for_select,
    closed_while_registered_does_not_spin,
    fd_number_reused_after_del,
    fd_number_reused_in_one_callback,
);
