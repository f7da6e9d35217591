/* pop3_server.h: the POP3 service (MISSION P1-P3): listeners for POP3 (STLS)
 * and POP3S, connection limits, and the sessions they accept. It shares the
 * TLS context, the credential checks and the dynamic screen with SMTP. */
#ifndef TEGAMI_POP3_SERVER_H
#define TEGAMI_POP3_SERVER_H

#include <stddef.h>

struct event_base;
struct config;
struct directory;
struct workers;
struct auth_service;
struct screen;
struct ssl_ctx_st;
struct pop3_server;

enum pop3_listener_kind {
	POP3_LISTENER_PLAIN,
	POP3_LISTENER_TLS,
	POP3_LISTENER_KINDS
};

struct pop3_server_deps {
	struct event_base *base;
	const struct config *cfg;
	struct directory *dir;
	struct workers *workers;
	struct auth_service *auth;
	struct screen *screen;
	const char *mail_root;
};

struct pop3_server *pop3_server_create(const struct pop3_server_deps *deps);
/* (Re)binds pop3.listen and pop3s.listen (not pop3s with pop3.alwssl=none).
 * 0, or -1 with *error_r; the previous listeners then stay. */
int pop3_server_listen(struct pop3_server *srv, const char **error_r);
void pop3_server_describe(const struct pop3_server *srv, enum pop3_listener_kind kind,
    char *buf, size_t size);
/* The TLS context for STLS and POP3S (NULL: none); takes a reference. */
void pop3_server_set_tls(struct pop3_server *srv, struct ssl_ctx_st *ctx);
/* Sessions open now (for the service manager's status line). */
size_t pop3_server_sessions(const struct pop3_server *srv);
void pop3_server_destroy(struct pop3_server **srvp);

#endif
