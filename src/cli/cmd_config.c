/* tegami config get|set|show|export|import (MISSION D2, D3). Every value is
 * validated against the settings table before anything is stored, and a
 * command's changes are one transaction: all of them or none. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/settings.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/strutil.h"

#define IMPORT_MAX (1024 * 1024)

int
cmd_config_get(struct cli *c, int argc, char **argv)
{
	char value[CONFIG_STR_MAX];

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami config get KEY");
	if (settings_find(argv[0]) == NULL)
		return cli_error(CLI_USAGE, "unknown setting '%s' (tegami config show lists them)", argv[0]);
	if (settings_get(cli_db(c), argv[0], value) < 0)
		return cli_error(CLI_FAIL, "cannot read %s", argv[0]);
	printf("%s\n", value);
	return CLI_OK;
}

struct pending {
	const char *key;
	char value[CONFIG_STR_MAX];
	char *list;           /* "list.NAME" keys (cmd_relay.c): the whole list */
};

static void
pending_free(struct pending *p, size_t n)
{
	for (size_t i = 0; p != NULL && i < n; i++)
		free(p[i].list);
	free(p);
}

int
cli_setting_check(const char *where, const char *key, const char *value, const char **key_r,
    char *norm)
{
	const struct setting_def *def = settings_find(key);
	const char *why = "";

	if (def == NULL)
		return cli_error(CLI_USAGE, "%sunknown setting '%s' (tegami config show lists them)",
		    where, key);
	if (settings_validate(def, value, norm, &why) < 0)
		return cli_error(CLI_USAGE, "%sbad value for %s: '%s': %s", where, key, value, why);
	*key_r = def->key;
	return CLI_OK;
}

/* Validates key=value into p: a setting (cli_setting_check) or a whole
 * relay-control list ("list.NAME", cmd_relay.c). CLI_OK or CLI_USAGE after
 * printing why, in one line that starts with where ("" or "FILE line N: "). */
static int
check_pair(const char *where, const char *key, const char *value, struct pending *p)
{
	const char *why = "";
	const char *list = cli_relay_list_name(key);

	if (list != NULL) {
		if (cli_relay_list_canon(list, value, &p->list, &why) < 0)
			return cli_error(CLI_USAGE, "%sbad value for %s: %s", where, key, why);
		p->key = list;
		return CLI_OK;
	}
	return cli_setting_check(where, key, value, &p->key, p->value);
}

static int
store_all(struct cli *c, struct pending *p, size_t n)
{
	char *error = NULL;

	if (db_begin(cli_db(c), &error) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (p[i].list != NULL ? cli_relay_list_replace(c, p[i].key, p[i].list, &error) < 0 :
		    settings_store(cli_db(c), p[i].key, p[i].value, &error) < 0) {
			db_rollback(cli_db(c));
			goto fail;
		}
	}
	/* Rules across settings see the result of the whole change. */
	struct config cfg;
	char why[256];
	if (config_load(cli_db(c), &cfg, &error) < 0) {
		db_rollback(cli_db(c));
		goto fail;
	}
	if (config_check(&cfg, why, sizeof(why)) < 0) {
		db_rollback(cli_db(c));
		return cli_error(CLI_USAGE, "refused, nothing changed: %s", why);
	}
	if (db_commit(cli_db(c), &error) < 0)
		goto fail;
	return CLI_OK;
fail:
	cli_error(CLI_FAIL, "cannot store settings: %s", error);
	free(error);
	return CLI_FAIL;
}

int
cmd_config_set(struct cli *c, int argc, char **argv)
{
	struct pending *p;
	int rc = CLI_OK;

	if (argc < 1)
		return cli_error(CLI_USAGE, "usage: tegami config set KEY=VALUE [KEY=VALUE...]");
	p = calloc((size_t)argc, sizeof(*p));
	if (p == NULL)
		return cli_error(CLI_FAIL, "out of memory");
	/* Values are checked as the invoker: tegamid reads a TLS key as root. */
	cli_as_invoker(c);
	for (int i = 0; i < argc && rc == CLI_OK; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq == NULL) {
			rc = cli_error(CLI_USAGE, "'%s' is not KEY=VALUE", argv[i]);
			break;
		}
		*eq = '\0';
		rc = check_pair("", argv[i], eq + 1, &p[i]);
	}
	cli_as_owner(c);
	if (rc == CLI_OK)
		rc = store_all(c, p, (size_t)argc);
	for (int i = 0; i < argc && rc == CLI_OK; i++) {
		if (p[i].list != NULL)
			printf("list.%s = %s\n", p[i].key, p[i].list);
		else
			printf("%s = %s\n", p[i].key, p[i].value);
	}
	pending_free(p, (size_t)argc);
	return rc;
}

