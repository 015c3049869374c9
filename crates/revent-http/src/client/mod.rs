//! The HTTP/1.1 client: libevent's `evhttp_connection` and client-side `evhttp_request`.
//!
//! A [`Connection`] talks to one server address. Requests made on it queue in order and go out one
//! at a time on one socket, each after the previous response is complete (as evhttp: no
//! pipelining); a kept-alive socket serves the next request, so several requests cost one connect.
//! The socket is made when the first request is queued, and again whenever a request finds none.
//!
//! Behaviour, after libevent 2.1's `http.c`:
//! - **Retries** ([`Connection::set_retries`]): a connect that fails (refused, unreachable, timed
//!   out) is tried again after [`Connection::set_initial_retry_delay`] (2 s by default), each
//!   further wait twice the one before, capped at an hour; the count starts over once a connect
//!   succeeds. When the retries are used up, every queued request fails with
//!   [`ClientError::Connect`] or [`ClientError::ConnectTimeout`]. No retries by default.
//! - **A kept-alive socket the server closed**: while idle, the socket is watched, and a close (or
//!   any byte the server sends unasked) drops it, so the next request connects anew. When the
//!   close crosses the next request on the wire (the request went out on a reused socket and the
//!   socket ended before any byte of its response), an idempotent request with a whole body is sent
//!   again once on a new socket, without the caller seeing it (RFC 9110 §9.2.2 allows this;
//!   libevent 2.1 fails the request with `EVREQ_HTTP_EOF` there). Other requests fail with
//!   [`ClientError::Closed`], and the requests queued behind a failed one go out on a new socket.
//! - **Timeouts** ([`Connection::set_timeout`]): connect 45 s, and 50 s without progress reading
//!   the response or writing the request, as libevent's defaults. An idle kept-alive socket has no
//!   timeout.
//! - **Limits**: [`Connection::set_max_headers_size`] (64 KiB by default, where libevent has none),
//!   [`Connection::set_max_headers`] (100 fields), [`Connection::set_max_body_size`] (unlimited):
//!   past them the request fails with [`ClientError::Invalid`] and the socket is closed at once.
//! - **Responses**: `Content-Length`, chunked (trailers kept apart) and close-delimited bodies; no
//!   body after `HEAD`, in 204 and 304; interim 1xx responses are skipped (a 101 is final, and ends
//!   the connection's HTTP use). Everything the message layer refuses ([`crate::message`],
//!   [`crate::body`]) fails the request and closes the socket: both `Content-Length` and
//!   `Transfer-Encoding`, conflicting lengths, bad chunk sizes, NUL and bare CR, garbage.
//! - **Callbacks** run from the loop, never inside a call on a handle. The completion callback runs
//!   exactly once per request, unless the request is cancelled ([`RequestHandle::cancel`]) or its
//!   connection freed first (as in libevent, no callback then). A callback may make, cancel and
//!   free anything, its own connection included.
//!
//! Addresses are numeric ([`SocketAddr`]): the client does no name resolution (resolve first with
//! revent-dns).
//!
//! ```
//! use revent::EventBase;
//! use revent_http::client::{Connection, Request};
//! use revent_http::Method;
//! use std::io::{Read, Write};
//!
//! // A one-shot server in a thread.
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let server = std::thread::spawn(move || {
//!     let (mut s, _) = listener.accept().unwrap();
//!     let mut buf = [0u8; 1024];
//!     let mut got = Vec::new();
//!     while !got.ends_with(b"\r\n\r\n") {
//!         let n = s.read(&mut buf).unwrap();
//!         got.extend_from_slice(&buf[..n]);
//!     }
//!     s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
//! });
//!
//! let mut base = EventBase::new()?;
//! let conn = Connection::new(&mut base, addr)?;
//! conn.request(&mut base, Request::new(Method::Get, "/")?, |base, result| {
//!     let mut resp = result.unwrap();
//!     assert_eq!(resp.status(), 200);
//!     assert_eq!(resp.body_mut().pullup_all().unwrap(), b"hello");
//!     base.loopbreak();
//! })?;
//! base.dispatch()?;
//! conn.free(&mut base)?;
//! server.join().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod types;

pub use types::{ChunkCb, ClientError, CompleteCb, ErrorKind, HeadCb, Outcome, Request, Response};

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use revent::{BevFlags, BevOptions, BufferEvent, Evbuffer, EventBase, EventId, What};

use crate::body::BodyDecoder;
use crate::headers::Headers;
use crate::message::{BodyFraming, Limits, Method, Progress, ResponseHead, ResponseParser};
use types::Body;

/// A connection's close callback ([`Connection::set_close_cb`]).
pub type CloseCb = dyn FnMut(&mut EventBase);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
const IO_TIMEOUT: Duration = Duration::from_secs(50);
const INITIAL_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// A client connection to one HTTP server (libevent's `evhttp_connection` from
/// `evhttp_connection_base_new`): a `Copy` handle into the [`EventBase`], checked by generation, so
/// that a freed connection is [`ClientError::Stale`].
///
/// See the [module documentation](self) for its behaviour and an example.
///
/// ```
/// use revent::EventBase;
/// use revent_http::client::{ClientError, Connection};
/// use std::time::Duration;
///
/// let mut base = EventBase::new().unwrap();
/// let conn = Connection::new(&mut base, "127.0.0.1:8080".parse().unwrap()).unwrap();
/// conn.set_timeout(&mut base, Duration::from_secs(5)).unwrap();
/// conn.set_retries(&mut base, 3).unwrap();
/// conn.set_max_body_size(&mut base, 1 << 20).unwrap();
/// conn.free(&mut base).unwrap();
/// assert!(matches!(conn.set_retries(&mut base, 1), Err(ClientError::Stale)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Connection {
    index: u32,
    generation: u32,
}

/// A request queued or in flight on a [`Connection`]: to stream its chunked body or cancel it.
///
/// ```
/// use revent::EventBase;
/// use revent_http::client::{Connection, Request};
/// use revent_http::Method;
///
/// let mut base = EventBase::new().unwrap();
/// let conn = Connection::new(&mut base, "127.0.0.1:9".parse().unwrap()).unwrap();
/// let req = Request::new(Method::Put, "/upload").unwrap().chunked();
/// let handle = conn.request(&mut base, req, |_, _| unreachable!("cancelled")).unwrap();
/// handle.send_chunk(&mut base, b"part one").unwrap();
/// handle.end_body(&mut base).unwrap();
/// assert!(handle.cancel(&mut base).unwrap());
/// assert!(!handle.cancel(&mut base).unwrap(), "once");
/// conn.free(&mut base).unwrap();
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RequestHandle {
    conn: Connection,
    id: u64,
}

/// Counters of a connection, for monitoring and tests.
///
/// ```
/// use revent::EventBase;
/// use revent_http::client::Connection;
/// let mut base = EventBase::new().unwrap();
/// let conn = Connection::new(&mut base, "127.0.0.1:9".parse().unwrap()).unwrap();
/// assert_eq!(conn.stats(&base).unwrap().connect_attempts, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connects started (retries included).
    pub connect_attempts: u64,
    /// Connects that succeeded.
    pub connections: u64,
    /// Requests written (resends included).
    pub requests_sent: u64,
    /// Requests sent again after a kept-alive socket closed under them.
    pub resent: u64,
}

