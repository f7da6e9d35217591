/* The MD5 state access below uses OpenSSL's low-level MD5 API, deprecated in
 * OpenSSL 3 but still the only way to resume from a stored key schedule,
 * which is what makes a CRAM-MD5 secret that is not the password. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "lib/password.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xmalloc.h"

char *
password_hash(const char *password)
{
	char *setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	struct crypt_data *cd;
	char *out = NULL;

	if (setting == NULL)
		return NULL;
	cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_r(password, setting, cd);
	if (h != NULL && h[0] == '$')
		out = xstrdup(h);
	else
		errno = EINVAL;
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	free(setting);
	return out;
}

bool
password_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

bool
password_verify(const char *hash, const char *password)
{
	struct crypt_data *cd;
	bool ok = false;

	if (hash == NULL || hash[0] != '$')
		return false;
	cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_r(password, hash, cd);
	if (h != NULL && h[0] == '$' && strlen(h) == strlen(hash))
		ok = password_equal(h, hash, strlen(hash));
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ok;
}

static void
key_block(const char *password, unsigned char block[64])
{
	size_t len = strlen(password);

	memset(block, 0, 64);
	if (len > 64)
		MD5((const unsigned char *)password, len, block); /* RFC 2104: hash long keys */
	else
		memcpy(block, password, len);
}

static void
state_hex(const MD5_CTX *c, char *out)
{
	const uint32_t w[4] = { c->A, c->B, c->C, c->D };

	for (int i = 0; i < 4; i++) {
		/* Little-endian bytes of each word, as Dovecot stores them. */
		for (int b = 0; b < 4; b++)
			snprintf(out + i * 8 + b * 2, 3, "%02x", (unsigned)((w[i] >> (8 * b)) & 0xff));
	}
}

void
cram_md5_secret(const char *password, char *out)
{
	unsigned char key[64], pad[64];
	MD5_CTX ctx;

	key_block(password, key);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < 64; i++)
			pad[i] = key[i] ^ (pass == 0 ? 0x36 : 0x5c);
		MD5_Init(&ctx);
		MD5_Update(&ctx, pad, 64);
		state_hex(&ctx, out + pass * 32);
	}
	out[CRAM_MD5_SECRET_LEN] = '\0';
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(&ctx, sizeof(ctx));
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
hex_decode(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* An MD5 context resumed after one 64-byte block with the stored state. */
static int
state_load(const char *hex, MD5_CTX *c)
{
	unsigned char b[16];
	uint32_t w[4];

	for (int i = 0; i < 16; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		b[i] = (unsigned char)(hi << 4 | lo);
	}
	for (int i = 0; i < 4; i++)
		w[i] = (uint32_t)b[i * 4] | (uint32_t)b[i * 4 + 1] << 8 |
		    (uint32_t)b[i * 4 + 2] << 16 | (uint32_t)b[i * 4 + 3] << 24;
	MD5_Init(c);
	c->A = w[0];
	c->B = w[1];
	c->C = w[2];
	c->D = w[3];
	c->Nl = 512; /* one block processed */
	return 0;
}

bool
cram_md5_verify(const char *secret, const char *challenge, const char *digest_hex)
{
	unsigned char inner[16], mac[16], want[16];
	MD5_CTX ctx;

	if (secret == NULL || strlen(secret) != CRAM_MD5_SECRET_LEN || strlen(digest_hex) != 32 ||
	    hex_decode(digest_hex, want, 16) < 0)
		return false;
	if (state_load(secret, &ctx) < 0)
		return false;
	MD5_Update(&ctx, challenge, strlen(challenge));
	MD5_Final(inner, &ctx);
	if (state_load(secret + 32, &ctx) < 0)
		return false;
	MD5_Update(&ctx, inner, sizeof(inner));
	MD5_Final(mac, &ctx);
	return password_equal(mac, want, sizeof(mac));
}
