#!/bin/bash
# bench/run.sh - tegami vs Postfix on loopback, one run, same load generator
# (issue #2 "Performance"; the submission section: issue #3).  `make bench` runs it.
#
# Measures, for tegamid and for a private stock Postfix instance side by side:
#   * messages/second accepted (250 after DATA) and landed in Maildir (file in
#     new/), at 1, 10, 50 and 200 concurrent sessions, 4 KB and 100 KB messages,
#     one message per connection, driven by Postfix's smtp-source with one
#     process per session; the two servers alternate run by run;
#   * RSS (and PSS) of the server while it holds 1,000 and 10,000 idle sessions;
#   * with --submission (issue #3): submissions/s over STARTTLS + AUTH PLAIN on
#     a submission listener (tegamid's submission.listen; Postfix's submission
#     smtpd with Dovecot SASL, bench/dovecot.sh), 10 and 50 sessions, 4 KB, one
#     and 10 messages per connection, Python smtplib load generator; then 1,000
#     and 10,000 idle sessions that completed STARTTLS, with a probe client
#     timing banner + EHLO while they are held (is the event loop responsive?);
#   * the ratio tegami/Postfix for every row.
# Prints the table as Markdown and writes it to bench/results/latest.md; the raw
# per-run JSON lines go to bench/results/run-<date>/.
#
# Usage: bash bench/run.sh [--full] [--only tegami|postfix] [--skip-idle]
#                          [--skip-throughput] [--submission | --submission-only
#                          | --skip-submission] [--keep]
#   default  quick: 1 run per row, 1,000 (4 KB) / 500 (100 KB) messages, short
#            idle holds; a few minutes (no submission section)
#   --full   3 runs per row, 3,000 / 1,000 messages, longer idle holds, and the
#            submission section
#   --submission       add the submission section (STARTTLS + AUTH, idle TLS)
#   --submission-only  only the submission section (= --submission
#                      --skip-throughput --skip-idle)
#   --skip-submission  leave it out of --full
#   --only   measure one server (table shows – for the other)
#   --keep   keep the temp dir with both servers' data and logs
# Environment: TEGAMI_BUILD (dir with tegamid and tegami; default build/ in the
# repo; TEGAMI_REV says for the report which source it was built from),
# TEGAMI_PORT (3526), POSTFIX_PORT (3525), BENCH_TMPDIR (/var/tmp),
# RUNS, COUNT_4K, COUNT_100K, CONC ("1,10,50,200"), SIZES ("4096,102400"),
# LOADGEN (smtp-source | python), PF_IDLE_PROC_LIMIT (1100: Postfix's
# default_process_limit for the idle test; it forks one smtpd per session),
# TEGAMI_SET (extra "KEY=VALUE ..." for `tegami config set`),
# TEGAMI_QUEUE_DIRS (tegamid's spool dirs that must be empty between runs;
# default: DATA/queue and DATA/spool where they exist).
# Submission section: TEGAMI_SUB_PORT (3587), POSTFIX_SUB_PORT (3588),
# TEGAMI_SMTPS_PORT (3465, used when IDLE_TLS_MODE=smtps), SUB_CONC ("10,50"),
# SUB_PER_CONN ("1,10": messages per connection), SUB_COUNT (1 per connection;
# quick 1000, full 2000), SUB_COUNT_REUSE (10 per connection; quick 2000, full
# 3000), IDLE_TLS_N ("1000,10000"), IDLE_TLS_MODE (starttls | smtps: tegamid's
# smtps.listen; Postfix then is measured on STARTTLS all the same),
# IDLE_TLS_PROCS (client processes holding the sessions; 0 = one per 2,500),
# DOVECOT_PASS_SCHEME (CRAM-MD5), PF_TLS_KEY (ec = P-256, like tegamid's cert).
# Needs root (Postfix; apt-get via deps.sh).  Contacts nothing but 127.0.0.1.
# Builds nothing: run `make build` first.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3

