//! `revent echo` end to end: the real binary on an ephemeral port, talked to over TCP, stopped with
//! SIGTERM. Every child is killed if a test panics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

struct Echo {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<ChildStdout>,
    first_line: String,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Echo {
    fn start(extra: &[&str]) -> Echo {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_revent"));
        cmd.args(["echo", "--addr", "127.0.0.1", "--port", "0"])
            .args(extra);
        Echo::spawn(cmd)
    }

    /// Starts `cmd`, which must end up running `revent echo` on 127.0.0.1 port 0.
    fn spawn(mut cmd: Command) -> Echo {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut e = Echo {
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            first_line: String::new(),
        };
        e.stdout.read_line(&mut e.first_line).unwrap();
        let rest = e
            .first_line
            .strip_prefix("revent echo: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {:?}", e.first_line));
        e.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(e.addr.ip().to_string(), "127.0.0.1");
        assert_ne!(e.addr.port(), 0);
        e
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }

    fn stderr(&mut self) -> ChildStderr {
        self.child.stderr.take().unwrap()
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    fn terminate(&mut self) -> (ExitStatus, String) {
        // SAFETY: kill sends a signal to our own child.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < LIMIT,
                "revent echo did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        (status, rest)
    }
}

fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

fn summary_line(out: &str) -> &str {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "expected one summary line: {out:?}");
    lines[0]
}

#[test]
fn echoes_and_exits_cleanly_on_sigterm() {
    let mut e = Echo::start(&[]);
    assert!(e.first_line.contains("1 thread(s)"), "{}", e.first_line);
    let mut c = e.connect();
    echo_once(&mut c, b"hello");
    echo_once(&mut c, b", world\n");
    drop(c);
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(
        summary_line(&out),
        "revent echo: 1 connections, 0 refused, 13 bytes echoed"
    );
}

#[test]
fn sigterm_right_after_start_is_a_clean_exit() {
    let mut e = Echo::start(&[]);
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(
        summary_line(&out),
        "revent echo: 0 connections, 0 refused, 0 bytes echoed"
    );
}

#[test]
fn sigterm_with_open_connections_closes_them() {
    let mut e = Echo::start(&[]);
    let mut c = e.connect();
    echo_once(&mut c, b"still here");
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        summary_line(&out),
        "revent echo: 1 connections, 0 refused, 10 bytes echoed"
    );
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn verbose_prints_a_line_per_connection() {
    let mut e = Echo::start(&["-v"]);
    let err = e.stderr();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut c = e.connect();
        echo_once(&mut c, b"x");
        peers.push(c.local_addr().unwrap());
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
    }
    let (status, _) = e.terminate();
    assert_eq!(status.code(), Some(0));
    let mut log = String::new();
    BufReader::new(err).read_to_string(&mut log).unwrap();
    for p in peers {
        assert!(
            log.contains(&format!("open {p}\n")),
            "no open line for {p}: {log}"
        );
        assert!(
            log.contains(&format!("close {p} (")),
            "no close line for {p}: {log}"
        );
    }
    assert_eq!(log.lines().filter(|l| l.starts_with("open ")).count(), 3);
}

#[test]
fn max_conns_refuses_beyond_the_limit() {
    let mut e = Echo::start(&["--max-conns", "1"]);
    let mut first = e.connect();
    echo_once(&mut first, b"first");
    let mut second = e.connect();
    // Refused: closed at once without an answer.
    let _ = second.write_all(b"second");
    let mut got = Vec::new();
    let _ = second.read_to_end(&mut got);
    assert!(got.is_empty());
    // The first one still works; once it is gone, a new one is served.
    echo_once(&mut first, b"again");
    drop(first);
    let start = Instant::now();
    loop {
        let mut third = e.connect();
        third.write_all(b"third").unwrap();
        let mut got = [0u8; 5];
        if third.read_exact(&mut got).is_ok() {
            assert_eq!(&got, b"third");
            break;
        }
        // The server may not have seen the first one's EOF yet.
        assert!(start.elapsed() < LIMIT);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0));
    let line = summary_line(&out);
    assert!(
        line.starts_with("revent echo: 2 connections, ") && !line.contains(" 0 refused"),
        "{line}"
    );
}

#[test]
fn idle_timeout_closes_quiet_connections() {
    let mut e = Echo::start(&["--idle-timeout", "0.3"]);
    let mut c = e.connect();
    echo_once(&mut c, b"active");
    let start = Instant::now();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(250));
    let (status, _) = e.terminate();
    assert_eq!(status.code(), Some(0));
}

/// Listening sockets on `port` in /proc/net/tcp (state 0A).
fn listeners_on(port: u16) -> usize {
    let tab = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let want = format!(":{port:04X}");
    tab.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
        })
        .count()
}

