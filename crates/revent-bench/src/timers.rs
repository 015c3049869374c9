//! `timers`: adding, deleting and firing 1,000,000 timers, revent against C libevent, side by side.
//!
//! Each contender is its own process: it creates NT timer events and draws NT random durations from the
//! same xorshift64* sequence (untimed), then answers each `run` with one round of:
//! - `rand_ns`: add every timer with a random 0-10 s duration, then delete every timer;
//! - `common_ns`: the same with one common 5 s duration (`init_common_timeout` /
//!   `event_base_init_common_timeout`);
//! - `fireadd_ns`: add every timer with a random 0-20 ms duration;
//! - `fire_ns`: run the loop until every timer has fired;
//!
//! all in ns per timer. Rounds alternate between the contenders; medians and ratios are reported.

use std::cell::Cell;
use std::io::BufRead;
use std::rc::Rc;
use std::time::{Duration, Instant};

use revent::{EventBase, EventId, LoopExit};

use crate::args::Args;
use crate::child::{Kv, Proc, Res, Spec};
use crate::cref;
use crate::stats::{cell, median, min_max, ratio};

const USAGE: &str = "\
usage: revent-bench timers [options]
  --timers 1000000   timers per measurement
  --rounds 5         rounds per contender (at least 3; median reported)
  --contenders revent,libevent
  --cpu 0            CPU the contenders are pinned to (taskset), or `none`";

const KINDS: [&str; 2] = ["revent", "libevent"];

/// (key in the result line, what the table calls it)
const METRICS: [(&str, &str); 5] = [
    ("rand_ns", "add + delete, random 0-10 s"),
    ("common_ns", "add + delete, one common 5 s timeout"),
    ("fireadd_ns", "add, random 0-20 ms"),
    ("fire_ns", "fire: loop until all fired"),
    ("total_fire_ns", "add + fire"),
];

/// The xorshift64* sequence both contenders draw their durations from.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

pub fn run(args: &[String]) -> Res<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let opts = Args::parse(
        args,
        &["--timers", "--rounds", "--contenders", "--cpu"],
        &[],
    )
    .map_err(|e| format!("{e}\n{USAGE}"))?;
    let nt: u64 = opts.num("--timers", 1_000_000)?;
    let rounds: usize = opts.num("--rounds", 5)?;
    let kinds = opts.words("--contenders", &KINDS);
    let cpu = match opts.str("--cpu").unwrap_or("0") {
        "none" => None,
        c => Some(c.parse()?),
    };

    let exe = std::env::current_exe()?;
    let mut specs: Vec<(usize, Spec)> = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        if !kinds.iter().any(|k| k == kind) {
            continue;
        }
        let n = nt.to_string();
        let spec = if *kind == "revent" {
            Spec::new(
                "revent",
                &exe,
                &["timers-child".into(), "-n".into(), n],
                cpu,
            )
        } else {
            let prog = cref::build("timers_libevent", &["-levent_core"]);
            Spec::new("libevent", &prog, &["-n".into(), n], cpu)
        };
        specs.push((i, spec));
    }
    for k in &kinds {
        if !KINDS.contains(&k.as_str()) {
            return Err(format!("unknown contender {k:?}").into());
        }
    }

    let machine = crate::machine::describe();
    eprintln!("timers: {machine}");
    let mut procs = Vec::new();
    for (_, spec) in &specs {
        procs.push(Proc::start(spec)?);
    }
    // results[contender][metric] = one value per round
    let mut results: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); METRICS.len()]; procs.len()];
    for r in 0..rounds {
        for j in 0..procs.len() {
            let i = (r + j) % procs.len();
            let mut kv = procs[i].run()?;
            check(&kv, &procs[i].name, nt)?;
            let total = kv["fireadd_ns"] + kv["fire_ns"];
            kv.insert("total_fire_ns".into(), total);
            let mut line = format!("round {} {}:", r + 1, procs[i].name);
            for (m, (key, _)) in METRICS.iter().enumerate() {
                results[i][m].push(kv[*key]);
                line += &format!(" {key}={:.1}", kv[*key]);
            }
            eprintln!("{line}");
        }
    }
    drop(procs);

    let mut med = [[None; METRICS.len()]; 2];
    let mut spread = [[None; METRICS.len()]; 2];
    for (res, (i, _)) in results.iter().zip(&specs) {
        for m in 0..METRICS.len() {
            med[*i][m] = Some(median(&res[m]));
            spread[*i][m] = Some(min_max(&res[m]));
        }
    }
    println!("\ntimers: {nt} timers, {rounds} interleaved rounds, median ns per timer [min-max]; {machine}\n");
    println!("| measurement | revent ns/timer | libevent ns/timer | libevent/revent (speed-up) |");
    println!("|---|---|---|---|");
    for (m, (_, label)) in METRICS.iter().enumerate() {
        let show = |i: usize| match (med[i][m], spread[i][m]) {
            (Some(x), Some((lo, hi))) => format!("{x:.1} [{lo:.1}-{hi:.1}]"),
            _ => "-".to_string(),
        };
        println!(
            "| {label} | {} | {} | {} |",
            show(0),
            show(1),
            cell(ratio(med[1][m], med[0][m]), 2)
        );
    }
    Ok(())
}

