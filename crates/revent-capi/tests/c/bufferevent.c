/* Bufferevents from C: the public struct's layout and the fields programs read and write directly
 * (wm_read.high written after bufferevent_new, as the seed's guide does), a socket echo through C
 * callbacks with exact bytes, watermarks, timeouts, EOF and errors, connect success, refusal and
 * AF_UNIX, pairs, rate limits and groups, triggers, bufferevent_free inside a callback,
 * incref/decref, setfd/getfd, priorities. Only bufferevent functions are used (no evbuffer ones). */
#include <event2/event.h>
#include <event2/event_compat.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_compat.h>
#include <event2/bufferevent_struct.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static struct event_base *base;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void pair_of_sockets(int sv[2]) {
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
}

static int fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

static void stop_after(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
}

/* ---- layout ---- */
static void layout(void) {
    CHECK(sizeof(struct bufferevent) == 392);
    CHECK(offsetof(struct bufferevent, ev_base) == 0);
    CHECK(offsetof(struct bufferevent, be_ops) == 8);
    CHECK(offsetof(struct bufferevent, ev_read) == 16);
    CHECK(offsetof(struct bufferevent, ev_write) == 144);
    CHECK(offsetof(struct bufferevent, input) == 272);
    CHECK(offsetof(struct bufferevent, output) == 280);
    CHECK(offsetof(struct bufferevent, wm_read) == 288);
    CHECK(offsetof(struct bufferevent, wm_write) == 304);
    CHECK(offsetof(struct bufferevent, readcb) == 320);
    CHECK(offsetof(struct bufferevent, cbarg) == 344);
    CHECK(offsetof(struct bufferevent, timeout_read) == 352);
    CHECK(offsetof(struct bufferevent, timeout_write) == 368);
    CHECK(offsetof(struct bufferevent, enabled) == 384);
}

/* ---- an echo through C callbacks, exact bytes ---- */
#define ECHO_N 200000
static unsigned char echo_sent[ECHO_N], echo_got[ECHO_N];
static size_t echo_have;
static int server_arg, client_arg;

static void echo_server_read(struct bufferevent *bev, void *arg) {
    unsigned char buf[4096];
    size_t n;
    CHECK(arg == &server_arg);
    CHECK(bev->cbarg == &server_arg);
    while ((n = bufferevent_read(bev, buf, sizeof buf)) > 0)
        CHECK(bufferevent_write(bev, buf, n) == 0);
}

static void echo_client_read(struct bufferevent *bev, void *arg) {
    size_t n;
    CHECK(arg == &client_arg);
    while ((n = bufferevent_read(bev, echo_got + echo_have, ECHO_N - echo_have)) > 0)
        echo_have += n;
    if (echo_have == ECHO_N)
        event_base_loopbreak(base);
}

static void echo(void) {
    int sv[2];
    pair_of_sockets(sv);
    for (size_t i = 0; i < ECHO_N; i++)
        echo_sent[i] = (unsigned char)(i * 7 + i / 251);
    struct bufferevent *s = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *c = bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
    CHECK(s && c);
    bufferevent_setcb(s, echo_server_read, NULL, NULL, &server_arg);
    bufferevent_setcb(c, echo_client_read, NULL, NULL, &client_arg);
    /* The fields programs read directly. */
    CHECK(s->ev_base == base && bufferevent_get_base(s) == base);
    CHECK(s->input == bufferevent_get_input(s) && s->output == bufferevent_get_output(s));
    CHECK(s->input && s->output && s->input != s->output);
    CHECK(s->readcb == echo_server_read && s->writecb == NULL && s->errorcb == NULL);
    CHECK(s->cbarg == &server_arg);
    CHECK(bufferevent_getfd(s) == sv[0]);
    bufferevent_data_cb r, w;
    bufferevent_event_cb e;
    void *a;
    bufferevent_getcb(s, &r, &w, &e, &a);
    CHECK(r == echo_server_read && w == NULL && e == NULL && a == &server_arg);
    CHECK(bufferevent_enable(s, EV_READ | EV_WRITE) == 0);
    CHECK(bufferevent_enable(c, EV_READ | EV_WRITE) == 0);
    CHECK(bufferevent_get_enabled(s) == (EV_READ | EV_WRITE));
    CHECK(s->enabled == (EV_READ | EV_WRITE));
    CHECK(bufferevent_write(c, echo_sent, ECHO_N) == 0);
    stop_after(10000);
    event_base_dispatch(base);
    CHECK(echo_have == ECHO_N);
    CHECK(memcmp(echo_sent, echo_got, ECHO_N) == 0);
    CHECK(bufferevent_disable(s, EV_READ) == 0);
    CHECK(bufferevent_get_enabled(s) == EV_WRITE && s->enabled == EV_WRITE);
    bufferevent_free(s);
    bufferevent_free(c);
    event_base_loop(base, EVLOOP_NONBLOCK);      /* libevent finishes frees from the loop */
    CHECK(!fd_open(sv[0]) && !fd_open(sv[1]));   /* BEV_OPT_CLOSE_ON_FREE */
}

