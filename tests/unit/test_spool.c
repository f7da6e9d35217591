/* test_spool.c: src/queue/spool.c, the durable queue files. */
#include "test_util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <time.h>

#include "queue/spool.h"

struct fixture {
	char *dir;
	struct spool_msg *msgs[3]; /* freed by teardown, even after a failed assertion */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = test_mkdtemp();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(f->msgs) / sizeof(f->msgs[0]); i++)
		spool_msg_free(&f->msgs[i]);
	test_rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static const char body_text[] =
	"Received: from client.example ([192.0.2.1])\n"
	"\tby mx.example.test with ESMTP id 1; Tue, 14 Nov 2023 22:13:20 +0000\n"
	"From: Alice <alice@example.org>\n"
	"Subject: hello\n"
	"\n"
	"line one\n"
	"\n"
	".leading dot kept\n"
	"last line\n";

/* A message with a fixed arrival time, two recipients and body_text. */
static struct spool_msg *
make_msg(const char *sender)
{
	struct spool_msg *m = spool_msg_create();

	m->arrival = 1700000000;
	m->sender = sender != NULL ? strdup(sender) : NULL;
	spool_msg_add_rcpt(m, "bob@example.test", "Bob@Example.TEST");
	spool_msg_add_rcpt(m, "carol@example.test", "<carol@example.test>");
	evbuffer_add(m->body, body_text, sizeof(body_text) - 1);
	return m;
}

static void
path_of(const struct fixture *f, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", f->dir, name);

	assert_true(n > 0 && (size_t)n < size);
}

/* ---- message objects ---- */

static void
test_create(void **state)
{
	time_t before = time(NULL);
	struct spool_msg *m = spool_msg_create();
	struct spool_msg *m2 = spool_msg_create();
	time_t after = time(NULL);

	assert_non_null(m);
	assert_int_equal(strlen(m->qid), SPOOL_QID_LEN);
	assert_true(spool_qid_valid(m->qid));
	assert_true(m->arrival >= before && m->arrival <= after);
	assert_null(m->sender);
	assert_int_equal(m->nrcpt, 0);
	assert_non_null(m->body);
	assert_int_equal(evbuffer_get_length(m->body), 0);
	/* queue ids are unique (7 random hex digits per second) */
	assert_string_not_equal(m->qid, m2->qid);

	spool_msg_add_rcpt(m, "a@b.example", "A@B.example");
	spool_msg_add_rcpt(m, "c@b.example", "c@b.example");
	assert_int_equal(m->nrcpt, 2);
	assert_string_equal(m->rcpts[0].mailbox, "a@b.example");
	assert_string_equal(m->rcpts[0].orig, "A@B.example");
	assert_string_equal(m->rcpts[1].mailbox, "c@b.example");

	spool_msg_free(&m);
	assert_null(m);
	spool_msg_free(&m);          /* NULL is fine */
	spool_msg_free(&m2);
}

static void
test_qid_valid(void **state)
{
	assert_true(spool_qid_valid("0123456789ABCDEF0123"));
	assert_true(spool_qid_valid("FFFFFFFFFFFFFFFFFFFF"));
	assert_false(spool_qid_valid("0123456789abcdef0123"));
	assert_false(spool_qid_valid("0123456789ABCDEF012"));
	assert_false(spool_qid_valid("0123456789ABCDEF01234"));
	assert_false(spool_qid_valid("0123456789ABCDEF012G"));
	assert_false(spool_qid_valid("0123456789ABCDEF0123.tmp"));
	assert_false(spool_qid_valid("../3456789ABCDEF0123"));
	assert_false(spool_qid_valid(""));
}

/* ---- commit and load ---- */

