/* dns.h: asynchronous DNS on the event loop with c-ares (MX, A/AAAA, TXT).
 * c-ares says which sockets to watch (ARES_OPT_SOCK_STATE_CB); one timer
 * carries its timeouts. A lookup never blocks the loop. No mail knowledge
 * here: the MX ordering rules live with the router (deliver/route).
 *
 * Contract: a query's callback is called exactly once, later from the event
 * loop, unless the query is cancelled first (dns_cancel); it may start
 * further queries and may cancel others. */
#ifndef TEGAMI_DNS_H
#define TEGAMI_DNS_H

#include <arpa/inet.h>
#include <stddef.h>

struct dns;
struct dns_query;
struct event_base;

struct dns_settings {
	const char *servers;   /* "IP[:PORT],..." or "" for /etc/resolv.conf */
	unsigned timeout_ms;   /* per try */
	unsigned tries;
};

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,   /* the name does not exist: permanent */
	DNS_NODATA,     /* the name exists without records of that type */
	DNS_TEMPFAIL,   /* timeout, SERVFAIL, refused …: try again later */
};

#define DNS_NAME_MAX 256
#define DNS_ANSWERS_MAX 32

struct dns_mx {
	unsigned pref;
	char host[DNS_NAME_MAX];   /* "" for the root (a null MX, RFC 7505) */
};

struct dns_ip {
	int family;                /* AF_INET or AF_INET6 */
	char ip[INET6_ADDRSTRLEN];
};

typedef void dns_mx_fn(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n);
typedef void dns_ip_fn(void *arg, enum dns_status st, const struct dns_ip *ips, size_t n);
/* texts: each TXT record's strings joined, NUL-terminated. */
typedef void dns_txt_fn(void *arg, enum dns_status st, const char *const *texts, size_t n);

/* dns_a() does not know how long an answer may be kept. */
#define DNS_TTL_UNKNOWN 0xffffffffu

/* ips: the IPv4 addresses of the A records. ttl: how long the answer may be
 * cached, in seconds: for DNS_OK the smallest TTL of the A records; for
 * DNS_NXDOMAIN and DNS_NODATA the negative-caching time of RFC 2308 §5 (the
 * SOA of the authority section: the smaller of its TTL and its MINIMUM);
 * DNS_TTL_UNKNOWN when the answer does not say (no SOA, or a failure). */
typedef void dns_a_fn(void *arg, enum dns_status st, const struct dns_ip *ips, size_t n,
    unsigned ttl);

/* A resolver on base. NULL with *error_r when c-ares cannot start or the
 * server list is bad. */
struct dns *dns_create(struct event_base *base, const struct dns_settings *s,
    const char **error_r);
/* New settings for queries started from now on (queries in flight finish
 * on the old ones). 0, or -1 with *error_r (the old settings stay). */
int dns_configure(struct dns *d, const struct dns_settings *s, const char **error_r);
/* Cancels every query (no callbacks) and frees the resolver. */
void dns_destroy(struct dns **dp);

/* MX records of name (at most DNS_ANSWERS_MAX, in answer order). */
struct dns_query *dns_mx(struct dns *d, const char *name, dns_mx_fn *fn, void *arg);
/* A and AAAA records of name (at most DNS_ANSWERS_MAX). */
struct dns_query *dns_ip(struct dns *d, const char *name, dns_ip_fn *fn, void *arg);
/* A records of name only (no AAAA, no search list), with the TTL that
 * tells how long the answer holds (DNSBL look-ups, RFC 5782 §2.1). */
struct dns_query *dns_a(struct dns *d, const char *name, dns_a_fn *fn, void *arg);
/* TXT records of name. */
struct dns_query *dns_txt(struct dns *d, const char *name, dns_txt_fn *fn, void *arg);

/* The callback will not be called; sets *qp to NULL. */
void dns_cancel(struct dns_query **qp);

/* Queries in flight (status, tests). */
size_t dns_pending(const struct dns *d);

#endif
