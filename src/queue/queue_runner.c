/* queue_runner.c: queued messages, their recipients' states, dispatch by
 * transport, retries, reports and removal (queue_runner.h).
 *
 * A message's life: qmsg_add() → qmsg_dispatch() sends every due recipient
 * to its transport (busy until its outcome is in) → outcomes go through
 * queue_rcpt_record(), which appends them to the queue file on a worker and
 * only then applies them → once nothing is in flight, qmsg_after() queues
 * the reports owed (queue/report.c) → qmsg_settle() removes the file when
 * nothing more is owed, or arms the timer of the next retry. */
#include "queue/queue_runner.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/directory.h"
#include "conf/profile.h"
#include "conf/routing.h"
#include "conf/settings.h"
#include "deliver/etrn_client.h"
#include "deliver/maildir.h"
#include "deliver/route.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"
#include "mail/dsn.h"
#include "mail/envelope.h"
#include "queue/outbound.h"
#include "queue/queue_internal.h"
#include "queue/spool.h"

#define QMSG_BUCKETS_MIN 1024
#define RECOVER_BATCH 256

/* --- the index: a hash of queue ids and a list of every message --- */

static unsigned
qid_hash(const char *qid, size_t nbuckets)
{
	unsigned h = 2166136261u;

	for (; *qid != '\0'; qid++)
		h = (h ^ (unsigned char)*qid) * 16777619u;
	return h & (unsigned)(nbuckets - 1);
}

static void
index_grow(struct queue_runner *q)
{
	size_t n = q->nbuckets == 0 ? QMSG_BUCKETS_MIN : q->nbuckets * 2;
	struct qmsg **b = xcalloc(n, sizeof(*b));

	for (struct qmsg *m = q->all; m != NULL; m = m->next) {
		unsigned h = qid_hash(m->env->qid, n);
		m->hnext = b[h];
		b[h] = m;
	}
	free(q->buckets);
	q->buckets = b;
	q->nbuckets = n;
}

struct qmsg *
queue_find(struct queue_runner *q, const char *qid)
{
	if (q->nbuckets == 0)
		return NULL;
	for (struct qmsg *m = q->buckets[qid_hash(qid, q->nbuckets)]; m != NULL; m = m->hnext) {
		if (strcmp(m->env->qid, qid) == 0)
			return m;
	}
	return NULL;
}

static void
index_add(struct queue_runner *q, struct qmsg *m)
{
	if (q->nmsgs + 1 > q->nbuckets)
		index_grow(q);
	unsigned h = qid_hash(m->env->qid, q->nbuckets);
	m->hnext = q->buckets[h];
	q->buckets[h] = m;
	m->next = q->all;
	if (q->all != NULL)
		q->all->prev = m;
	q->all = m;
	q->nmsgs++;
}

static void
index_remove(struct queue_runner *q, struct qmsg *m)
{
	for (struct qmsg **p = &q->buckets[qid_hash(m->env->qid, q->nbuckets)]; *p != NULL;
	    p = &(*p)->hnext) {
		if (*p == m) {
			*p = m->hnext;
			break;
		}
	}
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		q->all = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	q->nmsgs--;
}

static void
qmsg_free(struct qmsg *m)
{
	if (m->timer != NULL)
		event_free(m->timer);
	envelope_free(&m->env);
	free(m->busy);
	free(m->delay_due);
	free(m);
}

/* --- creation, settings --- */

struct queue_runner *
queue_runner_create(const struct queue_runner_deps *deps)
{
	struct queue_runner *q = xcalloc(1, sizeof(*q));

	q->deps = *deps;
	str_copy(q->queue_dir, deps->queue_dir, sizeof(q->queue_dir));
	str_copy(q->mail_root, deps->mail_root, sizeof(q->mail_root));
	str_copy(q->hostname, "localhost", sizeof(q->hostname));
	q->ob = outbound_create(deps->base, deps->cfg, deps->router, queue_remote_done, q);
	return q;
}

void
queue_runner_set_hostname(struct queue_runner *q, const char *hostname)
{
	str_copy(q->hostname, hostname, sizeof(q->hostname));
}

const char *
queue_runner_hostname(const struct queue_runner *q)
{
	return q->hostname;
}

void
queue_runner_set_tls(struct queue_runner *q, struct ssl_ctx_st *ctx)
{
	outbound_set_tls(q->ob, ctx);
}

size_t
queue_runner_active(const struct queue_runner *q)
{
	return q->nmsgs;
}

size_t
queue_runner_connections(const struct queue_runner *q)
{
	return outbound_connections(q->ob);
}

/* --- retries (seed 002: the two retry levels QTMSRTQ1 / QTMSRTQ2) --- */

void
queue_retry_decide(const struct config *cfg, time_t arrival, time_t now, unsigned attempts,
    struct queue_retry *out)
{
	uint64_t first = cfg->queue_retry1_count, second = cfg->queue_retry2_count;

	memset(out, 0, sizeof(*out));
	if ((uint64_t)attempts > first + second || now - arrival >= (time_t)cfg->queue_max_age) {
		out->give_up = true;
		return;
	}
	out->level = (uint64_t)attempts <= first ? 1 : 2;
	out->next_try = now + (time_t)(out->level == 1 ? cfg->queue_retry1_interval :
	    cfg->queue_retry2_interval);
	/* The first retry on the second level: the delay report's moment. */
	out->entered_level2 = out->level == 2 && (uint64_t)attempts == first + 1;
}

