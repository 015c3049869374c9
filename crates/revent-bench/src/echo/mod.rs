//! The echo benchmark (issue 4): `revent echo` against C libevent's bufferevents, raw epoll and tokio.
//!
//! `revent-bench echo [options]` starts every server as a child process on an ephemeral port of
//! 127.0.0.1, pinned to one CPU, and drives each with the closed-loop load generator (`echo-load`,
//! pinned to another CPU), interleaved: for each row, round after round, every server once, the order
//! rotated by one place each round. During
//! each load run, `perf stat -e raw_syscalls:sys_enter -p SERVER` counts the server's system calls,
//! which divided by the trips the client counted gives syscalls per trip. Prints a Markdown table of
//! the medians and the ratios revent/raw epoll and revent/libevent. A run with errors or mismatches is
//! not a result: it is reported and left out of the medians.

mod load;
mod sys;
mod tokio_server;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The subcommands this module serves: `echo`, `echo-load`, `echo-server-tokio`.
pub fn dispatch(cmd: &str, args: &[String]) -> Result<(), String> {
    match cmd {
        "echo" => run(args),
        "echo-load" => load::run(args),
        "echo-server-tokio" => tokio_server::run(args),
        _ => Err(format!("unknown echo subcommand {cmd:?}")),
    }
}

const HELP: &str = "\
usage: revent-bench echo [options]
  --rows R        connections x bytes, comma-separated (default 50x64,50x16384,1000x64)
  --secs D        seconds per run (default 2)
  --rounds N      interleaved rounds (default 3)
  --servers LIST  of libevent,epoll,tokio,revent (default all four, in that order); an entry
                  NAME=PATH adds another `revent`-like binary (run as PATH echo --addr 127.0.0.1
                  --port 0), e.g. a build with a fix, as one more contender
  --revent PATH   the revent binary (default: `cargo build --release -p revent-cli`, then
                  target/release/revent)
  --load PATH     another load generator with echo-load's arguments and output line (for example
                  shared/tools/echo-load.c compiled); default: this program's echo-load
  --server-cpu N  CPU for the servers (default 0)
  --client-cpu N  CPU for the load generator (default 1)
  --no-perf       skip the syscall counts";

struct Opts {
    rows: Vec<(usize, usize)>,
    secs: f64,
    rounds: usize,
    servers: Vec<String>,
    revent: Option<PathBuf>,
    load: Option<PathBuf>,
    server_cpu: usize,
    client_cpu: usize,
    perf: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        rows: vec![(50, 64), (50, 16384), (1000, 64)],
        secs: 2.0,
        rounds: 3,
        servers: ["libevent", "epoll", "tokio", "revent"]
            .map(String::from)
            .to_vec(),
        revent: None,
        load: None,
        server_cpu: 0,
        client_cpu: 1,
        perf: true,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|_| format!("bad {flag} {v:?}"));
        match flag.as_str() {
            "--rows" => {
                o.rows = value()?
                    .split(',')
                    .map(|r| {
                        let (c, s) = r.split_once('x').ok_or(format!("bad row {r:?}"))?;
                        match (c.parse(), s.parse()) {
                            (Ok(c), Ok(s)) if c > 0 && s > 0 => Ok((c, s)),
                            _ => Err(format!("bad row {r:?}")),
                        }
                    })
                    .collect::<Result<_, String>>()?
            }
            "--secs" => {
                o.secs = value()?.parse().map_err(|_| "bad --secs".to_string())?;
                if !(o.secs.is_finite() && o.secs > 0.0) {
                    return Err("--secs must be positive".into());
                }
            }
            "--rounds" => o.rounds = num(value()?)?.max(1),
            "--servers" => {
                o.servers = value()?.split(',').map(String::from).collect();
                if let Some(s) = o
                    .servers
                    .iter()
                    .find(|s| !SERVERS.contains(&s.as_str()) && !s.contains('='))
                {
                    return Err(format!("unknown server {s:?} (one of {SERVERS:?})"));
                }
            }
            "--revent" => o.revent = Some(value()?.into()),
            "--load" => o.load = Some(value()?.into()),
            "--server-cpu" => o.server_cpu = num(value()?)?,
            "--client-cpu" => o.client_cpu = num(value()?)?,
            "--no-perf" => o.perf = false,
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?}\n{HELP}")),
        }
    }
    Ok(o)
}

