#!/bin/bash
# bench/queue_load.sh - tegamid's start-up with 100,000 queued messages (issue #8
# "Performance": loaded in under 5 s and under 200 MB RSS).
#
# 1. A fresh data dir; tegamid routes remote.test to a closed port on 127.0.0.1
#    and retries after a day (queue.retry1_interval=86400).
# 2. The queue, two ways:
#    clone (default): SEED messages of 4 KB are submitted to tegamid (plain SMTP
#      on its submission listener, smtp-source), each is tried once, refused and
#      recorded deferred; tegamid stops; one of those queue files, as tegamid
#      wrote it (envelope, body, state record), is copied N times under new
#      queue ids (queue_load.py clone; ~20 s for 100,000);
#    --real: all N messages are submitted to tegamid and deferred by it (slow:
#      ~2-4 minutes for 100,000 on 2 CPUs, one fsync'd commit and one
#      fdatasync'd state record per message).
# 3. tegamid is started RUNS times on that queue; each time queue_load.py
#    measures the seconds from exec to event=recovery_done (every message
#    loaded, a timer armed for its next try), tegamid's CPU and RSS then, its
#    peak RSS (VmHWM) and the RSS 3 s later, then stops it.  With --cold the
#    page cache is dropped before each start (a start after a reboot).
# Prints a Markdown table (also bench/results/queue-load-latest.md; raw JSON
# lines in bench/results/run-queue-load-<date>/).
#
# Usage: bash bench/queue_load.sh [--full] [--real] [--cold] [--n N] [--keep]
#   default  quick: 100,000 messages (clone), 1 warm start
#   --full   3 warm starts and 3 cold ones
# Environment: TEGAMI_BUILD, TEGAMI_REV, QL_PORT (3636: tegamid's submission
# listener), QL_CLOSED_PORT (3639: nothing may listen there), BENCH_TMPDIR.
# Needs root for --cold (drop_caches).  Contacts nothing but 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3

MODE=quick MAKE=clone COLD=0 KEEP=0 N=100000 SEED=20
while [ $# -gt 0 ]; do
  case "$1" in
    --full) MODE=full ;;
    --real) MAKE=real ;;
    --cold) COLD=1 ;;
    --n) N=${2:?--n N}; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "queue_load.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$N" in ''|*[!0-9]*) echo "queue_load.sh: --n takes a number" >&2; exit 2 ;; esac
if [ "$MODE" = full ]; then WARM=3 COLDRUNS=3; else WARM=1 COLDRUNS=0; fi
[ "$COLD" = 1 ] && [ "$COLDRUNS" = 0 ] && COLDRUNS=1
PORT=${QL_PORT:-3636}
CLOSED=${QL_CLOSED_PORT:-3639}
TB=${TEGAMI_BUILD:-$REPO/build}
TEGAMI=$TB/tegami TEGAMID=$TB/tegamid

