//! Properties of the client over generated responses from a scripted server: a valid response
//! written in any pieces (with pauses, so that the client sees them apart) arrives exactly, body
//! and trailers, whatever its framing; several on one kept-alive connection arrive in order; and
//! arbitrary bytes from the server end each request with exactly one outcome, never a panic and
//! never a response that claims more than was sent.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use revent::EventBase;
use revent_http::client::{ClientError, Connection, Outcome, Request};
use revent_http::Method;

const GUARD: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
enum Framing {
    Length,
    Chunked(Vec<usize>),
    Close,
}

/// The response bytes for `body` with `framing`.
fn encode(body: &[u8], framing: &Framing) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nX-Test: yes\r\n".to_vec();
    match framing {
        Framing::Length => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
        Framing::Chunked(sizes) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let mut rest = body;
            let mut sizes = sizes.iter().cycle();
            while !rest.is_empty() {
                let n = (*sizes.next().unwrap()).clamp(1, rest.len());
                out.extend_from_slice(format!("{n:x};e=1\r\n").as_bytes());
                out.extend_from_slice(&rest[..n]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
        }
        Framing::Close => {
            out.extend_from_slice(b"Connection: close\r\n\r\n");
            out.extend_from_slice(body);
        }
    }
    out
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Length),
        prop::collection::vec(1usize..300, 1..5).prop_map(Framing::Chunked),
        Just(Framing::Close),
    ]
}

fn read_head(s: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => got.push(b[0]),
            _ => return false,
        }
    }
    true
}

/// Serves one connection: for each answer, reads a request and writes the answer in pieces cut at
/// `cuts` (positions modulo its length), pausing between pieces; closes after the last.
fn serve(answers: Vec<Vec<u8>>, cuts: Vec<usize>) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(GUARD)).unwrap();
        s.set_nodelay(true).unwrap();
        for answer in answers {
            if !read_head(&mut s) {
                return;
            }
            let mut points: Vec<usize> = cuts
                .iter()
                .map(|c| c % (answer.len() + 1))
                .chain([0, answer.len()])
                .collect();
            points.sort_unstable();
            points.dedup();
            for w in points.windows(2) {
                if s.write_all(&answer[w[0]..w[1]]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    });
    (addr, h)
}

fn run(addr: SocketAddr, n: usize) -> Vec<Outcome> {
    let mut base = EventBase::new().unwrap();
    let conn = Connection::new(&mut base, addr).unwrap();
    conn.set_timeout(&mut base, GUARD).unwrap();
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    for i in 0..n {
        let o = outcomes.clone();
        conn.request(
            &mut base,
            Request::new(Method::Get, &format!("/{i}")).unwrap(),
            move |_, r| o.borrow_mut().push(r),
        )
        .unwrap();
    }
    let deadline = Instant::now() + GUARD;
    while outcomes.borrow().len() < n && Instant::now() < deadline {
        base.run(revent::LoopFlags::ONCE).unwrap();
    }
    conn.free(&mut base).unwrap();
    let out = outcomes.take();
    assert_eq!(out.len(), n, "every request ends with exactly one outcome");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn valid_responses_arrive_exactly_in_any_pieces(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 1..4),
        framings in prop::collection::vec(framing(), 4),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        // Only the last response may be close-delimited: it ends the connection.
        let n = bodies.len();
        let framings: Vec<Framing> = framings
            .into_iter()
            .take(n)
            .enumerate()
            .map(|(i, f)| match f {
                Framing::Close if i + 1 < n => Framing::Length,
                f => f,
            })
            .collect();
        let answers: Vec<Vec<u8>> = bodies
            .iter()
            .zip(&framings)
            .map(|(b, f)| encode(b, f))
            .collect();
        let (addr, server) = serve(answers, cuts);
        let out = run(addr, n);
        for ((r, body), f) in out.into_iter().zip(&bodies).zip(&framings) {
            let mut resp = r.unwrap();
            prop_assert_eq!(resp.headers().find_str("x-test"), Some("yes"));
            prop_assert_eq!(resp.body_mut().pullup_all().unwrap(), body.as_slice());
            if let Framing::Chunked(_) = f {
                prop_assert_eq!(resp.trailers().find_str("x-trailer"), Some("t"));
            }
        }
        server.join().unwrap();
    }

    #[test]
    fn arbitrary_bytes_end_in_one_outcome(
        prefix in prop::sample::select(vec![
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        ]),
        noise in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut answer = prefix.to_vec();
        answer.extend_from_slice(&noise);
        let sent = answer.len();
        let (addr, server) = serve(vec![answer], cuts);
        match run(addr, 1).pop().unwrap() {
            Ok(resp) => prop_assert!(resp.body().len() <= sent),
            Err(ClientError::Closed { partial: Some(p), .. }) => {
                prop_assert!(p.body().len() <= sent)
            }
            Err(ClientError::Closed { .. } | ClientError::Invalid(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
        server.join().unwrap();
    }
}
