#!/usr/bin/python3
"""bench/report.py - turn the raw results of one bench/run.sh run into Markdown.

Reads RESULTS_DIR/meta.json (machine, versions, settings of the run),
RESULTS_DIR/throughput.jsonl (one line per smtp_bench.py run) and
RESULTS_DIR/idle.jsonl (one line per idle_conns.py run), and prints:

  * throughput: accepted msg/s and landed-in-Maildir msg/s per message size and
    session count, tegami and Postfix side by side, ratio tegami/Postfix
    (median over the runs; "(min–max)" when there were several), server CPU
    ms per message;
  * idle sessions: sessions that got a banner, RSS and PSS of the server
    (tegamid's one process; Postfix's master and all its children, summed) at
    the peak, ratio tegami/Postfix;
  * the two targets of issue #2 and whether this run met them.

  report.py RESULTS_DIR [--out FILE]
"""
import argparse
import json
import os
import statistics
import sys

SERVERS = ("tegami", "postfix")


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def cell(vals, fmt="%.0f"):
    """median, and (min–max) when there are several values"""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    s = fmt % statistics.median(vals)
    if len(vals) > 1:
        s += " (" + fmt % min(vals) + "–" + fmt % max(vals) + ")"
    return s


def ratio(a, b):
    """a/b as "1.23×"; small ratios with two significant digits and as 1/N"""
    if a is None or b is None or a <= 0 or b <= 0:
        return "–"
    r = a / b
    if r >= 0.1:
        return "%.2f×" % r
    return "{:.2g}× (1/{:,.0f})".format(r, 1 / r)