/* --- the one function that changes recipients' states --- */

struct record_job {
	struct queue_runner *q;
	struct qmsg *m;
	char qid[ENVELOPE_QID_LEN + 1];
	char *records;
	size_t len;
	int rc, err;
	size_t n;
	size_t *idx;     /* recipients whose outcome this is */
};

static void
record_work(void *arg)
{
	struct record_job *j = arg;

	j->rc = spool_append(j->q->queue_dir, j->qid, j->records, j->len);
	j->err = j->rc < 0 ? errno : 0;
}

static void qmsg_after(struct qmsg *m);

static void
record_done(void *arg)
{
	struct record_job *j = arg;
	struct qmsg *m = j->m;

	if (j->rc < 0)
		log_error("event=queue_record_failed qid=%s error=\"%s\" note=\"the outcome is "
		    "kept in memory; a restart may repeat the delivery\"", j->qid, strerror(j->err));
	for (size_t i = 0; i < j->n; i++) {
		m->busy[j->idx[i]] = false;
		m->inflight--;
	}
	m->jobs--;
	free(j->records);
	free(j->idx);
	free(j);
	qmsg_after(m);
}

static void
log_outcome(const struct qmsg *m, size_t i, const struct queue_retry *retry)
{
	const struct envelope_rcpt *r = &m->env->rcpts[i];

	if (r->state == RCPT_DELIVERED)
		log_info("event=delivered qid=%s rcpt=<%s> transport=%s%s%s%s", m->env->qid, r->addr,
		    r->remote ? "smtp" : "local", r->mta != NULL ? " relay=" : "",
		    r->mta != NULL ? r->mta : "", (r->flags & RCPT_F_RELAYED) != 0 ? " dsn=relayed" : "");
	else if (r->state == RCPT_DEFERRED)
		log_warn("event=deferred qid=%s rcpt=<%s> attempts=%u level=%d retry_in=%llds "
		    "reply=\"%s\"", m->env->qid, r->addr, r->attempts, retry->level,
		    (long long)(r->next_try - time(NULL)), r->reply != NULL ? r->reply : "");
	else if (r->state == RCPT_FAILED)
		log_warn("event=failed qid=%s rcpt=<%s> attempts=%u reply=\"%s\"", m->env->qid,
		    r->addr, r->attempts, r->reply != NULL ? r->reply : "");
}

/* True when a report about this recipient's final state is owed. */
static bool
report_due(const struct qmsg *m, const struct envelope_rcpt *r, const struct config *cfg)
{
	const struct envelope *e = m->env;

	if (e->kind == ENVELOPE_REPORT2)
		return false; /* a report about a report: never answered */
	if (e->kind == ENVELOPE_REPORT)
		return r->state == RCPT_FAILED && cfg->dsn_responsible[0] != '\0';
	if (e->sender == NULL || e->sender[0] == '\0')
		return false; /* RFC 3461 §6.2: never to the null reverse-path */
	if ((r->notify & DSN_NOTIFY_NEVER) != 0)
		return false;
	if (r->state == RCPT_FAILED)
		return r->notify == 0 || (r->notify & DSN_NOTIFY_FAILURE) != 0;
	/* RFC 3461 §5.2: a next hop that speaks DSN got NOTIFY and reports
	 * itself; we report "delivered" (local) or "relayed" (no DSN there). */
	return (r->notify & DSN_NOTIFY_SUCCESS) != 0 &&
	    (!r->remote || (r->flags & RCPT_F_RELAYED) != 0);
}

void
queue_rcpt_record(struct qmsg *m, const struct rcpt_outcome *o, size_t n)
{
	struct queue_runner *q = m->q;
	const struct config *cfg = q->deps.cfg;
	time_t now = time(NULL);
	struct evbuffer *eb = evbuffer_new();
	struct record_job *j = xcalloc(1, sizeof(*j));
	char rec[SPOOL_RECORD_MAX];

	if (eb == NULL)
		fatalx("evbuffer_new failed");
	j->q = q;
	j->m = m;
	str_copy(j->qid, m->env->qid, sizeof(j->qid));
	j->idx = xcalloc(n > 0 ? n : 1, sizeof(*j->idx));
	for (size_t k = 0; k < n; k++) {
		struct envelope_rcpt *r = &m->env->rcpts[o[k].idx];
		struct queue_retry retry = { 0 };
		r->attempts++;
		r->updated = now;
		if (o[k].code / 100 == 2) {
			r->state = RCPT_DELIVERED;
			if (o[k].relayed)
				r->flags |= RCPT_F_RELAYED;
		} else if (o[k].code / 100 == 5) {
			r->state = RCPT_FAILED;
		} else {
			queue_retry_decide(cfg, m->env->arrival, now, r->attempts, &retry);
			r->state = retry.give_up ? RCPT_FAILED : RCPT_DEFERRED;
			r->next_try = retry.next_try;
			if (retry.entered_level2 && (r->notify & DSN_NOTIFY_DELAY) != 0)
				m->delay_due[o[k].idx] = true;
		}
		if (r->state == RCPT_FAILED && r->attempts > 1 && o[k].code / 100 == 4) {
			char *why = xasprintf("giving up after %u attempts: %s", r->attempts, o[k].reply);
			envelope_rcpt_set_reply(r, o[k].mta, why);
			free(why);
		} else {
			envelope_rcpt_set_reply(r, o[k].mta, o[k].reply);
		}
		if ((r->state == RCPT_DELIVERED || r->state == RCPT_FAILED) &&
		    !report_due(m, r, cfg))
			r->flags |= RCPT_F_NOTIFIED;
		log_outcome(m, o[k].idx, &retry);
		spool_record_rcpt(m->env, o[k].idx, rec, sizeof(rec));
		evbuffer_add(eb, rec, strlen(rec));
		j->idx[j->n++] = o[k].idx;
	}
	/* Busy until the records are on disk: nothing acts on them before. */
	j->len = evbuffer_get_length(eb);
	j->records = xmalloc(j->len + 1);
	evbuffer_remove(eb, j->records, j->len);
	evbuffer_free(eb);
	m->jobs++;
	workers_submit(q->deps.workers, record_work, record_done, j);
}

