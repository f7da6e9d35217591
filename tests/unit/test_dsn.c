/* test_dsn.c: src/mail/dsn.c, the RFC 3461 parameters (NOTIFY, RET, ENVID,
 * ORCPT, xtext) and the RFC 3464 report (O2, O3). Reports are parsed back
 * with GMime and read line by line. */
#include "test_util.h"

#include <event2/buffer.h>
#include <gmime/gmime.h>

#include "mail/dsn.h"
#include "mail/message.h"

static void
test_notify_parse(void **state)
{
	(void)state;
	unsigned n = 0;

	assert_int_equal(dsn_notify_parse("NEVER", &n), 0);
	assert_int_equal(n, DSN_NOTIFY_NEVER);
	assert_int_equal(dsn_notify_parse("never", &n), 0);
	assert_int_equal(n, DSN_NOTIFY_NEVER);
	assert_int_equal(dsn_notify_parse("SUCCESS", &n), 0);
	assert_int_equal(n, DSN_NOTIFY_SUCCESS);
	assert_int_equal(dsn_notify_parse("delay,Success", &n), 0);
	assert_int_equal(n, DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS);
	assert_int_equal(dsn_notify_parse("SUCCESS,FAILURE,DELAY", &n), 0);
	assert_int_equal(n, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);

	static const char *const bad[] = {
		"", ",", "NEVER,SUCCESS", "FAILURE,NEVER", "NEVER,NEVER", "SUCCESS,SUCCESS",
		"SUCCESS,", ",SUCCESS", "SUCCESS,,FAILURE", "FOO", "SUCCESS FAILURE",
		" SUCCESS", "SUCCES", "SUCCESSX", "FAILURE;DELAY",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 77;
		if (dsn_notify_parse(bad[i], &n) != -1)
			fail_msg("NOTIFY=%s accepted", bad[i]);
		assert_int_equal(n, 77);
	}
	assert_int_equal(dsn_notify_parse(NULL, &n), -1);
}

