/* smtp_reply.h: the replies an SMTP server sends, as the outbound client
 * reads them (RFC 5321 §4.2, RFC 3463 enhanced status codes, RFC 2920).
 *
 * A reply is one or more lines "NNN-text" ending with "NNN text" (or just
 * "NNN"); the parser takes them one line at a time, so a reply split across
 * packets or pipelined behind another one is read the same way. Everything
 * it keeps is capped: line length, line count, joined text. The EHLO reply
 * is read into the extensions the client cares about; smtp_reply_format
 * gives the one line that goes into logs, queue files and delivery reports.
 * No I/O, no session here. */
#ifndef TEGAMI_SMTP_REPLY_H
#define TEGAMI_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX 2048   /* longest reply line we accept, CRLF excluded */
#define SMTP_REPLY_LINES_MAX 100   /* lines in one multi-line reply */
#define SMTP_REPLY_TEXT_MAX 4096   /* texts kept, joined by '\n' */

struct smtp_reply {
	int code;                  /* 200..599 (first digit 2-5) */
	/* "5.1.1" when the first line's text starts with class.subject.detail
	 * (RFC 3463 §2, class matching the code's first digit), else "". */
	char enhanced[16];
	size_t nlines;
	/* Each line's text after "NNN-"/"NNN " with its enhanced code (when it
	 * has one of the reply's class) stripped, the lines joined with '\n'.
	 * A NUL or LF octet inside a line is kept as '?', so '\n' only ever
	 * separates lines and the text is one C string; every other octet is
	 * kept as sent (smtp_reply_format makes it printable). Cut at
	 * SMTP_REPLY_TEXT_MAX - 1 octets. */
	char text[SMTP_REPLY_TEXT_MAX];
	bool truncated;            /* text was cut */
};

enum smtp_reply_status {
	SMTP_REPLY_MORE = 0,
	SMTP_REPLY_DONE = 1,
	SMTP_REPLY_BAD = -1,
};

/* The reply being collected; fields are private to smtp_reply.c. */
struct smtp_reply_parser {
	struct smtp_reply cur;
	bool active;               /* at least one continuation line taken */
};

/* Makes p ready for the first line of a reply. */
void smtp_reply_parser_init(struct smtp_reply_parser *p);

/* Feeds one reply line (CRLF already stripped, len octets, may contain NUL
 * or any octet). SMTP_REPLY_MORE: a continuation line ("NNN-") was taken;
 * SMTP_REPLY_DONE: the final line ("NNN " or exactly "NNN") completed the
 * reply, copied to *out, and the parser is ready for the next reply;
 * SMTP_REPLY_BAD: malformed (not 3 digits, first digit not 2-5, separator
 * not '-' or ' ', a continuation with another code, more than
 * SMTP_REPLY_LINES_MAX lines, a line over SMTP_REPLY_LINE_MAX): the
 * connection should be dropped; the parser resets. *out is written only on
 * SMTP_REPLY_DONE. */
enum smtp_reply_status smtp_reply_parser_line(struct smtp_reply_parser *p, const char *line,
    size_t len, struct smtp_reply *out);

/* What an EHLO reply offers (RFC 5321 §4.1.1.1 keywords, case-insensitive,
 * first line is the greeting). */
struct smtp_ehlo {
	bool pipelining, starttls, eightbitmime, dsn, enhancedstatuscodes, smtputf8, etrn, chunking;
	bool size_offered;
	uint64_t size;              /* SIZE n (RFC 1870; 0 = no fixed limit) */
	unsigned auth;              /* SMTP_AUTH_* bits */
};

enum {
	SMTP_AUTH_PLAIN = 1,
	SMTP_AUTH_LOGIN = 2,
	SMTP_AUTH_CRAM_MD5 = 4,
	SMTP_AUTH_XOAUTH2 = 8,
};

/* Fills *e (cleared first) from the lines after the greeting of r: the
 * keywords above, "SIZE" with or without a number (a number that does not
 * parse counts as 0), and the mechanisms of "AUTH m1 m2" and of the old
 * "AUTH=m1 m2" form (unknown ones ignored). A reply other than 250 offers
 * nothing. */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e);

/* The reply on one line for logs, queue files and delivery reports:
 * "550 5.1.1 text; next line text". TAB becomes a space and every other
 * octet outside printable ASCII '?', so no CR, LF, control or NUL can ever
 * inject a line (or a field into a TAB-separated record). Cut to size - 1
 * and NUL-terminated when size > 0. Returns the length written. */
size_t smtp_reply_format(const struct smtp_reply *r, char *buf, size_t size);

#endif
