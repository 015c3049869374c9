//! Reading from and writing to file descriptors, and file segments.

use std::cell::OnceCell;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::chunk::{Chunk, FileSeg, Store, MAX_CHUNK};
use super::Evbuffer;
use crate::error::{Error, Result};
use crate::sys::io_ops;

/// Largest single `read` the buffer offers the kernel when the caller sets no smaller limit.
const MAX_READ: usize = 2 * MAX_CHUNK;
/// Bytes an edge-triggered reader offers beyond the tail's free space (`read_offered`).
const PROBE: usize = 512;
/// The tail's free space from which the probe is offered. The probe costs ~90 instructions a read
/// (callgrind, 64-byte echo); going without costs a read that finds nothing when a message fills
/// the tail exactly. That is the rule for messages the size of a whole chunk (16 KiB into 16 KiB)
/// and rare when small messages share a smaller tail.
const PROBE_FROM: usize = 8 * 1024;
/// Bytes read per step when a file segment cannot be sent with `sendfile`.
const FILE_COPY_STEP: usize = 64 * 1024;

impl Evbuffer {
    /// Reads up to `max` bytes from `fd` straight into the buffer's tail (libevent's `evbuffer_read`)
    /// and returns how many; 0 means end of file (or `max == 0`).
    ///
    /// One `readv` over the tail chunk's free space and, if that is short, a second chunk; there is no
    /// extra syscall to ask how much is readable. Pass `usize::MAX` to let the buffer choose: it offers
    /// more each time a read into a new chunk fills what it offered (up to 512 KiB), so a bulk
    /// transfer needs few calls.
    /// A non-blocking fd with nothing to read gives [`Error::Io`] of kind `WouldBlock`.
    pub fn read(&mut self, fd: impl AsFd, max: usize) -> Result<usize> {
        self.read_offered(fd, max, false).map(|(n, _)| n)
    }

