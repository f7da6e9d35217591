#include "mail/dsn.h"

#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"

/* ---- NOTIFY and RET (RFC 3461 §4.1, §4.3) ---- */

static const struct {
	const char *name;
	unsigned bit;
} notify_names[] = {
	{ "SUCCESS", DSN_NOTIFY_SUCCESS },
	{ "FAILURE", DSN_NOTIFY_FAILURE },
	{ "DELAY", DSN_NOTIFY_DELAY },
	{ "NEVER", DSN_NOTIFY_NEVER },
};

static unsigned
notify_bit(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(notify_names) / sizeof(notify_names[0]); i++) {
		if (strlen(notify_names[i].name) == n && strncasecmp(s, notify_names[i].name, n) == 0)
			return notify_names[i].bit;
	}
	return 0;
}

int
dsn_notify_parse(const char *value, unsigned *notify_r)
{
	unsigned notify = 0;
	const char *p = value;

	if (value == NULL)
		return -1;
	for (;;) {
		size_t n = strcspn(p, ",");
		unsigned bit = notify_bit(p, n);
		if (bit == 0 || (notify & bit) != 0)
			return -1;
		notify |= bit;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	if ((notify & DSN_NOTIFY_NEVER) != 0 && notify != DSN_NOTIFY_NEVER)
		return -1;
	*notify_r = notify;
	return 0;
}

/* Appends s to buf[0..size), cut at size - 1; *used counts what was written. */
static void
buf_add(char *buf, size_t size, size_t *used, const char *s)
{
	size_t n = strlen(s);

	if (*used + 1 >= size)
		return;
	if (n > size - 1 - *used)
		n = size - 1 - *used;
	memcpy(buf + *used, s, n);
	*used += n;
	buf[*used] = '\0';
}

size_t
dsn_notify_format(unsigned notify, char *buf, size_t size)
{
	size_t used = 0;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	if ((notify & DSN_NOTIFY_NEVER) != 0) {
		buf_add(buf, size, &used, "NEVER");
		return used;
	}
	for (size_t i = 0; i < sizeof(notify_names) / sizeof(notify_names[0]); i++) {
		if (notify_names[i].bit == DSN_NOTIFY_NEVER || (notify & notify_names[i].bit) == 0)
			continue;
		if (used > 0)
			buf_add(buf, size, &used, ",");
		buf_add(buf, size, &used, notify_names[i].name);
	}
	return used;
}

int
dsn_ret_parse(const char *value, enum dsn_ret *ret_r)
{
	if (value != NULL && strcasecmp(value, "FULL") == 0)
		*ret_r = DSN_RET_FULL;
	else if (value != NULL && strcasecmp(value, "HDRS") == 0)
		*ret_r = DSN_RET_HDRS;
	else
		return -1;
	return 0;
}

const char *
dsn_ret_name(enum dsn_ret ret)
{
	switch (ret) {
	case DSN_RET_FULL:
		return "FULL";
	case DSN_RET_HDRS:
		return "HDRS";
	case DSN_RET_DEFAULT:
		break;
	}
	return "";
}

/* ---- xtext, ENVID, ORCPT (RFC 3461 §4) ---- */

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* xchar = any ASCII CHAR between "!" (33) and "~" (126) inclusive,
 * except for "+" and "=". */
static bool
is_xchar(unsigned char c)
{
	return c >= '!' && c <= '~' && c != '+' && c != '=';
}

/* Decodes in[0..len) into out, NUL-terminated; the decoded length in *len_r. */
static int
xtext_decode_n(const char *in, size_t len, char *out, size_t outsize, size_t *len_r)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '+') {
			if (len - i < 3)
				return -1;
			int hi = hex_value(in[i + 1]);
			int lo = hex_value(in[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (!is_xchar(c)) {
			return -1;
		}
		if (o + 1 >= outsize)
			return -1;
		out[o++] = (char)c;
	}
	if (outsize == 0)
		return -1;
	out[o] = '\0';
	*len_r = o;
	return 0;
}

int
dsn_xtext_decode(const char *in, char *out, size_t outsize)
{
	size_t n;

	return xtext_decode_n(in, strlen(in), out, outsize, &n);
}

int
dsn_xtext_encode(const char *in, char *out, size_t outsize)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		if (is_xchar(*p)) {
			if (o + 1 >= outsize)
				return -1;
			out[o++] = (char)*p;
			continue;
		}
		if (o + 3 >= outsize)
			return -1;
		out[o++] = '+';
		out[o++] = hex[*p >> 4];
		out[o++] = hex[*p & 0x0f];
	}
	if (outsize == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

int
dsn_envid_parse(const char *value, char *out, size_t outsize)
{
	char envid[DSN_ENVID_MAX + 1];
	size_t n;

	if (value == NULL || xtext_decode_n(value, strlen(value), envid, sizeof(envid), &n) < 0)
		return -1;
	if (n == 0)
		return -1;
	/* RFC 3461 §4.4: printable (graphic and white space) US-ASCII. */
	for (size_t i = 0; i < n; i++) {
		if (envid[i] < 0x20 || envid[i] > 0x7e)
			return -1;
	}
	if (n + 1 > outsize)
		return -1;
	memcpy(out, envid, n + 1);
	return 0;
}

/* RFC 5322 atext, the characters of an atom. */
static bool
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

int
dsn_orcpt_parse(const char *value, char *out, size_t outsize)
{
	char orcpt[DSN_ORCPT_MAX + 1];
	size_t vlen, tlen = 0, alen;

	if (value == NULL || (vlen = strlen(value)) > DSN_ORCPT_MAX)
		return -1;
	while (tlen < vlen && value[tlen] != ';') {
		if (!is_atext((unsigned char)value[tlen]))
			return -1;
		tlen++;
	}
	if (tlen == 0 || tlen == vlen)
		return -1;
	for (size_t i = 0; i < tlen; i++) {
		char c = value[i];
		orcpt[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	orcpt[tlen] = ';';
	if (xtext_decode_n(value + tlen + 1, vlen - tlen - 1, orcpt + tlen + 1,
	    sizeof(orcpt) - tlen - 1, &alen) < 0 || alen == 0)
		return -1;
	/* The address lands in queue files and reports: no controls, no TAB. */
	for (size_t i = tlen + 1; i < tlen + 1 + alen; i++) {
		unsigned char c = (unsigned char)orcpt[i];
		if (c < 0x20 || c == 0x7f)
			return -1;
	}
	if (tlen + 1 + alen + 1 > outsize)
		return -1;
	memcpy(out, orcpt, tlen + 1 + alen + 1);
	return 0;
}

const char *
dsn_action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_ACTION_FAILED:
		return "failed";
	case DSN_ACTION_DELAYED:
		return "delayed";
	case DSN_ACTION_DELIVERED:
		return "delivered";
	case DSN_ACTION_RELAYED:
		return "relayed";
	case DSN_ACTION_EXPANDED:
		return "expanded";
	}
	return "";
}

/* ---- The RFC 3464 report ---- */

/* Distinguishes reports written in the same second for the same message. */
static atomic_uint report_counter;

/* A caller string as it may go into a header or field: at most
 * DSN_FIELD_MAX octets, CR, LF, NUL and other controls made spaces (no
 * line can be added) and 8-bit octets '?' (the report stays ASCII). */
struct field {
	char s[DSN_FIELD_MAX + 1];
};

static const char *
field_clean(struct field *f, const char *s)
{
	size_t i = 0;

	for (; s != NULL && s[i] != '\0' && i < DSN_FIELD_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		f->s[i] = c < 0x20 || c == 0x7f ? ' ' : c > 0x7f ? '?' : (char)c;
	}
	f->s[i] = '\0';
	return f->s;
}

/* Keeps the characters of s that are safe in a Message-ID or a MIME
 * boundary (letters, digits, '.', '-' and, when dots is false, no '.'),
 * at most max of them. */
static void
token_clean(char *out, size_t max, const char *s, bool dots)
{
	size_t o = 0;

	for (; *s != '\0' && o < max; s++) {
		char c = *s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || (dots && c == '.'))
			out[o++] = c;
	}
	out[o] = '\0';
}

