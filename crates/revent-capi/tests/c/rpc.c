/* event2/rpc.h: an RPC server and a client pool in one program, over evhttp on 127.0.0.1.
 * event_rpcgen.py's output is not at hand, so the two message types are written here the way it
 * writes them (new/free/clear/complete/marshal/unmarshal over evtag). Checked, step by step:
 * a request and its reply with exact fields (through EVRPC_MAKE_REQUEST and EVRPC_MAKE_CTX with
 * evrpc_request_set_cb/get_pool/set_pool), an unknown RPC (a 404 that does not unmarshal:
 * EVRPC_STATUS_ERR_BADPAYLOAD), hooks (an output hook adding a header and meta data, a server
 * input hook that rewrites the request, meta data found again by the same side's later hooks,
 * evrpc_hook_get_connection), EVRPC_TERMINATE on the server (503) and in the client's input hook
 * (EVRPC_STATUS_ERR_HOOKABORTED) and output hook (EVRPC_STATUS_ERR_UNSTARTED), EVRPC_PAUSE with
 * evrpc_resume_request on both sides, evrpc_remove_hook, an RPC registered with
 * evrpc_register_rpc, a connection taken out of the pool (evrpc_pool_remove_connection: the next
 * request goes on the other one), unregistering, and the pool's timeout against an RPC that never
 * answers.
 * Linked -levent (run.sh). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_compat.h>
#include <event2/event_compat.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/rpc.h>
#include <event2/rpc_struct.h>
#include <event2/tag.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include "check.h"

/* ---- the messages, as event_rpcgen.py would generate them ---- */

struct ask {
    ev_uint32_t num;
    char *text;
    ev_uint8_t num_set;
    ev_uint8_t text_set;
};
struct answer {
    ev_uint32_t num;
    char *text;
    ev_uint8_t num_set;
    ev_uint8_t text_set;
};

#define MSG_FUNCS(T)                                                                 \
    static struct T *T##_new(void) { return calloc(1, sizeof(struct T)); }           \
    static struct T *T##_new_with_arg(void *arg) { (void)arg; return T##_new(); }    \
    static void T##_clear(struct T *m) {                                             \
        free(m->text);                                                               \
        m->text = NULL;                                                              \
        m->num_set = m->text_set = 0;                                                \
    }                                                                                \
    static void T##_free(struct T *m) { T##_clear(m); free(m); }                     \
    static int T##_complete(struct T *m) { return m->num_set && m->text_set ? 0 : -1; } \
    static void T##_marshal(struct evbuffer *b, const struct T *m) {                 \
        if (m->num_set) evtag_marshal_int(b, 1, m->num);                             \
        if (m->text_set) evtag_marshal_string(b, 2, m->text);                        \
    }                                                                                \
    static int T##_unmarshal(struct T *m, struct evbuffer *b) {                      \
        ev_uint32_t tag;                                                             \
        while (evbuffer_get_length(b) > 0) {                                         \
            if (evtag_peek(b, &tag) == -1) return -1;                                \
            switch (tag) {                                                           \
            case 1:                                                                  \
                if (m->num_set || evtag_unmarshal_int(b, 1, &m->num) == -1) return -1; \
                m->num_set = 1;                                                      \
                break;                                                               \
            case 2:                                                                  \
                if (m->text_set || evtag_unmarshal_string(b, 2, &m->text) == -1) return -1; \
                m->text_set = 1;                                                     \
                break;                                                               \
            default:                                                                 \
                return -1;                                                           \
            }                                                                        \
        }                                                                            \
        return T##_complete(m);                                                      \
    }                                                                                \
    static void T##_set(struct T *m, ev_uint32_t n, const char *t) {                 \
        T##_clear(m);                                                                \
        m->num = n;                                                                  \
        m->text = strdup(t);                                                         \
        m->num_set = m->text_set = 1;                                                \
    }

MSG_FUNCS(ask)
MSG_FUNCS(answer)

EVRPC_HEADER(Echo, ask, answer)
EVRPC_GENERATE(Echo, ask, answer)
EVRPC_HEADER(Never, ask, answer)
EVRPC_GENERATE(Never, ask, answer)
EVRPC_HEADER(Direct, ask, answer)
EVRPC_GENERATE(Direct, ask, answer)

