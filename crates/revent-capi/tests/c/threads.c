/* Calls from other threads with evthread_use_pthreads(): event_active from poster threads (every
 * callback runs, counted), event_add of timers from another thread, event_del/event_free from another
 * thread returning only after a running callback finished, event_del of a pending timer, loopbreak
 * and loopexit ending a loop blocked in the kernel, event_base_once from another thread, and calls
 * from a callback on the loop's thread acting at once.
 *
 * Each scenario also runs on a base made *before* evthread_use_pthreads when built against revent
 * (-DREVENT, see run.sh). Against libevent that is libevent#1130: such a base has no lock and no
 * notification fd, so another thread can neither safely reach it nor wake its loop (the loop would
 * sleep forever), and the test skips it there. revent makes the order not matter.
 *
 * The test's own shared state is under one pthread mutex, so that helgrind can check it too.
 *
 * Variants include this file with a setting defined first: THREADS_LOCK_DEBUGGING turns on
 * evthread_enable_lock_debugging; THREADS_CUSTOM_LOCKS registers the test's own lock callbacks
 * (pthread mutexes that are recursive only when asked, counted) and no condition callbacks, and an
 * id callback. Without condition callbacks libevent does not wait in event_del from another thread
 * (it has nothing to wait on); revent waits all the same, so that part runs on revent only. */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

#define LOCK() pthread_mutex_lock(&mu)
#define UNLOCK() pthread_mutex_unlock(&mu)
#define WAIT_UNTIL(cond) do { LOCK(); while (!(cond)) pthread_cond_wait(&cv, &mu); UNLOCK(); } while (0)

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the custom lock callbacks ---- */

#ifdef THREADS_CUSTOM_LOCKS
static int locks_taken; /* under each lock, summed after the threads are joined */
static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;

static void quiet(int severity, const char *msg) {
    (void)severity; (void)msg;
}

static void *my_alloc(unsigned locktype) {
    pthread_mutex_t *m = malloc(sizeof *m);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (locktype & EVTHREAD_LOCKTYPE_RECURSIVE)
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return m;
}
static void my_free(void *lock, unsigned locktype) {
    (void)locktype;
    pthread_mutex_destroy(lock);
    free(lock);
}
static int my_lock(unsigned mode, void *lock) {
    (void)mode;
    int r = pthread_mutex_lock(lock);
    pthread_mutex_lock(&count_mu);
    locks_taken++;
    pthread_mutex_unlock(&count_mu);
    return r;
}
static int my_unlock(unsigned mode, void *lock) {
    (void)mode;
    return pthread_mutex_unlock(lock);
}
static unsigned long my_id(void) {
    return (unsigned long)pthread_self();
}

static void use_custom_locks(void) {
    /* No EVTHREAD_LOCKTYPE_RECURSIVE: revent then counts recursion itself. */
    static const struct evthread_lock_callbacks cbs = {
        EVTHREAD_LOCK_API_VERSION, 0, my_alloc, my_free, my_lock, my_unlock,
    };
    CHECK(evthread_set_lock_callbacks(&cbs) == 0);
    CHECK(evthread_set_lock_callbacks(&cbs) == 0);      /* the same again is fine */
    struct evthread_lock_callbacks other = cbs;
    other.unlock = my_lock;
    event_set_log_callback(quiet);
    CHECK(evthread_set_lock_callbacks(&other) == -1);   /* different ones are not */
    event_set_log_callback(NULL);
    evthread_set_id_callback(my_id);
}
#endif

/* ---- a loop on its own thread ---- */

struct looper {
    struct event_base *base;
    int ret;
    pthread_t th;
};

