//! `event2/util.h`: evutil, the portable socket, string, address, time and random-number helpers.
//!
//! Each function gives what libevent 2.1 gives on Linux, checked by `tests/c/util.c` against
//! Debian's libevent. Where libevent has its own behaviour rather than the C library's, so does this
//! module: `evutil_inet_pton`/`ntop` are libevent's own parsers and printers (they accept `01.2.3.4`
//! and `0x1::`, print `::102:0` where glibc prints `::1.2.0.0`), `evutil_parse_sockaddr_port` reads
//! the port as `atoi` does, and `evutil_ascii_strcasecmp` compares bytes as signed chars.
//! `evutil_snprintf` and `evutil_vsnprintf` are variadic, so they live in `c/evutil_printf.c`.
//!
//! `evutil_getaddrinfo` is the C library's `getaddrinfo`, as libevent's is on Linux (glibc implements
//! every `EVUTIL_AI_*` flag itself, `AI_ADDRCONFIG` included, so libevent adds nothing there: its
//! numeric fast paths serve systems without `getaddrinfo` and `evdns`).
//!
//! The secure random number generator is the kernel's: `getrandom(2)` for every request, never a
//! generator of this library's own.

use crate::{evutil_socket_t, guard, logging, mem};
use libc::{addrinfo, c_char, c_int, c_uint, c_void, size_t, sockaddr, timeval};
use std::ffi::{CStr, CString};
use std::os::fd::BorrowedFd;
use std::ptr;
use std::sync::Mutex;

/// Runs `f` on `fd` as a borrowed descriptor; -1 for a negative fd.
fn with_fd(fd: evutil_socket_t, f: impl FnOnce(BorrowedFd<'_>) -> std::io::Result<()>) -> c_int {
    if fd < 0 {
        return -1;
    }
    // SAFETY: the C caller owns `fd` and keeps it open across this call; it is only borrowed here.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    match f(b) {
        Ok(()) => 0,
        Err(e) => {
            log::warn!("fd {fd}: {e}");
            -1
        }
    }
}

// ---- sockets ----

/// `evutil_make_socket_nonblocking`: sets `O_NONBLOCK`. 0, or -1 (logged).
#[no_mangle]
pub extern "C" fn evutil_make_socket_nonblocking(fd: evutil_socket_t) -> c_int {
    guard(-1, || with_fd(fd, |b| revent::util::make_nonblocking(b)))
}

/// `evutil_make_socket_closeonexec`: sets `FD_CLOEXEC`. 0, or -1 (logged).
#[no_mangle]
pub extern "C" fn evutil_make_socket_closeonexec(fd: evutil_socket_t) -> c_int {
    guard(-1, || with_fd(fd, |b| revent::util::make_closeonexec(b)))
}

/// `evutil_socketpair`: `socketpair(2)` (0, or -1 with `errno` set).
#[no_mangle]
pub unsafe extern "C" fn evutil_socketpair(
    domain: c_int,
    type_: c_int,
    protocol: c_int,
    sv: *mut evutil_socket_t,
) -> c_int {
    if sv.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    // SAFETY: `sv` points to two writable ints (the caller's contract).
    unsafe { libc::socketpair(domain, type_, protocol, sv) }
}

/// `evutil_closesocket`: `close(2)`.
#[no_mangle]
pub extern "C" fn evutil_closesocket(fd: evutil_socket_t) -> c_int {
    // SAFETY: closing a descriptor the caller owns (a bad one gives EBADF).
    unsafe { libc::close(fd) }
}

/// Sets an int socket option to 1; `setsockopt`'s result (0, or -1 with `errno` set), as libevent
/// returns it.
fn enable_opt(fd: evutil_socket_t, level: c_int, name: c_int) -> c_int {
    let one: c_int = 1;
    // SAFETY: `one` is a live int of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            ptr::addr_of!(one).cast(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        )
    }
}

/// `evutil_make_listen_socket_reuseable`: `SO_REUSEADDR`, so a listener can bind again at once after
/// a restart.
#[no_mangle]
pub extern "C" fn evutil_make_listen_socket_reuseable(fd: evutil_socket_t) -> c_int {
    enable_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)
}

/// `evutil_make_listen_socket_reuseable_port`: `SO_REUSEPORT`, so several sockets can listen on one
/// port.
#[no_mangle]
pub extern "C" fn evutil_make_listen_socket_reuseable_port(fd: evutil_socket_t) -> c_int {
    enable_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)
}

/// `evutil_make_listen_socket_ipv6only`: `IPV6_V6ONLY`, so an IPv6 listener does not take IPv4
/// connections.
#[no_mangle]
pub extern "C" fn evutil_make_listen_socket_ipv6only(fd: evutil_socket_t) -> c_int {
    enable_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)
}

/// `evutil_make_tcp_listen_socket_deferred`: `TCP_DEFER_ACCEPT`, so `accept` only sees connections
/// that have sent data.
#[no_mangle]
pub extern "C" fn evutil_make_tcp_listen_socket_deferred(fd: evutil_socket_t) -> c_int {
    enable_opt(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT)
}

