/* Unit tests for mail/sasl.c (both sides), lib/base64.c and lib/password.c
 * (MISSION A1, A8, C3). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/password.h"
#include "mail/sasl.h"

static void
test_base64(void **state)
{
	unsigned char out[64];
	char enc[64];

	assert_int_equal(base64_decode("", out, sizeof(out)), 0);
	assert_int_equal(base64_decode("Zm9v", out, sizeof(out)), 3);
	assert_memory_equal(out, "foo", 3);
	assert_int_equal(base64_decode("Zm8=", out, sizeof(out)), 2);
	assert_int_equal(base64_decode("Zg==", out, sizeof(out)), 1);
	assert_int_equal(base64_decode("Zm9", out, sizeof(out)), -1);    /* not a multiple of 4 */
	assert_int_equal(base64_decode("Zm 9v", out, sizeof(out)), -1);  /* blanks refused */
	assert_int_equal(base64_decode("Z!9v", out, sizeof(out)), -1);
	assert_int_equal(base64_decode("Zm9vYmFy", out, 5), -1);       /* does not fit */
	assert_int_equal(base64_encode("\0a\0b", 4, enc), 8);
	assert_string_equal(enc, "AGEAYg==");
}

/* RFC 2195 §2 example. */
static void
test_cram_md5_rfc2195(void **state)
{
	char secret[CRAM_MD5_SECRET_LEN + 1];
	const char *challenge = "<1896.697170952@postoffice.reston.mci.net>";

	cram_md5_secret("tanstaaftanstaaf", secret);
	assert_int_equal(strlen(secret), CRAM_MD5_SECRET_LEN);
	assert_true(cram_md5_verify(secret, challenge, "b913a602c7eda7a495b4e6e7334d3890"));
	assert_true(cram_md5_verify(secret, challenge, "B913A602C7EDA7A495B4E6E7334D3890"));
	assert_false(cram_md5_verify(secret, challenge, "b913a602c7eda7a495b4e6e7334d3891"));
	assert_false(cram_md5_verify(secret, "<other@host>", "b913a602c7eda7a495b4e6e7334d3890"));
	assert_false(cram_md5_verify(secret, challenge, "b913a602"));
	assert_false(cram_md5_verify("short", challenge, "b913a602c7eda7a495b4e6e7334d3890"));
	assert_null(strstr(secret, "tanstaaf"));
}

static void
test_password_hash_verify(void **state)
{
	char *h = password_hash("correct horse");

	assert_non_null(h);
	assert_memory_equal(h, "$y$", 3);
	assert_true(password_verify(h, "correct horse"));
	assert_false(password_verify(h, "correct horsE"));
	assert_false(password_verify(h, ""));
	assert_false(password_verify(NULL, "x"));
	assert_false(password_verify("plain", "plain")); /* never a plaintext compare */
	free(h);
}

static void
test_mech_names(void **state)
{
	assert_int_equal(sasl_mech_parse("plain"), SASL_MECH_PLAIN);
	assert_int_equal(sasl_mech_parse("CRAM-MD5"), SASL_MECH_CRAM_MD5);
	assert_int_equal(sasl_mech_parse("GSSAPI"), SASL_MECH_UNKNOWN);
	assert_true(sasl_mech_plaintext(SASL_MECH_LOGIN));
	assert_false(sasl_mech_plaintext(SASL_MECH_CRAM_MD5));
}

static void
test_plain(void **state)
{
	struct sasl_exchange x;
	char out[512];

	/* \0alice@example.test\0secret */
	assert_int_equal(sasl_start(&x, SASL_MECH_PLAIN, "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=",
	    "h", out, sizeof(out)), SASL_VERIFY);
	assert_string_equal(x.authcid, "alice@example.test");
	assert_string_equal(x.password, "secret");
	assert_false(x.authzid_mismatch);
	/* no initial response: an empty challenge, then the response */
	assert_int_equal(sasl_start(&x, SASL_MECH_PLAIN, NULL, "h", out, sizeof(out)), SASL_CHALLENGE);
	assert_string_equal(out, "");
	assert_int_equal(sasl_continue(&x, "*", out, sizeof(out)), SASL_CANCELLED);
	/* bob\0alice@example.test\0secret: acting for someone else */
	assert_int_equal(sasl_start(&x, SASL_MECH_PLAIN, "Ym9iAGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=",
	    "h", out, sizeof(out)), SASL_VERIFY);
	assert_true(x.authzid_mismatch);
	/* one NUL only */
	assert_int_equal(sasl_start(&x, SASL_MECH_PLAIN, "AGFsaWNl", "h", out, sizeof(out)),
	    SASL_MALFORMED);
	assert_int_equal(sasl_start(&x, SASL_MECH_PLAIN, "!!!!", "h", out, sizeof(out)),
	    SASL_BAD_BASE64);
	sasl_exchange_clear(&x);
	assert_string_equal(x.password, "");
}

