//! Percent-encoding and decoding: `evhttp_encode_uri`, `evhttp_uriencode`, `evhttp_decode_uri` and
//! `evhttp_uridecode`.
//!
//! Encoding takes bytes and returns ASCII; decoding takes bytes (a `&str` will do) and returns bytes,
//! since `%00` or `%FF` decode to bytes that are not text. A decoded NUL is kept like any other byte.

use crate::chars::{hex_value, is_pct_encoded, is_unreserved};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Percent-encodes `bytes` as `evhttp_encode_uri`: the unreserved bytes of RFC 3986
/// (`A-Z a-z 0-9 - . _ ~`) stay as they are, every other byte becomes `%HH` with upper-case hex
/// digits (a space becomes `%20`).
///
/// libevent's function reads a C string and stops at the first NUL; this one encodes every byte it
/// is given, a NUL as `%00` (as `evhttp_uriencode` with an explicit length does).
///
/// ```
/// use revent_http::encode::encode_uri;
///
/// assert_eq!(encode_uri("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
/// assert_eq!(encode_uri(b"hello\0world"), "hello%00world");
/// ```
pub fn encode_uri(bytes: impl AsRef<[u8]>) -> String {
    encode_uri_with(bytes, false)
}

/// Percent-encodes `bytes` as `evhttp_uriencode(bytes, len, space_as_plus)`: as [`encode_uri`], but
/// when `space_as_plus` is true a space becomes `+` (the `application/x-www-form-urlencoded` form);
/// a `+` itself is always encoded, as `%2B`.
///
/// ```
/// use revent_http::encode::encode_uri_with;
///
/// assert_eq!(encode_uri_with("1+2 = 3", true), "1%2B2+%3D+3");
/// assert_eq!(encode_uri_with("1+2 = 3", false), "1%2B2%20%3D%203");
/// ```
pub fn encode_uri_with(bytes: impl AsRef<[u8]>, space_as_plus: bool) -> String {
    let bytes = bytes.as_ref();
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else if b == b' ' && space_as_plus {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0xf)]));
        }
    }
    out
}

/// When a `+` decodes to a space.
#[derive(Clone, Copy)]
enum Plus {
    Never,
    Always,
    AfterQuestionMark,
}

fn decode(input: &[u8], plus: Plus) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut plus_is_space = matches!(plus, Plus::Always);
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'?' {
            if matches!(plus, Plus::AfterQuestionMark) {
                plus_is_space = true;
            }
            out.push(b);
            i += 1;
        } else if b == b'+' && plus_is_space {
            out.push(b' ');
            i += 1;
        } else if is_pct_encoded(input, i) {
            out.push(hex_value(input[i + 1]) << 4 | hex_value(input[i + 2]));
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

/// Decodes as the deprecated `evhttp_decode_uri`: every `%HH` (either case of hex digit) becomes its
/// byte, and a `+` becomes a space only after the first `?` of the input (libevent's header calls
/// this "not a good way to decode URIs in whole or in part"; prefer [`uridecode`]). A `%` not followed
/// by two hex digits, a `%` at the end included, is copied as it is.
///
/// ```
/// use revent_http::encode::decode_uri;
///
/// assert_eq!(decode_uri("/a+b%20c?k=v+w"), b"/a+b c?k=v w");
/// assert_eq!(decode_uri("100%"), b"100%");
/// ```
pub fn decode_uri(input: impl AsRef<[u8]>) -> Vec<u8> {
    decode(input.as_ref(), Plus::AfterQuestionMark)
}

/// Decodes as `evhttp_uridecode(input, decode_plus, &size)`: every `%HH` (either case of hex digit)
/// becomes its byte, a `+` becomes a space when `decode_plus` is true (an HTTP form value) and stays
/// a `+` otherwise, and a `%` not followed by two hex digits is copied as it is. The result is every
/// decoded byte, NULs included (what libevent reports through `size_out`).
///
/// ```
/// use revent_http::encode::uridecode;
///
/// assert_eq!(uridecode("plus+should%20work+", true), b"plus should work ");
/// assert_eq!(uridecode("plus+should%20work+", false), b"plus+should work+");
/// assert_eq!(uridecode("%00x%zz%4", true), b"\0x%zz%4");
/// ```
pub fn uridecode(input: impl AsRef<[u8]>, decode_plus: bool) -> Vec<u8> {
    decode(
        input.as_ref(),
        if decode_plus {
            Plus::Always
        } else {
            Plus::Never
        },
    )
}
