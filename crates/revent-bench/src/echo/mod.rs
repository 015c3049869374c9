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
//!
//! The C ABI contenders run a C program built against Debian's libevent on revent's libraries
//! (`LD_LIBRARY_PATH`, see [`crate::capi`]): `capi` is `c/echo_libevent.c` (bufferevents), the binary of
//! `libevent`; `seed-libevent` and `seed-capi` are the seed's `echo_server.c`
//! (crates/revent-capi/tests/programs/), plain events, which listens on the fixed port 9999 and
//! answers every read with `reply` (the load generator's `--reply` mode). Each seed server runs in a
//! network namespace of its own (`unshare -n`; root), where that port is free, with the load generator
//! entering it (`nsenter --net`); perf attaches from outside by pid. It never closes a connection's
//! socket and closes accepted sockets above FD_SETSIZE, so every run gets a fresh process; its
//! per-message `printf` goes to /dev/null (still one `write` a message, counted as a syscall).

mod load;
mod sys;
mod tokio_server;
mod uring_server;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The subcommands this module serves: `echo`, `echo-load`, `echo-server-tokio`,
/// `echo-server-uring`.
pub fn dispatch(cmd: &str, args: &[String]) -> Result<(), String> {
    match cmd {
        "echo" => run(args),
        "echo-load" => load::run(args),
        "echo-server-tokio" => tokio_server::run(args),
        "echo-server-uring" => uring_server::run(args),
        _ => Err(format!("unknown echo subcommand {cmd:?}")),
    }
}

const HELP: &str = "\
usage: revent-bench echo [options]
  --rows R        connections x bytes, comma-separated (default 50x64,50x16384,1000x64)
  --secs D        seconds per run (default 2)
  --rounds N      interleaved rounds (default 3)
  --servers LIST  of libevent,epoll,tokio,revent (default all four, in that order), uring (an
                  echo server written directly on io_uring: multishot accept and receive, a
                  provided buffer ring, DEFER_TASKRUN; the io_uring limit), revent-uring
                  (revent echo --method io_uring), capi (the
                  libevent binary on revent's C ABI), seed-libevent and seed-capi (the seed's
                  echo_server.c on each; messages of at most 1024 bytes, larger rows show n/a; run
                  in a network namespace of their own: needs root); an entry NAME=PATH adds another
                  `revent`-like binary (run as PATH echo --addr 127.0.0.1 --port 0), e.g. a build
                  with a fix, as one more contender. A capi contender whose program calls a
                  function revent's C ABI lacks is left out with a `not available` line
  --revent PATH   the revent binary (default: `cargo build --release -p revent-cli`, then
                  target/release/revent)
  --load PATH     another load generator with echo-load's arguments and output line (for example
                  shared/tools/echo-load.c compiled); default: this program's echo-load
  --server-cpu N  CPU for the servers (default 0)
  --client-cpu N  CPU for the load generator (default 1)
  --no-perf       skip the syscall counts
  --quiet-wait S  before each run, wait up to S seconds for the machine to be quiet (other
                  processes using < 0.15 CPUs over 0.25 s; default 10; 0: do not wait)
  --busy X        a run during which other processes used more than X CPUs is taken again, up to
                  twice (default 0.3; 0: never)
  --capi-libs DIR revent's libevent-2.1 libraries for the capi contenders (default
                  target/revent-libs, (re)built with crates/revent-capi/build-libs.sh when missing
                  or older than revent's sources; a DIR given is built only when it lacks
                  libevent_core-2.1.so.7)";

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
    capi_libs: Option<String>,
    quiet: f64,
    busy: f64,
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
        capi_libs: None,
        quiet: 10.0,
        busy: 0.3,
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
            "--capi-libs" => o.capi_libs = Some(value()?),
            "--busy" => {
                o.busy = value()?.parse().map_err(|_| "bad --busy".to_string())?;
                if !(o.busy.is_finite() && o.busy >= 0.0) {
                    return Err("--busy must be 0 or more".into());
                }
            }
            "--quiet-wait" => {
                o.quiet = value()?
                    .parse()
                    .map_err(|_| "bad --quiet-wait".to_string())?;
                if !(o.quiet.is_finite() && o.quiet >= 0.0) {
                    return Err("--quiet-wait must be 0 or more".into());
                }
            }
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?}\n{HELP}")),
        }
    }
    Ok(o)
}

