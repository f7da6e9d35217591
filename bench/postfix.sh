#!/bin/bash
# bench/postfix.sh - a private, loopback-only Postfix instance: the baseline MTA
# the benchmark compares tegamid against.  Measures nothing itself.
#
#   postfix.sh setup  DIR PORT [PROC_LIMIT]   write DIR/etc (main.cf, master.cf, vmailbox)
#   postfix.sh submission DIR PORT SASL_SOCKET add a submission listener (after setup)
#   postfix.sh relay  DIR TRANSPORT_FILE       relay: smtp(8) client + transport_maps (after setup)
#   postfix.sh start  DIR                      start it (postfix -c DIR/etc start)
#   postfix.sh stop   DIR                      stop it, wait (bounded) for master to exit
#   postfix.sh restart DIR [PROC_LIMIT]        stop, set default_process_limit, start
#   postfix.sh reload DIR                      reload and wait until idle smtpd exit
#   postfix.sh pid    DIR                      print master's pid
#
# The instance lives entirely under DIR (a temp dir made by run.sh, under /var
# so that maillog_file is allowed): config DIR/etc, queue DIR/spool, data DIR/data,
# Maildirs DIR/vhosts/example.test/<user>/, log DIR/postfix.log.  The system's
# /etc/postfix is not touched.  Settings are Debian's stock defaults (fsync of the
# queue file before the 250 after DATA, fsync of the Maildir file by virtual(8),
# default_process_limit 100) except: SMTP only on 127.0.0.1:PORT, no chroot,
# virtual(8) Maildir delivery for example.test (user1..user5), everything else
# undeliverable (default_transport = error), so nothing can leave the machine.
# Mailbox files belong to the system user "vmail" (created if missing).
#
# `restart` (not reload) is needed after changing PROC_LIMIT: master sizes the
# listen backlog from the process limit when it creates the socket.
#
# `relay` (issue #8 relay benchmark, relay_bench.sh) makes the instance relay:
# Debian's stock `smtp unix ... smtp` client entry in master.cf and
# transport_maps = hash:DIR/etc/transport, a copy of TRANSPORT_FILE (lines
# "DOMAIN smtp:[IP]:PORT", every one a loopback address); everything not in it
# still goes to default_transport = error.  Clients in mynetworks (127.0.0.0/8)
# may relay (smtpd_relay_restrictions' stock permit_mynetworks).  The smtp
# client's settings are Postfix's defaults: default_destination_concurrency_limit
# 20, connection cache on demand (several messages per connection), no TLS.
#
# `submission` (issue #3 benchmark) adds a second smtpd listener on
# 127.0.0.1:PORT, like Debian's commented-out "submission" entry of master.cf:
# smtpd_tls_security_level=encrypt (STARTTLS required), smtpd_tls_auth_only,
# SASL through Dovecot (smtpd_sasl_type=dovecot, smtpd_sasl_path=SASL_SOCKET,
# the unix listener of bench/dovecot.sh), smtpd_recipient_restrictions =
# permit_sasl_authenticated, reject, plus reject_sender_login_mismatch
# (smtpd_sender_login_maps: every user may send only as itself, the check
# tegamid's auth.match_return_path does by default).  Certificate: self-signed,
# made here with `openssl req`, ECDSA P-256 like the one tegamid makes at first
# start (PF_TLS_KEY=rsa:2048 for RSA), so both servers sign the same kind of
# handshake.  Everything else is Postfix's default for TLS: TLS 1.2+ (and 1.3),
# no server-side session cache (smtpd_tls_session_cache_database empty; tickets
# only, which the load generator does not use), tlsmgr in master.cf as in
# Debian's stock file.  The same virtual(8) Maildir delivery as port PORT.
set -euo pipefail

cmd=${1:-}; DIR=${2:-}
if [ -z "$cmd" ] || [ -z "$DIR" ]; then sed -n '2,14p' "$0" >&2; exit 2; fi
DOMAIN=example.test
CONF="$DIR/etc"

pf_pid() {
  local f="$DIR/spool/pid/master.pid"
  [ -s "$f" ] || return 1
  local p; p=$(tr -d ' \n' < "$f")
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

pf_setup() {
  local port=$1 limit=${2:-100}
  case "$port$limit" in ''|*[!0-9]*) echo "postfix.sh: PORT and PROC_LIMIT must be numbers" >&2; exit 2 ;; esac
  getent group vmail >/dev/null || groupadd --system vmail
  getent passwd vmail >/dev/null ||
    useradd --system -g vmail -d /nonexistent -M -s /usr/sbin/nologin vmail
  mkdir -p "$CONF" "$DIR/spool" "$DIR/data" "$DIR/vhosts/$DOMAIN"
  chmod 0755 "$DIR" "$CONF" "$DIR/spool"
  chown postfix:postfix "$DIR/data"
  chown -R vmail:vmail "$DIR/vhosts"
  touch "$DIR/postfix.log"

  cat > "$CONF/main.cf" <<EOF
# benchmark instance written by bench/postfix.sh; Debian defaults otherwise
compatibility_level = 3.6
queue_directory = $DIR/spool
data_directory = $DIR/data
maillog_file = $DIR/postfix.log
maillog_file_prefixes = $DIR
myhostname = bench-postfix.$DOMAIN
mydomain = bench-postfix.$DOMAIN
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
default_transport = error:bench: no outbound mail
relay_transport = error:bench: no outbound mail
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
readme_directory = no
smtpd_banner = \$myhostname ESMTP
default_process_limit = $limit
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_base = $DIR/vhosts
virtual_mailbox_maps = hash:$CONF/vmailbox
virtual_uid_maps = static:$(id -u vmail)
virtual_gid_maps = static:$(id -g vmail)
virtual_minimum_uid = 100
EOF

  # Debian's stock master.cf minus the port-25 listener and chroot, plus 127.0.0.1:PORT
  cat > "$CONF/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$port inet n   -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

  : > "$CONF/vmailbox"
  for u in user1 user2 user3 user4 user5; do
    echo "$u@$DOMAIN $DOMAIN/$u/" >> "$CONF/vmailbox"   # trailing / = Maildir
  done
  postmap -c "$CONF" "$CONF/vmailbox"
  postfix -c "$CONF" check
}

