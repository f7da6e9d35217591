/* message.h: reading a stored message (LF line endings) with GMime. */
#ifndef TEGAMI_MESSAGE_H
#define TEGAMI_MESSAGE_H

#include <stddef.h>

struct evbuffer;

/* Initialises GMime once per process (idempotent). */
void message_init(void);

/* The address of the From: header (RFC 5322 §3.6.2) of the message in body,
 * lower-cased, into out. Returns 1 when the header holds exactly one
 * mailbox, 0 when there is no From: header, -1 when it cannot be parsed or
 * names several mailboxes. Only the header block is read. */
int message_from_address(struct evbuffer *body, char *out, size_t outsize);

#endif
