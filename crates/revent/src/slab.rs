//! `Slab<T>`: the one generational store behind every handle type (events, bufferevents, listeners,
//! rate-limit groups).
//!
//! A value lives in a slot; its handle is the slot index plus the slot's generation when the value went
//! in. Removing a value bumps the generation, so an old handle never names the slot's next occupant.
//! Generations start at 1, so a handle read from zeroed memory (generation 0) is never live; a slot
//! whose generation would reach `u32::MAX` is retired instead of reused, so generations never wrap.

/// A slot index and the generation it was issued with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Generation of a fresh slot.
const FIRST_GENERATION: u32 = 1;
/// A slot whose value is removed at this generation is retired: the next generation would be
/// `u32::MAX`, past which it would wrap.
const LAST_GENERATION: u32 = u32::MAX - 1;

// The generation first: a lookup reads it and then the value's first fields, one cache line for both
// when the value puts its hot fields first.
#[repr(C)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its key.
    pub(crate) fn insert(&mut self, value: T) -> Key {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.value = Some(value);
            return Key {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len()).expect("more than 2^32 slots");
        self.slots.push(Slot {
            generation: FIRST_GENERATION,
            value: Some(value),
        });
        Key {
            index,
            generation: FIRST_GENERATION,
        }
    }

    /// Whether `key` names a live value.
    #[inline]
    pub(crate) fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    #[inline]
    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize) {
            Some(s) if s.generation == key.generation => s.value.as_ref(),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some(s) if s.generation == key.generation => s.value.as_mut(),
            _ => None,
        }
    }

    /// Two different live values at once.
    pub(crate) fn get2_mut(&mut self, a: Key, b: Key) -> Option<(&mut T, &mut T)> {
        if a.index == b.index || !self.contains(a) || !self.contains(b) {
            return None;
        }
        let (lo, hi) = (a.index.min(b.index) as usize, a.index.max(b.index) as usize);
        let (left, right) = self.slots.split_at_mut(hi);
        let x = left[lo].value.as_mut()?;
        let y = right[0].value.as_mut()?;
        Some(if a.index < b.index { (x, y) } else { (y, x) })
    }

    /// Takes the value out; the key (and every copy of it) becomes stale.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        if slot.generation >= LAST_GENERATION {
            // Retired: never handed out again, so no generation is ever issued twice.
            slot.generation = u32::MAX;
        } else {
            slot.generation += 1;
            self.free.push(key.index);
        }
        Some(value)
    }

    // ---- by index, for the event registry's hot paths (the index comes from a live key) ----

    /// The live value in slot `index`. Panics if the slot is empty: callers hold a key they checked.
    #[inline]
    pub(crate) fn at(&self, index: u32) -> &T {
        self.slots[index as usize]
            .value
            .as_ref()
            .expect("live slab slot")
    }

    #[inline]
    pub(crate) fn at_mut(&mut self, index: u32) -> &mut T {
        self.slots[index as usize]
            .value
            .as_mut()
            .expect("live slab slot")
    }

    /// The live value in slot `index` and its generation, in one access.
    #[inline]
    pub(crate) fn at_mut_with_generation(&mut self, index: u32) -> (u32, &mut T) {
        let slot = &mut self.slots[index as usize];
        (
            slot.generation,
            slot.value.as_mut().expect("live slab slot"),
        )
    }

    /// The value in slot `index` if it is live with `generation`.
    #[inline]
    pub(crate) fn at_generation_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        self.get_mut(Key { index, generation })
    }

    /// The key of the live value in slot `index`.
    #[inline]
    pub(crate) fn key_at(&self, index: u32) -> Key {
        Key {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// Live values with their keys, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value.as_ref().map(|v| {
                (
                    Key {
                        index: i as u32,
                        generation: s.generation,
                    },
                    v,
                )
            })
        })
    }

    /// Keys of every live value (a snapshot, so the caller may remove while walking it).
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.iter().map(|(k, _)| k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_start_at_one_so_zeroed_handles_are_never_live() {
        let mut s = Slab::default();
        let k = s.insert("a");
        assert_eq!(k.generation, 1);
        assert!(s
            .get(Key {
                index: 0,
                generation: 0
            })
            .is_none());
    }

    #[test]
    fn removed_keys_are_stale_even_after_the_slot_is_reused() {
        let mut s = Slab::default();
        let a = s.insert(1);
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2);
        assert_eq!(b.index, a.index);
        assert_ne!(b.generation, a.generation);
        assert!(s.get(a).is_none());
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&2));
    }

    #[test]
    fn a_slot_about_to_wrap_is_retired_not_reused() {
        let mut s = Slab::default();
        let a = s.insert(1);
        s.slots[0].generation = LAST_GENERATION;
        let a = Key {
            generation: LAST_GENERATION,
            ..a
        };
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2);
        assert_ne!(b.index, a.index, "a retired slot was reused");
        assert!(s.get(a).is_none());
        assert!(s
            .get(Key {
                index: a.index,
                generation: u32::MAX
            })
            .is_none());
        assert!(s
            .get(Key {
                index: a.index,
                generation: 0
            })
            .is_none());
    }

    #[test]
    fn get2_mut_refuses_the_same_or_stale_keys() {
        let mut s = Slab::default();
        let a = s.insert(1);
        let b = s.insert(2);
        assert!(s.get2_mut(a, a).is_none());
        let (x, y) = s.get2_mut(b, a).unwrap();
        std::mem::swap(x, y);
        assert_eq!((s.get(a), s.get(b)), (Some(&2), Some(&1)));
        s.remove(b);
        assert!(s.get2_mut(a, b).is_none());
    }
}
