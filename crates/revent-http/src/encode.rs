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

#[cfg(test)]
mod tests {
    use super::*;

    /// libevent's regress test `http_uriencode_test`: each string encodes to the expected form and
    /// decodes back (with the same `space_as_plus`/`decode_plus`).
    #[test]
    fn libevent_encode_cases() {
        let cases: &[(&[u8], &str, bool)] = &[
            (b"Hello", "Hello", false),
            (b"99", "99", false),
            (b"", "", false),
            (
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ123456789-.~_",
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ123456789-.~_",
                false,
            ),
            (b" ", "%20", false),
            (b" ", "+", true),
            (b"\xff\xf0\xe0", "%FF%F0%E0", false),
            (b"\x01\x19", "%01%19", true),
            (
                b"http://www.ietf.org/rfc/rfc3986.txt",
                "http%3A%2F%2Fwww.ietf.org%2Frfc%2Frfc3986.txt",
                true,
            ),
            (b"1+2=3", "1%2B2%3D3", true),
            (b"1+2=3", "1%2B2%3D3", false),
            (b"hello\0world", "hello%00world", false),
        ];
        for &(from, want, plus) in cases {
            let enc = encode_uri_with(from, plus);
            assert_eq!(enc, want, "encoding {from:?}");
            assert_eq!(uridecode(&enc, plus), from, "decoding {enc:?}");
        }
        assert_eq!(encode_uri("1+2=3 "), "1%2B2%3D3%20");
    }

    /// The decoding cases of the same test that encoding does not produce.
    #[test]
    fn libevent_decode_cases() {
        assert_eq!(
            uridecode("%%xhello th+ere \u{ff}", false),
            "%%xhello th+ere \u{ff}".as_bytes()
        );
        assert_eq!(
            uridecode(b"%%xhello th+ere \xff", false),
            b"%%xhello th+ere \xff"
        );
        assert_eq!(uridecode("plus+should%20work+", true), b"plus should work ");
        assert_eq!(uridecode("%f0%a0%b0", true), b"\xf0\xa0\xb0");
        assert_eq!(uridecode("%00%00x%00%00", true), b"\0\0x\0\0");
        // evhttp_decode_uri_internal("hello%20%20", 6, ...): the cut input ends in a bare '%'.
        assert_eq!(uridecode("hello%", false), b"hello%");
        assert_eq!(
            decode_uri("http://example.com/normal+path/?key=val+with+spaces"),
            b"http://example.com/normal+path/?key=val with spaces"
        );
    }

    #[test]
    fn bad_escapes_pass_through() {
        for s in ["%", "%4", "a%", "%%", "%g0", "%0g", "%%41", "% 41", "%+1"] {
            let want = s.replace("%%41", "%A");
            assert_eq!(uridecode(s, false), want.as_bytes(), "{s:?}");
        }
        assert_eq!(uridecode("%+1", true), b"% 1");
        assert_eq!(uridecode("%4%41", false), b"%4A");
    }

    #[test]
    fn decode_uri_plus_only_after_the_first_question_mark() {
        assert_eq!(decode_uri("a+b"), b"a+b");
        assert_eq!(decode_uri("a+b?c+d?e+f"), b"a+b?c d?e f");
        assert_eq!(decode_uri("?+"), b"? ");
        // An encoded '?' does not switch plus decoding on.
        assert_eq!(decode_uri("%3F+"), b"?+");
    }

    #[test]
    fn hex_digits_either_case() {
        assert_eq!(uridecode("%4a%4A%4b", false), b"JJK");
        assert_eq!(uridecode("%ff%FF%Ff", false), b"\xff\xff\xff");
    }
}
