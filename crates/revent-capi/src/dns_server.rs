//! `event2/dns.h`'s server side: a `struct evdns_server_port *` wraps a [`revent_dns::ServerPort`]
//! on the program's UDP socket, and each query reaches the C callback as a `struct
//! evdns_server_request *` with libevent's public layout (`event2/dns_struct.h`), which C reads
//! directly: `flags`, `nquestions`, `questions[i]->type`, `->dns_question_class`, `->name`.
//!
//! # Ownership
//! A request is a `CRequest` from `Box::into_raw`, whose first field is the C-visible struct: the
//! program holds it from the callback until it calls `evdns_server_request_respond` or
//! `evdns_server_request_drop`, which free it. The questions live in two vectors of the request
//! (the pointer array and one block holding every `struct evdns_server_question`), so they go with
//! it. As in libevent, `evdns_close_server_port` with requests still pending only marks the port
//! closing: the program may still answer them, and the port (its socket, its events) goes when the
//! last of them ends. Queries that arrive meanwhile are dropped unanswered, without reaching the
//! callback.
//!
//! Every call that touches the Rust port goes through [`with_base`], so from another thread it
//! runs on the loop's thread; the C callback runs through `call_out`, so it may answer, add
//! events, or close the port from inside.
//!
//! # Where this differs from libevent 2.1
//! - `evdns_server_request_add_a_reply` (and `_aaaa_`) with `n` addresses adds `n` records;
//!   libevent adds one record of `n * 4` bytes, which is malformed for `n > 1` (only libevent's
//!   own resolver reads it back as `n` addresses).
//! - `evdns_server_request_add_reply` with data for a type revent-dns knows (A, AAAA, MX, SOA,
//!   TXT, ...) checks that the data is valid for that type, and returns -1 when it is not;
//!   libevent sends any bytes.
//! - The answer's header takes AA and RA (`EVDNS_FLAGS_AA`, `EVDNS_FLAGS_RD`, which is RA's bit)
//!   from the request's `flags` field (`evdns_server_request_set_flags`, or the field written
//!   directly), RD from the query, and nothing else of the query's flags word (libevent echoes
//!   all of it, such as CD).
//! - An answer longer than 512 bytes (or than the client's EDNS size) goes out as its question
//!   alone with TC set (revent-dns's rule). The port made here has no TCP listener (2.1's API
//!   takes a UDP socket only), so a client retrying over TCP finds nothing there.
//! - At most 10,000 requests wait for their answers at once (revent-dns's default); beyond that,
//!   queries are answered REFUSED without reaching the callback.
//! - Malformed queries are answered FORMERR and other opcodes NOTIMP; neither reaches the
//!   callback. (Debian's libevent 2.1.12 crashes on a datagram shorter than a header:
//!   tests/c/dns_server.c sends one to revent only.)

use crate::base::{self, call_out, with_base, CBase};
use crate::dns::{dns_log, text, to_sockaddr};
use crate::{evutil_socket_t, guard};
use libc::{c_char, c_int, c_void, sockaddr};
use revent::EventBase;
use revent_dns::{
    Question, Rcode, RecordData, Section, ServerError, ServerOptions, ServerPort, ServerRequest,
};
use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::FromRawFd;
use std::ptr;
use std::rc::{Rc, Weak};

/// `section` of `evdns_server_request_add_reply`: the answer section.
pub const EVDNS_ANSWER_SECTION: c_int = 0;
/// `section`: the authority section.
pub const EVDNS_AUTHORITY_SECTION: c_int = 1;
/// `section`: the additional section.
pub const EVDNS_ADDITIONAL_SECTION: c_int = 2;
/// The AA bit (authoritative answer), for `evdns_server_request_set_flags`.
pub const EVDNS_FLAGS_AA: c_int = 0x400;
/// What libevent calls `EVDNS_FLAGS_RD`: the header bit that is RA (recursion available) in an
/// answer.
pub const EVDNS_FLAGS_RD: c_int = 0x080;

/// `evdns_request_callback_fn_type`.
pub type evdns_request_callback_fn_type =
    Option<unsafe extern "C" fn(req: *mut evdns_server_request, user_data: *mut c_void)>;

