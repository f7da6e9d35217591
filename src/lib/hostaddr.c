/* hostaddr.c: see hostaddr.h. The addresses are kept in binary, one
 * family byte and 16 address bytes each, and compared whole: an interface
 * address says nothing of its subnet's other hosts. */
#include "lib/hostaddr.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/xmalloc.h"

struct hostaddr {
	int family;                /* AF_INET or AF_INET6 */
	unsigned char addr[16];    /* IPv4 in the first 4 bytes */
};

struct hostaddr_set {
	struct hostaddr *addrs;
	size_t n;
};

struct hostaddr_set *
hostaddr_set_create(void)
{
	return xcalloc(1, sizeof(struct hostaddr_set));
}

void
hostaddr_set_destroy(struct hostaddr_set **setp)
{
	struct hostaddr_set *set = *setp;

	if (set == NULL)
		return;
	free(set->addrs);
	free(set);
	*setp = NULL;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes a.b.c.d. */
static void
addr_normalize(struct hostaddr *a)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (a->family == AF_INET6 && memcmp(a->addr, mapped, sizeof(mapped)) == 0) {
		memmove(a->addr, a->addr + 12, 4);
		memset(a->addr + 4, 0, 12);
		a->family = AF_INET;
	}
}

/* sa's address into a. False for families other than IPv4 and IPv6. */
static bool
addr_from_sockaddr(const struct sockaddr *sa, struct hostaddr *a)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		memcpy(&sin, sa, sizeof(sin));
		a->family = AF_INET;
		memcpy(a->addr, &sin.sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(&sin6, sa, sizeof(sin6));
		a->family = AF_INET6;
		memcpy(a->addr, &sin6.sin6_addr, 16);
		addr_normalize(a);
	} else {
		return false;
	}
	return true;
}

int
hostaddr_set_refresh(struct hostaddr_set *set)
{
	struct ifaddrs *list, *ifa;
	size_t n = 0, cap = 8;

	if (getifaddrs(&list) < 0)
		return -1;
	struct hostaddr *addrs = xreallocarray(NULL, cap, sizeof(*addrs));
	for (ifa = list; ifa != NULL; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || !addr_from_sockaddr(ifa->ifa_addr, &addrs[n]))
			continue;
		if (++n == cap) {
			cap *= 2;
			addrs = xreallocarray(addrs, cap, sizeof(*addrs));
		}
	}
	freeifaddrs(list);
	free(set->addrs);
	set->addrs = addrs;
	set->n = n;
	return 0;
}

/* Parses a numeric address as addr_from_sockaddr() stores it. */
static bool
addr_parse(const char *ip, struct hostaddr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, ip, a->addr) == 1) {
		a->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, ip, a->addr) != 1)
		return false;
	a->family = AF_INET6;
	addr_normalize(a);
	return true;
}

static bool
addr_loopback(const struct hostaddr *a)
{
	static const unsigned char v6_loopback[16] = { [15] = 1 };

	if (a->family == AF_INET)
		return a->addr[0] == 127;
	return memcmp(a->addr, v6_loopback, 16) == 0;
}

bool
hostaddr_set_has(const struct hostaddr_set *set, const char *ip)
{
	struct hostaddr a;

	if (!addr_parse(ip, &a))
		return false;
	if (addr_loopback(&a))
		return true;
	for (size_t i = 0; i < set->n; i++) {
		if (set->addrs[i].family == a.family &&
		    memcmp(set->addrs[i].addr, a.addr, sizeof(a.addr)) == 0)
			return true;
	}
	return false;
}
