/* cli.h: internal to the `tegami` admin command. Each subcommand group has a
 * handler; the grammar table in tegami.c maps words to handlers.
 * Exit codes: 0 done, 1 failed (runtime), 2 bad usage or invalid value. */
#ifndef TEGAMI_CLI_H
#define TEGAMI_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/privdrop.h"

struct sqlite3;
struct directory;

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2

struct cli {
	const char *data_dir;
	struct privdrop priv;     /* run as root: the data directory's owner (effective ids) */
	struct sqlite3 *db;       /* opened on first use */
	struct directory *dir;    /* opened on first use */
};

struct cli_command {
	const char *group;        /* "domain" */
	const char *verb;         /* "add"; NULL for a group without verbs */
	int (*fn)(struct cli *c, int argc, char **argv); /* argv after the verb */
	const char *args;         /* usage of the arguments */
	const char *help;         /* one line */
};

/* Prints "tegami: <message>" on stderr and returns code. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct sqlite3 *cli_db(struct cli *c);
struct directory *cli_dir(struct cli *c);

/* Lower-cases and validates "local@domain" for a new or named mailbox.
 * Returns CLI_OK or CLI_USAGE (after printing why). out holds 322 bytes. */
int cli_mailbox_arg(const char *arg, char *out, size_t size, bool strict_local);
/* Validates a domain name and lower-cases it into out. CLI_OK or CLI_USAGE
 * (after printing why). */
int cli_domain_arg(const char *arg, char *out, size_t size);

/* What is stored for a password: a yescrypt hash and, unless disabled, the
 * CRAM-MD5 secret (A8). The password itself is wiped once these are made. */
struct cli_credentials {
	char *hash;        /* caller frees */
	char cram[65];     /* "" when CRAM-MD5 is not wanted */
};

/* Validates KEY=VALUE against the settings table: *key_r becomes the
 * table's key, norm (CONFIG_STR_MAX bytes) the canonical value. CLI_OK, or
 * CLI_USAGE after one line on stderr that starts with where ("" or
 * "FILE line N: "). */
int cli_setting_check(const char *where, const char *key, const char *value, const char **key_r,
    char *norm);

/* Reads a password: from the first line of stdin (--password-stdin), or asked
 * twice on the terminal without echo (empty or differing answers ask again).
 * With check_hash, the password must match that hash instead of being new
 * (asked once). Returns CLI_OK, or an exit code after printing why. */
int cli_read_credentials(bool from_stdin, bool want_cram, const char *check_hash,
    struct cli_credentials *out);

/* Files outside the data directory (a backup) are read and written as the
 * user who runs tegami, not as the data directory's owner: as_invoker
 * before, as_owner after. No-op unless tegami runs as root for another
 * owner. */
void cli_as_invoker(struct cli *c);
void cli_as_owner(struct cli *c);

/* The running daemon's pid from DIR/tegamid.pid (locked while it runs).
 * 0, or -1 when none runs (pid_r = 0). */
int cli_daemon_pid(struct cli *c, long *pid_r);

/* How a request on the control socket (tegamid_ctl.h) ended. */
enum cli_ctl_result {
	CLI_CTL_OK,       /* "ok TEXT": text holds TEXT */
	CLI_CTL_ERROR,    /* "error TEXT": text holds TEXT */
	CLI_CTL_DOWN,     /* tegamid is not running: text says so */
	CLI_CTL_BROKEN,   /* it runs but did not answer: text says why */
};

/* Gets each reply line before the last one (progress), without its LF. */
typedef void cli_ctl_line_fn(void *arg, const char *line);

/* Sends one request line to the running tegamid and reads its reply lines
 * (each line waits at most 60 s): fn, when not NULL, gets every line before
 * the last, as it comes; text (size octets, always terminated) gets the
 * last line's text or the reason of a failure. Blocking; no other
 * output. */
enum cli_ctl_result cli_ctl_call(struct cli *c, const char *request, cli_ctl_line_fn *fn,
    void *arg, char *text, size_t size);


/* Asks a secret on the terminal (never standard input) without echo: prompt,
 * then again (when not NULL) to confirm. An empty answer asks again; one
 * over max bytes says so and asks again; two that differ fail. buf holds
 * max + 1 bytes. CLI_OK, or an exit code after printing why (no terminal,
 * end of input, a mismatch). */
int cli_secret_ask(const char *prompt, const char *again, char *buf, size_t max);
/* The name smtpauth's messages and usage give ("mpaossmtpauth" when run by
 * that name). */
void cli_smtpauth_progname(const char *name);

struct profile;
/* The connection test of a profile (X2): connect, TLS, EHLO, AUTH, QUIT
 * (the POP3 login first for POP-before-SMTP), each line printed on
 * standard output. smtp_secret and pop_secret are the opened secrets (may
 * be NULL). CLI_OK when everything worked, else CLI_FAIL. */
int cli_profile_test(struct cli *c, const struct profile *p, const char *smtp_secret,
    const char *pop_secret);

/* `tegami status` lines on the smarthost: where mail goes, which login
 * (SMTP AUTH or POP-before-SMTP, C4), how many other profiles. */
void cli_smarthost_status(struct cli *c);

extern const struct cli_command cli_commands[];
extern const size_t cli_ncommands;

