//! The HTTP client against scripted servers: `std::net::TcpListener` on 127.0.0.1:0 in a thread,
//! reading requests and writing exact bytes. Deadlines here are hang guards only.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use revent::{Evbuffer, EventBase};
use revent_http::client::{ClientError, Connection, ErrorKind, Outcome, Request, Response};
use revent_http::{Method, ParseError};

const GUARD: Duration = Duration::from_secs(20);

// ---- the scripted server ----

type Script = Box<dyn FnOnce(TcpStream) + Send>;

/// Serves one script per accepted connection, in order; returns the listener afterwards so that
/// the test can check no other connection came.
fn serve(scripts: Vec<Script>) -> (SocketAddr, JoinHandle<TcpListener>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        for script in scripts {
            let stream = accept(&listener).expect("the client connects");
            stream.set_read_timeout(Some(GUARD)).unwrap();
            script(stream);
        }
        listener
    });
    (addr, handle)
}

fn accept(listener: &TcpListener) -> Option<TcpStream> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + GUARD;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return Some(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

/// Asserts no further connection is waiting (the client is done when this runs).
fn no_more_connections(listener: TcpListener) {
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        io::ErrorKind::WouldBlock,
        "the client opened another connection"
    );
}

/// Reads one request: the head, then a Content-Length or chunked body. Returns its bytes, or
/// `None` at end of file before any byte.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) | Err(_) if got.is_empty() => return None,
            Ok(0) => panic!(
                "EOF inside a request head: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(_) => got.push(byte[0]),
            Err(e) => panic!("read: {e}"),
        }
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    if let Some(cl) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        let mut body = vec![0u8; cl.trim().parse().unwrap()];
        s.read_exact(&mut body).unwrap();
        got.extend_from_slice(&body);
    } else if head.contains("transfer-encoding: chunked") {
        while !got.ends_with(b"\r\n0\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            got.push(byte[0]);
        }
    }
    Some(got)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- the client side ----

/// Runs the loop until `n` outcomes arrived (or the guard expires).
fn run_until(base: &mut EventBase, outcomes: &Rc<RefCell<Vec<Outcome>>>, n: usize) {
    let deadline = Instant::now() + GUARD;
    while outcomes.borrow().len() < n && Instant::now() < deadline {
        base.run(revent::LoopFlags::ONCE).unwrap();
    }
    assert_eq!(outcomes.borrow().len(), n, "hang guard expired");
}

fn collector(outcomes: &Rc<RefCell<Vec<Outcome>>>) -> impl FnOnce(&mut EventBase, Outcome) {
    let o = outcomes.clone();
    move |_, r| o.borrow_mut().push(r)
}

/// Sends `reqs` queued at once on one connection; returns the outcomes in completion order.
fn fetch_all(
    addr: SocketAddr,
    reqs: Vec<Request>,
    configure: impl FnOnce(&mut EventBase, Connection),
) -> (Vec<Outcome>, revent_http::client::Stats) {
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, addr).unwrap();
    configure(&mut base, conn);
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let n = reqs.len();
    for req in reqs {
        conn.request(&mut base, req, collector(&outcomes)).unwrap();
    }
    run_until(&mut base, &outcomes, n);
    let stats = conn.stats(&base).unwrap();
    conn.free(&mut base).unwrap();
    let out = outcomes.take();
    (out, stats)
}

fn fetch(addr: SocketAddr, req: Request) -> Outcome {
    fetch_all(addr, vec![req], |_, _| {}).0.pop().unwrap()
}

fn get(path: &str) -> Request {
    Request::new(Method::Get, path).unwrap()
}

fn body_of(resp: &mut Response) -> Vec<u8> {
    resp.body_mut().pullup_all().unwrap().to_vec()
}

fn respond(bytes: &'static [u8]) -> Script {
    Box::new(move |mut s| {
        read_request(&mut s).unwrap();
        s.write_all(bytes).unwrap();
    })
}

/// A server answering one request with `bytes`, then closing.
fn one_shot(bytes: &'static [u8]) -> (SocketAddr, JoinHandle<TcpListener>) {
    serve(vec![respond(bytes)])
}

// ---- body framings ----

