//! The HTTP/1.1 server: libevent's `evhttp` on an [`EventBase`], [`Listener`]s and socket
//! [`BufferEvent`]s.
//!
//! A [`Server`] is a cheap handle (clone it into callbacks) to one server living on one base, as
//! an `evhttp` does. It listens on any number of sockets ([`Server::bind`], [`Server::listen_fd`],
//! [`Server::attach_listener`]) and also serves connections handed to it
//! ([`Server::add_connection`], [`Server::add_bufferevent`]).
//!
//! Requests are routed by Host first ([`Server::add_virtual_host`] with `*`/`?` patterns,
//! [`Server::add_alias`]), then by exact path (percent-decoded, query left out; [`Server::set_cb`])
//! with a general callback ([`Server::set_gencb`]) for the rest, else 404. A method outside
//! [`Server::set_allowed_methods`] (default GET, POST, HEAD, PUT, DELETE as in libevent) gets 501.
//!
//! A handler gets `(&mut EventBase, &mut Request)`. It answers with one of the [`Request`] reply
//! methods (whole, chunked with `reply_start`/`reply_chunk`/`reply_end`, or a file), now or later:
//! a request not answered when the handler returns is kept, and [`Request::handle`] names it for
//! [`Server::with_request`] from any later callback. The handle is checked by generation: once the
//! request is answered or its connection gone, it is an error to use it, never a dangling one.
//!
//! Connections are persistent (HTTP/1.1 unless `Connection: close`, HTTP/1.0 with
//! `Connection: keep-alive`). Pipelined requests are answered strictly in order, as in libevent:
//! the next request is not read until the current one is answered, and requests that arrived
//! meanwhile wait in the input buffer, which is bounded (the read high watermark is the head limit
//! plus 4 KiB). Output is bounded the same way: once more than [`Server::set_max_output`] bytes
//! of replies wait for a slow reader, no further request is read until half of them went out.
//!
//! Bodies: `Content-Length` and chunked (RFC 9112's rules, in [`crate::body`]); `Expect:
//! 100-continue` is answered with `100 Continue` when the client waits for it, any other
//! expectation with 417. A handler set with [`Server::set_stream_cb`] is called as soon as the
//! head is in and again each time body bytes arrive, so that a body is never buffered whole
//! ([`Request::body_complete`] says when it ended); one set with [`Server::set_cb`] is called once,
//! with the whole body.
//!
//! [`Request::upgrade_websocket`] turns a connection into a WebSocket (RFC 6455; see
//! [`WebSocket`] and [`Message`]).
//!
//! Refusals (each answered, then the connection closed after the reply went out; the input is
//! dropped at once, and reading goes on only to discard it until the peer closes): the statuses of
//! [`ParseError`](crate::ParseError) (400, 413, 431, 501, 505), 408 when the head is not complete
//! within [`Timeouts::headers`] of its first byte (a slowloris client sending a byte at a time) or
//! the body makes no progress for [`Timeouts::body`], 417, and 501 for a method not allowed. An
//! idle keep-alive connection is closed silently after [`Timeouts::idle`], a client that does not
//! read its replies after [`Timeouts::write`] without progress.
//!
//! Replies get the headers libevent adds: `Date` (HTTP/1.1), `Content-Length` for a whole reply,
//! `Transfer-Encoding: chunked` for a streamed one to an HTTP/1.1 client (an HTTP/1.0 client gets
//! the body delimited by the close), `Connection: keep-alive` to an HTTP/1.0 client keeping the
//! connection, `Connection: close` when it closes, and the default `Content-Type` (see
//! [`Server::set_default_content_type`]). A reply to `HEAD` has no body but the headers the same
//! request with `GET` would get, `Content-Length` included.
//!
//! Deviations from libevent 2.1, for safety: limits are on by default ([`Limits`]: 64 KiB head,
//! 100 fields); every refusal closes the connection; a 404 for an unknown path keeps it; `HEAD`
//! replies carry `Content-Length`; the reason phrase may not hold CR or LF.
//!
//! ```no_run
//! use revent::EventBase;
//! use revent_http::Server;
//!
//! let mut base = EventBase::new()?;
//! let server = Server::new();
//! server.set_cb("/hello", |base, req| {
//!     req.output_headers_mut().add("Content-Type", "text/plain").unwrap();
//!     let _ = req.send_reply(base, 200, "OK", b"Hello, World!");
//! });
//! server.set_gencb(|base, req| {
//!     let _ = req.send_error(base, 404, None);
//! });
//! server.bind(&mut base, "127.0.0.1:8080".parse().unwrap())?;
//! base.dispatch()?;
//! # Ok::<(), revent::Error>(())
//! ```

mod request;
mod util;
mod websocket;

pub use request::{Request, RequestHandle};
use websocket::{Frame, WsConn};
pub use websocket::{Message, WebSocket, WsHandler};

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use revent::{
    BevFlags, BevOptions, BufferEvent, Error, EventBase, EventId, FlushMode, Listener,
    ListenerOptions, PeerAddr, What,
};

use crate::body::BodyDecoder;
use crate::encode;
use crate::message::{BodyFraming, Limits, Method, Progress, RequestParser, Version};

/// A request handler: `(base, request)`.
pub type Handler = dyn FnMut(&mut EventBase, &mut Request);

type SharedHandler = Rc<RefCell<Handler>>;

/// How long a connection may take, at each stage (libevent has one read and one write timeout,
/// 50 s by default).
///
/// ```
/// use std::time::Duration;
/// use revent_http::{Server, Timeouts};
/// let server = Server::new();
/// server.set_timeouts(Timeouts { headers: Duration::from_secs(5), ..Timeouts::default() });
/// assert_eq!(server.timeouts().idle, Duration::from_secs(50));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a head to its end (408 past it). Default 30 s.
    pub headers: Duration,
    /// Longest time without a body byte while a body is due (408 past it). Default 30 s.
    pub body: Duration,
    /// Longest wait for the next request on a kept connection (closed silently). Default 50 s.
    pub idle: Duration,
    /// Longest time replies wait without the client taking any (closed). Default 50 s.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            headers: Duration::from_secs(30),
            body: Duration::from_secs(30),
            idle: Duration::from_secs(50),
            write: Duration::from_secs(50),
        }
    }
}

/// Counters of a [`Server`].
///
/// ```
/// let s = revent_http::Server::new().stats();
/// assert_eq!((s.connections, s.open, s.requests, s.bytes), (0, 0, 0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections taken, in all.
    pub connections: u64,
    /// Connections open now.
    pub open: usize,
    /// Request heads parsed (a head the parser refused is not counted).
    pub requests: u64,
    /// Reply bytes queued for sending (heads and bodies, files included).
    pub bytes: u64,
}

/// Routes of one host: callbacks by exact path, a general callback, and the host's aliases.
///
/// ```
/// use revent_http::{Server, VirtualHost};
/// let mut admin = VirtualHost::new();
/// admin.set_cb("/", |base, req| {
///     let _ = req.send_reply(base, 200, "OK", b"admin");
/// });
/// admin.add_alias("admin.local");
/// let server = Server::new();
/// server.add_virtual_host("admin.*", admin);
/// ```
#[derive(Default)]
pub struct VirtualHost {
    exact: HashMap<String, Route, BuildHasherDefault<util::Fnv>>,
    general: Option<SharedHandler>,
    aliases: Vec<String>,
}

