#!/usr/bin/python3
"""bench/queue_load.py - tegamid's start-up with a large queue (issue #8
"Performance": 100,000 queued messages loaded in under 5 s and under 200 MB
RSS).  queue_load.sh runs it.

  queue_load.py clone --template FILE --dir QUEUE_DIR --n N
      N copies of one queue file that tegamid itself wrote (version 2: the
      envelope, the body, a "deferred" state record), each under a new queue
      id (the "I" line is the only change); no fsync per file, one sync(1)
      at the end.  About 20 s for 100,000 files of 4 KB.
  queue_load.py measure --tegamid PATH --data DIR --log FILE [--json-append F]
      starts tegamid on DIR and measures: seconds from exec until its log
      says event=recovery_done (every queue file read and its message in
      memory, a timer armed for its next try), the CPU tegamid used until
      then, its RSS then, its peak RSS (VmHWM) then, and its RSS 3 s later;
      also when it logged event=started (the queue directory scanned and
      every file handed to the workers; the listeners are bound before).  Then SIGTERM, and how
      long it took to exit.
  queue_load.py report RESULTS_DIR [--out FILE]
      queue_load.jsonl + meta.json -> Markdown.

Contacts nothing: tegamid only listens on loopback and its queued mail waits
for a next try a day away.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

QID_RE = re.compile(rb"^I ([0-9A-F]{20})\n", re.M)


def cmd_clone(a):
    with open(a.template, "rb") as f:
        tpl = f.read()
    if not tpl.startswith(b"tegami-queue 2\n"):
        sys.exit("%s is not a version 2 queue file" % a.template)
    m = QID_RE.search(tpl)
    if m is None:
        sys.exit("%s has no queue id line" % a.template)
    if b"\ns 0 Q " not in tpl:
        sys.exit("%s has no deferred state record" % a.template)
    head, tail = tpl[:m.start(1)], tpl[m.end(1):]
    os.makedirs(a.dir, exist_ok=True)
    # queue ids: 20 upper-case hex digits, as tegamid makes them; a fixed
    # prefix and a counter, so they are unique and cannot collide with its own
    base = int(time.time()) & 0xFFFFFFFFF
    t0 = time.monotonic()
    for i in range(a.n):
        qid = b"%09X%011X" % (base, 0xB0000000000 + i)
        fd = os.open(os.path.join(a.dir, qid.decode()), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, head + qid + tail)
        finally:
            os.close(fd)
    if a.owner:
        uid, gid = (int(x) for x in a.owner.split(":"))
        for name in os.listdir(a.dir):
            os.chown(os.path.join(a.dir, name), uid, gid)
    subprocess.run(["sync"], check=True)
    print(json.dumps(dict(files=a.n, bytes_each=len(tpl), seconds=time.monotonic() - t0)))
    return 0


def status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        v = s[s.rindex(")") + 2:].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def log_events(path, pos):
    """New complete lines of the log from pos: (lines, new pos)."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except OSError:
        return [], pos
    end = data.rfind(b"\n")
    if end < 0:
        return [], pos
    return data[:end].split(b"\n"), pos + end + 1


def cmd_measure(a):
    queued = sum(1 for n in os.listdir(os.path.join(a.data, "queue")) if len(n) == 20)
    if a.drop_caches:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    pos = os.path.getsize(a.log) if os.path.exists(a.log) else 0
    logf = open(a.log, "ab")
    load0 = open("/proc/loadavg").read().split()[0]
    t0 = time.perf_counter()
    p = subprocess.Popen([a.tegamid, "-D", a.data], stdout=logf, stderr=logf)
    r = dict(queued=queued, cold=a.drop_caches, loadavg_start=float(load0), run=a.run)
    t_start = t_done = None
    loaded = unusable = None
    peak = 0
    deadline = t0 + a.timeout
    while time.perf_counter() < deadline and p.poll() is None:
        lines, pos = log_events(a.log, pos)
        now = time.perf_counter()
        for line in lines:
            if t_start is None and b"event=started" in line:
                t_start = now - t0
            if b"event=recovery_done" in line:
                t_done = now - t0
                m = re.search(rb"loaded=(\d+) unusable=(\d+)", line)
                if m:
                    loaded, unusable = int(m.group(1)), int(m.group(2))
        peak = max(peak, status_kb(p.pid, "VmRSS") or 0)
        if t_done is not None:
            break
        time.sleep(0.01)
    if t_done is not None:
        r.update(done_s=t_done, started_s=t_start, loaded=loaded, unusable=unusable,
                 cpu_s=cpu_s(p.pid), rss_mb=(status_kb(p.pid, "VmRSS") or 0) / 1024,
                 hwm_mb=(status_kb(p.pid, "VmHWM") or 0) / 1024)
        time.sleep(3)
        r.update(rss_after_mb=(status_kb(p.pid, "VmRSS") or 0) / 1024, cpu_after_s=cpu_s(p.pid))
    else:
        r.update(done_s=None, started_s=t_start, error="no event=recovery_done within %.0f s%s" % (
            a.timeout, "" if p.poll() is None else " (tegamid exited %s)" % p.returncode))
    r["peak_sampled_mb"] = peak / 1024
    t1 = time.perf_counter()
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    r["stop_s"] = time.perf_counter() - t1
    r["exit"] = p.returncode
    logf.close()
    r["time"] = time.time()
    if a.json_append:
        with open(a.json_append, "a") as f:
            f.write(json.dumps(r) + "\n")
    fmt = lambda v, f: f % v if v is not None else "-"
    print("queue load: %d files%s: recovery_done after %s s (event=started after %s s), CPU %s s, RSS %s MB "
          "(peak %s MB, 3 s later %s MB), stop %.1f s" % (
              queued, " (cold cache)" if a.drop_caches else "", fmt(r.get("done_s"), "%.2f"),
              fmt(r.get("started_s"), "%.2f"), fmt(r.get("cpu_s"), "%.2f"), fmt(r.get("rss_mb"), "%.1f"),
              fmt(r.get("hwm_mb"), "%.1f"), fmt(r.get("rss_after_mb"), "%.1f"), r["stop_s"]), flush=True)
    return 0 if r.get("done_s") is not None and r.get("loaded") == queued else 1


