/* spool.h: the durable queue (MISSION S5, O1-O3). A message is acknowledged
 * with 250 only after spool_commit() returned 0: its queue file is written,
 * fsync'd and linked into place, and the queue directory is fsync'd. After
 * that the file is only appended to: each change of a recipient's state is
 * one record, written with O_APPEND and fdatasync'd before anything acts on
 * it (spool_append).
 *
 * DIR/queue/QID       committed
 * DIR/queue/QID.tmp   being written; never acknowledged, removed at start-up
 *
 * Version 2 ("tegami-queue 2" first):
 *   I QID             queue id
 *   T SECONDS         arrival time (also names the Maildir files)
 *   S SENDER          reverse-path without brackets, empty for <>
 *   E ENVID           DSN envelope id as received, xtext (optional)
 *   N FULL|HDRS       DSN RET (optional)
 *   K 1|2             a delivery report / a report about one (optional)
 *   M 1               the message has 8-bit octets (optional)
 *   B OCTETS          length of the message after the blank line
 *   R L|R \t ADDRESS \t ORIGINAL \t NOTIFY \t ORCPT     one per recipient,
 *                     L local mailbox, R remote (SMTP); NOTIFY as in RFC 3461
 *   (blank line, then the message with LF line endings, Received included)
 *   s IDX STATE ATTEMPTS NEXT-TRY FLAGS TIME \t MTA \t REPLY  appended
 *                     records; STATE P pending, Q deferred, D delivered,
 *                     F failed; TIME when it was written (the history
 *                     `tegami queue show` prints)
 *   h 0|1             hold (O5)
 * The last complete record of a recipient wins; a torn last line is
 * ignored. Version 1 files (local recipients only, no records) still load. */
#ifndef TEGAMI_SPOOL_H
#define TEGAMI_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/envelope.h"

struct evbuffer;

/* Longest record spool_record_rcpt writes. */
#define SPOOL_RECORD_MAX 1400

/* Worker thread. Writes and fsyncs the queue file of e (envelope, then the
 * body) and its directory; the recipients' states are written as they are
 * (pending unless set). 0, or -1 with errno set (nothing is left behind). */
int spool_commit(const char *queue_dir, const struct envelope *e);

/* Octets spool_commit() writes before the body of e: where the message
 * starts in its queue file. */
uint64_t spool_header_length(const struct envelope *e);

/* Formats the state record of recipient idx of e into buf (size at least
 * SPOOL_RECORD_MAX); MTA and reply are cleaned of tabs and line ends.
 * Returns the length. */
size_t spool_record_rcpt(const struct envelope *e, size_t idx, char *buf, size_t size);
/* The hold record. Returns the length. */
size_t spool_record_hold(bool hold, char *buf, size_t size);

/* Worker thread. Appends records (whole lines) to the queue file of qid in
 * one write and fdatasyncs it. 0 or -1/errno. */
int spool_append(const char *queue_dir, const char *qid, const char *records, size_t len);

/* Worker thread. Unlinks the queue file. 0 or -1/errno. */
int spool_remove(const char *queue_dir, const char *qid);

/* "DIR/QID" into buf. */
void spool_path(const char *queue_dir, const char *qid, char *buf, size_t size);

/* Worker thread or start-up. Reads a queue file: the envelope with every
 * state record applied, and the body when with_body (else e->body is NULL
 * and only the envelope and the records are read). *body_offset_r gets the
 * offset of the body in the file. Returns the envelope, or NULL with
 * *error_r (static) when the file is unreadable or malformed (errno set
 * for a read error). */
struct envelope *spool_load(const char *path, bool with_body, uint64_t *body_offset_r,
    const char **error_r);

/* Calls fn for every state record of the queue file at path, in order
 * (the delivery history): idx, the recipient's address, and the record
 * applied to a copy of the recipient. 0 or -1 with *error_r. */
typedef void spool_history_fn(void *arg, size_t idx, const struct envelope_rcpt *r);
int spool_history(const char *path, spool_history_fn *fn, void *arg, const char **error_r);

/* Start-up, worker thread. A version 1 file (written by an earlier
 * release) is rewritten as version 2 in place (temporary file, fsync,
 * rename, fsync of the directory), so that state records can be appended
 * to it. 1 rewritten, 0 nothing to do, -1/errno. */
int spool_upgrade(const char *queue_dir, const char *qid);

/* Start-up. Removes the .tmp files (never acknowledged) and calls fn for every
 * committed queue file name. Returns the number found, or -1/errno. */
int spool_scan(const char *queue_dir, void (*fn)(void *arg, const char *qid), void *arg);

#endif
