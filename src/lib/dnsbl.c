/* dnsbl.c: see dnsbl.h.
 *
 * One cache entry per looked-up name (reversed address + zone) in a hash
 * table. An entry is asking (its A record, then, when that lists the
 * address, its TXT record) or answered. Checks wait on asking entries
 * through one `wait` per zone, linked into the entry; an answer walks the
 * entry's waits. Answered entries sit on a list ordered by when they were
 * answered: each new entry first drops a few expired ones off its head, and
 * a full cache gives up its oldest answered entry. Asking entries are never
 * given up (there are at most as many as sessions waiting). */
#include "lib/dnsbl.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

#define SWEEP_PER_INSERT 4

enum entry_state { E_ASK_A, E_ASK_TXT, E_ANSWERED };

struct entry;

/* One zone of a check, waiting on an entry that is still asking. */
struct wait {
	struct dnsbl_check *check;
	struct entry *entry;         /* NULL once told */
	struct wait *prev, *next;    /* on entry->waits */
};

struct entry {
	struct dnsbl *b;
	struct entry *hnext;         /* hash chain */
	struct entry *older, *newer; /* on the answered list */
	enum entry_state state;
	bool listed;
	bool notifying;              /* walking its waits: not to be given up */
	time_t expires;
	unsigned ttl;                /* of the A answer, kept while the TXT is asked */
	char answer[INET_ADDRSTRLEN];
	char *text;                  /* sanitised TXT, NULL when none */
	struct dns_query *q;
	struct wait *waits;
	const char *zone;            /* inside name */
	char name[];                 /* "4.3.2.1.zone" */
};

struct dnsbl_check {
	struct dnsbl *b;
	dnsbl_fn *fn;
	void *arg;
	struct event *deadline;
	size_t nwaits;
	size_t pending;              /* waits not yet told */
	struct dnsbl_result res;
	struct wait waits[];
};

struct dnsbl {
	struct event_base *base;
	struct dns *dns;
	struct entry **buckets;
	size_t nbuckets;             /* a power of two */
	size_t n;
	struct entry *oldest, *newest;
};

