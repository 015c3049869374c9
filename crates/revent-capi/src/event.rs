//! `struct event`: libevent's 128-byte event, in memory the C program owns (`event_assign` on a struct
//! of its own) or that `event_new` allocates.
//!
//! The struct keeps libevent's layout for every field a program may read (`ev_base` at 64, which
//! memcached reads; `ev_fd`, `ev_events`, `ev_res`, the callback and its argument, the flags that
//! `event_initialized` tests). The bytes of libevent's active-queue link (offset 0) hold what revent
//! needs: the handle of the Rust event that stands for this one, and a marker telling it from
//! garbage. The Rust event is made when the C event is first added or activated, and freed when the
//! struct is freed or assigned again.
//!
//! Every call routes through `thread::reach`: from another thread than the one running the base's
//! loop, `event_add`, `event_active`, `event_remove_timer` and `event_del_noblock` are posted to the
//! loop; `event_del`, `event_del_block` and `event_free` are posted and wait until the loop has done
//! them (so the callback is not running when they return); the rest run on the loop's thread.

use crate::base::{self, call_out, opt_duration, with_base, with_base_local, CBase};
use crate::thread::{self, Op, Reach};
use crate::{evutil_socket_t, guard, logging, mem, SendPtr};
use libc::{c_int, c_short, c_void, timeval};
use revent::{EventBase, EventId, Fired, What};
use std::ptr::{self, addr_of, addr_of_mut};
use std::time::Duration;

/// `event_callback_fn`.
pub type event_callback_fn = Option<CallbackFn>;
/// A non-null `event_callback_fn`.
type CallbackFn = unsafe extern "C" fn(evutil_socket_t, c_short, *mut c_void);
/// `event_finalize_callback_fn`.
pub type event_finalize_callback_fn = Option<unsafe extern "C" fn(*mut event, *mut c_void)>;

/// libevent's `struct event` on x86_64, field for field where C may look.
#[repr(C)]
pub struct event {
    /// libevent's `evcb_active_next`: here, the Rust event's handle and [`MAGIC`].
    id: u64,
    magic: u64,
    flags: c_short,
    pri: u8,
    closure: u8,
    _pad0: u32,
    callback: event_callback_fn,
    arg: *mut c_void,
    _timeout_pos: [u64; 2],
    fd: evutil_socket_t,
    _pad1: u32,
    base: *mut CBase,
    _io: [u64; 4],
    events: c_short,
    res: c_short,
    _pad2: u32,
    timeout: timeval,
}

const _: () = {
    assert!(std::mem::size_of::<event>() == 128);
    assert!(std::mem::offset_of!(event, flags) == 16);
    assert!(std::mem::offset_of!(event, pri) == 18);
    assert!(std::mem::offset_of!(event, callback) == 24);
    assert!(std::mem::offset_of!(event, arg) == 32);
    assert!(std::mem::offset_of!(event, fd) == 56);
    assert!(std::mem::offset_of!(event, base) == 64);
    assert!(std::mem::offset_of!(event, events) == 104);
    assert!(std::mem::offset_of!(event, res) == 106);
    assert!(std::mem::offset_of!(event, timeout) == 112);
};

/// `EVLIST_INIT`: set by `event_assign`, tested by `event_initialized`.
const EVLIST_INIT: c_short = 0x80;
/// Marks `id` as revent's (garbage in caller-owned memory is not).
const MAGIC: u64 = 0x7265_7665_6e74_2121;
/// What `event_self_cbarg` returns: "pass the event itself as the argument".
static SELF_CBARG: u8 = 0;

fn self_cbarg() -> *mut c_void {
    addr_of!(SELF_CBARG).cast_mut().cast()
}

// Field access through raw pointers only: the C program holds pointers to the struct too.
macro_rules! get {
    ($ev:expr, $f:ident) => {{
        #[allow(unused_unsafe)]
        // SAFETY: callers pass a pointer to a live struct event (the C API's contract).
        let v = unsafe { ptr::read(addr_of!((*$ev).$f)) };
        v
    }};
}
macro_rules! set {
    ($ev:expr, $f:ident, $v:expr) => {{
        #[allow(unused_unsafe)]
        // SAFETY: as in `get!`; the struct is writable.
        unsafe {
            ptr::write(addr_of_mut!((*$ev).$f), $v)
        }
    }};
}

