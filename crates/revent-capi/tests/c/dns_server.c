/* evdns's server side from C (event2/dns.h, dns_struct.h): a server port on a UDP socket of
 * 127.0.0.1 whose callback reads the public struct evdns_server_request (flags, nquestions,
 * questions[i]->type / dns_question_class / name) and answers A (two addresses), AAAA, PTR (by
 * address and by name), CNAME, NXDOMAIN, a dropped request, an answer sent later from a timer,
 * and records in the three sections; queried by evdns_base clients in the same program and by a
 * raw UDP client that checks the answer's header bits exactly (AA, RA, RD, the rcode) and its
 * records. Also: hostile datagrams (never reaching the callback, the port going on), a burst of
 * 100 queries held and then answered at once in reverse order, evdns_add_server_port (1.x, on
 * event_init's base), bad flags (NULL, the socket left open), evdns_close_server_port with a
 * request pending (the request is still answered, then the port closes its socket),
 * evdns_server_request_get_requesting_addr. Linked -levent_core -levent_extra by run.sh. */
#include <event2/event.h>
#include <event2/event_compat.h>
#include <event2/dns.h>
#include <event2/dns_compat.h>
#include <event2/dns_struct.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

static struct event_base *base;
static struct evdns_server_port *port;
static int user_magic;
static int served, dropped, raw_port;
static int last_flags = -1;
static int peer_port, pending_seen;
static struct evdns_server_request *later_req, *pending_req;
static struct event *later_ev;

static int udp_socket(int *portno) {
    struct sockaddr_in sin;
    socklen_t l = sizeof sin;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sin, &l) == 0);
    if (portno) *portno = ntohs(sin.sin_port);
    CHECK(evutil_make_socket_nonblocking(fd) == 0);
    return fd;
}

/* ---- the server's callback ---- */

/* Requests held until FLOOD have come, then answered together, newest first. */
#define FLOOD 100
static struct evdns_server_request *held[FLOOD];
static int nheld;

static void answer_held(evutil_socket_t fd, short what, void *arg) {
    int i, k;
    (void)fd; (void)what; (void)arg;
    for (i = FLOOD - 1; i >= 0; i--) {
        struct evdns_server_request *req = held[i];
        unsigned char a[4] = {10, 0, 0, 0};
        /* The address says which query it answers: heldN gets 10.0.0.N. */
        k = atoi(req->questions[0]->name + 4);
        a[3] = (unsigned char)k;
        CHECK(evdns_server_request_add_a_reply(req, req->questions[0]->name, 1, a, 5) == 0);
        CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    }
    nheld = 0;
}

static void on_later(evutil_socket_t fd, short what, void *arg) {
    struct evdns_server_request *req = later_req;
    struct in_addr a;
    (void)fd; (void)what; (void)arg;
    later_req = NULL;
    inet_pton(AF_INET, "192.0.2.77", &a);
    CHECK(evdns_server_request_add_a_reply(req, req->questions[0]->name, 1, &a, 30) == 0);
    CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    event_free(later_ev);
    later_ev = NULL;
}

