//! `wakeup`: cross-thread wake-ups. A poster thread hands work to a loop thread, which runs one
//! callback per post; revent's [`Remote`] against C libevent's `event_active` from another thread
//! and tokio's `Handle::spawn` onto a current-thread runtime, side by side.
//!
//! Every contender is a process with two threads: the loop thread (pinned to `--loop-cpu`) runs the
//! event loop; the main thread is the poster (pinned to `--poster-cpu`) and speaks the child protocol
//! of [`crate::child`]. The poster posts bursts of B and waits until all B callbacks have run before
//! the next burst:
//! - `revent`: `Remote::activate(ids[i], What::READ)` for i in 0..B, B distinct events (fd -1, never
//!   added) on a base run with `LoopFlags::NO_EXIT_ON_EMPTY` (this binary's `wakeup-child revent`);
//! - `libevent`: `event_active(evs[i], EV_READ, 1)`, B distinct events, `evthread_use_pthreads` and
//!   `evthread_make_base_notifiable`, `event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY)`
//!   (`c/wakeup_libevent.c`);
//! - `tokio`: `handle.spawn(async { callback() })`, B tasks, on a current-thread runtime with the I/O
//!   driver enabled (as any runtime that does I/O has) blocked in `block_on` (`wakeup-child tokio`);
//! - `tokio-noio` (not run unless asked for): the same runtime without the I/O driver, which parks on
//!   a condition variable instead of epoll: tokio's cheapest wake-up, but a loop that can do no I/O.
//!
//! Since a burst waits for all its callbacks, an event is never already active when it is activated
//! (libevent and revent merge such activations): each post runs exactly one callback, in every
//! contender, and each run checks that the callbacks counted equal the posts.
//!
//! Completion is signalled the same way everywhere, without a syscall: the callback increments
//! `COUNT` (written by the loop thread only) and, once it reaches `WANT` (the poster's target for the
//! burst in flight), stores it into `DONE`; the poster spins on `DONE` (pause instruction). The three
//! words live on separate cache lines, so one line moves each way per burst, not per callback. A burst
//! not completed within `--stall-secs` ends the run as stalled (a lost wake-up): not a result.
//!
//! Reported per run: posts per second; the poster's time inside the posting calls per post; the loop
//! thread's CPU time per post; and, with perf, syscalls per post: `perf stat -e raw_syscalls:sys_enter
//! -p PID` (every thread of the contender) over exactly the run, divided by the posts, split by
//! syscall with the `syscalls:sys_enter_*` tracepoints when the kernel has them.

use std::hint::spin_loop;
use std::io::BufRead;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use revent::{EventBase, LoopFlags, What};

use crate::args::Args;
use crate::child::{perf_available, perf_supports, Kv, PerfSession, Proc, Res, Spec};
use crate::cref;
use crate::stats::{cell, median, min_max, ratio};
use crate::sys::{pin_thread, CpuClock};

const USAGE: &str = "\
usage: revent-bench wakeup [options]
  --bursts 1,100     posts per burst, one table row each (the poster waits for all callbacks of a
                     burst before the next)
  --secs 2           seconds per run
  --rounds 3         interleaved rounds (median reported; fewer than 3 is a smoke test, not a result)
  --contenders revent,libevent,tokio   (also: tokio-noio, tokio without its I/O driver; capi,
                     c/wakeup_libevent.c on revent's C ABI, reported `not available` and left out
                     when revent's libraries lack libevent_pthreads or a function it calls; and
                     NAME=PATH, another revent-bench binary run as `PATH wakeup-child revent`,
                     e.g. built from a tree with a library change)
  --loop-cpu 0       CPU of every contender's loop thread, or `none`
  --poster-cpu 1     CPU of every contender's poster thread, or `none`
  --stall-secs 10    a burst not done by then is a lost wake-up: the run fails
  --gap-us 0         the poster idles this long (spinning, no syscall) after each burst is done:
                     sparse posts, where the loop has time to fall asleep between them
  --no-syscalls      skip the counting runs (perf stat)
  --no-split         count all syscalls only, not also write/read/epoll_wait/futex apart
  --quiet-wait 30    before each timed run, wait up to this many seconds for the machine to be
                     quiet (other processes using < 0.15 CPUs over 0.25 s); 0: do not wait

