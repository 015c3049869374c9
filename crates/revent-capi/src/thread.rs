//! `event2/thread.h`: libevent's cross-thread calls over revent's single-threaded base.
//!
//! # What the program sees
//! Once lock callbacks are set (`evthread_use_pthreads` from `libevent_pthreads` sets pthread-based
//! ones), the calls libevent documents as safe from other threads are safe here too: `event_active`,
//! `event_add`, `event_del`, `event_free`, `event_base_loopbreak`/`loopexit`, and everything else
//! that takes a base. A call from another thread wakes the loop if it sleeps, and takes effect as it
//! would under libevent's base lock. Unlike libevent (libevent#1130), the order does not matter: a
//! base made *before* `evthread_use_pthreads` gets its lock and its wake-up handle when it first
//! needs them.
//!
//! # How
//! The Rust base may only be touched by one thread at a time, and while its loop runs only by the
//! loop's thread (its callbacks hold the dispatcher's `&mut EventBase`, see the crate docs). So every
//! call on a base is routed (`reach`):
//! - **Threads are not enabled**: the call acts directly, with no lock.
//! - **On the loop's thread, inside a callback of that base** (the base's innermost holder is a
//!   pointer `call_out` lent: `base::Holders`, which the call reads under the base lock once it
//!   knows this thread owns the loop): the call lets the lock go again and acts directly, so that
//!   C code it reaches (an evbuffer or log callback) never runs holding the base lock.
//! - **Otherwise** the call takes the base's lock (allocated with the program's lock callbacks) and
//!   looks at the base's *owner*, the thread running its loop, which `event_base_loop` sets and clears
//!   under the same lock (`claim`):
//!   - no loop runs: the call acts directly, holding the lock, so callers serialize;
//!   - a loop runs on another thread: the call must not touch the Rust base. It appends an `Op` to
//!     the base's queue (under the lock) and, if the queue had not been handed to the loop yet,
//!     posts one drain job through revent's [`Remote`] (which coalesces wake-ups: one eventfd write
//!     per sleep of the loop, none while it is busy). `event_add`, `event_active`,
//!     `event_remove_timer`, `event_del_noblock`, `event_base_once`, `event_base_loopbreak`/
//!     `loopexit` return at once. `event_del`, `event_del_block`, `event_free` and
//!     `event_debug_unassign` wait until the loop has carried the op out, so that, as in libevent,
//!     the event's callback is not running when they return. Calls that must answer
//!     (`event_pending`, `event_base_get_num_events`, ...) run on the loop's thread and wait for the
//!     answer.
//! - The loop's thread carries the queue out in order (FIFO across all posters, so an activation
//!   posted before a delete never fires after the delete returned), between callbacks, with the
//!   base published for re-entrant calls. When the loop returns, `event_base_loop` carries out what
//!   is still queued before it gives the base up, under the lock: an `event_add` posted as the loop
//!   was ending has taken effect by the time `event_base_loop` returns, as under libevent's lock.
//!
//! Waiting uses the program's condition callbacks with the base lock when they are set (so tools
//! that understand pthreads, such as helgrind, see every hand-over), and a pthread condition of
//! revent's own otherwise (libevent does not wait at all then); the base lock is taken again after
//! the wait either way. The loop refreshes its clock before carrying posted ops out, so a timeout
//! added from another thread counts from the post, not from the loop's older cached time.
//!
//! # Differences from libevent
//! - Calls that must answer wait for the loop's thread to be between callbacks, where libevent
//!   answers at once under its lock. Like libevent's `event_del`, such a call deadlocks if the loop's
//!   thread is itself waiting for the caller (say, a callback waiting on a mutex the caller holds).
//! - `event_base_foreach_event` from another thread runs its callback on the loop's thread (nothing
//!   else touches the base meanwhile, as under libevent's lock); `event_base_get_running_event`
//!   from another thread is NULL, as in libevent.
//! - `event_base_free` refuses (and warns) while a loop runs on the base, in any thread.
//!
//! A single-threaded program that never enables threads pays one relaxed load of a global flag per
//! call; checking that flag rather than one fixed when the base was made (which is what makes the
//! order of `evthread_use_pthreads` and `event_base_new` not matter) measures as noise:
//! `bench/README.md`.

use crate::base::{self, call_out, with_base_local, CBase};
use crate::event::{self as cevent, event};
use crate::logging;
use libc::{c_int, c_short, c_uint, c_ulong, c_void, timeval};
use revent::{EventBase, Remote};
use std::cell::{RefCell, UnsafeCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// `EVTHREAD_WRITE`, `EVTHREAD_READ`, `EVTHREAD_TRY`: lock modes.
pub const EVTHREAD_WRITE: c_uint = 0x04;
pub const EVTHREAD_READ: c_uint = 0x08;
pub const EVTHREAD_TRY: c_uint = 0x10;
/// `EVTHREAD_LOCKTYPE_RECURSIVE`, `EVTHREAD_LOCKTYPE_READWRITE`.
pub const EVTHREAD_LOCKTYPE_RECURSIVE: c_uint = 1;
pub const EVTHREAD_LOCKTYPE_READWRITE: c_uint = 2;

type AllocFn = unsafe extern "C" fn(c_uint) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void, c_uint);
type LockFn = unsafe extern "C" fn(c_uint, *mut c_void) -> c_int;
type CondAllocFn = unsafe extern "C" fn(c_uint) -> *mut c_void;
type CondFreeFn = unsafe extern "C" fn(*mut c_void);
type CondSignalFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type CondWaitFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *const timeval) -> c_int;
type IdFn = unsafe extern "C" fn() -> c_ulong;

