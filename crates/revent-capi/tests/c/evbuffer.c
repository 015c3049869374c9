/* Evbuffers from C, the data path: exact bytes through add/prepend/remove/copyout/drain, moving
 * between buffers, pullup, several chunks, readln with every end-of-line style, search and
 * evbuffer_ptr, peek and reserve/commit over several chunks, iovecs, printf with long strings,
 * freezing, reading and writing fds, and the error returns on bad input. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/buffer_compat.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

/* Whether the library under test is revent's (some bad inputs crash libevent: only revent is
 * asked about them). */
static int on_revent(void) {
    Dl_info info;
    CHECK(dladdr((void *)evbuffer_new, &info) != 0);
    return info.dli_fname && strstr(info.dli_fname, "revent-libs") != NULL;
}

/* The whole buffer as a NUL-terminated copy (for comparing). */
static char *contents(struct evbuffer *b) {
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    CHECK(s);
    CHECK(evbuffer_copyout(b, s, n) == (ev_ssize_t)n);
    s[n] = 0;
    return s;
}

static void check_contents(struct evbuffer *b, const char *want) {
    char *s = contents(b);
    if (strcmp(s, want) != 0) {
        fprintf(stderr, "buffer holds \"%s\", want \"%s\"\n", s, want);
        CHECK(0);
    }
    free(s);
}

/* A buffer made of one chunk per string (moved in with evbuffer_add_buffer). */
static struct evbuffer *chunked(const char *const *parts, int n) {
    struct evbuffer *b = evbuffer_new();
    CHECK(b);
    for (int i = 0; i < n; i++) {
        struct evbuffer *p = evbuffer_new();
        CHECK(evbuffer_add(p, parts[i], strlen(parts[i])) == 0);
        CHECK(evbuffer_add_buffer(b, p) == 0);
        CHECK(evbuffer_get_length(p) == 0);
        evbuffer_free(p);
    }
    return b;
}

static void test_basic(void) {
    struct evbuffer *b = evbuffer_new();
    char out[64];
    CHECK(b && evbuffer_get_length(b) == 0);
    CHECK(evbuffer_add(b, "hello", 5) == 0);
    CHECK(evbuffer_add(b, "", 0) == 0);
    CHECK(evbuffer_add(b, " world", 6) == 0);
    CHECK(evbuffer_get_length(b) == 11);
    check_contents(b, "hello world");
    CHECK(evbuffer_prepend(b, ">> ", 3) == 0);
    check_contents(b, ">> hello world");

    memset(out, 0, sizeof out);
    CHECK(evbuffer_copyout(b, out, 5) == 5 && memcmp(out, ">> he", 5) == 0);
    CHECK(evbuffer_get_length(b) == 14);
    CHECK(evbuffer_remove(b, out, 3) == 3 && memcmp(out, ">> ", 3) == 0);
    CHECK(evbuffer_drain(b, 6) == 0);
    check_contents(b, "world");
    CHECK(evbuffer_remove(b, out, sizeof out) == 5 && memcmp(out, "world", 5) == 0);
    CHECK(evbuffer_get_length(b) == 0);
    CHECK(evbuffer_remove(b, out, sizeof out) == 0);
    CHECK(evbuffer_copyout(b, out, sizeof out) == 0);
    CHECK(evbuffer_drain(b, 100) == 0);

    /* Draining more than there is empties the buffer. */
    CHECK(evbuffer_add(b, "abc", 3) == 0);
    CHECK(evbuffer_drain(b, 1000) == 0 && evbuffer_get_length(b) == 0);

    /* expand, contiguous space, pullup. */
    CHECK(evbuffer_expand(b, 4096) == 0);
    CHECK(evbuffer_get_length(b) == 0 && evbuffer_get_contiguous_space(b) == 0);
    CHECK(evbuffer_pullup(b, -1) == NULL);      /* nothing to pull up */
    CHECK(evbuffer_add(b, "0123456789", 10) == 0);
    CHECK(evbuffer_pullup(b, 0) == NULL);
    CHECK(evbuffer_pullup(b, 11) == NULL);      /* more than there is */
    CHECK(memcmp(evbuffer_pullup(b, 4), "0123", 4) == 0);
    CHECK(memcmp(EVBUFFER_DATA(b), "0123456789", 10) == 0);
    CHECK(EVBUFFER_LENGTH(b) == 10);
    evbuffer_free(b);
}