static void *loop_main(void *arg) {
    struct looper *l = arg;
    l->ret = event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int running;
static void mark_running(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    LOCK(); running = 1; pthread_cond_broadcast(&cv); UNLOCK();
}

/* Starts the loop and returns once it has run a callback posted from here (so it is running), then
 * gives it time to fall asleep in the kernel. */
static void start_loop(struct looper *l, struct event_base *base) {
    l->base = base;
    l->ret = -2;
    LOCK(); running = 0; UNLOCK();
    CHECK(pthread_create(&l->th, NULL, loop_main, l) == 0);
    CHECK(event_base_once(base, -1, EV_TIMEOUT, mark_running, NULL, NULL) == 0);
    WAIT_UNTIL(running);
    usleep(20000);
}

static int join_loop(struct looper *l) {
    CHECK(pthread_join(l->th, NULL) == 0);
    return l->ret;
}

/* ---- event_active from poster threads ---- */

#define NPOST 4
#define PER 250
static struct event *act_ev[NPOST][PER];
static int act_hits, act_bad;
static struct event_base *act_base;

static void act_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)arg;
    LOCK();
    if (what != EV_READ)
        act_bad++;
    if (++act_hits == NPOST * PER)
        event_base_loopbreak(act_base);
    UNLOCK();
}

static void *act_poster(void *arg) {
    int k = (int)(intptr_t)arg;
    for (int i = 0; i < PER; i++) {
        event_active(act_ev[k][i], EV_READ, 1);
        if (i % 50 == 49)
            usleep(2000); /* let the loop fall asleep: the next post must wake it */
    }
    return NULL;
}

static int pongs;
static void pong_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    LOCK(); pongs++; pthread_cond_broadcast(&cv); UNLOCK();
}

static void test_active(struct event_base *base) {
    struct looper l;
    pthread_t th[NPOST];
    act_base = base;
    act_hits = act_bad = 0;
    for (int k = 0; k < NPOST; k++)
        for (int i = 0; i < PER; i++)
            CHECK((act_ev[k][i] = event_new(base, -1, 0, act_cb, NULL)));
    start_loop(&l, base);
    for (int k = 0; k < NPOST; k++)
        CHECK(pthread_create(&th[k], NULL, act_poster, (void *)(intptr_t)k) == 0);
    for (int k = 0; k < NPOST; k++)
        CHECK(pthread_join(th[k], NULL) == 0);
    CHECK(join_loop(&l) == 0);
    CHECK(act_hits == NPOST * PER && act_bad == 0);
    CHECK(event_base_got_break(base));
    for (int k = 0; k < NPOST; k++)
        for (int i = 0; i < PER; i++)
            event_free(act_ev[k][i]);

    /* Ping-pong: each activation waits for its callback, so every one wakes a sleeping loop. */
    struct event *pong = event_new(base, -1, 0, pong_cb, NULL);
    LOCK(); pongs = 0; UNLOCK();
    start_loop(&l, base);
    for (int i = 1; i <= 300; i++) {
        event_active(pong, EV_READ, 1);
        WAIT_UNTIL(pongs >= i);
    }
    CHECK(event_base_loopbreak(base) == 0);
    CHECK(join_loop(&l) == 0);
    CHECK(pongs == 300);
    event_free(pong);
}

/* ---- timers added from another thread ---- */

#define NT 40
static struct event *timers[NT];
static long long t_added[NT];
static int t_ms[NT];
static int t_fired, t_early;
static long long t_slack_us;
static struct event_base *t_base;

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    int i = (int)(intptr_t)arg;
    (void)fd;
    long long now = now_us();
    LOCK();
    /* Slack: libevent reads CLOCK_MONOTONIC_COARSE (one tick, 4 ms here) and may date an add from
     * another thread with its cached time. */
    if (what != EV_TIMEOUT || now - t_added[i] < t_ms[i] * 1000LL - t_slack_us)
        t_early++;
    if (++t_fired == NT)
        event_base_loopbreak(t_base);
    UNLOCK();
}