/* ---- watermarks ---- */
static size_t max_read, total_read, expect_total;
static int reads;
static size_t shrink_to;   /* written into bev->wm_read.high from inside the callback */
static struct event_base *wm_base;

static void wm_read_cb(struct bufferevent *bev, void *arg) {
    unsigned char buf[65536];
    size_t n = bufferevent_read(bev, buf, sizeof buf);
    (void)arg;
    reads++;
    if (n > max_read)
        max_read = n;
    total_read += n;
    if (shrink_to) {
        bev->wm_read.high = shrink_to;   /* a direct write inside the callback */
        shrink_to = 0;
        max_read = 0;                    /* what follows must respect the new mark */
    }
    if (total_read == expect_total)
        event_base_loopbreak(wm_base);
}

static void fill(int fd, size_t n) {
    static unsigned char junk[65536];
    while (n > 0) {
        ssize_t w = write(fd, junk, n < sizeof junk ? n : sizeof junk);
        CHECK(w > 0);
        n -= (size_t)w;
    }
}

static void run_wm(struct event_base *b, int peer, size_t n) {
    struct timeval tv = {5, 0};
    max_read = total_read = 0;
    reads = 0;
    expect_total = n;
    wm_base = b;
    fill(peer, n);
    event_base_loopexit(b, &tv);
    event_base_dispatch(b);
    CHECK(total_read == n);
}

static void watermarks(void) {
    int sv[2];

    /* The seed's guide: event_init, bufferevent_new (on the current base), wm_read.high written
     * in the struct, then bufferevent_base_set and bufferevent_enable. Each read stops at 4096. */
    struct event_base *cur = event_init();
    CHECK(cur);
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_new(sv[0], wm_read_cb, NULL, NULL, NULL);
    CHECK(bev);
    CHECK(bufferevent_get_base(bev) == NULL);   /* as libevent: NULL until base_set */
    CHECK(bev->input && bev->output);
    bev->wm_read.high = 4096;
    CHECK(bufferevent_base_set(cur, bev) == 0);
    CHECK(bufferevent_get_base(bev) == cur);
    CHECK(bufferevent_enable(bev, EV_READ) == 0);
    run_wm(cur, sv[1], 20000);
    CHECK(max_read > 0 && max_read <= 4096 && reads >= 5);
    size_t lo = 1, hi = 1;
    CHECK(bufferevent_getwatermark(bev, EV_READ, &lo, &hi) == 0 && lo == 0 && hi == 4096);
    CHECK(bufferevent_getwatermark(bev, EV_READ | EV_WRITE, &lo, &hi) == -1);

    /* Lowered from inside the read callback: later reads stop at 1000. */
    shrink_to = 1000;
    run_wm(cur, sv[1], 30000);
    CHECK(max_read > 0 && max_read <= 1000);
    bufferevent_free(bev);
    event_base_loop(cur, EVLOOP_NONBLOCK);
    CHECK(fd_open(sv[0]));   /* no BEV_OPT_CLOSE_ON_FREE: the fd is the program's */
    close(sv[0]);
    close(sv[1]);

    /* Made on the current base, then moved to another one before it is enabled. */
    pair_of_sockets(sv);
    bev = bufferevent_new(sv[0], wm_read_cb, NULL, NULL, NULL);
    bev->wm_read.high = 3000;
    CHECK(bufferevent_base_set(base, bev) == 0);
    CHECK(bufferevent_get_base(bev) == base);
    CHECK(bufferevent_get_input(bev) == bev->input && bev->input);
    CHECK(bufferevent_enable(bev, EV_READ) == 0);
    run_wm(base, sv[1], 12000);
    CHECK(max_read > 0 && max_read <= 3000);
    bufferevent_free(bev);
    event_base_loop(base, EVLOOP_NONBLOCK);
    close(sv[0]);
    close(sv[1]);
    event_base_free(cur);

    /* Enabled first, the field written afterwards, then the loop. */
    pair_of_sockets(sv);
    bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, wm_read_cb, NULL, NULL, NULL);
    CHECK(bufferevent_enable(bev, EV_READ) == 0);
    bev->wm_read.high = 2048;
    run_wm(base, sv[1], 10000);
    CHECK(max_read > 0 && max_read <= 2048);

    /* Through the API, with a low mark: the read callback waits for 8 bytes. */
    bufferevent_setwatermark(bev, EV_READ, 8, 0);
    CHECK(bev->wm_read.low == 8 && bev->wm_read.high == 0);
    CHECK(write(sv[1], "12345", 5) == 5);
    reads = 0;
    total_read = 0;
    expect_total = 10;
    wm_base = base;
    struct timeval tv = {0, 50000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    CHECK(reads == 0);              /* 5 bytes: below the low mark */
    CHECK(write(sv[1], "67890", 5) == 5);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(reads == 1 && total_read == 10);

    bufferevent_setwatermark(bev, EV_WRITE, 100, 200);
    CHECK(bev->wm_write.low == 100 && bev->wm_write.high == 200);
    CHECK(bufferevent_getwatermark(bev, EV_WRITE, &lo, &hi) == 0 && lo == 100 && hi == 200);
    bufferevent_free(bev);
    close(sv[1]);
}