#[test]
fn content_length_body_and_the_exact_request() {
    let (tx, rx) = mpsc::channel();
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        tx.send(read_request(&mut s).unwrap()).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
            .unwrap();
    })]);
    let req = get("/path?q=1").header("Accept", "*/*").unwrap();
    let mut resp = fetch(addr, req).unwrap();
    assert_eq!((resp.status(), resp.reason()), (200, "OK"));
    assert_eq!(resp.headers().find_str("x-a"), Some("b"));
    assert_eq!(body_of(&mut resp), b"hello");
    assert_eq!(
        text(&rx.recv().unwrap()),
        format!("GET /path?q=1 HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n")
    );
    server.join().unwrap();
}

#[test]
fn post_body_goes_with_its_content_length() {
    let (tx, rx) = mpsc::channel();
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        tx.send(read_request(&mut s).unwrap()).unwrap();
        s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    })]);
    let req = Request::new(Method::Post, "/items")
        .unwrap()
        .header("Host", "example.com")
        .unwrap()
        .body(b"a=1&b=2".to_vec());
    let resp = fetch(addr, req).unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        text(&rx.recv().unwrap()),
        "POST /items HTTP/1.1\r\nHost: example.com\r\nContent-Length: 7\r\n\r\na=1&b=2"
    );
    server.join().unwrap();
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let (addr, server) = one_shot(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=x\r\nhello\r\n7\r\n, world\r\n0\r\nServer-Timing: db;dur=3\r\nContent-Length: 99\r\n\r\n",
    );
    let mut resp = fetch(addr, get("/")).unwrap();
    assert_eq!(body_of(&mut resp), b"hello, world");
    assert_eq!(resp.trailers().find_str("server-timing"), Some("db;dur=3"));
    assert_eq!(resp.trailers().find("content-length"), None, "dropped");
    assert_eq!(resp.headers().find("server-timing"), None, "not merged");
    server.join().unwrap();
}

#[test]
fn close_delimited_body_ends_with_the_connection() {
    let (addr, server) =
        one_shot(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    let mut resp = fetch(addr, get("/")).unwrap();
    assert_eq!(body_of(&mut resp), b"until the end");
    server.join().unwrap();
}

#[test]
fn head_204_and_304_have_no_body_and_keep_the_connection() {
    let (tx, rx) = mpsc::channel();
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        let answers: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ];
        for a in answers {
            tx.send(read_request(&mut s).unwrap()).unwrap();
            s.write_all(a).unwrap();
        }
    })]);
    let reqs = vec![
        Request::new(Method::Head, "/h").unwrap(),
        get("/204"),
        get("/304"),
        get("/last"),
    ];
    let (mut out, stats) = fetch_all(addr, reqs, |_, _| {});
    let statuses: Vec<u16> = out.iter().map(|r| r.as_ref().unwrap().status()).collect();
    assert_eq!(statuses, [200, 204, 304, 200]);
    for r in &out[..3] {
        assert!(r.as_ref().unwrap().body().is_empty());
    }
    assert_eq!(body_of(out[3].as_mut().unwrap()), b"ok");
    assert_eq!(stats.connections, 1);
    let targets: Vec<String> = rx
        .iter()
        .map(|r| text(&r).lines().next().unwrap().to_string())
        .collect();
    assert_eq!(
        targets,
        [
            "HEAD /h HTTP/1.1",
            "GET /204 HTTP/1.1",
            "GET /304 HTTP/1.1",
            "GET /last HTTP/1.1"
        ]
    );
    no_more_connections(server.join().unwrap());
}

#[test]
fn interim_responses_are_skipped() {
    let (addr, server) = one_shot(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let mut resp = fetch(addr, get("/")).unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().find("link"), None);
    assert_eq!(body_of(&mut resp), b"ok");
    server.join().unwrap();
}

// ---- keep-alive, reconnects, retries ----

