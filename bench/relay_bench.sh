#!/bin/bash
# bench/relay_bench.sh - relay throughput, tegami vs Postfix on loopback, one run
# (issue #8 "Performance": messages/second relayed from submission to a sink,
# 50 sessions x 4 KB, one destination and 100 destinations; target >= 2x Postfix).
#
# Starts 100 smtp-sink processes (Postfix's test server, one per destination
# address SINK_NET.1 ... SINK_NET.100, all on SINK_PORT), tegamid and a private
# stock Postfix instance, both routing remote.test to SINK_NET.1 and d1.test ...
# d100.test to SINK_NET.1 ... SINK_NET.100, so that each of the 100 domains is a
# destination of its own for both servers' queue managers.  Then, alternating
# the two servers run by run, 50 sessions inject N messages of 4 KB (one per
# connection, smtp-source) and relay_bench.py measures the time until the sinks
# have them all.  Prints a Markdown table with the ratio tegami/Postfix (also
# written to bench/results/relay-latest.md; raw JSON lines in
# bench/results/run-relay-<date>/).
#
# Usage: bash bench/relay_bench.sh [--full] [--only tegami|postfix] [--dests 1,100] [--keep]
#   default  quick: 1 run per row, 5,000 messages (a few minutes)
#   --full   3 runs per row (servers alternate which goes first), 20,000 messages
#   --only   measure one server (the table shows – for the other)
#   --dests  the destination counts to measure (1, 100 or both)
#   --keep   keep the temp dir (both servers' data, logs, the sinks' output)
# Environment: TEGAMI_BUILD (dir with tegamid and tegami; default build/ in the
# repo), TEGAMI_REV (which source that was, for the report), RELAY_COUNT (N),
# RELAY_RUNS, RELAY_SESSIONS (50), RELAY_SIZE (4096), RELAY_TEGAMI_PORT (3626:
# tegamid's submission listener), RELAY_POSTFIX_PORT (3625: Postfix's smtpd),
# SINK_NET (127.0.1: the sinks' addresses are SINK_NET.1-100), SINK_PORT (3699),
# TEGAMI_SET (extra "KEY=VALUE ..." for `tegami config set`), BENCH_TMPDIR
# (/var/tmp).  Needs root (Postfix; apt-get via deps.sh).  Contacts nothing but
# loopback addresses.  Builds nothing: run `make build` first.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3

MODE=quick ONLY="" KEEP=0 DESTS=1,100
while [ $# -gt 0 ]; do
  case "$1" in
    --full) MODE=full ;;
    --only) ONLY=${2:?--only tegami|postfix}; shift ;;
    --dests) DESTS=${2:?--dests 1,100}; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "relay_bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$ONLY" in ''|tegami|postfix) ;; *) echo "relay_bench.sh: --only tegami|postfix" >&2; exit 2 ;; esac
for d in ${DESTS//,/ }; do
  case "$d" in 1|100) ;; *) echo "relay_bench.sh: --dests takes 1 and/or 100" >&2; exit 2 ;; esac
done
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

if [ "$MODE" = full ]; then
  RUNS=${RELAY_RUNS:-3} COUNT=${RELAY_COUNT:-20000}
else
  RUNS=${RELAY_RUNS:-1} COUNT=${RELAY_COUNT:-5000}
fi
SESSIONS=${RELAY_SESSIONS:-50}
SIZE=${RELAY_SIZE:-4096}
TEGAMI_PORT=${RELAY_TEGAMI_PORT:-3626}
TEGAMI_SMTP_PORT=$((TEGAMI_PORT + 1))      # tegamid's MTA listener: unused by the bench
POSTFIX_PORT=${RELAY_POSTFIX_PORT:-3625}
SINK_NET=${SINK_NET:-127.0.1}
SINK_PORT=${SINK_PORT:-3699}
NSINKS=100
RUN_TIMEOUT=$((120 + COUNT / 20))           # a run that relays fewer than ~20 msg/s fails
TB=${TEGAMI_BUILD:-$REPO/build}
TEGAMI=$TB/tegami TEGAMID=$TB/tegamid

