//! The TLS benchmark (issue 12): TLS echo and handshakes per second, side by side: `revent echo
//! --tls` (revent's rustls kind), C libevent with libevent_openssl, and the same C program on
//! revent's C ABI (revent's libevent_openssl over the system's OpenSSL).
//!
//! `revent-bench tls [options]` makes a certificate for `localhost` (rcgen, ECDSA P-256) in a
//! temporary directory, starts every server once, pinned to one CPU, and drives each with
//! `tls-load` (this program, pinned to another CPU), interleaved: for each row, round after round,
//! every server once, the order rotated by one place each round. Rows: every CONNSxSIZE echo row
//! (handshakes first, then trips of SIZE bytes, byte-verified) and one handshake row (full
//! handshakes, no resumption, one 64-byte echo each, then close_notify). During each run
//! `perf stat -e raw_syscalls:sys_enter -p SERVER` counts the server's system calls and
//! /proc/PID/stat its CPU time; each divided by the trips (handshakes) gives syscalls and CPU µs per
//! trip (handshake). A run with errors or wrong bytes is reported and left out of the medians.
//!
//! The contenders: `libevent` is `c/echo_libevent_tls.c` against Debian's libevent and OpenSSL;
//! `capi` is the same binary with `LD_LIBRARY_PATH` on revent's libraries (see [`crate::capi`]);
//! `revent` is `revent echo --addr 127.0.0.1 --tls CERT KEY --port P`. An entry `NAME=PATH` runs
//! another `revent`-like binary the same way.

mod load;

use crate::server::{Cost, Server, Spec};
use crate::sidebyside::{interleave, Run};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The subcommands this module serves: `tls`, `tls-load`.
pub fn dispatch(cmd: &str, args: &[String]) -> Result<(), String> {
    match cmd {
        "tls" => run(args),
        "tls-load" => load::run(args),
        _ => Err(format!("unknown tls subcommand {cmd:?}")),
    }
}

const HELP: &str = "\
usage: revent-bench tls [options]
  TLS echo servers side by side: trips/s and handshakes/s, syscalls and server CPU per trip.
  --servers LIST  of revent,libevent,capi (default all three): revent = `revent echo --tls`
                  (rustls); libevent = c/echo_libevent_tls.c on Debian's libevent and
                  libevent_openssl (apt-get install libevent-dev libssl-dev); capi = that binary
                  on revent's C ABI. An entry NAME=PATH runs another revent-like binary
  --rows R        echo rows, connections x bytes, comma-separated (default 50x64,50x16384)
  --handshake-conns N  concurrent clients of the handshake row (default 50; 0: no such row)
  --secs D        seconds per run (default 2)
  --rounds N      interleaved rounds (default 3)
  --revent PATH   the revent binary (default: `cargo build --release -p revent-cli`, then
                  target/release/revent)
  --capi-libs DIR revent's libraries for the capi contender (see `echo --help`)
  --server-cpu N  CPU for the servers (default 0)
  --client-cpu N  CPU for the load generator (default 1)
  --no-perf       skip the syscall counts
  --quiet-wait S  before each run, wait up to S seconds for the machine to be quiet (default 10;
                  0: do not wait)";

struct Opts {
    servers: Vec<String>,
    rows: Vec<(usize, usize)>,
    handshake_conns: usize,
    secs: f64,
    rounds: usize,
    revent: Option<PathBuf>,
    capi_libs: Option<String>,
    server_cpu: usize,
    client_cpu: usize,
    perf: bool,
    quiet: f64,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let a = crate::args::Args::parse(
        args,
        &[
            "--servers",
            "--rows",
            "--handshake-conns",
            "--secs",
            "--rounds",
            "--revent",
            "--capi-libs",
            "--server-cpu",
            "--client-cpu",
            "--quiet-wait",
        ],
        &["--no-perf", "-h", "--help"],
    )
    .map_err(|e| format!("{e}\n{HELP}"))?;
    if a.flag("-h") || a.flag("--help") {
        println!("{HELP}");
        std::process::exit(0);
    }
    let servers = a.words("--servers", &["revent", "libevent", "capi"]);
    if let Some(s) = servers
        .iter()
        .find(|s| !["revent", "libevent", "capi"].contains(&s.as_str()) && !s.contains('='))
    {
        return Err(format!(
            "unknown server {s:?} (revent, libevent, capi, NAME=PATH)"
        ));
    }
    let rows = a
        .words("--rows", &["50x64", "50x16384"])
        .iter()
        .map(|r| {
            let (c, s) = r.split_once('x').ok_or(format!("bad row {r:?}"))?;
            match (c.parse(), s.parse()) {
                (Ok(c), Ok(s)) if c > 0 && s > 0 => Ok((c, s)),
                _ => Err(format!("bad row {r:?}")),
            }
        })
        .collect::<Result<_, String>>()?;
    let secs: f64 = a.num("--secs", 2.0)?;
    let quiet: f64 = a.num("--quiet-wait", 10.0)?;
    if !(secs.is_finite() && secs > 0.0 && quiet.is_finite() && quiet >= 0.0) {
        return Err("--secs must be positive, --quiet-wait 0 or more".into());
    }
    Ok(Opts {
        servers,
        rows,
        handshake_conns: a.num("--handshake-conns", 50)?,
        secs,
        rounds: a.num("--rounds", 3usize)?.max(1),
        revent: a.str("--revent").map(PathBuf::from),
        capi_libs: a.str("--capi-libs").map(String::from),
        server_cpu: a.num("--server-cpu", 0)?,
        client_cpu: a.num("--client-cpu", 1)?,
        perf: !a.flag("--no-perf"),
        quiet,
    })
}

