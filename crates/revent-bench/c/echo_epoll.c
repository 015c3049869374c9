/* echo_epoll: the echo service on raw epoll, the floor of syscalls an evented server needs.
 * Level-triggered; on each readiness of a connection, one read (up to 64 KiB) and one write of what was
 * read. A short write keeps the rest, stops reading and waits for EPOLLOUT (one write per readiness) before
 * reading again. usage: echo_epoll PORT (0 = ephemeral); prints "port=N" once listening on 127.0.0.1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)

struct conn { int fd; char *pending; size_t off, len; };

static int ep;
static char buf[BUF];

static void drop(struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pending);
    free(c);
}

static void set(struct conn *c, unsigned events) {
    struct epoll_event e = { .events = events, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 1024) < 0) { perror("listen"); return 1; }
    socklen_t slen = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &slen);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
    printf("port=%d method=epoll\n", ntohs(sin.sin_port));
    fflush(stdout);
    struct epoll_event evs[1024];
    for (;;) {
        int k = epoll_wait(ep, evs, 1024, -1);
        if (k < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        for (int j = 0; j < k; j++) {
            struct conn *c = evs[j].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *n = calloc(1, sizeof *n);
                    n->fd = fd;
                    struct epoll_event e = { .events = EPOLLIN, .data.ptr = n };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (c->len) { /* waiting to finish a short write */
                if (!(evs[j].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
                ssize_t w = write(c->fd, c->pending + c->off, c->len - c->off);
                if (w < 0) { if (errno != EAGAIN) drop(c); continue; }
                c->off += (size_t)w;
                if (c->off == c->len) { c->off = c->len = 0; set(c, EPOLLIN); }
                continue;
            }
            ssize_t r = read(c->fd, buf, BUF);
            if (r == 0 || (r < 0 && errno != EAGAIN)) { drop(c); continue; }
            if (r < 0) continue;
            ssize_t w = write(c->fd, buf, (size_t)r);
            if (w < 0) { if (errno != EAGAIN) { drop(c); continue; } w = 0; }
            if (w < r) {
                c->pending = realloc(c->pending, (size_t)(r - w));
                memcpy(c->pending, buf + w, (size_t)(r - w));
                c->off = 0;
                c->len = (size_t)(r - w);
                set(c, EPOLLOUT);
            }
        }
    }
}