/* --- settling: removal or the next retry --- */

struct remove_job {
	struct queue_runner *q;
	struct qmsg *m;
	int rc, err;
};

static void
remove_work(void *arg)
{
	struct remove_job *j = arg;

	j->rc = spool_remove(j->q->queue_dir, j->m->env->qid);
	j->err = j->rc < 0 ? errno : 0;
}

static void
remove_done(void *arg)
{
	struct remove_job *j = arg;
	struct qmsg *m = j->m;

	if (j->rc < 0 && j->err != ENOENT)
		log_error("event=queue_remove_failed qid=%s error=\"%s\"", m->env->qid,
		    strerror(j->err));
	else
		log_info("event=removed qid=%s", m->env->qid);
	index_remove(j->q, m);
	qmsg_free(m);
	free(j);
}

static void
qmsg_remove(struct qmsg *m)
{
	struct remove_job *j = xcalloc(1, sizeof(*j));

	m->removing = true;
	if (m->timer != NULL)
		evtimer_del(m->timer);
	j->q = m->q;
	j->m = m;
	workers_submit(m->q->deps.workers, remove_work, remove_done, j);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	queue_dispatch(arg, false);
}

static const char *domain_of(const char *addr);

static void
qmsg_settle(struct qmsg *m)
{
	time_t next = 0;

	if (m->q->stopping || m->removing)
		return;
	if (envelope_done(m->env)) {
		qmsg_remove(m);
		return;
	}
	if (m->env->hold)
		return;
	for (size_t i = 0; i < m->env->nrcpt; i++) {
		const struct envelope_rcpt *r = &m->env->rcpts[i];
		/* A held destination's recipients wait for its release (which
		 * dispatches them): a timer for them would fire at once, again
		 * and again, once their retry time has passed. */
		if (r->state == RCPT_DEFERRED && (next == 0 || r->next_try < next) &&
		    !(r->remote && routing_held(m->q->deps.routing, domain_of(r->addr))))
			next = r->next_try;
	}
	if (next == 0)
		return; /* held destinations: released by the admin */
	time_t now = time(NULL);
	struct timeval tv = { next > now ? next - now : 0, 0 };
	if (m->timer == NULL)
		m->timer = evtimer_new(m->q->deps.base, timer_cb, m);
	evtimer_add(m->timer, &tv);
}

/* Fails (550, by the admin) every recipient neither final nor in flight;
 * those in flight are failed when their attempt has ended (bounce_due,
 * in qmsg_after). Returns the recipients failed now. */
static size_t
qmsg_bounce(struct qmsg *m)
{
	struct rcpt_outcome *o = xcalloc(m->env->nrcpt, sizeof(*o));
	size_t n = 0;

	for (size_t i = 0; i < m->env->nrcpt; i++) {
		const struct envelope_rcpt *r = &m->env->rcpts[i];
		if (r->state == RCPT_DELIVERED || r->state == RCPT_FAILED)
			continue;
		if (m->busy[i]) {
			m->bounce_due = true;
			continue;
		}
		m->busy[i] = true;
		m->inflight++;
		o[n].idx = i;
		o[n].code = 550;
		str_copy(o[n].reply, "5.0.0 returned to the sender by the mail administrator",
		    sizeof(o[n].reply));
		n++;
	}
	if (n > 0)
		queue_rcpt_record(m, o, n);
	free(o);
	return n;
}

/* Nothing in flight any more: reports owed, then settle. */
static void
qmsg_after(struct qmsg *m)
{
	if (m->inflight > 0 || m->jobs > 0 || m->q->stopping)
		return;
	if (m->removing) {
		if (m->deleted)
			qmsg_remove(m);
		return;
	}
	if (m->bounce_due) {
		m->bounce_due = false;
		if (qmsg_bounce(m) > 0)
			return; /* its records come back here */
	}
	if (queue_report_start(m))
		return; /* queue_report_done() settles */
	qmsg_settle(m);
}

void
queue_report_done(struct qmsg *m)
{
	qmsg_after(m);
}

