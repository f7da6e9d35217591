/* profile.c: outbound server profiles (profile.h). */
#include "conf/profile.h"

#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/datadir.h"
#include "conf/settings.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/secretbox.h"
#include "lib/strutil.h"
#include "lib/tls.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"
#include "mail/sasl.h"
#include "mail/smtp_reply.h"

#define SMARTHOST_SETTING "relay.smarthost"

static const char *const tls_names[] = { "none", "starttls", "smtps" };
static const char *const login_names[] = { "none", "smtp-auth", "pop-before-smtp" };
static const char *const pop_tls_names[] = { "none", "stls", "pop3s" };

const char *
profile_tls_name(enum profile_tls t)
{
	return (unsigned)t < 3 ? tls_names[t] : "?";
}

const char *
profile_login_name(enum profile_login l)
{
	return (unsigned)l < 3 ? login_names[l] : "?";
}

const char *
profile_pop_tls_name(enum profile_pop_tls t)
{
	return (unsigned)t < 3 ? pop_tls_names[t] : "?";
}

static int
name_index(const char *const *names, const char *s)
{
	for (int i = 0; i < 3; i++) {
		if (strcasecmp(names[i], s) == 0)
			return i;
	}
	return -1;
}

int
profile_tls_parse(const char *s, enum profile_tls *r)
{
	int i = name_index(tls_names, s);

	if (i >= 0)
		*r = (enum profile_tls)i;
	return i >= 0 ? 0 : -1;
}

int
profile_pop_tls_parse(const char *s, enum profile_pop_tls *r)
{
	int i = name_index(pop_tls_names, s);

	if (i >= 0)
		*r = (enum profile_pop_tls)i;
	return i >= 0 ? 0 : -1;
}

static int
login_parse(const char *s, enum profile_login *r)
{
	int i = name_index(login_names, s);

	if (i >= 0)
		*r = (enum profile_login)i;
	return i >= 0 ? 0 : -1;
}

bool
profile_id_valid(const char *id)
{
	size_t n = strlen(id);

	return n > 0 && n <= PROFILE_ID_MAX &&
	    strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789._@-") == n;
}

bool
profile_host_valid(const char *host)
{
	return host[0] != '\0' && strlen(host) <= PROFILE_HOST_MAX &&
	    (netaddr_is_ip(host) || addr_domain_valid(host));
}

/* --- the mechanisms (seed 000 -a) --- */

static const struct {
	const char *name;
	unsigned bit;
} mech_bits[] = {
	{ "CRAM-MD5", SMTP_AUTH_CRAM_MD5 },
	{ "LOGIN", SMTP_AUTH_LOGIN },
	{ "PLAIN", SMTP_AUTH_PLAIN },
};

#define ALL_MECHS (SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_LOGIN | SMTP_AUTH_PLAIN)

