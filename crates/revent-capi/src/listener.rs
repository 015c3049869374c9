//! `event2/listener.h`: `struct evconnlistener`, accepting connections into C callbacks, over
//! revent's [`Listener`].
//!
//! The struct is opaque to C: a Rust record from `Box::into_raw`. The accept callback gets the new
//! connection as a raw fd the program owns (revent's `OwnedFd` is released with `into_raw_fd`) and
//! the peer's address as a C socket address rebuilt from revent's [`PeerAddr`] in a
//! `sockaddr_storage` on the stack. The rebuilding never writes more than the storage holds, and
//! the length passed to C never exceeds it (libevent 2.1.13 fixed an out-of-bounds write on long
//! AF_UNIX paths here). A reference count keeps the record alive while a callback runs, so
//! `evconnlistener_free` from inside one is safe.

use crate::base::{call_out, with_base, CBase};
use crate::{evutil_socket_t, guard};
use libc::{c_int, c_uint, c_void, sockaddr, socklen_t};
use revent::{EventBase, Listener, ListenerOptions, PeerAddr};
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::ptr;

/// `evconnlistener_cb`: `(listener, fd, address, address length, user pointer)`.
pub type evconnlistener_cb = Option<
    unsafe extern "C" fn(*mut evconnlistener, evutil_socket_t, *mut sockaddr, c_int, *mut c_void),
>;
/// `evconnlistener_errorcb`.
pub type evconnlistener_errorcb = Option<unsafe extern "C" fn(*mut evconnlistener, *mut c_void)>;

const LEV_OPT_CLOSE_ON_EXEC: c_uint = 1 << 2;
const LEV_OPT_REUSEABLE: c_uint = 1 << 3;
const LEV_OPT_DISABLED: c_uint = 1 << 5;
const LEV_OPT_DEFERRED_ACCEPT: c_uint = 1 << 6;
const LEV_OPT_REUSEABLE_PORT: c_uint = 1 << 7;
const LEV_OPT_BIND_IPV6ONLY: c_uint = 1 << 8;
/// Marks a live listener record.
const MAGIC: u64 = 0x7265_7665_6e74_4c53;

/// `struct evconnlistener` (opaque to C).
pub struct evconnlistener {
    magic: u64,
    cbase: *mut CBase,
    /// The revent listener; None once freed (the record may outlive it while a callback runs).
    l: Option<Listener>,
    cb: evconnlistener_cb,
    errorcb: evconnlistener_errorcb,
    arg: *mut c_void,
    /// The program's wish (`evconnlistener_enable`/`disable`); accepting also needs a callback.
    enabled: bool,
    refcnt: u32,
}

/// The record behind `lev`, checked; a warning naming `what` otherwise.
fn record(lev: *mut evconnlistener, what: &str) -> Option<*mut evconnlistener> {
    // SAFETY: null or a record of ours (C's contract); only the magic word is read first.
    if lev.is_null() || unsafe { ptr::read(ptr::addr_of!((*lev).magic)) } != MAGIC {
        log::warn!("{what}: not a live evconnlistener");
        return None;
    }
    Some(lev)
}

/// A short-lived reference to a record: a few field accesses, never across a call to C.
#[allow(clippy::mut_from_ref)]
fn lv<'a>(lev: *mut evconnlistener) -> &'a mut evconnlistener {
    // SAFETY: a live record from Box::into_raw (checked by `record`, or held alive by a reference
    // count), used on its base's thread only, for a few field accesses at a time.
    unsafe { &mut *lev }
}

/// Drops a reference; at zero the record is freed. Returns whether it is still alive.
fn release(lev: *mut evconnlistener) -> bool {
    let r = lv(lev);
    r.refcnt -= 1;
    if r.refcnt > 0 {
        return true;
    }
    r.magic = 0;
    // SAFETY: from Box::into_raw in `build`; this was the last reference.
    drop(unsafe { Box::from_raw(lev) });
    false
}

