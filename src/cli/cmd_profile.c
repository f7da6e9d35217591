/* tegami profile list|add|set|del|show|test|export|import: outbound server
 * profiles (MISSION X1, X2; seed 004 "SMTP server settings"). A profile
 * sends a sending tenant's mail through its relay (conf/profile.h). The
 * built-in profile "default" is the one `tegami smtpauth` edits: it cannot
 * be deleted, exported or imported. Secrets are read from the terminal
 * (--password) or standard input (--password-stdin), stored sealed, never
 * printed, and left out of exports (docs/profiles.md). */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "conf/profile.h"
#include "conf/settings.h"
#include "lib/db.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"
#include "mail/sasl.h"

#define EXPORT_FORMAT "tegami-smtp-profiles"
#define EXPORT_VERSION 1
#define PROPS_ADD_MAX 16

/* The options of add and set. */
struct edit {
	const char *host, *port, *ssl, *starttls, *tls_protocol, *tls_verify, *auth, *account;
	const char *xmailer, *debug, *connect_timeout, *timeout, *properties, *senders;
	const char *pop_host, *pop_port, *pop_tls, *pop_account;
	const char *props_add[PROPS_ADD_MAX];
	size_t nprops;
	bool password, password_stdin, pop_password, pop_password_stdin, test;
};

#define E(f) offsetof(struct edit, f)

static const struct {
	const char *name;
	size_t off;
	bool flag;
} edit_opts[] = {
	{ "--host", E(host), false }, { "--port", E(port), false },
	{ "--ssl", E(ssl), false }, { "--starttls", E(starttls), false },
	{ "--tls-protocol", E(tls_protocol), false }, { "--tls-verify", E(tls_verify), false },
	{ "--auth", E(auth), false }, { "--account", E(account), false },
	{ "--xmailer", E(xmailer), false }, { "--debug", E(debug), false },
	{ "--connect-timeout", E(connect_timeout), false }, { "--timeout", E(timeout), false },
	{ "--properties", E(properties), false }, { "--senders", E(senders), false },
	{ "--pop-host", E(pop_host), false }, { "--pop-port", E(pop_port), false },
	{ "--pop-tls", E(pop_tls), false }, { "--pop-account", E(pop_account), false },
	{ "--password", E(password), true }, { "--password-stdin", E(password_stdin), true },
	{ "--pop-password", E(pop_password), true },
	{ "--pop-password-stdin", E(pop_password_stdin), true },
	{ "--test", E(test), true },
};

#define EDIT_USAGE "ID [--host HOST] [--port N] [--ssl yes|no] [--starttls yes|no] " \
	"[--tls-protocol TLSv1|TLSv1.1|TLSv1.2|TLSv1.3] [--tls-verify yes|no] " \
	"[--auth none|ALL|METHODS|XOAUTH2] [--account NAME] [--password | --password-stdin] " \
	"[--xmailer TEXT] [--debug yes|no] [--connect-timeout MS] [--timeout MS] " \
	"[--property KEY=VALUE]... [--properties LIST] [--senders LIST] [--pop-host HOST] " \
	"[--pop-port N] [--pop-tls none|stls|pop3s] [--pop-account NAME] " \
	"[--pop-password | --pop-password-stdin] [--test]"

static int
parse_edit(const char *verb, int argc, char **argv, struct edit *e)
{
	memset(e, 0, sizeof(*e));
	for (int i = 0; i < argc; i++) {
		char name[64];
		const char *value = NULL, *eq = strchr(argv[i], '=');
		size_t n = eq != NULL ? (size_t)(eq - argv[i]) : strlen(argv[i]);
		size_t k;

		if (n >= sizeof(name))
			return cli_error(CLI_USAGE, "unknown option '%s' (tegami profile %s --help)",
			    argv[i], verb);
		memcpy(name, argv[i], n);
		name[n] = '\0';
		if (eq != NULL)
			value = eq + 1;
		if (strcmp(name, "--property") == 0) {
			if (value == NULL && i + 1 < argc)
				value = argv[++i];
			if (value == NULL || e->nprops == PROPS_ADD_MAX)
				return cli_error(CLI_USAGE, "--property needs KEY=VALUE (at most %d)",
				    PROPS_ADD_MAX);
			e->props_add[e->nprops++] = value;
			continue;
		}
		for (k = 0; k < sizeof(edit_opts) / sizeof(edit_opts[0]); k++) {
			if (strcmp(name, edit_opts[k].name) == 0)
				break;
		}
		if (k == sizeof(edit_opts) / sizeof(edit_opts[0]))
			return cli_error(CLI_USAGE, "unknown option '%s' (tegami profile %s --help)",
			    argv[i], verb);
		char *field = (char *)e + edit_opts[k].off;
		if (edit_opts[k].flag) {
			if (value != NULL)
				return cli_error(CLI_USAGE, "%s takes no value", name);
			*(bool *)(void *)field = true;
			continue;
		}
		if (value == NULL && i + 1 < argc)
			value = argv[++i];
		if (value == NULL)
			return cli_error(CLI_USAGE, "%s needs a value", name);
		*(const char **)(void *)field = value;
	}
	if ((e->password && e->password_stdin) || (e->pop_password && e->pop_password_stdin))
		return cli_error(CLI_USAGE, "--password and --password-stdin exclude each other");
	return CLI_OK;
}

static int
yes_no(const char *opt, const char *v, bool *b)
{
	if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0)
		*b = true;
	else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0)
		*b = false;
	else
		return cli_error(CLI_USAGE, "%s: '%s' is not yes or no", opt, v);
	return CLI_OK;
}

static int
number(const char *opt, const char *v, uint64_t min, uint64_t max, unsigned *out)
{
	uint64_t n;

	if (str_parse_u64(v, &n) < 0 || n < min || n > max)
		return cli_error(CLI_USAGE, "%s: '%s' is not a number from %llu to %llu", opt, v,
		    (unsigned long long)min, (unsigned long long)max);
	*out = (unsigned)n;
	return CLI_OK;
}

