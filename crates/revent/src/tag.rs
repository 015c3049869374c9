//! Tagged data: libevent's `event2/tag.h` wire format on an [`Evbuffer`].
//!
//! A stream is a sequence of items, each a *tag*, a *length* and that many bytes of *payload*:
//!
//! - a **tag** (a `u32`) is written in groups of 7 bits, least significant first, each byte but the
//!   last with its high bit set: `0x66` is `[66]`, `0x166` is `[e6 02]`; at most 5 bytes;
//! - an **integer** (lengths, and the values of [`marshal_int`] and [`marshal_int64`]) is a run of
//!   nibbles, read as the bytes' hex digits from left to right: first the number of significant
//!   nibbles minus one, then those nibbles, least significant first, then a zero nibble if needed
//!   to fill the last byte: `0` is `[00]`, `5` is `[05]`, `0x12` is `[12 10]`, `0x1234` is
//!   `[34 32 10]`. A `u32` takes at most 5 bytes, a `u64` at most 9;
//! - a **timeval** payload is two such integers, seconds then microseconds, each as a `u32`.
//!
//! These are libevent 2.1's bytes: a stream written here is read by libevent and the other way
//! round (the C tests of `revent-capi` compare them with Debian's libevent).
//!
//! Decoding checks every length against the bytes present: a malformed, truncated or lying item
//! is an error ([`TagError`]), never a read past the buffer, and nothing is allocated for a length
//! before the bytes it announces are in the buffer. Inside a payload, the integers of
//! [`unmarshal_int`] and [`unmarshal_timeval`] must end within the payload.
//!
//! What a function takes out of the buffer, and when, is libevent's, documented on each: the
//! *peek* functions ([`peek`], [`peek_length`], [`payload_length`]) take nothing; the others take
//! the item on success, and on some errors the part of it read so far (the tag, or the tag and the
//! length), as libevent does. A buffer whose front is frozen is refused up front
//! ([`TagError::Frozen`]), with nothing taken.
//!
//! ```
//! use revent::buffer::Evbuffer;
//! use revent::tag;
//!
//! let mut buf = Evbuffer::new();
//! tag::marshal_int(&mut buf, 1, 0x1234).unwrap();
//! tag::marshal_string(&mut buf, 2, "hello").unwrap();
//! assert_eq!(buf.pullup_all().unwrap(), b"\x01\x03\x34\x32\x10\x02\x05hello");
//!
//! assert_eq!(tag::peek(&buf).unwrap(), (1, 1));
//! assert_eq!(tag::unmarshal_int(&mut buf, 1).unwrap(), 0x1234);
//! assert_eq!(tag::unmarshal_string(&mut buf, 2).unwrap(), b"hello");
//! assert!(buf.is_empty());
//! ```

use std::fmt;

use crate::buffer::{BufferEnd, Evbuffer};
use crate::error::{Error, Result};

/// The longest encoding of a tag, in bytes.
pub const MAX_TAG_LEN: usize = 5;
/// The longest encoding of a `u32` integer, in bytes.
pub const MAX_INT_LEN: usize = 5;
/// The longest encoding of a `u64` integer, in bytes.
pub const MAX_INT64_LEN: usize = 9;
/// The largest payload length the header functions accept: libevent returns lengths as a C `int`.
pub const MAX_PAYLOAD_LEN: u32 = i32::MAX as u32;

