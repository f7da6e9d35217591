/* pop3_session.c: one POP3 client (RFC 1939, CAPA RFC 2449, STLS RFC 2595,
 * AUTH RFC 5034). Commands are handled in order as they arrive (PIPELINING);
 * a command that waits (credential check, opening the maildrop, a RETR being
 * streamed) holds the rest until it is done. */
#include "pop3d/pop3_session.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/screen.h"
#include "conf/directory.h"
#include "conf/settings.h"
#include "deliver/maildrop.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/pop3_wire.h"
#include "mail/sasl.h"

#define RETR_CHUNK 65536
/* Read-ahead (see ahead_load): only messages up to this many octets. */
#define AHEAD_MAX (64 * 1024)
#define AHEAD_NONE SIZE_MAX

static void conn_cb(struct conn *c, enum conn_event ev, void *arg);
static void session_input(struct pop3_session *s);

static void reply(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Replies are gathered by the conn and leave in one write (flush_out). */
static void
reply(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_vprintf(s->conn, POP3_REPLY_MAX, fmt, ap);
	va_end(ap);
}

static void
flush_out(struct pop3_session *s)
{
	conn_flush(s->conn);
}

static size_t
out_pending(struct pop3_session *s)
{
	return conn_pending(s->conn);
}

static void
setup_conn(struct pop3_session *s)
{
	const struct config *cfg = pop3_server_config(s->srv);

	conn_set_timeout(s->conn, (unsigned)(1000 * cfg->pop3_timeout));
	conn_set_line_timeout(s->conn, (unsigned)(1000 * cfg->pop3_command_max_time));
	conn_set_input_max(s->conn, SASL_LINE_MAX + 2);
	conn_set_output_max(s->conn, POP3_OUTPUT_HIGHWAT);
}

struct pop3_session *
pop3_session_create(struct pop3_server *srv, int fd, const struct sockaddr *sa, uint64_t id,
    enum pop3_listener_kind kind, struct ssl_ctx_st *ctx)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	struct event_base *base = pop3_server_base(srv);

	s->srv = srv;
	s->id = id;
	s->kind = kind;
	s->retr.fd = -1;
	s->ahead = evbuffer_new();
	if (s->ahead == NULL)
		fatalx("evbuffer_new failed");
	s->ahead_index = AHEAD_NONE;
	s->next_retr = AHEAD_NONE;
	netaddr_ip(sa, s->ip, sizeof(s->ip));
	s->tls = kind == POP3_LISTENER_TLS;
	s->conn = conn_accept(base, fd, s->tls ? ctx : NULL, conn_cb, s);
	setup_conn(s);
	log_info("event=connect service=pop3 session=%llx client=%s tls=%s",
	    (unsigned long long)id, s->ip, s->tls ? "yes" : "no");
	/* No APOP timestamp: APOP needs the plaintext password (A8). */
	reply(s, "+OK tegami POP3 server ready");
	flush_out(s);
	return s;
}

static void
retr_stop(struct pop3_session *s)
{
	if (s->retr.fd >= 0)
		close(s->retr.fd);
	s->retr.fd = -1;
}

static void
sasl_end(struct pop3_session *s)
{
	if (s->sasl != NULL) {
		sasl_exchange_clear(s->sasl);
		free(s->sasl);
		s->sasl = NULL;
	}
}

void
pop3_session_destroy(struct pop3_session *s)
{
	log_info("event=disconnect service=pop3 session=%llx client=%s user=%s retrieved=%zu "
	    "read_ahead=%zu", (unsigned long long)s->id, s->ip,
	    s->login != NULL ? s->login : "-", s->retrieved, s->ahead_used);
	pop3_server_session_closed(s->srv, s);
	pop3_server_session_gone(s);
	if (s->auth_req != NULL)
		auth_request_cancel(s->auth_req);
	if (s->timer != NULL)
		event_free(s->timer);
	retr_stop(s);
	sasl_end(s);
	maildrop_close(&s->md); /* a dropped connection deletes nothing */
	conn_close(&s->conn); /* the last replies still reach the wire */
	evbuffer_free(s->ahead);
	free(s->user);
	free(s->login);
	free(s);
}

