//! URIs: libevent's `struct evhttp_uri`, `evhttp_uri_parse_with_flags`, `evhttp_uri_join` and the
//! `evhttp_uri_get_*`/`evhttp_uri_set_*` accessors.
//!
//! [`Uri::parse`] matches RFC 3986's URI-reference (`scheme ":" hier-part` and relative references)
//! as libevent checks it, and decodes nothing: `%HH` escapes stay in the components as they were.
//! What it accepts, component by component:
//!
//! - scheme: the text before the first `:` when it is `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`;
//!   otherwise there is no scheme, and a relative reference's first path segment may not hold a `:`;
//! - authority, after `//` up to the next `/`, `?` or `#`: `[userinfo "@"] host [":" [port]]`, where
//!   userinfo is unreserved, sub-delims, `:` and `%HH`; the host is empty, a reg-name or IPv4 address
//!   (unreserved, sub-delims and `%HH`), a bracketed IPv6 address (as libevent's own address parser
//!   reads it, which takes a few forms RFC 4291 does not, such as `[1::2:]`, `[0x12::]` and
//!   `[::1. 2.3.4]`: see `libevent_inet_pton6` in the source) or a bracketed `vX.…` IPvFuture; the
//!   port is decimal digits up to 65535 (an empty port is no port);
//! - path, query and fragment: pchar (`unreserved / sub-delims / ":" / "@" / "/" / %HH`), and `?`
//!   too in the query and fragment. With [`UriFlags::NONCONFORMANT`] they may hold any character
//!   except the delimiters that end them: the path ends at `?` or `#`, the query at `#`, the
//!   fragment at the end of the input.
//!
//! Where this differs from libevent 2.1, on purpose:
//!
//! - a NUL anywhere is refused ([`UriError::Nul`]): libevent's C strings end at one, so it would parse
//!   only what comes before it; a Rust string can hold one, and cutting there would silently lose the
//!   rest;
//! - the port is a `u16`, so [`Uri::set_port`] cannot be given 65536 or more (libevent 2.1's
//!   `evhttp_uri_set_port` takes any int from -1 up, and its join then prints a URI its own parser
//!   refuses);
//! - a host together with a path that is neither empty nor starts with `/` is refused by the setter
//!   that would create the pair ([`UriError::RelativePathWithHost`]); libevent accepts it and then
//!   fails in `evhttp_uri_join`. So [`Uri::join`] and `Display` cannot fail.

use std::fmt;
use std::str::FromStr;

use crate::chars::{is_pct_encoded, is_subdelim, is_unreserved};

bitflags::bitflags! {
    /// How strictly a [`Uri`] is parsed and its path, query and fragment setters check their value
    /// (libevent's `EVHTTP_URI_*` flags of 2.1).
    ///
    /// ```
    /// use revent_http::{Uri, UriFlags};
    ///
    /// assert!(Uri::parse("http://example.com/a b").is_err());
    /// let uri = Uri::parse_with("http://example.com/a b", UriFlags::NONCONFORMANT)?;
    /// assert_eq!(uri.path(), Some("/a b"));
    /// assert_eq!(uri.flags(), UriFlags::NONCONFORMANT);
    /// # Ok::<(), revent_http::UriError>(())
    /// ```
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct UriFlags: u32 {
        /// `EVHTTP_URI_NONCONFORMANT`: tolerate characters RFC 3986 forbids (spaces, control
        /// characters, `%` without two hex digits, non-ASCII) in the path, query and fragment, as
        /// some HTTP clients send them. The scheme and authority are checked as strictly as ever.
        const NONCONFORMANT = 0x01;
    }
}

/// A component of a URI, as named in a [`UriError`].
///
/// ```
/// use revent_http::{Part, Uri, UriError};
///
/// let err = Uri::parse("http://example.com:80x/").unwrap_err();
/// // "80x" is not all digits, so it is no port: the host is "example.com:80x", refused at the ':'.
/// assert_eq!(err, UriError::Invalid { part: Part::Host, at: 18 });
/// assert_eq!(Part::Host.to_string(), "host");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The scheme, before the first `:`.
    Scheme,
    /// The userinfo, before an `@` in the authority.
    Userinfo,
    /// The host: reg-name, IPv4 address or bracketed IP literal.
    Host,
    /// The port, after the host's last `:`.
    Port,
    /// The path.
    Path,
    /// The query, after `?`.
    Query,
    /// The fragment, after `#`.
    Fragment,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Scheme => "scheme",
            Part::Userinfo => "userinfo",
            Part::Host => "host",
            Part::Port => "port",
            Part::Path => "path",
            Part::Query => "query",
            Part::Fragment => "fragment",
        })
    }
}

