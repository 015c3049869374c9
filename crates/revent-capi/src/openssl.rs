//! `event2/bufferevent_ssl.h` (libevent_openssl): TLS bufferevents over the program's own OpenSSL
//! `SSL *`, on a socket or over another bufferevent, as revent TLS bufferevents driving an
//! [`OpensslSession`].
//!
//! # OpenSSL without linking it
//! The workspace builds with nothing but the Rust toolchain, so this crate neither links libssl
//! nor needs its headers: the few OpenSSL 3 functions used are declared here and looked up at run
//! time, on first use, with `dlsym(RTLD_DEFAULT, ...)` (or in an already loaded `libssl.so.3`).
//! A program that calls these functions made its `SSL *` with libssl, so libssl is loaded, and
//! `libevent_openssl-2.1.so.7` (laid out by `build-libs.sh`) lists `libssl.so.3` and
//! `libcrypto.so.3` as needed libraries, as libevent's does. Without OpenSSL in the process the
//! constructors return NULL with a warning.
//!
//! # How the SSL is driven
//! The `SSL` gets two memory BIOs (`SSL_set_bio`): revent's TLS bufferevent feeds the peer's
//! ciphertext into the read BIO and takes what OpenSSL writes from the write BIO, and does the
//! socket (or underlying bufferevent) I/O itself, on epoll or io_uring like any bufferevent. So a
//! socket BIO the program set (`SSL_set_fd`) is replaced; for `bufferevent_openssl_socket_new`
//! with fd -1 its fd is taken over first, as libevent does.
//!
//! # libevent's rules kept
//! - States: CONNECTING and ACCEPTING run the handshake (`SSL_set_connect_state` /
//!   `SSL_set_accept_state`) and report BEV_EVENT_CONNECTED when it is done; OPEN reports nothing.
//! - BEV_OPT_CLOSE_ON_FREE: `bufferevent_free` frees the `SSL` (`SSL_free`) and closes the socket
//!   or frees the underlying bufferevent.
//! - Dirty shutdowns: the peer's EOF without a close_notify is BEV_EVENT_ERROR, or BEV_EVENT_EOF
//!   with `bufferevent_openssl_set_allow_dirty_shutdown(bev, 1)`; a close_notify is EOF.
//! - `bufferevent_get_openssl_error`: the OpenSSL error codes (`ERR_get_error`) of the failure
//!   reported, up to three, the latest first, each once; 0 when none is left.
//!
//! # Where this differs from libevent 2.1.12
//! - On OpenSSL 3 libevent's socket form reports a dirty shutdown as BEV_EVENT_ERROR even when
//!   allowed (OpenSSL 3 reports the missing close_notify as an SSL error, where libevent looks for a
//!   syscall error); here both forms follow the rule above.
//! - `bufferevent_ssl_renegotiate` returns -1 when `SSL_renegotiate` refuses (TLS 1.3 has no
//!   renegotiation), with OpenSSL's reason queued; libevent takes that refusal for success and on
//!   its filter form leaves the connection waiting for a handshake that never comes. A TLS 1.2
//!   renegotiation runs on both forms (libevent's filter form never finishes it), but its end is
//!   not reported: libevent's socket form reports BEV_EVENT_CONNECTED a second time.
//! - With BEV_OPT_CLOSE_ON_FREE, `bufferevent_free` sends a close_notify after the last output
//!   (libevent sends none: its programs call `SSL_shutdown` themselves, which works here too).
//!   Without it the SSL stays the program's and nothing is sent on its behalf, as in libevent.
//! - A failed handshake is reported once (libevent's filter form reports it twice).

use crate::bufferevent::{self as cbev, bufferevent};
use crate::{evutil_socket_t, guard};
use libc::{c_char, c_int, c_long, c_ulong, c_void, size_t};
use revent::{BufferEvent, EventBase, FlushMode, TlsError, TlsSession, TlsState, What};
use std::any::Any;
use std::ffi::CStr;
use std::ptr;
use std::sync::OnceLock;

// ---- OpenSSL 3, looked up at run time ----

/// OpenSSL's `SSL` (`struct ssl_st`, opaque).
pub type ssl_st = c_void;
/// OpenSSL's `BIO` (`struct bio_st`, opaque).
type bio_st = c_void;

