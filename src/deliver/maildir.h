/* maildir.h: local delivery into Maildir (MISSION S4, S5; the layout of
 * https://cr.yp.to/proto/maildir.html that Dovecot and mutt read).
 *
 * One file is written to tmp/ and fsync'd, then hard-linked into new/ of
 * every recipient, and each new/ directory is fsync'd. File names are derived
 * from the queue id and the recipient's index:
 *     ARRIVAL.Q<qid>_<index>.HOST,S=<size>,W=<size with CRLF>
 * so that re-running a delivery after a crash finds what already landed and
 * never delivers twice. All functions block on the disk: worker threads only. */
#ifndef TEGAMI_MAILDIR_H
#define TEGAMI_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct envelope;

/* Delivers e (its body loaded) to the Maildirs under mail_root/DOMAIN/LOCAL/
 * of the recipients e->rcpts[which[0..n)] (which NULL: every recipient, n
 * ignored); file names carry each recipient's index in e. With recovering
 * set, recipients whose file is already in new/ or cur/ are skipped. 0, or
 * -1 with errno set when any of them failed (the queue file must then be
 * kept; a later try with recovering set skips those that landed). */
int maildir_deliver(const char *mail_root, const char *hostname, const struct envelope *e,
    const size_t *which, size_t n, bool recovering);

/* Removes leftovers from tmp/ of every Maildir under mail_root (a crash
 * between writing a message and linking it leaves one): files of ours
 * (named by maildir_deliver) last changed before ours_before, and any file
 * last changed before others_before (the Maildir rule: 36 hours).
 * Counts what went into *files_r and *bytes_r. 0, or -1/errno when
 * mail_root cannot be read. */
int maildir_sweep_tmp(const char *mail_root, time_t ours_before, time_t others_before,
    size_t *files_r, unsigned long long *bytes_r);

/* Creates DIR/{tmp,new,cur} when missing. 0 or -1/errno. */
int maildir_create(const char *dir);

/* The Maildir directory of mailbox "local@domain" under mail_root into buf.
 * Returns -1 when it does not fit or the mailbox has no '@'. */
int maildir_path(const char *mail_root, const char *mailbox, char *buf, size_t size);

#endif