/// Why tagged data could not be decoded (libevent's `-1`).
///
/// ```
/// use revent::buffer::Evbuffer;
/// use revent::tag::{self, TagError};
///
/// let mut buf = Evbuffer::new();
/// buf.add(&[0x01, 0x05, b'a']).unwrap(); // tag 1, length 5, one byte of payload
/// assert_eq!(tag::consume(&mut buf), Err(TagError::Truncated));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagError {
    /// The bytes end before the item does: the buffer's, or for a value inside a payload, the
    /// payload's.
    Truncated,
    /// A tag that does not fit in 32 bits (a fifth byte above `0x0f`).
    TagOverflow,
    /// An integer with more nibbles than its type holds (9 or more for a `u32`).
    IntOverflow,
    /// A payload length above [`MAX_PAYLOAD_LEN`].
    TooLong(u32),
    /// The item's tag is not the one asked for.
    WrongTag {
        /// The tag asked for.
        expected: u32,
        /// The tag in the buffer.
        found: u32,
    },
    /// [`unmarshal_fixed`]: the payload's length is not the one asked for.
    WrongLength {
        /// The length asked for.
        expected: usize,
        /// The payload's length.
        found: usize,
    },
    /// The front of the buffer is frozen (or, for [`unmarshal`], the end of the destination), so
    /// nothing can be taken (or added).
    Frozen,
    /// A file segment of the buffer could not be read into memory.
    Unreadable,
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagError::Truncated => f.write_str("tagged data: truncated item"),
            TagError::TagOverflow => f.write_str("tagged data: tag does not fit in 32 bits"),
            TagError::IntOverflow => f.write_str("tagged data: integer too long for its type"),
            TagError::TooLong(n) => write!(f, "tagged data: payload length {n} is too large"),
            TagError::WrongTag { expected, found } => {
                write!(f, "tagged data: tag {found} where {expected} was expected")
            }
            TagError::WrongLength { expected, found } => {
                write!(
                    f,
                    "tagged data: payload of {found} bytes where {expected} were expected"
                )
            }
            TagError::Frozen => f.write_str("tagged data: the buffer is frozen"),
            TagError::Unreadable => f.write_str("tagged data: the buffer could not be read"),
        }
    }
}

impl std::error::Error for TagError {}

/// The result of a decoding function.
pub type TagResult<T> = std::result::Result<T, TagError>;

// ---- the encodings, on plain bytes ----

/// Writes `number`'s integer encoding into `out` and returns its length (1 to 9).
fn encode_int_into(number: u64, out: &mut [u8; MAX_INT64_LEN]) -> usize {
    let significant = (64 - number.leading_zeros() as usize).div_ceil(4);
    *out = [0; MAX_INT64_LEN];
    // The count nibble says "significant - 1"; 0 and one-nibble numbers both write 0 there.
    out[0] = (significant.saturating_sub(1) as u8) << 4;
    for k in 0..significant {
        let nibble = ((number >> (4 * k)) & 0xf) as u8;
        let idx = k + 1; // nibble 0 is the count
        if idx % 2 == 1 {
            out[idx / 2] |= nibble;
        } else {
            out[idx / 2] |= nibble << 4;
        }
    }
    (significant + 2) / 2
}

/// Writes `tag`'s encoding into `out` and returns its length (1 to 5).
fn encode_tag_into(mut tag: u32, out: &mut [u8; MAX_TAG_LEN]) -> usize {
    let mut n = 0;
    loop {
        let mut byte = (tag & 0x7f) as u8;
        tag >>= 7;
        if tag != 0 {
            byte |= 0x80;
        }
        out[n] = byte;
        n += 1;
        if tag == 0 {
            return n;
        }
    }
}

/// Decodes a tag from the start of `b`: the tag and the bytes it took.
fn parse_tag(b: &[u8]) -> TagResult<(u32, usize)> {
    let mut tag = 0u32;
    for (i, &byte) in b.iter().take(MAX_TAG_LEN).enumerate() {
        // The fifth byte brings bits 28..35: only 4 of them fit, and no further byte may follow.
        if i == MAX_TAG_LEN - 1 && byte > 0x0f {
            return Err(TagError::TagOverflow);
        }
        tag |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((tag, i + 1));
        }
    }
    Err(TagError::Truncated)
}

/// Decodes an integer of at most `max_nibbles` nibbles from the start of `b`: the value and the
/// bytes it took.
fn parse_int(b: &[u8], max_nibbles: usize) -> TagResult<(u64, usize)> {
    let first = *b.first().ok_or(TagError::Truncated)?;
    let nibbles = usize::from(first >> 4) + 1;
    if nibbles > max_nibbles {
        return Err(TagError::IntOverflow);
    }
    let len = nibbles / 2 + 1;
    let bytes = b.get(..len).ok_or(TagError::Truncated)?;
    let mut number = 0u64;
    for idx in (1..=nibbles).rev() {
        let byte = bytes[idx / 2];
        let nibble = if idx % 2 == 1 { byte & 0xf } else { byte >> 4 };
        number = (number << 4) | u64::from(nibble);
    }
    Ok((number, len))
}