/// `struct evdns_server_request` (public in `event2/dns_struct.h`): 16 bytes, `flags` at 0,
/// `nquestions` at 4, `questions` at 8.
#[repr(C)]
pub struct evdns_server_request {
    /// The query's header flags word (RD is `0x0100`); `evdns_server_request_set_flags` sets its
    /// AA and RA bits for the answer.
    pub flags: c_int,
    /// How many questions the query has.
    pub nquestions: c_int,
    /// `nquestions` pointers to the questions (NULL when there are none).
    pub questions: *mut *mut evdns_server_question,
}

/// `struct evdns_server_question` (public in `event2/dns_struct.h`): `type` at 0, `class`
/// (`dns_question_class`) at 4, the NUL-terminated name from 8 on, as long as it needs (the
/// declared `char name[1]` makes the struct 12 bytes).
#[repr(C)]
pub struct evdns_server_question {
    /// The type asked for (`EVDNS_TYPE_A`, ...).
    pub r#type: c_int,
    /// The class (`EVDNS_CLASS_INET`).
    pub dns_question_class: c_int,
    /// The first byte of the name (without the final dot, case as received).
    pub name: [c_char; 1],
}

/// Where the name starts in a `struct evdns_server_question`.
const NAME_OFFSET: usize = 8;

/// What a port's handle, its Rust callback and its requests share.
struct PortShared {
    /// The Rust port, until it is closed for good.
    port: RefCell<Option<ServerPort>>,
    /// Requests handed to C and not yet answered or dropped.
    outstanding: Cell<usize>,
    /// `evdns_close_server_port` was called: the port goes with its last request.
    closing: Cell<bool>,
    /// The program's socket, closed with the port as libevent closes it (the Rust port has a
    /// duplicate of it, see `evdns_add_server_port_with_base`).
    fd: c_int,
}

impl PortShared {
    /// Closes the Rust port and the program's socket (once).
    fn shut(&self, b: &mut EventBase) {
        let port = self.port.borrow_mut().take();
        if let Some(p) = port {
            p.close(b);
            // SAFETY: the program gave the socket to the port, which closes it once (here).
            unsafe { libc::close(self.fd) };
        }
    }
}

/// `struct evdns_server_port`: lives until `evdns_close_server_port` (the Rust port may outlive
/// it, until its last request ends).
pub struct evdns_server_port {
    cbase: *mut CBase,
    shared: Rc<PortShared>,
}

/// What a `struct evdns_server_request *` points to: the C-visible struct first (so the two
/// pointers are the same), then what only this module reads.
#[repr(C)]
struct CRequest {
    c: evdns_server_request,
    cbase: *mut CBase,
    req: ServerRequest,
    shared: Rc<PortShared>,
    /// Who asked (immutable: `get_requesting_addr` reads it from any thread).
    peer: SocketAddr,
    /// The `questions` array.
    qptrs: Vec<*mut evdns_server_question>,
    /// Every question struct, back to back, each 4-byte aligned (a `u32` vector for that).
    qblock: Vec<u32>,
}

