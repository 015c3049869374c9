//! `event2/rpc.h` (evrpc): remote procedure calls over this library's evhttp server and client,
//! as libevent 2.1 does them. Messages are the program's own (the marshal, unmarshal, new, free,
//! clear and complete functions `event_rpcgen.py` generates, usually with evtag); this module
//! moves them:
//!
//! - **Server** (`evrpc_init` on a `struct evhttp`): an RPC named `NAME` is a callback for the path
//!   `/.rpc.NAME`. A POST with a body is run through the input hooks, unmarshalled into a new request
//!   message, and handed to the program's callback with a new reply message in a
//!   `struct evrpc_req_generic` (the layout `EVRPC_HEADER` declares, so `rpc_req->request` and
//!   `EVRPC_REQUEST_HTTP(rpc_req)` work). `evrpc_request_done` checks the reply is complete,
//!   marshals it, runs the output hooks and answers 200 with `Content-Type:
//!   application/octet-stream` (unless a hook set one). Anything that fails (not a POST, an empty
//!   or unparsable body, a hook that terminates, an incomplete reply) is answered
//!   `503 Service Unavailable`, as libevent does.
//! - **Client** (`struct evrpc_pool`): requests go out on the pool's connections, one at a time
//!   per connection, the others queued in the pool in order; each is marshalled, run through the
//!   pool's output hooks and POSTed to `/.rpc.NAME`; the response runs through the input hooks and
//!   is unmarshalled into the reply, then the program's callback gets a `struct evrpc_status`:
//!   `EVRPC_STATUS_ERR_NONE`, `_TIMEOUT` (the pool's timeout passed, or the HTTP request failed),
//!   `_BADPAYLOAD` (the reply did not unmarshal: an unknown RPC's 404 page, say), `_UNSTARTED`
//!   (it could not be sent) or `_HOOKABORTED`.
//! - **Hooks** (`evrpc_add_hook` on a server base or a pool) return `EVRPC_CONTINUE`,
//!   `EVRPC_TERMINATE` or `EVRPC_PAUSE`; a paused request waits for `evrpc_resume_request` with
//!   the outcome (the hooks after the one that paused are not run, as in libevent). Meta data
//!   (`evrpc_hook_add_meta`) lives with the request's context: what an output hook adds, an input
//!   hook of the same side finds, and `evrpc_hook_get_connection` gives the HTTP connection.
//!
//! Where this differs from libevent 2.1: `evrpc_pool_free` also frees the requests in flight on its
//! connections (without their callbacks, as the connections' requests), where libevent leaves
//! them, and their timers, behind; `evrpc_make_request` on a pool without connections queues the
//! request (libevent asserts).

use crate::base::CBase;
use crate::buffer::{evbuffer, evbuffer_free, evbuffer_get_length, evbuffer_new};
use crate::event::{event, event_add, event_del, event_free, event_new};
use crate::http::{
    evhttp, evhttp_connection, evhttp_del_cb, evhttp_request, evhttp_request_free,
    evhttp_request_get_connection, evhttp_request_own, evhttp_send_error, evhttp_send_reply,
    evhttp_set_cb, EVHTTP_REQ_POST, EVHTTP_USER_OWNED,
};
use crate::http_client::{
    evhttp_cancel_request, evhttp_connection_free, evhttp_connection_set_timeout,
    evhttp_make_request, evhttp_request_new,
};
use crate::http_util::{evhttp_add_header, evhttp_find_header};
use crate::{guard, mem};
use libc::{c_char, c_int, c_short, c_void, size_t, timeval};
use std::ffi::CStr;
use std::ptr;

// `enum EVRPC_HOOK_TYPE`.
const EVRPC_INPUT: c_int = 0;
const EVRPC_OUTPUT: c_int = 1;
// `enum EVRPC_HOOK_RESULT`.
const EVRPC_TERMINATE: c_int = -1;
const EVRPC_CONTINUE: c_int = 0;
const EVRPC_PAUSE: c_int = 1;
// `struct evrpc_status`'s errors.
const EVRPC_STATUS_ERR_NONE: c_int = 0;
const EVRPC_STATUS_ERR_TIMEOUT: c_int = 1;
const EVRPC_STATUS_ERR_BADPAYLOAD: c_int = 2;
const EVRPC_STATUS_ERR_UNSTARTED: c_int = 3;
const EVRPC_STATUS_ERR_HOOKABORTED: c_int = 4;

/// `HTTP_SERVUNAVAIL`: what libevent answers every failed RPC with.
const HTTP_SERVUNAVAIL: c_int = 503;

/// A hook: `int (*)(void *ctx, struct evhttp_request *, struct evbuffer *, void *arg)`.
pub type evrpc_hook_cb = Option<
    unsafe extern "C" fn(*mut c_void, *mut evhttp_request, *mut evbuffer, *mut c_void) -> c_int,
>;
/// A client callback: `void (*)(struct evrpc_status *, void *request, void *reply, void *arg)`.
pub type evrpc_cb =
    Option<unsafe extern "C" fn(*mut evrpc_status, *mut c_void, *mut c_void, *mut c_void)>;
/// A server callback: `void (*)(struct evrpc_req_generic *, void *)`.
pub type evrpc_server_cb = Option<unsafe extern "C" fn(*mut evrpc_req_generic, *mut c_void)>;

/// Marks the live hook holders (`struct evrpc_base`, `struct evrpc_pool`).
const BASE_MAGIC: u64 = 0x7265_7665_6e74_5242;
const POOL_MAGIC: u64 = 0x7265_7665_6e74_5250;

// ---- the public structs ----

/// `struct evrpc_status` (rpc_struct.h): what a client callback gets.
///
/// ```
/// assert_eq!(std::mem::size_of::<revent_capi::rpc::evrpc_status>(), 16);
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct evrpc_status {
    pub error: c_int,
    pub http_req: *mut evhttp_request,
}

/// `TAILQ_ENTRY(evrpc)`.
///
/// ```
/// assert_eq!(std::mem::size_of::<revent_capi::rpc::evrpc_next>(), 16);
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct evrpc_next {
    pub tqe_next: *mut evrpc,
    pub tqe_prev: *mut *mut evrpc,
}

/// `struct evrpc` (rpc_struct.h): one registered RPC, with libevent's layout (a program may fill
/// one and pass it to `evrpc_register_rpc`; `uri` holds the RPC's name).
///
/// ```
/// assert_eq!(std::mem::size_of::<revent_capi::rpc::evrpc>(), 120);
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct evrpc {
    pub next: evrpc_next,
    pub uri: *const c_char,
    pub request_new: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    pub request_new_arg: *mut c_void,
    pub request_free: Option<unsafe extern "C" fn(*mut c_void)>,
    pub request_unmarshal: Option<unsafe extern "C" fn(*mut c_void, *mut evbuffer) -> c_int>,
    pub reply_new: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    pub reply_new_arg: *mut c_void,
    pub reply_free: Option<unsafe extern "C" fn(*mut c_void)>,
    pub reply_complete: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    pub reply_marshal: Option<unsafe extern "C" fn(*mut evbuffer, *mut c_void)>,
    pub cb: evrpc_server_cb,
    pub cb_arg: *mut c_void,
    pub base: *mut evrpc_base,
}

