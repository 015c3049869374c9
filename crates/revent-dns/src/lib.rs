//! evdns on revent: an asynchronous DNS resolver that runs on an [`EventBase`](revent::EventBase).
//!
//! A [`Resolver`] sends queries over UDP (retrying truncated replies over TCP) to the nameservers of
//! a [`ResolvConf`] and calls back with an [`Answer`] or a [`DnsError`] from inside the loop. Queries
//! are encoded and replies decoded by `hickory-proto`; every reply is checked against the question
//! it answers (transaction id, name with its exact 0x20 case, type, class) and anything else is
//! dropped.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod conf;
mod error;

pub use conf::{ResolvConf, MAX_ATTEMPTS, MAX_NAMESERVERS, MAX_NDOTS, MAX_SEARCH, MAX_TIMEOUT};
pub use error::DnsError;
mod answer;
mod wire;
pub use answer::{Answer, Records};
mod getaddrinfo;
mod hosts;
mod resolver;
mod rng;
pub use getaddrinfo::{AddrOutcome, Family, Lookup, ALLOW_SKEW};
pub use hosts::Hosts;
pub use resolver::{Outcome, Request, Resolver};
