#include "conf/settings.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xmalloc.h"
#include "mail/addr.h"

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define L(i, field) offsetof(struct config, listeners[i].field), sizeof(bool)
#define KB 1024ULL
#define MB (1024ULL * 1024)
#define GB (1024ULL * 1024 * 1024)

static const struct setting_def defs[] = {
	{ "server.hostname", SETTING_HOSTNAME, "", 0, 0, NULL, F(server_hostname), "S1",
	  "Host name in the greeting, EHLO reply, Received headers and Maildir file names; empty: the system host name" },
	{ "server.per_ip_exceptions", SETTING_CIDRS, "host", 0, 0, "host", F(server_per_ip_exceptions), "S6 P1",
	  "Clients exempt from smtp.max_sessions_per_ip and pop3.max_sessions_per_ip: addresses and CIDR ranges, comma-separated; host: this host's own addresses (loopback and those of its interfaces); empty: none. Not relay trust" },
	{ "log.level", SETTING_ENUM, "info", 0, 0, "error|warn|info|debug", F(log_level), "D2",
	  "Most verbose log level written to the log (see log.target)" },
	{ "log.target", SETTING_ENUM, "auto", 0, 0, "auto|stderr|journal|syslog", F(log_target), "D2",
	  "Where log lines go: stderr (time and name on each line), journal (stderr, each line led by its syslog priority, e.g. <6>, which journald reads), syslog (syslog(3), facility mail); auto: journal when standard error is the journal (its $JOURNAL_STREAM), else stderr" },
	{ "smtp.listen", SETTING_LISTEN, "127.0.0.1:2525", 0, 0, NULL, F(smtp_listen), "S7",
	  "SMTP listen addresses: ADDR:PORT, [IPv6]:PORT or *:PORT (all interfaces), comma-separated; empty disables the listener" },
	{ "submission.listen", SETTING_LISTEN, "127.0.0.1:2587", 0, 0, NULL, F(submission_listen), "A3 S7",
	  "Submission listen addresses (587 in production; STARTTLS offered), as smtp.listen" },
	{ "smtps.listen", SETTING_LISTEN, "127.0.0.1:2465", 0, 0, NULL, F(smtps_listen), "A2 S7",
	  "Implicit-TLS SMTP listen addresses (465 in production), as smtp.listen" },
	{ "tls.cert_file", SETTING_PATH, "", 0, 0, NULL, F(tls_cert_file), "A2",
	  "PEM certificate chain for STARTTLS and SMTPS; empty: a self-signed one made in DATA/tls/ at first start" },
	{ "tls.key_file", SETTING_PATH, "", 0, 0, NULL, F(tls_key_file), "A2",
	  "PEM private key of tls.cert_file" },
	{ "tls.min_protocol", SETTING_ENUM, "TLSv1.2", 0, 0, "TLSv1|TLSv1.1|TLSv1.2|TLSv1.3", F(tls_min_protocol), "A2",
	  "Oldest TLS version accepted" },
	{ "tls.ciphers", SETTING_TEXT, "", 0, 0, NULL, F(tls_ciphers), "A2",
	  "OpenSSL cipher list for TLS 1.2 and older; empty: OpenSSL's default" },
	{ "smtp.enabled", SETTING_BOOL, "yes", 0, 0, NULL, L(0, enabled), "A3",
	  "SMTP listener status (port 25 in production)" },
	{ "smtp.auth_password", SETTING_BOOL, "yes", 0, 0, NULL, L(0, auth_password), "A3",
	  "Name and password: AUTH offered on the SMTP listener (after STARTTLS smtps.auth_password decides)" },
	{ "smtp.auth_anonymous", SETTING_BOOL, "yes", 0, 0, NULL, L(0, auth_anonymous), "A3",
	  "Anonymous: mail accepted on the SMTP listener without AUTH" },
	{ "smtp.enforce_access", SETTING_BOOL, "no", 0, 0, NULL, L(0, enforce_access), "A3",
	  "Only IPs and users on the smtp access list (tegami access) may send; needs auth_password" },
	{ "submission.enabled", SETTING_BOOL, "yes", 0, 0, NULL, L(1, enabled), "A3",
	  "Submission listener status (port 587 in production)" },
	{ "submission.auth_password", SETTING_BOOL, "yes", 0, 0, NULL, L(1, auth_password), "A3",
	  "Name and password on the submission listener (after STARTTLS smtps.auth_password decides)" },
	{ "submission.auth_anonymous", SETTING_BOOL, "no", 0, 0, NULL, L(1, auth_anonymous), "A3",
	  "Anonymous mail on the submission listener (no: 530 5.7.0 until AUTH)" },
	{ "submission.enforce_access", SETTING_BOOL, "no", 0, 0, NULL, L(1, enforce_access), "A3",
	  "Only the submission access list may send; needs auth_password" },
	{ "smtps.enabled", SETTING_BOOL, "yes", 0, 0, NULL, L(2, enabled), "A3",
	  "Implicit-TLS listener status (port 465 in production)" },
	{ "smtps.auth_password", SETTING_BOOL, "yes", 0, 0, NULL, L(2, auth_password), "A3",
	  "Name and password on TLS: the SMTPS listener and STARTTLS sessions of the other two" },
	{ "smtps.auth_anonymous", SETTING_BOOL, "no", 0, 0, NULL, L(2, auth_anonymous), "A3",
	  "Anonymous mail on the SMTPS listener" },
	{ "smtps.enforce_access", SETTING_BOOL, "no", 0, 0, NULL, L(2, enforce_access), "A3",
	  "Only the smtps access list may send; needs auth_password" },
	{ "auth.allow_plaintext", SETTING_BOOL, "no", 0, 0, NULL, F(auth_allow_plaintext), "A4",
	  "Offer PLAIN and LOGIN (and POP3 USER/PASS) on unencrypted connections" },
	{ "auth.cram_md5", SETTING_BOOL, "yes", 0, 0, NULL, F(auth_cram_md5), "A1 A8",
	  "Offer CRAM-MD5 (each user also needs a CRAM-MD5 secret: tegami user cram-md5)" },
	{ "auth.cache_ttl", SETTING_UINT, "300", 0, 86400, NULL, F(auth_cache_ttl), "A1",
	  "Seconds a verified password is remembered (as a keyed hash) to skip the slow hash; 0: off" },
	{ "auth.fail_delay_max", SETTING_UINT, "5", 0, 60, NULL, F(auth_fail_delay_max), "A7",
	  "Most seconds a failed AUTH is delayed; the delay grows by one second per recent failure of the IP" },
	{ "auth.mode", SETTING_ENUM, "none", 0, 0, "none|local_and_relay|relay_only", F(auth_mode), "A6",
	  "Allow authentication (seed 002): none; local_and_relay: TLS and AUTH for all mail; relay_only: TLS and AUTH to relay. Either of the two: AUTH only under TLS (not in EHLO before STARTTLS; 530 5.7.0)" },
	{ "auth.verify_ids_local", SETTING_BOOL, "no", 0, 0, NULL, F(auth_verify_ids_local), "A6",
	  "Verify IDs on local delivery (seed 002): only users on the smtp-users list (tegami list) may authenticate to SMTP; others get 535 and count as failed logins (A7)" },
	{ "auth.verify_originator", SETTING_BOOL, "no", 0, 0, NULL, F(auth_verify_originator), "A6",
	  "Verify message originator: a From: header is required and, after AUTH, must be the user" },
	{ "auth.verify_mail_from", SETTING_ENUM, "none", 0, 0, "none|all|not_accept_list", F(auth_verify_mail_from), "A6",
	  "Verify mail from user (all, or senders not on the accept list): after AUTH the sender must be the user; without AUTH a sender in a local domain must exist in the directory (553 5.7.1)" },
	{ "auth.require_local_sender", SETTING_BOOL, "yes", 0, 0, NULL, F(auth_require_local_sender), "A5",
	  "Mail from local accounts always requires AUTH" },
	{ "auth.local_sender_except_local_rcpt", SETTING_BOOL, "no", 0, 0, NULL, F(auth_local_sender_except_local_rcpt), "A5",
	  "...except when every recipient is local" },
	{ "auth.local_sender_except_other_server", SETTING_BOOL, "yes", 0, 0, NULL, F(auth_local_sender_except_other_server), "A5",
	  "...except senders of a local domain that have no mailbox here (they live on another server of the domain)" },
	{ "auth.require_local_ip", SETTING_BOOL, "yes", 0, 0, NULL, F(auth_require_local_ip), "A5",
	  "Mail from local IPs (auth.local_networks) always requires AUTH; the trusted list (tegami list) is exempt" },
	{ "auth.local_networks", SETTING_CIDRS, "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,fe80::/10", 0, 0, NULL, F(auth_local_networks), "A5",
	  "What auth.require_local_ip calls local IPs" },
	{ "auth.match_return_path", SETTING_BOOL, "yes", 0, 0, NULL, F(auth_match_return_path), "A5",
	  "The AUTH identity must be the MAIL FROM address (the exempt list is exempt)" },
	{ "auth.match_from_header", SETTING_BOOL, "yes", 0, 0, NULL, F(auth_match_from_header), "A5",
	  "The AUTH identity must be the From: header address (the exempt list is exempt)" },
	{ "auth.require_for_postmaster", SETTING_BOOL, "yes", 0, 0, NULL, F(auth_require_for_postmaster), "A5",
	  "Mail from postmaster@, abuse@ and webmaster@ of every local domain, and from local aliases leading to them, always requires AUTH (530 5.7.0)" },
	{ "auth.skip_pop_before_smtp", SETTING_BOOL, "yes", 0, 0, NULL, F(auth_skip_pop_before_smtp), "A5 R1",
	  "Authenticated sessions skip POP-before-SMTP checks (with the relay rules)" },
	{ "smtp.auth_disallow", SETTING_BOOL, "no", 0, 0, NULL, F(smtp_auth_disallow), "A5",
	  "Disallow AUTH on the SMTP (port 25) listener: not advertised, and answered as an unknown command" },
	{ "smtp.auth_disallow_screen", SETTING_BOOL, "no", 0, 0, NULL, F(smtp_auth_disallow_screen), "A5 A7",
	  "...and close at once, putting IPs that keep trying on the dynamic screen" },
	{ "pop3.listen", SETTING_LISTEN, "127.0.0.1:2110", 0, 0, NULL, F(pop3_listen), "P1 S7",
	  "POP3 listen addresses (110 in production; STLS offered); empty disables it" },
	{ "pop3s.listen", SETTING_LISTEN, "127.0.0.1:2995", 0, 0, NULL, F(pop3s_listen), "P1 S7",
	  "POP3S (implicit TLS) listen addresses (995 in production); empty disables it" },
	{ "pop3.alwssl", SETTING_ENUM, "all", 0, 0, "all|only|none", F(pop3_alwssl), "P1",
	  "Seed ALWSSL: all = secure and non-secure sessions; only = login only over TLS (POP3S or after STLS); none = no TLS (no STLS, no POP3S)" },
	{ "pop3.timeout", SETTING_UINT, "600", 30, 86400, NULL, F(pop3_timeout), "P2",
	  "Seconds of inactivity before a POP3 session is closed (RFC 1939: at least 10 minutes)" },
	{ "pop3.command_max_time", SETTING_UINT, "120", 1, 86400, NULL, F(pop3_command_max_time), "P2",
	  "Seconds one command line may take from its first octet to its end (then the session is closed)" },
	{ "pop3.max_sessions", SETTING_UINT, "1000", 1, 1000000, NULL, F(pop3_max_sessions), "P1",
	  "Concurrent POP3 sessions in total; more get -ERR [SYS/TEMP] at connect" },
	{ "pop3.max_sessions_per_ip", SETTING_UINT, "50", 1, 1000000, NULL, F(pop3_max_sessions_per_ip), "P1",
	  "Concurrent POP3 sessions from one client IP" },
	{ "screen.enabled", SETTING_BOOL, "yes", 0, 0, NULL, F(screen_enabled), "A7",
	  "Dynamic screen: ban IPs that fail AUTH too often" },
	{ "screen.auth_failures", SETTING_UINT, "10", 1, 100000, NULL, F(screen_auth_failures), "A7",
	  "Failed AUTH attempts within screen.window that ban an IP" },
	{ "screen.window", SETTING_UINT, "600", 1, 86400, NULL, F(screen_window), "A7",
	  "Seconds over which failed AUTH attempts are counted" },
	{ "screen.ban_time", SETTING_UINT, "1800", 1, 31536000, NULL, F(screen_ban_time), "A7",
	  "Seconds a screened IP is refused at connect (421 4.7.0)" },
	{ "smtp.max_message_size", SETTING_SIZE, "10485760", 1 * KB, 2 * GB, NULL, F(smtp_max_message_size), "S3 S6",
	  "Largest message accepted, in bytes (advertised as SIZE; larger DATA gets 552 5.3.4)" },
	{ "smtp.max_recipients", SETTING_UINT, "100", 1, 100000, NULL, F(smtp_max_recipients), "S6",
	  "Recipients per message; RCPT beyond it gets 452 4.5.3" },
	{ "smtp.max_sessions", SETTING_UINT, "1000", 1, 1000000, NULL, F(smtp_max_sessions), "S6",
	  "Concurrent SMTP sessions in total; more get 421 4.7.0 at connect" },
	{ "smtp.max_sessions_per_ip", SETTING_UINT, "50", 1, 1000000, NULL, F(smtp_max_sessions_per_ip), "S6",
	  "Concurrent SMTP sessions from one client IP; more get 421 4.7.0 at connect" },
	{ "smtp.timeout_command", SETTING_UINT, "300", 1, 86400, NULL, F(smtp_timeout_command), "S6",
	  "Seconds to wait for the next command (RFC 5321 4.5.3.2.7); then 421 4.4.2 and close" },
	{ "smtp.timeout_data", SETTING_UINT, "180", 1, 86400, NULL, F(smtp_timeout_data), "S6",
	  "Seconds to wait for the next chunk of DATA (RFC 5321 4.5.3.2.5); then 421 4.4.2 and close" },
	{ "smtp.command_max_time", SETTING_UINT, "120", 1, 86400, NULL, F(smtp_command_max_time), "S6",
	  "Seconds one command line may take from its first octet to its end, however slowly it trickles in (then 421 4.4.2)" },
	{ "smtp.data_max_time", SETTING_UINT, "3600", 1, 86400, NULL, F(smtp_data_max_time), "S6",
	  "Seconds the message after DATA may take in all, however slowly it trickles in (then 421 4.4.2)" },
	{ "smtp.max_errors", SETTING_UINT, "20", 1, 10000, NULL, F(smtp_max_errors), "S6",
	  "Protocol errors in one session before 421 4.7.0 and close" },
	{ "smtp.junk_command_limit", SETTING_UINT, "100", 1, 1000000, NULL, F(smtp_junk_command_limit), "S1 S6",
	  "Commands that move no mail (EHLO, HELO, NOOP, RSET, VRFY, HELP) a session may send; past it each one counts towards smtp.max_errors. Restarts after each accepted message" },
	{ "smtp.allow_bare_lf", SETTING_BOOL, "no", 0, 0, NULL, F(smtp_allow_bare_lf), "S3",
	  "Accept bare LF / bare CR line endings (off: rejected with 550 5.5.2, the SMTP smuggling defence)" },
	{ "smtp.percent_routing", SETTING_BOOL, "no", 0, 0, NULL, F(smtp_percent_routing), "S4",
	  "Treat user%host@local-domain as user@host (the % routing character)" },
	{ "smtp.relay_mode", SETTING_ENUM, "address_list", 0, 0, "allow_all|block_all|near_domains|address_list|both_lists|pop_clients", F(smtp_relay_mode), "R1",
	  "Who may relay without AUTH (seed 002 relay restrictions): allow_all; block_all (nobody, not even after AUTH); near_domains: to recipients in the near-domains list; address_list: clients on the address relay list; both_lists: either of the two; pop_clients: clients whose address logged in over POP3 within smtp.pop_before_smtp_minutes. Authenticated senders may relay in every mode but block_all (with pop_clients only if auth.skip_pop_before_smtp). Lists: tegami relay" },
	{ "smtp.pop_before_smtp_minutes", SETTING_UINT, "240", 15, 65535, NULL, F(smtp_pop_before_smtp_minutes), "R1 P3",
	  "POP-before-SMTP window: minutes after a POP3 login during which its client address may relay (smtp.relay_mode=pop_clients)" },
	{ "smtp.pop_overrides_refused", SETTING_BOOL, "no", 0, 0, NULL, F(smtp_pop_overrides_refused), "R3",
	  "Seed OVERRJTCNN: with smtp.relay_mode=pop_clients, a client inside the POP-before-SMTP window may connect (and relay) although its address is refused (tegami refuse) or listed by a DNSBL" },
	{ "smtp.dnsbl_zones", SETTING_DOMAINS, "", 0, 0, NULL, F(smtp_dnsbl_zones), "R2",
	  "DNS blocklists (RBL) asked at connect, comma-separated zones (tegami dnsbl); a client they list (127.0.0.2-255) gets 554 5.7.1 with the list's TXT; empty: none" },
	{ "smtp.dnsbl_timeout", SETTING_UINT, "3000", 100, 60000, NULL, F(smtp_dnsbl_timeout), "R2",
	  "Milliseconds the greeting waits for the DNSBL answers; a list that has not answered by then does not list the client" },
	{ "storage.min_free", SETTING_SIZE, "67108864", 0, UINT64_MAX, NULL, F(storage_min_free), "S6",
	  "Free bytes the data filesystem must keep; below it MAIL gets 452 4.3.1" },
	{ "queue.workers", SETTING_UINT, "8", 1, 256, NULL, F(queue_workers), "S5",
	  "Threads that write and fsync the spool and Maildir files (read at start-up)" },
	{ "route.router", SETTING_HOSTPORT, "", 0, 0, NULL, F(route_router), "O1",
	  "Mail router (seed: メール・ルーター), HOST[:PORT]: takes non-local mail whose destination cannot be resolved, or all of it with route.firewall; empty = none" },
	{ "route.firewall", SETTING_BOOL, "no", 0, 0, NULL, F(route_firewall), "O1",
	  "Forward all outgoing mail through the mail router (seed: ファイアウォールを介したルーターへの発信メールの転送)" },
	{ "route.mailhub", SETTING_HOSTPORT, "", 0, 0, NULL, F(route_mailhub), "O1",
	  "Forwarding mailhub, HOST[:PORT]: mail for unknown users of the local domains is accepted and forwarded there (a domain shared with another server); empty = none" },
	{ "dns.servers", SETTING_SERVERS, "", 0, 0, NULL, F(dns_servers), "O1",
	  "Resolvers for MX/A/AAAA lookups, IP[:PORT],...; empty = those of /etc/resolv.conf" },
	{ "dns.timeout", SETTING_UINT, "3000", 100, 60000, NULL, F(dns_timeout), "O1",
	  "Milliseconds one DNS query waits for an answer before the next try" },
	{ "dns.tries", SETTING_UINT, "3", 1, 10, NULL, F(dns_tries), "O1",
	  "Tries per DNS query and resolver" },
	{ "relay.port", SETTING_UINT, "25", 1, 65535, NULL, F(relay_port), "O1",
	  "Port of MX hosts and of routes without a port" },
	{ "relay.helo_name", SETTING_HOSTNAME, "", 0, 0, NULL, F(relay_helo_name), "O1",
	  "Name sent in EHLO/HELO to other servers; empty = server.hostname" },
	{ "relay.tls", SETTING_ENUM, "may", 0, 0, "none|may|encrypt|verify", F(relay_tls), "O1 A2",
	  "STARTTLS to other servers: none, may (when offered, unverified: RFC 7435), encrypt (required), verify (required, certificate chain and name checked)" },
	{ "relay.tls_min_protocol", SETTING_ENUM, "TLSv1.2", 0, 0, "TLSv1|TLSv1.1|TLSv1.2|TLSv1.3", F(relay_tls_min_protocol), "O1 A2",
	  "Lowest TLS version offered to other servers" },
	{ "relay.tls_ca_file", SETTING_PATH, "", 0, 0, NULL, F(relay_tls_ca_file), "O1 A2",
	  "PEM file of trusted CAs for relay.tls=verify; empty = the system's" },
	{ "relay.connect_timeout", SETTING_UINT, "30", 1, 600, NULL, F(relay_connect_timeout), "O1",
	  "Seconds a connection to another server may take" },
	{ "relay.command_timeout", SETTING_UINT, "300", 1, 3600, NULL, F(relay_command_timeout), "O1",
	  "Seconds to wait for each reply of another server (RFC 5321 §4.5.3.2)" },
	{ "relay.data_timeout", SETTING_UINT, "600", 1, 3600, NULL, F(relay_data_timeout), "O1",
	  "Seconds to wait for the reply after the message (RFC 5321 §4.5.3.2: 10 minutes)" },
	{ "relay.max_connections", SETTING_UINT, "100", 1, 10000, NULL, F(relay_max_connections), "O1",
	  "Outgoing SMTP connections at once, in all" },
	{ "relay.max_per_destination", SETTING_UINT, "20", 1, 1000, NULL, F(relay_max_per_destination), "O1",
	  "Outgoing SMTP connections at once to one destination" },
	{ "relay.max_rcpts", SETTING_UINT, "50", 1, 1000, NULL, F(relay_max_rcpts), "O1",
	  "Recipients per outgoing transaction (more are sent in further transactions)" },
	{ "relay.max_messages_per_connection", SETTING_UINT, "100", 1, 100000, NULL, F(relay_max_messages_per_connection), "O1",
	  "Messages sent over one connection before it is closed" },
	{ "relay.smarthost", SETTING_HOSTNAME, "", 0, 0, NULL, F(relay_smarthost), "C1 X1",
	  "SMTP server (seed: SMTP SERVER) all remote mail goes to through the default profile, with its port, TLS and login (tegami smtpauth, tegami profile); empty = by MX unless a login is configured" },
	{ "relay.pop_before_smtp_interval", SETTING_UINT, "300", 10, 86400, NULL, F(relay_pop_before_smtp_interval), "C4",
	  "Seconds a POP-before-SMTP login to a profile's POP3 server counts; after that the next SMTP session logs in again" },
	{ "queue.retry1_count", SETTING_UINT, "3", 0, 99, NULL, F(queue_retry1_count), "O2",
	  "First-level retries (seed: QTMSRTQ1) after a temporary failure" },
	{ "queue.retry1_interval", SETTING_UINT, "1800", 1, 604800, NULL, F(queue_retry1_interval), "O2",
	  "Seconds between first-level retries" },
	{ "queue.retry2_count", SETTING_UINT, "28", 0, 999, NULL, F(queue_retry2_count), "O2",
	  "Second-level retries (seed: QTMSRTQ2) once the first level is used up; then a non-delivery report" },
	{ "queue.retry2_interval", SETTING_UINT, "14400", 1, 604800, NULL, F(queue_retry2_interval), "O2",
	  "Seconds between second-level retries" },
	{ "queue.max_age", SETTING_UINT, "432000", 60, 31536000, NULL, F(queue_max_age), "O2",
	  "Seconds a message may stay in the queue before what is left of it is returned" },
	{ "queue.nondelivery", SETTING_ADDRESS, "", 0, 0, NULL, F(queue_nondelivery), "O2",
	  "Address that gets a copy of every non-delivery report (seed: NONDELIVERY); empty = none" },
	{ "dsn.enabled", SETTING_BOOL, "yes", 0, 0, NULL, F(dsn_enabled), "O3 S2",
	  "Support Delivery Status Notification (RFC 3461): DSN in EHLO, NOTIFY/ORCPT/RET/ENVID accepted" },
	{ "dsn.responsible", SETTING_ADDRESS, "", 0, 0, NULL, F(dsn_responsible), "O3",
	  "DSN responsible person (seed: DSN 通知責任者): gets the reports that cannot be returned to their sender; empty = they are dropped and logged" },
	{ "etrn.domains", SETTING_DOMAINS, "", 0, 0, NULL, F(etrn_domains), "O4",
	  "Domains whose queued mail a client may start with ETRN (RFC 1985); empty = ETRN refused" },
	{ "etrn.remote", SETTING_HOSTPORT, "", 0, 0, NULL, F(etrn_remote), "O4",
	  "Server to send ETRN to on a schedule (a dial-up site's provider), HOST[:PORT]; empty = none" },
	{ "etrn.remote_domains", SETTING_DOMAINS, "", 0, 0, NULL, F(etrn_remote_domains), "O4",
	  "Domains named in the scheduled ETRN" },
	{ "etrn.interval", SETTING_UINT, "0", 0, 10080, NULL, F(etrn_interval), "O4",
	  "Minutes between scheduled ETRNs and queue runs (seed: メール転送間隔); 0 = off" },
};

