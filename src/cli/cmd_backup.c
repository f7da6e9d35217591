/* tegami backup FILE | restore FILE (MISSION D3: backup of the settings and
 * the directory), and the same in text form for version control: tegami
 * config export|import --all (below). The Maildirs and the queue are plain
 * files: copy them with the data directory's other files. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/datadir.h"
#include "conf/directory.h"
#include "conf/settings.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/netaddr.h"
#include "lib/password.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"

/* How many rows of each kind: the summary both commands print. */
static void
print_counts(struct sqlite3 *db, const char *what, const char *file)
{
	static const char *const tables[] = { "settings", "domains", "users", "aliases" };
	long n[4];

	for (size_t i = 0; i < 4; i++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]);
		sqlite3_stmt *st = db_prepare(db, sql);
		n[i] = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
		sqlite3_finalize(st);
	}
	printf("%s %s: %ld changed setting(s), %ld domain(s), %ld user(s), %ld alias row(s)\n",
	    what, file, n[0], n[1], n[2], n[3]);
}

int
cmd_backup(struct cli *c, int argc, char **argv)
{
	char *error = NULL;

	if (argc != 1 || argv[0][0] == '\0' || argv[0][0] == '-')
		return cli_error(CLI_USAGE, "usage: tegami backup FILE (a new file)");
	struct sqlite3 *db = cli_db(c);
	cli_as_invoker(c); /* the backup file is the invoker's, where the invoker may write */
	struct sqlite3 *written = NULL;
	int rc = datadir_backup(db, argv[0], &error);
	if (rc == 0 && (written = datadir_backup_open(argv[0], &error)) == NULL)
		rc = -1; /* what was written does not read back */
	cli_as_owner(c);
	if (rc < 0) {
		rc = cli_error(CLI_FAIL, "backup failed: %s", error);
		free(error);
		return rc;
	}
	print_counts(written, "backup written to", argv[0]); /* what the file holds */
	sqlite3_close(written);
	return CLI_OK;
}

int
cmd_restore(struct cli *c, int argc, char **argv)
{
	char path[4096], *error = NULL;
	long pid;

	if (argc != 1 || argv[0][0] == '\0' || argv[0][0] == '-')
		return cli_error(CLI_USAGE, "usage: tegami restore FILE (made by tegami backup)");
	struct sqlite3 *db = cli_db(c);
	if (cli_daemon_pid(c, &pid) == 0)
		return cli_error(CLI_FAIL, "tegamid is running (pid %ld): stop it before a restore",
		    pid);
	/* Hold the daemon's lock meanwhile: a tegamid started now refuses to start. */
	int lock = open(datadir_path(c->data_dir, "tegamid.pid", path, sizeof(path)),
	    O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
		if (lock >= 0)
			close(lock);
		return cli_error(CLI_FAIL, "tegamid is starting on %s: stop it before a restore",
		    c->data_dir);
	}
	cli_as_invoker(c);
	struct sqlite3 *in = datadir_backup_open(argv[0], &error);
	cli_as_owner(c);
	int rc = in != NULL ? datadir_restore(db, in, argv[0], &error) : -1;
	sqlite3_close(in);
	close(lock);
	if (rc < 0) {
		rc = cli_error(CLI_FAIL, "restore failed: %s", error);
		free(error);
		return rc;
	}
	print_counts(db, "restored from", argv[0]);
	return CLI_OK;
}

/* ---- the directory in text form (D3): tegami config export|import --all ----
 *
 * The settings and the directory as text (or JSON) that can live in version
 * control: one part per table, one line per thing, sorted, so that a change
 * is a small diff. In memory each part is an array of rows sorted by key;
 * the two halves of a pair (alias and target, listener and entry, list and
 * entry) form one key with a blank between them. Import reads the whole
 * file and checks every row and the rules across parts before it changes
 * anything; then one transaction makes the directory what the file says,
 * part by part: a part the file holds replaces what is stored, a part it
 * leaves out is untouched. */

#define IMPORT_ALL_MAX (64 * 1024 * 1024)
#define HASH_MAX 256

enum part_id {
	PART_SETTINGS, PART_DOMAINS, PART_USERS, PART_ALIASES, PART_ACCESS, PART_LISTS, PART_COUNT
};

static const char *const part_names[PART_COUNT] = {
	"settings", "domains", "users", "aliases", "access", "lists",
};

/* Users: val is "password=HASH" or "no-password", with " cram-md5=HEX"
 * after it when there is a CRAM-MD5 secret; NULL when the file holds no
 * secrets (the stored ones stay, a new user gets no password). Domains:
 * "postmaster=ADDRESS bind=ADDR,..." (either may be absent). Settings: the
 * canonical value. Pairs: "". */
struct dump_row {
	char *key;
	char *val;
};

struct dump_part {
	struct dump_row *rows;
	size_t n, cap;
	bool present;
};

struct dump {
	struct dump_part part[PART_COUNT];
};

static void
dump_add(struct dump_part *p, const char *key, const char *val)
{
	if (p->n == p->cap) {
		p->cap = p->cap == 0 ? 64 : p->cap * 2;
		p->rows = xreallocarray(p->rows, p->cap, sizeof(*p->rows));
	}
	p->rows[p->n].key = xstrdup(key);
	p->rows[p->n].val = val != NULL ? xstrdup(val) : NULL;
	p->n++;
}

static void
dump_free(struct dump *d)
{
	for (int i = 0; i < PART_COUNT; i++) {
		for (size_t j = 0; j < d->part[i].n; j++) {
			free(d->part[i].rows[j].key);
			if (d->part[i].rows[j].val != NULL) {
				explicit_bzero(d->part[i].rows[j].val, strlen(d->part[i].rows[j].val));
				free(d->part[i].rows[j].val);
			}
		}
		free(d->part[i].rows);
	}
	memset(d, 0, sizeof(*d));
}

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dump_row *)a)->key, ((const struct dump_row *)b)->key);
}

