/* pop3_client.c: a POP3 login for POP-before-SMTP (pop3_client.h). Like
 * smtp_client, one function (pop3_client_state) changes the state, on each
 * response line. */
#include "deliver/pop3_client.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/sasl.h"

#define POP3_LINE_MAX 1024        /* RFC 2449: 512 octets; some servers say more */
#define POP3_OUT_MAX 2048

enum pstate {
	PS_CONNECTING,
	PS_HANDSHAKE,
	PS_GREETING,
	PS_STLS,
	PS_USER,
	PS_PASS,
	PS_AUTH,      /* "AUTH PLAIN" sent: "+ " expected */
	PS_AUTH_RESP, /* the response sent */
	PS_QUIT,
	PS_DONE,
};

struct pop3_client {
	struct event_base *base;
	struct pop3_client_settings set;
	char *user, *password;
	char source_ip[INET6_ADDRSTRLEN];
	struct route_target *targets;
	size_t ntargets, ti;
	struct conn *conn;
	enum pstate state;
	bool greeted, tls_up, tried_auth;
	char peer[ROUTE_NAME_MAX + INET6_ADDRSTRLEN + 16];
	char error[512];
	bool refused;
	pop3_client_fn *fn;
	void *arg;
	struct event *post;       /* the result leaves from the loop */
	bool ok;
};

static void try_target(struct pop3_client *c);
static void client_conn_cb(struct conn *conn, enum conn_event ev, void *arg);

