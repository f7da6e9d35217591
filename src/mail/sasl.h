/* sasl.h: SASL PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195) as SMTP AUTH
 * (RFC 4954) and POP3 AUTH (RFC 5034) carry them, both sides.
 *
 * Server side: the caller turns SASL_CHALLENGE into "334 ..." or "+ ...",
 * and SASL_VERIFY into a credential check (lib/password.h). One exchange at
 * a time per session; sasl_exchange_clear() wipes the secrets it held.
 *
 * Client side (MISSION C3, X1: the outbound SMTP client and the POP3 client
 * log in to another server): the same three mechanisms plus XOAUTH2, the
 * OAuth2 bearer exchange Gmail and Microsoft 365 accept. Protocol only: the
 * caller sends what it is given (base64) and wipes its buffers. */
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
	SASL_MECH_COUNT,                     /* the mechanisms our servers offer */
	SASL_MECH_XOAUTH2 = SASL_MECH_COUNT, /* client side only */
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
/* "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"; "?" for anything else. */
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

/* --- client side --- */

/* The longest secret a client sends: a password, or an OAuth2 access token
 * (a few KB from Microsoft 365). */
#define SASL_CLIENT_SECRET_MAX 4096
/* Room for any client response in base64, NUL included. */
#define SASL_CLIENT_OUT_MAX (4 * ((SASL_NAME_MAX + SASL_CLIENT_SECRET_MAX + 64 + 2) / 3) + 1)

struct sasl_client {
	enum sasl_mech mech;
	int step;                  /* challenges answered */
	const char *user;          /* borrowed: the caller keeps them alive, then wipes them */
	const char *secret;
};

/* Starts the client side of mech for user with secret (both borrowed until
 * sasl_client_clear). The initial response, base64, goes into out (outsize
 * >= SASL_CLIENT_OUT_MAX): PLAIN "\0user\0secret", XOAUTH2
 * "user=U^Aauth=Bearer T^A^A"; LOGIN and CRAM-MD5 have none (out is ""), the
 * server speaks first. The caller may send it with the command or, when the
 * line would be too long (RFC 4954 §4), after an empty 334 challenge. 0, or
 * -1 when the mechanism is not one we speak or user/secret are too long or
 * hold a NUL where the mechanism cannot carry one. */
int sasl_client_start(struct sasl_client *x, enum sasl_mech mech, const char *user,
    const char *secret, char *out, size_t outsize);

/* The answer to a server challenge (the base64 text after "334 ") into out:
 * LOGIN the user name, then the password; CRAM-MD5 "user HMAC-MD5-hex" of
 * the decoded challenge (RFC 2195); XOAUTH2 an empty answer (the server has
 * sent an error and waits for it before its final reply). 0, or -1 when the
 * challenge is not base64 or no challenge is expected now: the caller then
 * cancels with "*". */
int sasl_client_step(struct sasl_client *x, const char *challenge, char *out, size_t outsize);

/* Forgets the borrowed pointers and the state. */
void sasl_client_clear(struct sasl_client *x);

#endif
