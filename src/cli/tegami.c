/* tegami: the admin command (MISSION D2). `tegami [-D DIR] GROUP VERB ARGS`;
 * the table below is the whole grammar, and `--help` prints it. */
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "conf/datadir.h"
#include "conf/directory.h"
#include "lib/db.h"

const struct cli_command cli_commands[] = {
	{ "domain", "add", cmd_domain_add, "DOMAIN [--postmaster ADDRESS] [--bind ADDR[,ADDR...]]",
	  "add a local domain (--bind: accepted only on listeners at those addresses)" },
	{ "domain", "bind", cmd_domain_bind, "DOMAIN ADDR[,ADDR...] | --none",
	  "accept mail for a domain only on listeners at these addresses (--none: on all)" },
	{ "domain", "list", cmd_domain_list, "", "list local domains, their postmaster and binding" },
	{ "domain", "del", cmd_domain_del, "DOMAIN", "delete a domain that has no users left" },
	{ "user", "add", cmd_user_add,
	  "ADDRESS [--password-stdin | --no-password] [--no-cram-md5]",
	  "add a user (asks the password twice without echo)" },
	{ "user", "list", cmd_user_list, "[DOMAIN]", "list users" },
	{ "user", "del", cmd_user_del, "ADDRESS", "delete a user; the Maildir stays on disk" },
	{ "user", "passwd", cmd_user_passwd, "ADDRESS [--password-stdin] [--no-cram-md5]",
	  "change a password" },
	{ "user", "cram-md5", cmd_user_cram, "ADDRESS on|off [--password-stdin]",
	  "allow or forbid CRAM-MD5 for a user (on: asks the current password)" },
	{ "alias", "add", cmd_alias_add, "ADDRESS TARGET [TARGET...]", "deliver ADDRESS to targets" },
	{ "alias", "list", cmd_alias_list, "[ADDRESS]", "list aliases" },
	{ "alias", "del", cmd_alias_del, "ADDRESS [TARGET]", "delete an alias or one target" },
	{ "access", "add", cmd_access_add, "LISTENER ENTRY",
	  "allow a user address or IP/CIDR on smtp, submission or smtps" },
	{ "access", "list", cmd_access_list, "[LISTENER]", "list the server access lists" },
	{ "access", "del", cmd_access_del, "LISTENER ENTRY", "remove an access list entry" },
	{ "list", "show", cmd_list_show, "[trusted|exempt|accept|smtp-users]",
	  "show the policy lists (trusted IPs; exempt, accept and smtp-users addresses)" },
	{ "list", "add", cmd_list_add, "NAME ENTRY",
	  "add an IP/CIDR (trusted) or an address (exempt, accept, smtp-users)" },
	{ "list", "del", cmd_list_del, "NAME ENTRY", "remove an entry from a policy list" },
	{ "screen", "list", cmd_screen_list, "", "IPs refused by the dynamic screen, and until when" },
	{ "screen", "add", cmd_screen_add, "IP [--minutes N]", "refuse an IP (default 30 minutes)" },
	{ "screen", "del", cmd_screen_del, "IP", "lift a ban" },
	{ "relay", "show", cmd_relay_show, "", "relay mode, POP-before-SMTP window, near domains, address relay list" },
	{ "relay", "set", cmd_relay_set, "MODE [--minutes N]",
	  "allow_all, block_all, near_domains, address_list, both_lists or pop_clients (N: 15-65535)" },
	{ "relay", "add", cmd_relay_add, "domain DOMAIN | network IP[/BITS]",
	  "add a near domain, or a client range that may relay" },
	{ "relay", "del", cmd_relay_del, "domain DOMAIN | network IP[/BITS]", "remove one" },
	{ "refuse", "add", cmd_refuse_add, "IP[/BITS]", "refuse connections from an address or range (554 5.7.1)" },
	{ "refuse", "del", cmd_refuse_del, "IP[/BITS]", "accept them again" },
	{ "refuse", "list", cmd_refuse_list, "", "the refused addresses" },
	{ "refuse", "override", cmd_refuse_override, "yes|no",
	  "OVERRJTCNN: POP-before-SMTP clients pass the connection restrictions" },
	{ "dnsbl", "add", cmd_dnsbl_add, "ZONE", "ask a DNS blocklist at connect" },
	{ "dnsbl", "del", cmd_dnsbl_del, "ZONE", "stop asking it" },
	{ "dnsbl", "list", cmd_dnsbl_list, "", "the DNSBL zones asked" },
	{ "config", "get", cmd_config_get, "KEY", "print one setting" },
	{ "config", "set", cmd_config_set, "KEY=VALUE [KEY=VALUE...]", "change settings (validated)" },
	{ "config", "show", cmd_config_show, "[-v]", "print every setting (-v: with descriptions)" },
	{ "config", "export", cmd_config_export, "[--json] | --all [--json] [--with-secrets] [-o FILE]",
	  "print every setting; --all: with domains, users, aliases, access and policy lists" },
	{ "config", "import", cmd_config_import, "FILE | --all [--dry-run] FILE",
	  "read settings back (text or JSON); --all: make the directory what FILE says" },
	{ "config", "doc", cmd_config_doc, "", "print the settings reference (Markdown table)" },
	{ "backup", NULL, cmd_backup, "FILE",
	  "write settings, domains, users and aliases to a new file (safe while tegamid runs)" },
	{ "restore", NULL, cmd_restore, "FILE", "replace them with a backup (tegamid stopped)" },
	{ "queue", "list", cmd_queue_list, "[--json]",
	  "queued messages, each recipient's state, next attempt and last reply" },
	{ "queue", "show", cmd_queue_show, "QID", "envelope, headers and delivery history of a message" },
	{ "queue", "hold", cmd_queue_hold, "QID | --domain DOMAIN",
	  "keep a message, or all mail for a destination domain, from being sent" },
	{ "queue", "release", cmd_queue_release, "QID | --domain DOMAIN",
	  "let held mail go again (at once)" },
	{ "queue", "flush", cmd_queue_flush, "[--domain DOMAIN]",
	  "try every deferred recipient now (tegamid running)" },
	{ "queue", "etrn", cmd_queue_etrn, "",
	  "run the etrn.interval schedule now: a queue run, ETRN to etrn.remote (tegamid running)" },
	{ "queue", "delete", cmd_queue_delete, "QID", "remove a message without a report" },
	{ "queue", "bounce", cmd_queue_bounce, "QID",
	  "return a message to its sender with a delivery report (tegamid running)" },
	{ "route", "add", cmd_route_add, "DOMAIN HOST[:PORT]",
	  "send mail for DOMAIN to HOST instead of its MX records" },
	{ "route", "del", cmd_route_del, "DOMAIN", "remove a domain's route" },
	{ "route", "list", cmd_route_list, "", "list per-domain routes" },
	{ "hosts", "add", cmd_hosts_add, "NAME IP [IP...]",
	  "addresses of a host name, used instead of DNS (the host table)" },
	{ "hosts", "del", cmd_hosts_del, "NAME [IP]", "remove a name, or one of its addresses" },
	{ "hosts", "list", cmd_hosts_list, "", "list the host table" },
	{ "source", "set", cmd_source_set, "DOMAIN|* IP",
	  "local address for connections carrying mail from DOMAIN ('*': every other)" },
	{ "source", "del", cmd_source_del, "DOMAIN|*", "remove a source address" },
	{ "source", "list", cmd_source_list, "", "list source addresses" },
	{ "smtpauth", NULL, cmd_smtpauth,
	  "-s -u ACCOUNT [-p PORT] [-t SMTPS|STARTTLS [-v TLSv1|TLSv1.1|TLSv1.2|TLSv1.3]] [-a METHODS] | -d | -i",
	  "SMTP AUTH to the relay host relay.smarthost (seed mpaossmtpauth; asks the password)" },
	{ "profile", "list", cmd_profile_list, "", "outbound server profiles: ID, host, port, default mark" },
	{ "profile", "add", cmd_profile_add, "ID [OPTIONS] (see tegami(8))",
	  "add a profile for a sender domain or group of senders (--test tries it first)" },
	{ "profile", "set", cmd_profile_set, "ID [OPTIONS]", "change a profile (default included)" },
	{ "profile", "del", cmd_profile_del, "ID", "delete a profile (not the default one)" },
	{ "profile", "show", cmd_profile_show, "ID", "every field of a profile (secrets never shown)" },
	{ "profile", "test", cmd_profile_test, "ID",
	  "connect, TLS, EHLO, AUTH, QUIT with a profile, printing every line" },
	{ "profile", "export", cmd_profile_export, "[--all | ID...]",
	  "print profiles as JSON (not the default one; secrets left out)" },
	{ "profile", "import", cmd_profile_import, "--mode new|update FILE",
	  "read profiles back: new adds only absent IDs, update overwrites" },
	{ "status", NULL, cmd_status, "",
	  "is tegamid running, its listeners, the queue size, outbound connections, the smarthost" },
	{ "reload", NULL, cmd_reload, "", "make tegamid re-read its settings now" },
};
const size_t cli_ncommands = sizeof(cli_commands) / sizeof(cli_commands[0]);

