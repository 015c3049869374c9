//! What the end-to-end tests of `revent echo` share: the `Echo` helper, which runs the real binary
//! on an ephemeral port and kills it if a test panics, and a few socket helpers.
// Each test binary uses a different part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const LIMIT: Duration = Duration::from_secs(20);

pub struct Echo {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: BufReader<ChildStdout>,
    pub first_line: String,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Echo {
    pub fn start(extra: &[&str]) -> Echo {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_revent"));
        cmd.args(["echo", "--addr", "127.0.0.1", "--port", "0"])
            .args(extra);
        Echo::spawn(cmd)
    }

    /// Starts `cmd`, which must end up running `revent echo` on 127.0.0.1 port 0.
    pub fn spawn(mut cmd: Command) -> Echo {
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

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }

    pub fn stderr(&mut self) -> ChildStderr {
        self.child.stderr.take().unwrap()
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    pub fn terminate(&mut self) -> (ExitStatus, String) {
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

pub fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

pub fn summary_line(out: &str) -> &str {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "expected one summary line: {out:?}");
    lines[0]
}

/// Listening sockets on `port` in /proc/net/tcp (state 0A).
pub fn listeners_on(port: u16) -> usize {
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

pub fn set_buf(s: &TcpStream, opt: libc::c_int, bytes: libc::c_int) {
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

pub const PERIOD: usize = 65521; // prime, so the pattern never lines up with buffer sizes
pub const MAX_IO: usize = 256 * 1024;

/// The pattern, long enough that any window of MAX_IO bytes starting below PERIOD is contiguous.
pub fn pattern_block() -> Vec<u8> {
    (0..PERIOD + MAX_IO)
        .map(|i| ((i % PERIOD) * 131 % 251) as u8)
        .collect()
}

/// Sends `total` bytes of the pattern on `c` from a second thread and then shuts down writing,
/// while this thread reads the echo `read_size` bytes at a time, resting `pause` after each read.
/// Every byte must come back, in order, and then EOF.
pub fn exchange(c: TcpStream, total: u64, read_size: usize, pause: Duration) {
    assert!(read_size <= MAX_IO);
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
    let mut buf = vec![0u8; read_size];
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
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    writer.join().unwrap();
    let mut extra = [0u8; 1];
    assert_eq!(r.read(&mut extra).unwrap(), 0, "bytes past the end");
}
