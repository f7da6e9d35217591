#!/usr/bin/python3
"""bench/relay_bench.py - relay throughput of one server: messages/second from
submission to a sink (issue #8 "Performance").  relay_bench.sh runs it.

  relay_bench.py run --label tegami|postfix --port PORT --dests 1|100 ...
  relay_bench.py report RESULTS_DIR [--out FILE]

run: waits until the server is idle (its queue directories hold no file and
the sinks' counters stand still), then SESSIONS injecting clients send COUNT
messages of SIZE payload bytes to the server's PORT, one message per
connection (HELO, MAIL, RCPT, DATA, QUIT), and the sinks (Postfix's smtp-sink,
one per destination address, started by relay_bench.sh with -c, their running
counters in --sink-out files) count what the server relays to them.  The
injecting clients: for one destination Postfix's smtp-source, one process per
session (as bench/run.sh); for 100 destinations `relay_bench.py inject`,
threads with blocking sockets in --procs processes, because each message goes
to another domain and smtp-source has one recipient per process.  Measured:

  relay/s    COUNT / time from the first injection until the sinks have
             received COUNT more messages (polled every 20 ms);
  accept/s   COUNT / time until every injecting client got every 250 after
             DATA (the server has the message on disk);
  t50/t90    seconds until 50 % / 90 % of the messages had reached the sinks;
  srv_ms     CPU (user+sys) of the server's process tree per message, from the
             start until the last message reached a sink (live processes and
             what the root reaped: Postfix's short-lived daemons count);
  peak RSS   of the server's process tree (tegamid: the one process; Postfix:
             summed over master and every child, and PSS, which shares the
             libraries out), sampled every 0.25 s;
  extra      messages the sinks got beyond COUNT once the server's queue was
             empty again (duplicates: must be 0);
  sink / load generator / other CPU: where the rest of the machine went.

With --dests 1 every message is to relay@remote.test; with --dests 100 session
j (0-based) sends to the domains dK.test with (K - 1) % SESSIONS == j, one
after the other (with 50 sessions: d(j+1).test, d(j+51).test, d(j+1).test, ...),
so each of the 100 domains gets COUNT/100 messages spread over the run.  The
server routes each domain to its own sink address (relay_bench.sh), so each is
a destination of its own.

Only loopback addresses are contacted; every run is bounded by --count
messages and --timeout seconds.
"""
import argparse
import glob
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import procinfo  # noqa: E402
from smtp_bench import (cpu_times, foreign_cpu_ticks, listen_overflows,  # noqa: E402
                        proc_snapshot, tree_cpu_ticks)

MESG_RE = re.compile(rb"mesg=(\d+)\r")


def sink_count(files):
    """Messages the sinks received: the last 'mesg=N' counter of each file."""
    total = 0
    for path in files:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 256))
                tail = f.read()
        except OSError:
            continue
        m = MESG_RE.findall(tail)
        if m:
            total += int(m[-1])
    return total


def queued(dirs):
    n = 0
    for d in dirs:
        for root, _, files in os.walk(d):
            n += len(files)
    return n


def wait_idle(dirs, sinks, timeout=180.0):
    """Until the queues are empty and the sink counters have not moved for
    1 s. Returns (seconds waited, files left)."""
    t0 = time.monotonic()
    last, stable, q = -1, 0, 0
    while time.monotonic() - t0 < timeout:
        q = queued(dirs)
        c = sink_count(sinks)
        stable = stable + 1 if c == last else 0
        last = c
        if q == 0 and stable >= 10:
            break
        time.sleep(0.1)
    return time.monotonic() - t0, q


def server_roots(a):
    roots = [int(p) for p in (a.server_pid or "").split(",") if p.strip()]
    for path in (a.server_pidfile or "").split(","):
        if path.strip():
            try:
                with open(path.strip()) as f:
                    roots.append(int(f.read().split()[0]))
            except (OSError, ValueError, IndexError):
                roots.append(None)
    return roots


