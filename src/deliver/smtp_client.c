/* smtp_client.c: one outgoing SMTP connection (smtp_client.h).
 *
 * smtp_client_state() is the only place the protocol state changes: it
 * switches on each complete reply (mail/smtp_reply collects multi-line
 * replies), as curl's smtp_state() does. Connection events (connected, TLS
 * up, lost) come through client_conn_cb(). */
#include "deliver/smtp_client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/conn.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/dsn.h"
#include "mail/pop3_wire.h"
#include "mail/sasl.h"
#include "mail/smtp_reply.h"

#define CLIENT_LINE_MAX 2048          /* a command we send, CRLF included */
#define CLIENT_OUTPUT_MAX (256 * 1024)
#define BODY_CHUNK 65536
#define AUTH_LINE_MAX 510             /* "AUTH MECH response" kept within RFC 5321's 512 */
#define HEADER_SCAN 8192              /* where our Received header is looked for */

enum cstate {
	CS_CONNECTING,   /* TCP connect under way */
	CS_GREETING,     /* waiting for 220 */
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_HANDSHAKE,    /* TLS handshake under way: no reply expected */
	CS_AUTH,         /* AUTH sent: 334 challenges until 235 or a refusal */
	CS_AUTH_CANCEL,  /* "*" sent after a challenge we cannot answer */
	CS_READY,        /* idle between transactions */
	CS_MAIL,
	CS_RCPT,
	CS_DATA,
	CS_BODY,         /* streaming the message */
	CS_DOT,          /* waiting for the reply to the final "." */
	CS_DOT_DISCARD,  /* a 354 came with no recipient accepted: "." sent, reply ignored */
	CS_RSET,
	CS_QUIT,
	CS_DEAD,
};

static const char *const cstate_names[] = {
	"connecting", "greeting", "ehlo", "helo", "starttls", "handshake", "auth", "auth-cancel",
	"ready", "mail", "rcpt", "data", "body", "dot", "dot-discard", "rset", "quit", "dead",
};

struct client_rcpt {
	char *addr;
	unsigned notify;
	char *orcpt;
};

struct client_txn {
	char *sender;
	char *envid;
	int ret;
	bool eightbit;
	struct client_rcpt *rcpts;
	size_t nrcpt;
	char *path;
	uint64_t body_offset, body_size;
	char *add_header;          /* the X-Mailer line, or NULL once sent */
	uint64_t header_at;        /* where in the body it goes */
};

struct smtp_client {
	struct event_base *base;
	struct smtp_client_settings set;
	char helo[256];
	char source_ip[INET6_ADDRSTRLEN];
	struct route_target *targets;
	size_t ntargets, ti;
	bool retry_same;           /* one-shot: the next attempt is the same target */
	bool no_tls;               /* MAY: TLS with this target failed; no STARTTLS now */
	bool starting;             /* inside smtp_client_start() */
	struct conn *conn;
	enum cstate state;
	struct smtp_reply_parser parser;
	struct smtp_ehlo ext;
	bool tls_up;
	bool greeted;              /* the 220 was read on this connection */
	/* AUTH (C3) */
	char *auth_user, *auth_secret;
	struct sasl_client sasl;
	char *auth_pending;        /* an initial response too long for the AUTH line */
	const char *auth_mech;     /* in use, or NULL */
	smtp_client_fn *fn;
	void *arg;
	char peer[ROUTE_NAME_MAX + INET6_ADDRSTRLEN + 16];
	int last_code;
	char last_error[SMTP_CLIENT_REPLY_MAX];
	bool all_perm;             /* every target refused with a 5xx */
	/* the transaction */
	struct client_txn txn;
	struct smtp_client_result *res;
	bool *final;               /* res[i] decided */
	size_t rcpt_replies;       /* RCPT replies read so far */
	size_t accepted;
	bool mail_failed;
	bool pipelined;
	int fd;
	struct pop3_wire wire;
	uint64_t sent;
	struct event *post;        /* a result known inside a call, delivered from the loop */
	unsigned depth;            /* inside our own callbacks */
	bool free_requested;
};

static void smtp_client_state(struct smtp_client *c, const struct smtp_reply *r);
static void try_target(struct smtp_client *c);
static void client_conn_cb(struct conn *conn, enum conn_event ev, void *arg);
static void client_destroy(struct smtp_client *c);

static void
enter(struct smtp_client *c, enum cstate st)
{
	log_debug("event=client_state peer=%s from=%s to=%s", c->peer, cstate_names[c->state],
	    cstate_names[st]);
	c->state = st;
}

