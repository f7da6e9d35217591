/* test_maildir.c: src/deliver/maildir.c, local delivery into Maildir. */
#include "test_util.h"

#include <errno.h>
#include <event2/buffer.h>

#include "deliver/maildir.h"
#include "mail/envelope.h"

struct fixture {
	char *root;
	struct envelope *m;
};

static const char body_text[] =
	"Received: from client.example\n"
	"\tby mx.example.test; Tue, 14 Nov 2023 22:13:20 +0000\n"
	"Subject: test\n"
	"\n"
	"line 1\n"
	"line 2\n";

#define QID "0123456789ABCDEF"
#define HOST "mx.example.test"

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->root = test_mkdtemp();
	f->m = envelope_create();
	snprintf(f->m->qid, sizeof(f->m->qid), "%s", QID);
	f->m->arrival = 1700000000;
	f->m->sender = strdup("alice@example.org");
	envelope_add_rcpt(f->m, "bob@example.test", "Bob@example.test", false);
	envelope_add_rcpt(f->m, "carol@example.test", "carol@example.test", false);
	evbuffer_add(f->m->body, body_text, sizeof(body_text) - 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	envelope_free(&f->m);
	test_rm_rf(f->root);
	free(f->root);
	free(f);
	return 0;
}

/* root/DOMAIN/LOCAL/SUB into buf. */
static const char *
mdir(const struct fixture *f, const char *domain, const char *local, const char *sub,
    char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s/%s/%s", f->root, domain, local, sub);

	assert_true(n > 0 && (size_t)n < size);
	return buf;
}

static size_t
count_char(const char *s, size_t len, char c)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += s[i] == c;
	return n;
}

/* The one file in new/ of local@example.test: checks its name and content
 * against the documented ARRIVAL.Q<qid>_<index>.HOST,S=<size>,W=<size with CRLF>. */
static void
check_delivered(const struct fixture *f, const char *local, size_t index, const char *host,
    const char *content, struct stat *st_r)
{
	char dir[4200], name[512], want[512], path[4800];
	size_t len = strlen(content);

	mdir(f, "example.test", local, "new", dir, sizeof(dir));
	assert_int_equal(test_dir_count(dir, name, sizeof(name)), 1);
	snprintf(want, sizeof(want), "1700000000.Q" QID "_%zu.%s,S=%zu,W=%zu", index, host, len,
	    len + count_char(content, len, '\n'));
	assert_string_equal(name, want);

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	size_t got_len;
	char *got = test_read_file(path, &got_len);
	assert_int_equal(got_len, len);
	assert_string_equal(got, content);
	free(got);
	assert_int_equal(stat(path, st_r), 0);
	assert_int_equal(st_r->st_size, (off_t)len);
}

static char *
expected_content(const char *sender)
{
	size_t size = strlen(sender) + sizeof(body_text) + 32;
	char *s = malloc(size);

	assert_non_null(s);
	snprintf(s, size, "Return-Path: <%s>\n%s", sender, body_text);
	return s;
}

static void
test_deliver_two(void **state)
{
	struct fixture *f = *state;
	char dir[4200];
	struct stat sb, sc;
	char *content = expected_content("alice@example.org");

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, false), 0);

	/* both Maildirs were created with tmp/ new/ cur/ */
	static const char *const subs[] = { "tmp", "new", "cur" };
	for (size_t i = 0; i < 3; i++) {
		assert_true(test_path_exists(mdir(f, "example.test", "bob", subs[i], dir, sizeof(dir))));
		assert_true(test_path_exists(mdir(f, "example.test", "carol", subs[i], dir,
		    sizeof(dir))));
	}
	check_delivered(f, "bob", 0, HOST, content, &sb);
	check_delivered(f, "carol", 1, HOST, content, &sc);

	/* one file, hard-linked into both new/ directories; tmp/ is clean */
	assert_int_equal(sb.st_ino, sc.st_ino);
	assert_int_equal(sb.st_dev, sc.st_dev);
	assert_int_equal(sb.st_nlink, 2);
	assert_int_equal(sc.st_nlink, 2);
	assert_int_equal(test_dir_count(mdir(f, "example.test", "bob", "tmp", dir, sizeof(dir)),
	    NULL, 0), 0);
	assert_int_equal(test_dir_count(mdir(f, "example.test", "carol", "tmp", dir, sizeof(dir)),
	    NULL, 0), 0);
	assert_int_equal(test_dir_count(mdir(f, "example.test", "bob", "cur", dir, sizeof(dir)),
	    NULL, 0), 0);
	free(content);
}

