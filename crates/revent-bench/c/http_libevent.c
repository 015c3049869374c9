/* http_libevent: the plaintext HTTP server on C libevent 2.1's evhttp, the reference for revent-http.
 * usage: http_libevent PORT DIR   (0 = an ephemeral port); prints "port=N" once listening on 127.0.0.1.
 * One thread, one event base. /1mb.bin sends DIR/1mb.bin with evbuffer_add_file (libevent's sendfile
 * path, the file opened per request); every other path answers "Hello, World!" as text/plain through
 * evhttp_set_gencb. SIGTERM and SIGINT end the loop.
 * Compiled at run time by revent-bench (cc -O2 ... -levent); needs Debian's libevent-dev. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char file_path[4096];

static void plaintext_cb(struct evhttp_request *req, void *arg) {
    (void)arg;
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_add(out, "Hello, World!", 13);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void file_cb(struct evhttp_request *req, void *arg) {
    (void)arg;
    int fd = open(file_path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        evhttp_send_error(req, 404, NULL);
        return;
    }
    /* The buffer owns the fd from here (closed once sent). */
    if (evbuffer_add_file(evhttp_request_get_output_buffer(req), fd, 0, st.st_size) != 0) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/octet-stream");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg) {
    (void)sig; (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: http_libevent PORT DIR\n");
        return 2;
    }
    snprintf(file_path, sizeof file_path, "%s/1mb.bin", argv[2]);
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (!http) {
        fprintf(stderr, "http_libevent: cannot set up\n");
        return 1;
    }
    evhttp_set_cb(http, "/1mb.bin", file_cb, NULL);
    evhttp_set_gencb(http, plaintext_cb, NULL);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1]));
    if (!bound) {
        perror("http_libevent: bind");
        return 1;
    }
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len) != 0) {
        perror("http_libevent: getsockname");
        return 1;
    }
    struct event *term = evsignal_new(base, SIGTERM, stop_cb, base);
    struct event *intr = evsignal_new(base, SIGINT, stop_cb, base);
    event_add(term, NULL);
    event_add(intr, NULL);
    printf("port=%d method=%s\n", ntohs(sin.sin_port), event_base_get_method(base));
    fflush(stdout);
    event_base_dispatch(base);
    event_free(term);
    event_free(intr);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
