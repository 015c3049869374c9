//! revent-http: libevent's evhttp in safe Rust.
//!
//! - the server ([`server`]: [`Server`], evhttp on an [`EventBase`](revent::EventBase), listeners
//!   and socket bufferevents: routing by path and virtual host, persistent connections with
//!   pipelined requests answered in order, `Expect: 100-continue`, chunked bodies both ways,
//!   whole, chunked and file replies, limits and timeouts, request bodies streamed to the
//!   handler, and WebSocket upgrades);
//! - the client ([`client`]: a [`client::Connection`] per server, keep-alive with requests queued
//!   in order, retries with backoff, bodies whole or chunked both ways, responses whole or
//!   streamed to a chunk callback, timeouts and limits);
//! - the HTTP/1.1 message layer the server and client stand on: [`Headers`] (`evkeyvalq`),
//!   [`RequestParser`] and [`ResponseParser`] (heads from an [`Evbuffer`](revent::Evbuffer), on
//!   `httparse`, with limits and RFC 9112's body framing rules), and the body decoders
//!   [`ChunkedDecoder`], [`LengthDecoder`] and [`BodyDecoder`]; refusals are a [`ParseError`]
//!   carrying the status to answer ([`message`] and [`body`] list them and where revent is stricter
//!   than libevent: every request-smuggling class libevent 2.1.13 fixed is refused);
//! - [`Uri`] (`evhttp_uri_parse`, `evhttp_uri_join` and the `evhttp_uri_get_*`/`evhttp_uri_set_*`
//!   accessors), percent-encoding ([`encode`]: `evhttp_encode_uri`, `evhttp_uriencode`,
//!   `evhttp_decode_uri`, `evhttp_uridecode`), query strings ([`query`]: `evhttp_parse_query_str`,
//!   `evhttp_parse_query`) and HTML escaping ([`html`]: `evhttp_htmlescape`).
//!
//! Each follows libevent 2.1's behaviour; where it does not, the item's documentation says so and
//! why (in short: no value is ever cut at a NUL, input that can smuggle is refused, and states
//! libevent would refuse only later are refused at once).
//!
//! A server (the loop runs until stopped):
//!
//! ```no_run
//! use revent::EventBase;
//! use revent_http::Server;
//!
//! let mut base = EventBase::new()?;
//! let server = Server::new();
//! server.set_cb("/plaintext", |base, req| {
//!     req.output_headers_mut().add("Content-Type", "text/plain").unwrap();
//!     let _ = req.send_reply(base, 200, "OK", b"Hello, World!");
//! });
//! server.set_gencb(|base, req| {
//!     let body = format!("you asked for {}", req.uri().path().unwrap_or("/"));
//!     let _ = req.send_reply(base, 200, "OK", body.as_bytes());
//! });
//! server.bind(&mut base, "127.0.0.1:8080".parse().unwrap())?;
//! base.dispatch()?;
//! # Ok::<(), revent::Error>(())
//! ```
//!
//! ```
//! use revent_http::{query, Uri};
//!
//! let uri = Uri::parse("http://user@example.com:8080/search?q=libevent+http&lang=en#top")?;
//! assert_eq!(uri.host(), Some("example.com"));
//! assert_eq!(uri.port(), Some(8080));
//! let args = query::parse_query_str(uri.query().unwrap_or(""))?;
//! assert_eq!(args[0], ("q".to_string(), "libevent http".to_string()));
//! assert_eq!(uri.to_string(), "http://user@example.com:8080/search?q=libevent+http&lang=en#top");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use revent::Evbuffer;
//! use revent_http::{BodyDecoder, Limits, Progress, RequestParser};
//!
//! let mut input = Evbuffer::new();
//! input.add(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")?;
//! let mut parser = RequestParser::new();
//! let head = parser.parse(&mut input)?.complete().unwrap();
//! let mut body = Evbuffer::new();
//! let mut decoder = BodyDecoder::new(head.framing(), parser.limits())?;
//! assert!(decoder.decode(&mut input, &mut body)?.is_complete());
//! assert_eq!(body.pullup_all()?, b"abc");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod body;
mod chars;
pub mod client;
pub mod encode;
mod error;
pub mod headers;
pub mod html;
pub mod message;
pub mod query;
pub mod server;
pub mod uri;

pub use body::{BodyDecoder, ChunkedDecoder, LengthDecoder};
pub use error::ParseError;
pub use headers::{HeaderError, Headers, Iter as HeaderIter};
pub use message::{
    standard_reason, BodyFraming, Limits, Method, Progress, RequestHead, RequestParser,
    ResponseHead, ResponseParser, Version,
};
pub use server::{
    Handler, Message, Request, RequestHandle, Server, ServerStats, Timeouts, VirtualHost,
    WebSocket, WsHandler,
};
pub use uri::{Part, Uri, UriError, UriFlags};
