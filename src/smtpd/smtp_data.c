/* smtp_data.c: reading the message after DATA (RFC 5321 §4.1.1.4, §4.5.2).
 *
 * The end marker is CRLF "." CRLF only: a "." line ends the message when it
 * starts a line, ends in CRLF, and the line before it ended in CRLF too (the
 * DATA command's own CRLF counts). So "\n.\n", "\n.\r\n" and "\r.\r" never
 * end a message, whatever smtp.allow_bare_lf says; with the setting off, a
 * bare LF or bare CR anywhere refuses the whole message (SMTP smuggling).
 *
 * The body is stored with LF line endings, dot-unstuffed, after our Received
 * header. Beyond smtp.max_message_size the rest is read and dropped.
 *
 * We offer 8BITMIME, not BINARYMIME: text may not hold a NUL (RFC 2045
 * §2.7-2.8, RFC 6152 §3). A NUL is only noted while reading; the message is
 * refused (554 5.6.0) at its end marker like every other refusal here, so
 * "\r\n\0.\r\n" and "\r\n.\0\r\n" stay text and never end it. */
#include <event2/buffer.h>
#include <string.h>

#include "conf/settings.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "mail/rfc5322.h"
#include "queue/spool.h"
#include "smtpd/smtp_session.h"

/* Longest line we copy at once; longer ones are consumed in pieces. */
#define DATA_CHUNK 2048

static void
add_received(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);
	char date[RFC5322_DATE_MAX], tls[128];
	struct evbuffer *b = s->msg->body;

	rfc5322_date(s->msg->arrival, date);
	smtp_session_tls_describe(s, tls, sizeof(tls));
	/* RFC 5321 §4.4 Time-stamp-line; protocol names from RFC 3848;
	 * "for" only with a single recipient. */
	evbuffer_add_printf(b, "Received: from %s (unknown [%s])\n", s->helo, s->ip);
	if (tls[0] != '\0')
		evbuffer_add_printf(b, "\t(using %s)\n", tls);
	/* RFC 3848: ESMTP, plus S for TLS and A for AUTH. */
	const char *proto = !s->esmtp ? "SMTP" : s->tls ?
	    (s->auth_user != NULL ? "ESMTPSA" : "ESMTPS") :
	    (s->auth_user != NULL ? "ESMTPA" : "ESMTP");
	evbuffer_add_printf(b, "\tby %s (tegami) with %s id %s", cfg->server_hostname, proto,
	    s->msg->qid);
	if (s->msg->nrcpt == 1)
		evbuffer_add_printf(b, "\n\tfor <%s>", s->msg->rcpts[0].orig);
	evbuffer_add_printf(b, "; %s\n", date);
}

void
smtp_data_begin(struct smtp_session *s)
{
	memset(&s->data, 0, sizeof(s->data));
	s->data.at_line_start = true;
	s->data.prev_crlf = true;
	add_received(s);
	smtp_session_enter(s, SMTP_STATE_DATA);
	smtp_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
data_store(struct smtp_session *s, const char *p, size_t n, bool eol)
{
	const struct config *cfg = smtp_server_config(s->srv);
	struct smtp_data_reader *d = &s->data;

	d->size += n + (eol ? 2 : 0);
	if (n > 0 && memchr(p, '\0', n) != NULL)
		d->nul = true;
	if (d->too_big || d->bad_eol || d->long_line || d->nul)
		return; /* refused anyway: keep nothing */
	if (d->size > cfg->smtp_max_message_size) {
		d->too_big = true;
		evbuffer_drain(s->msg->body, evbuffer_get_length(s->msg->body));
		return;
	}
	evbuffer_add(s->msg->body, p, n);
	/* RFC 6152: 8-bit octets go out with BODY=8BITMIME. */
	for (size_t i = 0; i < n && !s->msg->eightbit; i++)
		s->msg->eightbit = (unsigned char)p[i] >= 0x80;
	if (eol)
		evbuffer_add(s->msg->body, "\n", 1);
}

/* One line of n octets, LF included. Returns true at the end marker. */
static bool
data_line(struct smtp_session *s, const char *p, size_t n)
{
	const struct config *cfg = smtp_server_config(s->srv);
	struct smtp_data_reader *d = &s->data;
	bool crlf = n >= 2 && p[n - 2] == '\r';
	size_t len = n - (crlf ? 2 : 1);
	bool line_start = d->at_line_start;

	if (line_start && d->prev_crlf && crlf && len == 1 && p[0] == '.')
		return true;
	if (!crlf && !cfg->smtp_allow_bare_lf)
		d->bad_eol = true;
	if (memchr(p, '\r', len) != NULL && !cfg->smtp_allow_bare_lf)
		d->bad_eol = true;
	if (line_start && len + 2 > SMTP_TEXT_LINE_MAX)
		d->long_line = true;
	if (line_start && p[0] == '.') { /* RFC 5321 §4.5.2 transparency */
		p++;
		len--;
	}
	data_store(s, p, len, true);
	d->prev_crlf = crlf;
	d->at_line_start = true;
	return false;
}

/* A piece of a line without its LF (the line is over DATA_CHUNK). */
static void
data_partial(struct smtp_session *s, struct evbuffer *in, size_t n)
{
	s->data.long_line = true;
	s->data.at_line_start = false;
	s->data.prev_crlf = false;
	evbuffer_drain(in, n);
}

static void
data_end(struct smtp_session *s)
{
	struct smtp_data_reader *d = &s->data;
	struct envelope *msg;

	if (d->too_big) {
		smtp_session_error(s, "552 5.3.4 Error: message size exceeds fixed maximum message size");
	} else if (d->bad_eol) {
		log_info("event=bare_newline session=%llx client=%s", (unsigned long long)s->id, s->ip);
		smtp_session_error(s, "550 5.5.2 Error: message refused: bare <LF> or <CR> in message "
		    "(lines must end in <CR><LF>)");
	} else if (d->long_line) {
		smtp_session_error(s, "500 5.5.2 Error: message refused: line longer than 1000 octets");
	} else if (d->nul) {
		log_info("event=nul_in_message session=%llx client=%s", (unsigned long long)s->id, s->ip);
		smtp_session_error(s, "554 5.6.0 Error: message refused: NUL octet in the text "
		    "(not allowed in 8BITMIME, RFC 6152)");
	} else if (smtp_policy_data(s, s->msg) == 0) {
		s->junk = 0; /* a message: the client is not idling (smtp.junk_command_limit) */
		msg = s->msg;
		s->msg = NULL;
		smtp_server_spool(s->srv, s, msg);
		return;
	}
	smtp_session_reset_tx(s);
}

bool
smtp_data_input(struct smtp_session *s)
{
	struct evbuffer *in = conn_input(s->conn);
	char line[DATA_CHUNK];

	for (;;) {
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) >= DATA_CHUNK)
				data_partial(s, in, evbuffer_get_length(in) - 2);
			return false;
		}
		size_t n = (size_t)eol.pos + 1;
		if (n > sizeof(line)) {
			/* Keep the last two octets so "\r\n" stays whole for the end test. */
			data_partial(s, in, n - 2);
			continue;
		}
		evbuffer_remove(in, line, n);
		if (!s->data.at_line_start) {
			/* Tail of a long line: only its ending matters now. */
			s->data.prev_crlf = n >= 2 && line[n - 2] == '\r';
			s->data.at_line_start = true;
			continue;
		}
		if (data_line(s, line, n)) {
			data_end(s);
			return true;
		}
	}
}
