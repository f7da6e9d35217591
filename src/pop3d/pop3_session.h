/* pop3_session.h: internal to src/pop3d. RFC 1939 states: AUTHORIZATION
 * (USER/PASS, AUTH, STLS, CAPA), TRANSACTION (the maildrop is locked), UPDATE
 * (at QUIT: deletions applied, then close). A dropped connection deletes
 * nothing. */
#ifndef TEGAMI_POP3_SESSION_H
#define TEGAMI_POP3_SESSION_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>

#include "mail/pop3_wire.h"
#include "pop3d/pop3_server.h"

struct conn;
struct evbuffer;
struct maildrop;
struct sasl_exchange;
struct auth_request;
struct event;
struct pop3_maildrop_job;

#define POP3_CMD_LINE_MAX 255      /* RFC 2449 §4, CRLF included */
#define POP3_REPLY_MAX 1024        /* RFC 2449 §4 asks 512; SASL challenges may be longer */
#define POP3_OUTPUT_HIGHWAT (256 * 1024)

enum pop3_state {
	POP3_STATE_AUTHORIZATION,
	POP3_STATE_TRANSACTION,
	POP3_STATE_CLOSING,
};

/* RETR / TOP in progress: the file is streamed as the client reads. */
struct pop3_retr {
	int fd;                 /* -1 when idle */
	struct pop3_wire wire;  /* the conversion's state (mail/pop3_wire.h) */
};

struct pop3_session {
	struct pop3_server *srv;
	struct conn *conn;             /* lib/conn: socket, TLS, line reader, replies */
	uint64_t id;
	size_t slot;
	char ip[INET6_ADDRSTRLEN];
	enum pop3_state state;
	enum pop3_listener_kind kind;
	bool tls, busy, closing, eof;
	char *user;                    /* USER argument, waiting for PASS */
	char *login;                   /* authenticated user */
	struct sasl_exchange *sasl;    /* AUTH in progress (continuation lines) */
	struct auth_request *auth_req;
	struct event *timer;           /* failed-login delay */
	struct maildrop *md;
	struct pop3_retr retr;
	struct evbuffer *ahead;        /* read-ahead: message ahead_index, on the wire form */
	size_t ahead_index;            /* SIZE_MAX: none */
	size_t next_retr;              /* the message after the last RETR (SIZE_MAX: none) */
	size_t retrieved, ahead_used;  /* RETRs answered; of those, from the read-ahead */
	struct pop3_maildrop_job *job; /* the maildrop is being opened or committed on a worker */
};

/* pop3_server.c */
struct event_base *pop3_server_base(struct pop3_server *srv);
const struct config *pop3_server_config(struct pop3_server *srv);
struct directory *pop3_server_directory(struct pop3_server *srv);
struct auth_service *pop3_server_auth(struct pop3_server *srv);
struct screen *pop3_server_screen(struct pop3_server *srv);
struct ssl_ctx_st *pop3_server_tls(struct pop3_server *srv);
void pop3_server_session_closed(struct pop3_server *srv, struct pop3_session *s);
/* Opens s->login's maildrop on a worker, then pop3_session_opened(). */
void pop3_server_open_maildrop(struct pop3_server *srv, struct pop3_session *s);
/* Moves the maildrop's new/ messages to cur/ on a worker while the session
 * goes on (deliver/maildrop.h, "settle"). */
void pop3_server_settle_maildrop(struct pop3_server *srv, struct maildrop *md);
/* QUIT with deletions: moves s->md to a worker that applies them and
 * unlocks, then pop3_session_committed(). */
void pop3_server_commit_maildrop(struct pop3_server *srv, struct pop3_session *s);
/* The session is being freed: a pending job finds no one. */
void pop3_server_session_gone(struct pop3_session *s);

/* pop3_session.c */
struct pop3_session *pop3_session_create(struct pop3_server *srv, int fd,
    const struct sockaddr *sa, uint64_t id, enum pop3_listener_kind kind,
    struct ssl_ctx_st *ctx);
void pop3_session_destroy(struct pop3_session *s);
/* md is the opened maildrop (NULL with err on failure). */
void pop3_session_opened(struct pop3_session *s, struct maildrop *md, int err);
/* The UPDATE state is over: failed deletions (0: all done); the maildrop is
 * unlocked. Replies to QUIT and closes. */
void pop3_session_committed(struct pop3_session *s, size_t failed);

#endif
