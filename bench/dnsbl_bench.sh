#!/bin/bash
# bench/dnsbl_bench.sh - connection rate with DNS blocklists (issue #11
# "Performance"; MISSION R2): tegamid without DNSBL zones, tegamid with two
# zones (answers cached), and Postfix's postscreen with the same two zones,
# measured in one run; the ratios are printed.
#
# Usage: bash bench/dnsbl_bench.sh [--full] [--keep]
#   default  RUNS=7 rounds of CONNS=20000 connections per row (~3 minutes)
#   --full   RUNS=11, CONNS=40000
#   --keep   keep the temp dir (logs of all three servers and of dnsmasq)
# Environment: TEGAMI_BUILD (dir with tegamid and tegami; default build/),
# TEGAMI_PORT (3726 without zones, 3727 with), POSTFIX_PORT (3725), DNS_IP (127.0.0.77: dnsmasq on
# port 53 there), CONC (50 connections in flight), SRC (127.0.0.3-10: the
# client addresses, none listed), BENCH_TMPDIR (/var/tmp).
#
# Each connection: connect, greeting, QUIT, 221, close (dnsbl_bench.py, one
# process, non-blocking). Two tegamids run side by side, one without zones,
# one with both, so that the rows alternate without a reload in between.
# Before the clock starts every client address has
# connected (warm-up), so both servers answer from their caches: tegamid
# from its DNSBL cache (entries kept for the answer's TTL; NXDOMAIN without
# a SOA: 60 s), postscreen from its cache of clients that passed ("PASS
# OLD": the connection goes straight to an smtpd). The three rows alternate
# order from round to round; the table shows the median of the rounds, and
# the ratio with/without zones is the median of each round's own ratio (the
# two tegamid rows of a round run back to back, so load from elsewhere on a
# shared machine touches both alike). Server CPU per connection does not
# depend on that load at all; "other CPU" is what the rest of the machine
# (and the kernel's loopback TCP work) used meanwhile.
#
# The zones are served by dnsmasq on DNS_IP:53 (z1.bench.test lists
# 127.0.0.2 with a TXT; everything else is NXDOMAIN; records live an hour).
# Postfix's dnsblog asks the resolver of /etc/resolv.conf, which cannot name
# a port: Postfix is started in a private mount namespace (unshare -m) where
# a resolv.conf naming DNS_IP is bind-mounted over /etc/resolv.conf; the
# system's own file is never touched. Postfix: bench/postfix.sh's stock
# instance with its smtpd listener replaced by postscreen (Debian's
# commented-out master.cf lines: postscreen, smtpd pass, dnsblog, tlsproxy),
# postscreen_dnsbl_sites = the two zones, threshold 1, action enforce,
# postscreen_access_list empty (its default, permit_mynetworks, would wave
# every loopback client through), and smtpd_peername_lookup = no (tegamid
# does no reverse lookup either; this favours Postfix).
#
# Needs root (Postfix, port 53, the mount namespace). Contacts nothing but
# loopback addresses. Builds nothing: run `make build` first.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
BUILD=${TEGAMI_BUILD:-$REPO/build}
TG_PORT=${TEGAMI_PORT:-3726}
PF_PORT=${POSTFIX_PORT:-3725}
DNS_IP=${DNS_IP:-127.0.0.77}
CONC=${CONC:-50}
SRC=${SRC:-127.0.0.3-10}
RUNS=${RUNS:-7}
CONNS=${CONNS:-20000}
KEEP=0
ZONES="z1.bench.test,z2.bench.test"

while [ $# -gt 0 ]; do
  case "$1" in
    --full) RUNS=${RUNS_FULL:-11}; CONNS=${CONNS_FULL:-40000} ;;
    --keep) KEEP=1 ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
  esac
  shift
done

[ "$(id -u)" = 0 ] || { echo "dnsbl_bench.sh: needs root (Postfix, port 53, unshare)" >&2; exit 2; }
for c in postfix dnsmasq unshare; do
  command -v "$c" >/dev/null || { echo "dnsbl_bench.sh: $c missing (bash bench/deps.sh)" >&2; exit 2; }
