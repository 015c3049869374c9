//! [`Headers`]: an ordered multimap of header fields with libevent's `evkeyvalq` semantics.
//!
//! Fields keep the order they were added in; duplicates are kept. Look-ups compare names
//! ASCII-case-insensitively and find the *first* match (`evhttp_find_header`); removal removes the
//! first match only (`evhttp_remove_header`).
//!
//! Values are bytes: a field value may hold `obs-text` (bytes from 0x80 up) that is not UTF-8, and
//! it is kept as received rather than refused or altered. [`Headers::find_str`] gives the value as
//! `&str` when it is UTF-8.
//!
//! Every stored field is one that can be written back on the wire as it is: [`Headers::add`]
//! refuses a name that is not an RFC 9110 token and a value holding CR, LF or NUL. libevent 2.1.12
//! refused CR and LF in names, and in values only when not followed by a space or tab (it let
//! obsolete folding through); 2.1.13 refuses CR and LF outright, as here, since a CR or LF a caller
//! passes on from its own input would let that input add header lines of its own (header
//! injection, response splitting). revent also refuses NUL (a C string would end there, so the
//! value the C side sees would differ from the one checked) and names that are not tokens (a name
//! `"X: y"` would write a different field than the one added).

use std::fmt;

use crate::chars::is_token;

/// Why [`Headers::add`] refused a field.
///
/// ```
/// use revent_http::{HeaderError, Headers};
/// let mut h = Headers::new();
/// assert_eq!(h.add("X-Evil", "a\r\nSet-Cookie: b"), Err(HeaderError::InvalidValue));
/// assert_eq!(h.add("Bad Name", "v"), Err(HeaderError::InvalidName));
/// assert!(h.is_empty());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The name is empty or holds a byte that is not a token character (RFC 9110 §5.1).
    InvalidName,
    /// The value holds a CR, LF or NUL.
    InvalidValue,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::InvalidName => "header name is not a token",
            HeaderError::InvalidValue => "header value holds CR, LF or NUL",
        })
    }
}

impl std::error::Error for HeaderError {}

/// Whether `value` may be stored: no CR, LF or NUL.
pub(crate) fn is_valid_value(value: &[u8]) -> bool {
    // Most values are short: eight bytes at a time costs less than setting up the vector search.
    if value.len() < 64 {
        let words = value.chunks_exact(8);
        let tail = words.remainder();
        return !words
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
            .any(may_hold_nul_cr_lf)
            && !tail.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0);
    }
    memchr::memchr3(b'\r', b'\n', 0, value).is_none()
}

/// Whether any byte of `x` may be NUL, CR or LF: true for every word holding one, and for some
/// that do not (a byte just above a match may be flagged too); so `false` is certain.
pub(crate) fn may_hold_nul_cr_lf(x: u64) -> bool {
    nul_cr_lf_candidates(x) != 0
}

/// The high bit of every byte of `x` that is NUL, CR or LF, and maybe of some bytes above one
/// (the borrow of the subtraction): a set bit is a candidate to look at, a clear one is certain.
pub(crate) fn nul_cr_lf_candidates(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zeros = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zeros(x) | zeros(x ^ (ONES * u64::from(b'\r'))) | zeros(x ^ (ONES * u64::from(b'\n')))
}

/// An ordered list of header fields (libevent's `struct evkeyvalq`).
///
/// ```
/// use revent_http::Headers;
///
/// let mut h = Headers::new();
/// h.add("Accept", "text/html")?;
/// h.add("X-Tag", "one")?;
/// h.add("x-tag", "two")?;
/// assert_eq!(h.find_str("X-TAG"), Some("one"));
/// assert!(h.remove("x-tag"));
/// assert_eq!(h.find_str("X-Tag"), Some("two"));
/// let names: Vec<&str> = h.iter().map(|(name, _)| name).collect();
/// assert_eq!(names, ["Accept", "x-tag"]);
/// h.clear();
/// assert!(h.is_empty());
/// # Ok::<(), revent_http::HeaderError>(())
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    // Every name in one string and every value in one byte vector, indexed by `fields`: adding a
    // field copies into them and allocates nothing once they have grown, and `clear` keeps their
    // room for the next message (the server keeps a request's lists between requests).
    /// Invariant: every field's name is a token.
    names: String,
    /// Invariant: no field's value holds CR, LF or NUL.
    values: Vec<u8>,
    fields: Vec<Field>,
    /// Bytes of `names` and `values` the fields use (the rest removed fields left behind).
    live: usize,
}