/* The layout user code reads through the macros. */
_Static_assert(offsetof(struct evrpc_req__Echo, request) == 8, "request");
_Static_assert(offsetof(struct evrpc_req__Echo, http_req) == 32, "http_req");
_Static_assert(offsetof(struct evrpc_status, http_req) == 8, "status");
_Static_assert(sizeof(struct evrpc) == 120, "struct evrpc");
_Static_assert(offsetof(struct evrpc, base) == 112, "evrpc.base");

/* ---- state ---- */

static struct event_base *base;
static struct evhttp *http;
static struct evrpc_base *rpcs;
static struct evrpc_pool *pool;
static struct evhttp_connection *conn, *conn2; /* the pool's first and (step 11) second */
static struct evhttp_connection *used_conn;     /* the connection step 11's request went on */
static int step;
static struct ask *q;
static struct answer *a;

/* hook behaviour, per step */
static int server_in_mode;  /* 0 pass, 1 rewrite, 2 terminate, 3 pause */
static int client_out_mode; /* 0 pass, 1 header+meta, 2 terminate, 3 pause */
static int client_in_mode;  /* 0 pass, 1 check meta, 2 terminate */
static int server_out_check;
static void *server_in_hook, *server_out_hook, *client_out_hook, *client_in_hook;
static void *paused_ctx;
static void *paused_base;
static struct evrpc_req__Never *never_req;
static int hook_runs;

static void next(void);

/* ---- the server ---- */

static void echo_cb(EVRPC_STRUCT(Echo) *rpc, void *arg) {
    CHECK(arg == &step);
    struct ask *in = rpc->request;
    struct answer *out = rpc->reply;
    CHECK(evrpc_get_request((struct evrpc_req_generic *)rpc) == in);
    CHECK(evrpc_get_reply((struct evrpc_req_generic *)rpc) == out);
    CHECK(EVRPC_REQUEST_HTTP(rpc) != NULL);
    CHECK(evhttp_request_get_command(EVRPC_REQUEST_HTTP(rpc)) == EVHTTP_REQ_POST);
    char text[128];
    snprintf(text, sizeof text, "echo:%s", in->text);
    answer_set(out, in->num * 2, text);
    EVRPC_REQUEST_DONE(rpc);
}

static void never_cb(EVRPC_STRUCT(Never) *rpc, void *arg) {
    (void)arg;
    never_req = rpc; /* answered at the very end */
}

static int server_in(void *ctx, struct evhttp_request *req, struct evbuffer *buf, void *arg) {
    CHECK(arg == &server_in_mode);
    hook_runs++;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Hook");
    if (server_in_mode == 1) {
        CHECK(h != NULL && strcmp(h, "client-out") == 0);
        CHECK(evrpc_hook_get_connection(ctx) != NULL);
        /* Rewrites the request. */
        evbuffer_drain(buf, evbuffer_get_length(buf));
        struct ask *other = ask_new();
        ask_set(other, 7, "swapped");
        ask_marshal(buf, other);
        ask_free(other);
        evrpc_hook_add_meta(ctx, "server-in", "S1", 3);
        return EVRPC_CONTINUE;
    }
    if (server_in_mode == 2) return EVRPC_TERMINATE;
    if (server_in_mode == 3) {
        paused_ctx = ctx;
        paused_base = rpcs;
        return EVRPC_PAUSE;
    }
    return EVRPC_CONTINUE;
}

static int server_out(void *ctx, struct evhttp_request *req, struct evbuffer *buf, void *arg) {
    (void)arg;
    (void)req;
    if (server_out_check == 1) {
        void *data;
        size_t len;
        CHECK(evrpc_hook_find_meta(ctx, "server-in", &data, &len) == 0);
        CHECK(len == 3 && memcmp(data, "S1", 3) == 0);
        CHECK(evrpc_hook_find_meta(ctx, "absent", &data, &len) == -1);
        CHECK(evbuffer_get_length(buf) > 0);
        server_out_check++;
    }
    return EVRPC_CONTINUE;
}

/* ---- the client ---- */

