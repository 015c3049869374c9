//! HTTP/1.1 message heads: [`RequestParser`] and [`ResponseParser`] over an [`Evbuffer`], and the
//! body framing decision of RFC 9112 §6.3.
//!
//! The start line and header fields are parsed by `httparse`; this module finds where a head ends,
//! enforces the limits, classifies refusals and decides how the body is framed.
//!
//! Parsing is incremental: [`RequestParser::parse`] returns [`Progress::Partial`] until the head is
//! complete, and remembers how far it looked, so feeding a head one byte at a time costs linear time
//! (each byte is scanned once; the head is handed to `httparse` once, when it is complete). It never
//! looks more than one byte past [`Limits::max_head_bytes`]: a longer head is refused with 431 as
//! soon as that byte arrives, whatever else is buffered. On success the head's bytes are drained from
//! the buffer and whatever follows (the body, a pipelined request) stays in it.
//!
//! Refused (each with the status [`ParseError::status`] gives, and closing the connection):
//! - a NUL anywhere, a CR not followed by LF, a line starting with whitespace (obsolete folding),
//!   a header name that is not a token or has whitespace before its colon, control bytes in values;
//! - a version other than HTTP/1.0 or 1.1: 505 when it has the form `HTTP/d.d`, else 400 (so
//!   `HTTP/1.4294967297` is a 400, never a number that wrapped);
//! - `Content-Length` together with `Transfer-Encoding`, differing `Content-Length`s (identical
//!   repeats, `5, 5` included, are taken as one), a `Content-Length` that is not decimal digits
//!   fitting in 64 bits; `Transfer-Encoding` in HTTP/1.0; in a request, a `Transfer-Encoding` whose
//!   last coding is not `chunked` or that names `chunked` twice (400) or names another coding (501);
//! - more than one `Host` field.
//!
//! Deviations from libevent 2.1 (`evhttp_parse_firstline_`, `evhttp_parse_headers_`,
//! `evhttp_get_body`), each for safety or RFC 9112:
//! - libevent has no default limit on head size (`evhttp_set_max_headers_size` defaults to
//!   `EV_SIZE_MAX`) and none on the number of fields; here 64 KiB and 100 by default. libevent
//!   answers an oversized head with 413 and counts line contents without their CRLFs; here it is 431
//!   (RFC 6585) and the limit counts every byte of the head, line endings and leading empty lines
//!   included.
//! - libevent accepts any `HTTP/1.x` (and read the numbers with `%d`, which overflowed); here 1.0
//!   and 1.1 only.
//! - libevent takes the first `Content-Length` and ignores `Transfer-Encoding` values other than
//!   `chunked`; it unfolded obsolete line folding. All of those are refused here.
//! - An unknown method is not an error here either (libevent answers it 501 later, when it checks
//!   the server's allowed methods): it is [`Method::Other`].
//! - A missing `Host` in HTTP/1.1 is accepted, as libevent does (RFC 9112 §3.2 asks for 400); the
//!   server layer may refuse it.

use std::fmt;

use revent::Evbuffer;

use crate::chars::is_token;
use crate::error::ParseError;
use crate::headers::{is_valid_value, nul_cr_lf_candidates, Headers};
use crate::uri::{Uri, UriFlags};

/// Limits applied while parsing. The defaults suit a server on the open Internet.
///
/// ```
/// use revent_http::{Limits, RequestParser};
/// let limits = Limits { max_head_bytes: 8 * 1024, max_headers: 32, ..Limits::default() };
/// let parser = RequestParser::with_limits(limits);
/// assert_eq!(parser.limits().max_headers, 32);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (start line, header lines, the empty line, and any empty lines before the start
    /// line), and separately the largest trailer section, in bytes (431 past it). Default 64 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in a head, and trailer fields in a trailer section (431 past it).
    /// Default 100.
    pub max_headers: usize,
    /// Largest body, in bytes (413 past it): a `Content-Length` above it is refused with the head;
    /// chunked and close-delimited bodies are refused when they grow past it. Default unlimited,
    /// as libevent's `evhttp_set_max_body_size`: bodies are delivered as they arrive, not buffered.
    pub max_body: u64,
    /// Longest chunk-size line (size digits and extensions, without the CRLF), in bytes. Default
    /// 4096.
    pub max_chunk_line: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_body: u64::MAX,
            max_chunk_line: 4096,
        }
    }
}