/// The Rust event standing for `ev`, if it has one in its base.
fn rust_id(ev: *mut event) -> Option<EventId> {
    (get!(ev, magic) == MAGIC && get!(ev, id) != 0).then(|| EventId::from_raw(get!(ev, id)))
}

/// The address-to-event map of base `b` (outside the Rust base, so reachable while a callback of
/// the base runs).
///
/// # Safety
/// `b` is a live base.
unsafe fn events_of<'a>(
    b: *mut CBase,
) -> &'a mut std::collections::HashMap<SendPtr<event>, EventId> {
    // SAFETY: the caller's contract; `events` is a field apart from the `EventBase` that a running
    // dispatcher borrows, and the reference is used for one map operation at a time.
    unsafe { &mut *addr_of_mut!((*b).events) }
}

/// Frees the Rust event standing for the struct at `ev` in base `b`, if there is one. Reads nothing
/// from the struct: it may be fresh, uninitialized memory about to be assigned. Runs where the base
/// may be used ([`Reach::Here`], or an op on the loop's thread).
pub(crate) fn release_now(b: *mut CBase, ev: *mut event) {
    if b.is_null() {
        return;
    }
    // SAFETY: a live base (C's contract while its events exist), used by this thread now.
    let old = unsafe { events_of(b) }.remove(&SendPtr::new(ev));
    if let Some(id) = old {
        // SAFETY: as above.
        unsafe { with_base_local(b, |base| base.free(id)) };
    }
}

/// How a release from another thread than the loop's waits.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// Until the loop has done it: the memory is about to be freed (`event_free`).
    Done,
    /// Not at all, nor wake the loop: the struct is being assigned again, and the old event (which C
    /// had to delete first) only needs cleaning up, which happens with the next op.
    Lazy,
}

/// Frees the Rust event standing for the struct at `ev` in base `b`, from any thread.
fn release_at(b: *mut CBase, ev: *mut event, wait: Wait) {
    // SAFETY: null or a live base (C's contract while its events exist).
    unsafe {
        thread::reach(b, |r| match r {
            Reach::Here => release_now(b, ev),
            Reach::Away(q) if wait == Wait::Done => q.post_wait(Op::Release {
                ev: SendPtr::new(ev),
            }),
            Reach::Away(q) => q.post_lazy(Op::Release {
                ev: SendPtr::new(ev),
            }),
        })
    };
}

/// Frees the Rust event standing for `ev` (before its memory is freed or moved to another base).
fn release(ev: *mut event, wait: Wait) {
    release_at(get!(ev, base), ev, wait);
    set!(ev, id, 0);
}

/// Runs `op` on the Rust event for `ev`, made first if it has none (the first add or activation)
/// or if its handle went stale. `None` (reported) if it could not be made.
///
/// The common case costs `op` alone: `op` is tried on the handle in the struct, and a
/// [`revent::Error::Stale`] answer (the handle names no event, so `op` did nothing) sends it to the
/// slow path.
#[inline]
fn with_event<R>(
    base: &mut EventBase,
    ev: *mut event,
    mut op: impl FnMut(&mut EventBase, EventId) -> revent::Result<R>,
) -> Option<revent::Result<R>> {
    if let Some(id) = rust_id(ev) {
        match op(base, id) {
            Err(revent::Error::Stale(_)) => {}
            r => return Some(r),
        }
    }
    let id = make(base, ev)?;
    Some(op(base, id))
}

/// Makes the Rust event standing for `ev` (replacing a stale handle).
#[cold]
#[inline(never)]
fn make(base: &mut EventBase, ev: *mut event) -> Option<EventId> {
    let cbase = get!(ev, base);
    let fd = get!(ev, fd);
    let what = What::from_bits_truncate(get!(ev, events) as u16);
    let made = base.new_event(fd, what, move |b, fired| run(cbase, b, ev, fired));
    let id = match made {
        Ok(id) => id,
        Err(e) => {
            log::warn!("event_add: {e}");
            return None;
        }
    };
    let pri = get!(ev, pri) as usize;
    if pri < base.priorities() {
        let _ = base.set_priority(id, pri);
    }
    set!(ev, id, id.to_raw());
    set!(ev, magic, MAGIC);
    // SAFETY: the struct's base is live.
    unsafe { events_of(cbase) }.insert(SendPtr::new(ev), id);
    Some(id)
}

