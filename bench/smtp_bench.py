#!/usr/bin/python3
"""bench/smtp_bench.py - SMTP throughput of one server: accepted and landed msg/s.

For every (size, sessions) pair and --runs times, it runs --pre-cmd (wait until
the server is idle, empty the Maildir), then sends --count messages of SIZE
payload bytes with SESSIONS concurrent SMTP sessions, one message per
connection (HELO, MAIL, RCPT, DATA, QUIT), to one recipient, and measures:

  accept/s   N / time until the load generator exits, i.e. every message got
             its 250 reply after DATA (the server has it on disk);
  landed/s   N / time from the start until N files sit in the recipient's
             Maildir (new/ + cur/; polled every 0.1 s, every 0.02 s once the
             load generator has exited);
  t50/t90    seconds until 50 % / 90 % of the messages had landed;
  srv_ms/msg CPU (user+sys) of the server's process tree per message, from the
             start until the last message landed (--server-pid/--server-pidfile;
             live processes plus what the root has reaped, so short-lived
             Postfix daemons count; both take a comma-separated list, e.g.
             Postfix's and Dovecot's master, and sum the trees; srv_parts_ms
             in the JSON has each tree on its own);
  busy %     machine-wide busy CPU during acceptance (100 % = one core);
  lg_cpu_s   CPU seconds of the load generator itself;
  box_cpu_s  machine-wide busy CPU from the start until the last message landed;
             of it, kthread_cpu_s went to kernel threads (journal, writeback)
             and foreign_cpu_s to processes that are neither the server nor
             the load generator: a check for interference from whatever else
             runs on the machine (the rest is mostly softirq);
  overflows  increase of the kernel's TcpExt ListenOverflows (SYNs dropped
             because a listen queue was full).

Load generator: Postfix's smtp-source (default), one process per session
(--procs 0, default) so that sessions are independent clients: one smtp-source
opens its sessions one at a time, and a single dropped SYN would stall all of
them for the SYN retransmit (1 s, 3 s, 7 s).  --loadgen python uses
smtp_loadgen.py (smtplib) instead.

Submission (issue #3): --starttls or --smtps, --auth USER:PASS, --auth-mech
PLAIN and --per-conn K are handed to smtp_loadgen.py (so they imply --loadgen
python): a full TLS handshake, EHLO, AUTH for every connection, K messages per
connection.  The JSON line records them (tls, auth_mech, per_conn).
--warmup: after --pre-cmd and before the clock starts, every session logs in
once and quits without mail (smtp_loadgen.py --warmup), so that the run
measures the steady state: Postfix has its smtpd processes forked (idle ones
stay max_idle = 100 s and serve the next connections, as under steady load),
tegamid has the password in its verified-credentials cache.

Output: one line per (size, sessions) on stdout; with --json-append FILE one
JSON object per run appended to FILE (report.py turns those into the table).
Only loopback addresses are contacted; every run is bounded by --count
messages and --timeout seconds.  Derived from shared/bench/smtp_bench.py.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # total, idle + iowait


def listen_overflows():
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for keys, vals in zip(lines[::2], lines[1::2]):
        if keys.startswith("TcpExt:"):
            d = dict(zip(keys.split()[1:], vals.split()[1:]))
            return int(d.get("ListenOverflows", 0))
    return None


def proc_snapshot():
    """pid -> (ppid, starttime, utime+stime, cutime+cstime), in clock ticks"""
    snap = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()
        snap[int(d)] = (int(f[1]), int(f[19]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))
    return snap


def tree_of(snap, root):
    kids = {}
    for pid, v in snap.items():
        kids.setdefault(v[0], []).append(pid)
    out, todo = set(), [root] if root in snap else []
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_ticks(snap, root):
    """CPU of root's process tree: utime+stime of live members plus root's
    cutime+cstime (children it has reaped, e.g. Postfix daemons that exited)."""
    if root not in snap:
        return None
    return snap[root][3] + sum(snap[p][2] for p in tree_of(snap, root))


def foreign_cpu_ticks(s0, s1, roots):
    """CPU used between two snapshots outside the server's trees and outside
    this harness and its load generators: (kernel threads, other processes).
    Processes that started and ended in between count through the parent
    that reaped them; one that was alive at s0 and gone at s1 is missed."""
    me = os.getpid()
    skip = set()
    for root in roots:
        if root:
            skip |= tree_of(s0, root) | tree_of(s1, root)
    kth = other = 0
    for pid, (ppid, start, own, kids) in s1.items():
        if pid in skip or pid == me or ppid == me:
            continue
        prev = s0.get(pid)
        d = own + kids
        if prev and prev[1] == start:
            d -= prev[2] + prev[3]
        if pid == 2 or ppid == 2:
            kth += d
        else:
            other += d
    return kth, other


def server_roots(a):
    """root pids of the server's process trees (--server-pid / --server-pidfile lists)"""
    roots = []
    for p in (a.server_pid or "").split(","):
        if p.strip():
            roots.append(int(p))
    for path in (a.server_pidfile or "").split(","):
        if not path.strip():
            continue
        try:
            with open(path.strip()) as f:
                roots.append(int(f.read().split()[0]))
        except (OSError, ValueError, IndexError):
            roots.append(None)  # a tree we cannot measure: no CPU figure at all
    return roots