/// Why a URI or a component was refused (where libevent returns NULL or -1).
///
/// Offsets are in bytes, into the string given to [`Uri::parse`] or to the setter.
///
/// ```
/// use revent_http::{Part, Uri, UriError};
///
/// assert_eq!(
///     Uri::parse("http://example.com/why-hello%7").unwrap_err(),
///     UriError::Invalid { part: Part::Path, at: 28 }
/// );
/// assert_eq!(Uri::parse("99:99/foo").unwrap_err(), UriError::ColonInFirstSegment { at: 2 });
/// assert_eq!(Uri::parse("/a\0b").unwrap_err(), UriError::Nul { at: 2 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UriError {
    /// A NUL byte at `at` (libevent would have stopped reading there; see the module docs).
    Nul {
        /// Offset of the NUL.
        at: usize,
    },
    /// `part` does not match its grammar; `at` is the first byte refused. A bracketed IPv6
    /// address is checked as a whole and refused at its `[`; a port too large, at the digit that
    /// took it past 65535.
    Invalid {
        /// The component refused.
        part: Part,
        /// Offset of the first byte refused.
        at: usize,
    },
    /// There is no scheme and the first segment of the path holds a `:` at `at`, so it would read as
    /// a scheme (RFC 3986's `path-noscheme`).
    ColonInFirstSegment {
        /// Offset of the `:`.
        at: usize,
    },
    /// The URI would have a host and a path that is neither empty nor starts with `/`; no URI
    /// string has that shape, so libevent fails to join it and revent refuses to build it.
    RelativePathWithHost,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::Nul { at } => write!(f, "NUL byte in URI at byte {at}"),
            UriError::Invalid { part, at } => write!(f, "invalid URI {part} at byte {at}"),
            UriError::ColonInFirstSegment { at } => {
                write!(
                    f,
                    "':' in the first path segment of a URI without scheme at byte {at}"
                )
            }
            UriError::RelativePathWithHost => {
                f.write_str("a URI with a host needs an empty path or one that starts with '/'")
            }
        }
    }
}

impl std::error::Error for UriError {}

/// A URI reference split into its components, as libevent's `struct evhttp_uri`.
///
/// A component that is absent is `None`, which differs from present and empty: `mailto:a@b` has no
/// host, `file:///etc/motd` has an empty one. A parsed URI always has a path (maybe empty); one made
/// with [`Uri::new`] has none until [`Uri::set_path`]. Nothing is percent-decoded.
///
/// ```
/// use revent_http::Uri;
///
/// let uri = Uri::parse("scheme://user:pass@foo.com:42/?q=test&s=some+thing#fragment")?;
/// assert_eq!(uri.scheme(), Some("scheme"));
/// assert_eq!(uri.userinfo(), Some("user:pass"));
/// assert_eq!(uri.host(), Some("foo.com"));
/// assert_eq!(uri.port(), Some(42));
/// assert_eq!(uri.path(), Some("/"));
/// assert_eq!(uri.query(), Some("q=test&s=some+thing"));
/// assert_eq!(uri.fragment(), Some("fragment"));
///
/// let mut built = Uri::new();
/// built.set_scheme(Some("http"))?;
/// built.set_host(Some("[::1]"))?;
/// built.set_port(Some(8080));
/// built.set_path(Some("/index.html"))?;
/// assert_eq!(built.join(), "http://[::1]:8080/index.html");
/// # Ok::<(), revent_http::UriError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Uri {
    flags: UriFlags,
    scheme: Option<String>,
    userinfo: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    query: Option<String>,
    fragment: Option<String>,
}

impl Uri {
    /// An empty URI with no component set and no flags (`evhttp_uri_new`); it joins to `""`.
    pub fn new() -> Uri {
        Uri::default()
    }

