//! `event2/http.h`'s server (`struct evhttp`, `evhttp_bound_socket`) and the server side of
//! `struct evhttp_request` and `struct evhttp_connection`, over revent-http's [`Server`]; with
//! `http_struct.h`'s public `struct evhttp_request` laid out as libevent's, and `http_compat.h`'s
//! `evhttp_start`.
//!
//! **Routing** is the C side's: each `struct evhttp` keeps its own table of C callbacks by
//! percent-decoded path and its general callback (so `evhttp_set_cb` works on a virtual host after
//! `evhttp_add_virtual_host`), and hands revent-http one general handler that looks the table up.
//! revent-http does the rest: sockets, parsing, limits, timeouts, virtual-host and alias matching,
//! keep-alive and pipelining, the reply framing.
//!
//! **A request** is a `struct evhttp_request` from this module, made when revent-http hands the
//! request over and given to the C callback. Its header lists are real `struct evkeyvalq` lists
//! (filled from the request's head; the output list is read when the reply starts), its buffers real
//! `struct evbuffer`s from `evbuffer_new` (the input one holds the whole body; the output one is what
//! `evhttp_send_reply` sends). Inside the callback, the reply functions reach the revent-http request
//! the handler holds; after it, through its [`RequestHandle`] (checked: once the connection is gone,
//! a reply is dropped with a warning rather than written anywhere). As in libevent, the request is
//! freed once its reply is complete (`evhttp_send_reply`, `evhttp_send_error`,
//! `evhttp_send_reply_end`): after the callback returns, when that happened inside it.
//!
//! Where this differs from libevent 2.1, on purpose:
//! - A request whose connection closes before it is answered stays allocated until the program
//!   answers it (the reply then goes nowhere) or frees the server: libevent frees it with the
//!   connection, leaving the program a dangling pointer.
//! - `evhttp_request_get_connection` on the server side gives a connection object of the request's
//!   own (peer address, base, server), not one shared by the requests of one connection.
//! - Limits and refusals are revent-http's (see its `server` module): a 64 KiB head limit by
//!   default, 100 header fields, and every request-smuggling form refused.

use crate::base::{call_out, with_base, CBase};
use crate::buffer::{evbuffer, evbuffer_add_buffer, evbuffer_free, evbuffer_new, with_buf};
use crate::bufferevent::bufferevent;
use crate::http_util::{self, evhttp_uri, evkeyval, evkeyvalq};
use crate::listener::{
    evconnlistener, evconnlistener_free, evconnlistener_get_fd, evconnlistener_new,
    evconnlistener_new_bind, evconnlistener_set_cb,
};
use crate::{evutil_socket_t, guard, mem};
use libc::{c_char, c_int, c_uint, c_void, size_t, sockaddr, ssize_t, timeval};
use revent::BufferEvent;
use revent::{Evbuffer, EventBase, PeerAddr};
use revent_http::server::{Request, RequestHandle, Server, Timeouts, VirtualHost};
use revent_http::{encode, Limits, Method, Version};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr;
use std::rc::Rc;
use std::time::Duration;

/// `void (*)(struct evhttp_request *, void *)`: request callbacks.
pub type evhttp_request_cb = Option<unsafe extern "C" fn(*mut evhttp_request, *mut c_void)>;
/// `evhttp_bound_socket_foreach_fn`.
pub type evhttp_bound_socket_foreach_fn =
    Option<unsafe extern "C" fn(*mut evhttp_bound_socket, *mut c_void)>;
/// `void (*)(struct evhttp_connection *, void *)`: close and chunk-sent callbacks.
pub type evhttp_connection_cb = Option<unsafe extern "C" fn(*mut evhttp_connection, *mut c_void)>;
/// `void (*)(enum evhttp_request_error, void *)`.
pub type evhttp_request_error_cb = Option<unsafe extern "C" fn(c_int, *mut c_void)>;
/// `int (*)(struct evhttp_request *, void *)`.
pub type evhttp_header_cb = Option<unsafe extern "C" fn(*mut evhttp_request, *mut c_void) -> c_int>;

// `enum evhttp_cmd_type`.
pub const EVHTTP_REQ_GET: c_int = 1 << 0;
pub const EVHTTP_REQ_POST: c_int = 1 << 1;
pub const EVHTTP_REQ_HEAD: c_int = 1 << 2;
pub const EVHTTP_REQ_PUT: c_int = 1 << 3;
pub const EVHTTP_REQ_DELETE: c_int = 1 << 4;
pub const EVHTTP_REQ_OPTIONS: c_int = 1 << 5;
pub const EVHTTP_REQ_TRACE: c_int = 1 << 6;
pub const EVHTTP_REQ_CONNECT: c_int = 1 << 7;
pub const EVHTTP_REQ_PATCH: c_int = 1 << 8;

/// `enum evhttp_request_kind`.
pub const EVHTTP_REQUEST: c_int = 0;
pub const EVHTTP_RESPONSE: c_int = 1;

// `struct evhttp_request`'s flags (http_struct.h).
pub const EVHTTP_REQ_OWN_CONNECTION: c_int = 0x0001;
pub const EVHTTP_PROXY_REQUEST: c_int = 0x0002;
pub const EVHTTP_USER_OWNED: c_int = 0x0004;

/// `EVHTTP_SERVER_LINGERING_CLOSE`: revent-http always reads a refused request's rest before it
/// closes, so the flag is accepted and changes nothing.
pub const EVHTTP_SERVER_LINGERING_CLOSE: c_int = 0x0001;

/// Marks a live `struct evhttp`.
const HTTP_MAGIC: u64 = 0x7265_7665_6e74_4854;
/// Marks a live `struct evhttp_request`.
const REQ_MAGIC: u64 = 0x7265_7665_6e74_5251;
/// Marks a live `struct evhttp_connection`.
const CONN_MAGIC: u64 = 0x7265_7665_6e74_4343;

/// The method's `enum evhttp_cmd_type` value; 0 for a method libevent 2.1 has no value for.
pub(crate) fn cmd_type(m: &Method) -> c_int {
    match m {
        Method::Get => EVHTTP_REQ_GET,
        Method::Post => EVHTTP_REQ_POST,
        Method::Head => EVHTTP_REQ_HEAD,
        Method::Put => EVHTTP_REQ_PUT,
        Method::Delete => EVHTTP_REQ_DELETE,
        Method::Options => EVHTTP_REQ_OPTIONS,
        Method::Trace => EVHTTP_REQ_TRACE,
        Method::Connect => EVHTTP_REQ_CONNECT,
        Method::Patch => EVHTTP_REQ_PATCH,
        Method::Other(_) => 0,
    }
}

/// The method an `enum evhttp_cmd_type` value names (one bit).
pub(crate) fn method_of(t: c_int) -> Option<Method> {
    Some(match t {
        EVHTTP_REQ_GET => Method::Get,
        EVHTTP_REQ_POST => Method::Post,
        EVHTTP_REQ_HEAD => Method::Head,
        EVHTTP_REQ_PUT => Method::Put,
        EVHTTP_REQ_DELETE => Method::Delete,
        EVHTTP_REQ_OPTIONS => Method::Options,
        EVHTTP_REQ_TRACE => Method::Trace,
        EVHTTP_REQ_CONNECT => Method::Connect,
        EVHTTP_REQ_PATCH => Method::Patch,
        _ => return None,
    })
}

// ---- struct evhttp_request ----

/// The `next` field of `struct evhttp_request` (a `TAILQ_ENTRY`, unused here: revent-http queues
/// requests itself).
///
/// ```
/// assert_eq!(std::mem::size_of::<revent_capi::http::evhttp_request_next>(), 16);
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct evhttp_request_next {
    pub tqe_next: *mut evhttp_request,
    pub tqe_prev: *mut *mut evhttp_request,
}

/// `struct evhttp_request`, public in `http_struct.h`: the fields up to `on_complete_cb_arg` are
/// libevent's, at libevent's offsets (C compiled with that header reads `req->input_headers`,
/// `req->type`, `req->response_code` directly), and this module keeps them current; what follows
/// is this module's own.
///
/// ```
/// use revent_capi::http::*;
/// use revent_capi::http_client::evhttp_request_new;
/// use revent_capi::http_util::{evhttp_add_header, evhttp_find_header};
/// use std::ffi::CStr;
///
/// // SAFETY: a request of this library, C strings, freed once.
/// unsafe {
///     let req = evhttp_request_new(None, std::ptr::null_mut());
///     let out = evhttp_request_get_output_headers(req);
///     assert_eq!(out, (*req).output_headers);
///     assert_eq!(evhttp_add_header(out, c"Host".as_ptr(), c"example.com".as_ptr()), 0);
///     assert_eq!(CStr::from_ptr(evhttp_find_header(out, c"host".as_ptr())), c"example.com");
///     assert_eq!(evhttp_request_get_response_code(req), 0);
///     evhttp_request_own(req);
///     assert_eq!(evhttp_request_is_owned(req), 1);
///     evhttp_request_free(req);
/// }
/// ```
#[repr(C)]
pub struct evhttp_request {
    pub next: evhttp_request_next,
    pub evcon: *mut evhttp_connection,
    pub flags: c_int,
    pub input_headers: *mut evkeyvalq,
    pub output_headers: *mut evkeyvalq,
    pub remote_host: *mut c_char,
    pub remote_port: u16,
    pub host_cache: *mut c_char,
    pub kind: c_int,
    pub type_: c_int,
    pub headers_size: size_t,
    pub body_size: size_t,
    pub uri: *mut c_char,
    pub uri_elems: *mut evhttp_uri,
    pub major: c_char,
    pub minor: c_char,
    pub response_code: c_int,
    pub response_code_line: *mut c_char,
    pub input_buffer: *mut evbuffer,
    pub ntoread: i64,
    /// `chunked:1, userdone:1`.
    pub bits: c_uint,
    pub output_buffer: *mut evbuffer,
    pub cb: evhttp_request_cb,
    pub cb_arg: *mut c_void,
    pub chunk_cb: evhttp_request_cb,
    pub header_cb: evhttp_header_cb,
    pub error_cb: evhttp_request_error_cb,
    pub on_complete_cb: evhttp_request_cb,
    pub on_complete_cb_arg: *mut c_void,
    // ---- revent's own ----
    magic: u64,
    /// The lists `input_headers` and `output_headers` point to (they never move: the request is
    /// boxed).
    in_list: evkeyvalq,
    out_list: evkeyvalq,
    side: Side,
}