#[derive(Clone, Debug)]
struct Settings {
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    retries: u32,
    initial_retry: Duration,
    limits: Limits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No socket.
    Disconnected,
    /// A connect is in progress.
    Connecting,
    /// Waiting to retry a connect, or to report a failure from the loop.
    Waiting,
    /// Connected, no request in flight: watching for the server closing.
    Idle,
    /// The front request is written and its response read.
    Active,
}

/// What the connection's timer does when it fires.
enum TimerJob {
    Retry,
    Fail(io::Error),
}

struct Pending {
    id: u64,
    req: Request,
    on_complete: Option<Box<CompleteCb>>,
    /// Already sent again once after a reused socket closed.
    resent: bool,
}

/// Reading the front request's response.
enum Phase {
    Head,
    Body(Box<InBody>),
}

struct InBody {
    head: ResponseHead,
    decoder: BodyDecoder,
    body: Evbuffer,
}

struct Exchange {
    parser: ResponseParser,
    phase: Phase,
    /// Some byte of the response arrived.
    got_bytes: bool,
    /// The socket had served a response before this request.
    reused: bool,
}

struct Conn {
    addr: SocketAddr,
    settings: Settings,
    state: State,
    bev: Option<BufferEvent>,
    timer: Option<EventId>,
    job: Option<TimerJob>,
    queue: VecDeque<Pending>,
    next_id: u64,
    /// Failed connects since the last good one.
    retry_count: u32,
    /// Responses completed on the current socket.
    served: u64,
    /// `None` while a callback has it out, or when no request is active.
    exchange: Option<Exchange>,
    stats: Stats,
    /// The bufferevent the owner handed in ([`Connection::with_bufferevent`]): every socket goes
    /// on it, and it outlives them.
    user_bev: Option<BufferEvent>,
    /// The local address sockets are bound to before they connect.
    local: Option<SocketAddr>,
    /// Runs (from the loop) each time a connected socket closes.
    close_cb: Option<Box<CloseCb>>,
}

struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

/// All client connections of a base, kept in the base's state.
#[derive(Default)]
struct Store {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

fn store(base: &mut EventBase) -> &mut Store {
    if base.state::<Store>().is_none() {
        base.set_state(Store::default());
    }
    base.state_mut::<Store>().expect("just set")
}

fn conn_mut(base: &mut EventBase, h: Connection) -> Result<&mut Conn, ClientError> {
    base.state_mut::<Store>()
        .and_then(|st| st.slots.get_mut(h.index as usize))
        .filter(|s| s.generation == h.generation)
        .and_then(|s| s.conn.as_mut())
        .ok_or(ClientError::Stale)
}

fn conn_ref(base: &EventBase, h: Connection) -> Result<&Conn, ClientError> {
    base.state::<Store>()
        .and_then(|st| st.slots.get(h.index as usize))
        .filter(|s| s.generation == h.generation)
        .and_then(|s| s.conn.as_ref())
        .ok_or(ClientError::Stale)
}

impl Connection {
    /// A connection to `addr` (`evhttp_connection_base_new` with a numeric address). No socket is
    /// made until the first request.
    pub fn new(base: &mut EventBase, addr: SocketAddr) -> Result<Connection, ClientError> {
        let conn = Conn {
            addr,
            settings: Settings {
                connect_timeout: CONNECT_TIMEOUT,
                read_timeout: IO_TIMEOUT,
                write_timeout: IO_TIMEOUT,
                retries: 0,
                initial_retry: INITIAL_RETRY,
                limits: Limits::default(),
            },
            state: State::Disconnected,
            bev: None,
            timer: None,
            job: None,
            queue: VecDeque::new(),
            next_id: 1,
            retry_count: 0,
            served: 0,
            exchange: None,
            stats: Stats::default(),
            user_bev: None,
            local: None,
            close_cb: None,
        };
        let st = store(base);
        let index = match st.free.pop() {
            Some(i) => i,
            None => {
                st.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                (st.slots.len() - 1) as u32
            }
        };
        let slot = &mut st.slots[index as usize];
        // Generations start at 1, so a zeroed handle is never live.
        slot.generation = slot.generation.wrapping_add(1).max(1);
        slot.conn = Some(conn);
        Ok(Connection {
            index,
            generation: slot.generation,
        })
    }

