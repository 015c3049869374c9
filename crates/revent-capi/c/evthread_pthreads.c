/* libevent_pthreads-2.1.so.7 for revent: evthread_use_pthreads() hands core's evthread_set_*
 * functions locks, condition variables and thread ids made from POSIX threads.
 *
 * The structs below restate event2/thread.h's ABI (so this builds without libevent's headers). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#define REVENT_LOCKTYPE_RECURSIVE 1
#define REVENT_LOCK_TRY 0x10

struct evthread_lock_callbacks {
    int lock_api_version;
    unsigned supported_locktypes;
    void *(*alloc)(unsigned locktype);
    void (*free)(void *lock, unsigned locktype);
    int (*lock)(unsigned mode, void *lock);
    int (*unlock)(unsigned mode, void *lock);
};

struct evthread_condition_callbacks {
    int condition_api_version;
    void *(*alloc_condition)(unsigned condtype);
    void (*free_condition)(void *cond);
    int (*signal_condition)(void *cond, int broadcast);
    int (*wait_condition)(void *cond, void *lock, const struct timeval *timeout);
};

int evthread_set_lock_callbacks(const struct evthread_lock_callbacks *);
int evthread_set_condition_callbacks(const struct evthread_condition_callbacks *);
void evthread_set_id_callback(unsigned long (*id_fn)(void));
int evthread_use_pthreads(void);

/* Every mutex is made recursive when asked: locktype is a bit set and RECURSIVE is its only bit
 * this library honours (read-write locks are not used by libevent 2.1's callers). */
static void *pt_lock_alloc(unsigned locktype)
{
    pthread_mutexattr_t attr;
    pthread_mutex_t *m = malloc(sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutexattr_init(&attr) != 0) {
        free(m);
        return NULL;
    }
    if (locktype & REVENT_LOCKTYPE_RECURSIVE)
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        free(m);
        return NULL;
    }
    return m;
}

static void pt_lock_free(void *lock, unsigned locktype)
{
    (void)locktype;
    pthread_mutex_destroy(lock);
    free(lock);
}

/* 0 when the lock is held afterwards; EVTHREAD_TRY turns a busy lock into a nonzero answer. */
static int pt_lock(unsigned mode, void *lock)
{
    if (mode & REVENT_LOCK_TRY)
        return pthread_mutex_trylock(lock);
    return pthread_mutex_lock(lock);
}

static int pt_unlock(unsigned mode, void *lock)
{
    (void)mode;
    return pthread_mutex_unlock(lock);
}

static void *pt_cond_alloc(unsigned condtype)
{
    (void)condtype;
    pthread_cond_t *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    if (pthread_cond_init(c, NULL) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void pt_cond_free(void *cond)
{
    pthread_cond_destroy(cond);
    free(cond);
}

static int pt_cond_signal(void *cond, int broadcast)
{
    int rc = broadcast ? pthread_cond_broadcast(cond) : pthread_cond_signal(cond);
    return rc == 0 ? 0 : -1;
}

/* 0 when signalled, 1 when `timeout` (a relative interval) ran out, -1 on error. The condition uses
 * the realtime clock (pthread_cond_init's default), so the deadline is taken from it. */
static int pt_cond_wait(void *cond, void *lock, const struct timeval *timeout)
{
    int rc;
    if (!timeout) {
        rc = pthread_cond_wait(cond, lock);
        return rc == 0 ? 0 : -1;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout->tv_sec;
    deadline.tv_nsec += (long)timeout->tv_usec * 1000;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += deadline.tv_nsec / 1000000000L;
        deadline.tv_nsec %= 1000000000L;
    }
    rc = pthread_cond_timedwait(cond, lock, &deadline);
    if (rc == ETIMEDOUT)
        return 1;
    return rc == 0 ? 0 : -1;
}

static unsigned long pt_thread_id(void)
{
    return (unsigned long)pthread_self();
}

int evthread_use_pthreads(void)
{
    static const struct evthread_lock_callbacks locks = {
        1, REVENT_LOCKTYPE_RECURSIVE, pt_lock_alloc, pt_lock_free, pt_lock, pt_unlock,
    };
    static const struct evthread_condition_callbacks conds = {
        1, pt_cond_alloc, pt_cond_free, pt_cond_signal, pt_cond_wait,
    };
    /* Conditions and ids first: setting the locks is what turns threads on, and a base lock made
     * from then on comes with its condition. */
    if (evthread_set_condition_callbacks(&conds) != 0)
        return -1;
    evthread_set_id_callback(pt_thread_id);
    return evthread_set_lock_callbacks(&locks);
}
