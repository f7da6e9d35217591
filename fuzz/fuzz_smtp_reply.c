/* fuzz_smtp_reply.c: libFuzzer target for src/mail/smtp_reply.c, the reply
 * parser of the outbound client: the bytes a remote server sends.
 *
 * Input: byte 0 holds a stretch factor (low 4 bits: every line of 4 octets
 * or more gets 137 × k 'x' appended, so the line and text caps are reached
 * under libFuzzer's -max_len) and a format buffer size (high 4 bits); the
 * rest is split into lines at LF, a CR before the LF dropped as the line
 * reader does. Each line goes to smtp_reply_parser_line. Checked:
 *   - the status is what RFC 5321 §4.2 and the header's limits say (a
 *     small model of the rules: code, separator, same code on continuation,
 *     line and line-count caps);
 *   - on DONE: code 200..599 and the model's code, nlines the model's count,
 *     text NUL-terminated inside its array with at most nlines - 1 '\n',
 *     enhanced empty or a class.subject.detail of the reply's class;
 *     smtp_reply_format gives only printable ASCII, starts with the code and
 *     respects the buffer size; smtp_ehlo_parse runs (no crash, no UB);
 *   - after BAD the parser starts afresh: "221 z" is a one-line reply.
 * Violations abort, so libFuzzer keeps the input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/smtp_reply.h"

#define FUZZ_INPUT_MAX (64 * 1024)
#define STRETCH 137

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "fuzz_smtp_reply: %s\n", #cond); abort(); } } while (0)

/* What the parser must answer, from the rules alone. */
struct model {
	bool active;
	int code;
	size_t nlines;
};

static bool
digit(char c)
{
	return c >= '0' && c <= '9';
}

static enum smtp_reply_status
model_line(struct model *m, const char *s, size_t len)
{
	if (len < 3 || len > SMTP_REPLY_LINE_MAX || s[0] < '2' || s[0] > '5' || !digit(s[1]) ||
	    !digit(s[2]) || (len > 3 && s[3] != '-' && s[3] != ' '))
		goto bad;
	int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if ((m->active && code != m->code) || m->nlines >= SMTP_REPLY_LINES_MAX)
		goto bad;
	m->code = code;
	m->nlines++;
	if (len > 3 && s[3] == '-') {
		m->active = true;
		return SMTP_REPLY_MORE;
	}
	return SMTP_REPLY_DONE;
bad:
	memset(m, 0, sizeof(*m));
	return SMTP_REPLY_BAD;
}

static void
check_enhanced(const struct smtp_reply *r)
{
	const char *e = r->enhanced;
	size_t n = strnlen(e, sizeof(r->enhanced));

	CHECK(n < sizeof(r->enhanced));
	if (n == 0)
		return;
	CHECK(e[0] == '0' + r->code / 100 && e[1] == '.');
	size_t d1 = strspn(e + 2, "0123456789");
	CHECK(d1 >= 1 && d1 <= 3 && e[2 + d1] == '.');
	size_t d2 = strspn(e + 3 + d1, "0123456789");
	CHECK(d2 >= 1 && d2 <= 3 && 3 + d1 + d2 == n);
}

static void
check_format(const struct smtp_reply *r, size_t small)
{
	static char buf[SMTP_REPLY_TEXT_MAX * 2 + 64];
	size_t n = smtp_reply_format(r, buf, sizeof(buf));

	CHECK(n < sizeof(buf) && buf[n] == '\0' && strlen(buf) == n);
	CHECK(n >= 3 && buf[0] == '0' + r->code / 100);
	for (size_t i = 0; i < n; i++)
		CHECK(buf[i] >= 0x20 && buf[i] <= 0x7e);
	/* A smaller buffer holds a prefix of the same line. */
	char *cut = malloc(small + 1);
	CHECK(cut != NULL);
	memset(cut, 0x55, small + 1);
	size_t m = smtp_reply_format(r, cut, small);
	if (small == 0) {
		CHECK(m == 0 && (unsigned char)cut[0] == 0x55);
	} else {
		CHECK(m == (n < small ? n : small - 1) && cut[m] == '\0');
		CHECK(memcmp(cut, buf, m) == 0);
		CHECK((unsigned char)cut[small] == 0x55);
	}
	free(cut);
}

static void
check_done(const struct smtp_reply *r, const struct model *m, size_t small)
{
	CHECK(r->code >= 200 && r->code <= 599 && r->code == m->code);
	CHECK(r->nlines >= 1 && r->nlines == m->nlines);
	const char *nul = memchr(r->text, '\0', sizeof(r->text));
	CHECK(nul != NULL);
	size_t tlen = (size_t)(nul - r->text), seps = 0;
	for (size_t i = 0; i < tlen; i++)
		seps += r->text[i] == '\n';
	CHECK(seps <= r->nlines - 1);
	CHECK(r->truncated || seps == r->nlines - 1);
	CHECK(!r->truncated || tlen == SMTP_REPLY_TEXT_MAX - 1);
	check_enhanced(r);
	check_format(r, small);
	struct smtp_ehlo e;
	smtp_ehlo_parse(r, &e);
	if (r->code != 250)
		CHECK(e.auth == 0 && !e.size_offered && !e.pipelining && !e.starttls);
}

/* After BAD the parser has forgotten the broken reply. */
static void
check_fresh(const struct smtp_reply_parser *p)
{
	struct smtp_reply_parser copy = *p;
	struct smtp_reply r;

	CHECK(smtp_reply_parser_line(&copy, "221 z", 5, &r) == SMTP_REPLY_DONE);
	CHECK(r.code == 221 && r.nlines == 1 && strcmp(r.text, "z") == 0 && !r.truncated);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[FUZZ_INPUT_MAX + 15 * STRETCH];
	struct smtp_reply_parser p;
	struct smtp_reply r;
	struct model m;

	if (size < 1 || size > FUZZ_INPUT_MAX)
		return 0;
	size_t stretch = (size_t)(data[0] & 0x0f) * STRETCH;
	size_t small = (size_t)(data[0] >> 4) * 23;
	const char *in = (const char *)data + 1, *end = (const char *)data + size;

	smtp_reply_parser_init(&p);
	memset(&m, 0, sizeof(m));
	while (in < end) {
		const char *nl = memchr(in, '\n', (size_t)(end - in));
		size_t len = (size_t)((nl != NULL ? nl : end) - in);
		memcpy(line, in, len);
		in += len + (nl != NULL);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len >= 4) {
			memset(line + len, 'x', stretch);
			len += stretch;
		}
		memset(&r, 0xa5, sizeof(r));
		enum smtp_reply_status want = model_line(&m, line, len);
		enum smtp_reply_status got = smtp_reply_parser_line(&p, line, len, &r);
		CHECK(got == want);
		if (got == SMTP_REPLY_DONE) {
			check_done(&r, &m, small);
			memset(&m, 0, sizeof(m));
		} else if (got == SMTP_REPLY_BAD) {
			check_fresh(&p);
		}
	}
	return 0;
}