/// The Rust event's callback: calls the C callback with libevent's arguments.
fn run(cbase: *mut CBase, b: &mut EventBase, ev: *mut event, fired: Fired) {
    // Read everything first: the C callback may free `ev`.
    set!(ev, res, fired.what.bits() as c_short);
    let Some(cb) = get!(ev, callback) else { return };
    let mut arg = get!(ev, arg);
    if arg == self_cbarg() {
        arg = ev.cast();
    }
    let fd = get!(ev, fd);
    let what = fired.what.bits() as c_short;
    if fired.what.contains(What::SIGNAL) {
        run_signal(cbase, b, (cb, fd, what, arg), fired.count);
        return;
    }
    // SAFETY: the program's callback, called with the arguments it registered; `cbase` is the
    // event's base, whose Rust base `b` runs this callback here.
    unsafe { call_out(cbase, b, || cb(fd, what, arg)) };
}

/// [`run`] for a signal: libevent runs a signal event's callback once per arrival.
#[cold]
#[inline(never)]
fn run_signal(
    cbase: *mut CBase,
    b: &mut EventBase,
    (cb, fd, what, arg): (CallbackFn, evutil_socket_t, c_short, *mut c_void),
    count: u32,
) {
    let call = || {
        for _ in 0..count.max(1) {
            // SAFETY: the program's callback, called with the arguments it registered.
            unsafe { cb(fd, what, arg) };
        }
    };
    // SAFETY: `cbase` is the event's base, whose Rust base `b` runs this callback here.
    unsafe { call_out(cbase, b, call) };
}

/// The priority a new event of base `b` gets: the middle one, as in libevent. Read without touching
/// the Rust base, so that another thread can make events while the loop runs.
fn default_priority(b: *mut CBase) -> u8 {
    // SAFETY: a live base; `npri` is an atomic.
    (unsafe { (*b).sync.npri.load(std::sync::atomic::Ordering::Relaxed) } / 2) as u8
}