fn set_errno(e: c_int) {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = e };
}

// ---- strings ----

/// `evutil_strtoll`: `strtoll(3)`.
#[no_mangle]
pub unsafe extern "C" fn evutil_strtoll(
    s: *const c_char,
    endptr: *mut *mut c_char,
    base: c_int,
) -> i64 {
    // SAFETY: the caller's string and end pointer, as strtoll takes them.
    unsafe { libc::strtoll(s, endptr, base) }
}

/// ASCII-only lowering, as a signed char (libevent compares `char`s, which are signed here).
fn lower(c: u8) -> i8 {
    c.to_ascii_lowercase() as i8
}

/// Compares up to `n` bytes of two NUL-terminated strings, ignoring ASCII case: -1, 0 or 1.
///
/// # Safety
/// Both are readable up to their NUL or `n` bytes.
unsafe fn casecmp(a: *const c_char, b: *const c_char, n: usize) -> c_int {
    for i in 0..n {
        // SAFETY: the caller's contract; we stop at the first NUL.
        let (x, y) = unsafe { (lower(*a.add(i) as u8), lower(*b.add(i) as u8)) };
        if x != y {
            return if x < y { -1 } else { 1 };
        }
        if x == 0 {
            return 0;
        }
    }
    0
}

/// `evutil_ascii_strcasecmp`: `strcasecmp` that lowers ASCII letters only (whatever the locale);
/// returns -1, 0 or 1.
#[no_mangle]
pub unsafe extern "C" fn evutil_ascii_strcasecmp(a: *const c_char, b: *const c_char) -> c_int {
    // SAFETY: two NUL-terminated strings (the caller's contract).
    unsafe { casecmp(a, b, usize::MAX) }
}

/// `evutil_ascii_strncasecmp`: as `evutil_ascii_strcasecmp`, over at most `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn evutil_ascii_strncasecmp(
    a: *const c_char,
    b: *const c_char,
    n: size_t,
) -> c_int {
    // SAFETY: two strings readable up to their NUL or `n` bytes (the caller's contract).
    unsafe { casecmp(a, b, n) }
}

// ---- numbers as libc reads them ----

/// `isspace` in the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `strtoul(s, &end, 10)`: the value (saturated at `u64::MAX`, negated modulo 2^64 after a '-') and
/// how many bytes it used (0 when there are no digits).
fn strtoul10(s: &[u8]) -> (u64, usize) {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut v: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(s[i] - b'0')))
        {
            Some(n) => v = n,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    if overflow {
        (u64::MAX, i)
    } else if neg {
        (v.wrapping_neg(), i)
    } else {
        (v, i)
    }
}

/// `sscanf(s, "%u.%u.%u.%u%c")` returning exactly 4: four numbers (each as `%u` stores it: `strtoul`
/// cut to 32 bits) joined by dots, nothing after.
fn scan_dotted_quad(s: &[u8]) -> Option<[u32; 4]> {
    let mut out = [0u32; 4];
    let mut pos = 0;
    for (k, slot) in out.iter_mut().enumerate() {
        if k > 0 {
            if s.get(pos) != Some(&b'.') {
                return None;
            }
            pos += 1;
        }
        let (v, used) = strtoul10(&s[pos..]);
        if used == 0 {
            return None;
        }
        *slot = v as u32;
        pos += used;
    }
    (pos == s.len()).then_some(out)
}

/// libevent's IPv4 parser: a dotted quad as `scan_dotted_quad` reads it, each part at most 255.
fn parse_v4(s: &[u8]) -> Option<[u8; 4]> {
    let q = scan_dotted_quad(s)?;
    if q.iter().any(|&p| p > 255) {
        return None;
    }
    Some(q.map(|p| p as u8))
}

/// `strtol(s, &end, 16)` from a hex digit: the value and the bytes used (a "0x" prefix counts).
fn strtol_hex(s: &[u8]) -> (u64, usize) {
    let mut i = 0;
    if s.len() >= 3 && s[0] == b'0' && (s[1] | 0x20) == b'x' && s[2].is_ascii_hexdigit() {
        i = 2;
    }
    let mut v: u64 = 0;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        let d = (s[i] as char).to_digit(16).unwrap_or(0);
        v = v.saturating_mul(16).saturating_add(u64::from(d));
        i += 1;
    }
    (v, i)
}