/// `struct evthread_lock_callbacks`.
#[repr(C)]
pub struct evthread_lock_callbacks {
    pub lock_api_version: c_int,
    pub supported_locktypes: c_uint,
    pub alloc: Option<AllocFn>,
    pub free: Option<FreeFn>,
    pub lock: Option<LockFn>,
    pub unlock: Option<LockFn>,
}

/// `struct evthread_condition_callbacks`.
#[repr(C)]
pub struct evthread_condition_callbacks {
    pub condition_api_version: c_int,
    pub alloc_condition: Option<CondAllocFn>,
    pub free_condition: Option<CondFreeFn>,
    pub signal_condition: Option<CondSignalFn>,
    pub wait_condition: Option<CondWaitFn>,
}

/// A complete set of lock callbacks.
#[derive(Clone, Copy)]
struct LockFns {
    version: c_int,
    types: c_uint,
    alloc: AllocFn,
    free: FreeFn,
    lock: LockFn,
    unlock: LockFn,
}

impl LockFns {
    fn same(&self, o: &LockFns) -> bool {
        self.version == o.version
            && self.types == o.types
            && self.alloc as usize == o.alloc as usize
            && self.free as usize == o.free as usize
            && self.lock as usize == o.lock as usize
            && self.unlock as usize == o.unlock as usize
    }
}

/// A complete set of condition callbacks.
#[derive(Clone, Copy)]
struct CondFns {
    version: c_int,
    alloc: CondAllocFn,
    free: CondFreeFn,
    signal: CondSignalFn,
    wait: CondWaitFn,
}

impl CondFns {
    fn same(&self, o: &CondFns) -> bool {
        self.version == o.version
            && self.alloc as usize == o.alloc as usize
            && self.free as usize == o.free as usize
            && self.signal as usize == o.signal as usize
            && self.wait as usize == o.wait as usize
    }
}

/// What the program registered.
struct Setup {
    lock: Option<LockFns>,
    cond: Option<CondFns>,
    id: Option<IdFn>,
}

static SETUP: Mutex<Setup> = Mutex::new(Setup {
    lock: None,
    cond: None,
    id: None,
});
/// Lock callbacks are set: bases are used from several threads.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// `evthread_enable_lock_debugging`: locks allocated afterwards check how they are used.
static DEBUG_LOCKS: AtomicBool = AtomicBool::new(false);

fn setup() -> MutexGuard<'static, Setup> {
    // The setup is three plain values: a panic elsewhere cannot leave it half-written.
    SETUP.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether threads are enabled (lock callbacks are set).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

// ---- thread identity ----

thread_local! {
    /// The base locks this thread holds, with how many times it took each (they are recursive).
    static HELD: RefCell<Vec<(usize, u32)>> = const { RefCell::new(Vec::new()) };
}

/// This thread, as a nonzero number unique among live threads. revent's own notion, not the
/// program's id callback: whether a thread may touch a base must not depend on a callback's answer.
/// `pthread_self` rather than the address of a thread-local: in a shared library every thread-local
/// access is a call to `__tls_get_addr`, where `pthread_self` is a load from the thread pointer.
#[inline]
pub(crate) fn me() -> usize {
    // SAFETY: pthread_self has no preconditions; glibc's `pthread_t` is the address of the thread's
    // descriptor, nonzero and distinct for every live thread.
    unsafe { libc::pthread_self() as usize }
}

/// The thread id lock debugging reports: the program's id callback if set, else [`me`].
fn thread_id() -> c_ulong {
    match setup().id {
        // SAFETY: the program's id callback, which takes no arguments.
        Some(f) => unsafe { f() },
        None => me() as c_ulong,
    }
}

// ---- the base lock ----

/// A base's lock: one lock from the program's callbacks, with the condition the waiters of the
/// base's queue sleep on. It is taken recursively: by the program's lock itself when its callbacks
/// make recursive locks (libevent requires them to, and `evthread_use_pthreads` does), otherwise
/// (and with lock debugging, which checks the holds) by counting this thread's holds in `HELD`.
pub(crate) struct Lock {
    raw: *mut c_void,
    locktype: c_uint,
    /// Count the holds in `HELD` (the lock is not recursive, or lock debugging is on).
    counted: bool,
    fns: LockFns,
    /// The program's condition, if it set condition callbacks before the lock was made.
    cond: Option<(*mut c_void, CondFns)>,
    /// Without condition callbacks: where waiters sleep instead.
    fallback: Fallback,
    /// With lock debugging: the id of the thread holding the lock. Only the holder touches it.
    debug: Option<UnsafeCell<Option<c_ulong>>>,
}

// SAFETY: `raw` and `cond` are the program's lock and condition, made to be used from any thread;
// `debug` is only touched by the thread holding the lock (which the lock itself serializes), and
// `fallback`'s counter only under its own pthread mutex.
unsafe impl Send for Lock {}
// SAFETY: as above.
unsafe impl Sync for Lock {}

