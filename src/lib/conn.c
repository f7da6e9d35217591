/* conn.c: the connection layer (conn.h). A conn is a libevent bufferevent
 * (a socket one, an OpenSSL socket one for implicit TLS, or an OpenSSL
 * filter over the socket one after STARTTLS) plus the owner's gathered
 * output, the deadline timer and the error text. */
#include "lib/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/drain.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/sendq.h"
#include "lib/strutil.h"
#include "lib/tls.h"
#include "lib/xmalloc.h"

/* Ciphertext a client-side STARTTLS filter may leave in the socket
 * bufferevent's output (as lib/tls does for the server side). */
#define CONN_FILTER_UNDER_MAX (64 * 1024)
#define CONN_REFUSE_TIMEOUT_MS 10000

struct conn {
	struct event_base *base;
	struct bufferevent *bev;
	struct evbuffer *out;        /* gathered output (lib/sendq) */
	conn_event_fn *cb;
	void *arg;
	struct event *deadline;      /* made on first use */
	struct drain *drain;         /* closing: waiting for the output */
	unsigned timeout_ms;
	unsigned line_timeout_ms;
	size_t input_max;
	size_t output_max;
	bool line_armed;             /* the deadline runs for an incomplete line */
	bool unit_armed;             /* the owner's deadline runs */
	bool tls;                    /* encrypted (or handshaking) */
	bool handshaking;            /* the next CONNECTED event is the TLS one */
	bool connecting;             /* outbound TCP connect in progress */
	bool skipping;               /* dropping the rest of an overlong line */
	bool closing;                /* detached: freed once flushed */
	bool verified;               /* client: the peer's certificate verified */
	char error[192];
	void *owned;                 /* freed with the conn (a refusal's state) */
	struct conn *prev, *next;    /* every live conn, for conn_free_all() */
};

static struct conn *conns_all;

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