MODE=quick ONLY="" KEEP=0 DO_IDLE=1 DO_TP=1 DO_SUB=""
while [ $# -gt 0 ]; do
  case "$1" in
    --full) MODE=full ;;
    --only) ONLY=${2:?--only tegami|postfix}; shift ;;
    --keep) KEEP=1 ;;
    --skip-idle) DO_IDLE=0 ;;
    --skip-throughput) DO_TP=0 ;;
    --submission) DO_SUB=1 ;;
    --submission-only) DO_SUB=1 DO_TP=0 DO_IDLE=0 ;;
    --skip-submission) DO_SUB=0 ;;
    -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$ONLY" in ''|tegami|postfix) ;; *) echo "run.sh: --only tegami|postfix" >&2; exit 2 ;; esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
if [ -z "$DO_SUB" ]; then if [ "$MODE" = full ]; then DO_SUB=1; else DO_SUB=0; fi; fi

if [ "$MODE" = full ]; then
  RUNS=${RUNS:-3} COUNT_4K=${COUNT_4K:-3000} COUNT_100K=${COUNT_100K:-1000} RUN_TIMEOUT=180
  IDLE_1K="--ramp 5 --banner-wait 20 --hold 10"
  IDLE_10K="--ramp 10 --banner-wait 20 --hold 25"
  SUB_COUNT=${SUB_COUNT:-2000} SUB_COUNT_REUSE=${SUB_COUNT_REUSE:-3000}
  IDLE_TLS_1K="--ramp 5 --settle 20 --hold 10"
  IDLE_TLS_10K="--ramp 20 --settle 30 --hold 20"
else
  RUNS=${RUNS:-1} COUNT_4K=${COUNT_4K:-1000} COUNT_100K=${COUNT_100K:-500} RUN_TIMEOUT=60
  IDLE_1K="--ramp 3 --banner-wait 10 --hold 5"
  IDLE_10K="--ramp 10 --banner-wait 15 --hold 5"
  SUB_COUNT=${SUB_COUNT:-1000} SUB_COUNT_REUSE=${SUB_COUNT_REUSE:-2000}
  IDLE_TLS_1K="--ramp 3 --settle 15 --hold 5"
  IDLE_TLS_10K="--ramp 20 --settle 25 --hold 5"
fi
CONC=${CONC:-1,10,50,200}
SIZES=${SIZES:-4096,102400}
LOADGEN=${LOADGEN:-smtp-source}
TEGAMI_PORT=${TEGAMI_PORT:-3526}
POSTFIX_PORT=${POSTFIX_PORT:-3525}
PF_IDLE_PROC_LIMIT=${PF_IDLE_PROC_LIMIT:-1100}
TEGAMI_SUB_PORT=${TEGAMI_SUB_PORT:-3587}
POSTFIX_SUB_PORT=${POSTFIX_SUB_PORT:-3588}
TEGAMI_SMTPS_PORT=${TEGAMI_SMTPS_PORT:-3465}
SUB_CONC=${SUB_CONC:-10,50}
SUB_PER_CONN=${SUB_PER_CONN:-1,10}
SUB_SIZE=4096
IDLE_TLS_N=${IDLE_TLS_N:-1000,10000}
IDLE_TLS_MODE=${IDLE_TLS_MODE:-starttls}
IDLE_TLS_PROCS=${IDLE_TLS_PROCS:-0}
case "$IDLE_TLS_MODE" in starttls|smtps) ;; *) echo "run.sh: IDLE_TLS_MODE starttls|smtps" >&2; exit 2 ;; esac
# the submission test's accounts: user1 sends (MAIL FROM and From: = its login,
# as tegamid's auth.match_return_path / match_from_header require), user2 receives
SUB_USER=user1@example.test SUB_PASS=bench-password-1
SUB_RCPT=user2@example.test SUB_RCPT_PASS=bench-password-2
MAX_SESSIONS=11000          # tegamid limits for the bench: above the 10,000 idle sessions
TB=${TEGAMI_BUILD:-$REPO/build}
TEGAMI=$TB/tegami TEGAMID=$TB/tegamid

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (Postfix needs it; deps.sh installs packages)"
if [ "$DO_SUB" = 1 ]; then bash "$HERE/deps.sh" --submission; else bash "$HERE/deps.sh"; fi
if want tegami; then
  if [ ! -x "$TEGAMID" ] || [ ! -x "$TEGAMI" ]; then
    die "no $TEGAMID / $TEGAMI: build first (make build) or set TEGAMI_BUILD"
  fi