impl Lock {
    /// A new lock from the registered callbacks, or `None` (with a warning) when they fail.
    fn new() -> Option<Lock> {
        let (fns, cond_fns) = {
            let s = setup();
            (s.lock?, s.cond)
        };
        let locktype = fns.types & EVTHREAD_LOCKTYPE_RECURSIVE;
        let debug = DEBUG_LOCKS.load(Ordering::Relaxed);
        // SAFETY: the program's allocation callback.
        let raw = unsafe { (fns.alloc)(locktype) };
        if raw.is_null() {
            log::warn!("evthread: the lock callback could not allocate a lock");
            return None;
        }
        let cond = cond_fns.and_then(|c| {
            // SAFETY: the program's condition allocation callback (condtype 0, as libevent passes).
            let p = unsafe { (c.alloc)(0) };
            (!p.is_null()).then_some((p, c))
        });
        Some(Lock {
            raw,
            locktype,
            counted: locktype == 0 || debug,
            fns,
            cond,
            fallback: Fallback::new(),
            debug: debug.then(|| UnsafeCell::new(None)),
        })
    }

    fn key(&self) -> usize {
        self as *const Lock as usize
    }

    /// Takes the lock (again, if this thread holds it).
    #[inline]
    pub(crate) fn acquire(&self) {
        if !self.counted {
            self.take_raw();
            return;
        }
        let key = self.key();
        let again = HELD.with(|h| {
            let mut h = h.borrow_mut();
            match h.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => {
                    *n += 1;
                    true
                }
                None => false,
            }
        });
        if again {
            return;
        }
        self.take_raw();
        HELD.with(|h| h.borrow_mut().push((key, 1)));
    }

    fn take_raw(&self) {
        // SAFETY: the program's lock callback on a lock it allocated.
        let rc = unsafe { (self.fns.lock)(0, self.raw) };
        if rc != 0 {
            // Going on without the lock would let two threads into the base.
            logging::fatal_msg(&format!("evthread: the lock callback failed ({rc})"));
        }
        if let Some(d) = &self.debug {
            // SAFETY: this thread holds the lock; only the holder touches `debug`.
            let holder = unsafe { &mut *d.get() };
            if let Some(other) = *holder {
                logging::fatal_msg(&format!(
                    "evthread lock debugging: lock {:p} acquired while thread {other} holds it \
                     (the lock callbacks do not exclude each other)",
                    self.raw
                ));
            }
            *holder = Some(thread_id());
        }
    }

    /// Releases one hold of the lock.
    #[inline]
    pub(crate) fn release(&self) {
        if !self.counted {
            self.give_raw();
            return;
        }
        let key = self.key();
        let left = HELD.with(|h| {
            let mut h = h.borrow_mut();
            let i = h.iter().position(|(k, _)| *k == key)?;
            h[i].1 -= 1;
            let n = h[i].1;
            if n == 0 {
                h.swap_remove(i);
            }
            Some(n)
        });
        match left {
            None => logging::fatal_msg("evthread: releasing a base lock this thread does not hold"),
            Some(0) => self.give_raw(),
            Some(_) => {}
        }
    }

    fn give_raw(&self) {
        if let Some(d) = &self.debug {
            // SAFETY: this thread still holds the lock.
            let holder = unsafe { &mut *d.get() };
            let id = thread_id();
            if *holder != Some(id) {
                logging::fatal_msg(&format!(
                    "evthread lock debugging: thread {id} releases lock {:p} held by {holder:?}",
                    self.raw
                ));
            }
            *holder = None;
        }
        // SAFETY: the program's unlock callback on the lock this thread holds.
        let rc = unsafe { (self.fns.unlock)(0, self.raw) };
        if rc != 0 {
            logging::fatal_msg(&format!("evthread: the unlock callback failed ({rc})"));
        }
    }

    /// Holds the lock until the guard goes.
    pub(crate) fn guard(&self) -> LockGuard<'_> {
        self.acquire();
        LockGuard(self)
    }

    /// Waits, holding the lock once, until `pending` is false; the lock is released while waiting.
    fn wait_while(&self, mut pending: impl FnMut() -> bool) {
        while pending() {
            // Waits happen at one hold only: a thread holding the lock twice is inside a direct
            // call, where no loop runs and nothing is waited for. Counted locks check it.
            let key = self.key();
            if self.counted {
                let depth = HELD.with(|h| h.borrow().iter().find(|(k, _)| *k == key).map(|e| e.1));
                if depth != Some(1) {
                    logging::fatal_msg("evthread: waiting on a base lock held more than once");
                }
            }
            match self.cond {
                Some((cond, fns)) => {
                    // The lock leaves this thread during the wait.
                    if let Some(d) = &self.debug {
                        // SAFETY: this thread holds the lock.
                        unsafe { *d.get() = None };
                    }
                    if self.counted {
                        HELD.with(|h| h.borrow_mut().retain(|(k, _)| *k != key));
                    }
                    // SAFETY: the program's wait callback with its condition and the lock it holds.
                    let rc = unsafe { (fns.wait)(cond, self.raw, ptr::null()) };
                    if self.counted {
                        HELD.with(|h| h.borrow_mut().push((key, 1)));
                    }
                    if let Some(d) = &self.debug {
                        // SAFETY: the wait callback returns with the lock held again.
                        unsafe { *d.get() = Some(thread_id()) };
                    }
                    if rc < 0 {
                        logging::fatal_msg("evthread: the condition wait callback failed");
                    }
                }
                None => {
                    // Read the generation before letting the lock go: a notification after this
                    // point changes it, so none is missed.
                    let seen = self.fallback.generation();
                    self.release();
                    self.fallback.wait_past(seen);
                    self.acquire();
                }
            }
        }
    }

    /// Wakes every waiter (called holding the lock).
    fn notify_all(&self) {
        match self.cond {
            Some((cond, fns)) => {
                // SAFETY: the program's signal callback on its condition, with the lock held.
                unsafe { (fns.signal)(cond, 1) };
            }
            None => self.fallback.bump(),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some((cond, fns)) = self.cond {
            // SAFETY: the condition was allocated by these callbacks and nobody waits on it (the
            // base is being freed).
            unsafe { (fns.free)(cond) };
        }
        // SAFETY: as above, for the lock, which nobody holds.
        unsafe { (self.fns.free)(self.raw, self.locktype) };
    }
}

