//! Contenders as child processes: one process each, driven line by line over its stdin/stdout, so
//! that several contenders stay set up at once and their runs interleave (A B C, B C A, ...).
//!
//! Protocol (the C programs and this binary's `*-child` subcommands speak it): the child sets up,
//! prints `ready`, then answers every `run` line with one line of `key=value` pairs; `quit` or EOF ends
//! it.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::capi::{check_maps, Maps};

pub type Res<T> = Result<T, Box<dyn Error>>;

/// One result line: `key=value` pairs with numeric values.
pub type Kv = BTreeMap<String, f64>;

/// Parses `a=1 b=2.5 ...`; pairs whose value is not a number are skipped.
pub fn parse_kv(line: &str) -> Kv {
    line.split_whitespace()
        .filter_map(|tok| {
            let (k, v) = tok.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// How to start a contender: program and arguments, optionally pinned to a CPU with `taskset`, with
/// extra environment variables (the `capi` contenders: `LD_LIBRARY_PATH`).
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cpu: Option<usize>,
    pub env: Vec<(String, String)>,
    /// Which libevent the started process must have mapped ([`Proc::start`] checks).
    pub maps: Option<Maps>,
}

impl Spec {
    pub fn new(name: &str, program: &Path, args: &[String], cpu: Option<usize>) -> Spec {
        Spec {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            cpu,
            env: Vec::new(),
            maps: None,
        }
    }

    /// The `capi` form of a libevent contender: the same program and arguments, run with revent's
    /// libraries from `dir` (checked in /proc/PID/maps once started).
    pub fn on_capi(mut self, dir: &Path) -> Spec {
        self.env = crate::capi::env(dir);
        self.maps = Some(Maps::From(dir.to_path_buf()));
        self
    }

    /// A libevent contender in a run that also has capi ones: checked not to map revent's libraries.
    pub fn not_on(mut self, dir: Option<&Path>) -> Spec {
        self.maps = dir.map(|d| Maps::NotFrom(d.to_path_buf()));
        self
    }

    /// The command, wrapped in `taskset -c CPU` when pinned.
    pub fn command(&self, extra: &[String]) -> Command {
        let mut cmd = match self.cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args).args(extra);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// A running contender.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// Starts the contender and waits until it has set up.
    pub fn start(spec: &Spec) -> Res<Proc> {
        let mut child = spec
            .command(&[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "{}: cannot start {}: {e}",
                    spec.name,
                    spec.program.display()
                )
            })?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut p = Proc {
            name: spec.name.clone(),
            child,
            stdin,
            stdout,
        };
        let line = p.read_line()?;
        if line.trim() != "ready" {
            return Err(format!("{}: expected `ready`, got {line:?}", p.name).into());
        }
        if let Some(want) = &spec.maps {
            check_maps(&p.name, p.pid(), want)?;
        }
        Ok(p)
    }

    fn read_line(&mut self) -> Res<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            return Err(format!("{}: exited ({status})", self.name).into());
        }
        Ok(line)
    }

    /// The contender's process id (of `taskset` itself when pinned: it execs the program, so the id
    /// stays the same).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks for one run and returns its result line.
    pub fn run(&mut self) -> Res<Kv> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin.write_all(b"run\n")?;
        stdin.flush()?;
        let line = self.read_line()?;
        Ok(parse_kv(&line))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
        }
        let _ = self.child.wait();
    }
}

/// Whether `perf stat` can count the syscall tracepoint here.
pub fn perf_available() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map(|o| {
            o.status.success() && count_from_perf(&String::from_utf8_lossy(&o.stderr)).is_some()
        })
        .unwrap_or(false)
}

/// Whether `perf stat` can count all of `events` (tracepoints such as `syscalls:sys_enter_write`).
pub fn perf_supports(events: &[&str]) -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", &events.join(","), "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stderr);
            o.status.success()
                && events.iter().all(|e| {
                    text.lines().any(|l| {
                        let f: Vec<&str> = l.split(',').collect();
                        f.len() > 2 && f[2] == *e && f[0].trim().parse::<u64>().is_ok()
                    })
                })
        })
        .unwrap_or(false)
}

/// `perf stat -x, -e EVENTS -p PID` (every thread of the process) attached with its counters off and
/// switched on and off through a control FIFO (`-D -1 --control fifo:CTL,ACK`), so that the counts
/// cover exactly the window from [`enable`](Self::enable) to [`finish`](Self::finish): each switch
/// waits for perf's acknowledgement.
pub struct PerfSession {
    child: Child,
    ctl: File,
    ack: File,
    dir: PathBuf,
    events: Vec<String>,
}

