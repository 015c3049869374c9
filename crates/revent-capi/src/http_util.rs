//! `event2/http.h`'s functions that need no server or client: URIs (`evhttp_uri_*`),
//! percent-encoding (`evhttp_encode_uri`, `evhttp_uriencode`, `evhttp_decode_uri`,
//! `evhttp_uridecode`), query strings (`evhttp_parse_query`, `evhttp_parse_query_str`),
//! `evhttp_htmlescape`, and the header list functions on `struct evkeyvalq`
//! (`evhttp_find_header`, `evhttp_add_header`, `evhttp_remove_header`, `evhttp_clear_headers`).
//! The checking, parsing and escaping is revent-http's ([`revent_http::Uri`], [`encode`],
//! [`query`], [`html`], [`Headers::check_field`]); this module carries C strings to and from it.
//!
//! **Header lists are C's.** A `struct evkeyvalq` is the `TAILQ` of `keyvalq_struct.h`: C walks it
//! with `TAILQ_FOREACH`, and may build one itself; each [`evkeyval`] and its `key` and `value`
//! come from the library's allocator ([`mem::malloc`], so `event_set_mem_functions` applies) and
//! are freed with its `free` by `evhttp_remove_header`/`evhttp_clear_headers`, as libevent does. The
//! list functions here ([`init`], [`append`], [`clear`]) are for the other HTTP modules too.
//!
//! **Bytes, not text.** C strings need not be UTF-8, while revent-http takes `&str`. Its character
//! classes are all ASCII, so each byte from 0x80 up is handed over as the one character U+0080..U+00FF
//! of the same number (Latin-1) and turned back after: the answer is the one libevent gives for the
//! byte (a non-ASCII byte is refused where libevent refuses it, as in a strict URI, and kept as it is
//! where libevent keeps it, as in a NONCONFORMANT path or an HTML text).
//!
//! **A URI's components are kept here** as C strings (the getters return pointers into them, valid
//! until the component is set again or the URI freed), each checked by revent-http's parser or its
//! setter. libevent lets a URI reach states [`revent_http::Uri`] refuses, and C programs see them, so
//! this module lets them too: `evhttp_uri_set_port` takes any port from -1 up (`evhttp_uri_join` writes
//! it, though a port above 65535 does not parse back), and a host may be set together with a path
//! that does not start with `/` (both setters succeed; `evhttp_uri_join` then returns NULL).
//!
//! Where this differs from libevent 2.1.12, on purpose:
//! - `evhttp_add_header` refuses a name that is not an RFC 9110 token (libevent: any without CR or
//!   LF) and a value with any CR or LF (libevent 2.1.12 lets `CRLF` + space or tab through, obsolete
//!   line folding; 2.1.13 refuses them, as here). See [`revent_http::headers`] for why.
//! - `evhttp_parse_query` and `evhttp_parse_query_str` fail (-1, the list left empty) when a value
//!   decodes to a NUL (`%00`): libevent stores the value as a C string, so it would end there and
//!   `name=admin%00.jpg` would read as `admin`. revent never cuts a value silently.
//! - NULL arguments libevent would dereference are reported through the log callback and answered
//!   with the error value (NULL, -1); getters on a NULL URI return NULL (-1 for the port).

use crate::{guard, mem};
use libc::{c_char, c_int, c_uint, size_t, ssize_t};
use revent_http::query::{self, QueryError};
use revent_http::{encode, html, Headers, Uri, UriError, UriFlags};
use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::ptr;

/// `EVHTTP_URI_NONCONFORMANT`: tolerate what RFC 3986 forbids in the path, query and fragment.
pub const EVHTTP_URI_NONCONFORMANT: c_uint = 0x01;

/// The `next` field of `struct evkeyval`: a `TAILQ_ENTRY(evkeyval)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evkeyval_next {
    /// The next entry, NULL after the last.
    pub tqe_next: *mut evkeyval,
    /// The `tqe_next` of the previous entry (or the head's `tqh_first`) that points here.
    pub tqe_prev: *mut *mut evkeyval,
}

/// `struct evkeyval`: one key and value of a `struct evkeyvalq`.
#[repr(C)]
#[derive(Debug)]
pub struct evkeyval {
    /// The list links.
    pub next: evkeyval_next,
    /// The key, a NUL-terminated string from the library's allocator.
    pub key: *mut c_char,
    /// The value, likewise.
    pub value: *mut c_char,
}

/// `struct evkeyvalq`: a `TAILQ_HEAD(evkeyvalq, evkeyval)`.
///
/// ```
/// use revent_capi::http_util::*;
/// use std::ffi::CStr;
///
/// let mut list = evkeyvalq { tqh_first: std::ptr::null_mut(), tqh_last: std::ptr::null_mut() };
/// // The list points into itself: use it through one raw pointer, as C does.
/// let h = std::ptr::addr_of_mut!(list);
/// // SAFETY: a list of our own, initialized by evhttp_parse_query_str; C strings throughout.
/// unsafe {
///     assert_eq!(evhttp_parse_query_str(c"a=1&b=x+y".as_ptr(), h), 0);
///     assert_eq!(evhttp_add_header(h, c"C".as_ptr(), c"3".as_ptr()), 0);
///     let b = evhttp_find_header(h, c"B".as_ptr());
///     assert_eq!(CStr::from_ptr(b), c"x y");
///     let mut keys = vec![];
///     let mut e = (*h).tqh_first;
///     while !e.is_null() {
///         keys.push(CStr::from_ptr((*e).key).to_str().unwrap());
///         e = (*e).next.tqe_next;
///     }
///     assert_eq!(keys, ["a", "b", "C"]);
///     evhttp_clear_headers(h);
///     assert!((*h).tqh_first.is_null());
/// }
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct evkeyvalq {
    /// The first entry, NULL when the list is empty.
    pub tqh_first: *mut evkeyval,
    /// The last entry's `tqe_next` (`&tqh_first` when the list is empty).
    pub tqh_last: *mut *mut evkeyval,
}

