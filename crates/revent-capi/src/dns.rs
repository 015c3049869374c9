//! `event2/dns.h` and `event2/dns_compat.h`, the resolver side: a `struct evdns_base *` is an
//! [`evdns_base`] wrapping a [`revent_dns::Resolver`] whose events live in the `event_base` it
//! was made on.
//!
//! Every call reaches the Rust base through [`with_base`] (so from another thread it runs on the
//! loop's thread, see [`crate::thread`]), and every C callback runs through `call_out`, so that it
//! may call back into the library (cancel a request, make another, free the base's events).
//!
//! Where this differs from libevent 2.1: a request made with no nameserver configured fails from
//! the loop with `DNS_ERR_UNKNOWN` (libevent keeps it waiting); SERVFAIL moves on to the next
//! nameserver at once; truncated replies are retried over TCP; `evdns_getaddrinfo` fills
//! `ai_canonname` (with `AI_CANONNAME`) with the name asked for, not the one the server answered
//! for. The server-port functions (`evdns_add_server_port*`, `evdns_server_request_*`) are in
//! [`crate::dns_server`].

use crate::base::{self, call_out, with_base, CBase};
use crate::guard;
use libc::{c_char, c_int, c_uint, c_ulong, c_void, sockaddr, socklen_t};
use revent::{EventBase, What};
use revent_dns::{DnsError, Family, Hosts, Lookup, Outcome, Records, Request, Resolver};
use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The `result` of a successful lookup.
pub const DNS_ERR_NONE: c_int = 0;
/// The `result` of a cancelled lookup.
pub const DNS_ERR_CANCEL: c_int = 69;
/// `type` of an A answer (`DNS_IPv4_A`): `addresses` is an array of `struct in_addr`.
pub const DNS_IPV4_A: c_char = 1;
/// `type` of a PTR answer: `addresses` points to one `char *`.
pub const DNS_PTR: c_char = 2;
/// `type` of an AAAA answer (`DNS_IPv6_AAAA`): `addresses` is an array of `struct in6_addr`.
pub const DNS_IPV6_AAAA: c_char = 3;
/// A lookup flag: the name is asked as it is, without the search list.
pub const DNS_QUERY_NO_SEARCH: c_int = 1;
/// `evdns_base_resolv_conf_parse`: take the `search` and `domain` lines.
pub const DNS_OPTION_SEARCH: c_int = 1;
/// `evdns_base_resolv_conf_parse`: take the `nameserver` lines.
pub const DNS_OPTION_NAMESERVERS: c_int = 2;
/// `evdns_base_resolv_conf_parse`: take the `options` lines.
pub const DNS_OPTION_MISC: c_int = 4;
/// `evdns_base_resolv_conf_parse`: load `/etc/hosts` too.
pub const DNS_OPTION_HOSTSFILE: c_int = 8;
/// All four of the above.
pub const DNS_OPTIONS_ALL: c_int = 15;
/// `evdns_base_resolv_conf_parse`: no 127.0.0.1 when the file names no nameserver.
pub const DNS_OPTION_NAMESERVERS_NO_DEFAULT: c_int = 16;
/// `evdns_base_new`: configure from `/etc/resolv.conf`.
pub const EVDNS_BASE_INITIALIZE_NAMESERVERS: c_int = 1;
/// `evdns_base_new`: no 127.0.0.1 when resolv.conf names no nameserver.
pub const EVDNS_BASE_NAMESERVERS_NO_DEFAULT: c_int = 0x10000;
/// libevent's own getaddrinfo error for a cancelled lookup.
pub const EVUTIL_EAI_CANCEL: c_int = -90001;

/// `evdns_callback_type`.
pub type evdns_callback_type = Option<
    unsafe extern "C" fn(
        result: c_int,
        kind: c_char,
        count: c_int,
        ttl: c_int,
        addresses: *mut c_void,
        arg: *mut c_void,
    ),
>;
/// `evdns_getaddrinfo_cb`.
pub type evdns_getaddrinfo_cb =
    Option<unsafe extern "C" fn(result: c_int, res: *mut libc::addrinfo, arg: *mut c_void)>;
/// `evdns_debug_log_fn_type`.
pub type evdns_debug_log_fn_type =
    Option<unsafe extern "C" fn(is_warning: c_int, msg: *const c_char)>;

/// `struct evdns_base`.
pub struct evdns_base {
    cbase: *mut CBase,
    resolver: Resolver,
}

/// `struct evdns_request`: lives until its callback has run (or was dropped with the resolver).
pub struct evdns_request {
    cbase: *mut CBase,
    req: Option<Request>,
}

/// `struct evdns_getaddrinfo_request`: lives until its callback has run (or the lookup was
/// cancelled, whose callback then runs from the loop without it).
pub struct evdns_getaddrinfo_request {
    cbase: *mut CBase,
    lookup: Option<Lookup>,
    cb: evdns_getaddrinfo_cb,
    arg: *mut c_void,
}

/// Frees a request's box when the Rust callback that owns it goes (run or dropped).
struct Owner<T>(*mut T);

