//! Benchmark servers as child processes: started pinned to a CPU on 127.0.0.1, waited for until
//! they accept, stopped on drop; and what one load run costs a server (system calls counted by
//! `perf`, CPU time from /proc). Shared by the `http` and `tls` benchmarks.

use std::io::BufRead;
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start a server.
pub(crate) struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Extra environment (the C ABI contenders' `LD_LIBRARY_PATH`).
    pub env: Vec<(String, String)>,
    /// The server prints `port=N` (else it is given a free port and polled until it accepts).
    pub prints_port: bool,
}

/// A server child process listening on 127.0.0.1:port; stopped (SIGTERM, then SIGKILL) on drop.
pub(crate) struct Server {
    pub name: String,
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(spec: &Spec, cpu: usize) -> Result<Server, String> {
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(cpu.to_string())
            .arg(&spec.program)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        let given_port = if spec.prints_port {
            None
        } else {
            let p = free_port()?;
            cmd.args(["--port", &p.to_string()]);
            Some(p)
        };
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} ({}): {e}",
                spec.name,
                spec.program.display()
            )
        })?;
        let out = child.stdout.take().expect("piped stdout");
        let port = match given_port {
            Some(p) => {
                // Whatever it prints is drained so that it never blocks on a full pipe.
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut { out }, &mut std::io::sink());
                });
                p
            }
            None => {
                let mut out = BufReader::new(out);
                let mut line = String::new();
                let port = loop {
                    line.clear();
                    if out.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!("{} exited before it listened", spec.name));
                    }
                    if let Some(p) = line
                        .split("port=")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next()?.parse().ok())
                    {
                        break p;
                    }
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut out, &mut std::io::sink());
                });
                port
            }
        };
        let mut server = Server {
            name: spec.name.clone(),
            child,
            port,
        };
        server.wait_accepting()?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn wait_accepting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited before it listened ({status})",
                    self.name
                ));
            }
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "{} did not listen on port {} within 10 s",
            self.name, self.port
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
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

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// What a server spent during one load run: its system calls (perf's `raw_syscalls:sys_enter`,
/// when asked for) and its CPU time (user + system, seconds).
pub(crate) struct Cost {
    perf: Option<(Child, PathBuf)>,
    cpu_before: Option<f64>,
    pid: u32,
    name: String,
}

impl Cost {
    /// Starts counting for `srv`; perf writes into `work`.
    pub fn start(srv: &Server, perf: bool, work: &Path) -> Result<Cost, String> {
        Cost::of(srv.pid(), &srv.name, perf, work)
    }

    /// Starts counting for process `pid` (a server called `name`); perf writes into `work`.
    pub fn of(pid: u32, name: &str, perf: bool, work: &Path) -> Result<Cost, String> {
        let perf = if perf {
            let out = work.join(format!("perf-{}-{name}", std::process::id()));
            let p = Command::new("perf")
                .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p"])
                .arg(pid.to_string())
                .arg("-o")
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run perf: {e} (or pass --no-perf)"))?;
            // perf needs a moment to attach before the load starts.
            std::thread::sleep(Duration::from_millis(100));
            Some((p, out))
        } else {
            None
        };
        Ok(Cost {
            perf,
            cpu_before: crate::echo::cpu_time(pid),
            pid,
            name: name.to_string(),
        })
    }

    /// Stops counting: (system calls, CPU seconds).
    pub fn finish(mut self) -> Result<(Option<u64>, Option<f64>), String> {
        let cpu = match (self.cpu_before, crate::echo::cpu_time(self.pid)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let syscalls = match self.perf.take() {
            Some((mut p, out)) => {
                let _ = Command::new("kill")
                    .args(["-INT", &p.id().to_string()])
                    .status();
                let _ = p.wait();
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                let _ = std::fs::remove_file(&out);
                let count = text
                    .lines()
                    .find(|l| l.contains("raw_syscalls:sys_enter"))
                    .and_then(|l| l.split(',').next()?.trim().parse::<u64>().ok());
                if count.is_none() {
                    return Err(format!(
                        "perf counted nothing for {} (is perf allowed here? or pass --no-perf): {text}",
                        self.name
                    ));
                }
                count
            }
            None => None,
        };
        Ok((syscalls, cpu))
    }
}
