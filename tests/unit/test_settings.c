/* test_settings.c: src/conf/settings.c, the one table of settings: lookup,
 * validation of every type, and config_load over a real database. */
#include "test_util.h"

#include <sqlite3.h>

#include "conf/datadir.h"
#include "conf/settings.h"
#include "lib/db.h"

#define VALID(key, value, norm) valid(__LINE__, (key), (value), (norm))
#define INVALID(key, value) invalid(__LINE__, (key), (value))

static const struct setting_def *
must_find(int line, const char *key)
{
	const struct setting_def *def = settings_find(key);

	if (def == NULL)
		fail_msg("line %d: no setting %s", line, key);
	return def;
}

static void
valid(int line, const char *key, const char *value, const char *want)
{
	const struct setting_def *def = must_find(line, key);
	char norm[CONFIG_STR_MAX];
	const char *error = NULL;

	memset(norm, 'X', sizeof(norm));
	if (settings_validate(def, value, norm, &error) != 0)
		fail_msg("line %d: %s=%s refused: %s", line, key, value, error);
	if (strcmp(norm, want) != 0)
		fail_msg("line %d: %s=%s normalised to [%s], want [%s]", line, key, value, norm, want);
}

static void
invalid(int line, const char *key, const char *value)
{
	const struct setting_def *def = must_find(line, key);
	char norm[CONFIG_STR_MAX];
	const char *error = NULL;

	if (settings_validate(def, value, norm, &error) != -1)
		fail_msg("line %d: %s=%s accepted as [%s]", line, key, value, norm);
	if (error == NULL || error[0] == '\0')
		fail_msg("line %d: %s=%s refused without a reason", line, key, value);
}

/* A syntactically valid domain of exactly n octets: labels of at most 63. */
static char *
domain_of_len(char *buf, size_t n)
{
	size_t o = 0;

	while (o < n) {
		size_t left = n - o;
		size_t label = left > 63 ? 63 : left;
		if (left == 64) /* 63 + "." would leave nothing after the dot */
			label = 61;
		memset(buf + o, 'h', label);
		o += label;
		if (o < n)
			buf[o++] = '.';
	}
	buf[n] = '\0';
	return buf;
}

/* ---- the table ---- */

static void
test_find(void **state)
{
	const struct setting_def *def = settings_find("smtp.max_recipients");

	assert_non_null(def);
	assert_string_equal(def->key, "smtp.max_recipients");
	assert_int_equal(def->type, SETTING_UINT);
	assert_string_equal(def->def, "100");
	assert_int_equal(def->min, 1);
	assert_int_equal(def->max, 100000);

	def = settings_find("log.level");
	assert_non_null(def);
	assert_int_equal(def->type, SETTING_ENUM);
	assert_string_equal(def->choices, "error|warn|info|debug");

	assert_int_equal(settings_find("smtp.allow_bare_lf")->type, SETTING_BOOL);
	assert_int_equal(settings_find("smtp.max_message_size")->type, SETTING_SIZE);
	assert_int_equal(settings_find("server.hostname")->type, SETTING_HOSTNAME);
	assert_int_equal(settings_find("smtp.listen")->type, SETTING_LISTEN);

	assert_null(settings_find("no.such.key"));
	assert_null(settings_find(""));
	assert_null(settings_find("smtp"));
	assert_null(settings_find("smtp.max_recipients "));
	assert_null(settings_find("smtp.max_recipient"));
	assert_null(settings_find("smtp.max_recipientss"));
}

