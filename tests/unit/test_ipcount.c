/* test_ipcount.c: src/lib/ipcount.c, sessions per client address (S6, P2). */
#include "test_util.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_many_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
