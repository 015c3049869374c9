//! [`Request`]: what a handler gets, and the replies it sends.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::rc::{Rc, Weak};

use revent::{BufferEvent, Error, Evbuffer, EventBase, PeerAddr};

use super::util::{error_page, reason as std_reason, status_has_body};
use super::Inner;
use crate::headers::Headers;
use crate::message::{Method, RequestHead, Version};
use crate::uri::Uri;

/// Names a request on its server, to answer it later with
/// [`Server::with_request`](super::Server::with_request). `Copy`, and checked: once the request
/// is answered or its connection closed, using the handle is an error.
///
/// ```
/// use revent_http::Server;
/// let server = Server::new();
/// server.set_cb("/", |_base, req| {
///     let h = req.handle();
///     assert_eq!(h, req.handle());
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestHandle {
    pub(super) index: u32,
    pub(super) generation: u32,
    pub(super) seq: u32,
}

const STALE_CONN: Error = Error::InvalidArgument("the request's connection is gone");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    None,
    /// `reply_start` was called; `chunked` says whether chunks are framed.
    Streaming {
        chunked: bool,
        close: bool,
    },
    Done,
}

/// A request, as its handler sees it (libevent's `struct evhttp_request` on the server side):
/// the head, the body, and the reply methods.
///
/// Every reply method takes the base (the reply is written to the connection's bufferevent) and
/// returns an error if the connection is gone or the reply state does not allow it (a second
/// reply, a chunk before `reply_start`).
///
/// ```no_run
/// use revent_http::Server;
/// let server = Server::new();
/// server.set_cb("/echo", |base, req| {
///     let mut body = revent::Evbuffer::new();
///     body.add_buffer(req.body_mut()).unwrap();
///     req.output_headers_mut().add("Content-Type", "application/octet-stream").unwrap();
///     let _ = req.send_reply_buffer(base, 200, "OK", &mut body);
/// });
/// ```
pub struct Request {
    handle: RequestHandle,
    server: Weak<RefCell<Inner>>,
    bev: BufferEvent,
    peer: PeerAddr,
    head: RequestHead,
    body: Evbuffer,
    body_complete: bool,
    trailers: Headers,
    out: Headers,
    reply: Reply,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", self.head.method())
            .field("target", &self.head.target())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Request {
    fn new(
        handle: RequestHandle,
        server: Weak<RefCell<Inner>>,
        bev: BufferEvent,
        peer: PeerAddr,
        head: RequestHead,
    ) -> Request {
        Request {
            handle,
            server,
            bev,
            peer,
            head,
            body: Evbuffer::new(),
            body_complete: false,
            trailers: Headers::new(),
            out: Headers::new(),
            reply: Reply::None,
        }
    }

    /// A request of the connection on `bev` that is not one yet: its head is to be parsed into,
    /// then [`begin`](Self::begin) makes it one.
    pub(super) fn blank(bev: BufferEvent, peer: PeerAddr) -> Request {
        let handle = RequestHandle {
            index: u32::MAX,
            generation: 0,
            seq: 0,
        };
        Request::new(handle, Weak::new(), bev, peer, RequestHead::blank())
    }

    /// Makes this (a blank request, or one kept from the connection's last one, its head just
    /// parsed anew) the request `handle` names: the body, trailers, reply fields and reply state
    /// of the last one go, their room is kept.
    pub(super) fn begin(&mut self, handle: RequestHandle, server: Weak<RefCell<Inner>>) {
        self.handle = handle;
        self.server = server;
        if !self.body.is_empty() {
            let n = self.body.len();
            let _ = self.body.drain(n);
        }
        self.body_complete = false;
        self.trailers.clear();
        self.out.clear();
        self.reply = Reply::None;
    }

    pub(super) fn head(&self) -> &RequestHead {
        &self.head
    }

    pub(super) fn head_mut(&mut self) -> &mut RequestHead {
        &mut self.head
    }

    /// Bytes of heap this request keeps for reuse, roughly.
    pub(super) fn retained(&self) -> usize {
        self.head.retained() + self.out.retained() + self.trailers.retained()
    }

    pub(super) fn set_trailers(&mut self, t: Headers) {
        self.trailers = t;
    }

    pub(super) fn set_body_complete(&mut self) {
        self.body_complete = true;
    }

    pub(super) fn is_done(&self) -> bool {
        self.reply == Reply::Done
    }

    // ---- the request ----

    /// The handle naming this request (see [`RequestHandle`]).
    pub fn handle(&self) -> RequestHandle {
        self.handle
    }

    /// The method.
    pub fn method(&self) -> &Method {
        self.head.method()
    }

    /// The request target as received (`evhttp_request_get_uri`).
    pub fn target(&self) -> &str {
        self.head.target()
    }

    /// The target parsed (`evhttp_request_get_evhttp_uri`).
    pub fn uri(&self) -> &Uri {
        self.head.uri()
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.head.version()
    }

    /// The request's header fields (`evhttp_request_get_input_headers`).
    pub fn headers(&self) -> &Headers {
        self.head.headers()
    }

    /// The host the request names: the `Host` field without its port, else the target's host
    /// (`evhttp_request_get_host`).
    pub fn host(&self) -> Option<&str> {
        self.head
            .headers()
            .find_str("Host")
            .map(super::strip_port)
            .or_else(|| self.head.uri().host())
    }

    /// The body received so far (all of it, for a handler set with `set_cb`)
    /// (`evhttp_request_get_input_buffer`).
    pub fn body(&self) -> &Evbuffer {
        &self.body
    }

    /// The body, to take bytes from.
    pub fn body_mut(&mut self) -> &mut Evbuffer {
        &mut self.body
    }

    /// Whether the whole body has arrived (always, in a handler set with `set_cb`).
    pub fn body_complete(&self) -> bool {
        self.body_complete
    }

    /// The trailer fields of a chunked body (those that may be trailers; see [`crate::body`]).
    pub fn trailers(&self) -> &Headers {
        &self.trailers
    }

    /// Who sent it.
    pub fn peer(&self) -> &PeerAddr {
        &self.peer
    }

    /// The reply's header fields, to add to before replying
    /// (`evhttp_request_get_output_headers`).
    pub fn output_headers_mut(&mut self) -> &mut Headers {
        &mut self.out
    }

    /// The reply's header fields.
    pub fn output_headers(&self) -> &Headers {
        &self.out
    }

    // ---- replies ----

    /// Sends the whole reply (`evhttp_send_reply`): status, reason phrase (`""` for the standard
    /// one), and body.
    pub fn send_reply(
        &mut self,
        base: &mut EventBase,
        code: u16,
        reason: &str,
        body: &[u8],
    ) -> revent::Result<()> {
        self.check_unanswered()?;
        let len = body.len() as u64;
        let carried: &[u8] = if self.carries_body(code) { body } else { b"" };
        // A small body goes out with the head, in one append; a large one is not copied twice.
        let (with_head, after) = if carried.len() <= INLINE_BODY {
            (carried, &b""[..])
        } else {
            (&b""[..], carried)
        };
        let close = self.write_head_with(base, code, reason, Some(len), with_head)?;
        if !after.is_empty() {
            // Straight into the output, behind the head: no buffer (and chunk) of its own.
            self.bev.output(base)?.add(after)?;
            self.count(after.len() as u64);
        }
        self.complete(base, close);
        Ok(())
    }

    /// [`send_reply`](Self::send_reply) with the body in an [`Evbuffer`], moved without copying.
    pub fn send_reply_buffer(
        &mut self,
        base: &mut EventBase,
        code: u16,
        reason: &str,
        body: &mut Evbuffer,
    ) -> revent::Result<()> {
        self.check_unanswered()?;
        let len = body.len() as u64;
        let close = self.write_head(base, code, reason, Some(len))?;
        let mut sent = 0;
        if self.carries_body(code) {
            sent = len;
            self.bev.output(base)?.add_buffer(body)?;
        } else {
            let n = body.len();
            body.drain(n)?;
        }
        self.count(sent);
        self.complete(base, close);
        Ok(())
    }

    /// Sends `len` bytes of the file `fd` from `offset` as the body (with `sendfile`, never read
    /// into memory; the file is closed once sent).
    pub fn send_file(
        &mut self,
        base: &mut EventBase,
        code: u16,
        reason: &str,
        fd: OwnedFd,
        offset: u64,
        len: u64,
    ) -> revent::Result<()> {
        self.check_unanswered()?;
        let close = self.write_head(base, code, reason, Some(len))?;
        if self.carries_body(code) && len > 0 {
            self.bev.output(base)?.add_file(fd, offset, Some(len))?;
            self.count(len);
        }
        self.complete(base, close);
        Ok(())
    }

    /// Sends an error reply (`evhttp_send_error`): a small HTML page naming the status, and
    /// `Connection: close`; the connection closes after it. `reason` `None` is the standard phrase.
    pub fn send_error(
        &mut self,
        base: &mut EventBase,
        code: u16,
        reason: Option<&str>,
    ) -> revent::Result<()> {
        self.check_unanswered()?;
        let reason = reason.unwrap_or(std_reason(code)).to_string();
        let body = error_page(code, &reason);
        self.out.remove("Connection");
        self.out
            .add("Connection", "close")
            .map_err(|_| Error::InvalidArgument("header"))?;
        if !self.out.contains("Content-Type") {
            let _ = self.out.add("Content-Type", "text/html; charset=utf-8");
        }
        self.send_reply(base, code, &reason, body.as_bytes())
    }

    /// The reply for a path no callback takes: 404, keeping the connection.
    pub(super) fn send_not_found(&mut self, base: &mut EventBase) -> revent::Result<()> {
        let body = error_page(404, "Not Found");
        if !self.out.contains("Content-Type") {
            let _ = self.out.add("Content-Type", "text/html; charset=utf-8");
        }
        self.send_reply(base, 404, "", body.as_bytes())
    }

    /// Starts a reply whose body follows in pieces (`evhttp_send_reply_start`): chunked to an
    /// HTTP/1.1 client unless the handler set `Content-Length`; to an HTTP/1.0 client the body ends
    /// with the connection.
    pub fn reply_start(
        &mut self,
        base: &mut EventBase,
        code: u16,
        reason: &str,
    ) -> revent::Result<()> {
        self.check_unanswered()?;
        let has_len = self.out.contains("Content-Length");
        let chunked = status_has_body(code) && !has_len && self.version() == Version::Http11;
        if chunked {
            self.out.remove("Transfer-Encoding");
            let _ = self.out.add("Transfer-Encoding", "chunked");
        }
        let mut close = self.write_head(base, code, reason, None)?;
        // An HTTP/1.0 body without a length ends with the connection.
        if !chunked && !has_len && self.carries_body(code) {
            close = true;
        }
        self.reply = Reply::Streaming { chunked, close };
        Ok(())
    }

    /// Sends a piece of a reply begun with [`reply_start`](Self::reply_start)
    /// (`evhttp_send_reply_chunk`). An empty piece sends nothing (an empty chunk would end the
    /// body).
    pub fn reply_chunk(&mut self, base: &mut EventBase, data: &[u8]) -> revent::Result<()> {
        let mut buf = Evbuffer::new();
        buf.add(data)?;
        self.reply_chunk_buffer(base, &mut buf)
    }

    /// [`reply_chunk`](Self::reply_chunk) from an [`Evbuffer`], moved without copying.
    pub fn reply_chunk_buffer(
        &mut self,
        base: &mut EventBase,
        data: &mut Evbuffer,
    ) -> revent::Result<()> {
        let Reply::Streaming { chunked, .. } = self.reply else {
            return Err(Error::InvalidArgument("reply_chunk before reply_start"));
        };
        let n = data.len();
        if n == 0 {
            return Ok(());
        }
        if self.method() == &Method::Head {
            data.drain(n)?;
            return Ok(());
        }
        let out = self.bev.output(base)?;
        let mut framing = 0;
        if chunked {
            let line = format!("{n:x}\r\n");
            framing = line.len() + 2;
            out.add(line.as_bytes())?;
            out.add_buffer(data)?;
            out.add(b"\r\n")?;
        } else {
            out.add_buffer(data)?;
        }
        self.count((n + framing) as u64);
        Ok(())
    }

    /// Bytes of this connection's replies not yet taken by the client: a handler streaming a
    /// large reply sends the next piece when this is low (libevent's
    /// `evhttp_send_reply_chunk_with_cb` serves the same purpose).
    pub fn pending_output(&self, base: &mut EventBase) -> usize {
        self.bev.output(base).map_or(0, |o| o.len())
    }

    /// The bufferevent of the request's connection (what libevent's
    /// `evhttp_connection_get_bufferevent` gives on the server side).
    pub fn bufferevent(&self) -> BufferEvent {
        self.bev
    }

    /// Calls `f` from the loop once everything written to the connection so far has gone out to
    /// the kernel: what libevent's `evhttp_send_reply_chunk_with_cb` and its request's completion
    /// callback wait for. If the connection closes first, `f` is dropped without running. An
    /// error once the connection is gone.
    pub fn on_flushed(
        &self,
        base: &mut EventBase,
        f: impl FnOnce(&mut EventBase) + 'static,
    ) -> revent::Result<()> {
        let inner = self.server.upgrade().ok_or(STALE_CONN)?;
        let mut g = inner.borrow_mut();
        let key = super::ConnKey::of(self.handle);
        let weak = g.this_weak();
        let conn = g.conn_mut(key).ok_or(STALE_CONN)?;
        if conn.bev.output(base)?.is_empty() {
            drop(g);
            return base.once(-1, revent::What::empty(), None, move |b, _| f(b));
        }
        conn.flushed.push(Box::new(f));
        super::install_write_cb(base, conn, &weak, key, 0);
        Ok(())
    }

    /// Calls `f` from the loop when the request's connection closes (the client went away, a
    /// timeout, or the server closed it after a reply): libevent's
    /// `evhttp_connection_set_closecb` on a server connection). An EOF from the client while the
    /// request waits for its reply does not close the connection (a half-closed client still gets
    /// its reply, as in libevent 2.1): the close comes with the reply. An error once the
    /// connection is gone.
    pub fn on_close(&self, f: impl FnOnce(&mut EventBase) + 'static) -> revent::Result<()> {
        let inner = self.server.upgrade().ok_or(STALE_CONN)?;
        let mut g = inner.borrow_mut();
        let conn = g
            .conn_mut(super::ConnKey::of(self.handle))
            .ok_or(STALE_CONN)?;
        conn.on_close.push(Box::new(f));
        Ok(())
    }

    /// Ends a reply begun with [`reply_start`](Self::reply_start) (`evhttp_send_reply_end`).
    pub fn reply_end(&mut self, base: &mut EventBase) -> revent::Result<()> {
        let Reply::Streaming { chunked, close } = self.reply else {
            return Err(Error::InvalidArgument("reply_end before reply_start"));
        };
        if chunked && self.method() != &Method::Head {
            self.bev.output(base)?.add(b"0\r\n\r\n")?;
            self.count(5);
        }
        self.complete(base, close);
        Ok(())
    }

    /// Accepts a WebSocket upgrade (RFC 6455 §4.2.2): checks the handshake (a GET in HTTP/1.1 with
    /// `Upgrade: websocket`, `Connection: Upgrade`, a `Sec-WebSocket-Key` of 16 bytes in base64
    /// and `Sec-WebSocket-Version: 13`), answers `101 Switching Protocols` with
    /// `Sec-WebSocket-Accept` and the output headers set so far (a `Sec-WebSocket-Protocol`, say),
    /// and from then on calls `handler` with each message. Messages longer than `max_message`
    /// bytes close the connection with 1009.
    ///
    /// A request that is not a valid handshake is answered here (400, or 426 with the version
    /// this server speaks) and an error returned.
    pub fn upgrade_websocket(
        &mut self,
        base: &mut EventBase,
        max_message: usize,
        handler: impl FnMut(&mut EventBase, &super::WebSocket, super::Message) + 'static,
    ) -> revent::Result<super::WebSocket> {
        self.check_unanswered()?;
        let has_token = |name: &str, token: &[u8]| {
            self.headers().find_all(name).any(|v| {
                v.split(|&b| b == b',')
                    .any(|t| trim(t).eq_ignore_ascii_case(token))
            })
        };
        let key = self
            .headers()
            .find_str("Sec-WebSocket-Key")
            .map(|k| trim(k.as_bytes()))
            .and_then(|k| std::str::from_utf8(k).ok())
            .filter(|k| super::websocket::valid_key(k))
            .map(str::to_string);
        let handshake = self.method() == &Method::Get
            && self.version() == Version::Http11
            && has_token("Upgrade", b"websocket")
            && has_token("Connection", b"upgrade")
            && self.body.is_empty();
        let Some(key) = key.filter(|_| handshake) else {
            self.send_error(base, 400, None)?;
            return Err(Error::InvalidArgument("not a WebSocket handshake"));
        };
        if self
            .headers()
            .find_str("Sec-WebSocket-Version")
            .map(str::trim)
            != Some("13")
        {
            self.out.remove("Sec-WebSocket-Version");
            let _ = self.out.add("Sec-WebSocket-Version", "13");
            self.send_error(base, 426, None)?;
            return Err(Error::InvalidArgument("unsupported WebSocket version"));
        }
        let mut head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n",
            super::websocket::accept_key(&key)
        )
        .into_bytes();
        for (name, value) in self.out.iter() {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let inner = self
            .server
            .upgrade()
            .ok_or(Error::InvalidArgument("the server is gone"))?;
        self.bev.output(base)?.add(&head)?;
        self.reply = Reply::Done;
        let mut g = inner.borrow_mut();
        g.count_bytes(head.len() as u64);
        g.upgrade(
            base,
            self.handle,
            Rc::new(RefCell::new(handler)),
            max_message,
        )
    }

    fn check_unanswered(&self) -> revent::Result<()> {
        match self.reply {
            Reply::None => Ok(()),
            _ => Err(Error::InvalidArgument("the request was already answered")),
        }
    }

    fn carries_body(&self, code: u16) -> bool {
        status_has_body(code) && self.method() != &Method::Head
    }

    fn count(&self, n: u64) {
        if let Some(inner) = self.server.upgrade() {
            inner.borrow_mut().count_bytes(n);
        }
    }

    fn complete(&mut self, base: &mut EventBase, close: bool) {
        self.reply = Reply::Done;
        if let Some(inner) = self.server.upgrade() {
            inner.borrow_mut().finish(base, self.handle, close);
        }
    }

    /// Writes the status line and headers; `len` is the body length of a whole reply. Returns
    /// whether the connection closes after this reply.
    fn write_head(
        &mut self,
        base: &mut EventBase,
        code: u16,
        reason: &str,
        len: Option<u64>,
    ) -> revent::Result<bool> {
        self.write_head_with(base, code, reason, len, b"")
    }

    /// [`write_head`](Self::write_head), then `body` (counted with the head).
    fn write_head_with(
        &mut self,
        base: &mut EventBase,
        code: u16,
        reason: &str,
        len: Option<u64>,
        body: &[u8],
    ) -> revent::Result<bool> {
        if !(100..=999).contains(&code) {
            return Err(Error::InvalidArgument("status code out of range"));
        }
        if reason.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Error::InvalidArgument("reason phrase holds CR, LF or NUL"));
        }
        // Interim replies are not how a reply ends; 101 is for upgrades this server does not do.
        if code < 200 {
            return Err(Error::InvalidArgument(
                "a final reply needs a status of 200 or more",
            ));
        }
        let reason = if reason.is_empty() {
            std_reason(code)
        } else {
            reason
        };
        let inner = self
            .server
            .upgrade()
            .ok_or(Error::InvalidArgument("the server is gone"))?;
        let v11 = self.version() == Version::Http11;
        let has_body = status_has_body(code);
        let mut close = !self.head.keep_alive() || connection_close(&self.out);
        // The server's own fields go straight into the head, not through `self.out`: no field
        // (two allocations) per reply for what the server writes anyway.
        let mut head = std::mem::take(&mut inner.borrow_mut().head_buf);
        head.clear();
        head.extend_from_slice(match self.version() {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        });
        // Three digits: the range was checked above.
        head.extend_from_slice(&[
            b' ',
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        head.extend_from_slice(reason.as_bytes());
        head.extend_from_slice(b"\r\n");
        // Written after the handler's fields, where libevent puts it.
        let mut content_length = None;
        if let Some(len) = len {
            // The framing is the server's to say: a whole reply's length is the body's (a HEAD
            // reply may keep the one its handler set, the length a GET would get).
            if has_body && !(self.method() == &Method::Head && self.out.contains("Content-Length"))
            {
                while self.out.remove("Content-Length") {}
                content_length = Some(len);
            } else if !has_body {
                while self.out.remove("Content-Length") {}
            }
        }
        {
            let mut g = inner.borrow_mut();
            if v11 && !self.out.contains("Date") {
                head.extend_from_slice(g.date_line(base).as_bytes());
            }
            if has_body && !self.out.contains("Content-Type") {
                if let Some(line) = g.content_type_line() {
                    head.extend_from_slice(line.as_bytes());
                }
            }
        }
        let keep_alive_field = !v11 && !close && !self.out.contains("Connection");
        // A 1.0 reply streamed without a length ends with the connection.
        if len.is_none()
            && !v11
            && has_body
            && self.method() != &Method::Head
            && !self.out.contains("Content-Length")
        {
            close = true;
        }
        if close {
            while self.out.remove("Connection") {}
        }
        for (name, value) in self.out.iter() {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        if let Some(len) = content_length {
            head.extend_from_slice(b"Content-Length: ");
            push_u64_line(&mut head, len);
        }
        if close {
            head.extend_from_slice(b"Connection: close\r\n");
        } else if keep_alive_field {
            head.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(body);
        let added = self.bev.output(base).and_then(|o| o.add(&head));
        let mut g = inner.borrow_mut();
        g.count_bytes(head.len() as u64);
        g.head_buf = head;
        added?;
        Ok(close)
    }
}

/// Largest body [`Request::send_reply`] copies into the head's buffer to append both at once.
const INLINE_BODY: usize = 4096;

/// Appends `n` in decimal, then CRLF.
fn push_u64_line(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 22];
    digits[20] = b'\r';
    digits[21] = b'\n';
    let mut i = 20;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Whether a `Connection` field lists `close`.
fn connection_close(h: &Headers) -> bool {
    h.find_all("Connection").any(|v| {
        v.split(|&b| b == b',')
            .any(|t| trim(t).eq_ignore_ascii_case(b"close"))
    })
}

/// `t` without the spaces and tabs around it.
fn trim(t: &[u8]) -> &[u8] {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = t.iter().position(|b| !ws(b)).unwrap_or(t.len());
    let end = t.iter().rposition(|b| !ws(b)).map_or(start, |e| e + 1);
    &t[start..end]
}