static void
trace(struct smtp_client *c, char dir, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* One line for the owner's trace (debug logging, `tegami profile test`). */
static void
trace(struct smtp_client *c, char dir, const char *fmt, ...)
{
	char line[CLIENT_LINE_MAX];
	va_list ap;

	if (c->set.trace == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->set.trace(c->set.trace_arg, dir, line);
}

static void
send_line(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
send_line(struct smtp_client *c, const char *fmt, ...)
{
	char line[CLIENT_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	if (c->set.trace == NULL) {
		conn_vprintf(c->conn, CLIENT_LINE_MAX, fmt, ap);
	} else {
		vsnprintf(line, sizeof(line), fmt, ap);
		c->set.trace(c->set.trace_arg, '>', line);
		conn_printf(c->conn, CLIENT_LINE_MAX, "%s", line);
	}
	va_end(ap);
}

/* A line that carries a secret (an AUTH payload, up to RFC 4954's 12288
 * octets): written as it is, traced as shown. */
static void
send_secret(struct smtp_client *c, const char *shown, const char *prefix, const char *payload)
{
	trace(c, '>', "%s", shown);
	conn_write(c->conn, prefix, strlen(prefix));
	conn_write(c->conn, payload, strlen(payload));
	conn_write(c->conn, "\r\n", 2);
}

static void
wipe_free(char **sp)
{
	if (*sp != NULL) {
		OPENSSL_cleanse(*sp, strlen(*sp));
		free(*sp);
		*sp = NULL;
	}
}

/* The exchange is over (either way): its state goes. */
static void
auth_clear(struct smtp_client *c)
{
	sasl_client_clear(&c->sasl);
	wipe_free(&c->auth_pending);
}

/* No more AUTH on this client (done, or given up): the secret goes too. */
static void
auth_forget(struct smtp_client *c)
{
	auth_clear(c);
	wipe_free(&c->auth_secret);
}

static void
txn_clear(struct smtp_client *c)
{
	struct client_txn *t = &c->txn;

	for (size_t i = 0; i < t->nrcpt; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].orcpt);
	}
	free(t->rcpts);
	free(t->sender);
	free(t->envid);
	free(t->path);
	free(t->add_header);
	memset(t, 0, sizeof(*t));
	free(c->res);
	free(c->final);
	c->res = NULL;
	c->final = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Calls the owner; afterwards c may be marked for freeing. */
static void
emit(struct smtp_client *c, enum smtp_client_event ev, const struct smtp_client_result *res,
    size_t n, bool closed, int code, const char *error)
{
	if (c->fn == NULL)
		return;
	c->depth++;
	c->fn(c->arg, ev, res, n, closed, code, error);
	c->depth--;
}

/* --- connecting --- */

static void post_cb(evutil_socket_t fd, short what, void *arg);

static void
setup_failed(struct smtp_client *c)
{
	auth_forget(c);
	enter(c, CS_DEAD);
	conn_free(&c->conn);
	c->last_code = c->all_perm && c->last_code >= 500 ? c->last_code :
	    (c->last_code >= 400 && c->last_code < 500 ? c->last_code : 421);
	if (c->starting) {
		/* Nothing was tried on the network: the owner hears it from
		 * the loop, never from inside smtp_client_start(). */
		struct timeval now = { 0, 0 };
		c->post = evtimer_new(c->base, post_cb, c);
		evtimer_add(c->post, &now);
		return;
	}
	emit(c, SMTP_CLIENT_FAILED, NULL, 0, true, c->last_code, c->last_error);
}

/* This target cannot be used: remember why and go to the next. */
static void
target_failed(struct smtp_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
target_failed(struct smtp_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	c->last_code = code;
	if (code < 500)
		c->all_perm = false;
	log_info("event=client_target_failed peer=%s error=\"%s\"", c->peer, c->last_error);
	conn_free(&c->conn);
	if (c->retry_same) {
		c->retry_same = false;
	} else {
		c->ti++;
		c->no_tls = false;
	}
	try_target(c);
}

static void
try_target(struct smtp_client *c)
{
	const char *error = NULL;

	while (c->ti < c->ntargets) {
		const struct route_target *t = &c->targets[c->ti];
		snprintf(c->peer, sizeof(c->peer), "%s[%s]:%u", t->host, t->ip, t->port);
		enter(c, CS_CONNECTING);
		trace(c, '*', "connecting to %s", c->peer);
		c->conn = conn_connect_ip(c->base, t->ip, t->port, c->source_ip,
		    c->set.connect_timeout_ms, client_conn_cb, c, &error);
		if (c->conn != NULL) {
			conn_set_output_max(c->conn, CLIENT_OUTPUT_MAX);
			return;
		}
		snprintf(c->last_error, sizeof(c->last_error), "4.4.1 cannot connect to %s: %s",
		    c->peer, error);
		c->last_code = 421;
		c->all_perm = false;
		c->ti++;
	}
	setup_failed(c);
}

struct smtp_client *
smtp_client_start(struct event_base *base, const struct smtp_client_settings *s,
    const struct route_target *targets, size_t n, smtp_client_fn *fn, void *arg)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->set = *s;
	str_copy(c->helo, s->helo != NULL ? s->helo : "localhost", sizeof(c->helo));
	if (s->source_ip != NULL)
		str_copy(c->source_ip, s->source_ip, sizeof(c->source_ip));
	c->set.helo = c->helo;
	c->set.source_ip = NULL;
	c->auth_user = s->auth_user != NULL ? xstrdup(s->auth_user) : NULL;
	c->auth_secret = s->auth_secret != NULL ? xstrdup(s->auth_secret) : NULL;
	c->set.auth_user = NULL;
	c->set.auth_secret = NULL;
	if (c->set.implicit_tls && c->set.tls != SMTP_CLIENT_TLS_VERIFY)
		c->set.tls = SMTP_CLIENT_TLS_ENCRYPT; /* SMTPS is TLS or nothing */
	c->targets = xcalloc(n > 0 ? n : 1, sizeof(*c->targets));
	memcpy(c->targets, targets, n * sizeof(*targets));
	c->ntargets = n;
	c->fn = fn;
	c->arg = arg;
	c->fd = -1;
	c->all_perm = true;
	c->last_code = 421;
	str_copy(c->last_error, "4.4.4 no address to connect to", sizeof(c->last_error));
	smtp_reply_parser_init(&c->parser);
	c->starting = true;
	try_target(c);
	c->starting = false;
	return c;
}

static void
set_timeout(struct smtp_client *c, unsigned ms)
{
	conn_set_timeout(c->conn, ms);
}

static void
send_ehlo(struct smtp_client *c)
{
	memset(&c->ext, 0, sizeof(c->ext));
	send_line(c, "EHLO %s", c->helo);
	enter(c, CS_EHLO);
}

/* Connected and greeted (and encrypted where the policy wants it). */
static void
ready(struct smtp_client *c)
{
	char desc[128];

	if (c->tls_up) {
		conn_tls_describe(c->conn, desc, sizeof(desc));
		log_info("event=client_connected peer=%s tls=\"%s\" verified=%s auth=%s", c->peer,
		    desc, conn_tls_verified(c->conn) ? "yes" : "no",
		    c->auth_mech != NULL ? c->auth_mech : "none");
	} else {
		log_info("event=client_connected peer=%s tls=no auth=%s", c->peer,
		    c->auth_mech != NULL ? c->auth_mech : "none");
	}
	enter(c, CS_READY);
	emit(c, SMTP_CLIENT_READY, NULL, 0, false, 0, NULL);
}

static bool
tls_required(const struct smtp_client *c)
{
	return c->set.tls == SMTP_CLIENT_TLS_ENCRYPT || c->set.tls == SMTP_CLIENT_TLS_VERIFY;
}

static void auth_start(struct smtp_client *c);

/* After EHLO/HELO: STARTTLS if wanted and possible, then AUTH when asked
 * for, else ready. */
static void
after_hello(struct smtp_client *c)
{
	bool want = c->set.tls != SMTP_CLIENT_TLS_NONE && !c->no_tls && c->set.tls_ctx != NULL;

	if (!c->tls_up && want && c->ext.starttls) {
		send_line(c, "STARTTLS");
		enter(c, CS_STARTTLS);
		return;
	}
	if (!c->tls_up && tls_required(c)) {
		target_failed(c, 421, "4.7.4 TLS is required (relay.tls=%s) but %s does not offer "
		    "STARTTLS", c->set.tls == SMTP_CLIENT_TLS_VERIFY ? "verify" : "encrypt", c->peer);
		return;
	}
	if (c->set.auth_mechs != 0) {
		auth_start(c);
		return;
	}
	ready(c);
}

/* --- AUTH (RFC 4954; MISSION C3) --- */

static const struct {
	unsigned bit;
	enum sasl_mech mech;
} auth_order[] = {
	/* XOAUTH2 is only ever configured alone; then the seed's order. */
	{ SMTP_AUTH_XOAUTH2, SASL_MECH_XOAUTH2 },
	{ SMTP_AUTH_CRAM_MD5, SASL_MECH_CRAM_MD5 },
	{ SMTP_AUTH_LOGIN, SASL_MECH_LOGIN },
	{ SMTP_AUTH_PLAIN, SASL_MECH_PLAIN },
};

static void
mechs_text(unsigned bits, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(auth_order) / sizeof(auth_order[0]) && o < size; i++) {
		if (bits & auth_order[i].bit)
			o += (size_t)snprintf(buf + o, size - o, "%s%s", o > 0 ? " " : "",
			    sasl_mech_name(auth_order[i].mech));
	}
	if (buf[0] == '\0')
		snprintf(buf, size, "none");
}

/* The mechanism to use, or SASL_MECH_UNKNOWN; *clear_r tells that one was
 * passed over because it would send the secret in the clear. */
static enum sasl_mech
auth_choose(const struct smtp_client *c, bool *clear_r)
{
	*clear_r = false;
	for (size_t i = 0; i < sizeof(auth_order) / sizeof(auth_order[0]); i++) {
		unsigned bit = auth_order[i].bit;
		if ((c->set.auth_mechs & bit) == 0 || (c->ext.auth & bit) == 0)
			continue;
		/* A4 on the client side: PLAIN, LOGIN and a bearer token are
		 * the secret itself. */
		if (!c->tls_up && auth_order[i].mech != SASL_MECH_CRAM_MD5 &&
		    !c->set.auth_plaintext_ok) {
			*clear_r = true;
			continue;
		}
		return auth_order[i].mech;
	}
	return SASL_MECH_UNKNOWN;
}

static void
auth_start(struct smtp_client *c)
{
	char ours[64], theirs[64];
	bool clear;
	enum sasl_mech m = auth_choose(c, &clear);

	if (m == SASL_MECH_UNKNOWN || c->auth_user == NULL || c->auth_secret == NULL) {
		mechs_text(c->set.auth_mechs, ours, sizeof(ours));
		mechs_text(c->ext.auth, theirs, sizeof(theirs));
		if (m != SASL_MECH_UNKNOWN)
			target_failed(c, 454, "4.7.0 no password or token to authenticate to %s with",
			    c->peer);
		else if (clear)
			target_failed(c, 454, "4.7.0 %s offers only mechanisms that would send the "
			    "password in the clear, and the connection is not encrypted", c->peer);
		else
			target_failed(c, 454, "4.7.0 %s offers no authentication mechanism we may use "
			    "(ours: %s; offered: %s)", c->peer, ours, theirs);
		return;
	}
	char *out = xmalloc(SASL_CLIENT_OUT_MAX);
	const char *name = sasl_mech_name(m);
	if (sasl_client_start(&c->sasl, m, c->auth_user, c->auth_secret, out,
	    SASL_CLIENT_OUT_MAX) < 0) {
		free(out);
		target_failed(c, 454, "4.7.0 the account or secret cannot be sent with %s", name);
		return;
	}
	if (!c->tls_up)
		log_warn("event=client_auth_unencrypted peer=%s mech=%s note=\"no TLS was chosen: "
		    "the login crosses the network in the clear\"", c->peer, name);
	c->auth_mech = name;
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "AUTH %s ", name);
	if (out[0] != '\0' && strlen(prefix) + strlen(out) <= AUTH_LINE_MAX) {
		char shown[48];
		snprintf(shown, sizeof(shown), "AUTH %s ****", name);
		send_secret(c, shown, prefix, out);
		OPENSSL_cleanse(out, SASL_CLIENT_OUT_MAX);
		free(out);
	} else {
		/* RFC 4954 §4: an initial response too long for the line waits
		 * for the server's empty challenge. */
		send_line(c, "AUTH %s", name);
		if (out[0] != '\0')
			c->auth_pending = out;
		else
			free(out);
	}
	enter(c, CS_AUTH);
}

/* A 334: the pending initial response, or the mechanism's answer. */
static void
auth_challenge(struct smtp_client *c, const struct smtp_reply *r)
{
	char chal[SASL_LINE_MAX + 1];

	if (c->auth_pending != NULL) {
		send_secret(c, "****", "", c->auth_pending);
		wipe_free(&c->auth_pending);
		return;
	}
	str_copy(chal, r->text, sizeof(chal));
	chal[strcspn(chal, "\n ")] = '\0';
	char *out = xmalloc(SASL_CLIENT_OUT_MAX);
	if (sasl_client_step(&c->sasl, chal, out, SASL_CLIENT_OUT_MAX) < 0) {
		send_line(c, "*");
		enter(c, CS_AUTH_CANCEL);
	} else {
		send_secret(c, "****", "", out);
	}
	OPENSSL_cleanse(out, SASL_CLIENT_OUT_MAX);
	free(out);
}

/* The server's last word on AUTH other than 235. */
static void
auth_refused(struct smtp_client *c, const struct smtp_reply *r, const char *text)
{
	log_info("event=client_auth_failed peer=%s mech=%s reply=\"%s\"", c->peer,
	    c->auth_mech != NULL ? c->auth_mech : "?", text);
	auth_clear(c);
	c->auth_mech = NULL;
	if (r->code / 100 != 5) {
		target_failed(c, r->code, "%s", text);
		return;
	}
	/* C3: a refused login fails the send with the server's own reply
	 * (the report quotes it); the relay's other addresses would say the
	 * same, and the mail never leaves unauthenticated. */
	send_line(c, "QUIT");
	conn_close(&c->conn);
	str_copy(c->last_error, text, sizeof(c->last_error));
	c->last_code = r->code;
	c->all_perm = true;
	c->ti = c->ntargets;
	setup_failed(c);
}

/* --- the transaction --- */

static void
result_set(struct smtp_client *c, size_t i, int code, const char *reply)
{
	c->res[i].code = code;
	str_copy(c->res[i].reply, reply, sizeof(c->res[i].reply));
	c->final[i] = true;
}

static void
reply_text(const struct smtp_reply *r, char *buf, size_t size)
{
	smtp_reply_format(r, buf, size);
}

/* Every recipient without a result gets this one. */
static void
results_fill(struct smtp_client *c, int code, const char *reply)
{
	for (size_t i = 0; i < c->txn.nrcpt; i++) {
		if (!c->final[i])
			result_set(c, i, code, reply);
	}
}

static void
txn_finish(struct smtp_client *c, bool closed)
{
	size_t n = c->txn.nrcpt;
	struct smtp_client_result *res = c->res;

	c->res = NULL;
	txn_clear(c);
	if (!closed)
		enter(c, CS_READY);
	emit(c, SMTP_CLIENT_DONE, res, n, closed, 0, NULL);
	free(res);
}

/* The transaction failed before the message went: RSET, then done. */
static void
txn_abort(struct smtp_client *c)
{
	send_line(c, "RSET");
	enter(c, CS_RSET);
}

static void
send_mail(struct smtp_client *c)
{
	const struct client_txn *t = &c->txn;
	char params[400] = "";
	size_t o = 0;

	if (c->ext.size_offered)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " SIZE=%llu",
		    (unsigned long long)(t->body_size +
		        (t->add_header != NULL ? strlen(t->add_header) + 2 : 0)));
	if (t->eightbit && c->ext.eightbitmime)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " BODY=8BITMIME");
	if (c->ext.dsn && t->ret != DSN_RET_DEFAULT)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " RET=%s", dsn_ret_name(t->ret));
	if (c->ext.dsn && t->envid != NULL && o < sizeof(params))
		snprintf(params + o, sizeof(params) - o, " ENVID=%s", t->envid);
	send_line(c, "MAIL FROM:<%s>%s", t->sender, params);
}

