/* queue_internal.h: shared by the files of src/queue (the runner and its
 * reports); not for other directories. */
#ifndef TEGAMI_QUEUE_INTERNAL_H
#define TEGAMI_QUEUE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "deliver/route.h"
#include "deliver/smtp_client.h"
#include "mail/envelope.h"
#include "queue/queue_runner.h"

struct event;
struct etrn_client;
struct outbound;
struct ob_job;
struct ob_result;

/* A queued message in memory: the envelope without its body. */
struct qmsg {
	struct queue_runner *q;
	struct envelope *env;
	char qid_copy[ENVELOPE_QID_LEN + 1]; /* for workers (env may change on the loop) */
	uint64_t body_offset;        /* where the message starts in the queue file */
	bool *busy;                  /* per recipient: in flight */
	bool *delay_due;             /* per recipient: a delay report is owed */
	unsigned inflight;           /* recipients in flight */
	unsigned jobs;               /* worker jobs on the file (records, reports, hold) */
	unsigned jobs_out;           /* outbound jobs */
	struct event *timer;         /* the next retry */
	time_t report_backoff;       /* a report could not be written: not before this */
	bool removing;
	bool deleted;                /* by the admin: outcomes in flight are ignored */
	bool bounce_due;             /* bounced by the admin with recipients in flight */
	struct qmsg *hnext;          /* hash chain */
	struct qmsg *prev, *next;    /* every message */
};

struct queue_runner {
	struct queue_runner_deps deps;
	char queue_dir[4096];
	char mail_root[4096];
	char hostname[256];
	struct outbound *ob;
	struct qmsg **buckets;
	size_t nbuckets;
	struct qmsg *all;
	size_t nmsgs;
	size_t recover_batches;
	size_t recovered, recover_failed;
	struct event *sweep_timer;   /* the Maildir tmp/ sweep, hourly */
	struct event *etrn_timer;    /* etrn.interval: queue run and remote ETRN */
	uint64_t etrn_interval;      /* minutes the timer runs at */
	struct route_req *etrn_route;
	struct etrn_client *etrn;
	bool sweeping;
	bool stopping;
};

/* One outcome of a delivery attempt for a recipient. */
struct rcpt_outcome {
	size_t idx;
	int code;                    /* 2xx, 4xx, 5xx */
	char reply[SMTP_CLIENT_REPLY_MAX];
	char mta[ROUTE_NAME_MAX];
	bool relayed;
};

/* The retry decision after a temporary failure (seed 002: two levels). */
struct queue_retry {
	bool give_up;                /* out of retries or past queue.max_age */
	int level;                   /* 1 or 2 */
	time_t next_try;
	bool entered_level2;         /* the first retry of the second level */
};

/* Pure: what happens after attempt number `attempts` failed temporarily. */
void queue_retry_decide(const struct config *cfg, time_t arrival, time_t now, unsigned attempts,
    struct queue_retry *out);

/* The one function that changes recipients' states: applies the outcomes of
 * n recipients of m (all busy), appends their records on a worker, and
 * frees them for what follows once the records are on disk. */
void queue_rcpt_record(struct qmsg *m, const struct rcpt_outcome *o, size_t n);

/* Sends m's due recipients to their transports (force: deferred ones too). */
void queue_dispatch(struct qmsg *m, bool force);

struct qmsg *queue_find(struct queue_runner *q, const char *qid);

/* Adds a committed message (body not needed) and runs it. */
void queue_add_committed(struct queue_runner *q, struct envelope *e, uint64_t body_offset);

/* outbound's completion callback. */
void queue_remote_done(void *arg, struct ob_job *job, const struct ob_result *res, size_t n);

/* report.c: queues the report m owes (final or delay), if any. True when
 * a report job started; queue_report_done(m) follows. */
bool queue_report_start(struct qmsg *m);
void queue_report_done(struct qmsg *m);

#endif
