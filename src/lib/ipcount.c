#include "lib/ipcount.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/hostaddr.h"
#include "lib/log.h"
#include "lib/netaddr.h"
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
	struct hostaddr_set *host;   /* this host's addresses, read on demand */
	struct timespec host_read;   /* when (CLOCK_MONOTONIC); 0: never */
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
	hostaddr_set_destroy(&t->host);
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

/* This host's addresses, read again when the last reading is a second old. */
static const struct hostaddr_set *
host_addresses(struct ipcount_table *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (t->host == NULL)
		t->host = hostaddr_set_create();
	if (t->host_read.tv_sec == 0 || now.tv_sec - t->host_read.tv_sec >= 1) {
		if (hostaddr_set_refresh(t->host) < 0)
			log_warn("event=getifaddrs_failed note=\"only loopback counts as this host\"");
		t->host_read = now;
	}
	return t->host;
}

bool
ipcount_exempt(struct ipcount_table *t, const char *ip, const char *exceptions)
{
	char item[128];

	for (const char *p = exceptions; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n > 0 && n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			if (strcmp(item, IPCOUNT_HOST) == 0 ? hostaddr_set_has(host_addresses(t), ip) :
			    netaddr_ip_in_cidr(ip, item))
				return true;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}
