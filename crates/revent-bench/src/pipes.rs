//! `pipes`: libevent's classic `bench` (test/bench.c) across contenders, side by side.
//!
//! N socketpairs, each with a persistent read event; A of them get one byte; every callback reads its
//! byte and, while a budget of W writes lasts, writes one byte to the next pair ((i+1) % N). Each run
//! re-adds all N events (untimed); the timed part is the loop, run once and non-blocking again and
//! again, until every byte is consumed.
//!
//! Contenders, each its own process, set up once and then interleaved run by run:
//! - `revent`: this binary's `pipes-child` (revent's Rust API, epoll, poll or io_uring backend);
//! - `libevent`: `c/pipes_libevent.c` against the system's libevent 2.1 (`event_config_avoid_method`);
//! - `raw`: `c/pipes_epoll.c` (level-triggered epoll) or `c/pipes_poll.c` (poll()); in io_uring rows
//!   raw epoll, the floor of a readiness loop;
//! - `capi`: the `libevent` binary run on revent's C ABI (`LD_LIBRARY_PATH=--capi-libs`, see
//!   [`crate::capi`]): the same C program on libevent.so and on revent's;
//! - `bev`: `pipes-child -b`, the workload through bufferevents instead of events: on io_uring the
//!   completion-based kind, whose receives and sends need no syscall of their own.
//!
//! Syscalls per fired event come from `perf stat -e raw_syscalls:sys_enter` around two complete runs of
//! each contender in counting mode (`-k 1` and `-k 1+D`: the workload repeated without the untimed
//! re-add); the difference, less the A untimed initial sends per run, divided by D·(A+W), is what the
//! timed loop costs per callback. Start-up and setup cancel out in the difference.

use std::cell::Cell;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use revent::{BevOptions, BufferEvent, Config, EventBase, LoopFlags, Method, What};

use crate::args::Args;
use crate::child::{
    callgrind_available, callgrind_count, perf_available, perf_count, Kv, Proc, Res, Spec,
};
use crate::cref;
use crate::stats::{cell, median, min_max, ratio};

const USAGE: &str = "\
usage: revent-bench pipes [options]
  --backends epoll,poll   backends to measure (default: epoll,poll; also io_uring, which
                          libevent and capi skip)
  --n 100,1000,9000       numbers of socketpairs (default: 100,1000,9000)
  --a 1,100               numbers of active pairs (default: 1,100)
  --w W                   write budget (default: N)
  --runs 25               runs per contender and row (median reported)
  --budget 150            seconds a row may take; past it, fewer runs (at least 5; the table says)
  --contenders revent,libevent,raw   (and/or capi: c/pipes_libevent.c on revent's C ABI;
                          bev: revent through bufferevents. In io_uring rows raw is raw epoll)
  --cpu 0                 CPU the contenders are pinned to (taskset), or `none`
  --count-runs 5          extra runs D for the syscall count (fewer when a run takes > 0.4 s)
  --no-syscalls           skip the syscall count
  --instructions          also count user-space instructions per fired event with callgrind
                          (deterministic CPU cost; slow: valgrind runs each contender twice a row)
";

const KINDS: [&str; 5] = ["revent", "libevent", "raw", "capi", "bev"];
const REVENT: usize = 0;
const LIBEVENT: usize = 1;
const RAW: usize = 2;
const CAPI: usize = 3;
const BEV: usize = 4;

struct Row {
    backend: String,
    n: u64,
    a: u64,
    w: u64,
    runs: usize,
    /// Wall-clock time of the timed loop.
    wall: Timing,
    /// The contender's CPU time (user + system) over the same loop.
    cpu: Timing,
    sys: [Option<f64>; 5],
    /// User-space instructions per fired event (callgrind).
    instr: [Option<f64>; 5],
}

/// One kind of time of one row, per contender kind (index into KINDS).
#[derive(Default)]
struct Timing {
    /// µs per run in round order; empty for a kind that did not run.
    runs: [Vec<f64>; 5],
}