#[derive(Clone)]
struct Route {
    handler: SharedHandler,
    streaming: bool,
}

impl VirtualHost {
    /// A host with no routes (everything gets 404).
    pub fn new() -> VirtualHost {
        VirtualHost::default()
    }

    /// Calls `f` with whole requests whose decoded path is exactly `path` (replacing any callback
    /// already set for it).
    pub fn set_cb(
        &mut self,
        path: &str,
        f: impl FnMut(&mut EventBase, &mut Request) + 'static,
    ) -> &mut Self {
        self.exact.insert(
            path.to_string(),
            Route {
                handler: Rc::new(RefCell::new(f)),
                streaming: false,
            },
        );
        self
    }

    /// Calls `f` as soon as a head for `path` is in, then each time body bytes arrive (see
    /// [`Server::set_stream_cb`]).
    pub fn set_stream_cb(
        &mut self,
        path: &str,
        f: impl FnMut(&mut EventBase, &mut Request) + 'static,
    ) -> &mut Self {
        self.exact.insert(
            path.to_string(),
            Route {
                handler: Rc::new(RefCell::new(f)),
                streaming: true,
            },
        );
        self
    }

    /// Removes the callback for `path`; returns whether there was one.
    pub fn del_cb(&mut self, path: &str) -> bool {
        self.exact.remove(path).is_some()
    }

    /// Calls `f` with requests no path callback takes.
    pub fn set_gencb(
        &mut self,
        f: impl FnMut(&mut EventBase, &mut Request) + 'static,
    ) -> &mut Self {
        self.general = Some(Rc::new(RefCell::new(f)));
        self
    }

    /// Also answers for the host name `alias` (compared without case).
    pub fn add_alias(&mut self, alias: &str) -> &mut Self {
        self.aliases.push(alias.to_ascii_lowercase());
        self
    }

    /// Removes an alias; returns whether there was one.
    pub fn remove_alias(&mut self, alias: &str) -> bool {
        let before = self.aliases.len();
        self.aliases.retain(|a| !a.eq_ignore_ascii_case(alias));
        self.aliases.len() != before
    }

    fn has_alias(&self, host: &str) -> bool {
        self.aliases.iter().any(|a| a.eq_ignore_ascii_case(host))
    }

    /// The route for a percent-decoded path (`None`: not UTF-8, so no path callback's).
    fn route(&self, path: Option<&str>) -> Option<Route> {
        path.and_then(|p| self.exact.get(p)).cloned().or_else(|| {
            self.general.clone().map(|handler| Route {
                handler,
                streaming: false,
            })
        })
    }
}

/// An HTTP server on one [`EventBase`] (libevent's `struct evhttp`); see the [module
/// documentation](self). Clones name the same server. Its callbacks hold it weakly: once every
/// clone is dropped, its listeners (until freed) close what they accept and its connections do
/// nothing more; [`free`](Self::free) ends it properly.
///
/// ```
/// use revent::EventBase;
/// use revent_http::Server;
///
/// let mut base = EventBase::new()?;
/// let server = Server::new();
/// server.set_cb("/", |base, req| {
///     let _ = req.send_reply(base, 200, "OK", b"root");
/// });
/// let listener = server.bind(&mut base, "127.0.0.1:0".parse().unwrap())?;
/// let addr = listener.local_addr(&base)?;
/// assert!(addr.port() != 0);
/// server.free(&mut base);
/// # Ok::<(), revent::Error>(())
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<RefCell<Inner>>,
}