/* Running the delivery again delivers nothing new, with or without recovering. */
static void
test_idempotent(void **state)
{
	struct fixture *f = *state;
	char dir[4200];
	struct stat sb, sc;
	char *content = expected_content("alice@example.org");

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, false), 0);
	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, true), 0);
	check_delivered(f, "bob", 0, HOST, content, &sb);
	check_delivered(f, "carol", 1, HOST, content, &sc);
	assert_int_equal(sb.st_nlink, 2);

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, true), 0);
	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, false), 0);
	check_delivered(f, "bob", 0, HOST, content, &sb);
	check_delivered(f, "carol", 1, HOST, content, &sc);
	assert_int_equal(sb.st_ino, sc.st_ino);
	assert_int_equal(test_dir_count(mdir(f, "example.test", "bob", "tmp", dir, sizeof(dir)),
	    NULL, 0), 0);
	free(content);
}

/* A crash between the two links: recovery delivers only the missing one. */
static void
test_recover_partial(void **state)
{
	struct fixture *f = *state;
	char dir[4200], name[512], path[4800];
	struct stat sb, sc;
	char *content = expected_content("alice@example.org");

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, false), 0);
	mdir(f, "example.test", "carol", "new", dir, sizeof(dir));
	assert_int_equal(test_dir_count(dir, name, sizeof(name)), 1);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, true), 0);
	check_delivered(f, "bob", 0, HOST, content, &sb);
	check_delivered(f, "carol", 1, HOST, content, &sc);
	assert_int_equal(sb.st_nlink, 1);       /* bob's was left alone */
	assert_int_equal(sc.st_nlink, 1);
	assert_true(sb.st_ino != sc.st_ino);
	free(content);
}

/* A message the user's client already moved to cur/ (with its ":2," flags)
 * counts as delivered when recovering. */
static void
test_recover_seen_in_cur(void **state)
{
	struct fixture *f = *state;
	char newdir[4200], curdir[4200], name[512], from[4800], to[4800];

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, false), 0);
	mdir(f, "example.test", "bob", "new", newdir, sizeof(newdir));
	mdir(f, "example.test", "bob", "cur", curdir, sizeof(curdir));
	assert_int_equal(test_dir_count(newdir, name, sizeof(name)), 1);
	snprintf(from, sizeof(from), "%s/%s", newdir, name);
	snprintf(to, sizeof(to), "%s/%s:2,S", curdir, name);
	assert_int_equal(rename(from, to), 0);

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, true), 0);
	assert_int_equal(test_dir_count(newdir, NULL, 0), 0);
	assert_int_equal(test_dir_count(curdir, NULL, 0), 1);
	assert_int_equal(test_dir_count(mdir(f, "example.test", "carol", "new", newdir,
	    sizeof(newdir)), NULL, 0), 1);
}

/* Another message's file in new/ is not mistaken for this one: another
 * queue id at the same second, or index 10 where this one is index 1. */
static void
test_recover_other_message(void **state)
{
	struct fixture *f = *state;
	char bob[4200], carol[4200], path[4800];
	struct stat st;
	char *content = expected_content("alice@example.org");

	assert_int_equal(maildir_create(mdir(f, "example.test", "bob", "", bob, sizeof(bob))), 0);
	assert_int_equal(maildir_create(mdir(f, "example.test", "carol", "", carol,
	    sizeof(carol))), 0);
	snprintf(path, sizeof(path), "%s/new/1700000000.Q0123456789ABCDEE_0." HOST ",S=1,W=2",
	    bob);
	test_write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/new/1700000000.Q" QID "_10." HOST ",S=1,W=2", carol);
	test_write_file(path, "x", 1);

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, true), 0);
	assert_int_equal(test_dir_count(mdir(f, "example.test", "bob", "new", bob, sizeof(bob)),
	    NULL, 0), 2);
	assert_int_equal(test_dir_count(mdir(f, "example.test", "carol", "new", carol,
	    sizeof(carol)), NULL, 0), 2);
	snprintf(path, sizeof(path), "%s/1700000000.Q" QID "_0." HOST ",S=%zu,W=%zu", bob,
	    strlen(content), strlen(content) + count_char(content, strlen(content), '\n'));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_nlink, 2);
	snprintf(path, sizeof(path), "%s/1700000000.Q" QID "_1." HOST ",S=%zu,W=%zu", carol,
	    strlen(content), strlen(content) + count_char(content, strlen(content), '\n'));
	assert_int_equal(stat(path, &st), 0);
	free(content);
}

