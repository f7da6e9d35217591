/* tegami relay|refuse|dnsbl: relay control and connection restrictions
 * (MISSION R1-R3, seed 002 中継制限 / 接続制限, D2).
 *
 *   relay show                  the mode, the window, both lists
 *   relay set MODE [--minutes N]  smtp.relay_mode (and the POP window)
 *   relay add|del domain DOMAIN   the near-domains list (relay-domains)
 *   relay add|del network CIDR    the address relay list (relay-networks)
 *   refuse add|del|list [CIDR]    refused client addresses (refused)
 *   refuse override yes|no        OVERRJTCNN: smtp.pop_overrides_refused
 *   dnsbl add|del|list [ZONE]     smtp.dnsbl_zones
 *
 * Settings go through the settings table (validated as `config set` does)
 * and the lists through the directory's `lists` table; a running tegamid
 * sees either within a second (it polls the database's data_version). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/datadir.h"
#include "conf/directory.h"
#include "conf/relaylists.h"
#include "conf/settings.h"
#include "lib/db.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "mail/addr.h"

/* Validates and stores n settings in one transaction. */
static int
settings_put(struct cli *c, const char *const *keys, const char *const *values, size_t n)
{
	char norm[4][CONFIG_STR_MAX];
	char *error = NULL;

	for (size_t i = 0; i < n && i < 4; i++) {
		const char *why = "";
		if (settings_validate(settings_find(keys[i]), values[i], norm[i], &why) < 0)
			return cli_error(CLI_USAGE, "bad value for %s: '%s': %s", keys[i], values[i], why);
	}
	if (db_begin(cli_db(c), &error) < 0)
		goto fail;
	for (size_t i = 0; i < n && i < 4; i++) {
		if (settings_store(cli_db(c), keys[i], norm[i], &error) < 0) {
			db_rollback(cli_db(c));
			goto fail;
		}
	}
	if (db_commit(cli_db(c), &error) < 0)
		goto fail;
	return CLI_OK;
fail:
	cli_error(CLI_FAIL, "cannot store settings: %s", error);
	free(error);
	return CLI_FAIL;
}

static void
get(struct cli *c, const char *key, char *buf)
{
	if (settings_get(cli_db(c), key, buf) < 0) {
		cli_error(CLI_FAIL, "cannot read %s", key);
		exit(CLI_FAIL);
	}
}

/* --- lists --- */

struct rows {
	const char *sep;
	size_t n;
};

static void
print_row(void *arg, const char *name, const char *entry)
{
	struct rows *r = arg;

	printf("%s%s", r->n++ == 0 ? "" : r->sep, entry);
}

/* The entries of one list on one line (sep between), or "(none)". */
static int
print_list(struct cli *c, const char *list, const char *sep)
{
	struct rows r = { sep, 0 };

	if (directory_list_show(cli_dir(c), list, print_row, &r) < 0)
		return cli_error(CLI_FAIL, "cannot read the %s list", list);
	printf("%s\n", r.n == 0 ? "(none)" : "");
	return CLI_OK;
}

/* Canonical form of a list entry into out: a domain (lower case) or an IP
 * address / CIDR range. */
static int
entry_check(const char *list, const char *entry, char *out, size_t size)
{
	if (directory_list_holds_domains(list)) {
		if (!addr_domain_valid(entry))
			return cli_error(CLI_USAGE, "'%s' is not a domain name", entry);
	} else if (!netaddr_cidr_valid(entry)) {
		return cli_error(CLI_USAGE, "'%s' is not an IP address or CIDR range", entry);
	}
	str_copy(out, entry, size);
	str_lower(out);
	return CLI_OK;
}

