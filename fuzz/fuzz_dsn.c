/* fuzz_dsn.c: libFuzzer target for src/mail/dsn.c: the RFC 3461 parameters
 * a client sends on MAIL and RCPT, and the report built from strings a
 * client or a remote server chose.
 *
 * Input: byte 0 picks the function, the rest is its argument (cut at the
 * first NUL, as a command line would be). Checked, for every input:
 *   - NOTIFY: an accepted value formats and parses back to the same bits,
 *     NEVER alone;
 *   - xtext: a decoded value encodes to pure xtext that decodes back to it;
 *     any string encodes and decodes back to itself;
 *   - ENVID: at most 100 printable octets, and encoding it gives an ENVID
 *     that parses back to the same;
 *   - ORCPT: "type;address" with the type lower-cased, no control octet,
 *     at most 500 octets, and re-encoding the address parses back;
 *   - RET: FULL or HDRS only;
 *   - report: the input split at NUL into diagnostic, remote MTA, ORCPT,
 *     final recipient, queue id and the original; the report's own lines
 *     (all but the returned original) are printable, at most 998 octets,
 *     with exactly one Final-Recipient and no line starting "X-Injected";
 *     the boundary is absent from the original and delimits exactly three
 *     parts, the closing delimiter last.
 * Violations abort, so libFuzzer keeps the input. */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dsn.h"

#define FUZZ_INPUT_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "fuzz_dsn: %s\n", #cond); abort(); } } while (0)

static void
fuzz_notify(const char *s)
{
	unsigned n, back;
	char buf[64];

	if (dsn_notify_parse(s, &n) < 0)
		return;
	CHECK(n != 0 && (n & ~15u) == 0);
	CHECK((n & DSN_NOTIFY_NEVER) == 0 || n == DSN_NOTIFY_NEVER);
	size_t len = dsn_notify_format(n, buf, sizeof(buf));
	CHECK(len == strlen(buf));
	CHECK(dsn_notify_parse(buf, &back) == 0 && back == n);
}

static bool
is_xtext(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '+') {
			if (strchr("0123456789ABCDEF", s[1]) == NULL || s[1] == '\0' ||
			    strchr("0123456789ABCDEF", s[2]) == NULL || s[2] == '\0')
				return false;
			s += 2;
		} else if (*s < '!' || *s > '~' || *s == '=') {
			return false;
		}
	}
	return true;
}

static void
fuzz_xtext(const char *s, size_t len)
{
	char *dec = malloc(len + 1), *enc = malloc(3 * len + 1), *back = malloc(len + 1);

	CHECK(dec != NULL && enc != NULL && back != NULL);
	/* Any string survives encode then decode. */
	CHECK(dsn_xtext_encode(s, enc, 3 * len + 1) == 0 && is_xtext(enc));
	CHECK(dsn_xtext_decode(enc, back, len + 1) == 0 && strcmp(back, s) == 0);
	/* A decoded value survives encode then decode. */
	if (dsn_xtext_decode(s, dec, len + 1) == 0) {
		CHECK(strlen(dec) <= len);
		CHECK(dsn_xtext_encode(dec, enc, 3 * len + 1) == 0 && is_xtext(enc));
		CHECK(dsn_xtext_decode(enc, back, len + 1) == 0 && strcmp(back, dec) == 0);
	}
	free(dec);
	free(enc);
	free(back);
}

static void
fuzz_envid(const char *s)
{
	char out[DSN_ENVID_MAX + 1], enc[3 * DSN_ENVID_MAX + 1], back[DSN_ENVID_MAX + 1];

	if (dsn_envid_parse(s, out, sizeof(out)) < 0)
		return;
	size_t n = strlen(out);
	CHECK(n >= 1 && n <= DSN_ENVID_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK(out[i] >= 0x20 && out[i] <= 0x7e);
	CHECK(dsn_xtext_encode(out, enc, sizeof(enc)) == 0);
	CHECK(dsn_envid_parse(enc, back, sizeof(back)) == 0 && strcmp(back, out) == 0);
}

static void
fuzz_orcpt(const char *s)
{
	char out[DSN_ORCPT_MAX + 1], enc[3 * DSN_ORCPT_MAX + 1], back[DSN_ORCPT_MAX + 1];

	if (dsn_orcpt_parse(s, out, sizeof(out)) < 0)
		return;
	size_t n = strlen(out);
	CHECK(n <= DSN_ORCPT_MAX);
	const char *semi = strchr(out, ';');
	CHECK(semi != NULL && semi > out && semi[1] != '\0');
	for (const char *p = out; p < semi; p++)
		CHECK(!(*p >= 'A' && *p <= 'Z') && *p > ' ' && *p < 0x7f);
	for (const char *p = out; *p != '\0'; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	/* type ";" xtext(address) parses back, when it still fits. */
	size_t tlen = (size_t)(semi - out) + 1;
	memcpy(enc, out, tlen);
	CHECK(dsn_xtext_encode(semi + 1, enc + tlen, sizeof(enc) - tlen) == 0);
	if (strlen(enc) <= DSN_ORCPT_MAX)
		CHECK(dsn_orcpt_parse(enc, back, sizeof(back)) == 0 && strcmp(back, out) == 0);
}

static void
fuzz_ret(const char *s)
{
	enum dsn_ret ret;

	if (dsn_ret_parse(s, &ret) == 0)
		CHECK((ret == DSN_RET_FULL || ret == DSN_RET_HDRS) && dsn_ret_name(ret)[0] != '\0');
}

/* Lines of text[0..len) equal to line. */
static int
count_exact(const char *text, size_t len, const char *line)
{
	size_t n = strlen(line);
	int count = 0;

	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end;
		if ((size_t)(eol - p) == n && memcmp(p, line, n) == 0)
			count++;
		p = eol + 1;
	}
	return count;
}

static void
check_own_lines(const char *text, size_t len)
{
	int final = 0;

	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end;
		CHECK(eol - p <= 998);
		for (const char *c = p; c < eol; c++)
			CHECK((*c >= 0x20 && *c <= 0x7e) || *c == '\t');
		CHECK(eol - p < 10 || memcmp(p, "X-Injected", 10) != 0);
		final += eol - p >= 16 && memcmp(p, "Final-Recipient:", 16) == 0;
		p = eol + 1;
	}
	CHECK(final == 1);
}