static void
test_notify_format(void **state)
{
	(void)state;
	char buf[64];
	unsigned back;

	assert_int_equal(dsn_notify_format(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(dsn_notify_format(DSN_NOTIFY_NEVER, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "NEVER");
	dsn_notify_format(DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, buf,
	    sizeof(buf));
	assert_string_equal(buf, "SUCCESS,FAILURE,DELAY");
	dsn_notify_format(DSN_NOTIFY_DELAY | DSN_NOTIFY_FAILURE, buf, sizeof(buf));
	assert_string_equal(buf, "FAILURE,DELAY");
	/* Every non-empty combination of the three survives a round trip. */
	for (unsigned bits = 1; bits < 8; bits++) {
		unsigned notify = bits << 1;
		dsn_notify_format(notify, buf, sizeof(buf));
		assert_int_equal(dsn_notify_parse(buf, &back), 0);
		assert_int_equal(back, notify);
	}
	/* Cut to size - 1. */
	assert_int_equal(dsn_notify_format(DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, buf, 10), 9);
	assert_string_equal(buf, "SUCCESS,F");
	assert_int_equal(dsn_notify_format(DSN_NOTIFY_SUCCESS, buf, 0), 0);
}

static void
test_ret(void **state)
{
	(void)state;
	enum dsn_ret ret = DSN_RET_DEFAULT;

	assert_int_equal(dsn_ret_parse("FULL", &ret), 0);
	assert_int_equal(ret, DSN_RET_FULL);
	assert_int_equal(dsn_ret_parse("hdrs", &ret), 0);
	assert_int_equal(ret, DSN_RET_HDRS);
	assert_int_equal(dsn_ret_parse("", &ret), -1);
	assert_int_equal(dsn_ret_parse("HEADERS", &ret), -1);
	assert_int_equal(dsn_ret_parse("FULL ", &ret), -1);
	assert_int_equal(dsn_ret_parse(NULL, &ret), -1);
	assert_string_equal(dsn_ret_name(DSN_RET_FULL), "FULL");
	assert_string_equal(dsn_ret_name(DSN_RET_HDRS), "HDRS");
	assert_string_equal(dsn_ret_name(DSN_RET_DEFAULT), "");
}

static void
test_xtext(void **state)
{
	(void)state;
	char enc[800], dec[300], all[256];

	assert_int_equal(dsn_xtext_decode("a+2Bb+3Dc", dec, sizeof(dec)), 0);
	assert_string_equal(dec, "a+b=c");
	assert_int_equal(dsn_xtext_decode("+2b+3d+41", dec, sizeof(dec)), 0);
	assert_string_equal(dec, "+=A");
	assert_int_equal(dsn_xtext_decode("", dec, sizeof(dec)), 0);
	assert_string_equal(dec, "");
	assert_int_equal(dsn_xtext_encode("a b+c=d\xe9~!", enc, sizeof(enc)), 0);
	assert_string_equal(enc, "a+20b+2Bc+3Dd+E9~!");

	/* Every octet but NUL, in and out. */
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	assert_int_equal(dsn_xtext_encode(all, enc, sizeof(enc)), 0);
	for (const char *p = enc; *p != '\0'; p++)
		assert_true(*p >= '!' && *p <= '~' && *p != '=');
	assert_int_equal(dsn_xtext_decode(enc, dec, sizeof(dec)), 0);
	assert_string_equal(dec, all);

	static const char *const bad[] = {
		"+", "a+", "+2", "+2G", "+G2", "+00", "a=b", "a+b", "a b", "\x80", "+ 20", "\x7f",
		"a\tb",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dsn_xtext_decode(bad[i], dec, sizeof(dec)) != -1)
			fail_msg("xtext [%s] accepted", bad[i]);
	}
	/* Out too small: the decoded text and its NUL must fit. */
	assert_int_equal(dsn_xtext_decode("abc", dec, 4), 0);
	assert_int_equal(dsn_xtext_decode("abc", dec, 3), -1);
	assert_int_equal(dsn_xtext_decode("+41+42", dec, 3), 0);
	assert_string_equal(dec, "AB");
	assert_int_equal(dsn_xtext_decode("", dec, 0), -1);
	assert_int_equal(dsn_xtext_encode("a+", enc, 5), 0);
	assert_string_equal(enc, "a+2B");
	assert_int_equal(dsn_xtext_encode("a+", enc, 4), -1);
	assert_int_equal(dsn_xtext_encode("ab", enc, 2), -1);
	assert_int_equal(dsn_xtext_encode("", enc, 0), -1);
}

static void
test_envid(void **state)
{
	(void)state;
	char out[DSN_ENVID_MAX + 1], v[400];

	assert_int_equal(dsn_envid_parse("QQ314159", out, sizeof(out)), 0);
	assert_string_equal(out, "QQ314159");
	assert_int_equal(dsn_envid_parse("a+20b+2B", out, sizeof(out)), 0);
	assert_string_equal(out, "a b+");
	assert_int_equal(dsn_envid_parse("", out, sizeof(out)), -1);
	assert_int_equal(dsn_envid_parse("a+0D+0AX: y", out, sizeof(out)), -1);
	assert_int_equal(dsn_envid_parse("a+0Ab", out, sizeof(out)), -1);
	assert_int_equal(dsn_envid_parse("+09", out, sizeof(out)), -1);
	assert_int_equal(dsn_envid_parse("+C3+A9", out, sizeof(out)), -1);
	assert_int_equal(dsn_envid_parse("+2", out, sizeof(out)), -1);
	assert_int_equal(dsn_envid_parse(NULL, out, sizeof(out)), -1);

	/* 100 decoded octets, even when written as 300. */
	for (int i = 0; i < DSN_ENVID_MAX; i++)
		memcpy(v + 3 * i, "+41", 3);
	v[3 * DSN_ENVID_MAX] = '\0';
	assert_int_equal(dsn_envid_parse(v, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), DSN_ENVID_MAX);
	assert_int_equal(dsn_envid_parse(v, out, DSN_ENVID_MAX), -1);
	memcpy(v + 3 * DSN_ENVID_MAX, "B", 2);
	assert_int_equal(dsn_envid_parse(v, out, sizeof(out)), -1);
}

static void
test_orcpt(void **state)
{
	(void)state;
	char out[DSN_ORCPT_MAX + 1], v[DSN_ORCPT_MAX + 8];

	assert_int_equal(dsn_orcpt_parse("rfc822;bob@example.com", out, sizeof(out)), 0);
	assert_string_equal(out, "rfc822;bob@example.com");
	assert_int_equal(dsn_orcpt_parse("RFC822;bob+2Bx@example.com", out, sizeof(out)), 0);
	assert_string_equal(out, "rfc822;bob+x@example.com");
	assert_int_equal(dsn_orcpt_parse("rfc822;+22a+20b+22@example.com", out, sizeof(out)), 0);
	assert_string_equal(out, "rfc822;\"a b\"@example.com");
	assert_int_equal(dsn_orcpt_parse("X-Local;u", out, sizeof(out)), 0);
	assert_string_equal(out, "x-local;u");
	assert_int_equal(dsn_orcpt_parse("utf-8;+C3+A9@example.com", out, sizeof(out)), 0);
	assert_string_equal(out, "utf-8;\xc3\xa9@example.com");

	static const char *const bad[] = {
		"rfc822", ";a@b", "rfc822;", "rfc 822;a@b", "rfc(822);a@b", "rfc822;a+0Ab",
		"rfc822;a+0D+0AFinal-Recipient: x", "rfc822;a+09b", "rfc822;a+7Fb", "rfc822;a b",
		"rfc822;a=b", "rfc822;+", "rfc822;a;b+00", "rfc.822;a@b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dsn_orcpt_parse(bad[i], out, sizeof(out)) != -1)
			fail_msg("ORCPT=%s accepted", bad[i]);
	}
	assert_int_equal(dsn_orcpt_parse(NULL, out, sizeof(out)), -1);
	/* ';' inside the address is an xchar. */
	assert_int_equal(dsn_orcpt_parse("rfc822;a;b", out, sizeof(out)), 0);
	assert_string_equal(out, "rfc822;a;b");

	/* 500 octets, not 501; out must hold the result. */
	memcpy(v, "rfc822;", 7);
	memset(v + 7, 'a', DSN_ORCPT_MAX - 7);
	v[DSN_ORCPT_MAX] = '\0';
	assert_int_equal(dsn_orcpt_parse(v, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), DSN_ORCPT_MAX);
	assert_int_equal(dsn_orcpt_parse(v, out, DSN_ORCPT_MAX), -1);
	v[DSN_ORCPT_MAX] = 'a';
	v[DSN_ORCPT_MAX + 1] = '\0';
	assert_int_equal(dsn_orcpt_parse(v, out, sizeof(out)), -1);
	assert_int_equal(dsn_orcpt_parse("rfc822;a@b", out, 10), -1);
	assert_int_equal(dsn_orcpt_parse("rfc822;a@b", out, 11), 0);
}

static void
test_action_names(void **state)
{
	(void)state;
	assert_string_equal(dsn_action_name(DSN_ACTION_FAILED), "failed");
	assert_string_equal(dsn_action_name(DSN_ACTION_DELAYED), "delayed");
	assert_string_equal(dsn_action_name(DSN_ACTION_DELIVERED), "delivered");
	assert_string_equal(dsn_action_name(DSN_ACTION_RELAYED), "relayed");
	assert_string_equal(dsn_action_name(DSN_ACTION_EXPANDED), "expanded");
	assert_string_equal(dsn_action_name((enum dsn_action)99), "");
}

/* ---- reports ---- */

#define ORIG "Received: from client\nFrom: Alice <alice@example.org>\nTo: bob@example.net\n" \
	"Subject: the original\nMessage-ID: <orig@example.org>\n\nHello Bob,\nthe body.\n"

#define NOW 1700000000 /* Tue, 14 Nov 2023 22:13:20 +0000 */

static struct dsn_rcpt
rcpt_failed(void)
{
	struct dsn_rcpt rc = {
		.final_rcpt = "bob@example.net",
		.orcpt = "rfc822;Bob@example.net",
		.action = DSN_ACTION_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx.example.net",
		.diagnostic = "smtp; 550 5.1.1 <bob@example.net>: user unknown",
		.last_attempt = NOW - 60,
	};
	return rc;
}

static struct dsn_report
report_base(const struct dsn_rcpt *rcpts, size_t n)
{
	struct dsn_report r = {
		.reporting_mta = "mail.example.org",
		.from = "MAILER-DAEMON@mail.example.org",
		.to = "alice@example.org",
		.message_id_domain = "mail.example.org",
		.qid = "Q1ABC",
		.envid = "ENV-42",
		.arrival = NOW - 3600,
		.now = NOW,
		.ret = DSN_RET_DEFAULT,
		.rcpts = rcpts,
		.nrcpt = n,
	};
	return r;
}

/* Writes the report for orig (NULL: none); returns it NUL-terminated (free). */
static char *
write_report(const struct dsn_report *r, const char *orig_text)
{
	struct evbuffer *orig = NULL, *out = evbuffer_new();
	const char *error = NULL;

	assert_non_null(out);
	if (orig_text != NULL) {
		orig = evbuffer_new();
		assert_non_null(orig);
		evbuffer_add(orig, orig_text, strlen(orig_text));
	}
	if (dsn_report_write(r, orig, out, &error) != 0)
		fail_msg("dsn_report_write: %s", error);
	if (orig != NULL) {
		assert_int_equal(evbuffer_get_length(orig), strlen(orig_text)); /* not drained */
		evbuffer_free(orig);
	}
	size_t len = evbuffer_get_length(out);
	char *text = malloc(len + 1);
	assert_non_null(text);
	assert_int_equal(evbuffer_remove(out, text, len), (int)len);
	text[len] = '\0';
	evbuffer_free(out);
	assert_int_equal(strlen(text), len); /* no NUL */
	return text;
}

/* Number of lines of text that start with prefix. */
static int
count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return n;
}

static bool
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

/* LF endings, no CR, no control but LF and TAB, lines within RFC 5322's 998. */
static void
check_lines(const char *text)
{
	size_t col = 0;

	for (const char *p = text; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\n') {
			col = 0;
			continue;
		}
		assert_true(c >= 0x20 || c == '\t');
		assert_true(c != 0x7f);
		col++;
		assert_true(col <= 998);
	}
}

