/* event2/tag.h: every function, libevent's exact bytes and return values, what each takes from the
 * buffer, and truncated or hostile input. Truncated input is handed over as references to blocks of
 * exactly its size (evbuffer_add_reference on malloc'd copies), so a read past the end is a read
 * past a heap block, which valgrind reports (run.sh --valgrind). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/tag.h>
#include <event2/tag_compat.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include "check.h"

/* Exported by libevent without a public declaration (event_rpcgen.py's code calls them). */
int evtag_encode_tag(struct evbuffer *evbuf, ev_uint32_t tag);
int evtag_decode_tag(ev_uint32_t *ptag, struct evbuffer *evbuf);
int evtag_decode_int(ev_uint32_t *pnumber, struct evbuffer *evbuf);
int evtag_decode_int64(ev_uint64_t *pnumber, struct evbuffer *evbuf);

/* The buffer's bytes equal `want` (n bytes); the buffer is emptied. */
static int take_eq(struct evbuffer *b, const void *want, size_t n) {
    unsigned char got[1024];
    if (evbuffer_get_length(b) != n || n > sizeof got) return 0;
    CHECK(evbuffer_remove(b, got, n) == (int)n);
    return memcmp(got, want, n) == 0;
}
#define BYTES(b, ...) do { static const unsigned char w_[] = {__VA_ARGS__}; \
    CHECK(take_eq((b), w_, sizeof w_)); } while (0)

static void free_block(const void *data, size_t len, void *arg) {
    (void)len; (void)arg;
    free((void *)data);
}

/* A buffer holding `bytes`, in references to malloc'd blocks of `piece` bytes (exact size). */
static struct evbuffer *refs(const unsigned char *bytes, size_t n, size_t piece) {
    struct evbuffer *b = evbuffer_new();
    for (size_t off = 0; off < n; off += piece) {
        size_t k = n - off < piece ? n - off : piece;
        unsigned char *block = malloc(k);
        CHECK(block != NULL);
        memcpy(block, bytes + off, k);
        CHECK(evbuffer_add_reference(b, block, k, free_block, NULL) == 0);
    }
    CHECK(evbuffer_get_length(b) == n);
    return b;
}

static void encodings(void) {
    struct evbuffer *b = evbuffer_new();
    evtag_init();
    evtag_encode_int(b, 0); BYTES(b, 0x00);
    evtag_encode_int(b, 0xf); BYTES(b, 0x0f);
    evtag_encode_int(b, 0x10); BYTES(b, 0x10, 0x10);
    evtag_encode_int(b, 0x123); BYTES(b, 0x23, 0x21);
    evtag_encode_int(b, 0x1234); BYTES(b, 0x34, 0x32, 0x10);
    evtag_encode_int(b, 0xffffffffu); BYTES(b, 0x7f, 0xff, 0xff, 0xff, 0xf0);
    evtag_encode_int64(b, 1ULL << 32); BYTES(b, 0x80, 0x00, 0x00, 0x00, 0x01);
    evtag_encode_int64(b, ~0ULL); BYTES(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0);
    /* tag_compat.h's names. */
    encode_int(b, 5); BYTES(b, 0x05);
    encode_int64(b, 0x12); BYTES(b, 0x12, 0x10);

    CHECK(evtag_encode_tag(b, 0) == 1); BYTES(b, 0x00);
    CHECK(evtag_encode_tag(b, 0x7f) == 1); BYTES(b, 0x7f);
    CHECK(evtag_encode_tag(b, 0x80) == 2); BYTES(b, 0x80, 0x01);
    CHECK(evtag_encode_tag(b, 0x166) == 2); BYTES(b, 0xe6, 0x02);
    CHECK(evtag_encode_tag(b, 0x4000) == 3); BYTES(b, 0x80, 0x80, 0x01);
    CHECK(evtag_encode_tag(b, 0xffffffffu) == 5); BYTES(b, 0xff, 0xff, 0xff, 0xff, 0x0f);
    CHECK(evtag_encode_tag(NULL, 0x4000) == 3); /* only counts */

    evtag_marshal(b, 3, "abc", 3); BYTES(b, 0x03, 0x03, 'a', 'b', 'c');
    evtag_marshal(b, 3, NULL, 0); BYTES(b, 0x03, 0x00);
    evtag_marshal_int(b, 1, 0x1234); BYTES(b, 0x01, 0x03, 0x34, 0x32, 0x10);
    evtag_marshal_int(b, 0x80, 7); BYTES(b, 0x80, 0x01, 0x01, 0x07);
    evtag_marshal_int64(b, 1, 1ULL << 32); BYTES(b, 0x01, 0x05, 0x80, 0, 0, 0, 0x01);
    evtag_marshal_string(b, 0x80, "hi"); BYTES(b, 0x80, 0x01, 0x02, 'h', 'i');
    struct timeval tv = {1, 0x20};
    evtag_marshal_timeval(b, 4, &tv); BYTES(b, 0x04, 0x03, 0x01, 0x10, 0x20);
    /* Seconds beyond 32 bits: their low 32 bits are written. */
    tv.tv_sec = (time_t)0x100000005LL; tv.tv_usec = 0;
    evtag_marshal_timeval(b, 4, &tv); BYTES(b, 0x04, 0x02, 0x05, 0x00);

    struct evbuffer *data = evbuffer_new();
    evbuffer_add(data, "xyz", 3);
    evtag_marshal_buffer(b, 0x166, data);
    CHECK(evbuffer_get_length(data) == 0);
    BYTES(b, 0xe6, 0x02, 0x03, 'x', 'y', 'z');
    /* A payload of 300 bytes: a two-byte length. */
    char big[300];
    memset(big, 'q', sizeof big);
    evtag_marshal(b, 2, big, sizeof big);
    CHECK(evbuffer_get_length(b) == 303);
    unsigned char head[3];
    CHECK(evbuffer_remove(b, head, 3) == 3);
    CHECK(head[0] == 0x02 && head[1] == 0x2c && head[2] == 0x21);
    evbuffer_drain(b, 300);
    evbuffer_free(data);
    evbuffer_free(b);
}