// OpenSSL's constants (openssl/ssl.h, openssl/bio.h), stable across 3.x.
const SSL_ERROR_WANT_READ: c_int = 2;
const SSL_ERROR_WANT_WRITE: c_int = 3;
const SSL_ERROR_SYSCALL: c_int = 5;
const SSL_ERROR_ZERO_RETURN: c_int = 6;
const SSL_SENT_SHUTDOWN: c_int = 1;
const SSL_RECEIVED_SHUTDOWN: c_int = 2;
const SSL_CTRL_MODE: c_int = 33;
const SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: c_long = 2;
const BIO_CTRL_SET_CLOSE: c_int = 9;
const BIO_C_GET_FD: c_int = 105;
const BIO_TYPE_DESCRIPTOR: c_int = 0x0100;

/// The OpenSSL functions used, resolved once.
struct Api {
    ssl_set_bio: unsafe extern "C" fn(*mut ssl_st, *mut bio_st, *mut bio_st),
    ssl_get_rbio: unsafe extern "C" fn(*const ssl_st) -> *mut bio_st,
    ssl_get_wbio: unsafe extern "C" fn(*const ssl_st) -> *mut bio_st,
    ssl_set_connect_state: unsafe extern "C" fn(*mut ssl_st),
    ssl_set_accept_state: unsafe extern "C" fn(*mut ssl_st),
    ssl_do_handshake: unsafe extern "C" fn(*mut ssl_st) -> c_int,
    ssl_read: unsafe extern "C" fn(*mut ssl_st, *mut c_void, c_int) -> c_int,
    ssl_write: unsafe extern "C" fn(*mut ssl_st, *const c_void, c_int) -> c_int,
    ssl_get_error: unsafe extern "C" fn(*const ssl_st, c_int) -> c_int,
    ssl_shutdown: unsafe extern "C" fn(*mut ssl_st) -> c_int,
    ssl_get_shutdown: unsafe extern "C" fn(*const ssl_st) -> c_int,
    ssl_is_init_finished: unsafe extern "C" fn(*const ssl_st) -> c_int,
    ssl_renegotiate: unsafe extern "C" fn(*mut ssl_st) -> c_int,
    ssl_ctrl: unsafe extern "C" fn(*mut ssl_st, c_int, c_long, *mut c_void) -> c_long,
    ssl_free: unsafe extern "C" fn(*mut ssl_st),
    bio_s_mem: unsafe extern "C" fn() -> *const c_void,
    bio_new: unsafe extern "C" fn(*const c_void) -> *mut bio_st,
    bio_free: unsafe extern "C" fn(*mut bio_st) -> c_int,
    bio_read: unsafe extern "C" fn(*mut bio_st, *mut c_void, c_int) -> c_int,
    bio_write: unsafe extern "C" fn(*mut bio_st, *const c_void, c_int) -> c_int,
    bio_ctrl: unsafe extern "C" fn(*mut bio_st, c_int, c_long, *mut c_void) -> c_long,
    bio_ctrl_pending: unsafe extern "C" fn(*mut bio_st) -> size_t,
    bio_method_type: unsafe extern "C" fn(*const bio_st) -> c_int,
    err_get_error: unsafe extern "C" fn() -> c_ulong,
    err_clear_error: unsafe extern "C" fn(),
    err_error_string_n: unsafe extern "C" fn(c_ulong, *mut c_char, size_t),
}

static API: OnceLock<Api> = OnceLock::new();

/// The address of OpenSSL function `name`: in the process's global scope (where the program's
/// libssl is), else in a `libssl.so.3` loaded some other way (a library opened RTLD_LOCAL).
fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT is a valid pseudo-handle.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if !p.is_null() {
        return Some(p);
    }
    // RTLD_NOLOAD: only a libssl that is already loaded, never a second one.
    // SAFETY: dlopen with a constant name; the handle is used for dlsym and then released
    // (the library stays loaded: it was before).
    unsafe {
        let h = libc::dlopen(c"libssl.so.3".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if h.is_null() {
            return None;
        }
        let p = libc::dlsym(h, name.as_ptr());
        libc::dlclose(h);
        (!p.is_null()).then_some(p)
    }
}

