//! TLS bufferevents over rustls (feature `tls`, which revent's own dev-dependency turns on, so
//! `cargo test --workspace` runs these): handshakes with certificates made here (rcgen), bulk data
//! byte-exact both ways, hostile and broken peers, refused certificates, slow readers, clean and
//! dirty shutdowns, SNI, ALPN, resumption, both forms, every backend.
#![cfg(feature = "tls")]

mod bev_common;

use bev_common::*;
use rcgen::{date_time_ymd, CertificateParams, IsCa, Issuer, KeyPair};
use revent::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use revent::rustls::{self, ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use revent::{
    BevFlags, BevOptions, BufferEvent, EventBase, FlushMode, Method, RustlsSession, What,
};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

// ---- certificates ----

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "revent test CA");
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        Ca { params, key, der }
    })
}

/// A leaf certificate for `names`, signed by the test CA; `expired` makes one that ended in 2001.
fn leaf(names: &[&str], expired: bool) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca = ca();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        vec![cert.der().clone(), ca.der.clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config_for(names: &[&str], expired: bool, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let (chain, key) = leaf(names, expired);
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

fn server_config() -> Arc<ServerConfig> {
    static CFG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CFG.get_or_init(|| server_config_for(&["localhost"], false, &[]))
        .clone()
}

fn client_config_with(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca().der.clone()).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

fn client_config() -> Arc<ClientConfig> {
    static CFG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CFG.get_or_init(|| client_config_with(&[])).clone()
}

fn client_conn(cfg: Arc<ClientConfig>, name: &str) -> ClientConnection {
    ClientConnection::new(cfg, ServerName::try_from(name.to_string()).unwrap()).unwrap()
}

fn server_conn(cfg: Arc<ServerConfig>) -> ServerConnection {
    ServerConnection::new(cfg).unwrap()
}

// ---- helpers ----

type Events = Rc<RefCell<Vec<BevFlags>>>;

fn has(ev: &Events, f: BevFlags) -> bool {
    ev.borrow().iter().any(|e| e.contains(f))
}

/// A TLS server on `fd` that echoes what it reads; records its events.
fn echo_server(base: &mut EventBase, fd: OwnedFd, cfg: Arc<ServerConfig>) -> (BufferEvent, Events) {
    let s = BufferEvent::tls_socket(base, Some(fd), server_conn(cfg), BevOptions::CLOSE_ON_FREE)
        .unwrap();
    s.set_read_cb(base, |base, s| {
        let (i, o) = s.buffers(base).unwrap();
        o.add_buffer(i).unwrap();
    })
    .unwrap();
    let ev = record_events(base, s);
    s.enable(base, What::READ | What::WRITE).unwrap();
    (s, ev)
}

/// A TLS client on `fd`: reading enabled, events recorded.
fn client(
    base: &mut EventBase,
    fd: OwnedFd,
    cfg: Arc<ClientConfig>,
    name: &str,
) -> (BufferEvent, Events) {
    let c = BufferEvent::tls_socket(
        base,
        Some(fd),
        client_conn(cfg, name),
        BevOptions::CLOSE_ON_FREE,
    )
    .unwrap();
    let ev = record_events(base, c);
    c.enable(base, What::READ | What::WRITE).unwrap();
    (c, ev)
}

fn unix_pair() -> (OwnedFd, OwnedFd) {
    let (a, b) = UnixStream::pair().unwrap();
    (a.into(), b.into())
}

fn tcp_pair() -> (OwnedFd, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    (s.into(), c)
}

fn session(base: &mut EventBase, b: BufferEvent) -> &mut RustlsSession {
    b.tls_session(base)
        .unwrap()
        .as_any_mut()
        .downcast_mut()
        .unwrap()
}

// ---- handshake and echo ----

/// Both sides report CONNECTED once, the client's bytes come back exactly, and SNI and ALPN are
/// what the two sides negotiated.
fn handshake_echo_sni_alpn(m: Method) {
    let mut base = base(m);
    let (a, b) = unix_pair();
    let scfg = server_config_for(&["localhost", "other.test"], false, &[b"h2", b"http/1.1"]);
    let (s, sev) = echo_server(&mut base, b, scfg);
    let (c, cev) = client(
        &mut base,
        a,
        client_config_with(&[b"http/1.1"]),
        "localhost",
    );
    c.write(&mut base, b"hello over TLS").unwrap();
    run_until(&mut base, LIMIT, |base| input_len(base, c) >= 14);
    assert_eq!(drain_input(&mut base, c), b"hello over TLS");
    assert_eq!(*cev.borrow(), [BevFlags::CONNECTED], "{m:?}");
    assert_eq!(*sev.borrow(), [BevFlags::CONNECTED], "{m:?}");
    let ss = s.tls_session(&mut base).unwrap();
    assert_eq!(ss.server_name().as_deref(), Some("localhost"));
    assert_eq!(ss.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
    assert!(!ss.is_handshaking());
    let cs = c.tls_session(&mut base).unwrap();
    assert_eq!(cs.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
    let v = session(&mut base, c).connection().protocol_version();
    assert_eq!(v, Some(rustls::ProtocolVersion::TLSv1_3));
    c.free(&mut base).unwrap();
    // The client's free sent close_notify: a clean EOF.
    run_until(&mut base, LIMIT, |_| has(&sev, BevFlags::EOF));
    assert!(!has(&sev, BevFlags::ERROR), "{:?}", sev.borrow());
    s.free(&mut base).unwrap();
}

#[test]
fn handshake_echo_sni_alpn_all_backends() {
    for m in backends() {
        handshake_echo_sni_alpn(m);
    }
}

/// A server limited to TLS 1.2: the same handshake events and bytes, and the version is 1.2.
#[test]
fn tls12_echo() {
    let mut base = base(Method::Epoll);
    let (a, b) = unix_pair();
    let (chain, key) = leaf(&["localhost"], false);
    let scfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let (s, sev) = echo_server(&mut base, b, Arc::new(scfg));
    let (c, cev) = client(&mut base, a, client_config(), "localhost");
    let data = pattern(100_000);
    c.write(&mut base, &data).unwrap();
    run_until(&mut base, LIMIT, |base| input_len(base, c) == data.len());
    assert_eq!(drain_input(&mut base, c), data);
    assert_eq!(*cev.borrow(), [BevFlags::CONNECTED]);
    assert_eq!(*sev.borrow(), [BevFlags::CONNECTED]);
    let v = session(&mut base, s).connection().protocol_version();
    assert_eq!(v, Some(rustls::ProtocolVersion::TLSv1_2));
    c.free(&mut base).unwrap();
    run_until(&mut base, LIMIT, |_| has(&sev, BevFlags::EOF));
    s.free(&mut base).unwrap();
}

/// The client offers only protocols the server does not speak: both sides fail, readably.
#[test]
fn alpn_mismatch_refused() {
    let mut base = base(Method::Epoll);
    let (a, b) = unix_pair();
    let (s, sev) = echo_server(
        &mut base,
        b,
        server_config_for(&["localhost"], false, &[b"h2"]),
    );
    let (c, cev) = client(&mut base, a, client_config_with(&[b"spdy/1"]), "localhost");
    run_until(&mut base, LIMIT, |_| {
        has(&cev, BevFlags::ERROR) && has(&sev, BevFlags::ERROR)
    });
    let se = s.tls_error(&base).unwrap();
    assert_eq!(se.code(), 120, "{se}");
    let ce = c.tls_error(&base).unwrap();
    assert_eq!(ce.code(), 256 + 120, "{ce}");
    assert!(!has(&cev, BevFlags::CONNECTED));
    c.free(&mut base).unwrap();
    s.free(&mut base).unwrap();
}

// ---- certificates refused ----

fn refused(server_names: &[&str], expired: bool, connect_as: &str, code: u64, text: &str) {
    for m in [Method::Epoll, Method::IoUring] {
        if !EventBase::method_available(m) {
            continue;
        }
        let mut base = base(m);
        let (a, b) = unix_pair();
        let (s, sev) = echo_server(&mut base, b, server_config_for(server_names, expired, &[]));
        let (c, cev) = client(&mut base, a, client_config(), connect_as);
        c.write(&mut base, b"secret").unwrap();
        run_until(&mut base, LIMIT, |_| {
            has(&cev, BevFlags::ERROR) && has(&sev, BevFlags::ERROR)
        });
        assert!(!has(&cev, BevFlags::CONNECTED), "{:?}", cev.borrow());
        let e = c.tls_error(&base).expect("a TLS error");
        assert_eq!(e.code(), code, "{e}");
        assert!(e.message().contains(text), "{e}");
        // The server hears why, through the client's alert.
        let se = s.tls_error(&base).expect("the server's TLS error");
        assert_eq!(se.code(), 256 + code, "{se}");
        // The queue gives each error once.
        assert_eq!(c.tls_take_error(&mut base).unwrap(), Some(e));
        assert_eq!(c.tls_take_error(&mut base).unwrap(), None);
        // Nothing of the application's reached the server.
        assert_eq!(input_len(&mut base, s), 0);
        c.free(&mut base).unwrap();
        s.free(&mut base).unwrap();
    }
}

#[test]
fn expired_certificate_refused() {
    refused(&["localhost"], true, "localhost", 45, "xpired");
}

#[test]
fn wrongly_named_certificate_refused() {
    refused(
        &["other.test"],
        false,
        "localhost",
        42,
        "not valid for name",
    );
}

// ---- hostile peers ----

/// A peer that sends half a ClientHello and resets: the server reports ERROR (no CONNECTED, no
/// EOF taken for a clean end), and a client whose server resets does too.
#[test]
fn peer_resets_mid_handshake() {
    for m in backends() {
        let mut base = base(m);
        // A real ClientHello, cut in half.
        let mut hello = Vec::new();
        let mut cc = client_conn(client_config(), "localhost");
        cc.write_tls(&mut hello).unwrap();
        let (fd, mut peer) = tcp_pair();
        let (s, sev) = echo_server(&mut base, fd, server_config());
        peer.write_all(&hello[..hello.len() / 2]).unwrap();
        run_for(&mut base, Duration::from_millis(20));
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer);
        run_until(&mut base, LIMIT, |_| has(&sev, BevFlags::ERROR));
        assert!(!has(&sev, BevFlags::CONNECTED), "{m:?} {:?}", sev.borrow());
        let err = s.error(&base).map(|e| e.raw_os_error());
        let tls = s.tls_error(&base);
        assert!(
            err == Some(Some(libc::ECONNRESET)) || tls.is_some(),
            "{m:?}: {err:?} {tls:?}"
        );
        s.free(&mut base).unwrap();

        // The other way round: the server answers nothing and resets.
        let (fd, peer) = tcp_pair();
        let (c, cev) = client(&mut base, fd, client_config(), "localhost");
        c.write(&mut base, b"early").unwrap();
        run_for(&mut base, Duration::from_millis(20));
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer);
        run_until(&mut base, LIMIT, |_| has(&cev, BevFlags::ERROR));
        assert!(!has(&cev, BevFlags::CONNECTED));
        c.free(&mut base).unwrap();
    }
}

/// Plain HTTP where a ClientHello belongs: ERROR with a readable reason, an alert (or nothing) back,
/// never data.
#[test]
fn garbage_instead_of_client_hello() {
    for m in backends() {
        let mut base = base(m);
        let (fd, mut peer) = tcp_pair();
        let (s, sev) = echo_server(&mut base, fd, server_config());
        peer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        run_until(&mut base, LIMIT, |_| has(&sev, BevFlags::ERROR));
        let e = s.tls_error(&base).expect("a TLS error");
        assert!(!e.message().is_empty());
        assert!(!has(&sev, BevFlags::CONNECTED));
        s.free(&mut base).unwrap();
        let mut back = Vec::new();
        let _ = peer.read_to_end(&mut back);
        if let Some(&first) = back.first() {
            assert_eq!(first, 0x15, "{m:?}: an alert record, got {back:?}");
        }
    }
}

/// Random bytes after a good handshake: the record layer refuses them with ERROR.
#[test]
fn garbage_after_handshake() {
    let mut base = base(Method::Epoll);
    let (fd, mut peer) = tcp_pair();
    // A client driven by hand over the blocking stream, so that raw bytes can follow.
    let mut cc = client_conn(client_config(), "localhost");
    let (s, sev) = echo_server(&mut base, fd, server_config());
    peer.set_nonblocking(true).unwrap();
    run_until(&mut base, LIMIT, |_| {
        while cc.wants_write() {
            cc.write_tls(&mut peer).unwrap();
        }
        let _ = cc.read_tls(&mut peer);
        cc.process_new_packets().unwrap();
        !cc.is_handshaking() && has(&sev, BevFlags::CONNECTED)
    });
    peer.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
    peer.write_all(&[0xAB; 32]).unwrap();
    run_until(&mut base, LIMIT, |_| has(&sev, BevFlags::ERROR));
    assert!(has(&sev, BevFlags::READING));
    let e = s.tls_error(&base).unwrap();
    assert!(!e.message().is_empty(), "{e}");
    assert_eq!(input_len(&mut base, s), 0);
    s.free(&mut base).unwrap();
}

// ---- shutdown ----

/// close_notify gives the peer EOF; a bare TCP close gives it ERROR, or EOF when dirty shutdowns
/// are allowed. The data sent before either arrives in full.
#[test]
fn close_notify_and_dirty_shutdown() {
    for allow_dirty in [false, true] {
        let mut base = base(Method::Epoll);
        let (a, b) = unix_pair();
        let (s, sev) = echo_server(&mut base, b, server_config());
        assert!(!s.tls_allow_dirty_shutdown(&base).unwrap());
        s.set_tls_allow_dirty_shutdown(&mut base, allow_dirty)
            .unwrap();
        assert_eq!(s.tls_allow_dirty_shutdown(&base).unwrap(), allow_dirty);
        // The client in the filter form over a socket bufferevent, so that the socket can go away
        // under it without a close_notify.
        let sock = BufferEvent::socket(&mut base, Some(a), BevOptions::CLOSE_ON_FREE).unwrap();
        let c = BufferEvent::tls_filter(
            &mut base,
            sock,
            client_conn(client_config(), "localhost"),
            BevOptions::NONE,
        )
        .unwrap();
        assert_eq!(c.underlying(&base).unwrap(), Some(sock));
        let cev = record_events(&mut base, c);
        c.enable(&mut base, What::READ).unwrap();
        c.write(&mut base, b"last words").unwrap();
        run_until(&mut base, LIMIT, |base| input_len(base, c) == 10);
        assert!(has(&cev, BevFlags::CONNECTED));
        sock.free(&mut base).unwrap();
        run_until(&mut base, LIMIT, |_| {
            has(&sev, BevFlags::EOF) || has(&sev, BevFlags::ERROR)
        });
        if allow_dirty {
            assert!(has(&sev, BevFlags::EOF), "{:?}", sev.borrow());
        } else {
            assert!(has(&sev, BevFlags::ERROR), "{:?}", sev.borrow());
            let e = s.tls_error(&base).unwrap();
            assert!(e.message().contains("close_notify"), "{e}");
        }
        c.free(&mut base).unwrap();
        s.free(&mut base).unwrap();
    }
}

/// `flush(Finished)` encrypts what is queued, sends close_notify and shuts the socket's writing
/// side: the peer reads every byte, then a clean EOF, while its own replies still come back.
#[test]
fn flush_finished_sends_close_notify() {
    let mut base = base(Method::Epoll);
    let (a, b) = unix_pair();
    let (s, sev) = echo_server(&mut base, b, server_config());
    let (c, cev) = client(&mut base, a, client_config(), "localhost");
    let data = pattern(300_000);
    c.write(&mut base, &data).unwrap();
    c.flush(&mut base, What::WRITE, FlushMode::Finished)
        .unwrap();
    run_until(&mut base, LIMIT, |base| {
        has(&sev, BevFlags::EOF) && input_len(base, c) == data.len()
    });
    assert_eq!(drain_input(&mut base, c), data);
    assert!(!has(&sev, BevFlags::ERROR) && !has(&cev, BevFlags::ERROR));
    c.free(&mut base).unwrap();
    s.free(&mut base).unwrap();
}

// ---- bulk ----

/// 1 GiB from a client through a TLS echo server and back, checked byte by byte against the
/// pattern as it arrives (nothing is stored), with the client's output kept small.
fn one_gib_echo(m: Method, filter_form: bool) {
    const TOTAL: usize = 1 << 30;
    let mut base = base(m);
    let (a, b) = unix_pair();
    let (s, sev) = echo_server(&mut base, b, server_config());
    let c = if filter_form {
        let sock = BufferEvent::socket(&mut base, Some(a), BevOptions::CLOSE_ON_FREE).unwrap();
        BufferEvent::tls_filter(
            &mut base,
            sock,
            client_conn(client_config(), "localhost"),
            BevOptions::CLOSE_ON_FREE,
        )
        .unwrap()
    } else {
        BufferEvent::tls_socket(
            &mut base,
            Some(a),
            client_conn(client_config(), "localhost"),
            BevOptions::CLOSE_ON_FREE,
        )
        .unwrap()
    };
    let cev = record_events(&mut base, c);
    // 251 * 1024 bytes of the pattern: any offset's next 64 KiB are a slice of it.
    let pat: Rc<Vec<u8>> = Rc::new(pattern(251 * 1024));
    let sent = Rc::new(Cell::new(0usize));
    let got = Rc::new(Cell::new(0usize));
    let (p, sn) = (pat.clone(), sent.clone());
    let chunk = 64 * 1024;
    let refill = move |base: &mut EventBase, c: BufferEvent| {
        let out = c.output(base).unwrap();
        while out.len() < 4 * chunk && sn.get() < TOTAL {
            let n = chunk.min(TOTAL - sn.get());
            let off = sn.get() % 251;
            out.add(&p[off..off + n]).unwrap();
            sn.set(sn.get() + n);
        }
    };
    c.set_watermark(&mut base, What::WRITE, chunk, 0).unwrap();
    c.set_write_cb(&mut base, refill.clone()).unwrap();
    let (p, g) = (pat.clone(), got.clone());
    c.set_read_cb(&mut base, move |base, c| {
        let input = c.input(base).unwrap();
        let mut buf = vec![0u8; input.len()];
        let n = input.remove(&mut buf).unwrap();
        let off = g.get() % 251;
        for (i, part) in buf[..n].chunks(200 * 1024).enumerate() {
            let o = (off + i * 200 * 1024) % 251;
            assert!(
                part == &p[o..o + part.len()],
                "byte mismatch near {}",
                g.get()
            );
        }
        g.set(g.get() + n);
    })
    .unwrap();
    c.enable(&mut base, What::READ | What::WRITE).unwrap();
    refill(&mut base, c);
    let start = std::time::Instant::now();
    run_until(&mut base, Duration::from_secs(600), |_| {
        got.get() == TOTAL || has(&cev, BevFlags::ERROR) || has(&sev, BevFlags::ERROR)
    });
    assert_eq!(
        got.get(),
        TOTAL,
        "{m:?} {:?} {:?}",
        cev.borrow(),
        sev.borrow()
    );
    assert_eq!(sent.get(), TOTAL);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{m:?}: 1 GiB echoed through TLS in {secs:.1} s ({:.0} MiB/s each way)",
        1024.0 / secs
    );
    c.free(&mut base).unwrap();
    s.free(&mut base).unwrap();
}

#[test]
fn one_gib_both_ways_epoll() {
    one_gib_echo(Method::Epoll, false);
}

#[test]
fn one_gib_both_ways_io_uring_filter_form() {
    if !EventBase::method_available(Method::IoUring) {
        return;
    }
    one_gib_echo(Method::IoUring, true);
}

// ---- back-pressure ----

/// A client that stops reading: its input stops at the high watermark, and the server, which
/// writes whenever its output is small, is held back (nothing piles up in between). Once the client
/// reads, every byte arrives in order.
#[test]
fn slow_reader_bounded() {
    for m in [Method::Epoll, Method::IoUring] {
        if !EventBase::method_available(m) {
            continue;
        }
        let mut base = base(m);
        let (a, b) = unix_pair();
        let s = BufferEvent::tls_socket(
            &mut base,
            Some(b),
            server_conn(server_config()),
            BevOptions::CLOSE_ON_FREE,
        )
        .unwrap();
        let produced = Rc::new(Cell::new(0usize));
        let pr = produced.clone();
        let feed = move |base: &mut EventBase, s: BufferEvent| {
            let out = s.output(base).unwrap();
            while out.len() < 64 * 1024 {
                let n = 16 * 1024;
                let block: Vec<u8> = (pr.get()..pr.get() + n).map(pat).collect();
                out.add(&block).unwrap();
                pr.set(pr.get() + n);
            }
        };
        s.set_write_cb(&mut base, feed.clone()).unwrap();
        let sev = record_events(&mut base, s);
        let (c, _cev) = client(&mut base, a, client_config(), "localhost");
        const HIGH: usize = 100_000;
        c.set_watermark(&mut base, What::READ, 0, HIGH).unwrap();
        run_until(&mut base, LIMIT, |_| has(&sev, BevFlags::CONNECTED));
        feed(&mut base, s);
        // Run until the server stops making progress.
        let mut last = 0;
        loop {
            run_for(&mut base, Duration::from_millis(300));
            if produced.get() == last {
                break;
            }
            last = produced.get();
            assert!(
                last < 64 << 20,
                "{m:?}: the server produced {last} bytes for a stalled reader"
            );
        }
        let held = input_len(&mut base, c);
        eprintln!("{m:?}: a stalled reader held {held} bytes; the writer stopped after {last}");
        assert!(
            held <= HIGH,
            "{m:?}: {held} bytes in an input with high watermark {HIGH}"
        );
        // Socket buffers and a few TLS records, not an unbounded pile.
        assert!(
            last < 16 << 20,
            "{m:?}: {last} bytes produced for a stalled reader"
        );
        // Reading resumes the flow, in order.
        let mut seen = 0usize;
        let target = last + 1_000_000;
        run_until(&mut base, LIMIT, |base| {
            let got = drain_input(base, c);
            assert!(
                got.iter().enumerate().all(|(i, &x)| x == pat(seen + i)),
                "{m:?} order at {seen}"
            );
            seen += got.len();
            seen >= target
        });
        c.free(&mut base).unwrap();
        s.free(&mut base).unwrap();
    }
}

// ---- forms, connect, resumption, timeouts ----

/// Both sides in the filter form over the two ends of a pair.
#[test]
fn filter_form_over_a_pair() {
    let mut base = base(Method::Epoll);
    let (pa, pb) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    let c = BufferEvent::tls_filter(
        &mut base,
        pa,
        client_conn(client_config(), "localhost"),
        BevOptions::CLOSE_ON_FREE,
    )
    .unwrap();
    let s = BufferEvent::tls_filter(
        &mut base,
        pb,
        server_conn(server_config()),
        BevOptions::CLOSE_ON_FREE,
    )
    .unwrap();
    assert!(BufferEvent::tls_filter(
        &mut base,
        pb,
        server_conn(server_config()),
        BevOptions::NONE
    )
    .is_err());
    assert!(c.fd(&base).is_err(), "a pair has no socket");
    s.set_read_cb(&mut base, |base, s| {
        let (i, o) = s.buffers(base).unwrap();
        o.add_buffer(i).unwrap();
    })
    .unwrap();
    let sev = record_events(&mut base, s);
    let cev = record_events(&mut base, c);
    s.enable(&mut base, What::READ).unwrap();
    c.enable(&mut base, What::READ).unwrap();
    let data = pattern(1_000_000);
    c.write(&mut base, &data).unwrap();
    run_until(&mut base, LIMIT, |base| input_len(base, c) == data.len());
    assert_eq!(drain_input(&mut base, c), data);
    assert_eq!(*cev.borrow(), [BevFlags::CONNECTED]);
    assert_eq!(*sev.borrow(), [BevFlags::CONNECTED]);
    c.free(&mut base).unwrap();
    run_until(&mut base, LIMIT, |_| has(&sev, BevFlags::EOF));
    assert!(!has(&sev, BevFlags::ERROR));
    s.free(&mut base).unwrap();
}

/// A TLS socket form without a socket connects, then handshakes: CONNECTED means both; the second
/// connection with the same client config resumes the first one's session.
#[test]
fn connect_then_handshake_and_resume() {
    for m in backends() {
        let mut base = base(m);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let ccfg = client_config_with(&[]);
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let c = BufferEvent::tls_socket(
                &mut base,
                None,
                client_conn(ccfg.clone(), "localhost"),
                BevOptions::CLOSE_ON_FREE,
            )
            .unwrap();
            let cev = record_events(&mut base, c);
            c.enable(&mut base, What::READ).unwrap();
            c.connect(&mut base, addr).unwrap();
            let (fd, _) = l.accept().unwrap();
            let (s, _sev) = echo_server(&mut base, fd.into(), server_config());
            c.write(&mut base, b"ping").unwrap();
            run_until(&mut base, LIMIT, |base| input_len(base, c) == 4);
            assert_eq!(*cev.borrow(), [BevFlags::CONNECTED], "{m:?}");
            assert!(c.fd(&base).is_ok());
            // Read the session tickets the server sent after its handshake.
            kinds.push(session(&mut base, c).connection().handshake_kind());
            c.free(&mut base).unwrap();
            s.free(&mut base).unwrap();
        }
        assert_eq!(
            kinds,
            [
                Some(rustls::HandshakeKind::Full),
                Some(rustls::HandshakeKind::Resumed)
            ],
            "{m:?}"
        );
    }
}

