/* secretbox.h: secrets at rest (MISSION C5). A relay password or an OAuth2
 * access token is stored sealed with AES-256-GCM (OpenSSL EVP) under a
 * 32-byte key kept in a file only its owner may read. A sealed value is
 *
 *   "v1:" base64(nonce[12] || ciphertext || tag[16])
 *
 * and its additional data (aad) names the place it belongs to, so a value
 * copied to another row or field does not open. No mail knowledge here. */
#ifndef TEGAMI_SECRETBOX_H
#define TEGAMI_SECRETBOX_H

#include <stdbool.h>
#include <stddef.h>

#define SECRETBOX_KEY_LEN 32
#define SECRETBOX_PREFIX "v1:"

/* Reads the key from path: exactly SECRETBOX_KEY_LEN octets, a regular file
 * that neither group nor others may read or write. With create, an absent
 * file is made first (random key, mode 0600, written under a temporary name
 * and linked into place, so two processes racing agree on one key). 0, or
 * -1 with a one-line reason in err. May block on the disk. */
int secretbox_key_load(const char *path, bool create, unsigned char key[SECRETBOX_KEY_LEN],
    char *err, size_t errsize);

/* Seals len octets of plain under key for the place aad names. Returns a
 * new NUL-terminated string (caller frees); aborts on allocation failure. */
char *secretbox_seal(const unsigned char key[SECRETBOX_KEY_LEN], const char *aad,
    const void *plain, size_t len);

/* Opens a sealed value into out (outsize bytes, NUL-terminated on success;
 * *len_r octets without the NUL). -1 when the value is malformed, does not
 * fit, or does not authenticate (another key, another place, altered); out
 * is then wiped. */
int secretbox_open(const unsigned char key[SECRETBOX_KEY_LEN], const char *aad,
    const char *sealed, char *out, size_t outsize, size_t *len_r);

/* True when s has the shape of a sealed value (prefix and base64). */
bool secretbox_is_sealed(const char *s);

#endif
