/* evdns from C (event2/dns.h, dns_compat.h), against a tiny DNS responder that runs in the test's
 * own loop: a UDP socket on 127.0.0.1 answering fixed A/AAAA/PTR records (it parses just enough of
 * each query to echo its id and question), and a second socket that never answers.
 * Covered: A, AAAA, PTR (v4 and v6) with their callback arguments, NXDOMAIN and no-data, search
 * domains and DNS_QUERY_NO_SEARCH, cancel (DNS_ERR_CANCEL from the loop), timeout, failover from a
 * silent nameserver, suspend/resume, nameserver listing, options, evdns_getaddrinfo (numeric,
 * hosts file, through the server, NXDOMAIN, cancel), bufferevent_socket_connect_hostname to a
 * local listener by a name the responder answers (and to one it does not), the 1.x global API,
 * evdns_base_free with pending requests. Linked -levent_core -levent_extra by run.sh, so that the
 * evdns_base (extra) sits on an event_base made by core. */
#include <event2/event.h>
#include <event2/event_compat.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/dns_compat.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

static struct event_base *base;
static int good_port, silent_port;
static int queries;

/* ---- the responder ---- */

static int put_name(unsigned char *p, const char *name) {
    int n = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        int len = dot ? (int)(dot - name) : (int)strlen(name);
        p[n++] = (unsigned char)len;
        memcpy(p + n, name, len);
        n += len;
        name += len;
        if (*name == '.') name++;
    }
    p[n++] = 0;
    return n;
}

static int answer(const char *q, int qtype, unsigned char *out, int *rcode) {
    /* Answers for (name, type): fills rdata records into out (each: type, rdlen, rdata), returns
     * how many; sets rcode 3 for names it does not know. */
    int n = 0, at = 0;
#define REC(t, data, len) do { out[at] = (t); out[at + 1] = (len); memcpy(out + at + 2, data, len); at += 2 + (len); n++; } while (0)
    *rcode = 0;
    if (!strcasecmp(q, "host.test")) {
        if (qtype == 1) {
            REC(1, "\xc0\x00\x02\x01", 4);
            REC(1, "\xc0\x00\x02\x02", 4);
        } else if (qtype == 28) {
            REC(28, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
        }
    } else if (!strcasecmp(q, "short.test")) {
        if (qtype == 1) REC(1, "\xc0\x00\x02\x09", 4);
    } else if (!strcasecmp(q, "local.test")) {
        if (qtype == 1) REC(1, "\x7f\x00\x00\x01", 4);
    } else if (!strcasecmp(q, "1.2.0.192.in-addr.arpa") && qtype == 12) {
        unsigned char nm[64];
        int l = put_name(nm, "host.test");
        REC(12, nm, l);
    } else if (!strcasecmp(q, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
               && qtype == 12) {
        unsigned char nm[64];
        int l = put_name(nm, "six.test");
        REC(12, nm, l);
    } else {
        *rcode = 3;
    }
#undef REC
    return n;
}

static void on_query(evutil_socket_t fd, short what, void *arg) {
    unsigned char in[512], out[1024], recs[512];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    char name[256];
    int nl = 0, pos = 12, rcode, count, i, at, o;
    ssize_t n;
    (void)what;
    (void)arg;
    n = recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&from, &fl);
    if (n < 17) return;
    queries++;
    while (pos < n && in[pos]) {
        int len = in[pos];
        if (len > 63 || pos + 1 + len >= n || nl + len + 1 >= (int)sizeof name) return;
        if (nl) name[nl++] = '.';
        memcpy(name + nl, in + pos + 1, len);
        nl += len;
        pos += 1 + len;
    }
    name[nl] = 0;
    if (pos + 5 > n) return;
    int qtype = (in[pos + 1] << 8) | in[pos + 2];
    int qend = pos + 5;
    count = answer(name, qtype, recs, &rcode);
    memcpy(out, in, qend); /* id and question, exactly as sent (0x20 case kept) */
    out[2] = 0x80 | (in[2] & 0x01);
    out[3] = 0x80 | rcode;
    out[4] = 0; out[5] = 1;
    out[6] = 0; out[7] = (unsigned char)count;
    out[8] = out[9] = out[10] = out[11] = 0;
    o = qend;
    for (i = 0, at = 0; i < count; i++) {
        int t = recs[at], len = recs[at + 1];
        out[o++] = 0xc0; out[o++] = 12;
        out[o++] = 0; out[o++] = (unsigned char)t;
        out[o++] = 0; out[o++] = 1;
        out[o++] = 0; out[o++] = 0; out[o++] = 0x01; out[o++] = 0x2c; /* TTL 300 */
        out[o++] = 0; out[o++] = (unsigned char)len;
        memcpy(out + o, recs + at + 2, len);
        o += len;
        at += 2 + len;
    }
    sendto(fd, out, o, 0, (struct sockaddr *)&from, fl);
}

static int udp_socket(int *port) {
    struct sockaddr_in sin;
    socklen_t l = sizeof sin;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sin, &l) == 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static struct evdns_base *dns_with(int port) {
    char addr[64];
    struct evdns_base *d = evdns_base_new(base, 0);
    CHECK(d);
    CHECK(evdns_base_count_nameservers(d) == 0);
    if (port) {
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        CHECK(evdns_base_nameserver_ip_add(d, addr) == 0);
    }
    return d;
}

/* A hang guard only: reaching it means a callback never came. */
static struct event *watchdog;
static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    fprintf(stderr, "dns: a callback never came\n");
    exit(1);
}

