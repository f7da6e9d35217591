#include "lib/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/strutil.h"

static int
parse_port(const char *s, in_port_t *port_r)
{
	uint64_t v;

	if (str_parse_u64(s, &v) < 0 || v == 0 || v > 65535)
		return -1;
	*port_r = htons((uint16_t)v);
	return 0;
}

/* One item: "A.B.C.D:PORT", "[v6]:PORT" or "*:PORT". Returns the number of
 * addresses it stands for (1 or 2), or -1. */
static int
parse_item(const char *item, struct netaddr out[2], const char **error_r)
{
	char host[64];
	const char *colon;
	in_port_t port;

	if (item[0] == '[') {
		const char *close = strchr(item, ']');
		if (close == NULL || close[1] != ':' || (size_t)(close - item - 1) >= sizeof(host)) {
			*error_r = "bad [IPv6]:PORT listen address";
			return -1;
		}
		memcpy(host, item + 1, (size_t)(close - item - 1));
		host[close - item - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(item, ':');
		if (colon == NULL || (size_t)(colon - item) >= sizeof(host)) {
			*error_r = "listen address needs ADDR:PORT";
			return -1;
		}
		memcpy(host, item, (size_t)(colon - item));
		host[colon - item] = '\0';
	}
	if (parse_port(colon + 1, &port) < 0) {
		*error_r = "bad port (1-65535)";
		return -1;
	}
	memset(out, 0, 2 * sizeof(*out));
	struct sockaddr_in *sin = (struct sockaddr_in *)&out[0].ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out[item[0] == '[' ? 0 : 1].ss;
	if (strcmp(host, "*") == 0 && item[0] != '[') {
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		out[0].len = sizeof(*sin);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = port;
		sin6->sin6_addr = in6addr_any;
		out[1].len = sizeof(*sin6);
		return 2;
	}
	if (item[0] == '[') {
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*error_r = "bad IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = port;
		out[0].len = sizeof(*sin6);
		return 1;
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		*error_r = "bad IPv4 address (write IPv6 as [ADDR]:PORT)";
		return -1;
	}
	sin->sin_family = AF_INET;
	sin->sin_port = port;
	out[0].len = sizeof(*sin);
	return 1;
}

int
netaddr_parse_listen(const char *spec, struct netaddr *out, size_t max, const char **error_r)
{
	char item[128];
	size_t n = 0;
	const char *p = spec;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, ",");
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0 || len >= sizeof(item)) {
			*error_r = len == 0 ? "empty item in listen list" : "listen address too long";
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		struct netaddr two[2];
		int k = parse_item(item, two, error_r);
		if (k < 0)
			return -1;
		if (n + (size_t)k > max) {
			*error_r = "too many listen addresses";
			return -1;
		}
		memcpy(&out[n], two, (size_t)k * sizeof(two[0]));
		n += (size_t)k;
		p += strcspn(p, ",");
		if (*p == ',') {
			p++;
			if (*p == '\0') {
				*error_r = "empty item in listen list";
				return -1;
			}
		}
	}
	return (int)n;
}

int
netaddr_listen_validate(const char *spec, const char **error_r)
{
	struct netaddr tmp[NETADDR_LISTEN_MAX];

	return netaddr_parse_listen(spec, tmp, NETADDR_LISTEN_MAX, error_r) < 0 ? -1 : 0;
}

const char *
netaddr_ip(const struct sockaddr *sa, char *buf, size_t size)
{
	const void *a = sa->sa_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, a, buf, (socklen_t)size) == NULL)
		str_copy(buf, "unknown", size);
	/* An IPv4 client on a dual-stack socket: show it as IPv4. */
	if (strncmp(buf, "::ffff:", 7) == 0 && strchr(buf + 7, '.') != NULL)
		memmove(buf, buf + 7, strlen(buf + 7) + 1);
	return buf;
}

const char *
netaddr_format(const struct sockaddr *sa, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port = sa->sa_family == AF_INET6 ?
	    ntohs(((const struct sockaddr_in6 *)sa)->sin6_port) :
	    ntohs(((const struct sockaddr_in *)sa)->sin_port);

	netaddr_ip(sa, ip, sizeof(ip));
	snprintf(buf, size, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
	return buf;
}

/* Parses "ADDR[/BITS]" into family, 16 address bytes and a prefix length. */
static int
cidr_parse(const char *s, int *family, unsigned char *addr, unsigned *bits)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	uint64_t b;

	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, host, addr) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, host, addr) == 1)
		*family = AF_INET6;
	else
		return -1;
	unsigned max = *family == AF_INET ? 32 : 128;
	if (slash == NULL)
		b = max;
	else if (str_parse_u64(slash + 1, &b) < 0 || b > max)
		return -1;
	*bits = (unsigned)b;
	return 0;
}

bool
netaddr_cidr_valid(const char *s)
{
	int family;
	unsigned char addr[16];
	unsigned bits;

	return cidr_parse(s, &family, addr, &bits) == 0;
}

bool
netaddr_ip_in_cidr(const char *ip, const char *cidr)
{
	int fa, fc;
	unsigned char a[16], c[16];
	unsigned bits, abits;

	if (cidr_parse(ip, &fa, a, &abits) < 0 || cidr_parse(cidr, &fc, c, &bits) < 0 || fa != fc)
		return false;
	for (unsigned i = 0; i < bits; i++) {
		unsigned byte = i / 8, mask = 0x80u >> (i % 8);
		if ((a[byte] & mask) != (c[byte] & mask))
			return false;
	}
	return true;
}

bool
netaddr_ip_in_cidr_list(const char *ip, const char *list)
{
	char item[128];

	for (const char *p = list; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n > 0 && n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			if (netaddr_ip_in_cidr(ip, item))
				return true;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

bool
netaddr_is_ip(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

int
netaddr_from_ip(const char *ip, unsigned port, struct netaddr *out)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/* A DNS name as RFC 1123 allows it: labels of letters, digits and inner
 * hyphens, at most 63 octets each, 253 in all; a trailing dot is not
 * accepted (names here are always absolute). */
static bool
hostname_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && !(c == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return s[len - 1] != '-' && s[len - 1] != '.';
}

int
netaddr_hostport_parse(const char *s, char *host, size_t hostsize, unsigned default_port,
    unsigned *port_r, const char **error_r)
{
	const char *portstr = NULL;
	size_t hlen;
	in_port_t port;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
			*error_r = "bad [IP]:PORT";
			return -1;
		}
		hlen = (size_t)(close - s - 1);
		if (hlen == 0 || hlen >= hostsize) {
			*error_r = "bad [IP]:PORT";
			return -1;
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (!netaddr_is_ip(host)) {
			*error_r = "not an IP address inside [ ]";
			return -1;
		}
		if (close[1] == ':')
			portstr = close + 2;
	} else {
		const char *colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			*error_r = "an IPv6 address needs brackets: [IP]:PORT";
			return -1;
		}
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (hlen == 0 || hlen >= hostsize) {
			*error_r = "missing or too long host name";
			return -1;
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (!netaddr_is_ip(host) && !hostname_valid(host)) {
			*error_r = "not a valid host name";
			return -1;
		}
		if (colon != NULL)
			portstr = colon + 1;
	}
	if (portstr == NULL) {
		*port_r = default_port;
		return 0;
	}
	if (parse_port(portstr, &port) < 0) {
		*error_r = "bad port (1-65535)";
		return -1;
	}
	*port_r = ntohs(port);
	return 0;
}
