/* envelope.h: a message in transit (MISSION S5, O1-O3): the SMTP envelope
 * (reverse-path, DSN envelope id and RET), its recipients with their DSN
 * NOTIFY/ORCPT and their delivery state, and the message itself. The spool
 * (src/queue) writes and reads it; the transports (src/deliver) take it.
 * No I/O here. */
#ifndef TEGAMI_ENVELOPE_H
#define TEGAMI_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct evbuffer;

#define ENVELOPE_QID_LEN 20

enum rcpt_state {
	RCPT_PENDING = 0,   /* not tried yet */
	RCPT_DEFERRED,      /* a temporary failure: tried again at next_try */
	RCPT_DELIVERED,     /* final: in the mailbox, or accepted by the next hop */
	RCPT_FAILED,        /* final: a permanent failure, or out of retries */
};

/* Flags of a recipient's state (kept in the queue file). */
enum {
	RCPT_F_NOTIFIED = 1 << 0,       /* its final report was queued, or none is due */
	RCPT_F_DELAY_NOTIFIED = 1 << 1, /* its delay report was queued */
	RCPT_F_RELAYED = 1 << 2,        /* delivered to a next hop without DSN */
};

struct envelope_rcpt {
	char *addr;          /* where it goes: a local mailbox or the remote address */
	char *orig;          /* the address given in RCPT TO */
	char *orcpt;         /* DSN ORCPT "type;address", or NULL */
	unsigned notify;     /* DSN NOTIFY bits (mail/dsn.h), 0 when not given */
	bool remote;         /* SMTP transport (else a local Maildir) */
	enum rcpt_state state;
	unsigned attempts;   /* delivery attempts made */
	time_t next_try;     /* deferred: when to try again */
	time_t updated;      /* when the state last changed (0: never) */
	unsigned flags;      /* RCPT_F_* */
	char *mta;           /* the next hop that answered last, or NULL */
	char *reply;         /* the last reply or diagnostic, one line, or NULL */
};

/* What kind of message this is, for loops of reports (RFC 3461 §6.2). */
enum envelope_kind {
	ENVELOPE_MAIL = 0,   /* ordinary mail */
	ENVELOPE_REPORT,     /* a delivery report we made: a failure goes to the DSN responsible */
	ENVELOPE_REPORT2,    /* a report about a report: never reported again */
};

struct envelope {
	char qid[ENVELOPE_QID_LEN + 1];
	time_t arrival;
	char *sender;            /* reverse-path without brackets, "" for <> */
	char *envid;             /* DSN ENVID as received (xtext), or NULL */
	int ret;                 /* enum dsn_ret */
	enum envelope_kind kind;
	bool hold;               /* held by the admin (O5) */
	bool eightbit;           /* the message has octets over 127 (RFC 6152 BODY=8BITMIME) */
	struct envelope_rcpt *rcpts;
	size_t nrcpt;
	struct evbuffer *body;   /* the message, LF line endings; NULL when not loaded */
	uint64_t body_size;      /* octets of the body as stored */
};

/* A new envelope with a fresh queue id and an empty body buffer. Queue ids
 * sort by arrival: 9 hex digits of seconds, 5 of microseconds, 6 random. */
struct envelope *envelope_create(void);
void envelope_free(struct envelope **ep);

/* Appends a recipient (pending); returns it for the DSN fields. */
struct envelope_rcpt *envelope_add_rcpt(struct envelope *e, const char *addr, const char *orig,
    bool remote);

/* True when name looks like a queue id. */
bool envelope_qid_valid(const char *name);

/* Replaces a recipient's reply and next hop (copies; NULL clears). */
void envelope_rcpt_set_reply(struct envelope_rcpt *r, const char *mta, const char *reply);

/* True when every recipient is final and nothing more is owed for it. */
bool envelope_done(const struct envelope *e);

/* True when every recipient is local (the fast path may take it). */
bool envelope_all_local(const struct envelope *e);

/* "pending", "deferred", "delivered", "failed". */
const char *rcpt_state_name(enum rcpt_state s);

#endif
