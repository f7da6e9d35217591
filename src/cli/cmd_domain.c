/* tegami domain add|list|del (MISSION S4, D1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/directory.h"
#include "lib/strutil.h"
#include "mail/addr.h"

int
cmd_domain_add(struct cli *c, int argc, char **argv)
{
	const char *postmaster = NULL;
	char pm[DIR_MAILBOX_MAX], domain[ADDR_DOMAIN_MAX + 1];
	char *error = NULL;

	if (argc == 3 && strcmp(argv[1], "--postmaster") == 0)
		postmaster = argv[2];
	else if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami domain add DOMAIN [--postmaster ADDRESS]");
	if (!addr_domain_valid(argv[0]))
		return cli_error(CLI_USAGE, "'%s' is not a valid domain name", argv[0]);
	str_copy(domain, argv[0], sizeof(domain));
	str_lower(domain);
	if (postmaster != NULL) {
		int rc = cli_mailbox_arg(postmaster, pm, sizeof(pm), false);
		if (rc != CLI_OK)
			return rc;
		postmaster = pm;
	}
	if (directory_domain_add(cli_dir(c), domain, postmaster, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("domain %s added (postmaster: %s%s)\n", domain,
	    postmaster != NULL ? postmaster : "postmaster@", postmaster != NULL ? "" : domain);
	return CLI_OK;
}

static void
print_domain(void *arg, const char *name, const char *postmaster)
{
	if (postmaster != NULL)
		printf("%s\tpostmaster=%s\n", name, postmaster);
	else
		printf("%s\tpostmaster=postmaster@%s\n", name, name);
}

int
cmd_domain_list(struct cli *c, int argc, char **argv)
{
	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami domain list");
	if (directory_domain_list(cli_dir(c), print_domain, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot list domains");
	return CLI_OK;
}

int
cmd_domain_del(struct cli *c, int argc, char **argv)
{
	char *error = NULL;
	char domain[ADDR_DOMAIN_MAX + 1];

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami domain del DOMAIN");
	str_copy(domain, argv[0], sizeof(domain));
	str_lower(domain);
	if (directory_domain_del(cli_dir(c), domain, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("domain %s deleted (mailboxes stay on disk)\n", domain);
	return CLI_OK;
}
