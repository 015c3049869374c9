//! Hostile input: very long strings, NULs, bytes that are not UTF-8, '%' at the end, overlong ports.
//! Everything must be refused or accepted in linear time, with a typed error and no panic.

use std::time::{Duration, Instant};

use revent_http::encode::{decode_uri, encode_uri, uridecode};
use revent_http::html::html_escape;
use revent_http::query::{parse_query_str, parse_query_str_bytes, QueryError};
use revent_http::{Part, Uri, UriError, UriFlags};

const MIB: usize = 1 << 20;

/// Runs `f` and checks it took less than `limit` (generous: a quadratic algorithm on a MiB takes
/// minutes, a linear one milliseconds, even unoptimised on a busy machine).
fn quick<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    assert!(start.elapsed() < limit, "took {:?}", start.elapsed());
    out
}

#[test]
fn a_mebibyte_in_each_component() {
    let big = "a".repeat(MIB);
    let pct = "%41".repeat(MIB / 3);
    for s in [
        format!("http://{big}/"),
        format!("http://{big}@h/"),
        format!("http://h/{big}"),
        format!("http://h/?{pct}"),
        format!("http://h/#{big}"),
        format!("{big}:x"),
        format!("/{}", "/".repeat(MIB)),
    ] {
        let uri = quick(Duration::from_secs(10), || Uri::parse(&s)).unwrap();
        assert_eq!(uri.join(), s);
    }
    // Refused at the far end of a long component.
    let s = format!("http://h/{big} ");
    assert_eq!(
        Uri::parse(&s),
        Err(UriError::Invalid {
            part: Part::Path,
            at: 9 + MIB
        })
    );
    let s = format!("http://{}/", "[".repeat(MIB));
    assert_eq!(
        Uri::parse(&s),
        Err(UriError::Invalid {
            part: Part::Host,
            at: 7
        })
    );
    let s = format!("http://[{}]/", "1:".repeat(MIB / 2));
    assert_eq!(
        Uri::parse(&s),
        Err(UriError::Invalid {
            part: Part::Host,
            at: 7
        })
    );
    let s = format!("http://[v1.{}]/", "a".repeat(MIB));
    assert!(Uri::parse(&s).is_ok());
    // A mebibyte of ':' without a scheme: refused at the first.
    assert_eq!(
        Uri::parse(&":".repeat(MIB)),
        Err(UriError::ColonInFirstSegment { at: 0 })
    );
}

#[test]
fn overlong_ports() {
    let nines = "9".repeat(MIB);
    assert_eq!(
        Uri::parse(&format!("http://h:{nines}/")),
        Err(UriError::Invalid {
            part: Part::Port,
            at: 9 + 4
        })
    );
    // Leading zeros do not count against the port: libevent's accumulator stays at 0.
    let uri = Uri::parse(&format!("http://h:{}8080/", "0".repeat(MIB))).unwrap();
    assert_eq!(uri.port(), Some(8080));
    assert_eq!(uri.join(), "http://h:8080/");
    for (port, want) in [("65535", Some(65535)), ("0", Some(0)), ("", None)] {
        assert_eq!(
            Uri::parse(&format!("http://h:{port}")).unwrap().port(),
            want
        );
    }
    for port in ["65536", "70000", "4294967296", "18446744073709551617"] {
        let err = Uri::parse(&format!("http://h:{port}")).unwrap_err();
        assert!(
            matches!(
                err,
                UriError::Invalid {
                    part: Part::Port,
                    ..
                }
            ),
            "{port}: {err:?}"
        );
    }
    // Signs and spaces are no digits: the text is then part of the host, which refuses ':'.
    for port in ["-1", "+80", " 80", "8 0", "0x50"] {
        let err = Uri::parse(&format!("http://h:{port}")).unwrap_err();
        assert!(
            matches!(
                err,
                UriError::Invalid {
                    part: Part::Host,
                    ..
                }
            ),
            "{port}: {err:?}"
        );
    }
}