static void
dump_sort(struct dump *d)
{
	for (int i = 0; i < PART_COUNT; i++) {
		if (d->part[i].n > 1)
			qsort(d->part[i].rows, d->part[i].n, sizeof(struct dump_row), row_cmp);
	}
}

static const struct dump_row *
dump_find(const struct dump_part *p, const char *key)
{
	struct dump_row k = { (char *)key, NULL };

	return p->n == 0 ? NULL : bsearch(&k, p->rows, p->n, sizeof(*p->rows), row_cmp);
}

/* "a b" → a and b (each at most DIR_MAILBOX_MAX). */
static void
pair_split(const char *key, char *a, char *b)
{
	size_t n = strcspn(key, " ");

	snprintf(a, DIR_MAILBOX_MAX, "%.*s", (int)n, key);
	str_copy(b, key[n] != '\0' ? key + n + 1 : "", DIR_MAILBOX_MAX);
}

/* The value of attribute name= in a row's val ("" when absent) into out. */
static void
attr_get(const char *val, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);

	out[0] = '\0';
	for (const char *p = val != NULL ? val : ""; *p != '\0'; p += strspn(p, " ")) {
		size_t n = strcspn(p, " ");
		if (n > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			snprintf(out, size, "%.*s", (int)(n - nl - 1), p + nl + 1);
			return;
		}
		p += n;
	}
}

static bool
attr_has(const char *val, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = val != NULL ? val : ""; *p != '\0'; p += strspn(p, " ")) {
		size_t n = strcspn(p, " ");
		if (n == wl && strncmp(p, word, n) == 0)
			return true;
		p += n;
	}
	return false;
}

static char *
domain_val(const char *postmaster, const char *bind)
{
	return xasprintf("%s%s%s%s%s", postmaster[0] != '\0' ? "postmaster=" : "", postmaster,
	    postmaster[0] != '\0' && bind[0] != '\0' ? " " : "", bind[0] != '\0' ? "bind=" : "", bind);
}

static char *
user_val(const char *hash, const char *cram)
{
	return xasprintf("%s%s%s%s", hash[0] != '\0' ? "password=" : "no-password", hash,
	    cram[0] != '\0' ? " cram-md5=" : "", cram);
}

/* --- the stored state --- */

struct load_ctx {
	struct directory *dir;
	struct dump_part *part;
};

static void
load_domain(void *arg, const char *name, const char *postmaster)
{
	struct load_ctx *lc = arg;
	char bind[DIR_BIND_LEN];

	if (directory_domain_bind_get(lc->dir, name, bind, sizeof(bind)) < 0)
		bind[0] = '\0';
	char *val = domain_val(postmaster != NULL ? postmaster : "", bind);
	dump_add(lc->part, name, val);
	free(val);
}

static void
load_key(void *arg, const char *a, const char *b)
{
	dump_add(((struct load_ctx *)arg)->part, a, NULL);
}

static void
load_pair(void *arg, const char *a, const char *b)
{
	char *key = xasprintf("%s %s", a, b);

	dump_add(((struct load_ctx *)arg)->part, key, "");
	free(key);
}

/* Fills each user's val with its secrets (secrets) or leaves it NULL. */
static int
load_secrets(struct directory *dir, struct dump_part *users)
{
	char hash[HASH_MAX], cram[128];

	for (size_t i = 0; i < users->n; i++) {
		if (directory_user_credentials(dir, users->rows[i].key, hash, sizeof(hash), cram,
		    sizeof(cram)) != 1)
			return -1;
		users->rows[i].val = user_val(hash, cram);
		explicit_bzero(hash, sizeof(hash));
		explicit_bzero(cram, sizeof(cram));
	}
	return 0;
}

/* Everything stored, every part present. 0, or -1 on a database error. */
static int
dump_load(struct cli *c, struct dump *d, bool secrets)
{
	struct directory *dir = cli_dir(c);
	size_t n;
	const struct setting_def *defs = settings_defs(&n);
	char value[CONFIG_STR_MAX];
	struct load_ctx lc = { dir, NULL };

	memset(d, 0, sizeof(*d));
	for (int i = 0; i < PART_COUNT; i++)
		d->part[i].present = true;
	for (size_t i = 0; i < n; i++) {
		if (settings_get(cli_db(c), defs[i].key, value) < 0)
			return -1;
		dump_add(&d->part[PART_SETTINGS], defs[i].key, value);
	}
	lc.part = &d->part[PART_DOMAINS];
	if (directory_domain_list(dir, load_domain, &lc) < 0)
		return -1;
	lc.part = &d->part[PART_USERS];
	if (directory_user_list(dir, NULL, load_key, &lc) < 0 ||
	    (secrets && load_secrets(dir, lc.part) < 0))
		return -1;
	lc.part = &d->part[PART_ALIASES];
	if (directory_alias_list(dir, NULL, load_pair, &lc) < 0)
		return -1;
	lc.part = &d->part[PART_ACCESS];
	if (directory_access_list(dir, NULL, load_pair, &lc) < 0)
		return -1;
	lc.part = &d->part[PART_LISTS];
	if (directory_list_show(dir, NULL, load_pair, &lc) < 0)
		return -1;
	dump_sort(d);
	return 0;
}

/* --- export --- */