#[test]
fn two_requests_share_one_connection_in_order() {
    let (addr, server) = serve(vec![Box::new(|mut s| {
        for body in [&b"first"[..], b"second"] {
            read_request(&mut s).unwrap();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(body).unwrap();
        }
        // The client must not send a third request nor open a second connection.
        assert!(read_request(&mut s).is_none());
    })]);
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, addr).unwrap();
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    conn.request(&mut base, get("/1"), collector(&outcomes))
        .unwrap();
    conn.request(&mut base, get("/2"), collector(&outcomes))
        .unwrap();
    assert_eq!(conn.pending(&base).unwrap(), 2);
    run_until(&mut base, &outcomes, 2);
    let bodies: Vec<Vec<u8>> = outcomes
        .take()
        .into_iter()
        .map(|r| body_of(&mut r.unwrap()))
        .collect();
    assert_eq!(bodies, [b"first".to_vec(), b"second".to_vec()]);
    let stats = conn.stats(&base).unwrap();
    assert_eq!((stats.connect_attempts, stats.connections), (1, 1));
    assert!(conn.is_connected(&base).unwrap(), "kept alive");
    conn.free(&mut base).unwrap();
    no_more_connections(server.join().unwrap());
}

#[test]
fn server_closing_an_idle_kept_alive_connection_means_a_new_one() {
    let (addr, server) = serve(vec![
        Box::new(|mut s| {
            read_request(&mut s).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
                .unwrap();
            // Closes the kept-alive connection.
        }),
        respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
    ]);
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, addr).unwrap();
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let o = outcomes.clone();
    // The second request is made from the first one's callback: the close may be seen before it
    // goes out (a new connection) or cross it on the wire (sent again): both end in its response.
    conn.request(&mut base, get("/a"), move |base, r| {
        o.borrow_mut().push(r);
        let o2 = o.clone();
        conn.request(base, get("/b"), move |_, r| o2.borrow_mut().push(r))
            .unwrap();
    })
    .unwrap();
    run_until(&mut base, &outcomes, 2);
    let bodies: Vec<Vec<u8>> = outcomes
        .take()
        .into_iter()
        .map(|r| body_of(&mut r.unwrap()))
        .collect();
    assert_eq!(bodies, [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(conn.stats(&base).unwrap().connections, 2);
    conn.free(&mut base).unwrap();
    no_more_connections(server.join().unwrap());
}

#[test]
fn an_idempotent_request_crossing_the_close_is_sent_again() {
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let (addr, server) = serve(vec![
        Box::new(move |mut s| {
            read_request(&mut s).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
                .unwrap();
            // The second request arrives; the server closes without answering, as one does
            // when its keep-alive timeout fires just then.
            tx.send(read_request(&mut s).unwrap()).unwrap();
        }),
        Box::new(move |mut s| {
            tx2.send(read_request(&mut s).unwrap()).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
                .unwrap();
        }),
    ]);
    let put = Request::new(Method::Put, "/doc")
        .unwrap()
        .body(b"v2".to_vec());
    let (mut out, stats) = fetch_all(addr, vec![get("/a"), put], |_, _| {});
    assert_eq!(body_of(out[1].as_mut().unwrap()), b"b");
    assert_eq!(
        (stats.connections, stats.resent, stats.requests_sent),
        (2, 1, 3)
    );
    let sent: Vec<Vec<u8>> = rx.iter().collect();
    assert_eq!(sent[0], sent[1], "the same bytes, body included");
    assert!(text(&sent[1]).ends_with("Content-Length: 2\r\n\r\nv2"));
    no_more_connections(server.join().unwrap());
}

#[test]
fn a_post_crossing_the_close_fails_and_the_next_request_reconnects() {
    let (addr, server) = serve(vec![
        Box::new(|mut s| {
            read_request(&mut s).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
                .unwrap();
            read_request(&mut s).unwrap();
        }),
        respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"),
    ]);
    let post = Request::new(Method::Post, "/order")
        .unwrap()
        .body(b"1".to_vec());
    let (mut out, stats) = fetch_all(addr, vec![get("/a"), post, get("/c")], |_, _| {});
    assert!(out[0].is_ok());
    assert!(
        matches!(&out[1], Err(ClientError::Closed { partial: None, .. })),
        "{:?}",
        out[1]
    );
    assert_eq!(out[1].as_ref().unwrap_err().kind(), ErrorKind::Eof);
    assert_eq!(body_of(out[2].as_mut().unwrap()), b"c");
    assert_eq!((stats.connections, stats.resent), (2, 0));
    no_more_connections(server.join().unwrap());
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn connect_refused_without_retries_left_fails_every_queued_request() {
    let addr = closed_port();
    let (out, stats) = fetch_all(addr, vec![get("/1"), get("/2")], |base, conn| {
        conn.set_retries(base, 2).unwrap();
        conn.set_initial_retry_delay(base, Duration::from_millis(1))
            .unwrap();
    });
    for r in &out {
        match r {
            Err(ClientError::Connect(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((stats.connect_attempts, stats.connections), (3, 0));
}

#[test]
fn retries_reach_a_server_that_starts_listening_later() {
    let addr = closed_port();
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, addr).unwrap();
    conn.set_retries(&mut base, 30).unwrap();
    conn.set_initial_retry_delay(&mut base, Duration::from_millis(5))
        .unwrap();
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    conn.request(&mut base, get("/late"), collector(&outcomes))
        .unwrap();
    // Once a connect has been refused, the server starts listening on that port.
    let mut server = None;
    let deadline = Instant::now() + GUARD;
    while server.is_none() && Instant::now() < deadline {
        base.run(revent::LoopFlags::ONCE).unwrap();
        if conn.stats(&base).unwrap().connect_attempts >= 2 {
            let listener = TcpListener::bind(addr).expect("the port is still free");
            server = Some(std::thread::spawn(move || {
                let mut s = accept(&listener).unwrap();
                read_request(&mut s).unwrap();
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
                    .unwrap();
            }));
        }
    }
    assert!(outcomes.borrow().is_empty(), "no callback while retrying");
    run_until(&mut base, &outcomes, 1);
    let mut r = outcomes.take().pop().unwrap().unwrap();
    assert_eq!(body_of(&mut r), b"late");
    let stats = conn.stats(&base).unwrap();
    assert!(
        stats.connect_attempts >= 2 && stats.connections == 1,
        "{stats:?}"
    );
    conn.free(&mut base).unwrap();
    server.unwrap().join().unwrap();
}

// ---- timeouts ----

#[test]
fn read_timeout_fires_when_the_server_never_answers() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        read_request(&mut s).unwrap();
        // Holds the connection open, silent, until the client gave up.
        let _ = release_rx.recv_timeout(GUARD);
    })]);
    let (out, _) = fetch_all(addr, vec![get("/slow")], |base, conn| {
        conn.set_read_timeout(base, Duration::from_millis(100))
            .unwrap();
    });
    assert!(matches!(out[0], Err(ClientError::Timeout)), "{:?}", out[0]);
    assert_eq!(out[0].as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    release_tx.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn a_slow_body_times_out_too_and_is_not_complete() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        read_request(&mut s).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            .unwrap();
        let _ = release_rx.recv_timeout(GUARD);
    })]);
    let (out, _) = fetch_all(addr, vec![get("/")], |base, conn| {
        conn.set_timeout(base, Duration::from_millis(100)).unwrap();
    });
    assert!(matches!(out[0], Err(ClientError::Timeout)), "{:?}", out[0]);
    release_tx.send(()).unwrap();
    server.join().unwrap();
}

