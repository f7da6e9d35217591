/* test_pop3_wire.c: src/mail/pop3_wire.c, the stored-message-to-POP3
 * conversion (RFC 1939 §3) and the size LIST announces for it (P1, P2). */
#include "test_util.h"

#include "mail/pop3_wire.h"

/* Converts in (len octets) for TOP body_lines (-1: RETR) in chunks of at
 * most step octets; returns a malloc'd NUL-terminated wire form. */
static char *
wire(const char *in, size_t len, long body_lines, size_t step)
{
	struct pop3_wire w;
	char *out = malloc(2 * len + POP3_WIRE_END_MAX + 8);
	size_t o = 0;
	bool more = true;

	assert_non_null(out);
	pop3_wire_init(&w, body_lines);
	for (size_t i = 0; i < len && more; i += step) {
		size_t n = len - i < step ? len - i : step;
		o += pop3_wire_convert(&w, in + i, n, out + o, &more);
	}
	o += pop3_wire_finish(&w, out + o);
	out[o] = '\0';
	return out;
}

/* The wire form in every chunking (1, 2, 3 … octets, and whole). */
static void
check_wire(int line, const char *in, long body_lines, const char *want)
{
	size_t len = strlen(in);

	for (size_t step = 1; step <= len + 1; step++) {
		char *got = wire(in, len, body_lines, step);
		if (strcmp(got, want) != 0)
			fail_msg("line %d: step %zu: got [%s] want [%s]", line, step, got, want);
		free(got);
	}
}

#define WIRE(in, want) check_wire(__LINE__, (in), -1, (want))
#define TOP(in, n, want) check_wire(__LINE__, (in), (n), (want))

static uint64_t
size_of(const char *in, size_t step)
{
	struct pop3_size s;
	size_t len = strlen(in);

	pop3_size_init(&s);
	for (size_t i = 0; i < len; i += step)
		pop3_size_add(&s, in + i, len - i < step ? len - i : step);
	return pop3_size_result(&s);
}

/* The size is what RETR sends, less the stuffed dots and the final ".CRLF". */
static void
check_size(int line, const char *in)
{
	char *w = wire(in, strlen(in), -1, strlen(in) + 1);
	size_t len = strlen(w) - 3, stuffed = 0;

	for (size_t i = 0; i < len; i++) {
		if (w[i] == '.' && (i == 0 || w[i - 1] == '\n'))
			stuffed++;
	}
	for (size_t step = 1; step <= strlen(in) + 1; step++) {
		if (size_of(in, step) != len - stuffed)
			fail_msg("line %d: step %zu: size %llu, RETR sends %zu", line, step,
			    (unsigned long long)size_of(in, step), len - stuffed);
	}
	free(w);
}

#define SIZE(in) check_size(__LINE__, (in))

static void
test_line_ends(void **state)
{
	(void)state;
	WIRE("a\nb\n", "a\r\nb\r\n.\r\n");
	WIRE("a\r\nb\r\n", "a\r\nb\r\n.\r\n");
	WIRE("a\r\nb\n", "a\r\nb\r\n.\r\n");
	WIRE("a\rb\n", "a\rb\r\n.\r\n");           /* a bare CR is content */
	WIRE("a\r\r\n", "a\r\r\n.\r\n");
	WIRE("\r", "\r\r\n.\r\n");
	WIRE("no end", "no end\r\n.\r\n");       /* the last line is ended */
	WIRE("ends in CR\r", "ends in CR\r\r\n.\r\n");
	WIRE("", ".\r\n");
	WIRE("\n", "\r\n.\r\n");
	WIRE("\n\n", "\r\n\r\n.\r\n");
}

static void
test_dot_stuffing(void **state)
{
	(void)state;
	WIRE(".\n", "..\r\n.\r\n");
	WIRE("a\n.\n..\n.x\nx.\n", "a\r\n..\r\n...\r\n..x\r\nx.\r\n.\r\n");
	WIRE(".", "..\r\n.\r\n");
	WIRE("a\r\n.\r\n", "a\r\n..\r\n.\r\n");
	WIRE("a\r.b\n", "a\r.b\r\n.\r\n");          /* not a line start */
}

static void
test_top(void **state)
{
	(void)state;
	const char *m = "Subject: x\nFrom: y\n\nbody 1\n.body 2\nbody 3\n";

	TOP(m, 0, "Subject: x\r\nFrom: y\r\n\r\n.\r\n");
	TOP(m, 1, "Subject: x\r\nFrom: y\r\n\r\nbody 1\r\n.\r\n");
	TOP(m, 2, "Subject: x\r\nFrom: y\r\n\r\nbody 1\r\n..body 2\r\n.\r\n");
	TOP(m, 3, "Subject: x\r\nFrom: y\r\n\r\nbody 1\r\n..body 2\r\nbody 3\r\n.\r\n");
	TOP(m, 99, "Subject: x\r\nFrom: y\r\n\r\nbody 1\r\n..body 2\r\nbody 3\r\n.\r\n");
	/* No blank line: all of it is header. */
	TOP("Subject: only\n", 0, "Subject: only\r\n.\r\n");
	TOP("Subject: crlf\r\n\r\nb1\r\nb2\r\n", 1, "Subject: crlf\r\n\r\nb1\r\n.\r\n");
	TOP("S: x\n\nlast", 5, "S: x\r\n\r\nlast\r\n.\r\n");
}

static void
test_top_stops_reading(void **state)
{
	(void)state;
	struct pop3_wire w;
	char out[64];
	bool more = true;
	const char *m = "H: 1\n\nb1\nb2\n";

	pop3_wire_init(&w, 1);
	size_t n = pop3_wire_convert(&w, m, strlen(m), out, &more);
	assert_false(more);
	n += pop3_wire_finish(&w, out + n);
	out[n] = '\0';
	assert_string_equal(out, "H: 1\r\n\r\nb1\r\n.\r\n");
}

static void
test_sizes_match_retr(void **state)
{
	(void)state;
	SIZE("");
	SIZE("a\nb\n");
	SIZE("a\r\nb\r\n");
	SIZE("a\rb\r\r\n\r");
	SIZE("no end");
	SIZE(".\n..\n.x");
	SIZE("\n\n\r\n\r\r");
	SIZE("Subject: x\r\n\r\n.\r\n.. dotted\n");
	assert_int_equal(size_of("a\nb\n", 1), 6);
	assert_int_equal(size_of("abc", 2), 5);
	assert_int_equal(size_of("", 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_top),
		cmocka_unit_test(test_top_stops_reading),
		cmocka_unit_test(test_sizes_match_retr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
