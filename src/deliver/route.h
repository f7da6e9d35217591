/* route.h: where a recipient domain's mail goes (MISSION O1), decided in
 * this order:
 *   1. a per-domain route (`tegami route add DOMAIN HOST[:PORT]`);
 *   2. a local domain (its unknown users, accepted for the mailhub): the
 *      forwarding mailhub, route.mailhub;
 *   3. with route.firewall on, the mail router (seed 002: all outgoing mail
 *      through the firewall);
 *   4. the domain's MX records (RFC 5321 §5.1: by preference, equal ones
 *      in random order; no MX records → the domain's own A/AAAA; a null
 *      MX, RFC 7505, fails at once), names looked up in the host table
 *      (seed 002: ホスト・テーブル) before DNS;
 *   5. when 4 finds no address and route.router is set, the mail router.
 * The first three give a "host" next hop (no MX lookup), the fourth an "mx"
 * one; outgoing connections and their limits are per next hop. */
#ifndef TEGAMI_ROUTE_H
#define TEGAMI_ROUTE_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct router;
struct route_req;
struct dns;
struct routing;
struct directory;
struct config;

#define ROUTE_NAME_MAX 256
#define ROUTE_TARGETS_MAX 16
#define ROUTE_MX_MAX 10

struct nexthop {
	bool mx;                    /* an MX lookup of name (else the host name) */
	char name[ROUTE_NAME_MAX];  /* the domain, or the host */
	unsigned port;
	bool router_fallback;       /* the mail router takes it when name cannot be resolved */
};

struct route_target {
	char host[ROUTE_NAME_MAX];  /* the server's name: TLS SNI and name check, logs */
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
};

enum route_status { ROUTE_OK, ROUTE_TEMPFAIL, ROUTE_PERMFAIL };

struct route_result {
	enum route_status status;
	char error[256];            /* "5.1.2 ...": enhanced code and text, when not OK */
	bool via_router;            /* the mail router stood in (step 5) */
	struct route_target t[ROUTE_TARGETS_MAX];
	size_t n;                   /* targets to try in this order */
};

typedef void route_fn(void *arg, const struct route_result *r);

/* cfg is read at each decision (it is updated in place on reload). */
struct router *router_create(struct event_base *base, struct dns *dns, struct routing *routing,
    struct directory *dir, const struct config *cfg);
void router_destroy(struct router **rtp);

/* Steps 1-4 above for a recipient domain (lower case): no I/O beyond the
 * tables. */
void router_nexthop(struct router *rt, const char *domain, struct nexthop *nh);

/* The destination key of a next hop ("mx:DOMAIN" / "host:NAME:PORT"). */
void nexthop_key(const struct nexthop *nh, char *buf, size_t size);

/* Resolves a next hop to addresses to try (step 4 and 5 included). fn is
 * called once, always later from the event loop, unless the request is
 * cancelled. */
struct route_req *router_resolve(struct router *rt, const struct nexthop *nh, route_fn *fn,
    void *arg);
void router_cancel(struct route_req **reqp);

#endif
