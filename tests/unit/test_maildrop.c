/* test_maildrop.c: src/deliver/maildrop.c, the POP3 view of a Maildir (P2):
 * listing new/ and cur/, the lock, and the new/ → cur/ moves done after the
 * login reply (the settle job) with every message readable meanwhile. */
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>

#include "deliver/maildrop.h"

struct fixture {
	char *root;
	char md[4200];
};

static void
put(struct fixture *f, const char *sub, const char *name, const char *data)
{
	char path[8400];

	snprintf(path, sizeof(path), "%s/%s/%s", f->md, sub, name);
	test_write_file(path, data, strlen(data));
}

static bool
exists(struct fixture *f, const char *sub, const char *name)
{
	char path[8400];

	snprintf(path, sizeof(path), "%s/%s/%s", f->md, sub, name);
	return access(path, F_OK) == 0;
}

static char *
read_msg(struct maildrop *md, size_t i)
{
	static char buf[256];
	int fd = maildrop_open_msg(md, i);

	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->root = test_mkdtemp();
	snprintf(f->md, sizeof(f->md), "%s/Maildir", f->root);
	for (const char *s = "\0new\0cur\0tmp\0"; ; s += strlen(s) + 1) {
		char path[8400];
		snprintf(path, sizeof(path), "%s/%s", f->md, s);
		assert_int_equal(mkdir(path, 0700), 0);
		if (strcmp(s, "tmp") == 0)
			break;
	}
	put(f, "cur", "1700000001.A.host:2,S", "Subject: seen\n\nold\n");
	put(f, "new", "1700000002.B.host", "Subject: b\n\nnew b\n");
	put(f, "new", "1700000003.C.host,S=7,W=9", "Subject: c\n\nc\n");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	test_rm_rf(f->root);
	free(f->root);
	free(f);
	return 0;
}

static void
test_lists_new_and_cur_in_arrival_order(void **state)
{
	struct fixture *f = *state;
	struct maildrop *md = NULL;

	assert_int_equal(maildrop_open(f->md, &md), 0);
	assert_int_equal(md->n, 3);
	assert_string_equal(md->msgs[0].name, "1700000001.A.host:2,S");
	assert_null(md->msgs[0].new_name);
	assert_string_equal(md->msgs[1].name, "1700000002.B.host:2,");
	assert_string_equal(md->msgs[1].new_name, "1700000002.B.host");
	assert_string_equal(md->msgs[1].uidl, "1700000002.B.host");
	assert_int_equal(md->msgs[1].size, strlen("Subject: b\n\nnew b\n") + 3);
	assert_int_equal(md->msgs[2].size, 9);                     /* from W= */
	/* Nothing has moved yet, and every message reads from where it is. */
	assert_true(exists(f, "new", "1700000002.B.host"));
	assert_string_equal(read_msg(md, 1), "Subject: b\n\nnew b\n");
	assert_string_equal(read_msg(md, 0), "Subject: seen\n\nold\n");
	maildrop_close(&md);
	assert_null(md);
	assert_true(exists(f, "new", "1700000002.B.host"));       /* closing moves nothing */
}

static void
test_settle_moves_and_reads_go_on(void **state)
{
	struct fixture *f = *state;
	struct maildrop *md = NULL;

	assert_int_equal(maildrop_open(f->md, &md), 0);
	struct maildrop_settle *st = maildrop_settle_start(md);
	assert_non_null(st);
	assert_null(maildrop_settle_start(md));                     /* once */
	maildrop_settle_run(st);
	maildrop_settle_release(&st);
	assert_null(st);
	assert_false(exists(f, "new", "1700000002.B.host"));
	assert_true(exists(f, "cur", "1700000002.B.host:2,"));
	assert_true(exists(f, "cur", "1700000003.C.host,S=7,W=9:2,"));
	assert_string_equal(read_msg(md, 1), "Subject: b\n\nnew b\n");
	md->msgs[1].deleted = true;
	assert_int_equal(maildrop_commit(md), 0);
	assert_false(exists(f, "cur", "1700000002.B.host:2,"));
	maildrop_close(&md);
	/* The next open finds it all in cur/: no moves left. */
	assert_int_equal(maildrop_open(f->md, &md), 0);
	assert_int_equal(md->n, 2);
	assert_null(maildrop_settle_start(md));
	maildrop_close(&md);
}

static void
test_commit_before_the_settle_ran(void **state)
{
	struct fixture *f = *state;
	struct maildrop *md = NULL;

	assert_int_equal(maildrop_open(f->md, &md), 0);
	struct maildrop_settle *st = maildrop_settle_start(md);
	md->msgs[1].deleted = true;
	md->msgs[0].deleted = true;
	/* QUIT's commit comes first: it stops the job, deletes where the files are. */
	assert_int_equal(maildrop_commit(md), 0);
	assert_false(exists(f, "new", "1700000002.B.host"));
	assert_false(exists(f, "cur", "1700000001.A.host:2,S"));
	maildrop_settle_run(st);                                    /* finds it cancelled */
	assert_true(exists(f, "new", "1700000003.C.host,S=7,W=9"));  /* left for next time */
	maildrop_settle_release(&st);
	maildrop_close(&md);
}

static void
test_close_with_the_job_still_queued(void **state)
{
	struct fixture *f = *state;
	struct maildrop *md = NULL;

	assert_int_equal(maildrop_open(f->md, &md), 0);
	struct maildrop_settle *st = maildrop_settle_start(md);
	maildrop_close(&md);                                        /* the dropped session */
	maildrop_settle_run(st);
	maildrop_settle_release(&st);
	assert_true(exists(f, "new", "1700000002.B.host"));
}

static void
test_one_session_at_a_time(void **state)
{
	struct fixture *f = *state;
	struct maildrop *a = NULL, *b = NULL;

	assert_int_equal(maildrop_open(f->md, &a), 0);
	assert_int_equal(maildrop_open(f->md, &b), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	maildrop_close(&a);
	assert_int_equal(maildrop_open(f->md, &b), 0);
	maildrop_close(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lists_new_and_cur_in_arrival_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_moves_and_reads_go_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_before_the_settle_ran, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_with_the_job_still_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_session_at_a_time, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