static int client_out(void *ctx, struct evhttp_request *req, struct evbuffer *buf, void *arg) {
    (void)arg;
    CHECK(evbuffer_get_length(buf) > 0);
    if (client_out_mode == 1) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Hook", "client-out");
        evrpc_hook_add_meta(ctx, "client-out", "C1", 3);
        CHECK(evrpc_hook_get_connection(ctx) != NULL);
    }
    if (client_out_mode == 2) return EVRPC_TERMINATE;
    if (client_out_mode == 3) {
        paused_ctx = ctx;
        paused_base = pool;
        return EVRPC_PAUSE;
    }
    return EVRPC_CONTINUE;
}

static int client_in(void *ctx, struct evhttp_request *req, struct evbuffer *buf, void *arg) {
    (void)arg;
    (void)buf;
    if (client_in_mode) CHECK(evhttp_request_get_response_code(req) == 200);
    if (client_in_mode == 1) {
        void *data;
        size_t len;
        CHECK(evrpc_hook_find_meta(ctx, "client-out", &data, &len) == 0);
        CHECK(len == 3 && memcmp(data, "C1", 3) == 0);
        client_in_mode = 100; /* seen */
    }
    if (client_in_mode == 2) return EVRPC_TERMINATE;
    return EVRPC_CONTINUE;
}

static void resume_later(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    CHECK(evrpc_resume_request(paused_base, &step, EVRPC_CONTINUE) == -1); /* not paused */
    void *ctx = paused_ctx;
    paused_ctx = NULL;
    CHECK(evrpc_resume_request(paused_base, ctx, EVRPC_CONTINUE) == 0);
}

static void expect(struct evrpc_status *status, int error, int code, ev_uint32_t num, const char *text) {
    CHECK(status->error == error);
    if (code == 0) {
        CHECK(status->http_req == NULL);
    } else {
        CHECK(status->http_req != NULL);
        CHECK(evhttp_request_get_response_code(status->http_req) == code);
    }
    if (text) {
        CHECK(a->num_set && a->num == num);
        CHECK(a->text_set && strcmp(a->text, text) == 0);
    } else {
        CHECK(!a->num_set && !a->text_set); /* cleared */
    }
}

static void done_cb(struct evrpc_status *status, struct ask *rq, struct answer *rp, void *arg) {
    CHECK(rq == q && rp == a && arg == &step);
    switch (step) {
    case 1: {
        expect(status, EVRPC_STATUS_ERR_NONE, 200, 42, "echo:hi");
        const char *ct = evhttp_find_header(evhttp_request_get_input_headers(status->http_req),
                                            "Content-Type");
        CHECK(ct && strcmp(ct, "application/octet-stream") == 0);
        break;
    }
    case 2: expect(status, EVRPC_STATUS_ERR_BADPAYLOAD, 404, 0, NULL); break;
    case 3:
        expect(status, EVRPC_STATUS_ERR_NONE, 200, 14, "echo:swapped");
        CHECK(client_in_mode == 100 && server_out_check == 2);
        break;
    case 4: expect(status, EVRPC_STATUS_ERR_BADPAYLOAD, 503, 0, NULL); break;
    case 5: expect(status, EVRPC_STATUS_ERR_HOOKABORTED, 200, 0, NULL); break;
    case 6: expect(status, EVRPC_STATUS_ERR_UNSTARTED, 0, 0, NULL); break;
    case 7: expect(status, EVRPC_STATUS_ERR_NONE, 200, 10, "echo:paused-client"); break;
    case 8: expect(status, EVRPC_STATUS_ERR_NONE, 200, 12, "echo:paused-server"); break;
    case 10: expect(status, EVRPC_STATUS_ERR_NONE, 200, 2, "echo:direct"); break;
    case 11:
        CHECK(used_conn == conn2); /* not the connection taken out */
        expect(status, EVRPC_STATUS_ERR_NONE, 200, 22, "echo:second");
        break;
    case 12: expect(status, EVRPC_STATUS_ERR_BADPAYLOAD, 404, 0, NULL); break;
    case 13: expect(status, EVRPC_STATUS_ERR_TIMEOUT, 0, 0, NULL); break;
    default: CHECK(!"unexpected callback");
    }
    next();
}

static int ctx_cb_runs;

