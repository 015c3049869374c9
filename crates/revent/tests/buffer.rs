//! Evbuffer without file descriptors: model-based property tests and edge cases. Runs under Miri
//! (`cargo +nightly miri test -p revent --test buffer`); fd I/O lives in `buffer_io.rs`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use revent::buffer::{BufferEnd, CallbackInfo, EolStyle, Evbuffer, PtrHow};

// ---- helpers ----

fn contents(buf: &Evbuffer) -> Vec<u8> {
    let mut v = Vec::new();
    for s in buf.peek(usize::MAX).unwrap() {
        v.extend_from_slice(s);
    }
    v
}

/// Adds each piece as its own referenced chunk, so chunk boundaries fall exactly between pieces.
fn chained(pieces: &[&[u8]]) -> Evbuffer {
    let mut b = Evbuffer::new();
    for p in pieces {
        b.add_reference(p.to_vec(), |_| {}).unwrap();
    }
    b
}

/// The simple reference for end-of-line search: (position, marker length).
fn ref_eol(data: &[u8], style: EolStyle) -> Option<(usize, usize)> {
    match style {
        EolStyle::Lf => data.iter().position(|&b| b == b'\n').map(|p| (p, 1)),
        EolStyle::Nul => data.iter().position(|&b| b == 0).map(|p| (p, 1)),
        EolStyle::Any => {
            let p = data.iter().position(|&b| b == b'\r' || b == b'\n')?;
            let run = data[p..]
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            Some((p, run))
        }
        EolStyle::Crlf => {
            let q = data.iter().position(|&b| b == b'\n')?;
            if q > 0 && data[q - 1] == b'\r' {
                Some((q - 1, 2))
            } else {
                Some((q, 1))
            }
        }
        EolStyle::CrlfStrict => data.windows(2).position(|w| w == b"\r\n").map(|p| (p, 2)),
    }
}

fn ref_search(data: &[u8], needle: &[u8], from: usize, to: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from);
    }
    (from..=to.saturating_sub(needle.len()))
        .find(|&i| i + needle.len() <= to && &data[i..i + needle.len()] == needle)
}

const STYLES: [EolStyle; 5] = [
    EolStyle::Any,
    EolStyle::Crlf,
    EolStyle::CrlfStrict,
    EolStyle::Lf,
    EolStyle::Nul,
];

// ---- model-based property test ----

#[derive(Debug, Clone)]
enum Op {
    Add(Vec<u8>),
    AddRef(Vec<u8>),
    Prepend(Vec<u8>),
    Drain(usize),
    Remove(usize),
    Copyout(usize),
    CopyoutFrom(usize, usize),
    Pullup(usize),
    PullupAll,
    PeekFrom(usize, usize),
    Reserve(usize, u8, usize),
    Expand(usize),
    Fmt(u32),
    Search(Vec<u8>, usize),
    SearchRange(Vec<u8>, usize, usize),
    SearchEol(usize, usize),
    Readln(usize),
    PtrWalk(usize, usize),
    OtherAdd(Vec<u8>),
    OtherAddRef(Vec<u8>),
    AddBuffer,
    PrependBuffer,
    RemoveBuffer(usize),
    Freeze(bool),
    Unfreeze(bool),
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    // A small alphabet so that searches and line ends actually hit.
    prop::collection::vec(
        prop_oneof![
            4 => Just(b'a'),
            2 => Just(b'b'),
            1 => Just(b'\r'),
            1 => Just(b'\n'),
            1 => Just(0u8),
            1 => any::<u8>(),
        ],
        0..max,
    )
}

fn big_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![4 => bytes(40), 1 => bytes(if cfg!(miri) { 300 } else { 2500 })]
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0usize..3000;
    prop_oneof![
        big_bytes().prop_map(Op::Add),
        bytes(40).prop_map(Op::AddRef),
        bytes(40).prop_map(Op::Prepend),
        n.clone().prop_map(Op::Drain),
        (0usize..200).prop_map(Op::Remove),
        (0usize..200).prop_map(Op::Copyout),
        (n.clone(), 0usize..200).prop_map(|(a, b)| Op::CopyoutFrom(a, b)),
        n.clone().prop_map(Op::Pullup),
        Just(Op::PullupAll),
        (n.clone(), 0usize..3000).prop_map(|(a, b)| Op::PeekFrom(a, b)),
        (0usize..3000, any::<u8>(), 0usize..3000).prop_map(|(a, b, c)| Op::Reserve(a, b, c)),
        (0usize..5000).prop_map(Op::Expand),
        any::<u32>().prop_map(Op::Fmt),
        (bytes(5), n.clone()).prop_map(|(a, b)| Op::Search(a, b)),
        (bytes(5), n.clone(), n.clone()).prop_map(|(a, b, c)| Op::SearchRange(a, b, c)),
        (n.clone(), 0usize..5).prop_map(|(a, b)| Op::SearchEol(a, b)),
        (0usize..5).prop_map(Op::Readln),
        (0usize..200, 1usize..50).prop_map(|(a, b)| Op::PtrWalk(a, b)),
        big_bytes().prop_map(Op::OtherAdd),
        bytes(40).prop_map(Op::OtherAddRef),
        Just(Op::AddBuffer),
        Just(Op::PrependBuffer),
        (0usize..3000).prop_map(Op::RemoveBuffer),
        any::<bool>().prop_map(Op::Freeze),
        any::<bool>().prop_map(Op::Unfreeze),
    ]
}

