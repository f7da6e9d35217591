#include "smtpd/smtp_session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "lib/conn.h"
#include "lib/dnsbl.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/xmalloc.h"
#include "queue/spool.h"

static const char *const state_names[] = {
	[SMTP_STATE_GREETING_SENT] = "greeting",
	[SMTP_STATE_READY] = "ready",
	[SMTP_STATE_MAIL] = "mail",
	[SMTP_STATE_DATA] = "data",
	[SMTP_STATE_AUTH] = "auth",
	[SMTP_STATE_QUIT] = "quit",
};

static void session_conn_cb(struct conn *c, enum conn_event ev, void *arg);
static void session_flush(struct smtp_session *s);
static void session_vreply(struct smtp_session *s, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void session_finish(struct smtp_session *s);

/* The idle timeout (RFC 5321 §4.5.3.2) depends on the state; the total time
 * of one command line or one DATA is bounded too, so that a client sending a
 * byte every few seconds cannot keep a session slot for ever. */
static void
session_set_timeout(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);

	conn_set_timeout(s->conn, (unsigned)(1000 * (s->state == SMTP_STATE_DATA ?
	    cfg->smtp_timeout_data : cfg->smtp_timeout_command)));
	conn_set_line_timeout(s->conn, (unsigned)(1000 * cfg->smtp_command_max_time));
	if (s->state == SMTP_STATE_DATA)
		conn_set_deadline(s->conn, (unsigned)(1000 * cfg->smtp_data_max_time));
	else
		conn_clear_deadline(s->conn);
}

/* The one place the protocol state changes (logged at debug level). */
void
smtp_session_enter(struct smtp_session *s, enum smtp_state state)
{
	if (s->state == state)
		return;
	log_debug("event=state session=%llx from=%s to=%s", (unsigned long long)s->id,
	    state_names[s->state], state_names[state]);
	bool timeout_changes = s->state == SMTP_STATE_DATA || state == SMTP_STATE_DATA;
	s->state = state;
	if (timeout_changes)
		session_set_timeout(s);
}

struct smtp_session *
smtp_session_create(struct smtp_server *srv, int fd, const struct sockaddr *sa, uint64_t id,
    enum smtp_listener_kind kind, struct ssl_ctx_st *ctx)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	s->srv = srv;
	s->id = id;
	s->kind = kind;
	netaddr_ip(sa, s->ip, sizeof(s->ip));
	s->tls = kind == SMTP_LISTENER_SMTPS;
	s->conn = conn_accept(smtp_server_base(srv), fd, s->tls ? ctx : NULL, session_conn_cb, s);
	conn_set_input_max(s->conn, SMTP_INPUT_HIGHWAT);
	conn_set_output_max(s->conn, SMTP_OUTPUT_MAX);
	s->state = SMTP_STATE_GREETING_SENT;
	session_set_timeout(s);
	log_info("event=connect session=%llx client=%s listener=%s", (unsigned long long)id, s->ip,
	    smtp_listener_name(kind));
	return s;
}

void
smtp_session_greet(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);

	s->greeted = true;
	smtp_session_reply(s, "220 %s ESMTP tegami", cfg->server_hostname);
	/* Anything the client sent before the greeting runs now, in order. */
	smtp_session_input(s);
}

void
smtp_session_refuse(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
	smtp_session_enter(s, SMTP_STATE_QUIT);
	s->closing = true;
	conn_stop_reading(s->conn);
	session_flush(s);
	session_finish(s);
}