log() { printf '[relay %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (Postfix needs it; deps.sh installs packages)"
case "$SINK_NET" in 127.*) ;; *) die "SINK_NET must be in 127.0.0.0/8" ;; esac
bash "$HERE/deps.sh"
[ -x /usr/sbin/smtp-sink ] || die "no /usr/sbin/smtp-sink (package postfix)"
if want tegami && { [ ! -x "$TEGAMID" ] || [ ! -x "$TEGAMI" ]; }; then
  die "no $TEGAMID / $TEGAMI: build first (make build) or set TEGAMI_BUILD"
fi
for p in $TEGAMI_PORT $TEGAMI_SMTP_PORT $POSTFIX_PORT $SINK_PORT; do
  [ -z "$(ss -Hltn "sport = :$p")" ] ||
    die "port $p is in use (set RELAY_TEGAMI_PORT / RELAY_POSTFIX_PORT / SINK_PORT)"
done

W=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/tegami-relay.XXXXXX")
chmod 0755 "$W"             # the servers' unprivileged users must reach their dirs
STAMP=$(date -u +%Y%m%d-%H%M%S)
RES="$HERE/results/run-relay-$STAMP"
mkdir -p "$RES" "$W/sinks"
TDIR="$W/tegami" PFDIR="$W/postfix"
PF_PIDFILE="$PFDIR/spool/pid/master.pid"
TPID="" PF_UP=0 SINK_PIDS=() LAST_TEST="start"

dest_ip() { if [ "$1" = remote.test ]; then echo "$SINK_NET.1"; else echo "$SINK_NET.${1#d}" | sed 's/\.test$//'; fi; }
domains() { echo remote.test; for i in $(seq 1 $NSINKS); do echo "d$i.test"; done; }

# ---- sinks --------------------------------------------------------------------
# smtp-sink -c prints "sess=N quit=N mesg=N\r" whenever a message or session
# ends; relay_bench.py reads the last counter of each output file.
sinks_start() {
  local i
  for i in $(seq 1 $NSINKS); do
    /usr/sbin/smtp-sink -c -u nobody -h "sink$i.test" "$SINK_NET.$i:$SINK_PORT" 1024 \
      > "$W/sinks/$i.out" 2>&1 &
    SINK_PIDS+=($!)
  done
  for _ in $(seq 1 100); do
    [ "$(ss -Hltn "sport = :$SINK_PORT" | wc -l)" -ge $NSINKS ] && return 0
    sleep 0.1
  done
  die "the sinks do not all listen on $SINK_NET.1-$NSINKS:$SINK_PORT"
}
sinks_stop() {
  local p
  for p in "${SINK_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SINK_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SINK_PIDS=()
}

# ---- tegamid ------------------------------------------------------------------
# submission.auth_anonymous=yes lets clients send without AUTH, and the address
# relay list holds 127.0.0.0/8 (`tegami relay add network`; the default relay
# mode, address_list, lets those clients relay), as Postfix's mynetworks does:
# both servers get the same plain-SMTP injection.  The routes go straight into
# the data directory's routes table (`tegami route add` where the command
# exists).
tegami_init() {
  # shellcheck disable=SC2086  # TEGAMI_SET is a list of KEY=VALUE words
  "$TEGAMI" -D "$TDIR" config set "submission.listen=127.0.0.1:$TEGAMI_PORT" \
    "submission.auth_anonymous=yes" "smtp.listen=127.0.0.1:$TEGAMI_SMTP_PORT" \
    "smtps.listen=" "pop3.listen=" "pop3s.listen=" "storage.min_free=0" \
    "smtp.max_sessions_per_ip=1000" ${TEGAMI_SET:-} >/dev/null
  "$TEGAMI" -D "$TDIR" relay add network 127.0.0.0/8 >/dev/null
  local d
  if "$TEGAMI" -D "$TDIR" route list >/dev/null 2>&1; then
    for d in $(domains); do "$TEGAMI" -D "$TDIR" route add "$d" "$(dest_ip "$d"):$SINK_PORT" >/dev/null; done
  else
    for d in $(domains); do echo "$d $(dest_ip "$d"):$SINK_PORT"; done | "$PY" -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with db:
    db.executemany("INSERT OR REPLACE INTO routes(domain, target) VALUES(?, ?)",
                   [l.split() for l in sys.stdin if l.strip()])
' "$TDIR/tegami.db"
  fi
}

