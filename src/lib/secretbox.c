/* secretbox.c: AES-256-GCM sealed secrets and their key file (secretbox.h). */
#include "lib/secretbox.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base64.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX_LEN (sizeof(SECRETBOX_PREFIX) - 1)

/* The key file as it is: a regular file of exactly the key's size that
 * only its owner may touch (like ssh with its private keys). */
static int
key_read(const char *path, unsigned char *key, char *err, size_t errsize)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc = -1;

	if (fd < 0) {
		snprintf(err, errsize, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsize, "%s is not a regular file", path);
	} else if ((st.st_mode & 077) != 0) {
		snprintf(err, errsize, "%s may be read by others (mode %03o): chmod 600 it",
		    path, (unsigned)(st.st_mode & 0777));
	} else if (st.st_size != SECRETBOX_KEY_LEN ||
	    fs_pread_all(fd, key, SECRETBOX_KEY_LEN, 0) < 0) {
		snprintf(err, errsize, "%s is not a key (%d octets expected)", path,
		    SECRETBOX_KEY_LEN);
	} else {
		rc = 0;
	}
	close(fd);
	return rc;
}

/* A new key under a temporary name, linked to path: link(2) never replaces,
 * so a process that loses the race reads the winner's key. */
static int
key_create(const char *path, char *err, size_t errsize)
{
	unsigned char key[SECRETBOX_KEY_LEN];
	char tmp[4200];
	int rc = -1;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp)) {
		snprintf(err, errsize, "key path too long");
		return -1;
	}
	int fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0) {
		snprintf(err, errsize, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	if (RAND_bytes(key, sizeof(key)) != 1) {
		snprintf(err, errsize, "no random octets for %s", path);
	} else if (fchmod(fd, 0600) < 0 || fs_write_all(fd, key, sizeof(key)) < 0 ||
	    fsync(fd) < 0) {
		snprintf(err, errsize, "cannot write %s: %s", tmp, strerror(errno));
	} else if (link(tmp, path) < 0 && errno != EEXIST) {
		snprintf(err, errsize, "cannot create %s: %s", path, strerror(errno));
	} else {
		rc = 0;
	}
	OPENSSL_cleanse(key, sizeof(key));
	close(fd);
	unlink(tmp);
	return rc;
}

int
secretbox_key_load(const char *path, bool create, unsigned char key[SECRETBOX_KEY_LEN],
    char *err, size_t errsize)
{
	if (create && access(path, F_OK) < 0 && errno == ENOENT &&
	    key_create(path, err, errsize) < 0)
		return -1;
	return key_read(path, key, err, errsize);
}

/* One AES-256-GCM pass: encrypt (enc) or decrypt with the tag checked.
 * Returns the output length, or -1. */
static int
gcm(bool enc, const unsigned char *key, const unsigned char *nonce, const char *aad,
    const unsigned char *in, int inlen, unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0, rc = -1;

	if (ctx == NULL)
		fatalx("EVP_CIPHER_CTX_new failed");
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
	    EVP_CipherUpdate(ctx, out, &len, in, inlen) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + len, &fin) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	rc = len + fin;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

char *
secretbox_seal(const unsigned char key[SECRETBOX_KEY_LEN], const char *aad, const void *plain,
    size_t len)
{
	size_t rawlen = NONCE_LEN + len + TAG_LEN;
	unsigned char *raw = xmalloc(rawlen);
	char *out = xmalloc(PREFIX_LEN + 4 * ((rawlen + 2) / 3) + 1);

	if (len > 1024 * 1024 || RAND_bytes(raw, NONCE_LEN) != 1)
		fatalx("secretbox_seal: no random nonce or an absurd length");
	if (gcm(true, key, raw, aad, plain, (int)len, raw + NONCE_LEN,
	    raw + NONCE_LEN + len) != (int)len)
		fatalx("secretbox_seal: AES-256-GCM failed");
	memcpy(out, SECRETBOX_PREFIX, PREFIX_LEN);
	base64_encode(raw, rawlen, out + PREFIX_LEN);
	free(raw);
	return out;
}

bool
secretbox_is_sealed(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n <= PREFIX_LEN || strncmp(s, SECRETBOX_PREFIX, PREFIX_LEN) != 0)
		return false;
	return (n - PREFIX_LEN) % 4 == 0 &&
	    strspn(s + PREFIX_LEN, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	        "0123456789+/=") == n - PREFIX_LEN;
}

int
secretbox_open(const unsigned char key[SECRETBOX_KEY_LEN], const char *aad, const char *sealed,
    char *out, size_t outsize, size_t *len_r)
{
	if (!secretbox_is_sealed(sealed))
		return -1;
	size_t b64len = strlen(sealed + PREFIX_LEN);
	size_t cap = b64len / 4 * 3;
	unsigned char *raw = xmalloc(cap > 0 ? cap : 1);
	long n = base64_decode(sealed + PREFIX_LEN, raw, cap);
	int rc = -1;

	if (n >= NONCE_LEN + TAG_LEN && (size_t)n - NONCE_LEN - TAG_LEN < outsize) {
		size_t clen = (size_t)n - NONCE_LEN - TAG_LEN;
		int m = gcm(false, key, raw, aad, raw + NONCE_LEN, (int)clen, (unsigned char *)out,
		    raw + NONCE_LEN + clen);
		if (m == (int)clen) {
			out[clen] = '\0';
			*len_r = clen;
			rc = 0;
		} else {
			OPENSSL_cleanse(out, outsize);
		}
	}
	OPENSSL_cleanse(raw, cap > 0 ? cap : 1);
	free(raw);
	return rc;
}