static void *timer_poster(void *arg) {
    (void)arg;
    for (int i = 0; i < NT; i++) {
        /* Made here too: event_new from another thread while the loop runs. */
        struct event *t = evtimer_new(t_base, timer_cb, (void *)(intptr_t)i);
        CHECK(t);
        struct timeval tv = {0, (5 + i % 15) * 1000};
        LOCK();
        timers[i] = t;
        t_ms[i] = 5 + i % 15;
        t_added[i] = now_us();
        UNLOCK();
        CHECK(evtimer_add(t, &tv) == 0);
        if (i % 10 == 9)
            usleep(3000);
    }
    return NULL;
}

static void test_timers(struct event_base *base) {
    struct looper l;
    pthread_t th;
    struct timespec res;
    CHECK(clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0);
    t_slack_us = res.tv_nsec / 1000 + 1000;
#ifndef REVENT
    /* libevent dates an add made while its loop runs callbacks with the time it cached when the
     * loop woke (tv_cache); under valgrind that can be many milliseconds old, and its timers then
     * fire early by as much (seen: "40 of 40 fired, 3 early"). That is the reference's documented
     * behaviour, not this test's subject: the strict check is revent's, which reads the clock. */
    t_slack_us += 20000;
#endif
    t_base = base;
    t_fired = t_early = 0;
    start_loop(&l, base);
    CHECK(pthread_create(&th, NULL, timer_poster, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(join_loop(&l) == 0);
    if (t_fired != NT || t_early)
        fprintf(stderr, "timers: %d of %d fired, %d early\n", t_fired, NT, t_early);
    CHECK(t_fired == NT && t_early == 0);
    for (int i = 0; i < NT; i++)
        event_free(timers[i]);
}

/* ---- event_del / event_free from another thread wait for a running callback ---- */

static int slow_started, slow_finished, late_hits;

static void slow_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    LOCK(); slow_started++; pthread_cond_broadcast(&cv); UNLOCK();
    usleep(100000);
    LOCK(); slow_finished++; UNLOCK();
}

static void late_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    LOCK(); late_hits++; UNLOCK();
}

static int once_hits;
static void once_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)arg;
    LOCK(); once_hits += what == EV_TIMEOUT; pthread_cond_broadcast(&cv); UNLOCK();
}

static void test_del(struct event_base *base) {
#if defined(THREADS_CUSTOM_LOCKS) && !defined(REVENT)
    (void)base; /* libevent has no condition to wait on: see the top of the file */
    return;
#endif
    struct looper l;
    slow_started = slow_finished = late_hits = once_hits = 0;
    struct event *slow = event_new(base, -1, EV_PERSIST, slow_cb, NULL);
    start_loop(&l, base);

    /* event_del while the callback runs on the loop's thread: returns after it finished. */
    event_active(slow, EV_READ, 1);
    WAIT_UNTIL(slow_started == 1);
    CHECK(event_del(slow) == 0);
    LOCK(); CHECK(slow_finished == 1); UNLOCK();

    /* event_del_noblock does not wait. */
    event_active(slow, EV_READ, 1);
    WAIT_UNTIL(slow_started == 2);
    CHECK(event_del_noblock(slow) == 0);
    LOCK(); CHECK(slow_finished == 1); UNLOCK();

    /* event_free likewise waits. */
    event_active(slow, EV_READ, 1);
    WAIT_UNTIL(slow_started == 3);
    event_free(slow);
    LOCK(); CHECK(slow_finished == 3); UNLOCK();

    /* A pending timer deleted from another thread never fires; event_pending sees it go. (Checked
     * when the delete came well before the deadline, which a machine slowed down enough, by
     * valgrind say, may miss.) */
    struct event *late = evtimer_new(base, late_cb, NULL);
    struct timeval tv = {0, 200000};
    long long t_add = now_us();
    CHECK(evtimer_add(late, &tv) == 0);
    CHECK(evtimer_pending(late, NULL));
    usleep(5000);
    CHECK(event_del(late) == 0);
    long long t_del = now_us();
    CHECK(!evtimer_pending(late, NULL));
    if (t_del - t_add < 150000) {
        usleep(250000 - (t_del - t_add));
        LOCK(); CHECK(late_hits == 0); UNLOCK();
    }
    event_free(late);

    /* event_base_once from another thread. */
    struct timeval soon = {0, 2000};
    CHECK(event_base_once(base, -1, EV_TIMEOUT, once_cb, NULL, &soon) == 0);
    WAIT_UNTIL(once_hits == 1);

    CHECK(event_base_loopbreak(base) == 0);
    CHECK(join_loop(&l) == 0);
}

