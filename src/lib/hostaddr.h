/* hostaddr.h: this host's own addresses: every loopback address (127.0.0.0/8,
 * ::1) and the addresses of its interfaces, as getifaddrs(3) lists them.
 * What "this host" means in server.per_ip_exceptions. No mail knowledge. */
#ifndef TEGAMI_HOSTADDR_H
#define TEGAMI_HOSTADDR_H

#include <stdbool.h>

struct hostaddr_set;

/* An empty set (only loopback); hostaddr_set_refresh() reads the
 * interfaces. Aborts on allocation failure. */
struct hostaddr_set *hostaddr_set_create(void);
void hostaddr_set_destroy(struct hostaddr_set **setp);

/* Reads the interface addresses again. 0, or -1 with errno when
 * getifaddrs(3) fails; the previous addresses then stay. */
int hostaddr_set_refresh(struct hostaddr_set *set);

/* True when the numeric address ip is loopback or one of the interface
 * addresses read last (an IPv4-mapped IPv6 address counts as its IPv4
 * address). False for anything that does not parse. */
bool hostaddr_set_has(const struct hostaddr_set *set, const char *ip);

#endif
