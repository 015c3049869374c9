/*
 * wakeup benchmark, C libevent 2.1 contender: cross-thread wake-ups.
 *
 * Two threads. The loop thread runs event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY) on a base made
 * notifiable (evthread_use_pthreads before event_base_new, then evthread_make_base_notifiable). The
 * poster thread (the main thread, which also speaks the protocol on stdin/stdout) posts bursts of B:
 * event_active(evs[i], EV_READ, 1) for i = 0..B-1, B distinct events (fd -1, no flags, never added),
 * then waits until all B callbacks have run before the next burst. Since every burst waits for all
 * its callbacks, an event is never active when it is activated: each post runs exactly one callback.
 *
 * Completion, the same in all contenders (see src/wakeup.rs): the callback bumps `count` (written by
 * the loop thread only) and, once count reaches `want` (the poster's target for the burst in flight),
 * stores it into `done`; the poster spins on `done` with the pause instruction, no syscall. Each of
 * the three words has its own cache line, so the callbacks of a burst do not bounce a line with the
 * spinning poster; one line moves each way per burst.
 *
 * Usage: wakeup_libevent -b B -s SECS [-l LOOP_CPU] [-p POSTER_CPU] [-t STALL_SECS] [-g GAP_NS]
 * Prints "ready" after a short untimed warm-up, then for each "run" line on stdin posts bursts for
 * SECS seconds and prints "posts=... callbacks=... bursts=... secs=... posts_per_s=... post_ns=...
 * loop_cpu_ns=... stalled=0|1" (post_ns: poster time inside the posting calls, per post; loop_cpu_ns:
 * the loop thread's CPU time, user + system, per post). A burst whose callbacks do not all run within
 * STALL_SECS (default 10) ends the run with stalled=1: a lost wake-up. With GAP_NS, the poster idles
 * that long (spinning on the clock, no syscall) after each burst is done: sparse posts.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

/* One cache line each (128 bytes: adjacent-line prefetch pairs lines). */
struct line {
	_Alignas(128) unsigned long long v;
};
static struct line count, want, done;

static struct event_base *base;
static int loop_cpu = -1;
/* Idle time (spinning, no syscall) after each burst is done, in ns. */
static unsigned long long gap_ns;

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

static unsigned long long
clock_ns(clockid_t c)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		die("clock_gettime");
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void
pin(int cpu)
{
	cpu_set_t set;
	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		die("sched_setaffinity");
}

static inline void
spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* The callback every post runs. */
static void
on_post(evutil_socket_t fd, short what, void *arg)
{
	unsigned long long n;
	(void)fd;
	(void)what;
	(void)arg;
	n = __atomic_load_n(&count.v, __ATOMIC_RELAXED) + 1;
	__atomic_store_n(&count.v, n, __ATOMIC_RELAXED);
	if (n >= __atomic_load_n(&want.v, __ATOMIC_ACQUIRE))
		__atomic_store_n(&done.v, n, __ATOMIC_RELEASE);
}

static void *
loop_main(void *arg)
{
	(void)arg;
	pin(loop_cpu);
	if (event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY) < 0) {
		fprintf(stderr, "event_base_loop failed\n");
		exit(1);
	}
	return NULL;
}

struct outcome {
	unsigned long long posts, callbacks, bursts, post_ns, loop_cpu_ns;
	double secs;
	int stalled;
};

