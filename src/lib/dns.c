/* dns.c: c-ares inside the libevent loop (dns.h). One c-ares channel per
 * settings generation: a reload makes a new channel for new queries and the
 * old one is freed once its queries are answered. */
#include "lib/dns.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

enum dns_type { DNS_Q_MX, DNS_Q_IP, DNS_Q_TXT, DNS_Q_A };

struct dns_channel;

struct dns_sock {
	struct dns_channel *c;
	ares_socket_t fd;
	short what;
	struct event *ev;
	struct dns_sock *next;
};

struct dns_channel {
	struct dns *d;
	ares_channel ch;
	struct dns_sock *socks;
	struct event *timer;
	size_t pending;
	bool retired;             /* superseded by a newer channel */
	struct dns_channel *next; /* in d->retired */
};

struct dns_query {
	struct dns *d;
	struct dns_channel *c;
	enum dns_type type;
	union {
		dns_mx_fn *mx;
		dns_ip_fn *ip;
		dns_txt_fn *txt;
		dns_a_fn *a;
	} fn;
	void *arg;
	bool cancelled;
	bool starting;            /* inside ares_query(): an answer now is deferred */
	bool sync_done;           /* c-ares answered before returning */
	enum dns_status sync_status;
	struct dns_query *prev, *next;
};

struct dns {
	struct event_base *base;
	struct dns_channel *cur;
	struct dns_channel *retired;
	struct event *reaper;
	struct dns_query *queries;
	size_t pending;
};

static void channel_timer_update(struct dns_channel *c);

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock *s = arg;
	struct dns_channel *c = s->c;

	ares_process_fd(c->ch, (what & EV_READ) != 0 ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) != 0 ? fd : ARES_SOCKET_BAD);
	channel_timer_update(c);
}

/* c-ares tells which sockets it wants watched, and for what. */
static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_channel *c = data;
	struct dns_sock **sp = &c->socks, *s;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));

	while ((s = *sp) != NULL && s->fd != fd)
		sp = &s->next;
	if (what == 0) {
		if (s != NULL) {
			event_free(s->ev);
			*sp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->c = c;
		s->fd = fd;
		s->next = c->socks;
		c->socks = s;
	} else if (s->what == what) {
		return;
	} else {
		event_free(s->ev);
	}
	s->what = what;
	s->ev = event_new(c->d->base, fd, (short)(what | EV_PERSIST), sock_cb, s);
	event_add(s->ev, NULL);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_channel *c = arg;

	ares_process_fd(c->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	channel_timer_update(c);
}

static void
channel_timer_update(struct dns_channel *c)
{
	struct timeval tv, *tvp = ares_timeout(c->ch, NULL, &tv);

	if (tvp != NULL)
		evtimer_add(c->timer, tvp);
	else
		evtimer_del(c->timer);
}

static void
channel_free(struct dns_channel *c)
{
	ares_destroy(c->ch); /* cancels what is left: the callbacks see cancelled queries */
	while (c->socks != NULL) {
		struct dns_sock *s = c->socks;
		c->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	event_free(c->timer);
	free(c);
}

/* Frees retired channels without queries, outside any c-ares callback. */
static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	struct dns_channel **cp = &d->retired, *c;

	while ((c = *cp) != NULL) {
		if (c->pending == 0) {
			*cp = c->next;
			channel_free(c);
		} else {
			cp = &c->next;
		}
	}
}

static struct dns_channel *
channel_create(struct dns *d, const struct dns_settings *s, const char **error_r)
{
	struct dns_channel *c = xcalloc(1, sizeof(*c));
	struct ares_options opt;
	char lookups[] = "b"; /* DNS only: the host table is the router's own */
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;

	memset(&opt, 0, sizeof(opt));
	opt.sock_state_cb = sock_state_cb;
	opt.sock_state_cb_data = c;
	opt.timeout = (int)s->timeout_ms;
	opt.tries = (int)s->tries;
	opt.lookups = lookups;
	c->d = d;
	if (ares_init_options(&c->ch, &opt, mask) != ARES_SUCCESS) {
		*error_r = "cannot start the DNS resolver";
		free(c);
		return NULL;
	}
	if (s->servers != NULL && s->servers[0] != '\0' &&
	    ares_set_servers_ports_csv(c->ch, s->servers) != ARES_SUCCESS) {
		*error_r = "bad dns.servers";
		ares_destroy(c->ch);
		free(c);
		return NULL;
	}
	c->timer = evtimer_new(d->base, timer_cb, c);
	return c;
}

struct dns *
dns_create(struct event_base *base, const struct dns_settings *s, const char **error_r)
{
	static bool initialised;
	struct dns *d;

	if (!initialised) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
			*error_r = "cannot initialise c-ares";
			return NULL;
		}
		initialised = true;
	}
	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->reaper = evtimer_new(base, reap_cb, d);
	d->cur = channel_create(d, s, error_r);
	if (d->cur == NULL) {
		event_free(d->reaper);
		free(d);
		return NULL;
	}
	return d;
}

