//! `event2/http.h`'s client: `evhttp_connection_base_new`, `evhttp_make_request` and the client
//! side of `struct evhttp_request`, over revent-http's [`client::Connection`]; and
//! `http_compat.h`'s `evhttp_connection_new`/`evhttp_connection_set_base`.
//!
//! A request made with `evhttp_request_new` is a `struct evhttp_request` of the [`crate::http`]
//! module: the program fills its output headers and buffer; `evhttp_make_request` hands a copy of
//! them to revent-http (which computes `Content-Length` itself: a `Content-Length` or
//! `Transfer-Encoding` the program set is left out, as the body's own length is what is sent) and
//! queues it. When the response is complete, its status, reason, header fields and body are put
//! in the request's `response_code`, `response_code_line`, input headers and input buffer, and
//! the callback runs; the request is then freed, unless the program owns it
//! (`evhttp_request_own`). On failure, the request is freed (unless owned), the error callback
//! runs with libevent's `enum evhttp_request_error`, then the callback with NULL, as libevent; a
//! connect that failed (after the retries) is told as libevent tells it: the callback gets the
//! request itself with no response (code 0), no error callback runs, and the request is freed
//! after (unless owned).
//! With a chunk callback (`evhttp_request_set_chunked_cb`), each piece of the body is put in the
//! input buffer for the call and drained after it.
//!
//! Where this differs from libevent 2.1:
//! - Names are resolved with the system's resolver when the connection is made (as libevent with
//!   no `evdns_base`); a `dnsbase` passed in is not used.
//! - revent-http adds a `Host` field when the program sets none (HTTP/1.1 requires one).
//! - A kept-alive connection the server closed under an idempotent request resends it once
//!   (revent-http's client docs); libevent fails it with `EVREQ_HTTP_EOF`.

use crate::base::{call_out, with_base, CBase};
use crate::buffer::with_buf;
use crate::bufferevent::{self as bevs, bufferevent, bufferevent_free, bufferevent_socket_new};
use crate::guard;
use crate::http::{
    checked_conn, evhttp_connection, evhttp_request, fill_list, free_request, method_of,
    new_request, output_fields, set_string, take_buffer, EVHTTP_USER_OWNED,
};
use libc::{c_char, c_int, c_void, ssize_t, timeval};
use revent::{Evbuffer, EventBase};
use revent_http::client::{self, ClientError, ErrorKind, Outcome, Response};
use revent_http::{Method, ResponseHead};
use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// `BEV_OPT_CLOSE_ON_FREE`.
const BEV_OPT_CLOSE_ON_FREE: c_int = 0x01;
use std::ptr;
use std::time::Duration;

/// The client part of a `struct evhttp_connection`.
pub(crate) struct ClientConn {
    /// The revent-http connection; None until the connection has a base (`evhttp_connection_new`
    /// with no current base, then `evhttp_connection_set_base`).
    conn: Option<client::Connection>,
    /// The address resolved when the connection was made (or its family set).
    addr: SocketAddr,
    /// Requests queued on it, to free with it.
    pending: Vec<*mut evhttp_request>,
    /// `evhttp_connection_free_on_completion`.
    free_on_completion: bool,
    /// The settings made, in order (see [`Setting`]).
    settings: Vec<Setting>,
    /// `evhttp_connection_set_local_address` and `_port`.
    local_ip: Option<IpAddr>,
    local_port: u16,
}

/// The client part of a `struct evhttp_request`.
pub(crate) struct ClientReq {
    handle: Option<client::RequestHandle>,
    evcon: *mut evhttp_connection,
    /// One of its callbacks runs: a free asked for meanwhile waits for it to return.
    in_callback: bool,
    free_after: bool,
    /// The response head was put in the request (by the first piece of a chunked delivery).
    head_set: bool,
}

// `enum evhttp_request_error`.
const EVREQ_HTTP_TIMEOUT: c_int = 0;
const EVREQ_HTTP_EOF: c_int = 1;
const EVREQ_HTTP_INVALID_HEADER: c_int = 2;
const EVREQ_HTTP_BUFFER_ERROR: c_int = 3;
const EVREQ_HTTP_REQUEST_CANCEL: c_int = 4;
const EVREQ_HTTP_DATA_TOO_LONG: c_int = 5;

fn error_code(e: &ClientError) -> c_int {
    match e.kind() {
        ErrorKind::Timeout => EVREQ_HTTP_TIMEOUT,
        ErrorKind::Eof => EVREQ_HTTP_EOF,
        ErrorKind::InvalidHeader => EVREQ_HTTP_INVALID_HEADER,
        ErrorKind::BufferError => EVREQ_HTTP_BUFFER_ERROR,
        ErrorKind::RequestCancel => EVREQ_HTTP_REQUEST_CANCEL,
        ErrorKind::DataTooLong => EVREQ_HTTP_DATA_TOO_LONG,
    }
}

/// The client part of request `r`, if it is a client request.
///
/// # Safety
/// `r` is a live request; the reference is not held across calls that may free it.
unsafe fn creq<'a>(r: *mut evhttp_request) -> Option<&'a mut ClientReq> {
    // SAFETY: the caller's contract.
    unsafe { crate::http::client_part(r) }
}

