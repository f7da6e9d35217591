/* smtp_server.h: the inbound SMTP service (MISSION S1-S7): listeners,
 * connection limits, and the sessions they accept. */
#ifndef TEGAMI_SMTP_SERVER_H
#define TEGAMI_SMTP_SERVER_H

#include <stddef.h>

struct event_base;
struct config;
struct directory;
struct workers;
struct queue_runner;
struct auth_service;
struct screen;
struct dnsbl;
struct relay_lists;
struct smtp_server;
struct ssl_ctx_st;

/* The three SMTP services (MISSION A2, A3): the MTA port (25), submission
 * (587, STARTTLS) and implicit TLS (465). */
enum smtp_listener_kind {
	SMTP_LISTENER_MTA,
	SMTP_LISTENER_SUBMISSION,
	SMTP_LISTENER_SMTPS,
	SMTP_LISTENER_KINDS
};

/* "smtp", "submission", "smtps". */
const char *smtp_listener_name(enum smtp_listener_kind kind);

struct smtp_server_deps {
	struct event_base *base;
	const struct config *cfg;   /* owned by the daemon, updated in place on reload */
	struct directory *dir;
	struct workers *workers;
	struct queue_runner *queue;
	struct auth_service *auth;
	struct screen *screen;
	struct dnsbl *dnsbl;        /* DNSBL look-ups at connect (R2); NULL: none */
	const char *data_dir;
};

struct smtp_server *smtp_server_create(const struct smtp_server_deps *deps);

/* (Re)binds the listeners of smtp.listen, submission.listen and
 * smtps.listen. Listeners already bound to an address that stays are kept.
 * 0, or -1 with *error_r (static or strerror) when an address cannot be
 * bound; the old listeners then stay. */
int smtp_server_listen(struct smtp_server *srv, const char **error_r);

/* Writes "ADDR:PORT,..." of the bound listeners of one kind into buf. */
void smtp_server_describe(const struct smtp_server *srv, enum smtp_listener_kind kind,
    char *buf, size_t size);

/* Sets the TLS context for new sessions (NULL: no STARTTLS, and the SMTPS
 * listener refuses connections). Takes a reference of its own. */
void smtp_server_set_tls(struct smtp_server *srv, struct ssl_ctx_st *ctx);
/* The current TLS context, or NULL when TLS is not available. */
struct ssl_ctx_st *smtp_server_tls(struct smtp_server *srv);

size_t smtp_server_sessions(const struct smtp_server *srv);

/* The relay-control lists from now on (R1, R2; conf/relaylists.h): takes
 * lists and frees the previous ones. Until the first call, all are empty. */
void smtp_server_set_relay_lists(struct smtp_server *srv, struct relay_lists *lists);

/* Closes the listeners and every session; in-flight spool writes finish and
 * their replies are dropped (the client was never acknowledged). */
void smtp_server_destroy(struct smtp_server **srvp);

#endif
