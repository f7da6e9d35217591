/* test_netaddr.c: src/lib/netaddr.c, listen-address lists. */
#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "lib/netaddr.h"

#define LIST_BAD(spec) list_bad(__LINE__, (spec))

static void
list_bad(int line, const char *spec)
{
	struct netaddr out[NETADDR_LISTEN_MAX];
	const char *error = NULL;
	int n = netaddr_parse_listen(spec, out, NETADDR_LISTEN_MAX, &error);

	if (n != -1)
		fail_msg("line %d: [%s] accepted (%d addresses)", line, spec, n);
	if (error == NULL || error[0] == '\0')
		fail_msg("line %d: [%s] refused without a reason", line, spec);
	error = NULL;
	if (netaddr_listen_validate(spec, &error) != -1 || error == NULL)
		fail_msg("line %d: [%s] passes netaddr_listen_validate", line, spec);
}

static void
assert_v4(const struct netaddr *na, const char *ip, unsigned port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&na->ss;
	struct in_addr want;

	assert_int_equal(inet_pton(AF_INET, ip, &want), 1);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(na->len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(sin->sin_port), port);
	assert_memory_equal(&sin->sin_addr, &want, sizeof(want));
}

static void
assert_v6(const struct netaddr *na, const char *ip, unsigned port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&na->ss;
	struct in6_addr want;

	assert_int_equal(inet_pton(AF_INET6, ip, &want), 1);
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(na->len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(sin6->sin6_port), port);
	assert_memory_equal(&sin6->sin6_addr, &want, sizeof(want));
	assert_int_equal(sin6->sin6_scope_id, 0);
	assert_int_equal(sin6->sin6_flowinfo, 0);
}

static int
parse(const char *spec, struct netaddr *out, size_t max)
{
	const char *error = NULL;
	int n = netaddr_parse_listen(spec, out, max, &error);

	if (n < 0)
		fail_msg("[%s] refused: %s", spec, error);
	return n;
}

static void
test_single(void **state)
{
	struct netaddr out[NETADDR_LISTEN_MAX];

	assert_int_equal(parse("127.0.0.1:25", out, NETADDR_LISTEN_MAX), 1);
	assert_v4(&out[0], "127.0.0.1", 25);

	assert_int_equal(parse("[::1]:25", out, NETADDR_LISTEN_MAX), 1);
	assert_v6(&out[0], "::1", 25);

	assert_int_equal(parse("[2001:db8::5]:2525", out, NETADDR_LISTEN_MAX), 1);
	assert_v6(&out[0], "2001:db8::5", 2525);

	assert_int_equal(parse("0.0.0.0:1", out, NETADDR_LISTEN_MAX), 1);
	assert_v4(&out[0], "0.0.0.0", 1);

	assert_int_equal(parse("192.0.2.254:65535", out, NETADDR_LISTEN_MAX), 1);
	assert_v4(&out[0], "192.0.2.254", 65535);
}

static void
test_wildcard(void **state)
{
	struct netaddr out[NETADDR_LISTEN_MAX];

	assert_int_equal(parse("*:25", out, NETADDR_LISTEN_MAX), 2);
	assert_v4(&out[0], "0.0.0.0", 25);
	assert_v6(&out[1], "::", 25);

	/* exactly room for both */
	assert_int_equal(parse("*:587", out, 2), 2);
	assert_v4(&out[0], "0.0.0.0", 587);
	assert_v6(&out[1], "::", 587);
}

static void
test_list(void **state)
{
	struct netaddr out[NETADDR_LISTEN_MAX];

	assert_int_equal(parse("127.0.0.1:25,[::1]:25", out, NETADDR_LISTEN_MAX), 2);
	assert_v4(&out[0], "127.0.0.1", 25);
	assert_v6(&out[1], "::1", 25);

	/* spaces around the items */
	assert_int_equal(parse(" 127.0.0.1:25 , [::1]:587 ,*:2525 ", out, NETADDR_LISTEN_MAX), 4);
	assert_v4(&out[0], "127.0.0.1", 25);
	assert_v6(&out[1], "::1", 587);
	assert_v4(&out[2], "0.0.0.0", 2525);
	assert_v6(&out[3], "::", 2525);

	/* the empty string is the empty list (listener off) */
	assert_int_equal(parse("", out, NETADDR_LISTEN_MAX), 0);
	const char *error = NULL;
	assert_int_equal(netaddr_listen_validate("", &error), 0);
	assert_int_equal(netaddr_listen_validate("127.0.0.1:25, [::1]:25", &error), 0);
}

