#include "mail/pop3_wire.h"

#include <string.h>

void
pop3_wire_init(struct pop3_wire *w, long body_lines)
{
	memset(w, 0, sizeof(*w));
	w->at_line_start = true;
	w->in_headers = true;
	w->line_empty = true;
	w->body_lines_left = body_lines;
}

size_t
pop3_wire_convert(struct pop3_wire *w, const char *p, size_t n, char *dst, bool *more_r)
{
	const char *end = p + n;
	char *o = dst;

	*more_r = true;
	while (p < end) {
		if (w->pending_cr) {
			w->pending_cr = false;
			if (*p != '\n') {
				*o++ = '\r'; /* a bare CR is content */
				w->line_empty = false;
			}
		}
		if (w->at_line_start) {
			if (!w->in_headers && w->body_lines_left == 0) {
				*more_r = false;
				break;
			}
			if (*p == '.')
				*o++ = '.';
			w->at_line_start = false;
		}
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl != NULL ? nl : end;
		size_t len = (size_t)(stop - p);
		/* A CR right before the LF (or at the chunk's end) is decided later. */
		if (len > 0 && stop[-1] == '\r') {
			len--;
			w->pending_cr = true;
		}
		if (len > 0) {
			memcpy(o, p, len);
			o += len;
			w->line_empty = false;
		}
		if (nl == NULL)
			break;
		w->pending_cr = false;
		*o++ = '\r';
		*o++ = '\n';
		if (w->in_headers && w->line_empty)
			w->in_headers = false; /* the blank line that ends the header */
		else if (!w->in_headers && w->body_lines_left > 0)
			w->body_lines_left--;
		w->at_line_start = true;
		w->line_empty = true;
		p = nl + 1;
	}
	return (size_t)(o - dst);
}

size_t
pop3_wire_finish(struct pop3_wire *w, char *dst)
{
	char *o = dst;

	/* TOP that stopped early has a pending CR only if the line is sent. */
	if (w->pending_cr) {
		*o++ = '\r';
		w->at_line_start = false;
	}
	if (!w->at_line_start) {
		*o++ = '\r';
		*o++ = '\n';
	}
	memcpy(o, ".\r\n", 3);
	o += 3;
	w->pending_cr = false;
	w->at_line_start = true;
	return (size_t)(o - dst);
}

void
pop3_size_init(struct pop3_size *s)
{
	memset(s, 0, sizeof(*s));
}

void
pop3_size_add(struct pop3_size *s, const char *p, size_t n)
{
	const char *end = p + n, *nl;
	const char *start = p;

	if (n == 0)
		return;
	s->octets += n;
	/* Every LF not after a CR becomes CRLF: one octet more. */
	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		bool cr = nl > start ? nl[-1] == '\r' : s->prev_cr;
		if (!cr)
			s->octets++;
		p = nl + 1;
	}
	s->prev_cr = end[-1] == '\r';
	s->last_lf = end[-1] == '\n';
	s->any = true;
}

uint64_t
pop3_size_result(const struct pop3_size *s)
{
	/* RETR ends an unterminated last line with CRLF. */
	return s->octets + (s->any && !s->last_lf ? 2 : 0);
}
