"""Queue and routing administration with a real daemon (MISSION O1, O5, O6,
D2): mail submitted as alice waits in the queue because the receiving server
(aiosmtpd on loopback) answers 451; `tegami queue` lists, shows, holds,
releases, flushes, deletes and bounces it, with tegamid running (control
socket) and stopped (queue files and the queue_holds table); `tegami route`,
`hosts` and `source` change where mail goes and where it leaves from, at
once. Every invalid argument: exit 2 and one line on stderr."""
import email
import email.policy
import json
import os
import re
import time

import pytest

from peers import Handler, Sink, common_port
from test_outbound import (ALICE, MX_REMOTE, net, queue_files, reports, start_dns,  # noqa: F401
                           start_sink, start_tegami, status_groups, submit, wait_for)

BOB = "bob@remote.test"
DEFER = "451 4.7.1 try again later"


def fails(r, code, *needles):
    """Exit status `code`, nothing on stdout, one line "tegami: ..." on
    stderr containing every needle."""
    assert r.returncode == code, "exit %d, expected %d\nstdout: %r\nstderr: %r" % (
        r.returncode, code, r.stdout, r.stderr)
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tegami: "), r.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), "%r not in %r" % (n, lines[0])
    return lines[0]


class Switch:
    """A sink handler that defers every recipient until accept is set."""

    def __init__(self):
        self.accept = False
        self.handler = Handler(rcpt=lambda addr, n: None if self.accept else DEFER)

    @property
    def attempts(self):
        return self.handler.rcpt_calls


def queue_json(t):
    r = t.cli("queue", "list", "--json")
    return json.loads(r.stdout)


def wait_deferred(t, n, timeout=20):
    """Waits until n messages are queued and every one has been tried and
    deferred at least once; returns them (queue list --json)."""
    def check():
        msgs = queue_json(t)
        if len(msgs) == n and all(r["state"] == "deferred" and r["attempts"] >= 1
                                  for m in msgs for r in m["recipients"]):
            return msgs
        return None
    msgs = wait_for(check, timeout)
    assert msgs, "not %d deferred messages: %s\n%s" % (n, queue_json(t), t.log()[-3000:])
    return msgs


def quiet_for(switch, seconds):
    """True when the sink sees no attempt for that long."""
    before = switch.attempts
    time.sleep(seconds)
    return switch.attempts == before


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def start_deferring(tegami_new, net, interval):  # noqa: F811
    """remote.test's MX (127.0.0.2) defers until told to accept; other.test
    has its own MX (127.0.0.3) that defers too; retries every `interval`."""
    dns = start_dns(net, MX_REMOTE + ["--mx-host=other.test,mx.other.test,10",
                                      "--host-record=mx.other.test,127.0.0.3"])
    remote, other = Switch(), Switch()
    start_sink(net, "127.0.0.2", handler=remote.handler)
    start_sink(net, "127.0.0.3", handler=other.handler)
    t = start_tegami(tegami_new, net, dns, **{"queue.retry1_count": "99",
                                              "queue.retry1_interval": str(interval),
                                              "auth.match_return_path": "no"})
    return t, remote, other


@pytest.fixture
def deferring(tegami_new, net):  # noqa: F811
    """Retries every second."""
    return start_deferring(tegami_new, net, 1)


@pytest.fixture
def deferring_long(tegami_new, net):  # noqa: F811
    """Retries every hour: what waits, waits for the admin."""
    return start_deferring(tegami_new, net, 3600)


# --- queue list -----------------------------------------------------------------

