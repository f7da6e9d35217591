/* ipcount.h: how many sessions each client address holds, for the
 * per-address session limits (smtp.max_sessions_per_ip,
 * pop3.max_sessions_per_ip), and which addresses those limits exempt
 * (server.per_ip_exceptions). A hash table: an accept costs the same with
 * 10 sessions or 10,000. No mail knowledge here. */
#ifndef TEGAMI_IPCOUNT_H
#define TEGAMI_IPCOUNT_H

#include <stdbool.h>

/* In an exception list: this host's own addresses (lib/hostaddr.h). */
#define IPCOUNT_HOST "host"

struct ipcount_table;

/* Aborts on allocation failure. */
struct ipcount_table *ipcount_create(void);
void ipcount_destroy(struct ipcount_table **tp);

/* Sessions counted for ip (a printable address, at most INET6_ADDRSTRLEN - 1). */
unsigned ipcount_get(const struct ipcount_table *t, const char *ip);

/* Adds delta (+1 a session opened, -1 one closed); an address whose count
 * reaches 0 is forgotten. */
void ipcount_add(struct ipcount_table *t, const char *ip, int delta);

/* True when the per-address limit does not apply to ip: ip is in
 * exceptions, a comma-separated list of addresses, CIDR ranges and the word
 * IPCOUNT_HOST (empty: no exceptions). This host's addresses are read with
 * getifaddrs(3) when the word is first needed and again when the last
 * reading is over a second old, so that an address added to an interface
 * counts without a restart; only clients at their limit ask. */
bool ipcount_exempt(struct ipcount_table *t, const char *ip, const char *exceptions);

#endif
