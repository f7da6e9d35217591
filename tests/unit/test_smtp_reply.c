/* test_smtp_reply.c: src/mail/smtp_reply.c, the replies the outbound client
 * reads (RFC 5321 §4.2, RFC 3463, RFC 2920), the EHLO extensions (S2, O3)
 * and the one-line form for logs and reports (O2). */
#include "test_util.h"

#include "mail/smtp_reply.h"

/* Feeds the lines of text (separated by '\n') to p; every line but the last
 * must be taken as a continuation. Returns the last line's status. */
static enum smtp_reply_status
feed(struct smtp_reply_parser *p, const char *text, struct smtp_reply *out)
{
	enum smtp_reply_status st = SMTP_REPLY_BAD;

	for (const char *s = text;;) {
		const char *nl = strchr(s, '\n');
		size_t len = nl != NULL ? (size_t)(nl - s) : strlen(s);
		st = smtp_reply_parser_line(p, s, len, out);
		if (nl == NULL || st != SMTP_REPLY_MORE)
			return nl == NULL ? st : st == SMTP_REPLY_MORE ? SMTP_REPLY_BAD : st;
		s = nl + 1;
	}
}

/* The whole reply in text must parse; returns it. */
static struct smtp_reply
parse_ok(const char *text)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;

	smtp_reply_parser_init(&p);
	memset(&r, 0, sizeof(r));
	assert_int_equal(feed(&p, text, &r), SMTP_REPLY_DONE);
	return r;
}

static enum smtp_reply_status
parse_status(const char *text)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;

	smtp_reply_parser_init(&p);
	return feed(&p, text, &r);
}

static void
test_single_line(void **state)
{
	(void)state;
	struct smtp_reply r = parse_ok("220 mx.example ESMTP ready");

	assert_int_equal(r.code, 220);
	assert_string_equal(r.enhanced, "");
	assert_int_equal(r.nlines, 1);
	assert_string_equal(r.text, "mx.example ESMTP ready");
	assert_false(r.truncated);

	r = parse_ok("250");
	assert_int_equal(r.code, 250);
	assert_string_equal(r.text, "");
	r = parse_ok("354 ");
	assert_int_equal(r.code, 354);
	assert_string_equal(r.text, "");
}

static void
test_multi_line(void **state)
{
	(void)state;
	struct smtp_reply_parser p;
	struct smtp_reply r;

	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parser_line(&p, "250-mx.example", 14, &r), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_parser_line(&p, "250-SIZE 1000", 13, &r), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_parser_line(&p, "250-", 4, &r), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_parser_line(&p, "250 DSN", 7, &r), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 4);
	assert_string_equal(r.text, "mx.example\nSIZE 1000\n\nDSN");

	/* The parser is ready for the next (pipelined) reply at once. */
	assert_int_equal(smtp_reply_parser_line(&p, "550 5.1.1 no", 12, &r), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 550);
	assert_int_equal(r.nlines, 1);
	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(r.text, "no");
}

static void
test_enhanced_codes(void **state)
{
	(void)state;
	struct smtp_reply r = parse_ok("550-5.1.1 The email account that you tried to reach\n"
	    "550-5.1.1 does not exist.\n550 5.1.1  Please check");

	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(r.text, "The email account that you tried to reach\ndoes not exist.\n"
	    "Please check");

	r = parse_ok("250 2.1.5 Ok");
	assert_string_equal(r.enhanced, "2.1.5");
	assert_string_equal(r.text, "Ok");
	r = parse_ok("452 4.3.1 ");
	assert_string_equal(r.enhanced, "4.3.1");
	assert_string_equal(r.text, "");
	r = parse_ok("554 5.7.1");
	assert_string_equal(r.enhanced, "5.7.1");
	r = parse_ok("250 2.123.456 big");
	assert_string_equal(r.enhanced, "2.123.456");

	/* Only a code of the reply's class, and only a whole one. */
	r = parse_ok("550 4.1.1 wrong class");
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "4.1.1 wrong class");
	r = parse_ok("354 3.0.0 no class 3");
	assert_string_equal(r.enhanced, "");
	r = parse_ok("250 2.1.5x");
	assert_string_equal(r.enhanced, "");
	r = parse_ok("250 2.1234.5 four digits");
	assert_string_equal(r.enhanced, "");
	r = parse_ok("250 2..5 empty");
	assert_string_equal(r.enhanced, "");
	r = parse_ok("250 2.1. short");
	assert_string_equal(r.enhanced, "");
	r = parse_ok("250 2.1");
	assert_string_equal(r.enhanced, "");
	r = parse_ok("250  2.1.5 leading space");
	assert_string_equal(r.enhanced, "");

	/* The first line decides; later lines' codes are stripped. */
	r = parse_ok("250-mx.example\n250 2.0.0 ok");
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "mx.example\nok");
}

