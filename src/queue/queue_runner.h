/* queue_runner.h: the queue runner (MISSION S5, O1-O5). It holds every
 * queued message in memory (the envelope and the state of each recipient,
 * not the body), dispatches each due recipient by transport (local Maildir
 * on a worker, SMTP through queue/outbound), records every outcome in the
 * queue file before acting on it (queue_rcpt_record is the one function
 * that changes a recipient's state), retries on the seed's two levels,
 * sends RFC 3464 reports, and removes the file once nothing is owed.
 *
 * Fast path: a message whose recipients are all local is delivered to the
 * mailboxes before the 250 and never gets a queue file
 * (queue_runner_commit). At start-up every queue file is loaded on a worker
 * while the listeners already serve (queue_runner_recover). */
#ifndef TEGAMI_QUEUE_RUNNER_H
#define TEGAMI_QUEUE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct event_base;
struct workers;
struct envelope;
struct queue_runner;
struct config;
struct directory;
struct routing;
struct router;
struct profiles;
struct ssl_ctx_st;

struct queue_runner_deps {
	struct event_base *base;
	struct workers *workers;
	const struct config *cfg;   /* updated in place on reload */
	struct directory *dir;
	struct routing *routing;
	struct router *router;
	struct profiles *profiles;  /* server profiles by sender (X1, C1), or NULL */
	const char *queue_dir;
	const char *mail_root;
};

struct queue_runner *queue_runner_create(const struct queue_runner_deps *deps);

/* The host name used in Maildir file names and reports (copied). */
void queue_runner_set_hostname(struct queue_runner *q, const char *hostname);
const char *queue_runner_hostname(const struct queue_runner *q);

/* The client TLS context for STARTTLS to other servers (NULL: none). */
void queue_runner_set_tls(struct queue_runner *q, struct ssl_ctx_st *ctx);

/* Worker thread. Makes a message durable before it is acknowledged (S5):
 * all-local messages straight into every mailbox (maildir_deliver), else,
 * or when that fails, a queue file. hostname names the Maildir files (a
 * copy taken on the loop). 0 with *delivered_r telling which, or -1 with
 * errno when neither worked (the client then gets 451/452). */
int queue_runner_commit(struct queue_runner *q, const char *hostname,
    const struct envelope *m, bool *delivered_r);

/* Loop thread, after queue_runner_commit() returned 0: takes ownership of
 * m. Delivered messages are logged and freed; queued ones are run. */
void queue_runner_committed(struct queue_runner *q, struct envelope *m, bool delivered);

/* Loads every queue file (on a worker, in batches) and runs what is due;
 * logs progress. Returns the number of files found, or -1. */
int queue_runner_recover(struct queue_runner *q);

/* Removes Maildir tmp/ leftovers on a worker: our own files older than
 * started (a crash between writing and linking; the queue redelivers what
 * was acknowledged), and any file older than 36 hours; then again every
 * hour (the 36-hour rule only). */
void queue_runner_sweep_maildirs(struct queue_runner *q, time_t started);

/* After a settings reload: re-arms the etrn.interval schedule (seed 002:
 * the mail forward interval; every run flushes the queue and, with
 * etrn.remote set, asks that server to start ours with ETRN). */
void queue_runner_reload(struct queue_runner *q);

/* Runs the etrn.interval schedule's work now: a queue run and, with
 * etrn.remote set, the ETRN session. */
void queue_runner_run_schedule(struct queue_runner *q);

/* Messages in the queue (loaded so far). */
size_t queue_runner_active(const struct queue_runner *q);
/* Connections to other servers open now. */
size_t queue_runner_connections(const struct queue_runner *q);

/* --- admin (O4, O5): each acts on the running daemon at once --- */

/* Progress of a long operation: called every 1,000 messages. */
typedef void queue_progress_fn(void *arg, size_t done, size_t total);

/* Tries every deferred recipient now (domain NULL: all; else those of that
 * recipient domain, ETRN). Returns the messages started. */
size_t queue_runner_flush(struct queue_runner *q, const char *domain, queue_progress_fn *fn,
    void *arg);
/* Messages waiting for domain (ETRN 251 when 0). */
size_t queue_runner_count_domain(struct queue_runner *q, const char *domain);
/* Holds or releases one message. 0, or -1 when the queue id is unknown. */
int queue_runner_hold(struct queue_runner *q, const char *qid, bool hold);
/* Holding or releasing a destination domain (the queue_holds table is
 * already changed): releasing runs its mail. Returns messages concerned. */
size_t queue_runner_domain_held(struct queue_runner *q, const char *domain, bool hold);
/* Deletes a message without a report. 0 or -1 (unknown). */
int queue_runner_delete(struct queue_runner *q, const char *qid);
/* Fails every recipient not yet delivered and returns the message to its
 * sender (RFC 3464). 0 or -1 (unknown). */
int queue_runner_bounce(struct queue_runner *q, const char *qid);

/* Stops starting anything new (shutdown): call before workers_destroy(),
 * whose last completions then only record what happened. */
void queue_runner_stop(struct queue_runner *q);

/* Frees the runner; call after workers_destroy() has drained the jobs.
 * Messages stay in the queue directory as their files say. */
void queue_runner_destroy(struct queue_runner **qp);

#endif