/// A read timeout on a TLS bufferevent fires when the peer goes quiet, as on a plain socket, and
/// reading can be enabled again afterwards.
#[test]
fn read_timeout() {
    for m in backends() {
        let mut base = base(m);
        let (a, b) = unix_pair();
        let (s, _sev) = echo_server(&mut base, b, server_config());
        let (c, cev) = client(&mut base, a, client_config(), "localhost");
        run_until(&mut base, LIMIT, |_| has(&cev, BevFlags::CONNECTED));
        c.set_timeouts(&mut base, Some(Duration::from_millis(50)), None)
            .unwrap();
        run_until(&mut base, LIMIT, |_| has(&cev, BevFlags::TIMEOUT));
        assert!(cev
            .borrow()
            .contains(&(BevFlags::TIMEOUT | BevFlags::READING)));
        assert!(!c.enabled(&base).unwrap().contains(What::READ));
        c.set_timeouts(&mut base, None, None).unwrap();
        c.enable(&mut base, What::READ).unwrap();
        c.write(&mut base, b"still here").unwrap();
        run_until(&mut base, LIMIT, |base| input_len(base, c) == 10);
        c.free(&mut base).unwrap();
        s.free(&mut base).unwrap();
    }
}

/// A write timeout fires when the peer stops reading (a TLS server with reading disabled stops
/// reading its socket too), and the writer is told TIMEOUT|WRITING.
#[test]
fn write_timeout_when_the_peer_stops_reading() {
    for m in [Method::Epoll, Method::IoUring, Method::Poll] {
        if !EventBase::method_available(m) {
            continue;
        }
        let mut base = base(m);
        let (a, b) = unix_pair();
        let (s, sev) = echo_server(&mut base, b, server_config());
        let (c, cev) = client(&mut base, a, client_config(), "localhost");
        run_until(&mut base, LIMIT, |_| {
            has(&cev, BevFlags::CONNECTED) && has(&sev, BevFlags::CONNECTED)
        });
        s.disable(&mut base, What::READ).unwrap();
        c.set_timeouts(&mut base, None, Some(Duration::from_millis(100)))
            .unwrap();
        // Keep the output full until the timeout.
        let block = pattern(256 * 1024);
        run_until(&mut base, LIMIT, |base| {
            if output_len(base, c) < block.len() {
                c.write(base, &block).unwrap();
            }
            has(&cev, BevFlags::TIMEOUT)
        });
        assert!(
            cev.borrow()
                .contains(&(BevFlags::TIMEOUT | BevFlags::WRITING)),
            "{m:?}: {:?}",
            cev.borrow()
        );
        assert!(!has(&sev, BevFlags::ERROR));
        c.free(&mut base).unwrap();
        s.free(&mut base).unwrap();
    }
}

