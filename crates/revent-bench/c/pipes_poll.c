/*
 * pipes benchmark, raw poll() contender: one poll over all N fds per loop iteration, one recv and one
 * send per readable fd; the scan stops once it has seen as many ready entries as poll reported.
 */
#include "pipes_common.h"

#include <poll.h>

static struct pollfd *pfds;

static void
impl_setup(const char *method)
{
	if (strcmp(method, "poll") != 0) {
		fprintf(stderr, "pipes_poll: method must be poll\n");
		exit(2);
	}
	pfds = calloc(num_pipes, sizeof(struct pollfd));
	if (!pfds)
		die("calloc");
}

static void
impl_readd(void)
{
	long i;
	for (i = 0; i < num_pipes; i++) {
		pfds[i].fd = pipes[2 * i];
		pfds[i].events = POLLIN;
		pfds[i].revents = 0;
	}
}

static void
impl_loop_once(void)
{
	long i;
	int n = poll(pfds, (nfds_t)num_pipes, 0);
	if (n == -1 && errno != EINTR)
		die("poll");
	for (i = 0; i < num_pipes && n > 0; i++) {
		if (pfds[i].revents) {
			n--;
			if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))
				on_readable(i);
		}
	}
}
