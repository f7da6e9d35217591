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
struct smtp_server;

struct smtp_server_deps {
	struct event_base *base;
	const struct config *cfg;   /* owned by the daemon, updated in place on reload */
	struct directory *dir;
	struct workers *workers;
	struct queue_runner *queue;
	const char *data_dir;
	const char *queue_dir;
};

struct smtp_server *smtp_server_create(const struct smtp_server_deps *deps);

/* (Re)binds the listeners of cfg->smtp_listen. Listeners already bound to an
 * address that stays are kept. 0, or -1 with *error_r (static or strerror)
 * when an address cannot be bound; the old listeners then stay. */
int smtp_server_listen(struct smtp_server *srv, const char **error_r);

/* Writes "ADDR:PORT, ..." of the bound listeners into buf. */
void smtp_server_describe(const struct smtp_server *srv, char *buf, size_t size);

size_t smtp_server_sessions(const struct smtp_server *srv);

/* Closes the listeners and every session; in-flight spool writes finish and
 * their replies are dropped (the client was never acknowledged). */
void smtp_server_destroy(struct smtp_server **srvp);

#endif
