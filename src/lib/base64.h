/* base64.h: RFC 4648 base64 through OpenSSL's EVP encoder. */
#ifndef TEGAMI_BASE64_H
#define TEGAMI_BASE64_H

#include <stddef.h>

/* Encodes len bytes into out (at least 4 * ((len + 2) / 3) + 1 bytes).
 * Returns the length written (NUL not counted). */
size_t base64_encode(const void *in, size_t len, char *out);

/* Decodes a whole base64 string (padding required where the encoding needs
 * it; no whitespace) into out, which must hold 3 * strlen(in) / 4 bytes.
 * Returns the decoded length, or -1 when the input is not valid base64 or
 * outsize is too small. */
long base64_decode(const char *in, unsigned char *out, size_t outsize);

#endif