static void
test_bad_ports(void **state)
{
	LIST_BAD("127.0.0.1:0");
	LIST_BAD("127.0.0.1:65536");
	LIST_BAD("127.0.0.1:99999999999999999999999");
	LIST_BAD("127.0.0.1:abc");
	LIST_BAD("127.0.0.1:");
	LIST_BAD("127.0.0.1:-1");
	LIST_BAD("127.0.0.1:+25");
	LIST_BAD("127.0.0.1: 25");
	LIST_BAD("127.0.0.1:25x");
	LIST_BAD("127.0.0.1:0x19");
	LIST_BAD("[::1]:0");
	LIST_BAD("[::1]:65536");
	LIST_BAD("[::1]:");
	LIST_BAD("*:0");
	LIST_BAD("*:abc");
	LIST_BAD("*:");
}

static void
test_bad_hosts(void **state)
{
	LIST_BAD("localhost:25");            /* names are not resolved */
	LIST_BAD("1.2.3:25");
	LIST_BAD("1.2.3.4.5:25");
	LIST_BAD("256.0.0.1:25");
	LIST_BAD(":25");
	LIST_BAD("127.0.0.1");               /* no port */
	LIST_BAD("25");
	LIST_BAD("::1:25");                  /* IPv6 needs brackets */
	LIST_BAD("[1.2.3.4]:25");            /* and brackets need IPv6 */
	LIST_BAD("[::1]25");
	LIST_BAD("[::1]");
	LIST_BAD("[::1");
	LIST_BAD("[]:25");
	LIST_BAD("[*]:25");
	LIST_BAD("[::g]:25");
	LIST_BAD("**:25");
	LIST_BAD("* :25");
	LIST_BAD("[fe80::1%eth0]:25");
	LIST_BAD("[0123456789012345678901234567890123456789012345678901234567890123456789]:25");
}

static void
test_empty_items(void **state)
{
	LIST_BAD(",");
	LIST_BAD(" ");
	LIST_BAD(",127.0.0.1:25");
	LIST_BAD("127.0.0.1:25,");
	LIST_BAD("127.0.0.1:25, ");
	LIST_BAD("127.0.0.1:25,,[::1]:25");
	LIST_BAD("127.0.0.1:25, ,[::1]:25");
	LIST_BAD("127.0.0.1:25;[::1]:25");   /* ';' is not a separator */
}

static void
test_too_many(void **state)
{
	struct netaddr out[NETADDR_LISTEN_MAX + 2];
	char spec[2048];
	size_t o = 0;
	const char *error = NULL;

	/* NETADDR_LISTEN_MAX items: fine */
	for (int i = 0; i < NETADDR_LISTEN_MAX; i++)
		o += (size_t)snprintf(spec + o, sizeof(spec) - o, "%s127.0.0.%d:25",
		    i > 0 ? "," : "", i + 1);
	assert_int_equal(parse(spec, out, NETADDR_LISTEN_MAX), NETADDR_LISTEN_MAX);
	assert_v4(&out[NETADDR_LISTEN_MAX - 1], "127.0.0.16", 25);
	assert_int_equal(netaddr_listen_validate(spec, &error), 0);

	/* one more: refused, and nothing is written past max */
	snprintf(spec + o, sizeof(spec) - o, ",127.0.0.99:25");
	memset(&out[NETADDR_LISTEN_MAX], 0xA5, 2 * sizeof(out[0]));
	assert_int_equal(netaddr_parse_listen(spec, out, NETADDR_LISTEN_MAX, &error), -1);
	assert_non_null(error);
	assert_int_equal(((unsigned char *)&out[NETADDR_LISTEN_MAX])[0], 0xA5);
	error = NULL;
	assert_int_equal(netaddr_listen_validate(spec, &error), -1);
	assert_non_null(error);

	/* "*" counts as two */
	error = NULL;
	assert_int_equal(netaddr_parse_listen("*:25", out, 1, &error), -1);
	assert_non_null(error);
	error = NULL;
	assert_int_equal(netaddr_parse_listen("127.0.0.1:25,[::1]:25", out, 1, &error), -1);
	assert_non_null(error);
	assert_int_equal(netaddr_parse_listen("127.0.0.1:25,*:26", out, 3, &error), 3);
}

static void
test_item_too_long(void **state)
{
	char spec[400];

	memset(spec, ' ', 200);
	snprintf(spec + 200, sizeof(spec) - 200, "127.0.0.1:25");
	/* leading blanks are skipped, so this is fine */
	struct netaddr out[NETADDR_LISTEN_MAX];
	assert_int_equal(parse(spec, out, NETADDR_LISTEN_MAX), 1);

	memset(spec, '1', 200);
	snprintf(spec + 200, sizeof(spec) - 200, ":25");
	LIST_BAD(spec);
}