impl Default for Server {
    fn default() -> Server {
        Server::new()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The key of a connection slot: index and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnKey {
    index: u32,
    generation: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a head.
    Idle,
    /// Inside a head.
    Head,
    /// Inside a body.
    Body,
    /// The request was handed over; waiting for its reply to end.
    Waiting,
    /// Closing: the last reply goes out, then the write side is shut; input is discarded.
    Closing,
    /// Upgraded to WebSocket: frames both ways.
    WebSocket,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    Idle,
    Head,
    Body,
    Linger,
}

/// How long a closing connection waits, once its output is out, for the peer to close.
const LINGER: Duration = Duration::from_secs(2);

struct Conn {
    bev: BufferEvent,
    peer: PeerAddr,
    parser: RequestParser,
    phase: Phase,
    timer: EventId,
    /// When the timer is set to fire.
    armed: Option<Instant>,
    deadline: Option<(Instant, Deadline)>,
    /// Number of the current request on this connection.
    seq: u32,
    /// The current request while the server holds it (not during a handler call).
    request: Option<Box<Request>>,
    /// The last request once answered, kept to parse the next one into: its box, header lists,
    /// target and path keep their room, so a request allocates nothing.
    spare: Option<Box<Request>>,
    decoder: Option<BodyDecoder>,
    route: Option<Route>,
    peer_eof: bool,
    /// Too much output waits: no request is read until it drained.
    throttled: bool,
    write_cb: bool,
    ws: Option<WsConn>,
    /// The bufferevent came from [`Server::set_bufferevent_cb`]'s maker: it goes back to its
    /// release function.
    made_by_cb: bool,
    /// Run once the output has gone out ([`Request::on_flushed`]).
    flushed: Vec<Box<LoopFn>>,
    /// Run from the loop when the connection closes ([`Request::on_close`]).
    on_close: Vec<Box<LoopFn>>,
}

/// Largest request (heap it keeps, roughly) a connection keeps for the next one: one that held
/// a large head is dropped rather than kept by an idle connection.
const SPARE_MAX: usize = 16 * 1024;

impl Conn {
    /// Takes back a request that was out for a handler call: the current one while unanswered,
    /// else as the spare to parse the next request into.
    fn put_back(&mut self, req: Box<Request>) {
        if !req.is_done() {
            if self.seq == req.handle().seq {
                self.request = Some(req);
            }
        } else if self.spare.is_none() && req.retained() <= SPARE_MAX {
            self.spare = Some(req);
        }
    }
}

/// Work run later from the loop.
type LoopFn = dyn FnOnce(&mut EventBase);
/// Takes back a bufferevent the maker made.
type BevRelease = dyn FnMut(&mut EventBase, BufferEvent);

/// Makes the bufferevent of each accepted connection ([`Server::set_bufferevent_cb`]).
type BevMake = Rc<RefCell<Box<dyn FnMut(&mut EventBase) -> Option<BufferEvent>>>>;

struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

pub(crate) struct Inner {
    root: VirtualHost,
    vhosts: Vec<(String, VirtualHost)>,
    allowed: Vec<Method>,
    limits: Limits,
    timeouts: Timeouts,
    max_output: usize,
    /// The default `Content-Type` as a whole field line (see [`Inner::content_type_line`]).
    content_type_line: Option<String>,
    listeners: Vec<Listener>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    stats: ServerStats,
    /// The connection whose handler runs from `process` now: its reply needs no resume event.
    dispatching: Option<u32>,
    date: (u64, String),
    /// Until when (loop time) `date` is the current second's.
    date_until: Option<Instant>,
    /// Where a reply's head is put together: kept between replies, so that writing one allocates
    /// nothing.
    pub(crate) head_buf: Vec<u8>,
    this: Weak<RefCell<Inner>>,
    bev_make: Option<BevMake>,
    /// Takes back a bufferevent `bev_make` made, when its connection is done.
    bev_release: Option<Box<BevRelease>>,
}

enum Step {
    Stop,
    Continue,
    Dispatch(Box<Request>, Option<Route>),
    Ws(Rc<RefCell<WsHandler>>, WebSocket, Message),
}

impl Server {
    /// A server with no sockets and no routes, [`Limits::default`] and [`Timeouts::default`].
    pub fn new() -> Server {
        let inner = Rc::new_cyclic(|this| {
            RefCell::new(Inner {
                root: VirtualHost::new(),
                vhosts: Vec::new(),
                allowed: vec![
                    Method::Get,
                    Method::Post,
                    Method::Head,
                    Method::Put,
                    Method::Delete,
                ],
                limits: Limits::default(),
                timeouts: Timeouts::default(),
                max_output: 1 << 20,
                content_type_line: Some(content_type_line("text/html; charset=ISO-8859-1")),
                listeners: Vec::new(),
                slots: Vec::new(),
                free: Vec::new(),
                stats: ServerStats::default(),
                dispatching: None,
                date: (u64::MAX, String::new()),
                date_until: None,
                head_buf: Vec::with_capacity(256),
                this: this.clone(),
                bev_make: None,
                bev_release: None,
            })
        });
        Server { inner }
    }

    // ---- configuration ----

    /// Sets the parsing limits (`evhttp_set_max_headers_size`, `evhttp_set_max_body_size`): the
    /// head limits for connections taken from now on, the body limits for requests read from now
    /// on.
    pub fn set_limits(&self, limits: Limits) {
        self.inner.borrow_mut().limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.inner.borrow().limits.clone()
    }

    /// Sets the timeouts (`evhttp_set_timeout`), for connections taken from now on (the write
    /// timeout) and deadlines set from now on (the others).
    pub fn set_timeouts(&self, t: Timeouts) {
        self.inner.borrow_mut().timeouts = t;
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.borrow().timeouts.clone()
    }

    /// Past this many bytes of replies waiting for a client, its next request is not read until
    /// half of them went out. Default 1 MiB.
    pub fn set_max_output(&self, bytes: usize) {
        self.inner.borrow_mut().max_output = bytes.max(1);
    }

    /// The `Content-Type` added to replies with a body that have none
    /// (`evhttp_set_default_content_type`); `None` adds nothing. Default
    /// `text/html; charset=ISO-8859-1`, as libevent.
    pub fn set_default_content_type(&self, content_type: Option<&str>) {
        self.inner.borrow_mut().content_type_line = content_type.map(content_type_line);
    }

    /// The methods served (`evhttp_set_allowed_methods`); others get 501.
    pub fn set_allowed_methods(&self, methods: impl IntoIterator<Item = Method>) {
        self.inner.borrow_mut().allowed = methods.into_iter().collect();
    }

    /// Calls `f` with whole requests for exactly `path` (`evhttp_set_cb`), on the default host.
    pub fn set_cb(&self, path: &str, f: impl FnMut(&mut EventBase, &mut Request) + 'static) {
        self.inner.borrow_mut().root.set_cb(path, f);
    }

    /// Calls `f` for requests for exactly `path` as soon as the head is in, and again each time
    /// body bytes arrive: they are appended to [`Request::body`], which the handler may drain;
    /// [`Request::body_complete`] says when the body ended (then `f` is not called again). `f` may
    /// reply at any time; a reply that ends before the body closes the connection after it.
    ///
    /// ```
    /// use revent_http::Server;
    /// let server = Server::new();
    /// server.set_stream_cb("/upload", |base, req| {
    ///     let n = req.body().len();
    ///     req.body_mut().drain(n).unwrap(); // consume as it comes: nothing is buffered
    ///     if req.body_complete() {
    ///         let _ = req.send_reply(base, 204, "No Content", b"");
    ///     }
    /// });
    /// ```
    pub fn set_stream_cb(&self, path: &str, f: impl FnMut(&mut EventBase, &mut Request) + 'static) {
        self.inner.borrow_mut().root.set_stream_cb(path, f);
    }

    /// Removes the callback for `path` (`evhttp_del_cb`); returns whether there was one.
    pub fn del_cb(&self, path: &str) -> bool {
        self.inner.borrow_mut().root.del_cb(path)
    }

    /// Calls `f` with requests that no path callback takes (`evhttp_set_gencb`).
    pub fn set_gencb(&self, f: impl FnMut(&mut EventBase, &mut Request) + 'static) {
        self.inner.borrow_mut().root.set_gencb(f);
    }

    /// Routes requests whose Host matches `pattern` (`*` any run, `?` any one character, case
    /// ignored) to `host` (`evhttp_add_virtual_host`). Patterns are tried in the order added,
    /// after the aliases.
    pub fn add_virtual_host(&self, pattern: &str, host: VirtualHost) {
        self.inner
            .borrow_mut()
            .vhosts
            .push((pattern.to_string(), host));
    }

    /// Removes the virtual host added with `pattern`; returns whether there was one.
    pub fn remove_virtual_host(&self, pattern: &str) -> bool {
        let mut g = self.inner.borrow_mut();
        let before = g.vhosts.len();
        g.vhosts.retain(|(p, _)| p != pattern);
        g.vhosts.len() != before
    }

    /// Makes the default host answer for `alias` even where a virtual host pattern matches it
    /// (`evhttp_add_server_alias`).
    pub fn add_alias(&self, alias: &str) {
        self.inner.borrow_mut().root.add_alias(alias);
    }

    /// Removes an alias of the default host (`evhttp_remove_server_alias`).
    pub fn remove_alias(&self, alias: &str) -> bool {
        self.inner.borrow_mut().root.remove_alias(alias)
    }

    // ---- sockets ----

    /// Listens on `addr` (`evhttp_bind_socket_with_handle`); call again for more sockets. The
    /// listener is freed by [`free`](Self::free), or by the caller.
    pub fn bind(&self, base: &mut EventBase, addr: SocketAddr) -> revent::Result<Listener> {
        self.bind_with(
            base,
            addr,
            ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_EXEC,
        )
    }

    /// [`bind`](Self::bind) with the listener's options (e.g. `REUSEABLE_PORT` to share a port
    /// between bases on several threads).
    pub fn bind_with(
        &self,
        base: &mut EventBase,
        addr: SocketAddr,
        options: ListenerOptions,
    ) -> revent::Result<Listener> {
        let weak = Rc::downgrade(&self.inner);
        let l = Listener::bind(base, addr, options, -1, move |base, fd, peer| {
            accept(base, &weak, fd, peer)
        })?;
        self.inner.borrow_mut().listeners.push(l);
        Ok(l)
    }

    /// Accepts on a socket that is already bound and listening (`evhttp_accept_socket`).
    pub fn listen_fd(&self, base: &mut EventBase, fd: OwnedFd) -> revent::Result<Listener> {
        let weak = Rc::downgrade(&self.inner);
        let l = Listener::from_fd(
            base,
            fd,
            ListenerOptions::CLOSE_ON_FREE | ListenerOptions::CLOSE_ON_EXEC,
            -1,
            move |base, fd, peer| accept(base, &weak, fd, peer),
        )?;
        self.inner.borrow_mut().listeners.push(l);
        Ok(l)
    }

    /// Serves the connections `listener` accepts (`evhttp_bind_listener`): its accept callback is
    /// replaced.
    pub fn attach_listener(&self, base: &mut EventBase, listener: Listener) -> revent::Result<()> {
        let weak = Rc::downgrade(&self.inner);
        listener.set_accept_cb(base, move |base, fd, peer| accept(base, &weak, fd, peer))?;
        self.inner.borrow_mut().listeners.push(listener);
        Ok(())
    }

    /// Serves a connected socket (`evhttp_get_request`'s job for one connection), on a
    /// bufferevent from [`set_bufferevent_cb`](Self::set_bufferevent_cb)'s maker when there is one.
    pub fn add_connection(
        &self,
        base: &mut EventBase,
        fd: OwnedFd,
        peer: PeerAddr,
    ) -> revent::Result<()> {
        serve_socket(base, &self.inner, fd, peer)
    }

    /// Accepted connections go on bufferevents that `make` returns (libevent's `evhttp_set_bevcb`;
    /// a filter such as TLS, or a socket bufferevent with options of its own) instead of a plain
    /// socket bufferevent: `make` gets the base and returns a bufferevent without a socket, and the
    /// server puts the accepted socket on it (`None` refuses the connection: the socket closes).
    /// When the connection is done, the bufferevent, its socket still on it, goes to `release`
    /// instead of being freed. Connections already open are not affected.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase};
    /// use revent_http::Server;
    ///
    /// let server = Server::new();
    /// server.set_bufferevent_cb(
    ///     |base: &mut EventBase| BufferEvent::socket(base, None, BevOptions::CLOSE_ON_FREE).ok(),
    ///     |base: &mut EventBase, bev: BufferEvent| drop(bev.free(base)),
    /// );
    /// ```
    pub fn set_bufferevent_cb(
        &self,
        make: impl FnMut(&mut EventBase) -> Option<BufferEvent> + 'static,
        release: impl FnMut(&mut EventBase, BufferEvent) + 'static,
    ) {
        let mut g = self.inner.borrow_mut();
        g.bev_make = Some(Rc::new(RefCell::new(Box::new(make))));
        g.bev_release = Some(Box::new(release));
    }

    /// Goes back to plain socket bufferevents for the connections accepted from now on (those on
    /// made bufferevents still go back to the release function).
    pub fn clear_bufferevent_cb(&self) {
        self.inner.borrow_mut().bev_make = None;
    }

    /// Serves requests arriving on `bev` (any kind: a socket, a filter such as TLS, or one end of
    /// a pair); the server sets its callbacks and frees it when done.
    pub fn add_bufferevent(&self, base: &mut EventBase, bev: BufferEvent, peer: PeerAddr) {
        attach(base, &self.inner, bev, peer, false);
    }

    /// Frees the listeners and closes every connection (`evhttp_free`); requests not answered
    /// become stale. The routes stay, so the server could be bound again.
    pub fn free(&self, base: &mut EventBase) {
        let (listeners, keys) = {
            let mut g = self.inner.borrow_mut();
            let listeners = std::mem::take(&mut g.listeners);
            let keys: Vec<ConnKey> = g.live_keys();
            (listeners, keys)
        };
        for l in listeners {
            let _ = l.free(base);
        }
        for k in keys {
            // Let the last replies go out: a final write is tried by the bufferevent's free.
            self.inner.borrow_mut().close_now(base, k);
        }
    }

    /// Frees the listeners only: no new connection is taken, open ones are served on (a graceful
    /// stop: once [`stats`](Self::stats) shows none open, the base can stop).
    pub fn stop_listening(&self, base: &mut EventBase) {
        let listeners = std::mem::take(&mut self.inner.borrow_mut().listeners);
        for l in listeners {
            let _ = l.free(base);
        }
    }

    /// Closes the connections that wait for a request (idle keep-alive ones), leaving those busy
    /// with one; with [`stop_listening`](Self::stop_listening), a graceful stop. What a closed
    /// connection still has to send goes out first.
    pub fn close_idle(&self, base: &mut EventBase) {
        let keys: Vec<ConnKey> = {
            let g = self.inner.borrow();
            g.live_keys()
                .into_iter()
                .filter(|k| {
                    g.conn(*k).is_some_and(|c| {
                        c.phase == Phase::Idle && c.request.is_none() && !c.throttled
                    })
                })
                .collect()
        };
        for k in keys {
            self.inner.borrow_mut().begin_close(base, k);
        }
    }

    // ---- state ----

    /// The counters.
    pub fn stats(&self) -> ServerStats {
        self.inner.borrow().stats
    }

    /// Bytes held in the connections' input and output buffers now (for tests and monitoring).
    pub fn buffered_bytes(&self, base: &mut EventBase) -> usize {
        let bevs: Vec<BufferEvent> = {
            let g = self.inner.borrow();
            g.live_keys()
                .iter()
                .filter_map(|k| g.conn(*k).map(|c| c.bev))
                .collect()
        };
        bevs.into_iter()
            .map(|b| b.buffers(base).map(|(i, o)| i.len() + o.len()).unwrap_or(0))
            .sum()
    }

    /// Runs `f` on the request `handle` names, to answer it later than its handler (or to look
    /// at it). An error if the request was answered, its connection closed, or it is inside a
    /// handler call right now.
    ///
    /// ```
    /// use revent_http::{RequestHandle, Server};
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    ///
    /// let server = Server::new();
    /// let waiting: Rc<RefCell<Vec<RequestHandle>>> = Rc::default();
    /// let w = waiting.clone();
    /// server.set_cb("/later", move |_base, req| w.borrow_mut().push(req.handle()));
    /// // ... later, from a timer or another connection's callback:
    /// let answer_all = |base: &mut revent::EventBase| {
    ///     for h in waiting.borrow_mut().drain(..) {
    ///         let _ = server.with_request(h, |req| req.send_reply(base, 200, "OK", b"done"));
    ///     }
    /// };
    /// # let mut base = revent::EventBase::new().unwrap();
    /// # answer_all(&mut base);
    /// ```
    pub fn with_request<R>(
        &self,
        handle: RequestHandle,
        f: impl FnOnce(&mut Request) -> R,
    ) -> revent::Result<R> {
        let key = ConnKey {
            index: handle.index,
            generation: handle.generation,
        };
        let mut req = {
            let mut g = self.inner.borrow_mut();
            let conn = g.conn_mut(key).ok_or(STALE)?;
            if conn.seq != handle.seq {
                return Err(STALE);
            }
            conn.request
                .take()
                .ok_or(Error::InvalidArgument("request is inside its handler call"))?
        };
        let r = f(&mut req);
        if let Some(conn) = self.inner.borrow_mut().conn_mut(key) {
            conn.put_back(req);
        }
        Ok(r)
    }
}

const STALE: Error = Error::InvalidArgument("stale request handle: answered or connection gone");

fn accept(base: &mut EventBase, weak: &Weak<RefCell<Inner>>, fd: OwnedFd, peer: PeerAddr) {
    let Some(inner) = weak.upgrade() else {
        return;
    };
    // Replies go out whole; Nagle would hold the end of one for the peer's ACK.
    let fd: OwnedFd = {
        let tcp = std::net::TcpStream::from(fd);
        let _ = tcp.set_nodelay(true);
        tcp.into()
    };
    let _ = serve_socket(base, &inner, fd, peer);
}

/// Serves the connected socket `fd`: on a bufferevent of the maker's, or a socket bufferevent.
fn serve_socket(
    base: &mut EventBase,
    inner: &Rc<RefCell<Inner>>,
    fd: OwnedFd,
    peer: PeerAddr,
) -> revent::Result<()> {
    let make = inner.borrow().bev_make.clone();
    let Some(make) = make else {
        let bev = BufferEvent::socket(base, Some(fd), BevOptions::CLOSE_ON_FREE)?;
        attach(base, inner, bev, peer, false);
        return Ok(());
    };
    // The server is not borrowed while the maker runs: it may look at the server.
    let made = (make.borrow_mut())(base);
    let Some(bev) = made else {
        return Err(Error::InvalidArgument(
            "the bufferevent maker refused the connection",
        ));
    };
    match bev.set_fd(base, Some(fd)) {
        Ok(_) => {
            attach(base, inner, bev, peer, true);
            Ok(())
        }
        Err(e) => {
            if let Some(release) = inner.borrow_mut().bev_release.as_mut() {
                release(base, bev);
            }
            Err(e)
        }
    }
}

fn attach(
    base: &mut EventBase,
    inner: &Rc<RefCell<Inner>>,
    bev: BufferEvent,
    peer: PeerAddr,
    made_by_cb: bool,
) {
    let weak = Rc::downgrade(inner);
    let mut g = inner.borrow_mut();
    let index = match g.free.pop() {
        Some(i) => i,
        None => {
            g.slots.push(Slot {
                generation: 0,
                conn: None,
            });
            (g.slots.len() - 1) as u32
        }
    };
    let key = ConnKey {
        index,
        generation: g.slots[index as usize].generation,
    };
    let timer = {
        let weak = weak.clone();
        base.new_timer(move |base, fired| {
            if let Some(inner) = weak.upgrade() {
                if fired.what.contains(What::TIMEOUT) {
                    on_timer(base, &inner, key);
                } else {
                    process(base, &inner, key);
                }
            }
        })
    };
    let read_high = g.limits.max_head_bytes.saturating_add(4096);
    let _ = bev.set_watermark(base, What::READ, 0, read_high);
    let _ = bev.set_timeouts(base, None, Some(g.timeouts.write));
    {
        let weak = weak.clone();
        let _ = bev.set_read_cb(base, move |base, _| {
            if let Some(inner) = weak.upgrade() {
                process(base, &inner, key);
            }
        });
    }
    {
        let weak = weak.clone();
        let _ = bev.set_event_cb(base, move |base, _, what| {
            if let Some(inner) = weak.upgrade() {
                on_event(base, &inner, key, what);
            }
        });
    }
    let _ = bev.enable(base, What::READ | What::WRITE);
    g.slots[index as usize].conn = Some(Conn {
        bev,
        peer,
        parser: RequestParser::with_limits(g.limits.clone()),
        phase: Phase::Idle,
        timer,
        armed: None,
        deadline: None,
        seq: 0,
        request: None,
        spare: None,
        decoder: None,
        route: None,
        peer_eof: false,
        throttled: false,
        write_cb: false,
        ws: None,
        made_by_cb,
        flushed: Vec::new(),
        on_close: Vec::new(),
    });
    g.stats.connections += 1;
    g.stats.open += 1;
    let idle = g.timeouts.idle;
    g.set_deadline(base, key, Deadline::Idle, idle);
}

/// Reads and handles what the connection's input holds, as far as it can.
fn process(base: &mut EventBase, inner: &Rc<RefCell<Inner>>, key: ConnKey) {
    // Handlers are never running when this is entered (it runs from loop callbacks only); a
    // mark left by a handler that panicked is stale.
    inner.borrow_mut().dispatching = None;
    loop {
        let step = inner.borrow_mut().step(base, key);
        match step {
            Step::Stop => return,
            Step::Continue => {}
            Step::Ws(handler, ws, msg) => {
                inner.borrow_mut().dispatching = Some(key.index);
                if let Ok(mut h) = handler.try_borrow_mut() {
                    h(base, &ws, msg);
                }
                inner.borrow_mut().dispatching = None;
            }
            Step::Dispatch(mut req, route) => {
                inner.borrow_mut().dispatching = Some(key.index);
                match route {
                    Some(route) => match route.handler.try_borrow_mut() {
                        Ok(mut h) => h(base, &mut req),
                        // The handler is running further up this stack (it called into the
                        // loop): it cannot be entered again.
                        Err(_) => {
                            let _ = req.send_error(base, 500, None);
                        }
                    },
                    None => {
                        let _ = req.send_not_found(base);
                    }
                }
                let mut g = inner.borrow_mut();
                g.dispatching = None;
                if let Some(conn) = g.conn_mut(key) {
                    conn.put_back(req);
                }
            }
        }
    }
}

fn on_event(base: &mut EventBase, inner: &Rc<RefCell<Inner>>, key: ConnKey, what: BevFlags) {
    let mut g = inner.borrow_mut();
    let Some(conn) = g.conn_mut(key) else {
        return;
    };
    if what.intersects(BevFlags::ERROR | BevFlags::TIMEOUT) {
        g.close_now(base, key);
        return;
    }
    if what.contains(BevFlags::EOF) {
        conn.peer_eof = true;
        match conn.phase {
            // A half-closed client still gets the reply to its request.
            Phase::Waiting => {}
            Phase::WebSocket => g.close_now(base, key),
            Phase::Closing => {
                let empty = conn.bev.output(base).map_or(true, |o| o.is_empty());
                if empty {
                    g.close_now(base, key);
                }
            }
            Phase::Idle | Phase::Head | Phase::Body => {
                // Requests already complete in the input are still answered (a client may send
                // its last request and half-close); a partial one is dropped.
                drop(g);
                process(base, inner, key);
                let mut g = inner.borrow_mut();
                if let Some(c) = g.conn_mut(key) {
                    if matches!(c.phase, Phase::Head | Phase::Body) {
                        g.close_now(base, key);
                    }
                }
            }
        }
    }
}

fn on_timer(base: &mut EventBase, inner: &Rc<RefCell<Inner>>, key: ConnKey) {
    let mut g = inner.borrow_mut();
    let now = base.now_cached();
    let Some(conn) = g.conn_mut(key) else {
        return;
    };
    conn.armed = None;
    let Some((at, kind)) = conn.deadline else {
        return;
    };
    if at > now {
        let timer = conn.timer;
        conn.armed = Some(at);
        let _ = base.add(timer, Some(at - now));
        return;
    }
    conn.deadline = None;
    match kind {
        Deadline::Idle | Deadline::Linger => g.close_now(base, key),
        Deadline::Head | Deadline::Body => {
            if matches!(conn.phase, Phase::Head | Phase::Body | Phase::Idle) {
                g.fail(base, key, 408);
            }
        }
    }
}

fn on_write(base: &mut EventBase, inner: &Rc<RefCell<Inner>>, key: ConnKey) {
    let mut flushed = Vec::new();
    let resume = {
        let mut g = inner.borrow_mut();
        let max_output = g.max_output;
        let Some(conn) = g.conn_mut(key) else {
            return;
        };
        let out = conn.bev.output(base).map_or(0, |o| o.len());
        if out == 0 {
            flushed = std::mem::take(&mut conn.flushed);
        }
        match conn.phase {
            Phase::Closing => {
                if out == 0 {
                    if conn.peer_eof {
                        g.close_now(base, key);
                    } else {
                        g.set_deadline(base, key, Deadline::Linger, LINGER);
                    }
                }
                false
            }
            _ if conn.throttled && out <= max_output / 2 => {
                conn.throttled = false;
                if conn.flushed.is_empty() {
                    conn.write_cb = false;
                    let _ = conn.bev.clear_write_cb(base);
                }
                let _ = conn.bev.set_watermark(base, What::WRITE, 0, 0);
                true
            }
            _ => false,
        }
    };
    // With the server not borrowed: the callbacks may use it.
    for f in flushed {
        f(base);
    }
    if resume {
        process(base, inner, key);
    }
}

impl ConnKey {
    pub(crate) fn of(h: RequestHandle) -> ConnKey {
        ConnKey {
            index: h.index,
            generation: h.generation,
        }
    }
}

impl Inner {
    pub(crate) fn this_weak(&self) -> Weak<RefCell<Inner>> {
        self.this.clone()
    }

    fn conn(&self, key: ConnKey) -> Option<&Conn> {
        let s = self.slots.get(key.index as usize)?;
        if s.generation != key.generation {
            return None;
        }
        s.conn.as_ref()
    }

    fn conn_mut(&mut self, key: ConnKey) -> Option<&mut Conn> {
        let s = self.slots.get_mut(key.index as usize)?;
        if s.generation != key.generation {
            return None;
        }
        s.conn.as_mut()
    }

    fn live_keys(&self) -> Vec<ConnKey> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn.is_some())
            .map(|(i, s)| ConnKey {
                index: i as u32,
                generation: s.generation,
            })
            .collect()
    }

