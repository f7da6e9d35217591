#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

#define SPOOL_MAGIC1 "tegami-queue 1\n"
#define SPOOL_MAGIC2 "tegami-queue 2\n"
#define SPOOL_MAGIC_LEN 15
#define SPOOL_MAX_FILE (3ULL * 1024 * 1024 * 1024)
#define SPOOL_MAX_HEADER (64U * 1024 * 1024)
#define SPOOL_MAX_TAIL (64U * 1024 * 1024)

static const char state_letters[] = { 'P', 'Q', 'D', 'F' };

void
spool_path(const char *queue_dir, const char *qid, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", queue_dir, qid);
}

static char *
envelope_format(const struct envelope *e, size_t *len_r)
{
	struct evbuffer *eb = evbuffer_new();
	char *out;

	if (eb == NULL)
		abort();
	evbuffer_add_printf(eb, SPOOL_MAGIC2 "I %s\nT %lld\nS %s\n", e->qid,
	    (long long)e->arrival, e->sender != NULL ? e->sender : "");
	if (e->envid != NULL)
		evbuffer_add_printf(eb, "E %s\n", e->envid);
	if (e->ret == 1 || e->ret == 2)
		evbuffer_add_printf(eb, "N %s\n", e->ret == 1 ? "FULL" : "HDRS");
	if (e->kind != ENVELOPE_MAIL)
		evbuffer_add_printf(eb, "K %d\n", (int)e->kind);
	if (e->eightbit)
		evbuffer_add_printf(eb, "M 1\n");
	evbuffer_add_printf(eb, "B %zu\n", e->body != NULL ? evbuffer_get_length(e->body) : (size_t)0);
	for (size_t i = 0; i < e->nrcpt; i++) {
		const struct envelope_rcpt *r = &e->rcpts[i];
		evbuffer_add_printf(eb, "R %c\t%s\t%s\t%u\t%s\n", r->remote ? 'R' : 'L', r->addr,
		    r->orig, r->notify, r->orcpt != NULL ? r->orcpt : "");
	}
	/* Recipients that are not as envelope_add_rcpt made them get their
	 * record here (new messages and reports never do; a loaded envelope
	 * written back may). */
	for (size_t i = 0; i < e->nrcpt; i++) {
		char rec[SPOOL_RECORD_MAX];
		const struct envelope_rcpt *r = &e->rcpts[i];
		if (r->state != RCPT_PENDING || r->flags != 0 || r->attempts != 0 ||
		    r->next_try != 0 || r->updated != 0 || r->mta != NULL || r->reply != NULL)
			evbuffer_add(eb, rec, spool_record_rcpt(e, i, rec, sizeof(rec)));
	}
	evbuffer_add(eb, "\n", 1);
	*len_r = evbuffer_get_length(eb);
	out = xmalloc(*len_r);
	evbuffer_remove(eb, out, *len_r);
	evbuffer_free(eb);
	return out;
}

uint64_t
spool_header_length(const struct envelope *e)
{
	size_t len;
	char *head = envelope_format(e, &len);

	free(head);
	return len;
}

