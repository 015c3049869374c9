//! Random bits for transaction ids and 0x20 case, from the kernel (`getrandom`), drawn in blocks.
//!
//! A lookup takes 10 bytes (a 16-bit id and a 64-bit word of case bits); a block of 256 bytes
//! serves about 25 lookups a `getrandom` call.

use std::hash::{BuildHasher, Hasher};

/// The block size: at most 256 bytes, which `getrandom` fills in one call without interruption.
const POOL: usize = 256;

pub(crate) struct Rng {
    pool: [u8; POOL],
    used: usize,
}

impl Rng {
    pub(crate) fn new() -> Rng {
        Rng {
            pool: [0; POOL],
            used: POOL,
        }
    }

    fn refill(&mut self) {
        if getrandom::fill(&mut self.pool).is_err() {
            // getrandom(2) does not fail on a Linux that boots; should it, std's hasher keys
            // (themselves seeded by the OS once per thread, then varied) still give unpredictable bits.
            for chunk in self.pool.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(chunk.as_ptr() as usize);
                chunk.copy_from_slice(&h.finish().to_ne_bytes()[..chunk.len()]);
            }
        }
        self.used = 0;
    }

    pub(crate) fn u16(&mut self) -> u16 {
        if self.used + 2 > self.pool.len() {
            self.refill();
        }
        let v = u16::from_ne_bytes([self.pool[self.used], self.pool[self.used + 1]]);
        self.used += 2;
        v
    }

    pub(crate) fn u64(&mut self) -> u64 {
        if self.used + 8 > self.pool.len() {
            self.refill();
        }
        let mut b = [0; 8];
        b.copy_from_slice(&self.pool[self.used..self.used + 8]);
        self.used += 8;
        u64::from_ne_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_vary() {
        let mut r = super::Rng::new();
        let ids: std::collections::HashSet<u16> = (0..1000).map(|_| r.u16()).collect();
        assert!(
            ids.len() > 900,
            "1000 draws of 16 bits repeat rarely: {}",
            ids.len()
        );
        let ones: u32 = (0..200).map(|_| r.u64().count_ones()).sum();
        assert!((5_800..7_000).contains(&ones), "{ones} of 12,800 bits set");
    }
}
