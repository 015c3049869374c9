//! The server against hostile clients: request smuggling, malformed heads, oversized input,
//! slow clients, clients that do not read, resets and half-closes. Every refusal gets its status
//! and the connection closed, and what the client sent is not kept.

mod server_common;

use revent::{Evbuffer, EventBase};
use revent_http::{Limits, Timeouts};
use server_common::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

/// Replies with the method, target and body it got.
fn echo_server() -> TestServer {
    TestServer::start(|_, server| {
        server.set_gencb(|base, req| {
            let mut body = Evbuffer::new();
            body.add(format!("{} {} ", req.method(), req.target()).as_bytes())
                .unwrap();
            body.add_buffer(req.body_mut()).unwrap();
            req.send_reply_buffer(base, 200, "OK", &mut body).unwrap();
        })
    })
}

fn assert_refused(s: &TestServer, request: &[u8], status: u16) {
    let r = refused(s, request);
    assert_eq!(
        r.status,
        status,
        "{:?} -> {}",
        String::from_utf8_lossy(request),
        r.head
    );
}

#[test]
fn request_smuggling_is_refused_and_closes() {
    let s = echo_server();
    for (req, status) in [
        // Content-Length with Transfer-Encoding.
        (
            &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"[..],
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 400),
        // Conflicting Content-Lengths, in one field and in two.
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 5\r\n\r\nabcde", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +4\r\n\r\nabcd", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        // Transfer-Encoding that does not end in chunked, or names something else.
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        // Two Host fields.
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ] {
        assert_refused(&s, req, status);
    }
}

#[test]
fn bad_chunk_sizes_are_refused() {
    let s = echo_server();
    for size in ["0x5", "+5", "-5", " 5", "5 ", "", "g", "fffffffffffffffff"] {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n"
        );
        assert_refused(&s, req.as_bytes(), 400);
    }
    // Chunk data not followed by CRLF, or a bare LF after the size.
    assert_refused(
        &s,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        400,
    );
    assert_refused(
        &s,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn malformed_heads_are_refused() {
    let s = echo_server();
    for (req, status) in [
        // Obsolete line folding.
        (
            &b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n"[..],
            400,
        ),
        (b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
        // Bare CR in the request line, a name, a value.
        (b"GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHo\rst: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\rX-Evil: 1\r\n\r\n", 400),
        // NUL in a name and in a value: refused, never cut.
        (b"GET / HTTP/1.1\r\nHo\0st: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\0.evil\r\n\r\n", 400),
        // Space before the colon.
        (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
        // Versions: overflowing numbers are malformed, other well-formed ones unsupported.
        (b"GET / HTTP/1.99999999999\r\nHost: h\r\n\r\n", 400),
        (b"GET / HTTP/1.4294967297\r\nHost: h\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\n\r\n", 505),
        (b"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ] {
        assert_refused(&s, req, status);
    }
}

/// A forbidden trailer (libevent 2.1.12 merged trailers into the head) is dropped: the handler
/// sees neither a second Content-Length nor a Host.
#[test]
fn trailer_smuggling_is_harmless() {
    let s = TestServer::start(|_, server| {
        server.set_gencb(|base, req| {
            let hosts = req.headers().find_all("Host").count();
            let cl = req.headers().contains("Content-Length");
            let body = format!("hosts={hosts} cl={cl} trailers={}", req.trailers().len());
            req.send_reply(base, 200, "OK", body.as_bytes()).unwrap();
        })
    });
    let mut c = s.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nContent-Length: 50\r\nHost: evil\r\nTransfer-Encoding: chunked\r\nX-Ok: 1\r\n\r\n");
    assert_eq!(c.response().body, b"hosts=1 cl=false trailers=1");
    // And the connection is still in sync.
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().status, 200);
}

#[test]
fn oversized_input_gets_its_status_and_is_dropped_at_once() {
    let s = TestServer::start(|_, server| {
        server.set_limits(Limits {
            max_head_bytes: 4096,
            max_headers: 10,
            max_body: 10_000,
            ..Limits::default()
        });
        server.set_gencb(|base, req| {
            let n = req.body().len();
            req.send_reply(base, 200, "OK", n.to_string().as_bytes())
                .unwrap();
        });
    });
    // A head past the limit, which keeps coming: 431 once the limit is passed, and the server
    // holds nothing of it (it discards what follows).
    let mut c = s.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    c.send(&vec![b'a'; 5000]);
    let r = c.response();
    assert_eq!(r.status, 431);
    for _ in 0..20 {
        if c.stream.write_all(&[b'a'; 8192]).is_err() {
            break;
        }
    }
    s.wait_for("nothing buffered", |b, s| s.buffered_bytes(b) == 0);
    let _ = c.stream.shutdown(Shutdown::Write);
    c.expect_closed();
    // Too many fields.
    let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..11 {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert_refused(&s, &req, 431);
    // Bodies: announced too large (refused before any of it is read), and chunked growing past
    // the limit.
    assert_refused(
        &s,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10001\r\n\r\n",
        413,
    );
    let mut req = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend_from_slice(b"fa0\r\n");
        req.extend_from_slice(&[b'z'; 0xfa0]);
        req.extend_from_slice(b"\r\n");
    }
    assert_refused(&s, &req, 413);
    // At the limit is fine.
    let mut c = s.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000\r\n\r\n");
    c.send(&[b'q'; 10000]);
    assert_eq!(c.response().body, b"10000");
    drop(c);
    s.wait_for("all closed", |_, s| s.stats().open == 0);
}

/// A client sending its head a byte at a time is cut off by the head timeout (408), however
/// steadily it sends; an idle connection is closed silently.
#[test]
fn slowloris_gets_408_and_idle_connections_close() {
    let s = TestServer::start(|_, server| {
        server.set_timeouts(Timeouts {
            headers: Duration::from_millis(300),
            body: Duration::from_millis(300),
            idle: Duration::from_millis(300),
            ..Timeouts::default()
        });
        server.set_gencb(|base, req| req.send_reply(base, 200, "OK", b"ok").unwrap());
    });
    let mut c = s.connect();
    let head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ".to_vec();
    let writer = {
        let mut w = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            // Far more than the timeout in all, a byte every 20 ms.
            for i in 0..1000 {
                let b = if i < head.len() { head[i] } else { b'a' };
                if w.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("the server never cut the slow client off");
        })
    };
    let r = c.response();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("Connection"), Some("close"));
    writer.join().unwrap();
    // A body that stalls: 408 too.
    let mut c = s.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(c.response().status, 408);
    c.expect_closed();
    // Idle after a reply: closed without a word.
    let mut c = s.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().status, 200);
    c.expect_closed();
    // Connected and silent: the same.
    s.connect().expect_closed();
}