def split(n, k):
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def payload(size):
    """SIZE octets of body in lines of at most 78 characters plus CRLF."""
    out, n, i = [], 0, 0
    while n < size:
        i += 1
        line = (b"%d" % i + b"X" * 78)[:min(78, max(1, size - n - 2))]
        out.append(line + b"\r\n")
        n += len(line) + 2
    return b"".join(out)


def reply(f, code):
    """Reads one (multi-line) reply; raises unless it starts with code."""
    while True:
        line = f.readline(1024)
        if not line:
            raise ConnectionError("connection closed by the server")
        if line[3:4] != b"-":
            break
    if not line.startswith(code):
        raise ValueError(line.decode(errors="replace").strip()[:120])


def inject_session(a, j, n, rcpts, st, lock):
    """One session: n messages, one per connection, to rcpts in turn."""
    import socket
    body = payload(a.size)
    sender = a.sender.encode()
    for i in range(n):
        rcpt = rcpts[i % len(rcpts)].encode()
        s = f = None
        try:
            s = socket.create_connection((a.host, a.port), timeout=120)
            f = s.makefile("rb")
            reply(f, b"220")
            for cmd, code in ((b"HELO bench.client", b"250"), (b"MAIL FROM:<" + sender + b">", b"250"),
                              (b"RCPT TO:<" + rcpt + b">", b"250"), (b"DATA", b"354")):
                s.sendall(cmd + b"\r\n")
                reply(f, code)
            s.sendall(b"From: <" + sender + b">\r\nTo: <" + rcpt + b">\r\nSubject: relay bench\r\n"
                      b"Message-Id: <%d.%d.%d@bench.client>\r\n\r\n" % (os.getpid(), j, i) + body + b".\r\n")
            reply(f, b"250")
            with lock:
                st["sent"] += 1
            s.sendall(b"QUIT\r\n")
            reply(f, b"221")
        except Exception as e:  # noqa: BLE001 - every failure is counted and reported
            with lock:
                st["failed"] += 1
                if len(st["errors"]) < 3:
                    st["errors"].append("%s: %s" % (type(e).__name__, e))
        finally:
            if f is not None:
                f.close()
            if s is not None:
                s.close()


def session_rcpts(dests, sessions, j):
    """The recipients session j sends to, in turn (one domain per message)."""
    if dests == 1:
        return ["relay@remote.test"]
    return ["relay@d%d.test" % (k + 1) for k in range(dests) if k % sessions == j] or \
        ["relay@d%d.test" % (j % dests + 1)]


def cmd_inject(a):
    """Sessions a.first .. a.last - 1 of a.sessions, one thread each (blocking
    sockets: about 0.4 ms of client CPU per message, a third of what asyncio
    streams cost); prints {"sent", "failed", "errors"}."""
    shares = split(a.count, a.sessions)
    st = dict(sent=0, failed=0, errors=[])
    lock = threading.Lock()
    ts = [threading.Thread(target=inject_session,
                           args=(a, j, shares[j], session_rcpts(a.dests, a.sessions, j), st, lock))
          for j in range(a.first, a.last)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps(st), flush=True)
    return 0


class Sampler(threading.Thread):
    """Peak RSS/PSS of the server's process trees."""

    def __init__(self, roots, every=0.25):
        super().__init__(daemon=True)
        self.roots, self.every = [r for r in roots if r], every
        self.peak = dict(rss=0, pss=0, nproc=0)
        self.stop = threading.Event()

    def sample(self):
        pids = []
        for r in self.roots:
            pids += procinfo.tree_pids(r)
        n, rss, pss = procinfo.mem_of(pids)
        p = self.peak
        p["rss"], p["pss"], p["nproc"] = max(p["rss"], rss), max(p["pss"], pss), max(p["nproc"], n)

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every)


