#include "conf/routing.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "lib/db.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

enum stmt_id { ST_ROUTE, ST_HOSTS, ST_SOURCE, ST_HELD, ST_COUNT };

static const char *const stmt_sql[ST_COUNT] = {
	[ST_ROUTE] = "SELECT target FROM routes WHERE domain = ?",
	[ST_HOSTS] = "SELECT address FROM hosts WHERE name = ? ORDER BY rowid",
	[ST_SOURCE] = "SELECT address FROM sources WHERE domain = ?",
	[ST_HELD] = "SELECT 1 FROM queue_holds WHERE domain = ?",
};

struct routing {
	struct sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

struct routing *
routing_create(struct sqlite3 *db)
{
	struct routing *r = xcalloc(1, sizeof(*r));

	r->db = db;
	for (int i = 0; i < ST_COUNT; i++)
		r->st[i] = db_prepare(db, stmt_sql[i]);
	return r;
}

void
routing_destroy(struct routing **rp)
{
	struct routing *r = *rp;

	if (r == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(r->st[i]);
	free(r);
	*rp = NULL;
}

/* Runs a cached one-column lookup; each row goes to buf[i]. Returns the
 * rows copied, or -1. */
static int
lookup(struct routing *r, enum stmt_id id, const char *key, char *buf, size_t size, size_t max)
{
	sqlite3_stmt *st = r->st[id];
	int rc, n = 0;

	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	while ((size_t)n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		str_copy(buf + (size_t)n * size, v != NULL ? v : "", size);
		n++;
	}
	if ((size_t)n < max && rc != SQLITE_DONE)
		n = -1;
	sqlite3_reset(st);
	return n;
}

int
routing_route(struct routing *r, const char *domain, char *target, size_t size)
{
	return lookup(r, ST_ROUTE, domain, target, size, 1);
}

int
routing_hosts(struct routing *r, const char *name, char ips[][INET6_ADDRSTRLEN], size_t max)
{
	return lookup(r, ST_HOSTS, name, ips[0], INET6_ADDRSTRLEN, max);
}

int
routing_source(struct routing *r, const char *sender_domain, char *ip, size_t size)
{
	int n = sender_domain != NULL && sender_domain[0] != '\0' ?
	    lookup(r, ST_SOURCE, sender_domain, ip, size, 1) : 0;

	return n != 0 ? n : lookup(r, ST_SOURCE, "*", ip, size, 1);
}

bool
routing_held(struct routing *r, const char *domain)
{
	char one[4];

	return lookup(r, ST_HELD, domain, one, sizeof(one), 1) == 1;
}

/* --- admin --- */

static int
exec2(struct sqlite3 *db, const char *sql, const char *a, const char *b, int *changes_r,
    char **error_r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return -1;
	}
	if (changes_r != NULL)
		*changes_r = sqlite3_changes(db);
	return 0;
}

/* A statement that must change a row; else *error_r = the formatted what. */
static int
exec_must(struct sqlite3 *db, const char *sql, const char *a, const char *b, const char *what,
    char **error_r)
{
	int changes = 0;

	if (exec2(db, sql, a, b, &changes, error_r) < 0)
		return -1;
	if (changes == 0) {
		*error_r = xasprintf("%s %s%s%s", what, a, b != NULL ? " " : "", b != NULL ? b : "");
		return -1;
	}
	return 0;
}

static int
rows(struct sqlite3 *db, const char *sql, routing_row_fn *fn, void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(arg, (const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_count(st) > 1 ? (const char *)sqlite3_column_text(st, 1) : NULL);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
routing_route_set(struct sqlite3 *db, const char *domain, const char *target, char **error_r)
{
	return exec2(db, "INSERT OR REPLACE INTO routes(domain, target) VALUES(lower(?), ?)",
	    domain, target, NULL, error_r);
}

int
routing_route_del(struct sqlite3 *db, const char *domain, char **error_r)
{
	return exec_must(db, "DELETE FROM routes WHERE domain = ?", domain, NULL,
	    "no route for", error_r);
}

int
routing_route_list(struct sqlite3 *db, routing_row_fn *fn, void *arg)
{
	return rows(db, "SELECT domain, target FROM routes ORDER BY domain", fn, arg);
}

int
routing_host_add(struct sqlite3 *db, const char *name, const char *ip, char **error_r)
{
	return exec_must(db, "INSERT OR IGNORE INTO hosts(name, address) VALUES(lower(?), ?)",
	    name, ip, "already in the host table:", error_r);
}

int
routing_host_del(struct sqlite3 *db, const char *name, const char *ip, char **error_r)
{
	if (ip == NULL)
		return exec_must(db, "DELETE FROM hosts WHERE name = ?", name, NULL,
		    "not in the host table:", error_r);
	return exec_must(db, "DELETE FROM hosts WHERE name = ? AND address = ?", name, ip,
	    "not in the host table:", error_r);
}

int
routing_host_list(struct sqlite3 *db, routing_row_fn *fn, void *arg)
{
	return rows(db, "SELECT name, address FROM hosts ORDER BY name, rowid", fn, arg);
}

int
routing_source_set(struct sqlite3 *db, const char *domain, const char *ip, char **error_r)
{
	return exec2(db, "INSERT OR REPLACE INTO sources(domain, address) VALUES(lower(?), ?)",
	    domain, ip, NULL, error_r);
}

int
routing_source_del(struct sqlite3 *db, const char *domain, char **error_r)
{
	return exec_must(db, "DELETE FROM sources WHERE domain = ?", domain, NULL,
	    "no source address for", error_r);
}

int
routing_source_list(struct sqlite3 *db, routing_row_fn *fn, void *arg)
{
	return rows(db, "SELECT domain, address FROM sources ORDER BY domain = '*', domain", fn, arg);
}

int
routing_hold_set(struct sqlite3 *db, const char *domain, bool hold, char **error_r)
{
	if (hold)
		return exec2(db, "INSERT OR IGNORE INTO queue_holds(domain) VALUES(lower(?))", domain,
		    NULL, NULL, error_r);
	return exec_must(db, "DELETE FROM queue_holds WHERE domain = ?", domain, NULL,
	    "not held:", error_r);
}

int
routing_hold_list(struct sqlite3 *db, routing_row_fn *fn, void *arg)
{
	return rows(db, "SELECT domain FROM queue_holds ORDER BY domain", fn, arg);
}