/* --- dispatch --- */

struct local_job {
	struct queue_runner *q;
	struct qmsg *m;
	char hostname[256];
	size_t n;
	size_t *idx;
	int rc, err;
	const char *load_error;
};

static void
local_work(void *arg)
{
	struct local_job *j = arg;
	char path[4200];
	uint64_t off;

	spool_path(j->q->queue_dir, j->m->qid_copy, path, sizeof(path));
	struct envelope *e = spool_load(path, true, &off, &j->load_error);
	if (e == NULL) {
		j->rc = -1;
		j->err = errno != 0 ? errno : EIO;
		return;
	}
	/* Some may have landed before a crash or a failed first try. */
	j->rc = maildir_deliver(j->q->mail_root, j->hostname, e, j->idx, j->n, true);
	j->err = j->rc < 0 ? errno : 0;
	envelope_free(&e);
}

static void
local_done(void *arg)
{
	struct local_job *j = arg;
	struct rcpt_outcome *o = xcalloc(j->n, sizeof(*o));
	char reply[SMTP_CLIENT_REPLY_MAX];

	if (j->rc < 0)
		snprintf(reply, sizeof(reply), "4.2.0 cannot deliver to the mailbox: %s",
		    j->load_error != NULL ? j->load_error : strerror(j->err));
	else
		str_copy(reply, "2.0.0 delivered to the mailbox", sizeof(reply));
	for (size_t i = 0; i < j->n; i++) {
		o[i].idx = j->idx[i];
		o[i].code = j->rc == 0 ? 250 : (j->err == ENOSPC || j->err == EDQUOT ? 452 : 451);
		str_copy(o[i].reply, reply, sizeof(o[i].reply));
	}
	queue_rcpt_record(j->m, o, j->n);
	free(o);
	free(j->idx);
	free(j);
}