/// Where waiters sleep when the program set no condition callbacks: a generation counter under a
/// pthread mutex and condition of revent's own (pthread's rather than Rust's, so that thread checkers
/// such as helgrind see the hand-over). Waiters note the generation while holding the base lock, let
/// the lock go, and sleep until a notification (made holding the base lock) changes it.
struct Fallback {
    sync: Box<UnsafeCell<(libc::pthread_mutex_t, libc::pthread_cond_t)>>,
    generation: UnsafeCell<u64>,
}

impl Fallback {
    fn new() -> Fallback {
        Fallback {
            sync: Box::new(UnsafeCell::new((
                libc::PTHREAD_MUTEX_INITIALIZER,
                libc::PTHREAD_COND_INITIALIZER,
            ))),
            generation: UnsafeCell::new(0),
        }
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the box lives as long as `self`; the field's address is stable.
        unsafe { ptr::addr_of_mut!((*self.sync.get()).0) }
    }

    fn cond(&self) -> *mut libc::pthread_cond_t {
        // SAFETY: as in `mutex`.
        unsafe { ptr::addr_of_mut!((*self.sync.get()).1) }
    }

    fn generation(&self) -> u64 {
        // SAFETY: a mutex initialized in `new`; `generation` is only touched while it is held.
        unsafe {
            libc::pthread_mutex_lock(self.mutex());
            let g = *self.generation.get();
            libc::pthread_mutex_unlock(self.mutex());
            g
        }
    }

    fn wait_past(&self, seen: u64) {
        // SAFETY: as in `generation`; pthread_cond_wait releases and re-takes the mutex.
        unsafe {
            libc::pthread_mutex_lock(self.mutex());
            while *self.generation.get() == seen {
                libc::pthread_cond_wait(self.cond(), self.mutex());
            }
            libc::pthread_mutex_unlock(self.mutex());
        }
    }

    fn bump(&self) {
        // SAFETY: as in `generation`.
        unsafe {
            libc::pthread_mutex_lock(self.mutex());
            *self.generation.get() += 1;
            libc::pthread_cond_broadcast(self.cond());
            libc::pthread_mutex_unlock(self.mutex());
        }
    }
}

impl Drop for Fallback {
    fn drop(&mut self) {
        // SAFETY: nobody waits any more (the base is being freed).
        unsafe {
            libc::pthread_cond_destroy(self.cond());
            libc::pthread_mutex_destroy(self.mutex());
        }
    }
}

/// Releases a base lock when dropped.
pub(crate) struct LockGuard<'a>(&'a Lock);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

// ---- a base's thread state ----

/// What a call from another thread asks the loop to do.
pub(crate) enum Op {
    Add {
        ev: *mut event,
        timeout: Option<Duration>,
    },
    Active {
        ev: *mut event,
        res: c_int,
        ncalls: c_short,
    },
    Del {
        ev: *mut event,
    },
    RemoveTimer {
        ev: *mut event,
    },
    /// Frees the Rust event standing for the C struct at this address (`event_free`,
    /// `event_assign` on reused memory).
    Release {
        ev: crate::SendPtr<event>,
    },
    Break,
    Exit(Option<Duration>),
    /// Any other call, run on the loop's thread with the base published for re-entrant calls.
    Call(Box<dyn FnOnce()>),
}

/// The part of a base that other threads share; everything but the atomics is under the lock.
#[derive(Default)]
struct Shared {
    ops: Vec<Op>,
    /// Ops posted so far, and how many of them the loop (or the owner at release) carried out.
    posted: u64,
    done: u64,
    /// A drain job is on its way to the loop (posted through the remote, not yet run).
    kicked: bool,
    remote: Option<Remote>,
}

/// A base's thread state (a field of [`CBase`]).
pub(crate) struct BaseSync {
    /// [`me`] of the thread in `event_base_loop` on this base, or 0. Changed under the lock (when
    /// threads are enabled).
    owner: AtomicUsize,
    /// The base lock, made when threads are first needed (so a base made before
    /// `evthread_use_pthreads` gets one too).
    lock: AtomicPtr<Lock>,
    shared: UnsafeCell<Shared>,
    /// The number of priorities, readable from any thread (`event_assign` needs it without
    /// touching the base).
    pub(crate) npri: AtomicUsize,
    warned: AtomicBool,
}

// SAFETY: `shared` is only touched under the base lock (or by the only thread, when threads are
// not enabled); the ops it holds carry C pointers, which C lets any thread use, and closures that
// run on the loop's thread while the thread that posted them waits (see `Poster::call`).
unsafe impl Sync for BaseSync {}

