#!/usr/bin/python3
"""bench/idle_conns.py - memory of a server holding N idle SMTP sessions.

Opens --n TCP connections to HOST:PORT (loopback only), spread over --ramp
seconds, waits for each server greeting line (e.g. "220 ..." for SMTP,
"+OK" for POP3), then keeps every connection idle (sends nothing) for --hold
seconds, sampling once a second:

  est      connections whose TCP handshake completed (client side)
  banner   connections that received a greeting line
  closed   connections the server closed/reset
  pending  connect() still in progress (SYN not answered: listen queue full)
  nproc / rss_mb / pss_mb   process count and summed RSS / PSS of the server's
           process tree (root pid from --pidfile or --pid, plus all descendants).
           RSS double-counts shared pages (libc, shared text); PSS splits them
           fairly, so PSS is the better "memory the server costs" figure.

Caveat on `est`: when the server's accept queue is full, Linux drops the client's
final ACK (tcp_abort_on_overflow=0) or answers with a SYN cookie, so the client can
believe it is connected while the server never accepts the connection (half-open);
`banner` is the reliable count of sessions the server actually serves.  The
baseline is sampled at start: idle server processes left over from a previous run
(Postfix keeps idle smtpd for max_idle=100 s) inflate it, so reload/restart between
runs.

At the end it closes every socket (no QUIT) and prints baseline / peak figures
and per-connection cost ((pss_peak - pss_baseline) / banners); with
--json-append FILE it appends the result as one JSON line (report.py reads it).
Bounded: at most --n sockets, at most ramp + --banner-wait + --hold seconds.
Raises its own RLIMIT_NOFILE soft limit to n + 100 (up to the hard limit).

  idle_conns.py --port 3525 --n 1000 --hold 30 --pidfile DIR/spool/pid/master.pid
  idle_conns.py --port 3526 --n 10000 --hold 30 --pid $(cat DATA/tegamid.pid)
Copied from shared/bench/idle_conns.py; adds --json-append and --quiet.
"""
import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time

