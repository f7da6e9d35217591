#include "mail/sasl.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/base64.h"
#include "lib/strutil.h"

static const char *const mech_names[SASL_MECH_COUNT] = { "PLAIN", "LOGIN", "CRAM-MD5" };

enum sasl_mech
sasl_mech_parse(const char *name)
{
	for (int i = 0; i < SASL_MECH_COUNT; i++) {
		if (strcasecmp(name, mech_names[i]) == 0)
			return (enum sasl_mech)i;
	}
	return SASL_MECH_UNKNOWN;
}

const char *
sasl_mech_name(enum sasl_mech mech)
{
	if (mech == SASL_MECH_XOAUTH2)
		return "XOAUTH2";
	return mech >= 0 && mech < SASL_MECH_COUNT ? mech_names[mech] : "?";
}

bool
sasl_mech_plaintext(enum sasl_mech mech)
{
	return mech == SASL_MECH_PLAIN || mech == SASL_MECH_LOGIN;
}

void
sasl_exchange_clear(struct sasl_exchange *x)
{
	OPENSSL_cleanse(x, sizeof(*x));
}

static void
challenge(const char *text, char *out)
{
	base64_encode(text, strlen(text), out);
}

/* Decodes a client line. Returns its length, or -1 (bad base64). The buffer
 * is NUL-terminated for convenience; the data may hold NULs (PLAIN). */
static long
decode(const char *line, unsigned char *buf, size_t size)
{
	if (strcmp(line, "=") == 0) {
		buf[0] = '\0';
		return 0;
	}
	long n = base64_decode(line, buf, size - 1);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static bool
copy_field(char *dst, size_t dstsize, const unsigned char *src, size_t len)
{
	if (len >= dstsize || memchr(src, '\0', len) != NULL)
		return false;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return true;
}

/* PLAIN: [authzid] NUL authcid NUL passwd. An authzid other than the
 * authcid would be acting for someone else: refused. */
static enum sasl_result
plain_response(struct sasl_exchange *x, const unsigned char *d, size_t n)
{
	const unsigned char *nul1 = memchr(d, '\0', n);
	const unsigned char *nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - d)) : NULL;
	char authzid[SASL_NAME_MAX + 1];

	if (nul2 == NULL)
		return SASL_MALFORMED;
	if (!copy_field(authzid, sizeof(authzid), d, (size_t)(nul1 - d)) ||
	    !copy_field(x->authcid, sizeof(x->authcid), nul1 + 1, (size_t)(nul2 - nul1 - 1)) ||
	    !copy_field(x->password, sizeof(x->password), nul2 + 1, n - (size_t)(nul2 + 1 - d)))
		return SASL_MALFORMED;
	str_lower(authzid);
	str_lower(x->authcid);
	if (x->authcid[0] == '\0')
		return SASL_MALFORMED;
	x->authzid_mismatch = authzid[0] != '\0' && strcmp(authzid, x->authcid) != 0;
	return SASL_VERIFY;
}

/* CRAM-MD5 response: "user SP 32-hex-digest" (RFC 2195). */
static enum sasl_result
cram_response(struct sasl_exchange *x, const unsigned char *d, size_t n)
{
	const unsigned char *sp = n > 33 ? d + n - 33 : NULL;

	if (sp == NULL || *sp != ' ')
		return SASL_MALFORMED;
	if (!copy_field(x->authcid, sizeof(x->authcid), d, (size_t)(sp - d)) ||
	    !copy_field(x->digest, sizeof(x->digest), sp + 1, 32))
		return SASL_MALFORMED;
	str_lower(x->authcid);
	return SASL_VERIFY;
}

static enum sasl_result
step(struct sasl_exchange *x, const unsigned char *d, size_t n, char *out)
{
	switch (x->mech) {
	case SASL_MECH_PLAIN:
		return plain_response(x, d, n);
	case SASL_MECH_CRAM_MD5:
		return cram_response(x, d, n);
	case SASL_MECH_LOGIN:
		if (x->step == 0) {
			if (!copy_field(x->authcid, sizeof(x->authcid), d, n) || n == 0)
				return SASL_MALFORMED;
			str_lower(x->authcid);
			x->step = 1;
			challenge("Password:", out);
			return SASL_CHALLENGE;
		}
		if (!copy_field(x->password, sizeof(x->password), d, n))
			return SASL_MALFORMED;
		return SASL_VERIFY;
	default:
		return SASL_MALFORMED;
	}
}

