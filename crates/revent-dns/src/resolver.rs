//! The resolver: requests, their transmissions, nameserver failover, and the calls back.
//!
//! # How a request runs
//! A request is a list of candidate names (the search list applied to the name asked for) and a
//! callback. At most [`ResolvConf::max_inflight`] requests wait for replies at once; the others
//! queue in order. A request in flight has one *transmission* at a time: a UDP socket of its own
//! (a kernel-chosen port), connected to one nameserver, carrying a query with a random transaction
//! id and the name in a random 0x20 case, and the request's timer armed with the timeout.
//! Datagrams that are not the reply to exactly that question are dropped and the request keeps
//! waiting. When a transmission ends, its socket (still connected to that server, still watched)
//! goes to a pool and the next transmission to the same server takes it, instead of opening,
//! connecting, watching and closing one per query, which cost most of a lookup's time. The pool
//! is emptied (sockets closed) whenever no request is pending; datagrams that reach a pooled
//! socket are read and dropped.
//! The requests' timers are pooled the same way (a finished request's timer event, disarmed, is
//! the next request's), and armed on the base's common timeout (a FIFO queue, O(1) to arm and
//! disarm, since every transmission waits the same `timeout`).
//!
//! - **Timeout**: the transmission is dropped and, unless the request has been sent `attempts`
//!   times, sent again to the next nameserver. So a request fails with [`DnsError::Timeout`] after
//!   at most `attempts × timeout` however many servers are down.
//! - **SERVFAIL, REFUSED, NOTIMP**: sent at once to the next nameserver that has not answered so
//!   for this name (this does not use up an attempt); when all have, that error is the result.
//! - **NXDOMAIN, no records**: the next candidate name, if any.
//! - **TC set**: the same question over TCP to the same server (or [`DnsError::Truncated`] if TCP is
//!   turned off).
//!
//! A nameserver that times out `max_timeouts` times in a row is marked down: requests start at the
//! servers that are up (all of them are used when none is). A down server is probed (a query for
//! the root's A records), first after [`ResolvConf::initial_probe_timeout`] (10 s) and then three
//! times less often each time, up to an hour; any reply to a probe, or any answer to a request that
//! used the server anyway, brings it back. Probes run only while requests are pending: an idle
//! resolver keeps no event in the base, so `dispatch` returns once the last request is done.
//!
//! # Callbacks
//! The callback of a request runs exactly once, from the loop, never from inside the call that
//! made the request, unless the request is cancelled with [`Request::cancel`] first (from anywhere,
//! including another request's callback). The resolver's state is never borrowed while a callback
//! runs, so a callback may make or cancel requests freely.

use crate::answer::Answer;
use crate::conf::ResolvConf;
use crate::error::DnsError;
use crate::hosts::Hosts;
use crate::rng::Rng;
use crate::wire::{self, Kind, QName, Verdict};
use hickory_proto::rr::Name;
use revent::{EventBase, EventId, Features, Fired, What};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::Duration;

/// Request keys are a counter of the resolver's own, never chosen by a peer, so they need no
/// keyed (SipHash) hashing against collisions: one multiplication spreads them (an odd factor keeps
/// consecutive keys in distinct buckets, and mixes the top bits hashbrown tags entries with).
type KeyHash = BuildHasherDefault<KeyHasher>;

#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What a request's callback receives.
pub type Outcome = Result<Answer, DnsError>;
type Callback = Box<dyn FnOnce(&mut EventBase, Outcome)>;

const PROBE_MAX: Duration = Duration::from_secs(3600);
/// The largest DNS message: 2-byte TCP length prefix, and the UDP receive buffer.
const MAX_MESSAGE: usize = 65535;

/// An asynchronous DNS resolver (libevent's `evdns_base`) whose requests run on an
/// [`EventBase`]. Cloning it gives another handle to the same resolver.
///
/// Use one resolver with one base at a time: the events of its requests live in the base given
/// to each call. If that base is dropped, the requests pending in it go with it (their callbacks
/// never run) and the resolver can go on with another base.
///
/// ```
/// use revent::EventBase;
/// use revent_dns::{DnsError, ResolvConf, Resolver};
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let mut base = EventBase::new().unwrap();
/// // No nameserver: requests fail (from the loop) with NoNameservers, and nothing is sent.
/// let resolver = Resolver::new(ResolvConf::new());
/// let seen = Rc::new(Cell::new(None));
/// let s = seen.clone();
/// resolver.resolve_ipv4(&mut base, "example.com", move |_base, r| s.set(Some(r.unwrap_err())));
/// assert_eq!(seen.get(), None, "callbacks run from the loop only");
/// base.dispatch().unwrap();
/// assert_eq!(seen.get(), Some(DnsError::NoNameservers));
/// ```
///
/// Against a nameserver (here a local one on port 5353):
///
/// ```no_run
/// use revent::EventBase;
/// use revent_dns::{ResolvConf, Resolver};
///
/// let mut base = EventBase::new().unwrap();
/// let conf = ResolvConf::new().with_nameserver("127.0.0.1:5353".parse().unwrap());
/// let resolver = Resolver::new(conf);
/// resolver.resolve_ipv4(&mut base, "www.example.com", |_base, result| match result {
///     Ok(answer) => println!("{:?}", answer.addrs()),
///     Err(e) => println!("error: {e}"),
/// });
/// base.dispatch().unwrap();
/// ```
#[derive(Clone)]
pub struct Resolver {
    inner: Rc<RefCell<Inner>>,
}

/// A pending request, to cancel it. Dropping it does not cancel anything.
///
/// ```
/// use revent::EventBase;
/// use revent_dns::{ResolvConf, Resolver};
/// let mut base = EventBase::new().unwrap();
/// let resolver = Resolver::new(ResolvConf::new());
/// let req = resolver.resolve_ipv6(&mut base, "example.com", |_, _| unreachable!("cancelled"));
/// assert!(req.cancel(&mut base));
/// assert!(!req.cancel(&mut base), "only once");
/// base.dispatch().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Request {
    inner: Weak<RefCell<Inner>>,
    key: u64,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("Resolver")
            .field("nameservers", &inner.conf.nameservers())
            .field("requests", &inner.reqs.len())
            .field("inflight", &inner.inflight)
            .finish()
    }
}

struct Server {
    addr: SocketAddr,
    timeouts: u32,
    down: bool,
    /// The probe's timer while the server is down.
    probe_timer: Option<EventId>,
    probe: Option<Tx>,
    backoff: Duration,
    /// UDP sockets connected to this server that no transmission uses now.
    pool: Vec<Pooled>,
}

/// A UDP socket in a server's pool: its event stays added, and `route` (0 while pooled) names
/// the request whose transmission owns it.
struct Pooled {
    sock: UdpSocket,
    ev: EventId,
    route: Rc<Cell<u64>>,
}

