//! `event2/bufferevent.h`, `event2/bufferevent_compat.h` and the public `struct bufferevent` of
//! `event2/bufferevent_struct.h`: socket, pair and filter bufferevents, their callbacks,
//! watermarks, timeouts, reference counts and rate limits, over revent's [`BufferEvent`].
//!
//! # The struct
//! `struct bufferevent` is libevent's 392-byte struct, allocated with [`mem::malloc`]. Programs read
//! `input`/`output` (tmux, 21 call sites), and some write `wm_read.high`, the callbacks, `cbarg` or
//! the timeouts directly, so every field keeps libevent's offset (checked at compile time below).
//! `ev_base` holds what libevent keeps there (the base given at creation: NULL for
//! `bufferevent_new`, as in libevent). The revent side lives in a `Private` record that the
//! `be_ops` word points to: in libevent that word points to an internal table of functions no
//! program can name, so no program reads it. `ev_read` and `ev_write` are not used for revent's
//! state: they stay uninitialized events (flags 0), so a program that passes `&bev->ev_read` to
//! `event_pending` or `event_initialized` gets "not pending" instead of revent misreading bytes as
//! an event; their `ev_fd` and `ev_base` words are filled for old code that reads
//! `bev->ev_read.ev_fd`.
//!
//! # Fields C writes directly
//! libevent keeps its state in the struct, so a direct write takes effect the next time libevent
//! consults the field. revent keeps watermarks and timeouts in the Rust bufferevent, so the C
//! fields are *synced in* (`sync_in`): the watermarks, timeouts and which callbacks are set are
//! compared with the values last pushed (a few loads and compares; the Rust setters run only for
//! what changed), at
//! - every `bufferevent_*` call on the bufferevent, before it acts;
//! - just before and just after each of its C callbacks (a callback that raises `wm_read.high` of
//!   its own bufferevent affects the next read);
//! - the start of every `event_base_loop`/`event_base_dispatch` of its base, for all of that base's
//!   bufferevents (so `bufferevent_enable(); bev->wm_read.high = 4096; event_dispatch();` works).
//!
//! The callbacks and `cbarg` themselves are read from the struct when a callback is about to run.
//! What this does not cover: a direct write to bufferevent A made from code that is neither a call
//! on A nor a callback of A, during a running loop (a timer callback that writes
//! `a->wm_read.high`), takes effect at A's next callback or API call rather than at A's next read.
//! Covering it would cost a scan of every bufferevent after every callback.
//!
//! # Callbacks and lifetime
//! The Rust bufferevent's read, write and event callbacks are trampolines that call the C callback
//! through `base::call_out` with the struct's pointer, so C may re-enter the base. Each
//! bufferevent has a reference count (`bufferevent_incref`/`decref`): it starts at 1,
//! `bufferevent_free` clears the callbacks and drops that reference, and a trampoline (and every
//! API call) holds one while C runs, so `bufferevent_free` inside the bufferevent's own callback
//! frees it when the callback returns. The Rust bufferevent and the struct are freed together.
//!
//! # Sockets
//! revent's `BufferEvent::socket` takes an `OwnedFd`, but the C program owns its fd. revent is never
//! given CLOSE_ON_FREE: it hands the socket back on `free` and `set_fd`, and this layer closes it
//! (C's `BEV_OPT_CLOSE_ON_FREE`) or forgets it with `into_raw_fd`, leaving it open as libevent does.

use crate::base::{self, call_out, with_base, CBase};
use crate::{evutil_socket_t, guard, mem};
use libc::{c_int, c_short, c_void, size_t, sockaddr, socklen_t, timeval};
use revent::{
    BevOptions, BufferEvent, Evbuffer, EventBase, FilterFn, FilterResult, FlushMode, RateLimit,
    RateLimitGroup, What,
};
use std::collections::HashSet;
use std::ffi::CStr;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::ptr::{self, addr_of, addr_of_mut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// `bufferevent_data_cb`.
pub type bufferevent_data_cb = Option<unsafe extern "C" fn(*mut bufferevent, *mut c_void)>;
/// `bufferevent_event_cb`.
pub type bufferevent_event_cb =
    Option<unsafe extern "C" fn(*mut bufferevent, c_short, *mut c_void)>;
/// `bufferevent_filter_cb`: `(src, dst, dst_limit, mode, ctx)`, returning a
/// `enum bufferevent_filter_result`.
pub type bufferevent_filter_cb =
    Option<unsafe extern "C" fn(*mut Evbuffer, *mut Evbuffer, isize, c_int, *mut c_void) -> c_int>;
/// The `free_context` argument of `bufferevent_filter_new`.
pub type free_context_fn = Option<unsafe extern "C" fn(*mut c_void)>;

/// `struct event_watermark`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct event_watermark {
    pub low: size_t,
    pub high: size_t,
}

/// What stands in `ev_read`/`ev_write`: 128 bytes of which only `ev_fd` (56) and `ev_base` (64)
/// are filled; the flags word (16) stays 0, so the event functions see an uninitialized event.
#[repr(C)]
struct EventShadow {
    _head: [u64; 7],
    fd: c_int,
    _pad: u32,
    base: *mut CBase,
    _tail: [u64; 7],
}

/// libevent 2.1's `struct bufferevent` on x86_64.
#[repr(C)]
pub struct bufferevent {
    ev_base: *mut CBase,
    /// libevent's `be_ops`; here the revent side, [`Private`].
    be_ops: *mut Private,
    ev_read: EventShadow,
    ev_write: EventShadow,
    input: *mut Evbuffer,
    output: *mut Evbuffer,
    wm_read: event_watermark,
    wm_write: event_watermark,
    readcb: bufferevent_data_cb,
    writecb: bufferevent_data_cb,
    errorcb: bufferevent_event_cb,
    cbarg: *mut c_void,
    timeout_read: timeval,
    timeout_write: timeval,
    enabled: c_short,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<EventShadow>() == 128);
    assert!(offset_of!(EventShadow, fd) == 56);
    assert!(offset_of!(EventShadow, base) == 64);
    assert!(size_of::<bufferevent>() == 392);
    assert!(offset_of!(bufferevent, ev_base) == 0);
    assert!(offset_of!(bufferevent, be_ops) == 8);
    assert!(offset_of!(bufferevent, ev_read) == 16);
    assert!(offset_of!(bufferevent, ev_write) == 144);
    assert!(offset_of!(bufferevent, input) == 272);
    assert!(offset_of!(bufferevent, output) == 280);
    assert!(offset_of!(bufferevent, wm_read) == 288);
    assert!(offset_of!(bufferevent, wm_write) == 304);
    assert!(offset_of!(bufferevent, readcb) == 320);
    assert!(offset_of!(bufferevent, writecb) == 328);
    assert!(offset_of!(bufferevent, errorcb) == 336);
    assert!(offset_of!(bufferevent, cbarg) == 344);
    assert!(offset_of!(bufferevent, timeout_read) == 352);
    assert!(offset_of!(bufferevent, timeout_write) == 368);
    assert!(offset_of!(bufferevent, enabled) == 384);
};

// libevent's constants.
const EV_READ: c_short = 0x02;
const EV_WRITE: c_short = 0x04;
const BEV_OPT_CLOSE_ON_FREE: c_int = 0x01;
const BEV_OPT_DEFER_CALLBACKS: c_int = 0x04;
const BEV_TRIG_IGNORE_WATERMARKS: c_int = 1 << 16;
const BEV_TRIG_DEFER_CALLBACKS: c_int = BEV_OPT_DEFER_CALLBACKS;
const BEV_EVENT_ERROR: c_short = 0x20;
const BEV_EVENT_CONNECTED: c_short = 0x80;
/// libevent's default for the single-read and single-write caps.
const MAX_SINGLE_DEFAULT: isize = 16384;
/// Marks a [`Private`] (a pointer that is not one of ours fails the check).
const MAGIC: u64 = 0x7265_7665_6e74_4256;

// Struct field access through raw pointers only: the C program holds pointers to the struct too.
macro_rules! get {
    ($p:expr, $($f:ident).+) => {{
        #[allow(unused_unsafe)]
        // SAFETY: callers pass a pointer to a live struct bufferevent (the C API's contract, or
        // one of ours whose Rust side is live).
        let v = unsafe { ptr::read(addr_of!((*$p).$($f).+)) };
        v
    }};
}
macro_rules! set {
    ($p:expr, $($f:ident).+, $v:expr) => {{
        #[allow(unused_unsafe)]
        // SAFETY: as in `get!`; the struct is writable.
        unsafe {
            ptr::write(addr_of_mut!((*$p).$($f).+), $v)
        }
    }};
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Socket,
    Pair,
    Filter,
    /// `bufferevent_openssl_socket_new` (see [`crate::openssl`]): a socket as far as the fd
    /// functions go.
    TlsSocket,
    /// `bufferevent_openssl_filter_new`: over an underlying bufferevent, as a filter.
    TlsFilter,
}

/// The C-writable fields as last pushed into the Rust bufferevent.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Synced {
    wm_read: (usize, usize),
    wm_write: (usize, usize),
    timeout_read: (i64, i64),
    timeout_write: (i64, i64),
}

impl Synced {
    fn read(bev: *mut bufferevent) -> Synced {
        let tr: timeval = get!(bev, timeout_read);
        let tw: timeval = get!(bev, timeout_write);
        Synced {
            wm_read: (get!(bev, wm_read.low), get!(bev, wm_read.high)),
            wm_write: (get!(bev, wm_write.low), get!(bev, wm_write.high)),
            timeout_read: (tr.tv_sec, tr.tv_usec),
            timeout_write: (tw.tv_sec, tw.tv_usec),
        }
    }
}

/// The revent side of a `struct bufferevent` (from `Box::into_raw`; C never sees inside it).
struct Private {
    magic: u64,
    /// The base the Rust bufferevent lives in: the one given, or the 1.x current base. Null until
    /// `bufferevent_base_set` for a bufferevent made with no base at all.
    cbase: *mut CBase,
    /// The Rust bufferevent (None until there is a base).
    h: Option<BufferEvent>,
    kind: Kind,
    /// The BEV_OPT_* flags as C gave them (revent gets them without CLOSE_ON_FREE).
    options: c_int,
    refcnt: u32,
    /// A socket bufferevent's fd while it has no base yet.
    fd_before_base: evutil_socket_t,
    synced: Synced,
    /// Which of the read, write and event trampolines are set on the Rust side.
    installed: [bool; 3],
    /// The filter stacked on this bufferevent: it owns this one's Rust callbacks.
    upper: *mut bufferevent,
    /// A pair's other end (null once it is freed).
    partner: *mut bufferevent,
    /// A filter's underlying bufferevent (a reference to it is held).
    underlying: *mut bufferevent,
    filter_ctx: *mut c_void,
    free_context: free_context_fn,
    dns_error: c_int,
    rate_cfg: *const ev_token_bucket_cfg,
    /// The numbers of `rate_cfg` when it was set (the program may free its configuration).
    rate_limit: Option<RateLimit>,
    group: *mut bufferevent_rate_limit_group,
    max_single_read: isize,
    max_single_write: isize,
    priority: c_int,
    /// A TLS bufferevent's `SSL *`, as the program handed it in (null for other kinds).
    ssl: *mut c_void,
}

/// The `Private` of `bev`, checked; a warning naming `what` for anything else.
fn private(bev: *mut bufferevent, what: &str) -> Option<*mut Private> {
    if bev.is_null() {
        log::warn!("{what}: NULL bufferevent");
        return None;
    }
    let p = get!(bev, be_ops);
    // SAFETY: `p` is null or a Private of ours (the struct is one of ours, C's contract); only the
    // magic word is read.
    if p.is_null() || unsafe { ptr::read(addr_of!((*p).magic)) } != MAGIC {
        log::warn!("{what}: not a live bufferevent");
        return None;
    }
    Some(p)
}

/// A short-lived reference to a `Private`.
///
/// Callers never keep it across a call to C or across another call that takes one for the same
/// bufferevent: every use is a few field accesses.
#[allow(clippy::mut_from_ref)]
fn pv<'a>(p: *mut Private) -> &'a mut Private {
    // SAFETY: `p` came from `private` (a live Private from Box::into_raw), the base's thread is the
    // only one using it, and callers keep the reference short (see above).
    unsafe { &mut *p }
}

// ---- the base's bufferevents, for the loop-start sync ----

/// The bufferevents of a base (by address), so that `event_base_loop` can sync their C fields. A
/// field of [`CBase`]: a base with none costs its loop calls one relaxed load.
#[derive(Default)]
pub(crate) struct BaseBevs {
    /// How many are in `set`: read without the lock by `event_base_loop`.
    count: AtomicUsize,
    set: Mutex<HashSet<BevPtr>>,
}

