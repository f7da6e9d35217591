#include "conf/datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#define SCHEMA_VERSION 5
/* How long a backup or restore waits for a writer: 20 ms per try. */
#define COPY_BUSY_TRIES 500

static const char schema_v1[] =
	"CREATE TABLE IF NOT EXISTS settings("
	"  key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS domains("
	"  name TEXT PRIMARY KEY COLLATE NOCASE,"
	"  postmaster TEXT);"
	"CREATE TABLE IF NOT EXISTS users("
	"  address TEXT PRIMARY KEY COLLATE NOCASE,"
	"  domain TEXT NOT NULL COLLATE NOCASE REFERENCES domains(name),"
	"  password TEXT,"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS users_domain ON users(domain);"
	"CREATE TABLE IF NOT EXISTS aliases("
	"  address TEXT NOT NULL COLLATE NOCASE,"
	"  target TEXT NOT NULL COLLATE NOCASE,"
	"  PRIMARY KEY(address, target));";

/* v2: CRAM-MD5 secrets (A8), the per-listener server access list (A3) and
 * the dynamic screen (A7). */
static const char schema_v2[] =
	"ALTER TABLE users ADD COLUMN cram_md5 TEXT;"
	"CREATE TABLE IF NOT EXISTS access("
	"  listener TEXT NOT NULL,"
	"  entry TEXT NOT NULL COLLATE NOCASE,"
	"  PRIMARY KEY(listener, entry));"
	"CREATE TABLE IF NOT EXISTS lists("
	"  name TEXT NOT NULL,"
	"  entry TEXT NOT NULL COLLATE NOCASE,"
	"  PRIMARY KEY(name, entry));"
	"INSERT OR IGNORE INTO lists VALUES('trusted', '127.0.0.0/8'), ('trusted', '::1');"
	"CREATE TABLE IF NOT EXISTS screen("
	"  ip TEXT PRIMARY KEY,"
	"  until INTEGER NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  created INTEGER NOT NULL);";

/* v3: outbound routing (O1, O5, O6): the host table that overrides DNS,
 * per-domain routes, source addresses per sending domain, held
 * destinations. */
static const char schema_v3[] =
	"CREATE TABLE IF NOT EXISTS hosts("
	"  name TEXT NOT NULL COLLATE NOCASE,"
	"  address TEXT NOT NULL,"
	"  PRIMARY KEY(name, address));"
	"CREATE TABLE IF NOT EXISTS routes("
	"  domain TEXT PRIMARY KEY COLLATE NOCASE,"
	"  target TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS sources("
	"  domain TEXT PRIMARY KEY COLLATE NOCASE,"
	"  address TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS queue_holds("
	"  domain TEXT PRIMARY KEY COLLATE NOCASE);";

/* v4: outbound server profiles (X1, X2, C1-C5): one row per sending
 * tenant, and the built-in default profile that `tegami smtpauth` edits
 * (its host is the setting relay.smarthost). Secrets are sealed
 * (lib/secretbox) under DATA/secret.key. */
static const char schema_v4[] =
	"CREATE TABLE IF NOT EXISTS smtp_profiles("
	"  id TEXT PRIMARY KEY COLLATE NOCASE,"
	"  builtin INTEGER NOT NULL DEFAULT 0,"
	"  host TEXT NOT NULL DEFAULT '',"
	"  port INTEGER NOT NULL DEFAULT 25,"
	"  tls TEXT NOT NULL DEFAULT 'none',"
	"  tls_protocol TEXT NOT NULL DEFAULT 'TLSv1.3',"
	"  tls_verify INTEGER NOT NULL DEFAULT 0,"
	"  login TEXT NOT NULL DEFAULT 'none',"
	"  auth TEXT NOT NULL DEFAULT 'ALL',"
	"  account TEXT NOT NULL DEFAULT '',"
	"  auth_sealed TEXT,"
	"  xmailer TEXT NOT NULL DEFAULT '',"
	"  debug INTEGER NOT NULL DEFAULT 0,"
	"  connect_timeout_ms INTEGER NOT NULL DEFAULT 0,"
	"  timeout_ms INTEGER NOT NULL DEFAULT 0,"
	"  properties TEXT NOT NULL DEFAULT '',"
	"  senders TEXT NOT NULL DEFAULT '',"
	"  pop_host TEXT NOT NULL DEFAULT '',"
	"  pop_port INTEGER NOT NULL DEFAULT 110,"
	"  pop_tls TEXT NOT NULL DEFAULT 'none',"
	"  pop_account TEXT NOT NULL DEFAULT '',"
	"  pop_sealed TEXT);"
	"INSERT OR IGNORE INTO smtp_profiles(id, builtin) VALUES('default', 1);";

/* v5: a local domain bound to listen addresses (S4): NULL, or the
 * addresses (comma-separated) on which mail for it is accepted. */
