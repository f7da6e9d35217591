/* test_ipcount.c: src/lib/ipcount.c, sessions per client address and the
 * addresses the per-address limits exempt (S6, P1), with src/lib/hostaddr.c
 * (this host's own addresses). */
#include "test_util.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include "lib/hostaddr.h"
#include "lib/ipcount.h"

static void
test_counts(void **state)
{
	(void)state;
	struct ipcount_table *t = ipcount_create();

	assert_int_equal(ipcount_get(t, "127.0.0.1"), 0);
	ipcount_add(t, "127.0.0.1", 1);
	ipcount_add(t, "127.0.0.1", 1);
	ipcount_add(t, "::1", 1);
	assert_int_equal(ipcount_get(t, "127.0.0.1"), 2);
	assert_int_equal(ipcount_get(t, "::1"), 1);
	assert_int_equal(ipcount_get(t, "127.0.0.10"), 0);
	ipcount_add(t, "127.0.0.1", -1);
	ipcount_add(t, "::1", -1);
	assert_int_equal(ipcount_get(t, "127.0.0.1"), 1);
	assert_int_equal(ipcount_get(t, "::1"), 0);
	ipcount_add(t, "192.0.2.9", -1); /* unknown: nothing to forget */
	assert_int_equal(ipcount_get(t, "192.0.2.9"), 0);
	ipcount_destroy(&t);
	assert_null(t);
	ipcount_destroy(&t);
}

/* Far more addresses than buckets: chains keep every count apart. */
static void
test_many_addresses(void **state)
{
	(void)state;
	struct ipcount_table *t = ipcount_create();
	char ip[64];

	for (int i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
		for (int k = 0; k <= i % 3; k++)
			ipcount_add(t, ip, 1);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
		assert_int_equal(ipcount_get(t, ip), (unsigned)(i % 3 + 1));
		if (i % 2 == 0) {
			for (int k = 0; k <= i % 3; k++)
				ipcount_add(t, ip, -1);
		}
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
		assert_int_equal(ipcount_get(t, ip), i % 2 == 0 ? 0u : (unsigned)(i % 3 + 1));
	}
	ipcount_destroy(&t);
}

static void
test_exempt_lists(void **state)
{
	(void)state;
	struct ipcount_table *t = ipcount_create();

	assert_false(ipcount_exempt(t, "127.0.0.1", ""));
	assert_true(ipcount_exempt(t, "192.0.2.9", "10.0.0.0/8,192.0.2.0/24"));
	assert_false(ipcount_exempt(t, "192.0.3.9", "10.0.0.0/8,192.0.2.0/24"));
	assert_true(ipcount_exempt(t, "2001:db8::5", "192.0.2.1,2001:db8::/32"));
	assert_false(ipcount_exempt(t, "not-an-ip", "host,0.0.0.0/0"));
	/* host: loopback (all of 127/8 and ::1, also IPv4-mapped), not others. */
	assert_true(ipcount_exempt(t, "127.0.0.1", "host"));
	assert_true(ipcount_exempt(t, "127.1.2.3", "192.0.2.1,host"));
	assert_true(ipcount_exempt(t, "::1", "host"));
	assert_true(ipcount_exempt(t, "::ffff:127.0.0.1", "host"));
	assert_false(ipcount_exempt(t, "192.0.2.77", "host"));
	assert_false(ipcount_exempt(t, "::2", "host"));
	ipcount_destroy(&t);
}

/* Every address getifaddrs(3) lists is "this host". */
static void
test_host_has_interface_addresses(void **state)
{
	(void)state;
	struct hostaddr_set *set = hostaddr_set_create();
	struct ifaddrs *list;
	char ip[INET6_ADDRSTRLEN];
	int checked = 0;

	assert_int_equal(hostaddr_set_refresh(set), 0);
	assert_int_equal(getifaddrs(&list), 0);
	for (struct ifaddrs *ifa = list; ifa != NULL; ifa = ifa->ifa_next) {
		const void *a = NULL;
		if (ifa->ifa_addr == NULL)
			continue;
		if (ifa->ifa_addr->sa_family == AF_INET)
			a = &((struct sockaddr_in *)(void *)ifa->ifa_addr)->sin_addr;
		else if (ifa->ifa_addr->sa_family == AF_INET6)
			a = &((struct sockaddr_in6 *)(void *)ifa->ifa_addr)->sin6_addr;
		if (a == NULL || inet_ntop(ifa->ifa_addr->sa_family, a, ip, sizeof(ip)) == NULL)
			continue;
		if (strchr(ip, '%') != NULL)
			continue;
		assert_true(hostaddr_set_has(set, ip));
		checked++;
	}
	freeifaddrs(list);
	assert_true(checked >= 1); /* at least lo */
	assert_false(hostaddr_set_has(set, "192.0.2.254"));
	hostaddr_set_destroy(&set);
	assert_null(set);
	hostaddr_set_destroy(&set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_many_addresses),
		cmocka_unit_test(test_exempt_lists),
		cmocka_unit_test(test_host_has_interface_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