struct parsed {
	GMimeMessage *msg;
	GMimeMultipart *mp;
};

/* Parses text with GMime: a multipart/report; report-type=delivery-status
 * of nparts parts, the second message/delivery-status. */
static struct parsed
parse_report(const char *text, int nparts)
{
	struct parsed p;

	message_init();
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(text, strlen(text));
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	p.msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	assert_non_null(p.msg);
	GMimeObject *top = g_mime_message_get_mime_part(p.msg);
	assert_true(GMIME_IS_MULTIPART(top));
	GMimeContentType *ct = g_mime_object_get_content_type(top);
	assert_true(g_mime_content_type_is_type(ct, "multipart", "report"));
	assert_string_equal(g_mime_object_get_content_type_parameter(top, "report-type"),
	    "delivery-status");
	p.mp = GMIME_MULTIPART(top);
	assert_int_equal(g_mime_multipart_get_count(p.mp), nparts);
	ct = g_mime_object_get_content_type(g_mime_multipart_get_part(p.mp, 0));
	assert_true(g_mime_content_type_is_type(ct, "text", "plain"));
	ct = g_mime_object_get_content_type(g_mime_multipart_get_part(p.mp, 1));
	assert_true(g_mime_content_type_is_type(ct, "message", "delivery-status"));
	return p;
}