/* Frees the session; its last replies still reach the wire (conn_close). */
static void
finish(struct pop3_session *s)
{
	if (s->busy)
		return;
	pop3_session_destroy(s);
}

static void
close_after(struct pop3_session *s)
{
	s->closing = true;
	s->state = POP3_STATE_CLOSING;
	conn_stop_reading(s->conn);
}

/* --- capabilities and policy --- */

static bool
login_allowed(struct pop3_session *s)
{
	const struct config *cfg = pop3_server_config(s->srv);

	/* pop3.alwssl=only: no login before TLS. */
	return s->tls || strcmp(cfg->pop3_alwssl, "only") != 0;
}

/* A4 for POP3: USER/PASS, PLAIN and LOGIN only under TLS unless allowed. */
static bool
plaintext_ok(struct pop3_session *s)
{
	return login_allowed(s) && (s->tls || pop3_server_config(s->srv)->auth_allow_plaintext);
}

static bool
stls_offered(struct pop3_session *s)
{
	return !s->tls && pop3_server_tls(s->srv) != NULL &&
	    strcmp(pop3_server_config(s->srv)->pop3_alwssl, "none") != 0;
}

static bool
mech_offered(struct pop3_session *s, enum sasl_mech m)
{
	if (!login_allowed(s))
		return false;
	if (m == SASL_MECH_CRAM_MD5)
		return pop3_server_config(s->srv)->auth_cram_md5;
	return plaintext_ok(s);
}

static void
cmd_capa(struct pop3_session *s, char *args)
{
	char sasl[64] = "";
	size_t o = 0;

	reply(s, "+OK Capability list follows");
	reply(s, "TOP");
	reply(s, "UIDL");
	reply(s, "RESP-CODES");
	reply(s, "AUTH-RESP-CODE");
	reply(s, "PIPELINING");
	reply(s, "EXPIRE NEVER");
	reply(s, "LOGIN-DELAY 0");
	if (s->state == POP3_STATE_AUTHORIZATION) {
		if (plaintext_ok(s))
			reply(s, "USER");
		for (int m = 0; m < SASL_MECH_COUNT; m++) {
			if (mech_offered(s, (enum sasl_mech)m))
				o += (size_t)snprintf(sasl + o, sizeof(sasl) - o, " %s", sasl_mech_name(m));
		}
		if (o > 0)
			reply(s, "SASL%s", sasl);
		if (stls_offered(s))
			reply(s, "STLS");
	}
	reply(s, "IMPLEMENTATION tegami");
	reply(s, ".");
}

/* --- AUTHORIZATION --- */

static void
on_fail_delay(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_session *s = arg;

	event_free(s->timer);
	s->timer = NULL;
	s->busy = false;
	reply(s, "-ERR [AUTH] Authentication failed");
	session_input(s);
}

static void
login_failed(struct pop3_session *s, const char *user)
{
	unsigned n;
	int delay = screen_login_failed(pop3_server_screen(s->srv), pop3_server_config(s->srv),
	    s->ip, "failed POP3 login", &n);

	log_info("event=auth_failed service=pop3 session=%llx client=%s user=%s recent=%u",
	    (unsigned long long)s->id, s->ip, user, n);
	if (delay < 0) {
		reply(s, "-ERR [AUTH] Too many failed logins");
		s->busy = false;
		close_after(s);
		return;
	}
	struct timeval tv = { (time_t)delay, 0 };
	s->busy = true;
	s->timer = evtimer_new(pop3_server_base(s->srv), on_fail_delay, s);
	evtimer_add(s->timer, &tv);
}

