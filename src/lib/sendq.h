/* sendq.h: handing a session's replies to its bufferevent in one write.
 *
 * A socket bufferevent arms its write event (epoll_ctl) as soon as data lands
 * in its output and disarms it (epoll_ctl again) once that output is empty,
 * and the data only leaves on the next pass of the event loop: two system
 * calls and one more epoll_wait for every reply. A request-response protocol
 * answers most commands with a few kilobytes that the socket takes at once,
 * so a session gathers its replies in its own queue and flushes it here:
 * straight onto the socket when nothing is queued before it, and only what
 * the socket does not take is left to the bufferevent, whose write event and
 * write callback then work as usual. No mail knowledge here. */
#ifndef TEGAMI_SENDQ_H
#define TEGAMI_SENDQ_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct evbuffer;

/* Appends one reply line to q: fmt formatted, cut to fit max octets with its
 * CRLF (a protocol's line limit), then CRLF. */
void sendq_vline(struct evbuffer *q, size_t max, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Octets not yet on the wire: gathered in q or queued in bev's output. */
size_t sendq_pending(struct bufferevent *bev, struct evbuffer *q);

/* Moves everything in q to bev. When direct is true (bev is a plain socket
 * bufferevent, not a TLS one or a filter) and bev's output is empty, as much
 * as the socket takes is written at once; the rest, or all of q otherwise, is
 * appended to bev's output. A write error is not reported here: the data stays
 * queued and the bufferevent meets the same error on its next write and
 * reports it through its event callback. q is empty afterwards. */
void sendq_flush(struct bufferevent *bev, struct evbuffer *q, bool direct);

#endif
