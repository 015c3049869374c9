/*
 * timers benchmark, C libevent 2.1 contender.
 *
 * Setup (untimed): NT timer events (event_assign, fd -1), and NT random durations from a fixed
 * xorshift64* sequence (the Rust contender draws the same ones): 0-10 s for add+delete, 0-20 ms for
 * firing, in microseconds; one common timeout of 5 s.
 * Each round (timed, ns per timer):
 *   rand_ns     add every timer with its random 0-10 s duration, then delete every timer;
 *   common_ns   the same with the common timeout (event_base_init_common_timeout);
 *   fireadd_ns  add every timer with its random 0-20 ms duration;
 *   fire_ns     event_base_dispatch until every timer has fired (it returns when none is pending).
 *
 * Usage: timers_libevent [-n NT]; prints "ready", then one result line per "run" line on stdin.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

static long fired;

static unsigned long long
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* xorshift64*, seed and constants shared with the Rust contender. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t
rng_next(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void
timer_cb(evutil_socket_t fd, short which, void *arg)
{
	(void)fd;
	(void)which;
	(void)arg;
	fired++;
}

/* Each phase is its own function, so a callgrind profile attributes instructions to it. */

/* Adds every timer with tvs[i] (or `same` for all); returns the number of failures. */
static __attribute__((noinline)) long
add_each(struct event *evs, long nt, const struct timeval *tvs, const struct timeval *same)
{
	long i, failures = 0;
	for (i = 0; i < nt; i++)
		failures += event_add(&evs[i], same ? same : &tvs[i]) != 0;
	return failures;
}

static __attribute__((noinline)) long
del_each(struct event *evs, long nt)
{
	long i, failures = 0;
	for (i = 0; i < nt; i++)
		failures += event_del(&evs[i]) != 0;
	return failures;
}

/* Runs the loop until no timer is left; 0 when it ended that way. */
static __attribute__((noinline)) long
fire_all(struct event_base *base)
{
	return event_base_dispatch(base) != 1;
}

int
main(int argc, char **argv)
{
	long nt = 1000000, i;
	int c;
	struct event_base *base;
	struct event *evs;
	struct timeval *rand_tv, *fire_tv, five = { 5, 0 };
	const struct timeval *common;
	char line[64];

	while ((c = getopt(argc, argv, "n:")) != -1) {
		if (c == 'n')
			nt = atol(optarg);
		else {
			fprintf(stderr, "usage: %s [-n TIMERS]\n", argv[0]);
			return 2;
		}
	}
	base = event_base_new();
	evs = calloc(nt, sizeof(struct event));
	rand_tv = calloc(nt, sizeof(struct timeval));
	fire_tv = calloc(nt, sizeof(struct timeval));
	if (!base || !evs || !rand_tv || !fire_tv) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	for (i = 0; i < nt; i++) {
		uint64_t us = rng_next() % 10000001ull;
		rand_tv[i].tv_sec = (time_t)(us / 1000000);
		rand_tv[i].tv_usec = (suseconds_t)(us % 1000000);
	}
	for (i = 0; i < nt; i++) {
		uint64_t us = rng_next() % 20001ull;
		fire_tv[i].tv_sec = 0;
		fire_tv[i].tv_usec = (suseconds_t)us;
	}
	for (i = 0; i < nt; i++)
		event_assign(&evs[i], base, -1, 0, timer_cb, NULL);
	common = event_base_init_common_timeout(base, &five);

	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		unsigned long long t0, t1, t2;
		double rand_ns, common_ns, fireadd_ns, fire_ns;
		long failures = 0;

		if (strncmp(line, "run", 3) != 0)
			break;

		t0 = now_ns();
		failures += add_each(evs, nt, rand_tv, NULL);
		failures += del_each(evs, nt);
		t1 = now_ns();
		rand_ns = (double)(t1 - t0) / nt;

		t0 = now_ns();
		failures += add_each(evs, nt, NULL, common);
		failures += del_each(evs, nt);
		t1 = now_ns();
		common_ns = (double)(t1 - t0) / nt;

		fired = 0;
		t0 = now_ns();
		failures += add_each(evs, nt, fire_tv, NULL);
		t1 = now_ns();
		failures += fire_all(base);
		t2 = now_ns();
		fireadd_ns = (double)(t1 - t0) / nt;
		fire_ns = (double)(t2 - t1) / nt;

		printf("rand_ns=%.2f common_ns=%.2f fireadd_ns=%.2f fire_ns=%.2f fired=%ld timers=%ld failures=%ld\n",
		    rand_ns, common_ns, fireadd_ns, fire_ns, fired, nt, failures);
		fflush(stdout);
	}
	return 0;
}
