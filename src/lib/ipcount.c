#include "lib/ipcount.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strutil.h"
#include "lib/xmalloc.h"

#define IPCOUNT_BUCKETS 1024

struct ipcount {
	struct ipcount *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

struct ipcount_table {
	struct ipcount *buckets[IPCOUNT_BUCKETS];
};

struct ipcount_table *
ipcount_create(void)
{
	return xcalloc(1, sizeof(struct ipcount_table));
}

void
ipcount_destroy(struct ipcount_table **tp)
{
	struct ipcount_table *t = *tp;

	if (t == NULL)
		return;
	for (size_t i = 0; i < IPCOUNT_BUCKETS; i++) {
		while (t->buckets[i] != NULL) {
			struct ipcount *next = t->buckets[i]->next;
			free(t->buckets[i]);
			t->buckets[i] = next;
		}
	}
	free(t);
	*tp = NULL;
}

static unsigned
ip_hash(const char *ip)
{
	unsigned h = 5381;

	for (const char *p = ip; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	return h % IPCOUNT_BUCKETS;
}

static struct ipcount **
ipcount_find(struct ipcount_table *t, const char *ip)
{
	struct ipcount **pp = &t->buckets[ip_hash(ip)];

	while (*pp != NULL && strcmp((*pp)->ip, ip) != 0)
		pp = &(*pp)->next;
	return pp;
}

unsigned
ipcount_get(const struct ipcount_table *t, const char *ip)
{
	const struct ipcount *c = *ipcount_find((struct ipcount_table *)t, ip);

	return c != NULL ? c->count : 0;
}

void
ipcount_add(struct ipcount_table *t, const char *ip, int delta)
{
	struct ipcount **pp = ipcount_find(t, ip);

	if (*pp == NULL) {
		if (delta < 0)
			return;
		*pp = xcalloc(1, sizeof(**pp));
		str_copy((*pp)->ip, ip, sizeof((*pp)->ip));
	}
	(*pp)->count = (unsigned)((int)(*pp)->count + delta);
	if ((*pp)->count == 0) {
		struct ipcount *dead = *pp;
		*pp = dead->next;
		free(dead);
	}
}