static void run_until(int *flag) {
    struct timeval guard = {30, 0};
    evtimer_add(watchdog, &guard);
    while (!*flag) CHECK(event_base_loop(base, EVLOOP_ONCE) == 0);
    evtimer_del(watchdog);
}

/* ---- resolve callbacks ---- */

struct got {
    int done, result, count, ttl;
    char type;
    unsigned char addrs[4][16];
    char ptr[256];
};

static void on_resolved(int result, char type, int count, int ttl, void *addresses, void *arg) {
    struct got *g = arg;
    int i;
    CHECK(!g->done);
    g->done = 1;
    g->result = result;
    g->type = type;
    g->count = count;
    g->ttl = ttl;
    if (result != DNS_ERR_NONE) {
        CHECK(count == 0 || addresses == NULL);
        return;
    }
    if (type == DNS_IPv4_A)
        for (i = 0; i < count && i < 4; i++) memcpy(g->addrs[i], (char *)addresses + 4 * i, 4);
    else if (type == DNS_IPv6_AAAA)
        for (i = 0; i < count && i < 4; i++) memcpy(g->addrs[i], (char *)addresses + 16 * i, 16);
    else if (type == DNS_PTR)
        snprintf(g->ptr, sizeof g->ptr, "%s", *(char **)addresses);
}

static void test_records(struct evdns_base *d) {
    struct got a = {0}, aaaa = {0}, ptr4 = {0}, ptr6 = {0}, nx = {0}, nodata = {0};
    struct in_addr in4;
    struct in6_addr in6;
    CHECK(evdns_base_resolve_ipv4(d, "host.test", 0, on_resolved, &a));
    CHECK(evdns_base_resolve_ipv6(d, "host.test", 0, on_resolved, &aaaa));
    inet_pton(AF_INET, "192.0.2.1", &in4);
    inet_pton(AF_INET6, "2001:db8::1", &in6);
    CHECK(evdns_base_resolve_reverse(d, &in4, 0, on_resolved, &ptr4));
    CHECK(evdns_base_resolve_reverse_ipv6(d, &in6, 0, on_resolved, &ptr6));
    CHECK(evdns_base_resolve_ipv4(d, "nx.test", 0, on_resolved, &nx));
    CHECK(evdns_base_resolve_ipv6(d, "local.test", 0, on_resolved, &nodata));
    CHECK(!a.done && !nx.done); /* from the loop only */
    run_until(&a.done);
    run_until(&aaaa.done);
    run_until(&ptr4.done);
    run_until(&ptr6.done);
    run_until(&nx.done);
    run_until(&nodata.done);
    CHECK(a.result == DNS_ERR_NONE && a.type == DNS_IPv4_A && a.count == 2 && a.ttl == 300);
    CHECK(!memcmp(a.addrs[0], "\xc0\x00\x02\x01", 4) && !memcmp(a.addrs[1], "\xc0\x00\x02\x02", 4));
    CHECK(aaaa.result == DNS_ERR_NONE && aaaa.type == DNS_IPv6_AAAA && aaaa.count == 1);
    CHECK(!memcmp(aaaa.addrs[0], &in6, 16));
    CHECK(ptr4.result == DNS_ERR_NONE && ptr4.type == DNS_PTR && ptr4.count == 1);
    CHECK(!strcmp(ptr4.ptr, "host.test"));
    CHECK(ptr6.result == DNS_ERR_NONE && !strcmp(ptr6.ptr, "six.test"));
    CHECK(nx.result == DNS_ERR_NOTEXIST && nx.count == 0);
    CHECK(nodata.result != DNS_ERR_NONE && nodata.count == 0);
}

