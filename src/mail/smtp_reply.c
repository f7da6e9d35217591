#include "mail/smtp_reply.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/strutil.h"

void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1 to 3 digits at s[0..len): their count, or 0. */
static size_t
digits_1_3(const char *s, size_t len)
{
	size_t n = 0;

	while (n < len && n < 4 && is_digit(s[n]))
		n++;
	return n >= 1 && n <= 3 ? n : 0;
}

/* RFC 3463 §2: status-code = class "." subject "." detail, subject and
 * detail 1*3digit, class 2, 4 or 5. Returns the code's length when
 * s[0..len) starts with one of class cls followed by a space or the end of
 * the line, else 0. */
static size_t
enhanced_len(const char *s, size_t len, char cls)
{
	size_t i, n;

	if (len < 5 || (cls != '2' && cls != '4' && cls != '5') || s[0] != cls || s[1] != '.')
		return 0;
	i = 2;
	if ((n = digits_1_3(s + i, len - i)) == 0)
		return 0;
	i += n;
	if (i >= len || s[i] != '.')
		return 0;
	i++;
	if ((n = digits_1_3(s + i, len - i)) == 0)
		return 0;
	i += n;
	return i == len || s[i] == ' ' ? i : 0;
}

/* Appends n octets of one line's text to the joined text, cut at the cap.
 * In a line's text NUL and LF become '?', so that '\n' stays the line
 * separator; sep appends that separator itself. */
static void
text_append(struct smtp_reply *r, size_t *used, const char *s, size_t n, bool sep)
{
	size_t room = SMTP_REPLY_TEXT_MAX - 1 - *used;

	if (n > room) {
		n = room;
		r->truncated = true;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		r->text[*used + i] = !sep && (c == '\0' || c == '\n') ? '?' : c;
	}
	*used += n;
	r->text[*used] = '\0';
}

/* Takes the text of one line (after "NNN-" / "NNN ") into the reply. */
static void
reply_add_text(struct smtp_reply *r, const char *s, size_t n)
{
	char cls = (char)('0' + r->code / 100);
	size_t used = strlen(r->text);
	size_t elen = enhanced_len(s, n, cls);

	if (elen > 0) {
		if (r->nlines == 0)
			memcpy(r->enhanced, s, elen); /* elen <= 9: fits, NUL already there */
		s += elen;
		n -= elen;
		while (n > 0 && *s == ' ') {
			s++;
			n--;
		}
	}
	if (r->nlines > 0)
		text_append(r, &used, "\n", 1, true);
	text_append(r, &used, s, n, false);
	r->nlines++;
}

static enum smtp_reply_status
parser_bad(struct smtp_reply_parser *p)
{
	smtp_reply_parser_init(p);
	return SMTP_REPLY_BAD;
}

enum smtp_reply_status
smtp_reply_parser_line(struct smtp_reply_parser *p, const char *line, size_t len,
    struct smtp_reply *out)
{
	/* RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39; the second and
	 * third digits are taken as any digit, as most clients do. */
	if (len > SMTP_REPLY_LINE_MAX || len < 3)
		return parser_bad(p);
	if (line[0] < '2' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2]))
		return parser_bad(p);
	if (len > 3 && line[3] != '-' && line[3] != ' ')
		return parser_bad(p);
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (p->active && code != p->cur.code)
		return parser_bad(p);
	if (p->cur.nlines >= SMTP_REPLY_LINES_MAX)
		return parser_bad(p);
	p->cur.code = code;
	reply_add_text(&p->cur, len > 3 ? line + 4 : line + 3, len > 3 ? len - 4 : 0);
	if (len > 3 && line[3] == '-') {
		p->active = true;
		return SMTP_REPLY_MORE;
	}
	*out = p->cur;
	smtp_reply_parser_init(p);
	return SMTP_REPLY_DONE;
}

/* Is the word w[0..n) equal to kw, ignoring case? */
static bool
word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