const struct setting_def *
settings_defs(size_t *count_r)
{
	*count_r = sizeof(defs) / sizeof(defs[0]);
	return defs;
}

const struct setting_def *
settings_find(const char *key)
{
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		if (strcmp(defs[i].key, key) == 0)
			return &defs[i];
	}
	return NULL;
}

static int
parse_bool(const char *v, bool *b_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*b_r = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*b_r = false;
			return 0;
		}
	}
	return -1;
}

static int
validate_enum(const char *choices, const char *value)
{
	size_t vlen = strlen(value);
	const char *p = choices;

	while (*p != '\0') {
		size_t n = strcspn(p, "|");
		if (n == vlen && strncmp(p, value, n) == 0)
			return 0;
		p += n;
		if (*p == '|')
			p++;
	}
	return -1;
}

static int
validate_number(const struct setting_def *def, const char *value, char *norm,
    const char **error_r)
{
	uint64_t v;
	int rc = def->type == SETTING_SIZE ? str_parse_size(value, &v) : str_parse_u64(value, &v);

	if (rc < 0) {
		*error_r = def->type == SETTING_SIZE ?
		    "not a size (bytes, or a number with K, M or G)" : "not a whole number";
		return -1;
	}
	if (v < def->min || v > def->max) {
		*error_r = "out of range";
		return -1;
	}
	snprintf(norm, CONFIG_STR_MAX, "%llu", (unsigned long long)v);
	return 0;
}