/* The next NUL-separated piece of [*p, end), or NULL when none is left. */
static const char *
piece(const char **p, const char *end)
{
	const char *s = *p;

	if (s >= end)
		return NULL;
	*p = s + strlen(s) + 1;
	return s;
}

static void
fuzz_report(const char *in, size_t len, unsigned flags)
{
	const char *p = in, *end = in + len;
	struct dsn_rcpt rc = {
		.final_rcpt = "rcpt@example.net",
		.action = (enum dsn_action)(flags % 5),
		.status = (flags & 8) ? "4.4.1" : "5.1.1",
		.last_attempt = 1700000000,
		.will_retry_until = 1700100000,
	};
	struct dsn_report r = {
		.reporting_mta = "mail.example.org", .from = "MAILER-DAEMON@mail.example.org",
		.to = "sender@example.org", .message_id_domain = "mail.example.org",
		.qid = "Q0", .envid = "ENV", .arrival = 1690000000, .now = 1700000000,
		.ret = (flags & 16) ? DSN_RET_HDRS : DSN_RET_FULL, .rcpts = &rc, .nrcpt = 1,
	};
	const char *s;

	rc.diagnostic = piece(&p, end);
	rc.remote_mta = piece(&p, end);
	rc.orcpt = piece(&p, end);
	if ((s = piece(&p, end)) != NULL)
		rc.final_rcpt = s;
	if ((s = piece(&p, end)) != NULL)
		r.qid = s;
	struct evbuffer *orig = evbuffer_new(), *out = evbuffer_new();
	CHECK(orig != NULL && out != NULL);
	if (p < end)
		evbuffer_add(orig, p, (size_t)(end - p));
	size_t olen = evbuffer_get_length(orig);
	const char *error;
	CHECK(dsn_report_write(&r, orig, out, &error) == 0);
	CHECK(evbuffer_get_length(orig) == olen);

	size_t n = evbuffer_get_length(out);
	/* A NUL-terminated copy: the report's own parts hold no NUL, so the
	 * string searches below stop, at the latest, in the original. */
	char *text = malloc(n + 1);
	CHECK(text != NULL);
	CHECK(evbuffer_copyout(out, text, n) == (ev_ssize_t)n);
	text[n] = '\0';
	const char *bp = strstr(text, "boundary=\"");
	CHECK(bp != NULL);
	bp += 10;
	size_t blen = strcspn(bp, "\"");
	CHECK(blen >= 1 && blen <= 70);
	char delim[80], close[84];
	snprintf(delim, sizeof(delim), "--%.*s", (int)blen, bp);
	snprintf(close, sizeof(close), "%s--", delim);
	CHECK(evbuffer_search(orig, delim + 2, blen, NULL).pos < 0);
	/* Our part of the report: up to the blank line ending the third
	 * part's header, where the original starts. */
	const char *third = text;
	for (int i = 0; i < 3; i++) {
		third = strstr(third + 1, delim);
		CHECK(third != NULL);
	}
	const char *own_end = strstr(third, "\n\n");
	CHECK(own_end != NULL);
	check_own_lines(text, (size_t)(own_end - text));
	CHECK(count_exact(text, n, delim) == 3);
	CHECK(count_exact(text, n, close) == 1);
	CHECK(n > strlen(close) + 1 && memcmp(text + n - strlen(close) - 1, close, strlen(close)) == 0);
	free(text);
	evbuffer_free(orig);
	evbuffer_free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_MAX)
		return 0;
	char *s = malloc(size);
	CHECK(s != NULL);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	size_t len = strlen(s);

	switch (data[0] & 7) {
	case 0:
		fuzz_notify(s);
		break;
	case 1:
		fuzz_xtext(s, len);
		break;
	case 2:
		fuzz_envid(s);
		break;
	case 3:
		fuzz_orcpt(s);
		break;
	case 4:
		fuzz_ret(s);
		break;
	default:
		fuzz_report(s, size - 1, data[0] >> 3);
		break;
	}
	free(s);
	return 0;
}
