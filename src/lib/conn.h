/* conn.h: one connection layer for every socket tegamid talks on, accepted
 * or connected, plain or TLS (OpenSMTPD's ioev, Redis's connection.h). The
 * owner sees semantic events through one callback and a buffered stream,
 * never a file descriptor, an SSL object or a libevent event:
 *
 *   CONN_EV_CONNECTED  an outbound connect finished
 *   CONN_EV_TLS_READY  a TLS handshake finished (either side)
 *   CONN_EV_INPUT      new input is buffered
 *   CONN_EV_WRITABLE   queued output reached the socket; reading may go on
 *   CONN_EV_TIMEOUT    nothing arrived (or nothing could be written) for the
 *                      idle timeout
 *   CONN_EV_DEADLINE   a line, or a unit the owner armed, took longer than
 *                      its total limit (a client sending a byte at a time)
 *   CONN_EV_EOF        the peer closed its side cleanly
 *   CONN_EV_ERROR      reset, refused, TLS failure: conn_error() says which
 *
 * Contract: the callback may free its owner and call conn_close() or
 * conn_free() on the conn; after either call the conn never calls the owner
 * again. No mail knowledge here. */
#ifndef TEGAMI_CONN_H
#define TEGAMI_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct conn;
struct event_base;
struct evbuffer;
struct ssl_ctx_st;

enum conn_event {
	CONN_EV_CONNECTED,
	CONN_EV_TLS_READY,
	CONN_EV_INPUT,
	CONN_EV_WRITABLE,
	CONN_EV_TIMEOUT,
	CONN_EV_DEADLINE,
	CONN_EV_EOF,
	CONN_EV_ERROR,
};

typedef void conn_event_fn(struct conn *c, enum conn_event ev, void *arg);

/* A server-side connection on an accepted, non-blocking socket fd. With
 * ctx (implicit TLS) the handshake starts at once and CONN_EV_TLS_READY
 * follows it. Never fails (aborts on allocation failure). */
struct conn *conn_accept(struct event_base *base, int fd, struct ssl_ctx_st *ctx,
    conn_event_fn *cb, void *arg);

/* Starts a non-blocking connect to sa, from source (NULL: any) within
 * timeout_ms; CONN_EV_CONNECTED or CONN_EV_ERROR / CONN_EV_TIMEOUT follows,
 * always later from the event loop. NULL with *error_r (static or
 * strerror) when no socket could be made or bound: the callback is then
 * never called. */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
    const struct sockaddr *source, socklen_t sourcelen, unsigned timeout_ms,
    conn_event_fn *cb, void *arg, const char **error_r);

/* conn_connect to ip:port (IPv4 or IPv6 text), leaving from source_ip when
 * it is set and of the same family (else from any address). NULL with
 * *error_r as conn_connect, or when ip is not an IP address. */
struct conn *conn_connect_ip(struct event_base *base, const char *ip, unsigned port,
    const char *source_ip, unsigned timeout_ms, conn_event_fn *cb, void *arg,
    const char **error_r);

/* Replaces the owner's callback and argument. */
void conn_set_owner(struct conn *c, conn_event_fn *cb, void *arg);

/* Idle timeout: CONN_EV_TIMEOUT after ms without input (or while output
 * cannot be written). 0 turns it off. */
void conn_set_timeout(struct conn *c, unsigned ms);

/* Total time one input line may take from its first octet (0: no limit):
 * past it, CONN_EV_DEADLINE. */
void conn_set_line_timeout(struct conn *c, unsigned ms);

/* Arms a deadline for a unit the owner reads itself (one DATA): CONN_EV_DEADLINE
 * after ms unless conn_clear_deadline() comes first. While it is armed the
 * line deadline is not used. */
void conn_set_deadline(struct conn *c, unsigned ms);
void conn_clear_deadline(struct conn *c);

/* Input past this many buffered octets is not read from the socket until
 * the owner consumes some (back-pressure on the peer). */
void conn_set_input_max(struct conn *c, size_t max);

/* Output gathered but not yet on the wire above which conn_output_full()
 * says so. */
void conn_set_output_max(struct conn *c, size_t max);

