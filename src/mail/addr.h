/* addr.h: RFC 5321 §4.1.2 reverse-path / forward-path parsing.
 *
 * The local part is kept in its unquoted form (so "a.b"@x and a.b@x compare
 * equal), the domain as written; addr_format() re-quotes when needed.
 * Lengths follow RFC 5321 §4.5.3.1: local part 64, domain 255, path 256. */
#ifndef TEGAMI_ADDR_H
#define TEGAMI_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256

enum addr_flags {
	ADDR_ALLOW_NULL = 1 << 0,       /* "<>" accepted (MAIL FROM) */
	ADDR_ALLOW_POSTMASTER = 1 << 1, /* "<Postmaster>" without a domain (RCPT TO) */
};

struct mail_addr {
	bool null;                        /* the null reverse-path <> */
	char local[ADDR_LOCAL_MAX + 1];   /* unquoted local part */
	char domain[ADDR_DOMAIN_MAX + 1]; /* domain or [address-literal]; "" for bare Postmaster */
};

/* Parses a Path starting at s (which must point at '<'); source routes
 * ("@a,@b:") are accepted and ignored (RFC 5321 §4.1.2, Appendix C).
 * On success returns 0 and sets *end_r just past the closing '>'.
 * On failure returns -1 and sets *error_r to a static reason. */
int addr_parse_path(const char *s, unsigned flags, struct mail_addr *addr_r,
    const char **end_r, const char **error_r);

/* Parses a bare mailbox "local@domain" (no angle brackets) from a whole
 * string, as the admin command takes it. 0, or -1 with *error_r. */
int addr_parse_mailbox(const char *s, struct mail_addr *addr_r, const char **error_r);

/* Formats the address as it goes into a path: local part quoted when it is
 * not a Dot-string. Returns the length written (truncated to size - 1), or
 * "" for the null path. */
size_t addr_format(const struct mail_addr *addr, char *buf, size_t size);

/* True when the RFC 5321 Domain grammar (sub-domains of letters, digits and
 * inner hyphens, labels of at most 63 octets) accepts s. */
bool addr_domain_valid(const char *s);

/* True when every character of s is atext or '.', with no empty atoms. */
bool addr_is_dot_string(const char *s);

#endif
