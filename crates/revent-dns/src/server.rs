//! A DNS server port (libevent's `evdns_server_port`): queries in over UDP and TCP, a callback per
//! request, answers out when the callback (or anything later) says so.
//!
//! # How a request runs
//! Each query that decodes is given to the port's callback as a [`ServerRequest`], a small handle
//! to the request kept inside the port. The callback (or any later code holding the handle: a
//! timer, another request's callback) adds records and calls [`ServerRequest::respond`], or
//! [`ServerRequest::drop_request`] to send nothing. Either ends the request; the handle is then
//! *stale* and every call on it returns [`ServerError::Stale`] (handles carry a generation, so a
//! stale one never reaches a newer request in the same slot).
//!
//! What the callback never sees: datagrams too short for a header and messages that are
//! themselves responses (dropped), other opcodes (NOTIMP at once), and messages that do not
//! decode (QDCOUNT lies, compression loops, bad names or records: FORMERR at once, with the
//! query's id). When [`ServerOptions::max_pending`] requests are waiting for their answers, new
//! queries get REFUSED at once.
//!
//! # UDP and truncation
//! A UDP answer longer than 512 bytes, or than the client's EDNS payload size (at most 4096), is
//! sent as its question alone with TC set: the client asks again over TCP, where the whole
//! answer goes. Answers that cannot be sent at once (a full socket buffer) wait in a bounded queue.
//!
//! # TCP
//! Length-prefixed messages (RFC 1035 4.2.2), several per connection, answered in the order
//! their answers are made. Limits: [`ServerOptions::tcp_max_clients`] connections (more are
//! closed as soon as accepted), [`ServerOptions::tcp_max_pipeline`] unanswered queries per
//! connection (reading pauses beyond that), [`ServerOptions::tcp_max_output`] bytes of answers
//! the client has not read (beyond that it is closed), and [`ServerOptions::tcp_idle_timeout`]:
//! a connection on which nothing is read or written for that long is closed, unless it only
//! waits for the callback's answers. A zero length prefix closes the connection. A client that
//! closes its side still gets the answers to the queries it sent.

use crate::server_wire::{self, Frame, Incoming, ParsedQuery, Sections};
use crate::wire;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NULL, PTR, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, Restrict};
use revent::{EventBase, EventId, What};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// The port's callback: it gets each new request (see [`ServerPort::new`]).
type Callback = Rc<RefCell<Box<dyn FnMut(&mut EventBase, ServerRequest)>>>;

/// How many records one answer may carry; more cannot fit in a message anyway.
const MAX_RECORDS: usize = 4096;
/// How many datagrams a wake-up reads, so a flood cannot hold the loop (the event is
/// level-triggered: the rest wake it again).
const UDP_BUDGET: usize = 64;
/// How many answers wait for a full UDP socket buffer before more are dropped.
const UDP_QUEUE: usize = 1024;
/// How many connections a wake-up accepts.
const ACCEPT_BUDGET: usize = 16;

/// Limits of a [`ServerPort`]. The defaults suit a small server; every field may be changed.
///
/// ```
/// use revent_dns::ServerOptions;
/// use std::time::Duration;
/// let opts = ServerOptions { tcp_idle_timeout: Duration::from_secs(2), ..ServerOptions::default() };
/// assert_eq!(opts.tcp_max_clients, ServerOptions::default().tcp_max_clients);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Requests given to the callback and not yet answered or dropped, over UDP and TCP
    /// together; beyond this, queries are answered REFUSED at once. Default 10,000.
    pub max_pending: usize,
    /// TCP connections open at once; more are closed as soon as they are accepted
    /// (libevent 2.2's `EVDNS_SOPT_TCP_MAX_CLIENTS`). Default 100.
    pub tcp_max_clients: usize,
    /// A TCP connection with no byte read or written for this long is closed, unless it is
    /// only waiting for answers the callback has not made yet (`EVDNS_SOPT_TCP_IDLE_TIMEOUT`).
    /// Default 10 s.
    pub tcp_idle_timeout: Duration,
    /// Unanswered queries per TCP connection; beyond this the port stops reading from it until
    /// some are answered. Default 64.
    pub tcp_max_pipeline: usize,
    /// Bytes of answers a TCP client has not read yet; beyond this it is closed. Default 1 MiB.
    pub tcp_max_output: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_pending: 10_000,
            tcp_max_clients: 100,
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_max_pipeline: 64,
            tcp_max_output: 1 << 20,
        }
    }
}

/// Why a call on a [`ServerRequest`] failed.
///
/// ```
/// use revent_dns::ServerError;
/// assert_eq!(ServerError::Stale.to_string(), "the request was already answered or dropped");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerError {
    /// The request was already answered or dropped, or its port closed.
    Stale,
    /// A name that cannot go in a message (a label over 63 bytes, over 255 in all, empty labels).
    InvalidName,
    /// Record data that is not valid for its type (an A record that is not 4 bytes, ...), or a
    /// TXT string over 255 bytes.
    InvalidRecord,
    /// The answer already has as many records as a message can carry.
    TooManyRecords,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerError::Stale => "the request was already answered or dropped",
            ServerError::InvalidName => "invalid name",
            ServerError::InvalidRecord => "invalid record data",
            ServerError::TooManyRecords => "too many records",
        })
    }
}

impl std::error::Error for ServerError {}

/// A DNS response code, for [`ServerRequest::respond`] (the low 4 bits go in the header).
///
/// ```
/// use revent_dns::Rcode;
/// assert_eq!(Rcode::NXDOMAIN, Rcode(3));
/// assert_eq!(Rcode::REFUSED.0, 5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rcode(pub u8);

impl Rcode {
    /// No error (`DNS_ERR_NONE`).
    pub const NOERROR: Rcode = Rcode(0);
    /// The query could not be understood (`DNS_ERR_FORMAT`).
    pub const FORMERR: Rcode = Rcode(1);
    /// The server failed (`DNS_ERR_SERVERFAILED`).
    pub const SERVFAIL: Rcode = Rcode(2);
    /// The name does not exist (`DNS_ERR_NOTEXIST`).
    pub const NXDOMAIN: Rcode = Rcode(3);
    /// The kind of query is not implemented (`DNS_ERR_NOTIMPL`).
    pub const NOTIMP: Rcode = Rcode(4);
    /// The server refuses to answer (`DNS_ERR_REFUSED`).
    pub const REFUSED: Rcode = Rcode(5);
}

