//! revent's `Evbuffer` against C libevent's `evbuffer`, side by side.
//!
//! `run(args)` compiles `c/evbuffer_bench.c` with `cc ... -levent_core` at run time (never at build
//! time), then for each round runs every workload on both sides, alternating C and revent, and prints
//! the median of each and their ratio. Both sides generate the same input and print a check value that
//! must agree, or the run fails.
//!
//! Options: `--rounds N` (default 3), `--scale F` (multiplies every workload size, default 1.0),
//! `--only NAME` (one workload: adddrain, readln, readln_into, search, socketpair), `--rust-only`
//! (run only revent's side once and print its time and check value: for instruction counts under
//! `valgrind --tool=callgrind`, where the C side is measured by running `evbuffer_bench` itself).

use std::io::Read as _;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use revent::buffer::{EolStyle, Evbuffer};

struct Workload {
    name: &'static str,
    /// The C program's workload name (readln_into is compared with C's readln).
    c_name: &'static str,
    size: usize,
    what: &'static str,
    rust: fn(usize) -> (u64, u64),
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "adddrain",
        c_name: "adddrain",
        size: 10_000_000,
        what: "add+drain 64 B pieces, 10M",
        rust: add_drain,
    },
    Workload {
        name: "readln",
        c_name: "readln",
        size: 100_000_000,
        what: "readln (CRLF) over 100 MB of lines, a new Vec per line",
        rust: readln,
    },
    Workload {
        name: "readln_into",
        c_name: "readln",
        size: 100_000_000,
        what: "readln_into a reused Vec, same input (vs C readln)",
        rust: readln_into,
    },
    Workload {
        name: "search",
        c_name: "search",
        size: 100_000_000,
        what: "search 16-byte needle at the end of 100 MB, 5 times",
        rust: search,
    },
    Workload {
        name: "socketpair",
        c_name: "socketpair",
        size: 1 << 30,
        what: "1 GiB socketpair -> read -> buffer -> write -> socketpair",
        rust: socketpair,
    },
];

/// Entry point: `revent-bench evbuffer [--rounds N] [--scale F] [--only NAME]`.
pub fn run(args: &[String]) {
    let mut rounds = 3usize;
    let mut scale = 1.0f64;
    let mut only: Option<String> = None;
    let mut rust_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rust-only" => rust_only = true,
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(3).max(1),
            "--scale" => scale = it.next().and_then(|v| v.parse().ok()).unwrap_or(1.0),
            "--only" => only = it.next().cloned(),
            other => {
                eprintln!("evbuffer: unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    if rust_only {
        for w in WORKLOADS
            .iter()
            .filter(|w| only.is_none() || only.as_deref() == Some(w.name))
        {
            let size = ((w.size as f64 * scale) as usize).max(1024);
            let (ns, check) = (w.rust)(size);
            println!("{} size={size} ns={ns} check={check}", w.name);
        }
        return;
    }
    let exe = match compile_c() {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(1);
        }
    };
    let selected: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| only.is_none() || only.as_deref() == Some(w.name))
        .collect();
    let mut c_times: Vec<Vec<u64>> = vec![Vec::new(); selected.len()];
    let mut r_times: Vec<Vec<u64>> = vec![Vec::new(); selected.len()];
    for round in 0..rounds {
        for (i, w) in selected.iter().enumerate() {
            let size = ((w.size as f64 * scale) as usize).max(1024);
            let (c_ns, c_check) = run_c(&exe, w.c_name, size);
            let (r_ns, r_check) = (w.rust)(size);
            if c_check != r_check {
                eprintln!(
                    "evbuffer {}: check mismatch, C {c_check} vs revent {r_check}: not a result",
                    w.name
                );
                std::process::exit(1);
            }
            eprintln!(
                "round {} {:12} C {:>8.1} ms  revent {:>8.1} ms",
                round + 1,
                w.name,
                c_ns as f64 / 1e6,
                r_ns as f64 / 1e6
            );
            c_times[i].push(c_ns);
            r_times[i].push(r_ns);
        }
    }
    println!("| workload | C libevent (ms) | revent (ms) | C / revent |");
    println!("|---|---|---|---|");
    for (i, w) in selected.iter().enumerate() {
        let c = median(&mut c_times[i]);
        let r = median(&mut r_times[i]);
        println!(
            "| {} | {:.1} | {:.1} | {:.2}x |",
            w.what,
            c as f64 / 1e6,
            r as f64 / 1e6,
            c as f64 / r as f64
        );
    }
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Compiles the C side (once, cached under target/cref/) with the crate's shared helper.
fn compile_c() -> Result<PathBuf, String> {
    crate::cref::try_build("evbuffer_bench", &["-levent_core"])
}

fn run_c(exe: &PathBuf, workload: &str, size: usize) -> (u64, u64) {
    let out = Command::new(exe)
        .arg(workload)
        .arg(size.to_string())
        .output()
        .expect("run the C benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "C benchmark failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::process::exit(1);
    }
    let field = |name: &str| -> u64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("C benchmark printed no {name}: {text}"))
    };
    (field("ns="), field("check="))
}