// keyvalq_struct.h's layout (ABI.md): C code reads these fields itself.
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<evkeyval>() == 32);
    assert!(offset_of!(evkeyval, next) == 0);
    assert!(offset_of!(evkeyval, key) == 16);
    assert!(offset_of!(evkeyval, value) == 24);
    assert!(size_of::<evkeyvalq>() == 16);
    assert!(offset_of!(evkeyvalq, tqh_last) == 8);
};

// ---- C strings and revent-http's &str ----

/// `bytes` as a `&str` in which each byte is one character: ASCII as it is, 0x80..0xFF as
/// U+0080..U+00FF (see the module docs for why that gives libevent's answers).
fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => Cow::Borrowed(s),
        _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// The bytes [`latin1`] made `s` from. Every character revent-http returns comes from its input,
/// so each is at most U+00FF; a wider one would be a bug here, reported by `guard` as a panic.
fn unlatin1(s: &str) -> Cow<'_, [u8]> {
    if s.is_ascii() {
        return Cow::Borrowed(s.as_bytes());
    }
    Cow::Owned(
        s.chars()
            .map(|c| u8::try_from(c).expect("a Latin-1 character from Latin-1 input"))
            .collect(),
    )
}

/// The bytes of a C string (the caller's contract: NULL or NUL-terminated).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn c_bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: the caller's contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// A copy of `bytes` (which hold no NUL: they came from a C string) as a `CString`.
fn owned(bytes: &[u8]) -> CString {
    CString::new(bytes).expect("no NUL in what came from a C string")
}

/// `bytes` as a NUL-terminated string from the library's allocator (C frees it with `free`).
fn to_c(bytes: &[u8]) -> *mut c_char {
    let p = mem::c_string(bytes);
    if p.is_null() {
        log::warn!("evhttp: out of memory");
    }
    p
}

// ---- struct evhttp_uri ----

/// `struct evhttp_uri`: a parsed or built URI reference (opaque to C).
///
/// ```
/// use revent_capi::http_util::*;
/// use std::ffi::CStr;
///
/// // SAFETY: C strings, a URI of this library freed once, a buffer of the size given.
/// unsafe {
///     let u = evhttp_uri_parse(c"http://user@example.com:8080/a?q=1#top".as_ptr());
///     assert!(!u.is_null());
///     assert_eq!(CStr::from_ptr(evhttp_uri_get_host(u)), c"example.com");
///     assert_eq!(evhttp_uri_get_port(u), 8080);
///     assert_eq!(evhttp_uri_set_path(u, c"/b c".as_ptr()), -1); // strict: no space
///     assert_eq!(evhttp_uri_set_path(u, c"/b%20c".as_ptr()), 0);
///     let mut buf = [0 as libc::c_char; 64];
///     let joined = evhttp_uri_join(u, buf.as_mut_ptr(), buf.len());
///     assert_eq!(CStr::from_ptr(joined), c"http://user@example.com:8080/b%20c?q=1#top");
///     evhttp_uri_free(u);
/// }
/// ```
#[derive(Debug)]
pub struct evhttp_uri {
    /// `EVHTTP_URI_*` flags, which the path, query and fragment setters check with.
    flags: c_uint,
    scheme: Option<CString>,
    userinfo: Option<CString>,
    host: Option<CString>,
    /// -1: no port.
    port: c_int,
    path: Option<CString>,
    query: Option<CString>,
    fragment: Option<CString>,
}

impl evhttp_uri {
    fn empty(flags: c_uint) -> evhttp_uri {
        evhttp_uri {
            flags,
            scheme: None,
            userinfo: None,
            host: None,
            port: -1,
            path: None,
            query: None,
            fragment: None,
        }
    }

    /// The revent-http flags for these C flags (bits libevent 2.1 does not define are ignored, as
    /// there).
    fn uri_flags(&self) -> UriFlags {
        UriFlags::from_bits_truncate(self.flags)
    }

    /// The URI reference its components make, as `evhttp_uri_join` writes it (without the NUL);
    /// `None` when a host comes with a path that is neither empty nor starts with `/`.
    fn joined(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(scheme) = &self.scheme {
            out.extend_from_slice(scheme.to_bytes());
            out.push(b':');
        }
        if let Some(host) = &self.host {
            out.extend_from_slice(b"//");
            if let Some(userinfo) = &self.userinfo {
                out.extend_from_slice(userinfo.to_bytes());
                out.push(b'@');
            }
            out.extend_from_slice(host.to_bytes());
            if self.port >= 0 {
                out.extend_from_slice(format!(":{}", self.port).as_bytes());
            }
            if let Some(path) = &self.path {
                if !matches!(path.to_bytes().first(), None | Some(b'/')) {
                    return None;
                }
            }
        }
        for (sep, part) in [
            (None, &self.path),
            (Some(b'?'), &self.query),
            (Some(b'#'), &self.fragment),
        ] {
            if let Some(part) = part {
                out.extend(sep);
                out.extend_from_slice(part.to_bytes());
            }
        }
        Some(out)
    }
}