/* A comma-separated list whose every item item_ok accepts. */
static int
list_validate(const char *value, bool (*item_ok)(const char *item))
{
	char item[300];

	for (const char *p = value; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(item))
			return -1;
		memcpy(item, p, n);
		item[n] = '\0';
		if (!item_ok(item))
			return -1;
		p += n;
		if (*p == ',' && *++p == '\0')
			return -1;
	}
	return 0;
}

static int
cidr_list_validate(const char *value)
{
	return list_validate(value, netaddr_cidr_valid);
}

/* An address, a CIDR range, or the word host (this host's own addresses). */
static bool
cidr_or_host_valid(const char *item)
{
	return netaddr_cidr_valid(item) || strcmp(item, "host") == 0;
}

static bool
server_item_valid(const char *item)
{
	char host[256];
	unsigned port;
	const char *error;

	return netaddr_hostport_parse(item, host, sizeof(host), 53, &port, &error) == 0 &&
	    netaddr_is_ip(host);
}

static int
server_list_validate(const char *value)
{
	return list_validate(value, server_item_valid);
}

static bool
domain_item_valid(const char *item)
{
	return addr_domain_valid(item);
}

static int
hostport_validate(const char *value, const char **error_r)
{
	char host[256];
	unsigned port;

	return netaddr_hostport_parse(value, host, sizeof(host), 25, &port, error_r);
}

