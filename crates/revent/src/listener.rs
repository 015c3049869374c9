//! `Listener`: accepting connections on a listening socket (libevent's `evconnlistener`).
//!
//! A listener lives in its base like an event or a bufferevent: the user holds a `Copy` handle, and
//! the listener stays (accepting) until [`Listener::free`] or until the base is dropped. Losing the
//! handle cannot leave a half-dead listener behind.
//!
//! Each wake-up of the listening socket accepts several connections (accept4, non-blocking and
//! close-on-exec unless told otherwise). When accepting fails for lack of fds or memory (EMFILE,
//! ENFILE, ENOBUFS, ENOMEM) the error callback runs and accepting pauses for a moment before it
//! resumes, so a full fd table does not spin the CPU; the condition is logged once per streak of
//! failures, not at every retry.
//!
//! On an io_uring base that does completion-based I/O (the default there), the listener keeps a
//! multishot accept on the ring instead: the kernel accepts connections as they come and the
//! loop hands them over, with no `accept4` calls and no readiness round trip. The peer address,
//! which a multishot accept cannot return, is read with `getpeername`; sockets accepted while
//! the listener was being disabled are kept and handed over when it is enabled again, never
//! dropped.

use crate::backend::uring::{Op, OpSlot};
use crate::base::{Core, EventBase, Layer};
use crate::error::{Error, Handle, Result};
use crate::event::{EventId, What};
use crate::flags::flags;
use crate::slab::{Key, Slab};
use crate::sys;
use crate::sys::uring;
use socket2::{Domain, SockAddr, Socket, Type};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connections accepted per wake-up at most, so that one busy listener does not starve the loop.
const ACCEPTS_PER_WAKEUP: usize = 32;
/// How long accepting pauses after running out of fds or memory.
pub const PAUSE_ON_RESOURCE_ERROR: Duration = Duration::from_millis(100);

flags! {
    /// Options of a listener (libevent's `LEV_OPT_*`, same values).
    ///
    /// ```
    /// use revent::ListenerOptions;
    /// let o = ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_EXEC;
    /// assert!(o.contains(ListenerOptions::REUSEABLE));
    /// ```
    ListenerOptions: u32 {
        /// Leave accepted sockets blocking.
        const LEAVE_SOCKETS_BLOCKING = 0x01;
        /// Close the listening socket when the listener is freed (always the case for `bind`).
        const CLOSE_ON_FREE = 0x02;
        /// Close-on-exec for the listening and the accepted sockets.
        const CLOSE_ON_EXEC = 0x04;
        /// `SO_REUSEADDR` on the listening socket.
        const REUSEABLE = 0x08;
        /// Accepted for compatibility; a listener lives on its base's thread.
        const THREADSAFE = 0x10;
        /// Start disabled; call [`Listener::enable`].
        const DISABLED = 0x20;
        /// Accepted for compatibility (TCP_DEFER_ACCEPT is not set).
        const DEFERRED_ACCEPT = 0x40;
        /// `SO_REUSEPORT` on the listening socket, to share a port between several bases.
        const REUSEABLE_PORT = 0x80;
        /// `IPV6_V6ONLY` on an IPv6 listening socket.
        const BIND_IPV6ONLY = 0x100;
    }
}

/// Who connected: the peer address of an accepted connection.
///
/// ```
/// use revent::PeerAddr;
/// let p = PeerAddr::Inet("127.0.0.1:80".parse().unwrap());
/// assert_eq!(p.to_string(), "127.0.0.1:80");
/// assert_eq!(PeerAddr::Unix(None).to_string(), "unix:(unnamed)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// An IPv4 or IPv6 peer.
    Inet(SocketAddr),
    /// A Unix-domain peer: its path, or `None` when it is unnamed (the usual case for a client) or
    /// abstract.
    Unix(Option<PathBuf>),
    /// Another address family, by number.
    Other(i32),
}

impl PeerAddr {
    fn from_sockaddr(a: &SockAddr) -> PeerAddr {
        if let Some(s) = a.as_socket() {
            PeerAddr::Inet(s)
        } else if a.is_unix() {
            PeerAddr::Unix(a.as_pathname().map(Path::to_path_buf))
        } else {
            PeerAddr::Other(a.family() as i32)
        }
    }

