/* cidrset.h: a set of IPv4 and IPv6 ranges ("192.0.2.0/24", "2001:db8::/32",
 * single addresses), parsed once, asked many times: the refused-connection
 * list and the address relay list are checked at every connection and every
 * relayed recipient. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is asked
 * as its IPv4 address. No mail knowledge here. */
#ifndef TEGAMI_CIDRSET_H
#define TEGAMI_CIDRSET_H

#include <stdbool.h>
#include <stddef.h>

struct cidrset;

/* An empty set. Aborts on allocation failure. */
struct cidrset *cidrset_create(void);
void cidrset_destroy(struct cidrset **setp);

/* Adds a range in the form netaddr_cidr_valid() accepts. 0, or -1 when it
 * does not parse (the set is unchanged). */
int cidrset_add(struct cidrset *set, const char *cidr);

/* True when the numeric address ip is inside one of the ranges. False for
 * anything that does not parse. */
bool cidrset_has(const struct cidrset *set, const char *ip);

size_t cidrset_count(const struct cidrset *set);

#endif
