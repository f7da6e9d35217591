/* tegami queue list|show|hold|release|flush|etrn|delete|bounce (MISSION
 * O4, O5; the seed's HLDDSTQ). list and show read the queue files
 * themselves, so they work while tegamid is stopped. The others talk to the
 * running daemon over its control socket (tegamid_ctl.h), so a change
 * reaches it at once; with tegamid stopped, hold and release of one message
 * append the hold record to its queue file, delete removes the file, a
 * destination domain is held or released in the queue_holds table only,
 * and flush, etrn and bounce fail. */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/datadir.h"
#include "conf/routing.h"
#include "lib/fsutil.h"
#include "lib/strutil.h"
#include "lib/unixsock.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"
#include "mail/dsn.h"
#include "mail/envelope.h"
#include "queue/spool.h"
#include "tegamid_ctl.h"

/* How long one reply line from tegamid may take. A flush sends a progress
 * line every 1,000 messages, so this only bounds a daemon that hangs. */
#define CTL_CLIENT_TIMEOUT_MS 60000

/* --- the control socket's client --- */

static int
ctl_send(int fd, const char *request)
{
	char line[CTL_LINE_MAX + 2];
	int n = snprintf(line, sizeof(line), "%s\n", request);

	if (n < 0 || (size_t)n >= sizeof(line)) {
		errno = E2BIG;
		return -1;
	}
	for (size_t off = 0; off < (size_t)n;) {
		ssize_t w = send(fd, line + off, (size_t)n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

/* Reads into buf (holding *len octets) until it has a whole line. Returns
 * the line's length up to its LF, or -1 on end of file, an error, a
 * timeout or a line over the buffer, with *why. */
static ssize_t
ctl_read_line(int fd, char *buf, size_t size, size_t *len, const char **why)
{
	for (;;) {
		char *nl = memchr(buf, '\n', *len);
		if (nl != NULL)
			return nl - buf;
		if (*len >= size - 1) {
			*why = "reply line too long";
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int pr = poll(&p, 1, CTL_CLIENT_TIMEOUT_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0) {
			*why = "no answer within 60 seconds";
			return -1;
		}
		ssize_t n = pr < 0 ? -1 : recv(fd, buf + *len, size - 1 - *len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why = n == 0 ? "it closed the connection without an answer" : strerror(errno);
			return -1;
		}
		*len += (size_t)n;
	}
}

/* "ok TEXT" / "error TEXT": the TEXT into text; false for another line. */
static bool
ctl_final(const char *line, const char *word, char *text, size_t size)
{
	size_t n = strlen(word);

	if (strncmp(line, word, n) != 0 || (line[n] != ' ' && line[n] != '\0'))
		return false;
	snprintf(text, size, "%s", line[n] == ' ' ? line + n + 1 : "");
	return true;
}

enum cli_ctl_result
cli_ctl_call(struct cli *c, const char *request, cli_ctl_line_fn *fn, void *arg, char *text,
    size_t size)
{
	char buf[2 * CTL_LINE_MAX + 2];
	size_t len = 0;
	long pid;
	const char *why = "";
	enum cli_ctl_result rc = CLI_CTL_BROKEN;

	if (cli_daemon_pid(c, &pid) < 0) {
		snprintf(text, size, "tegamid is not running");
		return CLI_CTL_DOWN;
	}
	int fd = unixsock_connect(c->data_dir, CTL_SOCKET_NAME);
	if (fd < 0) {
		snprintf(text, size, "cannot reach tegamid (pid %ld): %s", pid, strerror(errno));
		return CLI_CTL_BROKEN;
	}
	if (ctl_send(fd, request) < 0) {
		snprintf(text, size, "cannot talk to tegamid (pid %ld): %s", pid, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = ctl_read_line(fd, buf, sizeof(buf), &len, &why);
		if (n < 0) {
			snprintf(text, size, "cannot talk to tegamid (pid %ld): %s", pid, why);
			goto out;
		}
		buf[n] = '\0';
		if (n > 0 && buf[n - 1] == '\r')
			buf[n - 1] = '\0'; /* lib/conn ends lines in CRLF */
		if (ctl_final(buf, "ok", text, size)) {
			rc = CLI_CTL_OK;
			goto out;
		}
		if (ctl_final(buf, "error", text, size)) {
			rc = CLI_CTL_ERROR;
			goto out;
		}
		if (fn != NULL)
			fn(arg, buf);
		len -= (size_t)n + 1;
		memmove(buf, buf + n + 1, len);
	}
out:
	close(fd);
	return rc;
}

/* --- shared helpers --- */

static void
queue_dir(struct cli *c, char *buf, size_t size)
{
	(void)cli_db(c); /* validates (and creates) the data directory */
	datadir_path(c->data_dir, "queue", buf, size);
}

static void
fmt_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "45s", "3m12s", "2h05m", "4d03h". */
static void
fmt_age(time_t secs, char *buf, size_t size)
{
	long long s = secs < 0 ? 0 : (long long)secs;

	if (s < 60)
		snprintf(buf, size, "%llds", s);
	else if (s < 3600)
		snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

/* "2026-03-01T10:00:00Z (in 58s)" or "... (due)". */
static void
fmt_next(time_t next, time_t now, char *buf, size_t size)
{
	char when[32], in[32];

	fmt_time(next, when, sizeof(when));
	fmt_age(next - now, in, sizeof(in));
	snprintf(buf, size, "%s (%s%s)", when, next > now ? "in " : "due", next > now ? in : "");
}

static int
qid_arg(const char *arg)
{
	if (!envelope_qid_valid(arg))
		return cli_error(CLI_USAGE, "'%s' is not a queue id (20 hex digits, as queue list "
		    "shows them)", arg);
	return CLI_OK;
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

static bool
rcpt_waiting(const struct envelope_rcpt *r)
{
	return r->state == RCPT_PENDING || r->state == RCPT_DEFERRED;
}

/* True when path no longer exists (delivered and removed meanwhile). */
static bool
gone(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 && errno == ENOENT;
}

static int
cmp_qid(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The queue ids in dir, sorted (by arrival: a queue id begins with it).
 * Not spool_scan(): that also removes the .tmp files a running daemon is
 * writing. Returns the array (free each and it), or NULL with errno. */
static char **
queue_ids(const char *dir, size_t *n_r)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v;
	size_t n = 0, cap = 64;

	*n_r = 0;
	if (d == NULL)
		return NULL;
	v = xcalloc(cap, sizeof(*v));
	while ((de = readdir(d)) != NULL) {
		if (!envelope_qid_valid(de->d_name))
			continue;
		if (n == cap) {
			cap *= 2;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_qid);
	*n_r = n;
	return v;
}

static void
free_ids(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A string as JSON: jansson takes UTF-8 only, and a remote server's reply
 * may hold any octet; those over 127 become '?' when it is not UTF-8. */
static json_t *
json_text(const char *s)
{
	json_t *j;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	char *copy = xstrdup(s);
	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p > 127)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

/* --- queue list --- */

/* Destination domains held with `queue hold --domain` (queue_holds). */
struct held {
	char **v;
	size_t n;
};

static void
held_add(void *arg, const char *domain, const char *unused)
{
	struct held *h = arg;

	h->v = xreallocarray(h->v, h->n + 1, sizeof(*h->v));
	h->v[h->n++] = xstrdup(domain);
}

static bool
held_has(const struct held *h, const struct envelope_rcpt *r)
{
	if (!r->remote || !rcpt_waiting(r))
		return false;
	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i], domain_of(r->addr)) == 0)
			return true;
	}
	return false;
}

struct list {
	bool json;
	time_t now;
	struct held held;
	size_t messages, waiting, unreadable;
	bool first;              /* JSON: no comma before the first object */
};

static void
list_rcpt_text(const struct list *l, const struct envelope_rcpt *r)
{
	char next[128] = "";

	if (r->state == RCPT_DEFERRED) {
		char when[96];
		fmt_next(r->next_try, l->now, when, sizeof(when));
		snprintf(next, sizeof(next), "  next %s", when);
	}
	printf("    %s  %s  attempts %u%s%s%s%s\n", r->addr, rcpt_state_name(r->state), r->attempts,
	    next, held_has(&l->held, r) ? "  domain held" : "", r->reply != NULL ? "  reply: " : "",
	    r->reply != NULL ? r->reply : "");
}

static void
list_text(const struct list *l, const struct envelope *e)
{
	char age[32];
	const char *sender = e->sender != NULL ? e->sender : "";

	fmt_age(l->now - e->arrival, age, sizeof(age));
	printf("%s  age %s  size %llu  from <%s>%s\n", e->qid, age,
	    (unsigned long long)e->body_size, sender, e->hold ? "  held" : "");
	for (size_t i = 0; i < e->nrcpt; i++)
		list_rcpt_text(l, &e->rcpts[i]);
}

static json_t *
rcpt_json(const struct list *l, const struct envelope_rcpt *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "address", json_text(r->addr));
	json_object_set_new(o, "transport", json_string(r->remote ? "smtp" : "local"));
	json_object_set_new(o, "state", json_string(rcpt_state_name(r->state)));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "next_attempt", r->state == RCPT_DEFERRED ?
	    json_integer((json_int_t)r->next_try) : json_null());
	json_object_set_new(o, "remote_mta", json_text(r->mta));
	json_object_set_new(o, "last_reply", json_text(r->reply));
	json_object_set_new(o, "domain_held", json_boolean(held_has(&l->held, r)));
	return o;
}

static json_t *
message_json(const struct list *l, const struct envelope *e)
{
	json_t *o = json_object(), *rcpts = json_array();

	json_object_set_new(o, "qid", json_string(e->qid));
	json_object_set_new(o, "arrival", json_integer((json_int_t)e->arrival));
	json_object_set_new(o, "age", json_integer((json_int_t)(l->now - e->arrival)));
	json_object_set_new(o, "size", json_integer((json_int_t)e->body_size));
	json_object_set_new(o, "sender", json_text(e->sender != NULL ? e->sender : ""));
	json_object_set_new(o, "held", json_boolean(e->hold));
	for (size_t i = 0; i < e->nrcpt; i++)
		json_array_append_new(rcpts, rcpt_json(l, &e->rcpts[i]));
	json_object_set_new(o, "recipients", rcpts);
	return o;
}

/* One JSON object per line inside the array: streamed, so a queue of
 * 100,000 messages is never held in memory at once. */
static void
list_json_put(struct list *l, json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

	printf("%s%s", l->first ? "[\n" : ",\n", text != NULL ? text : "{}");
	l->first = false;
	free(text);
	json_decref(o);
}

static void
list_one(struct list *l, const char *dir, const char *qid)
{
	char path[4200];
	const char *error = "";
	uint64_t off;

	spool_path(dir, qid, path, sizeof(path));
	struct envelope *e = spool_load(path, false, &off, &error);
	if (e == NULL) {
		if (gone(path))
			return;
		l->unreadable++;
		if (l->json) {
			json_t *o = json_object();
			json_object_set_new(o, "qid", json_string(qid));
			json_object_set_new(o, "error", json_text(error));
			list_json_put(l, o);
		} else {
			printf("%s  unreadable: %s\n", qid, error);
		}
		return;
	}
	l->messages++;
	for (size_t i = 0; i < e->nrcpt; i++)
		l->waiting += rcpt_waiting(&e->rcpts[i]);
	if (l->json)
		list_json_put(l, message_json(l, e));
	else
		list_text(l, e);
	envelope_free(&e);
}

static void
list_summary(const struct list *l)
{
	if (l->json) {
		printf("%s]\n", l->first ? "[" : "\n");
		return;
	}
	if (l->messages == 0 && l->unreadable == 0) {
		printf("queue is empty\n");
	} else {
		printf("%zu message%s, %zu recipient%s waiting", l->messages,
		    l->messages == 1 ? "" : "s", l->waiting, l->waiting == 1 ? "" : "s");
		if (l->unreadable > 0)
			printf(", %zu unreadable file%s", l->unreadable, l->unreadable == 1 ? "" : "s");
		printf("\n");
	}
	for (size_t i = 0; i < l->held.n; i++)
		printf("%s%s", i == 0 ? "held domains: " : " ", l->held.v[i]);
	if (l->held.n > 0)
		printf("\n");
}

int
cmd_queue_list(struct cli *c, int argc, char **argv)
{
	struct list l = { .first = true };
	char dir[4096];
	size_t n;

	if (argc > 1 || (argc == 1 && strcmp(argv[0], "--json") != 0))
		return cli_error(CLI_USAGE, "usage: tegami queue list [--json]");
	l.json = argc == 1;
	queue_dir(c, dir, sizeof(dir));
	if (routing_hold_list(cli_db(c), held_add, &l.held) < 0)
		return cli_error(CLI_FAIL, "cannot read the held domains");
	char **ids = queue_ids(dir, &n);
	if (ids == NULL) {
		cli_error(CLI_FAIL, "cannot read %s: %s", dir, strerror(errno));
		free_ids(l.held.v, l.held.n);
		return CLI_FAIL;
	}
	l.now = time(NULL);
	for (size_t i = 0; i < n; i++)
		list_one(&l, dir, ids[i]);
	list_summary(&l);
	free_ids(ids, n);
	free_ids(l.held.v, l.held.n);
	return CLI_OK;
}

/* --- queue show --- */

static void
show_rcpt(const struct envelope_rcpt *r, time_t now)
{
	char notify[64], next[96];

	printf("recipient: <%s> (%s)\n", r->addr, r->remote ? "smtp" : "local");
	if (r->orig != NULL && r->orig[0] != '\0' && strcasecmp(r->orig, r->addr) != 0)
		printf("  original: <%s>\n", r->orig);
	printf("  state: %s, %u attempt%s", rcpt_state_name(r->state), r->attempts,
	    r->attempts == 1 ? "" : "s");
	if (r->state == RCPT_DEFERRED) {
		fmt_next(r->next_try, now, next, sizeof(next));
		printf(", next %s", next);
	}
	printf("\n");
	if (r->notify != 0) {
		dsn_notify_format(r->notify, notify, sizeof(notify));
		printf("  notify: %s\n", notify);
	}
	if (r->orcpt != NULL)
		printf("  orcpt: %s\n", r->orcpt);
	if (r->mta != NULL && r->mta[0] != '\0')
		printf("  remote mta: %s\n", r->mta);
	if (r->reply != NULL && r->reply[0] != '\0')
		printf("  last reply: %s\n", r->reply);
}

static void
show_envelope(const struct envelope *e, time_t now)
{
	char when[32], age[32];

	fmt_time(e->arrival, when, sizeof(when));
	fmt_age(now - e->arrival, age, sizeof(age));
	printf("queue id: %s\n", e->qid);
	printf("arrival: %s (age %s)\n", when, age);
	printf("size: %llu\n", (unsigned long long)e->body_size);
	printf("sender: <%s>\n", e->sender != NULL ? e->sender : "");
	if (e->envid != NULL) {
		/* Kept as received (xtext, RFC 3461 §4): shown decoded. */
		char envid[DSN_ENVID_MAX + 1];
		printf("envid: %s\n", dsn_envid_parse(e->envid, envid, sizeof(envid)) == 0 ?
		    envid : e->envid);
	}
	if (e->ret != DSN_RET_DEFAULT)
		printf("ret: %s\n", dsn_ret_name((enum dsn_ret)e->ret));
	printf("held: %s\n", e->hold ? "yes" : "no");
	for (size_t i = 0; i < e->nrcpt; i++)
		show_rcpt(&e->rcpts[i], now);
}

/* The header block, up to the blank line. A header line comes from whoever
 * sent the message: control octets (but TAB) are shown as '?', so it
 * cannot drive the terminal. */
static void
show_headers(struct evbuffer *body)
{
	struct evbuffer_ptr end = evbuffer_search(body, "\n\n", 2, NULL);
	size_t len = end.pos >= 0 ? (size_t)end.pos + 1 : evbuffer_get_length(body);

	printf("\nheaders:\n");
	if (len == 0)
		return;
	const unsigned char *p = evbuffer_pullup(body, (ev_ssize_t)len);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = p[i];
		if (i == 0 || p[i - 1] == '\n')
			fputs("  ", stdout);
		putchar(ch == '\n' || ch == '\t' || (ch >= 0x20 && ch != 0x7f) ? ch : '?');
	}
	if (len > 0 && p[len - 1] != '\n')
		putchar('\n');
}

/* What the previous record of each recipient said: a record that changes
 * only the flags says a report was queued. */
struct history {
	time_t now;
	size_t nrcpt;
	struct envelope_rcpt *prev;
	size_t lines;
};

static void
history_line(void *arg, size_t idx, const struct envelope_rcpt *r)
{
	struct history *h = arg;
	struct envelope_rcpt *p = &h->prev[idx];
	char when[32] = "-", next[64];

	if (r->updated != 0)
		fmt_time(r->updated, when, sizeof(when));
	h->lines++;
	if (p->state == r->state && p->attempts == r->attempts && p->flags != r->flags) {
		bool delay = (r->flags & ~p->flags & RCPT_F_DELAY_NOTIFIED) != 0;
		printf("  %s  <%s>  %s report queued\n", when, r->addr, delay ? "delay" : "final");
	} else {
		printf("  %s  <%s>  %s  attempt %u", when, r->addr, rcpt_state_name(r->state),
		    r->attempts);
		if (r->state == RCPT_DEFERRED) {
			fmt_time(r->next_try, next, sizeof(next));
			printf("  next %s", next);
		}
		if (r->mta != NULL && r->mta[0] != '\0')
			printf("  mta %s", r->mta);
		printf("%s%s\n", r->reply != NULL ? "  " : "", r->reply != NULL ? r->reply : "");
	}
	p->state = r->state;
	p->attempts = r->attempts;
	p->flags = r->flags;
}

static int
show_history(const char *path, const struct envelope *e, time_t now)
{
	struct history h = { .now = now, .nrcpt = e->nrcpt };
	const char *error = "";

	h.prev = xcalloc(e->nrcpt, sizeof(*h.prev));
	printf("\nhistory:\n");
	int rc = spool_history(path, history_line, &h, &error);
	free(h.prev);
	if (rc < 0)
		return cli_error(CLI_FAIL, "cannot read the history: %s", error);
	if (h.lines == 0)
		printf("  no delivery attempt yet\n");
	return CLI_OK;
}

int
cmd_queue_show(struct cli *c, int argc, char **argv)
{
	char dir[4096], path[4200];
	const char *error = "";
	uint64_t off;
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami queue show QID");
	if ((rc = qid_arg(argv[0])) != CLI_OK)
		return rc;
	queue_dir(c, dir, sizeof(dir));
	spool_path(dir, argv[0], path, sizeof(path));
	struct envelope *e = spool_load(path, true, &off, &error);
	if (e == NULL) {
		if (gone(path))
			return cli_error(CLI_FAIL, "no message %s in the queue", argv[0]);
		return cli_error(CLI_FAIL, "%s: %s", argv[0], error);
	}
	time_t now = time(NULL);
	show_envelope(e, now);
	show_headers(e->body);
	fflush(stdout);
	rc = show_history(path, e, now);
	envelope_free(&e);
	return rc;
}

/* --- the commands that change the queue --- */

/* Prints the daemon's last line, or says why it failed. */
static int
ctl_result(enum cli_ctl_result r, const char *text)
{
	if (r == CLI_CTL_OK) {
		printf("%s\n", text);
		return CLI_OK;
	}
	return cli_error(CLI_FAIL, "%s", text);
}

/* True when the queue file at path is version 1 (from before per-recipient
 * state): a record appended to it would be read as part of the message. */
static bool
old_format(const char *path)
{
	char head[16] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	ssize_t n = read(fd, head, sizeof(head) - 1);
	close(fd);
	return n > 0 && strncmp(head, "tegami-queue 1\n", 15) == 0;
}

/* tegamid stopped: the hold record goes straight into the queue file; the
 * daemon reads it when it loads the queue. */
static int
hold_offline(struct cli *c, const char *qid, bool hold)
{
	char dir[4096], path[4200], rec[16];

	queue_dir(c, dir, sizeof(dir));
	spool_path(dir, qid, path, sizeof(path));
	if (gone(path))
		return cli_error(CLI_FAIL, "no message %s in the queue", qid);
	if (old_format(path))
		return cli_error(CLI_FAIL, "%s is an old-format queue file: start tegamid to "
		    "deliver it", qid);
	size_t len = spool_record_hold(hold, rec, sizeof(rec));
	if (spool_append(dir, qid, rec, len) < 0)
		return cli_error(CLI_FAIL, "cannot write the queue file of %s: %s", qid,
		    strerror(errno));
	printf("%s %s (tegamid is not running: recorded in the queue file)\n",
	    hold ? "held" : "released", qid);
	return CLI_OK;
}

static int
hold_message(struct cli *c, const char *qid, bool hold)
{
	char req[64], text[CTL_LINE_MAX + 1];
	int rc;

	if ((rc = qid_arg(qid)) != CLI_OK)
		return rc;
	snprintf(req, sizeof(req), "queue %s %s", hold ? "hold" : "release", qid);
	enum cli_ctl_result r = cli_ctl_call(c, req, NULL, NULL, text, sizeof(text));
	if (r == CLI_CTL_DOWN)
		return hold_offline(c, qid, hold);
	return ctl_result(r, text);
}

/* The queue_holds table first (the daemon reads it at each decision, and
 * it survives a restart), then the running daemon for what it has queued. */
static int
hold_domain(struct cli *c, const char *arg, bool hold)
{
	char domain[ADDR_DOMAIN_MAX + 1], req[ADDR_DOMAIN_MAX + 32], text[CTL_LINE_MAX + 1];
	char *error = NULL;
	int rc;

	if ((rc = cli_domain_arg(arg, domain, sizeof(domain))) != CLI_OK)
		return rc;
	if (routing_hold_set(cli_db(c), domain, hold, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	snprintf(req, sizeof(req), "queue %s %s", hold ? "hold-domain" : "release-domain", domain);
	enum cli_ctl_result r = cli_ctl_call(c, req, NULL, NULL, text, sizeof(text));
	if (r == CLI_CTL_OK || r == CLI_CTL_DOWN) {
		printf("mail for %s %s (%s)\n", domain, hold ? "held" : "released", text);
		return CLI_OK;
	}
	return cli_error(CLI_FAIL, "mail for %s is %s in the table, but %s", domain,
	    hold ? "held" : "released", text);
}

static int
hold_cmd(struct cli *c, int argc, char **argv, bool hold)
{
	if (argc == 1 && argv[0][0] != '-')
		return hold_message(c, argv[0], hold);
	if (argc == 2 && strcmp(argv[0], "--domain") == 0)
		return hold_domain(c, argv[1], hold);
	return cli_error(CLI_USAGE, "usage: tegami queue %s QID | --domain DOMAIN",
	    hold ? "hold" : "release");
}

int
cmd_queue_hold(struct cli *c, int argc, char **argv)
{
	return hold_cmd(c, argc, argv, true);
}

int
cmd_queue_release(struct cli *c, int argc, char **argv)
{
	return hold_cmd(c, argc, argv, false);
}

/* "progress N/M" from tegamid, shown as it comes. */
static void
flush_progress(void *arg, const char *line)
{
	if (strncmp(line, "progress ", 9) == 0)
		printf("flushed %s messages\n", line + 9);
	else
		printf("%s\n", line);
	fflush(stdout);
}

int
cmd_queue_flush(struct cli *c, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1] = "", req[ADDR_DOMAIN_MAX + 32], text[CTL_LINE_MAX + 1];
	int rc;

	if (argc == 2 && strcmp(argv[0], "--domain") == 0) {
		if ((rc = cli_domain_arg(argv[1], domain, sizeof(domain))) != CLI_OK)
			return rc;
	} else if (argc != 0) {
		return cli_error(CLI_USAGE, "usage: tegami queue flush [--domain DOMAIN]");
	}
	snprintf(req, sizeof(req), "queue flush%s%s", domain[0] != '\0' ? " " : "", domain);
	return ctl_result(cli_ctl_call(c, req, flush_progress, NULL, text, sizeof(text)), text);
}

int
cmd_queue_etrn(struct cli *c, int argc, char **argv)
{
	char text[CTL_LINE_MAX + 1];

	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami queue etrn");
	return ctl_result(cli_ctl_call(c, "queue etrn", NULL, NULL, text, sizeof(text)), text);
}

int
cmd_queue_delete(struct cli *c, int argc, char **argv)
{
	char req[64], text[CTL_LINE_MAX + 1], dir[4096];
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami queue delete QID");
	if ((rc = qid_arg(argv[0])) != CLI_OK)
		return rc;
	snprintf(req, sizeof(req), "queue delete %s", argv[0]);
	enum cli_ctl_result r = cli_ctl_call(c, req, NULL, NULL, text, sizeof(text));
	if (r != CLI_CTL_DOWN)
		return ctl_result(r, text);
	queue_dir(c, dir, sizeof(dir));
	if (spool_remove(dir, argv[0]) < 0) {
		if (errno == ENOENT)
			return cli_error(CLI_FAIL, "no message %s in the queue", argv[0]);
		return cli_error(CLI_FAIL, "cannot remove %s: %s", argv[0], strerror(errno));
	}
	(void)fs_fsync_dir(dir); /* the removal survives a crash */
	printf("deleted %s (tegamid is not running: queue file removed)\n", argv[0]);
	return CLI_OK;
}

int
cmd_queue_bounce(struct cli *c, int argc, char **argv)
{
	char req[64], text[CTL_LINE_MAX + 1];
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami queue bounce QID");
	if ((rc = qid_arg(argv[0])) != CLI_OK)
		return rc;
	snprintf(req, sizeof(req), "queue bounce %s", argv[0]);
	return ctl_result(cli_ctl_call(c, req, NULL, NULL, text, sizeof(text)), text);
}