static void
dispatch_local(struct qmsg *m, const size_t *idx, size_t n)
{
	struct local_job *j = xcalloc(1, sizeof(*j));

	j->q = m->q;
	j->m = m;
	str_copy(j->hostname, m->q->hostname, sizeof(j->hostname));
	j->n = n;
	j->idx = xcalloc(n, sizeof(*j->idx));
	memcpy(j->idx, idx, n * sizeof(*idx));
	workers_submit(m->q->deps.workers, local_work, local_done, j);
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* The next hop and destination key of a recipient domain: the profile's
 * relay when one applies (all of the message's remote recipients go there,
 * with the profile's settings: X1, C1), else the route; the source address
 * makes part of the key. */
static void
job_destination(struct queue_runner *q, const struct profile *p, const char *domain,
    const char *source, struct nexthop *nh, char *key, size_t size)
{
	if (p != NULL) {
		memset(nh, 0, sizeof(*nh));
		str_copy(nh->name, p->host, sizeof(nh->name));
		nh->port = p->port;
		snprintf(key, size, "profile:%s#%llu", p->id, (unsigned long long)p->generation);
	} else {
		router_nexthop(q->deps.router, domain, nh);
		nexthop_key(nh, key, size);
	}
	if (source[0] != '\0') {
		size_t kl = strlen(key);
		snprintf(key + kl, size - kl, "|%s", source);
	}
}

/* Groups the due remote recipients by destination (next hop and source
 * address) into jobs of at most relay.max_rcpts. */
static void
dispatch_remote(struct qmsg *m, const size_t *idx, size_t n)
{
	struct queue_runner *q = m->q;
	const struct config *cfg = q->deps.cfg;
	const struct envelope *e = m->env;
	bool *taken = xcalloc(n, sizeof(*taken));
	char source[INET6_ADDRSTRLEN] = "";
	struct profile *p = q->deps.profiles != NULL ?
	    profiles_select(q->deps.profiles, e->sender) : NULL;

	if (routing_source(q->deps.routing, domain_of(e->sender), source, sizeof(source)) != 1)
		source[0] = '\0';
	if (p != NULL && p->props.source[0] != '\0')
		str_copy(source, p->props.source, sizeof(source));
	for (size_t i = 0; i < n; i++) {
		if (taken[i])
			continue;
		struct ob_job *job = xcalloc(1, sizeof(*job));
		job_destination(q, p, domain_of(e->rcpts[idx[i]].addr), source, &job->nh, job->key,
		    sizeof(job->key));
		job->profile = profile_ref(p);
		str_copy(job->source, source, sizeof(job->source));
		job->owner = m;
		job->qid = e->qid;
		spool_path(q->queue_dir, e->qid, job->path, sizeof(job->path));
		job->body_offset = m->body_offset;
		job->body_size = e->body_size;
		job->sender = e->sender != NULL ? e->sender : "";
		job->envid = e->envid;
		job->ret = e->ret;
		job->eightbit = e->eightbit;
		job->rcpts = xcalloc(n - i, sizeof(*job->rcpts));
		/* Same domain, or another domain with the same next hop. */
		for (size_t k = i; k < n && job->n < cfg->relay_max_rcpts; k++) {
			if (taken[k])
				continue;
			struct nexthop nh;
			char key[OB_KEY_MAX];
			job_destination(q, p, domain_of(e->rcpts[idx[k]].addr), source, &nh, key,
			    sizeof(key));
			if (strcmp(key, job->key) != 0)
				continue;
			const struct envelope_rcpt *r = &e->rcpts[idx[k]];
			job->rcpts[job->n].idx = idx[k];
			job->rcpts[job->n].addr = r->addr;
			job->rcpts[job->n].notify = r->notify;
			job->rcpts[job->n].orcpt = r->orcpt;
			job->n++;
			taken[k] = true;
		}
		m->jobs_out++;
		outbound_submit(q->ob, job);
	}
	profile_unref(&p);
	free(taken);
}

void
queue_remote_done(void *arg, struct ob_job *job, const struct ob_result *res, size_t n)
{
	struct qmsg *m = job->owner;

	m->jobs_out--;
	if (res == NULL || n == 0) {
		/* Dropped at shutdown: the file still says pending/deferred. */
		for (size_t i = 0; i < job->n; i++) {
			m->busy[job->rcpts[i].idx] = false;
			m->inflight--;
		}
	} else if (m->deleted) {
		for (size_t i = 0; i < job->n; i++) {
			m->busy[job->rcpts[i].idx] = false;
			m->inflight--;
		}
		qmsg_after(m);
	} else {
		struct rcpt_outcome *o = xcalloc(n, sizeof(*o));
		for (size_t i = 0; i < n; i++) {
			o[i].idx = res[i].idx;
			o[i].code = res[i].code;
			o[i].relayed = res[i].relayed;
			str_copy(o[i].reply, res[i].reply, sizeof(o[i].reply));
			str_copy(o[i].mta, res[i].mta, sizeof(o[i].mta));
		}
		queue_rcpt_record(m, o, n);
		free(o);
	}
	profile_unref(&job->profile);
	free(job->rcpts);
	free(job);
}

static bool domain_matches(const char *d, const char *pattern);

/* Sends every due recipient of m to its transport; force: deferred ones
 * too, or only those whose domain matches force_domain when it is set (a
 * flush or ETRN for one domain leaves the message's other recipients to
 * their schedule). */
static void
dispatch(struct qmsg *m, bool force, const char *force_domain)
{
	struct queue_runner *q = m->q;
	const struct envelope *e = m->env;
	size_t *local = xcalloc(e->nrcpt, sizeof(*local));
	size_t *remote = xcalloc(e->nrcpt, sizeof(*remote));
	size_t nl = 0, nr = 0;
	time_t now = time(NULL);

	if (q->stopping || m->removing || e->hold) {
		free(local);
		free(remote);
		return;
	}
	for (size_t i = 0; i < e->nrcpt; i++) {
		const struct envelope_rcpt *r = &e->rcpts[i];
		if (m->busy[i])
			continue;
		bool forced = force && (force_domain == NULL ||
		    domain_matches(domain_of(r->addr), force_domain));
		if (r->state != RCPT_PENDING && !(r->state == RCPT_DEFERRED &&
		    (forced || r->next_try <= now)))
			continue;
		if (r->remote && routing_held(q->deps.routing, domain_of(r->addr)))
			continue; /* O5: the destination is held */
		m->busy[i] = true;
		m->inflight++;
		if (r->remote)
			remote[nr++] = i;
		else
			local[nl++] = i;
	}
	if (nl > 0)
		dispatch_local(m, local, nl);
	if (nr > 0)
		dispatch_remote(m, remote, nr);
	free(local);
	free(remote);
	if (nl == 0 && nr == 0)
		qmsg_after(m); /* reports a crash left owed, or the next timer */
}

void
queue_dispatch(struct qmsg *m, bool force)
{
	dispatch(m, force, NULL);
}

/* --- adding messages --- */

static struct qmsg *
qmsg_add(struct queue_runner *q, struct envelope *e, uint64_t body_offset)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));

	m->q = q;
	m->env = e;
	m->body_offset = body_offset;
	str_copy(m->qid_copy, e->qid, sizeof(m->qid_copy));
	m->busy = xcalloc(e->nrcpt, sizeof(*m->busy));
	m->delay_due = xcalloc(e->nrcpt, sizeof(*m->delay_due));
	if (e->body != NULL) {
		evbuffer_free(e->body); /* transports read the file */
		e->body = NULL;
	}
	index_add(q, m);
	return m;
}

void
queue_add_committed(struct queue_runner *q, struct envelope *e, uint64_t body_offset)
{
	struct qmsg *m = qmsg_add(q, e, body_offset);

	log_info("event=queued qid=%s from=<%s> nrcpt=%zu size=%llu%s", e->qid,
	    e->sender != NULL ? e->sender : "", e->nrcpt, (unsigned long long)e->body_size,
	    e->kind != ENVELOPE_MAIL ? " kind=report" : "");
	queue_dispatch(m, false);
}

int
queue_runner_commit(struct queue_runner *q, const char *hostname, const struct envelope *m,
    bool *delivered_r)
{
	*delivered_r = false;
	/* The fast path owes nobody a report: a success notice (NOTIFY=SUCCESS)
	 * goes through the queue like everything else. */
	bool notice = false;
	for (size_t i = 0; i < m->nrcpt; i++)
		notice = notice || (m->rcpts[i].notify & DSN_NOTIFY_SUCCESS) != 0;
	if (envelope_all_local(m) && !notice) {
		*delivered_r = maildir_deliver(q->mail_root, hostname, m, NULL, 0, false) == 0;
		if (*delivered_r)
			return 0;
		log_warn("event=direct_delivery_failed qid=%s error=\"%s\" action=queue", m->qid,
		    strerror(errno));
	}
	return spool_commit(q->queue_dir, m);
}