impl BaseSync {
    pub(crate) fn new() -> BaseSync {
        let s = BaseSync {
            owner: AtomicUsize::new(0),
            lock: AtomicPtr::new(ptr::null_mut()),
            shared: UnsafeCell::new(Shared::default()),
            npri: AtomicUsize::new(1),
            warned: AtomicBool::new(false),
        };
        if enabled() {
            // Made now rather than on first use: the thread that makes the base hands it to the
            // others (pthread_create orders that), which thread checkers understand.
            s.lock();
        }
        s
    }

    /// The base lock, made now if it does not exist yet.
    #[inline]
    fn lock(&self) -> Option<&Lock> {
        let p = self.lock.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: set once in `make_lock` from Box::into_raw, freed only with the base.
            return Some(unsafe { &*p });
        }
        self.make_lock()
    }

    #[cold]
    fn make_lock(&self) -> Option<&Lock> {
        let fresh = Box::into_raw(Box::new(Lock::new()?));
        match self.lock.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: just published; lives as long as the base.
            Ok(_) => Some(unsafe { &*fresh }),
            Err(theirs) => {
                // SAFETY: ours was never published.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: as in the first branch.
                Some(unsafe { &*theirs })
            }
        }
    }

    /// The base lock if it exists.
    fn existing_lock(&self) -> Option<&Lock> {
        // SAFETY: null or a lock that lives as long as the base.
        unsafe { self.lock.load(Ordering::Acquire).as_ref() }
    }

    /// The shared part.
    ///
    /// # Safety
    /// The caller holds the base lock (or threads are not enabled and this is the only thread
    /// using the base) and keeps no other reference from this function alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn shared(&self) -> &mut Shared {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.shared.get() }
    }

    fn warn_once(&self, msg: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            log::warn!("{msg}");
        }
    }
}

impl Drop for BaseSync {
    fn drop(&mut self) {
        let p = *self.lock.get_mut();
        if !p.is_null() {
            // SAFETY: from Box::into_raw in `lock`, and the base (its only user) is going.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// The base's thread state.
///
/// # Safety
/// `p` is a live base.
unsafe fn sync_of<'a>(p: *mut CBase) -> &'a BaseSync {
    // SAFETY: the caller's contract; a shared reference to this one field, which is Sync, while
    // the loop's thread may hold `&mut` to the Rust base (another field).
    unsafe { &*ptr::addr_of!((*p).sync) }
}

// ---- routing a call ----

/// How a call reaches a base: see the module docs.
pub(crate) enum Reach<'a> {
    /// This thread may use the base now, through [`with_base_local`] (short borrows only).
    Here,
    /// A loop runs on another thread: post to it.
    Away(&'a Poster<'a>),
}

/// Posts ops to a base whose loop runs on another thread (while holding the base lock).
pub(crate) struct Poster<'a> {
    p: *mut CBase,
    sync: &'a BaseSync,
    lock: &'a Lock,
    /// The loop runs on this very thread, but the call does not come from one of its callbacks
    /// (from the loop's own machinery, such as a log callback): post, never wait.
    on_loop_thread: bool,
}

/// Routes a call on base `p` (see the module docs) and runs `f` with the route, holding the base
/// lock when threads are enabled and the call does not come from a callback of the base's loop.
/// `None` for a null base or when no lock could be made.
///
/// # Safety
/// `p` is null or a live base.
#[inline]
pub(crate) unsafe fn reach<R>(p: *mut CBase, f: impl FnOnce(Reach<'_>) -> R) -> Option<R> {
    if p.is_null() {
        return None;
    }
    // Threads off first: then `with_base_local` looks at the base's holders itself, and a
    // single-threaded program pays one relaxed load here and nothing else. `f` is called from one
    // place only, so that it is inlined into the hot path.
    // A `Held` that holds nothing rather than `Option<Held>`: every field is then written on
    // both paths. With `None`, LLVM may test the (unwritten) guard before the tag when dropping
    // it, which is harmless but makes valgrind report a jump on an uninitialised value.
    let held = if !enabled() {
        Held {
            poster: None,
            _guard: None,
        }
    } else {
        // SAFETY: the caller's contract.
        unsafe { Held::take(p) }?
    };
    let route = match held.poster.as_ref() {
        Some(q) => Reach::Away(q),
        None => Reach::Here,
    };
    Some(f(route))
}

/// The base lock taken for a routed call (none for a call from a callback of the base), and the
/// poster if a loop runs on another thread.
struct Held<'a> {
    poster: Option<Poster<'a>>,
    _guard: Option<LockGuard<'a>>,
}

impl<'a> Held<'a> {
    /// Takes `p`'s lock (making it if needed) and looks at the owner. A call from a callback of the
    /// base, on the loop's thread, gives the lock up again and uses the base directly, as with
    /// threads off: the C code it may reach (an evbuffer callback, a log callback) may then wait for
    /// something another thread holds while that thread waits for the base lock.
    ///
    /// # Safety
    /// `p` is a live base, which outlives `'a`.
    #[inline]
    unsafe fn take(p: *mut CBase) -> Option<Held<'a>> {
        // SAFETY: the caller's contract.
        let sync = unsafe { sync_of(p) };
        let lock = sync.lock()?;
        let guard = lock.guard();
        let poster = match sync.owner.load(Ordering::Relaxed) {
            0 => None,
            owner => {
                let on_loop_thread = owner == me();
                // SAFETY: `p` is live, and this thread owns its loop: the base's holders are its
                // own (read under the lock, which ordered the holders of any thread before it).
                if on_loop_thread && unsafe { base::in_callback_of(p) } {
                    drop(guard);
                    return Some(Held {
                        poster: None,
                        _guard: None,
                    });
                }
                Some(Poster {
                    p,
                    sync,
                    lock,
                    on_loop_thread,
                })
            }
        };
        Some(Held {
            poster,
            _guard: Some(guard),
        })
    }
}

