//! The crate's error type.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

/// Everything that can go wrong in revent. Bad input is always one of these, never a panic.
///
/// ```
/// use revent::{Error, EventBase, Handle};
/// let mut base = EventBase::new().unwrap();
/// let ev = base.new_timer(|_, _| {});
/// base.free(ev).unwrap();
/// let err = base.add(ev, None).unwrap_err();
/// assert!(matches!(err, Error::Stale(Handle::Event)));
/// assert_eq!(err.to_string(), "stale event handle: the event was freed");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The handle names something that was freed (or never existed in this base): an event, a
    /// bufferevent, a listener or a rate-limit group, as the [`Handle`] says.
    Stale(Handle),
    /// The fd is negative, closed, or of a kind the backend cannot watch.
    BadFd(RawFd, io::Error),
    /// The fd is too large for the select backend (`FD_SETSIZE`).
    FdTooLarge {
        /// The fd that was refused.
        fd: RawFd,
        /// The backend's limit: fds must be below it.
        limit: usize,
    },
    /// Not a signal number that can be caught (out of range, SIGKILL or SIGSTOP).
    BadSignal(i32),
    /// The backend cannot do what was asked (e.g. edge-triggered events on poll).
    Unsupported(&'static str),
    /// An argument was out of range or the call does not fit the event's state.
    InvalidArgument(&'static str),
    /// No backend satisfies the configuration.
    NoBackend,
    /// The [`EventBase`](crate::EventBase) behind a [`Remote`](crate::Remote) was dropped.
    BaseGone,
    /// An operating-system error.
    Io(io::Error),
}

/// The kind of handle a [`Error::Stale`] is about.
///
/// ```
/// use revent::{BevOptions, BufferEvent, Error, EventBase, Handle};
/// let mut base = EventBase::new().unwrap();
/// let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// a.free(&mut base).unwrap();
/// assert!(matches!(a.free(&mut base), Err(Error::Stale(Handle::BufferEvent))));
/// b.free(&mut base).unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handle {
    /// An [`EventId`](crate::EventId).
    Event,
    /// A [`BufferEvent`](crate::BufferEvent).
    BufferEvent,
    /// A [`Listener`](crate::Listener).
    Listener,
    /// A [`RateLimitGroup`](crate::RateLimitGroup).
    RateLimitGroup,
}

impl Handle {
    fn name(self) -> &'static str {
        match self {
            Handle::Event => "event",
            Handle::BufferEvent => "bufferevent",
            Handle::Listener => "listener",
            Handle::RateLimitGroup => "rate-limit group",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Stale(h) => write!(f, "stale {0} handle: the {0} was freed", h.name()),
            Error::BadFd(fd, e) => write!(f, "bad file descriptor {fd}: {e}"),
            Error::FdTooLarge { fd, limit } => {
                write!(f, "fd {fd} is too large for this backend (limit {limit})")
            }
            Error::BadSignal(s) => write!(f, "signal {s} cannot be caught"),
            Error::Unsupported(what) => write!(f, "not supported by this backend: {what}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::NoBackend => f.write_str("no event backend satisfies the configuration"),
            Error::BaseGone => f.write_str("the event base was dropped"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) | Error::BadFd(_, e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::BadFd(_, e) => e,
            other => {
                let kind = match other {
                    Error::Unsupported(_) => io::ErrorKind::Unsupported,
                    _ => io::ErrorKind::InvalidInput,
                };
                io::Error::new(kind, other.to_string())
            }
        }
    }
}

/// `Result` with revent's [`Error`].
///
/// ```
/// fn run() -> revent::Result<()> {
///     let mut base = revent::EventBase::new()?;
///     base.dispatch()?;
///     Ok(())
/// }
/// run().unwrap();
/// ```
pub type Result<T> = std::result::Result<T, Error>;
