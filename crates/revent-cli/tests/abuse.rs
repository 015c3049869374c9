//! `revent echo` under abuse, end to end: clients that never read, half-close with echo still
//! queued, exhaust the fd table, or storm `--max-conns` from several threads.

mod common;

use common::*;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// The server's resident set in KiB (`VmRSS` in /proc/<pid>/status).
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// How long the memory test's client sends without reading: 4 s, or `REVENT_ECHO_ABUSE_SECS`.
fn abuse_time() -> Duration {
    let secs = std::env::var("REVENT_ECHO_ABUSE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4.0);
    Duration::from_secs_f64(secs)
}

/// Writes `block` on the non-blocking `s` until `deadline` or until `cap` bytes went out; returns
/// the count. With `give_up_after`, also stops once the socket took nothing for that long.
fn send_without_reading(
    s: &mut TcpStream,
    block: &[u8],
    deadline: Instant,
    cap: u64,
    give_up_after: Option<Duration>,
) -> u64 {
    let mut sent = 0u64;
    let mut last_progress = Instant::now();
    while Instant::now() < deadline && sent < cap {
        match s.write(block) {
            Ok(n) => {
                sent += n as u64;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if give_up_after.is_some_and(|t| last_progress.elapsed() >= t) {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("send failed after {sent} bytes: {e}"),
        }
    }
    sent
}

/// The server's stderr, line by line, from a thread.
fn stderr_lines(e: &mut Echo) -> mpsc::Receiver<String> {
    let err = BufReader::new(e.stderr());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in err.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

// ---- 1. a client that sends and never reads costs bounded memory ----

#[test]
fn a_client_that_never_reads_leaves_the_server_small_and_others_served() {
    const RSS_LIMIT_KIB: u64 = 64 * 1024;
    // The unfixed server takes everything it is sent; stop there rather than fill the machine.
    const SEND_CAP: u64 = 256 << 20;
    let e = Echo::start(&[]);
    let pid = e.child.id();
    let mut hog = e.connect();
    hog.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + abuse_time();
    let sender = thread::spawn(move || {
        let block = vec![0x5a; 256 * 1024];
        let sent = send_without_reading(&mut hog, &block, deadline, SEND_CAP, None);
        (hog, sent)
    });
    // Meanwhile another client is echoed byte for byte, and the server's size is watched.
    let mut other = e.connect();
    let block = pattern_block();
    let mut peak = 0;
    let mut round = 0usize;
    while !sender.is_finished() {
        let off = (round * 7919) % PERIOD;
        echo_once(&mut other, &block[off..off + 64 * 1024]);
        peak = peak.max(vm_rss_kib(pid));
        round += 1;
        thread::sleep(Duration::from_millis(10));
    }
    let (hog, sent) = sender.join().unwrap();
    peak = peak.max(vm_rss_kib(pid));
    // Shown with --nocapture (REVENT_ECHO_ABUSE_SECS=30 for the long run).
    eprintln!("server RSS peak {peak} KiB; the client sent {sent} bytes; {round} echoes meanwhile");
    assert!(
        peak < RSS_LIMIT_KIB,
        "the server's RSS reached {peak} KiB while a client sent {sent} bytes without reading"
    );
    assert!(round > 0, "the other client was never echoed");
    echo_once(&mut other, b"still served");
    drop(hog);
}

// ---- 2. half-close: every byte comes back before the server closes ----

#[test]
fn half_close_gets_all_32_mib_back() {
    let total = 32u64 << 20;
    // With the default --max-output the server stops reading while echo is queued; with a large
    // one it takes all 32 MiB at once, so most of it is still queued when the EOF arrives.
    for opts in [&[][..], &["--max-output", "67108864"]] {
        let mut e = Echo::start(opts);
        let c = e.connect();
        set_buf(&c, libc::SO_RCVBUF, 32 * 1024);
        // A reader slower than the writer, so that echo is still queued in the server when the
        // client's EOF arrives.
        exchange(c, total, 64 * 1024, Duration::from_millis(1));
        let (status, out) = e.terminate();
        assert_eq!(status.code(), Some(0));
        assert_eq!(
            summary_line(&out),
            format!("revent echo: 1 connections, 0 refused, {total} bytes echoed"),
            "{opts:?}"
        );
    }
}

#[test]
fn a_half_closed_client_that_never_reads_is_closed_after_the_drain_timeout() {
    // --max-output above what is sent, so the server reads up to the EOF.
    let mut e = Echo::start(&["-v", "--drain-timeout", "0.5", "--max-output", "67108864"]);
    let lines = stderr_lines(&mut e);
    let mut c = e.connect();
    set_buf(&c, libc::SO_RCVBUF, 32 * 1024);
    let me = c.local_addr().unwrap();
    c.set_nonblocking(true).unwrap();
    // More than the kernel buffers on both sides hold, so echo stays queued in the server.
    let total = 16u64 << 20;
    let block = vec![0x3c; 256 * 1024];
    let sent = send_without_reading(&mut c, &block, Instant::now() + LIMIT, total, None);
    assert!(sent >= total, "the server took only {sent} bytes");
    c.shutdown(Shutdown::Write).unwrap();
    let half_closed = Instant::now();
    let want = format!("close {me} (");
    let line = loop {
        let line = lines
            .recv_timeout(LIMIT)
            .expect("the server never closed the connection");
        if line.starts_with(&want) {
            break line;
        }
    };
    let waited = half_closed.elapsed();
    assert!(line.contains("TIMEOUT"), "{line}");
    assert!(
        waited >= Duration::from_millis(400),
        "closed {waited:?} after the EOF, before the drain timeout: {line}"
    );
}

// ---- 3. the summary counts bytes that reached the client ----

fn bytes_echoed(summary: &str) -> u64 {
    summary
        .strip_suffix(" bytes echoed")
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {summary:?}"))
}

/// Reads until EOF or a reset; returns the count.
fn read_all_there_is(s: &mut TcpStream) -> u64 {
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("read failed after {got} bytes: {e}"),
        }
    }
}

#[test]
fn summary_does_not_count_echo_the_client_never_got() {
    let mut e = Echo::start(&[]);
    let mut c = e.connect();
    c.set_nonblocking(true).unwrap();
    let block = vec![0xa5; 256 * 1024];
    // Until the server (or its kernel) stops taking more, never reading.
    let sent = send_without_reading(
        &mut c,
        &block,
        Instant::now() + LIMIT,
        64 << 20,
        Some(Duration::from_millis(300)),
    );
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0));
    let echoed = bytes_echoed(summary_line(&out));
    // The server is gone: what it sent is all in this socket now.
    c.set_nonblocking(false).unwrap();
    let received = read_all_there_is(&mut c);
    assert!(
        received < sent,
        "the test needs echo left unsent: sent {sent}, received {received}"
    );
    assert!(
        echoed <= received,
        "summary says {echoed} bytes echoed, the client received {received} (sent {sent})"
    );
    // Not trivially: what the client received and acknowledged counts.
    assert!(
        echoed > 0,
        "the client received {received} bytes, none counted"
    );
}