Each round runs every contender twice: a timed run (the posts/s) and, unless --no-syscalls, a
counting run of the same length under `perf stat -e raw_syscalls:sys_enter -p PID` (syscalls per
post; perf slows syscalls, so that run's posts/s are shown apart).
";

/// Below this many CPUs' worth of load from anything, the machine counts as quiet.
const QUIET_LOAD: f64 = 0.15;

const KINDS: [&str; 5] = ["revent", "libevent", "tokio", "tokio-noio", "capi"];

/// The syscall tracepoints of the split, after the total (`raw_syscalls:sys_enter`).
const SPLIT: [&str; 5] = [
    "syscalls:sys_enter_write",
    "syscalls:sys_enter_read",
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_epoll_pwait",
    "syscalls:sys_enter_futex",
];

// ---- the completion signal, shared by the Rust contenders (c/wakeup_libevent.c has its twin) ----

/// An atomic word alone on its cache lines (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[repr(align(128))]
struct Line(AtomicU64);

/// Callbacks run so far; written by the loop thread only.
static COUNT: Line = Line(AtomicU64::new(0));
/// The value of `COUNT` that completes the burst in flight; written by the poster before it posts.
static WANT: Line = Line(AtomicU64::new(0));
/// The value of `COUNT` when it last reached `WANT`; the poster spins on it.
static DONE: Line = Line(AtomicU64::new(0));

/// What every post runs on the loop thread, in every contender.
#[inline]
fn on_post() {
    let n = COUNT.0.load(Ordering::Relaxed) + 1;
    COUNT.0.store(n, Ordering::Relaxed);
    if n >= WANT.0.load(Ordering::Acquire) {
        DONE.0.store(n, Ordering::Release);
    }
}

/// One run's figures, as the result line carries them.
struct Outcome {
    posts: u64,
    callbacks: u64,
    bursts: u64,
    secs: f64,
    post_ns: u64,
    loop_cpu_ns: u64,
    stalled: bool,
}

impl Outcome {
    fn line(&self) -> String {
        let posts = self.posts.max(1) as f64;
        format!(
            "posts={} callbacks={} bursts={} secs={:.6} posts_per_s={:.1} post_ns={:.2} \
             loop_cpu_ns={:.2} stalled={}",
            self.posts,
            self.callbacks,
            self.bursts,
            self.secs,
            self.posts as f64 / self.secs,
            self.post_ns as f64 / posts,
            self.loop_cpu_ns as f64 / posts,
            u8::from(self.stalled)
        )
    }
}

/// How the poster paces itself.
#[derive(Clone, Copy)]
struct Pace {
    /// A burst not done by then is a lost wake-up.
    stall: Duration,
    /// Idle time (spinning, no syscall) between a burst's completion and the next burst.
    gap: Duration,
}

/// The poster: bursts of `b` posts (`post(i)` for i in 0..b) for `secs` seconds, each burst waited
/// for by spinning on `DONE`.
fn drive(
    b: usize,
    secs: f64,
    pace: Pace,
    loop_clock: &CpuClock,
    post: &mut dyn FnMut(usize) -> Res<()>,
) -> Res<Outcome> {
    let start = COUNT.0.load(Ordering::Acquire);
    // The clock is read after every burst of 100 and every 256th burst of 1: vDSO reads, no syscall.
    let check_every = (256 / b as u64).max(1);
    let mut o = Outcome {
        posts: 0,
        callbacks: 0,
        bursts: 0,
        secs: 0.0,
        post_ns: 0,
        loop_cpu_ns: 0,
        stalled: false,
    };
    let cpu0 = loop_clock.ns();
    let t0 = Instant::now();
    'run: loop {
        let target = start + o.posts + b as u64;
        WANT.0.store(target, Ordering::Release);
        let p0 = Instant::now();
        for i in 0..b {
            post(i)?;
        }
        o.post_ns += p0.elapsed().as_nanos() as u64;
        o.posts += b as u64;
        let mut spins = 0u32;
        while DONE.0.load(Ordering::Acquire) < target {
            spin_loop();
            spins = spins.wrapping_add(1);
            if spins & 0xffff == 0 && p0.elapsed() > pace.stall {
                o.stalled = true;
                break 'run;
            }
        }
        o.bursts += 1;
        if !pace.gap.is_zero() {
            let idle = Instant::now();
            while idle.elapsed() < pace.gap {
                spin_loop();
            }
        }
        if o.bursts.is_multiple_of(check_every) && t0.elapsed().as_secs_f64() >= secs {
            break;
        }
    }
    o.secs = t0.elapsed().as_secs_f64();
    o.loop_cpu_ns = loop_clock.ns().saturating_sub(cpu0);
    // Settle: a post that ran its callback twice would show up here.
    thread::sleep(Duration::from_millis(20));
    o.callbacks = COUNT.0.load(Ordering::Acquire) - start;
    Ok(o)
}

