/* smtp_relay.c: relay control and connection restrictions (MISSION R1-R4,
 * seed 002 中継制限 / 接続制限).
 *
 * At connect (smtp_relay_connect_refused, before any session exists): a
 * client address on the refused list gets 554 5.7.1. Then, for a session,
 * the DNSBL zones are asked (smtp_relay_start): the greeting waits for
 * their answers, never the event loop, and a listed client gets 554 5.7.1
 * with the list's TXT instead of 220. The seed's order for OVERRJTCNN
 * (smtp.pop_overrides_refused): first whether POP clients may relay for a
 * while (smtp.relay_mode=pop_clients) and this client logged in over POP3
 * within that window, then the connection restrictions, which such a
 * client skips.
 *
 * At RCPT (smtp_relay_rcpt_refused, smtp_relay_allowed): a recipient that
 * is not local is relayed only when smtp.relay_mode lets this client send
 * there; authenticated senders may relay in every mode but block_all.
 * Addresses that hide a route in their local part ("%", "!", a quoted
 * "@") are refused for clients that may not relay everywhere, whatever the
 * domain: whoever takes the mail next may follow the route.
 *
 * Refused connections and relays are logged with the seed's journal codes
 * (journal=9S, journal=9V) and the client address. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/screen.h"
#include "conf/directory.h"
#include "conf/relaylists.h"
#include "lib/dnsbl.h"
#include "lib/log.h"
#include "smtpd/smtp_session.h"

enum relay_mode {
	RELAY_ALLOW_ALL,
	RELAY_BLOCK_ALL,
	RELAY_NEAR_DOMAINS,
	RELAY_ADDRESS_LIST,
	RELAY_BOTH_LISTS,
	RELAY_POP_CLIENTS,
};

static enum relay_mode
relay_mode(const struct config *cfg)
{
	static const char *const names[] = {
		[RELAY_ALLOW_ALL] = "allow_all", [RELAY_BLOCK_ALL] = "block_all",
		[RELAY_NEAR_DOMAINS] = "near_domains", [RELAY_ADDRESS_LIST] = "address_list",
		[RELAY_BOTH_LISTS] = "both_lists", [RELAY_POP_CLIENTS] = "pop_clients",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(cfg->smtp_relay_mode, names[i]) == 0)
			return (enum relay_mode)i;
	}
	return RELAY_BLOCK_ALL; /* the settings table admits no other value */
}

/* ip logged in over POP3 within the POP-before-SMTP window (R1, P3). */
static bool
pop_client(struct smtp_server *srv, const char *ip)
{
	const struct config *cfg = smtp_server_config(srv);
	struct screen *sc = smtp_server_screen(srv);
	time_t last = sc != NULL ? screen_pop_last(sc, ip) : 0;

	return last != 0 && time(NULL) - last < (time_t)(cfg->smtp_pop_before_smtp_minutes * 60);
}

/* R3 (OVERRJTCNN): relay for POP clients is checked before the connection
 * restrictions, and lets this client past them. */
static bool
pop_override(struct smtp_server *srv, const char *ip)
{
	const struct config *cfg = smtp_server_config(srv);

	return cfg->smtp_pop_overrides_refused && relay_mode(cfg) == RELAY_POP_CLIENTS &&
	    pop_client(srv, ip);
}

bool
smtp_relay_connect_refused(struct smtp_server *srv, const char *ip, bool *override_r)
{
	*override_r = pop_override(srv, ip);
	if (!relay_lists_refused(smtp_server_relay_lists(srv), ip))
		return false;
	if (*override_r) {
		log_info("event=connection_allowed client=%s reason=pop_before_smtp "
		    "note=\"refused address, smtp.pop_overrides_refused\"", ip);
		return false;
	}
	log_warn("event=connection_refused journal=9S client=%s reason=refused_address", ip);
	return true;
}

static void
session_greet(struct smtp_session *s)
{
	smtp_session_greet(s);
}

/* 554 in place of the greeting (RFC 5321 §3.1), then close. */
static void
dnsbl_refuse(struct smtp_session *s, const struct dnsbl_result *r)
{
	log_warn("event=connection_refused journal=9S session=%llx client=%s reason=dnsbl "
	    "zone=%s answer=%s text=\"%s\"", (unsigned long long)s->id, s->ip, r->zone, r->answer,
	    r->text);
	if (r->text[0] != '\0')
		smtp_session_refuse(s, "554 5.7.1 CONNECTION REFUSED %s (listed by %s: %s)", s->ip,
		    r->zone, r->text);
	else
		smtp_session_refuse(s, "554 5.7.1 CONNECTION REFUSED %s (listed by %s, %s)", s->ip,
		    r->zone, r->answer);
}

static void
dnsbl_outcome(struct smtp_session *s, const struct dnsbl_result *r)
{
	if (r->unanswered > 0)
		log_info("event=dnsbl_unanswered session=%llx client=%s zones=%u "
		    "note=\"counted as not listed\"", (unsigned long long)s->id, s->ip, r->unanswered);
	if (r->listed)
		dnsbl_refuse(s, r);
	else
		session_greet(s);
}

