/* auth.h: checks the credentials a SASL exchange collected (MISSION A1, A8),
 * for SMTP now and POP3 next. PLAIN and LOGIN passwords are verified against
 * the yescrypt hash on a worker thread (it takes tens of milliseconds); a
 * verified password is remembered as HMAC-SHA256(process key, password) for
 * auth.cache_ttl seconds, bound to the stored hash, so a changed password
 * never matches the cache. CRAM-MD5 is checked on the loop (microseconds). */
#ifndef TEGAMI_AUTH_H
#define TEGAMI_AUTH_H

#include <stdbool.h>

struct event_base;
struct workers;
struct directory;
struct config;
struct sasl_exchange;
struct auth_service;
struct auth_request;

/* ok: the credentials are right. Called once, on the loop thread, never from
 * within auth_verify() itself, and never after auth_request_cancel(). */
typedef void auth_done_fn(void *arg, bool ok);

struct auth_service *auth_service_create(struct event_base *base, struct workers *workers,
    struct directory *dir, const struct config *cfg);
void auth_service_destroy(struct auth_service **ap);

/* Forgets every cached verification (passwords may have changed). */
void auth_service_flush(struct auth_service *a);

/* Starts checking x (copied; the caller may clear it at once). */
struct auth_request *auth_verify(struct auth_service *a, const struct sasl_exchange *x,
    auth_done_fn *done, void *arg);

/* The requester went away: done will not be called. */
void auth_request_cancel(struct auth_request *req);

#endif