/// The client part of connection `c`.
///
/// # Safety
/// `c` is a live connection; the reference is not held across calls that may free it.
unsafe fn cconn<'a>(c: *mut evhttp_connection, what: &str) -> Option<&'a mut ClientConn> {
    // SAFETY: the caller's contract.
    let r = unsafe { (*c).client.as_mut() };
    if r.is_none() {
        log::warn!("{what}: not a client connection");
    }
    r
}

/// Frees client request `r` now, or when its running callback returns. `base`: the base, when
/// called from revent's own work on it (where `with_base` cannot reach it).
///
/// # Safety
/// `r` is a live client request.
pub(crate) unsafe fn free_client(r: *mut evhttp_request, base: Option<&mut EventBase>) {
    // SAFETY: the caller's contract.
    unsafe {
        let Some(c) = creq(r) else {
            return;
        };
        if c.in_callback {
            c.free_after = true;
            return;
        }
        // Still queued: it leaves its connection first (no callback for it, as a cancel).
        let (evcon, handle) = (c.evcon, c.handle.take());
        if !evcon.is_null() {
            if let Some(cc) = (*evcon).client.as_mut() {
                cc.pending.retain(|p| *p != r);
            }
            if let Some(h) = handle {
                match base {
                    Some(b) => {
                        let _ = h.cancel(b);
                    }
                    None => {
                        let _ = with_base((*evcon).cbase, |b| h.cancel(b));
                    }
                }
            }
        }
        free_request(r);
    }
}

/// Frees `r` unless the program owns it (libevent's `evhttp_request_free_auto`).
///
/// # Safety
/// `r` is a live client request.
unsafe fn free_auto(r: *mut evhttp_request) {
    // SAFETY: the caller's contract.
    unsafe {
        if (*r).flags & EVHTTP_USER_OWNED == 0 {
            free_client(r, None);
        }
    }
}

/// `evhttp_request_new`: a client request whose completion calls `cb` with `arg`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_request_new(
    cb: crate::http::evhttp_request_cb,
    arg: *mut c_void,
) -> *mut evhttp_request {
    guard(ptr::null_mut(), || {
        let r = new_request(Some(ClientReq {
            handle: None,
            evcon: ptr::null_mut(),
            in_callback: false,
            free_after: false,
            head_set: false,
        }));
        // SAFETY: fresh.
        unsafe {
            (*r).cb = cb;
            (*r).cb_arg = arg;
        }
        r
    })
}

/// `evhttp_request_set_chunked_cb`: the body is delivered piece by piece, each in the input
/// buffer during a call of `cb` (then drained); the completion callback gets an empty body.
#[no_mangle]
pub unsafe extern "C" fn evhttp_request_set_chunked_cb(
    req: *mut evhttp_request,
    cb: crate::http::evhttp_request_cb,
) {
    guard((), || {
        if let Some(r) = crate::http::checked_req(req, "evhttp_request_set_chunked_cb") {
            // SAFETY: a live request.
            unsafe { (*r).chunk_cb = cb };
        }
    })
}

/// `evhttp_request_set_error_cb`: called with the `enum evhttp_request_error` when the request
/// fails, before the callback gets NULL.
#[no_mangle]
pub unsafe extern "C" fn evhttp_request_set_error_cb(
    req: *mut evhttp_request,
    cb: crate::http::evhttp_request_error_cb,
) {
    guard((), || {
        if let Some(r) = crate::http::checked_req(req, "evhttp_request_set_error_cb") {
            // SAFETY: a live request.
            unsafe { (*r).error_cb = cb };
        }
    })
}

/// A socket bufferevent with no socket on `cbase`, for a connection to carry its sockets on.
fn new_bev(cbase: *mut CBase) -> *mut bufferevent {
    // SAFETY: a live base; no fd.
    unsafe { bufferevent_socket_new(cbase, -1, BEV_OPT_CLOSE_ON_FREE) }
}

/// A revent-http connection to `addr` on `base` whose sockets go on the C bufferevent `bev`.
fn rust_conn(
    b: &mut EventBase,
    addr: SocketAddr,
    bev: *mut bufferevent,
) -> Result<client::Connection, ClientError> {
    let Some(rh) = bevs::rust_handle(bev, "evhttp_connection") else {
        return Err(ClientError::InvalidRequest(
            "not a live bufferevent with a base",
        ));
    };
    client::Connection::with_bufferevent(b, addr, rh)
}

