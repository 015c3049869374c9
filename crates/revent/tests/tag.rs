//! Tagged data (`revent::tag`, libevent's `event2/tag.h`): libevent's exact bytes, round trips,
//! what each function takes from the buffer, and truncated, lying and hostile input.
//!
//! The expected bytes were produced by Debian's libevent 2.1.12 (crates/revent-capi/tests/c/tag.c
//! checks the same values against it and against revent's C library).

use proptest::prelude::*;
use revent::buffer::{BufferEnd, Evbuffer};
use revent::tag::{self, TagError, MAX_PAYLOAD_LEN};

fn buf(bytes: &[u8]) -> Evbuffer {
    let mut b = Evbuffer::new();
    b.add(bytes).unwrap();
    b
}

/// A buffer holding `bytes` in pieces of `piece` bytes, each its own chunk.
fn chunked(bytes: &[u8], piece: usize) -> Evbuffer {
    let mut b = Evbuffer::new();
    for c in bytes.chunks(piece) {
        b.add_reference(c.to_vec(), |_| {}).unwrap();
    }
    assert!(bytes.len() <= piece || b.chunk_count() > 1);
    b
}

fn all(b: &mut Evbuffer) -> Vec<u8> {
    b.pullup_all().unwrap().to_vec()
}

fn int_bytes(v: u64) -> Vec<u8> {
    let mut b = Evbuffer::new();
    tag::encode_int64(&mut b, v).unwrap();
    all(&mut b)
}

fn tag_bytes(t: u32) -> Vec<u8> {
    let mut b = Evbuffer::new();
    let n = tag::encode_tag(&mut b, t).unwrap();
    let v = all(&mut b);
    assert_eq!(n, v.len());
    assert_eq!(n, tag::encoded_tag_len(t));
    v
}

// ---- libevent's bytes ----

#[test]
fn integers_as_libevent_writes_them() {
    let golden: &[(u64, &[u8])] = &[
        (0, &[0x00]),
        (1, &[0x01]),
        (0xf, &[0x0f]),
        (0x10, &[0x10, 0x10]),
        (0x12, &[0x12, 0x10]),
        (0x123, &[0x23, 0x21]),
        (0x1234, &[0x34, 0x32, 0x10]),
        (0xffff_ffff, &[0x7f, 0xff, 0xff, 0xff, 0xf0]),
        (1 << 32, &[0x80, 0x00, 0x00, 0x00, 0x01]),
        (
            u64::MAX,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0],
        ),
    ];
    for &(v, bytes) in golden {
        assert_eq!(int_bytes(v), bytes, "{v:#x}");
        if let Ok(v32) = u32::try_from(v) {
            let mut b = Evbuffer::new();
            tag::encode_int(&mut b, v32).unwrap();
            assert_eq!(all(&mut b), bytes);
            assert_eq!(tag::decode_int(&mut buf(bytes)), Ok(v32));
        } else {
            // Too long for a u32.
            assert_eq!(tag::decode_int(&mut buf(bytes)), Err(TagError::IntOverflow));
        }
        assert_eq!(tag::decode_int64(&mut buf(bytes)), Ok(v));
    }
}