static void
conn_apply_timeouts(struct conn *c)
{
	struct timeval tv = { (time_t)(c->timeout_ms / 1000), (suseconds_t)(c->timeout_ms % 1000) * 1000 };

	if (c->timeout_ms == 0)
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	else
		bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* Callbacks, watermarks and timeouts of a (new) bufferevent. */
static void
conn_setup_bev(struct conn *c)
{
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, c->input_max);
	conn_apply_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static struct conn *
conn_new(struct event_base *base, conn_event_fn *cb, void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->cb = cb;
	c->arg = arg;
	c->input_max = 64 * 1024;
	c->output_max = 256 * 1024;
	if ((c->out = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	c->next = conns_all;
	if (conns_all != NULL)
		conns_all->prev = c;
	conns_all = c;
	return c;
}

struct conn *
conn_accept(struct event_base *base, int fd, struct ssl_ctx_st *ctx, conn_event_fn *cb,
    void *arg)
{
	struct conn *c = conn_new(base, cb, arg);

	if (ctx != NULL) {
		c->bev = tls_bufferevent_accept(base, fd, NULL, ctx);
		c->tls = true;
		c->handshaking = true;
	} else {
		c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	conn_setup_bev(c);
	return c;
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
    const struct sockaddr *source, socklen_t sourcelen, unsigned timeout_ms,
    conn_event_fn *cb, void *arg, const char **error_r)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		*error_r = strerror(errno);
		return NULL;
	}
	/* No Nagle on outbound connections: the SMTP client writes the message
	 * and then its final "." separately, and the "." would otherwise wait
	 * for the ACK of the message, which the server delays (40 ms on Linux)
	 * because it has nothing to answer before the "." (issue #8: 45 ms per
	 * message and connection). Output is gathered per burst anyway. */
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (source != NULL && bind(fd, source, sourcelen) < 0) {
		*error_r = "cannot bind the source address";
		close(fd);
		return NULL;
	}
	struct conn *c = conn_new(base, cb, arg);
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	c->connecting = true;
	c->timeout_ms = timeout_ms; /* the connect timeout, until CONNECTED */
	conn_setup_bev(c);
	if (bufferevent_socket_connect(c->bev, sa, (int)salen) < 0) {
		/* libevent reports an immediate failure through the event callback
		 * on the next loop pass (it defers errors): nothing to do here. */
	}
	return c;
}

struct conn *
conn_connect_ip(struct event_base *base, const char *ip, unsigned port, const char *source_ip,
    unsigned timeout_ms, conn_event_fn *cb, void *arg, const char **error_r)
{
	struct netaddr to, from;

	if (netaddr_from_ip(ip, port, &to) < 0) {
		*error_r = "not an IP address";
		return NULL;
	}
	bool bind_source = source_ip != NULL && source_ip[0] != '\0' &&
	    netaddr_from_ip(source_ip, 0, &from) == 0 && from.ss.ss_family == to.ss.ss_family;
	return conn_connect(base, (struct sockaddr *)&to.ss, to.len,
	    bind_source ? (struct sockaddr *)&from.ss : NULL, bind_source ? from.len : 0,
	    timeout_ms, cb, arg, error_r);
}

void
conn_set_owner(struct conn *c, conn_event_fn *cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

void
conn_set_timeout(struct conn *c, unsigned ms)
{
	c->timeout_ms = ms;
	if (!c->connecting)
		conn_apply_timeouts(c);
}

void
conn_set_line_timeout(struct conn *c, unsigned ms)
{
	c->line_timeout_ms = ms;
}

void
conn_set_input_max(struct conn *c, size_t max)
{
	c->input_max = max;
	bufferevent_setwatermark(c->bev, EV_READ, 0, max);
}

void
conn_set_output_max(struct conn *c, size_t max)
{
	c->output_max = max;
}

static void
conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	c->line_armed = false;
	c->unit_armed = false;
	if (c->cb != NULL)
		c->cb(c, CONN_EV_DEADLINE, c->arg);
}

static void
conn_arm(struct conn *c, unsigned ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (c->deadline == NULL)
		c->deadline = evtimer_new(c->base, conn_deadline_cb, c);
	evtimer_add(c->deadline, &tv);
}

static void
conn_disarm(struct conn *c)
{
	if (c->deadline != NULL)
		evtimer_del(c->deadline);
	c->line_armed = false;
	c->unit_armed = false;
}

void
conn_set_deadline(struct conn *c, unsigned ms)
{
	conn_disarm(c);
	if (ms == 0)
		return;
	c->unit_armed = true;
	conn_arm(c, ms);
}

void
conn_clear_deadline(struct conn *c)
{
	conn_disarm(c);
}

/* An incomplete line is waiting: its total time starts now (once). */
static void
conn_line_pending(struct conn *c)
{
	if (c->line_timeout_ms == 0 || c->line_armed || c->unit_armed)
		return;
	c->line_armed = true;
	conn_arm(c, c->line_timeout_ms);
}

static void
conn_line_done(struct conn *c)
{
	if (c->line_armed)
		conn_disarm(c);
}

enum conn_line_result
conn_read_line(struct conn *c, char *buf, size_t max, struct conn_line *info)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);

	if (eol.pos < 0) {
		size_t have = evbuffer_get_length(in);
		if (have > max) {
			/* No LF within the limit: drop what came, keep dropping
			 * until the LF, then say so once. */
			evbuffer_drain(in, have);
			c->skipping = true;
		}
		if (have > 0 || c->skipping)
			conn_line_pending(c);
		return CONN_LINE_NONE;
	}
	size_t n = (size_t)eol.pos + 1;
	conn_line_done(c);
	if (c->skipping || n > max) {
		evbuffer_drain(in, n);
		c->skipping = false;
		return CONN_LINE_TOO_LONG;
	}
	evbuffer_remove(in, buf, n);
	info->crlf = n >= 2 && buf[n - 2] == '\r';
	info->len = n - (info->crlf ? 2 : 1);
	buf[info->len] = '\0';
	info->bare_cr = memchr(buf, '\r', info->len) != NULL;
	info->nul = memchr(buf, '\0', info->len) != NULL;
	return CONN_LINE_OK;
}

struct evbuffer *
conn_input(struct conn *c)
{
	return bufferevent_get_input(c->bev);
}