static const char *
header(struct parsed *p, const char *name)
{
	return g_mime_object_get_header(GMIME_OBJECT(p->msg), name);
}

/* The decoded content of leaf part i, NUL-terminated (free). */
static char *
part_text(struct parsed *p, int i)
{
	GMimeObject *o = g_mime_multipart_get_part(p->mp, i);
	GMimeStream *mem = g_mime_stream_mem_new();

	if (GMIME_IS_PART(o)) {
		GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
		assert_non_null(w);
		g_mime_data_wrapper_write_to_stream(w, mem);
	} else {
		assert_true(GMIME_IS_MESSAGE_PART(o));
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem);
	}
	GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	char *s = strndup((const char *)a->data, a->len);
	g_object_unref(mem);
	return s;
}

static void
parsed_free(struct parsed *p)
{
	g_object_unref(p->msg);
}

static void
test_report_failed(void **state)
{
	(void)state;
	struct dsn_rcpt rc[2] = { rcpt_failed(), rcpt_failed() };
	rc[1].final_rcpt = "carol@example.net";
	rc[1].orcpt = NULL;
	rc[1].action = DSN_ACTION_DELIVERED;
	rc[1].status = "2.0.0";
	rc[1].diagnostic = "smtp; 250 2.0.0 ok";
	struct dsn_report r = report_base(rc, 2);
	char *text = write_report(&r, ORIG);

	check_lines(text);
	struct parsed p = parse_report(text, 3);
	assert_string_equal(g_mime_message_get_subject(p.msg), "Undelivered Mail Returned to Sender");
	assert_string_equal(header(&p, "Auto-Submitted"), "auto-replied");
	assert_string_equal(header(&p, "MIME-Version"), "1.0");
	assert_non_null(header(&p, "Message-ID"));
	assert_true(has_line(text, "Date: Tue, 14 Nov 2023 22:13:20 +0000"));
	assert_true(has_line(text, "From: Mail Delivery System <MAILER-DAEMON@mail.example.org>"));
	assert_true(has_line(text, "To: <alice@example.org>"));
	InternetAddressList *to = g_mime_message_get_to(p.msg);
	assert_int_equal(internet_address_list_length(to), 1);
	InternetAddress *ia = internet_address_list_get_address(to, 0);
	assert_string_equal(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)),
	    "alice@example.org");

	/* The delivery-status part, field by field (RFC 3464 §2.2, §2.3). */
	char *ds = part_text(&p, 1);
	assert_true(has_line(ds, "Reporting-MTA: dns; mail.example.org"));
	assert_true(has_line(ds, "Original-Envelope-Id: ENV-42"));
	assert_true(has_line(ds, "X-Tegami-Queue-ID: Q1ABC"));
	assert_true(has_line(ds, "Arrival-Date: Tue, 14 Nov 2023 21:13:20 +0000"));
	assert_true(has_line(ds, "Original-Recipient: rfc822;Bob@example.net"));
	assert_true(has_line(ds, "Final-Recipient: rfc822; bob@example.net"));
	assert_true(has_line(ds, "Final-Recipient: rfc822; carol@example.net"));
	assert_true(has_line(ds, "Action: failed"));
	assert_true(has_line(ds, "Action: delivered"));
	assert_true(has_line(ds, "Status: 5.1.1"));
	assert_true(has_line(ds, "Status: 2.0.0"));
	assert_true(has_line(ds, "Remote-MTA: dns; mx.example.net"));
	assert_true(has_line(ds, "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user unknown"));
	assert_true(has_line(ds, "Last-Attempt-Date: Tue, 14 Nov 2023 22:12:20 +0000"));
	assert_int_equal(count_lines(ds, "Will-Retry-Until:"), 0);
	assert_int_equal(count_lines(ds, "Original-Recipient:"), 1);
	/* Groups: per-message, then one per recipient, blank-line separated. */
	assert_non_null(strstr(ds, "Arrival-Date: Tue, 14 Nov 2023 21:13:20 +0000\n\n"
	    "Original-Recipient: rfc822;Bob@example.net\nFinal-Recipient: rfc822; bob@example.net\n"
	    "Action: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.example.net\n"));
	assert_non_null(strstr(ds, "\n\nFinal-Recipient: rfc822; carol@example.net\n"));
	free(ds);

	/* The human part names each recipient. */
	char *human = part_text(&p, 0);
	assert_non_null(strstr(human, "<bob@example.net>: delivery failed"));
	assert_non_null(strstr(human, "<carol@example.net>: delivered"));
	assert_non_null(strstr(human, "Reason: 550 5.1.1 <bob@example.net>: user unknown"));
	free(human);

	/* The original, whole. */
	GMimeObject *o = g_mime_multipart_get_part(p.mp, 2);
	assert_true(GMIME_IS_MESSAGE_PART(o));
	GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
	assert_string_equal(g_mime_message_get_subject(m), "the original");
	assert_non_null(strstr(text, "\n\n" ORIG "\n--tegami-Q1ABC-0--\n"));
	parsed_free(&p);
	free(text);
}