const SERVERS: [&str; 4] = ["libevent", "epoll", "tokio", "revent"];

/// A server child process listening on 127.0.0.1:port.
struct Server {
    name: String,
    child: Child,
    port: u16,
}

impl Server {
    fn start(name: &str, program: &Path, args: &[&str], cpu: usize) -> Result<Server, String> {
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(cpu.to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let port = loop {
            line.clear();
            if out.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} exited before it listened"));
            }
            if let Some(p) = port_of(&line) {
                break p;
            }
        };
        // Keep draining its stdout so that a late line never blocks or kills it.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        Ok(Server {
            name: name.to_string(),
            child,
            port,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = sys::signal(self.pid(), libc::SIGTERM);
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port from `port=N` (the reference servers) or `listening on ADDR:N` (`revent echo`).
fn port_of(line: &str) -> Option<u16> {
    if let Some(rest) = line.split("port=").nth(1) {
        return rest.split_whitespace().next()?.parse().ok();
    }
    let rest = line.split("listening on ").nth(1)?;
    let addr = rest.split_whitespace().next()?;
    addr.rsplit(':').next()?.parse().ok()
}

/// One load run against one server.
#[derive(Debug, Clone, Copy)]
struct Run {
    tps: f64,
    /// Syscalls per trip; None without perf.
    per_trip: Option<f64>,
    /// The server's CPU time (user + system) per trip, in microseconds.
    cpu_us: Option<f64>,
    errors: u64,
    mismatches: u64,
}

impl Run {
    fn ok(&self) -> bool {
        self.errors == 0 && self.mismatches == 0
    }
}

fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

fn measure(
    o: &Opts,
    (load, load_args): (&Path, &[&str]),
    srv: &Server,
    conns: usize,
    size: usize,
) -> Result<Run, String> {
    let perf_out = std::env::temp_dir().join(format!(
        "revent-echo-perf-{}-{}",
        std::process::id(),
        srv.name
    ));
    let mut perf = if o.perf {
        let p = Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(srv.pid().to_string())
            .arg("-o")
            .arg(&perf_out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run perf: {e} (or pass --no-perf)"))?;
        std::thread::sleep(Duration::from_millis(100));
        Some(p)
    } else {
        None
    };
    let cpu_before = cpu_time(srv.pid());
    let out = Command::new("taskset")
        .arg("-c")
        .arg(o.client_cpu.to_string())
        .arg(load)
        .args(load_args)
        .args(["127.0.0.1", &srv.port.to_string()])
        .arg(conns.to_string())
        .arg(size.to_string())
        .arg(o.secs.to_string())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", load.display()))?;
    let cpu = match (cpu_before, cpu_time(srv.pid())) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let syscalls = match perf.as_mut() {
        Some(p) => {
            let _ = sys::signal(p.id(), libc::SIGINT);
            let _ = p.wait();
            let mut text = String::new();
            let _ = std::fs::File::open(&perf_out).and_then(|mut f| f.read_to_string(&mut text));
            let _ = std::fs::remove_file(&perf_out);
            let count = text
                .lines()
                .find(|l| l.contains("raw_syscalls:sys_enter"))
                .and_then(|l| l.split(',').next()?.trim().parse::<u64>().ok());
            if count.is_none() {
                return Err(format!("perf counted nothing for {}: {text}", srv.name));
            }
            count
        }
        None => None,
    };
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let num = |k: &str| kv(&line, k).and_then(|v| v.parse::<f64>().ok());
    let (Some(trips), Some(tps)) = (num("trips"), num("trips_per_s")) else {
        return Err(format!(
            "{} against {}: no result ({}): {line}",
            load.display(),
            srv.name,
            out.status
        ));
    };
    Ok(Run {
        tps,
        per_trip: syscalls.map(|s| s as f64 / trips.max(1.0)),
        cpu_us: cpu.map(|c| c * 1e6 / trips.max(1.0)),
        errors: num("errors").unwrap_or(1.0) as u64,
        mismatches: num("mismatches").unwrap_or(1.0) as u64,
    })
}

/// User + system CPU seconds process `pid` has used (all its threads), from /proc/PID/stat.
fn cpu_time(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command name: state is field 3, utime 14, stime 15.
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / sys::clock_ticks())
}

fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

fn reference_path(name: &str, o: &Opts) -> Result<(PathBuf, Vec<String>), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let revent_args = ["echo", "--addr", "127.0.0.1", "--port", "0"]
        .map(String::from)
        .to_vec();
    if let Some((_, path)) = name.split_once('=') {
        return Ok((path.into(), revent_args));
    }
    Ok(match name {
        "libevent" => (
            crate::cref::try_build("echo_libevent", &["-levent_core"])?,
            vec!["0".into()],
        ),
        "epoll" => (crate::cref::try_build("echo_epoll", &[])?, vec!["0".into()]),
        "tokio" => (me, vec!["echo-server-tokio".into(), "0".into()]),
        "revent" => (
            match &o.revent {
                Some(p) => p.clone(),
                None => revent_binary()?,
            },
            revent_args,
        ),
        _ => unreachable!("checked by parse"),
    })
}