impl<T> Drop for Owner<T> {
    fn drop(&mut self) {
        // SAFETY: the box was made by Box::into_raw for this owner, which is its only freer.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

/// The global resolver of the 1.x API (`evdns_init`).
static GLOBAL: AtomicPtr<evdns_base> = AtomicPtr::new(ptr::null_mut());
/// `evdns_set_log_fn`'s function (0: none, messages go to the event log).
static LOG_FN: AtomicUsize = AtomicUsize::new(0);

/// A message of the DNS code: to `evdns_set_log_fn`'s function if there is one, else the event log.
pub(crate) fn dns_log(warning: bool, msg: &str) {
    let f = LOG_FN.load(Ordering::Acquire);
    if f == 0 {
        if warning {
            log::warn!("{msg}");
        } else {
            log::debug!("{msg}");
        }
        return;
    }
    // SAFETY: a non-zero value is a function pointer `evdns_set_log_fn` stored.
    let f = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(c_int, *const c_char)>(f) };
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: the program's log function with a NUL-terminated message that outlives the call.
    unsafe { f(warning as c_int, c.as_ptr()) };
}

/// Runs `f` with the Rust base and the resolver of `d` (see [`with_base`]); `None` for a null `d`.
///
/// # Safety
/// `d` is null or a live evdns_base, whose event_base is live.
unsafe fn on_dns<R>(
    d: *mut evdns_base,
    what: &str,
    f: impl FnOnce(&mut EventBase, &Resolver, *mut CBase) -> R,
) -> Option<R> {
    if d.is_null() {
        dns_log(true, &format!("{what}: NULL evdns_base"));
        return None;
    }
    // SAFETY: the caller's contract: a live evdns_base (a plain pointer read).
    let cbase = unsafe { (*d).cbase };
    // SAFETY: its base is live (the caller's contract). The resolver (an `Rc`) is cloned where
    // the base is used, never on another thread; the clone keeps it alive should a C callback
    // that `f` runs free the evdns_base.
    unsafe {
        with_base(cbase, |b| {
            let resolver = (*d).resolver.clone();
            f(b, &resolver, cbase)
        })
    }
}

/// A C string as `&str`; `None` (with a warning) for NULL or bytes that are not UTF-8.
///
/// # Safety
/// `s` is null or NUL-terminated.
pub(crate) unsafe fn text<'a>(s: *const c_char, what: &str) -> Option<&'a str> {
    if s.is_null() {
        dns_log(true, &format!("{what}: NULL string"));
        return None;
    }
    // SAFETY: the caller's contract.
    let r = unsafe { CStr::from_ptr(s) }.to_str().ok();
    if r.is_none() {
        dns_log(true, &format!("{what}: not a UTF-8 string"));
    }
    r
}

// ---- creating and freeing ----

/// `evdns_base_new`: a resolver on `event_base` (NULL: the 1.x current base). With
/// `EVDNS_BASE_INITIALIZE_NAMESERVERS` it is configured from `/etc/resolv.conf` (and
/// `/etc/hosts`), as `evdns_base_resolv_conf_parse(DNS_OPTIONS_ALL)` does, adding 127.0.0.1 when
/// the file names no nameserver unless `EVDNS_BASE_NAMESERVERS_NO_DEFAULT`.
/// `EVDNS_BASE_DISABLE_WHEN_INACTIVE` is what revent always does: an idle resolver holds no event.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_new(event_base: *mut CBase, flags: c_int) -> *mut evdns_base {
    guard(ptr::null_mut(), || {
        let cbase = if event_base.is_null() {
            base::current()
        } else {
            event_base
        };
        if cbase.is_null() {
            dns_log(true, "evdns_base_new: no event base");
            return ptr::null_mut();
        }
        let d = Box::into_raw(Box::new(evdns_base {
            cbase,
            resolver: Resolver::new(revent_dns::ResolvConf::new()),
        }));
        if flags & EVDNS_BASE_INITIALIZE_NAMESERVERS != 0 {
            let mut opts = DNS_OPTIONS_ALL;
            if flags & EVDNS_BASE_NAMESERVERS_NO_DEFAULT != 0 {
                opts |= DNS_OPTION_NAMESERVERS_NO_DEFAULT;
            }
            // SAFETY: `d` was just made; the path is a literal.
            unsafe { resolv_conf_parse(d, opts, c"/etc/resolv.conf".as_ptr()) };
        }
        d
    })
}

/// `evdns_base_free`: every pending request ends, its callback run with `DNS_ERR_SHUTDOWN` (from
/// inside this call) when `fail_requests`, or dropped silently otherwise; then the resolver goes.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_free(d: *mut evdns_base, fail_requests: c_int) {
    guard((), || {
        if d.is_null() {
            return;
        }
        let _ = GLOBAL.compare_exchange(d, ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire);
        // SAFETY: a live evdns_base and its base (C's contract). The box (from Box::into_raw in
        // evdns_base_new, freed once: C's contract) is dropped where the base is used, as the
        // resolver's `Rc` must be.
        unsafe {
            on_dns(d, "evdns_base_free", |b, r, _| {
                r.shutdown(b, fail_requests != 0);
                drop(Box::from_raw(d));
            })
        };
    })
}

// ---- nameservers ----

/// Adds `addr`: 0, 3 when it was configured already (as libevent), -1 when the list is full.
unsafe fn add_nameserver(d: *mut evdns_base, addr: SocketAddr, what: &str) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    let r = unsafe {
        on_dns(d, what, |_, r, _| {
            let before = r.conf().nameservers().to_vec();
            if before.contains(&addr) {
                return 3;
            }
            r.configure(|c| c.with_nameserver(addr));
            if r.conf().nameservers().len() > before.len() {
                0
            } else {
                -1
            }
        })
    };
    r.unwrap_or(-1)
}

/// `evdns_base_nameserver_add`: an IPv4 nameserver (network byte order), port 53.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_nameserver_add(d: *mut evdns_base, address: c_ulong) -> c_int {
    guard(-1, || {
        let ip = Ipv4Addr::from((address as u32).to_ne_bytes());
        // SAFETY: C's contract.
        unsafe {
            add_nameserver(
                d,
                SocketAddr::new(ip.into(), 53),
                "evdns_base_nameserver_add",
            )
        }
    })
}

/// The formats `evdns_base_nameserver_ip_add` takes: `[v6]:port`, `[v6]`, `v6`, `v4:port`, `v4`.
fn parse_server(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    Some(SocketAddr::new(inner.parse::<Ipv6Addr>().ok()?.into(), 53))
}

/// `evdns_base_nameserver_ip_add`: a nameserver from text (port 53 unless given).
#[no_mangle]
pub unsafe extern "C" fn evdns_base_nameserver_ip_add(
    d: *mut evdns_base,
    ip_as_string: *const c_char,
) -> c_int {
    guard(-1, || {
        // SAFETY: C's contract.
        let Some(s) = (unsafe { text(ip_as_string, "evdns_base_nameserver_ip_add") }) else {
            return -1;
        };
        let Some(addr) = parse_server(s) else {
            dns_log(
                true,
                &format!("evdns_base_nameserver_ip_add: bad address {s:?}"),
            );
            return -1;
        };
        // SAFETY: C's contract.
        unsafe { add_nameserver(d, addr, "evdns_base_nameserver_ip_add") }
    })
}