static int
list_change(struct cli *c, const char *list, const char *what, const char *entry, bool add)
{
	char canon[300], *error = NULL;
	int rc;

	if ((rc = entry_check(list, entry, canon, sizeof(canon))) != CLI_OK)
		return rc;
	rc = add ? directory_list_add(cli_dir(c), list, canon, &error) :
	    directory_list_del(cli_dir(c), list, canon, &error);
	if (rc < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("%s %s the %s\n", canon, add ? "added to" : "removed from", what);
	return CLI_OK;
}

/* --- relay --- */

static const char *
mode_meaning(const char *mode)
{
	static const char *const m[][2] = {
		{ "allow_all", "every client may relay" },
		{ "block_all", "nobody may relay, not even after AUTH" },
		{ "near_domains", "anyone may relay to the near domains" },
		{ "address_list", "clients on the address relay list may relay" },
		{ "both_lists", "to the near domains, and clients on the address relay list" },
		{ "pop_clients", "clients that logged in over POP3 within the window may relay" },
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		if (strcmp(mode, m[i][0]) == 0)
			return m[i][1];
	}
	return "?";
}

/* POP-before-SMTP clients within the window, from the daemon's record
 * (DATA/poplogins.db); -1 when there is none yet. */
static long
pop_clients_now(struct cli *c, uint64_t minutes)
{
	char path[4200];
	struct sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long n = -1;

	datadir_path(c->data_dir, "poplogins.db", path, sizeof(path));
	if (access(path, R_OK) < 0 || sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(db, 2000);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM pop_logins WHERE at > ?", -1, &st,
	    NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)(time(NULL) - (time_t)(minutes * 60)));
	if (sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

int
cmd_relay_show(struct cli *c, int argc, char **argv)
{
	char mode[CONFIG_STR_MAX], minutes[CONFIG_STR_MAX], override[CONFIG_STR_MAX];
	char skip[CONFIG_STR_MAX], auth_mode[CONFIG_STR_MAX];
	uint64_t mins = 0;

	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami relay show");
	get(c, "smtp.relay_mode", mode);
	get(c, "smtp.pop_before_smtp_minutes", minutes);
	get(c, "smtp.pop_overrides_refused", override);
	get(c, "auth.skip_pop_before_smtp", skip);
	get(c, "auth.mode", auth_mode);
	(void)str_parse_u64(minutes, &mins);
	printf("mode: %s (%s)\n", mode, mode_meaning(mode));
	printf("pop-before-smtp window: %s minutes\n", minutes);
	long pop = pop_clients_now(c, mins);
	if (pop >= 0)
		printf("pop clients within the window: %ld\n", pop);
	printf("pop clients override refused addresses (OVERRJTCNN): %s\n", override);
	if (strcmp(mode, "block_all") == 0)
		printf("authenticated senders: may not relay (block_all)\n");
	else if (strcmp(auth_mode, "none") != 0)
		printf("authenticated senders: may relay, only they and only under TLS "
		    "(auth.mode=%s)\n", auth_mode);
	else if (strcmp(mode, "pop_clients") == 0 && strcmp(skip, "no") == 0)
		printf("authenticated senders: may relay after a POP login within the window "
		    "(auth.skip_pop_before_smtp=no)\n");
	else
		printf("authenticated senders: may relay\n");
	printf("near domains: ");
	if (print_list(c, RELAY_LIST_DOMAINS, " ") != CLI_OK)
		return CLI_FAIL;
	printf("address relay list: ");
	return print_list(c, RELAY_LIST_NETWORKS, " ");
}

int
cmd_relay_set(struct cli *c, int argc, char **argv)
{
	const char *keys[2] = { "smtp.relay_mode", "smtp.pop_before_smtp_minutes" };
	const char *values[2] = { NULL, NULL };

	if (argc == 3 && strcmp(argv[1], "--minutes") == 0)
		values[1] = argv[2];
	else if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami relay set MODE [--minutes N]   (MODE: "
		    "allow_all, block_all, near_domains, address_list, both_lists, pop_clients)");
	values[0] = argv[0];
	int rc = settings_put(c, keys, values, values[1] != NULL ? 2 : 1);
	if (rc != CLI_OK)
		return rc;
	printf("relay mode: %s (%s)", argv[0], mode_meaning(argv[0]));
	if (values[1] != NULL)
		printf(", pop-before-smtp window: %s minutes", values[1]);
	printf("\n");
	return CLI_OK;
}

static int
relay_change(struct cli *c, int argc, char **argv, bool add)
{
	if (argc == 2 && strcmp(argv[0], "domain") == 0)
		return list_change(c, RELAY_LIST_DOMAINS, "near-domains list", argv[1], add);
	if (argc == 2 && strcmp(argv[0], "network") == 0)
		return list_change(c, RELAY_LIST_NETWORKS, "address relay list", argv[1], add);
	return cli_error(CLI_USAGE, "usage: tegami relay %s domain DOMAIN | network IP[/BITS]",
	    add ? "add" : "del");
}

int
cmd_relay_add(struct cli *c, int argc, char **argv)
{
	return relay_change(c, argc, argv, true);
}

int
cmd_relay_del(struct cli *c, int argc, char **argv)
{
	return relay_change(c, argc, argv, false);
}

/* --- refuse --- */

int
cmd_refuse_add(struct cli *c, int argc, char **argv)
{
	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami refuse add IP[/BITS]");
	return list_change(c, RELAY_LIST_REFUSED, "refused connections", argv[0], true);
}

int
cmd_refuse_del(struct cli *c, int argc, char **argv)
{
	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami refuse del IP[/BITS]");
	return list_change(c, RELAY_LIST_REFUSED, "refused connections", argv[0], false);
}

int
cmd_refuse_list(struct cli *c, int argc, char **argv)
{
	char override[CONFIG_STR_MAX];

	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami refuse list");
	get(c, "smtp.pop_overrides_refused", override);
	printf("# refused at connect (554 5.7.1); pop clients override (OVERRJTCNN): %s\n",
	    override);
	struct rows r = { "\n", 0 };
	if (directory_list_show(cli_dir(c), RELAY_LIST_REFUSED, print_row, &r) < 0)
		return cli_error(CLI_FAIL, "cannot read the refused list");
	if (r.n > 0)
		printf("\n");
	return CLI_OK;
}

int
cmd_refuse_override(struct cli *c, int argc, char **argv)
{
	const char *key = "smtp.pop_overrides_refused";

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami refuse override yes|no");
	int rc = settings_put(c, &key, (const char *const *)argv, 1);
	if (rc == CLI_OK) {
		char v[CONFIG_STR_MAX];
		get(c, key, v);
		printf("pop clients override refused addresses (OVERRJTCNN): %s\n", v);
	}
	return rc;
}

/* --- dnsbl --- */

/* zones without zone (case-insensitive) into out. True when it was there. */
static bool
zones_without(const char *zones, const char *zone, char *out, size_t size)
{
	size_t zl = strlen(zone), o = 0;
	bool found = false;

	out[0] = '\0';
	for (const char *p = zones; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n == zl && strncasecmp(p, zone, n) == 0)
			found = true;
		else if (n > 0 && o + n + 2 < size)
			o += (size_t)snprintf(out + o, size - o, "%s%.*s", o > 0 ? "," : "", (int)n, p);
		p += n;
		if (*p == ',')
			p++;
	}
	return found;
}

static int
dnsbl_change(struct cli *c, int argc, char **argv, bool add)
{
	const char *key = "smtp.dnsbl_zones";
	char zones[CONFIG_STR_MAX], rest[CONFIG_STR_MAX], next[CONFIG_STR_MAX + 300];
	char zone[300];

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami dnsbl %s ZONE", add ? "add" : "del");
	if (!addr_domain_valid(argv[0]))
		return cli_error(CLI_USAGE, "'%s' is not a DNS zone name", argv[0]);
	str_copy(zone, argv[0], sizeof(zone));
	str_lower(zone);
	get(c, key, zones);
	bool found = zones_without(zones, zone, rest, sizeof(rest));
	if (add && found) {
		printf("%s is already a DNSBL zone\n", zone);
		return CLI_OK;
	}
	if (!add && !found)
		return cli_error(CLI_FAIL, "%s is not a DNSBL zone", zone);
	if (add)
		snprintf(next, sizeof(next), "%s%s%s", rest, rest[0] != '\0' ? "," : "", zone);
	else
		str_copy(next, rest, sizeof(next));
	const char *value = next;
	int rc = settings_put(c, &key, &value, 1);
	if (rc == CLI_OK)
		printf("%s %s the DNSBL zones\n", zone, add ? "added to" : "removed from");
	return rc;
}

int
cmd_dnsbl_add(struct cli *c, int argc, char **argv)
{
	return dnsbl_change(c, argc, argv, true);
}

int
cmd_dnsbl_del(struct cli *c, int argc, char **argv)
{
	return dnsbl_change(c, argc, argv, false);
}

int
cmd_dnsbl_list(struct cli *c, int argc, char **argv)
{
	char zones[CONFIG_STR_MAX], timeout[CONFIG_STR_MAX];

	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami dnsbl list");
	get(c, "smtp.dnsbl_zones", zones);
	get(c, "smtp.dnsbl_timeout", timeout);
	printf("# asked at connect, the greeting waits at most %s ms (smtp.dnsbl_timeout)\n",
	    timeout);
	for (const char *p = zones; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n > 0)
			printf("%.*s\n", (int)n, p);
		p += n;
		if (*p == ',')
			p++;
	}
	return CLI_OK;
}