static void
print_text(FILE *out, const struct dump *d, bool secrets)
{
	char a[DIR_MAILBOX_MAX], b[DIR_MAILBOX_MAX];

	fprintf(out, "# tegami settings and directory (config export --all%s)\n"
	    "# read back with: tegami config import --all [--dry-run] FILE\n",
	    secrets ? " --with-secrets" : "");
	for (int i = 0; i < PART_COUNT; i++) {
		const struct dump_part *p = &d->part[i];
		fprintf(out, "%s[%s]\n", i > 0 ? "\n" : "", part_names[i]);
		for (size_t j = 0; j < p->n; j++) {
			const struct dump_row *r = &p->rows[j];
			if (i >= PART_ALIASES) {
				pair_split(r->key, a, b);
				fprintf(out, "%s = %s\n", a, b);
			} else if (r->val == NULL || r->val[0] == '\0') {
				fprintf(out, "%s =\n", r->key);
			} else {
				fprintf(out, "%s = %s\n", r->key, r->val);
			}
		}
	}
}

static json_t *
json_domain(const char *val)
{
	char pm[DIR_MAILBOX_MAX], bind[DIR_BIND_LEN];
	json_t *o = json_object();

	attr_get(val, "postmaster", pm, sizeof(pm));
	attr_get(val, "bind", bind, sizeof(bind));
	if (pm[0] != '\0')
		json_object_set_new(o, "postmaster", json_string(pm));
	if (bind[0] != '\0') {
		json_t *arr = json_array();
		for (char *save = NULL, *t = strtok_r(bind, ",", &save); t != NULL;
		    t = strtok_r(NULL, ",", &save))
			json_array_append_new(arr, json_string(t));
		json_object_set_new(o, "bind", arr);
	}
	return o;
}

static json_t *
json_user(const char *val)
{
	char hash[HASH_MAX], cram[128];
	json_t *o = json_object();

	if (val == NULL)
		return o;
	attr_get(val, "password", hash, sizeof(hash));
	attr_get(val, "cram-md5", cram, sizeof(cram));
	json_object_set_new(o, "password", hash[0] != '\0' ? json_string(hash) : json_null());
	if (cram[0] != '\0')
		json_object_set_new(o, "cram-md5", json_string(cram));
	explicit_bzero(hash, sizeof(hash));
	explicit_bzero(cram, sizeof(cram));
	return o;
}

static json_t *
json_part(const struct dump_part *p, enum part_id id)
{
	char a[DIR_MAILBOX_MAX], b[DIR_MAILBOX_MAX];
	json_t *o = json_object();

	for (size_t j = 0; j < p->n; j++) {
		const struct dump_row *r = &p->rows[j];
		if (id == PART_SETTINGS) {
			json_object_set_new(o, r->key, json_string(r->val));
		} else if (id == PART_DOMAINS) {
			json_object_set_new(o, r->key, json_domain(r->val));
		} else if (id == PART_USERS) {
			json_object_set_new(o, r->key, json_user(r->val));
		} else {
			pair_split(r->key, a, b);
			json_t *arr = json_object_get(o, a);
			if (arr == NULL) {
				arr = json_array();
				json_object_set_new(o, a, arr);
			}
			json_array_append_new(arr, json_string(b));
		}
	}
	return o;
}

static void
print_json(FILE *out, const struct dump *d)
{
	json_t *root = json_object();

	for (int i = 0; i < PART_COUNT; i++)
		json_object_set_new(root, part_names[i], json_part(&d->part[i], (enum part_id)i));
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fprintf(out, "%s\n", text);
	explicit_bzero(text, strlen(text));
	free(text);
	json_decref(root);
}

/* Writes text to path through a temporary file of mode 0600 beside it,
 * renamed over path once complete. 0, or -1 with errno. */
static int
write_file(const char *path, const char *text, size_t len)
{
	char tmp[4200];

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	if (fs_write_all(fd, text, len) < 0 || fsync(fd) < 0 || close(fd) < 0 ||
	    rename(tmp, path) < 0) {
		int err = errno;
		close(fd);
		unlink(tmp);
		errno = err;
		return -1;
	}
	return 0;
}

struct export_opts {
	bool json, secrets;
	const char *output;
};

static int
export_args(int argc, char **argv, struct export_opts *o)
{
	static const char usage[] = "usage: tegami config export --all [--json] "
	    "[--with-secrets] [-o FILE]";

	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0)
			continue;
		else if (strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (strcmp(argv[i], "--with-secrets") == 0)
			o->secrets = true;
		else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) &&
		    i + 1 < argc && o->output == NULL)
			o->output = argv[++i];
		else
			return cli_error(CLI_USAGE, "%s", usage);
	}
	/* Hashes and CRAM-MD5 secrets are password equivalents for an attacker
	 * with time: only into a file nobody else may read. */
	if (o->secrets && o->output == NULL)
		return cli_error(CLI_USAGE, "--with-secrets writes password hashes: give -o FILE "
		    "(written with mode 0600)");
	return CLI_OK;
}

int
cmd_config_export_all(struct cli *c, int argc, char **argv)
{
	struct export_opts o;
	struct dump d;
	char *text = NULL;
	size_t len = 0;
	int rc = export_args(argc, argv, &o);

	if (rc != CLI_OK)
		return rc;
	if (dump_load(c, &d, o.secrets) < 0) {
		dump_free(&d);
		return cli_error(CLI_FAIL, "cannot read the data directory: %s",
		    sqlite3_errmsg(cli_db(c)));
	}
	FILE *out = o.output != NULL ? open_memstream(&text, &len) : stdout;
	if (out == NULL) {
		dump_free(&d);
		return cli_error(CLI_FAIL, "out of memory");
	}
	if (o.json)
		print_json(out, &d);
	else
		print_text(out, &d, o.secrets);
	dump_free(&d);
	if (o.output == NULL)
		return CLI_OK;
	fclose(out);
	cli_as_invoker(c); /* the file is the invoker's, as a backup is */
	int w = write_file(o.output, text, len);
	int err = errno;
	cli_as_owner(c);
	explicit_bzero(text, len);
	free(text);
	if (w < 0)
		return cli_error(CLI_FAIL, "cannot write %s: %s", o.output, strerror(err));
	printf("exported to %s (mode 0600)%s\n", o.output,
	    o.secrets ? ", with password hashes and CRAM-MD5 secrets" : "");
	return CLI_OK;
}