/// The questions as C structs, back to back in one block (each 4-byte aligned: a `u32` vector),
/// and pointers to each. The vectors' buffers do not move when the vectors do.
fn question_block(questions: &[Question]) -> (Vec<u32>, Vec<*mut evdns_server_question>) {
    // Each question: type, class, the name and its NUL, rounded up to 4 bytes (at least the
    // declared 12).
    let sizes: Vec<usize> = questions
        .iter()
        .map(|q| (NAME_OFFSET + q.name.len() + 1).max(12).next_multiple_of(4))
        .collect();
    let mut qblock = vec![0u32; sizes.iter().sum::<usize>() / 4];
    let mut qptrs = Vec::with_capacity(questions.len());
    let start = qblock.as_mut_ptr().cast::<u8>();
    let mut at = 0;
    for (q, size) in questions.iter().zip(&sizes) {
        // SAFETY: `at + size` is within the block (the sizes add up to its length), and `at` is
        // a multiple of 4, so the question is aligned for its ints; the name and its NUL fit in
        // `size - NAME_OFFSET` bytes, and the block is zeroed, so the NUL is there already.
        unsafe {
            let qp = start.add(at).cast::<evdns_server_question>();
            ptr::addr_of_mut!((*qp).r#type).write(c_int::from(q.qtype));
            ptr::addr_of_mut!((*qp).dns_question_class).write(c_int::from(q.qclass));
            let name = start.add(at + NAME_OFFSET);
            ptr::copy_nonoverlapping(q.name.as_ptr(), name, q.name.len());
            qptrs.push(qp);
        }
        at += size;
    }
    (qblock, qptrs)
}

impl CRequest {
    /// The C request for `req`; `None` if it went stale meanwhile.
    fn new(cbase: *mut CBase, req: ServerRequest, shared: Rc<PortShared>) -> Option<CRequest> {
        let questions = req.questions().ok()?;
        let flags = req.query_flags().ok()?;
        let peer = req.peer_addr().ok()?;
        let (qblock, mut qptrs) = question_block(&questions);
        let questions_ptr = if qptrs.is_empty() {
            ptr::null_mut()
        } else {
            qptrs.as_mut_ptr()
        };
        Some(CRequest {
            c: evdns_server_request {
                flags: c_int::from(flags),
                nquestions: qptrs.len() as c_int,
                questions: questions_ptr,
            },
            cbase,
            req,
            shared,
            peer,
            qptrs,
            qblock,
        })
    }
}

/// Makes the Rust port on `cbase` for the program's socket `fd`.
unsafe fn add_port(
    cbase: *mut CBase,
    fd: evutil_socket_t,
    flags: c_int,
    callback: evdns_request_callback_fn_type,
    user_data: *mut c_void,
    what: &str,
) -> *mut evdns_server_port {
    if flags != 0 {
        // libevent 2.1 defines no flags and refuses any.
        dns_log(true, &format!("{what}: flags must be 0"));
        return ptr::null_mut();
    }
    let Some(cbf) = callback else {
        dns_log(true, &format!("{what}: NULL callback"));
        return ptr::null_mut();
    };
    if cbase.is_null() {
        dns_log(true, &format!("{what}: no event base"));
        return ptr::null_mut();
    }
    // The Rust port gets a duplicate: if it cannot be made, the program's socket stays open (as
    // libevent leaves it when it returns NULL); once it is, both close with the port.
    // SAFETY: fcntl on any integer is sound (a bad one fails with EBADF).
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        dns_log(true, &format!("{what}: bad socket {fd}"));
        return ptr::null_mut();
    }
    // SAFETY: `dup` is a descriptor just made, owned by nothing else.
    let sock = unsafe { UdpSocket::from_raw_fd(dup) };
    // The `Rc`s are made where the base is used (perhaps the loop's thread), like every use of
    // them after.
    let make = move |b: &mut EventBase| {
        let shared = Rc::new(PortShared {
            port: RefCell::new(None),
            outstanding: Cell::new(0),
            closing: Cell::new(false),
            fd,
        });
        let weak: Weak<PortShared> = Rc::downgrade(&shared);
        let on_request = move |b: &mut EventBase, req: ServerRequest| {
            let shared = match weak.upgrade() {
                Some(s) if !s.closing.get() => s,
                // Closing (or gone): nobody takes new requests.
                _ => {
                    let _ = req.drop_request(b);
                    return;
                }
            };
            let Some(c) = CRequest::new(cbase, req.clone(), shared.clone()) else {
                return; // stale already: nothing to answer
            };
            shared.outstanding.set(shared.outstanding.get() + 1);
            let p = Box::into_raw(Box::new(c));
            // SAFETY: the program's callback, given the request it now owns; `cbase`'s Rust
            // base is `b`, running this callback. The request is not touched here after the
            // call (the callback may have freed it by answering).
            unsafe { call_out(cbase, b, || cbf(p.cast(), user_data)) };
        };
        let port = ServerPort::new(b, Some(sock), None, ServerOptions::default(), on_request)?;
        *shared.port.borrow_mut() = Some(port);
        Ok::<_, std::io::Error>(shared)
    };
    // SAFETY: a live base (C's contract).
    let made = unsafe { with_base(cbase, make) };
    match made {
        Some(Ok(shared)) => Box::into_raw(Box::new(evdns_server_port { cbase, shared })),
        Some(Err(e)) => {
            dns_log(true, &format!("{what}: {e}"));
            ptr::null_mut()
        }
        None => ptr::null_mut(),
    }
}