/// `struct evrpc_req_generic`: a request the server is handling. Its first six fields are the
/// `EVRPC_STRUCT(rpcname)` that `EVRPC_HEADER` declares (programs read `request`, `reply` and
/// `http_req` directly).
///
/// ```
/// use revent_capi::rpc::*;
/// assert_eq!(std::mem::offset_of!(evrpc_req_generic, http_req), 32);
/// // SAFETY: NULL is refused with NULL.
/// assert!(unsafe { evrpc_get_request(std::ptr::null_mut()) }.is_null());
/// ```
#[repr(C)]
pub struct evrpc_req_generic {
    pub hook_meta: *mut evrpc_hook_meta,
    pub request: *mut c_void,
    pub reply: *mut c_void,
    pub rpc: *mut evrpc,
    pub http_req: *mut evhttp_request,
    pub rpc_data: *mut evbuffer,
}

// rpc.h's EVRPC_HEADER layout and rpc_struct.h's on x86_64 (tests/c/rpc.c checks them too).
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(evrpc_req_generic, request) == 8);
    assert!(offset_of!(evrpc_req_generic, http_req) == 32);
    assert!(offset_of!(evrpc_req_generic, rpc_data) == 40);
    assert!(offset_of!(evrpc, uri) == 16);
    assert!(offset_of!(evrpc, reply_marshal) == 88);
    assert!(offset_of!(evrpc, cb_arg) == 104);
    assert!(offset_of!(evrpc, base) == 112);
    assert!(offset_of!(evrpc_status, http_req) == 8);
};

/// `struct evrpc_hook_meta` (opaque): a request context's meta data and connection.
///
/// ```
/// use revent_capi::rpc::*;
/// use std::ptr::null_mut;
///
/// // SAFETY: a request context of this module, C strings and sizes that match; freed once.
/// unsafe {
///     let ctx = evrpc_make_request_ctx(null_mut(), null_mut(), null_mut(), c"Echo".as_ptr(),
///         None, None, None, None, null_mut());
///     evrpc_hook_add_meta(ctx.cast(), c"key".as_ptr(), b"v\0".as_ptr().cast(), 2);
///     let (mut data, mut len) = (null_mut(), 0);
///     assert_eq!(evrpc_hook_find_meta(ctx.cast(), c"key".as_ptr(), &mut data, &mut len), 0);
///     assert_eq!(std::slice::from_raw_parts(data.cast::<u8>(), len), b"v\0");
///     assert_eq!(evrpc_hook_find_meta(ctx.cast(), c"nope".as_ptr(), &mut data, &mut len), -1);
///     assert!(evrpc_hook_get_connection(ctx.cast()).is_null());
///     evrpc_request_free_unsent(ctx);
/// }
/// ```
pub struct evrpc_hook_meta {
    data: Vec<(Vec<u8>, Vec<u8>)>,
    evcon: *mut evhttp_connection,
}

/// What a paused request resumes into.
type Closure = unsafe fn(*mut c_void, c_int);

/// A hook as `evrpc_add_hook` takes it.
type HookFn =
    unsafe extern "C" fn(*mut c_void, *mut evhttp_request, *mut evbuffer, *mut c_void) -> c_int;

struct Hook {
    cb: HookFn,
    arg: *mut c_void,
}

/// The part `struct evrpc_base` and `struct evrpc_pool` share (libevent's `evrpc_add_hook` takes
/// either as `void *`): hooks and paused requests.
#[repr(C)]
// Boxed: a hook's address is the handle `evrpc_add_hook` returns, and must not move.
#[allow(clippy::vec_box)]
struct Hooks {
    magic: u64,
    input: Vec<Box<Hook>>,
    output: Vec<Box<Hook>>,
    paused: Vec<(*mut c_void, Closure)>,
}

impl Hooks {
    fn new(magic: u64) -> Hooks {
        Hooks {
            magic,
            input: Vec::new(),
            output: Vec::new(),
            paused: Vec::new(),
        }
    }
}

/// `struct evrpc_base` (opaque): the RPCs of one `struct evhttp`.
///
/// ```
/// use revent_capi::base::{event_base_free, event_base_new};
/// use revent_capi::http::{evhttp_free, evhttp_new};
/// use revent_capi::rpc::*;
/// use std::ptr::null_mut;
///
/// // SAFETY: a base, server and RPC base of this library, each freed once.
/// unsafe {
///     let base = event_base_new();
///     let http = evhttp_new(base);
///     let rpcs = evrpc_init(http);
///     let r = evrpc_register_generic(rpcs, c"Echo".as_ptr(), None, null_mut(), None, null_mut(),
///         None, None, None, null_mut(), None, None, None);
///     assert_eq!(r, 0);
///     assert_eq!(evrpc_unregister_rpc(rpcs, c"Echo".as_ptr()), 0);
///     assert_eq!(evrpc_unregister_rpc(rpcs, c"Echo".as_ptr()), -1);
///     evrpc_free(rpcs);
///     evhttp_free(http);
///     event_base_free(base);
/// }
/// ```
#[repr(C)]
pub struct evrpc_base {
    hooks: Hooks,
    http: *mut evhttp,
    rpcs: Vec<*mut evrpc>,
}

/// `struct evrpc_pool` (opaque): client connections and the requests waiting for one.
///
/// ```
/// use revent_capi::base::{event_base_free, event_base_new};
/// use revent_capi::rpc::*;
/// use std::ptr::null_mut;
///
/// unsafe extern "C" fn pass(
///     _: *mut std::ffi::c_void,
///     _: *mut revent_capi::http::evhttp_request,
///     _: *mut revent_capi::buffer::evbuffer,
///     _: *mut std::ffi::c_void,
/// ) -> i32 {
///     0
/// }
/// // SAFETY: a base and pool of this library, each freed once.
/// unsafe {
///     let base = event_base_new();
///     let pool = evrpc_pool_new(base);
///     evrpc_pool_set_timeout(pool, 5);
///     let hook = evrpc_add_hook(pool.cast(), 1, Some(pass), null_mut());
///     assert!(!hook.is_null());
///     assert_eq!(evrpc_remove_hook(pool.cast(), 1, hook), 1);
///     assert_eq!(evrpc_remove_hook(pool.cast(), 1, hook), 0);
///     evrpc_pool_free(pool);
///     event_base_free(base);
/// }
/// ```
#[repr(C)]
pub struct evrpc_pool {
    hooks: Hooks,
    cbase: *mut CBase,
    /// Connections, and whether a request of the pool is on each.
    conns: Vec<(*mut evhttp_connection, bool)>,
    /// Requests waiting for a free connection, in order.
    queue: std::collections::VecDeque<*mut evrpc_request_wrapper>,
    /// Requests started and not done (freed with the pool).
    started: Vec<*mut evrpc_request_wrapper>,
    timeout: c_int,
}