// http_struct.h's layout on x86_64 (checked against the header by tests/c/http_server.c too).
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(evhttp_request, evcon) == 16);
    assert!(offset_of!(evhttp_request, flags) == 24);
    assert!(offset_of!(evhttp_request, input_headers) == 32);
    assert!(offset_of!(evhttp_request, output_headers) == 40);
    assert!(offset_of!(evhttp_request, remote_host) == 48);
    assert!(offset_of!(evhttp_request, remote_port) == 56);
    assert!(offset_of!(evhttp_request, host_cache) == 64);
    assert!(offset_of!(evhttp_request, kind) == 72);
    assert!(offset_of!(evhttp_request, type_) == 76);
    assert!(offset_of!(evhttp_request, headers_size) == 80);
    assert!(offset_of!(evhttp_request, body_size) == 88);
    assert!(offset_of!(evhttp_request, uri) == 96);
    assert!(offset_of!(evhttp_request, uri_elems) == 104);
    assert!(offset_of!(evhttp_request, major) == 112);
    assert!(offset_of!(evhttp_request, minor) == 113);
    assert!(offset_of!(evhttp_request, response_code) == 116);
    assert!(offset_of!(evhttp_request, response_code_line) == 120);
    assert!(offset_of!(evhttp_request, input_buffer) == 128);
    assert!(offset_of!(evhttp_request, ntoread) == 136);
    assert!(offset_of!(evhttp_request, bits) == 144);
    assert!(offset_of!(evhttp_request, output_buffer) == 152);
    assert!(offset_of!(evhttp_request, cb) == 160);
    assert!(offset_of!(evhttp_request, cb_arg) == 168);
    assert!(offset_of!(evhttp_request, chunk_cb) == 176);
    assert!(offset_of!(evhttp_request, header_cb) == 184);
    assert!(offset_of!(evhttp_request, error_cb) == 192);
    assert!(offset_of!(evhttp_request, on_complete_cb) == 200);
    assert!(offset_of!(evhttp_request, on_complete_cb_arg) == 208);
    assert!(offset_of!(evhttp_request, magic) == 216);
};

/// Which side a request is on.
enum Side {
    /// Made by `evhttp_request_new`, for `evhttp_make_request`.
    Client(crate::http_client::ClientReq),
    /// Handed over by a server.
    Server(ServerReq),
}

/// A server request's link to revent-http.
struct ServerReq {
    /// The server whose connection the request came on.
    http: *mut evhttp,
    /// The revent-http request while its handler runs (the C callback is inside it), else null.
    live: *mut Request,
    /// The request on its server once the handler returned.
    handle: Option<RequestHandle>,
    /// The C callback is running.
    in_callback: bool,
    /// The reply is complete: the request is freed as soon as no callback holds it.
    done: bool,
    /// The reply is written and the request waits for it to go out, to run its
    /// `on_complete_cb` (then it is freed).
    awaiting: bool,
    /// Cleared when the request is freed: what holds the request's address past that (its
    /// completion hook) checks it.
    alive: Rc<Cell<bool>>,
}

/// `req` if it is a live request of this library; a warning naming `what` otherwise.
pub(crate) fn checked_req(req: *mut evhttp_request, what: &str) -> Option<*mut evhttp_request> {
    // SAFETY: NULL or a request of ours (C's contract); only the magic word is read first.
    if req.is_null() || unsafe { ptr::read(ptr::addr_of!((*req).magic)) } != REQ_MAGIC {
        log::warn!("{what}: not a live evhttp_request");
        return None;
    }
    Some(req)
}

/// The client part of request `r`, if it is a client request.
///
/// # Safety
/// `r` is a live request; the reference is not held across calls that may free it.
pub(crate) unsafe fn client_part<'a>(
    r: *mut evhttp_request,
) -> Option<&'a mut crate::http_client::ClientReq> {
    // SAFETY: the caller's contract; `side` is this module's, never C's.
    match unsafe { &mut (*r).side } {
        Side::Client(c) => Some(c),
        Side::Server(_) => None,
    }
}

/// `evhttp_request_free`: frees a request the program owns (or one it made and never sent). A
/// client request still queued is cancelled first. A server request freed before its reply stays
/// unanswered on its connection (until the connection times out or closes).
#[no_mangle]
pub unsafe extern "C" fn evhttp_request_free(req: *mut evhttp_request) {
    guard((), || {
        let Some(r) = checked_req(req, "evhttp_request_free") else {
            return;
        };
        // SAFETY: a live request, freed once (the contract).
        unsafe {
            match &mut (*r).side {
                Side::Client(_) => crate::http_client::free_client(r, None),
                Side::Server(s) => {
                    if s.in_callback {
                        s.done = true;
                    } else {
                        free_request(r);
                    }
                }
            }
        }
    })
}

/// Addresses of the live client connections (a connection may be freed by a callback; code that
/// ran that callback checks here before touching it again).
static LIVE_CONNS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// Records a new client connection.
pub(crate) fn register_conn(c: *mut evhttp_connection) {
    LIVE_CONNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(c as usize);
}

/// Whether `c` is a live client connection.
pub(crate) fn conn_is_live(c: *mut evhttp_connection) -> bool {
    LIVE_CONNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&(c as usize))
}

/// Frees a connection record.
///
/// # Safety
/// `c` is a live connection from `Box::into_raw`, not used afterwards.
pub(crate) unsafe fn free_conn(c: *mut evhttp_connection) {
    LIVE_CONNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|x| *x != c as usize);
    // SAFETY: the caller's contract.
    unsafe {
        (*c).magic = 0;
        drop(Box::from_raw(c));
    }
}

/// A request with empty lists and buffers, on side `side`.
pub(crate) fn new_request(
    side_client: Option<crate::http_client::ClientReq>,
) -> *mut evhttp_request {
    let side = match side_client {
        Some(c) => Side::Client(c),
        None => Side::Server(ServerReq {
            http: ptr::null_mut(),
            live: ptr::null_mut(),
            handle: None,
            in_callback: false,
            done: false,
            awaiting: false,
            alive: Rc::new(Cell::new(true)),
        }),
    };
    let r = Box::into_raw(Box::new(evhttp_request {
        next: evhttp_request_next {
            tqe_next: ptr::null_mut(),
            tqe_prev: ptr::null_mut(),
        },
        evcon: ptr::null_mut(),
        flags: 0,
        input_headers: ptr::null_mut(),
        output_headers: ptr::null_mut(),
        remote_host: ptr::null_mut(),
        remote_port: 0,
        host_cache: ptr::null_mut(),
        kind: EVHTTP_RESPONSE,
        type_: 0,
        headers_size: 0,
        body_size: 0,
        uri: ptr::null_mut(),
        uri_elems: ptr::null_mut(),
        major: 1,
        minor: 1,
        response_code: 0,
        response_code_line: ptr::null_mut(),
        input_buffer: evbuffer_new(),
        ntoread: 0,
        bits: 0,
        output_buffer: evbuffer_new(),
        cb: None,
        cb_arg: ptr::null_mut(),
        chunk_cb: None,
        header_cb: None,
        error_cb: None,
        on_complete_cb: None,
        on_complete_cb_arg: ptr::null_mut(),
        magic: REQ_MAGIC,
        in_list: evkeyvalq {
            tqh_first: ptr::null_mut(),
            tqh_last: ptr::null_mut(),
        },
        out_list: evkeyvalq {
            tqh_first: ptr::null_mut(),
            tqh_last: ptr::null_mut(),
        },
        side,
    }));
    // SAFETY: fresh from Box::into_raw; the lists are initialized in place (they point into
    // themselves) and the public fields pointed at them.
    unsafe {
        let i = ptr::addr_of_mut!((*r).in_list);
        let o = ptr::addr_of_mut!((*r).out_list);
        http_util::init(i);
        http_util::init(o);
        (*r).input_headers = i;
        (*r).output_headers = o;
    }
    r
}

/// Frees a request and everything it holds.
///
/// # Safety
/// `r` is a live request of this library, not used afterwards.
pub(crate) unsafe fn free_request(r: *mut evhttp_request) {
    // SAFETY: the caller's contract; each field is freed by its own allocator once.
    unsafe {
        if let Side::Server(s) = &(*r).side {
            s.alive.set(false);
            if !s.http.is_null() {
                (*s.http).pending.borrow_mut().remove(&(r as usize));
            }
            let c = (*r).evcon;
            if !c.is_null() {
                (*c).req = ptr::null_mut();
                // A callback registered on the connection still holds it: the last hold frees it.
                if (*c).holds > 0 {
                    (*c).orphan = true;
                } else {
                    (*c).magic = 0;
                    drop(Box::from_raw(c));
                }
            }
        }
        http_util::clear(ptr::addr_of_mut!((*r).in_list));
        http_util::clear(ptr::addr_of_mut!((*r).out_list));
        evbuffer_free((*r).input_buffer);
        evbuffer_free((*r).output_buffer);
        http_util::evhttp_uri_free((*r).uri_elems);
        mem::free((*r).uri.cast());
        mem::free((*r).remote_host.cast());
        mem::free((*r).host_cache.cast());
        mem::free((*r).response_code_line.cast());
        (*r).magic = 0;
        drop(Box::from_raw(r));
    }
}