/// A client connection record for `addr` on `cbase`, carrying its sockets on `bev` (one is made
/// when NULL).
fn make_conn(
    cbase: *mut CBase,
    address: &[u8],
    port: u16,
    bev: *mut bufferevent,
) -> *mut evhttp_connection {
    let what = "evhttp_connection_base_new";
    let Some(addr) = resolve(address, port, libc::AF_UNSPEC, what) else {
        return ptr::null_mut();
    };
    let (conn, bev) = if cbase.is_null() {
        (None, bev)
    } else {
        let given = !bev.is_null();
        let bev = if given { bev } else { new_bev(cbase) };
        if bev.is_null() || bevs::base_of(bev) != cbase {
            log::warn!("{what}: the bufferevent is not one of this base's");
            if !given {
                // SAFETY: made just above.
                unsafe { bufferevent_free(bev) };
            }
            return ptr::null_mut();
        }
        // SAFETY: a live base (the caller's contract).
        match unsafe { with_base(cbase, |b| rust_conn(b, addr, bev)) } {
            Some(Ok(conn)) => (Some(conn), bev),
            other => {
                if let Some(Err(e)) = other {
                    log::warn!("{what}: {e}");
                }
                if !given {
                    // SAFETY: made just above.
                    unsafe { bufferevent_free(bev) };
                }
                return ptr::null_mut();
            }
        }
    };
    let mut c = evhttp_connection::new(cbase, ptr::null_mut(), Some(addr), address, port);
    c.bev = bev;
    c.client = Some(ClientConn {
        conn,
        addr,
        pending: Vec::new(),
        free_on_completion: false,
        settings: Vec::new(),
        local_ip: None,
        local_port: 0,
    });
    let c = Box::into_raw(Box::new(c));
    crate::http::register_conn(c);
    c
}

/// `evhttp_connection_base_new`: a connection to `address` (numeric, or a name the system
/// resolves now) and `port`; the socket is made with the first request. `dnsbase` is not used. A
/// NULL `base` is given one later with `evhttp_connection_set_base`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_base_new(
    base: *mut CBase,
    _dnsbase: *mut c_void,
    address: *const c_char,
    port: u16,
) -> *mut evhttp_connection {
    guard(ptr::null_mut(), || {
        if address.is_null() {
            log::warn!("evhttp_connection_base_new: NULL address");
            return ptr::null_mut();
        }
        // SAFETY: a C string.
        let a = unsafe { CStr::from_ptr(address) }.to_bytes();
        make_conn(base, a, port, ptr::null_mut())
    })
}

/// `evhttp_connection_base_bufferevent_new`: [`evhttp_connection_base_new`] whose sockets go on
/// `bev` (a bufferevent of `base` with no socket: a filter, or one with options of its own;
/// NULL: one is made). The connection sets its callbacks, puts each socket on it in turn, and
/// frees it with itself.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_base_bufferevent_new(
    base: *mut CBase,
    _dnsbase: *mut c_void,
    bev: *mut bufferevent,
    address: *const c_char,
    port: u16,
) -> *mut evhttp_connection {
    guard(ptr::null_mut(), || {
        if address.is_null() || base.is_null() {
            log::warn!("evhttp_connection_base_bufferevent_new: NULL base or address");
            return ptr::null_mut();
        }
        // SAFETY: a C string.
        let a = unsafe { CStr::from_ptr(address) }.to_bytes();
        make_conn(base, a, port, bev)
    })
}

/// Registers the connection's close callback with revent-http (the callback and argument are read
/// from the record when a socket closes). True when done.
///
/// # Safety
/// `c` is a live client connection.
pub(crate) unsafe fn hook_close(c: *mut evhttp_connection) -> bool {
    setting(c, "evhttp_connection_set_closecb", move |b, conn| {
        conn.set_close_cb(
            b,
            Some(Box::new(move |b: &mut EventBase| {
                if !crate::http::conn_is_live(c) {
                    return;
                }
                // SAFETY: live (checked); the program's callback with its argument, on the
                // connection's base.
                unsafe {
                    if let Some(cb) = (*c).closecb {
                        let arg = (*c).closecb_arg;
                        call_out((*c).cbase, b, || cb(c, arg));
                    }
                }
            })),
        )
    });
    true
}

/// Applies the local address and port set so far.
fn apply_local(evcon: *mut evhttp_connection, what: &str) {
    let Some(c) = checked_conn(evcon, what) else {
        return;
    };
    // SAFETY: a live connection.
    let Some(cc) = (unsafe { cconn(c, what) }) else {
        return;
    };
    let ip = cc.local_ip.unwrap_or(match cc.addr {
        SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    });
    let local = SocketAddr::new(ip, cc.local_port);
    setting(evcon, what, move |b, conn| {
        conn.set_local_addr(b, Some(local))
    });
}

/// `evhttp_connection_set_local_address`: the numeric address the connection's sockets are bound
/// to before they connect (the server sees it as the peer's).
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_local_address(
    evcon: *mut evhttp_connection,
    address: *const c_char,
) {
    guard((), || {
        let what = "evhttp_connection_set_local_address";
        let Some(c) = checked_conn(evcon, what) else {
            return;
        };
        if address.is_null() {
            log::warn!("{what}: NULL address");
            return;
        }
        // SAFETY: a C string; a live connection.
        unsafe {
            let text = CStr::from_ptr(address).to_string_lossy();
            let Ok(ip) = text.parse::<IpAddr>() else {
                log::warn!("{what}: {text}: not a numeric address");
                return;
            };
            let Some(cc) = cconn(c, what) else {
                return;
            };
            cc.local_ip = Some(ip);
        }
        apply_local(evcon, what);
    })
}