static void on_request(struct evdns_server_request *req, void *arg) {
    const struct evdns_server_question *q;
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct in_addr a[2];
    struct in6_addr a6;
    const char *name;
    CHECK(arg == &user_magic);
    CHECK(req->nquestions == 1);
    q = req->questions[0];
    name = q->name;
    CHECK(q->dns_question_class == EVDNS_CLASS_INET);
    served++;
    last_flags = req->flags;
    /* Who asked: 127.0.0.1; too small a buffer is refused. */
    CHECK(evdns_server_request_get_requesting_addr(req, (struct sockaddr *)&ss, 4) == -1);
    CHECK(evdns_server_request_get_requesting_addr(req, (struct sockaddr *)&ss, sizeof ss)
          == (int)sizeof(struct sockaddr_in));
    CHECK(sin->sin_family == AF_INET && sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    peer_port = ntohs(sin->sin_port);
    inet_pton(AF_INET, "192.0.2.1", &a[0]);
    inet_pton(AF_INET, "192.0.2.2", &a[1]);
    inet_pton(AF_INET6, "2001:db8::5", &a6);

    if (!strcasecmp(name, "a.test") && q->type == EVDNS_TYPE_A) {
        CHECK(evdns_server_request_add_a_reply(req, name, 2, a, 300) == 0);
        CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    } else if (!strcasecmp(name, "aaaa.test") && q->type == EVDNS_TYPE_AAAA) {
        CHECK(evdns_server_request_add_aaaa_reply(req, name, 1, &a6, 300) == 0);
        CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    } else if (!strcasecmp(name, "1.2.0.192.in-addr.arpa") && q->type == EVDNS_TYPE_PTR) {
        /* Exactly one of the address and the name. */
        CHECK(evdns_server_request_add_ptr_reply(req, NULL, NULL, "x.test", 60) == -1);
        CHECK(evdns_server_request_add_ptr_reply(req, &a[0], name, "x.test", 60) == -1);
        CHECK(evdns_server_request_add_ptr_reply(req, &a[0], NULL, "host.test", 60) == 0);
        CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    } else if (!strcasecmp(name, "2.2.0.192.in-addr.arpa") && q->type == EVDNS_TYPE_PTR) {
        CHECK(evdns_server_request_add_ptr_reply(req, NULL, name, "two.test", 60) == 0);
        CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    } else if (!strcasecmp(name, "alias.test") && q->type == EVDNS_TYPE_A) {
        CHECK(evdns_server_request_add_cname_reply(req, name, "a.test", 60) == 0);
        CHECK(evdns_server_request_add_a_reply(req, "a.test", 1, &a[1], 60) == 0);
        CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    } else if (!strcasecmp(name, "drop.test")) {
        dropped++;
        CHECK(evdns_server_request_drop(req) == 0);
    } else if (!strcasecmp(name, "later.test")) {
        struct timeval tv = {0, 50000};
        CHECK(!later_req);
        later_req = req; /* answered from a timer, after this callback returned */
        later_ev = evtimer_new(base, on_later, NULL);
        CHECK(later_ev && evtimer_add(later_ev, &tv) == 0);
    } else if (!strncasecmp(name, "held", 4)) {
        CHECK(nheld < FLOOD);
        held[nheld++] = req;
        if (nheld == FLOOD) {
            struct timeval now = {0, 0};
            CHECK(event_base_once(base, -1, EV_TIMEOUT, answer_held, NULL, &now) == 0);
        }
    } else if (!strcasecmp(name, "pending.test")) {
        pending_req = req; /* answered after its port is closed */
        pending_seen = 1;
    } else if (!strcasecmp(name, "flags.test")) {
        /* AA through set_flags, and the visible field changes as in libevent. */
        evdns_server_request_set_flags(req, EVDNS_FLAGS_AA);
        CHECK((req->flags & EVDNS_FLAGS_AA) && (req->flags & 0x100));
        CHECK(evdns_server_request_add_a_reply(req, name, 1, a, 0x01020304) == 0);
        CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    } else if (!strcasecmp(name, "ra.test")) {
        /* RA (libevent's EVDNS_FLAGS_RD) through set_flags, AA written into the field. An err
         * that is not a response code is refused, and the request stays alive. */
        evdns_server_request_set_flags(req, EVDNS_FLAGS_RD);
        CHECK(evdns_server_request_respond(req, 16) == -1);
        CHECK(evdns_server_request_respond(req, DNS_ERR_REFUSED | EVDNS_FLAGS_AA) == -1);
        req->flags |= EVDNS_FLAGS_AA;
        CHECK(evdns_server_request_respond(req, DNS_ERR_REFUSED) == 0);
    } else if (!strcasecmp(name, "sections.test")) {
        CHECK(evdns_server_request_add_reply(req, 3, name, EVDNS_TYPE_A, EVDNS_CLASS_INET, 60, 4,
                                             0, "\x7f\0\0\1") == -1);
        CHECK(evdns_server_request_add_reply(req, EVDNS_ANSWER_SECTION, name, EVDNS_TYPE_TXT,
                                             EVDNS_CLASS_INET, 60, 6, 0, "\x05hello") == 0);
        CHECK(evdns_server_request_add_reply(req, EVDNS_AUTHORITY_SECTION, "test", EVDNS_TYPE_NS,
                                             EVDNS_CLASS_INET, 60, -1, 1, "ns.test") == 0);
        CHECK(evdns_server_request_add_reply(req, EVDNS_ADDITIONAL_SECTION, "ns.test",
                                             EVDNS_TYPE_A, EVDNS_CLASS_INET, 60, 4, 0,
                                             "\x7f\0\0\1") == 0);
        CHECK(evdns_server_request_respond(req, DNS_ERR_NONE) == 0);
    } else {
        CHECK(evdns_server_request_respond(req, DNS_ERR_NOTEXIST) == 0);
    }
}

/* ---- loop helpers ---- */

/* A hang guard only: reaching it means a callback never came. */
static struct event *watchdog;
static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    fprintf(stderr, "dns_server: a callback never came\n");
    exit(1);
}