int
cmd_config_show(struct cli *c, int argc, char **argv)
{
	size_t n;
	const struct setting_def *defs = settings_defs(&n);
	char value[CONFIG_STR_MAX];
	bool verbose = argc == 1 && strcmp(argv[0], "-v") == 0;

	if (argc > 1 || (argc == 1 && !verbose))
		return cli_error(CLI_USAGE, "usage: tegami config show [-v]");
	for (size_t i = 0; i < n; i++) {
		if (settings_get(cli_db(c), defs[i].key, value) < 0)
			return cli_error(CLI_FAIL, "cannot read %s", defs[i].key);
		bool stored = settings_is_stored(cli_db(c), defs[i].key);
		printf("%s = %s%s\n", defs[i].key, value, stored ? "" : "  # default");
		if (verbose)
			printf("    %s [%s]\n", defs[i].desc, defs[i].req);
	}
	return CLI_OK;
}

static bool
has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], flag) == 0)
			return true;
	}
	return false;
}

int
cmd_config_export(struct cli *c, int argc, char **argv)
{
	size_t n;
	const struct setting_def *defs = settings_defs(&n);
	char value[CONFIG_STR_MAX];
	bool json = argc == 1 && strcmp(argv[0], "--json") == 0;

	if (has_flag(argc, argv, "--all"))
		return cmd_config_export_all(c, argc, argv); /* cmd_backup.c */
	if (argc > 1 || (argc == 1 && !json))
		return cli_error(CLI_USAGE, "usage: tegami config export [--json] | "
		    "--all [--json] [--with-secrets] [-o FILE]");
	json_t *obj = json ? json_object() : NULL;
	if (!json)
		printf("# tegami settings; read back with: tegami config import FILE\n");
	for (size_t i = 0; i < n; i++) {
		if (settings_get(cli_db(c), defs[i].key, value) < 0)
			return cli_error(CLI_FAIL, "cannot read %s", defs[i].key);
		if (json)
			json_object_set_new(obj, defs[i].key, json_string(value));
		else
			printf("%s = %s\n", defs[i].key, value);
	}
	/* R1, R2: the relay-control lists, each as one line. */
	static const char *const lists[] = { "list.relay-domains", "list.relay-networks",
	    "list.refused" };
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		char *v = cli_relay_list_joined(c, cli_relay_list_name(lists[i]));
		if (v == NULL)
			return cli_error(CLI_FAIL, "cannot read %s", lists[i]);
		if (json)
			json_object_set_new(obj, lists[i], json_string(v));
		else
			printf("%s = %s\n", lists[i], v);
		free(v);
	}
	if (json) {
		char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", text);
		free(text);
		json_decref(obj);
	}
	return CLI_OK;
}

static int
import_json(const char *text, struct pending **p_r, size_t *n_r)
{
	json_error_t jerr;
	json_t *root = json_loads(text, 0, &jerr);
	const char *key;
	json_t *val;
	int rc = CLI_OK;

	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return cli_error(CLI_USAGE, "not a JSON object of settings (line %d: %s)",
		    jerr.line, jerr.text);
	}
	*p_r = calloc(json_object_size(root) + 1, sizeof(**p_r));
	*n_r = 0;
	json_object_foreach(root, key, val) {
		if (!json_is_string(val)) {
			rc = cli_error(CLI_USAGE, "setting %s: value must be a string", key);
			break;
		}
		if ((rc = check_pair("", key, json_string_value(val), &(*p_r)[*n_r])) != CLI_OK)
			break;
		(*n_r)++;
	}
	json_decref(root);
	return rc;
}