/* ---- write callback ---- */
static int writes_done;
static void on_drained(struct bufferevent *bev, void *arg) {
    (void)bev; (void)arg;
    writes_done++;
    event_base_loopbreak(base);
}

static void write_cb(void) {
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, on_drained, NULL, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, 100, 0);
    CHECK(bufferevent_write(bev, "drain me", 8) == 0);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(writes_done == 1);
    char buf[16];
    CHECK(read(sv[1], buf, sizeof buf) == 8 && memcmp(buf, "drain me", 8) == 0);
    bufferevent_free(bev);
    close(sv[1]);
}

/* ---- event callback: timeouts, EOF, errors ---- */
static short last_what;
static int events_seen, last_errno;
static void on_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev; (void)arg;
    last_errno = EVUTIL_SOCKET_ERROR();
    last_what = what;
    events_seen++;
    event_base_loopbreak(base);
}

static void timeouts(void) {
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_event, NULL);
    struct timeval t = {0, 50000};
    CHECK(bufferevent_set_timeouts(bev, &t, NULL) == 0);
    CHECK(bev->timeout_read.tv_sec == 0 && bev->timeout_read.tv_usec == 50000);
    CHECK(bev->timeout_write.tv_sec == 0 && bev->timeout_write.tv_usec == 0);
    CHECK(bufferevent_enable(bev, EV_READ) == 0);
    events_seen = 0;
    double t0 = now_ms();
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(events_seen == 1 && last_what == (BEV_EVENT_TIMEOUT | BEV_EVENT_READING));
    CHECK(now_ms() - t0 >= 40);
    CHECK(!(bufferevent_get_enabled(bev) & EV_READ));   /* a timeout disables its direction */
    bufferevent_free(bev);
    close(sv[1]);

    /* The timeout written straight into the struct, then enable. */
    pair_of_sockets(sv);
    bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_event, NULL);
    bev->timeout_read.tv_usec = 30000;
    CHECK(bufferevent_enable(bev, EV_READ) == 0);
    events_seen = 0;
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(events_seen == 1 && last_what == (BEV_EVENT_TIMEOUT | BEV_EVENT_READING));

    /* The 1.x setter, in whole seconds. */
    bufferevent_settimeout(bev, 7, 0);
    CHECK(bev->timeout_read.tv_sec == 7 && bev->timeout_write.tv_sec == 0);
    bufferevent_free(bev);
    close(sv[1]);
}