def count_maildir(md):
    n = 0
    for sub in ("new", "cur"):
        try:
            with os.scandir(os.path.join(md, sub)) as it:
                n += sum(1 for _ in it)
        except FileNotFoundError:
            pass
    return n


def split(n, k):
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def loadgen_cmds(a, size, conc, count):
    """The commands to start in parallel for one run."""
    if a.loadgen == "smtp-source":
        nproc = conc if a.procs == 0 else max(1, min(a.procs, conc))
        cmds = []
        for sessions, msgs in zip(split(conc, nproc), split(count, nproc)):
            if msgs == 0:
                continue
            cmds.append([a.smtp_source, "-l", str(size), "-m", str(msgs), "-s", str(sessions),
                         "-f", a.sender, "-t", a.to, "-M", "bench.client",
                         "%s:%d" % (a.host, a.port)])
        return cmds
    cmd = [sys.executable, os.path.join(HERE, "smtp_loadgen.py"), "--host", a.host,
           "--port", str(a.port), "--size", str(size), "--count", str(count),
           "--sessions", str(conc), "--procs", str(a.procs or 2),
           "--from", a.sender, "--to", a.to, "--per-conn", str(a.per_conn)]
    if a.starttls:
        cmd.append("--starttls")
    if a.smtps:
        cmd.append("--smtps")
    if a.auth:
        cmd += ["--auth", a.auth]
    if a.auth_mech:
        cmd += ["--auth-mech", a.auth_mech]
    return [cmd]


