#include "deliver/maildrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <stdint.h>
#include <unistd.h>

#include "deliver/maildir.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/pop3_wire.h"

#define PATH_BUF 4096

/* The parts of a maildrop the settle job shares with it (see maildrop.h):
 * the job's own copy of the moves, and the handshake that lets close and
 * commit stop it. */
enum settle_state { SETTLE_QUEUED, SETTLE_RUNNING, SETTLE_DONE };

struct maildrop_settle {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum settle_state state;
	bool cancel;            /* set under mu, read lock-free by the job (atomic) */
	int refs;               /* the maildrop's and the job's */
	size_t done;            /* moves made, in order (atomic: read by the loop) */
	char *dir;
	size_t n;
	char **from, **to;      /* names in new/ and in cur/ */
};

/* W=<n> in the name (Dovecot's and ours), else read and count. */
static int
message_size(const char *dir, const char *sub, const char *name, uint64_t *size_r)
{
	const char *w = strstr(name, ",W=");
	char path[PATH_BUF * 2];
	uint64_t v = 0;

	if (w != NULL) {
		const char *p = w + 3;
		for (; *p >= '0' && *p <= '9'; p++)
			v = v * 10 + (uint64_t)(*p - '0');
		if (p > w + 3 && (*p == ',' || *p == ':' || *p == '\0')) {
			*size_r = v;
			return 0;
		}
	}
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* Octets as RETR sends them (mail/pop3_wire.h). */
	char buf[65536];
	struct pop3_size sz;
	ssize_t n;
	pop3_size_init(&sz);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		pop3_size_add(&sz, buf, (size_t)n);
	close(fd);
	if (n < 0)
		return -1;
	*size_r = pop3_size_result(&sz);
	return 0;
}

static void
make_uidl(const char *name, char *out)
{
	size_t base = strcspn(name, ":");
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	bool ok = base > 0 && base <= MAILDROP_UIDL_MAX;

	for (size_t i = 0; ok && i < base; i++)
		ok = name[i] > 0x20 && name[i] < 0x7f;
	if (ok) {
		memcpy(out, name, base);
		out[base] = '\0';
		return;
	}
	EVP_Digest(name, base, md, &mdlen, EVP_sha1(), NULL);
	for (unsigned i = 0; i < mdlen && i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Arrival order: the leading seconds, then the name. */
static int
cmp_msgs(const void *a, const void *b)
{
	const struct maildrop_msg *x = a, *y = b;
	unsigned long long tx = strtoull(x->name, NULL, 10), ty = strtoull(y->name, NULL, 10);

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Sizes of messages whose names carry no W= (mail from other programs),
 * remembered in DIR/.tegami-pop3.sizes ("SIZE NAME" lines) so that a login
 * does not read every such message again: Maildir files never change. It is
 * only a cache: a torn or stale file costs a recount, nothing else. */
struct size_entry {
	char *name;
	uint64_t size;
};

struct size_cache {
	struct size_entry *e;
	size_t n, cap;
	bool dirty;
};

static int
cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct size_entry *)a)->name, ((const struct size_entry *)b)->name);
}

static void
cache_add(struct size_cache *c, const char *name, uint64_t size)
{
	if (c->n == c->cap) {
		c->cap = c->cap == 0 ? 64 : c->cap * 2;
		c->e = xreallocarray(c->e, c->cap, sizeof(*c->e));
	}
	c->e[c->n].name = xstrdup(name);
	c->e[c->n].size = size;
	c->n++;
}

static void
cache_load(const char *dir, struct size_cache *c)
{
	char path[PATH_BUF], line[1024];

	snprintf(path, sizeof(path), "%s/.tegami-pop3.sizes", dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *sp = strchr(line, ' '), *nl = strchr(line, '\n');
		uint64_t size;
		if (sp == NULL || nl == NULL)
			continue;
		*sp = *nl = '\0';
		if (str_parse_u64(line, &size) == 0 && sp[1] != '\0')
			cache_add(c, sp + 1, size);
	}
	fclose(f);
	if (c->n > 1)
		qsort(c->e, c->n, sizeof(*c->e), cmp_entry);
}

static bool
cache_get(const struct size_cache *c, const char *name, uint64_t *size_r)
{
	struct size_entry key = { (char *)(uintptr_t)name, 0 };
	const struct size_entry *e = c->n > 0 ?
	    bsearch(&key, c->e, c->n, sizeof(*c->e), cmp_entry) : NULL;

	if (e == NULL)
		return false;
	*size_r = e->size;
	return true;
}