enum sasl_result
sasl_continue(struct sasl_exchange *x, const char *line, char *out, size_t outsize)
{
	unsigned char buf[SASL_LINE_MAX];

	if (strcmp(line, "*") == 0)
		return SASL_CANCELLED;
	if (strlen(line) > SASL_LINE_MAX)
		return SASL_MALFORMED;
	long n = decode(line, buf, sizeof(buf));
	if (n < 0)
		return SASL_BAD_BASE64;
	enum sasl_result r = step(x, buf, (size_t)n, out);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

enum sasl_result
sasl_start(struct sasl_exchange *x, enum sasl_mech mech, const char *initial,
    const char *hostname, char *out, size_t outsize)
{
	unsigned char rnd[8];
	unsigned long long r = 0;

	memset(x, 0, sizeof(*x));
	x->mech = mech;
	out[0] = '\0';
	switch (mech) {
	case SASL_MECH_PLAIN:
		if (initial == NULL)
			return SASL_CHALLENGE; /* empty challenge: "334 " */
		return sasl_continue(x, initial, out, outsize);
	case SASL_MECH_LOGIN:
		if (initial == NULL) {
			challenge("Username:", out);
			return SASL_CHALLENGE;
		}
		return sasl_continue(x, initial, out, outsize);
	case SASL_MECH_CRAM_MD5:
		if (initial != NULL)
			return SASL_MALFORMED; /* the server speaks first */
		if (RAND_bytes(rnd, sizeof(rnd)) == 1)
			memcpy(&r, rnd, sizeof(r));
		snprintf(x->challenge, sizeof(x->challenge), "<%llu.%lld@%s>", r,
		    (long long)time(NULL), hostname);
		challenge(x->challenge, out);
		return SASL_CHALLENGE;
	default:
		return SASL_MALFORMED;
	}
}

/* --- client side --- */

/* base64 of len octets into out when it fits (with its NUL). */
static int
encode_out(const void *data, size_t len, char *out, size_t outsize)
{
	if (4 * ((len + 2) / 3) + 1 > outsize)
		return -1;
	base64_encode(data, len, out);
	return 0;
}

/* Builds the PLAIN or XOAUTH2 initial response in a scratch buffer (wiped). */
static int
initial_response(const struct sasl_client *x, char *out, size_t outsize)
{
	size_t ul = strlen(x->user), sl = strlen(x->secret);
	size_t cap = ul + sl + 64;
	unsigned char *buf = malloc(cap);
	int n, rc;

	if (buf == NULL)
		return -1;
	if (x->mech == SASL_MECH_PLAIN) {
		/* RFC 4616: [authzid] NUL authcid NUL passwd; no authzid. */
		buf[0] = '\0';
		memcpy(buf + 1, x->user, ul);
		buf[1 + ul] = '\0';
		memcpy(buf + 2 + ul, x->secret, sl);
		n = (int)(ul + sl + 2);
	} else {
		/* Google's and Microsoft's XOAUTH2: user=U ^A auth=Bearer T ^A ^A. */
		n = snprintf((char *)buf, cap, "user=%s\001auth=Bearer %s\001\001", x->user,
		    x->secret);
	}
	rc = n > 0 && (size_t)n < cap ? encode_out(buf, (size_t)n, out, outsize) : -1;
	OPENSSL_cleanse(buf, cap);
	free(buf);
	return rc;
}

int
sasl_client_start(struct sasl_client *x, enum sasl_mech mech, const char *user,
    const char *secret, char *out, size_t outsize)
{
	memset(x, 0, sizeof(*x));
	if (outsize == 0)
		return -1;
	out[0] = '\0';
	if (strlen(user) > SASL_NAME_MAX || strlen(secret) > SASL_CLIENT_SECRET_MAX)
		return -1;
	/* XOAUTH2 separates its fields with ^A: none may hold one. */
	if (mech == SASL_MECH_XOAUTH2 && (strchr(user, '\001') != NULL ||
	    strchr(secret, '\001') != NULL))
		return -1;
	x->mech = mech;
	x->user = user;
	x->secret = secret;
	switch (mech) {
	case SASL_MECH_PLAIN:
	case SASL_MECH_XOAUTH2:
		return initial_response(x, out, outsize);
	case SASL_MECH_LOGIN:
	case SASL_MECH_CRAM_MD5:
		return 0;
	default:
		return -1;
	}
}

/* RFC 2195: "user SP hex(HMAC-MD5(secret, challenge))", base64. */
static int
cram_answer(struct sasl_client *x, const char *challenge, char *out, size_t outsize)
{
	unsigned char chal[SASL_LINE_MAX], mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	char line[SASL_NAME_MAX + 2 + 2 * 16 + 1];
	long n = decode(challenge, chal, sizeof(chal));
	int rc = -1;

	if (n <= 0)
		return -1;
	if (HMAC(EVP_md5(), x->secret, (int)strlen(x->secret), chal, (size_t)n, mac,
	    &maclen) != NULL && maclen == 16) {
		int o = snprintf(line, sizeof(line), "%s ", x->user);
		for (unsigned i = 0; i < maclen && o > 0 && (size_t)o + 2 < sizeof(line); i++)
			o += snprintf(line + o, sizeof(line) - (size_t)o, "%02x", mac[i]);
		rc = o > 0 ? encode_out(line, (size_t)o, out, outsize) : -1;
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(line, sizeof(line));
	return rc;
}

int
sasl_client_step(struct sasl_client *x, const char *challenge, char *out, size_t outsize)
{
	int step = x->step++;

	if (outsize == 0)
		return -1;
	out[0] = '\0';
	switch (x->mech) {
	case SASL_MECH_LOGIN:
		/* The prompts ("Username:", "Password:") vary between servers:
		 * the order decides, as every client does. */
		if (step == 0)
			return encode_out(x->user, strlen(x->user), out, outsize);
		if (step == 1)
			return encode_out(x->secret, strlen(x->secret), out, outsize);
		return -1;
	case SASL_MECH_CRAM_MD5:
		return step == 0 ? cram_answer(x, challenge, out, outsize) : -1;
	case SASL_MECH_XOAUTH2:
		/* The server's error details (base64 JSON) want an empty
		 * answer; its final reply follows. */
		return step == 0 ? 0 : -1;
	default:
		return -1;
	}
}

void
sasl_client_clear(struct sasl_client *x)
{
	OPENSSL_cleanse(x, sizeof(*x));
}
