//! Message bodies: [`ChunkedDecoder`], [`LengthDecoder`], and [`BodyDecoder`] over every framing.
//!
//! Decoders move body bytes from a connection's input [`Evbuffer`] to an output one as they arrive,
//! so a body is never buffered whole. Data moves with [`Evbuffer::remove_buffer`]: whole chunks of
//! the input change hands without copying; only a chunk split at a body boundary is copied.
//!
//! The chunked coding (RFC 9112 §7.1) is read strictly:
//! - a chunk size is 1*HEXDIG: `0x10`, `+5`, `-1`, ` 5`, an empty size, and a size past 64 bits are
//!   refused (libevent 2.1.12 read sizes with `strtoll`, which took all of those; 2.1.13 refuses
//!   them, as here);
//! - whitespace after the size is allowed only before a `;` (BWS in `chunk-ext`); extensions are
//!   skipped unread, but the size line (digits, whitespace and extensions) is limited to
//!   [`Limits::max_chunk_line`] bytes and may hold no control byte but HTAB;
//! - every line ends with CRLF exactly: a bare LF after a size or after chunk data is refused
//!   (libevent accepts it; parsers that disagree on it are how chunked bodies are smuggled);
//! - the sum of chunk sizes is checked against [`Limits::max_body`] when each size is read, before
//!   its data arrives (413).
//!
//! Trailers are parsed with the same rules and limits as a head (`httparse`, NUL, bare CR and
//! folding refused, [`Limits::max_head_bytes`] and [`Limits::max_headers`]) and returned *apart*
//! from the head's fields. libevent 2.1.12 appended them to the request's input headers, so a
//! trailer `Content-Length` or `Host` read as if the client had sent it in the head (trailer
//! smuggling). RFC 9112 §7.1.2 forbids merging trailer fields unless their definition allows it,
//! and RFC 9110 §6.5.1 lists the fields that must not be trailers; revent drops those ("MAY
//! discard", RFC 9112 §7.1.2) and keeps the rest: message framing (`Content-Length`,
//! `Transfer-Encoding`, `Trailer`, `TE`), routing (`Host`), connection management (`Connection`,
//! `Keep-Alive`, `Upgrade`, `Proxy-Connection`), request modifiers (`Cache-Control`, `Expect`,
//! `Max-Forwards`, `Pragma`, `Range`, `If-*`), authentication (`Authorization`,
//! `Proxy-Authorization`, `WWW-Authenticate`, `Proxy-Authenticate`, `Cookie`, `Set-Cookie`),
//! response control (`Age`, `Expires`, `Date`, `Location`, `Retry-After`, `Vary`, `Warning`) and
//! content processing (`Content-Encoding`, `Content-Type`, `Content-Range`). Dropping rather than
//! refusing: a body whose framing was sound is not turned into an error by a field that is only
//! ignored.

use revent::Evbuffer;

use crate::error::ParseError;
use crate::headers::Headers;
use crate::message::{parse_trailer_fields, BodyFraming, HeadScanner, Limits, Progress};

/// Trailer fields that are dropped (RFC 9110 §6.5.1); `If-*` is matched by prefix.
const FORBIDDEN_TRAILERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "trailer",
    "te",
    "host",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "cache-control",
    "expect",
    "max-forwards",
    "pragma",
    "range",
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "warning",
    "content-encoding",
    "content-type",
    "content-range",
];

