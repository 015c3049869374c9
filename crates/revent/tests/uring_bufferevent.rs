//! Socket bufferevents on an io_uring base do their I/O on the ring (receives into the provided
//! buffer ring, sends of the output): what that changes and what it must not. The behaviour every
//! backend shares is checked by the bufferevent suites, which run on io_uring too.

mod bev_common;

use bev_common::*;
use revent::{BevOptions, BufferEvent, Config, ConfigFlags, EventBase, Method, What};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// An io_uring base, or `None` (test skipped) where the kernel refuses io_uring; CI=true fails.
fn uring(readiness_only: bool) -> Option<EventBase> {
    let mut cfg = Config::new();
    for m in Method::ALL {
        if m != Method::IoUring {
            cfg.avoid_method(m);
        }
    }
    cfg.set_flag(ConfigFlags::IGNORE_ENV);
    cfg.uring_readiness_only(readiness_only);
    match EventBase::with_config(&cfg) {
        Ok(b) => Some(b),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "io_uring unavailable ({e}) and CI=true"
            );
            eprintln!("note: no io_uring here ({e}): test skipped");
            None
        }
    }
}

/// This thread's `read`- and `write`-family system calls so far (`/proc/thread-self/io`).
fn rw_syscalls() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    (field("syscr:"), field("syscw:"))
}