from procinfo import tree_pids, mem_of, comm_counts  # noqa: E402 (bench/ is the script's dir)



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3525)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--ramp", type=float, default=5.0, help="seconds over which to open the connections")
    ap.add_argument("--banner-wait", type=float, default=10.0, help="extra seconds after ramp before hold starts")
    ap.add_argument("--hold", type=float, default=30.0)
    ap.add_argument("--pidfile")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--label", default="")
    ap.add_argument("--json")
    ap.add_argument("--json-append", help="append the result as one JSON line to this file")
    ap.add_argument("--quiet", action="store_true", help="print only the RESULT line")
    a = ap.parse_args()
    if not (a.host.startswith("127.") or a.host in ("localhost", "::1")):
        sys.exit("refusing non-loopback host")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, a.n + 100))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    root = a.pid or (int(open(a.pidfile).read().split()[0]) if a.pidfile else None)

    def sample():
        if not root:
            return (0, 0, 0)
        return mem_of(tree_pids(root))

    base = sample()
    base_comm = comm_counts(tree_pids(root)) if root else {}
    sel = selectors.DefaultSelector()
    st = {}  # fd -> dict(sock, state)
    counts = dict(est=0, banner=0, closed=0, pending=0, failed=0)
    t0 = time.perf_counter()
    timeline = []
    opened = 0
    next_sample = t0
    end_ramp = t0 + a.ramp
    hold_start = end_ramp + a.banner_wait
    end = hold_start + a.hold
    peak = base
    first_banner_lat = []

    while True:
        now = time.perf_counter()
        if now >= end:
            break
        # open connections on schedule
        target = a.n if a.ramp <= 0 else min(a.n, int(a.n * (now - t0) / a.ramp) + 1)
        while opened < target:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((a.host, a.port))
            opened += 1
            if rc not in (0, errno.EINPROGRESS):
                counts["failed"] += 1
                s.close()
                continue
            st[s.fileno()] = dict(sock=s, state="connecting", t=time.perf_counter(), buf=b"")
            counts["pending"] += 1
            sel.register(s, selectors.EVENT_WRITE)
        for key, ev in sel.select(timeout=0.05):
            s = key.fileobj
            c = st[s.fileno()]
            if c["state"] == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                counts["pending"] -= 1
                if err:
                    counts["failed"] += 1
                    c["state"] = "failed"
                    sel.unregister(s)
                    continue
                counts["est"] += 1
                c["state"] = "est"
                sel.modify(s, selectors.EVENT_READ)
            else:
                try:
                    d = s.recv(4096)
                except OSError:
                    d = b""
                if not d:
                    counts["closed"] += 1
                    if c["state"] == "banner":
                        counts["banner"] -= 1
                    counts["est"] -= 1
                    c["state"] = "closed"
                    sel.unregister(s)
                    continue
                if c["state"] == "est":
                    c["buf"] += d
                    if b"\n" in c["buf"]:
                        c["state"] = "banner"
                        counts["banner"] += 1
                        first_banner_lat.append(time.perf_counter() - c["t"])
        if now >= next_sample:
            m = sample()
            if m[2] > peak[2]:
                peak = m
            timeline.append(dict(t=round(now - t0, 1), opened=opened, **counts,
                                 nproc=m[0], rss_mb=round(m[1] / 2**20, 1), pss_mb=round(m[2] / 2**20, 1)))
            if not a.quiet:
                print("t=%5.1f opened=%d est=%d banner=%d closed=%d pending=%d failed=%d | nproc=%d rss=%.1fMB pss=%.1fMB" % (
                    now - t0, opened, counts["est"], counts["banner"], counts["closed"], counts["pending"],
                    counts["failed"], m[0], m[1] / 2**20, m[2] / 2**20), flush=True)
            next_sample = now + 1.0
    peak_comm = comm_counts(tree_pids(root)) if root else {}
    final = dict(counts)
    for c in st.values():
        try:
            c["sock"].close()
        except OSError:
            pass
    lat = sorted(first_banner_lat)
    res = dict(label=a.label, host=a.host, port=a.port, n=a.n, hold_s=a.hold, final=final,
               baseline=dict(nproc=base[0], rss_mb=base[1] / 2**20, pss_mb=base[2] / 2**20, procs=base_comm),
               peak=dict(nproc=peak[0], rss_mb=peak[1] / 2**20, pss_mb=peak[2] / 2**20, procs=peak_comm),
               banner_latency_s=dict(p50=lat[len(lat) // 2] if lat else None, max=lat[-1] if lat else None),
               timeline=timeline)
    if final["banner"]:
        res["pss_kb_per_conn"] = (peak[2] - base[2]) / 1024 / max(1, final["banner"])
        res["rss_kb_per_conn"] = (peak[1] - base[1]) / 1024 / max(1, final["banner"])
    print("RESULT %s: at end est=%d banner=%d closed=%d pending=%d failed=%d; baseline nproc=%d rss=%.1fMB pss=%.1fMB;"
          " peak nproc=%d rss=%.1fMB pss=%.1fMB; per banner-conn pss=%.0fKB rss=%.0fKB; banner latency p50=%s max=%s"
          % (a.label, final["est"], final["banner"], final["closed"], final["pending"], final["failed"],
             base[0], base[1] / 2**20, base[2] / 2**20, peak[0], peak[1] / 2**20, peak[2] / 2**20,
             res.get("pss_kb_per_conn", 0), res.get("rss_kb_per_conn", 0),
             res["banner_latency_s"]["p50"], res["banner_latency_s"]["max"]))
    print("peak process mix:", peak_comm)
    if a.json_append:
        with open(a.json_append, "a") as f:
            f.write(json.dumps(dict(res, timeline=None, fd_limit=want)) + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
