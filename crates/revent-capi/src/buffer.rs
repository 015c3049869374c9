//! `event2/buffer.h` and `event2/buffer_compat.h`: `struct evbuffer` over revent's [`Evbuffer`].
//!
//! A `struct evbuffer *` is a `*mut Evbuffer`: from `evbuffer_new` (a leaked `Box`, freed by
//! `evbuffer_free`) or from a bufferevent (revent's `BufferEvent::buffer_ptrs`, owned by the
//! bufferevent). Every function works on either and never assumes it owns the buffer.
//!
//! # Reaching the buffer: `with_buf`
//! Each call makes one short-lived `&mut Evbuffer` and drops it before returning. C code runs while
//! a buffer operation is in progress only from a change callback (and from an `add_reference`
//! cleanup function). A change callback is given the buffer by revent as `&mut Evbuffer`; the
//! dispatcher publishes the pointer derived from *that* reference on a per-thread stack of frames,
//! and every function the callback calls on the same buffer uses it (the aliasing model of revent's
//! `base` module, one level down). A call on a buffer whose operation is in progress without such a
//! callback (a cleanup function calling back into the buffer it is being dropped from) is refused
//! with -1/NULL instead of making a second `&mut`.
//!
//! # State kept beside a buffer
//! What libevent keeps in `struct evbuffer` and revent's `Evbuffer` does not have (the C callbacks
//! with their flags and order, the deferral to a base, the lock) lives in a [`CState`], created on
//! first need and found by the buffer's address in a process-wide registry. Its life is tied to the
//! buffer's: the buffer holds it through the one change callback this module registers (the
//! *dispatcher*), so a buffer freed by its bufferevent takes its state with it, and the registry
//! only holds weak references (a new buffer at the same address never inherits stale state).
//!
//! Operations on two buffers (`evbuffer_add_buffer` and the like) hold both locks but reach the
//! buffers one at a time, moving the bytes through a private buffer: each buffer's callbacks run
//! while only that buffer is in use, so they may look at the other one.
//!
//! # Deferred callbacks
//! `evbuffer_defer_callbacks` is done here rather than with revent's deferred mode (which a
//! bufferevent may be using for its own buffers): the dispatcher sums the changes and activates an
//! internal event of the base through the base's `Remote` (safe from wherever the buffer changes,
//! including inside revent's own bufferevent code, where the base is borrowed); the event runs the
//! C callbacks from the loop with the buffer's stable pointer.
//!
//! # Bufferevents' buffers
//! When revent's bufferevent code changes one of its buffers (reading from the socket, say), the
//! dispatcher runs C callbacks from inside that code, which holds the base's `&mut`: C code there
//! must not call back into that base (no `call_out` is in effect). libevent allows it; this needs
//! the bufferevent layer's cooperation (e.g. publishing the base around its buffer operations).
//!
//! # Differences from libevent (documented on the functions too)
//! - Callbacks that change the buffer are reported in a further round once the current round is
//!   over, rather than by a nested call (revent's rule); `evbuffer_readln` reports the line and its
//!   end of line as one change, where libevent reports two; `evbuffer_remove_buffer` runs the
//!   source's callbacks before the destination's.
//! - `evbuffer_add_buffer_reference` copies the bytes (revent has no shared chunks between buffers).
//! - File segments are mapped (or read) into memory when first added; `evbuffer_add_file` uses
//!   revent's lazy file chunks, sent with `sendfile`.
//! - `evbuffer_reserve_space` always hands out one extent.
//! - `evbuffer_enable_locking` ignores a lock object passed in and uses a recursive lock of its own
//!   (and works without `evthread_use_pthreads`); `evbuffer_set_flags` has no effect.
//! - `evbuffer_free` from inside one of the buffer's own callbacks frees it when the operation
//!   that ran the callback returns (libevent would use freed memory).

use crate::base::{self, call_out, with_base, CBase};
use crate::{evutil_socket_t, guard, mem};
use libc::{c_char, c_int, c_uint, c_void, iovec, size_t};
use revent::buffer::{BufferEnd, CallbackInfo, EolStyle, Evbuffer, EvbufferPtr};
use revent::{EventBase, EventId, Remote, What};
use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// `struct evbuffer`.
pub type evbuffer = Evbuffer;

/// `struct evbuffer_ptr`: `pos` is authoritative (-1: not found); the rest is libevent's internal
/// part, which C code must not read. Here `chain` is the buffer's address for a valid position and
/// NULL otherwise.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evbuffer_ptr {
    pub pos: isize,
    pub chain: *mut c_void,
    pub pos_in_chain: size_t,
}

const _: () = {
    assert!(std::mem::size_of::<evbuffer_ptr>() == 24);
    assert!(std::mem::size_of::<evbuffer_cb_info>() == 24);
};

/// `struct evbuffer_cb_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evbuffer_cb_info {
    pub orig_size: size_t,
    pub n_added: size_t,
    pub n_deleted: size_t,
}

/// `evbuffer_cb_func`.
pub type evbuffer_cb_func =
    Option<unsafe extern "C" fn(*mut evbuffer, *const evbuffer_cb_info, *mut c_void)>;
/// `evbuffer_cb` (buffer_compat.h): buffer, old length, new length, argument.
pub type evbuffer_cb = Option<unsafe extern "C" fn(*mut evbuffer, size_t, size_t, *mut c_void)>;
/// `evbuffer_ref_cleanup_cb`.
pub type evbuffer_ref_cleanup_cb = Option<unsafe extern "C" fn(*const c_void, size_t, *mut c_void)>;
/// `evbuffer_file_segment_cleanup_cb`.
pub type evbuffer_file_segment_cleanup_cb =
    Option<unsafe extern "C" fn(*const evbuffer_file_segment, c_int, *mut c_void)>;

/// `EVBUFFER_CB_ENABLED`.
pub const EVBUFFER_CB_ENABLED: u32 = 1;
/// libevent's internal `EVBUFFER_CB_NODEFER`: run at once even when the buffer's callbacks are
/// deferred (settable through `evbuffer_cb_set_flags`, as in libevent).
pub const EVBUFFER_CB_NODEFER: u32 = 2;
/// Flags C may not change (libevent's `EVBUFFER_CB_INTERNAL_FLAGS`).
const CB_INTERNAL_FLAGS: u32 = 0xffff_0000;

/// `enum evbuffer_eol_style`.
pub const EVBUFFER_EOL_ANY: c_int = 0;
pub const EVBUFFER_EOL_CRLF: c_int = 1;
pub const EVBUFFER_EOL_CRLF_STRICT: c_int = 2;
pub const EVBUFFER_EOL_LF: c_int = 3;
pub const EVBUFFER_EOL_NUL: c_int = 4;

/// `enum evbuffer_ptr_how`.
pub const EVBUFFER_PTR_SET: c_int = 0;
pub const EVBUFFER_PTR_ADD: c_int = 1;

/// `EVBUF_FS_*` flags of `evbuffer_file_segment_new`.
pub const EVBUF_FS_CLOSE_ON_FREE: c_uint = 0x01;
pub const EVBUF_FS_DISABLE_MMAP: c_uint = 0x02;
pub const EVBUF_FS_DISABLE_SENDFILE: c_uint = 0x04;
pub const EVBUF_FS_DISABLE_LOCKING: c_uint = 0x08;

/// An argument the program passes back to its own callbacks.
#[derive(Clone, Copy)]
struct CArg(*mut c_void);

impl CArg {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut c_void {
        self.0
    }
}
// SAFETY: revent never dereferences the pointer; it only hands it back to the program's callback,
// on whatever thread the program uses the buffer from (libevent's contract).
unsafe impl Send for CArg {}
// SAFETY: as above: the pointer is only copied.
unsafe impl Sync for CArg {}

// ---- frames: which buffers have an operation or a callback in progress on this thread ----

/// One buffer in use on this thread: an operation (`op`, through [`with_buf`]) or a change
/// callback (the dispatcher, with the pointer derived from the `&mut` revent gave it). Frames live
/// on the Rust stack of the calls that push them, linked innermost first from the thread-local
/// [`TOP`]: a call reaches the thread-local once, where a `RefCell<Vec>` took three accesses (each
/// a `__tls_get_addr` call in a shared library) and a push into the vector.
struct Frame {
    addr: usize,
    ptr: *mut Evbuffer,
    op: bool,
    /// `evbuffer_free` was called while the buffer was in use: free it when this (outermost) frame
    /// ends.
    free_requested: Cell<bool>,
    /// The frame pushed before this one on this thread, or null.
    below: *const Frame,
}

thread_local! {
    /// This thread's innermost frame, or null.
    static TOP: Cell<*const Frame> = const { Cell::new(ptr::null()) };
}

/// This thread's frame stack, for the length of one call.
///
/// The cell lives as long as the thread; callers use the pointer within the call that took it.
#[inline]
fn frames() -> *const Cell<*const Frame> {
    TOP.with(|t| t as *const Cell<*const Frame>)
}

/// The frames of the stack `head`, innermost first.
///
/// # Safety
/// `head` is this thread's stack ([`frames`]): every frame linked from it lives further up this
/// thread's call stack, and stays there while the iterator is used.
unsafe fn frames_of<'a>(head: *const Cell<*const Frame>) -> impl Iterator<Item = &'a Frame> {
    // SAFETY: the caller's contract.
    let mut at = unsafe { (*head).get() };
    std::iter::from_fn(move || {
        // SAFETY: null or a linked frame, live (the caller's contract).
        let fr = unsafe { at.as_ref() }?;
        at = fr.below;
        Some(fr)
    })
}

/// How a call may reach the buffer at `addr` now.
enum Access {
    /// Nothing on this thread uses it: a fresh `&mut` from the C pointer.
    Raw,
    /// Inside its change callback: the pointer derived from the callback's reference.
    Derived(*mut Evbuffer),
    /// An operation on it is in progress (a cleanup function calling back): refuse.
    Busy,
}

/// How a call may reach `addr`, given this thread's stack `head`.
///
/// # Safety
/// As for [`frames_of`].
#[inline]
unsafe fn access_in(head: *const Cell<*const Frame>, addr: usize) -> Access {
    // SAFETY: the caller's contract.
    match unsafe { frames_of(head) }.find(|fr| fr.addr == addr) {
        None => Access::Raw,
        Some(fr) if fr.op => Access::Busy,
        Some(fr) => Access::Derived(fr.ptr),
    }
}

fn access(addr: usize) -> Access {
    // SAFETY: this thread's stack, used within this call.
    unsafe { access_in(frames(), addr) }
}

impl Frame {
    /// A frame for `addr`, to be pushed on the stack `head` with [`FrameGuard::push`].
    #[inline]
    fn new(head: *const Cell<*const Frame>, addr: usize, ptr: *mut Evbuffer, op: bool) -> Frame {
        Frame {
            addr,
            ptr,
            op,
            free_requested: Cell::new(false),
            // SAFETY: `head` is this thread's stack (the callers take it from `frames`).
            below: unsafe { (*head).get() },
        }
    }
}

