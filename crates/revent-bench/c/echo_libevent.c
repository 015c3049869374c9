/* echo_libevent: the echo service on C libevent 2.1's bufferevents, the reference for revent's.
 * usage: echo_libevent PORT   (0 = an ephemeral port); prints "port=N" once listening on 127.0.0.1.
 * Accepted sockets get TCP_NODELAY: with Nagle's algorithm, the 4 KiB pieces a bufferevent writes of a
 * 16 KiB message wait for the client's delayed ACK (40 ms), which measures Nagle, not libevent.
 * Every byte read is moved to the output buffer (evbuffer_add_buffer); errors and EOF free the connection.
 * Compiled at run time by revent-bench (cc -O2 ... -levent_core); needs Debian's libevent-dev. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void read_cb(struct bufferevent *bev, void *arg) {
    (void)arg;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg) {
    (void)sa; (void)len; (void)arg;
    struct event_base *base = evconnlistener_get_base(l);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) { evutil_closesocket(fd); return; }
    bufferevent_setcb(bev, read_cb, NULL, event_cb, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    if (!base) { fprintf(stderr, "event_base_new failed\n"); return 1; }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l = evconnlistener_new_bind(base, accept_cb, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024, (struct sockaddr *)&sin, sizeof sin);
    if (!l) { perror("listen"); return 1; }
    struct sockaddr_in got;
    socklen_t glen = sizeof got;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&got, &glen);
    printf("port=%d method=%s\n", ntohs(got.sin_port), event_base_get_method(base));
    fflush(stdout);
    event_base_dispatch(base);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
