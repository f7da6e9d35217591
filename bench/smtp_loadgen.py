#!/usr/bin/python3
"""bench/smtp_loadgen.py - Python load generator (standard library smtplib only).

Sends --count messages of --size payload bytes to HOST:PORT with --sessions
parallel SMTP sessions (threads spread over --procs processes).  By default
one message per connection (EHLO, MAIL, RCPT, DATA, QUIT), like smtp-source's
default; --per-conn K sends K messages per connection (RSET between them).

Submission (issue #3): --starttls (EHLO, STARTTLS, EHLO again) or --smtps
(implicit TLS), then --auth USER:PASS.  --auth-mech PLAIN forces one SASL
mechanism: smtplib's login() would pick CRAM-MD5 whenever the server offers it.
Certificates are not verified (loopback only) and TLS sessions are never
resumed: every connection does a full handshake.

smtp_bench.py uses it with --loadgen python (and always for submission); the
default generator for plain SMTP is Postfix's smtp-source, which costs far less
CPU per message but has no TLS.

The message: From: and To: header fields carry the bare envelope addresses
(tegamid's default auth.match_from_header compares From: with the login),
then Subject, Message-Id, a blank line and --size bytes of 78-octet lines.

--warmup: every session only logs in (EHLO, STARTTLS, EHLO, AUTH) and quits,
once, sending no mail; smtp_bench.py --warmup runs it, untimed, before each run.

Prints "sent N failed M in S s = R msgs/s" (and the first errors on stderr);
exit status 1 if any message failed.  Only loopback hosts are accepted.
Derived from shared/bench/smtp_loadgen.py.
"""
import argparse
import multiprocessing as mp
import smtplib
import ssl
import sys
import threading
import time


def make_msg(size, sender, to, seq):
    hdr = ("From: %s\r\nTo: %s\r\nSubject: bench %d\r\nMessage-Id: <%d.%f@bench.client>\r\n\r\n"
           % (sender, to, seq, seq, time.time()))
    line = "X" * 76 + "\r\n"
    body = (line * (size // len(line) + 1))[:size]
    if not body.endswith("\r\n"):
        body += "\r\n"
    return hdr + body


def tls_context():
    # unverified: loopback test against self-signed certificates.  No session
    # resumption: Python's client contexts cache no sessions and smtplib never
    # passes session=, so every connection does a full handshake.
    return ssl._create_unverified_context()  # noqa: S323


def connect(a, ctx):
    if a.smtps:
        s = smtplib.SMTP_SSL(a.host, a.port, local_hostname="bench.client", timeout=a.io_timeout, context=ctx)
    else:
        s = smtplib.SMTP(a.host, a.port, local_hostname="bench.client", timeout=a.io_timeout)
    s.ehlo()
    if a.starttls:
        s.starttls(context=ctx)
        s.ehlo()
    if a.auth:
        u, p = a.auth.split(":", 1)
        if a.auth_mech:
            # force one mechanism (smtplib.login would pick CRAM-MD5 first if offered)
            s.user, s.password = u, p
            code, resp = s.auth(a.auth_mech, getattr(s, "auth_" + a.auth_mech.lower().replace("-", "_")))
        else:
            code, resp = s.login(u, p)
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, resp)
    return s


def session(a, my_count, stats, lock, seq0, errors):
    ok = bad = 0
    s = None
    used = 0
    ctx = tls_context() if (a.starttls or a.smtps) else None
    if a.warmup:
        try:
            connect(a, ctx).quit()
            ok = 1
        except Exception as e:  # noqa: BLE001
            bad = 1
            with lock:
                if len(errors) < 3:
                    errors.append(repr(e)[:200])
        with lock:
            stats[0] += ok
            stats[1] += bad
        return
    for i in range(my_count):
        msg = make_msg(a.size, a.sender, a.to, seq0 + i)
        try:
            if s is None:
                s = connect(a, ctx)
                used = 0
            s.sendmail(a.sender, [a.to], msg)
            ok += 1
            used += 1
            if used >= a.per_conn or i == my_count - 1:
                s.quit()
                s = None
            else:
                s.rset()
        except Exception as e:  # noqa: BLE001 - count every failure
            bad += 1
            with lock:
                if len(errors) < 3:
                    errors.append(repr(e)[:200])
            try:
                if s is not None:
                    s.close()
            except Exception:  # noqa: BLE001
                pass
            s = None
    if s is not None:
        try:
            s.quit()
        except Exception:  # noqa: BLE001
            pass
    with lock:
        stats[0] += ok
        stats[1] += bad


def proc_main(a, sessions, count, seq0, q):
    stats, lock, errors = [0, 0], threading.Lock(), []
    per = [count // sessions + (1 if i < count % sessions else 0) for i in range(sessions)]
    ths, seq = [], seq0
    for n in per:
        ths.append(threading.Thread(target=session, args=(a, n, stats, lock, seq, errors)))
        seq += n
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    q.put((stats[0], stats[1], errors))


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
    ap.add_argument("--per-conn", type=int, default=1, help="messages per connection (RSET between them)")
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--smtps", action="store_true", help="implicit TLS")
    ap.add_argument("--auth", help="USER:PASS for AUTH")
    ap.add_argument("--auth-mech", choices=["PLAIN", "LOGIN", "CRAM-MD5"],
                    help="use this SASL mechanism (default: smtplib's choice, CRAM-MD5 > PLAIN > LOGIN)")
    ap.add_argument("--warmup", action="store_true", help="one login (no mail) per session, then exit")
    ap.add_argument("--io-timeout", type=float, default=60)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if not (a.host.startswith("127.") or a.host in ("localhost", "::1")):
        sys.exit("refusing non-loopback host")
    a.per_conn = max(1, a.per_conn)
    if a.warmup:
        a.count = a.sessions
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
    errs = [e for r in res for e in r[2]]
    if errs:
        print("errors (first %d): %s" % (len(errs), " | ".join(errs)), file=sys.stderr)
    print("sent %d failed %d in %.3f s = %.1f msgs/s" % (ok, bad, dt, ok / dt))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