/// A bufferevent's address in a `BaseBevs` set (a pointer, for its provenance: see `SendPtr`).
type BevPtr = crate::SendPtr<bufferevent>;

/// The bufferevent set of base `cbase`.
///
/// # Safety
/// `cbase` is a live base.
unsafe fn bevs_of<'a>(cbase: *mut CBase) -> &'a BaseBevs {
    // SAFETY: the caller's contract; a shared reference to this one field (Sync), apart from the
    // `EventBase` a running dispatcher may borrow mutably.
    unsafe { &*addr_of!((*cbase).bevs) }
}

impl BaseBevs {
    fn change(&self, f: impl FnOnce(&mut HashSet<BevPtr>)) {
        // A plain set of addresses: a panic elsewhere cannot leave it half-written.
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut set);
        self.count.store(set.len(), Ordering::Relaxed);
    }
}

fn register(cbase: *mut CBase, bev: *mut bufferevent) {
    // SAFETY: a bufferevent's base is live while the bufferevent is (C's contract).
    unsafe { bevs_of(cbase) }.change(|s| {
        s.insert(BevPtr::new(bev));
    });
}

fn unregister(cbase: *mut CBase, bev: *mut bufferevent) {
    // SAFETY: as in `register`.
    unsafe { bevs_of(cbase) }.change(|s| {
        s.remove(&BevPtr::new(bev));
    });
}

/// Called by `event_base_loop` before it runs, holding the base: pushes the C-visible fields of
/// every bufferevent of `b` into revent (see the module docs).
///
/// # Safety
/// `b` is a live base and `base` its Rust base, which this thread holds.
#[inline]
pub unsafe fn before_loop(b: *mut CBase, base: &mut EventBase) {
    // SAFETY: the caller's contract.
    let bevs = unsafe { bevs_of(b) };
    if bevs.count.load(Ordering::Relaxed) == 0 {
        return;
    }
    sync_all(bevs, base);
}

#[cold]
#[inline(never)]
fn sync_all(bevs: &BaseBevs, base: &mut EventBase) {
    // Copied out: nothing below runs C code, but the lock is not held across revent's setters all
    // the same.
    let list: Vec<BevPtr> = {
        let set = bevs.set.lock().unwrap_or_else(|e| e.into_inner());
        set.iter().copied().collect()
    };
    // The set holds only live bufferevents of this base (each leaves it when freed).
    for bev in list {
        let bev = bev.get();
        let p = get!(bev, be_ops);
        sync_in(base, bev, p);
        tls_after_c(base, p);
    }
}

// ---- keeping the C fields and the Rust bufferevent in step ----

fn duration_of(t: (i64, i64)) -> Option<Duration> {
    (t != (0, 0)).then(|| {
        base::duration(&timeval {
            tv_sec: t.0,
            tv_usec: t.1,
        })
    })
}

/// Pushes what C may have written into the struct (watermarks, timeouts, which callbacks are set)
/// into the Rust bufferevent, if it changed since the last push. The check is inlined (a few loads
/// and compares, run around every callback); the push is not.
#[inline]
fn sync_in(b: &mut EventBase, bev: *mut bufferevent, p: *mut Private) {
    let pr = pv(p);
    if pr.h.is_none() {
        return;
    }
    if Synced::read(bev) == pr.synced && (!pr.upper.is_null() || wanted(bev) == pr.installed) {
        return;
    }
    sync_changed(b, bev, p);
}

/// Which C callbacks the struct has (read, write, event).
#[inline]
fn wanted(bev: *mut bufferevent) -> [bool; 3] {
    [
        get!(bev, readcb).is_some(),
        get!(bev, writecb).is_some(),
        get!(bev, errorcb).is_some(),
    ]
}

/// [`sync_in`]'s push, for a struct that changed.
#[inline(never)]
fn sync_changed(b: &mut EventBase, bev: *mut bufferevent, p: *mut Private) {
    let pr = pv(p);
    let Some(h) = pr.h else { return };
    let now = Synced::read(bev);
    if now != pr.synced {
        let old = pr.synced;
        if now.wm_read != old.wm_read {
            let _ = h.set_watermark(b, What::READ, now.wm_read.0, now.wm_read.1);
        }
        if now.wm_write != old.wm_write {
            let _ = h.set_watermark(b, What::WRITE, now.wm_write.0, now.wm_write.1);
        }
        if (now.timeout_read, now.timeout_write) != (old.timeout_read, old.timeout_write) {
            let _ = h.set_timeouts(
                b,
                duration_of(now.timeout_read),
                duration_of(now.timeout_write),
            );
        }
        pr.synced = now;
    }
    // A filter on top owns this bufferevent's Rust callbacks.
    if !pr.upper.is_null() {
        return;
    }
    let want = wanted(bev);
    if want == pr.installed {
        return;
    }
    let had = pr.installed;
    pr.installed = want;
    // Only the slots that change are touched: a trampoline that is running stays in place.
    if want[0] != had[0] {
        let _ = if want[0] {
            h.set_read_cb(b, move |b, h| trampoline(b, h, bev, CCall::Read))
        } else {
            h.clear_read_cb(b)
        };
    }
    if want[1] != had[1] {
        let _ = if want[1] {
            h.set_write_cb(b, move |b, h| trampoline(b, h, bev, CCall::Write))
        } else {
            h.clear_write_cb(b)
        };
    }
    if want[2] != had[2] {
        let _ = if want[2] {
            h.set_event_cb(b, move |b, h, what| {
                trampoline(b, h, bev, CCall::Event(what.bits() as c_short, None))
            })
        } else {
            h.clear_event_cb(b)
        };
    }
}

/// Refreshes the C-visible `enabled` from revent (EOF, errors and timeouts disable directions).
fn publish(b: &mut EventBase, bev: *mut bufferevent, p: *mut Private) {
    if let Some(h) = pv(p).h {
        if let Ok(w) = h.enabled(b) {
            set!(bev, enabled, w.bits() as c_short);
        }
    }
}

/// Which C callback to run.
#[derive(Clone, Copy)]
enum CCall {
    Read,
    Write,
    /// The event callback with these BEV_EVENT_* flags, and the errno to show it (None: revent's).
    Event(c_short, Option<c_int>),
}

/// A Rust callback of the bufferevent: runs the C one, if the struct still stands for `h`.
fn trampoline(b: &mut EventBase, h: BufferEvent, bev: *mut bufferevent, which: CCall) {
    // While revent runs a callback of `h`, `h` is live, and the struct lives as long as its Rust
    // bufferevent; after `bufferevent_base_set` moved it, the struct stands for another one.
    let p = get!(bev, be_ops);
    if p.is_null() || pv(p).h != Some(h) {
        return;
    }
    run_c(b, bev, p, which);
}

/// Calls the C callback `which` of `bev` (read from the struct now), holding a reference so that
/// the callback may free the bufferevent.
fn run_c(b: &mut EventBase, bev: *mut bufferevent, p: *mut Private, which: CCall) {
    pv(p).refcnt += 1;
    sync_in(b, bev, p);
    publish(b, bev, p);
    let (cbase, h) = (pv(p).cbase, pv(p).h);
    let arg = get!(bev, cbarg);
    match which {
        CCall::Read | CCall::Write => {
            let cb = if let CCall::Read = which {
                get!(bev, readcb)
            } else {
                get!(bev, writecb)
            };
            if let Some(cb) = cb {
                // SAFETY: the program's callback with the bufferevent and its argument; `cbase`
                // is the bufferevent's base, whose Rust base `b` runs this callback here.
                unsafe { call_out(cbase, b, || cb(bev, arg)) };
            }
        }
        CCall::Event(what, errno) => {
            if let Some(cb) = get!(bev, errorcb) {
                // libevent's callers read the error with EVUTIL_SOCKET_ERROR() (errno).
                let errno = errno.or_else(|| {
                    (what & BEV_EVENT_ERROR != 0)
                        .then(|| h.and_then(|h| h.error(b)).and_then(|e| e.raw_os_error()))
                        .flatten()
                });
                let call = || {
                    if let Some(e) = errno {
                        set_errno(e);
                    }
                    // SAFETY: the program's callback with the bufferevent, what happened and its
                    // argument.
                    unsafe { cb(bev, what, arg) }
                };
                // SAFETY: as above.
                unsafe { call_out(cbase, b, call) };
            }
        }
    }
    tls_after_c(b, p);
    if release(Some(&mut *b), bev, p) {
        sync_in(b, bev, p);
        publish(b, bev, p);
    }
}

fn set_errno(e: c_int) {
    // SAFETY: errno is this thread's; writing an int to it is what C does.
    unsafe { *libc::__errno_location() = e };
}

/// Runs `which` now, or from the loop when `defer` (a zero-timeout once event); either way only
/// while the struct still stands for `h`.
fn fire(b: &mut EventBase, bev: *mut bufferevent, p: *mut Private, which: CCall, defer: bool) {
    if !defer {
        run_c(b, bev, p, which);
        return;
    }
    let Some(h) = pv(p).h else { return };
    let _ = b.once(-1, What::NONE, Some(Duration::ZERO), move |b, _| {
        // A stale handle means the struct was freed (or moved on): it is not touched then.
        if h.enabled(b).is_ok() {
            trampoline(b, h, bev, which);
        }
    });
}

/// Drops one reference; at zero the bufferevent is freed. Returns whether it is still alive.
fn release(b: Option<&mut EventBase>, bev: *mut bufferevent, p: *mut Private) -> bool {
    let pr = pv(p);
    pr.refcnt = pr.refcnt.saturating_sub(1);
    if pr.refcnt > 0 {
        return true;
    }
    destroy(b, bev, p);
    false
}

/// `bufferevent_free`'s work: no more callbacks, and the program's reference goes.
fn free_in(mut b: Option<&mut EventBase>, bev: *mut bufferevent, p: *mut Private) {
    set!(bev, readcb, None);
    set!(bev, writecb, None);
    set!(bev, errorcb, None);
    if let Some(b) = b.as_deref_mut() {
        sync_in(b, bev, p);
    }
    release(b, bev, p);
}

/// Frees the Rust bufferevent, the struct and the `Private`, and tells those that point at it.
fn destroy(mut b: Option<&mut EventBase>, bev: *mut bufferevent, p: *mut Private) {
    // SAFETY: `p` is the live Private of `bev` from Box::into_raw, and this is its last use: the
    // refcount reached zero.
    let pr = unsafe { Box::from_raw(p) };
    set!(bev, be_ops, ptr::null_mut());
    if !pr.cbase.is_null() {
        unregister(pr.cbase, bev);
    }
    if !pr.group.is_null() {
        // SAFETY: a member's group pointer is cleared when the group is freed, so it is live.
        unsafe { (*pr.group).members.retain(|&m| m != bev) };
    }
    let close = pr.options & BEV_OPT_CLOSE_ON_FREE != 0;
    match (pr.h, b.as_deref_mut()) {
        (Some(h), Some(b)) => {
            if !close && matches!(pr.kind, Kind::TlsSocket | Kind::TlsFilter) {
                // The SSL stays the program's: no close_notify on its behalf.
                crate::openssl::keep_open(b, h);
            }
            if let Ok(Some(fd)) = h.free(b) {
                hand_back(fd, close);
            }
        }
        _ => {
            if close && pr.fd_before_base >= 0 {
                // SAFETY: BEV_OPT_CLOSE_ON_FREE: the program gave this fd to the bufferevent to
                // close, and nothing else uses it now.
                unsafe { libc::close(pr.fd_before_base) };
            }
        }
    }
    if !pr.partner.is_null() {
        let other = get!(pr.partner, be_ops);
        if !other.is_null() {
            pv(other).partner = ptr::null_mut();
        }
    }
    let under = pr.underlying;
    if !under.is_null() {
        let up = get!(under, be_ops);
        if !up.is_null() {
            // revent cleared the underlying bufferevent's callbacks; so does libevent.
            pv(up).upper = ptr::null_mut();
            pv(up).installed = [false; 3];
            set!(under, readcb, None);
            set!(under, writecb, None);
            set!(under, errorcb, None);
        }
    }
    // SAFETY: the struct came from mem::malloc in `new_struct`, and nothing refers to it now.
    unsafe { mem::free(bev.cast()) };
    // C code last, with the bookkeeping done: it may call back into the library.
    if let (Some(fc), Some(b)) = (pr.free_context, b.as_deref_mut()) {
        let ctx = pr.filter_ctx;
        // SAFETY: the program's free_context with its own context pointer; `b` is the Rust base
        // of `pr.cbase`, used on this thread now.
        unsafe { call_out(pr.cbase, b, || fc(ctx)) };
    }
    if !under.is_null() {
        let up = get!(under, be_ops);
        if !up.is_null() {
            // The filter's reference on the underlying bufferevent goes; with CLOSE_ON_FREE the
            // program's goes too (libevent's filter frees it). `under` is not read once freed.
            let alive = release(b.as_deref_mut(), under, up);
            if close && alive {
                release(b, under, up);
            }
        }
    }
}

