//! libevent 2.1's C ABI over revent: the functions of `event2/*.h` with libevent's names, types and
//! behaviour, built into `libevent-2.1.so.7` and its siblings by `build-libs.sh`.
//!
//! # Conventions every module follows
//! - **No unwinding into C.** Every exported function runs its body through [`guard`]: a Rust panic is
//!   caught, reported at error severity through the log callback, and the function returns the error
//!   value it documents (-1, NULL, 0).
//! - **The base and the aliasing model.** A `struct event_base *` is a [`base::CBase`] from
//!   `Box::into_raw`. The Rust base is reached only through [`base::with_base`]: inside a callback it uses
//!   the pointer derived from the dispatcher's own `&mut EventBase` (see revent's `base` module docs),
//!   outside one a short-lived `&mut` from the raw pointer. Calls out to C go through
//!   `base::call_out`, which publishes that derived pointer while the C code runs.
//! - **Threads** ([`thread`]): with `evthread_use_pthreads`, a call from another thread than the one
//!   running a base's loop never touches the Rust base: `thread::reach` routes it, and it is posted
//!   to the loop (waiting when libevent's semantics need it). So `with_base`'s closure may run on the
//!   loop's thread.
//! - **C-visible structs** (`struct event`, `struct bufferevent`) are read and written field by field
//!   through raw pointers (`ptr::read`/`write` of `addr_of!` places), never held as `&mut`: C holds
//!   pointers to them too.
//! - **Memory that C frees** (with `event_free`, `free`) comes from [`mem::malloc`], which honours
//!   `event_set_mem_functions`.
//! - **Errors**: bad arguments return -1 or NULL with a message through the log callback (`log::warn!`
//!   is routed there, see [`logging`]); misuse libevent treats as fatal (in debug mode) goes through
//!   [`logging::fatal_msg`].
//!
//! # Safety
//! One contract covers every exported `unsafe extern "C" fn` (so they carry no `# Safety` section of
//! their own): it is the C caller's contract as libevent 2.1's headers state it. Each pointer
//! argument is NULL (where the function accepts NULL, which it then reports) or points to a live
//! object of the kind the header names, made by this library (or, for caller-owned memory such as
//! `event_assign`'s `struct event`, memory of the header's size that stays put while the library
//! uses it); buffers come with their true lengths; C strings are NUL-terminated; callbacks are
//! callable with the arguments the header lists; an object is freed once and not used afterwards;
//! and calls from several threads follow libevent's threading rules (`evthread_use_pthreads` first
//! for any cross-thread call). Internal `unsafe fn`s state their own contracts.
#![allow(non_camel_case_types)]
// The crate-level `# Safety` section above is the contract of every exported function.
#![allow(clippy::missing_safety_doc)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod base;
pub mod buffer;
pub mod bufferevent;
pub mod dns;
pub mod dns_server;
pub mod event;
pub mod http;
pub mod http_client;
pub mod http_util;
pub mod listener;
pub mod logging;
pub mod mem;
pub mod openssl;
pub mod rpc;
pub mod tag;
pub mod thread;
pub mod util;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// A C object's address carried across to the loop's thread (in a posted call) or kept as a map
/// key: a pointer, not an integer, so that its provenance survives the trip and Miri's Tree
/// Borrows can follow what is done with it. Compared and hashed by address.
pub(crate) struct SendPtr<T>(*mut T);

impl<T> SendPtr<T> {
    pub(crate) fn new(p: *mut T) -> SendPtr<T> {
        SendPtr(p)
    }

    /// The pointer. A method rather than the field, so that a closure captures the whole wrapper
    /// (which is `Send`), not the bare pointer.
    #[inline]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SendPtr<T> {}

impl<T> PartialEq for SendPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl<T> Eq for SendPtr<T> {}

impl<T> std::hash::Hash for SendPtr<T> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h);
    }
}

// SAFETY: the wrapper only carries the address; code dereferences it on the thread where the
// object may be used (posted calls run on the loop's thread, see `thread.rs`), under C's contract
// that the object is live.
unsafe impl<T> Send for SendPtr<T> {}

/// `evutil_socket_t` on Unix.
pub type evutil_socket_t = libc::c_int;

/// Runs `f`, turning a panic into an error report (through the log callback) and `default`, the
/// function's documented error value.
#[inline]
pub fn guard<R>(default: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or(payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("panic");
            logging::emit(
                logging::EVENT_LOG_ERR,
                &format!("revent: internal error: {msg}"),
            );
            default
        }
    }
}
