//! Signal wake-up pipes and arrival counts across bases. The handler loads a pipe's write end and
//! then writes to it; if a dropped base closed that pipe in between and the number went to a new
//! file, the byte would land in that file. So a base's wake pipe outlives the base and goes to the
//! next base that watches a signal, and arrivals a base never delivered do not follow its pipe. Its
//! own binary: these tests count the process's open pipes, which other tests would disturb. Every
//! test holds `serial()` and puts SIGUSR1's disposition back when it ends.

mod common;

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use revent::util::raise;
use revent::{EventBase, EventId, LoopFlags};

const SIG: i32 = libc::SIGUSR1;

/// Sets SIGUSR1 to SIG_IGN (so a stray arrival while no base watches it is harmless) and puts the
/// disposition found at creation back when dropped, panic or not.
struct IgnoreSig(libc::sigaction);

impl IgnoreSig {
    fn new() -> IgnoreSig {
        // SAFETY: a zeroed sigaction is valid; sigaction reads `ign` and writes `old`, both live.
        unsafe {
            let mut ign: libc::sigaction = std::mem::zeroed();
            ign.sa_sigaction = libc::SIG_IGN;
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(SIG, &ign, &mut old), 0);
            IgnoreSig(old)
        }
    }
}

impl Drop for IgnoreSig {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the kernel's own description of the earlier disposition.
        unsafe { libc::sigaction(SIG, &self.0, std::ptr::null_mut()) };
    }
}

/// The open pipe fds of this process: fd -> "pipe:[inode]".
fn pipe_fds() -> BTreeMap<i32, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let entry = entry.unwrap();
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // The directory's own fd is gone by the time we read its link: skip what cannot be read.
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let target = target.to_string_lossy().into_owned();
            if target.starts_with("pipe:") {
                out.insert(fd, target);
            }
        }
    }
    out
}

/// Adds a persistent SIGUSR1 event that adds each arrival count to `total`.
fn watch(base: &mut EventBase, total: &Rc<Cell<u64>>) -> EventId {
    let t = total.clone();
    let id = base
        .new_signal(SIG, move |_, f| t.set(t.get() + u64::from(f.count)))
        .unwrap();
    base.add(id, None).unwrap();
    id
}

/// Runs `base` until `total` reaches `want` (or a 5 s guard breaks the loop).
fn run_until_total(base: &mut EventBase, total: &Rc<Cell<u64>>, want: u64) {
    let (g, fired) = guard(base, Duration::from_secs(5));
    while total.get() < want && !fired.get() {
        base.run(LoopFlags::ONCE).unwrap();
    }
    assert!(!fired.get(), "the signal was not delivered within 5 s");
    base.free(g).unwrap();
}

/// Dropping a base that watched a signal closes none of the process's pipes, the next base takes the
/// same wake pipe instead of a new one, and signals reach it; on every backend in turn.
#[test]
fn dropped_base_keeps_wake_pipe_for_the_next() {
    let _s = serial();
    let _w = watchdog("dropped_base_keeps_wake_pipe_for_the_next");
    let _sig = IgnoreSig::new();
    let mut known: Option<BTreeMap<i32, String>> = None;
    for m in all() {
        let before = pipe_fds();
        if let Some(known) = &known {
            assert_eq!(&before, known, "{}: pipes changed between bases", name(m));
        }
        let mut base = base(m);
        let total = Rc::new(Cell::new(0));
        let _ = watch(&mut base, &total);
        let during = pipe_fds();
        if known.is_some() {
            assert_eq!(
                during,
                before,
                "{}: the base made a new wake pipe instead of reusing the dropped base's",
                name(m)
            );
        } else {
            let new: Vec<&String> = during
                .iter()
                .filter(|(fd, _)| !before.contains_key(fd))
                .map(|(_, t)| t)
                .collect();
            // None if an earlier test in this binary left a pipe to reuse.
            assert!(
                new.is_empty() || (new.len() == 2 && new[0] == new[1]),
                "{}: expected at most one new pipe, got {new:?}",
                name(m)
            );
        }
        raise(SIG).unwrap();
        raise(SIG).unwrap();
        run_until_total(&mut base, &total, 2);
        assert_eq!(total.get(), 2, "{}: two arrivals", name(m));
        drop(base);
        let after = pipe_fds();
        assert_eq!(
            after,
            during,
            "{}: dropping the base closed (or opened) pipe fds",
            name(m)
        );
        known = Some(after);
    }
}

