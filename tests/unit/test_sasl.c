/* Unit tests for mail/sasl.c, lib/base64.c and lib/password.c (MISSION A1, A8). */
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
