/* tls.h: the server-side TLS context (OpenSSL 3), shared by STARTTLS and the
 * implicit-TLS listener (MISSION A2). No mail knowledge here. */
#ifndef TEGAMI_TLS_H
#define TEGAMI_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct ssl_ctx_st;
struct ssl_st;

struct tls_settings {
	const char *cert_file;    /* PEM chain */
	const char *key_file;     /* PEM private key */
	const char *min_protocol; /* "TLSv1" "TLSv1.1" "TLSv1.2" "TLSv1.3" */
	const char *ciphers;      /* OpenSSL cipher list for TLS <= 1.2; "" = default */
};

/* Builds a server context. Returns it, or NULL with a one-line reason in
 * err (errsize bytes) naming the file or the setting at fault. */
struct ssl_ctx_st *tls_context_create(const struct tls_settings *ts, char *err, size_t errsize);
void tls_context_free(struct ssl_ctx_st **ctxp);

/* Builds a client context (outbound SMTP): minimum protocol, the trust
 * store from ca_file or the system's default paths. NULL with a reason in
 * err. */
struct ssl_ctx_st *tls_client_context_create(const char *min_protocol, const char *ca_file,
    char *err, size_t errsize);

/* Writes a new self-signed certificate for hostname (EC P-256, 10 years) to
 * cert_path and key_path (key mode 0600). 0, or -1 with a reason in err. */
int tls_selfsigned_create(const char *hostname, const char *cert_path, const char *key_path,
    char *err, size_t errsize);

/* Parses a protocol name; returns the OpenSSL version constant, or -1. */
int tls_protocol_parse(const char *name);

struct bufferevent;
struct event_base;

/* The server side of a TLS connection as a bufferevent: over the socket fd
 * (implicit TLS, under NULL) or over an existing bufferevent (STARTTLS/STLS;
 * fd ignored, under is freed with it). Clients that close without
 * close_notify are tolerated. Aborts on allocation failure. */
struct bufferevent *tls_bufferevent_accept(struct event_base *base, int fd,
    struct bufferevent *under, struct ssl_ctx_st *ctx);

/* True when everything written to bev has reached the kernel: for a TLS
 * filter that means its underlying bufferevent's output too. */
bool tls_bufferevent_flushed(struct bufferevent *bev);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" of a TLS bufferevent, "" otherwise. */
void tls_bufferevent_describe(struct bufferevent *bev, char *buf, size_t size);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and Received headers. */
void tls_describe(struct ssl_st *ssl, char *buf, size_t size);

#endif
