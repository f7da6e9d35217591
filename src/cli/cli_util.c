#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/datadir.h"
#include "conf/directory.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"

#define PASSWORD_MAX 1024

int
cli_error(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("tegami: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

struct sqlite3 *
cli_db(struct cli *c)
{
	char *error = NULL;

	if (c->db == NULL) {
		c->db = datadir_open(c->data_dir, &error);
		if (c->db == NULL) {
			cli_error(CLI_FAIL, "%s", error);
			free(error);
			exit(CLI_FAIL);
		}
	}
	return c->db;
}

struct directory *
cli_dir(struct cli *c)
{
	if (c->dir == NULL)
		c->dir = directory_create(cli_db(c));
	return c->dir;
}

int
cli_mailbox_arg(const char *arg, char *out, size_t size, bool strict_local)
{
	struct mail_addr a;
	const char *error = "";

	if (addr_parse_mailbox(arg, &a, &error) < 0 || a.domain[0] == '[')
		return cli_error(CLI_USAGE, "'%s' is not a valid address (%s)", arg,
		    a.domain[0] == '[' ? "address literals cannot be local" : error);
	str_lower(a.local);
	str_lower(a.domain);
	if (strict_local && !directory_local_part_valid(a.local))
		return cli_error(CLI_USAGE, "'%s': a mailbox name may use only a-z, 0-9 and . _ + - "
		    "(not starting or ending with '.')", arg);
	snprintf(out, size, "%s@%s", a.local, a.domain);
	return CLI_OK;
}

static int
read_line_noecho(const char *prompt, char *buf, size_t size)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	struct termios old, noecho;

	if (fd < 0)
		return -1;
	if (tcgetattr(fd, &old) < 0) {
		close(fd);
		return -1;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	/* Echo off first, then the prompt: nothing typed after the prompt shows. */
	tcsetattr(fd, TCSAFLUSH, &noecho);
	ssize_t w = write(fd, prompt, strlen(prompt));
	(void)w;
	ssize_t n = read(fd, buf, size - 1);
	tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static char *
hash_password(const char *password)
{
	char *setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	void *data = NULL;
	int size = 0;

	if (setting == NULL)
		return NULL;
	const char *h = crypt_ra(password, setting, &data, &size);
	char *out = h != NULL && h[0] != '*' ? xstrdup(h) : NULL;
	free(setting);
	if (data != NULL) {
		explicit_bzero(data, (size_t)size);
		free(data);
	}
	return out;
}

char *
cli_read_password_hash(bool from_stdin)
{
	char a[PASSWORD_MAX], b[PASSWORD_MAX];
	char *hash = NULL;

	if (from_stdin) {
		if (fgets(a, sizeof(a), stdin) == NULL) {
			cli_error(CLI_USAGE, "no password on standard input");
			return NULL;
		}
		a[strcspn(a, "\r\n")] = '\0';
	} else {
		for (;;) {
			if (read_line_noecho("Password: ", a, sizeof(a)) < 0 ||
			    read_line_noecho("Password again: ", b, sizeof(b)) < 0) {
				cli_error(CLI_USAGE, "no terminal to ask the password on "
				    "(use --password-stdin)");
				return NULL;
			}
			if (a[0] == '\0') {
				fputs("tegami: the password cannot be empty; try again\n", stderr);
				continue;
			}
			if (strcmp(a, b) == 0)
				break;
			fputs("tegami: the passwords differ; try again\n", stderr);
		}
		explicit_bzero(b, sizeof(b));
	}
	if (a[0] == '\0')
		cli_error(CLI_USAGE, "the password cannot be empty");
	else if ((hash = hash_password(a)) == NULL)
		cli_error(CLI_FAIL, "cannot hash the password: %s", strerror(errno));
	explicit_bzero(a, sizeof(a));
	return hash;
}

int
cli_daemon_pid(struct cli *c, long *pid_r)
{
	char path[4096], buf[32];

	*pid_r = 0;
	datadir_path(c->data_dir, "tegamid.pid", path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* The daemon holds an exclusive lock while it runs; if we can take a
	 * shared one, the file is stale. */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return -1;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	*pid_r = strtol(buf, NULL, 10);
	return *pid_r > 0 ? 0 : -1;
}