def one_run(a):
    sinks = sorted(set(sum((glob.glob(g) for g in a.sink_out), [])))
    if not sinks:
        sys.exit("no sink output files match %s" % a.sink_out)
    waited, left = wait_idle(a.queue_dir, sinks)
    if left:
        print("warning: %s queue not empty after %.0f s (%d files)" % (a.label, waited, left), file=sys.stderr)
    subprocess.run(["sync"])
    time.sleep(1)
    base = sink_count(sinks)
    roots = server_roots(a)
    sink_pids = [int(p) for p in (a.sink_pids or "").split(",") if p.strip()]
    snap0 = proc_snapshot()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0, lo0 = cpu_times(), listen_overflows()
    load0 = open("/proc/loadavg").read().split()[0]
    sampler = Sampler(roots)
    sampler.sample()
    sampler.start()
    t0 = time.perf_counter()
    deadline = t0 + a.timeout
    ps = []
    loadgen = a.loadgen if a.loadgen != "auto" else ("smtp-source" if a.dests == 1 else "python")
    if loadgen == "smtp-source":
        # one smtp-source process per session, as bench/run.sh does
        nproc = a.sessions
        for m in split(a.count, a.sessions):
            if m:
                cmd = [a.smtp_source, "-l", str(a.size), "-m", str(m), "-s", "1", "-f", a.sender,
                       "-t", "relay@remote.test", "-M", "bench.client", "%s:%d" % (a.host, a.port)]
                ps.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    else:
        # threads in a few processes, each with a contiguous share of the sessions
        nproc = max(1, min(a.procs, a.sessions))
        bounds = [0]
        for k in split(a.sessions, nproc):
            bounds.append(bounds[-1] + k)
        for lo, hi in zip(bounds, bounds[1:]):
            cmd = [sys.executable, os.path.abspath(__file__), "inject", "--host", a.host, "--port", str(a.port),
                   "--dests", str(a.dests), "--sessions", str(a.sessions), "--first", str(lo), "--last", str(hi),
                   "--count", str(a.count), "--size", str(a.size), "--from", a.sender]
            ps.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    marks = {0.5: None, 0.9: None}
    t_acc = None
    got, last_got, last_change = 0, -1, t0
    sent, failed, errs = 0, 0, []
    while True:
        now = time.perf_counter()
        got = sink_count(sinks) - base
        if got != last_got:
            last_got, last_change = got, now
        for q in marks:
            if marks[q] is None and got >= q * a.count:
                marks[q] = now - t0
        if t_acc is None and all(p.poll() is not None for p in ps):
            t_acc = now - t0
            for p in ps:
                out, err = p.communicate()
                err = err.decode(errors="replace").strip()
                if loadgen == "smtp-source":
                    # it prints nothing unless something went wrong
                    if p.returncode or err:
                        failed += 1
                        errs.append("smtp-source rc=%d %s" % (p.returncode, err[-200:]))
                    continue
                try:
                    st = json.loads(out.decode().strip().splitlines()[-1])
                    sent, failed, errs = sent + st["sent"], failed + st["failed"], errs + st["errors"]
                except (ValueError, IndexError, KeyError):
                    failed += 1
                    errs.append("injector rc=%s %s" % (p.returncode, err[-200:]))
            if loadgen == "smtp-source":
                sent = a.count if failed == 0 else got  # smtp-source does not say how many it sent
        if t_acc is not None and (got >= sent if failed == 0 else now - last_change > 5):
            break
        if now > deadline:
            break
        time.sleep(0.02)
    t_end = time.perf_counter() - t0
    for p in ps:
        if p.poll() is None:
            p.kill()
            p.wait()
    relayed = t_acc is not None and failed == 0 and got >= sent
    sampler.stop.set()
    sampler.join()
    snap1 = proc_snapshot()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c1, lo1 = cpu_times(), listen_overflows()
    tick = os.sysconf("SC_CLK_TCK")
    parts = []
    for root in roots:
        v0 = tree_cpu_ticks(snap0, root) if root else None
        v1 = tree_cpu_ticks(snap1, root) if root else None
        parts.append((v1 - v0) / tick if v0 is not None and v1 is not None else None)
    srv = sum(parts) if parts and None not in parts else None
    sink_cpu = 0.0
    for p in sink_pids:
        if p in snap0 and p in snap1:
            sink_cpu += (snap1[p][2] - snap0[p][2]) / tick
    kth, foreign = foreign_cpu_ticks(snap0, snap1, roots + sink_pids)
    box = ((c1[0] - c0[0]) - (c1[1] - c0[1])) / tick
    lg = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    # duplicates: what arrives beyond what was accepted once the queue is empty again
    extra = None
    if relayed:
        wait_idle(a.queue_dir, sinks, timeout=60)
        extra = sink_count(sinks) - base - sent
    ok = relayed and failed == 0 and sent == a.count
    return dict(server=a.label, dests=a.dests, sessions=a.sessions, size=a.size, count=a.count,
                run=a.run, sent=sent, failed=failed, errors=" | ".join(errs[:3])[-400:], procs=nproc,
                loadgen=loadgen,
                accept_s=t_acc, accept_rate=a.count / t_acc if (t_acc and ok) else None,
                relay_s=t_end if relayed else None, relay_rate=a.count / t_end if ok else None,
                delivered=got, extra=extra, t50_s=marks[0.5], t90_s=marks[0.9],
                srv_cpu_s=srv, srv_ms_per_msg=1000.0 * srv / a.count if srv is not None else None,
                srv_parts_ms=[1000.0 * p / a.count if p is not None else None for p in parts],
                peak_rss_mb=sampler.peak["rss"] / 2**20, peak_pss_mb=sampler.peak["pss"] / 2**20,
                peak_nproc=sampler.peak["nproc"], sink_cpu_s=sink_cpu, loadgen_cpu_s=lg, box_cpu_s=box,
                kthread_cpu_s=kth / tick, foreign_cpu_s=foreign / tick, loadavg_start=float(load0),
                listen_overflows=(lo1 - lo0) if lo0 is not None and lo1 is not None else None,
                idle_wait_s=waited, time=time.time())


