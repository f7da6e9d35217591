/* tegami status | reload (MISSION D2: "verify servers"). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/datadir.h"
#include "lib/fsutil.h"
#include "queue/spool.h"

/* Exit status of `status` when no daemon runs (as LSB init scripts use). */
#define CLI_NOT_RUNNING 3

static long
queue_count(const char *data_dir)
{
	char path[4096];
	struct dirent *de;
	long n = 0;

	datadir_path(data_dir, "queue", path, sizeof(path));
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		n += envelope_qid_valid(de->d_name);
	closedir(d);
	return n;
}

int
cmd_status(struct cli *c, int argc, char **argv)
{
	char path[4096], *state = NULL;
	size_t len;
	long pid;

	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami status");
	(void)cli_db(c); /* validates the data directory */
	printf("data: %s\n", c->data_dir);
	if (cli_daemon_pid(c, &pid) < 0) {
		printf("tegamid: not running\n");
		printf("queue: %ld message(s)\n", queue_count(c->data_dir));
		return CLI_NOT_RUNNING;
	}
	printf("tegamid: running (pid %ld)\n", pid);
	datadir_path(c->data_dir, "tegamid.state", path, sizeof(path));
	if (fs_read_file(path, 65536, &state, &len) == 0) {
		/* "name: value" lines written by the daemon: its listeners as bound
		 * (its pid line is already printed above). */
		for (char *line = state, *next; line != NULL && *line != '\0'; line = next) {
			next = strchr(line, '\n');
			if (next != NULL)
				*next++ = '\0';
			if (strncmp(line, "pid: ", 5) != 0)
				printf("%s\n", line);
		}
		free(state);
	}
	printf("queue: %ld message(s)\n", queue_count(c->data_dir));
	return CLI_OK;
}

int
cmd_reload(struct cli *c, int argc, char **argv)
{
	long pid;

	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami reload");
	(void)cli_db(c);
	if (cli_daemon_pid(c, &pid) < 0)
		return cli_error(CLI_FAIL, "tegamid is not running on %s", c->data_dir);
	if (kill((pid_t)pid, SIGHUP) < 0)
		return cli_error(CLI_FAIL, "cannot signal tegamid (pid %ld): %s", pid, strerror(errno));
	printf("tegamid (pid %ld) reloading its settings\n", pid);
	return CLI_OK;
}