def test_list_text_and_json(deferring):
    t, remote, other = deferring
    submit(t, [BOB])
    submit(t, ["carol@remote.test", "dave@other.test"])
    submit(t, [BOB], sender="", body="From: alice@example.test\r\nSubject: null\r\n\r\nx\r\n")
    msgs = wait_deferred(t, 3)

    by_sender = {}
    for m in msgs:
        assert re.fullmatch(r"[0-9A-F]{20}", m["qid"])
        assert m["size"] > 0 and m["age"] >= 0 and m["arrival"] <= time.time()
        assert m["held"] is False
        for r in m["recipients"]:
            assert r["transport"] == "smtp"
            assert r["next_attempt"] >= m["arrival"]
            assert r["last_reply"].startswith(DEFER), r
            assert r["domain_held"] is False
        by_sender.setdefault(m["sender"], []).append(m)
    assert sorted(by_sender) == ["", ALICE]
    assert sorted(r["address"] for m in by_sender[ALICE] for r in m["recipients"]) == \
        ["bob@remote.test", "carol@remote.test", "dave@other.test"]
    assert [m["qid"] for m in msgs] == sorted(m["qid"] for m in msgs)   # by arrival

    out = t.cli("queue", "list").stdout
    lines = out.splitlines()
    assert lines[-1] == "3 messages, 4 recipients waiting", out
    for m in msgs:
        head = [ln for ln in lines if ln.startswith(m["qid"] + " ")]
        assert len(head) == 1, out
        assert re.search(r"  age \d+s  size %d  from <%s>$" % (m["size"], re.escape(m["sender"])),
                         head[0]), head[0]
    rcpt_lines = [ln for ln in lines if ln.startswith("    ")]
    assert len(rcpt_lines) == 4
    for ln in rcpt_lines:
        assert re.match(r"    \S+@\S+  deferred  attempts \d+  next \d{4}-\d\d-\d\dT"
                        r"\d\d:\d\d:\d\dZ \((in \d+s|due)\)  reply: " + DEFER, ln), ln
    assert "from <>" in out


def test_list_empty_and_unreadable_files(tegami_new):
    t = tegami_new
    assert t.cli("queue", "list").stdout == "queue is empty\n"
    assert json.loads(t.cli("queue", "list", "--json").stdout) == []
    qdir = t.dir / "queue"
    (qdir / ("%020X" % 0xBAD1)).write_text("not a queue file\n\n")
    (qdir / ("%020X.tmp" % 0xBAD2)).write_text("being written")
    r = t.cli("queue", "list")
    assert r.stdout == "%020X  unreadable: not a tegami queue file\n" \
        "0 messages, 0 recipients waiting, 1 unreadable file\n" % 0xBAD1
    assert (qdir / ("%020X.tmp" % 0xBAD2)).exists()        # never touched
    assert json.loads(t.cli("queue", "list", "--json").stdout) == \
        [{"qid": "%020X" % 0xBAD1, "error": "not a tegami queue file"}]


# --- queue show ------------------------------------------------------------------

