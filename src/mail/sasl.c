#include "mail/sasl.h"

#include <openssl/crypto.h>
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