/// A section of an answer, for [`ServerRequest::add_record`] (libevent's
/// `EVDNS_ANSWER_SECTION`, `EVDNS_AUTHORITY_SECTION`, `EVDNS_ADDITIONAL_SECTION`).
///
/// ```
/// use revent_dns::Section;
/// assert_ne!(Section::Answer, Section::Additional);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// Records that answer the question.
    Answer,
    /// Records naming the authority for the answer (NS, SOA).
    Authority,
    /// Records that help with the others (addresses of names they mention).
    Additional,
}

/// The data of a record added with [`ServerRequest::add_record`] (libevent's `is_name`
/// argument says which).
///
/// ```
/// use revent_dns::RecordData;
/// let a = RecordData::Raw(vec![192, 0, 2, 1]);
/// let ns = RecordData::Name("ns1.example".into());
/// assert_ne!(a, ns);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    /// A host name (for NS, CNAME, PTR and the like), encoded as a name.
    Name(String),
    /// The record's data as it goes on the wire. For the types hickory-proto knows it must be
    /// valid for the type; other types are sent as given.
    Raw(Vec<u8>),
}

/// One question of a request.
///
/// ```
/// use revent_dns::Question;
/// let q = Question { name: "www.example.com".into(), qtype: Question::A, qclass: Question::IN };
/// assert_eq!(q.qtype, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The name asked for, as received (case kept), without the final dot; the root is `""`.
    /// Bytes that are not printable ASCII, and dots inside a label, are escaped as `\DDD` and
    /// `\.`.
    pub name: String,
    /// The type asked for (`EVDNS_TYPE_*`: [`Question::A`], ...).
    pub qtype: u16,
    /// The class (`EVDNS_CLASS_INET`: [`Question::IN`]).
    pub qclass: u16,
}

impl Question {
    /// Type A (an IPv4 address).
    pub const A: u16 = 1;
    /// Type NS.
    pub const NS: u16 = 2;
    /// Type CNAME.
    pub const CNAME: u16 = 5;
    /// Type SOA.
    pub const SOA: u16 = 6;
    /// Type PTR.
    pub const PTR: u16 = 12;
    /// Type MX.
    pub const MX: u16 = 15;
    /// Type TXT.
    pub const TXT: u16 = 16;
    /// Type AAAA (an IPv6 address).
    pub const AAAA: u16 = 28;
    /// Query type ANY (`EVDNS_QTYPE_ALL`).
    pub const ANY: u16 = 255;
    /// Class IN.
    pub const IN: u16 = 1;
}

/// A request received by a [`ServerPort`], to answer (now or later) or drop. The handle is
/// cheap to clone; all clones name the same request, and once it is answered or dropped every
/// call on any of them returns [`ServerError::Stale`].
///
/// ```
/// use revent::EventBase;
/// use revent_dns::{Question, Rcode, ServerOptions, ServerPort};
/// use std::time::Duration;
///
/// let mut base = EventBase::new().unwrap();
/// // Every A question answered with 192.0.2.1, a second later, from a timer.
/// let port = ServerPort::bind(&mut base, "127.0.0.1:0".parse().unwrap(), ServerOptions::default(),
///     |base, req| {
///         let t = base.new_timer(move |base, _| {
///             for q in req.questions().unwrap() {
///                 if q.qtype == Question::A {
///                     req.add_a(&q.name, &[[192, 0, 2, 1].into()], 60).unwrap();
///                 }
///             }
///             req.respond(base, Rcode::NOERROR).unwrap();
///         });
///         base.add(t, Some(Duration::from_secs(1))).unwrap();
///     }).unwrap();
/// port.close(&mut base);
/// ```
#[derive(Clone)]
pub struct ServerRequest {
    port: Weak<RefCell<State>>,
    slot: u32,
    generation: u32,
}

/// A DNS server port (libevent's `evdns_server_port`): a UDP socket and/or a TCP listener on an
/// [`EventBase`], and the callback that gets each request. Cloning gives another handle to the
/// same port. The port runs until [`close`](Self::close)d (dropping the handles does not stop
/// it) or until its base is dropped. Its events live in the base it was made with: every call
/// that takes a base (here and on its [`ServerRequest`]s) must be given that one.
///
/// ```
/// use revent::EventBase;
/// use revent_dns::{Question, Rcode, ResolvConf, Resolver, ServerOptions, ServerPort};
///
/// let mut base = EventBase::new().unwrap();
/// let port = ServerPort::bind(&mut base, "127.0.0.1:0".parse().unwrap(), ServerOptions::default(),
///     |base, req| {
///         let q = &req.questions().unwrap()[0];
///         if q.qtype == Question::A && q.name.eq_ignore_ascii_case("www.example.com") {
///             req.add_a(&q.name, &["192.0.2.7".parse().unwrap()], 300).unwrap();
///             req.respond(base, Rcode::NOERROR).unwrap();
///         } else {
///             req.respond(base, Rcode::NXDOMAIN).unwrap();
///         }
///     }).unwrap();
/// let conf = ResolvConf::new().with_nameserver(port.udp_addr().unwrap());
/// let resolver = Resolver::new(conf);
/// let p = port.clone();
/// resolver.resolve_ipv4(&mut base, "www.example.com", move |base, r| {
///     assert_eq!(r.unwrap().addrs(), ["192.0.2.7".parse::<std::net::IpAddr>().unwrap()]);
///     p.close(base); // nothing left in the base: dispatch returns
/// });
/// base.dispatch().unwrap();
/// ```
#[derive(Clone)]
pub struct ServerPort {
    inner: Rc<RefCell<State>>,
}