/// A client that pipelines requests for large replies and never reads: the server stops
/// reading its requests while replies wait, so what it holds stays bounded, and the write
/// timeout ends the connection.
#[test]
fn a_client_that_never_reads_stays_bounded() {
    const REPLY: usize = 256 * 1024;
    let s = TestServer::start(|_, server| {
        server.set_max_output(512 * 1024);
        server.set_timeouts(Timeouts {
            write: Duration::from_millis(500),
            ..Timeouts::default()
        });
        server.set_gencb(|base, req| {
            req.send_reply(base, 200, "OK", &vec![b'r'; REPLY]).unwrap();
        });
    });
    let c = s.connect();
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let req = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut sent = 0;
        // 100,000 requests would be 25 GiB of replies; the server must stop taking them.
        for _ in 0..100_000 {
            if w.write_all(req).is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut peak = 0;
    let mut closed = false;
    for _ in 0..2000 {
        let (buffered, open, requests) =
            s.query(|b, s| (s.buffered_bytes(b), s.stats().open, s.stats().requests));
        peak = peak.max(buffered);
        if open == 0 {
            closed = true;
            break;
        }
        assert!(
            requests < 1000,
            "the server kept reading requests: {requests}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(closed, "the write timeout never closed the connection");
    // Output: at most the threshold plus one reply; input: the read high watermark.
    assert!(peak <= 512 * 1024 + REPLY + 70 * 1024, "peak {peak}");
    // (The kernel's socket buffers may hold all 2.8 MB of requests: how many the client got out
    // says nothing; how many the server read does.)
    let _sent: usize = writer.join().unwrap();
    drop(c);
}

#[test]
fn reset_mid_request_frees_the_connection() {
    let s = echo_server();
    for partial in [
        &b"GET / HTTP/1.1\r\nHost:"[..],
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ] {
        let mut c = s.connect();
        c.send(partial);
        s.wait_for("request read", |b, s| {
            s.buffered_bytes(b) > 0 || s.stats().requests > 0
        });
        // SO_LINGER 0: the close sends RST.
        let sock = socket2::SockRef::from(&c.stream);
        sock.set_linger(Some(Duration::ZERO)).unwrap();
        drop(c);
        s.wait_for("connection freed", |_, s| s.stats().open == 0);
    }
    // Still serving.
    let mut c = s.connect();
    c.send(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().body, b"GET /after ");
}

/// A client that half-closes after its requests still gets every reply, then the close; also
/// when its request is answered later.
#[test]
fn half_close_after_requests_still_gets_the_replies() {
    let s = TestServer::start(|base, server| {
        let srv = server.clone();
        let pending = std::rc::Rc::new(std::cell::RefCell::new(None));
        let p = pending.clone();
        let timer = base.new_timer(move |base, _| {
            if let Some(h) = p.borrow_mut().take() {
                srv.with_request(h, |req| req.send_reply(base, 200, "OK", b"late").unwrap())
                    .unwrap();
            }
        });
        server.set_cb("/later", move |base, req| {
            *pending.borrow_mut() = Some(req.handle());
            base.add(timer, Some(Duration::from_millis(100))).unwrap();
        });
        server.set_gencb(|base, req| {
            let t = req.target().to_string();
            req.send_reply(base, 200, "OK", t.as_bytes()).unwrap()
        });
    });
    let mut c = s.connect();
    c.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.response().body, b"/1");
    assert_eq!(c.response().body, b"/2");
    c.expect_closed();
    let mut c = s.connect();
    c.send(b"GET /later HTTP/1.1\r\nHost: h\r\n\r\n");
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.response().body, b"late");
    c.expect_closed();
    s.wait_for("all closed", |_, s| s.stats().open == 0);
}

/// Garbage after a refusal is never read as a request: the response is the refusal only.
#[test]
fn nothing_after_a_refusal_is_answered() {
    let s = echo_server();
    let mut c = s.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut all = Vec::new();
    c.stream.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
}

#[test]
fn many_connections_at_once() {
    let s = echo_server();
    let mut clients: Vec<Client> = (0..100).map(|_| s.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.response().body, format!("GET /{i} ").as_bytes());
    }
    drop(clients);
    s.wait_for("all closed", |_, s| s.stats().open == 0);
    let _ = EventBase::new();
}