int
spool_commit(const char *queue_dir, const struct envelope *e)
{
	char tmp[4200], final[4096];
	size_t headlen;
	char *head = envelope_format(e, &headlen);
	int fd = -1, saved;

	spool_path(queue_dir, e->qid, final, sizeof(final));
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	if (fs_write_evbuffer(fd, head, headlen, e->body) < 0 || fsync(fd) < 0)
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

/* Copies s into the record, every tab, line end or control octet turned
 * into a space, at most max octets. */
static size_t
clean_field(char *dst, size_t room, const char *s, size_t max)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; *s != '\0' && n < max && n + 1 < room; s++) {
		unsigned char c = (unsigned char)*s;
		dst[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	return n;
}

size_t
spool_record_rcpt(const struct envelope *e, size_t idx, char *buf, size_t size)
{
	const struct envelope_rcpt *r = &e->rcpts[idx];
	int n = snprintf(buf, size, "s %zu %c %u %lld %u %lld\t", idx, state_letters[r->state],
	    r->attempts, (long long)r->next_try, r->flags, (long long)r->updated);
	size_t o = n > 0 && (size_t)n < size ? (size_t)n : 0;

	o += clean_field(buf + o, size - o, r->mta, 255);
	if (o + 1 < size)
		buf[o++] = '\t';
	o += clean_field(buf + o, size - o, r->reply, 1000);
	if (o + 1 < size)
		buf[o++] = '\n';
	buf[o] = '\0';
	return o;
}

size_t
spool_record_hold(bool hold, char *buf, size_t size)
{
	int n = snprintf(buf, size, "h %d\n", hold ? 1 : 0);

	return n > 0 ? (size_t)n : 0;
}

int
spool_append(const char *queue_dir, const char *qid, const char *records, size_t len)
{
	char path[4096];
	int fd, saved;

	spool_path(queue_dir, qid, path, sizeof(path));
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* One write: a crash leaves whole records and at most one torn line,
	 * which spool_load ignores. */
	if (fs_write_all(fd, records, len) < 0 || fdatasync(fd) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

int
spool_remove(const char *queue_dir, const char *qid)
{
	char path[4096];

	spool_path(queue_dir, qid, path, sizeof(path));
	return unlink(path);
}

/* --- loading --- */

/* True when s holds a control octet (a tab included): no address or
 * ORCPT we write has one. */
static bool
has_ctl(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static int
parse_rcpt_v2(struct envelope *e, char *v, const char **error_r)
{
	char *f[5];
	uint64_t notify;

	for (int i = 0; i < 5; i++) {
		f[i] = v;
		char *tab = strchr(v, '\t');
		if (i < 4) {
			if (tab == NULL) {
				*error_r = "bad recipient line";
				return -1;
			}
			*tab = '\0';
			v = tab + 1;
		}
	}
	if ((strcmp(f[0], "L") != 0 && strcmp(f[0], "R") != 0) || f[1][0] == '\0' ||
	    has_ctl(f[1]) || has_ctl(f[2]) || has_ctl(f[4]) ||
	    str_parse_u64(f[3], &notify) < 0 || notify > 15) {
		*error_r = "bad recipient line";
		return -1;
	}
	struct envelope_rcpt *r = envelope_add_rcpt(e, f[1], f[2], f[0][0] == 'R');
	r->notify = (unsigned)notify;
	if (f[4][0] != '\0')
		r->orcpt = xstrdup(f[4]);
	return 0;
}

static int
parse_envelope_line(struct envelope *e, int version, char *line, uint64_t *body_len,
    const char **error_r)
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
		if (!envelope_qid_valid(v)) {
			*error_r = "bad queue id";
			return -1;
		}
		str_copy(e->qid, v, sizeof(e->qid));
		return 0;
	case 'T':
		if (str_parse_u64(v, &t) < 0 || t > (uint64_t)INT64_MAX) {
			*error_r = "bad arrival time";
			return -1;
		}
		e->arrival = (time_t)t;
		return 0;
	case 'S':
		if (has_ctl(v)) {
			*error_r = "bad sender";
			return -1;
		}
		free(e->sender);
		e->sender = xstrdup(v);
		return 0;
	case 'E':
		if (has_ctl(v)) {
			*error_r = "bad envelope id";
			return -1;
		}
		free(e->envid);
		e->envid = xstrdup(v);
		return 0;
	case 'N':
		e->ret = strcmp(v, "FULL") == 0 ? 1 : strcmp(v, "HDRS") == 0 ? 2 : 0;
		return 0;
	case 'K':
		if (str_parse_u64(v, &t) < 0 || t > ENVELOPE_REPORT2) {
			*error_r = "bad kind";
			return -1;
		}
		e->kind = (enum envelope_kind)t;
		return 0;
	case 'M':
		e->eightbit = strcmp(v, "1") == 0;
		return 0;
	case 'B':
		if (str_parse_u64(v, body_len) < 0) {
			*error_r = "bad body length";
			return -1;
		}
		return 0;
	case 'R':
		if (version == 2)
			return parse_rcpt_v2(e, v, error_r);
		tab = strchr(v, '\t');
		if (tab == NULL || tab == v) {
			*error_r = "bad recipient line";
			return -1;
		}
		*tab = '\0';
		if (has_ctl(v) || has_ctl(tab + 1)) {
			*error_r = "bad recipient line";
			return -1;
		}
		envelope_add_rcpt(e, v, tab + 1, false);
		return 0;
	case 's':
	case 'h':
		return 1; /* a state record (written with the envelope) */
	default:
		*error_r = "unknown envelope line";
		return -1;
	}
}

/* Applies one state record; malformed ones are skipped (a later record of
 * the same recipient may still be whole). */
static void
apply_record(struct envelope *e, char *line)
{
	uint64_t idx, attempts, next, flags;
	char st;

	if (line[0] == 'h' && line[1] == ' ') {
		e->hold = strcmp(line + 2, "1") == 0;
		return;
	}
	if (line[0] != 's' || line[1] != ' ')
		return;
	char *tab1 = strchr(line, '\t');
	char *tab2 = tab1 != NULL ? strchr(tab1 + 1, '\t') : NULL;
	if (tab2 == NULL)
		return;
	*tab1 = '\0';
	*tab2 = '\0';
	char *f[6] = { NULL };
	char *p = line + 2;
	uint64_t updated = 0;
	for (int i = 0; i < 6 && p != NULL; i++) {
		f[i] = p;
		char *sp = strchr(p, ' ');
		if (sp != NULL)
			*sp = '\0';
		p = sp != NULL ? sp + 1 : NULL;
	}
	if (f[4] == NULL || (f[5] != NULL && (str_parse_u64(f[5], &updated) < 0 ||
	    updated > (uint64_t)INT64_MAX)))
		return;
	if (str_parse_u64(f[0], &idx) < 0 || idx >= e->nrcpt || strlen(f[1]) != 1 ||
	    str_parse_u64(f[2], &attempts) < 0 || str_parse_u64(f[3], &next) < 0 ||
	    str_parse_u64(f[4], &flags) < 0 || attempts > UINT32_MAX || next > (uint64_t)INT64_MAX)
		return;
	st = f[1][0];
	const char *hit = memchr(state_letters, st, sizeof(state_letters));
	if (hit == NULL)
		return;
	struct envelope_rcpt *r = &e->rcpts[idx];
	r->state = (enum rcpt_state)(hit - state_letters);
	r->attempts = (unsigned)attempts;
	r->next_try = (time_t)next;
	r->flags = (unsigned)flags;
	r->updated = (time_t)updated;
	envelope_rcpt_set_reply(r, tab1 + 1, tab2 + 1);
}

/* Applies every complete line of the records in p..end. */
static void
apply_records(struct envelope *e, char *p, char *end)
{
	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return; /* a torn last line */
		*nl = '\0';
		apply_record(e, p);
		p = nl + 1;
	}
}

/* Reads the start of the file until the blank line ending the envelope:
 * 0 with the data read so far (*data_r, *len_r, *hdr_end_r offset just past
 * the blank line), or -1. */
static int
read_header(int fd, char **data_r, size_t *len_r, size_t *hdr_end_r)
{
	size_t cap = 8192, len = 0;
	char *buf = xmalloc(cap + 1);

	for (;;) {
		if (len == cap) {
			if (cap >= SPOOL_MAX_HEADER) {
				free(buf);
				errno = EFBIG;
				return -1;
			}
			cap *= 2;
			buf = xreallocarray(buf, cap + 1, 1);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -1;
		}
		size_t from = len > 0 ? len - 1 : 0;
		len += (size_t)n;
		buf[len] = '\0';
		char *blank = len > from ? memmem(buf + from, len - from, "\n\n", 2) : NULL;
		if (blank != NULL || n == 0) {
			*data_r = buf;
			*len_r = len;
			*hdr_end_r = blank != NULL ? (size_t)(blank - buf) + 2 : len + 1;
			return 0;
		}
	}
}

/* Parses the envelope lines of data[0..hdr_end). */
static struct envelope *
parse_envelope(char *data, size_t hdr_end, uint64_t *body_len, int *version_r,
    const char **error_r)
{
	struct envelope *e = envelope_create();
	int version;

	evbuffer_free(e->body);
	e->body = NULL;
	e->qid[0] = '\0';
	e->arrival = (time_t)-1;
	if (hdr_end < SPOOL_MAGIC_LEN + 1 || (memcmp(data, SPOOL_MAGIC1, SPOOL_MAGIC_LEN) != 0 &&
	    memcmp(data, SPOOL_MAGIC2, SPOOL_MAGIC_LEN) != 0)) {
		*error_r = "not a tegami queue file";
		goto fail;
	}
	version = data[SPOOL_MAGIC_LEN - 2] - '0';
	char *p = data + SPOOL_MAGIC_LEN;
	char *end = data + hdr_end - 1; /* the blank line's LF */
	*body_len = UINT64_MAX;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			*error_r = "truncated envelope";
			goto fail;
		}
		if (memchr(p, '\0', (size_t)(nl - p)) != NULL) {
			*error_r = "NUL in the envelope";
			goto fail;
		}
		*nl = '\0';
		int r = parse_envelope_line(e, version, p, body_len, error_r);
		if (r < 0)
			goto fail;
		if (r > 0)
			apply_record(e, p);
		p = nl + 1;
	}
	if (e->qid[0] == '\0' || e->arrival < 0 || e->sender == NULL || e->nrcpt == 0 ||
	    (version == 2 && *body_len == UINT64_MAX)) {
		*error_r = "envelope without queue id, arrival, sender, recipients or body length";
		goto fail;
	}
	*version_r = version;
	return e;
