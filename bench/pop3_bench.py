#!/usr/bin/env python3
"""pop3_bench.py - POP3 retrieval and idle-session load for bench/pop3_bench.sh (issue #4).

Python 3 standard library only; the POP3 client is poplib, the same code for every
server.  Loopback only; every loop is bounded in count and in time.

  gen    --dir D --count N [--size 4096]
         write N message files of exactly SIZE bytes (LF line endings, as an MTA stores
         them) into the flat dir D, named "<time>.M<n>P<pid>.bench" (no ,S=/,W= size
         fields, so a server has to read each file to learn its size), owner --owner;
         writes D/.manifest (count, file bytes, octets as RETR sends them: CRLF).
  reset  --owner vmail MAILDIR=TEMPLATE ...
         rm -rf MAILDIR, make MAILDIR/{cur,new,tmp}, hard-link every template file into
         new/ (both servers get the same files; renames in one tree do not touch the other)
  empty  --owner vmail --root R --users FMT --first F --n N
         (re)make N empty Maildirs R/<domain>/<local>/ for the idle test
  login  --port P --users FMT --first F --n N     USER/PASS/QUIT each (warm-up, unmeasured)
  retr   --port P --users FMT --first F --clients C --expect-msgs N --expect-octets O
         C client processes (one per mailbox), released together; each: connect, USER,
         PASS, UIDL, RETR 1..n one at a time (no pipelining), QUIT.  Wall time from the
         release to the last QUIT's +OK; per-phase times; server CPU (--pid: the tree
         under it; tegamid is one process, Dovecot's master reaps its children so its
         cutime/cstime holds the CPU of the exited ones); client CPU; machine CPU from
         /proc/stat, so "other" = machine - server - client shows contention.
  idle   --port P --users FMT --first F --n N --procs K
         K client processes log in N sessions (one per mailbox, at most --parallel logins
         in flight in all), keep them open without a command for --hold s, then send NOOP
         on each (still alive?) and close; a probe client times connect + login + STAT +
         QUIT on one more mailbox while they are held.  The server tree's process count
         and summed RSS / PSS are sampled every --sample s.
  report --jsonl F --meta M --out MD              Markdown table with tegami/Dovecot ratios

Every measuring subcommand appends one JSON line to --jsonl.
"""
import argparse
import hashlib
import json
import multiprocessing as mp
import os
import poplib
import pwd
import queue
import resource
import shutil
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from procinfo import tree_pids, mem_of, comm_counts  # noqa: E402 (bench/ is the script's dir)

TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- /proc helpers
def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def tree_cpu_s(root):
    """utime+stime of every live process of the tree, plus the root's cutime+cstime
    (children that exited and were reaped by the root)."""
    total = 0.0
    for p in tree_pids(root):
        try:
            f = proc_stat(p)
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / TCK
        if p == root:
            total += (int(f[13]) + int(f[14])) / TCK
    return total


def thread_cpu_s(pid):
    """utime+stime of a process's main thread (tegamid: the event loop; its workers are
    other threads)."""
    try:
        with open("/proc/%d/task/%d/stat" % (pid, pid)) as f:
            s = f.read()
    except OSError:
        return None
    v = s[s.rindex(")") + 2:].split()
    return (int(v[11]) + int(v[12])) / TCK


