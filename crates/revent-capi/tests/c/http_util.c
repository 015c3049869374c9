/* event2/http.h without a connection: URI parse (strict and EVHTTP_URI_NONCONFORMANT), the getters,
 * the setters and join; evhttp_encode_uri/evhttp_uriencode, evhttp_decode_uri/evhttp_uridecode (with
 * and without '+' as space); evhttp_parse_query/evhttp_parse_query_str (good and malformed);
 * evhttp_htmlescape; and struct evkeyvalq: evhttp_add_header/find/remove/clear, walked with
 * TAILQ_FOREACH, and a list built by hand that the library then searches, shortens and frees.
 * Everything runs twice: with libc's allocator, then with a counting one set by
 * event_set_mem_functions whose blocks carry a tag (so a block the library gives out that did not
 * come from it, or one it frees that it did not make, fails a CHECK), ending with no block live.
 * Where revent differs from libevent 2.1.12 on purpose, both answers are checked (-DREVENT).
 * Linked -levent_core -levent_extra by run.sh, as the dns tests are. */
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

/* ---- the allocators ---- */

#define TAG 0x7e57b10cUL
static long live;
static void *cmalloc(size_t n) {
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    p[0] = TAG;
    live++;
    return (char *)p + 16;
}
static void *crealloc(void *q, size_t n) {
    if (!q) return cmalloc(n);
    size_t *p = (size_t *)((char *)q - 16);
    CHECK(p[0] == TAG);
    p = realloc(p, n + 16);
    return p ? (char *)p + 16 : NULL;
}
static void cfree(void *q) {
    if (!q) return;
    size_t *p = (size_t *)((char *)q - 16);
    CHECK(p[0] == TAG);
    p[0] = 0;
    live--;
    free(p);
}
/* What the test allocates lists with and frees results with: the library's allocator. */
static void *(*xmalloc)(size_t) = malloc;
static void (*xfree)(void *) = free;

static char *xstrdup(const char *s) {
    char *d = xmalloc(strlen(s) + 1);
    CHECK(d);
    strcpy(d, s);
    return d;
}

static int same(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return !strcmp(a, b);
}

/* A string the library returned, compared with what is expected, then freed. */
static void expect_str(char *got, const char *want) {
    if (!same(got, want)) {
        fprintf(stderr, "got \"%s\", want \"%s\"\n", got ? got : "(null)", want ? want : "(null)");
        CHECK(0);
    }
    xfree(got);
}

/* ---- URIs ---- */

static void expect_uri(const char *s, unsigned flags, const char *scheme, const char *userinfo,
                       const char *host, int port, const char *path, const char *query,
                       const char *fragment, const char *joined) {
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(s, flags);
    char buf[1024];
    if (!u) fprintf(stderr, "did not parse: %s\n", s);
    CHECK(u);
    if (!(same(evhttp_uri_get_scheme(u), scheme) && same(evhttp_uri_get_userinfo(u), userinfo) &&
          same(evhttp_uri_get_host(u), host) && evhttp_uri_get_port(u) == port &&
          same(evhttp_uri_get_path(u), path) && same(evhttp_uri_get_query(u), query) &&
          same(evhttp_uri_get_fragment(u), fragment))) {
        fprintf(stderr, "components of %s\n", s);
        CHECK(0);
    }
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf);
    if (!same(buf, joined ? joined : s)) {
        fprintf(stderr, "join of %s: %s\n", s, buf);
        CHECK(0);
    }
    evhttp_uri_free(u);
}

static void expect_no_uri(const char *s, unsigned flags) {
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(s, flags);
    if (u) fprintf(stderr, "parsed, should not have: %s (flags %u)\n", s, flags);
    CHECK(u == NULL);
}

