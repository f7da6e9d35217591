#include "mail/addr.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "lib/strutil.h"

/* RFC 5322 atext. */
static bool
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
is_letdig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Scans a Domain at s; returns the number of octets it spans (0 if none). */
static size_t
scan_domain(const char *s)
{
	const char *p = s;

	for (;;) {
		const char *label = p;
		if (!is_letdig((unsigned char)*p))
			return 0;
		while (is_letdig((unsigned char)*p) || *p == '-')
			p++;
		if (p[-1] == '-' || p - label > 63)
			return 0;
		if (*p != '.' || !is_letdig((unsigned char)p[1]))
			break;
		p++;
	}
	return (size_t)(p - s);
}

bool
addr_domain_valid(const char *s)
{
	size_t n = scan_domain(s);

	return n > 0 && s[n] == '\0' && n <= ADDR_DOMAIN_MAX;
}

bool
addr_is_dot_string(const char *s)
{
	bool atom_start = true;

	if (*s == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (atom_start)
				return false;
			atom_start = true;
			continue;
		}
		if (!is_atext((unsigned char)*p))
			return false;
		atom_start = false;
	}
	return !atom_start;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]"; the General form is
 * refused since nothing could route to it. Returns octets spanned or 0. */
static size_t
scan_address_literal(const char *s)
{
	char tmp[64];
	unsigned char bin[16];
	const char *close = strchr(s, ']');

	if (*s != '[' || close == NULL)
		return 0;
	size_t inner = (size_t)(close - s - 1);
	if (inner == 0 || inner >= sizeof(tmp))
		return 0;
	memcpy(tmp, s + 1, inner);
	tmp[inner] = '\0';
	if (strncasecmp(tmp, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, tmp + 5, bin) != 1)
			return 0;
	} else if (inet_pton(AF_INET, tmp, bin) != 1) {
		return 0;
	}
	return inner + 2;
}

/* Local-part = Dot-string / Quoted-string. Writes the unquoted form into
 * out (ADDR_LOCAL_MAX + 1 bytes). Returns octets spanned, 0 on error. */
static size_t
scan_local_part(const char *s, char *out, const char **error_r)
{
	size_t o = 0;
	const char *p = s;

	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '\\') {
				c = (unsigned char)*++p;
				if (c < 32 || c > 126) {
					*error_r = "bad quoted-pair in local part";
					return 0;
				}
			} else if (c < 32 || c > 126) {
				*error_r = "bad character in quoted local part";
				return 0;
			}
			if (o >= ADDR_LOCAL_MAX) {
				*error_r = "local part too long";
				return 0;
			}
			out[o++] = (char)c;
		}
		p++;
		if (o == 0) {
			*error_r = "empty local part";
			return 0;
		}
	} else {
		while (is_atext((unsigned char)*p) || *p == '.') {
			if (o >= ADDR_LOCAL_MAX) {
				*error_r = "local part too long";
				return 0;
			}
			out[o++] = *p++;
		}
		out[o] = '\0';
		if (!addr_is_dot_string(out)) {
			*error_r = o == 0 ? "empty local part" : "bad local part";
			return 0;
		}
	}
	out[o] = '\0';
	return (size_t)(p - s);
}

/* Mailbox = Local-part "@" ( Domain / address-literal ). */
static size_t
scan_mailbox(const char *s, struct mail_addr *addr, const char **error_r)
{
	size_t n = scan_local_part(s, addr->local, error_r);

	if (n == 0)
		return 0;
	const char *p = s + n;
	if (*p != '@') {
		*error_r = "missing @domain";
		return 0;
	}
	p++;
	size_t d = *p == '[' ? scan_address_literal(p) : scan_domain(p);
	if (d == 0) {
		*error_r = "bad domain";
		return 0;
	}
	if (d > ADDR_DOMAIN_MAX) {
		*error_r = "domain too long";
		return 0;
	}
	memcpy(addr->domain, p, d);
	addr->domain[d] = '\0';
	return (size_t)(p + d - s);
}

/* A-d-l = At-domain *( "," At-domain ) ":" — skipped, RFC 5321 Appendix C. */
static const char *
skip_source_route(const char *p, const char **error_r)
{
	if (*p != '@')
		return p;
	for (;;) {
		size_t d = scan_domain(p + 1);
		if (d == 0) {
			*error_r = "bad source route";
			return NULL;
		}
		p += 1 + d;
		if (*p == ':')
			return p + 1;
		if (*p != ',' || p[1] != '@') {
			*error_r = "bad source route";
			return NULL;
		}
		p++;
	}
}

int
addr_parse_path(const char *s, unsigned flags, struct mail_addr *addr_r,
    const char **end_r, const char **error_r)
{
	const char *p = s;

	memset(addr_r, 0, sizeof(*addr_r));
	if (*p != '<') {
		*error_r = "address must be in angle brackets";
		return -1;
	}
	p++;
	if (*p == '>') {
		if ((flags & ADDR_ALLOW_NULL) == 0) {
			*error_r = "null address not allowed here";
			return -1;
		}
		addr_r->null = true;
		*end_r = p + 1;
		return 0;
	}
	if ((flags & ADDR_ALLOW_POSTMASTER) != 0 && strncasecmp(p, "postmaster>", 11) == 0) {
		str_copy(addr_r->local, "postmaster", sizeof(addr_r->local));
		*end_r = p + 11;
		return 0;
	}
	p = skip_source_route(p, error_r);
	if (p == NULL)
		return -1;
	size_t n = scan_mailbox(p, addr_r, error_r);
	if (n == 0)
		return -1;
	p += n;
	if (*p != '>') {
		*error_r = "junk after address";
		return -1;
	}
	p++;
	if ((size_t)(p - s) > ADDR_PATH_MAX) { /* RFC 5321 §4.5.3.1.3, brackets included */
		*error_r = "path too long";
		return -1;
	}
	*end_r = p;
	return 0;
}

int
addr_parse_mailbox(const char *s, struct mail_addr *addr_r, const char **error_r)
{
	memset(addr_r, 0, sizeof(*addr_r));
	size_t n = scan_mailbox(s, addr_r, error_r);
	if (n == 0)
		return -1;
	if (s[n] != '\0') {
		*error_r = "junk after address";
		return -1;
	}
	return 0;
}

size_t
addr_format(const struct mail_addr *addr, char *buf, size_t size)
{
	size_t o = 0;

#define PUT(c) do { if (o + 1 < size) buf[o++] = (c); } while (0)
	if (size == 0)
		return 0;
	if (!addr->null) {
		bool quote = !addr_is_dot_string(addr->local);
		if (quote)
			PUT('"');
		for (const char *p = addr->local; *p != '\0'; p++) {
			if (quote && (*p == '"' || *p == '\\'))
				PUT('\\');
			PUT(*p);
		}
		if (quote)
			PUT('"');
		if (addr->domain[0] != '\0') {
			PUT('@');
			for (const char *p = addr->domain; *p != '\0'; p++)
				PUT(*p);
		}
	}
#undef PUT
	buf[o] = '\0';
	return o;
}