    /// [`read`](Self::read), also returning how many bytes the kernel was offered: a read that fills
    /// its offer may have left more behind, which an edge-triggered reader must fetch by itself.
    ///
    /// `probe`: where the tail alone would be offered and has at least [`PROBE_FROM`] bytes of
    /// room, offer [`PROBE`] bytes more (on the stack, copied into a chunk only if they arrive), so
    /// that a message that fills the tail exactly (an echo of 16 KiB into a 16 KiB chunk) is known
    /// to be all there was, without a read that finds nothing.
    pub(crate) fn read_offered(
        &mut self,
        fd: impl AsFd,
        max: usize,
        probe: bool,
    ) -> Result<(usize, usize)> {
        self.check_end()?;
        let want = max.min(MAX_READ);
        if want == 0 {
            return Ok((0, 0));
        }
        self.grow_len(want)?;
        // The tail has room for all the buffer would offer (the usual case once a connection has a
        // chunk): one plain read into it, no second chunk to set up.
        if let Some(last) = self.chunks.back_mut() {
            let free = last.space();
            if free > 0 && free >= want.min(self.read_hint) {
                let len = free.min(want);
                let extra = if probe && len >= PROBE_FROM {
                    PROBE.min(want - len)
                } else {
                    0
                };
                if extra > 0 {
                    let mut spill = [MaybeUninit::<u8>::uninit(); PROBE];
                    let (n, spilled) = io_ops::read_spilling(
                        fd.as_fd().as_raw_fd(),
                        &mut last.space_mut()[..len],
                        &mut spill[..extra],
                    )?;
                    last.end += n.min(len);
                    if !spilled.is_empty() {
                        self.keep_spilled(spilled)?;
                    }
                    if n > 0 {
                        self.grew(n);
                    }
                    return Ok((n, len + extra));
                }
                let n = io_ops::read(fd.as_fd().as_raw_fd(), &mut last.space_mut()[..len])?;
                last.end += n;
                // No growth of the hint here: a read that fills the tail exactly is as often a
                // message the size of its chunk (an echo of 16 KiB into a 16 KiB chunk) as the
                // start of a stream, and a stream grows the hint anyway at its next read, which
                // finds the tail full and offers a new chunk. Growing it here sent every later
                // 16 KiB read the long way (a second chunk taken and given back, `readv`).
                if n > 0 {
                    self.grew(n);
                }
                return Ok((n, len));
            }
        }
        let free = self.chunks.back().map_or(0, Chunk::space);
        let first_len = free.min(want);
        let mut second = if free < want && free < self.read_hint {
            Some(Chunk::mem(
                self.take_mem((want - free).min(self.read_hint))?,
            ))
        } else {
            None
        };
        let second_len = second
            .as_ref()
            .map_or(0, |c| c.capacity().min(want - first_len));
        let res = {
            let mut empty: [u8; 0] = [];
            let tail: &mut [u8] = match self.chunks.back_mut() {
                Some(last) => &mut last.space_mut()[..first_len],
                None => &mut empty,
            };
            let mut empty2: [u8; 0] = [];
            let next: &mut [u8] = match second.as_mut() {
                Some(c) => &mut c.space_mut()[..second_len],
                None => &mut empty2,
            };
            let mut iov = [IoSliceMut::new(tail), IoSliceMut::new(next)];
            let cnt = if second_len > 0 { 2 } else { 1 };
            io_ops::readv(fd.as_fd().as_raw_fd(), &mut iov[..cnt])
        };
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                if let Some(c) = second {
                    self.recycle(c);
                }
                return Err(e.into());
            }
        };
        let into_tail = n.min(first_len);
        if let Some(last) = self.chunks.back_mut() {
            last.end += into_tail;
        }
        if let Some(mut c) = second {
            if n > into_tail {
                c.end = n - into_tail;
                self.push_chunk(c);
            } else {
                self.recycle(c);
            }
        }
        if n == first_len + second_len {
            self.read_hint = (self.read_hint * 2).min(MAX_CHUNK);
        }
        if n > 0 {
            self.grew(n);
        }
        Ok((n, first_len + second_len))
    }

    /// Appends what a probing read put on the stack past the tail, in a chunk of its own (the
    /// caller counts it with the rest of the read).
    #[cold]
    fn keep_spilled(&mut self, spilled: &[u8]) -> Result<()> {
        let mut c = Chunk::mem(self.take_mem(spilled.len())?);
        c.space_mut()[..spilled.len()].copy_from_slice(spilled);
        c.end = spilled.len();
        self.push_chunk(c);
        Ok(())
    }

    /// Writes as much of the buffer as `fd` takes and drains it (libevent's `evbuffer_write`).
    pub fn write(&mut self, fd: impl AsFd) -> Result<usize> {
        self.write_atmost(fd, usize::MAX)
    }

    /// Writes up to `n` bytes from the front to `fd` and drains what was written (libevent's
    /// `evbuffer_write_atmost`). Returns the count; a full non-blocking fd gives [`Error::Io`] of kind
    /// `WouldBlock`.
    ///
    /// In-memory chunks go out in one `writev`. A file segment at the front goes with `sendfile`; if the
    /// destination does not support that, it is read and copied in steps of 64 KiB.
    pub fn write_atmost(&mut self, fd: impl AsFd, n: usize) -> Result<usize> {
        self.check_start()?;
        let n = n.min(self.len);
        if n == 0 {
            return Ok(0);
        }
        let out = fd.as_fd().as_raw_fd();
        let single = self.chunks.len() == 1;
        let written = match self.chunks.front_mut() {
            // One chunk holds it all (the usual reply): one plain `write`, no iovec to build, and
            // the chunk's bookkeeping done here.
            Some(c) if c.is_mem() && c.len() >= n => {
                let k = io_ops::write(out, &c.data()[..n])?;
                let orig = self.len;
                if k == orig && single {
                    // Everything went (an echo's write): the chunk is kept, reset for reuse.
                    c.start = 0;
                    c.end = 0;
                    self.len = 0;
                    self.eol_pos = 0;
                    self.touched();
                    self.changed(orig, 0, k);
                } else if k > 0 {
                    self.drain_raw(k);
                    self.finish_remove(orig, k);
                }
                return Ok(k);
            }
            Some(c) if !c.in_memory() => send_file_chunk(out, c, n)?,
            _ => {
                let mut iov: [IoSlice<'_>; io_ops::MAX_IOV] = [IoSlice::new(&[]); io_ops::MAX_IOV];
                let mut cnt = 0;
                let mut total = 0;
                for c in &self.chunks {
                    if cnt == io_ops::MAX_IOV || total == n || !c.in_memory() {
                        break;
                    }
                    let d = c.data();
                    if d.is_empty() {
                        continue;
                    }
                    let k = d.len().min(n - total);
                    iov[cnt] = IoSlice::new(&d[..k]);
                    cnt += 1;
                    total += k;
                }
                io_ops::writev(out, &iov[..cnt])?
            }
        };
        if written > 0 {
            let orig = self.len;
            self.drain_raw(written);
            self.finish_remove(orig, written);
        }
        Ok(written)
    }

    /// Appends `len` bytes of the file `fd` starting at `offset` (libevent's `evbuffer_add_file`); `None`
    /// means to the end of the file. The buffer takes ownership of `fd` and closes it when the segment
    /// is gone.
    ///
    /// The bytes are not read now: [`write`](Self::write) sends them with `sendfile` (to sockets and any
    /// other fd Linux's `sendfile` accepts; otherwise it reads and copies). An operation that looks at
    /// the contents (peek, search, copy, readln, pullup) reads the segment into memory first, with
    /// `pread`; an I/O error there is returned by that operation.
    pub fn add_file(&mut self, fd: OwnedFd, offset: u64, len: Option<u64>) -> Result<()> {
        self.check_end()?;
        let file = File::from(fd);
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument("add_file needs a regular file"));
        }
        let size = meta.len();
        let len = match len {
            Some(l) => l,
            None => size.checked_sub(offset).ok_or(Error::InvalidArgument(
                "file offset past the end of the file",
            ))?,
        };
        let end = offset
            .checked_add(len)
            .ok_or(Error::InvalidArgument("file segment size overflows"))?;
        if end > size {
            return Err(Error::InvalidArgument(
                "file segment past the end of the file",
            ));
        }
        let n =
            usize::try_from(len).map_err(|_| Error::InvalidArgument("file segment too large"))?;
        self.grow_len(n)?;
        if n == 0 {
            return Ok(());
        }
        self.push_chunk(Chunk {
            store: Store::File(FileSeg {
                file: Arc::new(file),
                offset,
                loaded: OnceCell::new(),
            }),
            start: 0,
            end: n,
        });
        self.grew(n);
        Ok(())
    }
}