    /// The IP address and port, for an `Inet` peer.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Inet(a) => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Inet(a) => write!(f, "{a}"),
            PeerAddr::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            PeerAddr::Unix(None) => f.write_str("unix:(unnamed)"),
            PeerAddr::Other(fam) => write!(f, "family {fam}"),
        }
    }
}

/// An accept callback: the base, the new connection and its peer.
///
/// ```
/// use revent::{AcceptCb, AcceptErrorCb};
/// let on_accept: Box<AcceptCb> = Box::new(|_base, conn, peer| {
///     println!("{peer} connected");
///     drop(conn);
/// });
/// let on_error: Box<AcceptErrorCb> = Box::new(|_base, e| eprintln!("accept: {e}"));
/// # drop((on_accept, on_error));
/// ```
pub type AcceptCb = dyn FnMut(&mut EventBase, OwnedFd, PeerAddr);
/// An accept-error callback (see [`AcceptCb`] for an example).
pub type AcceptErrorCb = dyn FnMut(&mut EventBase, &io::Error);

struct State {
    fd: RawFd,
    /// The socket; taken out by `free` (closed, or handed back without CLOSE_ON_FREE).
    socket: Option<OwnedFd>,
    /// CLOSE_ON_FREE: the listener closes the socket; otherwise its owner gets it back.
    owned: bool,
    /// The user's wish; a pause for resource errors does not change it.
    enabled: bool,
    /// In a streak of resource errors (logged once per streak).
    starved: bool,
    nonblocking: bool,
    cloexec: bool,
    accept_ev: EventId,
    resume_ev: EventId,
    on_accept: Option<Box<AcceptCb>>,
    on_error: Option<Box<AcceptErrorCb>>,
    /// The multishot accept on an io_uring base (see the module docs).
    ring: Option<RingAccept>,
}

struct RingAccept {
    slot: OpSlot,
    /// Completions land here.
    io_ev: EventId,
    armed: bool,
    /// Accepting paused after a resource error (the resume timer re-arms).
    paused: bool,
    /// Sockets accepted and not yet handed over.
    held: VecDeque<OwnedFd>,
}

/// Every listener of one base: the listener layer's state in the base.
#[derive(Default)]
pub(crate) struct Store {
    listeners: Slab<State>,
}

impl Layer for Store {
    const SLOT: usize = 1;
}

impl Drop for State {
    fn drop(&mut self) {
        // Dropped with the base: a socket the listener does not own stays open for its owner, as
        // libevent leaves it (nobody can take it back now).
        if !self.owned {
            if let Some(fd) = self.socket.take() {
                let _ = fd.into_raw_fd();
            }
        }
    }
}

/// A listening socket that hands accepted connections to a callback. The listener lives in its
/// base until [`free`](Self::free)d (or the base is dropped); the handle is `Copy`.
///
/// ```
/// use revent::{EventBase, Listener, ListenerOptions};
/// use std::net::TcpStream;
/// let mut base = EventBase::new().unwrap();
/// let listener = Listener::bind(
///     &mut base,
///     "127.0.0.1:0".parse().unwrap(),
///     ListenerOptions::REUSEABLE,
///     -1,
///     |base, conn, peer| {
///         println!("connection from {peer}");
///         drop(conn);
///         base.loopbreak();
///     },
/// )
/// .unwrap();
/// let _client = TcpStream::connect(listener.local_addr(&base).unwrap()).unwrap();
/// base.dispatch().unwrap();
/// listener.free(&mut base).unwrap();
/// ```
#[must_use = "a listener accepts until freed; keep its handle to free or disable it"]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listener {
    index: u32,
    generation: u32,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Listener({}v{})", self.index, self.generation)
    }
}

const STALE: Error = Error::Stale(Handle::Listener);

impl Listener {
    fn key(self) -> Key {
        Key {
            index: self.index,
            generation: self.generation,
        }
    }

