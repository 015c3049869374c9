//! The server against raw TCP clients: exact bytes, routing, persistence, pipelining, bodies in
//! and out.

mod server_common;

use revent::{Evbuffer, EventBase};
use revent_http::{Method, RequestHandle, Server, VirtualHost};
use server_common::*;
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

fn text(body: &'static [u8]) -> impl FnMut(&mut EventBase, &mut revent_http::Request) {
    move |base, req| {
        req.output_headers_mut()
            .add("Content-Type", "text/plain")
            .unwrap();
        req.send_reply(base, 200, "OK", body).unwrap();
    }
}

#[test]
fn whole_reply_exact_bytes() {
    let s = TestServer::start(|_, server| server.set_cb("/hello", text(b"Hello, World!")));
    let mut c = s.connect();
    c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.response();
    assert_eq!(
        r.head,
        "HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
    );
    assert_eq!(r.body, b"Hello, World!");
    let date = r.header("Date").unwrap();
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    // HTTP/1.0 without keep-alive: no Date (as libevent), Connection: close, then the close.
    c.send(b"GET /hello HTTP/1.0\r\n\r\n");
    let r = c.response();
    assert_eq!(
        r.head,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
    );
    c.expect_closed();
}

#[test]
fn routing_by_path_general_callback_and_404() {
    let s = TestServer::start(|_, server| {
        server.set_cb("/a", text(b"a"));
        server.set_cb("/a b", text(b"decoded"));
        server.set_cb("/gone", text(b"x"));
        assert!(server.del_cb("/gone"));
    });
    let mut c = s.connect();
    c.send(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().body, b"a");
    c.send(b"GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().body, b"decoded");
    c.send(b"GET /gone HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Connection"), None, "a 404 keeps the connection");
    s.query(|_, server| {
        server.set_gencb(|base, req| {
            let body = format!("general {}", req.target());
            req.send_reply(base, 200, "OK", body.as_bytes()).unwrap();
        })
    });
    c.send(b"GET /other?q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().body, b"general /other?q");
}

#[test]
fn virtual_hosts_and_aliases() {
    let s = TestServer::start(|_, server| {
        server.set_gencb(text(b"default"));
        let mut v = VirtualHost::new();
        v.set_gencb(text(b"vhost"));
        v.add_alias("other.test");
        server.add_virtual_host("*.example.com", v);
        server.add_alias("www.example.com");
    });
    let mut c = s.connect();
    for (host, want) in [
        ("a.example.com", &b"vhost"[..]),
        ("A.EXAMPLE.COM:8080", b"vhost"),
        ("www.example.com", b"default"),
        ("other.test", b"vhost"),
        ("example.com", b"default"),
    ] {
        c.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(c.response().body, want, "{host}");
    }
    // The host of an absolute target counts when there is no Host field (HTTP/1.0).
    c.send(b"GET http://b.example.com/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(r.body, b"vhost");
    assert_eq!(r.header("Connection"), Some("keep-alive"));
}

#[test]
fn methods_not_allowed_get_501_and_close() {
    let s = TestServer::start(|_, server| server.set_gencb(text(b"ok")));
    for req in [
        &b"PATCH / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"BREW / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"OPTIONS / HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        let r = refused(&s, req);
        assert_eq!(r.status, 501);
        assert!(r.head.starts_with("HTTP/1.1 501 Not Implemented\r\n"));
    }
    s.query(|_, server| server.set_allowed_methods([Method::Get, Method::Other("BREW".into())]));
    let mut c = s.connect();
    c.send(b"BREW / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert_eq!(
        refused(
            &s,
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
        )
        .status,
        501
    );
}

#[test]
fn keep_alive_rules() {
    let s = TestServer::start(|_, server| server.set_gencb(text(b"ok")));
    // HTTP/1.1: kept until Connection: close.
    let mut c = s.connect();
    for _ in 0..3 {
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(c.response().header("Connection"), None);
    }
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().header("Connection"), Some("close"));
    c.expect_closed();
    // HTTP/1.0 with keep-alive: kept, and told so.
    let mut c = s.connect();
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response();
        assert!(r.head.starts_with("HTTP/1.0 200 OK\r\n"));
        assert_eq!(r.header("Connection"), Some("keep-alive"));
    }
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().header("Connection"), Some("close"));
    c.expect_closed();
    s.wait_for("connections closed", |_, s| s.stats().open == 0);
    assert_eq!(s.query(|_, s| s.stats().requests), 7);
}

