#!/usr/bin/python3
"""bench/smtp_loadgen.py - fallback load generator (Python stdlib smtplib only).

Sends --count messages of --size payload bytes to HOST:PORT with --sessions
parallel SMTP sessions (threads spread over --procs processes), one message
per connection (EHLO, MAIL, RCPT, DATA, QUIT), like smtp-source's default.
smtp_bench.py uses it with --loadgen python; the default generator is
Postfix's smtp-source, which costs far less CPU per message.

Prints "sent N failed M in S s = R msgs/s"; exit status 1 if any message
failed.  Only loopback hosts are accepted.  Derived from
shared/bench/smtp_loadgen.py (TLS and AUTH options dropped).
"""
import argparse
import multiprocessing as mp
import smtplib
import sys
import threading
import time


def make_msg(size, sender, to, seq):
    hdr = ("From: <%s>\r\nTo: <%s>\r\nSubject: bench %d\r\nMessage-Id: <%d.%f@bench.client>\r\n\r\n"
           % (sender, to, seq, seq, time.time()))
    line = "X" * 76 + "\r\n"
    body = (line * (size // len(line) + 1))[:size]
    if not body.endswith("\r\n"):
        body += "\r\n"
    return hdr + body


def session(a, my_count, stats, lock, seq0):
    ok = bad = 0
    for i in range(my_count):
        try:
            with smtplib.SMTP(a.host, a.port, local_hostname="bench.client", timeout=a.io_timeout) as s:
                s.sendmail(a.sender, [a.to], make_msg(a.size, a.sender, a.to, seq0 + i))
            ok += 1
        except Exception as e:  # noqa: BLE001 - count every failure
            bad += 1
            if a.verbose:
                print("error:", repr(e), file=sys.stderr)
    with lock:
        stats[0] += ok
        stats[1] += bad


def proc_main(a, sessions, count, seq0, q):
    stats, lock = [0, 0], threading.Lock()
    per = [count // sessions + (1 if i < count % sessions else 0) for i in range(sessions)]
    ths, seq = [], seq0
    for n in per:
        ths.append(threading.Thread(target=session, args=(a, n, stats, lock, seq)))
        seq += n
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    q.put(tuple(stats))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=1)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--from", dest="sender", default="bench@example.net")
    ap.add_argument("--to", default="user1@example.test")
    ap.add_argument("--io-timeout", type=float, default=60)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if not (a.host.startswith("127.") or a.host in ("localhost", "::1")):
        sys.exit("refusing non-loopback host")
    procs = max(1, min(a.procs, a.sessions))
    q, ps, seq = mp.Queue(), [], 0
    for i in range(procs):
        sess = a.sessions // procs + (1 if i < a.sessions % procs else 0)
        cnt = a.count // procs + (1 if i < a.count % procs else 0)
        ps.append(mp.Process(target=proc_main, args=(a, sess, cnt, seq, q)))
        seq += cnt
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    dt = time.perf_counter() - t0
    ok, bad = sum(r[0] for r in res), sum(r[1] for r in res)
    print("sent %d failed %d in %.3f s = %.1f msgs/s" % (ok, bad, dt, ok / dt))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
