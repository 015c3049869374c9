//! A per-thread pool of chunk memory, shared by every buffer on the thread.
//!
//! Data moves between buffers chunk by chunk (an echo moves each read's chunk from the input to the
//! output), so the buffer that frees a chunk is rarely the one that needs the next. Without a shared
//! pool, every read would allocate (and zero) fresh memory. Chunks are pooled by power-of-two size,
//! up to a byte budget per size, and handed out as they are: their old bytes are initialised memory, so
//! reuse needs no zeroing.

use super::chunk::{MAX_CHUNK, MIN_CHUNK};
use std::cell::RefCell;

/// Size classes: MIN_CHUNK << 0 ..= MAX_CHUNK.
const CLASSES: usize = (MAX_CHUNK / MIN_CHUNK).trailing_zeros() as usize + 1;
/// Bytes kept per class at most (and at least a few chunks of the largest class).
const CLASS_BUDGET: usize = 2 << 20;
/// Chunks kept per class at most.
const CLASS_SLOTS: usize = 64;

thread_local! {
    // Each class's list is allocated once, at full size, so that pooling itself never allocates
    // on the hot path.
    static POOL: RefCell<[Vec<Box<[u8]>>; CLASSES]> =
        RefCell::new(std::array::from_fn(|_| Vec::with_capacity(CLASS_SLOTS)));
}

/// The size a new chunk of at least `n` bytes gets: a power of two from MIN_CHUNK up (larger than
/// MAX_CHUNK only when asked for).
pub(super) fn size_for(n: usize) -> usize {
    if n <= MIN_CHUNK {
        MIN_CHUNK
    } else if n <= MAX_CHUNK {
        n.next_power_of_two()
    } else {
        n
    }
}

fn class_of(size: usize) -> Option<usize> {
    if size.is_power_of_two() && (MIN_CHUNK..=MAX_CHUNK).contains(&size) {
        Some((size / MIN_CHUNK).trailing_zeros() as usize)
    } else {
        None
    }
}

/// Pooled memory of exactly `size` bytes, if there is some.
pub(super) fn take(size: usize) -> Option<Box<[u8]>> {
    let class = class_of(size)?;
    // `try_with` fails only while the thread is being torn down: then there is no pool.
    POOL.try_with(|p| p.borrow_mut()[class].pop())
        .ok()
        .flatten()
}

/// Gives memory back; kept if its class has room, freed otherwise.
pub(super) fn give(mem: Box<[u8]>) {
    let Some(class) = class_of(mem.len()) else {
        return;
    };
    let keep = (CLASS_BUDGET / mem.len()).clamp(4, CLASS_SLOTS);
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p[class].len() < keep {
            p[class].push(mem);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_memory_of_the_same_class() {
        let size = size_for(3000);
        assert_eq!(size, 4096);
        let mem = vec![7u8; size].into_boxed_slice();
        let addr = mem.as_ptr();
        give(mem);
        let again = take(size).expect("pooled");
        assert_eq!(again.as_ptr(), addr);
        assert!(take(size).is_none());
        // Odd sizes are not pooled.
        give(vec![0u8; 3000].into_boxed_slice());
        assert!(take(3000).is_none());
    }
}