/// The result of feeding a parser or decoder: more bytes are needed, or the item is complete.
///
/// ```
/// use revent_http::Progress;
/// let p: Progress<u8> = Progress::Partial;
/// assert!(!p.is_complete());
/// assert_eq!(Progress::Complete(7).complete(), Some(7));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress<T> {
    /// Not complete: call again when more bytes have arrived.
    Partial,
    /// Complete.
    Complete(T),
}

impl<T> Progress<T> {
    /// Whether this is [`Progress::Complete`].
    pub fn is_complete(&self) -> bool {
        matches!(self, Progress::Complete(_))
    }

    /// The completed value, if any.
    pub fn complete(self) -> Option<T> {
        match self {
            Progress::Complete(t) => Some(t),
            Progress::Partial => None,
        }
    }
}

/// A request method (libevent's `enum evhttp_cmd_type`, plus any other token).
///
/// Methods are case-sensitive (RFC 9110 §9.1): `get` is `Other("get")`.
///
/// ```
/// use revent_http::Method;
/// assert_eq!(Method::from("GET"), Method::Get);
/// assert_eq!(Method::from("PROPFIND").as_str(), "PROPFIND");
/// assert_eq!(Method::from("get"), Method::Other("get".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `HEAD`
    Head,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `CONNECT`
    Connect,
    /// `PATCH`
    Patch,
    /// Any other method token.
    Other(String),
}

impl Method {
    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Patch => "PATCH",
            Method::Other(s) => s,
        }
    }
}

impl From<&str> for Method {
    fn from(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP version this crate speaks.
///
/// ```
/// use revent_http::Version;
/// assert_eq!(Version::Http11.to_string(), "HTTP/1.1");
/// assert_eq!((Version::Http10.major(), Version::Http10.minor()), (1, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl Version {
    /// The major number: 1.
    pub fn major(self) -> u8 {
        1
    }

    /// The minor number: 0 or 1.
    pub fn minor(self) -> u8 {
        match self {
            Version::Http10 => 0,
            Version::Http11 => 1,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP/{}.{}", self.major(), self.minor())
    }
}

/// How a message's body is delimited (RFC 9112 §6.3).
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{BodyFraming, RequestParser};
/// let mut buf = Evbuffer::new();
/// buf.add(b"PUT /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")?;
/// let head = RequestParser::new().parse(&mut buf)?.complete().unwrap();
/// assert_eq!(head.framing(), BodyFraming::Chunked);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a request without `Content-Length` or `Transfer-Encoding`; a 1xx, 204 or 304
    /// response, a response to `HEAD`, or a 2xx response to `CONNECT`.
    None,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with [`ChunkedDecoder`](crate::ChunkedDecoder).
    Chunked,
    /// Responses only: the body runs until the server closes the connection.
    Close,
}

/// A parsed request head.
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{BodyFraming, Method, RequestParser, Version};
///
/// let mut buf = Evbuffer::new();
/// buf.add(b"POST /submit?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello")?;
/// let head = RequestParser::new().parse(&mut buf)?.complete().unwrap();
/// assert_eq!(head.method(), &Method::Post);
/// assert_eq!(head.target(), "/submit?x=1");
/// assert_eq!(head.uri().path(), Some("/submit"));
/// assert_eq!(head.version(), Version::Http11);
/// assert_eq!(head.headers().find_str("host"), Some("example.com"));
/// assert_eq!(head.framing(), BodyFraming::Length(5));
/// assert!(head.keep_alive());
/// assert_eq!(buf.len(), 5); // the body is left in the buffer
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    method: Method,
    target: String,
    uri: Uri,
    version: Version,
    headers: Headers,
    framing: BodyFraming,
}

impl RequestHead {
    /// A head to parse into ([`RequestParser::parse_into`]).
    pub(crate) fn blank() -> RequestHead {
        RequestHead {
            method: Method::Get,
            target: String::new(),
            uri: Uri::new(),
            version: Version::Http11,
            headers: Headers::new(),
            framing: BodyFraming::None,
        }
    }

    /// Bytes of heap this head keeps for reuse, roughly.
    pub(crate) fn retained(&self) -> usize {
        self.target.capacity() * 2 + self.headers.retained()
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request target as received (libevent's `evhttp_request_get_uri`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The target parsed as `evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT)`
    /// (libevent's `evhttp_request_get_evhttp_uri`).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields, in the order received.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The header fields, to change (the framing decision is not revisited).
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// How the body is framed.
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }

    /// Whether the connection stays open after this exchange: in HTTP/1.1 unless `Connection`
    /// lists `close`, in HTTP/1.0 only if it lists `keep-alive` (and not `close`). libevent compares
    /// the first `Connection` value as a whole; here every `Connection` field is read as a list.
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }
}