/// `event_assign`: fills `ev` (memory the caller owns) for `base`.
#[no_mangle]
pub unsafe extern "C" fn event_assign(
    ev: *mut event,
    b: *mut CBase,
    fd: evutil_socket_t,
    events: c_short,
    callback: event_callback_fn,
    arg: *mut c_void,
) -> c_int {
    guard(-1, || {
        if ev.is_null() || b.is_null() {
            return -1;
        }
        logging::note_setup();
        let what = What::from_bits_truncate(events as u16);
        if what.contains(What::SIGNAL) && what.intersects(What::READ | What::WRITE | What::CLOSED) {
            log::warn!(
                "event_assign: EV_SIGNAL may not be combined with EV_READ, EV_WRITE or EV_CLOSED"
            );
            return -1;
        }
        // Memory that held an event of this base before: that event goes.
        release_at(b, ev, Wait::Lazy);
        // SAFETY: `ev` points to 128 writable bytes (the caller's contract).
        unsafe { ptr::write_bytes(ev.cast::<u8>(), 0, std::mem::size_of::<event>()) };
        set!(ev, flags, EVLIST_INIT);
        set!(ev, callback, callback);
        set!(ev, arg, arg);
        set!(ev, fd, fd);
        set!(ev, base, b);
        set!(ev, events, events);
        set!(ev, pri, default_priority(b));
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_new(
    b: *mut CBase,
    fd: evutil_socket_t,
    events: c_short,
    callback: event_callback_fn,
    arg: *mut c_void,
) -> *mut event {
    guard(ptr::null_mut(), || {
        let ev = mem::malloc(std::mem::size_of::<event>()).cast::<event>();
        if ev.is_null() {
            return ptr::null_mut();
        }
        // Fresh memory: not an initialized event.
        set!(ev, flags, 0);
        // SAFETY: `ev` is 128 fresh bytes; the rest is the caller's.
        if unsafe { event_assign(ev, b, fd, events, callback, arg) } != 0 {
            // SAFETY: from mem::malloc just above.
            unsafe { mem::free(ev.cast()) };
            return ptr::null_mut();
        }
        ev
    })
}

/// `event_free`: deletes and frees an event from `event_new`. From another thread than the loop's it
/// waits until the loop has deleted it, so its callback is not running when this returns.
#[no_mangle]
pub unsafe extern "C" fn event_free(ev: *mut event) {
    guard((), || {
        if ev.is_null() {
            return;
        }
        release(ev, Wait::Done);
        set!(ev, flags, 0);
        // SAFETY: an event from event_new (C's contract), freed once.
        unsafe { mem::free(ev.cast()) };
    })
}

/// `event_set` (1.x): `event_assign` on the current base.
#[no_mangle]
pub unsafe extern "C" fn event_set(
    ev: *mut event,
    fd: evutil_socket_t,
    events: c_short,
    callback: event_callback_fn,
    arg: *mut c_void,
) {
    // libevent's event_set works without a current base too (event_base_set follows): assign to
    // the current one, or fill the struct with no base.
    let cur = base::current();
    if !cur.is_null() {
        // SAFETY: forwarded with the caller's contract.
        unsafe { event_assign(ev, cur, fd, events, callback, arg) };
        return;
    }
    guard((), || {
        if ev.is_null() {
            return;
        }
        // SAFETY: `ev` points to 128 writable bytes.
        unsafe { ptr::write_bytes(ev.cast::<u8>(), 0, std::mem::size_of::<event>()) };
        set!(ev, flags, EVLIST_INIT);
        set!(ev, callback, callback);
        set!(ev, arg, arg);
        set!(ev, fd, fd);
        set!(ev, events, events);
    })
}

/// `event_base_set`: moves a not-yet-added event to `base`.
#[no_mangle]
pub unsafe extern "C" fn event_base_set(b: *mut CBase, ev: *mut event) -> c_int {
    guard(-1, || {
        if ev.is_null() || b.is_null() || get!(ev, flags) & EVLIST_INIT == 0 {
            return -1;
        }
        if get!(ev, base) != b {
            release(ev, Wait::Lazy);
            set!(ev, base, b);
            set!(ev, pri, default_priority(b));
        }
        0
    })
}

/// The checks every call on an event makes: a non-null, initialized event with a base.
#[inline]
fn usable(ev: *mut event, what: &str) -> bool {
    if !ev.is_null() && get!(ev, flags) & EVLIST_INIT != 0 && !get!(ev, base).is_null() {
        return true;
    }
    unusable(ev, what);
    false
}

/// Reports why [`usable`] refused `ev`.
#[cold]
#[inline(never)]
fn unusable(ev: *mut event, what: &str) {
    if ev.is_null() {
        log::warn!("{what}: NULL event");
        return;
    }
    if get!(ev, flags) & EVLIST_INIT == 0 {
        let msg = format!("{what}: event has not been initialized (event_assign/event_new)");
        if logging::DEBUG_MODE.load(std::sync::atomic::Ordering::Relaxed) {
            logging::fatal_msg(&msg);
        }
        log::warn!("{msg}");
        return;
    }
    if get!(ev, base).is_null() {
        log::warn!("{what}: event has no base");
    }
}

/// `event_add` where the base may be used.
#[inline]
pub(crate) fn add_now(base: &mut EventBase, ev: *mut event, timeout: Option<Duration>) -> c_int {
    match with_event(base, ev, |base, id| base.add(id, timeout)) {
        Some(Ok(())) => 0,
        Some(Err(e)) => failed("event_add", e),
        None => -1,
    }
}

/// Reports a failed call: -1.
#[cold]
#[inline(never)]
fn failed(what: &str, e: revent::Error) -> c_int {
    log::warn!("{what}: {e}");
    -1
}

/// `event_add`: makes the event pending, with an optional timeout. From another thread than the
/// loop's it is posted to the loop (waking it) and returns 0; an error shows in the log.
#[no_mangle]
pub unsafe extern "C" fn event_add(ev: *mut event, tv: *const timeval) -> c_int {
    guard(-1, || {
        if !usable(ev, "event_add") {
            return -1;
        }
        // SAFETY: null or a readable timeval (the caller's contract).
        let timeout = unsafe { opt_duration(tv) };
        let b = get!(ev, base);
        // SAFETY: the event's base is live; each branch uses it as routed.
        let r = unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => with_base_local(b, |base| add_now(base, ev, timeout)).unwrap_or(-1),
                Reach::Away(q) => post(q, Op::Add { ev, timeout }),
            })
        };
        r.unwrap_or(-1)
    })
}

/// Posts `op` to the loop running on another thread: 0. Out of line, to keep the direct path lean.
#[cold]
#[inline(never)]
fn post(q: &thread::Poster<'_>, op: Op) -> c_int {
    q.post(op);
    0
}

/// `event_del` where the base may be used.
#[inline]
pub(crate) fn del_now(base: &mut EventBase, ev: *mut event) -> c_int {
    if let Some(id) = rust_id(ev) {
        // A stale handle (the event was freed) is not an error: there is nothing to delete.
        let _ = base.del(id);
    }
    0
}