static void
on_verified(void *arg, bool ok)
{
	struct pop3_session *s = arg;
	char user[SASL_NAME_MAX + 1];

	s->auth_req = NULL;
	snprintf(user, sizeof(user), "%s", s->sasl->authcid);
	sasl_end(s);
	if (!ok) {
		login_failed(s, user);
		if (!s->busy)
			finish(s);
		return;
	}
	s->login = xstrdup(user);
	/* The maildrop is opened (and locked) on a worker; busy until then. */
	pop3_server_open_maildrop(s->srv, s);
}

static void
verify(struct pop3_session *s)
{
	s->busy = true;
	s->auth_req = auth_verify(pop3_server_auth(s->srv), s->sasl, on_verified, s);
}

void
pop3_session_opened(struct pop3_session *s, struct maildrop *md, int err)
{
	uint64_t total = 0;

	s->busy = false;
	if (md == NULL) {
		if (err == EWOULDBLOCK)
			reply(s, "-ERR [IN-USE] Mailbox is locked by another session");
		else if (err == EACCES || err == ENAMETOOLONG || err == ENOTDIR || err == ELOOP)
			reply(s, "-ERR [SYS/PERM] Cannot open the mailbox: %s", strerror(err));
		else
			reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox: %s", strerror(err));
		log_warn("event=maildrop_failed session=%llx user=%s error=\"%s\"",
		    (unsigned long long)s->id, s->login, strerror(err));
		free(s->login);
		s->login = NULL;
		session_input(s);
		return;
	}
	s->md = md;
	for (size_t i = 0; i < md->n; i++)
		total += md->msgs[i].size;
	s->state = POP3_STATE_TRANSACTION;
	screen_pop_login(pop3_server_screen(s->srv), s->ip, time(NULL));
	log_info("event=login service=pop3 session=%llx client=%s user=%s messages=%zu",
	    (unsigned long long)s->id, s->ip, s->login, md->n);
	reply(s, "+OK Logged in, %zu messages (%llu octets)", md->n, (unsigned long long)total);
	pop3_server_settle_maildrop(s->srv, md);
	session_input(s);
}

static void
cmd_user(struct pop3_session *s, char *args)
{
	if (!plaintext_ok(s)) {
		reply(s, "-ERR [AUTH] Plaintext login is not allowed without TLS (use STLS)");
		return;
	}
	if (*args == '\0' || strlen(args) > SASL_NAME_MAX) {
		reply(s, "-ERR Syntax: USER name");
		return;
	}
	free(s->user);
	s->user = str_lower(xstrdup(args));
	reply(s, "+OK");
}

static void
cmd_pass(struct pop3_session *s, char *args)
{
	if (s->user == NULL) {
		reply(s, "-ERR USER first");
		return;
	}
	if (strlen(args) > SASL_SECRET_MAX) {
		reply(s, "-ERR [AUTH] Authentication failed");
		return;
	}
	s->sasl = xcalloc(1, sizeof(*s->sasl));
	s->sasl->mech = SASL_MECH_PLAIN;
	str_copy(s->sasl->authcid, s->user, sizeof(s->sasl->authcid));
	str_copy(s->sasl->password, args, sizeof(s->sasl->password));
	free(s->user);
	s->user = NULL;
	verify(s);
}

static void
sasl_step(struct pop3_session *s, enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CHALLENGE:
		reply(s, "+ %s", challenge);
		return;
	case SASL_VERIFY:
		verify(s);
		return;
	case SASL_CANCELLED:
		sasl_end(s);
		reply(s, "-ERR Authentication cancelled");
		return;
	case SASL_BAD_BASE64:
	case SASL_MALFORMED:
		sasl_end(s);
		reply(s, "-ERR Malformed authentication data");
		return;
	}
}