int
dns_configure(struct dns *d, const struct dns_settings *s, const char **error_r)
{
	struct dns_channel *c = channel_create(d, s, error_r);

	if (c == NULL)
		return -1;
	d->cur->retired = true;
	d->cur->next = d->retired;
	d->retired = d->cur;
	d->cur = c;
	struct timeval now = { 0, 0 };
	evtimer_add(d->reaper, &now);
	return 0;
}

void
dns_destroy(struct dns **dp)
{
	struct dns *d = *dp;

	if (d == NULL)
		return;
	for (struct dns_query *q = d->queries; q != NULL; q = q->next)
		q->cancelled = true;
	channel_free(d->cur);
	while (d->retired != NULL) {
		struct dns_channel *c = d->retired;
		d->retired = c->next;
		channel_free(c);
	}
	/* Every query was answered (cancelled) by ares_destroy and freed. */
	event_free(d->reaper);
	free(d);
	*dp = NULL;
}

size_t
dns_pending(const struct dns *d)
{
	return d->pending;
}

static struct dns_query *
query_new(struct dns *d, enum dns_type type, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->d = d;
	q->c = d->cur;
	q->type = type;
	q->arg = arg;
	q->next = d->queries;
	if (d->queries != NULL)
		d->queries->prev = q;
	d->queries = q;
	d->pending++;
	d->cur->pending++;
	return q;
}

/* The query's answer is in (or it was cancelled): unlink and free. */
static void
query_done(struct dns_query *q)
{
	struct dns *d = q->d;
	struct dns_channel *c = q->c;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		d->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	d->pending--;
	if (--c->pending == 0 && c->retired) {
		struct timeval now = { 0, 0 };
		evtimer_add(d->reaper, &now);
	}
	free(q);
}

static enum dns_status status_map(int status);

/* c-ares answered inside the call that started the query (a malformed
 * name): remember the status; the owner hears it from the loop. */
static bool
query_sync(struct dns_query *q, int status)
{
	if (!q->starting)
		return false;
	q->sync_done = true;
	q->sync_status = status == ARES_EBADNAME ? DNS_NXDOMAIN : status_map(status);
	if (q->sync_status == DNS_OK)
		q->sync_status = DNS_TEMPFAIL;
	return true;
}

static void
deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	if (!q->cancelled) {
		switch (q->type) {
		case DNS_Q_MX: q->fn.mx(q->arg, q->sync_status, NULL, 0); break;
		case DNS_Q_IP: q->fn.ip(q->arg, q->sync_status, NULL, 0); break;
		case DNS_Q_TXT: q->fn.txt(q->arg, q->sync_status, NULL, 0); break;
		case DNS_Q_A: q->fn.a(q->arg, q->sync_status, NULL, 0, DNS_TTL_UNKNOWN); break;
		}
	}
	query_done(q);
}

/* After the c-ares call that started q. */
static struct dns_query *
query_started(struct dns_query *q)
{
	q->starting = false;
	if (q->sync_done) {
		struct timeval now = { 0, 0 };
		event_base_once(q->d->base, -1, EV_TIMEOUT, deferred_cb, q, &now);
		return q;
	}
	channel_timer_update(q->c);
	return q;
}

static enum dns_status
status_map(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	default:
		return DNS_TEMPFAIL;
	}
}