/* Rewrites the cache with the sizes counted for this listing. */
static void
cache_save(const struct maildrop *md)
{
	char path[PATH_BUF], tmp[PATH_BUF + 8];

	snprintf(path, sizeof(path), "%s/.tegami-pop3.sizes", md->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	for (size_t i = 0; i < md->n; i++) {
		const char *name = md->msgs[i].name;
		if (strstr(name, ",W=") == NULL && strchr(name, '\n') == NULL)
			fprintf(f, "%llu %s\n", (unsigned long long)md->msgs[i].size, name);
	}
	if (fclose(f) == 0)
		rename(tmp, path);
	else
		unlink(tmp);
}

static void
cache_free(struct size_cache *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].name);
	free(c->e);
}

struct scan {
	struct size_cache cache;
	size_t cap, cached;
};

/* Lists sub ("new" or "cur") into md. A message in new/ is listed under the
 * name it gets in cur/ (":2," appended, as the Maildir spec wants of a
 * reader); the move itself is the settle job's. */
static int
scan_dir(struct maildrop *md, const char *sub, struct scan *sc)
{
	char path[PATH_BUF], final[PATH_BUF];
	struct dirent *de;
	bool in_new = strcmp(sub, "new") == 0;

	snprintf(path, sizeof(path), "%s/%s", md->dir, sub);
	DIR *d = opendir(path);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		uint64_t size;
		if (de->d_name[0] == '.')
			continue;
		snprintf(final, sizeof(final), "%s%s", de->d_name,
		    in_new && strchr(de->d_name, ':') == NULL ? ":2," : "");
		if (strstr(final, ",W=") == NULL && cache_get(&sc->cache, final, &size)) {
			sc->cached++;
		} else if (message_size(md->dir, sub, de->d_name, &size) < 0) {
			continue;
		} else if (strstr(final, ",W=") == NULL) {
			sc->cache.dirty = true;
		}
		if (md->n == sc->cap) {
			sc->cap = sc->cap == 0 ? 64 : sc->cap * 2;
			md->msgs = xreallocarray(md->msgs, sc->cap, sizeof(*md->msgs));
		}
		struct maildrop_msg *m = &md->msgs[md->n++];
		memset(m, 0, sizeof(*m));
		m->name = xstrdup(final);
		m->new_name = in_new ? xstrdup(de->d_name) : NULL;
		m->size = size;
		make_uidl(m->name, m->uidl);
	}
	closedir(d);
	return 0;
}

static int
scan(struct maildrop *md)
{
	struct scan sc = { 0 };
	int rc = -1;

	cache_load(md->dir, &sc.cache);
	if (scan_dir(md, "cur", &sc) < 0 || scan_dir(md, "new", &sc) < 0)
		goto out;
	if (md->n > 1)
		qsort(md->msgs, md->n, sizeof(*md->msgs), cmp_msgs);
	/* Rewrite when something was counted, or entries went away. */
	if (sc.cache.dirty || sc.cached != sc.cache.n)
		cache_save(md);
	rc = 0;
out:
	cache_free(&sc.cache);
	return rc;
}

int
maildrop_open(const char *maildir, struct maildrop **md_r)
{
	char path[PATH_BUF];
	struct maildrop *md;
	int saved;

	if (maildir_create(maildir) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/.tegami-pop3.lock", maildir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		saved = errno;
		close(fd);
		errno = saved == EWOULDBLOCK ? EWOULDBLOCK : saved;
		return -1;
	}
	md = xcalloc(1, sizeof(*md));
	md->dir = xstrdup(maildir);
	md->lock_fd = fd;
	if (scan(md) < 0) {
		saved = errno;
		maildrop_close(&md);
		errno = saved;
		return -1;
	}
	*md_r = md;
	return 0;
}

/* Stops the settle job (it finishes the rename it is in) and lets go of it:
 * from here on every file stays where it is. */
static void
settle_stop(struct maildrop *md)
{
	struct maildrop_settle *st = md->settle;

	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	__atomic_store_n(&st->cancel, true, __ATOMIC_RELEASE);
	while (st->state == SETTLE_RUNNING)
		pthread_cond_wait(&st->cv, &st->mu);
	pthread_mutex_unlock(&st->mu);
	maildrop_settle_release(&md->settle);
}

