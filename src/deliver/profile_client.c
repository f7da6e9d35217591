/* profile_client.c: client settings from the settings table and a server
 * profile (profile_client.h). */
#include "deliver/profile_client.h"

#include <string.h>

#include "conf/profile.h"
#include "conf/settings.h"

void
profile_client_smtp_defaults(const struct config *cfg, struct ssl_ctx_st *tls_ctx,
    struct smtp_client_settings *s)
{
	s->helo = cfg->relay_helo_name[0] != '\0' ? cfg->relay_helo_name : cfg->server_hostname;
	s->tls = strcmp(cfg->relay_tls, "none") == 0 ? SMTP_CLIENT_TLS_NONE :
	    strcmp(cfg->relay_tls, "encrypt") == 0 ? SMTP_CLIENT_TLS_ENCRYPT :
	    strcmp(cfg->relay_tls, "verify") == 0 ? SMTP_CLIENT_TLS_VERIFY : SMTP_CLIENT_TLS_MAY;
	s->tls_ctx = tls_ctx;
	s->connect_timeout_ms = (unsigned)(1000 * cfg->relay_connect_timeout);
	s->command_timeout_ms = (unsigned)(1000 * cfg->relay_command_timeout);
	s->data_timeout_ms = (unsigned)(1000 * cfg->relay_data_timeout);
}

void
profile_client_smtp(const struct profile *p, struct ssl_ctx_st *ctx, const char *secret,
    struct smtp_client_settings *s)
{
	const struct profile_props *pp = &p->props;

	if (pp->helo[0] != '\0')
		s->helo = pp->helo;
	s->tls = p->tls == PROFILE_TLS_NONE ? SMTP_CLIENT_TLS_NONE :
	    p->tls_verify ? SMTP_CLIENT_TLS_VERIFY : SMTP_CLIENT_TLS_ENCRYPT;
	s->implicit_tls = p->tls == PROFILE_TLS_SMTPS;
	s->tls_ctx = ctx;
	if (p->connect_timeout_ms > 0)
		s->connect_timeout_ms = p->connect_timeout_ms;
	if (p->timeout_ms > 0)
		s->command_timeout_ms = p->timeout_ms;
	if (pp->data_timeout_ms > 0)
		s->data_timeout_ms = pp->data_timeout_ms;
	s->no_pipelining = pp->no_pipelining;
	if (p->login == PROFILE_LOGIN_SMTP_AUTH) {
		s->auth_mechs = p->mechs;
		s->auth_user = p->account;
		s->auth_secret = secret;
		s->auth_plaintext_ok = p->tls == PROFILE_TLS_NONE; /* the seed: -t omitted */
	}
}

void
profile_client_pop3(const struct profile *p, const struct config *cfg, struct ssl_ctx_st *ctx,
    const char *secret, struct pop3_client_settings *s)
{
	s->tls = p->pop_tls == PROFILE_POP_TLS_POP3S ? POP3_CLIENT_TLS_POP3S :
	    p->pop_tls == PROFILE_POP_TLS_STLS ? POP3_CLIENT_TLS_STLS : POP3_CLIENT_TLS_NONE;
	s->tls_verify = p->tls_verify;
	s->tls_ctx = ctx;
	s->user = p->pop_account;
	s->password = secret != NULL ? secret : "";
	s->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms :
	    (unsigned)(1000 * cfg->relay_command_timeout);
}
