/* event2/http.h's server, with http.h's client in the same program talking to it:
 * evhttp_new, evhttp_bind_socket_with_handle (port 0, read back with evhttp_bound_socket_get_fd),
 * path callbacks (evhttp_set_cb: a duplicate refused, evhttp_del_cb), the general callback
 * (evhttp_set_gencb: 404 before it is set), a reply whole (evhttp_send_reply with output headers
 * and a body), a chunked one (evhttp_send_reply_start/chunk/end, read by the client both whole and
 * through a chunk callback), input headers and body read by the handler, http_struct.h's fields
 * read directly, the peer through evhttp_request_get_connection, a request owned and answered
 * later from a timer, evhttp_set_allowed_methods (501), a virtual host with callbacks set after it
 * was added, its alias, and its removal. Then raw sockets check the bytes on the wire where
 * libevent and revent must agree (the Date field may differ: status line, framing fields and body
 * are compared): a whole reply, a chunked one to HTTP/1.1 and the same to HTTP/1.0 (no chunking, the
 * body ends with the connection), HEAD (no body), and evhttp_send_error (status line with the reason
 * given, Connection: close, the output headers set before it dropped). Everything is freed at the end (valgrind checks revent's run).
 * Linked -levent_core -levent_extra by run.sh. */
#include <sys/queue.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

static struct event_base *base;
static struct evhttp *http;
static struct evhttp *vhost;
static struct evhttp_connection *conn;
static ev_uint16_t port;
static int step;
static int later_answered;
static char chunks[256];
static int nchunks;

static void next_step(void);

/* ---- the server's callbacks ---- */

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text) {
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    evhttp_send_reply(req, code, reason, b);
    CHECK(evbuffer_get_length(b) == 0); /* the body was moved out */
    evbuffer_free(b);
}

static void hello_cb(struct evhttp_request *req, void *arg) {
    CHECK(arg == (void *)&hello_cb);
    CHECK(evhttp_request_get_command(req) == EVHTTP_REQ_GET);
    CHECK(req->type == EVHTTP_REQ_GET); /* http_struct.h */
    CHECK(req->kind == EVHTTP_REQUEST);
    CHECK(strcmp(evhttp_request_get_uri(req), "/hello?x=1") == 0);
    CHECK(strcmp(req->uri, "/hello?x=1") == 0);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    CHECK(u != NULL && strcmp(evhttp_uri_get_path(u), "/hello") == 0);
    CHECK(strcmp(evhttp_uri_get_query(u), "x=1") == 0);
    CHECK(strcmp(evhttp_request_get_host(req), "localhost") == 0);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    CHECK(in == req->input_headers);
    CHECK(strcmp(evhttp_find_header(in, "x-req"), "one") == 0);
    int n = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, in, next) n++;
    CHECK(n >= 2);
    CHECK(req->major == 1 && req->minor == 1);
    char *addr = NULL;
    ev_uint16_t peer_port = 0;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    CHECK(evcon != NULL);
    evhttp_connection_get_peer(evcon, &addr, &peer_port);
    CHECK(addr && strcmp(addr, "127.0.0.1") == 0 && peer_port != 0);
    CHECK(evhttp_connection_get_base(evcon) == base);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    CHECK(out == req->output_headers);
    CHECK(evhttp_add_header(out, "Content-Type", "text/plain") == 0);
    CHECK(evhttp_add_header(out, "X-Test", "yes") == 0);
    reply_text(req, 200, "OK", "Hello, World!");
}

static void echo_cb(struct evhttp_request *req, void *arg) {
    (void)arg;
    CHECK(evhttp_request_get_command(req) == EVHTTP_REQ_POST);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    CHECK(in == req->input_buffer);
    char body[64] = {0};
    size_t n = evbuffer_get_length(in);
    CHECK(n < sizeof body);
    CHECK(evbuffer_remove(in, body, n) == (int)n);
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Req");
    CHECK(h != NULL);
    /* The reply body goes through the request's own output buffer. */
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    CHECK(out == req->output_buffer);
    evbuffer_add_printf(out, "echo:%s:%s", body, h);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void chunked_cb(struct evhttp_request *req, void *arg) {
    (void)arg;
    evhttp_send_reply_start(req, 200, "OK");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "part1", 5);
    evhttp_send_reply_chunk(req, b);
    CHECK(evbuffer_get_length(b) == 0);
    evbuffer_add(b, "part2", 5);
    evhttp_send_reply_chunk(req, b);
    evbuffer_free(b);
    evhttp_send_reply_end(req);
}

static void later_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct evhttp_request *req = arg;
    CHECK(evhttp_request_is_owned(req));
    later_answered = 1;
    reply_text(req, 201, "Created", "late");
}