struct Pending {
    query: ParsedQuery,
    via: Via,
    /// AA and RA for the answer (libevent's `evdns_server_request_set_flags`).
    flags: u16,
    sections: Sections,
}

#[derive(Clone, Copy)]
enum Via {
    Udp(SocketAddr),
    Tcp {
        conn: u32,
        generation: u32,
        peer: SocketAddr,
    },
}

struct Slot<T> {
    generation: u32,
    item: Option<T>,
}

/// A slab whose entries are named by (index, generation).
struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    fn insert(&mut self, item: T) -> (u32, u32) {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            let s = &mut self.slots[i as usize];
            s.item = Some(item);
            return (i, s.generation);
        }
        self.slots.push(Slot {
            generation: 0,
            item: Some(item),
        });
        ((self.slots.len() - 1) as u32, 0)
    }

    /// The key the next [`insert`](Self::insert) will return.
    fn next_key(&self) -> (u32, u32) {
        match self.free.last() {
            Some(&i) => (i, self.slots[i as usize].generation),
            None => (self.slots.len() as u32, 0),
        }
    }

    fn get_mut(&mut self, i: u32, generation: u32) -> Option<&mut T> {
        self.slots
            .get_mut(i as usize)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.item.as_mut())
    }

    fn remove(&mut self, i: u32, generation: u32) -> Option<T> {
        let s = self
            .slots
            .get_mut(i as usize)
            .filter(|s| s.generation == generation)?;
        let item = s.item.take()?;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(i);
        self.len -= 1;
        Some(item)
    }

    fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(item) = s.item.take() {
                s.generation = s.generation.wrapping_add(1);
                self.free.push(i as u32);
                out.push(item);
            }
        }
        self.len = 0;
        out
    }
}

struct Udp {
    sock: UdpSocket,
    read_ev: EventId,
    write_ev: EventId,
    /// Answers waiting for room in the socket buffer.
    queue: VecDeque<(Vec<u8>, SocketAddr)>,
    writing: bool,
}

struct Tcp {
    listener: TcpListener,
    ev: EventId,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    read_ev: EventId,
    write_ev: EventId,
    timer: EventId,
    input: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    /// Queries given to the callback and not answered yet.
    outstanding: usize,
    reading: bool,
    writing: bool,
    /// The client closed its side: answer what it asked, then close.
    eof: bool,
}

struct State {
    me: Weak<RefCell<State>>,
    opts: ServerOptions,
    cb: Option<Callback>,
    udp: Option<Udp>,
    tcp: Option<Tcp>,
    requests: Slab<Pending>,
    conns: Slab<Conn>,
    buf: Vec<u8>,
    closed: bool,
}

impl ServerPort {
    /// A port on sockets already bound (libevent's `evdns_add_server_port_with_base` takes the
    /// UDP socket; the TCP listener is libevent 2.2's `evdns_add_server_port_with_listener`).
    /// The port owns them from now on and closes them when it is closed. `cb` runs, from the
    /// loop, once per query that decodes, and must answer or drop each request sooner or later.
    ///
    /// Fails if neither socket is given, or if the sockets cannot be made non-blocking or
    /// watched by `base`.
    pub fn new<F>(
        base: &mut EventBase,
        udp: Option<UdpSocket>,
        tcp: Option<TcpListener>,
        opts: ServerOptions,
        cb: F,
    ) -> io::Result<ServerPort>
    where
        F: FnMut(&mut EventBase, ServerRequest) + 'static,
    {
        if udp.is_none() && tcp.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a server port needs a UDP socket or a TCP listener",
            ));
        }
        if let Some(s) = &udp {
            s.set_nonblocking(true)?;
        }
        if let Some(l) = &tcp {
            l.set_nonblocking(true)?;
        }
        let cb: Callback = Rc::new(RefCell::new(Box::new(cb)));
        let inner = Rc::new_cyclic(|me| {
            RefCell::new(State {
                me: me.clone(),
                opts,
                cb: Some(cb),
                udp: None,
                tcp: None,
                requests: Slab::new(),
                conns: Slab::new(),
                buf: vec![0; 65536],
                closed: false,
            })
        });
        let port = ServerPort { inner };
        let made = port.watch(base, udp, tcp);
        if let Err(e) = made {
            port.close(base);
            return Err(e);
        }
        Ok(port)
    }

    /// A port listening on `addr` over UDP and TCP on the same port number. With port 0 it
    /// picks one that is free for both.
    pub fn bind<F>(
        base: &mut EventBase,
        addr: SocketAddr,
        opts: ServerOptions,
        cb: F,
    ) -> io::Result<ServerPort>
    where
        F: FnMut(&mut EventBase, ServerRequest) + 'static,
    {
        let mut tries = 0;
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind(addr)?;
            match TcpListener::bind(udp.local_addr()?) {
                Ok(tcp) => break (udp, tcp),
                Err(e) if addr.port() != 0 || tries >= 50 => return Err(e),
                Err(_) => tries += 1,
            }
        };
        ServerPort::new(base, Some(udp), Some(tcp), opts, cb)
    }

    fn watch(
        &self,
        base: &mut EventBase,
        udp: Option<UdpSocket>,
        tcp: Option<TcpListener>,
    ) -> io::Result<()> {
        if let Some(sock) = udp {
            let fd = sock.as_raw_fd();
            let rc = self.inner.clone();
            let read_ev = base
                .new_event(fd, What::READ | What::PERSIST, move |base, _| {
                    let new = rc.borrow_mut().on_udp_readable(base);
                    deliver(&rc, base, new);
                })
                .map_err(io::Error::other)?;
            let rc = self.inner.clone();
            let write_ev = base.new_event(fd, What::WRITE | What::PERSIST, move |base, _| {
                rc.borrow_mut().flush_udp(base);
            });
            let write_ev = match write_ev {
                Ok(ev) => ev,
                Err(e) => {
                    let _ = base.free(read_ev);
                    return Err(io::Error::other(e));
                }
            };
            self.inner.borrow_mut().udp = Some(Udp {
                sock,
                read_ev,
                write_ev,
                queue: VecDeque::new(),
                writing: false,
            });
            base.add(read_ev, None).map_err(io::Error::other)?;
        }
        if let Some(listener) = tcp {
            let rc = self.inner.clone();
            let ev = base
                .new_event(
                    listener.as_raw_fd(),
                    What::READ | What::PERSIST,
                    move |base, _| rc.borrow_mut().on_accept(base),
                )
                .map_err(io::Error::other)?;
            self.inner.borrow_mut().tcp = Some(Tcp { listener, ev });
            base.add(ev, None).map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// The UDP socket's address, if the port has one.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        let st = self.inner.borrow();
        st.udp.as_ref().and_then(|u| u.sock.local_addr().ok())
    }

    /// The TCP listener's address, if the port has one.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        let st = self.inner.borrow();
        st.tcp.as_ref().and_then(|t| t.listener.local_addr().ok())
    }

    /// How many requests the callback got and has not answered or dropped yet.
    pub fn pending(&self) -> usize {
        self.inner.borrow().requests.len
    }

    /// How many TCP connections are open.
    pub fn tcp_clients(&self) -> usize {
        self.inner.borrow().conns.len
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.borrow().closed
    }

    /// Closes the port (libevent's `evdns_close_server_port`): its sockets and connections
    /// close, its events leave `base`, its pending requests become stale (nothing is sent for
    /// them) and the callback is dropped. Closing twice does nothing. May be called from the
    /// callback.
    pub fn close(&self, base: &mut EventBase) {
        let (cb, pending, conns, udp, tcp) = {
            let mut st = self.inner.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            let conns = st.conns.drain();
            (
                st.cb.take(),
                st.requests.drain(),
                conns,
                st.udp.take(),
                st.tcp.take(),
            )
        };
        for c in &conns {
            free_conn_events(base, c);
        }
        if let Some(u) = &udp {
            let _ = base.free(u.read_ev);
            let _ = base.free(u.write_ev);
        }
        if let Some(t) = &tcp {
            let _ = base.free(t.ev);
        }
        // Dropped with the state unborrowed: the callback may own handles to this port.
        drop((cb, pending, conns, udp, tcp));
    }
}

