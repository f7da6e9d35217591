/* tegami domain add|list|del|bind (MISSION S4, D1). A domain may be bound to
 * listen addresses (seed 002, "multiple domains": each domain with its
 * interface): mail for it is then accepted only on listeners at those
 * addresses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/directory.h"
#include "lib/db.h"
#include "lib/strutil.h"
#include "mail/addr.h"

#define DOMAIN_ADD_USAGE \
	"usage: tegami domain add DOMAIN [--postmaster ADDRESS] [--bind ADDR[,ADDR...]]"

static int
fail_with(char *error)
{
	cli_error(CLI_FAIL, "%s", error);
	free(error);
	return CLI_FAIL;
}

/* Canonical bind list of arg into out (DIR_BIND_LEN). CLI_OK or CLI_USAGE. */
static int
bind_arg(const char *arg, char *out, size_t size)
{
	const char *why = "";

	if (directory_bind_normalize(arg, out, size, &why) < 0)
		return cli_error(CLI_USAGE, "--bind '%s': %s", arg, why);
	return CLI_OK;
}

/* The domain row and its binding, in one transaction. */
static int
add_bound(struct cli *c, const char *domain, const char *postmaster, const char *bind)
{
	char *error = NULL;

	if (db_begin(cli_db(c), &error) < 0)
		return fail_with(error);
	if (directory_domain_add(cli_dir(c), domain, postmaster, &error) < 0 ||
	    (bind != NULL && directory_domain_set_bind(cli_dir(c), domain, bind, &error) < 0)) {
		db_rollback(cli_db(c));
		return fail_with(error);
	}
	if (db_commit(cli_db(c), &error) < 0)
		return fail_with(error);
	return CLI_OK;
}

int
cmd_domain_add(struct cli *c, int argc, char **argv)
{
	const char *postmaster = NULL, *bind = NULL;
	char pm[DIR_MAILBOX_MAX], domain[ADDR_DOMAIN_MAX + 1], bound[DIR_BIND_LEN];
	int rc;

	if (argc < 1 || argc % 2 != 1)
		return cli_error(CLI_USAGE, DOMAIN_ADD_USAGE);
	for (int i = 1; i < argc; i += 2) {
		const char **opt = strcmp(argv[i], "--postmaster") == 0 ? &postmaster :
		    strcmp(argv[i], "--bind") == 0 ? &bind : NULL;
		if (opt == NULL || *opt != NULL)
			return cli_error(CLI_USAGE, DOMAIN_ADD_USAGE);
		*opt = argv[i + 1];
	}
	if ((rc = cli_domain_arg(argv[0], domain, sizeof(domain))) != CLI_OK)
		return rc;
	if (postmaster != NULL) {
		if ((rc = cli_mailbox_arg(postmaster, pm, sizeof(pm), false)) != CLI_OK)
			return rc;
		postmaster = pm;
	}
	if (bind != NULL) {
		if ((rc = bind_arg(bind, bound, sizeof(bound))) != CLI_OK)
			return rc;
		bind = bound;
	}
	if ((rc = add_bound(c, domain, postmaster, bind)) != CLI_OK)
		return rc;
	printf("domain %s added (postmaster: %s%s)%s%s\n", domain,
	    postmaster != NULL ? postmaster : "postmaster@", postmaster != NULL ? "" : domain,
	    bind != NULL ? ", bound to " : "", bind != NULL ? bind : "");
	return CLI_OK;
}

/* tegami domain bind DOMAIN ADDR[,ADDR...] | --none */
int
cmd_domain_bind(struct cli *c, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1], bound[DIR_BIND_LEN], *error = NULL;
	int rc;

	if (argc != 2)
		return cli_error(CLI_USAGE, "usage: tegami domain bind DOMAIN ADDR[,ADDR...] | --none");
	if ((rc = cli_domain_arg(argv[0], domain, sizeof(domain))) != CLI_OK)
		return rc;
	bool none = strcmp(argv[1], "--none") == 0;
	if (!none && (rc = bind_arg(argv[1], bound, sizeof(bound))) != CLI_OK)
		return rc;
	if (directory_domain_set_bind(cli_dir(c), domain, none ? NULL : bound, &error) < 0)
		return fail_with(error);
	if (none)
		printf("domain %s is accepted on every listen address\n", domain);
	else
		printf("domain %s is accepted only on %s\n", domain, bound);
	return CLI_OK;
}

static void
print_domain(void *arg, const char *name, const char *postmaster)
{
	struct directory *dir = arg;
	char bind[DIR_BIND_LEN];

	if (postmaster != NULL)
		printf("%s\tpostmaster=%s", name, postmaster);
	else
		printf("%s\tpostmaster=postmaster@%s", name, name);
	if (directory_domain_bind_get(dir, name, bind, sizeof(bind)) == 1 && bind[0] != '\0')
		printf("\tbind=%s", bind);
	putchar('\n');
}

int
cmd_domain_list(struct cli *c, int argc, char **argv)
{
	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami domain list");
	if (directory_domain_list(cli_dir(c), print_domain, cli_dir(c)) < 0)
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
	if (directory_domain_del(cli_dir(c), domain, &error) < 0)
		return fail_with(error);
	printf("domain %s deleted (mailboxes stay on disk)\n", domain);
	return CLI_OK;
}