static void later_cb(struct evhttp_request *req, void *arg) {
    (void)arg;
    CHECK(!evhttp_request_is_owned(req));
    evhttp_request_own(req);
    CHECK(evhttp_request_is_owned(req));
    struct timeval tv = {0, 50000};
    CHECK(event_base_once(base, -1, EV_TIMEOUT, later_timer, req, &tv) == 0);
}

static void gen_cb(struct evhttp_request *req, void *arg) {
    CHECK(arg == (void *)&gen_cb);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    /* These targets have no query: the path is the whole target, still encoded. */
    CHECK(strcmp(evhttp_uri_get_path(u), evhttp_request_get_uri(req)) == 0);
    reply_text(req, 200, "OK", evhttp_request_get_uri(req));
}

static void forbid_cb(struct evhttp_request *req, void *arg) {
    (void)arg;
    /* An error reply starts from no output headers: those set before it are dropped. */
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Dropped", "1");
    evhttp_send_error(req, 403, "Go away");
}

/* Replies with the status the query names (`/phrase?418`) and no reason: the server picks it. */
static void phrase_cb(struct evhttp_request *req, void *arg) {
    (void)arg;
    const char *q = strchr(evhttp_request_get_uri(req), '?');
    CHECK(q != NULL);
    evhttp_send_reply(req, atoi(q + 1), NULL, NULL);
}

static void vhost_cb(struct evhttp_request *req, void *arg) {
    (void)arg;
    reply_text(req, 200, "OK", "vhost");
}

/* ---- the client's side ---- */

struct expect {
    int code;
    const char *body;
    const char *header, *value;
};

static void done_cb(struct evhttp_request *req, void *arg) {
    struct expect *e = arg;
    CHECK(req != NULL);
    if (evhttp_request_get_response_code(req) != e->code)
        fprintf(stderr, "step %d: got %d, want %d\n", step, evhttp_request_get_response_code(req), e->code);
    CHECK(evhttp_request_get_response_code(req) == e->code);
    CHECK(req->response_code == e->code);
    if (e->body) {
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(b);
        char got[256] = {0};
        CHECK(n < sizeof got);
        evbuffer_copyout(b, got, n);
        if (strcmp(got, e->body) != 0) fprintf(stderr, "step %d: body '%s', want '%s'\n", step, got, e->body);
        CHECK(strcmp(got, e->body) == 0);
    }
    if (e->header) {
        const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), e->header);
        CHECK(v != NULL && strcmp(v, e->value) == 0);
    }
    step++;
    next_step();
}

static void chunk_piece(struct evhttp_request *req, void *arg) {
    (void)arg;
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(b);
    CHECK(strlen(chunks) + n < sizeof chunks);
    evbuffer_remove(b, chunks + strlen(chunks), n);
    nchunks++;
}

static void chunked_done(struct evhttp_request *req, void *arg) {
    (void)arg;
    CHECK(req != NULL && evhttp_request_get_response_code(req) == 200);
    CHECK(nchunks >= 1);
    CHECK(strcmp(chunks, "part1part2") == 0);
    /* Each piece was drained after its call. */
    CHECK(evbuffer_get_length(evhttp_request_get_input_buffer(req)) == 0);
    step++;
    next_step();
}

static void request(enum evhttp_cmd_type type, const char *uri, const char *host, const char *xreq,
                    const char *body, struct expect *e) {
    struct evhttp_request *req = evhttp_request_new(done_cb, e);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", host);
    if (xreq) evhttp_add_header(h, "X-Req", xreq);
    if (body) evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    CHECK(evhttp_make_request(conn, req, type, uri) == 0);
}

/* ---- raw sockets: the bytes on the wire ---- */

static char raw[4096];
static size_t rawlen;
static const char *raw_want_status, *raw_want_body;
static const char *raw_want_fields[4];
static const char *raw_want_absent; /* a field that must not be there */

static void raw_read(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    struct event *ev = *(struct event **)arg;
    ssize_t n = read(fd, raw + rawlen, sizeof raw - 1 - rawlen);
    if (n > 0) {
        rawlen += n;
        return;
    }
    event_free(ev);
    free(arg);
    close(fd);
    raw[rawlen] = 0;
    if (strncmp(raw, raw_want_status, strlen(raw_want_status)) != 0)
        fprintf(stderr, "step %d: reply:\n%s\n", step, raw);
    CHECK(strncmp(raw, raw_want_status, strlen(raw_want_status)) == 0);
    char *end = strstr(raw, "\r\n\r\n");
    CHECK(end != NULL);
    *end = 0;
    for (int i = 0; i < 4 && raw_want_fields[i]; i++) {
        if (!strstr(raw, raw_want_fields[i])) fprintf(stderr, "step %d: no '%s' in:\n%s\n", step, raw_want_fields[i], raw);
        CHECK(strstr(raw, raw_want_fields[i]) != NULL);
    }
    if (raw_want_absent) CHECK(strstr(raw, raw_want_absent) == NULL);
    raw_want_absent = NULL;
    /* NULL: a body the two libraries word differently (an error page). */
    if (raw_want_body && strcmp(end + 4, raw_want_body) != 0) fprintf(stderr, "step %d: body '%s'\n", step, end + 4);
    CHECK(!raw_want_body || strcmp(end + 4, raw_want_body) == 0);
    step++;
    next_step();
}

