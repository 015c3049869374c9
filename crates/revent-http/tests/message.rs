//! Request and response heads: what is parsed, body framing, limits at their exact boundaries,
//! pipelining, and hostile sizes.

use std::time::{Duration, Instant};

use revent::Evbuffer;
use revent_http::{
    BodyDecoder, BodyFraming, Limits, Method, ParseError, Progress, RequestHead, RequestParser,
    ResponseHead, ResponseParser, Version,
};

fn buf(bytes: &[u8]) -> Evbuffer {
    let mut b = Evbuffer::new();
    b.add(bytes).unwrap();
    b
}

fn parse_req_with(bytes: &[u8], limits: Limits) -> Result<RequestHead, ParseError> {
    let mut b = buf(bytes);
    match RequestParser::with_limits(limits).parse(&mut b)? {
        Progress::Complete(h) => Ok(h),
        Progress::Partial => panic!("partial: {:?}", String::from_utf8_lossy(bytes)),
    }
}

fn parse_req(bytes: &[u8]) -> Result<RequestHead, ParseError> {
    parse_req_with(bytes, Limits::default())
}

fn parse_res(bytes: &[u8], method: &Method) -> Result<ResponseHead, ParseError> {
    let mut b = buf(bytes);
    match ResponseParser::new().parse(&mut b, method)? {
        Progress::Complete(h) => Ok(h),
        Progress::Partial => panic!("partial"),
    }
}

#[test]
fn request_head_fields() {
    let h = parse_req(
        b"GET http://example.com:81/p/a%20th?q=1#f HTTP/1.0\r\nHost: example.com\r\nX-Empty:\r\nX-Spaces:   v  v \t\r\nAccept: */*\r\n\r\n",
    )
    .unwrap();
    assert_eq!(h.method(), &Method::Get);
    assert_eq!(h.target(), "http://example.com:81/p/a%20th?q=1#f");
    assert_eq!(h.uri().host(), Some("example.com"));
    assert_eq!(h.uri().port(), Some(81));
    assert_eq!(h.uri().path(), Some("/p/a%20th"));
    assert_eq!(h.uri().query(), Some("q=1"));
    assert_eq!(h.version(), Version::Http10);
    let fields: Vec<(&str, &[u8])> = h.headers().iter().collect();
    assert_eq!(
        fields,
        [
            ("Host", &b"example.com"[..]),
            ("X-Empty", b""),
            ("X-Spaces", b"v  v"),
            ("Accept", b"*/*")
        ]
    );
    assert_eq!(h.framing(), BodyFraming::None);
    assert!(!h.keep_alive(), "HTTP/1.0 without keep-alive");
}

