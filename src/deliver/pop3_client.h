/* pop3_client.h: a POP3 login, for POP-before-SMTP (MISSION C4; the
 * alternative seed 000 describes): connect (POP3S: TLS first), read the
 * greeting, STLS when asked for (RFC 2595), USER/PASS (RFC 1939) or, when
 * USER is refused, AUTH PLAIN (RFC 5034), then QUIT. A relay that allows
 * POP-before-SMTP then lets SMTP from the same address relay for a while.
 * On lib/conn; the targets are tried in turn until one logs us in, or one
 * refuses the login (a wrong password is the same everywhere). */
#ifndef TEGAMI_POP3_CLIENT_H
#define TEGAMI_POP3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "deliver/route.h"

struct event_base;
struct ssl_ctx_st;
struct pop3_client;

enum pop3_client_tls {
	POP3_CLIENT_TLS_NONE,
	POP3_CLIENT_TLS_STLS,      /* required: no login without it */
	POP3_CLIENT_TLS_POP3S,     /* implicit TLS */
};

/* One line of the dialogue, as smtp_client's trace ('>' sent, '<'
 * received, '*' an event); the password arrives as "****". */
typedef void pop3_client_trace_fn(void *arg, char dir, const char *line);

struct pop3_client_settings {
	enum pop3_client_tls tls;
	bool tls_verify;                  /* chain and host name checked */
	struct ssl_ctx_st *tls_ctx;
	const char *user;                 /* copied */
	const char *password;             /* copied, wiped when the client ends */
	unsigned timeout_ms;              /* connect, and each reply */
	const char *source_ip;            /* local address (the one SMTP will use), or NULL */
	pop3_client_trace_fn *trace;
	void *trace_arg;
};

/* The login is over: ok, or error (one line: what failed, with the
 * server's answer when it gave one; refused tells that the server said
 * -ERR to the login itself). Called once, from the event loop, never from
 * inside pop3_client_start(); the owner may free the client in it. */
typedef void pop3_client_fn(void *arg, bool ok, bool refused, const char *error);

/* Starts the login on targets[0..n) in turn. Never fails: every problem
 * arrives through fn. */
struct pop3_client *pop3_client_start(struct event_base *base,
    const struct pop3_client_settings *s, const struct route_target *targets, size_t n,
    pop3_client_fn *fn, void *arg);

/* Ends the client (no callback afterwards); sets *cp to NULL. */
void pop3_client_free(struct pop3_client **cp);

#endif
