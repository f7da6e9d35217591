/* smtp_session.h: internal to src/smtpd. One session per client connection;
 * an RFC 5321 state machine fed by lines from a bufferevent.
 *
 * Pipelining (RFC 2920): every complete line in the input buffer is handled
 * in order and the replies are queued in order. A command that waits on the
 * disk (end of DATA) sets `busy`; input handling stops and resumes from the
 * job's completion, so later pipelined commands see its result. */
#ifndef TEGAMI_SMTP_SESSION_H
#define TEGAMI_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "conf/directory.h"
#include "conf/settings.h"
#include "smtpd/smtp_server.h"

struct conn;
struct evbuffer;
struct envelope;
struct smtp_server;
struct smtp_job;
struct sasl_exchange;
struct auth_request;
struct dnsbl;
struct dnsbl_check;
struct relay_lists;

#define SMTP_CMD_LINE_MAX 512   /* RFC 5321 §4.5.3.1.4, CRLF included */
#define SMTP_MAIL_LINE_MAX 1012 /* RFC 4954 §5: MAIL may be 500 longer for AUTH= */
#define SMTP_AUTH_LINE_MAX 12290 /* RFC 4954 §4: 12288 octets and CRLF */
#define SMTP_TEXT_LINE_MAX 1000 /* RFC 5321 §4.5.3.1.6, CRLF included */
#define SMTP_OUTPUT_MAX (256 * 1024)
#define SMTP_REPLY_MAX 512     /* RFC 5321 §4.5.3.1.5, CRLF included */
#define SMTP_INPUT_HIGHWAT (64 * 1024)

enum smtp_state {
	SMTP_STATE_GREETING_SENT, /* before HELO/EHLO */
	SMTP_STATE_READY,         /* after HELO/EHLO, no transaction */
	SMTP_STATE_MAIL,          /* MAIL accepted, collecting RCPT */
	SMTP_STATE_DATA,          /* reading the message */
	SMTP_STATE_AUTH,          /* in a SASL exchange: lines are responses */
	SMTP_STATE_QUIT,          /* flushing the last reply, then close */
};

/* DATA reader state (smtp_data.c). */
struct smtp_data_reader {
	bool at_line_start;  /* the next octet starts a line */
	bool prev_crlf;      /* the previous line ended in CRLF (end marker needs it) */
	bool too_big;        /* SIZE exceeded: the rest is discarded */
	bool bad_eol;        /* bare LF or bare CR seen */
	bool long_line;      /* a line over SMTP_TEXT_LINE_MAX */
	bool nul;            /* a NUL octet: not 8BITMIME text (RFC 6152) */
	uint64_t size;       /* RFC 1870 §6.1 size: octets received with CRLFs,
	                        without dot-stuffing or our own headers */
};

struct smtp_session {
	struct smtp_server *srv;
	struct conn *conn;   /* lib/conn: the socket, TLS, line reader, replies */
	uint64_t id;
	size_t slot;         /* index in the server's session array */
	char ip[INET6_ADDRSTRLEN];
	char local_ip[INET6_ADDRSTRLEN]; /* address the connection was accepted on (S4) */
	enum smtp_state state;
	bool esmtp;          /* EHLO (not HELO) was used */
	bool busy;           /* waiting for a worker job */
	bool closing;        /* free once the output is flushed */
	bool eof;            /* the client closed its side: finish what it sent */
	bool tls;            /* the connection is encrypted (SMTPS or after STARTTLS) */
	bool greeted;        /* the 220 is out: commands are read (smtp_relay.c may hold it) */
	struct dnsbl_check *dnsbl; /* the DNSBL look-ups the greeting waits for (R2) */
	enum smtp_listener_kind kind;
	unsigned errors;
	unsigned junk;       /* commands that moved no mail since the last message (smtp_commands.c) */
	bool out_of_step;    /* the client pipelined past a group's end (RFC 2920 §3.1); logged once */
	char *helo;
	struct envelope *msg;   /* the transaction, from MAIL to end of DATA */
	size_t nrcpt;            /* RCPT commands accepted */
	struct smtp_data_reader data;
	struct smtp_job *job;    /* in-flight spool write */
	char *auth_user;         /* authenticated identity (RFC 4954), NULL if none */
	bool sender_local;       /* MAIL FROM is in a local domain */
	bool sender_known;       /* ...and has a mailbox here */
	struct sasl_exchange *sasl;      /* during AUTH */
	struct auth_request *auth_req;   /* credentials being checked */
	struct event *auth_delay;        /* a failed AUTH waits before 535 */
};

/* --- smtp_server.c: services for sessions --- */
struct event_base *smtp_server_base(struct smtp_server *srv);
const struct config *smtp_server_config(struct smtp_server *srv);
struct directory *smtp_server_directory(struct smtp_server *srv);
struct dir_targets *smtp_server_scratch_targets(struct smtp_server *srv);
struct queue_runner *smtp_server_queue(struct smtp_server *srv);

const char *smtp_server_data_dir(struct smtp_server *srv);
struct auth_service *smtp_server_auth(struct smtp_server *srv);
struct screen *smtp_server_screen(struct smtp_server *srv);
/* The relay-control lists now in force (R1, R2), and the DNSBL client
 * (NULL in tests without DNS). */
struct relay_lists *smtp_server_relay_lists(struct smtp_server *srv);
struct dnsbl *smtp_server_dnsbl(struct smtp_server *srv);
void smtp_server_session_closed(struct smtp_server *srv, struct smtp_session *s);
/* Takes msg and writes it to the spool on a worker; calls
 * smtp_session_spooled() later on the loop thread unless the session went
 * away. Committed messages go to the queue runner, failed ones are freed. */
