/* etrn_client.c: one ETRN session (etrn_client.h), on lib/conn. */
#include "deliver/etrn_client.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/conn.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/smtp_reply.h"

enum estate { ES_CONNECTING, ES_GREETING, ES_EHLO, ES_ETRN, ES_QUIT };

struct etrn_client {
	struct event_base *base;
	struct conn *conn;
	struct smtp_reply_parser parser;
	enum estate state;
	char peer[ROUTE_NAME_MAX + 64];
	char helo[256];
	char *domains;          /* our copy, comma-separated */
	char *next;             /* the next domain to ask for */
	int accepted;
	etrn_done_fn *done;
	void *arg;
	struct event *post;
	char error[1024];
};

static void
finish(struct etrn_client *e, int accepted, const char *error)
{
	etrn_done_fn *done = e->done;
	void *arg = e->arg;

	conn_close(&e->conn);
	if (e->post != NULL)
		event_free(e->post);
	free(e->domains);
	free(e);
	done(arg, accepted, error);
}

/* Sends ETRN for the next domain, or QUIT when none is left. */
static void
ask_next(struct etrn_client *e)
{
	while (e->next != NULL && *e->next == '\0')
		e->next = NULL;
	if (e->next == NULL) {
		conn_printf(e->conn, 512, "QUIT");
		e->state = ES_QUIT;
		return;
	}
	char *comma = strchr(e->next, ',');
	if (comma != NULL)
		*comma = '\0';
	conn_printf(e->conn, 512, "ETRN %s", e->next);
	e->state = ES_ETRN;
	log_info("event=etrn_sent peer=%s node=%s", e->peer, e->next);
	e->next = comma != NULL ? comma + 1 : NULL;
}

/* False once the session is over (e is freed). */
static bool
on_reply(struct etrn_client *e, const struct smtp_reply *r)
{
	char text[512];

	smtp_reply_format(r, text, sizeof(text));
	switch (e->state) {
	case ES_GREETING:
	case ES_EHLO:
		if (r->code / 100 != 2) {
			snprintf(e->error, sizeof(e->error), "%s said: %s", e->peer, text);
			finish(e, -1, e->error);
			return false;
		}
		if (e->state == ES_GREETING) {
			conn_printf(e->conn, 512, "EHLO %s", e->helo);
			e->state = ES_EHLO;
		} else {
			ask_next(e);
		}
		break;
	case ES_ETRN:
		log_info("event=etrn_reply peer=%s reply=\"%s\"", e->peer, text);
		if (r->code / 100 == 2)
			e->accepted++;
		ask_next(e);
		break;
	case ES_QUIT:
		finish(e, e->accepted, NULL);
		return false;
	case ES_CONNECTING:
		break;
	}
	conn_flush(e->conn);
	return true;
}

static void
conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct etrn_client *e = arg;
	char line[SMTP_REPLY_LINE_MAX + 3];
	struct conn_line li;
	struct smtp_reply r;

	switch (ev) {
	case CONN_EV_CONNECTED:
		e->state = ES_GREETING;
		return;
	case CONN_EV_INPUT:
		for (;;) {
			enum conn_line_result lr = conn_read_line(c, line, SMTP_REPLY_LINE_MAX + 2, &li);
			if (lr == CONN_LINE_NONE)
				return;
			enum smtp_reply_status st = lr == CONN_LINE_OK ?
			    smtp_reply_parser_line(&e->parser, line, li.len, &r) : SMTP_REPLY_BAD;
			if (st == SMTP_REPLY_BAD) {
				snprintf(e->error, sizeof(e->error), "malformed reply from %s", e->peer);
				finish(e, -1, e->error);
				return;
			}
			if (st == SMTP_REPLY_DONE && !on_reply(e, &r))
				return;
		}
	case CONN_EV_WRITABLE:
	case CONN_EV_TLS_READY:
		return;
	default:
		if (e->state == ES_QUIT) {
			finish(e, e->accepted, NULL);
			return;
		}
		snprintf(e->error, sizeof(e->error), "%s: %s", e->peer, conn_error(c));
		finish(e, -1, e->error);
		return;
	}
}

static void
post_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etrn_client *e = arg;

	finish(e, -1, e->error);
}

struct etrn_client *
etrn_client_start(struct event_base *base, const struct route_target *target, const char *helo,
    const char *domains, unsigned timeout_ms, etrn_done_fn *done, void *arg)
{
	struct etrn_client *e = xcalloc(1, sizeof(*e));
	const char *error = NULL;

	e->base = base;
	e->done = done;
	e->arg = arg;
	str_copy(e->helo, helo, sizeof(e->helo));
	e->domains = xstrdup(domains);
	e->next = e->domains;
	smtp_reply_parser_init(&e->parser);
	snprintf(e->peer, sizeof(e->peer), "%s[%s]:%u", target->host, target->ip, target->port);
	e->conn = conn_connect_ip(base, target->ip, target->port, NULL, timeout_ms, conn_cb, e,
	    &error);
	if (e->conn == NULL) {
		struct timeval now = { 0, 0 };
		snprintf(e->error, sizeof(e->error), "cannot connect to %s: %s", e->peer, error);
		e->post = evtimer_new(base, post_cb, e);
		evtimer_add(e->post, &now);
		return e;
	}
	conn_set_timeout(e->conn, timeout_ms);
	return e;
}

void
etrn_client_cancel(struct etrn_client **cp)
{
	struct etrn_client *e = *cp;

	if (e == NULL)
		return;
	conn_free(&e->conn);
	if (e->post != NULL)
		event_free(e->post);
	free(e->domains);
	free(e);
	*cp = NULL;
}
