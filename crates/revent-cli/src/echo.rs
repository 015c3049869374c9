//! The seed's echo service on bufferevents: every byte a client sends comes back.
//!
//! One event base per thread; with `--threads N` each thread listens on the same port with
//! SO_REUSEPORT and the kernel spreads connections (the memcached model). SIGINT and SIGTERM stop
//! every thread: listeners close, pending output gets a last write, and one summary line is printed.
//!
//! A client that sends faster than it reads cannot make the server buffer without end: once more
//! than `--max-output` bytes of its echo wait, the server stops reading from it until they drained
//! to half of that (as libevent's le-proxy sample does). A client that half-closes gets all its echo
//! before the server closes, unless the echo makes no progress for `--drain-timeout`. Only such
//! connections have a write callback; an ordinary one has none, so the usual echo trip runs no
//! extra callback.
//!
//! With `--tls CERT KEY` each connection is a TLS bufferevent (rustls) and the same callbacks echo
//! its plaintext; a client that fails the handshake gets ERROR and is closed like any failed one.

use crate::args::EchoArgs;
use revent::rustls::pki_types::pem::PemObject;
use revent::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use revent::rustls::{self, ServerConfig, ServerConnection};
use revent::{
    BevFlags, BevOptions, BufferEvent, DataCb, EventBase, EventCb, FlushMode, Listener,
    ListenerOptions, PeerAddr, What,
};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    refused: AtomicU64,
    /// Bytes echoed: added when moved to an output, taken back at a close for what will never
    /// reach the client (see `undelivered`).
    bytes: AtomicU64,
    open: AtomicUsize,
}

/// The TLS configuration from `--tls CERT KEY`: the PEM chain and key, TLS 1.2 and 1.3 with
/// rustls's ring provider.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls: {e}"))?;
    Ok(Arc::new(cfg))
}

pub fn run(args: &EchoArgs) -> Result<(), String> {
    let tls = match args.tls.as_deref() {
        Some([cert, key]) => Some(tls_config(cert, key)?),
        Some(_) => return Err("--tls takes a certificate file and a key file".into()),
        None => None,
    };
    let stats = Arc::new(Stats::default());
    let reuse_port = args.threads > 1;
    // The workers start once the main thread has bound, and listen on the port it got (which
    // matters with --port 0). Each gets a socket on which the main thread tells it to stop.
    let mut workers = Vec::new();
    let mut spawn_workers = |addr: SocketAddr| -> Result<Vec<OwnedFd>, String> {
        let mut stoppers = Vec::new();
        for i in 1..args.threads {
            let (rx, tx) = revent::util::socketpair().map_err(|e| e.to_string())?;
            stoppers.push(tx);
            let mut args = args.clone();
            args.addr = addr.ip();
            args.port = addr.port();
            let stats = stats.clone();
            let tls = tls.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("echo-{i}"))
                    .spawn(move || serve(&args, &stats, tls, reuse_port, Some(rx), &mut no_workers))
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(stoppers)
    };
    let mut result = serve(
        args,
        &stats,
        tls.clone(),
        reuse_port,
        None,
        &mut spawn_workers,
    );
    for w in workers {
        let r = w
            .join()
            .unwrap_or_else(|_| Err("worker thread panicked".into()));
        if result.is_ok() {
            result = r;
        }
    }
    println!(
        "revent echo: {} connections, {} refused, {} bytes echoed",
        stats.accepted.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed)
    );
    result
}

/// What one thread's callbacks share: the options, the process-wide counters, and the thread's
/// open connections (closed by the shutdown).
struct Thread {
    args: EchoArgs,
    stats: Arc<Stats>,
    conns: RefCell<HashSet<BufferEvent>>,
    /// `--tls`: each connection a TLS session with this configuration.
    tls: Option<Arc<ServerConfig>>,
}