    /// The `Date` header's value, made once a second.
    pub(crate) fn date(&mut self, base: &EventBase) -> &str {
        let line = self.date_line(base);
        &line["Date: ".len()..line.len() - 2]
    }

    /// The whole `Date` field, `Date: ...\r\n`, as a reply head has it.
    pub(crate) fn date_line(&mut self, base: &EventBase) -> &str {
        // Looked at once per reply: the loop's monotonic time says cheaply whether the wall
        // clock's second can have changed.
        let mono = base.now_cached();
        if self.date_until.is_some_and(|until| mono < until) {
            return &self.date.1;
        }
        let now = base.wall_cached();
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        if self.date.0 != since.as_secs() {
            self.date = (
                since.as_secs(),
                format!("Date: {}\r\n", util::http_date(now)),
            );
        }
        let left = Duration::from_secs(1)
            .saturating_sub(Duration::from_nanos(u64::from(since.subsec_nanos())));
        self.date_until = mono.checked_add(left);
        &self.date.1
    }

    /// The default `Content-Type` field, `Content-Type: ...\r\n`, if there is one.
    pub(crate) fn content_type_line(&self) -> Option<&str> {
        self.content_type_line.as_deref()
    }

    pub(crate) fn count_bytes(&mut self, n: u64) {
        self.stats.bytes += n;
    }

