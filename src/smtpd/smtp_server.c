#include "smtpd/smtp_server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/relaylists.h"
#include "conf/settings.h"
#include "auth/screen.h"
#include "lib/conn.h"
#include "lib/ipcount.h"
#include "lib/listeners.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"
#include "queue/queue_runner.h"
#include "queue/spool.h"
#include "smtpd/smtp_session.h"

#define LISTENERS_MAX (NETADDR_LISTEN_MAX * SMTP_LISTENER_KINDS)

/* A spool write in flight. It outlives the server at shutdown (the workers
 * are drained after the sessions are gone), so it holds what it needs. */
struct smtp_job {
	struct queue_runner *queue;   /* destroyed after the workers */
	char hostname[256];           /* for Maildir names, copied on the loop */
	bool delivered;               /* straight into the mailboxes (else queued) */
	struct smtp_session *session; /* NULL once the session went away */
	struct envelope *msg;
	int result, err;
};

struct smtp_server {
	struct smtp_server_deps deps;
	struct listener_set *listeners;
	SSL_CTX *tls;
	size_t nsessions;
	uint64_t next_id;
	struct ipcount_table *per_ip; /* sessions per client IP (smtp.max_sessions_per_ip) */
	struct dir_targets scratch; /* RCPT expansion; one session at a time uses it */
	struct smtp_session **sessions; /* for shutdown */
	size_t sessions_cap;
	unsigned refusing;            /* implicit-TLS refusals in flight */
	struct relay_lists *lists;    /* R1, R2: near domains, relay networks, refused */
};

/* Implicit-TLS refusals (a handshake each) at once; past it, a plain close. */
#define SMTP_REFUSING_MAX 64

struct event_base *smtp_server_base(struct smtp_server *srv) { return srv->deps.base; }
const struct config *smtp_server_config(struct smtp_server *srv) { return srv->deps.cfg; }
struct directory *smtp_server_directory(struct smtp_server *srv) { return srv->deps.dir; }
struct dir_targets *smtp_server_scratch_targets(struct smtp_server *srv) { return &srv->scratch; }
struct queue_runner *smtp_server_queue(struct smtp_server *srv) { return srv->deps.queue; }
const char *smtp_server_data_dir(struct smtp_server *srv) { return srv->deps.data_dir; }
struct ssl_ctx_st *smtp_server_tls(struct smtp_server *srv) { return srv->tls; }
struct auth_service *smtp_server_auth(struct smtp_server *srv) { return srv->deps.auth; }
struct screen *smtp_server_screen(struct smtp_server *srv) { return srv->deps.screen; }
struct relay_lists *smtp_server_relay_lists(struct smtp_server *srv) { return srv->lists; }
struct dnsbl *smtp_server_dnsbl(struct smtp_server *srv) { return srv->deps.dnsbl; }

void
smtp_server_set_relay_lists(struct smtp_server *srv, struct relay_lists *lists)
{
	relay_lists_destroy(&srv->lists);
	srv->lists = lists;
}

const char *
smtp_listener_name(enum smtp_listener_kind kind)
{
	static const char *const names[] = { "smtp", "submission", "smtps" };

	return kind < SMTP_LISTENER_KINDS ? names[kind] : "?";
}

void
smtp_server_set_tls(struct smtp_server *srv, struct ssl_ctx_st *ctx)
{
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
}
size_t smtp_server_sessions(const struct smtp_server *srv) { return srv->nsessions; }

/* Sessions live in an array for shutdown; each knows its slot, so removal
 * is a swap with the last one. */
static void
sessions_add(struct smtp_server *srv, struct smtp_session *s)
{
	if (srv->nsessions == srv->sessions_cap) {
		srv->sessions_cap = srv->sessions_cap == 0 ? 64 : srv->sessions_cap * 2;
		srv->sessions = xreallocarray(srv->sessions, srv->sessions_cap, sizeof(*srv->sessions));
	}
	s->slot = srv->nsessions;
	srv->sessions[srv->nsessions++] = s;
}

void
smtp_server_session_closed(struct smtp_server *srv, struct smtp_session *s)
{
	if (s->job != NULL) {
		s->job->session = NULL;
		s->job = NULL;
	}
	ipcount_add(srv->per_ip, s->ip, -1);
	if (s->slot < srv->nsessions && srv->sessions[s->slot] == s) {
		struct smtp_session *last = srv->sessions[--srv->nsessions];
		srv->sessions[s->slot] = last;
		last->slot = s->slot;
	}
}

/* Refuses a connection with one line, without a session. On the
 * implicit-TLS port the line goes out inside TLS after the handshake (a TLS
 * client reads plaintext as garbage), for a bounded number at a time. */
static void
refuse_with(struct smtp_server *srv, int kind, int fd, const char *line)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);

	if (kind == SMTP_LISTENER_SMTPS) {
		conn_refuse_tls(srv->deps.base, fd, srv->tls, line, &srv->refusing,
		    SMTP_REFUSING_MAX);
		return;
	}
	if (n > 0) {
		ssize_t w = send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)w;
	}
	close(fd);
}

static void
refuse(struct smtp_server *srv, int kind, int fd, const char *why)
{
	char line[400];

	snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s", srv->deps.cfg->server_hostname, why);
	refuse_with(srv, kind, fd, line);
}