fn parse_int32(b: &[u8]) -> TagResult<(u32, usize)> {
    // At most 8 nibbles: the value fits.
    parse_int(b, 8).map(|(v, n)| (v as u32, n))
}

fn parse_int64(b: &[u8]) -> TagResult<(u64, usize)> {
    parse_int(b, 16)
}

// ---- reading the buffer without taking ----

/// Copies up to `N` bytes from `offset` on (fewer at the end of the buffer) without taking them.
fn look<const N: usize>(buf: &Evbuffer, offset: usize) -> TagResult<([u8; N], usize)> {
    let mut out = [0u8; N];
    if offset >= buf.len() {
        return Ok((out, 0));
    }
    let ptr = buf.ptr_at(offset).map_err(|_| TagError::Unreadable)?;
    let n = buf
        .copyout_from(&ptr, &mut out)
        .map_err(|_| TagError::Unreadable)?;
    Ok((out, n))
}

fn look_tag(buf: &Evbuffer) -> TagResult<(u32, usize)> {
    let (b, n) = look::<MAX_TAG_LEN>(buf, 0)?;
    parse_tag(&b[..n])
}

fn look_int32(buf: &Evbuffer, offset: usize) -> TagResult<(u32, usize)> {
    let (b, n) = look::<MAX_INT_LEN>(buf, offset)?;
    parse_int32(&b[..n])
}

fn writable_front(buf: &Evbuffer) -> TagResult<()> {
    if buf.is_frozen(BufferEnd::Start) {
        Err(TagError::Frozen)
    } else {
        Ok(())
    }
}

/// Drains `n <= buf.len()` bytes from a buffer whose front was checked not frozen.
fn take(buf: &mut Evbuffer, n: usize) -> TagResult<()> {
    buf.drain(n).map(drop).map_err(|_| TagError::Frozen)
}

// ---- encoding ----

/// Appends `number`'s integer encoding (libevent's `evtag_encode_int`).
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::encode_int(&mut buf, 0x1234).unwrap();
/// assert_eq!(buf.pullup_all().unwrap(), [0x34, 0x32, 0x10]);
/// ```
pub fn encode_int(buf: &mut Evbuffer, number: u32) -> Result<()> {
    encode_int64(buf, u64::from(number))
}

/// Appends `number`'s integer encoding, up to 9 bytes (libevent's `evtag_encode_int64`).
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::encode_int64(&mut buf, u64::MAX).unwrap();
/// assert_eq!(buf.pullup_all().unwrap(), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]);
/// ```
pub fn encode_int64(buf: &mut Evbuffer, number: u64) -> Result<()> {
    let mut b = [0u8; MAX_INT64_LEN];
    let n = encode_int_into(number, &mut b);
    buf.add(&b[..n])
}

/// How many bytes `tag`'s encoding takes (1 to 5).
///
/// ```
/// assert_eq!(revent::tag::encoded_tag_len(0x7f), 1);
/// assert_eq!(revent::tag::encoded_tag_len(0x80), 2);
/// assert_eq!(revent::tag::encoded_tag_len(u32::MAX), 5);
/// ```
pub fn encoded_tag_len(tag: u32) -> usize {
    encode_tag_into(tag, &mut [0; MAX_TAG_LEN])
}

/// Appends `tag`'s encoding and returns its length (libevent's `evtag_encode_tag`).
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// assert_eq!(revent::tag::encode_tag(&mut buf, 0x166).unwrap(), 2);
/// assert_eq!(buf.pullup_all().unwrap(), [0xe6, 0x02]);
/// ```
pub fn encode_tag(buf: &mut Evbuffer, tag: u32) -> Result<usize> {
    let mut b = [0u8; MAX_TAG_LEN];
    let n = encode_tag_into(tag, &mut b);
    buf.add(&b[..n])?;
    Ok(n)
}