static void test_search(struct evdns_base *d) {
    struct got s = {0}, plain = {0};
    evdns_base_search_add(d, "test");
    evdns_base_search_ndots_set(d, 1);
    CHECK(evdns_base_resolve_ipv4(d, "short", 0, on_resolved, &s));
    CHECK(evdns_base_resolve_ipv4(d, "short", DNS_QUERY_NO_SEARCH, on_resolved, &plain));
    run_until(&s.done);
    run_until(&plain.done);
    CHECK(s.result == DNS_ERR_NONE && s.count == 1 && !memcmp(s.addrs[0], "\xc0\x00\x02\x09", 4));
    CHECK(plain.result == DNS_ERR_NOTEXIST);
    evdns_base_search_clear(d);
    memset(&s, 0, sizeof s);
    CHECK(evdns_base_resolve_ipv4(d, "short", 0, on_resolved, &s));
    run_until(&s.done);
    CHECK(s.result == DNS_ERR_NOTEXIST);
}

/* The cancelled callback may itself make a request: the library is re-entered from it. */
static struct evdns_base *reenter_dns;
static struct got reentered;
static void on_cancelled(int result, char type, int count, int ttl, void *addresses, void *arg) {
    on_resolved(result, type, count, ttl, addresses, arg);
    CHECK(evdns_base_resolve_ipv4(reenter_dns, "host.test", 0, on_resolved, &reentered));
}

static void test_cancel(struct evdns_base *d) {
    struct got c = {0};
    struct evdns_request *r = evdns_base_resolve_ipv4(d, "host.test", 0, on_cancelled, &c);
    CHECK(r);
    reenter_dns = d;
    evdns_cancel_request(d, r);
    CHECK(!c.done); /* reported from the loop */
    run_until(&c.done);
    CHECK(c.result == DNS_ERR_CANCEL && c.count == 0);
    run_until(&reentered.done);
    CHECK(reentered.result == DNS_ERR_NONE && reentered.count == 2);
}

static void test_timeout_and_failover(void) {
    struct got t = {0}, f = {0};
    char addr[64];
    struct evdns_base *d = dns_with(silent_port);
    CHECK(evdns_base_set_option(d, "timeout:", "0.3") == 0);
    CHECK(evdns_base_set_option(d, "attempts", "1") == 0);
    CHECK(evdns_base_set_option(d, "ndots:", "lots") == -1);
    CHECK(evdns_base_set_option(d, "randomize-case:", "0") == 0);
    CHECK(evdns_base_set_option(d, "so-rcvbuf", "65536") == 0);
    CHECK(evdns_base_set_option(d, "so-sndbuf", "65536") == 0);
    CHECK(evdns_base_set_option(d, "bind-to", "127.0.0.1") == 0);
    CHECK(evdns_base_set_option(d, "getaddrinfo-allow-skew:", "1.5") == 0);
    CHECK(evdns_base_set_option(d, "no-such-option", "1") == 0);
    CHECK(evdns_base_resolve_ipv4(d, "host.test", 0, on_resolved, &t));
    run_until(&t.done);
    CHECK(t.result == DNS_ERR_TIMEOUT && t.count == 0);
    /* A second nameserver that answers: the request goes there when the first is silent. */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", good_port);
    CHECK(evdns_base_nameserver_ip_add(d, addr) == 0);
    CHECK(evdns_base_set_option(d, "attempts:", "4") == 0);
    CHECK(evdns_base_count_nameservers(d) == 2);
    CHECK(evdns_base_resolve_ipv4(d, "host.test", 0, on_resolved, &f));
    run_until(&f.done);
    CHECK(f.result == DNS_ERR_NONE && f.count == 2);
    evdns_base_free(d, 0);
}

