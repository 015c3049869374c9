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

/// `tchar` of RFC 9110 §5.6.2: the bytes of a `token` (header names, methods, transfer-codings).
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// [`is_tchar`] as a table: header names are checked a byte at a time on every request.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = tchar_by_rule(b as u8);
        b += 1;
    }
    t
};

const fn tchar_by_rule(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// A non-empty run of `tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tchar_table_is_the_rule() {
        for b in 0..=255u8 {
            assert_eq!(is_tchar(b), tchar_by_rule(b), "byte {b}");
        }
        assert!(is_token(b"Content-Type") && !is_token(b"a b") && !is_token(b""));
    }

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