static void decodings(void) {
    struct evbuffer *b = evbuffer_new();
    ev_uint32_t t = 0, v = 0, len = 0;
    ev_uint64_t v64 = 0;

    evtag_marshal_int(b, 0x166, 0x1234);
    CHECK(evtag_peek(b, &t) == 2 && t == 0x166);
    CHECK(evtag_payload_length(b, &len) == 0 && len == 3);
    CHECK(evtag_peek_length(b, &len) == 0 && len == 6);
    CHECK(evbuffer_get_length(b) == 6); /* peeks take nothing */
    CHECK(evtag_unmarshal_int(b, 0x166, &v) == 3 && v == 0x1234); /* the integer's bytes */
    CHECK(evbuffer_get_length(b) == 0);

    evtag_marshal_int64(b, 9, ~0ULL);
    CHECK(evtag_unmarshal_int64(b, 9, &v64) == 9 && v64 == ~0ULL);
    evtag_marshal_int64(b, 9, 0);
    CHECK(evtag_unmarshal_int64(b, 9, &v64) == 1 && v64 == 0);

    evtag_marshal(b, 7, "payload", 7);
    CHECK(evtag_unmarshal_header(b, &t) == 7 && t == 7);
    CHECK(take_eq(b, "payload", 7));

    struct evbuffer *dst = evbuffer_new();
    evbuffer_add(dst, ">", 1);
    evtag_marshal(b, 5, "abc", 3);
    evtag_marshal_int(b, 6, 1);
    CHECK(evtag_unmarshal(b, &t, dst) == 3 && t == 5);
    CHECK(take_eq(dst, ">abc", 4));
    CHECK(evtag_consume(b) == 0);
    CHECK(evbuffer_get_length(b) == 0);

    char fixed[4];
    evtag_marshal(b, 2, "wxyz", 4);
    CHECK(evtag_unmarshal_fixed(b, 2, fixed, 4) == 0 && memcmp(fixed, "wxyz", 4) == 0);

    char *s = NULL;
    evtag_marshal_string(b, 3, "text");
    CHECK(evtag_unmarshal_string(b, 3, &s) == 0 && strcmp(s, "text") == 0);
    free(s);
    evtag_marshal(b, 3, NULL, 0);
    CHECK(evtag_unmarshal_string(b, 3, &s) == 0 && s[0] == '\0');
    free(s);

    struct timeval tv = {1700000000, 250000}, out = {0, 0};
    evtag_marshal_timeval(b, 4, &tv);
    CHECK(evtag_unmarshal_timeval(b, 4, &out) == 0);
    CHECK(out.tv_sec == 1700000000 && out.tv_usec == 250000);

    /* The pieces. */
    evtag_encode_tag(b, 0x4000);
    evtag_encode_int(b, 0x1234);
    evtag_encode_int64(b, 1ULL << 40);
    CHECK(evtag_decode_tag(&t, b) == 3 && t == 0x4000);
    CHECK(evtag_decode_int(&v, b) == 0 && v == 0x1234);
    CHECK(evtag_decode_int64(&v64, b) == 0 && v64 == 1ULL << 40);
    CHECK(evbuffer_get_length(b) == 0);

    /* Non-canonical encodings are read: tag 0 in two bytes, 1 with leading zero nibbles. */
    evbuffer_add(b, "\x80\x00\x21\x00", 4);
    CHECK(evtag_decode_tag(&t, b) == 2 && t == 0);
    CHECK(evtag_decode_int(&v, b) == 0 && v == 1);

    evbuffer_free(dst);
    evbuffer_free(b);
}