/// Appends the header (tag and length) and the payload in one add, so that an error leaves the
/// buffer as it was.
fn put_item(buf: &mut Evbuffer, tag: u32, payload: &[u8]) -> Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| Error::InvalidArgument("tagged data: payload longer than 4 GiB"))?;
    let mut head = [0u8; MAX_TAG_LEN + MAX_INT_LEN];
    let mut t = [0u8; MAX_TAG_LEN];
    let tn = encode_tag_into(tag, &mut t);
    let mut l = [0u8; MAX_INT64_LEN];
    let ln = encode_int_into(u64::from(len), &mut l);
    head[..tn].copy_from_slice(&t[..tn]);
    head[tn..tn + ln].copy_from_slice(&l[..ln]);
    if payload.len() <= 64 {
        let mut all = [0u8; MAX_TAG_LEN + MAX_INT_LEN + 64];
        all[..tn + ln].copy_from_slice(&head[..tn + ln]);
        all[tn + ln..tn + ln + payload.len()].copy_from_slice(payload);
        return buf.add(&all[..tn + ln + payload.len()]);
    }
    buf.add(&head[..tn + ln])?;
    buf.add(payload)
}

/// Appends an item: `tag`, the length of `data`, then `data` (libevent's `evtag_marshal`). A
/// payload longer than `u32::MAX` bytes is refused.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal(&mut buf, 3, b"abc").unwrap();
/// assert_eq!(buf.pullup_all().unwrap(), b"\x03\x03abc");
/// ```
pub fn marshal(buf: &mut Evbuffer, tag: u32, data: &[u8]) -> Result<()> {
    put_item(buf, tag, data)
}

/// Appends an item whose payload is all of `data`, which is moved (whole chunks, no copy) and left
/// empty (libevent's `evtag_marshal_buffer`). A payload longer than `u32::MAX` bytes is refused.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// let mut data = Evbuffer::new();
/// data.add(b"xyz").unwrap();
/// revent::tag::marshal_buffer(&mut buf, 1, &mut data).unwrap();
/// assert!(data.is_empty());
/// assert_eq!(buf.pullup_all().unwrap(), b"\x01\x03xyz");
/// ```
pub fn marshal_buffer(buf: &mut Evbuffer, tag: u32, data: &mut Evbuffer) -> Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| Error::InvalidArgument("tagged data: payload longer than 4 GiB"))?;
    if data.is_frozen(BufferEnd::Start) {
        return Err(Error::InvalidArgument(
            "tagged data: the payload buffer is frozen",
        ));
    }
    let mut head = Evbuffer::new();
    encode_tag(&mut head, tag)?;
    encode_int(&mut head, len)?;
    head.add_buffer(data)?;
    if let Err(e) = buf.add_buffer(&mut head) {
        // Give the payload back (after the header bytes, which are ours).
        let mut t = [0u8; MAX_TAG_LEN + MAX_INT_LEN];
        let hl = encoded_tag_len(tag) + int_len(u64::from(len));
        let _ = head.remove(&mut t[..hl]);
        let _ = data.add_buffer(&mut head);
        return Err(e);
    }
    Ok(())
}

fn int_len(number: u64) -> usize {
    encode_int_into(number, &mut [0; MAX_INT64_LEN])
}

/// Appends an item whose payload is `integer`'s encoding (libevent's `evtag_marshal_int`).
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_int(&mut buf, 0x80, 7).unwrap();
/// assert_eq!(buf.pullup_all().unwrap(), [0x80, 0x01, 0x01, 0x07]);
/// ```
pub fn marshal_int(buf: &mut Evbuffer, tag: u32, integer: u32) -> Result<()> {
    marshal_int64(buf, tag, u64::from(integer))
}

/// Appends an item whose payload is `integer`'s encoding (libevent's `evtag_marshal_int64`).
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_int64(&mut buf, 1, 1 << 32).unwrap();
/// assert_eq!(buf.pullup_all().unwrap(), [0x01, 0x05, 0x80, 0, 0, 0, 0x01]);
/// ```
pub fn marshal_int64(buf: &mut Evbuffer, tag: u32, integer: u64) -> Result<()> {
    let mut b = [0u8; MAX_INT64_LEN];
    let n = encode_int_into(integer, &mut b);
    put_item(buf, tag, &b[..n])
}

/// Appends an item whose payload is the string's bytes, without a terminator (libevent's
/// `evtag_marshal_string`).
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_string(&mut buf, 2, "hi").unwrap();
/// assert_eq!(buf.pullup_all().unwrap(), b"\x02\x02hi");
/// ```
pub fn marshal_string(buf: &mut Evbuffer, tag: u32, string: impl AsRef<[u8]>) -> Result<()> {
    put_item(buf, tag, string.as_ref())
}