    /// Creates a socket, binds it to `addr`, listens with `backlog` (a negative or zero backlog means
    /// a sensible default), and accepts connections with `on_accept`.
    pub fn bind<F>(
        base: &mut EventBase,
        addr: SocketAddr,
        options: ListenerOptions,
        backlog: i32,
        on_accept: F,
    ) -> Result<Listener>
    where
        F: FnMut(&mut EventBase, OwnedFd, PeerAddr) + 'static,
    {
        let v6only = addr.is_ipv6() && options.contains(ListenerOptions::BIND_IPV6ONLY);
        let domain = Domain::for_address(addr);
        Listener::bind_addr(
            base,
            domain,
            &addr.into(),
            v6only,
            options,
            backlog,
            Box::new(on_accept),
        )
    }

    /// Creates a Unix-domain stream socket bound to `path` (which must not exist yet) and accepts
    /// connections on it. The socket is closed on free; the path is left for the caller to remove.
    pub fn bind_unix<F>(
        base: &mut EventBase,
        path: impl AsRef<Path>,
        options: ListenerOptions,
        backlog: i32,
        on_accept: F,
    ) -> Result<Listener>
    where
        F: FnMut(&mut EventBase, OwnedFd, PeerAddr) + 'static,
    {
        let addr = SockAddr::unix(path)?;
        Listener::bind_addr(
            base,
            Domain::UNIX,
            &addr,
            false,
            options,
            backlog,
            Box::new(on_accept),
        )
    }

    /// A new socket of `domain` bound to `addr`, listening, accepting (closed on free).
    fn bind_addr(
        base: &mut EventBase,
        domain: Domain,
        addr: &SockAddr,
        v6only: bool,
        options: ListenerOptions,
        backlog: i32,
        on_accept: Box<AcceptCb>,
    ) -> Result<Listener> {
        let socket = Socket::new(domain, Type::STREAM, None)?;
        prepare(&socket2::SockRef::from(&socket), options)?;
        if v6only {
            socket.set_only_v6(true)?;
        }
        socket.bind(addr)?;
        socket.listen(default_backlog(backlog))?;
        Listener::build(
            base,
            OwnedFd::from(socket),
            options | ListenerOptions::CLOSE_ON_FREE,
            on_accept,
        )
    }

    /// Accepts on an existing socket (TCP or Unix-domain). `backlog` > 0 calls `listen` with it, 0
    /// with a default, and a negative one leaves the socket as it is (already listening). Without
    /// CLOSE_ON_FREE, [`free`](Self::free) hands the socket back instead of closing it.
    pub fn from_fd<F>(
        base: &mut EventBase,
        fd: OwnedFd,
        options: ListenerOptions,
        backlog: i32,
        on_accept: F,
    ) -> Result<Listener>
    where
        F: FnMut(&mut EventBase, OwnedFd, PeerAddr) + 'static,
    {
        let sock = socket2::SockRef::from(&fd);
        prepare(&sock, options)?;
        if backlog >= 0 {
            sock.listen(default_backlog(backlog))?;
        }
        Listener::build(base, fd, options, Box::new(on_accept))
    }