/* --- config export / import (D3): the lists as "list.NAME = a,b,c" --- */

static const char *const export_lists[] = {
	RELAY_LIST_DOMAINS, RELAY_LIST_NETWORKS, RELAY_LIST_REFUSED,
};

const char *
cli_relay_list_name(const char *key)
{
	if (strncmp(key, "list.", 5) != 0)
		return NULL;
	for (size_t i = 0; i < sizeof(export_lists) / sizeof(export_lists[0]); i++) {
		if (strcmp(key + 5, export_lists[i]) == 0)
			return export_lists[i];
	}
	return NULL;
}

int
cli_relay_list_canon(const char *name, const char *value, char **canon_r, const char **why_r)
{
	size_t cap = strlen(value) + 1, o = 0;
	char *out = calloc(1, cap), item[300];

	if (out == NULL) {
		*why_r = "out of memory";
		return -1;
	}
	for (const char *p = value; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(item))
			goto bad;
		memcpy(item, p, n);
		item[n] = '\0';
		str_lower(item);
		if (directory_list_holds_domains(name) ? !addr_domain_valid(item) :
		    !netaddr_cidr_valid(item))
			goto bad;
		o += (size_t)snprintf(out + o, cap - o, "%s%s", o > 0 ? "," : "", item);
		p += n;
		if (*p == ',' && *++p == '\0')
			goto bad;
	}
	*canon_r = out;
	return 0;
