/* smtp_client.h: one outgoing SMTP connection (RFC 5321, MISSION O1), on
 * the connection layer (lib/conn). It knows no spool: the owner hands it
 * transactions (sender, recipients, where the message lies in a file) and
 * gets one result per recipient back.
 *
 * Life of a client:
 *   smtp_client_start() tries the targets in turn until one answers 220
 *     (over TLS from the first octet in implicit-TLS mode), takes EHLO (HELO
 *     as a fallback), STARTTLS when the policy says so, and AUTH when the
 *     settings give mechanisms (MISSION C3: after TLS, never skipped);
 *     then SMTP_CLIENT_READY, or SMTP_CLIENT_FAILED when no target would;
 *   smtp_client_send() while ready: MAIL, RCPT… (pipelined when the server
 *     offers PIPELINING, RFC 2920), DATA, the message dot-stuffed from the
 *     file; then SMTP_CLIENT_DONE with a result per recipient, and ready
 *     again unless `closed` says the connection is gone;
 *   smtp_client_quit() to hear the QUIT reply (SMTP_CLIENT_DONE, closed),
 *   or smtp_client_free() (QUIT first when the connection is usable).
 * All callbacks come from the event loop; the owner must call
 * smtp_client_free() after SMTP_CLIENT_FAILED or a DONE with closed set,
 * and may call it from inside the callback. */
#ifndef TEGAMI_SMTP_CLIENT_H
#define TEGAMI_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "deliver/route.h"

struct event_base;
struct ssl_ctx_st;
struct smtp_client;

#define SMTP_CLIENT_REPLY_MAX 512

enum smtp_client_tls {
	SMTP_CLIENT_TLS_NONE,     /* never STARTTLS */
	SMTP_CLIENT_TLS_MAY,      /* when offered; unverified (RFC 7435); plaintext if it fails */
	SMTP_CLIENT_TLS_ENCRYPT,  /* required; unverified */
	SMTP_CLIENT_TLS_VERIFY,   /* required; chain and host name verified */
};

/* One line of the dialogue: dir '>' sent, '<' received (made printable),
 * '*' an event of ours (connecting, TLS up, authenticated). AUTH payloads
 * never reach it: they arrive as "****". */
typedef void smtp_client_trace_fn(void *arg, char dir, const char *line);

struct smtp_client_settings {
	const char *helo;                 /* our name in EHLO/HELO */
	enum smtp_client_tls tls;         /* with implicit_tls: ENCRYPT or VERIFY */
	bool implicit_tls;                /* SMTPS: TLS before the greeting (RFC 8314) */
	struct ssl_ctx_st *tls_ctx;       /* client context (lib/tls) */
	unsigned connect_timeout_ms;
	unsigned command_timeout_ms;
	unsigned data_timeout_ms;         /* the reply after the final "." */
	const char *source_ip;            /* local address to connect from, or NULL */
	bool no_pipelining;               /* even when the server offers it */
	/* SMTP AUTH (RFC 4954): XOAUTH2 when allowed, else the first of
	 * CRAM-MD5 > LOGIN > PLAIN that both these bits and the server's EHLO
	 * allow. 0: no AUTH. */
	unsigned auth_mechs;              /* SMTP_AUTH_* (mail/smtp_reply.h) */
	const char *auth_user;            /* copied */
	const char *auth_secret;          /* copied; the copy is wiped once AUTH is over */
	bool auth_plaintext_ok;           /* PLAIN, LOGIN, XOAUTH2 without TLS (the admin
	                                     chose no TLS; a warning is logged) */
	smtp_client_trace_fn *trace;      /* NULL: no trace */
	void *trace_arg;
};

struct smtp_client_rcpt {
	const char *addr;
	unsigned notify;                  /* DSN NOTIFY bits (mail/dsn.h) */
	const char *orcpt;                /* DSN ORCPT as received (xtext), or NULL */
};

struct smtp_client_txn {
	const char *sender;               /* "" for <> */
	const char *envid;                /* DSN ENVID as received (xtext), or NULL */
	int ret;                          /* enum dsn_ret */
	bool eightbit;                    /* the message has 8-bit octets: BODY=8BITMIME */
	const struct smtp_client_rcpt *rcpts;
	size_t nrcpt;
	const char *path;                 /* the file holding the message (LF endings) */
	uint64_t body_offset;
	uint64_t body_size;
	/* A header line to add ("X-Mailer: ...", printable, no line end), put
	 * after the message's first header field (our Received), or NULL. */
	const char *add_header;
};

struct smtp_client_result {
	int code;                         /* the reply code that decided (250, 4xx, 5xx) */
	char reply[SMTP_CLIENT_REPLY_MAX];/* one line: "550 5.1.1 ..." or our own diagnostic */
	bool relayed;                     /* accepted by a server that does not speak DSN */
};

enum smtp_client_event {
	SMTP_CLIENT_READY,                /* connected: send a transaction */
	SMTP_CLIENT_DONE,                 /* the transaction is over: results[nrcpt] */
	SMTP_CLIENT_FAILED,               /* no target could be used: error says why */
};

/* ev READY: results NULL. DONE: results per recipient in the transaction's
 * order, closed tells whether the connection is gone. FAILED: code is the
 * deciding reply code (4xx: try later; 5xx: every target refused for
 * good, or the server refused our AUTH: error is then its reply, as the
 * report quotes it), error one line with an enhanced code. */
typedef void smtp_client_fn(void *arg, enum smtp_client_event ev,
    const struct smtp_client_result *results, size_t n, bool closed, int code,
    const char *error);

/* Starts connecting to targets[0..n) in turn. Settings and targets are
 * copied. Never fails: every problem arrives as SMTP_CLIENT_FAILED. */
struct smtp_client *smtp_client_start(struct event_base *base,
    const struct smtp_client_settings *s, const struct route_target *targets, size_t n,
    smtp_client_fn *fn, void *arg);

/* Sends a transaction (strings copied). -1 when the client is not ready. */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_txn *txn);

/* Sends QUIT on a ready client; its reply arrives as SMTP_CLIENT_DONE with
 * no results, closed set, code the reply's (0 when the server just closed).
 * -1 when the client is not ready. */
int smtp_client_quit(struct smtp_client *c);

/* "mx.example.test[192.0.2.1]:25" of the server in use (or last tried). */
const char *smtp_client_peer(const struct smtp_client *c);
/* The server's host name (for Remote-MTA). */
const char *smtp_client_host(const struct smtp_client *c);
/* True once TLS is up; describe into buf ("" without). */
bool smtp_client_tls(const struct smtp_client *c, char *buf, size_t size);

/* Ends the client: QUIT when the connection is usable and idle, then
 * close; no more callbacks. Sets *cp to NULL. */
void smtp_client_free(struct smtp_client **cp);

#endif