static void uri_parse(void) {
    const unsigned NC = EVHTTP_URI_NONCONFORMANT;
    unsigned f;
    for (f = 0; f <= NC; f++) { /* what parses strictly parses alike without it */
        expect_uri("http://www.test.com/?q=test", f, "http", NULL, "www.test.com", -1, "/", "q=test", NULL, NULL);
        expect_uri("scheme://user:pass@foo.com:42/?q=test&s=some+thing#fragment", f, "scheme", "user:pass",
                   "foo.com", 42, "/", "q=test&s=some+thing", "fragment", NULL);
        expect_uri("scheme://%75ser@foo.com/#frag@ment", f, "scheme", "%75ser", "foo.com", -1, "/", NULL,
                   "frag@ment", NULL);
        expect_uri("file:///some/path/to/the/file", f, "file", NULL, "", -1, "/some/path/to/the/file", NULL,
                   NULL, NULL);
        expect_uri("///some/path/to/the-file", f, NULL, NULL, "", -1, "/some/path/to/the-file", NULL, NULL, NULL);
        expect_uri("/s:ome/path/to/the-file?q=99#fred", f, NULL, NULL, NULL, -1, "/s:ome/path/to/the-file",
                   "q=99", "fred", NULL);
        expect_uri("relative/path/with/co:lon", f, NULL, NULL, NULL, -1, "relative/path/with/co:lon", NULL,
                   NULL, NULL);
        expect_uri("bob?q=99&q2=q?33#fr?ed", f, NULL, NULL, NULL, -1, "bob", "q=99&q2=q?33", "fr?ed", NULL);
        expect_uri("#fr?ed", f, NULL, NULL, NULL, -1, "", NULL, "fr?ed", NULL);
        expect_uri("", f, NULL, NULL, NULL, -1, "", NULL, NULL, NULL);
        expect_uri("http://[::1]:8080/index.html", f, "http", NULL, "[::1]", 8080, "/index.html", NULL, NULL,
                   NULL);
        expect_uri("http://[ff00::127.0.0.1]/", f, "http", NULL, "[ff00::127.0.0.1]", -1, "/", NULL, NULL, NULL);
        expect_uri("http://[v7.wobble:wobble]/", f, "http", NULL, "[v7.wobble:wobble]", -1, "/", NULL, NULL, NULL);
        expect_uri("mailto:a@b", f, "mailto", NULL, NULL, -1, "a@b", NULL, NULL, NULL);
        expect_uri("ftp://www.example.com", f, "ftp", NULL, "www.example.com", -1, "", NULL, NULL, NULL);
        /* An empty port is no port, and join leaves the ':' out. */
        expect_uri("http://www.test.com:/", f, "http", NULL, "www.test.com", -1, "/", NULL, NULL,
                   "http://www.test.com/");
        expect_uri("http://h:65535/", f, "http", NULL, "h", 65535, "/", NULL, NULL, NULL);
        expect_uri("http://h:0080/", f, "http", NULL, "h", 80, "/", NULL, NULL, "http://h:80/");
        expect_uri("svn+ssh://h/?", f, "svn+ssh", NULL, "h", -1, "/", "", NULL, NULL);
        expect_uri("s://h/#", f, "s", NULL, "h", -1, "/", NULL, "", NULL);
        expect_uri("http://!$&'()*+,;=.example/a%2Fb", f, "http", NULL, "!$&'()*+,;=.example", -1, "/a%2Fb",
                   NULL, NULL, NULL);

        /* Refused in both modes: the scheme and authority are checked strictly always. */
        expect_no_uri("http://www.[test].com/", f);
        expect_no_uri("http://[hello-world]/", f);
        expect_no_uri("http://[1.2.3.4]/", f);
        expect_no_uri("http://[::1%eth0]/", f);
        expect_no_uri("http://[::1/", f);
        expect_no_uri("http://user name@host/", f);
        expect_no_uri("http://h:65536/", f);
        expect_no_uri("http://h:80x/", f);
        expect_no_uri("http://ho st/", f);
        expect_no_uri("99:99/foo", f);
        expect_no_uri("1http://x/", f);
        expect_no_uri("http://caf\xe9.example/", f);
    }

    /* Strict only: what RFC 3986 forbids in the path, query and fragment. */
    expect_no_uri("http://www.test.com/ab cd", 0);
    expect_uri("http://www.test.com/ab cd", NC, "http", NULL, "www.test.com", -1, "/ab cd", NULL, NULL, NULL);
    expect_no_uri("http://www.test.com/foo?ba%r", 0);
    expect_uri("http://www.test.com/foo?ba%r", NC, "http", NULL, "www.test.com", -1, "/foo", "ba%r", NULL,
               NULL);
    expect_no_uri("http://www.test.com/why-hello%7", 0);
    expect_uri("http://www.test.com/why-hello%7", NC, "http", NULL, "www.test.com", -1, "/why-hello%7", NULL,
               NULL, NULL);
    expect_no_uri("/a?q=a b#f g", 0);
    expect_uri("/a?q=a b#f g", NC, NULL, NULL, NULL, -1, "/a", "q=a b", "f g", NULL);
    expect_no_uri("/a#b#c", 0);
    expect_uri("/a#b#c", NC, NULL, NULL, NULL, -1, "/a", NULL, "b#c", NULL);
    expect_no_uri("/\"quoted\"<tag>{x}|^`\\", 0);
    expect_uri("/\"quoted\"<tag>{x}|^`\\", NC, NULL, NULL, NULL, -1, "/\"quoted\"<tag>{x}|^`\\", NULL, NULL,
               NULL);
    /* Bytes that are not ASCII (nor UTF-8) come back as they were. */
    expect_no_uri("http://h/caf\xe9", 0);
    expect_uri("http://h/caf\xe9?\xff=\x80#\xc3", NC, "http", NULL, "h", -1, "/caf\xe9", "\xff=\x80", "\xc3",
               NULL);
    expect_no_uri("/tab\there", 0);
    expect_uri("/tab\there", NC, NULL, NULL, NULL, -1, "/tab\there", NULL, NULL, NULL);

    /* evhttp_uri_parse is the strict parse. */
    CHECK(evhttp_uri_parse("http://www.test.com/ab cd") == NULL);
    struct evhttp_uri *u = evhttp_uri_parse("http://www.test.com/ab%20cd");
    CHECK(u && same(evhttp_uri_get_path(u), "/ab%20cd"));
    evhttp_uri_free(u);
}