type SpawnWorkers<'a> = dyn FnMut(SocketAddr) -> Result<Vec<OwnedFd>, String> + 'a;

fn no_workers(_: SocketAddr) -> Result<Vec<OwnedFd>, String> {
    Ok(Vec::new())
}

/// Runs one event base until stopped. The main thread (`stop_rx` = None) starts the workers once
/// it listens, handles the signals and tells the workers through the sockets `spawn_workers` gave.
fn serve(
    args: &EchoArgs,
    stats: &Arc<Stats>,
    tls: Option<Arc<ServerConfig>>,
    reuse_port: bool,
    stop_rx: Option<OwnedFd>,
    spawn_workers: &mut SpawnWorkers<'_>,
) -> Result<(), String> {
    let mut base = crate::service::new_base(args.method)?;
    let th = Rc::new(Thread {
        args: args.clone(),
        stats: stats.clone(),
        conns: RefCell::default(),
        tls,
    });
    let mut opts = ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_EXEC;
    if reuse_port {
        opts |= ListenerOptions::REUSEABLE_PORT;
    }
    let listener = {
        let th = th.clone();
        Listener::bind(
            &mut base,
            args.socket_addr(),
            opts,
            1024,
            move |base, fd, peer| accept(base, &th, fd, peer),
        )
        .map_err(|e| format!("listen on {}: {e}", args.socket_addr()))?
    };
    // Accept errors need no callback here: the listener logs a full fd table once per streak of
    // failures (and its end), and retries on its own.
    let local = listener.local_addr(&base).map_err(|e| e.to_string())?;
    let stoppers = if stop_rx.is_none() {
        spawn_workers(local)?
    } else {
        Vec::new()
    };

    let shutdown = {
        let th = th.clone();
        Rc::new(move |base: &mut EventBase| {
            let _ = listener.free(base);
            let open: Vec<BufferEvent> = th.conns.borrow().iter().copied().collect();
            for bev in open {
                close(base, bev, &th, Ending::Stopped);
            }
            let _ = base.loopexit(None);
        })
    };
    let stop_events =
        crate::service::install_stop(&mut base, stop_rx.as_ref(), stoppers, shutdown)?;
    if stop_rx.is_none() {
        // Only now: a SIGTERM sent as soon as this line is read finds the handler installed.
        println!(
            "revent echo: listening on {local} ({} thread(s), {})",
            args.threads,
            base.method()
        );
        let _ = std::io::stdout().flush();
    }
    // The signal events keep the loop alive; once shutdown has run, loopexit ends it.
    base.dispatch().map_err(|e| e.to_string())?;
    for ev in stop_events {
        let _ = base.free(ev);
    }
    Ok(())
}

fn accept(base: &mut EventBase, th: &Rc<Thread>, fd: OwnedFd, peer: PeerAddr) {
    let (args, stats) = (&th.args, &th.stats);
    // Check and take a slot in one step: with --threads, another thread may be taking the last one.
    let max = args.max_conns.unwrap_or(usize::MAX);
    let admitted = stats
        .open
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok();
    if !admitted {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        if args.verbose {
            eprintln!("refused {peer}: {max} connections open");
        }
        return;
    }
    // Replies go out whole and at once; don't let Nagle hold a partial one for the peer's ACK.
    let fd: OwnedFd = {
        let tcp = std::net::TcpStream::from(fd);
        let _ = tcp.set_nodelay(true);
        tcp.into()
    };
    let made = match &th.tls {
        Some(cfg) => ServerConnection::new(cfg.clone())
            .map_err(|e| revent::Error::InvalidArgument(tls_refusal(&e)))
            .and_then(|conn| {
                BufferEvent::tls_socket(base, Some(fd), conn, BevOptions::CLOSE_ON_FREE)
            }),
        None => BufferEvent::socket(base, Some(fd), BevOptions::CLOSE_ON_FREE),
    };
    let bev = match made {
        Ok(b) => b,
        Err(e) => {
            stats.open.fetch_sub(1, Ordering::Relaxed);
            eprintln!("revent echo: {peer}: {e}");
            return;
        }
    };
    stats.accepted.fetch_add(1, Ordering::Relaxed);
    th.conns.borrow_mut().insert(bev);
    if args.verbose {
        eprintln!("open {peer}");
    }
    let _ = bev.set_watermark(base, What::READ, 0, args.read_high);
    let _ = bev.set_timeouts(base, args.idle_timeout, args.idle_timeout);
    let conn = Rc::new(Conn {
        peer,
        flow: Cell::new(Flow::Echoing),
    });
    set_lean_callbacks(base, bev, th, &conn);
    let _ = bev.enable(base, What::READ | What::WRITE);
}