static void ctx_cb(struct evrpc_status *status, void *rq, void *rp, void *arg) {
    CHECK(step == 9 && arg == &ctx_cb_runs && rq == q && rp == a);
    ctx_cb_runs++;
    expect(status, EVRPC_STATUS_ERR_NONE, 200, 18, "echo:ctx");
    next();
}

/* Step 11: which connection the request goes out on. */
static int which_conn(void *ctx, struct evhttp_request *req, struct evbuffer *buf, void *arg) {
    (void)req; (void)buf; (void)arg;
    used_conn = evrpc_hook_get_connection(ctx);
    return EVRPC_CONTINUE;
}

static void send_echo(ev_uint32_t n, const char *text) {
    ask_set(q, n, text);
    answer_clear(a);
    CHECK(EVRPC_MAKE_REQUEST(Echo, pool, q, a, done_cb, &step) == 0);
}

static void next(void) {
    step++;
    server_in_mode = client_out_mode = client_in_mode = 0;
    switch (step) {
    case 1: send_echo(21, "hi"); break;
    case 2: {
        ask_set(q, 1, "x");
        answer_clear(a);
        struct evrpc_request_wrapper *ctx = EVRPC_MAKE_CTX(Nope, ask, answer, pool, q, a, done_cb, &step);
        CHECK(ctx != NULL);
        CHECK(evrpc_make_request(ctx) == 0);
        break;
    }
    case 3:
        server_in_hook = evrpc_add_hook(rpcs, EVRPC_INPUT, server_in, &server_in_mode);
        server_out_hook = evrpc_add_hook(rpcs, EVRPC_OUTPUT, server_out, NULL);
        client_out_hook = evrpc_add_hook(pool, EVRPC_OUTPUT, client_out, NULL);
        client_in_hook = evrpc_add_hook(pool, EVRPC_INPUT, client_in, NULL);
        CHECK(server_in_hook && server_out_hook && client_out_hook && client_in_hook);
        server_in_mode = 1;
        client_out_mode = 1;
        client_in_mode = 1;
        server_out_check = 1;
        send_echo(99, "original");
        break;
    case 4: server_in_mode = 2; send_echo(1, "x"); break;
    case 5: client_in_mode = 2; send_echo(1, "x"); break;
    case 6: client_out_mode = 2; send_echo(1, "x"); break;
    case 7:
        client_out_mode = 3;
        send_echo(5, "paused-client");
        CHECK(paused_ctx != NULL);
        event_base_once(base, -1, EV_TIMEOUT, resume_later, NULL, NULL);
        break;
    case 8: {
        int before = hook_runs;
        server_in_mode = 3;
        send_echo(6, "paused-server");
        CHECK(hook_runs == before); /* not before the loop runs */
        break;
    }
    case 9: {
        /* All hooks go; removing one twice says so. */
        server_out_check = 0;
        CHECK(evrpc_remove_hook(rpcs, EVRPC_INPUT, server_in_hook) == 1);
        CHECK(evrpc_remove_hook(rpcs, EVRPC_INPUT, server_in_hook) == 0);
        CHECK(evrpc_remove_hook(rpcs, EVRPC_OUTPUT, server_out_hook) == 1);
        CHECK(evrpc_remove_hook(pool, EVRPC_OUTPUT, client_out_hook) == 1);
        CHECK(evrpc_remove_hook(pool, EVRPC_INPUT, client_in_hook) == 1);
        ask_set(q, 9, "ctx");
        answer_clear(a);
        struct evrpc_request_wrapper *ctx = EVRPC_MAKE_CTX(Echo, ask, answer, NULL, q, a, done_cb, &step);
        CHECK(ctx != NULL);
        CHECK(evrpc_request_get_pool(ctx) == NULL);
        evrpc_request_set_pool(ctx, pool);
        CHECK(evrpc_request_get_pool(ctx) == pool);
        evrpc_request_set_cb(ctx, ctx_cb, &ctx_cb_runs);
        CHECK(evrpc_make_request(ctx) == 0);
        break;
    }
    case 10:
        ask_set(q, 1, "direct");
        answer_clear(a);
        CHECK(EVRPC_MAKE_REQUEST(Direct, pool, q, a, done_cb, &step) == 0);
        break;
    case 11: {
        /* A second connection in, the first out: the request goes on the second. */
        evrpc_pool_add_connection(pool, conn2);
        evrpc_pool_remove_connection(pool, conn);
        void *hook = evrpc_add_hook(pool, EVRPC_OUTPUT, which_conn, NULL);
        CHECK(hook != NULL);
        send_echo(11, "second");
        CHECK(evrpc_remove_hook(pool, EVRPC_OUTPUT, hook) == 1);
        break;
    }
    case 12:
        CHECK(EVRPC_UNREGISTER(rpcs, Echo) == 0);
        CHECK(EVRPC_UNREGISTER(rpcs, Echo) == -1);
        send_echo(1, "gone");
        break;
    case 13:
        evrpc_pool_set_timeout(pool, 1);
        ask_set(q, 1, "never");
        answer_clear(a);
        CHECK(EVRPC_MAKE_REQUEST(Never, pool, q, a, done_cb, &step) == 0);
        break;
    case 14:
        event_base_loopexit(base, NULL);
        break;
    }
}

