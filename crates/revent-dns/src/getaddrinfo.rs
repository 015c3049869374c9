//! `getaddrinfo`-style lookups (libevent's `evdns_getaddrinfo`): numeric hosts and the hosts file
//! answered at once, otherwise A and AAAA queries side by side.

use crate::error::DnsError;
use crate::resolver::{Outcome, Request, Resolver};
use revent::{EventBase, EventId};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

/// Which address families a [`Resolver::getaddrinfo`] lookup wants.
///
/// ```
/// use revent::EventBase;
/// use revent_dns::{DnsError, Family, ResolvConf, Resolver};
/// let mut base = EventBase::new().unwrap();
/// let resolver = Resolver::new(ResolvConf::new());
/// resolver.getaddrinfo(&mut base, "192.0.2.1", 80, Family::V6, |_, r| {
///     assert_eq!(r, Err(DnsError::NoData), "an IPv4 literal has no IPv6 address");
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv4 and IPv6 (`AF_UNSPEC`).
    #[default]
    Any,
    /// IPv4 only (`AF_INET`).
    V4,
    /// IPv6 only (`AF_INET6`).
    V6,
}

impl Family {
    fn wants(self, ip: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

/// What a [`Resolver::getaddrinfo`] callback receives: the addresses (IPv4 first, then IPv6, each
/// with the port asked for) or why there are none.
pub type AddrOutcome = Result<Vec<SocketAddr>, DnsError>;
type AddrCallback = Box<dyn FnOnce(&mut EventBase, AddrOutcome)>;

/// How long the second family may lag once the first has answered, by default (libevent's
/// `getaddrinfo-allow-skew`, [`ResolvConf::allow_skew`](crate::ResolvConf::allow_skew)); after
/// that the lookup ends with what it has.
pub const ALLOW_SKEW: Duration = Duration::from_secs(3);

/// A pending [`Resolver::getaddrinfo`] lookup, to cancel it.
///
/// ```
/// use revent::EventBase;
/// use revent_dns::{Family, ResolvConf, Resolver};
/// let mut base = EventBase::new().unwrap();
/// let resolver = Resolver::new(ResolvConf::new().with_nameserver("127.0.0.1:9".parse().unwrap()));
/// let lookup = resolver
///     .getaddrinfo(&mut base, "host.invalid", 80, Family::Any, |_, _| unreachable!())
///     .expect("not numeric: a lookup");
/// assert!(lookup.cancel(&mut base));
/// base.dispatch().unwrap();
/// ```
#[derive(Clone)]
pub struct Lookup {
    state: Rc<RefCell<Gai>>,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup").finish_non_exhaustive()
    }
}

struct Gai {
    port: u16,
    cb: Option<AddrCallback>,
    v4: Option<Request>,
    v6: Option<Request>,
    /// Each family's outcome once in; `None` while pending (or not asked).
    got4: Option<Outcome>,
    got6: Option<Outcome>,
    asked4: bool,
    asked6: bool,
    skew: Option<EventId>,
    /// How long the second family may lag (the resolver's `allow_skew`).
    allow_skew: Duration,
}

impl Gai {
    fn complete(&self) -> bool {
        (!self.asked4 || self.got4.is_some()) && (!self.asked6 || self.got6.is_some())
    }

    fn any_success(&self) -> bool {
        matches!(self.got4, Some(Ok(_))) || matches!(self.got6, Some(Ok(_)))
    }