void smtp_server_spool(struct smtp_server *srv, struct smtp_session *s, struct envelope *msg);

/* --- smtp_session.c --- */
/* Starts a session on an accepted socket; for the SMTPS listener the TLS
 * handshake comes first (ctx must then be non-NULL). Nothing is sent and
 * nothing read until smtp_session_greet() or smtp_session_refuse(). */
struct smtp_session *smtp_session_create(struct smtp_server *srv, int fd,
    const struct sockaddr *sa, uint64_t id, enum smtp_listener_kind kind,
    struct ssl_ctx_st *ctx);
/* Sends the 220 greeting and starts reading commands (input that arrived
 * before it is handled now). May free the session. */
void smtp_session_greet(struct smtp_session *s);
/* Sends one line in place of the greeting (a 554, RFC 5321 §3.1) and
 * frees the session; the line still reaches the client. */
void smtp_session_refuse(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* RFC 3207: replies 220, throws away anything the client sent after the
 * STARTTLS line (CVE-2011-0411), and starts the handshake; the session is
 * back in its post-greeting state and the client must EHLO again. */
void smtp_session_starttls(struct smtp_session *s, struct ssl_ctx_st *ctx);
/* "TLSv1.3 TLS_AES_..." when encrypted, "" otherwise. */
void smtp_session_tls_describe(struct smtp_session *s, char *buf, size_t size);
/* Frees the session now (connection lost or server stopping). */
void smtp_session_destroy(struct smtp_session *s);
void smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A 4xx/5xx protocol error: counts towards smtp.max_errors. */
void smtp_session_error(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Queues a final reply and closes once it is written. */
void smtp_session_close(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void smtp_session_reset_tx(struct smtp_session *s);
void smtp_session_enter(struct smtp_session *s, enum smtp_state state);
/* Handles buffered input until it runs out or the session waits, then sends
 * the replies. May free the session (the client closed its side, or the
 * session is closing and its last reply is on the wire): callers must not
 * touch s afterwards. */
void smtp_session_input(struct smtp_session *s);
/* Spool result for m: 0 committed, -1 failed with errno err. */
void smtp_session_spooled(struct smtp_session *s, const struct envelope *m, int result, int err);

/* --- smtp_commands.c --- */
/* Runs one command line of len octets (CRLF stripped). */
void smtp_command_dispatch(struct smtp_session *s, char *line, size_t len);

/* --- smtp_auth.c (RFC 4954, MISSION A1-A4) --- */
/* The listener settings that decide AUTH for this session: after STARTTLS
 * on the plain ports, the TLS listener's (seed 001). */
const struct listener_conf *smtp_auth_conf(struct smtp_session *s);
/* Writes the EHLO "AUTH ..." keyword line when AUTH is offered; returns
 * false when it is not. */
bool smtp_auth_ehlo(struct smtp_session *s, char *buf, size_t size);
void smtp_auth_command(struct smtp_session *s, char *args);
void smtp_auth_response(struct smtp_session *s, char *line);
/* Frees AUTH state (session going away). */
void smtp_auth_cleanup(struct smtp_session *s);

/* --- smtp_policy.c (MISSION A5, A6): 0 to go on, -1 after a refusal --- */
int smtp_policy_mail(struct smtp_session *s, const struct mail_addr *addr, const char *sender);
int smtp_policy_rcpt(struct smtp_session *s, bool rcpt_local);
int smtp_policy_data(struct smtp_session *s, struct envelope *msg);

/* --- smtp_relay.c (MISSION R1-R4): relay control, connection restrictions --- */
/* At accept, before a session exists: true when ip is on the refused list
 * (logged, journal=9S; the caller answers 554 5.7.1). *override_r: the
 * client is a POP-before-SMTP client that smtp.pop_overrides_refused lets
 * past the connection restrictions (R3), DNSBLs included. */
bool smtp_relay_connect_refused(struct smtp_server *srv, const char *ip, bool *override_r);
/* Greets the new session, or first waits for the DNSBL answers (R2) and
 * refuses it with 554 5.7.1 when a zone lists the client. override: skip
 * the DNSBLs (R3). May free the session. */
void smtp_relay_start(struct smtp_session *s, bool override);
/* Before resolving a recipient: a route in its local part ("%", "!",
 * quoted "@") from a client that may not relay everywhere is refused
 * (550 5.7.1, journal=9V): true after that reply. */
bool smtp_relay_rcpt_refused(struct smtp_session *s, const struct mail_addr *a,
    const char *rcpt);
/* Where a recipient goes: a itself, or with smtp.percent_routing and a
 * local domain, user%host@domain as user@host. -1 when that host is not a
 * domain. */
int smtp_relay_destination(struct smtp_session *s, const struct mail_addr *a,
    struct mail_addr *dest_r);
/* R1: may this session relay to dest (not local)? When not, the refusal is
 * logged (journal=9V) and answered 550 5.7.1, and false is returned. */
bool smtp_relay_allowed(struct smtp_session *s, const struct mail_addr *dest, const char *rcpt);

/* --- smtp_data.c --- */
void smtp_data_begin(struct smtp_session *s);
/* Consumes DATA input; returns true when the end marker was read (the reply
 * has been sent or the spool job started). */
bool smtp_data_input(struct smtp_session *s);

#endif
