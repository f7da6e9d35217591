#!/bin/bash
# bench/wait_idle.sh - pre-run hook of smtp_bench.py: bring a server back to an
# idle, clean state so that runs do not overlap.  Measures nothing.
#
#   wait_idle.sh [-q QUEUE_DIR]... MAILDIR...
#
# 1. waits (at most 120 s) until no regular file is left under any QUEUE_DIR
#    (Postfix: its incoming/active/deferred/maildrop/hold queues; tegamid: its
#    spool) and the MAILDIRs' file count has not changed for 1 s;
# 2. deletes every file in MAILDIR/{new,cur,tmp};
# 3. sync, then 1 s pause so the next run starts on a quiet disk.
# Exit status 1 if the queues do not drain in time.
set -uo pipefail

queues=()
while getopts q: opt; do
  case $opt in
    q) queues+=("$OPTARG") ;;
    *) echo "usage: $0 [-q QUEUE_DIR]... MAILDIR..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

queued() {
  [ ${#queues[@]} -eq 0 ] && { echo 0; return; }
  find "${queues[@]}" -type f 2>/dev/null | wc -l
}
landed() {
  local n=0 md sub
  for md in "$@"; do
    for sub in new cur; do
      [ -d "$md/$sub" ] && n=$((n + $(find "$md/$sub" -type f | wc -l)))
    done
  done
  echo "$n"
}

last=-1 stable=0 q=0
for _ in $(seq 1 1200); do              # 1200 x 0.1 s = 120 s at most
  q=$(queued)
  m=$(landed "$@")
  if [ "$m" -eq "$last" ]; then stable=$((stable + 1)); else stable=0; fi
  last=$m
  [ "$q" -eq 0 ] && [ "$stable" -ge 10 ] && break
  sleep 0.1
done
if [ "$q" -ne 0 ]; then
  echo "wait_idle.sh: queue not empty after 120 s ($q files in ${queues[*]})" >&2
  exit 1
fi
for md in "$@"; do
  for sub in new cur tmp; do
    [ -d "$md/$sub" ] && find "$md/$sub" -type f -delete
  done
done
sync
sleep 1