/* RFC 5322 §3.3 date-time in UTC, without the locale. -1 when t is out of range. */
static int
date_format(time_t t, char *buf, size_t size)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1900 || tm.tm_year + 1900 > 9999 ||
	    tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
		return -1;
	snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* RFC 3463 §2 status-code, the whole string. */
static bool
status_valid(const char *s)
{
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		size_t n = strspn(s, "0123456789");
		if (n < 1 || n > 3 || s[n] != (part == 0 ? '.' : '\0'))
			return false;
		s += n + 1;
	}
	return true;
}

static bool
date_ok(time_t t)
{
	char buf[64];

	return date_format(t, buf, sizeof(buf)) == 0;
}

/* A time that may be 0 (omitted). */
static bool
time_valid(time_t t)
{
	return t == 0 || date_ok(t);
}

static int
report_check(const struct dsn_report *r, const char **error_r)
{
	if (r->reporting_mta == NULL || r->from == NULL || r->to == NULL ||
	    r->message_id_domain == NULL || r->qid == NULL) {
		*error_r = "a required report field is missing";
		return -1;
	}
	if (r->to[0] == '\0' || strcmp(r->to, "<>") == 0) {
		*error_r = "no report to the null sender";
		return -1;
	}
	if (r->rcpts == NULL || r->nrcpt == 0) {
		*error_r = "no recipients to report";
		return -1;
	}
	if (!date_ok(r->now) || !time_valid(r->arrival)) {
		*error_r = "date out of range";
		return -1;
	}
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];
		if (rc->final_rcpt == NULL || dsn_action_name(rc->action)[0] == '\0') {
			*error_r = "recipient without address or with an unknown action";
			return -1;
		}
		if (!status_valid(rc->status)) {
			*error_r = "recipient status is not class.subject.detail";
			return -1;
		}
		if (!time_valid(rc->last_attempt) || !time_valid(rc->will_retry_until)) {
			*error_r = "date out of range";
			return -1;
		}
	}
	return 0;
}

