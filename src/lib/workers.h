/* workers.h: a small thread pool for work that blocks on the disk (write,
 * fsync, rename). The event loop never waits on it: a job's work function runs
 * on a worker thread and its done function runs later on the loop thread.
 *
 * Contract: work() must not touch loop-owned state (sessions, bufferevents,
 * SQLite handles of the loop); done() runs on the loop thread, exactly once per
 * submitted job, and may free the job's argument. */
#ifndef TEGAMI_WORKERS_H
#define TEGAMI_WORKERS_H

struct event_base;
struct workers;

typedef void workers_fn(void *arg);

/* Starts nthreads (>= 1) threads. Aborts if threads cannot be started. */
struct workers *workers_create(struct event_base *base, unsigned nthreads);

/* Queues a job. Never fails; the queue is bounded only by the callers' own
 * limits (sessions, messages in flight). */
void workers_submit(struct workers *w, workers_fn *work, workers_fn *done, void *arg);

/* Jobs queued or running, for status and back-pressure. */
unsigned workers_pending(const struct workers *w);

/* Finishes every queued job (running each done() on the calling thread),
 * stops the threads and frees the pool; sets *wp to NULL. */
void workers_destroy(struct workers **wp);

#endif