/// `struct evrpc_request_wrapper` (opaque): a client request. Its first field is the meta data,
/// as in libevent (the hook functions take either this or a `struct evrpc_req_generic`).
///
/// ```
/// use revent_capi::base::{event_base_free, event_base_new};
/// use revent_capi::rpc::*;
/// use std::ptr::null_mut;
///
/// // SAFETY: a base, pool and request of this library, each freed once.
/// unsafe {
///     let base = event_base_new();
///     let pool = evrpc_pool_new(base);
///     let ctx = evrpc_make_request_ctx(null_mut(), null_mut(), null_mut(), c"Echo".as_ptr(),
///         None, None, None, None, null_mut());
///     assert!(evrpc_request_get_pool(ctx).is_null());
///     evrpc_request_set_pool(ctx, pool);
///     assert_eq!(evrpc_request_get_pool(ctx), pool);
///     evrpc_request_free_unsent(ctx);
///     evrpc_pool_free(pool);
///     event_base_free(base);
/// }
/// ```
#[repr(C)]
pub struct evrpc_request_wrapper {
    hook_meta: *mut evrpc_hook_meta,
    pool: *mut evrpc_pool,
    evcon: *mut evhttp_connection,
    req: *mut evhttp_request,
    timer: *mut event,
    name: Vec<u8>,
    request: *mut c_void,
    reply: *mut c_void,
    request_marshal: Option<unsafe extern "C" fn(*mut evbuffer, *mut c_void)>,
    reply_clear: Option<unsafe extern "C" fn(*mut c_void)>,
    reply_unmarshal: Option<unsafe extern "C" fn(*mut c_void, *mut evbuffer) -> c_int>,
    cb: evrpc_cb,
    cb_arg: *mut c_void,
}

/// `vbase` as hooks of a live base or pool.
///
/// # Safety
/// `vbase` is NULL or a base or pool of this module.
unsafe fn hooks_of<'a>(vbase: *mut c_void, what: &str) -> Option<&'a mut Hooks> {
    if vbase.is_null() {
        log::warn!("{what}: NULL base or pool");
        return None;
    }
    let h = vbase.cast::<Hooks>();
    // SAFETY: the caller's contract; only the magic word is read first.
    let m = unsafe { ptr::read(ptr::addr_of!((*h).magic)) };
    if m != BASE_MAGIC && m != POOL_MAGIC {
        log::warn!("{what}: not a live evrpc_base or evrpc_pool");
        return None;
    }
    // SAFETY: a live one (the magic).
    Some(unsafe { &mut *h })
}

/// `/.rpc.NAME`.
fn rpc_path(name: &[u8]) -> Vec<u8> {
    let mut p = b"/.rpc.".to_vec();
    p.extend_from_slice(name);
    p.push(0);
    p
}

/// Runs the hooks of one direction; the first that does not continue decides.
///
/// # Safety
/// Live arguments, as the hooks expect them.
unsafe fn run_hooks(
    hooks: *mut Hooks,
    dir: c_int,
    ctx: *mut c_void,
    req: *mut evhttp_request,
    buf: *mut evbuffer,
) -> c_int {
    // A copy: a hook may add or remove hooks.
    // SAFETY: the caller's contract.
    let list: Vec<(HookFn, *mut c_void)> = unsafe {
        let l = if dir == EVRPC_INPUT {
            &(*hooks).input
        } else {
            &(*hooks).output
        };
        l.iter().map(|h| (h.cb, h.arg)).collect()
    };
    for (cb, arg) in list {
        // SAFETY: the program's hook with its own argument.
        let res = unsafe { cb(ctx, req, buf, arg) };
        if res != EVRPC_CONTINUE {
            return res;
        }
    }
    EVRPC_CONTINUE
}

/// The meta data of a context (made if missing), tied to connection `evcon`.
///
/// # Safety
/// `slot` is a context's `hook_meta` field.
unsafe fn associate_meta(slot: *mut *mut evrpc_hook_meta, evcon: *mut evhttp_connection) {
    // SAFETY: the caller's contract.
    unsafe {
        if (*slot).is_null() {
            *slot = Box::into_raw(Box::new(evrpc_hook_meta {
                data: Vec::new(),
                evcon,
            }));
        }
        (**slot).evcon = evcon;
    }
}

/// Frees a context's meta data.
///
/// # Safety
/// `m` is NULL or meta data from [`associate_meta`], freed once.
unsafe fn free_meta(m: *mut evrpc_hook_meta) {
    if !m.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(m) });
    }
}

/// Parks `ctx` until `evrpc_resume_request`.
///
/// # Safety
/// `hooks` is live.
unsafe fn pause(hooks: *mut Hooks, ctx: *mut c_void, then: Closure) {
    // SAFETY: the caller's contract.
    unsafe { (*hooks).paused.push((ctx, then)) };
}

// ---- the server ----

/// `evrpc_init`: an RPC base on the server `http` (which must outlive it).
#[no_mangle]
pub unsafe extern "C" fn evrpc_init(http: *mut evhttp) -> *mut evrpc_base {
    guard(ptr::null_mut(), || {
        if http.is_null() {
            log::warn!("evrpc_init: NULL evhttp");
            return ptr::null_mut();
        }
        Box::into_raw(Box::new(evrpc_base {
            hooks: Hooks::new(BASE_MAGIC),
            http,
            rpcs: Vec::new(),
        }))
    })
}

/// `base` if it is a live RPC base.
fn checked_base(base: *mut evrpc_base, what: &str) -> Option<*mut evrpc_base> {
    // SAFETY: NULL or a base of ours (C's contract); only the magic word is read first.
    if base.is_null() || unsafe { ptr::read(ptr::addr_of!((*base).hooks.magic)) } != BASE_MAGIC {
        log::warn!("{what}: not a live evrpc_base");
        return None;
    }
    Some(base)
}

/// Takes RPC `rpc` off its server and frees it (its name string and itself, with the library's
/// allocator, as libevent: a `struct evrpc` handed to `evrpc_register_rpc` becomes the library's).
///
/// # Safety
/// `rpc` is a registered RPC of live base `base`.
unsafe fn drop_rpc(base: *mut evrpc_base, rpc: *mut evrpc) {
    // SAFETY: the caller's contract.
    unsafe {
        let name = CStr::from_ptr((*rpc).uri).to_bytes();
        let path = rpc_path(name);
        evhttp_del_cb((*base).http, path.as_ptr().cast());
        mem::free((*rpc).uri.cast_mut().cast());
        mem::free(rpc.cast());
    }
}

/// `evrpc_free`: unregisters and frees every RPC of the base, drops its hooks and paused
/// requests (their contexts stay the program's), and frees the base.
#[no_mangle]
pub unsafe extern "C" fn evrpc_free(base: *mut evrpc_base) {
    guard((), || {
        let Some(b) = checked_base(base, "evrpc_free") else {
            return;
        };
        // SAFETY: a live base, freed once.
        unsafe {
            for rpc in std::mem::take(&mut (*b).rpcs) {
                drop_rpc(b, rpc);
            }
            (*b).hooks.magic = 0;
            drop(Box::from_raw(b));
        }
    })
}

/// `evrpc_register_rpc`: serves `rpc` (its `uri` holds the name: the path is `/.rpc.NAME`) with
/// callback `cb`. 0, or -1 (NULL arguments, or a name already registered on the server).
#[no_mangle]
pub unsafe extern "C" fn evrpc_register_rpc(
    base: *mut evrpc_base,
    rpc: *mut evrpc,
    cb: evrpc_server_cb,
    cb_arg: *mut c_void,
) -> c_int {
    guard(-1, || {
        let Some(b) = checked_base(base, "evrpc_register_rpc") else {
            return -1;
        };
        // SAFETY: a live base; `rpc` a filled struct with a C string name (the contract).
        unsafe {
            if rpc.is_null() || (*rpc).uri.is_null() {
                log::warn!("evrpc_register_rpc: NULL rpc or name");
                return -1;
            }
            let path = rpc_path(CStr::from_ptr((*rpc).uri).to_bytes());
            if evhttp_set_cb(
                (*b).http,
                path.as_ptr().cast(),
                Some(request_cb),
                rpc.cast(),
            ) != 0
            {
                return -1;
            }
            (*rpc).base = b;
            (*rpc).cb = cb;
            (*rpc).cb_arg = cb_arg;
            (*b).rpcs.push(rpc);
            0
        }
    })
}

