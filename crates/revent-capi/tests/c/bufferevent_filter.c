/* Filter bufferevents from C: an uppercasing filter both ways over one end of a pair, the filter
 * context freed with the filter, BEV_OPT_CLOSE_ON_FREE freeing the underlying bufferevent, and
 * bufferevent_get_underlying. The filter functions need the evbuffer functions (event2/buffer.h):
 * they are referenced weakly, so that a library without them yet (revent before its evbuffer
 * functions land) links, and the test then says it skipped. */
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <ctype.h>
#include <string.h>
#include "check.h"

#pragma weak evbuffer_remove
#pragma weak evbuffer_add

static struct event_base *base;
static int ctx_value = 42, ctx_freed, filter_calls;

static enum bufferevent_filter_result upper(struct evbuffer *src, struct evbuffer *dst,
                                            ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                            void *ctx) {
    char buf[256];
    int n;
    (void)limit; (void)mode;
    CHECK(ctx == &ctx_value);
    filter_calls++;
    while ((n = evbuffer_remove(src, buf, sizeof buf)) > 0) {
        for (int i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        CHECK(evbuffer_add(dst, buf, (size_t)n) == 0);
    }
    return BEV_OK;
}

static void free_ctx(void *ctx) {
    CHECK(ctx == &ctx_value);
    ctx_freed++;
}

static char got[64];
static size_t got_len, want_len;
static void on_read(struct bufferevent *bev, void *arg) {
    (void)arg;
    got_len += bufferevent_read(bev, got + got_len, sizeof got - got_len);
    if (got_len >= want_len)
        event_base_loopbreak(base);
}

static void expect(struct bufferevent *reader, const char *text) {
    got_len = 0;
    want_len = strlen(text);
    bufferevent_setcb(reader, on_read, NULL, NULL, NULL);
    bufferevent_enable(reader, EV_READ);
    struct timeval tv = {5, 0};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    CHECK(got_len == want_len && memcmp(got, text, want_len) == 0);
}

int main(void) {
    if (!evbuffer_remove || !evbuffer_add) {
        fprintf(stderr, "bufferevent_filter: SKIPPED: the library has no evbuffer functions yet\n");
        return 0;
    }
    base = event_base_new();
    struct bufferevent *p[2];
    CHECK(bufferevent_pair_new(base, 0, p) == 0);
    struct bufferevent *f = bufferevent_filter_new(p[0], upper, upper, BEV_OPT_CLOSE_ON_FREE,
                                                   free_ctx, &ctx_value);
    CHECK(f);
    CHECK(bufferevent_get_underlying(f) == p[0]);
    CHECK(bufferevent_get_base(f) == base);

    /* Down: written to the filter, uppercased into the underlying side, read at the far end. */
    CHECK(bufferevent_write(f, "hello filter", 12) == 0);
    expect(p[1], "HELLO FILTER");
    /* Up: written at the far end, uppercased on its way into the filter's input. */
    CHECK(bufferevent_write(p[1], "going up", 8) == 0);
    expect(f, "GOING UP");
    CHECK(filter_calls >= 2);

    bufferevent_free(f);   /* frees p[0] too (BEV_OPT_CLOSE_ON_FREE) and the context */
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK(ctx_freed == 1);
    bufferevent_free(p[1]);
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    printf("bufferevent_filter: ok\n");
    return 0;
}
