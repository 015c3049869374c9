//! Where messages go: `event_set_log_callback`, `event_set_fatal_callback`, the debug switches.
//!
//! The library (revent) and this crate log through the `log` facade; the logger installed here hands
//! each record to the C program's log callback (libevent's severities) or, without one, prints it to
//! stderr as libevent does (`[warn] ...`). Debug messages pass only after `event_enable_debug_logging`.

use libc::{c_char, c_int};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// `EVENT_LOG_DEBUG` ... `EVENT_LOG_ERR`.
pub const EVENT_LOG_DEBUG: c_int = 0;
pub const EVENT_LOG_MSG: c_int = 1;
pub const EVENT_LOG_WARN: c_int = 2;
pub const EVENT_LOG_ERR: c_int = 3;
/// The code libevent passes to the fatal callback for an internal error (`EVENT_ERR_ABORT_`).
pub const EVENT_ERR_ABORT: c_int = 0xdeaddead_u32 as c_int;

pub type event_log_cb = Option<unsafe extern "C" fn(severity: c_int, msg: *const c_char)>;
pub type event_fatal_cb = Option<unsafe extern "C" fn(err: c_int)>;

static LOG_CB: AtomicUsize = AtomicUsize::new(0);
static FATAL_CB: AtomicUsize = AtomicUsize::new(0);
static DEBUG: AtomicBool = AtomicBool::new(false);
pub(crate) static DEBUG_MODE: AtomicBool = AtomicBool::new(false);

fn log_cb() -> event_log_cb {
    let p = LOG_CB.load(Ordering::Acquire);
    // SAFETY: LOG_CB holds 0 or a function pointer of exactly this type, stored by
    // event_set_log_callback; 0 is None (Option of a fn pointer has the null niche).
    unsafe { std::mem::transmute::<usize, event_log_cb>(p) }
}

fn fatal_cb() -> event_fatal_cb {
    let p = FATAL_CB.load(Ordering::Acquire);
    // SAFETY: as in `log_cb`, for event_set_fatal_callback's type.
    unsafe { std::mem::transmute::<usize, event_fatal_cb>(p) }
}

/// Emits one message at a libevent severity.
pub fn emit(severity: c_int, msg: &str) {
    if severity == EVENT_LOG_DEBUG && !DEBUG.load(Ordering::Relaxed) {
        return;
    }
    match log_cb() {
        Some(cb) => {
            let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
            // SAFETY: a C callback the program registered, given a NUL-terminated string that
            // lives across the call.
            unsafe { cb(severity, c.as_ptr()) };
        }
        None => {
            let tag = match severity {
                EVENT_LOG_DEBUG => "debug",
                EVENT_LOG_MSG => "msg",
                EVENT_LOG_WARN => "warn",
                _ => "err",
            };
            eprintln!("[{tag}] {msg}");
        }
    }
}

/// libevent's fatal path for an internal error or debug-mode misuse: [`fatal`] with
/// `EVENT_ERR_ABORT_`.
pub fn fatal_msg(msg: &str) -> ! {
    fatal(EVENT_ERR_ABORT, msg)
}

/// libevent's `event_errx`: the message at error severity, then the fatal callback with `code` and
/// `exit(code)` should it return; without a callback, abort for `EVENT_ERR_ABORT_`, else `exit(code)`.
pub fn fatal(code: c_int, msg: &str) -> ! {
    emit(EVENT_LOG_ERR, msg);
    if let Some(cb) = fatal_cb() {
        // SAFETY: a C callback the program registered.
        unsafe { cb(code) };
    } else if code == EVENT_ERR_ABORT {
        std::process::abort()
    }
    std::process::exit(code)
}

/// Set once a base or an event exists: debug mode can no longer be switched on (libevent's rule,
/// since events made before it would be unknown to its checks).
static SETUP_SEEN: AtomicBool = AtomicBool::new(false);

/// Notes that a base or an event was set up (see [`event_enable_debug_mode`]).
pub(crate) fn note_setup() {
    if !SETUP_SEEN.load(Ordering::Relaxed) {
        SETUP_SEEN.store(true, Ordering::Relaxed);
    }
}

struct ToCallback;

impl log::Log for ToCallback {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info || DEBUG.load(Ordering::Relaxed)
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let severity = match r.level() {
            log::Level::Error => EVENT_LOG_ERR,
            log::Level::Warn => EVENT_LOG_WARN,
            log::Level::Info => EVENT_LOG_MSG,
            log::Level::Debug | log::Level::Trace => EVENT_LOG_DEBUG,
        };
        emit(severity, &r.args().to_string());
    }

    fn flush(&self) {}
}

static LOGGER: ToCallback = ToCallback;

/// Routes the `log` facade here (once; a host that installed its own logger keeps it).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// Installs the logger when the shared library is loaded, before `main`.
#[used]
#[link_section = ".init_array"]
static INSTALL_AT_LOAD: extern "C" fn() = {
    extern "C" fn at_load() {
        install();
    }
    at_load
};

/// `event_set_log_callback`: where messages go (NULL: back to stderr).
#[no_mangle]
pub extern "C" fn event_set_log_callback(cb: event_log_cb) {
    LOG_CB.store(cb.map_or(0, |f| f as usize), Ordering::Release);
}

/// `event_set_fatal_callback`: called on fatal errors instead of aborting.
#[no_mangle]
pub extern "C" fn event_set_fatal_callback(cb: event_fatal_cb) {
    FATAL_CB.store(cb.map_or(0, |f| f as usize), Ordering::Release);
}

/// `event_enable_debug_logging`: `EVENT_DBG_ALL` (nonzero) lets debug messages through.
#[no_mangle]
pub extern "C" fn event_enable_debug_logging(which: u32) {
    DEBUG.store(which != 0, Ordering::Relaxed);
}

/// `event_enable_debug_mode`: libevent's extra checks on event misuse. revent checks every handle
/// always; the flag only makes the misuse that libevent then reports fatal here too.
/// As libevent, calling it twice, or after a base or event exists, is fatal.
#[no_mangle]
pub extern "C" fn event_enable_debug_mode() {
    if DEBUG_MODE.load(Ordering::Relaxed) {
        fatal(1, "event_enable_debug_mode was called twice!");
    }
    if SETUP_SEEN.load(Ordering::Relaxed) {
        fatal(
            1,
            "event_enable_debug_mode must be called *before* creating any events or event_bases",
        );
    }
    DEBUG_MODE.store(true, Ordering::Relaxed);
}
