//! `event_set_mem_functions`: the allocator for memory that crosses to C (`event_new`,
//! `evbuffer_readln`'s lines, ...), so that what C frees with the matching `free` came from it.

use libc::{c_void, size_t};
use std::sync::atomic::{AtomicUsize, Ordering};

type MallocFn = unsafe extern "C" fn(size_t) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);

static MALLOC: AtomicUsize = AtomicUsize::new(0);
static REALLOC: AtomicUsize = AtomicUsize::new(0);
static FREE: AtomicUsize = AtomicUsize::new(0);

/// `event_set_mem_functions`: replaces malloc, realloc and free (all three, or NULLs for libc's).
#[no_mangle]
pub extern "C" fn event_set_mem_functions(
    malloc_fn: Option<MallocFn>,
    realloc_fn: Option<ReallocFn>,
    free_fn: Option<FreeFn>,
) {
    MALLOC.store(malloc_fn.map_or(0, |f| f as usize), Ordering::Release);
    REALLOC.store(realloc_fn.map_or(0, |f| f as usize), Ordering::Release);
    FREE.store(free_fn.map_or(0, |f| f as usize), Ordering::Release);
}

/// `n` bytes from the program's allocator (libc's unless replaced); null when it fails.
pub fn malloc(n: usize) -> *mut c_void {
    match MALLOC.load(Ordering::Acquire) {
        // SAFETY: libc's malloc takes any size.
        0 => unsafe { libc::malloc(n) },
        // SAFETY: MALLOC holds a function of this type, stored by event_set_mem_functions.
        f => unsafe { std::mem::transmute::<usize, MallocFn>(f)(n) },
    }
}

/// Grows or shrinks `p` (from [`malloc`]) to `n` bytes.
///
/// # Safety
/// `p` is null or came from [`malloc`]/[`realloc`] and was not freed.
pub unsafe fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    match REALLOC.load(Ordering::Acquire) {
        // SAFETY: the caller's contract.
        0 => unsafe { libc::realloc(p, n) },
        // SAFETY: REALLOC holds a function of this type; the caller's contract for `p`.
        f => unsafe { std::mem::transmute::<usize, ReallocFn>(f)(p, n) },
    }
}

/// Frees what [`malloc`] gave.
///
/// # Safety
/// `p` is null or came from [`malloc`]/[`realloc`] and was not freed.
pub unsafe fn free(p: *mut c_void) {
    match FREE.load(Ordering::Acquire) {
        // SAFETY: the caller's contract.
        0 => unsafe { libc::free(p) },
        // SAFETY: FREE holds a function of this type; the caller's contract for `p`.
        f => unsafe { std::mem::transmute::<usize, FreeFn>(f)(p) },
    }
}

/// A copy of `bytes` plus a terminating NUL, from [`malloc`] (C frees it); null when out of memory.
pub fn c_string(bytes: &[u8]) -> *mut libc::c_char {
    let p = malloc(bytes.len() + 1).cast::<u8>();
    if !p.is_null() {
        // SAFETY: `p` has room for len + 1 bytes; the source is a live slice of len bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            *p.add(bytes.len()) = 0;
        }
    }
    p.cast()
}
