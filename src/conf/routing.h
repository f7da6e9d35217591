/* routing.h: the outbound routing tables (MISSION O1, O5, O6) in SQLite:
 *   hosts        the local host table (seed 002: ホスト・テーブル): names whose
 *                addresses are taken from here instead of DNS
 *   routes       per-domain routes: DOMAIN -> HOST[:PORT] (no MX lookup)
 *   sources      the source address of outgoing connections per sending
 *                domain ("*": every other domain), for NAT (seed 002)
 *   queue_holds  destinations whose queued mail waits (O5, HLDDSTQ)
 * The daemon reads them on the event loop (prepared statements, a few
 * microseconds); `tegami route|hosts|source|queue hold` change them. */
#ifndef TEGAMI_ROUTING_H
#define TEGAMI_ROUTING_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>

struct sqlite3;
struct routing;

#define ROUTING_HOSTS_MAX 16

typedef void routing_row_fn(void *arg, const char *a, const char *b);

struct routing *routing_create(struct sqlite3 *db);
void routing_destroy(struct routing **rp);

/* The route of domain ("HOST[:PORT]") into target. 1 found, 0 none, -1 a
 * database error. */
int routing_route(struct routing *r, const char *domain, char *target, size_t size);
/* The host table's addresses of name (at most max). Returns how many (0:
 * not in the table), or -1 on a database error. */
int routing_hosts(struct routing *r, const char *name, char ips[][INET6_ADDRSTRLEN], size_t max);
/* The source address for mail from sender_domain (its own entry, else
 * "*") into ip. 1 found, 0 none, -1 error. */
int routing_source(struct routing *r, const char *sender_domain, char *ip, size_t size);
/* True when mail for domain is held (O5). */
bool routing_held(struct routing *r, const char *domain);

/* --- admin: each one statement; -1 sets *error_r (free) --- */
int routing_route_set(struct sqlite3 *db, const char *domain, const char *target, char **error_r);
int routing_route_del(struct sqlite3 *db, const char *domain, char **error_r);
int routing_route_list(struct sqlite3 *db, routing_row_fn *fn, void *arg);
int routing_host_add(struct sqlite3 *db, const char *name, const char *ip, char **error_r);
/* ip NULL: every address of name. */
int routing_host_del(struct sqlite3 *db, const char *name, const char *ip, char **error_r);
int routing_host_list(struct sqlite3 *db, routing_row_fn *fn, void *arg);
int routing_source_set(struct sqlite3 *db, const char *domain, const char *ip, char **error_r);
int routing_source_del(struct sqlite3 *db, const char *domain, char **error_r);
int routing_source_list(struct sqlite3 *db, routing_row_fn *fn, void *arg);
int routing_hold_set(struct sqlite3 *db, const char *domain, bool hold, char **error_r);
int routing_hold_list(struct sqlite3 *db, routing_row_fn *fn, void *arg);

#endif
