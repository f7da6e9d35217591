/* report.c: the delivery reports a message owes (MISSION O2, O3; RFC 3461,
 * RFC 3464): one report per message and attempt, covering every recipient
 * that failed, was delivered or relayed with NOTIFY=SUCCESS, or moved to
 * the second retry level with NOTIFY=DELAY, in that attempt.
 *
 * Order of events, so that a crash repeats a report but never loses one:
 * the recipients' final states are already on disk (queue_rcpt_record);
 * a worker composes the report (mail/dsn), commits it as a queue file of
 * its own, and only then appends the "notified" records to the original. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/directory.h"
#include "conf/settings.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"
#include "mail/dsn.h"
#include "queue/queue_internal.h"
#include "queue/spool.h"

#define REPORT_BACKOFF 60

struct report_entry {
	size_t idx;
	bool delay;                 /* a delay notice, not a final one */
	char final_rcpt[ADDR_PATH_MAX + 8];
	char orcpt[DSN_ORCPT_MAX + 16];
	char status[16];
	char remote_mta[ROUTE_NAME_MAX];
	char diagnostic[SMTP_CLIENT_REPLY_MAX + 16];
	enum dsn_action action;
};

struct report_job {
	struct queue_runner *q;
	struct qmsg *m;
	char qid[ENVELOPE_QID_LEN + 1];
	char queue_dir[4096];
	char hostname[256];
	char to[ADDR_PATH_MAX + 8];
	char from[300];
	char *envid;                 /* decoded, or NULL */
	time_t arrival, now, retry_until;
	int ret;
	struct report_entry *e;
	size_t n;
	struct envelope *report;     /* recipients set on the loop; body made on the worker */
	uint64_t report_offset;
	char *records;               /* the "notified" records for the original */
	size_t records_len;
	int rc;
	const char *error;
};

/* The enhanced status code in a reply ("550 5.1.1 …", "5.1.2 …"), made to
 * match the action's class; else the class's generic code. */
static void
status_of(const char *reply, char cls, char *out, size_t size)
{
	const char *p = reply != NULL ? reply : "";

	for (; *p != '\0'; p++) {
		unsigned a, b, c;
		int used = 0;
		if ((p == reply || p[-1] == ' ') && sscanf(p, "%1u.%3u.%3u%n", &a, &b, &c, &used) == 3 &&
		    (p[used] == ' ' || p[used] == '\0') && a >= 2 && a <= 5) {
			snprintf(out, size, "%c.%u.%u", cls, b, c);
			return;
		}
	}
	snprintf(out, size, "%c.0.0", cls);
}

static void
entry_fill(struct report_entry *en, const struct envelope_rcpt *r, bool delay)
{
	en->delay = delay;
	en->action = delay ? DSN_ACTION_DELAYED : r->state == RCPT_FAILED ? DSN_ACTION_FAILED :
	    (r->flags & RCPT_F_RELAYED) != 0 ? DSN_ACTION_RELAYED : DSN_ACTION_DELIVERED;
	str_copy(en->final_rcpt, r->addr, sizeof(en->final_rcpt));
	if (r->orcpt == NULL || dsn_orcpt_parse(r->orcpt, en->orcpt, sizeof(en->orcpt)) < 0) {
		if (strcmp(r->orig, r->addr) != 0)
			snprintf(en->orcpt, sizeof(en->orcpt), "rfc822;%s", r->orig);
		else
			en->orcpt[0] = '\0';
	}
	status_of(r->reply, en->action == DSN_ACTION_FAILED ? '5' :
	    en->action == DSN_ACTION_DELAYED ? '4' : '2', en->status, sizeof(en->status));
	str_copy(en->remote_mta, r->mta != NULL ? r->mta : "", sizeof(en->remote_mta));
	/* An SMTP reply is typed "smtp;" (RFC 3464 §2.3.6); our own words are
	 * written as X-Tegami by mail/dsn. */
	const char *reply = r->reply != NULL ? r->reply : "";
	bool smtp = reply[0] >= '2' && reply[0] <= '5' && reply[1] >= '0' && reply[1] <= '9' &&
	    reply[2] >= '0' && reply[2] <= '9' && reply[3] == ' ';
	snprintf(en->diagnostic, sizeof(en->diagnostic), "%s%s", smtp ? "smtp; " : "", reply);
}

/* Where the report goes: the sender, or for a report that failed, the DSN
 * responsible person (seed 002). "" when nobody. */
static const char *
report_to(const struct qmsg *m, const struct config *cfg)
{
	if (m->env->kind == ENVELOPE_REPORT)
		return cfg->dsn_responsible;
	if (m->env->kind == ENVELOPE_REPORT2 || m->env->sender == NULL)
		return "";
	return m->env->sender;
}

/* Adds the recipients of an address to the report's envelope: local
 * mailboxes through the directory, anything else by SMTP. */
