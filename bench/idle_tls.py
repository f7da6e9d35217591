#!/usr/bin/python3
"""bench/idle_tls.py - memory of a server holding N idle TLS sessions, and whether
its event loop stays responsive meanwhile (issue #3: "TLS must not block the
event loop (10,000 idle TLS sessions held)").

--procs worker processes (fork) open --n connections to HOST:PORT between
them, spread over --ramp seconds, at most --inflight per worker still in their
opening dialogue at any time, and take each one to the idle state:

  --mode starttls   banner, EHLO, STARTTLS, 220, TLS handshake, EHLO again
                    (the 250 proves the server speaks SMTP inside TLS), idle
  --mode smtps      TLS handshake, banner inside TLS, EHLO, idle
  --mode plain      banner, EHLO, idle

Idle sessions send nothing more; a worker only notices when the server closes
one.  Each worker is one selectors loop of non-blocking sockets (ssl.SSLSocket
for the TLS part), no threads.  Certificates are not verified (loopback only).

Meanwhile the parent samples the server's process tree (root from --pid /
--pidfile, plus descendants: nproc, summed RSS and PSS) once a second, and a
probe thread opens a fresh connection every --probe-interval seconds and times
  banner_ms  connect -> 220 banner,
  ehlo_ms    EHLO sent -> last line of its 250 reply,
  tls_ms     (starttls/smtps modes) STARTTLS sent -> handshake done -> EHLO 250,
with a --probe-timeout (5 s) per step.  Probes are reported separately for the
ramp (while the N handshakes are under way) and the hold (all N idle).  A
server whose loop blocks on TLS work shows it as probe latency.

Phases: ramp (opens), settle (until every connection is idle, failed or closed,
at most --settle seconds after the ramp), hold (--hold seconds, memory peak
taken here: the maximum of each figure over the once-a-second samples; the
baseline is taken after the client processes have forked), then every socket is closed (no QUIT), and 1 s later the result
records whether the server process is still alive (server_alive_after_close).
Bounded: at most --n
sockets and ramp + settle + hold + a few seconds.  Workers raise their
RLIMIT_NOFILE soft limit to what they need (up to the hard limit).

Prints one RESULT line; --json-append FILE appends the result as one JSON line
(report.py reads it).

  idle_tls.py --port 3587 --n 10000 --procs 4 --ramp 20 --hold 10 --pid $TEGAMID_PID
"""
import argparse
import errno
import json
import multiprocessing as mp
import os
import resource
import selectors
import socket
import ssl
import statistics
import sys
import threading
import time

from procinfo import mem_of as pids_mem, tree_pids  # noqa: E402 (bench/ is the script's dir)


# connection states
CONNECTING, BANNER, EHLO1, STARTTLS, HANDSHAKE, BANNER_TLS, EHLO2, IDLE, DONE = range(9)


def tls_ctx():
    ctx = ssl._create_unverified_context()  # noqa: S323 - loopback, self-signed
    return ctx


def final_reply(buf):
    """(code, rest) when buf holds a complete SMTP reply (last line 'NNN '), else None"""
    while True:
        i = buf.find(b"\n")
        if i < 0:
            return None
        line, buf = buf[:i + 1], buf[i + 1:]
        if len(line) >= 4 and line[3:4] != b"-":
            return line[:3], buf


class Conn:
    __slots__ = ("sock", "state", "buf", "t0", "fd")

    def __init__(self, sock):
        self.sock, self.state, self.buf, self.t0 = sock, CONNECTING, b"", time.monotonic()
        self.fd = sock.fileno()