static void uri_build(void) {
    char buf[256];
    struct evhttp_uri *u = evhttp_uri_new();
    CHECK(u);
    CHECK(evhttp_uri_get_scheme(u) == NULL && evhttp_uri_get_userinfo(u) == NULL &&
          evhttp_uri_get_host(u) == NULL && evhttp_uri_get_port(u) == -1 && evhttp_uri_get_path(u) == NULL &&
          evhttp_uri_get_query(u) == NULL && evhttp_uri_get_fragment(u) == NULL);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf && !strcmp(buf, ""));

    CHECK(evhttp_uri_set_scheme(u, "33") == -1);
    CHECK(evhttp_uri_set_scheme(u, "") == -1);
    CHECK(evhttp_uri_set_scheme(u, "ht:tp") == -1);
    CHECK(evhttp_uri_set_scheme(u, "svn+ssh") == 0);
    CHECK(same(evhttp_uri_get_scheme(u), "svn+ssh"));
    CHECK(evhttp_uri_set_userinfo(u, "u s") == -1);
    CHECK(evhttp_uri_set_userinfo(u, "a@b") == -1);
    CHECK(evhttp_uri_set_userinfo(u, "us:er%40") == 0);
    CHECK(evhttp_uri_set_host(u, "www.[foo].com") == -1);
    CHECK(evhttp_uri_set_host(u, "[1.2.3.4]") == -1);
    CHECK(evhttp_uri_set_host(u, "a/b") == -1);
    CHECK(evhttp_uri_set_host(u, "[1:2::3]") == 0);
    CHECK(evhttp_uri_set_port(u, -2) == -1);
    CHECK(evhttp_uri_set_port(u, 8080) == 0);
    CHECK(evhttp_uri_get_port(u) == 8080);
    /* A failed setter leaves the old value. */
    CHECK(same(evhttp_uri_get_host(u), "[1:2::3]") && same(evhttp_uri_get_userinfo(u), "us:er%40"));

    CHECK(evhttp_uri_set_path(u, "/a b") == -1);
    CHECK(evhttp_uri_set_path(u, "/a?b") == -1);
    CHECK(evhttp_uri_set_path(u, "/a%2") == -1);
    CHECK(evhttp_uri_set_path(u, "/a%20b") == 0);
    CHECK(evhttp_uri_set_query(u, "q=a b") == -1);
    CHECK(evhttp_uri_set_query(u, "q=1?&r=2") == 0);
    CHECK(evhttp_uri_set_fragment(u, "f#g") == -1);
    CHECK(evhttp_uri_set_fragment(u, "top") == 0);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf);
    CHECK(!strcmp(buf, "svn+ssh://us:er%40@[1:2::3]:8080/a%20b?q=1?&r=2#top"));

    /* The flags the setters check with. */
    evhttp_uri_set_flags(u, EVHTTP_URI_NONCONFORMANT);
    CHECK(evhttp_uri_set_path(u, "/a b") == 0);
    CHECK(evhttp_uri_set_path(u, "/a?b") == -1);
    CHECK(evhttp_uri_set_query(u, "q=a b") == 0);
    CHECK(evhttp_uri_set_query(u, "q#") == -1);
    CHECK(evhttp_uri_set_fragment(u, "f#g") == 0);
    CHECK(evhttp_uri_set_host(u, "h st") == -1); /* the host is strict whatever the flags */
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf);
    CHECK(!strcmp(buf, "svn+ssh://us:er%40@[1:2::3]:8080/a b?q=a b#f#g"));
    evhttp_uri_set_flags(u, 0);
    CHECK(evhttp_uri_set_path(u, "/c d") == -1);
    CHECK(same(evhttp_uri_get_path(u), "/a b")); /* what is set stays, unchecked */

    /* join's limit counts the NUL. */
    size_t n = strlen(buf);
    CHECK(evhttp_uri_join(u, buf, n) == NULL);
    CHECK(evhttp_uri_join(u, buf, n + 1) == buf && strlen(buf) == n);
    CHECK(evhttp_uri_join(u, buf, 0) == NULL);

    /* Without a host, neither userinfo nor port is written. */
    CHECK(evhttp_uri_set_host(u, NULL) == 0);
    CHECK(evhttp_uri_get_host(u) == NULL);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf && !strcmp(buf, "svn+ssh:/a b?q=a b#f#g"));
    CHECK(evhttp_uri_set_scheme(u, NULL) == 0 && evhttp_uri_set_query(u, NULL) == 0 &&
          evhttp_uri_set_fragment(u, NULL) == 0 && evhttp_uri_set_port(u, -1) == 0);
    CHECK(evhttp_uri_get_port(u) == -1);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf && !strcmp(buf, "/a b"));

    /* A host with a path that does not start with '/': both setters take it, join refuses. */
    CHECK(evhttp_uri_set_path(u, "rel") == 0);
    CHECK(evhttp_uri_set_host(u, "h") == 0);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == NULL);
    CHECK(evhttp_uri_set_path(u, "") == 0);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf && !strcmp(buf, "//us:er%40@h"));
    CHECK(evhttp_uri_set_path(u, "/x") == 0);
    /* Any port from -1 up is taken and written, as libevent does. */
    CHECK(evhttp_uri_set_port(u, 70000) == 0);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf && !strcmp(buf, "//us:er%40@h:70000/x"));
    CHECK(evhttp_uri_set_port(u, 0) == 0);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf && !strcmp(buf, "//us:er%40@h:0/x"));
    evhttp_uri_free(u);

    /* A parsed URI is changed and joined again; getters see the new values. */
    u = evhttp_uri_parse("http://www.example.com/index.html?a=1#x");
    CHECK(u);
    CHECK(evhttp_uri_set_host(u, "[::1]") == 0 && evhttp_uri_set_port(u, 81) == 0);
    CHECK(evhttp_uri_set_query(u, NULL) == 0);
    CHECK(same(evhttp_uri_get_host(u), "[::1]") && evhttp_uri_get_query(u) == NULL);
    CHECK(evhttp_uri_join(u, buf, sizeof buf) == buf && !strcmp(buf, "http://[::1]:81/index.html#x"));
    /* Parsed strictly, the URI's setters are strict. */
    CHECK(evhttp_uri_set_path(u, "/a b") == -1);
    evhttp_uri_free(u);
    u = evhttp_uri_parse_with_flags("/", EVHTTP_URI_NONCONFORMANT);
    CHECK(u && evhttp_uri_set_path(u, "/a b") == 0);
    evhttp_uri_free(u);
}