/// A component of `uri`, as a C string revent-http returned (Latin-1) turned back into bytes.
fn component(part: Option<&str>) -> Option<CString> {
    part.map(|p| owned(&unlatin1(p)))
}

/// `evhttp_uri_new`: a URI with no component set, no port (-1) and no flags.
#[no_mangle]
pub extern "C" fn evhttp_uri_new() -> *mut evhttp_uri {
    guard(ptr::null_mut(), || {
        Box::into_raw(Box::new(evhttp_uri::empty(0)))
    })
}

/// `evhttp_uri_free`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_uri_free(uri: *mut evhttp_uri) {
    guard((), || {
        if !uri.is_null() {
            // SAFETY: a URI from evhttp_uri_new/parse (Box::into_raw), freed once (the contract).
            drop(unsafe { Box::from_raw(uri) });
        }
    })
}

/// `evhttp_uri_parse_with_flags`: parses a URI reference (RFC 3986, strictly or with
/// `EVHTTP_URI_NONCONFORMANT`) into a new URI; NULL when it does not parse.
#[no_mangle]
pub unsafe extern "C" fn evhttp_uri_parse_with_flags(
    source_uri: *const c_char,
    flags: c_uint,
) -> *mut evhttp_uri {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a C string (the contract).
        let Some(bytes) = (unsafe { c_bytes(source_uri) }) else {
            log::warn!("evhttp_uri_parse_with_flags: NULL URI");
            return ptr::null_mut();
        };
        let mut c = evhttp_uri::empty(flags);
        let parsed = match Uri::parse_with(&latin1(bytes), c.uri_flags()) {
            Ok(u) => u,
            Err(e) => {
                log::debug!("evhttp_uri_parse: {e}");
                return ptr::null_mut();
            }
        };
        c.scheme = component(parsed.scheme());
        c.userinfo = component(parsed.userinfo());
        c.host = component(parsed.host());
        c.port = parsed.port().map_or(-1, c_int::from);
        c.path = component(parsed.path());
        c.query = component(parsed.query());
        c.fragment = component(parsed.fragment());
        Box::into_raw(Box::new(c))
    })
}

/// `evhttp_uri_parse`: `evhttp_uri_parse_with_flags(source_uri, 0)`, strict.
#[no_mangle]
pub unsafe extern "C" fn evhttp_uri_parse(source_uri: *const c_char) -> *mut evhttp_uri {
    // SAFETY: the caller's contract, passed on.
    unsafe { evhttp_uri_parse_with_flags(source_uri, 0) }
}

/// `evhttp_uri_set_flags`: the flags later path, query and fragment setters check with.
#[no_mangle]
pub unsafe extern "C" fn evhttp_uri_set_flags(uri: *mut evhttp_uri, flags: c_uint) {
    guard((), || {
        // SAFETY: NULL or a live URI of this library, used by one call at a time (the contract).
        match unsafe { uri.as_mut() } {
            Some(u) => u.flags = flags,
            None => log::warn!("evhttp_uri_set_flags: NULL URI"),
        }
    })
}

/// `evhttp_uri_join`: writes the URI reference and a NUL into `buf` and returns `buf`; NULL when it
/// needs more than `limit` bytes (NUL included), when a host comes with a path that does not start
/// with `/`, or when an argument is NULL or `limit` is 0. Nothing is escaped.
#[no_mangle]
pub unsafe extern "C" fn evhttp_uri_join(
    uri: *mut evhttp_uri,
    buf: *mut c_char,
    limit: size_t,
) -> *mut c_char {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a live URI of this library (the contract).
        let Some(u) = (unsafe { uri.as_ref() }) else {
            log::warn!("evhttp_uri_join: NULL URI");
            return ptr::null_mut();
        };
        if buf.is_null() || limit == 0 {
            return ptr::null_mut();
        }
        let Some(mut joined) = u.joined() else {
            log::debug!("evhttp_uri_join: a host with a path that does not start with '/'");
            return ptr::null_mut();
        };
        joined.push(0);
        if joined.len() > limit {
            return ptr::null_mut();
        }
        // SAFETY: `buf` has room for `limit` bytes (the contract), and `joined.len() <= limit`;
        // a Vec of ours does not overlap the caller's buffer.
        unsafe { ptr::copy_nonoverlapping(joined.as_ptr(), buf.cast::<u8>(), joined.len()) };
        buf
    })
}

/// A getter's answer: the component's C string, or NULL.
fn get(
    uri: *const evhttp_uri,
    name: &str,
    field: fn(&evhttp_uri) -> &Option<CString>,
) -> *const c_char {
    guard(ptr::null(), || {
        // SAFETY: NULL or a live URI of this library (the contract).
        match unsafe { uri.as_ref() } {
            Some(u) => field(u).as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            None => {
                log::warn!("{name}: NULL URI");
                ptr::null()
            }
        }
    })
}

/// A setter: checks `value` (unless NULL, which clears) with `check` on a scratch revent-http URI
/// carrying `uri`'s flags, then stores it; 0, or -1 when refused.
///
/// # Safety
/// `uri` is NULL or a live URI of this library; `value` NULL or a C string.
unsafe fn set(
    uri: *mut evhttp_uri,
    value: *const c_char,
    name: &str,
    check: fn(&mut Uri, &str) -> Result<(), UriError>,
    field: fn(&mut evhttp_uri) -> &mut Option<CString>,
) -> c_int {
    guard(-1, || {
        // SAFETY: NULL or a live URI of this library, used by one call at a time (the contract).
        let Some(u) = (unsafe { uri.as_mut() }) else {
            log::warn!("{name}: NULL URI");
            return -1;
        };
        // SAFETY: NULL or a C string (the contract).
        let new = match unsafe { c_bytes(value) } {
            None => None,
            Some(bytes) => {
                let mut scratch = Uri::new();
                scratch.set_flags(u.uri_flags());
                if let Err(e) = check(&mut scratch, &latin1(bytes)) {
                    log::debug!("{name}: {e}");
                    return -1;
                }
                Some(owned(bytes))
            }
        };
        *field(u) = new;
        0
    })
}

