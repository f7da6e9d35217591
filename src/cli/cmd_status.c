/* tegami status | reload (MISSION D2: "verify servers"; O5: the daemon's
 * queue and outbound connections). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/datadir.h"
#include "lib/fsutil.h"
#include "lib/strutil.h"
#include "queue/spool.h"
#include "tegamid_ctl.h"

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

/* What the running daemon says about its queue and its connections to
 * other servers (control request "status": "ok queue=N outbound=N"). */
static void
daemon_counts(struct cli *c)
{
	char text[CTL_LINE_MAX + 1], *outbound;
	uint64_t nq, no;

	if (cli_ctl_call(c, "status", NULL, NULL, text, sizeof(text)) != CLI_CTL_OK) {
		printf("tegamid queue: unknown (%s)\n", text);
		return;
	}
	outbound = strstr(text, " outbound=");
	if (strncmp(text, "queue=", 6) != 0 || outbound == NULL) {
		printf("tegamid queue: unknown (answer '%s')\n", text);
		return;
	}
	*outbound = '\0';
	if (str_parse_u64(text + 6, &nq) < 0 || str_parse_u64(outbound + 10, &no) < 0) {
		printf("tegamid queue: unknown (answer '%s')\n", text);
		return;
	}
	printf("tegamid queue: %llu message(s) loaded\n", (unsigned long long)nq);
	printf("outbound connections: %llu\n", (unsigned long long)no);
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
	cli_smarthost_status(c);
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
	daemon_counts(c);
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
