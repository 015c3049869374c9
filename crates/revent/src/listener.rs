//! `Listener`: accepting connections on a listening socket (libevent's `evconnlistener`).
//!
//! The listener is a persistent read event on the listening socket. Each wake-up accepts several
//! connections (accept4, non-blocking and close-on-exec unless told otherwise). When accepting fails
//! for lack of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the error callback runs and accepting
//! pauses for a moment before it resumes, so a full fd table does not spin the CPU.

use crate::base::EventBase;
use crate::error::{Error, Result};
use crate::event::{EventId, What};
use crate::flags::flag_set;
use crate::sys;
use socket2::{Domain, Socket, Type};
use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

/// Connections accepted per wake-up at most, so that one busy listener does not starve the loop.
const ACCEPTS_PER_WAKEUP: usize = 32;
/// How long accepting pauses after running out of fds or memory.
pub const PAUSE_ON_RESOURCE_ERROR: Duration = Duration::from_millis(100);

flag_set! {
    /// Options of a listener (libevent's `LEV_OPT_*`, same values).
    ListenerOptions {
        /// Leave accepted sockets blocking.
        LEAVE_SOCKETS_BLOCKING = 0x01,
        /// Close the listening socket when the listener is freed (always the case for `bind`).
        CLOSE_ON_FREE = 0x02,
        /// Close-on-exec for the listening and the accepted sockets.
        CLOSE_ON_EXEC = 0x04,
        /// `SO_REUSEADDR` on the listening socket.
        REUSEABLE = 0x08,
        /// Accepted for compatibility; revent bases are single-threaded.
        THREADSAFE = 0x10,
        /// Start disabled; call [`Listener::enable`].
        DISABLED = 0x20,
        /// Accepted for compatibility (TCP_DEFER_ACCEPT is not set).
        DEFERRED_ACCEPT = 0x40,
        /// `SO_REUSEPORT` on the listening socket, to share a port between several bases.
        REUSEABLE_PORT = 0x80,
        /// `IPV6_V6ONLY` on an IPv6 listening socket.
        BIND_IPV6ONLY = 0x100,
    }
}

type ErrorCb = dyn FnMut(&mut EventBase, &io::Error);

struct Shared {
    fd: RawFd,
    /// The user's wish; a pause for resource errors does not change it.
    enabled: Cell<bool>,
    accept_ev: Cell<Option<EventId>>,
    resume_ev: Cell<Option<EventId>>,
    on_error: RefCell<Option<Box<ErrorCb>>>,
    /// Keeps the socket open while the listener lives (closed on free when owned).
    socket: RefCell<Option<OwnedFd>>,
}

/// A listening socket that hands accepted connections to a callback.
///
/// ```no_run
/// use revent::{EventBase, Listener, ListenerOptions};
/// let mut base = EventBase::new().unwrap();
/// let listener = Listener::bind(
///     &mut base,
///     "127.0.0.1:0".parse().unwrap(),
///     ListenerOptions::REUSEABLE,
///     -1,
///     |_base, conn, peer| println!("connection from {peer}: {conn:?}"),
/// )
/// .unwrap();
/// println!("listening on {}", listener.local_addr().unwrap());
/// base.dispatch().unwrap();
/// ```
#[derive(Clone)]
pub struct Listener {
    shared: Rc<Shared>,
}

