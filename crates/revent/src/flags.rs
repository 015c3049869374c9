//! `flag_set!`: the small bit-flag types of the public API (libevent's option and feature masks).

/// Declares a `Copy` flag type over `u32` with `NONE`, the given flags, `bits`, `from_bits`,
/// `contains` and `|`. The flags keep libevent's values so they cross the C ABI unchanged.
macro_rules! flag_set {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $flag:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
        pub struct $name(u32);
        impl $name {
            /// No flags.
            pub const NONE: $name = $name(0);
            $($(#[$fm])* pub const $flag: $name = $name($v);)*
            /// The raw bits (libevent's values).
            pub const fn bits(self) -> u32 { self.0 }
            /// From raw bits; unknown bits are kept.
            pub const fn from_bits(bits: u32) -> $name { $name(bits) }
            /// Whether every flag of `other` is set.
            pub const fn contains(self, other: $name) -> bool { self.0 & other.0 == other.0 }
        }
        impl ::std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name { $name(self.0 | rhs.0) }
        }
    };
}
pub(crate) use flag_set;
