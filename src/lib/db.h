/* db.h: the SQLite handle both programs open on DATA/tegami.db.
 * WAL mode, so the daemon reads while `tegami` writes; a busy timeout instead
 * of SQLITE_BUSY errors; every change is one transaction (db_begin/db_commit). */
#ifndef TEGAMI_DB_H
#define TEGAMI_DB_H

#include <stdbool.h>
#include <stdint.h>

struct sqlite3;
struct sqlite3_stmt;

/* Opens (creating when absent) the database at path. Returns the handle, or
 * NULL with a static/strdup'd message in *error_r (caller frees with free()). */
struct sqlite3 *db_open(const char *path, char **error_r);
void db_close(struct sqlite3 **dbp);

/* Runs SQL without results. 0, or -1 with *error_r (caller frees). */
int db_exec(struct sqlite3 *db, const char *sql, char **error_r);

/* Prepares sql; aborts on a programming error (bad SQL is a bug). */
struct sqlite3_stmt *db_prepare(struct sqlite3 *db, const char *sql);

int db_begin(struct sqlite3 *db, char **error_r);
int db_commit(struct sqlite3 *db, char **error_r);
void db_rollback(struct sqlite3 *db);

/* PRAGMA data_version: changes whenever another connection commits. */
int64_t db_data_version(struct sqlite3 *db);

#endif