fi
PORTS="$TEGAMI_PORT $POSTFIX_PORT"
[ "$DO_SUB" = 1 ] && PORTS="$PORTS $TEGAMI_SUB_PORT $POSTFIX_SUB_PORT $TEGAMI_SMTPS_PORT"
for p in $PORTS; do
  [ -z "$(ss -Hltn "sport = :$p")" ] ||
    die "port 127.0.0.1:$p is in use (set TEGAMI_PORT / POSTFIX_PORT / TEGAMI_SUB_PORT / POSTFIX_SUB_PORT / TEGAMI_SMTPS_PORT)"
done

# Idle tests need ~10,100 fds in the client and in the server (inherited).
ulimit -Hn 20000 2>/dev/null || true
ulimit -Sn "$(ulimit -Hn)"
[ "$(ulimit -Sn)" -ge 10200 ] || log "warning: ulimit -n is $(ulimit -Sn); the 10,000-session test will fall short"

W=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/tegami-bench.XXXXXX")
chmod 0755 "$W"             # the servers' unprivileged users must reach their dirs
STAMP=$(date -u +%Y%m%d-%H%M%S)
RES="$HERE/results/run-$STAMP"
mkdir -p "$RES"
TDIR="$W/tegami" PFDIR="$W/postfix" DCDIR="$W/dovecot"
TMD="$TDIR/mail/example.test/user1" PFMD="$PFDIR/vhosts/example.test/user1"
TMD2="$TDIR/mail/example.test/user2" PFMD2="$PFDIR/vhosts/example.test/user2"
PF_PIDFILE="$PFDIR/spool/pid/master.pid" DC_PIDFILE="$DCDIR/run/master.pid"
DC_SOCK="$DCDIR/sasl/auth-postfix"
TPID="" PF_UP=0 DC_UP=0 LAST_TEST="start"

# ---- tegamid -----------------------------------------------------------------
tegami_init() {
  local sub="submission.listen=" smtps="smtps.listen="
  if [ "$DO_SUB" = 1 ]; then
    sub="submission.listen=127.0.0.1:$TEGAMI_SUB_PORT"
    [ "$IDLE_TLS_MODE" = smtps ] && smtps="smtps.listen=127.0.0.1:$TEGAMI_SMTPS_PORT"
  fi
  # shellcheck disable=SC2086  # TEGAMI_SET is a list of KEY=VALUE words
  "$TEGAMI" -D "$TDIR" config set "smtp.listen=127.0.0.1:$TEGAMI_PORT" \
    "smtp.max_sessions=$MAX_SESSIONS" "smtp.max_sessions_per_ip=$MAX_SESSIONS" \
    "smtp.max_message_size=10485760" "storage.min_free=0" \
    "$sub" "$smtps" ${TEGAMI_SET:-} >/dev/null
  printf '%s\n' "$SUB_PASS" | "$TEGAMI" -D "$TDIR" user add "$SUB_USER" --password-stdin >/dev/null
  if [ "$DO_SUB" = 1 ]; then
    printf '%s\n' "$SUB_RCPT_PASS" | "$TEGAMI" -D "$TDIR" user add "$SUB_RCPT" --password-stdin >/dev/null
  fi
}

tegami_start() {
  "$TEGAMID" -D "$TDIR" >>"$W/tegamid.log" 2>&1 &
  TPID=$!
  for _ in $(seq 1 200); do                         # 20 s at most
    kill -0 "$TPID" 2>/dev/null || { tail -20 "$W/tegamid.log" >&2; die "tegamid exited at start"; }
    if [ -n "$(ss -Hltn "sport = :$TEGAMI_PORT")" ]; then
      [ "$DO_SUB" = 1 ] && [ -z "$(ss -Hltn "sport = :$TEGAMI_SUB_PORT")" ] && { sleep 0.1; continue; }
      return 0
    fi
    sleep 0.1
  done
  die "tegamid does not listen on 127.0.0.1:$TEGAMI_PORT after 20 s"
}