#[test]
fn two_threads_share_the_port() {
    let mut e = Echo::start(&["--threads", "2"]);
    assert!(e.first_line.contains("2 thread(s)"), "{}", e.first_line);
    let start = Instant::now();
    while listeners_on(e.addr.port()) < 2 {
        assert!(
            start.elapsed() < LIMIT,
            "the worker does not listen on the port"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(listeners_on(e.addr.port()), 2);
    let mut cs: Vec<TcpStream> = (0..20).map(|_| e.connect()).collect();
    for (i, c) in cs.iter_mut().enumerate() {
        echo_once(c, format!("message {i:02}").as_bytes());
    }
    drop(cs);
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(
        summary_line(&out),
        "revent echo: 20 connections, 0 refused, 200 bytes echoed"
    );
}

// ---- bulk: 1 GiB byte-exact with small socket buffers ----

fn set_buf(s: &TcpStream, opt: libc::c_int, bytes: libc::c_int) {
    // SAFETY: setsockopt reads one int we own.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

const PERIOD: usize = 65521; // prime, so the pattern never lines up with buffer sizes
const MAX_IO: usize = 256 * 1024;

/// The pattern, long enough that any window of MAX_IO bytes starting below PERIOD is contiguous.
fn pattern_block() -> Vec<u8> {
    (0..PERIOD + MAX_IO)
        .map(|i| ((i % PERIOD) * 131 % 251) as u8)
        .collect()
}

/// How many bytes the bulk test moves: 1 GiB, or `REVENT_ECHO_BULK_BYTES`.
fn bulk_bytes() -> u64 {
    std::env::var("REVENT_ECHO_BULK_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

#[test]
fn one_gib_byte_exact_with_small_socket_buffers() {
    let total = bulk_bytes();
    let mut e = Echo::start(&[]);
    let c = e.connect();
    set_buf(&c, libc::SO_SNDBUF, 32 * 1024);
    set_buf(&c, libc::SO_RCVBUF, 32 * 1024);
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let block = std::sync::Arc::new(pattern_block());
    let mut w = c.try_clone().unwrap();
    let wb = block.clone();
    let writer = std::thread::spawn(move || {
        let mut sent = 0u64;
        while sent < total {
            let off = (sent % PERIOD as u64) as usize;
            let n = (MAX_IO as u64).min(total - sent) as usize;
            w.write_all(&wb[off..off + n]).unwrap();
            sent += n as u64;
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = c;
    let mut buf = vec![0u8; MAX_IO];
    let mut got = 0u64;
    while got < total {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "EOF after {got} of {total} bytes");
        let off = (got % PERIOD as u64) as usize;
        if buf[..n] != block[off..off + n] {
            let i = (0..n).find(|&i| buf[i] != block[off + i]).unwrap();
            panic!("byte {} differs", got + i as u64);
        }
        got += n as u64;
    }
    writer.join().unwrap();
    let mut extra = [0u8; 1];
    assert_eq!(r.read(&mut extra).unwrap(), 0, "bytes past the end");
    drop(r);
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        summary_line(&out),
        format!("revent echo: 1 connections, 0 refused, {total} bytes echoed")
    );
}

// ---- the command line ----

fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_revent"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn echo_help_lists_its_options() {
    for flag in ["--help", "-h"] {
        let out = run_cli(&["echo", flag]);
        assert_eq!(out.status.code(), Some(0), "echo {flag}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: revent echo"), "echo {flag}: {text}");
        for opt in [
            "--addr",
            "--port",
            "--idle-timeout",
            "--max-conns",
            "--read-high",
            "--threads",
            "-v",
        ] {
            assert!(
                text.contains(opt),
                "echo {flag} does not list {opt}: {text}"
            );
        }
    }
}

#[test]
fn hello_help_lists_its_options() {
    let out = run_cli(&["hello", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Usage: revent hello"), "{text}");
    assert!(text.contains("--addr") && text.contains("--port"), "{text}");
}

#[test]
fn top_level_help_lists_the_commands() {
    for flag in ["--help", "-h", "help"] {
        let out = run_cli(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("echo") && text.contains("hello"), "{text}");
    }
}

#[test]
fn bad_options_fail_with_a_message() {
    for args in [
        &["echo", "--bogus"][..],
        &["echo", "--port"],
        &["echo", "--threads", "0"],
        &["echo", "--idle-timeout", "soon"],
        &["hello", "--bogus"],
        &["no-such-command"],
        &[],
    ] {
        let out = run_cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.trim().is_empty(), "{args:?}: no message");
        if args.contains(&"--bogus") {
            assert!(err.contains("--bogus"), "{args:?}: {err}");
        }
    }
}