static const struct privdrop *invoker;

static void
back_to_invoker(void)
{
	char err[256];

	if (invoker != NULL)
		(void)privdrop_as_root(invoker, err, sizeof(err));
}

static void
usage(FILE *out, const char *group)
{
	if (group == NULL)
		fprintf(out, "usage: tegami [-D DIR] COMMAND [ARGS]\n"
		    "  -D DIR  data directory (default: $TEGAMI_DATA, else ./var)\n"
		    "Commands:\n");
	for (size_t i = 0; i < cli_ncommands; i++) {
		const struct cli_command *cmd = &cli_commands[i];
		if (group != NULL && strcmp(group, cmd->group) != 0)
			continue;
		char head[64];
		snprintf(head, sizeof(head), "%s%s%s", cmd->group, cmd->verb != NULL ? " " : "",
		    cmd->verb != NULL ? cmd->verb : "");
		fprintf(out, "  tegami %s %s\n      %s\n", head, cmd->args, cmd->help);
	}
	if (group == NULL)
		fprintf(out, "Changes reach a running tegamid within a second; see tegami(8).\n");
}

static bool
group_known(const char *group)
{
	for (size_t i = 0; i < cli_ncommands; i++) {
		if (strcmp(cli_commands[i].group, group) == 0)
			return true;
	}
	return false;
}