void
smtp_session_starttls(struct smtp_session *s, struct ssl_ctx_st *ctx)
{
	smtp_session_reply(s, "220 2.0.0 Ready to start TLS");
	/* The reply leaves in the clear; anything pipelined after STARTTLS
	 * arrived in plaintext and is thrown away, never run (conn.h). */
	conn_starttls_server(s->conn, ctx);
	s->tls = true;
	/* RFC 3207 §4.2: forget everything learnt before the handshake. */
	smtp_session_reset_tx(s);
	smtp_auth_cleanup(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	s->state = SMTP_STATE_GREETING_SENT;
	session_set_timeout(s);
	log_info("event=starttls session=%llx client=%s", (unsigned long long)s->id, s->ip);
}

void
smtp_session_tls_describe(struct smtp_session *s, char *buf, size_t size)
{
	conn_tls_describe(s->conn, buf, size);
}

void
smtp_session_reset_tx(struct smtp_session *s)
{
	envelope_free(&s->msg);
	s->nrcpt = 0;
	memset(&s->data, 0, sizeof(s->data));
	if (s->state == SMTP_STATE_MAIL || s->state == SMTP_STATE_DATA)
		smtp_session_enter(s, SMTP_STATE_READY);
}

/* Frees the session; its last replies still reach the wire (conn_close). */
static void
session_finish(struct smtp_session *s)
{
	smtp_session_destroy(s);
}

void
smtp_session_destroy(struct smtp_session *s)
{
	log_info("event=disconnect session=%llx client=%s errors=%u",
	    (unsigned long long)s->id, s->ip, s->errors);
	dnsbl_check_cancel(&s->dnsbl);
	smtp_server_session_closed(s->srv, s);
	smtp_auth_cleanup(s);
	envelope_free(&s->msg);
	conn_close(&s->conn);
	free(s->helo);
	free(s);
}

/* Replies are gathered by the conn and leave in one write per burst of
 * commands (session_flush): one TLS record, one segment, for a pipelined
 * group (RFC 2920). */
static void
session_vreply(struct smtp_session *s, const char *fmt, va_list ap)
{
	conn_vprintf(s->conn, SMTP_REPLY_MAX, fmt, ap);
}

static void
session_flush(struct smtp_session *s)
{
	conn_flush(s->conn);
}

void
smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
}

void
smtp_session_close(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
	smtp_session_enter(s, SMTP_STATE_QUIT);
	s->closing = true;
	conn_stop_reading(s->conn);
}

void
smtp_session_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;
	const struct config *cfg = smtp_server_config(s->srv);

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
	if (++s->errors >= cfg->smtp_max_errors) {
		log_info("event=too_many_errors session=%llx client=%s",
		    (unsigned long long)s->id, s->ip);
		smtp_session_close(s, "421 4.7.0 %s Error: too many errors",
		    cfg->server_hostname);
	}
}

/* An AUTH exchange line that cannot be a response ends the exchange
 * (RFC 4954 §4: "500 5.5.6" for a line over the limit). */
static void
session_auth_abort(struct smtp_session *s, const char *reply)
{
	smtp_auth_cleanup(s);
	smtp_session_enter(s, SMTP_STATE_READY);
	smtp_session_error(s, "%s", reply);
}

/* Reads one command line into buf (NUL-terminated, CRLF stripped).
 * 1: a line; 0: need more input; -1: the line was bad and answered. */
static int
session_read_line(struct smtp_session *s, char *buf, size_t *len_r)
{
	const struct config *cfg = smtp_server_config(s->srv);
	struct conn_line li;
	bool auth = s->state == SMTP_STATE_AUTH;

	switch (conn_read_line(s->conn, buf, SMTP_AUTH_LINE_MAX, &li)) {
	case CONN_LINE_NONE:
		return 0;
	case CONN_LINE_TOO_LONG:
		if (auth)
			session_auth_abort(s, "500 5.5.6 Authentication exchange line is too long");
		else
			smtp_session_error(s, "500 5.5.2 Error: line too long");
		return -1;
	case CONN_LINE_OK:
		break;
	}
	if (!cfg->smtp_allow_bare_lf && (!li.crlf || li.bare_cr)) {
		const char *what = !li.crlf ? "bare <LF>" : "bare <CR>";
		if (auth) {
			char reply[128];
			snprintf(reply, sizeof(reply), "501 5.5.2 Error: %s in the authentication "
			    "exchange; lines must end in <CR><LF>", what);
			session_auth_abort(s, reply);
		} else if (!li.crlf)
			smtp_session_error(s, "550 5.5.2 Error: bare <LF> received; lines must end in <CR><LF>");
		else
			smtp_session_error(s, "550 5.5.2 Error: bare <CR> received");
		return -1;
	}
	if (li.nul) {
		if (auth)
			session_auth_abort(s, "501 5.5.2 Error: NUL character in the authentication exchange");
		else
			smtp_session_error(s, "500 5.5.2 Error: NUL character in command");
		return -1;
	}
	*len_r = li.len;
	return 1;
}