enum report_kind { REPORT_FAILED, REPORT_DELAYED, REPORT_SUCCESS, REPORT_MIXED };

static enum report_kind
report_kind(const struct dsn_report *r)
{
	bool failed = false, delayed = false, success = false;

	for (size_t i = 0; i < r->nrcpt; i++) {
		switch (r->rcpts[i].action) {
		case DSN_ACTION_FAILED:
			failed = true;
			break;
		case DSN_ACTION_DELAYED:
			delayed = true;
			break;
		case DSN_ACTION_DELIVERED:
		case DSN_ACTION_RELAYED:
		case DSN_ACTION_EXPANDED:
			success = true;
			break;
		}
	}
	if (failed)
		return REPORT_FAILED;
	if (delayed && !success)
		return REPORT_DELAYED;
	return success && !delayed ? REPORT_SUCCESS : REPORT_MIXED;
}

static const char *
report_subject(enum report_kind kind)
{
	switch (kind) {
	case REPORT_FAILED:
		return "Undelivered Mail Returned to Sender";
	case REPORT_DELAYED:
		return "Delayed Mail (still being retried)";
	case REPORT_SUCCESS:
		return "Successful Mail Delivery Report";
	case REPORT_MIXED:
		break;
	}
	return "Mail Delivery Status Report";
}

/* The text after "type;" of a diagnostic, or all of it. */
static const char *
diagnostic_text(const char *d)
{
	size_t n = strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");

	if (n == 0 || d[n] != ';')
		return d;
	d += n + 1;
	while (*d == ' ')
		d++;
	return d;
}