static void test_moving(void) {
    struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
    char out[32];
    CHECK(evbuffer_add(a, "first ", 6) == 0);
    CHECK(evbuffer_add(b, "second", 6) == 0);
    CHECK(evbuffer_add_buffer(a, b) == 0);
    CHECK(evbuffer_get_length(b) == 0);
    check_contents(a, "first second");
    CHECK(evbuffer_add_buffer(a, a) == 0);      /* to itself: nothing happens */
    check_contents(a, "first second");
    CHECK(evbuffer_add_buffer(a, b) == 0);      /* from an empty one */

    CHECK(evbuffer_add(b, "zero ", 5) == 0);
    CHECK(evbuffer_prepend_buffer(a, b) == 0);
    check_contents(a, "zero first second");
    CHECK(evbuffer_get_length(b) == 0);

    /* remove_buffer: part of a chunk, then whole chunks, then more than there is. */
    CHECK(evbuffer_remove_buffer(a, b, 3) == 3);
    check_contents(b, "zer");
    CHECK(evbuffer_remove_buffer(a, b, 0) == 0);
    CHECK(evbuffer_remove_buffer(a, a, 5) == 0);
    CHECK(evbuffer_remove_buffer(a, b, 8) == 8);
    check_contents(b, "zero first ");
    CHECK(evbuffer_remove_buffer(a, b, 100) == 6);
    check_contents(b, "zero first second");
    CHECK(evbuffer_get_length(a) == 0);

    /* add_buffer_reference: the source keeps its bytes; later changes to it do not show. */
    CHECK(evbuffer_add_buffer_reference(a, b) == 0);
    check_contents(a, "zero first second");
    check_contents(b, "zero first second");
    CHECK(evbuffer_drain(b, 5) == 0);
    check_contents(a, "zero first second");
    CHECK(evbuffer_add_buffer_reference(a, a) == -1);
    CHECK(evbuffer_remove(a, out, 5) == 5 && memcmp(out, "zero ", 5) == 0);

    /* Many chunks: 200 pieces moved in one at a time, read back whole. */
    struct evbuffer *big = evbuffer_new();
    char piece[300], *want = malloc(200 * 300 + 1);
    size_t wn = 0;
    for (int i = 0; i < 200; i++) {
        struct evbuffer *p = evbuffer_new();
        size_t n = 1 + (i * 37) % 300;
        for (size_t k = 0; k < n; k++)
            piece[k] = (char)('a' + (i + k) % 26);
        CHECK(evbuffer_add(p, piece, n) == 0);
        memcpy(want + wn, piece, n);
        wn += n;
        CHECK(evbuffer_add_buffer(big, p) == 0);
        evbuffer_free(p);
    }
    want[wn] = 0;
    CHECK(evbuffer_get_length(big) == wn);
    CHECK(evbuffer_get_contiguous_space(big) < wn);
    check_contents(big, want);
    unsigned char *flat = evbuffer_pullup(big, -1);
    CHECK(flat && memcmp(flat, want, wn) == 0);
    CHECK(evbuffer_get_contiguous_space(big) == wn);
    free(want);
    evbuffer_free(big);
    evbuffer_free(a);
    evbuffer_free(b);
}

static void expect_line(struct evbuffer *b, enum evbuffer_eol_style style, const char *want,
    size_t want_n) {
    size_t n = 12345;
    char *line = evbuffer_readln(b, &n, style);
    if (!want) {
        CHECK(line == NULL && n == 0);
        return;
    }
    CHECK(line != NULL);
    CHECK(n == want_n && memcmp(line, want, n) == 0 && line[n] == 0);
    free(line);
}

