/* log.h: one key=value line per event, to stderr (the daemon runs in the
 * foreground; a supervisor or the shell collects it), or to syslog(3) when
 * the admin asks. When stderr is the systemd journal each line starts with
 * its syslog priority, "<6>level=info event=...", which journald turns into
 * the entry's priority (sd-daemon(3)); the journal adds time and pid itself.
 * Secrets never go here. */
#ifndef TEGAMI_LOG_H
#define TEGAMI_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

/* Where lines go (the setting log.target). */
enum log_target {
	LOG_TARGET_AUTO = 0, /* JOURNAL when stderr is the journal ($JOURNAL_STREAM), else STDERR */
	LOG_TARGET_STDERR,   /* "TIME PROG[PID]: level=... ..." on stderr */
	LOG_TARGET_JOURNAL,  /* "<N>level=... ..." on stderr, N the syslog priority */
	LOG_TARGET_SYSLOG,   /* syslog(3), facility mail, "level=... ..." */
};

/* Sets the program name printed on each line and the most verbose level
 * shown; the target is LOG_TARGET_AUTO. */
void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "error", "warn", "info" or "debug"; returns -1 on anything else. */
int log_level_parse(const char *s, enum log_level *level_r);

/* Sends the following lines to target (AUTO: decided again now). Call from
 * the thread that owns the process (the event loop): switching to or from
 * SYSLOG opens or closes the syslog connection. */
void log_set_target(enum log_target target);
/* The target in use (never AUTO: what AUTO decided). */
enum log_target log_get_target(void);
/* Parses "auto", "stderr", "journal" or "syslog"; returns -1 on anything else. */
int log_target_parse(const char *s, enum log_target *target_r);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Unrecoverable environment failure: logs with strerror(errno) and exits 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A bug or a condition that must not happen: logs and aborts. */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
