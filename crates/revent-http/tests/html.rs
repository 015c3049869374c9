//! `evhttp_htmlescape`.

use revent_http::html::html_escape;

#[test]
fn each_replacement() {
    assert_eq!(html_escape("<"), "&lt;");
    assert_eq!(html_escape(">"), "&gt;");
    assert_eq!(html_escape("\""), "&quot;");
    assert_eq!(html_escape("'"), "&#039;");
    assert_eq!(html_escape("&"), "&amp;");
    assert_eq!(html_escape("&amp;"), "&amp;amp;");
}

#[test]
fn everything_else_is_copied() {
    assert_eq!(html_escape(""), "");
    assert_eq!(
        html_escape("plain text / 100% ;=#"),
        "plain text / 100% ;=#"
    );
    assert_eq!(html_escape("é\u{0}ü<"), "é\u{0}ü&lt;");
}

/// libevent's 404 page puts the escaped request URI into its body.
#[test]
fn a_hostile_uri() {
    assert_eq!(
        html_escape("/<script>alert('x')</script>"),
        "/&lt;script&gt;alert(&#039;x&#039;)&lt;/script&gt;"
    );
}