/// libevent's IPv6 parser: up to eight hex words of at most four characters (as `strtol` reads
/// them), one `::`, an optional trailing dotted quad.
fn parse_v6(s: &[u8]) -> Option<[u8; 16]> {
    let mut words = [0u16; 8];
    let mut set = 0;
    let dot = s.iter().position(|&c| c == b'.');
    // Where the hex words end: the digits before the first dot start the dotted quad.
    let eow = match dot {
        Some(0) => return None,
        None => s.len(),
        Some(d) => {
            let mut e = d;
            while e > 0 && s[e - 1].is_ascii_digit() {
                e -= 1;
            }
            let q = parse_v4(&s[e..])?;
            words[6] = u16::from_be_bytes([q[0], q[1]]);
            words[7] = u16::from_be_bytes([q[2], q[3]]);
            set += 2;
            e
        }
    };
    let mut gap: Option<usize> = None;
    let mut i = 0;
    let mut p = 0;
    while p < eow {
        if i > 7 {
            return None;
        }
        if s[p].is_ascii_hexdigit() {
            let (v, used) = strtol_hex(&s[p..]);
            if used > 4 || v > 0xffff {
                return None;
            }
            words[i] = v as u16;
            i += 1;
            set += 1;
            p += used;
            if p != eow && s.get(p) != Some(&b':') {
                return None;
            }
            p += 1;
        } else if s[p] == b':' && i > 0 && gap.is_none() {
            gap = Some(i);
            p += 1;
        } else if s[p] == b':' && i == 0 && s.get(p + 1) == Some(&b':') && gap.is_none() {
            gap = Some(0);
            p += 2;
        } else {
            return None;
        }
    }
    match gap {
        _ if set > 8 => return None,
        Some(_) if set == 8 => return None,
        None if set < 8 => return None,
        Some(g) => {
            // The words after the gap move to the end (before a dotted quad's two).
            let after = set - if dot.is_some() { 2 } else { 0 } - g;
            let len = 8 - set;
            words.copy_within(g..g + after, g + len);
            words[g..g + len].fill(0);
        }
        None => {}
    }
    let mut out = [0u8; 16];
    for (k, w) in words.iter().enumerate() {
        out[2 * k..2 * k + 2].copy_from_slice(&w.to_be_bytes());
    }
    Some(out)
}

/// libevent's IPv6 printer: the longest run (the first, if several) of two or more zero words as
/// `::`, lowercase hex, and `::a.b.c.d` / `::ffff:a.b.c.d` for the IPv4-compatible and -mapped forms.
fn format_v6(a: &[u8; 16]) -> String {
    let w: Vec<u16> = (0..8)
        .map(|k| u16::from_be_bytes([a[2 * k], a[2 * k + 1]]))
        .collect();
    if w[..5].iter().all(|&x| x == 0) && ((w[5] == 0 && w[6] != 0 && w[7] != 0) || w[5] == 0xffff) {
        let quad = format!("{}.{}.{}.{}", a[12], a[13], a[14], a[15]);
        return if w[5] == 0 {
            format!("::{quad}")
        } else {
            format!("::{:x}:{quad}", w[5])
        };
    }
    let (mut best, mut best_len) = (None, 0);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = Some(start);
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len <= 1 {
        best = None;
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if Some(i) == best {
            if i == 0 {
                out.push(':');
            }
            out.push(':');
            i += best_len;
            continue;
        }
        out.push_str(&format!("{:x}", w[i]));
        if i != 7 {
            out.push(':');
        }
        i += 1;
    }
    out
}

/// Copies `s` into `dst` (`len` bytes) as `snprintf` would: at most `len - 1` bytes and a NUL.
///
/// # Safety
/// `dst` is writable for `len` bytes.
unsafe fn copy_truncated(s: &[u8], dst: *mut c_char, len: usize) {
    if len == 0 {
        return;
    }
    let n = s.len().min(len - 1);
    // SAFETY: `n + 1 <= len` bytes of `dst` are written; `s` is a live slice.
    unsafe {
        ptr::copy_nonoverlapping(s.as_ptr(), dst.cast::<u8>(), n);
        *dst.add(n) = 0;
    }
}

/// `evutil_inet_ntop`: an `AF_INET` or `AF_INET6` address as text in `dst` (`len` bytes), as
/// libevent prints it; `dst`, or NULL when it does not fit or `af` is another family.
#[no_mangle]
pub unsafe extern "C" fn evutil_inet_ntop(
    af: c_int,
    src: *const c_void,
    dst: *mut c_char,
    len: size_t,
) -> *const c_char {
    guard(ptr::null(), || {
        if src.is_null() || dst.is_null() {
            return ptr::null();
        }
        match af {
            libc::AF_INET => {
                // SAFETY: an in_addr's 4 bytes (the caller's contract).
                let a = unsafe { ptr::read_unaligned(src.cast::<[u8; 4]>()) };
                let s = format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
                // libevent writes what fits (as snprintf does) and fails if that is not all.
                // SAFETY: `dst` has `len` writable bytes.
                unsafe { copy_truncated(s.as_bytes(), dst, len) };
                if s.len() >= len {
                    ptr::null()
                } else {
                    dst
                }
            }
            libc::AF_INET6 => {
                // SAFETY: an in6_addr's 16 bytes (the caller's contract).
                let a = unsafe { ptr::read_unaligned(src.cast::<[u8; 16]>()) };
                let s = format_v6(&a);
                // libevent refuses only a text longer than `len`; one exactly `len` long loses its
                // last character to the NUL.
                if s.len() > len {
                    return ptr::null();
                }
                // SAFETY: `dst` has `len` writable bytes.
                unsafe { copy_truncated(s.as_bytes(), dst, len) };
                dst
            }
            _ => ptr::null(),
        }
    })
}

