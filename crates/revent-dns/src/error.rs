//! Why a lookup failed.

use std::fmt;

/// Why a lookup failed. [`code`](DnsError::code) gives libevent's `DNS_ERR_*` number.
///
/// ```
/// use revent_dns::DnsError;
/// assert_eq!(DnsError::NotExist.code(), 3);
/// assert_eq!(DnsError::NotExist.name(), "NXDOMAIN");
/// assert_eq!(DnsError::Timeout.to_string(), "request timed out");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DnsError {
    /// The server could not understand the query (FORMERR).
    Format,
    /// Every server asked answered SERVFAIL.
    ServerFailed,
    /// The name does not exist (NXDOMAIN), under every name the search list made of it.
    NotExist,
    /// Every server asked answered NOTIMP.
    NotImplemented,
    /// Every server asked answered REFUSED.
    Refused,
    /// The reply was truncated and retrying over TCP is turned off ([`crate::ResolvConf::with_tcp`]).
    Truncated,
    /// The server answered with a response code this resolver does not know.
    Unknown,
    /// No server answered within the request's attempts.
    Timeout,
    /// The resolver was shut down with the request pending ([`crate::Resolver::shutdown`]).
    Shutdown,
    /// The request was cancelled with [`crate::Request::cancel_and_notify`].
    Cancelled,
    /// The name exists but has no record of the type asked for.
    NoData,
    /// The name cannot be sent in a query (a label over 63 bytes, a name over 255, not ASCII).
    InvalidName,
    /// The resolver has no nameserver to ask.
    NoNameservers,
}

impl DnsError {
    /// A short name: the response code where there is one (`NXDOMAIN`, `SERVFAIL`, `REFUSED`,
    /// `NOTIMP`, `FORMERR`), else `TIMEOUT`, `NODATA`, `TRUNCATED`, ...
    pub fn name(self) -> &'static str {
        match self {
            DnsError::Format => "FORMERR",
            DnsError::ServerFailed => "SERVFAIL",
            DnsError::NotExist => "NXDOMAIN",
            DnsError::NotImplemented => "NOTIMP",
            DnsError::Refused => "REFUSED",
            DnsError::Truncated => "TRUNCATED",
            DnsError::Unknown => "UNKNOWN",
            DnsError::Timeout => "TIMEOUT",
            DnsError::Shutdown => "SHUTDOWN",
            DnsError::Cancelled => "CANCELLED",
            DnsError::NoData => "NODATA",
            DnsError::InvalidName => "BADNAME",
            DnsError::NoNameservers => "NOSERVERS",
        }
    }

    /// libevent's `DNS_ERR_*` value for this error (`DNS_ERR_UNKNOWN`, 66, for the ones libevent
    /// does not have).
    pub fn code(self) -> i32 {
        match self {
            DnsError::Format => 1,
            DnsError::ServerFailed => 2,
            DnsError::NotExist => 3,
            DnsError::NotImplemented => 4,
            DnsError::Refused => 5,
            DnsError::Truncated => 65,
            DnsError::Unknown | DnsError::InvalidName | DnsError::NoNameservers => 66,
            DnsError::Timeout => 67,
            DnsError::Shutdown => 68,
            DnsError::Cancelled => 69,
            DnsError::NoData => 70,
        }
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DnsError::Format => "misformatted query",
            DnsError::ServerFailed => "server failed",
            DnsError::NotExist => "name does not exist",
            DnsError::NotImplemented => "query not implemented",
            DnsError::Refused => "refused",
            DnsError::Truncated => "reply truncated or ill-formed",
            DnsError::Unknown => "unknown",
            DnsError::Timeout => "request timed out",
            DnsError::Shutdown => "dns subsystem shut down",
            DnsError::Cancelled => "dns request canceled",
            DnsError::NoData => "no records in the reply",
            DnsError::InvalidName => "invalid name",
            DnsError::NoNameservers => "no nameservers configured",
        })
    }
}

impl std::error::Error for DnsError {}
