/* Evbuffer change callbacks from C: order (newest first), the info values, callbacks that read or
 * change the buffer, a callback removing itself, enabling and disabling, removal by function and
 * argument, the old-style evbuffer_setcb, callbacks deferred to a base's loop (with NODEFER ones
 * running at once), and freeing a deferred buffer before its callbacks ran. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <event2/buffer.h>
#include <event2/buffer_compat.h>
#include <event2/event.h>
#include <string.h>
#include "check.h"

static int on_revent(void) {
    Dl_info info;
    CHECK(dladdr((void *)evbuffer_new, &info) != 0);
    return info.dli_fname && strstr(info.dli_fname, "revent-libs") != NULL;
}

struct call {
    char who;
    struct evbuffer *buf;
    size_t orig, added, deleted, len_inside;
};
static struct call calls[64];
static int n_calls;

static void record(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    CHECK(n_calls < 64);
    struct call *c = &calls[n_calls++];
    c->who = *(const char *)arg;
    c->buf = b;
    c->orig = info->orig_size;
    c->added = info->n_added;
    c->deleted = info->n_deleted;
    c->len_inside = evbuffer_get_length(b);
}

static void expect(int i, char who, size_t orig, size_t added, size_t deleted) {
    CHECK(i < n_calls);
    if (calls[i].who != who || calls[i].orig != orig || calls[i].added != added ||
        calls[i].deleted != deleted) {
        fprintf(stderr, "call %d: %c orig=%zu added=%zu deleted=%zu; want %c %zu %zu %zu\n", i,
            calls[i].who, calls[i].orig, calls[i].added, calls[i].deleted, who, orig, added,
            deleted);
        CHECK(0);
    }
}

/* Reads the first bytes from inside the callback. */
static char seen[16];
static void peek_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    (void)info;
    (void)arg;
    memset(seen, 0, sizeof seen);
    CHECK(evbuffer_copyout(b, seen, sizeof seen - 1) >= 0);
    record(b, info, "P");
}

/* Removes itself on its first call. */
static struct evbuffer_cb_entry *self_ent;
static void once_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    record(b, info, arg);
    CHECK(evbuffer_remove_cb_entry(b, self_ent) == 0);
}

/* Keeps the buffer at most 10 bytes long by draining it from inside the callback. */
static void drainer(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    record(b, info, arg);
    if (evbuffer_get_length(b) > 10)
        CHECK(evbuffer_drain(b, evbuffer_get_length(b)) == 0);
}

/* Old-style callback (evbuffer_setcb). */
static size_t old_from[8], old_to[8];
static int n_old;
static void old_cb(struct evbuffer *b, size_t from, size_t to, void *arg) {
    (void)b;
    CHECK(arg == (void *)old_from);
    CHECK(n_old < 8);
    old_from[n_old] = from;
    old_to[n_old++] = to;
}

static void test_immediate(void) {
    struct evbuffer *b = evbuffer_new();
    n_calls = 0;
    struct evbuffer_cb_entry *ea = evbuffer_add_cb(b, record, "A");
    struct evbuffer_cb_entry *eb = evbuffer_add_cb(b, record, "B");
    CHECK(ea && eb && ea != eb);

    CHECK(evbuffer_add(b, "hello", 5) == 0);
    CHECK(n_calls == 2);
    expect(0, 'B', 0, 5, 0);                         /* newest first, as libevent */
    expect(1, 'A', 0, 5, 0);
    CHECK(calls[0].buf == b && calls[0].len_inside == 5);
    CHECK(evbuffer_drain(b, 2) == 0);
    expect(2, 'B', 5, 0, 2);
    expect(3, 'A', 5, 0, 2);
    CHECK(evbuffer_add(b, "", 0) == 0);              /* no change, no call */
    CHECK(evbuffer_drain(b, 0) == 0);
    CHECK(n_calls == 4);

    /* Disabled and enabled again. */
    CHECK(evbuffer_cb_clear_flags(b, ea, EVBUFFER_CB_ENABLED) == 0);
    CHECK(evbuffer_prepend(b, "<", 1) == 0);
    CHECK(n_calls == 5);
    expect(4, 'B', 3, 1, 0);
    CHECK(evbuffer_cb_set_flags(b, ea, EVBUFFER_CB_ENABLED) == 0);

    /* Removal by entry, and by function and argument. */
    CHECK(evbuffer_remove_cb_entry(b, eb) == 0);
    CHECK(evbuffer_add(b, "!", 1) == 0);
    CHECK(n_calls == 6);
    expect(5, 'A', 4, 1, 0);
    CHECK(evbuffer_remove_cb(b, record, "A") == 0);
    CHECK(evbuffer_remove_cb(b, record, "A") == -1);
    CHECK(evbuffer_add(b, "!", 1) == 0);
    CHECK(n_calls == 6);

    /* A callback that reads the buffer sees the change made. */
    evbuffer_add_cb(b, peek_cb, NULL);
    CHECK(evbuffer_drain(b, 1) == 0);
    CHECK(strcmp(seen, "llo!!") == 0);
    CHECK(evbuffer_remove_cb(b, peek_cb, NULL) == 0);

    /* A callback that removes itself runs once. */
    n_calls = 0;
    self_ent = evbuffer_add_cb(b, once_cb, "O");
    CHECK(evbuffer_add(b, "1", 1) == 0);
    CHECK(evbuffer_add(b, "2", 1) == 0);
    CHECK(n_calls == 1);
    expect(0, 'O', 5, 1, 0);
    evbuffer_free(b);
}