/// The three deletes: from another thread than the loop's, posted, and waited for unless `wait` is
/// false.
#[inline]
fn del(ev: *mut event, wait: bool) -> c_int {
    if ev.is_null() {
        return -1;
    }
    let b = get!(ev, base);
    if b.is_null() {
        log::warn!("event_del: event has no base");
        return -1;
    }
    // SAFETY: the event's base is live; each branch uses it as routed.
    let r = unsafe {
        thread::reach(b, |r| match r {
            Reach::Here => with_base_local(b, |base| del_now(base, ev)).unwrap_or(-1),
            Reach::Away(q) => {
                if wait {
                    q.post_wait(Op::Del { ev });
                } else {
                    q.post(Op::Del { ev });
                }
                0
            }
        })
    };
    r.unwrap_or(-1)
}

/// `event_del`: makes the event non-pending. From another thread than the loop's it waits until the
/// loop has done it, so the event's callback is not running when this returns (as libevent does).
#[no_mangle]
pub unsafe extern "C" fn event_del(ev: *mut event) -> c_int {
    guard(-1, || del(ev, true))
}

/// `event_del_block`: `event_del`, always waiting for a running callback (as `event_del` does here).
#[no_mangle]
pub unsafe extern "C" fn event_del_block(ev: *mut event) -> c_int {
    guard(-1, || del(ev, true))
}

/// `event_del_noblock`: `event_del` that does not wait for the loop: from another thread the
/// callback may still be running, or about to run once, when this returns.
#[no_mangle]
pub unsafe extern "C" fn event_del_noblock(ev: *mut event) -> c_int {
    guard(-1, || del(ev, false))
}

/// `event_remove_timer` where the base may be used.
#[inline]
pub(crate) fn remove_timer_now(base: &mut EventBase, ev: *mut event) -> c_int {
    let Some(id) = rust_id(ev) else { return 0 };
    base.remove_timer(id).map_or(-1, |()| 0)
}

/// `event_remove_timer`: removes the event's timeout, leaving it pending on its fd or signal. From
/// another thread than the loop's it is posted and returns 0.
#[no_mangle]
pub unsafe extern "C" fn event_remove_timer(ev: *mut event) -> c_int {
    guard(-1, || {
        if !usable(ev, "event_remove_timer") {
            return -1;
        }
        let b = get!(ev, base);
        // SAFETY: the event's base is live; each branch uses it as routed.
        let r = unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => with_base_local(b, |base| remove_timer_now(base, ev)).unwrap_or(-1),
                Reach::Away(q) => {
                    q.post(Op::RemoveTimer { ev });
                    0
                }
            })
        };
        r.unwrap_or(-1)
    })
}

/// `event_active` where the base may be used.
#[inline]
pub(crate) fn active_now(base: &mut EventBase, ev: *mut event, res: c_int, ncalls: c_short) {
    let what = What::from_bits_truncate(res as u16);
    let _ = with_event(base, ev, |base, id| {
        base.activate(id, what, ncalls.max(1) as u32)
    });
}