static void eof_and_error(void) {
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ);
    close(sv[1]);
    events_seen = 0;
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(events_seen == 1 && last_what == (BEV_EVENT_EOF | BEV_EVENT_READING));
    bufferevent_free(bev);

    /* A TCP reset: ERROR while reading, errno ECONNRESET. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    CHECK(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(lfd, 4) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&sin, &sl) == 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(cfd, (struct sockaddr *)&sin, sizeof sin) == 0);
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    bev = bufferevent_socket_new(base, afd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ);
    struct linger lg = {1, 0};
    CHECK(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(cfd);
    events_seen = 0;
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(events_seen == 1 && last_what == (BEV_EVENT_ERROR | BEV_EVENT_READING));
    CHECK(last_errno == ECONNRESET);
    bufferevent_free(bev);
    close(lfd);
}

/* ---- connect ---- */
static void connects(void) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    CHECK(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(lfd, 4) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&sin, &sl) == 0);

    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    CHECK(bev && bufferevent_getfd(bev) == -1);
    bufferevent_setcb(bev, NULL, NULL, on_event, NULL);
    CHECK(bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof sin) == 0);
    CHECK(bufferevent_getfd(bev) >= 0);
    events_seen = 0;
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(events_seen == 1 && last_what == BEV_EVENT_CONNECTED);
    /* Data goes through once connected. */
    CHECK(bufferevent_write(bev, "ping", 4) == 0);
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    struct timeval tv = {0, 20000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    char buf[8];
    CHECK(read(afd, buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0);
    close(afd);
    bufferevent_free(bev);

    /* By name (a numeric one: no DNS needed). */
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_event, NULL);
    CHECK(bufferevent_socket_connect_hostname(bev, NULL, AF_INET, "127.0.0.1", ntohs(sin.sin_port)) == 0);
    events_seen = 0;
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(events_seen == 1 && last_what == BEV_EVENT_CONNECTED);
    CHECK(bufferevent_socket_get_dns_error(bev) == 0);
    CHECK(bufferevent_socket_connect_hostname(bev, NULL, AF_UNIX, "x", 80) == -1);
    CHECK(bufferevent_socket_connect_hostname(bev, NULL, AF_INET, "127.0.0.1", 0) == -1);
    bufferevent_free(bev);
    afd = accept(lfd, NULL, NULL);
    if (afd >= 0)
        close(afd);
    close(lfd);   /* the port is now closed: the next connect is refused */

    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_event, NULL);
    CHECK(bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof sin) == 0);
    events_seen = 0;
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(events_seen == 1 && (last_what & BEV_EVENT_ERROR));
    bufferevent_free(bev);

    /* AF_UNIX: a listening path, then one that does not exist (fails at once: -1). */
    struct sockaddr_un sun = {0};
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof sun.sun_path, "/tmp/revent-bev-%d.sock", (int)getpid());
    unlink(sun.sun_path);
    int ufd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(ufd, (struct sockaddr *)&sun, sizeof sun) == 0 && listen(ufd, 4) == 0);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_event, NULL);
    CHECK(bufferevent_socket_connect(bev, (struct sockaddr *)&sun, sizeof sun) == 0);
    events_seen = 0;
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(events_seen == 1 && last_what == BEV_EVENT_CONNECTED);
    bufferevent_free(bev);
    close(ufd);
    unlink(sun.sun_path);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    CHECK(bufferevent_socket_connect(bev, (struct sockaddr *)&sun, sizeof sun) == -1);
    CHECK(bufferevent_getfd(bev) == -1);   /* the socket it made is gone again */
    bufferevent_free(bev);
}

/* ---- pairs ---- */
static char pair_got[64];
static size_t pair_len;
static void pair_read(struct bufferevent *bev, void *arg) {
    (void)arg;
    pair_len += bufferevent_read(bev, pair_got + pair_len, sizeof pair_got - pair_len);
    if (pair_len == 10)
        event_base_loopbreak(base);
}

static int pair_events;
static short pair_what;
static void pair_timeout(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    (void)arg;
    pair_events++;
    pair_what = what;
    event_base_loopbreak(base);
}