static void
test_format(void **state)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	char buf[128], ip[INET6_ADDRSTRLEN];

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	assert_string_equal(netaddr_format((struct sockaddr *)&sin, buf, sizeof(buf)),
	    "192.0.2.7:25");
	assert_string_equal(netaddr_ip((struct sockaddr *)&sin, ip, sizeof(ip)), "192.0.2.7");

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(587);
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	assert_string_equal(netaddr_format((struct sockaddr *)&sin6, buf, sizeof(buf)),
	    "[2001:db8::1]:587");
	assert_string_equal(netaddr_ip((struct sockaddr *)&sin6, ip, sizeof(ip)), "2001:db8::1");

	/* an IPv4 client on a dual-stack socket shows as IPv4 */
	inet_pton(AF_INET6, "::ffff:198.51.100.3", &sin6.sin6_addr);
	assert_string_equal(netaddr_ip((struct sockaddr *)&sin6, ip, sizeof(ip)), "198.51.100.3");

	/* parse then format gives the text back */
	struct netaddr out[2];
	assert_int_equal(parse("[::1]:2525", out, 2), 1);
	assert_string_equal(netaddr_format((struct sockaddr *)&out[0].ss, buf, sizeof(buf)),
	    "[::1]:2525");
	assert_int_equal(parse("10.1.2.3:26", out, 2), 1);
	assert_string_equal(netaddr_format((struct sockaddr *)&out[0].ss, buf, sizeof(buf)),
	    "10.1.2.3:26");
}

static void
test_cidr_valid(void **state)
{
	static const char *const good[] = {
		"10.0.0.0/8", "192.0.2.1", "192.0.2.1/32", "0.0.0.0/0", "2001:db8::/32",
		"2001:DB8::/32", "::/0", "::1", "::1/128", "::ffff:192.0.2.1/120",
	};
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/8x", "10.0.0.0/8/8", "10.0.0.0 /8", " 10.0.0.0", "10.0.0", "10.0.0.256",
		"host.example", "[::1]", "::1/", "*",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!netaddr_cidr_valid(good[i]))
			fail_msg("[%s] refused", good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (netaddr_cidr_valid(bad[i]))
			fail_msg("[%s] accepted", bad[i]);
	}
}

static void
test_ip_in_cidr(void **state)
{
	assert_true(netaddr_ip_in_cidr("10.1.2.3", "10.0.0.0/8"));
	assert_false(netaddr_ip_in_cidr("11.0.0.1", "10.0.0.0/8"));
	assert_true(netaddr_ip_in_cidr("192.0.2.1", "192.0.2.1"));
	assert_false(netaddr_ip_in_cidr("192.0.2.2", "192.0.2.1"));
	assert_true(netaddr_ip_in_cidr("203.0.113.9", "0.0.0.0/0"));
	/* prefixes that end inside a byte */
	assert_true(netaddr_ip_in_cidr("10.0.0.127", "10.0.0.0/25"));
	assert_false(netaddr_ip_in_cidr("10.0.0.128", "10.0.0.0/25"));
	assert_true(netaddr_ip_in_cidr("10.0.0.1", "10.0.0.0/31"));
	assert_false(netaddr_ip_in_cidr("10.0.0.2", "10.0.0.0/31"));
	assert_true(netaddr_ip_in_cidr("172.31.255.255", "172.16.0.0/12"));
	assert_false(netaddr_ip_in_cidr("172.32.0.0", "172.16.0.0/12"));
	/* IPv6 */
	assert_true(netaddr_ip_in_cidr("2001:db8:1::5", "2001:db8::/32"));
	assert_false(netaddr_ip_in_cidr("2001:db9::5", "2001:db8::/32"));
	assert_true(netaddr_ip_in_cidr("::1", "::1"));
	assert_true(netaddr_ip_in_cidr("fe80::1", "fe80::/10"));
	assert_false(netaddr_ip_in_cidr("fec0::1", "fe80::/10"));
	assert_true(netaddr_ip_in_cidr("2001:db8::1", "::/0"));
	/* families never match each other */
	assert_false(netaddr_ip_in_cidr("10.0.0.1", "::/0"));
	assert_false(netaddr_ip_in_cidr("::1", "0.0.0.0/0"));
	/* parse errors are a no */
	assert_false(netaddr_ip_in_cidr("", "0.0.0.0/0"));
	assert_false(netaddr_ip_in_cidr("not-an-ip", "0.0.0.0/0"));
	assert_false(netaddr_ip_in_cidr("10.0.0.1", ""));
	assert_false(netaddr_ip_in_cidr("10.0.0.1", "10.0.0.0/33"));
	assert_false(netaddr_ip_in_cidr("10.0.0.1", "garbage"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_wildcard),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_bad_ports),
		cmocka_unit_test(test_bad_hosts),
		cmocka_unit_test(test_empty_items),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_item_too_long),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_cidr_valid),
		cmocka_unit_test(test_ip_in_cidr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