static uint32_t
name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct entry **
entry_slot(struct dnsbl *b, const char *name)
{
	struct entry **pp = &b->buckets[name_hash(name) & (b->nbuckets - 1)];

	while (*pp != NULL && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void
answered_unlink(struct dnsbl *b, struct entry *e)
{
	if (e->older != NULL)
		e->older->newer = e->newer;
	else if (b->oldest == e)
		b->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else if (b->newest == e)
		b->newest = e->older;
	e->older = e->newer = NULL;
}

static void
answered_append(struct dnsbl *b, struct entry *e)
{
	e->newer = NULL;
	e->older = b->newest;
	if (b->newest != NULL)
		b->newest->newer = e;
	else
		b->oldest = e;
	b->newest = e;
}

/* Frees an entry nobody waits on. */
static void
entry_free(struct dnsbl *b, struct entry *e)
{
	struct entry **pp = entry_slot(b, e->name);

	*pp = e->hnext;
	if (e->state == E_ANSWERED)
		answered_unlink(b, e);
	dns_cancel(&e->q);
	free(e->text);
	free(e);
	b->n--;
}

/* Drops expired answers off the head of the list and, when the cache is
 * full, its oldest answer. */
static void
make_room(struct dnsbl *b, time_t now)
{
	for (int k = 0; k < SWEEP_PER_INSERT && b->oldest != NULL &&
	    b->oldest->expires <= now && !b->oldest->notifying; k++)
		entry_free(b, b->oldest);
	if (b->n >= DNSBL_CACHE_MAX && b->oldest != NULL && !b->oldest->notifying)
		entry_free(b, b->oldest);
}

static unsigned
ttl_clamp(unsigned ttl, bool negative)
{
	if (ttl == DNS_TTL_UNKNOWN)
		return negative ? DNSBL_NEGATIVE_TTL : DNSBL_TTL_MIN;
	return ttl < DNSBL_TTL_MIN ? DNSBL_TTL_MIN : ttl > DNSBL_TTL_MAX ? DNSBL_TTL_MAX : ttl;
}

static void check_told(struct dnsbl_check *c, struct entry *e);

/* Tells every check waiting on e; e stays (answered) or goes (failed). */
static void
entry_notify(struct dnsbl *b, struct entry *e)
{
	struct wait *w;

	e->notifying = true;
	while ((w = e->waits) != NULL) {
		e->waits = w->next;
		if (w->next != NULL)
			w->next->prev = NULL;
		w->next = w->prev = NULL;
		w->entry = NULL;
		check_told(w->check, e);
	}
	e->notifying = false;
}

static void
entry_answered(struct dnsbl *b, struct entry *e, bool listed, unsigned ttl)
{
	e->state = E_ANSWERED;
	e->listed = listed;
	e->expires = time(NULL) + (time_t)ttl;
	answered_append(b, e);
	entry_notify(b, e);
}

/* The look-up failed (timeout, SERVFAIL): nothing to keep. */
static void
entry_failed(struct dnsbl *b, struct entry *e)
{
	e->state = E_ASK_A; /* neither listed nor answered for the checks told now */
	entry_notify(b, e);
	entry_free(b, e);
}

/* Printable ASCII only, at most DNSBL_TEXT_MAX - 1 octets. */
static char *
text_sanitise(const char *s)
{
	char out[DNSBL_TEXT_MAX];
	size_t o = 0;

	for (; *s != '\0' && o + 1 < sizeof(out); s++)
		out[o++] = *s >= ' ' && *s <= '~' ? *s : '?';
	out[o] = '\0';
	return xstrdup(out);
}

static void
on_txt(void *arg, enum dns_status st, const char *const *texts, size_t n)
{
	struct entry *e = arg;

	e->q = NULL;
	if (st == DNS_OK && n > 0)
		e->text = text_sanitise(texts[0]);
	entry_answered(e->b, e, true, e->ttl);
}

/* RFC 5782 §2.3: 127.0.0.2 and up list; 127.0.0.1 never does. */
static bool
answer_lists(const char *ip)
{
	return strncmp(ip, "127.0.0.", 8) == 0 && strcmp(ip, "127.0.0.1") != 0 &&
	    strcmp(ip, "127.0.0.0") != 0;
}

static void
on_a(void *arg, enum dns_status st, const struct dns_ip *ips, size_t n, unsigned ttl)
{
	struct entry *e = arg;
	struct dnsbl *b = e->b;

	e->q = NULL;
	if (st == DNS_TEMPFAIL) {
		log_info("event=dnsbl_failed zone=%s name=%s", e->zone, e->name);
		entry_failed(b, e);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (answer_lists(ips[i].ip)) {
			str_copy(e->answer, ips[i].ip, sizeof(e->answer));
			e->ttl = ttl_clamp(ttl, false);
			e->state = E_ASK_TXT;
			e->q = dns_txt(b->dns, e->name, on_txt, e);
			return;
		}
	}
	if (n > 0)
		log_warn("event=dnsbl_odd_answer zone=%s name=%s answer=%s note=\"not 127.0.0.2-255: "
		    "not a listing\"", e->zone, e->name, ips[0].ip);
	entry_answered(b, e, false, ttl_clamp(ttl, true));
}

/* The entry for name, asking for it when it is not known (or has expired). */
static struct entry *
entry_get(struct dnsbl *b, const char *name, size_t zone_off, time_t now)
{
	struct entry *e = *entry_slot(b, name);

	if (e != NULL && (e->state != E_ANSWERED || e->expires > now || e->notifying))
		return e;
	if (e != NULL) {
		/* Expired: ask again in the same entry. */
		answered_unlink(b, e);
		free(e->text);
		e->text = NULL;
		e->listed = false;
	} else {
		make_room(b, now);
		size_t len = strlen(name);
		e = xcalloc(1, sizeof(*e) + len + 1);
		memcpy(e->name, name, len + 1);
		e->zone = e->name + zone_off;
		e->b = b;
		struct entry **pp = entry_slot(b, name);
		*pp = e;
		b->n++;
	}
	e->state = E_ASK_A;
	e->q = dns_a(b->dns, e->name, on_a, e);
	return e;
}

int
dnsbl_query_name(const char *ip, const char *zone, char *buf, size_t size)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
	static const char hex[] = "0123456789abcdef";
	unsigned char a[16];
	const unsigned char *v4 = NULL;
	size_t o = 0;

	if (inet_pton(AF_INET, ip, a) == 1)
		v4 = a;
	else if (inet_pton(AF_INET6, ip, a) != 1)
		return -1;
	else if (memcmp(a, mapped, sizeof(mapped)) == 0)
		v4 = a + 12;    /* ::ffff:a.b.c.d is looked up as a.b.c.d */
	if (v4 != NULL) {
		int n = snprintf(buf, size, "%u.%u.%u.%u.%s", v4[3], v4[2], v4[1], v4[0], zone);
		return n < 0 || (size_t)n >= size ? -1 : 0;
	}
	if (size < 64 + strlen(zone) + 1)
		return -1;
	for (int i = 15; i >= 0; i--) {
		buf[o++] = hex[a[i] & 0xf];
		buf[o++] = '.';
		buf[o++] = hex[a[i] >> 4];
		buf[o++] = '.';
	}
	str_copy(buf + o, zone, size - o);
	return 0;
}

struct dnsbl *
dnsbl_create(struct event_base *base, struct dns *dns)
{
	struct dnsbl *b = xcalloc(1, sizeof(*b));

	b->base = base;
	b->dns = dns;
	for (b->nbuckets = 1024; b->nbuckets < DNSBL_CACHE_MAX; b->nbuckets *= 2)
		;
	b->buckets = xcalloc(b->nbuckets, sizeof(*b->buckets));
	return b;
}

void
dnsbl_destroy(struct dnsbl **bp)
{
	struct dnsbl *b = *bp;

	if (b == NULL)
		return;
	for (size_t i = 0; i < b->nbuckets; i++) {
		while (b->buckets[i] != NULL)
			entry_free(b, b->buckets[i]);
	}
	free(b->buckets);
	free(b);
	*bp = NULL;
}

size_t
dnsbl_cache_entries(const struct dnsbl *b)
{
	return b->n;
}

static void
wait_detach(struct wait *w)
{
	struct entry *e = w->entry;

	if (e == NULL)
		return;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		e->waits = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->entry = NULL;
}

static void
check_free(struct dnsbl_check *c)
{
	for (size_t i = 0; i < c->nwaits; i++)
		wait_detach(&c->waits[i]);
	event_free(c->deadline);
	free(c);
}

/* Hands the outcome over; the check is gone before fn runs. */
static void
check_finish(struct dnsbl_check *c)
{
	struct dnsbl_result res = c->res;
	dnsbl_fn *fn = c->fn;
	void *arg = c->arg;

	check_free(c);
	fn(arg, &res);
}

static void
result_listed(struct dnsbl_result *r, const struct entry *e)
{
	r->listed = true;
	str_copy(r->zone, e->zone, sizeof(r->zone));
	str_copy(r->answer, e->answer, sizeof(r->answer));
	str_copy(r->text, e->text != NULL ? e->text : "", sizeof(r->text));
}

/* One zone answered (or failed: e then is neither listed nor answered). */
static void
check_told(struct dnsbl_check *c, struct entry *e)
{
	c->pending--;
	if (e->state == E_ANSWERED && e->listed) {
		result_listed(&c->res, e);
		check_finish(c);
		return;
	}
	if (e->state != E_ANSWERED)
		c->res.unanswered++;
	if (c->pending == 0)
		check_finish(c);
}

/* The deadline: a zone that has listed the address but not yet sent its
 * TXT still lists it; the others count as not listing it. */
static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct dnsbl_check *c = arg;

	for (size_t i = 0; i < c->nwaits; i++) {
		struct entry *e = c->waits[i].entry;
		if (e == NULL)
			continue;
		if (e->state == E_ASK_TXT && !c->res.listed)
			result_listed(&c->res, e);
		else
			c->res.unanswered++;
	}
	check_finish(c);
}

