//! `timers`: adding, deleting and firing 1,000,000 timers, revent against C libevent, side by side.
//!
//! Each contender is its own process: it creates NT timer events and draws NT random durations from the
//! same xorshift64* sequence (untimed), then answers each `run` with one round of these phases:
//! - `rand_add`: add every timer with a random 0-10 s duration; `rand_del`: delete every timer;
//! - `common_add`, `common_del`: the same with one common 5 s duration (`init_common_timeout` /
//!   `event_base_init_common_timeout`);
//! - `fire_add`: add every timer with a random 0-20 ms duration; `fire`: run the loop until every
//!   timer has fired;
//! - `cb_rand_add`, `cb_rand_del`, `cb_common_add`, `cb_common_del`: the add+delete phases again, but
//!   from inside a callback, where both libraries use the loop's cached time instead of reading the
//!   clock (libevent reads its coarse clock per add outside the loop, revent the precise one);
//!
//! each as wall-clock (`PHASE_ns`) and thread CPU time (`PHASE_cpu_ns`) in ns per timer. Rounds
//! alternate between the contenders; medians and ratios are reported.

use std::cell::{Cell, RefCell};
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
  --contenders revent,libevent   (and/or capi: c/timers_libevent.c on revent's C ABI)
  --cpu 0            CPU the contenders are pinned to (taskset), or `none`
";

const KINDS: [&str; 3] = ["revent", "libevent", "capi"];

/// The phases each round times, in order, as the result line names them.
const PHASES: [&str; 10] = [
    "rand_add",
    "rand_del",
    "common_add",
    "common_del",
    "fire_add",
    "fire",
    "cb_rand_add",
    "cb_rand_del",
    "cb_common_add",
    "cb_common_del",
];

/// Table rows: a label and the phases summed into it.
const ROWS: [(&str, &[&str]); 13] = [
    ("add + delete, random 0-10 s", &["rand_add", "rand_del"]),
    ("&nbsp;&nbsp;of which add", &["rand_add"]),
    ("&nbsp;&nbsp;of which delete", &["rand_del"]),
    (
        "add + delete, one common 5 s timeout",
        &["common_add", "common_del"],
    ),
    ("&nbsp;&nbsp;of which add", &["common_add"]),
    ("&nbsp;&nbsp;of which delete", &["common_del"]),
    ("add, random 0-20 ms", &["fire_add"]),
    ("fire: loop until all fired", &["fire"]),
    ("add + fire", &["fire_add", "fire"]),
    (
        "in a callback: add + delete, random 0-10 s",
        &["cb_rand_add", "cb_rand_del"],
    ),
    ("&nbsp;&nbsp;of which add", &["cb_rand_add"]),
    (
        "in a callback: add + delete, one common 5 s timeout",
        &["cb_common_add", "cb_common_del"],
    ),
    ("&nbsp;&nbsp;of which add", &["cb_common_add"]),
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
        println!("{USAGE}{}", crate::capi::USAGE_LINE);
        return Ok(());
    }
    let opts = Args::parse(
        args,
        &[
            "--timers",
            "--rounds",
            "--contenders",
            "--cpu",
            "--capi-libs",
        ],
        &[],
    )
    .map_err(|e| format!("{e}\n{USAGE}{}", crate::capi::USAGE_LINE))?;
    let nt: u64 = opts.num("--timers", 1_000_000)?;
    let rounds: usize = opts.num("--rounds", 5)?;
    let kinds = opts.words("--contenders", &KINDS);
    let cpu = match opts.str("--cpu").unwrap_or("0") {
        "none" => None,
        c => Some(c.parse()?),
    };

    for k in &kinds {
        if !KINDS.contains(&k.as_str()) {
            return Err(format!("unknown contender {k:?}").into());
        }
    }

    let exe = std::env::current_exe()?;
    let has = |kind: &str| kinds.iter().any(|k| k == kind);
    let libevent =
        (has("libevent") || has("capi")).then(|| cref::build("timers_libevent", &["-levent_core"]));
    let capi = if has("capi") {
        let dir = crate::capi::libs(opts.str("--capi-libs"))?;
        crate::capi::preflight(libevent.as_ref().unwrap(), &dir)
            .map_err(|e| format!("capi: not available: {e}"))?;
        Some(dir)
    } else {
        None
    };
    let mut specs: Vec<(usize, Spec)> = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        if !has(kind) {
            continue;
        }
        let n = nt.to_string();
        let spec = match *kind {
            "revent" => Spec::new(
                "revent",
                &exe,
                &["timers-child".into(), "-n".into(), n],
                cpu,
            ),
            "libevent" => Spec::new(
                "libevent",
                libevent.as_ref().unwrap(),
                &["-n".into(), n],
                cpu,
            )
            .not_on(capi.as_deref()),
            _ => Spec::new("capi", libevent.as_ref().unwrap(), &["-n".into(), n], cpu)
                .on_capi(capi.as_ref().unwrap()),
        };
        specs.push((i, spec));
    }

    let machine = crate::machine::describe();
    eprintln!("timers: {machine}");
    let mut procs = Vec::new();
    for (_, spec) in &specs {
        procs.push(Proc::start(spec)?);
    }
    // results[contender][row] = (wall, cpu) per round
    let mut wall: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); ROWS.len()]; procs.len()];
    let mut cpu = wall.clone();
    for r in 0..rounds {
        for j in 0..procs.len() {
            let i = (r + j) % procs.len();
            let kv = procs[i].run()?;
            check(&kv, &procs[i].name, nt)?;
            let mut line = format!("round {} {}:", r + 1, procs[i].name);
            for (k, (_, phases)) in ROWS.iter().enumerate() {
                let sum = |suffix: &str| {
                    phases
                        .iter()
                        .map(|p| kv[&format!("{p}{suffix}")])
                        .sum::<f64>()
                };
                wall[i][k].push(sum("_ns"));
                cpu[i][k].push(sum("_cpu_ns"));
            }
            for p in PHASES {
                line += &format!(
                    " {p}={:.1}/{:.1}",
                    kv[&format!("{p}_ns")],
                    kv[&format!("{p}_cpu_ns")]
                );
            }
            eprintln!("{line}");
        }
    }
    drop(procs);

    // med[kind][row] = (wall, cpu) medians; spread of the wall times
    let mut med = [[(None, None); ROWS.len()]; 3];
    let mut spread = [[None; ROWS.len()]; 3];
    for (c, (i, _)) in specs.iter().enumerate() {
        for k in 0..ROWS.len() {
            med[*i][k] = (Some(median(&wall[c][k])), Some(median(&cpu[c][k])));
            spread[*i][k] = Some(min_max(&wall[c][k]));
        }
    }
    println!(
        "\ntimers: {nt} timers, {rounds} interleaved rounds, median ns per timer: wall clock [min-max], \
         and CPU time (user + system of the contender; leaves out time preempted by other processes); \
         {machine}\n"
    );
    let revent = specs.iter().any(|(i, _)| *i == 0);
    if revent {
        println!(
            "| measurement | revent wall ns | libevent wall ns | speed-up (libevent/revent) | \
             revent CPU ns | libevent CPU ns | speed-up |"
        );
        println!("|---|---|---|---|---|---|---|");
    }
    for (k, (label, _)) in ROWS.iter().enumerate().filter(|_| revent) {
        let show = |i: usize| match (med[i][k].0, spread[i][k]) {
            (Some(x), Some((lo, hi))) => format!("{x:.1} [{lo:.1}-{hi:.1}]"),
            _ => "-".to_string(),
        };
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} |",
            show(0),
            show(1),
            cell(ratio(med[1][k].0, med[0][k].0), 2),
            cell(med[0][k].1, 1),
            cell(med[1][k].1, 1),
            cell(ratio(med[1][k].1, med[0][k].1), 2),
        );
    }
    if capi.is_some() {
        println!(
            "\nThe C ABI: c/timers_libevent.c, one binary, on Debian's libevent (libevent) and on \
             revent's libraries (capi, LD_LIBRARY_PATH); same rounds, median ns per timer.\n"
        );
        println!(
            "| measurement | libevent wall ns | capi wall ns | speed-up (libevent/capi) | \
             libevent CPU ns | capi CPU ns | speed-up |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (k, (label, _)) in ROWS.iter().enumerate() {
            let show = |i: usize| match (med[i][k].0, spread[i][k]) {
                (Some(x), Some((lo, hi))) => format!("{x:.1} [{lo:.1}-{hi:.1}]"),
                _ => "-".to_string(),
            };
            println!(
                "| {label} | {} | {} | {} | {} | {} | {} |",
                show(1),
                show(2),
                cell(ratio(med[1][k].0, med[2][k].0), 2),
                cell(med[1][k].1, 1),
                cell(med[2][k].1, 1),
                cell(ratio(med[1][k].1, med[2][k].1), 2),
            );
        }
    }
    Ok(())
}