/// A parsed response head.
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{BodyFraming, Method, ResponseParser};
///
/// let mut buf = Evbuffer::new();
/// buf.add(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")?;
/// let head = ResponseParser::new().parse(&mut buf, &Method::Get)?.complete().unwrap();
/// assert_eq!((head.status(), head.reason()), (404, "Not Found"));
/// assert_eq!(head.framing(), BodyFraming::Length(9));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    status: u16,
    reason: String,
    version: Version,
    headers: Headers,
    framing: BodyFraming,
}

impl ResponseHead {
    /// The status code (three digits: 100 to 999).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase; empty when absent, or when it held bytes above 0x7F (`httparse` does
    /// not return those).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields, in the order received.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// How the body is framed.
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }

    /// Whether the connection may be reused after the body: as for requests, and never when the
    /// body is close-delimited.
    pub fn keep_alive(&self) -> bool {
        self.framing != BodyFraming::Close && keep_alive(self.version, &self.headers)
    }
}

fn keep_alive(version: Version, headers: &Headers) -> bool {
    let has = |token: &str| {
        headers
            .find_all("Connection")
            .flat_map(list_elements)
            .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
    };
    match version {
        Version::Http11 => !has("close"),
        Version::Http10 => has("keep-alive") && !has("close"),
    }
}

/// The non-empty elements of a comma-separated list value, with optional whitespace trimmed.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Where a head scan is: it finds the end of a head (an empty line) once, byte by byte, across calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanState {
    /// Empty lines before a request or status line (RFC 9112 §2.2 lets a server skip them).
    Leading,
    /// Inside a line.
    InLine,
    /// Just after a LF: an empty line here ends the head.
    LineStart,
    /// A CR at the start of a line.
    LineStartCr,
}

/// Finds the end of a head or trailer section in an [`Evbuffer`] without consuming it.
#[derive(Clone, Debug)]
pub(crate) struct HeadScanner {
    state: ScanState,
    initial: ScanState,
    /// Bytes already scanned from the start of the buffer.
    scanned: usize,
    /// LFs seen: a bound on the number of fields.
    lines: usize,
}

impl HeadScanner {
    fn new(initial: ScanState) -> HeadScanner {
        HeadScanner {
            state: initial,
            initial,
            scanned: 0,
            lines: 0,
        }
    }

    /// A scanner for a head with a start line.
    pub(crate) fn for_head() -> HeadScanner {
        HeadScanner::new(ScanState::Leading)
    }

    /// A scanner for a trailer section (which may be empty: just CRLF).
    pub(crate) fn for_trailers() -> HeadScanner {
        HeadScanner::new(ScanState::LineStart)
    }

    pub(crate) fn reset(&mut self) {
        *self = HeadScanner::new(self.initial);
    }

    /// Looks at bytes not yet scanned, up to `limit + 1` from the start. Returns the head's length
    /// once its empty line is found, `None` if more bytes are needed, 431 past the limit.
    pub(crate) fn scan(
        &mut self,
        buf: &Evbuffer,
        limit: usize,
    ) -> Result<Option<usize>, ParseError> {
        if buf.len() < self.scanned {
            // The caller took bytes out between calls: start over.
            self.reset();
        }
        let window = buf.len().min(limit.saturating_add(1));
        if self.scanned < window {
            let start = buf.ptr_at(self.scanned)?;
            for slice in buf.peek_from(&start, window - self.scanned)? {
                if let Some(end) = self.scan_slice(slice)? {
                    let total = self.scanned + end;
                    self.scanned = total;
                    if total > limit {
                        return Err(ParseError::HeadersTooLarge { limit });
                    }
                    return Ok(Some(total));
                }
                self.scanned += slice.len();
            }
        }
        if self.scanned > limit {
            return Err(ParseError::HeadersTooLarge { limit });
        }
        Ok(None)
    }