/// A request's timer: a one-shot timer event whose `route` names the request it is armed for (0
/// while it waits in the resolver's pool). Finished requests hand it on to the next request
/// rather than freeing it, so a lookup costs no event allocation and no callback box.
struct Timer {
    ev: EventId,
    route: Rc<Cell<u64>>,
}

/// One query on the wire: its socket, the event watching it, and the query as sent (its id and
/// its name in the 0x20 case chosen, which a reply must echo).
struct Tx {
    query: Vec<u8>,
    kind: Kind,
    ev: EventId,
    io: Io,
    /// For a request's UDP transmission: which request the socket's event is for, and the
    /// server it is connected to, so that the socket can be pooled when the transmission ends.
    route: Option<(Rc<Cell<u64>>, usize)>,
}

enum Io {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        connected: bool,
        out: Vec<u8>,
        written: usize,
        input: Vec<u8>,
    },
}

/// A request's names to ask, in order: most requests have one, kept without a vector (an
/// allocation and a free a lookup).
enum Names {
    One(QName),
    Many(Vec<QName>),
}

impl Names {
    fn as_slice(&self) -> &[QName] {
        match self {
            Names::One(n) => std::slice::from_ref(n),
            Names::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [QName] {
        match self {
            Names::One(n) => std::slice::from_mut(n),
            Names::Many(v) => v,
        }
    }
}

struct Req {
    kind: Kind,
    names: Names,
    /// Index of the candidate name being asked.
    cur: usize,
    cb: Option<Callback>,
    /// In flight (counted in `inflight`), as opposed to queued or about to fail.
    started: bool,
    timer: Option<Timer>,
    tx: Option<Tx>,
    /// Transmissions of the current name.
    sent: u32,
    /// Servers that answered SERVFAIL/REFUSED/NOTIMP for the current name.
    failed: u64,
    server: usize,
    /// Set once a candidate name had no records of the type (preferred to NXDOMAIN at the end).
    nodata: bool,
}

struct Inner {
    me: Weak<RefCell<Inner>>,
    conf: ResolvConf,
    servers: Vec<Server>,
    reqs: HashMap<u64, Req, KeyHash>,
    next_key: u64,
    inflight: usize,
    queue: VecDeque<u64>,
    rng: Rng,
    rotate_next: usize,
    buf: Vec<u8>,
    /// Room for the query encoder, reused.
    scratch: Vec<u8>,
    /// The buffers of ended transmissions' queries, for the next queries (emptied with the
    /// socket pools).
    query_bufs: Vec<Vec<u8>>,
    /// Finished requests whose callbacks are still to run (outside the borrow).
    done: VecDeque<(u64, Callback, Outcome)>,
    shut: bool,
    /// Set by [`Resolver::clear_nameservers_and_suspend`]: requests queue until `resume`.
    suspended: bool,
    hosts: Hosts,
    /// Timers of finished requests, not pending, for the next requests (emptied with the socket
    /// pools).
    timer_pool: Vec<Timer>,
    /// The timeout registered as a common timeout in the base (its timers then go on a FIFO queue,
    /// O(1) to arm and disarm, rather than in the base's heap).
    common: Option<Duration>,
    /// An event never added, in the base the resolver's events live in; its callback owns the
    /// `Rc` this `Weak` points to, so the `Weak` dies with the base.
    marker: Option<(EventId, Weak<()>)>,
}

impl Resolver {
    /// A resolver with this configuration. Nothing is opened until the first request.
    pub fn new(conf: ResolvConf) -> Resolver {
        let servers = conf
            .nameservers()
            .iter()
            .map(|&addr| Server {
                addr,
                timeouts: 0,
                down: false,
                probe_timer: None,
                probe: None,
                backoff: conf.initial_probe_timeout(),
                pool: Vec::new(),
            })
            .collect();
        let inner = Rc::new_cyclic(|me| {
            RefCell::new(Inner {
                me: me.clone(),
                conf,
                servers,
                reqs: HashMap::default(),
                next_key: 1,
                inflight: 0,
                queue: VecDeque::new(),
                rng: Rng::new(),
                rotate_next: 0,
                buf: vec![0; MAX_MESSAGE],
                scratch: Vec::new(),
                query_bufs: Vec::new(),
                done: VecDeque::new(),
                shut: false,
                suspended: false,
                hosts: Hosts::new(),
                timer_pool: Vec::new(),
                common: None,
                marker: None,
            })
        });
        Resolver { inner }
    }

    /// A resolver configured from `/etc/resolv.conf` ([`ResolvConf::system`]), with the names of
    /// `/etc/hosts` for [`getaddrinfo`](Self::getaddrinfo).
    pub fn system() -> Resolver {
        let r = Resolver::new(ResolvConf::system());
        r.set_hosts(Hosts::system());
        r
    }

    /// Sets the hosts file that [`getaddrinfo`](Self::getaddrinfo) answers from before asking a
    /// server (libevent's `evdns_base_load_hosts`). A new resolver has none.
    pub fn set_hosts(&self, hosts: Hosts) {
        self.inner.borrow_mut().hosts = hosts;
    }

    pub(crate) fn hosts_lookup(&self, name: &str) -> Vec<IpAddr> {
        self.inner.borrow().hosts.lookup(name).to_vec()
    }

    /// Changes the hosts file in place (libevent's `evdns_base_load_hosts` adds to it,
    /// `evdns_base_clear_host_addresses` empties it).
    pub fn update_hosts(&self, f: impl FnOnce(&mut Hosts)) {
        f(&mut self.inner.borrow_mut().hosts);
    }

    /// Changes the configuration of a live resolver (libevent's `evdns_base_set_option`,
    /// `evdns_base_search_add`, `evdns_base_nameserver_add`, ...): options and search domains
    /// take effect for the next transmission or request. Nameservers can only be added this way
    /// (new ones go after the existing ones, which keep their place and state; any that `f`
    /// drops are kept): [`clear_nameservers_and_suspend`](Self::clear_nameservers_and_suspend)
    /// removes them.
    ///
    /// ```
    /// use revent_dns::{ResolvConf, Resolver};
    /// let resolver = Resolver::new(ResolvConf::new());
    /// resolver.configure(|c| c.with_nameserver("127.0.0.1:5353".parse().unwrap()).with_ndots(3));
    /// assert_eq!(resolver.conf().nameservers().len(), 1);
    /// assert_eq!(resolver.conf().ndots(), 3);
    /// ```
    pub fn configure(&self, f: impl FnOnce(ResolvConf) -> ResolvConf) {
        let mut inner = self.inner.borrow_mut();
        let old: Vec<SocketAddr> = inner.conf.nameservers().to_vec();
        let new = f(inner.conf.clone());
        let mut merged = new.clone().without_nameservers();
        for &a in old.iter().chain(new.nameservers()) {
            merged = merged.with_nameserver(a);
        }
        let probe = merged.initial_probe_timeout();
        for &addr in &merged.nameservers()[old.len()..] {
            inner.servers.push(Server {
                addr,
                timeouts: 0,
                down: false,
                probe_timer: None,
                probe: None,
                backoff: probe,
                pool: Vec::new(),
            });
        }
        inner.conf = merged;
    }

    /// Removes every nameserver and suspends the resolver (libevent's
    /// `evdns_base_clear_nameservers_and_suspend`): requests in flight stop (their sockets and
    /// timers go) and wait, in the order they were made and ahead of those queued, with every
    /// request made from now on, until [`resume`](Self::resume); each is then sent again from its
    /// first attempt, to the nameservers configured by then.
    pub fn clear_nameservers_and_suspend(&self, base: &mut EventBase) {
        let stale = {
            let mut inner = self.inner.borrow_mut();
            let stale = inner.bind(base);
            let mut flying: Vec<u64> = inner
                .reqs
                .iter()
                .filter(|(_, r)| r.started)
                .map(|(&k, _)| k)
                .collect();
            flying.sort_unstable();
            for &key in flying.iter().rev() {
                let mut req = inner.reqs.remove(&key).expect("listed above");
                inner.teardown(base, &mut req);
                req.started = false;
                req.sent = 0;
                req.failed = 0;
                req.server = 0;
                inner.reqs.insert(key, req);
                inner.queue.push_front(key);
            }
            inner.inflight = 0;
            for i in 0..inner.servers.len() {
                inner.stop_probe(base, i);
            }
            // The servers go, and with them their pooled sockets: their events first.
            inner.clear_pools(base);
            inner.servers.clear();
            inner.conf = inner.conf.clone().without_nameservers();
            inner.suspended = true;
            stale
        };
        drop(stale);
    }

    /// Ends a suspension (libevent's `evdns_base_resume`): the requests that waited are sent, as
    /// many at once as `max_inflight` allows; with no nameserver configured they fail with
    /// [`DnsError::NoNameservers`] (from the loop). A resolver not suspended is unchanged.
    pub fn resume(&self, base: &mut EventBase) {
        let stale = {
            let mut inner = self.inner.borrow_mut();
            let stale = inner.bind(base);
            if inner.suspended {
                inner.suspended = false;
                if inner.servers.is_empty() {
                    let keys: Vec<u64> = inner.queue.drain(..).collect();
                    for key in keys {
                        inner.finish(base, key, Err(DnsError::NoNameservers));
                    }
                } else {
                    inner.start_queued(base);
                }
            }
            stale
        };
        drop(stale);
        if !self.inner.borrow().done.is_empty() {
            let rc = self.inner.clone();
            if base
                .once(-1, What::NONE, None, move |base, _| run_done(&rc, base))
                .is_err()
            {
                run_done(&self.inner, base);
            }
        }
    }

    /// The configuration.
    pub fn conf(&self) -> ResolvConf {
        self.inner.borrow().conf.clone()
    }

    /// Looks up the IPv4 addresses (A records) of `name`, through the search list unless the
    /// name ends with a dot. `cb` runs once, from the loop, with the addresses or the error.
    pub fn resolve_ipv4<F>(&self, base: &mut EventBase, name: &str, cb: F) -> Request
    where
        F: FnOnce(&mut EventBase, Outcome) + 'static,
    {
        self.submit(base, Kind::A, name, Box::new(cb))
    }

    /// Looks up the IPv6 addresses (AAAA records) of `name`, as [`resolve_ipv4`](Self::resolve_ipv4).
    pub fn resolve_ipv6<F>(&self, base: &mut EventBase, name: &str, cb: F) -> Request
    where
        F: FnOnce(&mut EventBase, Outcome) + 'static,
    {
        self.submit(base, Kind::Aaaa, name, Box::new(cb))
    }

    /// Looks up the host names of an address (PTR records under `in-addr.arpa` or `ip6.arpa`).
    pub fn resolve_reverse<F>(&self, base: &mut EventBase, addr: IpAddr, cb: F) -> Request
    where
        F: FnOnce(&mut EventBase, Outcome) + 'static,
    {
        self.submit(base, Kind::Ptr, &wire::reverse_name(addr), Box::new(cb))
    }

    /// How many requests have not yet finished (in flight and queued).
    pub fn pending(&self) -> usize {
        self.inner.borrow().reqs.len()
    }

    /// How many requests are in flight (waiting for a reply); the rest of
    /// [`pending`](Self::pending) are queued.
    pub fn inflight(&self) -> usize {
        self.inner.borrow().inflight
    }

    /// Which nameservers are marked down (by their position in the configuration).
    pub fn servers_down(&self) -> Vec<bool> {
        self.inner.borrow().servers.iter().map(|s| s.down).collect()
    }

    /// Stops the resolver (libevent's `evdns_base_free`): every pending request ends, its
    /// callback run with [`DnsError::Shutdown`] if `fail_requests` (from inside this call), or
    /// dropped; probes stop and sockets close. Later requests fail with `Shutdown`.
    pub fn shutdown(&self, base: &mut EventBase, fail_requests: bool) {
        {
            let mut inner = self.inner.borrow_mut();
            let stale = inner.bind(base);
            inner.shut = true;
            inner.queue.clear();
            inner.inflight = 0;
            // In the order they were made.
            let mut keys: Vec<u64> = inner.reqs.keys().copied().collect();
            keys.sort_unstable();
            let mut dropped = Vec::new();
            for key in keys {
                if let Some(mut req) = inner.reqs.remove(&key) {
                    inner.teardown(base, &mut req);
                    if let Some(cb) = req.cb.take() {
                        if fail_requests {
                            inner.done.push_back((key, cb, Err(DnsError::Shutdown)));
                        } else {
                            dropped.push(cb);
                        }
                    }
                }
            }
            for i in 0..inner.servers.len() {
                inner.stop_probe(base, i);
            }
            inner.clear_pools(base);
            drop(inner);
            drop(dropped);
            drop(stale);
        }
        run_done(&self.inner, base);
    }

    fn submit(&self, base: &mut EventBase, kind: Kind, name: &str, cb: Callback) -> Request {
        let (key, stale) = {
            let mut inner = self.inner.borrow_mut();
            let stale = inner.bind(base);
            let key = inner.next_key;
            inner.next_key += 1;
            let names = if kind == Kind::Ptr {
                match wire::fqdn(name) {
                    Some(n) => Names::One(n),
                    None => Names::Many(Vec::new()),
                }
            } else {
                candidates(name, &inner.conf)
            };
            let doomed = if inner.shut {
                Some(DnsError::Shutdown)
            } else if names.as_slice().is_empty() {
                Some(DnsError::InvalidName)
            } else if inner.servers.is_empty() && !inner.suspended {
                Some(DnsError::NoNameservers)
            } else {
                None
            };
            inner.reqs.insert(
                key,
                Req {
                    kind,
                    names,
                    cur: 0,
                    cb: Some(cb),
                    started: false,
                    timer: None,
                    tx: None,
                    sent: 0,
                    failed: 0,
                    server: 0,
                    nodata: false,
                },
            );
            if let Some(err) = doomed {
                // Reported from the loop, like every outcome; cancellable until then.
                let rc = self.inner.clone();
                let scheduled = base.once(-1, What::NONE, None, move |base, _| {
                    rc.borrow_mut().finish(base, key, Err(err));
                    run_done(&rc, base);
                });
                if scheduled.is_err() {
                    inner.finish(base, key, Err(err));
                }
            } else if !inner.suspended && inner.inflight < inner.conf.max_inflight() {
                inner.start(base, key);
            } else {
                inner.queue.push_back(key);
            }
            (key, stale)
        };
        // The callbacks of requests whose base is gone, dropped with the state unborrowed.
        drop(stale);
        // Requests that failed while being made (the base could not take their events) are
        // reported from the loop too.
        if !self.inner.borrow().done.is_empty() {
            let rc = self.inner.clone();
            let _ = base.once(-1, What::NONE, None, move |base, _| run_done(&rc, base));
        }
        Request {
            inner: Rc::downgrade(&self.inner),
            key,
        }
    }
}

impl Request {
    /// Cancels the request (libevent's `evdns_cancel_request`, except that the callback is
    /// dropped without running). Works from anywhere, including another request's callback; a
    /// request whose callback already ran, or is running, is not cancelled. Returns whether it was.
    pub fn cancel(&self, base: &mut EventBase) -> bool {
        self.take(base).is_some()
    }

    /// Cancels the request as libevent does: its callback runs from the loop with
    /// [`DnsError::Cancelled`]. Returns whether the request was still pending.
    pub fn cancel_and_notify(&self, base: &mut EventBase) -> bool {
        let Some(cb) = self.take(base) else {
            return false;
        };
        let mut cb = Some(cb);
        let scheduled = base.once(-1, What::NONE, None, {
            let mut slot = cb.take();
            move |base, _| {
                if let Some(cb) = slot.take() {
                    cb(base, Err(DnsError::Cancelled))
                }
            }
        });
        if scheduled.is_err() {
            if let Some(cb) = cb {
                cb(base, Err(DnsError::Cancelled));
            }
        }
        true
    }

    fn take(&self, base: &mut EventBase) -> Option<Callback> {
        let rc = self.inner.upgrade()?;
        let mut inner = rc.borrow_mut();
        let stale = inner.bind(base);
        if !stale.is_empty() {
            // The request's base is gone, and the request with it.
            drop(inner);
            drop(stale);
            return None;
        }
        if let Some(mut req) = inner.reqs.remove(&self.key) {
            inner.teardown(base, &mut req);
            inner.queue.retain(|&k| k != self.key);
            if req.started {
                inner.inflight -= 1;
                inner.start_queued(base);
            }
            inner.stop_probes_if_idle(base);
            let cb = req.cb.take();
            drop(inner);
            run_done(&rc, base);
            return cb;
        }
        let pos = inner.done.iter().position(|(k, _, _)| *k == self.key)?;
        inner.done.remove(pos).map(|(_, cb, _)| cb)
    }
}

/// Runs the callbacks of finished requests, one at a time, with the state not borrowed.
fn run_done(rc: &Rc<RefCell<Inner>>, base: &mut EventBase) {
    loop {
        let next = rc.borrow_mut().done.pop_front();
        match next {
            Some((_, cb, r)) => cb(base, r),
            None => break,
        }
    }
}

/// The names to ask, in order, for `name` (libevent's search rules): as it is if it ends with a
/// dot; else, with the search domains appended, after the name as it is if it has at least
/// `ndots` dots, or before it otherwise.
fn candidates(name: &str, conf: &ResolvConf) -> Names {
    let Some(plain) = wire::fqdn(name) else {
        return Names::Many(Vec::new());
    };
    if name.ends_with('.') || conf.search().is_empty() {
        return Names::One(plain);
    }
    let searched = conf
        .search()
        .iter()
        .filter_map(|d| wire::fqdn(&format!("{name}.{d}")));
    let mut out: Vec<QName> = Vec::new();
    if name.matches('.').count() as u32 >= conf.ndots() {
        out.push(plain);
        out.extend(searched);
    } else {
        out.extend(searched);
        out.push(plain);
    }
    let mut unique: Vec<QName> = Vec::with_capacity(out.len());
    for n in out {
        if !unique.iter().any(|u| u.same(&n)) {
            unique.push(n);
        }
    }
    Names::Many(unique)
}

/// A persistent event on `fd`, added; freed again if it cannot be added.
fn watch<F>(base: &mut EventBase, fd: RawFd, what: What, cb: F) -> io::Result<EventId>
where
    F: FnMut(&mut EventBase, Fired) + 'static,
{
    let ev = base.new_event(fd, what, cb).map_err(io::Error::other)?;
    if let Err(e) = base.add(ev, None) {
        let _ = base.free(ev);
        return Err(io::Error::other(e));
    }
    Ok(ev)
}

/// A UDP socket connected to `to`, bound and sized as the configuration says.
fn bind_udp(to: SocketAddr, conf: &ResolvConf) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let ip = match (to, conf.bind_to()) {
        (SocketAddr::V4(_), Some(ip @ IpAddr::V4(_)))
        | (SocketAddr::V6(_), Some(ip @ IpAddr::V6(_))) => ip,
        (SocketAddr::V4(_), _) => Ipv4Addr::UNSPECIFIED.into(),
        (SocketAddr::V6(_), _) => Ipv6Addr::UNSPECIFIED.into(),
    };
    // Non-blocking from its creation (no separate fcntl).
    let sock = Socket::new(
        Domain::for_address(to),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )?;
    let (rcv, snd) = conf.socket_buffers();
    if let Some(n) = rcv {
        sock.set_recv_buffer_size(n)?;
    }
    if let Some(n) = snd {
        sock.set_send_buffer_size(n)?;
    }
    sock.bind(&SocketAddr::new(ip, 0).into())?;
    sock.connect(&to.into())?;
    Ok(sock.into())
}

fn connect_tcp(to: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    match sock.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(sock.into())
}

/// What happened to a transmission, for the request that made it.
enum Event {
    Verdict(Verdict),
    /// The transmission is dead (timeout, refused, a TCP connection that failed or sent garbage).
    Failed {
        timeout: bool,
    },
    /// No transmission could be made (no socket, no event): an attempt used up, no server blamed.
    LocalError,
}

impl Inner {
    /// Makes sure the state belongs to `base`'s lifetime: if the base that the resolver's events
    /// lived in was dropped, everything that referred to its events is forgotten (those events
    /// are gone; their ids must never be used in another base). Returns the callbacks of the
    /// requests that went with it, to drop once the state is no longer borrowed. A resolver used
    /// with two live bases at once is still a mistake that this cannot see.
    fn bind(&mut self, base: &mut EventBase) -> Vec<Callback> {
        if self
            .marker
            .as_ref()
            .is_some_and(|(_, w)| w.strong_count() > 0)
        {
            return Vec::new();
        }
        let mut stale = Vec::new();
        if self.marker.is_some() {
            stale.extend(self.reqs.drain().filter_map(|(_, mut r)| r.cb.take()));
            stale.extend(self.done.drain(..).map(|(_, cb, _)| cb));
            self.queue.clear();
            self.inflight = 0;
            for s in &mut self.servers {
                s.probe_timer = None;
                s.probe = None;
                // Their events went with the base; the sockets close here.
                s.pool.clear();
            }
            self.timer_pool.clear();
            self.common = None;
        }
        let token = Rc::new(());
        let weak = Rc::downgrade(&token);
        // Never added: it holds the token, and no fd, timer or slot in the loop's count.
        let id = base.new_timer(move |_, _| {
            let _ = &token;
        });
        self.marker = Some((id, weak));
        stale
    }