static void
test_report_subjects(void **state)
{
	(void)state;
	static const struct {
		enum dsn_action a, b;
		const char *subject;
	} cases[] = {
		{ DSN_ACTION_FAILED, DSN_ACTION_DELAYED, "Undelivered Mail Returned to Sender" },
		{ DSN_ACTION_DELIVERED, DSN_ACTION_FAILED, "Undelivered Mail Returned to Sender" },
		{ DSN_ACTION_DELAYED, DSN_ACTION_DELAYED, "Delayed Mail (still being retried)" },
		{ DSN_ACTION_DELIVERED, DSN_ACTION_RELAYED, "Successful Mail Delivery Report" },
		{ DSN_ACTION_RELAYED, DSN_ACTION_RELAYED, "Successful Mail Delivery Report" },
		{ DSN_ACTION_EXPANDED, DSN_ACTION_DELIVERED, "Successful Mail Delivery Report" },
		{ DSN_ACTION_DELAYED, DSN_ACTION_DELIVERED, "Mail Delivery Status Report" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dsn_rcpt rc[2] = { rcpt_failed(), rcpt_failed() };
		rc[0].action = cases[i].a;
		rc[1].action = cases[i].b;
		rc[0].status = rc[1].status = "4.4.1";
		rc[0].will_retry_until = NOW + 86400;
		struct dsn_report r = report_base(rc, 2);
		char *text = write_report(&r, ORIG);
		struct parsed p = parse_report(text, 3);
		if (strcmp(g_mime_message_get_subject(p.msg), cases[i].subject) != 0)
			fail_msg("case %zu: subject [%s]", i, g_mime_message_get_subject(p.msg));
		/* Will-Retry-Until only for a delayed recipient. */
		assert_int_equal(count_lines(text, "Will-Retry-Until: Wed, 15 Nov 2023 22:13:20 +0000"),
		    cases[i].a == DSN_ACTION_DELAYED);
		parsed_free(&p);
		free(text);
	}
}

static void
test_report_headers_only(void **state)
{
	(void)state;
	struct dsn_rcpt rc = rcpt_failed();
	struct dsn_report r = report_base(&rc, 1);

	r.ret = DSN_RET_HDRS;
	char *text = write_report(&r, ORIG);
	check_lines(text);
	struct parsed p = parse_report(text, 3);
	GMimeObject *o = g_mime_multipart_get_part(p.mp, 2);
	assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(o), "text",
	    "rfc822-headers"));
	char *h = part_text(&p, 2);
	assert_non_null(strstr(h, "Subject: the original\n"));
	assert_null(strstr(h, "Hello Bob"));
	free(h);
	assert_null(strstr(text, "Hello Bob"));
	assert_non_null(strstr(text, "Message-ID: <orig@example.org>\n\n--tegami-Q1ABC-0--\n"));
	parsed_free(&p);
	free(text);

	/* No body at all, and no header at all. */
	text = write_report(&r, "Subject: only a header\n");
	assert_non_null(strstr(text, "\n\nSubject: only a header\n\n--tegami-Q1ABC-0--\n"));
	free(text);
	text = write_report(&r, "\nbody without header\n");
	assert_null(strstr(text, "body without header"));
	free(text);
}