impl fmt::Debug for ServerPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPort")
            .field("udp", &self.udp_addr())
            .field("tcp", &self.tcp_addr())
            .field("pending", &self.pending())
            .field("tcp_clients", &self.tcp_clients())
            .finish()
    }
}

impl fmt::Debug for ServerRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerRequest")
            .field("slot", &self.slot)
            .field("generation", &self.generation)
            .field("live", &self.is_live())
            .finish()
    }
}

fn name_of(s: &str) -> Result<Name, ServerError> {
    if s.is_empty() || s == "." {
        return Ok(Name::root());
    }
    let n = if s.ends_with('.') {
        Name::from_ascii(s)
    } else {
        Name::from_ascii(format!("{s}."))
    };
    n.ok()
        .filter(|n| n.is_fqdn())
        .ok_or(ServerError::InvalidName)
}

/// A byte that stands for itself in a name's text: what [`spells`] and [`plain_text`] take
/// as they are (anything else is escaped or refused, and left to hickory-proto).
fn plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `s`, written as [`Question::name`] gives it (a final dot allowed), names exactly `n`
/// (case included), every label of `n` made of plain bytes.
fn spells(s: &str, n: &Name) -> bool {
    if !n.is_fqdn() {
        return false;
    }
    let s = s.as_bytes();
    let s = s.strip_suffix(b".").unwrap_or(s);
    let mut at = 0;
    for (i, label) in n.iter().enumerate() {
        if i > 0 {
            if s.get(at) != Some(&b'.') {
                return false;
            }
            at += 1;
        }
        let Some(part) = s.get(at..at + label.len()) else {
            return false;
        };
        if part != label || !label.iter().all(|&b| plain_byte(b)) {
            return false;
        }
        at += label.len();
    }
    at == s.len() && (at > 0 || n.is_root())
}