static bool
wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

static int
dispatch(struct cli *c, int argc, char **argv)
{
	const char *group = argv[0];

	if (!group_known(group)) {
		cli_error(CLI_USAGE, "unknown command '%s' (tegami --help lists them)", group);
		return CLI_USAGE;
	}
	if (wants_help(argc - 1, argv + 1)) {
		usage(stdout, group);
		return CLI_OK;
	}
	for (size_t i = 0; i < cli_ncommands; i++) {
		const struct cli_command *cmd = &cli_commands[i];
		if (strcmp(cmd->group, group) != 0)
			continue;
		if (cmd->verb == NULL)
			return cmd->fn(c, argc - 1, argv + 1);
		if (argc >= 2 && strcmp(cmd->verb, argv[1]) == 0)
			return cmd->fn(c, argc - 2, argv + 2);
	}
	if (argc < 2)
		cli_error(CLI_USAGE, "'%s' needs a subcommand", group);
	else
		cli_error(CLI_USAGE, "unknown subcommand '%s %s'", group, argv[1]);
	usage(stderr, group);
	return CLI_USAGE;
}

int
main(int argc, char **argv)
{
	struct cli c = { 0 };
	const char *opt_dir = NULL;
	int ch;
	const char *base = strrchr(argv[0], '/');
	/* Installed as mpaossmtpauth too (seed 000): that name is the command. */
	bool smtpauth = strcmp(base != NULL ? base + 1 : argv[0], "mpaossmtpauth") == 0;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* '+': stop at the first command word so subcommand options pass through. */
	while (!smtpauth && (ch = getopt_long(argc, argv, "+D:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'D': opt_dir = optarg; break;
		case 'h': usage(stdout, NULL); return CLI_OK;
		case 'V': printf("tegami %s\n", TEGAMI_VERSION); return CLI_OK;
		default: usage(stderr, NULL); return CLI_USAGE;
		}
	}
	if (smtpauth)
		cli_smtpauth_progname("mpaossmtpauth");
	else if (optind >= argc) {
		usage(stderr, NULL);
		return CLI_USAGE;
	}
	umask(027);
	c.data_dir = datadir_choose(opt_dir);
	/* Run as root, act as the data directory's owner, as tegamid does: every
	 * file in it (the database's WAL included) keeps one owner. Effective
	 * ids only: a backup file outside it is still the invoker's. */
	char err[512];
	if (privdrop_plan(&c.priv, c.data_dir, err, sizeof(err)) < 0)
		return cli_error(CLI_FAIL, "%s", err);
	/* Whatever path leads to exit, it leaves as the invoker again (exit
	 * handlers, the sanitizers' leak check among them, see a plain process). */
	invoker = &c.priv;
	atexit(back_to_invoker);
	if (privdrop_as_owner(&c.priv, err, sizeof(err)) < 0)
		return cli_error(CLI_FAIL, "%s", err);
	int rc = smtpauth ? cmd_smtpauth(&c, argc - 1, argv + 1) :
	    dispatch(&c, argc - optind, argv + optind);
	directory_destroy(&c.dir);
	db_close(&c.db);
	return rc;
}
