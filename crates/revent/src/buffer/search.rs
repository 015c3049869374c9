//! Positions, peeking, searching and reading lines.

use std::collections::vec_deque;

use memchr::{memchr, memchr2, memchr_iter, memmem};

use super::chunk::Chunk;
use super::Evbuffer;
use crate::error::{Error, Result};

/// A position in a buffer (libevent's `struct evbuffer_ptr`).
///
/// It remembers which chunk it points into, so stepping through a buffer with
/// [`Evbuffer::ptr_set`] and [`PtrHow::Add`] does not walk the chain from the start each time. The
/// cached part is used only while the buffer is unchanged; after a change the position is found again
/// from its byte offset, and a position past the (new) end is an error.
///
/// ```
/// use revent::buffer::{Evbuffer, PtrHow};
/// let mut buf = Evbuffer::new();
/// buf.add(b"key=value").unwrap();
/// let mut p = buf.search(b"=", None).unwrap().unwrap();
/// assert_eq!(p.position(), 3);
/// buf.ptr_set(&mut p, 1, PtrHow::Add).unwrap();
/// let value: Vec<u8> = buf.peek_from(&p, 5).unwrap().flatten().copied().collect();
/// assert_eq!(value, b"value");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct EvbufferPtr {
    pos: usize,
    chunk: usize,
    off: usize,
    buf: u64,
    gen: u64,
}

impl EvbufferPtr {
    /// Byte offset from the start of the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl PartialEq for EvbufferPtr {
    fn eq(&self, other: &Self) -> bool {
        self.pos == other.pos
    }
}

/// How [`Evbuffer::ptr_set`] moves a position.
///
/// ```
/// use revent::buffer::{Evbuffer, PtrHow};
/// let mut buf = Evbuffer::new();
/// buf.add(b"0123456789").unwrap();
/// let mut p = buf.ptr_at(0).unwrap();
/// buf.ptr_set(&mut p, 4, PtrHow::Set).unwrap();
/// buf.ptr_set(&mut p, 2, PtrHow::Add).unwrap();
/// assert_eq!(p.position(), 6);
/// assert!(buf.ptr_set(&mut p, 5, PtrHow::Add).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtrHow {
    /// To the given offset from the start (`EVBUFFER_PTR_SET`).
    Set,
    /// Forward by the given number of bytes (`EVBUFFER_PTR_ADD`).
    Add,
}

/// What ends a line, for [`Evbuffer::readln`] and [`Evbuffer::search_eol`] (libevent's
/// `enum evbuffer_eol_style`).
///
/// ```
/// use revent::buffer::{EolStyle, Evbuffer};
/// let mut buf = Evbuffer::new();
/// buf.add(b"a\r\nb\n").unwrap();
/// let (line, used) = buf.readln(EolStyle::Any).unwrap().unwrap();
/// assert_eq!((line.as_slice(), used), (&b"a"[..], 3));
/// assert_eq!(buf.readln(EolStyle::Lf).unwrap().unwrap().0, b"b");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EolStyle {
    /// Any run of `\r` and `\n` characters, in any order and number (`EVBUFFER_EOL_ANY`). A run split
    /// across two reads ends one line and starts an empty one, as in libevent.
    Any,
    /// `\n`, optionally preceded by `\r` (`EVBUFFER_EOL_CRLF`).
    Crlf,
    /// Exactly `\r\n` (`EVBUFFER_EOL_CRLF_STRICT`).
    CrlfStrict,
    /// `\n` (`EVBUFFER_EOL_LF`).
    Lf,
    /// A NUL byte (`EVBUFFER_EOL_NUL`).
    Nul,
}

/// The chunks' slices over a range of a buffer, in order; from [`Evbuffer::peek`].
///
/// ```
/// use revent::buffer::Evbuffer;
/// let mut buf = Evbuffer::new();
/// buf.add(b"hello").unwrap();
/// let total: usize = buf.peek(usize::MAX).unwrap().map(<[u8]>::len).sum();
/// assert_eq!(total, 5);
/// ```
pub struct Peek<'a> {
    chunks: vec_deque::Iter<'a, Chunk>,
    off: usize,
    left: usize,
}

impl<'a> Iterator for Peek<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.left > 0 {
            let c = self.chunks.next()?;
            let d = c.data().get(self.off..).unwrap_or(&[]);
            self.off = 0;
            if d.is_empty() {
                continue;
            }
            let k = d.len().min(self.left);
            self.left -= k;
            return Some(&d[..k]);
        }
        None
    }
}