static void pairs(void) {
    struct bufferevent *p[2];
    CHECK(bufferevent_pair_new(base, 0, p) == 0);
    CHECK(bufferevent_pair_get_partner(p[0]) == p[1]);
    CHECK(bufferevent_pair_get_partner(p[1]) == p[0]);
    CHECK(bufferevent_getfd(p[0]) == -1);
    CHECK(bufferevent_setfd(p[0], 0) == -1);
    CHECK(bufferevent_priority_set(p[0], 0) == -1);
    CHECK(bufferevent_base_set(base, p[0]) == -1);
    CHECK(bufferevent_get_underlying(p[0]) == NULL);
    bufferevent_setcb(p[1], pair_read, NULL, NULL, NULL);
    bufferevent_enable(p[1], EV_READ);
    CHECK(bufferevent_write(p[0], "hello pair", 10) == 0);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(pair_len == 10 && memcmp(pair_got, "hello pair", 10) == 0);
    /* BEV_FLUSH moves data even to a side that is not reading. */
    bufferevent_disable(p[1], EV_READ);
    CHECK(bufferevent_write(p[0], "x", 1) == 0);
    CHECK(bufferevent_flush(p[0], EV_WRITE, BEV_FLUSH) >= 0);
    char c = 0;
    CHECK(bufferevent_read(p[1], &c, 1) == 1 && c == 'x');
    /* A pair side times out as a socket does (libevent's generic timeouts): nothing arrives. */
    struct timeval tv = {0, 50000};
    bufferevent_setcb(p[1], NULL, NULL, pair_timeout, NULL);
    CHECK(bufferevent_set_timeouts(p[1], &tv, NULL) == 0);
    CHECK(bufferevent_enable(p[1], EV_READ) == 0);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(pair_events == 1 && pair_what == (BEV_EVENT_TIMEOUT | BEV_EVENT_READING));
    CHECK(!(bufferevent_get_enabled(p[1]) & EV_READ));
    bufferevent_free(p[0]);
    bufferevent_free(p[1]);
}

/* ---- rate limits ---- */
static double rl_t0;
static size_t rl_total;
static int rl_violations;
static void rl_read(struct bufferevent *bev, void *arg) {
    unsigned char buf[65536];
    (void)arg;
    rl_total += bufferevent_read(bev, buf, sizeof buf);
    /* 1000 bytes per 100 ms tick, 1000 at most at once: after t ms, at most 1000 * (t/100 + 2)
     * (one tick of slack for where the ticks fall). */
    double t = now_ms() - rl_t0;
    if (rl_total > 1000 * ((size_t)(t / 100) + 2))
        rl_violations++;
    if (rl_total == 4000)
        event_base_loopbreak(base);
}

static void rate_limits(void) {
    CHECK(ev_token_bucket_cfg_new(10, 5, 10, 10, NULL) == NULL);   /* rate above burst */
    CHECK(ev_token_bucket_cfg_new(0, 5, 10, 10, NULL) == NULL);
    struct timeval tick = {0, 100000};
    struct ev_token_bucket_cfg *cfg = ev_token_bucket_cfg_new(1000, 1000, 1000, 1000, &tick);
    CHECK(cfg);
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    CHECK(bufferevent_get_read_limit(bev) == EV_SSIZE_MAX);
    CHECK(bufferevent_get_token_bucket_cfg(bev) == NULL);
    CHECK(bufferevent_set_rate_limit(bev, cfg) == 0);
    CHECK(bufferevent_get_token_bucket_cfg(bev) == cfg);
    CHECK(bufferevent_get_read_limit(bev) <= 1000 && bufferevent_get_read_limit(bev) > 0);
    CHECK(bufferevent_get_max_to_read(bev) <= 1000);
    bufferevent_setcb(bev, rl_read, NULL, NULL, NULL);
    bufferevent_enable(bev, EV_READ);
    fill(sv[1], 4000);
    rl_t0 = now_ms();
    stop_after(10000);
    event_base_dispatch(base);
    CHECK(rl_total == 4000);
    CHECK(rl_violations == 0);
    CHECK(now_ms() - rl_t0 >= 150);   /* three refills at least */
    /* Taking tokens by hand. */
    ev_ssize_t before = bufferevent_get_write_limit(bev);
    CHECK(bufferevent_decrement_write_limit(bev, 300) == 0);
    CHECK(bufferevent_get_write_limit(bev) == before - 300);
    CHECK(bufferevent_decrement_write_limit(bev, -300) == 0);
    CHECK(bufferevent_set_rate_limit(bev, NULL) == 0);
    CHECK(bufferevent_get_read_limit(bev) == EV_SSIZE_MAX);

    /* A group: its totals count what members read. */
    struct ev_token_bucket_cfg *big = ev_token_bucket_cfg_new(1 << 20, 1 << 20, 1 << 20, 1 << 20, NULL);
    struct bufferevent_rate_limit_group *g = bufferevent_rate_limit_group_new(base, big);
    CHECK(g);
    CHECK(bufferevent_rate_limit_group_set_min_share(g, 128) == 0);
    CHECK(bufferevent_add_to_rate_limit_group(bev, g) == 0);
    CHECK(bufferevent_rate_limit_group_get_read_limit(g) > 0);
    rl_total = 0;
    rl_t0 = now_ms() - 1e6;   /* no per-tick check here */
    fill(sv[1], 4000);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(rl_total == 4000);
    ev_uint64_t tr = 0, tw = 1;
    bufferevent_rate_limit_group_get_totals(g, &tr, &tw);
    CHECK(tr == 4000 && tw == 0);
    bufferevent_rate_limit_group_reset_totals(g);
    bufferevent_rate_limit_group_get_totals(g, &tr, &tw);
    CHECK(tr == 0 && tw == 0);
    ev_ssize_t gl = bufferevent_rate_limit_group_get_write_limit(g);
    CHECK(bufferevent_rate_limit_group_decrement_write(g, 100) == 0);
    CHECK(bufferevent_rate_limit_group_get_write_limit(g) == gl - 100);
    CHECK(bufferevent_rate_limit_group_set_cfg(g, cfg) == 0);
    CHECK(bufferevent_rate_limit_group_get_read_limit(g) <= 1000);
    CHECK(bufferevent_remove_from_rate_limit_group(bev) == 0);
    bufferevent_rate_limit_group_free(g);
    ev_token_bucket_cfg_free(big);
    ev_token_bucket_cfg_free(cfg);
    CHECK(bufferevent_set_max_single_read(bev, 0) == 0);
    CHECK(bufferevent_get_max_single_read(bev) == 16384);
    CHECK(bufferevent_set_max_single_write(bev, 1000) == 0);
    CHECK(bufferevent_get_max_single_write(bev) == 1000);
    bufferevent_free(bev);
    close(sv[1]);
}

