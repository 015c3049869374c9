//! What a successful lookup returns.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The records a successful lookup found.
///
/// ```
/// use revent_dns::{Answer, Records};
/// let a = Answer { name: "example.com".into(), ttl: 60, records: Records::Ipv4(vec![[192, 0, 2, 1].into()]) };
/// assert_eq!(a.addrs(), [std::net::IpAddr::from([192, 0, 2, 1])]);
/// assert!(a.names().is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The name that was answered, in lower case without the final dot: the one asked for, or
    /// the one a search domain made of it (`host` may be answered as `host.example.com`).
    pub name: String,
    /// The smallest TTL of the records, in seconds.
    pub ttl: u32,
    /// The records (never empty: an answer without records is [`DnsError::NoData`](crate::DnsError::NoData)).
    pub records: Records,
}

/// The records of an [`Answer`], by the kind of lookup.
///
/// ```
/// use revent_dns::Records;
/// let r = Records::Ptr(vec!["host.example".into()]);
/// assert!(!r.is_empty());
/// assert!(matches!(r, Records::Ptr(ref names) if names[0] == "host.example"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Records {
    /// From [`Resolver::resolve_ipv4`](crate::Resolver::resolve_ipv4).
    Ipv4(Vec<Ipv4Addr>),
    /// From [`Resolver::resolve_ipv6`](crate::Resolver::resolve_ipv6).
    Ipv6(Vec<Ipv6Addr>),
    /// From [`Resolver::resolve_reverse`](crate::Resolver::resolve_reverse): host names, without
    /// the final dot.
    Ptr(Vec<String>),
}

impl Records {
    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        match self {
            Records::Ipv4(v) => v.is_empty(),
            Records::Ipv6(v) => v.is_empty(),
            Records::Ptr(v) => v.is_empty(),
        }
    }
}

impl Answer {
    /// The addresses (empty for a PTR answer).
    pub fn addrs(&self) -> Vec<IpAddr> {
        match &self.records {
            Records::Ipv4(v) => v.iter().map(|&a| a.into()).collect(),
            Records::Ipv6(v) => v.iter().map(|&a| a.into()).collect(),
            Records::Ptr(_) => Vec::new(),
        }
    }

    /// The host names of a PTR answer (empty otherwise).
    pub fn names(&self) -> &[String] {
        match &self.records {
            Records::Ptr(v) => v,
            _ => &[],
        }
    }
}
