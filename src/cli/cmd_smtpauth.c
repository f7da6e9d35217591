/* tegami smtpauth (also installed as mpaossmtpauth): the client-side SMTP
 * AUTH settings of seed 000, exactly as the seed has them (MISSION C1-C5).
 *
 *   smtpauth -s -u ACCOUNT [-p PORT] [-t SMTPS|STARTTLS [-v PROTOCOL]] [-a METHODS]
 *   smtpauth -d
 *   smtpauth -i
 *
 * It edits the built-in default profile (conf/profile.h): the relay all
 * remote mail goes to (its host is the setting relay.smarthost, "SMTP
 * SERVER" below), with the chosen port, encryption and mechanisms. The
 * password is asked on the terminal only, twice, without echo; an empty
 * entry asks again; at most 64 bytes. Standard output is the seed's lines,
 * byte for byte; anything else goes to standard error. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/profile.h"
#include "conf/settings.h"
#include "lib/db.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"

#define SMTPAUTH_PASSWORD_MAX 64   /* seed 000: 64 bytes */

struct smtpauth_args {
	bool set, del, info;
	const char *account, *port, *type, *protocol, *methods;
};

static const char *progname = "tegami smtpauth";

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: %s -s -u ACCOUNT [-p PORT] [-t SMTPS|STARTTLS [-v TLSv1|TLSv1.1|TLSv1.2|TLSv1.3]] "
	    "[-a METHODS]\n"
	    "       %s -d\n"
	    "       %s -i\n"
	    "  -s  turn SMTP AUTH on (asks the password twice, without echo; at most 64 bytes)\n"
	    "  -u  account name (at most 256 bytes)          -p  port (default 25)\n"
	    "  -t  encryption: SMTPS or STARTTLS (default: none)\n"
	    "  -v  lowest TLS version with -t (default TLSv1.3)\n"
	    "  -a  CRAM-MD5, LOGIN, PLAIN, comma-separated (default: all, tried in that order)\n"
	    "  -d  turn SMTP AUTH off                         -i  show the settings\n",
	    progname, progname, progname);
}

/* "tegami smtpauth: " and one line on stderr. */
static void
say(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void
say(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", progname);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* One line on stderr, the usage, and the exit status of bad usage. */
static int
bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
bad_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	usage(stderr);
	return CLI_USAGE;
}

static int
fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return CLI_FAIL;
}

/* The options as the seed spells them: each once, values separate or
 * attached (-u sysop, -usysop). */
static int
parse_args(int argc, char **argv, struct smtpauth_args *a)
{
	memset(a, 0, sizeof(*a));
	if (argc == 1 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
		usage(stdout);
		return -1;
	}
	if (argc == 0)
		return bad_usage("one of -s, -d or -i is required");
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] != '-' || arg[1] == '\0' || strchr("sdiuptva", arg[1]) == NULL)
			return arg[0] == '-' ? bad_usage("unknown option '%s'", arg) :
			    bad_usage("unexpected argument '%s'", arg);
		char o = arg[1];
		bool *flag = o == 's' ? &a->set : o == 'd' ? &a->del : o == 'i' ? &a->info : NULL;
		if (flag != NULL) {
			if (arg[2] != '\0')
				return bad_usage("unknown option '%s'", arg);
			if (*flag)
				return bad_usage("option -%c given twice", o);
			*flag = true;
			continue;
		}
		const char **val = o == 'u' ? &a->account : o == 'p' ? &a->port :
		    o == 't' ? &a->type : o == 'v' ? &a->protocol : &a->methods;
		if (*val != NULL)
			return bad_usage("option -%c given twice", o);
		if (arg[2] != '\0')
			*val = arg + 2;
		else if (i + 1 < argc)
			*val = argv[++i];
		else
			return bad_usage("option -%c needs a value", o);
	}
	if ((int)a->set + (int)a->del + (int)a->info != 1)
		return bad_usage((int)a->set + (int)a->del + (int)a->info == 0 ?
		    "one of -s, -d or -i is required" : "-s, -d and -i cannot be combined");
	if (!a->set && (a->account || a->port || a->type || a->protocol || a->methods))
		return bad_usage("-u, -p, -t, -v and -a go with -s only");
	return CLI_OK;
}