def size_name(n):
    return "%d KB" % (n // 1024) if n % 1024 == 0 else "%d B" % n


def throughput_table(rows, out):
    keys = sorted({(r["size"], r["conc"]) for r in rows})
    out.append("| size | sessions | N × runs | accepted msg/s tegami | accepted msg/s Postfix | ratio "
               "| landed msg/s tegami | landed msg/s Postfix | ratio | CPU ms/msg tegami / Postfix | notes |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, conc in keys:
        by = {s: [r for r in rows if r["server"] == s and r["size"] == size and r["conc"] == conc] for s in SERVERS}
        n = next(len(v) for v in by.values() if v) if any(by.values()) else 0
        count = next((v[0]["count"] for v in by.values() if v), 0)
        acc = {s: [r["accept_rate"] for r in by[s]] for s in SERVERS}
        land = {s: [r["landed_rate"] for r in by[s]] for s in SERVERS}
        cpu = {s: med([r["srv_ms_per_msg"] for r in by[s]]) for s in SERVERS}
        notes = []
        for s in SERVERS:
            bad = [r for r in by[s] if r["accept_rate"] is None or r["landed_rate"] is None]
            if bad:
                r = bad[0]
                why = ("load generator rc=%d" % r["rc"]) if r["rc"] else ("timeout" if r["killed"] else "")
                notes.append("%s: %d run(s) failed (%s%s/%s landed)" % (
                    s, len(bad), why + ", " if why else "", r["delivered"], r["count"]))
            fg = max((r["foreign_cpu_s"] / r["box_cpu_s"] for r in by[s]
                      if r.get("foreign_cpu_s") is not None and r.get("box_cpu_s")), default=0)
            if fg > 0.2:
                notes.append("%s: up to %.0f %% of CPU went to other processes" % (s, 100 * fg))
            lo = sum(r["listen_overflows"] or 0 for r in by[s])
            if lo:
                notes.append("%s: %d listen overflows" % (s, lo))
        out.append("| %s | %d | %d × %d | %s | %s | %s | %s | %s | %s | %s / %s | %s |" % (
            size_name(size), conc, count, n, cell(acc["tegami"]), cell(acc["postfix"]),
            ratio(med(acc["tegami"]), med(acc["postfix"])),
            cell(land["tegami"]), cell(land["postfix"]), ratio(med(land["tegami"]), med(land["postfix"])),
            "%.2f" % cpu["tegami"] if cpu["tegami"] is not None else "–",
            "%.2f" % cpu["postfix"] if cpu["postfix"] is not None else "–",
            "; ".join(notes)))


def idle_table(rows, out):
    ns = sorted({r["n"] for r in rows})
    out.append("| idle sessions | served tegami | served Postfix | RSS tegami | RSS Postfix (sum) | ratio RSS "
               "| PSS tegami | PSS Postfix (sum) | ratio PSS | PSS per session tegami / Postfix "
               "| processes tegami / Postfix |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in ns:
        r = {s: next((x for x in rows if x["label"] == s and x["n"] == n), None) for s in SERVERS}
        get = lambda s, k: r[s]["peak"][k] if r[s] else None
        served = lambda s: "{:,}".format(r[s]["final"]["banner"]) if r[s] else "–"
        mb = lambda v: "{:,.1f} MB".format(v) if v is not None else "–"
        procs = lambda s: str(r[s]["peak"]["nproc"]) if r[s] else "–"
        per = lambda s: "{:,.1f} KB".format(r[s]["pss_kb_per_conn"]) if r[s] and "pss_kb_per_conn" in r[s] else "–"
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |" % (
            "{:,}".format(n), served("tegami"), served("postfix"),
            mb(get("tegami", "rss_mb")), mb(get("postfix", "rss_mb")),
            ratio(get("tegami", "rss_mb"), get("postfix", "rss_mb")),
            mb(get("tegami", "pss_mb")), mb(get("postfix", "pss_mb")),
            ratio(get("tegami", "pss_mb"), get("postfix", "pss_mb")),
            per("tegami"), per("postfix"), procs("tegami"), procs("postfix")))


def targets(tp, idle, out):
    sel = lambda s: [r["landed_rate"] for r in tp if r["server"] == s and r["size"] == 4096 and r["conc"] == 50]
    t, p = med(sel("tegami")), med(sel("postfix"))
    if t is not None and p:
        verdict = "met" if t / p >= 2 else "NOT met"
        out.append("- 50 sessions × 4 KB, landed in Maildir: tegami %.0f msg/s, Postfix %.0f msg/s, "
                   "ratio **%.2f×** (target ≥ 2×): **%s**" % (t, p, t / p, verdict))
    else:
        out.append("- 50 sessions × 4 KB, landed in Maildir: not measured for both servers")
    r = next((x for x in idle if x["label"] == "tegami" and x["n"] == 10000), None)
    if r:
        ok = r["final"]["banner"] >= 10000 and r["peak"]["rss_mb"] <= 150
        out.append("- 10,000 idle sessions: tegami served {:,}, RSS **{:.1f} MB** (PSS {:.1f} MB) "
                   "(target: all 10,000 in ≤ 150 MB): **{}**".format(
                       r["final"]["banner"], r["peak"]["rss_mb"], r["peak"]["pss_mb"], "met" if ok else "NOT met"))
    else:
        out.append("- 10,000 idle sessions: not measured for tegami")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--out")
    a = ap.parse_args()
    meta = {}
    if os.path.exists(os.path.join(a.dir, "meta.json")):
        with open(os.path.join(a.dir, "meta.json")) as f:
            meta = json.load(f)
    tp = load_jsonl(os.path.join(a.dir, "throughput.jsonl"))
    idle = load_jsonl(os.path.join(a.dir, "idle.jsonl"))
    out = ["# tegami vs Postfix: SMTP benchmark (bench/run.sh%s)" % (" --full" if meta.get("mode") == "full" else ""), ""]
    for k in ("date", "machine", "filesystem", "tegami", "postfix", "load generator", "postfix settings",
              "tegami settings", "note"):
        if meta.get(k):
            out.append("- %s: %s" % (k, meta[k]))
    out += ["", "## Throughput (one message per connection, one recipient, landed = file in Maildir new/)", ""]
    if tp:
        throughput_table(tp, out)
        share = lambda k: [r[k] / r["box_cpu_s"] for r in tp if r.get(k) is not None and r.get("box_cpu_s")]
        fg, kt = share("foreign_cpu_s"), share("kthread_cpu_s")
        if fg:
            out += ["", "CPU ms/msg covers the server's whole process tree. Of the machine's busy CPU during the "
                    "runs, other processes (not the server, not the load generator) used a median of %.0f %% "
                    "(max %.0f %%) and kernel threads %.0f %% (max %.0f %%)%s." % (
                        100 * statistics.median(fg), 100 * max(fg), 100 * statistics.median(kt), 100 * max(kt),
                        "; the machine was shared, so the absolute rates are low and noisy, and the CPU "
                        "per message and the ratios from alternating runs are the better guide"
                        if statistics.median(fg) > 0.1 else "")]
    else:
        out.append("(not measured)")
    out += ["", "## Idle SMTP sessions (connected, banner received, nothing sent; memory at the peak)", ""]
    if idle:
        idle_table(idle, out)
        out += ["", "\"served\" counts the clients that got a 220 banner. Postfix forks one smtpd per session "
                "and serves at most default_process_limit of them (%s in this test), so at 10,000 the ratio "
                "compares tegami holding every session with Postfix holding only those; PSS per session is "
                "(peak - baseline) / served." % meta.get("postfix idle process limit", "?")]
    else:
        out.append("(not measured)")
    out += ["", "## Targets (issue #2)", ""]
    targets(tp, idle, out)
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