static void run_until(int *flag) {
    struct timeval guard = {30, 0};
    evtimer_add(watchdog, &guard);
    while (!*flag) CHECK(event_base_loop(base, EVLOOP_ONCE) == 0);
    evtimer_del(watchdog);
}

/* ---- the evdns_base client ---- */

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
    if (result != DNS_ERR_NONE) return;
    if (type == DNS_IPv4_A)
        for (i = 0; i < count && i < 4; i++) memcpy(g->addrs[i], (char *)addresses + 4 * i, 4);
    else if (type == DNS_IPv6_AAAA)
        for (i = 0; i < count && i < 4; i++) memcpy(g->addrs[i], (char *)addresses + 16 * i, 16);
    else if (type == DNS_PTR)
        snprintf(g->ptr, sizeof g->ptr, "%s", *(char **)addresses);
}

static struct evdns_base *client(int portno, const char *timeout) {
    char addr[64];
    struct evdns_base *d = evdns_base_new(base, 0);
    CHECK(d);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", portno);
    CHECK(evdns_base_nameserver_ip_add(d, addr) == 0);
    CHECK(evdns_base_set_option(d, "timeout", timeout) == 0);
    CHECK(evdns_base_set_option(d, "attempts", "1") == 0);
    return d;
}

static void test_client(int portno) {
    struct evdns_base *d = client(portno, "20"), *quick = client(portno, "0.5");
    struct got a = {0}, aaaa = {0}, ptr = {0}, ptr_name = {0}, alias = {0}, nx = {0}, drop = {0},
               later = {0};
    struct in_addr in;
    struct in6_addr six;
    CHECK(evdns_base_resolve_ipv4(d, "a.test", 0, on_resolved, &a));
    CHECK(evdns_base_resolve_ipv6(d, "aaaa.test", 0, on_resolved, &aaaa));
    inet_pton(AF_INET, "192.0.2.1", &in);
    CHECK(evdns_base_resolve_reverse(d, &in, 0, on_resolved, &ptr));
    inet_pton(AF_INET, "192.0.2.2", &in);
    CHECK(evdns_base_resolve_reverse(d, &in, 0, on_resolved, &ptr_name));
    CHECK(evdns_base_resolve_ipv4(d, "alias.test", 0, on_resolved, &alias));
    CHECK(evdns_base_resolve_ipv4(d, "nx.test", 0, on_resolved, &nx));
    CHECK(evdns_base_resolve_ipv4(d, "later.test", 0, on_resolved, &later));
    CHECK(evdns_base_resolve_ipv4(quick, "drop.test", 0, on_resolved, &drop));
    run_until(&a.done);
    run_until(&aaaa.done);
    run_until(&ptr.done);
    run_until(&ptr_name.done);
    run_until(&alias.done);
    run_until(&nx.done);
    run_until(&later.done);
    run_until(&drop.done);

    CHECK(a.result == DNS_ERR_NONE && a.type == DNS_IPv4_A && a.count == 2 && a.ttl == 300);
    CHECK(!memcmp(a.addrs[0], "\xc0\x00\x02\x01", 4) && !memcmp(a.addrs[1], "\xc0\x00\x02\x02", 4));
    inet_pton(AF_INET6, "2001:db8::5", &six);
    CHECK(aaaa.result == DNS_ERR_NONE && aaaa.type == DNS_IPv6_AAAA && aaaa.count == 1);
    CHECK(!memcmp(aaaa.addrs[0], &six, 16));
    CHECK(ptr.result == DNS_ERR_NONE && ptr.type == DNS_PTR && !strcmp(ptr.ptr, "host.test"));
    CHECK(ptr_name.result == DNS_ERR_NONE && !strcmp(ptr_name.ptr, "two.test"));
    CHECK(alias.result == DNS_ERR_NONE && alias.count == 1);
    CHECK(!memcmp(alias.addrs[0], "\xc0\x00\x02\x02", 4));
    CHECK(nx.result == DNS_ERR_NOTEXIST && nx.count == 0);
    CHECK(later.result == DNS_ERR_NONE && later.count == 1 && later.ttl == 30);
    CHECK(!memcmp(later.addrs[0], "\xc0\x00\x02\x4d", 4));
    CHECK(!later_req && !later_ev);
    CHECK(drop.result == DNS_ERR_TIMEOUT);
    CHECK(dropped >= 1);
    evdns_base_free(d, 0);
    evdns_base_free(quick, 0);
}

