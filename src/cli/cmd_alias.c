/* tegami alias add|list|del (MISSION S4): one address to several targets. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "conf/directory.h"
#include "lib/db.h"

int
cmd_alias_add(struct cli *c, int argc, char **argv)
{
	char alias[DIR_MAILBOX_MAX], target[DIR_MAILBOX_MAX];
	char *error = NULL;
	int rc;

	if (argc < 2)
		return cli_error(CLI_USAGE, "usage: tegami alias add ADDRESS TARGET [TARGET...]");
	if ((rc = cli_mailbox_arg(argv[0], alias, sizeof(alias), false)) != CLI_OK)
		return rc;
	if (db_begin(cli_db(c), &error) < 0)
		goto fail;
	for (int i = 1; i < argc; i++) {
		if ((rc = cli_mailbox_arg(argv[i], target, sizeof(target), false)) != CLI_OK) {
			db_rollback(cli_db(c));
			return rc;
		}
		if (directory_alias_add(cli_dir(c), alias, target, &error) < 0) {
			db_rollback(cli_db(c));
			goto fail;
		}
	}
	if (db_commit(cli_db(c), &error) < 0)
		goto fail;
	printf("alias %s -> %d target(s) added\n", alias, argc - 1);
	return CLI_OK;
fail:
	cli_error(CLI_FAIL, "%s", error);
	free(error);
	return CLI_FAIL;
}

static void
print_alias(void *arg, const char *address, const char *target)
{
	printf("%s\t%s\n", address, target);
}

int
cmd_alias_list(struct cli *c, int argc, char **argv)
{
	char alias[DIR_MAILBOX_MAX];
	int rc;

	if (argc > 1)
		return cli_error(CLI_USAGE, "usage: tegami alias list [ADDRESS]");
	if (argc == 1 && (rc = cli_mailbox_arg(argv[0], alias, sizeof(alias), false)) != CLI_OK)
		return rc;
	if (directory_alias_list(cli_dir(c), argc == 1 ? alias : NULL, print_alias, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot list aliases");
	return CLI_OK;
}

int
cmd_alias_del(struct cli *c, int argc, char **argv)
{
	char alias[DIR_MAILBOX_MAX], target[DIR_MAILBOX_MAX];
	char *error = NULL;
	int rc;

	if (argc < 1 || argc > 2)
		return cli_error(CLI_USAGE, "usage: tegami alias del ADDRESS [TARGET]");
	if ((rc = cli_mailbox_arg(argv[0], alias, sizeof(alias), false)) != CLI_OK)
		return rc;
	if (argc == 2 && (rc = cli_mailbox_arg(argv[1], target, sizeof(target), false)) != CLI_OK)
		return rc;
	if (directory_alias_del(cli_dir(c), alias, argc == 2 ? target : NULL, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("alias %s%s%s deleted\n", alias, argc == 2 ? " -> " : "", argc == 2 ? target : "");
	return CLI_OK;
}
