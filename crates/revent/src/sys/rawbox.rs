//! `RawBox<T>`: a heap value owned through a raw pointer, whose address foreign code may hold.
//!
//! A bufferevent's Evbuffers are handed to C by pointer (`bufferevent_get_output`) while Rust keeps
//! using them. Owning them as `Box<Evbuffer>` would be wrong: moving or borrowing a `Box` asserts that
//! it is the only way to the value, which invalidates every pointer C holds. `RawBox` keeps only the
//! raw pointer from `Box::into_raw`; each Rust access makes a fresh, short-lived reference from it, and
//! pointers handed out with [`RawBox::as_ptr`] stay valid until the `RawBox` drops.

use std::ptr::NonNull;

pub(crate) struct RawBox<T>(NonNull<T>);

// SAFETY: a RawBox owns its T exactly as a Box does (it is the only owner and frees it on drop), so
// it may cross threads when T may.
unsafe impl<T: Send> Send for RawBox<T> {}
// SAFETY: as above; `&RawBox` only gives `&T`.
unsafe impl<T: Sync> Sync for RawBox<T> {}

impl<T> RawBox<T> {
    pub(crate) fn new(value: T) -> RawBox<T> {
        RawBox(NonNull::from(Box::leak(Box::new(value))))
    }

    /// The value's address, stable for the `RawBox`'s life. Using it is the holder's `unsafe` business:
    /// only while no reference from [`get`](Self::get)/[`get_mut`](Self::get_mut) is alive.
    pub(crate) fn as_ptr(&self) -> NonNull<T> {
        self.0
    }

    #[inline]
    pub(crate) fn get(&self) -> &T {
        // SAFETY: the pointer came from a live Box that only our Drop frees; the returned reference
        // borrows `self`, so safe Rust cannot hold it past a `get_mut` or the drop.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: as in `get`; `&mut self` makes this the only Rust reference to the value for its
        // lifetime. Foreign holders of `as_ptr` must not use it meanwhile (documented at `as_ptr`).
        unsafe { self.0.as_mut() }
    }
}

impl<T> Drop for RawBox<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` in `new` and is freed only here, once.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}