impl Timing {
    /// From one series of µs per contender (in `specs` order).
    fn from(times: &[Vec<f64>], specs: &[(usize, Spec)]) -> Timing {
        let mut t = Timing::default();
        for (xs, (i, _)) in times.iter().zip(specs) {
            t.runs[*i] = xs.clone();
        }
        t
    }

    /// Median µs of kind `k`.
    fn med(&self, k: usize) -> Option<f64> {
        (!self.runs[k].is_empty()).then(|| median(&self.runs[k]))
    }

    fn spread(&self, k: usize) -> Option<(f64, f64)> {
        (!self.runs[k].is_empty()).then(|| min_max(&self.runs[k]))
    }

    /// The median over rounds of kind `a`'s time divided by kind `b`'s in the same round.
    fn paired(&self, a: usize, b: usize) -> Option<f64> {
        let per_round: Vec<f64> = self.runs[a]
            .iter()
            .zip(&self.runs[b])
            .map(|(x, y)| x / y)
            .collect();
        (!per_round.is_empty()).then(|| median(&per_round))
    }

    /// "ratio of medians (median of per-round ratios)" of kind `a` over kind `b`.
    fn ratio_cell(&self, a: usize, b: usize) -> String {
        match ratio(self.med(a), self.med(b)) {
            Some(x) => format!("{x:.3} ({})", cell(self.paired(a, b), 3)),
            None => "-".to_string(),
        }
    }
}

pub fn run(args: &[String]) -> Res<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}{}", crate::capi::USAGE_LINE);
        return Ok(());
    }
    let opts = Args::parse(
        args,
        &[
            "--backends",
            "--n",
            "--a",
            "--w",
            "--runs",
            "--budget",
            "--contenders",
            "--cpu",
            "--count-runs",
            "--capi-libs",
        ],
        &["--no-syscalls", "--instructions"],
    )
    .map_err(|e| format!("{e}\n{USAGE}{}", crate::capi::USAGE_LINE))?;
    let backends = opts.words("--backends", &["epoll", "poll"]);
    let ns: Vec<u64> = opts.list("--n", &[100, 1000, 9000])?;
    let actives: Vec<u64> = opts.list("--a", &[1, 100])?;
    let w_opt: Option<u64> = opts.str("--w").map(str::parse).transpose()?;
    let runs: usize = opts.num("--runs", 25)?;
    let budget: f64 = opts.num("--budget", 150.0)?;
    let kinds = opts.words("--contenders", &KINDS);
    let cpu = match opts.str("--cpu").unwrap_or("0") {
        "none" => None,
        c => Some(c.parse()?),
    };
    let extra_runs: u64 = opts.num("--count-runs", 5)?;
    for k in &kinds {
        if !KINDS.contains(&k.as_str()) {
            return Err(format!("unknown contender {k:?}").into());
        }
    }
    for b in &backends {
        if b != "epoll" && b != "poll" && b != "io_uring" {
            return Err(format!("unknown backend {b:?}").into());
        }
    }

    let count = !opts.flag("--no-syscalls") && perf_available();
    if !opts.flag("--no-syscalls") && !count {
        eprintln!(
            "note: `perf stat -e raw_syscalls:sys_enter` does not work here; no syscall counts"
        );
        eprintln!("      (install it with: apt-get install linux-perf)");
    }

    let instructions = opts.flag("--instructions");
    if instructions && !callgrind_available() {
        return Err("--instructions needs valgrind: apt-get install valgrind".into());
    }
    // Children inherit the limit (under valgrind too, which cannot raise it later).
    crate::sys::raise_nofile(2 * ns.iter().max().copied().unwrap_or(0) + 64)?;

    // Compile what is needed up front, so a missing libevent-dev stops us before any run.
    let exe = std::env::current_exe()?;
    let libevent = kinds
        .iter()
        .any(|k| k == "libevent" || k == "capi")
        .then(|| cref::build("pipes_libevent", &["-levent_core"]));
    // The capi contender: that binary on revent's libraries, which must have all it calls.
    let capi = if kinds.iter().any(|k| k == "capi") {
        let dir = crate::capi::libs(opts.str("--capi-libs"))?;
        crate::capi::preflight(libevent.as_ref().unwrap(), &dir)
            .map_err(|e| format!("capi: not available: {e}"))?;
        Some(dir)
    } else {
        None
    };
    let mut raw: Vec<(String, PathBuf)> = Vec::new();
    if kinds.iter().any(|k| k == "raw") {
        for b in &backends {
            let c = raw_method(b);
            if !raw.iter().any(|(r, _)| r == c) {
                raw.push((c.to_string(), cref::build(&format!("pipes_{c}"), &[])));
            }
        }
    }

    let machine = crate::machine::describe();
    eprintln!("pipes: {machine}");
    let mut rows = Vec::new();
    for backend in &backends {
        let raw_method = raw_method(backend);
        for &n in &ns {
            for &a in &actives {
                let w = w_opt.unwrap_or(n);
                let args: Vec<String> = ["-m", backend, "-n", &n.to_string(), "-a", &a.to_string()]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(["-w".to_string(), w.to_string()])
                    .collect();
                let mut specs: Vec<(usize, Spec)> = Vec::new();
                for (i, kind) in KINDS.iter().enumerate() {
                    if !kinds.iter().any(|k| k == kind) {
                        continue;
                    }
                    // libevent 2.1 has no io_uring backend.
                    if backend == "io_uring" && (*kind == "libevent" || *kind == "capi") {
                        continue;
                    }
                    let spec = match *kind {
                        "revent" | "bev" => {
                            let mut a = vec!["pipes-child".to_string()];
                            a.extend(args.iter().cloned());
                            if *kind == "bev" {
                                a.push("-b".to_string());
                            }
                            Spec::new(kind, &exe, &a, cpu)
                        }
                        "libevent" => Spec::new("libevent", libevent.as_ref().unwrap(), &args, cpu)
                            .not_on(capi.as_deref()),
                        "capi" => Spec::new("capi", libevent.as_ref().unwrap(), &args, cpu)
                            .on_capi(capi.as_ref().unwrap()),
                        _ => {
                            let prog = &raw.iter().find(|(b, _)| b == raw_method).unwrap().1;
                            // The C program is asked for the method it implements.
                            let mut args = args.clone();
                            args[1] = raw_method.to_string();
                            Spec::new(&format!("raw {raw_method}"), prog, &args, cpu)
                        }
                    };
                    specs.push((i, spec));
                }
                let row = measure_row(
                    backend,
                    n,
                    a,
                    w,
                    runs,
                    budget,
                    &specs,
                    count.then_some(extra_runs),
                    instructions,
                )?;
                rows.push(row);
            }
        }
    }

    println!(
        "\npipes, W = {}; {machine}",
        w_opt.map_or("N".to_string(), |w| w.to_string())
    );
    print_table(&rows);
    Ok(())
}