/// `evrpc_register_generic` (what `EVRPC_REGISTER` expands to): registers RPC `name` with the
/// message functions of its request and reply types. 0 or -1.
#[no_mangle]
pub unsafe extern "C" fn evrpc_register_generic(
    base: *mut evrpc_base,
    name: *const c_char,
    callback: evrpc_server_cb,
    cbarg: *mut c_void,
    req_new: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    req_new_arg: *mut c_void,
    req_free: Option<unsafe extern "C" fn(*mut c_void)>,
    req_unmarshal: Option<unsafe extern "C" fn(*mut c_void, *mut evbuffer) -> c_int>,
    rpl_new: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    rpl_new_arg: *mut c_void,
    rpl_free: Option<unsafe extern "C" fn(*mut c_void)>,
    rpl_complete: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    rpl_marshal: Option<unsafe extern "C" fn(*mut evbuffer, *mut c_void)>,
) -> c_int {
    guard(-1, || {
        if name.is_null() {
            return -1;
        }
        let rpc = mem::malloc(std::mem::size_of::<evrpc>()).cast::<evrpc>();
        if rpc.is_null() {
            return -1;
        }
        // SAFETY: fresh memory for one struct; a C string.
        unsafe {
            ptr::write(
                rpc,
                evrpc {
                    next: evrpc_next {
                        tqe_next: ptr::null_mut(),
                        tqe_prev: ptr::null_mut(),
                    },
                    uri: mem::c_string(CStr::from_ptr(name).to_bytes()),
                    request_new: req_new,
                    request_new_arg: req_new_arg,
                    request_free: req_free,
                    request_unmarshal: req_unmarshal,
                    reply_new: rpl_new,
                    reply_new_arg: rpl_new_arg,
                    reply_free: rpl_free,
                    reply_complete: rpl_complete,
                    reply_marshal: rpl_marshal,
                    cb: None,
                    cb_arg: ptr::null_mut(),
                    base: ptr::null_mut(),
                },
            );
            if evrpc_register_rpc(base, rpc, callback, cbarg) != 0 {
                mem::free((*rpc).uri.cast_mut().cast());
                mem::free(rpc.cast());
                return -1;
            }
        }
        0
    })
}

/// `evrpc_unregister_rpc`: stops serving RPC `name` and frees it. 0, or -1 if none has that name.
#[no_mangle]
pub unsafe extern "C" fn evrpc_unregister_rpc(base: *mut evrpc_base, name: *const c_char) -> c_int {
    guard(-1, || {
        let Some(b) = checked_base(base, "evrpc_unregister_rpc") else {
            return -1;
        };
        if name.is_null() {
            return -1;
        }
        // SAFETY: a live base whose RPCs are live; a C string.
        unsafe {
            let want = CStr::from_ptr(name).to_bytes();
            let Some(pos) = (*b)
                .rpcs
                .iter()
                .position(|&r| CStr::from_ptr((*r).uri).to_bytes() == want)
            else {
                return -1;
            };
            let rpc = (*b).rpcs.remove(pos);
            drop_rpc(b, rpc);
            0
        }
    })
}

/// Frees a server request's state (messages, marshalled reply, meta data).
///
/// # Safety
/// `st` is a live state from [`request_cb`], freed once.
unsafe fn free_state(st: *mut evrpc_req_generic) {
    // SAFETY: the caller's contract; the messages are freed with the RPC's own functions.
    unsafe {
        let rpc = (*st).rpc;
        if !(*st).request.is_null() {
            if let Some(f) = (*rpc).request_free {
                f((*st).request);
            }
        }
        if !(*st).reply.is_null() {
            if let Some(f) = (*rpc).reply_free {
                f((*st).reply);
            }
        }
        if !(*st).rpc_data.is_null() {
            evbuffer_free((*st).rpc_data);
        }
        free_meta((*st).hook_meta);
        drop(Box::from_raw(st));
    }
}

/// Answers a failed RPC (libevent's answer to every failure) and frees its state.
///
/// # Safety
/// `st` is NULL or a live state; `req` its live request.
unsafe fn fail_state(st: *mut evrpc_req_generic, req: *mut evhttp_request) {
    // SAFETY: the caller's contract.
    unsafe {
        if !st.is_null() {
            free_state(st);
        }
        evhttp_send_error(req, HTTP_SERVUNAVAIL, ptr::null());
    }
}

/// The HTTP callback of every RPC path.
unsafe extern "C" fn request_cb(req: *mut evhttp_request, arg: *mut c_void) {
    let rpc = arg.cast::<evrpc>();
    // SAFETY: the server hands a live request; `rpc` is registered (unregistering removes this
    // callback first).
    unsafe {
        if (*req).type_ != EVHTTP_REQ_POST || evbuffer_get_length((*req).input_buffer) == 0 {
            fail_state(ptr::null_mut(), req);
            return;
        }
        let st = Box::into_raw(Box::new(evrpc_req_generic {
            hook_meta: ptr::null_mut(),
            request: ptr::null_mut(),
            reply: ptr::null_mut(),
            rpc,
            http_req: req,
            rpc_data: ptr::null_mut(),
        }));
        let hooks = ptr::addr_of_mut!((*(*rpc).base).hooks);
        if !(*hooks).input.is_empty() {
            associate_meta(
                ptr::addr_of_mut!((*st).hook_meta),
                evhttp_request_get_connection(req),
            );
            match run_hooks(hooks, EVRPC_INPUT, st.cast(), req, (*req).input_buffer) {
                EVRPC_CONTINUE => {}
                EVRPC_PAUSE => {
                    pause(hooks, st.cast(), server_input_then);
                    return;
                }
                _ => {
                    fail_state(st, req);
                    return;
                }
            }
        }
        server_input_then(st.cast(), EVRPC_CONTINUE);
    }
}

/// After the server's input hooks: unmarshal, then the program's callback.
unsafe fn server_input_then(ctx: *mut c_void, res: c_int) {
    let st = ctx.cast::<evrpc_req_generic>();
    // SAFETY: a live state (paused ones stay live until resumed).
    unsafe {
        let (rpc, req) = ((*st).rpc, (*st).http_req);
        if res == EVRPC_TERMINATE {
            fail_state(st, req);
            return;
        }
        let (Some(new), Some(unmarshal), Some(rnew)) = (
            (*rpc).request_new,
            (*rpc).request_unmarshal,
            (*rpc).reply_new,
        ) else {
            fail_state(st, req);
            return;
        };
        (*st).request = new((*rpc).request_new_arg);
        if (*st).request.is_null() || unmarshal((*st).request, (*req).input_buffer) == -1 {
            fail_state(st, req);
            return;
        }
        (*st).reply = rnew((*rpc).reply_new_arg);
        if (*st).reply.is_null() {
            fail_state(st, req);
            return;
        }
        match (*rpc).cb {
            Some(cb) => cb(st, (*rpc).cb_arg),
            None => fail_state(st, req),
        }
    }
}