/* Every entry is complete and consistent; its default validates to itself. */
static void
test_table_complete(void **state)
{
	size_t n = 0;
	const struct setting_def *defs = settings_defs(&n);

	assert_non_null(defs);
	assert_true(n >= 14);
	for (size_t i = 0; i < n; i++) {
		const struct setting_def *d = &defs[i];
		char norm[CONFIG_STR_MAX];
		const char *error = NULL;

		assert_non_null(d->key);
		if (d->desc == NULL || d->desc[0] == '\0')
			fail_msg("%s has no description", d->key);
		if (d->req == NULL || d->req[0] == '\0')
			fail_msg("%s has no requirement id", d->key);
		if (d->def == NULL)
			fail_msg("%s has no default", d->key);
		if (strchr(d->key, '.') == NULL)
			fail_msg("%s is not section.name", d->key);
		if (settings_find(d->key) != d)
			fail_msg("%s is not found by settings_find (duplicate key?)", d->key);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(defs[j].key, d->key) == 0)
				fail_msg("%s appears twice", d->key);
		}
		if (settings_validate(d, d->def, norm, &error) != 0)
			fail_msg("%s: default [%s] does not validate: %s", d->key, d->def, error);
		if (strcmp(norm, d->def) != 0)
			fail_msg("%s: default [%s] is not canonical (%s)", d->key, d->def, norm);
		switch (d->type) {
		case SETTING_UINT:
		case SETTING_SIZE:
			if (d->min > d->max)
				fail_msg("%s: min > max", d->key);
			if (d->size != sizeof(uint64_t))
				fail_msg("%s: field is not a uint64_t", d->key);
			break;
		case SETTING_BOOL:
			if (d->size != sizeof(bool))
				fail_msg("%s: field is not a bool", d->key);
			break;
		case SETTING_ENUM:
			if (d->choices == NULL || d->choices[0] == '\0')
				fail_msg("%s: enum without choices", d->key);
			/* fall through */
		case SETTING_HOSTNAME:
		case SETTING_LISTEN:
		case SETTING_PATH:
		case SETTING_TEXT:
		case SETTING_CIDRS:
		case SETTING_HOSTPORT:
		case SETTING_SERVERS:
		case SETTING_ADDRESS:
		case SETTING_DOMAINS:
			if (d->size < 2)
				fail_msg("%s: string field too small", d->key);
			break;
		}
		if (d->offset + d->size > sizeof(struct config))
			fail_msg("%s: field outside struct config", d->key);
	}
}

/* ---- validation, per type ---- */