/* --- import: reading and checking --- */

/* "local@domain" of arg, lower case, into out (DIR_MAILBOX_MAX). With
 * strict, the local part must be one the admin may create (a path). */
static bool
mailbox_canon(const char *arg, char *out, bool strict)
{
	struct mail_addr a;
	const char *error = "";

	if (addr_parse_mailbox(arg, &a, &error) < 0 || a.domain[0] == '[')
		return false;
	str_lower(a.local);
	str_lower(a.domain);
	if (strict && !directory_local_part_valid(a.local))
		return false;
	snprintf(out, DIR_MAILBOX_MAX, "%s@%s", a.local, a.domain);
	return true;
}

static bool
hex_lower(char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (char *p = s; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	}
	return true;
}

/* A crypt(3) string as tegami stores it: "$id$...", printable, no blanks. */
static bool
hash_valid(const char *h)
{
	if (h[0] != '$' || strlen(h) >= HASH_MAX)
		return false;
	for (const char *p = h; *p != '\0'; p++) {
		if (*p <= ' ' || *p > '~')
			return false;
	}
	return true;
}

/* Canonical user val from the file's ("" → NULL). NULL with *why set. */
static char *
user_val_parse(const char *val, bool *none_r, const char **why)
{
	char hash[HASH_MAX] = "", cram[128] = "", word[HASH_MAX + 16];
	bool nopw = false;

	*none_r = val[0] == '\0';
	for (const char *p = val + strspn(val, " "); *p != '\0'; p += strspn(p, " ")) {
		size_t n = strcspn(p, " ");
		if (n >= sizeof(word)) {
			*why = "value too long";
			return NULL;
		}
		snprintf(word, sizeof(word), "%.*s", (int)n, p);
		p += n;
		if (strcmp(word, "no-password") == 0 && !nopw && hash[0] == '\0') {
			nopw = true;
		} else if (strncmp(word, "password=", 9) == 0 && !nopw && hash[0] == '\0' &&
		    hash_valid(word + 9)) {
			str_copy(hash, word + 9, sizeof(hash));
		} else if (strncmp(word, "cram-md5=", 9) == 0 && cram[0] == '\0') {
			str_copy(cram, word + 9, sizeof(cram));
			if (!hex_lower(cram, CRAM_MD5_SECRET_LEN)) {
				*why = "cram-md5= needs the 64 hex digits tegami stores";
				return NULL;
			}
		} else {
			*why = "expected password=HASH or no-password, and optionally cram-md5=SECRET";
			return NULL;
		}
	}
	if (*none_r)
		return NULL;
	if (!nopw && hash[0] == '\0') {
		*why = "expected password=HASH or no-password";
		return NULL;
	}
	char *out = user_val(hash, cram);
	explicit_bzero(hash, sizeof(hash));
	explicit_bzero(word, sizeof(word));
	return out;
}

/* Canonical domain val from "postmaster=A bind=B,C". NULL with *why set. */
static char *
domain_val_parse(const char *val, const char **why)
{
	char pm[DIR_MAILBOX_MAX] = "", bind[DIR_BIND_LEN] = "", word[DIR_BIND_LEN + 16];

	for (const char *p = val + strspn(val, " "); *p != '\0'; p += strspn(p, " ")) {
		size_t n = strcspn(p, " ");
		snprintf(word, sizeof(word), "%.*s", (int)(n < sizeof(word) ? n : sizeof(word) - 1), p);
		p += n;
		if (strncmp(word, "postmaster=", 11) == 0 && pm[0] == '\0') {
			if (!mailbox_canon(word + 11, pm, false)) {
				*why = "postmaster= needs an address";
				return NULL;
			}
		} else if (strncmp(word, "bind=", 5) == 0 && bind[0] == '\0') {
			if (directory_bind_normalize(word + 5, bind, sizeof(bind), why) < 0)
				return NULL;
		} else {
			*why = "expected postmaster=ADDRESS and/or bind=ADDR[,ADDR...]";
			return NULL;
		}
	}
	return domain_val(pm, bind);
}

/* One pair: its canonical "a b" key into out. */
static bool
pair_canon(enum part_id id, const char *a, const char *b, char *out, size_t size,
    const char **why)
{
	char ca[DIR_MAILBOX_MAX], cb[DIR_MAILBOX_MAX];
	bool addr_b = id == PART_ALIASES || (id == PART_ACCESS && strchr(b, '@') != NULL) ||
	    (id == PART_LISTS && directory_list_holds_addresses(a));

	*why = "not an address";
	if (id == PART_ACCESS && strcmp(a, "smtp") != 0 && strcmp(a, "submission") != 0 &&
	    strcmp(a, "smtps") != 0) {
		*why = "not a listener (smtp, submission or smtps)";
		return false;
	}
	if (id == PART_LISTS && !directory_list_name_valid(a)) {
		*why = "not a list (trusted, exempt, accept, smtp-users, relay-domains, "
		    "relay-networks or refused)";
		return false;
	}
	if (id == PART_ALIASES ? !mailbox_canon(a, ca, false) : !str_copy(ca, a, sizeof(ca)))
		return false;
	if (addr_b && !mailbox_canon(b, cb, false))
		return false;
	if (!addr_b && id == PART_LISTS && directory_list_holds_domains(a)) {
		*why = "not a domain name";
		if (!addr_domain_valid(b) || !str_copy(cb, b, sizeof(cb)))
			return false;
		str_lower(cb);
	} else if (!addr_b) {
		*why = "not an IP address or CIDR range";
		if (!netaddr_cidr_valid(b) || !str_copy(cb, b, sizeof(cb)))
			return false;
		str_lower(cb);
	}
	if (id == PART_ALIASES && strcmp(ca, cb) == 0) {
		*why = "an alias cannot point to itself";
		return false;
	}
	snprintf(out, size, "%s %s", ca, cb);
	return true;
}

