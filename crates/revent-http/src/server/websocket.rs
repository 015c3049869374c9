//! WebSocket (RFC 6455) on a server connection: the handshake ([`Request::upgrade_websocket`])
//! and the frames after it.
//!
//! What is checked, each refusal closing with its code (§7.4.1): client frames must be masked
//! (1002), reserved bits clear and opcodes known (1002), control frames short (≤ 125 bytes) and
//! unfragmented (1002), continuation frames only inside a fragmented message and data frames not
//! inside one (1002), text valid UTF-8 (1007), a message (all its fragments) no longer than the
//! limit given at the upgrade (1009: refused when the frame header announces it, before its
//! payload is read), and close frames well-formed (a one-byte payload, a reserved code or a reason
//! that is not UTF-8: 1002). Pings are answered with pongs at once; a close is answered with a
//! close (the handshake of §5.5.1) and the connection then shut.
//!
//! [`Request::upgrade_websocket`]: super::Request::upgrade_websocket

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use revent::{Error, Evbuffer, EventBase};

use super::{ConnKey, Inner};

/// A message, or the close, from a WebSocket client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (all its fragments, joined).
    Text(String),
    /// A binary message (all its fragments, joined).
    Binary(Vec<u8>),
    /// A pong (an answer to [`WebSocket::ping`], or unsolicited).
    Pong(Vec<u8>),
    /// The client closed, with a status code if it gave one (1005 is none). The server has
    /// answered it and closes the connection.
    Close {
        /// The code, `None` if the frame had no payload.
        code: Option<u16>,
        /// The reason text.
        reason: String,
    },
}

/// What a WebSocket connection calls with each message.
pub type WsHandler = dyn FnMut(&mut EventBase, &WebSocket, Message);

/// A WebSocket connection on a [`Server`](super::Server), from
/// [`Request::upgrade_websocket`](super::Request::upgrade_websocket). Clones name the same
/// connection; once it is closed, sending is an error.
///
/// ```no_run
/// use revent_http::{Message, Server};
///
/// let server = Server::new();
/// server.set_cb("/ws", |base, req| {
///     let _ = req.upgrade_websocket(base, 1 << 20, |base, ws, msg| {
///         if let Message::Text(t) = msg {
///             let _ = ws.send_text(base, &t); // echo
///         }
///     });
/// });
/// ```
#[derive(Clone)]
pub struct WebSocket {
    pub(super) server: Weak<RefCell<Inner>>,
    pub(super) key: ConnKey,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebSocket({}v{})", self.key.index, self.key.generation)
    }
}

pub(super) const OP_CONT: u8 = 0;
pub(super) const OP_TEXT: u8 = 1;
pub(super) const OP_BINARY: u8 = 2;
pub(super) const OP_CLOSE: u8 = 8;
pub(super) const OP_PING: u8 = 9;
pub(super) const OP_PONG: u8 = 10;

/// The state of a connection after the upgrade.
pub(super) struct WsConn {
    pub(super) handler: Rc<RefCell<WsHandler>>,
    pub(super) max_message: usize,
    /// The opcode and bytes so far of a fragmented message.
    pub(super) fragments: Option<(u8, Vec<u8>)>,
    pub(super) close_sent: bool,
}

