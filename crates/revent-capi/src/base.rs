//! `struct event_base` and `struct event_config`: creating bases, running the loop, and the one rule
//! that keeps the C side sound, [`with_base`] (see the crate docs; [`crate::thread`] for calls from
//! other threads).

use crate::guard;
use crate::thread::{self, BaseSync, Op, Reach};
use libc::{c_char, c_int, timeval};
use revent::{Config, ConfigFlags, EventBase, Features, LoopExit, LoopFlags, Method};
use std::ffi::CStr;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A `struct event_base *` points at one of these (from `Box::into_raw`).
pub struct CBase {
    pub(crate) base: EventBase,
    /// The Rust event standing for each C `struct event` of this base, by the struct's address: so
    /// that `event_assign` on a struct whose memory held an event before can free that one without
    /// reading the memory (which may be uninitialized).
    pub(crate) events:
        std::collections::HashMap<crate::SendPtr<crate::event::event>, revent::EventId>,
    /// Timevals handed out by `event_base_init_common_timeout`: their addresses must stay valid for
    /// the base's life (C passes them back to `event_add`), hence boxed: the vector may move.
    #[allow(clippy::vec_box)]
    common: Vec<Box<timeval>>,
    /// Which thread runs the loop, the base lock, the queue of calls from other threads.
    pub(crate) sync: BaseSync,
    /// Who holds the base on the thread using it ([`with_base_local`], [`call_out`]).
    holders: Holders,
    /// Its bufferevents, which `event_base_loop` syncs before it runs.
    pub(crate) bevs: crate::bufferevent::BaseBevs,
}

pub type event_base = CBase;

/// `struct event_config *`.
pub struct event_config {
    cfg: Config,
}

/// The base `event_init` made: what the 1.x functions (`event_set`, `event_dispatch`, ...) use.
static CURRENT: AtomicPtr<CBase> = AtomicPtr::new(ptr::null_mut());

/// The base of the 1.x API, or null.
pub fn current() -> *mut CBase {
    CURRENT.load(Ordering::Acquire)
}

/// Who holds a base now: the innermost of a stack of holders whose frames live on the Rust stack of
/// the thread using the base (each [`hold`] guard keeps the holder it replaced and puts it back when
/// dropped). A field of [`CBase`] rather than a thread-local, so that reaching it costs no
/// `__tls_get_addr` call (which every thread-local access is in a shared library).
///
/// One stack per base is enough because only a thread that may use the base (see
/// [`crate::thread`]) pushes holders, and the holders of a base never interleave between threads:
/// the loop's thread pushes them while it owns the base (from `event_base_loop`'s claim to its
/// release), any other thread only under the base lock while no loop runs, and with threads not
/// enabled one thread uses the base at a time (libevent's contract). So the stack is read only by
/// the thread that pushed it, or by one that the base lock orders after its pushes and pops: the
/// thread module reads it only holding the lock and knowing this thread owns the loop. An atomic
/// (relaxed: a plain move on x86-64) all the same, so that a program breaking that contract cannot
/// make a data race of it.
pub(crate) struct Holders {
    /// The innermost holder: null when nothing holds the base, [`OWN`] while revent's own code
    /// holds it without lending it (inside [`with_base_local`]), otherwise the pointer derived from
    /// the dispatcher's `&mut EventBase` that [`call_out`] lent to a foreign callback.
    top: AtomicPtr<EventBase>,
}

/// The holder standing for revent's own code: never a real pointer (not even aligned).
const OWN: *mut EventBase = ptr::without_provenance_mut(1);