/// `/slow` keeps its request and answers it from a timer; requests pipelined behind it wait and
/// are answered after it, in order.
#[test]
fn pipelined_requests_answered_in_order_behind_a_slow_handler() {
    let s = TestServer::start(|base, server| {
        let waiting: Rc<RefCell<Vec<RequestHandle>>> = Rc::default();
        let (w, srv) = (waiting.clone(), server.clone());
        let timer = base.new_timer(move |base, _| {
            for h in w.borrow_mut().drain(..) {
                srv.with_request(h, |req| req.send_reply(base, 200, "OK", b"slow").unwrap())
                    .unwrap();
                // Answered: the handle is now stale.
                assert!(srv.with_request(h, |_| ()).is_err());
            }
        });
        server.set_cb("/slow", move |base, req| {
            waiting.borrow_mut().push(req.handle());
            base.add(timer, Some(Duration::from_millis(50))).unwrap();
        });
        server.set_gencb(|base, req| {
            let body = req.target().to_string();
            req.send_reply(base, 200, "OK", body.as_bytes()).unwrap();
        });
    });
    let mut c = s.connect();
    c.send(
        b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /one HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let bodies: Vec<Vec<u8>> = (0..4).map(|_| c.response().body).collect();
    assert_eq!(bodies, [&b"slow"[..], b"/one", b"/two", b"/three"]);
    // Many at once, in one write: all answered, in order.
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    c.send(&burst);
    for i in 0..200 {
        assert_eq!(c.response().body, format!("/{i}").as_bytes());
    }
}

fn body_of(b: &Evbuffer) -> Vec<u8> {
    let mut v = vec![0; b.len()];
    b.copyout(&mut v).unwrap();
    v
}

/// A connection's requests are parsed into the storage the one before used (kept between
/// requests): nothing of a request shows in the next one, not its fields, its target's query,
/// its body and trailers, nor the fields its reply had.
#[test]
fn nothing_of_a_request_leaks_into_the_next_on_its_connection() {
    let s = TestServer::start(|_, server| {
        server.set_gencb(|base, req| {
            let mut seen = format!(
                "{} {} path={:?} query={:?} body={:?} fields=",
                req.method(),
                req.target(),
                req.uri().path(),
                req.uri().query(),
                String::from_utf8_lossy(&body_of(req.body())),
            );
            for (n, v) in req.headers() {
                seen.push_str(&format!("[{n}: {}]", String::from_utf8_lossy(v)));
            }
            seen.push_str(&format!(
                " trailers={} out={}",
                req.trailers().len(),
                req.output_headers().len()
            ));
            if req.headers().contains("X-Set") {
                req.output_headers_mut().add("X-Reply", "first").unwrap();
                req.output_headers_mut()
                    .add("X-Other", "a long value to fill the storage")
                    .unwrap();
            }
            req.send_reply(base, 200, "OK", seen.as_bytes()).unwrap();
        });
    });
    let mut c = s.connect();
    c.send(
        b"POST /first?a=1 HTTP/1.1\r\nHost: h\r\nX-Set: yes\r\nX-Long: 0123456789abcdef\r\n\
          Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: h2\r\n\r\n",
    );
    let first = c.response();
    assert_eq!(first.header("X-Reply"), Some("first"));
    assert_eq!(
        String::from_utf8_lossy(&first.body),
        "POST /first?a=1 path=Some(\"/first\") query=Some(\"a=1\") body=\"abc\" \
         fields=[Host: h][X-Set: yes][X-Long: 0123456789abcdef][Transfer-Encoding: chunked] \
         trailers=1 out=0"
    );
    let second = c.response();
    assert_eq!(second.header("X-Reply"), None);
    assert_eq!(second.header("X-Other"), None);
    assert_eq!(
        String::from_utf8_lossy(&second.body),
        "GET /b path=Some(\"/b\") query=None body=\"\" fields=[Host: h2] trailers=0 out=0"
    );
}

/// `send_reply` bodies of every size arrive whole and in order on one connection (a small one
/// goes out in one piece with its head, a large one after it), and a HEAD reply has none.
#[test]
fn send_reply_bodies_small_and_large() {
    let s = TestServer::start(|_, server| {
        server.set_gencb(|base, req| {
            let n: usize = req.target()[1..].parse().unwrap();
            let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            req.send_reply(base, 200, "OK", &body).unwrap();
        });
    });
    let sizes = [0usize, 1, 4095, 4096, 4097, 100_000, 13];
    let mut c = s.connect();
    let mut all = Vec::new();
    for n in sizes {
        all.extend_from_slice(format!("GET /{n} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    all.extend_from_slice(
        b"HEAD /5000 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    c.send(&all);
    for n in sizes {
        let r = c.response();
        let want: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(r.header("Content-Length"), Some(n.to_string().as_str()));
        assert!(r.body == want, "body of {n} bytes");
    }
    let head = c.response_to(true);
    assert_eq!(head.header("Content-Length"), Some("5000"));
    assert!(head.body.is_empty());
    assert_eq!(c.response().body, b"abc");
}

#[test]
fn expect_100_continue() {
    let s = TestServer::start(|_, server| {
        server.set_gencb(|base, req| {
            let mut b = Evbuffer::new();
            b.add_buffer(req.body_mut()).unwrap();
            req.send_reply_buffer(base, 200, "OK", &mut b).unwrap();
        })
    });
    let mut c = s.connect();
    c.send(b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(c.read_exact(25), b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello");
    assert_eq!(c.response().body, b"hello");
    // Body sent along with the head: no 100 needed (one may still come if the head and the
    // body arrive in two reads; it is skipped).
    c.send(b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi");
    let mut r = c.response();
    if r.status == 100 {
        r = c.response();
    }
    assert_eq!((r.status, r.body), (200, b"hi".to_vec()));
    // Another expectation: 417.
    let r = refused(
        &s,
        b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: magic\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(r.status, 417);
}

#[test]
fn chunked_request_body_and_trailers() {
    let s = TestServer::start(|_, server| {
        server.set_gencb(|base, req| {
            let mut body = req.body_mut().pullup_all().unwrap().to_vec();
            body.extend_from_slice(b"|");
            body.extend_from_slice(req.trailers().find("X-Sum").unwrap_or(b"-"));
            body.extend_from_slice(b"|");
            body.extend_from_slice(req.headers().find("Content-Length").unwrap_or(b"none"));
            req.send_reply(base, 200, "OK", &body).unwrap();
        })
    });
    let mut c = s.connect();
    c.send(
        b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n",
    );
    c.send(b"6\r\n world\r\n0\r\nX-Sum: 11\r\nContent-Length: 1\r\n\r\n");
    // The forbidden trailer (Content-Length) is dropped, never merged into the head.
    assert_eq!(c.response().body, b"hello world|11|none");
}

#[test]
fn chunked_reply_and_http10_close_delimited() {
    let s = TestServer::start(|_, server| {
        server.set_gencb(|base, req| {
            req.output_headers_mut()
                .add("Content-Type", "text/plain")
                .unwrap();
            req.reply_start(base, 200, "OK").unwrap();
            req.reply_chunk(base, b"hello ").unwrap();
            req.reply_chunk(base, b"").unwrap();
            req.reply_chunk(base, b"world").unwrap();
            req.reply_end(base).unwrap();
            assert!(req.reply_end(base).is_err(), "ended twice");
        })
    });
    let mut c = s.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let head = c.response_to(true).head;
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    assert_eq!(c.read_exact(26), b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n");
    // Still open: another request.
    c.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response_to(true);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    // HTTP/1.0: no chunking, the body ends with the connection.
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(
        r.head,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(r.body, b"hello world");
}

#[test]
fn file_reply_and_head() {
    let dir = std::env::temp_dir().join(format!("revent-http-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let p = path.clone();
    let s = TestServer::start(move |_, server| {
        server.set_gencb(move |base, req| {
            let f = std::fs::File::open(&p).unwrap();
            let (off, len) = if req.target() == "/part" {
                (1000, 5000)
            } else {
                (0, 300_000)
            };
            req.output_headers_mut()
                .add("Content-Type", "application/octet-stream")
                .unwrap();
            req.send_file(base, 200, "OK", f.into(), off, len).unwrap();
        })
    });
    let mut c = s.connect();
    c.send(b"GET /all HTTP/1.1\r\nHost: h\r\n\r\nGET /part HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().body, data);
    assert_eq!(c.response().body, &data[1000..6000]);
    c.send(b"HEAD /all HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response_to(true);
    assert_eq!(
        r.head,
        "HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: application/octet-stream\r\nContent-Length: 300000\r\n\r\n"
    );
    // No body came: the next response follows at once.
    c.send(b"GET /part HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().body, &data[1000..6000]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn head_and_bodyless_statuses() {
    let s = TestServer::start(|_, server| {
        server.set_cb("/204", |base, req| {
            req.send_reply(base, 204, "", b"ignored").unwrap()
        });
        server.set_cb("/304", |base, req| {
            req.send_reply(base, 304, "", b"").unwrap()
        });
        server.set_gencb(text(b"some body"));
    });
    let mut c = s.connect();
    c.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response_to(true);
    assert_eq!(r.header("Content-Length"), Some("9"));
    c.send(b"GET /204 HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response();
    assert_eq!(r.head, "HTTP/1.1 204 No Content\r\nDate: DATE\r\n\r\n");
    c.send(b"GET /304 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        c.response().head,
        "HTTP/1.1 304 Not Modified\r\nDate: DATE\r\n\r\n"
    );
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().body, b"some body");
}

#[test]
fn reply_api_refuses_misuse() {
    let s = TestServer::start(|_, server| {
        server.set_gencb(|base, req| {
            assert!(req.reply_chunk(base, b"x").is_err(), "chunk before start");
            assert!(
                req.send_reply(base, 200, "O\r\nK", b"").is_err(),
                "CRLF in reason"
            );
            assert!(req.output_headers_mut().add("X", "a\r\nb").is_err());
            assert!(req.send_reply(base, 1000, "", b"").is_err());
            req.send_reply(base, 200, "Fine", b"ok").unwrap();
            assert!(
                req.send_reply(base, 200, "", b"again").is_err(),
                "second reply"
            );
        })
    });
    let mut c = s.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response();
    assert!(r.head.starts_with("HTTP/1.1 200 Fine\r\n"));
    assert_eq!(r.body, b"ok");
}

/// A streaming handler sees the head first, then the body as it arrives, and can answer when it
/// ended without the server ever holding the whole body.
#[test]
fn streamed_request_body() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    // Calls and bytes seen, shared with the test thread: each piece of the body is sent only once
    // the previous one reached the handler, so the order of calls is not left to timing.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let (c2, s2) = (calls.clone(), seen.clone());
    let s = TestServer::start(move |_, server| {
        server.set_stream_cb("/up", move |base, req| {
            let n = req.body().len();
            req.body_mut().drain(n).unwrap();
            s2.fetch_add(n, SeqCst);
            c2.fetch_add(1, SeqCst);
            if req.body_complete() {
                let summary = format!("{} bytes", s2.load(SeqCst));
                req.send_reply(base, 200, "OK", summary.as_bytes()).unwrap();
            }
        });
        // A handler that refuses at the head: the rest of the body is never read.
        server.set_stream_cb("/no", |base, req| {
            req.send_error(base, 403, None).unwrap();
        });
    });
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(start.elapsed() < HANG_GUARD, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let mut c = s.connect();
    c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n");
    wait("the head call", &|| calls.load(SeqCst) == 1);
    assert_eq!(
        seen.load(SeqCst),
        0,
        "the head call comes before any body byte"
    );
    for i in 1..=4 {
        c.send(&vec![b'x'; 50_000]);
        wait("the body bytes", &|| seen.load(SeqCst) == 50_000 * i);
    }
    assert_eq!(c.response().body, b"200000 bytes");
    assert!(calls.load(SeqCst) >= 5, "one call per piece at least");
    // Refused at the head, before the 1 GB body: 403 and the connection closes.
    let r = refused(
        &s,
        b"POST /no HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000\r\n\r\nxx",
    );
    assert_eq!(r.status, 403);
}

#[test]
fn bind_several_sockets_and_an_existing_one() {
    let s = TestServer::start(|base, server| {
        server.set_gencb(text(b"ok"));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _ = server.listen_fd(base, l.into()).unwrap();
        let _ = server.bind(base, "127.0.0.1:0".parse().unwrap()).unwrap();
        // A listener made elsewhere, its accept callback taken over.
        let l = revent::Listener::bind(
            base,
            "127.0.0.1:0".parse().unwrap(),
            revent::ListenerOptions::REUSEABLE,
            -1,
            |_, _, _| panic!("the server should have taken this listener over"),
        )
        .unwrap();
        let third = l.local_addr(base).unwrap();
        server.attach_listener(base, l).unwrap();
        base.set_state((addr, third));
    });
    let (other, third) = s.query(|base, _| {
        *base
            .state::<(std::net::SocketAddr, std::net::SocketAddr)>()
            .unwrap()
    });
    for addr in [s.addr, other, third] {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(HANG_GUARD)).unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut all).unwrap();
        assert!(
            all.ends_with(b"\r\n\r\nok"),
            "{:?}",
            String::from_utf8_lossy(&all)
        );
    }
}

#[test]
fn stale_handles_are_errors() {
    let server = Server::new();
    let h: Rc<RefCell<Option<RequestHandle>>> = Rc::default();
    let h2 = h.clone();
    server.set_gencb(move |_, req| *h2.borrow_mut() = Some(req.handle()));
    let mut base = EventBase::new().unwrap();
    let (a, b) = revent::BufferEvent::pair(&mut base, revent::BevOptions::NONE).unwrap();
    server.add_bufferevent(&mut base, b, revent::PeerAddr::Unix(None));
    a.write(&mut base, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    base.run(revent::LoopFlags::NONBLOCK).unwrap();
    base.run(revent::LoopFlags::NONBLOCK).unwrap();
    let handle = h.borrow().unwrap();
    assert!(
        server
            .with_request(handle, |req| req.target().to_string())
            .unwrap()
            == "/"
    );
    server.free(&mut base);
    assert_eq!(server.stats().open, 0);
    assert!(
        server.with_request(handle, |_| ()).is_err(),
        "the connection is gone"
    );
}
