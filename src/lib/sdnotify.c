#include "lib/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The longest state we send; the protocol itself has no small limit. */
#define SDNOTIFY_STATE_MAX 4096

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;

/* Fills notify_addr from the variable's value: "/path" as is, "@name" as an
 * abstract name (a leading NUL byte instead of the '@'). 0 or -1. */
static int
address_parse(const char *value, char *err, size_t errsize)
{
	size_t len = strlen(value);

	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	if (value[0] != '/' && value[0] != '@') {
		snprintf(err, errsize, "NOTIFY_SOCKET=%.200s: neither an absolute path nor "
		    "an abstract name ('@')", value);
		return -1;
	}
	if (len >= sizeof(notify_addr.sun_path)) {
		snprintf(err, errsize, "NOTIFY_SOCKET: %zu bytes, longer than a socket address",
		    len);
		return -1;
	}
	memcpy(notify_addr.sun_path, value, len);
	if (value[0] == '@')
		notify_addr.sun_path[0] = '\0'; /* abstract: the length bounds the name */
	else
		len++; /* a path includes its NUL, as the kernel's own addresses do */
	notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	return 0;
}

int
sdnotify_init(char *err, size_t errsize)
{
	const char *env = getenv("NOTIFY_SOCKET");
	char value[sizeof(notify_addr.sun_path) + 1];
	size_t len;

	if (env == NULL || env[0] == '\0')
		return 0;
	len = strlen(env);
	/* Copied before unsetenv: the variable's storage is not ours to keep. */
	snprintf(value, sizeof(value), "%s", env);
	unsetenv("NOTIFY_SOCKET");
	if (len >= sizeof(value)) {
		snprintf(err, errsize, "NOTIFY_SOCKET: %zu bytes, longer than a socket address", len);
		return -1;
	}
	if (address_parse(value, err, errsize) < 0)
		return -1;
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0) {
		snprintf(err, errsize, "NOTIFY_SOCKET: socket: %s", strerror(errno));
		return -1;
	}
	return 1;
}

bool
sdnotify_enabled(void)
{
	return notify_fd >= 0;
}

int
sdnotify_send(const char *state)
{
	if (notify_fd < 0)
		return 0;
	/* One datagram per state: the manager reads it whole or not at all.
	 * MSG_NOSIGNAL: a vanished manager is an error here, not a SIGPIPE. */
	ssize_t n = sendto(notify_fd, state, strlen(state), MSG_NOSIGNAL,
	    (const struct sockaddr *)&notify_addr, notify_addrlen);
	return n < 0 ? -1 : 0;
}

int
sdnotify_sendf(const char *fmt, ...)
{
	char state[SDNOTIFY_STATE_MAX];
	va_list ap;
	int n;

	if (notify_fd < 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(state, sizeof(state), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(state)) {
		errno = EMSGSIZE;
		return -1;
	}
	return sdnotify_send(state);
}

int
sdnotify_reloading(void)
{
	struct timespec ts;

	if (notify_fd < 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return sdnotify_sendf("RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

void
sdnotify_close(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}