/* ---- the raw client: exact header bits ---- */

static unsigned char reply[1500];
static int reply_len, replied;

static void on_raw(evutil_socket_t fd, short what, void *arg) {
    ssize_t n;
    (void)what; (void)arg;
    n = recv(fd, reply, sizeof reply, 0);
    if (n < 0) return;
    reply_len = (int)n;
    replied = 1;
}

static int put_query(unsigned char *p, unsigned id, const char *name, int type) {
    int n = 12;
    memset(p, 0, 12);
    p[0] = id >> 8; p[1] = id & 0xff;
    p[2] = 0x01; /* RD */
    p[5] = 1;
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
    p[n++] = 0; p[n++] = (unsigned char)type;
    p[n++] = 0; p[n++] = 1;
    return n;
}

static unsigned get16(const unsigned char *p) { return (p[0] << 8) | p[1]; }

/* A name at *pos (compressed or not) as dotted text; *pos moves past it. */
static void read_name(int *pos, char *out) {
    int p = *pos, jumped = 0, hops = 0, o = 0;
    for (;;) {
        int len;
        CHECK(p < reply_len);
        len = reply[p];
        if ((len & 0xc0) == 0xc0) {
            CHECK(p + 1 < reply_len && ++hops < 20);
            if (!jumped) *pos = p + 2;
            jumped = 1;
            p = ((len & 0x3f) << 8) | reply[p + 1];
            continue;
        }
        if (!len) break;
        CHECK(p + 1 + len <= reply_len && o + len + 2 < 256);
        if (o) out[o++] = '.';
        memcpy(out + o, reply + p + 1, len);
        o += len;
        p += 1 + len;
    }
    out[o] = 0;
    if (!jumped) *pos = p + 1;
}

struct rr { char name[256]; unsigned type, class_, rdlen; unsigned long ttl; int rdata; };

static void read_rr(int *pos, struct rr *r) {
    read_name(pos, r->name);
    CHECK(*pos + 10 <= reply_len);
    r->type = get16(reply + *pos);
    r->class_ = get16(reply + *pos + 2);
    r->ttl = ((unsigned long)get16(reply + *pos + 4) << 16) | get16(reply + *pos + 6);
    r->rdlen = get16(reply + *pos + 8);
    r->rdata = *pos + 10;
    *pos += 10 + r->rdlen;
    CHECK(*pos <= reply_len);
}

/* Sends a query for name, waits for the answer, checks the id and that the question comes back
 * as sent; returns the position after the question. */