#[test]
fn nul_is_refused_wherever_it_is() {
    for s in [
        "\0",
        "http\0://h/",
        "http://h\0/",
        "http://u\0@h/",
        "/\0",
        "?\0",
        "#\0",
        "/a%00b",
    ] {
        for flags in [UriFlags::empty(), UriFlags::NONCONFORMANT] {
            let got = Uri::parse_with(s, flags);
            if s == "/a%00b" {
                // An escaped NUL is text like any other and is not decoded.
                assert_eq!(got.unwrap().path(), Some("/a%00b"));
            } else {
                assert_eq!(
                    got,
                    Err(UriError::Nul {
                        at: s.find('\0').unwrap()
                    }),
                    "{s:?}"
                );
            }
        }
    }
    let mut uri = Uri::new();
    uri.set_flags(UriFlags::NONCONFORMANT);
    assert_eq!(uri.set_scheme(Some("a\0")), Err(UriError::Nul { at: 1 }));
    assert_eq!(uri.set_userinfo(Some("\0")), Err(UriError::Nul { at: 0 }));
    assert_eq!(uri.set_host(Some("[::1]\0")), Err(UriError::Nul { at: 5 }));
    assert_eq!(uri.set_path(Some("/\0")), Err(UriError::Nul { at: 1 }));
    assert_eq!(uri, {
        let mut u = Uri::new();
        u.set_flags(UriFlags::NONCONFORMANT);
        u
    });
}

#[test]
fn percent_at_the_end() {
    for s in ["%", "a%", "a%4", "%%", "%4%"] {
        assert_eq!(uridecode(s, true), s.as_bytes());
        assert_eq!(decode_uri(s), s.as_bytes());
    }
    for s in [
        "/%",
        "/a%4",
        "?%",
        "?%4",
        "#%",
        "#%4",
        "http://h%/",
        "http://h%4/",
        "http://u%@h/",
    ] {
        assert!(Uri::parse(s).is_err(), "{s}");
    }
    for s in ["/%", "/a%4", "?%", "?%4", "#%", "#%4"] {
        assert_eq!(
            Uri::parse_with(s, UriFlags::NONCONFORMANT).unwrap().join(),
            s
        );
    }
    assert_eq!(
        parse_query_str("k=%").unwrap(),
        [("k".to_string(), "%".to_string())]
    );
    assert_eq!(
        parse_query_str("k=%4").unwrap(),
        [("k".to_string(), "%4".to_string())]
    );
}

#[test]
fn bytes_that_are_not_utf8() {
    let raw: &[u8] = b"\xff\xfe%C3%28\x80+%zz\x00%00";
    assert_eq!(uridecode(raw, true), b"\xff\xfe\xc3\x28\x80 %zz\x00\x00");
    assert_eq!(uridecode(raw, false), b"\xff\xfe\xc3\x28\x80+%zz\x00\x00");
    assert_eq!(decode_uri(raw), b"\xff\xfe\xc3\x28\x80+%zz\x00\x00");
    assert_eq!(encode_uri(raw), "%FF%FE%25C3%2528%80%2B%25zz%00%2500");
    assert_eq!(uridecode(encode_uri(raw), false), raw);
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(uridecode(encode_uri(&all), true), all);
}

#[test]
fn big_queries() {
    let many = vec!["k=v+w"; 100_000].join("&");
    let pairs = quick(Duration::from_secs(10), || parse_query_str(&many)).unwrap();
    assert_eq!(pairs.len(), 100_000);
    assert!(pairs.iter().all(|(k, v)| k == "k" && v == "v w"));
    // A refusal comes at the first bad pair, however long the rest.
    let amps = "&".repeat(MIB);
    assert_eq!(
        parse_query_str(&amps),
        Err(QueryError::MissingEquals { at: 0 })
    );
    let tail = format!("a=1&{}", "b".repeat(MIB));
    assert_eq!(
        parse_query_str_bytes(&tail),
        Err(QueryError::MissingEquals { at: 4 })
    );
    let big = format!("v={}", "%FF".repeat(MIB / 3));
    let pairs = quick(Duration::from_secs(10), || parse_query_str_bytes(&big)).unwrap();
    assert_eq!(pairs[0].1.len(), MIB / 3);
    match parse_query_str(&big) {
        Err(QueryError::NotUtf8 { at: 0, key, value }) => {
            assert_eq!(key, "v");
            assert_eq!(value.len(), MIB / 3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn big_encode_decode_escape() {
    let bytes: Vec<u8> = (0..MIB).map(|i| (i * 7) as u8).collect();
    let enc = quick(Duration::from_secs(10), || encode_uri(&bytes));
    let dec = quick(Duration::from_secs(10), || uridecode(&enc, false));
    assert_eq!(dec, bytes);
    let html = "<&>\"'".repeat(MIB / 5);
    let esc = quick(Duration::from_secs(10), || html_escape(&html));
    assert_eq!(esc.len(), (4 + 5 + 4 + 6 + 6) * (MIB / 5));
}