/// Pops the frame pushed with it (also on unwinding) and carries out a free that was requested
/// while the buffer was in use.
struct FrameGuard<'a> {
    head: *const Cell<*const Frame>,
    frame: &'a Frame,
}

impl<'a> FrameGuard<'a> {
    /// Makes `frame` (made by [`Frame::new`] on `head` just now, nothing pushed since) this
    /// thread's innermost frame until the guard goes. The guard must be dropped before the frame,
    /// which it borrows.
    #[inline]
    fn push(head: *const Cell<*const Frame>, frame: &'a Frame) -> FrameGuard<'a> {
        // SAFETY: `head` is this thread's stack; `frame` outlives the guard, which unlinks it.
        unsafe { (*head).set(frame) };
        FrameGuard { head, frame }
    }
}

impl Drop for FrameGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this thread's stack; frames are pushed and popped in LIFO order (guards), so
        // `frame` is the innermost one.
        unsafe { (*self.head).set(self.frame.below) };
        if self.frame.free_requested.get() {
            self.free_requested();
        }
    }
}

impl FrameGuard<'_> {
    #[cold]
    fn free_requested(&self) {
        if self.frame.op {
            // SAFETY: the outermost frame of an operation holds the C pointer itself (a buffer
            // from evbuffer_new, as evbuffer_free requires); nothing on this thread uses the
            // buffer any more.
            unsafe { release(self.frame.ptr) };
        } else {
            log::warn!("evbuffer_free: the buffer is in use by a bufferevent operation; not freed");
        }
    }
}

/// Asks the outermost frame of `addr` to free the buffer when it ends; false if there is none.
fn request_free(addr: usize) -> bool {
    // SAFETY: this thread's stack, used within this call.
    let outermost = unsafe { frames_of(frames()) }
        .filter(|fr| fr.addr == addr)
        .last();
    match outermost {
        Some(fr) => {
            fr.free_requested.set(true);
            true
        }
        None => false,
    }
}

/// Runs `f` with the buffer behind `p` (see the module docs); `err` for a null or busy buffer.
///
/// # Safety
/// `p` is null or a live buffer, used by one thread at a time (or with locking enabled).
pub(crate) unsafe fn with_buf<R>(
    p: *mut Evbuffer,
    what: &str,
    err: R,
    f: impl FnOnce(&mut Evbuffer) -> R,
) -> R {
    if p.is_null() {
        log::warn!("{what}: NULL buffer");
        return err;
    }
    let addr = p as usize;
    let _lock = lock_for(addr);
    let head = frames();
    // SAFETY: this thread's stack, used within this call.
    let target = match unsafe { access_in(head, addr) } {
        Access::Raw => p,
        Access::Derived(d) => d,
        Access::Busy => {
            log::warn!("{what}: the buffer is in the middle of another operation");
            return err;
        }
    };
    let frame = Frame::new(head, addr, target, true);
    let _frame = FrameGuard::push(head, &frame);
    // SAFETY: `target` is the C pointer when nothing on this thread uses the buffer (the caller's
    // contract covers other threads), or the pointer derived from the `&mut` lent to the change
    // callback that is running now, which revent does not use until the callback returns. The
    // reference ends before this function returns.
    f(unsafe { &mut *target })
}

/// Takes the locks of two buffers (in address order, as libevent does) for an operation on both.
/// The operation itself reaches each buffer with its own [`with_buf`] calls, one at a time: each
/// buffer's callbacks then run while only that buffer is in use, so they may look at the other.
fn lock_two(a: *mut Evbuffer, b: *mut Evbuffer) -> [Option<LockGuard>; 2] {
    let (x, y) = (a as usize, b as usize);
    let (first, second) = if x < y { (x, y) } else { (y, x) };
    [lock_for(first), lock_for(second)]
}

/// Puts bytes taken out of `src` for a two-buffer operation back in front of it, when the second
/// half of the operation failed.
///
/// # Safety
/// As for [`with_buf`].
pub(crate) unsafe fn put_back(src: *mut Evbuffer, what: &str, tmp: &mut Evbuffer) {
    if tmp.is_empty() {
        return;
    }
    let op = |s: &mut Evbuffer| s.prepend_buffer(tmp).is_ok();
    // SAFETY: the caller's contract.
    if !unsafe { with_buf(src, what, false, op) } {
        log::warn!("{what}: the bytes could not be put back in the source buffer");
    }
}

/// Frees a buffer from `evbuffer_new` now or, if a run of its deferred callbacks is coming, after
/// that run: libevent's deferred callback holds a reference to the buffer, so changes made before
/// `evbuffer_free` are still reported.
///
/// # Safety
/// As for [`free_now`].
unsafe fn release(p: *mut Evbuffer) {
    if let Some(st) = state_of(p as usize) {
        if st.run_coming() {
            st.free_after_run.store(true, Ordering::Release);
            return;
        }
    }
    // SAFETY: the caller's contract.
    unsafe { free_now(p) }
}

/// Drops a buffer from `evbuffer_new`.
///
/// # Safety
/// `p` came from `evbuffer_new`, is not freed, and nothing uses it any more.
unsafe fn free_now(p: *mut Evbuffer) {
    let addr = p as usize;
    let state = state_of(addr);
    if let Some(st) = &state {
        st.lock_if_enabled();
    }
    {
        // Calls from cleanup functions run while the chunks drop are refused (the buffer is going).
        let head = frames();
        let frame = Frame::new(head, addr, p, true);
        let _frame = FrameGuard::push(head, &frame);
        // SAFETY: the caller's contract: a Box from evbuffer_new, freed once.
        drop(unsafe { Box::from_raw(p) });
    }
    if let Some(st) = &state {
        st.unlock_if_enabled();
    }
    forget_state(addr);
}

// ---- a recursive lock for evbuffer_enable_locking ----

/// A recursive lock on a futex: 0 free, 1 held, 2 held with waiters; `owner` is the holding
/// thread's token and `depth` its count, both written only by the holder.
#[derive(Default)]
struct RecLock {
    state: AtomicU32,
    owner: AtomicUsize,
    depth: AtomicU32,
}

/// A number naming the calling thread among the live ones (the address of a thread-local).
fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| t as *const u8 as usize)
}

fn futex(word: &AtomicU32, op: c_int, val: u32) {
    // SAFETY: a futex call on a live, aligned u32; FUTEX_WAIT returns when the word differs from
    // `val`, on a wake-up or spuriously, all of which the callers handle.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            ptr::null::<libc::timespec>(),
        );
    }
}

impl RecLock {
    fn lock(&self) {
        let me = thread_token();
        if self.owner.load(Ordering::Relaxed) == me {
            self.depth.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.state.swap(2, Ordering::Acquire) != 0 {
                futex(&self.state, libc::FUTEX_WAIT, 2);
            }
        }
        self.owner.store(me, Ordering::Relaxed);
        self.depth.store(1, Ordering::Relaxed);
    }

    /// Releases one level; false if the calling thread does not hold the lock.
    fn unlock(&self) -> bool {
        if self.owner.load(Ordering::Relaxed) != thread_token() {
            return false;
        }
        if self.depth.fetch_sub(1, Ordering::Relaxed) > 1 {
            return true;
        }
        self.owner.store(0, Ordering::Relaxed);
        if self.state.swap(0, Ordering::Release) == 2 {
            futex(&self.state, libc::FUTEX_WAKE, 1);
        }
        true
    }
}

/// Set once any buffer enabled locking: until then no call looks for a lock.
static ANY_LOCKING: AtomicBool = AtomicBool::new(false);

/// Set (for good) once some buffer may run C code in the middle of an operation: a C change
/// callback (any buffer with a [`CState`], whose dispatcher is registered), or a chunk whose drop
/// calls C (`evbuffer_add_reference`'s cleanup, a file segment's). Until then operations that run
/// nothing but revent's own code may skip what guards C code (see [`move_all`]).
static C_REACHABLE: AtomicBool = AtomicBool::new(false);

fn note_c_reachable() {
    C_REACHABLE.store(true, Ordering::Release);
}

/// Holds a buffer's lock for the length of one call.
struct LockGuard(Arc<CState>);

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.0.lock.unlock();
    }
}

fn lock_for(addr: usize) -> Option<LockGuard> {
    if !ANY_LOCKING.load(Ordering::Acquire) {
        return None;
    }
    let st = state_of(addr)?;
    if !st.locking.load(Ordering::Acquire) {
        return None;
    }
    st.lock.lock();
    Some(LockGuard(st))
}

// ---- the state kept beside a buffer ----

/// A C change callback (`struct evbuffer_cb_entry *` points at one).
pub struct evbuffer_cb_entry {
    kind: CbKind,
    arg: CArg,
    flags: AtomicU32,
    removed: AtomicBool,
}

#[derive(Clone, Copy)]
enum CbKind {
    /// `evbuffer_add_cb`'s callback.
    Info(unsafe extern "C" fn(*mut evbuffer, *const evbuffer_cb_info, *mut c_void)),
    /// `evbuffer_setcb`'s old-style callback.
    Sizes(unsafe extern "C" fn(*mut evbuffer, size_t, size_t, *mut c_void)),
}

impl CbKind {
    fn addr(self) -> usize {
        match self {
            CbKind::Info(f) => f as usize,
            CbKind::Sizes(f) => f as usize,
        }
    }
}

/// A buffer's deferral to a base (`evbuffer_defer_callbacks`): the base's internal event that runs
/// the callbacks, and the handle that activates it from wherever the buffer changes.
struct Deferred {
    remote: Remote,
    ev: EventId,
    scheduled: AtomicBool,
    /// Tells this deferral's event from an earlier one's (see [`DeferredRun`]).
    token: usize,
}

static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

/// The deferred event's callback state. If the base goes (and the event with it) while a buffer
/// freed by the program waits for this run, the buffer is freed then.
struct DeferredRun {
    st: Weak<CState>,
    buf: *mut Evbuffer,
    token: usize,
}

impl Drop for DeferredRun {
    fn drop(&mut self) {
        let Some(st) = self.st.upgrade() else { return };
        let current = st.deferred().as_ref().map(|d| d.token) == Some(self.token);
        if current
            && st.alive.load(Ordering::Acquire)
            && st.free_after_run.swap(false, Ordering::AcqRel)
        {
            // SAFETY: the program freed this buffer (from evbuffer_new) and only the run that
            // will not come now kept it.
            unsafe { free_now(self.buf) };
        }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        // Freed from inside the loop: the base may be running a callback right now (or be gone, and
        // the event with it, when the post fails).
        let ev = self.ev;
        let _ = self.remote.run(move |b| {
            let _ = b.free(ev);
        });
    }
}

/// What libevent keeps in `struct evbuffer` and revent's buffer does not.
pub struct CState {
    /// False once the buffer (and its dispatcher) is gone.
    alive: AtomicBool,
    /// The C callbacks in the order they were added (they run newest first, as in libevent).
    /// Copy-on-write, so a round of callbacks works on a snapshot without holding the mutex.
    entries: Mutex<Arc<Vec<Arc<evbuffer_cb_entry>>>>,
    lock: RecLock,
    locking: AtomicBool,
    deferred: Mutex<Option<Deferred>>,
    /// Changes summed for the deferred callbacks.
    pending: Mutex<Option<CallbackInfo>>,
    /// `evbuffer_free` was called while a deferred run was coming: free after it.
    free_after_run: AtomicBool,
}