/// Parses `s` as an address of family `af` into `dst`: 1, 0 if it is not one, -1 for another family.
///
/// # Safety
/// `dst` is writable for the family's address size.
unsafe fn pton(af: c_int, s: &[u8], dst: *mut c_void) -> c_int {
    match af {
        libc::AF_INET => match parse_v4(s) {
            // SAFETY: 4 writable bytes (the caller's contract).
            Some(a) => unsafe {
                ptr::write_unaligned(dst.cast::<[u8; 4]>(), a);
                1
            },
            None => 0,
        },
        libc::AF_INET6 => match parse_v6(s) {
            // SAFETY: 16 writable bytes (the caller's contract).
            Some(a) => unsafe {
                ptr::write_unaligned(dst.cast::<[u8; 16]>(), a);
                1
            },
            None => 0,
        },
        _ => -1,
    }
}

/// `pton` with an IPv6 zone (`fe80::1%eth0`, `fe80::1%2`): the zone's interface index goes to
/// `index` (0 without one).
///
/// # Safety
/// As `pton`.
unsafe fn pton_scope(af: c_int, s: &[u8], dst: *mut c_void, index: &mut c_uint) -> c_int {
    *index = 0;
    let Some(pct) = s
        .iter()
        .position(|&c| c == b'%')
        .filter(|_| af == libc::AF_INET6)
    else {
        // SAFETY: the caller's contract.
        return unsafe { pton(af, s, dst) };
    };
    let zone = &s[pct + 1..];
    let by_name = match CString::new(zone) {
        // SAFETY: a NUL-terminated name.
        Ok(c) => unsafe { libc::if_nametoindex(c.as_ptr()) },
        Err(_) => 0,
    };
    *index = if by_name != 0 {
        by_name
    } else {
        // A number, all of the zone (as strtoul must read it).
        let (v, used) = strtoul10(zone);
        let all = if used == 0 {
            zone.is_empty()
        } else {
            used == zone.len()
        };
        if !all {
            return 0;
        }
        v as c_uint
    };
    // SAFETY: the caller's contract.
    unsafe { pton(af, &s[..pct], dst) }
}

/// `evutil_inet_pton`: parses `src` as an `AF_INET` or `AF_INET6` address into `dst`, as libevent
/// does (leading zeros, blanks and signs in IPv4 parts as `sscanf("%u")` takes them; a "0x" prefix
/// in IPv6 words). 1, 0 if `src` is not an address, -1 for another family.
#[no_mangle]
pub unsafe extern "C" fn evutil_inet_pton(
    af: c_int,
    src: *const c_char,
    dst: *mut c_void,
) -> c_int {
    guard(-1, || {
        if src.is_null() || dst.is_null() {
            return -1;
        }
        // SAFETY: a NUL-terminated string; `dst` is as large as the family's address.
        unsafe { pton(af, CStr::from_ptr(src).to_bytes(), dst) }
    })
}

/// `evutil_inet_pton_scope`: `evutil_inet_pton` that also takes an IPv6 zone (`%eth0` or `%2`),
/// whose interface index goes to `*indexp` (0 without one). 0 for an unknown, non-numeric zone.
#[no_mangle]
pub unsafe extern "C" fn evutil_inet_pton_scope(
    af: c_int,
    src: *const c_char,
    dst: *mut c_void,
    indexp: *mut c_uint,
) -> c_int {
    guard(-1, || {
        if src.is_null() || dst.is_null() || indexp.is_null() {
            return -1;
        }
        let mut index = 0;
        // SAFETY: a NUL-terminated string; `dst` is as large as the family's address.
        let r = unsafe { pton_scope(af, CStr::from_ptr(src).to_bytes(), dst, &mut index) };
        // SAFETY: a writable unsigned (the caller's contract).
        unsafe { indexp.write(index) };
        r
    })
}