/// The method of the raw C loop in `backend`'s rows. io_uring rows have no raw io_uring program for
/// this workload: raw epoll runs in them, the floor a readiness loop reaches.
fn raw_method(backend: &str) -> &str {
    if backend == "io_uring" {
        "epoll"
    } else {
        backend
    }
}

fn check(kv: &Kv, name: &str, runs: u64, a: u64, w: u64) -> Res<()> {
    let want = (runs * (a + w)) as f64;
    let fired = kv.get("fired").copied().unwrap_or(f64::NAN);
    let count = kv.get("count").copied().unwrap_or(f64::NAN);
    let failures = kv.get("failures").copied().unwrap_or(f64::NAN);
    if fired != want || count != want || failures != 0.0 {
        return Err(format!(
            "{name}: bad run: fired {fired} count {count} failures {failures}, expected {want} bytes and no failures"
        )
        .into());
    }
    Ok(())
}

/// Runs a contender to completion with extra arguments and counts something: `(count, last line)`.
type Counter = fn(&Spec, &[String]) -> Res<(u64, Kv)>;

/// What the timed loop costs per fired event, by `counter` (syscalls or instructions): the counter around
/// a counting run of 1 + `d` repetitions minus the counter around one of 1, less `send_cost` for each
/// of the A untimed initial sends per repetition, over d·(A+W) events. Start-up and setup cancel out in
/// the difference.
fn per_event(
    spec: &Spec,
    (a, w, d): (u64, u64, u64),
    send_cost: f64,
    counter: Counter,
) -> Res<f64> {
    let (c1, kv1) = counter(spec, &["-k".to_string(), "1".to_string()])?;
    check(&kv1, &spec.name, 1, a, w)?;
    let (c2, kv2) = counter(spec, &["-k".to_string(), (1 + d).to_string()])?;
    check(&kv2, &spec.name, 1 + d, a, w)?;
    let per_run = (c2 as f64 - c1 as f64) / d as f64 - send_cost * a as f64;
    Ok(per_run / (a + w) as f64)
}

