/* spool.h: the durable queue (MISSION S5). A message is acknowledged with 250
 * only after spool_commit() returned 0: its queue file is written, fsync'd and
 * renamed into place, and the queue directory is fsync'd.
 *
 * DIR/queue/QID       committed: envelope lines, a blank line, the message
 * DIR/queue/QID.tmp   being written; never acknowledged, removed at start-up
 *
 * Envelope lines ("tegami-queue 1" first):
 *   I QID             queue id
 *   T SECONDS         arrival time (also names the Maildir files)
 *   S SENDER          reverse-path without brackets, empty for <>
 *   R MAILBOX\tORIG   one per local mailbox, with the RCPT TO it came from
 * The message is stored with LF line endings, Received header included. */
#ifndef TEGAMI_SPOOL_H
#define TEGAMI_SPOOL_H

#include <stddef.h>
#include <time.h>

struct evbuffer;

#define SPOOL_QID_LEN 20

struct spool_rcpt {
	char *mailbox; /* local@domain, lower case */
	char *orig;    /* the address given in RCPT TO */
};

struct spool_msg {
	char qid[SPOOL_QID_LEN + 1];
	time_t arrival;
	char *sender;
	struct spool_rcpt *rcpts;
	size_t nrcpt;
	struct evbuffer *body;  /* owned; LF line endings */
};

/* A new message with a fresh queue id; the body buffer is empty. */
struct spool_msg *spool_msg_create(void);
void spool_msg_free(struct spool_msg **mp);
void spool_msg_add_rcpt(struct spool_msg *m, const char *mailbox, const char *orig);

/* Worker thread. Writes and fsyncs the queue file and its directory.
 * 0, or -1 with errno set (nothing is left behind on failure). */
int spool_commit(const char *queue_dir, const struct spool_msg *m);

/* Writes head (may be NULL) then the whole of body, without draining it, to
 * fd. 0 or -1/errno. */
int spool_write_with_body(int fd, const char *head, size_t headlen, struct evbuffer *body);

/* Worker thread. Unlinks the queue file once every mailbox has the message. */
int spool_remove(const char *queue_dir, const char *qid);

/* Start-up. Reads a committed queue file. Returns the message, or NULL with
 * *error_r (static) when the file is unreadable or malformed. */
struct spool_msg *spool_load(const char *path, const char **error_r);

/* Start-up. Removes the .tmp files (never acknowledged) and calls fn for every
 * committed queue file name. Returns the number found, or -1/errno. */
int spool_scan(const char *queue_dir, void (*fn)(void *arg, const char *qid), void *arg);

/* True when name looks like a queue id. */
int spool_qid_valid(const char *name);

#endif