macro_rules! uri_component {
    ($get:ident, $set:ident, $field:ident, $check:ident, $what:literal) => {
        #[doc = concat!("`", stringify!($get), "`: the ", $what, ", or NULL when it has none.")]
        #[no_mangle]
        pub unsafe extern "C" fn $get(uri: *const evhttp_uri) -> *const c_char {
            get(uri, stringify!($get), |u| &u.$field)
        }

        #[doc = concat!("`", stringify!($set), "`: sets the ", $what, " (NULL clears it); -1 when it is not well-formed.")]
        #[no_mangle]
        pub unsafe extern "C" fn $set(uri: *mut evhttp_uri, value: *const c_char) -> c_int {
            // SAFETY: the caller's contract, passed on.
            unsafe { set(uri, value, stringify!($set), |s, v| s.$check(Some(v)), |u| &mut u.$field) }
        }
    };
}

uri_component!(
    evhttp_uri_get_scheme,
    evhttp_uri_set_scheme,
    scheme,
    set_scheme,
    "scheme"
);
uri_component!(
    evhttp_uri_get_userinfo,
    evhttp_uri_set_userinfo,
    userinfo,
    set_userinfo,
    "userinfo"
);
uri_component!(
    evhttp_uri_get_host,
    evhttp_uri_set_host,
    host,
    set_host,
    "host"
);
uri_component!(
    evhttp_uri_get_path,
    evhttp_uri_set_path,
    path,
    set_path,
    "path"
);
uri_component!(
    evhttp_uri_get_query,
    evhttp_uri_set_query,
    query,
    set_query,
    "query (without its `?`)"
);
uri_component!(
    evhttp_uri_get_fragment,
    evhttp_uri_set_fragment,
    fragment,
    set_fragment,
    "fragment (without its `#`)"
);

/// `evhttp_uri_get_port`: the port, or -1 when it has none.
#[no_mangle]
pub unsafe extern "C" fn evhttp_uri_get_port(uri: *const evhttp_uri) -> c_int {
    guard(-1, || {
        // SAFETY: NULL or a live URI of this library (the contract).
        match unsafe { uri.as_ref() } {
            Some(u) => u.port,
            None => {
                log::warn!("evhttp_uri_get_port: NULL URI");
                -1
            }
        }
    })
}

/// `evhttp_uri_set_port`: sets the port, or clears it with -1; -1 for a port below -1. As in
/// libevent, a port above 65535 is taken (and written by `evhttp_uri_join`).
#[no_mangle]
pub unsafe extern "C" fn evhttp_uri_set_port(uri: *mut evhttp_uri, port: c_int) -> c_int {
    guard(-1, || {
        // SAFETY: NULL or a live URI of this library, used by one call at a time (the contract).
        let Some(u) = (unsafe { uri.as_mut() }) else {
            log::warn!("evhttp_uri_set_port: NULL URI");
            return -1;
        };
        if port < -1 {
            return -1;
        }
        u.port = port;
        0
    })
}

// ---- percent-encoding, HTML ----

/// `evhttp_uriencode`: `size` bytes of `str` (up to its NUL when `size` is negative)
/// percent-encoded: unreserved bytes as they are, a space as `+` when `space_to_plus`, every other
/// byte (a NUL within `size` too) as `%HH`. The result is the caller's to `free`; NULL on error.
#[no_mangle]
pub unsafe extern "C" fn evhttp_uriencode(
    str: *const c_char,
    size: ssize_t,
    space_to_plus: c_int,
) -> *mut c_char {
    guard(ptr::null_mut(), || {
        if str.is_null() {
            log::warn!("evhttp_uriencode: NULL string");
            return ptr::null_mut();
        }
        let bytes = match usize::try_from(size) {
            // SAFETY: `size` readable bytes at `str` (the contract).
            Ok(n) => unsafe { std::slice::from_raw_parts(str.cast::<u8>(), n) },
            // SAFETY: a C string (the contract).
            Err(_) => unsafe { CStr::from_ptr(str) }.to_bytes(),
        };
        to_c(encode::encode_uri_with(bytes, space_to_plus != 0).as_bytes())
    })
}

/// `evhttp_encode_uri`: `evhttp_uriencode(str, -1, 0)`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_encode_uri(str: *const c_char) -> *mut c_char {
    // SAFETY: the caller's contract, passed on.
    unsafe { evhttp_uriencode(str, -1, 0) }
}

/// `evhttp_decode_uri` (deprecated in libevent): `%HH` decoded, `+` as a space after the first `?`
/// only. The result is the caller's to `free`; a `%00` leaves a NUL inside it, as in libevent.
#[no_mangle]
pub unsafe extern "C" fn evhttp_decode_uri(uri: *const c_char) -> *mut c_char {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a C string (the contract).
        match unsafe { c_bytes(uri) } {
            Some(bytes) => to_c(&encode::decode_uri(bytes)),
            None => {
                log::warn!("evhttp_decode_uri: NULL string");
                ptr::null_mut()
            }
        }
    })
}