/// `evhttp_connection_set_local_port`: the local port the connection's sockets are bound to
/// before they connect.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_local_port(
    evcon: *mut evhttp_connection,
    port: u16,
) {
    guard((), || {
        let what = "evhttp_connection_set_local_port";
        let Some(c) = checked_conn(evcon, what) else {
            return;
        };
        // SAFETY: a live connection.
        let Some(cc) = (unsafe { cconn(c, what) }) else {
            return;
        };
        cc.local_port = port;
        apply_local(evcon, what);
    })
}

/// `evhttp_request_set_header_cb`: `cb(req, arg)` runs once the response head is in (status,
/// reason, input headers filled), before any of the body; a negative return refuses the
/// response: the socket closes and the request fails with `EVREQ_HTTP_EOF`, as in libevent.
#[no_mangle]
pub unsafe extern "C" fn evhttp_request_set_header_cb(
    req: *mut evhttp_request,
    cb: crate::http::evhttp_header_cb,
) {
    guard((), || {
        if let Some(r) = crate::http::checked_req(req, "evhttp_request_set_header_cb") {
            // SAFETY: a live request.
            unsafe { (*r).header_cb = cb };
        }
    })
}

/// `evhttp_connection_new` (http_compat.h): a connection on the current base (`event_init`'s),
/// or with no base until `evhttp_connection_set_base` when there is none.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_new(
    address: *const c_char,
    port: u16,
) -> *mut evhttp_connection {
    // SAFETY: forwarded with the caller's contract.
    unsafe { evhttp_connection_base_new(crate::base::current(), ptr::null_mut(), address, port) }
}

/// `evhttp_connection_set_base` (http_compat.h): moves an idle connection (no request queued) to
/// `base`, with the settings made so far. (libevent 2.1 allows it only for a connection from
/// `evhttp_connection_new`, and asserts otherwise.)
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_base(
    evcon: *mut evhttp_connection,
    base: *mut CBase,
) {
    guard((), || {
        let Some(c) = checked_conn(evcon, "evhttp_connection_set_base") else {
            return;
        };
        // SAFETY: a live connection and base.
        unsafe {
            if base.is_null() || (*c).cbase == base {
                return;
            }
            let what = "evhttp_connection_set_base";
            let Some(addr) = cconn(c, what).map(|cc| cc.addr) else {
                return;
            };
            remake(c, base, addr, what);
        }
    })
}

/// `evhttp_connection_free`: closes the connection; queued requests are freed (those the program
/// owns excepted) without their callbacks.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_free(evcon: *mut evhttp_connection) {
    guard((), || {
        // SAFETY: forwarded with the caller's contract.
        unsafe { free_conn_with(evcon, None) }
    })
}

/// [`evhttp_connection_free`], with the base when called from revent's own work on it.
///
/// # Safety
/// `evcon` is NULL or a live connection, freed once.
unsafe fn free_conn_with(evcon: *mut evhttp_connection, mut base: Option<&mut EventBase>) {
    {
        let Some(c) = checked_conn(evcon, "evhttp_connection_free") else {
            return;
        };
        // SAFETY: a live connection, freed once; its requests are live.
        unsafe {
            if !(*c).server.is_null() {
                log::warn!("evhttp_connection_free: a server request's connection is the server's");
                return;
            }
            // As libevent: a connected socket that goes with the connection is told to the close
            // callback first.
            if let (Some(cb), Some(conn)) =
                ((*c).closecb, (*c).client.as_ref().and_then(|x| x.conn))
            {
                let (arg, cbase) = ((*c).closecb_arg, (*c).cbase);
                match base.as_deref_mut() {
                    Some(b) => {
                        if conn.is_connected(b).unwrap_or(false) {
                            call_out(cbase, b, || cb(c, arg));
                        }
                    }
                    None => {
                        if matches!(with_base(cbase, |b| conn.is_connected(b)), Some(Ok(true))) {
                            cb(c, arg);
                        }
                    }
                }
                if !crate::http::conn_is_live(c) {
                    return;
                }
            }
            let Some(cc) = (*c).client.take() else {
                return;
            };
            let bev = std::mem::replace(&mut (*c).bev, ptr::null_mut());
            match (base, cc.conn) {
                (Some(b), Some(conn)) => {
                    let _ = conn.free(b);
                    if !bev.is_null() {
                        bevs::free_on(b, bev);
                    }
                }
                (None, Some(conn)) => {
                    let _ = with_base((*c).cbase, |b| conn.free(b));
                    bufferevent_free(bev);
                }
                (_, None) => bufferevent_free(bev),
            }
            for r in cc.pending {
                if let Some(q) = creq(r) {
                    q.handle = None;
                    q.evcon = ptr::null_mut();
                }
                free_auto(r);
            }
            crate::http::free_conn(c);
        }
    }
}

/// `evhttp_connection_free_on_completion`: the connection frees itself once no request is left
/// on it after a request completes.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_free_on_completion(evcon: *mut evhttp_connection) {
    guard((), || {
        if let Some(c) = checked_conn(evcon, "evhttp_connection_free_on_completion") {
            // SAFETY: a live connection.
            if let Some(cc) = unsafe { cconn(c, "evhttp_connection_free_on_completion") } {
                cc.free_on_completion = true;
            }
        }
    })
}

