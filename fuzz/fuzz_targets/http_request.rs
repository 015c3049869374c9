//! revent-http's request path on arbitrary bytes: request heads then their bodies (pipelined,
//! chunked with trailers, Content-Length), response heads, and the chunked decoder on its own.
//! Any panic is a bug; so is a different outcome when the same bytes arrive in other pieces, a
//! refusal with a status this layer does not answer with, or input held past the head limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revent::Evbuffer;
use revent_http::{
    BodyDecoder, ChunkedDecoder, Headers, Limits, Method, ParseError, Progress, RequestHead,
    ResponseParser, RequestParser,
};

#[derive(Debug, PartialEq)]
enum Event {
    Head(RequestHead),
    Body(Vec<u8>, Headers),
    Error(ParseError),
    Left(Vec<u8>, usize),
}

fn drive(pieces: &[&[u8]], limits: &Limits) -> Vec<Event> {
    let mut parser = RequestParser::with_limits(limits.clone());
    let mut input = Evbuffer::new();
    let mut body = Evbuffer::new();
    let mut decoder: Option<BodyDecoder> = None;
    let mut events = Vec::new();
    for piece in pieces {
        input.add(piece).unwrap();
        loop {
            if let Some(d) = &mut decoder {
                match d.decode(&mut input, &mut body) {
                    Ok(Progress::Partial) => {
                        // Only an unfinished trailer section waits in the input.
                        assert!(input.len() <= limits.max_head_bytes);
                        break;
                    }
                    Ok(Progress::Complete(trailers)) => {
                        let bytes = body.pullup_all().unwrap().to_vec();
                        body.drain(bytes.len()).unwrap();
                        events.push(Event::Body(bytes, trailers));
                        decoder = None;
                    }
                    Err(e) => {
                        events.push(Event::Error(e));
                        return events;
                    }
                }
            } else {
                match parser.parse(&mut input) {
                    Ok(Progress::Partial) => {
                        assert!(input.len() <= limits.max_head_bytes);
                        break;
                    }
                    Ok(Progress::Complete(head)) => {
                        match BodyDecoder::new(head.framing(), limits) {
                            Ok(d) => decoder = Some(d),
                            Err(e) => {
                                events.push(Event::Error(e));
                                return events;
                            }
                        }
                        events.push(Event::Head(head));
                    }
                    Err(e) => {
                        events.push(Event::Error(e));
                        return events;
                    }
                }
            }
        }
    }
    events.push(Event::Left(body.pullup_all().unwrap().to_vec(), input.len()));
    events
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else { return };
    let limits = Limits {
        max_head_bytes: if ctl & 1 == 0 { 64 * 1024 } else { 48 },
        max_headers: if ctl & 2 == 0 { 100 } else { 2 },
        max_body: if ctl & 4 == 0 { u64::MAX } else { 16 },
        max_chunk_line: if ctl & 8 == 0 { 4096 } else { 4 },
    };
    let step = usize::from(ctl >> 4) + 1;

    let whole = drive(&[data], &limits);
    let pieces: Vec<&[u8]> = data.chunks(step).collect();
    assert_eq!(drive(&pieces, &limits), whole);
    if let Some(Event::Error(e)) = whole.last() {
        assert!(e.must_close());
        assert!([400, 413, 431, 501, 505].contains(&e.status()), "{e:?}");
    }

    // Response heads, whole and in pieces.
    let method = if ctl & 16 == 0 { Method::Get } else { Method::Head };
    // The second element is where the rest of the stream starts (bytes consumed).
    let parse_res = |pieces: &[&[u8]]| {
        let mut p = ResponseParser::with_limits(limits.clone());
        let mut b = Evbuffer::new();
        let mut fed = 0;
        for piece in pieces {
            b.add(piece).unwrap();
            fed += piece.len();
            match p.parse(&mut b, &method) {
                Ok(Progress::Partial) => {}
                Ok(head) => return (Ok(head.complete()), fed - b.len()),
                Err(e) => return (Err(e), 0),
            }
        }
        (Ok(None), 0)
    };
    assert_eq!(parse_res(&pieces), parse_res(&[data]));

    // The chunked decoder straight on the bytes.
    let chunked = |pieces: &[&[u8]]| {
        let mut d = ChunkedDecoder::new(limits.clone());
        let mut input = Evbuffer::new();
        let mut out = Evbuffer::new();
        let mut fed = 0;
        for piece in pieces {
            input.add(piece).unwrap();
            fed += piece.len();
            match d.decode(&mut input, &mut out) {
                Ok(Progress::Partial) => {}
                Ok(t) => {
                    let body = out.pullup_all().unwrap().to_vec();
                    return (Ok(t.complete()), body, fed - input.len());
                }
                Err(e) => return (Err(e), out.pullup_all().unwrap().to_vec(), 0),
            }
        }
        (Ok(None), out.pullup_all().unwrap().to_vec(), 0)
    };
    let one_by_one: Vec<&[u8]> = data.chunks(1).collect();
    let (r, out, left) = chunked(&[data]);
    assert!(out.len() as u64 <= limits.max_body);
    assert_eq!(chunked(&one_by_one), (r, out, left));
});