    fn build(
        base: &mut EventBase,
        fd: OwnedFd,
        options: ListenerOptions,
        on_accept: Box<AcceptCb>,
    ) -> Result<Listener> {
        let raw = fd.as_raw_fd();
        if options.contains(ListenerOptions::CLOSE_ON_EXEC) {
            sys::set_cloexec(raw)?;
        }
        // The handle is known before the events exist: the slot is reserved first. On a failure
        // below, the socket is closed with the state (the caller handed it over).
        let (core, st) = base.split::<Store>();
        let next = st.listeners.insert(State {
            fd: raw,
            socket: Some(fd),
            owned: true,
            enabled: false,
            starved: false,
            nonblocking: !options.contains(ListenerOptions::LEAVE_SOCKETS_BLOCKING),
            cloexec: options.contains(ListenerOptions::CLOSE_ON_EXEC),
            accept_ev: EventId::from_raw(0),
            resume_ev: EventId::from_raw(0),
            on_accept: Some(on_accept),
            on_error: None,
            ring: None,
        });
        let l = Listener {
            index: next.index,
            generation: next.generation,
        };
        let accept_ev = match core.new_event(raw, What::READ | What::PERSIST, move |base, _| {
            accept_some(base, l)
        }) {
            Ok(ev) => ev,
            Err(e) => {
                drop(st.listeners.remove(next));
                return Err(e);
            }
        };
        let resume_ev = core.new_timer(move |base, _| resume(base, l));
        let ring = if core.ring().is_some() {
            let io_ev =
                core.new_internal(-1, What::PERSIST, move |base, _| ring_accepted(base, l))?;
            core.ring().map(|r| RingAccept {
                slot: r.op_slot(io_ev),
                io_ev,
                armed: false,
                paused: false,
                held: VecDeque::new(),
            })
        } else {
            None
        };
        let state = st.listeners.get_mut(next).expect("just inserted");
        state.ring = ring;
        state.accept_ev = accept_ev;
        state.resume_ev = resume_ev;
        state.owned = options.contains(ListenerOptions::CLOSE_ON_FREE);
        if !options.contains(ListenerOptions::DISABLED) {
            if let Err(e) = l.enable(base) {
                let _ = l.free(base);
                return Err(e);
            }
        }
        Ok(l)
    }

    fn state(self, base: &EventBase) -> Result<&State> {
        base.layer::<Store>()
            .and_then(|st| st.listeners.get(self.key()))
            .ok_or(STALE)
    }

    /// Sets the callback for accept errors (libevent's `evconnlistener_set_error_cb`). It runs for
    /// every failed accept; resource errors (EMFILE and the like) also pause accepting for
    /// [`PAUSE_ON_RESOURCE_ERROR`].
    pub fn set_error_cb<F>(self, base: &mut EventBase, cb: F) -> Result<()>
    where
        F: FnMut(&mut EventBase, &io::Error) + 'static,
    {
        state_mut(base, self)?.on_error = Some(Box::new(cb));
        Ok(())
    }

    /// Replaces the accept callback (libevent's `evconnlistener_set_cb`).
    pub fn set_accept_cb<F>(self, base: &mut EventBase, cb: F) -> Result<()>
    where
        F: FnMut(&mut EventBase, OwnedFd, PeerAddr) + 'static,
    {
        state_mut(base, self)?.on_accept = Some(Box::new(cb));
        Ok(())
    }

    /// Starts (or resumes) accepting.
    pub fn enable(self, base: &mut EventBase) -> Result<()> {
        let (core, st) = base.split::<Store>();
        let s = st.listeners.get_mut(self.key()).ok_or(STALE)?;
        s.enabled = true;
        if s.ring.is_some() {
            arm_ring(core, s)?;
            if let Some(r) = &s.ring {
                if !r.held.is_empty() {
                    // Sockets kept while disabled: handed over from the loop.
                    core.activate(r.io_ev, What::READ, 1)?;
                }
            }
            return Ok(());
        }
        core.add(s.accept_ev, None)?;
        Ok(())
    }

    /// Stops accepting; connections wait in the kernel's backlog.
    pub fn disable(self, base: &mut EventBase) -> Result<()> {
        let (core, st) = base.split::<Store>();
        let s = st.listeners.get_mut(self.key()).ok_or(STALE)?;
        s.enabled = false;
        if let Some(r) = &mut s.ring {
            if r.armed {
                // Its last completion still comes; sockets it brings are kept for enable.
                r.armed = false;
                if let Some(ring) = core.ring() {
                    ring.cancel(r.slot, Op::Accept);
                }
            }
        }
        core.del(s.accept_ev)?;
        core.del(s.resume_ev)?;
        Ok(())
    }

