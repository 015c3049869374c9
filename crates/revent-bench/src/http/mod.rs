//! The HTTP benchmark (issue 10): `revent http` against C libevent's evhttp and hyper, under `wrk`.
//!
//! `revent-bench http [options]` writes a 1 MiB file and wrk's pipelining script into a temporary
//! directory, starts every server as a child process on 127.0.0.1, pinned to one CPU (`taskset`), checks
//! that each answers `/plaintext` with `Hello, World!` and `/1mb.bin` with the file's exact bytes, and
//! then drives each with `wrk` (one thread, pinned to another CPU), interleaved: for each row, round
//! after round, every server once, the order rotated by one place each round. Rows: every
//! connection count times every pipelining depth on `/plaintext`, and one row fetching `/1mb.bin`.
//! During each run `perf stat -e raw_syscalls:sys_enter -p SERVER` counts the server's system calls
//! and /proc/PID/stat its CPU time (user + system); each divided by the requests wrk counted gives
//! syscalls and CPU µs per request. A run where wrk saw socket errors or non-2xx answers is reported
//! and left out of the medians. Prints a Markdown table of the medians and the ratios. With
//! `--paired`, two servers are loaded at once on the one server CPU, each by its own wrk, and the
//! table compares their CPU per request round by round: noise that slows the machine slows both.
//!
//! The contenders: `libevent` is `c/http_libevent.c` (evhttp, `evhttp_set_gencb`, the file with
//! `evbuffer_add_file`) against Debian's libevent; `hyper` is this program's `http-server-hyper`
//! (hyper 1, tokio current-thread); `revent` is `revent http --port P --threads 1 --dir DIR` of
//! revent-cli. An entry `NAME=PATH` runs another `revent`-like binary the same way.

mod hyper_server;

use crate::server::{Cost, Server, Spec};
use crate::sidebyside::{interleave, Run};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The subcommands this module serves: `http`, `http-server-hyper`.
pub fn dispatch(cmd: &str, args: &[String]) -> Result<(), String> {
    match cmd {
        "http" => run(args),
        "http-server-hyper" => hyper_server::run(args),
        _ => Err(format!("unknown http subcommand {cmd:?}")),
    }
}

const HELP: &str = "\
usage: revent-bench http [options]
  Plaintext HTTP servers under wrk (apt-get install wrk), side by side: requests/s, syscalls
  per request (perf) and server CPU per request, one server core.
  --servers LIST  of libevent,hyper,revent (default all three): libevent = c/http_libevent.c on
                  Debian's libevent (apt-get install libevent-dev); hyper = hyper 1 on tokio's
                  current-thread runtime; revent = `revent http --port P --threads 1 --dir DIR`
                  (fails with a message if that binary has no `http` subcommand). An entry
                  NAME=PATH runs another revent-like binary the same way
  --conns LIST    keep-alive connections of the /plaintext rows (default 50,256)
  --depths LIST   pipelining depths of the /plaintext rows (default 1,16; wrk pipelines through a
                  Lua script the harness writes)
  --big-conns N   connections of the 1 MiB row (GET /1mb.bin; default 50; 0: no such row)
  --secs D        seconds per wrk run (default 3)
  --rounds N      interleaved rounds (default 3)
  --revent PATH   the revent binary (default: `cargo build --release -p revent-cli`, then
                  target/release/revent)
  --wrk PATH      the wrk binary (default wrk)
  --server-cpu N  CPU for the servers (default 0)
  --client-cpu N  CPU for wrk (default 1)
  --no-perf       skip the syscall counts
  --paired        two servers only: both on the server CPU at once, each under its own wrk on the
                  client CPU, for the same seconds; reports each one's server CPU per request
                  and their ratio per round. The scheduler shares the CPU between them, and
                  whatever else slows the machine slows both alike: a difference of 1% shows
                  where separate runs vary by 10%
  --quiet-wait S  before each run, wait up to S seconds for the machine to be quiet (default 10;
                  0: do not wait)
example: revent-bench http --servers libevent,hyper --conns 50 --depths 1,16 --secs 2";