/// A setting of a connection, kept to be applied again when the revent-http connection is made
/// anew (`evhttp_connection_set_base`, `evhttp_connection_set_family`).
type Setting = Box<dyn Fn(&mut EventBase, client::Connection) -> Result<(), ClientError>>;

/// Applies setting `f` to the connection and keeps it.
fn setting(
    evcon: *mut evhttp_connection,
    what: &str,
    f: impl Fn(&mut EventBase, client::Connection) -> Result<(), ClientError> + 'static,
) {
    let Some(c) = checked_conn(evcon, what) else {
        return;
    };
    // SAFETY: a live connection.
    let pending_base = unsafe { cconn(c, what) }.is_some_and(|cc| cc.conn.is_none());
    // Without a base yet, the setting waits for evhttp_connection_set_base.
    if pending_base || with_conn(evcon, what, &f).is_some() {
        // SAFETY: live (checked above).
        if let Some(cc) = unsafe { (*c).client.as_mut() } {
            cc.settings.push(Box::new(f));
        }
    }
}

/// Makes the revent-http connection of `c` anew, for `addr` on `base`, with the settings made so
/// far; false (nothing changed) when requests are queued or it cannot be made.
///
/// # Safety
/// `c` is a live client connection; `base` a live base.
unsafe fn remake(
    c: *mut evhttp_connection,
    base: *mut CBase,
    addr: SocketAddr,
    what: &str,
) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        let Some(cc) = cconn(c, what) else {
            return false;
        };
        if !cc.pending.is_empty() {
            log::warn!("{what}: requests are queued on the connection; nothing changed");
            return false;
        }
        let settings = std::mem::take(&mut cc.settings);
        // A bufferevent belongs to one base: another base gets a new one.
        let old_bev = (*c).bev;
        let bev = if old_bev.is_null() || bevs::base_of(old_bev) != base {
            new_bev(base)
        } else {
            old_bev
        };
        let made = with_base(base, |b| {
            let conn = rust_conn(b, addr, bev)?;
            for s in &settings {
                s(b, conn)?;
            }
            Ok::<_, ClientError>(conn)
        });
        let Some(cc) = cconn(c, what) else {
            return false;
        };
        cc.settings = settings;
        let new = match made {
            Some(Ok(n)) => n,
            other => {
                if let Some(Err(e)) = other {
                    log::warn!("{what}: {e}");
                }
                if bev != old_bev {
                    bufferevent_free(bev);
                }
                return false;
            }
        };
        cc.addr = addr;
        if let Some(old) = cc.conn.replace(new) {
            let _ = with_base((*c).cbase, |b| old.free(b));
        }
        if bev != old_bev {
            if !old_bev.is_null() {
                bufferevent_free(old_bev);
            }
            (*c).bev = bev;
        }
        (*c).cbase = base;
        let (sa, salen) = crate::dns::to_sockaddr(addr);
        (*c).sa = sa;
        (*c).salen = salen;
        true
    }
}

/// The first address `address`:`port` resolves to in `family` (`AF_UNSPEC`: any).
fn resolve(address: &[u8], port: u16, family: c_int, what: &str) -> Option<SocketAddr> {
    let text: String = address.iter().map(|&b| char::from(b)).collect();
    match (text.as_str(), port).to_socket_addrs() {
        Ok(mut it) => {
            let found = it.find(|a| match family {
                libc::AF_INET => a.is_ipv4(),
                libc::AF_INET6 => a.is_ipv6(),
                _ => true,
            });
            if found.is_none() {
                log::warn!("{what}: {text}: no address of the family asked for");
            }
            found
        }
        Err(e) => {
            log::warn!("{what}: {text}: {e}");
            None
        }
    }
}

/// `evhttp_connection_set_family`: the address family the name is resolved in (`AF_INET`,
/// `AF_INET6`, or `AF_UNSPEC` for either). The name is resolved again now (the connection must
/// have no request queued).
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_family(
    evcon: *mut evhttp_connection,
    family: c_int,
) {
    guard((), || {
        let Some(c) = checked_conn(evcon, "evhttp_connection_set_family") else {
            return;
        };
        // SAFETY: a live connection.
        unsafe {
            if (*c).client.is_none() {
                log::warn!("evhttp_connection_set_family: not a client connection");
                return;
            }
            let what = "evhttp_connection_set_family";
            if let Some(addr) = resolve((*c).address.as_bytes(), (*c).port, family, what) {
                remake(c, (*c).cbase, addr, what);
            }
        }
    })
}

/// `EVHTTP_CON_REUSE_CONNECTED_ADDR`: reconnect to the address connected before.
const EVHTTP_CON_REUSE_CONNECTED_ADDR: c_int = 0x0008;

/// `evhttp_connection_set_flags`: 0 for `EVHTTP_CON_REUSE_CONNECTED_ADDR` (what revent-http's
/// client always does: the name is resolved once, and every reconnect goes to that address);
/// -1 for the others (`EVHTTP_CON_READ_ON_WRITE_ERROR`, `EVHTTP_CON_LINGERING_CLOSE`), which it
/// does not offer, as the header allows ("non zero if the flag is not supported").
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_flags(
    evcon: *mut evhttp_connection,
    flags: c_int,
) -> c_int {
    guard(-1, || {
        let Some(c) = checked_conn(evcon, "evhttp_connection_set_flags") else {
            return -1;
        };
        // SAFETY: a live connection.
        if unsafe { (*c).client.is_none() } || flags & !EVHTTP_CON_REUSE_CONNECTED_ADDR != 0 {
            return -1;
        }
        0
    })
}

