/* poplog.c: see poplog.h. */
#include "auth/poplog.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/screen.h"
#include "conf/datadir.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"

struct login {
	char ip[INET6_ADDRSTRLEN];
	time_t at;
};

struct batch {
	struct login *v;
	size_t n, cap;
};

struct poplog_job {
	struct poplog *pl;
	struct batch batch;
	int rc;
	char *error;
};

struct poplog {
	struct sqlite3 *db;          /* used by one thread at a time: a job, or the loop when none runs */
	struct event_base *base;
	struct workers *workers;
	struct event *timer;
	struct batch pending;
	bool in_flight;              /* a job is writing */
	bool dropped_logged;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS pop_logins("
	"  ip TEXT PRIMARY KEY,"
	"  at INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS pop_logins_at ON pop_logins(at);";

struct poplog *
poplog_open(const char *data_dir, char **error_r)
{
	char path[4200];
	struct sqlite3 *db = db_open(datadir_path(data_dir, "poplogins.db", path, sizeof(path)),
	    error_r);

	if (db == NULL)
		return NULL;
	if (db_exec(db, schema, error_r) < 0) {
		db_close(&db);
		return NULL;
	}
	struct poplog *pl = xcalloc(1, sizeof(*pl));
	pl->db = db;
	return pl;
}

/* Drops what no window can need any more, and all but the newest
 * SCREEN_MAX_ENTRIES (the most the screen holds in memory). */
static int
prune(struct sqlite3 *db, time_t now, char **error_r)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "DELETE FROM pop_logins WHERE at < %lld OR ip NOT IN "
	    "(SELECT ip FROM pop_logins ORDER BY at DESC LIMIT %d)",
	    (long long)(now - POPLOG_KEEP), SCREEN_MAX_ENTRIES);
	return db_exec(db, sql, error_r);
}

int
poplog_load(struct poplog *pl, void (*fn)(void *arg, const char *ip, time_t at), void *arg)
{
	char *error = NULL;
	time_t now = time(NULL);
	int n = 0, rc;

	if (prune(pl->db, now, &error) < 0) {
		log_error("event=poplog_prune_failed error=\"%s\"", error);
		free(error);
	}
	sqlite3_stmt *st = db_prepare(pl->db, "SELECT ip, at FROM pop_logins ORDER BY at");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *ip = (const char *)sqlite3_column_text(st, 0);
		time_t at = (time_t)sqlite3_column_int64(st, 1);
		if (ip != NULL && strlen(ip) < INET6_ADDRSTRLEN && at <= now) {
			fn(arg, ip, at);
			n++;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? n : -1;
}

/* One transaction for the whole batch; an address keeps its latest time. */
static int
batch_write(struct sqlite3 *db, const struct batch *b, char **error_r)
{
	if (db_begin(db, error_r) < 0)
		return -1;
	sqlite3_stmt *st = db_prepare(db, "INSERT INTO pop_logins(ip, at) VALUES(?, ?) "
	    "ON CONFLICT(ip) DO UPDATE SET at = max(at, excluded.at)");
	int rc = SQLITE_DONE;
	for (size_t i = 0; i < b->n && rc == SQLITE_DONE; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, b->v[i].ip, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)b->v[i].at);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		db_rollback(db);
		return -1;
	}
	return db_commit(db, error_r);
}

static void
job_work(void *arg)
{
	struct poplog_job *job = arg;

	job->rc = batch_write(job->pl->db, &job->batch, &job->error);
}

static void schedule(struct poplog *pl);

static void
job_done(void *arg)
{
	struct poplog_job *job = arg;
	struct poplog *pl = job->pl;

	if (job->rc < 0) {
		log_error("event=poplog_write_failed logins=%zu error=\"%s\"", job->batch.n,
		    job->error != NULL ? job->error : "?");
		free(job->error);
	}
	free(job->batch.v);
	free(job);
	pl->in_flight = false;
	schedule(pl);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct poplog *pl = arg;

	if (pl->in_flight || pl->pending.n == 0)
		return;
	struct poplog_job *job = xcalloc(1, sizeof(*job));
	job->pl = pl;
	job->batch = pl->pending;
	memset(&pl->pending, 0, sizeof(pl->pending));
	pl->in_flight = true;
	workers_submit(pl->workers, job_work, job_done, job);
}

/* Arms the timer when logins wait and no job is writing. */
static void
schedule(struct poplog *pl)
{
	struct timeval second = { 1, 0 };

	if (pl->timer != NULL && !pl->in_flight && pl->pending.n > 0 &&
	    !evtimer_pending(pl->timer, NULL))
		evtimer_add(pl->timer, &second);
}

void
poplog_start(struct poplog *pl, struct event_base *base, struct workers *workers)
{
	pl->base = base;
	pl->workers = workers;
	pl->timer = evtimer_new(base, on_timer, pl);
	schedule(pl);
}

void
poplog_note(struct poplog *pl, const char *ip, time_t at)
{
	struct batch *b = &pl->pending;

	if (b->n >= POPLOG_PENDING_MAX) {
		if (!pl->dropped_logged)
			log_warn("event=poplog_backlog pending=%zu note=\"POP logins not written\"", b->n);
		pl->dropped_logged = true;
		return;
	}
	pl->dropped_logged = false;
	if (b->n == b->cap) {
		b->cap = b->cap == 0 ? 64 : b->cap * 2;
		b->v = xreallocarray(b->v, b->cap, sizeof(*b->v));
	}
	str_copy(b->v[b->n].ip, ip, sizeof(b->v[b->n].ip));
	b->v[b->n++].at = at;
	schedule(pl);
}

void
poplog_close(struct poplog **plp)
{
	struct poplog *pl = *plp;
	char *error = NULL;

	if (pl == NULL)
		return;
	if (pl->pending.n > 0 && batch_write(pl->db, &pl->pending, &error) < 0) {
		log_error("event=poplog_write_failed logins=%zu error=\"%s\"", pl->pending.n, error);
		free(error);
	}
	free(pl->pending.v);
	if (pl->timer != NULL)
		event_free(pl->timer);
	db_close(&pl->db);
	free(pl);
	*plp = NULL;
}