static void
send_rcpt(struct smtp_client *c, size_t i)
{
	const struct client_rcpt *r = &c->txn.rcpts[i];
	char notify[64] = "", params[700] = "";

	if (c->ext.dsn && r->notify != 0) {
		dsn_notify_format(r->notify, notify, sizeof(notify));
		snprintf(params, sizeof(params), " NOTIFY=%s%s%s", notify,
		    r->orcpt != NULL ? " ORCPT=" : "", r->orcpt != NULL ? r->orcpt : "");
	} else if (c->ext.dsn && r->orcpt != NULL) {
		snprintf(params, sizeof(params), " ORCPT=%s", r->orcpt);
	}
	send_line(c, "RCPT TO:<%s>%s", r->addr, params);
}

static void
fail_local(struct smtp_client *c, const char *what)
{
	char reply[SMTP_CLIENT_REPLY_MAX];

	snprintf(reply, sizeof(reply), "4.3.0 local error: %s: %s", what, strerror(errno));
	log_error("event=client_local_error peer=%s error=\"%s\"", c->peer, reply);
	results_fill(c, 451, reply);
	/* The server has part of the message: without the final "." it drops
	 * it. */
	conn_free(&c->conn);
	enter(c, CS_DEAD);
	txn_finish(c, true);
}