int
profile_auth_parse(const char *text, char *norm, unsigned *mechs_r, const char **error_r)
{
	char item[32];
	unsigned mechs = 0;
	size_t o = 0;

	if (strcasecmp(text, "ALL") == 0 || strcasecmp(text, "XOAUTH2") == 0) {
		bool all = strcasecmp(text, "ALL") == 0;
		str_copy(norm, all ? "ALL" : "XOAUTH2", PROFILE_AUTH_MAX);
		*mechs_r = all ? ALL_MECHS : SMTP_AUTH_XOAUTH2;
		return 0;
	}
	norm[0] = '\0';
	for (const char *p = text;;) {
		size_t n = strcspn(p, ",");
		size_t k;
		if (n == 0 || n >= sizeof(item)) {
			*error_r = "not a comma-separated list of CRAM-MD5, LOGIN and PLAIN";
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		for (k = 0; k < 3 && strcasecmp(item, mech_bits[k].name) != 0; k++)
			;
		if (k == 3) {
			*error_r = strcasecmp(item, "XOAUTH2") == 0 ?
			    "XOAUTH2 goes alone (an access token is not a password)" :
			    "not a comma-separated list of CRAM-MD5, LOGIN and PLAIN";
			return -1;
		}
		if ((mechs & mech_bits[k].bit) == 0) {
			o += (size_t)snprintf(norm + o, PROFILE_AUTH_MAX - o, "%s%s",
			    o > 0 ? "," : "", mech_bits[k].name);
			mechs |= mech_bits[k].bit;
		}
		p += n;
		if (*p == '\0')
			break;
		p++;
	}
	*mechs_r = mechs;
	return 0;
}

/* --- session properties --- */

static int
prop_apply(const char *key, const char *value, struct profile_props *pp, const char **error_r)
{
	uint64_t v;

	if (strcmp(key, "helo") == 0) {
		if (!addr_domain_valid(value) || strlen(value) >= sizeof(pp->helo)) {
			*error_r = "helo: not a host name";
			return -1;
		}
		str_copy(pp->helo, value, sizeof(pp->helo));
	} else if (strcmp(key, "source") == 0) {
		if (!netaddr_is_ip(value) || strlen(value) >= sizeof(pp->source)) {
			*error_r = "source: not an IP address";
			return -1;
		}
		str_copy(pp->source, value, sizeof(pp->source));
	} else if (strcmp(key, "pipelining") == 0) {
		if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0) {
			*error_r = "pipelining: yes or no";
			return -1;
		}
		pp->no_pipelining = strcmp(value, "no") == 0;
	} else if (strcmp(key, "data_timeout_ms") == 0) {
		if (str_parse_u64(value, &v) < 0 || v < 1000 || v > 3600000) {
			*error_r = "data_timeout_ms: 1000 to 3600000";
			return -1;
		}
		pp->data_timeout_ms = (unsigned)v;
	} else if (strcmp(key, "max_messages") == 0) {
		if (str_parse_u64(value, &v) < 0 || v < 1 || v > 100000) {
			*error_r = "max_messages: 1 to 100000";
			return -1;
		}
		pp->max_messages = (unsigned)v;
	} else {
		*error_r = "unknown property (helo, source, pipelining, data_timeout_ms, max_messages)";
		return -1;
	}
	return 0;
}

int
profile_props_parse(const char *text, char *norm, struct profile_props *out,
    const char **error_r)
{
	struct profile_props pp = { 0 };
	char item[300];
	size_t o = 0;

	if (norm != NULL)
		norm[0] = '\0';
	if (strlen(text) > PROFILE_TEXT_MAX) {
		*error_r = "properties too long";
		return -1;
	}
	for (const char *p = text; *p != '\0';) {
		size_t n = strcspn(p, ",");
		char *eq;
		if (n == 0 || n >= sizeof(item)) {
			*error_r = "not a comma-separated list of key=value";
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if ((eq = strchr(item, '=')) == NULL || eq == item) {
			*error_r = "not a comma-separated list of key=value";
			return -1;
		}
		*eq = '\0';
		if (prop_apply(item, eq + 1, &pp, error_r) < 0)
			return -1;
		if (norm != NULL)
			o += (size_t)snprintf(norm + o, PROFILE_TEXT_MAX + 1 - o, "%s%s=%s",
			    o > 0 ? "," : "", item, eq + 1);
		p += n;
		if (*p == ',' && *++p == '\0') {
			*error_r = "not a comma-separated list of key=value";
			return -1;
		}
	}
	if (out != NULL)
		*out = pp;
	return 0;
}

int
profile_senders_parse(const char *text, char *norm, const char **error_r)
{
	char item[PROFILE_HOST_MAX + 80];
	size_t o = 0;

	norm[0] = '\0';
	if (strlen(text) > PROFILE_TEXT_MAX) {
		*error_r = "sender list too long";
		return -1;
	}
	for (const char *p = text; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(item)) {
			*error_r = "not a comma-separated list of domains and addresses";
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		str_lower(item);
		const char *at = strrchr(item, '@');
		bool ok = at == NULL ? addr_domain_valid(item) :
		    at > item && addr_domain_valid(at + 1) && strchr(item, ' ') == NULL;
		if (!ok) {
			*error_r = "not a comma-separated list of domains and addresses";
			return -1;
		}
		o += (size_t)snprintf(norm + o, PROFILE_TEXT_MAX + 1 - o, "%s%s", o > 0 ? "," : "",
		    item);
		p += n;
		if (*p == ',' && *++p == '\0') {
			*error_r = "not a comma-separated list of domains and addresses";
			return -1;
		}
	}
	return 0;
}

static bool
printable(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	}
	return true;
}

