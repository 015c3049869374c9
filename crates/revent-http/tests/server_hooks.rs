//! The server's hooks for libevent's extra calls: a bufferevent maker (`evhttp_set_bevcb`),
//! callbacks when the output went out (`evhttp_send_reply_chunk_with_cb`) and when a connection
//! closes (`evhttp_connection_set_closecb`).

mod server_common;

use revent::{BevOptions, BufferEvent, EventBase};
use server_common::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// Polls `cond` (state the server thread shares) until it holds; the deadline is a hang guard.
fn wait(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG_GUARD, "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn accepted_connections_go_on_the_made_bufferevent_and_come_back_to_release() {
    let made = Arc::new(Mutex::new(Vec::new()));
    let released = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (m, r, sn) = (made.clone(), released.clone(), seen.clone());
    let s = TestServer::start(move |_, server| {
        server.set_bufferevent_cb(
            move |base: &mut EventBase| {
                let bev = BufferEvent::socket(base, None, BevOptions::CLOSE_ON_FREE).ok()?;
                m.lock().unwrap().push(format!("{bev:?}"));
                Some(bev)
            },
            move |base: &mut EventBase, bev: BufferEvent| {
                // It comes back with its socket still on it.
                let had_socket = bev.fd(base).is_ok();
                r.lock().unwrap().push((format!("{bev:?}"), had_socket));
                bev.free(base).unwrap();
            },
        );
        server.set_cb("/", move |base, req| {
            sn.lock().unwrap().push(format!("{:?}", req.bufferevent()));
            req.send_reply(base, 200, "OK", b"made").unwrap();
        });
    });
    for _ in 0..2 {
        let mut c = s.connect();
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.response().body, b"made");
        drop(c);
    }
    let rel = released.clone();
    wait("both released", || rel.lock().unwrap().len() == 2);
    let made = made.lock().unwrap().clone();
    assert_eq!(made.len(), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        made,
        "each request came on the bufferevent made for it"
    );
    let rel: Vec<(String, bool)> = released.lock().unwrap().clone();
    assert_eq!(rel, made.into_iter().map(|b| (b, true)).collect::<Vec<_>>());
}

#[test]
fn a_maker_that_refuses_closes_the_connection() {
    let s = TestServer::start(|_, server| {
        server.set_bufferevent_cb(|_: &mut EventBase| None, |_: &mut EventBase, _| {});
        server.set_cb("/", |base, req| {
            req.send_reply(base, 200, "OK", b"x").unwrap()
        });
    });
    let mut c = s.connect();
    c.expect_closed();
}

#[test]
fn flushed_callbacks_run_once_the_output_went_out_in_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let s = TestServer::start(move |_, server| {
        server.set_cb("/stream", move |base, req| {
            req.reply_start(base, 200, "OK").unwrap();
            let bev = req.bufferevent();
            for i in 0..3u8 {
                // Large enough that the socket does not take it in one write.
                req.reply_chunk(base, &vec![b'a' + i; 1 << 20]).unwrap();
                let o = o.clone();
                req.on_flushed(base, move |base| {
                    let left = bev.output(base).unwrap().len();
                    o.lock().unwrap().push((i, left));
                })
                .unwrap();
            }
            req.reply_end(base).unwrap();
        });
    });
    let mut c = s.connect();
    c.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.response();
    assert_eq!(r.body.len(), 3 << 20);
    let ord = order.clone();
    wait("the callbacks", || ord.lock().unwrap().len() == 3);
    // All three waited for an empty output: each saw nothing left to write.
    assert_eq!(*order.lock().unwrap(), vec![(0, 0), (1, 0), (2, 0)]);
}

#[test]
fn close_callback_runs_once_when_the_connection_closes_and_not_before() {
    let closes = Arc::new(AtomicUsize::new(0));
    let held: Arc<Mutex<Option<revent_http::RequestHandle>>> = Arc::default();
    let (c2, h2) = (closes.clone(), held.clone());
    let s = TestServer::start(move |_, server| {
        server.set_cb("/wait", move |_, req| {
            let c = c2.clone();
            req.on_close(move |_| {
                c.fetch_add(1, SeqCst);
            })
            .unwrap();
            // Not answered now: a long poll.
            *h2.lock().unwrap() = Some(req.handle());
        });
    });
    let mut c = s.connect();
    c.send(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    let h = held.clone();
    wait("the request", || h.lock().unwrap().is_some());
    // The client half-closes: it still gets its reply, and the connection stays until then.
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    s.query(|_, _| ());
    assert_eq!(closes.load(SeqCst), 0, "the connection is open");
    let handle = held.lock().unwrap().take().unwrap();
    s.query(move |base, server| {
        server
            .with_request(handle, |req| req.send_reply(base, 200, "OK", b"late"))
            .unwrap()
            .unwrap();
    });
    assert_eq!(c.response().body, b"late");
    let cl = closes.clone();
    wait("the close callback", || cl.load(SeqCst) == 1);
    c.expect_closed();
    s.query(|_, _| ());
    assert_eq!(closes.load(SeqCst), 1, "once");
}