fn end_of(start: bool) -> BufferEnd {
    if start {
        BufferEnd::Start
    } else {
        BufferEnd::End
    }
}

struct Model {
    a: Vec<u8>,
    b: Vec<u8>,
    frozen_start: bool,
    frozen_end: bool,
}

fn run_ops(ops: &[Op]) {
    let mut a = Evbuffer::new();
    let mut b = Evbuffer::new();
    let mut m = Model {
        a: Vec::new(),
        b: Vec::new(),
        frozen_start: false,
        frozen_end: false,
    };
    let live_refs = Arc::new(AtomicUsize::new(0));
    let mut line = Vec::new();
    for op in ops {
        match op {
            Op::Add(d) => {
                let r = a.add(d);
                assert_eq!(r.is_err(), m.frozen_end);
                if !m.frozen_end {
                    m.a.extend_from_slice(d);
                }
            }
            Op::AddRef(d) => {
                live_refs.fetch_add(1, Ordering::SeqCst);
                let lr = live_refs.clone();
                let r = a.add_reference(d.clone(), move |_| {
                    lr.fetch_sub(1, Ordering::SeqCst);
                });
                assert_eq!(r.is_err(), m.frozen_end);
                if !m.frozen_end {
                    m.a.extend_from_slice(d);
                }
            }
            Op::Prepend(d) => {
                let r = a.prepend(d);
                assert_eq!(r.is_err(), m.frozen_start);
                if !m.frozen_start {
                    m.a.splice(0..0, d.iter().copied());
                }
            }
            Op::Drain(n) => {
                let r = a.drain(*n);
                if m.frozen_start {
                    assert!(r.is_err());
                } else {
                    let k = (*n).min(m.a.len());
                    assert_eq!(r.unwrap(), k);
                    m.a.drain(..k);
                }
            }
            Op::Remove(n) => {
                let mut out = vec![0u8; *n];
                let r = a.remove(&mut out);
                if m.frozen_start {
                    assert!(r.is_err());
                } else {
                    let k = (*n).min(m.a.len());
                    assert_eq!(r.unwrap(), k);
                    assert_eq!(&out[..k], &m.a[..k]);
                    m.a.drain(..k);
                }
            }
            Op::Copyout(n) => {
                let mut out = vec![0u8; *n];
                let k = a.copyout(&mut out).unwrap();
                assert_eq!(k, (*n).min(m.a.len()));
                assert_eq!(&out[..k], &m.a[..k]);
            }
            Op::CopyoutFrom(pos, n) => match a.ptr_at(*pos) {
                Err(_) => assert!(*pos > m.a.len()),
                Ok(p) => {
                    let mut out = vec![0u8; *n];
                    let k = a.copyout_from(&p, &mut out).unwrap();
                    assert_eq!(k, (*n).min(m.a.len() - pos));
                    assert_eq!(&out[..k], &m.a[*pos..*pos + k]);
                }
            },
            Op::Pullup(n) => match a.pullup(*n) {
                Err(_) => assert!(*n > m.a.len()),
                Ok(s) => {
                    assert_eq!(s, &m.a[..*n]);
                    assert!(a.contiguous_space() >= *n);
                }
            },
            Op::PullupAll => {
                assert_eq!(a.pullup_all().unwrap(), &m.a[..]);
                assert!(a.chunk_count() <= 1);
            }
            Op::PeekFrom(pos, n) => match a.ptr_at(*pos) {
                Err(_) => assert!(*pos > m.a.len()),
                Ok(p) => {
                    let got: Vec<u8> = a.peek_from(&p, *n).unwrap().flatten().copied().collect();
                    let k = (*n).min(m.a.len() - pos);
                    assert_eq!(got, &m.a[*pos..*pos + k]);
                }
            },
            Op::Reserve(n, fill, commit) => match a.reserve_space(*n) {
                Err(_) => assert!(m.frozen_end),
                Ok(space) => {
                    assert!(space.len() >= *n);
                    let room = space.len();
                    for x in space.iter_mut() {
                        *x = *fill;
                    }
                    let r = a.commit_space(*commit);
                    if *commit <= room {
                        r.unwrap();
                        m.a.extend(std::iter::repeat(*fill).take(*commit));
                        // A second commit has no reservation left.
                        assert!(a.commit_space(0).is_err());
                    } else {
                        assert!(r.is_err());
                    }
                }
            },
            Op::Expand(n) => a.expand(*n).unwrap(),
            Op::Fmt(x) => {
                let s = format!("<{x:x}>");
                let r = a.add_fmt(format_args!("<{x:x}>"));
                if m.frozen_end {
                    assert!(r.is_err());
                } else {
                    assert_eq!(r.unwrap(), s.len());
                    m.a.extend_from_slice(s.as_bytes());
                }
            }
            Op::Search(needle, start) => match a.ptr_at(*start) {
                Err(_) => assert!(*start > m.a.len()),
                Ok(p) => {
                    let got = a.search(needle, Some(&p)).unwrap().map(|p| p.position());
                    assert_eq!(got, ref_search(&m.a, needle, *start, m.a.len()));
                }
            },
            Op::SearchRange(needle, start, end) => match (a.ptr_at(*start), a.ptr_at(*end)) {
                (Ok(s), Ok(e)) => {
                    let got = a
                        .search_range(needle, Some(&s), Some(&e))
                        .unwrap()
                        .map(|p| p.position());
                    let want = if end < start {
                        None
                    } else {
                        ref_search(&m.a, needle, *start, *end)
                    };
                    assert_eq!(got, want);
                }
                _ => assert!(*start > m.a.len() || *end > m.a.len()),
            },
            Op::SearchEol(start, style) => match a.ptr_at(*start) {
                Err(_) => assert!(*start > m.a.len()),
                Ok(p) => {
                    let style = STYLES[*style];
                    let got = a
                        .search_eol(Some(&p), style)
                        .unwrap()
                        .map(|(p, n)| (p.position(), n));
                    let want = ref_eol(&m.a[*start..], style).map(|(p, n)| (p + start, n));
                    assert_eq!(got, want);
                }
            },
            Op::Readln(style) => {
                let style = STYLES[*style];
                let r = a.readln_into(style, &mut line);
                if m.frozen_start {
                    assert!(r.is_err());
                } else {
                    match ref_eol(&m.a, style) {
                        None => assert_eq!(r.unwrap(), None),
                        Some((p, n)) => {
                            assert_eq!(r.unwrap(), Some(p + n));
                            assert_eq!(line, &m.a[..p]);
                            m.a.drain(..p + n);
                        }
                    }
                }
            }
            Op::PtrWalk(start, step) => {
                if let Ok(mut p) = a.ptr_at(*start) {
                    // Step through the buffer; each position must agree with a fresh lookup.
                    loop {
                        let fresh = a.ptr_at(p.position()).unwrap();
                        let mut x = [0u8; 1];
                        let k1 = a.copyout_from(&p, &mut x).unwrap();
                        let mut y = [0u8; 1];
                        let k2 = a.copyout_from(&fresh, &mut y).unwrap();
                        assert_eq!((k1, x), (k2, y));
                        if a.ptr_set(&mut p, *step, PtrHow::Add).is_err() {
                            assert!(p.position() + step > m.a.len());
                            break;
                        }
                    }
                }
            }
            Op::OtherAdd(d) => {
                b.add(d).unwrap();
                m.b.extend_from_slice(d);
            }
            Op::OtherAddRef(d) => {
                live_refs.fetch_add(1, Ordering::SeqCst);
                let lr = live_refs.clone();
                b.add_reference(d.clone(), move |_| {
                    lr.fetch_sub(1, Ordering::SeqCst);
                })
                .unwrap();
                m.b.extend_from_slice(d);
            }
            Op::AddBuffer => {
                let r = a.add_buffer(&mut b);
                if m.frozen_end {
                    assert!(r.is_err());
                } else {
                    r.unwrap();
                    m.a.append(&mut m.b);
                }
            }
            Op::PrependBuffer => {
                let r = a.prepend_buffer(&mut b);
                if m.frozen_start {
                    assert!(r.is_err());
                } else {
                    r.unwrap();
                    let mut nb = std::mem::take(&mut m.b);
                    nb.extend_from_slice(&m.a);
                    m.a = nb;
                }
            }
            Op::RemoveBuffer(n) => {
                let r = a.remove_buffer(&mut b, *n);
                if m.frozen_start {
                    assert!(r.is_err());
                } else {
                    let k = (*n).min(m.a.len());
                    assert_eq!(r.unwrap(), k);
                    m.b.extend(m.a.drain(..k));
                }
            }
            Op::Freeze(s) => {
                a.freeze(end_of(*s));
                if *s {
                    m.frozen_start = true;
                } else {
                    m.frozen_end = true;
                }
            }
            Op::Unfreeze(s) => {
                a.unfreeze(end_of(*s));
                if *s {
                    m.frozen_start = false;
                } else {
                    m.frozen_end = false;
                }
            }
        }
        assert_eq!(a.len(), m.a.len(), "after {op:?}");
        assert_eq!(a.is_empty(), m.a.is_empty());
        assert_eq!(contents(&a), m.a, "after {op:?}");
        assert_eq!(b.len(), m.b.len());
        assert_eq!(contents(&b), m.b);
    }
    drop(a);
    drop(b);
    assert_eq!(live_refs.load(Ordering::SeqCst), 0, "every reference freed");
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 4 } else { cases },
        // Miri's isolation forbids the file the failure persistence writes.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn ops_agree_with_a_vec_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 25 } else { 80 })) {
        run_ops(&ops);
    }

    /// Random text fed in random pieces, lines read with random styles, against the reference.
    #[test]
    fn readln_matches_reference(
        pieces in prop::collection::vec(bytes(60), 1..if cfg!(miri) { 8 } else { 30 }),
        styles in prop::collection::vec(0usize..5, 1..30),
        use_refs in any::<bool>(),
    ) {
        let mut buf = Evbuffer::new();
        let mut model: Vec<u8> = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            if use_refs {
                buf.add_reference(piece.clone(), |_| {}).unwrap();
            } else {
                buf.add(piece).unwrap();
            }
            model.extend_from_slice(piece);
            // Read lines until none is complete, switching styles as we go.
            for j in 0.. {
                let style = STYLES[styles[(i + j) % styles.len()]];
                let got = buf.readln(style).unwrap();
                match ref_eol(&model, style) {
                    None => {
                        prop_assert_eq!(got, None);
                        break;
                    }
                    Some((p, n)) => {
                        prop_assert_eq!(got, Some((model[..p].to_vec(), p + n)));
                        model.drain(..p + n);
                    }
                }
            }
            prop_assert_eq!(contents(&buf), model.clone());
        }
    }
}

