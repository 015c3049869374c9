//! `flags!`: every bit-flag type of the public API, declared through `bitflags` (one implementation of
//! `contains`, `intersects`, `|`, `&`, `!`, `Debug` ...) with a `NONE` constant added.

/// Declares a public `bitflags` type with the usual derives and a `NONE` constant. The flags keep
/// libevent's values so they cross the C ABI unchanged.
macro_rules! flags {
    (
        $(#[$m:meta])*
        $name:ident: $t:ty {
            $($(#[$($fm:tt)*])* const $flag:ident = $v:expr;)*
        }
    ) => {
        ::bitflags::bitflags! {
            $(#[$m])*
            #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
            pub struct $name: $t {
                $($(#[$($fm)*])* const $flag = $v;)*
            }
        }
        impl $name {
            /// No flags.
            pub const NONE: $name = $name::empty();
        }
    };
}
pub(crate) use flags;
