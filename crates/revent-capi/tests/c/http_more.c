/* event2/http.h's extra calls, server and client in one program:
 * - evhttp_set_bevcb: every accepted connection comes on a bufferevent of the callback's, which
 *   evhttp_connection_get_bufferevent gives back and whose socket is the connection's;
 * - evhttp_connection_base_bufferevent_new: the client's bufferevent is the one handed in;
 * - evhttp_connection_set_local_address/_port: the server sees that address and port as the peer;
 * - evhttp_send_reply_chunk_with_cb: each chunk's callback runs once it went out, and sends the
 *   next one (the streaming pattern), with the request's connection;
 * - evhttp_request_set_on_complete_cb: runs once per answered request, with the request, after
 *   the reply went out;
 * - evhttp_request_set_header_cb: sees the status and headers before the body; -1 refuses the
 *   response (error callback with EVREQ_HTTP_EOF, then the callback with NULL);
 * - evhttp_connection_set_closecb: on the client, once per socket that closed (the refused
 *   response's, a "Connection: close" reply's, and a kept-alive one's that goes with
 *   evhttp_connection_free); on the server, once when a connection whose
 *   reply said "Connection: close" closes.
 * Linked -levent_core -levent_extra by run.sh. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
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
static ev_uint16_t port, local_port;
static struct evhttp_connection *conn_a, *conn_b;
static struct bufferevent *client_bev;

static struct bufferevent *made[8];
static int n_made;
static int chunk_cbs[4], n_chunk_cbs;
static struct evhttp_connection *chunk_conn;
static struct evhttp_request *completed[4];
static int n_completed;
static int headers_seen, refused_errors, refused_nulls;
static int client_closes;
static int server_closes;
static struct evhttp_connection *waiting_conn;
static int raw_fd = -1;
static int step;

static void next_step(void);

/* ---- the server ---- */

static struct bufferevent *make_bev(struct event_base *b, void *arg) {
    CHECK(b == base && arg == &n_made);
    CHECK(n_made < 8);
    struct bufferevent *bev = bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
    CHECK(bev != NULL);
    made[n_made++] = bev;
    return bev;
}

/* The request's connection is on the last bufferevent made, and its socket's peer is the peer. */
static void check_bev_of(struct evhttp_request *req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    CHECK(evcon != NULL);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    CHECK(n_made > 0 && bev == made[n_made - 1]);
    evutil_socket_t fd = bufferevent_getfd(bev);
    CHECK(fd >= 0);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    CHECK(getpeername(fd, (struct sockaddr *)&sin, &len) == 0);
    char *addr;
    ev_uint16_t p;
    evhttp_connection_get_peer(evcon, &addr, &p);
    CHECK(ntohs(sin.sin_port) == p);
}

static void on_peer(struct evhttp_request *req, void *arg) {
    (void)arg;
    check_bev_of(req);
    char *addr;
    ev_uint16_t p;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &p);
    evbuffer_add_printf(evhttp_request_get_output_buffer(req), "%s:%u", addr, (unsigned)p);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_complete(struct evhttp_request *req, void *arg) {
    CHECK(arg == &n_completed);
    CHECK(n_completed < 4);
    CHECK(evhttp_request_get_response_code(req) == 200);
    completed[n_completed++] = req;
}

static struct evhttp_request *chunk_req;

static void chunk_sent(struct evhttp_connection *evcon, void *arg) {
    struct evhttp_request *req = arg;
    CHECK(req == chunk_req);
    CHECK(evcon == chunk_conn);
    chunk_cbs[n_chunk_cbs] = n_chunk_cbs + 1;
    n_chunk_cbs++;
    struct evbuffer *b = evbuffer_new();
    if (n_chunk_cbs == 1) {
        evbuffer_add(b, "two", 3);
        evhttp_send_reply_chunk_with_cb(req, b, chunk_sent, req);
        CHECK(evbuffer_get_length(b) == 0);
    } else {
        evhttp_send_reply_end(req);
    }
    evbuffer_free(b);
}

static void on_chunks(struct evhttp_request *req, void *arg) {
    (void)arg;
    check_bev_of(req);
    chunk_req = req;
    chunk_conn = evhttp_request_get_connection(req);
    evhttp_request_set_on_complete_cb(req, on_complete, &n_completed);
    evhttp_send_reply_start(req, 200, "OK");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "one", 3);
    evhttp_send_reply_chunk_with_cb(req, b, chunk_sent, req);
    evbuffer_free(b);
}