    /// Scans one slice; returns the offset just past the final LF if the head ends in it. A CR
    /// at the start of a line must end the head: anything else there is refused at once.
    fn scan_slice(&mut self, s: &[u8]) -> Result<Option<usize>, ParseError> {
        let mut i = 0;
        while i < s.len() {
            match self.state {
                ScanState::Leading => {
                    if s[i] == b'\r' || s[i] == b'\n' {
                        i += 1;
                    } else {
                        self.state = ScanState::InLine;
                    }
                }
                ScanState::InLine => match memchr::memchr(b'\n', &s[i..]) {
                    Some(p) => {
                        i += p + 1;
                        self.lines += 1;
                        self.state = ScanState::LineStart;
                    }
                    None => i = s.len(),
                },
                ScanState::LineStart | ScanState::LineStartCr => match s[i] {
                    b'\n' => {
                        self.lines += 1;
                        return Ok(Some(i + 1));
                    }
                    _ if self.state == ScanState::LineStartCr => return Err(ParseError::BareCr),
                    b'\r' => {
                        self.state = ScanState::LineStartCr;
                        i += 1;
                    }
                    _ => self.state = ScanState::InLine,
                },
            }
        }
        Ok(None)
    }

    /// Header slots `httparse` needs: one more than the limit if the head may hold more fields.
    pub(crate) fn slots(&self, max_headers: usize) -> usize {
        self.lines.min(max_headers.saturating_add(1)).max(1)
    }
}

/// Refusals `httparse` would report less precisely, found in one pass over a complete head or
/// trailer section: NUL, bare CR, and lines starting with whitespace (obsolete folding).
/// `after_lf` says whether the first byte starts a line that is not the first of a message.
fn check_bytes(head: &[u8], after_lf: bool) -> Result<(), ParseError> {
    if head.len() <= SHORT_HEAD {
        check_short(head, after_lf)
    } else {
        check_long(head, after_lf)
    }
}

/// [`check_bytes`] with vector searches, for long heads.
fn check_long(head: &[u8], after_lf: bool) -> Result<(), ParseError> {
    if memchr::memchr(0, head).is_some() {
        return Err(ParseError::NulByte);
    }
    for p in memchr::memchr_iter(b'\r', head) {
        if head.get(p + 1) != Some(&b'\n') {
            return Err(ParseError::BareCr);
        }
    }
    if after_lf && matches!(head.first(), Some(b' ' | b'\t')) {
        return Err(ParseError::ObsoleteLineFolding);
    }
    for p in memchr::memchr_iter(b'\n', head) {
        if matches!(head.get(p + 1), Some(b' ' | b'\t')) {
            return Err(ParseError::ObsoleteLineFolding);
        }
    }
    Ok(())
}

/// Heads up to this long are checked in one pass, eight bytes at a time: fewer instructions than
/// three vector searches, each started again after every CR and LF.
const SHORT_HEAD: usize = 256;

/// [`check_bytes`] in one pass, with its precedence: a NUL anywhere, else a bare CR anywhere, else
/// folding.
fn check_short(head: &[u8], after_lf: bool) -> Result<(), ParseError> {
    let mut bare_cr = false;
    let mut folding = after_lf && matches!(head.first(), Some(b' ' | b'\t'));
    let mut look = |i: usize| -> Result<(), ParseError> {
        match head[i] {
            0 => return Err(ParseError::NulByte),
            b'\r' => bare_cr |= head.get(i + 1) != Some(&b'\n'),
            b'\n' => folding |= matches!(head.get(i + 1), Some(b' ' | b'\t')),
            _ => {}
        }
        Ok(())
    };
    let words = head.chunks_exact(8);
    let tail = words.remainder().len();
    for (w, word) in words.enumerate() {
        let x = u64::from_le_bytes(word.try_into().unwrap_or([1; 8]));
        // Every candidate is looked at: a false one costs a look only.
        let mut hits = nul_cr_lf_candidates(x);
        while hits != 0 {
            look(w * 8 + hits.trailing_zeros() as usize / 8)?;
            hits &= hits - 1;
        }
    }
    for i in head.len() - tail..head.len() {
        look(i)?;
    }
    if bare_cr {
        Err(ParseError::BareCr)
    } else if folding {
        Err(ParseError::ObsoleteLineFolding)
    } else {
        Ok(())
    }
}

/// Maps an `httparse` error in a header field.
fn header_error(e: httparse::Error, max_headers: usize) -> ParseError {
    match e {
        httparse::Error::HeaderName => ParseError::InvalidHeaderName,
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders { limit: max_headers },
        _ => ParseError::InvalidHeaderValue,
    }
}