/// `peer` as a C socket address (`sockaddr_in`, `sockaddr_in6` or `sockaddr_un`), written into
/// `out`; returns the address's length. Never writes past `out`, and the length returned never
/// exceeds `out.len()` (a path too long for it is cut). A Unix-domain path carries its NUL, as the
/// kernel reports it; an unnamed or abstract Unix peer, or another family, is the family alone.
pub fn write_sockaddr(peer: &PeerAddr, out: &mut [u8]) -> usize {
    let mut full: Vec<u8> = Vec::with_capacity(128);
    match peer {
        PeerAddr::Inet(std::net::SocketAddr::V4(a)) => {
            full.extend_from_slice(&(libc::AF_INET as libc::sa_family_t).to_ne_bytes());
            full.extend_from_slice(&a.port().to_be_bytes());
            full.extend_from_slice(&a.ip().octets());
            full.extend_from_slice(&[0; 8]);
        }
        PeerAddr::Inet(std::net::SocketAddr::V6(a)) => {
            full.extend_from_slice(&(libc::AF_INET6 as libc::sa_family_t).to_ne_bytes());
            full.extend_from_slice(&a.port().to_be_bytes());
            full.extend_from_slice(&a.flowinfo().to_ne_bytes());
            full.extend_from_slice(&a.ip().octets());
            full.extend_from_slice(&a.scope_id().to_ne_bytes());
        }
        PeerAddr::Unix(path) => {
            full.extend_from_slice(&(libc::AF_UNIX as libc::sa_family_t).to_ne_bytes());
            if let Some(p) = path {
                full.extend_from_slice(p.as_os_str().as_bytes());
                full.push(0);
            }
        }
        PeerAddr::Other(family) => {
            full.extend_from_slice(&(*family as libc::sa_family_t).to_ne_bytes());
        }
    }
    let n = full.len().min(out.len());
    out[..n].copy_from_slice(&full[..n]);
    n
}

/// The accept callback: the C one with the raw fd and the peer's address.
fn on_accept(b: &mut EventBase, lev: *mut evconnlistener, conn: OwnedFd, peer: PeerAddr) {
    let r = lv(lev);
    let (cbase, arg) = (r.cbase, r.arg);
    let Some(cb) = r.cb else {
        // No callback: libevent closes the connection.
        drop(conn);
        return;
    };
    r.refcnt += 1;
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = {
        // SAFETY: the bytes of a live local, viewed as bytes for the length of the struct.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
                std::mem::size_of::<libc::sockaddr_storage>(),
            )
        };
        write_sockaddr(&peer, bytes)
    };
    let fd = conn.into_raw_fd();
    let sa = (&mut ss as *mut libc::sockaddr_storage).cast::<sockaddr>();
    // SAFETY: the program's callback; it owns `fd` from now on; `sa` points to `len` valid bytes
    // that live across the call. `cbase` is the listener's base, whose Rust base `b` runs this
    // callback here.
    unsafe { call_out(cbase, b, || cb(lev, fd, sa, len as c_int, arg)) };
    release(lev);
}

/// The accept-error callback: the C one with errno set, or a warning as libevent gives.
fn on_error(b: &mut EventBase, lev: *mut evconnlistener, e: &io::Error) {
    let r = lv(lev);
    let (cbase, arg) = (r.cbase, r.arg);
    let Some(cb) = r.errorcb else {
        log::warn!("evconnlistener: error from accept(): {e}");
        return;
    };
    r.refcnt += 1;
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    let call = || {
        // SAFETY: this thread's errno, as C's EVUTIL_SOCKET_ERROR() reads it.
        unsafe { *libc::__errno_location() = errno };
        // SAFETY: the program's callback with its listener and argument.
        unsafe { cb(lev, arg) }
    };
    // SAFETY: `cbase` is the listener's base, whose Rust base `b` runs this callback here.
    unsafe { call_out(cbase, b, call) };
    release(lev);
}

/// Whether `fd` is an open socket revent can watch (a failure inside revent would drop, and close,
/// the program's fd).
fn socket_acceptable(b: &EventBase, fd: c_int) -> bool {
    let mut ty: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: getsockopt writes one int into a live local, its length given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        log::warn!("evconnlistener: fd {fd}: {}", io::Error::last_os_error());
        return false;
    }
    if b.method() == "select" && fd >= libc::FD_SETSIZE as c_int {
        log::warn!("evconnlistener: fd {fd} is beyond select's limit");
        return false;
    }
    true
}

