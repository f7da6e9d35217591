/* test_directory.c: src/conf/directory.c, domains, users, aliases and RCPT
 * resolution, over a real database made by datadir_open() in a temp dir. */
#include "test_util.h"

#include <sqlite3.h>

#include "conf/datadir.h"
#include "conf/directory.h"
#include "lib/db.h"

struct fixture {
	char *datadir;
	struct sqlite3 *db;
	struct directory *dir;
	struct dir_targets *out; /* 80 KB: not on the stack */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *error = NULL;

	assert_non_null(f);
	f->datadir = test_mkdtemp();
	f->db = datadir_open(f->datadir, &error);
	if (f->db == NULL)
		fail_msg("datadir_open: %s", error);
	f->dir = directory_create(f->db);
	assert_non_null(f->dir);
	f->out = calloc(1, sizeof(*f->out));
	assert_non_null(f->out);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	directory_destroy(&f->dir);
	assert_null(f->dir);
	db_close(&f->db);
	test_rm_rf(f->datadir);
	free(f->datadir);
	free(f->out);
	free(f);
	return 0;
}

/* ---- helpers that fail the test with the database's reason ---- */

#define OK(call) do { \
		char *error_ = NULL; \
		if ((call) != 0) \
			fail_msg("%s: %s", #call, error_ != NULL ? error_ : "?"); \
	} while (0)
/* The call takes &error_ as its last argument. */
#define DOMAIN_ADD(f, d, pm) OK(directory_domain_add((f)->dir, (d), (pm), &error_))
#define USER_ADD(f, a) OK(directory_user_add((f)->dir, (a), NULL, NULL, &error_))
#define ALIAS_ADD(f, a, t) OK(directory_alias_add((f)->dir, (a), (t), &error_))

/* errorp, not *errorp: the argument is read after the call has set it. */
static void
expect_fail(int rc, char **errorp)
{
	assert_int_equal(rc, -1);
	assert_non_null(*errorp);
	assert_true((*errorp)[0] != '\0');
	free(*errorp);
	*errorp = NULL;
}

static enum dir_result
resolve(struct fixture *f, const char *local, const char *domain, bool percent)
{
	struct mail_addr a;

	memset(&a, 0, sizeof(a));
	snprintf(a.local, sizeof(a.local), "%s", local);
	snprintf(a.domain, sizeof(a.domain), "%s", domain);
	memset(f->out, 0x5A, sizeof(*f->out));
	return directory_resolve(f->dir, &a, percent, f->out);
}

/* out holds exactly the listed mailboxes, in any order. */
static void
expect_targets(const struct fixture *f, size_t n, ...)
{
	va_list ap;

	if (f->out->n != n) {
		for (size_t i = 0; i < f->out->n && i < 16; i++)
			print_message("  got %s\n", f->out->mailbox[i]);
		fail_msg("%zu targets, want %zu", f->out->n, n);
	}
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		const char *want = va_arg(ap, const char *);
		bool found = false;
		for (size_t j = 0; j < f->out->n && !found; j++)
			found = strcmp(f->out->mailbox[j], want) == 0;
		if (!found) {
			va_end(ap);
			fail_msg("target %s missing", want);
		}
	}
	va_end(ap);
}

#define RESOLVES_TO_1(f, local, domain, pct, t1) do { \
		assert_int_equal(resolve((f), (local), (domain), (pct)), DIR_LOCAL); \
		expect_targets((f), 1, (t1)); \
	} while (0)

/* One integer from sql with one text parameter. */
static int
count_sql(const struct fixture *f, const char *sql, const char *arg)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Exact (case-sensitive) matches, to see what was stored. */
static int
count_domains_named(const struct fixture *f, const char *name)
{
	return count_sql(f, "SELECT count(*) FROM domains WHERE name = ? COLLATE BINARY", name);
}

static int
count_aliases(const struct fixture *f, const char *address)
{
	return count_sql(f, "SELECT count(*) FROM aliases WHERE address = ?", address);
}

/* ---- the embedded default ---- */

static void
test_default_domain(void **state)
{
	struct fixture *f = *state;

	assert_ptr_equal(directory_db(f->dir), f->db);
	assert_true(directory_domain_exists(f->dir, DATADIR_DEFAULT_DOMAIN));
	assert_true(directory_domain_exists(f->dir, "EXAMPLE.Test"));
	assert_false(directory_domain_exists(f->dir, "example.org"));
	assert_false(directory_domain_exists(f->dir, ""));
	assert_false(directory_domain_exists(f->dir, "sub.example.test"));
}

/* ---- domains ---- */

