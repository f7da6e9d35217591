"""Outbound delivery against real peers on loopback (MISSION O1-O3, S2):
dnsmasq answers MX/A/AAAA, aiosmtpd and a scripted server receive. Mail is
submitted the way a user sends it (submission, STARTTLS, AUTH) and must
arrive at the right server, be retried, or come back as an RFC 3464 report
that Python's email package parses."""
import email
import email.policy
import os
import smtplib
import ssl
import time

import pytest

from conftest import RawSMTP
from peers import Dns, Handler, RawServer, Sink, common_port

ALICE = "alice@example.test"


def client_ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def submit(t, rcpts, body=None, sender=ALICE, mail_options=(), rcpt_options=(),
           subject="outbound test"):
    """Sends one message through the submission port as alice."""
    if body is None:
        body = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nhello\r\n" % (
            sender or ALICE, ", ".join(rcpts), subject)
    with smtplib.SMTP("127.0.0.1", t.submission_port, timeout=15) as s:
        s.starttls(context=client_ctx())
        s.login(ALICE, "secret")
        refused = s.sendmail(sender, rcpts, body, mail_options=list(mail_options),
                             rcpt_options=list(rcpt_options))
    assert refused == {}
    return body


def queue_files(t):
    d = t.dir / "queue"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def wait_for(check, timeout=20, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = check()
        if v:
            return v
        time.sleep(interval)
    return check()


def wait_queue_empty(t, timeout=20):
    assert wait_for(lambda: queue_files(t) == [], timeout), \
        "queue not empty: %s\n%s" % (queue_files(t), t.log()[-3000:])


def reports(t, address=ALICE, n=1, timeout=20):
    """The delivery reports in a local mailbox, parsed."""
    msgs = t.wait_messages(address, n, timeout=timeout)
    return [email.message_from_bytes(b, policy=email.policy.default) for b in msgs.values()]


def status_groups(report):
    """The per-recipient field groups of a message/delivery-status part."""
    for part in report.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            # email returns a list of header blocks: per-message, then per-recipient
            return [dict((k.lower(), str(v)) for k, v in block.items()) for block in payload[1:]]
    raise AssertionError("no message/delivery-status part")


@pytest.fixture
def net(tmp_path):
    """Addresses and a shared port for MX hosts, a resolver, and a started
    tegamid that sends through them."""
    ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    port = common_port(ips + ["127.0.0.1"])
    env = {"ips": ips, "port": port, "tmp": tmp_path, "stops": []}
    yield env
    for stop in reversed(env["stops"]):
        try:
            stop()
        except Exception:
            pass


def start_dns(net, records):
    dns = Dns(records, str(net["tmp"]))
    net["stops"].append(dns.stop)
    return dns


def start_sink(net, ip, **kw):
    sink = Sink(ip, net["port"], tmpdir=str(net["tmp"]), **kw)
    net["stops"].append(sink.stop)
    return sink


def start_tegami(tegami_new, net, dns, **settings):
    tegami_new.add_user(ALICE)
    base = {"dns.servers": dns.server, "relay.port": str(net["port"]),
            "queue.retry1_interval": "1", "queue.retry2_interval": "1",
            "relay.connect_timeout": "5", "relay.command_timeout": "10"}
    base.update(settings)
    tegami_new.start(**base)
    return tegami_new


MX_REMOTE = ["--mx-host=remote.test,mx1.remote.test,10",
             "--host-record=mx1.remote.test,127.0.0.2"]


# --- delivery by MX ---------------------------------------------------------

def test_relay_by_mx_to_aiosmtpd(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2")
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"])
    (m,) = sink.wait(1)
    assert m.mail_from == ALICE
    assert m.rcpt_tos == ["bob@remote.test"]
    text = m.text
    assert "Subject: outbound test" in text
    assert text.startswith("Received: from ")        # our trace header first
    assert "\r\n" in text and "\n\n" not in text.replace("\r\n", "")
    wait_queue_empty(t)
    assert "event=delivered" in t.log() and "transport=smtp" in t.log()


def test_mixed_local_and_remote_recipients(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2")
    t = start_tegami(tegami_new, net, dns)
    t.add_user("bob@example.test")
    submit(t, ["bob@example.test", "carol@remote.test"])
    (m,) = sink.wait(1)
    assert m.rcpt_tos == ["carol@remote.test"]
    t.wait_messages("bob@example.test", 1)
    wait_queue_empty(t)


def test_mx_preference_and_fallback(tegami_new, net):
    # The preferred MX refuses connections; the next one takes the mail.
    dns = start_dns(net, ["--mx-host=remote.test,mx1.remote.test,10",
                          "--mx-host=remote.test,mx2.remote.test,20",
                          "--host-record=mx1.remote.test,127.0.0.3",
                          "--host-record=mx2.remote.test,127.0.0.2"])
    sink = start_sink(net, "127.0.0.2")
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"])
    sink.wait(1)
    wait_queue_empty(t)
    assert "127.0.0.3" in t.log()  # it was tried first


def test_no_mx_falls_back_to_address_record(tegami_new, net):
    dns = start_dns(net, ["--host-record=plain.test,127.0.0.2"])
    sink = start_sink(net, "127.0.0.2")
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@plain.test"])
    assert sink.wait(1)[0].rcpt_tos == ["bob@plain.test"]


def test_several_recipients_one_transaction(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2")
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["a@remote.test", "b@remote.test", "c@remote.test"])
    (m,) = sink.wait(1)
    assert sorted(m.rcpt_tos) == ["a@remote.test", "b@remote.test", "c@remote.test"]


# --- failures and reports -----------------------------------------------------

def test_null_mx_fails_at_once_with_report(tegami_new, net):
    dns = start_dns(net, ["--dns-rr=nullmx.test,15,000000"])
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@nullmx.test"])
    (rep,) = reports(t)
    assert rep["From"].addresses[0].username == "MAILER-DAEMON"
    assert rep.get_content_type() == "multipart/report"
    assert rep.get_param("report-type") == "delivery-status"
    (g,) = status_groups(rep)
    assert g["action"] == "failed"
    assert g["status"] == "5.1.10"
    assert "bob@nullmx.test" in g["final-recipient"]
    wait_queue_empty(t)


def test_nxdomain_fails_with_report(tegami_new, net):
    dns = start_dns(net, [])
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@nowhere.test"])
    (rep,) = reports(t)
    (g,) = status_groups(rep)
    assert g["action"] == "failed" and g["status"] == "5.1.2"


def test_5xx_one_report_for_several_recipients(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2", handler=Handler(
        rcpt=lambda addr, n: "550 5.1.1 <%s>: no such user" % addr
        if addr.startswith("x") else None))
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["x1@remote.test", "x2@remote.test", "ok@remote.test"])
    assert sink.wait(1)[0].rcpt_tos == ["ok@remote.test"]
    (rep,) = reports(t)
    groups = status_groups(rep)
    assert sorted(g["final-recipient"].split(";")[1].strip() for g in groups) == \
        ["x1@remote.test", "x2@remote.test"]
    for g in groups:
        assert g["action"] == "failed" and g["status"] == "5.1.1"
        assert "550 5.1.1" in g["diagnostic-code"] and g["remote-mta"].endswith("mx1.remote.test")
    # the original comes back
    parts = [p.get_content_type() for p in rep.walk()]
    assert "message/rfc822" in parts
    wait_queue_empty(t)


def test_4xx_then_250_is_retried(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2", handler=Handler(
        rcpt=lambda addr, n: "451 4.7.1 greylisted, try again" if n == 1 else None))
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"])
    (m,) = sink.wait(1, timeout=30)
    assert m.rcpt_tos == ["bob@remote.test"]
    log = t.log()
    assert "event=deferred" in log and "greylisted" in log
    wait_queue_empty(t)
    assert t.messages(ALICE) == {}   # no report for a recipient that got its mail


