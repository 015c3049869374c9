/* Listeners from C: accepting with the peer's address (IPv4, and AF_UNIX with 108-byte paths on
 * both ends), an echo through a bufferevent on the accepted fd, enable/disable, a listener on the
 * program's own socket, a NULL callback set later, freeing the listener inside its callback, and
 * the error callback (out of fds). */
#include <event2/event.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "check.h"

static struct event_base *base;
static int accepted, accept_arg;
static struct sockaddr_storage peer;
static int peer_len;
static struct evconnlistener *last_lev;

static void stop_after(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
}

static int fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

/* ---- accept with the peer address, then echo through a bufferevent ---- */
static void echo_read(struct bufferevent *bev, void *arg) {
    char buf[4096];
    size_t n;
    (void)arg;
    while ((n = bufferevent_read(bev, buf, sizeof buf)) > 0)
        bufferevent_write(bev, buf, n);
}
static void echo_event(struct bufferevent *bev, short what, void *arg) {
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg) {
    CHECK(arg == &accept_arg);
    CHECK(fd >= 0);
    CHECK(socklen > 0 && (size_t)socklen <= sizeof peer);
    memcpy(&peer, sa, (size_t)socklen);
    peer_len = socklen;
    last_lev = lev;
    accepted++;
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd,
                                                     BEV_OPT_CLOSE_ON_FREE);
    CHECK(bev);
    bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    event_base_loopbreak(base);
}

static void tcp(void) {
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *lev = evconnlistener_new_bind(base, on_accept, &accept_arg,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1, (struct sockaddr *)&sin, sizeof sin);
    CHECK(lev);
    CHECK(evconnlistener_get_base(lev) == base);
    int lfd = evconnlistener_get_fd(lev);
    CHECK(lfd >= 0);
    socklen_t sl = sizeof sin;
    CHECK(getsockname(lfd, (struct sockaddr *)&sin, &sl) == 0);

    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in me = {0};
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(c, (struct sockaddr *)&me, sizeof me) == 0);
    sl = sizeof me;
    CHECK(getsockname(c, (struct sockaddr *)&me, &sl) == 0);
    CHECK(connect(c, (struct sockaddr *)&sin, sizeof sin) == 0);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(accepted == 1 && last_lev == lev);
    CHECK(peer_len == (int)sizeof(struct sockaddr_in));
    struct sockaddr_in *p = (struct sockaddr_in *)&peer;
    CHECK(p->sin_family == AF_INET && p->sin_port == me.sin_port);
    CHECK(p->sin_addr.s_addr == htonl(INADDR_LOOPBACK));

    /* The echo: exact bytes back. */
    char out[10000], in[10000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(i * 13);
    CHECK(write(c, out, sizeof out) == (ssize_t)sizeof out);
    size_t got = 0;
    while (got < sizeof in) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        ssize_t n = recv(c, in + got, sizeof in - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
    }
    CHECK(memcmp(in, out, sizeof in) == 0);
    close(c);   /* the server side sees EOF and frees its bufferevent */
    struct timeval tv = {0, 20000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);

    /* Disabled: connections wait; enabled again: accepted. */
    CHECK(evconnlistener_disable(lev) == 0);
    c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&sin, sizeof sin) == 0);
    accepted = 0;
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    CHECK(accepted == 0);
    CHECK(evconnlistener_enable(lev) == 0);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(accepted == 1);
    close(c);
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    evconnlistener_free(lev);
}

/* ---- a listener on the program's socket, with no callback at first ---- */
static void own_socket(void) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    CHECK(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(lfd, 8) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&sin, &sl) == 0);
    /* backlog 0: already listening. No callback: nothing is accepted until one is set. */
    struct evconnlistener *lev = evconnlistener_new(base, NULL, NULL, 0, 0, lfd);
    CHECK(lev && evconnlistener_get_fd(lev) == lfd);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&sin, sizeof sin) == 0);
    accepted = 0;
    struct timeval tv = {0, 30000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    CHECK(accepted == 0);
    evconnlistener_set_cb(lev, on_accept, &accept_arg);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(accepted == 1);
    close(c);
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    evconnlistener_free(lev);
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK(fd_open(lfd));   /* no LEV_OPT_CLOSE_ON_FREE: still the program's */
    close(lfd);
}

