/* tegami user add|list|del|passwd|cram-md5 (MISSION D1, A8: passwords are
 * stored as yescrypt hashes plus, unless disabled, a CRAM-MD5 secret; never
 * in plain text, never printed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/directory.h"
#include "lib/strutil.h"

struct user_opts {
	char mailbox[DIR_MAILBOX_MAX];
	bool from_stdin, no_password, no_cram;
};

/* Parses "ADDRESS [options]"; allowed names the options this verb takes. */
static int
user_args(int argc, char **argv, const char *usage, const char *allowed, struct user_opts *o)
{
	memset(o, 0, sizeof(*o));
	if (argc < 1)
		return cli_error(CLI_USAGE, "usage: %s", usage);
	for (int i = 1; i < argc; i++) {
		bool *flag = strcmp(argv[i], "--password-stdin") == 0 ? &o->from_stdin :
		    strcmp(argv[i], "--no-password") == 0 ? &o->no_password :
		    strcmp(argv[i], "--no-cram-md5") == 0 ? &o->no_cram : NULL;
		if (flag == NULL || strstr(allowed, argv[i]) == NULL)
			return cli_error(CLI_USAGE, "unknown option '%s'; usage: %s", argv[i], usage);
		*flag = true;
	}
	if (o->no_password && o->from_stdin)
		return cli_error(CLI_USAGE, "--no-password and --password-stdin exclude each other");
	return cli_mailbox_arg(argv[0], o->mailbox, sizeof(o->mailbox), true);
}

static int
fail_with(char *error)
{
	cli_error(CLI_FAIL, "%s", error);
	free(error);
	return CLI_FAIL;
}

int
cmd_user_add(struct cli *c, int argc, char **argv)
{
	static const char usage[] = "tegami user add ADDRESS "
	    "[--password-stdin | --no-password] [--no-cram-md5]";
	struct user_opts o;
	struct cli_credentials cred = { 0 };
	char *error = NULL;
	int rc = user_args(argc, argv, usage, "--password-stdin --no-password --no-cram-md5", &o);

	if (rc != CLI_OK)
		return rc;
	const char *at = strrchr(o.mailbox, '@');
	if (!directory_domain_exists(cli_dir(c), at + 1))
		return cli_error(CLI_FAIL, "%s is not a local domain (add it with: tegami domain add %s)",
		    at + 1, at + 1);
	if (directory_user_exists(cli_dir(c), o.mailbox))
		return cli_error(CLI_FAIL, "user %s already exists", o.mailbox);
	if (!o.no_password &&
	    (rc = cli_read_credentials(o.from_stdin, !o.no_cram, NULL, &cred)) != CLI_OK)
		return rc;
	rc = directory_user_add(cli_dir(c), o.mailbox, cred.hash,
	    cred.cram[0] != '\0' ? cred.cram : NULL, &error);
	free(cred.hash);
	if (rc < 0)
		return fail_with(error);
	printf("user %s added\n", o.mailbox);
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
	if (directory_user_del(cli_dir(c), mailbox, &error) < 0)
		return fail_with(error);
	printf("user %s deleted; no more mail is accepted for it, its Maildir stays on disk\n",
	    mailbox);
	return CLI_OK;
}

int
cmd_user_passwd(struct cli *c, int argc, char **argv)
{
	static const char usage[] = "tegami user passwd ADDRESS [--password-stdin] [--no-cram-md5]";
	struct user_opts o;
	struct cli_credentials cred;
	char *error = NULL;
	int rc = user_args(argc, argv, usage, "--password-stdin --no-cram-md5", &o);

	if (rc != CLI_OK)
		return rc;
	if (!directory_user_exists(cli_dir(c), o.mailbox))
		return cli_error(CLI_FAIL, "no such user: %s", o.mailbox);
	if ((rc = cli_read_credentials(o.from_stdin, !o.no_cram, NULL, &cred)) != CLI_OK)
		return rc;
	rc = directory_user_set_password(cli_dir(c), o.mailbox, cred.hash,
	    cred.cram[0] != '\0' ? cred.cram : NULL, &error);
	free(cred.hash);
	if (rc < 0)
		return fail_with(error);
	printf("password of %s changed\n", o.mailbox);
	return CLI_OK;
}

/* tegami user cram-md5 ADDRESS on|off: "on" needs the current password
 * (checked against the stored hash) to derive the secret. */
int
cmd_user_cram(struct cli *c, int argc, char **argv)
{
	static const char usage[] = "tegami user cram-md5 ADDRESS on|off [--password-stdin]";
	struct user_opts o;
	struct cli_credentials cred;
	char hash[512], cram[128], *error = NULL;
	int rc;

	if (argc < 2 || (strcmp(argv[1], "on") != 0 && strcmp(argv[1], "off") != 0))
		return cli_error(CLI_USAGE, "usage: %s", usage);
	bool on = strcmp(argv[1], "on") == 0;
	argv[1] = argv[0];
	if ((rc = user_args(argc - 1, argv + 1, usage, "--password-stdin", &o)) != CLI_OK)
		return rc;
	if (directory_user_credentials(cli_dir(c), o.mailbox, hash, sizeof(hash), cram,
	    sizeof(cram)) != 1)
		return cli_error(CLI_FAIL, "no such user: %s", o.mailbox);
	if (on && hash[0] == '\0')
		return cli_error(CLI_FAIL, "%s has no password; set one with tegami user passwd",
		    o.mailbox);
	if (on && (rc = cli_read_credentials(o.from_stdin, true, hash, &cred)) != CLI_OK)
		return rc;
	rc = directory_user_set_cram(cli_dir(c), o.mailbox, on ? cred.cram : NULL, &error);
	if (on)
		explicit_bzero(cred.cram, sizeof(cred.cram));
	if (rc < 0)
		return fail_with(error);
	printf("CRAM-MD5 %s for %s\n", on ? "enabled" : "disabled", o.mailbox);
	return CLI_OK;
}