/// Appends an item whose payload is a timeval: `sec` then `usec`, each an integer (libevent's
/// `evtag_marshal_timeval`, which writes both fields as 32-bit numbers).
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_timeval(&mut buf, 4, 1, 0x20).unwrap();
/// assert_eq!(buf.pullup_all().unwrap(), [0x04, 0x03, 0x01, 0x10, 0x20]);
/// ```
pub fn marshal_timeval(buf: &mut Evbuffer, tag: u32, sec: u32, usec: u32) -> Result<()> {
    let mut payload = [0u8; 2 * MAX_INT_LEN];
    let mut b = [0u8; MAX_INT64_LEN];
    let n1 = encode_int_into(u64::from(sec), &mut b);
    payload[..n1].copy_from_slice(&b[..n1]);
    let n2 = encode_int_into(u64::from(usec), &mut b);
    payload[n1..n1 + n2].copy_from_slice(&b[..n2]);
    put_item(buf, tag, &payload[..n1 + n2])
}

// ---- decoding: the pieces ----

/// Takes an integer from the front (libevent's `evtag_decode_int`). On error nothing is taken.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// buf.add(&[0x34, 0x32, 0x10, 0xff]).unwrap();
/// assert_eq!(revent::tag::decode_int(&mut buf).unwrap(), 0x1234);
/// assert_eq!(buf.len(), 1);
/// ```
pub fn decode_int(buf: &mut Evbuffer) -> TagResult<u32> {
    writable_front(buf)?;
    let (v, n) = look_int32(buf, 0)?;
    take(buf, n)?;
    Ok(v)
}

/// Takes a 64-bit integer from the front (libevent's `evtag_decode_int64`). On error nothing is
/// taken.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::encode_int64(&mut buf, 1 << 40).unwrap();
/// assert_eq!(revent::tag::decode_int64(&mut buf).unwrap(), 1 << 40);
/// ```
pub fn decode_int64(buf: &mut Evbuffer) -> TagResult<u64> {
    writable_front(buf)?;
    let (b, n) = look::<MAX_INT64_LEN>(buf, 0)?;
    let (v, len) = parse_int64(&b[..n])?;
    take(buf, len)?;
    Ok(v)
}

/// Takes a tag from the front and returns it with the number of bytes it took (libevent's
/// `evtag_decode_tag`). On error nothing is taken.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// buf.add(&[0xe6, 0x02]).unwrap();
/// assert_eq!(revent::tag::decode_tag(&mut buf).unwrap(), (0x166, 2));
/// assert!(buf.is_empty());
/// ```
pub fn decode_tag(buf: &mut Evbuffer) -> TagResult<(u32, usize)> {
    writable_front(buf)?;
    let (tag, n) = look_tag(buf)?;
    take(buf, n)?;
    Ok((tag, n))
}

/// The tag of the first item and the number of bytes it takes, taking nothing (libevent's
/// `evtag_peek`).
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal(&mut buf, 300, b"").unwrap();
/// assert_eq!(revent::tag::peek(&buf).unwrap(), (300, 2));
/// ```
pub fn peek(buf: &Evbuffer) -> TagResult<(u32, usize)> {
    look_tag(buf)
}

/// The first item's payload length, taking nothing (libevent's `evtag_payload_length`). The payload
/// itself need not be in the buffer yet.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// buf.add(&[0x01, 0x10, 0x10]).unwrap(); // tag 1, length 16, no payload yet
/// assert_eq!(revent::tag::payload_length(&buf).unwrap(), 16);
/// ```
pub fn payload_length(buf: &Evbuffer) -> TagResult<u32> {
    let (_, tag_len) = look_tag(buf)?;
    look_int32(buf, tag_len).map(|(len, _)| len)
}

/// The first item's whole length: tag, length and payload, taking nothing (libevent's
/// `evtag_peek_length`). The payload itself need not be in the buffer yet: this says how many bytes
/// to wait for.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal(&mut buf, 1, b"abcd").unwrap();
/// assert_eq!(revent::tag::peek_length(&buf).unwrap(), 6);
/// ```
pub fn peek_length(buf: &Evbuffer) -> TagResult<usize> {
    let (_, tag_len) = look_tag(buf)?;
    let (len, len_len) = look_int32(buf, tag_len)?;
    Ok(tag_len + len_len + len as usize)
}

