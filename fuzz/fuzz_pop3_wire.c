/* fuzz_pop3_wire.c: libFuzzer target for src/mail/pop3_wire.c, what RETR
 * and TOP send for a stored message and the size LIST announces for it.
 *
 * Input: byte 0 picks RETR or TOP n, byte 1 seeds the chunk sizes, the rest
 * is the stored message (any octets). Checked, for every input:
 *   - the wire form is the same however the message is split into chunks;
 *   - every LF on the wire follows a CR, the response ends with ".CRLF"
 *     after a line end, every line that starts with "." is stuffed;
 *   - RETR: pop3_size (in another split) equals what was sent, less the
 *     stuffed dots and the final ".CRLF" (LIST == RETR, RFC 1939 §7);
 *   - RETR: unstuffed, with CRLF read as LF, it is the message with CRLF
 *     read as LF and its last line ended;
 *   - TOP: its text is a prefix of RETR's.
 * Violations abort, so libFuzzer keeps the input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/pop3_wire.h"

#define FUZZ_INPUT_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "fuzz_pop3_wire: %s\n", #cond); abort(); } } while (0)

/* The wire form of msg in chunks whose sizes follow seed. */
static size_t
convert(const char *msg, size_t len, long body_lines, unsigned seed, char *out)
{
	struct pop3_wire w;
	size_t o = 0, i = 0;
	bool more = true;

	pop3_wire_init(&w, body_lines);
	while (i < len && more) {
		size_t step = seed == 0 ? len : 1 + (seed % 7) * (seed % 13);
		seed = seed * 1103515245u + 12345u;
		if (step > len - i)
			step = len - i;
		o += pop3_wire_convert(&w, msg + i, step, out + o, &more);
		i += step;
	}
	return o + pop3_wire_finish(&w, out + o);
}

/* CRLF → LF, in place; returns the new length. */
static size_t
crlf_to_lf(char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		s[o++] = s[i];
	}
	return o;
}

static void
check_shape(const char *w, size_t n)
{
	CHECK(n >= 3 && memcmp(w + n - 3, ".\r\n", 3) == 0);
	CHECK(n == 3 || (n >= 5 && memcmp(w + n - 5, "\r\n", 2) == 0));
	for (size_t i = 0; i < n; i++) {
		if (w[i] == '\n')
			CHECK(i > 0 && w[i - 1] == '\r');
		bool line_start = i == 0 || w[i - 1] == '\n';
		if (line_start && w[i] == '.' && i != n - 3)
			CHECK(i + 1 < n && w[i + 1] == '.');
	}
}

/* Removes the final ".CRLF" and the stuffed dots; returns the new length. */
static size_t
unstuff(char *w, size_t n)
{
	size_t o = 0;
	bool line_start = true;

	n -= 3;
	for (size_t i = 0; i < n; i++) {
		if (line_start && w[i] == '.')
			i++; /* the stuffed dot: keep the one after it */
		line_start = w[i] == '\n';
		w[o++] = w[i];
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > FUZZ_INPUT_MAX)
		return 0;
	long body_lines = data[0] == 0xff ? -1 : (long)(data[0] % 8) - 1;
	unsigned seed = data[1];
	const char *msg = (const char *)data + 2;
	size_t len = size - 2;
	size_t room = POP3_WIRE_ROOM(len) + POP3_WIRE_END_MAX;
	char *whole = malloc(room), *split = malloc(room), *retr = malloc(room);
	char *norm = malloc(len + 3);

	size_t nw = convert(msg, len, body_lines, 0, whole);
	size_t ns = convert(msg, len, body_lines, seed ? seed : 1, split);
	CHECK(nw == ns && memcmp(whole, split, nw) == 0);
	check_shape(whole, nw);

	size_t nr = convert(msg, len, -1, 0, retr);
	if (body_lines >= 0) {
		CHECK(nw <= nr);
		CHECK(memcmp(whole, retr, nw - 3) == 0);
	}
	/* LIST's size for this message, counted in another split. */
	struct pop3_size sz;
	pop3_size_init(&sz);
	for (size_t i = 0, step = 1 + seed % 5; i < len; i += step)
		pop3_size_add(&sz, msg + i, len - i < step ? len - i : step);
	size_t body = unstuff(retr, nr);
	CHECK(pop3_size_result(&sz) == body);

	/* Same text: the message with its last line ended, line ends as LF. */
	memcpy(norm, msg, len);
	size_t nn = len;
	if (nn > 0 && norm[nn - 1] != '\n') {
		norm[nn++] = '\r';
		norm[nn++] = '\n';
	}
	nn = crlf_to_lf(norm, nn);
	body = crlf_to_lf(retr, body);
	CHECK(body == nn && memcmp(retr, norm, nn) == 0);

	free(whole);
	free(split);
	free(retr);
	free(norm);
	return 0;
}
