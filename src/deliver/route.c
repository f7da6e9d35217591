/* route.c: next hops and their addresses (route.h). */
#include "deliver/route.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "conf/directory.h"
#include "conf/routing.h"
#include "conf/settings.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

struct router {
	struct event_base *base;
	struct dns *dns;
	struct routing *routing;
	struct directory *dir;
	const struct config *cfg;
};

struct route_host {
	char name[ROUTE_NAME_MAX];
	unsigned pref;
	struct route_req *req;
	struct dns_query *q;
	enum dns_status st;
	struct dns_ip ips[ROUTING_HOSTS_MAX];
	size_t nips;
};

struct route_req {
	struct router *rt;
	struct nexthop nh;
	route_fn *fn;
	void *arg;
	struct dns_query *mxq;
	struct route_host hosts[ROUTE_MX_MAX];
	size_t nhosts;
	size_t outstanding;        /* host lookups not answered yet */
	bool tried_router;
	struct event *defer;       /* an answer known at once leaves from the loop */
	struct route_result res;
};

struct router *
router_create(struct event_base *base, struct dns *dns, struct routing *routing,
    struct directory *dir, const struct config *cfg)
{
	struct router *rt = xcalloc(1, sizeof(*rt));

	rt->base = base;
	rt->dns = dns;
	rt->routing = routing;
	rt->dir = dir;
	rt->cfg = cfg;
	return rt;
}

void
router_destroy(struct router **rtp)
{
	free(*rtp);
	*rtp = NULL;
}

/* A HOST[:PORT] setting or route into a host next hop. False when empty or
 * malformed (the settings table validates, so only a hand-edited row). */
static bool
host_nexthop(const char *spec, unsigned default_port, struct nexthop *nh)
{
	const char *error;

	if (spec == NULL || spec[0] == '\0')
		return false;
	if (netaddr_hostport_parse(spec, nh->name, sizeof(nh->name), default_port, &nh->port,
	    &error) < 0) {
		log_warn("event=bad_route target=\"%s\" error=\"%s\"", spec, error);
		return false;
	}
	nh->mx = false;
	return true;
}

void
router_nexthop(struct router *rt, const char *domain, struct nexthop *nh)
{
	const struct config *cfg = rt->cfg;
	char target[300];
	unsigned port = (unsigned)cfg->relay_port;

	memset(nh, 0, sizeof(*nh));
	if (routing_route(rt->routing, domain, target, sizeof(target)) == 1 &&
	    host_nexthop(target, port, nh))
		return;
	if (directory_domain_exists(rt->dir, domain) && host_nexthop(cfg->route_mailhub, port, nh))
		return;
	if (cfg->route_firewall && host_nexthop(cfg->route_router, port, nh))
		return;
	nh->mx = true;
	str_copy(nh->name, domain, sizeof(nh->name));
	nh->port = port;
	nh->router_fallback = cfg->route_router[0] != '\0';
}

void
nexthop_key(const struct nexthop *nh, char *buf, size_t size)
{
	if (nh->mx)
		snprintf(buf, size, "mx:%s", nh->name);
	else
		snprintf(buf, size, "host:%s:%u", nh->name, nh->port);
}

/* --- resolution --- */

static void req_finish(struct route_req *req);

static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	req_finish(arg);
}

/* The answer is complete: hand it over from the loop (never from inside
 * router_resolve). */
static void
req_answer(struct route_req *req)
{
	struct timeval now = { 0, 0 };

	if (req->defer == NULL)
		req->defer = evtimer_new(req->rt->base, defer_cb, req);
	evtimer_add(req->defer, &now);
}

static void
req_free(struct route_req *req)
{
	dns_cancel(&req->mxq);
	for (size_t i = 0; i < req->nhosts; i++)
		dns_cancel(&req->hosts[i].q);
	if (req->defer != NULL)
		event_free(req->defer);
	free(req);
}

static void
req_finish(struct route_req *req)
{
	route_fn *fn = req->fn;
	void *arg = req->arg;
	struct route_result res = req->res;

	req_free(req);
	fn(arg, &res); /* may start or cancel other requests */
}

