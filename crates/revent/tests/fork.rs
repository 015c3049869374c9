//! fork + reinit: the child re-initializes the base and runs a pipe event, a timer and a signal
//! event; it reports through its exit status, which the parent checks. The parent's base keeps
//! working afterwards. Every test holds `serial()` (fork and signal dispositions are process-wide).

mod common;

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use revent::{EventBase, LoopExit, LoopFlags, Method, What};

/// Forks; the child runs `child` (its return value, or 101 on panic, is its exit status, via `_exit`
/// so that nothing of the parent's test harness runs in the child). Returns the child's exit status.
fn fork_and_wait(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child` and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: _exit ends the child without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a live status slot.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: status {status:#x}"
    );
    libc::WEXITSTATUS(status)
}

/// Runs `base` until `done()` or a 5 s guard; returns whether `done()` became true.
fn run_until(base: &mut EventBase, done: impl Fn() -> bool) -> bool {
    let (g, fired) = guard(base, Duration::from_secs(5));
    while !done() && !fired.get() {
        if base.run(LoopFlags::ONCE).is_err() {
            return false;
        }
    }
    let _ = base.free(g);
    done()
}

/// The child reinits, then a pipe event (added before the fork) and a new timer work there. The
/// parent's base still works after the child is gone.
fn child_reinit_pipe_and_timer(m: Method) {
    let _s = serial();
    let mut base = base(m);
    let (r, w) = pipe();
    let data = Rc::new(RefCell::new(Vec::new()));
    let d = data.clone();
    let ev = register(
        &mut base,
        r.as_raw_fd(),
        What::READ | What::PERSIST,
        move |_, f| {
            d.borrow_mut().extend(read_fd(f.fd));
        },
    )
    .unwrap();
    // Make sure the fd is registered in the kernel before forking.
    step(&mut base).unwrap();
    let wfd = w.as_raw_fd();
    let status = fork_and_wait(|| {
        if base.reinit().is_err() {
            return 2;
        }
        write_fd(wfd, b"child");
        let timer_ran = Rc::new(std::cell::Cell::new(false));
        let t2 = timer_ran.clone();
        let t = base.new_timer(move |_, f| t2.set(f.what == What::TIMEOUT));
        if base.add(t, Some(Duration::from_millis(20))).is_err() {
            return 3;
        }
        let d = data.clone();
        if !run_until(&mut base, || d.borrow().as_slice() == b"child") {
            return 4;
        }
        let tr = timer_ran.clone();
        if !run_until(&mut base, move || tr.get()) {
            return 5;
        }
        if base.del(ev).is_err() || base.dispatch().ok() != Some(LoopExit::NoEvents) {
            return 6;
        }
        0
    });
    assert_eq!(status, 0, "child failed at step {status}");
    // The child read its own data; the parent's base and event still work.
    assert!(data.borrow().is_empty());
    write_fd(wfd, b"parent");
    let d = data.clone();
    assert!(run_until(&mut base, || d.borrow().as_slice() == b"parent"));
    base.del(ev).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
}

/// Without the parent's base being disturbed: the child deletes the event it inherited (after
/// reinit), which must not remove it from the parent's kernel state (epoll instances are shared by
/// fork until reinit replaces the child's).
fn child_changes_do_not_reach_parent(m: Method) {
    let _s = serial();
    let mut base = base(m);
    let (r, w) = pipe();
    let c = Counter::new();
    let c2 = c.clone();
    let ev = register(
        &mut base,
        r.as_raw_fd(),
        What::READ | What::PERSIST,
        move |_, f| {
            read_fd(f.fd);
            c2.inc();
        },
    )
    .unwrap();
    step(&mut base).unwrap();
    let status = fork_and_wait(|| {
        if base.reinit().is_err() {
            return 2;
        }
        if base.free(ev).is_err() {
            return 3;
        }
        if base.dispatch().ok() != Some(LoopExit::NoEvents) {
            return 4;
        }
        0
    });
    assert_eq!(status, 0, "child failed at step {status}");
    write_fd(w.as_raw_fd(), b"x");
    let c3 = c.clone();
    assert!(
        run_until(&mut base, move || c3.get() == 1),
        "the parent's event no longer fires"
    );
    base.free(ev).unwrap();
}

/// A signal event added before the fork works in the child after reinit, and still in the parent.
fn child_reinit_signal(m: Method) {
    let _s = serial();
    // SAFETY: installing SIG_IGN is a plain sigaction call.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
    let mut base = base(m);
    let total = Counter::new();
    let t = total.clone();
    let ev = base
        .new_signal(libc::SIGUSR1, move |_, f| {
            for _ in 0..f.count {
                t.inc();
            }
        })
        .unwrap();
    base.add(ev, None).unwrap();
    let status = fork_and_wait(|| {
        if base.reinit().is_err() {
            return 2;
        }
        if revent::util::raise(libc::SIGUSR1).is_err() {
            return 3;
        }
        let t = total.clone();
        if !run_until(&mut base, move || t.get() == 1) {
            return 4;
        }
        0
    });
    assert_eq!(status, 0, "child failed at step {status}");
    assert_eq!(total.get(), 0, "the child's signal is not the parent's");
    revent::util::raise(libc::SIGUSR1).unwrap();
    let t = total.clone();
    assert!(run_until(&mut base, move || t.get() == 1));
    base.free(ev).unwrap();
}

per_backend!(
    child_reinit_pipe_and_timer,
    child_changes_do_not_reach_parent,
    child_reinit_signal,
);