/// A listener record for `fd` (already listening) on `base`. On failure, whether revent took the
/// socket (and closed it, dropping its `OwnedFd`) or left it to the caller.
fn build(
    base: *mut CBase,
    cb: evconnlistener_cb,
    ptr_arg: *mut c_void,
    flags: c_uint,
    fd: evutil_socket_t,
) -> Result<*mut evconnlistener, bool> {
    let lev = Box::into_raw(Box::new(evconnlistener {
        magic: MAGIC,
        cbase: base,
        l: None,
        cb,
        errorcb: None,
        arg: ptr_arg,
        enabled: flags & LEV_OPT_DISABLED == 0,
        refcnt: 1,
    }));
    // revent applies the reuse options itself when it binds; here the socket is bound already.
    let mut options = ListenerOptions::from_bits_truncate(flags)
        - ListenerOptions::REUSEABLE
        - ListenerOptions::REUSEABLE_PORT;
    if cb.is_none() {
        // As libevent: no callback, no accepting until one is set.
        options |= ListenerOptions::DISABLED;
    }
    let make = |b: &mut EventBase| {
        if !socket_acceptable(b, fd) {
            return Err(false);
        }
        // SAFETY: an open socket (checked just above) that the program hands over: with
        // LEV_OPT_CLOSE_ON_FREE revent closes it on free, as libevent; without, free hands it
        // back and it is released with into_raw_fd. revent's remaining failure points
        // (non-blocking mode, the event) cannot fail for a checked socket.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // A negative backlog: leave the socket as it is (the caller did the listen).
        let l = Listener::from_fd(b, owned, options, -1, move |b, conn, peer| {
            on_accept(b, lev, conn, peer)
        });
        match l {
            Ok(l) => {
                let _ = l.set_error_cb(b, move |b, e| on_error(b, lev, e));
                Ok(l)
            }
            Err(e) => {
                log::warn!("evconnlistener_new: {e}");
                Err(true)
            }
        }
    };
    // SAFETY: a live base (C's contract).
    let made = unsafe { with_base(base, make) };
    match made {
        Some(Ok(l)) => {
            lv(lev).l = Some(l);
            Ok(lev)
        }
        other => {
            // SAFETY: made above, never handed out.
            drop(unsafe { Box::from_raw(lev) });
            Err(matches!(other, Some(Err(true))))
        }
    }
}

/// libevent's backlog rule: above 0, `listen` with it; below 0, `listen` with 128; 0, the socket
/// is listening already.
fn listen_as_libevent(fd: c_int, backlog: c_int) -> bool {
    let n = match backlog {
        0 => return true,
        n if n > 0 => n,
        _ => 128,
    };
    // SAFETY: listen on an int fd is harmless.
    if unsafe { libc::listen(fd, n) } < 0 {
        log::warn!("evconnlistener: listen: {}", io::Error::last_os_error());
        return false;
    }
    true
}

/// `evconnlistener_new`: accepts connections on `fd`, a bound (non-blocking) socket, calling `cb`
/// with `ptr`. `backlog`: > 0 listens with it, < 0 with a default, 0 means already listening. With
/// a NULL `cb` nothing is accepted until `evconnlistener_set_cb` sets one.
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_new(
    base: *mut CBase,
    cb: evconnlistener_cb,
    ptr_arg: *mut c_void,
    flags: c_uint,
    backlog: c_int,
    fd: evutil_socket_t,
) -> *mut evconnlistener {
    guard(ptr::null_mut(), || {
        if base.is_null() || fd < 0 {
            log::warn!("evconnlistener_new: needs a base and a socket");
            return ptr::null_mut();
        }
        if !listen_as_libevent(fd, backlog) {
            return ptr::null_mut();
        }
        build(base, cb, ptr_arg, flags, fd).unwrap_or(ptr::null_mut())
    })
}

fn set_int_opt(fd: c_int, level: c_int, name: c_int, what: &str) -> bool {
    let on: c_int = 1;
    // SAFETY: setsockopt reads one int from a live local, its length given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&on as *const c_int).cast(),
            std::mem::size_of::<c_int>() as socklen_t,
        )
    };
    if r < 0 {
        log::warn!(
            "evconnlistener_new_bind: {what}: {}",
            io::Error::last_os_error()
        );
    }
    r == 0
}