static void
test_domain_add_del(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;

	DOMAIN_ADD(f, "example.org", NULL);
	assert_true(directory_domain_exists(f->dir, "example.org"));
	assert_true(directory_domain_exists(f->dir, "Example.ORG"));

	/* twice, in any case: refused */
	expect_fail(directory_domain_add(f->dir, "example.org", NULL, &error), &error);
	error = NULL;
	expect_fail(directory_domain_add(f->dir, "EXAMPLE.org", NULL, &error), &error);

	/* stored in lower case */
	DOMAIN_ADD(f, "Mixed.Example", NULL);
	assert_int_equal(count_domains_named(f, "mixed.example"), 1);

	OK(directory_domain_del(f->dir, "example.org", &error_));
	assert_false(directory_domain_exists(f->dir, "example.org"));
	error = NULL;
	expect_fail(directory_domain_del(f->dir, "example.org", &error), &error);
	error = NULL;
	expect_fail(directory_domain_del(f->dir, "never.example", &error), &error);
	/* the other domains are untouched */
	assert_true(directory_domain_exists(f->dir, "example.test"));
	assert_true(directory_domain_exists(f->dir, "mixed.example"));
}

static void
test_domain_del_with_users_and_aliases(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;

	DOMAIN_ADD(f, "example.org", NULL);
	USER_ADD(f, "bob@example.org");
	ALIAS_ADD(f, "info@example.org", "bob@example.org");

	/* users first */
	expect_fail(directory_domain_del(f->dir, "example.org", &error), &error);
	assert_true(directory_domain_exists(f->dir, "example.org"));

	OK(directory_user_del(f->dir, "bob@example.org", &error_));
	OK(directory_domain_del(f->dir, "example.org", &error_));
	assert_false(directory_domain_exists(f->dir, "example.org"));
	/* its aliases went with it: re-adding the domain does not bring them back */
	DOMAIN_ADD(f, "example.org", NULL);
	assert_int_equal(count_aliases(f, "info@example.org"), 0);
	assert_int_equal(resolve(f, "info", "example.org", false), DIR_UNKNOWN);
}

/* ---- users ---- */

static void
test_user_add_del(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;

	USER_ADD(f, "bob@example.test");
	RESOLVES_TO_1(f, "bob", "example.test", false, "bob@example.test");
	/* any case of the address finds the user; targets are lower case */
	RESOLVES_TO_1(f, "BoB", "Example.TEST", false, "bob@example.test");

	expect_fail(directory_user_add(f->dir, "bob@example.test", NULL, NULL, &error), &error);
	error = NULL;
	expect_fail(directory_user_add(f->dir, "BOB@example.test", NULL, NULL, &error), &error);
	error = NULL;
	expect_fail(directory_user_add(f->dir, "bob@nowhere.example", NULL, NULL, &error), &error);
	error = NULL;
	expect_fail(directory_user_add(f->dir, "no-at-sign", NULL, NULL, &error), &error);

	OK(directory_user_del(f->dir, "bob@example.test", &error_));
	assert_int_equal(resolve(f, "bob", "example.test", false), DIR_UNKNOWN);
	assert_int_equal(f->out->n, 0);
	error = NULL;
	expect_fail(directory_user_del(f->dir, "bob@example.test", &error), &error);
}

/* Looks up credentials into fixed buffers; returns directory_user_credentials(). */
static int
creds(struct fixture *f, const char *address, char *hash, char *cram)
{
	memset(hash, 'X', 128);
	memset(cram, 'X', 128);
	return directory_user_credentials(f->dir, address, hash, 128, cram, 128);
}

static void
test_user_credentials(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	char hash[128], cram[128];

	OK(directory_user_add(f->dir, "bob@example.test", "$6$salt$hash", "cram-secret", &error_));
	USER_ADD(f, "carol@example.test");

	assert_int_equal(creds(f, "bob@example.test", hash, cram), 1);
	assert_string_equal(hash, "$6$salt$hash");
	assert_string_equal(cram, "cram-secret");
	assert_int_equal(creds(f, "Bob@EXAMPLE.test", hash, cram), 1);
	assert_string_equal(hash, "$6$salt$hash");
	/* a user without credentials: found, both empty */
	assert_int_equal(creds(f, "carol@example.test", hash, cram), 1);
	assert_string_equal(hash, "");
	assert_string_equal(cram, "");
	/* no such user: 0, both empty */
	assert_int_equal(creds(f, "nobody@example.test", hash, cram), 0);
	assert_string_equal(hash, "");
	assert_string_equal(cram, "");

	/* set_password sets the hash and the CRAM-MD5 secret together */
	OK(directory_user_set_password(f->dir, "carol@example.test", "$6$x$y", "c1", &error_));
	assert_int_equal(creds(f, "carol@example.test", hash, cram), 1);
	assert_string_equal(hash, "$6$x$y");
	assert_string_equal(cram, "c1");
	OK(directory_user_set_password(f->dir, "carol@example.test", "$6$x$z", NULL, &error_));
	assert_int_equal(creds(f, "carol@example.test", hash, cram), 1);
	assert_string_equal(hash, "$6$x$z");
	assert_string_equal(cram, "");
	/* set_cram touches only the secret */
	OK(directory_user_set_cram(f->dir, "carol@example.test", "c2", &error_));
	assert_int_equal(creds(f, "carol@example.test", hash, cram), 1);
	assert_string_equal(hash, "$6$x$z");
	assert_string_equal(cram, "c2");
	OK(directory_user_set_cram(f->dir, "carol@example.test", NULL, &error_));
	assert_int_equal(creds(f, "carol@example.test", hash, cram), 1);
	assert_string_equal(cram, "");
	/* bob was not touched by any of it */
	assert_int_equal(creds(f, "bob@example.test", hash, cram), 1);
	assert_string_equal(cram, "cram-secret");

	expect_fail(directory_user_set_password(f->dir, "nobody@example.test", "x", NULL, &error),
	    &error);
	expect_fail(directory_user_set_cram(f->dir, "nobody@example.test", "x", &error), &error);
	assert_int_equal(creds(f, "nobody@example.test", hash, cram), 0);
}