fn check(kv: &Kv, name: &str, nt: u64) -> Res<()> {
    let ok = kv.get("fired") == Some(&(nt as f64))
        && kv.get("failures") == Some(&0.0)
        && METRICS[..4].iter().all(|(k, _)| kv.contains_key(*k));
    if !ok {
        return Err(format!("{name}: bad round: {kv:?} (expected fired={nt} failures=0)").into());
    }
    Ok(())
}

/// The revent contender (`timers-child -n NT`), speaking the protocol of `c/timers_libevent.c`. Each
/// phase is its own function, so a callgrind profile attributes instructions to it.
pub fn child(args: &[String]) -> Res<()> {
    let opts = Args::parse(args, &["-n"], &[])?;
    let nt: usize = opts.num("-n", 1_000_000)?;

    let mut base = EventBase::new()?;
    let mut rng = Rng::new();
    let rand_d: Vec<Duration> = (0..nt)
        .map(|_| Duration::from_micros(rng.next_u64() % 10_000_001))
        .collect();
    let fire_d: Vec<Duration> = (0..nt)
        .map(|_| Duration::from_micros(rng.next_u64() % 20_001))
        .collect();
    let fired = Rc::new(Cell::new(0u64));
    let ids: Vec<EventId> = (0..nt)
        .map(|_| {
            let f = Rc::clone(&fired);
            base.new_timer(move |_, _| f.set(f.get() + 1))
        })
        .collect();
    let common = base.init_common_timeout(Duration::from_secs(5))?;

    println!("ready");
    for line in std::io::stdin().lock().lines() {
        if !line?.starts_with("run") {
            break;
        }
        let per = |d: Duration| d.as_nanos() as f64 / nt as f64;
        let mut failures = 0u64;

        let t0 = Instant::now();
        failures += add_each(&mut base, &ids, |i| rand_d[i]);
        failures += del_each(&mut base, &ids);
        let rand_ns = per(t0.elapsed());

        let t0 = Instant::now();
        failures += add_each(&mut base, &ids, |_| common);
        failures += del_each(&mut base, &ids);
        let common_ns = per(t0.elapsed());

        fired.set(0);
        let t0 = Instant::now();
        failures += add_each(&mut base, &ids, |i| fire_d[i]);
        let t1 = Instant::now();
        if !fire_all(&mut base)? {
            failures += 1;
        }
        let t2 = Instant::now();

        println!(
            "rand_ns={rand_ns:.2} common_ns={common_ns:.2} fireadd_ns={:.2} fire_ns={:.2} \
             fired={} timers={nt} failures={failures}",
            per(t1 - t0),
            per(t2 - t1),
            fired.get()
        );
    }
    Ok(())
}

/// Adds every timer with the duration `d(i)`; returns the number of failures.
#[inline(never)]
fn add_each(base: &mut EventBase, ids: &[EventId], d: impl Fn(usize) -> Duration) -> u64 {
    let mut failures = 0;
    for (i, &id) in ids.iter().enumerate() {
        failures += u64::from(base.add(id, Some(d(i))).is_err());
    }
    failures
}

/// Deletes every timer; returns the number of failures.
#[inline(never)]
fn del_each(base: &mut EventBase, ids: &[EventId]) -> u64 {
    let mut failures = 0;
    for &id in ids {
        failures += u64::from(base.del(id).is_err());
    }
    failures
}

/// Runs the loop until no timer is left; whether it ended that way.
#[inline(never)]
fn fire_all(base: &mut EventBase) -> Res<bool> {
    Ok(matches!(base.dispatch()?, LoopExit::NoEvents))
}