def test_show_envelope_headers_history(deferring):
    t, remote, other = deferring
    body = ("From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: show me\r\n"
            "X-Ctl: a\x1b[31mred\r\n\r\nBODY-LINE-XYZ\r\n")
    submit(t, [BOB], body=body, mail_options=["RET=HDRS", "ENVID=QQ+2B123"],
           rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob@remote.test"])
    (m,) = wait_deferred(t, 1)
    assert wait_for(lambda: remote.attempts >= 2, 15)
    out = t.cli("queue", "show", m["qid"]).stdout
    head, headers, history = out.split("\n\n")
    assert head.startswith("queue id: %s\narrival: " % m["qid"])
    for want in ("sender: <alice@example.test>", "envid: QQ+123", "ret: HDRS", "held: no",
                 "recipient: <bob@remote.test> (smtp)", "  notify: SUCCESS,FAILURE",
                 "  orcpt: rfc822;Bob@remote.test", "  remote mta: mx1.remote.test",
                 "  last reply: " + DEFER):
        assert want in head.splitlines(), (want, head)
    assert re.search(r"^  state: deferred, \d+ attempts?, next ", head, re.M), head
    assert headers.startswith("headers:\n  Received: from ")
    assert "\n  Subject: show me\n" in headers
    assert headers.endswith("\n  X-Ctl: a?[31mred")   # no escape reaches the terminal
    assert "BODY-LINE-XYZ" not in out
    hist = history.splitlines()
    assert hist[0] == "history:"
    assert len(hist) >= 3, history
    for ln in hist[1:]:
        assert re.match(r"  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  <bob@remote.test>  deferred  "
                        r"attempt \d+  next \S+  mta mx1.remote.test  " + DEFER, ln), ln
    assert "attempt 1 " in hist[1] and "attempt 2 " in hist[2]


def test_show_unknown_message(tegami_new):
    t = tegami_new
    fails(t.cli("queue", "show", "0" * 20, check=False), 1, "no message 00000000000000000000")


# --- hold and release --------------------------------------------------------------

def test_hold_stops_retries_and_release_resumes(deferring):
    t, remote, other = deferring
    submit(t, [BOB])
    (m,) = wait_deferred(t, 1)
    r = t.cli("queue", "hold", m["qid"])
    assert r.stdout == "held %s\n" % m["qid"]
    time.sleep(0.5)                      # an attempt already under way ends
    assert quiet_for(remote, 3), "attempts while held"
    (m,) = queue_json(t)
    assert m["held"] is True
    assert re.search(r"^%s .*  held$" % m["qid"], t.cli("queue", "list").stdout, re.M)
    remote.accept = True
    assert t.cli("queue", "release", m["qid"]).stdout == "released %s\n" % m["qid"]
    (got,) = remote.handler.wait(1, timeout=10)
    assert got.rcpt_tos == [BOB]
    assert wait_for(lambda: queue_files(t) == [], 10)
    assert "event=held qid=%s" % m["qid"] in t.log()


def test_domain_hold_and_release(deferring):
    t, remote, other = deferring
    submit(t, [BOB])
    submit(t, ["dave@other.test"])
    wait_deferred(t, 2)
    r = t.cli("queue", "hold", "--domain", "Remote.TEST")
    assert r.stdout == "mail for remote.test held (1 message held)\n"
    time.sleep(0.5)
    # held past the next retry time: no attempt, and no busy loop either
    ticks = cpu_ticks(t.proc.pid)
    assert quiet_for(remote, 3), "attempts for a held domain"
    assert cpu_ticks(t.proc.pid) - ticks < 100, "tegamid spins while a domain is held"
    assert other.attempts > 0 and not quiet_for(other, 4)   # other.test goes on
    msgs = queue_json(t)
    held = {r["address"]: r["domain_held"] for m in msgs for r in m["recipients"]}
    assert held == {BOB: True, "dave@other.test": False}
    out = t.cli("queue", "list").stdout
    assert "held domains: remote.test" in out.splitlines()
    assert re.search(r"^    bob@remote.test  deferred .*  domain held  reply: ", out, re.M)
    fails(t.cli("queue", "release", "--domain", "nothing.test", check=False), 1,
          "not held: nothing.test")
    remote.accept = True
    r = t.cli("queue", "release", "--domain", "remote.test")
    assert r.stdout == "mail for remote.test released (1 message released)\n"
    (got,) = remote.handler.wait(1, timeout=10)
    assert got.rcpt_tos == [BOB]
    assert "held domains" not in t.cli("queue", "list").stdout


# --- flush, delete, bounce -----------------------------------------------------------

def test_flush_sends_at_once(deferring_long):
    t, remote, other = deferring_long
    submit(t, [BOB])
    submit(t, ["dave@other.test"])
    wait_deferred(t, 2)
    remote.accept = other.accept = True
    assert quiet_for(remote, 1.5)                # nothing due for an hour
    r = t.cli("queue", "flush", "--domain", "remote.test")
    assert r.stdout == "1 message started\n"
    remote.handler.wait(1, timeout=5)
    assert other.handler.messages == []
    r = t.cli("queue", "flush")
    assert r.stdout == "1 message started\n"
    other.handler.wait(1, timeout=5)
    assert wait_for(lambda: queue_files(t) == [], 10)
    assert t.cli("queue", "flush").stdout == "0 messages started\n"
    assert t.cli("queue", "etrn").stdout.startswith("queue run started")


def test_flush_of_one_domain_leaves_the_messages_other_recipients(deferring_long):
    """O4, O5 (RFC 1985: ETRN starts the queue of one node): a message for
    two domains, flushed for one, sends only that domain's recipient; the
    other keeps its schedule (before: every deferred recipient of the
    message went out)."""
    t, remote, other = deferring_long
    submit(t, [BOB, "dave@other.test"])
    wait_deferred(t, 1)
    remote.accept = other.accept = True
    before = other.attempts
    r = t.cli("queue", "flush", "--domain", "remote.test")
    assert r.stdout == "1 message started\n"
    (got,) = remote.handler.wait(1, timeout=5)
    assert got.rcpt_tos == [BOB]
    assert quiet_for(other, 1.5) and other.attempts == before
    states = {r["address"]: r["state"] for r in queue_json(t)[0]["recipients"]}
    assert states == {BOB: "delivered", "dave@other.test": "deferred"}, states
    assert t.cli("queue", "flush", "--domain", "other.test").stdout == "1 message started\n"
    other.handler.wait(1, timeout=5)
    assert wait_for(lambda: queue_files(t) == [], 10)


def test_flush_progress_lines(deferring_long):
    """A flush over more than 1,000 messages prints the daemon's progress
    lines as they come, then the final line."""
    t, remote, other = deferring_long
    t.stop()
    qdir = t.dir / "queue"
    now = int(time.time())
    for i in range(1100):
        qid = "%09X%05X%06X" % (now, i, 0xC0FFEE)
        (qdir / qid).write_text(
            "tegami-queue 2\nI %s\nT %d\nS alice@example.test\nB 12\n"
            "R R\tx%d@hold.test\tx%d@hold.test\t0\t\n\nSubject: x\n\n"
            "s 0 Q 1 %d 0 %d\t\t451 4.0.0 later\n" % (qid, now, i, i, now + 3600, now))
    t.cli("queue", "hold", "--domain", "hold.test")       # none of them really goes out
    t.start()
    assert wait_for(lambda: "event=recovery_done loaded=1100" in t.log(), 30), t.log()[-2000:]
    r = t.cli("queue", "flush")
    assert r.stdout.splitlines() == ["flushed 1000/1100 messages", "1100 messages started"]


def test_delete_removes_without_report(deferring):
    t, remote, other = deferring
    submit(t, [BOB])
    (m,) = wait_deferred(t, 1)
    assert t.cli("queue", "delete", m["qid"]).stdout == "deleted %s\n" % m["qid"]
    assert wait_for(lambda: queue_files(t) == [], 5)
    time.sleep(0.5)
    assert quiet_for(remote, 2)
    assert t.messages(ALICE) == {}
    assert t.cli("queue", "list").stdout == "queue is empty\n"
    fails(t.cli("queue", "delete", m["qid"], check=False), 1, "no message %s" % m["qid"])


def test_bounce_returns_a_report(deferring):
    t, remote, other = deferring
    submit(t, [BOB, "carol@remote.test"], subject="bounce me")
    (m,) = wait_deferred(t, 1)
    t.cli("queue", "hold", m["qid"])         # no retry under way while it is bounced
    time.sleep(0.5)
    assert t.cli("queue", "bounce", m["qid"]).stdout == "bounced %s\n" % m["qid"]
    (rep,) = reports(t)
    assert rep.get_content_type() == "multipart/report"
    assert rep.get_param("report-type") == "delivery-status"
    groups = status_groups(rep)
    assert sorted(g["final-recipient"].split(";")[1].strip() for g in groups) == \
        ["bob@remote.test", "carol@remote.test"]
    for g in groups:
        assert g["action"] == "failed"
        assert g["status"].startswith("5.")
        assert "returned to the sender by the mail administrator" in g["diagnostic-code"]
    assert wait_for(lambda: queue_files(t) == [], 10)
    fails(t.cli("queue", "bounce", m["qid"], check=False), 1, "no message")


class Slow:
    """A sink whose DATA takes `seconds`, then answers 451: a delivery
    attempt that is under way when the admin acts."""

    def __init__(self, seconds=3):
        self.in_data = 0

        def data(envelope, n):
            self.in_data += 1
            time.sleep(seconds)
            return "451 4.3.0 slow server"
        self.handler = Handler(data=data)


@pytest.fixture
def slow(tegami_new, net):  # noqa: F811
    dns = start_dns(net, MX_REMOTE)
    sink = Slow()
    start_sink(net, "127.0.0.2", handler=sink.handler)
    t = start_tegami(tegami_new, net, dns, **{"queue.retry1_count": "99",
                                              "queue.retry1_interval": "3600"})
    return t, sink


def test_delete_during_a_delivery_attempt(slow):
    t, sink = slow
    submit(t, [BOB])
    assert wait_for(lambda: sink.in_data == 1, 10)
    (m,) = queue_json(t)
    assert t.cli("queue", "delete", m["qid"]).stdout == "deleted %s\n" % m["qid"]
    fails(t.cli("queue", "delete", m["qid"], check=False), 1, "no message")
    assert wait_for(lambda: queue_files(t) == [], 10), t.log()[-2000:]
    time.sleep(0.5)
    assert "queue_record_failed" not in t.log()
    assert t.messages(ALICE) == {}


def test_bounce_during_a_delivery_attempt(slow):
    """A recipient whose attempt is under way is bounced too, once the
    attempt has ended: one report for the whole message."""
    t, sink = slow
    submit(t, [BOB, "carol@remote.test"])
    assert wait_for(lambda: sink.in_data == 1, 10)
    (m,) = queue_json(t)
    assert t.cli("queue", "bounce", m["qid"]).stdout == "bounced %s\n" % m["qid"]
    (rep,) = reports(t, timeout=15)
    groups = status_groups(rep)
    assert sorted(g["final-recipient"].split(";")[1].strip() for g in groups) == \
        ["bob@remote.test", "carol@remote.test"]
    assert all(g["action"] == "failed" for g in groups)
    assert wait_for(lambda: queue_files(t) == [], 10), t.cli("queue", "list").stdout


# --- tegamid stopped ------------------------------------------------------------------

def test_offline_hold_delete_and_domain_hold(deferring):
    t, remote, other = deferring
    submit(t, [BOB], subject="one")
    submit(t, [BOB], subject="two")
    submit(t, [BOB], subject="three")
    submit(t, ["dave@other.test"], subject="four")
    one, two, three, four = (m["qid"] for m in wait_deferred(t, 4))
    assert t.stop() == 0

    assert len(queue_json(t)) == 4                             # list works stopped
    assert "tegamid is not running" in t.cli("queue", "hold", one).stdout
    assert "tegamid is not running" in t.cli("queue", "delete", two).stdout
    assert not (t.dir / "queue" / two).exists()
    fails(t.cli("queue", "hold", two, check=False), 1, "no message %s" % two)
    fails(t.cli("queue", "delete", two, check=False), 1, "no message %s" % two)
    fails(t.cli("queue", "flush", check=False), 1, "tegamid is not running")
    fails(t.cli("queue", "flush", "--domain", "remote.test", check=False), 1, "not running")
    fails(t.cli("queue", "bounce", three, check=False), 1, "tegamid is not running")
    fails(t.cli("queue", "etrn", check=False), 1, "tegamid is not running")
    r = t.cli("queue", "hold", "--domain", "other.test")
    assert r.stdout == "mail for other.test held (tegamid is not running)\n"
    msgs = {m["qid"]: m for m in queue_json(t)}
    assert sorted(msgs) == sorted([one, three, four])
    assert msgs[one]["held"] and not msgs[three]["held"]
    assert msgs[four]["recipients"][0]["domain_held"]
    assert "held: yes" in t.cli("queue", "show", one).stdout.splitlines()

    remote.accept = other.accept = True
    t.start()
    (got,) = remote.handler.wait(1, timeout=15)                # three only
    assert "Subject: three" in got.text
    time.sleep(2)
    assert len(remote.handler.messages) == 1 and other.handler.messages == []
    assert sorted(queue_files(t)) == sorted([one, four])
    t.cli("queue", "release", one)
    t.cli("queue", "release", "--domain", "other.test")
    remote.handler.wait(2, timeout=10)
    other.handler.wait(1, timeout=10)
    assert wait_for(lambda: queue_files(t) == [], 10)


def test_status_shows_daemon_queue(deferring):
    t, remote, other = deferring
    submit(t, [BOB])
    wait_deferred(t, 1)
    out = t.cli("status").stdout.splitlines()
    assert "queue: 1 message(s)" in out
    assert "tegamid queue: 1 message(s) loaded" in out
    assert any(re.fullmatch(r"outbound connections: \d+", ln) for ln in out), out


# --- routing ------------------------------------------------------------------------

def test_route_sends_domain_to_host_and_port(tegami_new, net):  # noqa: F811
    dns = start_dns(net, [])                 # routed.test has no records at all
    port = common_port(["127.0.0.3"])
    sink = Sink("127.0.0.3", port)
    net["stops"].append(sink.stop)
    t = start_tegami(tegami_new, net, dns)
    r = t.cli("route", "add", "Routed.Test", "127.0.0.3:%d" % port)
    assert r.stdout == "mail for routed.test goes to 127.0.0.3 port %d\n" % port
    assert t.cli("route", "list").stdout == "routed.test\t127.0.0.3:%d\n" % port
    submit(t, ["bob@routed.test"])
    assert sink.wait(1)[0].rcpt_tos == ["bob@routed.test"]
    assert t.cli("route", "del", "routed.test").stdout == "route for routed.test removed\n"
    assert t.cli("route", "list").stdout == ""
    submit(t, ["carol@routed.test"])          # now by DNS: no such domain
    (rep,) = reports(t)
    assert status_groups(rep)[0]["status"] == "5.1.2"
    fails(t.cli("route", "del", "routed.test", check=False), 1, "no route for routed.test")


def test_host_table_overrides_dns(tegami_new, net):  # noqa: F811
    dns = start_dns(net, MX_REMOTE[:1] + ["--host-record=mx1.remote.test,127.0.0.4"])
    by_table = start_sink(net, "127.0.0.2")
    by_dns = start_sink(net, "127.0.0.4")
    t = start_tegami(tegami_new, net, dns)
    r = t.cli("hosts", "add", "MX1.remote.test", "127.0.0.2", "0:0::0:1")
    assert r.stdout == "mx1.remote.test: 2 addresses added to the host table\n"
    assert t.cli("hosts", "list").stdout == "mx1.remote.test\t127.0.0.2\nmx1.remote.test\t::1\n"
    submit(t, [BOB], subject="by table")
    assert "by table" in by_table.wait(1)[0].text
    assert by_dns.messages == []
    t.cli("hosts", "del", "mx1.remote.test", "::1")
    assert t.cli("hosts", "list").stdout == "mx1.remote.test\t127.0.0.2\n"
    t.cli("hosts", "del", "mx1.remote.test")
    assert t.cli("hosts", "list").stdout == ""
    submit(t, [BOB], subject="by dns")
    assert "by dns" in by_dns.wait(1)[0].text
    fails(t.cli("hosts", "del", "mx1.remote.test", check=False), 1, "not in the host table")


def test_source_address_per_sending_domain(tegami_new, net):  # noqa: F811
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2")
    t = start_tegami(tegami_new, net, dns)
    r = t.cli("source", "set", "example.test", "127.0.0.5")
    assert r.stdout == "mail from example.test leaves from 127.0.0.5\n" and r.stderr == ""
    submit(t, [BOB], subject="first")
    (m,) = sink.wait(1)
    assert m.peer[0] == "127.0.0.5"
    t.cli("source", "set", "*", "127.0.0.6")
    assert t.cli("source", "list").stdout == "example.test\t127.0.0.5\n*\t127.0.0.6\n"
    t.cli("source", "del", "example.test")
    submit(t, [BOB], subject="second")
    assert sink.wait(2)[1].peer[0] == "127.0.0.6"
    assert t.cli("source", "del", "*").stdout == "source address for other domains removed\n"
    fails(t.cli("source", "del", "*", check=False), 1, "no source address for *")
    r = t.cli("source", "set", "*", "192.0.2.1")        # accepted, with a warning
    assert "192.0.2.1 is not an address of this host" in r.stderr


# --- validation -----------------------------------------------------------------------

BAD_USAGE = [
    (("queue", "list", "--xml"), "usage: tegami queue list [--json]"),
    (("queue", "list", "--json", "x"), "usage"),
    (("queue", "show"), "usage: tegami queue show QID"),
    (("queue", "show", "0123456789abcdef0123"), "not a queue id"),
    (("queue", "show", "../../tegami.db"), "not a queue id"),
    (("queue", "show", "0" * 21), "not a queue id"),
    (("queue", "hold"), "usage: tegami queue hold QID | --domain DOMAIN"),
    (("queue", "hold", "XYZ"), "not a queue id"),
    (("queue", "hold", "--domain"), "usage"),
    (("queue", "hold", "--domain", "bad..domain"), "not a valid domain"),
    (("queue", "hold", "--domain", "a.test", "b.test"), "usage"),
    (("queue", "hold", "-x", "a.test"), "usage"),
    (("queue", "release", "0" * 19), "not a queue id"),
    (("queue", "release", "--domain", "-bad.test"), "not a valid domain"),
    (("queue", "flush", "now"), "usage: tegami queue flush [--domain DOMAIN]"),
    (("queue", "flush", "--domain"), "usage"),
    (("queue", "flush", "--domain", "x y"), "not a valid domain"),
    (("queue", "etrn", "now"), "usage: tegami queue etrn"),
    (("queue", "delete"), "usage: tegami queue delete QID"),
    (("queue", "delete", "*"), "not a queue id"),
    (("queue", "bounce", "0" * 20, "0" * 20), "usage: tegami queue bounce QID"),
    (("queue", "bounce", "g" * 20), "not a queue id"),
    (("route", "add", "a.test"), "usage: tegami route add DOMAIN HOST[:PORT]"),
    (("route", "add", "bad_domain!", "mx.test"), "not a valid domain"),
    (("route", "add", "127.0.0.1", "mx.test"), "not a valid domain"),
    (("route", "add", "a.test", "mx.test:0"), "bad port"),
    (("route", "add", "a.test", "mx.test:65536"), "bad port"),
    (("route", "add", "a.test", "::1"), "brackets"),
    (("route", "add", "a.test", "[mx.test]:25"), "not an IP address"),
    (("route", "add", "a.test", "bad host"), "not a valid host name"),
    (("route", "add", "a.test", "x" * 400), "HOST[:PORT]"),
    (("route", "del"), "usage: tegami route del DOMAIN"),
    (("route", "del", "a..test"), "not a valid domain"),
    (("route", "list", "x"), "usage: tegami route list"),
    (("hosts", "add", "mx.test"), "usage: tegami hosts add NAME IP [IP...]"),
    (("hosts", "add", "mx.test", "1.2.3"), "not an IPv4 or IPv6 address"),
    (("hosts", "add", "mx.test", "127.0.0.1", "10.0.0.0/8"), "'10.0.0.0/8' is not an IPv4"),
    (("hosts", "add", "mx.test", "[::1]"), "not an IPv4 or IPv6"),
    (("hosts", "add", "mx.test", "fe80::1%eth0"), "not an IPv4 or IPv6"),
    (("hosts", "add", "mx.test", "256.1.1.1"), "not an IPv4 or IPv6"),
    (("hosts", "add", "10.0.0.1", "10.0.0.2"), "not a valid host name"),
    (("hosts", "add", "-mx.test", "10.0.0.2"), "not a valid host name"),
    (("hosts", "del"), "usage: tegami hosts del NAME [IP]"),
    (("hosts", "del", "mx.test", "nope"), "not an IPv4 or IPv6"),
    (("hosts", "list", "mx.test"), "usage: tegami hosts list"),
    (("source", "set", "example.test"), "usage: tegami source set DOMAIN|* IP"),
    (("source", "set", "**", "127.0.0.1"), "not a valid domain name (or '*'"),
    (("source", "set", "example.test", "localhost"), "not an IPv4 or IPv6"),
    (("source", "set", "example.test", "127.0.0.0/8"), "not an IPv4 or IPv6"),
    (("source", "del"), "usage: tegami source del DOMAIN|*"),
    (("source", "del", "a b"), "not a valid domain"),
    (("source", "list", "x"), "usage: tegami source list"),
]


@pytest.mark.parametrize("args,needle", BAD_USAGE, ids=[" ".join(a)[:40] for a, _ in BAD_USAGE])
def test_bad_usage(tegami_new, args, needle):
    fails(tegami_new.cli(*args, check=False), 2, needle)


def test_failures_exit_1(tegami_new):
    t = tegami_new
    qid = "0123456789ABCDEF0123"
    fails(t.cli("queue", "show", qid, check=False), 1, "no message %s in the queue" % qid)
    fails(t.cli("queue", "hold", qid, check=False), 1, "no message")
    fails(t.cli("queue", "release", qid, check=False), 1, "no message")
    fails(t.cli("queue", "delete", qid, check=False), 1, "no message")
    fails(t.cli("queue", "release", "--domain", "a.test", check=False), 1, "not held: a.test")
    fails(t.cli("route", "del", "a.test", check=False), 1, "no route for a.test")
    fails(t.cli("source", "del", "a.test", check=False), 1, "no source address for a.test")
    t.cli("hosts", "add", "mx.test", "10.0.0.1")
    fails(t.cli("hosts", "add", "mx.test", "10.0.0.2", "10.0.0.1", check=False), 1,
          "already in the host table: mx.test 10.0.0.1")
    assert t.cli("hosts", "list").stdout == "mx.test\t10.0.0.1\n"     # all or nothing
    many = ["10.1.0.%d" % i for i in range(16)]
    fails(t.cli("hosts", "add", "mx.test", *many, check=False), 1, "more than 16 addresses")
    # an old-format (version 1) file cannot take a hold record
    (t.dir / "queue" / qid).write_text("tegami-queue 1\nI %s\nT 1\nS a@b.test\n"
                                        "R a@example.test\ta@example.test\n\nx\n" % qid)
    fails(t.cli("queue", "hold", qid, check=False), 1, "old-format")


COMMANDS = ("queue list", "queue show", "queue hold", "queue release", "queue flush",
            "queue etrn", "queue delete", "queue bounce", "route add", "route del", "route list",
            "hosts add", "hosts del", "hosts list", "source set", "source del", "source list")


def test_help_lists_the_commands(tegami_new):
    out = tegami_new.cli("--help").stdout
    for cmd in COMMANDS:
        assert "tegami %s " % cmd in out, cmd
    man = (os.path.join(os.path.dirname(__file__), "..", "..", "docs", "man", "tegami.8"))
    text = open(man).read()
    for cmd in COMMANDS:
        assert '.BI "%s' % cmd in text or '.B %s' % cmd in text or \
            '.BR "%s' % cmd in text, cmd