static void
test_commit_file_format(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = make_msg("alice@example.org");
	char path[4200], want[4096];
	size_t len;

	assert_int_equal(spool_commit(f->dir, m), 0);
	/* the body was written without being drained */
	assert_int_equal(evbuffer_get_length(m->body), sizeof(body_text) - 1);

	/* exactly one file, named after the queue id: the .tmp is gone */
	char first[256];
	assert_int_equal(test_dir_count(f->dir, first, sizeof(first)), 1);
	assert_string_equal(first, m->qid);

	/* the documented format, byte for byte */
	snprintf(want, sizeof(want),
	    "tegami-queue 1\n"
	    "I %s\n"
	    "T 1700000000\n"
	    "S alice@example.org\n"
	    "R bob@example.test\tBob@Example.TEST\n"
	    "R carol@example.test\t<carol@example.test>\n"
	    "\n"
	    "%s", m->qid, body_text);
	path_of(f, m->qid, path, sizeof(path));
	char *data = test_read_file(path, &len);
	assert_int_equal(len, strlen(want));
	assert_string_equal(data, want);
	free(data);

	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	spool_msg_free(&m);
}

static void
test_commit_load_round_trip(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = make_msg("alice@example.org");
	char path[4200];
	const char *error = NULL;

	assert_int_equal(spool_commit(f->dir, m), 0);
	path_of(f, m->qid, path, sizeof(path));
	struct spool_msg *l = spool_load(path, &error);
	if (l == NULL)
		fail_msg("spool_load: %s", error);

	assert_string_equal(l->qid, m->qid);
	assert_int_equal(l->arrival, 1700000000);
	assert_non_null(l->sender);
	assert_string_equal(l->sender, "alice@example.org");
	assert_int_equal(l->nrcpt, 2);
	assert_string_equal(l->rcpts[0].mailbox, "bob@example.test");
	assert_string_equal(l->rcpts[0].orig, "Bob@Example.TEST");
	assert_string_equal(l->rcpts[1].mailbox, "carol@example.test");
	assert_string_equal(l->rcpts[1].orig, "<carol@example.test>");
	assert_int_equal(evbuffer_get_length(l->body), sizeof(body_text) - 1);
	assert_memory_equal(evbuffer_pullup(l->body, -1), body_text, sizeof(body_text) - 1);

	spool_msg_free(&l);
	spool_msg_free(&m);
}

/* The null reverse-path is an empty S line, and an empty body is fine. */
static void
test_null_sender_empty_body(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = spool_msg_create();
	char path[4200], want[256];
	const char *error = NULL;

	m->arrival = 42;
	spool_msg_add_rcpt(m, "bob@example.test", "bob@example.test");
	assert_int_equal(spool_commit(f->dir, m), 0);
	path_of(f, m->qid, path, sizeof(path));

	char *data = test_read_file(path, NULL);
	snprintf(want, sizeof(want), "tegami-queue 1\nI %s\nT 42\nS \nR bob@example.test\t"
	    "bob@example.test\n\n", m->qid);
	assert_string_equal(data, want);
	free(data);

	struct spool_msg *l = spool_load(path, &error);
	if (l == NULL)
		fail_msg("spool_load: %s", error);
	assert_true(l->sender == NULL || l->sender[0] == '\0');
	assert_int_equal(l->arrival, 42);
	assert_int_equal(l->nrcpt, 1);
	assert_int_equal(evbuffer_get_length(l->body), 0);
	spool_msg_free(&l);
	spool_msg_free(&m);
}

/* A body spread over many evbuffer chains (more than the 64 iovecs written
 * at a time), with NUL bytes and no final newline, comes back intact. */
static void
test_large_fragmented_body(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = spool_msg_create();
	enum { CHUNKS = 300, CHUNK = 1000 };
	char *expect = malloc(CHUNKS * CHUNK);
	char path[4200];
	const char *error = NULL;

	assert_non_null(expect);
	for (size_t i = 0; i < CHUNKS * CHUNK; i++)
		expect[i] = (char)((i * 7 + i / 1000) % 251);
	for (int c = 0; c < CHUNKS; c++)  /* one chain per reference */
		assert_int_equal(evbuffer_add_reference(m->body, expect + c * CHUNK, CHUNK, NULL,
		    NULL), 0);
	spool_msg_add_rcpt(m, "bob@example.test", "bob@example.test");
	assert_int_equal(spool_commit(f->dir, m), 0);

	path_of(f, m->qid, path, sizeof(path));
	struct spool_msg *l = spool_load(path, &error);
	if (l == NULL)
		fail_msg("spool_load: %s", error);
	assert_int_equal(evbuffer_get_length(l->body), CHUNKS * CHUNK);
	assert_memory_equal(evbuffer_pullup(l->body, -1), expect, CHUNKS * CHUNK);
	spool_msg_free(&l);
	spool_msg_free(&m);
	free(expect);
}