/// A function pointer of type `F` from its address.
///
/// # Safety
/// `p` is the address of a function whose C signature is `F`.
unsafe fn fn_from<F: Copy>(p: *mut c_void) -> F {
    // A function pointer and a data pointer have the same size on the platforms revent supports.
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: same size (checked); the caller's contract makes the bits a valid `F`.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}

/// The OpenSSL functions, looked up on first use (again later if OpenSSL was not loaded then).
fn api() -> Option<&'static Api> {
    if let Some(a) = API.get() {
        return Some(a);
    }
    macro_rules! load {
        ($name:literal) => {{
            let p = symbol($name)?;
            // SAFETY: `p` is the address of the OpenSSL 3 function of this name, whose C
            // signature is the field's type (openssl/ssl.h, bio.h, err.h).
            unsafe { fn_from(p) }
        }};
    }
    let api = Api {
        ssl_set_bio: load!(c"SSL_set_bio"),
        ssl_get_rbio: load!(c"SSL_get_rbio"),
        ssl_get_wbio: load!(c"SSL_get_wbio"),
        ssl_set_connect_state: load!(c"SSL_set_connect_state"),
        ssl_set_accept_state: load!(c"SSL_set_accept_state"),
        ssl_do_handshake: load!(c"SSL_do_handshake"),
        ssl_read: load!(c"SSL_read"),
        ssl_write: load!(c"SSL_write"),
        ssl_get_error: load!(c"SSL_get_error"),
        ssl_shutdown: load!(c"SSL_shutdown"),
        ssl_get_shutdown: load!(c"SSL_get_shutdown"),
        ssl_is_init_finished: load!(c"SSL_is_init_finished"),
        ssl_renegotiate: load!(c"SSL_renegotiate"),
        ssl_ctrl: load!(c"SSL_ctrl"),
        ssl_free: load!(c"SSL_free"),
        bio_s_mem: load!(c"BIO_s_mem"),
        bio_new: load!(c"BIO_new"),
        bio_free: load!(c"BIO_free"),
        bio_read: load!(c"BIO_read"),
        bio_write: load!(c"BIO_write"),
        bio_ctrl: load!(c"BIO_ctrl"),
        bio_ctrl_pending: load!(c"BIO_ctrl_pending"),
        bio_method_type: load!(c"BIO_method_type"),
        err_get_error: load!(c"ERR_get_error"),
        err_clear_error: load!(c"ERR_clear_error"),
        err_error_string_n: load!(c"ERR_error_string_n"),
    };
    Some(API.get_or_init(|| api))
}