#[test]
fn methods_including_unknown_ones() {
    for (m, want) in [
        ("GET", Method::Get),
        ("POST", Method::Post),
        ("HEAD", Method::Head),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("TRACE", Method::Trace),
        ("CONNECT", Method::Connect),
        ("PATCH", Method::Patch),
        ("PROPFIND", Method::Other("PROPFIND".into())),
        ("get", Method::Other("get".into())),
    ] {
        let h = parse_req(format!("{m} / HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(h.method(), &want);
        assert_eq!(h.method().as_str(), m);
    }
    assert_eq!(
        parse_req(b"G(T / HTTP/1.1\r\n\r\n").unwrap_err(),
        ParseError::InvalidRequestLine
    );
}

#[test]
fn request_line_shapes() {
    for bad in [
        &b"GET  / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1 \r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET\r\n\r\n",
        b" GET / HTTP/1.1\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET /a b HTTP/2.0\r\n\r\n",
        b"GET / http/1.1\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\n\r\n",
    ] {
        let e = parse_req(bad).unwrap_err();
        assert_eq!(e.status(), 400, "{:?}: {e:?}", String::from_utf8_lossy(bad));
    }
    // OPTIONS * and CONNECT's authority form parse.
    assert_eq!(
        parse_req(b"OPTIONS * HTTP/1.1\r\n\r\n").unwrap().target(),
        "*"
    );
    assert_eq!(
        parse_req(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
            .unwrap()
            .target(),
        "example.com:443"
    );
    // A target that is not UTF-8 is refused, not mangled.
    assert_eq!(
        parse_req(b"GET /\xff HTTP/1.1\r\n\r\n").unwrap_err(),
        ParseError::InvalidRequestLine
    );
    // Nor is one the URI parser refuses.
    assert_eq!(
        parse_req(b"GET http://[::1/ HTTP/1.1\r\n\r\n").unwrap_err(),
        ParseError::InvalidTarget
    );
}

#[test]
fn empty_lines_before_the_request_line_are_skipped() {
    let h = parse_req(b"\r\n\r\n\nGET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(h.target(), "/");
    // LF alone ends lines too (RFC 9112 §2.2), as in libevent.
    let h = parse_req(b"GET /lf HTTP/1.1\nHost: h\n\n").unwrap();
    assert_eq!(h.headers().find_str("host"), Some("h"));
}

#[test]
fn versions() {
    assert_eq!(
        parse_req(b"GET / HTTP/1.1\r\n\r\n").unwrap().version(),
        Version::Http11
    );
    for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0", "HTTP/9.9"] {
        let e = parse_req(format!("GET / {v}\r\n\r\n").as_bytes()).unwrap_err();
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::UnsupportedVersion, 505),
            "{v}"
        );
    }
    for v in [
        "HTTP/1.4294967297",
        "HTTP/4294967297.1",
        "HTTP/1.10",
        "HTTP/01.1",
        "HTTP/1.",
        "HTTP/1",
        "HTTP/",
        "HTTP/1.1.1",
        "HTTP/-1.1",
        "HTTP/1.-1",
        "HTTP/18446744073709551617.1",
    ] {
        let e = parse_req(format!("GET / {v}\r\n\r\n").as_bytes()).unwrap_err();
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::InvalidVersion, 400),
            "{v}"
        );
    }
}

#[test]
fn keep_alive_reads_connection_as_a_list() {
    let ka = |req: &str| parse_req(req.as_bytes()).unwrap().keep_alive();
    assert!(ka("GET / HTTP/1.1\r\n\r\n"));
    assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert!(!ka("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n"));
    assert!(!ka(
        "GET / HTTP/1.1\r\nConnection: upgrade\r\nConnection: close\r\n\r\n"
    ));
    assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
    assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert!(!ka(
        "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
    ));
}