static void
on_dnsbl(void *arg, const struct dnsbl_result *r)
{
	struct smtp_session *s = arg;

	s->dnsbl = NULL;
	dnsbl_outcome(s, r);
}

void
smtp_relay_start(struct smtp_session *s, bool override)
{
	const struct config *cfg = smtp_server_config(s->srv);
	struct dnsbl *b = smtp_server_dnsbl(s->srv);
	struct dnsbl_result now;

	if (b == NULL || cfg->smtp_dnsbl_zones[0] == '\0' || override) {
		session_greet(s);
		return;
	}
	switch (dnsbl_check(b, s->ip, cfg->smtp_dnsbl_zones, (unsigned)cfg->smtp_dnsbl_timeout,
	    on_dnsbl, s, &now, &s->dnsbl)) {
	case 0:
		return; /* the greeting waits; the loop does not */
	case 1:
		dnsbl_outcome(s, &now);
		return;
	default:
		session_greet(s);
		return;
	}
}

/* R1: this client may relay to any destination. */
static bool
relay_anywhere(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);
	enum relay_mode mode = relay_mode(cfg);
	struct relay_lists *rl = smtp_server_relay_lists(s->srv);

	if (mode == RELAY_BLOCK_ALL)
		return false;
	/* A5: authenticated sessions skip the POP-before-SMTP check. */
	if (s->auth_user != NULL && (mode != RELAY_POP_CLIENTS || cfg->auth_skip_pop_before_smtp))
		return true;
	switch (mode) {
	case RELAY_ALLOW_ALL:
		return true;
	case RELAY_ADDRESS_LIST:
	case RELAY_BOTH_LISTS:
		return relay_lists_network(rl, s->ip);
	case RELAY_POP_CLIENTS:
		return pop_client(s->srv, s->ip);
	default:
		return false;
	}
}

static bool
relay_to(struct smtp_session *s, const char *domain)
{
	enum relay_mode mode = relay_mode(smtp_server_config(s->srv));

	if (relay_anywhere(s))
		return true;
	return (mode == RELAY_NEAR_DOMAINS || mode == RELAY_BOTH_LISTS) &&
	    relay_lists_near_domain(smtp_server_relay_lists(s->srv), domain);
}

/* R4: 9V, and the one reply. */
static void
relay_refuse(struct smtp_session *s, const char *rcpt, const char *why)
{
	log_warn("event=relay_refused journal=9V session=%llx client=%s rcpt=<%s> mode=%s "
	    "user=%s reason=%s", (unsigned long long)s->id, s->ip, rcpt,
	    smtp_server_config(s->srv)->smtp_relay_mode, s->auth_user != NULL ? s->auth_user : "-",
	    why);
	smtp_session_error(s, "550 5.7.1 <%s>: Relay access denied (RELAY REFUSED %s)", rcpt, s->ip);
}

/* A route hidden in the local part: "user%host" (unless smtp.percent_routing
 * resolves it here), "host!user" (UUCP), a quoted "user@host". */
static bool
local_part_routes(const struct config *cfg, const char *local)
{
	return strchr(local, '@') != NULL || strchr(local, '!') != NULL ||
	    (!cfg->smtp_percent_routing && strchr(local, '%') != NULL);
}

bool
smtp_relay_rcpt_refused(struct smtp_session *s, const struct mail_addr *a, const char *rcpt)
{
	if (!local_part_routes(smtp_server_config(s->srv), a->local) || relay_anywhere(s))
		return false;
	relay_refuse(s, rcpt, "route_in_local_part");
	return true;
}

int
smtp_relay_destination(struct smtp_session *s, const struct mail_addr *a,
    struct mail_addr *dest_r)
{
	const struct config *cfg = smtp_server_config(s->srv);
	const char *pct = strrchr(a->local, '%');

	*dest_r = *a;
	if (!cfg->smtp_percent_routing || pct == NULL ||
	    !directory_domain_exists(smtp_server_directory(s->srv), a->domain))
		return 0;
	/* S4: user%host@local-domain is user@host. */
	if (pct == a->local || !addr_domain_valid(pct + 1))
		return -1;
	dest_r->local[pct - a->local] = '\0';
	snprintf(dest_r->domain, sizeof(dest_r->domain), "%s", pct + 1);
	return 0;
}

bool
smtp_relay_allowed(struct smtp_session *s, const struct mail_addr *dest, const char *rcpt)
{
	if (relay_to(s, dest->domain))
		return true;
	relay_refuse(s, rcpt, relay_mode(smtp_server_config(s->srv)) == RELAY_BLOCK_ALL ?
	    "block_all" : s->auth_user != NULL ? "pop_before_smtp_required" : "not_permitted");
	return false;
}
