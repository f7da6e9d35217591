/* profile_test.c: `tegami profile test ID` (MISSION X2; seed 004 接続テスト):
 * a real connection to the profile's relay with the daemon's own client
 * (deliver/smtp_client, deliver/pop3_client) on an event loop of its own:
 * the POP3 login first for POP-before-SMTP, then connect, TLS, EHLO, AUTH,
 * QUIT. Every line sent and received is printed ("> ", "< ", and "* " for
 * what happens in between); secrets show as ****. Names are looked up in
 * the host table, then with the system's resolver. */
#include <event2/event.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli/cli.h"
#include "conf/profile.h"
#include "conf/routing.h"
#include "conf/settings.h"
#include "deliver/pop3_client.h"
#include "deliver/profile_client.h"
#include "deliver/smtp_client.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/tls.h"

#define TEST_TARGETS 8

struct test_run {
	struct event_base *base;
	bool ok;
	bool done;
	char error[SMTP_CLIENT_REPLY_MAX];
	struct smtp_client *cl;
};

static void
print_trace(void *arg, char dir, const char *line)
{
	printf("%c %s\n", dir, line);
	fflush(stdout);
}

/* host:port to the addresses to try: an IP, the host table, or the
 * system's resolver. Returns how many (0: none, with a reason printed). */
static size_t
resolve(struct cli *c, const char *host, unsigned port, struct route_target *t)
{
	char ips[ROUTING_HOSTS_MAX][INET6_ADDRSTRLEN];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	size_t n = 0;
	int k;

	if (netaddr_is_ip(host)) {
		str_copy(t[0].host, host, sizeof(t[0].host));
		str_copy(t[0].ip, host, sizeof(t[0].ip));
		t[0].port = port;
		return 1;
	}
	struct routing *r = routing_create(cli_db(c));
	k = routing_hosts(r, host, ips, ROUTING_HOSTS_MAX);
	routing_destroy(&r);
	for (int i = 0; i < k && n < TEST_TARGETS; i++, n++) {
		str_copy(t[n].host, host, sizeof(t[n].host));
		str_copy(t[n].ip, ips[i], sizeof(t[n].ip));
		t[n].port = port;
	}
	if (n > 0)
		return n;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		printf("* cannot find the address of %s: %s\n", host, gai_strerror(rc));
		return 0;
	}
	for (struct addrinfo *a = res; a != NULL && n < TEST_TARGETS; a = a->ai_next) {
		if (getnameinfo(a->ai_addr, a->ai_addrlen, t[n].ip, sizeof(t[n].ip), NULL, 0,
		    NI_NUMERICHOST) != 0)
			continue;
		str_copy(t[n].host, host, sizeof(t[n].host));
		t[n].port = port;
		n++;
	}
	freeaddrinfo(res);
	return n;
}

static void
pop_done(void *arg, bool ok, bool refused, const char *error)
{
	struct test_run *run = arg;

	run->ok = ok;
	run->done = true;
	str_copy(run->error, error != NULL ? error : "", sizeof(run->error));
}

static void
smtp_event(void *arg, enum smtp_client_event ev, const struct smtp_client_result *results,
    size_t n, bool closed, int code, const char *error)
{
	struct test_run *run = arg;

	switch (ev) {
	case SMTP_CLIENT_READY:
		if (smtp_client_quit(run->cl) == 0)
			return;
		run->ok = true;
		break;
	case SMTP_CLIENT_DONE:
		run->ok = true; /* QUIT answered (or the server just closed) */
		break;
	case SMTP_CLIENT_FAILED:
		run->ok = false;
		str_copy(run->error, error != NULL ? error : "", sizeof(run->error));
		break;
	}
	run->done = true;
	smtp_client_free(&run->cl);
	/* No loopbreak: the loop ends by itself once the connection has
	 * drained (a QUIT after a refusal) and nothing is left to wait for. */
}

static const char *
login_text(const struct profile *p)
{
	return p->login == PROFILE_LOGIN_SMTP_AUTH ? "SMTP AUTH" :
	    p->login == PROFILE_LOGIN_POP ? "POP-before-SMTP" : "none";
}

