//! revent's tagged-data decoder (`revent::tag`, libevent's `event2/tag.h`) on arbitrary bytes.
//!
//! The first byte picks how the rest is split into chunks (the decoder must read across chunk
//! boundaries) and which tag the `unmarshal_*` calls ask for. Every decoding function runs on a
//! fresh buffer of those bytes and is checked against a plain reference decoder written here on a
//! slice: the same result, the same number of bytes taken (never more than are present; nothing
//! for the peek functions and for the errors that take nothing), and a round trip of what decodes
//! (encoding the value back and decoding it gives it again). Then the whole stream is walked item by
//! item as a reader would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revent::buffer::Evbuffer;
use revent::tag::{self, TagError};

// ---- the reference decoder, on a slice ----

/// A tag: 7 bits a byte, least significant first, high bit = more; at most 32 bits.
fn ref_tag(b: &[u8]) -> Option<(u32, usize)> {
    let mut v: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        v |= u64::from(x & 0x7f) << (7 * i);
        if v > u64::from(u32::MAX) {
            return None;
        }
        if x & 0x80 == 0 {
            return Some((v as u32, i + 1));
        }
        if i == 4 {
            return None; // a sixth byte would be needed
        }
    }
    None
}

/// An integer: hex digits left to right are (count - 1), then count digits least significant
/// first; the run is padded to whole bytes.
fn ref_int(b: &[u8], max_digits: usize) -> Option<(u64, usize)> {
    let digit = |i: usize| -> Option<u8> {
        let byte = *b.get(i / 2)?;
        Some(if i % 2 == 0 { byte >> 4 } else { byte & 0xf })
    };
    let count = usize::from(digit(0)?) + 1;
    if count > max_digits {
        return None;
    }
    let mut v = 0u64;
    for k in 0..count {
        v |= u64::from(digit(1 + k)?) << (4 * k);
    }
    let used = (1 + count + 1) / 2;
    Some((v, used))
}

fn buffer(data: &[u8], piece: usize) -> Evbuffer {
    let mut b = Evbuffer::new();
    for c in data.chunks(piece.max(1)) {
        // Separate references keep the chunks apart (an add may merge into the last chunk).
        b.add_reference(c.to_vec(), |_| {}).unwrap();
    }
    assert_eq!(b.len(), data.len());
    b
}

