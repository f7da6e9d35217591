/* listeners.h: a set of listening sockets, each tagged with a kind (which
 * service it belongs to), re-bound in place when the settings change: an
 * address that stays keeps its socket, so a reload drops no connection. */
#ifndef TEGAMI_LISTENERS_H
#define TEGAMI_LISTENERS_H

#include <stddef.h>
#include <sys/socket.h>

#include "lib/netaddr.h"

struct event_base;
struct listener_set;

/* A new connection on a listener of that kind (fd is non-blocking). */
typedef void listener_accept_fn(void *arg, int kind, int fd, struct sockaddr *sa);

struct listener_want {
	int kind;
	struct netaddr addr;
};

struct listener_set *listener_set_create(struct event_base *base, listener_accept_fn *fn,
    void *arg);

/* Makes the bound set equal to want[0..n). 0, or -1 with *error_r when an
 * address cannot be bound; the previous set then stays as it was. */
int listener_set_apply(struct listener_set *ls, const struct listener_want *want, size_t n,
    const char **error_r);

/* Parses a listen setting and appends its addresses, tagged kind, to want
 * (capacity max, count *n). 0 or -1 with *error_r. */
int listener_want_add(struct listener_want *want, size_t max, size_t *n, int kind,
    const char *spec, const char **error_r);

/* "ADDR:PORT,..." of the bound listeners of kind. */
void listener_set_describe(const struct listener_set *ls, int kind, char *buf, size_t size);

void listener_set_destroy(struct listener_set **lsp);

#endif