/* Errors: -1, and what libevent takes from the buffer. */
static void errors(void) {
    struct evbuffer *b = evbuffer_new();
    ev_uint32_t t, v, len;
    ev_uint64_t v64;
    char *s;
    char fixed[8];
    struct timeval tv;

    /* An empty buffer. */
    CHECK(evtag_peek(b, &t) == -1);
    CHECK(evtag_peek_length(b, &len) == -1);
    CHECK(evtag_payload_length(b, &len) == -1);
    CHECK(evtag_decode_tag(&t, b) == -1);
    CHECK(evtag_decode_int(&v, b) == -1);
    CHECK(evtag_decode_int64(&v64, b) == -1);
    CHECK(evtag_unmarshal_header(b, &t) == -1);
    CHECK(evtag_consume(b) == -1);

    /* Wrong tag, integer: the tag goes. */
    evtag_marshal_int(b, 1, 77);
    CHECK(evtag_unmarshal_int(b, 2, &v) == -1);
    BYTES(b, 0x02, 0x1d, 0x40);
    evtag_marshal_int64(b, 1, 77);
    CHECK(evtag_unmarshal_int64(b, 2, &v64) == -1);
    BYTES(b, 0x02, 0x1d, 0x40);
    /* Wrong tag or length, string and fixed: the header goes, the payload stays. */
    evtag_marshal_string(b, 1, "abc");
    CHECK(evtag_unmarshal_string(b, 2, &s) == -1);
    BYTES(b, 'a', 'b', 'c');
    evtag_marshal(b, 1, "abc", 3);
    CHECK(evtag_unmarshal_fixed(b, 2, fixed, 3) == -1);
    BYTES(b, 'a', 'b', 'c');
    evtag_marshal(b, 1, "abc", 3);
    CHECK(evtag_unmarshal_fixed(b, 1, fixed, 4) == -1);
    BYTES(b, 'a', 'b', 'c');
    /* Wrong tag, timeval: the whole item goes. */
    tv.tv_sec = 2; tv.tv_usec = 3;
    evtag_marshal_timeval(b, 1, &tv);
    evtag_marshal_int(b, 9, 9);
    CHECK(evtag_unmarshal_timeval(b, 2, &tv) == -1);
    CHECK(evtag_unmarshal_int(b, 9, &v) == 1 && v == 9);

    /* A payload longer than the buffer: the header goes. */
    evbuffer_add(b, "\x01\x05" "abc", 5);
    CHECK(evtag_payload_length(b, &len) == 0 && len == 5);
    CHECK(evtag_peek_length(b, &len) == 0 && len == 7);
    CHECK(evtag_unmarshal_header(b, &t) == -1);
    BYTES(b, 'a', 'b', 'c');
    /* A malformed length (four nibbles need three bytes): the tag goes. */
    evbuffer_add(b, "\x05\x30\x11", 3);
    CHECK(evtag_consume(b) == -1);
    BYTES(b, 0x30, 0x11);
    /* A malformed tag: nothing goes. */
    evbuffer_add(b, "\x80\x80", 2);
    CHECK(evtag_decode_tag(&t, b) == -1 && evtag_unmarshal_header(b, &t) == -1);
    CHECK(evbuffer_get_length(b) == 2);
    evbuffer_drain(b, 2);
    /* Too many nibbles for 32 bits: decode_int takes nothing, unmarshal_int the item. */
    evbuffer_add(b, "\x80\x00\x00\x00\x01", 5);
    CHECK(evtag_decode_int(&v, b) == -1);
    CHECK(evtag_decode_int64(&v64, b) == 0 && v64 == 1ULL << 32);
    evbuffer_add(b, "\x01\x05\x80\x00\x00\x00\x01", 7);
    CHECK(evtag_unmarshal_int(b, 1, &v) == -1);
    CHECK(evbuffer_get_length(b) == 0);
    /* An integer running past its payload: -1, the item goes, the next one stays. */
    evbuffer_add(b, "\x01\x01\x30\x02\x00", 5);
    CHECK(evtag_unmarshal_int(b, 1, &v) == -1);
    CHECK(evtag_peek(b, &t) == 1 && t == 2);
    evbuffer_drain(b, 2);
    evbuffer_add(b, "\x04\x01\x01\x10\x20", 5); /* a timeval missing its second integer */
    CHECK(evtag_unmarshal_timeval(b, 4, &tv) == -1);
    BYTES(b, 0x10, 0x20);
    evbuffer_free(b);
}