static void
cmd_auth(struct pop3_session *s, char *args)
{
	char challenge[512];

	if (*args == '\0') { /* RFC 1734 clients list mechanisms this way */
		reply(s, "+OK");
		for (int m = 0; m < SASL_MECH_COUNT; m++) {
			if (mech_offered(s, (enum sasl_mech)m))
				reply(s, "%s", sasl_mech_name(m));
		}
		reply(s, ".");
		return;
	}
	char *initial = strchr(args, ' ');
	if (initial != NULL)
		*initial++ = '\0';
	enum sasl_mech mech = sasl_mech_parse(args);
	if (mech == SASL_MECH_UNKNOWN || (mech == SASL_MECH_CRAM_MD5 &&
	    !pop3_server_config(s->srv)->auth_cram_md5)) {
		reply(s, "-ERR Unsupported authentication mechanism");
		return;
	}
	if (!mech_offered(s, mech)) {
		reply(s, "-ERR [AUTH] %s is not allowed without TLS (use STLS)", sasl_mech_name(mech));
		return;
	}
	s->sasl = xcalloc(1, sizeof(*s->sasl));
	sasl_step(s, sasl_start(s->sasl, mech, initial,
	    pop3_server_config(s->srv)->server_hostname, challenge, sizeof(challenge)), challenge);
}

static void
cmd_stls(struct pop3_session *s, char *args)
{
	if (s->tls) {
		reply(s, "-ERR TLS is already active");
		return;
	}
	if (!stls_offered(s)) {
		reply(s, "-ERR TLS is not available");
		return;
	}
	reply(s, "+OK Begin TLS negotiation");
	/* The reply leaves in the clear; RFC 2595 §4 (the CVE-2011-0411
	 * class): nothing sent before the handshake is executed after it. */
	conn_starttls_server(s->conn, pop3_server_tls(s->srv));
	s->tls = true;
	free(s->user);
	s->user = NULL;
}

static void
cmd_apop(struct pop3_session *s, char *args)
{
	reply(s, "-ERR APOP is not supported (passwords are stored hashed); use AUTH or USER/PASS");
}

/* --- TRANSACTION --- */

/* Parses a message number; NULL after replying when it is not usable. */
static struct maildrop_msg *
msg_arg(struct pop3_session *s, const char *arg, size_t *index_r)
{
	uint64_t n;

	if (str_parse_u64(arg, &n) < 0 || n == 0 || n > s->md->n) {
		reply(s, "-ERR No such message");
		return NULL;
	}
	struct maildrop_msg *m = &s->md->msgs[n - 1];
	if (m->deleted) {
		reply(s, "-ERR Message %llu is deleted", (unsigned long long)n);
		return NULL;
	}
	*index_r = (size_t)(n - 1);
	return m;
}

static void
cmd_stat(struct pop3_session *s, char *args)
{
	size_t n = 0;
	uint64_t total = 0;

	for (size_t i = 0; i < s->md->n; i++) {
		if (!s->md->msgs[i].deleted) {
			n++;
			total += s->md->msgs[i].size;
		}
	}
	reply(s, "+OK %zu %llu", n, (unsigned long long)total);
}

static void
list_or_uidl(struct pop3_session *s, char *args, bool uidl)
{
	struct maildrop_msg *m;
	size_t i;

	if (*args != '\0') {
		if ((m = msg_arg(s, args, &i)) == NULL)
			return;
		if (uidl)
			reply(s, "+OK %zu %s", i + 1, m->uidl);
		else
			reply(s, "+OK %zu %llu", i + 1, (unsigned long long)m->size);
		return;
	}
	reply(s, "+OK");
	for (i = 0; i < s->md->n; i++) {
		m = &s->md->msgs[i];
		if (m->deleted)
			continue;
		if (uidl)
			reply(s, "%zu %s", i + 1, m->uidl);
		else
			reply(s, "%zu %llu", i + 1, (unsigned long long)m->size);
	}
	reply(s, ".");
}

static void
cmd_list(struct pop3_session *s, char *args)
{
	list_or_uidl(s, args, false);
}

static void
cmd_uidl(struct pop3_session *s, char *args)
{
	list_or_uidl(s, args, true);
}