int
profile_check(const struct profile *p, char *err, size_t errsize)
{
	const char *why = NULL;
	unsigned mechs;
	char norm[PROFILE_TEXT_MAX + 1];

	if (!profile_id_valid(p->id))
		why = "the ID must be 1-64 of a-z 0-9 . _ @ -";
	else if (!p->builtin && !profile_host_valid(p->host))
		why = "a host is required (a host name or an IP address)";
	else if (p->builtin && p->host[0] != '\0' && !profile_host_valid(p->host))
		why = "the host is not a host name or an IP address";
	else if (p->port < 1 || p->port > 65535 || p->pop_port < 1 || p->pop_port > 65535)
		why = "a port is 1 to 65535";
	else if (tls_protocol_parse(p->tls_protocol) < 0)
		why = "the TLS protocol is TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3";
	else if (profile_auth_parse(p->auth, norm, &mechs, &why) < 0)
		;
	else if (!printable(p->account) || !printable(p->pop_account))
		why = "an account may hold printable characters only";
	else if (p->login == PROFILE_LOGIN_SMTP_AUTH && p->account[0] == '\0')
		why = "SMTP AUTH needs an account";
	else if (p->login == PROFILE_LOGIN_POP && (!profile_host_valid(p->pop_host) ||
	    p->pop_account[0] == '\0'))
		why = "POP-before-SMTP needs a POP3 server and an account";
	else if (!printable(p->xmailer))
		why = "the X-Mailer text may hold printable characters only";
	else if (profile_props_parse(p->properties, NULL, NULL, &why) < 0)
		;
	else if (profile_senders_parse(p->senders, norm, &why) < 0)
		;
	else if (!p->builtin && p->senders[0] == '\0')
		why = "a profile needs the senders it serves (domains or addresses)";
	else if (p->builtin && p->senders[0] != '\0')
		why = "the default profile serves every other sender: it has no sender list";
	if (why == NULL)
		return 0;
	snprintf(err, errsize, "%s", why);
	return -1;
}

void
profile_init(struct profile *p, const char *id)
{
	memset(p, 0, sizeof(*p));
	str_copy(p->id, id, sizeof(p->id));
	p->builtin = strcmp(id, PROFILE_DEFAULT_ID) == 0;
	p->port = 25;
	p->pop_port = 110;
	str_copy(p->tls_protocol, "TLSv1.3", sizeof(p->tls_protocol));
	str_copy(p->auth, "ALL", sizeof(p->auth));
}

static void
secret_free(char **sp)
{
	if (*sp != NULL) {
		OPENSSL_cleanse(*sp, strlen(*sp));
		free(*sp);
		*sp = NULL;
	}
}

void
profile_clear(struct profile *p)
{
	secret_free(&p->secret);
	secret_free(&p->pop_secret);
	secret_free(&p->secret_plain);
	secret_free(&p->pop_secret_plain);
}

/* --- secrets --- */

static void
secret_aad(const char *id, const char *field, char *buf, size_t size)
{
	snprintf(buf, size, "tegami-profile:%s:%s", id, field);
}

static void
key_path(const char *data_dir, char *buf, size_t size)
{
	datadir_path(data_dir, "secret.key", buf, size);
}

char *
profile_secret_seal(const char *data_dir, const char *id, const char *field, const char *plain,
    char *err, size_t errsize)
{
	unsigned char key[SECRETBOX_KEY_LEN];
	char path[4200], aad[128];

	key_path(data_dir, path, sizeof(path));
	if (secretbox_key_load(path, true, key, err, errsize) < 0)
		return NULL;
	secret_aad(id, field, aad, sizeof(aad));
	char *sealed = secretbox_seal(key, aad, plain, strlen(plain));
	OPENSSL_cleanse(key, sizeof(key));
	return sealed;
}

int
profile_secret_open(const char *data_dir, const char *id, const char *field, const char *sealed,
    char *out, size_t outsize, char *err, size_t errsize)
{
	unsigned char key[SECRETBOX_KEY_LEN];
	char path[4200], aad[128];
	size_t len;
	int rc;

	key_path(data_dir, path, sizeof(path));
	if (secretbox_key_load(path, false, key, err, errsize) < 0)
		return -1;
	secret_aad(id, field, aad, sizeof(aad));
	rc = secretbox_open(key, aad, sealed, out, outsize, &len);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc < 0)
		snprintf(err, errsize, "the %s secret does not open with DATA/secret.key (another "
		    "key, or altered)", field);
	return rc;
}