// ---- hostile responses ----

fn refused(
    bytes: &'static [u8],
    configure: impl FnOnce(&mut EventBase, Connection),
) -> ClientError {
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        read_request(&mut s).unwrap();
        // The client may close before reading it all.
        let _ = s.write_all(bytes);
    })]);
    let (mut out, stats) = fetch_all(addr, vec![get("/")], configure);
    assert_eq!(stats.connections, 1);
    server.join().unwrap();
    out.pop().unwrap().expect_err("must be refused")
}

fn invalid(e: ClientError) -> ParseError {
    match e {
        ClientError::Invalid(p) => p,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn smuggling_like_framing_is_refused() {
    let e = refused(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        |_, _| {},
    );
    assert_eq!(invalid(e), ParseError::ContentLengthWithTransferEncoding);
    let e = refused(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        |_, _| {},
    );
    assert_eq!(invalid(e), ParseError::ConflictingContentLength);
    let e = refused(
        b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
        |_, _| {},
    );
    assert_eq!(invalid(e), ParseError::InvalidContentLength);
    let e = refused(
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        |_, _| {},
    );
    assert_eq!(invalid(e), ParseError::ObsoleteLineFolding);
    let e = refused(b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", |_, _| {});
    assert_eq!(invalid(e), ParseError::NulByte);
}

#[test]
fn bad_chunk_sizes_are_refused() {
    for (bytes, want) in [
        (
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"[..],
            ParseError::InvalidChunkSize,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
            ParseError::InvalidChunkSize,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
            ParseError::InvalidChunkSize,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
            ParseError::InvalidChunkTerminator,
        ),
    ] {
        let bytes: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
        assert_eq!(invalid(refused(bytes, |_, _| {})), want);
    }
}

#[test]
fn garbage_is_refused() {
    let e = refused(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", |_, _| {});
    assert_eq!(e.kind(), ErrorKind::InvalidHeader);
    let e = refused(b"HTTP/1.1 2000 OK\r\n\r\n", |_, _| {});
    assert_eq!(e.kind(), ErrorKind::InvalidHeader);
    let e = refused(b"HTTP/2.0 200 OK\r\n\r\n", |_, _| {});
    assert_eq!(invalid(e), ParseError::UnsupportedVersion);
}

#[test]
fn huge_heads_are_refused_at_the_limit() {
    let mut big = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat(b'a').take(100_000));
    big.extend_from_slice(b"\r\n\r\n");
    let big: &'static [u8] = Box::leak(big.into_boxed_slice());
    let e = refused(big, |base, conn| {
        conn.set_max_headers_size(base, 4096).unwrap();
    });
    assert_eq!(invalid(e), ParseError::HeadersTooLarge { limit: 4096 });

    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..20 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let many: &'static [u8] = Box::leak(many.into_boxed_slice());
    let e = refused(many, |base, conn| conn.set_max_headers(base, 10).unwrap());
    assert_eq!(invalid(e), ParseError::TooManyHeaders { limit: 10 });
}

#[test]
fn bodies_past_the_limit_are_refused() {
    let e = refused(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        |base, conn| conn.set_max_body_size(base, 100).unwrap(),
    );
    assert_eq!(e.kind(), ErrorKind::DataTooLong);
    let e = refused(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n",
        |base, conn| conn.set_max_body_size(base, 63).unwrap(),
    );
    assert_eq!(invalid(e), ParseError::BodyTooLarge { limit: 63 });
    let mut close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    close.extend(std::iter::repeat(b'z').take(5000));
    let close: &'static [u8] = Box::leak(close.into_boxed_slice());
    let e = refused(close, |base, conn| {
        conn.set_max_body_size(base, 1000).unwrap()
    });
    assert_eq!(invalid(e), ParseError::BodyTooLarge { limit: 1000 });
}

#[test]
fn unsolicited_bytes_after_a_response_close_the_connection() {
    let (addr, server) = serve(vec![
        Box::new(|mut s| {
            read_request(&mut s).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforged")
                .unwrap();
            let _ = read_request(&mut s);
        }),
        respond(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"),
    ]);
    let (mut out, stats) = fetch_all(addr, vec![get("/1"), get("/2")], |_, _| {});
    assert_eq!(body_of(out[0].as_mut().unwrap()), b"a");
    assert_eq!(
        body_of(out[1].as_mut().unwrap()),
        b"real",
        "never the forged one"
    );
    assert_eq!(stats.connections, 2);
    server.join().unwrap();
}

// ---- ends in the middle ----

#[test]
fn a_reset_mid_body_is_an_error_with_what_arrived() {
    let (addr, server) = serve(vec![Box::new(|mut s| {
        read_request(&mut s).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        // Dropped with SO_LINGER 0: a reset.
    })]);
    let e = fetch(addr, get("/")).unwrap_err();
    match e {
        ClientError::Closed {
            error,
            partial: Some(mut partial),
        } => {
            // The reset may overtake the bytes in the kernel; never more than what was sent.
            assert!(error.is_none() || error.unwrap().kind() == io::ErrorKind::ConnectionReset);
            assert_eq!(partial.status(), 200);
            let got = body_of(&mut partial);
            assert!(b"0123456789".starts_with(&got), "{got:?}");
        }
        other => panic!("{other:?}"),
    }
    server.join().unwrap();
}

#[test]
fn a_close_mid_body_is_an_error_not_a_short_body() {
    for bytes in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
    ] {
        let bytes: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
        let (addr, server) = one_shot(bytes);
        match fetch(addr, get("/")).unwrap_err() {
            ClientError::Closed {
                error: None,
                partial: Some(mut p),
            } => assert_eq!(body_of(&mut p), b"0123456789"),
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
    }
    // Closed inside the head: no partial response.
    let (addr, server) = one_shot(b"HTTP/1.1 200 OK\r\nContent-Le");
    assert!(matches!(
        fetch(addr, get("/")).unwrap_err(),
        ClientError::Closed { partial: None, .. }
    ));
    server.join().unwrap();
}

// ---- incremental delivery, streamed uploads ----

#[test]
fn the_chunk_callback_gets_the_body_as_it_arrives() {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        read_request(&mut s).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            .unwrap();
        // The rest only once the client has seen the first part.
        go_rx.recv_timeout(GUARD).unwrap();
        s.write_all(b"6\r\nsecond\r\n0\r\n\r\n").unwrap();
    })]);
    let seen = Rc::new(RefCell::new(Vec::<u8>::new()));
    let calls = Rc::new(RefCell::new(0));
    let (sn, c) = (seen.clone(), calls.clone());
    let req = get("/stream").on_chunk(move |_, head, chunk: &mut Evbuffer| {
        assert_eq!(head.status(), 200);
        sn.borrow_mut()
            .extend_from_slice(chunk.pullup_all().unwrap());
        *c.borrow_mut() += 1;
        if sn.borrow().as_slice() == b"first" {
            go_tx.send(()).unwrap();
        }
    });
    let resp = fetch(addr, req).unwrap();
    assert!(resp.body().is_empty(), "the chunk callback took it");
    assert_eq!(seen.borrow().as_slice(), b"firstsecond");
    assert!(*calls.borrow() >= 2);
    server.join().unwrap();
}