const SERVERS: [&str; 9] = [
    "libevent",
    "epoll",
    "tokio",
    "revent",
    "uring",
    "revent-uring",
    "capi",
    "seed-libevent",
    "seed-capi",
];

/// The seed's echo server listens on this port (in a network namespace of its own).
const SEED_PORT: u16 = 9999;
/// Its reply to every read.
const SEED_REPLY: &str = "reply";
/// The largest message it answers once: its recv buffer, which must also hold the closing NUL.
const SEED_MAX_SIZE: usize = 1024;

/// How to start a server.
#[derive(Clone)]
struct ServerSpec {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    /// Extra environment (capi: LD_LIBRARY_PATH) and which libevent the process must map.
    env: Vec<(String, String)>,
    maps: Option<crate::capi::Maps>,
    /// The seed's echo_server.c: port 9999 in a network namespace of its own, answers `reply`,
    /// started afresh for every run.
    seed: bool,
}

/// A server child process listening on 127.0.0.1:port.
struct Server {
    name: String,
    child: Child,
    port: u16,
    seed: bool,
}

impl Server {
    fn start(spec: &ServerSpec, cpu: usize) -> Result<Server, String> {
        let (name, program) = (spec.name.as_str(), &spec.program);
        let mut cmd = if spec.seed {
            // unshare and sh exec the next program, so the child's pid ends up the server's.
            let mut c = Command::new("unshare");
            c.args(["-n", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"]);
            c
        } else {
            Command::new("taskset")
        };
        if spec.seed {
            cmd.arg("taskset");
        }
        cmd.arg("-c")
            .arg(cpu.to_string())
            .arg(program)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if spec.seed {
            // What it read goes to /dev/null, and so do its perror lines for connections the load
            // generator resets when it exits.
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            cmd.stdout(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
        let port = if spec.seed {
            wait_listening(&mut child, name, SEED_PORT)?
        } else {
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
            port
        };
        let server = Server {
            name: name.to_string(),
            child,
            port,
            seed: spec.seed,
        };
        if let Some(want) = &spec.maps {
            crate::capi::check_maps(name, server.pid(), want)?;
        }
        Ok(server)
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

/// Waits until the child (in a network namespace of its own) listens on `port`: /proc/PID/net/tcp
/// lists the sockets of the process's namespace.
fn wait_listening(child: &mut Child, name: &str, port: u16) -> Result<u16, String> {
    let local = format!(":{port:04X}");
    for _ in 0..500 {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{name} exited before it listened ({status}); the seed servers run under \
                 `unshare -n`, which needs root"
            ));
        }
        let tcp =
            std::fs::read_to_string(format!("/proc/{}/net/tcp", child.id())).unwrap_or_default();
        let listening = tcp.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
        });
        if listening {
            return Ok(port);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("{name} did not listen on port {port} within 5 s"))
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
    /// CPUs' worth of time other processes used during the run.
    others: f64,
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
    let cost = crate::server::Cost::of(srv.pid(), &srv.name, o.perf, &std::env::temp_dir())?;
    let others = crate::machine::OthersLoad::start(&[srv.pid()]);
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let (load, load_args): (&Path, &[&str]) = if srv.seed {
        // This program's echo-load, in the server's network namespace, expecting `reply`.
        (&me, &["echo-load"])
    } else {
        (load, load_args)
    };
    let mut cmd = if srv.seed {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", srv.pid()))
            .arg("taskset");
        c
    } else {
        Command::new("taskset")
    };
    cmd.arg("-c")
        .arg(o.client_cpu.to_string())
        .arg(load)
        .args(load_args)
        .args(["127.0.0.1", &srv.port.to_string()])
        .arg(conns.to_string())
        .arg(size.to_string())
        .arg(o.secs.to_string());
    if srv.seed {
        cmd.args(["--reply", SEED_REPLY]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", load.display()))?;
    let others = others.end(&[srv.pid()]);
    let (syscalls, cpu) = cost.finish()?;
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
        others,
    })
}

/// User + system CPU seconds process `pid` has used (all its threads), from /proc/PID/stat.
pub(crate) fn cpu_time(pid: u32) -> Option<f64> {
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

/// How to start server `name` (an entry of --servers); None for a capi contender that cannot run on
/// revent's libraries yet (`missing` gets the reason).
fn server_spec(
    name: &str,
    o: &Opts,
    capi_dir: Option<&Path>,
    missing: &mut Vec<String>,
) -> Result<Option<ServerSpec>, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let revent_args = ["echo", "--addr", "127.0.0.1", "--port", "0"]
        .map(String::from)
        .to_vec();
    let mut spec = ServerSpec {
        name: name.to_string(),
        program: PathBuf::new(),
        args: Vec::new(),
        env: Vec::new(),
        maps: None,
        seed: name.starts_with("seed-"),
    };
    if let Some((label, path)) = name.split_once('=') {
        spec.name = label.to_string();
        spec.program = path.into();
        spec.args = revent_args;
        return Ok(Some(spec));
    }
    let (program, args) = match name {
        "libevent" | "capi" => (
            crate::cref::try_build("echo_libevent", &["-levent_core"])?,
            vec!["0".into()],
        ),
        "seed-libevent" | "seed-capi" => {
            let src = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../revent-capi/tests/programs/echo_server.c");
            (
                crate::cref::try_build_src(&src, "seed_echo_server", &["-w"], &["-levent"])?,
                vec![],
            )
        }
        "epoll" => (crate::cref::try_build("echo_epoll", &[])?, vec!["0".into()]),
        "tokio" => (me, vec!["echo-server-tokio".into(), "0".into()]),
        "uring" => (me, vec!["echo-server-uring".into(), "0".into()]),
        "revent" | "revent-uring" => (
            match &o.revent {
                Some(p) => p.clone(),
                None => revent_binary()?,
            },
            if name == "revent" {
                revent_args
            } else {
                let mut a = revent_args;
                a.extend(["--method".into(), "io_uring".into()]);
                a
            },
        ),
        _ => unreachable!("checked by parse"),
    };
    spec.program = program;
    spec.args = args;
    let wants_capi = name.ends_with("capi");
    let uses_libevent = wants_capi || name.ends_with("libevent");
    if wants_capi {
        let dir = capi_dir.expect("the capi libraries are found first");
        if let Err(e) = crate::capi::preflight(&spec.program, dir) {
            eprintln!("{name}: not available, left out: {e}");
            missing.push(format!("{name}: not available, left out: {e}"));
            return Ok(None);
        }
        spec.env = crate::capi::env(dir);
        spec.maps = Some(crate::capi::Maps::From(dir.to_path_buf()));
    } else if uses_libevent {
        spec.maps = capi_dir.map(|d| crate::capi::Maps::NotFrom(d.to_path_buf()));
    }
    Ok(Some(spec))
}

/// `target/release/revent`, built first (`cargo build --release -p revent-cli`) so it is current.
pub(crate) fn revent_binary() -> Result<PathBuf, String> {
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

    // The capi libraries first (when any server wants them), so that every libevent server is
    // checked against them.
    let capi_dir = match o.servers.iter().any(|s| s.ends_with("capi")) {
        true => Some(crate::capi::libs(o.capi_libs.as_deref())?),
        false => None,
    };
    let mut missing = Vec::new();
    let mut specs = Vec::new();
    for name in &o.servers {
        if let Some(spec) = server_spec(name, &o, capi_dir.as_deref(), &mut missing)? {
            specs.push(spec);
        }
    }
    // Servers that stay up for the whole benchmark; the seed ones start afresh for every run.
    let mut servers: Vec<Option<Server>> = Vec::new();
    for spec in &specs {
        if spec.seed {
            // Start one now, to fail early when it cannot run here.
            drop(Server::start(spec, o.server_cpu)?);
            eprintln!(
                "{}: runs afresh for every run ({})",
                spec.name,
                spec.program.display()
            );
            servers.push(None);
            continue;
        }
        let s = Server::start(spec, o.server_cpu)?;
        eprintln!(
            "started {}: pid {} port {} ({})",
            spec.name,
            s.pid(),
            s.port,
            spec.program.display()
        );
        servers.push(Some(s));
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
                if specs[i].seed && size > SEED_MAX_SIZE {
                    continue;
                }
                let mut attempt = 1;
                let (r, s) = loop {
                    let fresh;
                    let s = match &servers[i] {
                        Some(s) => s,
                        None => {
                            fresh = Server::start(&specs[i], o.server_cpu)?;
                            std::thread::sleep(Duration::from_millis(50));
                            &fresh
                        }
                    };
                    if o.quiet > 0.0
                        && !crate::machine::wait_quiet(0.15, Duration::from_secs_f64(o.quiet))
                    {
                        eprintln!("note: the machine did not get quiet within {} s", o.quiet);
                    }
                    let r = measure(&o, (&load.0, &load.1), s, conns, size)?;
                    // A run that others disturbed is taken again (a few times at most).
                    if o.busy > 0.0 && r.others > o.busy && attempt < 3 {
                        eprintln!(
                            "{conns}x{size} round {round} {:<12} others used {:.2} CPUs during the \
                             run: again",
                            s.name, r.others
                        );
                        attempt += 1;
                        continue;
                    }
                    break (r, s.name.clone());
                };
                eprintln!(
                    "{conns}x{size} round {round} {:<12} {:>8.0} trips/s {} syscalls/trip {} CPU us/trip \
                     (others' load {:.2} CPUs){}",
                    s,
                    r.tps,
                    r.per_trip.map_or("-".into(), |x| format!("{x:.2}")),
                    r.cpu_us.map_or("-".into(), |x| format!("{x:.2}")),
                    r.others,
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
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    print!("{}", table_md(&names, &table));
    let others: Vec<f64> = table
        .iter()
        .flat_map(|(_, _, runs)| runs.iter().flatten().map(|r| r.others))
        .filter(|x| x.is_finite())
        .collect();
    if !others.is_empty() {
        println!(
            "\nOther processes used {:.2} CPUs at most during a run (median {:.2}).",
            crate::stats::min_max(&others).1,
            crate::stats::median(&others)
        );
    }
    if specs.iter().any(|s| s.seed) {
        println!(
            "\nseed-*: the seed's echo_server.c answers each message with `{SEED_REPLY}` (the load \
             generator checks it) and prints what it read (to /dev/null); a fresh process per run, \
             in a network namespace of its own; n/a: messages over {SEED_MAX_SIZE} bytes."
        );
    }
    for m in &missing {
        println!("{m}");
    }
    drop(servers);
    Ok(())
}

type Row = (usize, usize, Vec<Vec<Run>>);

/// The Markdown table: one column a server, then revent* / epoll and revent* / libevent, the C
/// ABI's (capi / libevent, seed-capi / seed-libevent) and revent-uring / uring (revent on io_uring
/// against the server written directly on the ring).
fn table_md(servers: &[&str], table: &[Row]) -> String {
    let idx = |n: &str| servers.iter().position(|s| *s == n);
    let (ep, le) = (idx("epoll"), idx("libevent"));
    let mut ratios = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if s.starts_with("revent") {
            for (base, j) in [("epoll", ep), ("libevent", le)] {
                if let Some(j) = j {
                    ratios.push((format!("{s} / {base}"), i, j));
                }
            }
        }
    }
    for (a, b) in [
        ("capi", "libevent"),
        ("seed-capi", "seed-libevent"),
        ("revent-uring", "uring"),
    ] {
        if let (Some(i), Some(j)) = (idx(a), idx(b)) {
            ratios.push((format!("{a} / {b}"), i, j));
        }
    }
    let mut md = String::from("| conns x bytes |");
    for s in servers {
        md += &format!(" {s} |");
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
            if rs.is_empty() {
                md += " n/a |";
                continue;
            }
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
