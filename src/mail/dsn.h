/* dsn.h: delivery status notifications: the RFC 3461 parameters of MAIL and
 * RCPT (NOTIFY, RET, ENVID, ORCPT and their xtext encoding) and the RFC 3464
 * delivery report the queue sends back to a sender (MISSION O2, O3).
 *
 * What the parsers return never holds a control character (nor TAB), so it
 * can go as is into a line- or TAB-separated queue file. The report writer
 * sanitises every caller string it writes, so text from a client or a remote
 * server can never add a line, a header or a MIME part to a report. No I/O
 * here: the report is written into an evbuffer. */
#ifndef TEGAMI_DSN_H
#define TEGAMI_DSN_H

#include <stddef.h>
#include <time.h>

struct evbuffer;

#define DSN_ENVID_MAX 100   /* decoded octets of ENVID (RFC 3461 §4.4) */
#define DSN_ORCPT_MAX 500   /* octets of ORCPT, as sent and as decoded (RFC 3461 §4.2) */
#define DSN_FIELD_MAX 900   /* a caller string in a report header or field is cut here */

enum {
	DSN_NOTIFY_NEVER = 1,
	DSN_NOTIFY_SUCCESS = 2,
	DSN_NOTIFY_FAILURE = 4,
	DSN_NOTIFY_DELAY = 8,
};

/* NOTIFY= value (RFC 3461 §4.1): "NEVER" alone or a comma list of SUCCESS,
 * FAILURE, DELAY (case-insensitive, no duplicates, no empty item, NEVER
 * never combined). 0 with *notify_r, or -1. */
int dsn_notify_parse(const char *value, unsigned *notify_r);

/* "SUCCESS,FAILURE,DELAY" (the bits present, in that order) / "NEVER" when
 * the NEVER bit is set / "" for 0, into buf (cut to size - 1, NUL-terminated
 * when size > 0). Returns the length written. */
size_t dsn_notify_format(unsigned notify, char *buf, size_t size);

enum dsn_ret {
	DSN_RET_DEFAULT = 0,
	DSN_RET_FULL,
	DSN_RET_HDRS,
};

/* RET= value (RFC 3461 §4.3): FULL or HDRS, case-insensitive. 0 or -1. */
int dsn_ret_parse(const char *value, enum dsn_ret *ret_r);

/* "FULL", "HDRS", or "" for DSN_RET_DEFAULT. Static string. */
const char *dsn_ret_name(enum dsn_ret ret);

/* RFC 3461 §4 xtext: "+HH" for octets outside '!'..'~' and for '+' and '='.
 * decode: in to a NUL-terminated string in out; -1 on a bad "+" escape
 * (not two hex digits; lower-case digits are accepted), "+00" (a NUL cannot
 * be returned), an octet outside xchar, or when out (outsize) is too small.
 * encode: -1 when out is too small. Both return 0 on success. */
int dsn_xtext_decode(const char *in, char *out, size_t outsize);
int dsn_xtext_encode(const char *in, char *out, size_t outsize);

/* ENVID= value: xtext of 1 to DSN_ENVID_MAX decoded octets, all printable
 * ASCII (RFC 3461 §4.4), decoded into out. 0 or -1. */
int dsn_envid_parse(const char *value, char *out, size_t outsize);

/* ORCPT= value "addr-type;xtext" (RFC 3461 §4.2): addr-type an atom (e.g.
 * rfc822), the address non-empty, decoded, no control octets. out gets
 * "addr-type;decoded-address" with the type lower-cased; the value and
 * the result are at most DSN_ORCPT_MAX octets. 0 or -1. */
int dsn_orcpt_parse(const char *value, char *out, size_t outsize);

enum dsn_action {
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,
	DSN_ACTION_EXPANDED,
};

/* "failed", "delayed", "delivered", "relayed", "expanded" (RFC 3464
 * §2.3.3); "" for a value outside the enum. Static string. */
const char *dsn_action_name(enum dsn_action a);

struct dsn_rcpt {
	const char *final_rcpt;     /* the address as we tried it (written "rfc822; addr") */
	const char *orcpt;          /* "rfc822;addr" from ORCPT, or NULL (written as Original-Recipient) */
	enum dsn_action action;
	const char *status;         /* "5.1.1", "4.4.1", "2.0.0" (RFC 3463 class.subject.detail) */
	const char *remote_mta;     /* host name of the next hop, or NULL ("dns; name") */
	/* The remote reply ("smtp; 550 5.1.1 …") or our own text, or NULL; text
	 * without a "type;" in front is written as "X-Tegami; text". */
	const char *diagnostic;
	time_t last_attempt;        /* 0: omitted */
	time_t will_retry_until;    /* delayed only; 0: omitted */
};

struct dsn_report {
	const char *reporting_mta;  /* our host name ("dns; name") */
	const char *from;           /* header From: address, e.g. "MAILER-DAEMON@host" */
	const char *to;             /* header To: the original sender (never "": no report to <>) */
	const char *message_id_domain; /* for Message-ID */
	/* The original's queue id: the "X-Tegami-Queue-ID" per-message field,
	 * and part of the MIME boundary and of the Message-ID. */
	const char *qid;
	const char *envid;          /* Original-Envelope-Id, or NULL */
	time_t arrival;             /* Arrival-Date; 0: omitted */
	time_t now;                 /* Date: of the report */
	enum dsn_ret ret;           /* DSN_RET_HDRS: only the original's header block is returned */
	const struct dsn_rcpt *rcpts;
	size_t nrcpt;
};

/* Appends to out a whole RFC 3464 report message with LF line endings (the
 * spool stores LF): the RFC 5322 header block (From, To, Subject, Date,
 * Message-ID, MIME-Version, Content-Type, Auto-Submitted: auto-replied per
 * RFC 3834) and a multipart/report; report-type=delivery-status body of
 *   1. text/plain: per recipient, what happened, in words; the subject
 *      follows the mix of actions: any failed → "Undelivered Mail Returned
 *      to Sender", only delayed → "Delayed Mail (still being retried)", only
 *      delivered/relayed/expanded → "Successful Mail Delivery Report", any
 *      other mix → "Mail Delivery Status Report";
 *   2. message/delivery-status: Reporting-MTA, Original-Envelope-Id,
 *      X-Tegami-Queue-ID, Arrival-Date, then per recipient a group of
 *      Original-Recipient, Final-Recipient, Action, Status, Remote-MTA,
 *      Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until (those set);
 *   3. the original from orig (LF endings, read without draining): as
 *      message/rfc822, or its header block as text/rfc822-headers when ret
 *      is DSN_RET_HDRS; left out when orig is NULL.
 * Caller strings in headers and fields are cut at DSN_FIELD_MAX octets with
 * CR, LF, NUL and other controls made spaces and 8-bit octets '?'. The
 * boundary (from qid and a counter) occurs neither in the original nor in
 * the first two parts. The report is 7-bit unless the returned original has
 * 8-bit octets; it then says "Content-Transfer-Encoding: 8bit" and needs
 * BODY=8BITMIME to be relayed as is.
 * Returns 0, or -1 with *error_r (static) on bad input (no recipients, a
 * NULL required field, an empty To, a status that is not d.d.d, an action
 * outside the enum); out is then left as it was. */
int dsn_report_write(const struct dsn_report *r, struct evbuffer *orig, struct evbuffer *out,
    const char **error_r);

#endif