/// `evdns_add_server_port_with_base`: a DNS server on `socket`, a UDP socket already bound
/// (made non-blocking here), watched by `base`. `callback` runs, from the loop, with each query
/// that decodes; the program answers it (`evdns_server_request_respond`) or drops it, from the
/// callback or later. `flags` must be 0. The port owns the socket from now on and closes it when
/// it is closed. NULL (the socket left open) on bad arguments or when the socket cannot be
/// watched.
#[no_mangle]
pub unsafe extern "C" fn evdns_add_server_port_with_base(
    base: *mut CBase,
    socket: evutil_socket_t,
    flags: c_int,
    callback: evdns_request_callback_fn_type,
    user_data: *mut c_void,
) -> *mut evdns_server_port {
    guard(ptr::null_mut(), || {
        let cbase = if base.is_null() {
            base::current()
        } else {
            base
        };
        // SAFETY: C's contract.
        unsafe {
            add_port(
                cbase,
                socket,
                flags,
                callback,
                user_data,
                "evdns_add_server_port_with_base",
            )
        }
    })
}

/// `evdns_add_server_port`: `evdns_add_server_port_with_base` on the current base
/// (`event_init`'s).
#[no_mangle]
pub unsafe extern "C" fn evdns_add_server_port(
    socket: evutil_socket_t,
    flags: c_int,
    callback: evdns_request_callback_fn_type,
    user_data: *mut c_void,
) -> *mut evdns_server_port {
    guard(ptr::null_mut(), || {
        // SAFETY: C's contract.
        unsafe {
            add_port(
                base::current(),
                socket,
                flags,
                callback,
                user_data,
                "evdns_add_server_port",
            )
        }
    })
}

/// `evdns_close_server_port`: frees the port. Its socket closes and the callback stops now, or,
/// when requests are still pending, once the last of them is answered or dropped (they may still
/// be answered; queries arriving meanwhile are dropped).
#[no_mangle]
pub unsafe extern "C" fn evdns_close_server_port(port: *mut evdns_server_port) {
    guard((), || {
        if port.is_null() {
            return;
        }
        // SAFETY: a live port (C's contract); a plain pointer read.
        let cbase = unsafe { (*port).cbase };
        // SAFETY: its base is live; the box (from Box::into_raw in add_port, freed once: C's
        // contract) is dropped where the base is used, as the `Rc` inside must be.
        unsafe {
            with_base(cbase, |b| {
                let boxed = Box::from_raw(port);
                boxed.shared.closing.set(true);
                if boxed.shared.outstanding.get() == 0 {
                    boxed.shared.shut(b);
                }
            })
        };
    })
}

/// Runs `f` with a live request's Rust handle, where its base is used; -1 for NULL.
///
/// # Safety
/// `req` is null or a request handed to the callback and not yet answered or dropped.
unsafe fn on_request(
    req: *mut evdns_server_request,
    what: &str,
    f: impl FnOnce(&ServerRequest) -> Result<(), ServerError>,
) -> c_int {
    if req.is_null() {
        dns_log(true, &format!("{what}: NULL request"));
        return -1;
    }
    let p = req.cast::<CRequest>();
    // SAFETY: the caller's contract: a live CRequest (the C struct is its first field); plain
    // reads of fields C never writes.
    let cbase = unsafe { (*p).cbase };
    // SAFETY: its base is live; the handle (an `Rc` inside) is used where the base is.
    let r = unsafe { with_base(cbase, |_| f(&(*p).req)) };
    match r {
        Some(Ok(())) => 0,
        Some(Err(e)) => {
            dns_log(false, &format!("{what}: {e}"));
            -1
        }
        None => -1,
    }
}

/// Ends a request: `f` answers or drops it, then its box goes, and the port too if it was closed
/// and this was its last request.
///
/// # Safety
/// As [`on_request`].
unsafe fn finish(
    req: *mut evdns_server_request,
    what: &str,
    f: impl FnOnce(&mut EventBase, &ServerRequest, c_int) -> Result<(), ServerError>,
) -> c_int {
    if req.is_null() {
        dns_log(true, &format!("{what}: NULL request"));
        return -1;
    }
    let p = req.cast::<CRequest>();
    // SAFETY: as in `on_request`.
    let cbase = unsafe { (*p).cbase };
    // SAFETY: its base is live. The box (from Box::into_raw when the request arrived) is freed
    // once, here (C's contract: a request is answered or dropped once), where the base is used.
    // `flags` is read through the raw pointer: C may have written it.
    let r = unsafe {
        with_base(cbase, |b| {
            let flags = ptr::addr_of!((*p).c.flags).read();
            let boxed = Box::from_raw(p);
            let r = f(b, &boxed.req, flags);
            let shared = boxed.shared.clone();
            drop(boxed);
            shared.outstanding.set(shared.outstanding.get() - 1);
            if shared.closing.get() && shared.outstanding.get() == 0 {
                shared.shut(b);
            }
            r
        })
    };
    match r {
        Some(Ok(())) => 0,
        Some(Err(e)) => {
            dns_log(false, &format!("{what}: {e}"));
            -1
        }
        None => -1,
    }
}

