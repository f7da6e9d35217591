/* tegami backup FILE | restore FILE (MISSION D3: backup of the settings and
 * the directory). The Maildirs and the queue are plain files: copy them with
 * the data directory's other files. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/datadir.h"
#include "lib/db.h"

/* How many rows of each kind: the summary both commands print. */
static void
print_counts(struct sqlite3 *db, const char *what, const char *file)
{
	static const char *const tables[] = { "settings", "domains", "users", "aliases" };
	long n[4];

	for (size_t i = 0; i < 4; i++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]);
		sqlite3_stmt *st = db_prepare(db, sql);
		n[i] = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
		sqlite3_finalize(st);
	}
	printf("%s %s: %ld changed setting(s), %ld domain(s), %ld user(s), %ld alias row(s)\n",
	    what, file, n[0], n[1], n[2], n[3]);
}

int
cmd_backup(struct cli *c, int argc, char **argv)
{
	char *error = NULL;

	if (argc != 1 || argv[0][0] == '\0' || argv[0][0] == '-')
		return cli_error(CLI_USAGE, "usage: tegami backup FILE (a new file)");
	struct sqlite3 *db = cli_db(c);
	cli_as_invoker(c); /* the backup file is the invoker's, where the invoker may write */
	struct sqlite3 *written = NULL;
	int rc = datadir_backup(db, argv[0], &error);
	if (rc == 0 && (written = datadir_backup_open(argv[0], &error)) == NULL)
		rc = -1; /* what was written does not read back */
	cli_as_owner(c);
	if (rc < 0) {
		rc = cli_error(CLI_FAIL, "backup failed: %s", error);
		free(error);
		return rc;
	}
	print_counts(written, "backup written to", argv[0]); /* what the file holds */
	sqlite3_close(written);
	return CLI_OK;
}

int
cmd_restore(struct cli *c, int argc, char **argv)
{
	char path[4096], *error = NULL;
	long pid;

	if (argc != 1 || argv[0][0] == '\0' || argv[0][0] == '-')
		return cli_error(CLI_USAGE, "usage: tegami restore FILE (made by tegami backup)");
	struct sqlite3 *db = cli_db(c);
	if (cli_daemon_pid(c, &pid) == 0)
		return cli_error(CLI_FAIL, "tegamid is running (pid %ld): stop it before a restore",
		    pid);
	/* Hold the daemon's lock meanwhile: a tegamid started now refuses to start. */
	int lock = open(datadir_path(c->data_dir, "tegamid.pid", path, sizeof(path)),
	    O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
		if (lock >= 0)
			close(lock);
		return cli_error(CLI_FAIL, "tegamid is starting on %s: stop it before a restore",
		    c->data_dir);
	}
	cli_as_invoker(c);
	struct sqlite3 *in = datadir_backup_open(argv[0], &error);
	cli_as_owner(c);
	int rc = in != NULL ? datadir_restore(db, in, argv[0], &error) : -1;
	sqlite3_close(in);
	close(lock);
	if (rc < 0) {
		rc = cli_error(CLI_FAIL, "restore failed: %s", error);
		free(error);
		return rc;
	}
	print_counts(db, "restored from", argv[0]);
	return CLI_OK;
}
