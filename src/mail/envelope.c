#include "mail/envelope.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "lib/xmalloc.h"

/* Queue ids sort by arrival: 9 hex digits of seconds, 5 of microseconds,
 * then 6 random hex digits (24 bits). Maildir names carry the id, so POP3
 * lists messages of the same second in arrival order too. The spool never
 * replaces an existing queue file, so even a collision cannot lose a
 * message: the second one is refused (451). */
static void
qid_generate(char *buf)
{
	uint32_t rnd = 0;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
	snprintf(buf, ENVELOPE_QID_LEN + 1, "%09llX%05lX%06X",
	    (unsigned long long)ts.tv_sec & 0xFFFFFFFFFULL, (long)(ts.tv_nsec / 1000),
	    (unsigned)(rnd & 0xFFFFFF));
}

bool
envelope_qid_valid(const char *name)
{
	size_t n = strlen(name);

	if (n != ENVELOPE_QID_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

struct envelope *
envelope_create(void)
{
	struct envelope *e = xcalloc(1, sizeof(*e));

	qid_generate(e->qid);
	e->arrival = time(NULL);
	e->body = evbuffer_new();
	if (e->body == NULL)
		abort();
	return e;
}

void
envelope_free(struct envelope **ep)
{
	struct envelope *e = *ep;

	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nrcpt; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].orig);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].mta);
		free(e->rcpts[i].reply);
	}
	free(e->rcpts);
	free(e->sender);
	free(e->envid);
	if (e->body != NULL)
		evbuffer_free(e->body);
	free(e);
	*ep = NULL;
}

struct envelope_rcpt *
envelope_add_rcpt(struct envelope *e, const char *addr, const char *orig, bool remote)
{
	struct envelope_rcpt *r;

	e->rcpts = xreallocarray(e->rcpts, e->nrcpt + 1, sizeof(*e->rcpts));
	r = &e->rcpts[e->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(addr);
	r->orig = xstrdup(orig);
	r->remote = remote;
	return r;
}

void
envelope_rcpt_set_reply(struct envelope_rcpt *r, const char *mta, const char *reply)
{
	free(r->mta);
	free(r->reply);
	r->mta = mta != NULL && mta[0] != '\0' ? xstrdup(mta) : NULL;
	r->reply = reply != NULL && reply[0] != '\0' ? xstrdup(reply) : NULL;
}

bool
envelope_done(const struct envelope *e)
{
	for (size_t i = 0; i < e->nrcpt; i++) {
		const struct envelope_rcpt *r = &e->rcpts[i];
		if (r->state != RCPT_DELIVERED && r->state != RCPT_FAILED)
			return false;
		if ((r->flags & RCPT_F_NOTIFIED) == 0)
			return false;
	}
	return true;
}

bool
envelope_all_local(const struct envelope *e)
{
	for (size_t i = 0; i < e->nrcpt; i++) {
		if (e->rcpts[i].remote)
			return false;
	}
	return true;
}

const char *
rcpt_state_name(enum rcpt_state s)
{
	static const char *const names[] = { "pending", "deferred", "delivered", "failed" };

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}
