/* rfc5322.h: message-format helpers (RFC 5322 date-time). */
#ifndef TEGAMI_RFC5322_H
#define TEGAMI_RFC5322_H

#include <stddef.h>
#include <time.h>

#define RFC5322_DATE_MAX 40

/* Formats t as an RFC 5322 §3.3 date-time in UTC ("Thu, 26 Nov 2026 00:29:52
 * +0000"). buf must hold RFC5322_DATE_MAX bytes. Returns buf. */
char *rfc5322_date(time_t t, char *buf);

#endif