struct Opts {
    servers: Vec<String>,
    conns: Vec<usize>,
    depths: Vec<usize>,
    big_conns: usize,
    secs: u64,
    rounds: usize,
    revent: Option<PathBuf>,
    wrk: String,
    server_cpu: usize,
    client_cpu: usize,
    perf: bool,
    quiet: f64,
    paired: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        servers: ["libevent", "hyper", "revent"].map(String::from).to_vec(),
        conns: vec![50, 256],
        depths: vec![1, 16],
        big_conns: 50,
        secs: 3,
        rounds: 3,
        revent: None,
        wrk: "wrk".into(),
        server_cpu: 0,
        client_cpu: 1,
        perf: true,
        quiet: 10.0,
        paired: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        let num = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad {flag} {v:?}"))
        };
        match flag.as_str() {
            "--servers" => {
                o.servers = value()?.split(',').map(String::from).collect();
                if let Some(s) = o.servers.iter().find(|s| {
                    !["libevent", "hyper", "revent"].contains(&s.as_str()) && !s.contains('=')
                }) {
                    return Err(format!(
                        "unknown server {s:?} (libevent, hyper, revent, NAME=PATH)"
                    ));
                }
            }
            "--conns" => o.conns = value()?.split(',').map(num).collect::<Result<_, _>>()?,
            "--depths" => o.depths = value()?.split(',').map(num).collect::<Result<_, _>>()?,
            "--big-conns" => o.big_conns = num(&value()?)?,
            "--secs" => o.secs = num(&value()?)?.max(1) as u64,
            "--rounds" => o.rounds = num(&value()?)?.max(1),
            "--revent" => o.revent = Some(value()?.into()),
            "--wrk" => o.wrk = value()?,
            "--server-cpu" => o.server_cpu = num(&value()?)?,
            "--client-cpu" => o.client_cpu = num(&value()?)?,
            "--no-perf" => o.perf = false,
            "--paired" => o.paired = true,
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
    if o.conns.contains(&0) || o.depths.contains(&0) {
        return Err("--conns and --depths must be positive".into());
    }
    if o.paired && o.servers.len() != 2 {
        return Err("--paired needs exactly two --servers".into());
    }
    Ok(o)
}

/// The 1 MiB file's bytes: a pattern no server could produce by accident.
fn file_bytes() -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// wrk's pipelining: `depth` requests in one write, every response counted.
const PIPELINE_LUA: &str = "\
init = function(args)
  local depth = tonumber(args[1]) or 1
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format()
  end
  req = table.concat(r)
end

request = function()
  return req
end
";

/// The temporary directory with the file and the script; removed on drop.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Result<Workdir, String> {
        let dir = std::env::temp_dir().join(format!("revent-bench-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let w = Workdir(dir);
        std::fs::write(w.0.join("1mb.bin"), file_bytes()).map_err(|e| e.to_string())?;
        std::fs::write(w.0.join("pipeline.lua"), PIPELINE_LUA).map_err(|e| e.to_string())?;
        Ok(w)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec(name: &str, o: &Opts, dir: &Path) -> Result<Spec, String> {
    let dir_s = dir.display().to_string();
    if let Some((label, path)) = name.split_once('=') {
        return revent_spec(label, Path::new(path), &dir_s);
    }
    match name {
        "libevent" => Ok(Spec {
            name: name.into(),
            program: crate::cref::try_build("http_libevent", &["-levent"])?,
            args: vec!["0".into(), dir_s],
            env: Vec::new(),
            prints_port: true,
        }),
        "hyper" => Ok(Spec {
            name: name.into(),
            program: std::env::current_exe().map_err(|e| e.to_string())?,
            args: vec!["http-server-hyper".into(), "0".into(), dir_s],
            env: Vec::new(),
            prints_port: true,
        }),
        "revent" => {
            let bin = match &o.revent {
                Some(p) => p.clone(),
                None => crate::echo::revent_binary()?,
            };
            revent_spec(name, &bin, &dir_s)
        }
        _ => unreachable!("checked by parse"),
    }
}

/// `BIN http --port P --threads 1 --dir DIR`, once `BIN http --help` shows the subcommand exists.
fn revent_spec(name: &str, bin: &Path, dir: &str) -> Result<Spec, String> {
    let out = Command::new(bin)
        .args(["http", "--help"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{name}: cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{name}: {} has no `http` subcommand (`{} http --help` failed: {}). It comes with \
             revent-http's server; until then run the other contenders: --servers libevent,hyper",
            bin.display(),
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("no message")
        ));
    }
    Ok(Spec {
        name: name.into(),
        program: bin.to_path_buf(),
        args: ["http", "--threads", "1", "--dir", dir]
            .map(String::from)
            .to_vec(),
        env: Vec::new(),
        prints_port: false,
    })
}

/// One GET with `Connection: close`: the status and the body (Content-Length, chunked or until
/// close).
fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| e.to_string())?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete head")?;
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let mut body = all[end + 4..].to_vec();
    if let Some(cl) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
        let n: usize = cl.trim().parse().map_err(|_| "bad Content-Length")?;
        if body.len() < n {
            return Err(format!("short body: {} of {n} bytes", body.len()));
        }
        body.truncate(n);
    } else if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body).ok_or("bad chunked body")?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&b[..eol]).ok()?;
        let n = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..n)?);
        b = b.get(n + 2..)?;
    }
}

