/* pop3_wire.h: a stored message as POP3 sends it (RFC 1939 §3, MISSION P1).
 *
 * Every line goes out ending in CRLF: a bare LF becomes CRLF, a CR that is
 * not before an LF stays as content, an unterminated last line is ended; a
 * line that starts with "." gets another "."; ".CRLF" ends the response.
 * TOP stops after the header and the first n body lines. The conversion
 * works a chunk at a time and gives the same octets however the message is
 * split. pop3_size counts the octets of the same conversion without the
 * dot-stuffing and the final ".CRLF": the size LIST and STAT announce, which
 * must be exactly what RETR then delivers. No session, no file here. */
#ifndef TEGAMI_POP3_WIRE_H
#define TEGAMI_POP3_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room pop3_wire_convert needs in dst for n input octets (every octet may
 * double: "\n" → "\r\n", "." at a line start → ".."). */
#define POP3_WIRE_ROOM(n) (2 * (n) + 2)
/* Room pop3_wire_finish needs: "\r" "\r\n" ".\r\n". */
#define POP3_WIRE_END_MAX 6

struct pop3_wire {
	bool at_line_start;
	bool in_headers;
	bool line_empty;        /* nothing but the line end so far on this line */
	bool pending_cr;        /* a chunk ended in CR: is it part of CRLF? */
	long body_lines_left;   /* TOP: body lines still to send; -1: all */
};

/* body_lines: -1 for RETR (the whole message), n >= 0 for TOP n. */
void pop3_wire_init(struct pop3_wire *w, long body_lines);

/* Converts the next n octets of the message from p into dst (room for
 * POP3_WIRE_ROOM(n)); returns the octets written. *more_r becomes false once
 * TOP has everything it sends (the rest of the input is not needed). */
size_t pop3_wire_convert(struct pop3_wire *w, const char *p, size_t n, char *dst,
    bool *more_r);

/* After the last octet (or once *more_r was false): writes the end of the
 * response (a pending CR, the last line's CRLF, ".CRLF") into dst (room for
 * POP3_WIRE_END_MAX); returns the octets written. */
size_t pop3_wire_finish(struct pop3_wire *w, char *dst);

struct pop3_size {
	uint64_t octets;
	bool prev_cr;           /* the last octet seen was CR */
	bool any;               /* at least one octet seen */
	bool last_lf;           /* the last octet seen was LF */
};

void pop3_size_init(struct pop3_size *s);
/* Counts n more octets of the message, in any split. */
void pop3_size_add(struct pop3_size *s, const char *p, size_t n);
/* The octets RETR sends for everything added, without dot-stuffing and
 * without the final ".CRLF". */
uint64_t pop3_size_result(const struct pop3_size *s);

#endif
