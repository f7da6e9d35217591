/* etrn_client.h: asks a remote server to start its queue for our domains
 * (RFC 1985 ETRN; MISSION O4, seed 002 "Issue ETRN when connecting to
 * remote server", the dial-up site's schedule). One short session: greeting,
 * EHLO, one ETRN per domain, QUIT; the replies are logged. */
#ifndef TEGAMI_ETRN_CLIENT_H
#define TEGAMI_ETRN_CLIENT_H

#include <stddef.h>

#include "deliver/route.h"

struct event_base;
struct etrn_client;

/* Done: how many ETRNs were accepted (2xx), or -1 when the session failed
 * (error says why). */
typedef void etrn_done_fn(void *arg, int accepted, const char *error);

/* Starts a session to target for the comma-separated domains. Never fails:
 * everything arrives through done, always later from the event loop. */
struct etrn_client *etrn_client_start(struct event_base *base, const struct route_target *target,
    const char *helo, const char *domains, unsigned timeout_ms, etrn_done_fn *done, void *arg);

/* Stops a session early; done is not called. Sets *cp to NULL. */
void etrn_client_cancel(struct etrn_client **cp);

#endif