/// A rate limit on a TLS bufferevent limits its plaintext, as on a socket: all bytes arrive, in
/// order, and the limiter's totals count them.
#[test]
fn rate_limited_reads() {
    let mut base = base(Method::Epoll);
    let (a, b) = unix_pair();
    let (s, _sev) = echo_server(&mut base, b, server_config());
    let (c, _cev) = client(&mut base, a, client_config(), "localhost");
    let cfg = revent::RateLimit::symmetric(64 * 1024, 64 * 1024, Duration::from_millis(10));
    c.set_rate_limit(&mut base, Some(cfg)).unwrap();
    let data = pattern(400_000);
    c.write(&mut base, &data).unwrap();
    let mut got = Vec::new();
    run_until(&mut base, LIMIT, |base| {
        let now = drain_input(base, c);
        assert!(
            now.len() <= 64 * 1024,
            "a read of {} past the bucket",
            now.len()
        );
        got.extend(now);
        got.len() >= data.len()
    });
    assert_eq!(got, data);
    c.free(&mut base).unwrap();
    s.free(&mut base).unwrap();
}

/// The read low watermark holds the read callback back until that much plaintext is in, and the
/// write callback runs once the output drained to the write low watermark, as on a socket.
#[test]
fn watermarks_and_callbacks() {
    for m in backends() {
        let mut base = base(m);
        let (a, b) = unix_pair();
        let (s, _sev) = echo_server(&mut base, b, server_config());
        let (c, _cev) = client(&mut base, a, client_config(), "localhost");
        c.set_watermark(&mut base, What::READ, 10, 0).unwrap();
        let reads = Rc::new(RefCell::new(Vec::new()));
        let r = reads.clone();
        c.set_read_cb(&mut base, move |base, c| {
            r.borrow_mut().push(drain_input(base, c))
        })
        .unwrap();
        let writes = Rc::new(Cell::new(0));
        let w = writes.clone();
        c.set_write_cb(&mut base, move |_, _| w.set(w.get() + 1))
            .unwrap();
        c.write(&mut base, b"12345").unwrap();
        run_until(&mut base, LIMIT, |_| writes.get() > 0);
        // The echo of 5 bytes is in, under the low watermark: no read callback.
        run_until(&mut base, LIMIT, |base| input_len(base, c) == 5);
        run_for(&mut base, Duration::from_millis(20));
        assert!(reads.borrow().is_empty(), "{m:?}");
        c.write(&mut base, b"67890").unwrap();
        run_until(&mut base, LIMIT, |_| !reads.borrow().is_empty());
        assert_eq!(*reads.borrow(), [b"1234567890".to_vec()], "{m:?}");
        c.free(&mut base).unwrap();
        s.free(&mut base).unwrap();
    }
}

/// Freeing without CLOSE_ON_FREE hands the socket of the socket form back, open.
#[test]
fn free_hands_back_the_socket() {
    let mut base = base(Method::Epoll);
    let (a, _b) = unix_pair();
    let c = BufferEvent::tls_socket(
        &mut base,
        Some(a),
        client_conn(client_config(), "localhost"),
        BevOptions::NONE,
    )
    .unwrap();
    let raw = c.fd(&base).unwrap();
    let back = c.free(&mut base).unwrap().expect("the socket back");
    assert_eq!(std::os::fd::AsRawFd::as_raw_fd(&back), raw);
    assert!(fd_is_open(raw));
    assert!(c.tls_session(&mut base).is_err());
}
