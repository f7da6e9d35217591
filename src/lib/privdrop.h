/* privdrop.h: running as the user that owns the data directory (STYLE
 * "Process and privilege"). All mailboxes belong to that one user, the
 * virtual-users model of Postfix virtual + Dovecot's vmail. tegamid started
 * as root creates its files as that user (privdrop_as_owner), binds its ports
 * and reads its TLS key as root, and becomes that user for good
 * (privdrop_final) before it accepts a client. The loop thread keeps only
 * CAP_NET_BIND_SERVICE, so that a reload can still move a listener to a port
 * below 1024. The admin command started as root becomes the owner too, so
 * that every file in the data directory keeps one owner. No mail knowledge
 * here. */
#ifndef TEGAMI_PRIVDROP_H
#define TEGAMI_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct privdrop {
	bool active;   /* we are root and the owner is not: there is a user to become */
	bool dropped;  /* privdrop_final succeeded: no way back */
	uid_t uid;
	gid_t gid;
	bool named;    /* the owner has a passwd entry (its groups come from it) */
	char name[64]; /* the owner's login name, or its number */
};

/* Finds who owns dir (a directory that does not exist yet will be root's,
 * made by root). Fills p; p->active only when the process runs as root and
 * the owner is another user. 0, or -1 with a one-line reason in err. */
int privdrop_plan(struct privdrop *p, const char *dir, char *err, size_t errsize);

/* Acts as the owner until privdrop_as_root: its real and effective ids and
 * its groups (files made meanwhile are the owner's; signals, group rights
 * and symlinks work as for the owner); only the saved ids stay root's. No-op
 * when not active or dropped. 0, or -1 with a reason. */
int privdrop_as_owner(const struct privdrop *p, char *err, size_t errsize);
int privdrop_as_root(const struct privdrop *p, char *err, size_t errsize);

/* Becomes the owner for good: its groups, gid and uid for every thread
 * (glibc applies set*id to all threads). With keep_bind, the calling thread
 * keeps CAP_NET_BIND_SERVICE and nothing else. Checks that root cannot be
 * regained. No-op when not active. 0, or -1 with a reason. */
int privdrop_final(struct privdrop *p, bool keep_bind, char *err, size_t errsize);

#endif
