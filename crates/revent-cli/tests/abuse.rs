//! `revent echo` under abuse, end to end: clients that never read, half-close with echo still
//! queued, exhaust the fd table, or storm `--max-conns` from several threads.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

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
