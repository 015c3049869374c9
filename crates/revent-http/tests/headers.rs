//! `Headers`: evkeyvalq semantics (first match, case-insensitive, insertion order) and the
//! refusals that keep header injection out.

use revent_http::{HeaderError, Headers};

#[test]
fn find_is_case_insensitive_and_takes_the_first_match() {
    let mut h = Headers::new();
    h.add("Set-Cookie", "a=1").unwrap();
    h.add("Host", "example.com").unwrap();
    h.add("set-cookie", "b=2").unwrap();
    assert_eq!(h.find("SET-COOKIE"), Some(&b"a=1"[..]));
    assert_eq!(h.find_str("host"), Some("example.com"));
    assert_eq!(h.find("Missing"), None);
    let all: Vec<&[u8]> = h.find_all("Set-Cookie").collect();
    assert_eq!(all, [&b"a=1"[..], &b"b=2"[..]]);
    assert_eq!(h.len(), 3);
    assert!(h.contains("HOST"));
}

#[test]
fn iteration_keeps_insertion_order_and_names_as_added() {
    let mut h = Headers::new();
    for (n, v) in [("B", "1"), ("a", "2"), ("C", "3"), ("a", "4")] {
        h.add(n, v).unwrap();
    }
    let got: Vec<(&str, &[u8])> = h.iter().collect();
    assert_eq!(
        got,
        [
            ("B", &b"1"[..]),
            ("a", &b"2"[..]),
            ("C", &b"3"[..]),
            ("a", &b"4"[..])
        ]
    );
}

#[test]
fn remove_takes_only_the_first_match() {
    let mut h = Headers::new();
    h.add("X", "1").unwrap();
    h.add("Y", "2").unwrap();
    h.add("x", "3").unwrap();
    assert!(h.remove("X"));
    assert_eq!(h.find_str("x"), Some("3"));
    assert!(h.remove("x"));
    assert!(!h.remove("x"));
    assert_eq!(h.len(), 1);
    h.clear();
    assert!(h.is_empty());
    assert_eq!(h.iter().count(), 0);
}

#[test]
fn cr_lf_and_nul_are_refused_in_values() {
    let mut h = Headers::new();
    for bad in [
        &b"a\r\nSet-Cookie: evil"[..],
        b"a\nb",
        b"a\rb",
        b"\r\n continued",
        b"a\0b",
        b"\n",
    ] {
        assert_eq!(h.add("X", bad), Err(HeaderError::InvalidValue), "{bad:?}");
    }
    assert!(h.is_empty());
    // Tabs, obs-text and an empty value are fine.
    h.add("X", b"a\tb \xe9").unwrap();
    h.add("Y", "").unwrap();
    assert_eq!(h.find("x"), Some(&b"a\tb \xe9"[..]));
    assert_eq!(h.find_str("x"), None, "not UTF-8");
    assert_eq!(h.find_str("y"), Some(""));
}

#[test]
fn names_must_be_tokens() {
    let mut h = Headers::new();
    for bad in [
        "", "Bad Name", "X:Y", "X\r\nY", "X\n", "X\0", "Ümlaut", "(x)", "a/b",
    ] {
        assert_eq!(h.add(bad, "v"), Err(HeaderError::InvalidName), "{bad:?}");
    }
    for good in ["X-Custom_1", "!#$%&'*+-.^_`|~", "a"] {
        h.add(good, "v").unwrap();
    }
    assert_eq!(h.len(), 3);
    assert_eq!(
        HeaderError::InvalidName.to_string(),
        "header name is not a token"
    );
}