/// Takes the first item's tag and length and returns them; the payload, which must be in the buffer
/// whole, stays (libevent's `evtag_unmarshal_header`).
///
/// Errors: a bad tag takes nothing; a bad length takes the tag; a length above
/// [`MAX_PAYLOAD_LEN`] ([`TagError::TooLong`]) or beyond the buffer ([`TagError::Truncated`])
/// takes the tag and the length.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal(&mut buf, 7, b"abc").unwrap();
/// assert_eq!(revent::tag::unmarshal_header(&mut buf).unwrap(), (7, 3));
/// assert_eq!(buf.pullup_all().unwrap(), b"abc");
/// ```
pub fn unmarshal_header(buf: &mut Evbuffer) -> TagResult<(u32, u32)> {
    writable_front(buf)?;
    let (tag, tag_len) = look_tag(buf)?;
    take(buf, tag_len)?;
    let len = take_length(buf, true)?;
    Ok((tag, len))
}

/// Takes a payload length (the tag is gone) and checks that the payload is in the buffer; with
/// `limit`, a length above [`MAX_PAYLOAD_LEN`] is refused. Errors take what libevent takes.
fn take_length(buf: &mut Evbuffer, limit: bool) -> TagResult<u32> {
    let (len, n) = look_int32(buf, 0)?;
    take(buf, n)?;
    if limit && len > MAX_PAYLOAD_LEN {
        return Err(TagError::TooLong(len));
    }
    if buf.len() < len as usize {
        return Err(TagError::Truncated);
    }
    Ok(len)
}

/// Takes the first item whole, returning nothing of it (libevent's `evtag_consume`). Errors take
/// what [`unmarshal_header`] takes.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal(&mut buf, 1, b"skip").unwrap();
/// revent::tag::marshal_int(&mut buf, 2, 9).unwrap();
/// revent::tag::consume(&mut buf).unwrap();
/// assert_eq!(revent::tag::unmarshal_int(&mut buf, 2).unwrap(), 9);
/// ```
pub fn consume(buf: &mut Evbuffer) -> TagResult<()> {
    let (_, len) = unmarshal_header(buf)?;
    take(buf, len as usize)
}

/// Takes the first item, moving its payload to the end of `dst` (whole chunks, no copy), and
/// returns its tag and payload length (libevent's `evtag_unmarshal`). Errors take what
/// [`unmarshal_header`] takes; a frozen `dst` is refused up front.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut src = Evbuffer::new();
/// let mut dst = Evbuffer::new();
/// revent::tag::marshal(&mut src, 5, b"payload").unwrap();
/// assert_eq!(revent::tag::unmarshal(&mut src, &mut dst).unwrap(), (5, 7));
/// assert_eq!(dst.pullup_all().unwrap(), b"payload");
/// ```
pub fn unmarshal(src: &mut Evbuffer, dst: &mut Evbuffer) -> TagResult<(u32, usize)> {
    if dst.is_frozen(BufferEnd::End) {
        return Err(TagError::Frozen);
    }
    let (tag, len) = unmarshal_header(src)?;
    let moved = src
        .remove_buffer(dst, len as usize)
        .map_err(|_| TagError::Frozen)?;
    Ok((tag, moved))
}

/// Takes an item that must carry `need_tag` and an integer, and returns the integer (libevent's
/// `evtag_unmarshal_int`). See [`unmarshal_int_with_len`] for the errors.
///
/// ```
/// use revent::buffer::Evbuffer;
/// use revent::tag::{self, TagError};
/// let mut buf = Evbuffer::new();
/// tag::marshal_int(&mut buf, 1, 42).unwrap();
/// tag::marshal_int(&mut buf, 1, 43).unwrap();
/// assert_eq!(tag::unmarshal_int(&mut buf, 1).unwrap(), 42);
/// assert_eq!(tag::unmarshal_int(&mut buf, 2), Err(TagError::WrongTag { expected: 2, found: 1 }));
/// ```
pub fn unmarshal_int(buf: &mut Evbuffer, need_tag: u32) -> TagResult<u32> {
    unmarshal_int_with_len(buf, need_tag).map(|(v, _)| v)
}