// ---- the driver ----

/// One run of one contender.
struct RunRes {
    posts_per_s: f64,
    post_ns: f64,
    loop_cpu_ns: f64,
    /// CPUs' worth of time other processes used during the timed run.
    others: f64,
    /// Per post in the timed run, counted by the kernel without tracing: read-like syscalls,
    /// write-like syscalls (/proc/PID/io), voluntary context switches of all threads.
    untraced: Option<[f64; 3]>,
    /// Posts per second of the counting run (under perf).
    counted_posts_per_s: Option<f64>,
    /// Per post, in the counting run: all syscalls, then one per SPLIT entry (empty without perf; total only without the
    /// split).
    sys: Vec<f64>,
}

pub fn run(args: &[String]) -> Res<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}{}", crate::capi::USAGE_LINE);
        return Ok(());
    }
    let opts = Args::parse(
        args,
        &[
            "--bursts",
            "--secs",
            "--rounds",
            "--contenders",
            "--loop-cpu",
            "--poster-cpu",
            "--stall-secs",
            "--quiet-wait",
            "--gap-us",
            "--capi-libs",
        ],
        &["--no-syscalls", "--no-split"],
    )
    .map_err(|e| format!("{e}\n{USAGE}{}", crate::capi::USAGE_LINE))?;
    let bursts: Vec<usize> = opts.list("--bursts", &[1, 100])?;
    let secs: f64 = opts.num("--secs", 2.0)?;
    let rounds: usize = opts.num("--rounds", 3)?;
    let stall: f64 = opts.num("--stall-secs", 10.0)?;
    let quiet = Duration::from_secs_f64(opts.num("--quiet-wait", 30.0)?);
    let gap_us: f64 = opts.num("--gap-us", 0.0)?;
    if !(gap_us.is_finite() && gap_us >= 0.0) {
        return Err("--gap-us must be 0 or more".into());
    }
    let gap_ns = (gap_us * 1e3) as u64;
    let kinds = opts.words("--contenders", &KINDS[..3]);
    let cpu = |name: &str, default: &str| -> Res<i64> {
        match opts.str(name).unwrap_or(default) {
            "none" => Ok(-1),
            c => Ok(c
                .parse::<usize>()
                .map_err(|_| format!("{name}: bad CPU {c:?}"))? as i64),
        }
    };
    let (loop_cpu, poster_cpu) = (cpu("--loop-cpu", "0")?, cpu("--poster-cpu", "1")?);
    if bursts.contains(&0) || !(secs.is_finite() && secs > 0.0) || rounds == 0 {
        return Err(format!("need bursts >= 1, --secs > 0 and --rounds >= 1\n{USAGE}").into());
    }
    if !(stall.is_finite() && stall > 0.0) {
        return Err("--stall-secs must be positive".into());
    }
    for k in &kinds {
        if !KINDS.contains(&k.as_str()) && !k.contains('=') {
            return Err(format!("unknown contender {k:?} (one of {KINDS:?}, or NAME=PATH)").into());
        }
    }
    if rounds < 3 {
        eprintln!(
            "note: {rounds} round(s): a smoke test, not a result (BENCH.md asks for 3 or more)"
        );
    }

    let count = !opts.flag("--no-syscalls") && perf_available();
    if !opts.flag("--no-syscalls") && !count {
        eprintln!(
            "note: `perf stat -e raw_syscalls:sys_enter` does not work here; no syscall counts"
        );
        eprintln!("      (install it with: apt-get install linux-perf)");
    }
    let mut events = vec!["raw_syscalls:sys_enter"];
    if count && !opts.flag("--no-split") && perf_supports(&SPLIT) {
        events.extend(SPLIT);
    } else if count && !opts.flag("--no-split") {
        eprintln!("note: no syscalls:sys_enter_* tracepoints here; syscall totals only");
    }

    // Compile what is needed up front, so a missing libevent-dev stops us before any run.
    let exe = std::env::current_exe()?;
    let libevent = kinds
        .iter()
        .any(|k| k == "libevent" || k == "capi")
        .then(|| cref::build("wakeup_libevent", &["-levent_core", "-levent_pthreads"]));
    let mut capi_missing = None;
    // The capi contender needs revent's libevent_pthreads and evthread_*: without them it is left out.
    let capi = if kinds.iter().any(|k| k == "capi") {
        let dir = crate::capi::libs(opts.str("--capi-libs"))?;
        match crate::capi::preflight(libevent.as_ref().expect("built"), &dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                eprintln!("capi: not available, left out: {e}");
                capi_missing = Some(e);
                None
            }
        }
    } else {
        None
    };
    // The contenders: (name, program, arguments before the common ones, the capi library directory
    // for the capi one), built-in ones in KINDS order, then NAME=PATH ones (another revent-bench
    // binary, e.g. built with a library change).
    type Contender = (
        String,
        std::path::PathBuf,
        Vec<String>,
        Option<std::path::PathBuf>,
    );
    let mut contenders: Vec<Contender> = Vec::new();
    for kind in KINDS {
        if !kinds.iter().any(|k| k == kind) {
            continue;
        }
        contenders.push(match kind {
            "libevent" => (kind.into(), libevent.clone().expect("built"), vec![], None),
            "capi" => match &capi {
                Some(dir) => (
                    kind.into(),
                    libevent.clone().expect("built"),
                    vec![],
                    Some(dir.clone()),
                ),
                None => continue,
            },
            _ => (
                kind.into(),
                exe.clone(),
                vec!["wakeup-child".into(), kind.into()],
                None,
            ),
        });
    }
    for k in &kinds {
        if let Some((name, path)) = k.split_once('=') {
            let args = vec!["wakeup-child".into(), "revent".into()];
            contenders.push((name.into(), path.into(), args, None));
        }
    }
    let names: Vec<String> = contenders.iter().map(|c| c.0.clone()).collect();

    let machine = crate::machine::describe();
    eprintln!("wakeup: {machine}");
    // rows: (B, runs[contender])
    let mut rows: Vec<(usize, Vec<Vec<RunRes>>)> = Vec::new();
    for &b in &bursts {
        let common: Vec<String> = [
            "-b".to_string(),
            b.to_string(),
            "-s".into(),
            secs.to_string(),
            "-l".into(),
            loop_cpu.to_string(),
            "-p".into(),
            poster_cpu.to_string(),
            "-t".into(),
            stall.to_string(),
            "-g".into(),
            gap_ns.to_string(),
        ]
        .to_vec();
        let specs: Vec<Spec> = contenders
            .iter()
            .map(|(name, prog, pre, dir)| {
                let args: Vec<String> = pre.iter().chain(&common).cloned().collect();
                let spec = Spec::new(name, prog, &args, None);
                match dir {
                    Some(dir) => spec.on_capi(dir),
                    None if name == "libevent" => spec.not_on(capi.as_deref()),
                    None => spec,
                }
            })
            .collect();
        let mut procs = Vec::new();
        for spec in &specs {
            procs.push(Proc::start(spec)?);
        }
        let mut runs: Vec<Vec<RunRes>> = specs.iter().map(|_| Vec::new()).collect();
        for r in 0..rounds {
            for j in 0..procs.len() {
                let k = (r + j) % procs.len();
                let res = measure(&mut procs[k], b, count.then_some(&events[..]), quiet)?;
                let u = |i: usize| cell(res.untraced.map(|u| u[i]), 3);
                eprintln!(
                    "B={b} round {} {:<10} {:>10.0} posts/s (others' load {:.2} CPUs)  poster {:.0} \
                     ns/post  loop CPU {:.0} ns/post  read {} write {} sleeps {} /post  | counted \
                     run: {} syscalls/post at {} posts/s",
                    r + 1,
                    procs[k].name,
                    res.posts_per_s,
                    res.others,
                    res.post_ns,
                    res.loop_cpu_ns,
                    u(0),
                    u(1),
                    u(2),
                    cell(res.sys.first().copied(), 3),
                    cell(res.counted_posts_per_s, 0),
                );
                runs[k].push(res);
            }
        }
        drop(procs);
        rows.push((b, runs));
    }

    println!(
        "\nwakeup: {rounds} interleaved round(s) of {secs} s per row{}; loop thread on CPU {}, poster \
         on CPU {}; {machine}",
        if gap_ns > 0 {
            format!(", {gap_us} µs idle after each burst")
        } else {
            String::new()
        },
        show_cpu(loop_cpu),
        show_cpu(poster_cpu)
    );
    print_tables(&names, &rows, events.len() > 1);
    if let Some(why) = capi_missing {
        println!("\ncapi: not available, left out: {why}");
    }
    Ok(())
}