/// Replaces the list `list` with `pairs`.
///
/// # Safety
/// `list` is a well-formed list of this library's memory.
pub(crate) unsafe fn fill_list<'a>(
    list: *mut evkeyvalq,
    pairs: impl Iterator<Item = (&'a str, &'a [u8])>,
) {
    // SAFETY: the caller's contract.
    unsafe {
        http_util::clear(list);
        for (k, v) in pairs {
            // A value holding a NUL cannot be a C string; revent-http's parser refuses those, so
            // this is a guard, never a silent cut.
            if v.contains(&0) {
                log::warn!("evhttp: header {k} holds a NUL; left out");
                continue;
            }
            http_util::append(list, k.as_bytes(), v);
        }
    }
}

/// The entries of a C list, copied.
///
/// # Safety
/// `list` is NULL or a well-formed list.
pub(crate) unsafe fn read_list(list: *const evkeyvalq) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    if list.is_null() {
        return out;
    }
    // SAFETY: the caller's contract: a NULL-terminated chain of live entries with C strings.
    unsafe {
        let mut e: *mut evkeyval = (*list).tqh_first;
        while !e.is_null() {
            out.push((
                CStr::from_ptr((*e).key).to_bytes().to_vec(),
                CStr::from_ptr((*e).value).to_bytes().to_vec(),
            ));
            e = (*e).next.tqe_next;
        }
    }
    out
}

/// The C output list of `r` as revent-http header fields (fields revent-http refuses are left
/// out with a warning; `skip` names fields the library sets itself).
///
/// # Safety
/// `r` is a live request.
pub(crate) unsafe fn output_fields(r: *mut evhttp_request, skip: &[&str]) -> revent_http::Headers {
    let mut h = revent_http::Headers::new();
    // SAFETY: the caller's contract; the field is read through its raw place (C may have set it).
    for (k, v) in unsafe { read_list((*r).output_headers) } {
        let Ok(k) = String::from_utf8(k) else {
            log::warn!("evhttp: an output header name is not a token; left out");
            continue;
        };
        if skip.iter().any(|s| s.eq_ignore_ascii_case(&k)) {
            continue;
        }
        if let Err(e) = h.add(&k, &v) {
            log::warn!("evhttp: output header {k}: {e}; left out");
        }
    }
    h
}

/// Moves everything in the C buffer `b` into a new revent buffer.
///
/// # Safety
/// `b` is NULL or a live buffer.
pub(crate) unsafe fn take_buffer(b: *mut evbuffer, what: &str) -> Evbuffer {
    let mut out = Evbuffer::new();
    if !b.is_null() {
        // SAFETY: the caller's contract.
        unsafe {
            with_buf(b, what, (), |src| {
                let _ = out.add_buffer(src);
            })
        };
    }
    out
}

/// Sets a malloc'd C string field to a copy of `bytes`.
///
/// # Safety
/// `field` points to a field holding NULL or a string from [`mem::malloc`].
pub(crate) unsafe fn set_string(field: *mut *mut c_char, bytes: &[u8]) {
    // SAFETY: the caller's contract.
    unsafe {
        mem::free((*field).cast());
        *field = mem::c_string(bytes);
    }
}

/// A C string argument as text (bytes past ASCII as Latin-1, as the rest of the HTTP layer).
///
/// # Safety
/// `p` is NULL or a C string.
unsafe fn c_text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| {
        // SAFETY: the caller's contract: a C string (checked non-NULL).
        unsafe { CStr::from_ptr(p) }
            .to_bytes()
            .iter()
            .map(|&b| char::from(b))
            .collect()
    })
}

// ---- struct evhttp_connection (server side here; the client side is http_client's) ----

/// `struct evhttp_connection` (opaque to C).
///
/// ```
/// use revent_capi::base::{event_base_free, event_base_new};
/// use revent_capi::http::*;
/// use revent_capi::http_client::*;
/// use std::ffi::CStr;
///
/// // SAFETY: a base and connection of this library, C strings, each freed once.
/// unsafe {
///     let base = event_base_new();
///     let conn = evhttp_connection_base_new(base, std::ptr::null_mut(), c"127.0.0.1".as_ptr(), 8080);
///     let (mut addr, mut port) = (std::ptr::null_mut(), 0);
///     evhttp_connection_get_peer(conn, &mut addr, &mut port);
///     assert_eq!((CStr::from_ptr(addr), port), (c"127.0.0.1", 8080));
///     assert_eq!(evhttp_connection_get_base(conn), base);
///     evhttp_connection_free(conn);
///     event_base_free(base);
/// }
/// ```
pub struct evhttp_connection {
    magic: u64,
    pub(crate) cbase: *mut CBase,
    /// The server, for a connection a request came on; NULL for a client connection.
    pub(crate) server: *mut evhttp,
    /// The peer's address as text (`evhttp_connection_get_peer`).
    pub(crate) address: CString,
    pub(crate) port: u16,
    /// The peer's address as C's (`evhttp_connection_get_addr`); length 0 when unknown.
    pub(crate) sa: libc::sockaddr_storage,
    pub(crate) salen: libc::socklen_t,
    pub(crate) client: Option<crate::http_client::ClientConn>,
    /// The bufferevent `evhttp_connection_get_bufferevent` gives (null for a server connection
    /// whose server has no `evhttp_set_bevcb`).
    pub(crate) bev: *mut bufferevent,
    /// `evhttp_connection_set_closecb`'s callback and argument, read when the close happens.
    pub(crate) closecb: evhttp_connection_cb,
    pub(crate) closecb_arg: *mut c_void,
    /// The close callback is registered with revent-http (once per connection).
    pub(crate) closecb_hooked: bool,
    /// A server connection's request (null once freed).
    req: *mut evhttp_request,
    /// Callbacks holding a server connection's address ([`EvconHold`]).
    holds: u32,
    /// The request went while holds remained: the last hold frees the record.
    orphan: bool,
}

/// Keeps a server connection record allocated while a callback that gets its address may still
/// run (libevent's connection outlives its requests; here the record belongs to one request).
pub(crate) struct EvconHold(*mut evhttp_connection);

impl EvconHold {
    /// The record. (A method, not the field: a closure that named `hold.0` would capture the
    /// pointer alone and drop the hold at once.)
    pub(crate) fn get(&self) -> *mut evhttp_connection {
        self.0
    }

    /// # Safety
    /// `c` is a live connection record of this library.
    pub(crate) unsafe fn new(c: *mut evhttp_connection) -> EvconHold {
        // SAFETY: the caller's contract.
        unsafe { (*c).holds += 1 };
        EvconHold(c)
    }
}

impl Drop for EvconHold {
    fn drop(&mut self) {
        // SAFETY: the record stays allocated while a hold exists (free_request defers to here).
        unsafe {
            (*self.0).holds -= 1;
            if (*self.0).holds == 0 && (*self.0).orphan {
                (*self.0).magic = 0;
                drop(Box::from_raw(self.0));
            }
        }
    }
}

impl evhttp_connection {
    pub(crate) fn new(
        cbase: *mut CBase,
        server: *mut evhttp,
        peer: Option<SocketAddr>,
        address: &[u8],
        port: u16,
    ) -> evhttp_connection {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut salen = 0;
        if let Some(p) = peer {
            (sa, salen) = crate::dns::to_sockaddr(p);
        }
        evhttp_connection {
            magic: CONN_MAGIC,
            cbase,
            server,
            address: CString::new(address).unwrap_or_default(),
            port,
            sa,
            salen,
            client: None,
            bev: ptr::null_mut(),
            closecb: None,
            closecb_arg: ptr::null_mut(),
            closecb_hooked: false,
            req: ptr::null_mut(),
            holds: 0,
            orphan: false,
        }
    }
}

/// `evcon` if it is a live connection of this library.
pub(crate) fn checked_conn(
    evcon: *mut evhttp_connection,
    what: &str,
) -> Option<*mut evhttp_connection> {
    // SAFETY: NULL or a connection of ours (C's contract); only the magic word is read first.
    if evcon.is_null() || unsafe { ptr::read(ptr::addr_of!((*evcon).magic)) } != CONN_MAGIC {
        log::warn!("{what}: not a live evhttp_connection");
        return None;
    }
    Some(evcon)
}

/// `evhttp_connection_get_peer`: the peer's address (a string the connection owns) and port.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_get_peer(
    evcon: *mut evhttp_connection,
    address: *mut *mut c_char,
    port: *mut u16,
) {
    guard((), || {
        let Some(c) = checked_conn(evcon, "evhttp_connection_get_peer") else {
            return;
        };
        // SAFETY: a live connection; the out-pointers are writable (the contract).
        unsafe {
            if !address.is_null() {
                *address = (*c).address.as_ptr().cast_mut();
            }
            if !port.is_null() {
                *port = (*c).port;
            }
        }
    })
}

/// `evhttp_connection_get_addr`: the peer's socket address, or NULL when not known.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_get_addr(
    evcon: *mut evhttp_connection,
) -> *const sockaddr {
    guard(ptr::null(), || {
        let Some(c) = checked_conn(evcon, "evhttp_connection_get_addr") else {
            return ptr::null();
        };
        // SAFETY: a live connection.
        unsafe {
            if (*c).salen == 0 {
                ptr::null()
            } else {
                ptr::addr_of!((*c).sa).cast()
            }
        }
    })
}

/// `evhttp_connection_get_base`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_get_base(evcon: *mut evhttp_connection) -> *mut CBase {
    guard(ptr::null_mut(), || {
        checked_conn(evcon, "evhttp_connection_get_base")
            // SAFETY: a live connection.
            .map_or(ptr::null_mut(), |c| unsafe { (*c).cbase })
    })
}

/// `evhttp_connection_get_server`: the server a request came to; NULL for a client connection.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_get_server(
    evcon: *mut evhttp_connection,
) -> *mut evhttp {
    guard(ptr::null_mut(), || {
        checked_conn(evcon, "evhttp_connection_get_server")
            // SAFETY: a live connection.
            .map_or(ptr::null_mut(), |c| unsafe { (*c).server })
    })
}