/* ---- per-listener access lists ---- */

static void
test_access_list(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;

	/* empty list: nobody */
	assert_false(directory_access_allows(f->dir, "submission", "192.0.2.1", NULL));
	assert_false(directory_access_allows(f->dir, "submission", "192.0.2.1", "bob@example.test"));

	OK(directory_access_add(f->dir, "submission", "192.0.2.0/24", &error_));
	OK(directory_access_add(f->dir, "submission", "2001:DB8::/32", &error_));
	OK(directory_access_add(f->dir, "submission", "Bob@Example.TEST", &error_));
	OK(directory_access_add(f->dir, "smtps", "198.51.100.7", &error_));

	assert_true(directory_access_allows(f->dir, "submission", "192.0.2.1", NULL));
	assert_true(directory_access_allows(f->dir, "submission", "192.0.2.255", NULL));
	assert_false(directory_access_allows(f->dir, "submission", "192.0.3.1", NULL));
	assert_true(directory_access_allows(f->dir, "submission", "2001:db8:1::5", NULL));
	assert_false(directory_access_allows(f->dir, "submission", "2001:db9::5", NULL));
	assert_true(directory_access_allows(f->dir, "submission", "203.0.113.1", "bob@example.test"));
	assert_true(directory_access_allows(f->dir, "submission", "203.0.113.1", "BOB@example.test"));
	assert_false(directory_access_allows(f->dir, "submission", "203.0.113.1", "carol@example.test"));
	assert_false(directory_access_allows(f->dir, "submission", "203.0.113.1", NULL));
	/* lists are per listener */
	assert_false(directory_access_allows(f->dir, "smtps", "192.0.2.1", "bob@example.test"));
	assert_true(directory_access_allows(f->dir, "smtps", "198.51.100.7", NULL));
	assert_false(directory_access_allows(f->dir, "smtps", "198.51.100.8", NULL));
	assert_false(directory_access_allows(f->dir, "smtp", "198.51.100.7", NULL));

	OK(directory_access_del(f->dir, "submission", "192.0.2.0/24", &error_));
	assert_false(directory_access_allows(f->dir, "submission", "192.0.2.1", NULL));
	assert_true(directory_access_allows(f->dir, "submission", "1.1.1.1", "bob@example.test"));
	expect_fail(directory_access_del(f->dir, "submission", "192.0.2.0/24", &error), &error);
	expect_fail(directory_access_del(f->dir, "smtp", "198.51.100.7", &error), &error);
}

static void
test_unknown_and_not_local(void **state)
{
	struct fixture *f = *state;

	USER_ADD(f, "bob@example.test");
	assert_int_equal(resolve(f, "alice", "example.test", false), DIR_UNKNOWN);
	assert_int_equal(f->out->n, 0);
	assert_int_equal(resolve(f, "bob", "example.org", false), DIR_NOT_LOCAL);
	assert_int_equal(f->out->n, 0);
	assert_int_equal(resolve(f, "bob", "sub.example.test", false), DIR_NOT_LOCAL);
	assert_int_equal(resolve(f, "bob", "[127.0.0.1]", false), DIR_NOT_LOCAL);
	assert_int_equal(f->out->n, 0);
	assert_int_equal(resolve(f, "bob", "[IPv6:::1]", true), DIR_NOT_LOCAL);
	/* a user of the same name in another local domain is another user */
	DOMAIN_ADD(f, "example.org", NULL);
	assert_int_equal(resolve(f, "bob", "example.org", false), DIR_UNKNOWN);
}