/* Every prefix of a stream, in exact-size blocks of every size: each decoder fails (-1) or succeeds
 * as on the whole stream, and reads nothing past the end (valgrind). */
static void truncated(void) {
    struct evbuffer *w = evbuffer_new();
    struct timeval tv = {0x12345678, 999999};
    evtag_marshal_int(w, 0x4000, 0xdeadbeef);
    evtag_marshal_int64(w, 2, 0x123456789abcdefULL);
    evtag_marshal_timeval(w, 0x166, &tv);
    evtag_marshal_string(w, 3, "a string");
    evtag_marshal(w, 4, "fix", 3);
    size_t n = evbuffer_get_length(w);
    unsigned char all[128];
    CHECK(n <= sizeof all);
    evbuffer_remove(w, all, n);

    for (size_t cut = 0; cut <= n; cut++) {
        for (size_t piece = 1; piece <= 6; piece++) {
            struct evbuffer *b = refs(all, cut, piece);
            ev_uint32_t t, v, len;
            ev_uint64_t v64;
            struct timeval out;
            char *s = NULL;
            char fixed[3];
            /* Walk the stream as a reader does. */
            int r = evtag_peek(b, &t);
            CHECK(cut >= 3 ? r == 3 && t == 0x4000 : r == -1);
            r = evtag_unmarshal_int(b, 0x4000, &v);
            CHECK(cut >= 9 ? (r == 5 && v == 0xdeadbeef) : r == -1);
            if (r != -1) {
                r = evtag_unmarshal_int64(b, 2, &v64);
                CHECK(cut >= 19 ? (r == 8 && v64 == 0x123456789abcdefULL) : r == -1);
            }
            if (r != -1) {
                r = evtag_unmarshal_timeval(b, 0x166, &out);
                CHECK(cut >= 30 ? r == 0 && out.tv_sec == 0x12345678 && out.tv_usec == 999999
                        : r == -1);
            }
            if (r != -1) {
                r = evtag_unmarshal_string(b, 3, &s);
                CHECK(cut >= 40 ? r == 0 && strcmp(s, "a string") == 0 : r == -1);
                free(s);
            }
            if (r != -1) {
                r = evtag_unmarshal_fixed(b, 4, fixed, 3);
                CHECK(cut >= 45 ? r == 0 && memcmp(fixed, "fix", 3) == 0 : r == -1);
            }
            evbuffer_free(b);

            /* The peeks and the pieces on the prefix itself. */
            b = refs(all, cut, piece);
            (void)evtag_payload_length(b, &len);
            (void)evtag_peek_length(b, &len);
            (void)evtag_decode_int(&v, b);
            (void)evtag_decode_int64(&v64, b);
            CHECK(evbuffer_get_length(b) <= cut);
            evbuffer_free(b);
            b = refs(all, cut, piece);
            struct evbuffer *dst = evbuffer_new();
            while (evtag_unmarshal(b, &t, dst) != -1)
                ;
            CHECK(evbuffer_get_length(dst) <= cut);
            evbuffer_free(dst);
            evbuffer_free(b);
            b = refs(all, cut, piece);
            while (evtag_consume(b) == 0)
                ;
            evbuffer_free(b);
        }
    }
    CHECK(n == 45);
    evbuffer_free(w);
}

/* A fifth tag byte with its continuation bit set: the tag does not fit in 32 bits. The five bytes
 * are a block of their own with more bytes after it: libevent 2.1.12 reads one byte past the block
 * (valgrind would say so on revent). */
static void long_tag(void) {
    static const unsigned char fives[][5] = {
        {0xff, 0xff, 0xff, 0xff, 0x8f}, {0xff, 0xff, 0xff, 0xff, 0x80}, {0x80, 0x80, 0x80, 0x80, 0xff},
        {0xff, 0xff, 0xff, 0xff, 0x10}};
    for (size_t i = 0; i < sizeof fives / sizeof fives[0]; i++) {
        struct evbuffer *b = refs(fives[i], 5, 5);
        evbuffer_add(b, "\x00\x01\x00", 3);
        ev_uint32_t t, v;
        CHECK(evtag_peek(b, &t) == -1);
        CHECK(evtag_decode_tag(&t, b) == -1);
        CHECK(evtag_unmarshal_header(b, &t) == -1);
        CHECK(evtag_unmarshal_int(b, 0, &v) == -1);
        CHECK(evtag_consume(b) == -1);
        CHECK(evbuffer_get_length(b) == 8);
        evbuffer_free(b);
    }
    /* The largest tag that fits. */
    struct evbuffer *b = refs((const unsigned char *)"\xff\xff\xff\xff\x0f\x00", 6, 5);
    ev_uint32_t t;
    CHECK(evtag_unmarshal_header(b, &t) == 0 && t == 0xffffffffu);
    evbuffer_free(b);
}