/* The values of -s, checked, into the profile p. */
static int
apply_args(const struct smtpauth_args *a, struct profile *p)
{
	uint64_t port = 25;
	const char *why = NULL;
	char norm[PROFILE_AUTH_MAX];
	unsigned mechs;

	if (a->account == NULL)
		return bad_usage("-s needs -u ACCOUNT");
	if (a->account[0] == '\0')
		return bad_usage("-u: the account name is empty");
	if (strlen(a->account) > PROFILE_ACCOUNT_MAX)
		return bad_usage("-u: the account name is longer than %d bytes", PROFILE_ACCOUNT_MAX);
	for (const char *s = a->account; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return bad_usage("-u: the account name holds a control character");
	}
	if (a->port != NULL && (str_parse_u64(a->port, &port) < 0 || port < 1 || port > 65535))
		return bad_usage("-p: '%s' is not a port number (1-65535)", a->port);
	if (a->protocol != NULL && a->type == NULL)
		return bad_usage("-v needs -t");
	enum profile_tls tls = PROFILE_TLS_NONE;
	if (a->type != NULL) {
		if (strcasecmp(a->type, "SMTPS") == 0)
			tls = PROFILE_TLS_SMTPS;
		else if (strcasecmp(a->type, "STARTTLS") == 0)
			tls = PROFILE_TLS_STARTTLS;
		else
			return bad_usage("-t: '%s' is not SMTPS or STARTTLS", a->type);
	}
	static const char *const protos[] = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" };
	const char *proto = "TLSv1.3";
	if (a->protocol != NULL) {
		size_t k;
		for (k = 0; k < 4 && strcasecmp(a->protocol, protos[k]) != 0; k++)
			;
		if (k == 4)
			return bad_usage("-v: '%s' is not TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3",
			    a->protocol);
		proto = protos[k];
	}
	if (a->methods != NULL && (strcasecmp(a->methods, "ALL") == 0 ||
	    strcasecmp(a->methods, "XOAUTH2") == 0 ||
	    profile_auth_parse(a->methods, norm, &mechs, &why) < 0))
		return bad_usage("-a: '%s' is not a comma-separated list of CRAM-MD5, LOGIN and PLAIN",
		    a->methods);
	str_copy(p->account, a->account, sizeof(p->account));
	p->port = (unsigned)port;
	p->tls = tls;
	str_copy(p->tls_protocol, proto, sizeof(p->tls_protocol));
	str_copy(p->auth, a->methods != NULL ? norm : "ALL", sizeof(p->auth));
	return CLI_OK;
}

/* --- the password, on the terminal only (C2) --- */

static int tty_fd = -1;
static struct termios tty_saved;

