//! Contenders as child processes: one process each, driven line by line over its stdin/stdout, so
//! that several contenders stay set up at once and their runs interleave (A B C, B C A, ...).
//!
//! Protocol (the C programs and this binary's `*-child` subcommands speak it): the child sets up,
//! prints `ready`, then answers every `run` line with one line of `key=value` pairs; `quit` or EOF ends
//! it.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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

/// How to start a contender: program and arguments, optionally pinned to a CPU with `taskset`.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cpu: Option<usize>,
}

impl Spec {
    pub fn new(name: &str, program: &Path, args: &[String], cpu: Option<usize>) -> Spec {
        Spec {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            cpu,
        }
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