/// Where a field's name and value are in [`Headers`]' storage.
#[derive(Clone, Copy, Debug)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Number of fields, duplicates counted.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends a field (`evhttp_add_header`), after any with the same name. Refuses a name that is
    /// not a token and a value with CR, LF or NUL (see the [module documentation](self)); the list
    /// is then unchanged.
    pub fn add(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), HeaderError> {
        let value = value.as_ref();
        Headers::check_field(name, value)?;
        self.push(name, value);
        Ok(())
    }

    /// Whether [`add`](Self::add) would take the field: `Ok` for a token name and a value without
    /// CR, LF or NUL, else the error `add` gives. For callers that keep fields in a list of their own
    /// (the C ABI's `struct evkeyvalq`) and check them as this type does.
    ///
    /// ```
    /// use revent_http::{HeaderError, Headers};
    /// assert_eq!(Headers::check_field("Content-Type", b"text/plain"), Ok(()));
    /// assert_eq!(Headers::check_field("X: y", b"v"), Err(HeaderError::InvalidName));
    /// assert_eq!(Headers::check_field("X", b"a\r\n b"), Err(HeaderError::InvalidValue));
    /// ```
    pub fn check_field(name: &str, value: &[u8]) -> Result<(), HeaderError> {
        if !is_token(name.as_bytes()) {
            return Err(HeaderError::InvalidName);
        }
        if !is_valid_value(value) {
            return Err(HeaderError::InvalidValue);
        }
        Ok(())
    }

    /// Appends a field the parser has already checked (token name, no CR/LF/NUL in the value).
    pub(crate) fn push_checked(&mut self, name: &str, value: &[u8]) {
        debug_assert!(is_token(name.as_bytes()) && is_valid_value(value));
        self.push(name, value);
    }

    /// Makes room for `fields` more fields with `names` bytes of names and `values` of values.
    pub(crate) fn reserve(&mut self, fields: usize, names: usize, values: usize) {
        self.fields.reserve(fields);
        self.names.reserve(names);
        self.values.reserve(values);
    }

    /// Bytes of heap the list keeps, roughly (for a server deciding whether to keep it).
    pub(crate) fn retained(&self) -> usize {
        self.names.capacity()
            + self.values.capacity()
            + self.fields.capacity() * std::mem::size_of::<Field>()
    }

    fn push(&mut self, name: &str, value: &[u8]) {
        let n = self.names.len();
        self.names.push_str(name);
        let v = self.values.len();
        self.values.extend_from_slice(value);
        self.live += name.len() + value.len();
        self.fields.push(Field {
            name: (n, n + name.len()),
            value: (v, v + value.len()),
        });
    }

    fn name_of(&self, f: &Field) -> &str {
        &self.names[f.name.0..f.name.1]
    }

    fn value_of(&self, f: &Field) -> &[u8] {
        &self.values[f.value.0..f.value.1]
    }

    /// The value of the first field named `name`, compared ASCII-case-insensitively
    /// (`evhttp_find_header`).
    pub fn find(&self, name: &str) -> Option<&[u8]> {
        self.position(name).map(|i| self.value_of(&self.fields[i]))
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| self.is_named(f, name))
    }

    /// Whether `f` is named `name`, without case: on bytes, lengths first (the server looks up
    /// a dozen names a request).
    fn is_named(&self, f: &Field, name: &str) -> bool {
        if f.name.1 - f.name.0 != name.len() {
            return false;
        }
        let stored = &self.names.as_bytes()[f.name.0..f.name.1];
        // Names usually come in the case they are looked up in: a plain comparison first.
        stored == name.as_bytes() || stored.eq_ignore_ascii_case(name.as_bytes())
    }

    /// [`find`](Self::find) as text: the first match's value if it is UTF-8, `None` if there is no
    /// match or the first match is not UTF-8.
    pub fn find_str(&self, name: &str) -> Option<&str> {
        self.find(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field named `name`, in order.
    pub fn find_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.is_named(f, name))
            .map(|f| self.value_of(f))
    }

    /// Whether a field named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Removes the first field named `name` (`evhttp_remove_header`); returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(i) = self.position(name) else {
            return false;
        };
        let f = self.fields.remove(i);
        self.live -= (f.name.1 - f.name.0) + (f.value.1 - f.value.0);
        if self.fields.is_empty() {
            self.clear();
        } else if i == self.fields.len() {
            // The last field: its bytes are the storage's last ones.
            self.names.truncate(f.name.0);
            self.values.truncate(f.value.0);
        } else {
            // Repacked once more than half is dead (and not for a few bytes): adding and removing
            // fields in a loop keeps the storage bounded, at an amortized constant cost.
            let dead = self.names.len() + self.values.len() - self.live;
            if dead > 256 && dead > self.live {
                self.repack();
            }
        }
        true
    }

    /// Moves the live fields' bytes to fresh storage, leaving out what removed fields left.
    fn repack(&mut self) {
        let mut packed = Headers::new();
        packed.reserve(self.fields.len(), self.names.len(), self.values.len());
        for (n, v) in self.iter() {
            packed.push(n, v);
        }
        *self = packed;
    }

    /// Removes every field (`evhttp_clear_headers`).
    pub fn clear(&mut self) {
        self.names.clear();
        self.values.clear();
        self.fields.clear();
        self.live = 0;
    }

    /// The fields as `(name, value)` in the order they were added.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            headers: self,
            inner: self.fields.iter(),
        }
    }
}

