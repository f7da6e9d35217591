/* fsutil.h: the durable-file primitives the spool and Maildir delivery share.
 * All functions here may block on the disk: call them from a worker thread
 * (lib/workers.h) or at start-up, never from the event loop. */
#ifndef TEGAMI_FSUTIL_H
#define TEGAMI_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Creates path and its missing parents with the given mode. 0 or -1/errno. */
int fs_mkdir_p(const char *path, unsigned mode);

/* fsync(2) on a directory, so that a rename/link/create inside it is durable.
 * 0 or -1/errno. */
int fs_fsync_dir(const char *path);

/* Writes all of buf, retrying on EINTR and short writes. 0 or -1/errno. */
int fs_write_all(int fd, const void *buf, size_t len);

/* Writes head (may be NULL) then the whole of body, without draining it,
 * to fd. 0 or -1/errno. */
struct evbuffer;
int fs_write_evbuffer(int fd, const char *head, size_t headlen, struct evbuffer *body);

/* Reads exactly len octets at offset, retrying on EINTR and short reads.
 * 0, or -1/errno (EIO when the file is shorter). */
int fs_pread_all(int fd, void *buf, size_t len, long long offset);

/* Reads a whole file (at most max bytes) into a new NUL-terminated buffer.
 * 0 with *data_r and *len_r set (caller frees), or -1/errno (EFBIG when larger). */
int fs_read_file(const char *path, size_t max, char **data_r, size_t *len_r);

/* Free bytes available to unprivileged users on the filesystem holding path.
 * 0 or -1/errno. A statvfs(2): cheap enough for the event loop. */
int fs_free_bytes(const char *path, uint64_t *free_r);

#endif