// ---- struct evhttp ----

/// A C callback and its argument.
#[derive(Clone, Copy)]
struct Cb {
    f: unsafe extern "C" fn(*mut evhttp_request, *mut c_void),
    arg: *mut c_void,
}

#[derive(Default)]
struct Routes {
    /// Percent-decoded path and callback, in the order set.
    exact: Vec<(Vec<u8>, Cb)>,
    general: Option<Cb>,
}

/// `struct evhttp` (opaque to C).
///
/// ```
/// use revent_capi::base::{event_base_free, event_base_new};
/// use revent_capi::http::*;
/// use std::ptr::null_mut;
///
/// unsafe extern "C" fn hello(req: *mut evhttp_request, _: *mut std::ffi::c_void) {
///     // SAFETY: the live request the server hands its callback.
///     unsafe { evhttp_send_reply(req, 200, c"OK".as_ptr(), null_mut()) };
/// }
/// // SAFETY: a base and server of this library, C strings, each freed once.
/// unsafe {
///     let base = event_base_new();
///     let http = evhttp_new(base);
///     let bound = evhttp_bind_socket_with_handle(http, c"127.0.0.1".as_ptr(), 0);
///     assert!(evhttp_bound_socket_get_fd(bound) >= 0);
///     assert_eq!(evhttp_set_cb(http, c"/hello".as_ptr(), Some(hello), null_mut()), 0);
///     assert_eq!(evhttp_set_cb(http, c"/hello".as_ptr(), Some(hello), null_mut()), -1);
///     assert_eq!(evhttp_del_cb(http, c"/hello".as_ptr()), 0);
///     evhttp_free(http);
///     event_base_free(base);
/// }
/// ```
pub struct evhttp {
    magic: u64,
    cbase: *mut CBase,
    server: Server,
    routes: RefCell<Routes>,
    bound: Vec<*mut evhttp_bound_socket>,
    /// Virtual hosts added to this server: pattern and host.
    vhosts: Vec<(String, *mut evhttp)>,
    /// The server this one is a virtual host of, or NULL.
    parent: *mut evhttp,
    /// This server's aliases, as a virtual host (the root's go to revent-http directly).
    aliases: Vec<String>,
    /// Requests handed to C and not answered yet (addresses), freed with the server.
    pending: RefCell<HashSet<usize>>,
    /// The C bufferevents `evhttp_set_bevcb`'s callback made, by their Rust handles, while
    /// revent-http serves a connection on them.
    bevs: Rc<RefCell<HashMap<BufferEvent, *mut bufferevent>>>,
}

/// `struct evhttp_bound_socket` (opaque to C): a listener of the server (see [`evhttp`]'s
/// example).
///
/// ```
/// use revent_capi::http::*;
/// // SAFETY: NULL is refused with the error value.
/// assert_eq!(unsafe { evhttp_bound_socket_get_fd(std::ptr::null_mut()) }, -1);
/// ```
pub struct evhttp_bound_socket {
    listener: *mut evconnlistener,
}

/// `http` if it is a live server of this library.
fn checked_http(http: *mut evhttp, what: &str) -> Option<*mut evhttp> {
    // SAFETY: NULL or a server of ours (C's contract); only the magic word is read first.
    if http.is_null() || unsafe { ptr::read(ptr::addr_of!((*http).magic)) } != HTTP_MAGIC {
        log::warn!("{what}: not a live evhttp");
        return None;
    }
    Some(http)
}

/// The revent-http handler for the routes of `owner`, serving connections of `root`.
fn handler(
    root: *mut evhttp,
    owner: *mut evhttp,
) -> impl FnMut(&mut EventBase, &mut Request) + 'static {
    move |base, req| {
        let rp: *mut Request = req;
        // SAFETY: `root` and `owner` are live: their handlers are dropped with them (evhttp_free
        // frees the revent-http server, evhttp_remove_virtual_host takes the host out). `rp` is the
        // request revent-http lends this call.
        unsafe { serve(base, root, owner, rp) }
    }
}

/// Finds the C callback for a request and calls it with a new `struct evhttp_request`.
///
/// # Safety
/// `root` and `owner` are live servers; `rp` is the request of the running handler call, used only
/// through this pointer until it returns.
unsafe fn serve(base: &mut EventBase, root: *mut evhttp, owner: *mut evhttp, rp: *mut Request) {
    // SAFETY: the caller's contract.
    let (path, cbase) = unsafe {
        (
            encode::uridecode((*rp).uri().path().unwrap_or(""), false),
            (*root).cbase,
        )
    };
    let cb = {
        // SAFETY: as above; the borrow ends before C runs.
        let routes = unsafe { (*owner).routes.borrow() };
        routes
            .exact
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, cb)| *cb)
            .or(routes.general)
    };
    let Some(cb) = cb else {
        // No callback: 404, keeping the connection (as libevent).
        // SAFETY: the caller's contract.
        let req = unsafe { &mut *rp };
        let _ = req
            .output_headers_mut()
            .add("Content-Type", "text/html; charset=ISO-8859-1");
        let _ = req.send_reply(
            base,
            404,
            "Not Found",
            b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n",
        );
        return;
    };
    // SAFETY: the caller's contract.
    let r = unsafe { server_request(root, rp) };
    // SAFETY: `r` is fresh; the handler's request is reachable through it during the call.
    unsafe {
        if let Side::Server(s) = &mut (*r).side {
            s.live = rp;
            s.in_callback = true;
        }
        (*r).cb = Some(cb.f);
        (*r).cb_arg = cb.arg;
    }
    // SAFETY: `cbase` is the base whose loop runs this handler; C gets a live request.
    unsafe { call_out(cbase, base, || (cb.f)(r, cb.arg)) };
    // SAFETY: the request is live until freed below (C does not free server requests; a
    // free it asked for while inside is deferred to here).
    unsafe {
        let Side::Server(s) = &mut (*r).side else {
            return;
        };
        s.live = ptr::null_mut();
        s.in_callback = false;
        if s.done && s.awaiting {
            // Its completion hook frees it.
        } else if s.done {
            free_request(r);
        } else {
            s.handle = Some((*rp).handle());
            (*root).pending.borrow_mut().insert(r as usize);
        }
    }
}

/// A `struct evhttp_request` for the request revent-http handed over.
///
/// # Safety
/// `root` is a live server; `rp` the request of the running handler call.
unsafe fn server_request(root: *mut evhttp, rp: *mut Request) -> *mut evhttp_request {
    // SAFETY: the caller's contract; this borrow ends before the body is taken below.
    let req = unsafe { &*rp };
    let r = new_request(None);
    let peer = match req.peer() {
        PeerAddr::Inet(a) => Some(*a),
        _ => None,
    };
    let host = peer.map(|a| a.ip().to_string()).unwrap_or_default();
    let port = peer.map_or(0, |a| a.port());
    // SAFETY: `r` is fresh and ours; `root` is live (the caller's contract).
    unsafe {
        if let Side::Server(s) = &mut (*r).side {
            s.http = root;
        }
        (*r).kind = EVHTTP_REQUEST;
        (*r).type_ = cmd_type(req.method());
        set_string(ptr::addr_of_mut!((*r).uri), req.target().as_bytes());
        // libevent parses the target leniently (NONCONFORMANT); revent-http parsed it already.
        (*r).uri_elems =
            http_util::evhttp_uri_parse_with_flags((*r).uri, http_util::EVHTTP_URI_NONCONFORMANT);
        let v: Version = req.version();
        (*r).major = v.major() as c_char;
        (*r).minor = v.minor() as c_char;
        set_string(ptr::addr_of_mut!((*r).remote_host), host.as_bytes());
        (*r).remote_port = port;
        fill_list((*r).input_headers, req.headers().iter());
        (*r).headers_size = req
            .headers()
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum();
        (*r).body_size = req.body().len();
        let evcon = Box::into_raw(Box::new(evhttp_connection::new(
            (*root).cbase,
            root,
            peer,
            host.as_bytes(),
            port,
        )));
        (*evcon).req = r;
        (*evcon).bev = (*root)
            .bevs
            .borrow()
            .get(&req.bufferevent())
            .copied()
            .unwrap_or(ptr::null_mut());
        (*r).evcon = evcon;
        // The body moves into the C buffer without copying; revent-http does not read it again.
        with_buf((*r).input_buffer, "evhttp", (), |b| {
            let _ = b.add_buffer((*rp).body_mut());
        });
    }
    r
}

/// Runs `f` on the revent-http request behind the server request `r`: the one its running
/// handler holds, or the one its handle names. `None` (with a warning) when the request is gone.
///
/// # Safety
/// `r` is a live server request.
unsafe fn on_request<R>(
    r: *mut evhttp_request,
    what: &str,
    f: impl FnOnce(&mut EventBase, &mut Request) -> revent::Result<R>,
) -> Option<R> {
    // SAFETY: the caller's contract.
    let Side::Server(s) = (unsafe { &(*r).side }) else {
        log::warn!("{what}: not a request a server received");
        return None;
    };
    let (live, handle, http) = (s.live, s.handle, s.http);
    if http.is_null() {
        return None;
    }
    // SAFETY: a live request's server is live (evhttp_free frees its requests).
    let (cbase, server) = unsafe { ((*http).cbase, (*http).server.clone()) };
    let out = if !live.is_null() {
        // SAFETY: inside the handler call that lent `live` (its C callback runs this), and
        // nothing else uses it meanwhile.
        unsafe { with_base(cbase, |b| f(b, &mut *live)) }
    } else if let Some(h) = handle {
        // SAFETY: a live base (the server's).
        unsafe {
            with_base(cbase, |b| {
                server.with_request(h, |req| f(b, req)).and_then(|r| r)
            })
        }
    } else {
        None
    };
    match out {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            log::warn!("{what}: {e}");
            None
        }
        None => None,
    }
}