    /// Parses `s` strictly (`evhttp_uri_parse`): `parse_with(s, UriFlags::empty())`.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        Uri::parse_with(s, UriFlags::empty())
    }

    /// Parses the URI reference `s` as `evhttp_uri_parse_with_flags` (see the [module](self)
    /// docs for the grammar); the URI keeps `flags` for its setters.
    ///
    /// ```
    /// use revent_http::{Uri, UriFlags};
    ///
    /// let uri = Uri::parse("/s:ome/path?q=99#fred")?;
    /// assert_eq!((uri.scheme(), uri.host()), (None, None));
    /// assert_eq!((uri.path(), uri.query(), uri.fragment()),
    ///            (Some("/s:ome/path"), Some("q=99"), Some("fred")));
    /// assert!(Uri::parse("http://www.test.com/foo?ba%r").is_err());
    /// assert!(Uri::parse_with("http://www.test.com/foo?ba%r", UriFlags::NONCONFORMANT).is_ok());
    /// # Ok::<(), revent_http::UriError>(())
    /// ```
    pub fn parse_with(s: &str, flags: UriFlags) -> Result<Uri, UriError> {
        let mut uri = Uri::default();
        uri.parse_into(s, flags)?;
        Ok(uri)
    }

    /// [`parse_with`](Self::parse_with) into `self`, every component replaced, reusing the room
    /// its strings have (the server parses each request's target into the last one's). After an
    /// error `self` holds some of the components.
    pub(crate) fn parse_into(&mut self, s: &str, flags: UriFlags) -> Result<(), UriError> {
        let b = s.as_bytes();
        if let Some(at) = memchr::memchr(0, b) {
            return Err(UriError::Nul { at });
        }
        let uri = self;
        uri.flags = flags;
        uri.scheme = None;
        uri.userinfo = None;
        uri.host = None;
        uri.port = None;
        let mut pos = 0;

        // 1. scheme ":", if the text before the first ':' is one (an origin-form target, which
        // starts with '/', has none).
        if b.first() != Some(&b'/') {
            if let Some(colon) = memchr::memchr(b':', b) {
                if check_scheme(&b[..colon]).is_ok() {
                    uri.scheme = Some(s[..colon].to_owned());
                    pos = colon + 1;
                }
            }
        }

        // 2. "//" authority.
        if b[pos..].starts_with(b"//") {
            let start = pos + 2;
            let end = b[start..]
                .iter()
                .position(|&c| matches!(c, b'/' | b'?' | b'#'))
                .map_or(b.len(), |i| start + i);
            uri.parse_authority(s, start, end)?;
            pos = end;
        }

        // 3. path, then "?" query, then "#" fragment.
        let path = pos..end_of(b, pos, Part::Path, flags);
        pos = path.end;
        let mut last = Part::Path;
        let mut query = None;
        if b.get(pos) == Some(&b'?') {
            let q = pos + 1..end_of(b, pos + 1, Part::Query, flags);
            pos = q.end;
            query = Some(q);
            last = Part::Query;
        }
        let mut fragment = None;
        if b.get(pos) == Some(&b'#') {
            let f = pos + 1..end_of(b, pos + 1, Part::Fragment, flags);
            pos = f.end;
            fragment = Some(f);
            last = Part::Fragment;
        }
        if pos != b.len() {
            return Err(UriError::Invalid {
                part: last,
                at: pos,
            });
        }
        // After an authority the path starts with '/' or is empty, and without one it cannot
        // start with "//": the authority's end and "//" saw to both.
        debug_assert!(uri.host.is_none() || path.is_empty() || b[path.start] == b'/');
        debug_assert!(uri.host.is_some() || !b[path.clone()].starts_with(b"//"));
        if uri.scheme.is_none() {
            if let Some(i) = colon_in_first_segment(&b[path.clone()]) {
                return Err(UriError::ColonInFirstSegment { at: path.start + i });
            }
        }
        set_reusing(&mut uri.path, Some(&s[path]));
        set_reusing(&mut uri.query, query.map(|q| &s[q]));
        set_reusing(&mut uri.fragment, fragment.map(|f| &s[f]));
        Ok(())
    }

    /// Parses `s[start..end]`, the authority, into userinfo, host and port.
    fn parse_authority(&mut self, s: &str, start: usize, end: usize) -> Result<(), UriError> {
        let b = s.as_bytes();
        let mut host_start = start;
        if let Some(i) = b[start..end].iter().position(|&c| c == b'@') {
            let at = start + i;
            check_userinfo(&b[start..at]).map_err(|i| UriError::Invalid {
                part: Part::Userinfo,
                at: start + i,
            })?;
            self.userinfo = Some(s[start..at].to_owned());
            host_start = at + 1;
        }
        let mut host_end = end;
        // A ':' followed by nothing but digits up to the end is the port.
        if let Some(i) = b[host_start..end].iter().rposition(|c| !c.is_ascii_digit()) {
            let colon = host_start + i;
            if b[colon] == b':' {
                let digits = &b[colon + 1..end];
                if !digits.is_empty() {
                    let port = parse_port(digits).map_err(|i| UriError::Invalid {
                        part: Part::Port,
                        at: colon + 1 + i,
                    })?;
                    self.port = Some(port);
                }
                host_end = colon;
            }
        }
        let host = &b[host_start..host_end];
        let checked = if host.len() >= 2 && host[0] == b'[' && host[host.len() - 1] == b']' {
            check_ip_literal(host)
        } else {
            check_regname(host)
        };
        checked.map_err(|i| UriError::Invalid {
            part: Part::Host,
            at: host_start + i,
        })?;
        self.host = Some(s[host_start..host_end].to_owned());
        Ok(())
    }

    /// Joins the components back into a URI reference (`evhttp_uri_join`): `scheme ":"` if there is
    /// a scheme; `"//" [userinfo "@"] host [":" port]` only if there is a host (a userinfo or port
    /// without a host is not written); then the path, `"?" query` and `"#" fragment` as present.
    /// Nothing is escaped. The same text as `to_string()`.
    ///
    /// ```
    /// use revent_http::Uri;
    ///
    /// assert_eq!(Uri::parse("http://www.test.com:/")?.join(), "http://www.test.com/");
    /// let mut uri = Uri::new();
    /// uri.set_userinfo(Some("user"))?;
    /// uri.set_port(Some(80));
    /// uri.set_path(Some("x"))?;
    /// assert_eq!(uri.join(), "x");
    /// # Ok::<(), revent_http::UriError>(())
    /// ```
    pub fn join(&self) -> String {
        self.to_string()
    }

    /// The flags the URI was parsed with or last given by [`Uri::set_flags`].
    pub fn flags(&self) -> UriFlags {
        self.flags
    }

    /// The scheme, without its `:` (`evhttp_uri_get_scheme`).
    pub fn scheme(&self) -> Option<&str> {
        self.scheme.as_deref()
    }

    /// The userinfo, without its `@` (`evhttp_uri_get_userinfo`).
    pub fn userinfo(&self) -> Option<&str> {
        self.userinfo.as_deref()
    }

    /// The host (`evhttp_uri_get_host`): a reg-name or IPv4 address, an IP literal with its
    /// brackets, or `""` for an authority without host; `None` when there is no authority.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The port (`evhttp_uri_get_port`, whose -1 is `None`).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The path (`evhttp_uri_get_path`); `Some("")` when a parsed URI has none.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The query, without its `?` (`evhttp_uri_get_query`).
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The fragment, without its `#` (`evhttp_uri_get_fragment`).
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.as_deref()
    }

    /// Replaces the flags the path, query and fragment setters check with (`evhttp_uri_set_flags`);
    /// the components already set are not checked again.
    pub fn set_flags(&mut self, flags: UriFlags) {
        self.flags = flags;
    }

    /// Sets or clears the scheme (`evhttp_uri_set_scheme`); it must be
    /// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`, without the `:`.
    ///
    /// ```
    /// use revent_http::Uri;
    ///
    /// let mut uri = Uri::new();
    /// assert!(uri.set_scheme(Some("33")).is_err());
    /// assert!(uri.set_scheme(Some("svn+ssh")).is_ok());
    /// assert_eq!(uri.scheme(), Some("svn+ssh"));
    /// ```
    pub fn set_scheme(&mut self, scheme: Option<&str>) -> Result<(), UriError> {
        if let Some(s) = scheme {
            check_nul(s)?;
            check_scheme(s.as_bytes()).map_err(|at| UriError::Invalid {
                part: Part::Scheme,
                at,
            })?;
        }
        self.scheme = scheme.map(str::to_owned);
        Ok(())
    }

    /// Sets or clears the userinfo (`evhttp_uri_set_userinfo`): unreserved characters,
    /// sub-delims, `:` and `%HH`, without the `@`. It is written only when there is a host.
    pub fn set_userinfo(&mut self, userinfo: Option<&str>) -> Result<(), UriError> {
        if let Some(s) = userinfo {
            check_nul(s)?;
            check_userinfo(s.as_bytes()).map_err(|at| UriError::Invalid {
                part: Part::Userinfo,
                at,
            })?;
        }
        self.userinfo = userinfo.map(str::to_owned);
        Ok(())
    }

    /// Sets or clears the host (`evhttp_uri_set_host`). A host that starts with `[` must be a
    /// bracketed IPv6 address or IPvFuture; any other must be a reg-name or IPv4 address
    /// (unreserved characters, sub-delims and `%HH`; the empty host too). A host cannot be set while
    /// the path is neither empty nor starts with `/` ([`UriError::RelativePathWithHost`]).
    ///
    /// ```
    /// use revent_http::Uri;
    ///
    /// let mut uri = Uri::new();
    /// assert!(uri.set_host(Some("www.[foo].com")).is_err());
    /// assert!(uri.set_host(Some("[1.2.3.4]")).is_err());
    /// assert!(uri.set_host(Some("[1:2:3:4::]")).is_ok());
    /// assert!(uri.set_host(Some("[v7.wobblewobble]")).is_ok());
    /// ```
    pub fn set_host(&mut self, host: Option<&str>) -> Result<(), UriError> {
        if let Some(h) = host {
            check_nul(h)?;
            let b = h.as_bytes();
            let checked = if b.first() == Some(&b'[') {
                check_ip_literal(b)
            } else {
                check_regname(b)
            };
            checked.map_err(|at| UriError::Invalid {
                part: Part::Host,
                at,
            })?;
            if self.path.as_deref().is_some_and(is_relative) {
                return Err(UriError::RelativePathWithHost);
            }
        }
        self.host = host.map(str::to_owned);
        Ok(())
    }

    /// Sets or clears the port (`evhttp_uri_set_port`; `None` is libevent's -1). It is written only
    /// when there is a host.
    pub fn set_port(&mut self, port: Option<u16>) {
        self.port = port;
    }

    /// Sets or clears the path (`evhttp_uri_set_path`). Strictly, pchar, `/` and `%HH` only; with
    /// [`UriFlags::NONCONFORMANT`], anything but `?` and `#` (and NUL). While there is a host, the
    /// path must be empty or start with `/` ([`UriError::RelativePathWithHost`]). A relative path is
    /// not checked against the scheme: `a:b` without a scheme joins to what parses as scheme `a`.
    pub fn set_path(&mut self, path: Option<&str>) -> Result<(), UriError> {
        if let Some(p) = path {
            self.check_tail(p, Part::Path)?;
            if self.host.is_some() && is_relative(p) {
                return Err(UriError::RelativePathWithHost);
            }
        }
        self.path = path.map(str::to_owned);
        Ok(())
    }

    /// Sets or clears the query, without its `?` (`evhttp_uri_set_query`). Strictly, pchar, `/`,
    /// `?` and `%HH` only; with [`UriFlags::NONCONFORMANT`], anything but `#` (and NUL).
    pub fn set_query(&mut self, query: Option<&str>) -> Result<(), UriError> {
        if let Some(q) = query {
            self.check_tail(q, Part::Query)?;
        }
        self.query = query.map(str::to_owned);
        Ok(())
    }

    /// Sets or clears the fragment, without its `#` (`evhttp_uri_set_fragment`). Strictly, pchar,
    /// `/`, `?` and `%HH` only; with [`UriFlags::NONCONFORMANT`], anything but NUL.
    pub fn set_fragment(&mut self, fragment: Option<&str>) -> Result<(), UriError> {
        if let Some(f) = fragment {
            self.check_tail(f, Part::Fragment)?;
        }
        self.fragment = fragment.map(str::to_owned);
        Ok(())
    }

    /// Checks a whole path, query or fragment value under the URI's flags.
    fn check_tail(&self, value: &str, part: Part) -> Result<(), UriError> {
        check_nul(value)?;
        let end = end_of(value.as_bytes(), 0, part, self.flags);
        if end == value.len() {
            Ok(())
        } else {
            Err(UriError::Invalid { part, at: end })
        }
    }
}

