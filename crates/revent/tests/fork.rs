//! fork + reinit: the child re-initializes the base and runs a pipe event, a timer and signal events;
//! it reports through its exit status, which the parent checks. The parent's base keeps working
//! afterwards.
//!
//! A child forked from a multi-threaded process may deadlock on any lock another thread held at the
//! fork (the allocator's, stderr's, ...), and the test harness runs tests on threads. So each test
//! runs its scenario in a fresh process: it starts this binary again with `SCENARIO_VAR` set, and
//! `scenario_entry`, which runs before the harness's `main` while that process still has a single
//! thread, runs the scenario there (build a base, fork, check the child, go on in the parent) and
//! exits before the harness starts. The test checks the exit status and a marker the scenario prints
//! when it got to the end.

mod common;

use std::process::{Command, Stdio};

use common::*;
use revent::Method;

/// Names the scenario and backend a re-executed process runs: `<scenario>/<backend>`.
const SCENARIO_VAR: &str = "REVENT_FORK_SCENARIO";
/// What a scenario process prints when the scenario passed.
const PASSED: &str = "fork scenario passed";

/// Declares the scenarios: one test per scenario and backend (see `per_backend!`), each running
/// `scenario::<name>` in a fresh process; and the table `scenario_entry` finds them in.
macro_rules! scenarios {
    ($($name:ident),+ $(,)?) => {
        const SCENARIOS: &[(&str, fn(Method))] = &[$((stringify!($name), scenario::$name)),+];
        $( fn $name(m: Method) { run_scenario(stringify!($name), m) } )+
        per_backend!($($name),+);
    };
}

scenarios!(
    child_reinit_pipe_and_timer,
    child_changes_do_not_reach_parent,
    child_reinit_signal,
    child_does_not_get_parent_arrivals,
    child_never_uses_parent_pipes,
);

/// Runs `scenario` on backend `m` in a new process started from this binary and checks that it
/// passed.
fn run_scenario(scenario: &str, m: Method) {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .env(SCENARIO_VAR, format!("{scenario}/{}", name(m)))
        // Were `scenario_entry` not to take over, the harness would run no test, and print no
        // marker.
        .args(["--exact", "no-test-has-this-name"])
        .stdin(Stdio::null())
        .output()
        .expect("starting the scenario process");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains(PASSED),
        "scenario {scenario} on {} failed ({}); its output:\n{}{stderr}",
        name(m),
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
}

/// The C runtime calls this before `main` (`.init_array`), while the process has only its first
/// thread. In a process started by `run_scenario` it runs the scenario and exits; otherwise it
/// returns and the test harness starts as usual. What Rust's `main` would set up first is not in
/// place yet (SIGPIPE is not ignored, for one); the scenarios need none of it. A `harness = false`
/// test target would avoid this hook but needs an entry in Cargo.toml.
#[used]
#[link_section = ".init_array"]
static SCENARIO_ENTRY: extern "C" fn() = scenario_entry;

extern "C" fn scenario_entry() {
    let Ok(spec) = std::env::var(SCENARIO_VAR) else {
        return;
    };
    // A scenario that hangs gets SIGALRM, whose default action ends the process.
    // SAFETY: alarm takes a plain integer.
    unsafe { libc::alarm(30) };
    let run = || {
        let (scenario, backend) = spec.split_once('/').expect("<scenario>/<backend>");
        let m = Method::ALL
            .into_iter()
            .find(|&m| name(m) == backend)
            .expect("known backend");
        let (_, body) = SCENARIOS
            .iter()
            .find(|(n, _)| *n == scenario)
            .expect("known scenario");
        body(m);
    };
    // A panic has already printed its message; it must not unwind into the loader.
    let code = match std::panic::catch_unwind(run) {
        Ok(()) => {
            eprintln!("{PASSED}");
            0
        }
        Err(_) => 101,
    };
    std::process::exit(code);
}

mod scenario {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeSet;
    use std::os::fd::AsRawFd;
    use std::rc::Rc;
    use std::time::Duration;

    use super::common::*;
    use revent::util::raise;
    use revent::{EventBase, EventId, LoopExit, LoopFlags, Method, What};

