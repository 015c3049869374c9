//! Properties of the URI, encoding, query and HTML helpers over generated input.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use revent_http::encode::{decode_uri, encode_uri, encode_uri_with, uridecode};
use revent_http::html::html_escape;
use revent_http::query::{parse_query_str, parse_query_str_bytes};
use revent_http::{Uri, UriFlags};

fn flags() -> impl Strategy<Value = UriFlags> {
    prop_oneof![Just(UriFlags::empty()), Just(UriFlags::NONCONFORMANT)]
}

/// Strings made mostly of the characters that matter to the URI grammar, to reach every branch.
fn uri_like() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9:/?#\\[\\]@!$&'()*+,;=%._~ v\u{0}\u{1}\u{e9}-]{0,48}"
}

fn re(pattern: &str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(pattern).unwrap()
}

// Components valid in strict mode (RFC 3986 as libevent checks it).
const PCT: &str = "%[0-9A-Fa-f]{2}";

fn scheme() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9+.-]{0,6}"
}

fn userinfo() -> impl Strategy<Value = String> {
    re(&format!("([a-zA-Z0-9._~!$&'()*+,;=:-]|{PCT}){{0,10}}"))
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        re(&format!("([a-zA-Z0-9._~!$&'()*+,;=-]|{PCT}){{0,12}}")).boxed(),
        any::<[u8; 4]>()
            .prop_map(|o| Ipv4Addr::from(o).to_string())
            .boxed(),
        any::<[u16; 8]>()
            .prop_map(|g| format!("[{}]", Ipv6Addr::from(g)))
            .boxed(),
        re("\\[v[0-9a-fA-F]{1,3}\\.[a-zA-Z0-9:._~!$&'()*+,;=-]{0,8}\\]").boxed(),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    re(&format!("([a-zA-Z0-9._~!$&'()*+,;=:@-]|{PCT}){{0,8}}"))
}

fn query_or_fragment() -> impl Strategy<Value = String> {
    re(&format!("([a-zA-Z0-9._~!$&'()*+,;=:@/?-]|{PCT}){{0,12}}"))
}