/// [`unmarshal_int`], also returning how many bytes the integer's encoding took: what libevent's
/// `evtag_unmarshal_int` returns. The integer must end within the payload; bytes after it in the
/// payload are ignored.
///
/// Errors: a bad tag takes nothing; a wrong tag takes the tag; a bad length takes the tag; a
/// payload beyond the buffer takes the tag and the length; a bad integer takes the whole item.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_int(&mut buf, 1, 0x1234).unwrap();
/// assert_eq!(revent::tag::unmarshal_int_with_len(&mut buf, 1).unwrap(), (0x1234, 3));
/// ```
pub fn unmarshal_int_with_len(buf: &mut Evbuffer, need_tag: u32) -> TagResult<(u32, usize)> {
    let (v, n) = unmarshal_number(buf, need_tag, 8)?;
    Ok((v as u32, n))
}

/// Takes an item that must carry `need_tag` and a 64-bit integer, and returns the integer
/// (libevent's `evtag_unmarshal_int64`). Errors as for [`unmarshal_int_with_len`].
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_int64(&mut buf, 9, u64::MAX).unwrap();
/// assert_eq!(revent::tag::unmarshal_int64(&mut buf, 9).unwrap(), u64::MAX);
/// ```
pub fn unmarshal_int64(buf: &mut Evbuffer, need_tag: u32) -> TagResult<u64> {
    unmarshal_int64_with_len(buf, need_tag).map(|(v, _)| v)
}

/// [`unmarshal_int64`], also returning how many bytes the integer's encoding took: what libevent's
/// `evtag_unmarshal_int64` returns.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_int64(&mut buf, 9, 0).unwrap();
/// assert_eq!(revent::tag::unmarshal_int64_with_len(&mut buf, 9).unwrap(), (0, 1));
/// ```
pub fn unmarshal_int64_with_len(buf: &mut Evbuffer, need_tag: u32) -> TagResult<(u64, usize)> {
    unmarshal_number(buf, need_tag, 16)
}

fn unmarshal_number(
    buf: &mut Evbuffer,
    need_tag: u32,
    max_nibbles: usize,
) -> TagResult<(u64, usize)> {
    writable_front(buf)?;
    let (tag, tag_len) = look_tag(buf)?;
    take(buf, tag_len)?;
    if tag != need_tag {
        return Err(TagError::WrongTag {
            expected: need_tag,
            found: tag,
        });
    }
    // libevent does not limit this length (it never returns it as an int).
    let len = take_length(buf, false)? as usize;
    let (b, n) = look::<MAX_INT64_LEN>(buf, 0)?;
    // Only the payload's bytes count: an integer running past it is truncated.
    let r = parse_int(&b[..n.min(len)], max_nibbles);
    take(buf, len)?;
    r
}

/// Takes an item that must carry `need_tag` and a payload of exactly `out.len()` bytes, copying the
/// payload into `out` (libevent's `evtag_unmarshal_fixed`). Errors take what [`unmarshal_header`]
/// takes; a wrong tag or length leaves the payload in the buffer.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal(&mut buf, 1, &[1, 2, 3, 4]).unwrap();
/// let mut out = [0u8; 4];
/// revent::tag::unmarshal_fixed(&mut buf, 1, &mut out).unwrap();
/// assert_eq!(out, [1, 2, 3, 4]);
/// ```
pub fn unmarshal_fixed(buf: &mut Evbuffer, need_tag: u32, out: &mut [u8]) -> TagResult<()> {
    let (tag, len) = unmarshal_header(buf)?;
    if tag != need_tag {
        return Err(TagError::WrongTag {
            expected: need_tag,
            found: tag,
        });
    }
    if len as usize != out.len() {
        return Err(TagError::WrongLength {
            expected: out.len(),
            found: len as usize,
        });
    }
    buf.remove(out).map_err(|_| TagError::Unreadable)?;
    Ok(())
}