static void
report_add_rcpt(struct queue_runner *q, struct envelope *rep, const char *address)
{
	struct mail_addr a;
	const char *error;
	struct dir_targets *t = xcalloc(1, sizeof(*t));

	if (addr_parse_mailbox(address, &a, &error) < 0) {
		log_warn("event=report_rcpt_unusable rcpt=<%s> error=\"%s\"", address, error);
		free(t);
		return;
	}
	switch (directory_resolve(q->deps.dir, &a, false, t)) {
	case DIR_LOCAL:
		for (size_t i = 0; i < t->n; i++)
			envelope_add_rcpt(rep, t->mailbox[i], address, false);
		break;
	case DIR_NOT_LOCAL:
		envelope_add_rcpt(rep, address, address, true);
		break;
	case DIR_UNKNOWN:
		if (q->deps.cfg->route_mailhub[0] != '\0')
			envelope_add_rcpt(rep, address, address, true);
		else
			log_warn("event=report_rcpt_unknown rcpt=<%s>", address);
		break;
	default:
		log_warn("event=report_rcpt_lookup_failed rcpt=<%s>", address);
		break;
	}
	free(t);
}

static void
report_work(void *arg)
{
	struct report_job *j = arg;
	char path[4200];
	uint64_t off;
	struct dsn_rcpt *dr = xcalloc(j->n, sizeof(*dr));
	bool final_failure = false;

	spool_path(j->queue_dir, j->qid, path, sizeof(path));
	struct envelope *orig = spool_load(path, true, &off, &j->error);
	if (orig == NULL) {
		j->rc = -1;
		goto out;
	}
	for (size_t i = 0; i < j->n; i++) {
		struct report_entry *en = &j->e[i];
		dr[i].final_rcpt = en->final_rcpt;
		dr[i].orcpt = en->orcpt[0] != '\0' ? en->orcpt : NULL;
		dr[i].action = en->action;
		dr[i].status = en->status;
		dr[i].remote_mta = en->remote_mta[0] != '\0' ? en->remote_mta : NULL;
		dr[i].diagnostic = en->diagnostic[0] != '\0' ? en->diagnostic : NULL;
		dr[i].last_attempt = j->now;
		dr[i].will_retry_until = en->delay ? j->retry_until : 0;
		final_failure = final_failure || en->action == DSN_ACTION_FAILED;
	}
	/* RFC 3461 §4.3: the whole message comes back with a failure unless
	 * RET=HDRS; a success or delay notice carries only the headers. */
	struct dsn_report r = {
		.reporting_mta = j->hostname, .from = j->from, .to = j->to,
		.message_id_domain = j->hostname, .qid = j->qid, .envid = j->envid,
		.arrival = j->arrival, .now = j->now,
		.ret = final_failure && j->ret != DSN_RET_HDRS ? DSN_RET_FULL : DSN_RET_HDRS,
		.rcpts = dr, .nrcpt = j->n,
	};
	j->report->eightbit = orig->eightbit && r.ret == DSN_RET_FULL;
	if (dsn_report_write(&r, orig->body, j->report->body, &j->error) < 0) {
		j->rc = -1;
		goto out;
	}
	j->report->body_size = evbuffer_get_length(j->report->body);
	j->report_offset = spool_header_length(j->report);
	if (spool_commit(j->queue_dir, j->report) < 0) {
		j->error = strerror(errno);
		j->rc = -1;
		goto out;
	}
	/* Only now is the original told its reports are out. */
	if (spool_append(j->queue_dir, j->qid, j->records, j->records_len) < 0)
		j->error = "notified record not written; the report may be repeated";
	j->rc = 0;
out:
	envelope_free(&orig);
	free(dr);
}

static void
report_job_free(struct report_job *j)
{
	envelope_free(&j->report);
	free(j->envid);
	free(j->e);
	free(j->records);
	free(j);
}

static void
report_done(void *arg)
{
	struct report_job *j = arg;
	struct qmsg *m = j->m;

	m->jobs--;
	if (j->rc < 0) {
		log_error("event=report_failed qid=%s error=\"%s\" retry_in=%ds", j->qid,
		    j->error != NULL ? j->error : "?", REPORT_BACKOFF);
		m->report_backoff = time(NULL) + REPORT_BACKOFF;
		report_job_free(j);
		queue_report_done(m);
		return;
	}
	for (size_t i = 0; i < j->n; i++) {
		struct envelope_rcpt *r = &m->env->rcpts[j->e[i].idx];
		r->flags |= j->e[i].delay ? RCPT_F_DELAY_NOTIFIED : RCPT_F_NOTIFIED;
		if (j->e[i].delay)
			m->delay_due[j->e[i].idx] = false;
	}
	log_info("event=report qid=%s report=%s to=<%s> rcpts=%zu action=%s%s", j->qid,
	    j->report->qid, j->to, j->n, dsn_action_name(j->e[0].action),
	    j->n > 1 ? ",..." : "");
	struct envelope *rep = j->report;
	j->report = NULL;
	if (!m->q->stopping)
		queue_add_committed(m->q, rep, j->report_offset);
	else
		envelope_free(&rep);
	report_job_free(j);
	queue_report_done(m);
}

