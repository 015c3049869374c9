//! `memcached`: Debian's memcached on Debian's libevent and on revent's C ABI, under memcaslap.
//!
//! The same `/usr/bin/memcached` binary twice: `libevent` as installed, `capi` with
//! `LD_LIBRARY_PATH` set to revent's libraries (see [`crate::capi`]; the process is checked to map
//! libevent from there only). Each listens on a free port of 127.0.0.1 (`-l 127.0.0.1 -p PORT -U 0
//! -t THREADS`), pinned to one CPU with every thread; `memcaslap -s 127.0.0.1:PORT -T 1 -c CONC -t Ns
//! -v VERIFY` (libmemcached-tools: 9 gets to 1 set, verifying that share of the values) runs on another
//! CPU, alternating between the servers round by round (the order rotated). Each run: ops/s as
//! memcaslap counts them; syscalls per op from `perf stat -p PID` (all threads) switched on and off
//! around the memcaslap run, divided by its ops; the server's CPU time per op (/proc/PID/stat). A run
//! with a failed verification is not a result.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::child::{perf_available, perf_supports, PerfSession, Res};
use crate::stats::{cell, median, min_max, ratio};

const USAGE: &str = "\
usage: revent-bench memcached [options]
  --secs 3            seconds per memcaslap run (-t)
  --rounds 5          interleaved rounds (median reported)
  --warmup 1          seconds of an untimed memcaslap run against each server first (its first run
                      fills an empty cache; 0: none)
  --conc 64           memcaslap concurrency (-c; one thread, -T 1)
  --verify 0.1        share of the values memcaslap verifies (-v); a run with a failure is not a result
  --threads 1         memcached worker threads (-t; memcached's default is 4, but the server has one
                      CPU here)
  --servers libevent,capi
  --server-cpu 0      CPU of the servers (all their threads), or `none`
  --client-cpu 1      CPU of memcaslap, or `none`
  --memcached PATH    default: memcached on PATH (apt-get install memcached)
  --no-perf           skip the syscall counts
  --quiet-wait 30     before each run, wait up to this many seconds for the machine to be quiet
                      (other processes using < 0.15 CPUs over 0.25 s); 0: do not wait
  --busy 0.3          a run during which other processes used more than this many CPUs is taken
                      again, up to twice (0: never)
";

const KINDS: [&str; 2] = ["libevent", "capi"];

/// The syscall tracepoints counted besides the total, when the kernel has them.
const SPLIT: [&str; 3] = [
    "syscalls:sys_enter_epoll_ctl",
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_epoll_pwait",
];

