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
#include <openssl/ssl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/poplog.h"
#include "auth/screen.h"
#include "conf/datadir.h"
#include "conf/directory.h"
#include "conf/relaylists.h"
#include "conf/profile.h"
#include "conf/routing.h"
#include "conf/settings.h"
#include "deliver/route.h"
#include "lib/conn.h"
#include "lib/db.h"
#include "lib/dns.h"
#include "lib/dnsbl.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/privdrop.h"
#include "lib/sdnotify.h"
#include "lib/tls.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"
#include "mail/message.h"
#include "pop3d/pop3_server.h"
#include "queue/queue_runner.h"
#include "smtpd/smtp_server.h"
#include "tegamid_ctl.h"

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
	struct routing *routing;
	struct profiles *profiles;
	struct dns *dns;
	struct dnsbl *dnsbl;
	struct router *router;
	struct queue_runner *queue;
	struct auth_service *auth;
	struct screen *screen;
	struct poplog *poplog;     /* the POP-before-SMTP record on disk (R1, P3) */
	struct smtp_server *smtp;
	struct pop3_server *pop3;
	struct ctl_server *ctl;
	struct event *ev_term, *ev_int, *ev_hup, *ev_poll;
	struct privdrop priv;      /* the data directory's owner, whom root becomes */
	char notified[160];        /* the last STATUS= sent to the service manager */
};

static void __attribute__((noreturn))
start_failed(struct daemon *d, const char *what, const char *err)
{
	log_error("event=start_failed what=%s error=\"%s\"", what, err);
	fprintf(stderr, "tegamid: %s: %s\n", what, err);
	if (d->pid_path[0] != '\0')
		unlink(d->pid_path);
	exit(1);
}

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
	enum log_target target;

	if (log_level_parse(cfg->log_level, &level) == 0)
		log_set_level(level);
	if (log_target_parse(cfg->log_target, &target) == 0)
		log_set_target(target);
}

/* Tells the service manager (systemd, Type=notify) what changed: extra is
 * "READY=1\n" and the like, or "" for the status line alone, which is sent
 * only when it differs from the last one (the poll timer calls this every
 * second). */
