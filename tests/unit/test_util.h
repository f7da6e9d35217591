/* test_util.h: helpers shared by the unit tests (temporary directories, whole
 * file reads). Header-only, static inline so that a test that does not use a
 * helper gets no unused-function warning. */
#ifndef TEGAMI_TEST_UTIL_H
#define TEGAMI_TEST_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline int
test_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* rm -rf path (the tests only ever pass a directory they made). */
static inline void
test_rm_rf(const char *path)
{
	if (path != NULL && path[0] != '\0')
		(void)nftw(path, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under $TMPDIR (or /tmp); the caller frees and removes it. */
static inline char *
test_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];

	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/tegami-test-XXXXXX", base);
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	char *copy = strdup(dir);
	assert_non_null(copy);
	return copy;
}

/* The whole file into a new NUL-terminated buffer (fails the test when unreadable). */
static inline char *
test_read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len >= 0);
	rewind(f);
	data = malloc((size_t)len + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
	data[len] = '\0';
	fclose(f);
	if (len_r != NULL)
		*len_r = (size_t)len;
	return data;
}

/* Writes len bytes of data to path (created or truncated). */
static inline void
test_write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Number of entries other than "." and ".." in dir; the first one's name
 * into first (when not NULL, of size firstsize). -1 when dir cannot be opened. */
static inline int
test_dir_count(const char *dir, char *first, size_t firstsize)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == 0 && first != NULL)
			snprintf(first, firstsize, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static inline bool
test_path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

#endif
