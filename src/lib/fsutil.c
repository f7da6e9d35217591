#include "lib/fsutil.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int
fs_mkdir_p(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int
fs_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	int ret = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return ret;
}

int
fs_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fs_read_file(const char *path, size_t max, char **data_r, size_t *len_r)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if ((uint64_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	size_t size = (size_t)st.st_size;
	char *data = malloc(size + 1);
	if (data == NULL)
		goto fail;
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, data + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int saved = n == 0 ? EIO : errno;
			free(data);
			errno = saved;
			goto fail;
		}
		got += (size_t)n;
	}
	data[size] = '\0';
	close(fd);
	*data_r = data;
	*len_r = size;
	return 0;
fail:;
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
fs_free_bytes(const char *path, uint64_t *free_r)
{
	struct statvfs vfs;

	if (statvfs(path, &vfs) < 0)
		return -1;
	*free_r = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	return 0;
}

int
fs_write_evbuffer(int fd, const char *head, size_t headlen, struct evbuffer *body)
{
	struct evbuffer_iovec vec[64];
	struct evbuffer_ptr pos;

	if (head != NULL && fs_write_all(fd, head, headlen) < 0)
		return -1;
	if (body == NULL)
		return 0;
	evbuffer_ptr_set(body, &pos, 0, EVBUFFER_PTR_SET);
	size_t left = evbuffer_get_length(body);
	while (left > 0) {
		int n = evbuffer_peek(body, -1, &pos, vec, 64);
		if (n <= 0)
			break;
		int use = n > 64 ? 64 : n;
		size_t done = 0;
		for (int i = 0; i < use; i++) {
			if (fs_write_all(fd, vec[i].iov_base, vec[i].iov_len) < 0)
				return -1;
			done += vec[i].iov_len;
		}
		left -= done;
		if (left > 0 && evbuffer_ptr_set(body, &pos, done, EVBUFFER_PTR_ADD) < 0)
			break;
	}
	return left == 0 ? 0 : (errno = EIO, -1);
}

int
fs_pread_all(int fd, void *buf, size_t len, long long offset)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		offset += n;
	}
	return 0;
}