impl CState {
    fn entries(&self) -> MutexGuard<'_, Arc<Vec<Arc<evbuffer_cb_entry>>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot(&self) -> Arc<Vec<Arc<evbuffer_cb_entry>>> {
        Arc::clone(&self.entries())
    }

    fn deferred(&self) -> MutexGuard<'_, Option<Deferred>> {
        self.deferred.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, Option<CallbackInfo>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_if_enabled(&self) {
        if self.locking.load(Ordering::Acquire) {
            self.lock.lock();
        }
    }

    fn unlock_if_enabled(&self) {
        if self.locking.load(Ordering::Acquire) {
            self.lock.unlock();
        }
    }

    /// Whether a deferred run is on its way with changes to report.
    fn run_coming(&self) -> bool {
        self.pending().is_some()
            && self
                .deferred()
                .as_ref()
                .is_some_and(|d| d.scheduled.load(Ordering::Acquire))
    }

    /// Activates the deferred event unless it is already on its way.
    fn schedule(&self) {
        if let Some(d) = self.deferred().as_ref() {
            if !d.scheduled.swap(true, Ordering::AcqRel) {
                if let Err(e) = d.remote.activate(d.ev, What::TIMEOUT) {
                    d.scheduled.store(false, Ordering::Release);
                    log::warn!("evbuffer: cannot run deferred callbacks: {e}");
                }
            }
        }
    }
}

/// Marks the state dead when the dispatcher (and so the buffer, at `.1`) is dropped, and takes its
/// entry out of the registry: a program that frees its bufferevents leaves nothing behind.
struct Owner(Arc<CState>, usize);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
        let mut reg = registry();
        if let Some(r) = reg.as_mut() {
            let mine = r
                .map
                .get(&self.1)
                .is_some_and(|w| ptr::eq(w.as_ptr(), Arc::as_ptr(&self.0)));
            if mine {
                r.map.remove(&self.1);
                if r.map.is_empty() {
                    *reg = None;
                }
            }
        }
    }
}

struct Registry {
    map: HashMap<usize, Weak<CState>>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state of the live buffer at `addr`, if it has one.
fn state_of(addr: usize) -> Option<Arc<CState>> {
    let mut reg = registry();
    let r = reg.as_mut()?;
    let st = r.map.get(&addr).and_then(Weak::upgrade);
    match st {
        Some(st) if st.alive.load(Ordering::Acquire) => Some(st),
        _ => {
            r.map.remove(&addr);
            None
        }
    }
}

/// The state of buffer `b` (at `addr`), made now if it has none: registers the dispatcher.
fn state_for(b: &mut Evbuffer, addr: usize) -> Arc<CState> {
    if let Some(st) = state_of(addr) {
        return st;
    }
    let st = Arc::new(CState {
        alive: AtomicBool::new(true),
        entries: Mutex::new(Arc::new(Vec::new())),
        lock: RecLock::default(),
        locking: AtomicBool::new(false),
        deferred: Mutex::new(None),
        pending: Mutex::new(None),
        free_after_run: AtomicBool::new(false),
    });
    let owner = Owner(Arc::clone(&st), addr);
    note_c_reachable();
    b.add_cb(move |buf, info| dispatch(&owner.0, buf, info));
    let mut reg = registry();
    let r = reg.get_or_insert_with(|| Registry {
        map: HashMap::new(),
    });
    r.map.insert(addr, Arc::downgrade(&st));
    st
}

fn forget_state(addr: usize) {
    let mut reg = registry();
    if let Some(r) = reg.as_mut() {
        r.map.remove(&addr);
        if r.map.is_empty() {
            // No buffer has state: give the table back (a program that freed its buffers leaves
            // nothing allocated).
            *reg = None;
        }
    }
}

/// The dispatcher: revent's change callback for a buffer with C callbacks. Runs them now, or sums
/// the change for the deferred run (running only the NODEFER ones now, as libevent does).
fn dispatch(st: &CState, buf: &mut Evbuffer, info: &CallbackInfo) {
    let entries = st.snapshot();
    if entries.is_empty() {
        return;
    }
    let new_size = buf.len();
    let deferred = st.deferred().is_some();
    let (info, mask, want) = if deferred {
        let sum = {
            let mut p = st.pending();
            let sum = p.get_or_insert(CallbackInfo {
                orig_size: info.orig_size,
                n_added: 0,
                n_deleted: 0,
            });
            sum.n_added = sum.n_added.saturating_add(info.n_added);
            sum.n_deleted = sum.n_deleted.saturating_add(info.n_deleted);
            *sum
        };
        st.schedule();
        let both = EVBUFFER_CB_ENABLED | EVBUFFER_CB_NODEFER;
        (sum, both, both)
    } else {
        (*info, EVBUFFER_CB_ENABLED, EVBUFFER_CB_ENABLED)
    };
    let p: *mut Evbuffer = buf;
    let head = frames();
    let frame = Frame::new(head, p as usize, p, false);
    let _frame = FrameGuard::push(head, &frame);
    run_entries(st, &entries, p, &info, new_size, mask, want);
}

/// Calls the entries whose `flags & mask == want`, newest first, skipping those removed meanwhile
/// and stopping if the buffer is freed.
fn run_entries(
    st: &CState,
    entries: &[Arc<evbuffer_cb_entry>],
    p: *mut Evbuffer,
    info: &CallbackInfo,
    new_size: usize,
    mask: u32,
    want: u32,
) {
    let cinfo = evbuffer_cb_info {
        orig_size: info.orig_size,
        n_added: info.n_added,
        n_deleted: info.n_deleted,
    };
    for e in entries.iter().rev() {
        if !st.alive.load(Ordering::Acquire) {
            break;
        }
        if e.removed.load(Ordering::Acquire) || e.flags.load(Ordering::Acquire) & mask != want {
            continue;
        }
        match e.kind {
            // SAFETY: the program's callback with the arguments it registered; `p` is the buffer
            // (derived from the reference revent lent the dispatcher, or the C pointer in the
            // deferred run) and `cinfo` lives across the call.
            CbKind::Info(f) => unsafe { f(p, &cinfo, e.arg.get()) },
            // SAFETY: as above, libevent's old-style callback.
            CbKind::Sizes(f) => unsafe { f(p, info.orig_size, new_size, e.arg.get()) },
        }
    }
}

/// The deferred event's work: the summed changes to the callbacks that wait for the loop.
fn run_deferred(st: &CState, p: *mut Evbuffer) {
    if let Some(d) = st.deferred().as_ref() {
        d.scheduled.store(false, Ordering::Release);
    }
    if !st.alive.load(Ordering::Acquire) {
        return;
    }
    if !matches!(access(p as usize), Access::Raw) {
        // An operation on the buffer is in progress further up this thread (a loop run from inside
        // it): leave the changes for the next run.
        st.schedule();
        return;
    }
    st.lock_if_enabled();
    let info = st.pending().take();
    if let Some(info) = info {
        let entries = st.snapshot();
        // SAFETY: the buffer is alive (its dispatcher is, `alive` says) and no operation on it is
        // in progress on this thread (checked above); the shared reference ends at once.
        let new_size = unsafe { (*p).len() };
        run_entries(
            st,
            &entries,
            p,
            &info,
            new_size,
            EVBUFFER_CB_ENABLED | EVBUFFER_CB_NODEFER,
            EVBUFFER_CB_ENABLED,
        );
    }
    st.unlock_if_enabled();
    if st.alive.load(Ordering::Acquire) && st.free_after_run.swap(false, Ordering::AcqRel) {
        // SAFETY: the program freed this buffer (from evbuffer_new) and only this run kept it.
        unsafe { free_now(p) };
    }
}

// ---- small helpers ----

fn eol_style(style: c_int) -> Option<EolStyle> {
    Some(match style {
        EVBUFFER_EOL_ANY => EolStyle::Any,
        EVBUFFER_EOL_CRLF => EolStyle::Crlf,
        EVBUFFER_EOL_CRLF_STRICT => EolStyle::CrlfStrict,
        EVBUFFER_EOL_LF => EolStyle::Lf,
        EVBUFFER_EOL_NUL => EolStyle::Nul,
        _ => return None,
    })
}

const NOT_FOUND: evbuffer_ptr = evbuffer_ptr {
    pos: -1,
    chain: ptr::null_mut(),
    pos_in_chain: 0,
};

fn c_ptr(b: &Evbuffer, pos: usize) -> evbuffer_ptr {
    evbuffer_ptr {
        pos: pos as isize,
        chain: b as *const Evbuffer as *mut c_void,
        pos_in_chain: 0,
    }
}

/// The position a C `evbuffer_ptr` holds, if it is one of this buffer's (`0..=len`).
///
/// # Safety
/// `p` is null or points to a readable `evbuffer_ptr`.
unsafe fn read_pos(b: &Evbuffer, p: *const evbuffer_ptr) -> Option<EvbufferPtr> {
    // SAFETY: the caller's contract; `pos` is a plain integer field.
    let pos = unsafe { ptr::read(ptr::addr_of!((*p).pos)) };
    if pos < 0 {
        return None;
    }
    b.ptr_at(pos as usize).ok()
}

/// [`read_pos`] for a pointer that may be null (None for null too).
///
/// # Safety
/// As for [`read_pos`].
unsafe fn opt_pos(b: &Evbuffer, p: *const evbuffer_ptr) -> Option<EvbufferPtr> {
    if p.is_null() {
        None
    } else {
        // SAFETY: the caller's contract.
        unsafe { read_pos(b, p) }
    }
}

/// Stores `errno` for an I/O failure, so C code can tell EAGAIN from an error.
fn set_errno(e: &revent::Error) {
    if let revent::Error::Io(io) = e {
        if let Some(code) = io.raw_os_error() {
            // SAFETY: errno is this thread's, always writable.
            unsafe { *libc::__errno_location() = code };
        }
    }
}

/// `len` bytes at `data` as a slice (empty for `len == 0`, whatever `data` is); None for a null
/// pointer with a length.
///
/// # Safety
/// `data` is null or points to `len` readable bytes that stay valid and unchanged while the slice
/// is used.
unsafe fn c_bytes<'a>(data: *const c_void, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if data.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

// ---- creating and freeing ----

/// `evbuffer_new`: an empty buffer.
#[no_mangle]
pub extern "C" fn evbuffer_new() -> *mut evbuffer {
    guard(ptr::null_mut(), || Box::into_raw(Box::new(Evbuffer::new())))
}

/// `evbuffer_free`: frees a buffer from `evbuffer_new` (its C callbacks and references go with it).
/// Called from one of the buffer's own callbacks, the buffer is freed once the operation that ran
/// the callback returns.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_free(buf: *mut evbuffer) {
    guard((), || {
        if buf.is_null() || request_free(buf as usize) {
            return;
        }
        // SAFETY: a buffer from evbuffer_new (C frees only its own), not in use on this thread.
        unsafe { release(buf) };
    })
}