log() { printf '[queue-load %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ ! -x "$TEGAMID" ] || [ ! -x "$TEGAMI" ]; then
  die "no $TEGAMID / $TEGAMI: build first (make build) or set TEGAMI_BUILD"
fi
[ "$COLDRUNS" = 0 ] || [ "$(id -u)" -eq 0 ] || die "--cold needs root (drop_caches)"
bash "$HERE/deps.sh"
for p in $PORT $((PORT + 1)) $CLOSED; do
  [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p is in use (set QL_PORT / QL_CLOSED_PORT)"
done

W=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/tegami-qload.XXXXXX")
STAMP=$(date -u +%Y%m%d-%H%M%S)
RES="$HERE/results/run-queue-load-$STAMP"
mkdir -p "$RES"
D="$W/data" LOG="$W/tegamid.log"
TPID=""

tegami_start() {
  "$TEGAMID" -D "$D" >>"$LOG" 2>&1 &
  TPID=$!
  for _ in $(seq 1 200); do
    kill -0 "$TPID" 2>/dev/null || { tail -20 "$LOG" >&2; die "tegamid exited at start"; }
    [ -n "$(ss -Hltn "sport = :$PORT")" ] && return 0
    sleep 0.1
  done
  die "tegamid does not listen on 127.0.0.1:$PORT"
}
tegami_stop() {
  [ -n "$TPID" ] || return 0
  kill -TERM "$TPID" 2>/dev/null || true
  wait "$TPID" 2>/dev/null || true
  TPID=""
}
cleanup() {
  set +e
  tegami_stop
  [ -f "$LOG" ] && grep -v "event=\(queued\|deferred\|connect\|disconnect\|destination_failed\)" "$LOG" | tail -100 > "$RES/tegamid.log.tail"
  if [ "$KEEP" = 1 ]; then log "kept $W"; else rm -rf --one-file-system "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

deferred() { grep -c "event=deferred" "$LOG" 2>/dev/null || true; }

# 1. data dir: remote.test goes to a port where nothing listens
"$TEGAMI" -D "$D" config set "submission.listen=127.0.0.1:$PORT" "submission.auth_anonymous=yes" \
  "smtp.listen=127.0.0.1:$((PORT + 1))" "smtps.listen=" "pop3.listen=" "pop3s.listen=" \
  "storage.min_free=0" "smtp.max_sessions_per_ip=1000" "queue.retry1_interval=86400" \
  "queue.retry2_interval=86400" "relay.connect_timeout=5" >/dev/null
if "$TEGAMI" -D "$D" route list >/dev/null 2>&1; then
  "$TEGAMI" -D "$D" route add remote.test "127.0.0.1:$CLOSED" >/dev/null
else
  "$PY" -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with db:
    db.execute("INSERT OR REPLACE INTO routes(domain, target) VALUES(?, ?)", ("remote.test", sys.argv[2]))
' "$D/tegami.db" "127.0.0.1:$CLOSED"
fi

# 2. the queue
submit() {   # COUNT SESSIONS
  local count=$1 sess=$2 per i m pids=() p
  per=$(( (count + sess - 1) / sess ))
  for i in $(seq 1 "$sess"); do
    m=$(( count - (i - 1) * per )); [ "$m" -gt "$per" ] && m=$per
    [ "$m" -gt 0 ] || continue
    /usr/sbin/smtp-source -l 4096 -m "$m" -s 1 -f bench@client.test -t relay@remote.test \
      -M bench.client "127.0.0.1:$PORT" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "smtp-source failed"; done
}
wait_deferred() {   # COUNT
  for _ in $(seq 1 6000); do
    [ "$(deferred)" -ge "$1" ] && return 0
    sleep 0.1
  done
  die "only $(deferred) of $1 messages deferred after 600 s"
}

t0=$(date +%s)
tegami_start
if [ "$MAKE" = real ]; then
  log "submitting $N messages of 4 KB to tegamid (deferred: remote.test -> 127.0.0.1:$CLOSED)"
  submit "$N" 50
  wait_deferred "$N"
  tegami_stop
else
  submit "$SEED" 5
  wait_deferred "$SEED"
  tegami_stop
  tpl=$(grep -l $'^s 0 Q ' "$D"/queue/* | head -1)
  [ -n "$tpl" ] || die "no deferred queue file to copy"
  cp "$tpl" "$W/template"
  find "$D/queue" -type f -delete
  log "copying one of tegamid's own queue files $N times (template: $(wc -c < "$W/template") bytes)"
  "$PY" "$HERE/queue_load.py" clone --template "$W/template" --dir "$D/queue" --n "$N" \
    --owner "$(stat -c %u:%g "$D")" >/dev/null
fi
t1=$(date +%s)
QFILES=$(find "$D/queue" -type f | wc -l)
QBYTES=$(du -sm "$D/queue" | cut -f1)
log "queue: $QFILES files, $QBYTES MB, made in $((t1 - t0)) s"

# 3. start-ups
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
run=0
for i in $(seq 1 "$WARM"); do
  run=$((run + 1))
  "$PY" "$HERE/queue_load.py" measure --tegamid "$TEGAMID" --data "$D" --log "$LOG" --run "$run" \
    --json-append "$RES/queue_load.jsonl" >&2 || log "start-up $run did not load every message"
done
for i in $(seq 1 "$COLDRUNS"); do
  run=$((run + 1))
  "$PY" "$HERE/queue_load.py" measure --tegamid "$TEGAMID" --data "$D" --log "$LOG" --run "$run" \
    --drop-caches --json-append "$RES/queue_load.jsonl" >&2 || log "start-up $run did not load every message"
done
left=$(find "$D/queue" -type f | wc -l)
[ "$left" -eq "$QFILES" ] || log "warning: $QFILES queue files before, $left after the start-ups"

tver=$("$TEGAMI" --version 2>/dev/null | head -1 || true)
rev=${TEGAMI_REV:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)}
MAKE=$MAKE N=$QFILES QBYTES=$QBYTES TVER="$tver (repo $rev)" LOAD0=$LOAD0 FS="$(df -T "$W" | awk 'NR==2 {print $2 " on " $1}')" \
"$PY" - "$RES/meta.json" <<'EOF'
import json, os, platform, sys, time
e = os.environ
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "machine": "%d CPUs (%s), Linux %s; load average at start %s, at end %s; queue on %s" % (
        os.cpu_count(), cpu, platform.release(), e["LOAD0"], " ".join(open("/proc/loadavg").read().split()[:3]),
        e["FS"]),
    "tegami": e["TVER"] + "; queue.workers 8 (default)",
    "queue": "%s files, %s MB, %s" % (e["N"], e["QBYTES"],
        "all submitted to tegamid and deferred by it" if e["MAKE"] == "real" else
        "copies of one queue file tegamid wrote for a 4 KB message it deferred (one remote recipient, "
        "one state record), each under its own queue id"),
}, open(sys.argv[1], "w"), indent=1)
EOF
"$PY" "$HERE/queue_load.py" report "$RES" --out "$RES/report.md"
cp "$RES/report.md" "$HERE/results/queue-load-latest.md"
log "table written to bench/results/queue-load-latest.md"
