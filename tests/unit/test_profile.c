/* test_profile.c: src/conf/profile.c, outbound server profiles (MISSION X1,
 * X2, C1-C5): value parsers, cross-field rules, rows over a real database
 * made by datadir_open() in a temp dir, sealed secrets, the daemon's
 * snapshots and the choice of a profile by sender. */
#include "test_util.h"

#include <sqlite3.h>

#include "conf/datadir.h"
#include "conf/profile.h"
#include "conf/settings.h"
#include "lib/strutil.h"
#include "lib/db.h"
#include "mail/smtp_reply.h"

struct fixture {
	char *datadir;
	struct sqlite3 *db;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *error = NULL;

	f->datadir = test_mkdtemp();
	f->db = datadir_open(f->datadir, &error);
	if (f->db == NULL)
		fail_msg("datadir_open: %s", error);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	db_close(&f->db);
	test_rm_rf(f->datadir);
	free(f->datadir);
	free(f);
	return 0;
}

static void
test_auth_parse(void **state)
{
	char norm[PROFILE_AUTH_MAX];
	unsigned m = 0;
	const char *why = NULL;

	assert_int_equal(profile_auth_parse("all", norm, &m, &why), 0);
	assert_string_equal(norm, "ALL");
	assert_int_equal(m, SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_LOGIN | SMTP_AUTH_PLAIN);
	assert_int_equal(profile_auth_parse("plain,cram-md5,PLAIN", norm, &m, &why), 0);
	assert_string_equal(norm, "PLAIN,CRAM-MD5");     /* order kept, duplicate dropped */
	assert_int_equal(m, SMTP_AUTH_PLAIN | SMTP_AUTH_CRAM_MD5);
	assert_int_equal(profile_auth_parse("XOAUTH2", norm, &m, &why), 0);
	assert_int_equal(m, SMTP_AUTH_XOAUTH2);
	assert_int_equal(profile_auth_parse("PLAIN,XOAUTH2", norm, &m, &why), -1);
	assert_int_equal(profile_auth_parse("DIGEST-MD5", norm, &m, &why), -1);
	assert_int_equal(profile_auth_parse("PLAIN,", norm, &m, &why), -1);
	assert_int_equal(profile_auth_parse(",PLAIN", norm, &m, &why), -1);
	assert_int_equal(profile_auth_parse("", norm, &m, &why), -1);
}

static void
test_props_and_senders(void **state)
{
	char norm[PROFILE_TEXT_MAX + 1];
	struct profile_props pp;
	const char *why = NULL;

	assert_int_equal(profile_props_parse("helo=out.example.com,pipelining=no,source=127.0.0.1,"
	    "data_timeout_ms=5000,max_messages=3", norm, &pp, &why), 0);
	assert_string_equal(pp.helo, "out.example.com");
	assert_true(pp.no_pipelining);
	assert_string_equal(pp.source, "127.0.0.1");
	assert_int_equal(pp.data_timeout_ms, 5000);
	assert_int_equal(pp.max_messages, 3);
	assert_int_equal(profile_props_parse("", norm, &pp, &why), 0);
	assert_string_equal(norm, "");
	assert_int_equal(profile_props_parse("colour=blue", norm, &pp, &why), -1);
	assert_non_null(strstr(why, "unknown property"));
	assert_int_equal(profile_props_parse("helo", norm, &pp, &why), -1);
	assert_int_equal(profile_props_parse("source=not-an-ip", norm, &pp, &why), -1);
	assert_int_equal(profile_props_parse("pipelining=maybe", norm, &pp, &why), -1);
	assert_int_equal(profile_props_parse("max_messages=0", norm, &pp, &why), -1);
	assert_int_equal(profile_props_parse("helo=a.test,", norm, &pp, &why), -1);

	assert_int_equal(profile_senders_parse("Tenant.Example,Bob@Other.Example", norm, &why), 0);
	assert_string_equal(norm, "tenant.example,bob@other.example");
	assert_int_equal(profile_senders_parse("not a domain", norm, &why), -1);
	assert_int_equal(profile_senders_parse("@example.com", norm, &why), -1);
	assert_int_equal(profile_senders_parse("a.test,,b.test", norm, &why), -1);
}

static void
test_check(void **state)
{
	struct profile p;
	char err[200];

	profile_init(&p, "default");
	assert_true(p.builtin);
	assert_int_equal(p.port, 25);
	assert_string_equal(p.tls_protocol, "TLSv1.3");
	assert_int_equal(profile_check(&p, err, sizeof(err)), 0); /* no smarthost: fine */
	p.login = PROFILE_LOGIN_SMTP_AUTH;
	assert_int_equal(profile_check(&p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "account"));
	str_copy(p.account, "sysop", sizeof(p.account));
	assert_int_equal(profile_check(&p, err, sizeof(err)), 0);
	str_copy(p.senders, "a.test", sizeof(p.senders));
	assert_int_equal(profile_check(&p, err, sizeof(err)), -1);

	profile_init(&p, "tenant-a");
	assert_false(p.builtin);
	assert_int_equal(profile_check(&p, err, sizeof(err)), -1);  /* no host */
	str_copy(p.host, "smtp.a.test", sizeof(p.host));
	assert_int_equal(profile_check(&p, err, sizeof(err)), -1);  /* no senders */
	str_copy(p.senders, "a.test", sizeof(p.senders));
	assert_int_equal(profile_check(&p, err, sizeof(err)), 0);
	str_copy(p.xmailer, "bad\r\nBcc: x", sizeof(p.xmailer));   /* header injection */
	assert_int_equal(profile_check(&p, err, sizeof(err)), -1);
	p.xmailer[0] = '\0';
	p.login = PROFILE_LOGIN_POP;
	str_copy(p.pop_account, "u", sizeof(p.pop_account));
	assert_int_equal(profile_check(&p, err, sizeof(err)), -1);  /* no POP3 server */
	str_copy(p.pop_host, "pop.a.test", sizeof(p.pop_host));
	assert_int_equal(profile_check(&p, err, sizeof(err)), 0);
	p.port = 0;
	assert_int_equal(profile_check(&p, err, sizeof(err)), -1);
	p.port = 465;
	str_copy(p.tls_protocol, "SSLv3", sizeof(p.tls_protocol));
	assert_int_equal(profile_check(&p, err, sizeof(err)), -1);
	assert_false(profile_id_valid("Upper"));
	assert_false(profile_id_valid(""));
	assert_true(profile_id_valid("example.com"));
}

