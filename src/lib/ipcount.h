/* ipcount.h: how many sessions each client address holds, for the
 * per-address session limits (smtp.max_sessions_per_ip,
 * pop3.max_sessions_per_ip). A hash table: an accept costs the same with
 * 10 sessions or 10,000. No mail knowledge here. */
#ifndef TEGAMI_IPCOUNT_H
#define TEGAMI_IPCOUNT_H

struct ipcount_table;

/* Aborts on allocation failure. */
struct ipcount_table *ipcount_create(void);
void ipcount_destroy(struct ipcount_table **tp);

/* Sessions counted for ip (a printable address, at most INET6_ADDRSTRLEN - 1). */
unsigned ipcount_get(const struct ipcount_table *t, const char *ip);

/* Adds delta (+1 a session opened, -1 one closed); an address whose count
 * reaches 0 is forgotten. */
void ipcount_add(struct ipcount_table *t, const char *ip, int delta);

#endif