/// Arrivals that a base never delivered before it was dropped (with their byte still in its pipe)
/// do not show up in the next base that watches the signal.
#[test]
fn undelivered_arrivals_die_with_their_base() {
    let _s = serial();
    let _w = watchdog("undelivered_arrivals_die_with_their_base");
    let _sig = IgnoreSig::new();
    for m in all() {
        let mut first = base(m);
        let t1 = Rc::new(Cell::new(0));
        let _ = watch(&mut first, &t1);
        raise(SIG).unwrap();
        drop(first);
        assert_eq!(t1.get(), 0);

        let mut second = base(m);
        let t2 = Rc::new(Cell::new(0));
        let _ = watch(&mut second, &t2);
        step(&mut second).unwrap();
        assert_eq!(
            t2.get(),
            0,
            "{}: the dropped base's arrival leaked",
            name(m)
        );
        raise(SIG).unwrap();
        run_until_total(&mut second, &t2, 1);
        step(&mut second).unwrap();
        assert_eq!(t2.get(), 1, "{}: exactly the one new arrival", name(m));
    }
}

/// A pending arrival stays due to the base that received it when that base deletes its event and
/// adds it again, but not to another base that takes the signal over.
#[test]
fn arrivals_belong_to_the_base_that_received_them() {
    let _s = serial();
    let _w = watchdog("arrivals_belong_to_the_base_that_received_them");
    let _sig = IgnoreSig::new();
    for m in all() {
        let mut first = base(m);
        let t1 = Rc::new(Cell::new(0));
        let id = watch(&mut first, &t1);
        raise(SIG).unwrap();
        first.del(id).unwrap();
        first.add(id, None).unwrap();
        run_until_total(&mut first, &t1, 1);
        assert_eq!(t1.get(), 1, "{}: the arrival survives del and add", name(m));

        raise(SIG).unwrap();
        first.del(id).unwrap();
        let mut second = base(m);
        let t2 = Rc::new(Cell::new(0));
        let _ = watch(&mut second, &t2);
        step(&mut second).unwrap();
        raise(SIG).unwrap();
        run_until_total(&mut second, &t2, 1);
        step(&mut second).unwrap();
        assert_eq!(
            t2.get(),
            1,
            "{}: only the second base's own arrival",
            name(m)
        );
        step(&mut first).unwrap();
        assert_eq!(t1.get(), 1, "{}: the first base has no event left", name(m));
    }
}

/// `reinit` without a fork keeps the wake pipe (nothing is shared) and signals still arrive.
#[test]
fn reinit_without_fork_keeps_the_pipe() {
    let _s = serial();
    let _w = watchdog("reinit_without_fork_keeps_the_pipe");
    let _sig = IgnoreSig::new();
    for m in all() {
        let mut base = base(m);
        let total = Rc::new(Cell::new(0));
        let _ = watch(&mut base, &total);
        let before = pipe_fds();
        base.reinit().unwrap();
        assert_eq!(pipe_fds(), before, "{}: reinit changed the pipes", name(m));
        raise(SIG).unwrap();
        run_until_total(&mut base, &total, 1);
        assert_eq!(total.get(), 1, "{}", name(m));
    }
}

