/* screen.h: the dynamic screen (MISSION A7). IPs that fail AUTH too often
 * are refused at connect for screen.ban_time seconds. Bans live in the
 * database (table screen) so that `tegami screen list|add|del` sees and edits
 * them; the daemon keeps a copy in memory and re-reads it on reload.
 *
 * In memory the screen keeps one small entry per client address it has
 * something to say about (recent failures, a ban, a POP login). Entries
 * expire (failures after two screen.window spans, bans at their end, POP
 * logins after SCREEN_POP_KEEP), and the table holds at most
 * SCREEN_MAX_ENTRIES of them: when full, the oldest goes first, failure-only
 * entries before POP-login records before bans, so that a client rotating
 * source addresses (an IPv6 /64 holds 2^64) cannot grow memory without
 * bound nor push a ban or a POP record out while cheaper entries remain. */
#ifndef TEGAMI_SCREEN_H
#define TEGAMI_SCREEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct sqlite3;
struct screen;

/* At most this many addresses in memory (about 12 MB). */
#define SCREEN_MAX_ENTRIES 100000
/* A POP login is remembered this long: the longest POP-before-SMTP window
 * the relay rules allow (R1: 65535 minutes). */
#define SCREEN_POP_KEEP (65535 * 60)

/* Reads the bans from db (which must outlive the screen). Aborts on
 * allocation failure. */
struct screen *screen_create(struct sqlite3 *db);
void screen_destroy(struct screen **sp);

/* Addresses held in memory, and the bytes they (and the table) take. */
size_t screen_entries(const struct screen *sc);
size_t screen_memory(const struct screen *sc);

/* Re-reads the bans from the database (after `tegami screen ...`). */
void screen_reload(struct screen *sc);

/* True when ip is banned now. */
bool screen_banned(struct screen *sc, const char *ip);

/* Counts a failed AUTH from ip at now. Returns the number of failures of ip
 * within the last window seconds, this one included. The count is a sliding
 * window estimate in constant memory (two fixed windows, the older weighted
 * by how much of it the last window still covers): exact while the failures
 * fall in one fixed window, never more than one off otherwise. */
unsigned screen_failure(struct screen *sc, const char *ip, time_t now, uint64_t window);

struct config;

/* A failed login from ip (A7), the rule SMTP AUTH and POP3 share: counts it;
 * with screen.enabled and the IP's recent failures at screen.auth_failures,
 * bans the IP for screen.ban_time (reason: what failed) and returns -1;
 * otherwise returns the seconds to wait before the failure reply (one per
 * recent failure, at most auth.fail_delay_max). *recent_r: the IP's recent
 * failures, for the log. */
int screen_login_failed(struct screen *sc, const struct config *cfg, const char *ip,
    const char *reason, unsigned *recent_r);

/* Bans ip until now + seconds, in memory and in the database. */
void screen_ban(struct screen *sc, const char *ip, time_t now, uint64_t seconds,
    const char *reason);

/* MISSION P3: a successful POP3 login from ip at now (for POP-before-SMTP).
 * Passed on to the hook, when one is set. */
void screen_pop_login(struct screen *sc, const char *ip, time_t now);
/* Every login screen_pop_login() records from now on is also handed to
 * fn(arg, ip, at) (auth/poplog: the record on disk). */
void screen_set_pop_hook(struct screen *sc, void (*fn)(void *arg, const char *ip, time_t at),
    void *arg);
/* The time of ip's last POP3 login, 0 if none is known (or it is older than
 * SCREEN_POP_KEEP). */
time_t screen_pop_last(struct screen *sc, const char *ip);

/* --- the admin side (tegami screen), on an open database --- */
int screen_db_add(struct sqlite3 *db, const char *ip, time_t until, const char *reason,
    char **error_r);
int screen_db_del(struct sqlite3 *db, const char *ip, char **error_r);
/* Calls fn for every ban that has not expired; removes the expired ones. */
int screen_db_list(struct sqlite3 *db, void (*fn)(void *arg, const char *ip, time_t until,
    const char *reason), void *arg);

#endif