#[allow(clippy::too_many_arguments)]
fn measure_row(
    backend: &str,
    n: u64,
    a: u64,
    w: u64,
    runs: usize,
    budget: f64,
    specs: &[(usize, Spec)],
    extra_runs: Option<u64>,
    instructions: bool,
) -> Res<Row> {
    let mut row = Row {
        backend: backend.to_string(),
        n,
        a,
        w,
        runs,
        wall: Timing::default(),
        cpu: Timing::default(),
        sys: [None; 5],
        instr: [None; 5],
    };
    let mut procs = Vec::new();
    for (_, spec) in specs {
        procs.push(Proc::start(spec)?);
    }
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); procs.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); procs.len()];
    let started = Instant::now();
    let mut runs_left = runs;
    let mut r = 0;
    while r < runs_left {
        for j in 0..procs.len() {
            let i = (r + j) % procs.len();
            let kv = procs[i].run()?;
            check(&kv, &procs[i].name, 1, a, w)?;
            wall[i].push(kv.get("us").copied().unwrap_or(f64::NAN));
            cpu[i].push(kv.get("cpu_us").copied().unwrap_or(f64::NAN));
        }
        r += 1;
        if r == 1 {
            // Keep the row within the time budget (the poll rows at N = 9000 take seconds a run).
            let per_round = started.elapsed().as_secs_f64();
            let fits = (budget / per_round.max(1e-9)) as usize;
            if fits < runs_left {
                runs_left = fits.clamp(5.min(runs), runs);
                row.runs = runs_left;
            }
        }
    }
    drop(procs);
    row.wall = Timing::from(&wall, specs);
    row.cpu = Timing::from(&cpu, specs);

    // Counts are deterministic: fewer extra runs for rows whose runs take seconds (poll, N = 9000).
    let slowest = (0..KINDS.len())
        .filter_map(|k| row.wall.med(k))
        .fold(0.0f64, |m, x| m.max(x));
    let few = |d: u64| d.min((2e6 / slowest.max(1.0)) as u64).max(1);
    if let Some(d) = extra_runs {
        let d = few(d);
        for (i, spec) in specs {
            row.sys[*i] = Some(per_event(spec, (a, w, d), 1.0, perf_count)?);
        }
    }
    if instructions {
        for (i, spec) in specs {
            row.instr[*i] = Some(per_event(spec, (a, w, few(2)), 0.0, callgrind_count)?);
        }
    }

    let mut line = format!("{backend} N={n} A={a} W={w} runs={}:", row.runs);
    for (i, _) in specs {
        let (lo, hi) = row.wall.spread(*i).unwrap_or((f64::NAN, f64::NAN));
        let (clo, chi) = row.cpu.spread(*i).unwrap_or((f64::NAN, f64::NAN));
        line += &format!(
            "  {} {} µs [{lo:.0}-{hi:.0}] cpu {} µs [{clo:.0}-{chi:.0}] {} sys/ev",
            KINDS[*i],
            cell(row.wall.med(*i), 1),
            cell(row.cpu.med(*i), 1),
            cell(row.sys[*i], 3)
        );
        if let Some(x) = row.instr[*i] {
            line += &format!(" {x:.0} instr/ev");
        }
    }
    eprintln!("{line}");
    Ok(row)
}

fn print_table(rows: &[Row]) {
    let ran = |k: usize| rows.iter().any(|r| !r.wall.runs[k].is_empty());
    if ran(REVENT) || ran(RAW) {
        print_main_table(rows);
    }
    if ran(CAPI) {
        print_capi_table(rows);
    }
    if ran(BEV) {
        print_bev_table(rows);
    }
}