/// `evrpc_request_done` (`EVRPC_REQUEST_DONE`): the program filled the reply: it is checked,
/// marshalled, run through the output hooks and sent; the request's state is freed.
#[no_mangle]
pub unsafe extern "C" fn evrpc_request_done(rpc_state: *mut evrpc_req_generic) {
    guard((), || {
        if rpc_state.is_null() {
            return;
        }
        let st = rpc_state;
        // SAFETY: a live state handed to the program's callback.
        unsafe {
            let (rpc, req) = ((*st).rpc, (*st).http_req);
            let complete = (*rpc).reply_complete.map_or(0, |f| f((*st).reply));
            if complete == -1 {
                fail_state(st, req);
                return;
            }
            (*st).rpc_data = evbuffer_new();
            if let Some(m) = (*rpc).reply_marshal {
                m((*st).rpc_data, (*st).reply);
            }
            let hooks = ptr::addr_of_mut!((*(*rpc).base).hooks);
            if !(*hooks).output.is_empty() {
                associate_meta(
                    ptr::addr_of_mut!((*st).hook_meta),
                    evhttp_request_get_connection(req),
                );
                match run_hooks(hooks, EVRPC_OUTPUT, st.cast(), req, (*st).rpc_data) {
                    EVRPC_CONTINUE => {}
                    EVRPC_PAUSE => {
                        pause(hooks, st.cast(), server_output_then);
                        return;
                    }
                    _ => {
                        fail_state(st, req);
                        return;
                    }
                }
            }
            server_output_then(st.cast(), EVRPC_CONTINUE);
        }
    })
}

/// After the server's output hooks: the reply goes out.
unsafe fn server_output_then(ctx: *mut c_void, res: c_int) {
    let st = ctx.cast::<evrpc_req_generic>();
    // SAFETY: a live state.
    unsafe {
        let req = (*st).http_req;
        if res == EVRPC_TERMINATE {
            fail_state(st, req);
            return;
        }
        let out = (*req).output_headers;
        if evhttp_find_header(out, c"Content-Type".as_ptr()).is_null() {
            evhttp_add_header(
                out,
                c"Content-Type".as_ptr(),
                c"application/octet-stream".as_ptr(),
            );
        }
        evhttp_send_reply(req, 200, c"OK".as_ptr(), (*st).rpc_data);
        free_state(st);
    }
}

/// `evrpc_get_request`: the request message of a server request.
#[no_mangle]
pub unsafe extern "C" fn evrpc_get_request(req: *mut evrpc_req_generic) -> *mut c_void {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a live state (C's contract).
        unsafe { req.as_ref() }.map_or(ptr::null_mut(), |r| r.request)
    })
}

/// `evrpc_get_reply`: the reply message of a server request.
#[no_mangle]
pub unsafe extern "C" fn evrpc_get_reply(req: *mut evrpc_req_generic) -> *mut c_void {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a live state (C's contract).
        unsafe { req.as_ref() }.map_or(ptr::null_mut(), |r| r.reply)
    })
}

// ---- hooks and meta data ----

/// `evrpc_add_hook`: adds `cb(ctx, req, buffer, cb_arg)` to the input or output hooks of a server
/// base or a pool (`vbase`); returns a handle for `evrpc_remove_hook` (NULL on error).
#[no_mangle]
pub unsafe extern "C" fn evrpc_add_hook(
    vbase: *mut c_void,
    hook_type: c_int,
    cb: evrpc_hook_cb,
    cb_arg: *mut c_void,
) -> *mut c_void {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a base or pool (the contract).
        let Some(h) = (unsafe { hooks_of(vbase, "evrpc_add_hook") }) else {
            return ptr::null_mut();
        };
        let Some(cb) = cb else {
            return ptr::null_mut();
        };
        let hook = Box::new(Hook { cb, arg: cb_arg });
        let handle = (&*hook as *const Hook).cast_mut().cast();
        match hook_type {
            EVRPC_INPUT => h.input.push(hook),
            EVRPC_OUTPUT => h.output.push(hook),
            _ => {
                log::warn!("evrpc_add_hook: unknown hook type {hook_type}");
                return ptr::null_mut();
            }
        }
        handle
    })
}

/// `evrpc_remove_hook`: removes a hook `evrpc_add_hook` returned; 1 if it was there, else 0.
#[no_mangle]
pub unsafe extern "C" fn evrpc_remove_hook(
    vbase: *mut c_void,
    hook_type: c_int,
    handle: *mut c_void,
) -> c_int {
    guard(0, || {
        // SAFETY: NULL or a base or pool (the contract).
        let Some(h) = (unsafe { hooks_of(vbase, "evrpc_remove_hook") }) else {
            return 0;
        };
        let list = match hook_type {
            EVRPC_INPUT => &mut h.input,
            EVRPC_OUTPUT => &mut h.output,
            _ => return 0,
        };
        let before = list.len();
        list.retain(|x| (&**x as *const Hook).cast::<c_void>() != handle.cast_const());
        c_int::from(list.len() != before)
    })
}

/// `evrpc_resume_request`: resumes request context `ctx` that a hook of `vbase` paused, with the
/// outcome `res` (`EVRPC_CONTINUE` or `EVRPC_TERMINATE`). 0, or -1 if `ctx` is not paused there.
#[no_mangle]
pub unsafe extern "C" fn evrpc_resume_request(
    vbase: *mut c_void,
    ctx: *mut c_void,
    res: c_int,
) -> c_int {
    guard(-1, || {
        // SAFETY: NULL or a base or pool (the contract).
        let Some(h) = (unsafe { hooks_of(vbase, "evrpc_resume_request") }) else {
            return -1;
        };
        let Some(pos) = h.paused.iter().position(|(c, _)| *c == ctx) else {
            log::warn!("evrpc_resume_request: the request is not paused here");
            return -1;
        };
        let (c, then) = h.paused.remove(pos);
        // SAFETY: a paused context stays live until resumed.
        unsafe { then(c, res) };
        0
    })
}

/// The `hook_meta` field of a context (a server request's state or a client request: both begin
/// with it).
fn meta_slot(ctx: *mut c_void) -> *mut *mut evrpc_hook_meta {
    ctx.cast()
}

/// `evrpc_hook_add_meta`: attaches a copy of `data` under `key` to request context `ctx`, for
/// later hooks (and the server's callback) to find.
#[no_mangle]
pub unsafe extern "C" fn evrpc_hook_add_meta(
    ctx: *mut c_void,
    key: *const c_char,
    data: *const c_void,
    data_size: size_t,
) {
    guard((), || {
        if ctx.is_null() || key.is_null() || (data.is_null() && data_size > 0) {
            log::warn!("evrpc_hook_add_meta: NULL argument");
            return;
        }
        // SAFETY: a live context; a C string; `data_size` readable bytes.
        unsafe {
            let slot = meta_slot(ctx);
            if (*slot).is_null() {
                associate_meta(slot, ptr::null_mut());
            }
            let bytes = if data_size == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), data_size).to_vec()
            };
            (**slot)
                .data
                .push((CStr::from_ptr(key).to_bytes().to_vec(), bytes));
        }
    })
}