    fn rc(&self) -> Rc<RefCell<Inner>> {
        self.me.upgrade().expect("called through a live Rc")
    }

    /// Where a new request starts: the first server that is up, counting from the first (or, with
    /// `rotate`, from the next in turn).
    fn first_server(&mut self) -> usize {
        let n = self.servers.len();
        if n == 0 {
            return 0;
        }
        let start = if self.conf.rotate() {
            self.rotate_next = (self.rotate_next + 1) % n;
            (self.rotate_next + n - 1) % n
        } else {
            0
        };
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&s| !self.servers[s].down)
            .unwrap_or(start)
    }

    /// The server after `from` for a request, skipping those in `failed` and preferring those up.
    fn next_server(&self, from: usize, failed: u64) -> Option<usize> {
        let n = self.servers.len();
        let order = (1..=n).map(|i| (from + i) % n);
        let usable = |s: &usize| failed & (1u64 << s) == 0;
        order
            .clone()
            .filter(usable)
            .find(|&s| !self.servers[s].down)
            .or_else(|| order.clone().find(usable))
    }

    fn start(&mut self, base: &mut EventBase, key: u64) {
        let timer = match self.timer_pool.pop() {
            Some(t) => {
                t.route.set(key);
                t
            }
            None => {
                let route = Rc::new(Cell::new(key));
                let (rc, r) = (self.rc(), route.clone());
                let ev = base.new_timer(move |base, _| {
                    let key = r.get();
                    if key != 0 {
                        rc.borrow_mut()
                            .on_event(base, key, Event::Failed { timeout: true });
                        run_done(&rc, base);
                    }
                });
                Timer { ev, route }
            }
        };
        let Some(req) = self.reqs.get_mut(&key) else {
            self.put_timer(base, timer);
            return;
        };
        req.started = true;
        req.timer = Some(timer);
        self.inflight += 1;
        let server = self.first_server();
        if let Some(req) = self.reqs.get_mut(&key) {
            req.server = server;
        }
        for s in 0..self.servers.len() {
            self.schedule_probe(base, s);
        }
        self.transmit(base, key);
    }

