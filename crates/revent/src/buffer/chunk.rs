//! One link of an [`Evbuffer`](super::Evbuffer)'s chain and the memory behind it.

use std::cell::OnceCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::sys::uring::SharedMem;

/// Smallest chunk the buffer allocates for its own use.
pub(super) const MIN_CHUNK: usize = 1024;
/// Chunk sizes double with use up to this size; larger single requests get a chunk of exactly their size.
pub(super) const MAX_CHUNK: usize = 256 * 1024;

/// External memory handed to [`Evbuffer::add_reference`](super::Evbuffer::add_reference), or the
/// buffer's own memory once it is shared with sends on the ring ([`SharedMem`]).
pub(super) trait RefBytes: Send + Sync {
    fn bytes(&self) -> &[u8];

    /// The buffer's own shared memory, for sharing further (a caller's memory is not: its `AsRef`
    /// is not trusted to stay put while the kernel reads it).
    fn shared(self: Arc<Self>) -> Option<Arc<SharedMem>> {
        None
    }

    /// Whether `shared` gives `Some`.
    fn is_shared(&self) -> bool {
        false
    }
}

impl RefBytes for SharedMem {
    fn bytes(&self) -> &[u8] {
        SharedMem::bytes(self)
    }

    fn shared(self: Arc<Self>) -> Option<Arc<SharedMem>> {
        Some(self)
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// Holds the caller's value and runs its cleanup closure exactly once, when the last chunk that shares it
/// is dropped.
pub(super) struct RefHolder<T, F>
where
    T: AsRef<[u8]> + Send + Sync,
    F: FnOnce(T) + Send,
{
    pub(super) data: Option<T>,
    // A Mutex only so the holder is Sync (it is shared through an Arc); it is touched once, in Drop.
    pub(super) cleanup: Mutex<Option<F>>,
}

impl<T, F> RefBytes for RefHolder<T, F>
where
    T: AsRef<[u8]> + Send + Sync,
    F: FnOnce(T) + Send,
{
    fn bytes(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.as_ref())
    }
}

impl<T, F> Drop for RefHolder<T, F>
where
    T: AsRef<[u8]> + Send + Sync,
    F: FnOnce(T) + Send,
{
    fn drop(&mut self) {
        let cleanup = match self.cleanup.get_mut() {
            Ok(c) => c.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let (Some(data), Some(cleanup)) = (self.data.take(), cleanup) {
            cleanup(data);
        }
    }
}

/// A segment of a file that is sent with `sendfile` and only read into memory if someone looks at it.
pub(super) struct FileSeg {
    pub(super) file: Arc<File>,
    /// File offset of the segment's index 0 (chunk offsets `start..end` are relative to it).
    pub(super) offset: u64,
    /// `(first index loaded, bytes)`, filled on first access to the contents.
    pub(super) loaded: OnceCell<(usize, Box<[u8]>)>,
}

pub(super) enum Store {
    /// Memory the buffer owns; bytes after `end` are free space for appends.
    Mem(Box<[u8]>),
    /// The caller's memory, read-only. Shared when a chunk is split between two buffers.
    Ref(Arc<dyn RefBytes>),
    /// A file segment.
    File(FileSeg),
}

/// A chunk: `store[start..end]` holds the data.
pub(super) struct Chunk {
    pub(super) store: Store,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Chunk {
    pub(super) fn mem(buf: Box<[u8]>) -> Chunk {
        Chunk {
            store: Store::Mem(buf),
            start: 0,
            end: 0,
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    pub(super) fn is_mem(&self) -> bool {
        matches!(self.store, Store::Mem(_))
    }

    /// The stored bytes. For a file segment that has not been loaded this is empty: callers load first
    /// (see `Evbuffer::load_range`).
    #[inline]
    pub(super) fn data(&self) -> &[u8] {
        match &self.store {
            Store::Mem(b) => &b[self.start..self.end],
            // `get` rather than indexing: a caller's AsRef could (wrongly) change length; that must not
            // turn into a panic here.
            Store::Ref(r) => r.bytes().get(self.start..self.end).unwrap_or(&[]),
            Store::File(f) => match f.loaded.get() {
                Some((base, b)) => b
                    .get(self.start.wrapping_sub(*base)..self.end.wrapping_sub(*base))
                    .unwrap_or(&[]),
                None => &[],
            },
        }
    }

    /// Whether the contents are in memory (always, except for a file segment not read yet).
    #[inline]
    pub(super) fn in_memory(&self) -> bool {
        match &self.store {
            Store::File(f) => f.loaded.get().is_some(),
            _ => true,
        }
    }

    /// Whether `Evbuffer::share_front` can share the bytes: the buffer's own memory.
    #[inline]
    pub(super) fn shareable(&self) -> bool {
        match &self.store {
            Store::Mem(_) => true,
            Store::Ref(r) => r.is_shared(),
            Store::File(_) => false,
        }
    }

    /// Free space after the data (only owned memory has any).
    #[inline]
    pub(super) fn space(&self) -> usize {
        match &self.store {
            Store::Mem(b) => b.len() - self.end,
            _ => 0,
        }
    }

    #[inline]
    pub(super) fn capacity(&self) -> usize {
        match &self.store {
            Store::Mem(b) => b.len(),
            _ => 0,
        }
    }

    /// The free space after the data, writable.
    #[inline]
    pub(super) fn space_mut(&mut self) -> &mut [u8] {
        match &mut self.store {
            Store::Mem(b) => &mut b[self.end..],
            _ => &mut [],
        }
    }

    /// Copies as much of `src` as fits into the free space; returns how much.
    #[inline]
    pub(super) fn append_from(&mut self, src: &[u8]) -> usize {
        let space = self.space_mut();
        let n = space.len().min(src.len());
        space[..n].copy_from_slice(&src[..n]);
        self.end += n;
        n
    }

    /// Splits off the first `n` bytes (`n < len`) without copying, if the storage can be shared
    /// (references and file segments). Owned memory returns `None`: the caller copies.
    pub(super) fn split_front_shared(&mut self, n: usize) -> Option<Chunk> {
        let store = match &self.store {
            Store::Mem(_) => return None,
            Store::Ref(r) => Store::Ref(Arc::clone(r)),
            Store::File(f) => Store::File(FileSeg {
                file: Arc::clone(&f.file),
                offset: f.offset,
                loaded: OnceCell::new(),
            }),
        };
        let front = Chunk {
            store,
            start: self.start,
            end: self.start + n,
        };
        self.start += n;
        Some(front)
    }

    /// Reads a file segment's remaining bytes into memory (once).
    pub(super) fn load(&self) -> Result<()> {
        let Store::File(f) = &self.store else {
            return Ok(());
        };
        if f.loaded.get().is_some() {
            return Ok(());
        }
        let mut bytes = alloc_zeroed(self.len())?;
        let off = f
            .offset
            .checked_add(self.start as u64)
            .ok_or(Error::InvalidArgument("file offset overflows"))?;
        f.file.read_exact_at(&mut bytes, off)?;
        // Cannot already be set: we checked above and nothing in between touches it.
        let _ = f.loaded.set((self.start, bytes));
        Ok(())
    }
}

/// A zero-filled allocation of `n` bytes that reports failure instead of aborting.
pub(super) fn alloc_zeroed(n: usize) -> Result<Box<[u8]>> {
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::Io(io::Error::from(io::ErrorKind::OutOfMemory)))?;
    v.resize(n, 0);
    Ok(v.into_boxed_slice())
}