/// The bufferevent contender beside the event one and the raw C loop (raw epoll in io_uring rows).
fn print_bev_table(rows: &[Row]) {
    println!(
        "\nThrough bufferevents (bev: `pipes-child -b`), beside events (revent) and the raw C loop \
         (raw; in io_uring rows raw epoll). Median CPU µs of the timed loop; bev/raw: ratio of \
         the medians (in parentheses: the median of the per-round ratios); per fired event: syscalls \
         (perf) and user-space instructions (callgrind).\n"
    );
    println!(
        "| backend | N | A | W | runs | CPU µs bev | revent | raw | bev/raw | syscalls/event bev | \
         revent | raw | instructions/event bev | revent | raw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.backend,
            r.n,
            r.a,
            r.w,
            r.runs,
            cell(r.cpu.med(BEV), 1),
            cell(r.cpu.med(REVENT), 1),
            cell(r.cpu.med(RAW), 1),
            r.cpu.ratio_cell(BEV, RAW),
            cell(r.sys[BEV], 3),
            cell(r.sys[REVENT], 3),
            cell(r.sys[RAW], 3),
            cell(r.instr[BEV], 0),
            cell(r.instr[REVENT], 0),
            cell(r.instr[RAW], 0)
        );
    }
}

fn print_main_table(rows: &[Row]) {
    println!(
        "Times: median µs of the timed loop, wall clock and the contender's CPU time (user + system; \
         leaves out time preempted by other processes). Ratios: revent's median over the other's \
         (in parentheses: the median of the per-round ratios).\n"
    );
    println!(
        "| backend | N | A | W | runs | wall µs revent | libevent | raw | revent/libevent | revent/raw | \
         CPU µs revent | libevent | raw | revent/libevent | revent/raw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.backend,
            r.n,
            r.a,
            r.w,
            r.runs,
            cell(r.wall.med(REVENT), 1),
            cell(r.wall.med(LIBEVENT), 1),
            cell(r.wall.med(RAW), 1),
            r.wall.ratio_cell(REVENT, LIBEVENT),
            r.wall.ratio_cell(REVENT, RAW),
            cell(r.cpu.med(REVENT), 1),
            cell(r.cpu.med(LIBEVENT), 1),
            cell(r.cpu.med(RAW), 1),
            r.cpu.ratio_cell(REVENT, LIBEVENT),
            r.cpu.ratio_cell(REVENT, RAW),
        );
    }

    let instr = rows
        .iter()
        .any(|r| r.instr[..3].iter().any(Option::is_some));
    let sys = rows.iter().any(|r| r.sys[..3].iter().any(Option::is_some));
    if !instr && !sys {
        return;
    }
    println!(
        "\nPer fired event (callback), timed loop only: syscalls (perf stat -e raw_syscalls:sys_enter) \
         and user-space instructions (callgrind).\n"
    );
    println!(
        "| backend | N | A | syscalls/event revent | libevent | raw | instructions/event revent | libevent | raw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.backend,
            r.n,
            r.a,
            cell(r.sys[REVENT], 3),
            cell(r.sys[LIBEVENT], 3),
            cell(r.sys[RAW], 3),
            cell(r.instr[REVENT], 0),
            cell(r.instr[LIBEVENT], 0),
            cell(r.instr[RAW], 0)
        );
    }
}

