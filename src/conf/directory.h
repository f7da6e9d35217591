/* directory.h: local domains, users and aliases (MISSION S4, D1) in SQLite,
 * and recipient resolution for RCPT TO. The daemon queries the database on
 * each lookup, so a change made by `tegami` applies to the next RCPT. */
#ifndef TEGAMI_DIRECTORY_H
#define TEGAMI_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/addr.h"

struct sqlite3;
struct directory;

/* Iteration for `list`: calls fn once per row, with NULL for absent columns. */
typedef void directory_row_fn(void *arg, const char *a, const char *b);

/* Most mailboxes one RCPT may expand to through aliases. */
#define DIR_TARGETS_MAX 256
/* Alias chains longer than this are a loop. */
#define DIR_ALIAS_DEPTH 8
/* "local@domain", lower case. */
#define DIR_MAILBOX_MAX (ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX + 1)

enum dir_result {
	DIR_LOCAL = 0,      /* resolved to one or more local mailboxes */
	DIR_NOT_LOCAL = 1,  /* domain is not ours: a relay */
	DIR_UNKNOWN = 2,    /* our domain, no such user or alias */
	DIR_TEMPFAIL = -1,  /* database error: 451 */
};

struct dir_targets {
	size_t n;
	char mailbox[DIR_TARGETS_MAX][DIR_MAILBOX_MAX];
};

/* Wraps an open database; prepared statements are cached. */
struct directory *directory_create(struct sqlite3 *db);
void directory_destroy(struct directory **dirp);
struct sqlite3 *directory_db(struct directory *dir);

bool directory_domain_exists(struct directory *dir, const char *domain);
bool directory_user_exists(struct directory *dir, const char *mailbox);

/* Resolves a recipient: postmaster (any case, RFC 5321 §4.5.1) to the
 * domain's postmaster, then aliases (recursively), then users. With
 * percent_routing, user%host@local-domain is resolved as user@host. */
enum dir_result directory_resolve(struct directory *dir, const struct mail_addr *rcpt,
    bool percent_routing, struct dir_targets *out);

/* directory_resolve() for mail that arrived on the local address local_ip
 * (S4, seed 002 "multiple domains"): a domain bound to listen addresses is
 * local only on those; on any other address it is DIR_NOT_LOCAL, exactly as
 * a domain that is not ours. local_ip NULL or "" checks no binding. The bare
 * <Postmaster> (RFC 5321 §4.5.1) is accepted on every address. */
enum dir_result directory_resolve_at(struct directory *dir, const struct mail_addr *rcpt,
    bool percent_routing, const char *local_ip, struct dir_targets *out);

/* A5 (seed 003 "postmaster, abuse, webmaster"): true when mailbox
 * ("local@domain", in a local domain) is postmaster@, abuse@ or webmaster@
 * of any local domain, or an alias whose targets lead (through at most
 * DIR_ALIAS_DEPTH aliases) to one of those. A database error counts as
 * true: the rule then asks for AUTH rather than letting mail through. */
bool directory_role_address(struct directory *dir, const char *mailbox);

/* Validates a mailbox local part as the admin may create it: lower-case
 * letters, digits and "._+-", not starting with "." nor containing "..",
 * so that it is safe as a path component. */
bool directory_local_part_valid(const char *local);

/* --- admin operations; -1 sets *error_r (free). Each is one transaction,
 * or part of the caller's when one is open (db_begin): then a failure
 * leaves the caller to roll back. --- */
int directory_domain_add(struct directory *dir, const char *domain, const char *postmaster,
    char **error_r);
int directory_domain_del(struct directory *dir, const char *domain, char **error_r);

/* Most listen addresses one domain may be bound to. */
#define DIR_BIND_MAX 16
/* Room for a normalized bind list: DIR_BIND_MAX IPv6 addresses and commas. */
#define DIR_BIND_LEN (DIR_BIND_MAX * 46)
/* Checks "ADDR[,ADDR...]" (IPv4 or IPv6 addresses, no ranges, blanks after
 * commas allowed) and writes its canonical form (inet_ntop, duplicates
 * dropped, order kept) into out (DIR_BIND_LEN bytes). 0, or -1 with a
 * static one-line reason. */