/// `evutil_parse_sockaddr_port`: `[ipv6]:port`, `[ipv6]`, `ipv6`, `ipv4:port` or `ipv4` into `out`
/// (`*outlen` bytes, which this zeroes first), setting `*outlen` to the size used. The port is read
/// as `atoi` reads it and must be 1-65535 when given; no port is 0. 0, or -1.
#[no_mangle]
pub unsafe extern "C" fn evutil_parse_sockaddr_port(
    s: *const c_char,
    out: *mut sockaddr,
    outlen: *mut c_int,
) -> c_int {
    guard(-1, || {
        if s.is_null() || out.is_null() || outlen.is_null() {
            return -1;
        }
        // SAFETY: a NUL-terminated string (the caller's contract).
        let text = unsafe { CStr::from_ptr(s) }.to_bytes();
        const MAX_ADDR: usize = 127;
        let first_colon = text.iter().position(|&c| c == b':');
        let (addr, port_at, v6): (&[u8], Option<usize>, bool) = if text.first() == Some(&b'[') {
            let Some(close) = text.iter().position(|&c| c == b']') else {
                return -1;
            };
            if close - 1 > MAX_ADDR {
                return -1;
            }
            let port = (text.get(close + 1) == Some(&b':')).then_some(close + 2);
            (&text[1..close], port, true)
        } else {
            match first_colon {
                Some(c) if text[c + 1..].contains(&b':') => (text, None, true),
                Some(c) => {
                    if c > MAX_ADDR {
                        return -1;
                    }
                    (&text[..c], Some(c + 1), false)
                }
                None => (text, None, false),
            }
        };
        let port = match port_at {
            None => 0,
            Some(at) => {
                // SAFETY: `at` is within the string or at its NUL.
                let p = unsafe { libc::atoi(s.add(at)) };
                if !(1..=65535).contains(&p) {
                    return -1;
                }
                p as u16
            }
        };
        // SAFETY: a readable int.
        let room = unsafe { *outlen };
        if v6 {
            // SAFETY: sockaddr_in6 is plain data; all zeroes is valid.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            let mut index = 0;
            // SAFETY: `sin6_addr` has 16 writable bytes.
            let r = unsafe {
                pton_scope(
                    libc::AF_INET6,
                    addr,
                    ptr::addr_of_mut!(sin6.sin6_addr).cast(),
                    &mut index,
                )
            };
            if r != 1 {
                return -1;
            }
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = port.to_be();
            sin6.sin6_scope_id = index;
            // SAFETY: `out` has `*outlen` writable bytes (the caller's contract).
            unsafe { store_sockaddr(&sin6, out, outlen, room) }
        } else {
            // SAFETY: sockaddr_in is plain data; all zeroes is valid.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            // SAFETY: `sin_addr` has 4 writable bytes.
            if unsafe { pton(libc::AF_INET, addr, ptr::addr_of_mut!(sin.sin_addr).cast()) } != 1 {
                return -1;
            }
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = port.to_be();
            // SAFETY: as above.
            unsafe { store_sockaddr(&sin, out, outlen, room) }
        }
    })
}

/// Writes `sa` to `out` if `room` bytes hold it: zeroes all `room` bytes first, sets `*outlen`.
///
/// # Safety
/// `out` is writable for `room` bytes; `outlen` is writable.
unsafe fn store_sockaddr<T>(sa: &T, out: *mut sockaddr, outlen: *mut c_int, room: c_int) -> c_int {
    let size = std::mem::size_of::<T>();
    if room < 0 || (room as usize) < size {
        return -1;
    }
    // SAFETY: the caller's contract; `size <= room`.
    unsafe {
        ptr::write_bytes(out.cast::<u8>(), 0, room as usize);
        ptr::copy_nonoverlapping((sa as *const T).cast::<u8>(), out.cast::<u8>(), size);
        *outlen = size as c_int;
    }
    0
}

/// `evutil_sockaddr_cmp`: orders two `AF_INET`/`AF_INET6` addresses (by family, then address, then,
/// with `include_port`, port), as libevent does: negative, 0 or positive. Other families compare as
/// 1 (unordered).
#[no_mangle]
pub unsafe extern "C" fn evutil_sockaddr_cmp(
    a: *const sockaddr,
    b: *const sockaddr,
    include_port: c_int,
) -> c_int {
    // SAFETY: two readable sockaddrs of the size their family says (the caller's contract).
    unsafe {
        let (fa, fb) = ((*a).sa_family, (*b).sa_family);
        let r = c_int::from(fa) - c_int::from(fb);
        if r != 0 {
            return r;
        }
        match c_int::from(fa) {
            libc::AF_INET => {
                let (x, y) = (
                    &*a.cast::<libc::sockaddr_in>(),
                    &*b.cast::<libc::sockaddr_in>(),
                );
                // The address words as stored (network order read natively), as libevent compares.
                if x.sin_addr.s_addr != y.sin_addr.s_addr {
                    return if x.sin_addr.s_addr < y.sin_addr.s_addr {
                        -1
                    } else {
                        1
                    };
                }
                if include_port != 0 {
                    return c_int::from(x.sin_port) - c_int::from(y.sin_port);
                }
                0
            }
            libc::AF_INET6 => {
                let (x, y) = (
                    &*a.cast::<libc::sockaddr_in6>(),
                    &*b.cast::<libc::sockaddr_in6>(),
                );
                let r = libc::memcmp(
                    ptr::addr_of!(x.sin6_addr).cast(),
                    ptr::addr_of!(y.sin6_addr).cast(),
                    16,
                );
                if r != 0 {
                    return r;
                }
                if include_port != 0 {
                    return c_int::from(x.sin6_port) - c_int::from(y.sin6_port);
                }
                0
            }
            _ => 1,
        }
    }
}

