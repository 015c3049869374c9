//! Rate limits: a bufferevent's read and write rates, and a group sharing one budget.
//!
//! What is asserted is the budget, not a speed: over a 2 s window the bytes moved never exceed what
//! the refills allowed (a slow or loaded machine can only move less), and reach at least a loose
//! fraction of it (the limiter does not starve the connection). Every backend, and on io_uring
//! both with ring I/O and (`.ci/run`) with readiness I/O.

mod bev_common;

use bev_common::*;
use revent::{BevOptions, BufferEvent, EventBase, Method, RateLimit, RateLimitGroup, What};
use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const RATE: usize = 20_000; // bytes per tick
const TICK: Duration = Duration::from_millis(100); // so 200 KB/s
const SPAN: Duration = Duration::from_secs(2);

fn cfg() -> RateLimit {
    RateLimit {
        read_rate: RATE,
        read_burst: RATE,
        write_rate: RATE,
        write_burst: RATE,
        tick: TICK,
    }
}

/// A peer that writes as fast as it can until told to stop.
fn flood(mut peer: UnixStream, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let chunk = vec![1u8; 16384];
        while !stop.load(Ordering::Relaxed) {
            if peer.write_all(&chunk).is_err() {
                break;
            }
        }
    })
}

/// A peer that reads everything until EOF.
fn sink(mut peer: UnixStream) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut n = 0u64;
        loop {
            match peer.read(&mut buf) {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k as u64,
            }
        }
    })
}

/// Bytes moved between half a tick after the start and 2 s later, and how long that was.
fn measure(
    base: &mut EventBase,
    mut moved: impl FnMut(&mut EventBase) -> usize,
) -> (usize, Duration) {
    let start = Instant::now();
    run_until(base, SPAN * 10, |_| start.elapsed() >= TICK / 2);
    let (t0, n0) = (Instant::now(), moved(base));
    run_until(base, SPAN * 10, |_| t0.elapsed() >= SPAN);
    let (elapsed, n1) = (t0.elapsed(), moved(base));
    (n1 - n0, elapsed)
}

/// `bytes` moved in `elapsed` kept to the budget: at most a burst plus one refill per tick begun
/// (the window may straddle ticks at both ends), and at least 30% of the configured rate.
fn assert_budget(bytes: usize, elapsed: Duration, what: &str) {
    let ticks = elapsed.as_secs_f64() / TICK.as_secs_f64();
    let most = RATE * (ticks.ceil() as usize + 1);
    let least = (0.3 * RATE as f64 * ticks) as usize;
    eprintln!("{what}: {bytes} bytes in {elapsed:?} ({ticks:.1} ticks); budget {most}");
    assert!(
        bytes <= most,
        "{what}: {bytes} bytes in {ticks:.1} ticks, more than the budget of {most}"
    );
    assert!(
        bytes >= least,
        "{what}: {bytes} bytes in {ticks:.1} ticks: the limiter starved it (< {least})"
    );
}

/// Counts bytes read by `bev` (draining its input).
fn count_reads(base: &mut EventBase, bev: BufferEvent) -> Rc<Cell<usize>> {
    let n = Rc::new(Cell::new(0));
    let c = n.clone();
    bev.set_read_cb(base, move |base, bev| {
        let input = bev.input(base).unwrap();
        c.set(c.get() + input.len());
        let len = input.len();
        input.drain(len).unwrap();
    })
    .unwrap();
    n
}

#[test]
fn read_rate_of_one_bufferevent_all_backends() {
    for m in backends() {
        read_rate_of_one_bufferevent(m);
    }
}

fn read_rate_of_one_bufferevent(m: Method) {
    let mut base = base(m);
    let (fd, peer) = socketpair();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = flood(peer, stop.clone());
    let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
    let n = count_reads(&mut base, bev);
    bev.set_rate_limit(&mut base, Some(cfg())).unwrap();
    bev.enable(&mut base, What::READ).unwrap();
    let (bytes, elapsed) = measure(&mut base, |_| n.get());
    stop.store(true, Ordering::Relaxed);
    bev.free(&mut base).unwrap();
    writer.join().unwrap();
    assert_budget(bytes, elapsed, "read");
}

#[test]
fn write_rate_of_one_bufferevent_all_backends() {
    for m in backends() {
        write_rate_of_one_bufferevent(m);
    }
}

