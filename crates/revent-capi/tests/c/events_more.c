/* The rest of event.h: foreach, active_by_fd/by_signal, the running event, event_remove_timer,
 * event_pending's expiry, counts, versions, methods, configs, common timeouts, event_get_assignment. */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "check.h"

static int hits[4];
static struct event *running_seen;
static struct event_base *the_base;

static void note(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    hits[*(int *)arg]++;
    running_seen = event_base_get_running_event(the_base);
}

static int counted;
static int count_each(const struct event_base *b, const struct event *e, void *arg) {
    (void)b; (void)e;
    counted++;
    return *(int *)arg == counted;  /* stop after arg events when arg > 0 */
}

int main(void) {
    CHECK(event_get_version_number() >> 24 == 2);
    CHECK(strncmp(event_get_version(), "2.1", 3) == 0);
    const char **methods = event_get_supported_methods();
    CHECK(methods && methods[0]);

    struct event_config *cfg = event_config_new();
    CHECK(cfg);
    CHECK(event_config_avoid_method(cfg, "epoll") == 0);
    CHECK(event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK) == 0);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    CHECK(base);
    CHECK(strcmp(event_base_get_method(base), "epoll") != 0);
    event_base_free(base);

    base = event_base_new();
    the_base = base;
    int ids[4] = {0, 1, 2, 3};
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);

    /* event_get_assignment. */
    struct event *e0 = event_new(base, sv[0], EV_READ, note, &ids[0]);
    struct event_base *b_out; evutil_socket_t fd_out; short ev_out; event_callback_fn cb_out; void *arg_out;
    event_get_assignment(e0, &b_out, &fd_out, &ev_out, &cb_out, &arg_out);
    CHECK(b_out == base && fd_out == sv[0] && ev_out == EV_READ && cb_out == note && arg_out == &ids[0]);

    /* active_by_fd runs the event without I/O, and the running event is it. */
    CHECK(event_add(e0, NULL) == 0);
    event_base_active_by_fd(base, sv[0], EV_READ);
    CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
    CHECK(hits[0] == 1 && running_seen == e0);

    /* foreach_event sees added events, and stops when the callback says so. */
    struct event *e1 = event_new(base, -1, 0, note, &ids[1]);
    struct event *e2 = event_new(base, -1, 0, note, &ids[2]);
    struct timeval hour = {3600, 0};
    CHECK(event_add(e0, NULL) == 0);
    CHECK(event_add(e1, &hour) == 0);
    CHECK(event_add(e2, &hour) == 0);
    int no_stop = 0, stop_at_2 = 2;
    counted = 0;
    CHECK(event_base_foreach_event(base, count_each, &no_stop) == 0);
    CHECK(counted == 3);
    counted = 0;
    CHECK(event_base_foreach_event(base, count_each, &stop_at_2) == 1);
    CHECK(counted == 2);
    CHECK(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) == 3);

    /* event_pending reports the expiry on the wall clock. */
    struct timeval now, exp;
    gettimeofday(&now, NULL);
    CHECK(event_pending(e1, EV_TIMEOUT, &exp) & EV_TIMEOUT);
    CHECK(exp.tv_sec >= now.tv_sec + 3598 && exp.tv_sec <= now.tv_sec + 3602);

    /* event_remove_timer keeps the event on its fd, without the timeout. */
    struct event *e3 = event_new(base, sv[0], EV_READ | EV_PERSIST, note, &ids[3]);
    CHECK(event_add(e3, &hour) == 0);
    CHECK(event_remove_timer(e3) == 0);
    CHECK(event_pending(e3, EV_READ | EV_TIMEOUT, NULL) == EV_READ);
    event_free(e3);

    /* active_by_signal. */
    struct event *sig = evsignal_new(base, SIGUSR2, note, &ids[2]);
    CHECK(event_add(sig, NULL) == 0);
    event_del(e0); event_del(e1); event_del(e2);
    event_base_active_by_signal(base, SIGUSR2);
    CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
    CHECK(hits[2] == 1);
    event_free(sig);

    /* A common timeout: the returned timeval works with event_add. */
    struct timeval ten_ms = {0, 10000};
    const struct timeval *common = event_base_init_common_timeout(base, &ten_ms);
    CHECK(common);
    CHECK(event_add(e1, common) == 0);
    CHECK(event_base_dispatch(base) == 1);
    CHECK(hits[1] == 1);

    struct timeval cached;
    CHECK(event_base_gettimeofday_cached(base, &cached) == 0);
    CHECK(cached.tv_sec > 1600000000);

    event_free(e0); event_free(e1); event_free(e2);
    close(sv[0]); close(sv[1]);
    event_base_free(base);
    puts("events_more ok");
    return 0;
}