    fn start_queued(&mut self, base: &mut EventBase) {
        while !self.suspended && self.inflight < self.conf.max_inflight() {
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            if self.reqs.get(&key).is_some_and(|r| !r.started) {
                self.start(base, key);
            }
        }
    }

    /// Sends the request's current name to its current server over UDP.
    fn transmit(&mut self, base: &mut EventBase, key: u64) {
        let query = self.fresh_query(key);
        let Some(req) = self.reqs.get_mut(&key) else {
            return;
        };
        let old = req.tx.take();
        req.sent += 1;
        let server = req.server;
        let kind = req.kind;
        if let Some(tx) = old {
            self.release(base, tx, true);
        }
        let armed = match query {
            Some(q) => self
                .udp_send(base, key, server, &q)
                .map(|(ev, sock, route)| Tx {
                    query: q,
                    kind,
                    ev,
                    io: Io::Udp(sock),
                    route: Some((route, server)),
                }),
            None => Err(io::Error::other("cannot encode")),
        };
        self.arm(base, key, armed);
    }

    /// The query for the request's current name: a random transaction id, and (unless turned
    /// off) a random case for each letter.
    fn fresh_query(&mut self, key: u64) -> Option<Vec<u8>> {
        let id = self.rng.u16();
        let req = self.reqs.get(&key)?;
        let out = self.query_bufs.pop().unwrap_or_default();
        let name = &req.names.as_slice()[req.cur];
        let mut q = name.query(id, req.kind, &mut self.scratch, out)?;
        if self.conf.randomize_case() {
            let rng = &mut self.rng;
            wire::randomize_case(&mut q, || rng.u64());
        }
        Some(q)
    }

