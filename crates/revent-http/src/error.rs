//! [`ParseError`]: why a message was refused, with the status to answer and whether to close.

use std::fmt;

/// Why an HTTP/1.1 message head or body was refused.
///
/// [`status`](Self::status) is the response a server sends (400, 413, 431, 501 or 505; 500 for a
/// buffer the caller froze), and [`must_close`](Self::must_close) whether the connection must be
/// closed after it. Every refusal of this layer closes: after a message is refused, where the next
/// one starts is unknown or untrusted (RFC 9112 §6.3 and §11.2: answering and reading on is how
/// requests are smuggled), and an oversized message is not read to its end to find out.
///
/// ```
/// use revent::Evbuffer;
/// use revent_http::{ParseError, RequestParser};
///
/// let mut buf = Evbuffer::new();
/// buf.add(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")?;
/// let err = RequestParser::new().parse(&mut buf).unwrap_err();
/// assert_eq!(err, ParseError::ContentLengthWithTransferEncoding);
/// assert_eq!((err.status(), err.must_close()), (400, true));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The request line is malformed: method, target or the spaces between them (400).
    InvalidRequestLine,
    /// The status line of a response is malformed (400).
    InvalidStatusLine,
    /// The request target is not a URI that `evhttp_uri_parse` (nonconformant mode) takes, or is
    /// not UTF-8 (400).
    InvalidTarget,
    /// The version is not `HTTP/DIGIT.DIGIT` (400): `HTTP/1.10`, `HTTP/1.4294967297`, `HTTP/01.1`.
    InvalidVersion,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (505).
    UnsupportedVersion,
    /// A header name that is not a token, or a space before its colon (400).
    InvalidHeaderName,
    /// A header value holding a control character (400).
    InvalidHeaderValue,
    /// A NUL byte anywhere in the head (400). It is never cut at, nor ignored.
    NulByte,
    /// A CR not followed by LF (400).
    BareCr,
    /// A line starting with a space or tab: obsolete line folding, or whitespace before the first
    /// header (RFC 9112 §5.2 and §2.2) (400).
    ObsoleteLineFolding,
    /// The head (start line, header lines and the empty line) or a trailer section is longer than
    /// the limit (431).
    HeadersTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// More header (or trailer) fields than the limit (431).
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// Two or more `Host` fields (RFC 9112 §3.2) (400).
    DuplicateHost,
    /// A `Content-Length` that is not one decimal number fitting 64 bits (400).
    InvalidContentLength,
    /// `Content-Length` values that differ (400).
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`: request smuggling (RFC 9112 §6.1) (400).
    ContentLengthWithTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message, whose framing is then faulty (RFC 9112 §6.1)
    /// (400).
    TransferEncodingInHttp10,
    /// A `Transfer-Encoding` that does not end with exactly one `chunked`, or an empty or malformed
    /// one (RFC 9112 §6.3) (400).
    InvalidTransferEncoding,
    /// A transfer-coding other than `chunked` (RFC 9112 §6.1) (501).
    UnsupportedTransferCoding,
    /// A chunk size that is not 1*HEXDIG (no `0x`, sign or whitespace) or overflows 64 bits (400).
    InvalidChunkSize,
    /// A chunk-size line (size and extensions) longer than the limit, or with a control byte in
    /// its extensions (400).
    InvalidChunkExtension,
    /// Chunk data not followed by CRLF, or a chunk-size line not ended by CRLF (400).
    InvalidChunkTerminator,
    /// The body is larger than the limit (413).
    BodyTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The connection ended inside a body whose end was announced (400).
    Truncated,
    /// The buffer refused an operation (it was frozen by the caller) (500).
    Buffer(String),
}

impl ParseError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::HeadersTooLarge { .. } | ParseError::TooManyHeaders { .. } => 431,
            ParseError::BodyTooLarge { .. } => 413,
            ParseError::UnsupportedTransferCoding => 501,
            ParseError::UnsupportedVersion => 505,
            ParseError::Buffer(_) => 500,
            _ => 400,
        }
    }

    /// Whether the connection must be closed after answering: always, for this layer (see the
    /// type's documentation).
    pub fn must_close(&self) -> bool {
        true
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::InvalidRequestLine => f.write_str("malformed request line"),
            ParseError::InvalidStatusLine => f.write_str("malformed status line"),
            ParseError::InvalidTarget => f.write_str("request target is not a valid URI"),
            ParseError::InvalidVersion => f.write_str("malformed HTTP version"),
            ParseError::UnsupportedVersion => f.write_str("HTTP version not supported"),
            ParseError::InvalidHeaderName => f.write_str("invalid header name"),
            ParseError::InvalidHeaderValue => f.write_str("invalid header value"),
            ParseError::NulByte => f.write_str("NUL byte in message head"),
            ParseError::BareCr => f.write_str("CR not followed by LF"),
            ParseError::ObsoleteLineFolding => f.write_str("obsolete line folding"),
            ParseError::HeadersTooLarge { limit } => {
                write!(f, "header section larger than {limit} bytes")
            }
            ParseError::TooManyHeaders { limit } => write!(f, "more than {limit} header fields"),
            ParseError::DuplicateHost => f.write_str("more than one Host field"),
            ParseError::InvalidContentLength => f.write_str("invalid Content-Length"),
            ParseError::ConflictingContentLength => {
                f.write_str("conflicting Content-Length values")
            }
            ParseError::ContentLengthWithTransferEncoding => {
                f.write_str("both Content-Length and Transfer-Encoding")
            }
            ParseError::TransferEncodingInHttp10 => f.write_str("Transfer-Encoding in HTTP/1.0"),
            ParseError::InvalidTransferEncoding => {
                f.write_str("Transfer-Encoding does not end with one chunked")
            }
            ParseError::UnsupportedTransferCoding => f.write_str("unsupported transfer-coding"),
            ParseError::InvalidChunkSize => f.write_str("invalid chunk size"),
            ParseError::InvalidChunkExtension => f.write_str("invalid or too long chunk extension"),
            ParseError::InvalidChunkTerminator => f.write_str("chunk not ended by CRLF"),
            ParseError::BodyTooLarge { limit } => write!(f, "body larger than {limit} bytes"),
            ParseError::Truncated => f.write_str("connection closed inside the body"),
            ParseError::Buffer(e) => write!(f, "buffer error: {e}"),
        }
    }
}

impl std::error::Error for ParseError {}

impl From<revent::Error> for ParseError {
    fn from(e: revent::Error) -> ParseError {
        ParseError::Buffer(e.to_string())
    }
}
