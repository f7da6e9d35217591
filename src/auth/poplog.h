/* poplog.h: the POP-before-SMTP record on disk (MISSION P3, R1). Every
 * successful POP3 login is remembered by the dynamic screen in memory
 * (screen_pop_login); this module makes the record survive a restart.
 *
 * The record lives in DATA/poplogins.db, one row per client address (the
 * time of its last login), apart from the settings database: the daemon
 * reloads its settings whenever another connection commits to tegami.db,
 * and these writes must not look like an admin's change. Writes stay off
 * the event loop: logins are collected in memory and written once a second
 * at most, in one transaction, by a job on lib/workers (its own SQLite
 * connection, used by one job at a time). A crash loses at most the logins
 * of that last second; a stop writes what is left. At start the newest
 * SCREEN_MAX_ENTRIES logins of the last POPLOG_KEEP seconds are read back. */
#ifndef TEGAMI_POPLOG_H
#define TEGAMI_POPLOG_H

#include <stddef.h>
#include <time.h>

struct event_base;
struct workers;
struct poplog;

/* The longest POP-before-SMTP window (R1: 65535 minutes); older rows go. */
#define POPLOG_KEEP (65535 * 60)
/* Logins waiting to be written; past it new ones are dropped (and logged). */
#define POPLOG_PENDING_MAX 100000

/* Opens (creating) DATA/poplogins.db. NULL with *error_r (free). */
struct poplog *poplog_open(const char *data_dir, char **error_r);
/* Calls fn for each remembered login (oldest first), then drops rows older
 * than POPLOG_KEEP and all but the newest SCREEN_MAX_ENTRIES. Before
 * poplog_start. Returns the number of logins read, or -1. */
int poplog_load(struct poplog *pl, void (*fn)(void *arg, const char *ip, time_t at),
    void *arg);
/* From now on writes go through workers (which must outlive the next
 * poplog_close) and a timer on base. */
void poplog_start(struct poplog *pl, struct event_base *base, struct workers *workers);
/* Remembers a login of ip at time at, written within a second. */
void poplog_note(struct poplog *pl, const char *ip, time_t at);
/* Writes what is still pending on the calling thread (once the workers are
 * gone) and closes. Sets *plp to NULL. */
void poplog_close(struct poplog **plp);

#endif
