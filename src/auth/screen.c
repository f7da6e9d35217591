/* screen.c: the dynamic screen (A7) and the per-address memory behind it.
 *
 * Entries live in a hash table by address and on one of three lists, each
 * ordered oldest first by when the entry last changed: failure-only entries,
 * POP-login records, bans. An entry moves to the tail of its list whenever
 * it changes. Each new entry first sweeps a few expired ones off the list
 * heads; when the table is full it takes the place of the oldest entry of
 * the cheapest non-empty list. Every operation is O(1) on average, and
 * memory is SCREEN_MAX_ENTRIES entries at most. */
#include "auth/screen.h"

#include <arpa/inet.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

#define SWEEP_PER_INSERT 4 /* expired entries looked at per list and insert */

/* The lists, cheapest first: the order in which a full table gives up entries. */
enum screen_tier {
	TIER_FAILS,
	TIER_POP,
	TIER_BAN,
	TIERS
};

struct entry {
	struct entry *next;          /* hash chain */
	struct entry *older, *newer; /* on the list of its tier */
	time_t banned_until;
	time_t pop_login;            /* last successful POP3 login (P3), 0: none */
	time_t fail_start;           /* start of the current fixed failure window */
	time_t fail_forget;          /* from then on no failure counts any more */
	uint32_t fails, fails_prev;  /* failures in the current and the previous window */
	uint8_t tier;                /* enum screen_tier */
	char ip[INET6_ADDRSTRLEN];
};

struct tier_list {
	struct entry *oldest, *newest;
};

struct screen {
	struct sqlite3 *db;
	struct entry **buckets;
	size_t nbuckets;             /* a power of two */
	size_t n;                    /* entries */
	struct tier_list lists[TIERS];
	void (*pop_hook)(void *arg, const char *ip, time_t at);
	void *pop_hook_arg;
};

