#include "lib/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "tegami";
static enum log_level log_threshold = LOG_LEVEL_INFO;
/* Read by every thread that logs, changed by the loop thread on a reload. */
static enum log_target log_dest = LOG_TARGET_STDERR;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* syslog(3) priority of each level, also the journal's "<N>" prefix. */
static const int level_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
static const char *const target_names[] = { "auto", "stderr", "journal", "syslog" };

/* True when fd 2 is the stream systemd connected to the journal: systemd
 * names that stream's device and inode in $JOURNAL_STREAM ("DEV:INODE"); if
 * stderr was redirected since (a shell, a test harness), they differ
 * (systemd.exec(5), "$JOURNAL_STREAM"). */
static bool
stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char extra;

	if (env == NULL || sscanf(env, "%llu:%llu%c", &dev, &ino, &extra) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *progname, enum log_level level)
{
	log_progname = progname;
	log_threshold = level;
	log_set_target(LOG_TARGET_AUTO);
}

void
log_set_target(enum log_target target)
{
	enum log_target old = __atomic_load_n(&log_dest, __ATOMIC_ACQUIRE);

	if (target == LOG_TARGET_AUTO)
		target = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
	if (target == old)
		return;
	/* LOG_NDELAY: connect now, while the socket is surely reachable. */
	if (target == LOG_TARGET_SYSLOG)
		openlog(log_progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
	__atomic_store_n(&log_dest, target, __ATOMIC_RELEASE);
	if (old == LOG_TARGET_SYSLOG)
		closelog();
}

enum log_target
log_get_target(void)
{
	return __atomic_load_n(&log_dest, __ATOMIC_ACQUIRE);
}

int
log_target_parse(const char *s, enum log_target *target_r)
{
	for (size_t i = 0; i < sizeof(target_names) / sizeof(target_names[0]); i++) {
		if (strcmp(s, target_names[i]) == 0) {
			*target_r = (enum log_target)i;
			return 0;
		}
	}
	return -1;
}

void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level
log_get_level(void)
{
	return log_threshold;
}

int
log_level_parse(const char *s, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* What precedes "level=...": the time and the program for a terminal or a
 * file; the priority for the journal, which stamps time, name and pid
 * itself; nothing for syslog, which does the same. Returns the length, as
 * snprintf. */
static int
log_header(enum log_target target, enum log_level level, char *buf, size_t size)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;

	if (target == LOG_TARGET_JOURNAL)
		return snprintf(buf, size, "<%d>level=%s ", level_priorities[level],
		    level_names[level]);
	if (target == LOG_TARGET_SYSLOG)
		return snprintf(buf, size, "level=%s ", level_names[level]);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	return snprintf(buf, size, "%s.%03ldZ %s[%ld]: level=%s ", stamp,
	    ts.tv_nsec / 1000000, log_progname, (long)getpid(), level_names[level]);
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap, const char *suffix)
	__attribute__((format(printf, 2, 0)));

static void
log_vwrite(enum log_level level, const char *fmt, va_list ap, const char *suffix)
{
	char line[2048];
	enum log_target target = log_get_target();
	int n = log_header(target, level, line, sizeof(line));

	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n = (size_t)(n + m) >= sizeof(line) - 1 ? (int)sizeof(line) - 2 : n + m;
	if (suffix != NULL) {
		m = snprintf(line + n, sizeof(line) - (size_t)n, " error=\"%s\"", suffix);
		if (m > 0)
			n = (size_t)(n + m) >= sizeof(line) - 1 ? (int)sizeof(line) - 2 : n + m;
	}
	if (target == LOG_TARGET_SYSLOG) {
		line[n] = '\0';
		syslog(level_priorities[level], "%s", line);
		return;
	}
	line[n++] = '\n';
	/* One write(2) per line so that lines from threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_threshold)
		return;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, NULL);
	va_end(ap);
	abort();
}