pf_submission() {
  local port=$1 sock=$2 u
  case "$port" in ''|*[!0-9]*) echo "postfix.sh: PORT must be a number" >&2; exit 2 ;; esac
  [ -f "$CONF/master.cf" ] || { echo "postfix.sh: run setup first" >&2; exit 2; }
  mkdir -p "$CONF/tls"
  local keyopt=${PF_TLS_KEY:-ec}
  if [ "$keyopt" = ec ]; then
    keyopt="ec -pkeyopt ec_paramgen_curve:P-256"
  fi
  # shellcheck disable=SC2086  # keyopt is several words for EC
  openssl req -x509 -newkey $keyopt -nodes -sha256 -days 3650 \
    -subj "/CN=bench-postfix.$DOMAIN" -keyout "$CONF/tls/key.pem" -out "$CONF/tls/cert.pem" 2>/dev/null
  chmod 0600 "$CONF/tls/key.pem"
  : > "$CONF/sender_logins"
  for u in user1 user2 user3 user4 user5; do
    echo "$u@$DOMAIN $u@$DOMAIN" >> "$CONF/sender_logins"
  done
  postmap -c "$CONF" "$CONF/sender_logins"
  grep -q '^tlsmgr ' "$CONF/master.cf" ||
    echo "tlsmgr    unix  -       -       n       1000?   1       tlsmgr" >> "$CONF/master.cf"
  sed -i '/^# submission (bench\/postfix.sh submission)/,$d' "$CONF/master.cf"
  cat >> "$CONF/master.cf" <<EOF
# submission (bench/postfix.sh submission)
127.0.0.1:$port inet n  -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_cert_file=$CONF/tls/cert.pem
  -o smtpd_tls_key_file=$CONF/tls/key.pem
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=$sock
  -o smtpd_sender_login_maps=hash:$CONF/sender_logins
  -o smtpd_sender_restrictions=reject_sender_login_mismatch
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
EOF
  postfix -c "$CONF" check
}

pf_relay() {
  local map=$1
  [ -f "$CONF/master.cf" ] || { echo "postfix.sh: run setup first" >&2; exit 2; }
  grep -Ev '^[[:space:]]*(#|$)' "$map" | awk '$2 !~ /^smtp:\[127\.[0-9.]+\]:[0-9]+$/ { bad = 1 } END { exit bad }' ||
    { echo "postfix.sh: $map: every next hop must be smtp:[127.x.y.z]:PORT" >&2; exit 2; }
  cp "$map" "$CONF/transport"
  postmap -c "$CONF" "$CONF/transport"
  postconf -c "$CONF" -e "transport_maps = hash:$CONF/transport"
  grep -q '^smtp  *unix ' "$CONF/master.cf" ||
    echo "smtp      unix  -       -       n       -       -       smtp" >> "$CONF/master.cf"
  postfix -c "$CONF" check
}

pf_start() {
  postfix -c "$CONF" start >/dev/null 2>&1 || { tail -5 "$DIR/postfix.log" >&2; return 1; }
  for _ in $(seq 1 100); do pf_pid >/dev/null && return 0; sleep 0.1; done
  echo "postfix.sh: master did not start" >&2; return 1
}

pf_stop() {
  local p; p=$(pf_pid) || return 0
  postfix -c "$CONF" stop >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  echo "postfix.sh: master $p still running after 10 s, killing it" >&2
  kill -KILL "$p" 2>/dev/null || true
}

# count master's children named smtpd
smtpd_count() {
  local p; p=$(pf_pid) || { echo 0; return; }
  pgrep -c -x -P "$p" smtpd || true
}

case "$cmd" in
  setup)   pf_setup "${3:?PORT}" "${4:-100}" ;;
  submission) pf_submission "${3:?PORT}" "${4:?SASL_SOCKET}" ;;
  relay)   pf_relay "${3:?TRANSPORT_FILE}" ;;
  start)   pf_start ;;
  stop)    pf_stop ;;
  restart)
    pf_stop
    [ -n "${3:-}" ] && postconf -c "$CONF" -e "default_process_limit = $3"
    pf_start ;;
  reload)
    # idle smtpd processes otherwise linger max_idle (100 s) and inflate the
    # baseline of the next idle-session measurement
    postfix -c "$CONF" reload >/dev/null 2>&1
    for _ in $(seq 1 100); do [ "$(smtpd_count)" -eq 0 ] && break; sleep 0.2; done ;;
  pid)     pf_pid ;;
  *) echo "postfix.sh: unknown command $cmd" >&2; exit 2 ;;
esac
