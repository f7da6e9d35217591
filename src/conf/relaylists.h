/* relaylists.h: the relay-control lists of MISSION R1 and R2, read into
 * memory for the daemon: the near-domains list ("relay-domains"), the
 * address relay list ("relay-networks") and the refused-connection list
 * ("refused"). They live in the directory's `lists` table (directory.h),
 * where `tegami relay`, `tegami refuse` and `tegami list` edit them; the
 * daemon reads them again when the database changes. */
#ifndef TEGAMI_RELAYLISTS_H
#define TEGAMI_RELAYLISTS_H

#include <stdbool.h>
#include <stddef.h>

struct sqlite3;
struct relay_lists;

#define RELAY_LIST_DOMAINS "relay-domains"
#define RELAY_LIST_NETWORKS "relay-networks"
#define RELAY_LIST_REFUSED "refused"

/* Reads the three lists from db. NULL with *error_r (free) on a database
 * error. Entries that do not parse are skipped and logged. */
struct relay_lists *relay_lists_load(struct sqlite3 *db, char **error_r);
/* Three empty lists. */
struct relay_lists *relay_lists_empty(void);
void relay_lists_destroy(struct relay_lists **rlp);

/* ip (numeric) is in a range of the refused list. */
bool relay_lists_refused(const struct relay_lists *rl, const char *ip);
/* ip is in a range of the address relay list. */
bool relay_lists_network(const struct relay_lists *rl, const char *ip);
/* domain is a near domain or a subdomain of one (case-insensitive; a
 * trailing dot or an address literal never matches). */
bool relay_lists_near_domain(const struct relay_lists *rl, const char *domain);

/* Entries in each list, for the log. */
void relay_lists_counts(const struct relay_lists *rl, size_t *domains_r, size_t *networks_r,
    size_t *refused_r);

#endif