/* ---- encoding ---- */

static void encoding(void) {
    size_t n = 99;
    char *p;
    expect_str(evhttp_encode_uri("abcXYZ019-._~"), "abcXYZ019-._~");
    expect_str(evhttp_encode_uri("a b/c?d=\xc3\xa9&+%"), "a%20b%2Fc%3Fd%3D%C3%A9%26%2B%25");
    expect_str(evhttp_encode_uri(""), "");
    expect_str(evhttp_encode_uri("\x01\x7f\xff"), "%01%7F%FF");
    expect_str(evhttp_uriencode("hello\0world", 11, 0), "hello%00world");
    expect_str(evhttp_uriencode("hello\0world", -1, 0), "hello");
    expect_str(evhttp_uriencode("abcdef", 3, 0), "abc");
    expect_str(evhttp_uriencode("abc", 0, 0), "");
    expect_str(evhttp_uriencode("1+2 = 3", -1, 1), "1%2B2+%3D+3");
    expect_str(evhttp_uriencode("1+2 = 3", -1, 0), "1%2B2%20%3D%203");

    /* evhttp_decode_uri: '+' is a space only after the first '?'. */
    expect_str(evhttp_decode_uri("/a+b%20c?k=v+w"), "/a+b c?k=v w");
    expect_str(evhttp_decode_uri("no+query"), "no+query");
    expect_str(evhttp_decode_uri("100%"), "100%");
    expect_str(evhttp_decode_uri("%4a%4A%4%zz%"), "JJ%4%zz%");
    expect_str(evhttp_decode_uri(""), "");
    /* A %00 leaves a NUL in the result, as libevent's does; C reads up to it. */
    p = evhttp_decode_uri("ab%00cd");
    CHECK(p && !memcmp(p, "ab\0cd", 6));
    xfree(p);

    /* evhttp_uridecode: '+' as asked, the length counts decoded NULs. */
    p = evhttp_uridecode("plus+should%20work+", 1, &n);
    CHECK(n == 17);
    expect_str(p, "plus should work ");
    p = evhttp_uridecode("plus+should%20work+", 0, &n);
    CHECK(n == 17);
    expect_str(p, "plus+should work+");
    p = evhttp_uridecode("?a+b", 0, &n); /* no '?' rule here */
    expect_str(p, "?a+b");
    p = evhttp_uridecode("a%00b%ff", 1, &n);
    CHECK(p && n == 4 && !memcmp(p, "a\0b\xff", 5));
    xfree(p);
    p = evhttp_uridecode("%%41%4%", 0, &n);
    CHECK(n == 5);
    expect_str(p, "%A%4%");
    p = evhttp_uridecode("", 0, &n);
    CHECK(n == 0);
    expect_str(p, "");
    expect_str(evhttp_uridecode("x%41", 0, NULL), "xA");

    /* Round trip of every byte. */
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    char *enc = evhttp_uriencode(all, 256, 1);
    CHECK(enc && strlen(enc) == 66 + 189 * 3 + 1); /* 66 unreserved, ' ' as '+', 189 escaped */
    p = evhttp_uridecode(enc, 1, &n);
    CHECK(p && n == 256 && !memcmp(p, all, 256));
    xfree(p);
    xfree(enc);
}

