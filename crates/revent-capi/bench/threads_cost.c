/* What thread support costs a single-threaded program: calls on a base from its only thread.
 *
 *   threads_cost [-t | -T] [-n N] [-p PHASE]
 *     (no flag)  threads never enabled
 *     -t         evthread_use_pthreads() before the base is made (libevent's documented order)
 *     -T         evthread_use_pthreads() after the base is made (libevent#1130's order: libevent
 *                then uses no lock for this base; revent does)
 *
 * Phases, each timed on its own (CLOCK_MONOTONIC), reported as millions of operations per second:
 *   add_del   event_add (10 s timeout) + event_del of 1000 timers, outside callbacks
 *   active    event_active on 1000 events outside callbacks, then one EVLOOP_NONBLOCK loop runs
 *             their callbacks (one operation = one activation and its callback)
 *   chain     a callback that activates the next event, inside the loop (the re-entrant path)
 * Prints one line: "add_del=X active=Y chain=Z" (Mops/s); -p runs one phase only (to count its
 * instructions, say). Built with -DNO_PTHREADS it needs no
 * libevent_pthreads and has only the first mode. */
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NEV 1000

static struct event *evs[NEV];
static long chain_left;
static struct event_base *base;
static long sink;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void count_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    sink++;
}

static void chain_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    if (--chain_left > 0)
        event_active(evs[((long)arg + 1) % NEV], EV_READ, 1);
}

int main(int argc, char **argv) {
    long n = 2000000;
    int mode = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t"))
            mode = 1;
        else if (!strcmp(argv[i], "-T"))
            mode = 2;
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: threads_cost [-t | -T] [-n N] [-p add_del|active|chain]\n");
            return 2;
        }
    }
#ifdef NO_PTHREADS
    if (mode != 0)
        return 2;
#define evthread_use_pthreads() (-1)
#endif
    if (mode == 1 && evthread_use_pthreads() != 0)
        return 1;
    base = event_base_new();
    if (!base)
        return 1;
    if (mode == 2 && evthread_use_pthreads() != 0)
        return 1;

    for (int i = 0; i < NEV; i++)
        evs[i] = event_new(base, -1, 0, count_cb, NULL);
    struct timeval tv = {10, 0};
    double t0, add_del = 0, active = 0, chain = 0;
    if (!only || !strcmp(only, "add_del")) {
        t0 = now_s();
        for (long i = 0; i < n; i++) {
            event_add(evs[i % NEV], &tv);
            event_del(evs[i % NEV]);
        }
        add_del = n / (now_s() - t0) / 1e6;
    }

    if (!only || !strcmp(only, "active")) {
        t0 = now_s();
        for (long done = 0; done < n; done += NEV) {
            for (int i = 0; i < NEV; i++)
                event_active(evs[i], EV_READ, 1);
            event_base_loop(base, EVLOOP_NONBLOCK);
        }
        active = n / (now_s() - t0) / 1e6;
        if (sink < n)
            return 1;
    }

    for (int i = 0; i < NEV; i++) {
        event_free(evs[i]);
        evs[i] = event_new(base, -1, 0, chain_cb, (void *)(long)i);
    }
    if (!only || !strcmp(only, "chain")) {
        chain_left = n;
        t0 = now_s();
        event_active(evs[0], EV_READ, 1);
        event_base_dispatch(base);
        chain = n / (now_s() - t0) / 1e6;
        if (chain_left != 0)
            return 1;
    }

    printf("add_del=%.2f active=%.2f chain=%.2f\n", add_del, active, chain);
    for (int i = 0; i < NEV; i++)
        event_free(evs[i]);
    event_base_free(base);
    return 0;
}