/* The queue file's body offset for an envelope just committed: the file's
 * header is exactly what spool_commit wrote, so its length is known only
 * by reading it back; the transports need it. Computed on the worker by
 * spool_load when recovering, and here by formatting the same header. */
static uint64_t
committed_body_offset(const struct queue_runner *q, const struct envelope *m)
{
	(void)q;
	return spool_header_length(m);
}

void
queue_runner_committed(struct queue_runner *q, struct envelope *m, bool delivered)
{
	if (delivered) {
		log_info("event=delivered qid=%s nrcpt=%zu transport=local", m->qid, m->nrcpt);
		envelope_free(&m);
		return;
	}
	m->body_size = m->body != NULL ? evbuffer_get_length(m->body) : 0;
	queue_add_committed(q, m, committed_body_offset(q, m));
}

/* --- recovery at start-up --- */

struct recover_batch {
	struct queue_runner *q;
	size_t n;
	char (*qids)[ENVELOPE_QID_LEN + 1];
	struct envelope **envs;
	uint64_t *offsets;
	const char **errors;
};

static void
recover_work(void *arg)
{
	struct recover_batch *b = arg;
	char path[4200];

	for (size_t i = 0; i < b->n; i++) {
		/* Files of an earlier release get the format records append to. */
		if (spool_upgrade(b->q->queue_dir, b->qids[i]) < 0) {
			b->errors[i] = "cannot upgrade a version 1 queue file";
			continue;
		}
		spool_path(b->q->queue_dir, b->qids[i], path, sizeof(path));
		b->envs[i] = spool_load(path, false, &b->offsets[i], &b->errors[i]);
	}
}

/* A DELAY notice owed when the daemon stopped: the records put a recipient
 * that asked for one on the second retry level, and none was queued (the
 * mark delay_due is not in the file; a crash between the record and the
 * notice would lose it). */
static void
delay_owed(struct qmsg *m)
{
	const struct config *cfg = m->q->deps.cfg;

	for (size_t i = 0; i < m->env->nrcpt; i++) {
		const struct envelope_rcpt *r = &m->env->rcpts[i];
		m->delay_due[i] = r->state == RCPT_DEFERRED && (r->notify & DSN_NOTIFY_DELAY) != 0 &&
		    (r->flags & RCPT_F_DELAY_NOTIFIED) == 0 &&
		    (uint64_t)r->attempts > cfg->queue_retry1_count;
	}
}

static void
recover_done(void *arg)
{
	struct recover_batch *b = arg;
	struct queue_runner *q = b->q;

	for (size_t i = 0; i < b->n; i++) {
		if (b->envs[i] == NULL) {
			/* A queue file we cannot parse will not get better: leave
			 * it for the admin. */
			log_error("event=queue_file_unusable qid=%s error=\"%s\"", b->qids[i],
			    b->errors[i]);
			q->recover_failed++;
			continue;
		}
		if (q->stopping || queue_find(q, b->envs[i]->qid) != NULL) {
			envelope_free(&b->envs[i]);
			continue;
		}
		struct qmsg *m = qmsg_add(q, b->envs[i], b->offsets[i]);
		q->recovered++;
		delay_owed(m);
		queue_dispatch(m, false);
	}
	q->recover_batches--;
	if (q->recover_batches == 0)
		log_info("event=recovery_done loaded=%zu unusable=%zu", q->recovered,
		    q->recover_failed);
	else if (q->recovered / 10000 != (q->recovered - b->n) / 10000)
		log_info("event=recovery_progress loaded=%zu", q->recovered);
	free(b->qids);
	free(b->envs);
	free(b->offsets);
	free(b->errors);
	free(b);
}

static struct recover_batch *
batch_new(struct queue_runner *q)
{
	struct recover_batch *b = xcalloc(1, sizeof(*b));

	b->q = q;
	b->qids = xcalloc(RECOVER_BATCH, sizeof(*b->qids));
	b->envs = xcalloc(RECOVER_BATCH, sizeof(*b->envs));
	b->offsets = xcalloc(RECOVER_BATCH, sizeof(*b->offsets));
	b->errors = xcalloc(RECOVER_BATCH, sizeof(*b->errors));
	return b;
}

struct recover_scan {
	struct queue_runner *q;
	struct recover_batch *cur;
};

static void
recover_one(void *arg, const char *qid)
{
	struct recover_scan *s = arg;

	if (s->cur == NULL)
		s->cur = batch_new(s->q);
	str_copy(s->cur->qids[s->cur->n++], qid, ENVELOPE_QID_LEN + 1);
	if (s->cur->n == RECOVER_BATCH) {
		s->q->recover_batches++;
		workers_submit(s->q->deps.workers, recover_work, recover_done, s->cur);
		s->cur = NULL;
	}
}

