//! revent: libevent's event model in safe Rust.
//!
//! An [`EventBase`] waits on file descriptors, timers and signals through the best kernel mechanism
//! (epoll, io_uring, poll or select) and runs callbacks by priority. Events are created in the base and named
//! by [`EventId`] handles; a callback receives the base, so it can add, delete, activate or free any
//! event (itself included) and stop the loop. On top: [`Evbuffer`] (a chained byte buffer),
//! [`BufferEvent`] (buffered connections: sockets, pairs, filters, TLS), [`Listener`], and [`Remote`] for
//! other threads; [`tag`] reads and writes libevent's tagged-data format on an `Evbuffer`.
//!
//! ```
//! use revent::{EventBase, What};
//! use std::io::Write;
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//!
//! let (a, mut b) = UnixStream::pair().unwrap();
//! let mut base = EventBase::new().unwrap();
//! let ev = base
//!     .new_event(a.as_raw_fd(), What::READ, |_, fired| assert!(fired.what.contains(What::READ)))
//!     .unwrap();
//! base.add(ev, None).unwrap();
//! b.write_all(b"x").unwrap();
//! base.dispatch().unwrap();
//! ```
//!
//! TLS bufferevents run a [`TlsSession`] over a socket or another bufferevent; the `tls` feature
//! supplies rustls's (`RustlsSession`, `BufferEvent::tls_socket`, `BufferEvent::tls_filter`, and
//! the `rustls` crate re-exported).
//!
//! The library logs what it cannot report through a return value (a listener pausing because the fd
//! table is full, for one) through the [`log`] facade: the application chooses where it goes.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod backend;
mod base;
pub mod buffer;
mod bufferevent;
mod config;
mod error;
mod event;
mod flags;
mod io_map;
mod listener;
mod registry;
mod remote;
mod signal;
mod slab;
// The one module allowed raw syscalls and `unsafe`; every block says why it is sound.
#[allow(unsafe_code)]
mod sys;
pub mod tag;
mod time;
mod timer;
pub mod util;

pub use base::{EventBase, EventInfo, LoopExit};
pub use buffer::{BufferEnd, EolStyle, Evbuffer, EvbufferPtr, PtrHow};
#[cfg(feature = "tls")]
pub use bufferevent::RustlsSession;
pub use bufferevent::{
    BevFlags, BevOptions, BufferEvent, DataCb, EventCb, FilterFn, FilterResult, FlushMode,
    RateLimit, RateLimitGroup, TlsError, TlsSession, TlsState,
};
pub use config::{Config, ConfigFlags, Features, LoopFlags, Method};
pub use error::{Error, Handle, Result};
pub use event::{EventId, Fired, What};
pub use listener::{
    AcceptCb, AcceptErrorCb, Listener, ListenerOptions, PeerAddr, PAUSE_ON_RESOURCE_ERROR,
};
pub use remote::Remote;
/// The rustls crate the `tls` feature builds on, re-exported so that callers build their
/// `ClientConfig`/`ServerConfig` with the same version.
#[cfg(feature = "tls")]
pub use rustls;

// The README's examples are compiled (and the timer one run) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;

/// Signal numbers for [`EventBase::new_signal`], so that callers need not depend on `libc`.
///
/// ```
/// use revent::{sig, EventBase};
/// let mut base = EventBase::new().unwrap();
/// let ev = base.new_signal(sig::SIGUSR1, |_, _| {}).unwrap();
/// base.free(ev).unwrap();
/// ```
pub mod sig {
    pub use libc::{
        SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
    };
}