static void on_done(struct evhttp_request *req, void *arg) {
    (void)arg;
    evhttp_request_set_on_complete_cb(req, on_complete, &n_completed);
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Step", "done");
    evbuffer_add(evhttp_request_get_output_buffer(req), "body", 4);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_close_reply(struct evhttp_request *req, void *arg) {
    (void)arg;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static struct event *raw_ev;
static char raw_got[1024];
static size_t raw_len;

static void server_closed(struct evhttp_connection *evcon, void *arg) {
    CHECK(arg == &server_closes);
    CHECK(evcon == waiting_conn);
    server_closes++;
    if (raw_fd < 0) next_step();
}

/* The raw client reads the reply to its end, then closes. */
static void raw_read(evutil_socket_t fd, short what, void *arg) {
    (void)what; (void)arg;
    ssize_t n = read(fd, raw_got + raw_len, sizeof raw_got - 1 - raw_len);
    if (n > 0) {
        raw_len += (size_t)n;
        return;
    }
    raw_got[raw_len] = 0;
    CHECK(strncmp(raw_got, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(raw_got, "\r\n\r\nbye") != NULL);
    event_free(raw_ev);
    raw_ev = NULL;
    close(raw_fd);
    raw_fd = -1;
    if (server_closes == 1) next_step();
}

static void on_wait(struct evhttp_request *req, void *arg) {
    (void)arg;
    waiting_conn = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(waiting_conn, server_closed, &server_closes);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    evbuffer_add(evhttp_request_get_output_buffer(req), "bye", 3);
    evhttp_send_reply(req, 200, "OK", NULL);
    CHECK(server_closes == 0);
}

/* ---- the client ---- */

static int header_ok(struct evhttp_request *req, void *arg) {
    (void)arg;
    headers_seen++;
    CHECK(evhttp_request_get_response_code(req) == 200);
    CHECK(evbuffer_get_length(evhttp_request_get_input_buffer(req)) == 0);
    return 0;
}

static int header_refuse(struct evhttp_request *req, void *arg) {
    (void)arg;
    headers_seen++;
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Step");
    CHECK(v != NULL && strcmp(v, "done") == 0);
    return -1;
}

static void refused_error(enum evhttp_request_error e, void *arg) {
    (void)arg;
    CHECK(e == EVREQ_HTTP_EOF);
    refused_errors++;
}

static int a_closes;

static void a_closed(struct evhttp_connection *evcon, void *arg) {
    CHECK(evcon == conn_a && arg == &a_closes);
    a_closes++;
}

static int got4;

/* Step 4 ends with both its response and its socket's close. */
static void maybe_end4(void) {
    if (step == 4 && got4 && client_closes == 2) next_step();
}

static void client_closed(struct evhttp_connection *evcon, void *arg) {
    CHECK(evcon == conn_b && arg == &client_closes);
    client_closes++;
    maybe_end4();
}

static void expect_body(struct evhttp_request *req, const char *want) {
    CHECK(req != NULL);
    CHECK(evhttp_request_get_response_code(req) == 200);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    CHECK(n == strlen(want));
    CHECK(memcmp(evbuffer_pullup(in, -1), want, n) == 0);
}

static void got_response(struct evhttp_request *req, void *arg) {
    char want[64];
    switch (step) {
    case 1:
        snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)local_port);
        expect_body(req, want);
        CHECK(headers_seen == 1);
        break;
    case 2:
        expect_body(req, "onetwo");
        break;
    case 3:
        CHECK(req == NULL);
        CHECK(arg == &refused_nulls);
        refused_nulls++;
        CHECK(refused_errors == 1 && headers_seen == 2);
        break;
    case 4:
        expect_body(req, "");
        got4 = 1;
        maybe_end4();
        return;
    }
    next_step();
}

static void send_req(struct evhttp_connection *c, const char *path,
                     int (*hcb)(struct evhttp_request *, void *), void *arg) {
    struct evhttp_request *req = evhttp_request_new(got_response, arg);
    CHECK(req != NULL);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "localhost");
    if (hcb) evhttp_request_set_header_cb(req, hcb);
    if (hcb == header_refuse) evhttp_request_set_error_cb(req, refused_error);
    CHECK(evhttp_make_request(c, req, EVHTTP_REQ_GET, path) == 0);
}