static int
text(const char *opt, const char *v, char *dst, size_t size)
{
	for (const char *s = v; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return cli_error(CLI_USAGE, "%s: control characters are not allowed", opt);
	}
	if (!str_copy(dst, v, size))
		return cli_error(CLI_USAGE, "%s: longer than %zu bytes", opt, size - 1);
	return CLI_OK;
}

/* --property KEY=VALUE: replaces KEY in the list, or adds it. */
static int
property_merge(struct profile *p, const char *kv)
{
	char out[PROFILE_TEXT_MAX + 1] = "", item[PROFILE_TEXT_MAX + 1];
	const char *eq = strchr(kv, '=');
	size_t klen = eq != NULL ? (size_t)(eq - kv) : 0, o = 0;
	const char *why;

	if (klen == 0)
		return cli_error(CLI_USAGE, "--property: '%s' is not KEY=VALUE", kv);
	for (const char *s = p->properties; *s != '\0';) {
		size_t n = strcspn(s, ",");
		if (!(n > klen && strncmp(s, kv, klen) == 0 && s[klen] == '=')) {
			snprintf(item, sizeof(item), "%.*s", (int)n, s);
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", o > 0 ? "," : "", item);
		}
		s += n;
		if (*s == ',')
			s++;
	}
	if (eq[1] != '\0') /* KEY= removes it */
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", o > 0 ? "," : "", kv);
	if (o >= sizeof(out) || profile_props_parse(out, p->properties, NULL, &why) < 0)
		return cli_error(CLI_USAGE, "--property %s: %s", kv,
		    o >= sizeof(out) ? "too long" : why);
	return CLI_OK;
}

/* The TLS options: the seed's two check boxes, SSL (implicit) and STARTTLS. */
static int
apply_tls(const struct edit *e, struct profile *p)
{
	bool ssl = p->tls == PROFILE_TLS_SMTPS, starttls = p->tls == PROFILE_TLS_STARTTLS;
	int rc;

	if (e->ssl != NULL && (rc = yes_no("--ssl", e->ssl, &ssl)) != CLI_OK)
		return rc;
	if (e->starttls != NULL && (rc = yes_no("--starttls", e->starttls, &starttls)) != CLI_OK)
		return rc;
	if (e->ssl != NULL && ssl && e->starttls == NULL)
		starttls = false;
	if (e->starttls != NULL && starttls && e->ssl == NULL)
		ssl = false;
	if (ssl && starttls)
		return cli_error(CLI_USAGE, "--ssl yes (implicit TLS) and --starttls yes exclude "
		    "each other");
	p->tls = ssl ? PROFILE_TLS_SMTPS : starttls ? PROFILE_TLS_STARTTLS : PROFILE_TLS_NONE;
	if (e->tls_protocol != NULL) {
		static const char *const v[] = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" };
		size_t k;
		for (k = 0; k < 4 && strcasecmp(v[k], e->tls_protocol) != 0; k++)
			;
		if (k == 4)
			return cli_error(CLI_USAGE, "--tls-protocol: '%s' is not TLSv1, TLSv1.1, "
			    "TLSv1.2 or TLSv1.3", e->tls_protocol);
		str_copy(p->tls_protocol, v[k], sizeof(p->tls_protocol));
	}
	if (e->tls_verify != NULL && (rc = yes_no("--tls-verify", e->tls_verify,
	    &p->tls_verify)) != CLI_OK)
		return rc;
	return CLI_OK;
}

/* The login: SMTP AUTH and POP-before-SMTP exclude each other (seed 000:
 * configuring one turns the other off). */
static int
apply_login(const struct edit *e, struct profile *p)
{
	const char *why;
	unsigned mechs;
	int rc;

	if (e->auth != NULL && strcasecmp(e->auth, "none") != 0 && e->pop_host != NULL &&
	    e->pop_host[0] != '\0')
		return cli_error(CLI_USAGE, "--auth and --pop-host: SMTP AUTH and POP-before-SMTP "
		    "exclude each other");
	if (e->auth != NULL) {
		if (strcasecmp(e->auth, "none") == 0) {
			if (p->login == PROFILE_LOGIN_SMTP_AUTH)
				p->login = PROFILE_LOGIN_NONE;
		} else if (profile_auth_parse(e->auth, p->auth, &mechs, &why) < 0) {
			return cli_error(CLI_USAGE, "--auth: '%s': %s", e->auth, why);
		} else {
			p->login = PROFILE_LOGIN_SMTP_AUTH;
		}
	}
	if (e->account != NULL && (rc = text("--account", e->account, p->account,
	    sizeof(p->account))) != CLI_OK)
		return rc;
	if (e->pop_host != NULL) {
		if (e->pop_host[0] != '\0' && !profile_host_valid(e->pop_host))
			return cli_error(CLI_USAGE, "--pop-host: '%s' is not a host name or an IP "
			    "address", e->pop_host);
		str_copy(p->pop_host, e->pop_host, sizeof(p->pop_host));
		if (e->pop_host[0] != '\0')
			p->login = PROFILE_LOGIN_POP;
		else if (p->login == PROFILE_LOGIN_POP)
			p->login = PROFILE_LOGIN_NONE;
	}
	if (e->pop_port != NULL && (rc = number("--pop-port", e->pop_port, 1, 65535,
	    &p->pop_port)) != CLI_OK)
		return rc;
	if (e->pop_tls != NULL && profile_pop_tls_parse(e->pop_tls, &p->pop_tls) < 0)
		return cli_error(CLI_USAGE, "--pop-tls: '%s' is not none, stls or pop3s", e->pop_tls);
	if (e->pop_account != NULL && (rc = text("--pop-account", e->pop_account, p->pop_account,
	    sizeof(p->pop_account))) != CLI_OK)
		return rc;
	return CLI_OK;
}

