//! `ParseError`: the status each refusal answers with, and that every one closes.

use revent_http::ParseError;

#[test]
fn statuses() {
    let all = [
        (ParseError::InvalidRequestLine, 400),
        (ParseError::InvalidStatusLine, 400),
        (ParseError::InvalidTarget, 400),
        (ParseError::InvalidVersion, 400),
        (ParseError::UnsupportedVersion, 505),
        (ParseError::InvalidHeaderName, 400),
        (ParseError::InvalidHeaderValue, 400),
        (ParseError::NulByte, 400),
        (ParseError::BareCr, 400),
        (ParseError::ObsoleteLineFolding, 400),
        (ParseError::HeadersTooLarge { limit: 1 }, 431),
        (ParseError::TooManyHeaders { limit: 1 }, 431),
        (ParseError::DuplicateHost, 400),
        (ParseError::InvalidContentLength, 400),
        (ParseError::ConflictingContentLength, 400),
        (ParseError::ContentLengthWithTransferEncoding, 400),
        (ParseError::TransferEncodingInHttp10, 400),
        (ParseError::InvalidTransferEncoding, 400),
        (ParseError::UnsupportedTransferCoding, 501),
        (ParseError::InvalidChunkSize, 400),
        (ParseError::InvalidChunkExtension, 400),
        (ParseError::InvalidChunkTerminator, 400),
        (ParseError::BodyTooLarge { limit: 1 }, 413),
        (ParseError::Truncated, 400),
        (ParseError::Buffer("frozen".into()), 500),
    ];
    let mut messages = std::collections::HashSet::new();
    for (e, status) in all {
        assert_eq!(e.status(), status, "{e:?}");
        assert!(e.must_close(), "{e:?}");
        assert!(messages.insert(e.to_string()), "two errors read alike: {e}");
    }
}

#[test]
fn a_frozen_buffer_is_an_error_not_a_panic() {
    use revent::{BufferEnd, Evbuffer};
    let mut b = Evbuffer::new();
    b.add(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    b.freeze(BufferEnd::Start);
    let e = revent_http::RequestParser::new().parse(&mut b).unwrap_err();
    assert!(matches!(e, ParseError::Buffer(_)), "{e:?}");
    assert_eq!(e.status(), 500);
}
