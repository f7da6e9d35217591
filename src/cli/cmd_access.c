/* tegami access add|list|del: the server access list of a listener (A3,
 * seed 001 "enforce server access list"): user addresses and IP/CIDR ranges
 * allowed to use it when <listener>.enforce_access is yes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/directory.h"
#include "lib/netaddr.h"

static const char *const listeners[] = { "smtp", "submission", "smtps" };

static int
check_listener(const char *name)
{
	for (size_t i = 0; i < sizeof(listeners) / sizeof(listeners[0]); i++) {
		if (strcmp(name, listeners[i]) == 0)
			return CLI_OK;
	}
	return cli_error(CLI_USAGE, "unknown listener '%s' (smtp, submission or smtps)", name);
}

/* An entry is a user address or an IP / CIDR range; out gets its canonical
 * form. */
static int
check_entry(const char *entry, char *out, size_t size)
{
	if (strchr(entry, '@') != NULL)
		return cli_mailbox_arg(entry, out, size, false);
	if (!netaddr_cidr_valid(entry))
		return cli_error(CLI_USAGE, "'%s' is neither an address nor an IP/CIDR range", entry);
	snprintf(out, size, "%s", entry);
	return CLI_OK;
}

int
cmd_access_add(struct cli *c, int argc, char **argv)
{
	char entry[DIR_MAILBOX_MAX], *error = NULL;
	int rc;

	if (argc != 2)
		return cli_error(CLI_USAGE, "usage: tegami access add LISTENER ENTRY");
	if ((rc = check_listener(argv[0])) != CLI_OK ||
	    (rc = check_entry(argv[1], entry, sizeof(entry))) != CLI_OK)
		return rc;
	if (directory_access_add(cli_dir(c), argv[0], entry, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("%s may use the %s listener\n", entry, argv[0]);
	return CLI_OK;
}

static void
print_entry(void *arg, const char *listener, const char *entry)
{
	printf("%s\t%s\n", listener, entry);
}

int
cmd_access_list(struct cli *c, int argc, char **argv)
{
	int rc;

	if (argc > 1)
		return cli_error(CLI_USAGE, "usage: tegami access list [LISTENER]");
	if (argc == 1 && (rc = check_listener(argv[0])) != CLI_OK)
		return rc;
	if (directory_access_list(cli_dir(c), argc == 1 ? argv[0] : NULL, print_entry, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot list the access lists");
	return CLI_OK;
}

int
cmd_access_del(struct cli *c, int argc, char **argv)
{
	char entry[DIR_MAILBOX_MAX], *error = NULL;
	int rc;

	if (argc != 2)
		return cli_error(CLI_USAGE, "usage: tegami access del LISTENER ENTRY");
	if ((rc = check_listener(argv[0])) != CLI_OK ||
	    (rc = check_entry(argv[1], entry, sizeof(entry))) != CLI_OK)
		return rc;
	if (directory_access_del(cli_dir(c), argv[0], entry, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("%s removed from the %s access list\n", entry, argv[0]);
	return CLI_OK;
}