def cmd_run(a):
    if not (a.host.startswith("127.") or a.host == "::1"):
        sys.exit("refusing non-loopback host %s" % a.host)
    if a.loadgen == "smtp-source" and a.dests != 1:
        sys.exit("smtp-source sends to one recipient per process: use --loadgen python for 100 destinations")
    if a.loadgen != "python" and a.dests == 1 and not os.access(a.smtp_source, os.X_OK):
        sys.exit("smtp-source not found at %s (bench/deps.sh installs postfix)" % a.smtp_source)
    r = one_run(a)
    if a.json_append:
        with open(a.json_append, "a") as f:
            f.write(json.dumps(r) + "\n")
    fmt = lambda v, f: (f % v) if v is not None else "-"
    note = ""
    if r["relay_rate"] is None:
        note = "  FAILED: %d/%d accepted, %d relayed, %d refused or lost: %s" % (
            r["sent"], r["count"], r["delivered"], r["failed"], r["errors"][:200])
    elif r["extra"]:
        note = "  %d extra (duplicate) messages at the sinks" % r["extra"]
    print("%-8s %3d dest(s) %3d sessions N=%-6d relay/s %7s accept/s %7s srv %5s ms/msg peak RSS %6.1f MB%s" % (
        a.label, a.dests, a.sessions, a.count, fmt(r["relay_rate"], "%.0f"), fmt(r["accept_rate"], "%.0f"),
        fmt(r["srv_ms_per_msg"], "%.2f"), r["peak_rss_mb"], note), flush=True)
    return 0 if r["relay_rate"] is not None else 1


# ---- report -------------------------------------------------------------------