/* On the destination of a move: looks at the source, which the move has already emptied. */
static struct evbuffer *watched_src;
static size_t src_len_seen;
static char dst_seen[16];
static void dst_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    (void)info;
    (void)arg;
    src_len_seen = evbuffer_get_length(watched_src);
    memset(dst_seen, 0, sizeof dst_seen);
    CHECK(evbuffer_copyout(b, dst_seen, sizeof dst_seen - 1) >= 0);
}

static void test_changes_from_callbacks(void) {
    /* The callback drains what goes over 10 bytes: both changes are reported, the buffer ends
     * empty. */
    struct evbuffer *b = evbuffer_new();
    n_calls = 0;
    evbuffer_add_cb(b, drainer, "D");
    CHECK(evbuffer_add(b, "0123456789abcdefghij", 20) == 0);
    CHECK(evbuffer_get_length(b) == 0);
    CHECK(n_calls == 2);
    size_t added = 0, deleted = 0;
    for (int i = 0; i < n_calls; i++) {
        added += calls[i].added;
        deleted += calls[i].deleted;
    }
    CHECK(added == 20 && deleted == 20);
    CHECK(calls[0].added == 20 && calls[1].deleted == 20);

    /* Moving bytes between buffers reports to both. */
    struct evbuffer *c = evbuffer_new();
    evbuffer_add_cb(c, record, "C");
    n_calls = 0;
    CHECK(evbuffer_add(c, "xyz", 3) == 0);
    CHECK(n_calls == 1);
    n_calls = 0;
    CHECK(evbuffer_remove_buffer(c, b, 2) == 2);
    CHECK(n_calls == 2);
    int ci = calls[0].who == 'C' ? 0 : 1;
    expect(ci, 'C', 3, 0, 2);
    expect(1 - ci, 'D', 0, 2, 0);
    evbuffer_free(b);
    evbuffer_free(c);

    /* A callback on the destination of add_buffer / remove_buffer / prepend_buffer may look at
     * the source. */
    struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
    watched_src = src;
    evbuffer_add_cb(dst, dst_cb, NULL);
    CHECK(evbuffer_add(src, "moved", 5) == 0);
    src_len_seen = 99;
    CHECK(evbuffer_add_buffer(dst, src) == 0);
    CHECK(src_len_seen == 0 && strcmp(dst_seen, "moved") == 0);
    CHECK(evbuffer_add(src, "abcdef", 6) == 0);
    CHECK(evbuffer_remove_buffer(src, dst, 4) == 4);
    /* libevent copies a split chunk with an inner evbuffer_add, whose callbacks run before the
     * source's length is updated: they see 6 there, revent 2. */
    CHECK((src_len_seen == 2 || src_len_seen == 6) && strcmp(dst_seen, "movedabcd") == 0);
    CHECK(!on_revent() || src_len_seen == 2);
    CHECK(evbuffer_prepend_buffer(dst, src) == 0);
    CHECK(src_len_seen == 0 && strcmp(dst_seen, "efmovedabcd") == 0);
    CHECK(evbuffer_add(src, "ref", 3) == 0);
    CHECK(evbuffer_add_buffer_reference(dst, src) == 0);
    CHECK(src_len_seen == 3 && strcmp(dst_seen, "efmovedabcdref") == 0);
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_setcb(void) {
    struct evbuffer *b = evbuffer_new();
    n_calls = 0;
    n_old = 0;
    evbuffer_add_cb(b, record, "A");
    evbuffer_setcb(b, old_cb, old_from);             /* replaces every callback */
    CHECK(evbuffer_add(b, "abcd", 4) == 0);
    CHECK(evbuffer_drain(b, 1) == 0);
    CHECK(n_calls == 0);
    CHECK(n_old == 2);
    CHECK(old_from[0] == 0 && old_to[0] == 4);
    CHECK(old_from[1] == 4 && old_to[1] == 3);
    evbuffer_setcb(b, old_cb, old_from);             /* replaced by itself: still one */
    CHECK(evbuffer_add(b, "e", 1) == 0);
    CHECK(n_old == 3 && old_from[2] == 3 && old_to[2] == 4);
    evbuffer_setcb(b, NULL, NULL);                   /* removes it */
    CHECK(evbuffer_add(b, "f", 1) == 0);
    CHECK(n_old == 3);
    evbuffer_free(b);
}

static void test_deferred(void) {
    struct event_base *base = event_base_new();
    CHECK(base);
    struct evbuffer *b = evbuffer_new();
    n_calls = 0;
    evbuffer_add_cb(b, record, "L");
    struct evbuffer_cb_entry *now = evbuffer_add_cb(b, record, "N");
    /* libevent's internal NODEFER flag (2): runs at once even when deferred. */
    CHECK(evbuffer_cb_set_flags(b, now, 2) == 0);
    CHECK(evbuffer_defer_callbacks(b, base) == 0);

    CHECK(evbuffer_add(b, "abc", 3) == 0);
    CHECK(n_calls == 1);
    expect(0, 'N', 0, 3, 0);
    CHECK(evbuffer_add(b, "defg", 4) == 0);
    CHECK(evbuffer_drain(b, 2) == 0);
    CHECK(n_calls == 3);
    expect(1, 'N', 0, 7, 0);                         /* NODEFER sees the sum so far */
    expect(2, 'N', 0, 7, 2);

    /* The loop delivers the summed change, once. */
    CHECK(event_base_loop(base, EVLOOP_NONBLOCK) == 1);
    CHECK(n_calls == 4);
    expect(3, 'L', 0, 7, 2);
    CHECK(calls[3].len_inside == 5);
    CHECK(event_base_loop(base, EVLOOP_NONBLOCK) == 1);
    CHECK(n_calls == 4);

    /* And again for the next changes; a full dispatch returns once nothing is left. */
    CHECK(evbuffer_add(b, "h", 1) == 0);
    CHECK(n_calls == 5);
    expect(4, 'N', 5, 1, 0);
    CHECK(event_base_dispatch(base) == 1);
    CHECK(n_calls == 6);
    expect(5, 'L', 5, 1, 0);

    /* A deferred buffer freed before the loop ran its callbacks: as in libevent (whose deferred
     * callback holds a reference), the change made before the free is still reported, then the
     * buffer goes. A buffer freed with nothing pending goes at once. */
    struct evbuffer *gone = evbuffer_new();
    evbuffer_add_cb(gone, record, "G");
    CHECK(evbuffer_defer_callbacks(gone, base) == 0);
    CHECK(evbuffer_add(gone, "late", 4) == 0);
    evbuffer_free(gone);
    CHECK(n_calls == 6);
    CHECK(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    CHECK(n_calls == 7);
    expect(6, 'G', 0, 4, 0);
    CHECK(calls[6].len_inside == 4);
    CHECK(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    CHECK(n_calls == 7);
    gone = evbuffer_new();
    evbuffer_add_cb(gone, record, "H");
    CHECK(evbuffer_defer_callbacks(gone, base) == 0);
    evbuffer_free(gone);
    CHECK(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    CHECK(n_calls == 7);

    /* Freed, and the base freed before its loop ran: no callback, nothing leaks. */
    struct event_base *base2 = event_base_new();
    gone = evbuffer_new();
    evbuffer_add_cb(gone, record, "I");
    CHECK(evbuffer_defer_callbacks(gone, base2) == 0);
    CHECK(evbuffer_add(gone, "x", 1) == 0);
    evbuffer_free(gone);
    event_base_free(base2);
    CHECK(n_calls == 7);

    evbuffer_free(b);
    event_base_free(base);
}

/* revent only (libevent has no such guarantees): a callback that frees its buffer, and handles
 * that are not the buffer's. */
static struct evbuffer *doomed;
static void free_self(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    record(b, info, arg);
    evbuffer_free(b);
}

static void test_revent_only(void) {
    doomed = evbuffer_new();
    n_calls = 0;
    evbuffer_add_cb(doomed, free_self, "F");
    CHECK(evbuffer_add(doomed, "bye", 3) == 0);     /* freed once the add returns */
    CHECK(n_calls == 1);

    struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
    struct evbuffer_cb_entry *ea = evbuffer_add_cb(a, record, "A");
    CHECK(evbuffer_remove_cb_entry(b, ea) == -1);    /* another buffer's */
    CHECK(evbuffer_cb_set_flags(b, ea, 1) == -1);
    CHECK(evbuffer_add_cb(a, NULL, NULL) == NULL);
    CHECK(evbuffer_remove_cb_entry(a, ea) == 0);
    CHECK(evbuffer_remove_cb_entry(a, ea) == -1);    /* already removed */
    CHECK(evbuffer_defer_callbacks(NULL, NULL) == -1);
    evbuffer_free(a);
    evbuffer_free(b);
}

int main(void) {
    test_immediate();
    test_changes_from_callbacks();
    test_setcb();
    test_deferred();
    if (on_revent())
        test_revent_only();
    return 0;
}