/* The records saying these recipients' reports are out. */
static void
notified_records(struct qmsg *m, struct report_job *j)
{
	struct evbuffer *eb = evbuffer_new();
	char rec[SPOOL_RECORD_MAX];

	if (eb == NULL)
		fatalx("evbuffer_new failed");
	for (size_t i = 0; i < j->n; i++) {
		struct envelope_rcpt *r = &m->env->rcpts[j->e[i].idx];
		unsigned saved = r->flags;
		r->flags |= j->e[i].delay ? RCPT_F_DELAY_NOTIFIED : RCPT_F_NOTIFIED;
		spool_record_rcpt(m->env, j->e[i].idx, rec, sizeof(rec));
		r->flags = saved; /* applied once the report is on disk */
		evbuffer_add(eb, rec, strlen(rec));
	}
	j->records_len = evbuffer_get_length(eb);
	j->records = xmalloc(j->records_len + 1);
	evbuffer_remove(eb, j->records, j->records_len);
	evbuffer_free(eb);
}

/* Marks the entries notified without a report (nobody to send it to). */
static void
report_drop(struct qmsg *m, struct report_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct envelope_rcpt *r = &m->env->rcpts[e[i].idx];
		r->flags |= e[i].delay ? RCPT_F_DELAY_NOTIFIED : RCPT_F_NOTIFIED;
		if (e[i].delay)
			m->delay_due[e[i].idx] = false;
	}
	log_warn("event=report_dropped qid=%s rcpts=%zu reason=\"no one to send it to\"",
	    m->env->qid, n);
}

bool
queue_report_start(struct qmsg *m)
{
	struct queue_runner *q = m->q;
	const struct config *cfg = q->deps.cfg;
	const struct envelope *e = m->env;
	struct report_entry *en = xcalloc(e->nrcpt, sizeof(*en));
	size_t n = 0;
	bool failures = false;

	if (m->report_backoff > time(NULL)) {
		free(en);
		return false;
	}
	for (size_t i = 0; i < e->nrcpt; i++) {
		const struct envelope_rcpt *r = &e->rcpts[i];
		bool final_due = (r->state == RCPT_DELIVERED || r->state == RCPT_FAILED) &&
		    (r->flags & RCPT_F_NOTIFIED) == 0;
		bool delay_due = r->state == RCPT_DEFERRED && m->delay_due[i] &&
		    (r->flags & RCPT_F_DELAY_NOTIFIED) == 0;
		if (!final_due && !delay_due)
			continue;
		en[n].idx = i;
		entry_fill(&en[n], r, !final_due);
		failures = failures || en[n].action == DSN_ACTION_FAILED;
		n++;
	}
	if (n == 0) {
		free(en);
		return false;
	}
	const char *to = report_to(m, cfg);
	struct report_job *j = xcalloc(1, sizeof(*j));
	j->report = envelope_create();
	j->report->sender = xstrdup("");
	j->report->kind = e->kind == ENVELOPE_MAIL ? ENVELOPE_REPORT : ENVELOPE_REPORT2;
	if (to[0] != '\0')
		report_add_rcpt(q, j->report, to);
	/* Seed 002: NONDELIVERY gets a copy of every non-delivery report. */
	if (failures && e->kind == ENVELOPE_MAIL && cfg->queue_nondelivery[0] != '\0')
		report_add_rcpt(q, j->report, cfg->queue_nondelivery);
	if (j->report->nrcpt == 0) {
		report_drop(m, en, n);
		free(en);
		report_job_free(j);
		return false; /* the caller settles; the flags are kept in memory */
	}
	j->q = q;
	j->m = m;
	str_copy(j->qid, e->qid, sizeof(j->qid));
	str_copy(j->queue_dir, q->queue_dir, sizeof(j->queue_dir));
	str_copy(j->hostname, q->hostname, sizeof(j->hostname));
	str_copy(j->to, to[0] != '\0' ? to : cfg->queue_nondelivery, sizeof(j->to));
	snprintf(j->from, sizeof(j->from), "MAILER-DAEMON@%s", q->hostname);
	if (e->envid != NULL) {
		char decoded[DSN_ENVID_MAX + 1];
		if (dsn_envid_parse(e->envid, decoded, sizeof(decoded)) == 0)
			j->envid = xstrdup(decoded);
	}
	j->arrival = e->arrival;
	j->now = time(NULL);
	j->retry_until = e->arrival + (time_t)cfg->queue_max_age;
	j->ret = e->ret;
	j->e = en;
	j->n = n;
	notified_records(m, j);
	m->jobs++;
	workers_submit(q->deps.workers, report_work, report_done, j);
	return true;
}