/// OpenSSL's text for error `code` (`ERR_error_string_n`).
fn error_text(a: &Api, code: c_ulong) -> String {
    let mut buf = [0 as c_char; 256];
    // SAFETY: the buffer and its true length; OpenSSL NUL-terminates within it.
    unsafe { (a.err_error_string_n)(code, buf.as_mut_ptr(), buf.len()) };
    // SAFETY: NUL-terminated just above (the buffer was zeroed too).
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

// ---- the session ----

/// How many OpenSSL error codes a bufferevent keeps for `bufferevent_get_openssl_error` (libevent's
/// number; later ones are dropped while it is full).
const KEPT_ERRORS: usize = 3;
/// Ciphertext the read BIO holds before `read_tls` takes no more (the rest waits in the
/// underlying input until OpenSSL consumed this).
const READ_BIO_MAX: usize = 256 * 1024;
/// Ciphertext the write BIO holds before `write_plaintext` takes no more (drained after each call).
const WRITE_BIO_MAX: usize = 1024 * 1024;
/// The most plaintext one `SSL_write` gets.
const WRITE_MAX: usize = 256 * 1024;

/// A [`TlsSession`] on an OpenSSL `SSL *` over two memory BIOs (see the module docs).
///
/// Owns the `SSL` (frees it when dropped) when the bufferevent was made with
/// BEV_OPT_CLOSE_ON_FREE; otherwise the program keeps it, with the memory BIOs attached.
///
/// The C functions find it behind a TLS bufferevent by downcasting; it is made only from an
/// `SSL *`, so without OpenSSL in the process (as in this example) there is none:
///
/// ```
/// use revent::TlsSession;
/// use revent_capi::openssl::{bufferevent_openssl_socket_new, OpensslSession};
///
/// fn is_openssl(s: &mut dyn TlsSession) -> bool {
///     s.as_any_mut().downcast_mut::<OpensslSession>().is_some()
/// }
/// let base = unsafe { revent_capi::base::event_base_new() };
/// let mut not_an_ssl = [0u64; 4];
/// // BUFFEREVENT_SSL_CONNECTING, no options: refused, OpenSSL is not loaded.
/// let bev = unsafe {
///     bufferevent_openssl_socket_new(base, -1, not_an_ssl.as_mut_ptr().cast(), 1, 0)
/// };
/// assert!(bev.is_null());
/// # let _ = is_openssl;
/// unsafe { revent_capi::base::event_base_free(base) };
/// ```
pub struct OpensslSession {
    api: &'static Api,
    ssl: *mut ssl_st,
    rbio: *mut bio_st,
    wbio: *mut bio_st,
    owns_ssl: bool,
    /// The bufferevent is being freed without CLOSE_ON_FREE: the SSL goes back to the program
    /// as it is, no close_notify is sent for it.
    keep_open: bool,
    /// `bufferevent_get_openssl_error`'s codes, oldest first.
    errors: Vec<c_ulong>,
}

impl OpensslSession {
    /// Puts memory BIOs on `ssl` and sets it connecting, accepting or (OPEN) leaves it as it is. A
    /// client's first flight is made at once (the hello waits in the write BIO for the socket).
    ///
    /// # Safety
    /// `ssl` is a live `SSL *` of the process's OpenSSL 3 that nothing else drives while the
    /// session lives; with `owns_ssl` the session frees it.
    unsafe fn new(
        a: &'static Api,
        ssl: *mut ssl_st,
        state: TlsState,
        owns_ssl: bool,
    ) -> Option<OpensslSession> {
        // SAFETY: `ssl` is live (the contract); the BIOs are fresh ones of ours, null-checked.
        unsafe {
            let method = (a.bio_s_mem)();
            let rbio = (a.bio_new)(method);
            let wbio = (a.bio_new)(method);
            if rbio.is_null() || wbio.is_null() {
                for b in [rbio, wbio] {
                    if !b.is_null() {
                        (a.bio_free)(b);
                    }
                }
                return None;
            }
            // The SSL takes the BIOs (and frees any it had: socket BIOs were told not to close).
            (a.ssl_set_bio)(ssl, rbio, wbio);
            // libevent's mode: the output buffer may move between a refused SSL_write and its retry.
            (a.ssl_ctrl)(
                ssl,
                SSL_CTRL_MODE,
                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER,
                ptr::null_mut(),
            );
            let mut s = OpensslSession {
                api: a,
                ssl,
                rbio,
                wbio,
                owns_ssl,
                keep_open: false,
                errors: Vec::new(),
            };
            match state {
                TlsState::Connecting => (a.ssl_set_connect_state)(ssl),
                TlsState::Accepting => (a.ssl_set_accept_state)(ssl),
                TlsState::Open => return Some(s),
            }
            if state == TlsState::Connecting {
                // The ClientHello now: the bufferevent sends what the write BIO holds.
                if let Err(e) = s.handshake() {
                    log::warn!("bufferevent_openssl: the TLS handshake cannot start: {e}");
                    // The SSL is the program's still: it gets it back.
                    s.owns_ssl = false;
                    return None;
                }
            }
            Some(s)
        }
    }

    /// The `SSL *`.
    pub fn ssl(&self) -> *mut ssl_st {
        self.ssl
    }

    /// Takes the next OpenSSL error code for `bufferevent_get_openssl_error`: the latest first, 0
    /// when none is left.
    pub fn take_error(&mut self) -> c_ulong {
        self.errors.pop().unwrap_or(0)
    }

    fn clear_errors(&self) {
        // SAFETY: ERR_clear_error takes no arguments and touches this thread's queue only.
        unsafe { (self.api.err_clear_error)() };
    }

    /// Moves this thread's OpenSSL error queue into the bufferevent's (libevent keeps the first
    /// three); the first code, with its text, for the [`TlsError`].
    fn collect_errors(&mut self) -> Option<(c_ulong, String)> {
        let mut first = None;
        loop {
            // SAFETY: ERR_get_error takes no arguments and reads this thread's queue.
            let code = unsafe { (self.api.err_get_error)() };
            if code == 0 {
                break;
            }
            if self.errors.len() < KEPT_ERRORS {
                self.errors.push(code);
            }
            first.get_or_insert_with(|| (code, error_text(self.api, code)));
        }
        first
    }

    /// The error of a failed call that returned `r`, from `SSL_get_error`; None when it only
    /// wants more input (or, with memory BIOs, never: more output room).
    fn failure(&mut self, r: c_int, zero_return_ok: bool) -> Option<TlsError> {
        // SAFETY: the live SSL and the return value of the call just made on it.
        let code = unsafe { (self.api.ssl_get_error)(self.ssl, r) };
        match code {
            SSL_ERROR_WANT_READ | SSL_ERROR_WANT_WRITE => None,
            SSL_ERROR_ZERO_RETURN if zero_return_ok => None,
            _ => Some(match self.collect_errors() {
                Some((c, text)) => TlsError::new(c, text),
                None if code == SSL_ERROR_SYSCALL => {
                    TlsError::new(0, "TLS I/O error (SSL_ERROR_SYSCALL)")
                }
                None => TlsError::new(0, format!("TLS error (SSL_get_error {code})")),
            }),
        }
    }

    fn handshake(&mut self) -> Result<(), TlsError> {
        self.clear_errors();
        // SAFETY: the live SSL, over our memory BIOs.
        let r = unsafe { (self.api.ssl_do_handshake)(self.ssl) };
        if r == 1 {
            return Ok(());
        }
        self.failure(r, false).map_or(Ok(()), Err)
    }

    fn pending(&self, bio: *mut bio_st) -> usize {
        // SAFETY: one of the SSL's memory BIOs, live while the SSL is.
        unsafe { (self.api.bio_ctrl_pending)(bio) }
    }

    /// `bufferevent_ssl_renegotiate`'s work: `SSL_renegotiate` and the first message; false (the
    /// reason queued) when OpenSSL refuses.
    fn renegotiate(&mut self) -> bool {
        self.clear_errors();
        // SAFETY: the live SSL.
        if unsafe { (self.api.ssl_renegotiate)(self.ssl) } != 1 {
            self.collect_errors();
            return false;
        }
        match self.handshake() {
            Ok(()) => true,
            Err(e) => {
                log::warn!("bufferevent_ssl_renegotiate: {e}");
                false
            }
        }
    }
}

impl TlsSession for OpensslSession {
    fn read_tls(&mut self, data: &[u8]) -> usize {
        let room = READ_BIO_MAX.saturating_sub(self.pending(self.rbio));
        let n = data.len().min(room).min(c_int::MAX as usize);
        if n == 0 {
            return 0;
        }
        // SAFETY: `n` readable bytes of `data` into the read BIO (a memory BIO takes them all).
        let r = unsafe { (self.api.bio_write)(self.rbio, data.as_ptr().cast(), n as c_int) };
        r.max(0) as usize
    }

    fn process(&mut self) -> Result<(), TlsError> {
        // Records after the handshake are decrypted by SSL_read (read_plaintext); a
        // renegotiation puts the SSL back into its handshake.
        if self.is_handshaking() {
            self.handshake()?;
        }
        Ok(())
    }

    fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        let n = buf.len().min(c_int::MAX as usize);
        if n == 0 {
            return Ok(0);
        }
        self.clear_errors();
        // SAFETY: `n` writable bytes of `buf`.
        let r = unsafe { (self.api.ssl_read)(self.ssl, buf.as_mut_ptr().cast(), n as c_int) };
        if r > 0 {
            return Ok(r as usize);
        }
        // A close_notify (ZERO_RETURN) reads as 0: received_close_notify says so.
        self.failure(r, true).map_or(Ok(0), Err)
    }

    fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        let n = data.len().min(WRITE_MAX);
        if n == 0 || self.pending(self.wbio) >= WRITE_BIO_MAX {
            return Ok(0);
        }
        self.clear_errors();
        // SAFETY: `n` readable bytes of `data`.
        let r = unsafe { (self.api.ssl_write)(self.ssl, data.as_ptr().cast(), n as c_int) };
        if r > 0 {
            return Ok(r as usize);
        }
        self.failure(r, false).map_or(Ok(0), Err)
    }

    fn wants_write(&self) -> bool {
        self.pending(self.wbio) > 0
    }

    fn write_tls(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(c_int::MAX as usize);
        if n == 0 {
            return 0;
        }
        // SAFETY: `n` writable bytes of `out`, from the write BIO.
        let r = unsafe { (self.api.bio_read)(self.wbio, out.as_mut_ptr().cast(), n as c_int) };
        r.max(0) as usize
    }

    fn is_handshaking(&self) -> bool {
        // SAFETY: the live SSL.
        unsafe { (self.api.ssl_is_init_finished)(self.ssl) == 0 }
    }

    fn send_close_notify(&mut self) {
        // SAFETY: the live SSL.
        let sent = unsafe { (self.api.ssl_get_shutdown)(self.ssl) } & SSL_SENT_SHUTDOWN != 0;
        if sent || self.keep_open || self.is_handshaking() {
            return;
        }
        self.clear_errors();
        // SAFETY: the live SSL; the alert goes into the write BIO.
        unsafe { (self.api.ssl_shutdown)(self.ssl) };
        self.clear_errors();
    }

    fn received_close_notify(&self) -> bool {
        // SAFETY: the live SSL.
        unsafe { (self.api.ssl_get_shutdown)(self.ssl) & SSL_RECEIVED_SHUTDOWN != 0 }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Drop for OpensslSession {
    fn drop(&mut self) {
        if self.owns_ssl {
            // SAFETY: BEV_OPT_CLOSE_ON_FREE gave us the SSL; it frees its BIOs with it.
            unsafe { (self.api.ssl_free)(self.ssl) };
        }
    }
}

/// The [`OpensslSession`] of TLS bufferevent `h`.
fn session_of(b: &mut EventBase, h: BufferEvent) -> Option<&mut OpensslSession> {
    h.tls_session(b)
        .ok()?
        .as_any_mut()
        .downcast_mut::<OpensslSession>()
}

/// C code may have written to a TLS bufferevent's `SSL` (an `SSL_shutdown`'s close_notify waits
/// in the write BIO): if so, it is sent. Called by the bufferevent layer after C callbacks and at
/// the start of each loop.
pub(crate) fn send_queued(b: &mut EventBase, h: BufferEvent) {
    if session_of(b, h).is_some_and(|s| s.wants_write()) {
        let _ = h.flush(b, What::WRITE, FlushMode::Normal);
    }
}

/// TLS bufferevent `h` is about to be freed without BEV_OPT_CLOSE_ON_FREE: its SSL goes back to
/// the program untouched (no close_notify sent for it).
pub(crate) fn keep_open(b: &mut EventBase, h: BufferEvent) {
    if let Some(s) = session_of(b, h) {
        s.keep_open = true;
    }
}

// ---- the C functions ----

/// `enum bufferevent_SSLate`.
fn state_of(state: c_int) -> Option<TlsState> {
    match state {
        0 => Some(TlsState::Open),
        1 => Some(TlsState::Connecting),
        2 => Some(TlsState::Accepting),
        _ => None,
    }
}

const BEV_OPT_CLOSE_ON_FREE: c_int = 0x01;

/// The checks both constructors make: OpenSSL is there, an SSL and a known state.
fn prepare(ssl: *mut ssl_st, state: c_int, what: &str) -> Option<(&'static Api, TlsState)> {
    let Some(a) = api() else {
        log::warn!("{what}: OpenSSL (libssl.so.3) is not loaded in this process");
        return None;
    };
    if ssl.is_null() {
        log::warn!("{what}: NULL SSL");
        return None;
    }
    let Some(state) = state_of(state) else {
        log::warn!("{what}: unknown state {state}");
        return None;
    };
    Some((a, state))
}

/// The fd of a socket (or fd) BIO the program put on `ssl` (`SSL_set_fd`), told not to close it
/// when it is replaced; None for other BIOs or none.
///
/// # Safety
/// `ssl` is a live SSL.
unsafe fn take_bio_fd(a: &Api, ssl: *mut ssl_st) -> Option<c_int> {
    // SAFETY: the caller's contract; the BIOs are the SSL's, null-checked.
    unsafe {
        let wbio = (a.ssl_get_wbio)(ssl);
        if wbio.is_null() || (a.bio_method_type)(wbio) & BIO_TYPE_DESCRIPTOR == 0 {
            return None;
        }
        let fd = (a.bio_ctrl)(wbio, BIO_C_GET_FD, 0, ptr::null_mut());
        if fd < 0 || fd > c_long::from(c_int::MAX) {
            return None;
        }
        for bio in [wbio, (a.ssl_get_rbio)(ssl)] {
            if !bio.is_null() && (a.bio_method_type)(bio) & BIO_TYPE_DESCRIPTOR != 0 {
                (a.bio_ctrl)(bio, BIO_CTRL_SET_CLOSE, 0, ptr::null_mut());
            }
        }
        Some(fd as c_int)
    }
}

/// `bufferevent_openssl_socket_new`: a TLS bufferevent on socket `fd` (-1: the SSL's own socket,
/// if `SSL_set_fd` gave it one, else none yet, for `bufferevent_socket_connect`), driving `ssl`
/// from `state`. Reading and writing are enabled. NULL when OpenSSL is not loaded, for a NULL
/// base or SSL, an unknown state, or an fd other than the SSL's own.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_openssl_socket_new(
    base: *mut crate::base::CBase,
    fd: evutil_socket_t,
    ssl: *mut ssl_st,
    state: c_int,
    options: c_int,
) -> *mut bufferevent {
    const WHAT: &str = "bufferevent_openssl_socket_new";
    guard(ptr::null_mut(), || {
        let Some((a, state)) = prepare(ssl, state, WHAT) else {
            return ptr::null_mut();
        };
        if base.is_null() {
            log::warn!("{WHAT}: needs an event base");
            return ptr::null_mut();
        }
        let mut fd = fd;
        // SAFETY: a live SSL (the caller's contract).
        if let Some(own) = unsafe { take_bio_fd(a, ssl) } {
            if fd < 0 {
                fd = own;
            } else if fd != own {
                log::warn!("{WHAT}: fd {fd} is not the SSL's own fd {own}");
                return ptr::null_mut();
            }
        }
        // Made first, owning nothing: a bufferevent that cannot be made leaves the SSL to the
        // program. With CLOSE_ON_FREE it is the bufferevent's from then on.
        // SAFETY: a live SSL handed to the bufferevent (the caller's contract).
        let Some(mut session) = (unsafe { OpensslSession::new(a, ssl, state, false) }) else {
            return ptr::null_mut();
        };
        cbev::new_tls_socket(base, fd, options, ssl, WHAT, |b, owned, opts| {
            session.owns_ssl = options & BEV_OPT_CLOSE_ON_FREE != 0;
            BufferEvent::tls_socket_with_session(b, owned, Box::new(session), state, opts)
        })
    })
}

