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
#include "lib/password.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"
#include "mail/sasl.h"

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

int
cli_domain_arg(const char *arg, char *out, size_t size)
{
	if (!addr_domain_valid(arg))
		return cli_error(CLI_USAGE, "'%s' is not a valid domain name", arg);
	str_copy(out, arg, size);
	str_lower(out);
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

static int
read_password(bool from_stdin, bool twice, char *a, size_t size)
{
	char b[PASSWORD_MAX];

	if (from_stdin) {
		if (fgets(a, (int)size, stdin) == NULL)
			return cli_error(CLI_USAGE, "no password on standard input");
		a[strcspn(a, "\r\n")] = '\0';
		if (a[0] == '\0')
			return cli_error(CLI_USAGE, "the password cannot be empty");
		return CLI_OK;
	}
	for (;;) {
		if (read_line_noecho("Password: ", a, size) < 0 ||
		    (twice && read_line_noecho("Password again: ", b, sizeof(b)) < 0))
			return cli_error(CLI_USAGE, "no terminal to ask the password on "
			    "(use --password-stdin)");
		if (a[0] == '\0') {
			fputs("tegami: the password cannot be empty; try again\n", stderr);
			continue;
		}
		if (!twice || strcmp(a, b) == 0)
			break;
		fputs("tegami: the passwords differ; try again\n", stderr);
	}
	explicit_bzero(b, sizeof(b));
	return CLI_OK;
}

int
cli_read_credentials(bool from_stdin, bool want_cram, const char *check_hash,
    struct cli_credentials *out)
{
	char pw[PASSWORD_MAX];
	int rc = read_password(from_stdin, check_hash == NULL, pw, sizeof(pw));

	memset(out, 0, sizeof(*out));
	if (rc != CLI_OK)
		goto out;
	if (strlen(pw) > SASL_SECRET_MAX) {
		rc = cli_error(CLI_USAGE, "the password is longer than %d bytes", SASL_SECRET_MAX);
		goto out;
	}
	if (check_hash != NULL) {
		if (!password_verify(check_hash, pw)) {
			rc = cli_error(CLI_FAIL, "wrong password");
			goto out;
		}
	} else if ((out->hash = password_hash(pw)) == NULL) {
		rc = cli_error(CLI_FAIL, "cannot hash the password: %s", strerror(errno));
		goto out;
	}
	if (want_cram)
		cram_md5_secret(pw, out->cram);
out:
	explicit_bzero(pw, sizeof(pw));
	return rc;
}

void
cli_as_invoker(struct cli *c)
{
	char err[256];

	if (privdrop_as_root(&c->priv, err, sizeof(err)) < 0) {
		cli_error(CLI_FAIL, "%s", err);
		exit(CLI_FAIL);
	}
}

void
cli_as_owner(struct cli *c)
{
	char err[256];

	if (privdrop_as_owner(&c->priv, err, sizeof(err)) < 0) {
		cli_error(CLI_FAIL, "%s", err);
		exit(CLI_FAIL);
	}
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