static void test_nameservers(void) {
    struct sockaddr_storage ss;
    struct sockaddr_in sin;
    struct evdns_base *d = dns_with(good_port);
    char addr[64];
    int before, i, v6 = 0;
    CHECK(evdns_base_get_nameserver_addr(d, 0, (struct sockaddr *)&ss, sizeof ss) ==
          (int)sizeof(struct sockaddr_in));
    CHECK(ss.ss_family == AF_INET && ntohs(((struct sockaddr_in *)&ss)->sin_port) == good_port);
    CHECK(evdns_base_get_nameserver_addr(d, 1, (struct sockaddr *)&ss, sizeof ss) == -1);
    CHECK(evdns_base_get_nameserver_addr(d, 0, (struct sockaddr *)&ss, 4) >= (int)sizeof sin);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", good_port);
    before = evdns_base_count_nameservers(d);
    evdns_base_nameserver_ip_add(d, addr); /* the same again: not a second one */
    CHECK(evdns_base_count_nameservers(d) == before);
    CHECK(evdns_base_nameserver_ip_add(d, "not an address") != 0);
    CHECK(evdns_base_nameserver_ip_add(d, "[::1]:5353") == 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(5354);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(evdns_base_nameserver_sockaddr_add(d, (struct sockaddr *)&sin, sizeof sin, 0) == 0);
    CHECK(evdns_base_nameserver_add(d, htonl(0x7f000002)) == 0);
    CHECK(evdns_base_count_nameservers(d) == 4);
    /* (libevent and revent list them in different orders: count what is there.) */
    for (i = 0; i < 4; i++) {
        int n = evdns_base_get_nameserver_addr(d, i, (struct sockaddr *)&ss, sizeof ss);
        if (ss.ss_family == AF_INET6) {
            CHECK(n == (int)sizeof(struct sockaddr_in6));
            CHECK(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == 5353);
            v6++;
        } else {
            CHECK(n == (int)sizeof(struct sockaddr_in) && ss.ss_family == AF_INET);
        }
    }
    CHECK(v6 == 1);
    evdns_base_free(d, 0);
}

static void test_suspend_resume(void) {
    struct got g = {0};
    char addr[64];
    struct evdns_base *d = dns_with(silent_port);
    CHECK(evdns_base_resolve_ipv4(d, "host.test", 0, on_resolved, &g));
    CHECK(evdns_base_clear_nameservers_and_suspend(d) == 0);
    CHECK(evdns_base_count_nameservers(d) == 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK(!g.done);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", good_port);
    CHECK(evdns_base_nameserver_ip_add(d, addr) == 0);
    CHECK(evdns_base_resume(d) == 0);
    run_until(&g.done);
    CHECK(g.result == DNS_ERR_NONE && g.count == 2);
    evdns_base_free(d, 0);
}

/* ---- getaddrinfo ---- */

struct gai {
    int done, result, n4, n6, port, n;
};

static void on_gai(int result, struct evutil_addrinfo *res, void *arg) {
    struct gai *g = arg;
    struct evutil_addrinfo *ai;
    CHECK(!g->done);
    g->done = 1;
    g->result = result;
    for (ai = res; ai; ai = ai->ai_next) {
        g->n++;
        if (ai->ai_family == AF_INET) {
            g->n4++;
            g->port = ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port);
        } else if (ai->ai_family == AF_INET6) {
            g->n6++;
        }
    }
    if (res) evutil_freeaddrinfo(res);
}

static void test_getaddrinfo(struct evdns_base *d) {
    struct evutil_addrinfo hints;
    struct gai num = {0}, hosts = {0}, v4 = {0}, any = {0}, nx = {0}, cancelled = {0};
    struct evdns_getaddrinfo_request *r;
    char path[] = "/tmp/revent-dns-hosts-XXXXXX";
    int fd;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* Numeric: answered inside the call, which returns NULL. */
    CHECK(evdns_getaddrinfo(d, "127.0.0.1", "8080", &hints, on_gai, &num) == NULL);
    CHECK(num.done && num.result == 0 && num.n == 1 && num.n4 == 1 && num.port == 8080);
    /* A hosts file. */
    fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "192.0.2.77 fromhosts.test\n", 26) == 26);
    close(fd);
    CHECK(evdns_base_load_hosts(d, path) == 0);
    unlink(path);
    CHECK(evdns_getaddrinfo(d, "fromhosts.test", "80", &hints, on_gai, &hosts) == NULL);
    CHECK(hosts.done && hosts.result == 0 && hosts.n4 == 1 && hosts.port == 80);
    /* Through the server. */
    hints.ai_family = AF_INET;
    CHECK(evdns_getaddrinfo(d, "host.test", "443", &hints, on_gai, &v4) != NULL);
    CHECK(!v4.done);
    run_until(&v4.done);
    CHECK(v4.result == 0 && v4.n4 == 2 && v4.n6 == 0 && v4.port == 443);
    hints.ai_family = AF_UNSPEC;
    CHECK(evdns_getaddrinfo(d, "host.test", "443", &hints, on_gai, &any) != NULL);
    run_until(&any.done);
    CHECK(any.result == 0 && any.n4 == 2 && any.n6 == 1);
    hints.ai_family = AF_INET;
    CHECK(evdns_getaddrinfo(d, "nx.test", "80", &hints, on_gai, &nx) != NULL);
    run_until(&nx.done);
    CHECK(nx.result == EVUTIL_EAI_NONAME && nx.n == 0);
    /* No host: the loopback, or with AI_PASSIVE the any address; answered at once. */
    {
        struct gai lo = {0}, passive = {0};
        hints.ai_family = AF_INET;
        CHECK(evdns_getaddrinfo(d, NULL, "7", &hints, on_gai, &lo) == NULL);
        CHECK(lo.done && lo.result == 0 && lo.n4 == 1 && lo.port == 7);
        hints.ai_flags = EVUTIL_AI_PASSIVE;
        CHECK(evdns_getaddrinfo(d, NULL, "7", &hints, on_gai, &passive) == NULL);
        CHECK(passive.done && passive.result == 0 && passive.n4 == 1);
        hints.ai_flags = 0;
    }
    /* The hosts entries are forgotten: the name now goes to the server, which does not know it. */
    evdns_base_clear_host_addresses(d);
    {
        struct gai gone = {0};
        CHECK(evdns_getaddrinfo(d, "fromhosts.test", "80", &hints, on_gai, &gone) != NULL);
        run_until(&gone.done);
        CHECK(gone.result == EVUTIL_EAI_NONAME);
    }
    /* Cancelled: the callback runs from the loop with EVUTIL_EAI_CANCEL. */
    r = evdns_getaddrinfo(d, "host.test", "80", &hints, on_gai, &cancelled);
    CHECK(r);
    evdns_getaddrinfo_cancel(r);
    run_until(&cancelled.done);
    CHECK(cancelled.result == EVUTIL_EAI_CANCEL && cancelled.n == 0);
}

