/* tegamid: the tegami mail daemon. Reads its settings from the data
 * directory (-D DIR or TEGAMI_DATA; initialised on first use), binds the
 * listeners, recovers the queue, and serves from one libevent loop. Disk
 * writes run on a worker pool (lib/workers.h). Settings changed with `tegami`
 * apply without a restart: SIGHUP, or the database's data_version checked
 * once a second. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/datadir.h"
#include "conf/directory.h"
#include "conf/settings.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"
#include "queue/queue_runner.h"
#include "smtpd/smtp_server.h"

struct daemon {
	const char *data_dir;
	char queue_dir[4096];
	char mail_root[4096];
	char pid_path[4096];
	int pid_fd;
	struct sqlite3 *db;
	int64_t data_version;
	struct config cfg;
	struct event_base *base;
	struct workers *workers;
	struct directory *dir;
	struct queue_runner *queue;
	struct smtp_server *smtp;
	struct event *ev_term, *ev_int, *ev_hup, *ev_poll;
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: tegamid [-D DIR] [-h] [-V]\n"
	    "  -D DIR   data directory (default: $TEGAMI_DATA, else ./var);\n"
	    "           an empty directory is initialised with the default settings\n"
	    "  -h       this help\n"
	    "  -V       print the version\n"
	    "Runs in the foreground and logs to standard error. SIGHUP reloads the\n"
	    "settings (as does `tegami reload`); SIGTERM stops. See tegamid(8).\n");
}

static void
apply_log_level(const struct config *cfg)
{
	enum log_level level;

	if (log_level_parse(cfg->log_level, &level) == 0)
		log_set_level(level);
}

/* Takes the pid file lock: one daemon per data directory. */
static void
pidfile_take(struct daemon *d)
{
	char buf[32];

	d->pid_fd = open(d->pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (d->pid_fd < 0)
		fatal("cannot open %s", d->pid_path);
	if (flock(d->pid_fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = read(d->pid_fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fprintf(stderr, "tegamid: already running on %s (pid %s)\n", d->data_dir, buf);
		exit(1);
	}
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(d->pid_fd, 0) < 0 || pwrite(d->pid_fd, buf, (size_t)n, 0) != n)
		fatal("cannot write %s", d->pid_path);
}

/* DATA/tegamid.state: what `tegami status` shows of the running daemon. */
static void
state_write(struct daemon *d)
{
	char path[4200], tmp[4300], where[1024];

	smtp_server_describe(d->smtp, where, sizeof(where));
	datadir_path(d->data_dir, "tegamid.state", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	fprintf(f, "pid: %ld\nversion: %s\nhostname: %s\nsmtp: %s\n", (long)getpid(),
	    TEGAMI_VERSION, d->cfg.server_hostname, where[0] != '\0' ? where : "off");
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void
reload(struct daemon *d, const char *why)
{
	struct config next;
	char *error = NULL;
	const char *lerr = NULL;

	if (config_load(d->db, &next, &error) < 0) {
		log_error("event=reload_failed reason=%s error=\"%s\"", why, error);
		free(error);
		return;
	}
	bool relisten = strcmp(next.smtp_listen, d->cfg.smtp_listen) != 0;
	char old_listen[CONFIG_STR_MAX];
	memcpy(old_listen, d->cfg.smtp_listen, sizeof(old_listen));
	d->cfg = next;
	apply_log_level(&d->cfg);
	queue_runner_set_hostname(d->queue, d->cfg.server_hostname);
	if (relisten && smtp_server_listen(d->smtp, &lerr) < 0) {
		log_error("event=listen_failed listen=%s error=\"%s\" kept=%s",
		    d->cfg.smtp_listen, lerr, old_listen);
		memcpy(d->cfg.smtp_listen, old_listen, sizeof(old_listen));
	}
	state_write(d);
	log_info("event=reloaded reason=%s", why);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		reload(d, "sighup");
		return;
	}
	log_info("event=stopping signal=%d", (int)sig);
	event_base_loopbreak(d->base);
}

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	int64_t v = db_data_version(d->db);

	if (v != d->data_version) {
		d->data_version = v;
		reload(d, "changed");
	}
}

static void
daemon_open(struct daemon *d)
{
	char *error = NULL;

	d->db = datadir_open(d->data_dir, &error);
	if (d->db == NULL) {
		fprintf(stderr, "tegamid: %s\n", error);
		exit(1);
	}
	if (config_load(d->db, &d->cfg, &error) < 0) {
		fprintf(stderr, "tegamid: %s\n", error);
		exit(1);
	}
	d->data_version = db_data_version(d->db);
	apply_log_level(&d->cfg);
	datadir_path(d->data_dir, "queue", d->queue_dir, sizeof(d->queue_dir));
	datadir_path(d->data_dir, "mail", d->mail_root, sizeof(d->mail_root));
	datadir_path(d->data_dir, "tegamid.pid", d->pid_path, sizeof(d->pid_path));
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	/* Each idle session is one descriptor: take what the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
daemon_start(struct daemon *d)
{
	const char *lerr = NULL;
	char where[1024];

	d->base = event_base_new();
	if (d->base == NULL)
		fatalx("event_base_new failed");
	d->workers = workers_create(d->base, (unsigned)d->cfg.queue_workers);
	d->dir = directory_create(d->db);
	d->queue = queue_runner_create(d->base, d->workers, d->queue_dir, d->mail_root);
	queue_runner_set_hostname(d->queue, d->cfg.server_hostname);
	struct smtp_server_deps deps = {
		.base = d->base, .cfg = &d->cfg, .dir = d->dir, .workers = d->workers,
		.queue = d->queue, .data_dir = d->data_dir, .queue_dir = d->queue_dir,
	};
	d->smtp = smtp_server_create(&deps);
	if (smtp_server_listen(d->smtp, &lerr) < 0) {
		log_error("event=listen_failed listen=%s error=\"%s\"", d->cfg.smtp_listen, lerr);
		fprintf(stderr, "tegamid: cannot listen on %s: %s\n", d->cfg.smtp_listen, lerr);
		exit(1);
	}
	queue_runner_recover(d->queue);
	d->ev_term = evsignal_new(d->base, SIGTERM, on_signal, d);
	d->ev_int = evsignal_new(d->base, SIGINT, on_signal, d);
	d->ev_hup = evsignal_new(d->base, SIGHUP, on_signal, d);
	d->ev_poll = event_new(d->base, -1, EV_PERSIST, on_poll, d);
	struct timeval second = { 1, 0 };
	event_add(d->ev_term, NULL);
	event_add(d->ev_int, NULL);
	event_add(d->ev_hup, NULL);
	event_add(d->ev_poll, &second);
	state_write(d);
	smtp_server_describe(d->smtp, where, sizeof(where));
	log_info("event=started version=%s data=%s smtp=%s hostname=%s", TEGAMI_VERSION,
	    d->data_dir, where, d->cfg.server_hostname);
	printf("tegamid %s: data in %s, SMTP on %s\n"
	    "add a user: tegami -D %s user add NAME@%s\n", TEGAMI_VERSION, d->data_dir,
	    where[0] != '\0' ? where : "(no listener)", d->data_dir, DATADIR_DEFAULT_DOMAIN);
	fflush(stdout);
}

static void
daemon_stop(struct daemon *d)
{
	smtp_server_destroy(&d->smtp);
	workers_destroy(&d->workers); /* finishes every write that was started */
	queue_runner_destroy(&d->queue);
	directory_destroy(&d->dir);
	event_free(d->ev_term);
	event_free(d->ev_int);
	event_free(d->ev_hup);
	event_free(d->ev_poll);
	event_base_free(d->base);
	db_close(&d->db);
	char path[4200];
	unlink(datadir_path(d->data_dir, "tegamid.state", path, sizeof(path)));
	unlink(d->pid_path);
	close(d->pid_fd);
	log_info("event=stopped");
}

int
main(int argc, char **argv)
{
	struct daemon d = { 0 };
	const char *opt_dir = NULL;
	int c;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	while ((c = getopt_long(argc, argv, "D:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'D': opt_dir = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("tegamid %s\n", TEGAMI_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "tegamid: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	umask(027);
	signal(SIGPIPE, SIG_IGN);
	log_init("tegamid", LOG_LEVEL_INFO);
	raise_fd_limit();
	d.data_dir = datadir_choose(opt_dir);
	daemon_open(&d);
	pidfile_take(&d);
	daemon_start(&d);
	event_base_dispatch(d.base);
	daemon_stop(&d);
	return 0;
}