void
conn_input_discard(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	evbuffer_drain(in, evbuffer_get_length(in));
	c->skipping = false;
}

void
conn_vprintf(struct conn *c, size_t max, const char *fmt, va_list ap)
{
	sendq_vline(c->out, max, fmt, ap);
}

void
conn_printf(struct conn *c, size_t max, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sendq_vline(c->out, max, fmt, ap);
	va_end(ap);
}

void
conn_write(struct conn *c, const void *data, size_t len)
{
	evbuffer_add(c->out, data, len);
}

struct evbuffer *
conn_output(struct conn *c)
{
	return c->out;
}

void
conn_flush(struct conn *c)
{
	sendq_flush(c->bev, c->out, !c->tls);
}

size_t
conn_pending(struct conn *c)
{
	return sendq_pending(c->bev, c->out);
}

bool
conn_output_full(struct conn *c)
{
	if (conn_pending(c) <= c->output_max)
		return false;
	/* Only output queued in the bufferevent brings CONN_EV_WRITABLE. */
	conn_flush(c);
	return conn_pending(c) > c->output_max;
}

void
conn_stop_reading(struct conn *c)
{
	bufferevent_disable(c->bev, EV_READ);
}

void
conn_starttls_server(struct conn *c, struct ssl_ctx_st *ctx)
{
	struct bufferevent *under = c->bev;

	conn_flush(c); /* in the clear, before the TLS layer goes on top */
	conn_input_discard(c);
	conn_disarm(c);
	c->bev = tls_bufferevent_accept(c->base, -1, under, ctx);
	c->tls = true;
	c->handshaking = true;
	conn_setup_bev(c);
}

/* Records the chain check without failing the handshake: the policy that
 * asked for no verification still learns (and logs) the result. */
static int
conn_verify_record(int preverify_ok, X509_STORE_CTX *x)
{
	return 1;
}

void
conn_starttls_client(struct conn *c, struct ssl_ctx_st *ctx, const char *servername,
    const char *verify_host)
{
	struct bufferevent *under = c->bev;
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		fatalx("SSL_new failed");
	if (servername != NULL && servername[0] != '\0') {
		SSL_set_tlsext_host_name(ssl, servername);
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		SSL_set1_host(ssl, verify_host != NULL ? verify_host : servername);
	}
	SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_host != NULL ? NULL : conn_verify_record);
	conn_flush(c);
	conn_input_discard(c);
	conn_disarm(c);
	c->bev = bufferevent_openssl_filter_new(c->base, under, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("bufferevent_openssl_filter_new failed");
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setwatermark(under, EV_WRITE, 0, CONN_FILTER_UNDER_MAX);
	c->tls = true;
	c->handshaking = true;
	conn_setup_bev(c);
}

bool
conn_is_tls(const struct conn *c)
{
	return c->tls;
}

void
conn_tls_describe(const struct conn *c, char *buf, size_t size)
{
	if (!c->tls) {
		buf[0] = '\0';
		return;
	}
	tls_bufferevent_describe(c->bev, buf, size);
}

bool
conn_tls_verified(const struct conn *c)
{
	return c->verified;
}

const char *
conn_error(const struct conn *c)
{
	return c->error[0] != '\0' ? c->error : "connection error";
}

int
conn_local_addr(const struct conn *c, struct sockaddr_storage *ss, socklen_t *len)
{
	*len = sizeof(*ss);
	return getsockname(bufferevent_getfd(c->bev), (struct sockaddr *)ss, len);
}

int
conn_peer_addr(const struct conn *c, struct sockaddr_storage *ss, socklen_t *len)
{
	*len = sizeof(*ss);
	return getpeername(bufferevent_getfd(c->bev), (struct sockaddr *)ss, len);
}

static void
conn_destroy(struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns_all = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c->owned);
	drain_cancel(&c->drain);
	if (c->deadline != NULL)
		event_free(c->deadline);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	evbuffer_free(c->out);
	free(c);
}

void
conn_free(struct conn **cp)
{
	struct conn *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	conn_destroy(c);
}