// ---- 5. a full fd table: one line per streak of accept errors ----

#[test]
fn a_full_fd_table_is_reported_once_per_streak() {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_revent"));
    cmd.args(["echo", "--addr", "127.0.0.1", "--port", "0"]);
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 32,
                rlim_max: 32,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut e = Echo::spawn(cmd);
    let err = e.stderr();
    let log = thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(err).read_to_string(&mut s);
        s
    });
    // More connections than the server has fds: the first are served, the rest wait in the
    // backlog while accepting fails.
    let mut conns: Vec<TcpStream> = (0..40).map(|_| e.connect()).collect();
    echo_once(&mut conns[0], b"first");
    // The listener retries every 100 ms meanwhile.
    thread::sleep(Duration::from_millis(1500));
    // Closing the first (accepted) ones frees fds for the backlog and for one more client.
    conns.drain(..24);
    let mut late = e.connect();
    echo_once(&mut late, b"served again");
    drop((conns, late));
    let (status, _) = e.terminate();
    assert_eq!(status.code(), Some(0));
    let log = log.join().unwrap();
    let errors = log.lines().filter(|l| l.contains("accept:")).count();
    assert!(
        (1..=2).contains(&errors),
        "{errors} accept error lines in 1.5 s of a full fd table:\n{log}"
    );
}

// ---- 6. --max-conns holds exactly with several threads ----

/// Whether the server echoes on `c` (rather than closing it).
fn is_served(mut c: &TcpStream) -> bool {
    if c.write_all(b"?").is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(c.read(&mut b), Ok(1))
}

#[test]
fn max_conns_holds_under_two_threads() {
    const K: usize = 5;
    const ROUNDS: usize = 100;
    const CLIENTS: usize = 2;
    const EACH: usize = 25;
    let e = Echo::start(&["--threads", "2", "--max-conns", &K.to_string()]);
    let start = Instant::now();
    while listeners_on(e.addr.port()) < 2 {
        assert!(start.elapsed() < LIMIT, "the worker does not listen");
        thread::sleep(Duration::from_millis(10));
    }
    let mut most = 0;
    for round in 0..ROUNDS {
        // Every client thread opens its connections at the same moment, so both server threads
        // accept at once.
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (barrier, addr) = (barrier.clone(), e.addr);
                thread::spawn(move || {
                    barrier.wait();
                    (0..EACH)
                        .map(|_| TcpStream::connect(addr).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let conns: Vec<TcpStream> = clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        for c in &conns {
            c.set_read_timeout(Some(LIMIT)).unwrap();
        }
        // All are still open: those served are served at the same time.
        let served = conns.iter().filter(|c| is_served(c)).count();
        assert!(
            served <= K,
            "round {round}: {served} connections served at once with --max-conns {K}"
        );
        most = most.max(served);
        drop(conns);
        // Let the server see these close before the next round.
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        most, K,
        "the limit was never reached: the test tested nothing"
    );
}