/// Whether a field may not be a trailer (RFC 9110 §6.5.1) and is dropped by [`ChunkedDecoder`].
///
/// ```
/// use revent_http::body::is_forbidden_trailer;
/// assert!(is_forbidden_trailer("Content-Length"));
/// assert!(is_forbidden_trailer("if-none-match"));
/// assert!(!is_forbidden_trailer("Server-Timing"));
/// ```
pub fn is_forbidden_trailer(name: &str) -> bool {
    let n = name.as_bytes();
    (n.len() >= 3 && n[..3].eq_ignore_ascii_case(b"if-"))
        || FORBIDDEN_TRAILERS
            .iter()
            .any(|f| f.as_bytes().eq_ignore_ascii_case(n))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading size digits; `line` bytes of the size line so far.
    Size { value: u64, line: usize },
    /// Whitespace after the size: only more whitespace or `;` may follow.
    SizeWs { value: u64, line: usize },
    /// Inside chunk extensions, skipped up to CR.
    Ext { value: u64, line: usize },
    /// CR seen at the end of the size line.
    SizeLf { value: u64 },
    /// Chunk data still to come.
    Data { remaining: u64 },
    /// CR expected after chunk data.
    DataCr,
    /// LF expected after chunk data.
    DataLf,
    /// The trailer section, up to its empty line.
    Trailers,
    /// The body is complete.
    Done,
}

/// Decodes a chunked body (RFC 9112 §7.1) incrementally, as described in the [module
/// documentation](self).
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{ChunkedDecoder, Limits, Progress};
///
/// let mut dec = ChunkedDecoder::new(Limits::default());
/// let (mut input, mut body) = (Evbuffer::new(), Evbuffer::new());
/// input.add(b"5;ext=1\r\nhello\r\n6\r\n wor")?;
/// assert_eq!(dec.decode(&mut input, &mut body)?, Progress::Partial);
/// input.add(b"ld\r\n0\r\nServer-Timing: db;dur=5\r\nContent-Length: 9\r\n\r\nnext")?;
/// let trailers = dec.decode(&mut input, &mut body)?.complete().unwrap();
/// assert_eq!(body.pullup_all()?, b"hello world");
/// assert_eq!(trailers.find_str("server-timing"), Some("db;dur=5"));
/// assert_eq!(trailers.find("Content-Length"), None); // dropped: it may not be a trailer
/// assert_eq!(input.pullup_all()?, b"next");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    limits: Limits,
    state: State,
    body_len: u64,
    trailers: HeadScanner,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new(limits: Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            limits,
            state: State::Size { value: 0, line: 0 },
            body_len: 0,
            trailers: HeadScanner::for_trailers(),
        }
    }

    /// Body bytes delivered so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Moves the body bytes at the front of `input` to the end of `out` and consumes the chunked
    /// framing around them. Returns the trailer fields (those kept) once the body is complete; the
    /// bytes after it stay in `input`. After an error the connection is to be closed.
    pub fn decode(
        &mut self,
        input: &mut Evbuffer,
        out: &mut Evbuffer,
    ) -> Result<Progress<Headers>, ParseError> {
        loop {
            match self.state {
                State::Done => return Ok(Progress::Complete(Headers::new())),
                State::Data { remaining } => {
                    if input.is_empty() {
                        return Ok(Progress::Partial);
                    }
                    let n = remaining.min(input.len() as u64) as usize;
                    let moved = input.remove_buffer(out, n)? as u64;
                    if moved == 0 {
                        // Nothing could move (not expected of a buffer with bytes): never spin.
                        return Ok(Progress::Partial);
                    }
                    self.body_len += moved;
                    self.state = match remaining - moved {
                        0 => State::DataCr,
                        r => State::Data { remaining: r },
                    };
                }
                State::Trailers => {
                    let limit = self.limits.max_head_bytes;
                    let end = match self.trailers.scan(input, limit)? {
                        Some(end) => end,
                        None => return Ok(Progress::Partial),
                    };
                    let slots = self.trailers.slots(self.limits.max_headers);
                    let fields = parse_trailer_fields(input.pullup(end)?, slots, &self.limits)?;
                    input.drain(end)?;
                    let mut kept = Headers::new();
                    for (name, value) in &fields {
                        if !is_forbidden_trailer(name) {
                            kept.push_checked(name, value);
                        }
                    }
                    self.state = State::Done;
                    return Ok(Progress::Complete(kept));
                }
                _ => {
                    if input.is_empty() {
                        return Ok(Progress::Partial);
                    }
                    let mut consumed = 0;
                    let mut result = Ok(());
                    'slices: for slice in input.peek(input.len())? {
                        for &b in slice {
                            if let Err(e) = self.step(b) {
                                result = Err(e);
                                break 'slices;
                            }
                            consumed += 1;
                            if matches!(self.state, State::Data { .. } | State::Trailers) {
                                break 'slices;
                            }
                        }
                    }
                    input.drain(consumed)?;
                    result?;
                }
            }
        }
    }

    /// One byte of a size line or of the CRLF after chunk data.
    fn step(&mut self, b: u8) -> Result<(), ParseError> {
        let max_line = self.limits.max_chunk_line;
        let long = |line: usize| {
            if line > max_line {
                Err(ParseError::InvalidChunkExtension)
            } else {
                Ok(line)
            }
        };
        self.state = match self.state {
            State::Size { value, line } => match (b as char).to_digit(16) {
                Some(d) => State::Size {
                    value: value
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(u64::from(d)))
                        .ok_or(ParseError::InvalidChunkSize)?,
                    line: long(line + 1)?,
                },
                None if line == 0 => return Err(ParseError::InvalidChunkSize),
                None => match b {
                    b' ' | b'\t' => State::SizeWs {
                        value,
                        line: long(line + 1)?,
                    },
                    b';' => State::Ext {
                        value,
                        line: long(line + 1)?,
                    },
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(ParseError::InvalidChunkTerminator),
                    _ => return Err(ParseError::InvalidChunkSize),
                },
            },
            State::SizeWs { value, line } => match b {
                b' ' | b'\t' => State::SizeWs {
                    value,
                    line: long(line + 1)?,
                },
                b';' => State::Ext {
                    value,
                    line: long(line + 1)?,
                },
                _ => return Err(ParseError::InvalidChunkSize),
            },
            State::Ext { value, line } => match b {
                b'\r' => State::SizeLf { value },
                b'\t' | 0x20..=0x7e | 0x80..=0xff => State::Ext {
                    value,
                    line: long(line + 1)?,
                },
                _ => return Err(ParseError::InvalidChunkExtension),
            },
            State::SizeLf { value } => match b {
                b'\n' if value == 0 => State::Trailers,
                b'\n' => {
                    let max = self.limits.max_body;
                    match self.body_len.checked_add(value) {
                        Some(total) if total <= max => State::Data { remaining: value },
                        _ => return Err(ParseError::BodyTooLarge { limit: max }),
                    }
                }
                _ => return Err(ParseError::InvalidChunkTerminator),
            },
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size { value: 0, line: 0 },
            State::DataCr | State::DataLf => return Err(ParseError::InvalidChunkTerminator),
            State::Data { .. } | State::Trailers | State::Done => self.state,
        };
        Ok(())
    }
}

