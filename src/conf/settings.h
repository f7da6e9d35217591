/* settings.h: the one table of settings. It feeds validation in `tegami config
 * set`, `tegami config show`, the daemon's typed struct config, and the
 * reference table in docs/settings.md (checked by a test). */
#ifndef TEGAMI_SETTINGS_H
#define TEGAMI_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;

enum setting_type {
	SETTING_BOOL,     /* yes/no (also true/false, on/off, 1/0) */
	SETTING_UINT,     /* decimal, min..max */
	SETTING_SIZE,     /* bytes, K/M/G suffix allowed, min..max */
	SETTING_HOSTNAME, /* RFC 5321 Domain, or empty for the system name */
	SETTING_LISTEN,   /* comma-separated ADDR:PORT, [IPv6]:PORT, *:PORT; empty = off */
	SETTING_ENUM,     /* one of a '|'-separated list */
	SETTING_PATH,     /* a readable file, or empty */
	SETTING_TEXT,     /* printable ASCII without blanks, or empty */
	SETTING_CIDRS,    /* comma-separated IP addresses / CIDR ranges (and the
	                     word host where `choices` is "host"), or empty */
	SETTING_HOSTPORT, /* HOST[:PORT] or [IP][:PORT], or empty */
	SETTING_SERVERS,  /* comma-separated IP[:PORT] / [IPv6][:PORT], or empty */
	SETTING_ADDRESS,  /* local@domain, or empty */
	SETTING_DOMAINS,  /* comma-separated domain names, or empty */
};

#define CONFIG_STR_MAX 1024

/* Per-listener policy (A3, seed 001): port status and authentication options. */
struct listener_conf {
	bool enabled;
	bool auth_password;   /* "name and password": AUTH offered */
	bool auth_anonymous;  /* mail accepted without AUTH */
	bool enforce_access;  /* only the listener's access list may send */
};

#define CONFIG_LISTENERS 3 /* smtp, submission, smtps (enum smtp_listener_kind) */

