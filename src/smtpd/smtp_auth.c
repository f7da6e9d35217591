/* smtp_auth.c: SMTP AUTH (RFC 4954) over the shared SASL module, with the
 * per-listener policy of MISSION A3 and A4 and the seed-002 authentication
 * tab (A6: TLS first under auth.mode, only the smtp-users list under
 * auth.verify_ids_local). A completed exchange is checked by auth/auth.c
 * (off the loop for password hashes); a failure is answered after a delay
 * that grows with the client IP's recent failures, and enough of them put
 * the IP on the dynamic screen (A7). */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/screen.h"
#include "conf/directory.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "mail/sasl.h"
#include "smtpd/smtp_session.h"

#define CHALLENGE_MAX 512

const struct listener_conf *
smtp_auth_conf(struct smtp_session *s)
{
	const struct config *cfg = smtp_server_config(s->srv);
	enum smtp_listener_kind k = s->tls ? SMTP_LISTENER_SMTPS : s->kind;

	return &cfg->listeners[k];
}

/* A4: PLAIN and LOGIN only under TLS unless the admin allows plaintext. */
static bool
mech_offered(struct smtp_session *s, enum sasl_mech mech)
{
	const struct config *cfg = smtp_server_config(s->srv);

	if (mech == SASL_MECH_CRAM_MD5)
		return cfg->auth_cram_md5;
	return s->tls || cfg->auth_allow_plaintext;
}

/* A6, seed 002 "Require TLS/SSL and authenticate ...": either choice of
 * auth.mode makes AUTH wait for TLS (RFC 3207 §4: 530 until STARTTLS). */
static bool
tls_first(struct smtp_session *s)
{
	return !s->tls && strcmp(smtp_server_config(s->srv)->auth_mode, "none") != 0;
}

/* A5: "disallow AUTH on the SMTP port" (MDaemon): as if AUTH did not exist. */
static bool
auth_disallowed(struct smtp_session *s)
{
	return s->kind == SMTP_LISTENER_MTA && smtp_server_config(s->srv)->smtp_auth_disallow;
}

bool
smtp_auth_ehlo(struct smtp_session *s, char *buf, size_t size)
{
	size_t o = 0;

	if (!smtp_auth_conf(s)->auth_password || auth_disallowed(s) || tls_first(s))
		return false;
	o += (size_t)snprintf(buf, size, "AUTH");
	for (int m = 0; m < SASL_MECH_COUNT && o < size; m++) {
		if (mech_offered(s, (enum sasl_mech)m))
			o += (size_t)snprintf(buf + o, size - o, " %s", sasl_mech_name(m));
	}
	return strcmp(buf, "AUTH") != 0;
}

static void
exchange_end(struct smtp_session *s)
{
	if (s->sasl != NULL) {
		sasl_exchange_clear(s->sasl);
		free(s->sasl);
		s->sasl = NULL;
	}
	if (s->state == SMTP_STATE_AUTH)
		smtp_session_enter(s, SMTP_STATE_READY);
}

/* A failed AUTH waits (A7) before its reply: one of the static texts below. */
struct fail_delay {
	struct smtp_session *s;
	const char *reply;
};

static const char reply_failed[] = "535 5.7.8 Error: authentication failed";
static const char reply_not_listed[] = "535 5.7.8 Error: authentication failed "
    "(not on the smtp-users list)";
static const char reply_weak[] = "534 5.7.9 Authentication mechanism is too weak "
    "(CRAM-MD5 is off for this user)";

static void
fail_delay_free(struct smtp_session *s)
{
	free(event_get_callback_arg(s->auth_delay));
	event_free(s->auth_delay);
	s->auth_delay = NULL;
}

void
smtp_auth_cleanup(struct smtp_session *s)
{
	if (s->auth_req != NULL) {
		auth_request_cancel(s->auth_req);
		s->auth_req = NULL;
	}
	if (s->auth_delay != NULL)
		fail_delay_free(s);
	exchange_end(s);
	free(s->auth_user);
	s->auth_user = NULL;
}

static void
on_fail_delay(evutil_socket_t fd, short what, void *arg)
{
	struct fail_delay *fd_arg = arg;
	struct smtp_session *s = fd_arg->s;
	const char *reply = fd_arg->reply;

	fail_delay_free(s);
	s->busy = false;
	smtp_session_error(s, "%s", reply);
	smtp_session_input(s);
}

/* Counts a failed login for the screen (A7), then answers reply after the
 * delay, or closes when the IP is now banned. */
static void
auth_failed(struct smtp_session *s, const char *user, const char *mech, const char *reply)
{
	const struct config *cfg = smtp_server_config(s->srv);
	unsigned n;
	/* The delay grows with the IP's recent failures (A7 throttling). */
	int delay = screen_login_failed(smtp_server_screen(s->srv), cfg, s->ip, "failed AUTH", &n);

	log_info("event=auth_failed session=%llx client=%s user=%s mech=%s recent=%u reason=%s",
	    (unsigned long long)s->id, s->ip, user, mech, n, reply == reply_failed ? "credentials" :
	    reply == reply_weak ? "mechanism" : "smtp-users");
	exchange_end(s);
	if (delay < 0) {
		s->busy = false;
		smtp_session_close(s, "421 4.7.0 %s Error: too many failed authentications",
		    cfg->server_hostname);
		smtp_session_input(s);
		return;
	}
	struct timeval tv = { (time_t)delay, 0 };
	struct fail_delay *fd_arg = xcalloc(1, sizeof(*fd_arg));
	fd_arg->s = s;
	fd_arg->reply = reply;
	s->busy = true;
	s->auth_delay = evtimer_new(smtp_server_base(s->srv), on_fail_delay, fd_arg);
	evtimer_add(s->auth_delay, &tv);
}