    /// Sends `query` for request `key` to `server` from a pooled socket, or from a new one
    /// (connected, watched, its event routed to `key`).
    fn udp_send(
        &mut self,
        base: &mut EventBase,
        key: u64,
        server: usize,
        query: &[u8],
    ) -> io::Result<(EventId, UdpSocket, Rc<Cell<u64>>)> {
        if let Some(p) = self.servers[server].pool.pop() {
            return match p.sock.send(query) {
                Ok(_) => {
                    p.route.set(key);
                    Ok((p.ev, p.sock, p.route))
                }
                Err(e) => {
                    let _ = base.free(p.ev);
                    Err(e)
                }
            };
        }
        let sock = bind_udp(self.servers[server].addr, &self.conf)?;
        sock.send(query)?;
        let route = Rc::new(Cell::new(key));
        let edge = base.features().contains(Features::ET);
        let ev = self.watch_udp(base, sock.as_raw_fd(), route.clone(), edge)?;
        Ok((ev, sock, route))
    }

    /// Watches a query socket: readiness goes to the request `route` names, or (0) drains the
    /// socket in its pool.
    ///
    /// Edge-triggered where the backend can (epoll): the kernel then reports each arrival once,
    /// instead of reporting the socket again at the next wait, where a level-triggered epoll polls
    /// every socket that had a reply once more only to find it empty (with a socket per query in
    /// flight, that second poll was a tenth of the kernel's time a lookup). A wake-up reads until
    /// the reply, so a datagram left behind (a duplicate, junk) waits for the socket's next
    /// arrival, where it is read first and dropped. A socket flooded past the wake-up's budget is
    /// watched level-triggered from then on ([`Inner::level_trigger`]), so that what is left
    /// wakes it again without holding the loop.
    fn watch_udp(
        &self,
        base: &mut EventBase,
        fd: RawFd,
        route: Rc<Cell<u64>>,
        edge: bool,
    ) -> io::Result<EventId> {
        let rc = self.rc();
        let mut what = What::READ | What::PERSIST;
        if edge {
            what |= What::ET;
        }
        watch(base, fd, what, move |base, fired| match route.get() {
            0 => rc.borrow_mut().drain_pooled(base, fired.id),
            key => {
                rc.borrow_mut().on_udp_readable(base, key);
                run_done(&rc, base);
            }
        })
    }