impl fmt::Display for Uri {
    /// Writes what [`Uri::join`] returns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}:")?;
        }
        if let Some(host) = &self.host {
            f.write_str("//")?;
            if let Some(userinfo) = &self.userinfo {
                write!(f, "{userinfo}@")?;
            }
            f.write_str(host)?;
            if let Some(port) = self.port {
                write!(f, ":{port}")?;
            }
        }
        if let Some(path) = &self.path {
            f.write_str(path)?;
        }
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        if let Some(fragment) = &self.fragment {
            write!(f, "#{fragment}")?;
        }
        Ok(())
    }
}

impl FromStr for Uri {
    type Err = UriError;

    /// [`Uri::parse`]: strict.
    fn from_str(s: &str) -> Result<Uri, UriError> {
        Uri::parse(s)
    }
}

/// Sets `slot` to `value`, copying into the string already there rather than allocating one.
fn set_reusing(slot: &mut Option<String>, value: Option<&str>) {
    match (slot.as_mut(), value) {
        (Some(old), Some(v)) => {
            old.clear();
            old.push_str(v);
        }
        (_, v) => *slot = v.map(str::to_owned),
    }
}

fn check_nul(s: &str) -> Result<(), UriError> {
    match s.bytes().position(|c| c == 0) {
        Some(at) => Err(UriError::Nul { at }),
        None => Ok(()),
    }
}