/// xorshift64*, the same sequence as the C side's generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(2685821657736338717)
    }
}

/// Lines of 20..139 lowercase letters ended by "\r\n", `total` bytes; identical to C's `gen_lines`.
fn gen_lines(total: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(total);
    let mut rng = Rng(0x9e3779b97f4a7c15);
    while p.len() < total {
        let len = 20 + (rng.next() % 120) as usize;
        for _ in 0..len {
            if p.len() == total {
                break;
            }
            p.push(b'a' + (rng.next() % 26) as u8);
        }
        if p.len() < total {
            p.push(b'\r');
        }
        if p.len() < total {
            p.push(b'\n');
        }
    }
    p
}

// The timed parts are separate functions, as on the C side, so that callgrind can count just them
// (`--toggle-collect='*timed_*'`).

fn add_drain(n: usize) -> (u64, u64) {
    let mut buf = Evbuffer::new();
    let piece = [b'p'; 64];
    buf.add(&[b'b'; 4000]).unwrap();
    let t = Instant::now();
    timed_adddrain(&mut buf, &piece, n);
    (t.elapsed().as_nanos() as u64, buf.len() as u64)
}

#[inline(never)]
fn timed_adddrain(buf: &mut Evbuffer, piece: &[u8], n: usize) {
    for _ in 0..n {
        buf.add(piece).unwrap();
        buf.drain(64).unwrap();
    }
}

fn readln(size: usize) -> (u64, u64) {
    let text = gen_lines(size);
    let t = Instant::now();
    let check = timed_readln(&text);
    (t.elapsed().as_nanos() as u64, check)
}

#[inline(never)]
fn timed_readln(text: &[u8]) -> u64 {
    let mut buf = Evbuffer::new();
    let (mut lines, mut bytes) = (0u64, 0u64);
    for piece in text.chunks(16384) {
        buf.add(piece).unwrap();
        while let Some((line, _consumed)) = buf.readln(EolStyle::Crlf).unwrap() {
            lines += 1;
            bytes += line.len() as u64;
        }
    }
    lines * 1000003 + bytes
}

fn readln_into(size: usize) -> (u64, u64) {
    let text = gen_lines(size);
    let t = Instant::now();
    let check = timed_readln_into(&text);
    (t.elapsed().as_nanos() as u64, check)
}

#[inline(never)]
fn timed_readln_into(text: &[u8]) -> u64 {
    let mut buf = Evbuffer::new();
    let mut line = Vec::new();
    let (mut lines, mut bytes) = (0u64, 0u64);
    for piece in text.chunks(16384) {
        buf.add(piece).unwrap();
        while buf
            .readln_into(EolStyle::Crlf, &mut line)
            .unwrap()
            .is_some()
        {
            lines += 1;
            bytes += line.len() as u64;
        }
    }
    lines * 1000003 + bytes
}

fn search(size: usize) -> (u64, u64) {
    let mut text = gen_lines(size);
    let needle = &b"needle-0123456789"[..16];
    text[size - 16..].copy_from_slice(needle);
    let mut buf = Evbuffer::new();
    for piece in text.chunks(65536) {
        buf.add(piece).unwrap();
    }
    let t = Instant::now();
    let check = timed_search(&buf, needle);
    (t.elapsed().as_nanos() as u64, check)
}

#[inline(never)]
fn timed_search(buf: &Evbuffer, needle: &[u8]) -> u64 {
    let mut check = 0u64;
    for _ in 0..5 {
        let p = buf.search(needle, None).unwrap();
        check += p.map_or(u64::MAX, |p| p.position() as u64);
    }
    check
}

fn socketpair(size: usize) -> (u64, u64) {
    use std::io::{ErrorKind, Write as _};
    let (mut a0, a1) = UnixStream::pair().unwrap();
    let (b0, mut b1) = UnixStream::pair().unwrap();
    for s in [&a0, &a1, &b0, &b1] {
        s.set_nonblocking(true).unwrap();
    }
    let blk = 256 * 1024;
    let block: Vec<u8> = (0..blk).map(|i| (i * 31 % 251) as u8).collect();
    let mut sink = vec![0u8; blk];
    let (mut sent, mut got, mut check) = (0usize, 0usize, 0u64);
    let mut buf = Evbuffer::new();
    let would_block = |e: &revent::Error| matches!(e, revent::Error::Io(io) if io.kind() == ErrorKind::WouldBlock);
    let t = Instant::now();
    while got < size {
        while sent < size {
            let off = sent % blk;
            let want = (size - sent).min(blk - off);
            match a0.write(&block[off..off + want]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        loop {
            match buf.read(&a1, usize::MAX) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if would_block(&e) => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        while !buf.is_empty() {
            match buf.write(&b0) {
                Ok(_) => {}
                Err(e) if would_block(&e) => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        loop {
            match b1.read(&mut sink) {
                Ok(n) => {
                    check += sink[..n].iter().map(|&b| b as u64).sum::<u64>();
                    got += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    (t.elapsed().as_nanos() as u64, check)
}