/// Sends up to `n` bytes of the file segment `c` to `out`.
fn send_file_chunk(out: i32, c: &Chunk, n: usize) -> Result<usize> {
    let Store::File(f) = &c.store else {
        return Ok(0);
    };
    let count = c.len().min(n);
    let off = f
        .offset
        .checked_add(c.start as u64)
        .ok_or(Error::InvalidArgument("file offset overflows"))?;
    match io_ops::sendfile(out, f.file.as_raw_fd(), off, count) {
        Ok(0) => Err(Error::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file segment shorter than when it was added",
        ))),
        Ok(k) => Ok(k),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
            // The destination does not take sendfile: read a step and write it.
            let mut tmp = vec![0u8; count.min(FILE_COPY_STEP)];
            f.file.read_exact_at(&mut tmp, off)?;
            Ok(io_ops::writev(out, &[IoSlice::new(&tmp)])?)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// A read that fills the tail exactly (a message the size of its chunk) leaves the read hint
    /// alone, so the next such read is one plain `read` again; a read into a new chunk that fills
    /// what it offered (a stream) still grows it.
    #[test]
    fn the_hint_grows_with_streams_not_with_a_tail_filled_exactly() {
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let mut b = Evbuffer::new();
        let hint = b.read_hint;
        let mem = vec![0u8; hint].into_boxed_slice();
        b.push_chunk(Chunk::mem(mem));
        tx.write_all(&vec![1u8; hint]).unwrap();
        assert_eq!(b.read(&rx, usize::MAX).unwrap(), hint);
        assert_eq!(b.read_hint, hint, "a tail filled exactly");
        // The tail is full now: the next read offers a new chunk of `hint` bytes and fills it.
        tx.write_all(&vec![2u8; 2 * hint]).unwrap();
        assert_eq!(b.read(&rx, usize::MAX).unwrap(), hint);
        assert_eq!(b.read_hint, 2 * hint, "a new chunk filled: a stream");
        assert_eq!(b.len(), 2 * hint);
    }

    /// With `probe`, a tail filled exactly by all there was reads short of the offer (an
    /// edge-triggered reader then knows it is done); bytes beyond the tail land in order, and a
    /// read that fills tail and probe says so.
    #[test]
    fn a_probing_read_offers_more_than_the_tail_and_keeps_the_order() {
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let tail = PROBE_FROM * 2;
        let mut b = Evbuffer::new();
        b.push_chunk(Chunk::mem(vec![0u8; tail].into_boxed_slice()));
        tx.write_all(&vec![1u8; tail]).unwrap();
        assert_eq!(
            b.read_offered(&rx, usize::MAX, true).unwrap(),
            (tail, tail + PROBE)
        );
        b.drain(tail).unwrap();

        let data: Vec<u8> = (0..tail + 100).map(|i| (i % 251) as u8).collect();
        b.push_chunk(Chunk::mem(vec![0u8; tail].into_boxed_slice()));
        tx.write_all(&data).unwrap();
        assert_eq!(
            b.read_offered(&rx, usize::MAX, true).unwrap(),
            (tail + 100, tail + PROBE)
        );
        let mut got = vec![0u8; b.len()];
        b.copyout(&mut got).unwrap();
        assert_eq!(got, data, "the probe's bytes follow the tail's");
        b.drain(b.len()).unwrap();

        b.push_chunk(Chunk::mem(vec![0u8; tail].into_boxed_slice()));
        tx.write_all(&vec![3u8; tail + PROBE + 7]).unwrap();
        assert_eq!(
            b.read_offered(&rx, 2 * tail, true).unwrap(),
            (tail + PROBE, tail + PROBE),
            "a full offer: there may be more"
        );
        assert_eq!(
            b.read_offered(&rx, 10, true).unwrap(),
            (7, 10),
            "a limit under the tail's room: no probe"
        );
        assert_eq!(b.len(), tail + PROBE + 7);

        let mut b = Evbuffer::new();
        b.push_chunk(Chunk::mem(vec![0u8; 4096].into_boxed_slice()));
        tx.write_all(&[4u8; 100]).unwrap();
        assert_eq!(
            b.read_offered(&rx, usize::MAX, true).unwrap(),
            (100, 4096),
            "a tail under PROBE_FROM: no probe"
        );
    }
}