static void test_readln(void) {
    struct evbuffer *b = evbuffer_new();

    /* EOL_ANY: any run of CR and LF. */
    CHECK(evbuffer_add(b, "a\r\n\r\nb\nc", 8) == 0);
    expect_line(b, EVBUFFER_EOL_ANY, "a", 1);
    expect_line(b, EVBUFFER_EOL_ANY, "b", 1);
    expect_line(b, EVBUFFER_EOL_ANY, NULL, 0);
    CHECK(evbuffer_get_length(b) == 1);
    evbuffer_drain(b, 1);

    /* EOL_CRLF: LF, with an optional CR before it. */
    CHECK(evbuffer_add(b, "x\r\ny\nz", 6) == 0);
    expect_line(b, EVBUFFER_EOL_CRLF, "x", 1);
    expect_line(b, EVBUFFER_EOL_CRLF, "y", 1);
    expect_line(b, EVBUFFER_EOL_CRLF, NULL, 0);
    evbuffer_drain(b, 1);

    /* EOL_CRLF_STRICT: only CR LF; a lone LF is part of the line. */
    CHECK(evbuffer_add(b, "p\nq\r\nr", 6) == 0);
    expect_line(b, EVBUFFER_EOL_CRLF_STRICT, "p\nq", 3);
    expect_line(b, EVBUFFER_EOL_CRLF_STRICT, NULL, 0);
    evbuffer_drain(b, 1);

    /* EOL_LF: the CR stays in the line. */
    CHECK(evbuffer_add(b, "l1\r\nl2\n", 7) == 0);
    expect_line(b, EVBUFFER_EOL_LF, "l1\r", 3);
    expect_line(b, EVBUFFER_EOL_LF, "l2", 2);
    CHECK(evbuffer_get_length(b) == 0);

    /* EOL_NUL. */
    CHECK(evbuffer_add(b, "n1\0n2\0", 6) == 0);
    expect_line(b, EVBUFFER_EOL_NUL, "n1", 2);
    expect_line(b, EVBUFFER_EOL_NUL, "n2", 2);
    expect_line(b, EVBUFFER_EOL_NUL, NULL, 0);

    /* An empty line, a NULL n_read_out, the compat evbuffer_readline. */
    CHECK(evbuffer_add(b, "\nold\r\n", 6) == 0);
    char *l = evbuffer_readln(b, NULL, EVBUFFER_EOL_LF);
    CHECK(l && l[0] == 0);
    free(l);
    l = evbuffer_readline(b);
    CHECK(l && strcmp(l, "old") == 0);
    free(l);
    CHECK(evbuffer_readline(b) == NULL);

    /* Lines and ends of line split across chunks. */
    const char *parts[] = {"hel", "lo\r", "\nwor", "ld\r", "\n"};
    struct evbuffer *c = chunked(parts, 5);
    expect_line(c, EVBUFFER_EOL_CRLF_STRICT, "hello", 5);
    expect_line(c, EVBUFFER_EOL_CRLF, "world", 5);
    CHECK(evbuffer_get_length(c) == 0);
    evbuffer_free(c);

    /* A frozen front and an unknown style give no line and consume nothing. */
    CHECK(evbuffer_add(b, "line\n", 5) == 0);
    CHECK(evbuffer_freeze(b, 1) == 0);
    expect_line(b, EVBUFFER_EOL_LF, NULL, 0);
    CHECK(evbuffer_unfreeze(b, 1) == 0);
    expect_line(b, (enum evbuffer_eol_style)99, NULL, 0);
    CHECK(evbuffer_get_length(b) == 5);
    expect_line(b, EVBUFFER_EOL_LF, "line", 4);
    evbuffer_free(b);
}

