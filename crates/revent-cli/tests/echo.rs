//! `revent echo` end to end: the real binary on an ephemeral port, talked to over TCP, stopped with
//! SIGTERM. Every child is killed if a test panics.

mod common;

use common::*;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// `--method NAME` runs the service on that backend (and says so), whichever it is.
#[test]
fn every_method_serves() {
    for m in ["epoll", "io_uring", "poll", "select"] {
        if m == "io_uring" && !revent::EventBase::method_available(revent::Method::IoUring) {
            // An old kernel or a container's seccomp profile; CI runs where io_uring works.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "io_uring is unavailable on this machine, and CI=true requires it"
            );
            eprintln!("note: the kernel refuses io_uring here: its echo run skipped");
            continue;
        }
        let mut e = Echo::start(&["--method", m]);
        assert!(
            e.first_line.ends_with(&format!(", {m})\n")),
            "{m}: {}",
            e.first_line
        );
        let mut conns: Vec<TcpStream> = (0..3).map(|_| e.connect()).collect();
        for round in 0..3 {
            for (i, c) in conns.iter_mut().enumerate() {
                echo_once(c, format!("{m} conn {i} round {round}\n").as_bytes());
            }
        }
        // A MiB through one connection, written and read at once, byte for byte.
        exchange(conns.remove(0), 1 << 20, 64 * 1024, Duration::ZERO);
        drop(conns);
        let (status, out) = e.terminate();
        assert_eq!(status.code(), Some(0), "{m}: {status}");
        assert!(
            summary_line(&out).starts_with("revent echo: 3 connections, 0 refused"),
            "{m}: {out}"
        );
    }
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
    exchange(c, total, MAX_IO, Duration::ZERO);
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
            "--method",
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
        &["echo", "--method", "kqueue"],
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
