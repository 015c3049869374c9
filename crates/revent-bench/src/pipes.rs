//! `pipes`: libevent's classic `bench` (test/bench.c) across contenders, side by side.
//!
//! N socketpairs, each with a persistent read event; A of them get one byte; every callback reads its
//! byte and, while a budget of W writes lasts, writes one byte to the next pair ((i+1) % N). Each run
//! re-adds all N events (untimed); the timed part is the loop, run once and non-blocking again and
//! again, until every byte is consumed.
//!
//! Contenders, each its own process, set up once and then interleaved run by run:
//! - `revent`: this binary's `pipes-child` (revent's Rust API, epoll or poll backend);
//! - `libevent`: `c/pipes_libevent.c` against the system's libevent 2.1 (`event_config_avoid_method`);
//! - `raw`: `c/pipes_epoll.c` (level-triggered epoll) or `c/pipes_poll.c` (poll()).
//!
//! Syscalls per fired event come from `perf stat -e raw_syscalls:sys_enter` around two complete runs of
//! each contender in counting mode (`-k 1` and `-k 1+D`: the workload repeated without the untimed
//! re-add); the difference, less the A untimed initial sends per run, divided by D·(A+W), is what the
//! timed loop costs per callback. Start-up and setup cancel out in the difference.

use std::path::PathBuf;
use std::time::Instant;

use crate::args::Args;
use crate::child::{perf_available, perf_count, Kv, Proc, Res, Spec};
use crate::cref;
use crate::stats::{cell, median, min_max, ratio};

const USAGE: &str = "\
usage: revent-bench pipes [options]
  --backends epoll,poll   backends to measure (default: both)
  --n 100,1000,9000       numbers of socketpairs (default: 100,1000,9000)
  --a 1,100               numbers of active pairs (default: 1,100)
  --w W                   write budget (default: N)
  --runs 25               runs per contender and row (median reported)
  --budget 150            seconds a row may take; past it, fewer runs (at least 5; the table says)
  --contenders revent,libevent,raw
  --cpu 0                 CPU the contenders are pinned to (taskset), or `none`
  --count-runs 5          extra runs D for the syscall count (fewer when a run takes > 0.4 s)
  --no-syscalls           skip the syscall count";

const KINDS: [&str; 3] = ["revent", "libevent", "raw"];

struct Row {
    backend: String,
    n: u64,
    a: u64,
    w: u64,
    runs: usize,
    /// Median µs per contender kind (index into KINDS).
    us: [Option<f64>; 3],
    spread: [Option<(f64, f64)>; 3],
    sys: [Option<f64>; 3],
}

pub fn run(args: &[String]) -> Res<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
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
        ],
        &["--no-syscalls"],
    )
    .map_err(|e| format!("{e}\n{USAGE}"))?;
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
        if b != "epoll" && b != "poll" {
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

    // Compile what is needed up front, so a missing libevent-dev stops us before any run.
    let exe = std::env::current_exe()?;
    let libevent = kinds
        .iter()
        .any(|k| k == "libevent")
        .then(|| cref::build("pipes_libevent", &["-levent_core"]));
    let mut raw: Vec<(String, PathBuf)> = Vec::new();
    if kinds.iter().any(|k| k == "raw") {
        for b in &backends {
            raw.push((b.clone(), cref::build(&format!("pipes_{b}"), &[])));
        }
    }

    let machine = crate::machine::describe();
    eprintln!("pipes: {machine}");
    let mut rows = Vec::new();
    for backend in &backends {
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
                    let spec = match *kind {
                        "revent" => {
                            let mut a = vec!["pipes-child".to_string()];
                            a.extend(args.iter().cloned());
                            Spec::new("revent", &exe, &a, cpu)
                        }
                        "libevent" => Spec::new("libevent", libevent.as_ref().unwrap(), &args, cpu),
                        _ => {
                            let prog = &raw.iter().find(|(b, _)| b == backend).unwrap().1;
                            Spec::new(&format!("raw {backend}"), prog, &args, cpu)
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
                )?;
                rows.push(row);
            }
        }
    }

    println!("\npipes: median µs per run, W = N unless given; {machine}");
    println!(
        "syscalls per fired event: perf stat -e raw_syscalls:sys_enter, timed loop only (see `pipes --help`)\n"
    );
    print_table(&rows);
    Ok(())
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
) -> Res<Row> {
    let mut row = Row {
        backend: backend.to_string(),
        n,
        a,
        w,
        runs,
        us: [None; 3],
        spread: [None; 3],
        sys: [None; 3],
    };
    let mut procs = Vec::new();
    for (_, spec) in specs {
        procs.push(Proc::start(spec)?);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); procs.len()];
    let started = Instant::now();
    let mut runs_left = runs;
    let mut r = 0;
    while r < runs_left {
        for j in 0..procs.len() {
            let i = (r + j) % procs.len();
            let kv = procs[i].run()?;
            check(&kv, &procs[i].name, 1, a, w)?;
            times[i].push(kv.get("us").copied().unwrap_or(f64::NAN));
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
    for (t, (i, _)) in times.iter().zip(specs) {
        row.us[*i] = Some(median(t));
        row.spread[*i] = Some(min_max(t));
    }

    if let Some(d) = extra_runs {
        // The count is deterministic: fewer extra runs for rows whose runs take seconds (poll, N = 9000).
        let slowest = row.us.iter().flatten().fold(0.0f64, |m, &x| m.max(x));
        let d = d.min((2e6 / slowest.max(1.0)) as u64).max(1);
        for (i, spec) in specs {
            let (c1, kv1) = perf_count(spec, &["-k".to_string(), "1".to_string()])?;
            check(&kv1, &spec.name, 1, a, w)?;
            let (c2, kv2) = perf_count(spec, &["-k".to_string(), (1 + d).to_string()])?;
            check(&kv2, &spec.name, 1 + d, a, w)?;
            let per_run = (c2 as f64 - c1 as f64) / d as f64 - a as f64;
            row.sys[*i] = Some(per_run / (a + w) as f64);
        }
    }

    let mut line = format!("{backend} N={n} A={a} W={w} runs={}:", row.runs);
    for (i, _) in specs {
        let (lo, hi) = row.spread[*i].unwrap_or((f64::NAN, f64::NAN));
        line += &format!(
            "  {} {} µs [{lo:.0}-{hi:.0}] {} sys/ev",
            KINDS[*i],
            cell(row.us[*i], 1),
            cell(row.sys[*i], 3)
        );
    }
    eprintln!("{line}");
    Ok(row)
}

fn print_table(rows: &[Row]) {
    println!(
        "| backend | N | A | W | runs | revent µs | libevent µs | raw µs | revent/libevent | revent/raw | \
         syscalls/event revent | libevent | raw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.backend,
            r.n,
            r.a,
            r.w,
            r.runs,
            cell(r.us[0], 1),
            cell(r.us[1], 1),
            cell(r.us[2], 1),
            cell(ratio(r.us[0], r.us[1]), 3),
            cell(ratio(r.us[0], r.us[2]), 3),
            cell(r.sys[0], 3),
            cell(r.sys[1], 3),
            cell(r.sys[2], 3),
        );
    }
}

/// The revent contender (`pipes-child`): not available until revent's event core is merged.
pub fn child(_args: &[String]) -> Res<()> {
    Err("the revent contender needs revent's event core (EventBase), not merged yet".into())
}