/// `evhttp_uridecode`: `%HH` decoded, and `+` as a space when `decode_plus`; `*size_out` (when not
/// NULL) gets the decoded length, which counts the NULs a `%00` made. The result is the caller's to
/// `free`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_uridecode(
    uri: *const c_char,
    decode_plus: c_int,
    size_out: *mut size_t,
) -> *mut c_char {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a C string (the contract).
        let Some(bytes) = (unsafe { c_bytes(uri) }) else {
            log::warn!("evhttp_uridecode: NULL string");
            return ptr::null_mut();
        };
        let decoded = encode::uridecode(bytes, decode_plus != 0);
        let p = to_c(&decoded);
        if !p.is_null() && !size_out.is_null() {
            // SAFETY: NULL or a writable size_t (the contract).
            unsafe { size_out.write(decoded.len()) };
        }
        p
    })
}

/// `evhttp_htmlescape`: `<`, `>`, `"`, `'` and `&` as HTML entities, every other byte as it is.
/// The result is the caller's to `free`.
#[no_mangle]
pub unsafe extern "C" fn evhttp_htmlescape(html: *const c_char) -> *mut c_char {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or a C string (the contract).
        match unsafe { c_bytes(html) } {
            Some(bytes) => to_c(&unlatin1(&html::html_escape(&latin1(bytes)))),
            None => ptr::null_mut(),
        }
    })
}

// ---- query strings ----

/// Keys and values, as bytes.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A query string's pairs as bytes, as `evhttp_parse_query_str` splits and decodes them.
fn query_pairs(q: &[u8]) -> Result<Pairs, QueryError> {
    if let Ok(s) = std::str::from_utf8(q) {
        let pairs = query::parse_query_str_bytes(s)?;
        return Ok(pairs
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v))
            .collect());
    }
    // Not UTF-8. Keys are kept as written: read them from the Latin-1 form. Values are decoded:
    // read them from a form in which each byte from 0x80 up is written `%HH`, which decodes back
    // to that byte (a `%` never ends in such an escape, so none the input had changes meaning).
    // Both forms split at the same '&' and '=', so the pairs line up.
    let keys = query::parse_query_str_bytes(&latin1(q))?;
    let escaped: String = q
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let values = query::parse_query_str_bytes(&escaped)?;
    assert_eq!(keys.len(), values.len(), "both forms split alike");
    Ok(keys
        .into_iter()
        .zip(values)
        .map(|((k, _), (_, v))| (unlatin1(&k).into_owned(), v))
        .collect())
}

/// Fills `headers` (initialized first, as libevent does: what it held is not freed) with `pairs`;
/// 0, or -1 with the list empty when a value holds a NUL or memory runs out.
///
/// # Safety
/// `headers` points to a writable `struct evkeyvalq`.
unsafe fn fill(name: &str, headers: *mut evkeyvalq, pairs: Result<Pairs, QueryError>) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { init(headers) };
    let pairs = match pairs {
        Ok(p) => p,
        Err(e) => {
            log::debug!("{name}: {e}");
            return -1;
        }
    };
    if let Some((k, _)) = pairs.iter().find(|(_, v)| v.contains(&0)) {
        log::debug!(
            "{name}: the value of {:?} decodes to a NUL; refused rather than cut short",
            String::from_utf8_lossy(k)
        );
        return -1;
    }
    for (k, v) in &pairs {
        // SAFETY: `headers` is the list just initialized; k and v hold no NUL (keys come from a C
        // string, values were checked above).
        if !unsafe { append(headers, k, v) } {
            // SAFETY: as above; every entry came from `append`.
            unsafe { clear(headers) };
            return -1;
        }
    }
    0
}

/// `evhttp_parse_query_str`: splits a query string (without `?`) into `key=value` pairs appended
/// to `headers` (which is initialized first), values decoded (`+` a space), keys as written. -1,
/// with the list empty, when a pair has no `=` or an empty key (see [`query`]); NULL is an empty
/// query.
#[no_mangle]
pub unsafe extern "C" fn evhttp_parse_query_str(
    uri: *const c_char,
    headers: *mut evkeyvalq,
) -> c_int {
    guard(-1, || {
        if headers.is_null() {
            log::warn!("evhttp_parse_query_str: NULL headers");
            return -1;
        }
        // SAFETY: NULL or a C string (the contract).
        let q = unsafe { c_bytes(uri) }.unwrap_or_default();
        // SAFETY: a writable evkeyvalq (checked non-NULL; the contract).
        unsafe { fill("evhttp_parse_query_str", headers, query_pairs(q)) }
    })
}

/// `evhttp_parse_query`: `evhttp_parse_query_str` over the query of a whole URI, which must parse
/// strictly; a URI without a query gives an empty list.
#[no_mangle]
pub unsafe extern "C" fn evhttp_parse_query(uri: *const c_char, headers: *mut evkeyvalq) -> c_int {
    guard(-1, || {
        if headers.is_null() {
            log::warn!("evhttp_parse_query: NULL headers");
            return -1;
        }
        // SAFETY: NULL or a C string (the contract).
        let Some(b) = (unsafe { c_bytes(uri) }) else {
            // SAFETY: a writable evkeyvalq (checked non-NULL; the contract).
            unsafe { init(headers) };
            log::warn!("evhttp_parse_query: NULL URI");
            return -1;
        };
        // A strict URI is all ASCII, so what comes back is the input's own bytes.
        let pairs = query::parse_query_bytes(&latin1(b))
            .map(|p| p.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect());
        // SAFETY: a writable evkeyvalq (checked non-NULL; the contract).
        unsafe { fill("evhttp_parse_query", headers, pairs) }
    })
}