// ---- getaddrinfo ----

/// libevent's private flag on addrinfos it allocated itself; never passed to the C library.
const EVUTIL_AI_LIBEVENT_ALLOCATED: c_int = 0x8000_0000_u32 as c_int;

/// `evutil_getaddrinfo`: the C library's `getaddrinfo` (blocking), with NULL hints meaning "any
/// family"; the result is freed with `evutil_freeaddrinfo`. 0 or an `EVUTIL_EAI_*` code.
#[no_mangle]
pub unsafe extern "C" fn evutil_getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints_in: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    guard(libc::EAI_FAIL, || {
        if res.is_null() {
            return libc::EAI_FAIL;
        }
        // SAFETY: addrinfo is plain data; all zeroes is "no hints".
        let mut hints: addrinfo = unsafe { std::mem::zeroed() };
        hints.ai_family = libc::AF_UNSPEC;
        if !hints_in.is_null() {
            // SAFETY: a readable addrinfo (the caller's contract).
            hints = unsafe { ptr::read(hints_in) };
        }
        hints.ai_flags &= !EVUTIL_AI_LIBEVENT_ALLOCATED;
        // SAFETY: NUL-terminated strings or NULL, live hints, a writable result pointer.
        unsafe { libc::getaddrinfo(node, service, &hints, res) }
    })
}

/// `evutil_freeaddrinfo`: frees what `evutil_getaddrinfo` returned.
#[no_mangle]
pub unsafe extern "C" fn evutil_freeaddrinfo(ai: *mut addrinfo) {
    if !ai.is_null() {
        // SAFETY: a list from getaddrinfo, freed once (the caller's contract).
        unsafe { libc::freeaddrinfo(ai) };
    }
}

/// `EVUTIL_EAI_*` on Linux: glibc's `EAI_*` (ADDRFAMILY and NODATA are GNU extensions, hence spelt
/// out), and libevent's own `EVUTIL_EAI_CANCEL`.
const EAI_ADDRFAMILY: c_int = -9;
const EAI_NODATA: c_int = -5;
const EVUTIL_EAI_CANCEL: c_int = -90001;

/// `evutil_gai_strerror`: libevent's message for each `EVUTIL_EAI_*` code (the C library's for
/// any other).
#[no_mangle]
pub extern "C" fn evutil_gai_strerror(err: c_int) -> *const c_char {
    let msg: &'static CStr = match err {
        EVUTIL_EAI_CANCEL => c"Request canceled",
        0 => c"No error",
        EAI_ADDRFAMILY => c"address family for nodename not supported",
        libc::EAI_AGAIN => c"temporary failure in name resolution",
        libc::EAI_BADFLAGS => c"invalid value for ai_flags",
        libc::EAI_FAIL => c"non-recoverable failure in name resolution",
        libc::EAI_FAMILY => c"ai_family not supported",
        libc::EAI_MEMORY => c"memory allocation failure",
        EAI_NODATA => c"no address associated with nodename",
        libc::EAI_NONAME => c"nodename nor servname provided, or not known",
        libc::EAI_SERVICE => c"servname not supported for ai_socktype",
        libc::EAI_SOCKTYPE => c"ai_socktype not supported",
        libc::EAI_SYSTEM => c"system error",
        // SAFETY: gai_strerror takes any code and returns a static string.
        _ => return unsafe { libc::gai_strerror(err) },
    };
    msg.as_ptr()
}

// ---- time ----

static DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
static MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `evutil_date_rfc1123`: `tm` (or, if NULL, the current UTC time) as an HTTP date, "Sun, 06 Nov
/// 1994 08:49:37 GMT", into `date` (`datelen` bytes, truncated as `snprintf` does). Returns the
/// date's full length (so a result >= `datelen` means truncated), or 0 when `datelen` is 0.
#[no_mangle]
pub unsafe extern "C" fn evutil_date_rfc1123(
    date: *mut c_char,
    datelen: size_t,
    tm: *const libc::tm,
) -> c_int {
    guard(-1, || {
        // SAFETY: libc::tm is plain data; all zeroes is valid.
        let mut now: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: `tm` is null or readable (the caller's contract).
        let tm = match unsafe { tm.as_ref() } {
            Some(t) => t,
            None => {
                // SAFETY: time(NULL) and gmtime_r into a live local.
                unsafe {
                    let t = libc::time(ptr::null_mut());
                    libc::gmtime_r(&t, &mut now);
                }
                &now
            }
        };
        let name = |table: &[&'static str], i: c_int| {
            usize::try_from(i)
                .ok()
                .and_then(|i| table.get(i).copied())
                .unwrap_or("???")
        };
        let s = format!(
            "{}, {:02} {} {:4} {:02}:{:02}:{:02} GMT",
            name(&DAYS, tm.tm_wday),
            tm.tm_mday,
            name(&MONTHS, tm.tm_mon),
            1900 + tm.tm_year,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        );
        if datelen == 0 || date.is_null() {
            return 0;
        }
        // SAFETY: `date` has `datelen` writable bytes (the caller's contract).
        unsafe { copy_truncated(s.as_bytes(), date, datelen) };
        s.len() as c_int
    })
}

/// `struct evutil_monotonic_timer`: which clock it reads, and for the gettimeofday fallback the
/// correction that keeps it from going back.
#[repr(C)]
pub struct evutil_monotonic_timer {
    /// A `CLOCK_*` id, or -1: `gettimeofday`, ratcheted.
    clock: libc::clockid_t,
    /// Microseconds added to `gettimeofday` (grows whenever the wall clock steps back).
    adjust_us: i64,
    /// The last time returned, in microseconds.
    last_us: i64,
}

/// `EV_MONOT_PRECISE`, `EV_MONOT_FALLBACK`.
const EV_MONOT_PRECISE: c_int = 1;
const EV_MONOT_FALLBACK: c_int = 2;

/// `evutil_monotonic_timer_new`: a timer to set up with `evutil_configure_monotonic_time` (from the
/// allocator of `event_set_mem_functions`); NULL when out of memory.
#[no_mangle]
pub extern "C" fn evutil_monotonic_timer_new() -> *mut evutil_monotonic_timer {
    let size = std::mem::size_of::<evutil_monotonic_timer>();
    let p = mem::malloc(size).cast::<evutil_monotonic_timer>();
    if !p.is_null() {
        // SAFETY: fresh memory of the struct's size; all zeroes is a valid timer (clock 0, as
        // libevent's zeroed one, until configured).
        unsafe { ptr::write_bytes(p.cast::<u8>(), 0, size) };
    }
    p
}

/// `evutil_monotonic_timer_free`.
#[no_mangle]
pub unsafe extern "C" fn evutil_monotonic_timer_free(timer: *mut evutil_monotonic_timer) {
    // SAFETY: null or a timer from evutil_monotonic_timer_new, freed once.
    unsafe { mem::free(timer.cast()) };
}

/// `evutil_configure_monotonic_time`: picks the clock: `CLOCK_MONOTONIC_COARSE` by default,
/// `CLOCK_MONOTONIC` with `EV_MONOT_PRECISE`, and with `EV_MONOT_FALLBACK` the wall clock, kept from
/// going back. 0 (-1 for a NULL timer).
#[no_mangle]
pub unsafe extern "C" fn evutil_configure_monotonic_time(
    timer: *mut evutil_monotonic_timer,
    flags: c_int,
) -> c_int {
    // SAFETY: null or a live timer (the caller's contract).
    let Some(t) = (unsafe { timer.as_mut() }) else {
        return -1;
    };
    let works = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a live timespec.
        unsafe { libc::clock_gettime(clock, &mut ts) == 0 }
    };
    let precise = flags & EV_MONOT_PRECISE != 0;
    let fallback = flags & EV_MONOT_FALLBACK != 0;
    t.clock = if !precise && !fallback && works(libc::CLOCK_MONOTONIC_COARSE) {
        libc::CLOCK_MONOTONIC_COARSE
    } else if !fallback && works(libc::CLOCK_MONOTONIC) {
        libc::CLOCK_MONOTONIC
    } else {
        -1
    };
    t.adjust_us = 0;
    t.last_us = 0;
    0
}