static void
test_local_part_valid(void **state)
{
	char s[80];

	assert_true(directory_local_part_valid("bob"));
	assert_true(directory_local_part_valid("b.o_b+tag-1"));
	assert_true(directory_local_part_valid("0"));
	memset(s, 'a', 64);
	s[64] = '\0';
	assert_true(directory_local_part_valid(s));
	s[64] = 'a';
	s[65] = '\0';
	assert_false(directory_local_part_valid(s));

	assert_false(directory_local_part_valid(""));
	assert_false(directory_local_part_valid(".bob"));
	assert_false(directory_local_part_valid("bob."));
	assert_false(directory_local_part_valid("b..b"));
	assert_false(directory_local_part_valid("."));
	assert_false(directory_local_part_valid(".."));
	assert_false(directory_local_part_valid("Bob"));
	assert_false(directory_local_part_valid("b/b"));
	assert_false(directory_local_part_valid("b b"));
	assert_false(directory_local_part_valid("b%c"));
	assert_false(directory_local_part_valid("b@c"));
	assert_false(directory_local_part_valid("b\"c"));
	assert_false(directory_local_part_valid("\xc3\xa9"));
}

/* ---- aliases ---- */

static void
test_alias_add_rules(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;

	USER_ADD(f, "bob@example.test");
	/* remote targets are refused (no outbound relay yet) */
	expect_fail(directory_alias_add(f->dir, "x@example.test", "bob@remote.example", &error),
	    &error);
	error = NULL;
	expect_fail(directory_alias_add(f->dir, "x@example.test", "bob", &error), &error);
	/* the alias itself must be in a local domain */
	error = NULL;
	expect_fail(directory_alias_add(f->dir, "x@remote.example", "bob@example.test", &error),
	    &error);
	error = NULL;
	expect_fail(directory_alias_add(f->dir, "x", "bob@example.test", &error), &error);
	/* not to itself */
	error = NULL;
	expect_fail(directory_alias_add(f->dir, "x@example.test", "X@Example.test", &error),
	    &error);
	assert_int_equal(count_aliases(f, "x@example.test"), 0);

	/* the same pair twice is one row */
	ALIAS_ADD(f, "x@example.test", "bob@example.test");
	ALIAS_ADD(f, "X@example.test", "BOB@example.test");
	assert_int_equal(count_aliases(f, "x@example.test"), 1);
}

static void
test_alias_multiple_targets(void **state)
{
	struct fixture *f = *state;

	USER_ADD(f, "bob@example.test");
	USER_ADD(f, "carol@example.test");
	USER_ADD(f, "dave@example.test");
	ALIAS_ADD(f, "team@example.test", "carol@example.test");
	ALIAS_ADD(f, "team@example.test", "bob@example.test");

	assert_int_equal(resolve(f, "team", "example.test", false), DIR_LOCAL);
	expect_targets(f, 2, "bob@example.test", "carol@example.test");
	assert_int_equal(resolve(f, "TEAM", "EXAMPLE.TEST", false), DIR_LOCAL);
	expect_targets(f, 2, "bob@example.test", "carol@example.test");

	/* nested: all -> team + dave; bob twice is delivered once */
	ALIAS_ADD(f, "all@example.test", "team@example.test");
	ALIAS_ADD(f, "all@example.test", "dave@example.test");
	ALIAS_ADD(f, "all@example.test", "bob@example.test");
	assert_int_equal(resolve(f, "all", "example.test", false), DIR_LOCAL);
	expect_targets(f, 3, "bob@example.test", "carol@example.test", "dave@example.test");

	/* an alias shadows a user of the same name */
	ALIAS_ADD(f, "dave@example.test", "carol@example.test");
	RESOLVES_TO_1(f, "dave", "example.test", false, "carol@example.test");

	/* alias del: one target, then all of them */
	char *error = NULL;
	OK(directory_alias_del(f->dir, "team@example.test", "carol@example.test", &error_));
	RESOLVES_TO_1(f, "team", "example.test", false, "bob@example.test");
	expect_fail(directory_alias_del(f->dir, "team@example.test", "carol@example.test",
	    &error), &error);
	OK(directory_alias_del(f->dir, "all@example.test", NULL, &error_));
	assert_int_equal(resolve(f, "all", "example.test", false), DIR_UNKNOWN);
	error = NULL;
	expect_fail(directory_alias_del(f->dir, "all@example.test", NULL, &error), &error);
}

/* Targets are checked when resolving, not only when adding. */
static void
test_alias_dangling(void **state)
{
	struct fixture *f = *state;

	USER_ADD(f, "bob@example.test");
	ALIAS_ADD(f, "ghost@example.test", "nobody@example.test");
	assert_int_equal(resolve(f, "ghost", "example.test", false), DIR_UNKNOWN);
	assert_int_equal(f->out->n, 0);

	ALIAS_ADD(f, "half@example.test", "nobody@example.test");
	ALIAS_ADD(f, "half@example.test", "bob@example.test");
	RESOLVES_TO_1(f, "half", "example.test", false, "bob@example.test");

	/* a target whose user was deleted */
	USER_ADD(f, "temp@example.test");
	ALIAS_ADD(f, "t@example.test", "temp@example.test");
	RESOLVES_TO_1(f, "t", "example.test", false, "temp@example.test");
	OK(directory_user_del(f->dir, "temp@example.test", &error_));
	assert_int_equal(resolve(f, "t", "example.test", false), DIR_UNKNOWN);
}