fn write_rate_of_one_bufferevent(m: Method) {
    let mut base = base(m);
    let (fd, peer) = socketpair();
    let reader = sink(peer);
    let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
    let queued = Rc::new(Cell::new(0usize));
    // Keep plenty of output queued.
    let q = queued.clone();
    bev.set_write_cb(&mut base, move |base, bev| {
        bev.write(base, &[2u8; 65536]).unwrap();
        q.set(q.get() + 65536);
    })
    .unwrap();
    bev.set_watermark(&mut base, What::WRITE, 65536, 0).unwrap();
    bev.set_rate_limit(&mut base, Some(cfg())).unwrap();
    bev.write(&mut base, &vec![2u8; 1 << 20]).unwrap();
    queued.set(1 << 20);
    let (bytes, elapsed) = measure(&mut base, |b| queued.get() - bev.output(b).unwrap().len());
    bev.free(&mut base).unwrap();
    reader.join().unwrap();
    assert_budget(bytes, elapsed, "write");
}

#[test]
fn removing_the_limit_lets_data_flow_freely_all_backends() {
    for m in backends() {
        removing_the_limit_lets_data_flow_freely(m);
    }
}

fn removing_the_limit_lets_data_flow_freely(m: Method) {
    let mut base = base(m);
    let (fd, peer) = socketpair();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = flood(peer, stop.clone());
    let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
    let n = count_reads(&mut base, bev);
    let tiny = RateLimit {
        read_rate: 1000,
        read_burst: 1000,
        write_rate: 1000,
        write_burst: 1000,
        tick: Duration::from_secs(1),
    };
    bev.set_rate_limit(&mut base, Some(tiny)).unwrap();
    bev.enable(&mut base, What::READ).unwrap();
    run_for(&mut base, Duration::from_millis(300));
    assert!(n.get() <= 1000, "read {} with a 1000-byte budget", n.get());
    bev.set_rate_limit(&mut base, None).unwrap();
    // No rate claim: just that far more than the old budget arrives.
    run_until(&mut base, Duration::from_secs(20), |_| n.get() > 1 << 20);
    stop.store(true, Ordering::Relaxed);
    bev.free(&mut base).unwrap();
    writer.join().unwrap();
    // A limit that could never refill is refused.
    let (fd, _p) = socketpair();
    let b2 = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
    assert!(b2
        .set_rate_limit(
            &mut base,
            Some(RateLimit {
                tick: Duration::ZERO,
                ..tiny
            })
        )
        .is_err());
    b2.free(&mut base).unwrap();
}

#[test]
fn group_shares_one_read_budget_all_backends() {
    for m in backends() {
        group_shares_one_read_budget(m);
    }
}

fn group_shares_one_read_budget(m: Method) {
    let mut base = base(m);
    let group = RateLimitGroup::new(&mut base, cfg()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut members = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..3 {
        let (fd, peer) = socketpair();
        writers.push(flood(peer, stop.clone()));
        let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
        counts.push(count_reads(&mut base, bev));
        group.add(&mut base, bev).unwrap();
        bev.enable(&mut base, What::READ).unwrap();
        members.push(bev);
    }
    let (bytes, elapsed) = measure(&mut base, |_| counts.iter().map(|c| c.get()).sum());
    let per: Vec<usize> = counts.iter().map(|c| c.get()).collect();
    let total: usize = per.iter().sum();
    stop.store(true, Ordering::Relaxed);
    for b in &members {
        b.free(&mut base).unwrap();
    }
    for w in writers {
        w.join().unwrap();
    }
    group.free(&mut base).unwrap();
    assert_budget(bytes, elapsed, "group read");
    for (i, &n) in per.iter().enumerate() {
        assert!(n >= total / 10, "member {i} starved: {per:?}");
    }
}

#[test]
fn group_shares_one_write_budget_all_backends() {
    for m in backends() {
        group_shares_one_write_budget(m);
    }
}

fn group_shares_one_write_budget(m: Method) {
    let mut base = base(m);
    let group = RateLimitGroup::new(&mut base, cfg()).unwrap();
    let mut readers = Vec::new();
    let mut members = Vec::new();
    let queued = Rc::new(Cell::new(0usize));
    for _ in 0..3 {
        let (fd, peer) = socketpair();
        readers.push(sink(peer));
        let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
        let q = queued.clone();
        bev.set_write_cb(&mut base, move |base, bev| {
            bev.write(base, &[3u8; 65536]).unwrap();
            q.set(q.get() + 65536);
        })
        .unwrap();
        bev.set_watermark(&mut base, What::WRITE, 65536, 0).unwrap();
        group.add(&mut base, bev).unwrap();
        bev.write(&mut base, &vec![3u8; 1 << 20]).unwrap();
        queued.set(queued.get() + (1 << 20));
        members.push(bev);
    }
    let (bytes, elapsed) = measure(&mut base, |b| {
        let left: usize = members.iter().map(|m| m.output(b).unwrap().len()).sum();
        queued.get() - left
    });
    for b in &members {
        b.free(&mut base).unwrap();
    }
    for r in readers {
        r.join().unwrap();
    }
    group.free(&mut base).unwrap();
    assert_budget(bytes, elapsed, "group write");
}
