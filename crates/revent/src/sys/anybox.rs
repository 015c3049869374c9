//! `AnyBox`: a boxed value of a type known only at run time, downcast without a virtual call.
//!
//! The base keeps each layer's state (the bufferevent store, the listeners) as one of these. The
//! bufferevent path looks its store up a few times per event; `Box<dyn Any>::downcast_mut` would
//! make an indirect call to `type_id` every time, where comparing a `TypeId` recorded at creation
//! is two integer compares.

use std::any::{Any, TypeId};

pub(crate) struct AnyBox {
    /// The `TypeId` of the value in `value`; set only by `new`, from the value's own type.
    id: TypeId,
    value: Box<dyn Any>,
}

impl AnyBox {
    pub(crate) fn new<T: Any>(value: T) -> AnyBox {
        AnyBox {
            id: TypeId::of::<T>(),
            value: Box::new(value),
        }
    }

    #[inline]
    pub(crate) fn get<T: Any>(&self) -> Option<&T> {
        if self.id != TypeId::of::<T>() {
            return None;
        }
        let p: *const dyn Any = &*self.value;
        // SAFETY: `id` is the TypeId of the boxed value (both set together in `new`, never changed),
        // and it equals T's, so the value is a T: the cast is what `downcast_ref` does after its
        // check. The reference borrows `self`.
        Some(unsafe { &*p.cast::<T>() })
    }

    #[inline]
    pub(crate) fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        if self.id != TypeId::of::<T>() {
            return None;
        }
        let p: *mut dyn Any = &mut *self.value;
        // SAFETY: as in `get`; the reference borrows `self` mutably, so it is unique.
        Some(unsafe { &mut *p.cast::<T>() })
    }
}

#[cfg(test)]
mod tests {
    use super::AnyBox;

    #[test]
    fn downcasts_only_to_its_own_type() {
        let mut b = AnyBox::new(5u32);
        assert_eq!(b.get::<u32>(), Some(&5));
        assert!(b.get::<i32>().is_none());
        assert!(b.get_mut::<u64>().is_none());
        *b.get_mut::<u32>().unwrap() += 1;
        assert_eq!(b.get::<u32>(), Some(&6));
    }
}
