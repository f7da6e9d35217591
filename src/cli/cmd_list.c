/* tegami list show|add|del: the policy lists of MISSION A5/A6: "trusted"
 * (IPs and CIDR ranges exempt from auth.require_local_ip), "exempt"
 * (addresses exempt from auth.match_return_path / auth.match_from_header),
 * "accept" (addresses auth.verify_mail_from=not_accept_list skips),
 * "smtp-users" (the users auth.verify_ids_local lets log on to SMTP); and
 * those of relay control (R1, R2), which `tegami relay` and `tegami refuse`
 * edit too: "relay-domains", "relay-networks", "refused". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/directory.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "mail/addr.h"

static int
check_name(const char *name)
{
	if (!directory_list_name_valid(name))
		return cli_error(CLI_USAGE, "unknown list '%s' (trusted, exempt, accept, "
		    "smtp-users, relay-domains, relay-networks or refused)", name);
	return CLI_OK;
}

static int
check_entry(const char *name, const char *entry, char *out, size_t size)
{
	if (directory_list_holds_addresses(name))
		return cli_mailbox_arg(entry, out, size, false);
	if (directory_list_holds_domains(name)) {
		if (!addr_domain_valid(entry))
			return cli_error(CLI_USAGE, "'%s' is not a domain name", entry);
		snprintf(out, size, "%s", entry);
		str_lower(out);
		return CLI_OK;
	}
	if (!netaddr_cidr_valid(entry))
		return cli_error(CLI_USAGE, "'%s' is not an IP address or CIDR range", entry);
	snprintf(out, size, "%s", entry);
	return CLI_OK;
}

static int
change(struct cli *c, int argc, char **argv, bool add)
{
	char entry[DIR_MAILBOX_MAX], *error = NULL;
	int rc;

	if (argc != 2)
		return cli_error(CLI_USAGE, "usage: tegami list %s NAME ENTRY", add ? "add" : "del");
	if ((rc = check_name(argv[0])) != CLI_OK ||
	    (rc = check_entry(argv[0], argv[1], entry, sizeof(entry))) != CLI_OK)
		return rc;
	rc = add ? directory_list_add(cli_dir(c), argv[0], entry, &error) :
	    directory_list_del(cli_dir(c), argv[0], entry, &error);
	if (rc < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("%s %s the %s list\n", entry, add ? "added to" : "removed from", argv[0]);
	return CLI_OK;
}

int
cmd_list_add(struct cli *c, int argc, char **argv)
{
	return change(c, argc, argv, true);
}

int
cmd_list_del(struct cli *c, int argc, char **argv)
{
	return change(c, argc, argv, false);
}

static void
print_entry(void *arg, const char *name, const char *entry)
{
	printf("%s\t%s\n", name, entry);
}

int
cmd_list_show(struct cli *c, int argc, char **argv)
{
	int rc;

	if (argc > 1)
		return cli_error(CLI_USAGE, "usage: tegami list show [NAME]");
	if (argc == 1 && (rc = check_name(argv[0])) != CLI_OK)
		return rc;
	if (directory_list_show(cli_dir(c), argc == 1 ? argv[0] : NULL, print_entry, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot read the lists");
	return CLI_OK;
}