/* ---- bufferevent_socket_connect_hostname ---- */

static int accepted;
static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg) {
    (void)l; (void)sa; (void)len; (void)arg;
    accepted++;
    close(fd);
}

struct conn {
    int done;
    short what;
};

static void on_bev_event(struct bufferevent *bev, short what, void *arg) {
    struct conn *c = arg;
    (void)bev;
    c->done = 1;
    c->what = what;
}

static void test_connect_hostname(struct evdns_base *d) {
    struct sockaddr_in sin;
    socklen_t l = sizeof sin;
    struct evconnlistener *lev;
    struct bufferevent *bev, *bad;
    struct conn ok = {0}, nx = {0};
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lev = evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
                                  (struct sockaddr *)&sin, sizeof sin);
    CHECK(lev);
    CHECK(getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&sin, &l) == 0);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_bev_event, &ok);
    CHECK(bufferevent_socket_connect_hostname(bev, d, AF_UNSPEC, "local.test", ntohs(sin.sin_port)) == 0);
    run_until(&ok.done);
    CHECK(ok.what & BEV_EVENT_CONNECTED);
    CHECK(bufferevent_socket_get_dns_error(bev) == 0);
    while (!accepted) event_base_loop(base, EVLOOP_ONCE);
    bad = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bad, NULL, NULL, on_bev_event, &nx);
    CHECK(bufferevent_socket_connect_hostname(bad, d, AF_INET, "nx.test", ntohs(sin.sin_port)) == 0);
    run_until(&nx.done);
    CHECK(nx.what & BEV_EVENT_ERROR);
    CHECK(bufferevent_socket_get_dns_error(bad) == EVUTIL_EAI_NONAME);
    bufferevent_free(bev);
    bufferevent_free(bad);
    /* Freed while its lookup is pending: the lookup finishes first (it holds a reference), the
     * connection is made, and the bufferevent goes then; its callback is not called. */
    accepted = 0;
    memset(&ok, 0, sizeof ok);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, NULL, NULL, on_bev_event, &ok);
    CHECK(bufferevent_socket_connect_hostname(bev, d, AF_INET, "local.test", ntohs(sin.sin_port)) == 0);
    bufferevent_free(bev);
    run_until(&accepted);
    CHECK(!ok.done);
    evconnlistener_free(lev);
}

