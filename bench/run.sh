#!/bin/bash
# bench/run.sh - tegami vs Postfix on loopback, one run, same load generator
# (issue #2, "Performance").  `make bench` runs it.
#
# Measures, for tegamid and for a private stock Postfix instance side by side:
#   * messages/second accepted (250 after DATA) and landed in Maildir (file in
#     new/), at 1, 10, 50 and 200 concurrent sessions, 4 KB and 100 KB messages,
#     one message per connection, driven by Postfix's smtp-source with one
#     process per session; the two servers alternate run by run;
#   * RSS (and PSS) of the server while it holds 1,000 and 10,000 idle sessions;
#   * the ratio tegami/Postfix for every row.
# Prints the table as Markdown and writes it to bench/results/latest.md; the raw
# per-run JSON lines go to bench/results/run-<date>/.
#
# Usage: bash bench/run.sh [--full] [--only tegami|postfix] [--skip-idle]
#                          [--skip-throughput] [--keep]
#   default  quick: 1 run per row, 1,000 (4 KB) / 500 (100 KB) messages, short
#            idle holds; a few minutes
#   --full   3 runs per row, 3,000 / 1,000 messages, longer idle holds
#   --only   measure one server (table shows – for the other)
#   --keep   keep the temp dir with both servers' data and logs
# Environment: TEGAMI_BUILD (dir with tegamid and tegami; default build/ in the
# repo), TEGAMI_PORT (3526), POSTFIX_PORT (3525), BENCH_TMPDIR (/var/tmp),
# RUNS, COUNT_4K, COUNT_100K, CONC ("1,10,50,200"), SIZES ("4096,102400"),
# LOADGEN (smtp-source | python), PF_IDLE_PROC_LIMIT (1100: Postfix's
# default_process_limit for the idle test; it forks one smtpd per session),
# TEGAMI_SET (extra "KEY=VALUE ..." for `tegami config set`),
# TEGAMI_QUEUE_DIRS (tegamid's spool dirs that must be empty between runs;
# default: DATA/queue and DATA/spool where they exist).
# Needs root (Postfix; apt-get via deps.sh).  Contacts nothing but 127.0.0.1.
# Builds nothing: run `make build` first.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3

MODE=quick ONLY="" KEEP=0 DO_IDLE=1 DO_TP=1
while [ $# -gt 0 ]; do
  case "$1" in
    --full) MODE=full ;;
    --only) ONLY=${2:?--only tegami|postfix}; shift ;;
    --keep) KEEP=1 ;;
    --skip-idle) DO_IDLE=0 ;;
    --skip-throughput) DO_TP=0 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$ONLY" in ''|tegami|postfix) ;; *) echo "run.sh: --only tegami|postfix" >&2; exit 2 ;; esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

if [ "$MODE" = full ]; then
  RUNS=${RUNS:-3} COUNT_4K=${COUNT_4K:-3000} COUNT_100K=${COUNT_100K:-1000} RUN_TIMEOUT=180
  IDLE_1K="--ramp 5 --banner-wait 20 --hold 10"
  IDLE_10K="--ramp 10 --banner-wait 20 --hold 25"
else
  RUNS=${RUNS:-1} COUNT_4K=${COUNT_4K:-1000} COUNT_100K=${COUNT_100K:-500} RUN_TIMEOUT=60
  IDLE_1K="--ramp 3 --banner-wait 10 --hold 5"
  IDLE_10K="--ramp 10 --banner-wait 15 --hold 5"
fi
CONC=${CONC:-1,10,50,200}
SIZES=${SIZES:-4096,102400}
LOADGEN=${LOADGEN:-smtp-source}
TEGAMI_PORT=${TEGAMI_PORT:-3526}
POSTFIX_PORT=${POSTFIX_PORT:-3525}
PF_IDLE_PROC_LIMIT=${PF_IDLE_PROC_LIMIT:-1100}
MAX_SESSIONS=11000          # tegamid limits for the bench: above the 10,000 idle sessions
TB=${TEGAMI_BUILD:-$REPO/build}
TEGAMI=$TB/tegami TEGAMID=$TB/tegamid

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (Postfix needs it; deps.sh installs packages)"
bash "$HERE/deps.sh"
if want tegami; then
  if [ ! -x "$TEGAMID" ] || [ ! -x "$TEGAMI" ]; then
    die "no $TEGAMID / $TEGAMI: build first (make build) or set TEGAMI_BUILD"
  fi
