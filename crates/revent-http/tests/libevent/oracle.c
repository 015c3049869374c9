/* Answers for tests/against_libevent.rs from the system's libevent (Debian's libevent-dev).
 *
 * One request a line on stdin, "<op> <hex>", where <hex> is the input's bytes in hex; one answer a
 * line on stdout, fields separated by spaces, byte strings in hex, "-" for NULL:
 *   P0/P1  evhttp_uri_parse_with_flags(input, 0 or EVHTTP_URI_NONCONFORMANT):
 *          "ERR", or "OK scheme userinfo host port path query fragment joined"
 *   E0/E1  evhttp_uriencode(input, len, space_as_plus)
 *   U0/U1  evhttp_uridecode(input, decode_plus, &size): all `size` bytes
 *   D      evhttp_decode_uri(input): up to its NUL
 *   Q      evhttp_parse_query_str(input): "ERR", or "OK" then key and value of each pair
 *   H      evhttp_htmlescape(input)
 *   W      evhttp_parse_query(input), the whole-URI form: as Q
 *   S<c><f> evhttp_uri_set_<c>(a new URI with flags <f> (0 or 1 for EVHTTP_URI_NONCONFORMANT),
 *          input), where <c> is s(cheme), u(serinfo), h(ost), p(ath), q(uery) or f(ragment):
 *          the setter's return value, "0" or "-1"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static void put_hex(const char *s, size_t n)
{
	size_t i;
	if (n == 0)
		fputs("\"\"", stdout); /* the empty string, distinct from "-" */
	for (i = 0; i < n; i++)
		printf("%02x", (unsigned char)s[i]);
}

static void put_str(const char *s)
{
	putchar(' ');
	if (s == NULL)
		putchar('-');
	else
		put_hex(s, strlen(s));
}

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

int main(void)
{
	static char line[1 << 20];
	static char in[1 << 19];
	static char joined[1 << 20];

	while (fgets(line, sizeof(line), stdin) != NULL) {
		char op[4] = {0};
		const char *h;
		size_t n = 0, oplen;

		line[strcspn(line, "\n")] = '\0';
		oplen = strcspn(line, " ");
		if (oplen >= sizeof(op))
			oplen = sizeof(op) - 1;
		memcpy(op, line, oplen);
		h = line + oplen;
		if (*h == ' ')
			++h;
		while (h[0] && h[1]) {
			in[n++] = (char)(unhex(h[0]) << 4 | unhex(h[1]));
			h += 2;
		}
		in[n] = '\0';

		if (op[0] == 'P') {
			struct evhttp_uri *uri = evhttp_uri_parse_with_flags(
			    in, op[1] == '1' ? EVHTTP_URI_NONCONFORMANT : 0);
			if (uri == NULL) {
				fputs("ERR", stdout);
			} else {
				fputs("OK", stdout);
				put_str(evhttp_uri_get_scheme(uri));
				put_str(evhttp_uri_get_userinfo(uri));
				put_str(evhttp_uri_get_host(uri));
				printf(" %d", evhttp_uri_get_port(uri));
				put_str(evhttp_uri_get_path(uri));
				put_str(evhttp_uri_get_query(uri));
				put_str(evhttp_uri_get_fragment(uri));
				put_str(evhttp_uri_join(uri, joined, sizeof(joined)));
				evhttp_uri_free(uri);
			}
		} else if (op[0] == 'E') {
			char *s = evhttp_uriencode(in, (ev_ssize_t)n, op[1] == '1');
			put_hex(s, strlen(s));
			free(s);
		} else if (op[0] == 'U') {
			size_t size = 0;
			char *s = evhttp_uridecode(in, op[1] == '1', &size);
			put_hex(s, size);
			free(s);
		} else if (op[0] == 'D') {
			char *s = evhttp_decode_uri(in);
			put_hex(s, strlen(s));
			free(s);
		} else if (op[0] == 'Q' || op[0] == 'W') {
			struct evkeyvalq q;
			struct evkeyval *kv;
			int r = op[0] == 'Q' ? evhttp_parse_query_str(in, &q)
			                     : evhttp_parse_query(in, &q);
			if (r != 0) {
				fputs("ERR", stdout);
			} else {
				fputs("OK", stdout);
				for (kv = q.tqh_first; kv != NULL; kv = kv->next.tqe_next) {
					put_str(kv->key);
					put_str(kv->value);
				}
				evhttp_clear_headers(&q);
			}
		} else if (op[0] == 'S') {
			struct evhttp_uri *uri = evhttp_uri_new();
			int r = -2;
			evhttp_uri_set_flags(uri, op[2] == '1' ? EVHTTP_URI_NONCONFORMANT : 0);
			switch (op[1]) {
			case 's': r = evhttp_uri_set_scheme(uri, in); break;
			case 'u': r = evhttp_uri_set_userinfo(uri, in); break;
			case 'h': r = evhttp_uri_set_host(uri, in); break;
			case 'p': r = evhttp_uri_set_path(uri, in); break;
			case 'q': r = evhttp_uri_set_query(uri, in); break;
			case 'f': r = evhttp_uri_set_fragment(uri, in); break;
			}
			printf("%d", r);
			evhttp_uri_free(uri);
		} else if (op[0] == 'H') {
			char *s = evhttp_htmlescape(in);
			put_hex(s, strlen(s));
			free(s);
		} else {
			fputs("BADOP", stdout);
		}
		putchar('\n');
	}
	return 0;
}