    /// A connection to `addr` whose sockets all go on `bev` (`evhttp_connection_base_bufferevent_new`):
    /// a socket bufferevent with no socket yet, or whose socket is unconnected, that the
    /// connection sets the callbacks of. Between sockets it keeps `bev` with no socket; it
    /// never frees it: [`free`](Self::free) leaves it (without a socket) to its owner.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase};
    /// use revent_http::client::Connection;
    ///
    /// let mut base = EventBase::new().unwrap();
    /// let bev = BufferEvent::socket(&mut base, None, BevOptions::CLOSE_ON_FREE).unwrap();
    /// let conn = Connection::with_bufferevent(&mut base, "127.0.0.1:9".parse().unwrap(), bev).unwrap();
    /// assert_eq!(conn.bufferevent(&base).unwrap(), Some(bev));
    /// conn.free(&mut base).unwrap();
    /// bev.free(&mut base).unwrap();
    /// ```
    pub fn with_bufferevent(
        base: &mut EventBase,
        addr: SocketAddr,
        bev: BufferEvent,
    ) -> Result<Connection, ClientError> {
        // A stale handle is refused here rather than at the first connect.
        bev.underlying(base)?;
        let h = Connection::new(base, addr)?;
        conn_mut(base, h)?.user_bev = Some(bev);
        Ok(h)
    }

    /// The bufferevent of the current socket, or the one handed in with
    /// [`with_bufferevent`](Self::with_bufferevent); `None` when neither is there
    /// (`evhttp_connection_get_bufferevent`).
    pub fn bufferevent(self, base: &EventBase) -> Result<Option<BufferEvent>, ClientError> {
        let c = conn_ref(base, self)?;
        Ok(c.user_bev.or(c.bev))
    }

    /// Binds every socket to `local` before it connects (`evhttp_connection_set_local_address`
    /// and `_port`; port 0 lets the system pick one); `None` undoes it. A bind that fails fails
    /// the connect like a refused one.
    pub fn set_local_addr(
        self,
        base: &mut EventBase,
        local: Option<SocketAddr>,
    ) -> Result<(), ClientError> {
        conn_mut(base, self)?.local = local;
        Ok(())
    }

    /// Calls `cb` from the loop each time a connected socket of this connection closes (the server
    /// closed it, it failed or timed out, or the connection dropped it: libevent's
    /// `evhttp_connection_set_closecb`); not for the close that [`free`](Self::free) does.
    pub fn set_close_cb(
        self,
        base: &mut EventBase,
        cb: Option<Box<CloseCb>>,
    ) -> Result<(), ClientError> {
        conn_mut(base, self)?.close_cb = cb;
        Ok(())
    }

    /// Frees the connection (`evhttp_connection_free`): the socket closes, and the requests still
    /// queued are dropped without their callbacks running (as libevent). The handle becomes stale.
    pub fn free(self, base: &mut EventBase) -> Result<(), ClientError> {
        conn_mut(base, self)?;
        reset(base, self);
        let st = base.state_mut::<Store>().ok_or(ClientError::Stale)?;
        let conn = st.slots[self.index as usize].conn.take();
        // A slot whose generation would wrap is retired rather than reused.
        if st.slots[self.index as usize].generation != u32::MAX {
            st.free.push(self.index);
        }
        if let Some(timer) = conn.and_then(|c| c.timer) {
            let _ = base.free(timer);
        }
        Ok(())
    }

    /// The server's address.
    pub fn peer(self, base: &EventBase) -> Result<SocketAddr, ClientError> {
        Ok(conn_ref(base, self)?.addr)
    }

    /// Whether a socket is connected now.
    pub fn is_connected(self, base: &EventBase) -> Result<bool, ClientError> {
        Ok(matches!(
            conn_ref(base, self)?.state,
            State::Idle | State::Active
        ))
    }

    /// Requests queued or in flight.
    pub fn pending(self, base: &EventBase) -> Result<usize, ClientError> {
        Ok(conn_ref(base, self)?.queue.len())
    }

    /// The connection's counters.
    pub fn stats(self, base: &EventBase) -> Result<Stats, ClientError> {
        Ok(conn_ref(base, self)?.stats)
    }

    /// Sets the connect, read and write timeouts at once (`evhttp_connection_set_timeout_tv`).
    pub fn set_timeout(self, base: &mut EventBase, d: Duration) -> Result<(), ClientError> {
        let s = &mut conn_mut(base, self)?.settings;
        s.connect_timeout = d;
        s.read_timeout = d;
        s.write_timeout = d;
        self.apply_timeouts(base)
    }