    /// After a wake-up that stopped at its budget with datagrams perhaps left: an edge-triggered
    /// socket would not be woken for those, so it is watched level-triggered from now on (a
    /// socket that sees floods is not worth the saving). Returns the event now watching it.
    fn level_trigger(
        &mut self,
        base: &mut EventBase,
        ev: EventId,
        fd: RawFd,
        route: &Rc<Cell<u64>>,
    ) -> io::Result<EventId> {
        if !base.event_info(ev).is_ok_and(|i| i.what.contains(What::ET)) {
            return Ok(ev);
        }
        let _ = base.free(ev);
        self.watch_udp(base, fd, route.clone(), false)
    }

    /// Ends a transmission: its UDP socket goes to its server's pool if `reuse` (and the pool is
    /// not full); otherwise its event is freed and the socket closed.
    fn release(&mut self, base: &mut EventBase, tx: Tx, reuse: bool) {
        let cap = self.conf.max_inflight();
        if self.query_bufs.len() < cap {
            self.query_bufs.push(tx.query);
        }
        match (tx.io, tx.route) {
            (Io::Udp(sock), Some((route, server)))
                if reuse && self.servers.get(server).is_some_and(|s| s.pool.len() < cap) =>
            {
                route.set(0);
                self.servers[server].pool.push(Pooled {
                    sock,
                    ev: tx.ev,
                    route,
                });
            }
            _ => {
                let _ = base.free(tx.ev);
            }
        }
    }