static void hang_guard(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    fprintf(stderr, "hang guard at step %d\n", step);
    exit(1);
}

/* In step 8 the server's input hook pauses: resumed from the loop once it has. */
static void poll_pause(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    if (step == 8 && paused_ctx && paused_base == rpcs) resume_later(-1, 0, NULL);
}

int main(void) {
    evtag_init();
    /* event_init's current base: libevent's pool timers use it when the pool has none (as in
     * libevent's own tests: a pool made with NULL, connections from evhttp_connection_new). */
    base = event_init();
    CHECK(base != NULL);
    http = evhttp_new(base);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    CHECK(bound != NULL);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    CHECK(getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len) == 0);
    ev_uint16_t port = ntohs(sin.sin_port);

    rpcs = evrpc_init(http);
    CHECK(rpcs != NULL);
    CHECK(EVRPC_REGISTER(rpcs, Echo, ask, answer, echo_cb, &step) == 0);
    CHECK(EVRPC_REGISTER(rpcs, Never, ask, answer, never_cb, NULL) == 0);
    /* Direct: a struct evrpc filled by hand (the library frees it with the base). */
    struct evrpc *direct = calloc(1, sizeof *direct);
    direct->uri = strdup("Direct");
    direct->request_new = (void *(*)(void *))ask_new_with_arg;
    direct->request_free = (void (*)(void *))ask_free;
    direct->request_unmarshal = (int (*)(void *, struct evbuffer *))ask_unmarshal;
    direct->reply_new = (void *(*)(void *))answer_new_with_arg;
    direct->reply_free = (void (*)(void *))answer_free;
    direct->reply_complete = (int (*)(void *))answer_complete;
    direct->reply_marshal = (void (*)(struct evbuffer *, void *))answer_marshal;
    CHECK(evrpc_register_rpc(rpcs, direct, (void (*)(struct evrpc_req_generic *, void *))echo_cb, &step) == 0);
    CHECK(direct->base == rpcs);

    pool = evrpc_pool_new(NULL);
    CHECK(pool != NULL);

    conn = evhttp_connection_new("127.0.0.1", port);
    conn2 = evhttp_connection_new("127.0.0.1", port);
    CHECK(conn != NULL && conn2 != NULL);
    evrpc_pool_add_connection(pool, conn);
    q = ask_new();
    a = answer_new();

    struct event *guard = evtimer_new(base, hang_guard, NULL);
    struct timeval tv = {30, 0};
    evtimer_add(guard, &tv);
    struct event *poller = event_new(base, -1, EV_PERSIST, poll_pause, NULL);
    struct timeval ptv = {0, 10000};
    event_add(poller, &ptv);
    next();
    CHECK(event_base_dispatch(base) == 0);
    CHECK(step == 14 && ctx_cb_runs == 1 && used_conn == conn2);
    CHECK(never_req != NULL);
    /* Answer the RPC that never answered: its client is gone, the reply goes nowhere. */
    answer_set(never_req->reply, 0, "late");
    EVRPC_REQUEST_DONE(never_req);

    event_free(poller);
    event_free(guard);
    ask_free(q);
    answer_free(a);
    evrpc_pool_free(pool);       /* frees its connection (conn2) */
    evhttp_connection_free(conn); /* taken out of the pool: ours */
    evrpc_free(rpcs);      /* frees Direct too */
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