static void
on_accept(void *arg, int kind_int, int fd, struct sockaddr *sa)
{
	struct smtp_server *srv = arg;
	enum smtp_listener_kind kind = (enum smtp_listener_kind)kind_int;
	const struct config *cfg = srv->deps.cfg;
	char ip[INET6_ADDRSTRLEN];

	netaddr_ip(sa, ip, sizeof(ip));
	bool pop_override;
	if (smtp_relay_connect_refused(srv, ip, &pop_override)) {
		char line[128];
		snprintf(line, sizeof(line), "554 5.7.1 CONNECTION REFUSED %s "
		    "(refused by the connection restrictions)", ip);
		refuse_with(srv, kind, fd, line);
		return;
	}
	if (srv->nsessions >= cfg->smtp_max_sessions) {
		log_warn("event=refused client=%s reason=max_sessions", ip);
		refuse(srv, kind, fd, "too many connections");
		return;
	}
	if (ipcount_get(srv->per_ip, ip) >= cfg->smtp_max_sessions_per_ip &&
	    !ipcount_exempt(srv->per_ip, ip, cfg->server_per_ip_exceptions)) {
		log_warn("event=refused client=%s reason=max_sessions_per_ip", ip);
		refuse(srv, kind, fd, "too many connections from your address");
		return;
	}
	if (srv->deps.screen != NULL && screen_banned(srv->deps.screen, ip)) {
		log_warn("event=refused client=%s reason=screened", ip);
		refuse(srv, kind, fd, "your address is temporarily refused "
		    "(dynamic screen)");
		return;
	}
	const struct listener_conf *lc = &cfg->listeners[kind];
	if (!lc->auth_password && !lc->auth_anonymous) {
		/* A3, seed 001: a port with no authentication option. */
		log_warn("event=refused client=%s reason=site_not_enabled listener=%s", ip,
		    smtp_listener_name(kind));
		refuse_with(srv, kind, fd, "554 5.7.0 This site is not enabled on the server.");
		return;
	}
	if (kind == SMTP_LISTENER_SMTPS && srv->tls == NULL) {
		/* No plaintext on the implicit-TLS port, ever. */
		log_warn("event=refused client=%s reason=no_tls_context", ip);
		close(fd);
		return;
	}
	ipcount_add(srv->per_ip, ip, 1);
	struct smtp_session *s = smtp_session_create(srv, fd, sa, ++srv->next_id, kind,
	    srv->tls);
	/* S4: a domain bound to listen addresses is local only on those. */
	struct sockaddr_storage local;
	socklen_t locallen;
	if (conn_local_addr(s->conn, &local, &locallen) == 0)
		netaddr_ip((struct sockaddr *)&local, s->local_ip, sizeof(s->local_ip));
	sessions_add(srv, s);
	smtp_relay_start(s, pop_override); /* may free s */
}

struct smtp_server *
smtp_server_create(const struct smtp_server_deps *deps)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));

	srv->deps = *deps;
	srv->listeners = listener_set_create(deps->base, on_accept, srv);
	srv->per_ip = ipcount_create();
	srv->lists = relay_lists_empty();
	return srv;
}

int
smtp_server_listen(struct smtp_server *srv, const char **error_r)
{
	const struct config *cfg = srv->deps.cfg;
	const char *specs[SMTP_LISTENER_KINDS] = {
		cfg->smtp_listen, cfg->submission_listen, cfg->smtps_listen,
	};
	struct listener_want want[LISTENERS_MAX];
	size_t n = 0;

	for (int k = 0; k < SMTP_LISTENER_KINDS; k++) {
		if (cfg->listeners[k].enabled &&
		    listener_want_add(want, LISTENERS_MAX, &n, k, specs[k], error_r) < 0)
			return -1;
	}
	return listener_set_apply(srv->listeners, want, n, error_r);
}

void
smtp_server_describe(const struct smtp_server *srv, enum smtp_listener_kind kind, char *buf,
    size_t size)
{
	listener_set_describe(srv->listeners, kind, buf, size);
}

static void
spool_work(void *arg)
{
	struct smtp_job *job = arg;

	job->result = queue_runner_commit(job->queue, job->hostname, job->msg, &job->delivered);
	job->err = job->result < 0 ? errno : 0;
}

static void
spool_done(void *arg)
{
	struct smtp_job *job = arg;

	if (job->session != NULL)
		smtp_session_spooled(job->session, job->msg, job->result, job->err);
	else if (job->result == 0)
		log_warn("event=queued_unacknowledged qid=%s reason=client_gone", job->msg->qid);
	if (job->result == 0)
		queue_runner_committed(job->queue, job->msg, job->delivered);
	else
		envelope_free(&job->msg);
	free(job);
}

void
smtp_server_spool(struct smtp_server *srv, struct smtp_session *s, struct envelope *msg)
{
	struct smtp_job *job = xcalloc(1, sizeof(*job));

	job->queue = srv->deps.queue;
	str_copy(job->hostname, queue_runner_hostname(srv->deps.queue), sizeof(job->hostname));
	job->session = s;
	job->msg = msg;
	s->job = job;
	s->busy = true;
	workers_submit(srv->deps.workers, spool_work, spool_done, job);
}

void
smtp_server_destroy(struct smtp_server **srvp)
{
	struct smtp_server *srv = *srvp;

	if (srv == NULL)
		return;
	listener_set_destroy(&srv->listeners);
	SSL_CTX_free(srv->tls);
	while (srv->nsessions > 0)
		smtp_session_destroy(srv->sessions[srv->nsessions - 1]);
	ipcount_destroy(&srv->per_ip);
	relay_lists_destroy(&srv->lists);
	free(srv->sessions);
	free(srv);
	*srvp = NULL;
}
