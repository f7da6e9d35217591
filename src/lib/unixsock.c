#include "lib/unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Fills sun with dir/name, or /proc/self/fd/N/name when that is too long
 * (*dirfd_r then holds N, to be closed after use; else -1). */
static int
make_addr(const char *dir, const char *name, struct sockaddr_un *sun, int *dirfd_r)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	*dirfd_r = -1;
	int n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", dir, name);
	if (n > 0 && (size_t)n < sizeof(sun->sun_path))
		return 0;
	*dirfd_r = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd_r < 0)
		return -1;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "/proc/self/fd/%d/%s", *dirfd_r, name);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path)) {
		close(*dirfd_r);
		*dirfd_r = -1;
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
unixsock_listen(const char *dir, const char *name)
{
	struct sockaddr_un sun;
	int dirfd, saved;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (make_addr(dir, name, &sun, &dirfd) < 0)
		goto fail;
	unlink(sun.sun_path);
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(fd, 64) < 0) {
		saved = errno;
		if (dirfd >= 0)
			close(dirfd);
		errno = saved;
		goto fail;
	}
	if (dirfd >= 0)
		close(dirfd);
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
unixsock_connect(const char *dir, const char *name)
{
	struct sockaddr_un sun;
	int dirfd, saved;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (make_addr(dir, name, &sun, &dirfd) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	if (dirfd >= 0)
		close(dirfd);
	if (rc < 0) {
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

void
unixsock_unlink(const char *dir, const char *name)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

int
unixsock_peer_trusted(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	return cred.uid == 0 || cred.uid == geteuid() ? 1 : 0;
}