/// `evrpc_hook_find_meta`: the data first added under `key` (owned by the context), and its size.
/// 0, or -1 when there is none.
#[no_mangle]
pub unsafe extern "C" fn evrpc_hook_find_meta(
    ctx: *mut c_void,
    key: *const c_char,
    data: *mut *mut c_void,
    data_size: *mut size_t,
) -> c_int {
    guard(-1, || {
        if ctx.is_null() || key.is_null() {
            return -1;
        }
        // SAFETY: a live context; a C string; writable out-pointers.
        unsafe {
            let m = *meta_slot(ctx);
            if m.is_null() {
                return -1;
            }
            let want = CStr::from_ptr(key).to_bytes();
            let Some((_, v)) = (*m).data.iter_mut().find(|(k, _)| k == want) else {
                return -1;
            };
            if !data.is_null() {
                *data = v.as_mut_ptr().cast();
            }
            if !data_size.is_null() {
                *data_size = v.len();
            }
            0
        }
    })
}

/// `evrpc_hook_get_connection`: the HTTP connection of request context `ctx` (NULL before a hook
/// ran on it).
#[no_mangle]
pub unsafe extern "C" fn evrpc_hook_get_connection(ctx: *mut c_void) -> *mut evhttp_connection {
    guard(ptr::null_mut(), || {
        if ctx.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a live context.
        unsafe {
            let m = *meta_slot(ctx);
            if m.is_null() {
                ptr::null_mut()
            } else {
                (*m).evcon
            }
        }
    })
}

// ---- the client ----

thread_local! {
    /// The live pools (a program's callback may free its pool: the code after it checks here
    /// rather than read the freed record).
    static LIVE_POOLS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn pool_live(p: *mut evrpc_pool) -> bool {
    LIVE_POOLS.with(|l| l.borrow().contains(&(p as usize)))
}

/// `pool` if it is a live pool.
fn checked_pool(pool: *mut evrpc_pool, what: &str) -> Option<*mut evrpc_pool> {
    if pool.is_null() || !pool_live(pool) {
        log::warn!("{what}: not a live evrpc_pool");
        return None;
    }
    Some(pool)
}

/// `evrpc_pool_new`: a pool of client connections on `base` (may be NULL: the connections then
/// bring their own), with no timeout.
#[no_mangle]
pub unsafe extern "C" fn evrpc_pool_new(base: *mut CBase) -> *mut evrpc_pool {
    guard(ptr::null_mut(), || {
        let p = Box::into_raw(Box::new(evrpc_pool {
            hooks: Hooks::new(POOL_MAGIC),
            cbase: base,
            conns: Vec::new(),
            queue: Default::default(),
            started: Vec::new(),
            timeout: -1,
        }));
        LIVE_POOLS.with(|l| l.borrow_mut().push(p as usize));
        p
    })
}

/// Frees a client request and its timer (no callback).
///
/// # Safety
/// `ctx` is a live request, freed once.
unsafe fn free_wrapper(ctx: *mut evrpc_request_wrapper) {
    // SAFETY: the caller's contract.
    unsafe {
        if !(*ctx).timer.is_null() {
            event_free((*ctx).timer);
        }
        free_meta((*ctx).hook_meta);
        let pool = (*ctx).pool;
        if !pool.is_null() && pool_live(pool) {
            (*pool).started.retain(|&c| c != ctx);
            (*pool).queue.retain(|&c| c != ctx);
        }
        drop(Box::from_raw(ctx));
    }
}

/// `evrpc_pool_free`: frees the pool, its connections (`evhttp_connection_free`) and the requests
/// queued, paused or in flight on it, without their callbacks.
#[no_mangle]
pub unsafe extern "C" fn evrpc_pool_free(pool: *mut evrpc_pool) {
    guard((), || {
        let Some(p) = checked_pool(pool, "evrpc_pool_free") else {
            return;
        };
        // SAFETY: a live pool, freed once; its requests and connections are live.
        unsafe {
            let mut all: Vec<*mut evrpc_request_wrapper> = (*p).queue.drain(..).collect();
            all.append(&mut (*p).started);
            (*p).hooks.paused.clear();
            for (c, _) in std::mem::take(&mut (*p).conns) {
                evhttp_connection_free(c);
            }
            for ctx in all {
                // Its HTTP request went with its connection.
                (*ctx).req = ptr::null_mut();
                (*ctx).pool = ptr::null_mut();
                free_wrapper(ctx);
            }
            (*p).hooks.magic = 0;
            LIVE_POOLS.with(|l| l.borrow_mut().retain(|&x| x != p as usize));
            drop(Box::from_raw(p));
        }
    })
}

/// `evrpc_pool_add_connection`: adds `evcon` (which the pool frees with itself). A pool made with
/// a base gives it to a connection made without one (`evhttp_connection_new` with no current
/// base); a pool made with NULL (as libevent's own tests do) takes connections on any base. The
/// connection gets the pool's timeout if one is set, and the first queued request if any.
#[no_mangle]
pub unsafe extern "C" fn evrpc_pool_add_connection(
    pool: *mut evrpc_pool,
    evcon: *mut evhttp_connection,
) {
    guard((), || {
        let Some(p) = checked_pool(pool, "evrpc_pool_add_connection") else {
            return;
        };
        if evcon.is_null() {
            return;
        }
        // SAFETY: a live pool and connection.
        unsafe {
            // libevent's way: the connection is made without a base and takes the pool's.
            if (*evcon).cbase.is_null() && !(*p).cbase.is_null() {
                crate::http_client::evhttp_connection_set_base(evcon, (*p).cbase);
            } else if !(*p).cbase.is_null() && (*evcon).cbase != (*p).cbase {
                log::warn!("evrpc_pool_add_connection: the connection is on another base");
                return;
            }
            if (*p).timeout > 0 {
                evhttp_connection_set_timeout(evcon, (*p).timeout);
            }
            (*p).conns.push((evcon, false));
            schedule(p);
        }
    })
}

/// `evrpc_pool_remove_connection`: takes `evcon` out of the pool (the program frees it).
#[no_mangle]
pub unsafe extern "C" fn evrpc_pool_remove_connection(
    pool: *mut evrpc_pool,
    evcon: *mut evhttp_connection,
) {
    guard((), || {
        if let Some(p) = checked_pool(pool, "evrpc_pool_remove_connection") {
            // SAFETY: a live pool.
            unsafe { (*p).conns.retain(|(c, _)| *c != evcon) };
        }
    })
}

/// `evrpc_pool_set_timeout`: each request of the pool fails with `EVRPC_STATUS_ERR_TIMEOUT` when
/// its reply has not come `timeout_in_secs` seconds after it was sent (0 or less: no limit); the
/// connections get it as their HTTP timeout too.
#[no_mangle]
pub unsafe extern "C" fn evrpc_pool_set_timeout(pool: *mut evrpc_pool, timeout_in_secs: c_int) {
    guard((), || {
        if let Some(p) = checked_pool(pool, "evrpc_pool_set_timeout") {
            // SAFETY: a live pool with live connections.
            unsafe {
                for (c, _) in &(*p).conns {
                    evhttp_connection_set_timeout(*c, timeout_in_secs);
                }
                (*p).timeout = timeout_in_secs;
            }
        }
    })
}

/// `evrpc_make_request_ctx` (`EVRPC_MAKE_CTX`): a client request of RPC `rpcname`, not sent yet.
#[no_mangle]
pub unsafe extern "C" fn evrpc_make_request_ctx(
    pool: *mut evrpc_pool,
    request: *mut c_void,
    reply: *mut c_void,
    rpcname: *const c_char,
    req_marshal: Option<unsafe extern "C" fn(*mut evbuffer, *mut c_void)>,
    rpl_clear: Option<unsafe extern "C" fn(*mut c_void)>,
    rpl_unmarshal: Option<unsafe extern "C" fn(*mut c_void, *mut evbuffer) -> c_int>,
    cb: evrpc_cb,
    cbarg: *mut c_void,
) -> *mut evrpc_request_wrapper {
    guard(ptr::null_mut(), || {
        if rpcname.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a C string.
        let name = unsafe { CStr::from_ptr(rpcname) }.to_bytes().to_vec();
        Box::into_raw(Box::new(evrpc_request_wrapper {
            hook_meta: ptr::null_mut(),
            pool,
            evcon: ptr::null_mut(),
            req: ptr::null_mut(),
            timer: ptr::null_mut(),
            name,
            request,
            reply,
            request_marshal: req_marshal,
            reply_clear: rpl_clear,
            reply_unmarshal: rpl_unmarshal,
            cb,
            cb_arg: cbarg,
        }))
    })
}

/// Frees a request made with `evrpc_make_request_ctx` and never handed to `evrpc_make_request`
/// (libevent has no call for it; a program that changes its mind leaks it there). Not exported
/// to C.
///
/// # Safety
/// `ctx` is NULL or such a request, freed once.
pub unsafe fn evrpc_request_free_unsent(ctx: *mut evrpc_request_wrapper) {
    if !ctx.is_null() {
        // SAFETY: the caller's contract.
        unsafe { free_wrapper(ctx) };
    }
}

/// `evrpc_request_get_pool`.
#[no_mangle]
pub unsafe extern "C" fn evrpc_request_get_pool(
    ctx: *mut evrpc_request_wrapper,
) -> *mut evrpc_pool {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a live request (C's contract).
        unsafe { ctx.as_ref() }.map_or(ptr::null_mut(), |c| c.pool)
    })
}