/// Reads a body of exactly `Content-Length` bytes.
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{LengthDecoder, Limits, Progress};
///
/// let mut dec = LengthDecoder::new(5, &Limits::default())?;
/// let (mut input, mut body) = (Evbuffer::new(), Evbuffer::new());
/// input.add(b"hel")?;
/// assert_eq!(dec.decode(&mut input, &mut body)?, Progress::Partial);
/// input.add(b"loGET / HTTP/1.1\r\n")?;
/// assert_eq!(dec.decode(&mut input, &mut body)?, Progress::Complete(()));
/// assert_eq!(body.pullup_all()?, b"hello");
/// assert_eq!(input.len(), 16); // the next request is left alone
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LengthDecoder {
    remaining: u64,
}

impl LengthDecoder {
    /// A decoder for a body of `len` bytes; 413 if `len` is above [`Limits::max_body`].
    pub fn new(len: u64, limits: &Limits) -> Result<LengthDecoder, ParseError> {
        if len > limits.max_body {
            return Err(ParseError::BodyTooLarge {
                limit: limits.max_body,
            });
        }
        Ok(LengthDecoder { remaining: len })
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Moves up to the remaining count of bytes from `input` to `out`; complete once all have.
    pub fn decode(
        &mut self,
        input: &mut Evbuffer,
        out: &mut Evbuffer,
    ) -> Result<Progress<()>, ParseError> {
        let n = self.remaining.min(input.len() as u64) as usize;
        if n > 0 {
            self.remaining -= input.remove_buffer(out, n)? as u64;
        }
        Ok(if self.remaining == 0 {
            Progress::Complete(())
        } else {
            Progress::Partial
        })
    }
}

/// A decoder for any [`BodyFraming`]: what a connection uses after a head.
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{BodyDecoder, BodyFraming, Limits, Progress};
///
/// let mut dec = BodyDecoder::new(BodyFraming::Close, &Limits::default())?;
/// let (mut input, mut body) = (Evbuffer::new(), Evbuffer::new());
/// input.add(b"all of it")?;
/// assert_eq!(dec.decode(&mut input, &mut body)?, Progress::Partial);
/// assert!(dec.finish().is_ok()); // the server closed: the body is complete
/// assert_eq!(body.len(), 9);
///
/// let mut dec = BodyDecoder::new(BodyFraming::Length(10), &Limits::default())?;
/// input.add(b"short")?;
/// dec.decode(&mut input, &mut body)?;
/// assert!(dec.finish().is_err()); // closed before the announced end
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub enum BodyDecoder {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(LengthDecoder),
    /// Chunked.
    Chunked(ChunkedDecoder),
    /// Until the connection closes; bytes so far and the limit.
    Close {
        /// Body bytes delivered so far.
        received: u64,
        /// [`Limits::max_body`].
        limit: u64,
    },
}

impl BodyDecoder {
    /// The decoder for `framing` (413 for a length above the limit).
    pub fn new(framing: BodyFraming, limits: &Limits) -> Result<BodyDecoder, ParseError> {
        Ok(match framing {
            BodyFraming::None => BodyDecoder::Empty,
            BodyFraming::Length(n) => BodyDecoder::Length(LengthDecoder::new(n, limits)?),
            BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new(limits.clone())),
            BodyFraming::Close => BodyDecoder::Close {
                received: 0,
                limit: limits.max_body,
            },
        })
    }