static size_t
bucket_of(const struct screen *sc, const char *ip)
{
	uint32_t h = 2166136261u;

	for (const char *p = ip; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h & (sc->nbuckets - 1);
}

static struct entry **
entry_slot(struct screen *sc, const char *ip)
{
	struct entry **pp = &sc->buckets[bucket_of(sc, ip)];

	while (*pp != NULL && strcmp((*pp)->ip, ip) != 0)
		pp = &(*pp)->next;
	return pp;
}

static struct entry *
entry_find(const struct screen *sc, const char *ip)
{
	return *entry_slot((struct screen *)sc, ip);
}

static void
list_unlink(struct screen *sc, struct entry *e)
{
	struct tier_list *l = &sc->lists[e->tier];

	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		l->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		l->newest = e->older;
	e->older = e->newer = NULL;
}

static void
list_append(struct screen *sc, struct entry *e, enum screen_tier tier)
{
	struct tier_list *l = &sc->lists[tier];

	e->tier = (uint8_t)tier;
	e->newer = NULL;
	e->older = l->newest;
	if (l->newest != NULL)
		l->newest->newer = e;
	else
		l->oldest = e;
	l->newest = e;
}

static bool
pop_valid(const struct entry *e, time_t now)
{
	return e->pop_login != 0 && now - e->pop_login < (time_t)SCREEN_POP_KEEP;
}

static bool
entry_dead(const struct entry *e, time_t now)
{
	return e->banned_until <= now && !pop_valid(e, now) && e->fail_forget <= now;
}

/* Puts e, which just changed, at the newest end of the list it now belongs to. */
static void
entry_touch(struct screen *sc, struct entry *e, time_t now)
{
	list_unlink(sc, e);
	list_append(sc, e, e->banned_until > now ? TIER_BAN :
	    pop_valid(e, now) ? TIER_POP : TIER_FAILS);
}

/* Takes e out of the table; the caller frees or reuses it. */
static void
entry_remove(struct screen *sc, struct entry *e)
{
	struct entry **pp = entry_slot(sc, e->ip);

	*pp = e->next;
	list_unlink(sc, e);
	sc->n--;
}

/* Drops expired entries from the list heads. Lists are ordered by the last
 * change, not by expiry, so an entry that lives long stops the sweep of its
 * list; the cap still bounds what stays. A ban or a POP record that ran out
 * while something else keeps the entry alive moves to a cheaper list. */
static void
sweep(struct screen *sc, time_t now)
{
	for (int t = 0; t < TIERS; t++) {
		for (int k = 0; k < SWEEP_PER_INSERT; k++) {
			struct entry *e = sc->lists[t].oldest;
			if (e == NULL)
				break;
			if (entry_dead(e, now)) {
				entry_remove(sc, e);
				free(e);
			} else if ((t == TIER_BAN && e->banned_until <= now) ||
			    (t == TIER_POP && !pop_valid(e, now))) {
				entry_touch(sc, e, now);
			} else {
				break;
			}
		}
	}
}

/* Room for one more: the oldest entry of the cheapest list makes way, and
 * its memory is returned for reuse (NULL when the table is not full). */
static struct entry *
make_room(struct screen *sc)
{
	if (sc->n < SCREEN_MAX_ENTRIES)
		return NULL;
	for (int t = 0; t < TIERS; t++) {
		struct entry *e = sc->lists[t].oldest;
		if (e != NULL) {
			entry_remove(sc, e);
			return e;
		}
	}
	fatalx("screen: %zu entries on no list", sc->n);
}

/* ip's entry, made (empty, on the failure list) when there is none. */
static struct entry *
entry_get(struct screen *sc, const char *ip, time_t now)
{
	struct entry *e = entry_find(sc, ip);

	if (e != NULL)
		return e;
	sweep(sc, now);
	e = make_room(sc);
	if (e == NULL)
		e = xmalloc(sizeof(*e));
	memset(e, 0, sizeof(*e));
	str_copy(e->ip, ip, sizeof(e->ip));
	struct entry **pp = entry_slot(sc, ip);
	*pp = e;
	sc->n++;
	list_append(sc, e, TIER_FAILS);
	return e;
}

struct screen *
screen_create(struct sqlite3 *db)
{
	struct screen *sc = xcalloc(1, sizeof(*sc));

	sc->db = db;
	/* About two entries per bucket when full. */
	for (sc->nbuckets = 1024; sc->nbuckets * 2 < SCREEN_MAX_ENTRIES; sc->nbuckets *= 2)
		;
	sc->buckets = xcalloc(sc->nbuckets, sizeof(*sc->buckets));
	screen_reload(sc);
	return sc;
}

void
screen_destroy(struct screen **sp)
{
	struct screen *sc = *sp;

	if (sc == NULL)
		return;
	for (size_t i = 0; i < sc->nbuckets; i++) {
		while (sc->buckets[i] != NULL) {
			struct entry *next = sc->buckets[i]->next;
			free(sc->buckets[i]);
			sc->buckets[i] = next;
		}
	}
	free(sc->buckets);
	free(sc);
	*sp = NULL;
}

size_t
screen_entries(const struct screen *sc)
{
	return sc->n;
}

size_t
screen_memory(const struct screen *sc)
{
	return sizeof(*sc) + sc->nbuckets * sizeof(*sc->buckets) + sc->n * sizeof(struct entry);
}

void
screen_reload(struct screen *sc)
{
	sqlite3_stmt *st = NULL;
	time_t now = time(NULL);

	/* Forget the bans; the database says which ones stand. */
	struct entry *e;
	while ((e = sc->lists[TIER_BAN].oldest) != NULL) {
		e->banned_until = 0;
		if (entry_dead(e, now)) {
			entry_remove(sc, e);
			free(e);
		} else {
			entry_touch(sc, e, now);
		}
	}
	if (sqlite3_prepare_v2(sc->db, "SELECT ip, until FROM screen WHERE until > ? "
	    "ORDER BY until", -1, &st, NULL) != SQLITE_OK) {
		log_error("event=screen_reload_failed error=\"%s\"", sqlite3_errmsg(sc->db));
		return;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	while (sqlite3_step(st) == SQLITE_ROW) {
		e = entry_get(sc, (const char *)sqlite3_column_text(st, 0), now);
		e->banned_until = (time_t)sqlite3_column_int64(st, 1);
		entry_touch(sc, e, now);
	}
	sqlite3_finalize(st);
}

bool
screen_banned(struct screen *sc, const char *ip)
{
	const struct entry *e = entry_find(sc, ip);

	return e != NULL && e->banned_until > time(NULL);
}

/* Moves e's fixed failure windows on to the one that holds now. */
static void
fails_advance(struct entry *e, time_t now, time_t window)
{
	if (now < e->fail_start || e->fail_forget <= now) {
		/* First failure, all forgotten, or the clock went back: start over. */
		e->fail_start = now;
		e->fails = e->fails_prev = 0;
		return;
	}
	time_t spans = (now - e->fail_start) / window;
	if (spans == 0)
		return;
	e->fails_prev = spans == 1 ? e->fails : 0;
	e->fails = 0;
	e->fail_start += spans * window;
}

unsigned
screen_failure(struct screen *sc, const char *ip, time_t now, uint64_t window)
{
	time_t w = window > 0 && window < 0x7fffffff ? (time_t)window : 1;
	struct entry *e = entry_get(sc, ip, now);

	fails_advance(e, now, w);
	if (e->fails < UINT32_MAX)
		e->fails++;
	e->fail_forget = e->fail_start + 2 * w;
	entry_touch(sc, e, now);
	/* The part of the previous window that the last w seconds still cover,
	 * rounded up. */
	uint64_t covered = (uint64_t)(w - (now - e->fail_start));
	uint64_t prev = ((uint64_t)e->fails_prev * covered + (uint64_t)w - 1) / (uint64_t)w;
	uint64_t recent = e->fails + prev;
	return recent < UINT32_MAX ? (unsigned)recent : UINT32_MAX;
}

int
screen_login_failed(struct screen *sc, const struct config *cfg, const char *ip,
    const char *reason, unsigned *recent_r)
{
	time_t now = time(NULL);
	unsigned n = screen_failure(sc, ip, now, cfg->screen_window);

	*recent_r = n;
	if (cfg->screen_enabled && n >= cfg->screen_auth_failures) {
		screen_ban(sc, ip, now, cfg->screen_ban_time, reason);
		return -1;
	}
	return (int)(n < cfg->auth_fail_delay_max ? n : cfg->auth_fail_delay_max);
}

void
screen_ban(struct screen *sc, const char *ip, time_t now, uint64_t seconds, const char *reason)
{
	struct entry *e = entry_get(sc, ip, now);
	char *error = NULL;

	e->banned_until = now + (time_t)seconds;
	e->fails = e->fails_prev = 0;
	e->fail_forget = 0;
	entry_touch(sc, e, now);
	if (screen_db_add(sc->db, ip, e->banned_until, reason, &error) < 0) {
		log_error("event=screen_store_failed client=%s error=\"%s\"", ip, error);
		free(error);
	}
	log_warn("event=screened client=%s until=%lld reason=\"%s\"", ip,
	    (long long)e->banned_until, reason);
}

void
screen_pop_login(struct screen *sc, const char *ip, time_t now)
{
	struct entry *e = entry_get(sc, ip, now);

	if (now > e->pop_login)
		e->pop_login = now;
	entry_touch(sc, e, now);
	if (sc->pop_hook != NULL)
		sc->pop_hook(sc->pop_hook_arg, ip, now);
}

void
screen_set_pop_hook(struct screen *sc, void (*fn)(void *arg, const char *ip, time_t at),
    void *arg)
{
	sc->pop_hook = fn;
	sc->pop_hook_arg = arg;
}

time_t
screen_pop_last(struct screen *sc, const char *ip)
{
	const struct entry *e = entry_find(sc, ip);

	return e != NULL && pop_valid(e, time(NULL)) ? e->pop_login : 0;
}

int
screen_db_add(struct sqlite3 *db, const char *ip, time_t until, const char *reason,
    char **error_r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, "INSERT INTO screen(ip, until, reason, created) "
	    "VALUES(?, ?, ?, ?) ON CONFLICT(ip) DO UPDATE SET until = excluded.until, "
	    "reason = excluded.reason", -1, &st, NULL) != SQLITE_OK) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, ip, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)until);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

int
screen_db_del(struct sqlite3 *db, const char *ip, char **error_r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, "DELETE FROM screen WHERE ip = ? AND until > ?", -1, &st,
	    NULL) != SQLITE_OK) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, ip, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	int rc = sqlite3_step(st);
	int changes = sqlite3_changes(db);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return -1;
	}
	if (changes == 0) {
		*error_r = xasprintf("%s is not on the screen", ip);
		return -1;
	}
	return 0;
}

int
screen_db_list(struct sqlite3 *db, void (*fn)(void *arg, const char *ip, time_t until,
    const char *reason), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc;
	char *error = NULL;
	char sql[128];

	snprintf(sql, sizeof(sql), "DELETE FROM screen WHERE until <= %lld", (long long)time(NULL));
	if (sqlite3_exec(db, sql, NULL, NULL, &error) != SQLITE_OK) {
		sqlite3_free(error);
		return -1;
	}
	if (sqlite3_prepare_v2(db, "SELECT ip, until, reason FROM screen ORDER BY until", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(arg, (const char *)sqlite3_column_text(st, 0), (time_t)sqlite3_column_int64(st, 1),
		    (const char *)sqlite3_column_text(st, 2));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}