impl Holders {
    fn new() -> Holders {
        Holders {
            top: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// The holders of base `p`.
///
/// # Safety
/// `p` is a live base.
#[inline]
unsafe fn holders<'a>(p: *mut CBase) -> &'a Holders {
    // SAFETY: the caller's contract; a shared reference to this one field (an atomic), apart from
    // the `EventBase` a running dispatcher may borrow mutably.
    unsafe { &*ptr::addr_of!((*p).holders) }
}

/// Pushes a holder `d` of `p` (see [`Holders`]) for the life of the returned guard.
///
/// # Safety
/// `p` is a live base that outlives the guard, and this thread may use it now.
#[inline]
unsafe fn hold(p: *mut CBase, d: *mut EventBase) -> Hold<'static> {
    // SAFETY: the caller's contract.
    let h = unsafe { holders(p) };
    // Not `swap`: that is a locked instruction, and only this thread writes the holders.
    let prev = h.top.load(Ordering::Relaxed);
    Hold::push(h, prev, d)
}

/// Puts the holder it replaced back when dropped (also on unwinding).
struct Hold<'a> {
    h: &'a Holders,
    prev: *mut EventBase,
}

impl<'a> Hold<'a> {
    /// Makes `d` the innermost holder in `h`, whose innermost holder is `prev` now.
    #[inline]
    fn push(h: &'a Holders, prev: *mut EventBase, d: *mut EventBase) -> Hold<'a> {
        h.top.store(d, Ordering::Relaxed);
        Hold { h, prev }
    }
}

impl Drop for Hold<'_> {
    #[inline]
    fn drop(&mut self) {
        self.h.top.store(self.prev, Ordering::Relaxed);
    }
}

/// Whether a callback of base `p` runs with nothing having taken the base back since: the innermost
/// holder is a pointer [`call_out`] lent.
///
/// # Safety
/// `p` is a live base, and this thread is the one using it (it owns its loop, or threads are not
/// enabled): otherwise the holders are another thread's.
#[inline]
pub(crate) unsafe fn in_callback_of(p: *mut CBase) -> bool {
    // SAFETY: the caller's contract.
    let top = unsafe { holders(p) }.top.load(Ordering::Relaxed);
    !top.is_null() && top != OWN
}

/// Runs `f` with the Rust base behind `p`, from any thread: where this thread may use the base (see
/// `thread::reach`) directly, otherwise on the thread running its loop, waiting for the result. So
/// `f` must not rely on the calling thread (its thread-locals), and must not call C code: C code
/// that re-enters the base would make a second `&mut` while `f`'s is alive. `None` for a null `p`
/// (or when `f` could not run, which is reported).
///
/// # Safety
/// `p` is null or a live base from `event_base_new*`.
pub unsafe fn with_base<R>(p: *mut CBase, f: impl FnOnce(&mut EventBase) -> R) -> Option<R> {
    // SAFETY: the caller's contract; each branch runs where the route says the base may be used.
    let r = unsafe {
        thread::reach(p, |r| match r {
            Reach::Here => with_base_local(p, f),
            Reach::Away(q) => q.call(|| with_base_local(p, f)).flatten(),
        })
    };
    r.flatten()
}

/// Runs `f` with the Rust base behind `p` on this thread. Inside a callback of that base (on this
/// thread) this is the pointer derived from the `&mut EventBase` the dispatcher lent the callback;
/// otherwise a short-lived `&mut` from `p` itself. `None` for a null `p`, and, with a warning, for
/// foreign code that revent's own work on the base reaches without lending it the base (a C filter
/// function, a C callback of a bufferevent's evbuffer run while revent reads into it): a second
/// `&mut` there would alias the one revent is using.
///
/// # Safety
/// `p` is null or a live base from `event_base_new*` that this thread may use now: it runs a
/// callback of the base, or no loop runs on the base and no other thread uses it (the base lock is
/// held, or threads are not enabled), or it is the loop's own thread claiming or giving up the base.
pub unsafe fn with_base_local<R>(p: *mut CBase, f: impl FnOnce(&mut EventBase) -> R) -> Option<R> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller's contract: a live base this thread may use now. Its holders, if any, are
    // then this thread's (see `Holders`).
    let h = unsafe { holders(p) };
    let top = h.top.load(Ordering::Relaxed);
    let b: &mut EventBase = if top.is_null() {
        // SAFETY: the caller's contract: a live base, and nothing holds it on this thread (nor on
        // another: see `Holders`), so nothing else borrows it now.
        unsafe { &mut (*p).base }
    } else if top == OWN {
        refuse_own();
        return None;
    } else {
        // SAFETY: `top` was derived from the dispatcher's `&mut EventBase`, which is not used while
        // the foreign callback runs; this reference ends before `call_out` returns.
        unsafe { &mut *top }
    };
    // While `f` has the base, foreign code it reaches without `call_out` is refused (above).
    let _held = Hold::push(h, top, OWN);
    Some(f(b))
}

