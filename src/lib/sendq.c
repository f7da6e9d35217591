#include "lib/sendq.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

void
sendq_flush(struct bufferevent *bev, struct evbuffer *q, bool direct)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	if (evbuffer_get_length(q) == 0)
		return;
	/* Only when nothing is queued before q: the order on the wire stays. */
	if (direct && evbuffer_get_length(out) == 0) {
		evutil_socket_t fd = bufferevent_getfd(bev);
		/* -1 (EAGAIN, a reset peer …) leaves q for the bufferevent. */
		if (fd >= 0)
			(void)evbuffer_write(q, fd);
	}
	evbuffer_add_buffer(out, q);
}