fi
for p in $TEGAMI_PORT $POSTFIX_PORT; do
  [ -z "$(ss -Hltn "sport = :$p")" ] || die "port 127.0.0.1:$p is in use (set TEGAMI_PORT / POSTFIX_PORT)"
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
TDIR="$W/tegami" PFDIR="$W/postfix"
TMD="$TDIR/mail/example.test/user1" PFMD="$PFDIR/vhosts/example.test/user1"
PF_PIDFILE="$PFDIR/spool/pid/master.pid"
TPID="" PF_UP=0

# ---- tegamid -----------------------------------------------------------------
tegami_init() {
  # shellcheck disable=SC2086  # TEGAMI_SET is a list of KEY=VALUE words
  "$TEGAMI" -D "$TDIR" config set "smtp.listen=127.0.0.1:$TEGAMI_PORT" \
    "smtp.max_sessions=$MAX_SESSIONS" "smtp.max_sessions_per_ip=$MAX_SESSIONS" \
    "smtp.max_message_size=10485760" "storage.min_free=0" \
    "submission.listen=" "smtps.listen=" ${TEGAMI_SET:-} >/dev/null
  printf 'bench-password-1\n' | "$TEGAMI" -D "$TDIR" user add user1@example.test --password-stdin >/dev/null
}

tegami_start() {
  "$TEGAMID" -D "$TDIR" >>"$W/tegamid.log" 2>&1 &
  TPID=$!
  for _ in $(seq 1 200); do                         # 20 s at most
    kill -0 "$TPID" 2>/dev/null || { tail -20 "$W/tegamid.log" >&2; die "tegamid exited at start"; }
    [ -n "$(ss -Hltn "sport = :$TEGAMI_PORT")" ] && return 0
    sleep 0.1
  done
  die "tegamid does not listen on 127.0.0.1:$TEGAMI_PORT after 20 s"
}

tegami_stop() {
  [ -n "$TPID" ] || return 0
  kill -TERM "$TPID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$TPID" 2>/dev/null; then
    log "tegamid $TPID still running 10 s after SIGTERM, killing it"
    kill -KILL "$TPID" 2>/dev/null || true
  fi
  wait "$TPID" 2>/dev/null || true
  TPID=""
}

# ---- Postfix -----------------------------------------------------------------
postfix_up() { bash "$HERE/postfix.sh" restart "$PFDIR" "$1"; PF_UP=1; }
postfix_down() { [ "$PF_UP" = 1 ] && bash "$HERE/postfix.sh" stop "$PFDIR"; PF_UP=0; }

cleanup() {
  set +e
  tegami_stop
  postfix_down
  for f in "$W/tegamid.log" "$PFDIR/postfix.log"; do
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
    if rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
      git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || rev="$rev + uncommitted changes in src/"
    else
      rev="no commit yet"
    fi
    tver="${tver:-tegami} (repo $rev)"
  fi
  MODE=$MODE FS=$fs TVER=$tver RUNS=$RUNS C4=$COUNT_4K C100=$COUNT_100K LOADGEN=$LOADGEN \
  PFV=$(postconf -d -h mail_version) PFLIM=$PF_IDLE_PROC_LIMIT MAXS=$MAX_SESSIONS TSET="${TEGAMI_SET:-}" \
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
}, open(sys.argv[1], "w"), indent=1)
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
          want "$s" && bench_one "$s" "$size" "$conc" "$count" >&2
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

# ---- main -------------------------------------------------------------------------
log "work dir $W, results $RES, mode $MODE"
if want tegami; then tegami_init; tegami_start; log "tegamid pid $TPID on 127.0.0.1:$TEGAMI_PORT"; fi
if want postfix; then
  bash "$HERE/postfix.sh" setup "$PFDIR" "$POSTFIX_PORT" 100 >/dev/null
  postfix_up 100
  log "postfix master $(bash "$HERE/postfix.sh" pid "$PFDIR") on 127.0.0.1:$POSTFIX_PORT"
fi
write_meta
if [ "$DO_TP" = 1 ]; then log "throughput: sizes $SIZES, sessions $CONC, $RUNS run(s)"; run_throughput; fi
if [ "$DO_IDLE" = 1 ]; then log "idle sessions: 1,000 and 10,000"; run_idle; fi
tegami_stop
postfix_down

"$PY" "$HERE/report.py" "$RES" --out "$RES/report.md"
cp "$RES/report.md" "$HERE/results/latest.md"
log "table written to bench/results/latest.md"
