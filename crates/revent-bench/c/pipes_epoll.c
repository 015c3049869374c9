/*
 * pipes benchmark, raw epoll contender: level-triggered, one epoll_wait per loop iteration, one recv
 * and one send per readiness. The floor of syscalls an evented program needs on epoll.
 */
#include "pipes_common.h"

#include <stdint.h>
#include <sys/epoll.h>

#define MAX_EVENTS 4096

static int epfd = -1;
static struct epoll_event evs[MAX_EVENTS];

static void
impl_setup(const char *method)
{
	if (strcmp(method, "epoll") != 0) {
		fprintf(stderr, "pipes_epoll: method must be epoll\n");
		exit(2);
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd == -1)
		die("epoll_create1");
}

static void
impl_readd(void)
{
	long i;
	for (i = 0; i < num_pipes; i++) {
		struct epoll_event ev;
		memset(&ev, 0, sizeof ev);
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)i;
		if (epoll_ctl(epfd, EPOLL_CTL_DEL, pipes[2 * i], &ev) == -1 && errno != ENOENT)
			die("epoll_ctl DEL");
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, pipes[2 * i], &ev) == -1)
			die("epoll_ctl ADD");
	}
}

static void
impl_loop_once(void)
{
	int i, n = epoll_wait(epfd, evs, MAX_EVENTS, 0);
	if (n == -1 && errno != EINTR)
		die("epoll_wait");
	for (i = 0; i < n; i++)
		on_readable((long)evs[i].data.u64);
}
