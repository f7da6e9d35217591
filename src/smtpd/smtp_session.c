#include "smtpd/smtp_session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/settings.h"
#include "lib/drain.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/sendq.h"
#include "lib/tls.h"
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

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_flush(struct smtp_session *s);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);

static void
session_set_timeout(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);
	struct timeval tv = { 0, 0 };

	tv.tv_sec = (time_t)(s->state == SMTP_STATE_DATA ? cfg->smtp_timeout_data :
	    cfg->smtp_timeout_command);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
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

/* Callbacks, timeouts and watermarks of the session's (new) bufferevent. */
static void
session_setup_bev(struct smtp_session *s)
{
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_INPUT_HIGHWAT);
	session_set_timeout(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

struct smtp_session *
smtp_session_create(struct smtp_server *srv, int fd, const struct sockaddr *sa, uint64_t id,
    enum smtp_listener_kind kind, struct ssl_ctx_st *ctx)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const struct config *cfg = smtp_server_config(srv);

	s->srv = srv;
	s->id = id;
	s->kind = kind;
	if ((s->out = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	netaddr_ip(sa, s->ip, sizeof(s->ip));
	if (kind == SMTP_LISTENER_SMTPS) {
		s->bev = tls_bufferevent_accept(smtp_server_base(srv), fd, NULL, ctx);
		s->tls = true;
	} else
		s->bev = bufferevent_socket_new(smtp_server_base(srv), fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	s->state = SMTP_STATE_GREETING_SENT;
	session_setup_bev(s);
	log_info("event=connect session=%llx client=%s listener=%s", (unsigned long long)id, s->ip,
	    smtp_listener_name(kind));
	smtp_session_reply(s, "220 %s ESMTP tegami", cfg->server_hostname);
	session_flush(s);
	return s;
}

void
smtp_session_starttls(struct smtp_session *s, struct ssl_ctx_st *ctx)
{
	struct bufferevent *under = s->bev;

	smtp_session_reply(s, "220 2.0.0 Ready to start TLS");
	session_flush(s); /* in the clear, before the TLS layer goes on top */
	/* Anything pipelined after STARTTLS arrived in plaintext: never run it. */
	evbuffer_drain(bufferevent_get_input(under), evbuffer_get_length(bufferevent_get_input(under)));
	s->skip_line = false;
	s->bev = tls_bufferevent_accept(smtp_server_base(s->srv), -1, under, ctx);
	s->tls = true;
	/* RFC 3207 §4.2: forget everything learnt before the handshake. */
	smtp_session_reset_tx(s);
	smtp_auth_cleanup(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	s->state = SMTP_STATE_GREETING_SENT;
	session_setup_bev(s);
	log_info("event=starttls session=%llx client=%s", (unsigned long long)s->id, s->ip);
}

void
smtp_session_tls_describe(struct smtp_session *s, char *buf, size_t size)
{
	if (!s->tls) {
		buf[0] = '\0';
		return;
	}
	tls_bufferevent_describe(s->bev, buf, size);
}

void
smtp_session_reset_tx(struct smtp_session *s)
{
	spool_msg_free(&s->msg);
	s->nrcpt = 0;
	memset(&s->data, 0, sizeof(s->data));
	if (s->state == SMTP_STATE_MAIL || s->state == SMTP_STATE_DATA)
		smtp_session_enter(s, SMTP_STATE_READY);
}

static void
drain_done(void *arg)
{
	struct smtp_session *s = arg;

	s->drain = NULL; /* the drain freed itself */
	smtp_session_destroy(s);
}

/* Frees the session once its last reply is on the wire. */
static void
session_finish(struct smtp_session *s)
{
	session_flush(s);
	if (tls_bufferevent_flushed(s->bev)) {
		smtp_session_destroy(s);
		return;
	}
	if (s->drain == NULL)
		s->drain = drain_start(smtp_server_base(s->srv), s->bev, drain_done, s);
}

void
smtp_session_destroy(struct smtp_session *s)
{
	log_info("event=disconnect session=%llx client=%s errors=%u",
	    (unsigned long long)s->id, s->ip, s->errors);
	smtp_server_session_closed(s->srv, s);
	smtp_auth_cleanup(s);
	spool_msg_free(&s->msg);
	drain_cancel(&s->drain);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	evbuffer_free(s->out);
	free(s->helo);
	free(s);
}

/* Replies are gathered in s->out and leave in one write per burst of
 * commands (session_flush): one TLS record, one segment, for a pipelined
 * group (RFC 2920). */
static void session_vreply(struct smtp_session *s, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
session_vreply(struct smtp_session *s, const char *fmt, va_list ap)
{
	sendq_vline(s->out, SMTP_REPLY_MAX, fmt, ap);
}

/* Hands the gathered replies to the connection (lib/sendq.h): straight onto
 * a plain socket when nothing is queued before them. */
static void
session_flush(struct smtp_session *s)
{
	sendq_flush(s->bev, s->out, !s->tls);
}

static size_t
session_out_pending(struct smtp_session *s)
{
	return sendq_pending(s->bev, s->out);
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
	bufferevent_disable(s->bev, EV_READ);
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

/* Reads one command line into buf (NUL-terminated, CRLF stripped).
 * 1: a line; 0: need more input; -1: the line was bad and answered. */
static int
session_read_line(struct smtp_session *s, char *buf, size_t *len_r)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	const struct config *cfg = smtp_server_config(s->srv);
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);

	if (eol.pos < 0) {
		if (evbuffer_get_length(in) > SMTP_AUTH_LINE_MAX) {
			evbuffer_drain(in, evbuffer_get_length(in));
			s->skip_line = true;
		}
		return 0;
	}
	size_t n = (size_t)eol.pos + 1;
	if (s->skip_line || n > SMTP_AUTH_LINE_MAX) {
		evbuffer_drain(in, n);
		s->skip_line = false;
		smtp_session_error(s, "500 5.5.2 Error: line too long");
		return -1;
	}
	evbuffer_remove(in, buf, n);
	size_t len = n - 1;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	else if (!cfg->smtp_allow_bare_lf) {
		smtp_session_error(s, "550 5.5.2 Error: bare <LF> received; lines must end in <CR><LF>");
		return -1;
	}
	buf[len] = '\0';
	if (memchr(buf, '\r', len) != NULL && !cfg->smtp_allow_bare_lf) {
		smtp_session_error(s, "550 5.5.2 Error: bare <CR> received");
		return -1;
	}
	if (strlen(buf) != len) {
		smtp_session_error(s, "500 5.5.2 Error: NUL character in command");
		return -1;
	}
	*len_r = len;
	return 1;
}

void
smtp_session_input(struct smtp_session *s)
{
	char line[SMTP_AUTH_LINE_MAX + 1];
	size_t len;

	while (!s->busy && !s->closing) {
		if (session_out_pending(s) > SMTP_OUTPUT_MAX) {
			/* The client does not read its replies: wait for the write
			 * callback before handling more (the write cb resumes).
			 * Only what is queued in the bufferevent brings that
			 * callback, so first hand it what is gathered. */
			session_flush(s);
			if (session_out_pending(s) > SMTP_OUTPUT_MAX)
				break;
		}
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
	/* Closing with every reply on the wire: no write callback will come. */
	if (s->closing && !s->busy && session_out_pending(s) == 0)
		session_finish(s); /* frees s */
}

void
smtp_session_spooled(struct smtp_session *s, const struct spool_msg *m, int result, int err)
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

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	smtp_session_input(arg);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->closing) {
		if (!s->busy)
			session_finish(s);
		return;
	}
	/* Output drained: input that waited on a full output buffer goes on. */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		smtp_session_input(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	const struct config *cfg = smtp_server_config(s->srv);

	if ((what & BEV_EVENT_TIMEOUT) != 0 && !s->closing) {
		log_info("event=timeout session=%llx client=%s state=%s",
		    (unsigned long long)s->id, s->ip, state_names[s->state]);
		smtp_session_close(s, "421 4.4.2 %s Error: timeout exceeded",
		    cfg->server_hostname);
		session_flush(s);
		/* A spool write in flight finishes first (smtp_session_spooled). */
		if (s->busy)
			return;
		if (session_out_pending(s) == 0) {
			session_finish(s);
			return;
		}
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	if ((what & BEV_EVENT_EOF) != 0 && (what & BEV_EVENT_ERROR) == 0 && !s->closing) {
		/* Half-close: answer what was sent (and any spool write in
		 * flight), then close. */
		s->eof = true;
		bufferevent_disable(bev, EV_READ);
		smtp_session_input(s);
		return;
	}
	if ((what & BEV_EVENT_CONNECTED) != 0) {
		char desc[128];
		smtp_session_tls_describe(s, desc, sizeof(desc));
		log_info("event=tls session=%llx client=%s protocol=\"%s\"",
		    (unsigned long long)s->id, s->ip, desc);
		return;
	}
	if (s->tls && (what & BEV_EVENT_ERROR) != 0) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char reason[256] = "connection error";
		if (e != 0)
			ERR_error_string_n(e, reason, sizeof(reason));
		log_info("event=tls_failed session=%llx client=%s error=\"%s\"",
		    (unsigned long long)s->id, s->ip, reason);
	}
	/* Error, or EOF while closing: nobody is left to answer. A spool job
	 * in flight keeps running; its completion finds no session and keeps
	 * the message (committed) or drops it (failed). */
	smtp_session_destroy(s);
}
