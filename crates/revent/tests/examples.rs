//! The ports of libevent's sample programs (`examples/`), run as processes: each test starts an
//! example binary, talks to it the way a user would (sockets, signals, a FIFO) and checks what it
//! does and prints.
//!
//! Every child is killed when its test ends, even by a panic ([`Proc`]'s `Drop`), and every wait is
//! bounded by [`LIMIT`], which only tells a hang from a slow machine: nothing here measures speed.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The bound on every wait.
const LIMIT: Duration = Duration::from_secs(30);

// ---- finding and running the examples ----

/// The path of example `name`, built first. `cargo test` builds the examples, but
/// `cargo test --test examples` does not, and a binary left by an earlier build may predate the
/// example's source: asking cargo costs little when the binary is up to date.
fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    // The test binary is target/<profile>/deps/examples-<hash>; examples go to
    // target/<profile>/examples.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    // One build at a time (cargo would serialize them anyway), and once per example.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built
        .get_or_insert_with(HashSet::new)
        .insert(name.to_string())
    {
        build_example(name, profile_dir);
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Builds example `name` into `profile_dir`'s examples (same target directory and profile as this
/// test binary).
fn build_example(name: &str, profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--example", name, "--manifest-path"])
        .arg(&manifest);
    // Cargo puts a build of profile P into <target-dir>/<P's directory>.
    if let (Some(target_dir), Some(dir)) = (profile_dir.parent(), profile_dir.file_name()) {
        cmd.arg("--target-dir").arg(target_dir);
        match dir.to_str() {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => {}
        }
    }
    let status = cmd.status().expect("cannot run cargo");
    assert!(status.success(), "cargo build --example {name}: {status}");
}

/// A running example. Dropping it kills the process, so no test leaves one behind.
struct Proc {
    child: Child,
    name: &'static str,
    out: Receiver<String>,
    err: Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards the lines of `r` to a channel, from a thread, so that reading them can time out.
fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Proc {
    fn start(name: &'static str, args: &[&str]) -> Proc {
        Proc::start_in(name, args, None)
    }

    fn start_in(name: &'static str, args: &[&str], dir: Option<&Path>) -> Proc {
        let mut cmd = Command::new(example(name));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        Proc {
            child,
            name,
            out,
            err,
        }
    }

    /// The next stdout line, which must satisfy `want`.
    #[track_caller]
    fn out_line(&self, want: impl Fn(&str) -> bool) -> String {
        next_line(&self.out, want, self.name, "stdout")
    }

    /// The next stderr line, which must satisfy `want`.
    #[track_caller]
    fn err_line(&self, want: impl Fn(&str) -> bool) -> String {
        next_line(&self.err, want, self.name, "stderr")
    }

    fn signal(&self, signo: libc::c_int) {
        // SAFETY: kill(2) only sends a signal, to our own child, which has not been reaped (so the
        // pid cannot name another process).
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, signo) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the process to exit, then returns its status and the rest of its stdout.
    #[track_caller]
    fn wait_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < LIMIT,
                "{} still running after {LIMIT:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(10));
        };
        // The process is gone: its pipes reach EOF, and the channel is closed after the last line.
        let rest = self.out.iter().collect();
        (status, rest)
    }
}

#[track_caller]
fn next_line(rx: &Receiver<String>, want: impl Fn(&str) -> bool, name: &str, what: &str) -> String {
    match rx.recv_timeout(LIMIT) {
        Ok(line) => {
            assert!(want(&line), "unexpected {what} line from {name}: {line:?}");
            line
        }
        Err(RecvTimeoutError::Timeout) => panic!("no {what} line from {name} within {LIMIT:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{name} closed its {what}"),
    }
}

/// The address in a line "<prefix><addr>[, ...]", which must be on 127.0.0.1.
#[track_caller]
fn addr_after(line: &str, prefix: &str) -> SocketAddr {
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}..., got {line:?}"));
    let addr: SocketAddr = rest
        .split([',', ' '])
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s
}