/* Splits zones into at most DNSBL_ZONES_MAX names. */
static size_t
zones_split(const char *zones, char out[][DNS_NAME_MAX])
{
	size_t n = 0;

	for (const char *p = zones; *p != '\0' && n < DNSBL_ZONES_MAX;) {
		size_t len = strcspn(p, ", ");
		if (len > 0 && len < DNS_NAME_MAX) {
			memcpy(out[n], p, len);
			out[n][len] = '\0';
			str_lower(out[n++]);
		}
		p += len;
		p += strspn(p, ", ");
	}
	return n;
}

int
dnsbl_check(struct dnsbl *b, const char *ip, const char *zones, unsigned timeout_ms,
    dnsbl_fn *fn, void *arg, struct dnsbl_result *now_r, struct dnsbl_check **check_r)
{
	char zone[DNSBL_ZONES_MAX][DNS_NAME_MAX];
	struct entry *asking[DNSBL_ZONES_MAX];
	char name[DNS_NAME_MAX + 80];
	size_t nz = zones_split(zones, zone), nasking = 0;
	time_t now = time(NULL);

	memset(now_r, 0, sizeof(*now_r));
	*check_r = NULL;
	/* The reversed address once ("4.3.2.1."), each zone after it. */
	if (dnsbl_query_name(ip, "", name, sizeof(name)) < 0)
		return -1;
	size_t off = strlen(name);
	for (size_t i = 0; i < nz; i++) {
		size_t zl = strlen(zone[i]);
		if (off + zl >= DNS_NAME_MAX)
			continue;
		memcpy(name + off, zone[i], zl + 1);
		struct entry *e = entry_get(b, name, off, now);
		if (e->state == E_ANSWERED && e->listed) {
			result_listed(now_r, e);
			return 1;
		}
		if (e->state != E_ANSWERED)
			asking[nasking++] = e;
	}
	if (nasking == 0)
		return 1;
	struct dnsbl_check *c = xcalloc(1, sizeof(*c) + nasking * sizeof(struct wait));
	c->b = b;
	c->fn = fn;
	c->arg = arg;
	c->nwaits = c->pending = nasking;
	for (size_t i = 0; i < nasking; i++) {
		struct wait *w = &c->waits[i];
		w->check = c;
		w->entry = asking[i];
		w->next = asking[i]->waits;
		if (w->next != NULL)
			w->next->prev = w;
		asking[i]->waits = w;
	}
	struct timeval tv = { timeout_ms / 1000, (suseconds_t)(timeout_ms % 1000) * 1000 };
	c->deadline = evtimer_new(b->base, on_deadline, c);
	evtimer_add(c->deadline, &tv);
	*check_r = c;
	return 0;
}

void
dnsbl_check_cancel(struct dnsbl_check **cp)
{
	if (*cp != NULL)
		check_free(*cp);
	*cp = NULL;
}