impl Listener {
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
        F: FnMut(&mut EventBase, OwnedFd, SocketAddr) + 'static,
    {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        prepare(&socket2::SockRef::from(&socket), options)?;
        if addr.is_ipv6() && options.contains(ListenerOptions::BIND_IPV6ONLY) {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(default_backlog(backlog))?;
        Listener::build(
            base,
            OwnedFd::from(socket),
            options | ListenerOptions::CLOSE_ON_FREE,
            on_accept,
        )
    }

    /// Accepts on an existing socket. `backlog` > 0 calls `listen` with it, 0 with a default, and a
    /// negative one leaves the socket as it is (already listening). Without CLOSE_ON_FREE the socket
    /// is left open when the listener is freed.
    pub fn from_fd<F>(
        base: &mut EventBase,
        fd: OwnedFd,
        options: ListenerOptions,
        backlog: i32,
        on_accept: F,
    ) -> Result<Listener>
    where
        F: FnMut(&mut EventBase, OwnedFd, SocketAddr) + 'static,
    {
        let sock = socket2::SockRef::from(&fd);
        prepare(&sock, options)?;
        if backlog >= 0 {
            sock.listen(default_backlog(backlog))?;
        }
        Listener::build(base, fd, options, on_accept)
    }

    fn build<F>(
        base: &mut EventBase,
        fd: OwnedFd,
        options: ListenerOptions,
        mut on_accept: F,
    ) -> Result<Listener>
    where
        F: FnMut(&mut EventBase, OwnedFd, SocketAddr) + 'static,
    {
        if options.contains(ListenerOptions::CLOSE_ON_EXEC) {
            sys::set_cloexec(fd.as_raw_fd())?;
        }
        let shared = Rc::new(Shared {
            fd: fd.as_raw_fd(),
            enabled: Cell::new(false),
            accept_ev: Cell::new(None),
            resume_ev: Cell::new(None),
            on_error: RefCell::new(None),
            socket: RefCell::new(Some(fd)),
        });
        if !options.contains(ListenerOptions::CLOSE_ON_FREE) {
            // The caller keeps ownership of the socket's life: never close it.
            let owned = shared.socket.borrow_mut().take();
            if let Some(owned) = owned {
                let _ = owned.into_raw_fd();
            }
        }
        let nonblocking = !options.contains(ListenerOptions::LEAVE_SOCKETS_BLOCKING);
        let cloexec = options.contains(ListenerOptions::CLOSE_ON_EXEC);
        let weak = Rc::downgrade(&shared);
        let accept_ev = base.new_event(shared.fd, What::READ | What::PERSIST, move |base, f| {
            let Some(shared) = weak.upgrade() else { return };
            for _ in 0..ACCEPTS_PER_WAKEUP {
                match sys::accept(shared.fd, nonblocking, cloexec) {
                    Ok((conn, addr)) => {
                        let Some(peer) = addr.as_socket() else {
                            continue;
                        };
                        on_accept(base, conn, peer);
                        // The callback may have freed or disabled the listener.
                        if base.event_info(f.id).is_err() || !shared.enabled.get() {
                            return;
                        }
                    }
                    Err(e) => match e.raw_os_error() {
                        Some(libc::EAGAIN) => return,
                        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                            pause(base, &shared);
                            report(base, &shared, &e);
                            return;
                        }
                        _ => {
                            report(base, &shared, &e);
                            return;
                        }
                    },
                }
            }
        })?;
        shared.accept_ev.set(Some(accept_ev));
        let weak = Rc::downgrade(&shared);
        let resume_ev = base.new_timer(move |base, _| {
            if let Some(shared) = weak.upgrade() {
                if shared.enabled.get() {
                    if let Some(ev) = shared.accept_ev.get() {
                        let _ = base.add(ev, None);
                    }
                }
            }
        });
        shared.resume_ev.set(Some(resume_ev));
        let listener = Listener { shared };
        if !options.contains(ListenerOptions::DISABLED) {
            listener.enable(base)?;
        }
        Ok(listener)
    }

    /// Sets the callback for accept errors (libevent's `evconnlistener_set_error_cb`).
    pub fn set_error_cb<F>(&self, cb: F)
    where
        F: FnMut(&mut EventBase, &io::Error) + 'static,
    {
        *self.shared.on_error.borrow_mut() = Some(Box::new(cb));
    }

    /// Starts (or resumes) accepting.
    pub fn enable(&self, base: &mut EventBase) -> Result<()> {
        let ev = self.shared.accept_ev.get().ok_or(Error::StaleEvent)?;
        base.add(ev, None)?;
        self.shared.enabled.set(true);
        Ok(())
    }

    /// Stops accepting; connections wait in the kernel's backlog.
    pub fn disable(&self, base: &mut EventBase) -> Result<()> {
        let ev = self.shared.accept_ev.get().ok_or(Error::StaleEvent)?;
        self.shared.enabled.set(false);
        base.del(ev)?;
        if let Some(r) = self.shared.resume_ev.get() {
            base.del(r)?;
        }
        Ok(())
    }

    /// Frees the listener's events and, with CLOSE_ON_FREE (always for [`bind`](Self::bind)), closes
    /// the socket.
    pub fn free(self, base: &mut EventBase) -> Result<()> {
        self.shared.enabled.set(false);
        for ev in [self.shared.accept_ev.take(), self.shared.resume_ev.take()]
            .into_iter()
            .flatten()
        {
            base.free(ev)?;
        }
        self.shared.socket.borrow_mut().take();
        Ok(())
    }

    /// The listening socket's fd.
    pub fn fd(&self) -> RawFd {
        self.shared.fd
    }

    /// The address the socket is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.shared.fd)?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
    }
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

fn pause(base: &mut EventBase, shared: &Shared) {
    if let Some(ev) = shared.accept_ev.get() {
        let _ = base.del(ev);
    }
    if let Some(r) = shared.resume_ev.get() {
        let _ = base.add(r, Some(PAUSE_ON_RESOURCE_ERROR));
    }
}

fn report(base: &mut EventBase, shared: &Shared, e: &io::Error) {
    // Taken out while it runs, so the callback may replace itself.
    let cb = shared.on_error.borrow_mut().take();
    if let Some(mut cb) = cb {
        cb(base, e);
        let mut slot = shared.on_error.borrow_mut();
        if slot.is_none() {
            *slot = Some(cb);
        }
    }
}