impl Poster<'_> {
    /// Queues `op`; returns its sequence number.
    pub(crate) fn post(&self, op: Op) -> u64 {
        self.push(op, true)
    }

    /// Queues `op` without waking the loop: it is carried out, in order, with the next op that does
    /// (or when the loop returns). For ops whose only effect is cleaning up.
    pub(crate) fn post_lazy(&self, op: Op) {
        self.push(op, false);
    }

    fn push(&self, op: Op, wake: bool) -> u64 {
        // SAFETY: the poster holds the base lock.
        let sh = unsafe { self.sync.shared() };
        sh.posted += 1;
        sh.ops.push(op);
        if wake && !sh.kicked {
            kick(self.p, self.sync, sh);
        }
        sh.posted
    }

    /// Queues `op` and waits until the loop has carried it out.
    pub(crate) fn post_wait(&self, op: Op) {
        let seq = self.post(op);
        if self.on_loop_thread {
            // Waiting would wait for this very thread.
            return;
        }
        // SAFETY: the lock is held whenever `pending` runs (wait_while re-takes it).
        self.lock
            .wait_while(|| unsafe { self.sync.shared() }.done < seq);
    }

    /// Runs `f` on the loop's thread, between callbacks, with the base published (so that
    /// [`with_base_local`] inside `f` works), and returns its result. `None` if `f` panicked or this
    /// is the loop's own thread outside its callbacks (where waiting would never end).
    pub(crate) fn call<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        if self.on_loop_thread {
            log::warn!(
                "revent: a call on a base from inside its loop's machinery is not supported"
            );
            return None;
        }
        let mut slot: Option<R> = None;
        let out: *mut Option<R> = &mut slot;
        let job: Box<dyn FnOnce() + '_> = Box::new(move || {
            let r = f();
            // SAFETY: `slot` lives on the stack of the thread that waits below until this job
            // has run; nothing else touches it meanwhile.
            unsafe { *out = Some(r) };
        });
        // SAFETY: erasing the lifetime is sound because this thread does not return before the job
        // has run or been dropped: `post_wait` waits until the loop (or the thread giving the base
        // up) has carried out every op up to this one, and ops are never dropped unrun while a
        // loop or its release is pending. The job's captures are C pointers and borrows of this
        // (blocked) thread's stack, so running it on the loop's thread is like a synchronous call.
        let job: Box<dyn FnOnce() + 'static> = unsafe { std::mem::transmute(job) };
        self.post_wait(Op::Call(job));
        slot
    }

    /// Whether the loop can be woken (it was claimed after threads were enabled).
    pub(crate) fn can_wake(&self) -> bool {
        // SAFETY: the poster holds the base lock.
        unsafe { self.sync.shared() }.remote.is_some()
    }
}

/// Hands the queue to the loop: one drain job through the remote.
fn kick(p: *mut CBase, sync: &BaseSync, sh: &mut Shared) {
    let addr = crate::SendPtr::new(p);
    match &sh.remote {
        Some(r) => {
            if r.run(move |b| drain(addr.get(), b)).is_ok() {
                sh.kicked = true;
            } else {
                log::warn!("revent: the base's loop can no longer be reached");
            }
        }
        None => sync.warn_once(
            "revent: this base's loop started before threads were enabled \
             (evthread_use_pthreads): calls from other threads take effect when it returns",
        ),
    }
}

/// The drain job, on the loop's thread: carries out the queued ops.
fn drain(p: *mut CBase, base: &mut EventBase) {
    // SAFETY: the job runs inside the base's loop, so the base is alive.
    let sync = unsafe { sync_of(p) };
    let Some(lock) = sync.existing_lock() else {
        return;
    };
    let (ops, upto) = {
        let _g = lock.guard();
        // SAFETY: the lock is held.
        let sh = unsafe { sync.shared() };
        sh.kicked = false;
        (std::mem::take(&mut sh.ops), sh.posted)
    };
    if ops.is_empty() {
        return;
    }
    // The loop read its clock before this iteration's callbacks; an op may have been posted since.
    // Read it again, so that a timeout added from another thread counts from no earlier than the
    // post (libevent dates it from the loop's cached time, and such a timer can fire early).
    base.update_cache_time();
    // SAFETY: `p` is the base whose loop runs this job on `base`, its Rust base.
    unsafe { call_out(p, base, || run_ops(p, ops)) };
    let _g = lock.guard();
    // SAFETY: the lock is held.
    let sh = unsafe { sync.shared() };
    sh.done = sh.done.max(upto);
    lock.notify_all();
}

/// Carries out `ops` in order; a panicking op is reported and the others still run.
fn run_ops(p: *mut CBase, ops: Vec<Op>) {
    for op in ops {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| apply(p, op))) {
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or(payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("panic");
            logging::emit(
                logging::EVENT_LOG_ERR,
                &format!("revent: internal error in a call from another thread: {msg}"),
            );
        }
    }
}