static void
test_rows_and_secrets(void **state)
{
	struct fixture *f = *state;
	struct profile p, q;
	char *error = NULL, err[256];

	/* the schema made the built-in profile */
	assert_int_equal(profile_db_get(f->db, "default", &p, &error), 1);
	assert_true(p.builtin);
	assert_string_equal(p.host, "");
	str_copy(p.host, "smtp.example.com", sizeof(p.host));
	p.login = PROFILE_LOGIN_SMTP_AUTH;
	str_copy(p.account, "sysop", sizeof(p.account));
	p.secret = profile_secret_seal(f->datadir, "default", "smtp", "pa55", err, sizeof(err));
	assert_non_null(p.secret);
	assert_null(strstr(p.secret, "pa55"));
	assert_int_equal(profile_db_put(f->db, &p, false, &error), 0);
	profile_clear(&p);
	/* the host is the setting relay.smarthost */
	char host[CONFIG_STR_MAX];
	assert_int_equal(settings_get(f->db, "relay.smarthost", host), 0);
	assert_string_equal(host, "smtp.example.com");
	/* the key file is private */
	char path[4200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/secret.key", f->datadir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	profile_init(&q, "tenant-a");
	str_copy(q.host, "127.0.0.9", sizeof(q.host));
	str_copy(q.senders, "a.test,boss@b.test", sizeof(q.senders));
	assert_int_equal(profile_db_put(f->db, &q, true, &error), 0);
	assert_int_equal(profile_db_put(f->db, &q, true, &error), -1);   /* exists */
	assert_non_null(strstr(error, "exists"));
	free(error);
	error = NULL;
	assert_int_equal(profile_db_get(f->db, "nope", &p, &error), 0);
	assert_int_equal(profile_db_del(f->db, "default", &error), -1);  /* built in */
	free(error);
	error = NULL;

	/* the daemon's view: secrets opened, choice by sender */
	struct profiles *ps = profiles_create(f->db, f->datadir);
	profiles_reload(ps, "smtp.example.com");
	struct profile *a = profiles_select(ps, "boss@b.test");
	assert_non_null(a);
	assert_string_equal(a->id, "tenant-a");
	struct profile *b = profiles_select(ps, "x@A.TEST");
	assert_string_equal(b->id, "tenant-a");
	struct profile *d = profiles_select(ps, "other@b.test");
	assert_string_equal(d->id, "default");
	assert_string_equal(d->host, "smtp.example.com");
	assert_string_equal(d->secret_plain, "pa55");
	assert_true(d->mechs != 0);
	struct profile *bounce = profiles_select(ps, "");
	assert_string_equal(bounce->id, "default");
	/* a snapshot outlives a reload */
	uint64_t gen = d->generation;
	profiles_reload(ps, "smtp.example.com");
	assert_string_equal(d->secret_plain, "pa55");
	struct profile *d2 = profiles_select(ps, "x@c.test");
	assert_true(d2->generation > gen);
	profile_unref(&a);
	profile_unref(&b);
	profile_unref(&d);
	profile_unref(&d2);
	profile_unref(&bounce);
	assert_null(a);
	/* the default profile not in use: no profile, mail goes by MX */
	assert_int_equal(profile_db_get(f->db, "default", &p, &error), 1);
	p.host[0] = '\0';
	p.login = PROFILE_LOGIN_NONE;
	assert_int_equal(profile_db_put(f->db, &p, false, &error), 0);
	profile_clear(&p);
	profiles_reload(ps, "");
	assert_null(profiles_select(ps, "x@c.test"));
	/* another key: the secret does not open, and the profile says why */
	assert_int_equal(profile_db_get(f->db, "default", &p, &error), 1);
	p.login = PROFILE_LOGIN_SMTP_AUTH;
	assert_int_equal(profile_db_put(f->db, &p, false, &error), 0);
	profile_clear(&p);
	assert_int_equal(unlink(path), 0);
	char *other = profile_secret_seal(f->datadir, "x", "smtp", "y", err, sizeof(err));
	free(other);
	profiles_reload(ps, "");
	d = profiles_select(ps, "x@c.test");
	assert_non_null(d);
	assert_null(d->secret_plain);
	assert_non_null(strstr(d->secret_error, "does not open"));
	profile_unref(&d);
	profiles_destroy(&ps);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_parse),
		cmocka_unit_test(test_props_and_senders),
		cmocka_unit_test(test_check),
		cmocka_unit_test_setup_teardown(test_rows_and_secrets, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
