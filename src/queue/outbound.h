/* outbound.h: destination queues for mail that leaves over SMTP (MISSION
 * O1, O6). The runner hands over jobs (one message's recipients for one
 * next hop, at most relay.max_rcpts of them); each destination (next hop
 * and source address) has a FIFO of jobs and at most
 * relay.max_per_destination connections, all destinations together at most
 * relay.max_connections. A connection (deliver/smtp_client) carries one job
 * after another to the same destination until its queue is empty or
 * relay.max_messages_per_connection is reached. A destination that cannot
 * be resolved or reached answers every job waiting for it at once (with the
 * same temporary or permanent error), so a dead destination costs one
 * connection attempt per round, not one per message.
 *
 * A job with a server profile (conf/profile.h; MISSION X1, C1-C5) goes to
 * the profile's relay with the profile's TLS, login, timeouts and session
 * properties; the runner gives such jobs a destination key of their own.
 * Before the SMTP connections of a POP-before-SMTP profile, one POP3 login
 * at a time per destination, at most every relay.pop_before_smtp_interval
 * seconds (C4). */
#ifndef TEGAMI_OUTBOUND_H
#define TEGAMI_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deliver/route.h"
#include "deliver/smtp_client.h"

struct event_base;
struct ssl_ctx_st;
struct config;
struct router;
struct outbound;
struct profile;

#define OB_KEY_MAX (ROUTE_NAME_MAX + 96)

struct ob_rcpt {
	size_t idx;                 /* the recipient's index in the owner's envelope */
	const char *addr;
	unsigned notify;
	const char *orcpt;
};

struct ob_job {
	void *owner;                /* the runner's message */
	struct nexthop nh;
	char key[OB_KEY_MAX];       /* destination: next hop and source address */
	char source[INET6_ADDRSTRLEN]; /* "" for any */
	const char *qid;
	char path[4200];            /* the queue file */
	uint64_t body_offset, body_size;
	const char *sender;
	const char *envid;
	int ret;
	bool eightbit;
	size_t n;
	struct ob_rcpt *rcpts;
	struct profile *profile;    /* a reference the owner holds and drops, or NULL */
	struct ob_job *next;        /* in its destination's FIFO */
};

struct ob_result {
	size_t idx;
	int code;                   /* 2xx delivered, 4xx try later, 5xx failed */
	char reply[SMTP_CLIENT_REPLY_MAX];
	char mta[ROUTE_NAME_MAX];   /* the server that answered, or "" */
	bool relayed;
};

/* A job is over: one result per recipient, in the job's order (res NULL
 * and n 0 when outbound_destroy() drops it). The job is the owner's again
 * (to free). Called from the event loop, never from inside
 * outbound_submit(). */
typedef void ob_done_fn(void *arg, struct ob_job *job, const struct ob_result *res, size_t n);

struct outbound *outbound_create(struct event_base *base, const struct config *cfg,
    struct router *router, ob_done_fn *done, void *arg);
/* The client TLS context for STARTTLS (a reference is taken; NULL: none).
 * The profiles' contexts (one per minimum TLS version, relay.tls_ca_file)
 * are made again afterwards. */
void outbound_set_tls(struct outbound *ob, struct ssl_ctx_st *ctx);
/* Queues a job for its destination (job->key, job->nh). */
void outbound_submit(struct outbound *ob, struct ob_job *job);
/* Connections open or opening; jobs waiting. */
size_t outbound_connections(const struct outbound *ob);
size_t outbound_waiting(const struct outbound *ob);
/* Closes every connection; jobs still queued or in flight are handed back
 * with n 0 (their recipients stay as the queue file says). */
void outbound_destroy(struct outbound **obp);

#endif