// ---- struct evkeyvalq ----

/// `TAILQ_INIT`: an empty list. What it held is not freed.
///
/// # Safety
/// `headers` points to a writable `struct evkeyvalq`.
pub unsafe fn init(headers: *mut evkeyvalq) {
    // SAFETY: the caller's contract; the fields are written through raw places (C holds the
    // list too).
    unsafe {
        ptr::addr_of_mut!((*headers).tqh_first).write(ptr::null_mut());
        ptr::addr_of_mut!((*headers).tqh_last).write(ptr::addr_of_mut!((*headers).tqh_first));
    }
}

/// Appends `key` and `value` (neither holding a NUL) as a new entry from the library's allocator,
/// unchecked; false when memory runs out (the list is then unchanged).
///
/// # Safety
/// `headers` points to a well-formed list (initialized, every entry linked as `TAILQ` does).
pub unsafe fn append(headers: *mut evkeyvalq, key: &[u8], value: &[u8]) -> bool {
    debug_assert!(!key.contains(&0) && !value.contains(&0));
    let elm = mem::malloc(std::mem::size_of::<evkeyval>()).cast::<evkeyval>();
    let k = mem::c_string(key);
    let v = mem::c_string(value);
    if elm.is_null() || k.is_null() || v.is_null() {
        // SAFETY: each is NULL or fresh from mem::malloc, and freed once here.
        unsafe {
            mem::free(elm.cast());
            mem::free(k.cast());
            mem::free(v.cast());
        }
        log::warn!("evhttp: out of memory for a header");
        return false;
    }
    // SAFETY: `elm` is fresh memory of evkeyval's size and alignment (malloc's alignment covers
    // pointers); `headers` is a well-formed list, whose `tqh_last` points at the last `tqe_next`
    // (or at `tqh_first`): TAILQ_INSERT_TAIL.
    unsafe {
        elm.write(evkeyval {
            next: evkeyval_next {
                tqe_next: ptr::null_mut(),
                tqe_prev: (*headers).tqh_last,
            },
            key: k,
            value: v,
        });
        *(*headers).tqh_last = elm;
        (*headers).tqh_last = ptr::addr_of_mut!((*elm).next.tqe_next);
    }
    true
}

/// Unlinks `elm` from `headers` (`TAILQ_REMOVE`) and frees it, its key and its value.
///
/// # Safety
/// `elm` is an entry of the well-formed list `headers`, its memory from the library's allocator.
unsafe fn remove_entry(headers: *mut evkeyvalq, elm: *mut evkeyval) {
    // SAFETY: the caller's contract: `elm`'s links are those of a TAILQ entry of `headers`.
    unsafe {
        let next = (*elm).next.tqe_next;
        let prev = (*elm).next.tqe_prev;
        if next.is_null() {
            (*headers).tqh_last = prev;
        } else {
            (*next).next.tqe_prev = prev;
        }
        *prev = next;
        mem::free((*elm).key.cast());
        mem::free((*elm).value.cast());
        mem::free(elm.cast());
    }
}

/// The first entry whose key equals `key` ignoring ASCII case, or NULL.
///
/// # Safety
/// `headers` points to a well-formed list whose keys are C strings.
unsafe fn find(headers: *const evkeyvalq, key: &[u8]) -> *mut evkeyval {
    // SAFETY: the caller's contract: a NULL-terminated chain of live entries.
    unsafe {
        let mut elm = (*headers).tqh_first;
        while !elm.is_null() {
            if CStr::from_ptr((*elm).key)
                .to_bytes()
                .eq_ignore_ascii_case(key)
            {
                return elm;
            }
            elm = (*elm).next.tqe_next;
        }
    }
    ptr::null_mut()
}

/// Frees every entry of `headers` and leaves it empty.
///
/// # Safety
/// `headers` points to a well-formed list whose entries, keys and values come from the library's
/// allocator (or from the same `malloc` when `event_set_mem_functions` was not called).
pub unsafe fn clear(headers: *mut evkeyvalq) {
    // SAFETY: the caller's contract; each entry is unlinked before it is freed.
    unsafe {
        loop {
            let elm = (*headers).tqh_first;
            if elm.is_null() {
                break;
            }
            remove_entry(headers, elm);
        }
    }
}

/// `evhttp_find_header`: the value of the first entry whose key equals `key`, ASCII case ignored;
/// NULL when there is none.
#[no_mangle]
pub unsafe extern "C" fn evhttp_find_header(
    headers: *const evkeyvalq,
    key: *const c_char,
) -> *const c_char {
    guard(ptr::null(), || {
        // SAFETY: NULL or a C string (the contract).
        let Some(key) = (unsafe { c_bytes(key) }) else {
            return ptr::null();
        };
        if headers.is_null() {
            return ptr::null();
        }
        // SAFETY: a well-formed list (the contract).
        let elm = unsafe { find(headers, key) };
        if elm.is_null() {
            return ptr::null();
        }
        // SAFETY: an entry of the list, read through its raw place (C holds it too).
        unsafe { (*elm).value }
    })
}

