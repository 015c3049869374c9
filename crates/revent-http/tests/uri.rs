//! The facts of libevent's `http_parse_uri_test` (test/regress_http.c), which runs once strictly and
//! once with `EVHTTP_URI_NONCONFORMANT`, and more edge cases of `evhttp_uri_parse_with_flags`,
//! `evhttp_uri_join` and the setters.

use revent_http::{Part, Uri, UriError, UriFlags};

const MODES: [UriFlags; 2] = [UriFlags::empty(), UriFlags::NONCONFORMANT];

/// Every component of a parsed URI: scheme, userinfo, host, port, path, query, fragment.
type Parts<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<u16>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn parts(u: &Uri) -> Parts<'_> {
    (
        u.scheme(),
        u.userinfo(),
        u.host(),
        u.port(),
        u.path(),
        u.query(),
        u.fragment(),
    )
}

/// Parses `s` strictly and checks every component.
fn check(s: &str, want: Parts) {
    let uri = Uri::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    assert_eq!(parts(&uri), want, "{s:?}");
}

/// Nonconformant URIs: refused strictly, accepted (and joined back as they were) with the flag.
#[test]
fn nonconformant_only() {
    for s in [
        "http://www.test.com/ why hello",
        "http://www.test.com/why-hello\x01",
        "http://www.test.com/why-hello?\x01",
        "http://www.test.com/why-hello#\x01",
        "http://www.test.com/why-hell%7o",
        "http://www.test.com/why-hello%7",
        "http://www.test.com/foo?ba%r",
        "http://www.test.com/foo#ba%r",
        // More of the same kind: non-ASCII, a second '#', CR LF and tabs, '%' at the very end.
        "http://www.test.com/caf\u{e9}?q=\u{1F600}#\u{e9}",
        "/a#b#c",
        "/a\r\n\tb?c d",
        "/%",
        "?%",
        "#%",
    ] {
        assert!(Uri::parse(s).is_err(), "strict mode accepted {s:?}");
        let uri = Uri::parse_with(s, UriFlags::NONCONFORMANT)
            .unwrap_or_else(|e| panic!("{s:?} refused: {e}"));
        assert_eq!(uri.join(), s);
    }
    let uri = Uri::parse_with("http://www.test.com/ why hello", UriFlags::NONCONFORMANT).unwrap();
    assert_eq!(uri.path(), Some("/ why hello"));
    let uri = Uri::parse_with("/a#b#c", UriFlags::NONCONFORMANT).unwrap();
    assert_eq!(uri.fragment(), Some("b#c"));
    let uri = Uri::parse_with("/a?b?c#d?e", UriFlags::NONCONFORMANT).unwrap();
    assert_eq!((uri.query(), uri.fragment()), (Some("b?c"), Some("d?e")));
}

/// Refused in both modes: the scheme and authority are always checked strictly.
#[test]
fn bad_in_both_modes() {
    for s in [
        "http://www.\x01.test.com/why-hello",
        "http://www.%7test.com/why-hello",
        "h%3ttp://www.test.com/why-hello",
        "99:99/foo",
        "http://www.test.com:999x/",
        "http://www.test.com:x/",
        "http://[hello-there]/",
        "http://[::1]]/",
        "http://[::1/",
        "http://[foob/",
        "http://[/",
        "http://[ffff:ffff:ffff:ffff:Ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/",
        "http://[vX.foo]/",
        "http://[v.foo]/",
        "http://[v5.fo%o]/",
        "http://[v5X]/",
        "http://[v5]/",
        "http://[]/",
        "http://f\x01red@www.example.com/",
        "http://f%0red@www.example.com/",
        "http://www.example.com:9999999999999999999999999999999999999/",
        "http://www.example.com:hihi/",
        "://www.example.com/",
        // More: ports past 65535, a space or non-ASCII in the host, two '@', an unbracketed IPv6.
        "http://h:65536/",
        "http://h:99999/",
        "http://h :80/",
        "http://h\u{e9}/",
        "http://a@b@c/",
        "http://::1/",
        "http://[::1]x/",
        "1a:b c",
        "\u{e9}:x",
        "//h/\0",
    ] {
        for flags in MODES {
            assert!(
                Uri::parse_with(s, flags).is_err(),
                "{s:?} accepted with {flags:?}"
            );
        }
    }
}

