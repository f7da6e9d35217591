/* profile.h: outbound server profiles (MISSION X1, X2, C1-C5; seed 004
 * "SMTP server settings", seed 000 `mpaossmtpauth`).
 *
 * A profile sends the mail of one sending tenant through one relay: host,
 * port, TLS (none, STARTTLS, implicit TLS) with its minimum version, a login
 * (SMTP AUTH with its mechanisms, or POP-before-SMTP), account and secret,
 * an X-Mailer header, debug logging of the dialogue, timeouts, and session
 * properties that override the automatic values. The tenant is a sender
 * domain or a named group of senders (the `senders` list). The built-in
 * profile "default" is what `tegami smtpauth` edits: it serves every sender
 * no other profile lists, its host is the setting relay.smarthost, and it
 * can be neither deleted nor exported.
 *
 * Stored in the table smtp_profiles; secrets sealed with lib/secretbox under
 * DATA/secret.key. The admin command reads and writes rows
 * (profile_db_*); the daemon keeps refcounted snapshots (profiles_*). */
#ifndef TEGAMI_PROFILE_H
#define TEGAMI_PROFILE_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct profiles;

#define PROFILE_DEFAULT_ID "default"
#define PROFILE_ID_MAX 64
#define PROFILE_HOST_MAX 255
#define PROFILE_ACCOUNT_MAX 256      /* seed 000: 256 bytes */
#define PROFILE_XMAILER_MAX 200
#define PROFILE_TEXT_MAX 1000        /* senders, properties */
#define PROFILE_AUTH_MAX 32

enum profile_tls {
	PROFILE_TLS_NONE,      /* plaintext, as chosen (seed: -t omitted) */
	PROFILE_TLS_STARTTLS,  /* STARTTLS required (RFC 3207) */
	PROFILE_TLS_SMTPS,     /* implicit TLS (RFC 8314) */
};

enum profile_login {
	PROFILE_LOGIN_NONE,
	PROFILE_LOGIN_SMTP_AUTH,   /* RFC 4954 with the configured mechanisms */
	PROFILE_LOGIN_POP,         /* a POP3 login before the SMTP sessions */
};

enum profile_pop_tls {
	PROFILE_POP_TLS_NONE,
	PROFILE_POP_TLS_STLS,      /* RFC 2595 */
	PROFILE_POP_TLS_POP3S,     /* implicit TLS */
};

/* Session properties that override the automatic values (seed 004:
 * メールセッションプロパティ). 0 / "" = automatic. */
struct profile_props {
	char helo[256];                  /* name in EHLO */
	char source[INET6_ADDRSTRLEN];   /* local address to connect from */
	bool no_pipelining;              /* pipelining=no */
	unsigned data_timeout_ms;        /* the reply after the final "." */
	unsigned max_messages;           /* per connection */
};

struct profile {
	char id[PROFILE_ID_MAX + 1];     /* lower case; "default" is built in */
	bool builtin;
	char host[PROFILE_HOST_MAX + 1];
	unsigned port;
	enum profile_tls tls;
	char tls_protocol[16];           /* minimum: TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 */
	bool tls_verify;                 /* chain and host name verified */
	enum profile_login login;
	char auth[PROFILE_AUTH_MAX];     /* "ALL", a list of CRAM-MD5,LOGIN,PLAIN, or XOAUTH2 */
	char account[PROFILE_ACCOUNT_MAX + 1];
	char *secret;                    /* sealed password or access token, NULL = none */
	char xmailer[PROFILE_XMAILER_MAX + 1];
	bool debug;                      /* log the dialogue (secrets masked) */
	unsigned connect_timeout_ms;     /* 0 = relay.connect_timeout */
	unsigned timeout_ms;             /* I/O; 0 = relay.command_timeout */
	char properties[PROFILE_TEXT_MAX + 1];  /* "key=value,..." */
	char senders[PROFILE_TEXT_MAX + 1];     /* "domain,local@domain,..." */
	char pop_host[PROFILE_HOST_MAX + 1];
	unsigned pop_port;
	enum profile_pop_tls pop_tls;
	char pop_account[PROFILE_ACCOUNT_MAX + 1];
	char *pop_secret;                /* sealed */
	/* The daemon's snapshot only (profiles_*): */
	unsigned refs;
	uint64_t generation;             /* changes with every reload */
	unsigned mechs;                  /* SMTP_AUTH_* bits of auth */
	struct profile_props props;
	char *secret_plain;              /* opened secrets, wiped when freed */
	char *pop_secret_plain;
	char secret_error[160];          /* why a secret could not be opened, or "" */
};

/* --- names and values --- */