fail:
	envelope_free(&e);
	return NULL;
}

struct envelope *
spool_load(const char *path, bool with_body, uint64_t *body_offset_r, const char **error_r)
{
	char *data = NULL;
	size_t len = 0, hdr_end = 0;
	uint64_t body_len;
	int version = 0;
	struct stat st;
	struct envelope *e = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 || read_header(fd, &data, &len, &hdr_end) < 0) {
		*error_r = "cannot read queue file";
		goto out;
	}
	if ((uint64_t)st.st_size > SPOOL_MAX_FILE || hdr_end > len) {
		*error_r = hdr_end > len ? "truncated envelope" : "queue file too large";
		goto out;
	}
	e = parse_envelope(data, hdr_end, &body_len, &version, error_r);
	if (e == NULL)
		goto out;
	if (version == 1)
		body_len = (uint64_t)st.st_size - hdr_end;
	if (hdr_end + body_len > (uint64_t)st.st_size) {
		*error_r = "truncated message";
		envelope_free(&e);
		goto out;
	}
	e->body_size = body_len;
	*body_offset_r = hdr_end;
	/* The records after the body, and the body itself when asked. */
	uint64_t tail_off = hdr_end + body_len;
	uint64_t want_from = with_body ? hdr_end : tail_off;
	uint64_t want = (uint64_t)st.st_size - want_from;
	if (!with_body && want > SPOOL_MAX_TAIL) {
		*error_r = "too many state records";
		envelope_free(&e);
		goto out;
	}
	char *rest = xmalloc((size_t)want + 1);
	if (fs_pread_all(fd, rest, (size_t)want, (off_t)want_from) < 0) {
		free(rest);
		*error_r = "cannot read queue file";
		envelope_free(&e);
		goto out;
	}
	if (with_body) {
		e->body = evbuffer_new();
		if (e->body == NULL)
			abort();
		evbuffer_add(e->body, rest, (size_t)body_len);
	}
	apply_records(e, rest + (tail_off - want_from), rest + want);
	free(rest);
