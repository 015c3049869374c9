//! Query strings: `evhttp_parse_query_str` and `evhttp_parse_query`.
//!
//! A query is split at each `&` into `key=value` pairs, in order, duplicates kept. As in libevent
//! 2.1, the whole parse fails if any pair lacks an `=` or has an empty key (`a=1&&b=2`, `q`, `=v`);
//! one `&` at the very end is allowed, and an empty query gives no pairs. The value is everything
//! after the pair's first `=` (more `=` included), decoded as [`uridecode`]`(value, true)`: `+` is a
//! space, `%HH` a byte, a bad `%` kept as it is. The key is *not* decoded: libevent keeps it as
//! written, so `a+b=1` has the key `a+b`.
//!
//! Decoded values are bytes, and may hold NULs or not be UTF-8. Two forms, neither of which loses
//! anything:
//!
//! - [`parse_query_str`] and [`parse_query`] give `String` values and fail with
//!   [`QueryError::NotUtf8`], which carries the pair's key and decoded bytes, when a value is not
//!   UTF-8;
//! - [`parse_query_str_bytes`] and [`parse_query_bytes`] give the values as bytes and never fail
//!   for that reason.
//!
//! A NUL (`%00`) is kept in the value. libevent stores values as C strings, so its values end at
//! the first one; cutting a value there would let `admin%00.jpg` read as `admin`, so revent does not.

use std::fmt;

use crate::encode::uridecode;
use crate::uri::{Uri, UriError};

/// Why a query string was refused.
///
/// Offsets are in bytes, into the query (for [`parse_query`], into the URI's query part, after
/// the `?`).
///
/// ```
/// use revent_http::query::{parse_query_str, QueryError};
///
/// assert_eq!(parse_query_str("q=test&&q2=x"), Err(QueryError::MissingEquals { at: 7 }));
/// assert_eq!(parse_query_str("=x"), Err(QueryError::EmptyKey { at: 0 }));
/// let err = parse_query_str("a=%FF").unwrap_err();
/// assert_eq!(
///     err,
///     QueryError::NotUtf8 { at: 0, key: "a".to_string(), value: vec![0xff] }
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// The pair at `at` has no `=` (an empty pair, as between `&&`, included).
    MissingEquals {
        /// Offset of the pair.
        at: usize,
    },
    /// The pair at `at` starts with `=`: its key is empty.
    EmptyKey {
        /// Offset of the pair.
        at: usize,
    },
    /// The value of the pair at `at` does not decode to UTF-8; the pair is here in full.
    NotUtf8 {
        /// Offset of the pair.
        at: usize,
        /// The pair's key, as written.
        key: String,
        /// The pair's decoded value.
        value: Vec<u8>,
    },
    /// [`parse_query`] was given a URI that [`Uri::parse`] refuses.
    Uri(UriError),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::MissingEquals { at } => write!(f, "query pair without '=' at byte {at}"),
            QueryError::EmptyKey { at } => write!(f, "query pair with an empty key at byte {at}"),
            QueryError::NotUtf8 { at, key, .. } => {
                write!(f, "value of query key {key:?} at byte {at} is not UTF-8")
            }
            QueryError::Uri(e) => write!(f, "cannot parse the query's URI: {e}"),
        }
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueryError::Uri(e) => Some(e),
            _ => None,
        }
    }
}

impl From<UriError> for QueryError {
    fn from(e: UriError) -> QueryError {
        QueryError::Uri(e)
    }
}

/// Splits `query` into pairs, handing each pair's offset, key and raw value to `f`.
fn split<T>(
    query: &str,
    mut f: impl FnMut(usize, &str, &str) -> Result<T, QueryError>,
) -> Result<Vec<T>, QueryError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < query.len() {
        let end = query[pos..].find('&').map_or(query.len(), |i| pos + i);
        let pair = &query[pos..end];
        match pair.find('=') {
            None => return Err(QueryError::MissingEquals { at: pos }),
            Some(0) => return Err(QueryError::EmptyKey { at: pos }),
            Some(eq) => out.push(f(pos, &pair[..eq], &pair[eq + 1..])?),
        }
        pos = end + 1;
    }
    Ok(out)
}

/// Parses a query string (without its `?`) as `evhttp_parse_query_str`, with the values decoded
/// to bytes. See the [module](self) docs for the rules.
///
/// ```
/// use revent_http::query::parse_query_str_bytes;
///
/// let pairs = parse_query_str_bytes("file=a%00b&raw=%FF%FE&")?;
/// assert_eq!(pairs, [("file".to_string(), b"a\0b".to_vec()), ("raw".to_string(), vec![0xff, 0xfe])]);
/// # Ok::<(), revent_http::query::QueryError>(())
/// ```
pub fn parse_query_str_bytes(query: &str) -> Result<Vec<(String, Vec<u8>)>, QueryError> {
    split(query, |_, key, value| {
        Ok((key.to_owned(), uridecode(value, true)))
    })
}

/// Parses a query string (without its `?`) as `evhttp_parse_query_str`. See the [module](self)
/// docs for the rules; a value that does not decode to UTF-8 fails the parse with
/// [`QueryError::NotUtf8`] (use [`parse_query_str_bytes`] to take such values).
///
/// ```
/// use revent_http::query::parse_query_str;
///
/// let pairs = parse_query_str("q=test&s=some+thing&e=&eq=a=b&k+%41=v")?;
/// let want = [("q", "test"), ("s", "some thing"), ("e", ""), ("eq", "a=b"), ("k+%41", "v")];
/// assert_eq!(pairs.len(), want.len());
/// for ((k, v), (wk, wv)) in pairs.iter().zip(want) {
///     assert_eq!((k.as_str(), v.as_str()), (wk, wv));
/// }
/// assert!(parse_query_str("q=test&q2").is_err());
/// # Ok::<(), revent_http::query::QueryError>(())
/// ```
pub fn parse_query_str(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    split(query, |at, key, value| {
        let decoded = uridecode(value, true);
        match String::from_utf8(decoded) {
            Ok(v) => Ok((key.to_owned(), v)),
            Err(e) => Err(QueryError::NotUtf8 {
                at,
                key: key.to_owned(),
                value: e.into_bytes(),
            }),
        }
    })
}

/// The query part of `uri`, parsed strictly as `evhttp_parse_query` does; a URI without a query
/// (or with an empty one) has no pairs.
fn query_of(uri: &str) -> Result<String, QueryError> {
    let uri = Uri::parse(uri)?;
    Ok(uri.query().unwrap_or("").to_owned())
}

/// Parses the query of a whole URI as `evhttp_parse_query`: the URI is parsed strictly
/// ([`Uri::parse`]), and its query, if any, as [`parse_query_str`].
///
/// ```
/// use revent_http::query::parse_query;
///
/// let pairs = parse_query("http://www.test.com/?q=test%0Afoo&foo=bar")?;
/// assert_eq!(pairs, [("q".to_string(), "test\nfoo".to_string()), ("foo".into(), "bar".into())]);
/// assert!(parse_query("http://www.test.com/").unwrap().is_empty());
/// assert!(parse_query("http://www.test.com/a b?q=1").is_err());
/// # Ok::<(), revent_http::query::QueryError>(())
/// ```
pub fn parse_query(uri: &str) -> Result<Vec<(String, String)>, QueryError> {
    parse_query_str(&query_of(uri)?)
}

/// As [`parse_query`], with the values decoded to bytes ([`parse_query_str_bytes`]).
pub fn parse_query_bytes(uri: &str) -> Result<Vec<(String, Vec<u8>)>, QueryError> {
    parse_query_str_bytes(&query_of(uri)?)
}