/* Every option but the secrets, checked, into p. */
static int
apply_edit(const struct edit *e, struct profile *p)
{
	const char *why;
	int rc;

	if (e->host != NULL) {
		if ((e->host[0] != '\0' || !p->builtin) && !profile_host_valid(e->host))
			return cli_error(CLI_USAGE, "--host: '%s' is not a host name or an IP address",
			    e->host);
		str_copy(p->host, e->host, sizeof(p->host));
	}
	if (e->port != NULL && (rc = number("--port", e->port, 1, 65535, &p->port)) != CLI_OK)
		return rc;
	if ((rc = apply_tls(e, p)) != CLI_OK || (rc = apply_login(e, p)) != CLI_OK)
		return rc;
	if (e->xmailer != NULL && (rc = text("--xmailer", e->xmailer, p->xmailer,
	    sizeof(p->xmailer))) != CLI_OK)
		return rc;
	if (e->debug != NULL && (rc = yes_no("--debug", e->debug, &p->debug)) != CLI_OK)
		return rc;
	if (e->connect_timeout != NULL && (rc = number("--connect-timeout", e->connect_timeout, 0,
	    600000, &p->connect_timeout_ms)) != CLI_OK)
		return rc;
	if (e->timeout != NULL && (rc = number("--timeout", e->timeout, 0, 3600000,
	    &p->timeout_ms)) != CLI_OK)
		return rc;
	if (e->properties != NULL && profile_props_parse(e->properties, p->properties, NULL,
	    &why) < 0)
		return cli_error(CLI_USAGE, "--properties: %s", why);
	for (size_t i = 0; i < e->nprops; i++) {
		if ((rc = property_merge(p, e->props_add[i])) != CLI_OK)
			return rc;
	}
	if (e->senders != NULL && profile_senders_parse(e->senders, p->senders, &why) < 0)
		return cli_error(CLI_USAGE, "--senders: %s", why);
	return CLI_OK;
}

/* --- secrets --- */

static int
stdin_secret(const char *what, char *buf, size_t max)
{
	if (fgets(buf, (int)max + 2, stdin) == NULL)
		return cli_error(CLI_USAGE, "no %s on standard input", what);
	size_t n = strcspn(buf, "\r\n");
	if (buf[n] == '\0' && n > max)
		return cli_error(CLI_USAGE, "the %s is longer than %zu bytes", what, max);
	buf[n] = '\0';
	if (n == 0)
		return cli_error(CLI_USAGE, "the %s cannot be empty", what);
	return CLI_OK;
}

/* The secrets given with the command, read (terminal or stdin) into
 * smtp/pop (SASL_CLIENT_SECRET_MAX + 2 bytes each; "" when not given). */
static int
read_secrets(const struct edit *e, char *smtp, char *pop)
{
	int rc = CLI_OK;

	smtp[0] = pop[0] = '\0';
	if (e->password_stdin)
		rc = stdin_secret("password", smtp, SASL_CLIENT_SECRET_MAX);
	else if (e->password)
		rc = cli_secret_ask("Password: ", "Password again: ", smtp, SASL_CLIENT_SECRET_MAX);
	if (rc == CLI_OK && e->pop_password_stdin)
		rc = stdin_secret("POP3 password", pop, SASL_CLIENT_SECRET_MAX);
	else if (rc == CLI_OK && e->pop_password)
		rc = cli_secret_ask("POP3 password: ", "POP3 password again: ", pop,
		    SASL_CLIENT_SECRET_MAX);
	return rc;
}