/* Checks one KEY = VALUE of a part and adds its canonical row (duplicates
 * are found once the part is sorted). CLI_OK, or CLI_USAGE after one line
 * that starts with where. */
static int
part_take(struct dump *d, enum part_id id, const char *key, const char *val, const char *where)
{
	struct dump_part *p = &d->part[id];
	char canon[2 * DIR_MAILBOX_MAX + 2], norm[CONFIG_STR_MAX];
	const char *why = "", *k = canon;
	char *v = NULL;
	bool none = false;

	p->present = true;
	switch (id) {
	case PART_SETTINGS:
		if (cli_setting_check(where, key, val, &k, norm) != CLI_OK)
			return CLI_USAGE;
		v = xstrdup(norm);
		break;
	case PART_DOMAINS:
		if (!addr_domain_valid(key) || !str_copy(canon, key, sizeof(canon)))
			return cli_error(CLI_USAGE, "%s'%s' is not a valid domain name", where, key);
		str_lower(canon);
		if ((v = domain_val_parse(val, &why)) == NULL)
			return cli_error(CLI_USAGE, "%sdomain %s: %s", where, key, why);
		break;
	case PART_USERS:
		if (!mailbox_canon(key, canon, true))
			return cli_error(CLI_USAGE, "%s'%s' is not a valid mailbox address", where, key);
		if ((v = user_val_parse(val, &none, &why)) == NULL && !none)
			return cli_error(CLI_USAGE, "%suser %s: %s", where, key, why);
		break;
	default:
		if (!pair_canon(id, key, val, canon, sizeof(canon), &why))
			return cli_error(CLI_USAGE, "%s%s = %s: %s", where, key, val, why);
		v = xstrdup("");
		break;
	}
	dump_add(p, k, v);
	free(v);
	return CLI_OK;
}

/* Sorts the file's rows; the same pair twice is the pair once, anything
 * else named twice is an error. CLI_OK or CLI_USAGE. */
static int
dump_settle(struct dump *d, const char *file)
{
	dump_sort(d);
	for (int i = 0; i < PART_COUNT; i++) {
		struct dump_part *p = &d->part[i];
		size_t o = 0;
		for (size_t j = 0; j < p->n; j++) {
			if (o > 0 && strcmp(p->rows[o - 1].key, p->rows[j].key) == 0) {
				if (i < PART_ALIASES)
					return cli_error(CLI_USAGE, "%s: %s appears twice in [%s]", file,
					    p->rows[j].key, part_names[i]);
				free(p->rows[j].key);
				free(p->rows[j].val);
				continue;
			}
			p->rows[o++] = p->rows[j];
		}
		p->n = o;
	}
	return CLI_OK;
}

static int
part_by_name(const char *name, size_t len)
{
	for (int i = 0; i < PART_COUNT; i++) {
		if (strlen(part_names[i]) == len && strncmp(part_names[i], name, len) == 0)
			return i;
	}
	return -1;
}

static char *
trim(char *s)
{
	s += strspn(s, " \t");
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* The text form: "[part]" headers, "KEY = VALUE" lines, "#" comments;
 * lines before the first header are settings. */
static int
parse_text(char *text, const char *file, struct dump *d)
{
	enum part_id part = PART_SETTINGS;
	size_t lineno = 0;
	char where[4200];

	for (char *line = text, *next; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		char *p = trim(line);
		snprintf(where, sizeof(where), "%s line %zu: ", file, lineno);
		if (*p == '\0' || *p == '#')
			continue;
		if (*p == '[') {
			size_t n = strlen(p);
			int id = p[n - 1] == ']' ? part_by_name(p + 1, n - 2) : -1;
			if (id < 0)
				return cli_error(CLI_USAGE, "%sunknown part %s (settings, domains, users, "
				    "aliases, access, lists)", where, p);
			if (d->part[id].present)
				return cli_error(CLI_USAGE, "%s[%s] appears twice", where, part_names[id]);
			part = (enum part_id)id;
			d->part[id].present = true;
			continue;
		}
		char *eq = strchr(p, '=');
		if (eq == NULL)
			return cli_error(CLI_USAGE, "%sexpected KEY = VALUE", where);
		*eq = '\0';
		if (part_take(d, part, trim(p), trim(eq + 1), where) != CLI_OK)
			return CLI_USAGE;
	}
	return CLI_OK;
}

/* JSON values as the text form writes them: a string, or an array of
 * strings joined with commas (bind). NULL when neither. */
static char *
json_text(json_t *v)
{
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (!json_is_array(v))
		return NULL;
	size_t i, len = 0;
	json_t *e;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e))
			return NULL;
		len += strlen(json_string_value(e)) + 1;
	}
	char *out = xcalloc(1, len + 1);
	json_array_foreach(v, i, e)
		snprintf(out + strlen(out), len + 1 - strlen(out), "%s%s", i > 0 ? "," : "",
		    json_string_value(e));
	return out;
}

/* {"postmaster": A, "bind": [B, C]} or, for users, {"password": H|null,
 * "cram-md5": X}: the attribute string of the text form. */