static const char schema_v5[] =
	"ALTER TABLE domains ADD COLUMN bind TEXT;";

const char *
datadir_choose(const char *opt)
{
	const char *env = getenv("TEGAMI_DATA");

	if (opt != NULL && *opt != '\0')
		return opt;
	if (env != NULL && *env != '\0')
		return env;
	return DATADIR_DEFAULT;
}

const char *
datadir_path(const char *dir, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size)
		fatalx("data directory path too long: %s/%s", dir, name);
	return buf;
}

static int
schema_version(struct sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db, "PRAGMA user_version");
	int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;

	sqlite3_finalize(st);
	return v;
}

/* Brings the schema to SCHEMA_VERSION in one transaction; a new database
 * also gets the embedded default domain. */
static int
schema_upgrade(struct sqlite3 *db, char **error_r)
{
	char sql[512];

	if (db_begin(db, error_r) < 0)
		return -1;
	int v = schema_version(db); /* again, inside the lock: another process may have won */
	if (v == 0 && (db_exec(db, schema_v1, error_r) < 0 ||
	    db_exec(db, "INSERT INTO domains(name, postmaster) VALUES('" DATADIR_DEFAULT_DOMAIN
	        "', NULL)", error_r) < 0))
		goto fail;
	if (v < 2 && db_exec(db, schema_v2, error_r) < 0)
		goto fail;
	if (v < 3 && db_exec(db, schema_v3, error_r) < 0)
		goto fail;
	if (v < 4 && db_exec(db, schema_v4, error_r) < 0)
		goto fail;
	if (v < 5 && db_exec(db, schema_v5, error_r) < 0)
		goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
	if (v < SCHEMA_VERSION && db_exec(db, sql, error_r) < 0)
		goto fail;
	return db_commit(db, error_r);
fail:
	db_rollback(db);
	return -1;
}

struct sqlite3 *
datadir_open(const char *dir, char **error_r)
{
	char path[4096];
	struct sqlite3 *db;

	if (fs_mkdir_p(dir, 0750) < 0 ||
	    fs_mkdir_p(datadir_path(dir, "queue", path, sizeof(path)), 0750) < 0 ||
	    fs_mkdir_p(datadir_path(dir, "mail", path, sizeof(path)), 0750) < 0) {
		*error_r = xasprintf("cannot create data directory %s: %s", dir, strerror(errno));
		return NULL;
	}
	db = db_open(datadir_path(dir, "tegami.db", path, sizeof(path)), error_r);
	if (db == NULL)
		return NULL;
	int v = schema_version(db);
	if (v < SCHEMA_VERSION && schema_upgrade(db, error_r) < 0) {
		db_close(&db);
		return NULL;
	}
	if (v > SCHEMA_VERSION) {
		*error_r = xasprintf("%s was written by a newer tegami (schema %d > %d)",
		    path, v, SCHEMA_VERSION);
		db_close(&db);
		return NULL;
	}
	return db;
}

/* Copies all of src into dst (sqlite3 online backup), retrying while the
 * source is busy: a writer's commit restarts the copy of the pages. */
static int
copy_database(struct sqlite3 *dst, struct sqlite3 *src, char **error_r)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	int rc;

	if (b == NULL) {
		*error_r = xasprintf("%s", sqlite3_errmsg(dst));
		return -1;
	}
	int busy = 0;
	do {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(20);
	} while (rc == SQLITE_OK ||
	    ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && ++busy < COPY_BUSY_TRIES));
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		*error_r = xasprintf("%s", sqlite3_errstr(rc));
		return -1;
	}
	return 0;
}

/* The backup is written under a temporary name beside path and linked to
 * path once complete: an interrupted backup never leaves a partial file
 * under the name asked for. */
int
datadir_backup(struct sqlite3 *db, const char *path, char **error_r)
{
	struct sqlite3 *out = NULL;
	char tmp[4200];

	if (access(path, F_OK) == 0) {
		*error_r = xasprintf("cannot create %s: %s (choose a new file name)", path,
		    strerror(EEXIST));
		return -1;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp)) {
		*error_r = xasprintf("cannot create %s: %s", path, strerror(ENAMETOOLONG));
		return -1;
	}
	/* Hashes and CRAM-MD5 keys: nobody else may read the copy (mkstemp: 0600). */
	int fd = mkstemp(tmp);
	if (fd < 0) {
		*error_r = xasprintf("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	if (sqlite3_open_v2(tmp, &out, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		*error_r = xasprintf("cannot open %s: %s", tmp, sqlite3_errmsg(out));
		goto fail;
	}
	if (copy_database(out, db, error_r) < 0)
		goto fail;
	/* The copy carries the source's WAL flag: make it one plain file. */
	if (db_exec(out, "PRAGMA journal_mode = DELETE", error_r) < 0)
		goto fail;
	if (sqlite3_close(out) != SQLITE_OK) {
		*error_r = xasprintf("cannot close %s", tmp);
		out = NULL;
		goto fail;
	}
	out = NULL;
	if (link(tmp, path) < 0) { /* never replaces a file that appeared meanwhile */
		*error_r = xasprintf("cannot create %s: %s", path, strerror(errno));
		goto fail;
	}
	unlink(tmp);
	return 0;
fail:
	if (out != NULL)
		sqlite3_close(out);
	unlink(tmp);
	return -1;
}