/* Posts bursts of b for `secs` seconds (see the top of the file). */
static struct outcome
drive(struct event **evs, long b, double secs, double stall_secs, clockid_t loop_clock)
{
	struct outcome o;
	unsigned long long start = __atomic_load_n(&count.v, __ATOMIC_ACQUIRE);
	unsigned long long check_every = 256 / (unsigned long long)b, cpu0, t0, t1;
	unsigned long long limit = (unsigned long long)(secs * 1e9), stall = (unsigned long long)(stall_secs * 1e9);
	long i;
	struct timespec pause = { 0, 20 * 1000 * 1000 };

	memset(&o, 0, sizeof o);
	if (check_every == 0)
		check_every = 1;
	cpu0 = clock_ns(loop_clock);
	t0 = now_ns();
	for (;;) {
		unsigned long long target = start + o.posts + (unsigned long long)b, p0, spins = 0;
		__atomic_store_n(&want.v, target, __ATOMIC_RELEASE);
		p0 = now_ns();
		for (i = 0; i < b; i++)
			event_active(evs[i], EV_READ, 1);
		o.post_ns += now_ns() - p0;
		o.posts += (unsigned long long)b;
		while (__atomic_load_n(&done.v, __ATOMIC_ACQUIRE) < target) {
			spin_pause();
			if ((++spins & 0xffff) == 0 && now_ns() - p0 > stall) {
				o.stalled = 1;
				break;
			}
		}
		if (o.stalled)
			break;
		o.bursts++;
		if (gap_ns) {
			unsigned long long idle = now_ns();
			while (now_ns() - idle < gap_ns)
				spin_pause();
		}
		if (o.bursts % check_every == 0 && now_ns() - t0 >= limit)
			break;
	}
	t1 = now_ns();
	o.loop_cpu_ns = clock_ns(loop_clock) - cpu0;
	o.secs = (double)(t1 - t0) / 1e9;
	/* Settle: a post that ran its callback twice would show up here. */
	nanosleep(&pause, NULL);
	o.callbacks = __atomic_load_n(&count.v, __ATOMIC_ACQUIRE) - start;
	return o;
}

int
main(int argc, char **argv)
{
	long b = 1, i;
	double secs = 2, stall_secs = 10;
	int c, poster_cpu = -1;
	struct event **evs;
	pthread_t loop;
	clockid_t loop_clock;
	char line[64];
	struct outcome o;

	while ((c = getopt(argc, argv, "b:s:l:p:t:g:")) != -1) {
		switch (c) {
		case 'b': b = atol(optarg); break;
		case 's': secs = atof(optarg); break;
		case 'l': loop_cpu = atoi(optarg); break;
		case 'p': poster_cpu = atoi(optarg); break;
		case 't': stall_secs = atof(optarg); break;
		case 'g': gap_ns = strtoull(optarg, NULL, 10); break;
		default:
			fprintf(stderr,
			    "usage: %s -b B -s SECS [-l LOOP_CPU] [-p POSTER_CPU] [-t STALL_SECS] [-g GAP_NS]\n",
			    argv[0]);
			return 2;
		}
	}
	if (b < 1 || secs <= 0) {
		fprintf(stderr, "need B >= 1 and SECS > 0\n");
		return 2;
	}
	pin(poster_cpu);
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "evthread_use_pthreads failed\n");
		return 1;
	}
	base = event_base_new();
	if (!base || evthread_make_base_notifiable(base) != 0) {
		fprintf(stderr, "cannot make a notifiable base\n");
		return 1;
	}
	evs = calloc((size_t)b, sizeof *evs);
	if (!evs)
		die("calloc");
	for (i = 0; i < b; i++) {
		evs[i] = event_new(base, -1, 0, on_post, NULL);
		if (!evs[i]) {
			fprintf(stderr, "event_new failed\n");
			return 1;
		}
	}
	if (pthread_create(&loop, NULL, loop_main, NULL) != 0)
		die("pthread_create");
	if (pthread_getcpuclockid(loop, &loop_clock) != 0)
		die("pthread_getcpuclockid");

	/* Warm-up (untimed); its first burst also waits until the loop runs. */
	o = drive(evs, b, 0.05, stall_secs, loop_clock);
	if (o.stalled || o.callbacks != o.posts) {
		fprintf(stderr, "warm-up failed: posts=%llu callbacks=%llu stalled=%d\n", o.posts, o.callbacks,
		    o.stalled);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		if (strncmp(line, "run", 3) != 0)
			break;
		o = drive(evs, b, secs, stall_secs, loop_clock);
		printf("posts=%llu callbacks=%llu bursts=%llu secs=%.6f posts_per_s=%.1f post_ns=%.2f "
		       "loop_cpu_ns=%.2f stalled=%d\n",
		    o.posts, o.callbacks, o.bursts, o.secs, (double)o.posts / o.secs,
		    (double)o.post_ns / (double)o.posts, (double)o.loop_cpu_ns / (double)o.posts, o.stalled);
		fflush(stdout);
	}
	return 0;
}