static void html(void) {
    expect_str(evhttp_htmlescape("<a href=\"x\">Tom & Jerry's</a>"),
               "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#039;s&lt;/a&gt;");
    expect_str(evhttp_htmlescape(""), "");
    expect_str(evhttp_htmlescape("plain text"), "plain text");
    expect_str(evhttp_htmlescape("&amp;"), "&amp;amp;");
    expect_str(evhttp_htmlescape("caf\xe9 <b>\xc3\xa9</b>\xff"), "caf\xe9 &lt;b&gt;\xc3\xa9&lt;/b&gt;\xff");
    CHECK(evhttp_htmlescape(NULL) == NULL);
}

/* ---- header lists ---- */

static int count(struct evkeyvalq *h) {
    int n = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, h, next) n++;
    /* the tail pointer is right too */
    CHECK(*h->tqh_last == NULL);
    if (n) CHECK(h->tqh_last == &TAILQ_LAST(h, evkeyvalq)->next.tqe_next);
    else CHECK(h->tqh_last == &h->tqh_first);
    return n;
}

/* The list is exactly these key, value pairs, in order (NULL-terminated). */
static void expect_list(struct evkeyvalq *h, const char *const *kv) {
    struct evkeyval *e;
    int i = 0;
    TAILQ_FOREACH(e, h, next) {
        CHECK(kv[i] && kv[i + 1]);
        if (strcmp(e->key, kv[i]) || strcmp(e->value, kv[i + 1])) {
            fprintf(stderr, "entry %d: %s=%s, want %s=%s\n", i / 2, e->key, e->value, kv[i], kv[i + 1]);
            CHECK(0);
        }
        /* backward links */
        CHECK(*e->next.tqe_prev == e);
        i += 2;
    }
    CHECK(kv[i] == NULL);
    count(h);
}