/// `n` as [`Question::name`] writes it, directly when every label is plain bytes (what
/// `Name::to_ascii` would make of it, less the final dot), else `None`.
fn plain_text(n: &Name) -> Option<String> {
    let mut out = String::with_capacity(n.len());
    for label in n.iter() {
        if !label.iter().all(|&b| plain_byte(b)) {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        // Plain bytes are ASCII.
        out.push_str(std::str::from_utf8(label).ok()?);
    }
    Some(out)
}

fn question_of(q: &hickory_proto::op::Query) -> Question {
    let n = q.name();
    let name = match plain_text(n).filter(|_| n.is_fqdn()) {
        Some(name) => name,
        None => {
            // Names off the wire are fully qualified: `to_ascii` ends them with the root's dot.
            let mut name = n.to_ascii();
            if n.is_root() {
                name.clear();
            } else if n.is_fqdn() {
                name.pop();
            }
            name
        }
    };
    Question {
        name,
        qtype: u16::from(q.query_type()),
        qclass: u16::from(q.query_class()),
    }
}

impl ServerRequest {
    /// Runs `f` on the request, or says it is stale.
    fn with<R>(&self, f: impl FnOnce(&mut Pending) -> R) -> Result<R, ServerError> {
        let rc = self.port.upgrade().ok_or(ServerError::Stale)?;
        let mut st = rc.borrow_mut();
        let p = st
            .requests
            .get_mut(self.slot, self.generation)
            .ok_or(ServerError::Stale)?;
        Ok(f(p))
    }

    /// Whether the request still waits for its answer.
    pub fn is_live(&self) -> bool {
        self.with(|_| ()).is_ok()
    }

    /// The questions (usually one; libevent passes all a query has).
    pub fn questions(&self) -> Result<Vec<Question>, ServerError> {
        self.with(|p| p.query.queries.iter().map(question_of).collect())
    }

    /// The query's header flags word (libevent's `evdns_server_request.flags`): RD is
    /// `0x0100`, CD `0x0010`, and so on.
    pub fn query_flags(&self) -> Result<u16, ServerError> {
        self.with(|p| p.query.flags)
    }

    /// The query's transaction id.
    pub fn id(&self) -> Result<u16, ServerError> {
        self.with(|p| p.query.id)
    }

    /// Who sent the query (libevent's `evdns_server_request_get_requesting_addr`).
    pub fn peer_addr(&self) -> Result<SocketAddr, ServerError> {
        self.with(|p| match p.via {
            Via::Udp(a) => a,
            Via::Tcp { peer, .. } => peer,
        })
    }

    /// Whether the query came over TCP.
    pub fn is_tcp(&self) -> Result<bool, ServerError> {
        self.with(|p| matches!(p.via, Via::Tcp { .. }))
    }

    /// Sets the answer's AA and RA bits from `flags` (libevent's
    /// `evdns_server_request_set_flags`): `0x0400` is AA (`EVDNS_FLAGS_AA`); `0x0080`, which
    /// libevent calls `EVDNS_FLAGS_RD`, is where the header keeps RA. Other bits are ignored:
    /// RD is always the query's.
    pub fn set_flags(&self, flags: u16) -> Result<(), ServerError> {
        let keep = server_wire::FLAG_AA | server_wire::FLAG_RA;
        self.with(|p| p.flags = flags & keep)
    }

    /// Marks the answer authoritative (AA) or not.
    pub fn set_authoritative(&self, on: bool) -> Result<(), ServerError> {
        self.with(|p| {
            if on {
                p.flags |= server_wire::FLAG_AA;
            } else {
                p.flags &= !server_wire::FLAG_AA;
            }
        })
    }

    /// `name` as a record's owner: the question's own name when `name` spells it (the usual
    /// answer, made without parsing text), else `name` parsed. Stale requests are an error even
    /// when no record follows.
    fn owner(&self, name: &str) -> Result<Name, ServerError> {
        let asked = self.with(|p| {
            p.query
                .queries
                .iter()
                .map(|q| q.name())
                .find(|n| spells(name, n))
                .cloned()
        })?;
        match asked {
            Some(n) => Ok(n),
            None => name_of(name),
        }
    }

    /// Adds `count` answer records made by `make`, as many as [`MAX_RECORDS`] leaves room for
    /// (the first one refused is the error, as one [`push`](Self::push) at a time would say).
    fn push_answers(
        &self,
        count: usize,
        make: impl Fn(usize) -> Record,
    ) -> Result<(), ServerError> {
        self.with(|p| {
            let room = MAX_RECORDS.saturating_sub(p.sections.len());
            let answers = &mut p.sections.answers;
            answers.reserve(count.min(room));
            answers.extend((0..count.min(room)).map(make));
            if count > room {
                return Err(ServerError::TooManyRecords);
            }
            Ok(())
        })?
    }

    fn push(&self, section: Section, record: Record) -> Result<(), ServerError> {
        self.with(|p| {
            if p.sections.len() >= MAX_RECORDS {
                return Err(ServerError::TooManyRecords);
            }
            match section {
                Section::Answer => p.sections.answers.push(record),
                Section::Authority => p.sections.authorities.push(record),
                Section::Additional => p.sections.additionals.push(record),
            }
            Ok(())
        })?
    }

    /// Adds one A record per address for `name` to the answer section
    /// (`evdns_server_request_add_a_reply`).
    pub fn add_a(&self, name: &str, addrs: &[Ipv4Addr], ttl: u32) -> Result<(), ServerError> {
        let n = self.owner(name)?;
        self.push_answers(addrs.len(), |i| {
            Record::from_rdata(n.clone(), ttl, RData::A(A(addrs[i])))
        })
    }

    /// Adds one AAAA record per address (`evdns_server_request_add_aaaa_reply`).
    pub fn add_aaaa(&self, name: &str, addrs: &[Ipv6Addr], ttl: u32) -> Result<(), ServerError> {
        let n = self.owner(name)?;
        self.push_answers(addrs.len(), |i| {
            Record::from_rdata(n.clone(), ttl, RData::AAAA(AAAA(addrs[i])))
        })
    }

    /// Adds a CNAME record: `name` is an alias of `target` (`evdns_server_request_add_cname_reply`).
    pub fn add_cname(&self, name: &str, target: &str, ttl: u32) -> Result<(), ServerError> {
        let rdata = RData::CNAME(CNAME(name_of(target)?));
        self.push(
            Section::Answer,
            Record::from_rdata(name_of(name)?, ttl, rdata),
        )
    }

    /// Adds a PTR record from the reverse name `name` (`…in-addr.arpa` or `…ip6.arpa`) to
    /// `host` (`evdns_server_request_add_ptr_reply` with a name).
    pub fn add_ptr(&self, name: &str, host: &str, ttl: u32) -> Result<(), ServerError> {
        let rdata = RData::PTR(PTR(name_of(host)?));
        self.push(
            Section::Answer,
            Record::from_rdata(name_of(name)?, ttl, rdata),
        )
    }

    /// Adds a PTR record for the reverse name of `addr` (`evdns_server_request_add_ptr_reply`
    /// with an address; IPv6 too).
    pub fn add_ptr_for(&self, addr: IpAddr, host: &str, ttl: u32) -> Result<(), ServerError> {
        self.add_ptr(&wire::reverse_name(addr), host, ttl)
    }

    /// Adds a TXT record of one or more strings, each at most 255 bytes.
    pub fn add_txt(&self, name: &str, strings: &[&[u8]], ttl: u32) -> Result<(), ServerError> {
        if strings.iter().any(|s| s.len() > 255) {
            return Err(ServerError::InvalidRecord);
        }
        let rdata = RData::TXT(TXT::from_bytes(strings.to_vec()));
        self.push(
            Section::Answer,
            Record::from_rdata(name_of(name)?, ttl, rdata),
        )
    }

    /// Adds any record (`evdns_server_request_add_reply`): type `rtype`, class `class`, in
    /// `section`. Data for a type hickory-proto knows is decoded and must be valid for it.
    pub fn add_record(
        &self,
        section: Section,
        name: &str,
        rtype: u16,
        class: u16,
        ttl: u32,
        data: RecordData,
    ) -> Result<(), ServerError> {
        let owner = name_of(name)?;
        let rt = RecordType::from(rtype);
        let rdata = match data {
            RecordData::Name(target) => {
                let t = name_of(&target)?;
                match rt {
                    RecordType::CNAME => RData::CNAME(CNAME(t)),
                    RecordType::PTR => RData::PTR(PTR(t)),
                    RecordType::NS => RData::NS(hickory_proto::rr::rdata::NS(t)),
                    // A name as the data of another type: its uncompressed wire form.
                    _ => RData::Unknown {
                        code: rt,
                        rdata: NULL::with(t.to_bytes().map_err(|_| ServerError::InvalidName)?),
                    },
                }
            }
            RecordData::Raw(bytes) => {
                let len = u16::try_from(bytes.len()).map_err(|_| ServerError::InvalidRecord)?;
                let mut d = BinDecoder::new(&bytes);
                let r = RData::read(&mut d, rt, Restrict::new(len))
                    .map_err(|_| ServerError::InvalidRecord)?;
                if !d.is_empty() {
                    return Err(ServerError::InvalidRecord);
                }
                r
            }
        };
        let mut record = Record::from_rdata(owner, ttl, rdata);
        record.dns_class = DNSClass::from(class);
        self.push(section, record)
    }

    /// Sends the answer with response code `rcode` and ends the request
    /// (`evdns_server_request_respond`). Over UDP an answer too long for the client goes
    /// truncated (TC set, records left out). If the client's TCP connection has closed since,
    /// nothing is sent, and that is not an error.
    pub fn respond(&self, base: &mut EventBase, rcode: Rcode) -> Result<(), ServerError> {
        let rc = self.port.upgrade().ok_or(ServerError::Stale)?;
        let mut st = rc.borrow_mut();
        let p = st
            .requests
            .remove(self.slot, self.generation)
            .ok_or(ServerError::Stale)?;
        match p.via {
            Via::Udp(peer) => {
                let limit = p.query.udp_limit();
                let bytes =
                    server_wire::encode_answer(&p.query, p.flags, rcode.0, p.sections, limit);
                st.send_udp(base, bytes, peer);
            }
            Via::Tcp {
                conn, generation, ..
            } => {
                let bytes =
                    server_wire::encode_answer(&p.query, p.flags, rcode.0, p.sections, 65535);
                st.answered_tcp(base, conn, generation, Some(bytes));
            }
        }
        drop(st);
        Ok(())
    }

    /// Ends the request without sending anything (`evdns_server_request_drop`).
    pub fn drop_request(&self, base: &mut EventBase) -> Result<(), ServerError> {
        let rc = self.port.upgrade().ok_or(ServerError::Stale)?;
        let mut st = rc.borrow_mut();
        let p = st
            .requests
            .remove(self.slot, self.generation)
            .ok_or(ServerError::Stale)?;
        if let Via::Tcp {
            conn, generation, ..
        } = p.via
        {
            st.answered_tcp(base, conn, generation, None);
        }
        Ok(())
    }
}

/// Gives new requests to the callback, one at a time, with the state unborrowed.
fn deliver(rc: &Rc<RefCell<State>>, base: &mut EventBase, new: Vec<ServerRequest>) {
    for req in new {
        let cb = rc.borrow().cb.clone();
        let Some(cb) = cb else {
            return; // closed
        };
        if !req.is_live() {
            continue;
        }
        let busy = match cb.try_borrow_mut() {
            Ok(mut f) => {
                f(base, req.clone());
                false
            }
            Err(_) => true,
        };
        // The callback is running further up the stack (it ran the loop itself): it cannot
        // take this request now.
        if busy {
            let _ = req.respond(base, Rcode::SERVFAIL);
        }
    }
}

fn free_conn_events(base: &mut EventBase, c: &Conn) {
    let _ = base.free(c.read_ev);
    let _ = base.free(c.write_ev);
    let _ = base.free(c.timer);
}

impl State {
    fn rc(&self) -> Rc<RefCell<State>> {
        self.me.upgrade().expect("called through a live Rc")
    }

    fn handle(&self, i: u32, generation: u32) -> ServerRequest {
        ServerRequest {
            port: self.me.clone(),
            slot: i,
            generation,
        }
    }

    fn on_udp_readable(&mut self, base: &mut EventBase) -> Vec<ServerRequest> {
        let mut new = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        for _ in 0..UDP_BUDGET {
            let Some(udp) = &self.udp else { break };
            let (n, peer) = match udp.sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or an ICMP error from an earlier answer: nothing more now.
                Err(_) => break,
            };
            match server_wire::parse_query(&buf[..n]) {
                Incoming::Drop => {}
                Incoming::Reply(r) => self.send_udp(base, r, peer),
                Incoming::Query(q) => {
                    if self.requests.len >= self.opts.max_pending {
                        let r = refused(&q, q.udp_limit());
                        self.send_udp(base, r, peer);
                        continue;
                    }
                    let (i, g) = self.requests.insert(Pending {
                        query: q,
                        via: Via::Udp(peer),
                        flags: 0,
                        sections: Sections::default(),
                    });
                    new.push(self.handle(i, g));
                }
            }
        }
        self.buf = buf;
        new
    }

    fn send_udp(&mut self, base: &mut EventBase, bytes: Vec<u8>, peer: SocketAddr) {
        let Some(udp) = &mut self.udp else { return };
        if udp.queue.is_empty() {
            match udp.sock.send_to(&bytes, peer) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer is gone or unreachable: UDP has no one to tell.
                Err(_) => return,
            }
        }
        if udp.queue.len() < UDP_QUEUE {
            udp.queue.push_back((bytes, peer));
        }
        if !udp.writing && base.add(udp.write_ev, None).is_ok() {
            udp.writing = true;
        }
    }

    fn flush_udp(&mut self, base: &mut EventBase) {
        let Some(udp) = &mut self.udp else { return };
        while let Some((bytes, peer)) = udp.queue.front() {
            match udp.sock.send_to(bytes, *peer) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                _ => {
                    udp.queue.pop_front();
                }
            }
        }
        let _ = base.del(udp.write_ev);
        udp.writing = false;
    }

    fn on_accept(&mut self, base: &mut EventBase) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(tcp) = &self.tcp else { return };
            let (stream, peer) = match tcp.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or out of fds: the next wake-up tries again.
                Err(_) => return,
            };
            if self.conns.len >= self.opts.tcp_max_clients || stream.set_nonblocking(true).is_err()
            {
                continue; // dropped: closed
            }
            let _ = stream.set_nodelay(true);
            self.add_conn(base, stream, peer);
        }
    }

    fn add_conn(&mut self, base: &mut EventBase, stream: TcpStream, peer: SocketAddr) {
        let fd = stream.as_raw_fd();
        // The events name the connection by the slot it is about to get.
        let (i, g) = self.conns.next_key();
        let rc = self.rc();
        let read_ev = base.new_event(fd, What::READ | What::PERSIST, move |base, _| {
            let new = rc.borrow_mut().on_conn_readable(base, i, g);
            deliver(&rc, base, new);
        });
        let rc = self.rc();
        let write_ev = base.new_event(fd, What::WRITE | What::PERSIST, move |base, _| {
            rc.borrow_mut().flush_conn(base, i, g);
        });
        let rc = self.rc();
        let timer = base.new_timer(move |base, _| rc.borrow_mut().on_idle(base, i, g));
        let (read_ev, write_ev) = match (read_ev, write_ev) {
            (Ok(r), Ok(w)) => (r, w),
            (r, w) => {
                for ev in [r.ok(), w.ok(), Some(timer)].into_iter().flatten() {
                    let _ = base.free(ev);
                }
                return; // the stream closes as it drops
            }
        };
        let key = self.conns.insert(Conn {
            stream,
            peer,
            read_ev,
            write_ev,
            timer,
            input: Vec::new(),
            out: Vec::new(),
            written: 0,
            outstanding: 0,
            reading: true,
            writing: false,
            eof: false,
        });
        debug_assert_eq!(key, (i, g));
        let idle = self.opts.tcp_idle_timeout;
        if base.add(read_ev, None).is_err() || base.add(timer, Some(idle)).is_err() {
            self.close_conn(base, i, g);
        }
    }

    fn close_conn(&mut self, base: &mut EventBase, i: u32, g: u32) {
        if let Some(c) = self.conns.remove(i, g) {
            free_conn_events(base, &c);
        }
    }

    /// Something happened on the connection: its idle clock starts again.
    fn touch(&mut self, base: &mut EventBase, i: u32, g: u32) {
        let idle = self.opts.tcp_idle_timeout;
        if let Some(c) = self.conns.get_mut(i, g) {
            let _ = base.add(c.timer, Some(idle));
        }
    }

    fn on_idle(&mut self, base: &mut EventBase, i: u32, g: u32) {
        let idle = self.opts.tcp_idle_timeout;
        let Some(c) = self.conns.get_mut(i, g) else {
            return;
        };
        // Only waiting for our own callback's answers, with nothing stuck in front of the
        // client: not the client's fault.
        if c.outstanding > 0 && c.written >= c.out.len() {
            let _ = base.add(c.timer, Some(idle));
            return;
        }
        self.close_conn(base, i, g);
    }

    fn on_conn_readable(&mut self, base: &mut EventBase, i: u32, g: u32) -> Vec<ServerRequest> {
        let mut new = Vec::new();
        let mut progressed = false;
        let mut chunk = [0u8; 4096];
        // Read only what one more message needs beyond what is buffered, so that a client
        // cannot make the buffer grow past a message while reading is paused.
        loop {
            if self.take_frames(base, i, g, &mut new) {
                return new; // closed
            }
            let Some(c2) = self.conns.get_mut(i, g) else {
                return new;
            };
            if !c2.reading || c2.eof || c2.input.len() > 65537 {
                break;
            }
            match c2.stream.read(&mut chunk) {
                Ok(0) => {
                    c2.eof = true;
                    let _ = base.del(c2.read_ev);
                    c2.reading = false;
                    progressed = true;
                    break;
                }
                Ok(n) => {
                    c2.input.extend_from_slice(&chunk[..n]);
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.close_conn(base, i, g);
                    return new;
                }
            }
        }
        if progressed {
            self.touch(base, i, g);
        }
        self.maybe_finish(base, i, g);
        new
    }

    /// Takes the complete messages buffered on a connection, as long as it may have more
    /// queries outstanding. Returns whether the connection was closed.
    fn take_frames(
        &mut self,
        base: &mut EventBase,
        i: u32,
        g: u32,
        new: &mut Vec<ServerRequest>,
    ) -> bool {
        let pipeline = self.opts.tcp_max_pipeline;
        let max_pending = self.opts.max_pending;
        loop {
            let pending = self.requests.len;
            let Some(c) = self.conns.get_mut(i, g) else {
                return true;
            };
            if c.outstanding >= pipeline {
                if c.reading {
                    let _ = base.del(c.read_ev);
                    c.reading = false;
                }
                return false;
            }
            let end = match server_wire::next_frame(&c.input) {
                Frame::Incomplete => return false,
                Frame::Bad => {
                    self.close_conn(base, i, g);
                    return true;
                }
                Frame::Message { end } => end,
            };
            let incoming = server_wire::parse_query(&c.input[2..end]);
            c.input.drain(..end);
            let peer = c.peer;
            match incoming {
                Incoming::Drop => {}
                Incoming::Reply(r) => {
                    if self.write_conn(base, i, g, &r) {
                        return true;
                    }
                }
                Incoming::Query(q) if pending >= max_pending => {
                    if self.write_conn(base, i, g, &refused(&q, 65535)) {
                        return true;
                    }
                }
                Incoming::Query(q) => {
                    c.outstanding += 1;
                    let (ri, rg) = self.requests.insert(Pending {
                        query: q,
                        via: Via::Tcp {
                            conn: i,
                            generation: g,
                            peer,
                        },
                        flags: 0,
                        sections: Sections::default(),
                    });
                    new.push(self.handle(ri, rg));
                }
            }
        }
    }

    /// A request of the connection ended, with `answer` or nothing: its answer goes out, and
    /// reading resumes if it was paused for the pipeline limit.
    fn answered_tcp(&mut self, base: &mut EventBase, i: u32, g: u32, answer: Option<Vec<u8>>) {
        let pipeline = self.opts.tcp_max_pipeline;
        let Some(c) = self.conns.get_mut(i, g) else {
            return; // the connection closed meanwhile
        };
        c.outstanding -= 1;
        if let Some(a) = answer {
            if self.write_conn(base, i, g, &a) {
                return;
            }
        }
        let Some(c) = self.conns.get_mut(i, g) else {
            return;
        };
        if c.outstanding < pipeline {
            if !c.reading && !c.eof {
                c.reading = true;
                let _ = base.add(c.read_ev, None);
            }
            // Messages already buffered are taken from the loop, not from inside this call
            // (which may be the callback's own).
            if server_wire::next_frame(&c.input) != Frame::Incomplete {
                let _ = base.activate(c.read_ev, What::READ, 1);
            }
        }
        self.maybe_finish(base, i, g);
    }

    /// Queues a framed message on a connection and writes what the socket takes. Returns
    /// whether the connection was closed (the client let too much pile up, or it broke).
    fn write_conn(&mut self, base: &mut EventBase, i: u32, g: u32, msg: &[u8]) -> bool {
        let max = self.opts.tcp_max_output;
        let Some(c) = self.conns.get_mut(i, g) else {
            return true;
        };
        if c.written > 0 && c.written == c.out.len() {
            c.out.clear();
            c.written = 0;
        }
        if c.out.len() - c.written + msg.len() + 2 > max {
            self.close_conn(base, i, g);
            return true;
        }
        c.out.extend_from_slice(&server_wire::frame(msg));
        self.flush_conn(base, i, g);
        self.conns.get_mut(i, g).is_none()
    }

    fn flush_conn(&mut self, base: &mut EventBase, i: u32, g: u32) {
        let Some(c) = self.conns.get_mut(i, g) else {
            return;
        };
        let mut progressed = false;
        while c.written < c.out.len() {
            // MSG_NOSIGNAL: a client that went away must not kill a process that has not
            // ignored SIGPIPE (a C program using the C ABI).
            let sent = socket2::SockRef::from(&c.stream)
                .send_with_flags(&c.out[c.written..], libc::MSG_NOSIGNAL);
            match sent {
                Ok(0) => return self.close_conn(base, i, g),
                Ok(n) => {
                    c.written += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.close_conn(base, i, g),
            }
        }
        if c.written == c.out.len() {
            c.out.clear();
            c.written = 0;
            if c.writing {
                let _ = base.del(c.write_ev);
                c.writing = false;
            }
        } else if !c.writing {
            c.writing = base.add(c.write_ev, None).is_ok();
        }
        if progressed {
            self.touch(base, i, g);
        }
        self.maybe_finish(base, i, g);
    }

    /// Closes a connection whose client closed its side once everything it asked is answered
    /// and written.
    fn maybe_finish(&mut self, base: &mut EventBase, i: u32, g: u32) {
        if let Some(c) = self.conns.get_mut(i, g) {
            if c.eof
                && c.outstanding == 0
                && c.out.is_empty()
                && server_wire::next_frame(&c.input) == Frame::Incomplete
            {
                self.close_conn(base, i, g);
            }
        }
    }
}

