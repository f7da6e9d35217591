#include "lib/listeners.h"

#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"

#define LISTENERS_MAX 64

struct listener {
	struct listener_set *ls;
	struct evconnlistener *ev;
	struct listener_want want;
};

struct listener_set {
	struct event_base *base;
	listener_accept_fn *fn;
	void *arg;
	struct listener *l[LISTENERS_MAX];
	size_t n;
};

static void
on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct listener *l = arg;

	l->ls->fn(l->ls->arg, l->want.kind, fd, sa);
}

static void
on_accept_error(struct evconnlistener *ev, void *arg)
{
	/* EMFILE and friends: log and go on; libevent retries on the next event. */
	log_error("event=accept_failed error=\"%s\"",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

struct listener_set *
listener_set_create(struct event_base *base, listener_accept_fn *fn, void *arg)
{
	struct listener_set *ls = xcalloc(1, sizeof(*ls));

	ls->base = base;
	ls->fn = fn;
	ls->arg = arg;
	return ls;
}

/* "ADDR:PORT: reason" in a static buffer: the loop thread is the only caller. */
static const char *
bind_error(const struct listener_want *w, const char *why)
{
	static char buf[256];
	char where[80];

	netaddr_format((const struct sockaddr *)&w->addr.ss, where, sizeof(where));
	snprintf(buf, sizeof(buf), "%s: %s", where, why);
	return buf;
}

static struct listener *
bind_one(struct listener_set *ls, const struct listener_want *w, const char **error_r)
{
	int fd = socket(w->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0) {
		*error_r = bind_error(w, strerror(errno));
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (w->addr.ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* The kernel caps the backlog at net.core.somaxconn. */
	if (bind(fd, (const struct sockaddr *)&w->addr.ss, w->addr.len) < 0 ||
	    listen(fd, 4096) < 0) {
		*error_r = bind_error(w, strerror(errno));
		close(fd);
		return NULL;
	}
	struct listener *l = xcalloc(1, sizeof(*l));
	l->ls = ls;
	l->want = *w;
	l->ev = evconnlistener_new(ls->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (l->ev == NULL) {
		*error_r = "evconnlistener_new failed";
		close(fd);
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->ev, on_accept_error);
	return l;
}

static void
listener_free(struct listener *l)
{
	evconnlistener_free(l->ev);
	free(l);
}

static bool
same(const struct listener_want *a, const struct listener_want *b)
{
	return a->kind == b->kind && a->addr.len == b->addr.len &&
	    memcmp(&a->addr.ss, &b->addr.ss, a->addr.len) == 0;
}

int
listener_set_apply(struct listener_set *ls, const struct listener_want *want, size_t n,
    const char **error_r)
{
	struct listener *next[LISTENERS_MAX];
	bool kept[LISTENERS_MAX] = { false }, fresh[LISTENERS_MAX] = { false };

	if (n > LISTENERS_MAX) {
		*error_r = "too many listen addresses";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		next[i] = NULL;
		for (size_t j = 0; j < ls->n && next[i] == NULL; j++) {
			if (!kept[j] && same(&ls->l[j]->want, &want[i])) {
				next[i] = ls->l[j];
				kept[j] = true;
			}
		}
		if (next[i] == NULL) {
			next[i] = bind_one(ls, &want[i], error_r);
			fresh[i] = true;
		}
		if (next[i] == NULL) {
			for (size_t k = 0; k < i; k++) {
				if (fresh[k])
					listener_free(next[k]);
			}
			return -1;
		}
	}
	for (size_t j = 0; j < ls->n; j++) {
		if (!kept[j])
			listener_free(ls->l[j]);
	}
	memcpy(ls->l, next, n * sizeof(next[0]));
	ls->n = n;
	return 0;
}

int
listener_want_add(struct listener_want *want, size_t max, size_t *n, int kind, const char *spec,
    const char **error_r)
{
	struct netaddr addrs[NETADDR_LISTEN_MAX];
	int k = netaddr_parse_listen(spec, addrs, NETADDR_LISTEN_MAX, error_r);

	if (k < 0)
		return -1;
	if (*n + (size_t)k > max) {
		*error_r = "too many listen addresses";
		return -1;
	}
	for (int i = 0; i < k; i++) {
		want[*n].kind = kind;
		want[*n].addr = addrs[i];
		(*n)++;
	}
	return 0;
}

void
listener_set_describe(const struct listener_set *ls, int kind, char *buf, size_t size)
{
	size_t o = 0;
	char one[80];

	buf[0] = '\0';
	for (size_t i = 0; i < ls->n && o < size; i++) {
		if (ls->l[i]->want.kind != kind)
			continue;
		netaddr_format((const struct sockaddr *)&ls->l[i]->want.addr.ss, one, sizeof(one));
		int k = snprintf(buf + o, size - o, "%s%s", o > 0 ? "," : "", one);
		if (k < 0)
			break;
		o += (size_t)k;
	}
}

void
listener_set_destroy(struct listener_set **lsp)
{
	struct listener_set *ls = *lsp;

	if (ls == NULL)
		return;
	for (size_t i = 0; i < ls->n; i++)
		listener_free(ls->l[i]);
	free(ls);
	*lsp = NULL;
}
