#!/bin/bash
# bench/pop3_bench.sh - tegami's POP3 server against Dovecot's on loopback, same
# Maildir files, same client (issue #4, "Performance").
#
# Measures, for tegamid and for a private Dovecot POP3 instance (dovecot_pop3.sh)
# side by side, with Python poplib clients (pop3_bench.py, one process per client):
#   * one client: connect + USER/PASS + UIDL + RETR every message + QUIT of a
#     10,000 x 4 KB mailbox: time, msgs/s, server CPU per message;
#   * 50 clients at once on 50 mailboxes of 200 x 4 KB each;
#     each of the two in two rows: "first session" (files fresh in new/: both
#     servers move them to cur/, Dovecot also builds its index) and "next
#     session" (right after, same mailbox, nothing reset: Dovecot has its index);
#   * 5,000 concurrent idle sessions, each logged in on its own empty Maildir:
#     did every PASS get +OK, is every session still alive (NOOP) after the hold,
#     RSS/PSS of tegamid vs the sum over Dovecot's processes;
#   * the ratio tegami/Dovecot for every row, and a "Targets (issue #4)" section.
# Prints the report as Markdown and writes it to bench/results/pop3-latest.md;
# the raw JSON lines go to bench/results/pop3-run-<date>/ (bench/results/ is
# ignored by git).
#
# Usage: bash bench/pop3_bench.sh [--full] [--only tegami|dovecot]
#                                 [--skip-idle] [--skip-retr] [--keep]
#   default  quick: 1 run of each retrieval row, 1 idle run per server held 10 s
#            (about 5-8 minutes, most of it adding 5,000 tegami users)
#   --full   3 runs of each retrieval row (median, min-max), 2 idle runs per
#            server held 30 s
#   --only   measure one server (the table shows – for the other)
#   --keep   keep the temp dir (data dirs, Maildirs, logs)
# Environment: TEGAMI_BUILD (dir with tegamid and tegami; default build/ in the
# repo), TEGAMI_POP3_PORT (3112), TEGAMI_SMTP_PORT (3527: tegamid needs an SMTP
# listener; nothing is sent to it), DOVECOT_POP3_PORT (3113), BENCH_TMPDIR
# (/var/tmp), RUNS, BIG_MSGS (10000), BOXES (50), BOX_MSGS (200), MSG_SIZE (4096),
# IDLE_N (5000), IDLE_RUNS, IDLE_HOLD, IDLE_PROCS (client processes holding the
# idle sessions, 10), DOVECOT_PASS_SCHEME (PLAIN | YESCRYPT, see dovecot_pop3.sh),
# TEGAMI_SET (extra KEY=VALUE words for `tegami config set`).
# Needs root (Dovecot's mail processes run as the user vmail; apt-get for
# dovecot-pop3d if it is missing).  Contacts nothing but 127.0.0.1.  Builds
# nothing: run `make build` first.  Never deletes a message: clients QUIT
# without DELE, and every first-session row starts from fresh hard links.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
B="$PY $HERE/pop3_bench.py"

MODE=quick ONLY="" KEEP=0 DO_IDLE=1 DO_RETR=1
while [ $# -gt 0 ]; do
  case "$1" in
    --full) MODE=full ;;
    --only) ONLY=${2:?--only tegami|dovecot}; shift ;;
    --keep) KEEP=1 ;;
    --skip-idle) DO_IDLE=0 ;;
    --skip-retr) DO_RETR=0 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "pop3_bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$ONLY" in ''|tegami|dovecot) ;; *) echo "pop3_bench.sh: --only tegami|dovecot" >&2; exit 2 ;; esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

if [ "$MODE" = full ]; then
  RUNS=${RUNS:-3} IDLE_RUNS=${IDLE_RUNS:-2} IDLE_HOLD=${IDLE_HOLD:-30}
else
  RUNS=${RUNS:-1} IDLE_RUNS=${IDLE_RUNS:-1} IDLE_HOLD=${IDLE_HOLD:-10}