static void
retr_begin(struct pop3_retr *r, int fd, long body_lines)
{
	r->fd = fd;
	pop3_wire_init(&r->wire, body_lines);
}

/* Reads the next chunk of r's file and appends it, converted, to dst:
 * 1 more to come, 0 the message is complete (terminated with CRLF.CRLF),
 * -1 a read error (errno). */
static int
retr_read(struct pop3_retr *r, struct evbuffer *dst)
{
	char chunk[RETR_CHUNK];
	struct evbuffer_iovec vec;
	ssize_t n;

	do
		n = read(r->fd, chunk, sizeof(chunk));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	bool more = n > 0;
	if (n > 0) {
		/* Convert straight into the output buffer: one copy. */
		if (evbuffer_reserve_space(dst, (ev_ssize_t)POP3_WIRE_ROOM((size_t)n), &vec, 1) != 1)
			fatalx("evbuffer_reserve_space failed");
		vec.iov_len = pop3_wire_convert(&r->wire, chunk, (size_t)n, vec.iov_base, &more);
		evbuffer_commit_space(dst, &vec, 1);
	}
	/* A short read of a regular file is its end: no extra read(2). */
	if (more && (size_t)n == sizeof(chunk))
		return 1;
	char end[POP3_WIRE_END_MAX];
	evbuffer_add(dst, end, pop3_wire_finish(&r->wire, end));
	return 0;
}

static void
ahead_drop(struct pop3_session *s)
{
	evbuffer_drain(s->ahead, evbuffer_get_length(s->ahead));
	s->ahead_index = AHEAD_NONE;
}

/* Streams more of the message while the output has room. */
static void
retr_fill(struct pop3_session *s)
{
	while (s->retr.fd >= 0 && out_pending(s) < POP3_OUTPUT_HIGHWAT) {
		int r = retr_read(&s->retr, conn_output(s->conn));
		if (r < 0) {
			/* Mid-message we cannot take the +OK back: end the session. */
			log_error("event=retr_failed session=%llx error=\"%s\"",
			    (unsigned long long)s->id, strerror(errno));
			retr_stop(s);
			s->busy = false;
			close_after(s);
			break;
		}
		if (r == 0) {
			retr_stop(s);
			s->busy = false;
			break;
		}
		flush_out(s);
	}
}

/* Read-ahead: POP3 clients fetch a mailbox in order (RETR 1, 2, 3 …), one
 * command at a time. Once RETR n is answered and the client has everything
 * it asked for, message n+1 is read and converted while the client is still
 * taking in message n, so that RETR n+1 is answered without touching the
 * disk. At most one message of at most AHEAD_MAX octets per session; a
 * command for anything else just drops it. */
static void
ahead_load(struct pop3_session *s)
{
	size_t i = s->next_retr;
	struct pop3_retr r;

	if (s->state != POP3_STATE_TRANSACTION || s->busy || s->closing ||
	    i >= s->md->n || s->ahead_index == i || s->md->msgs[i].deleted ||
	    s->md->msgs[i].size > AHEAD_MAX || out_pending(s) > 0 ||
	    evbuffer_get_length(conn_input(s->conn)) > 0)
		return;
	ahead_drop(s);
	int fd = maildrop_open_msg(s->md, i);
	if (fd < 0)
		return; /* RETR will try again and say why */
	retr_begin(&r, fd, -1);
	int rc;
	while ((rc = retr_read(&r, s->ahead)) > 0 &&
	    evbuffer_get_length(s->ahead) <= AHEAD_MAX + RETR_CHUNK)
		;
	close(fd);
	if (rc == 0)
		s->ahead_index = i;
	else
		ahead_drop(s);
}

