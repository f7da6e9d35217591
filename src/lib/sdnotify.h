/* sdnotify.h: telling the service manager how the daemon is doing (the
 * sd_notify(3) protocol, spoken directly: it is one datagram of
 * newline-separated KEY=VALUE lines, e.g. "READY=1\nSTATUS=serving", sent to
 * the AF_UNIX datagram socket named by $NOTIFY_SOCKET: a file system path,
 * or an abstract-namespace name when it starts with '@'). Without that
 * variable every call does nothing, so a daemon started by hand or by the
 * tests behaves as before. No mail knowledge here. */
#ifndef TEGAMI_SDNOTIFY_H
#define TEGAMI_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>

/* Reads $NOTIFY_SOCKET, unsets it (a program we might start is not the
 * service's main process) and opens the socket we send from. 1 when
 * notifications will be sent; 0 when no service manager asked for them;
 * -1 with a one-line reason in err when the variable is unusable (a relative
 * path, too long, or a socket type we do not speak), and calls then do
 * nothing as with 0. Call once, before anything is sent. */
int sdnotify_init(char *err, size_t errsize);

/* True between a successful sdnotify_init and sdnotify_close. */
bool sdnotify_enabled(void);

/* Sends state, one or more "KEY=VALUE" lines separated by '\n'. 0 when sent
 * or when notifications are off; -1 (errno set) when the datagram could not
 * be sent: the manager is gone or the socket is not one; the caller may log
 * it and carry on, nothing else changes. */
int sdnotify_send(const char *state);

/* sdnotify_send of a formatted state; -1 also when it does not fit in the
 * 4 KB a state may have here. */
int sdnotify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "RELOADING=1" with the MONOTONIC_USEC= stamp sd_notify(3) asks to go with
 * it (the manager tells this reload from an earlier one by it). As
 * sdnotify_send. */
int sdnotify_reloading(void);

/* Closes the socket; later calls do nothing. */
void sdnotify_close(void);

#endif
