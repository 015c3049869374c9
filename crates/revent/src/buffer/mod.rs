//! `Evbuffer`: libevent's chained byte buffer.
//!
//! An [`Evbuffer`] is a queue of bytes stored as a chain of chunks. Bytes are added at the end and
//! taken from the front. Moving data between buffers ([`Evbuffer::add_buffer`],
//! [`Evbuffer::remove_buffer`], [`Evbuffer::prepend_buffer`]) moves whole chunks without copying their
//! bytes; reads from a file descriptor go straight into free space at the tail ([`Evbuffer::read`]);
//! writes gather the leading chunks into one `writev` ([`Evbuffer::write`]).
//!
//! ```
//! use revent::buffer::{Evbuffer, EolStyle};
//!
//! let mut buf = Evbuffer::new();
//! buf.add(b"GET / HTTP/1.1\r\nHost: example\r\n").unwrap();
//! let (line, consumed) = buf.readln(EolStyle::CrlfStrict).unwrap().unwrap();
//! assert_eq!(line, b"GET / HTTP/1.1");
//! assert_eq!(consumed, 16);
//! assert_eq!(buf.len(), 15);
//! ```
//!
//! Differences from libevent worth knowing:
//! - change callbacks ([`Evbuffer::add_cb`]) run once the operation is done with the buffer and
//!   receive it, so they may read or change it;
//! - positions ([`EvbufferPtr`]) are checked: one that no longer fits the buffer is an error.

mod callbacks;
mod chunk;
mod io;
mod pool;
mod search;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::sys::uring::{SharedMem, SharedRange};
use callbacks::{Callbacks, Watch};
use chunk::{alloc_zeroed, Chunk, RefHolder, Store, MAX_CHUNK, MIN_CHUNK};

pub use callbacks::{CallbackId, CallbackInfo, ChangeCb};
pub use search::{EolStyle, EvbufferPtr, Peek, PtrHow};

/// Which end of a buffer [`Evbuffer::freeze`] acts on.
///
/// ```
/// use revent::buffer::{BufferEnd, Evbuffer};
/// let mut buf = Evbuffer::new();
/// buf.freeze(BufferEnd::End);
/// assert!(buf.add(b"x").is_err());
/// buf.unfreeze(BufferEnd::End);
/// assert!(buf.add(b"x").is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferEnd {
    /// The front: draining, removing, reading lines, writing to an fd, prepending.
    Start,
    /// The back: adding, reading from an fd, reserving and committing space.
    End,
}

const OVERFLOW: Error = Error::InvalidArgument("buffer size would overflow");

/// Gives each buffer an id so that a position from one buffer is never taken for another's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A chained byte buffer (libevent's `struct evbuffer`).
///
/// Every operation that can fail returns [`Error`]: sizes that would overflow, positions past the end,
/// an operation on a frozen end, or an I/O error. None of them panics on bad input.
///
/// ```
/// use revent::buffer::Evbuffer;
/// let (mut a, mut b) = (Evbuffer::new(), Evbuffer::new());
/// a.add(b"moved, ").unwrap();
/// write!(a, "not copied").unwrap();
/// b.add_buffer(&mut a).unwrap();
/// assert!(a.is_empty());
/// assert_eq!(b.pullup_all().unwrap(), b"moved, not copied");
/// # use std::fmt::Write as _;
/// ```
// The layout is fixed (`repr(C)`, cache-line aligned) so that what every read, write and move
// touches sits in the first two cache lines: with a thousand connections, a connection's state is no
// longer in the L1 cache when its next message comes, and each line it touches is a miss (see the
// `hot_fields_share_two_cache_lines` test).
#[repr(C, align(64))]
pub struct Evbuffer {
    // ---- first cache line ----
    /// Invariant: every chunk except the last holds at least one byte. The last may be an empty chunk of
    /// owned memory, kept for its free space.
    chunks: VecDeque<Chunk>,
    len: usize,
    /// Bumped by every change, so cached chunk positions in an `EvbufferPtr` are trusted only while
    /// nothing has changed.
    gen: u64,
    /// Number of file-segment chunks, so the common case skips looking for them.
    file_chunks: usize,
    /// How much a `read` offers the kernel when the tail is short; doubles each time a read into a
    /// new chunk fills what it offered.
    read_hint: usize,
    // ---- second cache line ----
    /// `readln` resumes scanning here: no end of line of style `eol_style` starts before `eol_pos`.
    eol_pos: usize,
    /// The owner (a bufferevent) hears of changes made through any path.
    watch: Option<Watch>,
    frozen_start: bool,
    frozen_end: bool,
    /// Set by `reserve_space`, cleared by any other change: `commit_space` needs an unbroken reservation.
    reserved: bool,
    eol_style: EolStyle,
    /// Its first field (the callback list, whose length every change checks) ends the second line.
    cbs: Callbacks,
    // ---- the rest ----
    /// One drained chunk kept for reuse, so steady add/drain traffic does not allocate.
    spare: Option<Box<[u8]>>,
    /// Size of the next chunk to allocate; doubles with each allocation up to `MAX_CHUNK`.
    next_size: usize,
    id: u64,
}

impl Drop for Evbuffer {
    fn drop(&mut self) {
        // A closing connection's memory serves the next one.
        if let Some(s) = self.spare.take() {
            pool::give(s);
        }
        for c in self.chunks.drain(..) {
            if let Store::Mem(b) = c.store {
                pool::give(b);
            }
        }
    }
}

impl Default for Evbuffer {
    fn default() -> Self {
        Evbuffer::new()
    }
}

impl fmt::Debug for Evbuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evbuffer")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .field("frozen_start", &self.frozen_start)
            .field("frozen_end", &self.frozen_end)
            .finish()
    }
}

/// Memory for a chunk of `size` bytes, from the thread's pool when it has some, for memory that is
/// filled outside a buffer and then handed to one with `Evbuffer::add_mem`.
pub(crate) fn chunk_mem(size: usize) -> Result<Box<[u8]>> {
    match pool::take(size) {
        Some(b) => Ok(b),
        None => alloc_zeroed(size),
    }
}

impl Evbuffer {
    /// An empty buffer. Allocates nothing until bytes arrive.
    pub fn new() -> Evbuffer {
        Evbuffer {
            chunks: VecDeque::new(),
            len: 0,
            spare: None,
            next_size: MIN_CHUNK,
            read_hint: 4096,
            frozen_start: false,
            frozen_end: false,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            gen: 0,
            reserved: false,
            eol_pos: 0,
            eol_style: EolStyle::Lf,
            file_chunks: 0,
            cbs: Callbacks::default(),
            watch: None,
        }
    }