/// A C socket address (IPv4 or IPv6) as Rust's.
///
/// # Safety
/// `sa` is null or points to `len` readable bytes.
pub(crate) unsafe fn from_sockaddr(sa: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller's contract; each read is within `len`, checked first.
    unsafe {
        match c_int::from((*sa).sa_family) {
            libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let a = ptr::read_unaligned(sa.cast::<libc::sockaddr_in>());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
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

/// A Rust socket address as C's, with its length.
pub(crate) fn to_sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: a sockaddr_in fits in a sockaddr_storage, which is aligned for it.
            unsafe { ptr::write(ptr::addr_of_mut!(ss).cast::<libc::sockaddr_in>(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for a sockaddr_in6.
            unsafe { ptr::write(ptr::addr_of_mut!(ss).cast::<libc::sockaddr_in6>(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as socklen_t)
}

/// `evdns_base_nameserver_sockaddr_add`: a nameserver by socket address (IPv4 or IPv6); `flags`
/// has no defined bits in 2.1.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_nameserver_sockaddr_add(
    d: *mut evdns_base,
    sa: *const sockaddr,
    len: socklen_t,
    flags: c_uint,
) -> c_int {
    let _ = flags;
    guard(-1, || {
        // SAFETY: C's contract: `len` readable bytes.
        let Some(addr) = (unsafe { from_sockaddr(sa, len) }) else {
            dns_log(
                true,
                "evdns_base_nameserver_sockaddr_add: not an IPv4 or IPv6 address",
            );
            return -1;
        };
        // SAFETY: C's contract.
        unsafe { add_nameserver(d, addr, "evdns_base_nameserver_sockaddr_add") }
    })
}

/// `evdns_base_count_nameservers`.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_count_nameservers(d: *mut evdns_base) -> c_int {
    guard(-1, || {
        // SAFETY: C's contract.
        unsafe {
            on_dns(d, "evdns_base_count_nameservers", |_, r, _| {
                r.conf().nameservers().len() as c_int
            })
        }
        .unwrap_or(-1)
    })
}

/// `evdns_base_get_nameserver_addr`: writes the `idx`th nameserver's address into `sa` and returns
/// its length; -1 past the end; the length needed, writing nothing, when `len` is too small.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_get_nameserver_addr(
    d: *mut evdns_base,
    idx: c_int,
    sa: *mut sockaddr,
    len: socklen_t,
) -> c_int {
    guard(-1, || {
        // SAFETY: C's contract.
        let addr = unsafe {
            on_dns(d, "evdns_base_get_nameserver_addr", |_, r, _| {
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| r.conf().nameservers().get(i).copied())
            })
        };
        let Some(addr) = addr.flatten() else {
            return -1;
        };
        let (ss, n) = to_sockaddr(addr);
        if n > len || sa.is_null() {
            return n as c_int;
        }
        // SAFETY: `sa` has `len` >= `n` writable bytes (C's contract).
        unsafe {
            ptr::copy_nonoverlapping(ptr::addr_of!(ss).cast::<u8>(), sa.cast::<u8>(), n as usize)
        };
        n as c_int
    })
}

/// `evdns_base_clear_nameservers_and_suspend`: requests wait (those in flight stop) until
/// `evdns_base_resume`, and go to the nameservers configured by then.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_clear_nameservers_and_suspend(d: *mut evdns_base) -> c_int {
    guard(-1, || {
        // SAFETY: C's contract.
        unsafe {
            on_dns(d, "evdns_base_clear_nameservers_and_suspend", |b, r, _| {
                r.clear_nameservers_and_suspend(b)
            })
        }
        .map_or(-1, |()| 0)
    })
}

/// `evdns_base_resume`: the requests that waited are sent again.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_resume(d: *mut evdns_base) -> c_int {
    guard(-1, || {
        // SAFETY: C's contract.
        unsafe { on_dns(d, "evdns_base_resume", |b, r, _| r.resume(b)) }.map_or(-1, |()| 0)
    })
}

// ---- configuration ----

/// `evdns_base_set_option`: `ndots`, `timeout` (seconds, fractions allowed), `max-timeouts`,
/// `max-inflight`, `attempts`, `randomize-case`, `initial-probe-timeout`,
/// `getaddrinfo-allow-skew`, `so-rcvbuf`, `so-sndbuf`, `bind-to` (the name may end with a colon,
/// as before libevent 2.0.3; see `ResolvConf::set_option` for the values). 0, or -1 for a bad
/// value. Other names are ignored (0), as libevent ignores them.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_set_option(
    d: *mut evdns_base,
    option: *const c_char,
    val: *const c_char,
) -> c_int {
    guard(-1, || {
        // SAFETY: C's contract.
        let (Some(opt), Some(val)) = (unsafe { text(option, "evdns_base_set_option") }, unsafe {
            text(val, "evdns_base_set_option")
        }) else {
            return -1;
        };
        let name = opt.strip_suffix(':').unwrap_or(opt);
        // SAFETY: C's contract.
        unsafe { set_option(d, name, val) }
    })
}

unsafe fn set_option(d: *mut evdns_base, name: &str, val: &str) -> c_int {
    const KNOWN: [&str; 11] = [
        "ndots",
        "timeout",
        "max-timeouts",
        "max-inflight",
        "attempts",
        "randomize-case",
        "initial-probe-timeout",
        "getaddrinfo-allow-skew",
        "so-rcvbuf",
        "so-sndbuf",
        "bind-to",
    ];
    if !KNOWN.contains(&name) {
        return 0;
    }
    let word = format!("{name}:{val}");
    // SAFETY: the caller's contract.
    let ok = unsafe {
        on_dns(d, "evdns_base_set_option", |_, r, _| {
            let mut ok = false;
            r.configure(|mut c| {
                ok = c.set_option(&word);
                c
            });
            ok
        })
    };
    if ok == Some(true) {
        0
    } else {
        dns_log(
            true,
            &format!("evdns_base_set_option: bad value {val:?} for {name}"),
        );
        -1
    }
}

/// `evdns_base_search_clear`.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_search_clear(d: *mut evdns_base) {
    guard((), || {
        // SAFETY: C's contract.
        unsafe {
            on_dns(d, "evdns_base_search_clear", |_, r, _| {
                r.configure(|c| c.without_search())
            })
        };
    })
}

/// `evdns_base_search_add`: appends a search domain.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_search_add(d: *mut evdns_base, domain: *const c_char) {
    guard((), || {
        // SAFETY: C's contract.
        let Some(dom) = (unsafe { text(domain, "evdns_base_search_add") }) else {
            return;
        };
        // SAFETY: C's contract.
        unsafe {
            on_dns(d, "evdns_base_search_add", |_, r, _| {
                r.configure(|c| c.with_search_domain(dom))
            })
        };
    })
}

/// `evdns_base_search_ndots_set`.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_search_ndots_set(d: *mut evdns_base, ndots: c_int) {
    guard((), || {
        let n = ndots.max(0) as u32;
        // SAFETY: C's contract.
        unsafe {
            on_dns(d, "evdns_base_search_ndots_set", |_, r, _| {
                r.configure(|c| c.with_ndots(n))
            })
        };
    })
}

/// The domain of this host's name (what libevent searches when resolv.conf names none).
fn hostname_domain() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: a writable buffer of that length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&c| c == 0)?;
    let name = std::str::from_utf8(&buf[..end]).ok()?;
    let (_, domain) = name.split_once('.')?;
    (!domain.is_empty()).then(|| domain.to_string())
}

