//! `revent-bench echo-server-uring PORT`: an echo server written directly on io_uring, the "io_uring
//! limit" row of the echo benchmark (what a completion-based server can reach on this kernel, as
//! `c/echo_epoll.c` is the limit of a readiness one).
//!
//! One ring, one thread: `IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN` (completion work runs only
//! when we enter, never interrupting us), a multishot accept on the listener, a multishot receive per
//! connection into a provided buffer ring, and each received buffer sent back as it is (no copy);
//! the buffer returns to the ring when its send completes. A connection's sends go one at a time,
//! in order; a short send resubmits the rest. Every iteration is one `io_uring_enter` that submits
//! what the last completions asked for and waits for the next. Accepted sockets get TCP_NODELAY,
//! like the C reference servers. Prints `port=N method=io_uring-reference` once listening on
//! 127.0.0.1 (PORT 0 = an ephemeral port).
//!
//! Buffer ring memory: [`BUFS`] buffers of [`BUF_SIZE`] bytes (32 MiB), enough that 1000
//! connections with 64-byte messages, or 50 with 16 KiB ones, never run dry; if they do (`-ENOBUFS`)
//! the connection's receive is armed again once a send returns a buffer.

#![allow(unsafe_code)] // the ring: buffers the kernel reads and writes (see each block)

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::collections::VecDeque;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};

const BUFS: u16 = 2048;
const BUF_SIZE: usize = 16 * 1024;
const GROUP: u16 = 7;

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const CLOSE: u64 = 3;

fn ud(kind: u64, fd: i32) -> u64 {
    (kind << 32) | u64::from(fd as u32)
}

/// The provided buffer ring and the buffers it hands out, alive for the whole process.
struct BufRing {
    entries: *mut types::BufRingEntry,
    tail: u16,
    mem: Box<[u8]>,
}