static void
test_bool(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES", "True", "ON", "yEs" };
	static const char *const no[] = { "no", "false", "off", "0", "NO", "False", "Off" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		VALID("smtp.allow_bare_lf", yes[i], "yes");
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		VALID("smtp.percent_routing", no[i], "no");

	INVALID("smtp.allow_bare_lf", "");
	INVALID("smtp.allow_bare_lf", "y");
	INVALID("smtp.allow_bare_lf", "n");
	INVALID("smtp.allow_bare_lf", "2");
	INVALID("smtp.allow_bare_lf", "-1");
	INVALID("smtp.allow_bare_lf", "yess");
	INVALID("smtp.allow_bare_lf", " yes");
	INVALID("smtp.allow_bare_lf", "yes ");
	INVALID("smtp.allow_bare_lf", "enabled");
	INVALID("smtp.allow_bare_lf", "00");
}

static void
test_uint(void **state)
{
	VALID("smtp.max_recipients", "1", "1");
	VALID("smtp.max_recipients", "100000", "100000");
	VALID("smtp.max_recipients", "0042", "42");
	VALID("queue.workers", "256", "256");
	VALID("smtp.timeout_command", "86400", "86400");

	INVALID("smtp.max_recipients", "0");          /* below min */
	INVALID("smtp.max_recipients", "100001");     /* above max */
	INVALID("queue.workers", "257");
	INVALID("queue.workers", "0");
	INVALID("smtp.timeout_data", "86401");
	INVALID("smtp.max_recipients", "18446744073709551616");
	INVALID("smtp.max_recipients", "");
	INVALID("smtp.max_recipients", "-1");
	INVALID("smtp.max_recipients", "+5");
	INVALID("smtp.max_recipients", " 5");
	INVALID("smtp.max_recipients", "5 ");
	INVALID("smtp.max_recipients", "5x");
	INVALID("smtp.max_recipients", "1K");         /* suffixes are for sizes only */
	INVALID("smtp.max_recipients", "1e3");
	INVALID("smtp.max_recipients", "ten");
}

static void
test_size(void **state)
{
	VALID("smtp.max_message_size", "1024", "1024");
	VALID("smtp.max_message_size", "1K", "1024");
	VALID("smtp.max_message_size", "1k", "1024");
	VALID("smtp.max_message_size", "10M", "10485760");
	VALID("smtp.max_message_size", "10m", "10485760");
	VALID("smtp.max_message_size", "2G", "2147483648");
	VALID("smtp.max_message_size", "2048M", "2147483648");
	VALID("smtp.max_message_size", "2147483648", "2147483648");
	VALID("storage.min_free", "0", "0");
	VALID("storage.min_free", "64M", "67108864");
	VALID("storage.min_free", "18446744073709551615", "18446744073709551615");
	VALID("storage.min_free", "17179869183G", "18446744072635809792");

	INVALID("smtp.max_message_size", "1023");        /* below 1K */
	INVALID("smtp.max_message_size", "0");
	INVALID("smtp.max_message_size", "2147483649");  /* above 2G */
	INVALID("smtp.max_message_size", "3G");
	INVALID("smtp.max_message_size", "2049M");
	INVALID("smtp.max_message_size", "1T");
	INVALID("smtp.max_message_size", "1KB");
	INVALID("smtp.max_message_size", "K");
	INVALID("smtp.max_message_size", "");
	INVALID("smtp.max_message_size", "1.5M");
	INVALID("smtp.max_message_size", "-1M");
	INVALID("storage.min_free", "17179869184G");     /* overflows 64 bits */
	INVALID("storage.min_free", "18446744073709551616");
}

static void
test_hostname(void **state)
{
	char name[400];

	VALID("server.hostname", "", "");
	VALID("server.hostname", "mail.example.com", "mail.example.com");
	VALID("server.hostname", "MX1.Example.COM", "MX1.Example.COM");
	VALID("server.hostname", "localhost", "localhost");
	memset(name, 'h', 63);
	name[63] = '\0';
	VALID("server.hostname", name, name);

	INVALID("server.hostname", "bad_host.example");
	INVALID("server.hostname", "-mx.example");
	INVALID("server.hostname", "mx-.example");
	INVALID("server.hostname", "mx..example");
	INVALID("server.hostname", ".mx.example");
	INVALID("server.hostname", "mx.example.");
	INVALID("server.hostname", "mx example");
	INVALID("server.hostname", " ");
	INVALID("server.hostname", "[127.0.0.1]");
	INVALID("server.hostname", "mx.example:25");
	INVALID("server.hostname", "\xc3\xa9.example");
	memset(name, 'h', 64);
	name[64] = '\0';
	INVALID("server.hostname", name);                 /* label of 64 */
	/* 255 octets is the RFC 5321 maximum and fits the field; 256 is refused */
	domain_of_len(name, 255);
	VALID("server.hostname", name, name);
	domain_of_len(name, 256);
	INVALID("server.hostname", name);
}

static void
test_listen(void **state)
{
	VALID("smtp.listen", "", "");
	VALID("smtp.listen", "127.0.0.1:25", "127.0.0.1:25");
	VALID("smtp.listen", "*:25", "*:25");
	VALID("smtp.listen", "127.0.0.1:25,[::1]:25", "127.0.0.1:25,[::1]:25");
	VALID("smtp.listen", "127.0.0.1:25, [::1]:587", "127.0.0.1:25, [::1]:587");

	INVALID("smtp.listen", "localhost:25");
	INVALID("smtp.listen", "127.0.0.1");
	INVALID("smtp.listen", "127.0.0.1:0");
	INVALID("smtp.listen", "127.0.0.1:65536");
	INVALID("smtp.listen", "::1:25");
	INVALID("smtp.listen", "127.0.0.1:25,");
	INVALID("smtp.listen", ",");
}

static void
test_enum(void **state)
{
	VALID("log.level", "error", "error");
	VALID("log.level", "warn", "warn");
	VALID("log.level", "info", "info");
	VALID("log.level", "debug", "debug");

	INVALID("log.level", "");
	INVALID("log.level", "verbose");
	INVALID("log.level", "inf");                     /* a prefix of a choice */
	INVALID("log.level", "infos");
	INVALID("log.level", "error|warn");
	INVALID("log.level", "|");
	INVALID("log.level", "info ");
	INVALID("log.level", "warning");
}

static void
test_path(void **state)
{
	char *dir = test_mkdtemp();
	char file[4200], missing[4200];

	snprintf(file, sizeof(file), "%s/cert.pem", dir);
	test_write_file(file, "x", 1);
	snprintf(missing, sizeof(missing), "%s/missing.pem", dir);

	assert_int_equal(settings_find("tls.cert_file")->type, SETTING_PATH);
	VALID("tls.cert_file", "", "");
	VALID("tls.cert_file", file, file);
	VALID("tls.key_file", file, file);
	INVALID("tls.cert_file", missing);
	INVALID("tls.key_file", "/nonexistent/dir/key.pem");
	test_rm_rf(dir);
	free(dir);
}

static void
test_text(void **state)
{
	assert_int_equal(settings_find("tls.ciphers")->type, SETTING_TEXT);
	VALID("tls.ciphers", "", "");
	VALID("tls.ciphers", "HIGH:!aNULL:!MD5", "HIGH:!aNULL:!MD5");
	VALID("tls.ciphers", "ECDHE+AESGCM:@STRENGTH", "ECDHE+AESGCM:@STRENGTH");
	INVALID("tls.ciphers", "HIGH :!aNULL");
	INVALID("tls.ciphers", " HIGH");
	INVALID("tls.ciphers", "HIGH\t");
	INVALID("tls.ciphers", "HIGH\n");
	INVALID("tls.ciphers", "HIGH\x7f");
	INVALID("tls.ciphers", "\xc3\xa9");
}

/* O1: HOST[:PORT] routes, resolver lists, addresses, domain lists. */
static void
test_outbound_types(void **state)
{
	VALID("route.router", "", "");
	VALID("route.router", "mail.example.test", "mail.example.test");
	VALID("route.router", "mail.example.test:2525", "mail.example.test:2525");
	VALID("route.router", "192.0.2.1:25", "192.0.2.1:25");
	VALID("route.router", "[2001:db8::1]:587", "[2001:db8::1]:587");
	VALID("route.router", "[::1]", "[::1]");
	INVALID("route.router", "2001:db8::1");          /* IPv6 needs brackets */
	INVALID("route.router", "mail.example.test:0");
	INVALID("route.router", "mail.example.test:99999");
	INVALID("route.router", "-bad.example");
	INVALID("route.router", "bad..example");
	INVALID("route.router", "[mail.example.test]:25");
	INVALID("route.router", ":25");

	VALID("dns.servers", "", "");
	VALID("dns.servers", "127.0.0.1:5353", "127.0.0.1:5353");
	VALID("dns.servers", "127.0.0.1,[::1]:53", "127.0.0.1,[::1]:53");
	INVALID("dns.servers", "resolver.example.test");  /* resolvers by address only */
	INVALID("dns.servers", "127.0.0.1,");

	VALID("queue.nondelivery", "", "");
	VALID("queue.nondelivery", "nondelivery@example.test", "nondelivery@example.test");
	INVALID("queue.nondelivery", "nondelivery");
	INVALID("queue.nondelivery", "@example.test");
	INVALID("queue.nondelivery", "a b@example.test");

	VALID("etrn.domains", "", "");
	VALID("etrn.domains", "a.example,b.example", "a.example,b.example");
	INVALID("etrn.domains", "a.example,,b.example");
	INVALID("etrn.domains", "a_example");

	VALID("relay.tls", "verify", "verify");
	INVALID("relay.tls", "required");
}

/* Address lists; server.per_ip_exceptions also takes the word host, the
 * other lists do not. */
static void
test_cidrs(void **state)
{
	(void)state;
	valid(__LINE__, "auth.local_networks", "10.0.0.0/8,::1", "10.0.0.0/8,::1");
	valid(__LINE__, "auth.local_networks", "", "");
	invalid(__LINE__, "auth.local_networks", "host");
	invalid(__LINE__, "auth.local_networks", "10.0.0.0/8,");
	valid(__LINE__, "server.per_ip_exceptions", "host", "host");
	valid(__LINE__, "server.per_ip_exceptions", "host,192.0.2.0/24,2001:db8::/32",
	    "host,192.0.2.0/24,2001:db8::/32");
	valid(__LINE__, "server.per_ip_exceptions", "", "");
	invalid(__LINE__, "server.per_ip_exceptions", "hosts");
	invalid(__LINE__, "server.per_ip_exceptions", "host,,::1");
	invalid(__LINE__, "server.per_ip_exceptions", "192.0.2.0/33");
}

static void
test_too_long(void **state)
{
	char big[CONFIG_STR_MAX + 10];

	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	INVALID("smtp.max_recipients", big);
	INVALID("smtp.allow_bare_lf", big);

	/* a long but well-formed listen list: too long for the field */
	size_t o = 0;
	while (o + 20 < sizeof(big))
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s127.0.0.1:%zu",
		    o > 0 ? "," : "", 1000 + o);
	INVALID("smtp.listen", big);
}