    fn set_deadline(&mut self, base: &mut EventBase, key: ConnKey, kind: Deadline, d: Duration) {
        let now = base.now_cached();
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        let at = now + d;
        conn.deadline = Some((at, kind));
        // The timer is moved only to fire sooner; firing early re-arms it for what is left.
        if conn.armed.map_or(true, |a| a > at) {
            conn.armed = Some(at);
            let _ = base.add(conn.timer, Some(d));
        }
    }

    fn clear_deadline(&mut self, key: ConnKey) {
        if let Some(conn) = self.conn_mut(key) {
            conn.deadline = None;
        }
    }

    /// One step of reading: see [`Step`].
    fn step(&mut self, base: &mut EventBase, key: ConnKey) -> Step {
        let Some(conn) = self.conn_mut(key) else {
            return Step::Stop;
        };
        let bev = conn.bev;
        match conn.phase {
            Phase::Waiting => Step::Stop,
            Phase::WebSocket => self.ws_step(base, key),
            Phase::Closing => {
                if let Ok(input) = bev.input(base) {
                    let n = input.len();
                    let _ = input.drain(n);
                }
                Step::Stop
            }
            Phase::Idle | Phase::Head => {
                if conn.throttled {
                    return Step::Stop;
                }
                let Ok(input) = bev.input(base) else {
                    return Step::Stop;
                };
                if input.is_empty() {
                    if conn.peer_eof {
                        // Every request the client sent before closing was answered.
                        self.begin_close(base, key);
                    }
                    return Step::Stop;
                }
                let mut req = match conn.spare.take() {
                    Some(req) => req,
                    None => Box::new(Request::blank(bev, conn.peer.clone())),
                };
                match conn.parser.parse_into(input, req.head_mut()) {
                    Ok(Progress::Partial) => {
                        conn.spare = Some(req);
                        if conn.peer_eof {
                            // The head can never complete.
                            self.close_now(base, key);
                        } else if conn.phase == Phase::Idle {
                            conn.phase = Phase::Head;
                            let d = self.timeouts.headers;
                            self.set_deadline(base, key, Deadline::Head, d);
                        }
                        Step::Stop
                    }
                    Err(e) => {
                        self.fail(base, key, e.status());
                        Step::Stop
                    }
                    Ok(Progress::Complete(())) => self.start_request(base, key, req),
                }
            }
            Phase::Body => {
                let (Some(decoder), Some(req)) = (conn.decoder.as_mut(), conn.request.as_mut())
                else {
                    return Step::Stop;
                };
                let Ok(input) = bev.input(base) else {
                    return Step::Stop;
                };
                let before = input.len();
                let result = decoder.decode(input, req.body_mut());
                let progressed = input.len() != before;
                match result {
                    Err(e) => {
                        self.fail(base, key, e.status());
                        Step::Stop
                    }
                    Ok(Progress::Partial) => {
                        if !progressed {
                            return Step::Stop;
                        }
                        let streaming = conn.route.as_ref().is_some_and(|r| r.streaming);
                        let d = self.timeouts.body;
                        self.set_deadline(base, key, Deadline::Body, d);
                        if streaming {
                            self.dispatch(key)
                        } else {
                            Step::Stop
                        }
                    }
                    Ok(Progress::Complete(trailers)) => {
                        req.set_trailers(trailers);
                        req.set_body_complete();
                        conn.decoder = None;
                        conn.phase = Phase::Waiting;
                        self.clear_deadline(key);
                        self.dispatch(key)
                    }
                }
            }
        }
    }