/// `evutil_gettime_monotonic`: the timer's clock as a timeval (not related to the epoch). 0, or -1.
#[no_mangle]
pub unsafe extern "C" fn evutil_gettime_monotonic(
    timer: *mut evutil_monotonic_timer,
    tp: *mut timeval,
) -> c_int {
    // SAFETY: null or a live timer, null or a writable timeval (the caller's contract).
    let (Some(t), Some(tp)) = (unsafe { timer.as_mut() }, unsafe { tp.as_mut() }) else {
        return -1;
    };
    if t.clock < 0 {
        let mut now = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: a live timeval.
        if unsafe { libc::gettimeofday(&mut now, ptr::null_mut()) } < 0 {
            return -1;
        }
        let mut us = now.tv_sec * 1_000_000 + now.tv_usec + t.adjust_us;
        if us < t.last_us {
            // The wall clock stepped back: carry on from the last value.
            t.adjust_us += t.last_us - us;
            us = t.last_us;
        }
        t.last_us = us;
        tp.tv_sec = us.div_euclid(1_000_000);
        tp.tv_usec = us.rem_euclid(1_000_000);
        return 0;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a live timespec.
    if unsafe { libc::clock_gettime(t.clock, &mut ts) } == -1 {
        return -1;
    }
    tp.tv_sec = ts.tv_sec;
    tp.tv_usec = ts.tv_nsec / 1000;
    0
}

// ---- the secure random number generator ----

/// The device `evutil_secure_rng_set_urandom_device_file` named, if any.
static DEVICE: Mutex<Option<CString>> = Mutex::new(None);

/// Fills `buf` from the kernel's generator (`getrandom(2)`, which blocks only until the kernel's pool
/// is first seeded at boot).
fn kernel_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the rest of a live, writable buffer.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// Reads `buf.len()` bytes from the device file.
fn device_random(path: &CStr, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
    std::fs::File::open(path)?.read_exact(buf)
}

/// Random bytes: the kernel's, and with a device file set, XORed with the file's (so the result is
/// as strong as the better of the two). Fails only if the kernel's generator cannot be read.
fn secure_random(buf: &mut [u8]) -> std::io::Result<()> {
    kernel_random(buf)?;
    let device = DEVICE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(path) = device {
        let mut extra = vec![0u8; buf.len()];
        match device_random(&path, &mut extra) {
            Ok(()) => buf.iter_mut().zip(&extra).for_each(|(b, x)| *b ^= x),
            Err(e) => log::warn!(
                "evutil_secure_rng: cannot read {}: {e} (the kernel's generator alone is used)",
                path.to_string_lossy()
            ),
        }
    }
    Ok(())
}

/// `evutil_secure_rng_init`: checks that the generator works (it needs no seeding: it is the
/// kernel's). 0, or -1 if it cannot be read.
#[no_mangle]
pub extern "C" fn evutil_secure_rng_init() -> c_int {
    guard(-1, || {
        let mut probe = [0u8; 1];
        match kernel_random(&mut probe) {
            Ok(()) => 0,
            Err(e) => {
                log::warn!("evutil_secure_rng_init: getrandom: {e}");
                -1
            }
        }
    })
}

/// `evutil_secure_rng_get_bytes`: `n` cryptographically secure random bytes into `buf`. If the
/// kernel's generator cannot be read this is fatal (through the fatal callback): handing out weaker
/// bytes instead would be worse.
#[no_mangle]
pub unsafe extern "C" fn evutil_secure_rng_get_bytes(buf: *mut c_void, n: size_t) {
    guard((), || {
        if buf.is_null() || n == 0 {
            return;
        }
        // SAFETY: `buf` has `n` writable bytes (the caller's contract).
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), n) };
        if let Err(e) = secure_random(out) {
            logging::fatal_msg(&format!("evutil_secure_rng_get_bytes: getrandom: {e}"));
        }
    })
}

/// `evutil_secure_rng_set_urandom_device_file`: a device whose bytes are mixed (XOR) into every
/// output as well; NULL forgets it. The name is copied. 0.
#[no_mangle]
pub unsafe extern "C" fn evutil_secure_rng_set_urandom_device_file(fname: *mut c_char) -> c_int {
    guard(-1, || {
        // SAFETY: null or a NUL-terminated string (the caller's contract).
        let name = unsafe { fname.as_ref() }.map(|_| unsafe { CStr::from_ptr(fname) }.to_owned());
        *DEVICE.lock().unwrap_or_else(|e| e.into_inner()) = name;
        0
    })
}

/// `evutil_secure_rng_add_bytes`: gives `dat` to the kernel's pool (written to `/dev/urandom`, which
/// mixes it in without counting it as entropy), the pool every output comes from. Nothing happens
/// if `/dev/urandom` cannot be opened; the output does not depend on these bytes being good.
#[no_mangle]
pub unsafe extern "C" fn evutil_secure_rng_add_bytes(dat: *const c_char, datlen: size_t) {
    guard((), || {
        if dat.is_null() || datlen == 0 {
            return;
        }
        // SAFETY: `dat` has `datlen` readable bytes (the caller's contract).
        let bytes = unsafe { std::slice::from_raw_parts(dat.cast::<u8>(), datlen) };
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/urandom") {
            let _ = f.write_all(bytes);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_as_libevent_reads_it() {
        assert_eq!(parse_v4(b"1.2.3.4"), Some([1, 2, 3, 4]));
        assert_eq!(parse_v4(b"01.2.3.4"), Some([1, 2, 3, 4]));
        assert_eq!(parse_v4(b" 1.+2.3.4"), Some([1, 2, 3, 4]));
        assert_eq!(parse_v4(b"4294967297.2.3.4"), Some([1, 2, 3, 4]));
        for bad in [
            &b"1.2.3"[..],
            b"1.2.3.4 ",
            b"256.1.1.1",
            b"1.2.3.4x",
            b"",
            b"1..2.3",
        ] {
            assert_eq!(parse_v4(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ipv6_round_trips_as_libevent_prints() {
        for (text, printed) in [
            ("::1", "::1"),
            ("::", "::"),
            ("1::", "1::"),
            ("0x1::", "1::"),
            ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::1.2.0.0", "::102:0"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("fe80::a:b", "fe80::a:b"),
        ] {
            let a = parse_v6(text.as_bytes()).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(format_v6(&a), printed, "{text}");
        }
        for bad in [
            ":1::",
            "1:::2",
            "12345::",
            "::fffff",
            "1:2:3:4:5:6:7",
            ".1",
            "1::2::3",
        ] {
            assert_eq!(parse_v6(bad.as_bytes()), None, "{bad}");
        }
    }
}