/// `evdns_server_request_set_flags`: sets the AA (`EVDNS_FLAGS_AA`) and RA (`EVDNS_FLAGS_RD`)
/// bits of the answer, in the request's `flags` field as libevent does (those two bits are
/// replaced, the others kept).
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_set_flags(
    req: *mut evdns_server_request,
    flags: c_int,
) {
    guard((), || {
        if req.is_null() {
            dns_log(true, "evdns_server_request_set_flags: NULL request");
            return;
        }
        // SAFETY: a live request (C's contract); the field is C-visible, so it is read and
        // written through the raw pointer.
        unsafe {
            let f = ptr::addr_of_mut!((*req).flags);
            f.write((f.read() & !(EVDNS_FLAGS_AA | EVDNS_FLAGS_RD)) | flags);
        }
    })
}

/// A C string as `&str` for a server call; `None` (reported) for NULL or non-UTF-8.
///
/// # Safety
/// `s` is null or NUL-terminated.
unsafe fn arg<'a>(s: *const c_char, what: &str) -> Option<&'a str> {
    // SAFETY: the caller's contract.
    unsafe { text(s, what) }
}

/// `evdns_server_request_add_reply`: adds a record to `section` (`EVDNS_ANSWER_SECTION`,
/// `_AUTHORITY_`, `_ADDITIONAL_`): owner `name`, `type`, `dns_class`, `ttl`. With `is_name`,
/// `data` is a host name (NUL-terminated, `datalen` ignored: libevent's callers pass -1);
/// otherwise `datalen` bytes of record data, which must be valid for the type when revent-dns
/// knows it. 0, or -1 (bad section, name or data; the request already answered).
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_add_reply(
    req: *mut evdns_server_request,
    section: c_int,
    name: *const c_char,
    r#type: c_int,
    dns_class: c_int,
    ttl: c_int,
    datalen: c_int,
    is_name: c_int,
    data: *const c_char,
) -> c_int {
    const WHAT: &str = "evdns_server_request_add_reply";
    guard(-1, || {
        let section = match section {
            EVDNS_ANSWER_SECTION => Section::Answer,
            EVDNS_AUTHORITY_SECTION => Section::Authority,
            EVDNS_ADDITIONAL_SECTION => Section::Additional,
            _ => {
                dns_log(true, &format!("{WHAT}: bad section {section}"));
                return -1;
            }
        };
        // SAFETY: C's contract.
        let Some(owner) = (unsafe { arg(name, WHAT) }) else {
            return -1;
        };
        let rdata = if data.is_null() {
            RecordData::Raw(Vec::new())
        } else if is_name != 0 {
            // SAFETY: C's contract.
            match unsafe { arg(data, WHAT) } {
                Some(n) => RecordData::Name(n.to_string()),
                None => return -1,
            }
        } else {
            let Ok(len) = usize::try_from(datalen) else {
                dns_log(true, &format!("{WHAT}: negative datalen {datalen}"));
                return -1;
            };
            // SAFETY: `datalen` readable bytes (C's contract).
            RecordData::Raw(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec())
        };
        // SAFETY: C's contract.
        unsafe {
            on_request(req, WHAT, |r| {
                r.add_record(
                    section,
                    owner,
                    r#type as u16,
                    dns_class as u16,
                    ttl as u32,
                    rdata,
                )
            })
        }
    })
}

/// `n` addresses of `N` bytes each from `addrs`; `None` (reported) for a negative `n` or NULL.
///
/// # Safety
/// `addrs` is null or points to `n * N` readable bytes.
unsafe fn addresses<const N: usize>(
    n: c_int,
    addrs: *const c_void,
    what: &str,
) -> Option<Vec<[u8; N]>> {
    let Ok(n) = usize::try_from(n) else {
        dns_log(true, &format!("{what}: negative count {n}"));
        return None;
    };
    if n == 0 {
        return Some(Vec::new());
    }
    if addrs.is_null() {
        dns_log(true, &format!("{what}: NULL addresses"));
        return None;
    }
    // SAFETY: the caller's contract; `[u8; N]` has alignment 1.
    Some(unsafe { std::slice::from_raw_parts(addrs.cast::<[u8; N]>(), n) }.to_vec())
}