/// Marks the reply of `r` complete; frees `r` unless its callback is still running.
///
/// # Safety
/// `r` is a live server request, not used afterwards by the caller.
unsafe fn reply_done(r: *mut evhttp_request) {
    // SAFETY: the caller's contract.
    unsafe {
        if let Side::Server(s) = &mut (*r).side {
            s.done = true;
            if s.in_callback || s.awaiting {
                return;
            }
        }
        free_request(r);
    }
}

/// The output headers of a server reply and its reason phrase (`reason`, or libevent's default
/// for none), with `response_code`/`response_code_line` set.
///
/// # Safety
/// `r` is a live request; `reason` NULL or a C string.
unsafe fn prepare_reply(
    r: *mut evhttp_request,
    code: c_int,
    reason: *const c_char,
) -> (revent_http::Headers, String) {
    // SAFETY: the caller's contract.
    unsafe {
        let reason = c_text(reason).unwrap_or_default();
        (*r).response_code = code;
        let line = if reason.is_empty() {
            revent_http_reason(code)
        } else {
            reason
        };
        set_string(
            ptr::addr_of_mut!((*r).response_code_line),
            &latin1_bytes(&line),
        );
        (*r).kind = EVHTTP_RESPONSE;
        (output_fields(r, &[]), line)
    }
}

fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars().map(|c| u8::try_from(c).unwrap_or(b'?')).collect()
}

/// The reason phrase a reply without one gets, as in libevent: the standard phrase, else the
/// name of the code's class, else "Unknown Status Class".
fn revent_http_reason(code: c_int) -> String {
    let standard = u16::try_from(code)
        .ok()
        .and_then(revent_http::standard_reason);
    let class = match code / 100 {
        1 => "Informational",
        2 => "Success",
        3 => "Redirection",
        4 => "Client Error",
        5 => "Server Error",
        _ => "Unknown Status Class",
    };
    standard.unwrap_or(class).to_string()
}

fn code_u16(code: c_int, what: &str) -> Option<u16> {
    match u16::try_from(code) {
        Ok(c) => Some(c),
        Err(_) => {
            log::warn!("{what}: status {code} out of range");
            None
        }
    }
}

/// `evhttp_new`: a server on `base` with no sockets and no callbacks.
#[no_mangle]
pub unsafe extern "C" fn evhttp_new(base: *mut CBase) -> *mut evhttp {
    guard(ptr::null_mut(), || {
        if base.is_null() {
            log::warn!("evhttp_new: NULL base");
            return ptr::null_mut();
        }
        let server = Server::new();
        // libevent's defaults: no header or body limit (revent keeps its head limits: see the
        // module docs).
        let h = Box::into_raw(Box::new(evhttp {
            magic: HTTP_MAGIC,
            cbase: base,
            server: server.clone(),
            routes: RefCell::new(Routes::default()),
            bound: Vec::new(),
            vhosts: Vec::new(),
            parent: ptr::null_mut(),
            aliases: Vec::new(),
            pending: RefCell::new(HashSet::new()),
            bevs: Rc::default(),
        }));
        server.set_gencb(handler(h, h));
        h
    })
}

/// `evhttp_start` (http_compat.h): a server on the current base (`event_init`'s) bound to
/// `address`:`port`; NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn evhttp_start(address: *const c_char, port: u16) -> *mut evhttp {
    guard(ptr::null_mut(), || {
        // SAFETY: forwarded with the caller's contract.
        unsafe {
            let h = evhttp_new(crate::base::current());
            if h.is_null() {
                return h;
            }
            if evhttp_bind_socket(h, address, port) != 0 {
                evhttp_free(h);
                return ptr::null_mut();
            }
            h
        }
    })
}

/// `evhttp_free`: closes the server's sockets and connections and frees it, its virtual hosts
/// and its requests not answered yet.
#[no_mangle]
pub unsafe extern "C" fn evhttp_free(http: *mut evhttp) {
    guard((), || {
        let Some(h) = checked_http(http, "evhttp_free") else {
            return;
        };
        // SAFETY: a live server, freed once (the contract); its parts are freed by their owners.
        unsafe {
            for b in std::mem::take(&mut (*h).bound) {
                evconnlistener_free((*b).listener);
                drop(Box::from_raw(b));
            }
            let server = (*h).server.clone();
            with_base((*h).cbase, |b| server.free(b));
            let pending: Vec<usize> = (*h).pending.borrow().iter().copied().collect();
            for r in pending {
                free_request(r as *mut evhttp_request);
            }
            for (_, v) in std::mem::take(&mut (*h).vhosts) {
                (*v).parent = ptr::null_mut();
                evhttp_free(v);
            }
            if !(*h).parent.is_null() {
                let p = (*h).parent;
                (*p).vhosts.retain(|(_, v)| *v != h);
                rebuild_vhosts(p);
            }
            // The handlers hold `h`: drop them with the routes before the record goes.
            server.set_gencb(|_, _| {});
            (*h).magic = 0;
            drop(Box::from_raw(h));
        }
    })
}

/// Accepts connections for `http` from its listeners.
unsafe extern "C" fn on_accept(
    _lev: *mut evconnlistener,
    fd: evutil_socket_t,
    sa: *mut sockaddr,
    salen: c_int,
    arg: *mut c_void,
) {
    let http = arg.cast::<evhttp>();
    // SAFETY: the listener is the server's (freed with it); the fd is the program's to take.
    unsafe {
        let owned = OwnedFd::from_raw_fd(fd);
        let peer = match crate::dns::from_sockaddr(sa, salen as libc::socklen_t) {
            Some(a) => PeerAddr::Inet(a),
            None => PeerAddr::Other(if sa.is_null() {
                0
            } else {
                c_int::from((*sa).sa_family)
            }),
        };
        // Replies go out whole: Nagle would hold their ends for the peer's ACK (as revent-http's
        // own listeners do).
        let one: c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const c_int).cast(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        );
        let server = (*http).server.clone();
        let r = with_base((*http).cbase, |b| server.add_connection(b, owned, peer));
        if let Some(Err(e)) = r {
            log::warn!("evhttp: accepting a connection: {e}");
        }
    }
}

/// Adds listener `lev` (made for the server) to `http`.
///
/// # Safety
/// `http` is a live server, `lev` a live listener.
unsafe fn add_listener(http: *mut evhttp, lev: *mut evconnlistener) -> *mut evhttp_bound_socket {
    // SAFETY: the caller's contract.
    unsafe {
        evconnlistener_set_cb(lev, Some(on_accept), http.cast());
        let b = Box::into_raw(Box::new(evhttp_bound_socket { listener: lev }));
        (*http).bound.push(b);
        b
    }
}

const LEV_OPT_CLOSE_ON_FREE: c_uint = 1 << 1;
const LEV_OPT_CLOSE_ON_EXEC: c_uint = 1 << 2;
const LEV_OPT_REUSEABLE: c_uint = 1 << 3;

/// `evhttp_bind_socket_with_handle`: listens on `address`:`port` (a numeric address or a name
/// the system resolves; port 0 picks one); NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn evhttp_bind_socket_with_handle(
    http: *mut evhttp,
    address: *const c_char,
    port: u16,
) -> *mut evhttp_bound_socket {
    guard(ptr::null_mut(), || {
        let Some(h) = checked_http(http, "evhttp_bind_socket") else {
            return ptr::null_mut();
        };
        // SAFETY: NULL or a C string.
        let host = unsafe { c_text(address) }.unwrap_or_else(|| "0.0.0.0".to_string());
        let addr = match (host.as_str(), port).to_socket_addrs() {
            Ok(mut it) => it.next(),
            Err(e) => {
                log::warn!("evhttp_bind_socket: {host}: {e}");
                None
            }
        };
        let Some(addr) = addr else {
            return ptr::null_mut();
        };
        let (sa, len) = crate::dns::to_sockaddr(addr);
        // SAFETY: a live server; the address is a local of its length.
        unsafe {
            let lev = evconnlistener_new_bind(
                (*h).cbase,
                None,
                ptr::null_mut(),
                LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                -1,
                ptr::addr_of!(sa).cast(),
                len as c_int,
            );
            if lev.is_null() {
                return ptr::null_mut();
            }
            add_listener(h, lev)
        }
    })
}

/// `evhttp_bind_socket`: [`evhttp_bind_socket_with_handle`], 0 or -1.
#[no_mangle]
pub unsafe extern "C" fn evhttp_bind_socket(
    http: *mut evhttp,
    address: *const c_char,
    port: u16,
) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    if unsafe { evhttp_bind_socket_with_handle(http, address, port) }.is_null() {
        -1
    } else {
        0
    }
}

/// `evhttp_accept_socket_with_handle`: serves connections on `fd`, a socket already bound and
/// listening; the server closes it when freed.
#[no_mangle]
pub unsafe extern "C" fn evhttp_accept_socket_with_handle(
    http: *mut evhttp,
    fd: evutil_socket_t,
) -> *mut evhttp_bound_socket {
    guard(ptr::null_mut(), || {
        let Some(h) = checked_http(http, "evhttp_accept_socket") else {
            return ptr::null_mut();
        };
        // SAFETY: a live server; the fd is the program's to hand over.
        unsafe {
            let lev = evconnlistener_new(
                (*h).cbase,
                None,
                ptr::null_mut(),
                LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                0,
                fd,
            );
            if lev.is_null() {
                return ptr::null_mut();
            }
            add_listener(h, lev)
        }
    })
}

/// `evhttp_accept_socket`: [`evhttp_accept_socket_with_handle`], 0 or -1.
#[no_mangle]
pub unsafe extern "C" fn evhttp_accept_socket(http: *mut evhttp, fd: evutil_socket_t) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    if unsafe { evhttp_accept_socket_with_handle(http, fd) }.is_null() {
        -1
    } else {
        0
    }
}