def worker(wid, a, n, start_at, conn_pipe):
    """hold n sessions; report counts through conn_pipe every 0.5 s; stop on 'stop'"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 64)), hard))
    ctx = tls_ctx()
    sel = selectors.DefaultSelector()
    cnt = dict(opened=0, idle=0, failed=0, closed=0, timeout=0, inflight=0)
    errs = {}
    conns = {}
    opened = 0
    t_ramp_end = start_at + a.ramp
    last_report = 0.0
    ehlo = b"EHLO idle-%d.bench.client\r\n" % wid
    handshake_times = []

    def fail(c, why, key="failed"):
        cnt[key] += 1
        cnt["idle" if c.state == IDLE else "inflight"] -= 1
        errs[why] = errs.get(why, 0) + 1
        try:
            sel.unregister(c.fd)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass
        c.state = DONE
        conns.pop(c.fd, None)

    def send(c, data):
        try:
            c.sock.send(data)  # a few bytes: never partial on a fresh socket
            return True
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            fail(c, "send would block")
        except OSError as e:
            fail(c, "send: %s" % (e.strerror or type(e).__name__))
        return False

    def start_tls(c):
        sel.unregister(c.fd)
        try:
            c.sock = ctx.wrap_socket(c.sock, do_handshake_on_connect=False)
        except OSError as e:
            c.state = CONNECTING  # not registered any more; fail() only counts and closes
            fail(c, "wrap: %s" % e)
            return
        c.state = HANDSHAKE
        c.t0 = time.monotonic()
        sel.register(c.fd, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        step_handshake(c)

    def step_handshake(c):
        try:
            c.sock.do_handshake()
        except ssl.SSLWantReadError:
            sel.modify(c.fd, selectors.EVENT_READ, c)
            return
        except ssl.SSLWantWriteError:
            sel.modify(c.fd, selectors.EVENT_WRITE, c)
            return
        except (ssl.SSLError, OSError) as e:
            fail(c, "handshake: %s" % (getattr(e, "reason", None) or e.__class__.__name__))
            return
        handshake_times.append(time.monotonic() - c.t0)
        sel.modify(c.fd, selectors.EVENT_READ, c)
        if a.mode == "smtps":
            c.state = BANNER_TLS
        else:
            c.state = EHLO2
            send(c, ehlo)

    def on_reply(c, code):
        if c.state in (BANNER, BANNER_TLS):
            if code != b"220":
                return fail(c, "banner %s" % code.decode(errors="replace"))
            c.state = EHLO1 if c.state == BANNER else EHLO2
            send(c, ehlo)
        elif c.state == EHLO1:
            if code != b"250":
                return fail(c, "ehlo %s" % code.decode(errors="replace"))
            if a.mode == "plain":
                become_idle(c)
            else:
                c.state = STARTTLS
                send(c, b"STARTTLS\r\n")
        elif c.state == STARTTLS:
            if code != b"220":
                return fail(c, "starttls %s" % code.decode(errors="replace"))
            if c.buf:
                return fail(c, "data after 220 to STARTTLS")
            start_tls(c)
        elif c.state == EHLO2:
            if code != b"250":
                return fail(c, "ehlo in tls %s" % code.decode(errors="replace"))
            become_idle(c)
        elif c.state == IDLE:
            # the server spoke (e.g. 421 timeout) - it closes next
            pass

    def become_idle(c):
        c.state = IDLE
        cnt["idle"] += 1
        cnt["inflight"] -= 1

    def on_readable(c):
        while True:
            try:
                d = c.sock.recv(4096)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            except ssl.SSLWantWriteError:
                return
            except (ssl.SSLError, OSError) as e:
                d = None
                why = "recv: %s" % (getattr(e, "reason", None) or getattr(e, "strerror", None) or type(e).__name__)
            if not d:
                if c.state == IDLE:
                    fail(c, "closed by server while idle" if d is not None else why, key="closed")
                else:
                    fail(c, why if d is None else "closed by server in state %d" % c.state)
                return
            c.buf += d
            while c.state not in (DONE, HANDSHAKE):
                r = final_reply(c.buf)
                if r is None:
                    break
                code, c.buf = r
                on_reply(c, code)
            if c.state in (DONE, HANDSHAKE):
                return
            if not isinstance(c.sock, ssl.SSLSocket) or not c.sock.pending():
                return

    stop = False
    while not stop:
        now = time.monotonic()
        # open on schedule, within the in-flight cap
        if now >= start_at:
            target = n if a.ramp <= 0 else min(n, int(n * (now - start_at) / a.ramp) + 1)
            while opened < target and cnt["inflight"] < a.inflight:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex((a.host, a.port))
                opened += 1
                cnt["opened"] = opened
                if rc not in (0, errno.EINPROGRESS):
                    cnt["failed"] += 1
                    errs["connect: %s" % os.strerror(rc)] = errs.get("connect: %s" % os.strerror(rc), 0) + 1
                    s.close()
                    continue
                c = Conn(s)
                conns[c.fd] = c
                cnt["inflight"] += 1
                sel.register(c.fd, selectors.EVENT_WRITE, c)
        for key, ev in sel.select(timeout=0.05):
            c = key.data
            if c.state == DONE:
                continue
            if c.state == CONNECTING:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, "connect: %s" % os.strerror(err))
                    continue
                if a.mode == "smtps":
                    start_tls(c)
                else:
                    c.state = BANNER
                    sel.modify(c.fd, selectors.EVENT_READ, c)
            elif c.state == HANDSHAKE:
                step_handshake(c)
                if c.state != HANDSHAKE and c.state != DONE and c.sock.pending():
                    on_readable(c)
            else:
                on_readable(c)
        now = time.monotonic()
        # opening dialogue must finish within --conn-timeout
        if now - last_report >= 0.5:
            for c in [c for c in conns.values() if c.state not in (IDLE, DONE)]:
                if now - c.t0 > a.conn_timeout:
                    fail(c, "no reply within %.0f s (state %d)" % (a.conn_timeout, c.state), key="timeout")
            last_report = now
            hs = sorted(handshake_times)
            conn_pipe.send(dict(cnt, pending=len([1 for c in conns.values() if c.state not in (IDLE, DONE)]),
                                errs=errs, hs_n=len(hs),
                                hs_p50=hs[len(hs) // 2] if hs else None, hs_max=hs[-1] if hs else None,
                                ramp_done=opened >= n))
        while conn_pipe.poll():
            if conn_pipe.recv() == "stop":
                stop = True
        if now > t_ramp_end + a.settle + a.hold + 60:  # parent gone: do not linger
            stop = True
    for c in list(conns.values()):
        try:
            c.sock.close()
        except OSError:
            pass
    conn_pipe.send("bye")


# ---- parent: memory sampling and the probe --------------------------------------

def mem_of(root):
    if not root:
        return (0, 0, 0)
    return pids_mem(tree_pids(root))


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def read_reply(sock, buf, deadline):
    while True:
        r = final_reply(buf)
        if r:
            return r
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        d = sock.recv(4096)
        if not d:
            raise ConnectionError("closed")
        buf += d


def probe_once(a, ctx):
    """(banner_ms, ehlo_ms, tls_ms, error)"""
    t0 = time.monotonic()
    res = [None, None, None, None]
    s = None
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.probe_timeout)
        if a.mode == "smtps":
            s = ctx.wrap_socket(s)
        code, buf = read_reply(s, b"", t0 + a.probe_timeout)
        t1 = time.monotonic()
        res[0] = 1000 * (t1 - t0)
        if code != b"220":
            raise ConnectionError("banner %s" % code)
        s.sendall(b"EHLO probe.bench.client\r\n")
        code, buf = read_reply(s, buf, t1 + a.probe_timeout)
        t2 = time.monotonic()
        res[1] = 1000 * (t2 - t1)
        if a.mode == "starttls":
            s.sendall(b"STARTTLS\r\n")
            code, buf = read_reply(s, buf, t2 + a.probe_timeout)
            if code != b"220":
                raise ConnectionError("starttls %s" % code)
            s.settimeout(a.probe_timeout)
            s = ctx.wrap_socket(s)
            s.sendall(b"EHLO probe.bench.client\r\n")
            code, buf = read_reply(s, b"", t2 + a.probe_timeout)
            res[2] = 1000 * (time.monotonic() - t2)
        try:
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass
    except (OSError, ConnectionError, ssl.SSLError) as e:
        res[3] = "%s" % (type(e).__name__ if isinstance(e, socket.timeout) else e)
    finally:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
    return res


def probe_loop(a, phase_ref, out, stop):
    ctx = tls_ctx()
    while not stop.is_set():
        t = time.monotonic()
        r = probe_once(a, ctx)
        out.append(dict(phase=phase_ref[0], banner_ms=r[0], ehlo_ms=r[1], tls_ms=r[2], error=r[3]))
        stop.wait(max(0.0, a.probe_interval - (time.monotonic() - t)))


def probe_stats(rows):
    if not rows:
        return None

    def st(k):
        v = sorted(r[k] for r in rows if r[k] is not None and r["error"] is None)
        if not v:
            return None
        return dict(p50=statistics.median(v), p90=v[min(len(v) - 1, int(0.9 * len(v)))], max=v[-1])
    ok = [r for r in rows if r["error"] is None]
    total = [r["banner_ms"] + r["ehlo_ms"] for r in ok]
    errs = {}
    for r in rows:
        if r["error"]:
            errs[r["error"]] = errs.get(r["error"], 0) + 1
    return dict(n=len(rows), ok=len(ok), errors=errs, banner_ms=st("banner_ms"), ehlo_ms=st("ehlo_ms"),
                tls_ms=st("tls_ms"),
                banner_ehlo_ms=dict(p50=statistics.median(total), max=max(total)) if total else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["starttls", "smtps", "plain"], default="starttls")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=0, help="worker processes (0: one per 2,500 sessions, at least 2)")
    ap.add_argument("--inflight", type=int, default=100, help="max connections per worker still in their opening dialogue")
    ap.add_argument("--ramp", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=20.0, help="max seconds after the ramp until all are idle")
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--conn-timeout", type=float, default=30.0, help="max seconds for one connection's opening dialogue")
    ap.add_argument("--probe-interval", type=float, default=0.5)
    ap.add_argument("--probe-timeout", type=float, default=5.0)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--pidfile")
    ap.add_argument("--label", default="")
    ap.add_argument("--json-append")
    ap.add_argument("--quiet", action="store_true", help="print only the RESULT line")
    a = ap.parse_args()
    if not (a.host.startswith("127.") or a.host in ("localhost", "::1")):
        sys.exit("refusing non-loopback host")
    root = a.pid or (int(open(a.pidfile).read().split()[0]) if a.pidfile else None)
    nprocs = a.procs or max(2, (a.n + 2499) // 2500)
    nprocs = max(1, min(nprocs, a.n))
    share = [a.n // nprocs + (1 if i < a.n % nprocs else 0) for i in range(nprocs)]

    start_at = time.monotonic() + 1.0
    ctxm = mp.get_context("fork")
    pipes, procs = [], []
    for i, n in enumerate(share):
        pa, pb = ctxm.Pipe()
        p = ctxm.Process(target=worker, args=(i, a, n, start_at, pb), daemon=True)
        p.start()
        pipes.append(pa)
        procs.append(p)
    last = [dict(opened=0, idle=0, failed=0, closed=0, timeout=0, pending=0, errs={}, ramp_done=False,
                 hs_n=0, hs_p50=None, hs_max=None) for _ in procs]
    phase = ["ramp"]
    probes, stop_probe = [], threading.Event()
    pt = threading.Thread(target=probe_loop, args=(a, phase, probes, stop_probe), daemon=True)
    # baseline after the fork: the workers share libc/libssl pages with the
    # server, which lowers the server's PSS a little from then on
    time.sleep(0.3)
    base = mem_of(root)
    time.sleep(max(0.0, start_at - time.monotonic()))
    pt.start()
    t0 = time.monotonic()
    peak, timeline = list(base), []
    t_idle_all = None
    hold_start = None
    next_sample = t0
    while True:
        for i, pp in enumerate(pipes):
            while pp.poll():
                m = pp.recv()
                if isinstance(m, dict):
                    last[i] = m
        now = time.monotonic()
        tot = {k: sum(x[k] for x in last) for k in ("opened", "idle", "failed", "closed", "timeout", "pending")}
        ramp_done = all(x["ramp_done"] for x in last)
        if hold_start is None:
            settled = ramp_done and tot["pending"] == 0
            if settled and t_idle_all is None and tot["idle"] >= a.n:
                t_idle_all = now - t0
            if settled or now - t0 > a.ramp + a.settle:
                hold_start = now
                phase[0] = "hold"
        if now >= next_sample:
            m = mem_of(root)
            if hold_start is not None:
                peak = [max(x, y) for x, y in zip(peak, m)]  # each figure's own maximum
            timeline.append(dict(t=round(now - t0, 1), **tot, nproc=m[0], rss_mb=round(m[1] / 2**20, 1),
                                 pss_mb=round(m[2] / 2**20, 1)))
            if not a.quiet:
                print("t=%5.1f %s opened=%d idle=%d pending=%d failed=%d closed=%d timeout=%d | nproc=%d rss=%.1fMB pss=%.1fMB" % (
                    now - t0, phase[0], tot["opened"], tot["idle"], tot["pending"], tot["failed"], tot["closed"],
                    tot["timeout"], m[0], m[1] / 2**20, m[2] / 2**20), flush=True)
            next_sample = now + 1.0
        if hold_start is not None and now - hold_start >= a.hold:
            break
        time.sleep(0.1)
    # final figures at the end of the hold, before anything is closed
    end_mem = mem_of(root)
    peak = [max(x, y) for x, y in zip(peak, end_mem)]
    for pp in pipes:
        while pp.poll():
            m = pp.recv()
            if isinstance(m, dict):
                last[pipes.index(pp)] = m
    final = {k: sum(x[k] for x in last) for k in ("opened", "idle", "failed", "closed", "timeout", "pending")}
    errs = {}
    for x in last:
        for k, v in x["errs"].items():
            errs[k] = errs.get(k, 0) + v
    hs_p50 = [x["hs_p50"] for x in last if x["hs_p50"] is not None]
    hs_max = [x["hs_max"] for x in last if x["hs_max"] is not None]
    stop_probe.set()
    for pp in pipes:
        try:
            pp.send("stop")
        except OSError:
            pass
    for p in procs:
        p.join(timeout=20)
        if p.is_alive():
            p.kill()
    pt.join(timeout=a.probe_timeout * 3 + 1)
    alive = None
    if root:
        time.sleep(1.0)  # the server sees every session close; does it survive that?
        alive = proc_alive(root)
    pr = {ph: probe_stats([r for r in probes if r["phase"] == ph]) for ph in ("ramp", "hold")}
    res = dict(label=a.label, mode=a.mode, host=a.host, port=a.port, n=a.n, procs=nprocs,
               ramp_s=a.ramp, hold_s=a.hold, final=final, errors=errs,
               all_idle_after_s=t_idle_all, hold_started_s=round(hold_start - t0, 2),
               handshake_s=dict(p50=statistics.median(hs_p50) if hs_p50 else None,
                                max=max(hs_max) if hs_max else None),
               baseline=dict(nproc=base[0], rss_mb=base[1] / 2**20, pss_mb=base[2] / 2**20),
               peak=dict(nproc=peak[0], rss_mb=peak[1] / 2**20, pss_mb=peak[2] / 2**20),
               end=dict(nproc=end_mem[0], rss_mb=end_mem[1] / 2**20, pss_mb=end_mem[2] / 2**20),
               probe=pr, server_alive_after_close=alive)
    if final["idle"]:
        res["pss_kb_per_conn"] = (peak[2] - base[2]) / 1024 / final["idle"]
        res["rss_kb_per_conn"] = (peak[1] - base[1]) / 1024 / final["idle"]

    def pf(ph):
        p = pr[ph]
        if not p:
            return "%s: no probe" % ph
        be = p["banner_ehlo_ms"]
        return "%s: %d/%d ok, banner+EHLO p50 %s max %s ms, +TLS p50 %s ms%s" % (
            ph, p["ok"], p["n"], "%.1f" % be["p50"] if be else "-", "%.1f" % be["max"] if be else "-",
            "%.1f" % p["tls_ms"]["p50"] if p["tls_ms"] else "-",
            (" errors %s" % p["errors"]) if p["errors"] else "")
    print("RESULT %s %s n=%d: idle=%d failed=%d closed=%d timeout=%d pending=%d (all idle after %s s); "
          "baseline rss=%.1fMB pss=%.1fMB; peak nproc=%d rss=%.1fMB pss=%.1fMB; per session pss=%.1fKB rss=%.1fKB; "
          "probe %s; %s%s" % (
              a.label, a.mode, a.n, final["idle"], final["failed"], final["closed"], final["timeout"], final["pending"],
              "%.1f" % t_idle_all if t_idle_all is not None else "-", base[1] / 2**20, base[2] / 2**20, peak[0],
              peak[1] / 2**20, peak[2] / 2**20, res.get("pss_kb_per_conn", 0), res.get("rss_kb_per_conn", 0),
              pf("ramp"), pf("hold"), ("; errors %s" % errs) if errs else ""), flush=True)
    if alive is False:
        print("WARNING: server pid %d died when the sessions were closed" % root, flush=True)
    if a.json_append:
        with open(a.json_append, "a") as f:
            f.write(json.dumps(dict(res, timeline=timeline)) + "\n")


if __name__ == "__main__":
    main()