/* ---- calls from a callback, on the loop's thread, act at once ---- */

static struct event *in_self, *in_other;
static int in_done, in_bad;

static void in_other_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
}

/* Runs on the loop's thread with threads enabled: each call must act on the base directly (a call
 * posted to the loop, as from another thread, would not have taken effect when it returns, and
 * event_base_get_running_event would be NULL). */
static void in_self_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    struct event_base *base = arg;
    int bad = 0;
    struct timeval tv = {5, 0};
    bad += event_base_get_running_event(base) != in_self;
    bad += event_add(in_other, &tv) != 0;
    bad += !event_pending(in_other, EV_TIMEOUT, NULL);
    bad += event_del(in_other) != 0;
    bad += event_pending(in_other, EV_TIMEOUT, NULL) != 0;
    LOCK(); in_bad += bad; in_done++; pthread_cond_broadcast(&cv); UNLOCK();
}

static void test_in_callback(struct event_base *base) {
    struct looper l;
    in_done = in_bad = 0;
    CHECK((in_self = event_new(base, -1, 0, in_self_cb, base)));
    CHECK((in_other = evtimer_new(base, in_other_cb, NULL)));
    start_loop(&l, base);
    for (int i = 1; i <= 20; i++) {
        event_active(in_self, EV_READ, 1);
        WAIT_UNTIL(in_done >= i);
    }
    CHECK(event_base_loopbreak(base) == 0);
    CHECK(join_loop(&l) == 0);
    LOCK(); CHECK(in_done == 20 && in_bad == 0); UNLOCK();
    event_free(in_self);
    event_free(in_other);
}

/* ---- loopbreak / loopexit from another thread end a loop blocked in the kernel ---- */

static void test_break_exit(struct event_base *base) {
    struct looper l;
    for (int mode = 0; mode < 3; mode++) {
        start_loop(&l, base);
        long long t0 = now_us();
        struct timeval after = {0, 30000};
        switch (mode) {
        case 0: CHECK(event_base_loopbreak(base) == 0); break;
        case 1: CHECK(event_base_loopexit(base, NULL) == 0); break;
        case 2: CHECK(event_base_loopexit(base, &after) == 0); break;
        }
        CHECK(join_loop(&l) == 0);
        long long took = now_us() - t0;
        CHECK(took < 2000000);
        if (mode == 0)
            CHECK(event_base_got_break(base));
        else
            CHECK(event_base_got_exit(base));
        if (mode == 2)
            CHECK(took >= 25000);
    }
}

static void run_all(struct event_base *base) {
    CHECK(evthread_make_base_notifiable(base) == 0);
    test_active(base);
    test_timers(base);
    test_del(base);
    test_in_callback(base);
    test_break_exit(base);
}

int main(void) {
    struct event_base *early = event_base_new();
    CHECK(early);
#ifdef THREADS_CUSTOM_LOCKS
    use_custom_locks();
#else
    CHECK(evthread_use_pthreads() == 0);
#endif
#ifdef THREADS_LOCK_DEBUGGING
    evthread_enable_lock_debugging();
#endif
    struct event_base *base = event_base_new();
    CHECK(base);
    run_all(base);
#ifdef REVENT
    run_all(early); /* libevent#1130: see the top of the file */
#endif
    event_base_free(base);
    event_base_free(early);
#ifdef THREADS_CUSTOM_LOCKS
    CHECK(locks_taken > 0); /* the program's locks were used */
#endif
    puts("threads ok");
    return 0;
}