fn contents(b: &mut Evbuffer) -> Vec<u8> {
    b.pullup_all().unwrap().to_vec()
}

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let piece = usize::from(ctl & 0x0f) + 1;
    let wrong_tag = ctl & 0x10 != 0;
    let fresh = || buffer(data, piece);
    let n = data.len();

    // The reference view of the first item.
    let rtag = ref_tag(data);
    let rlen = rtag.and_then(|(_, tl)| ref_int(&data[tl..], 8).map(|(l, ll)| (l as u32, ll)));

    // peek, payload_length, peek_length: nothing taken.
    let b = fresh();
    assert_eq!(tag::peek(&b).ok(), rtag);
    assert_eq!(tag::payload_length(&b).ok(), rlen.map(|(l, _)| l));
    let whole = rtag
        .zip(rlen)
        .map(|((_, tl), (l, ll))| tl + ll + l as usize);
    assert_eq!(tag::peek_length(&b).ok(), whole);
    assert_eq!(b.len(), n);

    // decode_tag, decode_int, decode_int64: take exactly the encoding, or nothing.
    let mut b = fresh();
    match tag::decode_tag(&mut b) {
        Ok((t, used)) => {
            assert_eq!(Some((t, used)), rtag);
            assert_eq!(b.len(), n - used);
            assert!(tag::encoded_tag_len(t) <= used);
            let mut e = Evbuffer::new();
            tag::encode_tag(&mut e, t).unwrap();
            assert_eq!(tag::decode_tag(&mut e), Ok((t, tag::encoded_tag_len(t))));
        }
        Err(_) => {
            assert_eq!(rtag, None);
            assert_eq!(b.len(), n);
        }
    }
    for max in [8usize, 16] {
        let mut b = fresh();
        let r = if max == 8 {
            tag::decode_int(&mut b).map(u64::from)
        } else {
            tag::decode_int64(&mut b)
        };
        let want = ref_int(data, max);
        match r {
            Ok(v) => {
                let (rv, used) = want.unwrap();
                assert_eq!(v, rv);
                assert_eq!(b.len(), n - used);
                let mut e = Evbuffer::new();
                tag::encode_int64(&mut e, v).unwrap();
                assert!(e.len() <= used);
                assert_eq!(tag::decode_int64(&mut e), Ok(v));
                assert!(e.is_empty());
            }
            Err(err) => {
                assert_eq!(want, None);
                assert_eq!(b.len(), n);
                assert!(matches!(err, TagError::Truncated | TagError::IntOverflow));
            }
        }
    }

    // The header: tag and length taken; the payload must be present.
    let header_ok = match (rtag, rlen) {
        (Some((_, tl)), Some((l, ll))) => l <= tag::MAX_PAYLOAD_LEN && n - tl - ll >= l as usize,
        _ => false,
    };
    let mut b = fresh();
    match tag::unmarshal_header(&mut b) {
        Ok((t, l)) => {
            assert!(header_ok);
            let ((rt, tl), (rl, ll)) = (rtag.unwrap(), rlen.unwrap());
            assert_eq!((t, l), (rt, rl));
            assert_eq!(b.len(), n - tl - ll);
        }
        Err(_) => {
            assert!(!header_ok);
            // Takes nothing, the tag, or the tag and the length.
            let taken = n - b.len();
            let tl = rtag.map_or(0, |(_, tl)| tl);
            let ll = rlen.map_or(0, |(_, ll)| ll);
            assert!(taken == 0 || taken == tl || taken == tl + ll, "{taken}");
        }
    }

    // consume and unmarshal: the whole item, or what the header took.
    let mut b = fresh();
    let r = tag::consume(&mut b);
    assert_eq!(r.is_ok(), header_ok);
    if r.is_ok() {
        assert_eq!(b.len(), n - whole.unwrap());
    }
    let mut b = fresh();
    let mut dst = Evbuffer::new();
    dst.add(b"prefix").unwrap();
    match tag::unmarshal(&mut b, &mut dst) {
        Ok((t, l)) => {
            let ((rt, tl), (_, ll)) = (rtag.unwrap(), rlen.unwrap());
            assert_eq!(t, rt);
            let payload = &data[tl + ll..tl + ll + l];
            let got = contents(&mut dst);
            assert_eq!(&got[..6], b"prefix");
            assert_eq!(&got[6..], payload);
            assert_eq!(b.len(), n - tl - ll - l);
            // Round trip: marshalled again, the item reads back the same.
            let mut e = Evbuffer::new();
            tag::marshal(&mut e, t, payload).unwrap();
            let mut d2 = Evbuffer::new();
            assert_eq!(tag::unmarshal(&mut e, &mut d2), Ok((t, l)));
            assert_eq!(contents(&mut d2), payload);
        }
        Err(_) => {
            assert!(!header_ok);
            assert_eq!(contents(&mut dst), b"prefix");
        }
    }

    let need = match rtag {
        Some((t, _)) if !wrong_tag => t,
        Some((t, _)) => t.wrapping_add(1),
        None => 0,
    };
    let payload = if header_ok {
        let ((_, tl), (l, ll)) = (rtag.unwrap(), rlen.unwrap());
        Some(&data[tl + ll..tl + ll + l as usize])
    } else {
        None
    };
    let tag_matches = rtag.map_or(false, |(t, _)| t == need);

    // unmarshal_int / int64: an integer within the payload.
    for max in [8usize, 16] {
        let mut b = fresh();
        let r = if max == 8 {
            tag::unmarshal_int_with_len(&mut b, need).map(|(v, k)| (u64::from(v), k))
        } else {
            tag::unmarshal_int64_with_len(&mut b, need)
        };
        // unmarshal_int does not limit the length to INT_MAX; with these sizes it never matters.
        let want = payload
            .filter(|_| tag_matches)
            .and_then(|p| ref_int(p, max));
        assert_eq!(r.ok(), want);
        if let Ok((v, _)) = r {
            assert_eq!(b.len(), n - whole.unwrap());
            let mut e = Evbuffer::new();
            tag::marshal_int64(&mut e, need, v).unwrap();
            assert_eq!(tag::unmarshal_int64(&mut e, need), Ok(v));
            if max == 8 {
                let mut e = Evbuffer::new();
                tag::marshal_int(&mut e, need, v as u32).unwrap();
                assert_eq!(tag::unmarshal_int(&mut e, need), Ok(v as u32));
            }
        }
        assert!(b.len() <= n);
    }

    // unmarshal_timeval: two integers within the payload.
    let mut b = fresh();
    let want = payload.filter(|_| tag_matches).and_then(|p| {
        let (s, k) = ref_int(p, 8)?;
        let (u, _) = ref_int(&p[k..], 8)?;
        Some((s as u32, u as u32))
    });
    let r = tag::unmarshal_timeval(&mut b, need);
    assert_eq!(r.ok(), want);
    if let Ok((s, u)) = r {
        assert_eq!(b.len(), n - whole.unwrap());
        let mut e = Evbuffer::new();
        tag::marshal_timeval(&mut e, need, s, u).unwrap();
        assert_eq!(tag::unmarshal_timeval(&mut e, need), Ok((s, u)));
    }

    // unmarshal_string and unmarshal_fixed: the payload's bytes.
    let mut b = fresh();
    let r = tag::unmarshal_string(&mut b, need);
    assert_eq!(r.as_deref().ok(), payload.filter(|_| tag_matches));
    if let Some(p) = payload {
        for want_len in [p.len(), p.len() + 1] {
            let mut b = fresh();
            let mut out = vec![0u8; want_len];
            let r = tag::unmarshal_fixed(&mut b, need, &mut out);
            assert_eq!(r.is_ok(), tag_matches && want_len == p.len());
            if r.is_ok() {
                assert_eq!(out, p);
                assert_eq!(b.len(), n - whole.unwrap());
            }
        }
    }

    // A reader's walk over the stream: each item consumed or failed, never more taken than present.
    let mut b = fresh();
    let mut offset = 0usize;
    while !b.is_empty() {
        let before = b.len();
        let next = tag::peek_length(&b);
        match tag::consume(&mut b) {
            Ok(()) => {
                let used = before - b.len();
                assert_eq!(next, Ok(used));
                offset += used;
            }
            Err(_) => break,
        }
        assert!(offset <= n);
    }
});