/* ---- config_load, settings_get/store over a real database ---- */

struct fixture {
	char *dir;
	struct sqlite3 *db;
};

static int
setup_db(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *error = NULL;

	assert_non_null(f);
	f->dir = test_mkdtemp();
	f->db = datadir_open(f->dir, &error);
	if (f->db == NULL)
		fail_msg("datadir_open: %s", error);
	*state = f;
	return 0;
}

static int
teardown_db(void **state)
{
	struct fixture *f = *state;

	db_close(&f->db);
	test_rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void
store(struct sqlite3 *db, const char *key, const char *value)
{
	char *error = NULL;

	if (settings_store(db, key, value, &error) != 0)
		fail_msg("settings_store %s: %s", key, error);
}

static void
test_config_defaults(void **state)
{
	struct fixture *f = *state;
	struct config cfg;
	char *error = NULL;

	memset(&cfg, 0x5A, sizeof(cfg));
	assert_int_equal(config_load(f->db, &cfg, &error), 0);
	assert_null(error);
	assert_string_equal(cfg.log_level, "info");
	assert_string_equal(cfg.smtp_listen, "127.0.0.1:2525");
	assert_int_equal(cfg.smtp_max_message_size, 10485760);
	assert_int_equal(cfg.smtp_max_recipients, 100);
	assert_int_equal(cfg.smtp_max_sessions, 1000);
	assert_int_equal(cfg.smtp_max_sessions_per_ip, 50);
	assert_int_equal(cfg.smtp_timeout_command, 300);
	assert_int_equal(cfg.smtp_timeout_data, 180);
	assert_int_equal(cfg.smtp_max_errors, 20);
	assert_false(cfg.smtp_allow_bare_lf);
	assert_false(cfg.smtp_percent_routing);
	assert_int_equal(cfg.storage_min_free, 67108864);
	assert_int_equal(cfg.queue_workers, 8);
	/* empty server.hostname: the system's name, never empty */
	assert_true(cfg.server_hostname[0] != '\0');
	assert_true(strlen(cfg.server_hostname) < sizeof(cfg.server_hostname));

	char buf[CONFIG_STR_MAX];
	assert_int_equal(settings_get(f->db, "smtp.max_recipients", buf), 0);
	assert_string_equal(buf, "100");
	assert_int_equal(settings_get(f->db, "server.hostname", buf), 0);
	assert_string_equal(buf, "");
	assert_int_equal(settings_get(f->db, "no.such.key", buf), -1);
	assert_false(settings_is_stored(f->db, "smtp.max_recipients"));
}

static void
test_config_stored(void **state)
{
	struct fixture *f = *state;
	struct config cfg;
	char *error = NULL;
	char buf[CONFIG_STR_MAX];

	store(f->db, "server.hostname", "mx.example.org");
	store(f->db, "log.level", "debug");
	store(f->db, "smtp.listen", "*:25,[::1]:587");
	store(f->db, "smtp.max_message_size", "1048576");
	store(f->db, "smtp.max_recipients", "5");
	store(f->db, "smtp.allow_bare_lf", "yes");
	store(f->db, "smtp.percent_routing", "yes");
	store(f->db, "storage.min_free", "18446744073709551615");
	store(f->db, "queue.workers", "3");
	/* a second store replaces the first */
	store(f->db, "smtp.max_errors", "7");
	store(f->db, "smtp.max_errors", "9");

	assert_int_equal(config_load(f->db, &cfg, &error), 0);
	assert_string_equal(cfg.server_hostname, "mx.example.org");
	assert_string_equal(cfg.log_level, "debug");
	assert_string_equal(cfg.smtp_listen, "*:25,[::1]:587");
	assert_int_equal(cfg.smtp_max_message_size, 1048576);
	assert_int_equal(cfg.smtp_max_recipients, 5);
	assert_true(cfg.smtp_allow_bare_lf);
	assert_true(cfg.smtp_percent_routing);
	assert_true(cfg.storage_min_free == UINT64_MAX);
	assert_int_equal(cfg.queue_workers, 3);
	assert_int_equal(cfg.smtp_max_errors, 9);
	/* the untouched ones keep their defaults */
	assert_int_equal(cfg.smtp_timeout_data, 180);
	assert_int_equal(cfg.smtp_max_sessions, 1000);

	assert_int_equal(settings_get(f->db, "smtp.max_errors", buf), 0);
	assert_string_equal(buf, "9");
	assert_true(settings_is_stored(f->db, "smtp.max_errors"));
	assert_false(settings_is_stored(f->db, "smtp.timeout_data"));
}

/* The values `config set` stores are settings_validate's canonical text; the
 * loaded struct agrees with them for every setting. */
static void
test_config_validate_then_load(void **state)
{
	struct fixture *f = *state;
	struct config cfg;
	char norm[CONFIG_STR_MAX];
	const char *verror = NULL;
	char *error = NULL;

	assert_int_equal(settings_validate(settings_find("smtp.max_message_size"), "20M", norm,
	    &verror), 0);
	store(f->db, "smtp.max_message_size", norm);
	assert_int_equal(settings_validate(settings_find("smtp.allow_bare_lf"), "ON", norm,
	    &verror), 0);
	store(f->db, "smtp.allow_bare_lf", norm);
	assert_int_equal(config_load(f->db, &cfg, &error), 0);
	assert_int_equal(cfg.smtp_max_message_size, 20 * 1024 * 1024);
	assert_true(cfg.smtp_allow_bare_lf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_table_complete),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_hostname),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_enum),
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_outbound_types),
		cmocka_unit_test(test_cidrs),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test_setup_teardown(test_config_defaults, setup_db, teardown_db),
		cmocka_unit_test_setup_teardown(test_config_stored, setup_db, teardown_db),
		cmocka_unit_test_setup_teardown(test_config_validate_then_load, setup_db, teardown_db),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