static void
fail(struct route_req *req, enum route_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void start(struct route_req *req);

static void
fail(struct route_req *req, enum route_status st, const char *fmt, ...)
{
	va_list ap;
	const struct config *cfg = req->rt->cfg;

	/* Step 5: the mail router takes what cannot be resolved. */
	char domain[ROUTE_NAME_MAX];
	str_copy(domain, req->nh.name, sizeof(domain));
	if (req->nh.mx && req->nh.router_fallback && !req->tried_router &&
	    host_nexthop(cfg->route_router, (unsigned)cfg->relay_port, &req->nh)) {
		log_info("event=route_fallback domain=%s router=%s", domain, req->nh.name);
		req->tried_router = true;
		req->res.via_router = true;
		req->nhosts = 0;
		start(req);
		return;
	}
	req->res.status = st;
	va_start(ap, fmt);
	vsnprintf(req->res.error, sizeof(req->res.error), fmt, ap);
	va_end(ap);
	req_answer(req);
}

static void
add_target(struct route_req *req, const char *host, const char *ip, unsigned port)
{
	struct route_result *r = &req->res;

	if (r->n == ROUTE_TARGETS_MAX)
		return;
	str_copy(r->t[r->n].host, host, sizeof(r->t[r->n].host));
	str_copy(r->t[r->n].ip, ip, sizeof(r->t[r->n].ip));
	r->t[r->n].port = port;
	r->n++;
}

/* Every host lookup is in: targets in MX order, then their addresses. */
static void
hosts_done(struct route_req *req)
{
	bool temp = false;

	req->res.n = 0;
	for (size_t i = 0; i < req->nhosts; i++) {
		struct route_host *h = &req->hosts[i];
		for (size_t k = 0; k < h->nips; k++)
			add_target(req, h->name, h->ips[k].ip, req->nh.port);
		temp = temp || h->st == DNS_TEMPFAIL;
	}
	if (req->res.n > 0) {
		req->res.status = ROUTE_OK;
		req_answer(req);
		return;
	}
	if (temp)
		fail(req, ROUTE_TEMPFAIL, "4.4.3 cannot look up the addresses of %s "
		    "(DNS temporary failure)", req->nh.name);
	else if (req->nh.mx)
		fail(req, ROUTE_PERMFAIL, "5.4.4 %s has no address to send mail to "
		    "(no MX or A/AAAA records)", req->nh.name);
	else
		fail(req, ROUTE_TEMPFAIL, "4.4.4 cannot find the address of %s", req->nh.name);
}

static void
host_ip_cb(void *arg, enum dns_status st, const struct dns_ip *ips, size_t n)
{
	struct route_host *h = arg;
	struct route_req *req = h->req;

	h->q = NULL;
	h->st = st;
	for (size_t i = 0; i < n && h->nips < sizeof(h->ips) / sizeof(h->ips[0]); i++)
		h->ips[h->nips++] = ips[i];
	if (--req->outstanding == 0)
		hosts_done(req);
}

/* Looks a host up: a numeric address, the host table, else DNS. True when
 * answered at once. */
static bool
host_lookup(struct route_req *req, struct route_host *h)
{
	char ips[ROUTING_HOSTS_MAX][INET6_ADDRSTRLEN];

	h->req = req;
	if (netaddr_is_ip(h->name)) {
		h->st = DNS_OK;
		h->ips[0].family = strchr(h->name, ':') != NULL ? AF_INET6 : AF_INET;
		str_copy(h->ips[0].ip, h->name, sizeof(h->ips[0].ip));
		h->nips = 1;
		return true;
	}
	int n = routing_hosts(req->rt->routing, h->name, ips, ROUTING_HOSTS_MAX);
	if (n > 0) {
		h->st = DNS_OK;
		for (int i = 0; i < n && h->nips < sizeof(h->ips) / sizeof(h->ips[0]); i++) {
			h->ips[h->nips].family = strchr(ips[i], ':') != NULL ? AF_INET6 : AF_INET;
			str_copy(h->ips[h->nips].ip, ips[i], sizeof(h->ips[h->nips].ip));
			h->nips++;
		}
		return true;
	}
	req->outstanding++;
	h->q = dns_ip(req->rt->dns, h->name, host_ip_cb, h);
	return false;
}

/* Looks up every host in req->hosts; hosts_done once all are in. */
static void
lookup_hosts(struct route_req *req)
{
	req->outstanding = 1; /* held while starting */
	for (size_t i = 0; i < req->nhosts; i++)
		(void)host_lookup(req, &req->hosts[i]);
	if (--req->outstanding == 0)
		hosts_done(req);
}

static unsigned
random_u32(void)
{
	unsigned v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (unsigned)rand();
	return v;
}

static void
mx_cb(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n)
{
	struct route_req *req = arg;
	struct dns_mx sorted[DNS_ANSWERS_MAX];
	size_t m = 0;

	req->mxq = NULL;
	if (st == DNS_NODATA) {
		/* RFC 5321 §5.1: no MX records, the domain itself is the host. */
		str_copy(req->hosts[0].name, req->nh.name, sizeof(req->hosts[0].name));
		req->nhosts = 1;
		lookup_hosts(req);
		return;
	}
	if (st == DNS_NXDOMAIN) {
		fail(req, ROUTE_PERMFAIL, "5.1.2 domain %s not found", req->nh.name);
		return;
	}
	if (st != DNS_OK) {
		fail(req, ROUTE_TEMPFAIL, "4.4.3 MX lookup of %s failed (DNS temporary failure)",
		    req->nh.name);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (mx[i].host[0] != '\0')
			sorted[m++] = mx[i];
	}
	if (m == 0) {
		/* RFC 7505: a null MX says the domain accepts no mail. */
		req->tried_router = true; /* an explicit refusal, not a lookup failure */
		fail(req, ROUTE_PERMFAIL, "5.1.10 %s does not accept mail (null MX, RFC 7505)",
		    req->nh.name);
		return;
	}
	/* By preference; equal preferences in random order (RFC 5321 §5.1). */
	for (size_t i = 1; i < m; i++) {
		for (size_t j = i; j > 0 && sorted[j - 1].pref > sorted[j].pref; j--) {
			struct dns_mx t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	}
	for (size_t i = 0; i < m;) {
		size_t j = i;
		while (j < m && sorted[j].pref == sorted[i].pref)
			j++;
		for (size_t k = j - 1; k > i; k--) {
			size_t r = i + random_u32() % (k - i + 1);
			struct dns_mx t = sorted[k];
			sorted[k] = sorted[r];
			sorted[r] = t;
		}
		i = j;
	}
	req->nhosts = m < ROUTE_MX_MAX ? m : ROUTE_MX_MAX;
	for (size_t i = 0; i < req->nhosts; i++) {
		memset(&req->hosts[i], 0, sizeof(req->hosts[i]));
		str_copy(req->hosts[i].name, sorted[i].host, sizeof(req->hosts[i].name));
		req->hosts[i].pref = sorted[i].pref;
	}
	lookup_hosts(req);
}

static void
start(struct route_req *req)
{
	char ips[ROUTING_HOSTS_MAX][INET6_ADDRSTRLEN];

	memset(req->hosts, 0, sizeof(req->hosts));
	req->res.n = 0;
	if (!req->nh.mx) {
		str_copy(req->hosts[0].name, req->nh.name, sizeof(req->hosts[0].name));
		req->nhosts = 1;
		lookup_hosts(req);
		return;
	}
	/* The host table overrides DNS for the domain itself too. */
	if (routing_hosts(req->rt->routing, req->nh.name, ips, 1) > 0) {
		str_copy(req->hosts[0].name, req->nh.name, sizeof(req->hosts[0].name));
		req->nhosts = 1;
		lookup_hosts(req);
		return;
	}
	req->mxq = dns_mx(req->rt->dns, req->nh.name, mx_cb, req);
}

struct route_req *
router_resolve(struct router *rt, const struct nexthop *nh, route_fn *fn, void *arg)
{
	struct route_req *req = xcalloc(1, sizeof(*req));

	req->rt = rt;
	req->nh = *nh;
	req->fn = fn;
	req->arg = arg;
	start(req);
	return req;
}

void
router_cancel(struct route_req **reqp)
{
	if (*reqp != NULL)
		req_free(*reqp);
	*reqp = NULL;
}
