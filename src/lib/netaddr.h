/* netaddr.h: listen-address lists ("127.0.0.1:2525,[::1]:2525,*:25"). */
#ifndef TEGAMI_NETADDR_H
#define TEGAMI_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define NETADDR_LISTEN_MAX 16

struct netaddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Parses a comma-separated list; "*:PORT" yields 0.0.0.0 and [::] (the IPv6
 * socket is made v6-only by the caller). An empty string is an empty list.
 * Returns the number of addresses written to out (at most max), or -1 with a
 * static reason in *error_r. */
int netaddr_parse_listen(const char *spec, struct netaddr *out, size_t max,
    const char **error_r);

/* Same checks without the output. 0 or -1 with *error_r. */
int netaddr_listen_validate(const char *spec, const char **error_r);

/* "ADDR:PORT" / "[ADDR]:PORT" text for logs. buf of at least 64 bytes. */
const char *netaddr_format(const struct sockaddr *sa, char *buf, size_t size);

/* True when the numeric address ip is inside cidr ("10.0.0.0/8",
 * "2001:db8::/32", or a single address). False on any parse error. */
bool netaddr_ip_in_cidr(const char *ip, const char *cidr);

/* True when ip is in one of the comma-separated ranges of list. */
bool netaddr_ip_in_cidr_list(const char *ip, const char *list);

/* True when s is a valid address or CIDR range as netaddr_ip_in_cidr takes. */
bool netaddr_cidr_valid(const char *s);

/* "HOST", "HOST:PORT", "[IP]" or "[IP]:PORT" (HOST a DNS name or an IPv4
 * address; an IPv6 address needs the brackets). Writes the host (without
 * brackets) into host and the port, or default_port when none is given.
 * 0, or -1 with *error_r. No DNS here: names are checked for shape only. */
int netaddr_hostport_parse(const char *s, char *host, size_t hostsize, unsigned default_port,
    unsigned *port_r, const char **error_r);

/* True when s is a numeric IPv4 or IPv6 address. */
bool netaddr_is_ip(const char *s);

/* Fills sa from a numeric IP and a port. 0 or -1 (not an IP). */
int netaddr_from_ip(const char *ip, unsigned port, struct netaddr *out);

/* The numeric IP of sa, without port, into buf (INET6_ADDRSTRLEN). */
const char *netaddr_ip(const struct sockaddr *sa, char *buf, size_t size);

#endif
