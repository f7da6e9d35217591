/* maildrop.h: one user's Maildir as a POP3 session sees it (MISSION P2).
 *
 * Opening takes an exclusive flock on DIR/.tegami-pop3.lock (a crashed
 * process's lock goes with it) and lists cur/ and new/ in arrival order. The
 * messages of new/ move into cur/ with ":2," info, as the Maildir spec wants
 * of a reader, after the login reply: one rename each, done by the settle
 * job on a worker while the session goes on (a message is found in either
 * place meanwhile).
 * Mail delivered afterwards is not seen until the next open. Sizes are the
 * octets with CRLF line endings (from the W= part of our names, or counted);
 * UIDLs are the Maildir base names (hashed when longer than RFC 1939's 70).
 * Deletions happen only in maildrop_commit(). Blocking disk work: call from
 * a worker thread or accept the cost knowingly. */
#ifndef TEGAMI_MAILDROP_H
#define TEGAMI_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAILDROP_UIDL_MAX 70

struct maildrop_msg {
	char *name;                          /* file name in cur/ (once settled) */
	char *new_name;                      /* its name in new/ if it was there at open */
	size_t settle_index;                 /* its place in the settle job's moves */
	char uidl[MAILDROP_UIDL_MAX + 1];
	uint64_t size;                       /* octets as RETR sends them, CRLF */
	bool deleted;
};

struct maildrop_settle;

struct maildrop {
	char *dir;
	int lock_fd;
	struct maildrop_msg *msgs;
	size_t n;
	struct maildrop_settle *settle;      /* the new/ → cur/ moves, if started */
};

/* 0 with *md_r, or -1 with errno: EWOULDBLOCK when another session holds the
 * mailbox, other values for disk errors. A missing Maildir is an empty one. */
int maildrop_open(const char *maildir, struct maildrop **md_r);

/* Releases the lock; nothing is deleted. Stops the settle job first (waits
 * for the one rename it may be in): what it did not move stays in new/. */
void maildrop_close(struct maildrop **mdp);

/* Stops the settle job, then unlinks the messages marked deleted. Returns
 * the number that could not be removed (0 on full success). */
size_t maildrop_commit(struct maildrop *md);

/* How many messages are marked deleted. */
size_t maildrop_deleted(const struct maildrop *md);

/* Opens message i (0-based) for reading, in new/ or cur/; -1/errno. */
int maildrop_open_msg(const struct maildrop *md, size_t i);

/* The new/ → cur/ moves of an open maildrop: NULL when there are none (or
 * they were started already). Otherwise the job's reference: pass it to
 * maildrop_settle_run() on a worker, then to maildrop_settle_release() (any
 * thread). The maildrop holds its own reference until it is closed. */
struct maildrop_settle *maildrop_settle_start(struct maildrop *md);
void maildrop_settle_run(struct maildrop_settle *st);
void maildrop_settle_release(struct maildrop_settle **stp);

#endif
