"""Process-tree accounting shared by the benchmark scripts: which pids belong
to a server (a daemon and all its children), their memory (RSS from statm,
PSS from smaps_rollup) and how many of each program run. Linux /proc only."""
import os

PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_pids(root):
    """root and every descendant of it, from the ppid fields of /proc/*/stat."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def mem_of(pids):
    """(processes read, RSS bytes, PSS bytes) summed over pids."""
    rss = pss = n = 0
    for p in pids:
        try:
            with open("/proc/%d/statm" % p) as f:
                rss += int(f.read().split()[1]) * PAGE
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
            n += 1
        except OSError:
            pass
    return n, rss, pss


def comm_counts(pids):
    """{program name: how many of pids run it}."""
    c = {}
    for p in pids:
        try:
            with open("/proc/%d/comm" % p) as f:
                k = f.read().strip()
            c[k] = c.get(k, 0) + 1
        except OSError:
            pass
    return c