TARGET_S, TARGET_MB = 5.0, 200.0


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def cell(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    s = fmt % statistics.median(vals)
    if len(vals) > 1:
        s += " (" + fmt % min(vals) + "–" + fmt % max(vals) + ")"
    return s


def cmd_report(a):
    rows = []
    path = os.path.join(a.results, "queue_load.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    meta = {}
    mp = os.path.join(a.results, "meta.json")
    if os.path.exists(mp):
        with open(mp) as f:
            meta = json.load(f)
    out = ["# Queue load at start-up: tegamid with a full queue (issue #8)", ""]
    out += ["- **%s**: %s" % (k, v) for k, v in meta.items() if v]
    out += ["", "| queued messages | page cache | runs | until event=recovery_done | event=started after "
            "| tegamid CPU until then | RSS then | peak RSS (VmHWM) | RSS 3 s later | SIGTERM to exit | loaded |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    verdict = []
    for q, cold in sorted({(r["queued"], r["cold"]) for r in rows}):
        rs = [r for r in rows if r["queued"] == q and r["cold"] == cold]
        ok = [r for r in rs if r.get("done_s") is not None]
        out.append("| {:,} | {} | {} | {} s | {} s | {} s | {} MB | {} MB | {} MB | {} s | {} |".format(
            q, "cold (dropped)" if cold else "warm", len(rs), cell([r.get("done_s") for r in ok], "%.2f"),
            cell([r.get("started_s") for r in ok], "%.2f"), cell([r.get("cpu_s") for r in ok], "%.2f"),
            cell([r.get("rss_mb") for r in ok], "%.1f"), cell([r.get("hwm_mb") for r in ok], "%.1f"),
            cell([r.get("rss_after_mb") for r in ok], "%.1f"), cell([r.get("stop_s") for r in rs], "%.1f"),
            ", ".join(sorted({str(r.get("loaded")) for r in rs}))))
        t, m = med([r.get("done_s") for r in ok]), med([r.get("hwm_mb") for r in ok])
        if t is not None and m is not None:
            good = t < TARGET_S and m < TARGET_MB and len(ok) == len(rs) and all(r.get("loaded") == q for r in ok)
            verdict.append("- {:,} messages, {} cache: loaded in **{:.2f} s**, peak RSS **{:.1f} MB** "
                           "(target < {:.0f} s and < {:.0f} MB): **{}**".format(
                               q, "cold" if cold else "warm", t, m, TARGET_S, TARGET_MB,
                               "met" if good else "NOT met"))
    out += ["", "Medians; (min–max) when there were several runs.", "", "## Target (issue #8)", ""]
    out += verdict or ["- not measured"]
    text = "\n".join(out) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clone")
    c.add_argument("--template", required=True)
    c.add_argument("--dir", required=True)
    c.add_argument("--n", type=int, required=True)
    c.add_argument("--owner", help="UID:GID of the copies (the data directory's owner)")
    m = sub.add_parser("measure")
    m.add_argument("--tegamid", required=True)
    m.add_argument("--data", required=True)
    m.add_argument("--log", required=True)
    m.add_argument("--timeout", type=float, default=120.0)
    m.add_argument("--drop-caches", action="store_true", help="sync and drop the page cache first (root)")
    m.add_argument("--run", type=int, default=1)
    m.add_argument("--json-append")
    r = sub.add_parser("report")
    r.add_argument("results")
    r.add_argument("--out")
    a = ap.parse_args()
    sys.exit({"clone": cmd_clone, "measure": cmd_measure, "report": cmd_report}[a.cmd](a))


if __name__ == "__main__":
    main()
