#!/bin/bash
# bench/dovecot.sh - a private, auth-only Dovecot instance: the SASL backend of
# the benchmark's Postfix submission listener (Postfix smtpd_sasl_type=dovecot).
# Measures nothing itself.
#
#   dovecot.sh setup DIR SOCKET USER:PASSWORD...   write DIR/dovecot.conf and DIR/users
#   dovecot.sh start DIR                           start it (dovecot -c DIR/dovecot.conf)
#   dovecot.sh stop  DIR                           stop it, wait (bounded) for master to exit
#   dovecot.sh pid   DIR                           print master's pid
#
# Everything lives under DIR (a dir in run.sh's temp dir): config, base_dir
# DIR/run (master.pid, internal sockets), state_dir DIR/state, log DIR/dovecot.log,
# passwd-file DIR/users.  /etc/dovecot is not read (dovecot -c uses only our file)
# and no system-wide Dovecot is started or touched.
#
# Only the auth service runs (protocols = none: no IMAP/POP3/LMTP listener, no
# inet socket at all); its one client listener is the unix socket SOCKET, owned
# by postfix:postfix 0660 so that the Postfix submission smtpd can reach it.
# passdb passwd-file with the password stored in Dovecot's CRAM-MD5 scheme
# (DOVECOT_PASS_SCHEME overrides, e.g. SHA512-CRYPT): a cheap scheme (an
# HMAC-MD5 key schedule, microseconds to check a PLAIN password), like the
# project's reference Dovecot setup.  tegamid stores yescrypt hashes but keeps
# verified credentials in memory (auth.cache_ttl, 300 s), so after the first
# AUTH neither server spends real CPU on the password: the benchmark compares
# TLS + SMTP + delivery, not password hashing.  Dovecot's own auth cache is off
# (stock auth_cache_size = 0), which with a cheap scheme costs next to nothing.
# Mechanisms PLAIN and LOGIN (stock: PLAIN only); the load generator forces
# PLAIN anyway.
#
# One stock limit is raised: every Postfix smtpd keeps a connection to the auth
# service from its start, and the auth service's client_limit is
# default_client_limit = 1000.  With more smtpd processes than that (the idle
# test runs Postfix with default_process_limit 1100) the next smtpd gets no
# mechanism list and dies ("fatal: no SASL authentication mechanisms"), so
# client_limit is DOVECOT_AUTH_CLIENTS (default 1200; run.sh passes Postfix's
# idle process limit + 100), as Dovecot's docs advise for big Postfix setups.
set -euo pipefail

cmd=${1:-}; DIR=${2:-}
if [ -z "$cmd" ] || [ -z "$DIR" ]; then sed -n '2,10p' "$0" >&2; exit 2; fi
CONF="$DIR/dovecot.conf"
SCHEME=${DOVECOT_PASS_SCHEME:-CRAM-MD5}

dc_pid() {
  local f="$DIR/run/master.pid"
  [ -s "$f" ] || return 1
  local p; p=$(tr -d ' \n' < "$f")
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

dc_setup() {
  local sock=$1; shift
  getent passwd dovecot >/dev/null || { echo "dovecot.sh: no user dovecot (install dovecot-core: bench/deps.sh --submission)" >&2; exit 1; }
  getent passwd dovenull >/dev/null || { echo "dovecot.sh: no user dovenull (install dovecot-core)" >&2; exit 1; }
  mkdir -p "$DIR/run" "$DIR/state" "$(dirname "$sock")"
  chmod 0755 "$DIR" "$DIR/run" "$(dirname "$sock")"
  touch "$DIR/dovecot.log"
  : > "$DIR/users.new"
  local up u p h
  for up in "$@"; do
    u=${up%%:*} p=${up#*:}
    h=$(doveadm pw -s "$SCHEME" -p "$p")
    printf '%s:%s\n' "$u" "$h" >> "$DIR/users.new"
  done
  chown root:dovecot "$DIR/users.new"; chmod 0640 "$DIR/users.new"; mv "$DIR/users.new" "$DIR/users"
  cat > "$CONF" <<EOF
# auth-only Dovecot for the tegami benchmark, written by bench/dovecot.sh
instance_name = tegami-bench-dovecot
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/dovecot.log
protocols = none
ssl = no
auth_mechanisms = plain login
# Postfix tells Dovecot the session is TLS-protected (smtpd_tls_auth_only, level encrypt)
disable_plaintext_auth = yes
passdb {
  driver = passwd-file
  args = scheme=$SCHEME username_format=%u $DIR/users
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=/nonexistent
}
service auth {
  client_limit = ${DOVECOT_AUTH_CLIENTS:-1200}
  unix_listener $sock {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
  doveconf -c "$CONF" -n >/dev/null
}

dc_start() {
  dovecot -c "$CONF" || { tail -5 "$DIR/dovecot.log" >&2; return 1; }
  for _ in $(seq 1 100); do dc_pid >/dev/null && return 0; sleep 0.1; done
  echo "dovecot.sh: master did not start" >&2; tail -5 "$DIR/dovecot.log" >&2; return 1
}

dc_stop() {
  local p; p=$(dc_pid) || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  echo "dovecot.sh: master $p still running after 10 s, killing it" >&2
  kill -KILL "$p" 2>/dev/null || true
}

case "$cmd" in
  setup) [ $# -ge 4 ] || { echo "dovecot.sh setup DIR SOCKET USER:PASSWORD..." >&2; exit 2; }
         shift 2; dc_setup "$@" ;;
  start) dc_start ;;
  stop)  dc_stop ;;
  pid)   dc_pid ;;
  *) echo "dovecot.sh: unknown command $cmd" >&2; exit 2 ;;
esac