static void
test_report_without_original(void **state)
{
	(void)state;
	struct dsn_rcpt rc = rcpt_failed();
	struct dsn_report r = report_base(&rc, 1);

	rc.diagnostic = "connection refused";
	rc.remote_mta = NULL;
	r.envid = NULL;
	r.arrival = 0;
	rc.last_attempt = 0;
	char *text = write_report(&r, NULL);
	struct parsed p = parse_report(text, 2);
	assert_true(has_line(text, "Diagnostic-Code: X-Tegami; connection refused"));
	assert_int_equal(count_lines(text, "Remote-MTA:"), 0);
	assert_int_equal(count_lines(text, "Original-Envelope-Id:"), 0);
	assert_int_equal(count_lines(text, "Arrival-Date:"), 0);
	assert_int_equal(count_lines(text, "Last-Attempt-Date:"), 0);
	parsed_free(&p);
	free(text);
}

/* Caller text with CR, LF, NUL-free controls and boundary look-alikes: no
 * line, header, field or part can be added. */
static void
test_report_injection(void **state)
{
	(void)state;
	struct dsn_rcpt rc[2] = { rcpt_failed(), rcpt_failed() };
	rc[0].diagnostic = "smtp; 550 no\r\nX-Injected: 1\n\n--tegami-Q1ABC-0\nContent-Type: text/html\r\n";
	rc[0].remote_mta = "mx.example.net\nBcc: victim@example.com";
	rc[0].orcpt = "rfc822;a@b\r\nFinal-Recipient: rfc822; evil@example.com";
	rc[1].final_rcpt = "c@d\n\nAction: delivered";
	rc[1].diagnostic = "\x1b[31m\x7f\x01\t8bit \xe9";
	struct dsn_report r = report_base(rc, 2);
	r.from = "MAILER-DAEMON@x\nBcc: victim@example.com";
	r.to = "alice@example.org\r\nSubject: spoofed";
	r.reporting_mta = "mail.example.org\nX-Injected: 2";
	r.envid = "E\nX-Injected: 3";
	r.qid = "Q1ABC\n--tegami-Q1ABC-0";

	char *text = write_report(&r, ORIG);
	check_lines(text);
	assert_int_equal(count_lines(text, "X-Injected"), 0);
	assert_int_equal(count_lines(text, "Bcc:"), 0);
	assert_int_equal(count_lines(text, "Subject:"), 2); /* ours and the original's */
	assert_int_equal(count_lines(text, "Final-Recipient:"), 2);
	assert_int_equal(count_lines(text, "Action:"), 2);
	assert_int_equal(count_lines(text, "Content-Type: text/html"), 0);
	assert_true(has_line(text, "Action: failed"));
	assert_int_equal(count_lines(text, "Action: delivered"), 0);
	assert_true(has_line(text, "Remote-MTA: dns; mx.example.net Bcc: victim@example.com"));
	assert_true(has_line(text, "Diagnostic-Code: X-Tegami;  [31m   8bit ?"));
	struct parsed p = parse_report(text, 3);
	assert_string_equal(g_mime_message_get_subject(p.msg), "Undelivered Mail Returned to Sender");
	parsed_free(&p);
	free(text);

	/* Over DSN_FIELD_MAX: cut, still one line. */
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "smtp; ", 6);
	big[1500] = '\n';
	rc[0].diagnostic = big;
	text = write_report(&r, ORIG);
	check_lines(text);
	const char *d = strstr(text, "\nDiagnostic-Code: smtp; ");
	assert_non_null(d);
	assert_int_equal(strcspn(d + 1, "\n"), strlen("Diagnostic-Code: ") + DSN_FIELD_MAX);
	free(text);
}