#[test]
fn tags_as_libevent_writes_them() {
    let golden: &[(u32, &[u8])] = &[
        (0, &[0x00]),
        (0x66, &[0x66]),
        (0x7f, &[0x7f]),
        (0x80, &[0x80, 0x01]),
        (0x166, &[0xe6, 0x02]),
        (0x3fff, &[0xff, 0x7f]),
        (0x4000, &[0x80, 0x80, 0x01]),
        (u32::MAX, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for &(t, bytes) in golden {
        assert_eq!(tag_bytes(t), bytes, "{t:#x}");
        assert_eq!(tag::decode_tag(&mut buf(bytes)), Ok((t, bytes.len())));
    }
}

#[test]
fn items_as_libevent_writes_them() {
    let mut b = Evbuffer::new();
    tag::marshal_int(&mut b, 1, 0x1234).unwrap();
    assert_eq!(all(&mut b), [0x01, 0x03, 0x34, 0x32, 0x10]);
    let mut b = Evbuffer::new();
    tag::marshal_int64(&mut b, 1, 1 << 32).unwrap();
    assert_eq!(all(&mut b), [0x01, 0x05, 0x80, 0, 0, 0, 0x01]);
    let mut b = Evbuffer::new();
    tag::marshal_timeval(&mut b, 4, 1, 0x20).unwrap();
    assert_eq!(all(&mut b), [0x04, 0x03, 0x01, 0x10, 0x20]);
    let mut b = Evbuffer::new();
    tag::marshal_string(&mut b, 0x80, "hi").unwrap();
    assert_eq!(all(&mut b), [0x80, 0x01, 0x02, b'h', b'i']);
    // A payload of 300 bytes: the length takes three bytes.
    let mut b = Evbuffer::new();
    tag::marshal(&mut b, 2, &[7u8; 300]).unwrap();
    let v = all(&mut b);
    assert_eq!(&v[..3], [0x02, 0x2c, 0x21]);
    assert_eq!(v.len(), 303);
}

// ---- round trips ----

proptest! {
    #[test]
    fn integers_round_trip(v in any::<u64>(), extra in proptest::collection::vec(any::<u8>(), 0..4)) {
        let mut b = Evbuffer::new();
        tag::encode_int64(&mut b, v).unwrap();
        let len = b.len();
        b.add(&extra).unwrap();
        prop_assert_eq!(tag::decode_int64(&mut b), Ok(v));
        prop_assert_eq!(b.len(), extra.len());
        // The shortest encoding: the count nibble plus one nibble per significant digit.
        let digits = (64 - v.leading_zeros() as usize).div_ceil(4);
        prop_assert_eq!(len, (digits.max(1) + 2) / 2);
        let v32 = v as u32;
        let mut b = Evbuffer::new();
        tag::encode_int(&mut b, v32).unwrap();
        prop_assert_eq!(tag::decode_int(&mut b), Ok(v32));
    }

    #[test]
    fn items_round_trip(
        t in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..600),
        v in any::<u64>(),
        sec in any::<u32>(),
        usec in any::<u32>(),
        piece in 1usize..8,
    ) {
        // Write a stream, then read it back from a buffer cut into small chunks.
        let mut w = Evbuffer::new();
        tag::marshal(&mut w, t, &payload).unwrap();
        tag::marshal_int(&mut w, t ^ 1, v as u32).unwrap();
        tag::marshal_int64(&mut w, t ^ 2, v).unwrap();
        tag::marshal_timeval(&mut w, t ^ 3, sec, usec).unwrap();
        tag::marshal_string(&mut w, t, &payload).unwrap();
        tag::marshal(&mut w, t, &payload).unwrap();
        let mut data = Evbuffer::new();
        data.add(&payload).unwrap();
        tag::marshal_buffer(&mut w, t, &mut data).unwrap();
        prop_assert!(data.is_empty());
        let bytes = all(&mut w);
        let mut r = chunked(&bytes, piece);

        prop_assert_eq!(tag::peek(&r).map(|(t, _)| t), Ok(t));
        prop_assert_eq!(tag::payload_length(&r), Ok(payload.len() as u32));
        let first = tag::peek_length(&r).unwrap();
        prop_assert_eq!(first, tag::encoded_tag_len(t) + int_bytes(payload.len() as u64).len() + payload.len());
        let mut dst = Evbuffer::new();
        prop_assert_eq!(tag::unmarshal(&mut r, &mut dst), Ok((t, payload.len())));
        prop_assert_eq!(all(&mut dst), payload.clone());
        prop_assert_eq!(r.len(), bytes.len() - first);
        prop_assert_eq!(tag::unmarshal_int(&mut r, t ^ 1), Ok(v as u32));
        prop_assert_eq!(tag::unmarshal_int64(&mut r, t ^ 2), Ok(v));
        prop_assert_eq!(tag::unmarshal_timeval(&mut r, t ^ 3), Ok((sec, usec)));
        prop_assert_eq!(tag::unmarshal_string(&mut r, t), Ok(payload.clone()));
        let mut fixed = vec![0u8; payload.len()];
        prop_assert_eq!(tag::unmarshal_fixed(&mut r, t, &mut fixed), Ok(()));
        prop_assert_eq!(&fixed, &payload);
        prop_assert_eq!(tag::unmarshal_header(&mut r), Ok((t, payload.len() as u32)));
        prop_assert_eq!(all(&mut r), payload);
    }

    /// Any prefix of a valid stream: every decoder fails or succeeds without taking more than is
    /// there, and a failed header never takes payload bytes.
    #[test]
    fn truncated_streams(t in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..40), cut in 0usize..60, piece in 1usize..6) {
        let mut w = Evbuffer::new();
        tag::marshal(&mut w, t, &payload).unwrap();
        tag::marshal_timeval(&mut w, t, 5, 6).unwrap();
        let bytes = all(&mut w);
        let cut = cut.min(bytes.len());
        let prefix = &bytes[..cut];
        let first = tag::peek_length(&buf(&bytes)).unwrap();
        let mut r = chunked(prefix, piece);
        let res = tag::consume(&mut r);
        if cut >= first {
            prop_assert_eq!(res, Ok(()));
            prop_assert_eq!(r.len(), cut - first);
        } else {
            prop_assert!(res.is_err());
            let header = first - payload.len();
            prop_assert!(cut - r.len() <= header.min(cut));
        }
        let mut r = chunked(prefix, piece);
        let mut d = Evbuffer::new();
        let res = tag::unmarshal(&mut r, &mut d);
        prop_assert_eq!(res.is_ok(), cut >= first);
        prop_assert!(d.len() <= payload.len());
    }
}

