//! The crate's error type.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

/// Everything that can go wrong in revent. Bad input is always one of these, never a panic.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The event was freed; its handle no longer names anything.
    StaleEvent,
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
    /// An operating-system error.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::StaleEvent => f.write_str("stale event handle: the event was freed"),
            Error::BadFd(fd, e) => write!(f, "bad file descriptor {fd}: {e}"),
            Error::FdTooLarge { fd, limit } => {
                write!(f, "fd {fd} is too large for this backend (limit {limit})")
            }
            Error::BadSignal(s) => write!(f, "signal {s} cannot be caught"),
            Error::Unsupported(what) => write!(f, "not supported by this backend: {what}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::NoBackend => f.write_str("no event backend satisfies the configuration"),
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
pub type Result<T> = std::result::Result<T, Error>;