enum conn_line_result {
	CONN_LINE_NONE = 0,      /* no complete line yet */
	CONN_LINE_OK = 1,        /* a line is in buf */
	CONN_LINE_TOO_LONG = -1, /* a line over max was consumed and dropped */
};

struct conn_line {
	size_t len;     /* octets in buf, without the line end */
	bool crlf;      /* ended in CRLF (else a bare LF) */
	bool bare_cr;   /* a CR inside the line */
	bool nul;       /* a NUL inside the line */
};

/* Reads one LF-terminated line of at most max octets (line end included)
 * into buf (max + 1 bytes), NUL-terminated, line end stripped. A longer
 * line is consumed up to its LF, however it arrives, and reported once as
 * CONN_LINE_TOO_LONG. While a line is incomplete its deadline runs. */
enum conn_line_result conn_read_line(struct conn *c, char *buf, size_t max,
    struct conn_line *info);

/* The input buffer, for owners that read raw octets (SMTP DATA). */
struct evbuffer *conn_input(struct conn *c);
/* Drops everything buffered as input. */
void conn_input_discard(struct conn *c);

/* Appends one line to the output: fmt formatted, cut to max octets with its
 * CRLF, then CRLF. Nothing leaves before conn_flush(). */
void conn_printf(struct conn *c, size_t max, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void conn_vprintf(struct conn *c, size_t max, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* Appends octets as they are. */
void conn_write(struct conn *c, const void *data, size_t len);
/* The gathered output, for owners that convert straight into it. */
struct evbuffer *conn_output(struct conn *c);
/* Hands the gathered output to the socket (lib/sendq: one write, straight
 * onto a plain socket when nothing is queued before it). */
void conn_flush(struct conn *c);
/* Octets not yet on the wire (gathered or queued). */
size_t conn_pending(struct conn *c);
/* True when pending output is over the output maximum: stop taking input
 * until CONN_EV_WRITABLE. Flushes first. */
bool conn_output_full(struct conn *c);

/* Stops reading from the peer (half-close of our interest). */
void conn_stop_reading(struct conn *c);

/* RFC 3207 / RFC 2595 server side: throws away input that arrived before
 * the handshake (CVE-2011-0411) and starts TLS with ctx over the socket.
 * Output gathered before the call is flushed in plaintext first. */
void conn_starttls_server(struct conn *c, struct ssl_ctx_st *ctx);

/* TLS for an outbound connection: throws away buffered input, then starts a
 * client handshake with SNI servername (may be NULL). With verify_host the
 * chain must verify against ctx's trust store and the certificate must name
 * verify_host; otherwise the result is only recorded (conn_tls_verified). */
void conn_starttls_client(struct conn *c, struct ssl_ctx_st *ctx, const char *servername,
    const char *verify_host);

bool conn_is_tls(const struct conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" without TLS. */
void conn_tls_describe(const struct conn *c, char *buf, size_t size);
/* Client side: true when the peer's chain verified and named the host. */
bool conn_tls_verified(const struct conn *c);

/* The last error in words ("connection refused", an OpenSSL reason …). */
const char *conn_error(const struct conn *c);

/* The socket's local and peer addresses. 0 or -1. */
int conn_local_addr(const struct conn *c, struct sockaddr_storage *ss, socklen_t *len);
int conn_peer_addr(const struct conn *c, struct sockaddr_storage *ss, socklen_t *len);

/* Detaches the owner and closes once the output is on the wire (at most a
 * few seconds); sets *cp to NULL. */
void conn_close(struct conn **cp);
/* Closes at once, dropping unsent output; sets *cp to NULL. */
void conn_free(struct conn **cp);

/* Shutdown: frees every conn still alive (those lingering to flush, the
 * refusals in flight). Call once the owners are gone, before the event
 * base is freed. */
void conn_free_all(void);

/* Implicit-TLS refusal (a screened address, too many sessions): completes
 * the handshake on fd, writes line and CRLF inside TLS, closes. At most
 * max such refusals run at once (*inflight counts them; it must outlive
 * them); past that, fd is closed without a word. */
void conn_refuse_tls(struct event_base *base, int fd, struct ssl_ctx_st *ctx, const char *line,
    unsigned *inflight, unsigned max);

#endif
