#include "lib/db.h"

#include <sqlite3.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lib/xmalloc.h"

struct sqlite3 *
db_open(const char *path, char **error_r)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK) {
		*error_r = xasprintf("cannot open %s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	if (db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "PRAGMA foreign_keys=ON;", error_r) < 0) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

void
db_close(struct sqlite3 **dbp)
{
	if (*dbp == NULL)
		return;
	sqlite3_close(*dbp);
	*dbp = NULL;
}

int
db_exec(struct sqlite3 *db, const char *sql, char **error_r)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		*error_r = xstrdup(msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

struct sqlite3_stmt *
db_prepare(struct sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fatalx("db_prepare: %s: %s", sql, sqlite3_errmsg(db));
	return st;
}

int
db_begin(struct sqlite3 *db, char **error_r)
{
	return db_exec(db, "BEGIN IMMEDIATE", error_r);
}

int
db_commit(struct sqlite3 *db, char **error_r)
{
	return db_exec(db, "COMMIT", error_r);
}

void
db_rollback(struct sqlite3 *db)
{
	char *err = NULL;

	if (db_exec(db, "ROLLBACK", &err) < 0)
		free(err);
}

int64_t
db_data_version(struct sqlite3 *db)
{
	static const char sql[] = "PRAGMA data_version";
	sqlite3_stmt *st = db_prepare(db, sql);
	int64_t v = -1;

	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}