static void
human_rcpt(const struct dsn_rcpt *rc, struct evbuffer *b)
{
	struct field f;
	char date[64];

	/* Every line with caller text starts with fixed text, so none can
	 * look like a boundary line. */
	evbuffer_add_printf(b, "<%s>: ", field_clean(&f, rc->final_rcpt));
	switch (rc->action) {
	case DSN_ACTION_FAILED:
		evbuffer_add_printf(b, "delivery failed; the message was not delivered.\n");
		break;
	case DSN_ACTION_DELAYED:
		if (rc->will_retry_until != 0 && date_format(rc->will_retry_until, date, sizeof(date)) == 0)
			evbuffer_add_printf(b, "delivery delayed; retried until %s.\n", date);
		else
			evbuffer_add_printf(b, "delivery delayed; still being retried.\n");
		break;
	case DSN_ACTION_DELIVERED:
		evbuffer_add_printf(b, "delivered.\n");
		break;
	case DSN_ACTION_RELAYED:
		evbuffer_add_printf(b, "relayed to a server that sends no delivery reports.\n");
		break;
	case DSN_ACTION_EXPANDED:
		evbuffer_add_printf(b, "delivered to an alias or list, and expanded.\n");
		break;
	}
	if (rc->remote_mta != NULL)
		evbuffer_add_printf(b, "    Remote host: %s\n", field_clean(&f, rc->remote_mta));
	if (rc->diagnostic != NULL)
		evbuffer_add_printf(b, "    Reason: %s\n", field_clean(&f, diagnostic_text(rc->diagnostic)));
}

static void
write_human(const struct dsn_report *r, enum report_kind kind, bool with_orig,
    struct evbuffer *b)
{
	struct field f;
	const char *attached = !with_orig ? "" : r->ret == DSN_RET_HDRS ?
	    "\nThe header of your message is attached below.\n" :
	    "\nYour message is attached below.\n";

	evbuffer_add_printf(b, "This is the mail system at host %s.\n\n",
	    field_clean(&f, r->reporting_mta));
	switch (kind) {
	case REPORT_FAILED:
		evbuffer_add_printf(b, "I am sorry: your message could not be delivered to one or\n"
		    "more recipients. Nothing more will be tried for them.\n%s", attached);
		break;
	case REPORT_DELAYED:
		evbuffer_add_printf(b, "Your message could not be delivered yet to one or more\n"
		    "recipients. Delivery is still being retried: you need not send it\n"
		    "again. You will be told if it finally fails.\n");
		break;
	case REPORT_SUCCESS:
		evbuffer_add_printf(b, "Your message was delivered to the recipients listed below, as\n"
		    "you asked. A recipient \"relayed\" was handed to a server that does\n"
		    "not report delivery: you may hear no more about it.\n");
		break;
	case REPORT_MIXED:
		evbuffer_add_printf(b, "This is the state of your message for the recipients listed\n"
		    "below, as you asked.\n");
		break;
	}
	evbuffer_add_printf(b, "\nFor help, write to the postmaster of this system and include\n"
	    "this report.\n\n");
	for (size_t i = 0; i < r->nrcpt; i++) {
		human_rcpt(&r->rcpts[i], b);
		evbuffer_add_printf(b, "\n");
	}
}

/* One per-recipient group of the message/delivery-status part (RFC 3464 §2.3). */
static void
status_rcpt(const struct dsn_rcpt *rc, struct evbuffer *b)
{
	struct field f;
	char date[64];

	evbuffer_add_printf(b, "\n");
	if (rc->orcpt != NULL) {
		const char *o = field_clean(&f, rc->orcpt);
		evbuffer_add_printf(b, "Original-Recipient: %s%s\n", strchr(o, ';') ? "" : "rfc822;", o);
	}
	evbuffer_add_printf(b, "Final-Recipient: rfc822; %s\n", field_clean(&f, rc->final_rcpt));
	evbuffer_add_printf(b, "Action: %s\n", dsn_action_name(rc->action));
	evbuffer_add_printf(b, "Status: %s\n", rc->status);
	if (rc->remote_mta != NULL)
		evbuffer_add_printf(b, "Remote-MTA: dns; %s\n", field_clean(&f, rc->remote_mta));
	if (rc->diagnostic != NULL) {
		/* diagnostic-type ";" text; our own text is typed X-Tegami. */
		const char *d = field_clean(&f, rc->diagnostic);
		evbuffer_add_printf(b, "Diagnostic-Code: %s%s\n", diagnostic_text(d) == d ?
		    "X-Tegami; " : "", d);
	}
	if (rc->last_attempt != 0 && date_format(rc->last_attempt, date, sizeof(date)) == 0)
		evbuffer_add_printf(b, "Last-Attempt-Date: %s\n", date);
	if (rc->action == DSN_ACTION_DELAYED && rc->will_retry_until != 0 &&
	    date_format(rc->will_retry_until, date, sizeof(date)) == 0)
		evbuffer_add_printf(b, "Will-Retry-Until: %s\n", date);
}

