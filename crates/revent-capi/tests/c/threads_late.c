/* evthread_use_pthreads() called from inside a callback while the loop runs: the rest of that
 * callback, and the callbacks after it, still act on the base directly from the loop's thread (an
 * added timer is pending at once, a delete takes effect at once; on revent the running event is
 * also still known: libevent's th_owner_id no longer matches once an id function is set). */
#include <event2/event.h>
#include <event2/thread.h>
#include "check.h"

static struct event_base *base;
static struct event *self, *other;
static int runs, bad;

static void other_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
}

static void check_direct(int enabled) {
    struct timeval tv = {5, 0};
#ifndef REVENT
    if (!enabled)
#endif
        bad += event_base_get_running_event(base) != self;
    bad += event_add(other, &tv) != 0;
    bad += !event_pending(other, EV_TIMEOUT, NULL);
    bad += event_del(other) != 0;
    bad += event_pending(other, EV_TIMEOUT, NULL) != 0;
}

static void self_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    runs++;
    check_direct(runs > 1);
    if (runs == 1) {
        CHECK(evthread_use_pthreads() == 0);
        check_direct(1);
    }
    if (runs < 3)
        event_active(self, EV_READ, 1);
    else
        event_base_loopbreak(base);
}

int main(void) {
    CHECK((base = event_base_new()));
    CHECK((self = event_new(base, -1, 0, self_cb, NULL)));
    CHECK((other = evtimer_new(base, other_cb, NULL)));
    event_active(self, EV_READ, 1);
    CHECK(event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY) == 0);
    CHECK(runs == 3 && bad == 0);
    event_free(self);
    event_free(other);
    event_base_free(base);
    puts("threads_late ok");
    return 0;
}