static void
test_alias_loop(void **state)
{
	struct fixture *f = *state;

	USER_ADD(f, "bob@example.test");
	ALIAS_ADD(f, "a@example.test", "b@example.test");
	ALIAS_ADD(f, "b@example.test", "a@example.test");
	assert_int_equal(resolve(f, "a", "example.test", false), DIR_UNKNOWN);
	assert_int_equal(f->out->n, 0);
	assert_int_equal(resolve(f, "b", "example.test", false), DIR_UNKNOWN);

	/* a loop that also reaches a user: the user, once */
	ALIAS_ADD(f, "c@example.test", "d@example.test");
	ALIAS_ADD(f, "c@example.test", "bob@example.test");
	ALIAS_ADD(f, "d@example.test", "c@example.test");
	RESOLVES_TO_1(f, "c", "example.test", false, "bob@example.test");
	RESOLVES_TO_1(f, "d", "example.test", false, "bob@example.test");
}

/* DIR_ALIAS_DEPTH hops of aliases still reach the user; one more does not. */
static void
test_alias_depth(void **state)
{
	struct fixture *f = *state;
	char a[64], t[64], first[8];

	USER_ADD(f, "bob@example.test");
	/* a0 -> a1 -> ... -> a(N-1) -> bob: N hops */
	for (int i = 0; i < DIR_ALIAS_DEPTH; i++) {
		snprintf(a, sizeof(a), "a%d@example.test", i);
		if (i == DIR_ALIAS_DEPTH - 1)
			snprintf(t, sizeof(t), "bob@example.test");
		else
			snprintf(t, sizeof(t), "a%d@example.test", i + 1);
		ALIAS_ADD(f, a, t);
	}
	RESOLVES_TO_1(f, "a0", "example.test", false, "bob@example.test");
	snprintf(first, sizeof(first), "a%d", DIR_ALIAS_DEPTH - 1);
	RESOLVES_TO_1(f, first, "example.test", false, "bob@example.test");

	/* one more hop in front */
	ALIAS_ADD(f, "z@example.test", "a0@example.test");
	assert_int_equal(resolve(f, "z", "example.test", false), DIR_UNKNOWN);
	assert_int_equal(f->out->n, 0);
}

/* ---- postmaster (RFC 5321 §4.5.1) ---- */

static void
test_postmaster_default(void **state)
{
	struct fixture *f = *state;

	/* no user row, no configured target: the domain's own postmaster mailbox */
	RESOLVES_TO_1(f, "postmaster", "example.test", false, "postmaster@example.test");
	RESOLVES_TO_1(f, "PostMaster", "example.test", false, "postmaster@example.test");
	RESOLVES_TO_1(f, "POSTMASTER", "EXAMPLE.TEST", false, "postmaster@example.test");
	/* bare <Postmaster>: the first domain's */
	RESOLVES_TO_1(f, "postmaster", "", false, "postmaster@example.test");

	DOMAIN_ADD(f, "example.org", NULL);
	RESOLVES_TO_1(f, "Postmaster", "example.org", false, "postmaster@example.org");
	RESOLVES_TO_1(f, "postmaster", "", false, "postmaster@example.test");
	/* not a postmaster of a foreign domain */
	assert_int_equal(resolve(f, "postmaster", "remote.example", false), DIR_NOT_LOCAL);
	/* nor "postmaster" as a prefix */
	assert_int_equal(resolve(f, "postmasters", "example.test", false), DIR_UNKNOWN);
}

static void
test_postmaster_configured(void **state)
{
	struct fixture *f = *state;

	DOMAIN_ADD(f, "example.org", "admin@example.org");
	USER_ADD(f, "admin@example.org");
	RESOLVES_TO_1(f, "postmaster", "example.org", false, "admin@example.org");
	RESOLVES_TO_1(f, "pOsTmAsTeR", "Example.Org", false, "admin@example.org");
	/* the other domain is not affected */
	RESOLVES_TO_1(f, "postmaster", "example.test", false, "postmaster@example.test");

	/* a configured target in another local domain, reached through an alias */
	DOMAIN_ADD(f, "example.net", "abuse@example.test");
	USER_ADD(f, "carol@example.test");
	ALIAS_ADD(f, "abuse@example.test", "carol@example.test");
	RESOLVES_TO_1(f, "Postmaster", "example.net", false, "carol@example.test");
}

/* An alias that points at postmaster@DOMAIN reaches the configured
 * postmaster target, as RCPT TO:<postmaster@DOMAIN> does: otherwise mail
 * for abuse@ ends in a mailbox nobody reads. */