/// One round of one contender: a timed run (nothing attached; the machine quiet first), then, with
/// `events`, a counting run of the same length under `perf stat` (which slows every syscall, so its
/// posts/s are not the result; they are shown to say how much the count perturbs).
fn measure(proc: &mut Proc, b: usize, events: Option<&[&str]>, quiet: Duration) -> Res<RunRes> {
    if !quiet.is_zero() && !crate::machine::wait_quiet(QUIET_LOAD, quiet) {
        eprintln!("note: the machine did not get quiet within {quiet:?}; measuring anyway");
    }
    use crate::machine::{cpu_ticks, proc_rw_syscalls, proc_sleeps, proc_ticks};
    let pid = proc.pid();
    let (t0, p0) = (cpu_ticks(), proc_ticks(pid));
    let (rw0, s0) = (proc_rw_syscalls(pid), proc_sleeps(pid));
    let kv = proc.run()?;
    let (rw1, s1) = (proc_rw_syscalls(pid), proc_sleeps(pid));
    let (t1, p1) = (cpu_ticks(), proc_ticks(pid));
    let posts = check(&kv, &proc.name, b)?;
    let per_post = |a: u64, z: u64| z.saturating_sub(a) as f64 / posts;
    let untraced = match (rw0, rw1, s0, s1) {
        (Some((r0, w0)), Some((r1, w1)), Some(s0), Some(s1)) => {
            Some([per_post(r0, r1), per_post(w0, w1), per_post(s0, s1)])
        }
        _ => None,
    };
    let others = match (t0, t1, p0, p1) {
        (Some(t0), Some(t1), Some(p0), Some(p1)) => {
            crate::machine::load_between(t0, t1, p1.saturating_sub(p0))
        }
        _ => f64::NAN,
    };
    let mut res = RunRes {
        posts_per_s: kv["posts_per_s"],
        post_ns: kv["post_ns"],
        loop_cpu_ns: kv["loop_cpu_ns"],
        others,
        untraced,
        sys: Vec::new(),
        counted_posts_per_s: None,
    };
    if let Some(events) = events {
        let mut perf = PerfSession::attach(pid, events)?;
        perf.enable()?;
        let kv = proc.run();
        let counts = perf.finish()?;
        let kv = kv?;
        let posts = check(&kv, &proc.name, b)?;
        res.sys = counts.iter().map(|&c| c as f64 / posts).collect();
        res.counted_posts_per_s = Some(kv["posts_per_s"]);
    }
    Ok(res)
}