/// `evrpc_request_set_pool`: the pool a request not sent yet goes to.
#[no_mangle]
pub unsafe extern "C" fn evrpc_request_set_pool(
    ctx: *mut evrpc_request_wrapper,
    pool: *mut evrpc_pool,
) {
    guard((), || {
        // SAFETY: NULL or a live request (C's contract).
        if let Some(c) = unsafe { ctx.as_mut() } {
            c.pool = pool;
        }
    })
}

/// `evrpc_request_set_cb`: the callback of a request not done yet.
#[no_mangle]
pub unsafe extern "C" fn evrpc_request_set_cb(
    ctx: *mut evrpc_request_wrapper,
    cb: evrpc_cb,
    cb_arg: *mut c_void,
) {
    guard((), || {
        // SAFETY: NULL or a live request (C's contract).
        if let Some(c) = unsafe { ctx.as_mut() } {
            c.cb = cb;
            c.cb_arg = cb_arg;
        }
    })
}

/// `evrpc_make_request`: sends `ctx` on a free connection of its pool, or queues it in the pool
/// until one is free. 0, or -1 without a live pool.
#[no_mangle]
pub unsafe extern "C" fn evrpc_make_request(ctx: *mut evrpc_request_wrapper) -> c_int {
    guard(-1, || {
        if ctx.is_null() {
            return -1;
        }
        // SAFETY: a live request.
        let pool = unsafe { (*ctx).pool };
        let Some(p) = checked_pool(pool, "evrpc_make_request") else {
            return -1;
        };
        // SAFETY: a live pool and request.
        unsafe {
            (*p).queue.push_back(ctx);
            schedule(p);
        }
        0
    })
}

/// `evrpc_send_request_generic` (what `EVRPC_GENERATE`'s functions call): makes and sends a
/// request; on failure the callback gets `EVRPC_STATUS_ERR_UNSTARTED` at once and -1 is returned.
#[no_mangle]
pub unsafe extern "C" fn evrpc_send_request_generic(
    pool: *mut evrpc_pool,
    request: *mut c_void,
    reply: *mut c_void,
    cb: evrpc_cb,
    cb_arg: *mut c_void,
    rpcname: *const c_char,
    req_marshal: Option<unsafe extern "C" fn(*mut evbuffer, *mut c_void)>,
    rpl_clear: Option<unsafe extern "C" fn(*mut c_void)>,
    rpl_unmarshal: Option<unsafe extern "C" fn(*mut c_void, *mut evbuffer) -> c_int>,
) -> c_int {
    guard(-1, || {
        // SAFETY: forwarded with the caller's contract.
        unsafe {
            let ctx = if checked_pool(pool, "evrpc_send_request_generic").is_some() {
                evrpc_make_request_ctx(
                    pool,
                    request,
                    reply,
                    rpcname,
                    req_marshal,
                    rpl_clear,
                    rpl_unmarshal,
                    cb,
                    cb_arg,
                )
            } else {
                ptr::null_mut()
            };
            if ctx.is_null() {
                let mut status = evrpc_status {
                    error: EVRPC_STATUS_ERR_UNSTARTED,
                    http_req: ptr::null_mut(),
                };
                if let Some(cb) = cb {
                    cb(&mut status, request, reply, cb_arg);
                }
                return -1;
            }
            evrpc_make_request(ctx)
        }
    })
}

/// Sends queued requests on the pool's free connections.
///
/// # Safety
/// `p` is a live pool.
unsafe fn schedule(p: *mut evrpc_pool) {
    // SAFETY: the caller's contract; a callback run by `start` may free the pool: it is checked
    // again each round.
    unsafe {
        while pool_live(p) && !(*p).queue.is_empty() {
            let Some(i) = (*p).conns.iter().position(|(_, busy)| !busy) else {
                return;
            };
            let Some(ctx) = (*p).queue.pop_front() else {
                return;
            };
            let conns = &mut (*p).conns;
            conns[i].1 = true;
            let evcon = conns[i].0;
            (*p).started.push(ctx);
            start(p, evcon, ctx);
        }
    }
}

/// Marks `evcon` free again in pool `p`.
///
/// # Safety
/// `p` is NULL or a pool (checked).
unsafe fn release_conn(p: *mut evrpc_pool, evcon: *mut evhttp_connection) {
    if !pool_live(p) {
        return;
    }
    // SAFETY: live (checked).
    unsafe {
        if let Some(c) = (*p).conns.iter_mut().find(|(c, _)| *c == evcon) {
            c.1 = false;
        }
    }
}

/// Takes request `ctx` out of its pool and frees its connection for the next request.
///
/// # Safety
/// `ctx` is a live request.
unsafe fn detach(
    p: *mut evrpc_pool,
    ctx: *mut evrpc_request_wrapper,
    evcon: *mut evhttp_connection,
) {
    // SAFETY: the caller's contract.
    unsafe {
        if pool_live(p) {
            (*p).started.retain(|&c| c != ctx);
            (*p).queue.retain(|&c| c != ctx);
        }
        release_conn(p, evcon);
        (*ctx).pool = ptr::null_mut();
    }
}

