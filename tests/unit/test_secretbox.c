/* Unit tests for lib/secretbox.c: sealed secrets and their key file (MISSION C5). */
#include "test_util.h"

#include <fcntl.h>

#include "lib/secretbox.h"

struct fixture {
	char dir[256];
	char key_path[512];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/tegami-secretbox-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->key_path, sizeof(f->key_path), "%s/secret.key", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	test_rm_rf(f->dir);
	free(f);
	return 0;
}

static void
test_key_created_private(void **state)
{
	struct fixture *f = *state;
	unsigned char k1[SECRETBOX_KEY_LEN], k2[SECRETBOX_KEY_LEN];
	char err[256];
	struct stat st;

	/* absent and not to be created: an error naming the file */
	assert_int_equal(secretbox_key_load(f->key_path, false, k1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "secret.key"));
	assert_int_equal(secretbox_key_load(f->key_path, true, k1, err, sizeof(err)), 0);
	assert_int_equal(stat(f->key_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, SECRETBOX_KEY_LEN);
	/* loaded again: the same key, not a new one */
	assert_int_equal(secretbox_key_load(f->key_path, true, k2, err, sizeof(err)), 0);
	assert_memory_equal(k1, k2, sizeof(k1));
	/* readable by the group: refused, with the fix in the message */
	assert_int_equal(chmod(f->key_path, 0640), 0);
	assert_int_equal(secretbox_key_load(f->key_path, false, k2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(chmod(f->key_path, 0600), 0);
	/* a file of another size is not a key */
	int fd = open(f->key_path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(secretbox_key_load(f->key_path, false, k2, err, sizeof(err)), -1);
}

static void
test_seal_open(void **state)
{
	struct fixture *f = *state;
	unsigned char key[SECRETBOX_KEY_LEN], other[SECRETBOX_KEY_LEN];
	char err[256], out[128];
	size_t len = 0;

	assert_int_equal(secretbox_key_load(f->key_path, true, key, err, sizeof(err)), 0);
	char *a = secretbox_seal(key, "profile:default:smtp", "hunter2", 7);
	char *b = secretbox_seal(key, "profile:default:smtp", "hunter2", 7);
	assert_true(secretbox_is_sealed(a));
	assert_memory_equal(a, SECRETBOX_PREFIX, 3);
	assert_null(strstr(a, "hunter2"));
	assert_string_not_equal(a, b);                  /* a fresh nonce each time */
	assert_int_equal(secretbox_open(key, "profile:default:smtp", a, out, sizeof(out), &len), 0);
	assert_int_equal(len, 7);
	assert_string_equal(out, "hunter2");
	/* another place: does not open */
	assert_int_equal(secretbox_open(key, "profile:other:smtp", a, out, sizeof(out), &len), -1);
	assert_string_equal(out, "");
	/* another key: does not open */
	memcpy(other, key, sizeof(key));
	other[0] ^= 1;
	assert_int_equal(secretbox_open(other, "profile:default:smtp", a, out, sizeof(out), &len), -1);
	/* one octet changed: does not open */
	size_t n = strlen(a);
	a[n / 2] = a[n / 2] == 'A' ? 'B' : 'A';
	assert_int_equal(secretbox_open(key, "profile:default:smtp", a, out, sizeof(out), &len), -1);
	/* malformed values and a buffer too small */
	assert_false(secretbox_is_sealed("hunter2"));
	assert_false(secretbox_is_sealed("v1:"));
	assert_false(secretbox_is_sealed("v1:abc"));
	assert_int_equal(secretbox_open(key, "x", "v1:AAAA", out, sizeof(out), &len), -1);
	assert_int_equal(secretbox_open(key, "profile:default:smtp", b, out, 7, &len), -1);
	/* an empty secret round-trips too */
	char *e = secretbox_seal(key, "p", "", 0);
	assert_int_equal(secretbox_open(key, "p", e, out, sizeof(out), &len), 0);
	assert_int_equal(len, 0);
	free(a);
	free(b);
	free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_created_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_open, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