static void test_search(void) {
    const char *parts[] = {"abca", "bcXY", "Zabc"};
    struct evbuffer *b = chunked(parts, 3);
    struct evbuffer_ptr p, q, e;
    size_t eol_len = 99;
    char out[8];

    p = evbuffer_search(b, "abc", 3, NULL);
    CHECK(p.pos == 0);
    CHECK(evbuffer_ptr_set(b, &p, 1, EVBUFFER_PTR_ADD) == 0 && p.pos == 1);
    p = evbuffer_search(b, "abc", 3, &p);        /* across the first chunk boundary */
    CHECK(p.pos == 3);
    q = evbuffer_search(b, "XYZ", 3, NULL);      /* across the second */
    CHECK(q.pos == 6);
    CHECK(evbuffer_search(b, "nope", 4, NULL).pos == -1);
    CHECK(evbuffer_search(b, "Zabcd", 5, NULL).pos == -1);   /* would run past the end */

    /* search_range: the match must end at or before `end`. */
    CHECK(evbuffer_ptr_set(b, &p, 1, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_ptr_set(b, &e, 9, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_search_range(b, "abc", 3, &p, &e).pos == 3);
    CHECK(evbuffer_ptr_set(b, &p, 4, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_ptr_set(b, &e, 11, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_search_range(b, "abc", 3, &p, &e).pos == -1);
    CHECK(evbuffer_ptr_set(b, &e, 12, EVBUFFER_PTR_SET) == 0);   /* the end itself is valid */
    CHECK(evbuffer_search_range(b, "abc", 3, &p, &e).pos == 9);

    /* ptr_set past the end fails and marks the pointer not-found. */
    CHECK(evbuffer_ptr_set(b, &p, 13, EVBUFFER_PTR_SET) == -1 && p.pos == -1);
    CHECK(evbuffer_ptr_set(b, &p, 10, EVBUFFER_PTR_SET) == 0 && p.pos == 10);
    CHECK(evbuffer_ptr_set(b, &p, 3, EVBUFFER_PTR_ADD) == -1 && p.pos == -1);
    CHECK(evbuffer_ptr_set(b, &p, 12, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_ptr_set(b, &p, 0, EVBUFFER_PTR_ADD) == 0 && p.pos == 12);

    /* copyout_from a position, across chunks. */
    CHECK(evbuffer_ptr_set(b, &p, 2, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_copyout_from(b, &p, out, 6) == 6 && memcmp(out, "cabcXY", 6) == 0);
    CHECK(evbuffer_ptr_set(b, &p, 10, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_copyout_from(b, &p, out, 8) == 2 && memcmp(out, "bc", 2) == 0);
    CHECK(evbuffer_get_length(b) == 12);

    /* evbuffer_find (compat): a pointer into the (pulled up) buffer. */
    unsigned char *f = evbuffer_find(b, (const unsigned char *)"XYZ", 3);
    CHECK(f && memcmp(f, "XYZ", 3) == 0);
    CHECK(evbuffer_find(b, (const unsigned char *)"QQ", 2) == NULL);
    evbuffer_free(b);

    /* search_eol with each style, from the start and from a position. */
    b = evbuffer_new();
    CHECK(evbuffer_add(b, "k: v\r\nrest\n", 11) == 0);
    p = evbuffer_search_eol(b, NULL, &eol_len, EVBUFFER_EOL_CRLF);
    CHECK(p.pos == 4 && eol_len == 2);
    p = evbuffer_search_eol(b, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
    CHECK(p.pos == 4 && eol_len == 2);
    p = evbuffer_search_eol(b, NULL, &eol_len, EVBUFFER_EOL_LF);
    CHECK(p.pos == 5 && eol_len == 1);
    p = evbuffer_search_eol(b, NULL, &eol_len, EVBUFFER_EOL_ANY);
    CHECK(p.pos == 4 && eol_len == 2);
    CHECK(evbuffer_ptr_set(b, &q, 6, EVBUFFER_PTR_SET) == 0);
    p = evbuffer_search_eol(b, &q, &eol_len, EVBUFFER_EOL_LF);
    CHECK(p.pos == 10 && eol_len == 1);
    p = evbuffer_search_eol(b, &q, NULL, EVBUFFER_EOL_NUL);
    CHECK(p.pos == -1);
    p = evbuffer_search_eol(b, &q, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
    CHECK(p.pos == -1 && eol_len == 0);
    evbuffer_free(b);
}

static void test_peek(void) {
    char a[100], bb[100], c[100];
    memset(a, 'a', 100);
    memset(bb, 'b', 100);
    memset(c, 'c', 100);
    struct evbuffer *b = evbuffer_new();
    const char *parts[] = {a, bb, c};
    for (int i = 0; i < 3; i++) {
        struct evbuffer *p = evbuffer_new();
        CHECK(evbuffer_add(p, parts[i], 100) == 0);
        CHECK(evbuffer_add_buffer(b, p) == 0);
        evbuffer_free(p);
    }
    struct evbuffer_iovec v[4];
    struct evbuffer_ptr at;

    CHECK(evbuffer_peek(b, -1, NULL, NULL, 0) == 3);     /* extents needed for everything */
    CHECK(evbuffer_peek(b, -1, NULL, v, 2) == 2);        /* as many as fit */
    CHECK(v[0].iov_len == 100 && v[1].iov_len == 100);
    CHECK(memcmp(v[0].iov_base, a, 100) == 0 && memcmp(v[1].iov_base, bb, 100) == 0);
    CHECK(evbuffer_peek(b, 150, NULL, v, 4) == 2);       /* whole chunks until 150 are covered */
    CHECK(v[1].iov_len == 100);
    CHECK(evbuffer_peek(b, 50, NULL, v, 4) == 1 && v[0].iov_len == 100);
    CHECK(evbuffer_peek(b, 250, NULL, v, 1) == 3);       /* needs more than given */
    CHECK(evbuffer_peek(b, 0, NULL, v, 4) == 0);

    CHECK(evbuffer_ptr_set(b, &at, 120, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_peek(b, 10, &at, v, 4) == 1);
    CHECK(v[0].iov_len == 80 && memcmp(v[0].iov_base, bb, 80) == 0);
    CHECK(evbuffer_peek(b, -1, &at, NULL, 0) == 2);
    CHECK(evbuffer_peek(b, 100, &at, v, 4) == 2 && v[1].iov_len == 100);
    CHECK(memcmp(v[1].iov_base, c, 100) == 0);
    CHECK(evbuffer_ptr_set(b, &at, 300, EVBUFFER_PTR_SET) == 0);
    CHECK(evbuffer_peek(b, -1, &at, v, 4) == 0);         /* at the end */
    CHECK(evbuffer_get_length(b) == 300);
    evbuffer_free(b);
}

static void test_reserve(void) {
    struct evbuffer *b = evbuffer_new();
    struct evbuffer_iovec v[2];
    int n;

    CHECK(evbuffer_add(b, "head:", 5) == 0);
    n = evbuffer_reserve_space(b, 100, v, 1);
    CHECK(n == 1 && v[0].iov_len >= 100);
    memcpy(v[0].iov_base, "0123456789", 10);
    v[0].iov_len = 10;                               /* commit less than reserved */
    CHECK(evbuffer_commit_space(b, v, 1) == 0);
    check_contents(b, "head:0123456789");
    CHECK(evbuffer_commit_space(b, v, 1) == -1);     /* that space is used now */
    CHECK(evbuffer_commit_space(b, v, 0) == 0);

    /* A large reservation over up to two extents, filled with a pattern. */
    size_t want = 5000, done = 0;
    n = evbuffer_reserve_space(b, (ev_ssize_t)want, v, 2);
    CHECK(n >= 1 && n <= 2);
    for (int i = 0; i < n; i++) {
        size_t k = v[i].iov_len < want - done ? v[i].iov_len : want - done;
        for (size_t j = 0; j < k; j++)
            ((char *)v[i].iov_base)[j] = (char)('A' + (done + j) % 26);
        v[i].iov_len = k;
        done += k;
    }
    CHECK(done == want);
    CHECK(evbuffer_commit_space(b, v, n) == 0);
    CHECK(evbuffer_get_length(b) == 15 + want);
    CHECK(evbuffer_drain(b, 15) == 0);
    unsigned char *flat = evbuffer_pullup(b, -1);
    for (size_t j = 0; j < want; j++)
        CHECK(flat[j] == 'A' + j % 26);

    /* A pointer that is not the buffer's free space; bad sizes. */
    n = evbuffer_reserve_space(b, 10, v, 1);
    CHECK(n == 1);
    struct evbuffer_iovec bogus = {flat, 1};
    CHECK(evbuffer_commit_space(b, &bogus, 1) == -1);
    CHECK(evbuffer_reserve_space(b, 10, v, 0) == -1);
    CHECK(evbuffer_reserve_space(b, -5, v, 1) == -1);
    v[0].iov_len += 1 << 20;                         /* longer than the space */
    CHECK(evbuffer_commit_space(b, v, 1) == -1);
    CHECK(evbuffer_get_length(b) == want);

    /* A frozen end refuses both. */
    CHECK(evbuffer_freeze(b, 0) == 0);
    CHECK(evbuffer_reserve_space(b, 10, v, 1) == -1);
    CHECK(evbuffer_commit_space(b, v, 1) == -1);
    CHECK(evbuffer_unfreeze(b, 0) == 0);

    /* evbuffer_add_iovec. */
    struct evbuffer *c = evbuffer_new();
    struct evbuffer_iovec in[3] = {{(void *)"one ", 4}, {(void *)"", 0}, {(void *)"two", 3}};
    CHECK(evbuffer_add_iovec(c, in, 3) == 7);
    check_contents(c, "one two");
    CHECK(evbuffer_add_iovec(c, in, 0) == 0);
    evbuffer_free(c);
    evbuffer_free(b);
}

static int vprintf_into(struct evbuffer *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = evbuffer_add_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

static void test_printf(void) {
    struct evbuffer *b = evbuffer_new();
    CHECK(evbuffer_add_printf(b, "%s=%d;", "x", 42) == 5);
    CHECK(vprintf_into(b, "%05.1f|%c", 3.14159, 'z') == 7);
    check_contents(b, "x=42;003.1|z");
    CHECK(evbuffer_add_printf(b, "%s", "") == 0);

    /* Longer than any stack buffer or first reservation: 100000 characters, twice. */
    size_t big = 100000;
    char *s = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        s[i] = (char)('a' + i % 26);
    s[big] = 0;
    evbuffer_drain(b, evbuffer_get_length(b));
    CHECK(evbuffer_add_printf(b, "[%s][%s]", s, s) == (int)(2 * big + 4));
    CHECK(evbuffer_get_length(b) == 2 * big + 4);
    unsigned char *flat = evbuffer_pullup(b, -1);
    CHECK(flat[0] == '[' && memcmp(flat + 1, s, big) == 0 && flat[big + 1] == ']');
    CHECK(memcmp(flat + big + 3, s, big) == 0 && flat[2 * big + 3] == ']');
    free(s);

    CHECK(evbuffer_freeze(b, 0) == 0);
    CHECK(evbuffer_add_printf(b, "no") == -1);
    CHECK(evbuffer_get_length(b) == 2 * big + 4);
    evbuffer_free(b);
}

static void test_freeze(void) {
    struct evbuffer *b = evbuffer_new(), *o = evbuffer_new();
    char out[8];
    CHECK(evbuffer_add(b, "data", 4) == 0);
    CHECK(evbuffer_add(o, "other", 5) == 0);

    CHECK(evbuffer_freeze(b, 0) == 0);               /* the end */
    CHECK(evbuffer_add(b, "x", 1) == -1);
    CHECK(evbuffer_add_buffer(b, o) == -1);
    CHECK(evbuffer_remove_buffer(o, b, 2) == -1);
    CHECK(evbuffer_add_buffer_reference(b, o) == -1);
    CHECK(evbuffer_expand(b, 10) == 0);              /* expand is not a change */
    CHECK(evbuffer_prepend(b, "<", 1) == 0);         /* the front is not frozen */
    CHECK(evbuffer_drain(b, 1) == 0);
    CHECK(evbuffer_unfreeze(b, 0) == 0);

    CHECK(evbuffer_freeze(b, 1) == 0);               /* the front */
    CHECK(evbuffer_drain(b, 1) == -1);
    CHECK(evbuffer_remove(b, out, 2) == -1);
    CHECK(evbuffer_copyout(b, out, 2) == -1);        /* libevent refuses copying too */
    CHECK(evbuffer_remove(b, out, 0) == 0);
    CHECK(evbuffer_prepend(b, "<", 1) == -1);
    CHECK(evbuffer_prepend_buffer(b, o) == -1);
    CHECK(evbuffer_remove_buffer(b, o, 1) == -1);
    CHECK(evbuffer_add_buffer(o, b) == -1);
    CHECK(evbuffer_add(b, "!", 1) == 0);             /* the end is open */
    CHECK(evbuffer_unfreeze(b, 1) == 0);
    check_contents(b, "data!");
    check_contents(o, "other");
    evbuffer_free(b);
    evbuffer_free(o);
}

static void test_fds(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    struct evbuffer *out = evbuffer_new(), *in = evbuffer_new();

    errno = 0;
    CHECK(evbuffer_write(out, sv[0]) == -1);         /* as libevent: nothing to write is -1 */
    CHECK(evbuffer_add(out, "hello world", 11) == 0);
    CHECK(evbuffer_write_atmost(out, sv[0], 5) == 5);
    CHECK(evbuffer_get_length(out) == 6);
    CHECK(evbuffer_write(out, sv[0]) == 6);
    CHECK(evbuffer_get_length(out) == 0);

    CHECK(evbuffer_read(in, sv[1], 3) == 3);
    check_contents(in, "hel");
    CHECK(evbuffer_read(in, sv[1], -1) == 8);
    check_contents(in, "hello world");
    errno = 0;
    CHECK(evbuffer_read(in, sv[1], -1) == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));

    /* Data spread over chunks goes out in order. */
    const char *parts[] = {"one,", "two,", "three"};
    struct evbuffer *c = chunked(parts, 3);
    CHECK(evbuffer_write(c, sv[0]) == 13);
    evbuffer_drain(in, evbuffer_get_length(in));
    CHECK(evbuffer_read(in, sv[1], 100) == 13);
    check_contents(in, "one,two,three");
    evbuffer_free(c);

    /* A frozen end refuses reading, a frozen front writing. */
    CHECK(evbuffer_add(out, "z", 1) == 0);
    CHECK(evbuffer_freeze(out, 1) == 0);
    CHECK(evbuffer_write(out, sv[0]) == -1);
    CHECK(evbuffer_unfreeze(out, 1) == 0);
    CHECK(evbuffer_write(out, sv[0]) == 1);
    CHECK(evbuffer_freeze(in, 0) == 0);
    CHECK(evbuffer_read(in, sv[1], -1) == -1);
    CHECK(evbuffer_unfreeze(in, 0) == 0);
    CHECK(evbuffer_read(in, sv[1], -1) == 1);

    /* End of file. */
    close(sv[0]);
    CHECK(evbuffer_read(in, sv[1], -1) == 0);
    close(sv[1]);
    evbuffer_free(out);
    evbuffer_free(in);
}

static void test_flags_and_locking(void) {
    struct evbuffer *b = evbuffer_new();
    CHECK(evbuffer_set_flags(b, EVBUFFER_FLAG_DRAINS_TO_FD) == 0);
    CHECK(evbuffer_clear_flags(b, EVBUFFER_FLAG_DRAINS_TO_FD) == 0);
    /* libevent needs evthread_use_pthreads for a lock (-1 without); revent has its own. */
    int r = evbuffer_enable_locking(b, NULL);
    CHECK(r == 0 || r == -1);
    CHECK(evbuffer_enable_locking(b, NULL) == -1);   /* never twice */
    evbuffer_lock(b);
    evbuffer_lock(b);                                /* recursive */
    CHECK(evbuffer_add(b, "locked", 6) == 0);
    evbuffer_unlock(b);
    evbuffer_unlock(b);
    check_contents(b, "locked");
    evbuffer_free(b);
}

/* Bad input that libevent does not survive (NULL buffers, foreign pointers): revent returns its
 * error values. */
static void test_bad_input_revent(void) {
    struct evbuffer *b = evbuffer_new();
    struct evbuffer_iovec v[1];
    struct evbuffer_ptr p;
    char out[4];
    size_t n = 7;
    CHECK(evbuffer_get_length(NULL) == 0);
    CHECK(evbuffer_get_contiguous_space(NULL) == 0);
    CHECK(evbuffer_add(NULL, "x", 1) == -1);
    CHECK(evbuffer_add(b, NULL, 3) == -1);
    CHECK(evbuffer_prepend(NULL, "x", 1) == -1);
    CHECK(evbuffer_remove(NULL, out, 1) == -1);
    CHECK(evbuffer_copyout(NULL, out, 1) == -1);
    CHECK(evbuffer_drain(NULL, 1) == -1);
    CHECK(evbuffer_expand(NULL, 1) == -1);
    CHECK(evbuffer_pullup(NULL, -1) == NULL);
    CHECK(evbuffer_add_buffer(NULL, b) == -1 && evbuffer_add_buffer(b, NULL) == -1);
    CHECK(evbuffer_remove_buffer(NULL, b, 1) == -1);
    CHECK(evbuffer_prepend_buffer(b, NULL) == -1);
    CHECK(evbuffer_readln(NULL, &n, EVBUFFER_EOL_LF) == NULL && n == 0);
    CHECK(evbuffer_search(NULL, "x", 1, NULL).pos == -1);
    CHECK(evbuffer_ptr_set(NULL, &p, 0, EVBUFFER_PTR_SET) == -1);
    CHECK(evbuffer_ptr_set(b, NULL, 0, EVBUFFER_PTR_SET) == -1);
    CHECK(evbuffer_peek(NULL, -1, NULL, v, 1) == -1);
    CHECK(evbuffer_peek(b, -1, NULL, NULL, 1) == -1);
    CHECK(evbuffer_reserve_space(NULL, 1, v, 1) == -1);
    CHECK(evbuffer_reserve_space(b, 1, NULL, 1) == -1);
    CHECK(evbuffer_commit_space(NULL, v, 1) == -1);
    CHECK(evbuffer_read(b, -1, 10) == -1 && errno == EBADF);
    CHECK(evbuffer_read(NULL, 0, 10) == -1);
    CHECK(evbuffer_add(b, "abc", 3) == 0);
    CHECK(evbuffer_write(b, -1) == -1);
    CHECK(evbuffer_add_printf(NULL, "x") == -1);
    CHECK(evbuffer_add_printf(b, NULL) == -1);
    CHECK(evbuffer_freeze(NULL, 0) == -1 && evbuffer_unfreeze(NULL, 1) == -1);
    CHECK(evbuffer_set_flags(NULL, 1) == -1);
    CHECK(evbuffer_add_iovec(NULL, v, 1) == 0);
    /* A position that is not in the buffer. */
    p.pos = 100;
    CHECK(evbuffer_copyout_from(b, &p, out, 1) == -1);
    CHECK(evbuffer_search(b, "a", 1, &p).pos == -1);
    CHECK(evbuffer_peek(b, -1, &p, v, 1) == 0);
    p.pos = -1;
    CHECK(evbuffer_ptr_set(b, &p, 1, EVBUFFER_PTR_ADD) == -1);
    CHECK(evbuffer_ptr_set(b, &p, 0, 7) == -1);
    evbuffer_lock(NULL);
    evbuffer_unlock(NULL);
    evbuffer_free(NULL);
    check_contents(b, "abc");
    evbuffer_free(b);
}

/* revent only (libevent locks only after evthread_use_pthreads): a lockable buffer shared by
 * threads. Every call takes the lock; evbuffer_lock makes a sequence of calls atomic. */
static struct evbuffer *shared;
static volatile int stop_adding;

static void *adder(void *arg) {
    for (int i = 0; i < 20000; i++)
        CHECK(evbuffer_add(shared, arg, 1) == 0);
    return NULL;
}

static void *steady_adder(void *arg) {
    (void)arg;
    while (!stop_adding)
        CHECK(evbuffer_add(shared, "c", 1) == 0);
    return NULL;
}

static void test_threads_revent(void) {
    shared = evbuffer_new();
    CHECK(evbuffer_enable_locking(shared, NULL) == 0);
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, adder, "a") == 0);
    CHECK(pthread_create(&t2, NULL, adder, "b") == 0);
    CHECK(pthread_join(t1, NULL) == 0 && pthread_join(t2, NULL) == 0);
    CHECK(evbuffer_get_length(shared) == 40000);
    unsigned char *flat = evbuffer_pullup(shared, -1);
    int na = 0, nb = 0;
    for (int i = 0; i < 40000; i++) {
        na += flat[i] == 'a';
        nb += flat[i] == 'b';
    }
    CHECK(na == 20000 && nb == 20000);

    /* While this thread holds the lock, the other thread's adds wait. */
    evbuffer_drain(shared, 40000);
    stop_adding = 0;
    CHECK(pthread_create(&t1, NULL, steady_adder, NULL) == 0);
    while (evbuffer_get_length(shared) == 0)
        usleep(100);
    for (int round = 0; round < 3; round++) {
        evbuffer_lock(shared);
        size_t before = evbuffer_get_length(shared);
        usleep(2000);
        CHECK(evbuffer_get_length(shared) == before);
        evbuffer_unlock(shared);
        usleep(500);
    }
    stop_adding = 1;
    CHECK(pthread_join(t1, NULL) == 0);
    evbuffer_free(shared);
}

int main(void) {
    test_basic();
    test_moving();
    test_readln();
    test_search();
    test_peek();
    test_reserve();
    test_printf();
    test_freeze();
    test_fds();
    test_flags_and_locking();
    if (on_revent()) {
        test_bad_input_revent();
        test_threads_revent();
    }
    return 0;
}