bad:
	free(out);
	*why_r = directory_list_holds_domains(name) ? "not a comma-separated list of domains" :
	    "not a comma-separated list of IP addresses or CIDR ranges";
	return -1;
}

struct joined {
	char *s;
	size_t len, cap;
};

static void
join_row(void *arg, const char *name, const char *entry)
{
	struct joined *j = arg;
	size_t need = j->len + strlen(entry) + 2;

	if (need > j->cap) {
		j->cap = need * 2;
		char *s = realloc(j->s, j->cap);
		if (s == NULL) {
			cli_error(CLI_FAIL, "out of memory");
			exit(CLI_FAIL);
		}
		j->s = s;
	}
	j->len += (size_t)snprintf(j->s + j->len, j->cap - j->len, "%s%s", j->len > 0 ? "," : "",
	    entry);
}

char *
cli_relay_list_joined(struct cli *c, const char *name)
{
	struct joined j = { NULL, 0, 0 };

	if (directory_list_show(cli_dir(c), name, join_row, &j) < 0) {
		free(j.s);
		return NULL;
	}
	return j.s != NULL ? j.s : strdup("");
}

int
cli_relay_list_replace(struct cli *c, const char *name, const char *canon, char **error_r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(cli_db(c), "DELETE FROM lists WHERE name = ?", -1, &st, NULL) !=
	    SQLITE_OK) {
		*error_r = strdup(sqlite3_errmsg(cli_db(c)));
		return -1;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = strdup(sqlite3_errmsg(cli_db(c)));
		return -1;
	}
	char item[300];
	for (const char *p = canon; *p != '\0';) {
		size_t n = strcspn(p, ",");
		snprintf(item, sizeof(item), "%.*s", (int)n, p);
		if (directory_list_add(cli_dir(c), name, item, error_r) < 0)
			return -1;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}