SERVERS = ("tegami", "postfix")
TARGET_RATIO = 2.0


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def cell(vals, fmt="%.0f"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    s = fmt % statistics.median(vals)
    if len(vals) > 1:
        s += " (" + fmt % min(vals) + "–" + fmt % max(vals) + ")"
    return s


def ratio(a, b):
    if a is None or b is None or a <= 0 or b <= 0:
        return "–"
    return "%.2f×" % (a / b)


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cmd_report(a):
    rows = load_jsonl(os.path.join(a.results, "relay.jsonl"))
    meta = {}
    mp = os.path.join(a.results, "meta.json")
    if os.path.exists(mp):
        with open(mp) as f:
            meta = json.load(f)
    out = ["# Relay: submission → tegami or Postfix → smtp-sink (issue #8)", ""]
    for k, v in meta.items():
        if v:
            out.append("- **%s**: %s" % (k, v))
    out.append("")
    out.append("| destinations | sessions × size | N × runs | relayed msg/s tegami | relayed msg/s Postfix | ratio "
               "| accepted msg/s tegami | accepted msg/s Postfix | ratio | CPU ms/msg tegami / Postfix "
               "| peak RSS tegami / Postfix (sum; PSS) | notes |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["dests"], r["sessions"], r["size"]) for r in rows})
    verdicts = []
    for dests, sess, size in keys:
        by = {s: [r for r in rows if r["server"] == s and (r["dests"], r["sessions"], r["size"]) == (dests, sess, size)]
              for s in SERVERS}
        n = max(len(v) for v in by.values())
        count = next((v[0]["count"] for v in by.values() if v), 0)
        rel = {s: [r["relay_rate"] for r in by[s]] for s in SERVERS}
        acc = {s: [r["accept_rate"] for r in by[s]] for s in SERVERS}
        cpu = {s: med([r["srv_ms_per_msg"] for r in by[s]]) for s in SERVERS}
        rss = {s: med([r["peak_rss_mb"] for r in by[s]]) for s in SERVERS}
        pss = {s: med([r["peak_pss_mb"] for r in by[s]]) for s in SERVERS}
        notes = []
        for s in SERVERS:
            bad = [r for r in by[s] if r["relay_rate"] is None]
            if bad:
                r = bad[0]
                notes.append("%s: %d run(s) failed (%d/%d accepted, %d relayed%s)" % (
                    s, len(bad), r["sent"], r["count"], r["delivered"], "; " + r["errors"][:80] if r["errors"] else ""))
            dup = sum(r["extra"] or 0 for r in by[s])
            if dup:
                notes.append("%s: %d duplicate(s) at the sinks" % (s, dup))
            fg = max((min(1.0, r["foreign_cpu_s"] / r["box_cpu_s"]) for r in by[s]
                      if r.get("box_cpu_s")), default=0)
            if fg > 0.2:
                notes.append("%s: up to %.0f %% of CPU went to other processes" % (s, 100 * fg))
        f2 = lambda v: "%.2f" % v if v is not None else "–"
        mb = lambda v: "%.1f MB" % v if v is not None else "–"
        out.append("| %d | %d × %d KB | {:,} × %d | %s | %s | **%s** | %s | %s | %s | %s / %s | %s / %s (%s) | %s |".format(count) % (
            dests, sess, size // 1024, n, cell(rel["tegami"]), cell(rel["postfix"]),
            ratio(med(rel["tegami"]), med(rel["postfix"])), cell(acc["tegami"]), cell(acc["postfix"]),
            ratio(med(acc["tegami"]), med(acc["postfix"])), f2(cpu["tegami"]), f2(cpu["postfix"]),
            mb(rss["tegami"]), mb(rss["postfix"]), mb(pss["postfix"]), "; ".join(notes)))
        t, p = med(rel["tegami"]), med(rel["postfix"])
        if t and p:
            verdicts.append("- %d destination%s: tegami %.0f msg/s, Postfix %.0f msg/s, ratio **%.2f×** "
                            "(target ≥ %.0f×): **%s**" % (dests, "" if dests == 1 else "s", t, p, t / p,
                                                          TARGET_RATIO, "met" if t / p >= TARGET_RATIO else "NOT met"))
    out += ["", "Medians; (min–max) when there were several runs. CPU: the server's whole process tree "
            "(Postfix: master and every child, reaped ones included). Peak RSS: tegamid's one process; "
            "Postfix summed over its processes (PSS in brackets).", "", "## Target (issue #8): relayed ≥ 2× Postfix", ""]
    out += verdicts or ["- not measured for both servers"]
    other = [r for r in rows if r.get("box_cpu_s")]
    if other:
        out += ["", "Other load on the machine: load average at the start of the runs %.2f–%.2f; CPU of processes "
                "other than the server, the sinks and the injecting clients: %.0f–%.0f %% of the busy CPU." % (
                    min(r["loadavg_start"] for r in other), max(r["loadavg_start"] for r in other),
                    100 * min(min(1.0, r["foreign_cpu_s"] / r["box_cpu_s"]) for r in other),
                    100 * max(min(1.0, r["foreign_cpu_s"] / r["box_cpu_s"]) for r in other))]
        sk = [1000.0 * r["sink_cpu_s"] / r["count"] for r in other if r.get("sink_cpu_s") is not None]
        lg = [1000.0 * r["loadgen_cpu_s"] / r["count"] for r in other if r.get("loadgen_cpu_s") is not None]
        if sk and lg:
            out.append("Sinks: %.2f ms CPU per message, injecting clients: %.2f ms (medians over all runs)." % (
                statistics.median(sk), statistics.median(lg)))
    text = "\n".join(out) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one measured run of one server")
    r.add_argument("--label", required=True, help="tegami or postfix (stored in the JSON)")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, required=True, help="the server's injection port")
    r.add_argument("--dests", type=int, choices=[1, 100], default=1)
    r.add_argument("--sessions", type=int, default=50)
    r.add_argument("--size", type=int, default=4096, help="payload bytes per message (smtp-source -l)")
    r.add_argument("--count", type=int, default=5000)
    r.add_argument("--loadgen", choices=["auto", "smtp-source", "python"], default="auto",
                   help="auto: smtp-source for one destination, python (a recipient per message) for 100")
    r.add_argument("--smtp-source", default="/usr/sbin/smtp-source")
    r.add_argument("--procs", type=int, default=2, help="python injector: processes the sessions are spread over")
    r.add_argument("--run", type=int, default=1, help="run number (stored in the JSON)")
    r.add_argument("--from", dest="sender", default="bench@client.test")
    r.add_argument("--sink-out", action="append", required=True, help="glob of the sinks' -c output files")
    r.add_argument("--sink-pids", help="pids of the sinks, comma-separated (their CPU is reported apart)")
    r.add_argument("--queue-dir", action="append", default=[], help="server queue directory that must be empty")
    r.add_argument("--server-pid", help="root pid(s) of the server, comma-separated")
    r.add_argument("--server-pidfile", help="pid file(s) of the server's root(s), comma-separated")
    r.add_argument("--timeout", type=float, default=600.0, help="max seconds per run")
    r.add_argument("--json-append", help="append the run's JSON line to this file")
    i = sub.add_parser("inject", help="(internal) run sessions FIRST..LAST-1 of SESSIONS")
    i.add_argument("--host", default="127.0.0.1")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--dests", type=int, default=1)
    i.add_argument("--sessions", type=int, required=True)
    i.add_argument("--first", type=int, required=True)
    i.add_argument("--last", type=int, required=True)
    i.add_argument("--count", type=int, required=True)
    i.add_argument("--size", type=int, default=4096)
    i.add_argument("--from", dest="sender", default="bench@client.test")
    p = sub.add_parser("report", help="relay.jsonl + meta.json of a results dir -> Markdown")
    p.add_argument("results")
    p.add_argument("--out")
    a = ap.parse_args()
    sys.exit({"run": cmd_run, "inject": cmd_inject, "report": cmd_report}[a.cmd](a))


if __name__ == "__main__":
    main()