    /// Frees the listener's events and, with CLOSE_ON_FREE (always for [`bind`](Self::bind)), closes
    /// the socket; without it, hands the socket back. The handle becomes stale.
    pub fn free(self, base: &mut EventBase) -> Result<Option<OwnedFd>> {
        let (core, st) = base.split::<Store>();
        let mut s = st.listeners.remove(self.key()).ok_or(STALE)?;
        let _ = core.free(s.accept_ev);
        let _ = core.free(s.resume_ev);
        if let Some(r) = s.ring.take() {
            // Cancelled at once, before the socket closes; sockets not handed over close.
            if let Some(ring) = core.ring() {
                ring.op_release(r.slot);
            }
            let _ = core.free(r.io_ev);
        }
        let socket = s.socket.take();
        let owned = s.owned;
        // The callbacks drop here, outside any borrow of the store.
        drop(s);
        Ok(if owned { None } else { socket })
    }

    /// The listening socket's fd.
    pub fn fd(self, base: &EventBase) -> Result<RawFd> {
        Ok(self.state(base)?.fd)
    }

    /// The address the socket is bound to (useful after binding port 0).
    pub fn local_addr(self, base: &EventBase) -> Result<SocketAddr> {
        let addr = sys::local_addr(self.state(base)?.fd)?;
        addr.as_socket()
            .ok_or(Error::InvalidArgument("not an IP socket"))
    }
}

fn state_mut(base: &mut EventBase, l: Listener) -> Result<&mut State> {
    base.split::<Store>()
        .1
        .listeners
        .get_mut(l.key())
        .ok_or(STALE)
}

/// Non-blocking, and the reuse options asked for.
fn prepare(sock: &socket2::SockRef<'_>, options: ListenerOptions) -> Result<()> {
    sock.set_nonblocking(true)?;
    if options.contains(ListenerOptions::REUSEABLE) {
        sock.set_reuse_address(true)?;
    }
    if options.contains(ListenerOptions::REUSEABLE_PORT) {
        sock.set_reuse_port(true)?;
    }
    Ok(())
}

/// libevent's rule: a backlog of 0 or less means "a sensible default".
fn default_backlog(backlog: i32) -> i32 {
    if backlog > 0 {
        backlog
    } else {
        1024
    }
}

/// The listening socket is readable: accept up to a batch of connections.
fn accept_some(base: &mut EventBase, l: Listener) {
    for _ in 0..ACCEPTS_PER_WAKEUP {
        let Ok(s) = state_mut(base, l) else { return };
        if !s.enabled {
            return;
        }
        match sys::accept(s.fd, s.nonblocking, s.cloexec) {
            Ok((conn, addr)) => {
                if s.starved {
                    s.starved = false;
                    log::info!("listener on fd {}: accepting again", s.fd);
                }
                let Some(mut cb) = s.on_accept.take() else {
                    continue;
                };
                let r = catch_unwind(AssertUnwindSafe(|| {
                    cb(base, conn, PeerAddr::from_sockaddr(&addr))
                }));
                if let Ok(s) = state_mut(base, l) {
                    if s.on_accept.is_none() {
                        s.on_accept = Some(cb);
                    }
                }
                if let Err(payload) = r {
                    resume_unwind(payload);
                }
            }
            Err(e) => {
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        if !s.starved {
                            s.starved = true;
                            log::warn!(
                                "listener on fd {}: accept: {e}; pausing {} ms at a time until it succeeds",
                                s.fd,
                                PAUSE_ON_RESOURCE_ERROR.as_millis()
                            );
                        }
                        pause(base, l);
                    }
                    _ => log::debug!("listener on fd {}: accept: {e}", s.fd),
                }
                report(base, l, &e);
                return;
            }
        }
    }
}

fn pause(base: &mut EventBase, l: Listener) {
    let (core, st) = base.split::<Store>();
    if let Some(s) = st.listeners.get_mut(l.key()) {
        if let Some(r) = &mut s.ring {
            r.paused = true;
        }
        let _ = core.del(s.accept_ev);
        let _ = core.add(s.resume_ev, Some(PAUSE_ON_RESOURCE_ERROR));
    }
}

fn resume(base: &mut EventBase, l: Listener) {
    let (core, st) = base.split::<Store>();
    if let Some(s) = st.listeners.get_mut(l.key()) {
        if let Some(r) = &mut s.ring {
            r.paused = false;
            if s.enabled {
                let _ = arm_ring(core, s);
            }
            return;
        }
        if s.enabled {
            let _ = core.add(s.accept_ev, None);
        }
    }
}

