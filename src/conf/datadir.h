/* datadir.h: the data directory both programs share (-D DIR or TEGAMI_DATA):
 *   DIR/tegami.db    settings and directory (SQLite, WAL)
 *   DIR/queue/       the durable spool (queue/QID, queue/QID.tmp)
 *   DIR/mail/D/U/    Maildir of user U in domain D
 *   DIR/tegamid.pid  the running daemon's pid, locked while it runs
 * An empty or absent directory is initialised with the embedded default:
 * local domain example.test (with its postmaster) and the default settings. */
#ifndef TEGAMI_DATADIR_H
#define TEGAMI_DATADIR_H

#include <stddef.h>

struct sqlite3;

/* The data directory when neither -D nor TEGAMI_DATA names one: ./var for
 * `make run`; the Debian package builds with /var/lib/tegami, so that the
 * admin command finds the service's data without -D. */
#ifndef DATADIR_DEFAULT
#define DATADIR_DEFAULT "./var"
#endif
#define DATADIR_DEFAULT_DOMAIN "example.test"

/* The data directory from -D (may be NULL), else $TEGAMI_DATA, else ./var. */
const char *datadir_choose(const char *opt);

/* Creates the layout when missing, opens the database and brings its schema
 * up to date. Returns the handle, or NULL with *error_r (caller frees). */
struct sqlite3 *datadir_open(const char *dir, char **error_r);

/* Writes a snapshot of db (settings, domains, users with their hashes,
 * aliases, lists, screen) to a new file path, mode 0600: consistent while
 * tegamid runs, one self-contained SQLite file. Refuses an existing path.
 * 0, or -1 with *error_r (caller frees). */
int datadir_backup(struct sqlite3 *db, const char *path, char **error_r);

/* Opens the backup at path read-only and checks that it is a tegami
 * database this version can read. Returns the handle (sqlite3_close it), or
 * NULL with *error_r (caller frees). */
struct sqlite3 *datadir_backup_open(const char *path, char **error_r);

/* Replaces everything in db with the opened backup (named path in
 * messages), in one step, only after a copy in memory was brought up to date
 * and found to be exactly our schema and undamaged. The caller makes sure no
 * daemon runs. 0, or -1 with *error_r (db unchanged). */
int datadir_restore(struct sqlite3 *db, struct sqlite3 *backup, const char *path,
    char **error_r);

/* Joins dir and a relative name into buf; aborts when it does not fit. */
const char *datadir_path(const char *dir, const char *name, char *buf, size_t size);

#endif
