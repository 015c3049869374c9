//! Percent-encoding and decoding: libevent's `http_uriencode_test` and more.

use revent_http::encode::{decode_uri, encode_uri, encode_uri_with, uridecode};

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