/// Where a connection stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Reading and echoing; no write callback.
    Echoing,
    /// More than --max-output of echo waits: not reading until the output drains to half of that.
    Paused,
    /// The client half-closed: not reading, closing once the output is empty (or the write made
    /// no progress for --drain-timeout).
    Draining,
}

struct Conn {
    peer: PeerAddr,
    flow: Cell<Flow>,
}

/// Sets the read and event callbacks and clears the write callback: an ordinary connection runs
/// no callback after its writes.
fn set_lean_callbacks(base: &mut EventBase, bev: BufferEvent, th: &Rc<Thread>, conn: &Rc<Conn>) {
    let read: Box<DataCb> = {
        let (th, conn) = (th.clone(), conn.clone());
        Box::new(move |base, bev| on_read(base, bev, &th, &conn))
    };
    let event: Box<EventCb> = {
        let (th, conn) = (th.clone(), conn.clone());
        Box::new(move |base, bev, what| on_event(base, bev, what, &th, &conn))
    };
    let _ = bev.set_callbacks(base, Some(read), None, Some(event));
}

/// Sets the write callback, for a connection that waits for its output to drain.
fn set_write_cb(base: &mut EventBase, bev: BufferEvent, th: &Rc<Thread>, conn: &Rc<Conn>) {
    let (th, conn) = (th.clone(), conn.clone());
    let _ = bev.set_write_cb(base, move |base, bev| on_drained(base, bev, &th, &conn));
}

fn on_read(base: &mut EventBase, bev: BufferEvent, th: &Rc<Thread>, conn: &Rc<Conn>) {
    let Ok((input, output)) = bev.buffers(base) else {
        return;
    };
    th.stats
        .bytes
        .fetch_add(input.len() as u64, Ordering::Relaxed);
    let _ = output.add_buffer(input);
    if output.len() > th.args.max_output {
        pause(base, bev, th, conn);
    }
}

/// The client reads slower than it sends: stop taking its input until half of --max-output went
/// out. Out of line, to keep the usual read callback short.
#[cold]
#[inline(never)]
fn pause(base: &mut EventBase, bev: BufferEvent, th: &Rc<Thread>, conn: &Rc<Conn>) {
    let _ = bev.disable(base, What::READ);
    let _ = bev.set_watermark(base, What::WRITE, th.args.max_output / 2, 0);
    set_write_cb(base, bev, th, conn);
    conn.flow.set(Flow::Paused);
}

/// The write callback: the output drained to the low watermark.
fn on_drained(base: &mut EventBase, bev: BufferEvent, th: &Rc<Thread>, conn: &Rc<Conn>) {
    match conn.flow.get() {
        Flow::Paused => {
            // Back to the lean callbacks (this one clears itself) and reading.
            let _ = bev.set_watermark(base, What::WRITE, 0, 0);
            set_lean_callbacks(base, bev, th, conn);
            let _ = bev.enable(base, What::READ);
            conn.flow.set(Flow::Echoing);
        }
        Flow::Draining => {
            if bev.output(base).map_or(true, |o| o.is_empty()) {
                finish(base, bev, th, conn, BevFlags::EOF | BevFlags::READING);
            }
        }
        Flow::Echoing => {}
    }
}