/// The temporary directory with the certificate and key; removed on drop.
struct Workdir(PathBuf);

impl Workdir {
    /// Makes the directory and a self-signed certificate for `localhost` in it.
    fn new() -> Result<Workdir, String> {
        let dir = std::env::temp_dir().join(format!("revent-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let w = Workdir(dir);
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .and_then(|p| p.self_signed(&key))
            .map_err(|e| e.to_string())?;
        std::fs::write(w.cert(), cert.pem()).map_err(|e| e.to_string())?;
        std::fs::write(w.key(), key.serialize_pem()).map_err(|e| e.to_string())?;
        Ok(w)
    }

    fn cert(&self) -> PathBuf {
        self.0.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.0.join("key.pem")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server to start, and which libevent it must map once started.
struct Contender {
    spec: Spec,
    maps: Option<crate::capi::Maps>,
}

fn contenders(o: &Opts, w: &Workdir) -> Result<Vec<Contender>, String> {
    let (cert, key) = (
        w.cert().display().to_string(),
        w.key().display().to_string(),
    );
    let c_prog = || {
        crate::cref::try_build(
            "echo_libevent_tls",
            &["-levent", "-levent_openssl", "-lssl", "-lcrypto"],
        )
    };
    let capi_dir = if o.servers.iter().any(|s| s == "capi") {
        Some(crate::capi::libs(o.capi_libs.as_deref())?)
    } else {
        None
    };
    let mut out = Vec::new();
    for name in &o.servers {
        let c_spec = |prog: PathBuf, env| Spec {
            name: name.clone(),
            program: prog,
            args: vec!["0".into(), cert.clone(), key.clone()],
            env,
            prints_port: true,
        };
        let c = match name.split_once('=') {
            Some((label, path)) => Contender {
                spec: revent_spec(label, Path::new(path), &cert, &key)?,
                maps: None,
            },
            None => match name.as_str() {
                "libevent" => Contender {
                    spec: c_spec(c_prog()?, Vec::new()),
                    maps: capi_dir
                        .as_ref()
                        .map(|d| crate::capi::Maps::NotFrom(d.clone())),
                },
                "capi" => {
                    let dir = capi_dir.clone().expect("made above for capi");
                    let prog = c_prog()?;
                    crate::capi::preflight(&prog, &dir)
                        .map_err(|e| format!("capi: not available: {e}"))?;
                    Contender {
                        spec: c_spec(prog, crate::capi::env(&dir)),
                        maps: Some(crate::capi::Maps::From(dir)),
                    }
                }
                "revent" => {
                    let bin = match &o.revent {
                        Some(p) => p.clone(),
                        None => crate::echo::revent_binary()?,
                    };
                    Contender {
                        spec: revent_spec(name, &bin, &cert, &key)?,
                        maps: None,
                    }
                }
                _ => unreachable!("checked by parse"),
            },
        };
        out.push(c);
    }
    Ok(out)
}

/// `BIN echo --addr 127.0.0.1 --tls CERT KEY --port P`, once `BIN echo --help` shows `--tls`.
fn revent_spec(name: &str, bin: &Path, cert: &str, key: &str) -> Result<Spec, String> {
    let out = Command::new(bin)
        .args(["echo", "--help"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{name}: cannot run {}: {e}", bin.display()))?;
    let help = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !help.contains("--tls") {
        return Err(format!(
            "{name}: `{} echo` has no --tls option; run the other contenders: --servers \
             libevent,capi",
            bin.display()
        ));
    }
    Ok(Spec {
        name: name.into(),
        program: bin.to_path_buf(),
        args: ["echo", "--addr", "127.0.0.1", "--tls", cert, key]
            .map(String::from)
            .to_vec(),
        env: Vec::new(),
        prints_port: false,
    })
}

/// One row of the table.
#[derive(Clone, Copy)]
enum Row {
    Echo { conns: usize, size: usize },
    Handshakes { conns: usize },
}

impl Row {
    fn label(&self) -> String {
        match self {
            Row::Echo { conns, size } => format!("echo {conns} x {size}"),
            Row::Handshakes { conns } => format!("handshakes, {conns} clients"),
        }
    }
}

/// The `key=value` words of tls-load's line.
fn fields(line: &str) -> std::collections::BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn measure(o: &Opts, w: &Workdir, srv: &Server, row: Row) -> Result<(Run, String), String> {
    let cost = Cost::start(srv, o.perf, &w.0)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(o.client_cpu.to_string())
        .arg(exe)
        .arg("tls-load")
        .arg("127.0.0.1")
        .arg(srv.port.to_string());
    match row {
        Row::Echo { conns, size } => cmd.arg(conns.to_string()).arg(size.to_string()),
        Row::Handshakes { conns } => cmd.arg(conns.to_string()).arg("64"),
    };
    cmd.arg(o.secs.to_string()).arg(w.cert());
    if let Row::Handshakes { .. } = row {
        cmd.arg("--handshakes");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tls-load: {e}"))?;
    let (syscalls, cpu) = cost.finish()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let kv = fields(text.lines().last().unwrap_or(""));
    let key = match row {
        Row::Echo { .. } => ("trips", "trips_per_s"),
        Row::Handshakes { .. } => ("handshakes", "handshakes_per_s"),
    };
    let (Some(ops), Some(rate)) = (kv.get(key.0), kv.get(key.1)) else {
        return Err(format!(
            "tls-load against {}: no result ({}): {text}{}",
            srv.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    };
    let (ops, rate): (f64, f64) = (
        ops.parse().map_err(|_| "bad count")?,
        rate.parse().map_err(|_| "bad rate")?,
    );
    let bad = !out.status.success()
        || kv.get("errors").is_some_and(|e| *e != "0")
        || kv.get("mismatches").is_some_and(|e| *e != "0");
    let suite = kv.get("suite").map_or(String::new(), |s| s.to_string());
    let ops = ops.max(1.0);
    Ok((
        Run {
            rate,
            per_op: syscalls.map(|s| s as f64 / ops),
            cpu_us: cpu.map(|c| c * 1e6 / ops),
            bad,
        },
        suite,
    ))
}

fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    crate::sys::raise_nofile(4096).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let work = Workdir::new()?;
    let cs = contenders(&o, &work)?;
    let mut servers = Vec::new();
    for c in &cs {
        let srv = Server::start(&c.spec, o.server_cpu)?;
        if let Some(m) = &c.maps {
            crate::capi::check_maps(&c.spec.name, srv.pid(), m)?;
        }
        eprintln!(
            "started {}: pid {} port {} ({})",
            c.spec.name,
            srv.pid(),
            srv.port,
            c.spec.program.display()
        );
        servers.push(srv);
    }
    let mut rows: Vec<Row> = o
        .rows
        .iter()
        .map(|&(conns, size)| Row::Echo { conns, size })
        .collect();
    if o.handshake_conns > 0 {
        rows.push(Row::Handshakes {
            conns: o.handshake_conns,
        });
    }
    let names: Vec<&str> = cs.iter().map(|c| c.spec.name.as_str()).collect();
    let mut suites: Vec<String> = Vec::new();
    let mut table = Vec::new();
    for &row in &rows {
        let runs = interleave(
            servers.len(),
            o.rounds,
            o.quiet,
            &row.label(),
            &names,
            |i| {
                let (r, suite) = measure(&o, &work, &servers[i], row)?;
                let seen = format!("{}: {suite}", names[i]);
                if !suites.contains(&seen) {
                    suites.push(seen);
                }
                Ok(r)
            },
        )?;
        table.push((row.label(), runs));
    }
    println!(
        "tls, tls-load (rustls client, tokio current-thread) for {} s a run, {} interleaved rounds, \
         servers on CPU {}, client on CPU {}; certificate ECDSA P-256; {}",
        o.secs,
        o.rounds,
        o.server_cpu,
        o.client_cpu,
        crate::machine::describe()
    );
    println!("Negotiated: {}", suites.join(", "));
    println!(
        "Each cell: median trips/s (handshakes/s); syscalls per trip (handshake) on the server \
         (perf raw_syscalls:sys_enter); the server's CPU time per trip (handshake) in µs (user + \
         system). Ratios are of the medians.\n"
    );
    print!(
        "{}",
        crate::sidebyside::table(&names, &table, &["libevent"])
    );
    drop(servers);
    Ok(())
}