// ---- hello-world ----

#[test]
fn hello_world_greets_each_client_then_exits_cleanly_on_sigint() {
    let mut p = Proc::start("hello-world", &["127.0.0.1:0"]);
    let addr = addr_after(&p.out_line(|_| true), "Listening on ");
    for _ in 0..2 {
        // The client sends nothing: the server does not read, and closing a socket with unread
        // input makes the kernel reset the connection, which could discard the greeting.
        let mut c = connect(addr);
        let mut got = Vec::new();
        // read_to_end returns only at EOF: the server hung up after the greeting.
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"Hello, World!\n");
        p.out_line(|l| l == "flushed answer");
    }
    let sigint = Instant::now();
    p.signal(libc::SIGINT);
    p.out_line(|l| l.starts_with("Caught an interrupt signal"));
    let (status, rest) = p.wait_exit();
    assert!(status.success(), "{status}");
    // loopexit with a delay, not loopbreak: the loop ran on for the two seconds (a lower bound,
    // which no slowness can break).
    assert!(
        sigint.elapsed() >= Duration::from_secs(2),
        "exited too soon"
    );
    assert_eq!(rest.last().map(String::as_str), Some("done"), "{rest:?}");
}

// ---- time-test ----

/// Checks the three firings of `time-test [-p] 3`, started at `start` (since the epoch): about two
/// seconds apart (never less), stamped with the wall-clock time.
fn check_time_test(mut p: Proc, kind: &str, start: Duration) {
    p.out_line(|l| l.starts_with(&format!("time-test: {kind} timer on ")));
    let (status, lines) = p.wait_exit();
    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(lines.len(), 3, "three firings expected: {lines:?}");
    for line in &lines {
        // "timeout_cb called at <unix seconds>: <elapsed> seconds elapsed."
        let rest = line
            .strip_prefix("timeout_cb called at ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let (at, elapsed) = rest
            .strip_suffix(" seconds elapsed.")
            .and_then(|r| r.split_once(": "))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let at: u64 = at.parse().unwrap();
        let elapsed: f64 = elapsed.parse().unwrap();
        assert!(
            (start.as_secs()..=end.as_secs()).contains(&at),
            "{line:?}: not a time during the run"
        );
        // The period is 2 s. A timer never fires early; the sample measures from inside the
        // callback, a few microseconds after the loop read the clock, hence the 0.1 s of slack.
        assert!(
            (1.9..LIMIT.as_secs_f64()).contains(&elapsed),
            "{line:?}: implausible interval"
        );
    }
}

#[test]
fn time_test_one_shot_and_persistent_timers_fire_every_two_seconds() {
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    // Both at once: each takes six seconds.
    let one_shot = Proc::start("time-test", &["3"]);
    let persistent = Proc::start("time-test", &["-p", "3"]);
    check_time_test(one_shot, "one-shot", start);
    check_time_test(persistent, "persistent", start);
}

// ---- signal-test ----

#[test]
fn signal_test_handles_three_sigints_then_exits() {
    let mut p = Proc::start("signal-test", &[]);
    p.out_line(|l| l.ends_with("waiting for SIGINT"));
    for _ in 0..3 {
        p.signal(libc::SIGINT);
        // Waiting for each line before the next signal: signals sent together may merge.
        p.out_line(|l| l == format!("signal_cb: got signal {}", libc::SIGINT));
    }
    // Had the event gone after fewer deliveries, the third SIGINT would have killed the process
    // (the default action), or found it gone.
    let (status, rest) = p.wait_exit();
    assert!(status.success(), "{status}");
    assert_eq!(rest, ["signal-test: done"]);
}

// ---- event-read-fifo ----

/// A directory of its own for one test, removed (with whatever is left in it) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "revent-examples-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn event_read_fifo_prints_what_is_written_and_removes_the_fifo_at_eof() {
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("in.fifo");
    let mut p = Proc::start("event-read-fifo", &[fifo.to_str().unwrap()]);
    p.err_line(|l| l == format!("Write data to {}", fifo.display()));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    {
        // The reader has the FIFO open, so opening it for writing does not block.
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(b"hello fifo").unwrap();
        p.out_line(|l| l == "Read: hello fifo");
        w.write_all(b"second write").unwrap();
        p.out_line(|l| l == "Read: second write");
        // Closing the only writer is the end of file.
    }
    p.err_line(|l| l == "Connection closed");
    let (status, rest) = p.wait_exit();
    assert!(status.success(), "{status}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(!fifo.exists(), "the FIFO was left behind");
}

#[test]
fn event_read_fifo_defaults_to_event_fifo_and_replaces_a_stale_one() {
    let dir = TempDir::new("fifo-default");
    let fifo = dir.0.join("event.fifo");
    // A run killed outright leaves its FIFO behind.
    let mut killed = Proc::start_in("event-read-fifo", &[], Some(&dir.0));
    killed.err_line(|l| l == "Write data to event.fifo");
    killed.child.kill().unwrap();
    killed.wait_exit();
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // The next run replaces it and serves as usual.
    let mut p = Proc::start_in("event-read-fifo", &[], Some(&dir.0));
    p.err_line(|l| l == "Write data to event.fifo");
    std::fs::write(&fifo, b"after a restart").unwrap();
    p.out_line(|l| l == "Read: after a restart");
    p.err_line(|l| l == "Connection closed");
    let (status, _) = p.wait_exit();
    assert!(status.success(), "{status}");
    assert!(!fifo.exists(), "the FIFO was left behind");
}

#[test]
fn event_read_fifo_exits_cleanly_on_sigint() {
    let dir = TempDir::new("fifo-sigint");
    let fifo = dir.0.join("quiet.fifo");
    let mut p = Proc::start("event-read-fifo", &[fifo.to_str().unwrap()]);
    p.err_line(|l| l.starts_with("Write data to "));
    p.signal(libc::SIGINT);
    let (status, rest) = p.wait_exit();
    assert!(status.success(), "{status}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(!fifo.exists(), "the FIFO was left behind");
}

#[test]
fn event_read_fifo_does_not_replace_a_regular_file() {
    let dir = TempDir::new("fifo-file");
    let file = dir.0.join("precious");
    std::fs::write(&file, b"data").unwrap();
    let mut p = Proc::start("event-read-fifo", &[file.to_str().unwrap()]);
    let (status, _) = p.wait_exit();
    assert_eq!(status.code(), Some(1));
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
}

// ---- le-proxy ----

/// An echo server on 127.0.0.1 for the proxy to forward to: one thread per connection, which
/// writes back what it reads and closes after the client's EOF.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                // Dropping the stream closes it: the EOF that follows the echo.
            });
        }
    });
    addr
}