// ---- locking ----

/// `evbuffer_enable_locking`: gives the buffer a recursive lock, held by every call on it (across
/// its callbacks too) and by `evbuffer_lock`. A lock object passed in is not used (revent has its
/// own lock), and unlike libevent this works without `evthread_use_pthreads`. -1 if the buffer is
/// already lockable.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_enable_locking(buf: *mut evbuffer, _lock: *mut c_void) -> c_int {
    guard(-1, || {
        let op = |b: &mut Evbuffer| {
            let st = state_for(b, buf as usize);
            if st.locking.swap(true, Ordering::AcqRel) {
                return -1;
            }
            ANY_LOCKING.store(true, Ordering::Release);
            0
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_enable_locking", -1, op) }
    })
}

/// `evbuffer_lock`: takes the buffer's lock (recursive); nothing if locking is not enabled.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_lock(buf: *mut evbuffer) {
    guard((), || {
        if buf.is_null() || !ANY_LOCKING.load(Ordering::Acquire) {
            return;
        }
        if let Some(st) = state_of(buf as usize) {
            st.lock_if_enabled();
        }
    })
}

/// `evbuffer_unlock`: releases what `evbuffer_lock` took; nothing if locking is not enabled.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_unlock(buf: *mut evbuffer) {
    guard((), || {
        if buf.is_null() || !ANY_LOCKING.load(Ordering::Acquire) {
            return;
        }
        if let Some(st) = state_of(buf as usize) {
            if st.locking.load(Ordering::Acquire) && !st.lock.unlock() {
                log::warn!("evbuffer_unlock: the buffer is not locked by this thread");
            }
        }
    })
}

/// `evbuffer_set_flags`: accepted (0). `EVBUFFER_FLAG_DRAINS_TO_FD` changes nothing in revent:
/// file chunks from `evbuffer_add_file` always go out with `sendfile` when written to an fd that
/// takes it, and are read into memory when looked at.
#[no_mangle]
pub extern "C" fn evbuffer_set_flags(buf: *mut evbuffer, _flags: u64) -> c_int {
    if buf.is_null() {
        -1
    } else {
        0
    }
}

/// `evbuffer_clear_flags`: accepted (0); see `evbuffer_set_flags`.
#[no_mangle]
pub extern "C" fn evbuffer_clear_flags(buf: *mut evbuffer, _flags: u64) -> c_int {
    if buf.is_null() {
        -1
    } else {
        0
    }
}

/// `evbuffer_freeze`: makes the front (`at_front` true) or the end refuse changes.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_freeze(buf: *mut evbuffer, at_front: c_int) -> c_int {
    guard(-1, || {
        let end = if at_front != 0 {
            BufferEnd::Start
        } else {
            BufferEnd::End
        };
        let op = |b: &mut Evbuffer| {
            b.freeze(end);
            0
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_freeze", -1, op) }
    })
}

/// `evbuffer_unfreeze`: undoes `evbuffer_freeze` for that end.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_unfreeze(buf: *mut evbuffer, at_front: c_int) -> c_int {
    guard(-1, || {
        let end = if at_front != 0 {
            BufferEnd::Start
        } else {
            BufferEnd::End
        };
        let op = |b: &mut Evbuffer| {
            b.unfreeze(end);
            0
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_unfreeze", -1, op) }
    })
}

// ---- sizes ----

/// `evbuffer_get_length`: the number of bytes stored (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn evbuffer_get_length(buf: *const evbuffer) -> size_t {
    guard(0, || {
        // SAFETY: C passes null or a live buffer (only read here).
        unsafe { with_buf(buf.cast_mut(), "evbuffer_get_length", 0, |b| b.len()) }
    })
}

/// `evbuffer_get_contiguous_space`: the number of bytes in the first chunk.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_get_contiguous_space(buf: *const evbuffer) -> size_t {
    guard(0, || {
        let op = |b: &mut Evbuffer| b.contiguous_space();
        // SAFETY: C passes null or a live buffer (only read here).
        unsafe { with_buf(buf.cast_mut(), "evbuffer_get_contiguous_space", 0, op) }
    })
}

/// `evbuffer_expand`: room for `datlen` more bytes at the end without another allocation.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_expand(buf: *mut evbuffer, datlen: size_t) -> c_int {
    guard(-1, || {
        let op = |b: &mut Evbuffer| b.expand(datlen).map_or(-1, |()| 0);
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_expand", -1, op) }
    })
}

// ---- adding ----

/// `evbuffer_add`: appends a copy of `datlen` bytes.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_add(
    buf: *mut evbuffer,
    data: *const c_void,
    datlen: size_t,
) -> c_int {
    guard(-1, || {
        // SAFETY: C passes `datlen` readable bytes at `data`, which are not the buffer's.
        let Some(bytes) = (unsafe { c_bytes(data, datlen) }) else {
            log::warn!("evbuffer_add: NULL data");
            return -1;
        };
        let op = |b: &mut Evbuffer| b.add(bytes).map_or(-1, |()| 0);
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_add", -1, op) }
    })
}

/// `evbuffer_prepend`: puts a copy of `size` bytes in front.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_prepend(
    buf: *mut evbuffer,
    data: *const c_void,
    size: size_t,
) -> c_int {
    guard(-1, || {
        // SAFETY: C passes `size` readable bytes at `data`, which are not the buffer's.
        let Some(bytes) = (unsafe { c_bytes(data, size) }) else {
            log::warn!("evbuffer_prepend: NULL data");
            return -1;
        };
        let op = |b: &mut Evbuffer| b.prepend(bytes).map_or(-1, |()| 0);
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_prepend", -1, op) }
    })
}

/// `evbuffer_add_iovec`: appends each extent in turn (after making room for all of them at once);
/// returns the number of bytes added.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_add_iovec(
    buf: *mut evbuffer,
    vec: *mut iovec,
    n_vec: c_int,
) -> size_t {
    guard(0, || {
        if vec.is_null() || n_vec <= 0 {
            return 0;
        }
        // SAFETY: C passes `n_vec` readable iovecs.
        let vecs = unsafe { std::slice::from_raw_parts(vec, n_vec as usize) };
        let Some(total) = vecs
            .iter()
            .try_fold(0usize, |acc, v| acc.checked_add(v.iov_len))
        else {
            return 0;
        };
        let op = |b: &mut Evbuffer| {
            if b.is_frozen(BufferEnd::End) || b.expand(total).is_err() {
                return 0;
            }
            let mut added = 0;
            for v in vecs {
                // SAFETY: each extent is `iov_len` readable bytes of the program's memory.
                let Some(bytes) = (unsafe { c_bytes(v.iov_base, v.iov_len) }) else {
                    break;
                };
                if b.add(bytes).is_err() {
                    break;
                }
                added += bytes.len();
            }
            added
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_add_iovec", 0, op) }
    })
}

/// The program's memory given to `evbuffer_add_reference`, lent to the buffer until the cleanup.
struct CRef {
    data: *const u8,
    len: usize,
}

// SAFETY: the program promises the memory stays valid and unchanged until its cleanup function is
// called (libevent's contract); the buffer only reads it, on the threads the program uses it from.
unsafe impl Send for CRef {}
// SAFETY: as above; the memory is only read.
unsafe impl Sync for CRef {}

impl AsRef<[u8]> for CRef {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `len` readable bytes at `data` until the cleanup runs; the cleanup consumes this
        // value, so nothing reads the memory afterwards.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// `evbuffer_add_reference`: appends `datlen` bytes of the caller's memory without copying, and
/// calls `cleanupfn(data, datlen, arg)` exactly once when the buffer no longer refers to them (the
/// last byte drained, written or moved on, or the buffer freed). Nothing reads the memory after
/// that call. On failure (a frozen end) the cleanup is not called, as in libevent; a zero-length
/// reference is released (cleaned up) at once.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_add_reference(
    buf: *mut evbuffer,
    data: *const c_void,
    datlen: size_t,
    cleanupfn: evbuffer_ref_cleanup_cb,
    arg: *mut c_void,
) -> c_int {
    guard(-1, || {
        if data.is_null() && datlen > 0 {
            log::warn!("evbuffer_add_reference: NULL data");
            return -1;
        }
        let arg = CArg(arg);
        let op = |b: &mut Evbuffer| {
            if b.is_frozen(BufferEnd::End) {
                return -1;
            }
            let r = CRef {
                data: data.cast(),
                len: datlen,
            };
            if cleanupfn.is_some() {
                note_c_reachable();
            }
            let cleanup = move |r: CRef| {
                if let Some(f) = cleanupfn {
                    // SAFETY: the program's cleanup with the arguments it registered; `r` is
                    // consumed here, and nothing refers to the memory afterwards.
                    unsafe { f(r.data.cast(), r.len, arg.get()) };
                }
            };
            b.add_reference(r, cleanup).map_or(-1, |()| 0)
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_add_reference", -1, op) }
    })
}

/// `evbuffer_add_buffer`: moves all of `inbuf` to the end of `outbuf` (whole chunks, no copy).
/// `inbuf`'s callbacks run first, then `outbuf`'s, as in libevent.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_add_buffer(outbuf: *mut evbuffer, inbuf: *mut evbuffer) -> c_int {
    // SAFETY: forwarded with C's contract.
    guard(-1, || unsafe {
        move_all(outbuf, inbuf, BufferEnd::End, "evbuffer_add_buffer")
    })
}

/// Moves all of `src` to the `end` of `dst`: `evbuffer_add_buffer` and `evbuffer_prepend_buffer`.
///
/// # Safety
/// `dst` and `src` are null or live buffers.
unsafe fn move_all(dst: *mut evbuffer, src: *mut evbuffer, end: BufferEnd, what: &str) -> c_int {
    if dst == src {
        return if dst.is_null() { -1 } else { 0 };
    }
    if dst.is_null() || src.is_null() {
        log::warn!("{what}: NULL buffer");
        return -1;
    }
    if !C_REACHABLE.load(Ordering::Acquire) && !ANY_LOCKING.load(Ordering::Acquire) {
        // SAFETY: this thread's stack, read within this call.
        if unsafe { (*frames()).get() }.is_null() {
            // Nothing uses either buffer on this thread (no frame: no operation or change callback
            // further up), and nothing the move runs can call C code (no buffer has C callbacks
            // or C cleanups, and revent's own change callbacks only post work to the loop): so no
            // code can observe the frames or the private buffer that keep each buffer's callbacks
            // apart (below), and the bytes move directly, whole chunks with no allocation.
            // SAFETY: live, distinct buffers (the caller's contract, checked above), used by this
            // thread only (no locking: C's contract); the references end here.
            let (d, s) = unsafe { (&mut *dst, &mut *src) };
            if s.is_empty() {
                return 0;
            }
            let r = match end {
                BufferEnd::End => d.add_buffer(s),
                BufferEnd::Start => d.prepend_buffer(s),
            };
            return r.map_or(-1, |()| 0);
        }
    }
    let _locks = lock_two(dst, src);
    let look_src = |s: &mut Evbuffer| Some((s.len(), s.is_frozen(BufferEnd::Start)));
    let look_dst = |d: &mut Evbuffer| Some(d.is_frozen(end));
    let (Some((n, src_frozen)), Some(dst_frozen)) = (
        // SAFETY: live buffers (the caller's contract), which differ (checked); so in the
        // with_buf calls below.
        unsafe { with_buf(src, what, None, look_src) },
        // SAFETY: as above.
        unsafe { with_buf(dst, what, None, look_dst) },
    ) else {
        return -1;
    };
    if n == 0 {
        return 0;
    }
    if src_frozen || dst_frozen {
        return -1;
    }
    // Through a private buffer, so that each buffer's callbacks run while only it is in use.
    let mut tmp = Evbuffer::new();
    let take = |s: &mut Evbuffer| tmp.add_buffer(s).is_ok();
    // SAFETY: as above.
    if !unsafe { with_buf(src, what, false, take) } {
        return -1;
    }
    let give = |d: &mut Evbuffer| match end {
        BufferEnd::End => d.add_buffer(&mut tmp).is_ok(),
        BufferEnd::Start => d.prepend_buffer(&mut tmp).is_ok(),
    };
    // SAFETY: as above.
    if unsafe { with_buf(dst, what, false, give) } {
        0
    } else {
        // SAFETY: as above.
        unsafe { put_back(src, what, &mut tmp) };
        -1
    }
}

/// `evbuffer_add_buffer_reference`: appends `inbuf`'s bytes to `outbuf`, leaving `inbuf` as it is.
/// revent copies the bytes (its buffers share no chunks); unlike libevent, a source holding file
/// segments is accepted (they are read).
#[no_mangle]
pub unsafe extern "C" fn evbuffer_add_buffer_reference(
    outbuf: *mut evbuffer,
    inbuf: *mut evbuffer,
) -> c_int {
    guard(-1, || {
        const WHAT: &str = "evbuffer_add_buffer_reference";
        if outbuf == inbuf || outbuf.is_null() || inbuf.is_null() {
            return -1;
        }
        let _locks = lock_two(outbuf, inbuf);
        let copy = |i: &mut Evbuffer| {
            let mut bytes = Vec::with_capacity(i.len());
            for s in i.peek(usize::MAX).ok()? {
                bytes.extend_from_slice(s);
            }
            Some(bytes)
        };
        // SAFETY: C passes live buffers; they differ (checked).
        let Some(bytes) = (unsafe { with_buf(inbuf, WHAT, None, copy) }) else {
            return -1;
        };
        if bytes.is_empty() {
            return 0;
        }
        let add = |o: &mut Evbuffer| {
            if o.is_frozen(BufferEnd::End) {
                return -1;
            }
            o.add(&bytes).map_or(-1, |()| 0)
        };
        // SAFETY: as above.
        unsafe { with_buf(outbuf, WHAT, -1, add) }
    })
}

/// `evbuffer_prepend_buffer`: moves all of `src` to the front of `dst`; `src`'s callbacks run
/// first, then `dst`'s.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_prepend_buffer(dst: *mut evbuffer, src: *mut evbuffer) -> c_int {
    // SAFETY: forwarded with C's contract.
    guard(-1, || unsafe {
        move_all(dst, src, BufferEnd::Start, "evbuffer_prepend_buffer")
    })
}