/* Streams the message while the output has room; ends it with ".". */
static void
body_fill(struct smtp_client *c)
{
	char chunk[BODY_CHUNK];
	struct evbuffer_iovec vec;
	bool more = true;

	while (c->state == CS_BODY && conn_pending(c->conn) < CLIENT_OUTPUT_MAX) {
		uint64_t left = c->txn.body_size - c->sent;
		if (c->txn.add_header != NULL && c->sent == c->txn.header_at) {
			/* The wire is at the start of a line here (header_at follows an
			 * LF, or is 0): the line goes in as it is. */
			conn_write(c->conn, c->txn.add_header, strlen(c->txn.add_header));
			conn_write(c->conn, "\r\n", 2);
			free(c->txn.add_header);
			c->txn.add_header = NULL;
		}
		if (left == 0) {
			char end[POP3_WIRE_END_MAX];
			conn_write(c->conn, end, pop3_wire_finish(&c->wire, end));
			conn_flush(c->conn);
			set_timeout(c, c->set.data_timeout_ms);
			enter(c, CS_DOT);
			return;
		}
		size_t want = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		if (c->txn.add_header != NULL && c->txn.header_at - c->sent < want)
			want = (size_t)(c->txn.header_at - c->sent);
		if (fs_pread_all(c->fd, chunk, want, (long long)(c->txn.body_offset + c->sent)) < 0) {
			fail_local(c, "cannot read the queued message");
			return;
		}
		struct evbuffer *out = conn_output(c->conn);
		if (evbuffer_reserve_space(out, (ev_ssize_t)POP3_WIRE_ROOM(want), &vec, 1) != 1)
			fatalx("evbuffer_reserve_space failed");
		vec.iov_len = pop3_wire_convert(&c->wire, chunk, want, vec.iov_base, &more);
		evbuffer_commit_space(out, &vec, 1);
		c->sent += want;
		conn_flush(c->conn);
	}
}

