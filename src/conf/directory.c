#include "conf/directory.h"

#include <arpa/inet.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/db.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

enum stmt_id {
	ST_DOMAIN_GET,
	ST_USER_EXISTS,
	ST_ALIAS_TARGETS,
	ST_PRIMARY_DOMAIN,
	ST_CREDENTIALS,
	ST_ACCESS_LIST,
	ST_LIST_ENTRIES,
	ST_DOMAIN_BIND,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_DOMAIN_GET] = "SELECT postmaster FROM domains WHERE name = ?",
	[ST_USER_EXISTS] = "SELECT 1 FROM users WHERE address = ?",
	[ST_ALIAS_TARGETS] = "SELECT target FROM aliases WHERE address = ? ORDER BY target",
	[ST_PRIMARY_DOMAIN] = "SELECT name FROM domains ORDER BY rowid LIMIT 1",
	[ST_CREDENTIALS] = "SELECT password, cram_md5 FROM users WHERE address = ?",
	[ST_ACCESS_LIST] = "SELECT entry FROM access WHERE listener = ?",
	[ST_LIST_ENTRIES] = "SELECT entry FROM lists WHERE name = ?",
	[ST_DOMAIN_BIND] = "SELECT bind FROM domains WHERE name = ?",
};

struct directory {
	struct sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

struct directory *
directory_create(struct sqlite3 *db)
{
	struct directory *dir = xcalloc(1, sizeof(*dir));

	dir->db = db;
	for (int i = 0; i < ST_COUNT; i++)
		dir->st[i] = db_prepare(db, stmt_sql[i]);
	return dir;
}

void
directory_destroy(struct directory **dirp)
{
	struct directory *dir = *dirp;

	if (dir == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(dir->st[i]);
	free(dir);
	*dirp = NULL;
}

struct sqlite3 *
directory_db(struct directory *dir)
{
	return dir->db;
}

static sqlite3_stmt *
stmt_bind1(struct directory *dir, enum stmt_id id, const char *text)
{
	sqlite3_stmt *st = dir->st[id];

	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
	return st;
}

/* 1 = found (postmaster target copied, "" when default), 0 = none, -1 error */
static int
domain_get(struct directory *dir, const char *domain, char *postmaster, size_t size)
{
	sqlite3_stmt *st = stmt_bind1(dir, ST_DOMAIN_GET, domain);
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		const char *pm = (const char *)sqlite3_column_text(st, 0);
		if (postmaster != NULL)
			str_copy(postmaster, pm != NULL ? pm : "", size);
		sqlite3_reset(st);
		return 1;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

bool
directory_domain_exists(struct directory *dir, const char *domain)
{
	return domain_get(dir, domain, NULL, 0) == 1;
}

static int
user_exists(struct directory *dir, const char *mailbox)
{
	sqlite3_stmt *st = stmt_bind1(dir, ST_USER_EXISTS, mailbox);
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

bool
directory_user_exists(struct directory *dir, const char *mailbox)
{
	return user_exists(dir, mailbox) == 1;
}

static void
targets_add(struct dir_targets *out, const char *mailbox)
{
	char lower[DIR_MAILBOX_MAX];

	str_copy(lower, mailbox, sizeof(lower));
	str_lower(lower);
	for (size_t i = 0; i < out->n; i++) {
		if (strcmp(out->mailbox[i], lower) == 0)
			return;
	}
	if (out->n < DIR_TARGETS_MAX)
		memcpy(out->mailbox[out->n++], lower, sizeof(lower));
}

static enum dir_result resolve_mailbox(struct directory *dir, const char *local,
    const char *domain, int depth, struct dir_targets *out);

/* Expands alias targets; 1 if the address is an alias, 0 if not, -1 error. */
static int
resolve_alias(struct directory *dir, const char *mailbox, int depth, struct dir_targets *out)
{
	char targets[DIR_TARGETS_MAX][DIR_MAILBOX_MAX];
	size_t n = 0;
	sqlite3_stmt *st = stmt_bind1(dir, ST_ALIAS_TARGETS, mailbox);
	int rc;

	/* Copy the rows first: recursion resets the shared statement. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < DIR_TARGETS_MAX)
		str_copy(targets[n++], (const char *)sqlite3_column_text(st, 0), DIR_MAILBOX_MAX);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char *at = strrchr(targets[i], '@');
		if (at == NULL)
			continue;
		*at = '\0';
		if (resolve_mailbox(dir, targets[i], at + 1, depth + 1, out) == DIR_TEMPFAIL)
			return -1;
	}
	return 1;
}

static enum dir_result
resolve_mailbox(struct directory *dir, const char *local, const char *domain, int depth,
    struct dir_targets *out)
{
	char postmaster[DIR_MAILBOX_MAX];
	char mailbox[DIR_MAILBOX_MAX];

	if (depth > DIR_ALIAS_DEPTH)
		return DIR_UNKNOWN;
	int d = domain_get(dir, domain, postmaster, sizeof(postmaster));
	if (d < 0)
		return DIR_TEMPFAIL;
	if (d == 0)
		return DIR_NOT_LOCAL;
	snprintf(mailbox, sizeof(mailbox), "%s@%s", local, domain);
	if (strcasecmp(local, "postmaster") == 0 && postmaster[0] != '\0' &&
	    strcasecmp(postmaster, mailbox) != 0) {
		char *at = strrchr(postmaster, '@');
		if (at != NULL) {
			*at = '\0';
			enum dir_result r = resolve_mailbox(dir, postmaster, at + 1, depth + 1, out);
			if (r == DIR_LOCAL || r == DIR_TEMPFAIL)
				return r;
			/* The configured target is gone: RFC 5321 §4.5.1 still wants
			 * postmaster accepted, so the domain's own mailbox takes it. */
			targets_add(out, mailbox);
			return DIR_LOCAL;
		}
	}
	size_t before = out->n;
	int a = resolve_alias(dir, mailbox, depth, out);
	if (a < 0)
		return DIR_TEMPFAIL;
	if (a == 1)
		return out->n > before ? DIR_LOCAL : DIR_UNKNOWN;
	int u = user_exists(dir, mailbox);
	if (u < 0)
		return DIR_TEMPFAIL;
	/* Every domain has a postmaster mailbox even without a user row. */
	if (u == 1 || strcasecmp(local, "postmaster") == 0) {
		targets_add(out, mailbox);
		return DIR_LOCAL;
	}
	return DIR_UNKNOWN;
}

/* "<Postmaster>" without a domain goes to the postmaster of the first
 * local domain (the one the data directory was created with). */
static enum dir_result
resolve_bare_postmaster(struct directory *dir, struct dir_targets *out)
{
	char domain[ADDR_DOMAIN_MAX + 1];
	sqlite3_stmt *st = dir->st[ST_PRIMARY_DOMAIN];

	sqlite3_reset(st);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? DIR_UNKNOWN : DIR_TEMPFAIL;
	}
	str_copy(domain, (const char *)sqlite3_column_text(st, 0), sizeof(domain));
	sqlite3_reset(st);
	return resolve_mailbox(dir, "postmaster", domain, 0, out);
}

int
directory_domain_bind_get(struct directory *dir, const char *domain, char *buf, size_t size)
{
	sqlite3_stmt *st = stmt_bind1(dir, ST_DOMAIN_BIND, domain);
	int rc = sqlite3_step(st);

	buf[0] = '\0';
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		str_copy(buf, (const char *)sqlite3_column_text(st, 0), size);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* S4: the domain is bound to listen addresses and local_ip is none of
 * them. 1 yes, 0 no (unbound, not ours, or no address to check), -1 error. */
static int
bound_elsewhere(struct directory *dir, const char *domain, const char *local_ip)
{
	char bind[DIR_BIND_LEN];

	if (local_ip == NULL || local_ip[0] == '\0')
		return 0;
	int rc = directory_domain_bind_get(dir, domain, bind, sizeof(bind));
	if (rc <= 0)
		return rc;
	return bind[0] != '\0' && !netaddr_ip_in_cidr_list(local_ip, bind);
}

enum dir_result
directory_resolve_at(struct directory *dir, const struct mail_addr *rcpt, bool percent_routing,
    const char *local_ip, struct dir_targets *out)
{
	out->n = 0;
	if (rcpt->domain[0] == '\0') /* bare <Postmaster>: RFC 5321 §4.5.1 */
		return resolve_bare_postmaster(dir, out);
	if (rcpt->domain[0] == '[')  /* address literals are never local here */
		return DIR_NOT_LOCAL;
	int b = bound_elsewhere(dir, rcpt->domain, local_ip);
	if (b != 0)
		return b < 0 ? DIR_TEMPFAIL : DIR_NOT_LOCAL;
	const char *pct = strrchr(rcpt->local, '%');
	if (percent_routing && pct != NULL && directory_domain_exists(dir, rcpt->domain)) {
		if (pct[1] == '\0' || pct == rcpt->local)
			return DIR_UNKNOWN;
		char local[ADDR_LOCAL_MAX + 1];
		str_copy(local, rcpt->local, sizeof(local));
		local[pct - rcpt->local] = '\0';
		/* The routed-to host is a recipient domain too. */
		if ((b = bound_elsewhere(dir, pct + 1, local_ip)) != 0)
			return b < 0 ? DIR_TEMPFAIL : DIR_NOT_LOCAL;
		return resolve_mailbox(dir, local, pct + 1, 0, out);
	}
	return resolve_mailbox(dir, rcpt->local, rcpt->domain, 0, out);
}

enum dir_result
directory_resolve(struct directory *dir, const struct mail_addr *rcpt, bool percent_routing,
    struct dir_targets *out)
{
	return directory_resolve_at(dir, rcpt, percent_routing, NULL, out);
}

static bool
role_local_part(const char *local, size_t len)
{
	static const char *const roles[] = { "postmaster", "abuse", "webmaster" };

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		if (strlen(roles[i]) == len && strncasecmp(local, roles[i], len) == 0)
			return true;
	}
	return false;
}

/* 1 when mailbox is a role address or an alias leading to one, 0 when
 * not, -1 on a database error. */
static int
role_address(struct directory *dir, const char *mailbox, int depth)
{
	char targets[DIR_TARGETS_MAX][DIR_MAILBOX_MAX];
	size_t n = 0;
	const char *at = strrchr(mailbox, '@');
	int rc;

	if (at == NULL || depth > DIR_ALIAS_DEPTH)
		return 0;
	int d = domain_get(dir, at + 1, NULL, 0);
	if (d <= 0)
		return d;
	if (role_local_part(mailbox, (size_t)(at - mailbox)))
		return 1;
	/* Copy the rows first: recursion resets the shared statement. */
	sqlite3_stmt *st = stmt_bind1(dir, ST_ALIAS_TARGETS, mailbox);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < DIR_TARGETS_MAX)
		str_copy(targets[n++], (const char *)sqlite3_column_text(st, 0), DIR_MAILBOX_MAX);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int r = role_address(dir, targets[i], depth + 1);
		if (r != 0)
			return r;
	}
	return 0;
}