    /// Sets the connect timeout (45 s by default).
    pub fn set_connect_timeout(self, base: &mut EventBase, d: Duration) -> Result<(), ClientError> {
        conn_mut(base, self)?.settings.connect_timeout = d;
        self.apply_timeouts(base)
    }

    /// Sets the read timeout: how long the response may make no progress (50 s by default).
    pub fn set_read_timeout(self, base: &mut EventBase, d: Duration) -> Result<(), ClientError> {
        conn_mut(base, self)?.settings.read_timeout = d;
        self.apply_timeouts(base)
    }

    /// Sets the write timeout: how long writing the request may make no progress (50 s by default).
    pub fn set_write_timeout(self, base: &mut EventBase, d: Duration) -> Result<(), ClientError> {
        conn_mut(base, self)?.settings.write_timeout = d;
        self.apply_timeouts(base)
    }

    /// Sets how many times a failed connect is tried again (`evhttp_connection_set_retries`; 0 by
    /// default; `u32::MAX` retries forever, libevent's -1).
    pub fn set_retries(self, base: &mut EventBase, retries: u32) -> Result<(), ClientError> {
        conn_mut(base, self)?.settings.retries = retries;
        Ok(())
    }

    /// Sets the wait before the first retry (`evhttp_connection_set_initial_retry_tv`; 2 s by
    /// default); each further wait doubles, up to an hour.
    pub fn set_initial_retry_delay(
        self,
        base: &mut EventBase,
        d: Duration,
    ) -> Result<(), ClientError> {
        conn_mut(base, self)?.settings.initial_retry = d;
        Ok(())
    }

    /// Sets the largest response head, in bytes (`evhttp_connection_set_max_headers_size`).
    pub fn set_max_headers_size(self, base: &mut EventBase, n: usize) -> Result<(), ClientError> {
        conn_mut(base, self)?.settings.limits.max_head_bytes = n;
        Ok(())
    }

    /// Sets the most header fields a response may have (100 by default).
    pub fn set_max_headers(self, base: &mut EventBase, n: usize) -> Result<(), ClientError> {
        conn_mut(base, self)?.settings.limits.max_headers = n;
        Ok(())
    }

    /// Sets the largest response body, in bytes (`evhttp_connection_set_max_body_size`).
    pub fn set_max_body_size(self, base: &mut EventBase, n: u64) -> Result<(), ClientError> {
        conn_mut(base, self)?.settings.limits.max_body = n;
        Ok(())
    }

    /// Queues `req` (`evhttp_make_request`); `on_complete` runs from the loop with the response or
    /// the error. Refused at once (nothing queued, no callback) for a request with its own framing
    /// fields.
    pub fn request(
        self,
        base: &mut EventBase,
        req: Request,
        on_complete: impl FnOnce(&mut EventBase, Outcome) + 'static,
    ) -> Result<RequestHandle, ClientError> {
        if req.headers.contains("Content-Length") || req.headers.contains("Transfer-Encoding") {
            return Err(ClientError::InvalidRequest(
                "Content-Length and Transfer-Encoding are set by the client from the body",
            ));
        }
        let conn = conn_mut(base, self)?;
        let id = conn.next_id;
        conn.next_id += 1;
        conn.queue.push_back(Pending {
            id,
            req,
            on_complete: Some(Box::new(on_complete)),
            resent: false,
        });
        start(base, self);
        Ok(RequestHandle { conn: self, id })
    }