/* Where the added header goes: after the first header field of the
 * message (our Received, folded lines included), or at the very start when
 * it is not found in the first HEADER_SCAN octets. */
static uint64_t
header_position(int fd, uint64_t offset, uint64_t size)
{
	char buf[HEADER_SCAN];
	size_t n = size < sizeof(buf) ? (size_t)size : sizeof(buf);

	if (n == 0 || fs_pread_all(fd, buf, n, (long long)offset) < 0 || buf[0] == '\n')
		return 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (buf[i] == '\n' && buf[i + 1] != ' ' && buf[i + 1] != '\t')
			return i + 1;
	}
	return 0;
}

static void
body_start(struct smtp_client *c)
{
	c->fd = open(c->txn.path, O_RDONLY | O_CLOEXEC);
	if (c->fd < 0) {
		fail_local(c, "cannot open the queued message");
		return;
	}
	if (c->txn.add_header != NULL)
		c->txn.header_at = header_position(c->fd, c->txn.body_offset, c->txn.body_size);
	pop3_wire_init(&c->wire, -1);
	c->sent = 0;
	enter(c, CS_BODY);
	body_fill(c);
}

static void
post_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	c->depth++;
	if (c->state == CS_DEAD && c->res == NULL)
		emit(c, SMTP_CLIENT_FAILED, NULL, 0, true, c->last_code, c->last_error);
	else
		txn_finish(c, false);
	c->depth--;
	if (c->free_requested && c->depth == 0)
		client_destroy(c);
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_client_txn *txn)
{
	struct client_txn *t = &c->txn;

	if (c->state != CS_READY || c->conn == NULL)
		return -1;
	t->sender = xstrdup(txn->sender);
	t->envid = txn->envid != NULL ? xstrdup(txn->envid) : NULL;
	t->ret = txn->ret;
	t->eightbit = txn->eightbit;
	t->path = xstrdup(txn->path);
	t->body_offset = txn->body_offset;
	t->body_size = txn->body_size;
	/* A header with a line end in it would inject lines: never sent. */
	if (txn->add_header != NULL && txn->add_header[0] != '\0' &&
	    strpbrk(txn->add_header, "\r\n") == NULL)
		t->add_header = xstrdup(txn->add_header);
	t->nrcpt = txn->nrcpt;
	t->rcpts = xcalloc(txn->nrcpt > 0 ? txn->nrcpt : 1, sizeof(*t->rcpts));
	for (size_t i = 0; i < txn->nrcpt; i++) {
		t->rcpts[i].addr = xstrdup(txn->rcpts[i].addr);
		t->rcpts[i].notify = txn->rcpts[i].notify;
		t->rcpts[i].orcpt = txn->rcpts[i].orcpt != NULL ? xstrdup(txn->rcpts[i].orcpt) : NULL;
	}
	c->res = xcalloc(txn->nrcpt > 0 ? txn->nrcpt : 1, sizeof(*c->res));
	c->final = xcalloc(txn->nrcpt > 0 ? txn->nrcpt : 1, sizeof(*c->final));
	c->rcpt_replies = 0;
	c->accepted = 0;
	c->mail_failed = false;
	c->pipelined = c->ext.pipelining && !c->set.no_pipelining;
	/* RFC 1870: a message over the server's declared limit is not sent. */
	if (c->ext.size_offered && c->ext.size > 0 && t->body_size > c->ext.size) {
		char reply[SMTP_CLIENT_REPLY_MAX];
		snprintf(reply, sizeof(reply), "552 5.3.4 message size %llu exceeds the limit of "
		    "%s (%llu)", (unsigned long long)t->body_size, c->peer,
		    (unsigned long long)c->ext.size);
		results_fill(c, 552, reply);
		struct timeval now = { 0, 0 };
		if (c->post == NULL)
			c->post = evtimer_new(c->base, post_cb, c);
		evtimer_add(c->post, &now);
		enter(c, CS_RSET); /* not ready until the result is delivered */
		return 0;
	}
	set_timeout(c, c->set.command_timeout_ms);
	send_mail(c);
	if (c->pipelined) {
		/* RFC 2920: MAIL, every RCPT and DATA in one write. */
		for (size_t i = 0; i < t->nrcpt; i++)
			send_rcpt(c, i);
		send_line(c, "DATA");
	}
	conn_flush(c->conn);
	enter(c, CS_MAIL);
	return 0;
}