static void next_step(void) {
    step++;
    switch (step) {
    case 1:
        send_req(conn_a, "/peer", header_ok, NULL);
        break;
    case 2:
        send_req(conn_a, "/chunks", NULL, NULL);
        break;
    case 3:
        send_req(conn_b, "/done", header_refuse, &refused_nulls);
        break;
    case 4:
        send_req(conn_b, "/close", NULL, NULL);
        break;
    case 5: {
        raw_fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(connect(raw_fd, (struct sockaddr *)&sin, sizeof sin) == 0);
        const char *r = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
        CHECK(write(raw_fd, r, strlen(r)) == (ssize_t)strlen(r));
        raw_ev = event_new(base, raw_fd, EV_READ | EV_PERSIST, raw_read, NULL);
        event_add(raw_ev, NULL);
        break;
    }
    case 6:
        event_base_loopexit(base, NULL);
        break;
    }
}

static void hang_guard(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    fprintf(stderr, "hang guard at step %d\n", step);
    exit(1);
}

/* A port nobody uses now: the system picks one, then it is let go. */
static ev_uint16_t free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(s, (struct sockaddr *)&sin, sizeof sin) == 0);
    socklen_t len = sizeof sin;
    CHECK(getsockname(s, (struct sockaddr *)&sin, &len) == 0);
    close(s);
    return ntohs(sin.sin_port);
}

int main(void) {
    base = event_base_new();
    CHECK(base != NULL);
    http = evhttp_new(base);
    CHECK(http != NULL);
    evhttp_set_bevcb(http, make_bev, &n_made);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    CHECK(bound != NULL);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    CHECK(getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len) == 0);
    port = ntohs(sin.sin_port);
    CHECK(evhttp_set_cb(http, "/peer", on_peer, NULL) == 0);
    CHECK(evhttp_set_cb(http, "/chunks", on_chunks, NULL) == 0);
    CHECK(evhttp_set_cb(http, "/done", on_done, NULL) == 0);
    CHECK(evhttp_set_cb(http, "/close", on_close_reply, NULL) == 0);
    CHECK(evhttp_set_cb(http, "/wait", on_wait, NULL) == 0);

    client_bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    CHECK(client_bev != NULL);
    conn_a = evhttp_connection_base_bufferevent_new(base, NULL, client_bev, "127.0.0.1", port);
    CHECK(conn_a != NULL);
    CHECK(evhttp_connection_get_bufferevent(conn_a) == client_bev);
    local_port = free_port();
    evhttp_connection_set_local_address(conn_a, "127.0.0.1");
    evhttp_connection_set_local_port(conn_a, local_port);

    conn_b = evhttp_connection_base_new(base, NULL, "127.0.0.1", port);
    CHECK(conn_b != NULL);
    evhttp_connection_set_closecb(conn_b, client_closed, &client_closes);

    struct event *guard = evtimer_new(base, hang_guard, NULL);
    struct timeval tv = {20, 0};
    evtimer_add(guard, &tv);
    next_step();
    CHECK(event_base_dispatch(base) == 0);
    CHECK(step == 6);

    /* Each connection the server accepted came on a bufferevent of make_bev's: conn_a's one,
     * conn_b's two (the refused response closed the first), the raw client's. */
    CHECK(n_made == 4);
    CHECK(n_chunk_cbs == 2 && chunk_cbs[0] == 1 && chunk_cbs[1] == 2);
    CHECK(headers_seen == 2 && refused_errors == 1 && refused_nulls == 1);
    CHECK(client_closes == 2);
    CHECK(server_closes == 1);
    /* /chunks and /done completed (after their replies went out). Run the loop a little more for
     * /done's: its client may have refused the response before the server saw it out. */
    struct timeval short_tv = {0, 200000};
    for (int i = 0; i < 10 && n_completed < 2; i++) {
        event_base_loopexit(base, &short_tv);
        event_base_dispatch(base);
    }
    CHECK(n_completed == 2);
    CHECK(completed[0] != completed[1]);

    /* conn_a is still connected (kept alive): freeing it closes that socket, told first. */
    evhttp_connection_set_closecb(conn_a, a_closed, &a_closes);
    event_free(guard);
    evhttp_connection_free(conn_a); /* frees client_bev too */
    CHECK(a_closes == 1);
    evhttp_connection_free(conn_b);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