def machine_cpu():
    """(busy seconds, total seconds) summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    tot = sum(v[:8])
    return (tot - idle) / TCK, tot / TCK


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def check_loopback(host):
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        sys.exit("pop3_bench.py: refusing non-loopback host %s" % host)


def append_json(path, obj):
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(obj) + "\n")


# ---------------------------------------------------------------- mailbox setup
def body_of(size, seq):
    hdr = ("Return-Path: <bench@example.net>\nDelivered-To: bench@example.test\n"
           "From: <bench@example.net>\nTo: <user@example.test>\nSubject: pop bench %06d\n"
           "Date: Wed, 25 Nov 2026 12:00:00 +0000\nMessage-Id: <%06d.fill@bench.client>\n\n" % (seq, seq))
    line = "X" * 75 + "\n"
    b = hdr + line * ((size - len(hdr)) // len(line) + 1)
    return (b[:size - 1] + "\n").encode()


def owner_ids(name):
    if not name:
        return None, None
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def cmd_gen(a):
    uid, gid = owner_ids(a.owner)
    if os.path.isdir(a.dir):
        shutil.rmtree(a.dir)
    os.makedirs(a.dir, mode=0o755)
    t = int(time.time()) - 86400
    pid = os.getpid()
    octets = nbytes = 0
    for i in range(a.count):
        data = body_of(a.size, i)
        # one second per 100 messages keeps arrival order = name order on every server
        name = "%d.M%dP%d.bench" % (t + i // 100, i, pid)
        fd = os.open(os.path.join(a.dir, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        if uid is not None:
            os.fchown(fd, uid, gid)
        os.close(fd)
        nbytes += len(data)
        octets += len(data) + data.count(b"\n")     # LF -> CRLF on the wire
    with open(os.path.join(a.dir, ".manifest"), "w") as fh:
        json.dump(dict(count=a.count, size=a.size, bytes=nbytes, octets=octets), fh)
    print("gen: %d x %d bytes into %s (%d octets as sent)" % (a.count, a.size, a.dir, octets))


def mkmaildir(md, uid, gid):
    if os.path.lexists(md):
        shutil.rmtree(md)
    for sub in ("", "cur", "new", "tmp"):
        p = os.path.join(md, sub)
        os.makedirs(p, mode=0o700, exist_ok=True)
        if uid is not None:
            os.chown(p, uid, gid)


def cmd_reset(a):
    uid, gid = owner_ids(a.owner)
    n = 0
    for pair in a.pairs:
        md, _, tpl = pair.partition("=")
        if not md or not tpl:
            sys.exit("reset: MAILDIR=TEMPLATE expected, got %r" % pair)
        mkmaildir(md, uid, gid)
        new = os.path.join(md, "new")
        for f in os.listdir(tpl):
            if f.startswith("."):
                continue
            os.link(os.path.join(tpl, f), os.path.join(new, f))
            n += 1
    if not a.quiet:
        print("reset: %d maildirs, %d files linked" % (len(a.pairs), n))


def cmd_empty(a):
    uid, gid = owner_ids(a.owner)
    for i in range(a.n):
        local, _, dom = (a.users % (a.first + i)).partition("@")
        mkmaildir(os.path.join(a.root, dom, local), uid, gid)
    print("empty: %d maildirs under %s" % (a.n, a.root))


# ---------------------------------------------------------------- POP3 client
def pop_login(a, user, timeout=None):
    p = poplib.POP3(a.host, a.port, timeout=timeout or a.op_timeout)
    p.user(user)
    t = time.perf_counter()
    p.pass_(a.password)
    return p, time.perf_counter() - t


def cmd_login(a):
    """Warm-up: USER/PASS/QUIT for each user (primes tegamid's credential cache)."""
    users = [a.users % (a.first + i) for i in range(a.n)]
    bad = []
    t0 = time.perf_counter()

    def one(u):
        p, _ = pop_login(a, u)
        p.quit()

    with ThreadPoolExecutor(min(a.parallel, len(users))) as ex:
        futs = {ex.submit(one, u): u for u in users}
        for f in as_completed(futs, timeout=a.timeout):
            if f.exception() is not None:
                bad.append("%s: %r" % (futs[f], f.exception()))
    print("login: %d users in %.2f s, %d failed %s" % (len(users), time.perf_counter() - t0, len(bad), bad[:3]))
    if bad:
        sys.exit(1)


def retr_worker(a, user, go, q):
    d = dict(user=user, msgs=0, octets=0, error=None)
    try:
        if not go.wait(a.timeout):
            raise RuntimeError("never released")
        # one client: the server's CPU per phase (read from /proc between commands; cheap
        # for one client, skipped for many so that 50 processes do not scan /proc)
        phase_cpu = a.clients == 1
        c0 = self_cpu()
        s0 = tree_cpu_s(a.pid) if phase_cpu else 0
        t0 = time.perf_counter()
        p = poplib.POP3(a.host, a.port, timeout=a.op_timeout)
        p.user(user)
        t = time.perf_counter()
        p.pass_(a.password)
        d["login_s"] = time.perf_counter() - t0          # connect + greeting + USER + PASS
        t = time.perf_counter()
        _, uidl, _ = p.uidl()
        d["uidl_s"] = time.perf_counter() - t
        d["open_s"] = d["login_s"] + d["uidl_s"]         # mailbox opened and listed
        s1 = tree_cpu_s(a.pid) if phase_cpu else 0
        uids = [ln.split(None, 1)[1] for ln in uidl]
        d["uidl_sha1"] = hashlib.sha1(b"\n".join(sorted(uids))).hexdigest()
        t = time.perf_counter()
        for i in range(1, len(uids) + 1):
            _, _, octets = p.retr(i)
            d["octets"] += octets
            d["msgs"] += 1
            if time.perf_counter() - t0 > a.timeout:
                raise RuntimeError("client timeout after %d messages" % d["msgs"])
        d["retr_s"] = time.perf_counter() - t
        s2 = tree_cpu_s(a.pid) if phase_cpu else 0
        t = time.perf_counter()
        p.quit()
        d["quit_s"] = time.perf_counter() - t
        if phase_cpu:
            s3 = tree_cpu_s(a.pid)
            d["cpu_open_s"], d["cpu_retr_s"], d["cpu_quit_s"] = s1 - s0, s2 - s1, s3 - s2
        d["end"] = time.perf_counter()
        d["total_s"] = d["end"] - t0
        d["client_cpu_s"] = self_cpu() - c0
    except Exception as e:  # noqa: BLE001
        d["error"] = repr(e)[:200]
    q.put(d)


def cmd_retr(a):
    check_loopback(a.host)
    raise_nofile(a.clients + 100)
    users = [a.users % (a.first + i) for i in range(a.clients)]
    ctx = mp.get_context("fork")
    go, q = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=retr_worker, args=(a, u, go, q), daemon=True) for u in users]
    for p in procs:
        p.start()
    time.sleep(0.3)                                     # every client forked and waiting
    s0 = tree_cpu_s(a.pid) if a.pid else None
    th0 = thread_cpu_s(a.pid) if a.pid else None
    m0 = machine_cpu()
    t0 = time.perf_counter()
    go.set()
    res = []
    deadline = t0 + a.timeout + 10
    while len(res) < len(procs) and time.perf_counter() < deadline:
        try:
            res.append(q.get(timeout=1))
        except queue.Empty:
            pass
    t_end = time.perf_counter()
    s1 = tree_cpu_s(a.pid) if a.pid else None
    th1 = thread_cpu_s(a.pid) if a.pid else None
    m1 = machine_cpu()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
    ok = [d for d in res if not d["error"]]
    errors = [d["error"] for d in res if d["error"]] + ["no result"] * (len(procs) - len(res))
    wall = (max(d["end"] for d in ok) - t0) if ok else (t_end - t0)
    msgs = sum(d["msgs"] for d in res)
    octets = sum(d["octets"] for d in res)
    srv = (s1 - s0) if s0 is not None else None
    cli = sum(d.get("client_cpu_s", 0) for d in ok)
    busy = m1[0] - m0[0]
    cap = m1[1] - m0[1]
    # the clients' CPU is measured from their release to their QUIT; the window here is the
    # same give or take the collection, so "other" is an estimate
    other = busy - (srv or 0) - cli
    med = lambda k: statistics.median([d[k] for d in ok]) if ok else None    # noqa: E731
    mx = lambda k: max([d[k] for d in ok]) if ok else None                    # noqa: E731
    exp_ok = (msgs == a.expect_msgs * a.clients and octets == a.expect_octets * a.clients) \
        if a.expect_msgs else None
    out = dict(kind="retr", server=a.server, label=a.label, run=a.run, clients=a.clients,
               msgs=msgs, octets=octets, wall_s=wall, msgs_per_s=msgs / wall if wall else 0,
               mb_per_s=octets / wall / 1e6 if wall else 0, server_cpu_s=srv, client_cpu_s=cli,
               server_cpu_us_per_msg=(1e6 * srv / msgs) if (srv is not None and msgs) else None,
               main_thread_cpu_s=(th1 - th0) if th0 is not None and th1 is not None else None,
               main_thread_busy_pct=100.0 * (th1 - th0) / (t_end - t0)
               if th0 is not None and th1 is not None and t_end > t0 else None,
               machine_busy_s=busy, machine_cap_s=cap, other_cpu_s=other,
               other_cpu_pct=max(0.0, 100.0 * other / cap) if cap else None,
               login_s_med=med("login_s"), login_s_max=mx("login_s"), uidl_s_med=med("uidl_s"),
               open_s_med=med("open_s"), open_s_max=mx("open_s"),
               server_cpu_open_s=ok[0].get("cpu_open_s") if len(ok) == 1 else None,
               server_cpu_quit_s=ok[0].get("cpu_quit_s") if len(ok) == 1 else None,
               server_cpu_retr_us_per_msg=(1e6 * ok[0]["cpu_retr_s"] / ok[0]["msgs"])
               if len(ok) == 1 and ok[0].get("cpu_retr_s") is not None and ok[0]["msgs"] else None,
               uidl_s_max=mx("uidl_s"), retr_s_med=med("retr_s"), quit_s_med=med("quit_s"),
               quit_s_max=mx("quit_s"), total_s_med=med("total_s"), total_s_max=mx("total_s"),
               uidl_sha1=sorted({d["uidl_sha1"] for d in ok}), errors=errors[:5], n_errors=len(errors),
               expected_ok=exp_ok)
    print("RESULT %s %s run %s: %d clients, %d msgs, %.2f s -> %.0f msgs/s %.1f MB/s | login med/max %.3f/%.3f s"
          " uidl %.3f/%.3f s quit %.3f/%.3f s | server CPU %s s (%s us/msg) client CPU %.2f s other %.0f%% | errors %d%s" % (
              a.server, a.label, a.run, a.clients, msgs, wall, out["msgs_per_s"], out["mb_per_s"],
              out["login_s_med"] or 0, out["login_s_max"] or 0, out["uidl_s_med"] or 0, out["uidl_s_max"] or 0,
              out["quit_s_med"] or 0, out["quit_s_max"] or 0,
              "%.2f" % srv if srv is not None else "-",
              "%.0f" % out["server_cpu_us_per_msg"] if out["server_cpu_us_per_msg"] else "-", cli,
              out["other_cpu_pct"] or 0, len(errors), "" if exp_ok in (None, True) else " CONTENT MISMATCH"),
          flush=True)
    if errors:
        print("errors:", errors[:5], flush=True)
    append_json(a.jsonl, out)
    return 0 if not errors and exp_ok in (None, True) else 1


