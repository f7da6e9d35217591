/* fuzz_addr.c: libFuzzer target for src/mail/addr.c.
 *
 * The input, as a NUL-terminated string, goes through addr_parse_path() with
 * every flag combination and through addr_parse_mailbox(). Whatever parses
 * must satisfy the header's contract (lengths, null path and bare Postmaster
 * only with their flags, a valid domain or address literal), and must
 * survive the round trip: addr_format() of a parsed address, parsed again,
 * gives the same address. Violations abort, so libFuzzer keeps the input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addr.h"

/* Longer inputs only exercise the same loops over more bytes. */
#define FUZZ_INPUT_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_failed(const char *what, const char *input)
{
	fprintf(stderr, "fuzz_addr: %s\ninput: [%s]\n", what, input);
	abort();
}

#define CHECK(cond, input) do { if (!(cond)) check_failed(#cond, (input)); } while (0)

static bool
addr_equal(const struct mail_addr *a, const struct mail_addr *b)
{
	return a->null == b->null && strcmp(a->local, b->local) == 0 &&
	    strcmp(a->domain, b->domain) == 0;
}

/* What any successfully parsed address must look like. */
static void
check_addr(const struct mail_addr *a, unsigned flags, const char *input)
{
	size_t llen = strnlen(a->local, sizeof(a->local));
	size_t dlen = strnlen(a->domain, sizeof(a->domain));

	CHECK(llen <= ADDR_LOCAL_MAX, input);
	CHECK(dlen <= ADDR_DOMAIN_MAX, input);
	if (a->null) {
		CHECK((flags & ADDR_ALLOW_NULL) != 0, input);
		CHECK(llen == 0 && dlen == 0, input);
		return;
	}
	CHECK(llen > 0, input);
	if (dlen == 0) { /* bare <Postmaster> */
		CHECK((flags & ADDR_ALLOW_POSTMASTER) != 0, input);
		CHECK(strcmp(a->local, "postmaster") == 0, input);
		return;
	}
	if (a->domain[0] == '[')
		CHECK(a->domain[dlen - 1] == ']', input);
	else
		CHECK(addr_domain_valid(a->domain), input);
	/* no control, 8-bit or NUL-hiding bytes in either part */
	for (size_t i = 0; i < llen; i++)
		CHECK((unsigned char)a->local[i] >= 32 && (unsigned char)a->local[i] <= 126, input);
}

static void
fuzz_path(const char *s, size_t len, unsigned flags)
{
	struct mail_addr a, b;
	const char *end = NULL, *error = NULL;
	char text[1024], again[1100];

	if (addr_parse_path(s, flags, &a, &end, &error) != 0) {
		CHECK(error != NULL && error[0] != '\0', s);
		return;
	}
	CHECK(end != NULL && end > s && end <= s + len && end[-1] == '>', s);
	CHECK(s[0] == '<', s);
	check_addr(&a, flags, s);

	/* round trip: "<" formatted ">" parses back to the same address */
	size_t n = addr_format(&a, text, sizeof(text));
	CHECK(n == strlen(text) && n < sizeof(text) - 1, s);
	snprintf(again, sizeof(again), "<%s>", text);
	error = NULL;
	if (addr_parse_path(again, flags, &b, &end, &error) != 0) {
		fprintf(stderr, "fuzz_addr: formatted [%s] does not parse: %s\n", again, error);
		check_failed("round trip parse", s);
	}
	CHECK(*end == '\0', s);
	CHECK(addr_equal(&a, &b), s);
	/* and formatting is stable */
	char text2[1024];
	addr_format(&b, text2, sizeof(text2));
	CHECK(strcmp(text, text2) == 0, s);
}

static void
fuzz_mailbox(const char *s)
{
	struct mail_addr a, b;
	const char *error = NULL;
	char text[1024];

	if (addr_parse_mailbox(s, &a, &error) != 0) {
		CHECK(error != NULL && error[0] != '\0', s);
		return;
	}
	check_addr(&a, 0, s);
	CHECK(a.domain[0] != '\0', s);
	addr_format(&a, text, sizeof(text));
	error = NULL;
	if (addr_parse_mailbox(text, &b, &error) != 0) {
		fprintf(stderr, "fuzz_addr: formatted [%s] is not a mailbox: %s\n", text, error);
		check_failed("mailbox round trip parse", s);
	}
	CHECK(addr_equal(&a, &b), s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned flag_sets[] = {
		0, ADDR_ALLOW_NULL, ADDR_ALLOW_POSTMASTER, ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER,
	};
	char *s;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	size_t len = strlen(s); /* an embedded NUL ends the string, as in a C caller */

	for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++)
		fuzz_path(s, len, flag_sets[i]);
	fuzz_mailbox(s);
	/* the predicates on their own: must not crash, and agree with each other */
	if (addr_domain_valid(s))
		CHECK(len > 0 && len <= ADDR_DOMAIN_MAX, s);
	(void)addr_is_dot_string(s);

	free(s);
	return 0;
}