def one_run(a, size, conc, count):
    if a.pre_cmd:
        subprocess.run(a.pre_cmd, shell=True, check=True, cwd=HERE, timeout=180)
    if a.warmup:
        w = loadgen_cmds(a, size, conc, conc)[0] + ["--warmup"]
        r = subprocess.run(w, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        if r.returncode:
            print("warm-up failed: %s" % r.stderr.decode(errors="replace")[-300:], file=sys.stderr)
        time.sleep(0.5)
    base = count_maildir(a.maildir)
    cmds = loadgen_cmds(a, size, conc, count)
    roots = server_roots(a)
    snap0 = proc_snapshot()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0, lo0 = cpu_times(), listen_overflows()
    marks = {0.5: None, 0.9: None}
    # stderr to a file, not a pipe: a chatty load generator must not block on it
    errf = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    deadline = t0 + a.timeout

    def landed(now):
        n = count_maildir(a.maildir) - base
        for q in marks:
            if marks[q] is None and n >= q * count:
                marks[q] = now - t0
        return n

    ps = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=errf) for c in cmds]
    last_poll = 0.0
    killed = False
    while any(p.poll() is None for p in ps):
        now = time.perf_counter()
        if now > deadline:
            for p in ps:
                if p.poll() is None:
                    p.kill()
            killed = True
            break
        if now - last_poll >= 0.1:
            landed(now)
            last_poll = now
        time.sleep(0.01)
    t_acc = time.perf_counter() - t0
    c1 = cpu_times()
    for p in ps:
        p.wait()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    errf.seek(0)
    err = errf.read().decode(errors="replace").strip()
    errf.close()
    rc = next((p.returncode for p in ps if p.returncode != 0), 0)
    t_land, delivered = None, landed(time.perf_counter())
    while delivered < count and time.perf_counter() < deadline:
        time.sleep(0.02)
        delivered = landed(time.perf_counter())
    if delivered >= count:
        t_land = time.perf_counter() - t0
    snap1 = proc_snapshot()
    lo1 = listen_overflows()
    tick, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count()
    c2 = cpu_times()
    busy = 100.0 * ((c1[0] - c0[0]) - (c1[1] - c0[1])) / max(1, c1[0] - c0[0]) * ncpu
    box = ((c2[0] - c0[0]) - (c2[1] - c0[1])) / tick
    parts = []
    for root in roots:
        t0_srv = tree_cpu_ticks(snap0, root) if root else None
        t1_srv = tree_cpu_ticks(snap1, root) if root else None
        parts.append((t1_srv - t0_srv) / tick if (t0_srv is not None and t1_srv is not None) else None)
    srv = sum(parts) if parts and None not in parts else None
    kth, foreign = foreign_cpu_ticks(snap0, snap1, roots)
    lg = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    ok = rc == 0 and not killed
    return dict(server=a.label, size=size, conc=conc, count=count, nprocs=len(cmds), rc=rc,
                killed=killed, stderr=err[-400:], accept_s=t_acc,
                accept_rate=count / t_acc if ok else None,
                landed_s=t_land, landed_rate=count / t_land if (t_land and ok) else None,
                delivered=delivered, t50_s=marks[0.5], t90_s=marks[0.9],
                busy_pct=busy, loadgen_cpu_s=lg, box_cpu_s=box,
                kthread_cpu_s=kth / tick, foreign_cpu_s=foreign / tick,
                srv_cpu_s=srv, srv_ms_per_msg=1000.0 * srv / count if srv is not None else None,
                srv_parts_ms=[1000.0 * p / count if p is not None else None for p in parts],
                listen_overflows=(lo1 - lo0) if (lo0 is not None and lo1 is not None) else None,
                loadgen=a.loadgen, tls="starttls" if a.starttls else ("smtps" if a.smtps else None),
                auth_mech=(a.auth_mech or "smtplib") if a.auth else None, per_conn=a.per_conn, warmup=a.warmup,
                time=time.time())


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="server", help="server name stored in the JSON (tegami, postfix)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--to", default="user1@example.test")
    ap.add_argument("--from", dest="sender", default="bench@example.net")
    ap.add_argument("--sizes", default="4096")
    ap.add_argument("--conc", default="1")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--maildir", required=True, help="recipient Maildir (landed count)")
    ap.add_argument("--pre-cmd", help="shell command run before every run (wait for idle, empty Maildir)")
    ap.add_argument("--timeout", type=float, default=300.0, help="max seconds per run")
    ap.add_argument("--loadgen", choices=["smtp-source", "python"], default="smtp-source")
    ap.add_argument("--smtp-source", default="/usr/sbin/smtp-source")
    ap.add_argument("--procs", type=int, default=0,
                    help="smtp-source processes per run (0 = one per session: independent clients)")
    ap.add_argument("--server-pid", help="root pid(s) of the server, comma-separated")
    ap.add_argument("--server-pidfile", help="pid file(s) of the server's root(s), comma-separated")
    ap.add_argument("--starttls", action="store_true", help="STARTTLS before AUTH/MAIL (python load generator)")
    ap.add_argument("--smtps", action="store_true", help="implicit TLS (python load generator)")
    ap.add_argument("--auth", help="USER:PASS: AUTH before MAIL (python load generator)")
    ap.add_argument("--auth-mech", choices=["PLAIN", "LOGIN", "CRAM-MD5"], help="force this SASL mechanism")
    ap.add_argument("--per-conn", type=int, default=1, help="messages per connection (python load generator)")
    ap.add_argument("--warmup", action="store_true",
                    help="before each run, untimed: every session logs in once, no mail (python load generator)")
    ap.add_argument("--json-append", help="append one JSON line per run to this file")
    a = ap.parse_args()
    if not (a.host.startswith("127.") or a.host in ("localhost", "::1")):
        sys.exit("refusing non-loopback host %s" % a.host)
    if a.starttls or a.smtps or a.auth or a.per_conn != 1 or a.warmup:
        a.loadgen = "python"  # smtp-source has no TLS, no AUTH
    if a.loadgen == "smtp-source" and not os.access(a.smtp_source, os.X_OK):
        sys.exit("smtp-source not found at %s (bench/deps.sh installs postfix)" % a.smtp_source)
    for size in [int(x) for x in a.sizes.split(",")]:
        for conc in [int(x) for x in a.conc.split(",")]:
            runs = [one_run(a, size, conc, a.count) for _ in range(a.runs)]
            if a.json_append:
                with open(a.json_append, "a") as f:
                    for r in runs:
                        f.write(json.dumps(r) + "\n")
            fmt = lambda v, f: (f % v) if v is not None else "-"
            notes = ["rc=%d %s" % (r["rc"], r["stderr"][:160].replace("\n", " | ")) for r in runs if r["rc"] or r["killed"]]
            notes += ["%d/%d landed" % (r["delivered"], r["count"]) for r in runs if r["landed_s"] is None]
            print("%-8s %6d B x %3d sessions N=%-5d accept/s %8s landed/s %8s busy %4.0f%% srv %6s ms/msg%s" % (
                a.label, size, conc, a.count, fmt(med([r["accept_rate"] for r in runs]), "%.0f"),
                fmt(med([r["landed_rate"] for r in runs]), "%.0f"), med([r["busy_pct"] for r in runs]),
                fmt(med([r["srv_ms_per_msg"] for r in runs]), "%.2f"),
                ("  " + "; ".join(notes))[:400] if notes else ""), flush=True)


if __name__ == "__main__":
    main()