/// Ends request `ctx` without sending it: the callback gets `error` (no HTTP request).
///
/// # Safety
/// `ctx` is a live request of live pool `p`.
unsafe fn abort(p: *mut evrpc_pool, ctx: *mut evrpc_request_wrapper, error: c_int) {
    // SAFETY: the caller's contract.
    unsafe {
        let evcon = (*ctx).evcon;
        if !(*ctx).req.is_null() {
            evhttp_request_free((*ctx).req);
            (*ctx).req = ptr::null_mut();
        }
        let mut status = evrpc_status {
            error,
            http_req: ptr::null_mut(),
        };
        // Out of the pool before the callback, which may free the pool.
        detach(p, ctx, evcon);
        if let Some(cb) = (*ctx).cb {
            cb(&mut status, (*ctx).request, (*ctx).reply, (*ctx).cb_arg);
        }
        free_wrapper(ctx);
        if pool_live(p) {
            schedule(p);
        }
    }
}

/// Marshals request `ctx` into a new HTTP request for `evcon` and runs the output hooks.
///
/// # Safety
/// Live pool, connection and request.
unsafe fn start(
    p: *mut evrpc_pool,
    evcon: *mut evhttp_connection,
    ctx: *mut evrpc_request_wrapper,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let req = evhttp_request_new(Some(reply_cb), ctx.cast());
        if req.is_null() {
            abort(p, ctx, EVRPC_STATUS_ERR_UNSTARTED);
            return;
        }
        if let Some(m) = (*ctx).request_marshal {
            m((*req).output_buffer, (*ctx).request);
        }
        (*ctx).evcon = evcon;
        (*ctx).req = req;
        let hooks = ptr::addr_of_mut!((*p).hooks);
        if !(*hooks).output.is_empty() {
            associate_meta(ptr::addr_of_mut!((*ctx).hook_meta), evcon);
            match run_hooks(hooks, EVRPC_OUTPUT, ctx.cast(), req, (*req).output_buffer) {
                EVRPC_CONTINUE => {}
                EVRPC_PAUSE => {
                    pause(hooks, ctx.cast(), client_output_then);
                    return;
                }
                _ => {
                    abort(p, ctx, EVRPC_STATUS_ERR_UNSTARTED);
                    return;
                }
            }
        }
        client_output_then(ctx.cast(), EVRPC_CONTINUE);
    }
}

/// After the client's output hooks: the POST goes out, with the pool's timeout.
unsafe fn client_output_then(c: *mut c_void, res: c_int) {
    let ctx = c.cast::<evrpc_request_wrapper>();
    // SAFETY: a live request of a live pool (the pool frees its paused requests' entries).
    unsafe {
        let p = (*ctx).pool;
        if res == EVRPC_TERMINATE {
            abort(p, ctx, EVRPC_STATUS_ERR_UNSTARTED);
            return;
        }
        if (*p).timeout > 0 {
            let cbase = (*(*ctx).evcon).cbase;
            (*ctx).timer = event_new(cbase, -1, 0, Some(on_timeout), ctx.cast());
            let tv = timeval {
                tv_sec: libc::time_t::from((*p).timeout),
                tv_usec: 0,
            };
            if !(*ctx).timer.is_null() {
                event_add((*ctx).timer, &tv);
            }
        }
        let path = rpc_path(&(*ctx).name);
        let req = (*ctx).req;
        if evhttp_make_request((*ctx).evcon, req, EVHTTP_REQ_POST, path.as_ptr().cast()) != 0 {
            // evhttp_make_request freed the request.
            (*ctx).req = ptr::null_mut();
            abort(p, ctx, EVRPC_STATUS_ERR_UNSTARTED);
        }
    }
}

/// The pool's timeout passed: the HTTP request is cancelled and the RPC fails with
/// `EVRPC_STATUS_ERR_TIMEOUT`.
unsafe extern "C" fn on_timeout(_fd: c_int, _what: c_short, arg: *mut c_void) {
    let ctx = arg.cast::<evrpc_request_wrapper>();
    // SAFETY: the timer is freed with its request, so the request is live.
    unsafe {
        let req = std::mem::replace(&mut (*ctx).req, ptr::null_mut());
        if !req.is_null() {
            evhttp_cancel_request(req);
        }
        reply_then(ctx.cast(), EVRPC_CONTINUE);
    }
}

/// The HTTP response (or NULL: the request failed).
unsafe extern "C" fn reply_cb(req: *mut evhttp_request, arg: *mut c_void) {
    let ctx = arg.cast::<evrpc_request_wrapper>();
    // SAFETY: the request's context is live while its HTTP request is (the pool frees both).
    unsafe {
        if !(*ctx).timer.is_null() {
            event_del((*ctx).timer);
        }
        (*ctx).req = req;
        let p = (*ctx).pool;
        let hooks = ptr::addr_of_mut!((*p).hooks);
        if !req.is_null() && !(*hooks).input.is_empty() {
            associate_meta(ptr::addr_of_mut!((*ctx).hook_meta), (*ctx).evcon);
            match run_hooks(hooks, EVRPC_INPUT, ctx.cast(), req, (*req).input_buffer) {
                EVRPC_PAUSE => {
                    // The HTTP layer frees the request after this callback: it is kept.
                    evhttp_request_own(req);
                    pause(hooks, ctx.cast(), reply_then);
                    return;
                }
                res => {
                    reply_then(ctx.cast(), res);
                    return;
                }
            }
        }
        reply_then(ctx.cast(), EVRPC_CONTINUE);
    }
}

/// After the client's input hooks: unmarshal, the program's callback, then the next request.
unsafe fn reply_then(c: *mut c_void, res: c_int) {
    let ctx = c.cast::<evrpc_request_wrapper>();
    // SAFETY: a live request of a live pool.
    unsafe {
        let (p, req, evcon) = ((*ctx).pool, (*ctx).req, (*ctx).evcon);
        let mut status = evrpc_status {
            error: EVRPC_STATUS_ERR_NONE,
            http_req: req,
        };
        let mut ok = false;
        if req.is_null() {
            status.error = EVRPC_STATUS_ERR_TIMEOUT;
        } else if res == EVRPC_TERMINATE {
            status.error = EVRPC_STATUS_ERR_HOOKABORTED;
        } else {
            ok = (*ctx)
                .reply_unmarshal
                .is_some_and(|u| u((*ctx).reply, (*req).input_buffer) != -1);
            if !ok {
                status.error = EVRPC_STATUS_ERR_BADPAYLOAD;
            }
        }
        if !ok {
            // What a failed unmarshal may have left in the reply goes.
            if let Some(clear) = (*ctx).reply_clear {
                clear((*ctx).reply);
            }
        }
        detach(p, ctx, evcon);
        if let Some(cb) = (*ctx).cb {
            cb(&mut status, (*ctx).request, (*ctx).reply, (*ctx).cb_arg);
        }
        // A response kept over a pause is this module's to free.
        if !req.is_null() && (*req).flags & EVHTTP_USER_OWNED != 0 {
            evhttp_request_free(req);
        }
        (*ctx).req = ptr::null_mut();
        free_wrapper(ctx);
        if pool_live(p) {
            schedule(p);
        }
    }
}
