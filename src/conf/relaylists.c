/* relaylists.c: see relaylists.h. */
#include "conf/relaylists.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/cidrset.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

struct relay_lists {
	struct cidrset *networks;
	struct cidrset *refused;
	char **domains;
	size_t ndomains, domains_cap;
};

struct relay_lists *
relay_lists_empty(void)
{
	struct relay_lists *rl = xcalloc(1, sizeof(*rl));

	rl->networks = cidrset_create();
	rl->refused = cidrset_create();
	return rl;
}

void
relay_lists_destroy(struct relay_lists **rlp)
{
	struct relay_lists *rl = *rlp;

	if (rl == NULL)
		return;
	cidrset_destroy(&rl->networks);
	cidrset_destroy(&rl->refused);
	for (size_t i = 0; i < rl->ndomains; i++)
		free(rl->domains[i]);
	free(rl->domains);
	free(rl);
	*rlp = NULL;
}

static void
domain_add(struct relay_lists *rl, const char *domain)
{
	if (rl->ndomains == rl->domains_cap) {
		rl->domains_cap = rl->domains_cap == 0 ? 16 : rl->domains_cap * 2;
		rl->domains = xreallocarray(rl->domains, rl->domains_cap, sizeof(*rl->domains));
	}
	rl->domains[rl->ndomains++] = xstrdup(domain);
}

static void
entry_add(struct relay_lists *rl, const char *name, const char *entry)
{
	if (strcmp(name, RELAY_LIST_DOMAINS) == 0) {
		domain_add(rl, entry);
		return;
	}
	struct cidrset *set = strcmp(name, RELAY_LIST_NETWORKS) == 0 ? rl->networks : rl->refused;
	if (cidrset_add(set, entry) < 0)
		log_warn("event=list_entry_skipped list=%s entry=\"%s\" reason=\"not an IP address "
		    "or CIDR range\"", name, entry);
}

struct relay_lists *
relay_lists_load(struct sqlite3 *db, char **error_r)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT name, entry FROM lists WHERE name IN ('"
	    RELAY_LIST_DOMAINS "', '" RELAY_LIST_NETWORKS "', '" RELAY_LIST_REFUSED "') "
	    "ORDER BY name, entry", -1, &st, NULL) != SQLITE_OK) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return NULL;
	}
	struct relay_lists *rl = relay_lists_empty();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		entry_add(rl, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		relay_lists_destroy(&rl);
		return NULL;
	}
	return rl;
}

bool
relay_lists_refused(const struct relay_lists *rl, const char *ip)
{
	return cidrset_has(rl->refused, ip);
}

bool
relay_lists_network(const struct relay_lists *rl, const char *ip)
{
	return cidrset_has(rl->networks, ip);
}

/* domain is entry, or ends in "." entry: "mail.example.org" is under
 * "example.org"; "badexample.org" and "example.org.evil" are not. */
static bool
domain_under(const char *domain, size_t dl, const char *entry)
{
	size_t el = strlen(entry);

	if (dl < el || strcasecmp(domain + dl - el, entry) != 0)
		return false;
	return dl == el || domain[dl - el - 1] == '.';
}

bool
relay_lists_near_domain(const struct relay_lists *rl, const char *domain)
{
	size_t dl = strlen(domain);

	if (dl == 0 || domain[0] == '[' || domain[dl - 1] == '.')
		return false;
	for (size_t i = 0; i < rl->ndomains; i++) {
		if (domain_under(domain, dl, rl->domains[i]))
			return true;
	}
	return false;
}

void
relay_lists_counts(const struct relay_lists *rl, size_t *domains_r, size_t *networks_r,
    size_t *refused_r)
{
	*domains_r = rl->ndomains;
	*networks_r = cidrset_count(rl->networks);
	*refused_r = cidrset_count(rl->refused);
}