// ---- what is taken, and when ----

#[test]
fn peeks_take_nothing() {
    let mut b = Evbuffer::new();
    tag::marshal(&mut b, 300, b"abcdef").unwrap();
    let n = b.len();
    assert_eq!(tag::peek(&b), Ok((300, 2)));
    assert_eq!(tag::payload_length(&b), Ok(6));
    assert_eq!(tag::peek_length(&b), Ok(9));
    assert_eq!(b.len(), n);
    // The payload need not be there for the peeks: a reader learns how much to wait for.
    let mut b = buf(&[0x01, 0x2c, 0x21]);
    assert_eq!(tag::payload_length(&b), Ok(300));
    assert_eq!(tag::peek_length(&b), Ok(303));
    assert_eq!(tag::unmarshal_header(&mut b), Err(TagError::Truncated));
    // The tag and the length went, as in libevent.
    assert!(b.is_empty());
}

#[test]
fn errors_take_what_libevent_takes() {
    // Wrong tag for an integer: the tag goes, the length and payload stay.
    let mut b = Evbuffer::new();
    tag::marshal_int(&mut b, 1, 77).unwrap();
    assert_eq!(
        tag::unmarshal_int(&mut b, 2),
        Err(TagError::WrongTag {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(all(&mut b), [0x02, 0x1d, 0x40]);

    // Wrong tag for a string or fixed: the header goes, the payload stays.
    let mut b = Evbuffer::new();
    tag::marshal_string(&mut b, 1, "abc").unwrap();
    assert!(matches!(
        tag::unmarshal_string(&mut b, 2),
        Err(TagError::WrongTag { .. })
    ));
    assert_eq!(all(&mut b), b"abc");
    let mut b = Evbuffer::new();
    tag::marshal(&mut b, 1, b"abc").unwrap();
    let mut out = [0u8; 4];
    assert_eq!(
        tag::unmarshal_fixed(&mut b, 1, &mut out),
        Err(TagError::WrongLength {
            expected: 4,
            found: 3
        })
    );
    assert_eq!(all(&mut b), b"abc");

    // Wrong tag for a timeval: the whole item goes.
    let mut b = Evbuffer::new();
    tag::marshal_timeval(&mut b, 1, 2, 3).unwrap();
    tag::marshal_int(&mut b, 9, 9).unwrap();
    assert!(matches!(
        tag::unmarshal_timeval(&mut b, 2),
        Err(TagError::WrongTag { .. })
    ));
    assert_eq!(tag::unmarshal_int(&mut b, 9), Ok(9));

    // A malformed tag: nothing goes.
    let mut b = buf(&[0x80, 0x80]);
    assert_eq!(tag::unmarshal_header(&mut b), Err(TagError::Truncated));
    assert_eq!(tag::decode_tag(&mut b), Err(TagError::Truncated));
    assert_eq!(b.len(), 2);
    // A malformed length: the tag goes.
    let mut b = buf(&[0x05, 0x30, 0x11]); // a 4-nibble length needs 3 bytes
    assert_eq!(tag::consume(&mut b), Err(TagError::Truncated));
    assert_eq!(all(&mut b), [0x30, 0x11]);
    // decode_int on a bad integer: nothing goes.
    assert_eq!(tag::decode_int(&mut b), Err(TagError::Truncated));
    assert_eq!(b.len(), 2);
}

#[test]
fn frozen_buffers_are_refused_whole() {
    let mut b = Evbuffer::new();
    tag::marshal_int(&mut b, 1, 5).unwrap();
    b.freeze(BufferEnd::Start);
    assert_eq!(tag::unmarshal_int(&mut b, 1), Err(TagError::Frozen));
    assert_eq!(tag::consume(&mut b), Err(TagError::Frozen));
    assert_eq!(tag::decode_tag(&mut b), Err(TagError::Frozen));
    // Peeking still works.
    assert_eq!(tag::peek(&b), Ok((1, 1)));
    b.unfreeze(BufferEnd::Start);
    let mut dst = Evbuffer::new();
    dst.freeze(BufferEnd::End);
    assert_eq!(tag::unmarshal(&mut b, &mut dst), Err(TagError::Frozen));
    assert_eq!(b.len(), 3);
    assert_eq!(tag::unmarshal_int(&mut b, 1), Ok(5));
    // Encoding into a frozen end fails and leaves the buffer alone.
    let mut w = Evbuffer::new();
    w.freeze(BufferEnd::End);
    assert!(tag::marshal(&mut w, 1, b"x").is_err());
    let mut data = buf(b"payload");
    assert!(tag::marshal_buffer(&mut w, 1, &mut data).is_err());
    assert_eq!(all(&mut data), b"payload");
}

// ---- hostile input ----

/// libevent 2.1.12 reads one byte past what it pulled up when a fifth tag byte has its
/// continuation bit set. Here that tag is refused, whatever follows and wherever the chunks end.
#[test]
fn a_tag_longer_than_32_bits_is_refused() {
    for fifth in [0x10u8, 0x7f, 0x80, 0x8f, 0xff] {
        let bytes = [0xff, 0xff, 0xff, 0xff, fifth, 0x00, 0x01, 0x00];
        for piece in 1..=bytes.len() {
            let mut b = chunked(&bytes, piece);
            assert_eq!(tag::peek(&b), Err(TagError::TagOverflow));
            assert_eq!(tag::decode_tag(&mut b), Err(TagError::TagOverflow));
            assert_eq!(tag::unmarshal_header(&mut b), Err(TagError::TagOverflow));
            assert_eq!(tag::unmarshal_int(&mut b, 0), Err(TagError::TagOverflow));
            assert_eq!(b.len(), bytes.len());
        }
        // The same five bytes alone: still refused (the buffer ends inside the tag).
        let b = buf(&bytes[..5]);
        assert!(tag::peek(&b).is_err());
    }
}

/// libevent 2.1.12 returns a payload length above INT_MAX as a negative int, which
/// `evtag_unmarshal` then uses as a huge size. Here such a length is refused, before the buffer's
/// length is even looked at.
#[test]
fn a_length_above_int_max_is_refused() {
    for len in [MAX_PAYLOAD_LEN + 1, 0x8000_0000, u32::MAX] {
        let mut item = vec![0x01];
        item.extend(int_bytes(u64::from(len)));
        item.extend_from_slice(b"short");
        let mut b = buf(&item);
        assert_eq!(tag::unmarshal_header(&mut b), Err(TagError::TooLong(len)));
        assert_eq!(all(&mut b), b"short");
        assert_eq!(tag::consume(&mut buf(&item)), Err(TagError::TooLong(len)));
        let mut d = Evbuffer::new();
        assert_eq!(
            tag::unmarshal(&mut buf(&item), &mut d),
            Err(TagError::TooLong(len))
        );
        assert!(d.is_empty());
        assert!(tag::unmarshal_string(&mut buf(&item), 1).is_err());
        assert!(tag::unmarshal_timeval(&mut buf(&item), 1).is_err());
        // The peeks report the length as it is.
        assert_eq!(tag::payload_length(&buf(&item)), Ok(len));
    }
    // INT_MAX itself passes the limit (and then fails on the missing bytes).
    let mut item = vec![0x01];
    item.extend(int_bytes(u64::from(MAX_PAYLOAD_LEN)));
    assert_eq!(
        tag::unmarshal_header(&mut buf(&item)),
        Err(TagError::Truncated)
    );
}

/// A length that lies (more than is there) allocates nothing for the payload.
#[test]
fn a_lying_length_allocates_nothing() {
    let mut item = vec![0x01];
    item.extend(int_bytes(0x7fff_0000));
    item.extend_from_slice(&[0u8; 16]);
    let mut b = buf(&item);
    let info = allocation_counter::measure(|| {
        assert_eq!(tag::unmarshal_string(&mut b, 1), Err(TagError::Truncated));
    });
    assert!(info.bytes_max < 4096, "{} bytes", info.bytes_max);
    let mut b = buf(&item);
    let mut d = Evbuffer::new();
    let info = allocation_counter::measure(|| {
        assert_eq!(tag::unmarshal(&mut b, &mut d), Err(TagError::Truncated));
    });
    assert!(info.bytes_max < 4096, "{} bytes", info.bytes_max);
}

/// Integers inside a payload must end within it: the bytes after the item are not read as part of
/// it (libevent 2.1.12 reads them, then fails the item).
#[test]
fn integers_do_not_run_past_their_payload() {
    // tag 1, payload length 1, then a 3-byte integer whose last two bytes are the next item's.
    let bytes = [0x01, 0x01, 0x30, 0x02, 0x00];
    let mut b = buf(&bytes);
    assert_eq!(tag::unmarshal_int(&mut b, 1), Err(TagError::Truncated));
    // The whole (one-byte) payload went; the next item is intact.
    assert_eq!(tag::peek(&b), Ok((2, 1)));
    let mut b = buf(&bytes);
    assert_eq!(tag::unmarshal_int64(&mut b, 1), Err(TagError::Truncated));
    assert_eq!(b.len(), 2);
    // A timeval whose second integer is missing from the payload.
    let bytes = [0x04, 0x01, 0x01, 0x10, 0x20];
    let mut b = buf(&bytes);
    assert_eq!(tag::unmarshal_timeval(&mut b, 4), Err(TagError::Truncated));
    assert_eq!(all(&mut b), [0x10, 0x20]);
    // Too many nibbles for a u32.
    let mut b = buf(&[0x01, 0x05, 0x80, 0, 0, 0, 1]);
    assert_eq!(tag::unmarshal_int(&mut b, 1), Err(TagError::IntOverflow));
    assert!(b.is_empty());
    // An empty payload holds no integer.
    let mut b = buf(&[0x01, 0x00]);
    assert_eq!(tag::unmarshal_int(&mut b, 1), Err(TagError::Truncated));
    assert!(b.is_empty());
}

#[test]
fn empty_and_garbage_buffers() {
    let mut e = Evbuffer::new();
    assert_eq!(tag::peek(&e), Err(TagError::Truncated));
    assert_eq!(tag::peek_length(&e), Err(TagError::Truncated));
    assert_eq!(tag::payload_length(&e), Err(TagError::Truncated));
    assert_eq!(tag::decode_int(&mut e), Err(TagError::Truncated));
    assert_eq!(tag::decode_int64(&mut e), Err(TagError::Truncated));
    assert_eq!(tag::consume(&mut e), Err(TagError::Truncated));
    // Every byte value as a lone buffer, and every pair: no panic, nothing taken beyond the bytes.
    for a in 0..=255u8 {
        for b in [0u8, 0x0f, 0x10, 0x7f, 0x80, 0xff] {
            let mut x = buf(&[a, b]);
            let _ = tag::consume(&mut x);
            assert!(x.len() <= 2);
            let mut x = buf(&[a, b]);
            let _ = tag::unmarshal_timeval(&mut x, u32::from(a));
            let mut x = buf(&[a, b]);
            let _ = tag::unmarshal_int64(&mut x, u32::from(a));
        }
    }
}

#[test]
fn non_canonical_encodings_are_read() {
    // Tag 0 in two bytes, an integer 1 with leading zero nibbles, a padding nibble that is not 0:
    // libevent reads all of these.
    assert_eq!(tag::decode_tag(&mut buf(&[0x80, 0x00])), Ok((0, 2)));
    assert_eq!(tag::decode_int(&mut buf(&[0x21, 0x00])), Ok(1));
    assert_eq!(tag::decode_int(&mut buf(&[0x12, 0x1f])), Ok(0x12));
    let mut b = buf(&[0x01, 0x02, 0x21, 0x00]);
    assert_eq!(tag::unmarshal_int_with_len(&mut b, 1), Ok((1, 2)));
}