int cmd_domain_add(struct cli *c, int argc, char **argv);
int cmd_domain_list(struct cli *c, int argc, char **argv);
int cmd_domain_del(struct cli *c, int argc, char **argv);
int cmd_domain_bind(struct cli *c, int argc, char **argv);
int cmd_user_add(struct cli *c, int argc, char **argv);
int cmd_user_list(struct cli *c, int argc, char **argv);
int cmd_user_del(struct cli *c, int argc, char **argv);
int cmd_user_passwd(struct cli *c, int argc, char **argv);
int cmd_user_cram(struct cli *c, int argc, char **argv);
int cmd_access_add(struct cli *c, int argc, char **argv);
int cmd_screen_list(struct cli *c, int argc, char **argv);
int cmd_list_show(struct cli *c, int argc, char **argv);
int cmd_list_add(struct cli *c, int argc, char **argv);
int cmd_list_del(struct cli *c, int argc, char **argv);
int cmd_screen_add(struct cli *c, int argc, char **argv);
int cmd_screen_del(struct cli *c, int argc, char **argv);
int cmd_access_list(struct cli *c, int argc, char **argv);
int cmd_access_del(struct cli *c, int argc, char **argv);
int cmd_alias_add(struct cli *c, int argc, char **argv);
int cmd_alias_list(struct cli *c, int argc, char **argv);
int cmd_alias_del(struct cli *c, int argc, char **argv);
int cmd_config_get(struct cli *c, int argc, char **argv);
int cmd_config_set(struct cli *c, int argc, char **argv);
int cmd_config_show(struct cli *c, int argc, char **argv);
int cmd_config_export(struct cli *c, int argc, char **argv);
int cmd_config_import(struct cli *c, int argc, char **argv);
/* config export|import --all (D3): the settings and the directory. */
int cmd_config_export_all(struct cli *c, int argc, char **argv);
int cmd_config_import_all(struct cli *c, int argc, char **argv);
int cmd_config_doc(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_backup(struct cli *c, int argc, char **argv);
int cmd_restore(struct cli *c, int argc, char **argv);
int cmd_reload(struct cli *c, int argc, char **argv);
/* cmd_relay.c: relay control and connection restrictions (R1-R3) */
int cmd_relay_show(struct cli *c, int argc, char **argv);
int cmd_relay_set(struct cli *c, int argc, char **argv);
int cmd_relay_add(struct cli *c, int argc, char **argv);
int cmd_relay_del(struct cli *c, int argc, char **argv);
int cmd_refuse_add(struct cli *c, int argc, char **argv);
int cmd_refuse_del(struct cli *c, int argc, char **argv);
int cmd_refuse_list(struct cli *c, int argc, char **argv);
int cmd_refuse_override(struct cli *c, int argc, char **argv);
int cmd_dnsbl_add(struct cli *c, int argc, char **argv);
int cmd_dnsbl_del(struct cli *c, int argc, char **argv);
int cmd_dnsbl_list(struct cli *c, int argc, char **argv);
/* config export / import (D3) carry the relay-control lists as
 * "list.NAME = ENTRY,ENTRY,..." (NAME: relay-domains, relay-networks,
 * refused); an imported key replaces the whole list. */
/* The list a key names ("list.refused" -> "refused"), NULL for others. */
const char *cli_relay_list_name(const char *key);
/* Checks a comma-separated value for list name; *canon_r (free) gets it in
 * lower case. 0, or -1 with a static *why_r. */
int cli_relay_list_canon(const char *name, const char *value, char **canon_r,
    const char **why_r);
/* The entries of list name, comma-separated (free); NULL on a db error. */
char *cli_relay_list_joined(struct cli *c, const char *name);
/* Makes list name hold exactly canon, inside the caller's transaction. 0,
 * or -1 with *error_r (free). */
int cli_relay_list_replace(struct cli *c, const char *name, const char *canon, char **error_r);
int cmd_smtpauth(struct cli *c, int argc, char **argv);
int cmd_profile_list(struct cli *c, int argc, char **argv);
int cmd_profile_add(struct cli *c, int argc, char **argv);
int cmd_profile_set(struct cli *c, int argc, char **argv);
int cmd_profile_del(struct cli *c, int argc, char **argv);
int cmd_profile_show(struct cli *c, int argc, char **argv);
int cmd_profile_test(struct cli *c, int argc, char **argv);
int cmd_profile_export(struct cli *c, int argc, char **argv);
int cmd_profile_import(struct cli *c, int argc, char **argv);

/* cmd_queue.c (O5): list and show read the queue files; the others reach
 * the running daemon through the control socket, or change the files and
 * the queue_holds table when it is stopped (see tegami(8)). */
int cmd_queue_list(struct cli *c, int argc, char **argv);
int cmd_queue_show(struct cli *c, int argc, char **argv);
int cmd_queue_hold(struct cli *c, int argc, char **argv);
int cmd_queue_release(struct cli *c, int argc, char **argv);
int cmd_queue_flush(struct cli *c, int argc, char **argv);
int cmd_queue_etrn(struct cli *c, int argc, char **argv);
int cmd_queue_delete(struct cli *c, int argc, char **argv);
int cmd_queue_bounce(struct cli *c, int argc, char **argv);

/* cmd_route.c (O1, O6): the routing tables the daemon reads at each
 * decision, so a change applies to the next delivery without a reload. */
int cmd_route_add(struct cli *c, int argc, char **argv);
int cmd_route_del(struct cli *c, int argc, char **argv);
int cmd_route_list(struct cli *c, int argc, char **argv);
int cmd_hosts_add(struct cli *c, int argc, char **argv);
int cmd_hosts_del(struct cli *c, int argc, char **argv);
int cmd_hosts_list(struct cli *c, int argc, char **argv);
int cmd_source_set(struct cli *c, int argc, char **argv);
int cmd_source_del(struct cli *c, int argc, char **argv);
int cmd_source_list(struct cli *c, int argc, char **argv);

#endif