/* A tegami database: our tables, and a schema version we can read. */
static int
check_backup(struct sqlite3 *in, const char *path, char **error_r)
{
	sqlite3_stmt *st = NULL;
	int tables = 0;

	if (sqlite3_prepare_v2(in, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
	    "AND name IN ('settings', 'domains', 'users', 'aliases')", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		tables = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	int v = tables == 4 ? schema_version(in) : -1;
	if (v < 1) {
		*error_r = xasprintf("%s is not a tegami backup", path);
		return -1;
	}
	if (v > SCHEMA_VERSION) {
		*error_r = xasprintf("%s was written by a newer tegami (schema %d > %d)", path, v,
		    SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

struct sqlite3 *
datadir_backup_open(const char *path, char **error_r)
{
	struct sqlite3 *in = NULL;

	if (access(path, R_OK) < 0) {
		*error_r = xasprintf("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (sqlite3_open_v2(path, &in, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		*error_r = xasprintf("cannot open %s: %s", path, sqlite3_errmsg(in));
		sqlite3_close(in);
		return NULL;
	}
	sqlite3_busy_timeout(in, 5000);
	if (check_backup(in, path, error_r) < 0) {
		sqlite3_close(in);
		return NULL;
	}
	return in;
}

/* The same tables, indexes, triggers and views, with the same SQL. */
static bool
same_schema(struct sqlite3 *a, struct sqlite3 *b)
{
	static const char sql[] = "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || "
	    "coalesce(sql, '') FROM sqlite_master ORDER BY type, name";
	sqlite3_stmt *sa = db_prepare(a, sql), *sb = db_prepare(b, sql);
	int ra, rb;

	while ((ra = sqlite3_step(sa)) == SQLITE_ROW && (rb = sqlite3_step(sb)) == SQLITE_ROW &&
	    strcmp((const char *)sqlite3_column_text(sa, 0),
	        (const char *)sqlite3_column_text(sb, 0)) == 0)
		;
	bool same = ra == SQLITE_DONE && sqlite3_step(sb) == SQLITE_DONE;
	sqlite3_finalize(sa);
	sqlite3_finalize(sb);
	return same;
}

/* The copy in memory must be, once brought up to date, exactly the schema
 * this version makes (no missing column, no foreign trigger or view), and
 * undamaged. */
static int
check_copy(struct sqlite3 *copy, const char *path, char **error_r)
{
	struct sqlite3 *ref = NULL;
	int rc = -1;

	if (sqlite3_open(":memory:", &ref) != SQLITE_OK || schema_upgrade(ref, error_r) < 0) {
		if (*error_r == NULL)
			*error_r = xasprintf("out of memory");
		goto out;
	}
	if (!same_schema(ref, copy)) {
		*error_r = xasprintf("%s is not a tegami backup (its tables differ from ours)", path);
		goto out;
	}
	sqlite3_stmt *st = db_prepare(copy, "PRAGMA integrity_check");
	bool ok = sqlite3_step(st) == SQLITE_ROW &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	if (!ok) {
		*error_r = xasprintf("%s is damaged (integrity check failed)", path);
		goto out;
	}
	rc = 0;
out:
	sqlite3_close(ref);
	return rc;
}

int
datadir_restore(struct sqlite3 *db, struct sqlite3 *backup, const char *path, char **error_r)
{
	struct sqlite3 *copy = NULL;
	int rc = -1;

	/* Upgraded and checked in memory first: the live database changes in
	 * one step, and only with something it can use. */
	if (sqlite3_open(":memory:", &copy) != SQLITE_OK) {
		*error_r = xasprintf("out of memory");
		goto out;
	}
	if (copy_database(copy, backup, error_r) < 0)
		goto out;
	if (schema_version(copy) < SCHEMA_VERSION && schema_upgrade(copy, error_r) < 0) {
		char *why = *error_r;
		*error_r = xasprintf("%s cannot be brought up to date: %s", path, why);
		free(why);
		goto out;
	}
	if (check_copy(copy, path, error_r) < 0 || copy_database(db, copy, error_r) < 0)
		goto out;
	rc = 0;
out:
	sqlite3_close(copy);
	return rc;
}
