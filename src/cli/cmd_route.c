/* tegami route|hosts|source: the outbound routing tables (MISSION O1, O6;
 * conf/routing.h). tegamid reads them at each routing decision, so a change
 * applies to the next delivery attempt without a reload:
 *   route   DOMAIN -> HOST[:PORT], no MX lookup for that domain
 *   hosts   the host table (seed 002: ホスト・テーブル): a name's addresses,
 *           used instead of DNS
 *   source  the local address outgoing connections bind to, per sending
 *           domain ('*': every other), for NAT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/routing.h"
#include "lib/db.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "mail/addr.h"

#define ROUTE_TARGET_MAX 300

static int
fail_with(char *error)
{
	cli_error(CLI_FAIL, "%s", error != NULL ? error : "database error");
	free(error);
	return CLI_FAIL;
}

/* A domain (or host name) argument, lower-cased into out. */
static int
domain_arg(const char *arg, const char *what, char *out, size_t size)
{
	if (!addr_domain_valid(arg) || netaddr_is_ip(arg))
		return cli_error(CLI_USAGE, "'%s' is not a valid %s", arg, what);
	str_copy(out, arg, size);
	str_lower(out);
	return CLI_OK;
}

/* DOMAIN or '*' (the source of every other domain). */
static int
source_domain_arg(const char *arg, char *out, size_t size)
{
	if (strcmp(arg, "*") == 0) {
		str_copy(out, "*", size);
		return CLI_OK;
	}
	return domain_arg(arg, "domain name (or '*' for every other domain)", out, size);
}

/* An IPv4 or IPv6 address, in its canonical text form (so "::1" and
 * "0:0::1" are one entry). No brackets, ranges or zone ids. */
static int
ip_arg(const char *arg, char out[INET6_ADDRSTRLEN])
{
	unsigned char bin[sizeof(struct in6_addr)];
	int af = strchr(arg, ':') != NULL ? AF_INET6 : AF_INET;

	if (inet_pton(af, arg, bin) != 1 || inet_ntop(af, bin, out, INET6_ADDRSTRLEN) == NULL)
		return cli_error(CLI_USAGE, "'%s' is not an IPv4 or IPv6 address", arg);
	return CLI_OK;
}

static void
print_row(void *arg, const char *a, const char *b)
{
	printf("%s\t%s\n", a, b != NULL ? b : "");
}

/* --- route --- */

int
cmd_route_add(struct cli *c, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1], target[ROUTE_TARGET_MAX], host[ROUTE_TARGET_MAX];
	const char *why = "";
	unsigned port;
	char *error = NULL;
	int rc;

	if (argc != 2)
		return cli_error(CLI_USAGE, "usage: tegami route add DOMAIN HOST[:PORT]");
	if ((rc = domain_arg(argv[0], "domain name", domain, sizeof(domain))) != CLI_OK)
		return rc;
	if (!str_copy(target, argv[1], sizeof(target)) ||
	    netaddr_hostport_parse(target, host, sizeof(host), 0, &port, &why) < 0)
		return cli_error(CLI_USAGE, "'%s' is not HOST[:PORT] or [IP][:PORT]: %s", argv[1],
		    why[0] != '\0' ? why : "too long");
	str_lower(target);
	if (routing_route_set(cli_db(c), domain, target, &error) < 0)
		return fail_with(error);
	if (port != 0)
		printf("mail for %s goes to %s port %u\n", domain, host, port);
	else
		printf("mail for %s goes to %s (port: relay.port)\n", domain, host);
	return CLI_OK;
}

int
cmd_route_del(struct cli *c, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1], *error = NULL;
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami route del DOMAIN");
	if ((rc = domain_arg(argv[0], "domain name", domain, sizeof(domain))) != CLI_OK)
		return rc;
	if (routing_route_del(cli_db(c), domain, &error) < 0)
		return fail_with(error);
	printf("route for %s removed\n", domain);
	return CLI_OK;
}

