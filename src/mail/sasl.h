/* sasl.h: the server side of SASL PLAIN (RFC 4616), LOGIN and CRAM-MD5
 * (RFC 2195) as SMTP AUTH (RFC 4954) and POP3 AUTH (RFC 5034) carry them.
 * Protocol only: the caller turns SASL_CHALLENGE into "334 ..." or "+ ...",
 * and SASL_VERIFY into a credential check (lib/password.h). One exchange at a
 * time per session; sasl_exchange_clear() wipes the secrets it held. */
#ifndef TEGAMI_SASL_H
#define TEGAMI_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_NAME_MAX 320   /* authentication identity: an address */
#define SASL_SECRET_MAX 512 /* password */
/* Longest challenge or response line we handle (RFC 4954 §4: 12288). */
#define SASL_LINE_MAX 12288

enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_CRAM_MD5,
	SASL_MECH_COUNT,
	SASL_MECH_UNKNOWN = -1,
};

enum sasl_result {
	SASL_CHALLENGE, /* send the base64 challenge in out, then sasl_continue() */
	SASL_VERIFY,    /* authcid and password (or CRAM digest) are complete */
	SASL_CANCELLED, /* the client sent "*" */
	SASL_BAD_BASE64,
	SASL_MALFORMED, /* decoded, but not what the mechanism expects */
};

struct sasl_exchange {
	enum sasl_mech mech;
	int step;
	char authcid[SASL_NAME_MAX + 1];   /* who authenticates (lower case) */
	char password[SASL_SECRET_MAX + 1];/* PLAIN, LOGIN */
	char challenge[256];               /* CRAM-MD5: what we sent */
	char digest[33];                   /* CRAM-MD5: the client's hex digest */
	bool authzid_mismatch;             /* PLAIN: acting for someone else: refuse */
};

/* "PLAIN" → SASL_MECH_PLAIN, case-insensitively; SASL_MECH_UNKNOWN otherwise. */
enum sasl_mech sasl_mech_parse(const char *name);
const char *sasl_mech_name(enum sasl_mech mech);
/* PLAIN and LOGIN send the password itself (A4: only under TLS by default). */
bool sasl_mech_plaintext(enum sasl_mech mech);

/* Starts an exchange. initial is the initial response (NULL when absent;
 * "=" stands for an empty one, RFC 4954 §4). hostname goes into the CRAM-MD5
 * challenge. out receives a base64 challenge (outsize >= 512). */
enum sasl_result sasl_start(struct sasl_exchange *x, enum sasl_mech mech, const char *initial,
    const char *hostname, char *out, size_t outsize);

/* Feeds the client's next line (base64 or "*"). */
enum sasl_result sasl_continue(struct sasl_exchange *x, const char *line, char *out,
    size_t outsize);

void sasl_exchange_clear(struct sasl_exchange *x);

#endif
