//! Every request-smuggling and header-injection class of the "Safety" list (the ones
//! libevent 2.1.13 fixed in evhttp): each refused with its status, and the connection closed.

use revent::Evbuffer;
use revent_http::{ChunkedDecoder, Limits, ParseError, Progress, RequestParser};

fn parse(bytes: &[u8]) -> Result<Progress<revent_http::RequestHead>, ParseError> {
    let mut b = Evbuffer::new();
    b.add(bytes).unwrap();
    RequestParser::new().parse(&mut b)
}

fn refused(bytes: &[u8]) -> ParseError {
    let e = parse(bytes).unwrap_err();
    assert!(e.must_close(), "{e:?}");
    e
}

fn chunked(bytes: &[u8]) -> Result<(Vec<u8>, revent_http::Headers), ParseError> {
    let mut input = Evbuffer::new();
    input.add(bytes).unwrap();
    let mut out = Evbuffer::new();
    let mut d = ChunkedDecoder::new(Limits::default());
    match d.decode(&mut input, &mut out)? {
        Progress::Complete(t) => Ok((out.pullup_all().unwrap().to_vec(), t)),
        Progress::Partial => panic!("partial: {:?}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn content_length_with_transfer_encoding() {
    for req in [
        &b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: 4\r\ntransfer-encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.0\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let e = refused(req);
        assert_eq!(e, ParseError::ContentLengthWithTransferEncoding);
        assert_eq!(e.status(), 400);
    }
}

#[test]
fn conflicting_and_invalid_content_lengths() {
    for cl in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
        "Content-Length: 5\r\nContent-Length: 5, 7",
        "Content-Length: 0\r\nContent-Length: 00, 1",
    ] {
        let req = format!("POST / HTTP/1.1\r\n{cl}\r\n\r\n");
        assert_eq!(
            refused(req.as_bytes()),
            ParseError::ConflictingContentLength,
            "{cl}"
        );
    }
    for v in [
        "+5",
        "-5",
        "0x5",
        "5 5",
        "5;",
        "",
        "5,",
        ",5",
        "5.0",
        "1e3",
        "18446744073709551616",
        "99999999999999999999999",
        "\u{0661}",
    ] {
        let req = format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n");
        let e = refused(req.as_bytes());
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::InvalidContentLength, 400),
            "{v:?}"
        );
    }
    // The same value repeated is one value (RFC 9110 §8.6).
    for cl in [
        "Content-Length: 5\r\nContent-Length: 5",
        "Content-Length: 5, 05 ,5",
    ] {
        let req = format!("POST / HTTP/1.1\r\n{cl}\r\n\r\n");
        let head = parse(req.as_bytes()).unwrap().complete().unwrap();
        assert_eq!(head.framing(), revent_http::BodyFraming::Length(5));
    }
}

#[test]
fn transfer_encodings_that_cannot_be_trusted() {
    for (te, err) in [
        ("chunked, chunked", ParseError::InvalidTransferEncoding),
        (
            "chunked\r\nTransfer-Encoding: chunked",
            ParseError::InvalidTransferEncoding,
        ),
        ("chunked, gzip", ParseError::InvalidTransferEncoding),
        ("chunked;x=1", ParseError::InvalidTransferEncoding),
        ("\"chunked\"", ParseError::InvalidTransferEncoding),
        ("", ParseError::InvalidTransferEncoding),
        (" , ,", ParseError::InvalidTransferEncoding),
        ("chunk ed", ParseError::InvalidTransferEncoding),
        ("gzip", ParseError::UnsupportedTransferCoding),
        ("identity", ParseError::UnsupportedTransferCoding),
        ("gzip, chunked", ParseError::UnsupportedTransferCoding),
        (
            "gzip\r\nTransfer-Encoding: chunked",
            ParseError::UnsupportedTransferCoding,
        ),
        ("xchunked", ParseError::UnsupportedTransferCoding),
        ("chunkedx", ParseError::UnsupportedTransferCoding),
    ] {
        let req = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n");
        let e = refused(req.as_bytes());
        assert_eq!(e, err, "{te:?}");
        let status = if err == ParseError::UnsupportedTransferCoding {
            501
        } else {
            400
        };
        assert_eq!(e.status(), status);
    }
    // HTTP/1.0 has no transfer codings: its framing is faulty (RFC 9112 §6.1).
    assert_eq!(
        refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ParseError::TransferEncodingInHttp10
    );
}

