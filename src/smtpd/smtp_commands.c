/* smtp_commands.c: the command table and one handler per command
 * (RFC 5321 §4.1.1). Each table row says what the command needs: the states
 * it may run in, whether it needs EHLO or may run before STARTTLS where the
 * session must be encrypted, its line limit, whether it ends a pipelined
 * group and whether it is "junk". smtp_command_dispatch() enforces all of
 * that in one place (as Postfix's smtpd_cmd_table[] and OpenSMTPD's
 * commands[] do), so a handler only checks its arguments, acts and replies
 * once. HELP is generated from the same table. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/directory.h"
#include "conf/settings.h"
#include "lib/conn.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/dsn.h"
#include "mail/smtp_parse.h"
#include "queue/queue_runner.h"
#include "queue/spool.h"
#include "smtpd/smtp_session.h"

typedef void smtp_cmd_fn(struct smtp_session *s, char *args);

/* The states a command may run in. DATA, AUTH and QUIT never reach the
 * dispatcher: their input is message text, SASL responses, or nothing. */
#define IN(state) (1u << (state))
#define IN_GREETING IN(SMTP_STATE_GREETING_SENT)
#define IN_READY IN(SMTP_STATE_READY)
#define IN_MAIL IN(SMTP_STATE_MAIL)
#define IN_ANY (IN_GREETING | IN_READY | IN_MAIL)

enum smtp_cmd_flag {
	/* An ESMTP extension: after EHLO, not HELO (AUTH, RFC 4954 §4). */
	SMTP_CMD_EHLO = 1u << 0,
	/* May run before STARTTLS where the session must be encrypted
	 * (auth.mode=local_and_relay); everything else gets 530 5.7.0. */
	SMTP_CMD_PRE_TLS = 1u << 1,
	/* Ends a pipelined group (RFC 2920 §3.1; STARTTLS RFC 3207 §4.2,
	 * AUTH whose next line may be a SASL response): the client must wait
	 * for its reply before sending more. */
	SMTP_CMD_LAST = 1u << 2,
	/* Moves no mail: counted against smtp.junk_command_limit. */
	SMTP_CMD_JUNK = 1u << 3,
};

struct smtp_command {
	const char *verb;
	smtp_cmd_fn *fn;
	unsigned states;        /* IN_* bits */
	unsigned flags;         /* enum smtp_cmd_flag bits */
	size_t line_max;        /* octets, CRLF included */
	/* Whether this session has the command at all (NULL: always). When it
	 * does not, `refuse` answers in every state, and HELP leaves it out. */
	bool (*offered)(struct smtp_session *s);
	smtp_cmd_fn *refuse;
};

/* RFC 3207: on the plain ports, while not encrypted, with a certificate. */
static bool
starttls_offered(struct smtp_session *s)
{
	return !s->tls && s->kind != SMTP_LISTENER_SMTPS && smtp_server_tls(s->srv) != NULL;
}