#[test]
fn errors_say_where() {
    let inv = |part, at| UriError::Invalid { part, at };
    assert_eq!(
        Uri::parse("http://www.test.com:999x/"),
        Err(inv(Part::Host, 19))
    );
    assert_eq!(Uri::parse("http://h:65536/"), Err(inv(Part::Port, 13)));
    assert_eq!(Uri::parse("http://f%0red@h/"), Err(inv(Part::Userinfo, 8)));
    assert_eq!(Uri::parse("http://[v5]/"), Err(inv(Part::Host, 10)));
    assert_eq!(Uri::parse("http://[::1/"), Err(inv(Part::Host, 7)));
    assert_eq!(Uri::parse("http://h/a b"), Err(inv(Part::Path, 10)));
    assert_eq!(Uri::parse("http://h/a?b c"), Err(inv(Part::Query, 12)));
    assert_eq!(Uri::parse("http://h/a#b#c"), Err(inv(Part::Fragment, 12)));
    assert_eq!(
        Uri::parse("://www.example.com/"),
        Err(UriError::ColonInFirstSegment { at: 0 })
    );
    assert_eq!(Uri::parse("h%3ttp://x"), Err(inv(Part::Path, 1)));
    assert_eq!(Uri::parse("http://h/\0"), Err(UriError::Nul { at: 9 }));
    assert_eq!(
        Uri::parse_with("/a\0b", UriFlags::NONCONFORMANT),
        Err(UriError::Nul { at: 2 })
    );
}

#[test]
fn mailto_has_no_authority() {
    for flags in MODES {
        let uri = Uri::parse_with("mailto:foo@bar", flags).unwrap();
        assert_eq!(
            parts(&uri),
            (
                Some("mailto"),
                None,
                None,
                None,
                Some("foo@bar"),
                None,
                None
            )
        );
        assert_eq!(uri.join(), "mailto:foo@bar");
    }
}

/// The valid URIs of the regress test: components and what join gives back, in both modes.
#[test]
fn valid_parsing() {
    let cases: &[(&str, Parts, &str)] = &[
        (
            "http://www.test.com/?q=t%33est",
            (
                Some("http"),
                None,
                Some("www.test.com"),
                None,
                Some("/"),
                Some("q=t%33est"),
                None,
            ),
            "http://www.test.com/?q=t%33est",
        ),
        (
            "http://%77ww.test.com",
            (
                Some("http"),
                None,
                Some("%77ww.test.com"),
                None,
                Some(""),
                None,
                None,
            ),
            "http://%77ww.test.com",
        ),
        (
            "http://www.test.com?q=test",
            (
                Some("http"),
                None,
                Some("www.test.com"),
                None,
                Some(""),
                Some("q=test"),
                None,
            ),
            "http://www.test.com?q=test",
        ),
        (
            "http://www.test.com#fragment",
            (
                Some("http"),
                None,
                Some("www.test.com"),
                None,
                Some(""),
                None,
                Some("fragment"),
            ),
            "http://www.test.com#fragment",
        ),
        (
            "http://8000/",
            (
                Some("http"),
                None,
                Some("8000"),
                None,
                Some("/"),
                None,
                None,
            ),
            "http://8000/",
        ),
        (
            "http://:8000/",
            (
                Some("http"),
                None,
                Some(""),
                Some(8000),
                Some("/"),
                None,
                None,
            ),
            "http://:8000/",
        ),
        (
            "http://www.test.com:/",
            (
                Some("http"),
                None,
                Some("www.test.com"),
                None,
                Some("/"),
                None,
                None,
            ),
            "http://www.test.com/",
        ),
        (
            "http://www.test.com:",
            (
                Some("http"),
                None,
                Some("www.test.com"),
                None,
                Some(""),
                None,
                None,
            ),
            "http://www.test.com",
        ),
        (
            "ftp://www.test.com/?q=test",
            (
                Some("ftp"),
                None,
                Some("www.test.com"),
                None,
                Some("/"),
                Some("q=test"),
                None,
            ),
            "ftp://www.test.com/?q=test",
        ),
        (
            "ftp://[::1]:999/?q=test",
            (
                Some("ftp"),
                None,
                Some("[::1]"),
                Some(999),
                Some("/"),
                Some("q=test"),
                None,
            ),
            "ftp://[::1]:999/?q=test",
        ),
        (
            "ftp://[ff00::127.0.0.1]/?q=test",
            (
                Some("ftp"),
                None,
                Some("[ff00::127.0.0.1]"),
                None,
                Some("/"),
                Some("q=test"),
                None,
            ),
            "ftp://[ff00::127.0.0.1]/?q=test",
        ),
        (
            "ftp://[v99.not_(any:time)_soon]/?q=test",
            (
                Some("ftp"),
                None,
                Some("[v99.not_(any:time)_soon]"),
                None,
                Some("/"),
                Some("q=test"),
                None,
            ),
            "ftp://[v99.not_(any:time)_soon]/?q=test",
        ),
        (
            "scheme://user:pass@foo.com:42/?q=test&s=some+thing#fragment",
            (
                Some("scheme"),
                Some("user:pass"),
                Some("foo.com"),
                Some(42),
                Some("/"),
                Some("q=test&s=some+thing"),
                Some("fragment"),
            ),
            "scheme://user:pass@foo.com:42/?q=test&s=some+thing#fragment",
        ),
        (
            "scheme://user@foo.com/#fragment",
            (
                Some("scheme"),
                Some("user"),
                Some("foo.com"),
                None,
                Some("/"),
                None,
                Some("fragment"),
            ),
            "scheme://user@foo.com/#fragment",
        ),
        (
            "scheme://%75ser@foo.com/#frag@ment",
            (
                Some("scheme"),
                Some("%75ser"),
                Some("foo.com"),
                None,
                Some("/"),
                None,
                Some("frag@ment"),
            ),
            "scheme://%75ser@foo.com/#frag@ment",
        ),
        (
            "file:///some/path/to/the/file",
            (
                Some("file"),
                None,
                Some(""),
                None,
                Some("/some/path/to/the/file"),
                None,
                None,
            ),
            "file:///some/path/to/the/file",
        ),
        (
            "///some/path/to/the-file",
            (
                None,
                None,
                Some(""),
                None,
                Some("/some/path/to/the-file"),
                None,
                None,
            ),
            "///some/path/to/the-file",
        ),
        (
            "/s:ome/path/to/the-file?q=99#fred",
            (
                None,
                None,
                None,
                None,
                Some("/s:ome/path/to/the-file"),
                Some("q=99"),
                Some("fred"),
            ),
            "/s:ome/path/to/the-file?q=99#fred",
        ),
        (
            "relative/path/with/co:lon",
            (
                None,
                None,
                None,
                None,
                Some("relative/path/with/co:lon"),
                None,
                None,
            ),
            "relative/path/with/co:lon",
        ),
        (
            "bob?q=99&q2=q?33#fr?ed",
            (
                None,
                None,
                None,
                None,
                Some("bob"),
                Some("q=99&q2=q?33"),
                Some("fr?ed"),
            ),
            "bob?q=99&q2=q?33#fr?ed",
        ),
        (
            "#fr?ed",
            (None, None, None, None, Some(""), None, Some("fr?ed")),
            "#fr?ed",
        ),
    ];
    for flags in MODES {
        for &(input, want, joined) in cases {
            let uri = Uri::parse_with(input, flags)
                .unwrap_or_else(|e| panic!("{input:?} with {flags:?}: {e}"));
            assert_eq!(parts(&uri), want, "{input:?} with {flags:?}");
            assert_eq!(uri.join(), joined, "{input:?} with {flags:?}");
            assert_eq!(uri.to_string(), joined);
            assert_eq!(uri.flags(), flags);
        }
    }
}

