/*
 * Shared driver of the pipes benchmark (libevent's test/bench.c semantics) for the C contenders.
 *
 * N socketpairs, each with a persistent read event. A of them get one byte; every callback reads its
 * byte and, while a budget of W writes lasts, writes one byte to the next pair ((i+1) % N). The untimed
 * setup re-adds all N events and runs the loop once without blocking; the timed part is the loop run
 * (once, non-blocking, repeatedly) until every byte written has been read.
 *
 * A contender defines:
 *   static void impl_setup(const char *method);   create its base/epoll/poll state for `pipes`
 *   static void impl_readd(void);                 re-add every event (untimed)
 *   static void impl_loop_once(void);             one non-blocking loop iteration
 * and calls on_readable(idx) from its callbacks.
 *
 * Usage: prog -m METHOD -n N -a A -w W [-k K]
 *   without -k: prints "ready", then for each "run" line on stdin prints one result line
 *               "us=... fired=... count=... failures=...", and exits at "quit" or EOF;
 *   with -k K:  runs the workload K times without the per-run re-add (for counting syscalls from
 *               outside: per run that is A sends plus the timed loop), prints totals and exits.
 */
#ifndef PIPES_COMMON_H
#define PIPES_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>

static long num_pipes, num_active, num_writes;
static long count, writes, fired, failures;
static int *pipes; /* pair i: pipes[2i] is read, pipes[2i+1] is written */

static void impl_setup(const char *method);
static void impl_readd(void);
static void impl_loop_once(void);

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static unsigned long long
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void
raise_nofile(long need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("getrlimit");
	if ((long)rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("setrlimit");
	if ((long)rl.rlim_cur < need) {
		fprintf(stderr, "need %ld fds, hard limit is %ld\n", need, (long)rl.rlim_max);
		exit(1);
	}
}

/* The body of libevent's bench.c read_cb. */
static inline void
on_readable(long idx)
{
	long widx = idx + 1;
	unsigned char ch;
	ssize_t n;

	n = recv(pipes[2 * idx], (char *)&ch, sizeof(ch), 0);
	if (n >= 0)
		count += n;
	else
		failures++;
	if (writes) {
		if (widx >= num_pipes)
			widx -= num_pipes;
		n = send(pipes[2 * widx + 1], "e", 1, 0);
		if (n != 1)
			failures++;
		writes--;
		fired++;
	}
}

static void
send_initial(void)
{
	long i, space = (num_pipes / num_active) * 2;
	fired = 0;
	for (i = 0; i < num_active; i++, fired++)
		if (send(pipes[i * space + 1], "e", 1, 0) != 1)
			failures++;
	count = 0;
	writes = num_writes;
}

/* One run: untimed re-add, then the timed loop. Returns the loop's nanoseconds. */
static unsigned long long
run_once(void)
{
	unsigned long long t0, t1;

	impl_readd();
	impl_loop_once();
	send_initial();
	t0 = now_ns();
	do {
		impl_loop_once();
	} while (count != fired);
	t1 = now_ns();
	return t1 - t0;
}

int
main(int argc, char **argv)
{
	const char *method = "epoll";
	long i, k = 0;
	int c;
	char line[64];

	num_pipes = 100;
	num_active = 1;
	num_writes = -1;
	while ((c = getopt(argc, argv, "m:n:a:w:k:")) != -1) {
		switch (c) {
		case 'm': method = optarg; break;
		case 'n': num_pipes = atol(optarg); break;
		case 'a': num_active = atol(optarg); break;
		case 'w': num_writes = atol(optarg); break;
		case 'k': k = atol(optarg); break;
		default:
			fprintf(stderr, "usage: %s -m METHOD -n N -a A -w W [-k K]\n", argv[0]);
			return 2;
		}
	}
	if (num_writes < 0)
		num_writes = num_pipes;
	if (num_pipes < 1 || num_active < 1 || num_active > num_pipes) {
		fprintf(stderr, "need 1 <= A <= N\n");
		return 2;
	}

	raise_nofile(2 * num_pipes + 64);
	pipes = calloc(2 * num_pipes, sizeof(int));
	if (!pipes)
		die("calloc");
	for (i = 0; i < num_pipes; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[2 * i]) == -1)
			die("socketpair");
	impl_setup(method);

	if (k > 0) {
		long total_count = 0, total_fired = 0;
		impl_readd();
		impl_loop_once();
		for (i = 0; i < k; i++) {
			send_initial();
			do {
				impl_loop_once();
			} while (count != fired);
			total_count += count;
			total_fired += fired;
		}
		printf("runs=%ld fired=%ld count=%ld failures=%ld\n", k, total_fired, total_count, failures);
		return failures ? 1 : 0;
	}

	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		unsigned long long ns;
		if (strncmp(line, "run", 3) != 0)
			break;
		failures = 0;
		ns = run_once();
		printf("us=%.3f fired=%ld count=%ld failures=%ld\n", ns / 1000.0, fired, count, failures);
		fflush(stdout);
	}
	return 0;
}

#endif