# A tegamid that died on its own (crash) or left with a failure status is
# logged and recorded in events.jsonl; report.py lists it under "Warnings".
tegami_stop() {
  [ -n "$TPID" ] || return 0
  local st=0 dead=0 state
  state=$(sed 's/.*) //' "/proc/$TPID/stat" 2>/dev/null | cut -d' ' -f1 || true)
  if [ -z "$state" ] || [ "$state" = Z ]; then dead=1; fi
  [ "$dead" = 1 ] || kill -TERM "$TPID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    state=$(sed 's/.*) //' "/proc/$TPID/stat" 2>/dev/null | cut -d' ' -f1 || true)
    if [ -z "$state" ] || [ "$state" = Z ]; then break; fi
    sleep 0.1
  done
  if kill -0 "$TPID" 2>/dev/null && [ "$state" != Z ]; then
    log "tegamid $TPID still running 10 s after SIGTERM, killing it"
    kill -KILL "$TPID" 2>/dev/null || true
  fi
  wait "$TPID" 2>/dev/null || st=$?
  if [ "$dead" = 1 ] || { [ "$st" -ne 0 ] && [ "$st" -ne 143 ]; }; then
    log "warning: tegamid $TPID $([ "$dead" = 1 ] && echo "had died before SIGTERM" || echo "stopped"), exit status $st, after: $LAST_TEST (see tegamid.log)"
    "$PY" -c 'import json, sys; print(json.dumps(dict(event="tegamid_exit", pid=int(sys.argv[1]),
        status=int(sys.argv[2]), died_before_sigterm=sys.argv[3] == "1", after=sys.argv[4], log=sys.argv[5])))' \
      "$TPID" "$st" "$dead" "$LAST_TEST" "$(grep -v 'level=' "$W/tegamid.log" 2>/dev/null | tail -1 | cut -c1-200)" \
      >> "$RES/events.jsonl"
  fi
  TPID=""
}

# ---- Postfix -----------------------------------------------------------------
postfix_up() { bash "$HERE/postfix.sh" restart "$PFDIR" "$1"; PF_UP=1; }
postfix_down() { [ "$PF_UP" = 1 ] && bash "$HERE/postfix.sh" stop "$PFDIR"; PF_UP=0; }
dovecot_down() { [ "$DC_UP" = 1 ] && bash "$HERE/dovecot.sh" stop "$DCDIR"; DC_UP=0; }

