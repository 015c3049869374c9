/*
 * dns benchmark, C libevent 2.1 evdns contender.
 *
 * Resolves N distinct names h0.bench.example ... h<N-1>.bench.example (A records, no search list)
 * against one nameserver, keeping INFLIGHT lookups outstanding: INFLIGHT are started at once and each
 * callback starts the next. evdns's own limit on requests in flight (max-inflight, 64 by default) is
 * raised to INFLIGHT so that it does not queue them, and its one UDP socket's receive buffer to 4 MiB
 * (so-rcvbuf; the kernel caps it at net.core.rmem_max): with the default 208 KiB, INFLIGHT answers
 * arriving together overflow it and the lost ones wait for evdns's 5 s timeout. Other options are
 * evdns's defaults (5 s timeout, 3 attempts, 0x20 case randomisation on).
 *
 * Each answer is checked: with EXPECT "derived", name hI must resolve to 10.(I>>16).(I>>8).I (what
 * `revent-bench dns-server` answers); with a dotted quad, to that address (dnsmasq's --address).
 *
 * Usage: dns_evdns IP:PORT N INFLIGHT EXPECT
 * Prints one line: ok=.. wrong=.. failed=.. wall_ns=.. cpu_ns=.. (wall clock and this process's
 * user+system CPU time from getrusage, both over the lookups only).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/event.h>

static struct event_base *base;
static struct evdns_base *dns;
static long n, next_name, done, ok, wrong, failed;
static int derived;
static uint32_t fixed_addr; /* host order */

static unsigned long long
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static unsigned long long
cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((unsigned long long)ru.ru_utime.tv_sec + (unsigned long long)ru.ru_stime.tv_sec) *
		   1000000000ull +
	       ((unsigned long long)ru.ru_utime.tv_usec + (unsigned long long)ru.ru_stime.tv_usec) * 1000ull;
}

static void issue(void);

static void
on_answer(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	long i = (long)(intptr_t)arg;
	(void)ttl;
	if (result == DNS_ERR_NONE && type == DNS_IPv4_A && count >= 1) {
		uint32_t got = ntohl(((uint32_t *)addresses)[0]);
		uint32_t want = derived ? (0x0a000000u | ((uint32_t)i & 0xffffffu)) : fixed_addr;
		if (got == want)
			ok++;
		else
			wrong++;
	} else {
		failed++;
	}
	done++;
	issue();
	if (done == n)
		event_base_loopbreak(base);
}

static void
issue(void)
{
	char name[64];
	long i;
	if (next_name >= n)
		return;
	i = next_name++;
	snprintf(name, sizeof name, "h%ld.bench.example", i);
	if (!evdns_base_resolve_ipv4(dns, name, DNS_QUERY_NO_SEARCH, on_answer, (void *)(intptr_t)i)) {
		/* Could not even be started: counted as failed, and the next one goes instead. */
		failed++;
		done++;
		issue();
	}
}

int
main(int argc, char **argv)
{
	long inflight, k;
	unsigned long long w0, c0, w1, c1;
	char opt[32];
	struct in_addr a;

	if (argc != 5) {
		fprintf(stderr, "usage: dns_evdns IP:PORT N INFLIGHT EXPECT\n");
		return 2;
	}
	n = atol(argv[2]);
	inflight = atol(argv[3]);
	derived = strcmp(argv[4], "derived") == 0;
	if (!derived) {
		if (inet_pton(AF_INET, argv[4], &a) != 1) {
			fprintf(stderr, "dns_evdns: bad EXPECT %s\n", argv[4]);
			return 2;
		}
		fixed_addr = ntohl(a.s_addr);
	}
	base = event_base_new();
	dns = base ? evdns_base_new(base, 0) : NULL;
	if (!dns) {
		fprintf(stderr, "dns_evdns: cannot make the bases\n");
		return 1;
	}
	/* Before the nameserver is added: the option is applied to the sockets made afterwards. */
	if (evdns_base_set_option(dns, "so-rcvbuf:", "4194304") != 0) {
		fprintf(stderr, "dns_evdns: cannot set so-rcvbuf\n");
		return 1;
	}
	if (evdns_base_nameserver_ip_add(dns, argv[1]) != 0) {
		fprintf(stderr, "dns_evdns: bad nameserver %s\n", argv[1]);
		return 1;
	}
	snprintf(opt, sizeof opt, "%ld", inflight);
	if (evdns_base_set_option(dns, "max-inflight:", opt) != 0) {
		fprintf(stderr, "dns_evdns: cannot set max-inflight\n");
		return 1;
	}

	w0 = now_ns();
	c0 = cpu_ns();
	for (k = 0; k < inflight; k++)
		issue();
	if (done < n)
		event_base_dispatch(base);
	w1 = now_ns();
	c1 = cpu_ns();

	printf("ok=%ld wrong=%ld failed=%ld wall_ns=%llu cpu_ns=%llu\n", ok, wrong, failed, w1 - w0,
	    c1 - c0);
	evdns_base_free(dns, 0);
	event_base_free(base);
	return 0;
}