/// `bufferevent_openssl_filter_new`: a TLS bufferevent over `underlying`, driving `ssl` from
/// `state`. It takes over the underlying bufferevent's callbacks and enables it; with
/// BEV_OPT_CLOSE_ON_FREE freeing it frees `underlying` and `ssl`. `base` must be the underlying
/// bufferevent's base (or NULL for it).
#[no_mangle]
pub unsafe extern "C" fn bufferevent_openssl_filter_new(
    base: *mut crate::base::CBase,
    underlying: *mut bufferevent,
    ssl: *mut ssl_st,
    state: c_int,
    options: c_int,
) -> *mut bufferevent {
    const WHAT: &str = "bufferevent_openssl_filter_new";
    guard(ptr::null_mut(), || {
        let Some((a, state)) = prepare(ssl, state, WHAT) else {
            return ptr::null_mut();
        };
        if underlying.is_null() {
            log::warn!("{WHAT}: NULL underlying bufferevent");
            return ptr::null_mut();
        }
        // SAFETY: a live bufferevent (the caller's contract).
        let ubase = unsafe { crate::bufferevent::bufferevent_get_base(underlying) };
        if !base.is_null() && base != ubase {
            log::warn!("{WHAT}: the base is not the underlying bufferevent's");
            return ptr::null_mut();
        }
        // Made first, owning nothing: a bufferevent that cannot be made leaves the SSL to the
        // program. With CLOSE_ON_FREE it is the bufferevent's from then on.
        // SAFETY: a live SSL handed to the bufferevent (the caller's contract).
        let Some(mut session) = (unsafe { OpensslSession::new(a, ssl, state, false) }) else {
            return ptr::null_mut();
        };
        cbev::new_tls_filter(underlying, options, ssl, WHAT, |b, uh, opts| {
            session.owns_ssl = options & BEV_OPT_CLOSE_ON_FREE != 0;
            BufferEvent::tls_filter_with_session(b, uh, Box::new(session), state, opts)
        })
    })
}

