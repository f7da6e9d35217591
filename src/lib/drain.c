#include "lib/drain.h"

#include <event2/event.h>
#include <stdlib.h>

#include "lib/tls.h"
#include "lib/xmalloc.h"

#define DRAIN_TICK_MS 10
#define DRAIN_MAX_TICKS 500

struct drain {
	struct event *ev;
	struct bufferevent *bev;
	drain_done_fn *done;
	void *arg;
	unsigned ticks;
};

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct drain *l = arg;
	struct timeval tick = { 0, DRAIN_TICK_MS * 1000 };

	if (tls_bufferevent_flushed(l->bev) || ++l->ticks >= DRAIN_MAX_TICKS) {
		drain_done_fn *done = l->done;
		void *darg = l->arg;
		event_free(l->ev);
		free(l);
		done(darg); /* may free the owner, which holds no pointer to l now */
		return;
	}
	evtimer_add(l->ev, &tick);
}

struct drain *
drain_start(struct event_base *base, struct bufferevent *bev, drain_done_fn *done, void *arg)
{
	struct timeval tick = { 0, DRAIN_TICK_MS * 1000 };
	struct drain *l;

	l = xcalloc(1, sizeof(*l));
	l->bev = bev;
	l->done = done;
	l->arg = arg;
	l->ev = evtimer_new(base, on_tick, l);
	evtimer_add(l->ev, &tick);
	return l;
}

void
drain_cancel(struct drain **lp)
{
	struct drain *l = *lp;

	if (l == NULL)
		return;
	event_free(l->ev);
	free(l);
	*lp = NULL;
}