static void
secret_replace(char **dst, char *sealed)
{
	if (*dst != NULL) {
		OPENSSL_cleanse(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = sealed;
}

/* New secrets sealed into p. */
static int
seal_secrets(struct cli *c, struct profile *p, const char *smtp, const char *pop)
{
	char err[256];
	char *sealed;

	if (smtp[0] != '\0') {
		if ((sealed = profile_secret_seal(c->data_dir, p->id, "smtp", smtp, err,
		    sizeof(err))) == NULL)
			return cli_error(CLI_FAIL, "%s", err);
		secret_replace(&p->secret, sealed);
	}
	if (pop[0] != '\0') {
		if ((sealed = profile_secret_seal(c->data_dir, p->id, "pop", pop, err,
		    sizeof(err))) == NULL)
			return cli_error(CLI_FAIL, "%s", err);
		secret_replace(&p->pop_secret, sealed);
	}
	return CLI_OK;
}

/* The test with the new secrets, or the stored ones opened. */
static int
run_test(struct cli *c, const struct profile *p, const char *smtp, const char *pop)
{
	char *s = xcalloc(1, SASL_CLIENT_SECRET_MAX + 2), *q = xcalloc(1, SASL_CLIENT_SECRET_MAX + 2);
	char err[256];
	int rc;

	if (smtp[0] != '\0')
		str_copy(s, smtp, SASL_CLIENT_SECRET_MAX + 2);
	else if (p->secret != NULL && profile_secret_open(c->data_dir, p->id, "smtp", p->secret, s,
	    SASL_CLIENT_SECRET_MAX + 2, err, sizeof(err)) < 0)
		fprintf(stderr, "tegami: %s\n", err);
	if (pop[0] != '\0')
		str_copy(q, pop, SASL_CLIENT_SECRET_MAX + 2);
	else if (p->pop_secret != NULL && profile_secret_open(c->data_dir, p->id, "pop",
	    p->pop_secret, q, SASL_CLIENT_SECRET_MAX + 2, err, sizeof(err)) < 0)
		fprintf(stderr, "tegami: %s\n", err);
	rc = cli_profile_test(c, p, s[0] != '\0' ? s : NULL, q[0] != '\0' ? q : NULL);
	OPENSSL_cleanse(s, SASL_CLIENT_SECRET_MAX + 2);
	OPENSSL_cleanse(q, SASL_CLIENT_SECRET_MAX + 2);
	free(s);
	free(q);
	return rc;
}

/* --- add, set --- */

/* A sender that another profile already serves would make the choice
 * depend on the order: refused. */
struct dup_ctx {
	const struct profile *p;
	char clash[PROFILE_TEXT_MAX + PROFILE_ID_MAX + 8];
};

static void
dup_check(void *arg, const struct profile *other)
{
	struct dup_ctx *d = arg;

	if (d->clash[0] != '\0' || strcmp(other->id, d->p->id) == 0)
		return;
	for (const char *s = d->p->senders; *s != '\0';) {
		size_t n = strcspn(s, ",");
		for (const char *t = other->senders; *t != '\0';) {
			size_t m = strcspn(t, ",");
			if (m == n && strncmp(s, t, n) == 0) {
				snprintf(d->clash, sizeof(d->clash), "%.*s is already served by "
				    "profile %s", (int)n, s, other->id);
				return;
			}
			t += m;
			if (*t == ',')
				t++;
		}
		s += n;
		if (*s == ',')
			s++;
	}
}

static int
save(struct cli *c, struct profile *p, bool create)
{
	struct sqlite3 *db = cli_db(c);
	struct dup_ctx d = { .p = p };
	char *error = NULL, err[256];

	if (profile_check(p, err, sizeof(err)) < 0)
		return cli_error(CLI_USAGE, "profile %s: %s", p->id, err);
	if (db_begin(db, &error) < 0)
		goto fail;
	if (profile_db_list(db, dup_check, &d, &error) < 0)
		goto fail_rollback;
	if (d.clash[0] != '\0') {
		db_rollback(db);
		return cli_error(CLI_USAGE, "profile %s: %s", p->id, d.clash);
	}
	if (profile_db_put(db, p, create, &error) < 0 || db_commit(db, &error) < 0)
		goto fail_rollback;
	return CLI_OK;
fail_rollback:
	db_rollback(db);
fail:
	cli_error(CLI_FAIL, "%s", error);
	free(error);
	return CLI_FAIL;
}

static int
edit_profile(struct cli *c, struct profile *p, const struct edit *e, bool create)
{
	char *smtp = xcalloc(1, SASL_CLIENT_SECRET_MAX + 2);
	char *pop = xcalloc(1, SASL_CLIENT_SECRET_MAX + 2);
	char err[256];
	int rc = apply_edit(e, p);

	if (rc == CLI_OK && profile_check(p, err, sizeof(err)) < 0)
		rc = cli_error(CLI_USAGE, "profile %s: %s", p->id, err);
	if (rc == CLI_OK)
		rc = read_secrets(e, smtp, pop);
	if (rc == CLI_OK && e->test && run_test(c, p, smtp, pop) != CLI_OK)
		fprintf(stderr, "tegami: the connection test failed; the profile is saved anyway\n");
	if (rc == CLI_OK)
		rc = seal_secrets(c, p, smtp, pop);
	if (rc == CLI_OK)
		rc = save(c, p, create);
	OPENSSL_cleanse(smtp, SASL_CLIENT_SECRET_MAX + 2);
	OPENSSL_cleanse(pop, SASL_CLIENT_SECRET_MAX + 2);
	free(smtp);
	free(pop);
	return rc;
}

static int
id_arg(const char *arg, char *id)
{
	str_copy(id, arg, PROFILE_ID_MAX + 1);
	str_lower(id);
	if (strlen(arg) > PROFILE_ID_MAX || !profile_id_valid(id))
		return cli_error(CLI_USAGE, "'%s' is not a profile ID (1-64 of a-z 0-9 . _ @ -)", arg);
	return CLI_OK;
}

/* The profile to change, or an exit code after saying why. */
static int
load(struct cli *c, const char *arg, struct profile *p)
{
	char id[PROFILE_ID_MAX + 1], *error = NULL;
	int rc = id_arg(arg, id);

	if (rc != CLI_OK)
		return rc;
	int found = profile_db_get(cli_db(c), id, p, &error);
	if (found < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	if (found == 0)
		return cli_error(CLI_FAIL, "no profile %s (tegami profile list)", id);
	return CLI_OK;
}

int
cmd_profile_add(struct cli *c, int argc, char **argv)
{
	struct edit e;
	struct profile p;
	char id[PROFILE_ID_MAX + 1];
	int rc;

	if (argc < 1 || argv[0][0] == '-')
		return cli_error(CLI_USAGE, "usage: tegami profile add " EDIT_USAGE);
	if ((rc = id_arg(argv[0], id)) != CLI_OK || (rc = parse_edit("add", argc - 1, argv + 1,
	    &e)) != CLI_OK)
		return rc;
	if (strcmp(id, PROFILE_DEFAULT_ID) == 0)
		return cli_error(CLI_USAGE, "the default profile is built in (tegami profile set "
		    "default, or tegami smtpauth)");
	(void)cli_db(c); /* the data directory exists before a key is made in it */
	profile_init(&p, id);
	/* The seed's ID is the tenant: a profile named after a domain serves
	 * that domain's senders unless told otherwise. */
	if (e.senders == NULL && strchr(id, '.') != NULL && strchr(id, '@') == NULL &&
	    addr_domain_valid(id))
		str_copy(p.senders, id, sizeof(p.senders));
	else if (e.senders == NULL && strchr(id, '@') != NULL)
		str_copy(p.senders, id, sizeof(p.senders));
	rc = edit_profile(c, &p, &e, true);
	if (rc == CLI_OK) {
		printf("profile %s added: %s:%u for %s\n", p.id, p.host, p.port, p.senders);
		if (p.login == PROFILE_LOGIN_NONE && p.account[0] != '\0')
			fprintf(stderr, "tegami: note: SMTP AUTH is off (--auth ALL turns it on)\n");
	}
	profile_clear(&p);
	return rc;
}

int
cmd_profile_set(struct cli *c, int argc, char **argv)
{
	struct edit e;
	struct profile p;
	int rc;

	if (argc < 2 || argv[0][0] == '-')
		return cli_error(CLI_USAGE, "usage: tegami profile set " EDIT_USAGE);
	if ((rc = parse_edit("set", argc - 1, argv + 1, &e)) != CLI_OK ||
	    (rc = load(c, argv[0], &p)) != CLI_OK)
		return rc;
	enum profile_login was = p.login;
	rc = edit_profile(c, &p, &e, false);
	if (rc == CLI_OK) {
		printf("profile %s changed\n", p.id);
		if (was != p.login)
			printf("login: %s (was %s)\n", profile_login_name(p.login),
			    profile_login_name(was));
	}
	profile_clear(&p);
	return rc;
}

int
cmd_profile_del(struct cli *c, int argc, char **argv)
{
	char id[PROFILE_ID_MAX + 1], *error = NULL;
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami profile del ID");
	if ((rc = id_arg(argv[0], id)) != CLI_OK)
		return rc;
	if (strcmp(id, PROFILE_DEFAULT_ID) == 0)
		return cli_error(CLI_FAIL, "the default profile cannot be deleted "
		    "(tegami smtpauth -d turns its SMTP AUTH off)");
	if (profile_db_del(cli_db(c), id, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	printf("profile %s deleted\n", id);
	return CLI_OK;
}

/* --- list, show --- */

static void
list_one(void *arg, const struct profile *p)
{
	printf("%-24s %-32s %-5u %s\n", p->id, p->host[0] != '\0' ? p->host : "-", p->port,
	    p->builtin ? "*" : "");
}

int
cmd_profile_list(struct cli *c, int argc, char **argv)
{
	char *error = NULL;

	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami profile list");
	printf("%-24s %-32s %-5s %s\n", "ID", "HOST", "PORT", "DEFAULT");
	if (profile_db_list(cli_db(c), list_one, NULL, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	return CLI_OK;
}

static const char *
yn(bool b)
{
	return b ? "yes" : "no";
}

static void
show(const struct profile *p)
{
	printf("id: %s\ndefault: %s\n", p->id, yn(p->builtin));
	printf("host: %s%s\n", p->host, p->builtin ? " (relay.smarthost)" : "");
	printf("port: %u\nssl: %s\nstarttls: %s\n", p->port, yn(p->tls == PROFILE_TLS_SMTPS),
	    yn(p->tls == PROFILE_TLS_STARTTLS));
	printf("tls_protocol: %s\ntls_verify: %s\n", p->tls_protocol, yn(p->tls_verify));
	printf("login: %s\nauth: %s\naccount: %s\npassword: %s\n", profile_login_name(p->login),
	    p->auth, p->account, p->secret != NULL ? "(set)" : "(not set)");
	printf("xmailer: %s\ndebug: %s\n", p->xmailer, yn(p->debug));
	printf("connect_timeout_ms: %u%s\n", p->connect_timeout_ms,
	    p->connect_timeout_ms == 0 ? " (relay.connect_timeout)" : "");
	printf("timeout_ms: %u%s\n", p->timeout_ms, p->timeout_ms == 0 ? " (relay.command_timeout)" : "");
	printf("properties: %s\nsenders: %s\n", p->properties,
	    p->builtin ? "(every sender no other profile serves)" : p->senders);
	printf("pop_host: %s\npop_port: %u\npop_tls: %s\npop_account: %s\npop_password: %s\n",
	    p->pop_host, p->pop_port, profile_pop_tls_name(p->pop_tls), p->pop_account,
	    p->pop_secret != NULL ? "(set)" : "(not set)");
}

int
cmd_profile_show(struct cli *c, int argc, char **argv)
{
	struct profile p;
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami profile show ID");
	if ((rc = load(c, argv[0], &p)) != CLI_OK)
		return rc;
	show(&p);
	profile_clear(&p);
	return CLI_OK;
}

int
cmd_profile_test(struct cli *c, int argc, char **argv)
{
	struct profile p;
	char none[1] = "";
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami profile test ID");
	if ((rc = load(c, argv[0], &p)) != CLI_OK)
		return rc;
	rc = run_test(c, &p, none, none);
	profile_clear(&p);
	return rc;
}

/* --- export, import (docs/profiles.md) --- */

static json_t *
props_json(const char *props)
{
	json_t *o = json_object();

	for (const char *s = props; *s != '\0';) {
		size_t n = strcspn(s, ",");
		char item[PROFILE_TEXT_MAX + 1];
		snprintf(item, sizeof(item), "%.*s", (int)n, s);
		char *eq = strchr(item, '=');
		if (eq != NULL) {
			*eq = '\0';
			json_object_set_new(o, item, json_string(eq + 1));
		}
		s += n;
		if (*s == ',')
			s++;
	}
	return o;
}

static json_t *
senders_json(const char *senders)
{
	json_t *a = json_array();

	for (const char *s = senders; *s != '\0';) {
		size_t n = strcspn(s, ",");
		json_array_append_new(a, json_stringn(s, n));
		s += n;
		if (*s == ',')
			s++;
	}
	return a;
}

/* One profile as JSON; secrets are left out (C5). */
static json_t *
profile_json(const struct profile *p)
{
	json_t *pop = json_pack("{s:s, s:i, s:s, s:s}", "host", p->pop_host, "port",
	    (int)p->pop_port, "tls", profile_pop_tls_name(p->pop_tls), "account", p->pop_account);

	return json_pack("{s:s, s:s, s:i, s:b, s:b, s:s, s:b, s:s, s:s, s:s, s:s, s:b, s:I, "
	    "s:I, s:o, s:o, s:o}",
	    "id", p->id, "host", p->host, "port", (int)p->port,
	    "ssl", p->tls == PROFILE_TLS_SMTPS, "starttls", p->tls == PROFILE_TLS_STARTTLS,
	    "tls_protocol", p->tls_protocol, "tls_verify", p->tls_verify,
	    "login", profile_login_name(p->login), "auth", p->auth, "account", p->account,
	    "xmailer", p->xmailer, "debug", p->debug,
	    "connect_timeout_ms", (json_int_t)p->connect_timeout_ms,
	    "timeout_ms", (json_int_t)p->timeout_ms,
	    "properties", props_json(p->properties), "senders", senders_json(p->senders),
	    "pop_before_smtp", pop);
}

struct export_ctx {
	json_t *list;
	int argc;
	char **argv;          /* the IDs asked for (lower case), or none: all */
	bool *seen;
};

static void
export_one(void *arg, const struct profile *p)
{
	struct export_ctx *x = arg;

	if (p->builtin)
		return; /* seed 004: the default settings are never exported */
	for (int i = 0; i < x->argc; i++) {
		if (strcmp(x->argv[i], p->id) == 0)
			x->seen[i] = true;
	}
	bool wanted = x->argc == 0;
	for (int i = 0; i < x->argc && !wanted; i++)
		wanted = strcmp(x->argv[i], p->id) == 0;
	if (wanted)
		json_array_append_new(x->list, profile_json(p));
}

int
cmd_profile_export(struct cli *c, int argc, char **argv)
{
	struct export_ctx x = { 0 };
	char *error = NULL;
	int rc = CLI_OK;

	if (argc == 1 && strcmp(argv[0], "--all") == 0)
		argc = 0;
	for (int i = 0; i < argc; i++) {
		char id[PROFILE_ID_MAX + 1];
		if ((rc = id_arg(argv[i], id)) != CLI_OK)
			return rc;
		str_lower(argv[i]);
		if (strcmp(id, PROFILE_DEFAULT_ID) == 0)
			return cli_error(CLI_FAIL, "the default profile cannot be exported");
	}
	x.list = json_array();
	x.argc = argc;
	x.argv = argv;
	x.seen = xcalloc(argc > 0 ? (size_t)argc : 1, sizeof(*x.seen));
	if (profile_db_list(cli_db(c), export_one, &x, &error) < 0) {
		rc = cli_error(CLI_FAIL, "%s", error);
		free(error);
	}
	for (int i = 0; i < argc && rc == CLI_OK; i++) {
		if (!x.seen[i])
			rc = cli_error(CLI_FAIL, "no profile %s (tegami profile list)", argv[i]);
	}
	if (rc == CLI_OK) {
		json_t *doc = json_pack("{s:s, s:i, s:o}", "format", EXPORT_FORMAT, "version",
		    EXPORT_VERSION, "profiles", json_incref(x.list));
		if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ||
		    fputc('\n', stdout) == EOF || fflush(stdout) != 0)
			rc = cli_error(CLI_FAIL, "cannot write the export: %s", strerror(errno));
		json_decref(doc);
	}
	json_decref(x.list);
	free(x.seen);
	return rc;
}

/* --- import --- */

static int
json_str(json_t *o, const char *key, const char *where, char *dst, size_t size)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return CLI_OK;
	if (!json_is_string(v))
		return cli_error(CLI_USAGE, "%s: %s is not a string", where, key);
	return text(key, json_string_value(v), dst, size);
}

static int
json_bool(json_t *o, const char *key, const char *where, bool *dst)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return CLI_OK;
	if (!json_is_boolean(v))
		return cli_error(CLI_USAGE, "%s: %s is not true or false", where, key);
	*dst = json_is_true(v);
	return CLI_OK;
}

static int
json_uint(json_t *o, const char *key, const char *where, unsigned max, unsigned *dst)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return CLI_OK;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return cli_error(CLI_USAGE, "%s: %s is not a number from 0 to %u", where, key, max);
	*dst = (unsigned)json_integer_value(v);
	return CLI_OK;
}

static bool
keys_known(json_t *o, const char *const *known, const char **bad_r)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		size_t k;
		for (k = 0; known[k] != NULL && strcmp(known[k], key) != 0; k++)
			;
		if (known[k] == NULL) {
			*bad_r = key;
			return false;
		}
	}
	return true;
}

/* The lists of properties and senders back into their text form. */
static int
json_lists(json_t *o, const char *where, struct profile *p)
{
	json_t *props = json_object_get(o, "properties"), *senders = json_object_get(o, "senders");
	char text_[PROFILE_TEXT_MAX + 1] = "";
	const char *key, *why;
	json_t *v;
	size_t i, n = 0;

	if (props != NULL && !json_is_object(props))
		return cli_error(CLI_USAGE, "%s: properties is not an object", where);
	json_object_foreach(props, key, v) {
		if (!json_is_string(v))
			return cli_error(CLI_USAGE, "%s: property %s is not a string", where, key);
		if (n < sizeof(text_))
			n += (size_t)snprintf(text_ + n, sizeof(text_) - n, "%s%s=%s", n > 0 ? "," : "",
			    key, json_string_value(v));
	}
	if (n >= sizeof(text_) || profile_props_parse(text_, p->properties, NULL, &why) < 0)
		return cli_error(CLI_USAGE, "%s: properties: %s", where,
		    n >= sizeof(text_) ? "too long" : why);
	if (senders != NULL && !json_is_array(senders))
		return cli_error(CLI_USAGE, "%s: senders is not a list", where);
	n = 0;
	text_[0] = '\0';
	json_array_foreach(senders, i, v) {
		if (!json_is_string(v))
			return cli_error(CLI_USAGE, "%s: senders holds a non-string", where);
		if (n < sizeof(text_))
			n += (size_t)snprintf(text_ + n, sizeof(text_) - n, "%s%s", n > 0 ? "," : "",
			    json_string_value(v));
	}
	if (n >= sizeof(text_) || profile_senders_parse(text_, p->senders, &why) < 0)
		return cli_error(CLI_USAGE, "%s: senders: %s", where, n >= sizeof(text_) ? "too long" : why);
	return CLI_OK;
}

static int
json_pop(json_t *o, const char *where, struct profile *p)
{
	static const char *const known[] = { "host", "port", "tls", "account", NULL };
	json_t *pop = json_object_get(o, "pop_before_smtp");
	char tls[16] = "none";
	const char *bad;
	int rc;

	if (pop == NULL || json_is_null(pop))
		return CLI_OK;
	if (!json_is_object(pop))
		return cli_error(CLI_USAGE, "%s: pop_before_smtp is not an object", where);
	if (!keys_known(pop, known, &bad))
		return cli_error(CLI_USAGE, "%s: pop_before_smtp: unknown key %s", where, bad);
	if ((rc = json_str(pop, "host", where, p->pop_host, sizeof(p->pop_host))) != CLI_OK ||
	    (rc = json_uint(pop, "port", where, 65535, &p->pop_port)) != CLI_OK ||
	    (rc = json_str(pop, "tls", where, tls, sizeof(tls))) != CLI_OK ||
	    (rc = json_str(pop, "account", where, p->pop_account, sizeof(p->pop_account))) != CLI_OK)
		return rc;
	if (profile_pop_tls_parse(tls, &p->pop_tls) < 0)
		return cli_error(CLI_USAGE, "%s: pop_before_smtp.tls is not none, stls or pop3s", where);
	return CLI_OK;
}

static const char *const profile_keys[] = {
	"id", "host", "port", "ssl", "starttls", "tls_protocol", "tls_verify", "login", "auth",
	"account", "xmailer", "debug", "connect_timeout_ms", "timeout_ms", "properties", "senders",
	"pop_before_smtp", NULL,
};

/* One JSON profile into p (defaults for what it leaves out), checked. */
static int
profile_from_json(json_t *o, size_t index, struct profile *p)
{
	char where[96], id[PROFILE_ID_MAX + 1] = "", login[24] = "none", err[256];
	bool ssl = false, starttls = false;
	const char *bad;
	int rc;

	snprintf(where, sizeof(where), "profile #%zu", index + 1);
	if (!json_is_object(o))
		return cli_error(CLI_USAGE, "%s is not an object", where);
	if (!keys_known(o, profile_keys, &bad))
		return cli_error(CLI_USAGE, "%s: unknown key %s (secrets are never imported)", where, bad);
	if ((rc = json_str(o, "id", where, id, sizeof(id))) != CLI_OK)
		return rc;
	str_lower(id);
	if (!profile_id_valid(id))
		return cli_error(CLI_USAGE, "%s: no valid id", where);
	snprintf(where, sizeof(where), "profile %s", id);
	profile_init(p, id);
	if ((rc = json_str(o, "host", where, p->host, sizeof(p->host))) != CLI_OK ||
	    (rc = json_uint(o, "port", where, 65535, &p->port)) != CLI_OK ||
	    (rc = json_bool(o, "ssl", where, &ssl)) != CLI_OK ||
	    (rc = json_bool(o, "starttls", where, &starttls)) != CLI_OK ||
	    (rc = json_str(o, "tls_protocol", where, p->tls_protocol, sizeof(p->tls_protocol))) != CLI_OK ||
	    (rc = json_bool(o, "tls_verify", where, &p->tls_verify)) != CLI_OK ||
	    (rc = json_str(o, "login", where, login, sizeof(login))) != CLI_OK ||
	    (rc = json_str(o, "auth", where, p->auth, sizeof(p->auth))) != CLI_OK ||
	    (rc = json_str(o, "account", where, p->account, sizeof(p->account))) != CLI_OK ||
	    (rc = json_str(o, "xmailer", where, p->xmailer, sizeof(p->xmailer))) != CLI_OK ||
	    (rc = json_bool(o, "debug", where, &p->debug)) != CLI_OK ||
	    (rc = json_uint(o, "connect_timeout_ms", where, 600000, &p->connect_timeout_ms)) != CLI_OK ||
	    (rc = json_uint(o, "timeout_ms", where, 3600000, &p->timeout_ms)) != CLI_OK ||
	    (rc = json_lists(o, where, p)) != CLI_OK || (rc = json_pop(o, where, p)) != CLI_OK)
		return rc;
	if (ssl && starttls)
		return cli_error(CLI_USAGE, "%s: ssl and starttls exclude each other", where);
	p->tls = ssl ? PROFILE_TLS_SMTPS : starttls ? PROFILE_TLS_STARTTLS : PROFILE_TLS_NONE;
	p->login = strcmp(login, "smtp-auth") == 0 ? PROFILE_LOGIN_SMTP_AUTH :
	    strcmp(login, "pop-before-smtp") == 0 ? PROFILE_LOGIN_POP : PROFILE_LOGIN_NONE;
	if (strcmp(login, profile_login_name(p->login)) != 0)
		return cli_error(CLI_USAGE, "%s: login is not none, smtp-auth or pop-before-smtp", where);
	if (profile_check(p, err, sizeof(err)) < 0)
		return cli_error(CLI_USAGE, "%s: %s", where, err);
	return CLI_OK;
}

/* The whole file, checked, into profiles[0..*n). */
static int
import_read(const char *path, struct profile **profiles, size_t *n)
{
	json_error_t jerr;
	json_t *doc = strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &jerr) :
	    json_load_file(path, 0, &jerr);
	json_t *list, *v;
	size_t i;
	int rc = CLI_OK;

	*profiles = NULL;
	*n = 0;
	if (doc == NULL)
		return cli_error(CLI_USAGE, "%s line %d: %s", path, jerr.line, jerr.text);
	json_t *fmt = json_object_get(doc, "format"), *ver = json_object_get(doc, "version");
	list = json_object_get(doc, "profiles");
	if (!json_is_string(fmt) || strcmp(json_string_value(fmt), EXPORT_FORMAT) != 0 ||
	    !json_is_integer(ver) || !json_is_array(list)) {
		json_decref(doc);
		return cli_error(CLI_USAGE, "%s is not a profile export (tegami profile export)", path);
	}
	if (json_integer_value(ver) > EXPORT_VERSION) {
		json_decref(doc);
		return cli_error(CLI_USAGE, "%s was written by a newer tegami (version %lld)", path,
		    (long long)json_integer_value(ver));
	}
	*profiles = xcalloc(json_array_size(list) + 1, sizeof(**profiles));
	json_array_foreach(list, i, v) {
		if ((rc = profile_from_json(v, i, &(*profiles)[*n])) != CLI_OK)
			break;
		(*n)++;
	}
	json_decref(doc);
	return rc;
}