/* A6 "Verify IDs on local delivery" (seed 002): only users on the list of
 * those allowed to log on to SMTP may authenticate. */
static bool
may_log_on(struct smtp_session *s, const char *user)
{
	return !smtp_server_config(s->srv)->auth_verify_ids_local ||
	    directory_list_has(smtp_server_directory(s->srv), "smtp-users", user);
}

static void
on_verified(void *arg, enum auth_result result)
{
	struct smtp_session *s = arg;
	char user[SASL_NAME_MAX + 1];
	const char *mech = sasl_mech_name(s->sasl->mech);

	s->auth_req = NULL;
	snprintf(user, sizeof(user), "%s", s->sasl->authcid);
	if (result == AUTH_TEMPFAIL) {
		/* RFC 4954 §6: a temporary failure, not the client's fault. */
		exchange_end(s);
		s->busy = false;
		smtp_session_reply(s, "454 4.7.0 Temporary authentication failure");
		smtp_session_input(s);
		return;
	}
	if (result != AUTH_OK || !may_log_on(s, user)) {
		auth_failed(s, user, mech, result == AUTH_MECH_WEAK ? reply_weak :
		    result == AUTH_OK ? reply_not_listed : reply_failed);
		return;
	}
	s->auth_user = xstrdup(user);
	exchange_end(s);
	s->busy = false;
	log_info("event=auth session=%llx client=%s user=%s mech=%s", (unsigned long long)s->id,
	    s->ip, user, mech);
	smtp_session_reply(s, "235 2.7.0 Authentication successful");
	smtp_session_input(s);
}

/* Acts on what the SASL layer said about the client's latest message. */
static void
exchange_step(struct smtp_session *s, enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CHALLENGE:
		smtp_session_enter(s, SMTP_STATE_AUTH);
		smtp_session_reply(s, "334 %s", challenge);
		return;
	case SASL_VERIFY:
		s->busy = true;
		s->auth_req = auth_check(smtp_server_auth(s->srv), s->sasl, on_verified, s);
		return;
	case SASL_CANCELLED:
		exchange_end(s);
		smtp_session_error(s, "501 5.0.0 Error: authentication cancelled");
		return;
	case SASL_BAD_BASE64:
		exchange_end(s);
		smtp_session_error(s, "501 5.5.2 Error: invalid base64 data");
		return;
	case SASL_MALFORMED:
		exchange_end(s);
		smtp_session_error(s, "501 5.5.2 Error: malformed authentication response");
		return;
	}
}

void
smtp_auth_response(struct smtp_session *s, char *line)
{
	char challenge[CHALLENGE_MAX];

	exchange_step(s, sasl_continue(s->sasl, line, challenge, sizeof(challenge)), challenge);
}

void
smtp_auth_command(struct smtp_session *s, char *args)
{
	const struct config *cfg = smtp_server_config(s->srv);
	char challenge[CHALLENGE_MAX];

	if (auth_disallowed(s)) {
		if (cfg->smtp_auth_disallow_screen) {
			/* Whoever keeps trying AUTH here is guessing passwords. */
			time_t now = time(NULL);
			unsigned n = screen_failure(smtp_server_screen(s->srv), s->ip, now,
			    cfg->screen_window);
			if (n >= cfg->screen_auth_failures)
				screen_ban(smtp_server_screen(s->srv), s->ip, now, cfg->screen_ban_time,
				    "AUTH on the SMTP port");
			smtp_session_close(s, "421 4.7.0 %s Error: AUTH is not allowed on this port",
			    cfg->server_hostname);
			return;
		}
		smtp_session_error(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	if (!smtp_auth_conf(s)->auth_password) {
		smtp_session_error(s, "502 5.5.1 Error: AUTH command not available");
		return;
	}
	if (s->state == SMTP_STATE_GREETING_SENT || !s->esmtp) {
		smtp_session_error(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (tls_first(s)) {
		smtp_session_error(s, "530 5.7.0 Must issue a STARTTLS command first "
		    "(auth.mode=%s: AUTH only under TLS)", cfg->auth_mode);
		return;
	}
	if (s->auth_user != NULL) {
		smtp_session_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->state == SMTP_STATE_MAIL) {
		smtp_session_error(s, "503 5.5.1 Error: AUTH not allowed during a mail transaction");
		return;
	}
	char *mech_name = args;
	char *initial = strchr(args, ' ');
	if (initial != NULL)
		*initial++ = '\0';
	if (*mech_name == '\0' || (initial != NULL && (*initial == '\0' || strchr(initial, ' ')))) {
		smtp_session_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	enum sasl_mech mech = sasl_mech_parse(mech_name);
	if (mech == SASL_MECH_UNKNOWN || (mech == SASL_MECH_CRAM_MD5 && !cfg->auth_cram_md5)) {
		smtp_session_error(s, "504 5.5.4 Error: unsupported authentication mechanism");
		return;
	}
	if (!mech_offered(s, mech)) {
		smtp_session_error(s, "538 5.7.11 Encryption required for requested "
		    "authentication mechanism");
		return;
	}
	s->sasl = xcalloc(1, sizeof(*s->sasl));
	exchange_step(s, sasl_start(s->sasl, mech, initial, cfg->server_hostname, challenge,
	    sizeof(challenge)), challenge);
}