/// Checks the server's answers before it is measured: the benchmark counts only correct ones.
fn verify(s: &Server, file: &[u8]) -> Result<(), String> {
    let (status, body) =
        get(s.addr(), "/plaintext").map_err(|e| format!("{}: /plaintext: {e}", s.name))?;
    if status != 200 || body != b"Hello, World!" {
        return Err(format!(
            "{}: /plaintext answered {status} {:?}",
            s.name,
            String::from_utf8_lossy(&body[..body.len().min(64)])
        ));
    }
    let (status, body) =
        get(s.addr(), "/1mb.bin").map_err(|e| format!("{}: /1mb.bin: {e}", s.name))?;
    if status != 200 || body != file {
        return Err(format!(
            "{}: /1mb.bin answered {status} with {} bytes that are not the file",
            s.name,
            body.len()
        ));
    }
    Ok(())
}

/// One row of the table.
#[derive(Clone, Copy)]
struct Row {
    conns: usize,
    depth: usize,
    big: bool,
}

impl Row {
    fn path(&self) -> &'static str {
        if self.big {
            "/1mb.bin"
        } else {
            "/plaintext"
        }
    }

    fn label(&self) -> String {
        match (self.big, self.depth) {
            (true, _) => format!("1 MiB file, {} conns", self.conns),
            (false, 1) => format!("plaintext, {} conns", self.conns),
            (false, d) => format!("plaintext, {} conns, pipelined x{d}", self.conns),
        }
    }
}

/// The numbers of wrk's report: requests/s, requests, and errors (socket errors, non-2xx/3xx).
fn parse_wrk(text: &str) -> Option<(f64, f64, u64)> {
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let mut errors = 0;
    for l in text.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap_or(1);
        }
    }
    Some((rps, requests, errors))
}