struct exists_ctx {
	struct profile *list;
	size_t n;
	bool *exists;
	struct profile *old;     /* the stored ones, to keep their secrets */
};

static void
exists_one(void *arg, const struct profile *stored)
{
	struct exists_ctx *x = arg;

	for (size_t i = 0; i < x->n; i++) {
		if (strcmp(x->list[i].id, stored->id) == 0) {
			x->exists[i] = true;
			/* Secrets never travel: an updated profile keeps its own. */
			x->list[i].secret = stored->secret != NULL ? xstrdup(stored->secret) : NULL;
			x->list[i].pop_secret = stored->pop_secret != NULL ?
			    xstrdup(stored->pop_secret) : NULL;
		}
	}
}

enum import_outcome { IMPORT_SKIP_DEFAULT, IMPORT_SKIP_EXISTS, IMPORT_ADDED, IMPORT_UPDATED };

/* Every profile in one transaction, checked against the stored ones;
 * nothing is said before it is committed. */
static int
import_write(struct cli *c, struct profile *list, size_t n, bool update)
{
	static const struct { const char *verb, *note; } words[] = {
		{ "skipped", " (the default profile is never imported)" },
		{ "skipped", " (exists; --mode update overwrites)" },
		{ "added", "" }, { "updated", "" },
	};
	struct sqlite3 *db = cli_db(c);
	struct exists_ctx x = { list, n, xcalloc(n + 1, sizeof(bool)), NULL };
	enum import_outcome *out = xcalloc(n + 1, sizeof(*out));
	size_t count[4] = { 0 };
	char *error = NULL;
	int rc = CLI_OK;

	if (db_begin(db, &error) < 0 || profile_db_list(db, exists_one, &x, &error) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		out[i] = list[i].builtin ? IMPORT_SKIP_DEFAULT : x.exists[i] && !update ?
		    IMPORT_SKIP_EXISTS : x.exists[i] ? IMPORT_UPDATED : IMPORT_ADDED;
		if (out[i] >= IMPORT_ADDED && profile_db_put(db, &list[i], false, &error) < 0)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		struct dup_ctx d = { .p = &list[i] };
		if (out[i] < IMPORT_ADDED)
			continue;
		if (profile_db_list(db, dup_check, &d, &error) < 0)
			goto fail;
		if (d.clash[0] != '\0') {
			error = xasprintf("profile %s: %s", list[i].id, d.clash);
			goto fail;
		}
	}
	if (db_commit(db, &error) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		printf("%s %s%s\n", words[out[i]].verb, list[i].id, words[out[i]].note);
		count[out[i]]++;
	}
	printf("imported: %zu added, %zu updated, %zu skipped\n", count[IMPORT_ADDED],
	    count[IMPORT_UPDATED], count[IMPORT_SKIP_DEFAULT] + count[IMPORT_SKIP_EXISTS]);
	goto out;
fail:
	db_rollback(db);
	rc = cli_error(CLI_FAIL, "%s (nothing imported)", error != NULL ? error : "database error");
	free(error);
out:
	free(x.exists);
	free(out);
	return rc;
}