impl PerfSession {
    /// Starts perf on `pid` with `events`, counters off.
    pub fn attach(pid: u32, events: &[&str]) -> Res<PerfSession> {
        let dir =
            std::env::temp_dir().join(format!("revent-bench-perf-{}-{pid}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (ctl_path, ack_path) = (dir.join("ctl"), dir.join("ack"));
        for p in [&ctl_path, &ack_path] {
            let _ = std::fs::remove_file(p);
            mkfifo(p)?;
        }
        // Neither open blocks: read-write on the control FIFO, non-blocking read on the ack FIFO.
        let ctl = OpenOptions::new().read(true).write(true).open(&ctl_path)?;
        let ack = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&ack_path)?;
        let control = format!("fifo:{},{}", ctl_path.display(), ack_path.display());
        let mut child = Command::new("perf")
            .args(["stat", "-x,", "-e", &events.join(","), "-D", "-1"])
            .args(["--control", &control, "-p", &pid.to_string(), "-o"])
            .arg(dir.join("out"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run perf: {e}"))?;
        // Pass perf's messages on, but not the "Events enabled/disabled" of every switch.
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if !line.starts_with("Events enabled") && !line.starts_with("Events disabled") {
                        eprintln!("{line}");
                    }
                }
            });
        }
        Ok(PerfSession {
            child,
            ctl,
            ack,
            dir,
            events: events.iter().map(|e| e.to_string()).collect(),
        })
    }

    fn command(&mut self, cmd: &str) -> Res<()> {
        self.ctl.write_all(format!("{cmd}\n").as_bytes())?;
        // perf answers "ack\n" and the terminating NUL.
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"ack\n") {
            let mut pfd = libc::pollfd {
                fd: self.ack.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll reads and writes the one live local `pfd`.
            let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
            if n == 0 {
                return Err(format!("perf did not acknowledge `{cmd}` within 10 s").into());
            }
            let mut buf = [0u8; 64];
            match self.ack.read(&mut buf) {
                Ok(0) => return Err(format!("perf exited before acknowledging `{cmd}`").into()),
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Switches the counters on; returns once perf has done so.
    pub fn enable(&mut self) -> Res<()> {
        self.command("enable")
    }

    /// Switches the counters off, ends perf and returns one count per event, in order.
    pub fn finish(mut self) -> Res<Vec<u64>> {
        self.command("disable")?;
        // SAFETY: kill takes no pointers; the pid is our unreaped child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        self.child.wait()?;
        let text = std::fs::read_to_string(self.dir.join("out"))?;
        self.events
            .iter()
            .map(|e| {
                text.lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(',').collect();
                        (f.len() > 2 && f[2] == e).then(|| f[0].trim().parse::<u64>().ok())?
                    })
                    .ok_or_else(|| format!("perf counted no {e}: {text}").into())
            })
            .collect()
    }
}

impl Drop for PerfSession {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mkfifo(path: &Path) -> Res<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a live NUL-terminated path; mkfifo only reads it.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(format!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )
        .into());
    }
    Ok(())
}

fn count_from_perf(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next())
        .and_then(|v| v.trim().parse().ok())
}

/// Runs the contender once to completion under `perf stat -x, -e raw_syscalls:sys_enter` with `extra`
/// arguments; returns the syscall count and the contender's last stdout line.
pub fn perf_count(spec: &Spec, extra: &[String]) -> Res<(u64, Kv)> {
    let inner = spec.command(extra);
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    let out = cmd.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{}: perf stat failed ({}): {stderr}", spec.name, out.status).into());
    }
    let count =
        count_from_perf(&stderr).ok_or_else(|| format!("{}: no count in {stderr:?}", spec.name))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    Ok((count, parse_kv(last)))
}

/// Whether valgrind's callgrind is installed.
pub fn callgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the contender once to completion under `valgrind --tool=callgrind` (unpinned) with `extra`
/// arguments; returns the user-space instructions executed and the contender's last stdout line.
pub fn callgrind_count(spec: &Spec, extra: &[String]) -> Res<(u64, Kv)> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(&spec.program)
        .args(&spec.args)
        .args(extra)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{}: valgrind failed ({}): {stderr}", spec.name, out.status).into());
    }
    // "==PID== Collected : 12345"
    let count = stderr
        .lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .map(|(_, v)| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{}: no instruction count in {stderr:?}", spec.name))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok((count, parse_kv(stdout.lines().last().unwrap_or(""))))
}