/// Loads a hosts file (`None`: only `localhost`) into the resolver; false if it cannot be read.
fn load_hosts(r: &Resolver, path: Option<&str>) -> bool {
    let hosts = match path {
        Some(p) => match Hosts::from_file(p) {
            Ok(h) => h,
            Err(_) => return false,
        },
        None => Hosts::parse("127.0.0.1 localhost\n::1 localhost\n"),
    };
    r.update_hosts(|h| h.merge(&hosts));
    true
}

/// `evdns_base_resolv_conf_parse`'s work, on a resolver that is live.
unsafe fn resolv_conf_parse(d: *mut evdns_base, flags: c_int, filename: *const c_char) -> c_int {
    // SAFETY: C's contract.
    let Some(path) = (unsafe { text(filename, "evdns_base_resolv_conf_parse") }) else {
        return 1;
    };
    let path = path.to_string();
    // SAFETY: C's contract.
    let r = unsafe {
        on_dns(d, "evdns_base_resolv_conf_parse", |_, r, _| {
            if flags & DNS_OPTION_HOSTSFILE != 0 {
                load_hosts(r, Some("/etc/hosts"));
            }
            let read = std::fs::metadata(&path).and_then(|m| {
                if m.len() > 65535 {
                    Ok(Err(3))
                } else {
                    std::fs::read(&path).map(Ok)
                }
            });
            let text = match read {
                Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                Ok(Err(code)) => return code,
                Err(_) => {
                    apply_defaults(r, flags);
                    return 1;
                }
            };
            let mut search: Option<Vec<String>> = None;
            let mut servers = Vec::new();
            let mut options = Vec::new();
            for line in text.lines() {
                let line = line.split(['#', ';']).next().unwrap_or("");
                let mut words = line.split_ascii_whitespace();
                match words.next() {
                    Some("nameserver") => {
                        if let Some(a) = words.next().and_then(parse_server) {
                            servers.push(a);
                        }
                    }
                    Some("domain") => {
                        if let Some(w) = words.next() {
                            search = Some(vec![w.to_string()]);
                        }
                    }
                    Some("search") => search = Some(words.map(str::to_string).collect()),
                    Some("options") => options.extend(words.map(str::to_string)),
                    _ => {}
                }
            }
            r.configure(|mut c| {
                if flags & DNS_OPTION_NAMESERVERS != 0 {
                    for a in &servers {
                        c = c.with_nameserver(*a);
                    }
                }
                if flags & DNS_OPTION_SEARCH != 0 {
                    if let Some(s) = &search {
                        c = c.without_search();
                        for dom in s {
                            c = c.with_search_domain(dom);
                        }
                    }
                }
                if flags & DNS_OPTION_MISC != 0 {
                    for o in &options {
                        c.set_option(o);
                    }
                }
                c
            });
            let none = r.conf().nameservers().is_empty();
            apply_defaults(r, flags);
            if none && flags & DNS_OPTION_NAMESERVERS != 0 {
                6
            } else {
                0
            }
        })
    };
    r.unwrap_or(-1)
}

/// What libevent does after reading (or failing to read) resolv.conf: 127.0.0.1 when there is
/// no nameserver (unless told not to), this host's domain when there is no search domain.
fn apply_defaults(r: &Resolver, flags: c_int) {
    r.configure(|mut c| {
        if flags & DNS_OPTION_NAMESERVERS != 0
            && flags & DNS_OPTION_NAMESERVERS_NO_DEFAULT == 0
            && c.nameservers().is_empty()
        {
            c = c.with_nameserver(SocketAddr::from(([127, 0, 0, 1], 53)));
        }
        if flags & DNS_OPTION_SEARCH != 0 && c.search().is_empty() {
            if let Some(dom) = hostname_domain() {
                c = c.with_search_domain(&dom);
            }
        }
        c
    });
}

/// `evdns_base_resolv_conf_parse`: reads `filename` as resolv.conf, taking what `flags` asks for
/// (DNS_OPTION_NAMESERVERS, _SEARCH, _MISC, _HOSTSFILE: /etc/hosts). 0; 1 when the file cannot
/// be opened, 3 when it is over 64 KiB, 6 when it names no nameserver (127.0.0.1 is then
/// configured, unless DNS_OPTION_NAMESERVERS_NO_DEFAULT).
#[no_mangle]
pub unsafe extern "C" fn evdns_base_resolv_conf_parse(
    d: *mut evdns_base,
    flags: c_int,
    filename: *const c_char,
) -> c_int {
    // SAFETY: C's contract.
    guard(-1, || unsafe { resolv_conf_parse(d, flags, filename) })
}

/// `evdns_base_load_hosts`: adds the entries of a hosts file (NULL: just `localhost`), used by
/// `evdns_getaddrinfo`. 0, or -1 when the file cannot be read.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_load_hosts(
    d: *mut evdns_base,
    hosts_fname: *const c_char,
) -> c_int {
    guard(-1, || {
        let path = if hosts_fname.is_null() {
            None
        } else {
            // SAFETY: C's contract.
            match unsafe { text(hosts_fname, "evdns_base_load_hosts") } {
                Some(p) => Some(p),
                None => return -1,
            }
        };
        // SAFETY: C's contract.
        let ok = unsafe { on_dns(d, "evdns_base_load_hosts", |_, r, _| load_hosts(r, path)) };
        if ok == Some(true) {
            0
        } else {
            -1
        }
    })
}

/// `evdns_base_clear_host_addresses`: forgets every hosts-file entry.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_clear_host_addresses(d: *mut evdns_base) {
    guard((), || {
        // SAFETY: C's contract.
        unsafe {
            on_dns(d, "evdns_base_clear_host_addresses", |_, r, _| {
                r.update_hosts(|h| *h = Hosts::new())
            })
        };
    })
}

// ---- lookups ----