/// Further corners of the grammar as libevent reads it.
#[test]
fn more_edges() {
    // The empty reference, and an authority that is only "//".
    check("", (None, None, None, None, Some(""), None, None));
    check("//", (None, None, Some(""), None, Some(""), None, None));
    check(
        "http://",
        (Some("http"), None, Some(""), None, Some(""), None, None),
    );
    // Userinfo with an empty host, an empty userinfo, the '@' of a path is no userinfo.
    check(
        "http://u@:0/",
        (
            Some("http"),
            Some("u"),
            Some(""),
            Some(0),
            Some("/"),
            None,
            None,
        ),
    );
    check(
        "http://@h",
        (
            Some("http"),
            Some(""),
            Some("h"),
            None,
            Some(""),
            None,
            None,
        ),
    );
    check(
        "http://h/@x",
        (Some("http"), None, Some("h"), None, Some("/@x"), None, None),
    );
    // Leading zeros in the port; the port is the digits after the host's last ':'.
    check(
        "http://h:000080",
        (
            Some("http"),
            None,
            Some("h"),
            Some(80),
            Some(""),
            None,
            None,
        ),
    );
    check(
        "http://h:65535",
        (
            Some("http"),
            None,
            Some("h"),
            Some(65535),
            Some(""),
            None,
            None,
        ),
    );
    check(
        "http://[::1]:",
        (
            Some("http"),
            None,
            Some("[::1]"),
            None,
            Some(""),
            None,
            None,
        ),
    );
    // A scheme is only the text before the first ':' when it is one; "//" after it is authority.
    check(
        "a:b:c",
        (Some("a"), None, None, None, Some("b:c"), None, None),
    );
    check(
        "A.b+c-d:",
        (Some("A.b+c-d"), None, None, None, Some(""), None, None),
    );
    check(
        "http:////x",
        (Some("http"), None, Some(""), None, Some("//x"), None, None),
    );
    check("x/y:z", (None, None, None, None, Some("x/y:z"), None, None));
    check(
        "?a:b",
        (None, None, None, None, Some(""), Some("a:b"), None),
    );
    // Sub-delims in the host, IPv4 as a reg-name, percent escapes kept as they are.
    check(
        "http://a!$&'()*+,;=b.1.2.3.4/%2F%2f?%00",
        (
            Some("http"),
            None,
            Some("a!$&'()*+,;=b.1.2.3.4"),
            None,
            Some("/%2F%2f"),
            Some("%00"),
            None,
        ),
    );
    check(
        "http://1.2.3.4:5",
        (
            Some("http"),
            None,
            Some("1.2.3.4"),
            Some(5),
            Some(""),
            None,
            None,
        ),
    );
    // IPv6 forms inet_pton accepts.
    for host in [
        "[::]",
        "[::ffff:1.2.3.4]",
        "[1:2:3:4:5:6:7:8]",
        "[1::2:3:4:5:6:7]",
        "[FFFF::A]",
    ] {
        let uri = Uri::parse(&format!("http://{host}/")).unwrap();
        assert_eq!(uri.host(), Some(host));
    }
    for host in [
        "[1:2:3:4:5:6:7:8:9]",
        "[12345::]",
        "[::1.2.3]",
        "[::1.-2.3.4]",
        "[:::]",
        "[fe80::1%25eth0]",
    ] {
        assert!(Uri::parse(&format!("http://{host}/")).is_err(), "{host}");
    }
}

