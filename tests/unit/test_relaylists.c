/* test_relaylists.c: the relay-control lists (R1, R2): src/lib/cidrset.c
 * (refused and relay ranges), src/conf/relaylists.c (near domains and their
 * subdomains, loading from the lists table) and the DNSBL query names of
 * src/lib/dnsbl.c (RFC 5782 §2.1, §2.4). */
#include "test_util.h"

#include <sqlite3.h>

#include "conf/relaylists.h"
#include "lib/cidrset.h"
#include "lib/dnsbl.h"

static void
test_cidrset(void **state)
{
	(void)state;
	struct cidrset *s = cidrset_create();

	assert_false(cidrset_has(s, "192.0.2.1"));
	assert_int_equal(cidrset_add(s, "192.0.2.0/24"), 0);
	assert_int_equal(cidrset_add(s, "198.51.100.7"), 0);
	assert_int_equal(cidrset_add(s, "2001:db8::/33"), 0);
	assert_int_equal(cidrset_add(s, "10.0.0.0/33"), -1);
	assert_int_equal(cidrset_add(s, "example.org"), -1);
	assert_int_equal(cidrset_add(s, "::ffff:203.0.113.0/120"), 0);
	assert_int_equal(cidrset_count(s), 4);
	assert_true(cidrset_has(s, "192.0.2.0"));
	assert_true(cidrset_has(s, "192.0.2.255"));
	assert_false(cidrset_has(s, "192.0.3.0"));
	assert_true(cidrset_has(s, "198.51.100.7"));
	assert_false(cidrset_has(s, "198.51.100.8"));
	assert_true(cidrset_has(s, "2001:db8:7fff::1"));
	assert_false(cidrset_has(s, "2001:db8:8000::1"));
	/* v4-mapped addresses are their IPv4 address, both ways */
	assert_true(cidrset_has(s, "::ffff:192.0.2.9"));
	assert_true(cidrset_has(s, "203.0.113.77"));
	assert_false(cidrset_has(s, "not an address"));
	assert_false(cidrset_has(s, "192.0.2.0/24"));
	cidrset_destroy(&s);
	assert_null(s);

	s = cidrset_create();
	assert_int_equal(cidrset_add(s, "0.0.0.0/0"), 0);
	assert_true(cidrset_has(s, "203.0.113.1"));
	assert_false(cidrset_has(s, "2001:db8::1"));
	assert_int_equal(cidrset_add(s, "::/0"), 0);
	assert_true(cidrset_has(s, "2001:db8::1"));
	cidrset_destroy(&s);
}

static void
test_near_domains(void **state)
{
	(void)state;
	sqlite3 *db = NULL;
	char *error = NULL;

	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE lists(name TEXT, entry TEXT);"
	    "INSERT INTO lists VALUES('relay-domains', 'near.test'), "
	    "('relay-networks', '192.0.2.0/24'), ('relay-networks', 'junk'), "
	    "('refused', '2001:db8::/32'), ('trusted', '10.0.0.0/8');", NULL, NULL, NULL),
	    SQLITE_OK);
	struct relay_lists *rl = relay_lists_load(db, &error);
	assert_non_null(rl);
	size_t d, n, r;
	relay_lists_counts(rl, &d, &n, &r);
	assert_int_equal(d, 1);
	assert_int_equal(n, 1);   /* 'junk' skipped */
	assert_int_equal(r, 1);
	assert_true(relay_lists_near_domain(rl, "near.test"));
	assert_true(relay_lists_near_domain(rl, "NEAR.Test"));
	assert_true(relay_lists_near_domain(rl, "mail.near.test"));
	assert_false(relay_lists_near_domain(rl, "xnear.test"));
	assert_false(relay_lists_near_domain(rl, "near.test.evil"));
	assert_false(relay_lists_near_domain(rl, "near.test."));
	assert_false(relay_lists_near_domain(rl, "test"));
	assert_false(relay_lists_near_domain(rl, "[192.0.2.1]"));
	assert_true(relay_lists_network(rl, "192.0.2.77"));
	assert_false(relay_lists_network(rl, "10.1.1.1"));      /* trusted is not relay trust */
	assert_true(relay_lists_refused(rl, "2001:db8::25"));
	assert_false(relay_lists_refused(rl, "192.0.2.77"));
	relay_lists_destroy(&rl);
	sqlite3_close(db);
}

static void
test_query_names(void **state)
{
	(void)state;
	char buf[DNS_NAME_MAX];

	assert_int_equal(dnsbl_query_name("192.0.2.99", "bl.test", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "99.2.0.192.bl.test");
	assert_int_equal(dnsbl_query_name("::ffff:127.0.0.2", "bl.test", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2.0.0.127.bl.test");
	/* RFC 5782 §2.4: 32 nibbles, least significant first */
	assert_int_equal(dnsbl_query_name("2001:db8:1:2:3:4:567:89ab", "bl.test", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2."
	    "bl.test");
	assert_int_equal(dnsbl_query_name("not-an-ip", "bl.test", buf, sizeof(buf)), -1);
	assert_int_equal(dnsbl_query_name("192.0.2.99", "bl.test", buf, 8), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidrset),
		cmocka_unit_test(test_near_domains),
		cmocka_unit_test(test_query_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