#[test]
fn a_chunked_request_body_streams_out() {
    let (tx, rx) = mpsc::channel();
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        tx.send(read_request(&mut s).unwrap()).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    })]);
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, addr).unwrap();
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let req = Request::new(Method::Post, "/up").unwrap().chunked();
    let h = conn.request(&mut base, req, collector(&outcomes)).unwrap();
    h.send_chunk(&mut base, b"hello").unwrap();
    // The rest comes from a timer, after the head went out.
    let t = base.new_timer(move |base, _| {
        h.send_chunk(base, b", world!").unwrap();
        h.send_chunk(base, b"").unwrap();
        h.end_body(base).unwrap();
        assert!(matches!(
            h.send_chunk(base, b"late"),
            Err(ClientError::InvalidRequest(_))
        ));
    });
    base.add(t, Some(Duration::from_millis(20))).unwrap();
    run_until(&mut base, &outcomes, 1);
    assert_eq!(outcomes.take().pop().unwrap().unwrap().status(), 200);
    assert_eq!(
        text(&rx.recv().unwrap()),
        format!(
            "POST /up HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n8\r\n, world!\r\n0\r\n\r\n"
        )
    );
    assert!(matches!(h.end_body(&mut base), Err(ClientError::Stale)));
    conn.free(&mut base).unwrap();
    server.join().unwrap();
}