    /// Number of bytes stored.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of bytes stored contiguously in the first chunk (libevent's
    /// `evbuffer_get_contiguous_space`): what [`pullup`](Self::pullup) can return without copying.
    pub fn contiguous_space(&self) -> usize {
        self.chunks.front().map_or(0, Chunk::len)
    }

    /// Number of chunks in the chain (for tests and diagnostics).
    pub fn chunk_count(&self) -> usize {
        self.chunks.iter().filter(|c| c.len() > 0).count()
    }

    // ---- freezing ----

    /// Freezes one end: operations that would change it fail with [`Error::InvalidArgument`] until
    /// [`unfreeze`](Self::unfreeze). A bufferevent freezes its input's end and its output's start while
    /// it owns them.
    pub fn freeze(&mut self, end: BufferEnd) {
        match end {
            BufferEnd::Start => self.frozen_start = true,
            BufferEnd::End => self.frozen_end = true,
        }
    }

    /// Undoes [`freeze`](Self::freeze).
    pub fn unfreeze(&mut self, end: BufferEnd) {
        match end {
            BufferEnd::Start => self.frozen_start = false,
            BufferEnd::End => self.frozen_end = false,
        }
    }

    /// Whether `end` is frozen.
    pub fn is_frozen(&self, end: BufferEnd) -> bool {
        match end {
            BufferEnd::Start => self.frozen_start,
            BufferEnd::End => self.frozen_end,
        }
    }

    #[inline]
    fn check_start(&self) -> Result<()> {
        if self.frozen_start {
            return Err(Error::InvalidArgument("the buffer's start is frozen"));
        }
        Ok(())
    }

    #[inline]
    fn check_end(&self) -> Result<()> {
        if self.frozen_end {
            return Err(Error::InvalidArgument("the buffer's end is frozen"));
        }
        Ok(())
    }

    /// Records that the buffer changed: cached positions and reservations become invalid.
    #[inline]
    fn touched(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        self.reserved = false;
    }

    /// Tells the owner and the change callbacks, once the operation is done with the buffer. Inline
    /// fast path: a buffer with neither does nothing.
    #[inline]
    fn changed(&mut self, orig_size: usize, n_added: usize, n_deleted: usize) {
        if self.watch.is_some() || !self.cbs.is_empty() {
            self.changed_slow(orig_size, n_added, n_deleted);
        }
    }

    /// Bookkeeping after `n` bytes were appended (the caller checked the length with `grow_len`).
    #[inline]
    fn grew(&mut self, n: usize) {
        let orig = self.len;
        self.len = orig + n;
        self.touched();
        self.changed(orig, n, 0);
    }

    /// Bookkeeping after every chunk was moved out to another buffer.
    #[inline]
    fn emptied(&mut self) {
        let orig = self.len;
        self.len = 0;
        self.eol_pos = 0;
        self.touched();
        self.changed(orig, 0, orig);
    }

    #[inline]
    fn grow_len(&self, n: usize) -> Result<usize> {
        self.len.checked_add(n).ok_or(OVERFLOW)
    }

    // ---- chunk memory ----

    /// Owned memory of at least `min` bytes: the spare chunk if it is big enough, else pooled or new
    /// memory. A buffer that keeps growing gets chunks twice as large each time (fewer chunks for bulk
    /// data); an empty one gets what it asks for, so a small read does not take a huge chunk.
    fn take_mem(&mut self, min: usize) -> Result<Box<[u8]>> {
        if let Some(s) = self.spare.take() {
            if s.len() >= min {
                return Ok(s);
            }
            self.spare = Some(s);
        }
        let want = if self.len == 0 {
            self.next_size = MIN_CHUNK;
            min
        } else {
            let w = min.max(self.next_size);
            self.next_size = (self.next_size * 2).min(MAX_CHUNK);
            w
        };
        chunk_mem(pool::size_for(want))
    }

    /// Keeps a drained chunk's memory as the spare if it is the most useful one, else gives it to the
    /// thread's pool.
    fn recycle(&mut self, c: Chunk) {
        match c.store {
            Store::Mem(b) => {
                if b.len() <= MAX_CHUNK && self.spare.as_ref().map_or(true, |s| s.len() < b.len()) {
                    if let Some(old) = self.spare.replace(b) {
                        pool::give(old);
                    }
                } else {
                    pool::give(b);
                }
            }
            Store::File(_) => self.file_chunks -= 1,
            // Dropping the last share of a reference runs its cleanup.
            Store::Ref(_) => {}
        }
    }

    /// Appends a chunk, first dropping an empty tail chunk (the invariant allows empties only last).
    fn push_chunk(&mut self, c: Chunk) {
        if self.chunks.back().is_some_and(|l| l.len() == 0) {
            if let Some(empty) = self.chunks.pop_back() {
                self.recycle(empty);
            }
        }
        if matches!(c.store, Store::File(_)) {
            self.file_chunks += 1;
        }
        self.chunks.push_back(c);
    }

    /// Ensures the tail chunk is owned memory with at least `n` bytes of contiguous free space.
    fn ensure_tail_space(&mut self, n: usize) -> Result<()> {
        if let Some(last) = self.chunks.back_mut() {
            if last.space() >= n {
                return Ok(());
            }
            if last.len() == 0 && last.is_mem() && last.start > 0 && last.capacity() >= n {
                last.start = 0;
                last.end = 0;
                return Ok(());
            }
        }
        let mem = self.take_mem(n)?;
        self.push_chunk(Chunk::mem(mem));
        Ok(())
    }

    // ---- adding ----

    /// Copies `data` to the end of the buffer.
    ///
    /// Small appends fill the tail chunk's free space; a new chunk is allocated only when it is full, and
    /// chunk sizes grow with use (1 KiB doubling to 256 KiB), so a stream of small adds does not allocate
    /// per call.
    #[inline]
    pub fn add(&mut self, data: &[u8]) -> Result<()> {
        // Fast path: the bytes fit in the tail chunk's free space.
        if !self.frozen_end {
            if let Some(new_len) = self.len.checked_add(data.len()) {
                if let Some(Chunk {
                    store: Store::Mem(b),
                    end,
                    ..
                }) = self.chunks.back_mut()
                {
                    if let Some(dst) = b.get_mut(*end..).and_then(|t| t.get_mut(..data.len())) {
                        dst.copy_from_slice(data);
                        *end += data.len();
                        let orig = self.len;
                        self.len = new_len;
                        self.touched();
                        self.changed(orig, data.len(), 0);
                        return Ok(());
                    }
                }
            }
        }
        self.add_slow(data)
    }

