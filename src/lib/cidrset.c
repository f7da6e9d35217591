/* cidrset.c: see cidrset.h. Ranges are kept in binary (family, 16 address
 * bytes, prefix length) and scanned in order: lists of a few hundred ranges
 * cost well under a microsecond per question. */
#include "lib/cidrset.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strutil.h"
#include "lib/xmalloc.h"

struct range {
	int family;
	unsigned char addr[16];
	unsigned bits;
};

struct cidrset {
	struct range *r;
	size_t n, cap;
};

struct cidrset *
cidrset_create(void)
{
	return xcalloc(1, sizeof(struct cidrset));
}

void
cidrset_destroy(struct cidrset **setp)
{
	struct cidrset *set = *setp;

	if (set == NULL)
		return;
	free(set->r);
	free(set);
	*setp = NULL;
}

/* ::ffff:a.b.c.d is a.b.c.d, with its prefix length moved along. */
static void
unmap(struct range *r)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (r->family != AF_INET6 || memcmp(r->addr, mapped, sizeof(mapped)) != 0 ||
	    r->bits < 96)
		return;
	memmove(r->addr, r->addr + 12, 4);
	memset(r->addr + 4, 0, 12);
	r->family = AF_INET;
	r->bits -= 96;
}

/* "ADDR[/BITS]" into r. 0, or -1. */
static int
range_parse(const char *s, struct range *r)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	uint64_t bits;

	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(r, 0, sizeof(*r));
	if (inet_pton(AF_INET, host, r->addr) == 1)
		r->family = AF_INET;
	else if (inet_pton(AF_INET6, host, r->addr) == 1)
		r->family = AF_INET6;
	else
		return -1;
	unsigned max = r->family == AF_INET ? 32 : 128;
	if (slash == NULL)
		bits = max;
	else if (str_parse_u64(slash + 1, &bits) < 0 || bits > max)
		return -1;
	r->bits = (unsigned)bits;
	unmap(r);
	return 0;
}

int
cidrset_add(struct cidrset *set, const char *cidr)
{
	struct range r;

	if (range_parse(cidr, &r) < 0)
		return -1;
	if (set->n == set->cap) {
		set->cap = set->cap == 0 ? 16 : set->cap * 2;
		set->r = xreallocarray(set->r, set->cap, sizeof(*set->r));
	}
	set->r[set->n++] = r;
	return 0;
}

static bool
range_has(const struct range *r, const struct range *a)
{
	unsigned whole = r->bits / 8, rest = r->bits % 8;

	if (r->family != a->family || memcmp(r->addr, a->addr, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff00u >> rest);
	return (r->addr[whole] & mask) == (a->addr[whole] & mask);
}

bool
cidrset_has(const struct cidrset *set, const char *ip)
{
	struct range a;

	if (set->n == 0 || strchr(ip, '/') != NULL || range_parse(ip, &a) < 0)
		return false;
	for (size_t i = 0; i < set->n; i++) {
		if (range_has(&set->r[i], &a))
			return true;
	}
	return false;
}

size_t
cidrset_count(const struct cidrset *set)
{
	return set->n;
}