static void
write_status(const struct dsn_report *r, struct evbuffer *b)
{
	struct field f;
	char date[64];

	evbuffer_add_printf(b, "Reporting-MTA: dns; %s\n", field_clean(&f, r->reporting_mta));
	if (r->envid != NULL)
		evbuffer_add_printf(b, "Original-Envelope-Id: %s\n", field_clean(&f, r->envid));
	evbuffer_add_printf(b, "X-Tegami-Queue-ID: %s\n", field_clean(&f, r->qid));
	if (r->arrival != 0 && date_format(r->arrival, date, sizeof(date)) == 0)
		evbuffer_add_printf(b, "Arrival-Date: %s\n", date);
	for (size_t i = 0; i < r->nrcpt; i++)
		status_rcpt(&r->rcpts[i], b);
}

/* Octets of orig that go into the report: all of it, or for RET=HDRS its
 * header block up to and including the LF of the last header line. */
static size_t
orig_returned_len(const struct dsn_report *r, struct evbuffer *orig)
{
	size_t len = evbuffer_get_length(orig);

	if (r->ret != DSN_RET_HDRS)
		return len;
	if (len > 0 && evbuffer_search(orig, "\n", 1, NULL).pos == 0)
		return 0; /* starts with the blank line: no header */
	struct evbuffer_ptr end = evbuffer_search(orig, "\n\n", 2, NULL);
	return end.pos < 0 ? len : (size_t)end.pos + 1;
}

/* Does any of the first len octets of orig have the high bit set? */
static bool
orig_8bit(struct evbuffer *orig, size_t len)
{
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v;

	if (len == 0 || evbuffer_ptr_set(orig, &pos, 0, EVBUFFER_PTR_SET) < 0)
		return false;
	while (len > 0 && evbuffer_peek(orig, (ev_ssize_t)len, &pos, &v, 1) >= 1 && v.iov_len > 0) {
		size_t n = v.iov_len < len ? v.iov_len : len;
		const unsigned char *p = v.iov_base;
		for (size_t i = 0; i < n; i++) {
			if (p[i] >= 0x80)
				return true;
		}
		len -= n;
		if (evbuffer_ptr_set(orig, &pos, n, EVBUFFER_PTR_ADD) < 0)
			break;
	}
	return false;
}

/* Appends the first len octets of orig to b, orig untouched. */
static void
orig_copy(struct evbuffer *orig, size_t len, struct evbuffer *b)
{
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v;

	if (len == 0 || evbuffer_ptr_set(orig, &pos, 0, EVBUFFER_PTR_SET) < 0)
		return;
	while (len > 0 && evbuffer_peek(orig, (ev_ssize_t)len, &pos, &v, 1) >= 1 && v.iov_len > 0) {
		size_t n = v.iov_len < len ? v.iov_len : len;
		if (evbuffer_add(b, v.iov_base, n) < 0)
			fatal("evbuffer_add");
		len -= n;
		if (evbuffer_ptr_set(orig, &pos, n, EVBUFFER_PTR_ADD) < 0)
			break;
	}
}

static bool
buffer_has(struct evbuffer *b, const char *s)
{
	return b != NULL && evbuffer_search(b, s, strlen(s), NULL).pos >= 0;
}

/* A boundary (RFC 2046 §5.1.1: at most 70 bchars) that occurs in none of
 * the parts: "tegami-QID-N", N counting up from 0. */
static void
boundary_choose(const struct dsn_report *r, struct evbuffer *human, struct evbuffer *status,
    struct evbuffer *orig, char *buf, size_t size)
{
	char qid[41];

