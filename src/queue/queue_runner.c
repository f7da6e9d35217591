#include "queue/queue_runner.h"

#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/maildir.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"
#include "queue/spool.h"

#define RETRY_FIRST 30
#define RETRY_MAX 3600

struct delivery {
	struct queue_runner *q;
	struct spool_msg *msg;      /* NULL until loaded (recovery) */
	char qid[SPOOL_QID_LEN + 1];
	char hostname[256];
	bool recovering;        /* start-up: a queue file left by an earlier run */
	bool retried_partial;   /* a first try may have reached some mailboxes */
	int result, err;
	const char *load_error;
	unsigned attempts;
	struct event *retry;
	struct delivery *prev, *next; /* waiting for a retry */
};

struct queue_runner {
	struct event_base *base;
	struct workers *workers;
	char queue_dir[4096];
	char mail_root[4096];
	char hostname[256];
	size_t active;
	size_t recovering;      /* recovery deliveries not finished yet */
	size_t recovered, recover_failed;
	struct delivery *waiting;
};

struct queue_runner *
queue_runner_create(struct event_base *base, struct workers *workers, const char *queue_dir,
    const char *mail_root)
{
	struct queue_runner *q = xcalloc(1, sizeof(*q));

	q->base = base;
	q->workers = workers;
	str_copy(q->queue_dir, queue_dir, sizeof(q->queue_dir));
	str_copy(q->mail_root, mail_root, sizeof(q->mail_root));
	str_copy(q->hostname, "localhost", sizeof(q->hostname));
	return q;
}

void
queue_runner_set_hostname(struct queue_runner *q, const char *hostname)
{
	str_copy(q->hostname, hostname, sizeof(q->hostname));
}

size_t
queue_runner_active(const struct queue_runner *q)
{
	return q->active;
}

static void deliver_submit(struct delivery *d);

static void
deliver_work(void *arg)
{
	struct delivery *d = arg;
	char path[4200];

	d->load_error = NULL;
	if (d->msg == NULL) {
		snprintf(path, sizeof(path), "%s/%s", d->q->queue_dir, d->qid);
		d->msg = spool_load(path, &d->load_error);
		if (d->msg == NULL) {
			d->result = -1;
			d->err = errno;
			return;
		}
	}
	d->result = maildir_deliver(d->q->mail_root, d->hostname, d->msg,
	    d->recovering || d->retried_partial || d->attempts > 1);
	d->err = d->result < 0 ? errno : 0;
	if (d->result == 0 && spool_remove(d->q->queue_dir, d->msg->qid) < 0 && errno != ENOENT)
		log_warn("event=queue_remove_failed qid=%s error=\"%s\"", d->msg->qid, strerror(errno));
}

static void
delivery_free(struct delivery *d)
{
	if (d->retry != NULL)
		event_free(d->retry);
	spool_msg_free(&d->msg);
	free(d);
}

static void
recovery_step(struct queue_runner *q, bool ok)
{
	if (ok)
		q->recovered++;
	else
		q->recover_failed++;
	if (--q->recovering == 0)
		log_info("event=recovery_done delivered=%zu failed=%zu", q->recovered,
		    q->recover_failed);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;
	struct queue_runner *q = d->q;

	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		q->waiting = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	d->prev = d->next = NULL;
	d->recovering = true; /* part of it may have landed before the failure */
	deliver_submit(d);
}

static void
schedule_retry(struct delivery *d)
{
	struct queue_runner *q = d->q;
	unsigned delay = RETRY_FIRST;

	for (unsigned i = 1; i < d->attempts && delay < RETRY_MAX; i++)
		delay *= 2;
	if (delay > RETRY_MAX)
		delay = RETRY_MAX;
	struct timeval tv = { (time_t)delay, 0 };
	if (d->retry == NULL)
		d->retry = evtimer_new(q->base, on_retry, d);
	evtimer_add(d->retry, &tv);
	d->next = q->waiting;
	d->prev = NULL;
	if (q->waiting != NULL)
		q->waiting->prev = d;
	q->waiting = d;
	log_warn("event=deferred qid=%s attempts=%u retry_in=%us error=\"%s\"", d->qid,
	    d->attempts, delay, d->load_error != NULL ? d->load_error : strerror(d->err));
}