/* The POP3 login of a POP-before-SMTP profile. */
static bool
test_pop(struct cli *c, struct test_run *run, const struct profile *p, SSL_CTX *ctx,
    const struct config *cfg, const char *secret)
{
	struct route_target t[TEST_TARGETS];
	size_t n = resolve(c, p->pop_host, p->pop_port, t);

	if (n == 0) {
		snprintf(run->error, sizeof(run->error), "no address for %s", p->pop_host);
		return false;
	}
	struct pop3_client_settings s = {
		.source_ip = p->props.source[0] != '\0' ? p->props.source : NULL,
		.trace = print_trace,
	};
	profile_client_pop3(p, cfg, ctx, secret, &s);
	run->done = false;
	struct pop3_client *pc = pop3_client_start(run->base, &s, t, n, pop_done, run);
	if (!run->done)
		event_base_dispatch(run->base);
	pop3_client_free(&pc);
	if (!run->ok)
		printf("* POP-before-SMTP login failed: %s\n", run->error);
	return run->ok;
}

static bool
test_smtp(struct cli *c, struct test_run *run, const struct profile *p, SSL_CTX *ctx,
    const struct config *cfg, const char *secret)
{
	struct route_target t[TEST_TARGETS];
	size_t n = resolve(c, p->host, p->port, t);

	if (n == 0) {
		snprintf(run->error, sizeof(run->error), "no address for %s", p->host);
		return false;
	}
	struct smtp_client_settings s = {
		.source_ip = p->props.source[0] != '\0' ? p->props.source : NULL,
		.trace = print_trace,
	};
	profile_client_smtp_defaults(cfg, ctx, &s);
	profile_client_smtp(p, ctx, secret, &s);
	run->done = false;
	run->cl = smtp_client_start(run->base, &s, t, n, smtp_event, run);
	if (!run->done)
		event_base_dispatch(run->base);
	smtp_client_free(&run->cl);
	return run->ok;
}

int
cli_profile_test(struct cli *c, const struct profile *stored, const char *smtp_secret,
    const char *pop_secret)
{
	struct profile p = *stored;
	struct config cfg;
	struct test_run run = { 0 };
	char *error = NULL, err[512];
	const char *why;
	char norm[PROFILE_AUTH_MAX];

	if (config_load(cli_db(c), &cfg, &error) < 0) {
		cli_error(CLI_FAIL, "%s", error);
		free(error);
		return CLI_FAIL;
	}
	if (p.host[0] == '\0') {
		printf("test: FAILED: profile %s has no host%s\n", p.id,
		    p.builtin ? " (tegami config set relay.smarthost=HOST)" : "");
		return CLI_FAIL;
	}
	(void)profile_auth_parse(p.auth, norm, &p.mechs, &why);
	(void)profile_props_parse(p.properties, NULL, &p.props, &why);
	printf("profile %s: %s:%u, TLS %s (%s or newer%s), login %s", p.id, p.host, p.port,
	    profile_tls_name(p.tls), p.tls_protocol, p.tls_verify ? ", verified" : "",
	    login_text(&p));
	if (p.login == PROFILE_LOGIN_SMTP_AUTH)
		printf(" (%s) as %s", p.auth, p.account);
	printf("\n");
	SSL_CTX *ctx = tls_client_context_create(p.tls_protocol, cfg.relay_tls_ca_file, err,
	    sizeof(err));
	if (ctx == NULL) {
		printf("test: FAILED: %s\n", err);
		return CLI_FAIL;
	}
	log_set_level(LOG_LEVEL_ERROR); /* the trace says it all */
	run.base = event_base_new();
	if (run.base == NULL) {
		SSL_CTX_free(ctx);
		return cli_error(CLI_FAIL, "event_base_new failed");
	}
	bool ok = (p.login != PROFILE_LOGIN_POP || test_pop(c, &run, &p, ctx, &cfg, pop_secret)) &&
	    test_smtp(c, &run, &p, ctx, &cfg, p.login == PROFILE_LOGIN_SMTP_AUTH ? smtp_secret : NULL);
	conn_free_all();
	event_base_free(run.base);
	SSL_CTX_free(ctx);
	if (ok) {
		printf("test: OK\n");
		return CLI_OK;
	}
	printf("test: FAILED%s%s\n", run.error[0] != '\0' ? ": " : "", run.error);
	return CLI_FAIL;
}