/* "AUTH m1 m2 …" / "AUTH=m1 m2 …": s[0..n) is the part after the keyword. */
static unsigned
ehlo_auth_mechs(const char *s, size_t n)
{
	static const struct { const char *name; unsigned bit; } mechs[] = {
		{ "PLAIN", SMTP_AUTH_PLAIN }, { "LOGIN", SMTP_AUTH_LOGIN },
		{ "CRAM-MD5", SMTP_AUTH_CRAM_MD5 }, { "XOAUTH2", SMTP_AUTH_XOAUTH2 },
	};
	unsigned bits = 0;
	size_t i = 0;

	while (i < n) {
		while (i < n && (s[i] == ' ' || s[i] == '='))
			i++;
		size_t start = i;
		while (i < n && s[i] != ' ')
			i++;
		for (size_t m = 0; m < sizeof(mechs) / sizeof(mechs[0]); m++) {
			if (word_is(s + start, i - start, mechs[m].name))
				bits |= mechs[m].bit;
		}
	}
	return bits;
}

/* "SIZE" or "SIZE n": s[0..n) is the part after the keyword. */
static void
ehlo_size(struct smtp_ehlo *e, const char *s, size_t n)
{
	char num[24];
	uint64_t v;

	e->size_offered = true;
	e->size = 0;
	while (n > 0 && *s == ' ') {
		s++;
		n--;
	}
	size_t w = 0;
	while (w < n && s[w] != ' ')
		w++;
	if (w == 0 || w >= sizeof(num))
		return;
	memcpy(num, s, w);
	num[w] = '\0';
	if (str_parse_u64(num, &v) == 0)
		e->size = v;
}

/* One EHLO line (RFC 5321 §4.1.1.1: ehlo-keyword *(SP ehlo-param)). */
static void
ehlo_line(struct smtp_ehlo *e, const char *s, size_t n)
{
	const struct { const char *kw; bool *flag; } flags[] = {
		{ "PIPELINING", &e->pipelining }, { "STARTTLS", &e->starttls },
		{ "8BITMIME", &e->eightbitmime }, { "DSN", &e->dsn },
		{ "ENHANCEDSTATUSCODES", &e->enhancedstatuscodes }, { "SMTPUTF8", &e->smtputf8 },
		{ "ETRN", &e->etrn }, { "CHUNKING", &e->chunking },
	};
	size_t kw = 0;

	/* The old "AUTH=LOGIN PLAIN" form ends the keyword at '='. */
	while (kw < n && s[kw] != ' ' && s[kw] != '=')
		kw++;
	if (word_is(s, kw, "AUTH")) {
		e->auth |= ehlo_auth_mechs(s + kw, n - kw);
		return;
	}
	if (kw < n && s[kw] == '=')
		return;
	if (word_is(s, kw, "SIZE")) {
		ehlo_size(e, s + kw, n - kw);
		return;
	}
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (word_is(s, kw, flags[i].kw))
			*flags[i].flag = true;
	}
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	memset(e, 0, sizeof(*e));
	if (r->code != 250)
		return;
	const char *p = memchr(r->text, '\n', strnlen(r->text, sizeof(r->text)));
	while (p != NULL) {
		const char *line = p + 1;
		size_t rest = strnlen(line, sizeof(r->text) - (size_t)(line - r->text));
		p = memchr(line, '\n', rest);
		ehlo_line(e, line, p != NULL ? (size_t)(p - line) : rest);
	}
}

/* Appends s[0..n) to buf with every octet made printable. */
static void
format_add(char *buf, size_t size, size_t *used, const char *s, size_t n)
{
	for (size_t i = 0; i < n && *used + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[(*used)++] = c == '\t' ? ' ' : c < 0x20 || c > 0x7e ? '?' : (char)c;
	}
}

size_t
smtp_reply_format(const struct smtp_reply *r, char *buf, size_t size)
{
	char code[8];
	size_t used = 0;

	if (size == 0)
		return 0;
	int n = snprintf(code, sizeof(code), "%03d", r->code >= 0 && r->code <= 999 ? r->code : 0);
	format_add(buf, size, &used, code, n > 0 ? (size_t)n : 0);
	size_t elen = strnlen(r->enhanced, sizeof(r->enhanced));
	if (elen > 0) {
		format_add(buf, size, &used, " ", 1);
		format_add(buf, size, &used, r->enhanced, elen);
	}
	size_t tlen = strnlen(r->text, sizeof(r->text));
	if (tlen > 0)
		format_add(buf, size, &used, " ", 1);
	for (size_t i = 0; i < tlen; i++) {
		if (r->text[i] == '\n')
			format_add(buf, size, &used, "; ", 2);
		else
			format_add(buf, size, &used, r->text + i, 1);
	}
	buf[used] = '\0';
	return used;
}