#[test]
fn setters_refuse_what_libevent_refuses() {
    let mut uri = Uri::new();
    let host_err = |at| {
        Err(UriError::Invalid {
            part: Part::Host,
            at,
        })
    };
    assert_eq!(
        uri.set_scheme(Some("")),
        Err(UriError::Invalid {
            part: Part::Scheme,
            at: 0
        })
    );
    assert_eq!(
        uri.set_scheme(Some("33")),
        Err(UriError::Invalid {
            part: Part::Scheme,
            at: 0
        })
    );
    assert_eq!(
        uri.set_scheme(Some("hi!")),
        Err(UriError::Invalid {
            part: Part::Scheme,
            at: 2
        })
    );
    assert_eq!(
        uri.set_userinfo(Some("hello@")),
        Err(UriError::Invalid {
            part: Part::Userinfo,
            at: 5
        })
    );
    assert_eq!(uri.set_host(Some("[1.2.3.4]")), host_err(0));
    assert_eq!(uri.set_host(Some("[")), host_err(0));
    assert_eq!(uri.set_host(Some("www.[foo].com")), host_err(4));
    assert_eq!(uri.set_host(Some("a:80")), host_err(1));
    assert_eq!(
        uri.set_path(Some("hello?world")),
        Err(UriError::Invalid {
            part: Part::Path,
            at: 5
        })
    );
    assert_eq!(
        uri.set_query(Some("hello#world")),
        Err(UriError::Invalid {
            part: Part::Query,
            at: 5
        })
    );
    assert_eq!(
        uri.set_fragment(Some("hello#world")),
        Err(UriError::Invalid {
            part: Part::Fragment,
            at: 5
        })
    );
    assert_eq!(uri.set_query(Some("a\0b")), Err(UriError::Nul { at: 1 }));
    // Nothing refused was stored.
    assert_eq!(uri, Uri::new());
    assert_eq!(uri.join(), "");
}

#[test]
fn setters_accept_what_libevent_accepts() {
    let mut uri = Uri::new();
    uri.set_scheme(Some("http")).unwrap();
    uri.set_scheme(None).unwrap();
    uri.set_userinfo(Some("username:pass")).unwrap();
    uri.set_userinfo(None).unwrap();
    for host in [
        "www.example.com",
        "1.2.3.4",
        "[1:2:3:4::]",
        "[v7.wobblewobble]",
        "",
    ] {
        uri.set_host(Some(host)).unwrap();
        assert_eq!(uri.host(), Some(host));
    }
    uri.set_host(None).unwrap();
    uri.set_port(None);
    uri.set_port(Some(80));
    uri.set_port(Some(65535));
    for path in ["", "/documents/public/index.html"] {
        uri.set_path(Some(path)).unwrap();
    }
    uri.set_path(None).unwrap();
    for query in ["key=val&key2=val2", "keyvalblarg", ""] {
        uri.set_query(Some(query)).unwrap();
    }
    uri.set_query(None).unwrap();
    for fragment in ["", "here?i?am"] {
        uri.set_fragment(Some(fragment)).unwrap();
    }
    uri.set_fragment(None).unwrap();
    assert_eq!(uri.port(), Some(65535));
    assert_eq!(uri.join(), "");
}