static void
test_login(void **state)
{
	struct sasl_exchange x;
	char out[512];
	unsigned char dec[64];

	assert_int_equal(sasl_start(&x, SASL_MECH_LOGIN, NULL, "h", out, sizeof(out)), SASL_CHALLENGE);
	long n = base64_decode(out, dec, sizeof(dec));
	assert_int_equal(n, 9);
	assert_memory_equal(dec, "Username:", 9);
	assert_int_equal(sasl_continue(&x, "Qm9iQGV4YW1wbGUudGVzdA==", out, sizeof(out)),
	    SASL_CHALLENGE);
	assert_string_equal(x.authcid, "bob@example.test"); /* lower-cased */
	assert_int_equal(sasl_continue(&x, "c2VjcmV0", out, sizeof(out)), SASL_VERIFY);
	assert_string_equal(x.password, "secret");
	/* an empty user name is refused */
	assert_int_equal(sasl_start(&x, SASL_MECH_LOGIN, "=", "h", out, sizeof(out)), SASL_MALFORMED);
}

static void
test_cram_exchange(void **state)
{
	struct sasl_exchange x;
	char out[512];
	unsigned char dec[256];

	assert_int_equal(sasl_start(&x, SASL_MECH_CRAM_MD5, "eA==", "h", out, sizeof(out)),
	    SASL_MALFORMED); /* no initial response with CRAM-MD5 */
	assert_int_equal(sasl_start(&x, SASL_MECH_CRAM_MD5, NULL, "mx.example", out, sizeof(out)),
	    SASL_CHALLENGE);
	long n = base64_decode(out, dec, sizeof(dec) - 1);
	assert_true(n > 0);
	dec[n] = '\0';
	assert_string_equal((char *)dec, x.challenge);
	assert_true(dec[0] == '<' && strstr((char *)dec, "@mx.example>") != NULL);
	/* "tim b913a602c7eda7a495b4e6e7334d3890" */
	assert_int_equal(sasl_continue(&x,
	    "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", out, sizeof(out)), SASL_VERIFY);
	assert_string_equal(x.authcid, "tim");
	assert_string_equal(x.digest, "b913a602c7eda7a495b4e6e7334d3890");
	assert_int_equal(sasl_continue(&x, "dGlt", out, sizeof(out)), SASL_MALFORMED);
}


/* --- client side (C3) --- */

static long
b64dec(const char *in, unsigned char *out, size_t size)
{
	long n = base64_decode(in, out, size - 1);
	if (n >= 0)
		out[n] = '\0';
	return n;
}

static void
test_client_plain_against_server(void **state)
{
	struct sasl_client c;
	struct sasl_exchange x;
	char out[SASL_CLIENT_OUT_MAX], sout[512];

	assert_int_equal(sasl_client_start(&c, SASL_MECH_PLAIN, "alice@example.test", "s3cret",
	    out, sizeof(out)), 0);
	assert_string_equal(out, "AGFsaWNlQGV4YW1wbGUudGVzdABzM2NyZXQ=");
	assert_int_equal(sasl_start(&x, SASL_MECH_PLAIN, out, "h", sout, sizeof(sout)), SASL_VERIFY);
	assert_string_equal(x.authcid, "alice@example.test");
	assert_string_equal(x.password, "s3cret");
	assert_false(x.authzid_mismatch);
	/* a 334 after the initial response is not expected */
	assert_int_equal(sasl_client_step(&c, "", out, sizeof(out)), -1);
	sasl_client_clear(&c);
	assert_null(c.secret);
}