/// Calls the C callback of a finished request with libevent's arguments.
fn deliver(
    b: &mut EventBase,
    cbase: *mut CBase,
    cb: evdns_callback_type,
    arg: *mut c_void,
    r: Outcome,
) {
    let Some(cb) = cb else { return };
    let ttl = |t: u32| t.min(i32::MAX as u32) as c_int;
    match r {
        Ok(a) => match a.records {
            Records::Ipv4(v) => {
                let mut raw: Vec<u32> =
                    v.iter().map(|ip| u32::from_ne_bytes(ip.octets())).collect();
                // SAFETY: the program's callback; the addresses live until it returns; `cbase`'s
                // Rust base is `b`, running this callback.
                unsafe {
                    call_out(cbase, b, || {
                        cb(
                            DNS_ERR_NONE,
                            DNS_IPV4_A,
                            raw.len() as c_int,
                            ttl(a.ttl),
                            raw.as_mut_ptr().cast(),
                            arg,
                        )
                    })
                }
            }
            Records::Ipv6(v) => {
                let mut raw: Vec<[u8; 16]> = v.iter().map(Ipv6Addr::octets).collect();
                // SAFETY: as above.
                unsafe {
                    call_out(cbase, b, || {
                        cb(
                            DNS_ERR_NONE,
                            DNS_IPV6_AAAA,
                            raw.len() as c_int,
                            ttl(a.ttl),
                            raw.as_mut_ptr().cast(),
                            arg,
                        )
                    })
                }
            }
            Records::Ptr(names) => {
                // libevent passes one name: a pointer to a `char *`.
                let name = CString::new(
                    names
                        .into_iter()
                        .next()
                        .unwrap_or_default()
                        .replace('\0', ""),
                )
                .unwrap_or_default();
                let mut p: *const c_char = name.as_ptr();
                // SAFETY: as above; `name` outlives the call.
                unsafe {
                    call_out(cbase, b, || {
                        cb(
                            DNS_ERR_NONE,
                            DNS_PTR,
                            1,
                            ttl(a.ttl),
                            ptr::addr_of_mut!(p).cast(),
                            arg,
                        )
                    })
                }
            }
        },
        Err(e) => {
            // SAFETY: as above.
            unsafe { call_out(cbase, b, || cb(e.code(), 0, 0, 0, ptr::null_mut(), arg)) }
        }
    }
}