/// Takes an item that must carry `need_tag` and returns its payload (libevent's
/// `evtag_unmarshal_string`, which hands C a NUL-terminated copy). Errors take what
/// [`unmarshal_header`] takes; a wrong tag leaves the payload in the buffer. Nothing is allocated
/// before the whole payload is known to be in the buffer.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_string(&mut buf, 3, "text").unwrap();
/// assert_eq!(revent::tag::unmarshal_string(&mut buf, 3).unwrap(), b"text");
/// ```
pub fn unmarshal_string(buf: &mut Evbuffer, need_tag: u32) -> TagResult<Vec<u8>> {
    let (tag, len) = unmarshal_header(buf)?;
    if tag != need_tag {
        return Err(TagError::WrongTag {
            expected: need_tag,
            found: tag,
        });
    }
    // `len` bytes are in the buffer (checked by the header): the allocation is bounded by them.
    let mut out = vec![0u8; len as usize];
    buf.remove(&mut out).map_err(|_| TagError::Unreadable)?;
    Ok(out)
}

/// Takes an item that must carry `need_tag` and a timeval, and returns `(sec, usec)` (libevent's
/// `evtag_unmarshal_timeval`). Both integers must end within the payload. Errors before the payload
/// take what [`unmarshal_header`] takes; a wrong tag or a bad payload takes the whole item.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// revent::tag::marshal_timeval(&mut buf, 4, 1_700_000_000, 250_000).unwrap();
/// assert_eq!(revent::tag::unmarshal_timeval(&mut buf, 4).unwrap(), (1_700_000_000, 250_000));
/// ```
pub fn unmarshal_timeval(buf: &mut Evbuffer, need_tag: u32) -> TagResult<(u32, u32)> {
    let (tag, len) = unmarshal_header(buf)?;
    let len = len as usize;
    let r = if tag != need_tag {
        Err(TagError::WrongTag {
            expected: need_tag,
            found: tag,
        })
    } else {
        look::<{ 2 * MAX_INT_LEN }>(buf, 0).and_then(|(b, n)| {
            let payload = &b[..n.min(len)];
            let (sec, n1) = parse_int32(payload)?;
            let (usec, _) = parse_int32(&payload[n1..])?;
            Ok((sec, usec))
        })
    };
    take(buf, len)?;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(n: u64) -> Vec<u8> {
        let mut b = [0; MAX_INT64_LEN];
        let k = encode_int_into(n, &mut b);
        b[..k].to_vec()
    }

    #[test]
    fn integer_bytes() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(0xf), [0x0f]);
        assert_eq!(enc(0x10), [0x10, 0x10]);
        assert_eq!(enc(0x12), [0x12, 0x10]);
        assert_eq!(enc(0x123), [0x23, 0x21]);
        assert_eq!(enc(0x1234), [0x34, 0x32, 0x10]);
        assert_eq!(enc(0xffff_ffff), [0x7f, 0xff, 0xff, 0xff, 0xf0]);
        assert_eq!(
            enc(u64::MAX),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]
        );
    }

    #[test]
    fn tag_bytes() {
        let t = |v| {
            let mut b = [0; MAX_TAG_LEN];
            let n = encode_tag_into(v, &mut b);
            b[..n].to_vec()
        };
        assert_eq!(t(0), [0]);
        assert_eq!(t(0x66), [0x66]);
        assert_eq!(t(0x166), [0xe6, 0x02]);
        assert_eq!(t(u32::MAX), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn parse_limits() {
        assert_eq!(
            parse_tag(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Ok((u32::MAX, 5))
        );
        assert_eq!(
            parse_tag(&[0xff, 0xff, 0xff, 0xff, 0x10]),
            Err(TagError::TagOverflow)
        );
        assert_eq!(
            parse_tag(&[0x80, 0x80, 0x80, 0x80, 0x8f, 0]),
            Err(TagError::TagOverflow)
        );
        assert_eq!(parse_tag(&[0x80, 0x80]), Err(TagError::Truncated));
        assert_eq!(parse_tag(&[]), Err(TagError::Truncated));
        assert_eq!(parse_int32(&[0x80, 0, 0, 0, 0]), Err(TagError::IntOverflow));
        assert_eq!(parse_int64(&[0xf0; 8]), Err(TagError::Truncated));
        // Non-canonical encodings decode: leading zero nibbles, a non-zero padding nibble.
        assert_eq!(parse_int32(&[0x21, 0x00]), Ok((1, 2)));
        assert_eq!(parse_int32(&[0x05]), Ok((5, 1)));
        assert_eq!(parse_int32(&[0x12, 0x1f]), Ok((0x12, 2)));
    }
}
