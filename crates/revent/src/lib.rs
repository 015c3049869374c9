//! revent: libevent's event model in safe Rust.
//!
//! An [`EventBase`] waits on file descriptors, timers and signals through the best kernel mechanism
//! (epoll, poll or select) and runs callbacks by priority. Events are created in the base and named
//! by [`EventId`] handles; a callback receives the base, so it can add, delete, activate or free any
//! event (itself included) and stop the loop.
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
mod signal;
mod sys;
mod time;
mod timer;
pub mod util;

pub use base::{EventBase, EventInfo, LoopExit};
pub use buffer::{BufferEnd, EolStyle, Evbuffer, EvbufferPtr, PtrHow};
pub use bufferevent::{
    BevFlags, BevOptions, BufferEvent, DataCb, EventCb, FilterFn, FilterResult, FlushMode,
    RateLimit, RateLimitGroup,
};
pub use config::{Config, ConfigFlags, Features, LoopFlags, Method};
pub use error::{Error, Result};
pub use event::{EventId, Fired, What};
pub use listener::{Listener, ListenerOptions};
