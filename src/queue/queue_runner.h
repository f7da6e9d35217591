/* queue_runner.h: moves committed messages from the spool into mailboxes.
 * Each delivery runs on a worker; a failed one stays in the queue and is
 * retried with a growing delay (30 s doubling up to 1 h). At start-up every
 * queue file left by a previous run is delivered again (crash recovery),
 * idempotently (see deliver/maildir.h). */
#ifndef TEGAMI_QUEUE_RUNNER_H
#define TEGAMI_QUEUE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct workers;
struct spool_msg;
struct queue_runner;

struct queue_runner *queue_runner_create(struct event_base *base, struct workers *workers,
    const char *queue_dir, const char *mail_root);

/* The host name used in Maildir file names (copied; updated on reload). */
void queue_runner_set_hostname(struct queue_runner *q, const char *hostname);

/* Worker thread. Makes a message durable before it is acknowledged (S5):
 * first straight into every local mailbox (maildir_deliver: tmp, fsync, link
 * into new/, fsync new/), which costs half the disk work of a queue file plus
 * a later delivery; when that fails (a mailbox not writable, a full disk),
 * into the queue for retries. hostname names the Maildir files (a copy taken
 * on the loop). 0 with *delivered_r telling which, or -1 with errno when
 * neither worked (the client then gets 451/452 and keeps the message). */
int queue_runner_commit(struct queue_runner *q, const char *hostname, const struct spool_msg *m,
    bool *delivered_r);

/* Loop thread, after queue_runner_commit() returned 0: takes ownership of m.
 * Delivered messages are logged and freed; queued ones are delivered by the
 * runner (skipping mailboxes the first attempt already reached). */
void queue_runner_committed(struct queue_runner *q, struct spool_msg *m, bool delivered);

/* The host name used in Maildir file names now. */
const char *queue_runner_hostname(const struct queue_runner *q);

/* Takes ownership of a committed message and delivers it. */
void queue_runner_deliver(struct queue_runner *q, struct spool_msg *m);

/* Queues every committed file in the queue directory for delivery; logs
 * progress. Returns the number of files found, or -1 when the directory
 * cannot be read. */
int queue_runner_recover(struct queue_runner *q);

/* Messages being delivered or waiting for a retry. */
size_t queue_runner_active(const struct queue_runner *q);

/* Frees the runner; call after workers_destroy() has drained the jobs.
 * Messages waiting for a retry stay in the queue directory. */
void queue_runner_destroy(struct queue_runner **qp);

#endif