    /// Forks; the child runs `child` (its return value, or 101 on panic, is its exit status, via
    /// `_exit`). Returns the child's exit status. The process must have a single thread, so that the
    /// child can run any code.
    fn fork_and_wait(child: impl FnOnce() -> i32) -> i32 {
        let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
        assert_eq!(threads, 1, "fork needs a single-threaded process");
        // SAFETY: the process has one thread (checked above), so the child may run any code.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // Alarms are not inherited: the child gets its own watchdog.
            // SAFETY: alarm takes a plain integer.
            unsafe { libc::alarm(20) };
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            // SAFETY: _exit ends the child without running the parent's exit handlers again.
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

    /// Sets `signo` to SIG_IGN, so that an arrival nothing watches is harmless.
    fn ignore(signo: i32) {
        // SAFETY: installing SIG_IGN is a plain sigaction call.
        unsafe { libc::signal(signo, libc::SIG_IGN) };
    }

    /// Adds a persistent event on `signo` that adds each arrival count to the returned counter.
    fn count_signal(base: &mut EventBase, signo: i32) -> (EventId, Counter) {
        let total = Counter::new();
        let t = total.clone();
        let ev = base
            .new_signal(signo, move |_, f| {
                for _ in 0..f.count {
                    t.inc();
                }
            })
            .unwrap();
        base.add(ev, None).unwrap();
        (ev, total)
    }

    /// The pipes open in this process, as their "pipe:[inode]" links, with how many fds name each.
    fn open_pipes() -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
            if let Ok(target) = std::fs::read_link(entry.unwrap().path()) {
                let target = target.to_string_lossy().into_owned();
                if target.starts_with("pipe:") {
                    out.push(target);
                }
            }
        }
        out.sort();
        out
    }

    /// The pipes in `after` that are not in `before`.
    fn new_pipes(before: &[String], after: &[String]) -> BTreeSet<String> {
        after
            .iter()
            .filter(|p| !before.contains(p))
            .cloned()
            .collect()
    }

    /// The child reinits, then a pipe event (added before the fork) and a new timer work there. The
    /// parent's base still works after the child is gone.
    pub fn child_reinit_pipe_and_timer(m: Method) {
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
            let timer_ran = Rc::new(Cell::new(false));
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

    /// The child deletes the event it inherited (after reinit), which must not remove it from the
    /// parent's kernel state (epoll instances are shared by fork until reinit replaces the child's).
    pub fn child_changes_do_not_reach_parent(m: Method) {
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

    /// A signal event added before the fork works in the child after reinit, which gives it a wake
    /// pipe of its own, and still in the parent; each process gets only its own signal.
    pub fn child_reinit_signal(m: Method) {
        ignore(libc::SIGUSR1);
        let mut base = base(m);
        let (ev, total) = count_signal(&mut base, libc::SIGUSR1);
        let status = fork_and_wait(|| {
            let before = open_pipes();
            if base.reinit().is_err() {
                return 2;
            }
            if new_pipes(&before, &open_pipes()).len() != 1 {
                return 7;
            }
            if raise(libc::SIGUSR1).is_err() {
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
        raise(libc::SIGUSR1).unwrap();
        let t = total.clone();
        assert!(run_until(&mut base, move || t.get() == 1));
        base.free(ev).unwrap();
    }

    /// An arrival the parent had not delivered when it forked stays the parent's: the child after
    /// reinit sees only its own, the parent still gets it.
    pub fn child_does_not_get_parent_arrivals(m: Method) {
        ignore(libc::SIGUSR1);
        let mut base = base(m);
        let (ev, total) = count_signal(&mut base, libc::SIGUSR1);
        raise(libc::SIGUSR1).unwrap();
        let status = fork_and_wait(|| {
            if base.reinit().is_err() {
                return 2;
            }
            if step(&mut base).is_err() || total.get() != 0 {
                return 3;
            }
            if raise(libc::SIGUSR1).is_err() {
                return 4;
            }
            let t = total.clone();
            if !run_until(&mut base, move || t.get() >= 1) {
                return 5;
            }
            if step(&mut base).is_err() || total.get() != 1 {
                return 6;
            }
            0
        });
        assert_eq!(status, 0, "child failed at step {status}");
        let t = total.clone();
        assert!(run_until(&mut base, move || t.get() >= 1));
        step(&mut base).unwrap();
        assert_eq!(total.get(), 1, "the parent's one arrival");
        base.free(ev).unwrap();
    }

    /// Wake pipes made before the fork are shared with the parent, so the child takes none of them
    /// for a new base: not one the parent kept for reuse after dropping a base, nor that of a base
    /// the child drops without reinit. Both processes' signals still work.
    pub fn child_never_uses_parent_pipes(m: Method) {
        ignore(libc::SIGUSR1);
        ignore(libc::SIGUSR2);
        let p0 = open_pipes();
        let mut kept = base(m);
        let (kept_ev, kept_total) = count_signal(&mut kept, libc::SIGUSR1);
        // The child takes it out to drop it.
        let mut kept = Some(kept);
        let p1 = open_pipes();
        let kept_pipe = new_pipes(&p0, &p1);
        assert_eq!(kept_pipe.len(), 1, "one wake pipe: {kept_pipe:?}");
        let mut dropped = base(m);
        let _ = count_signal(&mut dropped, libc::SIGUSR2);
        let dropped_pipe = new_pipes(&p1, &open_pipes());
        assert_eq!(dropped_pipe.len(), 1, "one wake pipe: {dropped_pipe:?}");
        drop(dropped);

        let status = fork_and_wait(|| {
            // The inherited base goes away without reinit.
            drop(kept.take());
            let before = open_pipes();
            let mut fresh = base(m);
            let (_, total) = count_signal(&mut fresh, libc::SIGUSR1);
            let after = open_pipes();
            let made = new_pipes(&before, &after);
            if made.len() != 1 {
                return 2;
            }
            if made
                .iter()
                .any(|p| kept_pipe.contains(p) || dropped_pipe.contains(p))
            {
                return 3;
            }
            if after.iter().any(|p| dropped_pipe.contains(p)) {
                // The parent's spare pipe is closed here once the child takes a pipe.
                return 4;
            }
            if raise(libc::SIGUSR1).is_err() {
                return 5;
            }
            let t = total.clone();
            if !run_until(&mut fresh, move || t.get() == 1) {
                return 6;
            }
            0
        });
        assert_eq!(status, 0, "child failed at step {status}");
        raise(libc::SIGUSR1).unwrap();
        let kept = kept.as_mut().unwrap();
        let t = kept_total.clone();
        assert!(run_until(kept, move || t.get() == 1));
        kept.free(kept_ev).unwrap();
        let mut again = base(m);
        let (_, total) = count_signal(&mut again, libc::SIGUSR2);
        raise(libc::SIGUSR2).unwrap();
        let t = total.clone();
        assert!(run_until(&mut again, move || t.get() == 1));
    }
}