    /// The result: the addresses found, or the most telling error (one that says the name is not
    /// there beats a server's failure or a timeout).
    fn result(&mut self) -> AddrOutcome {
        let mut addrs = Vec::new();
        let mut errs = Vec::new();
        for got in [self.got4.take(), self.got6.take()].into_iter().flatten() {
            match got {
                Ok(a) => addrs.extend(
                    a.addrs()
                        .into_iter()
                        .map(|ip| SocketAddr::new(ip, self.port)),
                ),
                Err(e) => errs.push(e),
            }
        }
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        let rank = |e: &DnsError| match e {
            DnsError::NotExist => 0,
            DnsError::NoData => 1,
            _ => 2,
        };
        Err(errs
            .into_iter()
            .min_by_key(rank)
            .unwrap_or(DnsError::NoData))
    }
}

impl Lookup {
    /// Cancels the lookup: its queries stop and its callback never runs. Returns whether it was
    /// still pending.
    pub fn cancel(&self, base: &mut EventBase) -> bool {
        let (cb, v4, v6, skew) = {
            let mut s = self.state.borrow_mut();
            (s.cb.take(), s.v4.take(), s.v6.take(), s.skew.take())
        };
        if let Some(r) = v4 {
            r.cancel(base);
        }
        if let Some(r) = v6 {
            r.cancel(base);
        }
        if let Some(t) = skew {
            let _ = base.free(t);
        }
        cb.is_some()
    }
}

/// A family's answer came in: deliver if both are in, or give the other the allowed skew more.
fn on_family(base: &mut EventBase, state: &Rc<RefCell<Gai>>, v6: bool, outcome: Outcome) {
    {
        let mut s = state.borrow_mut();
        if s.cb.is_none() {
            return;
        }
        if v6 {
            s.got6 = Some(outcome);
            s.v6 = None;
        } else {
            s.got4 = Some(outcome);
            s.v4 = None;
        }
        if !s.complete() {
            if s.any_success() && s.skew.is_none() {
                let st = state.clone();
                let t = base.new_timer(move |base, _| give_up_waiting(base, &st));
                let _ = base.add(t, Some(s.allow_skew));
                s.skew = Some(t);
            }
            return;
        }
    }
    deliver(base, state);
}

fn give_up_waiting(base: &mut EventBase, state: &Rc<RefCell<Gai>>) {
    let (v4, v6) = {
        let mut s = state.borrow_mut();
        s.skew = None;
        (s.v4.take(), s.v6.take())
    };
    for r in [v4, v6].into_iter().flatten() {
        r.cancel(base);
    }
    deliver(base, state);
}

fn deliver(base: &mut EventBase, state: &Rc<RefCell<Gai>>) {
    let (cb, result, skew) = {
        let mut s = state.borrow_mut();
        let Some(cb) = s.cb.take() else {
            return;
        };
        (cb, s.result(), s.skew.take())
    };
    if let Some(t) = skew {
        let _ = base.free(t);
    }
    cb(base, result);
}

impl Resolver {
    /// Looks up the addresses of `host` for `port` (libevent's `evdns_getaddrinfo`).
    ///
    /// A numeric host (`192.0.2.1`, `2001:db8::1`) and a name in the hosts file
    /// ([`set_hosts`](Self::set_hosts)) are answered at once: the callback runs before this returns,
    /// which returns `None` (libevent returns NULL then). Otherwise A and AAAA queries (as
    /// `family` asks) go out side by side, with the search list, and the callback runs from the
    /// loop once both are in, or [`ResolvConf::allow_skew`](crate::ResolvConf::allow_skew) after the first success.
    ///
    /// ```
    /// use revent::EventBase;
    /// use revent_dns::{Family, ResolvConf, Resolver};
    /// let mut base = EventBase::new().unwrap();
    /// let resolver = Resolver::new(ResolvConf::new());
    /// let pending = resolver.getaddrinfo(&mut base, "::1", 443, Family::Any, |_, r| {
    ///     assert_eq!(r.unwrap(), ["[::1]:443".parse().unwrap()]);
    /// });
    /// assert!(pending.is_none(), "answered at once");
    /// ```
    pub fn getaddrinfo<F>(
        &self,
        base: &mut EventBase,
        host: &str,
        port: u16,
        family: Family,
        cb: F,
    ) -> Option<Lookup>
    where
        F: FnOnce(&mut EventBase, AddrOutcome) + 'static,
    {
        let literal = host
            .parse::<IpAddr>()
            .ok()
            .or_else(|| host.strip_prefix('[')?.strip_suffix(']')?.parse().ok());
        if let Some(ip) = literal {
            let r = if family.wants(&ip) {
                Ok(vec![SocketAddr::new(ip, port)])
            } else {
                Err(DnsError::NoData)
            };
            cb(base, r);
            return None;
        }
        let from_hosts: Vec<SocketAddr> = {
            let all = self.hosts_lookup(host);
            let mut v: Vec<IpAddr> = all.iter().copied().filter(|ip| family.wants(ip)).collect();
            v.sort_by_key(|ip| ip.is_ipv6());
            v.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()
        };
        if !from_hosts.is_empty() {
            cb(base, Ok(from_hosts));
            return None;
        }
        let state = Rc::new(RefCell::new(Gai {
            port,
            cb: Some(Box::new(cb)),
            v4: None,
            v6: None,
            got4: None,
            got6: None,
            asked4: family != Family::V6,
            asked6: family != Family::V4,
            skew: None,
            allow_skew: self.conf().allow_skew(),
        }));
        if family != Family::V6 {
            let st = state.clone();
            let r = self.resolve_ipv4(base, host, move |base, o| on_family(base, &st, false, o));
            state.borrow_mut().v4 = Some(r);
        }
        if family != Family::V4 {
            let st = state.clone();
            let r = self.resolve_ipv6(base, host, move |base, o| on_family(base, &st, true, o));
            state.borrow_mut().v6 = Some(r);
        }
        Some(Lookup { state })
    }
}