impl WebSocket {
    /// Sends a text message.
    pub fn send_text(&self, base: &mut EventBase, text: &str) -> revent::Result<()> {
        self.send(base, OP_TEXT, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&self, base: &mut EventBase, data: &[u8]) -> revent::Result<()> {
        self.send(base, OP_BINARY, data)
    }

    /// Sends a ping (at most 125 bytes of payload); the client's pong comes as
    /// [`Message::Pong`].
    pub fn ping(&self, base: &mut EventBase, payload: &[u8]) -> revent::Result<()> {
        if payload.len() > 125 {
            return Err(Error::InvalidArgument("ping payload over 125 bytes"));
        }
        self.send(base, OP_PING, payload)
    }

    /// Starts the close handshake with `code` and `reason` (at most 123 bytes): nothing more can
    /// be sent; the connection closes when the client answers (or after a short wait).
    pub fn close(&self, base: &mut EventBase, code: u16, reason: &str) -> revent::Result<()> {
        if reason.len() > 123 || !valid_close_code(code) {
            return Err(Error::InvalidArgument("close code or reason not allowed"));
        }
        let inner = self.server.upgrade().ok_or(STALE)?;
        let mut g = inner.borrow_mut();
        g.ws_close(base, self.key, Some(code), reason.as_bytes(), true)
    }

    /// Whether the connection is open and no close was sent.
    pub fn is_open(&self) -> bool {
        self.server.upgrade().is_some_and(|inner| {
            inner
                .borrow()
                .conn(self.key)
                .and_then(|c| c.ws.as_ref())
                .is_some_and(|w| !w.close_sent)
        })
    }

    fn send(&self, base: &mut EventBase, op: u8, payload: &[u8]) -> revent::Result<()> {
        let inner = self.server.upgrade().ok_or(STALE)?;
        let mut g = inner.borrow_mut();
        let conn = g.conn(self.key).ok_or(STALE)?;
        let ws = conn.ws.as_ref().ok_or(STALE)?;
        if ws.close_sent {
            return Err(Error::InvalidArgument("the WebSocket is closing"));
        }
        let bev = conn.bev;
        let out = bev.output(base)?;
        let n = write_frame(out, op, payload)?;
        g.count_bytes(n as u64);
        Ok(())
    }
}

const STALE: Error = Error::InvalidArgument("stale WebSocket: the connection is closed");

/// Appends an unmasked frame (a server's, §5.1); returns its size.
pub(super) fn write_frame(out: &mut Evbuffer, op: u8, payload: &[u8]) -> revent::Result<usize> {
    let mut head = [0u8; 10];
    head[0] = 0x80 | op;
    let n = payload.len();
    let hl = if n < 126 {
        head[1] = n as u8;
        2
    } else if n <= 0xffff {
        head[1] = 126;
        head[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(n as u64).to_be_bytes());
        10
    };
    out.add(&head[..hl])?;
    out.add(payload)?;
    Ok(hl + n)
}

/// Close codes a peer may send (§7.4.1, §7.4.2): 1000-1003, 1007-1011, 3000-4999.
pub(super) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// One frame parsed off the input.
pub(super) enum Frame {
    /// Not all of it is here yet.
    Partial,
    /// A frame: FIN, opcode, unmasked payload.
    Whole(bool, u8, Vec<u8>),
    /// A protocol violation: close with this code.
    Violation(u16),
}

/// Takes one frame off `input`, refusing violations before their payload is read.
pub(super) fn read_frame(input: &mut Evbuffer, max_message: usize, fragmented: usize) -> Frame {
    let avail = input.len().min(14);
    if avail < 2 {
        return Frame::Partial;
    }
    let mut h = [0u8; 14];
    if input.copyout(&mut h[..avail]).is_err() {
        return Frame::Partial;
    }
    let fin = h[0] & 0x80 != 0;
    let op = h[0] & 0x0f;
    if h[0] & 0x70 != 0 {
        return Frame::Violation(1002);
    }
    if !matches!(
        op,
        OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Frame::Violation(1002);
    }
    if h[1] & 0x80 == 0 {
        // Client frames must be masked (§5.1).
        return Frame::Violation(1002);
    }
    let (len, hl) = match h[1] & 0x7f {
        126 => {
            if avail < 4 {
                return Frame::Partial;
            }
            (u16::from_be_bytes([h[2], h[3]]) as u64, 4)
        }
        127 => {
            if avail < 10 {
                return Frame::Partial;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[2..10]);
            let l = u64::from_be_bytes(b);
            if l >> 63 != 0 {
                return Frame::Violation(1002);
            }
            (l, 10)
        }
        n => (n as u64, 2),
    };
    let control = op >= OP_CLOSE;
    if control && (!fin || len > 125) {
        return Frame::Violation(1002);
    }
    if !control && len > (max_message.saturating_sub(fragmented)) as u64 {
        return Frame::Violation(1009);
    }
    let total = hl + 4 + len as usize;
    if input.len() < total {
        return Frame::Partial;
    }
    if avail < hl + 4 {
        return Frame::Partial;
    }
    let mask = [h[hl], h[hl + 1], h[hl + 2], h[hl + 3]];
    if input.drain(hl + 4).is_err() {
        return Frame::Violation(1011);
    }
    let mut payload = vec![0u8; len as usize];
    if input.remove(&mut payload).is_err() {
        return Frame::Violation(1011);
    }
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    Frame::Whole(fin, op, payload)
}

/// `Sec-WebSocket-Accept` for a key (§4.2.2): base64 of SHA-1 of the key and the GUID.
pub(super) fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&h.digest().bytes())
}

/// Whether `key` is the base64 form of 16 bytes (§4.1: what a client must send).
pub(super) fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b.ends_with(b"==")
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(A[(n >> 18) as usize & 63] as char);
        s.push(A[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_handshake_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZ!=="));
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn frames() {
        let mut b = Evbuffer::new();
        // "Hello", masked (RFC 6455 §5.7).
        b.add(&[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ])
        .unwrap();
        match read_frame(&mut b, 100, 0) {
            Frame::Whole(true, OP_TEXT, p) => assert_eq!(p, b"Hello"),
            _ => panic!("not parsed"),
        }
        assert!(b.is_empty());
        // Unmasked: refused.
        b.add(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']).unwrap();
        assert!(matches!(read_frame(&mut b, 100, 0), Frame::Violation(1002)));
        let mut b = Evbuffer::new();
        // Too long for the limit: refused from the header alone.
        b.add(&[0x82, 0xfe, 0x10, 0x00]).unwrap();
        assert!(matches!(read_frame(&mut b, 100, 0), Frame::Violation(1009)));
        let mut out = Evbuffer::new();
        write_frame(&mut out, OP_TEXT, &[b'x'; 300]).unwrap();
        assert_eq!(&out.pullup(4).unwrap()[..4], &[0x81, 126, 0x01, 0x2c]);
    }
}