static void
test_write_with_body(void **state)
{
	struct fixture *f = *state;
	struct evbuffer *body = evbuffer_new();
	char path[4200];
	size_t len;

	path_of(f, "out", path, sizeof(path));
	evbuffer_add(body, "abc\n", 4);
	evbuffer_add_reference(body, "def\n", 4, NULL, NULL);

	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(spool_write_with_body(fd, "HEAD\n", 5, body), 0);
	assert_int_equal(spool_write_with_body(fd, NULL, 0, body), 0);
	close(fd);
	char *data = test_read_file(path, &len);
	assert_string_equal(data, "HEAD\nabc\ndef\nabc\ndef\n");
	free(data);
	assert_int_equal(evbuffer_get_length(body), 8);   /* not drained */
	evbuffer_free(body);
}

static void
test_commit_errors(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = make_msg("a@b.example");
	char missing[4200];

	path_of(f, "no/such/dir", missing, sizeof(missing));
	errno = 0;
	assert_int_equal(spool_commit(missing, m), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(test_dir_count(f->dir, NULL, 0), 0);
	spool_msg_free(&m);
}

/* Two messages with the same queue id (the same second and the same 28
 * random bits) must not silently replace one another: the first one was
 * acknowledged with 250 already. spool.c says "O_EXCL on the file catches
 * the (unlikely) collision". */
static void
test_commit_qid_collision(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m1 = f->msgs[0] = make_msg("first@example.org");
	struct spool_msg *m2 = f->msgs[1] = make_msg("second@example.org");
	char path[4200];
	const char *error = NULL;

	assert_int_equal(spool_commit(f->dir, m1), 0);
	memcpy(m2->qid, m1->qid, sizeof(m2->qid));
	assert_int_equal(spool_commit(f->dir, m2), -1);

	path_of(f, m1->qid, path, sizeof(path));
	struct spool_msg *l = f->msgs[2] = spool_load(path, &error);
	assert_non_null(l);
	assert_string_equal(l->sender, "first@example.org");
	assert_int_equal(test_dir_count(f->dir, NULL, 0), 1);   /* no .tmp left */
}

static void
test_remove(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m = make_msg(NULL);

	assert_int_equal(spool_commit(f->dir, m), 0);
	assert_int_equal(test_dir_count(f->dir, NULL, 0), 1);
	assert_int_equal(spool_remove(f->dir, m->qid), 0);
	assert_int_equal(test_dir_count(f->dir, NULL, 0), 0);
	errno = 0;
	assert_int_equal(spool_remove(f->dir, m->qid), -1);
	assert_int_equal(errno, ENOENT);
	spool_msg_free(&m);
}

/* ---- scan ---- */

struct seen {
	int n;
	char ids[8][SPOOL_QID_LEN + 1];
};

static void
collect(void *arg, const char *qid)
{
	struct seen *s = arg;

	assert_true(s->n < 8);
	snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s", qid);
}

static bool
seen_has(const struct seen *s, const char *qid)
{
	for (int i = 0; i < s->n; i++) {
		if (strcmp(s->ids[i], qid) == 0)
			return true;
	}
	return false;
}

static void
test_scan(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *a = make_msg("a@example.org");
	struct spool_msg *b = make_msg("b@example.org");
	char path[4200];
	struct seen seen;

	assert_int_equal(spool_commit(f->dir, a), 0);
	assert_int_equal(spool_commit(f->dir, b), 0);
	/* an interrupted write, and things that are not queue files */
	path_of(f, "000000000000000000AB.tmp", path, sizeof(path));
	test_write_file(path, "tegami-queue 1\n", 15);
	path_of(f, "README", path, sizeof(path));
	test_write_file(path, "x", 1);
	path_of(f, "0123456789abcdef", path, sizeof(path));
	test_write_file(path, "x", 1);
	path_of(f, "0123456789ABCDEF.bak", path, sizeof(path));
	test_write_file(path, "x", 1);
	path_of(f, "X.tmp", path, sizeof(path));
	test_write_file(path, "x", 1);

	memset(&seen, 0, sizeof(seen));
	assert_int_equal(spool_scan(f->dir, collect, &seen), 2);
	assert_int_equal(seen.n, 2);
	assert_true(seen_has(&seen, a->qid));
	assert_true(seen_has(&seen, b->qid));

	/* the .tmp file is gone, the rest is left alone */
	path_of(f, "000000000000000000AB.tmp", path, sizeof(path));
	assert_false(test_path_exists(path));
	path_of(f, "README", path, sizeof(path));
	assert_true(test_path_exists(path));
	path_of(f, "0123456789abcdef", path, sizeof(path));
	assert_true(test_path_exists(path));
	path_of(f, "X.tmp", path, sizeof(path));
	assert_true(test_path_exists(path));
	path_of(f, a->qid, path, sizeof(path));
	assert_true(test_path_exists(path));

	/* empty directory, missing directory */
	char empty[4200];
	path_of(f, "empty", empty, sizeof(empty));
	assert_int_equal(mkdir(empty, 0700), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(spool_scan(empty, collect, &seen), 0);
	assert_int_equal(seen.n, 0);
	path_of(f, "missing", empty, sizeof(empty));
	assert_int_equal(spool_scan(empty, collect, &seen), -1);

	spool_msg_free(&a);
	spool_msg_free(&b);
}

/* ---- malformed queue files ---- */

#define LOAD_BAD(f, content) load_bad(__LINE__, (f), (content), sizeof(content) - 1)

static void
load_bad(int line, const struct fixture *f, const char *content, size_t len)
{
	char path[4200];
	const char *error = NULL;

	path_of(f, "0123456789ABCDEF", path, sizeof(path));
	test_write_file(path, content, len);
	struct spool_msg *m = spool_load(path, &error);
	if (m != NULL) {
		spool_msg_free(&m);
		fail_msg("line %d: malformed queue file accepted", line);
	}
	if (error == NULL || error[0] == '\0')
		fail_msg("line %d: refused without a reason", line);
}

static void
test_load_malformed(void **state)
{
	struct fixture *f = *state;
	char path[4200];
	const char *error = NULL;

	/* missing file */
	path_of(f, "FEDCBA9876543210", path, sizeof(path));
	assert_null(spool_load(path, &error));
	assert_non_null(error);

	LOAD_BAD(f, "");
	LOAD_BAD(f, "tegami-queue");
	LOAD_BAD(f, "tegami-queue 2\nI 0123456789ABCDEF\nT 1\nS \nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "TEGAMI-QUEUE 1\nI 0123456789ABCDEF\nT 1\nS \nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "From alice Tue Nov 14 22:13:20 2023\nSubject: x\n\nbody\n");
	/* truncated: no blank line before the message */
	LOAD_BAD(f, "tegami-queue 1\n");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nS \nR a@b\ta@b\n");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nS \nR a@b\ta@b");
	/* missing queue id or recipients */
	LOAD_BAD(f, "tegami-queue 1\nT 1\nS \nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nS \n\nbody");
	LOAD_BAD(f, "tegami-queue 1\n\nbody");
	/* bad lines */
	LOAD_BAD(f, "tegami-queue 1\nI xyz\nT 1\nS \nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789abcdef\nT 1\nS \nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT abc\nS \nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT -1\nS \nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nS \nR a@b a@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nS \nR a@b\ta@b\nX y\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nS \nR a@b\ta@b\nI\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nSalice\nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nS \n R a@b\ta@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\r\nT 1\nS \nR a@b\ta@b\n\nbody");
	LOAD_BAD(f, "tegami-queue 1\nI 0123456789ABCDEF\nT 1\nS \nR a@b\ta@b\n\0\nbody");
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_qid_valid),
		T(test_commit_file_format),
		T(test_commit_load_round_trip),
		T(test_null_sender_empty_body),
		T(test_large_fragmented_body),
		T(test_write_with_body),
		T(test_commit_errors),
		T(test_commit_qid_collision),
		T(test_remove),
		T(test_scan),
		T(test_load_malformed),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
