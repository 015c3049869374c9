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
    memchr::memchr3(b'\r', b'\n', 0, value).is_none()
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
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Invariant: every name is a token and no value holds CR, LF or NUL.
    fields: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.fields
                    .iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(v))),
            )
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
        self.fields.push((name.to_string(), value.to_vec()));
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
        self.fields.push((name.to_string(), value.to_vec()));
    }

    /// The value of the first field named `name`, compared ASCII-case-insensitively
    /// (`evhttp_find_header`).
    pub fn find(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
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
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether a field named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Removes the first field named `name` (`evhttp_remove_header`); returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        match self
            .fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.fields.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes every field (`evhttp_clear_headers`).
    pub fn clear(&mut self) {
        self.fields.clear();
    }

    /// The fields as `(name, value)` in the order they were added.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
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
    inner: std::slice::Iter<'a, (String, Vec<u8>)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(n, v)| (n.as_str(), v.as_slice()))
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