static void
mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct dns_mx mx[DNS_ANSWERS_MAX];
	size_t n = 0;
	enum dns_status st = status_map(status);

	if (query_sync(q, status))
		return;
	if (!q->cancelled && st == DNS_OK) {
		struct ares_mx_reply *r = NULL;
		int prc = ares_parse_mx_reply(abuf, alen, &r);
		if (prc == ARES_SUCCESS) {
			for (struct ares_mx_reply *p = r; p != NULL && n < DNS_ANSWERS_MAX; p = p->next) {
				mx[n].pref = p->priority;
				str_copy(mx[n].host, p->host != NULL && strcmp(p->host, ".") != 0 ?
				    p->host : "", sizeof(mx[n].host));
				n++;
			}
			ares_free_data(r);
		}
		st = prc == ARES_SUCCESS ? (n > 0 ? DNS_OK : DNS_NODATA) :
		    prc == ARES_ENODATA ? DNS_NODATA : DNS_TEMPFAIL;
	}
	if (!q->cancelled)
		q->fn.mx(q->arg, st, mx, n);
	query_done(q);
}

static void
ip_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = arg;
	struct dns_ip ips[DNS_ANSWERS_MAX];
	size_t n = 0;
	enum dns_status st = status_map(status);

	if (query_sync(q, status)) {
		if (res != NULL)
			ares_freeaddrinfo(res);
		return;
	}
	if (!q->cancelled && st == DNS_OK && res != NULL) {
		for (struct ares_addrinfo_node *p = res->nodes; p != NULL && n < DNS_ANSWERS_MAX;
		    p = p->ai_next) {
			const void *a = p->ai_family == AF_INET6 ?
			    (const void *)&((struct sockaddr_in6 *)(void *)p->ai_addr)->sin6_addr :
			    (const void *)&((struct sockaddr_in *)(void *)p->ai_addr)->sin_addr;
			if (p->ai_family != AF_INET && p->ai_family != AF_INET6)
				continue;
			if (inet_ntop(p->ai_family, a, ips[n].ip, sizeof(ips[n].ip)) == NULL)
				continue;
			ips[n].family = p->ai_family;
			n++;
		}
		if (n == 0)
			st = DNS_NODATA;
	}
	if (res != NULL)
		ares_freeaddrinfo(res);
	if (!q->cancelled)
		q->fn.ip(q->arg, st, ips, n);
	query_done(q);
}

static void
txt_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	char *texts[DNS_ANSWERS_MAX];
	size_t n = 0;
	enum dns_status st = status_map(status);

	if (query_sync(q, status))
		return;
	if (!q->cancelled && st == DNS_OK) {
		struct ares_txt_ext *r = NULL;
		if (ares_parse_txt_reply_ext(abuf, alen, &r) == ARES_SUCCESS) {
			for (struct ares_txt_ext *p = r; p != NULL; p = p->next) {
				if (p->record_start) {
					if (n == DNS_ANSWERS_MAX)
						break;
					texts[n++] = xstrdup("");
				}
				if (n == 0)
					continue;
				char *joined = xasprintf("%s%.*s", texts[n - 1], (int)p->length,
				    (const char *)p->txt);
				free(texts[n - 1]);
				texts[n - 1] = joined;
			}
			ares_free_data(r);
		}
		if (n == 0)
			st = DNS_NODATA;
	}
	if (!q->cancelled)
		q->fn.txt(q->arg, st, (const char *const *)texts, n);
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	query_done(q);
}

/* The octets a (possibly compressed) name at p takes in the message, or 0
 * when it runs past end. */
static size_t
wire_name_len(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *s = p;

	while (p < end) {
		if (*p == 0)
			return (size_t)(p + 1 - s);
		if ((*p & 0xc0) == 0xc0)
			return p + 2 <= end ? (size_t)(p + 2 - s) : 0;
		p += 1 + *p;
	}
	return 0;
}

static uint32_t
wire_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 2308 §5: a negative answer may be kept for the smaller of the TTL
 * of the SOA in its authority section and that SOA's MINIMUM field. The
 * SOA's rdata ends with that field, so its two names need no parsing. */