/* ---- AF_UNIX with 108-byte paths; the listener is freed inside its callback ---- */
static char client_path[108];
static int unix_ok;

static void on_unix_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                           int socklen, void *arg) {
    struct sockaddr_un *un = (struct sockaddr_un *)sa;
    (void)arg;
    CHECK(sa->sa_family == AF_UNIX);
    CHECK(socklen >= (int)(offsetof(struct sockaddr_un, sun_path) + 108));
    CHECK(socklen <= (int)sizeof(struct sockaddr_storage));
    CHECK(memcmp(un->sun_path, client_path, 108) == 0);
    unix_ok = 1;
    close(fd);
    evconnlistener_free(lev);   /* inside its own callback */
    event_base_loopbreak(base);
}

static void fill_path(char *dst, const char *tag) {
    /* Exactly 108 bytes, no NUL: the whole of sun_path. */
    memset(dst, 'p', 108);
    int n = snprintf(dst, 108, "/tmp/revent-%s-%d-", tag, (int)getpid());
    dst[n] = 'p';
}

static void unix_long_paths(void) {
    /* Inside zeroed sockaddr_storage: a tool that reads sun_path up to a NUL finds one after it. */
    struct sockaddr_storage lss, css;
    memset(&lss, 0, sizeof lss);
    memset(&css, 0, sizeof css);
    struct sockaddr_un *lp = (struct sockaddr_un *)&lss, *cp = (struct sockaddr_un *)&css;
#define lsun (*lp)
#define csun (*cp)
    lsun.sun_family = csun.sun_family = AF_UNIX;
    char lpath[109] = {0}, cpath[109] = {0};
    fill_path(lsun.sun_path, "lst");
    fill_path(csun.sun_path, "cli");
    memcpy(lpath, lsun.sun_path, 108);
    memcpy(cpath, csun.sun_path, 108);
    memcpy(client_path, csun.sun_path, 108);
    unlink(lpath);
    unlink(cpath);
    struct evconnlistener *lev = evconnlistener_new_bind(base, on_unix_accept, NULL,
        LEV_OPT_CLOSE_ON_FREE, -1, (struct sockaddr *)&lsun, sizeof(struct sockaddr_un));
    CHECK(lev);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(c, (struct sockaddr *)&csun, sizeof(struct sockaddr_un)) == 0);
    CHECK(connect(c, (struct sockaddr *)&lsun, sizeof(struct sockaddr_un)) == 0);
    stop_after(5000);
    event_base_dispatch(base);
    CHECK(unix_ok);
    close(c);
    unlink(lpath);
    unlink(cpath);
#undef lsun
#undef csun
}

/* ---- the error callback: out of fds ---- */
static int errors_seen, error_errno;
static struct rlimit saved;
static void on_error(struct evconnlistener *lev, void *arg) {
    CHECK(arg == &accept_arg);
    error_errno = EVUTIL_SOCKET_ERROR();
    errors_seen++;
    setrlimit(RLIMIT_NOFILE, &saved);
    evconnlistener_disable(lev);
    event_base_loopbreak(base);
}

static void accept_errors(void) {
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *lev = evconnlistener_new_bind(base, on_accept, &accept_arg,
        LEV_OPT_CLOSE_ON_FREE, -1, (struct sockaddr *)&sin, sizeof sin);
    CHECK(lev);
    evconnlistener_set_error_cb(lev, on_error);
    socklen_t sl = sizeof sin;
    CHECK(getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&sin, &sl) == 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&sin, sizeof sin) == 0);
    /* No fd left for accept: the lowest free fd is the limit. */
    int probe = dup(0);
    CHECK(probe >= 0);
    close(probe);
    CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    struct rlimit low = saved;
    low.rlim_cur = (rlim_t)probe;
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    accepted = 0;
    stop_after(5000);
    event_base_dispatch(base);
    setrlimit(RLIMIT_NOFILE, &saved);
    CHECK(errors_seen >= 1 && error_errno == EMFILE);
    CHECK(accepted == 0);
    close(c);
    evconnlistener_free(lev);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    CHECK(base);
    tcp();
    own_socket();
    unix_long_paths();
    accept_errors();
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    printf("listener: ok\n");
    return 0;
}