static void
test_client_login_against_server(void **state)
{
	struct sasl_client c;
	struct sasl_exchange x;
	char out[SASL_CLIENT_OUT_MAX], chal[512];

	assert_int_equal(sasl_client_start(&c, SASL_MECH_LOGIN, "bob@example.test", "pw", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "");                    /* the server speaks first */
	assert_int_equal(sasl_start(&x, SASL_MECH_LOGIN, NULL, "h", chal, sizeof(chal)),
	    SASL_CHALLENGE);
	assert_int_equal(sasl_client_step(&c, chal, out, sizeof(out)), 0);
	assert_int_equal(sasl_continue(&x, out, chal, sizeof(chal)), SASL_CHALLENGE);
	assert_int_equal(sasl_client_step(&c, chal, out, sizeof(out)), 0);
	assert_int_equal(sasl_continue(&x, out, chal, sizeof(chal)), SASL_VERIFY);
	assert_string_equal(x.authcid, "bob@example.test");
	assert_string_equal(x.password, "pw");
	assert_int_equal(sasl_client_step(&c, chal, out, sizeof(out)), -1); /* a third? no */
}

/* RFC 2195 §2: the client's answer to the example challenge. */
static void
test_client_cram_rfc2195(void **state)
{
	struct sasl_client c;
	char out[SASL_CLIENT_OUT_MAX];
	unsigned char dec[128];

	assert_int_equal(sasl_client_start(&c, SASL_MECH_CRAM_MD5, "tim", "tanstaaftanstaaf", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "");
	/* base64 of <1896.697170952@postoffice.reston.mci.net> */
	assert_int_equal(sasl_client_step(&c,
	    "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", out, sizeof(out)), 0);
	assert_string_equal(out, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
	assert_true(b64dec(out, dec, sizeof(dec)) > 0);
	assert_string_equal((char *)dec, "tim b913a602c7eda7a495b4e6e7334d3890");
	assert_int_equal(sasl_client_step(&c, "eA==", out, sizeof(out)), -1);
	/* a challenge that is not base64 is refused (the caller sends "*") */
	assert_int_equal(sasl_client_start(&c, SASL_MECH_CRAM_MD5, "tim", "x", out, sizeof(out)), 0);
	assert_int_equal(sasl_client_step(&c, "!!!!", out, sizeof(out)), -1);
}

/* Our server checks what our client computes from a fresh challenge. */
static void
test_client_cram_against_server(void **state)
{
	struct sasl_client c;
	struct sasl_exchange x;
	char out[SASL_CLIENT_OUT_MAX], chal[512], secret[CRAM_MD5_SECRET_LEN + 1];

	cram_md5_secret("hunter2", secret);
	assert_int_equal(sasl_start(&x, SASL_MECH_CRAM_MD5, NULL, "relay.test", chal, sizeof(chal)),
	    SASL_CHALLENGE);
	assert_int_equal(sasl_client_start(&c, SASL_MECH_CRAM_MD5, "carol", "hunter2", out,
	    sizeof(out)), 0);
	assert_int_equal(sasl_client_step(&c, chal, out, sizeof(out)), 0);
	assert_int_equal(sasl_continue(&x, out, chal, sizeof(chal)), SASL_VERIFY);
	assert_string_equal(x.authcid, "carol");
	assert_true(cram_md5_verify(secret, x.challenge, x.digest));
	cram_md5_secret("hunter3", secret);
	assert_false(cram_md5_verify(secret, x.challenge, x.digest));
}

static void
test_client_xoauth2(void **state)
{
	struct sasl_client c;
	char out[SASL_CLIENT_OUT_MAX];
	unsigned char dec[256];
	char token[SASL_CLIENT_SECRET_MAX + 2];

	assert_int_equal(sasl_client_start(&c, SASL_MECH_XOAUTH2, "someuser@example.com",
	    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", out, sizeof(out)), 0);
	/* Google's documented example string */
	assert_true(b64dec(out, dec, sizeof(dec)) > 0);
	assert_string_equal((char *)dec, "user=someuser@example.com\001auth=Bearer "
	    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001");
	/* the error challenge gets an empty answer, once */
	assert_int_equal(sasl_client_step(&c, "eyJzdGF0dXMiOiI0MDEifQ==", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(sasl_client_step(&c, "", out, sizeof(out)), -1);
	/* a token of the largest size fits; one over does not; ^A never */
	memset(token, 'T', SASL_CLIENT_SECRET_MAX);
	token[SASL_CLIENT_SECRET_MAX] = '\0';
	assert_int_equal(sasl_client_start(&c, SASL_MECH_XOAUTH2, "u", token, out, sizeof(out)), 0);
	token[SASL_CLIENT_SECRET_MAX] = 'T';
	token[SASL_CLIENT_SECRET_MAX + 1] = '\0';
	assert_int_equal(sasl_client_start(&c, SASL_MECH_XOAUTH2, "u", token, out, sizeof(out)), -1);
	assert_int_equal(sasl_client_start(&c, SASL_MECH_XOAUTH2, "u\001x", "t", out, sizeof(out)), -1);
	assert_string_equal(sasl_mech_name(SASL_MECH_XOAUTH2), "XOAUTH2");
	/* the servers never learn XOAUTH2 */
	assert_int_equal(sasl_mech_parse("XOAUTH2"), SASL_MECH_UNKNOWN);
	/* a buffer too small is refused, not overrun */
	assert_int_equal(sasl_client_start(&c, SASL_MECH_PLAIN, "u", "p", out, 4), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_cram_md5_rfc2195),
		cmocka_unit_test(test_password_hash_verify),
		cmocka_unit_test(test_mech_names),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_cram_exchange),
		cmocka_unit_test(test_client_plain_against_server),
		cmocka_unit_test(test_client_login_against_server),
		cmocka_unit_test(test_client_cram_rfc2195),
		cmocka_unit_test(test_client_cram_against_server),
		cmocka_unit_test(test_client_xoauth2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
