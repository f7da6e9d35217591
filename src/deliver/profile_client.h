/* profile_client.h: what the settings table and an outbound server profile
 * (MISSION O1, X1, C1-C5) make of the SMTP and POP3 clients' settings. The
 * daemon's deliveries (queue/outbound) and `tegami profile test` take them
 * from here, so the test connects the way mail is sent. No I/O. */
#ifndef TEGAMI_PROFILE_CLIENT_H
#define TEGAMI_PROFILE_CLIENT_H

#include "deliver/pop3_client.h"
#include "deliver/smtp_client.h"

struct config;
struct profile;
struct ssl_ctx_st;

/* The relay.* settings: our name, TLS as relay.tls says, the timeouts.
 * tls_ctx, source and the rest are the caller's. */
void profile_client_smtp_defaults(const struct config *cfg, struct ssl_ctx_st *tls_ctx,
    struct smtp_client_settings *s);

/* What profile p changes in s: name, TLS (with ctx, a context for its
 * minimum version), timeouts, pipelining, and AUTH with secret (the
 * plaintext password or token; kept by the caller). */
void profile_client_smtp(const struct profile *p, struct ssl_ctx_st *ctx, const char *secret,
    struct smtp_client_settings *s);

/* The POP-before-SMTP login of p (C4) with secret; the source address and
 * the trace are the caller's. */
void profile_client_pop3(const struct profile *p, const struct config *cfg,
    struct ssl_ctx_st *ctx, const char *secret, struct pop3_client_settings *s);

#endif