impl Evbuffer {
    /// Chunk index and offset of byte `pos` (`pos <= len`); the end is `(chunks.len(), 0)`.
    fn locate(&self, mut pos: usize) -> (usize, usize) {
        for (i, c) in self.chunks.iter().enumerate() {
            if pos < c.len() {
                return (i, pos);
            }
            pos -= c.len();
        }
        (self.chunks.len(), 0)
    }

    /// Checks a position against this buffer and finds its chunk.
    pub(super) fn resolve(&self, p: &EvbufferPtr) -> Result<(usize, usize)> {
        if p.pos > self.len {
            return Err(Error::InvalidArgument(
                "position past the end of the buffer",
            ));
        }
        if p.buf == self.id && p.gen == self.gen {
            return Ok((p.chunk, p.off));
        }
        Ok(self.locate(p.pos))
    }

    fn make_ptr(&self, pos: usize, (chunk, off): (usize, usize)) -> EvbufferPtr {
        EvbufferPtr {
            pos,
            chunk,
            off,
            buf: self.id,
            gen: self.gen,
        }
    }

    /// A position `pos` bytes from the start; `pos == len()` (the end) is allowed, beyond is an error.
    pub fn ptr_at(&self, pos: usize) -> Result<EvbufferPtr> {
        if pos > self.len {
            return Err(Error::InvalidArgument(
                "position past the end of the buffer",
            ));
        }
        Ok(self.make_ptr(pos, self.locate(pos)))
    }

    /// Moves `ptr` to `n` ([`PtrHow::Set`]) or forward by `n` ([`PtrHow::Add`]) (libevent's
    /// `evbuffer_ptr_set`). A target past the end is an error and leaves `ptr` unchanged.
    pub fn ptr_set(&self, ptr: &mut EvbufferPtr, n: usize, how: PtrHow) -> Result<()> {
        match how {
            PtrHow::Set => {
                *ptr = self.ptr_at(n)?;
            }
            PtrHow::Add => {
                let target = ptr.pos.checked_add(n).filter(|&t| t <= self.len).ok_or(
                    Error::InvalidArgument("position past the end of the buffer"),
                )?;
                let (mut i, off) = self.resolve(ptr)?;
                // Walk forward from the cached chunk rather than from the start.
                let mut o = off + n;
                while i < self.chunks.len() && o >= self.chunks[i].len() {
                    o -= self.chunks[i].len();
                    i += 1;
                }
                *ptr = self.make_ptr(target, (i, o));
            }
        }
        Ok(())
    }