# ---------------------------------------------------------------- idle sessions
def idle_worker(a, users, sem, hold_evt, q, wid):
    raise_nofile(len(users) + 100)
    held, lat, errs = [], [], {}
    lock = threading.Lock()

    def one(u):
        with sem:                                       # logins in flight, all processes together
            return pop_login(a, u)

    t_stop = time.monotonic() + a.login_timeout
    ex = ThreadPoolExecutor(a.threads)
    futs = [ex.submit(one, u) for u in users]
    last = time.monotonic()
    for f in futs:
        try:
            if time.monotonic() >= t_stop and not f.done():
                raise TimeoutError("login not done within --login-timeout")
            p, tl = f.result(timeout=max(0.01, t_stop - time.monotonic()))
            with lock:
                held.append(p)
                lat.append(tl)
        except Exception as e:  # noqa: BLE001
            k = repr(e)[:100]
            errs[k] = errs.get(k, 0) + 1
        if time.monotonic() - last > 1:
            q.put(("progress", wid, len(held), sum(errs.values())))
            last = time.monotonic()
    ex.shutdown(wait=False, cancel_futures=True)
    q.put(("in", wid, len(held), sum(errs.values()), lat, errs))
    hold_evt.wait(a.login_timeout + a.hold + 60)
    # still alive after the hold?  one NOOP per session, then close (no QUIT: nothing to update)
    alive = 0
    for p in held:
        try:
            p.sock.settimeout(a.op_timeout)
            if p.noop().startswith(b"+OK"):
                alive += 1
        except Exception:  # noqa: BLE001
            pass
    for p in held:
        try:
            p.close()
        except Exception:  # noqa: BLE001
            pass
    q.put(("alive", wid, alive))