void
maildrop_close(struct maildrop **mdp)
{
	struct maildrop *md = *mdp;

	if (md == NULL)
		return;
	settle_stop(md);
	for (size_t i = 0; i < md->n; i++) {
		free(md->msgs[i].name);
		free(md->msgs[i].new_name);
	}
	free(md->msgs);
	if (md->lock_fd >= 0)
		close(md->lock_fd); /* releases the flock */
	free(md->dir);
	free(md);
	*mdp = NULL;
}

size_t
maildrop_commit(struct maildrop *md)
{
	char path[PATH_BUF * 2];
	size_t failed = 0;

	settle_stop(md); /* each file is now in new/ or in cur/, and stays */
	for (size_t i = 0; i < md->n; i++) {
		const struct maildrop_msg *m = &md->msgs[i];
		if (!m->deleted)
			continue;
		snprintf(path, sizeof(path), "%s/cur/%s", md->dir, m->name);
		int rc = unlink(path);
		if (rc < 0 && errno == ENOENT && m->new_name != NULL) {
			snprintf(path, sizeof(path), "%s/new/%s", md->dir, m->new_name);
			rc = unlink(path);
		}
		if (rc < 0 && errno != ENOENT)
			failed++;
	}
	return failed;
}

size_t
maildrop_deleted(const struct maildrop *md)
{
	size_t n = 0;

	for (size_t i = 0; i < md->n; i++)
		n += md->msgs[i].deleted;
	return n;
}

int
maildrop_open_msg(const struct maildrop *md, size_t i)
{
	char path[PATH_BUF * 2];
	const struct maildrop_msg *m = &md->msgs[i];
	const struct maildrop_settle *st = md->settle;
	bool moved = st != NULL && m->settle_index < __atomic_load_n(&st->done, __ATOMIC_ACQUIRE);

	/* new/ first: a rename between the two tries moves the file from the
	 * first place tried to the second, never the other way. */
	if (m->new_name != NULL && !moved) {
		snprintf(path, sizeof(path), "%s/new/%s", md->dir, m->new_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			return fd;
	}
	snprintf(path, sizeof(path), "%s/cur/%s", md->dir, m->name);
	return open(path, O_RDONLY | O_CLOEXEC);
}

struct maildrop_settle *
maildrop_settle_start(struct maildrop *md)
{
	size_t n = 0;

	for (size_t i = 0; i < md->n; i++)
		n += md->msgs[i].new_name != NULL;
	if (n == 0 || md->settle != NULL)
		return NULL;
	struct maildrop_settle *st = xcalloc(1, sizeof(*st));
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->state = SETTLE_QUEUED;
	st->refs = 2;
	st->dir = xstrdup(md->dir);
	st->from = xreallocarray(NULL, n, sizeof(*st->from));
	st->to = xreallocarray(NULL, n, sizeof(*st->to));
	for (size_t i = 0; i < md->n; i++) {
		if (md->msgs[i].new_name == NULL)
			continue;
		md->msgs[i].settle_index = st->n;
		st->from[st->n] = xstrdup(md->msgs[i].new_name);
		st->to[st->n] = xstrdup(md->msgs[i].name);
		st->n++;
	}
	md->settle = st;
	return st;
}

void
maildrop_settle_run(struct maildrop_settle *st)
{
	char src[PATH_BUF * 2], dst[PATH_BUF * 2];

	pthread_mutex_lock(&st->mu);
	if (st->cancel) {
		st->state = SETTLE_DONE;
		pthread_mutex_unlock(&st->mu);
		return;
	}
	st->state = SETTLE_RUNNING;
	pthread_mutex_unlock(&st->mu);
	for (size_t i = 0; i < st->n && !__atomic_load_n(&st->cancel, __ATOMIC_ACQUIRE); i++) {
		snprintf(src, sizeof(src), "%s/new/%s", st->dir, st->from[i]);
		snprintf(dst, sizeof(dst), "%s/cur/%s", st->dir, st->to[i]);
		(void)rename(src, dst); /* gone meanwhile: another reader took it */
		__atomic_store_n(&st->done, i + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_lock(&st->mu);
	st->state = SETTLE_DONE;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

void
maildrop_settle_release(struct maildrop_settle **stp)
{
	struct maildrop_settle *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	pthread_mutex_lock(&st->mu);
	bool last = --st->refs == 0;
	pthread_mutex_unlock(&st->mu);
	if (!last)
		return;
	for (size_t i = 0; i < st->n; i++) {
		free(st->from[i]);
		free(st->to[i]);
	}
	free(st->from);
	free(st->to);
	free(st->dir);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	free(st);
}