/// `evbuffer_remove_buffer`: moves up to `datlen` bytes from the front of `src` to the end of
/// `dst` (whole chunks without copying); returns how many moved. `src`'s callbacks run first,
/// then `dst`'s (libevent runs `dst`'s first).
#[no_mangle]
pub unsafe extern "C" fn evbuffer_remove_buffer(
    src: *mut evbuffer,
    dst: *mut evbuffer,
    datlen: size_t,
) -> c_int {
    guard(-1, || {
        const WHAT: &str = "evbuffer_remove_buffer";
        if src == dst {
            return if src.is_null() { -1 } else { 0 };
        }
        if src.is_null() || dst.is_null() {
            log::warn!("{WHAT}: NULL buffer");
            return -1;
        }
        if datlen == 0 {
            return 0;
        }
        let _locks = lock_two(src, dst);
        let look_src = |s: &mut Evbuffer| Some(s.is_frozen(BufferEnd::Start));
        let look_dst = |d: &mut Evbuffer| Some(d.is_frozen(BufferEnd::End));
        let (Some(src_frozen), Some(dst_frozen)) = (
            // SAFETY: C passes live buffers, which differ (checked); so in the with_buf calls
            // below.
            unsafe { with_buf(src, WHAT, None, look_src) },
            // SAFETY: as above.
            unsafe { with_buf(dst, WHAT, None, look_dst) },
        ) else {
            return -1;
        };
        if src_frozen || dst_frozen {
            return -1;
        }
        let mut tmp = Evbuffer::new();
        let take = |s: &mut Evbuffer| s.remove_buffer(&mut tmp, datlen).ok();
        // SAFETY: as above.
        let Some(n) = (unsafe { with_buf(src, WHAT, None, take) }) else {
            return -1;
        };
        if n == 0 {
            return 0;
        }
        let give = |d: &mut Evbuffer| d.add_buffer(&mut tmp).is_ok();
        // SAFETY: as above.
        if unsafe { with_buf(dst, WHAT, false, give) } {
            n.min(c_int::MAX as usize) as c_int
        } else {
            // SAFETY: as above.
            unsafe { put_back(src, WHAT, &mut tmp) };
            -1
        }
    })
}

// ---- taking bytes out ----

/// `evbuffer_drain`: discards up to `len` bytes from the front.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_drain(buf: *mut evbuffer, len: size_t) -> c_int {
    guard(-1, || {
        let op = |b: &mut Evbuffer| {
            if b.is_empty() {
                return 0;
            }
            b.drain(len).map_or(-1, |_| 0)
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_drain", -1, op) }
    })
}

/// `evbuffer_remove`: copies up to `datlen` bytes out and drains them; returns the count.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_remove(
    buf: *mut evbuffer,
    data: *mut c_void,
    datlen: size_t,
) -> c_int {
    guard(-1, || {
        let op = |b: &mut Evbuffer| {
            let n = datlen.min(b.len());
            if n == 0 {
                return 0;
            }
            if data.is_null() {
                log::warn!("evbuffer_remove: NULL destination");
                return -1;
            }
            // SAFETY: C passes `datlen` (>= n) writable bytes at `data`, which are not the
            // buffer's.
            let out = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), n) };
            b.remove(out).map_or(-1, |k| k as c_int)
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_remove", -1, op) }
    })
}

/// `evbuffer_copyout`: copies up to `datlen` bytes from the front, leaving them there.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_copyout(
    buf: *mut evbuffer,
    data_out: *mut c_void,
    datlen: size_t,
) -> isize {
    // SAFETY: forwarded with the caller's contract.
    unsafe { evbuffer_copyout_from(buf, ptr::null(), data_out, datlen) }
}

/// `evbuffer_copyout_from`: copies up to `datlen` bytes starting at `pos` (NULL: the front). As in
/// libevent, a start-frozen buffer gives -1 unless there is nothing to copy.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_copyout_from(
    buf: *mut evbuffer,
    pos: *const evbuffer_ptr,
    data_out: *mut c_void,
    datlen: size_t,
) -> isize {
    guard(-1, || {
        let op = |b: &mut Evbuffer| {
            let from = if pos.is_null() {
                b.ptr_at(0).ok()
            } else {
                // SAFETY: a non-null, readable evbuffer_ptr (the caller's contract).
                unsafe { read_pos(b, pos) }
            };
            let Some(from) = from else {
                log::warn!("evbuffer_copyout_from: position outside the buffer");
                return -1;
            };
            if datlen > isize::MAX as usize - from.position() {
                return -1;
            }
            let n = datlen.min(b.len() - from.position());
            if n == 0 {
                return 0;
            }
            if b.is_frozen(BufferEnd::Start) {
                return -1;
            }
            if data_out.is_null() {
                log::warn!("evbuffer_copyout_from: NULL destination");
                return -1;
            }
            // SAFETY: C passes `datlen` (>= n) writable bytes, which are not the buffer's.
            let out = unsafe { std::slice::from_raw_parts_mut(data_out.cast::<u8>(), n) };
            b.copyout_from(&from, out).map_or(-1, |k| k as isize)
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_copyout_from", -1, op) }
    })
}

/// Makes the first `size` bytes contiguous with libevent's rules (negative: all; 0 or more than
/// the buffer holds: NULL) and returns a pointer to them.
fn pullup_ptr(b: &mut Evbuffer, size: isize) -> *mut u8 {
    let n = if size < 0 { b.len() } else { size as usize };
    if n == 0 || n > b.len() {
        return ptr::null_mut();
    }
    match b.pullup_mut(n) {
        Ok(s) => s.as_mut_ptr(),
        Err(e) => {
            log::warn!("evbuffer_pullup: {e}");
            ptr::null_mut()
        }
    }
}

/// `evbuffer_pullup`: makes the first `size` bytes (-1: all) contiguous and returns them, valid
/// until the buffer next changes; NULL for 0 bytes or more than the buffer holds, as in libevent.
/// C may read and write them: a first chunk that is not the buffer's own memory (a reference, a
/// file segment, memory an io_uring send shares) is copied first, so an edit reaches this buffer
/// only.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_pullup(buf: *mut evbuffer, size: isize) -> *mut u8 {
    guard(ptr::null_mut(), || {
        let op = |b: &mut Evbuffer| pullup_ptr(b, size);
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_pullup", ptr::null_mut(), op) }
    })
}

// ---- lines ----

/// `evbuffer_readln`: takes one line off the front and returns it NUL-terminated (memory from
/// `event_set_mem_functions`' malloc; the caller frees it), its length (without the end of line) in
/// `*n_read_out`. NULL (and 0) when no complete line is buffered, the front is frozen or the style
/// is unknown. The line and its end of line are reported to callbacks as one change (libevent
/// reports two).
#[no_mangle]
pub unsafe extern "C" fn evbuffer_readln(
    buf: *mut evbuffer,
    n_read_out: *mut size_t,
    eol: c_int,
) -> *mut c_char {
    let line = guard(None, || {
        let style = eol_style(eol)?;
        let op = |b: &mut Evbuffer| b.readln(style).ok().flatten();
        // SAFETY: C passes null or a live buffer.
        let (line, _) = unsafe { with_buf(buf, "evbuffer_readln", None, op) }?;
        let s = mem::c_string(&line);
        (!s.is_null()).then_some((s, line.len()))
    });
    let (s, n) = line.unwrap_or((ptr::null_mut(), 0));
    if !n_read_out.is_null() {
        // SAFETY: a non-null, writable size_t (the caller's contract).
        unsafe { n_read_out.write(n) };
    }
    s
}