/* The typed view of every setting, as the daemon uses it. */
struct config {
	struct listener_conf listeners[CONFIG_LISTENERS];
	bool auth_allow_plaintext;
	bool auth_cram_md5;
	uint64_t auth_cache_ttl;
	uint64_t auth_fail_delay_max;
	char auth_mode[24];
	bool auth_verify_ids_local;
	bool auth_verify_originator;
	char auth_verify_mail_from[24];
	bool auth_require_local_sender;
	bool auth_local_sender_except_local_rcpt;
	bool auth_local_sender_except_other_server;
	bool auth_require_local_ip;
	char auth_local_networks[CONFIG_STR_MAX];
	bool auth_match_return_path;
	bool auth_match_from_header;
	bool auth_require_for_postmaster;
	bool auth_skip_pop_before_smtp;
	bool smtp_auth_disallow;
	bool smtp_auth_disallow_screen;
	char pop3_listen[CONFIG_STR_MAX];
	char pop3s_listen[CONFIG_STR_MAX];
	char pop3_alwssl[8];
	uint64_t pop3_timeout;
	uint64_t pop3_command_max_time;
	uint64_t pop3_max_sessions;
	uint64_t pop3_max_sessions_per_ip;
	bool screen_enabled;
	uint64_t screen_auth_failures;
	uint64_t screen_window;
	uint64_t screen_ban_time;
	char server_hostname[256];
	char server_per_ip_exceptions[CONFIG_STR_MAX];
	char log_level[16];
	char log_target[16];
	char smtp_listen[CONFIG_STR_MAX];
	char submission_listen[CONFIG_STR_MAX];
	char smtps_listen[CONFIG_STR_MAX];
	char tls_cert_file[CONFIG_STR_MAX];
	char tls_key_file[CONFIG_STR_MAX];
	char tls_min_protocol[16];
	char tls_ciphers[CONFIG_STR_MAX];
	uint64_t smtp_max_message_size;
	uint64_t smtp_max_recipients;
	uint64_t smtp_max_sessions;
	uint64_t smtp_max_sessions_per_ip;
	uint64_t smtp_timeout_command;
	uint64_t smtp_timeout_data;
	uint64_t smtp_command_max_time;
	uint64_t smtp_data_max_time;
	uint64_t smtp_max_errors;
	uint64_t smtp_junk_command_limit;
	bool smtp_allow_bare_lf;
	bool smtp_percent_routing;
	char smtp_relay_mode[24];
	uint64_t smtp_pop_before_smtp_minutes;
	bool smtp_pop_overrides_refused;
	char smtp_dnsbl_zones[CONFIG_STR_MAX];
	uint64_t smtp_dnsbl_timeout;
	uint64_t storage_min_free;
	uint64_t queue_workers;
	/* outbound (O1-O6, S2) */
	char route_router[CONFIG_STR_MAX];
	bool route_firewall;
	char route_mailhub[CONFIG_STR_MAX];
	char dns_servers[CONFIG_STR_MAX];
	uint64_t dns_timeout;
	uint64_t dns_tries;
	uint64_t relay_port;
	char relay_helo_name[256];
	char relay_tls[16];
	char relay_tls_min_protocol[16];
	char relay_tls_ca_file[CONFIG_STR_MAX];
	uint64_t relay_connect_timeout;
	uint64_t relay_command_timeout;
	uint64_t relay_data_timeout;
	uint64_t relay_max_connections;
	uint64_t relay_max_per_destination;
	uint64_t relay_max_rcpts;
	uint64_t relay_max_messages_per_connection;
	char relay_smarthost[256];
	uint64_t relay_pop_before_smtp_interval;
	uint64_t queue_retry1_count;
	uint64_t queue_retry1_interval;
	uint64_t queue_retry2_count;
	uint64_t queue_retry2_interval;
	uint64_t queue_max_age;
	char queue_nondelivery[CONFIG_STR_MAX];
	bool dsn_enabled;
	char dsn_responsible[CONFIG_STR_MAX];
	char etrn_domains[CONFIG_STR_MAX];
	char etrn_remote[CONFIG_STR_MAX];
	char etrn_remote_domains[CONFIG_STR_MAX];
	uint64_t etrn_interval;
};

struct setting_def {
	const char *key;
	enum setting_type type;
	const char *def;      /* default, in the text form `config show` prints */
	uint64_t min, max;    /* UINT and SIZE */
	const char *choices;  /* ENUM: "a|b|c"; CIDRS: "host" to allow that word */
	size_t offset;        /* into struct config */
	size_t size;          /* of the field (strings) */
	const char *req;      /* requirement IDs from MISSION.md */
	const char *desc;     /* one line, for docs and `config show --long` */
};

/* The table and its length. */
const struct setting_def *settings_defs(size_t *count_r);
const struct setting_def *settings_find(const char *key);

/* Validates value for def and writes its canonical text form into norm
 * (CONFIG_STR_MAX bytes). 0, or -1 with a static one-line reason. */
int settings_validate(const struct setting_def *def, const char *value, char *norm,
    const char **error_r);

/* Fills cfg from the defaults and the stored values. The system host name is
 * filled in when server.hostname is empty. 0, or -1 with *error_r (free). */
int config_load(struct sqlite3 *db, struct config *cfg, char **error_r);

/* The effective text value of key (stored or default) into buf
 * (CONFIG_STR_MAX). 0, or -1 when the key is unknown or on a db error. */
int settings_get(struct sqlite3 *db, const char *key, char *buf);

/* Stores a validated canonical value (the caller wraps several in one
 * transaction). 0, or -1 with *error_r (free). */
int settings_store(struct sqlite3 *db, const char *key, const char *value, char **error_r);

/* Rules across settings (A3): an enabled listener needs "name and password"
 * or "anonymous"; enforcing the access list needs "name and password".
 * 0, or -1 with a one-line reason in err. */
int config_check(const struct config *cfg, char *err, size_t errsize);

/* True when key has a stored value (differs from "default"). */
bool settings_is_stored(struct sqlite3 *db, const char *key);

#endif
