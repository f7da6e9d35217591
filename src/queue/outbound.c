/* outbound.c: destination queues and their connections (outbound.h). */
#include "queue/outbound.h"

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/profile.h"
#include "conf/settings.h"
#include "deliver/profile_client.h"
#include "deliver/pop3_client.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/tls.h"
#include "lib/xmalloc.h"

#define DEST_BUCKETS 1024
#define TLS_VERSIONS 4                /* TLSv1 .. TLSv1.3: the profiles' minimums */

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
	struct profile *profile;      /* a server profile's destination, or NULL */
	struct route_req *pop_rreq;   /* POP-before-SMTP: the POP3 server's addresses */
	struct pop3_client *pop;      /* ... and the login under way */
	unsigned pins;                /* held while its connections are walked */
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
	bool pop_wait;                /* waits for the destination's POP3 login */
	struct event *defer;          /* a setup failure known at once leaves from the loop */
	int defer_code;
	char defer_text[SMTP_CLIENT_REPLY_MAX];
	struct ob_conn *prev, *next;
};

/* When a POP-before-SMTP login last succeeded (C4). */
struct ob_pop_seen {
	char key[PROFILE_ID_MAX + PROFILE_HOST_MAX + PROFILE_ACCOUNT_MAX + 16];
	time_t when;
	struct ob_pop_seen *next;
};

struct outbound {
	struct event_base *base;
	const struct config *cfg;
	struct router *router;
	SSL_CTX *tls;
	SSL_CTX *ptls[TLS_VERSIONS];  /* the profiles', by minimum version, made on first use */
	struct ob_pop_seen *pop_seen;
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
	d->profile = profile_ref(job->profile);
	d->hnext = ob->buckets[h];
	ob->buckets[h] = d;
	return d;
}