// ---- handles and the API ----

#[test]
fn framing_fields_and_bad_targets_are_refused_up_front() {
    assert!(matches!(
        Request::new(Method::Get, "/a b"),
        Err(ClientError::InvalidRequest(_))
    ));
    assert!(matches!(
        Request::new(Method::Get, "/a\r\nX: y"),
        Err(ClientError::InvalidRequest(_))
    ));
    assert!(matches!(
        Request::new(Method::Other("BAD METHOD".into()), "/"),
        Err(ClientError::InvalidRequest(_))
    ));
    assert!(get("/").header("X", "a\r\nb").is_err());
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, closed_port()).unwrap();
    let req = get("/").header("Transfer-Encoding", "chunked").unwrap();
    assert!(matches!(
        conn.request(&mut base, req, |_, _| unreachable!()),
        Err(ClientError::InvalidRequest(_))
    ));
    assert_eq!(conn.pending(&base).unwrap(), 0);
    conn.free(&mut base).unwrap();
}

#[test]
fn cancelled_requests_and_freed_connections_run_no_callback() {
    let (tx, rx) = mpsc::channel();
    let (addr, server) = serve(vec![Box::new(move |mut s| {
        for _ in 0..2 {
            let r = read_request(&mut s).unwrap();
            tx.send(text(&r).lines().next().unwrap().to_string())
                .unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
        }
    })]);
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, addr).unwrap();
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    conn.request(&mut base, get("/1"), collector(&outcomes))
        .unwrap();
    let second = conn
        .request(&mut base, get("/2"), |_, _| panic!("cancelled"))
        .unwrap();
    conn.request(&mut base, get("/3"), collector(&outcomes))
        .unwrap();
    assert!(second.cancel(&mut base).unwrap());
    assert!(!second.is_pending(&base));
    assert!(matches!(second.cancel(&mut base), Ok(false)));
    run_until(&mut base, &outcomes, 2);
    assert_eq!(
        rx.iter().collect::<Vec<_>>(),
        ["GET /1 HTTP/1.1", "GET /3 HTTP/1.1"]
    );
    conn.free(&mut base).unwrap();
    assert!(matches!(conn.free(&mut base), Err(ClientError::Stale)));
    assert!(matches!(conn.stats(&base), Err(ClientError::Stale)));
    assert!(matches!(second.cancel(&mut base), Err(ClientError::Stale)));
    assert!(matches!(
        conn.request(&mut base, get("/"), |_, _| {}),
        Err(ClientError::Stale)
    ));
    // A new connection in the same slot does not revive the old handle.
    let other = Connection::new(&mut base, addr).unwrap();
    assert_ne!(other, conn);
    assert!(matches!(conn.pending(&base), Err(ClientError::Stale)));
    other.free(&mut base).unwrap();
    server.join().unwrap();
}