/* The reply to a RCPT: the recipient's result unless MAIL failed. */
static void
rcpt_reply(struct smtp_client *c, const struct smtp_reply *r, const char *text)
{
	size_t i = c->rcpt_replies++;

	if (c->mail_failed || i >= c->txn.nrcpt)
		return;
	if (r->code / 100 == 2) {
		c->accepted++;
		return; /* decided by the reply after the message */
	}
	result_set(c, i, r->code, text);
}

/* The final reply to the message: every accepted recipient gets it. */
static void
dot_reply(struct smtp_client *c, const struct smtp_reply *r, const char *text)
{
	for (size_t i = 0; i < c->txn.nrcpt; i++) {
		if (c->final[i])
			continue;
		result_set(c, i, r->code, text);
		c->res[i].relayed = r->code / 100 == 2 && !c->ext.dsn &&
		    (c->txn.rcpts[i].notify & DSN_NOTIFY_SUCCESS) != 0;
	}
}

/* The one function that changes the protocol state: one complete reply. */
static void
smtp_client_state(struct smtp_client *c, const struct smtp_reply *r)
{
	char text[SMTP_CLIENT_REPLY_MAX];
	int cls = r->code / 100;

	reply_text(r, text, sizeof(text));
	switch (c->state) {
	case CS_GREETING:
		if (cls != 2) {
			target_failed(c, r->code, "%s refused to talk to us: %s", c->peer, text);
			return;
		}
		c->greeted = true;
		send_ehlo(c);
		break;
	case CS_EHLO:
		if (cls == 2) {
			smtp_ehlo_parse(r, &c->ext);
			after_hello(c);
		} else if (cls == 5) {
			send_line(c, "HELO %s", c->helo); /* RFC 5321 §3.2 */
			enter(c, CS_HELO);
		} else {
			target_failed(c, r->code, "%s said to EHLO: %s", c->peer, text);
			return;
		}
		break;
	case CS_HELO:
		if (cls != 2) {
			target_failed(c, r->code, "%s said to HELO: %s", c->peer, text);
			return;
		}
		memset(&c->ext, 0, sizeof(c->ext));
		after_hello(c);
		break;
	case CS_STARTTLS:
		if (r->code == 220) {
			enter(c, CS_HANDSHAKE);
			conn_starttls_client(c->conn, c->set.tls_ctx, c->targets[c->ti].host,
			    c->set.tls == SMTP_CLIENT_TLS_VERIFY ? c->targets[c->ti].host : NULL);
			return;
		}
		if (tls_required(c)) {
			target_failed(c, r->code < 500 ? r->code : 421, "4.7.4 %s refused STARTTLS: %s",
			    c->peer, text);
			return;
		}
		/* RFC 3207 §4: go on without TLS (AUTH first when asked for) */
		if (c->set.auth_mechs != 0)
			auth_start(c);
		else
			ready(c);
		if (c->conn != NULL)
			conn_flush(c->conn);
		return;
	case CS_AUTH:
		if (r->code == 235) {
			auth_forget(c); /* the secret is not needed on this connection again */
			trace(c, '*', "authenticated with %s", c->auth_mech);
			ready(c);
			return;
		}
		if (r->code == 334) {
			auth_challenge(c, r);
			break;
		}
		auth_refused(c, r, text);
		return;
	case CS_AUTH_CANCEL:
		auth_clear(c);
		c->auth_mech = NULL;
		target_failed(c, 454, "4.7.0 %s sent an authentication challenge we cannot answer "
		    "(then: %s)", c->peer, text);
		return;
	case CS_QUIT:
		enter(c, CS_DEAD);
		conn_close(&c->conn);
		emit(c, SMTP_CLIENT_DONE, NULL, 0, true, r->code, text);
		return;
	case CS_MAIL:
		if (cls != 2) {
			c->mail_failed = true;
			results_fill(c, r->code, text);
			if (!c->pipelined) {
				txn_abort(c);
				break;
			}
		} else if (!c->pipelined) {
			send_rcpt(c, 0);
		}
		enter(c, CS_RCPT);
		break;
	case CS_RCPT:
		rcpt_reply(c, r, text);
		if (c->rcpt_replies < c->txn.nrcpt) {
			if (!c->pipelined)
				send_rcpt(c, c->rcpt_replies);
			break;
		}
		if (!c->pipelined) {
			if (c->accepted == 0) {
				txn_abort(c);
				break;
			}
			send_line(c, "DATA");
		}
		enter(c, CS_DATA);
		break;
	case CS_DATA:
		if (r->code == 354 && c->accepted > 0 && !c->mail_failed) {
			body_start(c);
			return;
		}
		if (r->code == 354) {
			/* RFC 2920 §3.1: nothing was accepted, send an empty message. */
			send_line(c, ".");
			enter(c, CS_DOT_DISCARD);
			break;
		}
		results_fill(c, r->code, text);
		txn_abort(c);
		break;
	case CS_DOT:
		dot_reply(c, r, text);
		txn_finish(c, false);
		return;
	case CS_DOT_DISCARD:
		results_fill(c, r->code, text);
		txn_abort(c);
		break;
	case CS_RSET:
		txn_finish(c, false);
		return;
	case CS_READY:
	case CS_CONNECTING:
	case CS_HANDSHAKE:
	case CS_BODY:
	case CS_DEAD:
		/* A reply nobody asked for (a 421 while idle, say): the server
		 * is going away. */
		log_info("event=client_unexpected_reply peer=%s state=%s reply=\"%s\"", c->peer,
		    cstate_names[c->state], text);
		conn_free(&c->conn);
		if (c->state == CS_READY) {
			enter(c, CS_DEAD);
			emit(c, SMTP_CLIENT_FAILED, NULL, 0, true, 421, text);
		} else if (c->res != NULL) {
			results_fill(c, cls == 5 ? r->code : 421, text);
			enter(c, CS_DEAD);
			txn_finish(c, true);
		} else {
			target_failed(c, r->code, "%s", text);
		}
		return;
	}
	if (c->conn != NULL) /* a target may have been given up above */
		conn_flush(c->conn);
}

