//! Body decoders: chunked (incremental, limits at their boundaries, trailers), Content-Length and
//! close-delimited bodies, data moved rather than copied, and endless bodies streamed in bounded
//! memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use revent::Evbuffer;
use revent_http::{
    BodyDecoder, BodyFraming, ChunkedDecoder, Headers, LengthDecoder, Limits, ParseError, Progress,
};

fn evbuf(bytes: &[u8]) -> Evbuffer {
    let mut b = Evbuffer::new();
    b.add(bytes).unwrap();
    b
}

/// Decodes `bytes` fed all at once; returns body, trailers and what is left in the input.
fn decode_all(bytes: &[u8], limits: Limits) -> Result<(Vec<u8>, Headers, Vec<u8>), ParseError> {
    let mut input = evbuf(bytes);
    let mut out = Evbuffer::new();
    let mut d = ChunkedDecoder::new(limits);
    match d.decode(&mut input, &mut out)? {
        Progress::Complete(t) => Ok((
            out.pullup_all().unwrap().to_vec(),
            t,
            input.pullup_all().unwrap().to_vec(),
        )),
        Progress::Partial => panic!("partial"),
    }
}

/// The same, one byte at a time.
fn decode_bytewise(
    bytes: &[u8],
    limits: Limits,
) -> Result<(Vec<u8>, Headers, Vec<u8>), ParseError> {
    let mut input = Evbuffer::new();
    let mut out = Evbuffer::new();
    let mut d = ChunkedDecoder::new(limits);
    for (i, &b) in bytes.iter().enumerate() {
        input.add(&[b]).unwrap();
        if let Progress::Complete(t) = d.decode(&mut input, &mut out)? {
            input.add(&bytes[i + 1..]).unwrap();
            return Ok((
                out.pullup_all().unwrap().to_vec(),
                t,
                input.pullup_all().unwrap().to_vec(),
            ));
        }
    }
    panic!("partial");
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let msg = b"4;name=value;flag\r\nWiki\r\n5 ;q=\"quoted; \\\" string\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nX-Sum: 1\r\nX-Sum: 2\r\n\r\nrest";
    for decode in [decode_all, decode_bytewise] {
        let (body, trailers, rest) = decode(msg, Limits::default()).unwrap();
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(trailers.find_all("x-sum").collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(rest, b"rest");
    }
    // No data at all, no trailers.
    let (body, trailers, rest) = decode_all(b"0\r\n\r\n", Limits::default()).unwrap();
    assert!(body.is_empty() && trailers.is_empty() && rest.is_empty());
}

#[test]
fn body_limit_at_the_boundary_is_checked_before_the_data() {
    let limits = Limits {
        max_body: 10,
        ..Limits::default()
    };
    let ok = decode_all(b"5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n", limits.clone()).unwrap();
    assert_eq!(ok.0, b"1234567890");
    assert!(decode_all(b"9\r\n123456789\r\n0\r\n\r\n", limits.clone()).is_ok());
    // 11 bytes announced: refused at the size line, with none of the data sent.
    for msg in [&b"5\r\n12345\r\n6\r\n"[..], b"b\r\n"] {
        let mut input = evbuf(msg);
        let mut out = Evbuffer::new();
        let mut d = ChunkedDecoder::new(limits.clone());
        let e = d.decode(&mut input, &mut out).unwrap_err();
        assert_eq!(
            (e.clone(), e.status()),
            (ParseError::BodyTooLarge { limit: 10 }, 413)
        );
    }
    // A size past u64 once added to what came before.
    let limits = Limits::default();
    let mut input = evbuf(b"1\r\nx\r\nffffffffffffffff\r\n");
    let e = ChunkedDecoder::new(limits)
        .decode(&mut input, &mut Evbuffer::new())
        .unwrap_err();
    assert_eq!(e.status(), 413);
}

#[test]
fn chunk_line_limit_at_the_boundary() {
    for max in [1usize, 2, 10, 100] {
        let limits = Limits {
            max_chunk_line: max,
            ..Limits::default()
        };
        // A size line of `n` bytes: "1" then ";" and filler.
        let line = |n: usize| {
            let mut l = b"1".to_vec();
            if n > 1 {
                l.push(b';');
                l.extend(std::iter::repeat(b'e').take(n - 2));
            }
            l.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
            l
        };
        if max > 1 {
            assert!(decode_all(&line(max - 1), limits.clone()).is_ok());
        }
        assert!(decode_all(&line(max), limits.clone()).is_ok(), "{max}");
        assert!(decode_bytewise(&line(max), limits.clone()).is_ok(), "{max}");
        let e = decode_all(&line(max + 1), limits.clone()).unwrap_err();
        assert_eq!(e, ParseError::InvalidChunkExtension);
        // Leading zeros count too: a size line cannot be endless.
        let mut zeros = vec![b'0'; max];
        zeros.extend_from_slice(b"1\r\nx\r\n0\r\n\r\n");
        assert_eq!(
            decode_all(&zeros, limits).unwrap_err(),
            ParseError::InvalidChunkExtension
        );
    }
    // Control bytes in extensions.
    for ext in [&b"1;a\x00\r\n"[..], b"1;a\x01\r\n", b"1;\x7f\r\n"] {
        let mut input = evbuf(ext);
        let e = ChunkedDecoder::new(Limits::default())
            .decode(&mut input, &mut Evbuffer::new())
            .unwrap_err();
        assert_eq!(e, ParseError::InvalidChunkExtension);
    }
}

#[test]
fn trailer_limits_at_the_boundary() {
    // Trailer section sizes: "X: " + filler + "\r\n\r\n".
    let section = |n: usize| {
        let mut t = b"X: ".to_vec();
        t.extend(std::iter::repeat(b'v').take(n - 7));
        t.extend_from_slice(b"\r\n\r\n");
        assert_eq!(t.len(), n);
        t
    };
    let limits = Limits {
        max_head_bytes: 50,
        ..Limits::default()
    };
    for (size, ok) in [(49, true), (50, true), (51, false)] {
        let mut msg = b"0\r\n".to_vec();
        msg.extend(section(size));
        let r = decode_all(&msg, limits.clone());
        assert_eq!(r.is_ok(), ok, "{size}");
        let r = decode_bytewise(&msg, limits.clone());
        if ok {
            assert!(r.is_ok());
        } else {
            let e = r.unwrap_err();
            assert_eq!(
                (e.clone(), e.status()),
                (ParseError::HeadersTooLarge { limit: 50 }, 431)
            );
        }
    }
    let limits = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let msg = |n: usize| {
        let mut m = b"0\r\n".to_vec();
        for i in 0..n {
            m.extend_from_slice(format!("T{i}: v\r\n").as_bytes());
        }
        m.extend_from_slice(b"\r\n");
        m
    };
    assert_eq!(decode_all(&msg(2), limits.clone()).unwrap().1.len(), 2);
    assert_eq!(decode_all(&msg(3), limits.clone()).unwrap().1.len(), 3);
    assert_eq!(
        decode_all(&msg(4), limits).unwrap_err(),
        ParseError::TooManyHeaders { limit: 3 }
    );
}

#[test]
fn chunk_data_moves_without_copying() {
    // A referenced chunk of data is handed to the output whole: the input never copies it, and
    // the memory is released only when the output lets it go.
    let released = Arc::new(AtomicBool::new(false));
    let r = released.clone();
    let data = vec![b'z'; 4096];
    let mut input = evbuf(b"1000\r\n");
    input
        .add_reference(data, move |_| r.store(true, Ordering::SeqCst))
        .unwrap();
    input.add(b"\r\n0\r\n\r\n").unwrap();
    let mut out = Evbuffer::new();
    let mut d = ChunkedDecoder::new(Limits::default());
    assert!(d.decode(&mut input, &mut out).unwrap().is_complete());
    assert_eq!(out.len(), 4096);
    assert_eq!(d.body_len(), 4096);
    drop(input);
    assert!(
        !released.load(Ordering::SeqCst),
        "the output holds the very chunk"
    );
    drop(out);
    assert!(released.load(Ordering::SeqCst));
}

#[test]
fn an_endless_chunk_streams_in_bounded_memory() {
    let piece = vec![b'd'; 64 * 1024];
    let mut input = evbuf(b"7fffffffffffffff\r\n");
    let mut out = Evbuffer::new();
    let mut d = ChunkedDecoder::new(Limits::default());
    for _ in 0..1600 {
        // 100 MiB in all.
        input.add(&piece).unwrap();
        assert_eq!(d.decode(&mut input, &mut out).unwrap(), Progress::Partial);
        assert!(input.is_empty());
        assert_eq!(out.len(), piece.len());
        out.drain(out.len()).unwrap(); // the consumer takes it
    }
    assert_eq!(d.body_len(), 1600 * 64 * 1024);
    // An endless extension is refused by the line limit, not buffered.
    let mut input = evbuf(b"1;");
    let mut d = ChunkedDecoder::new(Limits::default());
    let mut fed = 2;
    let e = loop {
        input.add(&vec![b'e'; 1000]).unwrap();
        fed += 1000;
        if let Err(e) = d.decode(&mut input, &mut out) {
            break e;
        }
        assert!(
            input.is_empty(),
            "extension bytes are consumed as they are skipped"
        );
    };
    assert_eq!(e, ParseError::InvalidChunkExtension);
    assert!(fed <= 4096 + 1000);
}

#[test]
fn content_length_bodies() {
    let limits = Limits {
        max_body: 100,
        ..Limits::default()
    };
    assert!(LengthDecoder::new(99, &limits).is_ok());
    assert!(LengthDecoder::new(100, &limits).is_ok());
    assert_eq!(
        LengthDecoder::new(101, &limits).unwrap_err(),
        ParseError::BodyTooLarge { limit: 100 }
    );
    let mut d = LengthDecoder::new(10, &limits).unwrap();
    let mut input = Evbuffer::new();
    let mut out = Evbuffer::new();
    for (i, &b) in b"0123456789NEXT".iter().enumerate() {
        input.add(&[b]).unwrap();
        let p = d.decode(&mut input, &mut out).unwrap();
        assert_eq!(p.is_complete(), i >= 9);
        assert_eq!(d.remaining(), 9u64.saturating_sub(i as u64));
    }
    assert_eq!(out.pullup_all().unwrap(), b"0123456789");
    assert_eq!(input.pullup_all().unwrap(), b"NEXT");
    // A zero length is complete at once.
    let mut d = LengthDecoder::new(0, &limits).unwrap();
    assert!(d.decode(&mut input, &mut out).unwrap().is_complete());
    assert_eq!(input.len(), 4);
}

#[test]
fn body_decoder_over_each_framing() {
    let limits = Limits {
        max_body: 8,
        ..Limits::default()
    };
    let mut out = Evbuffer::new();
    // None: complete at once, nothing taken.
    let mut input = evbuf(b"next");
    let mut d = BodyDecoder::new(BodyFraming::None, &limits).unwrap();
    assert!(d.decode(&mut input, &mut out).unwrap().is_complete());
    assert_eq!(input.len(), 4);
    assert!(d.finish().is_ok());
    // Close-delimited: up to the limit.
    let mut d = BodyDecoder::new(BodyFraming::Close, &limits).unwrap();
    let mut input = evbuf(b"12345678");
    assert_eq!(d.decode(&mut input, &mut out).unwrap(), Progress::Partial);
    assert!(d.finish().is_ok());
    input.add(b"9").unwrap();
    let e = d.decode(&mut input, &mut out).unwrap_err();
    assert_eq!(
        (e.clone(), e.status()),
        (ParseError::BodyTooLarge { limit: 8 }, 413)
    );
    // Length and chunked: truncated if the connection ends early.
    assert_eq!(
        BodyDecoder::new(BodyFraming::Length(9), &limits).unwrap_err(),
        ParseError::BodyTooLarge { limit: 8 }
    );
    let mut d = BodyDecoder::new(BodyFraming::Length(3), &limits).unwrap();
    let mut input = evbuf(b"ab");
    assert_eq!(d.decode(&mut input, &mut out).unwrap(), Progress::Partial);
    assert_eq!(d.finish().unwrap_err(), ParseError::Truncated);
    input.add(b"c").unwrap();
    assert!(d.decode(&mut input, &mut out).unwrap().is_complete());
    assert!(d.finish().is_ok());
    let mut d = BodyDecoder::new(BodyFraming::Chunked, &limits).unwrap();
    let mut input = evbuf(b"2\r\nab\r\n");
    assert_eq!(d.decode(&mut input, &mut out).unwrap(), Progress::Partial);
    assert_eq!(d.finish().unwrap_err(), ParseError::Truncated);
    input.add(b"0\r\nT: 1\r\n\r\n").unwrap();
    let t = d.decode(&mut input, &mut out).unwrap().complete().unwrap();
    assert_eq!(t.find_str("t"), Some("1"));
    assert!(d.finish().is_ok());
}
