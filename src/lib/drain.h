/* drain.h: closing a connection only once its last reply is on the wire.
 * A TLS filter bufferevent's output drains into the bufferevent under it, so
 * "the write callback saw an empty output" is not enough; this polls until
 * both are empty (tls_bufferevent_flushed), for at most five seconds. */
#ifndef TEGAMI_DRAIN_H
#define TEGAMI_DRAIN_H

struct event_base;
struct bufferevent;
struct drain;

typedef void drain_done_fn(void *arg);

/* Calls done(arg) once bev is flushed (possibly right away, before this
 * returns NULL) or after the time limit. Otherwise returns the pending
 * drain, to be cancelled if the owner goes away first. */
struct drain *drain_start(struct event_base *base, struct bufferevent *bev,
    drain_done_fn *done, void *arg);

/* Stops a pending drain without calling done; sets *lp to NULL. */
void drain_cancel(struct drain **lp);

#endif