bool
directory_role_address(struct directory *dir, const char *mailbox)
{
	return role_address(dir, mailbox, 0) != 0;
}

bool
directory_local_part_valid(const char *local)
{
	size_t n = strlen(local);

	if (n == 0 || n > ADDR_LOCAL_MAX || local[0] == '.' || local[n - 1] == '.' ||
	    strstr(local, "..") != NULL)
		return false;
	for (const char *p = local; *p != '\0'; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("._+-", c) != NULL))
			return false;
	}
	return true;
}

/* ---- admin operations ---- */

int list_rows(struct directory *dir, const char *sql, const char *arg, directory_row_fn *fn,
    void *fnarg);

static int
exec_bound(struct directory *dir, const char *sql, const char *a, const char *b,
    int *changes_r, char **error_r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(dir->db, sql, -1, &st, NULL) != SQLITE_OK) {
		*error_r = xstrdup(sqlite3_errmsg(dir->db));
		return -1;
	}
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xstrdup(sqlite3_errmsg(dir->db));
		return -1;
	}
	if (changes_r != NULL)
		*changes_r = sqlite3_changes(dir->db);
	return 0;
}

static int
count_rows(struct directory *dir, const char *sql, const char *a)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (sqlite3_prepare_v2(dir->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Runs a statement that must change a row. When none changed, *error_r
 * becomes missing (which this function owns in every case). 0 or -1. */
static int
exec_changing(struct directory *dir, const char *sql, const char *a, const char *b,
    char *missing, char **error_r)
{
	int changes = 0;

	if (exec_bound(dir, sql, a, b, &changes, error_r) < 0) {
		free(missing);
		return -1;
	}
	if (changes == 0) {
		*error_r = missing;
		return -1;
	}
	free(missing);
	return 0;
}

/* A change joins the caller's transaction when one is open (so that an
 * import makes many changes in one), else it is a transaction of its own. */
static int
txn_begin(struct directory *dir, bool *own_r, char **error_r)
{
	*own_r = sqlite3_get_autocommit(dir->db) != 0;
	return *own_r ? db_begin(dir->db, error_r) : 0;
}

static int
txn_commit(struct directory *dir, bool own, char **error_r)
{
	return own ? db_commit(dir->db, error_r) : 0;
}

static void
txn_rollback(struct directory *dir, bool own)
{
	if (own)
		db_rollback(dir->db);
}

int
directory_domain_add(struct directory *dir, const char *domain, const char *postmaster,
    char **error_r)
{
	if (directory_domain_exists(dir, domain)) {
		*error_r = xasprintf("domain %s already exists", domain);
		return -1;
	}
	return exec_bound(dir, "INSERT INTO domains(name, postmaster) VALUES(lower(?), ?)",
	    domain, postmaster, NULL, error_r);
}

/* One address of a bind list into out, canonical. 0 or -1. */
static int
bind_item(const char *item, char *out, size_t size)
{
	unsigned char raw[16];
	int family = strchr(item, ':') != NULL ? AF_INET6 : AF_INET;

	if (inet_pton(family, item, raw) != 1 || inet_ntop(family, raw, out, (socklen_t)size) == NULL)
		return -1;
	return 0;
}

int
directory_bind_normalize(const char *in, char *out, size_t size, const char **error_r)
{
	char item[64], canon[INET6_ADDRSTRLEN];
	size_t count = 0, o = 0;

	out[0] = '\0';
	for (const char *p = in + strspn(in, " "); ; p += strspn(p, " ")) {
		size_t n = strcspn(p, ",");
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n == 0 || n >= sizeof(item)) {
			*error_r = "expected ADDRESS[,ADDRESS...] (IP addresses of listeners)";
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (bind_item(item, canon, sizeof(canon)) < 0) {
			*error_r = "not an IP address (a listen address, without port or range)";
			return -1;
		}
		if (!netaddr_ip_in_cidr_list(canon, out)) {
			if (++count > DIR_BIND_MAX || o + strlen(canon) + 2 > size) {
				*error_r = "too many addresses";
				return -1;
			}
			o += (size_t)snprintf(out + o, size - o, "%s%s", o > 0 ? "," : "", canon);
		}
		p += strcspn(p, ",");
		if (*p == '\0')
			return 0;
		p++;
	}
}

int
directory_domain_set_postmaster(struct directory *dir, const char *domain,
    const char *postmaster, char **error_r)
{
	return exec_changing(dir, "UPDATE domains SET postmaster = ?2 WHERE name = ?1", domain,
	    postmaster, xasprintf("no such domain: %s", domain), error_r);
}

int
directory_domain_set_bind(struct directory *dir, const char *domain, const char *bind,
    char **error_r)
{
	return exec_changing(dir, "UPDATE domains SET bind = ?2 WHERE name = ?1", domain, bind,
	    xasprintf("no such domain: %s", domain), error_r);
}

int
directory_domain_del(struct directory *dir, const char *domain, char **error_r)
{
	int changes = 0;
	int users = count_rows(dir, "SELECT count(*) FROM users WHERE domain = ?", domain);

	if (users > 0) {
		*error_r = xasprintf("domain %s still has %d user(s); delete them first", domain, users);
		return -1;
	}
	bool own;
	if (txn_begin(dir, &own, error_r) < 0)
		return -1;
	if (exec_bound(dir, "DELETE FROM aliases WHERE address LIKE '%@' || ?", domain, NULL,
	    NULL, error_r) < 0 ||
	    exec_bound(dir, "DELETE FROM domains WHERE name = ?", domain, NULL, &changes, error_r) < 0) {
		txn_rollback(dir, own);
		return -1;
	}
	if (changes == 0) {
		txn_rollback(dir, own);
		*error_r = xasprintf("no such domain: %s", domain);
		return -1;
	}
	return txn_commit(dir, own, error_r);
}

int
directory_user_add(struct directory *dir, const char *address, const char *hash,
    const char *cram, char **error_r)
{
	const char *at = strrchr(address, '@');

	if (at == NULL || !directory_domain_exists(dir, at + 1)) {
		*error_r = xasprintf("%s is not in a local domain (add it with: tegami domain add %s)",
		    address, at != NULL ? at + 1 : "DOMAIN");
		return -1;
	}
	if (user_exists(dir, address) == 1) {
		*error_r = xasprintf("user %s already exists", address);
		return -1;
	}
	bool own;
	if (txn_begin(dir, &own, error_r) < 0)
		return -1;
	if (exec_bound(dir, "INSERT INTO users(address, domain, password, created) "
	    "VALUES(lower(?), lower(substr(?1, instr(?1, '@') + 1)), ?2, ?3)",
	    address, hash, NULL, error_r) < 0 ||
	    exec_bound(dir, "UPDATE users SET cram_md5 = ?2 WHERE address = ?1", address, cram,
	    NULL, error_r) < 0) {
		txn_rollback(dir, own);
		return -1;
	}
	return txn_commit(dir, own, error_r);
}

int
directory_user_del(struct directory *dir, const char *address, char **error_r)
{
	return exec_changing(dir, "DELETE FROM users WHERE address = ?", address, NULL,
	    xasprintf("no such user: %s", address), error_r);
}

int
directory_user_set_cram(struct directory *dir, const char *address, const char *cram,
    char **error_r)
{
	if (!directory_user_exists(dir, address)) {
		*error_r = xasprintf("no such user: %s", address);
		return -1;
	}
	return exec_bound(dir, "UPDATE users SET cram_md5 = ?2 WHERE address = ?1", address, cram,
	    NULL, error_r);
}

int
directory_user_set_password(struct directory *dir, const char *address, const char *hash,
    const char *cram, char **error_r)
{
	int changes = 0;

	bool own;
	if (txn_begin(dir, &own, error_r) < 0)
		return -1;
	if (exec_bound(dir, "UPDATE users SET password = ?2 WHERE address = ?1", address, hash,
	    &changes, error_r) < 0 || (changes > 0 &&
	    directory_user_set_cram(dir, address, cram, error_r) < 0)) {
		txn_rollback(dir, own);
		return -1;
	}
	if (changes == 0) {
		txn_rollback(dir, own);
		*error_r = xasprintf("no such user: %s", address);
		return -1;
	}
	return txn_commit(dir, own, error_r);
}

int
directory_user_credentials(struct directory *dir, const char *address, char *hash,
    size_t hashsize, char *cram, size_t cramsize)
{
	sqlite3_stmt *st = stmt_bind1(dir, ST_CREDENTIALS, address);
	int rc = sqlite3_step(st);

	hash[0] = cram[0] = '\0';
	if (rc == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 0);
		const char *c = (const char *)sqlite3_column_text(st, 1);
		str_copy(hash, h != NULL ? h : "", hashsize);
		str_copy(cram, c != NULL ? c : "", cramsize);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
directory_access_add(struct directory *dir, const char *listener, const char *entry,
    char **error_r)
{
	return exec_bound(dir, "INSERT OR IGNORE INTO access(listener, entry) VALUES(?, lower(?))",
	    listener, entry, NULL, error_r);
}

int
directory_access_del(struct directory *dir, const char *listener, const char *entry,
    char **error_r)
{
	return exec_changing(dir, "DELETE FROM access WHERE listener = ? AND entry = ?", listener,
	    entry, xasprintf("%s is not on the %s access list", entry, listener), error_r);
}

int
directory_access_list(struct directory *dir, const char *listener, directory_row_fn *fn,
    void *arg)
{
	if (listener != NULL)
		return list_rows(dir, "SELECT listener, entry FROM access WHERE listener = ? "
		    "ORDER BY entry", listener, fn, arg);
	return list_rows(dir, "SELECT listener, entry FROM access ORDER BY listener, entry",
	    NULL, fn, arg);
}

bool
directory_access_allows(struct directory *dir, const char *listener, const char *ip,
    const char *user)
{
	sqlite3_stmt *st = stmt_bind1(dir, ST_ACCESS_LIST, listener);
	bool ok = false;

	while (!ok && sqlite3_step(st) == SQLITE_ROW) {
		const char *e = (const char *)sqlite3_column_text(st, 0);
		if (strchr(e, '@') != NULL)
			ok = user != NULL && strcasecmp(e, user) == 0;
		else
			ok = netaddr_ip_in_cidr(ip, e);
	}
	sqlite3_reset(st);
	return ok;
}

int
directory_alias_add(struct directory *dir, const char *address, const char *target,
    char **error_r)
{
	const char *at = strrchr(address, '@');
	const char *tat = strrchr(target, '@');

	if (at == NULL || !directory_domain_exists(dir, at + 1)) {
		*error_r = xasprintf("%s is not in a local domain", address);
		return -1;
	}
	if (tat == NULL || !directory_domain_exists(dir, tat + 1)) {
		*error_r = xasprintf("target %s is not in a local domain "
		    "(remote alias targets need outbound relay, not available yet)", target);
		return -1;
	}
	if (strcasecmp(address, target) == 0) {
		*error_r = xasprintf("alias %s cannot point to itself", address);
		return -1;
	}
	if (count_rows(dir, "SELECT count(*) FROM aliases WHERE address = ?", address) >=
	    DIR_TARGETS_MAX) {
		*error_r = xasprintf("alias %s already has %d targets", address, DIR_TARGETS_MAX);
		return -1;
	}
	return exec_bound(dir, "INSERT OR IGNORE INTO aliases(address, target) "
	    "VALUES(lower(?), lower(?))", address, target, NULL, error_r);
}

int
directory_alias_del(struct directory *dir, const char *address, const char *target,
    char **error_r)
{
	int changes = 0;
	int rc = target == NULL ?
	    exec_bound(dir, "DELETE FROM aliases WHERE address = ?", address, NULL, &changes, error_r) :
	    exec_bound(dir, "DELETE FROM aliases WHERE address = ? AND target = ?", address, target,
	        &changes, error_r);

	if (rc < 0)
		return -1;
	if (changes == 0) {
		*error_r = target == NULL ? xasprintf("no such alias: %s", address) :
		    xasprintf("alias %s has no target %s", address, target);
		return -1;
	}
	return 0;
}

int
list_rows(struct directory *dir, const char *sql, const char *arg, directory_row_fn *fn,
    void *fnarg)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(dir->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(fnarg, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
directory_domain_list(struct directory *dir, directory_row_fn *fn, void *arg)
{
	return list_rows(dir, "SELECT name, postmaster FROM domains ORDER BY name", NULL, fn, arg);
}

int
directory_user_list(struct directory *dir, const char *domain, directory_row_fn *fn, void *arg)
{
	if (domain != NULL)
		return list_rows(dir, "SELECT address, CASE WHEN password IS NULL THEN 'no-password' "
		    "ELSE 'password' END FROM users WHERE domain = ? ORDER BY address", domain, fn, arg);
	return list_rows(dir, "SELECT address, CASE WHEN password IS NULL THEN 'no-password' "
	    "ELSE 'password' END FROM users ORDER BY domain, address", NULL, fn, arg);
}

int
directory_alias_list(struct directory *dir, const char *address, directory_row_fn *fn, void *arg)
{
	if (address != NULL)
		return list_rows(dir, "SELECT address, target FROM aliases WHERE address = ? "
		    "ORDER BY address, target", address, fn, arg);
	return list_rows(dir, "SELECT address, target FROM aliases ORDER BY address, target",
	    NULL, fn, arg);
}

bool
directory_list_name_valid(const char *name)
{
	return strcmp(name, "trusted") == 0 || strcmp(name, "exempt") == 0 ||
	    strcmp(name, "accept") == 0 || strcmp(name, "smtp-users") == 0 ||
	    strcmp(name, "relay-domains") == 0 || strcmp(name, "relay-networks") == 0 ||
	    strcmp(name, "refused") == 0;
}

bool
directory_list_holds_addresses(const char *name)
{
	return strcmp(name, "exempt") == 0 || strcmp(name, "accept") == 0 ||
	    strcmp(name, "smtp-users") == 0;
}

bool
directory_list_holds_domains(const char *name)
{
	return strcmp(name, "relay-domains") == 0;
}

int
directory_list_add(struct directory *dir, const char *name, const char *entry, char **error_r)
{
	return exec_bound(dir, "INSERT OR IGNORE INTO lists(name, entry) VALUES(?, lower(?))",
	    name, entry, NULL, error_r);
}

int
directory_list_del(struct directory *dir, const char *name, const char *entry, char **error_r)
{
	return exec_changing(dir, "DELETE FROM lists WHERE name = ? AND entry = ?", name, entry,
	    xasprintf("%s is not on the %s list", entry, name), error_r);
}

int
directory_list_show(struct directory *dir, const char *name, directory_row_fn *fn, void *arg)
{
	if (name != NULL)
		return list_rows(dir, "SELECT name, entry FROM lists WHERE name = ? ORDER BY entry",
		    name, fn, arg);
	return list_rows(dir, "SELECT name, entry FROM lists ORDER BY name, entry", NULL, fn, arg);
}

bool
directory_list_has(struct directory *dir, const char *name, const char *value)
{
	sqlite3_stmt *st = stmt_bind1(dir, ST_LIST_ENTRIES, name);
	bool addresses = directory_list_holds_addresses(name);
	bool found = false;

	while (!found && sqlite3_step(st) == SQLITE_ROW) {
		const char *e = (const char *)sqlite3_column_text(st, 0);
		found = addresses ? strcasecmp(e, value) == 0 : netaddr_ip_in_cidr(value, e);
	}
	sqlite3_reset(st);
	return found;
}