cleanup() {
  set +e
  tegami_stop
  postfix_down
  dovecot_down
  for f in "$W/tegamid.log" "$PFDIR/postfix.log" "$DCDIR/dovecot.log"; do
    [ -f "$f" ] && tail -200 "$f" > "$RES/$(basename "$f").tail"
  done
  if [ "$KEEP" = 1 ]; then log "kept $W"; else rm -rf --one-file-system "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- what this run was -------------------------------------------------------
write_meta() {
  local fs; fs=$(df -T "$W" | awk 'NR==2 {print $2 " on " $1}')
  local tver="not measured" rev
  if want tegami; then
    tver=$("$TEGAMI" --version 2>/dev/null | head -1 || true)
    if [ -n "${TEGAMI_REV:-}" ]; then
      rev="$TEGAMI_REV, binaries from $TB"
    elif [ "$TB" != "$REPO/build" ]; then
      rev="binaries from $TB, revision unknown (set TEGAMI_REV)"
    elif rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
      git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || rev="$rev + uncommitted changes in src/"
    else
      rev="no commit yet"
    fi
    tver="${tver:-tegami} (repo $rev)"
  fi
  local dcv="" tls_t="" tls_p=""
  if [ "$DO_SUB" = 1 ]; then
    dcv=$(dovecot --version 2>/dev/null | awk '{print $1}')
    want tegami && tls_t=$(tls_info "$TEGAMI_SUB_PORT")
    want postfix && tls_p=$(tls_info "$POSTFIX_SUB_PORT")
  fi
  MODE=$MODE FS=$fs TVER=$tver RUNS=$RUNS C4=$COUNT_4K C100=$COUNT_100K LOADGEN=$LOADGEN \
  PFV=$(postconf -d -h mail_version) PFLIM=$PF_IDLE_PROC_LIMIT MAXS=$MAX_SESSIONS TSET="${TEGAMI_SET:-}" \
  DO_SUB=$DO_SUB DCV="$dcv" SCHEME="${DOVECOT_PASS_SCHEME:-CRAM-MD5}" TLS_T="$tls_t" TLS_P="$tls_p" \
  SUBC=$SUB_COUNT SUBR=$SUB_COUNT_REUSE TLSMODE=$IDLE_TLS_MODE \
  "$PY" - "$RES/meta.json" <<'EOF'
import json, os, platform, sys, time
e = os.environ
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
json.dump({
    "mode": e["MODE"],
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "machine": "%d CPUs (%s), %.0f GiB RAM, Linux %s" % (os.cpu_count(), cpu, mem / 2**20, platform.release()),
    "filesystem": "both servers' spool and Maildirs on " + e["FS"],
    "tegami": e["TVER"],
    "postfix": "Postfix %s, stock settings (default_process_limit 100 for throughput, %s for the idle test), "
               "virtual(8) Maildir delivery, queue file fsync'd before 250" % (e["PFV"], e["PFLIM"]),
    "load generator": "%s, one message per connection, one process per session; %d run(s) per row, "
                      "4 KB: %s messages, 100 KB: %s messages" % (e["LOADGEN"], int(e["RUNS"]), e["C4"], e["C100"]),
    "tegami settings": "smtp.max_sessions=%s smtp.max_sessions_per_ip=%s storage.min_free=0 %s"
                       % (e["MAXS"], e["MAXS"], e["TSET"]),
    "postfix idle process limit": e["PFLIM"],
    "submission": None if e["DO_SUB"] != "1" else (
        "tegamid: submission listener, STARTTLS with the self-signed certificate it makes at first start (%s), "
        "AUTH PLAIN (yescrypt hash, verified credentials cached in memory: auth.cache_ttl); "
        "Postfix: submission smtpd with smtpd_tls_security_level=encrypt, certificate by openssl req (%s), "
        "SASL through a private auth-only Dovecot %s (passwd-file, %s scheme), "
        "permit_sasl_authenticated + reject_sender_login_mismatch; "
        "load: smtp_loadgen.py (smtplib, 2 processes x threads), full handshake + EHLO + STARTTLS + EHLO + "
        "AUTH PLAIN per connection, no session resumption; 1 message per connection: %s messages, "
        "10 per connection: %s messages; idle TLS sessions: %s"
        % (e["TLS_T"] or "not measured", e["TLS_P"] or "not measured", e["DCV"], e["SCHEME"],
           e["SUBC"], e["SUBR"], e["TLSMODE"])),
}, open(sys.argv[1], "w"), indent=1)
EOF
}

tls_info() {   # port -> "TLSv1.3 TLS_AES_256_GCM_SHA384, ECDSA P-256 certificate" (one STARTTLS handshake)
  "$PY" - "$1" <<'EOF' 2>/dev/null || echo "handshake failed"
import smtplib, ssl, subprocess, sys
ctx = ssl._create_unverified_context()
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="bench.client", timeout=10)
s.starttls(context=ctx)
der = s.sock.getpeercert(binary_form=True)
ver, cip = s.sock.version(), s.sock.cipher()[0]
s.quit()
txt = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                     capture_output=True).stdout.decode()
key = "RSA" if "rsaEncryption" in txt else ("ECDSA" if "id-ecPublicKey" in txt else "?")
bits = next((l.split("(")[1].split(")")[0] for l in txt.splitlines() if "Public-Key:" in l), "")
curve = next((l.split(":", 1)[1].strip() for l in txt.splitlines() if "NIST CURVE" in l), "")
print("%s %s, %s %s certificate" % (ver, cip, key, curve or bits))
EOF
}

# ---- throughput ---------------------------------------------------------------
bench_one() {   # server size conc count
  local server=$1 size=$2 conc=$3 count=$4 pre q=() d
  local args=(--label "$server" --sizes "$size" --conc "$conc" --count "$count" --runs 1
              --loadgen "$LOADGEN" --timeout "$RUN_TIMEOUT"
              --json-append "$RES/throughput.jsonl")
  if [ "$server" = tegami ]; then
    for d in ${TEGAMI_QUEUE_DIRS:-$TDIR/queue $TDIR/spool}; do [ -d "$d" ] && q+=(-q "$d"); done
    printf -v pre '%q ' bash wait_idle.sh "${q[@]}" "$TMD"
    "$PY" "$HERE/smtp_bench.py" "${args[@]}" --port "$TEGAMI_PORT" --maildir "$TMD" \
      --server-pid "$TPID" --pre-cmd "$pre"
  else
    for d in incoming active deferred maildrop hold; do q+=(-q "$PFDIR/spool/$d"); done
    printf -v pre '%q ' bash wait_idle.sh "${q[@]}" "$PFMD"
    "$PY" "$HERE/smtp_bench.py" "${args[@]}" --port "$POSTFIX_PORT" --maildir "$PFMD" \
      --server-pidfile "$PF_PIDFILE" --pre-cmd "$pre"
  fi
}