/// `evbuffer_readline` (buffer_compat.h): `evbuffer_readln(buf, NULL, EVBUFFER_EOL_ANY)`.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_readline(buf: *mut evbuffer) -> *mut c_char {
    // SAFETY: forwarded with the caller's contract.
    unsafe { evbuffer_readln(buf, ptr::null_mut(), EVBUFFER_EOL_ANY) }
}

// ---- positions and searching ----

/// `evbuffer_ptr_set`: moves `*ptr` to `position` (`EVBUFFER_PTR_SET`) or forward by it
/// (`EVBUFFER_PTR_ADD`). A target past the end is -1 and leaves `ptr->pos` at -1, as in libevent.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_ptr_set(
    buf: *mut evbuffer,
    ptr_: *mut evbuffer_ptr,
    position: size_t,
    how: c_int,
) -> c_int {
    guard(-1, || {
        if ptr_.is_null() {
            return -1;
        }
        let op = |b: &mut Evbuffer| {
            let target = match how {
                EVBUFFER_PTR_SET => Some(position),
                EVBUFFER_PTR_ADD => {
                    // SAFETY: a non-null evbuffer_ptr the caller set before (PTR_ADD needs one).
                    let pos = unsafe { ptr::read(ptr::addr_of!((*ptr_).pos)) };
                    if pos < 0 {
                        return -1;
                    }
                    match (pos as usize).checked_add(position) {
                        Some(t) => Some(t),
                        None => return -1,
                    }
                }
                _ => return -1,
            };
            let out = target
                .filter(|&t| t <= isize::MAX as usize)
                .and_then(|t| b.ptr_at(t).ok())
                .map(|p| c_ptr(b, p.position()));
            let (val, r) = match out {
                Some(v) => (v, 0),
                None => (NOT_FOUND, -1),
            };
            // SAFETY: a non-null, writable evbuffer_ptr (the caller's contract).
            unsafe { ptr_.write(val) };
            r
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_ptr_set", -1, op) }
    })
}

/// `evbuffer_search_range`: the first occurrence of `what` (`len` bytes) at or after `start` (NULL:
/// the front) that ends at or before `end` (NULL: the end of the buffer); `pos` -1 if there is
/// none or a position is not in the buffer.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_search_range(
    buf: *mut evbuffer,
    what: *const c_char,
    len: size_t,
    start: *const evbuffer_ptr,
    end: *const evbuffer_ptr,
) -> evbuffer_ptr {
    guard(NOT_FOUND, || {
        // SAFETY: C passes `len` readable bytes at `what`.
        let Some(needle) = (unsafe { c_bytes(what.cast(), len) }) else {
            return NOT_FOUND;
        };
        let op = |b: &mut Evbuffer| {
            // SAFETY: null or a readable evbuffer_ptr (the caller's contract).
            let from = match (start.is_null(), unsafe { opt_pos(b, start) }) {
                (false, None) => return NOT_FOUND,
                (_, p) => p,
            };
            // SAFETY: as above.
            let to = match (end.is_null(), unsafe { opt_pos(b, end) }) {
                (false, None) => return NOT_FOUND,
                (_, p) => p,
            };
            match b.search_range(needle, from.as_ref(), to.as_ref()) {
                Ok(Some(p)) => c_ptr(b, p.position()),
                _ => NOT_FOUND,
            }
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_search_range", NOT_FOUND, op) }
    })
}

/// `evbuffer_search`: `evbuffer_search_range` to the end of the buffer.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_search(
    buf: *mut evbuffer,
    what: *const c_char,
    len: size_t,
    start: *const evbuffer_ptr,
) -> evbuffer_ptr {
    // SAFETY: forwarded with the caller's contract.
    unsafe { evbuffer_search_range(buf, what, len, start, ptr::null()) }
}

/// `evbuffer_search_eol`: the first end of line of style `eol` at or after `start` (NULL: the
/// front), its length in `*eol_len_out` (0 when there is none).
#[no_mangle]
pub unsafe extern "C" fn evbuffer_search_eol(
    buf: *mut evbuffer,
    start: *mut evbuffer_ptr,
    eol_len_out: *mut size_t,
    eol: c_int,
) -> evbuffer_ptr {
    let found = guard(None, || {
        let style = eol_style(eol)?;
        let op = |b: &mut Evbuffer| {
            let from = if start.is_null() {
                None
            } else {
                // SAFETY: a non-null, readable evbuffer_ptr (the caller's contract).
                Some(unsafe { read_pos(b, start) }?)
            };
            match b.search_eol(from.as_ref(), style) {
                Ok(Some((p, n))) => Some((c_ptr(b, p.position()), n)),
                _ => None,
            }
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_search_eol", None, op) }
    });
    let (p, n) = found.unwrap_or((NOT_FOUND, 0));
    if !eol_len_out.is_null() {
        // SAFETY: a non-null, writable size_t (the caller's contract).
        unsafe { eol_len_out.write(n) };
    }
    p
}

/// `evbuffer_find` (buffer_compat.h): makes the buffer contiguous up to the first occurrence of
/// `what` and returns a pointer to it inside the buffer; NULL if it does not occur.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_find(
    buf: *mut evbuffer,
    what: *const u8,
    len: size_t,
) -> *mut u8 {
    guard(ptr::null_mut(), || {
        // SAFETY: C passes `len` readable bytes at `what`.
        let Some(needle) = (unsafe { c_bytes(what.cast(), len) }) else {
            return ptr::null_mut();
        };
        let op = |b: &mut Evbuffer| {
            let Ok(Some(p)) = b.search(needle, None) else {
                return ptr::null_mut();
            };
            let at = p.position();
            let head = pullup_ptr(b, (at + len) as isize);
            if head.is_null() {
                return head;
            }
            // SAFETY: `head` points to at least `at + len` contiguous bytes.
            unsafe { head.add(at) }
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_find", ptr::null_mut(), op) }
    })
}

// ---- looking in without copying, writing in without copying ----

/// The rest of the chunk that holds byte `pos` (whole, from `pos` on), found by asking `peek_from`
/// for more until the first slice stops growing (so a file segment after it is read at most once).
fn chunk_rest(b: &Evbuffer, pos: usize, hint: usize) -> Option<&[u8]> {
    let remaining = b.len().checked_sub(pos).filter(|&r| r > 0)?;
    let p = b.ptr_at(pos).ok()?;
    let mut want = hint.clamp(1, remaining);
    loop {
        let first = b.peek_from(&p, want).ok()?.next()?;
        if first.len() < want || want == remaining {
            return Some(first);
        }
        want = want.saturating_mul(2).min(remaining);
    }
}

/// `evbuffer_peek`: points `vec_out` at the buffer's chunks from `start_at` (NULL: the front), whole
/// chunks as libevent does, until `len` bytes are covered (`len` negative: as many chunks as
/// `n_vec` holds, or with `n_vec` 0 all of them). Returns the number of extents needed, which may
/// exceed `n_vec`. A buffer holding file segments has them read into memory first.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_peek(
    buf: *mut evbuffer,
    len: isize,
    start_at: *mut evbuffer_ptr,
    vec_out: *mut iovec,
    n_vec: c_int,
) -> c_int {
    guard(-1, || {
        if n_vec < 0 || (n_vec > 0 && vec_out.is_null()) {
            return -1;
        }
        let op = |b: &mut Evbuffer| {
            let b: &Evbuffer = b;
            let start = if start_at.is_null() {
                0
            } else {
                // SAFETY: a non-null, readable evbuffer_ptr (the caller's contract).
                match unsafe { read_pos(b, start_at) } {
                    Some(p) => p.position(),
                    None => return 0,
                }
            };
            let avail = b.len() - start;
            if !start_at.is_null() && avail == 0 {
                return 0;
            }
            let Ok(sp) = b.ptr_at(start) else { return 0 };
            let mut parts: Vec<&[u8]>;
            if len < 0 && n_vec > 0 {
                // As many whole chunks as there are vectors.
                let Ok(it) = b.peek_from(&sp, usize::MAX) else {
                    return -1;
                };
                parts = it.take(n_vec as usize).collect();
            } else {
                let want = if len < 0 {
                    avail
                } else {
                    (len as usize).min(avail)
                };
                parts = match b.peek_from(&sp, want) {
                    Ok(it) => it.collect(),
                    Err(_) => return -1,
                };
                // libevent counts the starting chunk even when no bytes are asked for.
                if parts.is_empty() && !start_at.is_null() {
                    parts.extend(chunk_rest(b, start, 1));
                } else if let Some(last) = parts.last_mut() {
                    // Only the last slice can be cut short: extend it to its chunk's end.
                    let at = start + want - last.len();
                    if let Some(whole) = chunk_rest(b, at, last.len()) {
                        *last = whole;
                    }
                }
            }
            for (i, s) in parts.iter().take(n_vec as usize).enumerate() {
                // SAFETY: `i < n_vec`: a writable iovec of the caller's array.
                unsafe {
                    vec_out.add(i).write(iovec {
                        iov_base: s.as_ptr().cast_mut().cast(),
                        iov_len: s.len(),
                    })
                };
            }
            parts.len() as c_int
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_peek", -1, op) }
    })
}

/// `evbuffer_reserve_space`: free space at the end, at least `size` bytes, for the caller to write
/// and `evbuffer_commit_space` to add. revent always gives one extent (so returns 1), which
/// libevent allows for any `n_vecs >= 1`; -1 for a frozen end, `size < 0` or `n_vecs < 1`.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_reserve_space(
    buf: *mut evbuffer,
    size: isize,
    vec: *mut iovec,
    n_vecs: c_int,
) -> c_int {
    guard(-1, || {
        if size < 0 || n_vecs < 1 || vec.is_null() {
            return -1;
        }
        let op = |b: &mut Evbuffer| match b.reserve_space(size as usize) {
            Ok(space) => {
                let v = iovec {
                    iov_base: space.as_mut_ptr().cast(),
                    iov_len: space.len(),
                };
                // SAFETY: `n_vecs >= 1`: the caller's first iovec is writable.
                unsafe { vec.write(v) };
                1
            }
            Err(_) => -1,
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_reserve_space", -1, op) }
    })
}

/// `evbuffer_commit_space`: adds the first `iov_len` bytes of the extent `evbuffer_reserve_space`
/// gave (shorten `iov_len` to commit less). -1 if the extent is not the buffer's free space any
/// more, is longer than it, or the end is frozen; 0 extents commit nothing.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_commit_space(
    buf: *mut evbuffer,
    vec: *mut iovec,
    n_vecs: c_int,
) -> c_int {
    guard(-1, || {
        let op = |b: &mut Evbuffer| {
            if b.is_frozen(BufferEnd::End) {
                return -1;
            }
            if n_vecs == 0 {
                return 0;
            }
            if n_vecs < 0 || vec.is_null() {
                return -1;
            }
            // SAFETY: C passes `n_vecs` readable iovecs.
            let vecs = unsafe { std::slice::from_raw_parts(vec, n_vecs as usize) };
            // Only one extent is ever handed out; more are accepted if they commit nothing.
            if vecs[1..].iter().any(|v| v.iov_len != 0) {
                return -1;
            }
            let (base, n) = (vecs[0].iov_base, vecs[0].iov_len);
            // The free space now: the same as reserved if nothing changed since.
            let ok = match b.reserve_space(0) {
                Ok(space) => space.as_mut_ptr().cast::<c_void>() == base && n <= space.len(),
                Err(_) => false,
            };
            if !ok {
                return -1;
            }
            b.commit_space(n).map_or(-1, |()| 0)
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_commit_space", -1, op) }
    })
}

// ---- file descriptors ----

/// `evbuffer_read`: reads up to `howmuch` bytes (negative: as much as the buffer chooses) from
/// `fd` into the end; returns the count, 0 at end of file, -1 with `errno` on error (EAGAIN when
/// a non-blocking fd has nothing).
#[no_mangle]
pub unsafe extern "C" fn evbuffer_read(
    buf: *mut evbuffer,
    fd: evutil_socket_t,
    howmuch: c_int,
) -> c_int {
    guard(-1, || {
        if fd < 0 {
            // SAFETY: errno is this thread's.
            unsafe { *libc::__errno_location() = libc::EBADF };
            return -1;
        }
        let max = if howmuch < 0 {
            usize::MAX
        } else {
            howmuch as usize
        };
        let op = |b: &mut Evbuffer| {
            // SAFETY: a non-negative fd the caller owns, open for the length of the call.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            match b.read(fd, max) {
                Ok(n) => n.min(c_int::MAX as usize) as c_int,
                Err(e) => {
                    set_errno(&e);
                    -1
                }
            }
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_read", -1, op) }
    })
}

/// `evbuffer_write_atmost`: writes up to `howmuch` bytes (negative: all) from the front to `fd`
/// and drains what was written; returns the count, or -1 (with `errno` on an I/O error). As in
/// libevent, an empty buffer (or `howmuch` 0) gives -1.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_write_atmost(
    buf: *mut evbuffer,
    fd: evutil_socket_t,
    howmuch: isize,
) -> c_int {
    guard(-1, || {
        let op = |b: &mut Evbuffer| {
            if b.is_frozen(BufferEnd::Start) {
                return -1;
            }
            let n = if howmuch < 0 {
                b.len()
            } else {
                (howmuch as usize).min(b.len())
            };
            if n == 0 {
                return -1;
            }
            if fd < 0 {
                // SAFETY: errno is this thread's.
                unsafe { *libc::__errno_location() = libc::EBADF };
                return -1;
            }
            // SAFETY: a non-negative fd the caller owns, open for the length of the call.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            match b.write_atmost(fd, n.min(c_int::MAX as usize)) {
                Ok(k) => k as c_int,
                Err(e) => {
                    set_errno(&e);
                    -1
                }
            }
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_write_atmost", -1, op) }
    })
}