done
[ -x "$BUILD/tegamid" ] || { echo "dnsbl_bench.sh: no $BUILD/tegamid (make build)" >&2; exit 2; }

TMP=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/tegami-dnsbl.XXXXXX")
chmod 0755 "$TMP"
PF="$TMP/postfix" TG="$TMP/tegami" OUT="$TMP/results.jsonl"
DNS_PID="" TG_PIDS=()

cleanup() {
  for p in "${TG_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  bash "$HERE/postfix.sh" stop "$PF" 2>/dev/null || true
  [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "kept: $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

rev() { echo "$1" | awk -F. '{print $4"."$3"."$2"."$1}'; }

# --- the zones ------------------------------------------------------------------
dnsmasq -k -C /dev/null --no-resolv --no-hosts --port=53 --listen-address="$DNS_IP" \
  --bind-interfaces --pid-file= --user=root --local=/bench.test/ --local-ttl=3600 \
  --log-queries --log-facility="$TMP/dnsmasq.log" \
  --host-record="$(rev 127.0.0.2).z1.bench.test,127.0.0.2" \
  --txt-record="$(rev 127.0.0.2).z1.bench.test,listed for the benchmark" &
DNS_PID=$!
for _ in $(seq 1 50); do
  $PY -c "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('$DNS_IP',0))" \
    2>/dev/null && [ -s "$TMP/dnsmasq.log" ] && break
  sleep 0.1
done
printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$DNS_IP" > "$TMP/resolv.conf"

# --- Postfix with postscreen -------------------------------------------------------
bash "$HERE/postfix.sh" setup "$PF" "$PF_PORT" 100 >/dev/null
sed -i "/^127\.0\.0\.1:$PF_PORT /d" "$PF/etc/master.cf"
cat >> "$PF/etc/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n -       n       -       1       postscreen
smtpd     pass  -       -       n       -       -       smtpd
dnsblog   unix  -       -       n       -       0       dnsblog
tlsproxy  unix  -       -       n       -       0       tlsproxy
EOF
postconf -c "$PF/etc" -e "postscreen_access_list =" \
  "postscreen_dnsbl_sites = ${ZONES/,/, }" "postscreen_dnsbl_threshold = 1" \
  "postscreen_dnsbl_action = enforce" "smtpd_peername_lookup = no"
postfix -c "$PF/etc" check
unshare -m --propagation private sh -c \
  "mount --bind '$TMP/resolv.conf' /etc/resolv.conf && bash '$HERE/postfix.sh' start '$PF'"
PF_PID=$(bash "$HERE/postfix.sh" pid "$PF")

# --- two tegamids: one without zones, one with both ------------------------------
# Two instances, so that the rows can alternate without a reload in between.
TG_PIDS=()
tg_start() {   # dir port zones
  "$BUILD/tegami" -D "$1" config set "smtp.listen=127.0.0.1:$2" submission.listen= smtps.listen= \
    pop3.listen= pop3s.listen= smtp.max_sessions=11000 smtp.max_sessions_per_ip=11000 \
    storage.min_free=0 "dns.servers=$DNS_IP:53" "smtp.dnsbl_zones=$3" >/dev/null
  "$BUILD/tegamid" -D "$1" >"$1.out" 2>"$1.log" &
  local pid=$!
  TG_PIDS+=("$pid")
  for _ in $(seq 1 100); do
    grep -q "^pid: $pid\$" "$1/tegamid.state" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "dnsbl_bench.sh: tegamid in $1 did not start" >&2; exit 1
}
tg_start "$TG-none" "$TG_PORT" ""
TG_NONE_PID=${TG_PIDS[0]}
tg_start "$TG-zones" "$((TG_PORT + 1))" "$ZONES"
TG_ZONES_PID=${TG_PIDS[1]}

# --- sanity: the listed address is refused by both --------------------------------
tg_probe=$($PY "$HERE/dnsbl_bench.py" --port "$((TG_PORT + 1))" --probe 127.0.0.2)
pf_probe=$($PY "$HERE/dnsbl_bench.py" --port "$PF_PORT" --probe 127.0.0.2)
echo "tegamid, 127.0.0.2:   $tg_probe"
echo "postscreen, 127.0.0.2: $pf_probe"
case "$tg_probe" in *"554 5.7.1 CONNECTION REFUSED 127.0.0.2"*) ;; *)
  echo "dnsbl_bench.sh: tegamid did not refuse the listed address" >&2; exit 1 ;; esac