static char *
json_attrs(json_t *o, enum part_id id, const char **why)
{
	const char *name;
	json_t *v;
	char *out = xstrdup("");

	*why = id == PART_DOMAINS ? "expected {\"postmaster\": ADDRESS, \"bind\": [ADDR, ...]}" :
	    "expected {\"password\": HASH or null, \"cram-md5\": SECRET} or {}";
	if (!json_is_object(o)) {
		free(out);
		return NULL;
	}
	json_object_foreach(o, name, v) {
		bool known = id == PART_DOMAINS ? strcmp(name, "postmaster") == 0 ||
		    strcmp(name, "bind") == 0 : strcmp(name, "password") == 0 ||
		    strcmp(name, "cram-md5") == 0;
		char *t = id == PART_USERS && strcmp(name, "password") == 0 && json_is_null(v) ?
		    xstrdup("") : json_text(v);
		if (!known || t == NULL) {
			free(t);
			free(out);
			return NULL;
		}
		char *joined = id == PART_USERS && strcmp(name, "password") == 0 && t[0] == '\0' ?
		    xasprintf("%s%sno-password", out, out[0] != '\0' ? " " : "") :
		    xasprintf("%s%s%s=%s", out, out[0] != '\0' ? " " : "", name, t);
		free(t);
		free(out);
		out = joined;
	}
	return out;
}

static int
json_take_part(struct dump *d, enum part_id id, json_t *obj, const char *file)
{
	const char *key, *why = "";
	json_t *v;
	char where[4200];

	d->part[id].present = true;
	if (!json_is_object(obj))
		return cli_error(CLI_USAGE, "%s: \"%s\" must be an object", file, part_names[id]);
	json_object_foreach(obj, key, v) {
		snprintf(where, sizeof(where), "%s: %s \"%s\": ", file, part_names[id], key);
		char *t = id == PART_SETTINGS ? (json_is_string(v) ? json_text(v) : NULL) :
		    id <= PART_USERS ? json_attrs(v, id, &why) : NULL;
		if (id >= PART_ALIASES) {
			size_t i;
			json_t *e;
			if (json_is_string(v))
				v = json_pack("[O]", v);
			else
				json_incref(v);
			if (!json_is_array(v)) {
				json_decref(v);
				return cli_error(CLI_USAGE, "%sexpected an array of strings", where);
			}
			json_array_foreach(v, i, e) {
				if (!json_is_string(e) ||
				    part_take(d, id, key, json_string_value(e), where) != CLI_OK) {
					json_decref(v);
					return json_is_string(e) ? CLI_USAGE :
					    cli_error(CLI_USAGE, "%sexpected an array of strings", where);
				}
			}
			json_decref(v);
			continue;
		}
		if (t == NULL)
			return cli_error(CLI_USAGE, "%s%s", where, id == PART_SETTINGS ?
			    "value must be a string" : why);
		int rc = part_take(d, id, key, t, where);
		free(t);
		if (rc != CLI_OK)
			return rc;
	}
	return CLI_OK;
}

static int
parse_json(const char *text, const char *file, struct dump *d)
{
	json_error_t jerr;
	json_t *root = json_loads(text, 0, &jerr);
	const char *key;
	json_t *v;
	int rc = CLI_OK;

	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return cli_error(CLI_USAGE, "%s: not a JSON object (line %d: %s)", file, jerr.line,
		    root == NULL ? jerr.text : "an object of parts expected");
	}
	json_object_foreach(root, key, v) {
		int id = part_by_name(key, strlen(key));
		if (id < 0) {
			rc = cli_error(CLI_USAGE, "%s: unknown part \"%s\" (settings, domains, users, "
			    "aliases, access, lists)", file, key);
			break;
		}
		if ((rc = json_take_part(d, (enum part_id)id, v, file)) != CLI_OK)
			break;
	}
	json_decref(root);
	return rc;
}

/* --- import: the rules across parts, on the state the import leaves --- */

static const char *
domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

static bool
has_domain(const struct dump_part *domains, const char *domain)
{
	return dump_find(domains, domain) != NULL;
}

/* Without its own [aliases], an import that removes a domain removes the
 * domain's aliases as `domain del` does: the part is then the stored one
 * without them. */
static void
aliases_follow_domains(struct dump *want, const struct dump *cur)
{
	char a[DIR_MAILBOX_MAX], b[DIR_MAILBOX_MAX];
	const struct dump_part *domains = &want->part[PART_DOMAINS];

	if (want->part[PART_ALIASES].present || !domains->present)
		return;
	want->part[PART_ALIASES].present = true;
	for (size_t i = 0; i < cur->part[PART_ALIASES].n; i++) {
		pair_split(cur->part[PART_ALIASES].rows[i].key, a, b);
		if (has_domain(domains, domain_of(a)) && has_domain(domains, domain_of(b)))
			dump_add(&want->part[PART_ALIASES], cur->part[PART_ALIASES].rows[i].key, "");
	}
}

/* Users and aliases must live in domains the import leaves; an alias has
 * at most DIR_TARGETS_MAX targets. CLI_OK or CLI_USAGE. */