/// `event_active`: runs the event's callback at the next chance with `res` as its result, as if it
/// had happened. From another thread than the loop's it is posted (waking the loop).
#[no_mangle]
pub unsafe extern "C" fn event_active(ev: *mut event, res: c_int, ncalls: c_short) {
    guard((), || {
        if !usable(ev, "event_active") {
            return;
        }
        let b = get!(ev, base);
        // SAFETY: the event's base is live; each branch uses it as routed.
        unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => {
                    with_base_local(b, |base| active_now(base, ev, res, ncalls));
                }
                Reach::Away(q) => {
                    q.post(Op::Active { ev, res, ncalls });
                }
            })
        };
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_pending(
    ev: *const event,
    events: c_short,
    tv: *mut timeval,
) -> c_int {
    guard(0, || {
        let ev = ev.cast_mut();
        if ev.is_null() || get!(ev, flags) & EVLIST_INIT == 0 {
            return 0;
        }
        let ask = What::from_bits_truncate(events as u16);
        // SAFETY: the event's base is live.
        let r = unsafe {
            with_base(get!(ev, base), |base| {
                let id = rust_id(ev)?;
                let (what, deadline) = base.pending(id, ask).ok()?;
                // libevent reports the expiry on the wall clock.
                let wall = deadline.map(|d| {
                    let now = base.now_cached();
                    let wall_now = base.wall_cached();
                    match d.checked_duration_since(now) {
                        Some(ahead) => wall_now + ahead,
                        None => wall_now - now.saturating_duration_since(d),
                    }
                });
                Some((what, wall))
            })
        };
        let Some(Some((what, wall))) = r else {
            return 0;
        };
        if let (false, Some(w)) = (tv.is_null(), wall) {
            // SAFETY: `tv` is non-null and writable (the caller's contract).
            unsafe { tv.write(base::to_timeval(w)) };
        }
        what.bits() as c_int
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_initialized(ev: *const event) -> c_int {
    if ev.is_null() {
        return 0;
    }
    (get!(ev.cast_mut(), flags) & EVLIST_INIT != 0) as c_int
}

/// `event_debug_unassign`: forgets an event whose memory the program is about to free (waiting, from
/// another thread, until the loop has freed its Rust event).
#[no_mangle]
pub unsafe extern "C" fn event_debug_unassign(ev: *mut event) {
    guard((), || {
        if !ev.is_null() {
            release(ev, Wait::Done);
            set!(ev, flags, 0);
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_priority_set(ev: *mut event, pri: c_int) -> c_int {
    guard(-1, || {
        if !usable(ev, "event_priority_set") || pri < 0 {
            return -1;
        }
        // SAFETY: the event's base is live.
        let ok = unsafe {
            with_base(get!(ev, base), |base| {
                if pri as usize >= base.priorities() {
                    return false;
                }
                let ok = match rust_id(ev) {
                    Some(id) => base.set_priority(id, pri as usize).is_ok(),
                    None => true,
                };
                if ok {
                    // Here, with the base: the loop's thread reads it when it makes the event.
                    set!(ev, pri, pri as u8);
                }
                ok
            })
        };
        if ok != Some(true) {
            return -1;
        }
        0
    })
}

// ---- accessors ----

#[no_mangle]
pub extern "C" fn event_get_struct_event_size() -> usize {
    std::mem::size_of::<event>()
}

#[no_mangle]
pub unsafe extern "C" fn event_get_fd(ev: *const event) -> evutil_socket_t {
    get!(ev.cast_mut(), fd)
}

#[no_mangle]
pub unsafe extern "C" fn event_get_base(ev: *const event) -> *mut CBase {
    get!(ev.cast_mut(), base)
}

#[no_mangle]
pub unsafe extern "C" fn event_get_events(ev: *const event) -> c_short {
    get!(ev.cast_mut(), events)
}

#[no_mangle]
pub unsafe extern "C" fn event_get_callback(ev: *const event) -> event_callback_fn {
    get!(ev.cast_mut(), callback)
}

#[no_mangle]
pub unsafe extern "C" fn event_get_callback_arg(ev: *const event) -> *mut c_void {
    get!(ev.cast_mut(), arg)
}

#[no_mangle]
pub unsafe extern "C" fn event_get_priority(ev: *const event) -> c_int {
    get!(ev.cast_mut(), pri) as c_int
}

#[no_mangle]
pub unsafe extern "C" fn event_get_assignment(
    ev: *const event,
    base_out: *mut *mut CBase,
    fd_out: *mut evutil_socket_t,
    events_out: *mut c_short,
    callback_out: *mut event_callback_fn,
    arg_out: *mut *mut c_void,
) {
    let ev = ev.cast_mut();
    // SAFETY: each out pointer is null or writable (the caller's contract).
    unsafe {
        if !base_out.is_null() {
            base_out.write(get!(ev, base));
        }
        if !fd_out.is_null() {
            fd_out.write(get!(ev, fd));
        }
        if !events_out.is_null() {
            events_out.write(get!(ev, events));
        }
        if !callback_out.is_null() {
            callback_out.write(get!(ev, callback));
        }
        if !arg_out.is_null() {
            arg_out.write(get!(ev, arg));
        }
    }
}

#[no_mangle]
pub extern "C" fn event_self_cbarg() -> *mut c_void {
    self_cbarg()
}

// ---- once, finalizers ----

struct OnceCall {
    cb: unsafe extern "C" fn(evutil_socket_t, c_short, *mut c_void),
    arg: SendPtr<c_void>,
    fd: evutil_socket_t,
}

/// `event_base_once`: calls `callback` once, when `fd` is ready or `tv` has passed. From another
/// thread than the loop's it is posted and returns 0.
#[no_mangle]
pub unsafe extern "C" fn event_base_once(
    b: *mut CBase,
    fd: evutil_socket_t,
    events: c_short,
    callback: event_callback_fn,
    arg: *mut c_void,
    tv: *const timeval,
) -> c_int {
    guard(-1, || {
        let Some(cb) = callback else { return -1 };
        let what = What::from_bits_truncate(events as u16);
        if what.intersects(What::SIGNAL | What::PERSIST) {
            return -1;
        }
        // SAFETY: null or a readable timeval.
        let timeout = unsafe { opt_duration(tv) };
        let call = OnceCall {
            cb,
            arg: SendPtr::new(arg),
            fd,
        };
        let cbase = SendPtr::new(b);
        let schedule = move |base: &mut EventBase| {
            base.once(
                fd,
                what & (What::READ | What::WRITE),
                timeout,
                move |rb, fired| {
                    let run = || {
                        // SAFETY: the program's callback with its own argument.
                        unsafe { (call.cb)(call.fd, fired.what.bits() as c_short, call.arg.get()) }
                    };
                    // SAFETY: `cbase` is the base running this callback on `rb`, its Rust base.
                    unsafe { call_out(cbase.get(), rb, run) }
                },
            )
            .map_or(-1, |()| 0)
        };
        // SAFETY: a live base; each branch uses it as routed.
        let r = unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => with_base_local(b, schedule).unwrap_or(-1),
                Reach::Away(q) => {
                    q.post(Op::Call(Box::new(move || {
                        // Ops run where the base may be used.
                        with_base_local(b, schedule);
                    })));
                    0
                }
            })
        };
        r.unwrap_or(-1)
    })
}

/// `event_once` (1.x): `event_base_once` on the current base.
#[no_mangle]
pub unsafe extern "C" fn event_once(
    fd: evutil_socket_t,
    events: c_short,
    callback: event_callback_fn,
    arg: *mut c_void,
    tv: *const timeval,
) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    unsafe { event_base_once(base::current(), fd, events, callback, arg, tv) }
}

/// Deletes `ev` and calls `cb(ev, arg)` from the loop once no callback of it can be running (here:
/// at the next turn of the loop), freeing it afterwards if `free` is set. Never waits: from another
/// thread than the loop's it is posted.
fn finalize(ev: *mut event, cb: event_finalize_callback_fn, free: bool) -> c_int {
    if !usable(ev, "event_finalize") {
        return -1;
    }
    let b = get!(ev, base);
    let (evp, cbase) = (SendPtr::new(ev), SendPtr::new(b));
    let schedule = move || {
        let (b, ev) = (cbase.get(), evp.get());
        release_now(b, ev);
        set!(ev, id, 0);
        let once = move |base: &mut EventBase| {
            base.once(-1, What::NONE, Some(Duration::ZERO), move |rb, _| {
                let run = || {
                    if let Some(cb) = cb {
                        // SAFETY: the program's finalizer with the event and its argument.
                        unsafe { cb(ev, get!(ev, arg)) };
                    }
                };
                // SAFETY: `b` is the base running this callback on `rb`, its Rust base.
                unsafe { call_out(b, rb, run) };
                if free {
                    set!(ev, flags, 0);
                    // SAFETY: an event from event_new, finalized once.
                    unsafe { mem::free(ev.cast()) };
                }
            })
            .map_or(-1, |()| 0)
        };
        // SAFETY: runs where the base may be used (routed below).
        unsafe { with_base_local(b, once) }.unwrap_or(-1)
    };
    // SAFETY: the event's base is live; each branch uses it as routed.
    let r = unsafe {
        thread::reach(b, |r| match r {
            Reach::Here => schedule(),
            Reach::Away(q) => {
                q.post(Op::Call(Box::new(move || {
                    schedule();
                })));
                0
            }
        })
    };
    r.unwrap_or(-1)
}

#[no_mangle]
pub unsafe extern "C" fn event_finalize(
    _flags: u32,
    ev: *mut event,
    cb: event_finalize_callback_fn,
) -> c_int {
    guard(-1, || finalize(ev, cb, false))
}

#[no_mangle]
pub unsafe extern "C" fn event_free_finalize(
    _flags: u32,
    ev: *mut event,
    cb: event_finalize_callback_fn,
) -> c_int {
    guard(-1, || finalize(ev, cb, true))
}

// ---- the base's view of its C events ----

/// The C struct standing for Rust event `id` in base `b`, if it is one (not an event of the library
/// itself, such as a bufferevent's).
fn c_event_of(b: *mut CBase, id: EventId) -> *mut event {
    // SAFETY: a live base; the map is apart from the Rust base.
    let map = unsafe { events_of(b) };
    map.iter()
        .find(|(_, &v)| v == id)
        .map_or(ptr::null_mut(), |(&addr, _)| addr.get())
}

/// `event_base_active_by_fd`: activates the events on `fd` as if it were ready for `events`. From
/// another thread than the loop's it is posted.
#[no_mangle]
pub unsafe extern "C" fn event_base_active_by_fd(
    b: *mut CBase,
    fd: evutil_socket_t,
    events: c_short,
) {
    guard((), || {
        let what =
            What::from_bits_truncate(events as u16) & (What::READ | What::WRITE | What::CLOSED);
        let act = move |base: &mut EventBase| {
            base.activate_fd(fd, what);
        };
        // SAFETY: a live base; each branch uses it as routed.
        unsafe { on_base_or_post(b, act) };
    })
}

/// `event_base_active_by_signal`: activates the events of signal `sig` as if it had arrived. From
/// another thread than the loop's it is posted.
#[no_mangle]
pub unsafe extern "C" fn event_base_active_by_signal(b: *mut CBase, sig: c_int) {
    guard((), || {
        let act = move |base: &mut EventBase| {
            base.activate_signal(sig);
        };
        // SAFETY: a live base; each branch uses it as routed.
        unsafe { on_base_or_post(b, act) };
    })
}

/// Runs `f` on base `b` here if this thread may use it, or posts it to the loop (not waiting).
///
/// # Safety
/// `b` is null or a live base.
unsafe fn on_base_or_post(b: *mut CBase, f: impl FnOnce(&mut EventBase) + 'static) {
    // SAFETY: the caller's contract; each branch uses the base as routed.
    unsafe {
        thread::reach(b, |r| match r {
            Reach::Here => {
                with_base_local(b, f);
            }
            Reach::Away(q) => {
                q.post(Op::Call(Box::new(move || {
                    // Ops run where the base may be used.
                    with_base_local(b, f);
                })));
            }
        })
    };
}

/// `event_base_foreach_event_cb`.
pub type event_base_foreach_event_cb =
    Option<unsafe extern "C" fn(*const CBase, *const event, *mut c_void) -> c_int>;

/// Calls `cb` for every added or active C event of the base until it returns nonzero (returned).
/// From another thread than the loop's, the walk (and so `cb`) runs on the loop's thread between
/// two callbacks, while this thread waits: as libevent holds the base lock during the walk, nothing
/// else changes the base meanwhile.
#[no_mangle]
pub unsafe extern "C" fn event_base_foreach_event(
    b: *mut CBase,
    cb: event_base_foreach_event_cb,
    arg: *mut c_void,
) -> c_int {
    guard(-1, || {
        let Some(cb) = cb else { return -1 };
        let walk = || {
            // SAFETY: runs where the base may be used (routed below).
            let ids = unsafe {
                with_base_local(b, |base| {
                    let mut ids = Vec::new();
                    base.foreach_event(|info| {
                        ids.push(info.id);
                        true
                    });
                    ids
                })
            };
            let Some(ids) = ids else { return -1 };
            // The callbacks run outside any borrow of the base: they may call back into it.
            for id in ids {
                let ev = c_event_of(b, id);
                if ev.is_null() {
                    continue;
                }
                // SAFETY: the program's callback with the base, one of its events and its argument.
                let r = unsafe { cb(b, ev, arg) };
                if r != 0 {
                    return r;
                }
            }
            0
        };
        // SAFETY: a live base; each branch uses it as routed.
        let r = unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => walk(),
                Reach::Away(q) => q.call(walk).unwrap_or(-1),
            })
        };
        r.unwrap_or(-1)
    })
}

/// The C event whose callback is running, or NULL (also for an event of the library itself, and, as
/// in libevent, when called from another thread than the loop's).
#[no_mangle]
pub unsafe extern "C" fn event_base_get_running_event(b: *mut CBase) -> *mut event {
    guard(ptr::null_mut(), || {
        // SAFETY: a live base; used only when routed here.
        let r = unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => with_base_local(b, |base| base.running_event())
                    .flatten()
                    .map_or(ptr::null_mut(), |id| c_event_of(b, id)),
                Reach::Away(_) => ptr::null_mut(),
            })
        };
        r.unwrap_or(ptr::null_mut())
    })
}