static int
import_text(char *text, struct pending **p_r, size_t *n_r)
{
	size_t cap = 16, lineno = 0;
	int rc = CLI_OK;

	*p_r = calloc(cap, sizeof(**p_r));
	*n_r = 0;
	for (char *line = text; line != NULL && rc == CLI_OK;) {
		char *next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		char *p = line + strspn(line, " \t");
		if (*p == '[')
			return cli_error(CLI_USAGE, "line %zu: %s starts a part of a full export: "
			    "read it with tegami config import --all", lineno, p);
		if (*p != '\0' && *p != '#') {
			char *eq = strchr(p, '=');
			if (eq == NULL)
				return cli_error(CLI_USAGE, "line %zu: expected KEY = VALUE", lineno);
			char *kend = eq;
			while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
				kend--;
			*kend = '\0';
			char *v = eq + 1 + strspn(eq + 1, " \t");
			size_t vl = strlen(v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				v[--vl] = '\0';
			if (*n_r == cap) {
				cap *= 2;
				*p_r = realloc(*p_r, cap * sizeof(**p_r));
			}
			char where[64];
			snprintf(where, sizeof(where), "line %zu: ", lineno);
			if (check_pair(where, p, v, &(*p_r)[*n_r]) != CLI_OK)
				return CLI_USAGE;
			(*n_r)++;
		}
		line = next;
	}
	return rc;
}

/* Reads and checks an export (text or JSON) into *p_r. CLI_OK, or an exit
 * code after saying why. */
static int
import_read(const char *path, char **text_r, struct pending **p_r, size_t *n_r)
{
	size_t len;

	*text_r = NULL;
	if (fs_read_file(path, IMPORT_MAX, text_r, &len) < 0)
		return cli_error(CLI_FAIL, "cannot read %s: %s", path, strerror(errno));
	if (strlen(*text_r) != len)
		return cli_error(CLI_USAGE, "%s: not a text file", path);
	const char *first = *text_r + strspn(*text_r, " \t\r\n");
	return *first == '{' ? import_json(*text_r, p_r, n_r) : import_text(*text_r, p_r, n_r);
}

int
cmd_config_import(struct cli *c, int argc, char **argv)
{
	char *text;
	size_t n = 0;
	struct pending *p = NULL;

	if (has_flag(argc, argv, "--all"))
		return cmd_config_import_all(c, argc, argv); /* cmd_backup.c */
	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami config import FILE   (text or JSON, as exported)");
	/* The file and the values, as the invoker (see cmd_config_set). */
	cli_as_invoker(c);
	int rc = import_read(argv[0], &text, &p, &n);
	cli_as_owner(c);
	if (rc == CLI_OK)
		rc = store_all(c, p, n);
	if (rc == CLI_OK)
		printf("imported %zu setting(s) from %s\n", n, argv[0]);
	pending_free(p, n);
	free(text);
	return rc;
}

static const char *
type_name(const struct setting_def *def, char *buf, size_t size)
{
	switch (def->type) {
	case SETTING_BOOL: return "yes/no";
	case SETTING_UINT:
		snprintf(buf, size, "number %llu-%llu", (unsigned long long)def->min,
		    (unsigned long long)def->max);
		return buf;
	case SETTING_SIZE: return "bytes (K/M/G)";
	case SETTING_HOSTNAME: return "host name";
	case SETTING_LISTEN: return "listen list";
	case SETTING_PATH: return "file path";
	case SETTING_TEXT: return "text";
	case SETTING_CIDRS: return "IP/CIDR list";
	case SETTING_HOSTPORT: return "HOST[:PORT]";
	case SETTING_SERVERS: return "IP[:PORT] list";
	case SETTING_ADDRESS: return "address";
	case SETTING_DOMAINS: return "domain list";
	case SETTING_ENUM:
		snprintf(buf, size, "%s", def->choices);
		for (char *p = buf; *p != '\0'; p++) {
			if (*p == '|')
				*p = '/';
		}
		return buf;
	}
	return "?";
}

int
cmd_config_doc(struct cli *c, int argc, char **argv)
{
	size_t n;
	const struct setting_def *defs = settings_defs(&n);
	char tbuf[128];

	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami config doc");
	printf("| key | type | default | meaning | requirement |\n");
	printf("|---|---|---|---|---|\n");
	for (size_t i = 0; i < n; i++)
		printf("| `%s` | %s | `%s` | %s | %s |\n", defs[i].key, type_name(&defs[i], tbuf,
		    sizeof(tbuf)), defs[i].def, defs[i].desc, defs[i].req);
	return CLI_OK;
}