static void headers(void) {
    struct evkeyvalq h;
    TAILQ_INIT(&h);
    CHECK(evhttp_find_header(&h, "x") == NULL);
    CHECK(evhttp_remove_header(&h, "x") == -1);
    CHECK(evhttp_add_header(&h, "Content-Type", "text/plain") == 0);
    CHECK(evhttp_add_header(&h, "X-Tag", "one") == 0);
    CHECK(evhttp_add_header(&h, "x-tag", "two") == 0);
    CHECK(evhttp_add_header(&h, "Empty", "") == 0);
    CHECK(evhttp_add_header(&h, "Tab", "a\tb \x80\xff") == 0);
    {
        const char *want[] = {"Content-Type", "text/plain", "X-Tag", "one", "x-tag", "two", "Empty", "",
                              "Tab", "a\tb \x80\xff", NULL};
        expect_list(&h, want);
    }
    CHECK(same(evhttp_find_header(&h, "content-TYPE"), "text/plain"));
    CHECK(same(evhttp_find_header(&h, "X-TAG"), "one"));
    CHECK(same(evhttp_find_header(&h, "empty"), ""));
    CHECK(evhttp_find_header(&h, "Content-Typ") == NULL);
    CHECK(evhttp_find_header(&h, "Content-Type ") == NULL);
    /* The value C gets is the list's own string. */
    CHECK(evhttp_find_header(&h, "tab") == TAILQ_LAST(&h, evkeyvalq)->value);

    /* Refused: CR or LF in the key or the value (header injection). */
    CHECK(evhttp_add_header(&h, "Bad\r\nKey", "v") == -1);
    CHECK(evhttp_add_header(&h, "Bad\nKey", "v") == -1);
    CHECK(evhttp_add_header(&h, "X-Evil", "a\r\nSet-Cookie: b=c") == -1);
    CHECK(evhttp_add_header(&h, "X-Evil", "a\nb") == -1);
    CHECK(evhttp_add_header(&h, "X-Evil", "a\rb") == -1);
    CHECK(evhttp_add_header(&h, "X-Evil", "trailing\r\n") == -1);
#ifdef REVENT
    /* revent also refuses obsolete folding (as libevent 2.1.13 does) and keys that are not tokens. */
    CHECK(evhttp_add_header(&h, "X-Fold", "a\r\n b") == -1);
    CHECK(evhttp_add_header(&h, "Bad Name", "v") == -1);
    CHECK(evhttp_add_header(&h, "X: y", "v") == -1);
    CHECK(evhttp_add_header(&h, "", "v") == -1);
    CHECK(count(&h) == 5);
#else
    /* Debian's 2.1.12 took an obsolete fold and a key that is not a token; its security update
     * (2.1.12-stable-8+deb12u1, September 2026, with 2.1.13's fixes) refuses the fold. Either
     * answer is libevent's; what was taken is removed again. */
    {
        int fold = evhttp_add_header(&h, "X-Fold", "a\r\n b");
        int bad = evhttp_add_header(&h, "Bad Name", "v");
        CHECK(fold == 0 || fold == -1);
        CHECK(bad == 0 || bad == -1);
        CHECK(evhttp_remove_header(&h, "X-Fold") == fold);
        CHECK(evhttp_remove_header(&h, "Bad Name") == bad);
        CHECK(count(&h) == 5);
    }
#endif

    /* Removal takes the first match only, anywhere in the list. */
    CHECK(evhttp_remove_header(&h, "X-TAG") == 0);
    CHECK(same(evhttp_find_header(&h, "x-tag"), "two"));
    CHECK(evhttp_remove_header(&h, "nope") == -1);
    CHECK(evhttp_remove_header(&h, "tab") == 0); /* the last */
    CHECK(evhttp_add_header(&h, "Last", "L") == 0); /* appended after a removed tail */
    CHECK(evhttp_remove_header(&h, "content-type") == 0); /* the first */
    {
        const char *want[] = {"x-tag", "two", "Empty", "", "Last", "L", NULL};
        expect_list(&h, want);
    }
    CHECK(evhttp_remove_header(&h, "x-tag") == 0);
    CHECK(evhttp_remove_header(&h, "x-tag") == -1);
    CHECK(evhttp_remove_header(&h, "Last") == 0);
    CHECK(evhttp_remove_header(&h, "EMPTY") == 0);
    CHECK(TAILQ_EMPTY(&h) && count(&h) == 0);
    CHECK(evhttp_add_header(&h, "Again", "1") == 0);
    CHECK(count(&h) == 1);

    /* Clear frees everything and leaves an empty list that takes new entries. */
    for (int i = 0; i < 100; i++) CHECK(evhttp_add_header(&h, "Many", "x") == 0);
    CHECK(count(&h) == 101);
    evhttp_clear_headers(&h);
    CHECK(TAILQ_EMPTY(&h) && count(&h) == 0);
    evhttp_clear_headers(&h);
    CHECK(evhttp_add_header(&h, "After", "clear") == 0);
    CHECK(same(evhttp_find_header(&h, "after"), "clear"));
    evhttp_clear_headers(&h);

    /* A list built by hand (from the library's allocator), inserted at both ends. */
    const char *names[] = {"B", "C", "A"};
    for (int i = 0; i < 3; i++) {
        struct evkeyval *kv = xmalloc(sizeof *kv);
        CHECK(kv);
        kv->key = xstrdup(names[i]);
        kv->value = xstrdup(i == 2 ? "first" : "mid");
        if (i == 2) TAILQ_INSERT_HEAD(&h, kv, next);
        else TAILQ_INSERT_TAIL(&h, kv, next);
    }
    CHECK(evhttp_add_header(&h, "D", "added") == 0);
    {
        const char *want[] = {"A", "first", "B", "mid", "C", "mid", "D", "added", NULL};
        expect_list(&h, want);
    }
    CHECK(same(evhttp_find_header(&h, "a"), "first"));
    CHECK(evhttp_remove_header(&h, "b") == 0);
    CHECK(evhttp_remove_header(&h, "A") == 0);
    {
        const char *want[] = {"C", "mid", "D", "added", NULL};
        expect_list(&h, want);
    }
    /* C unlinks one itself, then the library frees the rest. */
    struct evkeyval *c = TAILQ_FIRST(&h);
    TAILQ_REMOVE(&h, c, next);
    xfree(c->key);
    xfree(c->value);
    xfree(c);
    CHECK(count(&h) == 1);
    evhttp_clear_headers(&h);
    CHECK(TAILQ_EMPTY(&h));
}