/* --- rows --- */

#define COLUMNS "id, builtin, host, port, tls, tls_protocol, tls_verify, login, auth, " \
	"account, auth_sealed, xmailer, debug, connect_timeout_ms, timeout_ms, properties, " \
	"senders, pop_host, pop_port, pop_tls, pop_account, pop_sealed"

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s != NULL ? s : "";
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s != NULL && s[0] != '\0' ? xstrdup(s) : NULL;
}

static void
row_read(sqlite3_stmt *st, struct profile *p)
{
	profile_init(p, col_text(st, 0));
	p->builtin = sqlite3_column_int(st, 1) != 0;
	str_copy(p->host, col_text(st, 2), sizeof(p->host));
	p->port = (unsigned)sqlite3_column_int(st, 3);
	(void)profile_tls_parse(col_text(st, 4), &p->tls);
	str_copy(p->tls_protocol, col_text(st, 5), sizeof(p->tls_protocol));
	p->tls_verify = sqlite3_column_int(st, 6) != 0;
	(void)login_parse(col_text(st, 7), &p->login);
	str_copy(p->auth, col_text(st, 8), sizeof(p->auth));
	str_copy(p->account, col_text(st, 9), sizeof(p->account));
	p->secret = col_dup(st, 10);
	str_copy(p->xmailer, col_text(st, 11), sizeof(p->xmailer));
	p->debug = sqlite3_column_int(st, 12) != 0;
	p->connect_timeout_ms = (unsigned)sqlite3_column_int64(st, 13);
	p->timeout_ms = (unsigned)sqlite3_column_int64(st, 14);
	str_copy(p->properties, col_text(st, 15), sizeof(p->properties));
	str_copy(p->senders, col_text(st, 16), sizeof(p->senders));
	str_copy(p->pop_host, col_text(st, 17), sizeof(p->pop_host));
	p->pop_port = (unsigned)sqlite3_column_int(st, 18);
	(void)profile_pop_tls_parse(col_text(st, 19), &p->pop_tls);
	str_copy(p->pop_account, col_text(st, 20), sizeof(p->pop_account));
	p->pop_secret = col_dup(st, 21);
}

static int
db_fail(struct sqlite3 *db, char **error_r)
{
	*error_r = xstrdup(sqlite3_errmsg(db));
	return -1;
}

/* Runs sql over every row; fn gets each profile (its secrets freed after). */
static int
rows(struct sqlite3 *db, const char *sql, const char *arg,
    void (*fn)(void *arg, const struct profile *p), void *fnarg, char **error_r)
{
	sqlite3_stmt *st = NULL;
	char host[CONFIG_STR_MAX];
	int rc;

	if (settings_get(db, SMARTHOST_SETTING, host) < 0 ||
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, error_r);
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct profile p;
		row_read(st, &p);
		if (p.builtin)
			str_copy(p.host, host, sizeof(p.host));
		fn(fnarg, &p);
		profile_clear(&p);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, error_r);
	return 0;
}

struct get_ctx {
	struct profile *p;
	bool found;
};

static void
get_one(void *arg, const struct profile *p)
{
	struct get_ctx *g = arg;

	*g->p = *p;
	g->p->secret = p->secret != NULL ? xstrdup(p->secret) : NULL;
	g->p->pop_secret = p->pop_secret != NULL ? xstrdup(p->pop_secret) : NULL;
	g->found = true;
}

int
profile_db_get(struct sqlite3 *db, const char *id, struct profile *p, char **error_r)
{
	struct get_ctx g = { p, false };

	if (rows(db, "SELECT " COLUMNS " FROM smtp_profiles WHERE id = ?", id, get_one, &g,
	    error_r) < 0)
		return -1;
	return g.found ? 1 : 0;
}

int
profile_db_list(struct sqlite3 *db, void (*fn)(void *arg, const struct profile *p), void *arg,
    char **error_r)
{
	return rows(db, "SELECT " COLUMNS " FROM smtp_profiles ORDER BY builtin DESC, id", NULL,
	    fn, arg, error_r);
}