case "$pf_probe" in *"blocked using z1.bench.test"*) ;; *)
  echo "dnsbl_bench.sh: postscreen did not refuse the listed address" >&2; exit 1 ;; esac

# --- the rounds ------------------------------------------------------------------
row() {   # label port pids
  $PY "$HERE/dnsbl_bench.py" --port "$2" --src "$SRC" --conns "$CONNS" --conc "$CONC" \
    --server-pid "$3" --label "$1" | tee -a "$OUT"
}
tegami_none() { row "tegami, no zones" "$TG_PORT" "$TG_NONE_PID"; }
tegami_two() { row "tegami, 2 zones" "$((TG_PORT + 1))" "$TG_ZONES_PID"; }
postscreen() { row "postfix postscreen, 2 zones" "$PF_PORT" "$PF_PID"; }

for r in $(seq 1 "$RUNS"); do
  echo "round $r of $RUNS" >&2
  if [ $((r % 2)) = 1 ]; then tegami_none; tegami_two; postscreen
  else postscreen; tegami_two; tegami_none; fi
done

queries=$(grep -c 'query\[A\]' "$TMP/dnsmasq.log" || true)
REPORT="$HERE/results/dnsbl-latest.md"
mkdir -p "$HERE/results"
$PY - "$OUT" "$RUNS" "$CONNS" "$CONC" "$queries" > "$REPORT" <<'EOF'
import json, statistics, sys
path, runs, conns, conc, queries = sys.argv[1:]
rows = {}
for line in open(path):
    r = json.loads(line)
    rows.setdefault(r["label"], []).append(r)
order = ["tegami, no zones", "tegami, 2 zones", "postfix postscreen, 2 zones"]
med = {k: statistics.median(x["rate"] for x in rows[k]) for k in order}
pairs = [z["rate"] / n["rate"] for n, z in zip(rows[order[0]], rows[order[1]])]
print("## Connections per second with DNSBL zones (issue #11)\n")
print("%s rounds of %s connections, %s in flight; connect, greeting, QUIT, close; "
      "answers cached (warm-up first)\n" % (runs, conns, conc))
print("| server | conn/s (median) | min-max | server CPU ms / 1000 conn | other CPU s / run | p99 greeting ms | errors |")
print("|---|---|---|---|---|---|---|")
cpu = {}
for k in order:
    xs = rows[k]
    cpu[k] = statistics.median(x["server_cpu_s"] * 1e6 / x["conns"] for x in xs)
    print("| %s | %.0f | %.0f-%.0f | %.0f | %.2f | %.2f | %d |" % (
        k, med[k], min(x["rate"] for x in xs), max(x["rate"] for x in xs), cpu[k],
        statistics.median(x.get("other_cpu_s", 0) for x in xs),
        statistics.median(x["lat_ms_p99"] for x in xs), sum(x["errors"] for x in xs)))
a = statistics.median(pairs)
b = med["tegami, 2 zones"] / med["postfix postscreen, 2 zones"]
print("\n- tegami with 2 zones / without, median of the rounds' ratios: **%.2f** "
      "(target >= 0.90: %s; per round: %s)" % (a, "met" if a >= 0.9 else "NOT met",
                                             ", ".join("%.2f" % p for p in pairs)))
print("- server CPU per connection with 2 zones / without: %.2f" % (cpu[order[1]] / cpu[order[0]]))
print("- tegami / postscreen, both with 2 zones: **%.2f**" % b)
print("- A queries dnsmasq answered in the whole run (both servers): %s" % queries)
EOF
cat "$REPORT"