// ---- edge cases ----

#[test]
fn empty_buffer() {
    let mut b = Evbuffer::new();
    assert_eq!(b.len(), 0);
    assert!(b.is_empty());
    assert_eq!(b.drain(10).unwrap(), 0);
    assert_eq!(b.remove(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!(b.copyout(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!(b.pullup(0).unwrap(), b"");
    assert!(b.pullup(1).is_err());
    assert_eq!(b.pullup_all().unwrap(), b"");
    assert_eq!(b.contiguous_space(), 0);
    for s in STYLES {
        assert_eq!(b.readln(s).unwrap(), None);
        assert_eq!(b.search_eol(None, s).unwrap(), None);
    }
    assert_eq!(b.search(b"x", None).unwrap(), None);
    assert_eq!(b.search(b"", None).unwrap().map(|p| p.position()), Some(0));
    let end = b.ptr_at(0).unwrap();
    assert_eq!(b.copyout_from(&end, &mut [0u8; 4]).unwrap(), 0);
    assert!(b.ptr_at(1).is_err());
    assert_eq!(b.peek(10).unwrap().count(), 0);
    let mut other = Evbuffer::new();
    b.add_buffer(&mut other).unwrap();
    b.prepend_buffer(&mut other).unwrap();
    assert_eq!(b.remove_buffer(&mut other, 5).unwrap(), 0);
    assert!(b.is_empty() && other.is_empty());
}

#[test]
fn exact_chunk_boundaries() {
    let mut b = chained(&[b"abcd", b"efgh", b"ijkl"]);
    assert_eq!(b.chunk_count(), 3);
    assert_eq!(b.contiguous_space(), 4);
    // Needles that start at, end at and span boundaries.
    for (needle, at) in [
        (&b"efgh"[..], 4),
        (b"defg", 3),
        (b"dEf", usize::MAX),
        (b"hij", 7),
        (b"cdefghij", 2),
        (b"l", 11),
    ] {
        let got = b.search(needle, None).unwrap().map(|p| p.position());
        assert_eq!(
            got,
            if at == usize::MAX { None } else { Some(at) },
            "{needle:?}"
        );
    }
    // Range end exactly at a boundary: "efgh" ends at 8.
    let s = b.ptr_at(0).unwrap();
    let e = b.ptr_at(8).unwrap();
    assert_eq!(
        b.search_range(b"efgh", Some(&s), Some(&e))
            .unwrap()
            .map(|p| p.position()),
        Some(4)
    );
    let e = b.ptr_at(7).unwrap();
    assert_eq!(b.search_range(b"efgh", Some(&s), Some(&e)).unwrap(), None);
    // A pointer walked across the boundaries one byte at a time.
    let mut p = b.ptr_at(0).unwrap();
    let mut seen = Vec::new();
    loop {
        let mut x = [0u8];
        if b.copyout_from(&p, &mut x).unwrap() == 0 {
            break;
        }
        seen.push(x[0]);
        b.ptr_set(&mut p, 1, PtrHow::Add).unwrap();
    }
    assert_eq!(seen, b"abcdefghijkl");
    assert!(b.ptr_set(&mut p, 1, PtrHow::Add).is_err());
    assert_eq!(p.position(), 12, "a failed move leaves the position alone");
    // Draining exactly one chunk leaves the next intact.
    b.drain(4).unwrap();
    assert_eq!(b.chunk_count(), 2);
    assert_eq!(b.contiguous_space(), 4);
    assert_eq!(b.pullup(5).unwrap(), b"efghi");
    assert_eq!(contents(&b), b"efghijkl");
}

#[test]
fn owned_chunk_fills_exactly_then_grows() {
    let mut b = Evbuffer::new();
    b.add(&[1u8; 1]).unwrap();
    let cap = b.reserve_space(0).unwrap().len() + 1;
    b.add(&vec![2u8; cap - 1]).unwrap();
    assert_eq!(
        b.chunk_count(),
        1,
        "filling the chunk exactly needs no second one"
    );
    b.add(&[3]).unwrap();
    assert_eq!(b.chunk_count(), 2);
    assert_eq!(b.len(), cap + 1);
    assert_eq!(b.contiguous_space(), cap);
}

#[test]
fn lines_split_across_chunks() {
    let mut b = chained(&[b"hel", b"lo\r", b"\nwor", b"ld\n", b"tail"]);
    assert_eq!(
        b.readln(EolStyle::Crlf).unwrap(),
        Some((b"hello".to_vec(), 7))
    );
    assert_eq!(
        b.readln(EolStyle::Crlf).unwrap(),
        Some((b"world".to_vec(), 6))
    );
    assert_eq!(b.readln(EolStyle::Crlf).unwrap(), None);
    assert_eq!(contents(&b), b"tail");
}

#[test]
fn crlf_split_across_chunks() {
    // The "\r" arrives first; the "\n" later in another chunk.
    let mut b = Evbuffer::new();
    b.add(b"abc\r").unwrap();
    assert_eq!(b.readln(EolStyle::CrlfStrict).unwrap(), None);
    assert_eq!(b.readln(EolStyle::Crlf).unwrap(), None);
    assert_eq!(b.readln(EolStyle::Lf).unwrap(), None);
    b.add_reference(&b"\nxyz"[..], |_| {}).unwrap();
    assert_eq!(
        b.readln(EolStyle::CrlfStrict).unwrap(),
        Some((b"abc".to_vec(), 5))
    );
    assert_eq!(contents(&b), b"xyz");

    // The same with a lone "\r" in the middle: CRLF keeps it in the line.
    let mut b = chained(&[b"a\rb\r", b"\n"]);
    assert_eq!(
        b.readln(EolStyle::Crlf).unwrap(),
        Some((b"a\rb".to_vec(), 5))
    );

    // ANY splits a CRLF that arrives in two reads into a line and an empty line (libevent does too).
    let mut b = Evbuffer::new();
    b.add(b"abc\r").unwrap();
    assert_eq!(b.readln(EolStyle::Any).unwrap(), Some((b"abc".to_vec(), 4)));
    b.add(b"\n").unwrap();
    assert_eq!(b.readln(EolStyle::Any).unwrap(), Some((Vec::new(), 1)));
    // But a whole run is one end of line.
    b.add(b"x\r\n\r\n\ny").unwrap();
    assert_eq!(b.readln(EolStyle::Any).unwrap(), Some((b"x".to_vec(), 6)));

    // search_eol from a position just after a "\r" does not reach back for it.
    let b = chained(&[b"ab\r", b"\ncd"]);
    let p = b.ptr_at(3).unwrap();
    let (at, n) = b.search_eol(Some(&p), EolStyle::Crlf).unwrap().unwrap();
    assert_eq!((at.position(), n), (3, 1));
    let (at, n) = b.search_eol(None, EolStyle::Crlf).unwrap().unwrap();
    assert_eq!((at.position(), n), (2, 2));
}

#[test]
fn nul_lines() {
    let mut b = Evbuffer::new();
    b.add(b"one\0two\0three").unwrap();
    assert_eq!(b.readln(EolStyle::Nul).unwrap(), Some((b"one".to_vec(), 4)));
    assert_eq!(b.readln(EolStyle::Nul).unwrap(), Some((b"two".to_vec(), 4)));
    assert_eq!(b.readln(EolStyle::Nul).unwrap(), None);
}

#[test]
fn readln_resumes_scan_and_survives_style_change() {
    let mut b = Evbuffer::new();
    b.add(b"partial line without end").unwrap();
    assert_eq!(b.readln(EolStyle::Lf).unwrap(), None);
    b.add(b" and more").unwrap();
    assert_eq!(b.readln(EolStyle::Lf).unwrap(), None);
    // A prepend invalidates the remembered scan position: the new text has a line end.
    b.prepend(b"head\n").unwrap();
    assert_eq!(b.readln(EolStyle::Lf).unwrap(), Some((b"head".to_vec(), 5)));
    b.add(b"\r\n").unwrap();
    assert_eq!(
        b.readln(EolStyle::CrlfStrict).unwrap(),
        Some((b"partial line without end and more".to_vec(), 35))
    );
}

#[test]
fn references_are_freed_exactly_once() {
    let freed = Arc::new(Mutex::new(Vec::new()));
    let add = |b: &mut Evbuffer, tag: u8, len: usize| {
        let f = freed.clone();
        b.add_reference(vec![tag; len], move |_v: Vec<u8>| {
            f.lock().unwrap().push(tag)
        })
    };
    let mut a = Evbuffer::new();
    add(&mut a, 1, 10).unwrap();
    add(&mut a, 2, 10).unwrap();
    add(&mut a, 3, 10).unwrap();
    a.drain(5).unwrap();
    assert!(freed.lock().unwrap().is_empty());
    a.drain(5).unwrap();
    assert_eq!(*freed.lock().unwrap(), [1]);

    // Split reference 2 between two buffers: it is freed when the second one lets go.
    let mut b = Evbuffer::new();
    assert_eq!(a.remove_buffer(&mut b, 4).unwrap(), 4);
    drop(b);
    assert_eq!(*freed.lock().unwrap(), [1]);
    let mut out = [0u8; 6];
    a.remove(&mut out).unwrap();
    assert_eq!(out, [2; 6]);
    assert_eq!(*freed.lock().unwrap(), [1, 2]);

    // pullup copies out of a reference and lets it go.
    add(&mut a, 4, 3).unwrap();
    a.pullup_all().unwrap();
    assert_eq!(*freed.lock().unwrap(), [1, 2, 3, 4]);

    // Refused: the cleanup runs at once, still exactly once.
    a.freeze(BufferEnd::End);
    assert!(add(&mut a, 5, 3).is_err());
    assert_eq!(*freed.lock().unwrap(), [1, 2, 3, 4, 5]);
    a.unfreeze(BufferEnd::End);

    // An empty reference is released at once; the rest when the buffer drops.
    add(&mut a, 6, 0).unwrap();
    add(&mut a, 7, 2).unwrap();
    assert_eq!(*freed.lock().unwrap(), [1, 2, 3, 4, 5, 6]);
    drop(a);
    assert_eq!(*freed.lock().unwrap(), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn moved_chunks_keep_their_memory() {
    let mut a = Evbuffer::new();
    a.add(&[7u8; 3000]).unwrap();
    a.add_reference(vec![8u8; 100], |_| {}).unwrap();
    let ptrs: Vec<*const u8> = a.peek(usize::MAX).unwrap().map(|s| s.as_ptr()).collect();

    let mut b = Evbuffer::new();
    b.add(b"x").unwrap();
    b.drain(1).unwrap();
    b.add_buffer(&mut a).unwrap();
    assert!(a.is_empty());
    let moved: Vec<*const u8> = b.peek(usize::MAX).unwrap().map(|s| s.as_ptr()).collect();
    assert_eq!(moved, ptrs, "add_buffer moves chunks, not bytes");

    let mut c = Evbuffer::new();
    c.add(b"tail").unwrap();
    c.prepend_buffer(&mut b).unwrap();
    let moved: Vec<*const u8> = c.peek(usize::MAX).unwrap().map(|s| s.as_ptr()).collect();
    assert_eq!(
        &moved[..ptrs.len()],
        &ptrs[..],
        "prepend_buffer moves chunks"
    );

    // remove_buffer of exactly the first chunk moves it whole.
    let first = c.contiguous_space();
    let mut d = Evbuffer::new();
    assert_eq!(c.remove_buffer(&mut d, first).unwrap(), first);
    assert_eq!(
        d.peek(usize::MAX).unwrap().next().unwrap().as_ptr(),
        ptrs[0]
    );
    // Partial move of a reference shares it (same memory) rather than copying.
    let mut e = Evbuffer::new();
    let r_ptr = c.peek(1).unwrap().next().unwrap().as_ptr();
    c.remove_buffer(&mut e, 10).unwrap();
    assert_eq!(e.peek(1).unwrap().next().unwrap().as_ptr(), r_ptr);
    assert_eq!(contents(&e), [8u8; 10]);
}

#[test]
fn frozen_ends_refuse_changes() {
    let mut b = Evbuffer::new();
    let mut o = Evbuffer::new();
    o.add(b"other").unwrap();
    b.add(b"line\nmore").unwrap();

    b.freeze(BufferEnd::Start);
    assert!(b.is_frozen(BufferEnd::Start));
    assert!(b.drain(1).is_err());
    assert!(b.remove(&mut [0u8; 2]).is_err());
    assert!(b.readln(EolStyle::Lf).is_err());
    assert!(b.prepend(b"x").is_err());
    assert!(b.prepend_buffer(&mut o).is_err());
    assert!(b.remove_buffer(&mut o, 1).is_err());
    assert!(o.add_buffer(&mut b).is_err());
    // The other end still works, and reading without draining too.
    b.add(b"!").unwrap();
    assert_eq!(b.copyout(&mut [0u8; 4]).unwrap(), 4);
    b.unfreeze(BufferEnd::Start);

    b.freeze(BufferEnd::End);
    assert!(b.add(b"x").is_err());
    assert!(b.add_fmt(format_args!("{}", 1)).is_err());
    assert!(write!(b, "x").is_err());
    assert!(b.reserve_space(4).is_err());
    assert!(b.commit_space(0).is_err());
    assert!(b.add_buffer(&mut o).is_err());
    assert!(o.remove_buffer(&mut b, 1).is_err());
    assert_eq!(b.drain(1).unwrap(), 1);
    b.unfreeze(BufferEnd::End);
    b.add(b"x").unwrap();
    assert_eq!(contents(&b), b"ine\nmore!x");
    assert_eq!(contents(&o), b"other");
}

#[test]
fn bad_sizes_are_errors_not_panics() {
    let mut b = Evbuffer::new();
    b.add(b"abc").unwrap();
    assert!(b.expand(usize::MAX).is_err());
    assert!(b.expand(usize::MAX - 1).is_err());
    assert!(b.reserve_space(usize::MAX).is_err());
    assert!(b.pullup(4).is_err());
    assert!(b.pullup(usize::MAX).is_err());
    assert!(b.ptr_at(4).is_err());
    let mut p = b.ptr_at(1).unwrap();
    assert!(b.ptr_set(&mut p, usize::MAX, PtrHow::Add).is_err());
    assert!(b.ptr_set(&mut p, 4, PtrHow::Set).is_err());
    assert_eq!(p.position(), 1);
    // A position that was valid but is past the end after a drain.
    let end = b.ptr_at(3).unwrap();
    b.drain(2).unwrap();
    assert!(b.copyout_from(&end, &mut [0u8; 1]).is_err());
    assert!(b.search(b"a", Some(&end)).is_err());
    assert!(b.search_eol(Some(&end), EolStyle::Lf).is_err());
    assert!(b.peek_from(&end, 1).is_err());
    // A stale position still inside is re-resolved, not trusted.
    let mut c = chained(&[b"ab", b"cd"]);
    let p = c.ptr_at(3).unwrap();
    c.prepend(b"zz").unwrap();
    let mut x = [0u8; 1];
    c.copyout_from(&p, &mut x).unwrap();
    assert_eq!(&x, b"b");
    // A position from another buffer is only taken as an offset.
    let other = chained(&[b"q", b"rs"]);
    let q = other.ptr_at(2).unwrap();
    c.copyout_from(&q, &mut x).unwrap();
    assert_eq!(&x, b"a");
    // Commit without a reservation, and after a change cancelled it.
    assert!(c.commit_space(1).is_err());
    c.reserve_space(8).unwrap();
    c.add(b"1").unwrap();
    assert!(c.commit_space(1).is_err());
    let n = c.reserve_space(8).unwrap().len();
    assert!(c.commit_space(n + 1).is_err());
    // Bad callback ids.
    let id = c.add_cb(|_, _| {});
    c.remove_cb(id).unwrap();
    assert!(c.remove_cb(id).is_err());
    assert!(c.set_cb_enabled(id, false).is_err());
}

#[test]
fn reserve_commit_and_add_with() {
    let mut b = Evbuffer::new();
    b.add(b"ab").unwrap();
    let space = b.reserve_space(10).unwrap();
    assert!(space.len() >= 10);
    space[..3].copy_from_slice(b"cde");
    b.commit_space(3).unwrap();
    assert_eq!(contents(&b), b"abcde");
    assert_eq!(
        b.add_with(4, |s| {
            s[..2].copy_from_slice(b"fg");
            2
        })
        .unwrap(),
        2
    );
    assert_eq!(contents(&b), b"abcdefg");
    // A fill that claims more than it was given commits nothing.
    assert!(b.add_with(4, |s| s.len() + 1).is_err());
    assert_eq!(contents(&b), b"abcdefg");
    // expand then add needs no new chunk.
    b.expand(5000).unwrap();
    let data = vec![0u8; 5000];
    let info = allocation_counter::measure(|| b.add(&data).unwrap());
    assert_eq!(info.count_total, 0, "expand made the room in advance");
    assert_eq!(b.len(), 5007);
}

#[test]
fn formatted_appends() {
    let mut b = Evbuffer::new();
    write!(b, "{}+{}={}", 2, 2, 4).unwrap();
    assert_eq!(b.add_fmt(format_args!(" {:>4}", "x")).unwrap(), 5);
    assert_eq!(b.pullup_all().unwrap(), b"2+2=4    x");
    struct Failing;
    impl std::fmt::Display for Failing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("part")?;
            Err(std::fmt::Error)
        }
    }
    assert!(b.add_fmt(format_args!("{}", Failing)).is_err());
}

#[test]
fn io_traits() {
    use std::io::{Read, Write};
    let mut b = Evbuffer::new();
    b.write_all(b"hello world").unwrap();
    let mut s = String::new();
    b.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello world");
}

#[test]
fn callbacks_immediate_deferred_and_disabled() {
    let log: Arc<Mutex<Vec<CallbackInfo>>> = Arc::default();
    let l = log.clone();
    let mut b = Evbuffer::new();
    let id = b.add_cb(move |_, i| l.lock().unwrap().push(*i));
    b.add(b"12345").unwrap();
    b.drain(2).unwrap();
    b.drain(0).unwrap();
    let mut o = Evbuffer::new();
    o.add(b"xy").unwrap();
    b.add_buffer(&mut o).unwrap();
    b.remove_buffer(&mut o, 4).unwrap();
    let info = |orig_size, n_added, n_deleted| CallbackInfo {
        orig_size,
        n_added,
        n_deleted,
    };
    assert_eq!(
        *log.lock().unwrap(),
        [info(0, 5, 0), info(5, 0, 2), info(3, 2, 0), info(5, 0, 4)]
    );
    log.lock().unwrap().clear();

    b.set_deferred_callbacks(true);
    b.add(b"abc").unwrap();
    b.readln(EolStyle::Lf).unwrap();
    b.drain(2).unwrap();
    assert!(log.lock().unwrap().is_empty(), "deferred until run");
    b.run_deferred_callbacks();
    assert_eq!(*log.lock().unwrap(), [info(1, 3, 2)]);
    b.run_deferred_callbacks();
    assert_eq!(log.lock().unwrap().len(), 1, "nothing queued twice");

    b.set_deferred_callbacks(false);
    b.set_cb_enabled(id, false).unwrap();
    b.add(b"z").unwrap();
    assert_eq!(log.lock().unwrap().len(), 1);
    b.set_cb_enabled(id, true).unwrap();
    b.prepend(b"q").unwrap();
    assert_eq!(log.lock().unwrap().last(), Some(&info(3, 1, 0)));
    b.remove_cb(id).unwrap();
    b.add(b"w").unwrap();
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[test]
fn small_add_drain_does_not_allocate_once_warm() {
    let mut b = Evbuffer::new();
    let piece = [5u8; 64];
    // Warm up: keep a backlog that is not a multiple of the chunk size so chunks fill and empty.
    b.add(&[0u8; 3000]).unwrap();
    let rounds = if cfg!(miri) { 200 } else { 20_000 };
    for _ in 0..rounds {
        b.add(&piece).unwrap();
        b.drain(64).unwrap();
    }
    let info = allocation_counter::measure(|| {
        for _ in 0..rounds {
            b.add(&piece).unwrap();
            b.drain(64).unwrap();
        }
    });
    assert_eq!(info.count_total, 0, "steady add/drain allocated");
    // readln_into with a reused Vec does not allocate either.
    let mut line = Vec::with_capacity(128);
    b.drain(usize::MAX).unwrap();
    for _ in 0..50 {
        b.add(b"some text\r\n").unwrap();
        b.readln_into(EolStyle::Crlf, &mut line).unwrap();
    }
    let info = allocation_counter::measure(|| {
        for _ in 0..rounds / 10 {
            b.add(b"some text\r\n").unwrap();
            assert_eq!(b.readln_into(EolStyle::Crlf, &mut line).unwrap(), Some(11));
        }
    });
    assert_eq!(info.count_total, 0, "steady readln allocated");
}

#[test]
fn chunk_sizes_grow_with_use() {
    let mut b = Evbuffer::new();
    for _ in 0..64 {
        b.add(&[1u8; 1000]).unwrap();
    }
    // 64 KB in chunks that double from 1 KiB: far fewer than one chunk per add.
    assert!(b.chunk_count() <= 8, "{} chunks", b.chunk_count());
}

#[test]
fn pullup_uses_front_space_and_keeps_content() {
    let mut b = Evbuffer::new();
    b.add(&[1u8; 100]).unwrap();
    b.add_reference(vec![2u8; 50], |_| {}).unwrap();
    b.add(&[3u8; 10]).unwrap();
    let first = b.peek(1).unwrap().next().unwrap().as_ptr();
    let s = b.pullup(150).unwrap();
    assert_eq!(&s[..100], &[1u8; 100][..]);
    assert_eq!(&s[100..], &[2u8; 50][..]);
    assert_eq!(
        s.as_ptr(),
        first,
        "the owned front chunk had room: no new chunk"
    );
    assert_eq!(b.len(), 160);
    // After draining some of the front, pullup slides the data back rather than allocating.
    b.drain(140).unwrap();
    assert_eq!(b.pullup(20).unwrap(), [[2u8; 10], [3u8; 10]].concat());
}

#[test]
fn buffers_can_move_between_threads() {
    fn assert_send<T: Send>(_: &T) {}
    let mut b = Evbuffer::new();
    b.add_reference(vec![1u8, 2], |_| {}).unwrap();
    b.add_cb(|_, _| {});
    assert_send(&b);
    let b = std::thread::spawn(move || {
        b.drain(1).unwrap();
        b
    })
    .join()
    .unwrap();
    assert_eq!(contents(&b), [2]);
}

#[test]
fn resumed_scan_pairs_a_cr_before_the_resume_point() {
    // Found by the property test: the remembered scan position sits between "\r" and "\n".
    for style in [EolStyle::CrlfStrict, EolStyle::Crlf] {
        let mut b = Evbuffer::new();
        b.add(b"\r").unwrap();
        assert_eq!(b.readln(style).unwrap(), None);
        b.add(b"\n\r\n").unwrap();
        assert_eq!(b.readln(style).unwrap(), Some((Vec::new(), 2)));
        assert_eq!(b.readln(style).unwrap(), Some((Vec::new(), 2)));
    }
}

#[test]
fn a_shape_shifting_reference_cannot_cause_a_panic() {
    // An AsRef that breaks its contract: full bytes on the first call, nothing afterwards.
    struct Shifty(AtomicUsize, [u8; 10]);
    impl AsRef<[u8]> for Shifty {
        fn as_ref(&self) -> &[u8] {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                &self.1
            } else {
                &[]
            }
        }
    }
    let mut b = Evbuffer::new();
    b.add(b"ab").unwrap();
    b.add_reference(Shifty(AtomicUsize::new(0), *b"cd\nfghijkl"), |_| {})
        .unwrap();
    b.add(b"\nxyz").unwrap();
    assert_eq!(b.len(), 16);
    // Whatever comes back, nothing panics and the length bookkeeping stays consistent.
    let _ = b.search(b"xyz", None);
    let _ = b.search_eol(None, EolStyle::Any);
    let _ = b.peek(usize::MAX).map(|p| p.count());
    let _ = b.copyout(&mut [0u8; 16]);
    let _ = b.readln(EolStyle::Lf);
    let _ = b.pullup(b.len());
    let mut o = Evbuffer::new();
    let _ = b.remove_buffer(&mut o, 3);
    let _ = b.drain(usize::MAX);
    assert!(b.is_empty());
}
