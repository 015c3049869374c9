//! evdns on revent: an asynchronous DNS resolver that runs on an [`EventBase`](revent::EventBase).
//!
//! A [`Resolver`] sends queries over UDP (retrying truncated replies over TCP) to the nameservers of
//! a [`ResolvConf`] and calls back with an [`Answer`] or a [`DnsError`] from inside the loop. Queries
//! are encoded and replies decoded by `hickory-proto`; every reply is checked against the question
//! it answers (transaction id, name with its exact 0x20 case, type, class) and anything else is
//! dropped.
//!
//! ```no_run
//! use revent::EventBase;
//! use revent_dns::{Family, Resolver};
//!
//! let mut base = EventBase::new().unwrap();
//! let resolver = Resolver::system(); // /etc/resolv.conf and /etc/hosts
//! for name in ["example.com", "example.org"] {
//!     resolver.getaddrinfo(&mut base, name, 443, Family::Any, move |_base, r| match r {
//!         Ok(addrs) => println!("{name}: {addrs:?}"),
//!         Err(e) => println!("{name}: {e}"),
//!     });
//! }
//! base.dispatch().unwrap();
//! ```
//!
//! libevent's `evdns` is the reference for behaviour; where this differs (a cancelled request's
//! callback does not run, unless cancelled with [`Request::cancel_and_notify`]; SERVFAIL moves on
//! at once; probes run only while requests are pending) the items say so.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod answer;
mod conf;
mod error;
mod getaddrinfo;
mod hosts;
mod resolver;
mod rng;
mod server;
mod server_wire;
mod wire;

pub use answer::{Answer, Records};
pub use conf::{ResolvConf, MAX_ATTEMPTS, MAX_NAMESERVERS, MAX_NDOTS, MAX_SEARCH, MAX_TIMEOUT};
pub use error::DnsError;
pub use getaddrinfo::{AddrOutcome, Family, Lookup, ALLOW_SKEW};
pub use hosts::Hosts;
pub use resolver::{Outcome, Request, Resolver};
pub use server::{
    Question, Rcode, RecordData, Section, ServerError, ServerOptions, ServerPort, ServerRequest,
};

/// Entry points for the `dns_query` fuzz target; not part of the API.
#[doc(hidden)]
pub use server_wire::fuzzing as server_fuzzing;
#[doc(hidden)]
pub use wire::fuzzing;