/// Classifies an `httparse` error in a start line whose version is the `version_at`-th
/// space-separated part (2 of exactly 3 for requests, 0 of at least 1 for responses): a version of
/// the form `HTTP/d.d` that httparse refused is one we do not support (505); other text where the
/// version goes is not a version (400); anything else is `other`.
fn start_line_error(
    head: &[u8],
    version_at: usize,
    request: bool,
    other: ParseError,
) -> ParseError {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let line = &head[start..];
    let line = &line[..memchr::memchr(b'\n', line).unwrap_or(line.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let version = match fields.get(version_at) {
        Some(v) if (!request || fields.len() == 3) && v.starts_with(b"HTTP/") => *v,
        _ => return other,
    };
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if (*major, *minor) == (b'1', b'0') || (*major, *minor) == (b'1', b'1') {
                other
            } else {
                ParseError::UnsupportedVersion
            }
        }
        _ => ParseError::InvalidVersion,
    }
}

fn version_of(minor: Option<u8>) -> Version {
    if minor == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    }
}

/// Copies `httparse`'s fields into [`Headers`], checking values again (no CR, LF or NUL).
fn collect_headers(fields: &[httparse::Header<'_>]) -> Result<Headers, ParseError> {
    let mut headers = Headers::new();
    collect_headers_into(fields, &mut headers)?;
    Ok(headers)
}

/// [`collect_headers`] into `headers`, cleared first (their room is kept).
fn collect_headers_into(
    fields: &[httparse::Header<'_>],
    headers: &mut Headers,
) -> Result<(), ParseError> {
    headers.clear();
    let (names, values) = fields
        .iter()
        .fold((0, 0), |(n, v), h| (n + h.name.len(), v + h.value.len()));
    headers.reserve(fields.len(), names, values);
    for h in fields {
        if !is_token(h.name.as_bytes()) {
            return Err(ParseError::InvalidHeaderName);
        }
        if !is_valid_value(h.value) {
            return Err(ParseError::InvalidHeaderValue);
        }
        headers.push_checked(h.name, h.value);
    }
    Ok(())
}

/// The `Content-Length` of a message: `None` without one; every value (repeated fields and
/// comma-separated repeats) must be the same decimal number.
fn content_length(headers: &Headers) -> Result<Option<u64>, ParseError> {
    let mut found: Option<u64> = None;
    for value in headers.find_all("Content-Length") {
        for element in value.split(|&b| b == b',') {
            let element = trim_ows(element);
            if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                return Err(ParseError::InvalidContentLength);
            }
            let mut n: u64 = 0;
            for &d in element {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                    .ok_or(ParseError::InvalidContentLength)?;
            }
            match found {
                Some(prev) if prev != n => return Err(ParseError::ConflictingContentLength),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// What a `Transfer-Encoding` list says.
#[derive(Debug, PartialEq, Eq)]
enum Codings {
    /// Ends with `chunked`, named once, with no parameters; other codings (if any) before it.
    ChunkedLast { others: bool },
    /// Does not end with `chunked`; every element is a well-formed coding other than `chunked`.
    NotChunked,
}

/// Reads every `Transfer-Encoding` field as one list (RFC 9112 §6.1). Malformed lists,
/// `chunked` twice or not last, and `chunked` with parameters are 400.
fn transfer_codings(headers: &Headers) -> Result<Codings, ParseError> {
    let mut chunked_seen = false;
    let mut last_chunked = false;
    let mut others = false;
    let mut any = false;
    for value in headers.find_all("Transfer-Encoding") {
        for element in list_elements(value) {
            any = true;
            let (name, params) = match element.iter().position(|&b| b == b';') {
                Some(p) => (trim_ows(&element[..p]), true),
                None => (element, false),
            };
            if !is_token(name) {
                return Err(ParseError::InvalidTransferEncoding);
            }
            if name.eq_ignore_ascii_case(b"chunked") {
                if chunked_seen || params {
                    return Err(ParseError::InvalidTransferEncoding);
                }
                chunked_seen = true;
                last_chunked = true;
            } else {
                if chunked_seen {
                    // chunked must be last (RFC 9112 §6.1).
                    return Err(ParseError::InvalidTransferEncoding);
                }
                others = true;
                last_chunked = false;
            }
        }
    }
    if !any {
        return Err(ParseError::InvalidTransferEncoding);
    }
    Ok(if last_chunked {
        Codings::ChunkedLast { others }
    } else {
        Codings::NotChunked
    })
}

/// The framing of a request (RFC 9112 §6.3, items 3 to 7).
fn request_framing(
    version: Version,
    headers: &Headers,
    limits: &Limits,
) -> Result<BodyFraming, ParseError> {
    let has_te = headers.contains("Transfer-Encoding");
    let has_cl = headers.contains("Content-Length");
    if has_te {
        if has_cl {
            return Err(ParseError::ContentLengthWithTransferEncoding);
        }
        if version == Version::Http10 {
            return Err(ParseError::TransferEncodingInHttp10);
        }
        return match transfer_codings(headers)? {
            Codings::ChunkedLast { others: false } => Ok(BodyFraming::Chunked),
            _ => Err(ParseError::UnsupportedTransferCoding),
        };
    }
    match content_length(headers)? {
        Some(n) if n > limits.max_body => Err(ParseError::BodyTooLarge {
            limit: limits.max_body,
        }),
        Some(n) => Ok(BodyFraming::Length(n)),
        None => Ok(BodyFraming::None),
    }
}

/// The framing of a response to a `method` request (RFC 9112 §6.3, items 1 to 7).
fn response_framing(
    status: u16,
    method: &Method,
    version: Version,
    headers: &Headers,
) -> Result<BodyFraming, ParseError> {
    if *method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (*method == Method::Connect && (200..300).contains(&status))
    {
        return Ok(BodyFraming::None);
    }
    let has_te = headers.contains("Transfer-Encoding");
    if has_te {
        if headers.contains("Content-Length") {
            return Err(ParseError::ContentLengthWithTransferEncoding);
        }
        if version == Version::Http10 {
            return Err(ParseError::TransferEncodingInHttp10);
        }
        return Ok(match transfer_codings(headers)? {
            Codings::ChunkedLast { .. } => BodyFraming::Chunked,
            Codings::NotChunked => BodyFraming::Close,
        });
    }
    Ok(match content_length(headers)? {
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::Close,
    })
}

/// Parses request heads from an [`Evbuffer`], one after another (pipelined requests in order).
///
/// Between calls the buffer must only be appended to (as a connection's input is); the parser
/// remembers how far it scanned. After an error the connection is to be closed; the parser itself
/// starts over on the next call.
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{Progress, RequestParser};
///
/// let mut parser = RequestParser::new();
/// let mut buf = Evbuffer::new();
/// buf.add(b"GET /a HTTP/1.1\r\nHost: h\r\n")?;
/// assert_eq!(parser.parse(&mut buf)?.is_complete(), false);
/// buf.add(b"\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")?;
/// let a = parser.parse(&mut buf)?.complete().unwrap();
/// let b = parser.parse(&mut buf)?.complete().unwrap();
/// assert_eq!((a.target(), b.target()), ("/a", "/b"));
/// assert!(buf.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RequestParser {
    limits: Limits,
    scanner: HeadScanner,
}

impl Default for RequestParser {
    fn default() -> RequestParser {
        RequestParser::new()
    }
}

impl RequestParser {
    /// A parser with the default [`Limits`].
    pub fn new() -> RequestParser {
        RequestParser::with_limits(Limits::default())
    }

    /// A parser with the given limits.
    pub fn with_limits(limits: Limits) -> RequestParser {
        RequestParser {
            limits,
            scanner: HeadScanner::for_head(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses the request head at the front of `buf`. On [`Progress::Complete`] the head's bytes
    /// have been drained and the body (if any) is at the front of `buf`.
    pub fn parse(&mut self, buf: &mut Evbuffer) -> Result<Progress<RequestHead>, ParseError> {
        let mut head = RequestHead::blank();
        Ok(match self.parse_into(buf, &mut head)? {
            Progress::Complete(()) => Progress::Complete(head),
            Progress::Partial => Progress::Partial,
        })
    }

    /// [`parse`](Self::parse) into `head`, which is overwritten only when a head is complete
    /// (after an error it holds some of the request), reusing the room its strings and fields
    /// have: the server parses each request of a connection into the same head.
    pub(crate) fn parse_into(
        &mut self,
        buf: &mut Evbuffer,
        head: &mut RequestHead,
    ) -> Result<Progress<()>, ParseError> {
        let end = match self.scanner.scan(buf, self.limits.max_head_bytes) {
            Ok(Some(end)) => end,
            Ok(None) => return Ok(Progress::Partial),
            Err(e) => {
                self.scanner.reset();
                return Err(e);
            }
        };
        let slots = self.scanner.slots(self.limits.max_headers);
        self.scanner.reset();
        parse_request(buf.pullup(end)?, slots, &self.limits, head)?;
        buf.drain(end)?;
        Ok(Progress::Complete(()))
    }
}

/// Header slots kept on the stack for parsing; a head with more fields gets them from the heap.
const STACK_SLOTS: usize = 16;

fn parse_request(
    bytes: &[u8],
    slots: usize,
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<(), ParseError> {
    check_bytes(bytes, false)?;
    // The usual head has a few fields: their slots live on the stack, no allocation.
    let mut stack = [httparse::EMPTY_HEADER; STACK_SLOTS];
    let mut heap;
    let fields: &mut [httparse::Header] = if slots <= STACK_SLOTS {
        &mut stack[..slots]
    } else {
        heap = vec![httparse::EMPTY_HEADER; slots];
        &mut heap
    };
    let mut req = httparse::Request::new(fields);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(_) => return Err(ParseError::InvalidRequestLine),
        Err(httparse::Error::Token | httparse::Error::Version | httparse::Error::NewLine) => {
            return Err(start_line_error(
                bytes,
                2,
                true,
                ParseError::InvalidRequestLine,
            ));
        }
        Err(e) => return Err(header_error(e, limits.max_headers)),
    }
    if req.headers.len() > limits.max_headers {
        return Err(ParseError::TooManyHeaders {
            limit: limits.max_headers,
        });
    }
    head.method = Method::from(req.method.unwrap_or_default());
    let target = req.path.unwrap_or_default();
    head.target.clear();
    head.target.push_str(target);
    head.version = version_of(req.version);
    head.uri
        .parse_into(target, UriFlags::NONCONFORMANT)
        .map_err(|_| ParseError::InvalidTarget)?;
    collect_headers_into(req.headers, &mut head.headers)?;
    if head.headers.find_all("Host").nth(1).is_some() {
        return Err(ParseError::DuplicateHost);
    }
    head.framing = request_framing(head.version, &head.headers, limits)?;
    Ok(())
}

/// Parses response heads from an [`Evbuffer`] (the client side). Interim (1xx) responses are
/// returned like any other, with [`BodyFraming::None`]; the caller reads on for the final one.
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{BodyFraming, Method, ResponseParser};
/// let mut parser = ResponseParser::new();
/// let mut buf = Evbuffer::new();
/// buf.add(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil close")?;
/// let interim = parser.parse(&mut buf, &Method::Post)?.complete().unwrap();
/// assert_eq!((interim.status(), interim.framing()), (100, BodyFraming::None));
/// let last = parser.parse(&mut buf, &Method::Post)?.complete().unwrap();
/// assert_eq!((last.status(), last.framing()), (200, BodyFraming::Close));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ResponseParser {
    limits: Limits,
    scanner: HeadScanner,
}

impl Default for ResponseParser {
    fn default() -> ResponseParser {
        ResponseParser::new()
    }
}

impl ResponseParser {
    /// A parser with the default [`Limits`].
    pub fn new() -> ResponseParser {
        ResponseParser::with_limits(Limits::default())
    }

    /// A parser with the given limits.
    pub fn with_limits(limits: Limits) -> ResponseParser {
        ResponseParser {
            limits,
            scanner: HeadScanner::for_head(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses the head of the response to a `method` request at the front of `buf` (the method
    /// decides whether there is a body: none after `HEAD`). On [`Progress::Complete`] the head's
    /// bytes have been drained.
    pub fn parse(
        &mut self,
        buf: &mut Evbuffer,
        method: &Method,
    ) -> Result<Progress<ResponseHead>, ParseError> {
        let end = match self.scanner.scan(buf, self.limits.max_head_bytes) {
            Ok(Some(end)) => end,
            Ok(None) => return Ok(Progress::Partial),
            Err(e) => {
                self.scanner.reset();
                return Err(e);
            }
        };
        let slots = self.scanner.slots(self.limits.max_headers);
        self.scanner.reset();
        let head = parse_response(buf.pullup(end)?, slots, &self.limits, method)?;
        buf.drain(end)?;
        Ok(Progress::Complete(head))
    }
}

fn parse_response(
    bytes: &[u8],
    slots: usize,
    limits: &Limits,
    method: &Method,
) -> Result<ResponseHead, ParseError> {
    check_bytes(bytes, false)?;
    // The usual head has a few fields: their slots live on the stack, no allocation.
    let mut stack = [httparse::EMPTY_HEADER; STACK_SLOTS];
    let mut heap;
    let fields: &mut [httparse::Header] = if slots <= STACK_SLOTS {
        &mut stack[..slots]
    } else {
        heap = vec![httparse::EMPTY_HEADER; slots];
        &mut heap
    };
    let mut res = httparse::Response::new(fields);
    match res.parse(bytes) {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(_) => return Err(ParseError::InvalidStatusLine),
        Err(httparse::Error::Version) => {
            return Err(start_line_error(
                bytes,
                0,
                false,
                ParseError::InvalidStatusLine,
            ))
        }
        Err(httparse::Error::Status | httparse::Error::Token | httparse::Error::NewLine) => {
            return Err(ParseError::InvalidStatusLine)
        }
        Err(e) => return Err(header_error(e, limits.max_headers)),
    }
    if res.headers.len() > limits.max_headers {
        return Err(ParseError::TooManyHeaders {
            limit: limits.max_headers,
        });
    }
    let status = res.code.unwrap_or_default();
    if status < 100 {
        return Err(ParseError::InvalidStatusLine);
    }
    let reason = res.reason.unwrap_or_default().to_string();
    let version = version_of(res.version);
    let headers = collect_headers(res.headers)?;
    let framing = response_framing(status, method, version, &headers)?;
    Ok(ResponseHead {
        status,
        reason,
        version,
        headers,
        framing,
    })
}

/// Parses a trailer section (after the last chunk) with the head's rules: `bytes` is the complete
/// section, its final empty line included.
pub(crate) fn parse_trailer_fields(
    bytes: &[u8],
    slots: usize,
    limits: &Limits,
) -> Result<Headers, ParseError> {
    check_bytes(bytes, true)?;
    // The usual head has a few fields: their slots live on the stack, no allocation.
    let mut stack = [httparse::EMPTY_HEADER; STACK_SLOTS];
    let mut heap;
    let fields: &mut [httparse::Header] = if slots <= STACK_SLOTS {
        &mut stack[..slots]
    } else {
        heap = vec![httparse::EMPTY_HEADER; slots];
        &mut heap
    };
    match httparse::parse_headers(bytes, fields) {
        Ok(httparse::Status::Complete((n, parsed))) if n == bytes.len() => {
            if parsed.len() > limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            collect_headers(parsed)
        }
        Ok(_) => Err(ParseError::InvalidHeaderValue),
        Err(e) => Err(header_error(e, limits.max_headers)),
    }
}

/// The standard reason phrase of a status code (RFC 9110 §15), `None` for a code it does not
/// name. Each user picks its own fallback: revent's server says `Unknown`, the C ABI names the
/// class as libevent does.
///
/// ```
/// assert_eq!(revent_http::standard_reason(404), Some("Not Found"));
/// assert_eq!(revent_http::standard_reason(299), None);
/// ```
pub fn standard_reason(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass check gives what the three searches give, on every short mix of the bytes
    /// they look at.
    #[test]
    fn short_and_long_byte_checks_agree() {
        let alphabet = [b'a', b'\r', b'\n', b' ', b'\t', 0];
        let mut input = Vec::new();
        for len in 0..=6u32 {
            for mut code in 0..alphabet.len().pow(len) {
                input.clear();
                for _ in 0..len {
                    input.push(alphabet[code % alphabet.len()]);
                    code /= alphabet.len();
                }
                for after_lf in [false, true] {
                    assert_eq!(
                        check_short(&input, after_lf),
                        check_long(&input, after_lf),
                        "{input:?} after_lf={after_lf}"
                    );
                }
            }
        }
        // Longer ones, the bytes at every place of a word and across words.
        for len in [8, 9, 15, 16, 17, 40, 255, 256] {
            for at in 0..len {
                for b in [0u8, b'\r', b'\n', b' ', 0x8d, 0x0d + 0x80, 0x01, 0xff] {
                    for second in [None, Some((at * 7 + 3) % len)] {
                        let mut input = b"GET / HTTP/1.1\r\nHost: h\r\n".repeat(len / 16 + 1);
                        input.truncate(len);
                        input[at] = b;
                        if let Some(j) = second {
                            input[j] = b'\r';
                        }
                        for after_lf in [false, true] {
                            assert_eq!(
                                check_short(&input, after_lf),
                                check_long(&input, after_lf),
                                "{input:?} after_lf={after_lf}"
                            );
                        }
                    }
                }
            }
        }
    }
}