out:
	if (fd >= 0)
		close(fd);
	free(data);
	return e;
}

int
spool_upgrade(const char *queue_dir, const char *qid)
{
	char path[4096], tmp[4200], magic[SPOOL_MAGIC_LEN];
	const char *error;
	uint64_t off;
	int saved;

	spool_path(queue_dir, qid, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, magic, sizeof(magic));
	close(fd);
	if (n != (ssize_t)sizeof(magic) || memcmp(magic, SPOOL_MAGIC1, sizeof(magic)) != 0)
		return 0;
	struct envelope *e = spool_load(path, true, &off, &error);
	if (e == NULL) {
		errno = EINVAL;
		return -1;
	}
	size_t headlen;
	char *head = envelope_format(e, &headlen);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd < 0 || fs_write_evbuffer(fd, head, headlen, e->body) < 0 || fsync(fd) < 0 ? -1 : 0;
	saved = errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc == 0 && (rename(tmp, path) < 0 || fs_fsync_dir(queue_dir) < 0)) {
		rc = -1;
		saved = errno;
	}
	if (rc < 0)
		unlink(tmp);
	free(head);
	envelope_free(&e);
	errno = saved;
	return rc < 0 ? -1 : 1;
}

int
spool_history(const char *path, spool_history_fn *fn, void *arg, const char **error_r)
{
	char *data;
	size_t len;
	uint64_t body_len;
	int version;

	if (fs_read_file(path, SPOOL_MAX_HEADER + SPOOL_MAX_TAIL, &data, &len) < 0) {
		*error_r = "cannot read queue file";
		return -1;
	}
	char *blank = memmem(data, len, "\n\n", 2);
	if (blank == NULL) {
		free(data);
		*error_r = "truncated envelope";
		return -1;
	}
	size_t hdr_end = (size_t)(blank - data) + 2;
	struct envelope *e = parse_envelope(data, hdr_end, &body_len, &version, error_r);
	if (e == NULL) {
		free(data);
		return -1;
	}
	if (version == 1 || hdr_end + body_len > len) {
		envelope_free(&e);
		free(data);
		return 0; /* no records */
	}
	char *p = data + hdr_end + body_len, *end = data + len;
	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		uint64_t idx;
		if (nl == NULL)
			break;
		*nl = '\0';
		char *sp = p[0] == 's' && p[1] == ' ' ? strchr(p + 2, ' ') : NULL;
		bool rcpt_record = false;
		if (sp != NULL) {
			*sp = '\0';
			rcpt_record = str_parse_u64(p + 2, &idx) == 0 && idx < e->nrcpt;
			*sp = ' ';
		}
		apply_record(e, p);
		if (rcpt_record)
			fn(arg, (size_t)idx, &e->rcpts[idx]);
		p = nl + 1;
	}
	envelope_free(&e);
	free(data);
	return 0;
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
		if (len == ENVELOPE_QID_LEN + 4 && strcmp(de->d_name + ENVELOPE_QID_LEN, ".tmp") == 0) {
			snprintf(path, sizeof(path), "%s/%s", queue_dir, de->d_name);
			unlink(path);
			continue;
		}
		if (!envelope_qid_valid(de->d_name))
			continue;
		fn(arg, de->d_name);
		n++;
	}
	closedir(d);
	return n;
}