int
cmd_route_list(struct cli *c, int argc, char **argv)
{
	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami route list");
	if (routing_route_list(cli_db(c), print_row, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot read the routes");
	return CLI_OK;
}

/* --- hosts --- */

struct host_count {
	const char *name;
	size_t n;
};

static void
count_host(void *arg, const char *name, const char *ip)
{
	struct host_count *hc = arg;

	hc->n += strcasecmp(name, hc->name) == 0;
}

int
cmd_hosts_add(struct cli *c, int argc, char **argv)
{
	char name[ADDR_DOMAIN_MAX + 1], ip[INET6_ADDRSTRLEN], *error = NULL;
	int rc;

	if (argc < 2)
		return cli_error(CLI_USAGE, "usage: tegami hosts add NAME IP [IP...]");
	if ((rc = domain_arg(argv[0], "host name", name, sizeof(name))) != CLI_OK)
		return rc;
	for (int i = 1; i < argc; i++) {
		if ((rc = ip_arg(argv[i], ip)) != CLI_OK)
			return rc;
	}
	struct host_count hc = { name, 0 };
	if (routing_host_list(cli_db(c), count_host, &hc) < 0)
		return cli_error(CLI_FAIL, "cannot read the host table");
	if (hc.n + (size_t)(argc - 1) > ROUTING_HOSTS_MAX)
		return cli_error(CLI_FAIL, "%s would have more than %d addresses", name,
		    ROUTING_HOSTS_MAX);
	if (db_begin(cli_db(c), &error) < 0)
		return fail_with(error);
	for (int i = 1; i < argc; i++) {
		(void)ip_arg(argv[i], ip);
		if (routing_host_add(cli_db(c), name, ip, &error) < 0) {
			db_rollback(cli_db(c));
			return fail_with(error);
		}
	}
	if (db_commit(cli_db(c), &error) < 0)
		return fail_with(error);
	printf("%s: %d address%s added to the host table\n", name, argc - 1, argc == 2 ? "" : "es");
	return CLI_OK;
}

int
cmd_hosts_del(struct cli *c, int argc, char **argv)
{
	char name[ADDR_DOMAIN_MAX + 1], ip[INET6_ADDRSTRLEN], *error = NULL;
	int rc;

	if (argc < 1 || argc > 2)
		return cli_error(CLI_USAGE, "usage: tegami hosts del NAME [IP]");
	if ((rc = domain_arg(argv[0], "host name", name, sizeof(name))) != CLI_OK)
		return rc;
	if (argc == 2 && (rc = ip_arg(argv[1], ip)) != CLI_OK)
		return rc;
	if (routing_host_del(cli_db(c), name, argc == 2 ? ip : NULL, &error) < 0)
		return fail_with(error);
	printf("%s%s%s removed from the host table\n", name, argc == 2 ? " " : "",
	    argc == 2 ? ip : "");
	return CLI_OK;
}

int
cmd_hosts_list(struct cli *c, int argc, char **argv)
{
	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami hosts list");
	if (routing_host_list(cli_db(c), print_row, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot read the host table");
	return CLI_OK;
}

/* --- source --- */

/* False when this host cannot bind ip now (not one of its addresses):
 * outgoing connections would fail until it is. */
static bool
ip_local(const char *ip)
{
	struct netaddr a;

	if (netaddr_from_ip(ip, 0, &a) < 0)
		return false;
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true; /* cannot tell */
	bool ok = bind(fd, (struct sockaddr *)&a.ss, a.len) == 0 || errno != EADDRNOTAVAIL;
	close(fd);
	return ok;
}

int
cmd_source_set(struct cli *c, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1], ip[INET6_ADDRSTRLEN], *error = NULL;
	int rc;

	if (argc != 2)
		return cli_error(CLI_USAGE, "usage: tegami source set DOMAIN|* IP");
	if ((rc = source_domain_arg(argv[0], domain, sizeof(domain))) != CLI_OK ||
	    (rc = ip_arg(argv[1], ip)) != CLI_OK)
		return rc;
	if (routing_source_set(cli_db(c), domain, ip, &error) < 0)
		return fail_with(error);
	if (strcmp(domain, "*") == 0)
		printf("mail from other domains leaves from %s\n", ip);
	else
		printf("mail from %s leaves from %s\n", domain, ip);
	if (!ip_local(ip))
		fprintf(stderr, "tegami: warning: %s is not an address of this host now; "
		    "connections from it fail until it is\n", ip);
	return CLI_OK;
}

int
cmd_source_del(struct cli *c, int argc, char **argv)
{
	char domain[ADDR_DOMAIN_MAX + 1], *error = NULL;
	int rc;

	if (argc != 1)
		return cli_error(CLI_USAGE, "usage: tegami source del DOMAIN|*");
	if ((rc = source_domain_arg(argv[0], domain, sizeof(domain))) != CLI_OK)
		return rc;
	if (routing_source_del(cli_db(c), domain, &error) < 0)
		return fail_with(error);
	printf("source address for %s removed\n", strcmp(domain, "*") == 0 ? "other domains" :
	    domain);
	return CLI_OK;
}

int
cmd_source_list(struct cli *c, int argc, char **argv)
{
	if (argc != 0)
		return cli_error(CLI_USAGE, "usage: tegami source list");
	if (routing_source_list(cli_db(c), print_row, NULL) < 0)
		return cli_error(CLI_FAIL, "cannot read the source addresses");
	return CLI_OK;
}
