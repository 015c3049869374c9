//! revent-http's URI, percent-encoding, query and HTML helpers on arbitrary input. Any panic, or a
//! URI that does not join and parse back to itself, is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revent_http::encode::{decode_uri, encode_uri_with, uridecode};
use revent_http::html::html_escape;
use revent_http::query::{parse_query_str, parse_query_str_bytes};
use revent_http::{Uri, UriFlags};

fuzz_target!(|data: &[u8]| {
    // Bytes first: the decoders take any.
    let plus = data.first().is_some_and(|b| b & 1 == 1);
    let dec = uridecode(data, plus);
    assert!(dec.len() <= data.len());
    assert!(decode_uri(data).len() <= data.len());
    assert_eq!(uridecode(encode_uri_with(data, plus), plus), data);

    let Ok(s) = std::str::from_utf8(data) else { return };
    for flags in [UriFlags::empty(), UriFlags::NONCONFORMANT] {
        if let Ok(uri) = Uri::parse_with(s, flags) {
            let joined = uri.join();
            assert!(joined.len() <= s.len());
            assert_eq!(Uri::parse_with(&joined, flags).as_ref(), Ok(&uri));
        }
    }
    match (parse_query_str(s), parse_query_str_bytes(s)) {
        (Ok(text), Ok(bytes)) => {
            assert_eq!(text.len(), bytes.len());
            for ((k, v), (kb, vb)) in text.iter().zip(&bytes) {
                assert!(!k.is_empty() && !k.contains('&') && !k.contains('='));
                assert_eq!((k, v.as_bytes()), (kb, vb.as_slice()));
            }
        }
        (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) => assert!(matches!(e, revent_http::query::QueryError::NotUtf8 { .. })),
        (Ok(_), Err(e)) => panic!("bytes form refused what the text form took: {e}"),
    }
    let esc = html_escape(s);
    assert!(!esc.contains(['<', '>', '"', '\'']));
});