static void
test_report_boundary_collision(void **state)
{
	(void)state;
	struct dsn_rcpt rc = rcpt_failed();
	struct dsn_report r = report_base(&rc, 1);
	/* The original holds our first two choices, the diagnostic the third. */
	const char *orig = "Subject: trap\n\n--tegami-Q1ABC-0\nContent-Type: text/plain\n\n"
	    "x\n--tegami-Q1ABC-1--\n";

	rc.diagnostic = "smtp; 550 tegami-Q1ABC-2";
	char *text = write_report(&r, orig);
	assert_non_null(strstr(text, "boundary=\"tegami-Q1ABC-3\""));
	struct parsed p = parse_report(text, 3);
	GMimeObject *o = g_mime_multipart_get_part(p.mp, 2);
	assert_true(GMIME_IS_MESSAGE_PART(o));
	GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
	assert_string_equal(g_mime_message_get_subject(m), "trap");
	assert_non_null(strstr(text, orig));
	parsed_free(&p);
	free(text);
}

static void
test_report_8bit(void **state)
{
	(void)state;
	struct dsn_rcpt rc = rcpt_failed();
	struct dsn_report r = report_base(&rc, 1);
	char *text = write_report(&r, ORIG);

	assert_int_equal(count_lines(text, "Content-Transfer-Encoding:"), 0);
	free(text);
	text = write_report(&r, "Subject: x\n\ncaf\xc3\xa9\n");
	assert_int_equal(count_lines(text, "Content-Transfer-Encoding: 8bit"), 2);
	free(text);
	/* Headers only: an 8-bit body does not count. */
	r.ret = DSN_RET_HDRS;
	text = write_report(&r, "Subject: x\n\ncaf\xc3\xa9\n");
	assert_int_equal(count_lines(text, "Content-Transfer-Encoding:"), 0);
	free(text);
}

