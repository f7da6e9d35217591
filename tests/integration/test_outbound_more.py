"""Outbound delivery, continued (MISSION O1-O3, S2): routing modes, a second
tegamid as the receiving server (STARTTLS, DSN), TLS policies, DSN notices,
connection limits and reuse, IPv6, and a crash in the middle of a delivery."""
import smtplib
import socket
import threading
import time

import pytest

from conftest import SANITIZED, Tegami
from peers import Handler, RawServer, common_port
from test_outbound import (ALICE, MX_REMOTE, client_ctx, net, queue_files, reports,  # noqa: F401
                           start_dns, start_sink, start_tegami, status_groups, submit,
                           wait_for, wait_queue_empty)


# --- routing modes (seed 002: mail router, firewall, mailhub) ----------------

def test_firewall_sends_everything_to_the_router(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)          # remote.test's MX is 127.0.0.2 ...
    start_sink(net, "127.0.0.2")
    router = start_sink(net, "127.0.0.4")    # ... but all mail goes through the router
    t = start_tegami(tegami_new, net, dns, **{"route.router": "127.0.0.4",
                                              "route.firewall": "yes"})
    submit(t, ["bob@remote.test"])
    assert router.wait(1)[0].rcpt_tos == ["bob@remote.test"]


def test_router_takes_what_cannot_be_resolved(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    direct = start_sink(net, "127.0.0.2")
    router = start_sink(net, "127.0.0.4")
    t = start_tegami(tegami_new, net, dns, **{"route.router": "127.0.0.4:%d" % net["port"]})
    submit(t, ["bob@internal.test"])         # NXDOMAIN: the router stands in
    submit(t, ["carol@remote.test"])         # resolvable: straight to its MX
    assert router.wait(1)[0].rcpt_tos == ["bob@internal.test"]
    assert direct.wait(1)[0].rcpt_tos == ["carol@remote.test"]
    assert "event=route_fallback domain=internal.test" in t.log()


def test_mailhub_gets_unknown_users_of_local_domains(tegami_new, net):
    dns = start_dns(net, [])
    hub = start_sink(net, "127.0.0.4")
    t = start_tegami(tegami_new, net, dns, **{"route.mailhub": "127.0.0.4"})
    c = t.raw()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<someone@elsewhere.test>")
    assert c.cmd("RCPT TO:<nobody-here@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: for the hub\r\n\r\nhi\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    assert hub.wait(1)[0].rcpt_tos == ["nobody-here@example.test"]


def test_without_mailhub_unknown_local_user_is_refused(tegami_new, net):
    dns = start_dns(net, [])
    t = start_tegami(tegami_new, net, dns)
    c = t.raw()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<someone@elsewhere.test>")
    assert c.cmd("RCPT TO:<nobody-here@example.test>")[0] == 550
    c.close()


def test_unauthenticated_client_still_may_not_relay(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    t = start_tegami(tegami_new, net, dns)
    c = t.raw()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<someone@elsewhere.test>")
    code, text = c.cmd("RCPT TO:<bob@remote.test>")
    assert code == 550 and "Relay access denied" in text[0]
    c.close()


# --- a second tegamid as the next hop ------------------------------------------

@pytest.fixture
def peer(tmp_path, net):
    """A second tegamid that receives mail for remote.test on 127.0.0.2."""
    p = Tegami(tmp_path / "peer")
    p.port = net["port"]
    p.cli("domain", "add", "remote.test")
    p.add_user("bob@remote.test")
    base = {"smtp.listen": "127.0.0.2:%d" % net["port"]}
    p.start(**base)
    yield p
    rc = p.stop()
    if SANITIZED:
        p.check_sanitizers()
        assert rc in (None, 0)


def test_starttls_to_a_second_tegamid(tegami_new, net, peer):
    dns = start_dns(net, MX_REMOTE)
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"])
    (msg,) = peer.wait_messages("bob@remote.test", 1).values()
    assert b"with ESMTPS" in msg                    # the peer saw TLS (RFC 3848)
    assert "event=client_connected" in t.log() and 'tls="TLSv1.3' in t.log()
    wait_queue_empty(t)


def test_tls_verify_refuses_a_self_signed_peer(tegami_new, net, peer):
    dns = start_dns(net, MX_REMOTE)
    t = start_tegami(tegami_new, net, dns, **{"relay.tls": "verify",
                                              "queue.retry1_interval": "3600"})
    submit(t, ["bob@remote.test"])
    assert wait_for(lambda: "event=deferred" in t.log())
    assert "certificate verify failed" in t.log() or "TLS handshake" in t.log()
    assert peer.messages("bob@remote.test") == {}


def test_tls_encrypt_needs_starttls(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2")      # aiosmtpd without STARTTLS
    t = start_tegami(tegami_new, net, dns, **{"relay.tls": "encrypt",
                                              "queue.retry1_interval": "3600"})
    submit(t, ["bob@remote.test"])
    assert wait_for(lambda: "event=deferred" in t.log())
    assert "TLS is required" in t.log()
    assert sink.handler.mail_calls == 0


def test_opportunistic_tls_with_aiosmtpd_starttls(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2", starttls=True)
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"])
    sink.wait(1)
    assert sink.handler.tls_sessions >= 1


# --- DSN (RFC 3461) ---------------------------------------------------------------

def test_dsn_parameters_passed_to_a_dsn_capable_next_hop(tegami_new, net):
    seen = {}

    def script(c):
        c.serve_basic(ehlo=b"250-raw.test\r\n250-DSN\r\n250 PIPELINING\r\n")
        for _ in range(3):
            line = c.line()
            seen[line.split(":")[0]] = line
            c.send(b"354 go\r\n" if line == "DATA" else b"250 ok\r\n")
        c.data()
        c.send(b"250 2.0.0 ok\r\n")
        c.line()
        c.send(b"221 bye\r\n")
    dns = start_dns(net, MX_REMOTE)
    srv = RawServer("127.0.0.2", net["port"], script)
    net["stops"].append(srv.stop)
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"], mail_options=["RET=HDRS", "ENVID=abc+2Bdef"],
           rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob+40remote.test"])
    wait_queue_empty(t)
    assert "RET=HDRS" in seen["MAIL FROM"] and "ENVID=abc+2Bdef" in seen["MAIL FROM"]
    assert "NOTIFY=SUCCESS,FAILURE" in seen["RCPT TO"]
    assert "ORCPT=rfc822;Bob+40remote.test" in seen["RCPT TO"]
    time.sleep(0.5)
    assert t.messages(ALICE) == {}     # the next hop reports; we do not


def test_dsn_success_relayed_to_a_next_hop_without_dsn(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    start_sink(net, "127.0.0.2")           # aiosmtpd: no DSN extension
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"], mail_options=["ENVID=env-42"],
           rcpt_options=["NOTIFY=SUCCESS"])
    (rep,) = reports(t)
    assert rep["Subject"] == "Successful Mail Delivery Report"
    (g,) = status_groups(rep)
    assert g["action"] == "relayed" and g["status"].startswith("2.")
    body = bytes(rep)
    assert b"Original-Envelope-Id: env-42" in body
    parts = [p.get_content_type() for p in rep.walk()]
    assert "text/rfc822-headers" in parts      # a success notice carries headers only


def test_dsn_success_for_local_delivery(tegami_new, net):
    dns = start_dns(net, [])
    t = start_tegami(tegami_new, net, dns)
    t.add_user("bob@example.test")
    submit(t, ["bob@example.test"], rcpt_options=["NOTIFY=SUCCESS"])
    t.wait_messages("bob@example.test", 1)
    (rep,) = reports(t)
    (g,) = status_groups(rep)
    assert g["action"] == "delivered" and g["status"] == "2.0.0"
    wait_queue_empty(t)


def test_dsn_delay_notice_on_the_second_level(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    sink = start_sink(net, "127.0.0.2", handler=Handler(
        rcpt=lambda a, n: "451 4.3.0 busy" if n <= 2 else None))
    t = start_tegami(tegami_new, net, dns, **{"queue.retry1_count": "1",
                                              "queue.retry2_count": "5"})
    submit(t, ["bob@remote.test"], rcpt_options=["NOTIFY=DELAY,FAILURE"])
    (rep,) = reports(t, timeout=30)
    assert rep["Subject"].startswith("Delayed Mail")
    (g,) = status_groups(rep)
    assert g["action"] == "delayed" and g["status"].startswith("4.")
    assert "will-retry-until" in g
    sink.wait(1, timeout=30)
    wait_queue_empty(t)
    time.sleep(0.5)
    assert len(t.messages(ALICE)) == 1          # no second notice


def test_delay_notice_owed_at_a_crash_is_sent_after_restart(tegami_new, net):
    """O3, RFC 3461: a recipient recorded on the second retry level whose
    DELAY notice was not yet queued (tegamid killed between the record and
    the notice) gets it after the restart, once."""
    dns = start_dns(net, MX_REMOTE)
    start_sink(net, "127.0.0.2", handler=Handler(rcpt=lambda a, n: "451 4.3.0 busy"))
    t = start_tegami(tegami_new, net, dns, **{"queue.retry1_count": "1",
                                              "queue.retry1_interval": "3600",
                                              "queue.retry2_interval": "3600"})
    submit(t, ["bob@remote.test"], rcpt_options=["NOTIFY=DELAY,FAILURE"])
    assert wait_for(lambda: " Q 1 " in log_records(t)), log_records(t)
    assert t.stop() == 0
    assert t.messages(ALICE) == {}                  # still on the first level
    (qid,) = queue_files(t)
    now = int(time.time())
    # The second attempt's record, as written just before a kill -9.
    with open(t.dir / "queue" / qid, "ab") as f:
        f.write(b"s 0 Q 2 %d 0 %d\tmx1.remote.test\t451 4.3.0 busy\n" % (now + 3600, now))
    t.start()
    (rep,) = reports(t, timeout=20)
    assert rep["Subject"].startswith("Delayed Mail")
    (g,) = status_groups(rep)
    assert g["action"] == "delayed" and g["final-recipient"].endswith("bob@remote.test")
    assert t.stop() == 0                            # and not again at the next start
    t.start()
    time.sleep(1)
    assert len(t.messages(ALICE)) == 1


def log_records(t):
    """The recipient records of the one queue file, as text."""
    files = queue_files(t)
    if len(files) != 1:
        return ""
    data = (t.dir / "queue" / files[0]).read_bytes()
    return "\n".join(l.decode("latin-1") for l in data.split(b"\n") if l.startswith(b"s "))


def test_notify_never_gets_no_report(tegami_new, net):
    dns = start_dns(net, MX_REMOTE)
    start_sink(net, "127.0.0.2", handler=Handler(rcpt=lambda a, n: "550 5.1.1 no"))
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"], rcpt_options=["NOTIFY=NEVER"])
    wait_queue_empty(t)
    time.sleep(0.5)
    assert t.messages(ALICE) == {}


def test_bad_dsn_parameters_refused(tegami):
    c = tegami.raw()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<a@remote.test> RET=BOTH")[0] == 501
    assert c.cmd("MAIL FROM:<a@remote.test> ENVID=bad+zz")[0] == 501
    assert c.cmd("MAIL FROM:<a@remote.test> RET=FULL ENVID=ok")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS")[0] == 501
    assert c.cmd("RCPT TO:<alice@example.test> NOTIFY=BOGUS")[0] == 501
    assert c.cmd("RCPT TO:<alice@example.test> ORCPT=nosemicolon")[0] == 501
    assert c.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS ORCPT=rfc822;a+40b")[0] == 250
    c.close()


# --- connections: limits, reuse, IPv6 -----------------------------------------------

def test_per_destination_limit_and_connection_reuse(tegami_new, net):
    state = {"now": 0, "max": 0, "conns": 0, "msgs": 0}
    lock = threading.Lock()

    def script(c):
        with lock:
            state["now"] += 1
            state["conns"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            c.serve_basic(ehlo=b"250-raw.test\r\n250 PIPELINING\r\n")
            while True:
                line = c.line()
                if line.startswith("QUIT"):
                    c.send(b"221 bye\r\n")
                    return
                if line == "DATA":
                    c.send(b"354 go\r\n")
                    c.data()
                    time.sleep(0.2)
                    with lock:
                        state["msgs"] += 1
                    c.send(b"250 2.0.0 ok\r\n")
                else:
                    c.send(b"250 ok\r\n")
        finally:
            with lock:
                state["now"] -= 1
    dns = start_dns(net, MX_REMOTE)
    srv = RawServer("127.0.0.2", net["port"], script)
    net["stops"].append(srv.stop)
    t = start_tegami(tegami_new, net, dns, **{"relay.max_per_destination": "2"})
    for i in range(8):
        submit(t, ["bob%d@remote.test" % i])
    assert wait_for(lambda: state["msgs"] == 8, timeout=30), state
    assert state["max"] <= 2, state
    assert state["conns"] < 8, state           # several messages per connection
    wait_queue_empty(t)


def test_ipv6_mx_host(tegami_new, net):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", net["port"]))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    dns = start_dns(net, ["--mx-host=six.test,mx.six.test,10",
                          "--host-record=mx.six.test,::1"])
    sink = start_sink(net, "::1")
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@six.test"])
    assert sink.wait(1)[0].rcpt_tos == ["bob@six.test"]


# --- a crash in the middle of a delivery --------------------------------------------

def test_kill9_during_outbound_delivery_loses_nothing(tegami_new, net):
    """RFC 5321 §6.1: after a crash at most the one transaction in flight
    is repeated; nothing acknowledged is lost."""
    got = []
    lock = threading.Lock()
    slow = {"first": True}

    def script(c):
        c.serve_basic(ehlo=b"250-raw.test\r\n250 PIPELINING\r\n")
        while True:
            line = c.line()
            if line.startswith("QUIT"):
                c.send(b"221 bye\r\n")
                return
            if line == "DATA":
                c.send(b"354 go\r\n")
                msg = c.data()
                with lock:
                    got.append(msg)
                    first = slow["first"]
                    slow["first"] = False
                if first:
                    time.sleep(3)                  # the sender dies meanwhile
                c.send(b"250 2.0.0 ok\r\n")
            else:
                c.send(b"250 ok\r\n")
    dns = start_dns(net, MX_REMOTE)
    srv = RawServer("127.0.0.2", net["port"], script)
    net["stops"].append(srv.stop)
    t = start_tegami(tegami_new, net, dns)
    submit(t, ["bob@remote.test"], subject="crash test")
    assert wait_for(lambda: len(got) == 1, timeout=15)
    t.kill()
    assert len(queue_files(t)) == 1                # still queued: not acknowledged by us
    t.start()
    wait_queue_empty(t, timeout=30)
    assert 1 <= len(got) <= 2
    assert all(b"Subject: crash test" in m for m in got)


# --- ETRN to a remote server (seed 002: a dial-up site's schedule) -------------------

def ctl(t, line):
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(t.dir / "tegamid.sock"))
    s.sendall(line.encode() + b"\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode()


def test_scheduled_etrn_to_the_provider(tegami_new, net, peer):
    """Our tegamid is the dial-up site; the peer is the provider that holds
    mail for dialup.test and serves ETRN for it."""
    peer.set(**{"etrn.domains": "dialup.test"})
    peer.cli("reload")
    assert wait_for(lambda: "event=reloaded reason=sighup" in peer.log())
    dns = start_dns(net, MX_REMOTE)
    t = start_tegami(tegami_new, net, dns, **{
        "etrn.remote": "127.0.0.2:%d" % net["port"], "etrn.remote_domains": "dialup.test"})
    assert ctl(t, "queue etrn").startswith("ok")
    assert wait_for(lambda: "event=etrn session=" in peer.log() and "node=dialup.test" in peer.log())
    assert wait_for(lambda: "event=etrn_done accepted=1" in t.log())


# --- more of the client: HELO fallback, BODY=8BITMIME, smtp-sink ------------------

def test_helo_fallback_and_8bitmime(tegami_new, net):
    lines = {}

    def script(c):
        c.send(b"220 old.test ready\r\n")
        lines["ehlo"] = c.line()
        c.send(b"502 5.5.1 EHLO not understood\r\n")       # an RFC 821 server
        lines["helo"] = c.line()
        c.send(b"250 old.test\r\n")
        lines["mail"] = c.line()
        c.send(b"250 ok\r\n")
        c.line()
        c.send(b"250 ok\r\n")
        c.line()
        c.send(b"354 go\r\n")
        lines["msg"] = c.data()
        c.send(b"250 ok\r\n")
        c.line()
        c.send(b"221 bye\r\n")

    def script8(c):
        c.serve_basic(ehlo=b"250-new.test\r\n250 8BITMIME\r\n")
        lines["mail8"] = c.line()
        c.send(b"250 ok\r\n")
        c.line()
        c.send(b"250 ok\r\n")
        c.line()
        c.send(b"354 go\r\n")
        c.data()
        c.send(b"250 ok\r\n")
        c.line()
        c.send(b"221 bye\r\n")
    dns = start_dns(net, ["--mx-host=old.test,mx.old.test,10", "--host-record=mx.old.test,127.0.0.2",
                          "--mx-host=new.test,mx.new.test,10", "--host-record=mx.new.test,127.0.0.3"])
    old = RawServer("127.0.0.2", net["port"], script)
    new = RawServer("127.0.0.3", net["port"], script8)
    net["stops"] += [old.stop, new.stop]
    t = start_tegami(tegami_new, net, dns)
    body = "From: alice@example.test\r\nSubject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode("utf-8")
    with smtplib.SMTP("127.0.0.1", t.submission_port, timeout=15) as s:
        s.starttls(context=client_ctx())
        s.login(ALICE, "secret")
        s.sendmail(ALICE, ["bob@old.test"], body, mail_options=["BODY=8BITMIME"])
        s.sendmail(ALICE, ["bob@new.test"], body, mail_options=["BODY=8BITMIME"])
    wait_queue_empty(t)
    assert lines["ehlo"].startswith("EHLO ") and lines["helo"].startswith("HELO ")
    assert lines["mail"] == "MAIL FROM:<alice@example.test>"      # no extensions after HELO
    assert "na\u00efve".encode() in lines["msg"]
    assert "BODY=8BITMIME" in lines["mail8"]


def test_smtp_sink_receives(tegami_new, net, tmp_path):
    import shutil
    import subprocess
    sink_bin = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    proc = subprocess.Popen([sink_bin, "-u", "root", "-d", str(dumps) + "/%H%M%S.",
                             "127.0.0.2:%d" % net["port"], "64"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    net["stops"].append(lambda: (proc.terminate(), proc.wait(timeout=5)))
    time.sleep(0.3)
    dns = start_dns(net, MX_REMOTE)
    t = start_tegami(tegami_new, net, dns)
    for i in range(10):
        submit(t, ["user%d@remote.test" % i])
    wait_queue_empty(t)
    assert wait_for(lambda: len(list(dumps.iterdir())) == 10)


def test_failed_report_goes_to_the_dsn_responsible(tegami_new, net):
    """Seed 002: the DSN responsible person gets the reports that cannot be
    returned to their sender; a report about a report is never reported."""
    dns = start_dns(net, MX_REMOTE + ["--dns-rr=nullmx.test,15,000000"])
    start_sink(net, "127.0.0.2", handler=Handler(rcpt=lambda a, n: "550 5.1.1 no such user"))
    t = start_tegami(tegami_new, net, dns, **{"auth.match_return_path": "no",
                                              "auth.match_from_header": "no",
                                              "dsn.responsible": "postmaster@example.test"})
    t.add_user("postmaster@example.test")
    submit(t, ["bob@remote.test"], sender="someone@nullmx.test")
    (rep,) = reports(t, "postmaster@example.test")
    (g,) = status_groups(rep)
    assert g["action"] == "failed" and "someone@nullmx.test" in g["final-recipient"]
    wait_queue_empty(t)