/// A URI whose join parses back to itself: a userinfo and port only with a host, the path always
/// set (a parsed URI always has one), absolute or empty under a host, never starting with "//"
/// without one, and without a scheme no ':' in its first segment.
#[derive(Debug, Clone)]
struct Parts {
    scheme: Option<String>,
    authority: Option<(Option<String>, String, Option<u16>)>,
    path: String,
    query: Option<String>,
    fragment: Option<String>,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        proptest::option::of(scheme()),
        proptest::option::of((
            proptest::option::of(userinfo()),
            host(),
            any::<Option<u16>>(),
        )),
        any::<bool>(),
        proptest::collection::vec(segment(), 0..4),
        proptest::option::of(query_or_fragment()),
        proptest::option::of(query_or_fragment()),
    )
        .prop_map(|(scheme, authority, absolute, segs, query, fragment)| {
            let absolute = absolute || (authority.is_some() && !segs.is_empty());
            let path = format!("{}{}", if absolute { "/" } else { "" }, segs.join("/"));
            Parts {
                scheme,
                authority,
                path,
                query,
                fragment,
            }
        })
        .prop_filter("no authority: the path cannot start with //", |p| {
            p.authority.is_some() || !p.path.starts_with("//")
        })
        .prop_filter("no scheme: no ':' in the first segment", |p| {
            p.scheme.is_some()
                || p.authority.is_some()
                || !p.path.split('/').next().unwrap_or("").contains(':')
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(bytes in any::<Vec<u8>>(), plus in any::<bool>()) {
        let enc = encode_uri_with(&bytes, plus);
        prop_assert_eq!(uridecode(&enc, plus), bytes.clone());
        // encode_uri escapes '?' and '+', so the deprecated decoder reads it back too.
        prop_assert_eq!(decode_uri(encode_uri(&bytes)), bytes);
    }

    #[test]
    fn encode_emits_only_unreserved_and_escapes(bytes in any::<Vec<u8>>(), plus in any::<bool>()) {
        let enc = encode_uri_with(&bytes, plus).into_bytes();
        let mut i = 0;
        let mut n = 0;
        while i < enc.len() {
            let c = enc[i];
            if c == b'%' {
                let hex = &enc[i + 1..i + 3];
                prop_assert!(hex.iter().all(|h| matches!(h, b'0'..=b'9' | b'A'..=b'F')));
                let byte = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
                prop_assert_eq!(byte, bytes[n]);
                prop_assert!(!(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)));
                prop_assert!(!(plus && byte == b' '));
                i += 3;
            } else if c == b'+' {
                prop_assert!(plus);
                prop_assert_eq!(bytes[n], b' ');
                i += 1;
            } else {
                prop_assert!(c.is_ascii_alphanumeric() || b"-._~".contains(&c));
                prop_assert_eq!(c, bytes[n]);
                i += 1;
            }
            n += 1;
        }
        prop_assert_eq!(n, bytes.len());
    }

    #[test]
    fn decoders_take_any_bytes(bytes in any::<Vec<u8>>(), plus in any::<bool>()) {
        let dec = uridecode(&bytes, plus);
        prop_assert!(dec.len() <= bytes.len());
        prop_assert!(decode_uri(&bytes).len() <= bytes.len());
        if !bytes.contains(&b'%') && !bytes.contains(&b'+') {
            prop_assert_eq!(dec, bytes);
        }
    }

    #[test]
    fn parse_never_panics_and_join_parses_back(s in uri_like(), flags in flags()) {
        if let Ok(uri) = Uri::parse_with(&s, flags) {
            let joined = uri.join();
            prop_assert!(joined.len() <= s.len());
            prop_assert_eq!(Uri::parse_with(&joined, flags), Ok(uri));
        }
    }

    #[test]
    fn parse_never_panics_on_any_text(s in any::<String>(), flags in flags()) {
        if let Ok(uri) = Uri::parse_with(&s, flags) {
            prop_assert_eq!(Uri::parse_with(&uri.join(), flags), Ok(uri));
        }
    }

    #[test]
    fn generated_uris_join_and_parse_back(p in parts(), flags in flags()) {
        let mut uri = Uri::new();
        uri.set_flags(flags);
        uri.set_scheme(p.scheme.as_deref()).unwrap();
        if let Some((userinfo, host, port)) = &p.authority {
            uri.set_userinfo(userinfo.as_deref()).unwrap();
            uri.set_host(Some(host)).unwrap();
            uri.set_port(*port);
        }
        uri.set_path(Some(&p.path)).unwrap();
        uri.set_query(p.query.as_deref()).unwrap();
        uri.set_fragment(p.fragment.as_deref()).unwrap();
        let joined = uri.join();
        prop_assert_eq!(Uri::parse_with(&joined, flags), Ok(uri.clone()));
        prop_assert_eq!(joined, uri.to_string());
    }

    #[test]
    fn query_pairs_round_trip(
        pairs in proptest::collection::vec(("[a-zA-Z0-9_.~-]{1,8}", any::<Vec<u8>>()), 0..8),
        plus in any::<bool>(),
        trailing in any::<bool>(),
    ) {
        let mut q: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_uri_with(v, plus)))
            .collect();
        if trailing && !q.is_empty() {
            q.push(String::new());
        }
        let parsed = parse_query_str_bytes(&q.join("&")).unwrap();
        let want: Vec<(String, Vec<u8>)> = pairs.clone();
        prop_assert_eq!(parsed, want);
    }

    #[test]
    fn query_parse_never_panics(s in "[a-z=&%+0-9A-F\u{0}\u{e9}]{0,32}") {
        if let Ok(pairs) = parse_query_str(&s) {
            for (k, _) in &pairs {
                prop_assert!(!k.is_empty() && !k.contains('&') && !k.contains('='));
            }
            prop_assert_eq!(parse_query_str_bytes(&s).unwrap().len(), pairs.len());
        }
    }

    #[test]
    fn html_escape_leaves_no_markup(s in any::<String>()) {
        let esc = html_escape(&s);
        prop_assert!(!esc.contains(['<', '>', '"', '\'']));
        let back = esc
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#039;", "'")
            .replace("&amp;", "&");
        prop_assert_eq!(back, s);
    }
}
