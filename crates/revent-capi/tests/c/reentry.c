/* Calls into the base from C code that the library runs in the middle of its own work on that base:
 * an evbuffer callback on a bufferevent's input buffer runs while the bufferevent reads into it.
 * libevent allows the call. revent (threads off) cannot lend the base there without aliasing the
 * reference its own reading code holds, so it refuses the call with -1 and a warning, and nothing
 * else changes: the data still reaches the read callback, and a call from the read callback itself
 * works. With threads on, the same call is queued for the loop and succeeds (tests/c/threads.c). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

static struct event_base *base;
static int buffer_cb_calls, buffer_cb_result = 99, warnings;
static char got[64];

static void on_log(int severity, const char *msg) {
    (void)msg;
    if (severity >= EVENT_LOG_WARN)
        warnings++;
}

static void input_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
    (void)buf; (void)arg;
    if (info->n_added > 0) {
        buffer_cb_calls++;
        buffer_cb_result = event_base_loopexit(base, NULL);
    }
}

static void on_read(struct bufferevent *bev, void *arg) {
    (void)arg;
    size_t n = bufferevent_read(bev, got, sizeof got - 1);
    got[n] = 0;
    /* From the bufferevent's own callback the base is lent: this works everywhere. */
    CHECK(event_base_loopbreak(base) == 0);
}

int main(void) {
    event_set_log_callback(on_log);
    base = event_base_new();
    CHECK(base);
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    struct bufferevent *bev = bufferevent_socket_new(base, fds[0], BEV_OPT_CLOSE_ON_FREE);
    CHECK(bev);
    bufferevent_setcb(bev, on_read, NULL, NULL, NULL);
    CHECK(bufferevent_enable(bev, EV_READ) == 0);
    CHECK(evbuffer_add_cb(bufferevent_get_input(bev), input_changed, NULL) != NULL);

    CHECK(write(fds[1], "hello", 5) == 5);
    CHECK(event_base_dispatch(base) == 0);
    CHECK(strcmp(got, "hello") == 0);
    CHECK(buffer_cb_calls == 1);
#ifdef REVENT
    CHECK(buffer_cb_result == -1);
    CHECK(warnings >= 1);
#else
    CHECK(buffer_cb_result == 0);
#endif
    bufferevent_free(bev);
    close(fds[1]);
    event_base_free(base);
    puts("reentry: ok");
    return 0;
}