    /// Appends `mem[..len]` as a new last chunk, without copying: memory filled outside the buffer
    /// (an io_uring receive's buffer) becomes part of it. Fails without change (the memory goes to
    /// the thread's pool) if the end is frozen.
    pub(crate) fn add_mem(&mut self, mem: Box<[u8]>, len: usize) -> Result<()> {
        let len = len.min(mem.len());
        if let Err(e) = self.check_end().and_then(|_| self.grow_len(len)) {
            pool::give(mem);
            return Err(e);
        }
        if len == 0 {
            pool::give(mem);
            return Ok(());
        }
        self.push_chunk(Chunk {
            store: Store::Mem(mem),
            start: 0,
            end: len,
        });
        self.grew(len);
        Ok(())
    }

    #[inline(never)]
    fn add_slow(&mut self, data: &[u8]) -> Result<()> {
        self.check_end()?;
        if data.is_empty() {
            return Ok(());
        }
        let orig = self.len;
        self.append_raw(data)?;
        self.touched();
        self.changed(orig, data.len(), 0);
        Ok(())
    }

    /// Appends without checks or notification; fails without change if memory cannot be had.
    fn append_raw(&mut self, data: &[u8]) -> Result<()> {
        let new_len = self.grow_len(data.len())?;
        let space = self.chunks.back().map_or(0, Chunk::space);
        if space >= data.len() {
            if let Some(last) = self.chunks.back_mut() {
                last.append_from(data);
            }
        } else {
            // Allocate before copying anything so that a failure leaves the buffer unchanged.
            let mut c = Chunk::mem(self.take_mem(data.len() - space)?);
            let mut rest = data;
            if let Some(last) = self.chunks.back_mut() {
                let n = last.append_from(rest);
                rest = &rest[n..];
            }
            c.append_from(rest);
            self.push_chunk(c);
        }
        self.len = new_len;
        Ok(())
    }

    /// Appends external memory without copying it (libevent's `evbuffer_add_reference`).
    ///
    /// The buffer keeps `data` until its last byte has been drained, written or the buffer is dropped,
    /// then calls `cleanup(data)` exactly once. If a move to another buffer splits the bytes, both
    /// buffers share `data` and the cleanup runs when the second lets go.
    ///
    /// `data.as_ref()` must return the same bytes every time it is called (true of `Vec`, `Box<[u8]>`,
    /// `&'static [u8]`, `Arc<[u8]>`, `String`...). An implementation that breaks this gets
    /// unspecified bytes or an error from later calls, never a panic or undefined behaviour.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use revent::buffer::Evbuffer;
    ///
    /// let freed = Arc::new(AtomicUsize::new(0));
    /// let f = freed.clone();
    /// let mut buf = Evbuffer::new();
    /// buf.add_reference(vec![1u8, 2, 3], move |_v| { f.fetch_add(1, Ordering::SeqCst); }).unwrap();
    /// buf.drain(2).unwrap();
    /// assert_eq!(freed.load(Ordering::SeqCst), 0);
    /// buf.drain(1).unwrap();
    /// assert_eq!(freed.load(Ordering::SeqCst), 1);
    /// ```
    pub fn add_reference<T, F>(&mut self, data: T, cleanup: F) -> Result<()>
    where
        T: AsRef<[u8]> + Send + Sync + 'static,
        F: FnOnce(T) + Send + 'static,
    {
        let holder = RefHolder {
            data: Some(data),
            cleanup: Mutex::new(Some(cleanup)),
        };
        // On any error below `holder` drops here and the cleanup runs: the caller's memory is released
        // either way, exactly once.
        self.check_end()?;
        let n = holder.bytes_len();
        self.grow_len(n)?;
        if n == 0 {
            return Ok(());
        }
        self.push_chunk(Chunk {
            store: Store::Ref(Arc::new(holder)),
            start: 0,
            end: n,
        });
        self.grew(n);
        Ok(())
    }

    /// Copies `data` to the front of the buffer.
    pub fn prepend(&mut self, data: &[u8]) -> Result<()> {
        self.check_start()?;
        if data.is_empty() {
            return Ok(());
        }
        let new_len = self.grow_len(data.len())?;
        let orig = self.len;
        let k = data.len();
        let fits_front = self
            .chunks
            .front()
            .is_some_and(|f| f.is_mem() && f.start >= k);
        if fits_front {
            if let Some(Chunk {
                store: Store::Mem(b),
                start,
                ..
            }) = self.chunks.front_mut()
            {
                b[*start - k..*start].copy_from_slice(data);
                *start -= k;
            }
        } else if self.len == 0 {
            // Empty buffer: prepending is appending.
            self.append_raw(data)?;
        } else {
            // New chunk with the data at its end, leaving room for further prepends.
            let mem = self.take_mem(k)?;
            let cap = mem.len();
            let mut c = Chunk::mem(mem);
            if let Store::Mem(b) = &mut c.store {
                b[cap - k..].copy_from_slice(data);
            }
            c.start = cap - k;
            c.end = cap;
            self.chunks.push_front(c);
        }
        self.len = new_len;
        self.eol_pos = 0;
        self.touched();
        self.changed(orig, k, 0);
        Ok(())
    }