/// The C ABI table: the same C program (c/pipes_libevent.c) on libevent.so and on revent's.
fn print_capi_table(rows: &[Row]) {
    println!(
        "\nThe C ABI: c/pipes_libevent.c, one binary, run on Debian's libevent (libevent) and on \
         revent's libraries (capi, LD_LIBRARY_PATH). Median µs of the timed loop, wall clock and CPU \
         time; capi/libevent: ratio of the medians (in parentheses: the median of the per-round \
         ratios); per fired event: syscalls (perf) and user-space instructions (callgrind).\n"
    );
    println!(
        "| backend | N | A | W | runs | wall µs libevent | capi | capi/libevent | CPU µs libevent | capi | \
         capi/libevent | syscalls/event libevent | capi | instructions/event libevent | capi |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.backend,
            r.n,
            r.a,
            r.w,
            r.runs,
            cell(r.wall.med(LIBEVENT), 1),
            cell(r.wall.med(CAPI), 1),
            r.wall.ratio_cell(CAPI, LIBEVENT),
            cell(r.cpu.med(LIBEVENT), 1),
            cell(r.cpu.med(CAPI), 1),
            r.cpu.ratio_cell(CAPI, LIBEVENT),
            cell(r.sys[LIBEVENT], 3),
            cell(r.sys[CAPI], 3),
            cell(r.instr[LIBEVENT], 0),
            cell(r.instr[CAPI], 0)
        );
    }
}

/// The counters of libevent's bench.c, and the pairs' write ends the untimed first bytes go to
/// (owned by the [`Ring`] or the [`BevRing`]).
struct Counters {
    writers: Vec<RawFd>,
    count: Cell<u64>,
    writes: Cell<u64>,
    fired: Cell<u64>,
    failures: Cell<u64>,
}

impl Counters {
    fn new(writers: Vec<RawFd>) -> Counters {
        Counters {
            writers,
            count: Cell::new(0),
            writes: Cell::new(0),
            fired: Cell::new(0),
            failures: Cell::new(0),
        }
    }

    fn fail(&self) {
        self.failures.set(self.failures.get() + 1);
    }

    /// Counts `n` bytes read; then, while the write budget lasts, the pair the byte goes on to.
    fn on_read(&self, idx: usize, n: usize) -> Option<usize> {
        self.count.set(self.count.get() + n as u64);
        let writes = self.writes.get();
        if writes == 0 {
            return None;
        }
        self.writes.set(writes - 1);
        self.fired.set(self.fired.get() + 1);
        let next = idx + 1;
        Some(if next >= self.writers.len() { 0 } else { next })
    }

    /// One byte to each of the A active pairs, spread evenly (untimed); resets the counters.
    fn send_initial(&self, active: usize, budget: u64) {
        let space = self.writers.len() / active;
        self.fired.set(0);
        for i in 0..active {
            if !matches!(crate::sys::write_byte(self.writers[i * space], b'e'), Ok(1)) {
                self.fail();
            }
            self.fired.set(self.fired.get() + 1);
        }
        self.count.set(0);
        self.writes.set(budget);
    }

    fn done(&self) -> bool {
        self.count.get() == self.fired.get()
    }
}

/// The body of libevent's bench.c `read_cb`, over std's `UnixStream`s: one persistent read event
/// per pair, one `read` and one `write` per callback.
struct Ring {
    readers: Vec<UnixStream>,
    writers: Vec<UnixStream>,
    c: Rc<Counters>,
}

impl Ring {
    fn on_readable(&self, idx: usize) {
        let mut ch = [0u8; 1];
        let n = (&self.readers[idx]).read(&mut ch).unwrap_or_else(|_| {
            self.c.fail();
            0
        });
        if let Some(next) = self.c.on_read(idx, n) {
            if !matches!((&self.writers[next]).write(b"e"), Ok(1)) {
                self.c.fail();
            }
        }
    }
}

/// The same workload through bufferevents (the `bev` contender, `pipes-child -b`): each pair's
/// read end is a bufferevent reading, its write end one writing; the read callback takes what
/// arrived and writes a byte to the next pair's writing bufferevent. On io_uring these are the
/// completion-based kind, whose receives and sends ride the loop's one `io_uring_enter`; on
/// epoll and poll, readiness and `read`/`write` as libevent's socket bufferevents.
struct BevRing {
    readers: Vec<BufferEvent>,
    c: Rc<Counters>,
}

