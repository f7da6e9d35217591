#include "pop3d/pop3_server.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/screen.h"
#include "conf/settings.h"
#include "deliver/maildir.h"
#include "deliver/maildrop.h"
#include "lib/conn.h"
#include "lib/ipcount.h"
#include "lib/listeners.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"
#include "pop3d/pop3_session.h"

#define LISTENERS_MAX (NETADDR_LISTEN_MAX * POP3_LISTENER_KINDS)

struct pop3_server {
	struct pop3_server_deps deps;
	struct listener_set *listeners;
	SSL_CTX *tls;
	struct pop3_session **sessions;
	size_t nsessions, cap;
	uint64_t next_id;
	struct ipcount_table *per_ip; /* sessions per client IP (pop3.max_sessions_per_ip) */
	unsigned refusing;            /* POP3S refusals in flight */
};

/* POP3S refusals (a handshake each) at once; past it, a plain close. */
#define POP3_REFUSING_MAX 64

/* Opening a maildrop scans and renames files, and the UPDATE state unlinks
 * them: a worker's job either way. The session points at it while it runs
 * and clears job->session if it goes first; the job owns the maildrop. */
struct pop3_maildrop_job {
	struct pop3_session *session;
	char path[4096];
	struct maildrop *md;
	int err;
	size_t failed;  /* commit: deletions that failed */
};

struct event_base *pop3_server_base(struct pop3_server *srv) { return srv->deps.base; }
const struct config *pop3_server_config(struct pop3_server *srv) { return srv->deps.cfg; }
struct directory *pop3_server_directory(struct pop3_server *srv) { return srv->deps.dir; }
struct auth_service *pop3_server_auth(struct pop3_server *srv) { return srv->deps.auth; }
struct screen *pop3_server_screen(struct pop3_server *srv) { return srv->deps.screen; }
struct ssl_ctx_st *pop3_server_tls(struct pop3_server *srv) { return srv->tls; }

void
pop3_server_set_tls(struct pop3_server *srv, struct ssl_ctx_st *ctx)
{
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
}

/* Refuses a connection with one line, without a session; on POP3S inside
 * TLS after the handshake (a TLS client reads plaintext as garbage), a
 * bounded number at a time. */
static void
refuse(struct pop3_server *srv, int kind, int fd, const char *line)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);

	if (kind == POP3_LISTENER_TLS) {
		conn_refuse_tls(srv->deps.base, fd, srv->tls, line, &srv->refusing,
		    POP3_REFUSING_MAX);
		return;
	}
	ssize_t w = send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)w;
	close(fd);
}

static void
on_accept(void *arg, int kind, int fd, struct sockaddr *sa)
{
	struct pop3_server *srv = arg;
	const struct config *cfg = srv->deps.cfg;
	char ip[INET6_ADDRSTRLEN];

	netaddr_ip(sa, ip, sizeof(ip));
	if (screen_banned(srv->deps.screen, ip)) {
		log_warn("event=refused service=pop3 client=%s reason=screened", ip);
		refuse(srv, kind, fd, "-ERR [SYS/TEMP] your address is temporarily refused");
		return;
	}
	if (srv->nsessions >= cfg->pop3_max_sessions) {
		log_warn("event=refused service=pop3 client=%s reason=max_sessions", ip);
		refuse(srv, kind, fd, "-ERR [SYS/TEMP] too many connections");
		return;
	}
	if (ipcount_get(srv->per_ip, ip) >= cfg->pop3_max_sessions_per_ip &&
	    !ipcount_exempt(srv->per_ip, ip, cfg->server_per_ip_exceptions)) {
		log_warn("event=refused service=pop3 client=%s reason=max_sessions_per_ip", ip);
		refuse(srv, kind, fd, "-ERR [SYS/TEMP] too many connections from your address");
		return;
	}
	if (kind == POP3_LISTENER_TLS && srv->tls == NULL) {
		close(fd);
		return;
	}
	struct pop3_session *s = pop3_session_create(srv, fd, sa, ++srv->next_id,
	    (enum pop3_listener_kind)kind, srv->tls);
	if (srv->nsessions == srv->cap) {
		srv->cap = srv->cap == 0 ? 64 : srv->cap * 2;
		srv->sessions = xreallocarray(srv->sessions, srv->cap, sizeof(*srv->sessions));
	}
	s->slot = srv->nsessions;
	srv->sessions[srv->nsessions++] = s;
	ipcount_add(srv->per_ip, s->ip, 1);
}