int
settings_validate(const struct setting_def *def, const char *value, char *norm,
    const char **error_r)
{
	bool b;

	bool is_text = def->type != SETTING_BOOL && def->type != SETTING_UINT &&
	    def->type != SETTING_SIZE;
	if (strlen(value) >= CONFIG_STR_MAX || (is_text && strlen(value) >= def->size)) {
		*error_r = "value too long";
		return -1;
	}
	switch (def->type) {
	case SETTING_BOOL:
		if (parse_bool(value, &b) < 0) {
			*error_r = "not yes or no";
			return -1;
		}
		str_copy(norm, b ? "yes" : "no", CONFIG_STR_MAX);
		return 0;
	case SETTING_UINT:
	case SETTING_SIZE:
		return validate_number(def, value, norm, error_r);
	case SETTING_HOSTNAME:
		if (*value != '\0' && !addr_domain_valid(value)) {
			*error_r = "not a valid host name";
			return -1;
		}
		break;
	case SETTING_LISTEN:
		if (netaddr_listen_validate(value, error_r) < 0)
			return -1;
		break;
	case SETTING_ENUM:
		if (validate_enum(def->choices, value) < 0) {
			*error_r = "not one of the allowed values";
			return -1;
		}
		break;
	case SETTING_PATH:
		if (*value != '\0' && access(value, R_OK) < 0) {
			*error_r = "no readable file there";
			return -1;
		}
		break;
	case SETTING_CIDRS:
		if (def->choices != NULL ? list_validate(value, cidr_or_host_valid) < 0 :
		    cidr_list_validate(value) < 0) {
			*error_r = def->choices != NULL ?
			    "not a comma-separated list of IP addresses, CIDR ranges or host" :
			    "not a comma-separated list of IP addresses or CIDR ranges";
			return -1;
		}
		break;
	case SETTING_HOSTPORT:
		if (*value != '\0' && hostport_validate(value, error_r) < 0)
			return -1;
		break;
	case SETTING_SERVERS:
		if (server_list_validate(value) < 0) {
			*error_r = "not a comma-separated list of IP[:PORT] / [IPv6][:PORT]";
			return -1;
		}
		break;
	case SETTING_ADDRESS:
		if (*value != '\0' && (strchr(value, '@') == NULL || strchr(value, ' ') != NULL ||
		    !addr_domain_valid(strrchr(value, '@') + 1) || value[0] == '@')) {
			*error_r = "not an address local@domain";
			return -1;
		}
		break;
	case SETTING_DOMAINS:
		if (list_validate(value, domain_item_valid) < 0) {
			*error_r = "not a comma-separated list of domain names";
			return -1;
		}
		break;
	case SETTING_TEXT:
		for (const char *p = value; *p != '\0'; p++) {
			if (*p <= ' ' || *p > '~') {
				*error_r = "only printable characters without blanks";
				return -1;
			}
		}
		break;
	}
	str_copy(norm, value, CONFIG_STR_MAX);
	return 0;
}