/// Carries out one op where the base may be used ([`Reach::Here`]): on the loop's thread between
/// callbacks, with the base published by `call_out`, or on the thread giving the base up (or
/// claiming it), holding its lock.
fn apply(p: *mut CBase, op: Op) {
    /// `f` on the base, which this thread may use (see `apply`).
    fn on<R>(p: *mut CBase, f: impl FnOnce(&mut EventBase) -> R) {
        // SAFETY: `p` is live (ops run inside its loop or while it is claimed or given up), and
        // this thread may use it (see `apply`).
        unsafe { with_base_local(p, f) };
    }
    match op {
        Op::Add { ev, timeout } => on(p, |b| cevent::add_now(b, ev, timeout)),
        Op::Active { ev, res, ncalls } => on(p, |b| cevent::active_now(b, ev, res, ncalls)),
        Op::Del { ev } => on(p, |b| cevent::del_now(b, ev)),
        Op::RemoveTimer { ev } => on(p, |b| cevent::remove_timer_now(b, ev)),
        Op::Release { ev } => cevent::release_now(p, ev.get()),
        Op::Break => on(p, |b| b.loopbreak()),
        Op::Exit(after) => on(p, |b| b.loopexit(after)),
        Op::Call(f) => f(),
    }
}

/// Carries out what is queued, where the base may be used directly (the lock held, no loop
/// running), and wakes the waiters.
///
/// # Safety
/// `p` is live; the caller holds its lock (or threads are not enabled) and no loop runs on it.
unsafe fn flush_here(p: *mut CBase) {
    // SAFETY: the caller's contract.
    let sync = unsafe { sync_of(p) };
    loop {
        // SAFETY: the lock is held.
        let sh = unsafe { sync.shared() };
        if sh.ops.is_empty() {
            break;
        }
        let ops = std::mem::take(&mut sh.ops);
        let upto = sh.posted;
        run_ops(p, ops);
        // SAFETY: as above.
        let sh = unsafe { sync.shared() };
        sh.done = sh.done.max(upto);
        if let Some(lock) = sync.existing_lock() {
            lock.notify_all();
        }
    }
}

// ---- the loop claims and gives up the base ----

/// `event_base_loop`'s hold on a base: it is the owner until this is dropped.
pub(crate) struct Claim {
    p: *mut CBase,
    /// The loop was already running on this thread (a callback called `event_base_loop` again):
    /// the outer call stays the owner.
    nested: bool,
}

/// Makes this thread the owner of `p` for a loop run, under the base lock; gets the base a remote
/// when threads are enabled. `None` (with a warning) if a loop runs on it in another thread.
///
/// # Safety
/// `p` is a live base.
pub(crate) unsafe fn claim(p: *mut CBase) -> Option<Claim> {
    // SAFETY: the caller's contract.
    let sync = unsafe { sync_of(p) };
    let me = me();
    let lock = if enabled() { sync.lock() } else { None };
    let _g = lock.map(Lock::guard);
    match sync.owner.load(Ordering::Relaxed) {
        0 => {}
        o if o == me => return Some(Claim { p, nested: true }),
        _ => {
            log::warn!("event_base_loop: the base's loop is already running in another thread");
            return None;
        }
    }
    if lock.is_some() {
        // What another thread queued while this loop was starting (only when threads were enabled
        // during a run): no loop runs, so it happens here.
        // SAFETY: the lock is held and no loop runs.
        unsafe { flush_here(p) };
        // SAFETY: the lock is held.
        let sh = unsafe { sync.shared() };
        if sh.remote.is_none() {
            // SAFETY: no loop runs on the base and this thread holds its lock: nothing else uses it.
            match unsafe { with_base_local(p, |b| b.remote()) } {
                Some(Ok(r)) => sh.remote = Some(r),
                Some(Err(e)) => log::warn!("event_base_loop: no wake-up for other threads: {e}"),
                None => {}
            }
        }
    }
    sync.owner.store(me, Ordering::Relaxed);
    Some(Claim { p, nested: false })
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.nested {
            return;
        }
        // SAFETY: the base outlives its loop run.
        let sync = unsafe { sync_of(self.p) };
        let lock = if enabled() {
            sync.lock()
        } else {
            sync.existing_lock()
        };
        match lock {
            Some(lock) => {
                let _g = lock.guard();
                sync.owner.store(0, Ordering::Relaxed);
                // SAFETY: the lock is held and the loop has returned.
                unsafe { flush_here(self.p) };
            }
            None => sync.owner.store(0, Ordering::Relaxed),
        }
    }
}

/// Whether `event_base_free` may free `p`: no loop runs on it (in any thread).
///
/// # Safety
/// `p` is a live base.
pub(crate) unsafe fn can_free(p: *mut CBase) -> bool {
    // SAFETY: the caller's contract.
    let sync = unsafe { sync_of(p) };
    let lock = sync.existing_lock();
    let _g = lock.map(Lock::guard);
    sync.owner.load(Ordering::Relaxed) == 0
}

/// Runs `f` with the shared state, under the base lock if it exists.
///
/// # Safety
/// `p` is a live base, and the caller may use it ([`Reach::Here`]).
unsafe fn locked<R>(p: *mut CBase, f: impl FnOnce(&mut Shared) -> R) -> R {
    // SAFETY: the caller's contract.
    let sync = unsafe { sync_of(p) };
    let lock = sync.existing_lock();
    let _g = lock.map(Lock::guard);
    // SAFETY: the lock is held, or there is none because threads were never enabled.
    f(unsafe { sync.shared() })
}

