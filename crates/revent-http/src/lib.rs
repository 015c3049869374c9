//! revent-http: libevent's evhttp in safe Rust.
//!
//! For now the helpers of `event2/http.h` that need no connection: percent-encoding ([`encode`]:
//! `evhttp_encode_uri`, `evhttp_uriencode`, `evhttp_decode_uri`, `evhttp_uridecode`) and HTML
//! escaping ([`html`]: `evhttp_htmlescape`). Each follows libevent 2.1's behaviour byte for byte;
//! where it does not, the item's documentation says so and why.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod chars;
pub mod encode;
pub mod html;
