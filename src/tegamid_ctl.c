/* tegamid_ctl.c: the control socket (tegamid_ctl.h), on lib/conn. */
#include "tegamid_ctl.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/conn.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/unixsock.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"
#include "mail/envelope.h"
#include "queue/queue_runner.h"

#define CTL_TIMEOUT_MS 10000

struct ctl_server {
	struct event_base *base;
	struct queue_runner *queue;
	char dir[4096];
	int fd;
	struct event *ev;
};

struct ctl_session {
	struct ctl_server *srv;
	struct conn *conn;
};

static void
reply(struct ctl_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct ctl_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_vprintf(s->conn, CTL_LINE_MAX, fmt, ap);
	va_end(ap);
}

static void
progress(void *arg, size_t done, size_t total)
{
	struct ctl_session *s = arg;

	reply(s, "progress %zu/%zu", done, total);
	conn_flush(s->conn);
}

static int
qid_arg(struct ctl_session *s, const char *arg)
{
	if (arg == NULL || !envelope_qid_valid(arg)) {
		reply(s, "error not a queue id: %s", arg != NULL ? arg : "(none)");
		return -1;
	}
	return 0;
}

static int
domain_arg(struct ctl_session *s, const char *arg)
{
	if (arg == NULL || !addr_domain_valid(arg)) {
		reply(s, "error not a domain: %s", arg != NULL ? arg : "(none)");
		return -1;
	}
	return 0;
}

/* One request: words separated by single spaces. */
static void
ctl_request(struct ctl_session *s, char *line)
{
	struct queue_runner *q = s->srv->queue;
	char *w[4] = { NULL };
	int n = 0;

	for (char *p = strtok_r(line, " ", &line); p != NULL && n < 4; p = strtok_r(NULL, " ", &line))
		w[n++] = p;
	log_info("event=ctl request=\"%s %s %s\"", w[0] != NULL ? w[0] : "",
	    w[1] != NULL ? w[1] : "", w[2] != NULL ? w[2] : "");
	if (n == 1 && strcmp(w[0], "status") == 0) {
		reply(s, "ok queue=%zu outbound=%zu", queue_runner_active(q),
		    queue_runner_connections(q));
		return;
	}
	if (n < 2 || strcmp(w[0], "queue") != 0) {
		reply(s, "error unknown request");
		return;
	}
	const char *verb = w[1], *arg = w[2];
	if (strcmp(verb, "flush") == 0) {
		if (arg != NULL && domain_arg(s, arg) < 0)
			return;
		size_t started = queue_runner_flush(q, arg, progress, s);
		reply(s, "ok %zu message%s started", started, started == 1 ? "" : "s");
	} else if (strcmp(verb, "etrn") == 0) {
		queue_runner_run_schedule(q);
		reply(s, "ok queue run started, ETRN sent where etrn.remote is set");
	} else if (strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0) {
		bool hold = strcmp(verb, "hold") == 0;
		if (qid_arg(s, arg) < 0)
			return;
		if (queue_runner_hold(q, arg, hold) < 0)
			reply(s, "error no message %s in the queue", arg);
		else
			reply(s, "ok %s %s", hold ? "held" : "released", arg);
	} else if (strcmp(verb, "hold-domain") == 0 || strcmp(verb, "release-domain") == 0) {
		bool hold = strcmp(verb, "hold-domain") == 0;
		if (domain_arg(s, arg) < 0)
			return;
		size_t held = queue_runner_domain_held(q, arg, hold);
		reply(s, "ok %zu message%s %s", held, held == 1 ? "" : "s", hold ? "held" : "released");
	} else if (strcmp(verb, "delete") == 0 || strcmp(verb, "bounce") == 0) {
		bool del = strcmp(verb, "delete") == 0;
		if (qid_arg(s, arg) < 0)
			return;
		if ((del ? queue_runner_delete(q, arg) : queue_runner_bounce(q, arg)) < 0)
			reply(s, "error no message %s in the queue", arg);
		else
			reply(s, "ok %s %s", del ? "deleted" : "bounced", arg);
	} else {
		reply(s, "error unknown request");
	}
}

static void
session_end(struct ctl_session *s, bool flush)
{
	if (flush)
		conn_close(&s->conn);
	else
		conn_free(&s->conn);
	free(s);
}

static void
session_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct ctl_session *s = arg;
	char line[CTL_LINE_MAX + 1];
	struct conn_line li;

	if (ev != CONN_EV_INPUT) {
		if (ev == CONN_EV_WRITABLE || ev == CONN_EV_TLS_READY || ev == CONN_EV_CONNECTED)
			return;
		session_end(s, false);
		return;
	}
	switch (conn_read_line(c, line, CTL_LINE_MAX, &li)) {
	case CONN_LINE_NONE:
		return;
	case CONN_LINE_TOO_LONG:
		reply(s, "error request too long");
		break;
	case CONN_LINE_OK:
		if (li.nul || li.bare_cr)
			reply(s, "error bad request");
		else
			ctl_request(s, line);
		break;
	}
	session_end(s, true);
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ctl_server *srv = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (unixsock_peer_trusted(fd) != 1) {
		log_warn("event=ctl_refused reason=peer_not_trusted");
		close(fd);
		return;
	}
	struct ctl_session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->conn = conn_accept(srv->base, fd, NULL, session_cb, s);
	conn_set_timeout(s->conn, CTL_TIMEOUT_MS);
}

struct ctl_server *
ctl_server_create(struct event_base *base, struct queue_runner *queue, const char *dir)
{
	int fd = unixsock_listen(dir, CTL_SOCKET_NAME);

	if (fd < 0)
		return NULL;
	struct ctl_server *srv = xcalloc(1, sizeof(*srv));
	srv->base = base;
	srv->queue = queue;
	srv->fd = fd;
	str_copy(srv->dir, dir, sizeof(srv->dir));
	srv->ev = event_new(base, fd, EV_READ | EV_PERSIST, accept_cb, srv);
	event_add(srv->ev, NULL);
	return srv;
}

void
ctl_server_destroy(struct ctl_server **cp)
{
	struct ctl_server *srv = *cp;

	if (srv == NULL)
		return;
	event_free(srv->ev);
	close(srv->fd);
	unixsock_unlink(srv->dir, CTL_SOCKET_NAME);
	free(srv);
	*cp = NULL;
}