impl BevRing {
    fn new(
        base: &mut EventBase,
        readers: Vec<UnixStream>,
        writers: Vec<UnixStream>,
    ) -> Res<BevRing> {
        let mut bev_writers = Vec::with_capacity(writers.len());
        let mut fds = Vec::with_capacity(writers.len());
        for w in writers {
            // The untimed first bytes go out with a `write` on the bufferevent's socket, as the
            // events' contender sends them, whatever the backend (no duplicate: N = 9000 needs
            // 18,000 descriptors already).
            fds.push(w.as_raw_fd());
            let bev = BufferEvent::socket(base, Some(w.into()), BevOptions::CLOSE_ON_FREE)?;
            bev.enable(base, What::WRITE)?;
            bev_writers.push(bev);
        }
        let c = Rc::new(Counters::new(fds));
        let bev_writers = Rc::new(bev_writers);
        let mut bev_readers = Vec::with_capacity(readers.len());
        for (i, r) in readers.into_iter().enumerate() {
            let bev = BufferEvent::socket(base, Some(r.into()), BevOptions::CLOSE_ON_FREE)?;
            let (rc, to) = (Rc::clone(&c), Rc::clone(&bev_writers));
            bev.set_read_cb(base, move |base, bev| {
                let n = match bev.input(base).and_then(|input| {
                    let n = input.len();
                    input.drain(n)
                }) {
                    Ok(n) => n,
                    Err(_) => {
                        rc.fail();
                        0
                    }
                };
                if let Some(next) = rc.on_read(i, n) {
                    if to[next].write(base, b"e").is_err() {
                        rc.fail();
                    }
                }
            })?;
            let ec = Rc::clone(&c);
            // EOF or an error on a pair is a failed run, not a silent stall.
            bev.set_event_cb(base, move |_, _, _| ec.fail())?;
            bev_readers.push(bev);
        }
        Ok(BevRing {
            readers: bev_readers,
            c,
        })
    }

    fn enable(&self, base: &mut EventBase) -> Res<()> {
        for bev in &self.readers {
            bev.enable(base, What::READ)?;
        }
        Ok(())
    }
}

/// One contender process's workload: the base, the pairs, and the untimed setup before each run.
struct Workload {
    base: EventBase,
    c: Rc<Counters>,
    /// The untimed setup before each run: libevent's bench.c deletes and adds every event again;
    /// a bufferevent's setup is enabling reading, done once (it stays enabled).
    readd: Readd,
}

type Readd = Box<dyn FnMut(&mut EventBase) -> Res<()>>;

const ONCE: LoopFlags = LoopFlags::ONCE.union(LoopFlags::NONBLOCK);

impl Workload {
    /// N pairs on a base of `method`, through bufferevents with `bev`, else events.
    fn new(method: &str, n: usize, bev: bool) -> Res<Workload> {
        let mut readers = Vec::with_capacity(n);
        let mut writers = Vec::with_capacity(n);
        for _ in 0..n {
            let (r, w) = UnixStream::pair()?;
            readers.push(r);
            writers.push(w);
        }
        let mut cfg = Config::new();
        for m in Method::ALL {
            if m.name() != method {
                cfg.avoid_method(m);
            }
        }
        let mut base = EventBase::with_config(&cfg)?;
        if base.method() != method {
            return Err(format!("revent: asked for {method}, got {}", base.method()).into());
        }
        if bev {
            let ring = BevRing::new(&mut base, readers, writers)?;
            ring.enable(&mut base)?;
            return Ok(Workload {
                base,
                c: Rc::clone(&ring.c),
                readd: Box::new(|base| {
                    base.run(ONCE)?;
                    Ok(())
                }),
            });
        }
        let fds = writers.iter().map(AsRawFd::as_raw_fd).collect();
        let ring = Rc::new(Ring {
            readers,
            writers,
            c: Rc::new(Counters::new(fds)),
        });
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let r = Rc::clone(&ring);
            let fd = ring.readers[i].as_raw_fd();
            ids.push(base.new_event(fd, What::READ | What::PERSIST, move |_, _| r.on_readable(i))?);
        }
        let mut added = false;
        let readd = move |base: &mut EventBase| -> Res<()> {
            for &id in &ids {
                if added {
                    base.del(id)?;
                }
                base.add(id, None)?;
            }
            added = true;
            base.run(ONCE)?;
            Ok(())
        };
        Ok(Workload {
            base,
            c: Rc::clone(&ring.c),
            readd: Box::new(readd),
        })
    }

    fn readd(&mut self) -> Res<()> {
        (self.readd)(&mut self.base)
    }

    /// One run: the first bytes (untimed by the caller's clock only if it starts after this), then
    /// the loop until every byte is read.
    fn run(&mut self, active: usize, budget: u64) -> Res<()> {
        self.c.send_initial(active, budget);
        // A lost byte would spin the non-blocking loop for ever: give up after this many
        // iterations in a row without one read (far more than a slow machine needs).
        let mut idle = 0u32;
        let mut seen = 0;
        loop {
            self.base.run(ONCE)?;
            if self.c.done() {
                return Ok(());
            }
            if self.c.count.get() == seen {
                idle += 1;
                if idle == 10_000_000 {
                    return Err("stalled: a byte was lost".into());
                }
            } else {
                (idle, seen) = (0, self.c.count.get());
            }
        }
    }
}

