#include "deliver/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/xmalloc.h"
#include "mail/envelope.h"

#define PATH_BUF 4096

int
maildir_path(const char *mail_root, const char *mailbox, char *buf, size_t size)
{
	const char *at = strrchr(mailbox, '@');

	if (at == NULL)
		return -1;
	int n = snprintf(buf, size, "%s/%s/%.*s", mail_root, at + 1, (int)(at - mailbox), mailbox);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int
maildir_create(const char *dir)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char path[PATH_BUF];
	struct stat st;

	snprintf(path, sizeof(path), "%s/new", dir);
	if (stat(path, &st) == 0)
		return 0;
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		if (fs_mkdir_p(path, 0700) < 0)
			return -1;
	}
	return 0;
}

/* The host part of a Maildir name: '/' and ':' are encoded per the spec. */
static void
host_encode(const char *host, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = host; *p != '\0' && o + 5 < size; p++) {
		if (*p == '/' || *p == ':') {
			o += (size_t)snprintf(out + o, size - o, "\\%03o", (unsigned char)*p);
			continue;
		}
		out[o++] = *p;
	}
	out[o] = '\0';
}

/* True when dir/sub has an entry starting with prefix (recovery only). */
static bool
dir_has_prefix(const char *dir, const char *sub, const char *prefix)
{
	char path[PATH_BUF];
	size_t plen = strlen(prefix);
	bool found = false;
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	DIR *d = opendir(path);
	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL)
		found = strncmp(de->d_name, prefix, plen) == 0;
	closedir(d);
	return found;
}

static size_t
count_lf(struct evbuffer *body)
{
	struct evbuffer_iovec vec[64];
	struct evbuffer_ptr pos;
	size_t n = 0, off = 0, total = evbuffer_get_length(body);

	evbuffer_ptr_set(body, &pos, 0, EVBUFFER_PTR_SET);
	while (off < total) {
		int k = evbuffer_peek(body, -1, &pos, vec, 64);
		if (k <= 0)
			break;
		size_t done = 0;
		for (int i = 0; i < k && i < 64; i++) {
			const char *p = vec[i].iov_base, *end = p + vec[i].iov_len;
			while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
				n++;
				p++;
			}
			done += vec[i].iov_len;
		}
		off += done;
		if (off < total && evbuffer_ptr_set(body, &pos, done, EVBUFFER_PTR_ADD) < 0)
			break;
	}
	return n;
}

/* Copies src to dst (another filesystem: no hard link possible). */
static int
copy_file(const char *src, const char *dst)
{
	char *data;
	size_t len;

	if (fs_read_file(src, (size_t)-1 / 2, &data, &len) < 0)
		return -1;
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = -1;
	if (fd >= 0) {
		rc = fs_write_all(fd, data, len) == 0 && fsync(fd) == 0 ? 0 : -1;
		int saved = errno;
		close(fd);
		if (rc < 0)
			unlink(dst);
		errno = saved;
	}
	free(data);
	return rc;
}

struct target {
	char dir[PATH_BUF];
	char name[512];
	bool skip;
};

static int
write_tmp(const char *path, const char *head, size_t headlen, struct evbuffer *body)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	if (fs_write_evbuffer(fd, head, headlen, body) < 0 || fsync(fd) < 0) {
		int saved = errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	return close(fd);
}

static int
link_all(struct target *t, size_t n, const char *tmp)
{
	char dst[PATH_BUF + 600];

	for (size_t i = 0; i < n; i++) {
		if (t[i].skip)
			continue;
		snprintf(dst, sizeof(dst), "%s/new/%s", t[i].dir, t[i].name);
		if (link(tmp, dst) == 0 || errno == EEXIST)
			continue;
		if (errno != EXDEV || copy_file(tmp, dst) < 0)
			return -1;
	}
	/* Each distinct new/ once: the links are durable when their directory is. */
	for (size_t i = 0; i < n; i++) {
		bool seen = t[i].skip;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !t[j].skip && strcmp(t[i].dir, t[j].dir) == 0;
		if (seen)
			continue;
		snprintf(dst, sizeof(dst), "%s/new", t[i].dir);
		if (fs_fsync_dir(dst) < 0)
			return -1;
	}
	return 0;
}