/// `evconnlistener_new_bind`: makes a socket of `sa`'s family (non-blocking, SO_KEEPALIVE, and
/// the LEV_OPT_REUSEABLE, REUSEABLE_PORT, DEFERRED_ACCEPT, BIND_IPV6ONLY and CLOSE_ON_EXEC options
/// asked for), binds it to `sa` (`socklen` bytes; any family, AF_UNIX included), listens and
/// accepts as `evconnlistener_new`. As in libevent, without LEV_OPT_CLOSE_ON_FREE the socket stays
/// open after `evconnlistener_free`.
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_new_bind(
    base: *mut CBase,
    cb: evconnlistener_cb,
    ptr_arg: *mut c_void,
    flags: c_uint,
    backlog: c_int,
    sa: *const sockaddr,
    socklen: c_int,
) -> *mut evconnlistener {
    guard(ptr::null_mut(), || {
        if base.is_null()
            || sa.is_null()
            || socklen < std::mem::size_of::<libc::sa_family_t>() as c_int
            || socklen as usize > std::mem::size_of::<libc::sockaddr_storage>()
        {
            log::warn!("evconnlistener_new_bind: needs a base and an address");
            return ptr::null_mut();
        }
        // SAFETY: `sa` points to `socklen` (at least 2) readable bytes (the caller's contract).
        let family = c_int::from(unsafe { ptr::read_unaligned(ptr::addr_of!((*sa).sa_family)) });
        let mut ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK;
        if flags & LEV_OPT_CLOSE_ON_EXEC != 0 {
            ty |= libc::SOCK_CLOEXEC;
        }
        // SAFETY: socket() with plain arguments.
        let fd = unsafe { libc::socket(family, ty, 0) };
        if fd < 0 {
            log::warn!(
                "evconnlistener_new_bind: socket: {}",
                io::Error::last_os_error()
            );
            return ptr::null_mut();
        }
        let ok = set_int_opt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, "SO_KEEPALIVE")
            && (flags & LEV_OPT_REUSEABLE == 0
                || set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, "SO_REUSEADDR"))
            && (flags & LEV_OPT_REUSEABLE_PORT == 0
                || set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, "SO_REUSEPORT"))
            && (flags & LEV_OPT_DEFERRED_ACCEPT == 0
                || set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT"))
            && (flags & LEV_OPT_BIND_IPV6ONLY == 0
                || set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, "IPV6_V6ONLY"))
            // SAFETY: `sa` is `socklen` readable bytes.
            && (unsafe { libc::bind(fd, sa, socklen as socklen_t) } == 0 || {
                log::warn!("evconnlistener_new_bind: bind: {}", io::Error::last_os_error());
                false
            })
            && listen_as_libevent(fd, backlog);
        let built = if ok {
            build(base, cb, ptr_arg, flags, fd)
        } else {
            Err(false)
        };
        match built {
            Ok(lev) => lev,
            // revent took the socket and closed it.
            Err(true) => ptr::null_mut(),
            Err(false) => {
                // SAFETY: our own socket, made above and handed to no one.
                unsafe { libc::close(fd) };
                ptr::null_mut()
            }
        }
    })
}

/// `evconnlistener_free`: stops accepting and frees the listener (once a callback running now
/// returns). The socket is closed with LEV_OPT_CLOSE_ON_FREE and left open otherwise.
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_free(lev: *mut evconnlistener) {
    guard((), || {
        let Some(lev) = record(lev, "evconnlistener_free") else {
            return;
        };
        let r = lv(lev);
        let (cbase, l) = (r.cbase, r.l.take());
        r.cb = None;
        r.errorcb = None;
        if let Some(l) = l {
            // SAFETY: the listener's base is live (C's contract).
            if let Some(Ok(Some(fd))) = unsafe { with_base(cbase, |b| l.free(b)) } {
                // No LEV_OPT_CLOSE_ON_FREE: the program's socket stays open.
                let _ = fd.into_raw_fd();
            }
        }
        release(lev);
    })
}

/// Runs `f` on the live revent listener behind `lev`.
fn on_listener<R>(
    lev: *mut evconnlistener,
    what: &str,
    f: impl FnOnce(&mut EventBase, Listener, *mut evconnlistener) -> R,
) -> Option<R> {
    let lev = record(lev, what)?;
    let (cbase, l) = (lv(lev).cbase, lv(lev).l?);
    // SAFETY: the listener's base is live (C's contract).
    unsafe { with_base(cbase, |b| f(b, l, lev)) }
}

