/* Events from C: callbacks with their arguments, timeouts, persistence, priorities, event_active,
 * event_pending, re-entrant calls from inside callbacks, the 1.x API's current base, event_once. */
#include <event2/event.h>
#include <event2/event_compat.h>
#include <event2/event_struct.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

static int fired[8];
static short last_what;
static int order[8], n_order;

static void count(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    fired[*(int *)arg]++;
    last_what = what;
    if (n_order < 8)
        order[n_order++] = *(int *)arg;
}

static struct event *self_ev;
static void free_self(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    CHECK(arg == self_ev);            /* event_self_cbarg() */
    fired[5]++;
    event_free(self_ev);
}

static void reader(evutil_socket_t fd, short what, void *arg) {
    char buf[16];
    (void)arg;
    CHECK(what & EV_READ);
    CHECK(read(fd, buf, sizeof buf) > 0);
    fired[6]++;
}

static struct event *second;
static void adds_another(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    /* Re-entrant: add and activate from inside a callback. */
    struct timeval tv = {0, 1000};
    CHECK(event_add(second, &tv) == 0);
    fired[7]++;
}

int main(void) {
    struct event_base *base = event_base_new();
    CHECK(base);
    int ids[5] = {0, 1, 2, 3, 4};

    /* A one-shot timer and a persistent one. */
    struct event *t = evtimer_new(base, count, &ids[0]);
    struct timeval tv = {0, 2000};
    CHECK(evtimer_add(t, &tv) == 0);
    CHECK(evtimer_pending(t, NULL));
    CHECK(event_base_dispatch(base) == 1);   /* no events left: 1 */
    CHECK(fired[0] == 1 && last_what == EV_TIMEOUT);
    CHECK(!evtimer_pending(t, NULL));

    /* event_active on an event never added, with a result of our choosing. */
    struct event *a = event_new(base, -1, 0, count, &ids[1]);
    event_active(a, EV_WRITE, 1);
    CHECK(event_base_loop(base, EVLOOP_ONCE) == 0);
    CHECK(fired[1] == 1 && last_what == EV_WRITE);

    /* An fd event. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct event *r = event_new(base, sv[0], EV_READ | EV_PERSIST, reader, NULL);
    CHECK(event_add(r, NULL) == 0);
    CHECK(write(sv[1], "x", 1) == 1);
    CHECK(event_base_loop(base, EVLOOP_ONCE) == 0);
    CHECK(fired[6] == 1);
    CHECK(event_pending(r, EV_READ, NULL) & EV_READ);
    CHECK(event_del(r) == 0);
    CHECK(!event_pending(r, EV_READ, NULL));

    /* event_self_cbarg and freeing oneself in the callback. */
    self_ev = event_new(base, -1, 0, free_self, event_self_cbarg());
    event_active(self_ev, EV_TIMEOUT, 1);
    CHECK(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    CHECK(fired[5] == 1);

    /* Re-entry from a callback. */
    second = event_new(base, -1, 0, count, &ids[2]);
    struct event *first = event_new(base, -1, 0, adds_another, NULL);
    event_active(first, EV_TIMEOUT, 1);
    CHECK(event_base_dispatch(base) == 1);
    CHECK(fired[7] == 1 && fired[2] == 1);

    /* Priorities: with 2 queues the urgent one runs first although activated second. */
    CHECK(event_base_priority_init(base, 2) == 0);
    struct event *lo = event_new(base, -1, 0, count, &ids[3]);
    struct event *hi = event_new(base, -1, 0, count, &ids[4]);
    CHECK(event_priority_set(lo, 1) == 0);
    CHECK(event_priority_set(hi, 0) == 0);
    n_order = 0;
    event_active(lo, EV_TIMEOUT, 1);
    event_active(hi, EV_TIMEOUT, 1);
    CHECK(event_base_loop(base, EVLOOP_ONCE) == 0);
    CHECK(n_order == 2 && order[0] == 4 && order[1] == 3);

    /* event_base_once and loopexit. */
    fired[0] = 0;
    CHECK(event_base_once(base, -1, EV_TIMEOUT, count, &ids[0], &tv) == 0);
    CHECK(event_base_dispatch(base) == 1);
    CHECK(fired[0] == 1);
    struct timeval later = {0, 5000};
    CHECK(event_base_loopexit(base, &later) == 0);
    struct event *keep = event_new(base, -1, EV_PERSIST, count, &ids[0]);
    struct timeval hour = {3600, 0};
    CHECK(event_add(keep, &hour) == 0);
    CHECK(event_base_dispatch(base) == 0);
    CHECK(event_base_got_exit(base));

    event_free(keep); event_free(lo); event_free(hi); event_free(first); event_free(second);
    event_free(r); event_free(a); event_free(t);
    close(sv[0]); close(sv[1]);
    event_base_free(base);

    /* The 1.x API: event_init makes the current base that event_set and event_dispatch use. */
    struct event_base *cur = event_init();
    CHECK(cur);
    struct event old;
    event_set(&old, -1, 0, count, &ids[1]);
    CHECK(old.ev_base == cur);
    fired[1] = 0;
    struct timeval soon = {0, 1000};
    CHECK(event_add(&old, &soon) == 0);
    CHECK(event_dispatch() == 1);
    CHECK(fired[1] == 1);
    event_base_free(cur);
    puts("events ok");
    return 0;
}