/// A socket revent handed back: closed with C's CLOSE_ON_FREE, otherwise left open for its owner.
fn hand_back(fd: OwnedFd, close: bool) {
    if close {
        drop(fd);
    } else {
        let _ = fd.into_raw_fd();
    }
}

/// Runs `f` on the Rust bufferevent behind `bev`, after syncing the C fields in, holding a
/// reference (C callbacks that `f` runs may free the bufferevent), and refreshing `enabled` after.
/// None, with a warning naming `what`, for a bad pointer or a bufferevent without a base yet.
fn with_bev<R>(
    bev: *mut bufferevent,
    what: &str,
    f: impl FnOnce(&mut EventBase, BufferEvent, *mut Private) -> R,
) -> Option<R> {
    let p = private(bev, what)?;
    let (cbase, h) = (pv(p).cbase, pv(p).h);
    let Some(h) = h else {
        log::warn!("{what}: the bufferevent has no event base yet (bufferevent_base_set)");
        return None;
    };
    // SAFETY: the bufferevent's base is live while the bufferevent is (C's contract).
    unsafe {
        with_base(cbase, |b| {
            pv(p).refcnt += 1;
            sync_in(b, bev, p);
            let r = f(b, h, p);
            if release(Some(&mut *b), bev, p) {
                publish(b, bev, p);
            }
            r
        })
    }
}

// ---- creating ----

fn rust_options(options: c_int) -> BevOptions {
    // revent never closes what C owns: CLOSE_ON_FREE is this layer's business.
    BevOptions::from_bits_truncate(options as u32) - BevOptions::CLOSE_ON_FREE
}

/// A zeroed struct and its `Private`.
fn new_struct(kind: Kind, options: c_int, ev_base: *mut CBase) -> Option<*mut bufferevent> {
    let bev = mem::malloc(std::mem::size_of::<bufferevent>()).cast::<bufferevent>();
    if bev.is_null() {
        log::warn!("bufferevent: out of memory");
        return None;
    }
    // SAFETY: 392 fresh bytes: all-zero is a valid value of every field (null pointers, None
    // callbacks, zero numbers).
    unsafe { ptr::write_bytes(bev.cast::<u8>(), 0, std::mem::size_of::<bufferevent>()) };
    let p = Box::into_raw(Box::new(Private {
        magic: MAGIC,
        cbase: ptr::null_mut(),
        h: None,
        kind,
        options,
        refcnt: 1,
        fd_before_base: -1,
        synced: Synced::default(),
        installed: [false; 3],
        upper: ptr::null_mut(),
        partner: ptr::null_mut(),
        underlying: ptr::null_mut(),
        filter_ctx: ptr::null_mut(),
        free_context: None,
        dns_error: 0,
        rate_cfg: ptr::null(),
        rate_limit: None,
        group: ptr::null_mut(),
        max_single_read: MAX_SINGLE_DEFAULT,
        max_single_write: MAX_SINGLE_DEFAULT,
        priority: 0,
        ssl: ptr::null_mut(),
    }));
    set!(bev, be_ops, p);
    set!(bev, ev_base, ev_base);
    set!(bev, ev_read.fd, -1);
    set!(bev, ev_write.fd, -1);
    set!(bev, ev_read.base, ev_base);
    set!(bev, ev_write.base, ev_base);
    Some(bev)
}

/// Frees a struct whose Rust side could not be made.
fn discard(bev: *mut bufferevent) {
    let p = get!(bev, be_ops);
    // SAFETY: made by `new_struct` just now and never handed out.
    unsafe {
        drop(Box::from_raw(p));
        mem::free(bev.cast());
    }
}

/// Ties `bev` to its new Rust bufferevent `h` in `cbase`: buffers, callbacks, fields.
fn attach(
    b: &mut EventBase,
    cbase: *mut CBase,
    bev: *mut bufferevent,
    h: BufferEvent,
) -> revent::Result<()> {
    let p = get!(bev, be_ops);
    let (input, output) = h.buffer_ptrs(b)?;
    set!(bev, input, input.as_ptr());
    set!(bev, output, output.as_ptr());
    let pr = pv(p);
    pr.cbase = cbase;
    pr.h = Some(h);
    pr.priority = (b.priorities() / 2) as c_int;
    // Whatever the struct says is pushed in now: the watermarks, timeouts and callbacks C may have
    // set before there was a Rust side.
    pr.synced = Synced::default();
    pr.installed = [false; 3];
    sync_in(b, bev, p);
    publish(b, bev, p);
    apply_max_single(b, h, p);
    let fd = h.fd(b).unwrap_or(-1);
    set!(bev, ev_read.fd, fd);
    set!(bev, ev_write.fd, fd);
    register(cbase, bev);
    Ok(())
}

/// Whether revent can take `fd` without failing halfway (a failure would drop, and close, the
/// `OwnedFd` made from the program's fd): open, and within select's limit on a select base.
fn fd_acceptable(b: &EventBase, fd: evutil_socket_t) -> bool {
    // SAFETY: F_GETFD on any int is harmless.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        log::warn!("bufferevent: fd {fd} is not open");
        return false;
    }
    if b.method() == "select" && fd >= libc::FD_SETSIZE as c_int {
        log::warn!("bufferevent: fd {fd} is beyond select's limit");
        return false;
    }
    true
}

/// revent's view of the program's fd, which the program keeps owning.
///
/// # Safety
/// `fd` is open (checked by `fd_acceptable`) and owned by the C program. The `OwnedFd` goes only
/// to revent, which is never given CLOSE_ON_FREE: it hands the fd back (`free`, `set_fd`, then
/// [`hand_back`] closes it only for C's BEV_OPT_CLOSE_ON_FREE or forgets it) and leaves it open if
/// the base is dropped first. The one path where revent would drop it, a failure while installing
/// it (making it non-blocking, creating its events), is excluded by `fd_acceptable`.
unsafe fn adopt(fd: evutil_socket_t) -> Option<OwnedFd> {
    // SAFETY: the caller's contract.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A socket bufferevent on `cbase` for `bev`'s fd.
fn make_socket(
    cbase: *mut CBase,
    bev: *mut bufferevent,
    fd: evutil_socket_t,
    options: c_int,
) -> bool {
    make_on_fd(cbase, bev, fd, "bufferevent_socket_new", |b, owned| {
        BufferEvent::socket(b, owned, rust_options(options))
    })
}

/// A bufferevent on `cbase` for `bev`'s fd, made by `make` (which gets revent's view of the fd).
fn make_on_fd(
    cbase: *mut CBase,
    bev: *mut bufferevent,
    fd: evutil_socket_t,
    what: &str,
    make: impl FnOnce(&mut EventBase, Option<OwnedFd>) -> revent::Result<BufferEvent>,
) -> bool {
    let make = |b: &mut EventBase| {
        if fd >= 0 && !fd_acceptable(b, fd) {
            return false;
        }
        // SAFETY: checked just above; see `adopt`.
        let owned = unsafe { adopt(fd) };
        match make(b, owned) {
            Ok(h) => match attach(b, cbase, bev, h) {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("{what}: {e}");
                    if let Ok(Some(fd)) = h.free(b) {
                        hand_back(fd, false);
                    }
                    false
                }
            },
            Err(e) => {
                log::warn!("{what}: {e}");
                false
            }
        }
    };
    // SAFETY: `cbase` is a live base (the caller's, or the current one).
    (unsafe { with_base(cbase, make) }) == Some(true)
}

/// `bufferevent_socket_new`: a bufferevent on a socket (or, with `fd` -1, on none yet). With a NULL
/// base it uses the 1.x current base, as libevent's events do (`bufferevent_get_base` then returns
/// NULL, as in libevent); with no current base either, it waits for `bufferevent_base_set`, and
/// until then has no input or output buffer (libevent has them at once: here
/// `bufferevent_get_input`/`output`, reading and writing return NULL/-1 until the base is set).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_socket_new(
    base: *mut CBase,
    fd: evutil_socket_t,
    options: c_int,
) -> *mut bufferevent {
    guard(ptr::null_mut(), || {
        let cbase = if base.is_null() {
            base::current()
        } else {
            base
        };
        let Some(bev) = new_struct(Kind::Socket, options, base) else {
            return ptr::null_mut();
        };
        if cbase.is_null() {
            pv(get!(bev, be_ops)).fd_before_base = fd;
            set!(bev, ev_read.fd, fd);
            set!(bev, ev_write.fd, fd);
            return bev;
        }
        if make_socket(cbase, bev, fd, options) {
            bev
        } else {
            discard(bev);
            ptr::null_mut()
        }
    })
}

/// `bufferevent_new` (1.x): a socket bufferevent on the current base with these callbacks
/// (`bufferevent_socket_new(NULL, fd, 0)` then `bufferevent_setcb`).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_new(
    fd: evutil_socket_t,
    readcb: bufferevent_data_cb,
    writecb: bufferevent_data_cb,
    errorcb: bufferevent_event_cb,
    cbarg: *mut c_void,
) -> *mut bufferevent {
    // SAFETY: forwarded with the caller's contract.
    let bev = unsafe { bufferevent_socket_new(ptr::null_mut(), fd, 0) };
    if !bev.is_null() {
        // SAFETY: just made.
        unsafe { bufferevent_setcb(bev, readcb, writecb, errorcb, cbarg) };
    }
    bev
}

/// `bufferevent_base_set`: puts a socket bufferevent on `base`. A bufferevent made with no base
/// gets its Rust side now. One already on another base is moved: its socket, buffered data,
/// settings and callbacks go along, but its evbuffers are new ones, so evbuffer pointers taken
/// before the move (`bufferevent_get_input`, `bev->input`) must be fetched again (libevent keeps
/// them). Only socket bufferevents can do this (as in libevent).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_base_set(base: *mut CBase, bev: *mut bufferevent) -> c_int {
    guard(-1, || {
        let Some(p) = private(bev, "bufferevent_base_set") else {
            return -1;
        };
        if base.is_null() || pv(p).kind != Kind::Socket {
            log::warn!("bufferevent_base_set: needs a base and a socket bufferevent");
            return -1;
        }
        let (old, h, options) = (pv(p).cbase, pv(p).h, pv(p).options);
        match h {
            None => {
                let fd = pv(p).fd_before_base;
                if !make_socket(base, bev, fd, options) {
                    return -1;
                }
                pv(p).fd_before_base = -1;
            }
            Some(_) if old == base => {}
            Some(h) => {
                if move_base(bev, p, old, h, base).is_none() {
                    return -1;
                }
            }
        }
        set!(bev, ev_base, base);
        set!(bev, ev_read.base, base);
        set!(bev, ev_write.base, base);
        0
    })
}

/// Moves a socket bufferevent from base `old` to `new` (see `bufferevent_base_set`). If the new
/// side cannot be made, the bufferevent is left with no base (and no buffers), its socket with it.
fn move_base(
    bev: *mut bufferevent,
    p: *mut Private,
    old: *mut CBase,
    h: BufferEvent,
    new: *mut CBase,
) -> Option<()> {
    let mut input = Evbuffer::new();
    let mut output = Evbuffer::new();
    let take_out = |b: &mut EventBase| {
        sync_in(b, bev, p);
        let g = std::mem::replace(&mut pv(p).group, ptr::null_mut());
        if !g.is_null() {
            // Groups belong to one base: the bufferevent leaves its group.
            // SAFETY: a member's group is live (cleared when the group is freed).
            let grp = unsafe { &mut *g };
            let _ = grp.g.remove(b, h);
            grp.members.retain(|&m| m != bev);
        }
        let enabled = h.enabled(b).unwrap_or(What::NONE);
        if let Ok((i, o)) = h.buffers(b) {
            let _ = input.add_buffer(i);
            let _ = output.add_buffer(o);
        }
        let fd = h.set_fd(b, None).ok().flatten();
        let _ = h.free(b);
        (fd, enabled)
    };
    // SAFETY: the bufferevent's base is live (C's contract).
    let (fd, enabled) = unsafe { with_base(old, take_out) }?;
    unregister(old, bev);
    let pr = pv(p);
    pr.h = None;
    pr.cbase = ptr::null_mut();
    pr.fd_before_base = -1;
    let (pri, rate, options) = (pr.priority, pr.rate_limit, pr.options);
    set!(bev, input, ptr::null_mut());
    set!(bev, output, ptr::null_mut());
    let put_in = |b: &mut EventBase| {
        if let Some(raw) = fd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd) {
            if !fd_acceptable(b, raw) {
                // The socket stays with the bufferevent, which has no base now.
                pv(p).fd_before_base = fd.map_or(-1, IntoRawFd::into_raw_fd);
                return false;
            }
        }
        let new_h = match BufferEvent::socket(b, fd, rust_options(options)) {
            Ok(h) => h,
            Err(e) => {
                log::warn!("bufferevent_base_set: {e}");
                return false;
            }
        };
        if let Err(e) = attach(b, new, bev, new_h) {
            log::warn!("bufferevent_base_set: {e}");
            if let Ok(Some(fd)) = new_h.free(b) {
                pv(p).fd_before_base = fd.into_raw_fd();
            }
            pv(p).h = None;
            pv(p).cbase = ptr::null_mut();
            unregister(new, bev);
            return false;
        }
        if let Ok((i, o)) = new_h.buffers(b) {
            let _ = i.add_buffer(&mut input);
            let _ = o.add_buffer(&mut output);
        }
        let _ = new_h.enable(b, enabled);
        if (pri as usize) < b.priorities() {
            let _ = new_h.set_priority(b, pri as usize);
            pv(p).priority = pri;
        }
        if rate.is_some() {
            let _ = new_h.set_rate_limit(b, rate);
        }
        publish(b, bev, p);
        true
    };
    // SAFETY: the new base is live (C's contract).
    (unsafe { with_base(new, put_in) } == Some(true)).then_some(())
}