static void
test_bad_replies(void **state)
{
	(void)state;
	char longline[SMTP_REPLY_LINE_MAX + 2];

	assert_int_equal(parse_status(""), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("25"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("2500 x"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("25a ok"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("a50 ok"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("150 ok"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("650 ok"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("050 ok"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("250_ok"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("250\tok"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status(" 250 ok"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("250-a\n251 b"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("250-a\n550-b\n250 c"), SMTP_REPLY_BAD);
	assert_int_equal(parse_status("250-a\nxyz"), SMTP_REPLY_BAD);

	/* A line over the limit; exactly the limit is fine. */
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "250 ", 4);
	struct smtp_reply_parser p;
	struct smtp_reply r;
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parser_line(&p, longline, SMTP_REPLY_LINE_MAX + 1, &r),
	    SMTP_REPLY_BAD);
	assert_int_equal(smtp_reply_parser_line(&p, longline, SMTP_REPLY_LINE_MAX, &r),
	    SMTP_REPLY_DONE);
	assert_int_equal(strlen(r.text), SMTP_REPLY_LINE_MAX - 4);

	/* SMTP_REPLY_LINES_MAX lines are fine, one more is not. */
	smtp_reply_parser_init(&p);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		assert_int_equal(smtp_reply_parser_line(&p, "250-x", 5, &r), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_parser_line(&p, "250 x", 5, &r), SMTP_REPLY_DONE);
	assert_int_equal(r.nlines, SMTP_REPLY_LINES_MAX);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(smtp_reply_parser_line(&p, "250-x", 5, &r), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_parser_line(&p, "250 x", 5, &r), SMTP_REPLY_BAD);
}

static void
test_reset_after_bad(void **state)
{
	(void)state;
	struct smtp_reply_parser p;
	struct smtp_reply r;

	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parser_line(&p, "250-first", 9, &r), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_parser_line(&p, "550-other", 9, &r), SMTP_REPLY_BAD);
	/* A new reply starts from nothing: no text or code left over. */
	assert_int_equal(smtp_reply_parser_line(&p, "421 bye", 7, &r), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 421);
	assert_int_equal(r.nlines, 1);
	assert_string_equal(r.text, "bye");
}

static void
test_text_cap(void **state)
{
	(void)state;
	struct smtp_reply_parser p;
	struct smtp_reply r;
	char line[1004];

	memset(line, 'a', sizeof(line));
	memcpy(line, "250-", 4);
	smtp_reply_parser_init(&p);
	for (int i = 0; i < 5; i++)
		assert_int_equal(smtp_reply_parser_line(&p, line, sizeof(line), &r), SMTP_REPLY_MORE);
	line[3] = ' ';
	assert_int_equal(smtp_reply_parser_line(&p, line, sizeof(line), &r), SMTP_REPLY_DONE);
	assert_true(r.truncated);
	assert_int_equal(strlen(r.text), SMTP_REPLY_TEXT_MAX - 1);
	assert_int_equal(r.nlines, 6);

	r = parse_ok("250 short");
	assert_false(r.truncated);
}

static void
test_nul_and_lf_in_text(void **state)
{
	(void)state;
	struct smtp_reply_parser p;
	struct smtp_reply r;
	const char line[] = "550 a\0b\nc\rd";

	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parser_line(&p, line, sizeof(line) - 1, &r), SMTP_REPLY_DONE);
	assert_string_equal(r.text, "a?b?c\rd");
}

static struct smtp_ehlo
ehlo(const char *text)
{
	struct smtp_reply r = parse_ok(text);
	struct smtp_ehlo e;

	memset(&e, 0xa5, sizeof(e)); /* smtp_ehlo_parse clears it */
	smtp_ehlo_parse(&r, &e);
	return e;
}

static void
test_ehlo(void **state)
{
	(void)state;
	struct smtp_ehlo e = ehlo("250-mx.example Hello [192.0.2.1]\n250-PIPELINING\n"
	    "250-SIZE 10240000\n250-ETRN\n250-STARTTLS\n250-ENHANCEDSTATUSCODES\n"
	    "250-8BITMIME\n250-DSN\n250-SMTPUTF8\n250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 GSSAPI\n"
	    "250 CHUNKING");

	assert_true(e.pipelining);
	assert_true(e.size_offered);
	assert_int_equal(e.size, 10240000);
	assert_true(e.etrn && e.starttls && e.enhancedstatuscodes && e.eightbitmime);
	assert_true(e.dsn && e.smtputf8 && e.chunking);
	assert_int_equal(e.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5 |
	    SMTP_AUTH_XOAUTH2);

	/* Nothing but the greeting. */
	e = ehlo("250 mx.example");
	assert_false(e.pipelining || e.starttls || e.dsn || e.size_offered || e.chunking);
	assert_int_equal(e.auth, 0);
	assert_int_equal(e.size, 0);

	/* The greeting is never a keyword, keywords are whole and any case. */
	e = ehlo("250-PIPELINING\n250-StartTLS\n250-DSNX\n250 SIZEABLE");
	assert_false(e.pipelining);
	assert_true(e.starttls);
	assert_false(e.dsn);
	assert_false(e.size_offered);
}

static void
test_ehlo_size(void **state)
{
	(void)state;
	struct smtp_ehlo e = ehlo("250-mx\n250 SIZE");

	assert_true(e.size_offered);
	assert_int_equal(e.size, 0);
	e = ehlo("250-mx\n250 SIZE 0");
	assert_true(e.size_offered);
	assert_int_equal(e.size, 0);
	e = ehlo("250-mx\n250 size   52428800  ");
	assert_int_equal(e.size, 52428800);
	e = ehlo("250-mx\n250 SIZE 18446744073709551615");
	assert_true(e.size == UINT64_MAX);
	e = ehlo("250-mx\n250 SIZE 18446744073709551616");
	assert_true(e.size_offered);
	assert_int_equal(e.size, 0);
	e = ehlo("250-mx\n250 SIZE -1");
	assert_true(e.size_offered);
	assert_int_equal(e.size, 0);
	e = ehlo("250-mx\n250 SIZE=100");
	assert_false(e.size_offered);
}

static void
test_ehlo_auth_forms(void **state)
{
	(void)state;
	struct smtp_ehlo e = ehlo("250-mx\n250 AUTH=LOGIN PLAIN");

	assert_int_equal(e.auth, SMTP_AUTH_LOGIN | SMTP_AUTH_PLAIN);
	e = ehlo("250-mx\n250-AUTH=LOGIN\n250 AUTH cram-md5");
	assert_int_equal(e.auth, SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5);
	e = ehlo("250-mx\n250 AUTH");
	assert_int_equal(e.auth, 0);
	e = ehlo("250-mx\n250 AUTH  PLAINX  LOGIN ");
	assert_int_equal(e.auth, SMTP_AUTH_LOGIN);
	e = ehlo("250-mx\n250 AUTHX PLAIN");
	assert_int_equal(e.auth, 0);

	/* Not a 250: nothing offered. */
	struct smtp_reply r = parse_ok("502-not here\n502 AUTH PLAIN");
	smtp_ehlo_parse(&r, &e);
	assert_int_equal(e.auth, 0);
}

static void
test_format(void **state)
{
	(void)state;
	char buf[256];
	struct smtp_reply r = parse_ok("550-5.1.1 first line\n550 5.1.1 second line");

	size_t n = smtp_reply_format(&r, buf, sizeof(buf));
	assert_string_equal(buf, "550 5.1.1 first line; second line");
	assert_int_equal(n, strlen(buf));
	r = parse_ok("250");
	smtp_reply_format(&r, buf, sizeof(buf));
	assert_string_equal(buf, "250");
	r = parse_ok("421 4.4.2 bye");
	smtp_reply_format(&r, buf, sizeof(buf));
	assert_string_equal(buf, "421 4.4.2 bye");
	r = parse_ok("220 no code here");
	smtp_reply_format(&r, buf, sizeof(buf));
	assert_string_equal(buf, "220 no code here");

	/* Cut to size - 1. */
	assert_int_equal(smtp_reply_format(&r, buf, 6), 5);
	assert_string_equal(buf, "220 n");
	assert_int_equal(smtp_reply_format(&r, buf, 1), 0);
	assert_string_equal(buf, "");
	assert_int_equal(smtp_reply_format(&r, buf, 0), 0);
}

static void
test_format_removes_controls(void **state)
{
	(void)state;
	struct smtp_reply_parser p;
	struct smtp_reply r;
	char buf[256];
	const char line[] = "550 5.7.1 a\r\nRCPT TO:<x>\0\t\x1b[0m\x7f\xc3\xa9";

	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parser_line(&p, line, sizeof(line) - 1, &r), SMTP_REPLY_DONE);
	size_t n = smtp_reply_format(&r, buf, sizeof(buf));
	assert_string_equal(buf, "550 5.7.1 a??RCPT TO:<x>? ?[0m???");
	for (size_t i = 0; i < n; i++)
		assert_true(buf[i] >= 0x20 && buf[i] <= 0x7e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_line),
		cmocka_unit_test(test_multi_line),
		cmocka_unit_test(test_enhanced_codes),
		cmocka_unit_test(test_bad_replies),
		cmocka_unit_test(test_reset_after_bad),
		cmocka_unit_test(test_text_cap),
		cmocka_unit_test(test_nul_and_lf_in_text),
		cmocka_unit_test(test_ehlo),
		cmocka_unit_test(test_ehlo_size),
		cmocka_unit_test(test_ehlo_auth_forms),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_removes_controls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