static void
trace(struct pop3_client *c, char dir, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
trace(struct pop3_client *c, char dir, const char *fmt, ...)
{
	char line[POP3_OUT_MAX];
	va_list ap;

	if (c->set.trace == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->set.trace(c->set.trace_arg, dir, line);
}

/* Sends a command; shown is what the trace sees (NULL: the line itself). */
static void
send_cmd(struct pop3_client *c, const char *shown, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
send_cmd(struct pop3_client *c, const char *shown, const char *fmt, ...)
{
	char line[POP3_OUT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	trace(c, '>', "%s", shown != NULL ? shown : line);
	conn_printf(c->conn, sizeof(line), "%s", line);
	conn_flush(c->conn);
	OPENSSL_cleanse(line, sizeof(line));
}

static void
post_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_client *c = arg;
	pop3_client_fn *fn = c->fn;

	c->fn = NULL;
	if (fn != NULL)
		fn(c->arg, c->ok, c->refused, c->error);
}

/* The outcome is known: the owner hears it from the loop. */
static void
finish(struct pop3_client *c, bool ok)
{
	struct timeval now = { 0, 0 };

	c->ok = ok;
	c->state = PS_DONE;
	if (c->conn != NULL)
		conn_close(&c->conn);
	OPENSSL_cleanse(c->password, strlen(c->password));
	if (c->post == NULL)
		c->post = evtimer_new(c->base, post_cb, c);
	evtimer_add(c->post, &now);
}

/* This target cannot be used: the next one, or the end. */
static void
target_failed(struct pop3_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
target_failed(struct pop3_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	log_info("event=pop3_client_failed peer=%s error=\"%s\"", c->peer, c->error);
	conn_free(&c->conn);
	c->ti++;
	try_target(c);
}

static void
try_target(struct pop3_client *c)
{
	const char *error = NULL;

	for (; c->ti < c->ntargets; c->ti++) {
		const struct route_target *t = &c->targets[c->ti];
		snprintf(c->peer, sizeof(c->peer), "%s[%s]:%u", t->host, t->ip, t->port);
		c->state = PS_CONNECTING;
		c->greeted = false;
		c->tls_up = false;
		c->tried_auth = false;
		trace(c, '*', "connecting to %s", c->peer);
		c->conn = conn_connect_ip(c->base, t->ip, t->port, c->source_ip, c->set.timeout_ms,
		    client_conn_cb, c, &error);
		if (c->conn != NULL)
			return;
		snprintf(c->error, sizeof(c->error), "cannot connect to %s: %s", c->peer, error);
	}
	if (c->error[0] == '\0')
		snprintf(c->error, sizeof(c->error), "no address of the POP3 server to connect to");
	finish(c, false);
}

struct pop3_client *
pop3_client_start(struct event_base *base, const struct pop3_client_settings *s,
    const struct route_target *targets, size_t n, pop3_client_fn *fn, void *arg)
{
	struct pop3_client *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->set = *s;
	c->user = xstrdup(s->user != NULL ? s->user : "");
	c->password = xstrdup(s->password != NULL ? s->password : "");
	c->set.user = NULL;
	c->set.password = NULL;
	if (s->source_ip != NULL)
		str_copy(c->source_ip, s->source_ip, sizeof(c->source_ip));
	c->set.source_ip = NULL;
	c->targets = xcalloc(n > 0 ? n : 1, sizeof(*c->targets));
	memcpy(c->targets, targets, n * sizeof(*targets));
	c->ntargets = n;
	c->fn = fn;
	c->arg = arg;
	try_target(c);
	return c;
}

static void
start_tls(struct pop3_client *c)
{
	const char *host = c->targets[c->ti].host;

	c->state = PS_HANDSHAKE;
	conn_starttls_client(c->conn, c->set.tls_ctx, host, c->set.tls_verify ? host : NULL);
}

/* Greeted (and encrypted where asked): log in. */
static void
login(struct pop3_client *c)
{
	if (c->set.tls == POP3_CLIENT_TLS_STLS && !c->tls_up) {
		send_cmd(c, NULL, "STLS");
		c->state = PS_STLS;
		return;
	}
	send_cmd(c, NULL, "USER %s", c->user);
	c->state = PS_USER;
}

/* RFC 5034 AUTH PLAIN, for servers that refuse USER. */
static void
auth_plain(struct pop3_client *c)
{
	c->tried_auth = true;
	send_cmd(c, NULL, "AUTH PLAIN");
	c->state = PS_AUTH;
}

static void
auth_response(struct pop3_client *c)
{
	struct sasl_client x;
	char *out = xmalloc(SASL_CLIENT_OUT_MAX);

	if (sasl_client_start(&x, SASL_MECH_PLAIN, c->user, c->password, out,
	    SASL_CLIENT_OUT_MAX) < 0) {
		send_cmd(c, NULL, "*");
	} else {
		send_cmd(c, "****", "%s", out);
	}
	sasl_client_clear(&x);
	OPENSSL_cleanse(out, SASL_CLIENT_OUT_MAX);
	free(out);
	c->state = PS_AUTH_RESP;
}

static void
refused(struct pop3_client *c, const char *line)
{
	snprintf(c->error, sizeof(c->error), "%s refused the POP3 login: %s", c->peer, line);
	log_info("event=pop3_client_refused peer=%s reply=\"%s\"", c->peer, line);
	c->refused = true;
	send_cmd(c, NULL, "QUIT");
	finish(c, false);
}

/* The one function that changes the state: one response line. */
static void
pop3_client_state(struct pop3_client *c, const char *line)
{
	bool ok = strncmp(line, "+OK", 3) == 0;

	switch (c->state) {
	case PS_GREETING:
		if (!ok) {
			target_failed(c, "%s refused to talk to us: %s", c->peer, line);
			return;
		}
		c->greeted = true;
		login(c);
		return;
	case PS_STLS:
		if (!ok) {
			target_failed(c, "%s refused STLS: %s", c->peer, line);
			return;
		}
		start_tls(c);
		return;
	case PS_USER:
		if (ok) {
			send_cmd(c, "PASS ****", "PASS %s", c->password);
			c->state = PS_PASS;
		} else {
			auth_plain(c);
		}
		return;
	case PS_AUTH:
		if (strncmp(line, "+", 1) != 0 || ok) {
			refused(c, line);
			return;
		}
		auth_response(c);
		return;
	case PS_PASS:
	case PS_AUTH_RESP:
		if (!ok) {
			refused(c, line);
			return;
		}
		trace(c, '*', "logged in");
		send_cmd(c, NULL, "QUIT");
		c->state = PS_QUIT;
		return;
	case PS_QUIT:
		finish(c, true);
		return;
	case PS_CONNECTING:
	case PS_HANDSHAKE:
	case PS_DONE:
		return;
	}
}

static void
client_input(struct pop3_client *c)
{
	char line[POP3_LINE_MAX + 3];
	struct conn_line li;

	while (c->conn != NULL && c->state != PS_DONE) {
		enum conn_line_result lr = conn_read_line(c->conn, line, POP3_LINE_MAX + 2, &li);
		if (lr == CONN_LINE_NONE)
			return;
		if (lr == CONN_LINE_TOO_LONG) {
			target_failed(c, "%s sent a response line too long", c->peer);
			return;
		}
		for (size_t i = 0; i < li.len; i++) {
			if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
				line[i] = '?';
		}
		trace(c, '<', "%s", line);
		pop3_client_state(c, line);
	}
}

static void
conn_lost(struct pop3_client *c, const char *why)
{
	if (c->state == PS_QUIT) {
		finish(c, true); /* logged in; the server just did not answer QUIT */
		return;
	}
	target_failed(c, "%s with %s: %s", c->state == PS_CONNECTING ? "cannot connect" :
	    c->state == PS_HANDSHAKE ? "TLS handshake failed" : "lost the connection", c->peer, why);
}

static void
client_conn_cb(struct conn *conn, enum conn_event ev, void *arg)
{
	struct pop3_client *c = arg;

	switch (ev) {
	case CONN_EV_CONNECTED:
		conn_set_timeout(c->conn, c->set.timeout_ms);
		trace(c, '*', "connected to %s", c->peer);
		if (c->set.tls == POP3_CLIENT_TLS_POP3S)
			start_tls(c);
		else
			c->state = PS_GREETING;
		break;
	case CONN_EV_TLS_READY: {
		char desc[128];
		c->tls_up = true;
		conn_tls_describe(c->conn, desc, sizeof(desc));
		trace(c, '*', "TLS established: %s (certificate %s)", desc,
		    conn_tls_verified(c->conn) ? "verified" : "not verified");
		if (!c->greeted) {
			c->state = PS_GREETING;
		} else {
			login(c);
		}
		break;
	}
	case CONN_EV_INPUT:
		client_input(c);
		break;
	case CONN_EV_WRITABLE:
		break;
	case CONN_EV_TIMEOUT:
	case CONN_EV_DEADLINE:
		conn_lost(c, "timed out");
		break;
	case CONN_EV_EOF:
		conn_lost(c, "connection closed by the server");
		break;
	case CONN_EV_ERROR:
		conn_lost(c, conn_error(conn));
		break;
	}
}

void
pop3_client_free(struct pop3_client **cp)
{
	struct pop3_client *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	conn_free(&c->conn);
	if (c->post != NULL)
		event_free(c->post);
	OPENSSL_cleanse(c->password, strlen(c->password));
	free(c->password);
	free(c->user);
	free(c->targets);
	free(c);
}