/// `bufferevent_openssl_get_allow_dirty_shutdown`: 1 if a dirty shutdown is reported as EOF, 0
/// if as an error (the default), -1 for a bufferevent that is not a TLS one.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_openssl_get_allow_dirty_shutdown(
    bev: *mut bufferevent,
) -> c_int {
    guard(-1, || {
        cbev::with_tls(
            bev,
            "bufferevent_openssl_get_allow_dirty_shutdown",
            |b, h| h.tls_allow_dirty_shutdown(b).map_or(-1, c_int::from),
        )
        .unwrap_or(-1)
    })
}

/// `bufferevent_openssl_set_allow_dirty_shutdown`: whether the peer's EOF without a close_notify
/// is reported as BEV_EVENT_EOF (non-zero) or BEV_EVENT_ERROR (0). Nothing for other bufferevents.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_openssl_set_allow_dirty_shutdown(
    bev: *mut bufferevent,
    allow_dirty_shutdown: c_int,
) {
    guard((), || {
        cbev::with_tls(
            bev,
            "bufferevent_openssl_set_allow_dirty_shutdown",
            |b, h| {
                let _ = h.set_tls_allow_dirty_shutdown(b, allow_dirty_shutdown != 0);
            },
        );
    })
}

/// `bufferevent_openssl_get_ssl`: the `SSL *` the bufferevent was made with; NULL for other
/// bufferevents.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_openssl_get_ssl(bev: *mut bufferevent) -> *mut ssl_st {
    guard(ptr::null_mut(), || {
        cbev::tls_ssl(bev).unwrap_or(ptr::null_mut())
    })
}

