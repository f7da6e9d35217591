/* outbound.c: destination queues and their connections (outbound.h). */
#include "queue/outbound.h"

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

#define DEST_BUCKETS 1024

struct ob_conn;

struct ob_dest {
	struct outbound *ob;
	char key[OB_KEY_MAX];
	struct nexthop nh;
	char source[INET6_ADDRSTRLEN];
	struct ob_job *head, *tail;   /* jobs waiting for a connection */
	size_t njobs;
	unsigned conns;               /* connections open or opening */
	unsigned setting_up;          /* of those, not yet carrying a job */
	bool waiting;                 /* on ob->waiting: needs a connection slot */
	struct ob_dest *hnext;        /* hash chain */
	struct ob_dest *wnext;        /* waiting list */
};

struct ob_conn {
	struct outbound *ob;
	struct ob_dest *dest;
	struct route_req *rreq;
	struct smtp_client *cl;
	struct ob_job *job;           /* in flight */
	unsigned messages;
	struct ob_conn *prev, *next;
};

struct outbound {
	struct event_base *base;
	const struct config *cfg;
	struct router *router;
	SSL_CTX *tls;
	ob_done_fn *done;
	void *arg;
	struct ob_dest *buckets[DEST_BUCKETS];
	struct ob_dest *waiting, *waiting_tail;
	struct ob_conn *conns;
	size_t nconns;
	size_t njobs;
	struct event *deliver_ev;     /* finished jobs leave from the loop */
	struct ob_finished *finished;
};

/* Results decided inside a call (a destination answered at once) wait
 * here for the loop. */
struct ob_finished {
	struct ob_job *job;
	struct ob_result *res;
	struct ob_finished *next;
};

static void dest_kick(struct ob_dest *d);
static void conn_start(struct ob_dest *d);

static unsigned
key_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % DEST_BUCKETS;
}

static struct ob_dest *
dest_get(struct outbound *ob, const struct ob_job *job)
{
	unsigned h = key_hash(job->key);
	struct ob_dest *d;

	for (d = ob->buckets[h]; d != NULL; d = d->hnext) {
		if (strcmp(d->key, job->key) == 0)
			return d;
	}
	d = xcalloc(1, sizeof(*d));
	d->ob = ob;
	str_copy(d->key, job->key, sizeof(d->key));
	d->nh = job->nh;
	str_copy(d->source, job->source, sizeof(d->source));
	d->hnext = ob->buckets[h];
	ob->buckets[h] = d;
	return d;
}

/* An idle destination is forgotten (its key may come back later). */
static void
dest_gc(struct ob_dest *d)
{
	struct outbound *ob = d->ob;

	if (d->njobs > 0 || d->conns > 0 || d->waiting)
		return;
	for (struct ob_dest **p = &ob->buckets[key_hash(d->key)]; *p != NULL; p = &(*p)->hnext) {
		if (*p == d) {
			*p = d->hnext;
			free(d);
			return;
		}
	}
}

struct outbound *
outbound_create(struct event_base *base, const struct config *cfg, struct router *router,
    ob_done_fn *done, void *arg)
{
	struct outbound *ob = xcalloc(1, sizeof(*ob));

	ob->base = base;
	ob->cfg = cfg;
	ob->router = router;
	ob->done = done;
	ob->arg = arg;
	return ob;
}

void
outbound_set_tls(struct outbound *ob, struct ssl_ctx_st *ctx)
{
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	SSL_CTX_free(ob->tls);
	ob->tls = ctx;
}

size_t
outbound_connections(const struct outbound *ob)
{
	return ob->nconns;
}

size_t
outbound_waiting(const struct outbound *ob)
{
	return ob->njobs;
}

/* --- results --- */

static void
finished_cb(evutil_socket_t fd, short what, void *arg)
{
	struct outbound *ob = arg;
	struct ob_finished *f;

	while ((f = ob->finished) != NULL) {
		ob->finished = f->next;
		struct ob_job *job = f->job;
		ob->done(ob->arg, job, f->res, job->n);
		free(f->res);
		free(f);
	}
}

/* Every recipient of job gets the same result; delivered from the loop. */
static void
job_fail(struct outbound *ob, struct ob_job *job, int code, const char *reply, const char *mta)
{
	struct ob_finished *f = xcalloc(1, sizeof(*f));

	f->job = job;
	f->res = xcalloc(job->n > 0 ? job->n : 1, sizeof(*f->res));
	for (size_t i = 0; i < job->n; i++) {
		f->res[i].idx = job->rcpts[i].idx;
		f->res[i].code = code;
		str_copy(f->res[i].reply, reply, sizeof(f->res[i].reply));
		str_copy(f->res[i].mta, mta != NULL ? mta : "", sizeof(f->res[i].mta));
	}
	f->next = ob->finished;
	ob->finished = f;
	if (ob->deliver_ev == NULL)
		ob->deliver_ev = evtimer_new(ob->base, finished_cb, ob);
	struct timeval now = { 0, 0 };
	evtimer_add(ob->deliver_ev, &now);
}