impl BufRing {
    fn new(ring: &IoUring) -> std::io::Result<BufRing> {
        let bytes = usize::from(BUFS) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping, page-aligned as the kernel requires of a buffer
        // ring; checked for failure below, and never unmapped (the server runs until killed).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mut br = BufRing {
            entries: p.cast(),
            tail: 0,
            mem: vec![0u8; usize::from(BUFS) * BUF_SIZE].into_boxed_slice(),
        };
        // SAFETY: the ring memory is valid for `BUFS` entries and lives as long as the process.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(p as u64, BUFS, GROUP, 0)?
        };
        for bid in 0..BUFS {
            br.give(bid);
        }
        Ok(br)
    }

    /// Hands buffer `bid` (not in use by any send) back to the kernel.
    fn give(&mut self, bid: u16) {
        let addr = self.mem[usize::from(bid) * BUF_SIZE..].as_mut_ptr() as u64;
        let i = usize::from(self.tail & (BUFS - 1));
        // SAFETY: `i` < BUFS, inside the mapping; the kernel reads entries only up to the tail we
        // publish next, so this one is ours to write.
        let e = unsafe { &mut *self.entries.add(i) };
        e.set_addr(addr);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field overlays entry 0's reserved field, inside the mapping, and the
        // kernel reads it atomically: publish with a release store after the entry is written.
        unsafe {
            let t = types::BufRingEntry::tail(self.entries).cast_mut();
            (*t.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }

    fn buf(&self, bid: u16, off: u32) -> *const u8 {
        self.mem[usize::from(bid) * BUF_SIZE + off as usize..].as_ptr()
    }
}

#[derive(Default)]
struct Conn {
    /// Received buffers waiting to be sent back: (buffer id, bytes already sent, length). The front
    /// one is in flight when `sending`.
    queue: VecDeque<(u16, u32, u32)>,
    sending: bool,
    /// The multishot receive ended (EOF, an error): close once the sends are done.
    done: bool,
    /// The receive stopped for want of buffers: arm it again when one comes back.
    starved: bool,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let port: u16 = match args {
        [p] => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        _ => return Err("usage: revent-bench echo-server-uring PORT".into()),
    };
    let _ = crate::sys::raise_nofile(20_000);
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(65536)
        .build(4096)
        .map_err(|e| format!("io_uring: {e}"))?;
    let mut bufs = BufRing::new(&ring).map_err(|e| format!("buffer ring: {e}"))?;
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("listen on 127.0.0.1:{port}: {e}"))?;
    let lfd = listener.as_raw_fd();
    println!(
        "port={} method=io_uring-reference",
        listener.local_addr().map_err(|e| e.to_string())?.port()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut sqes: Vec<squeue::Entry> = Vec::new();
    let mut starved: Vec<i32> = Vec::new();
    sqes.push(accept(lfd));
    loop {
        for e in sqes.drain(..) {
            // SAFETY: every entry either points to nothing (accept, receive, close) or to a buffer
            // of `bufs`, which lives as long as the process and is not handed back to the kernel
            // until that send completes.
            while unsafe { ring.submission().push(&e) }.is_err() {
                ring.submit().map_err(|e| format!("submit: {e}"))?;
            }
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(format!("io_uring_enter: {e}")),
        }
        for cqe in ring.completion() {
            let (kind, fd) = (cqe.user_data() >> 32, cqe.user_data() as u32 as i32);
            let res = cqe.result();
            let more = cqueue::more(cqe.flags());
            match kind {
                ACCEPT => {
                    if res >= 0 {
                        set_nodelay(res);
                        let i = res as usize;
                        if conns.len() <= i {
                            conns.resize_with(i + 1, || None);
                        }
                        conns[i] = Some(Conn::default());
                        sqes.push(recv(res));
                    }
                    if !more {
                        sqes.push(accept(lfd));
                    }
                }
                RECV => {
                    let Some(c) = conns.get_mut(fd as usize).and_then(Option::as_mut) else {
                        continue;
                    };
                    if res > 0 {
                        let Some(bid) = cqueue::buffer_select(cqe.flags()) else {
                            continue; // cannot happen: a receive from a buffer group names one
                        };
                        c.queue.push_back((bid, 0, res as u32));
                        if !c.sending {
                            c.sending = true;
                            sqes.push(send(&bufs, fd, c.queue[0]));
                        }
                        if !more {
                            sqes.push(recv(fd));
                        }
                    } else if res == -libc::ENOBUFS {
                        c.starved = true;
                        starved.push(fd);
                    } else if !more {
                        c.done = true;
                        if !c.sending {
                            conns[fd as usize] = None;
                            sqes.push(close(fd));
                        }
                    }
                }
                SEND => {
                    let Some(c) = conns.get_mut(fd as usize).and_then(Option::as_mut) else {
                        continue;
                    };
                    let Some(front) = c.queue.front_mut() else {
                        continue; // cannot happen: a send completes only while queued
                    };
                    if res < 0 {
                        // The peer is gone: give every buffer back; the receive ends by itself.
                        for (bid, _, _) in c.queue.drain(..) {
                            bufs.give(bid);
                        }
                        c.sending = false;
                    } else {
                        front.1 += res as u32;
                        if front.1 == front.2 {
                            if let Some((bid, _, _)) = c.queue.pop_front() {
                                bufs.give(bid);
                            }
                        }
                        c.sending = !c.queue.is_empty();
                        if c.sending {
                            sqes.push(send(&bufs, fd, c.queue[0]));
                        }
                    }
                    if !c.sending && c.done {
                        conns[fd as usize] = None;
                        sqes.push(close(fd));
                    }
                    // A buffer came back: connections that ran dry can receive again.
                    for s in starved.drain(..) {
                        if let Some(c) = conns.get_mut(s as usize).and_then(Option::as_mut) {
                            if c.starved {
                                c.starved = false;
                                sqes.push(recv(s));
                            }
                        }
                    }
                }
                _ => {} // CLOSE
            }
        }
    }
}

fn accept(lfd: i32) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(lfd))
        .build()
        .user_data(ud(ACCEPT, lfd))
}

fn recv(fd: i32) -> squeue::Entry {
    opcode::RecvMulti::new(types::Fd(fd), GROUP)
        .build()
        .user_data(ud(RECV, fd))
}

fn send(bufs: &BufRing, fd: i32, (bid, off, len): (u16, u32, u32)) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), bufs.buf(bid, off), len - off)
        .build()
        .user_data(ud(SEND, fd))
}

fn close(fd: i32) -> squeue::Entry {
    opcode::Close::new(types::Fd(fd))
        .build()
        .user_data(ud(CLOSE, fd))
}

fn set_nodelay(fd: i32) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads an int from a live local; an error (not a TCP socket) is ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}