/* ---- resolv.conf and the log function ---- */

static int warnings;
static void on_dns_log(int is_warning, const char *msg) {
    (void)msg;
    if (is_warning) warnings++;
}

static int event_warnings;
static void on_event_log(int severity, const char *msg) {
    (void)msg;
    if (severity == EVENT_LOG_WARN) event_warnings++;
}

static void test_resolv_conf(void) {
    char path[] = "/tmp/revent-dns-resolv-XXXXXX", text[256];
    struct got g = {0};
    struct evdns_base *d = dns_with(0);
    int fd = mkstemp(path), len;
    CHECK(fd >= 0);
    len = snprintf(text, sizeof text, "# a comment\nnameserver 127.0.0.1:%d\nsearch test\n"
                   "options ndots:2 timeout:5 attempts:2\n", good_port);
    CHECK(write(fd, text, len) == len);
    close(fd);
    CHECK(evdns_base_resolv_conf_parse(d, DNS_OPTIONS_ALL, path) == 0);
    CHECK(evdns_base_count_nameservers(d) == 1);
    /* "short" has fewer dots than ndots: the search list is tried, and short.test answers. */
    CHECK(evdns_base_resolve_ipv4(d, "short", 0, on_resolved, &g));
    run_until(&g.done);
    CHECK(g.result == DNS_ERR_NONE && g.count == 1);
    evdns_base_free(d, 0);
    /* Only the nameservers asked for: no search domain from the file. */
    d = dns_with(0);
    CHECK(evdns_base_resolv_conf_parse(d, DNS_OPTION_NAMESERVERS, path) == 0);
    memset(&g, 0, sizeof g);
    CHECK(evdns_base_resolve_ipv4(d, "short", DNS_QUERY_NO_SEARCH, on_resolved, &g));
    run_until(&g.done);
    CHECK(g.result == DNS_ERR_NOTEXIST);
    evdns_base_free(d, 0);
    unlink(path);
    /* A file that is not there: 1, and 127.0.0.1 as the nameserver unless told not to. */
    d = dns_with(0);
    CHECK(evdns_base_resolv_conf_parse(d, DNS_OPTION_NAMESERVERS, path) == 1);
    CHECK(evdns_base_count_nameservers(d) == 1);
    evdns_base_free(d, 0);
    d = dns_with(0);
    CHECK(evdns_base_resolv_conf_parse(d, DNS_OPTION_NAMESERVERS | DNS_OPTION_NAMESERVERS_NO_DEFAULT, path) == 1);
    CHECK(evdns_base_count_nameservers(d) == 0);
    /* Without a DNS log function, warnings go to the event log callback, set through core:
     * one library state for core and extra (two copies of the library would each have one). */
    event_set_log_callback(on_event_log);
    CHECK(evdns_base_nameserver_ip_add(d, "not an address either") != 0);
    CHECK(event_warnings > 0);
    event_set_log_callback(NULL);
    /* Warnings go to the DNS log function once one is set. */
    evdns_set_log_fn(on_dns_log);
    CHECK(evdns_base_nameserver_ip_add(d, "still not an address") != 0);
    CHECK(warnings > 0);
    evdns_set_log_fn(NULL);
    evdns_base_free(d, 0);
}