/// `evhttp_bind_listener`: serves the connections `listener` accepts (its callback is replaced;
/// the server frees it).
#[no_mangle]
pub unsafe extern "C" fn evhttp_bind_listener(
    http: *mut evhttp,
    listener: *mut evconnlistener,
) -> *mut evhttp_bound_socket {
    guard(ptr::null_mut(), || {
        let Some(h) = checked_http(http, "evhttp_bind_listener") else {
            return ptr::null_mut();
        };
        if listener.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a live server and listener.
        unsafe { add_listener(h, listener) }
    })
}

/// `evhttp_bound_socket_get_listener`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_bound_socket_get_listener(
    bound: *mut evhttp_bound_socket,
) -> *mut evconnlistener {
    guard(ptr::null_mut(), || {
        if bound.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a live bound socket (the contract).
        unsafe { (*bound).listener }
    })
}

/// `evhttp_bound_socket_get_fd`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_bound_socket_get_fd(
    bound: *mut evhttp_bound_socket,
) -> evutil_socket_t {
    guard(-1, || {
        if bound.is_null() {
            return -1;
        }
        // SAFETY: a live bound socket (the contract).
        unsafe { evconnlistener_get_fd((*bound).listener) }
    })
}

/// `evhttp_del_accept_socket`: stops listening on `bound` and closes it (connections it
/// accepted stay).
#[no_mangle]
pub unsafe extern "C" fn evhttp_del_accept_socket(
    http: *mut evhttp,
    bound: *mut evhttp_bound_socket,
) {
    guard((), || {
        let Some(h) = checked_http(http, "evhttp_del_accept_socket") else {
            return;
        };
        // SAFETY: a live server; `bound` one of its sockets (checked) freed once.
        unsafe {
            let before = (*h).bound.len();
            (*h).bound.retain(|b| *b != bound);
            if (*h).bound.len() == before {
                log::warn!("evhttp_del_accept_socket: not a socket of this server");
                return;
            }
            evconnlistener_free((*bound).listener);
            drop(Box::from_raw(bound));
        }
    })
}

/// `evhttp_foreach_bound_socket`: calls `f` with each bound socket, in the order bound.
#[no_mangle]
pub unsafe extern "C" fn evhttp_foreach_bound_socket(
    http: *mut evhttp,
    f: evhttp_bound_socket_foreach_fn,
    arg: *mut c_void,
) {
    guard((), || {
        let (Some(h), Some(f)) = (checked_http(http, "evhttp_foreach_bound_socket"), f) else {
            return;
        };
        // SAFETY: a live server; a copy of the list, so that `f` may not invalidate the walk.
        let bound = unsafe { (*h).bound.clone() };
        for b in bound {
            // SAFETY: C's callback with its own argument.
            unsafe { f(b, arg) };
        }
    })
}

/// `evhttp_set_cb`: calls `cb` for requests whose percent-decoded path is exactly `path`. 0; -1
/// when `path` has a callback already; -2 on bad arguments.
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_cb(
    http: *mut evhttp,
    path: *const c_char,
    cb: evhttp_request_cb,
    arg: *mut c_void,
) -> c_int {
    guard(-2, || {
        let (Some(h), Some(f)) = (checked_http(http, "evhttp_set_cb"), cb) else {
            return -2;
        };
        if path.is_null() {
            return -2;
        }
        // SAFETY: a C string; a live server.
        unsafe {
            let p = CStr::from_ptr(path).to_bytes().to_vec();
            let mut routes = (*h).routes.borrow_mut();
            if routes.exact.iter().any(|(q, _)| *q == p) {
                return -1;
            }
            routes.exact.push((p, Cb { f, arg }));
        }
        0
    })
}

/// `evhttp_del_cb`: 0, or -1 when `path` has no callback.
#[no_mangle]
pub unsafe extern "C" fn evhttp_del_cb(http: *mut evhttp, path: *const c_char) -> c_int {
    guard(-1, || {
        let Some(h) = checked_http(http, "evhttp_del_cb") else {
            return -1;
        };
        if path.is_null() {
            return -1;
        }
        // SAFETY: a C string; a live server.
        unsafe {
            let p = CStr::from_ptr(path).to_bytes();
            let mut routes = (*h).routes.borrow_mut();
            let before = routes.exact.len();
            routes.exact.retain(|(q, _)| q != p);
            if routes.exact.len() == before {
                -1
            } else {
                0
            }
        }
    })
}

/// `evhttp_set_gencb`: the callback for requests no path callback takes (NULL: 404 for them).
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_gencb(
    http: *mut evhttp,
    cb: evhttp_request_cb,
    arg: *mut c_void,
) {
    guard((), || {
        if let Some(h) = checked_http(http, "evhttp_set_gencb") {
            // SAFETY: a live server.
            unsafe { (*h).routes.borrow_mut().general = cb.map(|f| Cb { f, arg }) };
        }
    })
}

/// `evhttp_set_allowed_methods`: the `EVHTTP_REQ_*` methods served; others get 501.
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_allowed_methods(http: *mut evhttp, methods: u16) {
    guard((), || {
        if let Some(h) = checked_http(http, "evhttp_set_allowed_methods") {
            let list: Vec<Method> = (0..9u16)
                .filter(|i| methods & (1 << i) != 0)
                .filter_map(|i| method_of(1 << c_int::from(i)))
                .collect();
            // SAFETY: a live server.
            unsafe { (*h).server.set_allowed_methods(list) };
        }
    })
}

/// `evhttp_set_max_headers_size`: the largest request head, in bytes (negative: no limit).
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_max_headers_size(http: *mut evhttp, max: ssize_t) {
    guard((), || {
        if let Some(h) = checked_http(http, "evhttp_set_max_headers_size") {
            // SAFETY: a live server.
            let server = unsafe { &(*h).server };
            let limits = Limits {
                max_head_bytes: usize::try_from(max).unwrap_or(usize::MAX),
                ..server.limits()
            };
            server.set_limits(limits);
        }
    })
}

/// `evhttp_set_max_body_size`: the largest request body, in bytes (negative: no limit).
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_max_body_size(http: *mut evhttp, max: ssize_t) {
    guard((), || {
        if let Some(h) = checked_http(http, "evhttp_set_max_body_size") {
            // SAFETY: a live server.
            let server = unsafe { &(*h).server };
            let limits = Limits {
                max_body: u64::try_from(max).unwrap_or(u64::MAX),
                ..server.limits()
            };
            server.set_limits(limits);
        }
    })
}

fn set_timeouts(http: *mut evhttp, what: &str, d: Option<Duration>) {
    if let Some(h) = checked_http(http, what) {
        let t = match d {
            Some(d) => Timeouts {
                headers: d,
                body: d,
                idle: d,
                write: d,
            },
            None => Timeouts::default(),
        };
        // SAFETY: a live server.
        unsafe { (*h).server.set_timeouts(t) };
    }
}

/// `evhttp_set_timeout`: how long a connection may wait for a request's head or body, idle, or
/// on a client not reading its reply, in seconds (each of revent-http's timeouts).
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_timeout(http: *mut evhttp, secs: c_int) {
    guard((), || {
        let d = (secs > 0).then(|| Duration::from_secs(secs as u64));
        set_timeouts(http, "evhttp_set_timeout", d)
    })
}

/// `evhttp_set_timeout_tv`: [`evhttp_set_timeout`] with a timeval (NULL: the defaults).
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_timeout_tv(http: *mut evhttp, tv: *const timeval) {
    guard((), || {
        // SAFETY: NULL or a readable timeval.
        let d = unsafe { crate::base::opt_duration(tv) }.filter(|d| !d.is_zero());
        set_timeouts(http, "evhttp_set_timeout_tv", d)
    })
}

/// `evhttp_set_default_content_type`: the `Content-Type` of replies that set none (NULL: none).
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_default_content_type(
    http: *mut evhttp,
    content_type: *const c_char,
) {
    guard((), || {
        if let Some(h) = checked_http(http, "evhttp_set_default_content_type") {
            // SAFETY: NULL or a C string; a live server.
            unsafe {
                let ct = c_text(content_type);
                (*h).server.set_default_content_type(ct.as_deref());
            }
        }
    })
}

/// `evhttp_set_flags`: `EVHTTP_SERVER_LINGERING_CLOSE` is accepted (revent-http always reads
/// the rest of a refused request before closing); 0, or -1 for an unknown flag.
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_flags(http: *mut evhttp, flags: c_int) -> c_int {
    guard(-1, || {
        if checked_http(http, "evhttp_set_flags").is_none()
            || flags & !EVHTTP_SERVER_LINGERING_CLOSE != 0
        {
            return -1;
        }
        0
    })
}

/// Hands the virtual hosts of `parent` to revent-http again (after one was added, removed or
/// given an alias): each a host whose general handler looks up the C host's routes.
///
/// # Safety
/// `parent` is a live server whose virtual hosts are live.
unsafe fn rebuild_vhosts(parent: *mut evhttp) {
    // SAFETY: the caller's contract.
    unsafe {
        let server = &(*parent).server;
        for (pattern, _) in &(*parent).vhosts {
            while server.remove_virtual_host(pattern) {}
        }
        for (pattern, v) in &(*parent).vhosts {
            let mut host = VirtualHost::new();
            host.set_gencb(handler(parent, *v));
            for a in &(*(*v)).aliases {
                host.add_alias(a);
            }
            server.add_virtual_host(pattern, host);
        }
    }
}

/// `evhttp_add_virtual_host`: requests whose Host matches `pattern` (`*` and `?` wildcards) are
/// served by `vhost`'s callbacks. 0; -1 when `vhost` has sockets or is a virtual host already.
#[no_mangle]
pub unsafe extern "C" fn evhttp_add_virtual_host(
    http: *mut evhttp,
    pattern: *const c_char,
    vhost: *mut evhttp,
) -> c_int {
    guard(-1, || {
        let (Some(h), Some(v)) = (
            checked_http(http, "evhttp_add_virtual_host"),
            checked_http(vhost, "evhttp_add_virtual_host"),
        ) else {
            return -1;
        };
        // SAFETY: C strings; live servers.
        unsafe {
            let Some(p) = c_text(pattern) else {
                return -1;
            };
            if h == v || !(*v).parent.is_null() || !(*v).bound.is_empty() {
                return -1;
            }
            (*v).parent = h;
            (*h).vhosts.push((p, v));
            rebuild_vhosts(h);
        }
        0
    })
}