def probe(a, user, n=5):
    """connect + login + STAT + QUIT on a spare mailbox while the sessions are held."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        try:
            p, _ = pop_login(a, user, timeout=30)
            p.stat()
            p.quit()
            out.append(time.perf_counter() - t)
        except Exception:  # noqa: BLE001
            out.append(None)
        time.sleep(0.2)
    return out


def cmd_idle(a):
    check_loopback(a.host)
    raise_nofile(a.n + 200)
    users = [a.users % (a.first + i) for i in range(a.n)]
    chunks = [users[i::a.procs] for i in range(a.procs)]
    ctx = mp.get_context("fork")
    sem, hold_evt, q = ctx.BoundedSemaphore(a.parallel), ctx.Event(), ctx.Queue()
    base_pids = tree_pids(a.pid)
    base = mem_of(base_pids)
    base_comm = comm_counts(base_pids)
    s0 = tree_cpu_s(a.pid)
    t0 = time.perf_counter()
    procs = [ctx.Process(target=idle_worker, args=(a, c, sem, hold_evt, q, i), daemon=True)
             for i, c in enumerate(chunks)]
    for p in procs:
        p.start()
    progress, done, alive, lat, errs = {}, {}, {}, [], {}
    peak = (0, 0, 0)
    peak_comm = {}
    timeline = []
    next_sample = 0.0

    done_t = {}

    def drain(until, stop=lambda: False):
        while not stop():
            left = until - time.perf_counter()
            try:
                m = q.get(timeout=max(0.01, min(left, 0.5)))
            except queue.Empty:
                if time.perf_counter() >= until:
                    return
                continue
            if m[0] == "progress":
                progress[m[1]] = (m[2], m[3])
            elif m[0] == "in":
                done[m[1]] = (m[2], m[3])
                done_t[m[1]] = time.perf_counter()
                progress[m[1]] = (m[2], m[3])
                lat.extend(m[4])
                for k, v in m[5].items():
                    errs[k] = errs.get(k, 0) + v
            elif m[0] == "alive":
                alive[m[1]] = m[2]
            if time.perf_counter() >= until:
                return

    def sample(phase):
        nonlocal peak, peak_comm
        pids = tree_pids(a.pid)
        m = mem_of(pids)
        if m[2] > peak[2]:
            peak = m
            peak_comm = comm_counts(pids)
        li = sum(v[0] for v in progress.values())
        fl = sum(v[1] for v in progress.values())
        timeline.append(dict(t=round(time.perf_counter() - t0, 1), phase=phase, logged_in=li, failed=fl,
                             nproc=m[0], rss_mb=round(m[1] / 2**20, 1), pss_mb=round(m[2] / 2**20, 1)))
        print("[idle %s] t=%5.1f %s logged_in=%d failed=%d | nproc=%d rss=%.1fMB pss=%.1fMB" % (
            a.server, timeline[-1]["t"], phase, li, fl, m[0], m[1] / 2**20, m[2] / 2**20), flush=True)

    # login phase
    t_lim = t0 + a.login_timeout + 5
    while len(done) < len(procs) and time.perf_counter() < t_lim:
        drain(min(t_lim, time.perf_counter() + max(a.sample, 5.0)),    # /proc scans cost the server CPU
              stop=lambda: len(done) == len(procs))
        sample("login")
    t_all = (max(done_t.values()) if len(done) == len(procs) else time.perf_counter()) - t0
    logged_in = sum(v[0] for v in done.values())
    failed = sum(v[1] for v in done.values()) + sum(len(chunks[i]) for i in range(len(chunks)) if i not in done)
    s_login = tree_cpu_s(a.pid) - s0
    # hold phase (the probe runs in the middle of it)
    t_hold_end = time.perf_counter() + a.hold
    probe_lat = None
    while time.perf_counter() < t_hold_end:
        sample("hold")
        if probe_lat is None and a.probe_user:      # once, right after the first sample of the hold
            probe_lat = probe(a, a.probe_user)
        drain(min(t_hold_end, time.perf_counter() + a.sample))
    sample("hold")
    hold_evt.set()
    t_lim = time.perf_counter() + 60 + a.n * a.op_timeout / 1000
    while len(alive) < len(done) and time.perf_counter() < t_lim:
        drain(time.perf_counter() + 0.5)
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    lat.sort()
    n_alive = sum(alive.values())
    # the sessions' own cost: memory while they are held (after every login).  The peak of
    # the whole test can be higher for reasons of the login phase (tegamid's yescrypt
    # verifications use 16 MB of scratch memory each on its worker threads, freed after).
    hs = [x for x in timeline if x["phase"] == "hold"]
    hold = dict(nproc=max(x["nproc"] for x in hs), rss_mb=statistics.median([x["rss_mb"] for x in hs]),
                pss_mb=statistics.median([x["pss_mb"] for x in hs])) if hs else None
    out = dict(kind="idle", server=a.server, label=a.label, run=a.run, n=a.n, logged_in=logged_in,
               failed=failed, alive_after_hold=n_alive, errors=errs, all_logged_in_after_s=t_all,
               server_cpu_login_s=s_login,
               login_s_p50=lat[len(lat) // 2] if lat else None, login_s_p99=lat[int(len(lat) * 0.99)] if lat else None,
               login_s_max=lat[-1] if lat else None,
               baseline=dict(nproc=base[0], rss_mb=base[1] / 2**20, pss_mb=base[2] / 2**20, procs=base_comm),
               peak=dict(nproc=peak[0], rss_mb=peak[1] / 2**20, pss_mb=peak[2] / 2**20, procs=peak_comm),
               hold=hold,
               probe_s=probe_lat, hold_s=a.hold, timeline=timeline)
    if logged_in and hold:
        out["pss_kb_per_session"] = (hold["pss_mb"] * 2**20 - base[2]) / 1024 / logged_in
        out["rss_kb_per_session"] = (hold["rss_mb"] * 2**20 - base[1]) / 1024 / logged_in
    pl = [x for x in (probe_lat or []) if x is not None]
    hold = hold or dict(nproc=0, rss_mb=0, pss_mb=0)
    print("RESULT %s idle: %d/%d logged in (failed %d) in %.1f s, alive after %.0f s hold: %d; baseline %d procs "
          "rss %.1f MB pss %.1f MB; held %d procs rss %.1f MB pss %.1f MB; peak rss %.1f MB pss %.1f MB;"
          " per session pss %.1f KB rss %.1f KB;"
          " login p50 %.3f s max %.3f s; probe median %s s; server CPU for the logins %.1f s" % (
              a.server, logged_in, a.n, failed, t_all, a.hold, n_alive, base[0], base[1] / 2**20, base[2] / 2**20,
              hold["nproc"], hold["rss_mb"], hold["pss_mb"], peak[1] / 2**20, peak[2] / 2**20,
              out.get("pss_kb_per_session", 0),
              out.get("rss_kb_per_session", 0), out["login_s_p50"] or 0, out["login_s_max"] or 0,
              "%.3f" % statistics.median(pl) if pl else "-", s_login), flush=True)
    if errs:
        print("errors:", errs, flush=True)
    print("peak process mix:", peak_comm, flush=True)
    append_json(a.jsonl, out)
    return 0 if logged_in == a.n and n_alive == a.n else 1


# ---------------------------------------------------------------- report
def fmt_num(x, nd=0):
    if x is None:
        return "–"
    return ("{:,.%df}" % nd).format(x)


def summarize(vals, nd=0):
    """median (min–max) over runs."""
    v = [x for x in vals if x is not None]
    if not v:
        return "–", None
    m = statistics.median(v)
    if len(v) == 1:
        return fmt_num(m, nd), m
    return "%s (%s–%s)" % (fmt_num(m, nd), fmt_num(min(v), nd), fmt_num(max(v), nd)), m


def ratio(t, d):
    if t is None or d is None or d == 0:
        return None
    return t / d


def fmt_ratio(r):
    return "–" if r is None else "%.2f×" % r


def cmd_report(a):
    recs = []
    if os.path.exists(a.jsonl):
        with open(a.jsonl) as fh:
            recs = [json.loads(ln) for ln in fh if ln.strip()]
    meta = {}
    if a.meta and os.path.exists(a.meta):
        with open(a.meta) as fh:
            meta = json.load(fh)
    L = []
    L.append("# POP3: tegami vs Dovecot (issue #4)")
    L.append("")
    for k in ("date", "host", "tegami", "dovecot", "mode", "client", "mailboxes", "notes"):
        if k in meta:
            L.append("- **%s**: %s" % (k, meta[k]))
    L.append("")
    labels = []
    for r in recs:
        if r["kind"] == "retr" and r["label"] not in labels:
            labels.append(r["label"])
    by = lambda kind, lab, srv: [r for r in recs if r["kind"] == kind and r["label"] == lab and r["server"] == srv]  # noqa: E731
    L.append("## Retrieval (LOGIN + UIDL + RETR every message + QUIT)")
    L.append("")
    L.append("Median (min–max) over runs. msgs/s = messages / wall time from the release of the clients to the "
             "last +OK after QUIT. Server CPU covers the whole process tree (tegamid: one process; Dovecot: "
             "master and every child, exited ones included). \"other CPU\" is the machine's busy CPU not "
             "spent by the server or the clients during the row (contention from other work), in % of "
             "all cores.")
    L.append("")
    L.append("| row | metric | tegami | Dovecot | tegami/Dovecot | better |")
    L.append("|---|---|---|---|---|---|")
    targets = []
    notes = []
    for lab in labels:
        T, D = by("retr", lab, "tegami"), by("retr", lab, "dovecot")
        metrics = [
            ("msgs/s", "msgs_per_s", 0, "higher"),
            ("wall time, s", "wall_s", 2, "lower"),
            ("server CPU µs/msg, whole session", "server_cpu_us_per_msg", 0, "lower"),
            ("server CPU µs/msg, RETR phase only", "server_cpu_retr_us_per_msg", 0, "lower"),
            ("server CPU for login + UIDL, ms", "server_cpu_open_s", 0, "lower"),
            ("server CPU for QUIT, ms", "server_cpu_quit_s", 0, "lower"),
            ("login (connect…PASS +OK) median, ms", "login_s_med", 1, "lower"),
            ("UIDL median, ms", "uidl_s_med", 1, "lower"),
            ("login + UIDL median, ms", "open_s_med", 1, "lower"),
            ("QUIT median, ms", "quit_s_med", 1, "lower"),
            ("client session max, s", "total_s_max", 2, "lower"),
            ("main thread busy, % of the row's time (tegamid: its event loop)", "main_thread_busy_pct", 0, "–"),
            ("client CPU, s", "client_cpu_s", 2, "–"),
            ("other CPU, %", "other_cpu_pct", 0, "–"),
        ]
        for name, key, nd, better in metrics:
            scale = 1000.0 if key in ("login_s_med", "uidl_s_med", "quit_s_med", "open_s_med",
                                      "server_cpu_open_s", "server_cpu_quit_s") else 1.0
            if not any(r.get(key) is not None for r in T + D):
                continue
            ts, tm = summarize([r.get(key) * scale if r.get(key) is not None else None for r in T], nd)
            ds, dm = summarize([r.get(key) * scale if r.get(key) is not None else None for r in D], nd)
            rr = ratio(tm, dm) if better != "–" else None
            L.append("| %s | %s | %s | %s | %s | %s |" % (lab, name, ts, ds, fmt_ratio(rr), better))
            if key == "msgs_per_s":
                targets.append((lab, "throughput (msgs/s)", rr))
            if key == "server_cpu_us_per_msg" and tm and dm:
                targets.append((lab, "capacity (Dovecot CPU/msg ÷ tegami CPU/msg)", dm / tm))
        errs = sum(r.get("n_errors", 0) for r in T + D)
        bad = [r["server"] for r in T + D if r.get("expected_ok") is False]
        if errs or bad:
            notes.append("%s: %d client errors%s" % (lab, errs, ", content mismatch on " + ", ".join(bad) if bad else ""))
        sh = {s for r in T + D for s in r.get("uidl_sha1", [])}
        if T and D and len({tuple(r.get("uidl_sha1", [])) for r in T + D}) > 1:
            notes.append("%s: the UIDL sets differ between servers or runs (%d distinct)" % (lab, len(sh)))
    L.append("")
    idle = {s: [r for r in recs if r["kind"] == "idle" and r["server"] == s] for s in ("tegami", "dovecot")}
    if idle["tegami"] or idle["dovecot"]:
        n = max([r["n"] for r in idle["tegami"] + idle["dovecot"]])
        L.append("## %s idle POP3 sessions after login (each on its own empty Maildir)" % fmt_num(n))
        L.append("")
        L.append("Memory: summed over the server's process tree (RSS counts shared pages once per "
                 "process; PSS shares them out), median of the samples taken while every session is "
                 "logged in and idle. Per session = (held − baseline before the test) / sessions logged "
                 "in. The peak of the whole test also covers the login phase. Probe: connect + "
                 "USER/PASS + STAT + QUIT on one more mailbox while they are held.")
        L.append("")
        L.append("| metric | tegami | Dovecot | tegami/Dovecot | better |")
        L.append("|---|---|---|---|---|")
        rows = [
            ("sessions logged in (+OK to PASS)", lambda r: r["logged_in"], 0, "higher"),
            ("alive after the hold (NOOP +OK)", lambda r: r["alive_after_hold"], 0, "higher"),
            ("time until all logged in, s", lambda r: r["all_logged_in_after_s"], 1, "lower"),
            ("login p50, ms", lambda r: (r["login_s_p50"] or 0) * 1000, 1, "lower"),
            ("login max, ms", lambda r: (r["login_s_max"] or 0) * 1000, 0, "lower"),
            ("server CPU for the logins, s", lambda r: r["server_cpu_login_s"], 1, "lower"),
            ("processes while held", lambda r: (r.get("hold") or r["peak"])["nproc"], 0, "lower"),
            ("RSS while held, MB", lambda r: (r.get("hold") or r["peak"])["rss_mb"], 1, "lower"),
            ("PSS while held, MB", lambda r: (r.get("hold") or r["peak"])["pss_mb"], 1, "lower"),
            ("PSS peak of the whole test (logins included), MB", lambda r: r["peak"]["pss_mb"], 1, "lower"),
            ("baseline PSS before the test, MB", lambda r: r["baseline"]["pss_mb"], 1, "lower"),
            ("PSS per session, KB", lambda r: r.get("pss_kb_per_session"), 1, "lower"),
            ("RSS per session, KB", lambda r: r.get("rss_kb_per_session"), 1, "lower"),
            ("probe median, ms", lambda r: statistics.median([x for x in (r.get("probe_s") or []) if x is not None]) * 1000
             if [x for x in (r.get("probe_s") or []) if x is not None] else None, 1, "lower"),
        ]
        for name, f, nd, better in rows:
            ts, tm = summarize([f(r) for r in idle["tegami"]], nd)
            ds, dm = summarize([f(r) for r in idle["dovecot"]], nd)
            L.append("| %s | %s | %s | %s | %s |" % (name, ts, ds, fmt_ratio(ratio(tm, dm)), better))
        for s in ("tegami", "dovecot"):
            for r in idle[s]:
                if r.get("errors"):
                    notes.append("idle %s: errors %s" % (s, r["errors"]))
                if r["peak"].get("procs") and s == "dovecot":
                    top = sorted(r["peak"]["procs"].items(), key=lambda kv: -kv[1])[:6]
                    notes.append("Dovecot processes at peak: " + ", ".join("%s %d" % kv for kv in top))
        L.append("")
    L.append("## Targets (issue #4)")
    L.append("")
    for lab, what, rr in targets:
        if rr is None:
            L.append("- %s, %s: not measured" % (lab, what))
        else:
            L.append("- %s, %s: **%.2f×** Dovecot — target ≥ 1.5×: %s" % (lab, what, rr, "met" if rr >= 1.5 else "**not met**"))
    ti = idle["tegami"]
    if ti:
        ok = all(r["logged_in"] == r["n"] and r["alive_after_hold"] == r["n"] for r in ti)
        worst = min(ti, key=lambda r: r["alive_after_hold"])
        L.append("- %s concurrent idle POP3 sessions held by tegamid: %s (%s logged in, %s alive after %.0f s)" % (
            fmt_num(worst["n"]), "met" if ok and worst["n"] >= 5000 else "**not met**", fmt_num(worst["logged_in"]),
            fmt_num(worst["alive_after_hold"]), worst["hold_s"]))
    else:
        L.append("- 5,000 concurrent idle POP3 sessions: not measured")
    L.append("")
    notes = list(dict.fromkeys(notes))
    if notes or meta.get("caveats"):
        L.append("## Notes")
        L.append("")
        for n_ in notes:
            L.append("- " + n_)
        for c in meta.get("caveats", []):
            L.append("- " + c)
        L.append("")
    text = "\n".join(L)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
    print(text)


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)

    g = sp.add_parser("gen")
    g.add_argument("--dir", required=True)
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--size", type=int, default=4096)
    g.add_argument("--owner")

    r = sp.add_parser("reset")
    r.add_argument("--owner")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("pairs", nargs="+", metavar="MAILDIR=TEMPLATE")

    e = sp.add_parser("empty")
    e.add_argument("--owner")
    e.add_argument("--root", required=True)
    e.add_argument("--users", required=True)
    e.add_argument("--first", type=int, default=1)
    e.add_argument("--n", type=int, required=True)

    def client_args(p):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--users", required=True, help="printf format, e.g. user%%d@example.test")
        p.add_argument("--first", type=int, default=1)
        p.add_argument("--pass", dest="password", default="bench-pass")
        p.add_argument("--op-timeout", type=float, default=60.0, help="socket timeout per operation")
        p.add_argument("--server", default="?")
        p.add_argument("--label", default="")
        p.add_argument("--run", type=int, default=1)
        p.add_argument("--pid", type=int, help="server root pid (tegamid, or Dovecot's master)")
        p.add_argument("--jsonl")

    lg = sp.add_parser("login")
    client_args(lg)
    lg.add_argument("--n", type=int, required=True)
    lg.add_argument("--parallel", type=int, default=10)
    lg.add_argument("--timeout", type=float, default=120.0)

    rt = sp.add_parser("retr")
    client_args(rt)
    rt.add_argument("--clients", type=int, default=1)
    rt.add_argument("--expect-msgs", type=int, default=0, help="messages per mailbox")
    rt.add_argument("--expect-octets", type=int, default=0, help="RETR octets per mailbox")
    rt.add_argument("--timeout", type=float, default=300.0, help="whole run")

    idl = sp.add_parser("idle")
    client_args(idl)
    idl.add_argument("--n", type=int, default=5000)
    idl.add_argument("--procs", type=int, default=10, help="client processes holding the sessions")
    idl.add_argument("--threads", type=int, default=10, help="login threads per client process")
    idl.add_argument("--parallel", type=int, default=50, help="logins in flight, all processes together")
    idl.add_argument("--hold", type=float, default=15.0)
    idl.add_argument("--sample", type=float, default=2.0)
    idl.add_argument("--login-timeout", type=float, default=300.0)
    idl.add_argument("--probe-user")

    rp = sp.add_parser("report")
    rp.add_argument("--jsonl", required=True)
    rp.add_argument("--meta")
    rp.add_argument("--out")

    a = ap.parse_args()
    if a.cmd in ("retr", "idle") and not a.pid:
        ap.error("--pid is required")
    rc = {"gen": cmd_gen, "reset": cmd_reset, "empty": cmd_empty, "login": cmd_login, "retr": cmd_retr,
          "idle": cmd_idle, "report": cmd_report}[a.cmd](a)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