/// A memcached child; killed when dropped.
struct Server {
    name: String,
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill takes no pointers; the pid is our unreaped child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 nothing listens on (the kernel's pick; free again once this returns).
fn free_port() -> Res<u16> {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

fn taskset(cpu: Option<usize>, program: &Path) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Starts memcached (on revent's libraries from `capi` when given) and waits until it accepts; then
/// checks its libevent against `want`.
fn start(
    name: &str,
    memcached: &Path,
    threads: usize,
    cpu: Option<usize>,
    capi: Option<&Path>,
    want: Option<&crate::capi::Maps>,
) -> Res<Server> {
    let port = free_port()?;
    let mut cmd = taskset(cpu, memcached);
    cmd.args(["-l", "127.0.0.1", "-U", "0", "-p", &port.to_string()])
        .args(["-t", &threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // memcached refuses to run as root unless told which user to be.
        cmd.args(["-u", "root"]);
    }
    if let Some(dir) = capi {
        cmd.envs(crate::capi::env(dir));
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", memcached.display()))?;
    let mut server = Server {
        name: name.to_string(),
        child,
        port,
    };
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let t0 = Instant::now();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("{name}: memcached exited ({status})").into());
        }
        if TcpStream::connect(addr).is_ok() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(5) {
            return Err(format!("{name}: memcached does not accept on {addr} after 5 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(want) = want {
        crate::capi::check_maps(name, server.child.id(), want)?;
    }
    Ok(server)
}

/// One memcaslap run against one server.
#[derive(Clone, Debug)]
struct Run {
    ops_per_s: f64,
    /// All syscalls, then one per SPLIT entry, per op; empty without perf.
    sys: Vec<f64>,
    cpu_us: Option<f64>,
    verify_failed: u64,
    /// CPUs' worth of time other processes used during the run.
    others: f64,
}

fn field(text: &str, key: &str) -> Option<f64> {
    text.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn measure(
    srv: &Server,
    secs: u64,
    conc: usize,
    verify: f64,
    cpu: Option<usize>,
    events: Option<&[&str]>,
) -> Res<Run> {
    let pid = srv.child.id();
    let mut perf = match events {
        Some(ev) => Some(PerfSession::attach(pid, ev)?),
        None => None,
    };
    if let Some(p) = perf.as_mut() {
        p.enable()?;
    }
    let cpu0 = crate::echo::cpu_time(pid);
    let load = crate::machine::OthersLoad::start(&[pid]);
    let out = taskset(cpu, Path::new("memcaslap"))
        .arg("-s")
        .arg(format!("127.0.0.1:{}", srv.port))
        .args(["-T", "1", "-c", &conc.to_string()])
        .arg("-t")
        .arg(format!("{secs}s"))
        .arg("-v")
        .arg(verify.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run memcaslap: {e} (apt-get install libmemcached-tools)"))?;
    let others = load.end(&[pid]);
    let cpu1 = crate::echo::cpu_time(pid);
    let counts = match perf {
        Some(p) => p.finish()?,
        None => Vec::new(),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "Run time: 2.0s Ops: 241800 TPS: 120891 Net_rate: 135.2M/s"
    let (Some(ops), Some(tps)) = (field(&text, "Ops:"), field(&text, "TPS:")) else {
        return Err(format!(
            "{}: no result from memcaslap ({}): {text}",
            srv.name, out.status
        )
        .into());
    };
    let verify_failed = field(&text, "verify_failed:").unwrap_or(f64::NAN);
    if !verify_failed.is_finite() {
        return Err(format!("{}: memcaslap printed no verify_failed: {text}", srv.name).into());
    }
    let ops = ops.max(1.0);
    Ok(Run {
        ops_per_s: tps,
        sys: counts.iter().map(|&c| c as f64 / ops).collect(),
        cpu_us: match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some((b - a) * 1e6 / ops),
            _ => None,
        },
        verify_failed: verify_failed as u64,
        others,
    })
}

pub fn run(args: &[String]) -> Res<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}{}", crate::capi::USAGE_LINE);
        return Ok(());
    }
    let opts = Args::parse(
        args,
        &[
            "--secs",
            "--rounds",
            "--warmup",
            "--conc",
            "--verify",
            "--threads",
            "--servers",
            "--server-cpu",
            "--client-cpu",
            "--memcached",
            "--capi-libs",
            "--quiet-wait",
            "--busy",
        ],
        &["--no-perf"],
    )
    .map_err(|e| format!("{e}\n{USAGE}{}", crate::capi::USAGE_LINE))?;
    let secs: u64 = opts.num("--secs", 3)?;
    let rounds: usize = opts.num("--rounds", 5)?;
    let warmup: u64 = opts.num("--warmup", 1)?;
    let quiet = Duration::from_secs_f64(opts.num("--quiet-wait", 30.0)?);
    let busy: f64 = opts.num("--busy", 0.3)?;
    let conc: usize = opts.num("--conc", 64)?;
    let verify: f64 = opts.num("--verify", 0.1)?;
    let threads: usize = opts.num("--threads", 1)?;
    let kinds = opts.words("--servers", &KINDS);
    let cpu = |name: &str, default: &str| -> Res<Option<usize>> {
        match opts.str(name).unwrap_or(default) {
            "none" => Ok(None),
            c => Ok(Some(
                c.parse().map_err(|_| format!("{name}: bad CPU {c:?}"))?,
            )),
        }
    };
    let (server_cpu, client_cpu) = (cpu("--server-cpu", "0")?, cpu("--client-cpu", "1")?);
    for k in &kinds {
        if !KINDS.contains(&k.as_str()) {
            return Err(format!("unknown server {k:?} (one of {KINDS:?})").into());
        }
    }
    if secs == 0 || rounds == 0 || conc == 0 || threads == 0 {
        return Err(format!("need positive --secs, --rounds, --conc, --threads\n{USAGE}").into());
    }
    let memcached = match opts.str("--memcached") {
        Some(p) => PathBuf::from(p),
        None => which("memcached").ok_or("no memcached on PATH: apt-get install memcached")?,
    };
    which("memcaslap").ok_or("no memcaslap on PATH: apt-get install libmemcached-tools")?;

    let perf = !opts.flag("--no-perf") && perf_available();
    if !opts.flag("--no-perf") && !perf {
        eprintln!(
            "note: `perf stat -e raw_syscalls:sys_enter` does not work here; no syscall counts"
        );
    }
    let mut events = vec!["raw_syscalls:sys_enter"];
    if perf && perf_supports(&SPLIT) {
        events.extend(SPLIT);
    }

    let capi = if kinds.iter().any(|k| k == "capi") {
        let dir = crate::capi::libs(opts.str("--capi-libs"))?;
        crate::capi::preflight(&memcached, &dir)
            .map_err(|e| format!("capi: not available: {e}"))?;
        Some(dir)
    } else {
        None
    };
    crate::sys::raise_nofile(conc as u64 + 256)?;

    let machine = crate::machine::describe();
    eprintln!("memcached: {machine}");
    let mut servers = Vec::new();
    for k in &kinds {
        let (dir, want) = match (k.as_str(), &capi) {
            ("capi", Some(d)) => (Some(d.as_path()), Some(crate::capi::Maps::From(d.clone()))),
            (_, d) => (None, d.clone().map(crate::capi::Maps::NotFrom)),
        };
        let s = start(k, &memcached, threads, server_cpu, dir, want.as_ref())?;
        eprintln!("started {k}: pid {} port {}", s.child.id(), s.port);
        servers.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    if warmup > 0 {
        for s in &servers {
            let run = measure(s, warmup, conc, verify, client_cpu, None)?;
            eprintln!("warm-up {:<9} {:>8.0} ops/s", s.name, run.ops_per_s);
        }
    }

    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); servers.len()];
    for r in 0..rounds {
        for j in 0..servers.len() {
            let i = (r + j) % servers.len();
            let s = &servers[i];
            let mut attempt = 1;
            let run = loop {
                if !quiet.is_zero() && !crate::machine::wait_quiet(0.15, quiet) {
                    eprintln!(
                        "note: the machine did not get quiet within {quiet:?}; measuring anyway"
                    );
                }
                let run = measure(
                    s,
                    secs,
                    conc,
                    verify,
                    client_cpu,
                    perf.then_some(&events[..]),
                )?;
                // A run that others disturbed is taken again (a few times at most).
                if busy > 0.0 && run.others > busy && attempt < 3 {
                    eprintln!(
                        "round {} {:<9} others used {:.2} CPUs during the run: again",
                        r + 1,
                        s.name,
                        run.others
                    );
                    attempt += 1;
                    continue;
                }
                break run;
            };
            eprintln!(
                "round {} {:<9} {:>8.0} ops/s (others' load {:.2} CPUs)  {} syscalls/op  {} CPU \
                 µs/op  verify_failed {}{}",
                r + 1,
                s.name,
                run.ops_per_s,
                run.others,
                cell(run.sys.first().copied(), 3),
                cell(run.cpu_us, 2),
                run.verify_failed,
                if run.verify_failed > 0 {
                    "  NOT A RESULT"
                } else {
                    ""
                }
            );
            runs[i].push(run);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    drop(servers);

    println!(
        "\nmemcached {} (-t {threads}) on CPU {}, memcaslap -T 1 -c {conc} -t {secs}s -v {verify} on \
         CPU {}; {rounds} interleaved rounds; {machine}",
        version(&memcached),
        show_cpu(server_cpu),
        show_cpu(client_cpu)
    );
    println!(
        "libevent: Debian's libevent; capi: the same memcached binary on revent's libraries \
         (LD_LIBRARY_PATH). ops/s: median [min-max]; per op (medians): syscalls of the server, all \
         threads (perf stat -p), of which epoll_ctl and epoll_wait; the server's CPU time (user + \
         system). Runs with a failed verification are left out.\n"
    );
    println!(
        "| server | ops/s | syscalls/op | epoll_ctl/op | epoll_wait/op | CPU µs/op | runs (failed) | \
         others' load, max CPUs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let good = |rs: &[Run]| -> Vec<Run> {
        rs.iter()
            .filter(|r| r.verify_failed == 0)
            .cloned()
            .collect()
    };
    let med = |rs: &[Run], f: &dyn Fn(&Run) -> Option<f64>| -> Option<f64> {
        let xs: Vec<f64> = good(rs).iter().filter_map(f).collect();
        (!xs.is_empty()).then(|| median(&xs))
    };
    for (i, name) in names.iter().enumerate() {
        let rs = &runs[i];
        let ops: Vec<f64> = good(rs).iter().map(|r| r.ops_per_s).collect();
        let (lo, hi) = min_max(&ops);
        let split = SPLIT.len() + 1;
        println!(
            "| {name} | {} [{}-{}] | {} | {} | {} | {} | {} ({}) | {} |",
            kilo(median(&ops)),
            kilo(lo),
            kilo(hi),
            cell(med(rs, &|r| r.sys.first().copied()), 3),
            cell(med(rs, &|r| (r.sys.len() == split).then(|| r.sys[1])), 3),
            cell(
                med(rs, &|r| (r.sys.len() == split).then(|| r.sys[2] + r.sys[3])),
                3
            ),
            cell(med(rs, &|r| r.cpu_us), 2),
            rs.len(),
            rs.len() - good(rs).len(),
            cell(
                Some(min_max(&rs.iter().map(|r| r.others).collect::<Vec<_>>()).1),
                2
            )
        );
    }
    if let (Some(c), Some(l)) = (
        names.iter().position(|n| n == "capi"),
        names.iter().position(|n| n == "libevent"),
    ) {
        let per_round: Vec<f64> = runs[c]
            .iter()
            .zip(&runs[l])
            .filter(|(a, b)| a.verify_failed == 0 && b.verify_failed == 0)
            .map(|(a, b)| a.ops_per_s / b.ops_per_s)
            .collect();
        let (lo, hi) = min_max(&per_round);
        println!(
            "\ncapi / libevent: {}x ops/s (per round: median {}, {}-{}); syscalls per op {} against {}",
            cell(
                ratio(
                    med(&runs[c], &|r| Some(r.ops_per_s)),
                    med(&runs[l], &|r| Some(r.ops_per_s))
                ),
                3
            ),
            cell(Some(median(&per_round)), 3),
            cell(Some(lo), 3),
            cell(Some(hi), 3),
            cell(med(&runs[c], &|r| r.sys.first().copied()), 3),
            cell(med(&runs[l], &|r| r.sys.first().copied()), 3),
        );
    }
    Ok(())
}

fn show_cpu(c: Option<usize>) -> String {
    c.map_or("any (not pinned)".to_string(), |c| c.to_string())
}

/// `812k`.
fn kilo(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}k", x / 1e3)
    } else {
        "-".to_string()
    }
}

/// `memcached -V`'s answer, e.g. `1.6.18`.
fn version(memcached: &Path) -> String {
    Command::new(memcached)
        .arg("-V")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches("memcached ")
                .to_string()
        })
        .unwrap_or_default()
}

/// The first `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
