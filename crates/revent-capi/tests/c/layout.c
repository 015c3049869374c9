/* The ABI's layouts: sizes and offsets of what programs embed or read directly (ABI.md), as the
 * system's headers declare them, checked against what the library reports and writes. */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "check.h"

static void cb(evutil_socket_t fd, short what, void *arg) { (void)fd; (void)what; (void)arg; }

int main(void) {
    CHECK(sizeof(struct event) == 128);
    CHECK(event_get_struct_event_size() == sizeof(struct event));
    CHECK(offsetof(struct event, ev_base) == 64);
    CHECK(offsetof(struct event, ev_fd) == 56);
    CHECK(offsetof(struct event, ev_events) == 104);
    CHECK(offsetof(struct event, ev_res) == 106);
    CHECK(offsetof(struct event, ev_timeout) == 112);

    struct event_base *base = event_base_new();
    CHECK(base != NULL);
    /* event_initialized on zeroed memory, then fields written by event_assign where C reads them. */
    struct event ev;
    memset(&ev, 0, sizeof ev);
    CHECK(!event_initialized(&ev));
    CHECK(event_assign(&ev, base, 7, EV_READ | EV_PERSIST, cb, &ev) == 0);
    CHECK(event_initialized(&ev));
    CHECK(ev.ev_base == base);                /* memcached reads it directly */
    CHECK(ev.ev_fd == 7);
    CHECK(ev.ev_events == (EV_READ | EV_PERSIST));
    CHECK(event_get_fd(&ev) == 7);
    CHECK(event_get_base(&ev) == base);
    CHECK(event_get_events(&ev) == (EV_READ | EV_PERSIST));
    CHECK(event_get_callback(&ev) == cb);
    CHECK(event_get_callback_arg(&ev) == &ev);
    event_base_free(base);
    puts("layout ok");
    return 0;
}