/* --- connection events --- */

static void
conn_lost(struct smtp_client *c, const char *why)
{
	char reply[SMTP_CLIENT_REPLY_MAX];

	switch (c->state) {
	case CS_CONNECTING:
		target_failed(c, 421, "4.4.1 cannot connect to %s: %s", c->peer, why);
		return;
	case CS_HANDSHAKE:
		if (c->set.tls == SMTP_CLIENT_TLS_MAY && !c->no_tls) {
			/* Opportunistic TLS failed: the same server once more in
			 * plaintext (RFC 7435), as Postfix does. */
			log_info("event=client_tls_failed peer=%s error=\"%s\" action=retry_plaintext",
			    c->peer, why);
			c->retry_same = true;
			c->no_tls = true;
		}
		c->tls_up = false;
		target_failed(c, 421, "4.7.5 TLS handshake with %s failed: %s", c->peer, why);
		return;
	case CS_GREETING:
	case CS_EHLO:
	case CS_HELO:
	case CS_STARTTLS:
	case CS_AUTH:
	case CS_AUTH_CANCEL:
		auth_clear(c);
		target_failed(c, 421, "4.4.2 lost connection with %s during the greeting: %s",
		    c->peer, why);
		return;
	case CS_QUIT:
		conn_free(&c->conn);
		enter(c, CS_DEAD);
		emit(c, SMTP_CLIENT_DONE, NULL, 0, true, 0, why);
		return;
	case CS_READY:
		conn_free(&c->conn);
		enter(c, CS_DEAD);
		snprintf(reply, sizeof(reply), "4.4.2 lost connection with %s: %s", c->peer, why);
		emit(c, SMTP_CLIENT_FAILED, NULL, 0, true, 421, reply);
		return;
	case CS_DEAD:
		return;
	default:
		break;
	}
	snprintf(reply, sizeof(reply), "4.4.2 lost connection with %s while sending %s: %s",
	    c->peer, cstate_names[c->state], why);
	conn_free(&c->conn);
	enter(c, CS_DEAD);
	if (c->res != NULL) {
		results_fill(c, 421, reply);
		txn_finish(c, true);
	}
}