// ---- callbacks ----

/// `bufferevent_setcb`: the callbacks and their argument (NULL clears one). They are stored in the
/// struct and read from it whenever one is about to run.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_setcb(
    bev: *mut bufferevent,
    readcb: bufferevent_data_cb,
    writecb: bufferevent_data_cb,
    errorcb: bufferevent_event_cb,
    cbarg: *mut c_void,
) {
    guard((), || {
        let Some(p) = private(bev, "bufferevent_setcb") else {
            return;
        };
        set!(bev, readcb, readcb);
        set!(bev, writecb, writecb);
        set!(bev, errorcb, errorcb);
        set!(bev, cbarg, cbarg);
        if pv(p).h.is_some() {
            with_bev(bev, "bufferevent_setcb", |_, _, _| ());
        }
    })
}

/// `bufferevent_getcb`: the callbacks and argument, into the non-null out pointers.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_getcb(
    bev: *mut bufferevent,
    readcb_ptr: *mut bufferevent_data_cb,
    writecb_ptr: *mut bufferevent_data_cb,
    eventcb_ptr: *mut bufferevent_event_cb,
    cbarg_ptr: *mut *mut c_void,
) {
    guard((), || {
        if private(bev, "bufferevent_getcb").is_none() {
            return;
        }
        // SAFETY: each out pointer is null or writable (the caller's contract).
        unsafe {
            if !readcb_ptr.is_null() {
                readcb_ptr.write(get!(bev, readcb));
            }
            if !writecb_ptr.is_null() {
                writecb_ptr.write(get!(bev, writecb));
            }
            if !eventcb_ptr.is_null() {
                eventcb_ptr.write(get!(bev, errorcb));
            }
            if !cbarg_ptr.is_null() {
                cbarg_ptr.write(get!(bev, cbarg));
            }
        }
    })
}

// ---- freeing and references ----

/// `bufferevent_free`: clears the callbacks and drops the program's reference; the bufferevent is
/// freed now, or when the last `bufferevent_incref` reference (or the callback it is called from)
/// lets go. The socket is closed with BEV_OPT_CLOSE_ON_FREE and left open otherwise; pending
/// output gets one non-blocking write attempt first.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_free(bev: *mut bufferevent) {
    guard((), || {
        let Some(p) = private(bev, "bufferevent_free") else {
            return;
        };
        let (cbase, h) = (pv(p).cbase, pv(p).h);
        if h.is_some() {
            // SAFETY: the bufferevent's base is live.
            unsafe { with_base(cbase, |b| free_in(Some(b), bev, p)) };
        } else {
            free_in(None, bev, p);
        }
    })
}

/// `bufferevent_incref`: one more reference; `bufferevent_decref` (or `bufferevent_free`) drops it.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_incref(bev: *mut bufferevent) {
    guard((), || {
        if let Some(p) = private(bev, "bufferevent_incref") {
            pv(p).refcnt += 1;
        }
    })
}

/// `bufferevent_decref`: drops a reference; 1 if that freed the bufferevent, 0 if references
/// remain, -1 for a bad pointer.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_decref(bev: *mut bufferevent) -> c_int {
    guard(-1, || {
        let Some(p) = private(bev, "bufferevent_decref") else {
            return -1;
        };
        let (cbase, h) = (pv(p).cbase, pv(p).h);
        let alive = if h.is_some() {
            // SAFETY: the bufferevent's base is live.
            unsafe { with_base(cbase, |b| release(Some(b), bev, p)) }.unwrap_or(true)
        } else {
            release(None, bev, p)
        };
        (!alive) as c_int
    })
}

/// `bufferevent_lock`: a no-op. revent's bufferevents belong to their base's thread; the
/// BEV_OPT_THREADSAFE lock libevent takes here is not implemented (thread support lives in
/// `thread.h`'s functions).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_lock(bev: *mut bufferevent) {
    let _ = bev;
}

/// `bufferevent_unlock`: a no-op, as `bufferevent_lock`.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_unlock(bev: *mut bufferevent) {
    let _ = bev;
}

// ---- enabling, watermarks, timeouts ----

fn what_of(events: c_short) -> What {
    What::from_bits_truncate(events as u16) & (What::READ | What::WRITE)
}

/// `bufferevent_enable`: starts reading and/or writing (EV_READ, EV_WRITE). As in libevent, a
/// pending timeout starts over.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_enable(bev: *mut bufferevent, event: c_short) -> c_int {
    guard(-1, || {
        with_bev(bev, "bufferevent_enable", |b, h, p| {
            if h.enable(b, what_of(event)).is_err() {
                return -1;
            }
            let s = pv(p).synced;
            if s.timeout_read != (0, 0) || s.timeout_write != (0, 0) {
                let _ =
                    h.set_timeouts(b, duration_of(s.timeout_read), duration_of(s.timeout_write));
            }
            0
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_disable`: stops reading and/or writing.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_disable(bev: *mut bufferevent, event: c_short) -> c_int {
    guard(-1, || {
        with_bev(bev, "bufferevent_disable", |b, h, _| {
            h.disable(b, what_of(event)).map_or(-1, |()| 0)
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_get_enabled`: which of EV_READ and EV_WRITE are enabled.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_enabled(bev: *mut bufferevent) -> c_short {
    guard(0, || {
        let Some(p) = private(bev, "bufferevent_get_enabled") else {
            return 0;
        };
        if pv(p).h.is_none() {
            return get!(bev, enabled);
        }
        with_bev(bev, "bufferevent_get_enabled", |b, h, _| {
            h.enabled(b).map_or(0, |w| w.bits() as c_short)
        })
        .unwrap_or(0)
    })
}

/// `bufferevent_setwatermark`: the low and high watermarks of EV_READ and/or EV_WRITE, kept in the
/// struct (`wm_read`, `wm_write`), where the program may also write them.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_setwatermark(
    bev: *mut bufferevent,
    events: c_short,
    lowmark: size_t,
    highmark: size_t,
) {
    guard((), || {
        let Some(p) = private(bev, "bufferevent_setwatermark") else {
            return;
        };
        let wm = event_watermark {
            low: lowmark,
            high: highmark,
        };
        if events & EV_READ != 0 {
            set!(bev, wm_read, wm);
        }
        if events & EV_WRITE != 0 {
            set!(bev, wm_write, wm);
        }
        if pv(p).h.is_some() {
            with_bev(bev, "bufferevent_setwatermark", |_, _, _| ());
        }
    })
}

/// `bufferevent_getwatermark`: the watermarks of exactly one of EV_READ or EV_WRITE (-1 for
/// anything else), into the non-null out pointers.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_getwatermark(
    bev: *mut bufferevent,
    events: c_short,
    lowmark: *mut size_t,
    highmark: *mut size_t,
) -> c_int {
    guard(-1, || {
        if private(bev, "bufferevent_getwatermark").is_none() {
            return -1;
        }
        let wm: event_watermark = match events {
            EV_READ => get!(bev, wm_read),
            EV_WRITE => get!(bev, wm_write),
            _ => return -1,
        };
        // SAFETY: each out pointer is null or writable (the caller's contract).
        unsafe {
            if !lowmark.is_null() {
                lowmark.write(wm.low);
            }
            if !highmark.is_null() {
                highmark.write(wm.high);
            }
        }
        0
    })
}

/// `bufferevent_set_timeouts`: the read and write timeouts (NULL: none), kept in the struct. A
/// timeout reports BEV_EVENT_TIMEOUT with READING or WRITING and disables that direction.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_set_timeouts(
    bev: *mut bufferevent,
    timeout_read: *const timeval,
    timeout_write: *const timeval,
) -> c_int {
    guard(-1, || {
        let Some(p) = private(bev, "bufferevent_set_timeouts") else {
            return -1;
        };
        let zero = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: each is null or a readable timeval (the caller's contract).
        let (r, w) = unsafe {
            (
                timeout_read.as_ref().copied().unwrap_or(zero),
                timeout_write.as_ref().copied().unwrap_or(zero),
            )
        };
        set!(bev, timeout_read, r);
        set!(bev, timeout_write, w);
        if pv(p).h.is_some() {
            with_bev(bev, "bufferevent_set_timeouts", |_, _, _| 0).unwrap_or(-1)
        } else {
            0
        }
    })
}

/// `bufferevent_settimeout` (1.x): read and write timeouts in whole seconds (0: none).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_settimeout(
    bev: *mut bufferevent,
    timeout_read: c_int,
    timeout_write: c_int,
) {
    let tv = |s: c_int| timeval {
        tv_sec: s as libc::time_t,
        tv_usec: 0,
    };
    let (r, w) = (tv(timeout_read), tv(timeout_write));
    // SAFETY: forwarded with the caller's contract; the timevals are live locals.
    unsafe {
        bufferevent_set_timeouts(
            bev,
            if timeout_read != 0 { &r } else { ptr::null() },
            if timeout_write != 0 { &w } else { ptr::null() },
        )
    };
}

// ---- data ----

/// `bufferevent_get_input`: the input evbuffer (NULL before the bufferevent has a base).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_input(bev: *mut bufferevent) -> *mut Evbuffer {
    guard(ptr::null_mut(), || {
        private(bev, "bufferevent_get_input").map_or(ptr::null_mut(), |_| get!(bev, input))
    })
}

/// `bufferevent_get_output`: the output evbuffer (NULL before the bufferevent has a base).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_output(bev: *mut bufferevent) -> *mut Evbuffer {
    guard(ptr::null_mut(), || {
        private(bev, "bufferevent_get_output").map_or(ptr::null_mut(), |_| get!(bev, output))
    })
}