    /// A pooled socket is readable: a late or stray datagram, read and dropped.
    fn drain_pooled(&mut self, base: &mut EventBase, ev: EventId) {
        let found = self
            .servers
            .iter()
            .flat_map(|s| s.pool.iter())
            .find(|p| p.ev == ev);
        let Some(p) = found else {
            // Not in any pool (cannot happen while the routes are kept right): stop it waking.
            let _ = base.free(ev);
            return;
        };
        let mut buf = [0u8; 512];
        let mut emptied = false;
        for _ in 0..64 {
            match p.sock.recv(&mut buf) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    emptied = true;
                    break;
                }
            }
        }
        if !emptied {
            let (fd, route) = (p.sock.as_raw_fd(), p.route.clone());
            let now = self.level_trigger(base, ev, fd, &route);
            let pooled = self
                .servers
                .iter_mut()
                .flat_map(|s| s.pool.iter_mut())
                .find(|p| p.ev == ev);
            match (now, pooled) {
                (Ok(now), Some(p)) => p.ev = now,
                // No event could watch it: the socket leaves the pool and closes.
                (Err(_), Some(_)) => {
                    for s in &mut self.servers {
                        s.pool.retain(|p| p.ev != ev);
                    }
                }
                (Ok(now), None) => {
                    let _ = base.free(now);
                }
                (Err(_), None) => {}
            }
        }
    }

    /// Closes every pooled socket (when no request is pending, so that the resolver holds no
    /// event in the base).
    fn clear_pools(&mut self, base: &mut EventBase) {
        for s in &mut self.servers {
            for p in s.pool.drain(..) {
                let _ = base.free(p.ev);
            }
        }
        for t in self.timer_pool.drain(..) {
            let _ = base.free(t.ev);
        }
        self.query_bufs.clear();
    }

    /// Records the new transmission and re-arms the request's timer; a transmission that could
    /// not be made counts as one that failed at once.
    fn arm(&mut self, base: &mut EventBase, key: u64, tx: io::Result<Tx>) {
        let timeout = self.conf.timeout();
        if self.common != Some(timeout) {
            // Once per base and timeout; should the base refuse (256 common timeouts already),
            // the timers go in its heap, as they would anyway.
            let _ = base.init_common_timeout(timeout);
            self.common = Some(timeout);
        }
        let Some(req) = self.reqs.get_mut(&key) else {
            if let Ok(tx) = tx {
                let _ = base.free(tx.ev);
            }
            return;
        };
        match tx {
            Ok(tx) => {
                req.tx = Some(tx);
                if let Some(t) = &req.timer {
                    let _ = base.add(t.ev, Some(timeout));
                }
            }
            Err(_) => self.on_event(base, key, Event::LocalError),
        }
    }

    /// Asks the request's current question again over TCP, to the same server.
    fn transmit_tcp(&mut self, base: &mut EventBase, key: u64) {
        let query = self.fresh_query(key);
        let Some(req) = self.reqs.get_mut(&key) else {
            return;
        };
        let old = req.tx.take();
        let addr = self.servers[req.server].addr;
        let kind = req.kind;
        if let Some(tx) = old {
            self.release(base, tx, true);
        }
        let made = query
            .ok_or_else(|| io::Error::other("cannot encode"))
            .and_then(|q| {
                let stream = connect_tcp(addr)?;
                let mut out = Vec::with_capacity(q.len() + 2);
                out.extend_from_slice(&(q.len() as u16).to_be_bytes());
                out.extend_from_slice(&q);
                let rc = self.rc();
                let ev = watch(
                    base,
                    stream.as_raw_fd(),
                    What::WRITE | What::PERSIST,
                    move |base, fired| {
                        rc.borrow_mut().on_tcp(base, key, fired.what);
                        run_done(&rc, base);
                    },
                )?;
                Ok(Tx {
                    query: q,
                    kind,
                    ev,
                    io: Io::Tcp {
                        stream,
                        connected: false,
                        out,
                        written: 0,
                        input: Vec::new(),
                    },
                    route: None,
                })
            });
        self.arm(base, key, made);
    }

    fn on_udp_readable(&mut self, base: &mut EventBase, key: u64) {
        let mut buf = std::mem::take(&mut self.buf);
        // A bounded number of datagrams a wake-up, so a flood of junk cannot hold the loop (the
        // rest wake the socket again: it is level-triggered, or made so by `flooded`).
        let mut budget = 64;
        let event = loop {
            if budget == 0 {
                self.buf = buf;
                return self.flooded(base, key);
            }
            budget -= 1;
            let Some(Tx {
                io: Io::Udp(sock),
                query,
                kind,
                ..
            }) = self.reqs.get(&key).and_then(|r| r.tx.as_ref())
            else {
                break None;
            };
            match sock.recv(&mut buf) {
                Ok(n) => match wire::check_reply(&buf[..n], query, *kind, false) {
                    Verdict::Ignore => continue,
                    v => break Some(Event::Verdict(v)),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP port unreachable and the like: this server will not answer.
                Err(_) => break Some(Event::Failed { timeout: false }),
            }
        };
        self.buf = buf;
        if let Some(event) = event {
            self.on_event(base, key, event);
        }
    }

    /// A request's socket used up a wake-up's budget on junk: see [`Inner::level_trigger`].
    fn flooded(&mut self, base: &mut EventBase, key: u64) {
        let Some(tx) = self.reqs.get(&key).and_then(|r| r.tx.as_ref()) else {
            return;
        };
        let (Io::Udp(sock), Some((route, _))) = (&tx.io, &tx.route) else {
            return;
        };
        let (ev, fd, route) = (tx.ev, sock.as_raw_fd(), route.clone());
        match self.level_trigger(base, ev, fd, &route) {
            Ok(now) => {
                if let Some(tx) = self.reqs.get_mut(&key).and_then(|r| r.tx.as_mut()) {
                    tx.ev = now;
                }
            }
            // The socket cannot be watched any more: this transmission is lost (the socket is
            // not pooled; the next attempt goes out on another).
            Err(_) => {
                if let Some(tx) = self.reqs.get_mut(&key).and_then(|r| r.tx.as_mut()) {
                    tx.route = None;
                }
                self.on_event(base, key, Event::LocalError);
            }
        }
    }

    fn on_tcp(&mut self, base: &mut EventBase, key: u64, what: What) {
        let rc = self.rc();
        let Some(req) = self.reqs.get_mut(&key) else {
            return;
        };
        let Some(tx) = req.tx.as_mut() else {
            return;
        };
        let Io::Tcp {
            stream,
            connected,
            out,
            written,
            input,
        } = &mut tx.io
        else {
            return;
        };
        let failed = Event::Failed { timeout: false };
        if what.contains(What::WRITE) {
            if !*connected {
                match stream.take_error() {
                    Ok(None) => *connected = true,
                    _ => return self.on_event(base, key, failed),
                }
            }
            while *written < out.len() {
                match stream.write(&out[*written..]) {
                    Ok(0) => return self.on_event(base, key, failed),
                    Ok(n) => *written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.on_event(base, key, failed),
                }
            }
            // All sent: watch for the reply instead.
            let _ = base.free(tx.ev);
            let fd = stream.as_raw_fd();
            let ev = watch(base, fd, What::READ | What::PERSIST, move |base, fired| {
                rc.borrow_mut().on_tcp(base, key, fired.what);
                run_done(&rc, base);
            });
            match ev {
                Ok(ev) => tx.ev = ev,
                Err(_) => return self.on_event(base, key, failed),
            }
            return;
        }
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return self.on_event(base, key, failed),
                Ok(n) => {
                    input.extend_from_slice(&chunk[..n]);
                    if input.len() >= 2 {
                        let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
                        if input.len() >= 2 + len {
                            let v = wire::check_reply(&input[2..2 + len], &tx.query, tx.kind, true);
                            let event = match v {
                                // On a stream of its own, anything but the reply is a broken server.
                                Verdict::Ignore => failed,
                                v => Event::Verdict(v),
                            };
                            return self.on_event(base, key, event);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.on_event(base, key, failed),
            }
        }
    }

    /// Moves a request on after what happened to its transmission.
    fn on_event(&mut self, base: &mut EventBase, key: u64, event: Event) {
        let attempts = self.conf.attempts();
        let max_timeouts = self.conf.max_timeouts();
        let tcp = self.conf.tcp();
        let Some(req) = self.reqs.get_mut(&key) else {
            return;
        };
        let server = req.server;
        match event {
            Event::Failed { .. } | Event::LocalError => {
                let old = req.tx.take();
                let done = req.sent >= attempts;
                let failed = req.failed;
                if let Some(tx) = old {
                    // A socket that reported an error (ICMP unreachable) is not kept.
                    let reuse = matches!(event, Event::Failed { timeout: true });
                    self.release(base, tx, reuse);
                }
                let s = &mut self.servers[server];
                let mark_down = match event {
                    Event::Failed { timeout } => {
                        s.timeouts += 1;
                        !s.down && (s.timeouts >= max_timeouts || !timeout)
                    }
                    _ => false,
                };
                if mark_down {
                    self.mark_down(base, server);
                }
                if done {
                    return self.finish(base, key, Err(DnsError::Timeout));
                }
                if let Some(next) = self.next_server(server, failed) {
                    if let Some(req) = self.reqs.get_mut(&key) {
                        req.server = next;
                    }
                }
                self.transmit(base, key)
            }
            Event::Verdict(v) => {
                self.mark_up(base, server);
                match v {
                    Verdict::Ignore => {}
                    Verdict::Truncated if tcp => self.transmit_tcp(base, key),
                    Verdict::Truncated => self.finish(base, key, Err(DnsError::Truncated)),
                    Verdict::Answer(found) => {
                        let Some(req) = self.reqs.get_mut(&key) else {
                            return;
                        };
                        // The reply was checked against the transmission's query.
                        let query = req.tx.as_ref().map_or(&[][..], |tx| &tx.query[..]);
                        let name = req.names.as_mut_slice()[req.cur].take_answer_name(query);
                        self.finish(base, key, Ok(found.answer(name)))
                    }
                    Verdict::Error(e @ (DnsError::NotExist | DnsError::NoData)) => {
                        let Some(req) = self.reqs.get_mut(&key) else {
                            return;
                        };
                        req.nodata |= e == DnsError::NoData;
                        if req.cur + 1 < req.names.as_slice().len() {
                            req.cur += 1;
                            req.sent = 0;
                            req.failed = 0;
                            self.transmit(base, key)
                        } else {
                            let e = if req.nodata { DnsError::NoData } else { e };
                            self.finish(base, key, Err(e))
                        }
                    }
                    Verdict::Error(
                        e @ (DnsError::ServerFailed | DnsError::Refused | DnsError::NotImplemented),
                    ) => {
                        let Some(req) = self.reqs.get_mut(&key) else {
                            return;
                        };
                        req.failed |= 1u64 << server;
                        let failed = req.failed;
                        match self.next_server(server, failed) {
                            Some(next) => {
                                let req = self.reqs.get_mut(&key).expect("looked up above");
                                req.server = next;
                                // Moving on from a server that answered uses up no attempt.
                                req.sent = req.sent.saturating_sub(1);
                                self.transmit(base, key)
                            }
                            None => self.finish(base, key, Err(e)),
                        }
                    }
                    Verdict::Error(e) => self.finish(base, key, Err(e)),
                }
            }
        }
    }

    /// Ends a request: its events and socket go, its slot in flight goes to a queued request, and
    /// its callback is queued to run once the state is no longer borrowed.
    fn finish(&mut self, base: &mut EventBase, key: u64, outcome: Outcome) {
        let Some(mut req) = self.reqs.remove(&key) else {
            return;
        };
        self.teardown(base, &mut req);
        if let Some(cb) = req.cb.take() {
            self.done.push_back((key, cb, outcome));
        }
        if req.started {
            self.inflight -= 1;
            self.start_queued(base);
        }
        self.stop_probes_if_idle(base);
    }

    fn stop_probes_if_idle(&mut self, base: &mut EventBase) {
        if self.reqs.is_empty() {
            for s in 0..self.servers.len() {
                self.stop_probe(base, s);
            }
            self.clear_pools(base);
        }
    }

    fn teardown(&mut self, base: &mut EventBase, req: &mut Req) {
        if let Some(tx) = req.tx.take() {
            self.release(base, tx, true);
        }
        if let Some(t) = req.timer.take() {
            self.put_timer(base, t);
        }
    }

    /// A finished request's timer: disarmed (a timeout that expired and waits to run is dropped
    /// too) and pooled for the next request, or freed if the pool is full.
    fn put_timer(&mut self, base: &mut EventBase, t: Timer) {
        let _ = base.del(t.ev);
        t.route.set(0);
        if self.timer_pool.len() < self.conf.max_inflight() {
            self.timer_pool.push(t);
        } else {
            let _ = base.free(t.ev);
        }
    }

    fn mark_up(&mut self, base: &mut EventBase, server: usize) {
        let s = &mut self.servers[server];
        s.timeouts = 0;
        if s.down {
            s.down = false;
            s.backoff = self.conf.initial_probe_timeout();
            self.stop_probe(base, server);
        }
    }

    fn mark_down(&mut self, base: &mut EventBase, server: usize) {
        self.servers[server].down = true;
        self.schedule_probe(base, server);
    }

    /// Arms a down server's probe timer (if it has none). Probes run only while requests are
    /// pending, so an idle resolver holds no event and `dispatch` can return.
    fn schedule_probe(&mut self, base: &mut EventBase, server: usize) {
        if !self.servers[server].down
            || self.servers[server].probe_timer.is_some()
            || self.reqs.is_empty()
        {
            return;
        }
        let rc = self.rc();
        let timer = base.new_timer(move |base, _| {
            rc.borrow_mut().on_probe_timer(base, server);
            run_done(&rc, base);
        });
        let backoff = self.servers[server].backoff;
        let _ = base.add(timer, Some(backoff));
        self.servers[server].probe_timer = Some(timer);
    }

    fn stop_probe(&mut self, base: &mut EventBase, server: usize) {
        let s = &mut self.servers[server];
        if let Some(t) = s.probe_timer.take() {
            let _ = base.free(t);
        }
        if let Some(tx) = s.probe.take() {
            let _ = base.free(tx.ev);
        }
    }

    /// The probe timer: sends a probe, or (if one is out) counts it lost and waits longer.
    fn on_probe_timer(&mut self, base: &mut EventBase, server: usize) {
        let timeout = self.conf.timeout();
        let id = self.rng.u16();
        let s = &mut self.servers[server];
        let Some(timer) = s.probe_timer else {
            return;
        };
        if let Some(tx) = s.probe.take() {
            let _ = base.free(tx.ev);
            s.backoff = (s.backoff * 3).min(PROBE_MAX);
            let _ = base.add(timer, Some(s.backoff));
            return;
        }
        let addr = s.addr;
        let rc = self.rc();
        let probe = wire::encode_query(
            id,
            Name::root().iter(),
            Kind::A,
            &mut self.scratch,
            Vec::new(),
        )
        .ok_or_else(|| io::Error::other("cannot encode"))
        .and_then(|q| {
            let sock = bind_udp(addr, &self.conf)?;
            sock.send(&q)?;
            let ev = watch(
                base,
                sock.as_raw_fd(),
                What::READ | What::PERSIST,
                move |base, _| {
                    rc.borrow_mut().on_probe_readable(base, server);
                    run_done(&rc, base);
                },
            )?;
            Ok(Tx {
                query: q,
                kind: Kind::A,
                ev,
                io: Io::Udp(sock),
                route: None,
            })
        });
        let s = &mut self.servers[server];
        match probe {
            Ok(tx) => {
                s.probe = Some(tx);
                let _ = base.add(timer, Some(timeout));
            }
            Err(_) => {
                s.backoff = (s.backoff * 3).min(PROBE_MAX);
                let _ = base.add(timer, Some(s.backoff));
            }
        }
    }

    fn on_probe_readable(&mut self, base: &mut EventBase, server: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut up = false;
        if let Some(Tx {
            io: Io::Udp(sock),
            query,
            kind,
            ..
        }) = self.servers[server].probe.as_ref()
        {
            while let Ok(n) = sock.recv(&mut buf) {
                if !matches!(
                    wire::check_reply(&buf[..n], query, *kind, true),
                    Verdict::Ignore
                ) {
                    up = true;
                    break;
                }
            }
        }
        self.buf = buf;
        if up {
            self.mark_up(base, server);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_sockets_follow_bind_to_and_buffer_options() {
        let to: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let mut conf = ResolvConf::new();
        assert!(conf.set_option("bind-to:127.0.0.2"));
        assert!(conf.set_option("so-rcvbuf:65536") && conf.set_option("so-sndbuf:32768"));
        let sock = bind_udp(to, &conf).unwrap();
        assert_eq!(
            sock.local_addr().unwrap().ip(),
            IpAddr::from([127, 0, 0, 2])
        );
        let s = socket2::SockRef::from(&sock);
        // Linux doubles what was asked for (room for its bookkeeping).
        assert!(s.recv_buffer_size().unwrap() >= 65536);
        assert!(s.send_buffer_size().unwrap() >= 32768);
        // An address of the other family is not used: the socket binds to the any address.
        let mut v6 = ResolvConf::new();
        assert!(v6.set_option("bind-to:[::1]:99"));
        assert_eq!(v6.bind_to(), Some(IpAddr::from(Ipv6Addr::LOCALHOST)));
        let sock = bind_udp(to, &v6).unwrap();
        // (connected to 127.0.0.1, it then has the route's source address)
        assert_eq!(
            sock.local_addr().unwrap().ip(),
            IpAddr::from([127, 0, 0, 1])
        );
        assert!(!v6.set_option("bind-to:nowhere"));
    }
}
