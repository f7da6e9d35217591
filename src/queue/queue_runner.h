/* queue_runner.h: moves committed messages from the spool into mailboxes.
 * Each delivery runs on a worker; a failed one stays in the queue and is
 * retried with a growing delay (30 s doubling up to 1 h). At start-up every
 * queue file left by a previous run is delivered again (crash recovery),
 * idempotently (see deliver/maildir.h). */
#ifndef TEGAMI_QUEUE_RUNNER_H
#define TEGAMI_QUEUE_RUNNER_H

#include <stddef.h>

struct event_base;
struct workers;
struct spool_msg;
struct queue_runner;

struct queue_runner *queue_runner_create(struct event_base *base, struct workers *workers,
    const char *queue_dir, const char *mail_root);

/* The host name used in Maildir file names (copied; updated on reload). */
void queue_runner_set_hostname(struct queue_runner *q, const char *hostname);

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
