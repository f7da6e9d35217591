#!/usr/bin/python3
"""bench/dnsbl_bench.py - connections per second one SMTP server greets.

Each connection: TCP connect from one of the --src addresses (127.0.0.x, in
turn), read the greeting, send QUIT, read its reply, close. --conc
connections are kept in flight by one process with non-blocking sockets
(selectors), so the client costs little CPU per connection. Before the
clock starts, --warmup connections from every source address fill the
servers' caches (DNSBL answers, Postfix's postscreen cache).

Prints one JSON object: conns, secs, rate (connections/s), greetings by
reply code, errors, client CPU seconds, server CPU seconds (--server-pid:
comma-separated pids whose process trees are summed, reaped children
included) and the greeting latency median / p99 in ms.
Standard library only; contacts nothing but the loopback addresses given."""
import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time


def box_busy():
    """Machine-wide busy CPU seconds so far (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pids):
    """CPU seconds (user+sys) of each pid and its live descendants, plus what
    they reaped (cutime/cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    children = {}
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        ppid = int(rest[1])
        stats[int(d)] = sum(int(x) for x in rest[11:15])
        children.setdefault(ppid, []).append(int(d))
    total = 0
    todo = list(pids)
    while todo:
        p = todo.pop()
        total += stats.get(p, 0)
        todo.extend(children.get(p, []))
    return total / tick


def reply_done(buf):
    """buf holds a whole reply: its last line is "NNN text" (RFC 5321 §4.2;
    postscreen greets with a multi-line 220)."""
    if not buf.endswith(b"\r\n"):
        return False
    last = buf[:-2].rsplit(b"\r\n", 1)[-1]
    return len(last) >= 4 and last[3:4] == b" " or len(last) == 3


class Conn:
    __slots__ = ("sock", "state", "buf", "t0", "code")


def run(args, count, record):
    sel = selectors.DefaultSelector()
    srcs = args.src
    started = done = errors = 0
    codes = {}
    lat = []
    nxt = [0]

    def open_one():
        nonlocal started
        c = Conn()
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.sock.setblocking(False)
        c.sock.bind((srcs[nxt[0] % len(srcs)], 0))
        nxt[0] += 1
        c.state, c.buf, c.code = "connect", b"", 0
        c.t0 = time.monotonic()
        rc = c.sock.connect_ex(("127.0.0.1", args.port))
        if rc not in (0, errno.EINPROGRESS):
            raise OSError(rc, os.strerror(rc))
        sel.register(c.sock, selectors.EVENT_WRITE, c)
        started += 1

    def finish(c, ok):
        nonlocal done, errors
        sel.unregister(c.sock)
        c.sock.close()
        done += 1
        if not ok:
            errors += 1
        if started < count:
            open_one()

    for _ in range(min(args.conc, count)):
        open_one()
    t_start = time.monotonic()
    while done < count:
        events = sel.select(timeout=10)
        if not events:
            raise SystemExit("dnsbl_bench: no progress for 10 s (%d of %d done)" % (done, count))
        for key, mask in events:
            c = key.data
            try:
                if c.state == "connect":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err != 0:
                        finish(c, False)
                        continue
                    c.state = "banner"
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                data = c.sock.recv(4096)
                if not data:
                    # A server that refuses closes after its one line.
                    if c.state == "banner" and c.buf.endswith(b"\r\n"):
                        code = c.buf[:3].decode()
                        codes[code] = codes.get(code, 0) + 1
                        finish(c, code.startswith("5"))
                    else:
                        finish(c, c.state == "bye")
                    continue
                c.buf += data
                if c.state == "banner" and reply_done(c.buf):
                    code = c.buf[:3].decode()
                    if record:
                        lat.append(time.monotonic() - c.t0)
                    codes[code] = codes.get(code, 0) + 1
                    if code != "220":
                        finish(c, False)
                        continue
                    c.state, c.buf = "quit", b""
                    c.sock.send(b"QUIT\r\n")
                elif c.state == "quit" and reply_done(c.buf):
                    c.state = "bye"
                    finish(c, c.buf.startswith(b"221"))
            except OSError:
                finish(c, False)
    secs = time.monotonic() - t_start
    return secs, codes, errors, lat


def probe(port, src):
    """One session from src to RCPT: the replies, for the sanity checks."""
    s = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(src, 0))
    f = s.makefile("rwb")
    out = []

    def reply():
        while True:
            line = f.readline().decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                return None
            if len(line) < 4 or line[3] != "-":
                return line

    greeting = reply()
    out.append(greeting)
    if greeting is not None and greeting.startswith("220"):
        for cmd in ("EHLO probe.test", "MAIL FROM:<probe@probe.test>",
                    "RCPT TO:<user1@example.test>", "QUIT"):
            f.write(cmd.encode() + b"\r\n")
            f.flush()
            out.append(reply())
    s.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", metavar="SRC", help="one session from SRC up to RCPT; print replies")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--src", default="127.0.0.3-10",
                    help="source addresses: 127.0.0.A-B or a comma-separated list")
    ap.add_argument("--conns", type=int, default=20000)
    ap.add_argument("--conc", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--server-pid", default="")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(probe(args.port, args.probe)))
        return
    if "-" in args.src and "," not in args.src:
        base, hi = args.src.rsplit("-", 1)
        prefix, lo = base.rsplit(".", 1)
        args.src = ["%s.%d" % (prefix, i) for i in range(int(lo), int(hi) + 1)]
    else:
        args.src = args.src.split(",")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pids = [int(p) for p in args.server_pid.split(",") if p]
    run(args, max(args.warmup, len(args.src)), False)
    cpu0 = tree_cpu(pids) if pids else 0.0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    box0 = box_busy()
    secs, codes, errors, lat = run(args, args.conns, True)
    box1 = box_busy()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu1 = tree_cpu(pids) if pids else 0.0
    client = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    lat.sort()
    out = {
        "label": args.label, "conns": args.conns, "conc": args.conc, "secs": round(secs, 3),
        "rate": round(args.conns / secs, 1), "codes": codes, "errors": errors,
        "client_cpu_s": round(client, 2),
        "server_cpu_s": round(cpu1 - cpu0, 2),
        # busy CPU of everything else on the machine meanwhile (kernel
        # softirq work for loopback TCP included): other load shows here
        "other_cpu_s": round(max(0.0, (box1 - box0) - client - (cpu1 - cpu0)), 2),
        "lat_ms_p50": round(lat[len(lat) // 2] * 1e3, 3) if lat else None,
        "lat_ms_p99": round(lat[int(len(lat) * 0.99)] * 1e3, 3) if lat else None,
    }
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
