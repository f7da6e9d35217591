/* smtp_policy.c: who may send what (MISSION A5: the MDaemon SMTP AUTH
 * options; A6: the seed-002 authentication tab). Each check names its rule in
 * the reply, so a refused user and the admin reading the log both know which
 * setting said no. Checks run at MAIL (what the sender and the session
 * tell), at RCPT (where it goes) and at the end of DATA (the From: header). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/directory.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "mail/message.h"
#include "queue/spool.h"
#include "smtpd/smtp_session.h"

static bool
sender_domain_local(struct smtp_session *s, const char *sender)
{
	const char *at = strrchr(sender, '@');

	return at != NULL && directory_domain_exists(smtp_server_directory(s->srv), at + 1);
}

/* The sender has a mailbox (user or alias) here. */
static bool
sender_known(struct smtp_session *s, const struct mail_addr *a)
{
	return directory_resolve(smtp_server_directory(s->srv), a, false,
	    smtp_server_scratch_targets(s->srv)) == DIR_LOCAL;
}

static int
refuse(struct smtp_session *s, const char *rule, const char *reply)
{
	log_info("event=policy_refused session=%llx client=%s user=%s rule=%s",
	    (unsigned long long)s->id, s->ip, s->auth_user != NULL ? s->auth_user : "-", rule);
	smtp_session_error(s, "%s", reply);
	return -1;
}

/* A6 "Verify mail from user" (seed 002): the sender must be in the
 * directory and match the user: an authenticated session may only send as
 * its own address; otherwise a sender in a local domain must have a mailbox
 * here. The accept list is exempt when the setting says not_accept_list. */
static int
verify_mail_from(struct smtp_session *s, const char *sender, bool local, bool known)
{
	const struct config *cfg = smtp_server_config(s->srv);
	bool check = strcmp(cfg->auth_verify_mail_from, "all") == 0 ||
	    (strcmp(cfg->auth_verify_mail_from, "not_accept_list") == 0 &&
	    !directory_list_has(smtp_server_directory(s->srv), "accept", sender));

	if (!check)
		return 0;
	if (s->auth_user != NULL && strcasecmp(sender, s->auth_user) != 0)
		return refuse(s, "auth.verify_mail_from", "553 5.7.1 Error: sender address "
		    "does not match the authenticated user (auth.verify_mail_from)");
	if (local && !known)
		return refuse(s, "auth.verify_mail_from", "553 5.7.1 Error: sender address "
		    "is not in the directory");
	return 0;
}

/* RFC 4954 §6: where policy wants AUTH first, 530 5.7.0. */
int
smtp_policy_mail(struct smtp_session *s, const struct mail_addr *addr, const char *sender)
{
	const struct config *cfg = smtp_server_config(s->srv);
	struct directory *dir = smtp_server_directory(s->srv);
	bool authed = s->auth_user != NULL;
	bool local = !addr->null && sender_domain_local(s, sender);

	if (strcmp(cfg->auth_mode, "local_and_relay") == 0) {
		if (!s->tls)
			return refuse(s, "auth.mode", "530 5.7.0 Must issue a STARTTLS command first "
			    "(auth.mode=local_and_relay: TLS and AUTH for all mail)");
		if (!authed)
			return refuse(s, "auth.mode", "530 5.7.0 Error: authentication required "
			    "(auth.mode=local_and_relay)");
	}
	/* A5: the role addresses of every local domain, and aliases leading to them. */
	if (cfg->auth_require_for_postmaster && local && !authed &&
	    directory_role_address(dir, sender))
		return refuse(s, "auth.require_for_postmaster", "530 5.7.0 Error: authentication "
		    "required for postmaster, abuse and webmaster senders");
	if (cfg->auth_require_local_ip && !authed &&
	    netaddr_ip_in_cidr_list(s->ip, cfg->auth_local_networks) &&
	    !directory_list_has(dir, "trusted", s->ip))
		return refuse(s, "auth.require_local_ip", "530 5.7.0 Error: authentication "
		    "required for mail from local IP addresses");
	/* The null reverse-path (bounces, DSNs: RFC 5321 §4.5.5) is no identity
	 * to compare: only real addresses must match. */
	if (cfg->auth_match_return_path && authed && !addr->null &&
	    strcasecmp(sender, s->auth_user) != 0 && !directory_list_has(dir, "exempt", sender))
		return refuse(s, "auth.match_return_path", "553 5.7.1 Error: sender address "
		    "does not match authenticated user");
	bool known = local && sender_known(s, addr);
	if (!addr->null && verify_mail_from(s, sender, local, known) < 0)
		return -1;
	s->sender_local = local;
	s->sender_known = known;
	return 0;
}

int
smtp_policy_rcpt(struct smtp_session *s, bool rcpt_local)
{
	const struct config *cfg = smtp_server_config(s->srv);
	bool authed = s->auth_user != NULL;

	/* A6 "Require TLS/SSL and authenticate only the relay": relaying needs
	 * both; say which is missing. */
	if (!rcpt_local && strcmp(cfg->auth_mode, "relay_only") == 0) {
		if (!s->tls)
			return refuse(s, "auth.mode", "530 5.7.0 Must issue a STARTTLS command first "
			    "(auth.mode=relay_only: TLS and AUTH to relay)");
		if (!authed)
			return refuse(s, "auth.mode", "530 5.7.0 Error: authentication required "
			    "to relay (auth.mode=relay_only)");
	}
	if (authed)
		return 0;
	if (cfg->auth_require_local_sender && s->sender_local &&
	    !(cfg->auth_local_sender_except_local_rcpt && rcpt_local) &&
	    !(cfg->auth_local_sender_except_other_server && !s->sender_known))
		return refuse(s, "auth.require_local_sender", "530 5.7.0 Error: authentication "
		    "required for local sender");
	return 0;
}

int
smtp_policy_data(struct smtp_session *s, struct envelope *msg)
{
	const struct config *cfg = smtp_server_config(s->srv);
	char from[DIR_MAILBOX_MAX];
	bool match = cfg->auth_match_from_header && s->auth_user != NULL;

	if (!match && !cfg->auth_verify_originator)
		return 0;
	int rc = message_from_address(msg->body, from, sizeof(from));
	if (rc <= 0) {
		if (!cfg->auth_verify_originator && rc == 0 && !match)
			return 0;
		return refuse(s, match ? "auth.match_from_header" : "auth.verify_originator",
		    "550 5.7.1 Error: message has no single From: address to check");
	}
	if (s->auth_user != NULL && (match || cfg->auth_verify_originator) &&
	    strcmp(from, s->auth_user) != 0 &&
	    !(match && directory_list_has(smtp_server_directory(s->srv), "exempt", from)))
		return refuse(s, match ? "auth.match_from_header" : "auth.verify_originator",
		    "550 5.7.1 Error: From: header does not match authenticated user");
	return 0;
}