/// `evhttp_remove_virtual_host`: takes `vhost` out (the program frees it); 0 or -1.
#[no_mangle]
pub unsafe extern "C" fn evhttp_remove_virtual_host(
    http: *mut evhttp,
    vhost: *mut evhttp,
) -> c_int {
    guard(-1, || {
        let (Some(h), Some(v)) = (
            checked_http(http, "evhttp_remove_virtual_host"),
            checked_http(vhost, "evhttp_remove_virtual_host"),
        ) else {
            return -1;
        };
        // SAFETY: live servers.
        unsafe {
            if (*v).parent != h {
                return -1;
            }
            for (pattern, _) in &(*h).vhosts {
                while (*h).server.remove_virtual_host(pattern) {}
            }
            (*h).vhosts.retain(|(_, x)| *x != v);
            (*v).parent = ptr::null_mut();
            rebuild_vhosts(h);
        }
        0
    })
}

/// `evhttp_add_server_alias`: `http` also answers for the host name `alias` (ahead of virtual
/// host patterns). 0 or -1.
#[no_mangle]
pub unsafe extern "C" fn evhttp_add_server_alias(http: *mut evhttp, alias: *const c_char) -> c_int {
    guard(-1, || {
        let Some(h) = checked_http(http, "evhttp_add_server_alias") else {
            return -1;
        };
        // SAFETY: a C string; a live server.
        unsafe {
            let Some(a) = c_text(alias) else {
                return -1;
            };
            (*h).aliases.push(a.clone());
            (*h).server.add_alias(&a);
            if !(*h).parent.is_null() {
                rebuild_vhosts((*h).parent);
            }
        }
        0
    })
}

/// `evhttp_remove_server_alias`: 0, or -1 when `alias` is not one.
#[no_mangle]
pub unsafe extern "C" fn evhttp_remove_server_alias(
    http: *mut evhttp,
    alias: *const c_char,
) -> c_int {
    guard(-1, || {
        let Some(h) = checked_http(http, "evhttp_remove_server_alias") else {
            return -1;
        };
        // SAFETY: a C string; a live server.
        unsafe {
            let Some(a) = c_text(alias) else {
                return -1;
            };
            let before = (*h).aliases.len();
            (*h).aliases.retain(|x| !x.eq_ignore_ascii_case(&a));
            if (*h).aliases.len() == before {
                return -1;
            }
            (*h).server.remove_alias(&a);
            if !(*h).parent.is_null() {
                rebuild_vhosts((*h).parent);
            }
        }
        0
    })
}

// ---- replies ----

/// `evhttp_send_reply`: sends the reply whole: status `code`, `reason` (NULL: the standard
/// phrase), the output headers, and the output buffer with `databuf`'s bytes (moved) as the body.
/// The request is freed once sent.
#[no_mangle]
pub unsafe extern "C" fn evhttp_send_reply(
    req: *mut evhttp_request,
    code: c_int,
    reason: *const c_char,
    databuf: *mut evbuffer,
) {
    guard((), || {
        let Some(r) = checked_req(req, "evhttp_send_reply") else {
            return;
        };
        let Some(code) = code_u16(code, "evhttp_send_reply") else {
            return;
        };
        // SAFETY: a live request; live buffers (the contract).
        unsafe {
            if !databuf.is_null() {
                evbuffer_add_buffer((*r).output_buffer, databuf);
            }
            let mut body = take_buffer((*r).output_buffer, "evhttp_send_reply");
            let (headers, reason) = prepare_reply(r, code.into(), reason);
            let hook = complete_hook(r);
            on_request(r, "evhttp_send_reply", |b, q| {
                *q.output_headers_mut() = headers;
                q.send_reply_buffer(b, code, &reason, &mut body)?;
                arm(b, q, hook)
            });
            reply_done(r);
        }
    })
}

/// `evhttp_send_error`: an error reply (a small HTML page naming the status, and
/// `Connection: close`); the connection closes after it. As in libevent, output headers set
/// before it are dropped.
#[no_mangle]
pub unsafe extern "C" fn evhttp_send_error(
    req: *mut evhttp_request,
    error: c_int,
    reason: *const c_char,
) {
    guard((), || {
        let Some(r) = checked_req(req, "evhttp_send_error") else {
            return;
        };
        let Some(code) = code_u16(error, "evhttp_send_error") else {
            return;
        };
        // SAFETY: a live request, whose output list is this library's.
        unsafe {
            http_util::clear((*r).output_headers);
            let (headers, reason) = prepare_reply(r, error, reason);
            let hook = complete_hook(r);
            on_request(r, "evhttp_send_error", |b, q| {
                *q.output_headers_mut() = headers;
                q.send_error(b, code, Some(reason.as_str()))?;
                arm(b, q, hook)
            });
            reply_done(r);
        }
    })
}

/// `evhttp_send_reply_start`: sends the status line and headers of a reply whose body follows
/// in pieces (chunked to an HTTP/1.1 client that did not get a `Content-Length`).
#[no_mangle]
pub unsafe extern "C" fn evhttp_send_reply_start(
    req: *mut evhttp_request,
    code: c_int,
    reason: *const c_char,
) {
    guard((), || {
        let Some(r) = checked_req(req, "evhttp_send_reply_start") else {
            return;
        };
        let Some(code) = code_u16(code, "evhttp_send_reply_start") else {
            return;
        };
        // SAFETY: a live request.
        unsafe {
            let (headers, reason) = prepare_reply(r, code.into(), reason);
            let started = on_request(r, "evhttp_send_reply_start", |b, q| {
                *q.output_headers_mut() = headers;
                q.reply_start(b, code, &reason)
            });
            if started.is_some() {
                // http_struct.h's `chunked` bit (revent-http decides the framing; the bit says a
                // streamed reply began).
                (*r).bits |= 1;
            }
        }
    })
}

/// `evhttp_send_reply_chunk`: sends `databuf`'s bytes (moved) as the next piece of the body.
#[no_mangle]
pub unsafe extern "C" fn evhttp_send_reply_chunk(req: *mut evhttp_request, databuf: *mut evbuffer) {
    guard((), || {
        let Some(r) = checked_req(req, "evhttp_send_reply_chunk") else {
            return;
        };
        // SAFETY: a live request and buffer.
        unsafe {
            let mut data = take_buffer(databuf, "evhttp_send_reply_chunk");
            on_request(r, "evhttp_send_reply_chunk", |b, q| {
                q.reply_chunk_buffer(b, &mut data)
            });
        }
    })
}

/// `evhttp_send_reply_end`: ends the body; the request is freed.
#[no_mangle]
pub unsafe extern "C" fn evhttp_send_reply_end(req: *mut evhttp_request) {
    guard((), || {
        let Some(r) = checked_req(req, "evhttp_send_reply_end") else {
            return;
        };
        // SAFETY: a live request.
        unsafe {
            let hook = complete_hook(r);
            on_request(r, "evhttp_send_reply_end", |b, q| {
                q.reply_end(b)?;
                arm(b, q, hook)
            });
            reply_done(r);
        }
    })
}

/// `evhttp_send_reply_chunk_with_cb`: [`evhttp_send_reply_chunk`], then `cb(evcon, arg)` from
/// the loop once the reply so far has been written to the socket (not if the connection closes
/// first).
#[no_mangle]
pub unsafe extern "C" fn evhttp_send_reply_chunk_with_cb(
    req: *mut evhttp_request,
    databuf: *mut evbuffer,
    cb: evhttp_connection_cb,
    arg: *mut c_void,
) {
    guard((), || {
        let what = "evhttp_send_reply_chunk_with_cb";
        let Some(r) = checked_req(req, what) else {
            return;
        };
        // SAFETY: a live request and buffer; the connection record stays allocated while the
        // hold in the callback exists.
        unsafe {
            let mut data = take_buffer(databuf, what);
            let cbase = (*r).evcon.as_ref().map_or(ptr::null_mut(), |c| c.cbase);
            let hold = (!(*r).evcon.is_null()).then(|| EvconHold::new((*r).evcon));
            on_request(r, what, |b, q| {
                q.reply_chunk_buffer(b, &mut data)?;
                if let (Some(cb), Some(hold)) = (cb, hold) {
                    q.on_flushed(b, move |b| call_out(cbase, b, || cb(hold.get(), arg)))?;
                }
                Ok(())
            });
        }
    })
}

/// A server request's `on_complete_cb`, run once its reply went out; then the request is freed.
/// Dropped without running (the connection closed first), it frees the request (or, when the
/// reply is not written after all, lets the usual free happen).
struct CompleteHook {
    r: *mut evhttp_request,
    alive: Rc<Cell<bool>>,
    cbase: *mut CBase,
    ran: bool,
}

impl CompleteHook {
    fn run(mut self, b: &mut EventBase) {
        self.ran = true;
        if !self.alive.get() {
            return;
        }
        let r = self.r;
        // SAFETY: live (the token); the callback gets the request before it is freed, as the
        // header says.
        unsafe {
            if let Side::Server(s) = &mut (*r).side {
                s.awaiting = false;
            }
            if let Some(cb) = (*r).on_complete_cb {
                let arg = (*r).on_complete_cb_arg;
                call_out(self.cbase, b, || cb(r, arg));
            }
            if self.alive.get() {
                free_request(r);
            }
        }
    }
}

impl Drop for CompleteHook {
    fn drop(&mut self) {
        if self.ran || !self.alive.get() {
            return;
        }
        // SAFETY: live (the token).
        unsafe {
            let Side::Server(s) = &mut (*self.r).side else {
                return;
            };
            s.awaiting = false;
            if s.done && !s.in_callback {
                free_request(self.r);
            }
        }
    }
}