/// After `event_reinit` (in a forked child): the old remote is dead; take the new one, and hand
/// the loop what is queued again.
///
/// # Safety
/// `p` is a live base that this thread may use.
pub(crate) unsafe fn after_reinit(p: *mut CBase) {
    // SAFETY: the caller's contract.
    unsafe {
        locked(p, |sh| {
            if sh.remote.is_some() {
                sh.remote = with_base_local(p, |b| b.remote().ok()).flatten();
                sh.kicked = false;
                if !sh.ops.is_empty() {
                    kick(p, sync_of(p), sh);
                }
            }
        })
    }
}

// ---- thread.h ----

/// `evthread_set_lock_callbacks`: the locks libevent's base uses when several threads call it.
/// Setting them enables threads (for every base, whenever it was made). NULL removes them (a base
/// that already has a lock keeps it); setting different ones once set fails.
#[no_mangle]
pub unsafe extern "C" fn evthread_set_lock_callbacks(cbs: *const evthread_lock_callbacks) -> c_int {
    crate::guard(-1, || {
        let mut s = setup();
        // SAFETY: C passes null or a readable struct.
        let Some(c) = (unsafe { cbs.as_ref() }) else {
            if s.lock.is_some() {
                log::warn!(
                    "evthread_set_lock_callbacks: disabling locking after it was set up: \
                     bases are no longer safe to share between threads"
                );
            }
            s.lock = None;
            ENABLED.store(false, Ordering::Release);
            return 0;
        };
        let (Some(alloc), Some(free), Some(lock), Some(unlock)) =
            (c.alloc, c.free, c.lock, c.unlock)
        else {
            log::warn!("evthread_set_lock_callbacks: every callback is required");
            return -1;
        };
        let fns = LockFns {
            version: c.lock_api_version,
            types: c.supported_locktypes,
            alloc,
            free,
            lock,
            unlock,
        };
        if let Some(old) = &s.lock {
            if old.same(&fns) {
                return 0;
            }
            log::warn!("evthread_set_lock_callbacks: the lock callbacks cannot change once set");
            return -1;
        }
        s.lock = Some(fns);
        ENABLED.store(true, Ordering::Release);
        0
    })
}

/// `evthread_set_condition_callbacks`: the condition variables that calls waiting for a base's loop
/// (`event_del` from another thread) sleep on. Without them, revent waits on its own. NULL removes
/// them; setting different ones once set fails.
#[no_mangle]
pub unsafe extern "C" fn evthread_set_condition_callbacks(
    cbs: *const evthread_condition_callbacks,
) -> c_int {
    crate::guard(-1, || {
        let mut s = setup();
        // SAFETY: C passes null or a readable struct.
        let Some(c) = (unsafe { cbs.as_ref() }) else {
            s.cond = None;
            return 0;
        };
        let (Some(alloc), Some(free), Some(signal), Some(wait)) = (
            c.alloc_condition,
            c.free_condition,
            c.signal_condition,
            c.wait_condition,
        ) else {
            log::warn!("evthread_set_condition_callbacks: every callback is required");
            return -1;
        };
        let fns = CondFns {
            version: c.condition_api_version,
            alloc,
            free,
            signal,
            wait,
        };
        if let Some(old) = &s.cond {
            if old.same(&fns) {
                return 0;
            }
            log::warn!(
                "evthread_set_condition_callbacks: the condition callbacks cannot change once set"
            );
            return -1;
        }
        s.cond = Some(fns);
        0
    })
}

/// `evthread_set_id_callback`: how the program names threads. revent tells threads apart by itself
/// (whether a thread may touch a base cannot depend on a callback); the id is what lock debugging
/// records and reports as a lock's holder.
#[no_mangle]
pub extern "C" fn evthread_set_id_callback(id_fn: Option<IdFn>) {
    setup().id = id_fn;
}

/// `evthread_enable_lock_debugging`: base locks made afterwards check that the program's lock
/// callbacks exclude each other and that a lock is released by the thread holding it, and report a
/// violation as fatal.
#[no_mangle]
pub extern "C" fn evthread_enable_lock_debugging() {
    DEBUG_LOCKS.store(true, Ordering::Relaxed);
}

/// `evthread_enable_lock_debuging`: libevent's old, misspelt name.
#[no_mangle]
pub extern "C" fn evthread_enable_lock_debuging() {
    evthread_enable_lock_debugging()
}

/// `evthread_make_base_notifiable`: gives the base its wake-up handle now (it otherwise gets one when
/// its loop first runs with threads enabled), so other threads can wake its loop. 0, or -1 if the
/// handle cannot be made.
#[no_mangle]
pub unsafe extern "C" fn evthread_make_base_notifiable(b: *mut CBase) -> c_int {
    crate::guard(-1, || {
        // SAFETY: the caller passes a live base.
        let r = unsafe {
            reach(b, |r| match r {
                Reach::Here => {
                    // Routed here: this thread may use the base.
                    let made = with_base_local(b, |base| base.remote());
                    match made {
                        Some(Ok(remote)) => {
                            locked(b, |sh| sh.remote = Some(remote));
                            0
                        }
                        Some(Err(e)) => {
                            log::warn!("evthread_make_base_notifiable: {e}");
                            -1
                        }
                        None => -1,
                    }
                }
                Reach::Away(q) if q.can_wake() => 0,
                Reach::Away(_) => {
                    log::warn!(
                        "evthread_make_base_notifiable: the base's loop started before threads \
                         were enabled; it can be woken once it returns"
                    );
                    -1
                }
            })
        };
        r.unwrap_or(-1)
    })
}
