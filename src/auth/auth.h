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

/* What a check found (RFC 4954 §6 names the replies). */
enum auth_result {
	AUTH_OK,        /* the credentials are right */
	AUTH_FAILED,    /* wrong password, unknown user, no login: 535 5.7.8 */
	AUTH_TEMPFAIL,  /* the directory could not be read: 454 4.7.0 */
	AUTH_MECH_WEAK, /* CRAM-MD5 is turned off for this user: 534 5.7.9 */
};

/* Called once, on the loop thread, never from within auth_check() or
 * auth_verify() itself, and never after auth_request_cancel(). */
typedef void auth_result_fn(void *arg, enum auth_result result);
/* The same, as yes or no: ok only for AUTH_OK. */
typedef void auth_done_fn(void *arg, bool ok);

struct auth_service *auth_service_create(struct event_base *base, struct workers *workers,
    struct directory *dir, const struct config *cfg);
void auth_service_destroy(struct auth_service **ap);

/* Forgets every cached verification (passwords may have changed). */
void auth_service_flush(struct auth_service *a);

/* Starts checking x (copied; the caller may clear it at once). An unknown
 * user, or one without a password, is checked against a dummy hash of the
 * same cost as the real ones, so the answer takes as long as for a known
 * user with a wrong password (user names cannot be found by timing). */
struct auth_request *auth_check(struct auth_service *a, const struct sasl_exchange *x,
    auth_result_fn *done, void *arg);
/* auth_check() with a yes/no answer (POP3). */
struct auth_request *auth_verify(struct auth_service *a, const struct sasl_exchange *x,
    auth_done_fn *done, void *arg);

/* The requester went away: done will not be called. */
void auth_request_cancel(struct auth_request *req);

#endif