/// `target/release/revent`, built first (`cargo build --release -p revent-cli`) so it is current.
fn revent_binary() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        None => root.join("target"),
    };
    let bin = target.join("release/revent");
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "-p", "revent-cli"])
        .current_dir(&root)
        .status();
    match built {
        Ok(s) if s.success() => {}
        _ if bin.exists() => eprintln!(
            "revent-bench: could not build revent-cli; using the existing {}",
            bin.display()
        ),
        _ => return Err("cannot build revent-cli (cargo build --release -p revent-cli)".into()),
    }
    Ok(bin)
}

fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let max_conns = o.rows.iter().map(|r| r.0).max().unwrap_or(0) as u64;
    // The children inherit the limit: the servers and the load generator each need one fd a connection.
    crate::sys::raise_nofile(max_conns + 256).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    // The load generator: this program's `echo-load`, or the --load program, called the same way.
    let load: (PathBuf, Vec<&str>) = match &o.load {
        Some(p) => (p.clone(), vec![]),
        None => (
            std::env::current_exe().map_err(|e| e.to_string())?,
            vec!["echo-load"],
        ),
    };

    let mut servers = Vec::new();
    for name in &o.servers {
        let (prog, args) = reference_path(name, &o)?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let label = name.split_once('=').map_or(name.as_str(), |(n, _)| n);
        let s = Server::start(label, &prog, &args, o.server_cpu)?;
        eprintln!(
            "started {label}: pid {} port {} ({})",
            s.pid(),
            s.port,
            prog.display()
        );
        servers.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));

    let mut table = Vec::new();
    for &(conns, size) in &o.rows {
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); servers.len()];
        for round in 1..=o.rounds {
            // Rotate the order every round: a run tends to go faster right after another one (seen
            // with two clients alternating on one server), so no contender keeps the same place.
            for k in 0..servers.len() {
                let i = (k + round - 1) % servers.len();
                let s = &servers[i];
                let r = measure(&o, (&load.0, &load.1), s, conns, size)?;
                eprintln!(
                    "{conns}x{size} round {round} {:<12} {:>8.0} trips/s {} syscalls/trip {} CPU us/trip{}",
                    s.name,
                    r.tps,
                    r.per_trip.map_or("-".into(), |x| format!("{x:.2}")),
                    r.cpu_us.map_or("-".into(), |x| format!("{x:.2}")),
                    if r.ok() {
                        String::new()
                    } else {
                        format!(
                            "  NOT A RESULT: errors={} mismatches={}",
                            r.errors, r.mismatches
                        )
                    }
                );
                runs[i].push(r);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        table.push((conns, size, runs));
    }

    println!(
        "echo, {} interleaved rounds of {} s, servers on CPU {}, load generator on CPU {}; {}",
        o.rounds,
        o.secs,
        o.server_cpu,
        o.client_cpu,
        crate::machine::describe()
    );
    println!(
        "Each cell: median trips/s; syscalls per trip (perf raw_syscalls:sys_enter on the server / trips \
         the client counted); the server's CPU time per trip in µs (user + system, /proc/PID/stat). \
         Ratios are of the median trips/s, with the range of the per-round ratios.\n"
    );
    print!("{}", table_md(&servers, &table));
    drop(servers);
    Ok(())
}