int
cmd_profile_import(struct cli *c, int argc, char **argv)
{
	const char *mode = NULL, *path = NULL;
	struct profile *list = NULL;
	size_t n = 0;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
			mode = argv[++i];
		else if (strncmp(argv[i], "--mode=", 7) == 0)
			mode = argv[i] + 7;
		else if (path == NULL && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
			path = argv[i];
		else
			return cli_error(CLI_USAGE, "usage: tegami profile import --mode new|update FILE");
	}
	if (mode == NULL || path == NULL || (strcmp(mode, "new") != 0 && strcmp(mode, "update") != 0))
		return cli_error(CLI_USAGE, "usage: tegami profile import --mode new|update FILE");
	(void)cli_db(c);
	cli_as_invoker(c);        /* the file is read as the one who runs tegami */
	rc = import_read(path, &list, &n);
	cli_as_owner(c);
	if (rc == CLI_OK)
		rc = import_write(c, list, n, strcmp(mode, "update") == 0);
	for (size_t i = 0; list != NULL && i < n + 1; i++)
		profile_clear(&list[i]);
	free(list);
	return rc;
}

/* --- status --- */

static void
count_one(void *arg, const struct profile *p)
{
	if (!p->builtin)
		(*(unsigned *)arg)++;
}

void
cli_smarthost_status(struct cli *c)
{
	struct profile p;
	char *error = NULL;
	unsigned others = 0;

	if (profile_db_get(cli_db(c), PROFILE_DEFAULT_ID, &p, &error) != 1) {
		free(error);
		return;
	}
	if (!profile_default_in_use(&p)) {
		printf("smarthost: none (remote mail goes by MX)\n");
	} else {
		printf("smarthost: %s:%u, TLS %s\n", p.host[0] != '\0' ? p.host : "(not set: mail waits)",
		    p.port, profile_tls_name(p.tls));
		/* C4: which login is in use. */
		if (p.login == PROFILE_LOGIN_SMTP_AUTH)
			printf("smarthost login: SMTP AUTH (%s) as %s\n", p.auth, p.account);
		else if (p.login == PROFILE_LOGIN_POP)
			printf("smarthost login: POP-before-SMTP to %s:%u as %s\n", p.pop_host,
			    p.pop_port, p.pop_account);
		else
			printf("smarthost login: none\n");
	}
	if (profile_db_list(cli_db(c), count_one, &others, &error) == 0)
		printf("profiles: %u besides the default (tegami profile list)\n", others);
	free(error);
	profile_clear(&p);
}