/* ---- triggers ---- */
static int trig_reads, trig_events;
static short trig_what;
static void trig_read(struct bufferevent *bev, void *arg) { (void)bev; (void)arg; trig_reads++; }
static void trig_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev; (void)arg;
    trig_events++;
    trig_what = what;
}

static void triggers(void) {
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, trig_read, NULL, trig_event, NULL);
    bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
    CHECK(trig_reads == 1);                    /* right away */
    bufferevent_trigger(bev, EV_READ, 0);      /* 0 bytes >= low mark 0 */
    CHECK(trig_reads == 2);
    bufferevent_setwatermark(bev, EV_READ, 10, 0);
    bufferevent_trigger(bev, EV_READ, 0);      /* below the low mark: nothing */
    CHECK(trig_reads == 2);
    bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    CHECK(trig_reads == 2);                    /* deferred to the loop */
    event_base_loop(base, EVLOOP_ONCE);
    CHECK(trig_reads == 3);
    bufferevent_trigger_event(bev, BEV_EVENT_EOF, 0);
    CHECK(trig_events == 1 && trig_what == BEV_EVENT_EOF);
    bufferevent_free(bev);
    close(sv[1]);
}

/* ---- freeing inside a callback; references ---- */
static int self_free_calls;
static void free_self(struct bufferevent *bev, void *arg) {
    (void)arg;
    self_free_calls++;
    bufferevent_free(bev);
}
static void free_on_event(struct bufferevent *bev, short what, void *arg) {
    (void)what; (void)arg;
    self_free_calls++;
    bufferevent_free(bev);
}

static void lifetimes(void) {
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, free_self, NULL, NULL, NULL);
    bufferevent_enable(bev, EV_READ);
    CHECK(write(sv[1], "a", 1) == 1);
    struct timeval tv = {0, 30000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    CHECK(self_free_calls == 1);
    close(sv[1]);

    /* Freed from its event callback on EOF. */
    pair_of_sockets(sv);
    bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, free_on_event, NULL);
    bufferevent_enable(bev, EV_READ);
    close(sv[1]);
    self_free_calls = 0;
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    CHECK(self_free_calls == 1);

    /* incref keeps it past bufferevent_free; the last decref frees it. */
    pair_of_sockets(sv);
    bev = bufferevent_socket_new(base, sv[0], 0);
    bufferevent_setcb(bev, trig_read, NULL, NULL, NULL);
    bufferevent_incref(bev);
    CHECK(bufferevent_decref(bev) == 0);
    bufferevent_incref(bev);
    bufferevent_free(bev);
    bufferevent_data_cb r = trig_read;
    bufferevent_getcb(bev, &r, NULL, NULL, NULL);
    CHECK(r == NULL);                        /* bufferevent_free cleared the callbacks */
    CHECK(bufferevent_getfd(bev) == sv[0]);
    CHECK(bufferevent_decref(bev) == 1);     /* freed now */
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK(fd_open(sv[0]));
    close(sv[0]);
    close(sv[1]);
}