/// `evdns_server_request_add_a_reply`: one A record for `name` per address of `addrs` (`n`
/// `struct in_addr`s) in the answer section. 0 or -1.
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_add_a_reply(
    req: *mut evdns_server_request,
    name: *const c_char,
    n: c_int,
    addrs: *const c_void,
    ttl: c_int,
) -> c_int {
    const WHAT: &str = "evdns_server_request_add_a_reply";
    guard(-1, || {
        // SAFETY: C's contract.
        let (Some(owner), Some(raw)) = (unsafe { arg(name, WHAT) }, unsafe {
            addresses::<4>(n, addrs, WHAT)
        }) else {
            return -1;
        };
        let ips: Vec<Ipv4Addr> = raw.into_iter().map(Ipv4Addr::from).collect();
        // SAFETY: C's contract.
        unsafe { on_request(req, WHAT, |r| r.add_a(owner, &ips, ttl as u32)) }
    })
}

/// `evdns_server_request_add_aaaa_reply`: one AAAA record per address (`n` `struct in6_addr`s).
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_add_aaaa_reply(
    req: *mut evdns_server_request,
    name: *const c_char,
    n: c_int,
    addrs: *const c_void,
    ttl: c_int,
) -> c_int {
    const WHAT: &str = "evdns_server_request_add_aaaa_reply";
    guard(-1, || {
        // SAFETY: C's contract.
        let (Some(owner), Some(raw)) = (unsafe { arg(name, WHAT) }, unsafe {
            addresses::<16>(n, addrs, WHAT)
        }) else {
            return -1;
        };
        let ips: Vec<Ipv6Addr> = raw.into_iter().map(Ipv6Addr::from).collect();
        // SAFETY: C's contract.
        unsafe { on_request(req, WHAT, |r| r.add_aaaa(owner, &ips, ttl as u32)) }
    })
}

/// `evdns_server_request_add_ptr_reply`: a PTR record to `hostname`, owned by the reverse name
/// of `in` or by `inaddr_name` (exactly one of the two). 0 or -1.
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_add_ptr_reply(
    req: *mut evdns_server_request,
    r#in: *mut libc::in_addr,
    inaddr_name: *const c_char,
    hostname: *const c_char,
    ttl: c_int,
) -> c_int {
    const WHAT: &str = "evdns_server_request_add_ptr_reply";
    guard(-1, || {
        if r#in.is_null() == inaddr_name.is_null() {
            dns_log(
                true,
                &format!("{WHAT}: give an address or a name, not both"),
            );
            return -1;
        }
        // SAFETY: C's contract.
        let Some(host) = (unsafe { arg(hostname, WHAT) }) else {
            return -1;
        };
        let ttl = ttl as u32;
        if r#in.is_null() {
            // SAFETY: C's contract.
            let Some(owner) = (unsafe { arg(inaddr_name, WHAT) }) else {
                return -1;
            };
            // SAFETY: C's contract.
            unsafe { on_request(req, WHAT, |r| r.add_ptr(owner, host, ttl)) }
        } else {
            // SAFETY: a readable in_addr (C's contract).
            let a = unsafe { ptr::read_unaligned(r#in) };
            let ip = Ipv4Addr::from(a.s_addr.to_ne_bytes());
            // SAFETY: C's contract.
            unsafe { on_request(req, WHAT, |r| r.add_ptr_for(ip.into(), host, ttl)) }
        }
    })
}

/// `evdns_server_request_add_cname_reply`: a CNAME record, `name` an alias of `cname`.
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_add_cname_reply(
    req: *mut evdns_server_request,
    name: *const c_char,
    cname: *const c_char,
    ttl: c_int,
) -> c_int {
    const WHAT: &str = "evdns_server_request_add_cname_reply";
    guard(-1, || {
        // SAFETY: C's contract.
        let (Some(owner), Some(target)) = (unsafe { arg(name, WHAT) }, unsafe { arg(cname, WHAT) })
        else {
            return -1;
        };
        // SAFETY: C's contract.
        unsafe { on_request(req, WHAT, |r| r.add_cname(owner, target, ttl as u32)) }
    })
}