/// `evhttp_remove_header`: removes and frees the first entry whose key equals `key` (ASCII case
/// ignored); 0, or -1 when there is none.
#[no_mangle]
pub unsafe extern "C" fn evhttp_remove_header(
    headers: *mut evkeyvalq,
    key: *const c_char,
) -> c_int {
    guard(-1, || {
        // SAFETY: NULL or a C string (the contract).
        let Some(key) = (unsafe { c_bytes(key) }) else {
            return -1;
        };
        if headers.is_null() {
            return -1;
        }
        // SAFETY: a well-formed list (the contract).
        let elm = unsafe { find(headers, key) };
        if elm.is_null() {
            return -1;
        }
        // SAFETY: `elm` is an entry of `headers`, allocated as the contract says.
        unsafe { remove_entry(headers, elm) };
        0
    })
}

/// `evhttp_add_header`: appends a copy of `key` and `value`; -1 when the key is not an HTTP token
/// or the value holds CR or LF (see the module docs), or on NULL or out of memory.
#[no_mangle]
pub unsafe extern "C" fn evhttp_add_header(
    headers: *mut evkeyvalq,
    key: *const c_char,
    value: *const c_char,
) -> c_int {
    guard(-1, || {
        // SAFETY: NULL or C strings (the contract).
        let (Some(k), Some(v)) = (unsafe { c_bytes(key) }, unsafe { c_bytes(value) }) else {
            log::warn!("evhttp_add_header: NULL key or value");
            return -1;
        };
        if headers.is_null() {
            log::warn!("evhttp_add_header: NULL headers");
            return -1;
        }
        // A key that is not UTF-8 is not a token either.
        let checked = std::str::from_utf8(k)
            .map_err(|_| revent_http::HeaderError::InvalidName)
            .and_then(|k| Headers::check_field(k, v));
        if let Err(e) = checked {
            log::debug!("evhttp_add_header: dropped: {e}");
            return -1;
        }
        // SAFETY: a well-formed list (the contract); neither string holds a NUL.
        if unsafe { append(headers, k, v) } {
            0
        } else {
            -1
        }
    })
}