/// Starts le-proxy in front of `target`; returns it and the address it listens on.
fn proxy_to(target: SocketAddr) -> (Proc, SocketAddr) {
    let p = Proc::start("le-proxy", &["127.0.0.1:0", &target.to_string()]);
    let line = p.out_line(|_| true);
    let addr = addr_after(&line, "Listening on ");
    assert!(
        line.ends_with(&format!("forwarding to {target}")),
        "{line:?}"
    );
    (p, addr)
}

/// `n` bytes of a pattern that does not repeat at any power-of-two period.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

/// Sends `data` through `c` from another thread (shutting down writing afterwards if `half_close`)
/// while this thread reads `data.len()` bytes back; returns them.
fn round_trip(c: TcpStream, data: &[u8], half_close: bool) -> Vec<u8> {
    let mut w = c.try_clone().unwrap();
    let sent = data.to_vec();
    let writer = thread::spawn(move || {
        w.write_all(&sent).unwrap();
        if half_close {
            w.shutdown(Shutdown::Write).unwrap();
        }
    });
    let mut got = vec![0u8; data.len()];
    (&c).read_exact(&mut got).unwrap();
    writer.join().unwrap();
    got
}

#[test]
fn le_proxy_relays_a_mebibyte_both_ways() {
    let (_p, addr) = proxy_to(echo_server());
    let data = pattern(1 << 20);
    let c = connect(addr);
    assert!(round_trip(c.try_clone().unwrap(), &data, false) == data);
    // The session stays usable.
    assert!(round_trip(c, b"more", false) == b"more");
}

