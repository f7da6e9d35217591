#include "lib/tls.h"

#include "lib/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Ciphertext a STARTTLS filter may leave in the socket bufferevent's output. */
#define TLS_FILTER_UNDER_MAX (64 * 1024)

static void
ssl_error(char *err, size_t errsize, const char *what, const char *arg)
{
	unsigned long e = ERR_get_error();
	char detail[256] = "";

	if (e != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	ERR_clear_error();
	snprintf(err, errsize, "%s%s%s%s%s", what, arg != NULL ? " " : "", arg != NULL ? arg : "",
	    detail[0] != '\0' ? ": " : "", detail);
}

int
tls_protocol_parse(const char *name)
{
	static const struct { const char *name; int version; } protos[] = {
		{ "TLSv1", TLS1_VERSION }, { "TLSv1.1", TLS1_1_VERSION },
		{ "TLSv1.2", TLS1_2_VERSION }, { "TLSv1.3", TLS1_3_VERSION },
	};

	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		if (strcmp(name, protos[i].name) == 0)
			return protos[i].version;
	}
	return -1;
}

struct ssl_ctx_st *
tls_context_create(const struct tls_settings *ts, char *err, size_t errsize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int minv = tls_protocol_parse(ts->min_protocol);

	if (ctx == NULL) {
		ssl_error(err, errsize, "SSL_CTX_new failed", NULL);
		return NULL;
	}
	if (minv < 0) {
		snprintf(err, errsize, "unknown TLS protocol %s", ts->min_protocol);
		goto fail;
	}
	/* TLSv1 and TLSv1.1 need security level 0 in OpenSSL 3: an admin who
	 * asks for them gets them. */
	if (minv < TLS1_2_VERSION)
		SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (ts->ciphers != NULL && ts->ciphers[0] != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, ts->ciphers) != 1) {
		ssl_error(err, errsize, "bad tls.ciphers", ts->ciphers);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, ts->cert_file) != 1) {
		ssl_error(err, errsize, "cannot load certificate", ts->cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, ts->key_file, SSL_FILETYPE_PEM) != 1) {
		ssl_error(err, errsize, "cannot load private key", ts->key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_error(err, errsize, "private key does not match certificate", ts->key_file);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct ssl_ctx_st *
tls_client_context_create(const char *min_protocol, const char *ca_file, char *err,
    size_t errsize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int minv = tls_protocol_parse(min_protocol);

	if (ctx == NULL) {
		ssl_error(err, errsize, "SSL_CTX_new failed", NULL);
		return NULL;
	}
	if (minv < 0) {
		snprintf(err, errsize, "unknown TLS protocol %s", min_protocol);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (minv < TLS1_2_VERSION)
		SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (ca_file != NULL && ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			ssl_error(err, errsize, "cannot load CA file", ca_file);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else {
		SSL_CTX_set_default_verify_paths(ctx);
	}
	ERR_clear_error();
	return ctx;
}

void
tls_context_free(struct ssl_ctx_st **ctxp)
{
	SSL_CTX_free(*ctxp);
	*ctxp = NULL;
}

static int
write_pem(const char *path, int mode, EVP_PKEY *key, X509 *cert)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return -1;
	}
	int ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_X509(f, cert);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	return ok == 1 ? 0 : -1;
}

int
tls_selfsigned_create(const char *hostname, const char *cert_path, const char *key_path,
    char *err, size_t errsize)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int rc = -1;

	if (key == NULL || x == NULL) {
		ssl_error(err, errsize, "cannot generate a key", NULL);
		goto out;
	}
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (X509_sign(x, key, EVP_sha256()) == 0) {
		ssl_error(err, errsize, "cannot sign the certificate", NULL);
		goto out;
	}
	if (write_pem(key_path, 0600, key, NULL) < 0 || write_pem(cert_path, 0644, NULL, x) < 0) {
		snprintf(err, errsize, "cannot write %s / %s: %s", cert_path, key_path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

void
tls_describe(struct ssl_st *ssl, char *buf, size_t size)
{
	if (ssl == NULL) {
		snprintf(buf, size, "none");
		return;
	}
	snprintf(buf, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

struct bufferevent *
tls_bufferevent_accept(struct event_base *base, int fd, struct bufferevent *under,
    struct ssl_ctx_st *ctx)
{
	SSL *ssl = SSL_new(ctx);
	struct bufferevent *bev;

	if (ssl == NULL)
		fatalx("SSL_new failed");
	bev = under != NULL ?
	    bufferevent_openssl_filter_new(base, under, ssl, BUFFEREVENT_SSL_ACCEPTING,
	        BEV_OPT_CLOSE_ON_FREE) :
	    bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	        BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		fatalx("bufferevent_openssl_new failed");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* A filter moves all it encrypts into the socket bufferevent under it
	 * unless that one has a write high-water mark: without it a client that
	 * does not read makes us hold the whole response twice. With it, the
	 * rest waits in the filter's output, which the session counts. */
	if (under != NULL)
		bufferevent_setwatermark(under, EV_WRITE, 0, TLS_FILTER_UNDER_MAX);
	return bev;
}

bool
tls_bufferevent_flushed(struct bufferevent *bev)
{
	struct bufferevent *under = bufferevent_get_underlying(bev);

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return false;
	return under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

void
tls_bufferevent_describe(struct bufferevent *bev, char *buf, size_t size)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL) {
		buf[0] = '\0';
		return;
	}
	tls_describe(ssl, buf, size);
}
