//! Random bits for transaction ids and 0x20 case, from the kernel (`getrandom`), drawn in blocks.

use std::hash::{BuildHasher, Hasher};

pub(crate) struct Rng {
    pool: [u8; 64],
    used: usize,
    bits: u64,
    nbits: u32,
}

impl Rng {
    pub(crate) fn new() -> Rng {
        Rng {
            pool: [0; 64],
            used: 64,
            bits: 0,
            nbits: 0,
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

    pub(crate) fn bit(&mut self) -> bool {
        if self.nbits == 0 {
            self.bits = u64::from(self.u16()) | u64::from(self.u16()) << 16;
            self.nbits = 32;
        }
        let b = self.bits & 1 == 1;
        self.bits >>= 1;
        self.nbits -= 1;
        b
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
        let ones = (0..10_000).filter(|_| r.bit()).count();
        assert!((4_000..6_000).contains(&ones), "{ones}");
    }
}