/// `evhttp_clear_headers`: frees every entry (with the library's `free`, so a list C built itself
/// must come from `malloc`, or from `event_set_mem_functions`' allocator when it is set) and leaves
/// the list empty.
#[no_mangle]
pub unsafe extern "C" fn evhttp_clear_headers(headers: *mut evkeyvalq) {
    guard((), || {
        if !headers.is_null() {
            // SAFETY: a well-formed list allocated as documented (the contract).
            unsafe { clear(headers) };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of `h`, walked forward, with each entry's back link checked.
    ///
    /// # Safety
    /// `h` is a well-formed list.
    unsafe fn keys(h: *mut evkeyvalq) -> Vec<String> {
        let mut out = vec![];
        // SAFETY: the caller's contract.
        unsafe {
            let mut e = (*h).tqh_first;
            let mut prev: *mut *mut evkeyval = ptr::addr_of_mut!((*h).tqh_first);
            while !e.is_null() {
                assert_eq!((*e).next.tqe_prev, prev);
                out.push(CStr::from_ptr((*e).key).to_str().unwrap().to_owned());
                prev = ptr::addr_of_mut!((*e).next.tqe_next);
                e = (*e).next.tqe_next;
            }
            assert_eq!((*h).tqh_last, prev);
        }
        out
    }

    /// The list code on its own (also run under Miri: `cargo +nightly miri test -p revent-capi
    /// --lib http_util::tests::list_links`).
    #[test]
    fn list_links_stay_whole() {
        let mut h = evkeyvalq {
            tqh_first: ptr::null_mut(),
            tqh_last: ptr::null_mut(),
        };
        // The list points into itself, so it is used through one raw pointer, as C does (a `h`
        // for each call would invalidate the pointers derived from the one before).
        let h = ptr::addr_of_mut!(h);
        // SAFETY: a list of our own, initialized first; C strings throughout.
        unsafe {
            init(h);
            assert!(keys(h).is_empty());
            for k in ["a", "B", "c", "b", "d"] {
                assert!(append(h, k.as_bytes(), b"v"));
            }
            assert_eq!(keys(h), ["a", "B", "c", "b", "d"]);
            assert_eq!(evhttp_remove_header(h, c"b".as_ptr()), 0); // the first "b"
            assert_eq!(keys(h), ["a", "c", "b", "d"]);
            assert_eq!(evhttp_remove_header(h, c"D".as_ptr()), 0); // the last
            assert_eq!(evhttp_remove_header(h, c"A".as_ptr()), 0); // the first
            assert_eq!(evhttp_remove_header(h, c"x".as_ptr()), -1);
            assert_eq!(keys(h), ["c", "b"]);
            assert_eq!(evhttp_add_header(h, c"e".as_ptr(), c"w".as_ptr()), 0);
            assert_eq!(keys(h), ["c", "b", "e"]);
            let w = evhttp_find_header(h, c"E".as_ptr());
            assert_eq!(CStr::from_ptr(w), c"w");
            assert_eq!(evhttp_add_header(h, c"f".as_ptr(), c"a\r\n b".as_ptr()), -1);
            assert_eq!(evhttp_add_header(h, c"f g".as_ptr(), c"x".as_ptr()), -1);
            assert_eq!(evhttp_add_header(h, c"\xe9".as_ptr(), c"x".as_ptr()), -1);
            clear(h);
            assert!(keys(h).is_empty());
            assert!(append(h, b"z", b""));
            assert_eq!(keys(h), ["z"]);
            evhttp_clear_headers(h);
            assert!(keys(h).is_empty());
        }
    }

    #[test]
    fn latin1_round_trip() {
        let all: Vec<u8> = (1..=255).collect();
        let s = latin1(&all);
        assert_eq!(s.chars().count(), 255);
        assert_eq!(&*unlatin1(&s), &all[..]);
        assert!(matches!(latin1(b"plain"), Cow::Borrowed("plain")));
        // Valid UTF-8 that is not ASCII goes byte by byte too, so it comes back the same.
        assert_eq!(&*unlatin1(&latin1("é".as_bytes())), "é".as_bytes());
    }

    #[test]
    fn null_arguments_are_errors() {
        let mut list = evkeyvalq {
            tqh_first: ptr::null_mut(),
            tqh_last: ptr::null_mut(),
        };
        let h = ptr::addr_of_mut!(list);
        // SAFETY: NULLs where the functions accept them (they report them), a live list.
        unsafe {
            assert!(evhttp_uri_parse(ptr::null()).is_null());
            assert!(evhttp_uri_get_host(ptr::null()).is_null());
            assert_eq!(evhttp_uri_get_port(ptr::null()), -1);
            assert_eq!(evhttp_uri_set_path(ptr::null_mut(), c"/".as_ptr()), -1);
            assert_eq!(evhttp_uri_set_port(ptr::null_mut(), 1), -1);
            evhttp_uri_set_flags(ptr::null_mut(), 1);
            evhttp_uri_free(ptr::null_mut());
            let mut buf = [0 as c_char; 8];
            assert!(evhttp_uri_join(ptr::null_mut(), buf.as_mut_ptr(), 8).is_null());
            let u = evhttp_uri_new();
            assert!(evhttp_uri_join(u, ptr::null_mut(), 8).is_null());
            evhttp_uri_free(u);
            assert!(evhttp_encode_uri(ptr::null()).is_null());
            assert!(evhttp_uriencode(ptr::null(), 3, 0).is_null());
            assert!(evhttp_decode_uri(ptr::null()).is_null());
            assert!(evhttp_uridecode(ptr::null(), 0, ptr::null_mut()).is_null());
            assert!(evhttp_htmlescape(ptr::null()).is_null());
            assert_eq!(evhttp_parse_query(ptr::null(), h), -1);
            assert!((*h).tqh_first.is_null() && (*h).tqh_last == ptr::addr_of_mut!((*h).tqh_first));
            assert_eq!(evhttp_parse_query(c"/?a=1".as_ptr(), ptr::null_mut()), -1);
            assert_eq!(evhttp_parse_query_str(c"a=1".as_ptr(), ptr::null_mut()), -1);
            assert_eq!(
                evhttp_add_header(ptr::null_mut(), c"a".as_ptr(), c"b".as_ptr()),
                -1
            );
            assert_eq!(evhttp_add_header(h, ptr::null(), c"b".as_ptr()), -1);
            assert_eq!(evhttp_add_header(h, c"a".as_ptr(), ptr::null()), -1);
            assert!(evhttp_find_header(ptr::null(), c"a".as_ptr()).is_null());
            assert!(evhttp_find_header(h, ptr::null()).is_null());
            assert_eq!(evhttp_remove_header(ptr::null_mut(), c"a".as_ptr()), -1);
            assert_eq!(evhttp_remove_header(h, ptr::null()), -1);
            evhttp_clear_headers(ptr::null_mut());
            assert!((*h).tqh_first.is_null());
        }
    }

    #[test]
    fn a_uri_keeps_bytes_that_are_not_utf8() {
        // SAFETY: C strings; a URI of this library, freed once.
        unsafe {
            let u = evhttp_uri_parse_with_flags(
                c"/caf\xe9?\xff#\x80".as_ptr(),
                EVHTTP_URI_NONCONFORMANT,
            );
            assert!(!u.is_null());
            assert_eq!(
                CStr::from_ptr(evhttp_uri_get_path(u)).to_bytes(),
                b"/caf\xe9"
            );
            assert_eq!(CStr::from_ptr(evhttp_uri_get_query(u)).to_bytes(), b"\xff");
            assert_eq!(evhttp_uri_set_fragment(u, c"\xc3\xa9\xe9".as_ptr()), 0);
            let mut buf = [0 as c_char; 32];
            assert!(!evhttp_uri_join(u, buf.as_mut_ptr(), buf.len()).is_null());
            assert_eq!(
                CStr::from_ptr(buf.as_ptr()).to_bytes(),
                b"/caf\xe9?\xff#\xc3\xa9\xe9"
            );
            evhttp_uri_set_flags(u, 0);
            assert_eq!(evhttp_uri_set_path(u, c"/\xe9".as_ptr()), -1);
            evhttp_uri_free(u);
            assert!(evhttp_uri_parse(c"/caf\xe9".as_ptr()).is_null());
        }
    }

    #[test]
    fn query_pairs_of_bytes_that_are_not_utf8() {
        let pairs = query_pairs(b"k\xe9y=v\xe9+%41%&x=\xff%ff").unwrap();
        assert_eq!(
            pairs,
            [
                (b"k\xe9y".to_vec(), b"v\xe9 A%".to_vec()),
                (b"x".to_vec(), b"\xff\xff".to_vec())
            ]
        );
        // A '%' before an escaped byte does not complete an escape with it.
        let pairs = query_pairs(b"a=%\xe9%4\xe9").unwrap();
        assert_eq!(pairs, [(b"a".to_vec(), b"%\xe9%4\xe9".to_vec())]);
        assert!(query_pairs(b"\xe9").is_err());
        assert!(query_pairs(b"=\xe9").is_err());
    }
}