/// Runs `f` with the connection's revent-http handle and base.
fn with_conn<R>(
    evcon: *mut evhttp_connection,
    what: &str,
    f: impl FnOnce(&mut EventBase, client::Connection) -> Result<R, ClientError>,
) -> Option<R> {
    let c = checked_conn(evcon, what)?;
    // SAFETY: a live connection.
    let (cbase, conn) = unsafe { ((*c).cbase, cconn(c, what)?.conn?) };
    // SAFETY: the connection's base is live.
    match unsafe { with_base(cbase, |b| f(b, conn)) } {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            log::warn!("{what}: {e}");
            None
        }
        None => None,
    }
}

/// `evhttp_connection_set_timeout`: connect, read and write timeouts, in seconds (-1: the
/// defaults).
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_timeout(evcon: *mut evhttp_connection, secs: c_int) {
    guard((), || {
        let d = if secs > 0 {
            Duration::from_secs(secs as u64)
        } else {
            Duration::from_secs(50)
        };
        setting(evcon, "evhttp_connection_set_timeout", move |b, c| {
            c.set_timeout(b, d)?;
            if secs <= 0 {
                c.set_connect_timeout(b, Duration::from_secs(45))?;
            }
            Ok(())
        });
    })
}

/// `evhttp_connection_set_timeout_tv`: [`evhttp_connection_set_timeout`] with a timeval (NULL:
/// the defaults).
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_timeout_tv(
    evcon: *mut evhttp_connection,
    tv: *const timeval,
) {
    guard((), || {
        // SAFETY: NULL or a readable timeval.
        let d = unsafe { crate::base::opt_duration(tv) };
        setting(
            evcon,
            "evhttp_connection_set_timeout_tv",
            move |b, c| match d {
                Some(d) => c.set_timeout(b, d),
                None => {
                    c.set_timeout(b, Duration::from_secs(50))?;
                    c.set_connect_timeout(b, Duration::from_secs(45))
                }
            },
        );
    })
}

/// `evhttp_connection_set_initial_retry_tv`: the wait before the first retry of a failed connect.
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_initial_retry_tv(
    evcon: *mut evhttp_connection,
    tv: *const timeval,
) {
    guard((), || {
        // SAFETY: NULL or a readable timeval.
        let d = unsafe { crate::base::opt_duration(tv) }.unwrap_or(Duration::from_secs(2));
        setting(
            evcon,
            "evhttp_connection_set_initial_retry_tv",
            move |b, c| c.set_initial_retry_delay(b, d),
        );
    })
}

/// `evhttp_connection_set_retries`: how often a failed connect is tried again (-1: forever).
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_retries(evcon: *mut evhttp_connection, n: c_int) {
    guard((), || {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        setting(evcon, "evhttp_connection_set_retries", move |b, c| {
            c.set_retries(b, n)
        });
    })
}

/// `evhttp_connection_set_max_headers_size`: the largest response head (negative: no limit).
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_max_headers_size(
    evcon: *mut evhttp_connection,
    n: ssize_t,
) {
    guard((), || {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        setting(
            evcon,
            "evhttp_connection_set_max_headers_size",
            move |b, c| c.set_max_headers_size(b, n),
        );
    })
}

/// `evhttp_connection_set_max_body_size`: the largest response body (negative: no limit).
#[no_mangle]
pub unsafe extern "C" fn evhttp_connection_set_max_body_size(
    evcon: *mut evhttp_connection,
    n: ssize_t,
) {
    guard((), || {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        setting(evcon, "evhttp_connection_set_max_body_size", move |b, c| {
            c.set_max_body_size(b, n)
        });
    })
}

/// Puts the response head in request `r`.
///
/// # Safety
/// `r` is a live request.
unsafe fn set_head(r: *mut evhttp_request, head: &ResponseHead) {
    // SAFETY: the caller's contract.
    unsafe {
        (*r).response_code = c_int::from(head.status());
        set_string(
            ptr::addr_of_mut!((*r).response_code_line),
            head.reason().as_bytes(),
        );
        (*r).major = head.version().major() as c_char;
        (*r).minor = head.version().minor() as c_char;
        fill_list((*r).input_headers, head.headers().iter());
    }
}

/// A piece of the body for the chunk callback.
///
/// # Safety
/// `r` is a live client request with a chunk callback; `cbase` its connection's base.
unsafe fn on_piece(
    base: &mut EventBase,
    cbase: *mut CBase,
    r: *mut evhttp_request,
    head: &ResponseHead,
    data: &mut Evbuffer,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let Some(q) = creq(r) else {
            return;
        };
        if !q.head_set {
            q.head_set = true;
            set_head(r, head);
        }
        let Some(cb) = (*r).chunk_cb else {
            let n = data.len();
            let _ = data.drain(n);
            return;
        };
        with_buf((*r).input_buffer, "evhttp chunk", (), |b| {
            let _ = b.add_buffer(data);
        });
        q.in_callback = true;
        let arg = (*r).cb_arg;
        call_out(cbase, base, || cb(r, arg));
        let Some(q) = creq(r) else {
            return;
        };
        q.in_callback = false;
        with_buf((*r).input_buffer, "evhttp chunk", (), |b| {
            let n = b.len();
            let _ = b.drain(n);
        });
        if q.free_after {
            q.free_after = false;
            free_client(r, Some(base));
        }
    }
}