/// The completion hook of server request `r`, if it has an `on_complete_cb` (the request then
/// waits for it).
///
/// # Safety
/// `r` is a live request.
unsafe fn complete_hook(r: *mut evhttp_request) -> Option<CompleteHook> {
    // SAFETY: the caller's contract.
    unsafe {
        (*r).on_complete_cb?;
        let Side::Server(s) = &mut (*r).side else {
            return None;
        };
        s.awaiting = true;
        Some(CompleteHook {
            r,
            alive: s.alive.clone(),
            cbase: (*s.http).cbase,
            ran: false,
        })
    }
}

/// Hands the completion hook to revent-http, to run once the reply went out.
fn arm(b: &mut EventBase, q: &mut Request, hook: Option<CompleteHook>) -> revent::Result<()> {
    match hook {
        Some(h) => q.on_flushed(b, move |b| h.run(b)),
        None => Ok(()),
    }
}

/// `evhttp_request_set_on_complete_cb`: on a server request, `cb(req, cb_arg)` runs from the loop
/// once the reply (`evhttp_send_reply`, `_error`, `_reply_end`) has been written, just before the
/// request is freed (not if the connection closes first). libevent 2.1 calls it for server
/// requests only; on a client request it is kept and not called, as there.
#[no_mangle]
pub unsafe extern "C" fn evhttp_request_set_on_complete_cb(
    req: *mut evhttp_request,
    cb: evhttp_request_cb,
    cb_arg: *mut c_void,
) {
    guard((), || {
        if let Some(r) = checked_req(req, "evhttp_request_set_on_complete_cb") {
            // SAFETY: a live request.
            unsafe {
                (*r).on_complete_cb = cb;
                (*r).on_complete_cb_arg = cb_arg;
            }
        }
    })
}

/// `evhttp_set_bevcb`: each connection accepted from now on goes on the bufferevent `cb(base,
/// arg)` returns (made with no socket; the server puts the accepted one on it, and frees both
/// when the connection is done); NULL from `cb` refuses the connection. A NULL `cb` goes back to
/// plain socket bufferevents.
#[no_mangle]
pub unsafe extern "C" fn evhttp_set_bevcb(
    http: *mut evhttp,
    cb: Option<unsafe extern "C" fn(*mut CBase, *mut c_void) -> *mut bufferevent>,
    arg: *mut c_void,
) {
    guard((), || {
        let Some(h) = checked_http(http, "evhttp_set_bevcb") else {
            return;
        };
        // SAFETY: a live server.
        let (cbase, server, bevs) = unsafe { ((*h).cbase, (*h).server.clone(), (*h).bevs.clone()) };
        let Some(cb) = cb else {
            server.clear_bufferevent_cb();
            return;
        };
        let made = bevs.clone();
        server.set_bufferevent_cb(
            move |b: &mut EventBase| {
                // SAFETY: the program's callback with its argument, on the server's base.
                let bev = unsafe { call_out(cbase, b, || cb(cbase, arg)) };
                if bev.is_null() {
                    return None;
                }
                let rh = crate::bufferevent::rust_handle(bev, "evhttp_set_bevcb")?;
                if crate::bufferevent::base_of(bev) != cbase {
                    log::warn!("evhttp_set_bevcb: the bufferevent is on another base");
                    crate::bufferevent::free_on(b, bev);
                    return None;
                }
                made.borrow_mut().insert(rh, bev);
                Some(rh)
            },
            move |b: &mut EventBase, rh: BufferEvent| match bevs.borrow_mut().remove(&rh) {
                Some(bev) => crate::bufferevent::free_on(b, bev),
                None => drop(rh.free(b)),
            },
        );
    })
}

/// `evhttp_connection_get_bufferevent`: the connection's bufferevent. For a client connection,
/// the one given to `evhttp_connection_base_bufferevent_new` or the one made for it (it carries
/// each socket in turn, and has none between them). For a server connection, the one
/// `evhttp_set_bevcb`'s callback made; NULL when the server has none (revent-http serves those on
/// bufferevents of its own, which C cannot use).
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_get_bufferevent(
    evcon: *mut evhttp_connection,
) -> *mut bufferevent {
    guard(ptr::null_mut(), || {
        checked_conn(evcon, "evhttp_connection_get_bufferevent")
            // SAFETY: a live connection.
            .map_or(ptr::null_mut(), |c| unsafe { (*c).bev })
    })
}

/// `evhttp_connection_set_closecb`: `cb(evcon, arg)` runs from the loop when the connection's
/// socket closes: on a client connection, each time a connected socket closes (the server closed
/// it, it failed, timed out, or the program frees the connection while connected); on a server connection
/// (whose record here belongs to one request), when the client goes away or the server closes the
/// connection, while the request or a callback holding the record is around (an EOF from the
/// client while the request waits for its reply counts as the client going away, as in
/// libevent). NULL `cb` stops it.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_closecb(
    evcon: *mut evhttp_connection,
    cb: evhttp_connection_cb,
    arg: *mut c_void,
) {
    guard((), || {
        let what = "evhttp_connection_set_closecb";
        let Some(c) = checked_conn(evcon, what) else {
            return;
        };
        // SAFETY: a live connection; the hold keeps its record allocated for the callback.
        unsafe {
            (*c).closecb = cb;
            (*c).closecb_arg = arg;
            if (*c).closecb_hooked || cb.is_none() {
                return;
            }
            if (*c).client.is_some() {
                (*c).closecb_hooked = crate::http_client::hook_close(c);
                return;
            }
            let r = (*c).req;
            if r.is_null() {
                log::warn!("{what}: the connection's request is gone");
                return;
            }
            let cbase = (*c).cbase;
            let hold = EvconHold::new(c);
            let hooked = on_request(r, what, |_, q| {
                q.on_close(move |b| {
                    let c = hold.get();
                    // SAFETY: the hold keeps the record; the fields are read at close time.
                    if let Some(cb) = (*c).closecb {
                        let arg = (*c).closecb_arg;
                        call_out(cbase, b, || cb(c, arg));
                    }
                })
            });
            (*c).closecb_hooked = hooked.is_some();
        }
    })
}

// ---- the request's accessors ----

macro_rules! getter {
    ($name:ident, $ty:ty, $err:expr, |$r:ident| $body:expr) => {
        #[doc = concat!("`", stringify!($name), "`.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name(req: *const evhttp_request) -> $ty {
            guard($err, || {
                let Some($r) = checked_req(req.cast_mut(), stringify!($name)) else {
                    return $err;
                };
                // SAFETY: a live request; fields read through their raw places.
                unsafe { $body }
            })
        }
    };
}

getter!(evhttp_request_get_command, c_int, 0, |r| (*r).type_);
getter!(evhttp_request_get_uri, *const c_char, ptr::null(), |r| (*r)
    .uri
    .cast_const());
getter!(
    evhttp_request_get_evhttp_uri,
    *const evhttp_uri,
    ptr::null(),
    |r| (*r).uri_elems.cast_const()
);
getter!(evhttp_request_get_response_code, c_int, 0, |r| (*r)
    .response_code);
getter!(
    evhttp_request_get_response_code_line,
    *const c_char,
    ptr::null(),
    |r| (*r).response_code_line.cast_const()
);
getter!(
    evhttp_request_get_input_headers,
    *mut evkeyvalq,
    ptr::null_mut(),
    |r| (*r).input_headers
);
getter!(
    evhttp_request_get_output_headers,
    *mut evkeyvalq,
    ptr::null_mut(),
    |r| (*r).output_headers
);
getter!(
    evhttp_request_get_input_buffer,
    *mut evbuffer,
    ptr::null_mut(),
    |r| (*r).input_buffer
);
getter!(
    evhttp_request_get_output_buffer,
    *mut evbuffer,
    ptr::null_mut(),
    |r| (*r).output_buffer
);
getter!(
    evhttp_request_get_connection,
    *mut evhttp_connection,
    ptr::null_mut(),
    |r| (*r).evcon
);
getter!(evhttp_request_is_owned, c_int, 0, |r| c_int::from(
    (*r).flags & EVHTTP_USER_OWNED != 0
));

/// `evhttp_request_get_host`: the host the request names: the target's host, else the `Host`
/// field without its port; NULL when neither is there.
#[no_mangle]
pub unsafe extern "C" fn evhttp_request_get_host(req: *mut evhttp_request) -> *const c_char {
    guard(ptr::null(), || {
        let Some(r) = checked_req(req, "evhttp_request_get_host") else {
            return ptr::null();
        };
        // SAFETY: a live request; its lists and URI are ours.
        unsafe {
            if !(*r).uri_elems.is_null() {
                let h = http_util::evhttp_uri_get_host((*r).uri_elems);
                if !h.is_null() {
                    return h;
                }
            }
            let host = http_util::evhttp_find_header((*r).input_headers, c"Host".as_ptr());
            if host.is_null() {
                return ptr::null();
            }
            let v = CStr::from_ptr(host).to_bytes();
            let name: &[u8] = if let Some(rest) = v.strip_prefix(b"[") {
                rest.split(|&b| b == b']').next().unwrap_or(rest)
            } else {
                match v.iter().rposition(|&b| b == b':') {
                    Some(i) => &v[..i],
                    None => v,
                }
            };
            let name = name.to_vec();
            set_string(ptr::addr_of_mut!((*r).host_cache), &name);
            (*r).host_cache
        }
    })
}

/// `evhttp_request_own`: the program keeps the request after its callback (a client request is
/// then freed by `evhttp_request_free`, not by the library). A server request is still freed
/// once its reply is complete, as in libevent.
#[no_mangle]
pub unsafe extern "C" fn evhttp_request_own(req: *mut evhttp_request) {
    guard((), || {
        if let Some(r) = checked_req(req, "evhttp_request_own") {
            // SAFETY: a live request.
            unsafe { (*r).flags |= EVHTTP_USER_OWNED };
        }
    })
}