fn on_event(
    base: &mut EventBase,
    bev: BufferEvent,
    what: BevFlags,
    th: &Rc<Thread>,
    conn: &Rc<Conn>,
) {
    if what.contains(BevFlags::EOF) && !what.contains(BevFlags::ERROR) {
        // Half-closed: the client may still be reading. The bufferevent stopped reading; close
        // once everything it sent went back.
        let queued = bev.output(base).map_or(0, |o| o.len());
        if queued == 0 {
            finish(base, bev, th, conn, what);
            return;
        }
        let _ = bev.set_watermark(base, What::WRITE, 0, 0);
        let _ = bev.set_timeouts(base, None, Some(th.args.drain_timeout));
        set_write_cb(base, bev, th, conn);
        conn.flow.set(Flow::Draining);
    } else if what.contains(BevFlags::ERROR) || what.contains(BevFlags::TIMEOUT) {
        finish(base, bev, th, conn, what);
    }
}

/// Closes a connection for the reason `what`, with a line under -v.
fn finish(base: &mut EventBase, bev: BufferEvent, th: &Thread, conn: &Conn, what: BevFlags) {
    if th.args.verbose {
        let why = bev
            .tls_error(base)
            .map(|e| format!(": {e}"))
            .or_else(|| bev.error(base).map(|e| format!(": {e}")))
            .unwrap_or_default();
        eprintln!("close {} ({what:?}{why})", conn.peer);
    }
    let ending = if what.contains(BevFlags::ERROR) || what.contains(BevFlags::TIMEOUT) {
        Ending::Failed
    } else {
        Ending::Drained
    };
    close(base, bev, th, ending);
}

/// Why a connection closes, for the count of bytes echoed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// EOF and the output is empty: what the kernel still holds goes out before its FIN.
    Drained,
    /// The server stops (SIGINT, SIGTERM).
    Stopped,
    /// An error or a timeout: the client is gone or not reading.
    Failed,
}

fn close(base: &mut EventBase, bev: BufferEvent, th: &Thread, ending: Ending) {
    if ending != Ending::Drained {
        let lost = undelivered(base, bev, ending);
        th.stats.bytes.fetch_sub(lost, Ordering::Relaxed);
    }
    th.conns.borrow_mut().remove(&bev);
    th.stats.open.fetch_sub(1, Ordering::Relaxed);
    let _ = bev.free(base);
}

/// The bytes echoed to a connection that is about to close without draining, which will never
/// reach the client. They were counted when moved to the output, so this is what to take back.
///
/// The last write that `free` would make is made here (a flush), so that what remains is known
/// exactly; the output is then emptied. Of what the kernel holds, the bytes the client has not
/// acknowledged are lost when the connection fails, and when the close resets it (Linux resets a
/// connection closed with unread input, discarding its send queue).
fn undelivered(base: &mut EventBase, bev: BufferEvent, ending: Ending) -> u64 {
    let _ = bev.flush(base, What::WRITE, FlushMode::Flush);
    let Ok(output) = bev.output(base) else {
        return 0;
    };
    let left = output.len();
    let _ = output.drain(left);
    let mut lost = left as u64;
    // Over TLS the kernel holds ciphertext, which does not map back to plaintext bytes.
    let plain = bev.tls_session(base).is_err();
    if let (true, Ok(fd)) = (plain, bev.fd(base)) {
        let queues = revent::util::socket_queues(fd).unwrap_or_default();
        if ending == Ending::Failed || queues.unread > 0 {
            lost += queues.unacked as u64;
        }
    }
    lost
}

/// `Error::InvalidArgument` takes a static text: a session that cannot be made says so generally.
fn tls_refusal(e: &rustls::Error) -> &'static str {
    log::error!("revent echo: TLS session: {e}");
    "cannot make a TLS session"
}