/// `evbuffer_write`: `evbuffer_write_atmost` with no limit.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_write(buf: *mut evbuffer, fd: evutil_socket_t) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    unsafe { evbuffer_write_atmost(buf, fd, -1) }
}

// ---- change callbacks ----

/// Runs `f` with the C state of `buf` (None if it has none), holding the buffer's lock if it has
/// one: for the calls that change only the callbacks, not the bytes.
fn with_state<R>(buf: *mut evbuffer, f: impl FnOnce(Option<&CState>) -> R) -> R {
    if buf.is_null() {
        return f(None);
    }
    let _lock = lock_for(buf as usize);
    let st = state_of(buf as usize);
    f(st.as_deref())
}

/// Takes the first entry that `pred` picks out of the list; whether there was one.
fn remove_entry(st: &CState, pred: impl Fn(&Arc<evbuffer_cb_entry>) -> bool) -> bool {
    let mut list = st.entries();
    let Some(i) = list.iter().position(pred) else {
        return false;
    };
    // Copies the list if a round of callbacks is working on it: that round sees `removed`.
    let e = Arc::make_mut(&mut list).remove(i);
    e.removed.store(true, Ordering::Release);
    true
}

fn add_entry(
    b: &mut Evbuffer,
    buf: *mut evbuffer,
    kind: CbKind,
    arg: *mut c_void,
) -> *mut evbuffer_cb_entry {
    let st = state_for(b, buf as usize);
    let e = Arc::new(evbuffer_cb_entry {
        kind,
        arg: CArg(arg),
        flags: AtomicU32::new(EVBUFFER_CB_ENABLED),
        removed: AtomicBool::new(false),
    });
    let handle = Arc::as_ptr(&e).cast_mut();
    Arc::make_mut(&mut st.entries()).push(e);
    handle
}

/// `evbuffer_add_cb`: calls `cb(buf, info, cbarg)` after every change in the buffer's size. The
/// callbacks run newest first, as in libevent; a callback may read or change the buffer (changes it
/// makes are reported in a further round), add callbacks, or remove itself. The handle stays valid
/// until the callback is removed or the buffer freed. NULL for a NULL `cb`.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_add_cb(
    buf: *mut evbuffer,
    cb: evbuffer_cb_func,
    cbarg: *mut c_void,
) -> *mut evbuffer_cb_entry {
    guard(ptr::null_mut(), || {
        let Some(f) = cb else {
            log::warn!("evbuffer_add_cb: NULL callback");
            return ptr::null_mut();
        };
        let op = |b: &mut Evbuffer| add_entry(b, buf, CbKind::Info(f), cbarg);
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_add_cb", ptr::null_mut(), op) }
    })
}

/// `evbuffer_remove_cb_entry`: removes the callback `ent` (from `evbuffer_add_cb` on this buffer);
/// -1 if it is not one of the buffer's.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_remove_cb_entry(
    buf: *mut evbuffer,
    ent: *mut evbuffer_cb_entry,
) -> c_int {
    guard(-1, || {
        with_state(buf, |st| {
            // Compared by address only: `ent` is never read unless it is one of the buffer's.
            let found = st.is_some_and(|st| remove_entry(st, |e| ptr::eq(Arc::as_ptr(e), ent)));
            if found {
                0
            } else {
                -1
            }
        })
    })
}

/// `evbuffer_remove_cb`: removes the first callback added with this function and argument; -1 if
/// there is none.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_remove_cb(
    buf: *mut evbuffer,
    cb: evbuffer_cb_func,
    cbarg: *mut c_void,
) -> c_int {
    guard(-1, || {
        let f = cb.map_or(0, |f| f as usize);
        with_state(buf, |st| {
            let found = st
                .is_some_and(|st| remove_entry(st, |e| e.kind.addr() == f && e.arg.get() == cbarg));
            if found {
                0
            } else {
                -1
            }
        })
    })
}

/// Applies `change` to the flags of `ent` if it is one of the buffer's callbacks.
fn change_flags(
    buf: *mut evbuffer,
    ent: *mut evbuffer_cb_entry,
    change: impl Fn(&AtomicU32),
) -> c_int {
    with_state(buf, |st| {
        let list = st.map(CState::snapshot);
        match list
            .as_ref()
            .and_then(|l| l.iter().find(|e| ptr::eq(Arc::as_ptr(e), ent)))
        {
            Some(e) => {
                change(&e.flags);
                0
            }
            None => -1,
        }
    })
}

/// `evbuffer_cb_set_flags`: sets flags of a callback (`EVBUFFER_CB_ENABLED` re-enables it);
/// libevent's internal bits are left alone. -1 if `ent` is not one of the buffer's callbacks.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_cb_set_flags(
    buf: *mut evbuffer,
    ent: *mut evbuffer_cb_entry,
    flags: u32,
) -> c_int {
    guard(-1, || {
        let flags = flags & !CB_INTERNAL_FLAGS;
        change_flags(buf, ent, |f| {
            f.fetch_or(flags, Ordering::AcqRel);
        })
    })
}

/// `evbuffer_cb_clear_flags`: clears flags of a callback (`EVBUFFER_CB_ENABLED` disables it).
#[no_mangle]
pub unsafe extern "C" fn evbuffer_cb_clear_flags(
    buf: *mut evbuffer,
    ent: *mut evbuffer_cb_entry,
    flags: u32,
) -> c_int {
    guard(-1, || {
        let flags = flags & !CB_INTERNAL_FLAGS;
        change_flags(buf, ent, |f| {
            f.fetch_and(!flags, Ordering::AcqRel);
        })
    })
}