static struct ob_job *
dest_pop(struct ob_dest *d)
{
	struct ob_job *job = d->head;

	if (job == NULL)
		return NULL;
	d->head = job->next;
	if (d->head == NULL)
		d->tail = NULL;
	job->next = NULL;
	d->njobs--;
	d->ob->njobs--;
	return job;
}

/* The destination cannot be reached now: every waiting job gets the error. */
static void
dest_fail_all(struct ob_dest *d, int code, const char *reply, const char *mta)
{
	struct ob_job *job;
	size_t n = 0;

	while ((job = dest_pop(d)) != NULL) {
		job_fail(d->ob, job, code, reply, mta);
		n++;
	}
	if (n > 0)
		log_info("event=destination_failed dest=%s jobs=%zu code=%d reply=\"%s\"", d->key, n,
		    code, reply);
}

/* --- connections --- */

static void
conn_remove(struct ob_conn *c)
{
	struct outbound *ob = c->ob;
	struct ob_dest *d = c->dest;

	router_cancel(&c->rreq);
	smtp_client_free(&c->cl);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ob->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	ob->nconns--;
	d->conns--;
	free(c);
	/* A slot is free: this destination, then whoever waits for one. */
	dest_kick(d);
	while (ob->waiting != NULL && ob->nconns < ob->cfg->relay_max_connections) {
		struct ob_dest *w = ob->waiting;
		ob->waiting = w->wnext;
		if (ob->waiting == NULL)
			ob->waiting_tail = NULL;
		w->waiting = false;
		w->wnext = NULL;
		dest_kick(w);
	}
	dest_gc(d);
}

/* Gives the connection its next job, or ends it. */
static void
conn_next(struct ob_conn *c)
{
	struct ob_dest *d = c->dest;
	const struct config *cfg = c->ob->cfg;

	if (c->messages >= cfg->relay_max_messages_per_connection || d->head == NULL) {
		conn_remove(c);
		return;
	}
	c->job = dest_pop(d);
	struct smtp_client_rcpt *rc = xcalloc(c->job->n, sizeof(*rc));
	for (size_t i = 0; i < c->job->n; i++) {
		rc[i].addr = c->job->rcpts[i].addr;
		rc[i].notify = c->job->rcpts[i].notify;
		rc[i].orcpt = c->job->rcpts[i].orcpt;
	}
	struct smtp_client_txn txn = {
		.sender = c->job->sender, .envid = c->job->envid, .ret = c->job->ret,
		.eightbit = c->job->eightbit, .rcpts = rc, .nrcpt = c->job->n,
		.path = c->job->path, .body_offset = c->job->body_offset,
		.body_size = c->job->body_size,
	};
	if (smtp_client_send(c->cl, &txn) < 0) {
		job_fail(c->ob, c->job, 421, "4.4.2 connection not ready", smtp_client_host(c->cl));
		c->job = NULL;
		free(rc);
		conn_remove(c);
		return;
	}
	free(rc);
	c->messages++;
}

static void
client_cb(void *arg, enum smtp_client_event ev, const struct smtp_client_result *results,
    size_t n, bool closed, int code, const char *error)
{
	struct ob_conn *c = arg;
	struct ob_dest *d = c->dest;
	struct outbound *ob = c->ob;

	switch (ev) {
	case SMTP_CLIENT_READY:
		d->setting_up--;
		conn_next(c);
		return;
	case SMTP_CLIENT_FAILED:
		if (c->job != NULL) {
			/* Lost while idle between jobs cannot happen with a job
			 * in flight (that is DONE); be safe anyway. */
			job_fail(ob, c->job, 421, error, smtp_client_host(c->cl));
			c->job = NULL;
		} else {
			d->setting_up--;
		}
		/* Nobody could be reached: the jobs waiting for this
		 * destination fail alike, unless another connection is working. */
		if (d->conns - d->setting_up <= 1 || code >= 500)
			dest_fail_all(d, code, error, NULL);
		conn_remove(c);
		return;
	case SMTP_CLIENT_DONE:
		break;
	}
	struct ob_job *job = c->job;
	struct ob_result *res = xcalloc(n > 0 ? n : 1, sizeof(*res));
	for (size_t i = 0; i < n && i < job->n; i++) {
		res[i].idx = job->rcpts[i].idx;
		res[i].code = results[i].code;
		res[i].relayed = results[i].relayed;
		str_copy(res[i].reply, results[i].reply, sizeof(res[i].reply));
		str_copy(res[i].mta, smtp_client_host(c->cl), sizeof(res[i].mta));
	}
	c->job = NULL;
	ob->done(ob->arg, job, res, job->n);
	free(res);
	if (closed) {
		conn_remove(c);
		return;
	}
	conn_next(c);
}

