//! revent-http's server on arbitrary bytes: a connection (one end of a bufferevent pair) gets the
//! input in pieces, the server parses, routes and answers it (whole, chunked, streamed-body,
//! deferred and error replies), then the client half-closes and goes away. Any panic is a bug;
//! so is a reply that is not an HTTP/1.x status line, or a connection whose events outlive it.
//!
//! The first byte picks the limits (tiny or roomy) and how many pieces the input comes in; the rest is the client's
//! bytes. Routes: `/echo` (the whole body back), `/stream` (body delivered as it arrives),
//! `/chunked` (a chunked reply), `/later` (answered after the loop ran again), `/error` (an error
//! reply), `/ws` (a WebSocket upgrade: echo, a ping for each pong, a close on a binary message
//! starting with 0, a 64-byte message limit), anything else a short reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revent::{BevOptions, BufferEvent, EventBase, Evbuffer, FlushMode, LoopFlags, PeerAddr, What};
use revent_http::{Limits, Message, RequestHandle, Server};
use std::cell::RefCell;
use std::rc::Rc;

struct World {
    base: EventBase,
    server: Server,
    later: Rc<RefCell<Vec<RequestHandle>>>,
}

fn world() -> World {
    let base = EventBase::new().unwrap();
    let server = Server::new();
    let later: Rc<RefCell<Vec<RequestHandle>>> = Rc::default();
    server.set_cb("/echo", |base, req| {
        let mut b = Evbuffer::new();
        b.add_buffer(req.body_mut()).unwrap();
        req.send_reply_buffer(base, 200, "OK", &mut b).unwrap();
    });
    server.set_stream_cb("/stream", |base, req| {
        let n = req.body().len();
        req.body_mut().drain(n).unwrap();
        if req.body_complete() {
            req.send_reply(base, 200, "", b"streamed").unwrap();
        }
    });
    server.set_cb("/chunked", |base, req| {
        req.reply_start(base, 200, "OK").unwrap();
        req.reply_chunk(base, b"one").unwrap();
        req.reply_chunk(base, b"two").unwrap();
        req.reply_end(base).unwrap();
    });
    {
        let later = later.clone();
        server.set_cb("/later", move |_, req| later.borrow_mut().push(req.handle()));
    }
    server.set_cb("/error", |base, req| req.send_error(base, 418, None).unwrap());
    server.set_cb("/ws", |base, req| {
        // Not a valid handshake: answered (400/426) by the call itself.
        let _ = req.upgrade_websocket(base, 64, |base, ws, msg| match msg {
            Message::Text(t) => ws.send_text(base, &t).unwrap(),
            Message::Binary(b) if b.first() == Some(&0) => ws.close(base, 1000, "").unwrap(),
            Message::Binary(b) => ws.send_binary(base, &b).unwrap(),
            Message::Pong(_) => ws.ping(base, b"x").unwrap(),
            Message::Close { .. } => assert!(ws.send_text(base, "no").is_err()),
        });
    });
    server.set_gencb(|base, req| {
        let body = req.target().len().to_string();
        req.send_reply(base, 200, "OK", body.as_bytes()).unwrap();
    });
    World {
        base,
        server,
        later,
    }
}

thread_local! {
    static WORLD: RefCell<World> = RefCell::new(world());
}

/// Runs the loop `times` without waiting, answering the deferred requests after each run.
fn spin(w: &mut World, times: usize) {
    for _ in 0..times {
        w.base.run(LoopFlags::NONBLOCK).unwrap();
        let pending: Vec<RequestHandle> = w.later.borrow_mut().drain(..).collect();
        for h in pending {
            let base = &mut w.base;
            // The connection may be gone: then the handle is stale, an error.
            let _ = w
                .server
                .with_request(h, |req| req.send_reply(base, 202, "", b"later"));
        }
    }
}

fn check_replies(out: &[u8]) {
    if !out.is_empty() {
        assert!(out.starts_with(b"HTTP/1."), "{:?}", String::from_utf8_lossy(out));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    WORLD.with(|w| {
        let w = &mut *w.borrow_mut();
        let limits = if mode & 1 == 0 {
            Limits::default()
        } else {
            Limits {
                max_head_bytes: 64,
                max_headers: 3,
                max_body: 32,
                max_chunk_line: 8,
            }
        };
        w.server.set_limits(limits);
        // Into 1 to 8 pieces, so that every state can be cut off mid-way.
        let pieces = 1 + (mode >> 1) as usize % 8;
        let piece = input.len().div_ceil(pieces).max(1);
        let events_before = w.base.num_events();
        let (client, conn) = BufferEvent::pair(&mut w.base, BevOptions::NONE).unwrap();
        client.enable(&mut w.base, What::READ | What::WRITE).unwrap();
        w.server
            .add_bufferevent(&mut w.base, conn, PeerAddr::Unix(None));
        let mut replies = Vec::new();
        for p in input.chunks(piece) {
            client.write(&mut w.base, p).unwrap();
            spin(w, 1);
            let got = client.input(&mut w.base).unwrap();
            replies.extend_from_slice(got.pullup_all().unwrap());
            let n = got.len();
            got.drain(n).unwrap();
        }
        client
            .flush(&mut w.base, What::WRITE, FlushMode::Finished)
            .unwrap();
        spin(w, 4);
        let got = client.input(&mut w.base).unwrap();
        replies.extend_from_slice(got.pullup_all().unwrap());
        check_replies(&replies);
        client.free(&mut w.base).unwrap();
        spin(w, 4);
        // Whatever still waits (a lingering close, a deferred reply) goes with the server's free.
        w.server.free(&mut w.base);
        spin(w, 4);
        assert_eq!(w.server.stats().open, 0);
        assert_eq!(w.base.num_events(), events_before, "a connection's events outlived it");
    });
});