/// An echo bufferevent on `base`, and a peer thread that sends `trips` messages and checks each
/// answer. Returns the loop thread's read and write syscalls during the exchange.
fn echo_trips(base: &mut EventBase, trips: usize) -> (u64, u64) {
    let (fd, peer) = socketpair();
    let bev = BufferEvent::socket(base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
    bev.set_read_cb(base, |base, bev| {
        let data = bev.input(base).unwrap().pullup_all().unwrap().to_vec();
        bev.input(base).unwrap().drain(data.len()).unwrap();
        bev.write(base, &data).unwrap();
    })
    .unwrap();
    bev.enable(base, What::READ | What::WRITE).unwrap();
    let client = std::thread::spawn(move || {
        let mut peer = peer;
        for i in 0..trips {
            let msg = format!("message {i:05}");
            peer.write_all(msg.as_bytes()).unwrap();
            let mut got = vec![0u8; msg.len()];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(got, msg.as_bytes(), "trip {i}");
        }
    });
    // Reading /proc/thread-self/io is itself a few reads: measure them to take them off.
    let a = rw_syscalls();
    let b = rw_syscalls();
    let own = b.0 - a.0;
    let before = rw_syscalls();
    run_until(base, LIMIT * 3, |_| client.is_finished());
    let mut after = rw_syscalls();
    after.0 -= own;
    client.join().unwrap();
    bev.free(base).unwrap();
    (after.0 - before.0, after.1 - before.1)
}

/// The echo's bytes go through the ring: the loop thread makes no read or write system call,
/// where readiness-based I/O on the same backend makes one of each per trip.
#[test]
fn completion_io_makes_no_read_or_write_calls() {
    let Some(mut ring) = uring(false) else { return };
    let (r, w) = echo_trips(&mut ring, 200);
    assert_eq!((r, w), (0, 0), "reads and writes outside the ring");
    let Some(mut ready) = uring(true) else { return };
    let (r, w) = echo_trips(&mut ready, 200);
    assert!(r >= 200 && w >= 200, "readiness I/O: {r} reads, {w} writes");
}

/// More connections receive at once than the provided buffer ring has buffers: the receives that
/// find none fail with ENOBUFS and are submitted again; every byte arrives, once, in order.
#[test]
fn ring_running_out_of_buffers_loses_nothing() {
    let Some(mut base) = uring(false) else { return };
    let _ = raise_nofile(4096);
    let n = 600; // the ring has 256 buffers
    let mut peers = Vec::new();
    let mut bevs = Vec::new();
    for i in 0..n {
        let (fd, mut peer) = socketpair();
        let msg: Vec<u8> = (0..100).map(|k| (i * 7 + k) as u8).collect();
        peer.write_all(&msg).unwrap();
        let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
        bev.enable(&mut base, What::READ).unwrap();
        peers.push((peer, msg));
        bevs.push(bev);
    }
    run_until(&mut base, LIMIT, |b| {
        bevs.iter().all(|&bev| input_len(b, bev) >= 100)
    });
    for (bev, (_, msg)) in bevs.iter().zip(&peers) {
        assert_eq!(drain_input(&mut base, *bev), *msg);
    }
    // The second round: the buffers came back.
    for (peer, msg) in &mut peers {
        peer.write_all(msg).unwrap();
    }
    run_until(&mut base, LIMIT, |b| {
        bevs.iter().all(|&bev| input_len(b, bev) >= 100)
    });
    for (bev, (_, msg)) in bevs.iter().zip(&peers) {
        assert_eq!(drain_input(&mut base, *bev), *msg);
        bev.free(&mut base).unwrap();
    }
}

/// Freeing a bufferevent with a receive and a send in flight cancels them at once: the socket
/// closes (its peer sees EOF after what was sent), the fd number can be reused at once without
/// the old requests' completions reaching the new bufferevent, and dropping the base then is fine.
#[test]
fn free_with_requests_in_flight() {
    let Some(mut base) = uring(false) else { return };
    let (fd, mut peer) = socketpair();
    let old_fd = fd.as_raw_fd();
    let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
    bev.enable(&mut base, What::READ | What::WRITE).unwrap();
    // More than the socket holds: a send stays in flight; the receive is armed.
    bev.write(&mut base, &pattern(4 << 20)).unwrap();
    run_for(&mut base, Duration::from_millis(30));
    assert!(output_len(&mut base, bev) > 0, "the peer has not read yet");
    bev.free(&mut base).unwrap();

    // A new socket, very likely on the same fd number.
    let (fd2, mut peer2) = socketpair();
    let reused = fd2.as_raw_fd() == old_fd;
    let bev2 = BufferEvent::socket(&mut base, Some(fd2), BevOptions::CLOSE_ON_FREE).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    bev2.set_read_cb(&mut base, move |base, bev| {
        let input = bev.input(base).unwrap();
        g.borrow_mut()
            .extend_from_slice(input.pullup_all().unwrap());
        let n = input.len();
        input.drain(n).unwrap();
    })
    .unwrap();
    bev2.enable(&mut base, What::READ).unwrap();
    peer2.write_all(b"fresh").unwrap();
    run_until(&mut base, LIMIT, |_| got.borrow().len() >= 5);
    run_for(&mut base, Duration::from_millis(20));
    assert_eq!(*got.borrow(), b"fresh", "fd reused: {reused}");

    // The old peer reads what was sent, a prefix of the pattern, then EOF.
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    let mut all = Vec::new();
    peer.read_to_end(&mut all).unwrap();
    assert_eq!(all, pattern(all.len()), "a prefix of what was written");
    drop(base);
}

/// A bufferevent freed while the loop still has its receive's completion queued: the completion
/// is dropped with its buffer given back, and nothing reaches freed state.
#[test]
fn completion_after_free_is_dropped() {
    let Some(mut base) = uring(false) else { return };
    let (fd, mut peer) = socketpair();
    let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
    let seen = Rc::new(RefCell::new(0usize));
    let s = seen.clone();
    bev.set_read_cb(&mut base, move |_, _| *s.borrow_mut() += 1)
        .unwrap();
    bev.enable(&mut base, What::READ).unwrap();
    run_for(&mut base, Duration::from_millis(10)); // the receive is in flight
    peer.write_all(b"late").unwrap();
    std::thread::sleep(Duration::from_millis(20)); // its completion is posted
    bev.free(&mut base).unwrap();
    run_for(&mut base, Duration::from_millis(20));
    assert_eq!(*seen.borrow(), 0);
    assert!(bev.enable(&mut base, What::READ).is_err(), "stale handle");
}

/// Readiness-based I/O on io_uring (`Config::uring_readiness_only`) still works end to end.
#[test]
fn readiness_only_config_echoes() {
    let Some(mut base) = uring(true) else { return };
    echo_trips(&mut base, 20);
}

/// A bufferevent on something that is not a stream socket (a pipe here; tmux puts its panes'
/// terminals in bufferevents) keeps readiness-based I/O on an io_uring base, and works.
#[test]
fn a_pipe_keeps_readiness_io() {
    let Some(mut base) = uring(false) else { return };
    let (reader, mut writer) = std::io::pipe().unwrap();
    let fd = std::os::fd::OwnedFd::from(reader);
    let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
    bev.enable(&mut base, What::READ).unwrap();
    writer.write_all(b"through a pipe").unwrap();
    run_until(&mut base, LIMIT, |b| input_len(b, bev) == 14);
    assert_eq!(drain_input(&mut base, bev), b"through a pipe");
    drop(writer);
    let eof = Rc::new(RefCell::new(false));
    let e = eof.clone();
    bev.set_event_cb(&mut base, move |_, _, what| {
        *e.borrow_mut() = what.contains(revent::BevFlags::EOF)
    })
    .unwrap();
    run_until(&mut base, LIMIT, |_| *eof.borrow());
    bev.free(&mut base).unwrap();
}