const char *profile_tls_name(enum profile_tls t);        /* none starttls smtps */
const char *profile_login_name(enum profile_login l);    /* none smtp-auth pop-before-smtp */
const char *profile_pop_tls_name(enum profile_pop_tls t);/* none stls pop3s */
int profile_tls_parse(const char *s, enum profile_tls *r);
int profile_pop_tls_parse(const char *s, enum profile_pop_tls *r);

/* A profile ID: 1-64 of a-z 0-9 . _ @ - (upper case folded by the caller). */
bool profile_id_valid(const char *id);
/* A relay host: a domain name or an IP address. */
bool profile_host_valid(const char *host);

/* The mechanisms setting: "ALL" (CRAM-MD5, LOGIN, PLAIN), a comma list of
 * them (case-insensitive, duplicates dropped, the order kept), or
 * "XOAUTH2". Canonical text into norm (PROFILE_AUTH_MAX), SMTP_AUTH_* bits
 * into *mechs_r. 0, or -1 with a static reason. */
int profile_auth_parse(const char *text, char *norm, unsigned *mechs_r, const char **error_r);

/* "key=value,..." with the keys helo, source, pipelining, data_timeout_ms,
 * max_messages. Canonical text into norm (PROFILE_TEXT_MAX + 1; may be
 * NULL) and values into *out (may be NULL). 0, or -1 with a static
 * reason. */
int profile_props_parse(const char *text, char *norm, struct profile_props *out,
    const char **error_r);

/* "domain,local@domain,...": lower-cased canonical text into norm. 0, or -1
 * with a static reason. */
int profile_senders_parse(const char *text, char *norm, const char **error_r);

/* Rules across fields (a login needs an account, an enabled POP login a
 * POP3 server, a non-default profile a host and senders ...). 0, or -1 with
 * a one-line reason in err. */
int profile_check(const struct profile *p, char *err, size_t errsize);

/* A profile with every default (port 25, no TLS, TLSv1.3, no login, ALL). */
void profile_init(struct profile *p, const char *id);
/* Frees and wipes the secrets a profile holds (sealed and opened). */
void profile_clear(struct profile *p);

/* --- secrets (C5) --- */

/* Seals plain for profile id and field ("smtp" or "pop") under the key in
 * data_dir (made on first use). Returns the sealed text (caller frees), or
 * NULL with a reason in err. */
char *profile_secret_seal(const char *data_dir, const char *id, const char *field,
    const char *plain, char *err, size_t errsize);

/* Opens a sealed secret of profile id and field into out (outsize bytes)
 * with the key in data_dir. 0, or -1 with a reason in err. */
int profile_secret_open(const char *data_dir, const char *id, const char *field,
    const char *sealed, char *out, size_t outsize, char *err, size_t errsize);

/* --- the admin side: rows (each -1 sets *error_r, caller frees) --- */

/* 1 with *p filled (the default profile's host from relay.smarthost), 0 when
 * there is no such profile, -1 on a database error. */
int profile_db_get(struct sqlite3 *db, const char *id, struct profile *p, char **error_r);
/* Inserts (create) or replaces a row; the default profile's host goes to the
 * setting relay.smarthost. The caller wraps it in a transaction with
 * whatever else must change with it. */
int profile_db_put(struct sqlite3 *db, const struct profile *p, bool create, char **error_r);
/* Deletes a profile other than the built-in one (-1 when there is none). */
int profile_db_del(struct sqlite3 *db, const char *id, char **error_r);
/* Every profile, the default first, then by ID. fn may not touch the db. */
int profile_db_list(struct sqlite3 *db, void (*fn)(void *arg, const struct profile *p),
    void *arg, char **error_r);

/* --- the daemon side: refcounted snapshots --- */

/* The daemon's set of profiles over db (read on the loop), with the key in
 * data_dir. Empty until the first profiles_reload(). Never fails. */
struct profiles *profiles_create(struct sqlite3 *db, const char *data_dir);
/* Reads every profile again (secrets opened with the key in the data
 * directory; one that cannot be opened leaves secret_error set and is
 * logged). Snapshots in use stay valid until their last reference goes.
 * smarthost is relay.smarthost. */
void profiles_reload(struct profiles *ps, const char *smarthost);
/* The profile that sends mail from sender ("" for <>): the one listing the
 * address, else its domain, else the default one when it is in use (a
 * smarthost or a login configured), else NULL. Returns a new reference. */
struct profile *profiles_select(struct profiles *ps, const char *sender);
/* Takes a reference (p may be NULL); returns p. */
struct profile *profile_ref(struct profile *p);
/* Drops a reference (the last frees and wipes); sets *pp to NULL. */
void profile_unref(struct profile **pp);
/* Drops the set's references (snapshots still held elsewhere live on until
 * their holders drop them); sets *psp to NULL. */
void profiles_destroy(struct profiles **psp);

/* True when the default profile p is in use: mail goes to a smarthost. */
bool profile_default_in_use(const struct profile *p);

#endif