def test_no_report_to_null_sender(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    start_sink(net, "127.0.0.2", handler=Handler(rcpt=lambda a, n: "550 5.1.1 no"))
    t = start_tegami(tegami_new, net, dns, **{"auth.match_return_path": "no"})
    submit(t, ["bob@remote.test"], sender="",
           body="From: alice@example.test\r\nSubject: a bounce\r\n\r\nx\r\n")
    wait_queue_empty(t)
    assert wait_for(lambda: "event=failed" in t.log())
    time.sleep(0.5)
    assert "event=report " not in t.log()
    assert t.messages(ALICE) == {}


def test_retries_exhausted_give_up_with_report(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2", handler=Handler(
        rcpt=lambda addr, n: "452 4.2.2 mailbox full"))
    t = start_tegami(tegami_new, net, dns, **{"queue.retry1_count": "1",
                                              "queue.retry2_count": "1"})
    submit(t, ["bob@remote.test"])
    (rep,) = reports(t, timeout=30)
    (g,) = status_groups(rep)
    assert g["action"] == "failed" and g["status"] == "5.2.2"
    assert "giving up after 3 attempts" in g["diagnostic-code"]
    assert sink.handler.rcpt_calls == 3
    wait_queue_empty(t)


def test_nondelivery_copy(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    start_sink(net, "127.0.0.2", handler=Handler(rcpt=lambda a, n: "550 5.1.1 no"))
    t = start_tegami(tegami_new, net, dns)
    t.add_user("nondelivery@example.test")
    t.set(**{"queue.nondelivery": "nondelivery@example.test"})
    time.sleep(1.2)
    submit(t, ["bob@remote.test"])
    reports(t)
    (copy,) = reports(t, "nondelivery@example.test")
    assert status_groups(copy)[0]["action"] == "failed"


def test_report_text_cannot_inject_lines(tegami_new, net):
    """A remote reply's text never adds a line or a field to a report."""
    dns = start_dns(net, MX_REMOTE)
    evil = "550 5.1.1 bad\x0bX-Injected: yes\x0cAction: delivered"
    start_sink(net, "127.0.0.2", handler=Handler(rcpt=lambda a, n: evil))
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"])
    (rep,) = reports(t)
    (g,) = status_groups(rep)
    assert g["action"] == "failed"
    assert "x-injected" not in g
    raw = bytes(rep)
    assert b"\nX-Injected" not in raw and b"\nAction: delivered" not in raw


# --- the scripted server: split and multi-line replies, lost connections ------

def test_split_and_multiline_replies(tegami_new, net):
    def script(c):
        c.send(b"220-raw.test ESMTP\r\n220 ")
        time.sleep(0.05)
        c.send(b"ready\r\n")
        c.line()                                              # EHLO
        c.send(b"250-raw.test\r\n250-SIZE 1000000\r\n25")
        time.sleep(0.05)
        c.send(b"0 8BITMIME\r\n")
        assert c.line().startswith("MAIL FROM:<alice@example.test>")
        c.send(b"250 2.1.0 ok\r\n")
        c.line()                                              # RCPT
        c.send(b"250-2.1.5 first line\r\n250 2.1.5 second line\r\n")
        assert c.line() == "DATA"
        c.send(b"354 go\r\n")
        msg = c.data()
        c.received.append(msg)
        c.send(b"250 2.0.0 stored\r\n")
        c.line()                                              # QUIT
        c.send(b"221 bye\r\n")
    dns = start_dns(net, MX_REMOTE)
    srv = RawServer("127.0.0.2", net["port"], script)
    net["stops"].append(srv.stop)
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"])
    wait_queue_empty(t)
    assert "event=delivered" in t.log()
    assert any(isinstance(x, bytes) and b"Subject: outbound test" in x
               for x in srv.transcripts[0].received)


def test_disconnect_mid_data_is_retried(tegami_new, net):
    state = {"n": 0}

    def script(c):
        state["n"] += 1
        c.serve_basic()
        c.line()
        c.send(b"250 ok\r\n")
        c.line()
        c.send(b"250 ok\r\n")
        c.line()
        c.send(b"354 go\r\n")
        if state["n"] == 1:
            c.sock.recv(10)      # part of the message, then the line drops
            return
        c.data()
        c.send(b"250 2.0.0 stored\r\n")
        c.line()
        c.send(b"221 bye\r\n")
    dns = start_dns(net, MX_REMOTE)
    srv = RawServer("127.0.0.2", net["port"], script)
    net["stops"].append(srv.stop)
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"])
    wait_queue_empty(t, timeout=30)
    assert state["n"] == 2
    assert "lost connection" in t.log()


def test_message_over_peer_size_fails_without_sending(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2", size=200)
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"],
           body="From: alice@example.test\r\nSubject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 20)
    (rep,) = reports(t)
    (g,) = status_groups(rep)
    assert g["action"] == "failed" and g["status"] == "5.3.4"
    assert sink.handler.mail_calls == 0


# --- ETRN (RFC 1985) ------------------------------------------------------------

def test_etrn_replies(tegami_new, net):
    dns = start_dns(net, [])
    t = start_tegami(tegami_new, net, dns, **{"etrn.domains": "dialup.test"})
    c = t.raw()
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("ETRN other.test")[0] == 459
    assert c.cmd("ETRN dialup.test")[0] == 251
    assert c.cmd("ETRN #queue")[0] == 458
    assert c.cmd("ETRN bad..domain")[0] == 501
    assert c.cmd("ETRN")[0] == 501
    c.close()


def test_ehlo_advertises_dsn_and_etrn(tegami):
    c = tegami.raw()
    code, lines = c.cmd("EHLO client.test")
    assert "DSN" in lines and "ETRN" in lines
    c.close()
