//! WebSocket upgrades (RFC 6455) against a raw TCP client: the handshake, messages both ways,
//! fragments, pings, the close handshake, and every protocol violation closing with its code.

mod server_common;

use revent_http::Message;
use server_common::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// An echo server: text and binary come back; a text "close" makes the server close with 4000;
/// a text "ping" makes it ping; pongs are reported as text.
fn ws_server() -> TestServer {
    TestServer::start(|_, server| {
        server.set_cb("/ws", |base, req| {
            req.output_headers_mut()
                .add("Sec-WebSocket-Protocol", "echo")
                .unwrap();
            let _ = req.upgrade_websocket(base, 1000, |base, ws, msg| match msg {
                Message::Text(t) if t == "close" => ws.close(base, 4000, "bye").unwrap(),
                Message::Text(t) if t == "ping" => ws.ping(base, b"p!").unwrap(),
                Message::Text(t) => ws.send_text(base, &t).unwrap(),
                Message::Binary(b) => ws.send_binary(base, &b).unwrap(),
                Message::Pong(p) => ws
                    .send_text(base, &format!("pong {}", String::from_utf8_lossy(&p)))
                    .unwrap(),
                Message::Close { .. } => assert!(ws.send_text(base, "late").is_err()),
            });
        });
    })
}

fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![if fin { 0x80 } else { 0 } | op];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    f
}

/// Reads one server frame: (FIN, opcode, payload); server frames are never masked.
fn read_frame(c: &mut Client) -> (bool, u8, Vec<u8>) {
    let h = c.read_exact(2);
    assert_eq!(h[1] & 0x80, 0, "a server frame was masked");
    let len = match h[1] & 0x7f {
        126 => u16::from_be_bytes(c.read_exact(2).try_into().unwrap()) as usize,
        127 => u64::from_be_bytes(c.read_exact(8).try_into().unwrap()) as usize,
        n => n as usize,
    };
    (h[0] & 0x80 != 0, h[0] & 0x0f, c.read_exact(len))
}

fn connect(s: &TestServer) -> Client {
    let mut c = s.connect();
    c.send(UPGRADE.as_bytes());
    let r = c.response_to(true);
    assert_eq!(
        r.head,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: echo\r\n\r\n"
    );
    c
}

/// Sends `bytes` and expects the server to close with `code`, then the connection to end.
fn expect_close(c: &mut Client, bytes: &[u8], code: u16) {
    c.send(bytes);
    let (fin, op, payload) = read_frame(c);
    assert!(fin);
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], code.to_be_bytes());
    c.expect_closed();
}

#[test]
fn handshake_messages_fragments_pings() {
    let s = ws_server();
    let mut c = connect(&s);
    c.send(&frame(true, 1, b"hello"));
    assert_eq!(read_frame(&mut c), (true, 1, b"hello".to_vec()));
    let big = vec![7u8; 900];
    c.send(&frame(true, 2, &big));
    assert_eq!(read_frame(&mut c), (true, 2, big));
    // Fragmented, with a ping between the fragments: the pong comes at once.
    c.send(&frame(false, 1, b"frag"));
    c.send(&frame(true, 9, b"are you there"));
    assert_eq!(read_frame(&mut c), (true, 10, b"are you there".to_vec()));
    c.send(&frame(false, 0, b"men"));
    c.send(&frame(true, 0, b"ted"));
    assert_eq!(read_frame(&mut c), (true, 1, b"fragmented".to_vec()));
    // The server pings; the client's pong reaches the handler.
    c.send(&frame(true, 1, b"ping"));
    assert_eq!(read_frame(&mut c), (true, 9, b"p!".to_vec()));
    c.send(&frame(true, 10, b"p!"));
    assert_eq!(read_frame(&mut c), (true, 1, b"pong p!".to_vec()));
    // The client closes: the server answers with the same code and closes.
    expect_close(&mut c, &frame(true, 8, &[0x03, 0xe8, b'o', b'k']), 1000);
}

#[test]
fn server_initiated_close() {
    let s = ws_server();
    let mut c = connect(&s);
    c.send(&frame(true, 1, b"close"));
    let (_, op, payload) = read_frame(&mut c);
    assert_eq!((op, payload), (8, b"\x0f\xa0bye".to_vec()));
    // Data after the server's close is dropped; the client's close ends it.
    c.send(&frame(true, 1, b"ignored"));
    c.send(&frame(true, 8, &[0x0f, 0xa0]));
    c.expect_closed();
    s.wait_for("closed", |_, s| s.stats().open == 0);
}

#[test]
fn violations_close_with_their_codes() {
    let s = ws_server();
    let mut unmasked = frame(true, 1, b"hi");
    unmasked[1] &= 0x7f;
    let unmasked: Vec<u8> = [&unmasked[..2], b"hi"].concat();
    let mut rsv = frame(true, 1, b"x");
    rsv[0] |= 0x40;
    for (bytes, code) in [
        (unmasked, 1002),
        (rsv, 1002),
        (frame(true, 3, b"x"), 1002),        // unknown opcode
        (frame(false, 9, b"x"), 1002),       // fragmented control frame
        (frame(true, 9, &[0u8; 126]), 1002), // control frame too long
        (frame(true, 0, b"x"), 1002),        // continuation with nothing to continue
        ([frame(false, 1, b"a"), frame(true, 1, b"b")].concat(), 1002), // new message mid-fragments
        (frame(true, 1, &[0xff, 0xfe]), 1007), // text that is not UTF-8
        (frame(true, 2, &[0u8; 1001]), 1009), // over the 1000-byte limit
        (
            [frame(false, 2, &[0u8; 600]), frame(true, 0, &[0u8; 600])].concat(),
            1009,
        ),
        (frame(true, 8, &[3]), 1002),          // one-byte close payload
        (frame(true, 8, &[0x03, 0xed]), 1002), // 1005 may not be sent
        (frame(true, 8, &[0x03, 0xe8, 0xff]), 1007), // reason not UTF-8
    ] {
        let mut c = connect(&s);
        expect_close(&mut c, &bytes, code);
    }
    // A frame announcing 2^62 bytes is refused from its header.
    let mut c = connect(&s);
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    huge.extend_from_slice(&[0, 0, 0, 0]);
    expect_close(&mut c, &huge, 1009);
    s.wait_for("all closed", |_, s| s.stats().open == 0);
}

#[test]
fn bad_handshakes_are_refused() {
    let s = ws_server();
    let with = |from: &str, to: &str| UPGRADE.replace(from, to);
    for req in [
        with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        with(KEY, "short=="),
        with("Upgrade: websocket", "Upgrade: h2c"),
        with("keep-alive, Upgrade", "keep-alive"),
        with("HTTP/1.1", "HTTP/1.0"),
    ] {
        assert_eq!(refused(&s, req.as_bytes()).status, 400, "{req}");
    }
    let r = refused(&s, with("Version: 13", "Version: 8").as_bytes());
    assert_eq!(r.status, 426);
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"));
}

/// Frames that arrive with the handshake, before the 101, are read after it; a client that
/// resets is freed.
#[test]
fn frames_right_behind_the_handshake_and_resets() {
    let s = ws_server();
    let mut c = s.connect();
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend_from_slice(&frame(true, 1, b"early"));
    c.send(&bytes);
    assert_eq!(c.response_to(true).status, 101);
    assert_eq!(read_frame(&mut c), (true, 1, b"early".to_vec()));
    socket2::SockRef::from(&c.stream)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(c);
    s.wait_for("freed", |_, s| s.stats().open == 0);
}
