/* fuzz_smtp_parse.c: libFuzzer target for src/mail/smtp_parse.c.
 *
 * The input is one command line (a NUL-terminated copy; CRLF already gone,
 * as the session hands it over). smtp_parse_verb() splits it; the arguments,
 * and the whole line too so that the fuzzer need not find "MAIL " first, go
 * through smtp_parse_path_args() with the FROM: and TO: prefixes and the
 * flags the session uses. A success must satisfy the header's contract: at
 * most SMTP_PARAMS_MAX parameters pointing into the caller's buffer, keywords
 * and values of the RFC 5321 esmtp-param grammar, smtp_param_find() finding
 * each of them, and an address that formats and parses back to itself. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/smtp_parse.h"

/* RFC 5321 §4.5.3.1.4 allows 512 octets per command line and the session
 * caps lines a little above that; longer inputs add nothing. */
#define FUZZ_INPUT_MAX 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_failed(const char *what, const char *input)
{
	fprintf(stderr, "fuzz_smtp_parse: %s\ninput: [%s]\n", what, input);
	abort();
}

#define CHECK(cond, input) do { if (!(cond)) check_failed(#cond, (input)); } while (0)

static bool
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void
check_param(const struct smtp_param *p, const char *buf, size_t buflen, const char *input)
{
	CHECK(p->keyword != NULL, input);
	CHECK(p->keyword >= buf && p->keyword < buf + buflen, input);
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	CHECK(is_alnum(p->keyword[0]), input);
	for (const char *k = p->keyword + 1; *k != '\0'; k++)
		CHECK(is_alnum(*k) || *k == '-', input);
	if (p->value == NULL)
		return;
	CHECK(p->value >= buf && p->value < buf + buflen, input);
	/* esmtp-value = 1*(%d33-60 / %d62-126) */
	CHECK(p->value[0] != '\0', input);
	for (const char *v = p->value; *v != '\0'; v++)
		CHECK((unsigned char)*v >= 33 && (unsigned char)*v <= 126 && *v != '=', input);
}

static void
check_round_trip(const struct mail_addr *a, unsigned flags, const char *input)
{
	char text[1024], again[1100];
	struct mail_addr b;
	const char *end = NULL, *error = NULL;

	addr_format(a, text, sizeof(text));
	snprintf(again, sizeof(again), "<%s>", text);
	CHECK(addr_parse_path(again, flags, &b, &end, &error) == 0, input);
	CHECK(*end == '\0', input);
	CHECK(a->null == b.null && strcmp(a->local, b.local) == 0 &&
	    strcmp(a->domain, b.domain) == 0, input);
}

/* Parses a private copy of args (the parser writes into it). */
static void
fuzz_path_args(const char *args, const char *prefix, unsigned flags)
{
	size_t len = strlen(args);
	char *buf = malloc(len + 1);
	struct smtp_path_args *out = malloc(sizeof(*out));
	const char *error = NULL;

	if (buf == NULL || out == NULL)
		abort();
	memcpy(buf, args, len + 1);
	enum smtp_parse_result rc = smtp_parse_path_args(buf, prefix, flags, out, &error);
	switch (rc) {
	case SMTP_PARSE_OK:
		CHECK(strncasecmp(args, prefix, strlen(prefix)) == 0, args);
		CHECK(out->nparams <= SMTP_PARAMS_MAX, args);
		if (out->addr.null)
			CHECK((flags & ADDR_ALLOW_NULL) != 0, args);
		if (!out->addr.null && out->addr.domain[0] == '\0')
			CHECK((flags & ADDR_ALLOW_POSTMASTER) != 0, args);
		for (size_t i = 0; i < out->nparams; i++) {
			check_param(&out->params[i], buf, len + 1, args);
			/* find returns the first parameter of that keyword, any case */
			const struct smtp_param *found = smtp_param_find(out, out->params[i].keyword);
			CHECK(found != NULL && found <= &out->params[i], args);
			CHECK(strcasecmp(found->keyword, out->params[i].keyword) == 0, args);
		}
		check_round_trip(&out->addr, flags, args);
		break;
	case SMTP_PARSE_SYNTAX:
	case SMTP_PARSE_ADDRESS:
	case SMTP_PARSE_PARAM:
		CHECK(error != NULL && error[0] != '\0', args);
		break;
	default:
		check_failed("unknown result code", args);
	}
	free(out);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line;
	const char *args = NULL;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	line = malloc(size + 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	size_t len = strlen(line);

	size_t vlen = smtp_parse_verb(line, &args);
	CHECK(vlen <= len, line);
	CHECK(args >= line + vlen && args <= line + len, line);
	CHECK(memchr(line, ' ', vlen) == NULL, line);

	/* as the session calls it: MAIL with <> allowed, RCPT with <Postmaster> */
	fuzz_path_args(args, "FROM:", ADDR_ALLOW_NULL);
	fuzz_path_args(args, "TO:", ADDR_ALLOW_POSTMASTER);
	/* and the whole line, so that "FROM:" at the start is reached directly */
	fuzz_path_args(line, "FROM:", ADDR_ALLOW_NULL);
	fuzz_path_args(line, "TO:", ADDR_ALLOW_POSTMASTER);
	fuzz_path_args(line, "TO:", 0);

	free(line);
	return 0;
}
