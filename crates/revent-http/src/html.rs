//! HTML escaping: `evhttp_htmlescape`.

/// Escapes `s` for inclusion in HTML as `evhttp_htmlescape` does: `<` → `&lt;`, `>` → `&gt;`,
/// `"` → `&quot;`, `'` → `&#039;`, `&` → `&amp;`; every other character is copied as it is.
///
/// libevent reads a C string and so stops at the first NUL; here a NUL is an ordinary character and
/// is copied like the rest.
///
/// ```
/// use revent_http::html::html_escape;
///
/// assert_eq!(html_escape("<a href=\"x\">Tom & Jerry's</a>"),
///            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#039;s&lt;/a&gt;");
/// ```
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}