static int ask_raw(int fd, struct event *ev, unsigned id, const char *name, int type) {
    unsigned char q[512];
    int n = put_query(q, id, name, type);
    replied = 0;
    CHECK(event_add(ev, NULL) == 0);
    CHECK(send(fd, q, n, 0) == n);
    run_until(&replied);
    CHECK(event_del(ev) == 0);
    CHECK(reply_len >= n);
    CHECK(get16(reply) == id);
    CHECK(get16(reply + 4) == 1);
    CHECK(!memcmp(reply + 12, q + 12, n - 12));
    CHECK(last_flags == 0x0100); /* the query's flags word, as the callback saw it */
    CHECK(peer_port == raw_port);
    return n;
}

static void test_raw(int portno) {
    struct sockaddr_in sin;
    struct event *ev;
    struct rr r;
    int pos, fd = udp_socket(&raw_port);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(portno);
    CHECK(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    ev = event_new(base, fd, EV_READ | EV_PERSIST, on_raw, NULL);
    CHECK(ev);

    /* QR, AA (set_flags), RD (the query's), NOERROR; one A record with the TTL given. */
    pos = ask_raw(fd, ev, 0xbeef, "Flags.TEST", EVDNS_TYPE_A);
    CHECK(get16(reply + 2) == 0x8500);
    CHECK(get16(reply + 6) == 1 && get16(reply + 8) == 0 && get16(reply + 10) == 0);
    read_rr(&pos, &r);
    CHECK(!strcmp(r.name, "Flags.TEST"));
    CHECK(r.type == 1 && r.class_ == 1 && r.ttl == 0x01020304 && r.rdlen == 4);
    CHECK(!memcmp(reply + r.rdata, "\xc0\x00\x02\x01", 4));
    CHECK(pos == reply_len);

    /* RA from set_flags (libevent's EVDNS_FLAGS_RD), AA and REFUSED from respond's err. */
    pos = ask_raw(fd, ev, 0x1234, "ra.test", EVDNS_TYPE_A);
    CHECK(get16(reply + 2) == 0x8585);
    CHECK(get16(reply + 6) == 0 && get16(reply + 8) == 0 && get16(reply + 10) == 0);
    CHECK(pos == reply_len);

    /* NXDOMAIN with nothing else. */
    pos = ask_raw(fd, ev, 0x0001, "unknown.test", EVDNS_TYPE_AAAA);
    CHECK(get16(reply + 2) == 0x8103);
    CHECK(pos == reply_len);

    /* One record in each section, in the order added. */
    pos = ask_raw(fd, ev, 0x4242, "sections.test", EVDNS_TYPE_TXT);
    CHECK(get16(reply + 2) == 0x8100);
    CHECK(get16(reply + 6) == 1 && get16(reply + 8) == 1 && get16(reply + 10) == 1);
    read_rr(&pos, &r);
    CHECK(!strcmp(r.name, "sections.test") && r.type == EVDNS_TYPE_TXT && r.rdlen == 6);
    CHECK(!memcmp(reply + r.rdata, "\x05hello", 6));
    read_rr(&pos, &r);
    CHECK(!strcmp(r.name, "test") && r.type == EVDNS_TYPE_NS && r.ttl == 60);
    {
        int at = r.rdata;
        char ns[256];
        read_name(&at, ns);
        CHECK(!strcmp(ns, "ns.test"));
    }
    read_rr(&pos, &r);
    CHECK(!strcmp(r.name, "ns.test") && r.type == EVDNS_TYPE_A && r.rdlen == 4);
    CHECK(!memcmp(reply + r.rdata, "\x7f\0\0\1", 4));
    CHECK(pos == reply_len);

    /* Hostile bytes: too short for a header (revent only), a response, a question running past
     * the end.
     * None reaches the callback (libevent drops them; revent answers the last FORMERR), and the
     * port goes on answering. */
    {
        unsigned char junk[64];
        int before = served, n;
#ifdef REVENT
        /* Debian's libevent 2.1.12 crashes on this one (SIGSEGV in its request parsing). */
        CHECK(send(fd, "\x01\x02\x03", 3, 0) == 3);
#endif
        n = put_query(junk, 0x7777, "x.test", EVDNS_TYPE_A);
        junk[2] |= 0x80; /* QR: a response */
        CHECK(send(fd, junk, n, 0) == n);
        n = put_query(junk, 0x7778, "x.test", EVDNS_TYPE_A);
        junk[12] = 60; /* a label longer than what follows */
        CHECK(send(fd, junk, n, 0) == n);
        n = put_query(junk, 0x7779, "after.test", EVDNS_TYPE_A);
        CHECK(event_add(ev, NULL) == 0);
        CHECK(send(fd, junk, n, 0) == n);
        do {
            replied = 0;
            run_until(&replied);
        } while (get16(reply) != 0x7779);
        CHECK(event_del(ev) == 0);
        CHECK(get16(reply + 2) == 0x8103);
        CHECK(served == before + 1);
    }

    /* A burst of FLOOD queries, held by the server and answered all at once, newest first:
     * each answer carries its own query's id and address. */
    {
        unsigned char q[64];
        char name[32];
        int i, n, got = 0, seen[FLOOD] = {0};
        CHECK(event_add(ev, NULL) == 0);
        for (i = 0; i < FLOOD; i++) {
            snprintf(name, sizeof name, "held%d.test", i);
            n = put_query(q, 0x2000 + i, name, EVDNS_TYPE_A);
            CHECK(send(fd, q, n, 0) == n);
        }
        while (got < FLOOD) {
            unsigned id;
            struct rr r;
            replied = 0;
            run_until(&replied);
            id = get16(reply);
            CHECK(id >= 0x2000 && id < 0x2000 + FLOOD && !seen[id - 0x2000]);
            seen[id - 0x2000] = 1;
            got++;
            CHECK(get16(reply + 2) == 0x8100 && get16(reply + 6) == 1);
            pos = 12;
            read_name(&pos, name);
            pos += 4;
            read_rr(&pos, &r);
            CHECK(r.type == 1 && r.rdlen == 4 && reply[r.rdata] == 10);
            CHECK(reply[r.rdata + 3] == id - 0x2000);
        }
        CHECK(event_del(ev) == 0);
        CHECK(nheld == 0);
    }

    event_free(ev);
    close(fd);
}

/* ---- closing a port with a request pending ---- */

static void test_close_pending(void) {
    int portno, fd = udp_socket(&portno);
    struct evdns_server_port *p2;
    struct evdns_base *d;
    struct got g = {0};
    struct in_addr a;
    /* The 1.x call: on event_init's base, which is `base`. */
    p2 = evdns_add_server_port(fd, 0, on_request, &user_magic);
    CHECK(p2);
    d = client(portno, "20");
    CHECK(evdns_base_resolve_ipv4(d, "pending.test", 0, on_resolved, &g));
    run_until(&pending_seen);
    CHECK(!g.done);
    evdns_close_server_port(p2);
    /* Still answerable after the close; the socket closes with it. */
    inet_pton(AF_INET, "192.0.2.99", &a);
    CHECK(evdns_server_request_add_a_reply(pending_req, "pending.test", 1, &a, 10) == 0);
    CHECK(evdns_server_request_respond(pending_req, DNS_ERR_NONE) == 0);
    pending_req = NULL;
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
    run_until(&g.done);
    CHECK(g.result == DNS_ERR_NONE && g.count == 1 && !memcmp(g.addrs[0], &a, 4));
    evdns_base_free(d, 0);
}

int main(void) {
    int portno, fd, bad;
    base = event_init();
    CHECK(base);
    watchdog = evtimer_new(base, on_watchdog, NULL);
    CHECK(watchdog);

    /* Flags other than 0 are refused, and the socket is left alone. */
    bad = udp_socket(NULL);
    CHECK(!evdns_add_server_port_with_base(base, bad, 1, on_request, &user_magic));
    CHECK(fcntl(bad, F_GETFD) != -1);
    close(bad);

    fd = udp_socket(&portno);
    port = evdns_add_server_port_with_base(base, fd, 0, on_request, &user_magic);
    CHECK(port);
    test_client(portno);
    test_raw(portno);
    CHECK(served - dropped == 12 + FLOOD);
    test_close_pending();

    /* Closing a port with nothing pending closes its socket at once. */
    evdns_close_server_port(port);
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);

    event_free(watchdog);
    event_base_free(base);
    return 0;
}