#[test]
fn nonconformant_setters() {
    let mut uri = Uri::new();
    assert!(uri.set_path(Some("/a b")).is_err());
    uri.set_flags(UriFlags::NONCONFORMANT);
    uri.set_path(Some("/a b%")).unwrap();
    uri.set_query(Some("x y?z")).unwrap();
    uri.set_fragment(Some("f#g h")).unwrap();
    assert_eq!(
        uri.set_path(Some("/a?b")),
        Err(UriError::Invalid {
            part: Part::Path,
            at: 2
        })
    );
    assert_eq!(
        uri.set_path(Some("/a#b")),
        Err(UriError::Invalid {
            part: Part::Path,
            at: 2
        })
    );
    assert_eq!(
        uri.set_query(Some("a#b")),
        Err(UriError::Invalid {
            part: Part::Query,
            at: 1
        })
    );
    assert_eq!(uri.set_fragment(Some("\0")), Err(UriError::Nul { at: 0 }));
    // The scheme and authority stay strict.
    assert!(uri.set_host(Some("a b")).is_err());
    assert_eq!(uri.join(), "/a b%?x y?z#f#g h");
    assert_eq!(
        Uri::parse_with(&uri.join(), UriFlags::NONCONFORMANT),
        Ok(uri)
    );
}

/// What join writes for each combination: the authority only with a host.
#[test]
fn join_combinations() {
    let mut uri = Uri::new();
    uri.set_host(Some("www.example.com")).unwrap();
    assert_eq!(uri.join(), "//www.example.com");
    uri.set_userinfo(Some("u:p")).unwrap();
    uri.set_port(Some(0));
    assert_eq!(uri.join(), "//u:p@www.example.com:0");
    uri.set_scheme(Some("s")).unwrap();
    uri.set_path(Some("/p")).unwrap();
    uri.set_query(Some("")).unwrap();
    uri.set_fragment(Some("")).unwrap();
    assert_eq!(uri.join(), "s://u:p@www.example.com:0/p?#");
    uri.set_host(Some("")).unwrap();
    assert_eq!(uri.join(), "s://u:p@:0/p?#");
    // Without a host, neither userinfo nor port is written.
    uri.set_host(None).unwrap();
    assert_eq!(uri.join(), "s:/p?#");
    uri.set_path(None).unwrap();
    assert_eq!(uri.join(), "s:?#");
    assert_eq!(format!("{uri}"), "s:?#");
}

/// libevent accepts a host with a path like "hi_mom" and fails in evhttp_uri_join; the setters
/// refuse the pair here, so join cannot fail.
#[test]
fn relative_path_with_host_is_refused() {
    let mut uri = Uri::new();
    uri.set_host(Some("www.example.com")).unwrap();
    assert_eq!(
        uri.set_path(Some("hi_mom")),
        Err(UriError::RelativePathWithHost)
    );
    assert_eq!(uri.path(), None);
    uri.set_host(None).unwrap();
    uri.set_path(Some("hi_mom")).unwrap();
    assert_eq!(
        uri.set_host(Some("www.example.com")),
        Err(UriError::RelativePathWithHost)
    );
    assert_eq!(uri.host(), None);
    assert_eq!(uri.join(), "hi_mom");
    // An empty host is a host too; clearing the host is always allowed.
    assert_eq!(uri.set_host(Some("")), Err(UriError::RelativePathWithHost));
    uri.set_host(None).unwrap();
}

#[test]
fn from_str_is_strict_parse() {
    let uri: Uri = "http://h/p".parse().unwrap();
    assert_eq!(uri, Uri::parse("http://h/p").unwrap());
    assert!("http://h/a b".parse::<Uri>().is_err());
}

#[test]
fn errors_display() {
    assert_eq!(
        UriError::Invalid {
            part: Part::Port,
            at: 3
        }
        .to_string(),
        "invalid URI port at byte 3"
    );
    assert_eq!(
        UriError::Nul { at: 0 }.to_string(),
        "NUL byte in URI at byte 0"
    );
    let e: Box<dyn std::error::Error> = Box::new(UriError::RelativePathWithHost);
    assert!(e.to_string().contains("'/'"));
}