type Row = (usize, usize, Vec<Vec<Run>>);

/// The Markdown table: one column a server, then revent* / epoll and revent* / libevent.
fn table_md(servers: &[Server], table: &[Row]) -> String {
    let idx = |n: &str| servers.iter().position(|s| s.name == n);
    let (ep, le) = (idx("epoll"), idx("libevent"));
    let mut ratios = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if s.name.starts_with("revent") {
            for (base, j) in [("epoll", ep), ("libevent", le)] {
                if let Some(j) = j {
                    ratios.push((format!("{} / {base}", s.name), i, j));
                }
            }
        }
    }
    let mut md = String::from("| conns x bytes |");
    for s in servers {
        md += &format!(" {} |", s.name);
    }
    for (h, _, _) in &ratios {
        md += &format!(" {h} |");
    }
    md += "\n|---|";
    md += &"---|".repeat(servers.len() + ratios.len());
    md.push('\n');
    for (conns, size, runs) in table {
        let good = |rs: &[Run]| -> Vec<Run> { rs.iter().filter(|r| r.ok()).copied().collect() };
        let med_of = |rs: &[Run], f: fn(&Run) -> Option<f64>| {
            median(&mut good(rs).iter().filter_map(f).collect::<Vec<_>>())
        };
        md += &format!("| {conns} x {size} |");
        for rs in runs {
            let bad = rs.len() - good(rs).len();
            md += &match med_of(rs, |r| Some(r.tps)) {
                Some(t) => format!(
                    " {:.0}k; {}; {} µs{} |",
                    t / 1e3,
                    med_of(rs, |r| r.per_trip).map_or("-".into(), |x| format!("{x:.2}")),
                    med_of(rs, |r| r.cpu_us).map_or("-".into(), |x| format!("{x:.2}")),
                    if bad > 0 {
                        format!(" ({bad} of {} runs had errors: not counted)", rs.len())
                    } else {
                        String::new()
                    }
                ),
                None => " no result (errors or mismatches in every run) |".into(),
            };
        }
        for (_, a, b) in &ratios {
            let mut per_round: Vec<f64> = runs[*a]
                .iter()
                .zip(&runs[*b])
                .filter(|(x, y)| x.ok() && y.ok())
                .map(|(x, y)| x.tps / y.tps)
                .collect();
            per_round.sort_by(f64::total_cmp);
            md += &match (
                med_of(&runs[*a], |r| Some(r.tps)),
                med_of(&runs[*b], |r| Some(r.tps)),
            ) {
                (Some(x), Some(y)) => format!(
                    " {:.2}x ({:.2}-{:.2}) |",
                    x / y,
                    per_round.first().copied().unwrap_or(f64::NAN),
                    per_round.last().copied().unwrap_or(f64::NAN)
                ),
                _ => " - |".into(),
            };
        }
        md.push('\n');
    }
    md
}
