//! `revent echo` under abuse, end to end: clients that never read, half-close with echo still
//! queued, exhaust the fd table, or storm `--max-conns` from several threads.

mod common;

use common::*;
use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

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
    const ROUNDS: usize = 60;
    const CLIENTS: usize = 5;
    const EACH: usize = 10;
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
