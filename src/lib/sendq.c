#include "lib/sendq.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>

void
sendq_vline(struct evbuffer *q, size_t max, const char *fmt, va_list ap)
{
	char line[1024];
	size_t cap = max < sizeof(line) ? max : sizeof(line);
	int n = vsnprintf(line, cap - 2, fmt, ap);

	if (n < 0)
		return;
	size_t len = (size_t)n < cap - 3 ? (size_t)n : cap - 3;
	line[len++] = '\r';
	line[len++] = '\n';
	evbuffer_add(q, line, len);
}

size_t
sendq_pending(struct bufferevent *bev, struct evbuffer *q)
{
	return evbuffer_get_length(q) + evbuffer_get_length(bufferevent_get_output(bev));
}

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