void
pop3_server_session_closed(struct pop3_server *srv, struct pop3_session *s)
{
	if (s->slot < srv->nsessions && srv->sessions[s->slot] == s) {
		struct pop3_session *last = srv->sessions[--srv->nsessions];
		srv->sessions[s->slot] = last;
		last->slot = s->slot;
		ipcount_add(srv->per_ip, s->ip, -1);
	}
}

struct pop3_server *
pop3_server_create(const struct pop3_server_deps *deps)
{
	struct pop3_server *srv = xcalloc(1, sizeof(*srv));

	srv->deps = *deps;
	srv->listeners = listener_set_create(deps->base, on_accept, srv);
	srv->per_ip = ipcount_create();
	return srv;
}

int
pop3_server_listen(struct pop3_server *srv, const char **error_r)
{
	const struct config *cfg = srv->deps.cfg;
	struct listener_want want[LISTENERS_MAX];
	size_t n = 0;

	if (listener_want_add(want, LISTENERS_MAX, &n, POP3_LISTENER_PLAIN, cfg->pop3_listen,
	    error_r) < 0)
		return -1;
	if (strcmp(cfg->pop3_alwssl, "none") != 0 &&
	    listener_want_add(want, LISTENERS_MAX, &n, POP3_LISTENER_TLS, cfg->pop3s_listen,
	    error_r) < 0)
		return -1;
	return listener_set_apply(srv->listeners, want, n, error_r);
}

void
pop3_server_describe(const struct pop3_server *srv, enum pop3_listener_kind kind, char *buf,
    size_t size)
{
	listener_set_describe(srv->listeners, kind, buf, size);
}

static void
open_work(void *arg)
{
	struct pop3_maildrop_job *job = arg;

	if (job->path[0] == '\0')
		job->err = ENAMETOOLONG;
	else if (maildrop_open(job->path, &job->md) < 0)
		job->err = errno;
}

static void
open_done(void *arg)
{
	struct pop3_maildrop_job *job = arg;

	if (job->session != NULL) {
		job->session->job = NULL;
		pop3_session_opened(job->session, job->md, job->err);
	} else {
		maildrop_close(&job->md);
	}
	free(job);
}

void
pop3_server_open_maildrop(struct pop3_server *srv, struct pop3_session *s)
{
	struct pop3_maildrop_job *job = xcalloc(1, sizeof(*job));

	job->session = s;
	if (maildir_path(srv->deps.mail_root, s->login, job->path, sizeof(job->path)) < 0)
		job->path[0] = '\0';
	s->job = job;
	workers_submit(srv->deps.workers, open_work, open_done, job);
}

/* RFC 1939 §6: the deletions are applied, then the lock goes, then the
 * reply; after QUIT they are applied even if the client is gone. */
static void
commit_work(void *arg)
{
	struct pop3_maildrop_job *job = arg;

	job->failed = maildrop_commit(job->md);
	maildrop_close(&job->md);
}

static void
commit_done(void *arg)
{
	struct pop3_maildrop_job *job = arg;

	if (job->session != NULL) {
		job->session->job = NULL;
		pop3_session_committed(job->session, job->failed);
	}
	free(job);
}

void
pop3_server_commit_maildrop(struct pop3_server *srv, struct pop3_session *s)
{
	struct pop3_maildrop_job *job = xcalloc(1, sizeof(*job));

	job->session = s;
	job->md = s->md;
	s->md = NULL;
	s->job = job;
	workers_submit(srv->deps.workers, commit_work, commit_done, job);
}

static void
settle_work(void *arg)
{
	maildrop_settle_run(arg);
}

static void
settle_done(void *arg)
{
	struct maildrop_settle *st = arg;

	maildrop_settle_release(&st);
}

void
pop3_server_settle_maildrop(struct pop3_server *srv, struct maildrop *md)
{
	struct maildrop_settle *st = maildrop_settle_start(md);

	if (st != NULL)
		workers_submit(srv->deps.workers, settle_work, settle_done, st);
}

void
pop3_server_session_gone(struct pop3_session *s)
{
	if (s->job != NULL) {
		s->job->session = NULL;
		s->job = NULL;
	}
}

size_t
pop3_server_sessions(const struct pop3_server *srv)
{
	return srv->nsessions;
}

void
pop3_server_destroy(struct pop3_server **srvp)
{
	struct pop3_server *srv = *srvp;

	if (srv == NULL)
		return;
	listener_set_destroy(&srv->listeners);
	while (srv->nsessions > 0)
		pop3_session_destroy(srv->sessions[srv->nsessions - 1]);
	SSL_CTX_free(srv->tls);
	ipcount_destroy(&srv->per_ip);
	free(srv->sessions);
	free(srv);
	*srvp = NULL;
}