/// `bufferevent_ssl_renegotiate`: starts a renegotiation (TLS 1.2 and older) and returns 0; -1,
/// with OpenSSL's reason for `bufferevent_get_openssl_error`, when `SSL_renegotiate` refuses (TLS
/// 1.3 has none), and for other bufferevents. The connection goes on either way.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_ssl_renegotiate(bev: *mut bufferevent) -> c_int {
    guard(-1, || {
        cbev::with_tls(bev, "bufferevent_ssl_renegotiate", |b, h| {
            let Some(s) = session_of(b, h) else {
                return -1;
            };
            if !s.renegotiate() {
                return -1;
            }
            // The first message goes out now.
            let _ = h.flush(b, What::WRITE, FlushMode::Normal);
            0
        })
        .unwrap_or(-1)
    })
}

/// `bufferevent_get_openssl_error`: the next OpenSSL error code (`ERR_get_error`'s) of the failures
/// reported on the bufferevent, the latest first, each once; 0 when none is left or for other
/// bufferevents.
#[no_mangle]
pub unsafe extern "C" fn bufferevent_get_openssl_error(bev: *mut bufferevent) -> c_ulong {
    guard(0, || {
        cbev::with_tls(bev, "bufferevent_get_openssl_error", |b, h| {
            session_of(b, h).map_or(0, OpensslSession::take_error)
        })
        .unwrap_or(0)
    })
}