fi
BIG_MSGS=${BIG_MSGS:-10000} BOXES=${BOXES:-50} BOX_MSGS=${BOX_MSGS:-200} MSG_SIZE=${MSG_SIZE:-4096}
IDLE_N=${IDLE_N:-5000} IDLE_PROCS=${IDLE_PROCS:-10}
TEGAMI_POP3_PORT=${TEGAMI_POP3_PORT:-3112}
TEGAMI_SMTP_PORT=${TEGAMI_SMTP_PORT:-3527}
DOVECOT_POP3_PORT=${DOVECOT_POP3_PORT:-3113}
PASS=bench-pass
DOMAIN=example.test
TB=${TEGAMI_BUILD:-$REPO/build}
TEGAMI=$TB/tegami TEGAMID=$TB/tegamid
[ "$DO_IDLE" = 1 ] || IDLE_N=0
NUSERS_IDLE=$IDLE_N; [ "$IDLE_N" -gt 0 ] && NUSERS_IDLE=$((IDLE_N + 1))   # + the probe's mailbox

log() { printf '[pop3-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (Dovecot's mail processes run as vmail; apt-get for dovecot-pop3d)"
if want dovecot; then bash "$HERE/dovecot_pop3.sh" install; fi
if want tegami; then
  if [ ! -x "$TEGAMID" ] || [ ! -x "$TEGAMI" ]; then
    die "no $TEGAMID / $TEGAMI: build first (make build) or set TEGAMI_BUILD"
  fi
fi
for p in $TEGAMI_POP3_PORT $TEGAMI_SMTP_PORT $DOVECOT_POP3_PORT; do
  [ -z "$(ss -Hltn "sport = :$p")" ] ||
    die "port 127.0.0.1:$p is in use (set TEGAMI_POP3_PORT / TEGAMI_SMTP_PORT / DOVECOT_POP3_PORT)"
done
getent passwd vmail >/dev/null || {
  getent group vmail >/dev/null || groupadd --system vmail
  useradd --system -g vmail -d /nonexistent -M -s /usr/sbin/nologin vmail
}

# 5,000 sessions: a socket (and a lock file) each in tegamid, a socket each in the client
ulimit -Hn 20000 2>/dev/null || true
ulimit -Sn "$(ulimit -Hn)"
[ "$(ulimit -Sn)" -ge $((2 * IDLE_N + 500)) ] || log "warning: ulimit -n is $(ulimit -Sn); the idle test may fall short"

W=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/tegami-pop3-bench.XXXXXX")
chmod 0755 "$W"                       # vmail (Dovecot's pop3 processes) must reach the Maildirs
STAMP=$(date -u +%Y%m%d-%H%M%S)
RES="$HERE/results/pop3-run-$STAMP"
mkdir -p "$RES"
JSONL="$RES/results.jsonl" META="$RES/meta.json"
TDIR="$W/tegami" DCDIR="$W/dovecot" TPL="$W/templates"
if want tegami; then
  # measure one build from start to end, even if build/ is rebuilt meanwhile
  mkdir -p "$W/bin"
  cp "$TEGAMID" "$TEGAMI" "$W/bin/"
  TEGAMID="$W/bin/tegamid" TEGAMI="$W/bin/tegami"
fi
TVER="not measured" DVER="not measured"
if want tegami; then
  TVER="$("$TEGAMI" --version 2>/dev/null | head -1 || true), $TB/tegamid of $(date -u -r "$TB/tegamid" '+%Y-%m-%d %H:%M UTC')"
  if rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
    git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || rev="$rev + uncommitted changes in src/"
    TVER="$TVER, tree at start: $rev"
  fi
fi
want dovecot && DVER="$(dovecot --version 2>/dev/null | head -1), passdb passwd-file scheme ${DOVECOT_PASS_SCHEME:-PLAIN}"
TROOT="$TDIR/mail" DROOT="$W/dovecot-mail"       # both: ROOT/<domain>/<user>/{cur,new,tmp}
TPID=""

