/* Differential: the connection-free functions of event2/http.h over 30000 generated strings,
 * every answer printed (strings in hex), so that run.sh can check that Debian's libevent and revent
 * print the same. The strings are built from pieces that matter to URIs and queries (delimiters,
 * '%' escapes good and bad, brackets, ports, '+', spaces, control bytes, bytes that are not ASCII
 * or not UTF-8). Left out, as revent differs there on purpose (see http_util.rs): the header
 * functions (tested in ../http_util.c) and query strings with a "%00". */
#include <sys/queue.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long state = 0x2545F4914F6CDD1DULL;
static unsigned rnd(unsigned n) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (unsigned)(state % n);
}

static const char *pieces[] = {
    "http", "s", "a+b-c.d", "1", "://", ":", "//", "/", "?", "#", "@", "[", "]", "::1", "v7.", "1.2.3.4",
    "%", "%4", "%41", "%zz", "%C3%A9", "+", "&", "=", " ", "\t", "\x01", "\x7f", "\x80", "\xe9", "\xff",
    "\xc3\xa9", "<", ">", "\"", "'", "!$()*,;", "~_.-", "host", "www.example.com", "80", "65535", "65536",
    "0", "99999999999", "q=1", "a=b&c=d", "user:pw", "\\", "{}|^`", "..", "x",
};

static void hex(const char *s, size_t n) {
    if (!s) {
        fputs(" -", stdout);
        return;
    }
    putchar(' ');
    putchar('"');
    for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
    putchar('"');
}
static void str(const char *s) { hex(s, s ? strlen(s) : 0); }
static void owned(char *s) {
    str(s);
    free(s);
}

static void uri(const struct evhttp_uri *u) {
    char buf[512];
    if (!u) {
        fputs(" no-uri", stdout);
        return;
    }
    str(evhttp_uri_get_scheme(u));
    str(evhttp_uri_get_userinfo(u));
    str(evhttp_uri_get_host(u));
    printf(" %d", evhttp_uri_get_port(u));
    str(evhttp_uri_get_path(u));
    str(evhttp_uri_get_query(u));
    str(evhttp_uri_get_fragment(u));
    str(evhttp_uri_join((struct evhttp_uri *)u, buf, sizeof buf));
}

static void query(int whole, const char *s) {
    struct evkeyvalq h;
    struct evkeyval *kv;
    int r = whole ? evhttp_parse_query(s, &h) : evhttp_parse_query_str(s, &h);
    printf(" %d", r);
    TAILQ_FOREACH(kv, &h, next) {
        str(kv->key);
        str(kv->value);
    }
    evhttp_clear_headers(&h);
}

int main(void) {
    char s[256];
    for (int i = 0; i < 30000; i++) {
        size_t n = 0;
        int k = rnd(12);
        while (k-- > 0) {
            const char *p = pieces[rnd(sizeof pieces / sizeof *pieces)];
            size_t m = strlen(p);
            if (n + m >= sizeof s) break;
            memcpy(s + n, p, m);
            n += m;
        }
        s[n] = 0;
        printf("%d", i);
        str(s);
        for (unsigned f = 0; f <= EVHTTP_URI_NONCONFORMANT; f++) {
            struct evhttp_uri *u = evhttp_uri_parse_with_flags(s, f);
            uri(u);
            if (u) evhttp_uri_free(u); /* libevent's does not take NULL */
            /* The same string through every setter of a URI that has the others set. */
            u = evhttp_uri_parse_with_flags("http://u@h:1/p?q#f", f);
            printf(" %d %d %d %d %d %d %d", evhttp_uri_set_scheme(u, s), evhttp_uri_set_userinfo(u, s),
                   evhttp_uri_set_host(u, s), evhttp_uri_set_path(u, s), evhttp_uri_set_query(u, s),
                   evhttp_uri_set_fragment(u, s), evhttp_uri_set_port(u, (int)rnd(140000) - 2));
            uri(u);
            evhttp_uri_free(u);
        }
        owned(evhttp_encode_uri(s));
        owned(evhttp_uriencode(s, (ev_ssize_t)rnd((unsigned)n + 1), 1));
        owned(evhttp_decode_uri(s));
        for (int plus = 0; plus <= 1; plus++) {
            size_t len = 0;
            char *d = evhttp_uridecode(s, plus, &len);
            hex(d, len);
            free(d);
        }
        owned(evhttp_htmlescape(s));
        if (!strstr(s, "%00")) {
            query(0, s);
            query(1, s);
        }
        putchar('\n');
    }
    return 0;
}
