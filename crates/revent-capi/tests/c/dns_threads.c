/* evdns called from another thread than the one running the loop (evthread_use_pthreads): lookups
 * made, cancelled and answered while the loop runs on its own thread, the callbacks run by the
 * loop; then the resolver freed from the main thread. The DNS responder is an event in the same
 * loop (a UDP socket on 127.0.0.1 answering A for t.test with 192.0.2.5, nothing for drop.test,
 * NXDOMAIN otherwise). */
#include <event2/event.h>
#include <event2/dns.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_t loop_thread;

static void on_query(evutil_socket_t fd, short what, void *arg) {
    unsigned char in[512], out[600];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    char name[256];
    int nl = 0, pos = 12, o, known;
    ssize_t n = recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&from, &fl);
    (void)what;
    (void)arg;
    if (n < 17) return;
    while (pos < n && in[pos]) {
        int len = in[pos];
        if (len > 63 || pos + 1 + len >= n || nl + len + 1 >= (int)sizeof name) return;
        if (nl) name[nl++] = '.';
        memcpy(name + nl, in + pos + 1, len);
        nl += len;
        pos += 1 + len;
    }
    name[nl] = 0;
    if (pos + 5 > n || !strcasecmp(name, "drop.test")) return;
    known = !strcasecmp(name, "t.test");
    int qtype = (in[pos + 1] << 8) | in[pos + 2];
    memcpy(out, in, pos + 5);
    o = pos + 5;
    out[2] = 0x80 | (in[2] & 1);
    out[3] = 0x80 | (known ? 0 : 3);
    out[4] = 0; out[5] = 1; out[6] = 0; out[7] = 0;
    out[8] = out[9] = out[10] = out[11] = 0;
    if (known && qtype == 1) {
        static const unsigned char rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 5};
        out[7] = 1;
        memcpy(out + o, rr, sizeof rr);
        o += sizeof rr;
    }
    sendto(fd, out, o, 0, (struct sockaddr *)&from, fl);
}

struct got {
    int done, result, count;
    unsigned char addr[4];
    pthread_t thread;
};

static void on_resolved(int result, char type, int count, int ttl, void *addresses, void *arg) {
    struct got *g = arg;
    (void)type;
    (void)ttl;
    pthread_mutex_lock(&mu);
    CHECK(!g->done);
    g->result = result;
    g->count = count;
    if (result == DNS_ERR_NONE && count > 0) memcpy(g->addr, addresses, 4);
    g->thread = pthread_self();
    g->done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

struct gai {
    int done, result, n;
};

static void on_gai(int result, struct evutil_addrinfo *res, void *arg) {
    struct gai *g = arg;
    struct evutil_addrinfo *ai;
    pthread_mutex_lock(&mu);
    CHECK(!g->done);
    g->result = result;
    for (ai = res; ai; ai = ai->ai_next) g->n++;
    g->done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (res) evutil_freeaddrinfo(res);
}

static void wait_for(int *flag) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30; /* a hang guard only */
    pthread_mutex_lock(&mu);
    while (!*flag) CHECK(pthread_cond_timedwait(&cv, &mu, &deadline) == 0);
    pthread_mutex_unlock(&mu);
}

static void *run_loop(void *arg) {
    event_base_dispatch(arg);
    return NULL;
}

int main(void) {
    struct event_base *base;
    struct evdns_base *d;
    struct event *responder;
    struct sockaddr_in sin;
    socklen_t l = sizeof sin;
    struct evutil_addrinfo hints;
    struct got a = {0}, nx = {0}, cancelled = {0};
    struct gai g = {0}, num = {0};
    struct evdns_request *r;
    char addr[64];
    int i, fd;

    CHECK(evthread_use_pthreads() == 0);
    base = event_base_new();
    CHECK(base);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sin, &l) == 0);
    responder = event_new(base, fd, EV_READ | EV_PERSIST, on_query, NULL);
    event_add(responder, NULL);
    d = evdns_base_new(base, 0);
    CHECK(d);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sin.sin_port));
    CHECK(evdns_base_nameserver_ip_add(d, addr) == 0);
    CHECK(pthread_create(&loop_thread, NULL, run_loop, base) == 0);

    /* From this thread while the loop runs on the other. */
    for (i = 0; i < 3; i++) {
        memset(&a, 0, sizeof a);
        CHECK(evdns_base_resolve_ipv4(d, "t.test", 0, on_resolved, &a));
        wait_for(&a.done);
        CHECK(a.result == DNS_ERR_NONE && a.count == 1 && !memcmp(a.addr, "\xc0\x00\x02\x05", 4));
        CHECK(pthread_equal(a.thread, loop_thread));
    }
    CHECK(evdns_base_resolve_ipv4(d, "nx.test", 0, on_resolved, &nx));
    wait_for(&nx.done);
    CHECK(nx.result == DNS_ERR_NOTEXIST);
    CHECK(evdns_base_count_nameservers(d) == 1);
    CHECK(evdns_base_set_option(d, "timeout:", "2") == 0);

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    CHECK(evdns_getaddrinfo(d, "127.0.0.1", "80", &hints, on_gai, &num) == NULL);
    CHECK(num.done && num.result == 0 && num.n == 1);
    CHECK(evdns_getaddrinfo(d, "t.test", "80", &hints, on_gai, &g) != NULL);
    wait_for(&g.done);
    CHECK(g.result == 0 && g.n == 1);

    /* A cancel from this thread of a request the responder never answers (with a timeout far
     * away): the callback, on the loop, says DNS_ERR_CANCEL. */
    CHECK(evdns_base_set_option(d, "timeout:", "60") == 0);
    r = evdns_base_resolve_ipv4(d, "drop.test", 0, on_resolved, &cancelled);
    CHECK(r);
    evdns_cancel_request(d, r);
    wait_for(&cancelled.done);
    CHECK(cancelled.result == DNS_ERR_CANCEL && cancelled.count == 0);

    evdns_base_free(d, 0);
    event_base_loopbreak(base);
    CHECK(pthread_join(loop_thread, NULL) == 0);
    event_free(responder);
    close(fd);
    event_base_free(base);
    printf("dns_threads: ok\n");
    return 0;
}