/// A path that is neither empty nor starts with '/'.
fn is_relative(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/')
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`; the error is the first byte refused.
fn check_scheme(s: &[u8]) -> Result<(), usize> {
    match s.first() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Err(0),
    }
    match s
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')))
    {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

/// Checks that `s` is made of `%HH` escapes and bytes for which `allowed` is true.
fn check_chars(s: &[u8], allowed: impl Fn(u8) -> bool) -> Result<(), usize> {
    let mut i = 0;
    while i < s.len() {
        if allowed(s[i]) {
            i += 1;
        } else if is_pct_encoded(s, i) {
            i += 3;
        } else {
            return Err(i);
        }
    }
    Ok(())
}

/// `userinfo = *( unreserved / pct-encoded / sub-delims / ":" )`.
fn check_userinfo(s: &[u8]) -> Result<(), usize> {
    check_chars(s, |c| is_unreserved(c) || is_subdelim(c) || c == b':')
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, which IPv4 addresses match too.
fn check_regname(s: &[u8]) -> Result<(), usize> {
    check_chars(s, |c| is_unreserved(c) || is_subdelim(c))
}

/// `IP-literal = "[" ( IPv6address / IPvFuture ) "]"` as libevent checks it: after `[v`, at least
/// one hex digit, a `.`, then unreserved, sub-delims and `:` (none at all is accepted, as libevent
/// does); otherwise an IPv6 address shorter than 64 bytes as [`libevent_inet_pton6`] reads it. A
/// refused IPv6 address is reported at its `[`.
fn check_ip_literal(s: &[u8]) -> Result<(), usize> {
    let n = s.len();
    if n < 3 || s[0] != b'[' || s[n - 1] != b']' {
        return Err(0);
    }
    let inner = &s[1..n - 1];
    if inner[0] == b'v' {
        let rest = &inner[1..];
        let hex = rest.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if hex == 0 {
            return Err(2);
        }
        if rest.get(hex) != Some(&b'.') {
            return Err(2 + hex);
        }
        let tail = &rest[hex + 1..];
        return match tail
            .iter()
            .position(|&c| !(is_unreserved(c) || is_subdelim(c) || c == b':'))
        {
            Some(i) => Err(2 + hex + 1 + i),
            None => Ok(()),
        };
    }
    // libevent copies the address into a 64-byte buffer and hands it to evutil_inet_pton.
    if inner.len() < 64 && libevent_inet_pton6(inner) {
        Ok(())
    } else {
        Err(0)
    }
}

/// Whether libevent 2.1's `evutil_inet_pton(AF_INET6, ..)` takes `src`. libevent uses its own
/// parser there, not the C library's `inet_pton`, and it is laxer than RFC 4291 in ways a URI
/// host inherits:
///
/// - a group is what `strtol(.., 16)` reads, at most 4 characters, so `0x12` is a group;
/// - after the last group one `:` may follow (`1::2:`, `1:2:3:4:5:6:7:8:`);
/// - an embedded IPv4 address is what `sscanf("%u.%u.%u.%u%c")` reads: each number may have
///   leading zeros, and after the first, leading white space and a sign (`::1. +2.3.4`); each is
///   taken modulo 2^32 (`::4294967297.1.1.1` is `::1.1.1.1`) and must then be at most 255.
///
/// Zone identifiers (`%eth0`) are refused.
fn libevent_inet_pton6(src: &[u8]) -> bool {
    let mut set_words = 0;
    // The words end where the digits before the first '.' begin, if there is a '.'.
    let eow = match src.iter().position(|&c| c == b'.') {
        Some(0) => return false,
        None => src.len(),
        Some(dot) => {
            let eow = src[..dot]
                .iter()
                .rposition(|c| !c.is_ascii_digit())
                .map_or(0, |i| i + 1);
            if !scanf_ipv4(&src[eow..]) {
                return false;
            }
            set_words += 2;
            eow
        }
    };
    let mut i = 0; // groups read
    let mut gap = false;
    let mut s = 0;
    while s < eow {
        if i > 7 {
            return false;
        }
        let c = src[s];
        if c.is_ascii_hexdigit() {
            // strtol(.., 16) reads an optional "0x" and hex digits, past eow if they go on.
            let prefix = if c == b'0'
                && matches!(src.get(s + 1), Some(b'x' | b'X'))
                && src.get(s + 2).is_some_and(u8::is_ascii_hexdigit)
            {
                2
            } else {
                0
            };
            let len = prefix
                + src[s + prefix..]
                    .iter()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
            if len > 4 {
                return false;
            }
            i += 1;
            set_words += 1;
            s += len;
            if src.get(s) != Some(&b':') && s != eow {
                return false;
            }
            s += 1;
        } else if c == b':' && i > 0 && !gap {
            gap = true;
            s += 1;
        } else if c == b':' && i == 0 && src.get(s + 1) == Some(&b':') && !gap {
            gap = true;
            s += 2;
        } else {
            return false;
        }
    }
    !(set_words > 8 || (set_words == 8 && gap) || (set_words < 8 && !gap))
}

/// Whether `sscanf(s, "%u.%u.%u.%u%c", ..)` reads exactly four numbers that are each at most 255
/// (glibc: white space and a sign may precede each number; the value is `strtoul`'s, which is
/// `u64::MAX` on overflow and negated modulo 2^64 after a `-`, then cut to 32 bits).
fn scanf_ipv4(s: &[u8]) -> bool {
    let mut pos = 0;
    for k in 0..4 {
        if k > 0 {
            if s.get(pos) != Some(&b'.') {
                return false;
            }
            pos += 1;
        }
        while s
            .get(pos)
            .is_some_and(|&c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        {
            pos += 1;
        }
        let negative = s.get(pos) == Some(&b'-');
        if matches!(s.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        let digits = s[pos.min(s.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return false;
        }
        let mut value: Option<u64> = Some(0);
        for &d in &s[pos..pos + digits] {
            value = value.and_then(|v| v.checked_mul(10)?.checked_add(u64::from(d - b'0')));
        }
        pos += digits;
        let value = match value {
            None => u64::MAX,
            Some(v) if negative => v.wrapping_neg(),
            Some(v) => v,
        };
        if value as u32 > 255 {
            return false;
        }
    }
    pos == s.len()
}

/// The port's digits (all ASCII digits, at least one) as a number up to 65535; the error is the
/// digit that took it past.
fn parse_port(digits: &[u8]) -> Result<u16, usize> {
    let mut n: u32 = 0;
    for (i, &d) in digits.iter().enumerate() {
        n = n * 10 + u32::from(d - b'0');
        if n > u32::from(u16::MAX) {
            return Err(i);
        }
    }
    Ok(n as u16)
}

/// Where the path, query or fragment starting at `b[start]` ends: at the first byte its grammar
/// (under `flags`) does not allow, or at the end of `b`.
fn end_of(b: &[u8], start: usize, part: Part, flags: UriFlags) -> usize {
    if flags.contains(UriFlags::NONCONFORMANT) {
        let stop = |c: u8| match part {
            Part::Path => c == b'?' || c == b'#',
            Part::Query => c == b'#',
            _ => false,
        };
        return b[start..]
            .iter()
            .position(|&c| stop(c))
            .map_or(b.len(), |i| start + i);
    }
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        if is_unreserved(c) || is_subdelim(c) || matches!(c, b':' | b'@' | b'/') {
            i += 1;
        } else if is_pct_encoded(b, i) {
            i += 3;
        } else if c == b'?' && part != Part::Path {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// The offset of a ':' in the first segment of `path` (before any '/').
fn colon_in_first_segment(path: &[u8]) -> Option<usize> {
    path.iter()
        .take_while(|&&c| c != b'/')
        .position(|&c| c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_check() {
        assert_eq!(check_scheme(b"http"), Ok(()));
        assert_eq!(check_scheme(b"a+b-c.d9"), Ok(()));
        assert_eq!(check_scheme(b""), Err(0));
        assert_eq!(check_scheme(b"9a"), Err(0));
        assert_eq!(check_scheme(b"hi!"), Err(2));
        assert_eq!(check_scheme(b"h%3ttp"), Err(1));
    }

    #[test]
    fn port_bounds() {
        assert_eq!(parse_port(b"0"), Ok(0));
        assert_eq!(parse_port(b"65535"), Ok(65535));
        assert_eq!(parse_port(b"0000000000000080"), Ok(80));
        assert_eq!(parse_port(b"65536"), Err(4));
        assert_eq!(parse_port(b"9999999999999999999999999999999999999"), Err(4));
    }

    #[test]
    fn ip_literals() {
        for ok in [
            "[::1]",
            "[::]",
            "[ff00::127.0.0.1]",
            "[1:2:3:4::]",
            "[1::2:3:4:5:6:7]",
            "[v7.x]",
        ] {
            assert_eq!(check_ip_literal(ok.as_bytes()), Ok(()), "{ok}");
        }
        // libevent allows an empty IPvFuture tail after the '.'.
        assert_eq!(check_ip_literal(b"[v1.]"), Ok(()));
        assert_eq!(check_ip_literal(b"[v99.not_(any:time)_soon]"), Ok(()));
        for (bad, at) in [
            ("[]", 0),
            ("[v]", 2),
            ("[v.foo]", 2),
            ("[vX.foo]", 2),
            ("[v5]", 3),
            ("[v5X]", 3),
            ("[v5.fo%o]", 6),
            ("[V5.foo]", 0),
            ("[1.2.3.4]", 0),
            ("[hello-there]", 0),
            ("[::1%eth0]", 0),
            ("[1:2:3:4:5:6:7:8::]", 0),
            ("[::1", 0),
        ] {
            assert_eq!(check_ip_literal(bad.as_bytes()), Err(at), "{bad}");
        }
        // libevent's 64-byte buffer: an address of 63 bytes is read, one of 64 refused unread.
        let at_most = format!("[::1.2.3.{}4]", "0".repeat(54));
        assert_eq!(check_ip_literal(at_most.as_bytes()), Ok(()));
        let too_long = format!("[::1.2.3.{}4]", "0".repeat(55));
        assert_eq!(check_ip_literal(too_long.as_bytes()), Err(0));
    }

    /// What Debian's libevent 2.1.12 answers for each (checked with tests/against_libevent.rs).
    #[test]
    fn libevents_own_ipv6_parser() {
        for ok in [
            "::1",
            "1::",
            "1::2:",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "0x12::",
            "0X1::",
            "::0x12",
            "a::1.2.3.4",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "::01.2.3.4",
            "::1.02.3.4",
            "::1.2.3.0004",
            "::1. 2.3.4",
            "::1.\t2.3.4",
            "::1.2.3. +4",
            "::1.-0.3.4",
            "::4294967297.1.1.1",
            "::1.-4294967295.3.4",
        ] {
            assert!(libevent_inet_pton6(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ":",
            ":::",
            ":1::2",
            "1::2::",
            "::1::",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::",
            "12345::",
            "ffff1::",
            "0x123::",
            "0x::",
            "0xg::",
            ".1.2.3",
            "::.1.2.3",
            "::a1.2.3.4",
            "1.2.3.4",
            "::1.2.3",
            "::1.2.3.4.5",
            "::1.2..3",
            "::1.2.3.4 ",
            "::1.2.3.4:5",
            "::1.2.3.4%x",
            "::1%eth0",
            "::0x1.2.3.4",
            "::256.1.1.1",
            "::1.-2.3.4",
            "::2147483648.1.1.1",
            "::1.-99999999999999999999.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            " ::1",
        ] {
            assert!(!libevent_inet_pton6(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn first_segment_colon() {
        assert_eq!(colon_in_first_segment(b"a:b"), Some(1));
        assert_eq!(colon_in_first_segment(b"ab/c:d"), None);
        assert_eq!(colon_in_first_segment(b"/a:b"), None);
        assert_eq!(colon_in_first_segment(b""), None);
    }
}