    /// Slices over the chunks, starting at chunk `idx` offset `off`, covering `n` bytes.
    pub(super) fn segments(&self, idx: usize, off: usize, n: usize) -> Peek<'_> {
        Peek {
            chunks: self.chunks.range(idx.min(self.chunks.len())..),
            off,
            left: n,
        }
    }

    /// The first `n` bytes (or all, if fewer) as slices over the chunks, without copying (libevent's
    /// `evbuffer_peek`).
    ///
    /// ```
    /// use revent::buffer::Evbuffer;
    /// let mut buf = Evbuffer::new();
    /// buf.add(b"abc").unwrap();
    /// buf.add_reference(&b"def"[..], |_| {}).unwrap();
    /// let parts: Vec<&[u8]> = buf.peek(5).unwrap().collect();
    /// assert_eq!(parts, [&b"abc"[..], &b"de"[..]]);
    /// ```
    pub fn peek(&self, n: usize) -> Result<Peek<'_>> {
        let n = n.min(self.len);
        self.load_range(0, n)?;
        Ok(self.segments(0, 0, n))
    }

    /// Like [`peek`](Self::peek) but starting at `start`.
    pub fn peek_from(&self, start: &EvbufferPtr, n: usize) -> Result<Peek<'_>> {
        let (idx, off) = self.resolve(start)?;
        let n = n.min(self.len - start.pos);
        self.load_range(start.pos, n)?;
        Ok(self.segments(idx, off, n))
    }

    /// The first occurrence of `needle` at or after `start` (the beginning if `None`) (libevent's
    /// `evbuffer_search`). An empty needle matches at `start`.
    pub fn search(
        &self,
        needle: &[u8],
        start: Option<&EvbufferPtr>,
    ) -> Result<Option<EvbufferPtr>> {
        self.search_range(needle, start, None)
    }

    /// Like [`search`](Self::search), but the match must end at or before `end` (libevent's
    /// `evbuffer_search_range`).
    pub fn search_range(
        &self,
        needle: &[u8],
        start: Option<&EvbufferPtr>,
        end: Option<&EvbufferPtr>,
    ) -> Result<Option<EvbufferPtr>> {
        let (from, (idx, off)) = match start {
            Some(p) => (p.pos, self.resolve(p)?),
            None => (0, (0, 0)),
        };
        let to = match end {
            Some(p) => {
                self.resolve(p)?;
                p.pos
            }
            None => self.len,
        };
        if to < from {
            return Ok(None);
        }
        self.load_range(from, to - from)?;
        Ok(self
            .find(needle, idx, off, from, to)
            .map(|p| self.make_ptr(p, self.locate(p))))
    }

    /// Position of the first `needle` within `[from, to)`; `(idx, off)` is where `from` is.
    fn find(&self, needle: &[u8], idx: usize, off: usize, from: usize, to: usize) -> Option<usize> {
        let m = needle.len();
        if m == 0 {
            return Some(from);
        }
        if to - from < m {
            return None;
        }
        let finder = memmem::Finder::new(needle);
        let (mut i, mut o, mut base) = (idx, off, from);
        while i < self.chunks.len() && base < to {
            let d = self.chunks[i].data();
            let s = d.get(o..d.len().min(o + (to - base))).unwrap_or(&[]);
            if let Some(p) = finder.find(s) {
                return Some(base + p);
            }
            // Matches that start in this chunk's last m-1 bytes and run into the next chunks.
            let tail = s.len().saturating_sub(m - 1);
            for k in memchr_iter(needle[0], &s[tail..]) {
                let k = tail + k;
                let part = s.len() - k;
                if base + k + m <= to
                    && s[k..] == needle[..part]
                    && self.prefix_at(i + 1, &needle[part..])
                {
                    return Some(base + k);
                }
            }
            base += s.len();
            i += 1;
            o = 0;
        }
        None
    }

    /// Whether the chunks from `idx` on begin with `want`.
    fn prefix_at(&self, idx: usize, mut want: &[u8]) -> bool {
        for c in self.chunks.range(idx.min(self.chunks.len())..) {
            if want.is_empty() {
                break;
            }
            let d = c.data();
            let k = d.len().min(want.len());
            if d[..k] != want[..k] {
                return false;
            }
            want = &want[k..];
        }
        want.is_empty()
    }

    fn byte_at(&self, pos: usize) -> Option<u8> {
        let (i, o) = self.locate(pos);
        self.chunks.get(i).and_then(|c| c.data().get(o).copied())
    }

    /// Length of the run of `\r`/`\n` bytes starting at `pos`.
    fn eol_run(&self, pos: usize) -> usize {
        let (i, o) = self.locate(pos);
        let mut run = 0;
        for s in self.segments(i, o, self.len - pos) {
            let k = s.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            run += k;
            if k < s.len() {
                break;
            }
        }
        run
    }

    /// The first end of line of `style` whose scan starts at `from`; a `\r` before a `\n` may be found
    /// back to `floor`. Returns `(position, length of the end-of-line marker)`.
    fn find_eol(&self, from: usize, floor: usize, style: EolStyle) -> Option<(usize, usize)> {
        let (idx, off) = self.locate(from);
        // Fast path: the end of line lies wholly inside the chunk where the scan starts. Anything that
        // may cross a chunk boundary goes to the general loop below.
        if let Some(c) = self.chunks.get(idx) {
            let s = c.data().get(off..).unwrap_or(&[]);
            let only_chunk = idx + 1 == self.chunks.len();
            let hit = match style {
                EolStyle::Lf => memchr(b'\n', s).map(|p| (p, 1)),
                EolStyle::Nul => memchr(0, s).map(|p| (p, 1)),
                EolStyle::Crlf => match memchr(b'\n', s) {
                    Some(p) if p > 0 => Some(if s[p - 1] == b'\r' {
                        (p - 1, 2)
                    } else {
                        (p, 1)
                    }),
                    _ => None,
                },
                // Not a plain two-byte search: a "\r" just before `from` may pair with a "\n" here.
                EolStyle::CrlfStrict => match memchr(b'\n', s) {
                    Some(p) if p > 0 && s[p - 1] == b'\r' => Some((p - 1, 2)),
                    _ => None,
                },
                EolStyle::Any => memchr2(b'\r', b'\n', s).and_then(|p| {
                    let run = s[p..]
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    (p + run < s.len() || only_chunk).then_some((p, run))
                }),
            };
            if let Some((p, n)) = hit {
                return Some((from + p, n));
            }
            // Nothing in the last chunk means nothing at all (a CRLF lookback needs p == 0, which
            // memchr would have found).
            if only_chunk && memchr(b'\n', s).is_none() && style != EolStyle::Nul {
                return None;
            }
        }
        let mut base = from;
        for s in self.segments(idx, off, self.len - from) {
            match style {
                EolStyle::Lf => {
                    if let Some(p) = memchr(b'\n', s) {
                        return Some((base + p, 1));
                    }
                }
                EolStyle::Nul => {
                    if let Some(p) = memchr(0, s) {
                        return Some((base + p, 1));
                    }
                }
                EolStyle::Any => {
                    if let Some(p) = memchr2(b'\r', b'\n', s) {
                        return Some((base + p, self.eol_run(base + p)));
                    }
                }
                EolStyle::Crlf | EolStyle::CrlfStrict => {
                    for p in memchr_iter(b'\n', s) {
                        let q = base + p;
                        let cr = q > floor
                            && if p > 0 {
                                s[p - 1] == b'\r'
                            } else {
                                self.byte_at(q - 1) == Some(b'\r')
                            };
                        if cr {
                            return Some((q - 1, 2));
                        }
                        if style == EolStyle::Crlf {
                            return Some((q, 1));
                        }
                    }
                }
            }
            base += s.len();
        }
        None
    }

    /// The first end of line at or after `start` (the beginning if `None`) and the length of its marker
    /// (libevent's `evbuffer_search_eol`).
    pub fn search_eol(
        &self,
        start: Option<&EvbufferPtr>,
        style: EolStyle,
    ) -> Result<Option<(EvbufferPtr, usize)>> {
        let from = match start {
            Some(p) => {
                self.resolve(p)?;
                p.pos
            }
            None => 0,
        };
        self.load_range(from, self.len - from)?;
        Ok(self
            .find_eol(from, from, style)
            .map(|(p, n)| (self.make_ptr(p, self.locate(p)), n)))
    }

    /// Takes one line off the front (libevent's `evbuffer_readln`): returns the line without its end of
    /// line, and how many bytes were consumed (line plus marker). `None` if no complete line is
    /// buffered; the bytes already scanned are then not scanned again by the next call.
    pub fn readln(&mut self, style: EolStyle) -> Result<Option<(Vec<u8>, usize)>> {
        let Some((p, eol)) = self.next_line(style)? else {
            return Ok(None);
        };
        let mut line = Vec::with_capacity(p);
        self.take_line(p, eol, &mut line);
        Ok(Some((line, p + eol)))
    }

    /// Like [`readln`](Self::readln), but copies the line into `out` (cleared first) so a caller that
    /// reuses `out` does not allocate per line. Returns the number of bytes consumed.
    pub fn readln_into(&mut self, style: EolStyle, out: &mut Vec<u8>) -> Result<Option<usize>> {
        let Some((p, eol)) = self.next_line(style)? else {
            return Ok(None);
        };
        out.clear();
        self.take_line(p, eol, out);
        Ok(Some(p + eol))
    }

    /// Finds the first complete line: `(line length, marker length)`. Remembers how far it scanned
    /// when there is none.
    fn next_line(&mut self, style: EolStyle) -> Result<Option<(usize, usize)>> {
        self.check_start()?;
        self.load_range(0, self.len)?;
        let from = if self.eol_style == style {
            self.eol_pos.min(self.len)
        } else {
            0
        };
        let found = self.find_eol(from, 0, style);
        self.eol_style = style;
        self.eol_pos = if found.is_some() { 0 } else { self.len };
        Ok(found)
    }

    /// Appends the first `p` bytes to `out` and drains them with the `eol` marker after them.
    fn take_line(&mut self, p: usize, eol: usize, out: &mut Vec<u8>) {
        match self.chunks.front() {
            // Common case: the line lies in the first chunk.
            Some(c) if c.len() >= p => out.extend_from_slice(c.data().get(..p).unwrap_or(&[])),
            _ => {
                out.reserve(p);
                for s in self.segments(0, 0, p) {
                    out.extend_from_slice(s);
                }
            }
        }
        let orig = self.len;
        self.drain_raw(p + eol);
        self.finish_remove(orig, p + eol);
        self.eol_pos = 0;
    }
}