static void
test_postmaster_configured_via_alias(void **state)
{
	struct fixture *f = *state;

	DOMAIN_ADD(f, "example.org", "admin@example.org");
	USER_ADD(f, "admin@example.org");
	ALIAS_ADD(f, "abuse@example.org", "postmaster@example.org");
	RESOLVES_TO_1(f, "postmaster", "example.org", false, "admin@example.org");
	RESOLVES_TO_1(f, "abuse", "example.org", false, "admin@example.org");
}

/* A configured target that is the domain's own postmaster address does not
 * loop: it is the implicit postmaster mailbox. */
static void
test_postmaster_configured_self(void **state)
{
	struct fixture *f = *state;

	DOMAIN_ADD(f, "example.org", "postmaster@example.org");
	RESOLVES_TO_1(f, "postmaster", "example.org", false, "postmaster@example.org");
	RESOLVES_TO_1(f, "PostMaster", "EXAMPLE.org", false, "postmaster@example.org");
}

/* Bare <Postmaster> follows the first domain's configured target. */
static void
test_postmaster_bare_configured(void **state)
{
	struct fixture *f = *state;

	OK(directory_domain_del(f->dir, "example.test", &error_));
	DOMAIN_ADD(f, "example.net", "boss@example.net");
	DOMAIN_ADD(f, "example.org", NULL);
	USER_ADD(f, "boss@example.net");
	RESOLVES_TO_1(f, "postmaster", "", false, "boss@example.net");
	RESOLVES_TO_1(f, "postmaster", "example.org", false, "postmaster@example.org");
}

/* A postmaster alias or user row takes precedence over the implicit mailbox. */
static void
test_postmaster_alias(void **state)
{
	struct fixture *f = *state;

	USER_ADD(f, "bob@example.test");
	ALIAS_ADD(f, "postmaster@example.test", "bob@example.test");
	RESOLVES_TO_1(f, "Postmaster", "example.test", false, "bob@example.test");
	RESOLVES_TO_1(f, "postmaster", "", false, "bob@example.test");
}

/* With no domain at all, bare <Postmaster> has nowhere to go. */
static void
test_postmaster_no_domain(void **state)
{
	struct fixture *f = *state;

	OK(directory_domain_del(f->dir, "example.test", &error_));
	assert_int_equal(resolve(f, "postmaster", "", false), DIR_UNKNOWN);
	assert_int_equal(f->out->n, 0);
}

/* ---- percent routing: user%host@local-domain is user@host ---- */

static void
test_percent_routing(void **state)
{
	struct fixture *f = *state;

	DOMAIN_ADD(f, "example.org", NULL);
	USER_ADD(f, "bob@example.test");

	/* on */
	RESOLVES_TO_1(f, "bob%example.test", "example.org", true, "bob@example.test");
	RESOLVES_TO_1(f, "bob%example.test", "example.test", true, "bob@example.test");
	RESOLVES_TO_1(f, "BOB%EXAMPLE.TEST", "example.org", true, "bob@example.test");
	/* the last '%' separates the host */
	assert_int_equal(resolve(f, "a%b%example.test", "example.org", true), DIR_UNKNOWN);
	/* to a host that is not ours: a relay, refused by the caller */
	assert_int_equal(resolve(f, "bob%remote.example", "example.test", true), DIR_NOT_LOCAL);
	assert_int_equal(f->out->n, 0);
	/* only through a local domain */
	assert_int_equal(resolve(f, "bob%example.test", "remote.example", true), DIR_NOT_LOCAL);

	/* off: the '%' is part of the local part */
	assert_int_equal(resolve(f, "bob%example.test", "example.org", false), DIR_UNKNOWN);
	assert_int_equal(f->out->n, 0);
	assert_int_equal(resolve(f, "bob%example.test", "example.test", false), DIR_UNKNOWN);
	/* plain addresses are unaffected by the setting */
	RESOLVES_TO_1(f, "bob", "example.test", true, "bob@example.test");
}

/* ---- S4: domains bound to listen addresses ---- */

static enum dir_result
resolve_at(struct fixture *f, const char *local, const char *domain, bool percent,
    const char *local_ip)
{
	struct mail_addr a;

	memset(&a, 0, sizeof(a));
	snprintf(a.local, sizeof(a.local), "%s", local);
	snprintf(a.domain, sizeof(a.domain), "%s", domain);
	return directory_resolve_at(f->dir, &a, percent, local_ip, f->out);
}