int
maildir_deliver(const char *mail_root, const char *hostname, const struct envelope *m,
    const size_t *which, size_t n, bool recovering)
{
	char host[256], prefix[128], tmp[PATH_BUF + 600];
	size_t count = which != NULL ? n : m->nrcpt;
	struct target *t = xcalloc(count > 0 ? count : 1, sizeof(*t));
	char *head = xasprintf("Return-Path: <%s>\n", m->sender != NULL ? m->sender : "");
	size_t headlen = strlen(head);
	size_t size = headlen + evbuffer_get_length(m->body);
	size_t vsize = size + 1 + count_lf(m->body);
	ssize_t first = -1;
	int rc = -1, saved = 0;

	host_encode(hostname, host, sizeof(host));
	for (size_t k = 0; k < count; k++) {
		size_t i = which != NULL ? which[k] : k;
		if (maildir_path(mail_root, m->rcpts[i].addr, t[k].dir, sizeof(t[k].dir)) < 0) {
			errno = ENAMETOOLONG;
			goto out;
		}
		if (maildir_create(t[k].dir) < 0)
			goto out;
		snprintf(prefix, sizeof(prefix), "%lld.Q%s_%zu.", (long long)m->arrival, m->qid, i);
		snprintf(t[k].name, sizeof(t[k].name), "%s%s,S=%zu,W=%zu", prefix, host, size, vsize);
		if (recovering)
			t[k].skip = dir_has_prefix(t[k].dir, "new", prefix) ||
			    dir_has_prefix(t[k].dir, "cur", prefix);
		if (!t[k].skip && first < 0)
			first = (ssize_t)k;
	}
	if (first < 0) { /* everything had landed before the crash */
		rc = 0;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", t[first].dir, t[first].name);
	if (write_tmp(tmp, head, headlen, m->body) < 0)
		goto out;
	rc = link_all(t, count, tmp);
	saved = errno;
	unlink(tmp);
	errno = saved;
out:
	saved = errno;
	free(head);
	free(t);
	errno = saved;
	return rc;
}

/* "ARRIVAL.Q<qid>_<index>.": a name maildir_deliver gives. */
static bool
name_is_ours(const char *name)
{
	const char *q = strstr(name, ".Q");

	if (q == NULL || q == name)
		return false;
	for (const char *p = name; p < q; p++) {
		if (*p < '0' || *p > '9')
			return false;
	}
	q += 2;
	for (int i = 0; i < ENVELOPE_QID_LEN; i++) {
		if (!((q[i] >= '0' && q[i] <= '9') || (q[i] >= 'A' && q[i] <= 'F')))
			return false;
	}
	return q[ENVELOPE_QID_LEN] == '_';
}

static void
sweep_dir(const char *tmp, time_t ours_before, time_t others_before, size_t *files,
    unsigned long long *bytes)
{
	DIR *d = opendir(tmp);
	struct dirent *de;
	char path[2 * PATH_BUF];
	struct stat st;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp, de->d_name);
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		bool old = st.st_mtime < others_before;
		bool ours = st.st_mtime < ours_before && name_is_ours(de->d_name);
		if ((old || ours) && unlink(path) == 0) {
			(*files)++;
			*bytes += (unsigned long long)st.st_size;
		}
	}
	closedir(d);
}

int
maildir_sweep_tmp(const char *mail_root, time_t ours_before, time_t others_before,
    size_t *files_r, unsigned long long *bytes_r)
{
	DIR *root = opendir(mail_root);
	struct dirent *dom, *user;
	char path[PATH_BUF];

	*files_r = 0;
	*bytes_r = 0;
	if (root == NULL)
		return -1;
	while ((dom = readdir(root)) != NULL) {
		if (dom->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", mail_root, dom->d_name);
		DIR *dd = opendir(path);
		if (dd == NULL)
			continue;
		while ((user = readdir(dd)) != NULL) {
			char tmp[PATH_BUF + 600];
			if (user->d_name[0] == '.')
				continue;
			snprintf(tmp, sizeof(tmp), "%s/%s/tmp", path, user->d_name);
			sweep_dir(tmp, ours_before, others_before, files_r, bytes_r);
		}
		closedir(dd);
	}
	closedir(root);
	return 0;
}