    fn apply_timeouts(self, base: &mut EventBase) -> Result<(), ClientError> {
        let conn = conn_mut(base, self)?;
        let (state, bev, s) = (conn.state, conn.bev, conn.settings.clone());
        if let Some(bev) = bev {
            match state {
                State::Connecting => bev.set_timeouts(base, None, Some(s.connect_timeout))?,
                State::Active => {
                    bev.set_timeouts(base, Some(s.read_timeout), Some(s.write_timeout))?
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl RequestHandle {
    /// The connection the request is on.
    pub fn connection(self) -> Connection {
        self.conn
    }

    /// Appends one chunk to a chunked request body (made with [`Request::chunked`]). An empty
    /// `data` sends nothing (an empty chunk would end the body).
    pub fn send_chunk(self, base: &mut EventBase, data: &[u8]) -> Result<(), ClientError> {
        if data.is_empty() {
            return self.streamed(base).map(|_| ());
        }
        let mut enc = Evbuffer::new();
        enc.add_fmt(format_args!("{:x}\r\n", data.len()))?;
        enc.add(data)?;
        enc.add(b"\r\n")?;
        self.push_body(base, enc, false)
    }

    /// Ends a chunked request body (the last, empty chunk).
    pub fn end_body(self, base: &mut EventBase) -> Result<(), ClientError> {
        let mut enc = Evbuffer::new();
        enc.add(b"0\r\n\r\n")?;
        self.push_body(base, enc, true)
    }

    /// Cancels the request (`evhttp_cancel_request`): its callbacks do not run. A request in
    /// flight takes its socket with it (the response can no longer be told apart from the next
    /// one's); the requests behind it go out on a new one. Returns whether the request was still
    /// there to cancel.
    pub fn cancel(self, base: &mut EventBase) -> Result<bool, ClientError> {
        let conn = conn_mut(base, self.conn)?;
        let Some(pos) = conn.queue.iter().position(|p| p.id == self.id) else {
            return Ok(false);
        };
        let in_flight = pos == 0 && conn.state == State::Active;
        conn.queue.remove(pos);
        if in_flight {
            reset(base, self.conn);
            start(base, self.conn);
        }
        Ok(true)
    }

    /// Whether the request is still queued or in flight (its callback has not run).
    pub fn is_pending(self, base: &EventBase) -> bool {
        conn_ref(base, self.conn).is_ok_and(|c| c.queue.iter().any(|p| p.id == self.id))
    }

    /// Checks that this is a live request with a streamed body that has not ended.
    fn streamed(self, base: &mut EventBase) -> Result<(bool, Option<BufferEvent>), ClientError> {
        let conn = conn_mut(base, self.conn)?;
        let (state, bev) = (conn.state, conn.bev);
        let pos = conn
            .queue
            .iter()
            .position(|p| p.id == self.id)
            .ok_or(ClientError::Stale)?;
        match &conn.queue[pos].req.body {
            Body::Streamed { ended: false, .. } => {}
            Body::Streamed { ended: true, .. } => {
                return Err(ClientError::InvalidRequest("the chunked body has ended"))
            }
            _ => {
                return Err(ClientError::InvalidRequest(
                    "the request body is not chunked",
                ))
            }
        }
        let written = pos == 0 && state == State::Active;
        Ok((written, if written { bev } else { None }))
    }

    fn push_body(
        self,
        base: &mut EventBase,
        mut enc: Evbuffer,
        end: bool,
    ) -> Result<(), ClientError> {
        let (written, bev) = self.streamed(base)?;
        let conn = conn_mut(base, self.conn)?;
        let pending = conn
            .queue
            .iter_mut()
            .find(|p| p.id == self.id)
            .ok_or(ClientError::Stale)?;
        let Body::Streamed { queued, ended } = &mut pending.req.body else {
            return Err(ClientError::InvalidRequest(
                "the request body is not chunked",
            ));
        };
        *ended = end;
        match (written, bev) {
            (true, Some(bev)) => bev.write_buffer(base, &mut enc)?,
            _ => queued.add_buffer(&mut enc)?,
        }
        Ok(())
    }
}

// ---- the state machine ----

/// Moves the queue on: connects when a request waits and there is no socket, sends the front
/// request on an idle socket.
fn start(base: &mut EventBase, h: Connection) {
    let Ok(conn) = conn_mut(base, h) else { return };
    if conn.queue.is_empty() {
        return;
    }
    match conn.state {
        State::Disconnected => connect(base, h),
        State::Idle => dispatch(base, h),
        State::Connecting | State::Waiting | State::Active => {}
    }
}

/// Drops the socket and any response in progress (the queue stays).
fn reset(base: &mut EventBase, h: Connection) {
    let Ok(conn) = conn_mut(base, h) else { return };
    let was_connected = matches!(conn.state, State::Idle | State::Active);
    conn.state = State::Disconnected;
    conn.exchange = None;
    conn.served = 0;
    conn.job = None;
    let (bev, timer, user) = (conn.bev.take(), conn.timer, conn.user_bev);
    let tell = was_connected && conn.close_cb.is_some();
    if let Some(bev) = bev {
        if Some(bev) == user {
            release_user_bev(base, bev);
        } else {
            let _ = bev.free(base);
        }
    }
    if let Some(timer) = timer {
        let _ = base.del(timer);
    }
    if tell {
        // From the loop: reset runs inside API calls and other callbacks.
        let _ = base.once(-1, What::empty(), None, move |base, _| {
            let Ok(conn) = conn_mut(base, h) else { return };
            let Some(mut cb) = conn.close_cb.take() else {
                return;
            };
            cb(base);
            if let Ok(conn) = conn_mut(base, h) {
                conn.close_cb.get_or_insert(cb);
            }
        });
    }
}

/// Takes the socket off the owner's bufferevent (closing it) and empties its buffers, so the
/// next socket starts clean.
fn release_user_bev(base: &mut EventBase, bev: BufferEvent) {
    let _ = bev.disable(base, What::READ | What::WRITE);
    let _ = bev.set_timeouts(base, None, None);
    if let Ok((input, output)) = bev.buffers(base) {
        let (i, o) = (input.len(), output.len());
        let _ = input.drain(i);
        let _ = output.drain(o);
    }
    drop(bev.set_fd(base, None));
}

fn connect(base: &mut EventBase, h: Connection) {
    let Ok(conn) = conn_mut(base, h) else { return };
    conn.state = State::Connecting;
    conn.stats.connect_attempts += 1;
    let (addr, timeout) = (conn.addr, conn.settings.connect_timeout);
    let (user, local) = (conn.user_bev, conn.local);
    let made = (|| {
        let bev = match user {
            Some(b) => b,
            None => BufferEvent::socket(base, None, BevOptions::CLOSE_ON_FREE)?,
        };
        let set = (|| {
            if let Some(local) = local {
                bev.set_fd(base, Some(bound_socket(addr, local)?))?;
            }
            bev.set_callbacks(
                base,
                Some(Box::new(move |base: &mut EventBase, bev| {
                    on_read(base, h, bev)
                })),
                None,
                Some(Box::new(move |base: &mut EventBase, bev, what| {
                    on_event(base, h, bev, what)
                })),
            )?;
            bev.set_timeouts(base, None, Some(timeout))?;
            bev.connect(base, addr)
        })();
        match set {
            Ok(()) => Ok(bev),
            Err(e) => {
                if user == Some(bev) {
                    release_user_bev(base, bev);
                } else {
                    let _ = bev.free(base);
                }
                Err(e)
            }
        }
    })();
    match made {
        Ok(bev) => {
            if let Ok(conn) = conn_mut(base, h) {
                conn.bev = Some(bev);
            }
        }
        // Reported from the loop like any failed connect: no callback runs inside an API call.
        Err(e) => {
            let err = match e {
                revent::Error::Io(e) => e,
                other => io::Error::other(other.to_string()),
            };
            arm_timer(base, h, TimerJob::Fail(err), Duration::ZERO);
        }
    }
}

/// A non-blocking TCP socket for a connect to `addr`, bound to `local`.
fn bound_socket(
    addr: SocketAddr,
    local: SocketAddr,
) -> Result<std::os::fd::OwnedFd, revent::Error> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    // A fixed local port is taken again by the next socket while the last is in TIME_WAIT.
    s.set_reuse_address(true)?;
    s.bind(&local.into())?;
    Ok(s.into())
}

fn arm_timer(base: &mut EventBase, h: Connection, job: TimerJob, after: Duration) {
    let Ok(conn) = conn_mut(base, h) else { return };
    conn.state = State::Waiting;
    conn.job = Some(job);
    let timer = match conn.timer {
        Some(t) => t,
        None => {
            let t = base.new_timer(move |base, _| on_timer(base, h));
            if let Ok(conn) = conn_mut(base, h) {
                conn.timer = Some(t);
            }
            t
        }
    };
    let _ = base.add(timer, Some(after));
}

fn on_timer(base: &mut EventBase, h: Connection) {
    let Ok(conn) = conn_mut(base, h) else { return };
    match conn.job.take() {
        Some(TimerJob::Retry) => {
            conn.state = State::Disconnected;
            start(base, h);
        }
        Some(TimerJob::Fail(e)) => {
            conn.state = State::Disconnected;
            connect_failed(base, h, Err(e));
        }
        None => {}
    }
}

/// A connect failed (`Ok(())` for a timeout): retry after the backoff, or fail every queued
/// request.
fn connect_failed(base: &mut EventBase, h: Connection, error: Result<(), io::Error>) {
    reset(base, h);
    let Ok(conn) = conn_mut(base, h) else { return };
    let s = &conn.settings;
    if s.retries == u32::MAX || conn.retry_count < s.retries {
        let mut wait = s.initial_retry;
        for _ in 0..conn.retry_count {
            wait = wait.saturating_mul(2);
            if wait >= MAX_RETRY {
                wait = MAX_RETRY;
                break;
            }
        }
        conn.retry_count = conn.retry_count.saturating_add(1);
        arm_timer(base, h, TimerJob::Retry, wait);
        return;
    }
    conn.retry_count = 0;
    let failed: Vec<Pending> = conn.queue.drain(..).collect();
    for p in failed {
        let err = match &error {
            Ok(()) => ClientError::ConnectTimeout,
            Err(e) => ClientError::Connect(match e.raw_os_error() {
                Some(n) => io::Error::from_raw_os_error(n),
                None => io::Error::new(e.kind(), e.to_string()),
            }),
        };
        if let Some(cb) = p.on_complete {
            cb(base, Err(err));
        }
    }
    // A callback may have queued new requests: they get a fresh round of retries.
    start(base, h);
}

/// Writes the front request on the idle socket.
fn dispatch(base: &mut EventBase, h: Connection) {
    let Ok(conn) = conn_mut(base, h) else { return };
    let Some(bev) = conn.bev else { return };
    let addr = conn.addr;
    let settings = conn.settings.clone();
    let reused = conn.served > 0;
    let Some(front) = conn.queue.front_mut() else {
        return;
    };
    let mut head = Evbuffer::new();
    let mut body = Evbuffer::new();
    let wrote = (|| -> Result<(), revent::Error> {
        let req = &mut front.req;
        head.add_fmt(format_args!("{} {} HTTP/1.1\r\n", req.method, req.target))?;
        if !req.headers.contains("Host") {
            head.add_fmt(format_args!("Host: {addr}\r\n"))?;
        }
        for (name, value) in &req.headers {
            head.add(name.as_bytes())?;
            head.add(b": ")?;
            head.add(value)?;
            head.add(b"\r\n")?;
        }
        match &mut req.body {
            Body::None => {
                if matches!(req.method, Method::Post | Method::Put) {
                    head.add(b"Content-Length: 0\r\n")?;
                }
            }
            Body::Fixed(data) => {
                head.add_fmt(format_args!("Content-Length: {}\r\n", data.len()))?;
                let data = data.clone();
                body.add_reference(data, |_| {})?;
            }
            Body::Streamed { queued, .. } => {
                head.add(b"Transfer-Encoding: chunked\r\n")?;
                body.add_buffer(queued)?;
            }
        }
        head.add(b"\r\n")?;
        head.add_buffer(&mut body)
    })();
    conn.state = State::Active;
    conn.stats.requests_sent += 1;
    conn.exchange = Some(Exchange {
        parser: ResponseParser::with_limits(settings.limits.clone()),
        phase: Phase::Head,
        got_bytes: false,
        reused,
    });
    let sent = wrote.and_then(|()| {
        bev.write_buffer(base, &mut head)?;
        bev.set_timeouts(
            base,
            Some(settings.read_timeout),
            Some(settings.write_timeout),
        )?;
        bev.enable(base, What::READ | What::WRITE)
    });
    if let Err(e) = sent {
        fail_active(base, h, ClientError::Event(e));
    }
}

fn on_read(base: &mut EventBase, h: Connection, bev: BufferEvent) {
    let Ok(conn) = conn_mut(base, h) else { return };
    if conn.bev != Some(bev) {
        return;
    }
    match conn.state {
        // Bytes nobody asked for: nothing can be trusted on this socket any more.
        State::Idle => {
            reset(base, h);
            start(base, h);
        }
        State::Active => process(base, h, bev),
        _ => {}
    }
}

fn on_event(base: &mut EventBase, h: Connection, bev: BufferEvent, what: BevFlags) {
    let Ok(conn) = conn_mut(base, h) else { return };
    if conn.bev != Some(bev) {
        return;
    }
    match conn.state {
        State::Connecting => {
            if what.contains(BevFlags::CONNECTED) {
                conn.state = State::Idle;
                conn.retry_count = 0;
                conn.served = 0;
                conn.stats.connections += 1;
                let _ = bev.set_timeouts(base, None, None);
                let _ = bev.enable(base, What::READ);
                start(base, h);
            } else if what.contains(BevFlags::TIMEOUT) {
                connect_failed(base, h, Ok(()));
            } else {
                let err = bev
                    .error(base)
                    .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused));
                connect_failed(base, h, Err(err));
            }
        }
        State::Idle => {
            // The server closed the kept-alive socket (or it failed): connect anew when needed.
            reset(base, h);
            start(base, h);
        }
        State::Active => {
            // Whatever arrived before the close is read first.
            process(base, h, bev);
            let Ok(conn) = conn_mut(base, h) else { return };
            if conn.bev != Some(bev) {
                return;
            }
            if conn.state == State::Idle {
                // The response completed just before the socket ended: it cannot serve another.
                reset(base, h);
                start(base, h);
                return;
            }
            if what.contains(BevFlags::TIMEOUT) {
                fail_active(base, h, ClientError::Timeout);
                return;
            }
            let os_error = if what.contains(BevFlags::ERROR) {
                bev.error(base)
            } else {
                None
            };
            closed_in_flight(base, h, os_error);
        }
        State::Disconnected | State::Waiting => {}
    }
}

/// The socket ended while a request was in flight.
fn closed_in_flight(base: &mut EventBase, h: Connection, error: Option<io::Error>) {
    let Ok(conn) = conn_mut(base, h) else { return };
    let Some(ex) = conn.exchange.take() else {
        return;
    };
    // A close-delimited body ends here, complete.
    if let Phase::Body(b) = ex.phase {
        let InBody {
            head,
            decoder,
            body,
        } = *b;
        if error.is_none() && matches!(decoder, BodyDecoder::Close { .. }) {
            complete(base, h, head, body, Headers::new(), false);
            return;
        }
        let partial = Some(Box::new(Response {
            head,
            body,
            trailers: Headers::new(),
        }));
        fail_active(base, h, ClientError::Closed { error, partial });
        return;
    }
    // Nothing of the response came on a socket that served before: the server closed it as
    // the request went out. An idempotent request is sent again, once, on a new socket.
    let front = conn.queue.front_mut();
    if ex.reused && !ex.got_bytes {
        if let Some(p) = front.filter(|p| !p.resent && p.req.replayable()) {
            p.resent = true;
            conn.stats.resent += 1;
            reset(base, h);
            start(base, h);
            return;
        }
    }
    fail_active(
        base,
        h,
        ClientError::Closed {
            error,
            partial: None,
        },
    );
}

/// Reads as much of the front request's response as the input holds.
fn process(base: &mut EventBase, h: Connection, bev: BufferEvent) {
    loop {
        let Ok(conn) = conn_mut(base, h) else { return };
        if conn.bev != Some(bev) || conn.state != State::Active {
            return;
        }
        let Some(front) = conn.queue.front() else {
            return;
        };
        let (id, method) = (front.id, front.req.method.clone());
        let wants_chunks = front.req.on_chunk.is_some();
        let Some(mut ex) = conn.exchange.take() else {
            return;
        };
        let limits = conn.settings.limits.clone();
        let Ok(input) = bev.input(base) else { return };
        if !input.is_empty() {
            ex.got_bytes = true;
        }
        match ex.phase {
            Phase::Head => match ex.parser.parse(input, &method) {
                Ok(Progress::Partial) => {
                    put_back(base, h, ex);
                    return;
                }
                Err(e) => {
                    fail_active(base, h, ClientError::Invalid(e));
                    return;
                }
                Ok(Progress::Complete(head)) => {
                    if (100..200).contains(&head.status()) && head.status() != 101 {
                        put_back(base, h, ex);
                        continue;
                    }
                    match check_head(base, h, id, &head) {
                        HeadVerdict::Go => {}
                        HeadVerdict::Refused => {
                            fail_active(base, h, ClientError::Refused);
                            return;
                        }
                        HeadVerdict::Gone => return,
                    }
                    match BodyDecoder::new(head.framing(), &limits) {
                        Ok(decoder) => {
                            ex.phase = Phase::Body(Box::new(InBody {
                                head,
                                decoder,
                                body: Evbuffer::new(),
                            }));
                            put_back(base, h, ex);
                        }
                        Err(e) => {
                            fail_active(base, h, ClientError::Invalid(e));
                            return;
                        }
                    }
                }
            },
            Phase::Body(ref mut b) => {
                let r = b.decoder.decode(input, &mut b.body);
                let body_empty = b.body.is_empty();
                let more = !input.is_empty();
                match r {
                    Err(e) => {
                        fail_active(base, h, ClientError::Invalid(e));
                        return;
                    }
                    Ok(Progress::Partial) => {
                        if wants_chunks && !body_empty && !deliver_chunk(base, h, id, &mut ex) {
                            return;
                        }
                        // The decoder took all it could: it waits for more bytes (an
                        // unfinished trailer section stays in the input).
                        put_back(base, h, ex);
                        return;
                    }
                    Ok(Progress::Complete(trailers)) => {
                        if wants_chunks && !body_empty && !deliver_chunk(base, h, id, &mut ex) {
                            return;
                        }
                        let Phase::Body(b) = ex.phase else {
                            return;
                        };
                        complete(base, h, b.head, b.body, trailers, more);
                        return;
                    }
                }
            }
        }
    }
}

enum HeadVerdict {
    Go,
    Refused,
    /// The callback cancelled the request or freed the connection.
    Gone,
}

/// Runs the front request's head callback, if any.
fn check_head(base: &mut EventBase, h: Connection, id: u64, head: &ResponseHead) -> HeadVerdict {
    let Ok(conn) = conn_mut(base, h) else {
        return HeadVerdict::Gone;
    };
    let Some(mut cb) = conn.queue.front_mut().and_then(|p| p.req.on_head.take()) else {
        return HeadVerdict::Go;
    };
    let go = cb(base, head);
    let Ok(conn) = conn_mut(base, h) else {
        return HeadVerdict::Gone;
    };
    match conn.queue.front_mut() {
        Some(p) if p.id == id && conn.state == State::Active => {
            p.req.on_head.get_or_insert(cb);
            if go {
                HeadVerdict::Go
            } else {
                HeadVerdict::Refused
            }
        }
        _ => HeadVerdict::Gone,
    }
}

fn put_back(base: &mut EventBase, h: Connection, ex: Exchange) {
    if let Ok(conn) = conn_mut(base, h) {
        conn.exchange = Some(ex);
    }
}

/// Runs the front request's chunk callback on the body bytes so far, then drops them. Returns
/// whether the request is still in flight afterwards (the callback may cancel it or free the
/// connection).
fn deliver_chunk(base: &mut EventBase, h: Connection, id: u64, ex: &mut Exchange) -> bool {
    let Phase::Body(b) = &mut ex.phase else {
        return true;
    };
    let InBody { head, body, .. } = &mut **b;
    let Ok(conn) = conn_mut(base, h) else {
        return false;
    };
    let Some(mut cb) = conn.queue.front_mut().and_then(|p| p.req.on_chunk.take()) else {
        return true;
    };
    cb(base, head, body);
    let _ = body.drain(body.len());
    let Ok(conn) = conn_mut(base, h) else {
        return false;
    };
    match conn.queue.front_mut() {
        Some(p) if p.id == id && conn.state == State::Active => {
            p.req.on_chunk.get_or_insert(cb);
            true
        }
        _ => false,
    }
}

/// The front request's response is complete: keep the socket for the next request if both sides
/// allow it, then run the callback.
fn complete(
    base: &mut EventBase,
    h: Connection,
    head: ResponseHead,
    body: Evbuffer,
    trailers: Headers,
    leftover: bool,
) {
    let Ok(conn) = conn_mut(base, h) else { return };
    let Some(p) = conn.queue.pop_front() else {
        return;
    };
    let body_done = !matches!(p.req.body, Body::Streamed { ended: false, .. });
    let asked_close = p.req.headers.find_all("Connection").any(|v| {
        v.split(|&b| b == b',')
            .any(|t| trim_ows(t).eq_ignore_ascii_case(b"close"))
    });
    let keep = head.keep_alive()
        && head.status() != 101
        && head.framing() != BodyFraming::Close
        && body_done
        && !asked_close
        && !leftover;
    conn.exchange = None;
    if keep {
        conn.served += 1;
        conn.state = State::Idle;
        if let Some(bev) = conn.bev {
            let _ = bev.set_timeouts(base, None, None);
        }
    } else {
        reset(base, h);
    }
    if let Some(cb) = p.on_complete {
        cb(
            base,
            Ok(Response {
                head,
                body,
                trailers,
            }),
        );
    }
    start(base, h);
}

/// Fails the front request: the socket goes (what follows on it cannot be trusted), the callback
/// runs, and the requests behind it go out on a new socket.
fn fail_active(base: &mut EventBase, h: Connection, err: ClientError) {
    reset(base, h);
    let Ok(conn) = conn_mut(base, h) else { return };
    let Some(p) = conn.queue.pop_front() else {
        return;
    };
    if let Some(cb) = p.on_complete {
        cb(base, Err(err));
    }
    start(base, h);
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
