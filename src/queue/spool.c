#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

#define SPOOL_MAGIC "tegami-queue 1\n"
#define SPOOL_MAX_FILE (3ULL * 1024 * 1024 * 1024)

/* Queue ids sort by arrival: 9 hex digits of seconds, 5 of microseconds,
 * then 6 random hex digits (24 bits). Maildir names carry the id, so POP3
 * lists messages of the same second in arrival order too. spool_commit()
 * never replaces an existing queue file, so even a collision cannot lose a
 * message: the second one is refused (451). */
static void
qid_generate(char *buf)
{
	uint32_t rnd = 0;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
	snprintf(buf, SPOOL_QID_LEN + 1, "%09llX%05lX%06X",
	    (unsigned long long)ts.tv_sec & 0xFFFFFFFFFULL, (long)(ts.tv_nsec / 1000),
	    (unsigned)(rnd & 0xFFFFFF));
}

int
spool_qid_valid(const char *name)
{
	size_t n = strlen(name);

	if (n != SPOOL_QID_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

struct spool_msg *
spool_msg_create(void)
{
	struct spool_msg *m = xcalloc(1, sizeof(*m));

	qid_generate(m->qid);
	m->arrival = time(NULL);
	m->body = evbuffer_new();
	if (m->body == NULL)
		abort();
	return m;
}

void
spool_msg_free(struct spool_msg **mp)
{
	struct spool_msg *m = *mp;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nrcpt; i++) {
		free(m->rcpts[i].mailbox);
		free(m->rcpts[i].orig);
	}
	free(m->rcpts);
	free(m->sender);
	if (m->body != NULL)
		evbuffer_free(m->body);
	free(m);
	*mp = NULL;
}

void
spool_msg_add_rcpt(struct spool_msg *m, const char *mailbox, const char *orig)
{
	m->rcpts = xreallocarray(m->rcpts, m->nrcpt + 1, sizeof(*m->rcpts));
	m->rcpts[m->nrcpt].mailbox = xstrdup(mailbox);
	m->rcpts[m->nrcpt].orig = xstrdup(orig);
	m->nrcpt++;
}

static char *
envelope_format(const struct spool_msg *m, size_t *len_r)
{
	struct evbuffer *eb = evbuffer_new();
	char *out;

	if (eb == NULL)
		abort();
	evbuffer_add_printf(eb, SPOOL_MAGIC "I %s\nT %lld\nS %s\n", m->qid,
	    (long long)m->arrival, m->sender != NULL ? m->sender : "");
	for (size_t i = 0; i < m->nrcpt; i++)
		evbuffer_add_printf(eb, "R %s\t%s\n", m->rcpts[i].mailbox, m->rcpts[i].orig);
	evbuffer_add(eb, "\n", 1);
	*len_r = evbuffer_get_length(eb);
	out = xmalloc(*len_r);
	evbuffer_remove(eb, out, *len_r);
	evbuffer_free(eb);
	return out;
}

int
spool_write_with_body(int fd, const char *head, size_t headlen, struct evbuffer *body)
{
	struct evbuffer_iovec vec[64];
	struct evbuffer_ptr pos;

	if (head != NULL && fs_write_all(fd, head, headlen) < 0)
		return -1;
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
spool_commit(const char *queue_dir, const struct spool_msg *m)
{
	char tmp[4200], final[4096];
	size_t headlen;
	char *head = envelope_format(m, &headlen);
	int fd = -1, saved;

	snprintf(final, sizeof(final), "%s/%s", queue_dir, m->qid);
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	if (spool_write_with_body(fd, head, headlen, m->body) < 0 || fsync(fd) < 0)
		goto fail_unlink;
	if (close(fd) < 0) {
		fd = -1;
		goto fail_unlink;
	}
	fd = -1;
	/* link(), not rename(): an existing queue file is never replaced. */
	if (link(tmp, final) < 0)
		goto fail_unlink;
	unlink(tmp);
	if (fs_fsync_dir(queue_dir) < 0) {
		/* Not durable: take it back so the client retries. */
		saved = errno;
		unlink(final);
		errno = saved;
		goto fail;
	}
	free(head);
	return 0;
fail_unlink:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
fail:
	saved = errno;
	free(head);
	errno = saved;
	return -1;
}

int
spool_remove(const char *queue_dir, const char *qid)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", queue_dir, qid);
	return unlink(path);
}

static int
parse_envelope_line(struct spool_msg *m, char *line, const char **error_r)
{
	char *tab;
	uint64_t t;

	if (line[0] == '\0' || line[1] != ' ') {
		*error_r = "bad envelope line";
		return -1;
	}
	char *v = line + 2;
	switch (line[0]) {
	case 'I':
		if (!spool_qid_valid(v)) {
			*error_r = "bad queue id";
			return -1;
		}
		str_copy(m->qid, v, sizeof(m->qid));
		return 0;
	case 'T':
		if (str_parse_u64(v, &t) < 0 || t > (uint64_t)INT64_MAX) {
			*error_r = "bad arrival time";
			return -1;
		}
		m->arrival = (time_t)t;
		return 0;
	case 'S':
		free(m->sender);
		m->sender = xstrdup(v);
		return 0;
	case 'R':
		tab = strchr(v, '\t');
		if (tab == NULL) {
			*error_r = "bad recipient line";
			return -1;
		}
		*tab = '\0';
		spool_msg_add_rcpt(m, v, tab + 1);
		return 0;
	default:
		*error_r = "unknown envelope line";
		return -1;
	}
}

struct spool_msg *
spool_load(const char *path, const char **error_r)
{
	char *data;
	size_t len;

	if (fs_read_file(path, SPOOL_MAX_FILE, &data, &len) < 0) {
		*error_r = "cannot read queue file";
		return NULL;
	}
	struct spool_msg *m = spool_msg_create();
	m->qid[0] = '\0';
	if (len < sizeof(SPOOL_MAGIC) - 1 || memcmp(data, SPOOL_MAGIC, sizeof(SPOOL_MAGIC) - 1) != 0) {
		*error_r = "not a tegami queue file";
		goto fail;
	}
	char *p = data + sizeof(SPOOL_MAGIC) - 1;
	char *end = data + len;
	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			*error_r = "truncated envelope";
			goto fail;
		}
		*nl = '\0';
		if (nl == p) { /* blank line: the message follows */
			p = nl + 1;
			break;
		}
		if (parse_envelope_line(m, p, error_r) < 0)
			goto fail;
		p = nl + 1;
	}
	if (m->qid[0] == '\0' || m->nrcpt == 0) {
		*error_r = "envelope without queue id or recipients";
		goto fail;
	}
	evbuffer_add(m->body, p, (size_t)(end - p));
	free(data);
	return m;
fail:
	free(data);
	spool_msg_free(&m);
	return NULL;
}

int
spool_scan(const char *queue_dir, void (*fn)(void *arg, const char *qid), void *arg)
{
	DIR *d = opendir(queue_dir);
	struct dirent *de;
	int n = 0;
	char path[4096];

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len == SPOOL_QID_LEN + 4 && strcmp(de->d_name + SPOOL_QID_LEN, ".tmp") == 0) {
			snprintf(path, sizeof(path), "%s/%s", queue_dir, de->d_name);
			unlink(path);
			continue;
		}
		if (!spool_qid_valid(de->d_name))
			continue;
		fn(arg, de->d_name);
		n++;
	}
	closedir(d);
	return n;
}