enum Ask<'a> {
    V4(&'a str),
    V6(&'a str),
    Reverse(IpAddr),
}

/// Starts a request: its box is returned to C and freed when the callback has run.
unsafe fn resolve(
    d: *mut evdns_base,
    what: &str,
    ask: Ask<'_>,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> *mut evdns_request {
    let no_search = |n: &str| {
        if flags & DNS_QUERY_NO_SEARCH != 0 && !n.ends_with('.') {
            format!("{n}.")
        } else {
            n.to_string()
        }
    };
    let work = |b: &mut EventBase, r: &Resolver, cbase: *mut CBase| {
        let p = Box::into_raw(Box::new(evdns_request { cbase, req: None }));
        let owner = Owner(p);
        let done = move |b: &mut EventBase, o: Outcome| {
            if o == Err(DnsError::Shutdown) {
                // evdns_base_free reports the shutdown from the loop, after it returned.
                let _ = b.once(-1, What::NONE, None, move |b, _| {
                    let _owner = owner;
                    deliver(b, cbase, cb, arg, o);
                });
                return;
            }
            let _owner = owner;
            deliver(b, cbase, cb, arg, o);
        };
        let req = match ask {
            Ask::V4(n) => r.resolve_ipv4(b, &no_search(n), done),
            Ask::V6(n) => r.resolve_ipv6(b, &no_search(n), done),
            Ask::Reverse(ip) => r.resolve_reverse(b, ip, done),
        };
        // SAFETY: the box lives until the callback runs, which is from the loop, later.
        unsafe { (*p).req = Some(req) };
        p
    };
    // SAFETY: C's contract.
    let r = unsafe { on_dns(d, what, work) };
    r.unwrap_or(ptr::null_mut())
}

/// `evdns_base_resolve_ipv4`: A records of `name` (through the search list unless
/// DNS_QUERY_NO_SEARCH). The callback runs once, from the loop.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_resolve_ipv4(
    d: *mut evdns_base,
    name: *const c_char,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> *mut evdns_request {
    guard(ptr::null_mut(), || {
        // SAFETY: C's contract.
        let Some(n) = (unsafe { text(name, "evdns_base_resolve_ipv4") }) else {
            return ptr::null_mut();
        };
        // SAFETY: C's contract.
        unsafe { resolve(d, "evdns_base_resolve_ipv4", Ask::V4(n), flags, cb, arg) }
    })
}

/// `evdns_base_resolve_ipv6`: AAAA records of `name`.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_resolve_ipv6(
    d: *mut evdns_base,
    name: *const c_char,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> *mut evdns_request {
    guard(ptr::null_mut(), || {
        // SAFETY: C's contract.
        let Some(n) = (unsafe { text(name, "evdns_base_resolve_ipv6") }) else {
            return ptr::null_mut();
        };
        // SAFETY: C's contract.
        unsafe { resolve(d, "evdns_base_resolve_ipv6", Ask::V6(n), flags, cb, arg) }
    })
}

/// `evdns_base_resolve_reverse`: the PTR name of an IPv4 address.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_resolve_reverse(
    d: *mut evdns_base,
    addr: *const libc::in_addr,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> *mut evdns_request {
    guard(ptr::null_mut(), || {
        if addr.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a readable in_addr (C's contract).
        let ip = Ipv4Addr::from(unsafe { (*addr).s_addr }.to_ne_bytes());
        // SAFETY: C's contract.
        unsafe {
            resolve(
                d,
                "evdns_base_resolve_reverse",
                Ask::Reverse(ip.into()),
                flags,
                cb,
                arg,
            )
        }
    })
}

/// `evdns_base_resolve_reverse_ipv6`: the PTR name of an IPv6 address.
#[no_mangle]
pub unsafe extern "C" fn evdns_base_resolve_reverse_ipv6(
    d: *mut evdns_base,
    addr: *const libc::in6_addr,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> *mut evdns_request {
    guard(ptr::null_mut(), || {
        if addr.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a readable in6_addr (C's contract).
        let ip = Ipv6Addr::from(unsafe { (*addr).s6_addr });
        // SAFETY: C's contract.
        unsafe {
            resolve(
                d,
                "evdns_base_resolve_reverse_ipv6",
                Ask::Reverse(ip.into()),
                flags,
                cb,
                arg,
            )
        }
    })
}

/// `evdns_cancel_request`: the request stops; its callback runs from the loop with
/// DNS_ERR_CANCEL. Must not be called once the callback has run (libevent's rule).
#[no_mangle]
pub unsafe extern "C" fn evdns_cancel_request(d: *mut evdns_base, req: *mut evdns_request) {
    let _ = d;
    guard((), || {
        if req.is_null() {
            return;
        }
        // SAFETY: a live request (C's contract: its callback has not run); a plain pointer read.
        let cbase = unsafe { (*req).cbase };
        // SAFETY: its base is live; the request's handle is read where the base is used.
        unsafe {
            with_base(cbase, |b| {
                if let Some(handle) = (*req).req.clone() {
                    handle.cancel_and_notify(b);
                }
            })
        };
    })
}

// ---- getaddrinfo ----

const AI_PASSIVE: c_int = libc::AI_PASSIVE;
const AI_CANONNAME: c_int = libc::AI_CANONNAME;
const AI_NUMERICHOST: c_int = libc::AI_NUMERICHOST;
const AI_NUMERICSERV: c_int = libc::AI_NUMERICSERV;

/// The EVUTIL_EAI_* code for a failed lookup (libevent's mapping: only NXDOMAIN is NONAME).
pub(crate) fn eai_code(e: DnsError) -> c_int {
    match e {
        DnsError::NotExist => libc::EAI_NONAME,
        DnsError::Cancelled => EVUTIL_EAI_CANCEL,
        _ => libc::EAI_FAIL,
    }
}

/// What `evdns_getaddrinfo` was asked, checked.
struct Hints {
    flags: c_int,
    family: c_int,
    /// The (socktype, protocol) pairs each address gets.
    kinds: Vec<(c_int, c_int)>,
}

/// The hints as libevent reads them; Err(EAI code) for what it refuses.
///
/// # Safety
/// `h` is null or a readable addrinfo.
unsafe fn read_hints(h: *const libc::addrinfo) -> Result<Hints, c_int> {
    // SAFETY: the caller's contract.
    let (flags, family, socktype, protocol) = match unsafe { h.as_ref() } {
        Some(h) => (h.ai_flags, h.ai_family, h.ai_socktype, h.ai_protocol),
        None => (0, libc::AF_UNSPEC, 0, 0),
    };
    if ![libc::AF_UNSPEC, libc::AF_INET, libc::AF_INET6].contains(&family) {
        return Err(libc::EAI_FAMILY);
    }
    let infer = |socktype: c_int| match socktype {
        libc::SOCK_STREAM => libc::IPPROTO_TCP,
        libc::SOCK_DGRAM => libc::IPPROTO_UDP,
        _ => 0,
    };
    let kinds = match (socktype, protocol) {
        (0, 0) => vec![
            (libc::SOCK_STREAM, libc::IPPROTO_TCP),
            (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        ],
        (0, libc::IPPROTO_TCP) => vec![(libc::SOCK_STREAM, libc::IPPROTO_TCP)],
        (0, libc::IPPROTO_UDP) => vec![(libc::SOCK_DGRAM, libc::IPPROTO_UDP)],
        (s, 0) => vec![(s, infer(s))],
        (s, p) => vec![(s, p)],
    };
    Ok(Hints {
        flags,
        family,
        kinds,
    })
}

/// The port of `servname` (a number, or a service name unless AI_NUMERICSERV); Err(EAI_NONAME).
///
/// # Safety
/// `servname` is null or NUL-terminated.
unsafe fn read_port(servname: *const c_char, hints: &Hints) -> Result<u16, c_int> {
    if servname.is_null() {
        return Ok(0);
    }
    // SAFETY: the caller's contract.
    let s = unsafe { CStr::from_ptr(servname) };
    if let Some(n) = s.to_str().ok().and_then(|t| t.parse::<u16>().ok()) {
        return Ok(n);
    }
    if hints.flags & AI_NUMERICSERV != 0 {
        return Err(libc::EAI_NONAME);
    }
    let proto: &CStr = match hints.kinds.first() {
        Some(&(libc::SOCK_DGRAM, _)) => c"udp",
        _ => c"tcp",
    };
    // SAFETY: NUL-terminated strings; the entry is read before any other getservbyname call on
    // this thread.
    let ent = unsafe { libc::getservbyname(s.as_ptr(), proto.as_ptr()) };
    if ent.is_null() {
        return Err(libc::EAI_NONAME);
    }
    // SAFETY: a non-null servent from the C library.
    Ok(u16::from_be(unsafe { (*ent).s_port } as u16))
}

/// The addresses as a C `struct addrinfo` list that the C library's `freeaddrinfo` (which
/// `evutil_freeaddrinfo` is) frees: each node and its address in one `malloc` block, the
/// canonical name (first node) its own. Null if out of memory.
fn addrinfo_list(addrs: &[SocketAddr], hints: &Hints, canon: Option<&str>) -> *mut libc::addrinfo {
    let mut head: *mut libc::addrinfo = ptr::null_mut();
    let mut tail: *mut *mut libc::addrinfo = &mut head;
    let node = std::mem::size_of::<libc::addrinfo>();
    for &a in addrs {
        let (ss, len) = to_sockaddr(a);
        for &(socktype, protocol) in &hints.kinds {
            // SAFETY: malloc of a node plus its address.
            let block = unsafe { libc::calloc(1, node + len as usize) }.cast::<u8>();
            if block.is_null() {
                // SAFETY: a list built here.
                unsafe { libc::freeaddrinfo(head) };
                return ptr::null_mut();
            }
            let ai = block.cast::<libc::addrinfo>();
            // SAFETY: `block` has room for the node and, after it, `len` bytes of address.
            unsafe {
                let sa = block.add(node);
                ptr::copy_nonoverlapping(ptr::addr_of!(ss).cast::<u8>(), sa, len as usize);
                (*ai).ai_flags = 0;
                (*ai).ai_family = c_int::from(ss.ss_family);
                (*ai).ai_socktype = socktype;
                (*ai).ai_protocol = protocol;
                (*ai).ai_addrlen = len;
                (*ai).ai_addr = sa.cast();
                (*ai).ai_canonname = ptr::null_mut();
                (*ai).ai_next = ptr::null_mut();
                *tail = ai;
                tail = ptr::addr_of_mut!((*ai).ai_next);
            }
        }
    }
    if let (Some(name), false) = (canon, head.is_null()) {
        if let Ok(c) = CString::new(name) {
            // SAFETY: a NUL-terminated string; strdup's copy is freed by freeaddrinfo.
            unsafe { (*head).ai_canonname = libc::strdup(c.as_ptr()) };
        }
    }
    head
}

/// `evdns_getaddrinfo`: getaddrinfo without blocking. Numeric hosts, a NULL `nodename` (the
/// loopback or, with AI_PASSIVE, the any address), hosts-file names and bad arguments are answered
/// at once: the callback runs inside this call, which returns NULL. Otherwise A and AAAA queries
/// go out (as the family asks) and the callback runs from the loop with 0 and a list for
/// `evutil_freeaddrinfo`, or an EVUTIL_EAI_* code.
#[no_mangle]
pub unsafe extern "C" fn evdns_getaddrinfo(
    d: *mut evdns_base,
    nodename: *const c_char,
    servname: *const c_char,
    hints_in: *const libc::addrinfo,
    cb: evdns_getaddrinfo_cb,
    arg: *mut c_void,
) -> *mut evdns_getaddrinfo_request {
    guard(ptr::null_mut(), || {
        let Some(cbf) = cb else {
            return ptr::null_mut();
        };
        // SAFETY: the program's callback (a failure reported at once, as libevent does).
        let fail = |code: c_int| unsafe { cbf(code, ptr::null_mut(), arg) };
        // SAFETY: C's contract.
        let hints = match unsafe { read_hints(hints_in) } {
            Ok(h) => h,
            Err(code) => {
                fail(code);
                return ptr::null_mut();
            }
        };
        if nodename.is_null() && servname.is_null() {
            fail(libc::EAI_NONAME);
            return ptr::null_mut();
        }
        // SAFETY: C's contract.
        let port = match unsafe { read_port(servname, &hints) } {
            Ok(p) => p,
            Err(code) => {
                fail(code);
                return ptr::null_mut();
            }
        };
        let family = match hints.family {
            libc::AF_INET => Family::V4,
            libc::AF_INET6 => Family::V6,
            _ => Family::Any,
        };
        if nodename.is_null() {
            let passive = hints.flags & AI_PASSIVE != 0;
            let v4: IpAddr = if passive {
                Ipv4Addr::UNSPECIFIED
            } else {
                Ipv4Addr::LOCALHOST
            }
            .into();
            let v6: IpAddr = if passive {
                Ipv6Addr::UNSPECIFIED
            } else {
                Ipv6Addr::LOCALHOST
            }
            .into();
            let addrs: Vec<SocketAddr> = [v4, v6]
                .into_iter()
                .filter(|ip| family != if ip.is_ipv4() { Family::V6 } else { Family::V4 })
                .map(|ip| SocketAddr::new(ip, port))
                .collect();
            let list = addrinfo_list(&addrs, &hints, None);
            // SAFETY: the program's callback, given the list to free.
            unsafe { cbf(if list.is_null() { libc::EAI_MEMORY } else { 0 }, list, arg) };
            return ptr::null_mut();
        }
        // SAFETY: C's contract.
        let Some(host) = (unsafe { text(nodename, "evdns_getaddrinfo") }) else {
            fail(libc::EAI_NONAME);
            return ptr::null_mut();
        };
        let numeric = host.parse::<IpAddr>().is_ok()
            || host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok());
        if hints.flags & AI_NUMERICHOST != 0 && !numeric {
            fail(libc::EAI_NONAME);
            return ptr::null_mut();
        }
        let canon = (hints.flags & AI_CANONNAME != 0).then(|| host.to_string());
        let work = |b: &mut EventBase, r: &Resolver, cbase: *mut CBase| {
            let p = Box::into_raw(Box::new(evdns_getaddrinfo_request {
                cbase,
                lookup: None,
                cb,
                arg,
            }));
            let owner = Owner(p);
            let done = move |b: &mut EventBase, o: revent_dns::AddrOutcome| {
                let _owner = owner;
                let (code, list) = match o {
                    Ok(addrs) => {
                        let l = addrinfo_list(&addrs, &hints, canon.as_deref());
                        (if l.is_null() { libc::EAI_MEMORY } else { 0 }, l)
                    }
                    Err(DnsError::NoData) if numeric => (libc::EAI_NONAME, ptr::null_mut()),
                    Err(e) => (eai_code(e), ptr::null_mut()),
                };
                // SAFETY: the program's callback, given the list to free; `cbase`'s Rust
                // base is `b`, used on this thread now.
                unsafe { call_out(cbase, b, || cbf(code, list, arg)) };
            };
            match r.getaddrinfo(b, host, port, family, done) {
                Some(lookup) => {
                    // SAFETY: the box lives until the callback runs (from the loop, later).
                    unsafe { (*p).lookup = Some(lookup) };
                    p
                }
                None => ptr::null_mut(),
            }
        };
        // SAFETY: C's contract.
        let r = unsafe { on_dns(d, "evdns_getaddrinfo", work) };
        match r {
            Some(p) => p,
            None => {
                fail(libc::EAI_FAIL);
                ptr::null_mut()
            }
        }
    })
}

/// `evdns_getaddrinfo_cancel`: the lookup stops, and its callback runs from the loop with
/// EVUTIL_EAI_CANCEL. Must not be called once the callback has run (libevent's rule).
#[no_mangle]
pub unsafe extern "C" fn evdns_getaddrinfo_cancel(req: *mut evdns_getaddrinfo_request) {
    guard((), || {
        if req.is_null() {
            return;
        }
        // SAFETY: a live request (C's contract); a plain pointer read.
        let cbase = unsafe { (*req).cbase };
        // SAFETY: its base is live; the request is read where the base is used, before the
        // cancel frees it.
        unsafe {
            with_base(cbase, |b| {
                let (lookup, cb, arg) = ((*req).lookup.clone(), (*req).cb, (*req).arg);
                let (Some(lookup), Some(cbf)) = (lookup, cb) else {
                    return;
                };
                if lookup.cancel(b) {
                    let _ = b.once(-1, What::NONE, None, move |b, _| {
                        // SAFETY: the program's callback; `cbase`'s Rust base is `b`.
                        call_out(cbase, b, || cbf(EVUTIL_EAI_CANCEL, ptr::null_mut(), arg))
                    });
                }
            })
        };
    })
}

// ---- misc ----

/// `evdns_err_to_string`: libevent's text for each DNS_ERR_* code.
#[no_mangle]
pub extern "C" fn evdns_err_to_string(err: c_int) -> *const c_char {
    let s: &'static CStr = match err {
        0 => c"no error",
        1 => c"misformatted query",
        2 => c"server failed",
        3 => c"name does not exist",
        4 => c"query not implemented",
        5 => c"refused",
        65 => c"reply truncated or ill-formed",
        66 => c"unknown",
        67 => c"request timed out",
        68 => c"dns subsystem shut down",
        69 => c"dns request canceled",
        70 => c"no records in the reply",
        _ => c"[Unknown error code]",
    };
    s.as_ptr()
}

/// `evdns_set_log_fn`: where DNS messages go (NULL: the event log).
#[no_mangle]
pub extern "C" fn evdns_set_log_fn(f: evdns_debug_log_fn_type) {
    LOG_FN.store(f.map_or(0, |f| f as usize), Ordering::Release);
}

/// `evdns_set_transaction_id_fn`: no effect, as in libevent since 2.0.4 (transaction ids come
/// from the library's own secure generator).
#[no_mangle]
pub extern "C" fn evdns_set_transaction_id_fn(f: Option<unsafe extern "C" fn() -> u16>) {
    let _ = f;
}

/// `evdns_set_random_bytes_fn`: no effect, as in libevent since 2.0.4.
#[no_mangle]
pub extern "C" fn evdns_set_random_bytes_fn(f: Option<unsafe extern "C" fn(*mut c_char, usize)>) {
    let _ = f;
}

// ---- dns_compat.h: the global resolver of the 1.x API ----

fn global() -> *mut evdns_base {
    GLOBAL.load(Ordering::Acquire)
}

/// `evdns_init`: the global resolver, on the current base (`event_init`'s), configured from
/// /etc/resolv.conf. 0, or -1 without a current base.
#[no_mangle]
pub extern "C" fn evdns_init() -> c_int {
    guard(-1, || {
        if !global().is_null() {
            return 0;
        }
        // SAFETY: a null event base means the current one.
        let d = unsafe { evdns_base_new(ptr::null_mut(), EVDNS_BASE_INITIALIZE_NAMESERVERS) };
        if d.is_null() {
            return -1;
        }
        GLOBAL.store(d, Ordering::Release);
        0
    })
}

/// `evdns_get_global_base`: the resolver `evdns_init` made, or NULL.
#[no_mangle]
pub extern "C" fn evdns_get_global_base() -> *mut evdns_base {
    global()
}

/// `evdns_shutdown`: frees the global resolver (see `evdns_base_free`).
#[no_mangle]
pub extern "C" fn evdns_shutdown(fail_requests: c_int) {
    guard((), || {
        let d = GLOBAL.swap(ptr::null_mut(), Ordering::AcqRel);
        if !d.is_null() {
            // SAFETY: the global resolver, freed once (it left GLOBAL above).
            unsafe { evdns_base_free(d, fail_requests) };
        }
    })
}

/// `evdns_base_resolve_ipv4` on the global resolver: 0, or -1.
#[no_mangle]
pub unsafe extern "C" fn evdns_resolve_ipv4(
    name: *const c_char,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    let r = unsafe { evdns_base_resolve_ipv4(global(), name, flags, cb, arg) };
    if r.is_null() {
        -1
    } else {
        0
    }
}

/// `evdns_base_resolve_ipv6` on the global resolver: 0, or -1.
#[no_mangle]
pub unsafe extern "C" fn evdns_resolve_ipv6(
    name: *const c_char,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    let r = unsafe { evdns_base_resolve_ipv6(global(), name, flags, cb, arg) };
    if r.is_null() {
        -1
    } else {
        0
    }
}

/// `evdns_base_resolve_reverse` on the global resolver: 0, or -1.
#[no_mangle]
pub unsafe extern "C" fn evdns_resolve_reverse(
    addr: *const libc::in_addr,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    let r = unsafe { evdns_base_resolve_reverse(global(), addr, flags, cb, arg) };
    if r.is_null() {
        -1
    } else {
        0
    }
}

/// `evdns_base_resolve_reverse_ipv6` on the global resolver: 0, or -1.
#[no_mangle]
pub unsafe extern "C" fn evdns_resolve_reverse_ipv6(
    addr: *const libc::in6_addr,
    flags: c_int,
    cb: evdns_callback_type,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    let r = unsafe { evdns_base_resolve_reverse_ipv6(global(), addr, flags, cb, arg) };
    if r.is_null() {
        -1
    } else {
        0
    }
}

/// `evdns_base_count_nameservers` on the global resolver.
#[no_mangle]
pub extern "C" fn evdns_count_nameservers() -> c_int {
    // SAFETY: the global resolver or null (reported).
    unsafe { evdns_base_count_nameservers(global()) }
}

/// `evdns_base_clear_nameservers_and_suspend` on the global resolver.
#[no_mangle]
pub extern "C" fn evdns_clear_nameservers_and_suspend() -> c_int {
    // SAFETY: as above.
    unsafe { evdns_base_clear_nameservers_and_suspend(global()) }
}

/// `evdns_base_resume` on the global resolver.
#[no_mangle]
pub extern "C" fn evdns_resume() -> c_int {
    // SAFETY: as above.
    unsafe { evdns_base_resume(global()) }
}

/// `evdns_base_nameserver_add` on the global resolver.
#[no_mangle]
pub extern "C" fn evdns_nameserver_add(address: c_ulong) -> c_int {
    // SAFETY: as above.
    unsafe { evdns_base_nameserver_add(global(), address) }
}

/// `evdns_base_nameserver_ip_add` on the global resolver.
#[no_mangle]
pub unsafe extern "C" fn evdns_nameserver_ip_add(ip_as_string: *const c_char) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    unsafe { evdns_base_nameserver_ip_add(global(), ip_as_string) }
}

/// `evdns_set_option`: as `evdns_base_set_option` (`flags`, which selected option classes in
/// 1.x, is not used, as in libevent 2.1).
#[no_mangle]
pub unsafe extern "C" fn evdns_set_option(
    option: *const c_char,
    val: *const c_char,
    flags: c_int,
) -> c_int {
    let _ = flags;
    // SAFETY: forwarded with the caller's contract.
    unsafe { evdns_base_set_option(global(), option, val) }
}

/// `evdns_base_resolv_conf_parse` on the global resolver.
#[no_mangle]
pub unsafe extern "C" fn evdns_resolv_conf_parse(flags: c_int, filename: *const c_char) -> c_int {
    // SAFETY: forwarded with the caller's contract.
    unsafe { evdns_base_resolv_conf_parse(global(), flags, filename) }
}

/// `evdns_base_search_clear` on the global resolver.
#[no_mangle]
pub extern "C" fn evdns_search_clear() {
    // SAFETY: the global resolver or null (reported).
    unsafe { evdns_base_search_clear(global()) }
}

/// `evdns_base_search_add` on the global resolver.
#[no_mangle]
pub unsafe extern "C" fn evdns_search_add(domain: *const c_char) {
    // SAFETY: forwarded with the caller's contract.
    unsafe { evdns_base_search_add(global(), domain) }
}

/// `evdns_base_search_ndots_set` on the global resolver.
#[no_mangle]
pub extern "C" fn evdns_search_ndots_set(ndots: c_int) {
    // SAFETY: the global resolver or null (reported).
    unsafe { evdns_base_search_ndots_set(global(), ndots) }
}

/// The resolver behind a C `evdns_base` (for `bufferevent_socket_connect_hostname`).
///
/// # Safety
/// `d` is a live evdns_base.
pub(crate) unsafe fn resolver_of(d: *mut evdns_base) -> Resolver {
    // SAFETY: the caller's contract.
    unsafe { (*d).resolver.clone() }
}