static void raw_exchange(const char *request_text, const char *status, const char *body, const char *f1,
                         const char *f2, const char *f3) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CHECK(write(fd, request_text, strlen(request_text)) == (ssize_t)strlen(request_text));
    rawlen = 0;
    raw_want_status = status;
    raw_want_body = body;
    raw_want_fields[0] = f1;
    raw_want_fields[1] = f2;
    raw_want_fields[2] = f3;
    raw_want_fields[3] = NULL;
    struct event **slot = malloc(sizeof *slot);
    *slot = event_new(base, fd, EV_READ | EV_PERSIST, raw_read, slot);
    CHECK(event_add(*slot, NULL) == 0);
}

/* ---- the steps ---- */

static struct expect e_hello = {200, "Hello, World!", "X-Test", "yes"};
static struct expect e_echo = {200, "echo:ping:two", NULL, NULL};
static struct expect e_later = {201, "late", NULL, NULL};
static struct expect e_404 = {404, NULL, NULL, NULL};
static struct expect e_gen = {200, "/nope/a%20b", NULL, NULL};
static struct expect e_501 = {501, NULL, NULL, NULL};
static struct expect e_vhost = {200, "vhost", NULL, NULL};
static struct expect e_root = {200, "Hello, World!", "Content-Type", "text/plain"};
static struct expect e_chunked_whole = {200, "part1part2", NULL, NULL};