    /// Hands the current request to its route.
    fn dispatch(&mut self, key: ConnKey) -> Step {
        let Some(conn) = self.conn_mut(key) else {
            return Step::Stop;
        };
        match conn.request.take() {
            Some(req) => Step::Dispatch(req, conn.route.clone()),
            None => Step::Stop,
        }
    }

    /// Starts the request whose head was just parsed into `req`.
    fn start_request(&mut self, base: &mut EventBase, key: ConnKey, mut req: Box<Request>) -> Step {
        self.stats.requests += 1;
        let head = req.head();
        if !self.allowed.contains(head.method()) {
            self.fail(base, key, 501);
            return Step::Stop;
        }
        let decoder = match BodyDecoder::new(head.framing(), &self.limits) {
            Ok(d) => d,
            Err(e) => {
                self.fail(base, key, e.status());
                return Step::Stop;
            }
        };
        let expect = head.headers().find("Expect");
        let has_body = !matches!(head.framing(), BodyFraming::None | BodyFraming::Length(0));
        if let (Some(expect), Version::Http11) = (expect, head.version()) {
            if !expect.eq_ignore_ascii_case(b"100-continue") {
                self.fail(base, key, 417);
                return Step::Stop;
            }
        }
        let route = self.route_for(head);
        let send_continue = expect.is_some() && head.version() == Version::Http11 && has_body;
        let weak = self.this.clone();
        let Some(conn) = self.conn_mut(key) else {
            return Step::Stop;
        };
        let bev = conn.bev;
        if send_continue {
            // The client may wait for this before it sends the body; send it only while nothing
            // of the body is here yet.
            if conn_input_empty(base, bev) {
                let _ = bev.write(base, b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        let handle = RequestHandle {
            index: key.index,
            generation: key.generation,
            seq: conn.seq,
        };
        req.begin(handle, weak);
        conn.route = route;
        if matches!(decoder, BodyDecoder::Empty) {
            req.set_body_complete();
            conn.request = Some(req);
            conn.phase = Phase::Waiting;
            self.clear_deadline(key);
            return self.dispatch(key);
        }
        conn.request = Some(req);
        conn.decoder = Some(decoder);
        conn.phase = Phase::Body;
        let streaming = conn.route.as_ref().is_some_and(|r| r.streaming);
        let d = self.timeouts.body;
        self.set_deadline(base, key, Deadline::Body, d);
        if streaming {
            // The handler sees the head first; body bytes follow in later calls.
            self.dispatch(key)
        } else {
            Step::Continue
        }
    }

    /// The route for a request: by Host (aliases, then virtual-host patterns), then by path.
    fn route_for(&self, head: &crate::message::RequestHead) -> Option<Route> {
        let mut vhost = &self.root;
        // Without virtual hosts every host gets the default one's routes: no need to look.
        let host = if self.vhosts.is_empty() {
            None
        } else {
            head.headers()
                .find_str("Host")
                .map(strip_port)
                .or_else(|| head.uri().host())
        };
        if let Some(host) = host {
            if !self.root.has_alias(host) {
                if let Some((_, v)) =
                    self.vhosts
                        .iter()
                        .find(|(_, v)| v.has_alias(host))
                        .or_else(|| {
                            self.vhosts
                                .iter()
                                .find(|(p, _)| util::host_matches(p, host))
                        })
                {
                    vhost = v;
                }
            }
        }
        let path = head.uri().path().unwrap_or("");
        if memchr::memchr(b'%', path.as_bytes()).is_none() {
            // Nothing to decode (the usual path): no copy.
            return vhost.route(Some(path));
        }
        let decoded = encode::uridecode(path, false);
        vhost.route(std::str::from_utf8(&decoded).ok())
    }

    /// Answers `code` with an error page and closes the connection once it went out.
    fn fail(&mut self, base: &mut EventBase, key: ConnKey, code: u16) {
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        let bev = conn.bev;
        let version = conn
            .request
            .as_ref()
            .map_or(Version::Http11, |r| r.version());
        conn.request = None;
        conn.decoder = None;
        // What is buffered of the refused input goes at once.
        if let Ok(input) = bev.input(base) {
            let n = input.len();
            let _ = input.drain(n);
        }
        let reason = util::reason(code);
        let body = util::error_page(code, reason);
        let date = self.date(base).to_string();
        let head = format!(
            "{version} {code} {reason}\r\nDate: {date}\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        if let Ok(out) = bev.output(base) {
            let _ = out.add(head.as_bytes());
            let _ = out.add(body.as_bytes());
        }
        self.stats.bytes += (head.len() + body.len()) as u64;
        self.begin_close(base, key);
    }

    /// The current request's reply ended (called by [`Request`]).
    pub(crate) fn finish(&mut self, base: &mut EventBase, handle: RequestHandle, close: bool) {
        let key = ConnKey {
            index: handle.index,
            generation: handle.generation,
        };
        let max_output = self.max_output;
        let dispatching = self.dispatching == Some(key.index);
        let weak = self.this.clone();
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        if conn.seq != handle.seq {
            return;
        }
        conn.seq = conn.seq.wrapping_add(1);
        conn.request = None;
        conn.route = None;
        let body_done = conn.decoder.is_none();
        if close || !body_done {
            self.begin_close(base, key);
            return;
        }
        conn.phase = Phase::Idle;
        let bev = conn.bev;
        let timer = conn.timer;
        let out = bev.output(base).map_or(0, |o| o.len());
        if out > max_output {
            // A client that does not read: read no further request until half went out.
            conn.throttled = true;
            install_write_cb(base, conn, &weak, key, max_output / 2);
        }
        let input_empty = conn_input_empty(base, bev);
        if input_empty && conn.peer_eof {
            self.begin_close(base, key);
        } else if input_empty {
            let idle = self.timeouts.idle;
            self.set_deadline(base, key, Deadline::Idle, idle);
        } else if !dispatching {
            // A pipelined request waits: read it from the loop, not inside this call.
            let _ = base.activate(timer, What::READ, 1);
        }
    }

    /// Stops reading requests; the output goes out, then the write side is shut; the
    /// connection is freed when the peer closes or [`LINGER`] after the output went out.
    fn begin_close(&mut self, base: &mut EventBase, key: ConnKey) {
        let weak = self.this.clone();
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        conn.phase = Phase::Closing;
        conn.request = None;
        conn.decoder = None;
        conn.route = None;
        conn.throttled = false;
        let bev = conn.bev;
        if let Ok(input) = bev.input(base) {
            let n = input.len();
            let _ = input.drain(n);
        }
        let _ = bev.flush(base, What::WRITE, FlushMode::Finished);
        let empty = bev.output(base).map_or(true, |o| o.is_empty());
        if empty {
            if conn.peer_eof {
                self.close_now(base, key);
            } else {
                self.set_deadline(base, key, Deadline::Linger, LINGER);
            }
        } else {
            install_write_cb(base, conn, &weak, key, 0);
            self.clear_deadline(key);
        }
    }

    /// Turns the connection of the request `handle` names into a WebSocket (the 101 was written).
    pub(crate) fn upgrade(
        &mut self,
        base: &mut EventBase,
        handle: RequestHandle,
        handler: Rc<RefCell<WsHandler>>,
        max_message: usize,
    ) -> revent::Result<WebSocket> {
        let key = ConnKey {
            index: handle.index,
            generation: handle.generation,
        };
        let dispatching = self.dispatching == Some(key.index);
        let ws = WebSocket {
            server: self.this.clone(),
            key,
        };
        let conn = self.conn_mut(key).ok_or(STALE)?;
        if conn.seq != handle.seq || conn.decoder.is_some() {
            return Err(STALE);
        }
        conn.seq = conn.seq.wrapping_add(1);
        conn.request = None;
        conn.route = None;
        conn.phase = Phase::WebSocket;
        conn.ws = Some(WsConn {
            handler,
            max_message,
            fragments: None,
            close_sent: false,
        });
        let (bev, timer) = (conn.bev, conn.timer);
        // A whole frame must fit in the input: the largest allowed, with its header.
        let _ = bev.set_watermark(base, What::READ, 0, max_message.saturating_add(4096));
        self.clear_deadline(key);
        if !dispatching && !conn_input_empty(base, bev) {
            let _ = base.activate(timer, What::READ, 1);
        }
        Ok(ws)
    }

    /// Sends a close frame (once); `initiated`: the server starts the handshake and waits a
    /// little for the client's answer, else the connection is closed after it.
    pub(crate) fn ws_close(
        &mut self,
        base: &mut EventBase,
        key: ConnKey,
        code: Option<u16>,
        reason: &[u8],
        initiated: bool,
    ) -> revent::Result<()> {
        let conn = self.conn_mut(key).ok_or(STALE)?;
        let ws = conn.ws.as_mut().ok_or(STALE)?;
        if !ws.close_sent {
            ws.close_sent = true;
            let mut payload = Vec::with_capacity(2 + reason.len());
            if let Some(c) = code {
                payload.extend_from_slice(&c.to_be_bytes());
                payload.extend_from_slice(reason);
            }
            let bev = conn.bev;
            let n = websocket::write_frame(bev.output(base)?, websocket::OP_CLOSE, &payload)?;
            self.stats.bytes += n as u64;
        }
        if initiated {
            self.set_deadline(base, key, Deadline::Linger, LINGER);
        } else {
            self.begin_close(base, key);
        }
        Ok(())
    }

    /// Reads one WebSocket frame.
    fn ws_step(&mut self, base: &mut EventBase, key: ConnKey) -> Step {
        let this = self.this.clone();
        let Some(conn) = self.conn_mut(key) else {
            return Step::Stop;
        };
        let bev = conn.bev;
        let Some(ws) = conn.ws.as_mut() else {
            return Step::Stop;
        };
        let Ok(input) = bev.input(base) else {
            return Step::Stop;
        };
        let fragmented = ws.fragments.as_ref().map_or(0, |f| f.1.len());
        let (fin, op, payload) = match websocket::read_frame(input, ws.max_message, fragmented) {
            Frame::Partial => return Step::Stop,
            Frame::Violation(code) => {
                let _ = self.ws_close(base, key, Some(code), b"", false);
                return Step::Stop;
            }
            Frame::Whole(fin, op, payload) => (fin, op, payload),
        };
        let handler = ws.handler.clone();
        let handle = WebSocket { server: this, key };
        if ws.close_sent && op != websocket::OP_CLOSE {
            // After our close, data is no longer taken (§5.5.1).
            return Step::Continue;
        }
        let message = match op {
            websocket::OP_PING => {
                if let Ok(out) = bev.output(base) {
                    if let Ok(n) = websocket::write_frame(out, websocket::OP_PONG, &payload) {
                        self.stats.bytes += n as u64;
                    }
                }
                return Step::Continue;
            }
            websocket::OP_PONG => Message::Pong(payload),
            websocket::OP_CLOSE => {
                let (code, reason) = match payload.len() {
                    0 => (None, String::new()),
                    1 => return self.ws_violation(base, key, 1002),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if !websocket::valid_close_code(code) {
                            return self.ws_violation(base, key, 1002);
                        }
                        match String::from_utf8(payload[2..].to_vec()) {
                            Ok(r) => (Some(code), r),
                            Err(_) => return self.ws_violation(base, key, 1007),
                        }
                    }
                };
                // Answer with the same code (§5.5.1), then shut the connection.
                let _ = self.ws_close(base, key, code, b"", false);
                return Step::Ws(handler, handle, Message::Close { code, reason });
            }
            websocket::OP_TEXT | websocket::OP_BINARY => {
                if ws.fragments.is_some() {
                    return self.ws_violation(base, key, 1002);
                }
                if !fin {
                    ws.fragments = Some((op, payload));
                    return Step::Continue;
                }
                match data_message(op, payload) {
                    Some(m) => m,
                    None => return self.ws_violation(base, key, 1007),
                }
            }
            _ => {
                // A continuation.
                let Some((first, mut buf)) = ws.fragments.take() else {
                    return self.ws_violation(base, key, 1002);
                };
                buf.extend_from_slice(&payload);
                if !fin {
                    ws.fragments = Some((first, buf));
                    return Step::Continue;
                }
                match data_message(first, buf) {
                    Some(m) => m,
                    None => return self.ws_violation(base, key, 1007),
                }
            }
        };
        Step::Ws(handler, handle, message)
    }

    fn ws_violation(&mut self, base: &mut EventBase, key: ConnKey, code: u16) -> Step {
        let _ = self.ws_close(base, key, Some(code), b"", false);
        Step::Stop
    }

    /// Frees the connection now.
    fn close_now(&mut self, base: &mut EventBase, key: ConnKey) {
        let Some(slot) = self.slots.get_mut(key.index as usize) else {
            return;
        };
        if slot.generation != key.generation {
            return;
        }
        let Some(conn) = slot.conn.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.stats.open -= 1;
        match self.bev_release.as_mut() {
            Some(release) if conn.made_by_cb => release(base, conn.bev),
            _ => drop(conn.bev.free(base)),
        }
        let _ = base.free(conn.timer);
        if !conn.on_close.is_empty() {
            // From the loop: this runs with the server borrowed, often inside an API call.
            let cbs = conn.on_close;
            let _ = base.once(-1, What::empty(), None, move |base, _| {
                for f in cbs {
                    f(base);
                }
            });
        }
    }
}

fn install_write_cb(
    base: &mut EventBase,
    conn: &mut Conn,
    weak: &Weak<RefCell<Inner>>,
    key: ConnKey,
    low: usize,
) {
    let _ = conn.bev.set_watermark(base, What::WRITE, low, 0);
    if !conn.write_cb {
        conn.write_cb = true;
        let weak = weak.clone();
        let _ = conn.bev.set_write_cb(base, move |base, _| {
            if let Some(inner) = weak.upgrade() {
                on_write(base, &inner, key);
            }
        });
    }
}

/// A whole text or binary message; `None` for text that is not UTF-8.
fn data_message(op: u8, payload: Vec<u8>) -> Option<Message> {
    if op == websocket::OP_TEXT {
        String::from_utf8(payload).ok().map(Message::Text)
    } else {
        Some(Message::Binary(payload))
    }
}

fn conn_input_empty(base: &mut EventBase, bev: BufferEvent) -> bool {
    bev.input(base).map_or(true, |i| i.is_empty())
}

fn content_type_line(value: &str) -> String {
    format!("Content-Type: {value}\r\n")
}

/// The host of a `Host` value, without the port (`[v6]:port`, `name:port`).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rfind(':') {
        Some(i) => &host[..i],
        None => host,
    }
}