static int
check_across(const struct dump *want, const struct dump *cur, const char *file)
{
	const struct dump_part *domains = want->part[PART_DOMAINS].present ?
	    &want->part[PART_DOMAINS] : &cur->part[PART_DOMAINS];
	const struct dump_part *users = want->part[PART_USERS].present ?
	    &want->part[PART_USERS] : &cur->part[PART_USERS];
	const struct dump_part *aliases = &want->part[PART_ALIASES];
	char a[DIR_MAILBOX_MAX], b[DIR_MAILBOX_MAX], prev[DIR_MAILBOX_MAX] = "";
	size_t targets = 0;

	for (size_t i = 0; i < users->n; i++) {
		if (!has_domain(domains, domain_of(users->rows[i].key)))
			return cli_error(CLI_USAGE, "%s: user %s: %s is not among the domains%s", file,
			    users->rows[i].key, domain_of(users->rows[i].key),
			    users == &cur->part[PART_USERS] ? " (the file has no users part to remove "
			    "it)" : "");
	}
	for (size_t i = 0; aliases->present && i < aliases->n; i++) {
		pair_split(aliases->rows[i].key, a, b);
		if (!has_domain(domains, domain_of(a)) || !has_domain(domains, domain_of(b)))
			return cli_error(CLI_USAGE, "%s: alias %s -> %s: %s is not among the domains",
			    file, a, b, has_domain(domains, domain_of(a)) ? domain_of(b) : domain_of(a));
		targets = strcmp(prev, a) == 0 ? targets + 1 : 1;
		str_copy(prev, a, sizeof(prev));
		if (targets > DIR_TARGETS_MAX)
			return cli_error(CLI_USAGE, "%s: alias %s has more than %d targets", file, a,
			    DIR_TARGETS_MAX);
	}
	return CLI_OK;
}

/* --- import: what changes, and changing it --- */

/* Applies one change to the directory (inside the import's transaction).
 * op: '-' remove, '+' add, '~' change (old is the stored row). */
static int
apply_row(struct cli *c, enum part_id id, char op, const struct dump_row *old,
    const struct dump_row *r, char **error_r)
{
	struct directory *dir = cli_dir(c);
	char a[DIR_BIND_LEN], b[DIR_BIND_LEN];
	int rc = 0;

	switch (id) {
	case PART_SETTINGS:
		return settings_store(cli_db(c), r->key, r->val, error_r);
	case PART_DOMAINS:
		if (op == '-')
			return directory_domain_del(dir, r->key, error_r);
		attr_get(r->val, "postmaster", a, sizeof(a));
		attr_get(r->val, "bind", b, sizeof(b));
		if (op == '+')
			rc = directory_domain_add(dir, r->key, a[0] != '\0' ? a : NULL, error_r);
		else
			rc = directory_domain_set_postmaster(dir, r->key, a[0] != '\0' ? a : NULL, error_r);
		return rc < 0 ? -1 : directory_domain_set_bind(dir, r->key, b[0] != '\0' ? b : NULL,
		    error_r);
	case PART_USERS: {
		if (op == '-')
			return directory_user_del(dir, r->key, error_r);
		char hash[HASH_MAX], cram[128];
		attr_get(r->val, "password", hash, sizeof(hash));
		attr_get(r->val, "cram-md5", cram, sizeof(cram));
		const char *h = hash[0] != '\0' ? hash : NULL, *cr = cram[0] != '\0' ? cram : NULL;
		rc = op == '+' ? directory_user_add(dir, r->key, h, cr, error_r) :
		    directory_user_set_password(dir, r->key, h, cr, error_r);
		explicit_bzero(hash, sizeof(hash));
		explicit_bzero(cram, sizeof(cram));
		return rc;
	}
	default:
		pair_split(r->key, a, b);
		if (id == PART_ALIASES)
			return op == '+' ? directory_alias_add(dir, a, b, error_r) :
			    directory_alias_del(dir, a, b, error_r);
		if (id == PART_ACCESS)
			return op == '+' ? directory_access_add(dir, a, b, error_r) :
			    directory_access_del(dir, a, b, error_r);
		return op == '+' ? directory_list_add(dir, a, b, error_r) :
		    directory_list_del(dir, a, b, error_r);
	}
}

/* One line per change; hashes and secrets are never printed. */
static void
show_row(enum part_id id, char op, const struct dump_row *old, const struct dump_row *r)
{
	static const char *const noun[PART_COUNT] = {
		"setting", "domain", "user", "alias", "access", "list",
	};
	char a[DIR_MAILBOX_MAX], b[DIR_MAILBOX_MAX];

	if (id == PART_SETTINGS) {
		printf("~ setting %s: %s -> %s\n", r->key, old->val, r->val);
	} else if (id == PART_DOMAINS) {
		if (op == '~')
			printf("~ domain %s: %s -> %s\n", r->key, old->val[0] != '\0' ? old->val :
			    "(no postmaster target, unbound)", r->val[0] != '\0' ? r->val :
			    "(no postmaster target, unbound)");
		else
			printf("%c domain %s%s%s%s\n", op, r->key, op == '+' && r->val[0] != '\0' ?
			    " (" : "", op == '+' ? r->val : "", op == '+' && r->val[0] != '\0' ? ")" : "");
	} else if (id == PART_USERS) {
		bool pw = attr_has(r->val, "no-password") == false && r->val != NULL;
		bool cram = r->val != NULL && strstr(r->val, "cram-md5=") != NULL;
		if (op == '-')
			printf("- user %s (its Maildir stays on disk)\n", r->key);
		else if (r->val == NULL)
			printf("+ user %s (no password: set one with tegami user passwd)\n", r->key);
		else
			printf("%c user %s: %s%s\n", op, r->key, op == '~' ? "new " : "",
			    pw ? (cram ? "password and CRAM-MD5 secret" : "password, no CRAM-MD5") :
			    "no password");
	} else {
		pair_split(r->key, a, b);
		printf("%c %s %s %s%s\n", op, noun[id], a, id == PART_ALIASES ? "-> " : "", b);
	}
}

/* Walks the stored and the wanted rows of a present part side by side
 * (both sorted): removals with pass 0, additions and changes with pass 1.
 * Shows each change, or applies it (apply). Counts them into *n. 0, or -1
 * with *error_r. */
