/* unixsock.h: AF_UNIX stream sockets named by a directory and a file name,
 * for the control socket in the data directory. sun_path holds 108 octets;
 * a longer directory is reached through /proc/self/fd/N of an O_PATH
 * descriptor, so any data directory works. No mail knowledge here. */
#ifndef TEGAMI_UNIXSOCK_H
#define TEGAMI_UNIXSOCK_H

/* A listening, non-blocking socket at dir/name (an old one is replaced),
 * mode 0600. Returns the descriptor, or -1 with errno. */
int unixsock_listen(const char *dir, const char *name);

/* A blocking connection to dir/name. Returns the descriptor, or -1 with
 * errno (ENOENT / ECONNREFUSED: nobody listens). */
int unixsock_connect(const char *dir, const char *name);

/* Removes dir/name. */
void unixsock_unlink(const char *dir, const char *name);

/* 1 when the peer of fd runs as root or as this process's effective user,
 * 0 otherwise, -1 when the kernel will not say. */
int unixsock_peer_trusted(int fd);

#endif
