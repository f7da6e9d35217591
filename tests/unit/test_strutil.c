/* test_strutil.c: src/lib/strutil.c. */
#include "test_util.h"

#include "lib/strutil.h"

#define U64_OK(s, want) u64_ok(__LINE__, (s), (want))
#define U64_BAD(s) u64_bad(__LINE__, (s))
#define SIZE_OK(s, want) size_ok(__LINE__, (s), (want))
#define SIZE_BAD(s) size_bad(__LINE__, (s))

static void
u64_ok(int line, const char *s, uint64_t want)
{
	uint64_t v = 12345;

	if (str_parse_u64(s, &v) != 0)
		fail_msg("line %d: str_parse_u64(\"%s\") failed", line, s);
	if (v != want)
		fail_msg("line %d: str_parse_u64(\"%s\") = %llu, want %llu", line, s,
		    (unsigned long long)v, (unsigned long long)want);
}

static void
u64_bad(int line, const char *s)
{
	uint64_t v = 12345;

	if (str_parse_u64(s, &v) != -1)
		fail_msg("line %d: str_parse_u64(\"%s\") accepted as %llu", line, s,
		    (unsigned long long)v);
}

static void
size_ok(int line, const char *s, uint64_t want)
{
	uint64_t v = 12345;

	if (str_parse_size(s, &v) != 0)
		fail_msg("line %d: str_parse_size(\"%s\") failed", line, s);
	if (v != want)
		fail_msg("line %d: str_parse_size(\"%s\") = %llu, want %llu", line, s,
		    (unsigned long long)v, (unsigned long long)want);
}

static void
size_bad(int line, const char *s)
{
	uint64_t v = 12345;

	if (str_parse_size(s, &v) != -1)
		fail_msg("line %d: str_parse_size(\"%s\") accepted as %llu", line, s,
		    (unsigned long long)v);
}

static void
test_parse_u64(void **state)
{
	U64_OK("0", 0);
	U64_OK("1", 1);
	U64_OK("42", 42);
	U64_OK("007", 7);
	U64_OK("4294967296", 4294967296ULL);
	U64_OK("18446744073709551614", UINT64_MAX - 1);
	U64_OK("18446744073709551615", UINT64_MAX);
	U64_OK("000000000000000000000018446744073709551615", UINT64_MAX);

	/* overflow, by one and by a lot */
	U64_BAD("18446744073709551616");
	U64_BAD("18446744073709551619");
	U64_BAD("18446744073709551620");
	U64_BAD("99999999999999999999");
	U64_BAD("184467440737095516150");
	U64_BAD("100000000000000000000000000000");
	/* junk */
	U64_BAD("");
	U64_BAD("-1");
	U64_BAD("+1");
	U64_BAD(" 1");
	U64_BAD("1 ");
	U64_BAD("1a");
	U64_BAD("a1");
	U64_BAD("0x10");
	U64_BAD("1.0");
	U64_BAD("1,000");
	U64_BAD("1K");
	U64_BAD("\xd9\xa1");       /* ARABIC-INDIC DIGIT ONE */
}

static void
test_parse_size(void **state)
{
	SIZE_OK("0", 0);
	SIZE_OK("0K", 0);
	SIZE_OK("1023", 1023);
	SIZE_OK("1K", 1024);
	SIZE_OK("1k", 1024);
	SIZE_OK("10M", 10ULL * 1024 * 1024);
	SIZE_OK("10m", 10ULL * 1024 * 1024);
	SIZE_OK("2G", 2ULL * 1024 * 1024 * 1024);
	SIZE_OK("2g", 2ULL * 1024 * 1024 * 1024);
	SIZE_OK("18446744073709551615", UINT64_MAX);
	/* the largest multiples that fit */
	SIZE_OK("18014398509481983K", 18014398509481983ULL * 1024);
	SIZE_OK("17179869183G", 17179869183ULL * 1024 * 1024 * 1024);

	/* the multiplication overflows */
	SIZE_BAD("18014398509481984K");
	SIZE_BAD("17592186044416M");
	SIZE_BAD("17179869184G");
	SIZE_BAD("18446744073709551615K");
	/* the digits overflow before the suffix */
	SIZE_BAD("18446744073709551616");
	SIZE_BAD("99999999999999999999G");
	/* junk */
	SIZE_BAD("");
	SIZE_BAD("K");
	SIZE_BAD("1KB");
	SIZE_BAD("1KK");
	SIZE_BAD("1T");
	SIZE_BAD("1B");
	SIZE_BAD("1 K");
	SIZE_BAD(" 1K");
	SIZE_BAD("1K ");
	SIZE_BAD("-1K");
	SIZE_BAD("+1K");
	SIZE_BAD("1.5M");
	SIZE_BAD("M1");
}

static void
test_copy(void **state)
{
	char buf[8];

	/* fits */
	memset(buf, 'X', sizeof(buf));
	assert_true(str_copy(buf, "abc", sizeof(buf)));
	assert_string_equal(buf, "abc");
	assert_int_equal(buf[4], 'X');        /* copies the NUL and no more */

	/* exactly fits: 7 characters + NUL */
	assert_true(str_copy(buf, "1234567", sizeof(buf)));
	assert_string_equal(buf, "1234567");

	/* one too many: truncated, still terminated */
	memset(buf, 'X', sizeof(buf));
	assert_false(str_copy(buf, "12345678", sizeof(buf)));
	assert_string_equal(buf, "1234567");

	assert_false(str_copy(buf, "a much longer string", sizeof(buf)));
	assert_string_equal(buf, "a much ");
	assert_int_equal(strlen(buf), sizeof(buf) - 1);

	/* size 1: only the terminator fits */
	assert_false(str_copy(buf, "a", 1));
	assert_string_equal(buf, "");
	assert_true(str_copy(buf, "", 1));
	assert_string_equal(buf, "");

	/* size 0: nothing is written */
	memset(buf, 'X', sizeof(buf));
	assert_false(str_copy(buf, "a", 0));
	assert_int_equal(buf[0], 'X');

	/* the empty string */
	assert_true(str_copy(buf, "", sizeof(buf)));
	assert_string_equal(buf, "");
}

static void
test_lower(void **state)
{
	char s[] = "HeLLo-World_123 AZaz@[]`{";
	char utf8[] = "\xc3\x89T\xc3\x89";        /* ÉTÉ: only the ASCII T changes */
	char empty[] = "";

	assert_ptr_equal(str_lower(s), s);
	assert_string_equal(s, "hello-world_123 azaz@[]`{");
	assert_ptr_equal(str_lower(utf8), utf8);
	assert_string_equal(utf8, "\xc3\x89t\xc3\x89");
	assert_ptr_equal(str_lower(empty), empty);
	assert_string_equal(empty, "");
}

static void
test_istarts_with(void **state)
{
	assert_true(str_istarts_with("MAIL FROM:<>", "mail from:"));
	assert_true(str_istarts_with("mail", "MAIL"));
	assert_true(str_istarts_with("anything", ""));
	assert_false(str_istarts_with("MAI", "MAIL"));
	assert_false(str_istarts_with("RCPT TO:", "MAIL"));
	assert_false(str_istarts_with("", "x"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_lower),
		cmocka_unit_test(test_istarts_with),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
