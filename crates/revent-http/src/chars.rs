//! Byte classes of RFC 3986 as libevent's `http.c` checks them (ASCII only: every byte from 0x80 up
//! is outside every class).

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`: the bytes `evhttp_uriencode` leaves as
/// they are (libevent's `uri_chars` table).
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="`.
pub(crate) fn is_subdelim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// True when `s[i]` starts a `%HH` escape wholly inside `s`.
pub(crate) fn is_pct_encoded(s: &[u8], i: usize) -> bool {
    s.get(i) == Some(&b'%')
        && s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
}

/// The value of one hex digit (the caller has checked it is one).
pub(crate) fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libevent's `uri_chars` table lists exactly 66 unreserved bytes.
    #[test]
    fn unreserved_is_libevents_table() {
        let set: Vec<u8> = (0..=255u8).filter(|&b| is_unreserved(b)).collect();
        let want: Vec<u8> =
            b"-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~".to_vec();
        assert_eq!(set, want);
    }

    #[test]
    fn pct_encoded_needs_both_digits_inside() {
        assert!(is_pct_encoded(b"%41", 0));
        assert!(is_pct_encoded(b"x%aF", 1));
        assert!(!is_pct_encoded(b"%4", 0));
        assert!(!is_pct_encoded(b"%", 0));
        assert!(!is_pct_encoded(b"%g1", 0));
        assert!(!is_pct_encoded(b"41", 0));
    }

    #[test]
    fn hex_values() {
        let got: Vec<u8> = b"09afAF".iter().map(|&b| hex_value(b)).collect();
        assert_eq!(got, [0, 9, 10, 15, 10, 15]);
    }
}
