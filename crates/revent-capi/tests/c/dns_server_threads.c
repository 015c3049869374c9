/* evdns's server functions called from another thread than the one running the loop
 * (evthread_use_pthreads): the port's callback, on the loop's thread, hands each request to the
 * main thread, which reads it, adds records, answers or drops it while the loop runs; at the end
 * the main thread closes the port with a request pending, answers that request, and the port's
 * socket closes. A raw UDP client checks each answer (or its absence: a dropped query's answer
 * never comes before the next one's). */
#include <event2/event.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_t loop_thread, cb_thread;
static struct evdns_server_request *handed;

static void on_request(struct evdns_server_request *req, void *arg) {
    CHECK(arg == &mu);
    pthread_mutex_lock(&mu);
    CHECK(!handed);
    handed = req;
    cb_thread = pthread_self();
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* The next request the callback handed over. */
static struct evdns_server_request *take(void) {
    struct evdns_server_request *req;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30; /* a hang guard only */
    pthread_mutex_lock(&mu);
    while (!handed) CHECK(pthread_cond_timedwait(&cv, &mu, &deadline) == 0);
    req = handed;
    handed = NULL;
    CHECK(pthread_equal(cb_thread, loop_thread));
    pthread_mutex_unlock(&mu);
    return req;
}

static void *run_loop(void *arg) {
    CHECK(event_base_dispatch(arg) == 0);
    return NULL;
}

static void on_idle(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
}

static int query(unsigned char *p, unsigned id, const char *label) {
    int n = 12, l = (int)strlen(label);
    memset(p, 0, 12);
    p[0] = id >> 8; p[1] = id & 0xff;
    p[2] = 0x01; /* RD */
    p[5] = 1;
    p[n++] = (unsigned char)l;
    memcpy(p + n, label, l);
    n += l;
    memcpy(p + n, "\4test\0\0\1\0\1", 10);
    return n + 10;
}

int main(void) {
    struct event_base *base;
    struct evdns_server_port *port;
    struct event *idle;
    struct evdns_server_request *req;
    struct sockaddr_in sin, me;
    struct sockaddr_storage ss;
    struct timeval tv = {3600, 0}, guard = {30, 0};
    socklen_t l = sizeof sin;
    unsigned char q[64], r[512];
    char label[16], name[32];
    int i, n, fd, cl;

    CHECK(evthread_use_pthreads() == 0);
    base = event_base_new();
    CHECK(base);
    /* Keeps the loop running whatever the port does. */
    idle = event_new(base, -1, EV_PERSIST, on_idle, NULL);
    CHECK(idle && event_add(idle, &tv) == 0);

    fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sin, &l) == 0);
    CHECK(evutil_make_socket_nonblocking(fd) == 0);
    port = evdns_add_server_port_with_base(base, fd, 0, on_request, &mu);
    CHECK(port);

    cl = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(cl >= 0);
    CHECK(connect(cl, (struct sockaddr *)&sin, sizeof sin) == 0);
    l = sizeof me;
    CHECK(getsockname(cl, (struct sockaddr *)&me, &l) == 0);
    CHECK(setsockopt(cl, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard) == 0); /* hang guard */
    CHECK(pthread_create(&loop_thread, NULL, run_loop, base) == 0);

    /* Even queries answered from this thread (AA, an A record naming the query), odd ones
     * dropped from this thread: the next answer to arrive is the next even one's. */
    for (i = 0; i < 20; i++) {
        snprintf(label, sizeof label, "n%d", i);
        n = query(q, 0x100 + i, label);
        CHECK(send(cl, q, n, 0) == n);
        req = take();
        snprintf(name, sizeof name, "n%d.test", i);
        CHECK(req->nquestions == 1 && !strcmp(req->questions[0]->name, name));
        CHECK(req->questions[0]->type == EVDNS_TYPE_A && req->flags == 0x0100);
        CHECK(evdns_server_request_get_requesting_addr(req, (struct sockaddr *)&ss, sizeof ss)
              == (int)sizeof(struct sockaddr_in));
        CHECK(((struct sockaddr_in *)&ss)->sin_port == me.sin_port);
        if (i % 2) {
            CHECK(evdns_server_request_drop(req) == 0);
            continue;
        }
        {
            unsigned char a[4] = {192, 0, 2, (unsigned char)i};
            evdns_server_request_set_flags(req, EVDNS_FLAGS_AA);
            CHECK(evdns_server_request_add_a_reply(req, name, 1, a, 60) == 0);
            CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
        }
        n = (int)recv(cl, r, sizeof r, 0);
        CHECK(n > 12);
        CHECK(r[0] == 0x01 && r[1] == 0x00 + i); /* this query's id */
        CHECK(r[2] == 0x85 && r[3] == 0x00 && r[7] == 1);
        CHECK(r[n - 4] == 192 && r[n - 1] == i);
    }

    /* Closed from this thread with a request pending: it is still answered, then the socket
     * closes. */
    n = query(q, 0x7000, "last");
    CHECK(send(cl, q, n, 0) == n);
    req = take();
    evdns_close_server_port(port);
    CHECK(evdns_server_request_respond(req, DNS_ERR_NOTEXIST) == 0);
    n = (int)recv(cl, r, sizeof r, 0);
    CHECK(n > 12 && r[0] == 0x70 && r[1] == 0 && r[2] == 0x81 && r[3] == 0x03);
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);

    event_base_loopbreak(base);
    CHECK(pthread_join(loop_thread, NULL) == 0);
    event_free(idle);
    close(cl);
    event_base_free(base);
    printf("dns_server_threads: ok\n");
    return 0;
}