/// The revent contender (`pipes-child`), speaking the protocol of `c/pipes_common.h`:
/// `-m METHOD -n N -a A -w W [-k K] [-b]`; `-b` runs the workload through bufferevents
/// ([`BevRing`]), without it through events ([`Ring`]).
pub fn child(args: &[String]) -> Res<()> {
    let opts = Args::parse(args, &["-m", "-n", "-a", "-w", "-k"], &["-b"])?;
    let method = opts.str("-m").unwrap_or("epoll");
    let n: usize = opts.num("-n", 100)?;
    let active: usize = opts.num("-a", 1)?;
    let budget: u64 = opts.num("-w", n as u64)?;
    let k: u64 = opts.num("-k", 0)?;
    if n == 0 || active == 0 || active > n {
        return Err("need 1 <= A <= N".into());
    }
    crate::sys::raise_nofile(2 * n as u64 + 64)?;
    let mut work = Workload::new(method, n, opts.flag("-b"))?;
    let c = Rc::clone(&work.c);

    if k > 0 {
        // Counting mode: the workload K times without the per-run re-add.
        work.readd()?;
        let (mut total_fired, mut total_count) = (0, 0);
        for _ in 0..k {
            work.run(active, budget)?;
            total_fired += c.fired.get();
            total_count += c.count.get();
        }
        println!(
            "runs={k} fired={total_fired} count={total_count} failures={}",
            c.failures.get()
        );
        return Ok(());
    }

    println!("ready");
    for line in std::io::stdin().lock().lines() {
        if !line?.starts_with("run") {
            break;
        }
        c.failures.set(0);
        work.readd()?;
        c.send_initial(active, budget);
        let c0 = crate::sys::thread_cpu_ns();
        let t0 = Instant::now();
        loop {
            work.base.run(ONCE)?;
            if c.done() {
                break;
            }
        }
        let us = t0.elapsed().as_secs_f64() * 1e6;
        let cpu_us = (crate::sys::thread_cpu_ns() - c0) as f64 / 1e3;
        println!(
            "us={us:.3} cpu_us={cpu_us:.3} fired={} count={} failures={}",
            c.fired.get(),
            c.count.get(),
            c.failures.get()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of bench.c's chain arrives once, through events and through bufferevents, on
    /// every backend this machine has (io_uring where the kernel allows it).
    #[test]
    fn every_byte_is_read_once_on_every_backend_and_kind() {
        for m in Method::ALL {
            if !EventBase::method_available(m) {
                // As revent's own suites: a kernel that refuses io_uring skips it, but not in CI.
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{m:?} unavailable"
                );
                continue;
            }
            for bev in [false, true] {
                let mut work = Workload::new(m.name(), 20, bev).unwrap();
                work.readd().unwrap();
                for (active, budget) in [(1, 20), (5, 40), (20, 0)] {
                    work.run(active, budget).unwrap();
                    let c = &work.c;
                    let what = format!("{} bev={bev} A={active} W={budget}", m.name());
                    assert_eq!(c.fired.get(), (active as u64) + budget, "{what}");
                    assert_eq!(c.count.get(), c.fired.get(), "{what}");
                    assert_eq!(c.failures.get(), 0, "{what}");
                }
            }
        }
    }
}