/* A signal while echo is off: the terminal gets its echo back first. */
static void
tty_restore_on_signal(int sig)
{
	if (tty_fd >= 0)
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

enum tty_read { TTY_LINE, TTY_EOF, TTY_ERROR };

/* One line from the terminal without echo (the newline still shows), at
 * most max octets kept; *too_long_r when it had more. */
static enum tty_read
tty_read_secret(const char *prompt, char *buf, size_t max, bool *too_long_r)
{
	struct termios noecho = tty_saved;
	size_t n = 0;
	char ch;
	ssize_t r;

	*too_long_r = false;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	/* Echo off before the prompt: nothing typed after it shows. */
	if (tcsetattr(tty_fd, TCSAFLUSH, &noecho) < 0)
		return TTY_ERROR;
	if (write(tty_fd, prompt, strlen(prompt)) < 0) {
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
		return TTY_ERROR;
	}
	while ((r = read(tty_fd, &ch, 1)) == 1 && ch != '\n') {
		if (ch == '\r')
			continue;
		if (n < max)
			buf[n++] = ch;
		else
			*too_long_r = true;
	}
	tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	buf[n] = '\0';
	if (r < 0)
		return errno == EINTR ? TTY_EOF : TTY_ERROR;
	return r == 0 && n == 0 ? TTY_EOF : TTY_LINE;
}

/* Asks prompt until a non-empty answer of at most max bytes. */
static int
ask_one(const char *prompt, char *buf, size_t max)
{
	bool too_long;

	for (;;) {
		switch (tty_read_secret(prompt, buf, max, &too_long)) {
		case TTY_EOF:
			return fail("no password entered; nothing changed");
		case TTY_ERROR:
			return fail("cannot read the password from the terminal: %s", strerror(errno));
		case TTY_LINE:
			break;
		}
		if (too_long) {
			fprintf(stderr, "%s: the password is longer than %zu bytes; try again\n",
			    progname, max);
			continue;
		}
		if (buf[0] != '\0')
			return CLI_OK;
		/* The seed: an empty entry asks again. */
	}
}

int
cli_secret_ask(const char *prompt, const char *again, char *buf, size_t max)
{
	char *second = xmalloc(max + 1);
	struct sigaction sa = { 0 }, old_int, old_term, old_hup;
	int rc;

	tty_fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (tty_fd < 0 || tcgetattr(tty_fd, &tty_saved) < 0) {
		if (tty_fd >= 0)
			close(tty_fd);
		tty_fd = -1;
		free(second);
		return fail("the password is asked on a terminal only, and there is none");
	}
	sa.sa_handler = tty_restore_on_signal;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	rc = ask_one(prompt, buf, max);
	if (rc == CLI_OK && again != NULL) {
		rc = ask_one(again, second, max);
		if (rc == CLI_OK && strcmp(buf, second) != 0)
			rc = fail("the passwords do not match; nothing changed");
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	close(tty_fd);
	tty_fd = -1;
	OPENSSL_cleanse(second, max + 1);
	free(second);
	if (rc != CLI_OK)
		OPENSSL_cleanse(buf, max + 1);
	return rc;
}

/* --- output: the seed's lines --- */

static const char *
ssl_name(enum profile_tls t)
{
	return t == PROFILE_TLS_SMTPS ? "SMTPS" : t == PROFILE_TLS_STARTTLS ? "STARTTLS" : "OFF";
}

static void
print_on(const struct profile *p)
{
	printf("SMTP AUTH : ON\n");
	printf("SMTP SERVER : %s\n", p->host);
	printf("PORT : %u\n", p->port);
	printf("SSL : %s\n", ssl_name(p->tls));
	if (p->tls != PROFILE_TLS_NONE)
		printf("SSLPROTOCOL : %s\n", p->tls_protocol);
	printf("AUTH : %s\n", p->auth);
	printf("ACCOUNT : %s\n", p->account);
}

static void
print_info(const struct profile *p)
{
	if (p->login == PROFILE_LOGIN_SMTP_AUTH) {
		print_on(p);
		return;
	}
	printf("SMTP AUTH : OFF\n");
	if (p->login == PROFILE_LOGIN_POP) {
		/* C4: which login is in use instead. */
		printf("POP BEFORE SMTP : ON\n");
		printf("SMTP SERVER : %s\n", p->host);
		printf("POP3 SERVER : %s\n", p->pop_host);
		printf("ACCOUNT : %s\n", p->pop_account);
	}
}

/* Writes p back in one transaction. */
static int
store(struct cli *c, const struct profile *p)
{
	char *error = NULL, err[256];
	struct sqlite3 *db = cli_db(c);

	if (profile_check(p, err, sizeof(err)) < 0)
		return fail("%s", err);
	if (db_begin(db, &error) < 0 || profile_db_put(db, p, false, &error) < 0 ||
	    db_commit(db, &error) < 0) {
		db_rollback(db);
		int rc = fail("cannot store the settings: %s", error);
		free(error);
		return rc;
	}
	return CLI_OK;
}

static int
smtpauth_on(struct cli *c, const struct smtpauth_args *a, struct profile *p)
{
	char pw[SMTPAUTH_PASSWORD_MAX + 1], err[256];
	int rc = apply_args(a, p);

	if (rc != CLI_OK)
		return rc;
	rc = cli_secret_ask("Enter password : ", "Re-enter password : ", pw, SMTPAUTH_PASSWORD_MAX);
	if (rc != CLI_OK)
		return rc;
	char *sealed = profile_secret_seal(c->data_dir, p->id, "smtp", pw, err, sizeof(err));
	OPENSSL_cleanse(pw, sizeof(pw));
	if (sealed == NULL)
		return fail("%s", err);
	if (p->secret != NULL) {
		OPENSSL_cleanse(p->secret, strlen(p->secret));
		free(p->secret);
	}
	p->secret = sealed;
	if (p->login == PROFILE_LOGIN_POP)
		fprintf(stderr, "%s: POP-before-SMTP is no longer used: SMTP AUTH takes its place\n",
		    progname);
	p->login = PROFILE_LOGIN_SMTP_AUTH;
	if ((rc = store(c, p)) != CLI_OK)
		return rc;
	print_on(p);
	if (p->host[0] == '\0')
		fprintf(stderr, "%s: no SMTP server is set yet: mail waits in the queue until "
		    "`tegami config set relay.smarthost=HOST`\n", progname);
	return CLI_OK;
}

int
cmd_smtpauth(struct cli *c, int argc, char **argv)
{
	struct smtpauth_args a;
	struct profile p;
	char *error = NULL;
	int rc = parse_args(argc, argv, &a);

	if (rc < 0)
		return CLI_OK; /* --help */
	if (rc != CLI_OK)
		return rc;
	if (profile_db_get(cli_db(c), PROFILE_DEFAULT_ID, &p, &error) != 1) {
		rc = fail("cannot read the settings: %s", error != NULL ? error : "no default profile");
		free(error);
		return rc;
	}
	if (a.info) {
		print_info(&p);
	} else if (a.del) {
		if (p.login == PROFILE_LOGIN_SMTP_AUTH) {
			p.login = PROFILE_LOGIN_NONE;
			/* Off: the stored password goes (-s asks for it again). */
			if (p.secret != NULL)
				OPENSSL_cleanse(p.secret, strlen(p.secret));
			free(p.secret);
			p.secret = NULL;
			rc = store(c, &p);
		}
		if (rc == CLI_OK)
			printf("SMTP AUTH : OFF\n");
	} else {
		rc = smtpauth_on(c, &a, &p);
	}
	profile_clear(&p);
	return rc;
}

void
cli_smtpauth_progname(const char *name)
{
	progname = name;
}