static void
client_input(struct smtp_client *c)
{
	char line[SMTP_REPLY_LINE_MAX + 3];
	struct conn_line li;
	struct smtp_reply r;

	while (c->conn != NULL && c->fn != NULL) {
		enum conn_line_result lr = conn_read_line(c->conn, line, SMTP_REPLY_LINE_MAX + 2, &li);
		if (lr == CONN_LINE_NONE)
			return;
		if (lr == CONN_LINE_TOO_LONG) {
			conn_lost(c, "reply line too long");
			return;
		}
		if (c->set.trace != NULL) {
			char shown[SMTP_REPLY_LINE_MAX + 3];
			for (size_t i = 0; i <= li.len; i++) {
				unsigned char ch = (unsigned char)line[i];
				shown[i] = i == li.len ? '\0' : ch < 0x20 || ch > 0x7e ? '?' : (char)ch;
			}
			c->set.trace(c->set.trace_arg, '<', shown);
		}
		switch (smtp_reply_parser_line(&c->parser, line, li.len, &r)) {
		case SMTP_REPLY_MORE:
			continue;
		case SMTP_REPLY_BAD:
			conn_lost(c, "malformed reply");
			return;
		case SMTP_REPLY_DONE:
			smtp_client_state(c, &r);
			break;
		}
	}
}

static void
client_conn_cb(struct conn *conn, enum conn_event ev, void *arg)
{
	struct smtp_client *c = arg;

	c->depth++;
	switch (ev) {
	case CONN_EV_CONNECTED:
		set_timeout(c, c->set.command_timeout_ms);
		smtp_reply_parser_init(&c->parser);
		c->tls_up = false;
		c->greeted = false;
		trace(c, '*', "connected to %s", c->peer);
		if (c->set.implicit_tls && c->set.tls_ctx != NULL) {
			/* RFC 8314: TLS from the first octet, then the greeting. */
			enter(c, CS_HANDSHAKE);
			conn_starttls_client(c->conn, c->set.tls_ctx, c->targets[c->ti].host,
			    c->set.tls == SMTP_CLIENT_TLS_VERIFY ? c->targets[c->ti].host : NULL);
			break;
		}
		if (c->set.implicit_tls) {
			target_failed(c, 421, "4.7.5 no TLS context for implicit TLS to %s", c->peer);
			break;
		}
		enter(c, CS_GREETING);
		break;
	case CONN_EV_TLS_READY: {
		char desc[128];
		c->tls_up = true;
		conn_tls_describe(c->conn, desc, sizeof(desc));
		trace(c, '*', "TLS established: %s (certificate %s)", desc,
		    conn_tls_verified(c->conn) ? "verified" : "not verified");
		if (!c->greeted) {
			enter(c, CS_GREETING);
			break;
		}
		send_ehlo(c); /* RFC 3207 §4.2: everything learnt before is forgotten */
		conn_flush(c->conn);
		break;
	}
	case CONN_EV_INPUT:
		client_input(c);
		break;
	case CONN_EV_WRITABLE:
		if (c->state == CS_BODY)
			body_fill(c);
		break;
	case CONN_EV_TIMEOUT:
	case CONN_EV_DEADLINE:
		conn_lost(c, c->state == CS_CONNECTING ? "connect timed out" : "timed out");
		break;
	case CONN_EV_EOF:
		conn_lost(c, "connection closed by the server");
		break;
	case CONN_EV_ERROR:
		conn_lost(c, conn_error(conn));
		break;
	}
	c->depth--;
	if (c->free_requested && c->depth == 0)
		client_destroy(c);
}

const char *
smtp_client_peer(const struct smtp_client *c)
{
	return c->peer;
}

const char *
smtp_client_host(const struct smtp_client *c)
{
	return c->ti < c->ntargets ? c->targets[c->ti].host : "";
}

bool
smtp_client_tls(const struct smtp_client *c, char *buf, size_t size)
{
	if (!c->tls_up || c->conn == NULL) {
		buf[0] = '\0';
		return false;
	}
	conn_tls_describe(c->conn, buf, size);
	return true;
}

int
smtp_client_quit(struct smtp_client *c)
{
	if (c->state != CS_READY || c->conn == NULL)
		return -1;
	send_line(c, "QUIT");
	conn_flush(c->conn);
	enter(c, CS_QUIT);
	return 0;
}

static void
client_destroy(struct smtp_client *c)
{
	auth_forget(c);
	free(c->auth_user);
	if (c->conn != NULL) {
		if (c->state == CS_READY)
			send_line(c, "QUIT");
		conn_close(&c->conn);
	}
	if (c->post != NULL)
		event_free(c->post);
	txn_clear(c);
	free(c->targets);
	free(c);
}

void
smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	c->fn = NULL;
	c->set.trace = NULL; /* its owner is going too */
	if (c->depth > 0) {
		c->free_requested = true;
		return;
	}
	client_destroy(c);
}