/// The response head for the header callback: put in the request, then `cb` decides.
///
/// # Safety
/// `r` is a live client request; `cbase` its connection's base.
unsafe fn on_head(
    base: &mut EventBase,
    cbase: *mut CBase,
    r: *mut evhttp_request,
    head: &ResponseHead,
    cb: unsafe extern "C" fn(*mut evhttp_request, *mut c_void) -> c_int,
) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        let Some(q) = creq(r) else {
            return false;
        };
        q.head_set = true;
        set_head(r, head);
        q.in_callback = true;
        let arg = (*r).cb_arg;
        let verdict = call_out(cbase, base, || cb(r, arg));
        let Some(q) = creq(r) else {
            return false;
        };
        q.in_callback = false;
        // A request freed from inside is refused; its failure then frees it.
        verdict >= 0 && !q.free_after
    }
}

/// The end of request `r` on connection `evcon`: its callbacks, then its free.
///
/// # Safety
/// `r` is a live client request queued on the live connection `evcon` of base `cbase`.
unsafe fn on_complete(
    base: &mut EventBase,
    cbase: *mut CBase,
    evcon: *mut evhttp_connection,
    r: *mut evhttp_request,
    outcome: Outcome,
) {
    // SAFETY: the caller's contract; C may free the connection in its callback, so it is not
    // used after the callbacks (its record is checked again by address first).
    unsafe {
        if let Some(cc) = (*evcon).client.as_mut() {
            cc.pending.retain(|p| *p != r);
        }
        let Some(q) = creq(r) else {
            return;
        };
        q.handle = None;
        let (cb, arg, error_cb) = ((*r).cb, (*r).cb_arg, (*r).error_cb);
        match outcome {
            Ok(mut resp) => {
                complete_ok(r, &mut resp);
                q.in_callback = true;
                if let Some(cb) = cb {
                    call_out(cbase, base, || cb(r, arg));
                }
                let Some(q) = creq(r) else {
                    return;
                };
                q.in_callback = false;
                let free_after = std::mem::take(&mut q.free_after);
                q.evcon = ptr::null_mut();
                if free_after {
                    free_client(r, None);
                } else {
                    free_auto(r);
                }
            }
            Err(ClientError::Connect(e)) => {
                // libevent gives up on a connect that failed (after its retries) differently from
                // other failures: the callback gets the request itself, with no response (code
                // 0), and no error callback runs.
                log::debug!("evhttp_make_request: connect: {e}");
                q.in_callback = true;
                if let Some(cb) = cb {
                    call_out(cbase, base, || cb(r, arg));
                }
                let Some(q) = creq(r) else {
                    return;
                };
                q.in_callback = false;
                q.evcon = ptr::null_mut();
                if std::mem::take(&mut q.free_after) {
                    free_client(r, None);
                } else {
                    free_auto(r);
                }
            }
            Err(e) => {
                log::debug!("evhttp_make_request: {e}");
                q.evcon = ptr::null_mut();
                if std::mem::take(&mut q.free_after) {
                    free_client(r, None);
                } else {
                    free_auto(r);
                }
                if let Some(ecb) = error_cb {
                    call_out(cbase, base, || ecb(error_code(&e), arg));
                }
                if let Some(cb) = cb {
                    call_out(cbase, base, || cb(ptr::null_mut(), arg));
                }
            }
        }
    }
}

/// Puts a complete response in request `r`.
///
/// # Safety
/// `r` is a live request.
unsafe fn complete_ok(r: *mut evhttp_request, resp: &mut Response) {
    // SAFETY: the caller's contract.
    unsafe {
        let set = creq(r).is_some_and(|q| q.head_set);
        if !set {
            set_head(r, resp.head());
        }
        let body = resp.body_mut();
        (*r).body_size = body.len();
        with_buf((*r).input_buffer, "evhttp response", (), |b| {
            let _ = b.add_buffer(body);
        });
    }
}

/// After a request of `evcon` completed: frees the connection if it was asked to and is idle.
///
/// # Safety
/// `evcon` was a live connection when the request was made (it may have been freed since: the
/// address is looked up among the live ones first).
unsafe fn maybe_free_conn(base: &mut EventBase, evcon: *mut evhttp_connection) {
    if !crate::http::conn_is_live(evcon) {
        return;
    }
    // SAFETY: live (checked just above).
    let idle = unsafe { (*evcon).client.as_ref() }
        .is_some_and(|cc| cc.free_on_completion && cc.pending.is_empty());
    if idle {
        // SAFETY: live.
        unsafe { free_conn_with(evcon, Some(base)) };
    }
}