/* A payload length above INT_MAX. libevent 2.1.12 returns it from evtag_unmarshal_header as a
 * negative int, which evtag_unmarshal, evtag_consume and evtag_unmarshal_string then use as a
 * size; revent refuses it (-1). The payload is 2 GiB of reserved, never-touched address space. */
static void huge_length(void) {
    size_t big = (size_t)0x80000000u + 8;
    void *space = mmap(NULL, big, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (space == MAP_FAILED) {
        fprintf(stderr, "tag: no 2 GiB of address space, huge_length skipped\n");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    ev_uint32_t t, len;
    evtag_encode_tag(b, 1);
    evtag_encode_int(b, 0x80000000u);
    CHECK(evbuffer_add_reference(b, space, big, NULL, NULL) == 0);
    CHECK(evtag_payload_length(b, &len) == 0 && len == 0x80000000u);
    CHECK(evtag_unmarshal_header(b, &t) < 0); /* 2.1.12: INT_MIN */
#ifdef REVENT
    CHECK(evbuffer_get_length(b) == big); /* the header went, as in libevent */
    evbuffer_drain(b, evbuffer_get_length(b));
    struct evbuffer *dst = evbuffer_new();
    char *s = NULL;
    for (int i = 0; i < 3; i++) {
        evtag_encode_tag(b, 1);
        evtag_encode_int(b, 0x80000000u);
        CHECK(evbuffer_add_reference(b, space, big, NULL, NULL) == 0);
        if (i == 0) CHECK(evtag_unmarshal(b, &t, dst) == -1);
        if (i == 1) CHECK(evtag_consume(b) == -1);
        if (i == 2) CHECK(evtag_unmarshal_string(b, 1, &s) == -1 && s == NULL);
        CHECK(evbuffer_get_length(dst) == 0);
        CHECK(evbuffer_get_length(b) == big);
        evbuffer_drain(b, evbuffer_get_length(b));
    }
    /* A total length beyond 32 bits: -1 (libevent 2.1.12 wraps around). */
    evtag_encode_tag(b, 1);
    evtag_encode_int(b, 0xffffffffu);
    CHECK(evtag_peek_length(b, &len) == -1);
    evbuffer_free(dst);
#endif
    evbuffer_free(b);
    munmap(space, big);
}

#ifdef REVENT
static int warnings;
static void count_log(int severity, const char *msg) {
    (void)msg;
    if (severity == EVENT_LOG_WARN) warnings++;
}
#endif

/* NULL buffers and arguments are refused with a warning, not dereferenced (revent; libevent
 * crashes). */
static void nulls(void) {
#ifdef REVENT
    event_set_log_callback(count_log);
    ev_uint32_t t, v;
    char *s;
    struct evbuffer *b = evbuffer_new();
    CHECK(evtag_peek(NULL, &t) == -1);
    CHECK(evtag_unmarshal_header(NULL, &t) == -1);
    CHECK(evtag_unmarshal_int(NULL, 1, &v) == -1);
    CHECK(evtag_decode_int(&v, NULL) == -1);
    evtag_marshal_int(NULL, 1, 1);
    evtag_marshal_string(b, 1, NULL);
    evtag_marshal(b, 1, NULL, 5);
    evtag_marshal_timeval(b, 1, NULL);
    evtag_marshal_buffer(b, 1, NULL);
    evtag_marshal_buffer(b, 1, b);
    CHECK(evbuffer_get_length(b) == 0);
    evtag_marshal_string(b, 1, "x");
    CHECK(evtag_unmarshal_string(b, 1, NULL) == -1);
    CHECK(evtag_unmarshal_fixed(b, 1, NULL, 1) == -1);
    CHECK(evtag_unmarshal_string(b, 1, &s) == 0 && strcmp(s, "x") == 0);
    free(s);
    evbuffer_free(b);
    CHECK(warnings == 12);
    event_set_log_callback(NULL);
#endif
}

int main(void) {
    encodings();
    decodings();
    errors();
    truncated();
    long_tag();
    huge_length();
    nulls();
    return 0;
}