#[test]
fn a_callback_may_free_its_own_connection() {
    let (addr, server) = serve(vec![Box::new(|mut s| {
        read_request(&mut s).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
    })]);
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, addr).unwrap();
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let o = outcomes.clone();
    conn.request(&mut base, get("/1"), move |base, r| {
        o.borrow_mut().push(r);
        conn.free(base).unwrap();
    })
    .unwrap();
    conn.request(&mut base, get("/2"), |_, _| {
        panic!("freed with its connection")
    })
    .unwrap();
    run_until(&mut base, &outcomes, 1);
    // Nothing is left in the base: the loop ends by itself.
    base.dispatch().unwrap();
    assert!(outcomes.take().pop().unwrap().is_ok());
    server.join().unwrap();
}

#[test]
fn connect_timeout_fires_and_is_retried() {
    // A listener whose accept queue is full drops further SYNs: connects to it hang.
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(50));
    let (out, stats) = fetch_all(addr, vec![get("/")], |base, conn| {
        conn.set_connect_timeout(base, Duration::from_millis(100))
            .unwrap();
        conn.set_retries(base, 1).unwrap();
        conn.set_initial_retry_delay(base, Duration::from_millis(1))
            .unwrap();
    });
    assert!(
        matches!(out[0], Err(ClientError::ConnectTimeout)),
        "{:?}",
        out[0]
    );
    assert_eq!(out[0].as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!((stats.connect_attempts, stats.connections), (2, 0));
    drop(fillers);
}

#[test]
fn a_trailer_section_split_across_reads_completes() {
    // Regression: the client once spun on a partial trailer section left in its input.
    let (addr, server) = serve(vec![Box::new(|mut s| {
        read_request(&mut s).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"rail: t\r\n\r\n").unwrap();
    })]);
    let mut resp = fetch(addr, get("/")).unwrap();
    assert_eq!(body_of(&mut resp), b"ok");
    assert_eq!(resp.trailers().find_str("x-trail"), Some("t"));
    server.join().unwrap();
}

// ---- head callback, local address, close callback, the owner's bufferevent ----