/// `evdns_server_request_respond`: sends the answer and frees the request. `err` is the
/// response code (`DNS_ERR_NONE`, `DNS_ERR_NOTEXIST`, ...); AA and RA come from the request's
/// `flags` field. 0 (an answer that cannot go out at once waits in the port's queue); -1 for NULL,
/// and, as in libevent 2.1, for an `err` that is not a response code (0 to 15: the
/// `EVDNS_FLAGS_*` bits are refused there despite the header's comment), the request then left
/// alive.
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_respond(
    req: *mut evdns_server_request,
    err: c_int,
) -> c_int {
    const WHAT: &str = "evdns_server_request_respond";
    guard(-1, || {
        if !(0..=15).contains(&err) {
            dns_log(true, &format!("{WHAT}: {err} is not a response code"));
            return -1;
        }
        // SAFETY: C's contract.
        unsafe {
            finish(req, WHAT, |b, r, flags| {
                r.set_flags((flags & (EVDNS_FLAGS_AA | EVDNS_FLAGS_RD)) as u16)?;
                r.respond(b, Rcode(err as u8))
            })
        }
    })
}

/// `evdns_server_request_drop`: frees the request without answering. 0; -1 for NULL.
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_drop(req: *mut evdns_server_request) -> c_int {
    guard(-1, || {
        // SAFETY: C's contract.
        unsafe {
            finish(req, "evdns_server_request_drop", |b, r, _| {
                r.drop_request(b)
            })
        }
    })
}

/// `evdns_server_request_get_requesting_addr`: copies the client's address into `sa` and
/// returns its length; -1 when `addr_len` is smaller than that.
#[no_mangle]
pub unsafe extern "C" fn evdns_server_request_get_requesting_addr(
    req: *mut evdns_server_request,
    sa: *mut sockaddr,
    addr_len: c_int,
) -> c_int {
    guard(-1, || {
        if req.is_null() || sa.is_null() {
            dns_log(
                true,
                "evdns_server_request_get_requesting_addr: NULL argument",
            );
            return -1;
        }
        // SAFETY: a live request (C's contract); `peer` is set when it is made and never
        // written after, so it may be read from any thread.
        let peer = unsafe { ptr::addr_of!((*req.cast::<CRequest>()).peer).read() };
        let (ss, len) = to_sockaddr(peer);
        if addr_len < len as c_int {
            return -1;
        }
        // SAFETY: `sa` has `addr_len` >= `len` writable bytes (C's contract).
        unsafe {
            ptr::copy_nonoverlapping(
                ptr::addr_of!(ss).cast::<u8>(),
                sa.cast::<u8>(),
                len as usize,
            )
        };
        len as c_int
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_are_libevents() {
        assert_eq!(size_of::<evdns_server_request>(), 16);
        assert_eq!(offset_of!(evdns_server_request, flags), 0);
        assert_eq!(offset_of!(evdns_server_request, nquestions), 4);
        assert_eq!(offset_of!(evdns_server_request, questions), 8);
        assert_eq!(offset_of!(CRequest, c), 0);
        assert_eq!(size_of::<evdns_server_question>(), 12);
        assert_eq!(offset_of!(evdns_server_question, r#type), 0);
        assert_eq!(offset_of!(evdns_server_question, dns_question_class), 4);
        assert_eq!(offset_of!(evdns_server_question, name), NAME_OFFSET);
    }

    #[test]
    fn a_question_block_holds_each_name() {
        let q = |name: &str, qtype| Question {
            name: name.into(),
            qtype,
            qclass: Question::IN,
        };
        let qs = [
            q("", Question::A),
            q("www.Example.com", Question::AAAA),
            q("abcd", Question::PTR),
        ];
        let (block, ptrs) = question_block(&qs);
        assert_eq!(ptrs.len(), 3);
        // 12 for the root (8 + NUL, at least 12), 24 for the 15-byte name, 16 for "abcd".
        assert_eq!(block.len() * 4, 12 + 24 + 16);
        for (p, q) in ptrs.iter().zip(&qs) {
            assert_eq!(*p as usize % 4, 0);
            // SAFETY: pointers into `block`, which is alive, to questions written whole.
            let (t, c, name) = unsafe {
                (
                    (**p).r#type,
                    (**p).dns_question_class,
                    CStr::from_ptr(ptr::addr_of!((**p).name).cast()),
                )
            };
            assert_eq!((t, c), (c_int::from(q.qtype), 1));
            assert_eq!(name.to_str().unwrap(), q.name);
        }
    }
}
