"""tegamid's log lines under a service manager (D2): when stderr is the
systemd journal (systemd names that stream in $JOURNAL_STREAM) each line
starts with its syslog priority, "<6>level=info ...", which journald reads;
log.target forces stderr, journal or syslog. `tegami status` works the same."""
import os
import re
import time


def journal_stream_of(path):
    st = os.stat(path)
    return "%d:%d" % (st.st_dev, st.st_ino)


def log_lines(t):
    return [line for line in t.log().splitlines() if "level=" in line]


def wait_log(t, needle, since=0, timeout=10):
    """Waits for needle in t's log after its first `since` characters (the
    state file that start() waits for is written just before the log line)."""
    deadline = time.time() + timeout
    while needle not in t.log()[since:]:
        assert time.time() < deadline, "no %r in:\n%s" % (needle, t.log()[since:])
        time.sleep(0.05)


def test_journal_prefix_when_stderr_is_the_journal(tegami_new):
    """systemd names the journal stream it gave as stderr in $JOURNAL_STREAM
    (device:inode); the log file plays that stream here."""
    t = tegami_new
    t.logfile.touch()
    t.start(env={"JOURNAL_STREAM": journal_stream_of(t.logfile)})
    wait_log(t, "<6>level=info event=started ")
    lines = log_lines(t)
    # A warning gets priority 4 (tegamid run as root on a root-owned directory warns).
    if os.geteuid() == 0:
        assert any(line.startswith("<4>level=warn event=running_as_root") for line in lines), lines
    # Every line is prefixed, and carries neither time nor pid: the journal adds them.
    assert all(re.match(r"<[3467]>level=", line) for line in lines), lines


def test_plain_lines_when_stderr_is_elsewhere(tegami_new, tmp_path):
    """$JOURNAL_STREAM inherited by a process whose stderr was redirected
    names another file: the lines stay as they were."""
    other = tmp_path / "other"
    other.touch()
    t = tegami_new.start(env={"JOURNAL_STREAM": journal_stream_of(other)})
    wait_log(t, "event=started")
    lines = log_lines(t)
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z tegamid\[\d+\]: level=", line)
                         for line in lines), lines


def test_log_target_setting(tegami_new):
    t = tegami_new
    t.logfile.touch()
    # stderr: plain lines even on the journal's stream.
    t.start(env={"JOURNAL_STREAM": journal_stream_of(t.logfile)}, log__target="stderr")
    wait_log(t, "event=started")
    assert any(re.search(r"tegamid\[\d+\]: level=info event=started ", line)
               for line in log_lines(t))
    # journal, changed while running: from the reload on, prefixed lines.
    t.set(log__target="journal")
    wait_log(t, "<6>level=info event=reloaded reason=changed")


def test_log_target_syslog(tegami_new):
    """syslog: nothing on stderr once the settings are read (syslog(3) has
    the lines; nothing may listen on /dev/log here); back to auto on a
    reload."""
    t = tegami_new
    t.logfile.touch()
    t.start(env={"JOURNAL_STREAM": journal_stream_of(t.logfile)}, log__target="syslog")
    c = t.raw()  # its connect line is logged before the greeting
    c.cmd("QUIT")
    c.close()
    assert "event=started" not in t.log() and "event=connect" not in t.log(), t.log()
    size = len(t.log())
    t.set(log__target="auto")
    wait_log(t, "<6>level=info event=reloaded reason=changed", since=size)


def test_status_still_works_under_the_journal(tegami_new):
    t = tegami_new
    t.logfile.touch()
    t.start(env={"JOURNAL_STREAM": journal_stream_of(t.logfile)})
    out = t.cli("status").stdout
    assert "tegamid: running (pid %d)" % t.proc.pid in out
    assert "smtp: 127.0.0.1:%d" % t.port in out