	token_clean(qid, sizeof(qid) - 1, r->qid, false);
	for (unsigned n = 0;; n++) {
		snprintf(buf, size, "tegami-%s-%u", qid, n);
		if (!buffer_has(human, buf) && !buffer_has(status, buf) && !buffer_has(orig, buf))
			return;
	}
}

static void
write_header(const struct dsn_report *r, enum report_kind kind, const char *boundary,
    bool eightbit, struct evbuffer *b)
{
	struct field f;
	char date[64], qid[41], domain[256];

	(void)date_format(r->now, date, sizeof(date)); /* checked by report_check */
	token_clean(qid, sizeof(qid) - 1, r->qid, true);
	token_clean(domain, sizeof(domain) - 1, r->message_id_domain, true);
	evbuffer_add_printf(b, "From: Mail Delivery System <%s>\n", field_clean(&f, r->from));
	evbuffer_add_printf(b, "To: <%s>\n", field_clean(&f, r->to));
	evbuffer_add_printf(b, "Subject: %s\n", report_subject(kind));
	evbuffer_add_printf(b, "Date: %s\n", date);
	evbuffer_add_printf(b, "Message-ID: <%s.%lld.%u@%s>\n", qid[0] != '\0' ? qid : "report",
	    (long long)r->now, atomic_fetch_add(&report_counter, 1u),
	    domain[0] != '\0' ? domain : "localhost.invalid");
	evbuffer_add_printf(b, "MIME-Version: 1.0\n");
	evbuffer_add_printf(b, "Content-Type: multipart/report; report-type=delivery-status;\n"
	    "\tboundary=\"%s\"\n", boundary);
	if (eightbit)
		evbuffer_add_printf(b, "Content-Transfer-Encoding: 8bit\n");
	evbuffer_add_printf(b, "Auto-Submitted: auto-replied\n\n");
	evbuffer_add_printf(b, "This is a MIME-encapsulated message.\n\n");
}

static struct evbuffer *
xevbuffer_new(void)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		fatal("evbuffer_new");
	return b;
}

int
dsn_report_write(const struct dsn_report *r, struct evbuffer *orig, struct evbuffer *out,
    const char **error_r)
{
	if (report_check(r, error_r) < 0)
		return -1;
	enum report_kind kind = report_kind(r);
	struct evbuffer *human = xevbuffer_new(), *status = xevbuffer_new();
	struct evbuffer *msg = xevbuffer_new();
	size_t olen = orig != NULL ? orig_returned_len(r, orig) : 0;
	bool eightbit = orig != NULL && orig_8bit(orig, olen);
	char boundary[128];

	write_human(r, kind, orig != NULL, human);
	write_status(r, status);
	boundary_choose(r, human, status, orig, boundary, sizeof(boundary));
	write_header(r, kind, boundary, eightbit, msg);
	/* The LF before each "--boundary" belongs to the delimiter (RFC 2046
	 * §5.1.1): the parts are exactly what was written above. */
	evbuffer_add_printf(msg, "--%s\nContent-Description: Notification\n"
	    "Content-Type: text/plain; charset=us-ascii\n\n", boundary);
	evbuffer_add_buffer(msg, human);
	evbuffer_add_printf(msg, "\n--%s\nContent-Description: Delivery report\n"
	    "Content-Type: message/delivery-status\n\n", boundary);
	evbuffer_add_buffer(msg, status);
	if (orig != NULL) {
		bool hdrs = r->ret == DSN_RET_HDRS;
		evbuffer_add_printf(msg, "\n--%s\nContent-Description: %s\nContent-Type: %s\n%s\n",
		    boundary, hdrs ? "Message headers" : "Message", hdrs ?
		    "text/rfc822-headers" : "message/rfc822",
		    eightbit ? "Content-Transfer-Encoding: 8bit\n" : "");
		orig_copy(orig, olen, msg);
	}
	evbuffer_add_printf(msg, "\n--%s--\n", boundary);
	evbuffer_add_buffer(out, msg);
	evbuffer_free(human);
	evbuffer_free(status);
	evbuffer_free(msg);
	return 0;
}