    /// Appends formatted text (libevent's `evbuffer_add_printf`) and returns how many bytes it added.
    ///
    /// ```
    /// use revent::buffer::Evbuffer;
    /// let mut buf = Evbuffer::new();
    /// let n = buf.add_fmt(format_args!("{}-{:04}", "id", 7)).unwrap();
    /// assert_eq!(n, 7);
    /// assert_eq!(buf.pullup_all().unwrap(), b"id-0007");
    /// ```
    ///
    /// `Evbuffer` also implements [`std::fmt::Write`], so `write!(buf, ...)` works; that form reports a
    /// frozen end only as [`std::fmt::Error`].
    pub fn add_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<usize> {
        self.check_end()?;
        struct Sink<'a> {
            buf: &'a mut Evbuffer,
            err: Option<Error>,
        }
        impl fmt::Write for Sink<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.buf.append_raw(s.as_bytes()).map_err(|e| {
                    self.err = Some(e);
                    fmt::Error
                })
            }
        }
        let orig = self.len;
        let mut sink = Sink {
            buf: self,
            err: None,
        };
        let res = fmt::write(&mut sink, args);
        let err = sink.err.take();
        let added = self.len - orig;
        if added > 0 {
            self.touched();
            self.changed(orig, added, 0);
        }
        match (res, err) {
            (_, Some(e)) => Err(e),
            (Err(_), None) => Err(Error::InvalidArgument(
                "a formatting trait returned an error",
            )),
            (Ok(()), None) => Ok(added),
        }
    }

    // ---- moving chunks between buffers ----

    /// Moves all of `src`'s bytes to the end of `self` (libevent's `evbuffer_add_buffer`). Whole chunks
    /// change hands; no byte is copied.
    #[inline]
    pub fn add_buffer(&mut self, src: &mut Evbuffer) -> Result<()> {
        self.check_end()?;
        src.check_start()?;
        let n = src.len;
        if n == 0 {
            return Ok(());
        }
        self.grow_len(n)?;
        if self.len == 0
            && self.file_chunks == 0
            && src.file_chunks == 0
            && self.chunks.len() <= 1
            && self.chunks.back().map_or(true, Chunk::is_mem)
        {
            // We hold at most one empty chunk of memory (what a write that drained us leaves): the
            // two chunk lists change hands whole, and `src` gets our chunk for its next read. An
            // echo's memory then goes back and forth between its two buffers for a few instructions.
            std::mem::swap(&mut self.chunks, &mut src.chunks);
            if let Some(c) = src.chunks.back_mut() {
                c.start = 0;
                c.end = 0;
            }
            src.emptied();
            self.grew(n);
            return Ok(());
        }
        // An empty tail chunk of ours (what a write that drained us leaves) goes to `src`, which is
        // about to be empty and will want memory for its next read: an echo's memory then changes
        // hands between its two buffers without going through the pool.
        let empty_tail = match self.chunks.back() {
            Some(l) if l.len() == 0 && l.is_mem() => self.chunks.pop_back(),
            _ => None,
        };
        while let Some(c) = src.chunks.pop_front() {
            if c.len() == 0 {
                src.recycle(c);
                continue;
            }
            if matches!(c.store, Store::File(_)) {
                src.file_chunks -= 1;
            }
            self.push_chunk(c);
        }
        src.emptied();
        if let Some(e) = empty_tail {
            src.recycle(e);
        }
        self.grew(n);
        Ok(())
    }

    /// Moves all of `src`'s bytes to the front of `self` (libevent's `evbuffer_prepend_buffer`), moving
    /// whole chunks.
    pub fn prepend_buffer(&mut self, src: &mut Evbuffer) -> Result<()> {
        self.check_start()?;
        src.check_start()?;
        let n = src.len;
        if n == 0 {
            return Ok(());
        }
        self.grow_len(n)?;
        if self.len == 0 {
            // Only an empty tail chunk can be here: let it go so the moved chunks keep the invariant.
            while let Some(c) = self.chunks.pop_back() {
                self.recycle(c);
            }
        }
        while let Some(c) = src.chunks.pop_back() {
            if c.len() == 0 {
                src.recycle(c);
                continue;
            }
            if matches!(c.store, Store::File(_)) {
                src.file_chunks -= 1;
                self.file_chunks += 1;
            }
            self.chunks.push_front(c);
        }
        src.emptied();
        self.eol_pos = 0;
        self.grew(n);
        Ok(())
    }

    /// Moves up to `n` bytes from the front of `self` to the end of `dst` (libevent's
    /// `evbuffer_remove_buffer`) and returns how many moved. Whole chunks move without copying; of a
    /// chunk that is split, owned bytes are copied and references and file segments are shared.
    pub fn remove_buffer(&mut self, dst: &mut Evbuffer, n: usize) -> Result<usize> {
        self.check_start()?;
        dst.check_end()?;
        let n = n.min(self.len);
        if n == 0 {
            return Ok(0);
        }
        let dst_len = dst.grow_len(n)?;
        let orig = self.len;
        let dst_orig = dst.len;
        let mut left = n;
        while left > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let clen = front.len();
            if clen <= left {
                if let Some(c) = self.chunks.pop_front() {
                    left -= clen;
                    if clen == 0 {
                        self.recycle(c);
                    } else {
                        if matches!(c.store, Store::File(_)) {
                            self.file_chunks -= 1;
                        }
                        dst.push_chunk(c);
                    }
                }
            } else if let Some(part) = front.split_front_shared(left) {
                dst.push_chunk(part);
                left = 0;
            } else {
                // Owned memory: copy the part. Allocation failure here leaves both buffers consistent
                // (what moved so far is accounted below).
                // Only owned memory gets here, and its data() is always exactly len() bytes.
                let bytes = &front.data()[..left];
                let copied = dst_copy(dst, bytes);
                match copied {
                    Ok(()) => {
                        if let Some(front) = self.chunks.front_mut() {
                            front.start += left;
                        }
                        left = 0;
                    }
                    Err(e) => {
                        let moved = n - left;
                        self.finish_remove(orig, moved);
                        dst.len = dst_orig + moved;
                        dst.touched();
                        dst.changed(dst_orig, moved, 0);
                        return Err(e);
                    }
                }
            }
        }
        // `dst_copy` grew dst.len for the copied part; set it for the whole move in one place.
        dst.len = dst_len;
        dst.touched();
        dst.changed(dst_orig, n, 0);
        self.finish_remove(orig, n);
        Ok(n)
    }

    /// Bookkeeping after `n` bytes left the front.
    #[inline]
    fn finish_remove(&mut self, orig: usize, n: usize) {
        self.len -= n;
        if self.len == 0 {
            let single = self.chunks.len() == 1;
            match self.chunks.back_mut() {
                // The usual end of a write that drained everything: one memory chunk, kept.
                Some(c) if single && c.is_mem() => {
                    c.start = 0;
                    c.end = 0;
                }
                _ => self.normalize_front(),
            }
        }
        self.eol_pos = self.eol_pos.saturating_sub(n);
        self.touched();
        self.changed(orig, 0, n);
    }

    /// If the buffer became empty, keeps one owned chunk reset to its start for reuse and drops the rest.
    #[cold]
    fn normalize_front(&mut self) {
        if self.len == 0 {
            while self.chunks.len() > 1 {
                if let Some(c) = self.chunks.pop_front() {
                    self.recycle(c);
                }
            }
            match self.chunks.back_mut() {
                Some(c) if c.is_mem() => {
                    c.start = 0;
                    c.end = 0;
                }
                Some(_) => {
                    if let Some(c) = self.chunks.pop_back() {
                        self.recycle(c);
                    }
                }
                None => {}
            }
        }
    }

    // ---- taking bytes out ----

    /// Discards up to `n` bytes from the front and returns how many went (libevent drains everything
    /// when asked for more than there is; so does this).
    #[inline]
    pub fn drain(&mut self, n: usize) -> Result<usize> {
        self.check_start()?;
        let n = n.min(self.len);
        if n == 0 {
            return Ok(0);
        }
        let orig = self.len;
        self.drain_raw(n);
        self.finish_remove(orig, n);
        Ok(n)
    }

    /// Drops `n <= len` bytes from the front, recycling emptied chunks; `len` is left to the caller.
    #[inline]
    fn drain_raw(&mut self, n: usize) {
        // Fast path: the front chunk keeps some bytes.
        if let Some(front) = self.chunks.front_mut() {
            if n < front.len() {
                front.start += n;
                return;
            }
        }
        // Second fast path: everything goes and one memory chunk held it (an echo's write).
        if n == self.len && self.chunks.len() == 1 {
            if let Some(front) = self.chunks.front_mut().filter(|c| c.is_mem()) {
                front.start = 0;
                front.end = 0;
                return;
            }
        }
        self.drain_chunks(n);
    }

    #[inline(never)]
    fn drain_chunks(&mut self, n: usize) {
        let mut left = n;
        while left > 0 {
            let last = self.chunks.len() == 1;
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let clen = front.len();
            if left < clen {
                front.start += left;
                break;
            }
            left -= clen;
            if last && front.is_mem() {
                front.start = 0;
                front.end = 0;
                break;
            } else if let Some(c) = self.chunks.pop_front() {
                self.recycle(c);
            }
        }
    }

    /// Copies up to `out.len()` bytes from the front into `out` and drains them; returns the count.
    pub fn remove(&mut self, out: &mut [u8]) -> Result<usize> {
        self.check_start()?;
        let n = self.copy_at(0, out)?;
        if n > 0 {
            let orig = self.len;
            self.drain_raw(n);
            self.finish_remove(orig, n);
        }
        Ok(n)
    }

    /// Copies up to `out.len()` bytes from the front into `out` without draining; returns the count.
    pub fn copyout(&self, out: &mut [u8]) -> Result<usize> {
        self.copy_at(0, out)
    }

    /// Copies up to `out.len()` bytes starting at `pos` (libevent's `evbuffer_copyout_from`). A position
    /// at the end copies nothing; past the end is an error.
    pub fn copyout_from(&self, pos: &EvbufferPtr, out: &mut [u8]) -> Result<usize> {
        let (idx, off) = self.resolve(pos)?;
        let n = out.len().min(self.len - pos.position());
        self.load_range(pos.position(), n)?;
        let mut done = 0;
        for s in self.segments(idx, off, n) {
            out[done..done + s.len()].copy_from_slice(s);
            done += s.len();
        }
        Ok(done)
    }

    /// Shares up to `max` bytes of the first chunk, if it holds at least `min` and is the buffer's
    /// own memory (or already shared by this call): for an io_uring send, which reads them while they
    /// stay in the buffer. The chunk becomes read-only (later appends go to a new chunk); nothing
    /// else changes. `None` (the caller copies) for a caller's references, file segments, smaller
    /// chunks, and while space is reserved (a commit must still find the reserved space).
    #[inline]
    pub(crate) fn share_front(&mut self, min: usize, max: usize) -> Option<SharedRange> {
        if self.reserved {
            return None;
        }
        let c = self.chunks.front_mut()?;
        let n = c.len().min(max);
        if n < min.max(1) {
            return None;
        }
        let mem = match &mut c.store {
            Store::Mem(b) => {
                let shared = Arc::new(SharedMem::new(std::mem::take(b), pool::give));
                c.store = Store::Ref(shared.clone());
                shared
            }
            Store::Ref(r) => Arc::clone(r).shared()?,
            Store::File(_) => return None,
        };
        Some(SharedRange {
            mem,
            start: c.start,
            end: c.start + n,
        })
    }

    /// Appends a copy of the first `n` bytes (at most the length) to `out`, stopping before a later
    /// chunk that [`share_front`](Self::share_front) would share given `share_from`; returns how
    /// many. For a send on the ring (`bufferevent/ring.rs`): one pass over the chunks, no position
    /// lookups.
    pub(crate) fn copy_front_to(
        &self,
        out: &mut Vec<u8>,
        n: usize,
        share_from: usize,
    ) -> Result<usize> {
        let mut n = n.min(self.len);
        // A later chunk that would be shared goes in a send of its own, not copied into this one
        // (no later chunk matters when the first holds all: the common case, checked first).
        if self.chunks.front().is_some_and(|c| c.len() < n) {
            let mut before = 0;
            for (i, c) in self.chunks.iter().enumerate() {
                if before >= n {
                    break;
                }
                if i > 0 && c.len() >= share_from && c.shareable() {
                    n = before;
                    break;
                }
                before += c.len();
            }
        }
        self.load_range(0, n)?;
        out.reserve(n);
        let mut left = n;
        for c in &self.chunks {
            if left == 0 {
                break;
            }
            let d = c.data();
            let k = d.len().min(left);
            out.extend_from_slice(&d[..k]);
            left -= k;
        }
        Ok(n - left)
    }

    fn copy_at(&self, pos: usize, out: &mut [u8]) -> Result<usize> {
        let p = self.ptr_at(pos)?;
        self.copyout_from(&p, out)
    }

    /// Makes the first `n` bytes contiguous and returns them (libevent's `evbuffer_pullup`). Asking for
    /// more than the buffer holds is an error; [`pullup_all`](Self::pullup_all) is libevent's `-1`.
    ///
    /// Costs nothing when the first chunk already holds `n` bytes; otherwise copies the `n` bytes once,
    /// into the first chunk's free space if it has room, else into a new chunk.
    pub fn pullup(&mut self, n: usize) -> Result<&[u8]> {
        if n > self.len {
            return Err(Error::InvalidArgument("pullup past the end of the buffer"));
        }
        if n == 0 {
            return Ok(&[]);
        }
        self.load_range(0, n)?;
        let first_len = self.chunks.front().map_or(0, Chunk::len);
        if first_len < n {
            self.gather_front(n)?;
        }
        self.chunks
            .front()
            .and_then(|c| c.data().get(..n))
            .ok_or(Error::InvalidArgument("referenced data changed length"))
    }

    /// Makes the whole buffer contiguous and returns it.
    pub fn pullup_all(&mut self) -> Result<&[u8]> {
        self.pullup(self.len)
    }

    /// [`pullup`](Self::pullup), writable: for editing the first `n` bytes in place (libevent's
    /// programs write into what `evbuffer_pullup` returns, to patch a length prefix, say).
    ///
    /// A first chunk that is not this buffer's own memory (a caller's
    /// [reference](Self::add_reference), a file segment, memory an io_uring send shares) is copied
    /// first, so the edit changes this buffer only: never the caller's memory, nor bytes the kernel
    /// may be sending.
    ///
    /// ```
    /// use revent::buffer::Evbuffer;
    /// let mut buf = Evbuffer::new();
    /// buf.add(b"?? bytes follow").unwrap();
    /// buf.pullup_mut(2).unwrap().copy_from_slice(b"13");
    /// assert_eq!(buf.pullup_all().unwrap(), b"13 bytes follow");
    /// ```
    pub fn pullup_mut(&mut self, n: usize) -> Result<&mut [u8]> {
        self.pullup(n)?;
        if n == 0 {
            return Ok(&mut []);
        }
        if self.chunks.front().is_some_and(|c| !c.is_mem()) {
            // `pullup` left the `n` bytes in memory in the first chunk.
            let mut own = Chunk::mem(self.take_mem(n)?);
            let Some(front) = self.chunks.front_mut() else {
                return Err(Error::InvalidArgument("pullup past the end of the buffer"));
            };
            let copied = own.append_from(front.data().get(..n).unwrap_or(&[]));
            if copied != n {
                return Err(Error::InvalidArgument("referenced data changed length"));
            }
            front.start += n;
            if front.len() == 0 {
                if let Some(c) = self.chunks.pop_front() {
                    self.recycle(c);
                }
            }
            self.chunks.push_front(own);
            self.touched();
        }
        match self.chunks.front_mut() {
            Some(Chunk {
                store: Store::Mem(b),
                start,
                ..
            }) => Ok(&mut b[*start..*start + n]),
            _ => Err(Error::InvalidArgument("pullup past the end of the buffer")),
        }
    }

    /// Rearranges chunks so that the first holds at least `n` bytes (`first chunk len < n <= len`).
    fn gather_front(&mut self, n: usize) -> Result<()> {
        // A reference whose AsRef broke its contract may hold fewer bytes than its length says; refuse
        // before changing anything rather than lose bytes the length still counts.
        let mut covered = 0;
        for c in &self.chunks {
            if covered >= n {
                break;
            }
            if c.data().len() != c.len() {
                return Err(Error::InvalidArgument("referenced data changed length"));
            }
            covered += c.len();
        }
        let reuse_front = self
            .chunks
            .front()
            .is_some_and(|c| c.is_mem() && c.capacity() - c.start >= n);
        let mut head = if reuse_front {
            match self.chunks.pop_front() {
                Some(c) => c,
                None => return Ok(()),
            }
        } else {
            Chunk::mem(self.take_mem(n)?)
        };
        let mut need = n - head.len();
        if head.space() < need {
            // Room exists only before the data: slide it to the start.
            if let Store::Mem(b) = &mut head.store {
                b.copy_within(head.start..head.end, 0);
            }
            head.end -= head.start;
            head.start = 0;
        }
        while need > 0 {
            let Some(c) = self.chunks.front_mut() else {
                break;
            };
            let k = c.len().min(need);
            head.append_from(c.data().get(..k).unwrap_or(&[]));
            c.start += k;
            need -= k;
            if c.len() == 0 {
                if let Some(c) = self.chunks.pop_front() {
                    self.recycle(c);
                }
            }
        }
        self.chunks.push_front(head);
        self.touched();
        Ok(())
    }

    // ---- writing into the tail ----

    /// Makes room for at least `n` contiguous bytes at the tail without further allocation
    /// (libevent's `evbuffer_expand`).
    pub fn expand(&mut self, n: usize) -> Result<()> {
        self.grow_len(n)?;
        self.ensure_tail_space(n)?;
        self.touched();
        Ok(())
    }

    /// Returns writable free space at the tail, at least `n` bytes long, for
    /// [`commit_space`](Self::commit_space) to add (libevent's `evbuffer_reserve_space`).
    ///
    /// The slice is initialized memory with unspecified contents (zeros or old bytes): write into it,
    /// then commit how much you wrote. Any other change to the buffer cancels the reservation.
    ///
    /// ```
    /// use revent::buffer::Evbuffer;
    /// let mut buf = Evbuffer::new();
    /// let space = buf.reserve_space(5).unwrap();
    /// space[..5].copy_from_slice(b"hello");
    /// buf.commit_space(5).unwrap();
    /// assert_eq!(buf.pullup_all().unwrap(), b"hello");
    /// ```
    pub fn reserve_space(&mut self, n: usize) -> Result<&mut [u8]> {
        self.check_end()?;
        self.grow_len(n)?;
        self.ensure_tail_space(n.max(1))?;
        self.touched();
        self.reserved = true;
        match self.chunks.back_mut() {
            Some(last) => Ok(last.space_mut()),
            None => Ok(&mut []),
        }
    }

    /// Adds the first `n` bytes of the space returned by the last [`reserve_space`](Self::reserve_space).
    /// Fails if there was no reservation, something else changed the buffer since, or `n` is more than
    /// was reserved.
    pub fn commit_space(&mut self, n: usize) -> Result<()> {
        self.check_end()?;
        if !self.reserved {
            return Err(Error::InvalidArgument("commit_space without a reservation"));
        }
        let space = self.chunks.back().map_or(0, Chunk::space);
        if n > space {
            return Err(Error::InvalidArgument(
                "commit_space beyond the reserved space",
            ));
        }
        self.grow_len(n)?;
        if let Some(last) = self.chunks.back_mut() {
            last.end += n;
        }
        self.grew(n);
        Ok(())
    }

    /// Reserves at least `n` bytes, lets `fill` write into them and commits the count it returns: the
    /// safe one-call form of reserve + commit.
    ///
    /// ```
    /// use revent::buffer::Evbuffer;
    /// let mut buf = Evbuffer::new();
    /// buf.add_with(3, |space| { space[..3].copy_from_slice(b"abc"); 3 }).unwrap();
    /// assert_eq!(buf.len(), 3);
    /// ```
    pub fn add_with(&mut self, n: usize, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<usize> {
        let space = self.reserve_space(n)?;
        let written = fill(space);
        self.commit_space(written)?;
        Ok(written)
    }

    // ---- callbacks ----

    /// Registers a callback told about every change in size (libevent's `evbuffer_add_cb`).
    ///
    /// It runs once the operation that added or removed bytes is done with the buffer, and receives
    /// the buffer, so it may look at it (or change it: such changes are reported in a further round).
    /// In deferred mode it runs later instead; see [`set_deferred_callbacks`](Self::set_deferred_callbacks).
    ///
    /// ```
    /// use revent::buffer::Evbuffer;
    /// use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let mut buf = Evbuffer::new();
    /// buf.add_cb(move |buf, info| s.lock().unwrap().push((info.n_added, info.n_deleted, buf.len())));
    /// buf.add(b"hello").unwrap();
    /// buf.drain(2).unwrap();
    /// assert_eq!(*seen.lock().unwrap(), vec![(5, 0, 5), (0, 2, 3)]);
    /// ```
    pub fn add_cb(
        &mut self,
        cb: impl FnMut(&mut Evbuffer, &CallbackInfo) + Send + 'static,
    ) -> CallbackId {
        self.cbs.add(Box::new(cb))
    }

    /// Unregisters a callback. An id that is not registered is an error.
    pub fn remove_cb(&mut self, id: CallbackId) -> Result<()> {
        self.cbs.remove(id)
    }

    /// Enables or disables a callback without removing it.
    pub fn set_cb_enabled(&mut self, id: CallbackId, enabled: bool) -> Result<()> {
        self.cbs.set_enabled(id, enabled)
    }

    /// Defers callbacks (libevent's `evbuffer_defer_callbacks`): changes are summed and reported in one
    /// call per callback when the buffer's owner runs them. The buffers of a bufferevent made with
    /// [`BevOptions::DEFER_CALLBACKS`](crate::BevOptions::DEFER_CALLBACKS) are deferred this way and
    /// their callbacks run from the event loop; for a buffer of your own, you are the owner: call
    /// [`run_deferred_callbacks`](Self::run_deferred_callbacks) from the loop (an event of yours).
    pub fn set_deferred_callbacks(&mut self, deferred: bool) {
        self.cbs.set_deferred(deferred);
        if !deferred && self.cbs.has_pending() {
            self.deliver_callbacks();
        }
    }

    /// Whether changes wait for [`run_deferred_callbacks`](Self::run_deferred_callbacks).
    pub(crate) fn has_pending_callbacks(&self) -> bool {
        self.cbs.has_pending()
    }

    /// Delivers the changes summed in deferred mode. Does nothing if none are pending.
    pub fn run_deferred_callbacks(&mut self) {
        if self.cbs.has_pending() {
            self.deliver_callbacks();
        }
    }

    // ---- file segments ----

    /// Reads any file segments in `[pos, pos + n)` into memory (a no-op for buffers without them).
    #[inline]
    fn load_range(&self, pos: usize, n: usize) -> Result<()> {
        if self.file_chunks == 0 || n == 0 {
            return Ok(());
        }
        self.load_range_slow(pos, n)
    }

    #[inline(never)]
    fn load_range_slow(&self, pos: usize, n: usize) -> Result<()> {
        let end = pos.saturating_add(n);
        let mut at = 0usize;
        for c in &self.chunks {
            let next = at + c.len();
            if next > pos && at < end {
                c.load()?;
            }
            if next >= end {
                break;
            }
            at = next;
        }
        Ok(())
    }
}