#[cold]
fn refuse_own() {
    log::warn!(
        "revent: this code runs inside the library's own work on the event base, \
         which cannot be entered from here"
    );
}

/// Runs foreign code `f` from inside a callback of `cbase`, publishing `base` (the dispatcher's
/// reference) for re-entrant calls.
///
/// # Safety
/// `cbase` is null (nothing is published then) or the live base whose Rust base `base` is, which
/// this thread uses now (a callback of it runs here).
#[inline]
pub(crate) unsafe fn call_out<R>(
    cbase: *mut CBase,
    base: &mut EventBase,
    f: impl FnOnce() -> R,
) -> R {
    if cbase.is_null() {
        return f();
    }
    // SAFETY: the caller's contract; the guard ends before `base`'s borrow does.
    let _lent = unsafe { hold(cbase, base) };
    f()
}

/// A C timeval as a duration (negative parts count as zero).
pub fn duration(tv: &timeval) -> Duration {
    let secs = tv.tv_sec.max(0) as u64;
    let usecs = tv.tv_usec.clamp(0, 999_999) as u32;
    Duration::new(secs, usecs * 1000)
}

/// `Some(duration)` for a non-null timeval pointer.
///
/// # Safety
/// `tv` is null or points to a readable timeval.
pub unsafe fn opt_duration(tv: *const timeval) -> Option<Duration> {
    // SAFETY: the caller's contract.
    unsafe { tv.as_ref() }.map(duration)
}

/// A point in time as a C timeval (since the epoch).
pub fn to_timeval(t: SystemTime) -> timeval {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    }
}

fn new_base(cfg: &Config) -> *mut CBase {
    crate::logging::note_setup();
    // A C program may make a base on one thread and run or free it on another.
    let mut cfg = cfg.clone();
    cfg.run_on_any_thread(true);
    match EventBase::with_config(&cfg) {
        Ok(base) => Box::into_raw(Box::new(CBase {
            base,
            events: Default::default(),
            common: Vec::new(),
            sync: BaseSync::new(),
            holders: Holders::new(),
            bevs: Default::default(),
        })),
        Err(e) => {
            log::warn!("event_base_new: {e}");
            ptr::null_mut()
        }
    }
}

// ---- creating and freeing ----

#[no_mangle]
pub extern "C" fn event_base_new() -> *mut event_base {
    guard(ptr::null_mut(), || new_base(&Config::new()))
}

#[no_mangle]
pub unsafe extern "C" fn event_base_new_with_config(cfg: *const event_config) -> *mut event_base {
    guard(ptr::null_mut(), || {
        // SAFETY: C passes null or a config from event_config_new.
        match unsafe { cfg.as_ref() } {
            Some(c) => new_base(&c.cfg),
            None => new_base(&Config::new()),
        }
    })
}