/* ---- query strings ---- */

static void query(void) {
    struct evkeyvalq h;
    CHECK(evhttp_parse_query("http://www.test.com/?q=test", &h) == 0);
    {
        const char *want[] = {"q", "test", NULL};
        expect_list(&h, want);
    }
    evhttp_clear_headers(&h);
    CHECK(evhttp_parse_query("http://www.test.com/?q=test&q2=foo&q=again", &h) == 0);
    {
        const char *want[] = {"q", "test", "q2", "foo", "q", "again", NULL};
        expect_list(&h, want);
    }
    CHECK(same(evhttp_find_header(&h, "Q"), "test"));
    evhttp_clear_headers(&h);
    CHECK(evhttp_parse_query("http://www.test.com/?q=test+this%21&e=&eq=a=b&a+b%20c=1#frag", &h) == 0);
    {
        /* values decoded ('+' a space), keys as written */
        const char *want[] = {"q", "test this!", "e", "", "eq", "a=b", "a+b%20c", "1", NULL};
        expect_list(&h, want);
    }
    evhttp_clear_headers(&h);
    CHECK(evhttp_parse_query("http://www.test.com/?q=test%0Afoo&x=%zz%4", &h) == -1); /* strict */
    CHECK(evhttp_parse_query_str("q=test%0Afoo&x=%zz%4", &h) == 0);
    {
        const char *want[] = {"q", "test\nfoo", "x", "%zz%4", NULL};
        expect_list(&h, want);
    }
    evhttp_clear_headers(&h);
    CHECK(evhttp_parse_query("http://www.test.com/?a=1&", &h) == 0);
    CHECK(count(&h) == 1);
    evhttp_clear_headers(&h);
    /* no query, an empty query, a relative reference */
    CHECK(evhttp_parse_query("http://www.test.com/", &h) == 0 && count(&h) == 0);
    CHECK(evhttp_parse_query("http://www.test.com/?", &h) == 0 && count(&h) == 0);
    CHECK(evhttp_parse_query("/path?k=v", &h) == 0 && same(evhttp_find_header(&h, "k"), "v"));
    evhttp_clear_headers(&h);

    /* Malformed: the call fails and leaves the list empty. */
    CHECK(evhttp_parse_query("http://www.test.com/?q=test&&q2", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query("http://www.test.com/?q=test&q2", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query("http://www.test.com/?=x", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query("http://www.test.com/?a=1&&", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query("http://www.test.com/?&", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query("http://www.test.com/a b?q=1", &h) == -1 && count(&h) == 0); /* strict URI */
    CHECK(evhttp_parse_query("http://www.test.com/?q=a b", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query("http://[bad/?q=1", &h) == -1 && count(&h) == 0);

    /* evhttp_parse_query_str: the query alone. */
    CHECK(evhttp_parse_query_str("q=test&s=some+thing&a%20b=c%20d", &h) == 0);
    {
        const char *want[] = {"q", "test", "s", "some thing", "a%20b", "c d", NULL};
        expect_list(&h, want);
    }
    evhttp_clear_headers(&h);
    /* Not a URI: anything but '&' and '=' is taken, bytes that are not UTF-8 too. */
    CHECK(evhttp_parse_query_str("k\xe9y=v\xe9%41+&sp ace=a b#c?d&u=%C3%A9", &h) == 0);
    {
        const char *want[] = {"k\xe9y", "v\xe9" "A ", "sp ace", "a b#c?d", "u", "\xc3\xa9", NULL};
        expect_list(&h, want);
    }
    evhttp_clear_headers(&h);
    CHECK(evhttp_parse_query_str("", &h) == 0 && count(&h) == 0);
    CHECK(evhttp_parse_query_str(NULL, &h) == 0 && count(&h) == 0);
    CHECK(evhttp_parse_query_str("q", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query_str("a=1&b", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query_str("a=1&=2", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query_str("\xff", &h) == -1 && count(&h) == 0);

    /* A value that decodes to a NUL: libevent cuts it there, revent refuses the query. */
#ifdef REVENT
    CHECK(evhttp_parse_query_str("ok=1&file=admin%00.jpg", &h) == -1 && count(&h) == 0);
    CHECK(evhttp_parse_query("/?file=admin%00.jpg", &h) == -1 && count(&h) == 0);
#else
    CHECK(evhttp_parse_query_str("ok=1&file=admin%00.jpg", &h) == 0);
    CHECK(same(evhttp_find_header(&h, "file"), "admin"));
    evhttp_clear_headers(&h);
#endif
    /* A NUL in the key is only possible as "%00" written out: keys are not decoded. */
    CHECK(evhttp_parse_query_str("%00=1", &h) == 0 && same(evhttp_find_header(&h, "%00"), "1"));
    evhttp_clear_headers(&h);

    /* The parsed list is an ordinary list: the header functions work on it. */
    CHECK(evhttp_parse_query("/x?a=1&b=2&c=3", &h) == 0);
    CHECK(evhttp_remove_header(&h, "b") == 0);
    CHECK(evhttp_add_header(&h, "d", "4") == 0);
    {
        const char *want[] = {"a", "1", "c", "3", "d", "4", NULL};
        expect_list(&h, want);
    }
    evhttp_clear_headers(&h);
}

static void run_all(void) {
    uri_parse();
    uri_build();
    encoding();
    html();
    headers();
    query();
}

int main(void) {
    /* struct evkeyval and evkeyvalq as keyvalq_struct.h lays them out (ABI.md). */
    CHECK(sizeof(struct evkeyval) == 32 && offsetof(struct evkeyval, key) == 16 &&
          offsetof(struct evkeyval, value) == 24 && sizeof(struct evkeyvalq) == 16);
    run_all();
    event_set_mem_functions(cmalloc, crealloc, cfree);
    xmalloc = cmalloc;
    xfree = cfree;
    run_all();
    if (live != 0) fprintf(stderr, "%ld blocks live\n", live);
    CHECK(live == 0);
    event_set_mem_functions(NULL, NULL, NULL);
    printf("http_util: ok\n");
    return 0;
}
