/* tegami screen list|add|del: the dynamic screen (MISSION A7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/screen.h"
#include "cli/cli.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"

static void
print_ban(void *arg, const char *ip, time_t until, const char *reason)
{
	char stamp[32];
	struct tm tm;

	gmtime_r(&until, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s\tuntil %s\t%s\n", ip, stamp, reason);
}

int
cmd_screen_list(struct cli *c, int argc, char **argv)
{
	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami screen list");
	if (screen_db_list(cli_db(c), print_ban, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot read the screen");
	return CLI_OK;
}

/* IP addresses only: the screen works on single client addresses. */
static int
check_ip(const char *ip)
{
	if (strchr(ip, '/') != NULL || !netaddr_cidr_valid(ip))
		return cli_error(CLI_USAGE, "'%s' is not an IP address", ip);
	return CLI_OK;
}

int
cmd_screen_add(struct cli *c, int argc, char **argv)
{
	uint64_t minutes = 30;
	char *error = NULL;
	int rc;

	if (argc == 3 && strcmp(argv[1], "--minutes") == 0) {
		if (str_parse_u64(argv[2], &minutes) < 0 || minutes == 0 || minutes > 525600)
			return cli_error(CLI_USAGE, "--minutes takes 1 to 525600");
	} else if (argc != 1) {
		return cli_error(CLI_USAGE, "usage: tegami screen add IP [--minutes N]");
	}
	if ((rc = check_ip(argv[0])) != CLI_OK)
		return rc;
	if (screen_db_add(cli_db(c), argv[0], time(NULL) + (time_t)(minutes * 60), "admin",
	    &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("%s refused for %llu minute(s)\n", argv[0], (unsigned long long)minutes);
	return CLI_OK;
}

int
cmd_screen_del(struct cli *c, int argc, char **argv)
{
	char *error = NULL;
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami screen del IP");
	if ((rc = check_ip(argv[0])) != CLI_OK)
		return rc;
	if (screen_db_del(cli_db(c), argv[0], &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("%s removed from the screen\n", argv[0]);
	return CLI_OK;
}