#[test]
fn head_callback_sees_the_head_before_the_body_and_can_refuse() {
    let (addr, server) = serve(vec![
        respond(b"HTTP/1.1 200 OK\r\nX-Ok: yes\r\nContent-Length: 5\r\n\r\nhello"),
        respond(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"),
    ]);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let accept = get("/a").on_head(move |_, head| {
        s1.borrow_mut().push((
            head.status(),
            head.headers().find("X-Ok").map(<[u8]>::to_vec),
        ));
        true
    });
    let refuse = get("/b").on_head(move |_, head| {
        s2.borrow_mut().push((head.status(), None));
        head.status() == 200
    });
    let (mut out, _) = fetch_all(addr, vec![accept, refuse], |_, _| {});
    let mut first = out.remove(0).unwrap();
    assert_eq!(body_of(&mut first), b"hello");
    let err = out.remove(0).unwrap_err();
    assert!(matches!(err, ClientError::Refused), "{err}");
    assert_eq!(err.kind(), ErrorKind::Eof);
    assert_eq!(
        *seen.borrow(),
        vec![(200, Some(b"yes".to_vec())), (403, None)],
        "once per response, in order"
    );
    server.join().unwrap();
}

#[test]
fn sockets_bind_the_local_address_asked_for() {
    let (tx, rx) = mpsc::channel();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A free port to bind the client to: taken from the system, then let go.
    let local = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = std::thread::spawn(move || {
        let mut s = accept(&listener).expect("the client connects");
        tx.send(s.peer_addr().unwrap()).unwrap();
        read_request(&mut s).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let (mut out, _) = fetch_all(addr, vec![get("/")], |base, conn| {
        conn.set_local_addr(base, Some(local)).unwrap();
    });
    assert_eq!(out.remove(0).unwrap().status(), 200);
    assert_eq!(
        rx.recv().unwrap(),
        local,
        "the server sees the bound address"
    );
    server.join().unwrap();
}

#[test]
fn a_local_address_that_cannot_be_bound_fails_the_connect() {
    let (addr, _server) = serve(vec![]);
    // 192.0.2.1 (TEST-NET-1) is not an address of this host.
    let (mut out, _) = fetch_all(addr, vec![get("/")], |base, conn| {
        conn.set_local_addr(base, Some("192.0.2.1:0".parse().unwrap()))
            .unwrap();
    });
    assert!(matches!(
        out.remove(0).unwrap_err(),
        ClientError::Connect(_)
    ));
}

#[test]
fn close_callback_runs_once_per_closed_socket_on_the_owners_bufferevent() {
    // Two connections: the server closes each after one response.
    let (addr, server) = serve(vec![
        respond(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na"),
        respond(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nb"),
    ]);
    let mut base = EventBase::new().unwrap();
    let bev =
        revent::BufferEvent::socket(&mut base, None, revent::BevOptions::CLOSE_ON_FREE).unwrap();
    let conn = Connection::with_bufferevent(&mut base, addr, bev).unwrap();
    let closes = Rc::new(RefCell::new(0));
    let c = closes.clone();
    conn.set_close_cb(&mut base, Some(Box::new(move |_| *c.borrow_mut() += 1)))
        .unwrap();
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let used = Rc::new(RefCell::new(Vec::new()));
    for path in ["/1", "/2"] {
        let u = used.clone();
        let req = get(path).on_head(move |base, _| {
            // The response arrives on the owner's bufferevent, with a socket on it.
            u.borrow_mut().push(bev.fd(base).is_ok());
            true
        });
        conn.request(&mut base, req, collector(&outcomes)).unwrap();
    }
    run_until(&mut base, &outcomes, 2);
    let deadline = Instant::now() + GUARD;
    while *closes.borrow() < 2 && Instant::now() < deadline {
        base.run(revent::LoopFlags::ONCE).unwrap();
    }
    assert_eq!(*closes.borrow(), 2);
    assert_eq!(*used.borrow(), vec![true, true]);
    let bodies: Vec<Vec<u8>> = outcomes
        .take()
        .into_iter()
        .map(|o| body_of(&mut o.unwrap()))
        .collect();
    assert_eq!(bodies, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(conn.stats(&base).unwrap().connections, 2);
    assert_eq!(conn.bufferevent(&base).unwrap(), Some(bev));
    // Between sockets the owner's bufferevent has none; freeing the connection leaves it alive.
    assert!(bev.fd(&base).is_err());
    conn.free(&mut base).unwrap();
    base.run(revent::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(*closes.borrow(), 2, "no callback for the owner's free");
    bev.free(&mut base).unwrap();
    no_more_connections(server.join().unwrap());
}
