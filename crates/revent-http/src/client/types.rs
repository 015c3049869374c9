//! The client's values: [`Request`], [`Response`], [`ClientError`] and its libevent kind.

use std::fmt;
use std::io;
use std::sync::Arc;

use revent::{Evbuffer, EventBase};

use crate::error::ParseError;
use crate::headers::{HeaderError, Headers};
use crate::message::{Method, ResponseHead};

/// What a request's completion callback receives.
pub type Outcome = Result<Response, ClientError>;
/// The completion callback of a request (libevent's `evhttp_request_new` callback).
pub type CompleteCb = dyn FnOnce(&mut EventBase, Outcome);
/// The chunk callback of a request (libevent's `evhttp_request_set_chunked_cb`): body bytes as they
/// arrive. What the callback leaves in the buffer is discarded afterwards, as libevent drains it.
pub type ChunkCb = dyn FnMut(&mut EventBase, &ResponseHead, &mut Evbuffer);
/// The head callback of [`Request::on_head`]: `false` refuses the response.
pub type HeadCb = dyn FnMut(&mut EventBase, &ResponseHead) -> bool;

/// The request body.
pub(crate) enum Body {
    /// No body.
    None,
    /// A body given whole: sent with `Content-Length`, and kept (shared, not copied) so that the
    /// request can be sent again after a reconnect.
    Fixed(Arc<[u8]>),
    /// A chunked body the caller streams with [`RequestHandle::send_chunk`](super::RequestHandle::send_chunk):
    /// encoded bytes not yet written, and whether the last chunk was given.
    Streamed { queued: Box<Evbuffer>, ended: bool },
}

/// An HTTP request to send on a [`Connection`](super::Connection) (libevent's `evhttp_request` on
/// the client side): method, target, header fields, an optional body and an optional chunk callback.
///
/// The client adds `Host` (the connection's address) when the request has none, and the framing
/// fields itself: `Content-Length` for a whole body (also `0` for an empty `POST` or `PUT`, as
/// libevent does) and `Transfer-Encoding: chunked` for a streamed one. A request that sets either
/// framing field itself is refused ([`ClientError::InvalidRequest`]): a framing field that
/// disagrees with the body is how requests are smuggled.
///
/// ```
/// use revent_http::{client::Request, Method};
/// let req = Request::new(Method::Post, "/submit")?
///     .header("Content-Type", "text/plain")?
///     .body(b"hello".to_vec());
/// assert_eq!(req.method(), &Method::Post);
/// assert_eq!(req.headers().find_str("content-type"), Some("text/plain"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Request {
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) headers: Headers,
    pub(crate) body: Body,
    pub(crate) on_chunk: Option<Box<ChunkCb>>,
    pub(crate) on_head: Option<Box<HeadCb>>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request for `target` (an origin-form path such as `/index.html?x=1`, an absolute URI for
    /// a proxy, or `*`). Refused when `target` is empty or holds a space or a control byte: it goes
    /// on the request line as is.
    pub fn new(method: Method, target: &str) -> Result<Request, ClientError> {
        if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ClientError::InvalidRequest(
                "the request target is empty or holds a space or control byte",
            ));
        }
        if let Method::Other(m) = &method {
            if m.is_empty() || !m.bytes().all(crate::chars::is_tchar) {
                return Err(ClientError::InvalidRequest("the method is not a token"));
            }
        }
        Ok(Request {
            method,
            target: target.to_string(),
            headers: Headers::new(),
            body: Body::None,
            on_chunk: None,
            on_head: None,
        })
    }

    /// Adds a header field (`evhttp_add_header` on the output headers).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Result<Request, HeaderError> {
        self.headers.add(name, value)?;
        Ok(self)
    }

    /// The header fields, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The target.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sets the body, sent with `Content-Length`.
    pub fn body(mut self, body: impl Into<Arc<[u8]>>) -> Request {
        self.body = Body::Fixed(body.into());
        self
    }

    /// Sends the body chunked, as the caller streams it with
    /// [`RequestHandle::send_chunk`](super::RequestHandle::send_chunk) and ends it with
    /// [`RequestHandle::end_body`](super::RequestHandle::end_body) (beyond libevent 2.1, whose
    /// client sends whole bodies only). Such a request is never sent twice: it is not retried after
    /// a reconnect.
    pub fn chunked(mut self) -> Request {
        self.body = Body::Streamed {
            queued: Box::default(),
            ended: false,
        };
        self
    }

    /// Delivers the response body as it arrives (libevent's `evhttp_request_set_chunked_cb`): the
    /// callback gets the response head and the bytes that came since its last call, for every
    /// framing (Content-Length, chunked, until close). The [`Response`] the completion callback
    /// then gets has an empty body.
    pub fn on_chunk(
        mut self,
        cb: impl FnMut(&mut EventBase, &ResponseHead, &mut Evbuffer) + 'static,
    ) -> Request {
        self.on_chunk = Some(Box::new(cb));
        self
    }

    /// Looks at the response head as soon as it is complete, before any of the body (libevent's
    /// `evhttp_request_set_header_cb`): returning `false` refuses the response, the socket is
    /// closed and the request fails with [`ClientError::Refused`].
    pub fn on_head(
        mut self,
        cb: impl FnMut(&mut EventBase, &ResponseHead) -> bool + 'static,
    ) -> Request {
        self.on_head = Some(Box::new(cb));
        self
    }

    /// Whether sending it twice has the effect of sending it once (RFC 9110 §9.2.2) and its body
    /// can be sent again: only such a request is resent after a kept-alive connection closed under
    /// it.
    pub(crate) fn replayable(&self) -> bool {
        matches!(
            self.method,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        ) && !matches!(self.body, Body::Streamed { .. })
    }
}