int directory_bind_normalize(const char *in, char *out, size_t size, const char **error_r);
/* Binds domain to the listen addresses of a normalized list, or unbinds it
 * (bind NULL): S4. -1 with *error_r (free) when there is no such domain. */
int directory_domain_set_bind(struct directory *dir, const char *domain, const char *bind,
    char **error_r);
/* Sets the domain's postmaster target (NULL: postmaster@domain itself). */
int directory_domain_set_postmaster(struct directory *dir, const char *domain,
    const char *postmaster, char **error_r);
/* The domain's bind list into buf ("" when unbound). 1 found, 0 no such
 * domain, -1 database error. */
int directory_domain_bind_get(struct directory *dir, const char *domain, char *buf,
    size_t size);
/* hash: crypt(3) string or NULL (no login); cram: CRAM-MD5 secret or NULL. */
int directory_user_add(struct directory *dir, const char *address, const char *hash,
    const char *cram, char **error_r);
int directory_user_del(struct directory *dir, const char *address, char **error_r);
int directory_user_set_password(struct directory *dir, const char *address,
    const char *hash, const char *cram, char **error_r);
/* Sets or clears (cram NULL) only the CRAM-MD5 secret. */
int directory_user_set_cram(struct directory *dir, const char *address, const char *cram,
    char **error_r);

/* Login credentials of a user, copied into the caller's buffers ("" when
 * absent). 1 found, 0 no such user, -1 database error. */
int directory_user_credentials(struct directory *dir, const char *address, char *hash,
    size_t hashsize, char *cram, size_t cramsize);

/* --- policy lists (A5, A6): "trusted" (IPs / CIDR ranges exempt from the
 * local-IP rule), "exempt" (addresses exempt from the AUTH identity match
 * rules), "accept" (addresses the mail-from check skips), "smtp-users"
 * (the users auth.verify_ids_local lets authenticate to SMTP); relay control
 * (R1, R2): "relay-domains" (the near-domains list: domains, each with its
 * subdomains, that anyone may relay to in the modes that use it),
 * "relay-networks" (the address relay list: IP / CIDR ranges that may
 * relay), "refused" (IP / CIDR ranges refused at connect) --- */
bool directory_list_name_valid(const char *name);
/* True for address lists (exempt, accept, smtp-users). */
bool directory_list_holds_addresses(const char *name);
/* True for domain lists (relay-domains); the others hold IP / CIDR ranges. */
bool directory_list_holds_domains(const char *name);
int directory_list_add(struct directory *dir, const char *name, const char *entry,
    char **error_r);
int directory_list_del(struct directory *dir, const char *name, const char *entry,
    char **error_r);
int directory_list_show(struct directory *dir, const char *name, directory_row_fn *fn,
    void *arg);
/* Address lists: exact, case-insensitive match. IP lists: ip in a range. */
bool directory_list_has(struct directory *dir, const char *name, const char *value);

/* --- server access lists per listener (A3): entries are user addresses or
 * IP/CIDR ranges --- */
int directory_access_add(struct directory *dir, const char *listener, const char *entry,
    char **error_r);
int directory_access_del(struct directory *dir, const char *listener, const char *entry,
    char **error_r);
int directory_access_list(struct directory *dir, const char *listener, directory_row_fn *fn,
    void *arg);
/* True when ip is in a CIDR entry of listener, or user (may be NULL) is. */
bool directory_access_allows(struct directory *dir, const char *listener, const char *ip,
    const char *user);
int directory_alias_add(struct directory *dir, const char *address, const char *target,
    char **error_r);
/* target NULL removes every target of the alias. */
int directory_alias_del(struct directory *dir, const char *address, const char *target,
    char **error_r);

int directory_domain_list(struct directory *dir, directory_row_fn *fn, void *arg);
int directory_user_list(struct directory *dir, const char *domain, directory_row_fn *fn, void *arg);
int directory_alias_list(struct directory *dir, const char *address, directory_row_fn *fn, void *arg);

#endif
