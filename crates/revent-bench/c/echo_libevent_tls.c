/* echo_libevent_tls: the echo service over TLS on C libevent 2.1 with libevent_openssl, the reference
 * for revent's TLS bufferevents.
 * usage: echo_libevent_tls PORT CERT KEY   (0 = an ephemeral port; CERT and KEY are PEM files, CERT
 * may hold the chain); prints "port=N method=M" once listening on 127.0.0.1.
 * Each accepted socket gets TCP_NODELAY (see echo_libevent.c) and a bufferevent_openssl_socket_new
 * in the ACCEPTING state with BEV_OPT_CLOSE_ON_FREE (freeing it frees the SSL and closes the socket).
 * Every byte read is moved to the output buffer (evbuffer_add_buffer); errors and EOF free the
 * connection (a client leaving without close_notify is an EOF: dirty shutdowns are allowed).
 * Compiled at run time by revent-bench (cc -O2 ... -levent_core -levent_openssl -lssl -lcrypto);
 * needs Debian's libevent-dev and libssl-dev. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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
    (void)sa; (void)len;
    SSL_CTX *ctx = arg;
    struct event_base *base = evconnlistener_get_base(l);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL *ssl = SSL_new(ctx);
    if (!ssl) { evutil_closesocket(fd); return; }
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (!bev) { SSL_free(ssl); evutil_closesocket(fd); return; }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    bufferevent_setcb(bev, read_cb, NULL, event_cb, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s PORT CERT KEY\n", argv[0]); return 2; }
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1
        || SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "%s: cannot use certificate %s and key %s\n", argv[0], argv[2], argv[3]);
        ERR_print_errors_fp(stderr);
        return 1;
    }
    struct event_base *base = event_base_new();
    if (!base) { fprintf(stderr, "event_base_new failed\n"); return 1; }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l = evconnlistener_new_bind(base, accept_cb, ctx,
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
    SSL_CTX_free(ctx);
    return 0;
}