/// `bufferevent_write`: appends `size` bytes to the output.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_write(
    bev: *mut bufferevent,
    data: *const c_void,
    size: size_t,
) -> c_int {
    guard(-1, || {
        if data.is_null() && size > 0 {
            return -1;
        }
        let bytes: &[u8] = if size == 0 {
            &[]
        } else {
            // SAFETY: `data` points to `size` readable bytes (the caller's contract).
            unsafe { std::slice::from_raw_parts(data.cast(), size) }
        };
        with_bev(bev, "bufferevent_write", |b, h, _| {
            h.write(b, bytes).map_or(-1, |()| 0)
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_write_buffer`: moves all of `buf` to the output.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_write_buffer(
    bev: *mut bufferevent,
    buf: *mut Evbuffer,
) -> c_int {
    guard(-1, || {
        if buf.is_null() {
            return -1;
        }
        with_bev(bev, "bufferevent_write_buffer", |b, h, _| {
            if buf == get!(bev, output) {
                // Moving a buffer onto itself moves nothing.
                return 0;
            }
            let r = if buf == get!(bev, input) {
                h.buffers(b).and_then(|(i, o)| o.add_buffer(i))
            } else {
                // SAFETY: `buf` is a live evbuffer that is neither of this bufferevent's (another
                // allocation), not in use by anything else during this call.
                h.write_buffer(b, unsafe { &mut *buf })
            };
            r.map_or(-1, |()| 0)
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_read`: takes up to `size` bytes from the input; returns how many.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_read(
    bev: *mut bufferevent,
    data: *mut c_void,
    size: size_t,
) -> size_t {
    guard(0, || {
        if data.is_null() || size == 0 {
            return 0;
        }
        // SAFETY: `data` points to `size` writable bytes (the caller's contract).
        let out = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), size) };
        with_bev(bev, "bufferevent_read", |b, h, _| {
            h.read(b, out).unwrap_or(0)
        })
        .unwrap_or(0)
    })
}

/// `bufferevent_read_buffer`: moves all of the input to `buf`.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_read_buffer(
    bev: *mut bufferevent,
    buf: *mut Evbuffer,
) -> c_int {
    guard(-1, || {
        if buf.is_null() {
            return -1;
        }
        with_bev(bev, "bufferevent_read_buffer", |b, h, _| {
            if buf == get!(bev, input) {
                return 0;
            }
            let r = if buf == get!(bev, output) {
                h.buffers(b).and_then(|(i, o)| o.add_buffer(i))
            } else {
                // SAFETY: as in bufferevent_write_buffer.
                let dst = unsafe { &mut *buf };
                h.input(b).and_then(|i| dst.add_buffer(i))
            };
            r.map_or(-1, |()| 0)
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_flush`: pushes data through now (`mode`: BEV_NORMAL, BEV_FLUSH, BEV_FINISHED).
/// Returns 1 if data moved, 0 if not, -1 on error. Unlike libevent's socket bufferevents, whose
/// flush does nothing, a socket writes what the kernel takes (and BEV_FINISHED shuts down writing
/// once the output is out).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_flush(
    bev: *mut bufferevent,
    iotype: c_short,
    mode: c_int,
) -> c_int {
    guard(-1, || {
        let mode = match mode {
            0 => FlushMode::Normal,
            1 => FlushMode::Flush,
            2 => FlushMode::Finished,
            _ => return -1,
        };
        with_bev(bev, "bufferevent_flush", |b, h, _| {
            match h.flush(b, what_of(iotype), mode) {
                Ok(true) => 1,
                Ok(false) => 0,
                Err(e) => {
                    log::warn!("bufferevent_flush: {e}");
                    -1
                }
            }
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_trigger`: runs the read and/or write callback as if data had arrived or drained,
/// honouring the watermarks unless BEV_TRIG_IGNORE_WATERMARKS; now, or from the loop with
/// BEV_TRIG_DEFER_CALLBACKS or the bufferevent's BEV_OPT_DEFER_CALLBACKS.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_trigger(
    bev: *mut bufferevent,
    iotype: c_short,
    options: c_int,
) {
    guard((), || {
        with_bev(bev, "bufferevent_trigger", |b, h, p| {
            let defer = (options | pv(p).options) & BEV_TRIG_DEFER_CALLBACKS != 0;
            let ignore = options & BEV_TRIG_IGNORE_WATERMARKS != 0;
            let in_len = h.input(b).map_or(0, |i| i.len());
            let out_len = h.output(b).map_or(0, |o| o.len());
            if iotype & EV_READ != 0 && (ignore || in_len >= get!(bev, wm_read.low)) {
                fire(b, bev, p, CCall::Read, defer);
            }
            // The read callback may have freed it (our reference keeps the struct).
            if iotype & EV_WRITE != 0 && (ignore || out_len <= get!(bev, wm_write.low)) {
                fire(b, bev, p, CCall::Write, defer);
            }
        });
    })
}

/// `bufferevent_trigger_event`: runs the event callback with `what`; now, or from the loop with
/// BEV_TRIG_DEFER_CALLBACKS or the bufferevent's BEV_OPT_DEFER_CALLBACKS.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_trigger_event(
    bev: *mut bufferevent,
    what: c_short,
    options: c_int,
) {
    guard((), || {
        with_bev(bev, "bufferevent_trigger_event", |b, _, p| {
            let defer = (options | pv(p).options) & BEV_TRIG_DEFER_CALLBACKS != 0;
            fire(b, bev, p, CCall::Event(what, None), defer);
        });
    })
}

// ---- sockets ----

/// A socket address from C, for revent's connect: IPv4 and IPv6 only.
///
/// # Safety
/// `sa` points to `len` readable bytes.
unsafe fn inet_addr(sa: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    // SAFETY: the caller's contract; each read is within `len`, checked first.
    unsafe {
        match c_int::from((*sa).sa_family) {
            libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let a = ptr::read_unaligned(sa.cast::<libc::sockaddr_in>());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let a = ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>());
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// A socket's pending error (SO_ERROR), or errno if asking fails.
fn so_error(fd: c_int) -> c_int {
    let mut err: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: getsockopt writes one int into a live local, its length given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        err
    }
}

/// Reports the end of a connect that revent does not drive (a Unix-domain address, or "already
/// connecting"): when the socket turns writable, CONNECTED or ERROR (with SO_ERROR as errno).
fn wait_connected(b: &mut EventBase, bev: *mut bufferevent, h: BufferEvent, fd: c_int) -> bool {
    b.once(fd, What::WRITE, None, move |b, _| {
        if h.enabled(b).is_err() {
            return;
        }
        match so_error(fd) {
            // A TLS bufferevent reports CONNECTED when its handshake is done.
            0 if is_tls_socket(bev) => {}
            0 => trampoline(b, h, bev, CCall::Event(BEV_EVENT_CONNECTED, None)),
            e => {
                let _ = h.disable(b, What::READ | What::WRITE);
                trampoline(b, h, bev, CCall::Event(BEV_EVENT_ERROR, Some(e)));
            }
        }
    })
    .is_ok()
}

/// Whether `bev` (live while its callbacks can run) is a TLS bufferevent on a socket.
fn is_tls_socket(bev: *mut bufferevent) -> bool {
    let p = get!(bev, be_ops);
    !p.is_null() && pv(p).kind == Kind::TlsSocket
}

/// The connect itself, on the bufferevent's base.
fn connect_on(
    b: &mut EventBase,
    bev: *mut bufferevent,
    h: BufferEvent,
    p: *mut Private,
    sa: *const sockaddr,
    socklen: c_int,
) -> c_int {
    let had_fd = h.fd(b).ok();
    if sa.is_null() {
        // "Already connecting": CONNECTED once it turns writable.
        return match had_fd {
            Some(fd) if wait_connected(b, bev, h, fd) => 0,
            _ => -1,
        };
    }
    if socklen < std::mem::size_of::<libc::sa_family_t>() as c_int
        || socklen as usize > std::mem::size_of::<libc::sockaddr_storage>()
    {
        log::warn!("bufferevent_socket_connect: bad address length {socklen}");
        return -1;
    }
    // SAFETY: `sa` points to `socklen` readable bytes (the caller's contract).
    let family = c_int::from(unsafe { (*sa).sa_family });
    // libevent makes a socket when there is none, and closes it again if the connect fails.
    let mut made = None;
    let fd = match had_fd {
        Some(fd) => fd,
        None => {
            // SAFETY: socket() with constant arguments.
            let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
            if fd < 0 || !fd_acceptable(b, fd) {
                log::warn!(
                    "bufferevent_socket_connect: socket: {}",
                    std::io::Error::last_os_error()
                );
                if fd >= 0 {
                    // SAFETY: made just above, ours alone.
                    unsafe { libc::close(fd) };
                }
                return -1;
            }
            // SAFETY: a fresh socket, open; see `adopt` (this layer owns it until the connect is
            // made, then the bufferevent does, as libevent's).
            if let Err(e) = h.set_fd(b, unsafe { adopt(fd) }) {
                log::warn!("bufferevent_socket_connect: {e}");
                return -1;
            }
            made = Some(fd);
            fd
        }
    };
    set!(bev, ev_read.fd, fd);
    set!(bev, ev_write.fd, fd);
    let fail = |b: &mut EventBase| {
        if made.is_some() {
            if let Ok(Some(fd)) = h.set_fd(b, None) {
                drop(fd);
            }
            set!(bev, ev_read.fd, -1);
            set!(bev, ev_write.fd, -1);
        }
        -1
    };
    // SAFETY: as above.
    if let Some(addr) = unsafe { inet_addr(sa, socklen as socklen_t) } {
        return match h.connect(b, addr) {
            Ok(()) => 0,
            Err(e) => {
                log::warn!("bufferevent_socket_connect: {e}");
                fail(b)
            }
        };
    }
    // Other families (AF_UNIX): connect here and report like revent does for IP.
    // SAFETY: `sa` is `socklen` readable bytes.
    let r = unsafe { libc::connect(fd, sa, socklen as socklen_t) };
    let err = if r == 0 {
        0
    } else {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    match err {
        0 => {
            // A TLS bufferevent reports CONNECTED when its handshake is done.
            if pv(p).kind != Kind::TlsSocket {
                fire(b, bev, p, CCall::Event(BEV_EVENT_CONNECTED, None), true);
            }
            0
        }
        libc::EINPROGRESS | libc::EINTR => {
            if wait_connected(b, bev, h, fd) {
                0
            } else {
                fail(b)
            }
        }
        libc::ECONNREFUSED => {
            let _ = h.disable(b, What::READ | What::WRITE);
            fire(b, bev, p, CCall::Event(BEV_EVENT_ERROR, Some(err)), true);
            0
        }
        e => {
            log::warn!(
                "bufferevent_socket_connect: {}",
                std::io::Error::from_raw_os_error(e)
            );
            fail(b)
        }
    }
}

/// `bufferevent_socket_connect`: connects the socket (making one if there is none) to `addr`; the
/// event callback gets BEV_EVENT_CONNECTED, or BEV_EVENT_ERROR (refused: errno says why). A NULL
/// address means the socket is already connecting: CONNECTED comes once it is writable. IPv4 and
/// IPv6 go through revent; other families (AF_UNIX) are connected here. Returns -1 when the
/// connect fails at once for another reason (a socket made here is closed again).
///
/// For a NULL address, and for an AF_UNIX connect still in progress (Linux completes or refuses
/// those at once), revent does not know the socket is connecting: reading is not held back until
/// the connect completes as libevent holds it, so a refused connect with EV_READ enabled may also
/// report an error while reading.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_socket_connect(
    bev: *mut bufferevent,
    addr: *const sockaddr,
    socklen: c_int,
) -> c_int {
    guard(-1, || {
        let Some(p) = private(bev, "bufferevent_socket_connect") else {
            return -1;
        };
        if !matches!(pv(p).kind, Kind::Socket | Kind::TlsSocket) {
            log::warn!("bufferevent_socket_connect: not a socket bufferevent");
            return -1;
        }
        with_bev(bev, "bufferevent_socket_connect", |b, h, p| {
            connect_on(b, bev, h, p, addr, socklen)
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_socket_connect_hostname`: resolves `hostname` (a name, an IPv4 address, an IPv6
/// address with or without brackets) and connects to the first address. With an `evdns_base` the
/// lookup is asynchronous (revent-dns's getaddrinfo: numeric names and the resolver's hosts file
/// answered at once, names from the loop); the bufferevent holds a reference until it is done,
/// so `bufferevent_free` meanwhile lets the lookup finish first, as in libevent. Without one it
/// blocks on the system's `getaddrinfo`, as libevent does. A failed lookup is reported to the
/// event callback as BEV_EVENT_ERROR, with `bufferevent_socket_get_dns_error` giving the EAI_*
/// code (blocking: from the loop; libevent reports it inside this call); the call returns 0 then.
/// -1 for a bad family, port or name.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_socket_connect_hostname(
    bev: *mut bufferevent,
    evdns_base: *mut crate::dns::evdns_base,
    family: c_int,
    hostname: *const libc::c_char,
    port: c_int,
) -> c_int {
    guard(-1, || {
        if ![libc::AF_INET, libc::AF_INET6, libc::AF_UNSPEC].contains(&family)
            || !(1..=65535).contains(&port)
            || hostname.is_null()
        {
            log::warn!("bufferevent_socket_connect_hostname: bad family, port or name");
            return -1;
        }
        let Some(p) = private(bev, "bufferevent_socket_connect_hostname") else {
            return -1;
        };
        if !matches!(pv(p).kind, Kind::Socket | Kind::TlsSocket) {
            return -1;
        }
        // SAFETY: a NUL-terminated string (the caller's contract).
        let name = unsafe { CStr::from_ptr(hostname) }.to_bytes();
        if !evdns_base.is_null() {
            let Ok(name) = std::str::from_utf8(name) else {
                return -1;
            };
            return with_bev(bev, "bufferevent_socket_connect_hostname", |b, _h, p| {
                // SAFETY: a live evdns_base on the bufferevent's base (the caller's contract),
                // read where that base is used.
                let resolver = unsafe { crate::dns::resolver_of(evdns_base) };
                connect_resolved(b, bev, p, &resolver, name, port as u16, family);
                0
            })
            .unwrap_or(-1);
        }
        let name = match name {
            [b'[', inner @ .., b']'] => inner,
            n => n,
        };
        let (Ok(name), Ok(service)) = (
            std::ffi::CString::new(name),
            std::ffi::CString::new(port.to_string()),
        ) else {
            return -1;
        };
        with_bev(bev, "bufferevent_socket_connect_hostname", |b, h, p| {
            pv(p).dns_error = 0;
            // SAFETY: an all-zero addrinfo is the usual empty hints value.
            let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
            hints.ai_family = family;
            hints.ai_socktype = libc::SOCK_STREAM;
            hints.ai_protocol = libc::IPPROTO_TCP;
            let mut res: *mut libc::addrinfo = ptr::null_mut();
            // SAFETY: NUL-terminated strings, live hints, and an out pointer to a live local.
            let rc =
                unsafe { libc::getaddrinfo(name.as_ptr(), service.as_ptr(), &hints, &mut res) };
            if rc != 0 || res.is_null() {
                pv(p).dns_error = if rc != 0 { rc } else { libc::EAI_NONAME };
                fire(b, bev, p, CCall::Event(BEV_EVENT_ERROR, None), true);
                return 0;
            }
            // SAFETY: getaddrinfo succeeded: `res` is a list whose first entry has an address of
            // `ai_addrlen` bytes; it is freed right after.
            let r = unsafe {
                let ai = &*res;
                let r = connect_on(b, bev, h, p, ai.ai_addr, ai.ai_addrlen as c_int);
                libc::freeaddrinfo(res);
                r
            };
            if r < 0 {
                fire(b, bev, p, CCall::Event(BEV_EVENT_ERROR, None), true);
            }
            0
        })
        .unwrap_or(-1)
    })
}

/// Starts the asynchronous lookup of `bufferevent_socket_connect_hostname`, holding a reference
/// on the bufferevent until its callback has run.
fn connect_resolved(
    b: &mut EventBase,
    bev: *mut bufferevent,
    p: *mut Private,
    resolver: &revent_dns::Resolver,
    name: &str,
    port: u16,
    family: c_int,
) {
    pv(p).dns_error = 0;
    pv(p).refcnt += 1;
    let fam = match family {
        libc::AF_INET => revent_dns::Family::V4,
        libc::AF_INET6 => revent_dns::Family::V6,
        _ => revent_dns::Family::Any,
    };
    // Gives the lookup's reference back if the lookup is dropped without an answer (its resolver
    // freed): only the count, never the last one, which would free the struct under revent.
    struct Held(*mut Private, bool);
    impl Drop for Held {
        fn drop(&mut self) {
            if !self.1 && pv(self.0).refcnt > 1 {
                pv(self.0).refcnt -= 1;
            }
        }
    }
    impl Held {
        /// The lookup answered: its reference is released by the callback, not by the drop.
        fn answered(&mut self) -> *mut Private {
            self.1 = true;
            self.0
        }
    }
    let mut held = Held(p, false);
    let done = move |b: &mut EventBase, r: revent_dns::AddrOutcome| {
        let p = held.answered();
        let h = pv(p).h;
        sync_in(b, bev, p);
        match (r, h) {
            (Ok(addrs), Some(h)) if !addrs.is_empty() => {
                let (ss, len) = crate::dns::to_sockaddr(addrs[0]);
                let rc = connect_on(b, bev, h, p, ptr::addr_of!(ss).cast(), len as c_int);
                if rc < 0 {
                    fire(b, bev, p, CCall::Event(BEV_EVENT_ERROR, None), false);
                }
            }
            (Ok(_), _) => {
                pv(p).dns_error = libc::EAI_NONAME;
                fire(b, bev, p, CCall::Event(BEV_EVENT_ERROR, None), false);
            }
            (Err(e), _) => {
                pv(p).dns_error = crate::dns::eai_code(e);
                fire(b, bev, p, CCall::Event(BEV_EVENT_ERROR, None), false);
            }
        }
        if release(Some(&mut *b), bev, p) {
            publish(b, bev, p);
        }
    };
    let _ = resolver.getaddrinfo(b, name, port, fam, done);
}

/// `bufferevent_socket_get_dns_error`: the EAI_* code of the last failed
/// `bufferevent_socket_connect_hostname` lookup (0 if it succeeded).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_socket_get_dns_error(bev: *mut bufferevent) -> c_int {
    guard(-1, || {
        private(bev, "bufferevent_socket_get_dns_error").map_or(-1, |p| pv(p).dns_error)
    })
}

/// `bufferevent_setfd`: replaces the socket (-1: none). The old one is not closed (as in
/// libevent); reading and writing go on as enabled. A filter passes this to its underlying
/// bufferevent; a pair has no socket (-1).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_setfd(bev: *mut bufferevent, fd: evutil_socket_t) -> c_int {
    guard(-1, || {
        let Some(p) = private(bev, "bufferevent_setfd") else {
            return -1;
        };
        match pv(p).kind {
            Kind::Pair => return -1,
            Kind::Filter | Kind::TlsFilter => {
                let under = pv(p).underlying;
                // SAFETY: the filter holds a reference to its underlying bufferevent.
                return unsafe { bufferevent_setfd(under, fd) };
            }
            Kind::Socket | Kind::TlsSocket => {}
        }
        if pv(p).h.is_none() {
            pv(p).fd_before_base = fd;
            set!(bev, ev_read.fd, fd);
            set!(bev, ev_write.fd, fd);
            return 0;
        }
        with_bev(bev, "bufferevent_setfd", |b, h, _| {
            if fd >= 0 && !fd_acceptable(b, fd) {
                return -1;
            }
            // SAFETY: checked just above; see `adopt`.
            match h.set_fd(b, unsafe { adopt(fd) }) {
                Ok(old) => {
                    if let Some(old) = old {
                        hand_back(old, false);
                    }
                    set!(bev, ev_read.fd, fd);
                    set!(bev, ev_write.fd, fd);
                    0
                }
                Err(e) => {
                    log::warn!("bufferevent_setfd: {e}");
                    -1
                }
            }
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_getfd`: the socket (a filter's underlying one), or -1.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_getfd(bev: *mut bufferevent) -> evutil_socket_t {
    guard(-1, || {
        let Some(p) = private(bev, "bufferevent_getfd") else {
            return -1;
        };
        if pv(p).h.is_none() {
            return pv(p).fd_before_base;
        }
        if pv(p).kind == Kind::TlsFilter {
            // SAFETY: the TLS filter holds a reference to its underlying bufferevent.
            return unsafe { bufferevent_getfd(pv(p).underlying) };
        }
        with_bev(bev, "bufferevent_getfd", |b, h, _| h.fd(b).unwrap_or(-1)).unwrap_or(-1)
    })
}

/// `bufferevent_get_base`: the base given when the bufferevent was made or set (NULL for one from
/// `bufferevent_new` before `bufferevent_base_set`, as in libevent).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_base(bev: *mut bufferevent) -> *mut CBase {
    guard(ptr::null_mut(), || {
        private(bev, "bufferevent_get_base").map_or(ptr::null_mut(), |_| get!(bev, ev_base))
    })
}

/// `bufferevent_priority_set`: the priority of a socket bufferevent's events and deferred
/// callbacks (-1 for other kinds, as in libevent, or out of range).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_priority_set(bev: *mut bufferevent, pri: c_int) -> c_int {
    guard(-1, || {
        let Some(p) = private(bev, "bufferevent_priority_set") else {
            return -1;
        };
        if pv(p).kind != Kind::Socket || pri < 0 {
            return -1;
        }
        with_bev(bev, "bufferevent_priority_set", |b, h, p| {
            match h.set_priority(b, pri as usize) {
                Ok(()) => {
                    pv(p).priority = pri;
                    0
                }
                Err(e) => {
                    log::warn!("bufferevent_priority_set: {e}");
                    -1
                }
            }
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_get_priority`: the priority set with `bufferevent_priority_set`, or the base's
/// default (half the number of priorities).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_priority(bev: *const bufferevent) -> c_int {
    guard(-1, || {
        private(bev.cast_mut(), "bufferevent_get_priority").map_or(-1, |p| pv(p).priority)
    })
}

/// `bufferevent_get_underlying`: a filter's underlying bufferevent; NULL for other kinds.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_underlying(bev: *mut bufferevent) -> *mut bufferevent {
    guard(ptr::null_mut(), || {
        private(bev, "bufferevent_get_underlying").map_or(ptr::null_mut(), |p| pv(p).underlying)
    })
}

// ---- pairs ----

/// `bufferevent_pair_new`: two bufferevents joined in memory, into `pair[0]` and `pair[1]`. Their
/// callbacks are always deferred to the loop (as in libevent). Freeing one side gives the other
/// end of file (libevent only unlinks them).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_pair_new(
    base: *mut CBase,
    options: c_int,
    pair: *mut *mut bufferevent,
) -> c_int {
    guard(-1, || {
        if base.is_null() || pair.is_null() {
            log::warn!("bufferevent_pair_new: needs a base and room for two pointers");
            return -1;
        }
        let (Some(a), Some(c)) = (
            new_struct(Kind::Pair, options, base),
            new_struct(Kind::Pair, options, base),
        ) else {
            return -1;
        };
        // SAFETY: a live base (the caller's contract).
        let made = unsafe {
            with_base(base, |b| {
                let (ha, hc) = BufferEvent::pair(b, rust_options(options))?;
                let r = attach(b, base, a, ha).and_then(|()| attach(b, base, c, hc));
                if r.is_err() {
                    let _ = ha.free(b);
                    let _ = hc.free(b);
                }
                r
            })
        };
        match made {
            Some(Ok(())) => {
                pv(get!(a, be_ops)).partner = c;
                pv(get!(c, be_ops)).partner = a;
                // SAFETY: `pair` has room for two pointers (the caller's contract).
                unsafe {
                    pair.write(a);
                    pair.add(1).write(c);
                }
                0
            }
            other => {
                if let Some(Err(e)) = other {
                    log::warn!("bufferevent_pair_new: {e}");
                }
                for bev in [a, c] {
                    unregister(base, bev);
                    discard(bev);
                }
                -1
            }
        }
    })
}

/// `bufferevent_pair_get_partner`: the other end of a pair while it exists, else NULL.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_pair_get_partner(bev: *mut bufferevent) -> *mut bufferevent {
    guard(ptr::null_mut(), || {
        private(bev, "bufferevent_pair_get_partner").map_or(ptr::null_mut(), |p| pv(p).partner)
    })
}

// ---- filters ----

/// A C filter function as revent's `FilterFn`. It runs inside revent's own work, where no base can
/// be lent to it: calls into that event base from it fail with a warning (`base::with_base_local`);
/// it may use the evbuffer functions on `src` and `dst`.
fn c_filter(cb: bufferevent_filter_cb, ctx: *mut c_void) -> Option<Box<FilterFn>> {
    let cb = cb?;
    Some(Box::new(
        move |src: &mut Evbuffer, dst: &mut Evbuffer, limit: isize, mode: FlushMode| {
            let mode = match mode {
                FlushMode::Normal => 0,
                FlushMode::Flush => 1,
                FlushMode::Finished => 2,
            };
            let (s, d): (*mut Evbuffer, *mut Evbuffer) = (src, dst);
            // SAFETY: the program's filter with two live evbuffers (derived from the references
            // revent lends for this call) and its own context.
            match unsafe { cb(s, d, limit, mode, ctx) } {
                0 => FilterResult::Ok,
                1 => FilterResult::NeedMore,
                _ => FilterResult::Error,
            }
        },
    ))
}

/// `bufferevent_filter_new`: a bufferevent over `underlying` whose data passes through
/// `input_filter` (reading) and `output_filter` (writing); NULL copies as is. The filter takes
/// over the underlying bufferevent's callbacks and keeps it alive; with BEV_OPT_CLOSE_ON_FREE
/// freeing the filter frees it too. `free_context(ctx)` runs when the filter is freed. Filter
/// functions may work on their two evbuffers only (see `c_filter`).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_filter_new(
    underlying: *mut bufferevent,
    input_filter: bufferevent_filter_cb,
    output_filter: bufferevent_filter_cb,
    options: c_int,
    free_context: free_context_fn,
    ctx: *mut c_void,
) -> *mut bufferevent {
    guard(ptr::null_mut(), || {
        let bev = make_filter(
            underlying,
            Kind::Filter,
            options,
            "bufferevent_filter_new",
            |b, uh| {
                BufferEvent::filter(
                    b,
                    uh,
                    c_filter(input_filter, ctx),
                    c_filter(output_filter, ctx),
                    rust_options(options),
                )
            },
        );
        if !bev.is_null() {
            let pr = pv(get!(bev, be_ops));
            pr.filter_ctx = ctx;
            pr.free_context = free_context;
        }
        bev
    })
}

/// A bufferevent of `kind` over `underlying`, made by `make` (given the underlying Rust
/// bufferevent): it takes over the underlying's callbacks and holds a reference to it. NULL, with
/// a warning naming `what`, when it cannot be made.
fn make_filter(
    underlying: *mut bufferevent,
    kind: Kind,
    options: c_int,
    what: &str,
    make: impl FnOnce(&mut EventBase, BufferEvent) -> revent::Result<BufferEvent>,
) -> *mut bufferevent {
    let Some(up) = private(underlying, what) else {
        return ptr::null_mut();
    };
    let (cbase, Some(uh)) = (pv(up).cbase, pv(up).h) else {
        log::warn!("{what}: the underlying bufferevent has no base yet");
        return ptr::null_mut();
    };
    let Some(bev) = new_struct(kind, options, get!(underlying, ev_base)) else {
        return ptr::null_mut();
    };
    // SAFETY: the underlying bufferevent's base is live.
    let made = unsafe {
        with_base(cbase, |b| {
            sync_in(b, underlying, up);
            let h = make(b, uh)?;
            // The filter owns the underlying bufferevent's Rust callbacks from now on.
            pv(up).upper = bev;
            pv(up).installed = [false; 3];
            if let Err(e) = attach(b, cbase, bev, h) {
                pv(up).upper = ptr::null_mut();
                let _ = h.free(b);
                return Err(e);
            }
            publish(b, underlying, up);
            Ok(())
        })
    };
    match made {
        Some(Ok(())) => {
            pv(get!(bev, be_ops)).underlying = underlying;
            pv(up).refcnt += 1;
            bev
        }
        other => {
            if let Some(Err(e)) = other {
                log::warn!("{what}: {e}");
            }
            discard(bev);
            ptr::null_mut()
        }
    }
}

// ---- TLS (crate::openssl): the struct side ----

/// A TLS bufferevent on socket `fd` (-1: none yet) in `base`, for `ssl`, made by `make` (given
/// revent's view of the fd and the options revent gets); NULL with a warning naming `what`.
///
/// `make` receives the program's fd as an `OwnedFd` (see `adopt`): if it fails after taking it,
/// the fd is gone, so it fails only where it cannot have taken it.
pub(crate) fn new_tls_socket(
    base: *mut CBase,
    fd: evutil_socket_t,
    options: c_int,
    ssl: *mut c_void,
    what: &str,
    make: impl FnOnce(&mut EventBase, Option<OwnedFd>, BevOptions) -> revent::Result<BufferEvent>,
) -> *mut bufferevent {
    if base.is_null() {
        log::warn!("{what}: needs an event base");
        return ptr::null_mut();
    }
    let Some(bev) = new_struct(Kind::TlsSocket, options, base) else {
        return ptr::null_mut();
    };
    pv(get!(bev, be_ops)).ssl = ssl;
    if make_on_fd(base, bev, fd, what, |b, owned| {
        make(b, owned, rust_options(options))
    }) {
        bev
    } else {
        discard(bev);
        ptr::null_mut()
    }
}

/// A TLS bufferevent over `underlying` for `ssl`, made by `make` (given the underlying Rust
/// bufferevent and the options revent gets); NULL with a warning naming `what`.
pub(crate) fn new_tls_filter(
    underlying: *mut bufferevent,
    options: c_int,
    ssl: *mut c_void,
    what: &str,
    make: impl FnOnce(&mut EventBase, BufferEvent, BevOptions) -> revent::Result<BufferEvent>,
) -> *mut bufferevent {
    let bev = make_filter(underlying, Kind::TlsFilter, options, what, |b, uh| {
        make(b, uh, rust_options(options))
    });
    if !bev.is_null() {
        pv(get!(bev, be_ops)).ssl = ssl;
    }
    bev
}

/// The `SSL *` of a TLS bufferevent; None (and no warning) for any other bufferevent.
pub(crate) fn tls_ssl(bev: *mut bufferevent) -> Option<*mut c_void> {
    if bev.is_null() {
        return None;
    }
    let p = get!(bev, be_ops);
    // SAFETY: as in `private`: null or a Private of ours; the magic word is read first.
    if p.is_null() || unsafe { ptr::read(addr_of!((*p).magic)) } != MAGIC {
        return None;
    }
    matches!(pv(p).kind, Kind::TlsSocket | Kind::TlsFilter).then(|| pv(p).ssl)
}

/// Runs `f` on a TLS bufferevent's Rust side (as [`with_bev`]); None for other bufferevents.
pub(crate) fn with_tls<R>(
    bev: *mut bufferevent,
    what: &str,
    f: impl FnOnce(&mut EventBase, BufferEvent) -> R,
) -> Option<R> {
    tls_ssl(bev)?;
    with_bev(bev, what, |b, h, _| f(b, h))
}

/// After C code ran that may have used a TLS bufferevent's `SSL *` directly (an `SSL_shutdown`
/// queues a close_notify): what it queued goes out.
#[inline]
fn tls_after_c(b: &mut EventBase, p: *mut Private) {
    if matches!(pv(p).kind, Kind::TlsSocket | Kind::TlsFilter) {
        if let Some(h) = pv(p).h {
            crate::openssl::send_queued(b, h);
        }
    }
}

// ---- rate limits ----

/// `struct ev_token_bucket_cfg` (opaque to C).
pub struct ev_token_bucket_cfg {
    cfg: RateLimit,
}

/// `struct bufferevent_rate_limit_group` (opaque to C).
pub struct bufferevent_rate_limit_group {
    cbase: *mut CBase,
    g: RateLimitGroup,
    members: Vec<*mut bufferevent>,
}

/// `ev_token_bucket_cfg_new`: rates and bursts per tick (`tick_len` NULL: one second; fractions
/// of a millisecond are dropped, as in libevent). NULL if a rate is 0 or above its burst, a value
/// exceeds EV_RATE_LIMIT_MAX, or the tick is under a millisecond (libevent would divide by zero).
#[no_mangle]
pub unsafe extern "C" fn ev_token_bucket_cfg_new(
    read_rate: size_t,
    read_burst: size_t,
    write_rate: size_t,
    write_burst: size_t,
    tick_len: *const timeval,
) -> *mut ev_token_bucket_cfg {
    guard(ptr::null_mut(), || {
        let max = isize::MAX as usize;
        if read_rate > read_burst
            || write_rate > write_burst
            || read_rate < 1
            || write_rate < 1
            || [read_rate, read_burst, write_rate, write_burst]
                .iter()
                .any(|&v| v > max)
        {
            log::warn!("ev_token_bucket_cfg_new: rates must be 1..=burst");
            return ptr::null_mut();
        }
        // SAFETY: null or a readable timeval (the caller's contract).
        let tick = unsafe { tick_len.as_ref() }.map_or(Duration::from_secs(1), |tv| {
            Duration::from_millis(
                (tv.tv_sec.max(0) as u64) * 1000 + (tv.tv_usec.max(0) as u64) / 1000,
            )
        });
        if tick.is_zero() {
            log::warn!("ev_token_bucket_cfg_new: the tick must be at least a millisecond");
            return ptr::null_mut();
        }
        Box::into_raw(Box::new(ev_token_bucket_cfg {
            cfg: RateLimit {
                read_rate,
                read_burst,
                write_rate,
                write_burst,
                tick,
            },
        }))
    })
}

/// `ev_token_bucket_cfg_free`. Bufferevents and groups keep their own copies of the numbers, so
/// freeing a configuration in use is harmless here (libevent forbids it).
#[no_mangle]
pub unsafe extern "C" fn ev_token_bucket_cfg_free(cfg: *mut ev_token_bucket_cfg) {
    guard((), || {
        if !cfg.is_null() {
            // SAFETY: from ev_token_bucket_cfg_new, freed once (C's contract).
            drop(unsafe { Box::from_raw(cfg) });
        }
    })
}

/// `bufferevent_set_rate_limit`: limits this bufferevent to `cfg` (NULL: no own limit). Socket and
/// pair bufferevents respect it.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_set_rate_limit(
    bev: *mut bufferevent,
    cfg: *mut ev_token_bucket_cfg,
) -> c_int {
    guard(-1, || {
        with_bev(bev, "bufferevent_set_rate_limit", |b, h, p| {
            // SAFETY: null or a live configuration (C's contract).
            let limit = unsafe { cfg.as_ref() }.map(|c| c.cfg);
            match h.set_rate_limit(b, limit) {
                Ok(()) => {
                    pv(p).rate_cfg = cfg;
                    pv(p).rate_limit = limit;
                    0
                }
                Err(e) => {
                    log::warn!("bufferevent_set_rate_limit: {e}");
                    -1
                }
            }
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_get_token_bucket_cfg`: the configuration last given to
/// `bufferevent_set_rate_limit`, or NULL.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_token_bucket_cfg(
    bev: *const bufferevent,
) -> *const ev_token_bucket_cfg {
    guard(ptr::null(), || {
        private(bev.cast_mut(), "bufferevent_get_token_bucket_cfg")
            .map_or(ptr::null(), |p| pv(p).rate_cfg)
    })
}

/// The group behind a C pointer (null checked).
fn group<'a>(
    g: *mut bufferevent_rate_limit_group,
    what: &str,
) -> Option<&'a mut bufferevent_rate_limit_group> {
    if g.is_null() {
        log::warn!("{what}: NULL group");
    }
    // SAFETY: null or a live group from bufferevent_rate_limit_group_new (C's contract); the
    // reference is used for a few field accesses, with no C code in between.
    unsafe { g.as_mut() }
}

/// `bufferevent_rate_limit_group_new`: a group whose members share `cfg`'s budget. Its members must
/// live in `base` (libevent allows members of other bases).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_new(
    base: *mut CBase,
    cfg: *const ev_token_bucket_cfg,
) -> *mut bufferevent_rate_limit_group {
    guard(ptr::null_mut(), || {
        // SAFETY: null or a live configuration (C's contract).
        let Some(cfg) = (unsafe { cfg.as_ref() }) else {
            return ptr::null_mut();
        };
        // SAFETY: null or a live base (C's contract).
        match unsafe { with_base(base, |b| RateLimitGroup::new(b, cfg.cfg)) } {
            Some(Ok(g)) => Box::into_raw(Box::new(bufferevent_rate_limit_group {
                cbase: base,
                g,
                members: Vec::new(),
            })),
            Some(Err(e)) => {
                log::warn!("bufferevent_rate_limit_group_new: {e}");
                ptr::null_mut()
            }
            None => ptr::null_mut(),
        }
    })
}

/// `bufferevent_rate_limit_group_set_cfg`: new settings for the group.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_set_cfg(
    g: *mut bufferevent_rate_limit_group,
    cfg: *const ev_token_bucket_cfg,
) -> c_int {
    guard(-1, || {
        // SAFETY: null or a live configuration (C's contract).
        let (Some(grp), Some(cfg)) = (group(g, "bufferevent_rate_limit_group_set_cfg"), unsafe {
            cfg.as_ref()
        }) else {
            return -1;
        };
        let (cbase, rg) = (grp.cbase, grp.g);
        // SAFETY: the group's base is live.
        unsafe { with_base(cbase, |b| rg.set_config(b, cfg.cfg).map_or(-1, |()| 0)) }.unwrap_or(-1)
    })
}

/// `bufferevent_rate_limit_group_set_min_share`: the least each member may use at a time (default
/// 64 bytes).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_set_min_share(
    g: *mut bufferevent_rate_limit_group,
    share: size_t,
) -> c_int {
    guard(-1, || {
        let Some(grp) = group(g, "bufferevent_rate_limit_group_set_min_share") else {
            return -1;
        };
        let (cbase, rg) = (grp.cbase, grp.g);
        // SAFETY: the group's base is live.
        unsafe { with_base(cbase, |b| rg.set_min_share(b, share).map_or(-1, |()| 0)) }.unwrap_or(-1)
    })
}

/// `bufferevent_rate_limit_group_free`: frees the group. libevent requires it to have no members;
/// here members left in it simply go on without it.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_free(g: *mut bufferevent_rate_limit_group) {
    guard((), || {
        if g.is_null() {
            return;
        }
        // SAFETY: from bufferevent_rate_limit_group_new, freed once (C's contract).
        let grp = unsafe { Box::from_raw(g) };
        for &m in &grp.members {
            let p = get!(m, be_ops);
            if !p.is_null() {
                pv(p).group = ptr::null_mut();
            }
        }
        // SAFETY: the group's base is live.
        unsafe { with_base(grp.cbase, |b| grp.g.free(b)) };
    })
}

/// `bufferevent_add_to_rate_limit_group`: makes `bev` a member of `g` (leaving any group it was
/// in); NULL `g` removes it from its group. The bufferevent must be in the group's base.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_add_to_rate_limit_group(
    bev: *mut bufferevent,
    g: *mut bufferevent_rate_limit_group,
) -> c_int {
    guard(-1, || {
        if g.is_null() {
            // SAFETY: forwarded.
            return unsafe { bufferevent_remove_from_rate_limit_group(bev) };
        }
        with_bev(bev, "bufferevent_add_to_rate_limit_group", |b, h, p| {
            let Some(grp) = group(g, "bufferevent_add_to_rate_limit_group") else {
                return -1;
            };
            if grp.cbase != pv(p).cbase {
                log::warn!(
                    "bufferevent_add_to_rate_limit_group: the group belongs to another base"
                );
                return -1;
            }
            if let Err(e) = grp.g.add(b, h) {
                log::warn!("bufferevent_add_to_rate_limit_group: {e}");
                return -1;
            }
            let old = std::mem::replace(&mut pv(p).group, g);
            if !old.is_null() && old != g {
                // SAFETY: a member's group is live (cleared when the group is freed).
                unsafe { (*old).members.retain(|&m| m != bev) };
            }
            if !grp.members.contains(&bev) {
                grp.members.push(bev);
            }
            0
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_remove_from_rate_limit_group`: takes `bev` out of its group, if it is in one.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_remove_from_rate_limit_group(bev: *mut bufferevent) -> c_int {
    guard(-1, || {
        with_bev(
            bev,
            "bufferevent_remove_from_rate_limit_group",
            |b, h, p| {
                let g = std::mem::replace(&mut pv(p).group, ptr::null_mut());
                if !g.is_null() {
                    // SAFETY: a member's group is live (cleared when the group is freed).
                    let grp = unsafe { &mut *g };
                    let _ = grp.g.remove(b, h);
                    grp.members.retain(|&m| m != bev);
                }
                0
            },
        )
        .unwrap_or(-1)
    })
}

fn clamp_i64(v: i64) -> isize {
    v.clamp(isize::MIN as i64, isize::MAX as i64) as isize
}

/// `bufferevent_get_read_limit`: the tokens left in the bufferevent's own read bucket (possibly
/// negative), or EV_SSIZE_MAX without an own limit.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_read_limit(bev: *mut bufferevent) -> isize {
    guard(-1, || {
        with_bev(bev, "bufferevent_get_read_limit", |b, h, _| {
            match h.rate_limit_tokens(b) {
                Ok(Some((r, _))) => clamp_i64(r),
                _ => isize::MAX,
            }
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_get_write_limit`: as `bufferevent_get_read_limit`, for writing.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_write_limit(bev: *mut bufferevent) -> isize {
    guard(-1, || {
        with_bev(bev, "bufferevent_get_write_limit", |b, h, _| {
            match h.rate_limit_tokens(b) {
                Ok(Some((_, w))) => clamp_i64(w),
                _ => isize::MAX,
            }
        })
        .unwrap_or(-1)
    })
}

/// The most one read (`read`) or write may move now, as libevent computes it: the single-operation
/// cap without rate limits; with an own limit, its tokens; with a group, at most the member's share.
fn max_to(b: &mut EventBase, h: BufferEvent, p: *mut Private, read: bool) -> isize {
    let single = if read {
        pv(p).max_single_read
    } else {
        pv(p).max_single_write
    };
    let own = h.rate_limit_tokens(b).ok().flatten();
    let (ra, wa) = h
        .rate_limit_allowance(b)
        .unwrap_or((usize::MAX, usize::MAX));
    let allowance = if read { ra } else { wa };
    let allowance = allowance.min(isize::MAX as usize) as isize;
    match own {
        Some(_) => allowance,
        None => single.min(allowance),
    }
    .max(0)
}

/// `bufferevent_get_max_to_read`: how much the next read may take (see `max_to`).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_max_to_read(bev: *mut bufferevent) -> isize {
    guard(-1, || {
        with_bev(bev, "bufferevent_get_max_to_read", |b, h, p| {
            max_to(b, h, p, true)
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_get_max_to_write`: how much the next write may send (see `max_to`).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_max_to_write(bev: *mut bufferevent) -> isize {
    guard(-1, || {
        with_bev(bev, "bufferevent_get_max_to_write", |b, h, p| {
            max_to(b, h, p, false)
        })
        .unwrap_or(-1)
    })
}

fn single_size(size: size_t) -> isize {
    if size == 0 {
        MAX_SINGLE_DEFAULT
    } else {
        size.min(isize::MAX as usize) as isize
    }
}

/// Gives the Rust side the caps C set. The default (16384, what libevent reads at most) is
/// reported but not applied: revent's reads take what the socket has, up to the high watermark
/// and the rate limit, which costs fewer syscalls; any other cap is applied, as a program that
/// sets one expects.
fn apply_max_single(b: &mut EventBase, h: BufferEvent, p: *mut Private) {
    let cap = |v: isize| {
        if v == MAX_SINGLE_DEFAULT {
            0
        } else {
            v.max(1) as usize
        }
    };
    let (r, w) = (pv(p).max_single_read, pv(p).max_single_write);
    let _ = h.set_max_single(b, What::READ, cap(r));
    let _ = h.set_max_single(b, What::WRITE, cap(w));
}

/// Stores a cap (see `apply_max_single`) and applies it when the bufferevent has a base (else
/// `attach` does, once it gets one).
fn set_max_single(bev: *mut bufferevent, what: &str, read: bool, size: size_t) -> c_int {
    let Some(p) = private(bev, what) else {
        return -1;
    };
    if read {
        pv(p).max_single_read = single_size(size);
    } else {
        pv(p).max_single_write = single_size(size);
    }
    if let Some(h) = pv(p).h {
        let cbase = pv(p).cbase;
        // SAFETY: the bufferevent's base is live while the bufferevent is (C's contract).
        let _ = unsafe { with_base(cbase, |b| apply_max_single(b, h, p)) };
    }
    0
}

/// `bufferevent_set_max_single_read`: the cap on one read (0: the default, 16384), as reported by
/// `bufferevent_get_max_single_read` and `bufferevent_get_max_to_read`. A cap other than the
/// default is applied to socket bufferevents; with the default a read takes what the socket has
/// (see `apply_max_single`).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_set_max_single_read(
    bev: *mut bufferevent,
    size: size_t,
) -> c_int {
    guard(-1, || {
        set_max_single(bev, "bufferevent_set_max_single_read", true, size)
    })
}

/// `bufferevent_set_max_single_write`: as `bufferevent_set_max_single_read`, for writes.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_set_max_single_write(
    bev: *mut bufferevent,
    size: size_t,
) -> c_int {
    guard(-1, || {
        set_max_single(bev, "bufferevent_set_max_single_write", false, size)
    })
}

/// `bufferevent_get_max_single_read`: the cap set with `bufferevent_set_max_single_read`.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_max_single_read(bev: *mut bufferevent) -> isize {
    guard(-1, || {
        private(bev, "bufferevent_get_max_single_read").map_or(-1, |p| pv(p).max_single_read)
    })
}

/// `bufferevent_get_max_single_write`: the cap set with `bufferevent_set_max_single_write`.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_max_single_write(bev: *mut bufferevent) -> isize {
    guard(-1, || {
        private(bev, "bufferevent_get_max_single_write").map_or(-1, |p| pv(p).max_single_write)
    })
}

/// `bufferevent_decrement_read_limit`: takes `decr` tokens from the own read bucket (a negative
/// amount adds); reading stops at zero and resumes above it. -1 without an own limit (libevent
/// asserts).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_decrement_read_limit(
    bev: *mut bufferevent,
    decr: isize,
) -> c_int {
    guard(-1, || {
        with_bev(bev, "bufferevent_decrement_read_limit", |b, h, _| {
            h.decrement_rate_limit(b, decr as i64, 0).map_or(-1, |()| 0)
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_decrement_write_limit`: as `bufferevent_decrement_read_limit`, for writing.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_decrement_write_limit(
    bev: *mut bufferevent,
    decr: isize,
) -> c_int {
    guard(-1, || {
        with_bev(bev, "bufferevent_decrement_write_limit", |b, h, _| {
            h.decrement_rate_limit(b, 0, decr as i64).map_or(-1, |()| 0)
        })
        .unwrap_or(-1)
    })
}

/// Runs `f` on a group's revent handle in its base.
fn on_group<R>(
    g: *mut bufferevent_rate_limit_group,
    what: &str,
    f: impl FnOnce(&mut EventBase, RateLimitGroup) -> revent::Result<R>,
) -> Option<R> {
    let grp = group(g, what)?;
    let (cbase, rg) = (grp.cbase, grp.g);
    // SAFETY: the group's base is live.
    match unsafe { with_base(cbase, |b| f(b, rg)) }? {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!("{what}: {e}");
            None
        }
    }
}

/// `bufferevent_rate_limit_group_get_read_limit`: the tokens left in the group's read bucket.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_get_read_limit(
    g: *mut bufferevent_rate_limit_group,
) -> isize {
    guard(-1, || {
        on_group(g, "bufferevent_rate_limit_group_get_read_limit", |b, rg| {
            rg.tokens(b)
        })
        .map_or(-1, |(r, _)| clamp_i64(r))
    })
}

/// `bufferevent_rate_limit_group_get_write_limit`: the tokens left in the group's write bucket.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_get_write_limit(
    g: *mut bufferevent_rate_limit_group,
) -> isize {
    guard(-1, || {
        on_group(
            g,
            "bufferevent_rate_limit_group_get_write_limit",
            |b, rg| rg.tokens(b),
        )
        .map_or(-1, |(_, w)| clamp_i64(w))
    })
}

/// `bufferevent_rate_limit_group_decrement_read`: takes `decr` tokens from the group's read bucket
/// (negative: adds); the members stop or resume accordingly.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_decrement_read(
    g: *mut bufferevent_rate_limit_group,
    decr: isize,
) -> c_int {
    guard(-1, || {
        on_group(g, "bufferevent_rate_limit_group_decrement_read", |b, rg| {
            rg.decrement(b, decr as i64, 0)
        })
        .map_or(-1, |()| 0)
    })
}

/// `bufferevent_rate_limit_group_decrement_write`: as the read one, for writing.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_decrement_write(
    g: *mut bufferevent_rate_limit_group,
    decr: isize,
) -> c_int {
    guard(-1, || {
        on_group(
            g,
            "bufferevent_rate_limit_group_decrement_write",
            |b, rg| rg.decrement(b, 0, decr as i64),
        )
        .map_or(-1, |()| 0)
    })
}

/// `bufferevent_rate_limit_group_get_totals`: bytes the members read and wrote while members, into
/// the non-null out pointers.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_get_totals(
    g: *mut bufferevent_rate_limit_group,
    total_read_out: *mut u64,
    total_written_out: *mut u64,
) {
    guard((), || {
        let Some((r, w)) = on_group(g, "bufferevent_rate_limit_group_get_totals", |b, rg| {
            rg.totals(b)
        }) else {
            return;
        };
        // SAFETY: each out pointer is null or writable (the caller's contract).
        unsafe {
            if !total_read_out.is_null() {
                total_read_out.write(r);
            }
            if !total_written_out.is_null() {
                total_written_out.write(w);
            }
        }
    })
}

/// `bufferevent_rate_limit_group_reset_totals`: sets the totals back to zero.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_rate_limit_group_reset_totals(
    g: *mut bufferevent_rate_limit_group,
) {
    guard((), || {
        on_group(g, "bufferevent_rate_limit_group_reset_totals", |b, rg| {
            rg.reset_totals(b)
        });
    })
}

// ---- for the HTTP layer, which hands these bufferevents to revent-http ----

/// The Rust bufferevent behind `bev`, if `bev` is a live bufferevent with a base.
pub(crate) fn rust_handle(bev: *mut bufferevent, what: &str) -> Option<BufferEvent> {
    private(bev, what).and_then(|p| pv(p).h)
}

/// The base `bev` lives in (null for a bad pointer).
pub(crate) fn base_of(bev: *mut bufferevent) -> *mut CBase {
    private(bev, "bufferevent").map_or(ptr::null_mut(), |p| pv(p).cbase)
}

/// `bufferevent_free` from code that runs on the base already (`b` is its Rust base): revent-http
/// giving back a bufferevent it was lent. Its socket is taken off and closed first (the HTTP
/// connection owned it, whatever the bufferevent's options).
pub(crate) fn free_on(b: &mut EventBase, bev: *mut bufferevent) {
    let Some(p) = private(bev, "bufferevent_free") else {
        return;
    };
    if let Some(h) = pv(p).h {
        drop(h.set_fd(b, None));
    }
    free_in(Some(b), bev, p);
}