void
smtp_session_input(struct smtp_session *s)
{
	char line[SMTP_AUTH_LINE_MAX + 1];
	size_t len;

	if (!s->greeted) {
		/* Waiting for the DNSBLs: input stays buffered until the 220; a
		 * client that left before it needs no answer. */
		if (s->eof)
			session_finish(s);
		return;
	}
	while (!s->busy && !s->closing) {
		/* The client does not read its replies: wait for
		 * CONN_EV_WRITABLE before handling more. */
		if (conn_output_full(s->conn))
			break;
		if (s->state == SMTP_STATE_DATA) {
			if (!smtp_data_input(s))
				break;
			continue;
		}
		int r = session_read_line(s, line, &len);
		if (r == 0)
			break;
		if (r < 0)
			continue;
		if (s->state == SMTP_STATE_AUTH)
			smtp_auth_response(s, line);
		else
			smtp_command_dispatch(s, line, len);
	}
	session_flush(s);
	if (s->eof && !s->busy)
		s->closing = true; /* everything sent before the close is answered */
	if (s->closing && !s->busy)
		session_finish(s); /* frees s; the replies still go out */
}

void
smtp_session_spooled(struct smtp_session *s, const struct envelope *m, int result, int err)
{
	s->busy = false;
	s->job = NULL;
	if (result == 0) {
		log_info("event=queued session=%llx qid=%s from=<%s> nrcpt=%zu size=%llu",
		    (unsigned long long)s->id, m->qid, m->sender, m->nrcpt,
		    (unsigned long long)s->data.size);
		smtp_session_reply(s, "250 2.0.0 Ok: queued as %s", m->qid);
	} else {
		log_error("event=spool_failed session=%llx error=\"%s\"",
		    (unsigned long long)s->id, strerror(err));
		smtp_session_reply(s, err == ENOSPC || err == EDQUOT ?
		    "452 4.3.1 Error: insufficient system storage" :
		    "451 4.3.0 Error: queue file write error");
	}
	smtp_session_reset_tx(s);
	smtp_session_input(s);
}

/* The session timed out (idle, or one line or DATA took too long in all):
 * 421 and close, once a spool write in flight has finished. */
static void
session_timed_out(struct smtp_session *s, const char *what)
{
	const struct config *cfg = smtp_server_config(s->srv);

	log_info("event=timeout session=%llx client=%s state=%s kind=%s",
	    (unsigned long long)s->id, s->ip, state_names[s->state], what);
	smtp_session_close(s, "421 4.4.2 %s Error: timeout exceeded", cfg->server_hostname);
	session_flush(s);
	/* A spool write in flight finishes first (smtp_session_spooled). */
	if (!s->busy)
		session_finish(s);
}

static void
session_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct smtp_session *s = arg;
	char desc[128];

	switch (ev) {
	case CONN_EV_INPUT:
		smtp_session_input(s);
		return;
	case CONN_EV_WRITABLE:
		/* Output drained: input that waited on a full output goes on. */
		if (!s->closing && evbuffer_get_length(conn_input(c)) > 0)
			smtp_session_input(s);
		return;
	case CONN_EV_TLS_READY:
		conn_tls_describe(c, desc, sizeof(desc));
		log_info("event=tls session=%llx client=%s protocol=\"%s\"",
		    (unsigned long long)s->id, s->ip, desc);
		return;
	case CONN_EV_TIMEOUT:
	case CONN_EV_DEADLINE:
		if (!s->closing)
			session_timed_out(s, ev == CONN_EV_TIMEOUT ? "idle" : "total");
		return;
	case CONN_EV_EOF:
		if (s->closing)
			break;
		/* Half-close: answer what was sent (and any spool write in
		 * flight), then close. */
		s->eof = true;
		conn_stop_reading(c);
		smtp_session_input(s);
		return;
	case CONN_EV_ERROR:
		if (s->tls)
			log_info("event=tls_failed session=%llx client=%s error=\"%s\"",
			    (unsigned long long)s->id, s->ip, conn_error(c));
		break;
	case CONN_EV_CONNECTED:
		return;
	}
	/* Error, or EOF while closing: nobody is left to answer. A spool job
	 * in flight keeps running; its completion finds no session and keeps
	 * the message (committed) or drops it (failed). */
	conn_free(&s->conn);
	smtp_session_destroy(s);
}