static void
bind_opt(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

int
profile_db_put(struct sqlite3 *db, const struct profile *p, bool create, char **error_r)
{
	sqlite3_stmt *st = NULL;
	int i = 1;

	if (p->builtin) {
		/* The seed's SMTP server name is a setting of its own. */
		char norm[CONFIG_STR_MAX];
		const char *why;
		const struct setting_def *def = settings_find(SMARTHOST_SETTING);
		if (settings_validate(def, p->host, norm, &why) < 0) {
			*error_r = xasprintf("relay.smarthost: %s", why);
			return -1;
		}
		if (settings_store(db, SMARTHOST_SETTING, norm, error_r) < 0)
			return -1;
	}
	if (sqlite3_prepare_v2(db, create ?
	    "INSERT INTO smtp_profiles(" COLUMNS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)" :
	    "INSERT OR REPLACE INTO smtp_profiles(" COLUMNS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	    -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, error_r);
	sqlite3_bind_text(st, i++, p->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i++, p->builtin);
	sqlite3_bind_text(st, i++, p->builtin ? "" : p->host, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i++, (int)p->port);
	sqlite3_bind_text(st, i++, profile_tls_name(p->tls), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->tls_protocol, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i++, p->tls_verify);
	sqlite3_bind_text(st, i++, profile_login_name(p->login), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->auth, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->account, -1, SQLITE_STATIC);
	bind_opt(st, i++, p->secret);
	sqlite3_bind_text(st, i++, p->xmailer, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i++, p->debug);
	sqlite3_bind_int64(st, i++, p->connect_timeout_ms);
	sqlite3_bind_int64(st, i++, p->timeout_ms);
	sqlite3_bind_text(st, i++, p->properties, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->senders, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->pop_host, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i++, (int)p->pop_port);
	sqlite3_bind_text(st, i++, profile_pop_tls_name(p->pop_tls), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->pop_account, -1, SQLITE_STATIC);
	bind_opt(st, i++, p->pop_secret);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT) {
		*error_r = xasprintf("profile %s exists already", p->id);
		return -1;
	}
	if (rc != SQLITE_DONE)
		return db_fail(db, error_r);
	return 0;
}

int
profile_db_del(struct sqlite3 *db, const char *id, char **error_r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, "DELETE FROM smtp_profiles WHERE id = ? AND builtin = 0", -1,
	    &st, NULL) != SQLITE_OK)
		return db_fail(db, error_r);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, error_r);
	if (sqlite3_changes(db) == 0) {
		*error_r = xasprintf("no profile %s", id);
		return -1;
	}
	return 0;
}

/* --- the daemon's snapshots --- */

struct profiles {
	struct sqlite3 *db;
	char data_dir[4096];
	uint64_t generation;
	struct profile **all;
	size_t n;
	struct profile *def;       /* the built-in one, also in all[] */
};

struct profiles *
profiles_create(struct sqlite3 *db, const char *data_dir)
{
	struct profiles *ps = xcalloc(1, sizeof(*ps));

	ps->db = db;
	str_copy(ps->data_dir, data_dir, sizeof(ps->data_dir));
	return ps;
}

struct profile *
profile_ref(struct profile *p)
{
	if (p != NULL)
		p->refs++;
	return p;
}

void
profile_unref(struct profile **pp)
{
	struct profile *p = *pp;

	*pp = NULL;
	if (p == NULL || --p->refs > 0)
		return;
	profile_clear(p);
	OPENSSL_cleanse(p, sizeof(*p));
	free(p);
}

bool
profile_default_in_use(const struct profile *p)
{
	return p->host[0] != '\0' || p->login != PROFILE_LOGIN_NONE;
}

/* Opens one sealed secret into *plain_r, or says why not. */
static void
secret_open(const unsigned char *key, bool have_key, const char *key_err, struct profile *p,
    const char *field, const char *sealed, char **plain_r)
{
	char aad[128], *buf;
	size_t len;

	if (sealed == NULL)
		return;
	if (!have_key) {
		snprintf(p->secret_error, sizeof(p->secret_error), "%s", key_err);
		return;
	}
	secret_aad(p->id, field, aad, sizeof(aad));
	buf = xmalloc(SASL_CLIENT_SECRET_MAX + 1);
	if (secretbox_open(key, aad, sealed, buf, SASL_CLIENT_SECRET_MAX + 1, &len) < 0) {
		snprintf(p->secret_error, sizeof(p->secret_error), "the %s secret does not open "
		    "with DATA/secret.key (another key, or altered)", field);
		free(buf);
		return;
	}
	*plain_r = buf;
}