/// `evconnlistener_enable`: accepts again (once it has a callback).
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_enable(lev: *mut evconnlistener) -> c_int {
    guard(-1, || {
        on_listener(lev, "evconnlistener_enable", |b, l, lev| {
            lv(lev).enabled = true;
            if lv(lev).cb.is_none() {
                return 0;
            }
            l.enable(b).map_or(-1, |()| 0)
        })
        .unwrap_or(-1)
    })
}

/// `evconnlistener_disable`: stops accepting; connections wait in the backlog.
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_disable(lev: *mut evconnlistener) -> c_int {
    guard(-1, || {
        on_listener(lev, "evconnlistener_disable", |b, l, lev| {
            lv(lev).enabled = false;
            l.disable(b).map_or(-1, |()| 0)
        })
        .unwrap_or(-1)
    })
}

/// `evconnlistener_get_base`.
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_get_base(lev: *mut evconnlistener) -> *mut CBase {
    guard(ptr::null_mut(), || {
        record(lev, "evconnlistener_get_base").map_or(ptr::null_mut(), |lev| lv(lev).cbase)
    })
}

/// `evconnlistener_get_fd`: the listening socket.
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_get_fd(lev: *mut evconnlistener) -> evutil_socket_t {
    guard(-1, || {
        on_listener(lev, "evconnlistener_get_fd", |b, l, _| {
            l.fd(b).unwrap_or(-1)
        })
        .unwrap_or(-1)
    })
}

/// `evconnlistener_set_cb`: a new accept callback and argument. Setting one on an enabled listener
/// that had none starts accepting; setting NULL makes accepted connections be closed.
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_set_cb(
    lev: *mut evconnlistener,
    cb: evconnlistener_cb,
    arg: *mut c_void,
) {
    guard((), || {
        on_listener(lev, "evconnlistener_set_cb", |b, l, lev| {
            let r = lv(lev);
            let start = r.enabled && r.cb.is_none() && cb.is_some();
            r.cb = cb;
            r.arg = arg;
            if start {
                let _ = l.enable(b);
            }
        });
    })
}

/// `evconnlistener_set_error_cb`: the callback for accept errors other than the transient ones
/// (errno tells which). Out of fds or memory, accepting pauses briefly after it (revent's choice:
/// libevent retries at once).
#[no_mangle]
pub unsafe extern "C" fn evconnlistener_set_error_cb(
    lev: *mut evconnlistener,
    errorcb: evconnlistener_errorcb,
) {
    guard((), || {
        if let Some(lev) = record(lev, "evconnlistener_set_error_cb") {
            lv(lev).errorcb = errorcb;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn sockaddr_never_overruns() {
        let path = PathBuf::from(format!("/tmp/{}", "x".repeat(103)));
        assert_eq!(path.as_os_str().len(), 108);
        let peer = PeerAddr::Unix(Some(path));
        // A full sockaddr_storage: family, 108 bytes of path, its NUL.
        let mut big = [0xAAu8; 128];
        assert_eq!(write_sockaddr(&peer, &mut big), 111);
        assert_eq!(&big[2..7], b"/tmp/");
        assert_eq!(big[110], 0);
        assert!(big[111..].iter().all(|&b| b == 0xAA));
        // Room for a sockaddr_un only (110): cut, never past the end, length within it.
        let mut buf = [0xAAu8; 120];
        let n = write_sockaddr(&peer, &mut buf[..110]);
        assert_eq!(n, 110);
        assert!(buf[110..].iter().all(|&b| b == 0xAA));
        let v4 = PeerAddr::Inet("127.0.0.1:513".parse().unwrap());
        let mut small = [0u8; 16];
        assert_eq!(write_sockaddr(&v4, &mut small), 16);
        assert_eq!(&small[2..8], &[2, 1, 127, 0, 0, 1]);
        let v6 = PeerAddr::Inet("[::1]:80".parse().unwrap());
        let mut s6 = [0u8; 28];
        assert_eq!(write_sockaddr(&v6, &mut s6), 28);
        assert_eq!(write_sockaddr(&PeerAddr::Unix(None), &mut big), 2);
    }
}