run_throughput() {
  local size conc rep count servers
  for size in ${SIZES//,/ }; do
    count=$COUNT_4K; [ "$size" -gt 8192 ] && count=$COUNT_100K
    for conc in ${CONC//,/ }; do
      for rep in $(seq 1 "$RUNS"); do
        # alternate the order so neither server always runs on a warmer machine
        if [ $((rep % 2)) -eq 1 ]; then servers="tegami postfix"; else servers="postfix tegami"; fi
        for s in $servers; do
          want "$s" || continue
          [ "$s" = tegami ] && LAST_TEST="throughput $size B x $conc sessions"
          bench_one "$s" "$size" "$conc" "$count" >&2
        done
      done
    done
  done
}

# ---- idle sessions ---------------------------------------------------------------
run_idle() {
  local n opts
  for n in 1000 10000; do
    if [ "$n" = 1000 ]; then opts=$IDLE_1K; else opts=$IDLE_10K; fi
    if want tegami; then
      tegami_stop; tegami_start                      # fresh process: no heap left from earlier runs
      sleep 1
      # shellcheck disable=SC2086
      "$PY" "$HERE/idle_conns.py" --quiet --label tegami --port "$TEGAMI_PORT" --n "$n" $opts \
        --pid "$TPID" --json-append "$RES/idle.jsonl" >&2
      LAST_TEST="$n idle sessions"
    fi
    if want postfix; then
      postfix_up "$PF_IDLE_PROC_LIMIT"               # stop+start: the backlog follows the limit
      sleep 2
      # shellcheck disable=SC2086
      "$PY" "$HERE/idle_conns.py" --quiet --label postfix --port "$POSTFIX_PORT" --n "$n" $opts \
        --pidfile "$PF_PIDFILE" --json-append "$RES/idle.jsonl" >&2
    fi
  done
}

# ---- submission (issue #3) --------------------------------------------------------
bench_sub() {   # server conc count per_conn
  local server=$1 conc=$2 count=$3 per=$4 pre q=() d
  local args=(--label "$server" --sizes "$SUB_SIZE" --conc "$conc" --count "$count" --runs 1
              --loadgen python --timeout "$RUN_TIMEOUT" --starttls --auth "$SUB_USER:$SUB_PASS"
              --auth-mech PLAIN --from "$SUB_USER" --to "$SUB_RCPT" --per-conn "$per" --warmup
              --json-append "$RES/submission.jsonl")
  if [ "$server" = tegami ]; then
    for d in ${TEGAMI_QUEUE_DIRS:-$TDIR/queue $TDIR/spool}; do [ -d "$d" ] && q+=(-q "$d"); done
    printf -v pre '%q ' bash wait_idle.sh "${q[@]}" "$TMD2"
    "$PY" "$HERE/smtp_bench.py" "${args[@]}" --port "$TEGAMI_SUB_PORT" --maildir "$TMD2" \
      --server-pid "$TPID" --pre-cmd "$pre"
  else
    for d in incoming active deferred maildrop hold; do q+=(-q "$PFDIR/spool/$d"); done
    printf -v pre '%q ' bash wait_idle.sh "${q[@]}" "$PFMD2"
    "$PY" "$HERE/smtp_bench.py" "${args[@]}" --port "$POSTFIX_SUB_PORT" --maildir "$PFMD2" \
      --server-pidfile "$PF_PIDFILE,$DC_PIDFILE" --pre-cmd "$pre"
  fi
}

run_submission() {
  local per conc rep count servers
  for per in ${SUB_PER_CONN//,/ }; do
    count=$SUB_COUNT; [ "$per" -gt 1 ] && count=$SUB_COUNT_REUSE
    for conc in ${SUB_CONC//,/ }; do
      for rep in $(seq 1 "$RUNS"); do
        if [ $((rep % 2)) -eq 1 ]; then servers="tegami postfix"; else servers="postfix tegami"; fi
        for s in $servers; do
          want "$s" || continue
          [ "$s" = tegami ] && LAST_TEST="submission $conc sessions x $per per connection"
          bench_sub "$s" "$conc" "$count" "$per" >&2
        done
      done
    done
  done
}

run_idle_tls() {
  local n opts tport=$TEGAMI_SUB_PORT
  [ "$IDLE_TLS_MODE" = smtps ] && tport=$TEGAMI_SMTPS_PORT
  for n in ${IDLE_TLS_N//,/ }; do
    if [ "$n" -ge 5000 ]; then opts=$IDLE_TLS_10K; else opts=$IDLE_TLS_1K; fi
    if want tegami; then
      tegami_stop; tegami_start
      sleep 1
      # shellcheck disable=SC2086
      "$PY" "$HERE/idle_tls.py" --quiet --label tegami --mode "$IDLE_TLS_MODE" --port "$tport" --n "$n" \
        --procs "$IDLE_TLS_PROCS" $opts --pid "$TPID" --json-append "$RES/idle_tls.jsonl" >&2
      LAST_TEST="$n idle TLS sessions ($IDLE_TLS_MODE)"
    fi
    if want postfix; then
      postfix_up "$PF_IDLE_PROC_LIMIT"
      sleep 2
      # shellcheck disable=SC2086
      "$PY" "$HERE/idle_tls.py" --quiet --label postfix --mode starttls --port "$POSTFIX_SUB_PORT" --n "$n" \
        --procs "$IDLE_TLS_PROCS" $opts --pidfile "$PF_PIDFILE" --json-append "$RES/idle_tls.jsonl" >&2
    fi
  done
}

# ---- main -------------------------------------------------------------------------
log "work dir $W, results $RES, mode $MODE"
if want tegami; then tegami_init; tegami_start; log "tegamid pid $TPID on 127.0.0.1:$TEGAMI_PORT"; fi
if want postfix; then
  bash "$HERE/postfix.sh" setup "$PFDIR" "$POSTFIX_PORT" 100 >/dev/null
  if [ "$DO_SUB" = 1 ]; then
    DOVECOT_AUTH_CLIENTS=$((PF_IDLE_PROC_LIMIT + 100)) \
      bash "$HERE/dovecot.sh" setup "$DCDIR" "$DC_SOCK" "$SUB_USER:$SUB_PASS" "$SUB_RCPT:$SUB_RCPT_PASS"
    bash "$HERE/dovecot.sh" start "$DCDIR"; DC_UP=1
    log "dovecot (auth only) master $(bash "$HERE/dovecot.sh" pid "$DCDIR"), SASL socket $DC_SOCK"
    bash "$HERE/postfix.sh" submission "$PFDIR" "$POSTFIX_SUB_PORT" "$DC_SOCK"
  fi
  postfix_up 100
  log "postfix master $(bash "$HERE/postfix.sh" pid "$PFDIR") on 127.0.0.1:$POSTFIX_PORT"
fi
write_meta
if [ "$DO_TP" = 1 ]; then log "throughput: sizes $SIZES, sessions $CONC, $RUNS run(s)"; run_throughput; fi
if [ "$DO_SUB" = 1 ]; then
  log "submission: STARTTLS + AUTH PLAIN, sessions $SUB_CONC, messages per connection $SUB_PER_CONN, $RUNS run(s)"
  run_submission
fi
if [ "$DO_IDLE" = 1 ]; then log "idle sessions: 1,000 and 10,000"; run_idle; fi
if [ "$DO_SUB" = 1 ]; then log "idle TLS sessions ($IDLE_TLS_MODE): $IDLE_TLS_N"; run_idle_tls; fi
tegami_stop
postfix_down
dovecot_down

"$PY" "$HERE/report.py" "$RES" --out "$RES/report.md"
cp "$RES/report.md" "$HERE/results/latest.md"
log "table written to bench/results/latest.md"
