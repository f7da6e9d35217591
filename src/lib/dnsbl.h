/* dnsbl.h: DNS blocklists (RFC 5782) on lib/dns, for the connection
 * restrictions (seed 002 接続制限: "Realtime Blackhole List" hosts).
 *
 * A client address is looked up in every zone at once: the A record of its
 * reversed form under the zone (4.3.2.1.zone for 1.2.3.4; 32 nibbles for
 * IPv6). An answer 127.0.0.2 to 127.0.0.255 lists it (RFC 5782 §2.3; other
 * answers, 127.0.0.1 or a list's 127.255.255.x error codes, are logged and
 * do not list); then the zone's TXT record for the same name gives the
 * reason. Answers are kept for their TTL (DNSBL_TTL_MIN..DNSBL_TTL_MAX
 * seconds; a negative answer without a SOA: DNSBL_NEGATIVE_TTL) in a
 * bounded cache, and a name already being looked up is not asked twice:
 * every check waiting for it is told when it comes. A check has a deadline:
 * a zone that has not answered by then counts as not listing the address,
 * as does a zone that fails.
 *
 * No mail knowledge here: the caller decides what a listing means. */
#ifndef TEGAMI_DNSBL_H
#define TEGAMI_DNSBL_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/dns.h"

struct event_base;
struct dnsbl;
struct dnsbl_check;

#define DNSBL_ZONES_MAX 16     /* zones asked per check; more are ignored */
#define DNSBL_TEXT_MAX 200     /* TXT kept (printable ASCII), NUL included */
#define DNSBL_CACHE_MAX 50000  /* names remembered */
#define DNSBL_TTL_MIN 1
#define DNSBL_TTL_MAX 3600
#define DNSBL_NEGATIVE_TTL 60

struct dnsbl_result {
	bool listed;
	char zone[DNS_NAME_MAX];        /* the zone that lists the address */
	char answer[INET_ADDRSTRLEN];   /* its A record, 127.0.0.x */
	char text[DNSBL_TEXT_MAX];      /* its TXT record, "" when it has none */
	unsigned unanswered;            /* zones that failed or missed the deadline */
};

/* Called once with the outcome; the check is already freed. */
typedef void dnsbl_fn(void *arg, const struct dnsbl_result *r);

/* A blocklist client on dns (which must outlive it). Aborts on allocation
 * failure. */
struct dnsbl *dnsbl_create(struct event_base *base, struct dns *dns);
/* Frees the cache and drops the look-ups in flight. Every check must have
 * been cancelled or answered before. */
void dnsbl_destroy(struct dnsbl **bp);

/* Checks the numeric address ip against zones (comma-separated). Returns 1
 * when the outcome is known now (from the cache, or no zone at all): it is
 * in *now_r and fn is never called. Returns 0 when look-ups are under way:
 * fn(arg, result) is called once from the event loop within timeout_ms,
 * unless dnsbl_check_cancel() comes first; *check_r is the handle. Returns
 * -1 when ip is not a numeric address (*now_r: not listed). */
int dnsbl_check(struct dnsbl *b, const char *ip, const char *zones, unsigned timeout_ms,
    dnsbl_fn *fn, void *arg, struct dnsbl_result *now_r, struct dnsbl_check **check_r);

/* The callback will not be called; sets *cp to NULL. The look-ups go on and
 * fill the cache. */
void dnsbl_check_cancel(struct dnsbl_check **cp);

/* Names in the cache (answered or being looked up), for tests and status. */
size_t dnsbl_cache_entries(const struct dnsbl *b);

/* The name looked up for ip in zone ("4.3.2.1.zone"), into buf
 * (DNS_NAME_MAX). 0, or -1 when ip is not numeric or the name is too long. */
int dnsbl_query_name(const char *ip, const char *zone, char *buf, size_t size);

#endif