static unsigned
negative_ttl(const unsigned char *abuf, int alen)
{
	const unsigned char *p = abuf + 12, *end = abuf + (alen > 0 ? alen : 0);

	if (alen < 12)
		return DNS_TTL_UNKNOWN;
	unsigned qd = (unsigned)(abuf[4] << 8 | abuf[5]);
	unsigned an = (unsigned)(abuf[6] << 8 | abuf[7]);
	unsigned ns = (unsigned)(abuf[8] << 8 | abuf[9]);
	for (unsigned i = 0; i < qd; i++) {
		size_t n = wire_name_len(p, end);
		if (n == 0 || p + n + 4 > end)
			return DNS_TTL_UNKNOWN;
		p += n + 4;
	}
	for (unsigned i = 0; i < an + ns; i++) {
		size_t n = wire_name_len(p, end);
		if (n == 0 || p + n + 10 > end)
			return DNS_TTL_UNKNOWN;
		const unsigned char *rr = p + n;
		unsigned type = (unsigned)(rr[0] << 8 | rr[1]);
		size_t rdlen = (size_t)(rr[8] << 8 | rr[9]);
		if (rr + 10 + rdlen > end)
			return DNS_TTL_UNKNOWN;
		if (i >= an && type == ns_t_soa && rdlen >= 20) {
			uint32_t ttl = wire_u32(rr + 4), minimum = wire_u32(rr + 10 + rdlen - 4);
			ttl = ttl < minimum ? ttl : minimum;
			return ttl < 0x7fffffffu ? (unsigned)ttl : 0x7fffffffu;
		}
		p = rr + 10 + rdlen;
	}
	return DNS_TTL_UNKNOWN;
}

static void
a_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct dns_ip ips[DNS_ANSWERS_MAX];
	struct ares_addrttl ttls[DNS_ANSWERS_MAX];
	int nttls = DNS_ANSWERS_MAX;
	size_t n = 0;
	unsigned ttl = DNS_TTL_UNKNOWN;
	enum dns_status st = status_map(status);

	if (query_sync(q, status))
		return;
	if (!q->cancelled && st == DNS_OK) {
		if (ares_parse_a_reply(abuf, alen, NULL, ttls, &nttls) == ARES_SUCCESS) {
			for (int i = 0; i < nttls; i++) {
				if (inet_ntop(AF_INET, &ttls[i].ipaddr, ips[n].ip, sizeof(ips[n].ip)) == NULL)
					continue;
				ips[n].family = AF_INET;
				unsigned t = ttls[i].ttl > 0 ? (unsigned)ttls[i].ttl : 0;
				ttl = n == 0 || t < ttl ? t : ttl;
				n++;
			}
		}
		if (n == 0) {
			st = DNS_NODATA;
			ttl = negative_ttl(abuf, alen);
		}
	} else if (!q->cancelled && (st == DNS_NXDOMAIN || st == DNS_NODATA) && abuf != NULL) {
		ttl = negative_ttl(abuf, alen);
	}
	if (!q->cancelled)
		q->fn.a(q->arg, st, ips, n, ttl);
	query_done(q);
}

struct dns_query *
dns_a(struct dns *d, const char *name, dns_a_fn *fn, void *arg)
{
	struct dns_query *q = query_new(d, DNS_Q_A, arg);
	struct dns_channel *c = q->c;

	q->fn.a = fn;
	q->starting = true;
	ares_query(c->ch, name, ns_c_in, ns_t_a, a_cb, q);
	return query_started(q);
}

struct dns_query *
dns_mx(struct dns *d, const char *name, dns_mx_fn *fn, void *arg)
{
	struct dns_query *q = query_new(d, DNS_Q_MX, arg);
	struct dns_channel *c = q->c;

	q->fn.mx = fn;
	q->starting = true;
	ares_query(c->ch, name, ns_c_in, ns_t_mx, mx_cb, q);
	return query_started(q);
}

struct dns_query *
dns_ip(struct dns *d, const char *name, dns_ip_fn *fn, void *arg)
{
	struct dns_query *q = query_new(d, DNS_Q_IP, arg);
	struct dns_channel *c = q->c;
	struct ares_addrinfo_hints hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = ARES_AI_NOSORT;
	q->fn.ip = fn;
	q->starting = true;
	ares_getaddrinfo(c->ch, name, NULL, &hints, ip_cb, q);
	return query_started(q);
}

struct dns_query *
dns_txt(struct dns *d, const char *name, dns_txt_fn *fn, void *arg)
{
	struct dns_query *q = query_new(d, DNS_Q_TXT, arg);
	struct dns_channel *c = q->c;

	q->fn.txt = fn;
	q->starting = true;
	ares_query(c->ch, name, ns_c_in, ns_t_txt, txt_cb, q);
	return query_started(q);
}

void
dns_cancel(struct dns_query **qp)
{
	if (*qp != NULL)
		(*qp)->cancelled = true;
	*qp = NULL;
}
