//! Query strings: libevent's `http_parse_query_test` and more.

use revent_http::query::{
    parse_query, parse_query_bytes, parse_query_str, parse_query_str_bytes, QueryError,
};
use revent_http::{Part, UriError};

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// libevent's regress test `http_parse_query_test`.
#[test]
fn libevent_cases() {
    let ok = |uri: &str, want: &[(&str, &str)]| {
        assert_eq!(parse_query(uri), Ok(pairs(want)), "{uri}");
    };
    ok("http://www.test.com/?q=test", &[("q", "test")]);
    ok(
        "http://www.test.com/?q=test&foo=bar",
        &[("q", "test"), ("foo", "bar")],
    );
    ok("http://www.test.com/?q=test+foo", &[("q", "test foo")]);
    ok("http://www.test.com/?q=test%0Afoo", &[("q", "test\nfoo")]);
    ok("http://www.test.com/?q=test%0Dfoo", &[("q", "test\rfoo")]);
    ok("http://www.test.com/?q=test+this", &[("q", "test this")]);
    ok(
        "http://www.test.com/?q=test&q2=foo",
        &[("q", "test"), ("q2", "foo")],
    );
    ok(
        "http://www.test.com/?q=&q2=&q3=",
        &[("q", ""), ("q2", ""), ("q3", "")],
    );
    for bad in [
        "http://www.test.com/?q=test&&q2",
        "http://www.test.com/?q&q2=foo",
        "http://www.test.com/?q=foo&q2",
        "http://www.test.com/?q=foo&q2&q3=x",
    ] {
        assert!(
            matches!(parse_query(bad), Err(QueryError::MissingEquals { .. })),
            "{bad}"
        );
    }
}

#[test]
fn empty_and_trailing_ampersands() {
    assert_eq!(parse_query_str(""), Ok(vec![]));
    assert_eq!(parse_query_str("a=1&"), Ok(pairs(&[("a", "1")])));
    assert_eq!(
        parse_query_str("&"),
        Err(QueryError::MissingEquals { at: 0 })
    );
    assert_eq!(
        parse_query_str("&a=1"),
        Err(QueryError::MissingEquals { at: 0 })
    );
    assert_eq!(
        parse_query_str("a=1&&"),
        Err(QueryError::MissingEquals { at: 4 })
    );
    assert_eq!(
        parse_query_str("a=1&=2"),
        Err(QueryError::EmptyKey { at: 4 })
    );
    assert_eq!(parse_query_str("="), Err(QueryError::EmptyKey { at: 0 }));
}

#[test]
fn keys_are_kept_as_written_values_decoded() {
    assert_eq!(
        parse_query_str("a+b%20c=d+e%20f&a+b%20c=2"),
        Ok(pairs(&[("a+b%20c", "d e f"), ("a+b%20c", "2")]))
    );
    assert_eq!(parse_query_str("k=%zz%4+%"), Ok(pairs(&[("k", "%zz%4 %")])));
    assert_eq!(parse_query_str("k=a=b=c"), Ok(pairs(&[("k", "a=b=c")])));
    assert_eq!(parse_query_str("k=?/:@"), Ok(pairs(&[("k", "?/:@")])));
}

#[test]
fn nul_is_kept_and_bytes_are_not_lost() {
    assert_eq!(
        parse_query_str("f=admin%00.jpg"),
        Ok(pairs(&[("f", "admin\0.jpg")]))
    );
    assert_eq!(
        parse_query_str("ok=1&bad=%C3%28"),
        Err(QueryError::NotUtf8 {
            at: 5,
            key: "bad".into(),
            value: vec![0xc3, 0x28]
        })
    );
    assert_eq!(
        parse_query_str_bytes("ok=1&bad=%C3%28"),
        Ok(vec![
            ("ok".into(), b"1".to_vec()),
            ("bad".into(), vec![0xc3, 0x28])
        ])
    );
    assert_eq!(
        parse_query_bytes("/p?v=%FF"),
        Ok(vec![("v".into(), vec![0xff])])
    );
    assert_eq!(parse_query_str("v=%C3%A9"), Ok(pairs(&[("v", "é")])));
}

#[test]
fn uri_errors() {
    assert_eq!(
        parse_query("http://h/a b?q=1"),
        Err(QueryError::Uri(UriError::Invalid {
            part: Part::Path,
            at: 10
        }))
    );
    assert_eq!(parse_query("mailto:x"), Ok(vec![]));
    assert_eq!(parse_query("?"), Ok(vec![]));
    assert_eq!(parse_query("?a=1#b=2"), Ok(pairs(&[("a", "1")])));
    let e = parse_query_bytes("http://[x]/").unwrap_err();
    assert!(std::error::Error::source(&e).is_some());
    assert!(e.to_string().starts_with("cannot parse the query's URI"));
}