int
queue_runner_recover(struct queue_runner *q)
{
	struct recover_scan s = { q, NULL };
	int n = spool_scan(q->queue_dir, recover_one, &s);

	if (n < 0) {
		log_error("event=recovery_failed dir=%s error=\"%s\"", q->queue_dir, strerror(errno));
		return -1;
	}
	if (s.cur != NULL) {
		q->recover_batches++;
		workers_submit(q->deps.workers, recover_work, recover_done, s.cur);
	}
	if (n > 0)
		log_info("event=recovery_start queued=%d", n);
	return n;
}

/* --- admin --- */

/* A recipient domain matches "domain", or "@domain": it or a subdomain
 * (RFC 1985 §5). */
static bool
domain_matches(const char *d, const char *pattern)
{
	if (pattern[0] != '@')
		return strcasecmp(d, pattern) == 0;
	pattern++;
	size_t dl = strlen(d), pl = strlen(pattern);
	return strcasecmp(d, pattern) == 0 ||
	    (dl > pl && d[dl - pl - 1] == '.' && strcasecmp(d + dl - pl, pattern) == 0);
}

static bool
has_domain(const struct qmsg *m, const char *domain)
{
	for (size_t i = 0; i < m->env->nrcpt; i++) {
		const struct envelope_rcpt *r = &m->env->rcpts[i];
		if ((r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) &&
		    domain_matches(domain_of(r->addr), domain))
			return true;
	}
	return false;
}

size_t
queue_runner_flush(struct queue_runner *q, const char *domain, queue_progress_fn *fn, void *arg)
{
	size_t started = 0, seen = 0;

	for (struct qmsg *m = q->all; m != NULL; m = m->next) {
		seen++;
		if (fn != NULL && seen % 1000 == 0)
			fn(arg, seen, q->nmsgs);
		if (m->removing || m->env->hold || (domain != NULL && !has_domain(m, domain)))
			continue;
		started++;
		dispatch(m, true, domain);
	}
	return started;
}

size_t
queue_runner_count_domain(struct queue_runner *q, const char *domain)
{
	size_t n = 0;

	for (struct qmsg *m = q->all; m != NULL; m = m->next)
		n += !m->removing && has_domain(m, domain);
	return n;
}

struct hold_job {
	struct queue_runner *q;
	struct qmsg *m;
	char qid[ENVELOPE_QID_LEN + 1];
	char rec[16];
	size_t len;
	bool hold;
	int rc;
};

static void
hold_work(void *arg)
{
	struct hold_job *j = arg;

	j->rc = spool_append(j->q->queue_dir, j->qid, j->rec, j->len);
}

static void
hold_done(void *arg)
{
	struct hold_job *j = arg;
	struct qmsg *m = j->m;

	m->jobs--;
	if (j->rc < 0)
		log_error("event=queue_hold_failed qid=%s", j->qid);
	log_info("event=%s qid=%s", j->hold ? "held" : "released", j->qid);
	if (!j->hold && !m->removing)
		queue_dispatch(m, true);
	else
		qmsg_after(m);
	free(j);
}

int
queue_runner_hold(struct queue_runner *q, const char *qid, bool hold)
{
	struct qmsg *m = queue_find(q, qid);

	if (m == NULL || m->removing)
		return -1;
	struct hold_job *j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->m = m;
	j->hold = hold;
	str_copy(j->qid, qid, sizeof(j->qid));
	j->len = spool_record_hold(hold, j->rec, sizeof(j->rec));
	m->env->hold = hold;
	if (hold && m->timer != NULL)
		evtimer_del(m->timer);
	m->jobs++;
	workers_submit(q->deps.workers, hold_work, hold_done, j);
	return 0;
}

size_t
queue_runner_domain_held(struct queue_runner *q, const char *domain, bool hold)
{
	size_t n = queue_runner_count_domain(q, domain);

	log_info("event=%s domain=%s messages=%zu", hold ? "domain_held" : "domain_released",
	    domain, n);
	if (!hold)
		queue_runner_flush(q, domain, NULL, NULL);
	return n;
}

int
queue_runner_delete(struct queue_runner *q, const char *qid)
{
	struct qmsg *m = queue_find(q, qid);

	if (m == NULL || m->removing)
		return -1;
	log_info("event=deleted qid=%s by=admin", qid);
	m->deleted = true;
	m->removing = true;
	if (m->timer != NULL)
		evtimer_del(m->timer);
	if (m->inflight == 0 && m->jobs == 0)
		qmsg_remove(m);
	return 0;
}

int
queue_runner_bounce(struct queue_runner *q, const char *qid)
{
	struct qmsg *m = queue_find(q, qid);

	if (m == NULL || m->removing)
		return -1;
	size_t n = qmsg_bounce(m);
	log_info("event=bounced qid=%s rcpts=%zu%s by=admin", qid, n,
	    m->bounce_due ? " more=in_flight" : "");
	if (m->timer != NULL)
		evtimer_del(m->timer);
	if (n == 0)
		qmsg_after(m);
	return 0;
}

/* --- Maildir tmp/ leftovers (issue: crashes between write and link) --- */

#define SWEEP_INTERVAL 3600
#define SWEEP_AGE (36 * 3600)

struct sweep_job {
	struct queue_runner *q;
	char mail_root[4096];
	time_t ours_before, others_before;
	size_t files;
	unsigned long long bytes;
	int rc, err;
};