# ---- servers -------------------------------------------------------------------
tegami_start() {
  "$TEGAMID" -D "$TDIR" >>"$W/tegamid.log" 2>&1 &
  TPID=$!
  for _ in $(seq 1 200); do                                   # 20 s at most
    kill -0 "$TPID" 2>/dev/null || { tail -20 "$W/tegamid.log" >&2; die "tegamid exited at start"; }
    [ -n "$(ss -Hltn "sport = :$TEGAMI_POP3_PORT")" ] && return 0
    sleep 0.1
  done
  die "tegamid does not listen on 127.0.0.1:$TEGAMI_POP3_PORT after 20 s"
}
tegami_stop() {
  [ -n "$TPID" ] || return 0
  kill -TERM "$TPID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$TPID" 2>/dev/null; then log "tegamid $TPID still running 15 s after SIGTERM, SIGKILL"; kill -KILL "$TPID" 2>/dev/null || true; fi
  wait "$TPID" 2>/dev/null || true
  TPID=""
}
DC_UP=0
dovecot_start() { bash "$HERE/dovecot_pop3.sh" start "$DCDIR"; DC_UP=1; }
dovecot_stop() { [ "$DC_UP" = 1 ] || return 0; bash "$HERE/dovecot_pop3.sh" stop "$DCDIR"; DC_UP=0; }
server_pid() { if [ "$1" = tegami ]; then echo "$TPID"; else bash "$HERE/dovecot_pop3.sh" pid "$DCDIR"; fi; }
server_port() { if [ "$1" = tegami ]; then echo "$TEGAMI_POP3_PORT"; else echo "$DOVECOT_POP3_PORT"; fi; }
server_root() { if [ "$1" = tegami ]; then echo "$TROOT/$DOMAIN"; else echo "$DROOT/$DOMAIN"; fi; }
server_restart() {
  if [ "$1" = tegami ]; then tegami_stop; tegami_start; else dovecot_stop; dovecot_start; fi
}