#[test]
fn le_proxy_half_close_still_delivers_the_whole_reply() {
    let (_p, addr) = proxy_to(echo_server());
    let data = pattern(4 << 20);
    let c = connect(addr);
    // A small receive buffer keeps most of the echo in the proxy when the client's EOF arrives.
    socket2::SockRef::from(&c)
        .set_recv_buffer_size(32 * 1024)
        .unwrap();
    let got = round_trip(c.try_clone().unwrap(), &data, true);
    assert!(got == data, "the echo differs from what was sent");
    // Then the proxy closes: both directions are finished.
    let mut extra = Vec::new();
    (&c).read_to_end(&mut extra).unwrap();
    assert!(extra.is_empty(), "{} bytes past the end", extra.len());
}

#[test]
fn le_proxy_closes_the_client_when_the_target_refuses() {
    // A port that was just free: nothing listens there.
    let target = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (p, addr) = proxy_to(target);
    let mut c = connect(addr);
    let mut got = Vec::new();
    match c.read_to_end(&mut got) {
        Ok(_) => assert!(got.is_empty()),
        // The proxy may close before reading what was sent: a reset is a close too.
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
    p.err_line(|l| l.contains("refused"));
}

/// The proxy's resident set in KiB (`VmRSS` in /proc/<pid>/status).
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

#[test]
fn le_proxy_pauses_a_client_that_does_not_read_and_resumes_when_it_does() {
    const RSS_LIMIT_KIB: u64 = 64 * 1024;
    // Far more than the kernel's socket buffers on the way can hold, so that a proxy without
    // back-pressure would have to keep most of it; the cap only spares the machine in that case.
    const SEND_CAP: u64 = 256 << 20;
    let (p, addr) = proxy_to(echo_server());
    let mut hog = connect(addr);
    hog.set_nonblocking(true).unwrap();
    let block = vec![0x5a; 256 * 1024];
    let mut sent = 0u64;
    let mut last_progress = Instant::now();
    // Once the proxy stops reading from this client, its writes block for good: a second without
    // progress means the pipeline is full.
    while sent < SEND_CAP && last_progress.elapsed() < Duration::from_secs(1) {
        match hog.write(&block) {
            Ok(n) => {
                sent += n as u64;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("send failed after {sent} bytes: {e}"),
        }
    }
    let rss = vm_rss_kib(p.child.id());
    eprintln!("le-proxy RSS {rss} KiB after a client sent {sent} bytes without reading");
    assert!(
        rss < RSS_LIMIT_KIB,
        "le-proxy's RSS reached {rss} KiB while a client sent {sent} bytes without reading"
    );
    assert!(sent < SEND_CAP, "the proxy never stopped reading");
    // The stalled session does not stall the proxy: another client is served.
    let c = connect(addr);
    assert!(round_trip(c, b"still there", false) == b"still there");
    // Once the client reads, the proxy resumes each direction as its output drains: every byte
    // sent comes back.
    hog.set_nonblocking(false).unwrap();
    let mut got = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    while got < sent {
        let n = hog
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("after {got} of {sent} bytes: {e}"));
        assert!(n > 0, "EOF after {got} of {sent} bytes");
        assert!(buf[..n].iter().all(|&b| b == 0x5a), "corrupted echo");
        got += n as u64;
    }
}