static void
test_bind_normalize(void **state)
{
	char out[DIR_BIND_LEN], big[2048];
	const char *why = NULL;

	assert_int_equal(directory_bind_normalize("127.0.0.2", out, sizeof(out), &why), 0);
	assert_string_equal(out, "127.0.0.2");
	assert_int_equal(directory_bind_normalize(" 0:0::1 , 192.0.2.1,::1,2001:DB8::5 ", out,
	    sizeof(out), &why), 0);
	assert_string_equal(out, "::1,192.0.2.1,2001:db8::5");
	const char *bad[] = { "", ",", "1.2.3.4,", ",1.2.3.4", "10.0.0.0/8", "host.example",
	    "1.2.3.256", "1.2.3.4,,5.6.7.8", "[::1]", "1.2.3.4:25" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (directory_bind_normalize(bad[i], out, sizeof(out), &why) == 0)
			fail_msg("'%s' accepted as %s", bad[i], out);
		assert_non_null(why);
	}
	/* more than DIR_BIND_MAX distinct addresses */
	size_t o = 0;
	for (int i = 1; i <= DIR_BIND_MAX + 1; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s10.0.0.%d", i > 1 ? "," : "", i);
	assert_int_equal(directory_bind_normalize(big, out, sizeof(out), &why), -1);
}

static void
test_domain_bound(void **state)
{
	struct fixture *f = *state;
	char bind[DIR_BIND_LEN], *error = NULL;

	DOMAIN_ADD(f, "bound.test", NULL);
	USER_ADD(f, "carol@bound.test");
	USER_ADD(f, "bob@example.test");
	assert_int_equal(directory_domain_bind_get(f->dir, "bound.test", bind, sizeof(bind)), 1);
	assert_string_equal(bind, "");
	assert_int_equal(directory_domain_bind_get(f->dir, "nosuch.test", bind, sizeof(bind)), 0);
	OK(directory_domain_set_bind(f->dir, "Bound.Test", "127.0.0.2,::1", &error_));
	assert_int_equal(directory_domain_bind_get(f->dir, "bound.test", bind, sizeof(bind)), 1);
	assert_string_equal(bind, "127.0.0.2,::1");
	expect_fail(directory_domain_set_bind(f->dir, "nosuch.test", "::1", &error), &error);

	assert_int_equal(resolve_at(f, "carol", "bound.test", false, "127.0.0.2"), DIR_LOCAL);
	assert_int_equal(resolve_at(f, "carol", "BOUND.test", false, "::1"), DIR_LOCAL);
	assert_int_equal(resolve_at(f, "carol", "bound.test", false, "127.0.0.1"), DIR_NOT_LOCAL);
	assert_int_equal(f->out->n, 0);
	assert_int_equal(resolve_at(f, "nobody", "bound.test", false, "127.0.0.1"), DIR_NOT_LOCAL);
	assert_int_equal(resolve_at(f, "postmaster", "bound.test", false, "10.1.1.1"),
	    DIR_NOT_LOCAL);
	/* no address to check (the admin side, the sender rules): as before */
	assert_int_equal(resolve_at(f, "carol", "bound.test", false, NULL), DIR_LOCAL);
	assert_int_equal(resolve_at(f, "carol", "bound.test", false, ""), DIR_LOCAL);
	assert_int_equal(resolve(f, "carol", "bound.test", false), DIR_LOCAL);
	/* unbound domains everywhere */
	assert_int_equal(resolve_at(f, "bob", "example.test", false, "127.0.0.1"), DIR_LOCAL);
	/* percent routing into the bound domain counts the routed-to domain */
	assert_int_equal(resolve_at(f, "carol%bound.test", "example.test", true, "127.0.0.1"),
	    DIR_NOT_LOCAL);
	assert_int_equal(resolve_at(f, "carol%bound.test", "example.test", true, "::1"),
	    DIR_LOCAL);
	/* an alias in an unbound domain may still deliver into a bound one */
	ALIAS_ADD(f, "team@example.test", "carol@bound.test");
	assert_int_equal(resolve_at(f, "team", "example.test", false, "127.0.0.1"), DIR_LOCAL);
	expect_targets(f, 1, "carol@bound.test");
	/* bare <Postmaster> is accepted on every address (RFC 5321 §4.5.1) */
	assert_int_equal(resolve_at(f, "postmaster", "", false, "10.1.1.1"), DIR_LOCAL);

	OK(directory_domain_set_bind(f->dir, "bound.test", NULL, &error_));
	assert_int_equal(resolve_at(f, "carol", "bound.test", false, "127.0.0.1"), DIR_LOCAL);
}

/* ---- A5: role addresses, directly or through aliases ---- */

static void
test_role_address(void **state)
{
	struct fixture *f = *state;

	DOMAIN_ADD(f, "other.test", NULL);
	USER_ADD(f, "alice@example.test");
	ALIAS_ADD(f, "hostmaster@example.test", "postmaster@other.test");
	ALIAS_ADD(f, "security@other.test", "desk@example.test");
	ALIAS_ADD(f, "desk@example.test", "abuse@example.test");
	ALIAS_ADD(f, "team@example.test", "alice@example.test");
	ALIAS_ADD(f, "loop1@example.test", "loop2@example.test");
	ALIAS_ADD(f, "loop2@example.test", "loop1@example.test");

	const char *yes[] = { "postmaster@example.test", "Abuse@other.test",
	    "WEBMASTER@example.test", "hostmaster@example.test", "security@other.test",
	    "desk@example.test" };
	const char *no[] = { "alice@example.test", "team@example.test", "postmaster@example.org",
	    "loop1@example.test", "ghost@other.test", "postmaster", "abuser@example.test" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!directory_role_address(f->dir, yes[i]))
			fail_msg("%s is a role address", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		if (directory_role_address(f->dir, no[i]))
			fail_msg("%s is not a role address", no[i]);
	}
}

static void
test_policy_list_names(void **state)
{
	struct fixture *f = *state;

	assert_true(directory_list_name_valid("smtp-users"));
	assert_true(directory_list_holds_addresses("smtp-users"));
	assert_false(directory_list_name_valid("smtp_users"));
	OK(directory_list_add(f->dir, "smtp-users", "Alice@Example.Test", &error_));
	assert_true(directory_list_has(f->dir, "smtp-users", "alice@example.test"));
	assert_false(directory_list_has(f->dir, "accept", "alice@example.test"));
}

/* ---- listing ---- */

struct rows {
	int n;
	char a[16][128];
	char b[16][128];
};

static void
collect(void *arg, const char *a, const char *b)
{
	struct rows *r = arg;

	assert_true(r->n < 16);
	snprintf(r->a[r->n], sizeof(r->a[0]), "%s", a != NULL ? a : "(null)");
	snprintf(r->b[r->n], sizeof(r->b[0]), "%s", b != NULL ? b : "(null)");
	r->n++;
}

static void
test_lists(void **state)
{
	struct fixture *f = *state;
	struct rows r;

	DOMAIN_ADD(f, "example.org", "bob@example.test");
	OK(directory_user_add(f->dir, "bob@example.test", "$6$h", NULL, &error_));
	USER_ADD(f, "amy@example.org");
	ALIAS_ADD(f, "team@example.test", "bob@example.test");
	ALIAS_ADD(f, "team@example.test", "amy@example.org");

	memset(&r, 0, sizeof(r));
	assert_int_equal(directory_domain_list(f->dir, collect, &r), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.a[0], "example.org");
	assert_string_equal(r.b[0], "bob@example.test");
	assert_string_equal(r.a[1], "example.test");
	assert_string_equal(r.b[1], "(null)");

	memset(&r, 0, sizeof(r));
	assert_int_equal(directory_user_list(f->dir, NULL, collect, &r), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.a[0], "amy@example.org");
	assert_string_equal(r.b[0], "no-password");
	assert_string_equal(r.a[1], "bob@example.test");
	assert_string_equal(r.b[1], "password");

	memset(&r, 0, sizeof(r));
	assert_int_equal(directory_user_list(f->dir, "example.test", collect, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.a[0], "bob@example.test");

	memset(&r, 0, sizeof(r));
	assert_int_equal(directory_alias_list(f->dir, "team@example.test", collect, &r), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.b[0], "amy@example.org");
	assert_string_equal(r.b[1], "bob@example.test");

	memset(&r, 0, sizeof(r));
	assert_int_equal(directory_alias_list(f->dir, "nobody@example.test", collect, &r), 0);
	assert_int_equal(r.n, 0);
}

/* ---- a second connection sees committed changes at once ---- */

static void
test_changes_visible_to_other_connection(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	struct sqlite3 *db2 = datadir_open(f->datadir, &error);

	if (db2 == NULL)
		fail_msg("datadir_open again: %s", error);
	struct directory *dir2 = directory_create(db2);

	USER_ADD(f, "bob@example.test");
	struct mail_addr a;
	memset(&a, 0, sizeof(a));
	snprintf(a.local, sizeof(a.local), "bob");
	snprintf(a.domain, sizeof(a.domain), "example.test");
	assert_int_equal(directory_resolve(dir2, &a, false, f->out), DIR_LOCAL);
	OK(directory_user_del(f->dir, "bob@example.test", &error_));
	assert_int_equal(directory_resolve(dir2, &a, false, f->out), DIR_UNKNOWN);

	directory_destroy(&dir2);
	directory_destroy(&dir2);     /* NULL is fine */
	db_close(&db2);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_default_domain),
		T(test_domain_add_del),
		T(test_domain_del_with_users_and_aliases),
		T(test_user_add_del),
		T(test_user_credentials),
		T(test_access_list),
		T(test_unknown_and_not_local),
		cmocka_unit_test(test_local_part_valid),
		T(test_alias_add_rules),
		T(test_alias_multiple_targets),
		T(test_alias_dangling),
		T(test_alias_loop),
		T(test_alias_depth),
		T(test_postmaster_default),
		T(test_postmaster_configured),
		T(test_postmaster_configured_via_alias),
		T(test_postmaster_configured_self),
		T(test_postmaster_bare_configured),
		T(test_postmaster_alias),
		T(test_postmaster_no_domain),
		T(test_percent_routing),
		cmocka_unit_test(test_bind_normalize),
		T(test_domain_bound),
		T(test_role_address),
		T(test_policy_list_names),
		T(test_lists),
		T(test_changes_visible_to_other_connection),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