/// wrk for one run of `row` against `srv`, pinned to the client CPU.
fn wrk(o: &Opts, work: &Path, srv: &Server, row: Row) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(o.client_cpu.to_string())
        .arg(&o.wrk)
        .args(["-t1", "--timeout", "10s"])
        .arg(format!("-c{}", row.conns))
        .arg(format!("-d{}s", o.secs));
    if row.depth > 1 {
        cmd.arg("-s").arg(work.join("pipeline.lua"));
    }
    cmd.arg(format!("http://127.0.0.1:{}{}", srv.port, row.path()));
    if row.depth > 1 {
        cmd.args(["--", &row.depth.to_string()]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn measure(o: &Opts, work: &Path, srv: &Server, row: Row) -> Result<Run, String> {
    let cost = Cost::start(srv, o.perf, work)?;
    let out = wrk(o, work, srv, row)
        .output()
        .map_err(|e| format!("cannot run {}: {e} (apt-get install wrk)", o.wrk))?;
    let (syscalls, cpu) = cost.finish()?;
    run_of(srv, &out, syscalls, cpu)
}

/// Both servers of a `--paired` run under load at once, each by its own wrk.
fn measure_pair(o: &Opts, work: &Path, pair: &[Server], row: Row) -> Result<[Run; 2], String> {
    let costs = [
        Cost::start(&pair[0], false, work)?,
        Cost::start(&pair[1], false, work)?,
    ];
    let spawn = |srv| {
        wrk(o, work, srv, row)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e} (apt-get install wrk)", o.wrk))
    };
    let first = spawn(&pair[0])?;
    let second = spawn(&pair[1]);
    let outs = [first.wait_with_output(), second?.wait_with_output()];
    let runs = outs
        .into_iter()
        .zip(costs)
        .zip(pair)
        .map(|((out, cost), srv)| {
            let out = out.map_err(|e| format!("wrk against {}: {e}", srv.name))?;
            let (_, cpu) = cost.finish()?;
            run_of(srv, &out, None, cpu)
        })
        .collect::<Result<Vec<_>, String>>()?;
    <[Run; 2]>::try_from(runs).map_err(|_| "--paired: not two runs".to_string())
}

/// A run from wrk's report and the server's counts.
fn run_of(
    srv: &Server,
    out: &std::process::Output,
    syscalls: Option<u64>,
    cpu: Option<f64>,
) -> Result<Run, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let Some((rps, requests, errors)) = parse_wrk(&text) else {
        return Err(format!(
            "wrk against {}: no result ({}): {text}{}",
            srv.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    };
    let requests = requests.max(1.0);
    if errors > 0 {
        eprintln!("{}: wrk saw {errors} errors", srv.name);
    }
    Ok(Run {
        rate: rps,
        per_op: syscalls.map(|s| s as f64 / requests),
        cpu_us: cpu.map(|c| c * 1e6 / requests),
        bad: errors > 0,
    })
}

fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    if Command::new(&o.wrk)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err(format!(
            "cannot run {}: install it with apt-get install wrk",
            o.wrk
        ));
    }
    crate::sys::raise_nofile(4096).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let work = Workdir::new()?;
    let file = file_bytes();
    let specs = o
        .servers
        .iter()
        .map(|n| spec(n, &o, &work.0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut servers = Vec::new();
    for s in &specs {
        let srv = Server::start(s, o.server_cpu)?;
        verify(&srv, &file)?;
        eprintln!(
            "started {}: pid {} port {} ({}), answers checked",
            s.name,
            srv.pid(),
            srv.port,
            s.program.display()
        );
        servers.push(srv);
    }

    let mut rows: Vec<Row> = Vec::new();
    for &depth in &o.depths {
        for &conns in &o.conns {
            rows.push(Row {
                conns,
                depth,
                big: false,
            });
        }
    }
    if o.big_conns > 0 {
        rows.push(Row {
            conns: o.big_conns,
            depth: 1,
            big: true,
        });
    }

    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    if o.paired {
        let md = paired(&o, &work.0, &servers, &names, &rows)?;
        print!("{md}");
        return Ok(());
    }
    let mut table = Vec::new();
    for &row in &rows {
        let runs = interleave(
            servers.len(),
            o.rounds,
            o.quiet,
            &row.label(),
            &names,
            |i| measure(&o, &work.0, &servers[i], row),
        )?;
        table.push((row.label(), runs));
    }

    println!(
        "http, wrk -t1 for {} s a run, {} interleaved rounds, servers on CPU {}, wrk on CPU {}; {}",
        o.secs,
        o.rounds,
        o.server_cpu,
        o.client_cpu,
        crate::machine::describe()
    );
    println!(
        "Each cell: median requests/s; syscalls per request (perf raw_syscalls:sys_enter on the \
         server / requests wrk counted); the server's CPU time per request in µs (user + system, \
         /proc/PID/stat). Ratios are of the median requests/s.\n"
    );
    print!(
        "{}",
        crate::sidebyside::table(&names, &table, &["libevent", "hyper"])
    );
    drop(servers);
    Ok(())
}

/// `--paired`: every row, round after round, both servers at once; the Markdown table of each
/// one's median CPU µs per request and the medians and range of the per-round ratios.
fn paired(
    o: &Opts,
    work: &Path,
    servers: &[Server],
    names: &[&str],
    rows: &[Row],
) -> Result<String, String> {
    let (a, b) = (names[0], names[1]);
    let mut md = format!(
        "| row | {a} CPU µs/req | {b} CPU µs/req | requests/s {a}, {b} | {a} CPU / {b} CPU \
         (median, range) |\n|---|---|---|---|---|\n"
    );
    for &row in rows {
        let mut cells: [Vec<f64>; 2] = Default::default();
        let mut rates: [Vec<f64>; 2] = Default::default();
        let mut ratios = Vec::new();
        for round in 1..=o.rounds {
            if o.quiet > 0.0 && !crate::machine::wait_quiet(0.15, Duration::from_secs_f64(o.quiet))
            {
                eprintln!("note: the machine did not get quiet within {} s", o.quiet);
            }
            let runs = measure_pair(o, work, servers, row)?;
            let cpu = runs.each_ref().map(|r| r.cpu_us);
            eprintln!(
                "{} round {round}: {a} {:.0}/s {} CPU us/op, {b} {:.0}/s {} CPU us/op{}",
                row.label(),
                runs[0].rate,
                cpu[0].map_or("-".into(), |x| format!("{x:.3}")),
                runs[1].rate,
                cpu[1].map_or("-".into(), |x| format!("{x:.3}")),
                if runs.iter().any(|r| r.bad) {
                    "  NOT A RESULT: errors"
                } else {
                    ""
                }
            );
            if let ([Some(x), Some(y)], false) = (cpu, runs.iter().any(|r| r.bad)) {
                cells[0].push(x);
                cells[1].push(y);
                ratios.push(x / y);
                for (r, run) in rates.iter_mut().zip(&runs) {
                    r.push(run.rate);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if ratios.is_empty() {
            md += &format!("| {} | - | - | - | no result |\n", row.label());
            continue;
        }
        let med = crate::stats::median;
        let (lo, hi) = crate::stats::min_max(&ratios);
        md += &format!(
            "| {} | {:.2} | {:.2} | {:.1}k, {:.1}k | {:.3}x ({lo:.3}-{hi:.3}) |\n",
            row.label(),
            med(&cells[0]),
            med(&cells[1]),
            med(&rates[0]) / 1e3,
            med(&rates[1]) / 1e3,
            med(&ratios),
        );
    }
    Ok(format!(
        "http --paired, {a} and {b} together on CPU {}, a wrk -t1 each on CPU {}, {} s a run, {} \
         rounds; {}\nEach CPU cell: the median of the server's CPU time (user + system, \
         /proc/PID/stat) per request wrk counted; the ratio above 1 means {b} spends less CPU a \
         request than {a}.\n\n{md}",
        o.server_cpu,
        o.client_cpu,
        o.secs,
        o.rounds,
        crate::machine::describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_takes_exactly_two_servers() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse(&args(&["--paired", "--servers", "hyper,revent"])).unwrap();
        assert!(o.paired);
        assert_eq!(o.servers, ["hyper", "revent"]);
        assert!(parse(&args(&["--paired"])).is_err(), "three by default");
        assert!(parse(&args(&["--paired", "--servers", "revent"])).is_err());
        assert!(!parse(&args(&[])).unwrap().paired);
    }

    #[test]
    fn wrk_reports_are_read() {
        let text = "Running 2s test @ http://127.0.0.1:8080/plaintext\n  1 threads and 50 connections\n\
            \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   0.90ms  200.00us   3.00ms   90.00%\n\
            \x20 130000 requests in 2.00s, 16.00MB read\n\
            \x20 Socket errors: connect 0, read 2, write 0, timeout 1\n\
            \x20 Non-2xx or 3xx responses: 4\n\
            Requests/sec:  65000.50\nTransfer/sec:      8.00MB\n";
        assert_eq!(parse_wrk(text), Some((65000.5, 130000.0, 7)));
        let clean = "  10 requests in 1.00s, 1.00KB read\nRequests/sec:     10.00\n";
        assert_eq!(parse_wrk(clean), Some((10.0, 10.0, 0)));
        assert_eq!(
            parse_wrk("unable to connect to 127.0.0.1:1 Connection refused"),
            None
        );
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"5\r\nHello\r\n8;x=y\r\n, World!\r\n0\r\n\r\n").as_deref(),
            Some(&b"Hello, World!"[..])
        );
        assert_eq!(dechunk(b"5\r\nHel"), None);
    }
}