static void
notify_status(struct daemon *d, const char *extra)
{
	char status[sizeof(d->notified)];

	if (!sdnotify_enabled())
		return;
	snprintf(status, sizeof(status), "STATUS=sessions: smtp %zu, pop3 %zu; queue: %zu",
	    smtp_server_sessions(d->smtp), pop3_server_sessions(d->pop3),
	    queue_runner_active(d->queue));
	if (extra[0] == '\0' && strcmp(status, d->notified) == 0)
		return;
	if (sdnotify_sendf("%s%s", extra, status) < 0 && extra[0] != '\0')
		log_warn("event=notify_failed state=\"%.*s\" error=\"%s\"",
		    (int)strcspn(extra, "\n"), extra, strerror(errno));
	memcpy(d->notified, status, sizeof(status));
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

/* Listener lines "smtp: ADDR,..." for the state file and the start banner. */
static void
describe_listeners(struct daemon *d, char *buf, size_t size, const char *sep)
{
	char where[1024];
	size_t o = 0;

	static const char *const pop3_names[POP3_LISTENER_KINDS] = { "pop3", "pop3s" };

	buf[0] = '\0';
	for (int k = 0; k < SMTP_LISTENER_KINDS + POP3_LISTENER_KINDS; k++) {
		if (k < SMTP_LISTENER_KINDS)
			smtp_server_describe(d->smtp, (enum smtp_listener_kind)k, where, sizeof(where));
		else
			pop3_server_describe(d->pop3, (enum pop3_listener_kind)(k - SMTP_LISTENER_KINDS),
			    where, sizeof(where));
		int n = snprintf(buf + o, size - o, "%s: %s%s", k < SMTP_LISTENER_KINDS ?
		    smtp_listener_name(k) : pop3_names[k - SMTP_LISTENER_KINDS],
		    where[0] != '\0' ? where : "off", sep);
		if (n < 0 || (size_t)n >= size - o)
			break;
		o += (size_t)n;
	}
}

/* DATA/tegamid.state: what `tegami status` shows of the running daemon. */
static void
state_write(struct daemon *d)
{
	char path[4200], tmp[4300], listeners[4096];

	describe_listeners(d, listeners, sizeof(listeners), "\n");
	datadir_path(d->data_dir, "tegamid.state", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	fprintf(f, "pid: %ld\nversion: %s\nhostname: %s\ntls: %s\n%s", (long)getpid(),
	    TEGAMI_VERSION, d->cfg.server_hostname, smtp_server_tls(d->smtp) != NULL ?
	    "on" : "off", listeners);
	if (fclose(f) == 0)
		rename(tmp, path);
}

/* A self-signed certificate and key in dir, made as the data directory's
 * owner, who reads them again at each reload. 0, or -1 with a reason. */
static int
selfsigned_make(struct daemon *d, const char *dir, const char *cert, const char *key,
    char *err, size_t errsize)
{
	char back[256];
	int rc;

	if (privdrop_as_owner(&d->priv, err, errsize) < 0)
		return -1;
	if (fs_mkdir_p(dir, 0750) < 0) {
		snprintf(err, errsize, "cannot create %.*s: %s", 400, dir, strerror(errno));
		rc = -1;
	} else {
		rc = tls_selfsigned_create(d->cfg.server_hostname, cert, key, err, errsize);
	}
	if (privdrop_as_root(&d->priv, back, sizeof(back)) < 0)
		fatalx("%s", back);
	return rc;
}

/* The TLS context from the settings; with no certificate configured, a
 * self-signed one is made in DATA/tls/ on first use (A2). Returns NULL with
 * a reason in err. */
static SSL_CTX *
tls_load(struct daemon *d, char *err, size_t errsize)
{
	char dir[4200], cert[4300], key[4300];
	struct tls_settings ts = {
		.cert_file = d->cfg.tls_cert_file, .key_file = d->cfg.tls_key_file,
		.min_protocol = d->cfg.tls_min_protocol, .ciphers = d->cfg.tls_ciphers,
	};

	if (ts.cert_file[0] == '\0') {
		datadir_path(d->data_dir, "tls", dir, sizeof(dir));
		snprintf(cert, sizeof(cert), "%s/self-signed.crt", dir);
		snprintf(key, sizeof(key), "%s/self-signed.key", dir);
		if (access(cert, R_OK) < 0 || access(key, R_OK) < 0) {
			if (selfsigned_make(d, dir, cert, key, err, errsize) < 0)
				return NULL;
			log_info("event=tls_selfsigned cert=%s hostname=%s "
			    "note=\"set tls.cert_file and tls.key_file for a real certificate\"",
			    cert, d->cfg.server_hostname);
		}
		ts.cert_file = cert;
		ts.key_file = key;
	} else if (ts.key_file[0] == '\0') {
		ts.key_file = ts.cert_file; /* key and chain in one PEM file */
	}
	return tls_context_create(&ts, err, errsize);
}

/* Installs a fresh TLS context; on failure keeps the old one (reload) and
 * returns -1. */
static int
tls_apply(struct daemon *d)
{
	char err[512];
	SSL_CTX *ctx = tls_load(d, err, sizeof(err));

	if (ctx == NULL) {
		char note[256] = "";
		if (d->priv.dropped)
			snprintf(note, sizeof(note), " note=\"tegamid now runs as %s: the certificate "
			    "and key must be readable by %s, or restart it\"", d->priv.name, d->priv.name);
		log_error("event=tls_failed error=\"%s\"%s", err, note);
		return -1;
	}
	smtp_server_set_tls(d->smtp, ctx);
	pop3_server_set_tls(d->pop3, ctx);
	SSL_CTX_free(ctx);
	return 0;
}

/* The client side of TLS for outbound mail (relay.tls_*). On failure the
 * old context stays. */
static void
client_tls_apply(struct daemon *d)
{
	char err[512];
	SSL_CTX *ctx = tls_client_context_create(d->cfg.relay_tls_min_protocol,
	    d->cfg.relay_tls_ca_file, err, sizeof(err));

	if (ctx == NULL) {
		log_error("event=relay_tls_failed error=\"%s\"", err);
		return;
	}
	queue_runner_set_tls(d->queue, ctx);
	SSL_CTX_free(ctx);
}

static void
dns_settings(const struct config *cfg, struct dns_settings *ds)
{
	ds->servers = cfg->dns_servers;
	ds->timeout_ms = (unsigned)cfg->dns_timeout;
	ds->tries = (unsigned)cfg->dns_tries;
}

/* The relay-control lists (R1, R2) from the database; on an error the
 * lists in force stay. */
static void
relay_lists_apply(struct daemon *d)
{
	char *error = NULL;
	struct relay_lists *rl = relay_lists_load(d->db, &error);
	size_t domains, networks, refused;

	if (rl == NULL) {
		log_error("event=relay_lists_failed error=\"%s\" kept=previous", error);
		free(error);
		return;
	}
	relay_lists_counts(rl, &domains, &networks, &refused);
	log_info("event=relay_lists mode=%s near_domains=%zu relay_networks=%zu refused=%zu "
	    "dnsbl_zones=\"%s\"", d->cfg.smtp_relay_mode, domains, networks, refused,
	    d->cfg.smtp_dnsbl_zones);
	smtp_server_set_relay_lists(d->smtp, rl);
}

static bool
listen_changed(const struct config *a, const struct config *b)
{
	for (int k = 0; k < CONFIG_LISTENERS; k++) {
		if (a->listeners[k].enabled != b->listeners[k].enabled)
			return true;
	}
	return strcmp(a->smtp_listen, b->smtp_listen) != 0 ||
	    strcmp(a->pop3_listen, b->pop3_listen) != 0 ||
	    strcmp(a->pop3s_listen, b->pop3s_listen) != 0 ||
	    strcmp(a->pop3_alwssl, b->pop3_alwssl) != 0 ||
	    strcmp(a->submission_listen, b->submission_listen) != 0 ||
	    strcmp(a->smtps_listen, b->smtps_listen) != 0;
}

static bool
tls_changed(const struct config *a, const struct config *b)
{
	return strcmp(a->tls_cert_file, b->tls_cert_file) != 0 ||
	    strcmp(a->tls_key_file, b->tls_key_file) != 0 ||
	    strcmp(a->tls_min_protocol, b->tls_min_protocol) != 0 ||
	    strcmp(a->tls_ciphers, b->tls_ciphers) != 0;
}

static void
reload(struct daemon *d, const char *why)
{
	struct config next, old;
	char *error = NULL;
	const char *lerr = NULL;

	if (config_load(d->db, &next, &error) < 0) {
		log_error("event=reload_failed reason=%s error=\"%s\"", why, error);
		free(error);
		return;
	}
	old = d->cfg;
	d->cfg = next;
	apply_log_level(&d->cfg);
	queue_runner_set_hostname(d->queue, d->cfg.server_hostname);
	queue_runner_reload(d->queue);
	profiles_reload(d->profiles, d->cfg.relay_smarthost);
	if ((tls_changed(&old, &d->cfg) || strcmp(why, "sighup") == 0) && tls_apply(d) < 0) {
		memcpy(d->cfg.tls_cert_file, old.tls_cert_file, sizeof(old.tls_cert_file));
		memcpy(d->cfg.tls_key_file, old.tls_key_file, sizeof(old.tls_key_file));
		memcpy(d->cfg.tls_min_protocol, old.tls_min_protocol, sizeof(old.tls_min_protocol));
		memcpy(d->cfg.tls_ciphers, old.tls_ciphers, sizeof(old.tls_ciphers));
	}
	screen_reload(d->screen);
	relay_lists_apply(d);
	if (strcmp(old.relay_tls_min_protocol, d->cfg.relay_tls_min_protocol) != 0 ||
	    strcmp(old.relay_tls_ca_file, d->cfg.relay_tls_ca_file) != 0)
		client_tls_apply(d);
	if (strcmp(old.dns_servers, d->cfg.dns_servers) != 0 ||
	    old.dns_timeout != d->cfg.dns_timeout || old.dns_tries != d->cfg.dns_tries) {
		struct dns_settings ds;
		const char *derr;
		dns_settings(&d->cfg, &ds);
		if (dns_configure(d->dns, &ds, &derr) < 0)
			log_error("event=dns_settings_failed error=\"%s\" kept=previous", derr);
	}
	if (listen_changed(&old, &d->cfg) && (smtp_server_listen(d->smtp, &lerr) < 0 ||
	    pop3_server_listen(d->pop3, &lerr) < 0)) {
		log_error("event=listen_failed error=\"%s\" kept=previous", lerr);
		memcpy(d->cfg.smtp_listen, old.smtp_listen, sizeof(old.smtp_listen));
		memcpy(d->cfg.submission_listen, old.submission_listen, sizeof(old.submission_listen));
		memcpy(d->cfg.smtps_listen, old.smtps_listen, sizeof(old.smtps_listen));
		memcpy(d->cfg.pop3_listen, old.pop3_listen, sizeof(old.pop3_listen));
		memcpy(d->cfg.pop3s_listen, old.pop3s_listen, sizeof(old.pop3s_listen));
		memcpy(d->cfg.pop3_alwssl, old.pop3_alwssl, sizeof(old.pop3_alwssl));
		for (int k = 0; k < CONFIG_LISTENERS; k++)
			d->cfg.listeners[k].enabled = old.listeners[k].enabled;
	}
	state_write(d);
	log_info("event=reloaded reason=%s", why);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		sdnotify_reloading();
		reload(d, "sighup");
		notify_status(d, "READY=1\n");
		return;
	}
	log_info("event=stopping signal=%d", (int)sig);
	notify_status(d, "STOPPING=1\n");
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
	notify_status(d, "");
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
	/* Runtime state, not configuration: without it POP-before-SMTP still
	 * works, from memory, until the next restart. */
	d->poplog = poplog_open(d->data_dir, &error);
	if (d->poplog == NULL) {
		log_error("event=poplog_unusable error=\"%s\" note=\"POP logins are kept in memory "
		    "only\"", error);
		free(error);
	}
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

/* Ports bound and TLS key read as root: from here on, the owner of the data
 * directory, before the first client byte (STYLE, "Process and privilege"). */
static void
become_owner(struct daemon *d)
{
	char err[512];

	if (privdrop_final(&d->priv, true, err, sizeof(err)) < 0)
		start_failed(d, "privilege drop", err);
	if (d->priv.dropped)
		log_info("event=privileges_dropped user=%s uid=%lu gid=%lu kept=CAP_NET_BIND_SERVICE",
		    d->priv.name, (unsigned long)d->priv.uid, (unsigned long)d->priv.gid);
	else if (geteuid() == 0)
		log_warn("event=running_as_root data=%s note=\"the data directory belongs to root; "
		    "chown -R to an unprivileged user (vmail) to run as that user\"", d->data_dir);
}

static void
pop_record_load(void *arg, const char *ip, time_t at)
{
	screen_pop_login(arg, ip, at);
}

static void
pop_record_note(void *arg, const char *ip, time_t at)
{
	poplog_note(arg, ip, at);
}

/* R1, P3: the POP logins of before the restart, back into the screen; new
 * ones go to disk from now on. */
static void
pop_record_restore(struct daemon *d)
{
	if (d->poplog == NULL)
		return;
	int n = poplog_load(d->poplog, pop_record_load, d->screen);

	if (n < 0)
		log_error("event=poplog_load_failed note=\"POP-before-SMTP starts empty\"");
	else if (n > 0)
		log_info("event=poplog_loaded logins=%d", n);
	poplog_start(d->poplog, d->base, d->workers);
	screen_set_pop_hook(d->screen, pop_record_note, d->poplog);
}

static void
daemon_start(struct daemon *d)
{
	const char *lerr = NULL;
	char where[4096];

	d->base = event_base_new();
	if (d->base == NULL)
		fatalx("event_base_new failed");
	d->workers = workers_create(d->base, (unsigned)d->cfg.queue_workers);
	d->dir = directory_create(d->db);
	d->routing = routing_create(d->db);
	d->profiles = profiles_create(d->db, d->data_dir);
	profiles_reload(d->profiles, d->cfg.relay_smarthost);
	struct dns_settings ds;
	const char *derr;
	dns_settings(&d->cfg, &ds);
	d->dns = dns_create(d->base, &ds, &derr);
	if (d->dns == NULL)
		start_failed(d, "dns", derr);
	d->router = router_create(d->base, d->dns, d->routing, d->dir, &d->cfg);
	struct queue_runner_deps qdeps = {
		.base = d->base, .workers = d->workers, .cfg = &d->cfg, .dir = d->dir,
		.routing = d->routing, .router = d->router, .profiles = d->profiles,
		.queue_dir = d->queue_dir,
		.mail_root = d->mail_root,
	};
	d->queue = queue_runner_create(&qdeps);
	queue_runner_set_hostname(d->queue, d->cfg.server_hostname);
	client_tls_apply(d);
	d->auth = auth_service_create(d->base, d->workers, d->dir, &d->cfg);
	d->screen = screen_create(d->db);
	pop_record_restore(d);
	d->dnsbl = dnsbl_create(d->base, d->dns);
	struct smtp_server_deps deps = {
		.base = d->base, .cfg = &d->cfg, .dir = d->dir, .workers = d->workers,
		.queue = d->queue, .auth = d->auth, .screen = d->screen, .dnsbl = d->dnsbl,
		.data_dir = d->data_dir,
	};
	d->smtp = smtp_server_create(&deps);
	relay_lists_apply(d);
	struct pop3_server_deps pdeps = {
		.base = d->base, .cfg = &d->cfg, .dir = d->dir, .workers = d->workers,
		.auth = d->auth, .screen = d->screen, .mail_root = d->mail_root,
	};
	d->pop3 = pop3_server_create(&pdeps);
	if (tls_apply(d) < 0) {
		fprintf(stderr, "tegamid: TLS cannot start (see the log line above); "
		    "fix tls.cert_file / tls.key_file\n");
		unlink(d->pid_path);
		exit(1);
	}
	if (smtp_server_listen(d->smtp, &lerr) < 0 || pop3_server_listen(d->pop3, &lerr) < 0) {
		log_error("event=listen_failed error=\"%s\"", lerr);
		fprintf(stderr, "tegamid: cannot listen: %s (check smtp.listen, "
		    "submission.listen, smtps.listen, pop3.listen, pop3s.listen)\n", lerr);
		unlink(d->pid_path);
		exit(1);
	}
	become_owner(d);
	time_t started = time(NULL);
	queue_runner_recover(d->queue);
	queue_runner_sweep_maildirs(d->queue, started);
	queue_runner_reload(d->queue);
	/* Made as the owner, so that only the owner (and root) may connect. */
	d->ctl = ctl_server_create(d->base, d->queue, d->data_dir);
	if (d->ctl == NULL)
		log_warn("event=ctl_failed dir=%s error=\"%s\" note=\"queue commands cannot reach "
		    "the daemon\"", d->data_dir, strerror(errno));
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
	describe_listeners(d, where, sizeof(where), " ");
	log_info("event=started version=%s data=%s hostname=%s %s", TEGAMI_VERSION,
	    d->data_dir, d->cfg.server_hostname, where);
	printf("tegamid %s: data in %s\nlistening: %s\n"
	    "add a user: tegami -D %s user add NAME@%s\n", TEGAMI_VERSION, d->data_dir,
	    where, d->data_dir, DATADIR_DEFAULT_DOMAIN);
	fflush(stdout);
	/* Every listener bound, the queue recovered: ready (sd_notify(3)). */
	notify_status(d, "READY=1\n");
}

static void
daemon_stop(struct daemon *d)
{
	ctl_server_destroy(&d->ctl);
	smtp_server_destroy(&d->smtp);
	dnsbl_destroy(&d->dnsbl);
	pop3_server_destroy(&d->pop3);
	queue_runner_stop(d->queue);
	workers_destroy(&d->workers); /* finishes every write that was started */
	screen_set_pop_hook(d->screen, NULL, NULL);
	poplog_close(&d->poplog);     /* what the last second's logins left */
	queue_runner_destroy(&d->queue);
	router_destroy(&d->router);
	dns_destroy(&d->dns);
	routing_destroy(&d->routing);
	profiles_destroy(&d->profiles);
	conn_free_all(); /* replies still draining to clients that left */
	auth_service_destroy(&d->auth);
	screen_destroy(&d->screen);
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
	sdnotify_close();
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
	char nerr[256];
	if (sdnotify_init(nerr, sizeof(nerr)) < 0)
		log_warn("event=notify_unusable error=\"%s\"", nerr);
	message_init();
	raise_fd_limit();
	d.data_dir = datadir_choose(opt_dir);
	char err[512];
	if (privdrop_plan(&d.priv, d.data_dir, err, sizeof(err)) < 0 ||
	    privdrop_as_owner(&d.priv, err, sizeof(err)) < 0)
		start_failed(&d, "data directory", err);
	daemon_open(&d); /* files made now are the owner's */
	pidfile_take(&d);
	if (privdrop_as_root(&d.priv, err, sizeof(err)) < 0)
		start_failed(&d, "privileges", err);
	daemon_start(&d);
	event_base_dispatch(d.base);
	daemon_stop(&d);
	return 0;
}