fn check(kv: &Kv, name: &str, nt: u64) -> Res<()> {
    let ok = kv.get("fired") == Some(&(nt as f64))
        && kv.get("failures") == Some(&0.0)
        && PHASES.iter().all(|p| {
            kv.contains_key(&format!("{p}_ns")) && kv.contains_key(&format!("{p}_cpu_ns"))
        });
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
    let rand_d: Rc<Vec<Duration>> = Rc::new(
        (0..nt)
            .map(|_| Duration::from_micros(rng.next_u64() % 10_000_001))
            .collect(),
    );
    let fire_d: Vec<Duration> = (0..nt)
        .map(|_| Duration::from_micros(rng.next_u64() % 20_001))
        .collect();
    let fired = Rc::new(Cell::new(0u64));
    let ids: Rc<Vec<EventId>> = Rc::new(
        (0..nt)
            .map(|_| {
                let f = Rc::clone(&fired);
                base.new_timer(move |_, _| f.set(f.get() + 1))
            })
            .collect(),
    );
    let common = base.init_common_timeout(Duration::from_secs(5))?;

    println!("ready");
    for line in std::io::stdin().lock().lines() {
        if !line?.starts_with("run") {
            break;
        }
        let mut failures = 0u64;
        let marks = Rc::new(RefCell::new([(Instant::now(), 0u64); 11]));
        let take = |k: usize| marks.borrow_mut()[k] = (Instant::now(), crate::sys::thread_cpu_ns());

        take(0);
        failures += add_each(&mut base, &ids, |i| rand_d[i]);
        take(1);
        failures += del_each(&mut base, &ids);
        take(2);
        failures += add_each(&mut base, &ids, |_| common);
        take(3);
        failures += del_each(&mut base, &ids);
        take(4);
        fired.set(0);
        failures += add_each(&mut base, &ids, |i| fire_d[i]);
        take(5);
        if !fire_all(&mut base)? {
            failures += 1;
        }
        take(6);
        let in_cb_failures = Rc::new(Cell::new(0u64));
        {
            let (ids, rand_d, marks, fails) = (
                Rc::clone(&ids),
                Rc::clone(&rand_d),
                Rc::clone(&marks),
                Rc::clone(&in_cb_failures),
            );
            base.once(-1, revent::What::TIMEOUT, None, move |base, _| {
                let take = |k: usize| {
                    marks.borrow_mut()[k] = (Instant::now(), crate::sys::thread_cpu_ns())
                };
                let mut f = 0;
                take(6);
                f += add_each(base, &ids, |i| rand_d[i]);
                take(7);
                f += del_each(base, &ids);
                take(8);
                f += add_each(base, &ids, |_| common);
                take(9);
                f += del_each(base, &ids);
                take(10);
                fails.set(f);
            })?;
        }
        if !fire_all(&mut base)? {
            failures += 1;
        }
        failures += in_cb_failures.get();
        let marks = *marks.borrow();

        let mut line = String::new();
        for (k, phase) in PHASES.iter().enumerate() {
            let (w0, c0) = marks[k];
            let (w1, c1) = marks[k + 1];
            let wall = (w1 - w0).as_nanos() as f64 / nt as f64;
            let cpu = (c1 - c0) as f64 / nt as f64;
            line += &format!("{phase}_ns={wall:.2} {phase}_cpu_ns={cpu:.2} ");
        }
        println!(
            "{line}fired={} timers={nt} failures={failures}",
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