#[test]
fn request_framing() {
    let f = |req: &str| parse_req(req.as_bytes()).map(|h| h.framing());
    assert_eq!(f("GET / HTTP/1.1\r\n\r\n"), Ok(BodyFraming::None));
    assert_eq!(
        f("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        Ok(BodyFraming::Length(0))
    );
    assert_eq!(
        f("POST / HTTP/1.1\r\nContent-Length: 0012\r\n\r\n"),
        Ok(BodyFraming::Length(12))
    );
    assert_eq!(
        f("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n"),
        Ok(BodyFraming::Length(u64::MAX))
    );
    assert_eq!(
        f("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        f("POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n"),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        f("POST / HTTP/1.1\r\nTransfer-Encoding: ,chunked, \r\n\r\n"),
        Ok(BodyFraming::Chunked)
    );
}

#[test]
fn response_heads_and_framing() {
    let get = Method::Get;
    let h = parse_res(
        b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 3\r\n\r\n",
        &get,
    )
    .unwrap();
    assert_eq!(
        (h.status(), h.reason(), h.version()),
        (200, "OK", Version::Http11)
    );
    assert_eq!(h.headers().find_str("server"), Some("x"));
    assert_eq!(h.framing(), BodyFraming::Length(3));
    assert!(h.keep_alive());
    let f = |res: &str, m: &Method| parse_res(res.as_bytes(), m).map(|h| h.framing());
    // No body, whatever the fields say.
    for status in [
        "100 Continue",
        "101 Switching",
        "199 X",
        "204 No Content",
        "304 Not Modified",
    ] {
        assert_eq!(
            f(
                &format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                ),
                &get
            ),
            Ok(BodyFraming::None),
            "{status}"
        );
    }
    assert_eq!(
        f(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            &Method::Head
        ),
        Ok(BodyFraming::None)
    );
    assert_eq!(
        f("HTTP/1.1 200 OK\r\n\r\n", &Method::Connect),
        Ok(BodyFraming::None)
    );
    assert_eq!(
        f(
            "HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n",
            &Method::Connect
        ),
        Ok(BodyFraming::Length(2))
    );
    // Close-delimited.
    assert_eq!(f("HTTP/1.1 200 OK\r\n\r\n", &get), Ok(BodyFraming::Close));
    assert_eq!(
        f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &get),
        Ok(BodyFraming::Close)
    );
    assert!(!parse_res(b"HTTP/1.1 200 OK\r\n\r\n", &get)
        .unwrap()
        .keep_alive());
    // Chunked last, with other codings before it: the client dechunks.
    assert_eq!(
        f(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            &get
        ),
        Ok(BodyFraming::Chunked)
    );
    // Refusals.
    for (res, err) in [
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            ParseError::ContentLengthWithTransferEncoding,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ParseError::ConflictingContentLength,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            ParseError::InvalidContentLength,
        ),
        (
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            ParseError::TransferEncodingInHttp10,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            ParseError::InvalidTransferEncoding,
        ),
        ("HTTP/2.0 200 OK\r\n\r\n", ParseError::UnsupportedVersion),
        ("HTTP/1.10 200 OK\r\n\r\n", ParseError::InvalidVersion),
        ("HTTP/1.1 20 OK\r\n\r\n", ParseError::InvalidStatusLine),
        ("HTTP/1.1 099 OK\r\n\r\n", ParseError::InvalidStatusLine),
        ("HTTP/1.1 2000 OK\r\n\r\n", ParseError::InvalidStatusLine),
        ("HTTP/1.1 200 O\0K\r\n\r\n", ParseError::NulByte),
        (
            "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            ParseError::ObsoleteLineFolding,
        ),
        ("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", ParseError::BareCr),
    ] {
        assert_eq!(parse_res(res.as_bytes(), &get).unwrap_err(), err, "{res:?}");
    }
    // No reason phrase at all.
    let h = parse_res(b"HTTP/1.0 503\r\n\r\n", &get).unwrap();
    assert_eq!((h.status(), h.reason()), (503, ""));
}

#[test]
fn partial_until_the_empty_line() {
    let whole = b"GET /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n";
    for cut in 0..whole.len() {
        let mut b = buf(&whole[..cut]);
        let mut p = RequestParser::new();
        assert_eq!(p.parse(&mut b).unwrap(), Progress::Partial, "cut {cut}");
        assert_eq!(b.len(), cut, "nothing consumed while partial");
        b.add(&whole[cut..]).unwrap();
        let h = p.parse(&mut b).unwrap().complete().unwrap();
        assert_eq!(h.target(), "/x");
        assert!(b.is_empty());
    }
}