static void
test_report_bad_input(void **state)
{
	(void)state;
	struct dsn_rcpt rc = rcpt_failed();
	struct evbuffer *out = evbuffer_new();
	const char *error = NULL;
	struct dsn_report r;

	assert_non_null(out);
	evbuffer_add(out, "keep", 4);
#define BAD(mutate) do { \
		rc = rcpt_failed(); \
		r = report_base(&rc, 1); \
		mutate; \
		error = NULL; \
		assert_int_equal(dsn_report_write(&r, NULL, out, &error), -1); \
		assert_non_null(error); \
		assert_int_equal(evbuffer_get_length(out), 4); \
	} while (0)
	BAD(r.nrcpt = 0);
	BAD(r.rcpts = NULL);
	BAD(r.from = NULL);
	BAD(r.to = NULL);
	BAD(r.to = "");
	BAD(r.to = "<>");
	BAD(r.reporting_mta = NULL);
	BAD(r.qid = NULL);
	BAD(r.message_id_domain = NULL);
	BAD(rc.final_rcpt = NULL);
	BAD(rc.status = NULL);
	BAD(rc.status = "5.1");
	BAD(rc.status = "6.1.1");
	BAD(rc.status = "5.1.1 x");
	BAD(rc.status = "5.1234.1");
	BAD(rc.status = "5.1.1\nX: y");
	BAD(rc.action = (enum dsn_action)42);
#undef BAD
	evbuffer_free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_parse),
		cmocka_unit_test(test_notify_format),
		cmocka_unit_test(test_ret),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_envid),
		cmocka_unit_test(test_orcpt),
		cmocka_unit_test(test_action_names),
		cmocka_unit_test(test_report_failed),
		cmocka_unit_test(test_report_subjects),
		cmocka_unit_test(test_report_headers_only),
		cmocka_unit_test(test_report_without_original),
		cmocka_unit_test(test_report_injection),
		cmocka_unit_test(test_report_boundary_collision),
		cmocka_unit_test(test_report_8bit),
		cmocka_unit_test(test_report_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
