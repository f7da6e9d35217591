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

/* Calls done(arg) once bev is flushed or after the time limit, always later
 * from the event loop, never from within this call (so the caller may store
 * the result in the object done() frees). Returns the pending drain, to be
 * cancelled if the owner goes away first. Callers that find bev already
 * flushed (tls_bufferevent_flushed) should just close instead. */
struct drain *drain_start(struct event_base *base, struct bufferevent *bev,
    drain_done_fn *done, void *arg);

/* Stops a pending drain without calling done; sets *lp to NULL. */
void drain_cancel(struct drain **lp);

#endif