/// A complete response: the final head, the body (unless a chunk callback took it) and the
/// trailer fields of a chunked body.
///
/// ```
/// use revent_http::client::Response;
/// fn show(resp: &mut Response) {
///     println!("{} {}", resp.status(), resp.reason());
///     println!("{}", String::from_utf8_lossy(resp.body_mut().pullup_all().unwrap()));
/// }
/// ```
#[derive(Debug)]
pub struct Response {
    pub(crate) head: ResponseHead,
    pub(crate) body: Evbuffer,
    pub(crate) trailers: Headers,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    /// The reason phrase.
    pub fn reason(&self) -> &str {
        self.head.reason()
    }

    /// The head: version, status, fields and framing.
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// The header fields (`evhttp_request_get_input_headers`).
    pub fn headers(&self) -> &Headers {
        self.head.headers()
    }

    /// The trailer fields of a chunked body (those RFC 9110 allows as trailers; see
    /// [`body`](crate::body)).
    pub fn trailers(&self) -> &Headers {
        &self.trailers
    }

    /// The body (`evhttp_request_get_input_buffer`); for a partial response in an error, the
    /// bytes that arrived.
    pub fn body(&self) -> &Evbuffer {
        &self.body
    }

    /// The body, to read from.
    pub fn body_mut(&mut self) -> &mut Evbuffer {
        &mut self.body
    }

    /// The body, taken out.
    pub fn into_body(self) -> Evbuffer {
        self.body
    }
}

/// Why a request failed. The completion callback gets exactly one of these, or the response.
///
/// ```
/// use revent_http::client::{ClientError, ErrorKind};
/// use revent_http::ParseError;
/// let e = ClientError::Invalid(ParseError::BodyTooLarge { limit: 10 });
/// assert_eq!(e.kind(), ErrorKind::DataTooLong);
/// assert_eq!(e.to_string(), "invalid response: body larger than 10 bytes");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection could not be made (refused, unreachable), after the retries allowed.
    Connect(io::Error),
    /// The connection was not made within the connect timeout, after the retries allowed.
    ConnectTimeout,
    /// No progress reading the response or writing the request within the read or write timeout.
    Timeout,
    /// The connection ended before the response was complete: the server closed it (`error`
    /// `None`) or it failed (a reset). `partial` holds the head and the body bytes that arrived
    /// when a head did; such a response is never reported as complete.
    Closed {
        /// The operating-system error, if the connection failed rather than closed.
        error: Option<io::Error>,
        /// The response so far, if its head had arrived.
        partial: Option<Box<Response>>,
    },
    /// The response was refused: malformed, smuggling-like framing, a head larger than
    /// `set_max_headers_size` or with too many fields, a body larger than `set_max_body_size`.
    Invalid(ParseError),
    /// The request cannot be sent as it is (say why).
    InvalidRequest(&'static str),
    /// The handle names a connection or request that no longer exists.
    Stale,
    /// The event base refused an operation (for instance, creating the socket).
    Event(revent::Error),
    /// The head callback ([`Request::on_head`]) refused the response.
    Refused,
}

/// libevent's `enum evhttp_request_error`: what kind of failure a [`ClientError`] is.
///
/// ```
/// use revent_http::client::{ClientError, ErrorKind};
/// assert_eq!(ClientError::Timeout.kind(), ErrorKind::Timeout);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `EVREQ_HTTP_TIMEOUT`
    Timeout,
    /// `EVREQ_HTTP_EOF`
    Eof,
    /// `EVREQ_HTTP_INVALID_HEADER`
    InvalidHeader,
    /// `EVREQ_HTTP_BUFFER_ERROR`
    BufferError,
    /// `EVREQ_HTTP_REQUEST_CANCEL`
    RequestCancel,
    /// `EVREQ_HTTP_DATA_TOO_LONG`
    DataTooLong,
}

impl ClientError {
    /// The libevent error kind this failure corresponds to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::ConnectTimeout | ClientError::Timeout => ErrorKind::Timeout,
            ClientError::Connect(_) | ClientError::Closed { .. } | ClientError::Refused => {
                ErrorKind::Eof
            }
            ClientError::Invalid(ParseError::BodyTooLarge { .. }) => ErrorKind::DataTooLong,
            ClientError::Invalid(_) => ErrorKind::InvalidHeader,
            ClientError::Stale => ErrorKind::RequestCancel,
            ClientError::InvalidRequest(_) | ClientError::Event(_) => ErrorKind::BufferError,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::ConnectTimeout => f.write_str("connect timed out"),
            ClientError::Timeout => f.write_str("timed out waiting for the server"),
            ClientError::Closed { error: Some(e), .. } => {
                write!(f, "connection failed before the response was complete: {e}")
            }
            ClientError::Closed { error: None, .. } => {
                f.write_str("connection closed before the response was complete")
            }
            ClientError::Invalid(e) => write!(f, "invalid response: {e}"),
            ClientError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            ClientError::Stale => f.write_str("stale handle: the connection or request is gone"),
            ClientError::Event(e) => write!(f, "event base error: {e}"),
            ClientError::Refused => f.write_str("the head callback refused the response"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(e) | ClientError::Closed { error: Some(e), .. } => Some(e),
            ClientError::Invalid(e) => Some(e),
            ClientError::Event(e) => Some(e),
            _ => None,
        }
    }
}

impl From<revent::Error> for ClientError {
    fn from(e: revent::Error) -> ClientError {
        ClientError::Event(e)
    }
}