/* ---- callbacks and their argument written straight into the struct ---- */
static int direct_arg, direct_reads, direct_events;
static short direct_what;
static void direct_read(struct bufferevent *bev, void *arg) {
    char buf[16];
    CHECK(arg == &direct_arg);
    direct_reads += (int)bufferevent_read(bev, buf, sizeof buf);
}
static void direct_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    CHECK(arg == &direct_arg);
    direct_events++;
    direct_what = what;
    event_base_loopbreak(base);
}

static void direct_callbacks(void) {
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    CHECK(bufferevent_enable(bev, EV_READ) == 0);
    /* No bufferevent_setcb: the program fills the fields itself, then runs the loop. */
    bev->readcb = direct_read;
    bev->errorcb = direct_event;
    bev->cbarg = &direct_arg;
    CHECK(write(sv[1], "xyz", 3) == 3);
    close(sv[1]);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(direct_reads == 3);
    CHECK(direct_events == 1 && direct_what == (BEV_EVENT_EOF | BEV_EVENT_READING));
    bufferevent_free(bev);
}

/* ---- setfd, getfd, priorities ---- */
static void fds_and_priorities(void) {
    struct event_base *b3;
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    CHECK(bufferevent_getfd(bev) == -1);
    CHECK(bufferevent_setfd(bev, sv[0]) == 0);
    CHECK(bufferevent_getfd(bev) == sv[0]);
    pair_len = 0;
    bufferevent_setcb(bev, pair_read, NULL, NULL, NULL);
    bufferevent_enable(bev, EV_READ);
    CHECK(write(sv[1], "0123456789", 10) == 10);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(pair_len == 10 && memcmp(pair_got, "0123456789", 10) == 0);
    bufferevent_free(bev);
    CHECK(fd_open(sv[0]));
    close(sv[0]);
    close(sv[1]);

    b3 = event_base_new();
    CHECK(event_base_priority_init(b3, 3) == 0);
    pair_of_sockets(sv);
    bev = bufferevent_socket_new(b3, sv[0], BEV_OPT_CLOSE_ON_FREE);
    CHECK(bufferevent_get_priority(bev) == 1);
    CHECK(bufferevent_priority_set(bev, 2) == 0);
    CHECK(bufferevent_get_priority(bev) == 2);
    CHECK(bufferevent_priority_set(bev, 3) == -1);
    bufferevent_lock(bev);
    bufferevent_unlock(bev);
    bufferevent_free(bev);
    close(sv[1]);
    event_base_free(b3);
}

/* ---- a cap on one read ---- */
static size_t ms_most, ms_total;
static void ms_read(struct bufferevent *bev, void *arg) {
    (void)arg;
    char got[8192];
    size_t n = bufferevent_read(bev, got, sizeof got);
    if (n > ms_most) ms_most = n;
    ms_total += n;
    if (ms_total == 5000) event_base_loopbreak(base);
}

/* bufferevent_set_max_single_read: each read takes at most the cap (the callback drains all, so
 * what it finds is one read's worth), and the stream still arrives whole. */
static void max_single(void) {
    int sv[2];
    pair_of_sockets(sv);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, ms_read, NULL, NULL, NULL);
    CHECK(bufferevent_set_max_single_read(bev, 100) == 0);
    CHECK(bufferevent_get_max_single_read(bev) == 100);
    char data[5000];
    memset(data, 'm', sizeof data);
    CHECK(write(sv[1], data, sizeof data) == (ssize_t)sizeof data);
    CHECK(bufferevent_enable(bev, EV_READ) == 0);
    stop_after(10000);
    CHECK(event_base_dispatch(base) == 0);
    CHECK(ms_total == 5000);
    CHECK(ms_most > 0 && ms_most <= 100);
    bufferevent_free(bev);
    close(sv[1]);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    layout();
    base = event_base_new();
    CHECK(base);
    echo();
    watermarks();
    write_cb();
    timeouts();
    eof_and_error();
    connects();
    pairs();
    rate_limits();
    triggers();
    lifetimes();
    direct_callbacks();
    fds_and_priorities();
    max_single(); /* last: it leaves its loopexit timer behind */
    event_base_free(base);
    printf("bufferevent: ok\n");
    return 0;
}