#[test]
fn obsolete_line_folding() {
    for req in [
        &b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\n 0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
        b"GET / HTTP/1.1\n X: y\n\n",
    ] {
        let e = refused(req);
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::ObsoleteLineFolding, 400)
        );
    }
}

#[test]
fn bare_cr() {
    for req in [
        &b"GET / HTTP/1.1\rHost: h\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX\r: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: b\r\n\r\r\n",
        b"GET /\r HTTP/1.1\r\n\r\n",
        b"\rGET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: b\r\r\n\r\n",
    ] {
        let e = refused(req);
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::BareCr, 400),
            "{req:?}"
        );
    }
}

#[test]
fn nul_is_never_cut_at() {
    for req in [
        &b"GET / HTTP/1.1\r\nX-Auth: admin\0.jpg\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nX\0Y: v\r\n\r\n",
        b"GET /a\0b HTTP/1.1\r\n\r\n",
        b"G\0T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\0\r\n\r\n",
    ] {
        let e = refused(req);
        assert_eq!((e.clone(), e.status()), (ParseError::NulByte, 400));
    }
}

#[test]
fn cr_lf_and_control_bytes_in_names_and_values() {
    for (req, err) in [
        (
            &b"GET / HTTP/1.1\r\nHo st: h\r\n\r\n"[..],
            ParseError::InvalidHeaderName,
        ),
        (
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            ParseError::InvalidHeaderName,
        ),
        (
            b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",
            ParseError::InvalidHeaderName,
        ),
        (
            b"GET / HTTP/1.1\r\nHo\nst: h\r\n\r\n",
            ParseError::InvalidHeaderName,
        ),
        (
            b"GET / HTTP/1.1\r\n: h\r\n\r\n",
            ParseError::InvalidHeaderName,
        ),
        (
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            ParseError::InvalidHeaderName,
        ),
        (
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            ParseError::InvalidHeaderValue,
        ),
        (
            b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
            ParseError::InvalidHeaderValue,
        ),
        (
            b"GET / HTTP/1.1\r\nX: a\x1bb\r\n\r\n",
            ParseError::InvalidHeaderValue,
        ),
    ] {
        let e = refused(req);
        assert_eq!(
            (e.clone(), e.status()),
            (err, 400),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
    // A LF in a value can only end the line: what follows is a field of its own, checked as one.
    let head = parse(b"GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n")
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(head.headers().find_str("x"), Some("a"));
    assert_eq!(head.headers().find_str("y"), Some("b"));
    // obs-text is kept as bytes, not refused or cut.
    let head = parse(b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n")
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(head.headers().find("x"), Some(&b"caf\xe9"[..]));
}

#[test]
fn duplicate_host() {
    let e = refused(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n");
    assert_eq!((e.clone(), e.status()), (ParseError::DuplicateHost, 400));
}

#[test]
fn version_number_overflow() {
    for v in [
        "HTTP/1.4294967297",
        "HTTP/4294967297.1",
        "HTTP/1.18446744073709551617",
        "HTTP/99999999999999999999.0",
        "HTTP/1.00000000000000000001",
    ] {
        let e = refused(format!("GET / {v}\r\n\r\n").as_bytes());
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::InvalidVersion, 400),
            "{v}"
        );
    }
}

#[test]
fn chunk_sizes_strictly_hex() {
    assert_eq!(
        chunked(b"a\r\n0123456789\r\n0\r\n\r\n").unwrap().0,
        b"0123456789"
    );
    assert_eq!(
        chunked(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap().0,
        b"0123456789"
    );
    assert_eq!(
        chunked(b"00000000000000000000001\r\nx\r\n000\r\n\r\n")
            .unwrap()
            .0,
        b"x"
    );
    for body in [
        &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
        b"0X5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"-0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"\t5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5 5\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b";ext\r\nhello\r\n0\r\n\r\n",
        b"g\r\n",
        b"5g\r\n",
        b"5_0\r\n",
        b"10000000000000000\r\n",
        b"fffffffffffffffff\r\n",
        b"5\r\nhello\r\n0x0\r\n\r\n",
    ] {
        let e = chunked(body).unwrap_err();
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::InvalidChunkSize, 400),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert!(e.must_close());
    }
    // Whitespace before a `;` is BWS, allowed by the grammar.
    assert_eq!(
        chunked(b"5 \t;a=b\r\nhello\r\n0\r\n\r\n").unwrap().0,
        b"hello"
    );
}

#[test]
fn chunk_lines_end_with_crlf_exactly() {
    for body in [
        &b"5\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\r\nhello\r0\r\n\r\n",
        b"5\rhello\r\n0\r\n\r\n",
        b"5;a\nhello\r\n0\r\n\r\n",
        b"0\n\r\n",
    ] {
        let e = chunked(body).unwrap_err();
        assert!(
            matches!(
                e,
                ParseError::InvalidChunkTerminator | ParseError::InvalidChunkExtension
            ),
            "{:?}: {e:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(e.status(), 400);
    }
}

#[test]
fn trailer_fields_never_reach_the_head_and_framing_ones_are_dropped() {
    let mut input = Evbuffer::new();
    input
        .add(
            b"POST / HTTP/1.1\r\nHost: good\r\nTransfer-Encoding: chunked\r\n\r\n\
3\r\nabc\r\n0\r\n\
Content-Length: 100\r\nTransfer-Encoding: gzip\r\nHost: evil\r\nConnection: close\r\n\
Content-Type: text/evil\r\nIf-None-Match: x\r\nSet-Cookie: s=1\r\nAuthorization: Basic x\r\n\
Server-Timing: db;dur=53\r\nX-Checksum: abc\r\n\r\n\
GET /next HTTP/1.1\r\nHost: good\r\n\r\n",
        )
        .unwrap();
    let mut parser = RequestParser::new();
    let head = parser.parse(&mut input).unwrap().complete().unwrap();
    let mut body = Evbuffer::new();
    let mut dec = ChunkedDecoder::new(Limits::default());
    let trailers = dec
        .decode(&mut input, &mut body)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(body.pullup_all().unwrap(), b"abc");
    let kept: Vec<(&str, &[u8])> = trailers.iter().collect();
    assert_eq!(
        kept,
        [("Server-Timing", &b"db;dur=53"[..]), ("X-Checksum", b"abc")]
    );
    // The head is untouched, and the next request is read where it starts.
    assert_eq!(head.headers().find_str("host"), Some("good"));
    assert_eq!(head.headers().len(), 2);
    let next = parser.parse(&mut input).unwrap().complete().unwrap();
    assert_eq!(next.target(), "/next");
}

#[test]
fn trailers_follow_the_head_rules() {
    for (trailers, err) in [
        (&b"X: a\0b\r\n\r\n"[..], ParseError::NulByte),
        (b"X: a\rb\r\n\r\n", ParseError::BareCr),
        (b"X: a\r\n b\r\n\r\n", ParseError::ObsoleteLineFolding),
        (b" X: a\r\n\r\n", ParseError::ObsoleteLineFolding),
        (b"X : a\r\n\r\n", ParseError::InvalidHeaderName),
        (b"X: \x01\r\n\r\n", ParseError::InvalidHeaderValue),
    ] {
        let mut body = b"1\r\nz\r\n0\r\n".to_vec();
        body.extend_from_slice(trailers);
        assert_eq!(
            chunked(&body).unwrap_err(),
            err,
            "{:?}",
            String::from_utf8_lossy(trailers)
        );
    }
}