/// Iterator over a [`Headers`]' fields in order, from [`Headers::iter`].
///
/// ```
/// use revent_http::Headers;
/// let mut h = Headers::new();
/// h.add("A", "1").unwrap();
/// h.add("B", "2").unwrap();
/// let all: Vec<(&str, &[u8])> = (&h).into_iter().collect();
/// assert_eq!(all, [("A", &b"1"[..]), ("B", &b"2"[..])]);
/// ```
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    headers: &'a Headers,
    inner: std::slice::Iter<'a, Field>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let h = self.headers;
        self.inner.next().map(|f| (h.name_of(f), h.value_of(f)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    /// The word test never misses NUL, CR or LF at any place, whatever the other bytes are.
    #[test]
    fn value_check_finds_every_nul_cr_lf() {
        for len in 0..80 {
            let clean: Vec<u8> = (0..len)
                .map(|i| [b'a', 0x01, 0x0e, 0x8d, b' '][i % 5])
                .collect();
            assert!(is_valid_value(&clean));
            for at in 0..len {
                for bad in [0u8, b'\r', b'\n'] {
                    let mut v = clean.clone();
                    v[at] = bad;
                    assert!(!is_valid_value(&v), "{v:?}");
                    if at > 0 {
                        v[at - 1] = 0; // a match below, with its borrow
                        assert!(!is_valid_value(&v), "{v:?}");
                    }
                }
            }
        }
    }

    use super::*;

    fn pairs(h: &Headers) -> Vec<(String, Vec<u8>)> {
        h.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
    }

    #[test]
    fn removal_anywhere_keeps_the_others_intact() {
        let mut h = Headers::new();
        for (n, v) in [("A", "1"), ("B", "22"), ("C", "333"), ("D", "4444")] {
            h.add(n, v).unwrap();
        }
        assert!(h.remove("b"));
        assert!(h.remove("D")); // the last one, after a removal in the middle
        assert!(h.remove("C"));
        assert_eq!(pairs(&h), [("A".to_string(), b"1".to_vec())]);
        h.add("E", "5").unwrap();
        assert_eq!(h.find_str("e"), Some("5"));
        assert_eq!(h.find_str("A"), Some("1"));
        assert!(h.remove("A"));
        assert!(h.remove("E"));
        assert!(h.is_empty() && h.names.is_empty() && h.values.is_empty());
    }

    #[test]
    fn storage_stays_bounded_when_fields_come_and_go() {
        let mut h = Headers::new();
        h.add("Keep", "me").unwrap();
        for i in 0..10_000 {
            h.add("X-Churn", format!("value {i}")).unwrap();
            h.add("Tail", "t").unwrap();
            assert!(h.remove("x-churn"));
            assert!(h.remove("tail"));
            h.add("Tail", "t").unwrap();
            assert!(h.remove("Keep"));
            h.add("Keep", "me").unwrap();
            assert!(h.remove("Tail"));
        }
        assert_eq!(pairs(&h), [("Keep".to_string(), b"me".to_vec())]);
        assert!(h.names.len() + h.values.len() < 1024, "storage grew");
    }

    #[test]
    fn equality_is_by_fields_in_order_not_by_storage() {
        let mut a = Headers::new();
        a.add("X", "gone").unwrap();
        a.add("A", "1").unwrap();
        a.remove("X");
        let mut b = Headers::new();
        b.add("A", "1").unwrap();
        assert_eq!(a, b);
        b.add("B", "2").unwrap();
        assert_ne!(a, b);
        a.add("B", "3").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.clone(), a);
    }
}