static void
retr_start(struct pop3_session *s, char *args, bool top)
{
	struct maildrop_msg *m;
	size_t i;
	uint64_t lines = 0;
	char *sp = top ? strchr(args, ' ') : NULL;

	if (top) {
		if (sp == NULL || str_parse_u64(sp + 1, &lines) < 0 || lines > 0x7fffffff) {
			reply(s, "-ERR Syntax: TOP msg lines");
			return;
		}
		*sp = '\0';
	}
	if ((m = msg_arg(s, args, &i)) == NULL)
		return;
	if (!top && s->ahead_index == i) {
		reply(s, "+OK %llu octets", (unsigned long long)m->size);
		evbuffer_add_buffer(conn_output(s->conn), s->ahead); /* moves, no copy */
		s->ahead_index = AHEAD_NONE;
		s->retrieved++;
		s->ahead_used++;
		s->next_retr = i + 1;
		return;
	}
	int fd = maildrop_open_msg(s->md, i);
	if (fd < 0) {
		reply(s, "-ERR [SYS/TEMP] Cannot read message %zu: %s", i + 1, strerror(errno));
		return;
	}
	retr_begin(&s->retr, fd, top ? (long)lines : -1);
	if (top) {
		reply(s, "+OK");
	} else {
		reply(s, "+OK %llu octets", (unsigned long long)m->size);
		s->next_retr = i + 1;
		s->retrieved++;
	}
	s->busy = true;
	retr_fill(s);
}

static void
cmd_retr(struct pop3_session *s, char *args)
{
	retr_start(s, args, false);
}

static void
cmd_top(struct pop3_session *s, char *args)
{
	retr_start(s, args, true);
}

static void
cmd_dele(struct pop3_session *s, char *args)
{
	struct maildrop_msg *m;
	size_t i;

	if ((m = msg_arg(s, args, &i)) == NULL)
		return;
	m->deleted = true;
	if (s->ahead_index == i)
		ahead_drop(s);
	reply(s, "+OK Message %zu deleted", i + 1);
}

static void
cmd_rset(struct pop3_session *s, char *args)
{
	for (size_t i = 0; i < s->md->n; i++)
		s->md->msgs[i].deleted = false;
	reply(s, "+OK");
}

static void
cmd_noop(struct pop3_session *s, char *args)
{
	reply(s, "+OK");
}

static void
cmd_quit(struct pop3_session *s, char *args)
{
	bool update = s->state == POP3_STATE_TRANSACTION;

	close_after(s);
	if (update && maildrop_deleted(s->md) > 0) {
		/* UPDATE state (RFC 1939 §6): unlinks are disk work. */
		s->busy = true;
		pop3_server_commit_maildrop(s->srv, s);
		return;
	}
	/* Unlock now: the client may log in again as soon as it reads +OK. */
	maildrop_close(&s->md);
	reply(s, "+OK Bye");
}

void
pop3_session_committed(struct pop3_session *s, size_t failed)
{
	s->busy = false;
	if (failed > 0)
		reply(s, "-ERR [SYS/TEMP] %zu message(s) could not be deleted", failed);
	else
		reply(s, "+OK Bye");
	finish(s); /* may free s */
}

/* --- dispatch --- */

enum { IN_AUTH = 1, IN_TRANS = 2 };

static const struct pop3_command {
	const char *verb;
	void (*fn)(struct pop3_session *s, char *args);
	unsigned states;
} commands[] = {
	{ "CAPA", cmd_capa, IN_AUTH | IN_TRANS },
	{ "USER", cmd_user, IN_AUTH },
	{ "PASS", cmd_pass, IN_AUTH },
	{ "AUTH", cmd_auth, IN_AUTH },
	{ "STLS", cmd_stls, IN_AUTH },
	{ "APOP", cmd_apop, IN_AUTH },
	{ "STAT", cmd_stat, IN_TRANS },
	{ "LIST", cmd_list, IN_TRANS },
	{ "UIDL", cmd_uidl, IN_TRANS },
	{ "RETR", cmd_retr, IN_TRANS },
	{ "TOP", cmd_top, IN_TRANS },
	{ "DELE", cmd_dele, IN_TRANS },
	{ "RSET", cmd_rset, IN_TRANS },
	{ "NOOP", cmd_noop, IN_TRANS },
	{ "QUIT", cmd_quit, IN_AUTH | IN_TRANS },
};

