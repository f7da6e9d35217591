/* screen.h: the dynamic screen (MISSION A7). IPs that fail AUTH too often
 * are refused at connect for screen.ban_time seconds. Bans live in the
 * database (table screen) so that `tegami screen list|add|del` sees and edits
 * them; the daemon keeps a copy in memory and re-reads it on reload. */
#ifndef TEGAMI_SCREEN_H
#define TEGAMI_SCREEN_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct sqlite3;
struct screen;

struct screen *screen_create(struct sqlite3 *db);
void screen_destroy(struct screen **sp);

/* Re-reads the bans from the database (after `tegami screen ...`). */
void screen_reload(struct screen *sc);

/* True when ip is banned now. */
bool screen_banned(struct screen *sc, const char *ip);

/* Counts a failed AUTH from ip at now. Returns the number of failures of ip
 * within window seconds (this one included). */
unsigned screen_failure(struct screen *sc, const char *ip, time_t now, uint64_t window);

/* Bans ip until now + seconds, in memory and in the database. */
struct config;

/* A failed login from ip (A7), the rule SMTP AUTH and POP3 share: counts it;
 * with screen.enabled and the IP's recent failures at screen.auth_failures,
 * bans the IP for screen.ban_time (reason: what failed) and returns -1;
 * otherwise returns the seconds to wait before the failure reply (one per
 * recent failure, at most auth.fail_delay_max). *recent_r: the IP's recent
 * failures, for the log. */
int screen_login_failed(struct screen *sc, const struct config *cfg, const char *ip,
    const char *reason, unsigned *recent_r);

void screen_ban(struct screen *sc, const char *ip, time_t now, uint64_t seconds,
    const char *reason);

/* MISSION P3: a successful POP3 login from ip at now (for POP-before-SMTP). */
void screen_pop_login(struct screen *sc, const char *ip, time_t now);
/* The time of ip's last POP3 login, 0 if none is known. */
time_t screen_pop_last(struct screen *sc, const char *ip);

/* --- the admin side (tegami screen), on an open database --- */
int screen_db_add(struct sqlite3 *db, const char *ip, time_t until, const char *reason,
    char **error_r);
int screen_db_del(struct sqlite3 *db, const char *ip, char **error_r);
/* Calls fn for every ban that has not expired; removes the expired ones. */
int screen_db_list(struct sqlite3 *db, void (*fn)(void *arg, const char *ip, time_t until,
    const char *reason), void *arg);

#endif
