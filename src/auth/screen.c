#include "auth/screen.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

#define SCREEN_BUCKETS 1024
#define SCREEN_FAILS_KEPT 64 /* timestamps remembered per IP */

struct entry {
	struct entry *next;
	char ip[64];
	time_t banned_until;
	time_t pop_login;    /* last successful POP3 login (P3) */
	time_t fails[SCREEN_FAILS_KEPT]; /* ring of recent failure times */
	unsigned nfails, head;
};

struct screen {
	struct sqlite3 *db;
	struct entry *buckets[SCREEN_BUCKETS];
};

static unsigned
bucket_of(const char *ip)
{
	unsigned h = 2166136261u;

	for (const char *p = ip; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % SCREEN_BUCKETS;
}

static struct entry *
entry_get(struct screen *sc, const char *ip, bool create)
{
	struct entry **pp = &sc->buckets[bucket_of(ip)];

	for (; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->ip, ip) == 0)
			return *pp;
	}
	if (!create)
		return NULL;
	*pp = xcalloc(1, sizeof(**pp));
	str_copy((*pp)->ip, ip, sizeof((*pp)->ip));
	return *pp;
}

struct screen *
screen_create(struct sqlite3 *db)
{
	struct screen *sc = xcalloc(1, sizeof(*sc));

	sc->db = db;
	screen_reload(sc);
	return sc;
}

void
screen_destroy(struct screen **sp)
{
	struct screen *sc = *sp;

	if (sc == NULL)
		return;
	for (int i = 0; i < SCREEN_BUCKETS; i++) {
		while (sc->buckets[i] != NULL) {
			struct entry *next = sc->buckets[i]->next;
			free(sc->buckets[i]);
			sc->buckets[i] = next;
		}
	}
	free(sc);
	*sp = NULL;
}

void
screen_reload(struct screen *sc)
{
	sqlite3_stmt *st = NULL;

	for (int i = 0; i < SCREEN_BUCKETS; i++) {
		for (struct entry *e = sc->buckets[i]; e != NULL; e = e->next)
			e->banned_until = 0;
	}
	if (sqlite3_prepare_v2(sc->db, "SELECT ip, until FROM screen WHERE until > ?", -1, &st,
	    NULL) != SQLITE_OK) {
		log_error("event=screen_reload_failed error=\"%s\"", sqlite3_errmsg(sc->db));
		return;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct entry *e = entry_get(sc, (const char *)sqlite3_column_text(st, 0), true);
		e->banned_until = (time_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
}

bool
screen_banned(struct screen *sc, const char *ip)
{
	struct entry *e = entry_get(sc, ip, false);

	return e != NULL && e->banned_until > time(NULL);
}

unsigned
screen_failure(struct screen *sc, const char *ip, time_t now, uint64_t window)
{
	struct entry *e = entry_get(sc, ip, true);
	unsigned recent = 0;

	e->fails[e->head] = now;
	e->head = (e->head + 1) % SCREEN_FAILS_KEPT;
	if (e->nfails < SCREEN_FAILS_KEPT)
		e->nfails++;
	for (unsigned i = 0; i < e->nfails; i++) {
		if ((uint64_t)(now - e->fails[i]) < window)
			recent++;
	}
	return recent;
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
	struct entry *e = entry_get(sc, ip, true);
	char *error = NULL;

	e->banned_until = now + (time_t)seconds;
	e->nfails = e->head = 0;
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
	entry_get(sc, ip, true)->pop_login = now;
}

time_t
screen_pop_last(struct screen *sc, const char *ip)
{
	struct entry *e = entry_get(sc, ip, false);

	return e != NULL ? e->pop_login : 0;
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