fn refused(q: &ParsedQuery, limit: usize) -> Vec<u8> {
    server_wire::encode_answer(q, 0, Rcode::REFUSED.0, Sections::default(), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names of every kind of label: plain, mixed case, escaped bytes, a dot inside a label.
    fn names() -> Vec<Name> {
        let mut out: Vec<Name> = ["a.", "WwW.Example.COM.", "h1-2_3.bench.example.", "x.y"]
            .iter()
            .map(|s| Name::from_ascii(s).unwrap())
            .collect();
        out.push(Name::root());
        out.push(Name::from_labels(vec![&b"a.b"[..], b"c"]).unwrap());
        out.push(Name::from_labels(vec![&b"sp ace"[..], b"c"]).unwrap());
        out.push(Name::from_labels(vec![&b"\x00\xff"[..], b"c"]).unwrap());
        out
    }

    /// The direct text of a plain name is hickory-proto's, and only plain names get one.
    #[test]
    fn plain_text_is_to_ascii() {
        for n in names().into_iter().filter(Name::is_fqdn) {
            let mut want = n.to_ascii();
            if n.is_root() {
                want.clear();
            } else {
                want.pop();
            }
            match plain_text(&n) {
                Some(t) => assert_eq!(t, want),
                None => assert!(want.contains('\\') || want.contains(' '), "{want}"),
            }
        }
    }

    /// `spells` says yes exactly when parsing the text gives the same labels, byte for byte.
    #[test]
    fn spells_agrees_with_parsing() {
        let texts = [
            "",
            ".",
            "a",
            "a.",
            "A.",
            "www.example.com",
            "WwW.Example.COM",
            "WwW.Example.COM.",
            "h1-2_3.bench.example",
            "x.y",
            "x..y",
            "a\\.b.c",
            "a.b.c",
            "c",
            ".a",
            "sp ace.c",
        ];
        for n in names().into_iter().filter(Name::is_fqdn) {
            for t in texts {
                let parsed = name_of(t).ok();
                let same = parsed
                    .as_ref()
                    .is_some_and(|p| p.num_labels() == n.num_labels() && p.iter().eq(n.iter()));
                if spells(t, &n) {
                    assert!(same, "{t:?} spells {n:?} but parses to {parsed:?}");
                } else if same {
                    // Only names with bytes that need escaping are left to the parser.
                    assert!(n.iter().flatten().any(|&b| !plain_byte(b)), "{t:?} {n:?}");
                }
            }
        }
    }
}
