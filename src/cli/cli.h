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

/* What is stored for a password: a yescrypt hash and, unless disabled, the
 * CRAM-MD5 secret (A8). The password itself is wiped once these are made. */
struct cli_credentials {
	char *hash;        /* caller frees */
	char cram[65];     /* "" when CRAM-MD5 is not wanted */
};

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

/* Sends sig to the running daemon. 0, or -1 when none runs (pid_r = 0). */
int cli_daemon_pid(struct cli *c, long *pid_r);


extern const struct cli_command cli_commands[];
extern const size_t cli_ncommands;

int cmd_domain_add(struct cli *c, int argc, char **argv);
int cmd_domain_list(struct cli *c, int argc, char **argv);
int cmd_domain_del(struct cli *c, int argc, char **argv);
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
int cmd_config_doc(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_backup(struct cli *c, int argc, char **argv);
int cmd_restore(struct cli *c, int argc, char **argv);
int cmd_reload(struct cli *c, int argc, char **argv);

#endif
