/* tegami user add|list|del|passwd (MISSION D1, A8: passwords are stored as
 * yescrypt hashes, never in plain text, and never printed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/directory.h"
#include "lib/strutil.h"

/* Parses "ADDRESS [--password-stdin | --no-password]". */
static int
user_args(int argc, char **argv, const char *usage, bool allow_none, char *mailbox,
    bool *from_stdin, bool *no_password)
{
	*from_stdin = *no_password = false;
	if (argc < 1 || argc > 2)
		return cli_error(CLI_USAGE, "usage: %s", usage);
	if (argc == 2) {
		if (strcmp(argv[1], "--password-stdin") == 0)
			*from_stdin = true;
		else if (allow_none && strcmp(argv[1], "--no-password") == 0)
			*no_password = true;
		else
			return cli_error(CLI_USAGE, "unknown option '%s'; usage: %s", argv[1], usage);
	}
	return cli_mailbox_arg(argv[0], mailbox, DIR_MAILBOX_MAX, true);
}

int
cmd_user_add(struct cli *c, int argc, char **argv)
{
	static const char usage[] = "tegami user add ADDRESS [--password-stdin | --no-password]";
	char mailbox[DIR_MAILBOX_MAX];
	bool from_stdin, none;
	char *hash = NULL, *error = NULL;
	int rc = user_args(argc, argv, usage, true, mailbox, &from_stdin, &none);

	if (rc != CLI_OK)
		return rc;
	const char *at = strrchr(mailbox, '@');
	if (!directory_domain_exists(cli_dir(c), at + 1))
		return cli_error(CLI_FAIL, "%s is not a local domain (add it with: tegami domain add %s)",
		    at + 1, at + 1);
	if (!none && (hash = cli_read_password_hash(from_stdin)) == NULL)
		return CLI_USAGE;
	if (directory_user_add(cli_dir(c), mailbox, hash, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		free(hash);
		return CLI_FAIL;
	}
	free(hash);
	printf("user %s added\n", mailbox);
	return CLI_OK;
}

static void
print_user(void *arg, const char *address, const char *password)
{
	printf("%s\t%s\n", address, password);
}

int
cmd_user_list(struct cli *c, int argc, char **argv)
{
	char domain[256];

	if (argc > 1)
		return cli_error(CLI_USAGE, "usage: tegami user list [DOMAIN]");
	if (argc == 1) {
		str_copy(domain, argv[0], sizeof(domain));
		str_lower(domain);
		if (!directory_domain_exists(cli_dir(c), domain))
			return cli_error(CLI_FAIL, "no such domain: %s", domain);
	}
	if (directory_user_list(cli_dir(c), argc == 1 ? domain : NULL, print_user, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot list users");
	return CLI_OK;
}

int
cmd_user_del(struct cli *c, int argc, char **argv)
{
	char mailbox[DIR_MAILBOX_MAX];
	char *error = NULL;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami user del ADDRESS");
	int rc = cli_mailbox_arg(argv[0], mailbox, sizeof(mailbox), false);
	if (rc != CLI_OK)
		return rc;
	if (directory_user_del(cli_dir(c), mailbox, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("user %s deleted; no more mail is accepted for it, its Maildir stays on disk\n",
	    mailbox);
	return CLI_OK;
}

int
cmd_user_passwd(struct cli *c, int argc, char **argv)
{
	static const char usage[] = "tegami user passwd ADDRESS [--password-stdin]";
	char mailbox[DIR_MAILBOX_MAX];
	bool from_stdin, none;
	char *hash, *error = NULL;
	int rc = user_args(argc, argv, usage, false, mailbox, &from_stdin, &none);

	if (rc != CLI_OK)
		return rc;
	if (!directory_user_exists(cli_dir(c), mailbox))
		return cli_error(CLI_FAIL, "no such user: %s", mailbox);
	if ((hash = cli_read_password_hash(from_stdin)) == NULL)
		return CLI_USAGE;
	if (directory_user_set_password(cli_dir(c), mailbox, hash, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		free(hash);
		return CLI_FAIL;
	}
	free(hash);
	printf("password of %s changed\n", mailbox);
	return CLI_OK;
}
