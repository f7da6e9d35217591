/* tegamid_ctl.h: the control socket, DATA/tegamid.sock (MISSION O4, O5,
 * D2). `tegami` connects, sends one request line and reads reply lines, so
 * that a queue command reaches the running daemon at once. Only root and
 * the daemon's own user may talk to it (mode 0600 and SO_PEERCRED).
 *
 * Requests and their last reply line ("ok ..." or "error ..."):
 *   queue flush [DOMAIN]        ok N messages started   (progress N/M lines)
 *   queue etrn                  ok ...   (the etrn.interval schedule's work, now)
 *   queue hold|release QID      ok held|released QID
 *   queue hold-domain DOMAIN    ok N messages held        (table already changed)
 *   queue release-domain DOMAIN ok N messages released
 *   queue delete|bounce QID     ok deleted|bounced QID
 *   status                      ok queue=N outbound=N */
#ifndef TEGAMI_TEGAMID_CTL_H
#define TEGAMI_TEGAMID_CTL_H

struct event_base;
struct queue_runner;
struct ctl_server;

#define CTL_SOCKET_NAME "tegamid.sock"
#define CTL_LINE_MAX 1024

/* Listens on dir/tegamid.sock. NULL with errno when it cannot. */
struct ctl_server *ctl_server_create(struct event_base *base, struct queue_runner *queue,
    const char *dir);
void ctl_server_destroy(struct ctl_server **cp);

#endif