/* An idle destination is forgotten (its key may come back later). */
static void
dest_gc(struct ob_dest *d)
{
	struct outbound *ob = d->ob;

	if (d->njobs > 0 || d->conns > 0 || d->waiting || d->pins > 0 || d->pop != NULL ||
	    d->pop_rreq != NULL)
		return;
	for (struct ob_dest **p = &ob->buckets[key_hash(d->key)]; *p != NULL; p = &(*p)->hnext) {
		if (*p == d) {
			*p = d->hnext;
			profile_unref(&d->profile);
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
	for (int i = 0; i < TLS_VERSIONS; i++) {
		SSL_CTX_free(ob->ptls[i]);
		ob->ptls[i] = NULL;
	}
}

/* A profile's client context: its minimum version, relay.tls_ca_file. */
static SSL_CTX *
profile_tls_ctx(struct outbound *ob, const char *min_protocol)
{
	static const char *const names[TLS_VERSIONS] = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" };
	char err[512];
	int i;

	for (i = 0; i < TLS_VERSIONS && strcmp(names[i], min_protocol) != 0; i++)
		;
	if (i == TLS_VERSIONS)
		i = TLS_VERSIONS - 1;
	if (ob->ptls[i] == NULL) {
		ob->ptls[i] = tls_client_context_create(names[i], ob->cfg->relay_tls_ca_file, err,
		    sizeof(err));
		if (ob->ptls[i] == NULL)
			log_error("event=profile_tls_failed min_protocol=%s error=\"%s\"", names[i], err);
	}
	return ob->ptls[i];
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
	if (c->defer != NULL)
		event_free(c->defer);
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
	uint64_t limit = cfg->relay_max_messages_per_connection;
	char header[PROFILE_XMAILER_MAX + 16] = "";

	if (d->profile != NULL && d->profile->props.max_messages > 0)
		limit = d->profile->props.max_messages;
	if (c->messages >= limit || d->head == NULL) {
		conn_remove(c);
		return;
	}
	if (d->profile != NULL && d->profile->xmailer[0] != '\0')
		snprintf(header, sizeof(header), "X-Mailer: %s", d->profile->xmailer);
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
		.body_size = c->job->body_size, .add_header = header[0] != '\0' ? header : NULL,
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

/* The dialogue of a profile with debug on (seed 004: デバッグ設定), secrets
 * already masked by the client. */
static void
trace_log(void *arg, char dir, const char *line)
{
	struct ob_conn *c = arg;
	char text[SMTP_CLIENT_REPLY_MAX * 2];
	size_t i;

	for (i = 0; line[i] != '\0' && i + 1 < sizeof(text); i++)
		text[i] = line[i] == '"' ? '\'' : line[i];
	text[i] = '\0';
	log_info("event=client_dialogue profile=%s dest=%s dir=%s line=\"%s\"",
	    c->dest->profile->id, c->dest->key, dir == '>' ? "send" : dir == '<' ? "recv" : "note",
	    text);
}

/* What a server profile changes in a connection's settings. */
static void
profile_settings(struct ob_conn *c, struct smtp_client_settings *s)
{
	const struct profile *p = c->dest->profile;

	profile_client_smtp(p, profile_tls_ctx(c->ob, p->tls_protocol), p->secret_plain, s);
	if (p->debug) {
		s->trace = trace_log;
		s->trace_arg = c;
	}
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
	struct smtp_client_settings s = { .source_ip = d->source[0] != '\0' ? d->source : NULL };
	profile_client_smtp_defaults(cfg, c->ob->tls, &s);
	if (d->profile != NULL)
		profile_settings(c, &s);
	c->cl = smtp_client_start(c->ob->base, &s, r->t, r->n, client_cb, c);
}

/* A connection that cannot be set up: the destination's jobs get the
 * error (as when its next hop cannot be resolved). */
static void
conn_setup_failed(struct ob_conn *c, int code, const char *text)
{
	struct ob_dest *d = c->dest;

	d->setting_up--;
	dest_fail_all(d, code, text, NULL);
	conn_remove(c);
}

static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ob_conn *c = arg;

	conn_setup_failed(c, c->defer_code, c->defer_text);
}

/* The same, known at once: from the loop (never inside outbound_submit). */
static void
conn_defer_fail(struct ob_conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
conn_defer_fail(struct ob_conn *c, int code, const char *fmt, ...)
{
	struct timeval now = { 0, 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->defer_text, sizeof(c->defer_text), fmt, ap);
	va_end(ap);
	c->defer_code = code;
	c->defer = evtimer_new(c->ob->base, defer_cb, c);
	evtimer_add(c->defer, &now);
}

/* --- POP-before-SMTP (C4) --- */

static void
pop_key(const struct profile *p, char *buf, size_t size)
{
	snprintf(buf, size, "%s|%s:%u|%s", p->id, p->pop_host, p->pop_port, p->pop_account);
}

/* The login of p still counts; expired entries go. */
static bool
pop_fresh(struct outbound *ob, const struct profile *p)
{
	char key[sizeof(((struct ob_pop_seen *)0)->key)];
	time_t now = time(NULL);
	bool fresh = false;

	pop_key(p, key, sizeof(key));
	for (struct ob_pop_seen **sp = &ob->pop_seen; *sp != NULL;) {
		struct ob_pop_seen *e = *sp;
		if (now - e->when >= (time_t)ob->cfg->relay_pop_before_smtp_interval || now < e->when) {
			*sp = e->next;
			free(e);
			continue;
		}
		fresh = fresh || strcmp(e->key, key) == 0;
		sp = &e->next;
	}
	return fresh;
}

static void
pop_mark(struct outbound *ob, const struct profile *p)
{
	struct ob_pop_seen *e = xcalloc(1, sizeof(*e));

	pop_key(p, e->key, sizeof(e->key));
	e->when = time(NULL);
	e->next = ob->pop_seen;
	ob->pop_seen = e;
}

/* The connections of d that wait for its POP3 login (n of them). */
static struct ob_conn **
pop_waiters(struct ob_dest *d, size_t *n)
{
	struct ob_conn **w = xcalloc(d->conns > 0 ? d->conns : 1, sizeof(*w));

	*n = 0;
	for (struct ob_conn *c = d->ob->conns; c != NULL && *n < d->conns; c = c->next) {
		if (c->dest == d && c->pop_wait)
			w[(*n)++] = c;
	}
	return w;
}

static void route_cb(void *arg, const struct route_result *r);

static void
pop_done(struct ob_dest *d, bool ok, const char *error)
{
	size_t n;
	struct ob_conn **w = pop_waiters(d, &n);
	char text[SMTP_CLIENT_REPLY_MAX];

	d->pins++;
	if (ok) {
		log_info("event=pop_before_smtp profile=%s pop3=%s:%u result=ok", d->profile->id,
		    d->profile->pop_host, d->profile->pop_port);
		pop_mark(d->ob, d->profile);
		for (size_t i = 0; i < n; i++) {
			w[i]->pop_wait = false;
			w[i]->rreq = router_resolve(d->ob->router, &d->nh, route_cb, w[i]);
		}
	} else {
		snprintf(text, sizeof(text), "4.7.0 POP-before-SMTP login for profile %s failed: %s",
		    d->profile->id, error);
		log_info("event=pop_before_smtp profile=%s pop3=%s:%u result=failed error=\"%s\"",
		    d->profile->id, d->profile->pop_host, d->profile->pop_port, error);
		for (size_t i = 0; i < n; i++)
			conn_setup_failed(w[i], 454, text);
	}
	free(w);
	d->pins--;
	dest_gc(d);
}

static void
pop_cb(void *arg, bool ok, bool refused, const char *error)
{
	struct ob_dest *d = arg;
	char why[SMTP_CLIENT_REPLY_MAX];

	str_copy(why, error != NULL ? error : "", sizeof(why)); /* error is the client's */
	pop3_client_free(&d->pop);
	pop_done(d, ok, why);
}

static void
pop_route_cb(void *arg, const struct route_result *r)
{
	struct ob_dest *d = arg;
	const struct profile *p = d->profile;
	const struct config *cfg = d->ob->cfg;

	d->pop_rreq = NULL;
	if (r->status != ROUTE_OK) {
		pop_done(d, false, r->error);
		return;
	}
	struct pop3_client_settings s = { .source_ip = d->source[0] != '\0' ? d->source : NULL };
	profile_client_pop3(p, cfg, profile_tls_ctx(d->ob, p->tls_protocol), p->pop_secret_plain,
	    &s);
	d->pop = pop3_client_start(d->ob->base, &s, r->t, r->n, pop_cb, d);
}

static void
pop_start(struct ob_dest *d)
{
	struct nexthop nh = { .mx = false, .port = d->profile->pop_port };

	str_copy(nh.name, d->profile->pop_host, sizeof(nh.name));
	d->pop_rreq = router_resolve(d->ob->router, &nh, pop_route_cb, d);
}

/* What a new connection does first: its profile's checks and POP3 login,
 * then the next hop's addresses. */
static void
conn_prepare(struct ob_conn *c)
{
	struct ob_dest *d = c->dest;
	const struct profile *p = d->profile;

	if (p != NULL && p->host[0] == '\0') {
		conn_defer_fail(c, 451, "4.3.5 a login is configured for the default profile but no "
		    "relay host (tegami config set relay.smarthost=HOST)");
		return;
	}
	if (p != NULL && p->login == PROFILE_LOGIN_SMTP_AUTH && p->secret_plain == NULL) {
		conn_defer_fail(c, 454, "4.7.0 profile %s has no usable password or token%s%s",
		    p->id, p->secret_error[0] != '\0' ? ": " : "", p->secret_error);
		return;
	}
	if (p != NULL && p->login == PROFILE_LOGIN_POP && !pop_fresh(c->ob, p)) {
		if (p->pop_secret_plain == NULL) {
			conn_defer_fail(c, 454, "4.7.0 profile %s has no usable POP3 password%s%s",
			    p->id, p->secret_error[0] != '\0' ? ": " : "", p->secret_error);
			return;
		}
		c->pop_wait = true;
		if (d->pop == NULL && d->pop_rreq == NULL)
			pop_start(d);
		return;
	}
	c->rreq = router_resolve(c->ob->router, &d->nh, route_cb, c);
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
	conn_prepare(c);
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
		if (c->defer != NULL)
			event_free(c->defer);
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
			router_cancel(&d->pop_rreq);
			pop3_client_free(&d->pop);
			profile_unref(&d->profile);
			free(d);
		}
	}
	if (ob->deliver_ev != NULL)
		event_free(ob->deliver_ev);
	SSL_CTX_free(ob->tls);
	for (int i = 0; i < TLS_VERSIONS; i++)
		SSL_CTX_free(ob->ptls[i]);
	while (ob->pop_seen != NULL) {
		struct ob_pop_seen *e = ob->pop_seen;
		ob->pop_seen = e->next;
		free(e);
	}
	free(ob);
	*obp = NULL;
}