tegami_start() {
  "$TEGAMID" -D "$TDIR" >>"$W/tegamid.log" 2>&1 &
  TPID=$!
  for _ in $(seq 1 200); do
    kill -0 "$TPID" 2>/dev/null || { tail -20 "$W/tegamid.log" >&2; die "tegamid exited at start"; }
    [ -n "$(ss -Hltn "sport = :$TEGAMI_PORT")" ] && return 0
    sleep 0.1
  done
  die "tegamid does not listen on 127.0.0.1:$TEGAMI_PORT after 20 s"
}

tegami_stop() {
  [ -n "$TPID" ] || return 0
  local st=0
  if ! kill -0 "$TPID" 2>/dev/null; then
    log "warning: tegamid $TPID had died before the end (after: $LAST_TEST; see tegamid.log)"
  fi
  kill -TERM "$TPID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$TPID" 2>/dev/null || true
  wait "$TPID" 2>/dev/null || st=$?
  if [ "$st" -ne 0 ] && [ "$st" -ne 143 ]; then
    log "warning: tegamid exit status $st after: $LAST_TEST"
    echo "{\"event\": \"tegamid_exit\", \"status\": $st}" >> "$RES/events.jsonl"
  fi
  TPID=""
}

# ---- Postfix ------------------------------------------------------------------
postfix_init() {
  bash "$HERE/postfix.sh" setup "$PFDIR" "$POSTFIX_PORT" 100 >/dev/null
  local d
  for d in $(domains); do echo "$d smtp:[$(dest_ip "$d")]:$SINK_PORT"; done > "$W/transport"
  bash "$HERE/postfix.sh" relay "$PFDIR" "$W/transport"
}

cleanup() {
  set +e
  tegami_stop
  [ "$PF_UP" = 1 ] && bash "$HERE/postfix.sh" stop "$PFDIR"
  sinks_stop
  for f in "$W/tegamid.log" "$PFDIR/postfix.log"; do
    [ -f "$f" ] && tail -200 "$f" > "$RES/$(basename "$f").tail"
  done
  if [ "$KEEP" = 1 ]; then log "kept $W"; else rm -rf --one-file-system "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_meta() {
  local tver="not measured" rev fs
  fs=$(df -T "$W" | awk 'NR==2 {print $2 " on " $1}')
  if want tegami; then
    tver=$("$TEGAMI" --version 2>/dev/null | head -1 || true)
    if [ -n "${TEGAMI_REV:-}" ]; then rev="$TEGAMI_REV"
    elif [ "$TB" != "$REPO/build" ]; then rev="binaries from another build, revision unknown (set TEGAMI_REV)"
    elif rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
      git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || rev="$rev + uncommitted changes in src/"
    else rev="no commit yet"; fi
    tver="${tver:-tegami} (repo $rev)"
  fi
  MODE=$MODE RUNS=$RUNS COUNT=$COUNT SESSIONS=$SESSIONS SIZE=$SIZE TVER=$tver FS=$fs \
  PFV=$(postconf -d -h mail_version) TSET="${TEGAMI_SET:-}" SINK="$SINK_NET.1-$NSINKS:$SINK_PORT" \
  LOAD0="$LOAD0" "$PY" - "$RES/meta.json" <<'EOF'
import json, os, platform, sys, time
e = os.environ
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
json.dump({
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "machine": "%d CPUs (%s), %.0f GiB RAM, Linux %s; load average at start %s, at end %s; queues on %s" % (
        os.cpu_count(), cpu, mem / 2**20, platform.release(), e["LOAD0"],
        " ".join(open("/proc/loadavg").read().split()[:3]), e["FS"]),
    "mode": "%s: %s run(s) per row, the servers alternate which goes first; %s messages of %s B payload, "
            "%s sessions, one message per connection" % (e["MODE"], e["RUNS"], e["COUNT"], e["SIZE"], e["SESSIONS"]),
    "tegami": "%s; submission listener without AUTH (submission.auth_anonymous=yes), 127.0.0.0/8 on the "
              "address relay list (as mynetworks), "
              "per-domain routes to the sinks, relay.max_per_destination 20 and relay.max_connections 100 "
              "(defaults), relay.max_messages_per_connection 100, smtp.max_sessions_per_ip 1000 %s"
              % (e["TVER"], e["TSET"]),
    "postfix": "Postfix %s, stock settings (default_process_limit 100), smtpd with mynetworks = 127.0.0.0/8 "
               "(permit_mynetworks relays), transport_maps smtp:[IP]:PORT per domain, "
               "default_destination_concurrency_limit 20 (default), connection cache on demand (default)"
               % e["PFV"],
    "sinks": "100 smtp-sink processes (Postfix's), one per destination address %s, backlog 1024, -c counters" % e["SINK"],
    "injection": "one message per connection (HELO, MAIL, RCPT, DATA, QUIT); 1 destination: smtp-source, one process per session; 100 destinations: relay_bench.py inject (Python threads, blocking sockets, 2 processes), each message to the next domain of its session",
}, open(sys.argv[1], "w"), indent=1)
EOF
}