#[test]
fn pipelined_requests_in_order_from_one_buffer() {
    let mut input = buf(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n\
POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n\
HEAD /4 HTTP/1.1\r\nHost: h\r\n\r\n\
GET /5 HTTP/1.1\r\nHost: h\r\n");
    let mut parser = RequestParser::new();
    let mut seen = Vec::new();
    while let Progress::Complete(head) = parser.parse(&mut input).unwrap() {
        let mut body = Evbuffer::new();
        let mut dec = BodyDecoder::new(head.framing(), parser.limits()).unwrap();
        let trailers = dec
            .decode(&mut input, &mut body)
            .unwrap()
            .complete()
            .unwrap();
        seen.push((
            head.target().to_string(),
            body.pullup_all().unwrap().to_vec(),
            trailers.len(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("/1".to_string(), b"".to_vec(), 0),
            ("/2".to_string(), b"hello".to_vec(), 0),
            ("/3".to_string(), b"abcde".to_vec(), 1),
            ("/4".to_string(), b"".to_vec(), 0),
        ]
    );
    // The fifth is incomplete and waits in the buffer.
    assert_eq!(input.len(), b"GET /5 HTTP/1.1\r\nHost: h\r\n".len());
    input.add(b"\r\n").unwrap();
    assert_eq!(
        parser
            .parse(&mut input)
            .unwrap()
            .complete()
            .unwrap()
            .target(),
        "/5"
    );
}

/// A request head of exactly `size` bytes (`size` >= 40).
fn head_of_size(size: usize) -> Vec<u8> {
    let fixed = b"GET / HTTP/1.1\r\nX: \r\n\r\n".len();
    let mut v = b"GET / HTTP/1.1\r\nX: ".to_vec();
    v.extend(std::iter::repeat(b'a').take(size - fixed));
    v.extend_from_slice(b"\r\n\r\n");
    assert_eq!(v.len(), size);
    v
}

#[test]
fn head_size_limit_at_the_boundary() {
    for limit in [40, 41, 100, 1000, 8192] {
        let limits = Limits {
            max_head_bytes: limit,
            ..Limits::default()
        };
        for size in [limit - 1, limit] {
            let head = head_of_size(size);
            assert!(
                parse_req_with(&head, limits.clone()).is_ok(),
                "{size}/{limit}"
            );
            // Byte by byte too.
            let mut p = RequestParser::with_limits(limits.clone());
            let mut b = Evbuffer::new();
            for (i, &byte) in head.iter().enumerate() {
                b.add(&[byte]).unwrap();
                let r = p.parse(&mut b).unwrap();
                assert_eq!(r.is_complete(), i == head.len() - 1);
            }
        }
        let head = head_of_size(limit + 1);
        let e = parse_req_with(&head, limits.clone()).unwrap_err();
        assert_eq!(e, ParseError::HeadersTooLarge { limit });
        assert_eq!((e.status(), e.must_close()), (431, true));
        // Byte by byte: refused when byte limit + 1 arrives, not later.
        let mut p = RequestParser::with_limits(limits.clone());
        let mut b = Evbuffer::new();
        for (i, &byte) in head.iter().enumerate() {
            b.add(&[byte]).unwrap();
            match p.parse(&mut b) {
                Ok(Progress::Partial) => assert!(i < limit, "{i}"),
                Err(e) => {
                    assert_eq!(i, limit);
                    assert_eq!(e, ParseError::HeadersTooLarge { limit });
                    break;
                }
                Ok(Progress::Complete(_)) => panic!("complete past the limit"),
            }
        }
    }
    // Leading empty lines count.
    let limits = Limits {
        max_head_bytes: 20,
        ..Limits::default()
    };
    assert!(parse_req_with(b"GET / HTTP/1.1\r\n\r\n", limits.clone()).is_ok());
    assert!(parse_req_with(b"\r\nGET / HTTP/1.1\r\n\r\n", limits.clone()).is_ok());
    assert_eq!(
        parse_req_with(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", limits).unwrap_err(),
        ParseError::HeadersTooLarge { limit: 20 }
    );
}

#[test]
fn header_count_limit_at_the_boundary() {
    for max in [0usize, 1, 2, 10, 100] {
        let limits = Limits {
            max_headers: max,
            ..Limits::default()
        };
        let req = |n: usize| {
            let mut r = b"GET / HTTP/1.1\r\n".to_vec();
            for i in 0..n {
                r.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
            }
            r.extend_from_slice(b"\r\n");
            r
        };
        if max > 0 {
            assert_eq!(
                parse_req_with(&req(max - 1), limits.clone())
                    .unwrap()
                    .headers()
                    .len(),
                max - 1
            );
        }
        assert_eq!(
            parse_req_with(&req(max), limits.clone())
                .unwrap()
                .headers()
                .len(),
            max
        );
        let e = parse_req_with(&req(max + 1), limits.clone()).unwrap_err();
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::TooManyHeaders { limit: max }, 431)
        );
        assert_eq!(
            parse_req_with(&req(max + 50), limits).unwrap_err(),
            ParseError::TooManyHeaders { limit: max }
        );
    }
}

#[test]
fn content_length_body_limit_at_the_boundary() {
    let limits = Limits {
        max_body: 1000,
        ..Limits::default()
    };
    let req = |n: u64| format!("POST / HTTP/1.1\r\nContent-Length: {n}\r\n\r\n");
    assert_eq!(
        parse_req_with(req(999).as_bytes(), limits.clone())
            .unwrap()
            .framing(),
        BodyFraming::Length(999)
    );
    assert_eq!(
        parse_req_with(req(1000).as_bytes(), limits.clone())
            .unwrap()
            .framing(),
        BodyFraming::Length(1000)
    );
    let e = parse_req_with(req(1001).as_bytes(), limits).unwrap_err();
    assert_eq!(
        (e.clone(), e.status()),
        (ParseError::BodyTooLarge { limit: 1000 }, 413)
    );
}

#[test]
fn a_never_ending_head_is_refused_without_reading_it_all() {
    let limit = 64 * 1024;
    let piece = vec![b'a'; 16 * 1024];
    let mut p = RequestParser::new();
    let mut b = buf(b"GET / HTTP/1.1\r\nX-Long: ");
    let mut fed = b.len();
    let start = Instant::now();
    let err = loop {
        b.add(&piece).unwrap();
        fed += piece.len();
        assert!(fed < 100 * 1024 * 1024, "never refused");
        if let Err(e) = p.parse(&mut b) {
            break e;
        }
    };
    assert_eq!(err, ParseError::HeadersTooLarge { limit });
    assert!(fed <= limit + 1 + piece.len(), "refused after {fed} bytes");
    // Many header lines, and many leading empty lines, are refused the same way.
    for filler in [&b"A: b\r\n"[..], b"\r\n"] {
        let mut p = RequestParser::new();
        let mut b = Evbuffer::new();
        if filler != b"\r\n" {
            b.add(b"GET / HTTP/1.1\r\n").unwrap();
        }
        let mut fed = b.len();
        let err = loop {
            for _ in 0..1000 {
                b.add(filler).unwrap();
            }
            fed += 1000 * filler.len();
            if let Err(e) = p.parse(&mut b) {
                break e;
            }
        };
        assert_eq!(err.status(), 431);
        assert!(fed <= limit + 1 + 1000 * filler.len());
    }
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn byte_at_a_time_is_linear() {
    // A 60 KiB head fed one byte at a time: each byte is scanned once. A parser that rescanned
    // from the start would do 1.8e9 steps here.
    let head = head_of_size(60 * 1024);
    let mut p = RequestParser::new();
    let mut b = Evbuffer::new();
    let start = Instant::now();
    for &byte in &head {
        b.add(&[byte]).unwrap();
        if p.parse(&mut b).unwrap().is_complete() {
            break;
        }
    }
    assert!(b.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn response_heads_byte_by_byte() {
    let whole = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let mut p = ResponseParser::new();
    let mut b = Evbuffer::new();
    let head_len = whole.len() - 5;
    for (i, &byte) in whole[..head_len].iter().enumerate() {
        b.add(&[byte]).unwrap();
        match p.parse(&mut b, &Method::Get).unwrap() {
            Progress::Partial => assert!(i < head_len - 1),
            Progress::Complete(h) => {
                assert_eq!(i, head_len - 1);
                assert_eq!(h.framing(), BodyFraming::Chunked);
            }
        }
    }
    assert!(b.is_empty());
}