/* ---- freeing with requests pending ---- */

static void test_free_pending(void) {
    struct got failed = {0}, dropped = {0};
    struct evdns_base *d = dns_with(silent_port);
    CHECK(evdns_base_resolve_ipv4(d, "host.test", 0, on_resolved, &failed));
    evdns_base_free(d, 1);
    CHECK(!failed.done); /* from the loop, as every callback */
    run_until(&failed.done);
    CHECK(failed.result == DNS_ERR_SHUTDOWN);
    d = dns_with(silent_port);
    CHECK(evdns_base_resolve_ipv4(d, "host.test", 0, on_resolved, &dropped));
    evdns_base_free(d, 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK(!dropped.done);
}

/* ---- the 1.x API on the global resolver ---- */

static void test_compat(void) {
    struct got g = {0};
    char addr[64];
    CHECK(evdns_init() == 0);
    CHECK(evdns_get_global_base() != NULL);
    CHECK(evdns_clear_nameservers_and_suspend() == 0);
    CHECK(evdns_count_nameservers() == 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", good_port);
    CHECK(evdns_nameserver_ip_add(addr) == 0);
    CHECK(evdns_resume() == 0);
    evdns_search_clear();
    evdns_search_add("test");
    CHECK(evdns_resolve_ipv4("short", 0, on_resolved, &g) == 0);
    run_until(&g.done);
    CHECK(g.result == DNS_ERR_NONE && g.count == 1);
    evdns_shutdown(0);
    CHECK(evdns_get_global_base() == NULL);
}

int main(void) {
    struct event *ev_good;
    int good_fd, silent_fd;
    struct evdns_base *d;
    CHECK(!strcmp(evdns_err_to_string(DNS_ERR_NOTEXIST), "name does not exist"));
    CHECK(!strcmp(evdns_err_to_string(DNS_ERR_TIMEOUT), "request timed out"));
    CHECK(!strcmp(evdns_err_to_string(DNS_ERR_CANCEL), "dns request canceled"));
    CHECK(!strcmp(evdns_err_to_string(12345), "[Unknown error code]"));
    base = event_init(); /* the current base too, for the 1.x API */
    CHECK(base);
    good_fd = udp_socket(&good_port);
    silent_fd = udp_socket(&silent_port);
    ev_good = event_new(base, good_fd, EV_READ | EV_PERSIST, on_query, NULL);
    event_add(ev_good, NULL);
    watchdog = evtimer_new(base, on_watchdog, NULL);

    d = dns_with(good_port);
    test_records(d);
    test_search(d);
    test_cancel(d);
    test_getaddrinfo(d);
    test_connect_hostname(d);
    evdns_base_free(d, 0);
    test_nameservers();
    test_timeout_and_failover();
    test_suspend_resume();
    test_resolv_conf();
    test_free_pending();
    test_compat();
    CHECK(queries > 0);

    event_free(ev_good);
    event_free(watchdog);
    close(good_fd);
    close(silent_fd);
    event_base_free(base);
    printf("dns: ok\n");
    return 0;
}