static int
part_walk(struct cli *c, enum part_id id, const struct dump_part *cur,
    const struct dump_part *want, int pass, bool apply, size_t *n, char **error_r)
{
	size_t i = 0, j = 0;

	while (want->present && (i < cur->n || j < want->n)) {
		int cmp = i == cur->n ? 1 : j == want->n ? -1 :
		    strcmp(cur->rows[i].key, want->rows[j].key);
		const struct dump_row *old = cmp <= 0 ? &cur->rows[i] : NULL;
		const struct dump_row *r = cmp >= 0 ? &want->rows[j] : NULL;
		char op = cmp < 0 ? '-' : cmp > 0 ? '+' : '~';
		i += cmp <= 0;
		j += cmp >= 0;
		/* Settings are never removed; a user without secrets in the file
		 * keeps the stored ones. */
		if ((op == '-' && (id == PART_SETTINGS || pass != 0)) || (op != '-' && pass == 0) ||
		    (op == '~' && (r->val == NULL || strcmp(old->val != NULL ? old->val : "",
		    r->val) == 0)))
			continue;
		(*n)++;
		if (!apply)
			show_row(id, op, old, op == '-' ? old : r);
		else if (apply_row(c, id, op, old, op == '-' ? old : r, error_r) < 0)
			return -1;
	}
	return 0;
}

/* Removals from the last part back, then additions and changes from the
 * first: a domain goes after its users, and comes before them. */
static int
dump_walk(struct cli *c, const struct dump *cur, const struct dump *want, bool apply,
    size_t *n, char **error_r)
{
	*n = 0;
	for (int i = PART_COUNT - 1; i >= 0; i--) {
		if (part_walk(c, (enum part_id)i, &cur->part[i], &want->part[i], 0, apply, n,
		    error_r) < 0)
			return -1;
	}
	for (int i = 0; i < PART_COUNT; i++) {
		if (part_walk(c, (enum part_id)i, &cur->part[i], &want->part[i], 1, apply, n,
		    error_r) < 0)
			return -1;
	}
	return 0;
}

/* All of it in one transaction; the rules across settings see the result.
 * A dry run goes as far and rolls back: it fails where the import would. */
static int
dump_apply(struct cli *c, const struct dump *cur, const struct dump *want, bool dry_run)
{
	struct config cfg;
	char *error = NULL, why[256];
	size_t n;

	if (db_begin(cli_db(c), &error) < 0)
		goto fail;
	if (dump_walk(c, cur, want, true, &n, &error) < 0 || config_load(cli_db(c), &cfg,
	    &error) < 0) {
		db_rollback(cli_db(c));
		goto fail;
	}
	if (config_check(&cfg, why, sizeof(why)) < 0) {
		db_rollback(cli_db(c));
		return cli_error(CLI_USAGE, "refused, nothing changed: %s", why);
	}
	if (dry_run) {
		db_rollback(cli_db(c));
		return CLI_OK;
	}
	if (db_commit(cli_db(c), &error) < 0)
		goto fail;
	return CLI_OK;
fail:
	cli_error(CLI_FAIL, "import failed, nothing changed: %s", error);
	free(error);
	return CLI_FAIL;
}

/* Reads and checks path into want. CLI_OK, or an exit code after one line. */
static int
import_read_all(struct cli *c, const char *path, struct dump *want)
{
	char *text = NULL;
	size_t len;
	int rc;

	cli_as_invoker(c); /* the file and the values, as the invoker (config set) */
	if (fs_read_file(path, IMPORT_ALL_MAX, &text, &len) < 0)
		rc = cli_error(CLI_FAIL, "cannot read %s: %s", path, strerror(errno));
	else if (strlen(text) != len)
		rc = cli_error(CLI_USAGE, "%s: not a text file", path);
	else if (text[strspn(text, " \t\r\n")] == '{')
		rc = parse_json(text, path, want);
	else
		rc = parse_text(text, path, want);
	cli_as_owner(c);
	if (text != NULL) {
		explicit_bzero(text, len);
		free(text);
	}
	return rc == CLI_OK ? dump_settle(want, path) : rc;
}

int
cmd_config_import_all(struct cli *c, int argc, char **argv)
{
	const char *path = NULL;
	bool dry_run = false;
	struct dump cur = { 0 }, want = { 0 };
	size_t n = 0;
	char *error = NULL;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0)
			dry_run = true;
		else if (strcmp(argv[i], "--all") == 0)
			continue;
		else if (path == NULL && argv[i][0] != '-')
			path = argv[i];
		else
			path = ""; /* an unknown option, or a second file */
	}
	if (path == NULL || path[0] == '\0')
		return cli_error(CLI_USAGE, "usage: tegami config import --all [--dry-run] FILE");
	if ((rc = import_read_all(c, path, &want)) != CLI_OK)
		goto out;
	if (dump_load(c, &cur, true) < 0) {
		rc = cli_error(CLI_FAIL, "cannot read the data directory: %s",
		    sqlite3_errmsg(cli_db(c)));
		goto out;
	}
	aliases_follow_domains(&want, &cur);
	dump_sort(&want);
	if ((rc = check_across(&want, &cur, path)) != CLI_OK)
		goto out;
	if ((rc = dump_apply(c, &cur, &want, dry_run)) != CLI_OK)
		goto out;
	(void)dump_walk(c, &cur, &want, false, &n, &error);
	if (n == 0)
		printf("%s: nothing to change\n", path);
	else if (dry_run)
		printf("%zu change(s) from %s; nothing changed (--dry-run)\n", n, path);
	else
		printf("%zu change(s) imported from %s\n", n, path);
out:
	dump_free(&cur);
	dump_free(&want);
	return rc;
}