cleanup() {
  set +e
  tegami_stop
  dovecot_stop
  for f in "$W/tegamid.log" "$DCDIR/dovecot.log"; do
    [ -f "$f" ] && tail -200 "$f" >"$RES/$(basename "$f").tail"
  done
  if [ "$KEEP" = 1 ]; then log "kept $W"; else rm -rf --one-file-system "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- setup -----------------------------------------------------------------------
users_list() {   # USER lines: user0 (big), user1..userBOXES, idle1..idleN (+1 probe)
  echo "user0@$DOMAIN"
  for i in $(seq 1 "$BOXES"); do echo "user$i@$DOMAIN"; done
  [ "$NUSERS_IDLE" -gt 0 ] && for i in $(seq 1 "$NUSERS_IDLE"); do echo "idle$i@$DOMAIN"; done
  return 0
}

log "temp dir $W, results $RES"
log "generating templates: 1 x $BIG_MSGS and $BOXES x $BOX_MSGS messages of $MSG_SIZE bytes"
$B gen --dir "$TPL/big" --count "$BIG_MSGS" --size "$MSG_SIZE" --owner vmail >/dev/null
for i in $(seq 1 "$BOXES"); do
  $B gen --dir "$TPL/box$i" --count "$BOX_MSGS" --size "$MSG_SIZE" --owner vmail >/dev/null
done
man() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1/.manifest" "$2"; }
BIG_OCTETS=$(man "$TPL/big" octets) BOX_OCTETS=$(man "$TPL/box1" octets)
for i in $(seq 2 "$BOXES"); do
  [ "$(man "$TPL/box$i" octets)" = "$BOX_OCTETS" ] || die "template box$i differs in size from box1"
done

if want tegami; then
  log "tegami: data dir, $(users_list | wc -l) users (yescrypt hashing: about a minute for 5,000)"
  # shellcheck disable=SC2086  # TEGAMI_SET is a list of KEY=VALUE words
  "$TEGAMI" -D "$TDIR" config set "pop3.listen=127.0.0.1:$TEGAMI_POP3_PORT" "pop3s.listen=" \
    "smtp.listen=127.0.0.1:$TEGAMI_SMTP_PORT" "submission.listen=" "smtps.listen=" \
    "auth.allow_plaintext=yes" "storage.min_free=0" "pop3.max_sessions=20000" \
    "pop3.max_sessions_per_ip=20000" ${TEGAMI_SET:-} >/dev/null
  # shellcheck disable=SC2016  # expanded by the inner sh, from its environment
  users_list | T="$TEGAMI" D="$TDIR" P="$PASS" xargs -P "$(nproc)" -n 50 sh -c '
    for u; do printf "%s\n" "$P" | "$T" -D "$D" user add "$u" --password-stdin >/dev/null || exit 255; done' sh ||
    die "tegami user add failed"
  [ "$("$TEGAMI" -D "$TDIR" user list | grep -c "@$DOMAIN")" -ge "$(users_list | wc -l)" ] || die "not every tegami user was added"
  mkdir -p "$TROOT/$DOMAIN"
  [ "$NUSERS_IDLE" -gt 0 ] && $B empty --owner vmail --root "$TROOT" --users "idle%d@$DOMAIN" --first 1 --n "$NUSERS_IDLE" >/dev/null
  tegami_start
  log "tegamid pid $TPID on 127.0.0.1:$TEGAMI_POP3_PORT"
fi
if want dovecot; then
  users_list | sed "s/\$/:$PASS/" | bash "$HERE/dovecot_pop3.sh" setup "$DCDIR" "$DOVECOT_POP3_PORT" "$DROOT"
  install -d -o vmail -g vmail -m 0755 "$DROOT" "$DROOT/$DOMAIN"
  [ "$NUSERS_IDLE" -gt 0 ] && $B empty --owner vmail --root "$DROOT" --users "idle%d@$DOMAIN" --first 1 --n "$NUSERS_IDLE" >/dev/null
  dovecot_start
  log "dovecot master $(server_pid dovecot) on 127.0.0.1:$DOVECOT_POP3_PORT"
fi

# ---- what this run was -------------------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
write_meta() {
  $PY - "$META" <<EOF
import json, os, platform, sys
m = {
 "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
 "host": "%s, %d CPUs, %.1f GB RAM, kernel %s, load average at start $LOAD0, at end %s" % (
     platform.node(), os.cpu_count(), os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30,
     platform.release(), " ".join(open("/proc/loadavg").read().split()[:3])),
 "tegami": """$TVER""",
 "dovecot": """$DVER""",
 "mode": "$MODE: $RUNS run(s) per retrieval row (servers alternate which goes first), $IDLE_RUNS idle run(s) per server held ${IDLE_HOLD} s",
 "client": "Python poplib, one process per client (released together), one command at a time; idle: $IDLE_PROCS processes, 50 logins in flight at most",
 "mailboxes": "1 x $BIG_MSGS and $BOXES x $BOX_MSGS messages of $MSG_SIZE bytes (LF endings, names <time>.M<n>P<pid>.bench without ,S=/,W=), the same files hard-linked into both servers' Maildirs, page cache warm",
 "caveats": [
  "Retrieval rows: before each server's first-session row, every mailbox of the row is logged into once (USER/PASS/QUIT, unmeasured) and then rebuilt from the templates, so tegamid's credential cache is warm and neither server spends measurable CPU on the password (Dovecot: PLAIN passwd-file, auth cache off as shipped; tegamid: yescrypt, auth.cache_ttl 300 s).",
  "First session: the files sit in new/; both servers move them to cur/ at login, Dovecot also builds its index and dovecot-uidlist, and at QUIT renames every retrieved file to :2,S (stock pop3_no_flag_updates=no). Next session: same mailbox right after, Dovecot reads its index; tegamid rescans cur/ and reads every file to count its size (no W= in these names) on every login.",
  "Idle rows: each server is restarted first, so logins are cold: tegamid verifies 5,000 yescrypt hashes (about 20 ms of CPU each on this machine), Dovecot $([ "${DOVECOT_PASS_SCHEME:-PLAIN}" = PLAIN ] && echo "compares PLAIN passwords" || echo "verifies the same yescrypt scheme (DOVECOT_PASS_SCHEME=YESCRYPT)"). Dovecot runs one pop3 process per session (stock); its pop3 process_limit and default_client_limit are raised so that 5,000 sessions fit (stock: 1024 and 1000).",
  "tegamid serves every session on one event-loop thread (its worker threads only open mailboxes and check passwords), so its retrieval rate is capped by one core, while Dovecot's per-session processes spread over all cores; the 'main thread busy' row shows how close tegamid's loop was to 100 %, and the CPU-per-message 'capacity' ratio holds only while that loop has headroom.",
  "A 2-CPU machine runs the server, the clients and anything else at once; see the 'other CPU' rows for contention from work other than the two servers and the clients, and prefer server CPU per message where the clients saturate the machine."
 ],
}
json.dump(m, open(sys.argv[1], "w"), indent=1)
EOF
}

# ---- retrieval ---------------------------------------------------------------------
BIG_LABEL="1 × $($PY -c "print(f'{$BIG_MSGS:,}')") × $((MSG_SIZE / 1024)) KB"
BOX_LABEL="$BOXES × $BOX_MSGS × $((MSG_SIZE / 1024)) KB"

retr_row() {   # SERVER RUN
  local s=$1 run=$2 port pid root pairs=()
  port=$(server_port "$s") pid=$(server_pid "$s") root=$(server_root "$s")
  # one client on the big mailbox
  $B login --port "$port" --users "user%d@$DOMAIN" --first 0 --n 1 --pass "$PASS" >/dev/null
  $B reset --quiet --owner vmail "$root/user0=$TPL/big"
  sync
  $B retr --server "$s" --label "$BIG_LABEL, first session" --run "$run" --port "$port" --pid "$pid" \
    --users "user%d@$DOMAIN" --first 0 --clients 1 --pass "$PASS" --expect-msgs "$BIG_MSGS" \
    --expect-octets "$BIG_OCTETS" --jsonl "$JSONL" || log "$s: errors in the $BIG_LABEL first-session row"
  $B retr --server "$s" --label "$BIG_LABEL, next session" --run "$run" --port "$port" --pid "$pid" \
    --users "user%d@$DOMAIN" --first 0 --clients 1 --pass "$PASS" --expect-msgs "$BIG_MSGS" \
    --expect-octets "$BIG_OCTETS" --jsonl "$JSONL" || log "$s: errors in the $BIG_LABEL next-session row"
  # BOXES clients at once
  $B login --port "$port" --users "user%d@$DOMAIN" --first 1 --n "$BOXES" --pass "$PASS" >/dev/null
  for i in $(seq 1 "$BOXES"); do pairs+=("$root/user$i=$TPL/box$i"); done
  $B reset --quiet --owner vmail "${pairs[@]}"
  sync
  $B retr --server "$s" --label "$BOX_LABEL, first session" --run "$run" --port "$port" --pid "$pid" \
    --users "user%d@$DOMAIN" --first 1 --clients "$BOXES" --pass "$PASS" --expect-msgs "$BOX_MSGS" \
    --expect-octets "$BOX_OCTETS" --jsonl "$JSONL" || log "$s: errors in the $BOX_LABEL first-session row"
  $B retr --server "$s" --label "$BOX_LABEL, next session" --run "$run" --port "$port" --pid "$pid" \
    --users "user%d@$DOMAIN" --first 1 --clients "$BOXES" --pass "$PASS" --expect-msgs "$BOX_MSGS" \
    --expect-octets "$BOX_OCTETS" --jsonl "$JSONL" || log "$s: errors in the $BOX_LABEL next-session row"
}

order() {   # RUN -> servers in this run's order (tegami first in odd runs)
  local o
  if [ $(($1 % 2)) -eq 1 ]; then o="tegami dovecot"; else o="dovecot tegami"; fi
  for s in $o; do want "$s" && echo "$s"; done
  return 0
}

if [ "$DO_RETR" = 1 ]; then
  for run in $(seq 1 "$RUNS"); do
    for s in $(order "$run"); do
      log "retrieval run $run/$RUNS: $s"
      retr_row "$s" "$run"
    done
  done
fi

# ---- idle sessions -----------------------------------------------------------------
if [ "$DO_IDLE" = 1 ]; then
  for run in $(seq 1 "$IDLE_RUNS"); do
    for s in $(order "$run"); do
      log "idle run $run/$IDLE_RUNS: $s, $IDLE_N sessions (restart first: cold logins, clean baseline)"
      $B empty --owner vmail --root "$(dirname "$(server_root "$s")")" --users "idle%d@$DOMAIN" --first 1 --n "$NUSERS_IDLE" >/dev/null
      server_restart "$s"
      sync; sleep 2
      $B idle --server "$s" --label "idle" --run "$run" --port "$(server_port "$s")" --pid "$(server_pid "$s")" \
        --users "idle%d@$DOMAIN" --first 1 --n "$IDLE_N" --procs "$IDLE_PROCS" --pass "$PASS" \
        --hold "$IDLE_HOLD" --probe-user "idle$((IDLE_N + 1))@$DOMAIN" --jsonl "$JSONL" ||
        log "$s: not every idle session was held"
      sleep 2
    done
  done
fi

# ---- report ------------------------------------------------------------------------
write_meta
$PY "$HERE/pop3_bench.py" report --jsonl "$JSONL" --meta "$META" --out "$RES/report.md" >/dev/null
cp "$RES/report.md" "$HERE/results/pop3-latest.md"
cat "$RES/report.md"
log "report: $HERE/results/pop3-latest.md (raw: $RES)"