/// `evhttp_make_request`: sends request `req` with method `type` (one `EVHTTP_REQ_*`) for `uri`
/// on `evcon`: its output headers, and its output buffer as the body. 0, or -1 (the request is
/// then freed, unless owned).
#[no_mangle]
pub unsafe extern "C" fn evhttp_make_request(
    evcon: *mut evhttp_connection,
    req: *mut evhttp_request,
    type_: c_int,
    uri: *const c_char,
) -> c_int {
    guard(-1, || {
        let Some(r) = crate::http::checked_req(req, "evhttp_make_request") else {
            return -1;
        };
        // SAFETY: a live request; a live connection (checked); a C string.
        unsafe {
            if creq(r).is_none_or(|q| q.handle.is_some()) {
                log::warn!("evhttp_make_request: not a new client request");
                return -1;
            }
            let fail = |r| {
                free_auto(r);
                -1
            };
            let Some(c) = checked_conn(evcon, "evhttp_make_request") else {
                return fail(r);
            };
            if cconn(c, "evhttp_make_request").is_none() || uri.is_null() {
                return fail(r);
            }
            let Some(method) = method_of(type_) else {
                log::warn!("evhttp_make_request: unknown method {type_}");
                return fail(r);
            };
            let target: String = CStr::from_ptr(uri)
                .to_bytes()
                .iter()
                .map(|&b| char::from(b))
                .collect();
            let mut rreq = match client::Request::new(method.clone(), &target) {
                Ok(q) => q,
                Err(e) => {
                    log::warn!("evhttp_make_request: {e}");
                    return fail(r);
                }
            };
            *rreq.headers_mut() = output_fields(r, &["Content-Length", "Transfer-Encoding"]);
            let mut body = take_buffer((*r).output_buffer, "evhttp_make_request");
            if !body.is_empty() || matches!(method, Method::Post | Method::Put) {
                let bytes = body.pullup_all().map(<[u8]>::to_vec).unwrap_or_default();
                rreq = rreq.body(bytes);
            }
            let cbase = (*c).cbase;
            if (*r).chunk_cb.is_some() {
                rreq = rreq.on_chunk(move |b, head, data| {
                    // SAFETY: the request is live while it is queued (a free cancels it first).
                    on_piece(b, cbase, r, head, data)
                });
            }
            if let Some(hcb) = (*r).header_cb {
                rreq = rreq.on_head(move |b, head| {
                    // SAFETY: the request is live while it is queued (a free cancels it first).
                    on_head(b, cbase, r, head, hcb)
                });
            }
            (*r).type_ = type_;
            set_string(ptr::addr_of_mut!((*r).uri), target.as_bytes());
            let conn = cconn(c, "evhttp_make_request").and_then(|x| x.conn);
            let Some(conn) = conn else {
                log::warn!(
                    "evhttp_make_request: the connection has no base (evhttp_connection_set_base)"
                );
                return fail(r);
            };
            let made = with_base(cbase, |b| {
                conn.request(b, rreq, move |b, outcome| {
                    // SAFETY: the request and its connection are live while it is queued: their
                    // frees cancel it first, and a cancelled request's callback does not run.
                    on_complete(b, cbase, c, r, outcome);
                    maybe_free_conn(b, c);
                })
            });
            match made {
                Some(Ok(h)) => {
                    if let Some(q) = creq(r) {
                        q.handle = Some(h);
                        q.evcon = c;
                    }
                    if let Some(cc) = cconn(c, "evhttp_make_request") {
                        cc.pending.push(r);
                    }
                    (*r).evcon = c;
                    0
                }
                Some(Err(e)) => {
                    log::warn!("evhttp_make_request: {e}");
                    fail(r)
                }
                None => fail(r),
            }
        }
    })
}

/// `evhttp_cancel_request`: cancels a queued or ongoing request: its callback does not run, and
/// it is freed (unless owned); an ongoing one takes its socket with it and, as in libevent, its
/// error callback gets `EVREQ_HTTP_REQUEST_CANCEL` (after the free).
#[no_mangle]
pub unsafe extern "C" fn evhttp_cancel_request(req: *mut evhttp_request) {
    guard((), || {
        let Some(r) = crate::http::checked_req(req, "evhttp_cancel_request") else {
            return;
        };
        // SAFETY: a live request.
        unsafe {
            let Some(q) = creq(r) else {
                log::warn!("evhttp_cancel_request: not a client request");
                return;
            };
            let (evcon, handle) = (q.evcon, q.handle.take());
            let mut ongoing = false;
            if !evcon.is_null() {
                if let Some(cc) = (*evcon).client.as_mut() {
                    // The first request queued is the one on the wire (or waiting for the
                    // connect).
                    ongoing = cc.pending.first() == Some(&r);
                    cc.pending.retain(|p| *p != r);
                }
                if let Some(h) = handle {
                    let _ = with_base((*evcon).cbase, |b| h.cancel(b));
                }
            }
            q.evcon = ptr::null_mut();
            let (error_cb, arg) = ((*r).error_cb, (*r).cb_arg);
            free_auto(r);
            if let (true, Some(ecb)) = (ongoing, error_cb) {
                ecb(EVREQ_HTTP_REQUEST_CANCEL, arg);
            }
        }
    })
}