impl<T, F> RefHolder<T, F>
where
    T: AsRef<[u8]> + Send + Sync,
    F: FnOnce(T) + Send,
{
    fn bytes_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.as_ref().len())
    }
}

/// Copies `bytes` onto `dst`'s end for `remove_buffer`; the caller accounts `len` and notifications.
fn dst_copy(dst: &mut Evbuffer, bytes: &[u8]) -> Result<()> {
    let len = dst.len;
    dst.append_raw(bytes)?;
    dst.len = len;
    Ok(())
}

impl fmt::Write for Evbuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.add(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

impl std::io::Write for Evbuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.add(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Read for Evbuffer {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(self.remove(buf)?)
    }
}

#[cfg(test)]
mod tests {
    use super::Evbuffer;
    use std::sync::Arc;

    /// A shared front stays readable and unchanged whatever the buffer does next, and sharing
    /// changes nothing the buffer's user can see.
    #[test]
    fn a_shared_front_outlives_the_buffers_changes() {
        let msg: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
        let mut buf = Evbuffer::new();
        buf.add(&msg).unwrap();
        assert!(
            buf.share_front(8193, usize::MAX).is_none(),
            "fewer than min"
        );
        let front = buf.share_front(4096, 5000).expect("own memory is shared");
        assert_eq!(front.bytes(), &msg[..5000]);
        // Appends go after it (the shared chunk is read-only), and the bytes read the same.
        buf.add(b"tail").unwrap();
        buf.add_with(10, |s| {
            s[..3].copy_from_slice(b"end");
            3
        })
        .unwrap();
        let mut all = msg.clone();
        all.extend_from_slice(b"tailend");
        assert_eq!(buf.len(), all.len());
        assert_eq!(buf.pullup(16).unwrap(), &all[..16]);
        // Shared again after a partial drain: from where the data now starts.
        buf.drain(100).unwrap();
        let again = buf
            .share_front(1, 50)
            .expect("shared memory is shared again");
        assert_eq!(again.bytes(), &msg[100..150]);
        // The buffer rewritten and dropped: the shares still hold the old bytes.
        assert_eq!(buf.pullup_all().unwrap(), &all[100..]);
        drop(buf);
        assert_eq!(front.bytes(), &msg[..5000]);
        assert_eq!(again.bytes(), &msg[100..150]);
    }

    /// An edit through `pullup_mut` changes the buffer only: not memory a send shares, not a
    /// caller's reference, not a file; and what follows the edited bytes is untouched.
    #[test]
    fn pullup_mut_edits_the_buffer_and_nothing_it_shares() {
        let msg: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
        let edit = |buf: &mut Evbuffer, n: usize| {
            buf.pullup_mut(n).unwrap().fill(0xEE);
        };
        let edited = |n: usize| {
            let mut v = msg.clone();
            v[..n].fill(0xEE);
            v
        };

        // Memory shared with a (would-be) send on the ring.
        let mut buf = Evbuffer::new();
        buf.add(&msg).unwrap();
        let front = buf.share_front(4096, 5000).expect("own memory is shared");
        edit(&mut buf, 10);
        assert_eq!(front.bytes(), &msg[..5000], "the send's bytes changed");
        assert_eq!(buf.pullup_all().unwrap(), &edited(10)[..]);

        // A caller's reference: the rest stays a reference, the caller's bytes stay as they were.
        let mine: Arc<[u8]> = Arc::from(&msg[..]);
        let mut buf = Evbuffer::new();
        buf.add_reference(Arc::clone(&mine), |_| {}).unwrap();
        edit(&mut buf, 4);
        assert_eq!(&mine[..], &msg[..]);
        assert_eq!(buf.len(), msg.len());
        assert_eq!(buf.pullup_all().unwrap(), &edited(4)[..]);

        // A whole file segment, then one spanning two chunks (a reference and owned memory).
        let path = std::env::temp_dir().join(format!("revent-pullup-mut-{}", std::process::id()));
        std::fs::write(&path, &msg[..100]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut buf = Evbuffer::new();
        buf.add_file(file.into(), 0, None).unwrap();
        edit(&mut buf, 100);
        assert_eq!(buf.file_chunks, 0, "the segment was copied whole");
        assert_eq!(buf.pullup_all().unwrap(), &edited(100)[..100]);
        let mut buf = Evbuffer::new();
        buf.add_reference(msg[..10].to_vec(), |_| {}).unwrap();
        buf.add(&msg[10..]).unwrap();
        edit(&mut buf, 20);
        assert_eq!(buf.pullup_all().unwrap(), &edited(20)[..]);

        // Asking for more than there is fails and changes nothing.
        assert!(buf.pullup_mut(buf.len() + 1).is_err());
        assert_eq!(buf.len(), msg.len());
    }

    /// What is not the buffer's own memory, or is reserved, is never shared.
    #[test]
    fn references_and_reservations_are_not_shared() {
        let mut buf = Evbuffer::new();
        buf.add_reference(vec![1u8; 8192], |_| {}).unwrap();
        assert!(
            buf.share_front(1, usize::MAX).is_none(),
            "a caller's memory"
        );
        let mut buf = Evbuffer::new();
        buf.add(&[2u8; 8192]).unwrap();
        let space = buf.reserve_space(10).unwrap();
        space[0] = 3;
        assert!(
            buf.share_front(1, usize::MAX).is_none(),
            "space is reserved"
        );
        buf.commit_space(1).unwrap();
        assert!(buf.share_front(1, usize::MAX).is_some());
        assert_eq!(buf.len(), 8193);
    }

    #[test]
    fn hot_fields_share_two_cache_lines() {
        let b = Evbuffer::new();
        let at = |p: *const u8| p as usize - &b as *const Evbuffer as usize;
        assert_eq!(at(&b as *const Evbuffer as *const u8), 0);
        assert_eq!(std::mem::align_of::<Evbuffer>(), 64);
        // The first line: what a read, a write and a move all touch.
        for end in [
            at((&b.chunks as *const _ as *const u8).wrapping_add(std::mem::size_of_val(&b.chunks))),
            at((&b.read_hint as *const usize).wrapping_add(1) as *const u8),
            at((&b.len as *const usize).wrapping_add(1) as *const u8),
            at((&b.gen as *const u64).wrapping_add(1) as *const u8),
            at((&b.file_chunks as *const usize).wrapping_add(1) as *const u8),
        ] {
            assert!(end <= 64, "a first-line field ends at {end}");
        }
        // The second: flags, the watch, and the callback list every change looks at.
        let cbs_list_end = at(&b.cbs as *const _ as *const u8) + std::mem::size_of::<Vec<u8>>();
        for end in [
            at((&b.eol_pos as *const usize).wrapping_add(1) as *const u8),
            at(&b.frozen_start as *const bool as *const u8) + 1,
            at(&b.frozen_end as *const bool as *const u8) + 1,
            at(&b.reserved as *const bool as *const u8) + 1,
            at((&b.watch as *const _ as *const u8).wrapping_add(std::mem::size_of_val(&b.watch))),
            cbs_list_end,
        ] {
            assert!(end <= 128, "a second-line field ends at {end}");
        }
    }

    #[test]
    fn add_buffer_hands_the_destinations_empty_tail_to_the_source() {
        // An echo: read into `input`, move it to `output`, write `output` out.
        let mut input = Evbuffer::new();
        let mut output = Evbuffer::new();
        input.add(&[1; 64]).unwrap();
        output.add_buffer(&mut input).unwrap();
        output.drain(64).unwrap();
        let tail = output.chunks.back().map(|c| c.capacity());
        assert!(
            tail.is_some(),
            "a drained buffer keeps its last chunk as an empty tail"
        );
        input.add(&[2; 64]).unwrap();
        output.add_buffer(&mut input).unwrap();
        // The empty tail went to the source, as its tail (its next read goes straight into it),
        // not to the pool.
        assert_eq!(input.chunks.len(), 1);
        assert_eq!(
            input.chunks.back().map(|c| (c.capacity(), c.len())),
            tail.map(|t| (t, 0))
        );
        assert_eq!(output.chunks.len(), 1);
        // And back: the output's drained chunk goes to the input again.
        let mut out = [0; 64];
        assert_eq!(output.remove(&mut out).unwrap(), 64);
        input.add(&[3; 64]).unwrap();
        output.add_buffer(&mut input).unwrap();
        assert_eq!(input.chunks.len(), 1);
        assert_eq!(output.chunks.len(), 1);
        assert_eq!(output.remove(&mut out).unwrap(), 64);
        assert_eq!(out, [3; 64]);
        input.add(&[2; 64]).unwrap();
        output.add_buffer(&mut input).unwrap();
        let mut out = [0; 64];
        assert_eq!(output.remove(&mut out).unwrap(), 64);
        assert_eq!(out, [2; 64]);
    }
}