struct load_ctx {
	struct profiles *ps;
	struct profile **all;
	size_t n, cap;
	unsigned char key[SECRETBOX_KEY_LEN];
	bool have_key;
	char key_err[160];
};

static void
load_one(void *arg, const struct profile *row)
{
	struct load_ctx *l = arg;
	struct profile *p = xcalloc(1, sizeof(*p));
	const char *why;
	char norm[PROFILE_AUTH_MAX];

	*p = *row;
	p->secret = row->secret != NULL ? xstrdup(row->secret) : NULL;
	p->pop_secret = row->pop_secret != NULL ? xstrdup(row->pop_secret) : NULL;
	p->refs = 1;
	p->generation = l->ps->generation;
	if (profile_auth_parse(p->auth, norm, &p->mechs, &why) < 0)
		p->mechs = 0;
	if (profile_props_parse(p->properties, NULL, &p->props, &why) < 0)
		memset(&p->props, 0, sizeof(p->props));
	secret_open(l->key, l->have_key, l->key_err, p, "smtp", p->secret, &p->secret_plain);
	secret_open(l->key, l->have_key, l->key_err, p, "pop", p->pop_secret,
	    &p->pop_secret_plain);
	if (p->secret_error[0] != '\0')
		log_error("event=profile_secret_failed profile=%s error=\"%s\"", p->id,
		    p->secret_error);
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 8 : l->cap * 2;
		l->all = xreallocarray(l->all, l->cap, sizeof(*l->all));
	}
	l->all[l->n++] = p;
}

static void
release_all(struct profiles *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		profile_unref(&ps->all[i]);
	free(ps->all);
	ps->all = NULL;
	ps->n = 0;
	ps->def = NULL;
}

void
profiles_reload(struct profiles *ps, const char *smarthost)
{
	struct load_ctx l = { .ps = ps };
	char path[4200], *error = NULL;

	ps->generation++;
	key_path(ps->data_dir, path, sizeof(path));
	l.have_key = secretbox_key_load(path, false, l.key, l.key_err, sizeof(l.key_err)) == 0;
	if (profile_db_list(ps->db, load_one, &l, &error) < 0) {
		log_error("event=profiles_load_failed error=\"%s\" kept=previous", error);
		free(error);
		for (size_t i = 0; i < l.n; i++)
			profile_unref(&l.all[i]);
		free(l.all);
		OPENSSL_cleanse(l.key, sizeof(l.key));
		return;
	}
	OPENSSL_cleanse(l.key, sizeof(l.key));
	release_all(ps);
	ps->all = l.all;
	ps->n = l.n;
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->all[i]->builtin) {
			ps->def = ps->all[i];
			str_copy(ps->def->host, smarthost, sizeof(ps->def->host));
		}
	}
}

/* True when the comma list has item (exactly, case-insensitively). */
static bool
list_has(const char *list, const char *item, size_t len)
{
	for (const char *p = list; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n == len && strncasecmp(p, item, len) == 0)
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

struct profile *
profiles_select(struct profiles *ps, const char *sender)
{
	const char *at = sender != NULL ? strrchr(sender, '@') : NULL;

	if (at != NULL) {
		for (size_t i = 0; i < ps->n; i++) {
			if (!ps->all[i]->builtin && list_has(ps->all[i]->senders, sender,
			    strlen(sender)))
				return profile_ref(ps->all[i]);
		}
		for (size_t i = 0; i < ps->n; i++) {
			if (!ps->all[i]->builtin && list_has(ps->all[i]->senders, at + 1,
			    strlen(at + 1)))
				return profile_ref(ps->all[i]);
		}
	}
	if (ps->def != NULL && profile_default_in_use(ps->def))
		return profile_ref(ps->def);
	return NULL;
}

void
profiles_destroy(struct profiles **psp)
{
	struct profiles *ps = *psp;

	if (ps == NULL)
		return;
	release_all(ps);
	free(ps);
	*psp = NULL;
}
