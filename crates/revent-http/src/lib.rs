//! revent-http: libevent's evhttp in safe Rust.
//!
//! For now the helpers of `event2/http.h` that need no connection: [`Uri`] (`evhttp_uri_parse`,
//! `evhttp_uri_join` and the `evhttp_uri_get_*`/`evhttp_uri_set_*` accessors), percent-encoding
//! ([`encode`]: `evhttp_encode_uri`, `evhttp_uriencode`, `evhttp_decode_uri`, `evhttp_uridecode`),
//! query strings ([`query`]: `evhttp_parse_query_str`, `evhttp_parse_query`) and HTML escaping
//! ([`html`]: `evhttp_htmlescape`). Each follows libevent 2.1's behaviour byte for byte; where it
//! does not, the item's documentation says so and why (in short: no value is ever cut at a NUL, and
//! states libevent would refuse only later are refused at once).
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
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod chars;
pub mod encode;
pub mod html;
pub mod query;
pub mod uri;

pub use uri::{Part, Uri, UriError, UriFlags};