/// The CPUs the calling thread may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is the empty set; sched_getaffinity writes at most its size into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let r = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        assert_eq!(
            r,
            0,
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        );
        set
    };
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, so CPU_ISSET stays inside the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Restricts the calling thread to `cpu`, if given.
fn pin_to(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: a zeroed cpu_set_t is the empty set; `cpu` came from `allowed_cpus`, so it is below
    // CPU_SETSIZE; sched_setaffinity only reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let r = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(
            r,
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Background threads that run until dropped (which stops and joins them, also when the test
/// panics): some raise SIGUSR1 at themselves nonstop, one keeps preempting them.
struct Storm {
    stop: Arc<AtomicBool>,
    raisers: Vec<JoinHandle<u64>>,
    preempter: Option<JoinHandle<()>>,
}

impl Storm {
    fn start(raisers: usize, cpu: Option<usize>) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let raisers = (0..raisers)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    pin_to(cpu);
                    let mut sent = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // raise() targets this thread, so the handler runs here, concurrently with
                        // the thread that drops bases.
                        raise(SIG).unwrap();
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        // A handler is only caught between loading a wake fd and writing to it if its thread loses
        // the CPU right there. This thread wakes up every few tens of microseconds on the raisers'
        // CPU, which takes the CPU from a raiser at an arbitrary point, and then keeps it a little
        // while: long enough for the other CPU to drop a base and open sockets.
        let preempter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin_to(cpu);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_micros(20));
                    let busy = Instant::now();
                    while busy.elapsed() < Duration::from_micros(20) {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        Storm {
            stop,
            raisers,
            preempter: Some(preempter),
        }
    }

    /// Stops the threads; returns how many signals were raised.
    fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.preempter.take() {
            p.join().unwrap();
        }
        self.raisers.drain(..).map(|t| t.join().unwrap()).sum()
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bytes waiting on either end of a socket pair.
fn stray_bytes(pair: &mut (UnixStream, UnixStream)) -> Vec<u8> {
    let mut got = drain(&mut pair.0);
    got.extend(drain(&mut pair.1));
    got
}

/// While other threads raise SIGUSR1 nonstop, bases that watch it are created, run and dropped, and
/// each drop is followed at once by new socket pairs, which take the lowest free fd numbers (those a
/// dropped base would have freed). No socket may ever receive a byte: nothing writes to them.
#[test]
fn no_stray_wake_bytes_while_bases_come_and_go() {
    let _s = serial();
    let _w = watchdog("no_stray_wake_bytes_while_bases_come_and_go");
    let _sig = IgnoreSig::new();
    // The storm gets one CPU and this thread another, when there are two.
    let cpus = allowed_cpus();
    let (storm_cpu, my_cpu) = match cpus[..] {
        [a, b, ..] => (Some(a), Some(b)),
        _ => (None, None),
    };
    // Socket pairs stay open for a few rounds, so that a preempted handler's late write still lands
    // in one that is checked.
    const KEEP: usize = 16;
    let mut kept: VecDeque<[(UnixStream, UnixStream); 2]> = VecDeque::new();
    let mut strays = Vec::new();
    let total = Rc::new(Cell::new(0));
    let mut rounds = 0u32;
    let mut storm = Storm::start(2, storm_cpu);
    // The harness runs each test on a thread of its own, which ends with the test.
    pin_to(my_cpu);
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        if kept.len() == KEEP {
            for mut pair in kept.pop_front().unwrap() {
                strays.extend(stray_bytes(&mut pair));
            }
        }
        let ms = all();
        let m = ms[rounds as usize % ms.len()];
        let mut base = base(m);
        let _ = watch(&mut base, &total);
        step(&mut base).unwrap();
        drop(base);
        kept.push_back([socketpair(), socketpair()]);
        rounds += 1;
    }
    let sent = storm.stop();
    for mut pairs in kept.drain(..) {
        for pair in &mut pairs {
            strays.extend(stray_bytes(pair));
        }
    }
    assert!(
        strays.is_empty(),
        "{} stray byte(s) {strays:?} reached unrelated sockets ({rounds} rounds, {sent} signals)",
        strays.len()
    );
    assert!(
        rounds > 10 && total.get() > 0,
        "the race was not exercised: {rounds} rounds, {} deliveries, {sent} signals",
        total.get()
    );
}