/// Submits the multishot accept if none is in flight (with the next wait).
fn arm_ring(core: &mut Core, s: &mut State) -> Result<()> {
    let (fd, nonblocking, cloexec) = (s.fd, s.nonblocking, s.cloexec);
    let Some(r) = &mut s.ring else { return Ok(()) };
    if r.armed || r.paused {
        return Ok(());
    }
    let mut flags = 0;
    if nonblocking {
        flags |= libc::SOCK_NONBLOCK;
    }
    if cloexec {
        flags |= libc::SOCK_CLOEXEC;
    }
    if let Some(ring) = core.ring() {
        ring.accept(r.slot, fd, flags)?;
        r.armed = true;
    }
    Ok(())
}

/// Completions of the multishot accept: sockets to hand over, or errors.
fn ring_accepted(base: &mut EventBase, l: Listener) {
    let (core, st) = base.split::<Store>();
    let Some(s) = st.listeners.get_mut(l.key()) else {
        return;
    };
    let Some(r) = &mut s.ring else { return };
    let slot = r.slot;
    let Some(ring) = core.ring() else { return };
    let dones = ring.take(slot);
    let mut error = None;
    for d in &dones {
        if !d.more {
            r.armed = false;
        }
        match uring::accepted_fd(d.res) {
            Some(fd) => r.held.push_back(fd),
            None if d.res == -libc::ECANCELED => {}
            None => error = Some(io::Error::from_raw_os_error(-d.res)),
        }
    }
    ring.give_back(slot, dones);
    if let Some(e) = &error {
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                if !s.starved {
                    s.starved = true;
                    log::warn!(
                        "listener on fd {}: accept: {e}; pausing {} ms at a time until it succeeds",
                        s.fd,
                        PAUSE_ON_RESOURCE_ERROR.as_millis()
                    );
                }
                pause(base, l);
            }
            _ => log::debug!("listener on fd {l:?}: accept: {e}"),
        }
    }
    // Hand the sockets over while the listener stays enabled (a callback may disable or free it).
    loop {
        let Ok(s) = state_mut(base, l) else { return };
        if !s.enabled {
            break;
        }
        let Some(conn) = s.ring.as_mut().and_then(|r| r.held.pop_front()) else {
            break;
        };
        if s.starved {
            s.starved = false;
            log::info!("listener on fd {}: accepting again", s.fd);
        }
        let Some(mut cb) = s.on_accept.take() else {
            continue;
        };
        // A peer gone before we ask (the connection reset) has no address left to read.
        let peer = socket2::SockRef::from(&conn)
            .peer_addr()
            .map_or(PeerAddr::Other(libc::AF_UNSPEC), |a| {
                PeerAddr::from_sockaddr(&a)
            });
        let r = catch_unwind(AssertUnwindSafe(|| cb(base, conn, peer)));
        if let Ok(s) = state_mut(base, l) {
            if s.on_accept.is_none() {
                s.on_accept = Some(cb);
            }
        }
        if let Err(payload) = r {
            resume_unwind(payload);
        }
    }
    if let Some(e) = &error {
        report(base, l, e);
    }
    // A multishot accept that ended (the kernel may end one at any time) goes on.
    let (core, st) = base.split::<Store>();
    if let Some(s) = st.listeners.get_mut(l.key()) {
        if s.enabled {
            let _ = arm_ring(core, s);
        }
    }
}

fn report(base: &mut EventBase, l: Listener, e: &io::Error) {
    // Taken out while it runs, so the callback may replace itself or free the listener.
    let Some(mut cb) = state_mut(base, l).ok().and_then(|s| s.on_error.take()) else {
        return;
    };
    let r = catch_unwind(AssertUnwindSafe(|| cb(base, e)));
    if let Ok(s) = state_mut(base, l) {
        if s.on_error.is_none() {
            s.on_error = Some(cb);
        }
    }
    if let Err(payload) = r {
        resume_unwind(payload);
    }
}