static void
apply_value(const struct setting_def *def, const char *value, struct config *cfg)
{
	char *field = (char *)cfg + def->offset;
	uint64_t v = 0;
	bool b = false;

	switch (def->type) {
	case SETTING_BOOL:
		(void)parse_bool(value, &b);
		*(bool *)(void *)field = b;
		break;
	case SETTING_UINT:
	case SETTING_SIZE:
		(void)str_parse_size(value, &v);
		*(uint64_t *)(void *)field = v;
		break;
	default:
		str_copy(field, value, def->size);
		break;
	}
}

int
settings_get(struct sqlite3 *db, const char *key, char *buf)
{
	const struct setting_def *def = settings_find(key);

	if (def == NULL)
		return -1;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT value FROM settings WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		str_copy(buf, (const char *)sqlite3_column_text(st, 0), CONFIG_STR_MAX);
	else
		str_copy(buf, def->def, CONFIG_STR_MAX);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

bool
settings_is_stored(struct sqlite3 *db, const char *key)
{
	sqlite3_stmt *st = NULL;
	bool found = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM settings WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

int
config_load(struct sqlite3 *db, struct config *cfg, char **error_r)
{
	char value[CONFIG_STR_MAX];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		if (settings_get(db, defs[i].key, value) < 0) {
			*error_r = xasprintf("cannot read setting %s: %s", defs[i].key,
			    sqlite3_errmsg(db));
			return -1;
		}
		apply_value(&defs[i], value, cfg);
	}
	if (cfg->server_hostname[0] == '\0') {
		if (gethostname(cfg->server_hostname, sizeof(cfg->server_hostname) - 1) < 0 ||
		    cfg->server_hostname[0] == '\0')
			str_copy(cfg->server_hostname, "localhost", sizeof(cfg->server_hostname));
	}
	return 0;
}

int
settings_store(struct sqlite3 *db, const char *key, const char *value, char **error_r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, "INSERT INTO settings(key, value) VALUES(?, ?) "
	    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", -1, &st, NULL) != SQLITE_OK) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xstrdup(sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

int
config_check(const struct config *cfg, char *err, size_t errsize)
{
	static const char *const names[CONFIG_LISTENERS] = { "smtp", "submission", "smtps" };

	for (int i = 0; i < CONFIG_LISTENERS; i++) {
		const struct listener_conf *l = &cfg->listeners[i];
		if (l->enabled && !l->auth_password && !l->auth_anonymous) {
			snprintf(err, errsize, "%s is enabled but neither %s.auth_password nor "
			    "%s.auth_anonymous is yes: set one of them (or %s.enabled=no)",
			    names[i], names[i], names[i], names[i]);
			return -1;
		}
		if (l->enforce_access && !l->auth_password) {
			snprintf(err, errsize, "%s.enforce_access needs %s.auth_password=yes",
			    names[i], names[i]);
			return -1;
		}
	}
	return 0;
}
