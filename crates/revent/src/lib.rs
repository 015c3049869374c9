//! revent: libevent's event model in safe Rust.
//!
//! An [`EventBase`] waits on file descriptors, timers and signals through the best kernel mechanism
//! (epoll, poll or select) and runs callbacks by priority.

pub mod buffer;
mod error;
mod event;
mod sys;

pub use buffer::{BufferEnd, EolStyle, Evbuffer, EvbufferPtr, PtrHow};
pub use error::{Error, Result};
pub use event::{EventId, Fired, What};