# ---- main ----------------------------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "work dir $W, results $RES, mode $MODE ($RUNS run(s), $COUNT messages, $SESSIONS sessions), load $LOAD0"
sinks_start
log "100 sinks on $SINK_NET.1-$NSINKS:$SINK_PORT"
if want tegami; then tegami_init; tegami_start; log "tegamid pid $TPID, submission on 127.0.0.1:$TEGAMI_PORT"; fi
if want postfix; then
  postfix_init
  bash "$HERE/postfix.sh" start "$PFDIR"; PF_UP=1
  log "postfix master $(bash "$HERE/postfix.sh" pid "$PFDIR") on 127.0.0.1:$POSTFIX_PORT"
fi

sink_pids=$(IFS=,; echo "${SINK_PIDS[*]}")
bench_one() {   # server dests run
  local s=$1 dests=$2 run=$3
  local args=(run --label "$s" --dests "$dests" --sessions "$SESSIONS" --size "$SIZE" --count "$COUNT"
              --run "$run" --sink-out "$W/sinks/*.out" --sink-pids "$sink_pids" --timeout "$RUN_TIMEOUT"
              --json-append "$RES/relay.jsonl")
  if [ "$s" = tegami ]; then
    LAST_TEST="$dests destination(s), run $run"
    "$PY" "$HERE/relay_bench.py" "${args[@]}" --port "$TEGAMI_PORT" --server-pid "$TPID" \
      --queue-dir "$TDIR/queue" || log "tegami: run failed"
  else
    "$PY" "$HERE/relay_bench.py" "${args[@]}" --port "$POSTFIX_PORT" --server-pidfile "$PF_PIDFILE" \
      --queue-dir "$PFDIR/spool/incoming" --queue-dir "$PFDIR/spool/active" \
      --queue-dir "$PFDIR/spool/deferred" --queue-dir "$PFDIR/spool/maildrop" || log "postfix: run failed"
  fi
}

for dests in ${DESTS//,/ }; do
  for run in $(seq 1 "$RUNS"); do
    if [ $((run % 2)) -eq 1 ]; then order="tegami postfix"; else order="postfix tegami"; fi
    for s in $order; do
      want "$s" || continue
      bench_one "$s" "$dests" "$run" >&2
    done
  done
done
write_meta
tegami_stop

"$PY" "$HERE/relay_bench.py" report "$RES" --out "$RES/report.md"
cp "$RES/report.md" "$HERE/results/relay-latest.md"
log "table written to bench/results/relay-latest.md"