static void
sweep_work(void *arg)
{
	struct sweep_job *j = arg;

	j->rc = maildir_sweep_tmp(j->mail_root, j->ours_before, j->others_before, &j->files,
	    &j->bytes);
	j->err = j->rc < 0 ? errno : 0;
}

static void
sweep_done(void *arg)
{
	struct sweep_job *j = arg;

	j->q->sweeping = false;
	if (j->rc < 0 && j->err != ENOENT)
		log_warn("event=maildir_sweep_failed error=\"%s\"", strerror(j->err));
	else if (j->files > 0)
		log_info("event=maildir_tmp_swept files=%zu bytes=%llu", j->files, j->bytes);
	free(j);
}

static void
sweep_submit(struct queue_runner *q, time_t ours_before)
{
	struct sweep_job *j;

	if (q->sweeping || q->stopping)
		return;
	j = xcalloc(1, sizeof(*j));
	j->q = q;
	str_copy(j->mail_root, q->mail_root, sizeof(j->mail_root));
	j->others_before = time(NULL) - SWEEP_AGE;
	j->ours_before = ours_before > j->others_before ? ours_before : j->others_before;
	q->sweeping = true;
	workers_submit(q->deps.workers, sweep_work, sweep_done, j);
}

static void
sweep_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	sweep_submit(arg, 0);
}

void
queue_runner_sweep_maildirs(struct queue_runner *q, time_t started)
{
	struct timeval tv = { SWEEP_INTERVAL, 0 };

	sweep_submit(q, started);
	if (q->sweep_timer == NULL)
		q->sweep_timer = event_new(q->deps.base, -1, EV_PERSIST, sweep_timer_cb, q);
	evtimer_add(q->sweep_timer, &tv);
}

/* --- the schedule of a dial-up site (seed 002: SMTP scheduler) --- */

static void
etrn_done(void *arg, int accepted, const char *error)
{
	struct queue_runner *q = arg;

	q->etrn = NULL;
	if (accepted < 0)
		log_warn("event=etrn_failed error=\"%s\"", error);
	else
		log_info("event=etrn_done accepted=%d", accepted);
}

static void
etrn_route_cb(void *arg, const struct route_result *r)
{
	struct queue_runner *q = arg;
	const struct config *cfg = q->deps.cfg;

	q->etrn_route = NULL;
	if (r->status != ROUTE_OK || r->n == 0) {
		log_warn("event=etrn_failed error=\"%s\"", r->error);
		return;
	}
	q->etrn = etrn_client_start(q->deps.base, &r->t[0], cfg->relay_helo_name[0] != '\0' ?
	    cfg->relay_helo_name : cfg->server_hostname, cfg->etrn_remote_domains,
	    (unsigned)(1000 * cfg->relay_command_timeout), etrn_done, q);
}

static void
etrn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue_runner *q = arg;
	const struct config *cfg = q->deps.cfg;
	struct nexthop nh;
	const char *error;

	size_t n = queue_runner_flush(q, NULL, NULL, NULL);
	log_info("event=scheduled_run messages=%zu", n);
	if (cfg->etrn_remote[0] == '\0' || cfg->etrn_remote_domains[0] == '\0' ||
	    q->etrn != NULL || q->etrn_route != NULL)
		return;
	memset(&nh, 0, sizeof(nh));
	if (netaddr_hostport_parse(cfg->etrn_remote, nh.name, sizeof(nh.name),
	    (unsigned)cfg->relay_port, &nh.port, &error) < 0) {
		log_warn("event=etrn_failed error=\"etrn.remote: %s\"", error);
		return;
	}
	q->etrn_route = router_resolve(q->deps.router, &nh, etrn_route_cb, q);
}

void
queue_runner_run_schedule(struct queue_runner *q)
{
	etrn_timer_cb(-1, 0, q);
}

void
queue_runner_reload(struct queue_runner *q)
{
	uint64_t minutes = q->deps.cfg->etrn_interval;

	if (minutes == q->etrn_interval)
		return;
	q->etrn_interval = minutes;
	if (q->etrn_timer == NULL)
		q->etrn_timer = event_new(q->deps.base, -1, EV_PERSIST, etrn_timer_cb, q);
	evtimer_del(q->etrn_timer);
	if (minutes > 0) {
		struct timeval tv = { (time_t)(minutes * 60), 0 };
		evtimer_add(q->etrn_timer, &tv);
	}
}

void
queue_runner_stop(struct queue_runner *q)
{
	q->stopping = true;
}

void
queue_runner_destroy(struct queue_runner **qp)
{
	struct queue_runner *q = *qp;

	if (q == NULL)
		return;
	q->stopping = true;
	if (q->sweep_timer != NULL)
		event_free(q->sweep_timer);
	if (q->etrn_timer != NULL)
		event_free(q->etrn_timer);
	router_cancel(&q->etrn_route);
	etrn_client_cancel(&q->etrn);
	outbound_destroy(&q->ob);
	while (q->all != NULL) {
		struct qmsg *m = q->all;
		q->all = m->next;
		qmsg_free(m);
	}
	free(q->buckets);
	free(q);
	*qp = NULL;
}