    /// Moves body bytes from `input` to `out`. Complete (with the trailer fields of a chunked body,
    /// none otherwise) once the body has ended; a close-delimited body ends only with
    /// [`finish`](Self::finish).
    pub fn decode(
        &mut self,
        input: &mut Evbuffer,
        out: &mut Evbuffer,
    ) -> Result<Progress<Headers>, ParseError> {
        match self {
            BodyDecoder::Empty => Ok(Progress::Complete(Headers::new())),
            BodyDecoder::Length(d) => Ok(match d.decode(input, out)? {
                Progress::Complete(()) => Progress::Complete(Headers::new()),
                Progress::Partial => Progress::Partial,
            }),
            BodyDecoder::Chunked(d) => d.decode(input, out),
            BodyDecoder::Close { received, limit } => {
                let n = input.len() as u64;
                if n > *limit - *received {
                    return Err(ParseError::BodyTooLarge { limit: *limit });
                }
                *received += input.remove_buffer(out, input.len())? as u64;
                Ok(Progress::Partial)
            }
        }
    }

    /// The connection ended: fine for a close-delimited body or one already complete,
    /// [`ParseError::Truncated`] otherwise.
    pub fn finish(&self) -> Result<(), ParseError> {
        match self {
            BodyDecoder::Empty | BodyDecoder::Close { .. } => Ok(()),
            BodyDecoder::Length(d) if d.remaining() == 0 => Ok(()),
            BodyDecoder::Chunked(d) if d.is_done() => Ok(()),
            _ => Err(ParseError::Truncated),
        }
    }
}