fn show_cpu(c: i64) -> String {
    if c < 0 {
        "any (not pinned)".to_string()
    } else {
        c.to_string()
    }
}

/// A run is a result only if it did not stall, ran exactly one callback per post, and posted whole
/// bursts; returns the posts.
fn check(kv: &Kv, name: &str, b: usize) -> Res<f64> {
    let get = |k: &str| kv.get(k).copied().unwrap_or(f64::NAN);
    let (posts, callbacks, bursts) = (get("posts"), get("callbacks"), get("bursts"));
    let fields = ["posts_per_s", "post_ns", "loop_cpu_ns"];
    if get("stalled") != 0.0 {
        return Err(format!(
            "{name}: a burst of {b} was not done within --stall-secs (lost wake-up?): posts {posts}, \
             callbacks {callbacks}"
        )
        .into());
    }
    if !(posts > 0.0 && callbacks == posts && bursts * b as f64 == posts)
        || fields.iter().any(|f| !get(f).is_finite())
    {
        return Err(format!(
            "{name}: bad run: {kv:?} (expected callbacks = posts = bursts x {b}, posts > 0)"
        )
        .into());
    }
    Ok(posts)
}

fn print_tables(names: &[String], rows: &[(usize, Vec<Vec<RunRes>>)], split: bool) {
    let present: Vec<usize> = (0..names.len()).collect();
    let rv = names.iter().position(|n| n == "revent");
    let med = |rs: &[RunRes], f: fn(&RunRes) -> f64| -> Option<f64> {
        let xs: Vec<f64> = rs.iter().map(f).collect();
        (!xs.is_empty()).then(|| median(&xs))
    };
    let others: Vec<usize> = present.iter().copied().filter(|&i| Some(i) != rv).collect();
    let revent = rv.is_some();
    let rv = rv.unwrap_or(0);

    println!(
        "\nPosts per second (a post = one callback run on the loop thread), median [min-max] over the \
         rounds; ratios: revent's median over the other's (in parentheses: the median and the range of \
         the ratios of the runs of the same round).\n"
    );
    let mut head = String::from("| posts per burst |");
    for &i in &present {
        head += &format!(" {} |", names[i]);
    }
    if revent {
        for &i in &others {
            head += &format!(" revent / {} |", names[i]);
        }
    }
    println!("{head}");
    println!(
        "|---|{}",
        "---|".repeat(present.len() + if revent { others.len() } else { 0 })
    );
    for (b, runs) in rows {
        let mut line = format!("| {b} |");
        for &i in &present {
            let xs: Vec<f64> = runs[i].iter().map(|r| r.posts_per_s).collect();
            let (lo, hi) = min_max(&xs);
            line += &format!(" {} [{}-{}] |", kilo(median(&xs)), kilo(lo), kilo(hi));
        }
        if revent {
            for &i in &others {
                let per_round: Vec<f64> = runs[rv]
                    .iter()
                    .zip(&runs[i])
                    .map(|(a, c)| a.posts_per_s / c.posts_per_s)
                    .collect();
                let (lo, hi) = min_max(&per_round);
                line += &format!(
                    " {}x (per round {:.2}, {lo:.2}-{hi:.2}) |",
                    cell(
                        ratio(
                            med(&runs[rv], |r| r.posts_per_s),
                            med(&runs[i], |r| r.posts_per_s)
                        ),
                        2
                    ),
                    median(&per_round)
                );
            }
        }
        println!("{line}");
    }

    let counted = rows
        .iter()
        .any(|(_, runs)| runs.iter().flatten().any(|r| !r.sys.is_empty()));
    println!(
        "\nPer post, medians. From the timed runs: the loop thread's CPU time (ns); the poster's time \
         inside the posting calls (ns); read-like and write-like syscalls (reads, writes: syscr and \
         syscw of /proc/PID/io) and voluntary context switches of all threads (sleeps), which the \
         kernel counts without tracing{}.\n",
        match (counted, split) {
            (false, _) => "",
            (true, false) =>
                ". From the counting runs: all syscalls of the contender process (perf stat -p, all \
                 threads) and those runs' posts/s",
            (true, true) =>
                ". From the counting runs: all syscalls of the contender process (perf stat -p, all \
                 threads), split by syscall (epoll_wait includes epoll_pwait), and those runs' posts/s",
        }
    );
    let mut head =
        "| posts per burst | contender | loop CPU ns | poster ns | reads | writes | sleeps |"
            .to_string();
    if counted {
        head += " perf: syscalls |";
        if split {
            head += " write | read | epoll_wait | futex | other |";
        }
        head += " posts/s under perf |";
    }
    println!("{head}");
    println!("|{}", "---|".repeat(head.matches('|').count() - 1));
    for (b, runs) in rows {
        for &i in &present {
            let rs = &runs[i];
            let sys = |k: usize| -> Option<f64> {
                let xs: Vec<f64> = rs.iter().filter_map(|r| r.sys.get(k).copied()).collect();
                (!xs.is_empty()).then(|| median(&xs))
            };
            // Per run, then the median: epoll_wait + epoll_pwait, and what none of the split counts.
            let derived = |f: fn(&[f64]) -> f64| -> Option<f64> {
                let xs: Vec<f64> = rs
                    .iter()
                    .filter(|r| r.sys.len() == 1 + SPLIT.len())
                    .map(|r| f(&r.sys))
                    .collect();
                (!xs.is_empty()).then(|| median(&xs))
            };
            let untraced = |k: usize| -> Option<f64> {
                let xs: Vec<f64> = rs.iter().filter_map(|r| r.untraced.map(|u| u[k])).collect();
                (!xs.is_empty()).then(|| median(&xs))
            };
            let mut line = format!(
                "| {b} | {} | {} | {} | {} | {} | {} |",
                names[i],
                cell(med(rs, |r| r.loop_cpu_ns), 0),
                cell(med(rs, |r| r.post_ns), 0),
                cell(untraced(0), 3),
                cell(untraced(1), 3),
                cell(untraced(2), 3),
            );
            if counted {
                line += &format!(" {} |", cell(sys(0), 3));
                if split {
                    line += &format!(
                        " {} | {} | {} | {} | {} |",
                        cell(sys(1), 3),
                        cell(sys(2), 3),
                        cell(derived(|s| s[3] + s[4]), 3),
                        cell(sys(5), 3),
                        cell(derived(|s| s[0] - s[1..].iter().sum::<f64>()), 3),
                    );
                }
                let xs: Vec<f64> = rs.iter().filter_map(|r| r.counted_posts_per_s).collect();
                line += &format!(" {} |", kilo(median(&xs)));
            }
            println!("{line}");
        }
    }
    let foreign: Vec<f64> = rows
        .iter()
        .flat_map(|(_, runs)| runs.iter().flatten().map(|r| r.others))
        .collect();
    let (_, worst) = min_max(&foreign);
    println!(
        "\nOther processes used {} CPUs at most during a timed run (median {}).",
        cell(Some(worst), 2),
        cell(Some(median(&foreign)), 2)
    );

    // The C ABI: the same C program on libevent.so and on revent's.
    let find = |n: &str| names.iter().position(|x| x == n);
    if let (Some(c), Some(l)) = (find("capi"), find("libevent")) {
        println!(
            "\nThe C ABI (c/wakeup_libevent.c on revent's libraries against Debian's libevent):"
        );
        for (b, runs) in rows {
            let sys = |i: usize| {
                let xs: Vec<f64> = runs[i]
                    .iter()
                    .filter_map(|r| r.sys.first().copied())
                    .collect();
                (!xs.is_empty()).then(|| median(&xs))
            };
            println!(
                "- bursts of {b}: capi / libevent {}x posts/s; syscalls per post capi {}, libevent {}",
                cell(
                    ratio(
                        med(&runs[c], |r| r.posts_per_s),
                        med(&runs[l], |r| r.posts_per_s)
                    ),
                    2
                ),
                cell(sys(c), 3),
                cell(sys(l), 3)
            );
        }
    }

    if !revent {
        return;
    }
    // The targets concern C libevent and tokio (with its I/O driver), not tokio-noio or
    // NAME=PATH variants of revent.
    let rivals: Vec<usize> = others
        .iter()
        .copied()
        .filter(|&i| names[i] == "libevent" || names[i] == "tokio")
        .collect();
    println!("\nTargets:");
    let mut fastest = true;
    for (b, runs) in rows {
        for &i in &rivals {
            let x = ratio(
                med(&runs[rv], |r| r.posts_per_s),
                med(&runs[i], |r| r.posts_per_s),
            );
            if x.is_none_or(|x| x < 1.0) {
                fastest = false;
                println!(
                    "- bursts of {b}: revent reaches {}x the posts/s of {}",
                    cell(x, 2),
                    names[i]
                );
            }
        }
    }
    println!(
        "- revent at least as fast as {} in every row: {}",
        rivals
            .iter()
            .map(|&i| names[i].as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        if fastest { "met" } else { "MISSED" }
    );
    for (b, runs) in rows {
        if *b < 100 {
            continue;
        }
        let xs: Vec<f64> = runs[rv]
            .iter()
            .filter_map(|r| r.sys.first().copied())
            .collect();
        if xs.is_empty() {
            continue;
        }
        let m = median(&xs);
        println!(
            "- under 0.1 syscalls per post in bursts of {b}: {} ({m:.3})",
            if m < 0.1 { "met" } else { "MISSED" }
        );
    }
}

/// `812k`, `1.23M`.
fn kilo(x: f64) -> String {
    if !x.is_finite() {
        "-".to_string()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else {
        format!("{:.0}k", x / 1e3)
    }
}

// ---- the Rust contenders ----

/// `wakeup-child KIND -b B -s SECS -l LOOP_CPU -p POSTER_CPU -t STALL_SECS -g GAP_NS` (a CPU of -1:
/// not pinned), speaking the protocol of `c/wakeup_libevent.c`.
pub fn child(args: &[String]) -> Res<()> {
    let (kind, rest) = args
        .split_first()
        .ok_or("usage: wakeup-child revent|tokio|tokio-noio -b B -s SECS ...")?;
    let opts = Args::parse(rest, &["-b", "-s", "-l", "-p", "-t", "-g"], &[])?;
    let b: usize = opts.num("-b", 1)?;
    let secs: f64 = opts.num("-s", 2.0)?;
    let loop_cpu: i64 = opts.num("-l", -1)?;
    let poster_cpu: i64 = opts.num("-p", -1)?;
    let pace = Pace {
        stall: Duration::from_secs_f64(opts.num("-t", 10.0)?),
        gap: Duration::from_nanos(opts.num("-g", 0)?),
    };
    if b == 0 || !(secs.is_finite() && secs > 0.0) {
        return Err("need B >= 1 and SECS > 0".into());
    }
    let pin = move |cpu: i64| -> Res<()> {
        if cpu >= 0 {
            pin_thread(cpu as usize)?;
        }
        Ok(())
    };
    pin(poster_cpu)?;
    match kind.as_str() {
        "revent" => {
            let (tx, rx) = mpsc::channel();
            let looper = thread::Builder::new().name("loop".into()).spawn(
                move || -> Result<(), String> {
                    let setup = || -> Res<_> {
                        pin(loop_cpu)?;
                        let mut base = EventBase::new()?;
                        let ids = (0..b)
                            .map(|_| base.new_event(-1, What::NONE, |_, _| on_post()))
                            .collect::<revent::Result<Vec<_>>>()?;
                        let remote = base.remote()?;
                        Ok((base, ids, remote))
                    };
                    let mut base = match setup() {
                        Ok((base, ids, remote)) => {
                            let _ = tx.send(Ok((ids, remote)));
                            base
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return Ok(());
                        }
                    };
                    base.run(LoopFlags::NO_EXIT_ON_EMPTY)
                        .map_err(|e| e.to_string())?;
                    Ok(())
                },
            )?;
            let (ids, remote) = rx.recv()??;
            let clock = CpuClock::of(looper.as_pthread_t())?;
            serve(b, secs, pace, &clock, &mut |i| {
                remote.activate(ids[i], What::READ)?;
                Ok(())
            })?;
            // Stop the loop through the same handle, and check that it does stop and that the
            // handle then reports the base gone.
            remote.loopbreak()?;
            looper
                .join()
                .map_err(|_| "revent: the loop thread panicked")??;
            match remote.activate(ids[0], What::READ) {
                Err(revent::Error::BaseGone) => Ok(()),
                other => {
                    Err(format!("revent: a post after the base was dropped: {other:?}").into())
                }
            }
        }
        "tokio" | "tokio-noio" => {
            let io = kind == "tokio";
            let (tx, rx) = mpsc::channel();
            let looper = thread::Builder::new().name("loop".into()).spawn(
                move || -> Result<(), String> {
                    let setup = || -> Res<_> {
                        pin(loop_cpu)?;
                        let mut builder = tokio::runtime::Builder::new_current_thread();
                        if io {
                            builder.enable_io();
                        }
                        Ok(builder.build()?)
                    };
                    match setup() {
                        Ok(rt) => {
                            let _ = tx.send(Ok(rt.handle().clone()));
                            // Runs the spawned tasks until the process exits.
                            rt.block_on(std::future::pending::<()>());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                    Ok(())
                },
            )?;
            let handle = rx.recv()??;
            let clock = CpuClock::of(looper.as_pthread_t())?;
            serve(b, secs, pace, &clock, &mut |_| {
                // The JoinHandle is dropped at once: fire and forget, as a post is.
                drop(handle.spawn(async { on_post() }));
                Ok(())
            })
            // The loop thread never returns; the process ends with main.
        }
        _ => Err(format!("unknown contender {kind:?}").into()),
    }
}

/// The poster's side of the protocol: an untimed warm-up (whose first burst also waits until the loop
/// runs), `ready`, then one run per `run` line.
fn serve(
    b: usize,
    secs: f64,
    pace: Pace,
    clock: &CpuClock,
    post: &mut dyn FnMut(usize) -> Res<()>,
) -> Res<()> {
    let warm = drive(b, 0.05, pace, clock, post)?;
    if warm.stalled || warm.callbacks != warm.posts {
        return Err(format!("warm-up failed: {}", warm.line()).into());
    }
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        if !line?.starts_with("run") {
            break;
        }
        println!("{}", drive(b, secs, pace, clock, post)?.line());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::parse_kv;

    // One test: the counters are process-wide.
    #[test]
    fn drive_counts_posts_and_detects_stalls() {
        // SAFETY: pthread_self has no preconditions; this thread stays alive while the clock is read.
        let clock = CpuClock::of(unsafe { libc::pthread_self() }).unwrap();
        // Callbacks run at once, on this thread.
        let pace = |stall_ms: u64, gap_ns: u64| Pace {
            stall: Duration::from_millis(stall_ms),
            gap: Duration::from_nanos(gap_ns),
        };
        let o = drive(3, 0.01, pace(5000, 0), &clock, &mut |_| {
            on_post();
            Ok(())
        })
        .unwrap();
        assert!(!o.stalled);
        assert!(o.posts > 0);
        assert_eq!(o.callbacks, o.posts);
        assert_eq!(o.bursts * 3, o.posts);
        assert_eq!(check(&parse_kv(&o.line()), "t", 3).unwrap(), o.posts as f64);

        // Posts that never run a callback: a lost wake-up, which must fail the run.
        let o = drive(2, 1.0, pace(50, 0), &clock, &mut |_| Ok(())).unwrap();
        assert!(o.stalled);
        assert!(check(&parse_kv(&o.line()), "t", 2).is_err());

        // A callback too many (a post that ran twice) must fail the run too.
        let mut extra = true;
        let o = drive(1, 0.01, pace(5000, 1000), &clock, &mut |_| {
            on_post();
            if std::mem::take(&mut extra) {
                on_post();
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(o.callbacks, o.posts + 1);
        assert!(check(&parse_kv(&o.line()), "t", 1).is_err());
    }
}