static void
route_cb(void *arg, const struct route_result *r)
{
	struct ob_conn *c = arg;
	struct ob_dest *d = c->dest;
	const struct config *cfg = c->ob->cfg;

	c->rreq = NULL;
	if (r->status != ROUTE_OK) {
		d->setting_up--;
		int code = r->status == ROUTE_PERMFAIL ? 550 : 451;
		char reply[SMTP_CLIENT_REPLY_MAX];
		snprintf(reply, sizeof(reply), "%s", r->error);
		dest_fail_all(d, code, reply, NULL);
		conn_remove(c);
		return;
	}
	struct smtp_client_settings s = {
		.helo = cfg->relay_helo_name[0] != '\0' ? cfg->relay_helo_name : cfg->server_hostname,
		.tls = strcmp(cfg->relay_tls, "none") == 0 ? SMTP_CLIENT_TLS_NONE :
		    strcmp(cfg->relay_tls, "encrypt") == 0 ? SMTP_CLIENT_TLS_ENCRYPT :
		    strcmp(cfg->relay_tls, "verify") == 0 ? SMTP_CLIENT_TLS_VERIFY : SMTP_CLIENT_TLS_MAY,
		.tls_ctx = c->ob->tls,
		.connect_timeout_ms = (unsigned)(1000 * cfg->relay_connect_timeout),
		.command_timeout_ms = (unsigned)(1000 * cfg->relay_command_timeout),
		.data_timeout_ms = (unsigned)(1000 * cfg->relay_data_timeout),
		.source_ip = d->source[0] != '\0' ? d->source : NULL,
	};
	c->cl = smtp_client_start(c->ob->base, &s, r->t, r->n, client_cb, c);
}

static void
conn_start(struct ob_dest *d)
{
	struct outbound *ob = d->ob;
	struct ob_conn *c = xcalloc(1, sizeof(*c));

	c->ob = ob;
	c->dest = d;
	c->next = ob->conns;
	if (ob->conns != NULL)
		ob->conns->prev = c;
	ob->conns = c;
	ob->nconns++;
	d->conns++;
	d->setting_up++;
	c->rreq = router_resolve(ob->router, &d->nh, route_cb, c);
}

/* Opens connections while jobs wait for them and the limits allow. */
static void
dest_kick(struct ob_dest *d)
{
	struct outbound *ob = d->ob;
	const struct config *cfg = ob->cfg;

	while (d->njobs > d->setting_up && d->conns < cfg->relay_max_per_destination) {
		if (ob->nconns >= cfg->relay_max_connections) {
			if (!d->waiting) {
				d->waiting = true;
				if (ob->waiting_tail != NULL)
					ob->waiting_tail->wnext = d;
				else
					ob->waiting = d;
				ob->waiting_tail = d;
			}
			return;
		}
		conn_start(d);
	}
}

void
outbound_submit(struct outbound *ob, struct ob_job *job)
{
	struct ob_dest *d = dest_get(ob, job);

	job->next = NULL;
	if (d->tail != NULL)
		d->tail->next = job;
	else
		d->head = job;
	d->tail = job;
	d->njobs++;
	ob->njobs++;
	dest_kick(d);
}

void
outbound_destroy(struct outbound **obp)
{
	struct outbound *ob = *obp;

	if (ob == NULL)
		return;
	while (ob->conns != NULL) {
		struct ob_conn *c = ob->conns;
		ob->conns = c->next;
		router_cancel(&c->rreq);
		smtp_client_free(&c->cl);
		if (c->job != NULL)
			ob->done(ob->arg, c->job, NULL, 0);
		free(c);
	}
	finished_cb(-1, 0, ob);
	for (size_t i = 0; i < DEST_BUCKETS; i++) {
		while (ob->buckets[i] != NULL) {
			struct ob_dest *d = ob->buckets[i];
			struct ob_job *job;
			ob->buckets[i] = d->hnext;
			while ((job = d->head) != NULL) {
				d->head = job->next;
				ob->done(ob->arg, job, NULL, 0);
			}
			free(d);
		}
	}
	if (ob->deliver_ev != NULL)
		event_free(ob->deliver_ev);
	SSL_CTX_free(ob->tls);
	free(ob);
	*obp = NULL;
}
