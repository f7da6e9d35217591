/* password.h: password hashes and the CRAM-MD5 secret (MISSION A8).
 *
 * Passwords are stored as yescrypt crypt(3) strings ("$y$..."). CRAM-MD5
 * needs a password-equivalent secret; like Dovecot's CRAM-MD5 scheme we store
 * the HMAC-MD5 key schedule (the MD5 states after the ipad and opad blocks),
 * never the password. password_verify() is slow on purpose (tens of ms):
 * call it from a worker thread, never from the event loop. */
#ifndef TEGAMI_PASSWORD_H
#define TEGAMI_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

/* 64 hex digits: inner and outer MD5 states. */
#define CRAM_MD5_SECRET_LEN 64

/* A new yescrypt hash of password (caller frees), or NULL with errno. */
char *password_hash(const char *password);

/* True when password matches the crypt(3) hash. Constant-time compare. */
bool password_verify(const char *hash, const char *password);

/* The CRAM-MD5 secret of password into out (CRAM_MD5_SECRET_LEN + 1 bytes). */
void cram_md5_secret(const char *password, char *out);

/* True when digest_hex (32 hex digits from the client) is
 * HMAC-MD5(password, challenge) for the stored secret. Constant-time. */
bool cram_md5_verify(const char *secret, const char *challenge, const char *digest_hex);

/* Constant-time equality of two equal-length buffers. */
bool password_equal(const void *a, const void *b, size_t len);

#endif
