/* pipes benchmark, C libevent 2.1 contender (event_config_avoid_method picks the backend). */
#include "pipes_common.h"

#include <event2/event.h>
#include <event2/event_struct.h>

static struct event_base *base;
static struct event *events;

static void
read_cb(evutil_socket_t fd, short which, void *arg)
{
	(void)fd;
	(void)which;
	on_readable((long)(intptr_t)arg);
}

static void
impl_setup(const char *method)
{
	/* io_uring: revent's C ABI has it (before poll); libevent ignores a name it does not know. */
	static const char *all[] = { "epoll", "io_uring", "poll", "select" };
	struct event_config *cfg = event_config_new();
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i], method) != 0)
			event_config_avoid_method(cfg, all[i]);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!base || strcmp(event_base_get_method(base), method) != 0) {
		fprintf(stderr, "libevent: cannot get method %s (got %s)\n", method,
		    base ? event_base_get_method(base) : "no base");
		exit(1);
	}
	events = calloc(num_pipes, sizeof(struct event));
	if (!events)
		die("calloc");
}

static void
impl_readd(void)
{
	long i;
	for (i = 0; i < num_pipes; i++) {
		if (event_initialized(&events[i]))
			event_del(&events[i]);
		event_assign(&events[i], base, pipes[2 * i], EV_READ | EV_PERSIST, read_cb, (void *)(intptr_t)i);
		event_add(&events[i], NULL);
	}
}

static void
impl_loop_once(void)
{
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}