/// `event_init`: a new base, which also becomes the 1.x API's current base.
#[no_mangle]
pub extern "C" fn event_init() -> *mut event_base {
    guard(ptr::null_mut(), || {
        let b = new_base(&Config::new());
        if !b.is_null() {
            CURRENT.store(b, Ordering::Release);
        }
        b
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_free(b: *mut event_base) {
    guard((), || {
        let b = if b.is_null() { current() } else { b };
        if b.is_null() {
            return;
        }
        // SAFETY: a live base (C's contract).
        if !unsafe { thread::can_free(b) } {
            log::warn!("event_base_free: the base's loop is running; not freed");
            return;
        }
        let _ = CURRENT.compare_exchange(b, ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire);
        // Bufferevents still in the base die with it (as in libevent, their memory is the
        // program's leak); the base's list of them goes with it.
        // SAFETY: a base from event_base_new*, freed once (C's contract); its events' closures hold
        // C pointers but are dropped without being called.
        drop(unsafe { Box::from_raw(b) });
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_free_nofinalize(b: *mut event_base) {
    // SAFETY: forwarded with the caller's contract.
    unsafe { event_base_free(b) }
}

/// `event_reinit`: re-creates the base's kernel state in a forked child (and its wake-up handle).
#[no_mangle]
pub unsafe extern "C" fn event_reinit(b: *mut event_base) -> c_int {
    guard(-1, || {
        let body = || {
            // SAFETY: runs where the route below says the base may be used.
            let r = unsafe { with_base_local(b, |base| base.reinit()) };
            let r = r.map_or(-1, |r| r.map_or(-1, |()| 0));
            if r == 0 {
                // SAFETY: as above.
                unsafe { thread::after_reinit(b) };
            }
            r
        };
        // SAFETY: the caller passes a live base.
        let r = unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => body(),
                Reach::Away(q) => q.call(body).unwrap_or(-1),
            })
        };
        r.unwrap_or(-1)
    })
}

// ---- the loop ----

fn loop_result(r: revent::Result<LoopExit>) -> c_int {
    match r {
        Ok(LoopExit::Done) => 0,
        Ok(LoopExit::NoEvents) => 1,
        Err(e) => {
            log::warn!("event_base_loop: {e}");
            -1
        }
    }
}

/// `event_base_loop`: runs the loop on this thread, which owns the base until it returns (calls from
/// other threads are then posted to it, see [`crate::thread`]).
#[no_mangle]
pub unsafe extern "C" fn event_base_loop(b: *mut event_base, flags: c_int) -> c_int {
    guard(-1, || {
        if b.is_null() {
            return -1;
        }
        let flags = LoopFlags::from_bits_truncate(flags as u32);
        // SAFETY: the caller passes a live base.
        let Some(_owner) = (unsafe { thread::claim(b) }) else {
            return -1;
        };
        // SAFETY: this thread owns the base now: other threads post to it instead of using it.
        unsafe {
            with_base_local(b, |base| {
                // Fields the program wrote into its `struct bufferevent`s since it last called on
                // them take effect before the loop reads or writes anything.
                crate::bufferevent::before_loop(b, base);
                loop_result(base.run(flags))
            })
        }
        .unwrap_or(-1)
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_dispatch(b: *mut event_base) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    unsafe { event_base_loop(b, 0) }
}

/// `event_base_loopexit`: the loop returns after the current iteration's callbacks, or after `tv`.
/// From another thread it is posted to the loop (waking it) and returns 0.
#[no_mangle]
pub unsafe extern "C" fn event_base_loopexit(b: *mut event_base, tv: *const timeval) -> c_int {
    guard(-1, || {
        // SAFETY: the caller passes a live base and a null or readable timeval.
        let after = unsafe { opt_duration(tv) };
        // SAFETY: as above.
        let r = unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => {
                    with_base_local(b, |base| base.loopexit(after).map_or(-1, |()| 0)).unwrap_or(-1)
                }
                Reach::Away(q) => {
                    q.post(Op::Exit(after));
                    0
                }
            })
        };
        r.unwrap_or(-1)
    })
}

/// `event_base_loopbreak`: the loop returns right after the running callback (or at once, if it
/// waits). From another thread it is posted to the loop (waking it) and returns 0.
#[no_mangle]
pub unsafe extern "C" fn event_base_loopbreak(b: *mut event_base) -> c_int {
    guard(-1, || {
        // SAFETY: the caller passes a live base.
        let r = unsafe {
            thread::reach(b, |r| match r {
                Reach::Here => with_base_local(b, |base| base.loopbreak()).map_or(-1, |()| 0),
                Reach::Away(q) => {
                    q.post(Op::Break);
                    0
                }
            })
        };
        r.unwrap_or(-1)
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_loopcontinue(b: *mut event_base) -> c_int {
    guard(-1, || {
        // SAFETY: the caller passes a live base.
        unsafe { with_base(b, |base| base.loopcontinue()) }.map_or(-1, |()| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_got_exit(b: *mut event_base) -> c_int {
    guard(0, || {
        // SAFETY: the caller passes a live base.
        unsafe { with_base(b, |base| base.got_exit() as c_int) }.unwrap_or(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_got_break(b: *mut event_base) -> c_int {
    guard(0, || {
        // SAFETY: the caller passes a live base.
        unsafe { with_base(b, |base| base.got_break() as c_int) }.unwrap_or(0)
    })
}

// ---- the 1.x API's current base ----

#[no_mangle]
pub extern "C" fn event_dispatch() -> c_int {
    // SAFETY: the current base is null or live (event_base_free clears it).
    unsafe { event_base_loop(current(), 0) }
}

#[no_mangle]
pub extern "C" fn event_loop(flags: c_int) -> c_int {
    // SAFETY: as in event_dispatch.
    unsafe { event_base_loop(current(), flags) }
}

#[no_mangle]
pub unsafe extern "C" fn event_loopexit(tv: *const timeval) -> c_int {
    // SAFETY: as in event_dispatch; the timeval is the caller's.
    unsafe { event_base_loopexit(current(), tv) }
}

#[no_mangle]
pub extern "C" fn event_loopbreak() -> c_int {
    // SAFETY: as in event_dispatch.
    unsafe { event_base_loopbreak(current()) }
}

#[no_mangle]
pub extern "C" fn event_priority_init(n: c_int) -> c_int {
    // SAFETY: as in event_dispatch.
    unsafe { event_base_priority_init(current(), n) }
}

#[no_mangle]
pub extern "C" fn event_get_method() -> *const c_char {
    // SAFETY: as in event_dispatch.
    unsafe { event_base_get_method(current()) }
}

// ---- inspection and settings ----

/// The methods' names as NUL-terminated statics, in revent's order of preference.
static METHOD_NAMES: [&CStr; 4] = [c"epoll", c"io_uring", c"poll", c"select"];

fn method_name(name: &str) -> *const c_char {
    METHOD_NAMES
        .iter()
        .find(|n| n.to_bytes() == name.as_bytes())
        .map_or(ptr::null(), |n| n.as_ptr())
}

#[no_mangle]
pub unsafe extern "C" fn event_base_get_method(b: *const event_base) -> *const c_char {
    guard(ptr::null(), || {
        // SAFETY: the caller passes a live base (only read here).
        unsafe { with_base(b.cast_mut(), |base| method_name(base.method())) }.unwrap_or(ptr::null())
    })
}

/// A NULL-terminated array of the methods this machine has (`event_get_supported_methods`).
#[no_mangle]
pub extern "C" fn event_get_supported_methods() -> *const *const c_char {
    struct Names([*const c_char; 5]);
    // SAFETY: the pointers are to 'static C strings, never written: sharing or moving them across
    // threads is harmless.
    unsafe impl Sync for Names {}
    // SAFETY: as above.
    unsafe impl Send for Names {}
    static NAMES: std::sync::OnceLock<Names> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            let mut out = [ptr::null(); 5];
            let mut i = 0;
            for (m, name) in Method::ALL.into_iter().zip(METHOD_NAMES) {
                if EventBase::method_available(m) {
                    out[i] = name.as_ptr();
                    i += 1;
                }
            }
            Names(out)
        })
        .0
        .as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn event_base_get_features(b: *const event_base) -> c_int {
    guard(0, || {
        // SAFETY: the caller passes a live base.
        unsafe { with_base(b.cast_mut(), |base| base.features().bits() as c_int) }.unwrap_or(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_priority_init(b: *mut event_base, n: c_int) -> c_int {
    guard(-1, || {
        // SAFETY: the caller passes a live base.
        unsafe {
            with_base(b, |base| {
                if n < 1 {
                    return -1;
                }
                if base.init_priorities(n as usize).is_err() {
                    return -1;
                }
                // (A live base; `npri` is an atomic other threads read.)
                (*b).sync.npri.store(n as usize, Ordering::Relaxed);
                0
            })
        }
        .unwrap_or(-1)
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_get_npriorities(b: *mut event_base) -> c_int {
    guard(0, || {
        let b = if b.is_null() { current() } else { b };
        // SAFETY: the caller passes a live base (or the current one).
        unsafe { with_base(b, |base| base.priorities() as c_int) }.unwrap_or(0)
    })
}

/// `EVENT_BASE_COUNT_ACTIVE`, `EVENT_BASE_COUNT_VIRTUAL`, `EVENT_BASE_COUNT_ADDED`.
const COUNT_ACTIVE: c_int = 1;
const COUNT_ADDED: c_int = 4;

fn count_events(base: &EventBase, flags: c_int) -> c_int {
    let mut n = 0;
    base.foreach_event(|info| {
        let active = !info.active.is_empty();
        // Pending on something besides what it is active with: inserted or timing.
        let added = !(info.pending & !info.active).is_empty();
        if flags & COUNT_ACTIVE != 0 && active || flags & COUNT_ADDED != 0 && added {
            n += 1;
        }
        true
    });
    n
}

#[no_mangle]
pub unsafe extern "C" fn event_base_get_num_events(b: *mut event_base, flags: c_int) -> c_int {
    guard(-1, || {
        // SAFETY: the caller passes a live base.
        unsafe { with_base(b, |base| count_events(base, flags)) }.unwrap_or(-1)
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_get_max_events(
    b: *mut event_base,
    flags: c_int,
    _clear: c_int,
) -> c_int {
    // revent keeps no high-water marks: the current counts are the best answer it has.
    // SAFETY: forwarded with the caller's contract.
    unsafe { event_base_get_num_events(b, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn event_base_gettimeofday_cached(
    b: *mut event_base,
    tv: *mut timeval,
) -> c_int {
    guard(-1, || {
        if tv.is_null() {
            return -1;
        }
        let b = if b.is_null() { current() } else { b };
        let now = if b.is_null() {
            SystemTime::now()
        } else {
            // SAFETY: a live base.
            unsafe { with_base(b, |base| base.wall_cached()) }.unwrap_or_else(SystemTime::now)
        };
        // SAFETY: `tv` is non-null and writable (the caller's contract).
        unsafe { tv.write(to_timeval(now)) };
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_update_cache_time(b: *mut event_base) -> c_int {
    guard(-1, || {
        // SAFETY: the caller passes a live base.
        unsafe { with_base(b, |base| base.update_cache_time()) }.map_or(-1, |()| 0)
    })
}

/// Monotonic time as a timeval (`event_gettime_monotonic`).
#[no_mangle]
pub unsafe extern "C" fn event_gettime_monotonic(_b: *mut event_base, tv: *mut timeval) -> c_int {
    guard(-1, || {
        if tv.is_null() {
            return -1;
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a live local.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        // SAFETY: `tv` is non-null and writable (the caller's contract).
        unsafe {
            tv.write(timeval {
                tv_sec: ts.tv_sec,
                tv_usec: (ts.tv_nsec / 1000) as libc::suseconds_t,
            })
        };
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_init_common_timeout(
    b: *mut event_base,
    duration: *const timeval,
) -> *const timeval {
    guard(ptr::null(), || {
        // SAFETY: the caller passes a readable timeval.
        let Some(d) = (unsafe { opt_duration(duration) }) else {
            return ptr::null();
        };
        // SAFETY: the caller passes a live base.
        let made = unsafe {
            with_base(b, |base| {
                base.init_common_timeout(d).ok()?;
                // A timeval with the same duration selects the common queue in revent; hand out
                // one that lives as long as the base. Its fields are plain values C may read.
                let tv = Box::new(timeval {
                    tv_sec: d.as_secs() as libc::time_t,
                    tv_usec: d.subsec_micros() as libc::suseconds_t,
                });
                let p: *const timeval = &*tv;
                // A live base, used by this thread only now (with_base's routing); `common` is
                // a field apart from the Rust base.
                (*b).common.push(tv);
                Some(p as usize)
            })
        };
        made.flatten().map_or(ptr::null(), |p| p as *const timeval)
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_base_dump_events(b: *mut event_base, out: *mut libc::FILE) {
    guard((), || {
        let mut text = Vec::new();
        // SAFETY: the caller passes a live base.
        unsafe { with_base(b, |base| base.dump_events(&mut text)) };
        if !out.is_null() {
            // SAFETY: `out` is an open stdio stream (the caller's contract); `text` is live.
            unsafe { libc::fwrite(text.as_ptr().cast(), 1, text.len(), out) };
        }
    })
}

/// `event_get_version`.
#[no_mangle]
pub extern "C" fn event_get_version() -> *const c_char {
    c"2.1.12-stable".as_ptr()
}

/// `event_get_version_number`: 2.1.12 as libevent encodes it.
#[no_mangle]
pub extern "C" fn event_get_version_number() -> u32 {
    0x0201_0c00
}

/// `libevent_global_shutdown`: nothing global to free in revent.
#[no_mangle]
pub extern "C" fn libevent_global_shutdown() {}

// ---- event_config ----

#[no_mangle]
pub extern "C" fn event_config_new() -> *mut event_config {
    Box::into_raw(Box::new(event_config { cfg: Config::new() }))
}

#[no_mangle]
pub unsafe extern "C" fn event_config_free(cfg: *mut event_config) {
    if !cfg.is_null() {
        // SAFETY: a config from event_config_new, freed once (C's contract).
        drop(unsafe { Box::from_raw(cfg) });
    }
}

#[no_mangle]
pub unsafe extern "C" fn event_config_avoid_method(
    cfg: *mut event_config,
    method: *const c_char,
) -> c_int {
    guard(-1, || {
        // SAFETY: C passes null or a live config, and a NUL-terminated string.
        let (Some(c), false) = (unsafe { cfg.as_mut() }, method.is_null()) else {
            return -1;
        };
        // SAFETY: non-null, NUL-terminated (the caller's contract).
        let name = unsafe { CStr::from_ptr(method) }.to_string_lossy();
        // A method revent does not have (kqueue, devpoll ...) is avoided by not having it.
        if let Some(m) = Method::from_name(&name) {
            c.cfg.avoid_method(m);
        }
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn event_config_require_features(
    cfg: *mut event_config,
    features: c_int,
) -> c_int {
    // SAFETY: C passes null or a live config.
    match unsafe { cfg.as_mut() } {
        Some(c) => {
            c.cfg
                .require_features(Features::from_bits_truncate(features as u32));
            0
        }
        None => -1,
    }
}

#[no_mangle]
pub unsafe extern "C" fn event_config_set_flag(cfg: *mut event_config, flag: c_int) -> c_int {
    // SAFETY: C passes null or a live config.
    match unsafe { cfg.as_mut() } {
        Some(c) => {
            c.cfg.set_flag(ConfigFlags::from_bits_truncate(flag as u32));
            0
        }
        None => -1,
    }
}

/// `event_config_set_num_cpus_hint`: a hint for Windows' IOCP; nothing to do here.
#[no_mangle]
pub unsafe extern "C" fn event_config_set_num_cpus_hint(
    cfg: *mut event_config,
    _n: c_int,
) -> c_int {
    if cfg.is_null() {
        -1
    } else {
        0
    }
}

#[no_mangle]
pub unsafe extern "C" fn event_config_set_max_dispatch_interval(
    cfg: *mut event_config,
    max_interval: *const timeval,
    max_callbacks: c_int,
    min_priority: c_int,
) -> c_int {
    // SAFETY: C passes null or a live config, and a null or readable timeval.
    let (Some(c), interval) = (unsafe { cfg.as_mut() }, unsafe {
        opt_duration(max_interval)
    }) else {
        return -1;
    };
    c.cfg.max_dispatch_interval(
        interval,
        max_callbacks.max(0) as usize,
        min_priority.max(0) as usize,
    );
    0
}