static void
test_null_sender(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	char *content = expected_content("");

	free(f->m->sender);
	f->m->sender = NULL;
	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, false), 0);
	assert_true(strncmp(content, "Return-Path: <>\n", 16) == 0);
	check_delivered(f, "bob", 0, HOST, content, &st);
	free(content);
}

/* '/' and ':' in the host name are encoded as \057 and \072 (maildir.html). */
static void
test_host_encoding(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	char *content = expected_content("alice@example.org");

	assert_int_equal(maildir_deliver(f->root, "odd/host:name", f->m, NULL, 0, false), 0);
	check_delivered(f, "bob", 0, "odd\\057host\\072name", content, &st);
	free(content);
}

/* W= counts one more octet per line: CRLF instead of LF. */
static void
test_sizes_crlf(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	char *content;

	evbuffer_drain(f->m->body, evbuffer_get_length(f->m->body));
	/* many chains so that the LF count walks several iovec batches */
	for (int i = 0; i < 200; i++)
		evbuffer_add_reference(f->m->body, "a\nbb\n\n", 6, NULL, NULL);
	evbuffer_add(f->m->body, "no final newline", 16);

	size_t blen = evbuffer_get_length(f->m->body);
	char *body = malloc(blen + 1);
	assert_non_null(body);
	evbuffer_copyout(f->m->body, body, blen);
	body[blen] = '\0';
	size_t csize = strlen("Return-Path: <alice@example.org>\n") + blen + 1;
	content = malloc(csize);
	assert_non_null(content);
	snprintf(content, csize, "Return-Path: <alice@example.org>\n%s", body);

	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, false), 0);
	check_delivered(f, "bob", 0, HOST, content, &st);
	/* 1 (Return-Path) + 600 LFs in the body */
	assert_int_equal(count_char(content, strlen(content), '\n'), 601);
	free(body);
	free(content);
}

static void
test_paths(void **state)
{
	char buf[64];

	assert_int_equal(maildir_path("/var/mail", "bob@example.test", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/var/mail/example.test/bob");
	assert_int_equal(maildir_path("/m", "a.b+c@d.e", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/m/d.e/a.b+c");
	assert_int_equal(maildir_path("/m", "nodomain", buf, sizeof(buf)), -1);
	assert_int_equal(maildir_path("/m", "bob@example.test", buf, 10), -1);
	/* exactly fits / one short */
	assert_int_equal(maildir_path("/m", "b@d", buf, sizeof("/m/d/b")), 0);
	assert_string_equal(buf, "/m/d/b");
	assert_int_equal(maildir_path("/m", "b@d", buf, sizeof("/m/d/b") - 1), -1);
}

static void
test_create_dirs(void **state)
{
	struct fixture *f = *state;
	char dir[4200], sub[4300];

	snprintf(dir, sizeof(dir), "%s/deep/er/box", f->root);
	assert_int_equal(maildir_create(dir), 0);
	snprintf(sub, sizeof(sub), "%s/tmp", dir);
	assert_true(test_path_exists(sub));
	snprintf(sub, sizeof(sub), "%s/new", dir);
	assert_true(test_path_exists(sub));
	snprintf(sub, sizeof(sub), "%s/cur", dir);
	assert_true(test_path_exists(sub));
	assert_int_equal(maildir_create(dir), 0);       /* again: fine */
}

static void
test_deliver_fails(void **state)
{
	struct fixture *f = *state;
	char blocker[4200];

	/* the domain directory is a file: nothing can be created under it */
	snprintf(blocker, sizeof(blocker), "%s/example.test", f->root);
	test_write_file(blocker, "x", 1);
	errno = 0;
	assert_int_equal(maildir_deliver(f->root, HOST, f->m, NULL, 0, false), -1);
	assert_true(errno != 0);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_deliver_two),
		T(test_idempotent),
		T(test_recover_partial),
		T(test_recover_seen_in_cur),
		T(test_recover_other_message),
		T(test_null_sender),
		T(test_host_encoding),
		T(test_sizes_crlf),
		cmocka_unit_test(test_paths),
		T(test_create_dirs),
		T(test_deliver_fails),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