static void
dispatch(struct pop3_session *s, char *line)
{
	size_t vlen = strcspn(line, " ");
	char *args = line[vlen] == ' ' ? line + vlen + 1 : line + vlen;
	unsigned state = s->state == POP3_STATE_TRANSACTION ? IN_TRANS : IN_AUTH;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strlen(commands[i].verb) != vlen || strncasecmp(line, commands[i].verb, vlen) != 0)
			continue;
		if ((commands[i].states & state) == 0) {
			reply(s, "-ERR Command not valid in this state");
			return;
		}
		commands[i].fn(s, args);
		return;
	}
	reply(s, "-ERR Unknown command");
}

/* One line (CRLF or LF ended) into buf. 1 line, 0 need more, -1 answered.
 * A line over the limit is dropped up to its LF and answered once, in
 * every state (lib/conn); inside AUTH it also ends the exchange. */
static int
read_line(struct pop3_session *s, char *buf, size_t size)
{
	size_t max = s->sasl != NULL ? size - 1 : POP3_CMD_LINE_MAX;
	struct conn_line li;

	switch (conn_read_line(s->conn, buf, max, &li)) {
	case CONN_LINE_NONE:
		return 0;
	case CONN_LINE_TOO_LONG:
		if (s->sasl != NULL)
			sasl_end(s);
		reply(s, "-ERR Line too long");
		return -1;
	case CONN_LINE_OK:
		break;
	}
	if (li.bare_cr || li.nul) {
		if (s->sasl != NULL)
			sasl_end(s);
		reply(s, li.nul ? "-ERR NUL in command" : "-ERR Bare CR in command");
		return -1;
	}
	return 1;
}

static void
session_input(struct pop3_session *s)
{
	char line[SASL_LINE_MAX + 3];
	char challenge[512];

	while (!s->busy && !s->closing) {
		/* Wait for CONN_EV_WRITABLE while the client is not reading. */
		if (conn_output_full(s->conn))
			break;
		int r = read_line(s, line, sizeof(line));
		if (r == 0)
			break;
		if (r < 0)
			continue;
		if (s->sasl != NULL)
			sasl_step(s, sasl_continue(s->sasl, line, challenge, sizeof(challenge)),
			    challenge);
		else
			dispatch(s, line);
	}
	flush_out(s);
	if (s->eof && !s->busy)
		s->closing = true;
	if (s->closing) {
		finish(s); /* may free s */
		return;
	}
	ahead_load(s);
}

static void
conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct pop3_session *s = arg;

	switch (ev) {
	case CONN_EV_INPUT:
		session_input(s);
		return;
	case CONN_EV_WRITABLE:
		if (s->retr.fd >= 0) {
			retr_fill(s);
			if (s->retr.fd >= 0)
				return;
		}
		if (s->closing) {
			finish(s);
			return;
		}
		session_input(s);
		return;
	case CONN_EV_CONNECTED:
	case CONN_EV_TLS_READY:
		return;
	case CONN_EV_TIMEOUT:
	case CONN_EV_DEADLINE:
		/* RFC 1939 §3 autologout: close without UPDATE and without a
		 * reply; a command line that trickles in for too long likewise. */
		log_info("event=timeout service=pop3 session=%llx client=%s kind=%s",
		    (unsigned long long)s->id, s->ip, ev == CONN_EV_TIMEOUT ? "idle" : "total");
		break;
	case CONN_EV_EOF:
		if (!s->closing && s->retr.fd < 0) {
			s->eof = true;
			conn_stop_reading(c);
			session_input(s);
			return;
		}
		break;
	case CONN_EV_ERROR:
		break;
	}
	conn_free(&s->conn);
	pop3_session_destroy(s);
}