static void
deliver_done(void *arg)
{
	struct delivery *d = arg;
	struct queue_runner *q = d->q;




	if (d->result == 0) {
		log_info("event=delivered qid=%s nrcpt=%zu", d->qid, d->msg->nrcpt);
		if (d->attempts == 1 && d->recovering)
			recovery_step(q, true);
		q->active--;
		delivery_free(d);
		return;
	}
	if (d->load_error != NULL && d->msg == NULL) {
		/* A queue file we cannot parse will not get better: leave it for
		 * the admin and stop trying. */
		log_error("event=queue_file_unusable qid=%s error=\"%s\"", d->qid, d->load_error);
		if (d->attempts == 1 && d->recovering)
			recovery_step(q, false);
		q->active--;
		delivery_free(d);
		return;
	}
	if (d->attempts == 1 && d->recovering)
		recovery_step(q, false);
	schedule_retry(d);
}

static void
deliver_submit(struct delivery *d)
{
	d->attempts++;
	str_copy(d->hostname, d->q->hostname, sizeof(d->hostname));
	workers_submit(d->q->workers, deliver_work, deliver_done, d);
}

const char *
queue_runner_hostname(const struct queue_runner *q)
{
	return q->hostname;
}

int
queue_runner_commit(struct queue_runner *q, const char *hostname, const struct spool_msg *m,
    bool *delivered_r)
{
	*delivered_r = maildir_deliver(q->mail_root, hostname, m, false) == 0;
	if (*delivered_r)
		return 0;
	log_warn("event=direct_delivery_failed qid=%s error=\"%s\" action=queue", m->qid,
	    strerror(errno));
	return spool_commit(q->queue_dir, m);
}

static void queue_runner_deliver_partial(struct queue_runner *q, struct spool_msg *m,
    bool partial);

void
queue_runner_committed(struct queue_runner *q, struct spool_msg *m, bool delivered)
{
	if (!delivered) {
		/* Some mailboxes may already have it: deliver as after a crash. */
		queue_runner_deliver_partial(q, m, true);
		return;
	}
	log_info("event=delivered qid=%s nrcpt=%zu", m->qid, m->nrcpt);
	spool_msg_free(&m);
}

void
queue_runner_deliver(struct queue_runner *q, struct spool_msg *m)
{
	queue_runner_deliver_partial(q, m, false);
}

static void
queue_runner_deliver_partial(struct queue_runner *q, struct spool_msg *m, bool partial)
{
	struct delivery *d = xcalloc(1, sizeof(*d));

	d->q = q;
	d->msg = m;
	d->retried_partial = partial;
	str_copy(d->qid, m->qid, sizeof(d->qid));
	q->active++;
	deliver_submit(d);
}

static void
recover_one(void *arg, const char *qid)
{
	struct queue_runner *q = arg;
	struct delivery *d = xcalloc(1, sizeof(*d));

	d->q = q;
	d->recovering = true;
	str_copy(d->qid, qid, sizeof(d->qid));
	q->active++;
	q->recovering++;
	deliver_submit(d);
}

int
queue_runner_recover(struct queue_runner *q)
{
	int n = spool_scan(q->queue_dir, recover_one, q);

	if (n < 0) {
		log_error("event=recovery_failed dir=%s error=\"%s\"", q->queue_dir, strerror(errno));
		return -1;
	}
	if (n > 0)
		log_info("event=recovery_start queued=%d", n);
	return n;
}

void
queue_runner_destroy(struct queue_runner **qp)
{
	struct queue_runner *q = *qp;

	if (q == NULL)
		return;
	while (q->waiting != NULL) {
		struct delivery *d = q->waiting;
		q->waiting = d->next;
		delivery_free(d);
	}
	free(q);
	*qp = NULL;
}