static void
cmd_helo_common(struct smtp_session *s, char *args, bool esmtp)
{
	const struct config *cfg = smtp_server_config(s->srv);

	if (*args == '\0' || strchr(args, ' ') != NULL) {
		smtp_session_error(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	/* RFC 5321 §4.1.4: EHLO/HELO reset any transaction. */
	smtp_session_reset_tx(s);
	free(s->helo);
	s->helo = xstrdup(args);
	s->esmtp = esmtp;
	smtp_session_enter(s, SMTP_STATE_READY);
	if (!esmtp) {
		smtp_session_reply(s, "250 %s", cfg->server_hostname);
		return;
	}
	smtp_session_reply(s, "250-%s Hello %s [%s]", cfg->server_hostname, args, s->ip);
	smtp_session_reply(s, "250-SIZE %llu", (unsigned long long)cfg->smtp_max_message_size);
	smtp_session_reply(s, "250-PIPELINING");
	smtp_session_reply(s, "250-8BITMIME");
	if (cfg->dsn_enabled)
		smtp_session_reply(s, "250-DSN");
	smtp_session_reply(s, "250-ETRN");
	if (starttls_offered(s))
		smtp_session_reply(s, "250-STARTTLS");
	char auth[128];
	if (smtp_auth_ehlo(s, auth, sizeof(auth)))
		smtp_session_reply(s, "250-%s", auth);
	smtp_session_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
cmd_ehlo(struct smtp_session *s, char *args)
{
	cmd_helo_common(s, args, true);
}

static void
cmd_helo(struct smtp_session *s, char *args)
{
	cmd_helo_common(s, args, false);
}

/* The DSN parameters of MAIL (RFC 3461 §4.3, §4.4). */
struct mail_dsn {
	int ret;                            /* enum dsn_ret */
	char envid[DSN_ENVID_MAX * 3 + 1];  /* as received (xtext), "" when absent */
};

/* MAIL parameters (RFC 1870 SIZE, RFC 6152 BODY, RFC 3461 RET/ENVID).
 * 0, or -1 after replying. */
static int
mail_params(struct smtp_session *s, const struct smtp_path_args *pa, struct mail_dsn *dsn)
{
	const struct config *cfg = smtp_server_config(s->srv);

	memset(dsn, 0, sizeof(*dsn));
	for (size_t i = 0; i < pa->nparams; i++) {
		const struct smtp_param *p = &pa->params[i];
		uint64_t size;
		if (!s->esmtp) {
			smtp_session_error(s, "555 5.5.4 Error: parameters need EHLO");
			return -1;
		}
		if (strcasecmp(p->keyword, "SIZE") == 0) {
			if (p->value == NULL || str_parse_u64(p->value, &size) < 0) {
				smtp_session_error(s, "501 5.5.4 Error: bad SIZE parameter");
				return -1;
			}
			if (size > cfg->smtp_max_message_size) {
				smtp_session_error(s, "552 5.3.4 Error: message size exceeds fixed limit");
				return -1;
			}
		} else if (strcasecmp(p->keyword, "AUTH") == 0) {
			/* RFC 4954 §5: accepted; we do not relay the identity on. */
			if (p->value == NULL) {
				smtp_session_error(s, "501 5.5.4 Error: bad AUTH parameter");
				return -1;
			}
		} else if (strcasecmp(p->keyword, "BODY") == 0) {
			if (p->value == NULL || (strcasecmp(p->value, "7BIT") != 0 &&
			    strcasecmp(p->value, "8BITMIME") != 0)) {
				smtp_session_error(s, "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME");
				return -1;
			}
		} else if (cfg->dsn_enabled && strcasecmp(p->keyword, "RET") == 0) {
			enum dsn_ret ret;
			if (dsn->ret != 0 || p->value == NULL || dsn_ret_parse(p->value, &ret) < 0) {
				smtp_session_error(s, "501 5.5.4 Error: RET must be FULL or HDRS, once");
				return -1;
			}
			dsn->ret = (int)ret;
		} else if (cfg->dsn_enabled && strcasecmp(p->keyword, "ENVID") == 0) {
			char decoded[DSN_ENVID_MAX + 1];
			if (dsn->envid[0] != '\0' || p->value == NULL ||
			    strlen(p->value) >= sizeof(dsn->envid) ||
			    dsn_envid_parse(p->value, decoded, sizeof(decoded)) < 0) {
				smtp_session_error(s, "501 5.5.4 Error: bad ENVID (xtext, at most 100 "
				    "octets, once)");
				return -1;
			}
			str_copy(dsn->envid, p->value, sizeof(dsn->envid));
		} else {
			smtp_session_error(s, "555 5.5.4 Error: unsupported parameter %.64s", p->keyword);
			return -1;
		}
	}
	return 0;
}

/* S6: below storage.min_free, new mail waits (452) and the queue is untouched. */
static bool
storage_low(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);
	uint64_t free_bytes;

	if (cfg->storage_min_free == 0)
		return false;
	if (fs_free_bytes(smtp_server_data_dir(s->srv), &free_bytes) < 0)
		return false;
	return free_bytes < cfg->storage_min_free;
}

/* A3: anonymous senders, and the listener's server access list. 0, or -1
 * after replying. */
static int
mail_policy(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);
	const struct listener_conf *l = &cfg->listeners[s->kind];

	if (!l->auth_anonymous && s->auth_user == NULL) {
		smtp_session_error(s, "530 5.7.0 Error: authentication required");
		return -1;
	}
	if (l->enforce_access && !directory_access_allows(smtp_server_directory(s->srv),
	    smtp_listener_name(s->kind), s->ip, s->auth_user)) {
		log_info("event=access_denied session=%llx client=%s user=%s listener=%s",
		    (unsigned long long)s->id, s->ip, s->auth_user != NULL ? s->auth_user : "-",
		    smtp_listener_name(s->kind));
		smtp_session_error(s, "550 5.7.1 Error: access denied by the %s server access list",
		    smtp_listener_name(s->kind));
		return -1;
	}
	return 0;
}

static void
cmd_mail(struct smtp_session *s, char *args)
{
	struct smtp_path_args pa;
	const char *error = "";
	char sender[ADDR_PATH_MAX + 8];

	switch (smtp_parse_path_args(args, "FROM:", ADDR_ALLOW_NULL, &pa, &error)) {
	case SMTP_PARSE_OK:
		break;
	case SMTP_PARSE_ADDRESS:
		smtp_session_error(s, "501 5.1.7 Bad sender address syntax: %s", error);
		return;
	case SMTP_PARSE_PARAM:
		smtp_session_error(s, "501 5.5.4 Error: %s", error);
		return;
	default:
		smtp_session_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	struct mail_dsn dsn;
	if (mail_params(s, &pa, &dsn) < 0)
		return;
	if (mail_policy(s) < 0)
		return;
	if (storage_low(s)) {
		log_warn("event=storage_low session=%llx", (unsigned long long)s->id);
		smtp_session_reply(s, "452 4.3.1 Error: insufficient system storage");
		return;
	}
	addr_format(&pa.addr, sender, sizeof(sender));
	if (smtp_policy_mail(s, &pa.addr, sender) < 0)
		return;
	s->msg = envelope_create();
	s->msg->sender = xstrdup(sender);
	s->msg->ret = dsn.ret;
	if (dsn.envid[0] != '\0')
		s->msg->envid = xstrdup(dsn.envid);
	s->nrcpt = 0;
	smtp_session_enter(s, SMTP_STATE_MAIL);
	smtp_session_reply(s, "250 2.1.0 Ok");
}

/* The DSN parameters of RCPT (RFC 3461 §4.1, §4.2). */
struct rcpt_dsn {
	unsigned notify;
	char orcpt[DSN_ORCPT_MAX + 1];   /* as received, "" when absent */
};

/* 0, or -1 after replying. */
static int
rcpt_params(struct smtp_session *s, const struct smtp_path_args *pa, struct rcpt_dsn *dsn)
{
	const struct config *cfg = smtp_server_config(s->srv);
	char decoded[DSN_ORCPT_MAX + 16];

	memset(dsn, 0, sizeof(*dsn));
	for (size_t i = 0; i < pa->nparams; i++) {
		const struct smtp_param *p = &pa->params[i];
		if (!s->esmtp || !cfg->dsn_enabled) {
			smtp_session_error(s, "555 5.5.4 Error: unsupported parameter %.64s", p->keyword);
			return -1;
		}
		if (strcasecmp(p->keyword, "NOTIFY") == 0) {
			if (dsn->notify != 0 || p->value == NULL ||
			    dsn_notify_parse(p->value, &dsn->notify) < 0) {
				smtp_session_error(s, "501 5.5.4 Error: NOTIFY must be NEVER or a list of "
				    "SUCCESS, FAILURE, DELAY, once");
				return -1;
			}
		} else if (strcasecmp(p->keyword, "ORCPT") == 0) {
			if (dsn->orcpt[0] != '\0' || p->value == NULL ||
			    strlen(p->value) >= sizeof(dsn->orcpt) ||
			    dsn_orcpt_parse(p->value, decoded, sizeof(decoded)) < 0) {
				smtp_session_error(s, "501 5.5.4 Error: bad ORCPT (addr-type;xtext, once)");
				return -1;
			}
			str_copy(dsn->orcpt, p->value, sizeof(dsn->orcpt));
		} else {
			smtp_session_error(s, "555 5.5.4 Error: unsupported parameter %.64s", p->keyword);
			return -1;
		}
	}
	return 0;
}

static void
rcpt_set_dsn(struct envelope_rcpt *r, const struct rcpt_dsn *dsn)
{
	r->notify = dsn->notify;
	if (dsn->orcpt[0] != '\0' && r->orcpt == NULL)
		r->orcpt = xstrdup(dsn->orcpt);
}

static void
rcpt_accept(struct smtp_session *s, const struct dir_targets *t, const char *orig,
    const struct rcpt_dsn *dsn)
{
	for (size_t i = 0; i < t->n; i++) {
		bool dup = false;
		for (size_t j = 0; j < s->msg->nrcpt && !dup; j++)
			dup = !s->msg->rcpts[j].remote && strcmp(s->msg->rcpts[j].addr, t->mailbox[i]) == 0;
		if (!dup)
			rcpt_set_dsn(envelope_add_rcpt(s->msg, t->mailbox[i], orig, false), dsn);
	}
	s->nrcpt++;
	smtp_session_reply(s, "250 2.1.5 Ok");
}

/* A recipient that goes out over SMTP (O1): the address as given, with
 * the domain in lower case (it names the destination). */
static void
rcpt_accept_remote(struct smtp_session *s, const struct mail_addr *a, const char *orig,
    const struct rcpt_dsn *dsn)
{
	char addr[ADDR_PATH_MAX + 8];
	struct mail_addr lower = *a;

	str_lower(lower.domain);
	addr_format(&lower, addr, sizeof(addr));
	for (size_t j = 0; j < s->msg->nrcpt; j++) {
		if (s->msg->rcpts[j].remote && strcmp(s->msg->rcpts[j].addr, addr) == 0) {
			s->nrcpt++;
			smtp_session_reply(s, "250 2.1.5 Ok");
			return;
		}
	}
	rcpt_set_dsn(envelope_add_rcpt(s->msg, addr, orig, true), dsn);
	s->nrcpt++;
	smtp_session_reply(s, "250 2.1.5 Ok");
}

static void
cmd_rcpt(struct smtp_session *s, char *args)
{
	const struct config *cfg = smtp_server_config(s->srv);
	struct dir_targets *targets = smtp_server_scratch_targets(s->srv);
	struct smtp_path_args pa;
	const char *error = "";
	char rcpt[ADDR_PATH_MAX + 8];

	switch (smtp_parse_path_args(args, "TO:", ADDR_ALLOW_POSTMASTER, &pa, &error)) {
	case SMTP_PARSE_OK:
		break;
	case SMTP_PARSE_ADDRESS:
		smtp_session_error(s, "501 5.1.3 Bad recipient address syntax: %s", error);
		return;
	case SMTP_PARSE_PARAM:
		smtp_session_error(s, "501 5.5.4 Error: %s", error);
		return;
	default:
		smtp_session_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	struct rcpt_dsn dsn;
	if (rcpt_params(s, &pa, &dsn) < 0)
		return;
	if (s->nrcpt >= cfg->smtp_max_recipients) {
		smtp_session_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	addr_format(&pa.addr, rcpt, sizeof(rcpt));
	struct mail_addr dest;
	if (smtp_relay_rcpt_refused(s, &pa.addr, rcpt))
		return;
	if (smtp_relay_destination(s, &pa.addr, &dest) < 0) {
		smtp_session_error(s, "501 5.1.3 Bad recipient address syntax: not a domain "
		    "after %%");
		return;
	}
	enum dir_result where = directory_resolve_at(smtp_server_directory(s->srv), &pa.addr,
	    cfg->smtp_percent_routing, s->local_ip, targets);
	if ((where == DIR_LOCAL || where == DIR_NOT_LOCAL) &&
	    smtp_policy_rcpt(s, where == DIR_LOCAL) < 0)
		return;
	switch (where) {
	case DIR_LOCAL:
		rcpt_accept(s, targets, rcpt, &dsn);
		return;
	case DIR_NOT_LOCAL:
		/* R1: the relay rules; refusals are logged (9V) and answered there. */
		if (smtp_relay_allowed(s, &dest, rcpt))
			rcpt_accept_remote(s, &dest, rcpt, &dsn);
		return;
	case DIR_UNKNOWN:
		if (cfg->route_mailhub[0] != '\0') {
			/* O1: a domain shared with the mailhub, which has this user. */
			rcpt_accept_remote(s, &pa.addr, rcpt, &dsn);
			return;
		}
		smtp_session_error(s, "550 5.1.1 <%s>: Recipient address rejected: "
		    "User unknown", rcpt);
		return;
	default:
		smtp_session_reply(s, "451 4.3.0 <%s>: Temporary lookup failure", rcpt);
		return;
	}
}

static void
cmd_data(struct smtp_session *s, char *args)
{
	if (*args != '\0') {
		smtp_session_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->nrcpt == 0) {
		smtp_session_error(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	smtp_data_begin(s);
}

static void
cmd_rset(struct smtp_session *s, char *args)
{
	if (*args != '\0') {
		smtp_session_error(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtp_session_reset_tx(s);
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, char *args)
{
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_session *s, char *args)
{
	const struct config *cfg = smtp_server_config(s->srv);

	smtp_session_close(s, "221 2.0.0 %s Bye", cfg->server_hostname);
}

/* RFC 5321 §3.5.3: 252 when we will not say whether a user exists, which is
 * what we always do (no address harvesting). */
static void
cmd_vrfy(struct smtp_session *s, char *args)
{
	if (*args == '\0') {
		smtp_session_error(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	smtp_session_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_starttls(struct smtp_session *s, char *args)
{
	if (*args != '\0') {
		smtp_session_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	smtp_session_starttls(s, smtp_server_tls(s->srv));
}

static void
starttls_refuse(struct smtp_session *s, char *args)
{
	if (s->tls)
		smtp_session_error(s, "503 5.5.1 Error: TLS already active");
	else
		smtp_session_error(s, "454 4.7.0 TLS not available");
}

/* True when domain is in the comma-separated list (case-insensitive). */
static bool
domain_listed(const char *list, const char *domain)
{
	size_t dl = strlen(domain);

	for (const char *p = list; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n == dl && strncasecmp(p, domain, n) == 0)
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

/* RFC 1985: start the queue of a node (domain, or @domain with its
 * subdomains) listed in etrn.domains (MISSION O4). */
static void
cmd_etrn(struct smtp_session *s, char *args)
{
	const struct config *cfg = smtp_server_config(s->srv);
	const char *node = args;
	bool sub = node[0] == '@';

	if (*node == '\0' || strchr(node, ' ') != NULL) {
		smtp_session_error(s, "501 5.5.4 Syntax: ETRN domain");
		return;
	}
	if (node[0] == '#') {
		smtp_session_reply(s, "458 4.5.0 Unable to queue messages for node %s", node);
		return;
	}
	if (!addr_domain_valid(node + (sub ? 1 : 0))) {
		smtp_session_error(s, "501 5.5.4 Syntax error in parameters: not a domain");
		return;
	}
	if (!domain_listed(cfg->etrn_domains, node + (sub ? 1 : 0))) {
		log_info("event=etrn_refused session=%llx client=%s node=%s",
		    (unsigned long long)s->id, s->ip, node);
		smtp_session_reply(s, "459 4.7.1 Node %s not allowed: not in etrn.domains", node);
		return;
	}
	struct queue_runner *q = smtp_server_queue(s->srv);
	size_t n = queue_runner_count_domain(q, node);
	log_info("event=etrn session=%llx client=%s node=%s messages=%zu",
	    (unsigned long long)s->id, s->ip, node, n);
	if (n == 0) {
		smtp_session_reply(s, "251 2.0.0 OK, no messages waiting for node %s", node);
		return;
	}
	queue_runner_flush(q, node, NULL, NULL);
	smtp_session_reply(s, "253 2.0.0 OK, %zu pending messages for node %s started", n, node);
}

/* AUTH is offered when EHLO would list it (A3-A5) and nobody is logged in
 * yet; otherwise smtp_auth_command() gives the refusal that fits (500 where
 * AUTH is disallowed, 502 where the listener has none, 503, 504, 538). */
static bool
auth_offered(struct smtp_session *s)
{
	char buf[128];

	return s->auth_user == NULL && smtp_auth_ehlo(s, buf, sizeof(buf));
}

static bool
never(struct smtp_session *s)
{
	return false;
}

static void
cmd_not_implemented(struct smtp_session *s, char *args)
{
	smtp_session_error(s, "502 5.5.1 Error: command not implemented");
}

static void cmd_help(struct smtp_session *s, char *args);

#define LINE SMTP_CMD_LINE_MAX
#define PRE SMTP_CMD_PRE_TLS
#define LAST SMTP_CMD_LAST
#define JUNK SMTP_CMD_JUNK

/* RFC 5321 §4.5.3.1.4 allows 512 octets; RFC 4954 lets MAIL (§5, AUTH=) and
 * AUTH (§4) be longer. HELP lists the rows in this order. */
static const struct smtp_command commands[] = {
	{ "EHLO", cmd_ehlo, IN_ANY, PRE | LAST | JUNK, LINE, NULL, NULL },
	{ "HELO", cmd_helo, IN_ANY, PRE | LAST | JUNK, LINE, NULL, NULL },
	{ "MAIL", cmd_mail, IN_READY, 0, SMTP_MAIL_LINE_MAX, NULL, NULL },
	{ "RCPT", cmd_rcpt, IN_MAIL, 0, LINE, NULL, NULL },
	{ "DATA", cmd_data, IN_MAIL, LAST, LINE, NULL, NULL },
	{ "RSET", cmd_rset, IN_ANY, PRE | JUNK, LINE, NULL, NULL },
	{ "NOOP", cmd_noop, IN_ANY, PRE | LAST | JUNK, LINE, NULL, NULL },
	{ "QUIT", cmd_quit, IN_ANY, PRE | LAST, LINE, NULL, NULL },
	{ "VRFY", cmd_vrfy, IN_ANY, LAST | JUNK, LINE, NULL, NULL },
	{ "HELP", cmd_help, IN_ANY, PRE | JUNK, LINE, NULL, NULL },
	{ "STARTTLS", cmd_starttls, IN_READY, PRE | LAST, LINE, starttls_offered, starttls_refuse },
	{ "AUTH", smtp_auth_command, IN_READY, SMTP_CMD_EHLO | LAST, SMTP_AUTH_LINE_MAX,
	  auth_offered, smtp_auth_command },
	{ "ETRN", cmd_etrn, IN_READY, JUNK, LINE, NULL, NULL },
	/* S1: obsolete or not implemented, answered 502 in every state. */
	{ "EXPN", NULL, IN_ANY, LAST, LINE, never, cmd_not_implemented },
	{ "TURN", NULL, IN_ANY, LAST, LINE, never, cmd_not_implemented },
	{ "SAML", NULL, IN_ANY, 0, LINE, never, cmd_not_implemented },
	{ "SEND", NULL, IN_ANY, 0, LINE, never, cmd_not_implemented },
	{ "SOML", NULL, IN_ANY, 0, LINE, never, cmd_not_implemented },
	{ "BDAT", NULL, IN_ANY, 0, LINE, never, cmd_not_implemented },
};

#undef LINE
#undef PRE
#undef LAST
#undef JUNK

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* A6: auth.mode=local_and_relay asks TLS for all mail. */
static bool
tls_required(struct smtp_session *s)
{
	return !s->tls && strcmp(smtp_server_config(s->srv)->auth_mode, "local_and_relay") == 0;
}

/* Whether cmd would run now rather than be refused (HELP). */
static bool
command_available(struct smtp_session *s, const struct smtp_command *cmd)
{
	return (cmd->offered == NULL || cmd->offered(s)) &&
	    ((cmd->flags & SMTP_CMD_PRE_TLS) != 0 || !tls_required(s)) &&
	    (cmd->states & IN(s->state)) != 0 &&
	    ((cmd->flags & SMTP_CMD_EHLO) == 0 || s->esmtp);
}

/* RFC 5321 §4.1.1.8: the commands this session can use now. */
static void
cmd_help(struct smtp_session *s, char *args)
{
	char list[128];
	size_t o = 0;

	list[0] = '\0';
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (command_available(s, &commands[i]))
			o += (size_t)snprintf(list + o, sizeof(list) - o, " %s", commands[i].verb);
	}
	smtp_session_reply(s, "214-2.0.0 Commands available now:");
	smtp_session_reply(s, "214-2.0.0  %s", list);
	smtp_session_reply(s, "214 2.0.0 See RFC 5321");
}

/* The 503 for a command that this state does not take (RFC 5321 §4.1.4). */
static void
wrong_state(struct smtp_session *s, const struct smtp_command *cmd)
{
	switch (s->state) {
	case SMTP_STATE_GREETING_SENT:
		smtp_session_error(s, "503 5.5.1 Error: send %s first",
		    (cmd->flags & SMTP_CMD_EHLO) != 0 ? "EHLO" : "HELO/EHLO");
		return;
	case SMTP_STATE_READY:
		smtp_session_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	default:
		smtp_session_error(s, "503 5.5.1 Error: %s not allowed in a mail transaction "
		    "(RSET first)", cmd->verb);
		return;
	}
}

/* Checks what the table asks of cmd, then runs it or refuses it. */
static void
command_run(struct smtp_session *s, const struct smtp_command *cmd, char *args)
{
	if (cmd->offered != NULL && !cmd->offered(s))
		cmd->refuse(s, args);
	else if ((cmd->flags & SMTP_CMD_PRE_TLS) == 0 && tls_required(s))
		smtp_session_error(s, "530 5.7.0 Must issue a STARTTLS command first");
	else if ((cmd->states & IN(s->state)) == 0)
		wrong_state(s, cmd);
	else if ((cmd->flags & SMTP_CMD_EHLO) != 0 && !s->esmtp)
		smtp_session_error(s, "503 5.5.1 Error: send EHLO first");
	else
		cmd->fn(s, args);
}

/* S6, Postfix's smtpd_junk_command_limit: a client that only ever sends
 * commands that move no mail (a bot holding a slot with NOOPs) runs into
 * smtp.max_errors. The command itself has been answered normally. */
static void
junk_count(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);

	if (s->closing || ++s->junk <= cfg->smtp_junk_command_limit)
		return;
	if (++s->errors >= cfg->smtp_max_errors) {
		log_info("event=too_many_errors session=%llx client=%s junk=%u",
		    (unsigned long long)s->id, s->ip, s->junk);
		smtp_session_close(s, "421 4.7.0 %s Error: too many errors", cfg->server_hostname);
	}
}

/* RFC 2920 §3.1: after a command that ends a group the client must wait for
 * the reply. Input already here was sent without waiting. When the command
 * succeeded that input runs (logged once per session); when it was refused,
 * the input was written for an outcome that did not happen (text behind a
 * refused DATA, commands behind a refused EHLO or STARTTLS): running it
 * would take message text for commands, so the session ends instead. */
static void
group_end(struct smtp_session *s, const struct smtp_command *cmd, bool refused)
{
	if (s->closing || evbuffer_get_length(conn_input(s->conn)) == 0)
		return;
	if (!s->out_of_step)
		log_info("event=improper_pipelining session=%llx client=%s after=%s%s",
		    (unsigned long long)s->id, s->ip, cmd->verb, refused ? " refused=yes" : "");
	s->out_of_step = true;
	if (refused && !s->busy)
		smtp_session_close(s, "554 5.5.0 Error: SMTP protocol synchronization: "
		    "commands sent after a refused %s without waiting for its reply", cmd->verb);
}

static const struct smtp_command *
command_find(const char *verb, size_t vlen)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strlen(commands[i].verb) == vlen && strncasecmp(verb, commands[i].verb, vlen) == 0)
			return &commands[i];
	}
	return NULL;
}

void
smtp_command_dispatch(struct smtp_session *s, char *line, size_t len)
{
	const char *args;
	size_t vlen = smtp_parse_verb(line, &args);
	const struct smtp_command *cmd = command_find(line, vlen);

	if (cmd == NULL) {
		smtp_session_error(s, len + 2 > SMTP_CMD_LINE_MAX ? "500 5.5.2 Error: line too long" :
		    "500 5.5.2 Error: command not recognized");
		return;
	}
	if (len + 2 > cmd->line_max) {
		smtp_session_error(s, "500 5.5.2 Error: line too long");
		return;
	}
	unsigned errors = s->errors;
	command_run(s, cmd, line + (args - line));
	bool refused = s->errors != errors;
	if ((cmd->flags & SMTP_CMD_JUNK) != 0)
		junk_count(s);
	if ((cmd->flags & SMTP_CMD_LAST) != 0)
		group_end(s, cmd, refused);
}