static void next_step(void) {
    char host[64];
    snprintf(host, sizeof host, "localhost:%d", port);
    switch (step) {
    case 0: request(EVHTTP_REQ_GET, "/hello?x=1", host, "one", NULL, &e_hello); break;
    case 1: request(EVHTTP_REQ_POST, "/echo", host, "two", "ping", &e_echo); break;
    case 2: request(EVHTTP_REQ_GET, "/chunked", host, NULL, NULL, &e_chunked_whole); break;
    case 3: {
        struct evhttp_request *req = evhttp_request_new(chunked_done, NULL);
        evhttp_request_set_chunked_cb(req, chunk_piece);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
        CHECK(evhttp_make_request(conn, req, EVHTTP_REQ_GET, "/chunked") == 0);
        break;
    }
    case 4: request(EVHTTP_REQ_GET, "/later", host, NULL, NULL, &e_later); break;
    case 5:
        CHECK(later_answered);
        request(EVHTTP_REQ_GET, "/nope/a%20b", host, NULL, NULL, &e_404);
        break;
    case 6:
        evhttp_set_gencb(http, gen_cb, (void *)&gen_cb);
        request(EVHTTP_REQ_GET, "/nope/a%20b", host, NULL, NULL, &e_gen);
        break;
    case 7:
        evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
        request(EVHTTP_REQ_DELETE, "/hello?x=1", host, NULL, NULL, &e_501);
        break;
    case 8:
        evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
        vhost = evhttp_new(base);
        CHECK(evhttp_add_virtual_host(http, "*.example.com", vhost) == 0);
        /* Callbacks set on the host after it was added are used. */
        CHECK(evhttp_set_cb(vhost, "/hello", vhost_cb, NULL) == 0);
        request(EVHTTP_REQ_GET, "/hello", "www.Example.com", NULL, NULL, &e_vhost);
        break;
    case 9:
        CHECK(evhttp_add_server_alias(vhost, "other.test") == 0);
        request(EVHTTP_REQ_GET, "/hello", "other.test:81", NULL, NULL, &e_vhost);
        break;
    case 10:
        CHECK(evhttp_remove_server_alias(vhost, "other.test") == 0);
        CHECK(evhttp_remove_server_alias(vhost, "other.test") == -1);
        CHECK(evhttp_remove_virtual_host(http, vhost) == 0);
        evhttp_free(vhost);
        vhost = NULL;
        request(EVHTTP_REQ_GET, "/hello?x=1", "localhost", "one", NULL, &e_root);
        break;
    case 11:
        raw_exchange("GET /hello?x=1 HTTP/1.1\r\nHost: localhost\r\nX-Req: one\r\nConnection: close\r\n\r\n",
                     "HTTP/1.1 200 OK\r\n", "Hello, World!", "\r\nContent-Length: 13", "\r\nX-Test: yes",
                     "\r\nContent-Type: text/plain");
        break;
    case 12:
        raw_exchange("GET /chunked HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                     "HTTP/1.1 200 OK\r\n", "5\r\npart1\r\n5\r\npart2\r\n0\r\n\r\n",
                     "\r\nTransfer-Encoding: chunked", NULL, NULL);
        break;
    case 13:
        raw_exchange("GET /chunked HTTP/1.0\r\nHost: localhost\r\n\r\n", "HTTP/1.0 200 OK\r\n", "part1part2",
                     NULL, NULL, NULL);
        break;
    case 14:
        raw_exchange("GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\n",
                     "/nope", NULL, NULL, NULL);
        break;
    case 15:
        /* HEAD: the headers GET would get, and no body (RFC 9110 §9.3.2). Debian's libevent 2.1.12
         * writes the body after the head anyway, where the next response on a kept connection
         * would be read; revent sends none. */
#ifdef REVENT
        raw_exchange("HEAD /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\n", "",
                     NULL, NULL, NULL);
#else
        raw_exchange("HEAD /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\n",
                     "/nope", NULL, NULL, NULL);
#endif
        break;
    case 16:
        raw_exchange("GET /forbid HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 403 Go away\r\n", NULL,
                     "\r\nConnection: close", "\r\nContent-Length: ", NULL);
        raw_want_absent = "X-Dropped";
        break;
    /* No reason given: the standard phrase, else the name of the code's class (libevent's rule). */
    case 17:
        raw_exchange("GET /phrase?404 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                     "HTTP/1.1 404 Not Found\r\n", NULL, NULL, NULL, NULL);
        break;
    case 18:
        raw_exchange("GET /phrase?418 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                     "HTTP/1.1 418 Client Error\r\n", NULL, NULL, NULL, NULL);
        break;
    case 19:
        raw_exchange("GET /phrase?299 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                     "HTTP/1.1 299 Success\r\n", NULL, NULL, NULL, NULL);
        break;
    default: event_base_loopexit(base, NULL); break;
    }
}

static void count_bound(struct evhttp_bound_socket *b, void *arg) {
    (void)b;
    ++*(int *)arg;
}

int main(void) {
    base = event_base_new();
    CHECK(base != NULL);
    http = evhttp_new(base);
    CHECK(http != NULL);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    CHECK(bound != NULL);
    int fd = evhttp_bound_socket_get_fd(bound);
    CHECK(fd >= 0);
    CHECK(evhttp_bound_socket_get_listener(bound) != NULL);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    port = ntohs(sin.sin_port);
    CHECK(port != 0);
    /* A second socket, then taken away again. */
    struct evhttp_bound_socket *second = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    CHECK(second != NULL);
    int nbound = 0;
    evhttp_foreach_bound_socket(http, count_bound, &nbound);
    CHECK(nbound == 2);
    evhttp_del_accept_socket(http, second);
    nbound = 0;
    evhttp_foreach_bound_socket(http, count_bound, &nbound);
    CHECK(nbound == 1);

    CHECK(evhttp_set_cb(http, "/hello", hello_cb, (void *)&hello_cb) == 0);
    CHECK(evhttp_set_cb(http, "/hello", hello_cb, NULL) == -1);
    CHECK(evhttp_set_cb(http, "/gone", hello_cb, NULL) == 0);
    CHECK(evhttp_del_cb(http, "/gone") == 0);
    CHECK(evhttp_del_cb(http, "/gone") == -1);
    CHECK(evhttp_set_cb(http, "/echo", echo_cb, NULL) == 0);
    CHECK(evhttp_set_cb(http, "/chunked", chunked_cb, NULL) == 0);
    CHECK(evhttp_set_cb(http, "/later", later_cb, NULL) == 0);
    CHECK(evhttp_set_cb(http, "/forbid", forbid_cb, NULL) == 0);
    CHECK(evhttp_set_cb(http, "/phrase", phrase_cb, NULL) == 0);
    evhttp_set_timeout(http, 30);
    evhttp_set_max_headers_size(http, 8192);
    evhttp_set_max_body_size(http, 1 << 20);

    conn = evhttp_connection_base_new(base, NULL, "127.0.0.1", port);
    CHECK(conn != NULL);
    evhttp_connection_set_timeout(conn, 30);
    char *caddr = NULL;
    ev_uint16_t cport = 0;
    evhttp_connection_get_peer(conn, &caddr, &cport);
    CHECK(caddr && strcmp(caddr, "127.0.0.1") == 0 && cport == port);

    next_step();
    CHECK(event_base_dispatch(base) == 0);
    CHECK(step == 20);

    evhttp_connection_free(conn);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