/// `evbuffer_setcb` (buffer_compat.h): replaces every C callback of the buffer with the old-style
/// `cb(buf, old_len, new_len, cbarg)`, or removes them all for a NULL `cb`. Returns 0.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_setcb(
    buf: *mut evbuffer,
    cb: evbuffer_cb,
    cbarg: *mut c_void,
) -> c_int {
    guard(-1, || {
        let op = |b: &mut Evbuffer| {
            let st = match (cb, state_of(buf as usize)) {
                (None, None) => return 0,
                (_, Some(st)) => st,
                (Some(_), None) => state_for(b, buf as usize),
            };
            {
                let mut list = st.entries();
                for e in list.iter() {
                    e.removed.store(true, Ordering::Release);
                }
                *list = Arc::new(Vec::new());
            }
            if let Some(f) = cb {
                add_entry(b, buf, CbKind::Sizes(f), cbarg);
            }
            0
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_setcb", -1, op) }
    })
}

/// `evbuffer_defer_callbacks`: from now on the buffer's C callbacks run from `base`'s loop (an
/// internal event at the middle priority, as in libevent) with the changes since the last run
/// summed, instead of right after each change; callbacks with `EVBUFFER_CB_NODEFER` still run at
/// once. A NULL base means the current one (`event_init`'s).
#[no_mangle]
pub unsafe extern "C" fn evbuffer_defer_callbacks(buf: *mut evbuffer, base: *mut CBase) -> c_int {
    guard(-1, || {
        let cbase = if base.is_null() {
            base::current()
        } else {
            base
        };
        if cbase.is_null() {
            log::warn!("evbuffer_defer_callbacks: no base");
            return -1;
        }
        let op = |b: &mut Evbuffer| {
            let st = state_for(b, buf as usize);
            let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
            let run = DeferredRun {
                st: Arc::downgrade(&st),
                buf,
                token,
            };
            let make = |eb: &mut EventBase| -> revent::Result<(EventId, Remote)> {
                let remote = eb.remote()?;
                let ev = eb.new_event(-1, What::NONE, move |eb: &mut EventBase, _| {
                    if let Some(st) = run.st.upgrade() {
                        // SAFETY: `cbase` is the base running this event's callback, on its
                        // Rust base `eb`.
                        unsafe { call_out(cbase, eb, || run_deferred(&st, run.buf)) };
                    }
                })?;
                let mid = eb.priorities() / 2;
                let _ = eb.set_priority(ev, mid);
                Ok((ev, remote))
            };
            // SAFETY: `cbase` is a live base (the caller's contract, or the current one).
            match unsafe { with_base(cbase, make) } {
                Some(Ok((ev, remote))) => {
                    let d = Deferred {
                        remote,
                        ev,
                        scheduled: AtomicBool::new(false),
                        token,
                    };
                    // The old deferral (if any) frees its event when dropped, outside the lock.
                    let old = st.deferred().replace(d);
                    drop(old);
                    if st.pending().is_some() {
                        st.schedule();
                    }
                    0
                }
                Some(Err(e)) => {
                    log::warn!("evbuffer_defer_callbacks: {e}");
                    -1
                }
                None => -1,
            }
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_defer_callbacks", -1, op) }
    })
}

// ---- files ----

/// The size of the regular file `fd`; None for anything else (or a bad fd).
fn regular_file_size(fd: c_int) -> Option<u64> {
    // SAFETY: a zeroed stat is a valid value for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into the live local; a bad fd gives -1.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    (st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(st.st_size as u64)
}

/// `evbuffer_add_file`: appends `length` bytes (-1: to the end) of the regular file `fd` from
/// `offset`, without reading them now: writing the buffer to a socket sends them with `sendfile`,
/// and looking at them reads them. The buffer owns `fd` on success and closes it when done; on
/// failure (a frozen end, not a regular file, a range past the end of the file) `fd` stays the
/// caller's, as with libevent 2.1.12.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_add_file(
    buf: *mut evbuffer,
    fd: c_int,
    offset: i64,
    length: i64,
) -> c_int {
    guard(-1, || {
        if fd < 0 || offset < 0 || length < -1 {
            return -1;
        }
        let op = |b: &mut Evbuffer| {
            if b.is_frozen(BufferEnd::End) {
                return -1;
            }
            // Check all that revent's add_file checks first, so it cannot fail and close the fd.
            let Some(size) = regular_file_size(fd) else {
                log::warn!("evbuffer_add_file: not a regular file");
                return -1;
            };
            let off = offset as u64;
            let len = if length == -1 {
                None
            } else {
                Some(length as u64)
            };
            let end = off.checked_add(len.unwrap_or(0));
            if off > size || !matches!(end, Some(e) if e <= size) {
                log::warn!("evbuffer_add_file: range past the end of the file");
                return -1;
            }
            // SAFETY: the caller hands `fd` over (libevent's contract); from here the buffer owns
            // and closes it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            b.add_file(owned, off, len).map_or(-1, |()| 0)
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_add_file", -1, op) }
    })
}

/// A file segment's bytes in memory: mapped, or read.
enum SegBytes {
    Map {
        base: usize,
        map_len: usize,
        lead: usize,
    },
    Heap(Box<[u8]>),
}

impl Drop for SegBytes {
    fn drop(&mut self) {
        if let SegBytes::Map { base, map_len, .. } = *self {
            // SAFETY: a mapping this value made and owns; nothing refers to it any more (the
            // segment, and so every chunk reading it, is gone).
            unsafe { libc::munmap(base as *mut c_void, map_len) };
        }
    }
}

/// `struct evbuffer_file_segment`: a range of a file, shared by the buffers it is added to. A
/// `struct evbuffer_file_segment *` is an `Arc` of one (`Arc::into_raw`): the program's handle is
/// one reference, every chunk added from it another; the last one gone closes the fd (with
/// `EVBUF_FS_CLOSE_ON_FREE`) and calls the cleanup callback.
pub struct evbuffer_file_segment {
    fd: c_int,
    offset: u64,
    length: usize,
    flags: c_uint,
    contents: OnceLock<SegBytes>,
    cleanup: Mutex<(evbuffer_file_segment_cleanup_cb, CArg)>,
}

impl evbuffer_file_segment {
    fn bytes(&self) -> &[u8] {
        match self.contents.get() {
            Some(SegBytes::Map { base, lead, .. }) => {
                // SAFETY: the mapping covers `lead + length` readable bytes and lives as long as
                // `self`.
                unsafe { std::slice::from_raw_parts((base + lead) as *const u8, self.length) }
            }
            Some(SegBytes::Heap(b)) => b,
            None => &[],
        }
    }

    /// Brings the segment into memory (once): mapped unless `EVBUF_FS_DISABLE_MMAP` or mapping
    /// fails, else read with `pread`.
    fn materialize(&self) -> bool {
        if self.contents.get().is_some() {
            return true;
        }
        let bytes = if self.length == 0 {
            Some(SegBytes::Heap(Box::default()))
        } else if self.flags & EVBUF_FS_DISABLE_MMAP == 0 {
            self.map().or_else(|| self.read())
        } else {
            self.read()
        };
        match bytes {
            Some(b) => {
                // Another thread may have won the race: its value stays, ours is dropped.
                let _ = self.contents.set(b);
                true
            }
            None => false,
        }
    }

    fn map(&self) -> Option<SegBytes> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let lead = (self.offset % page) as usize;
        let map_len = self.length.checked_add(lead)?;
        // SAFETY: a fresh read-only private mapping of the file; the kernel checks the fd and range.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                self.fd,
                (self.offset - lead as u64) as libc::off_t,
            )
        };
        (p != libc::MAP_FAILED).then_some(SegBytes::Map {
            base: p as usize,
            map_len,
            lead,
        })
    }

    fn read(&self) -> Option<SegBytes> {
        let mut v = vec![0u8; self.length];
        let mut done = 0;
        while done < v.len() {
            // SAFETY: the rest of `v` is writable; pread checks the fd.
            let n = unsafe {
                libc::pread(
                    self.fd,
                    v[done..].as_mut_ptr().cast(),
                    v.len() - done,
                    (self.offset + done as u64) as libc::off_t,
                )
            };
            match n {
                n if n > 0 => done += n as usize,
                -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
                }
                _ => {
                    log::warn!("evbuffer_file_segment: cannot read the file");
                    return None;
                }
            }
        }
        Some(SegBytes::Heap(v.into_boxed_slice()))
    }
}

impl Drop for evbuffer_file_segment {
    fn drop(&mut self) {
        // The bytes go first, then the fd, then the program hears of it (libevent's order).
        drop(self.contents.take());
        if self.flags & EVBUF_FS_CLOSE_ON_FREE != 0 {
            // SAFETY: the segment owns the fd with this flag, and closes it once.
            unsafe { libc::close(self.fd) };
        }
        let (cb, arg) = *self.cleanup.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(cb) = cb {
            // SAFETY: the program's cleanup with the arguments it registered; the segment's memory
            // is still valid during drop.
            unsafe { cb(self, self.flags as c_int, arg.get()) };
        }
    }
}

// SAFETY: the fields are plain values, a OnceLock of owned bytes (read-only once set)
// and a Mutex; the mapping's address is only read.
unsafe impl Send for evbuffer_file_segment {}
// SAFETY: as above: shared access only reads, or goes through the OnceLock and the Mutex.
unsafe impl Sync for evbuffer_file_segment {}

/// `evbuffer_file_segment_new`: a segment of `length` bytes (-1: to the end of the file) of `fd`
/// from `offset`. The file is mapped (or read) when the segment is first added to a buffer. With
/// `-1`, the length is the file's size minus `offset` (libevent 2.1 takes the whole size).
/// `EVBUF_FS_DISABLE_SENDFILE` and `EVBUF_FS_DISABLE_LOCKING` change nothing here.
#[no_mangle]
pub extern "C" fn evbuffer_file_segment_new(
    fd: c_int,
    offset: i64,
    length: i64,
    flags: c_uint,
) -> *mut evbuffer_file_segment {
    guard(ptr::null_mut(), || {
        if fd < 0 || offset < 0 || length < -1 {
            return ptr::null_mut();
        }
        let length = if length == -1 {
            let mut st: libc::stat =
                // SAFETY: a zeroed stat is a valid value for fstat to fill.
                unsafe { std::mem::zeroed() };
            // SAFETY: fstat writes into the live local.
            if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_size < offset {
                return ptr::null_mut();
            }
            st.st_size - offset
        } else {
            length
        };
        let (Ok(len), Some(_)) = (usize::try_from(length), offset.checked_add(length)) else {
            return ptr::null_mut();
        };
        let seg = evbuffer_file_segment {
            fd,
            offset: offset as u64,
            length: len,
            flags,
            contents: OnceLock::new(),
            cleanup: Mutex::new((None, CArg(ptr::null_mut()))),
        };
        Arc::into_raw(Arc::new(seg)).cast_mut()
    })
}

/// `evbuffer_file_segment_free`: drops the program's reference; the segment goes when no buffer
/// refers to it either.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_file_segment_free(seg: *mut evbuffer_file_segment) {
    guard((), || {
        if !seg.is_null() {
            // SAFETY: a segment from evbuffer_file_segment_new whose handle is given back once.
            drop(unsafe { Arc::from_raw(seg.cast_const()) });
        }
    })
}

/// `evbuffer_file_segment_add_cleanup_cb`: `cb(seg, flags, arg)` runs when the segment goes.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_file_segment_add_cleanup_cb(
    seg: *mut evbuffer_file_segment,
    cb: evbuffer_file_segment_cleanup_cb,
    arg: *mut c_void,
) {
    guard((), || {
        // SAFETY: null or a live segment (the caller's handle).
        if let Some(s) = unsafe { seg.as_ref() } {
            *s.cleanup.lock().unwrap_or_else(|e| e.into_inner()) = (cb, CArg(arg));
        }
    })
}

/// A range of a segment, held by a buffer chunk (with one reference to the segment).
struct SegRef {
    seg: Arc<evbuffer_file_segment>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for SegRef {
    fn as_ref(&self) -> &[u8] {
        self.seg
            .bytes()
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

/// `evbuffer_add_file_segment`: appends `length` bytes (-1: the rest) of `seg` from `offset`
/// within it. The segment is brought into memory (mapped or read) the first time.
#[no_mangle]
pub unsafe extern "C" fn evbuffer_add_file_segment(
    buf: *mut evbuffer,
    seg: *mut evbuffer_file_segment,
    offset: i64,
    length: i64,
) -> c_int {
    guard(-1, || {
        if seg.is_null() || offset < 0 {
            return -1;
        }
        // SAFETY: a live segment (the caller holds its handle across the call).
        let s = unsafe { &*seg };
        let off = offset as usize;
        let len = if length < 0 {
            match s.length.checked_sub(off) {
                Some(l) => l,
                None => return -1,
            }
        } else {
            length as usize
        };
        if !matches!(off.checked_add(len), Some(e) if e <= s.length) {
            return -1;
        }
        let op = |b: &mut Evbuffer| {
            if b.is_frozen(BufferEnd::End) || !s.materialize() {
                return -1;
            }
            // SAFETY: `seg` came from Arc::into_raw and is live: this makes the chunk's own
            // reference.
            let shared = unsafe {
                Arc::increment_strong_count(seg.cast_const());
                Arc::from_raw(seg.cast_const())
            };
            let r = SegRef {
                seg: shared,
                start: off,
                len,
            };
            // The segment's cleanup callback runs when its last reference drops.
            note_c_reachable();
            b.add_reference(r, drop).map_or(-1, |()| 0)
        };
        // SAFETY: C passes null or a live buffer.
        unsafe { with_buf(buf, "evbuffer_add_file_segment", -1, op) }
    })
}