static void
conn_drained(void *arg)
{
	struct conn *c = arg;

	c->drain = NULL; /* the drain freed itself */
	conn_destroy(c);
}

void
conn_free_all(void)
{
	while (conns_all != NULL)
		conn_destroy(conns_all);
}

void
conn_close(struct conn **cp)
{
	struct conn *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	c->cb = NULL;
	c->arg = NULL;
	c->closing = true;
	conn_disarm(c);
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
	conn_flush(c);
	if (tls_bufferevent_flushed(c->bev)) {
		conn_destroy(c);
		return;
	}
	if (c->drain == NULL)
		c->drain = drain_start(c->base, c->bev, conn_drained, c);
}

static void
conn_emit(struct conn *c, enum conn_event ev)
{
	if (c->cb != NULL)
		c->cb(c, ev, c->arg);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	conn_emit(c, CONN_EV_INPUT);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		if (tls_bufferevent_flushed(c->bev))
			conn_destroy(c);
		return;
	}
	conn_emit(c, CONN_EV_WRITABLE);
}

static void
conn_set_error(struct conn *c, short what)
{
	unsigned long e = 0;
	int err = EVUTIL_SOCKET_ERROR();

	if (c->tls && (e = bufferevent_get_openssl_error(c->bev)) != 0) {
		ERR_error_string_n(e, c->error, sizeof(c->error));
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) != 0)
		str_copy(c->error, c->connecting ? "connect timed out" : "timed out", sizeof(c->error));
	else if ((what & BEV_EVENT_EOF) != 0)
		str_copy(c->error, c->handshaking ? "connection closed during the TLS handshake" :
		    "connection closed", sizeof(c->error));
	else if (err != 0)
		str_copy(c->error, strerror(err), sizeof(c->error));
	else
		str_copy(c->error, c->handshaking ? "TLS handshake failed" : "connection error",
		    sizeof(c->error));
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		/* Only the drain was waiting: nobody is left to tell. */
		if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT)) != 0)
			conn_destroy(c);
		return;
	}
	if ((what & BEV_EVENT_CONNECTED) != 0) {
		if (c->handshaking) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			c->handshaking = false;
			c->verified = ssl != NULL && SSL_get0_peer_certificate(ssl) != NULL &&
			    SSL_get_verify_result(ssl) == X509_V_OK;
			conn_emit(c, CONN_EV_TLS_READY);
			return;
		}
		c->connecting = false;
		conn_emit(c, CONN_EV_CONNECTED);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) != 0) {
		conn_set_error(c, what);
		conn_emit(c, c->connecting ? CONN_EV_ERROR : CONN_EV_TIMEOUT);
		return;
	}
	if ((what & BEV_EVENT_EOF) != 0 && (what & BEV_EVENT_ERROR) == 0 && !c->handshaking &&
	    !c->connecting) {
		conn_emit(c, CONN_EV_EOF);
		return;
	}
	conn_set_error(c, what);
	conn_emit(c, CONN_EV_ERROR);
}

/* --- implicit-TLS refusals --- */

struct conn_refusal {
	unsigned *inflight;
	char line[512];
};

static void
conn_refuse_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct conn_refusal *r = arg;

	if (ev == CONN_EV_INPUT || ev == CONN_EV_WRITABLE)
		return;
	(*r->inflight)--;
	if (ev == CONN_EV_TLS_READY) {
		conn_write(c, r->line, strlen(r->line));
		conn_close(&c); /* r is freed with c */
	} else {
		conn_free(&c);
	}
}

void
conn_refuse_tls(struct event_base *base, int fd, struct ssl_ctx_st *ctx, const char *line,
    unsigned *inflight, unsigned max)
{
	if (ctx == NULL || *inflight >= max) {
		close(fd);
		return;
	}
	struct conn_refusal *r = xcalloc(1, sizeof(*r));
	snprintf(r->line, sizeof(r->line), "%s\r\n", line);
	r->inflight = inflight;
	(*inflight)++;
	struct conn *c = conn_accept(base, fd, ctx, conn_refuse_cb, r);
	c->owned = r;
	conn_set_timeout(c, CONN_REFUSE_TIMEOUT_MS);
}
