"""Mail through a smarthost with the client side of SMTP AUTH (MISSION C1-C5,
X1): a second tegamid on 127.0.0.2 is the relay (its submission port wants
AUTH: PLAIN and LOGIN under TLS unless auth.allow_plaintext, CRAM-MD5 while
auth.cram_md5 is on; its SMTPS listener; its POP3 server), scripted servers
and aiosmtpd play the failures (535, 454, a server offering only PLAIN, a
TLS version below the minimum, XOAUTH2). Mail is submitted as a user sends
it and must arrive authenticated, wait in the queue, or come back as an RFC
3464 report quoting the relay's reply."""
import base64
import email
import email.policy
import os
import smtplib
import ssl
import time

import pytest

from conftest import SANITIZED, TEGAMI, Tegami
from peers import Handler, RawServer, Sink
from ptyrun import Terminal
from test_outbound import (ALICE, client_ctx, net, queue_files, reports,  # noqa: F401
                           status_groups, submit, wait_for, wait_queue_empty)

RELAY_USER = "relay@remote.test"
RELAY_PW = "relay-Secret-42"
BOB = "bob@remote.test"


@pytest.fixture
def relay(tmp_path):
    """relay(**settings): a second tegamid on 127.0.0.2 receiving for
    remote.test, with the account the smarthost client logs in as."""
    started = []

    def start(**settings):
        p = Tegami(tmp_path / ("relay%d" % len(started)))
        p.cli("domain", "add", "remote.test")
        p.add_user(BOB)
        p.add_user(RELAY_USER, RELAY_PW)
        base = {"smtp.listen": "127.0.0.2:%d" % p.port,
                "submission.listen": "127.0.0.2:%d" % p.submission_port,
                "smtps.listen": "127.0.0.2:%d" % p.smtps_port,
                "pop3.listen": "127.0.0.2:%d" % p.pop3_port,
                "pop3s.listen": "127.0.0.2:%d" % p.pop3s_port,
                # it relays for an account that sends other people's mail
                "auth.match_return_path": "no", "auth.match_from_header": "no",
                "auth.fail_delay_max": "0"}
        base.update({k.replace("__", "."): v for k, v in settings.items()})
        p.start(**base)
        started.append(p)
        return p
    yield start
    for p in started:
        rc = p.stop()
        if SANITIZED:
            p.check_sanitizers()
            assert rc in (None, 0)


def start_sender(t, **settings):
    t.add_user(ALICE)
    base = {"queue.retry1_interval": "3600", "relay.connect_timeout": "5",
            "relay.command_timeout": "10"}
    base.update({k.replace("__", "."): v for k, v in settings.items()})
    return t.start(**base)


def profile(t, *args, input=None):
    """tegami profile ..., and the running daemon has read it before the
    next message is submitted."""
    r = t.cli("profile", *args, input=input)
    if t.proc is not None:
        reload_now(t)
    return r


def use_relay(t, port, *opts, host="127.0.0.2", password=RELAY_PW, account=RELAY_USER):
    """The default profile sends everything to host:port, logging in."""
    args = ["set", "default", "--host", host, "--port", port, *opts]
    if account is not None:
        args += ["--account", account, "--password-stdin"]
    profile(t, *args, input=(password + "\n") if account is not None else None)


def reload_now(t):
    n = t.log().count("event=reloaded")
    t.cli("reload")
    assert wait_for(lambda: t.log().count("event=reloaded") > n)


def relay_got(p, n=1):
    return list(p.wait_messages(BOB, n).values())


def relay_protocol(raw):
    """The protocol the relay's own Received header names (RFC 3848): how we
    talked to it (our Received, below it, is how the message was submitted)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    first = " ".join(str(msg.get_all("Received")[0]).split())
    return first.split(" with ")[1].split(" ")[0]


def deferred(t, text, n=1):
    assert wait_for(lambda: t.log().count("event=deferred") >= n), t.log()[-3000:]
    assert text in t.log(), t.log()[-3000:]


# --- SMTP AUTH to a second tegamid, each mechanism (C1, C3) ----------------------

@pytest.mark.parametrize("mech", ["CRAM-MD5", "LOGIN", "PLAIN"])
def test_each_mechanism_over_starttls(tegami_new, relay, mech):
    p = relay()
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--starttls", "yes", "--auth", mech)
    submit(t, [BOB])
    (msg,) = relay_got(p)
    assert relay_protocol(msg) == "ESMTPSA"         # TLS and AUTH (RFC 3848)
    assert "user=%s mech=%s" % (RELAY_USER, mech) in p.log()
    assert "auth=%s" % mech in t.log() and 'tls="TLSv1.3' in t.log()
    wait_queue_empty(t)
    assert RELAY_PW not in t.log()


def test_all_prefers_cram_md5_then_login(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--starttls", "yes", "--auth", "ALL")
    submit(t, [BOB])
    relay_got(p)
    assert "mech=CRAM-MD5" in p.log()


def test_all_takes_login_when_the_relay_has_no_cram_md5(tegami_new, relay):
    p = relay(auth__cram_md5="no")
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--starttls", "yes", "--auth", "PLAIN,LOGIN")
    submit(t, [BOB])
    relay_got(p)
    assert "mech=LOGIN" in p.log()                  # LOGIN before PLAIN, whatever the order given


def test_no_common_mechanism_defers(tegami_new, relay):
    p = relay(auth__cram_md5="no")
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--starttls", "yes", "--auth", "CRAM-MD5")
    submit(t, [BOB])
    deferred(t, "offers no authentication mechanism we may use (ours: CRAM-MD5; "
                "offered: LOGIN PLAIN)")
    assert p.messages(BOB) == {}
    assert len(queue_files(t)) == 1


def test_plaintext_login_only_when_the_relay_allows_it(tegami_new, relay):
    # No TLS chosen (the seed's -t omitted): the relay offers PLAIN/LOGIN on a
    # plain connection only with auth.allow_plaintext; until then the mail waits.
    p = relay(auth__cram_md5="no")
    t = start_sender(tegami_new, queue__retry1_interval="1", queue__retry1_count="30")
    use_relay(t, p.submission_port, "--auth", "ALL")
    submit(t, [BOB])
    deferred(t, "offers no authentication mechanism we may use")
    assert p.messages(BOB) == {}
    p.set(auth__allow_plaintext="yes")
    (msg,) = relay_got(p)
    assert relay_protocol(msg) == "ESMTPA"          # AUTH without TLS
    assert "mech=LOGIN" in p.log()
    assert "event=client_auth_unencrypted" in t.log()          # the warning
    assert "event=client_connected peer=127.0.0.2[127.0.0.2]:%d tls=no auth=LOGIN" % \
        p.submission_port in t.log()


def test_smtps_implicit_tls(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    use_relay(t, p.smtps_port, "--ssl", "yes", "--auth", "PLAIN")
    submit(t, [BOB])
    (msg,) = relay_got(p)
    assert relay_protocol(msg) == "ESMTPSA"
    assert "mech=PLAIN" in p.log()
    assert "listener=smtps" in p.log()


def test_smtps_to_a_plain_port_defers(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--ssl", "yes", "--auth", "PLAIN")
    submit(t, [BOB])
    deferred(t, "TLS handshake with 127.0.0.2")
    assert p.messages(BOB) == {}


# --- refusals: 535 fails with the relay's reply, 4xx waits (C3) -------------------

def test_wrong_password_returns_the_mail_with_the_relays_reply(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--starttls", "yes", "--auth", "CRAM-MD5",
              password="not-the-password")
    submit(t, [BOB])
    (rep,) = reports(t)
    (g,) = status_groups(rep)
    assert g["action"] == "failed"
    assert g["status"] == "5.7.8"
    assert g["diagnostic-code"].startswith("smtp; 535 5.7.8")
    assert g["final-recipient"] == "rfc822; " + BOB
    assert p.messages(BOB) == {}
    assert "event=auth_failed" in p.log() and "MAIL FROM" not in p.log()
    wait_queue_empty(t)
    assert "not-the-password" not in t.log()


def smtp_receiver(c, seen):
    """After AUTH: MAIL, RCPT, DATA, QUIT, recorded in seen."""
    while True:
        line = c.line()
        verb = line.split(" ", 1)[0].upper()
        if verb == "DATA":
            c.send("354 go on\r\n")
            seen["message"] = c.data()
            c.send("250 2.0.0 queued\r\n")
        elif verb == "QUIT":
            c.send("221 2.0.0 bye\r\n")
            return
        elif verb == "RSET":
            c.send("250 2.0.0 ok\r\n")
        else:
            seen.setdefault("commands", []).append(line)
            c.send("250 2.1.0 ok\r\n")


@pytest.fixture
def scripted(net):
    def start(script):
        srv = RawServer("127.0.0.3", net["port"], script)
        net["stops"].append(srv.stop)
        return srv
    return start


def test_server_offering_only_plain(tegami_new, net, scripted):
    seen = {}

    def script(c):
        c.serve_basic(ehlo=b"250-raw.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
        line = c.line()
        seen["auth"] = line
        mech, resp = line.split(" ")[1:3]
        assert mech == "PLAIN"
        assert base64.b64decode(resp) == b"\0" + RELAY_USER.encode() + b"\0" + RELAY_PW.encode()
        c.send("235 2.7.0 Authentication successful\r\n")
        smtp_receiver(c, seen)

    srv = scripted(script)
    t = start_sender(tegami_new, queue__retry1_interval="1", queue__retry1_count="30")
    # CRAM-MD5 only: nothing in common, nothing sent, the mail waits
    use_relay(t, net["port"], "--auth", "CRAM-MD5", host="127.0.0.3")
    submit(t, [BOB])
    deferred(t, "offered: PLAIN")
    assert "auth" not in seen
    # ALL: PLAIN, in the clear since no TLS was chosen (with the warning)
    profile(t, "set", "default", "--auth", "ALL")
    assert wait_for(lambda: "message" in seen, 20), t.log()[-2000:]
    assert "event=client_auth_unencrypted" in t.log()
    wait_queue_empty(t)
    assert srv.connections >= 2


def test_plain_is_never_sent_in_the_clear_when_tls_was_chosen(tegami_new, net, scripted):
    # The relay offers STARTTLS and AUTH before it: with STARTTLS chosen, AUTH
    # waits for TLS; a relay that then fails TLS gets no password at all.
    seen = {}

    def script(c):
        c.serve_basic(ehlo=b"250-raw.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n")
        line = c.line()
        seen.setdefault("lines", []).append(line)
        c.send("454 4.7.0 TLS not available\r\n")
        try:
            while True:
                seen["lines"].append(c.line())
                c.send("221 bye\r\n")
        except ConnectionError:
            pass

    scripted(script)
    t = start_sender(tegami_new)
    use_relay(t, net["port"], "--starttls", "yes", "--auth", "PLAIN", host="127.0.0.3")
    submit(t, [BOB])
    deferred(t, "refused STARTTLS")
    assert seen["lines"][0] == "STARTTLS"
    assert not any(l.startswith("AUTH") for l in seen["lines"])


def test_454_at_auth_defers_and_retries(tegami_new, net, scripted):
    attempts = []

    def script(c):
        c.serve_basic(ehlo=b"250-raw.test\r\n250 AUTH LOGIN PLAIN\r\n")
        line = c.line()
        attempts.append(line)
        if len(attempts) == 1:
            c.send("454 4.7.0 Temporary authentication failure\r\n")
            c.line()
            c.send("221 bye\r\n")
            return
        c.send("334 VXNlcm5hbWU6\r\n")
        assert base64.b64decode(c.line()) == RELAY_USER.encode()
        c.send("334 UGFzc3dvcmQ6\r\n")
        assert base64.b64decode(c.line()) == RELAY_PW.encode()
        c.send("235 2.7.0 ok\r\n")
        smtp_receiver(c, {})

    scripted(script)
    t = start_sender(tegami_new, queue__retry1_interval="1", queue__retry1_count="30")
    use_relay(t, net["port"], "--auth", "ALL", host="127.0.0.3")
    submit(t, [BOB])
    deferred(t, "454 4.7.0 Temporary authentication failure")
    wait_queue_empty(t)
    assert attempts == ["AUTH LOGIN", "AUTH LOGIN"]
    assert t.messages(ALICE) == {}                  # no report: it went


def test_tls_below_the_minimum_version(tegami_new, net):
    sink = Sink("127.0.0.3", net["port"], starttls=True, tmpdir=str(net["tmp"]))
    net["stops"].append(sink.stop)
    sink.controller._tls.maximum_version = ssl.TLSVersion.TLSv1_2   # an older relay
    t = start_sender(tegami_new, queue__retry1_interval="1", queue__retry1_count="30")
    use_relay(t, net["port"], "--starttls", "yes", "--tls-protocol", "TLSv1.3",
              host="127.0.0.3", account=None)
    submit(t, [BOB])
    deferred(t, "TLS handshake with 127.0.0.3")
    assert sink.handler.mail_calls == 0
    # the admin lowers the minimum (the seed's -v TLSv1.2): it goes
    profile(t, "set", "default", "--tls-protocol", "TLSv1.2")
    (m,) = sink.wait(1)
    assert m.rcpt_tos == [BOB]
    assert sink.handler.tls_sessions >= 1
    assert 'tls="TLSv1.2' in t.log()


@pytest.mark.parametrize("token_len", [40, 3000])
def test_xoauth2(tegami_new, net, scripted, token_len):
    token = "ya29." + "A" * token_len
    seen = {}

    def script(c):
        c.serve_basic(ehlo=b"250-smtp.gmail.test\r\n250-AUTH LOGIN PLAIN XOAUTH2\r\n"
                           b"250 PIPELINING\r\n")
        line = c.line()
        seen["auth"] = line
        parts = line.split(" ")
        if len(parts) == 2:                      # too long for one line: after a 334
            c.send("334 \r\n")
            resp = c.line()
        else:
            resp = parts[2]
        assert base64.b64decode(resp) == \
            ("user=alice@gmail.test\x01auth=Bearer %s\x01\x01" % token).encode()
        c.send("235 2.7.0 Accepted\r\n")
        smtp_receiver(c, seen)

    scripted(script)
    t = start_sender(tegami_new)
    profile(t, "set", "default", "--host", "127.0.0.3", "--port", net["port"],
            "--auth", "XOAUTH2", "--account", "alice@gmail.test", "--password-stdin",
            input=token + "\n")
    submit(t, [BOB])
    assert wait_for(lambda: "message" in seen)
    assert seen["auth"].startswith("AUTH XOAUTH2")
    assert (len(seen["auth"]) == len("AUTH XOAUTH2")) == (token_len > 300)
    wait_queue_empty(t)
    assert token not in t.log()


# --- profile settings on the wire: debug, X-Mailer, properties (X1) --------------

def test_debug_logs_the_dialogue_with_secrets_masked(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--starttls", "yes", "--auth", "PLAIN", "--debug", "yes")
    submit(t, [BOB])
    relay_got(p)
    log = t.log()
    assert 'event=client_dialogue profile=default' in log
    assert 'dir=send line="AUTH PLAIN ****"' in log
    assert 'dir=recv line="235 ' in log
    assert 'dir=send line="STARTTLS"' in log and 'dir=note line="TLS established' in log
    assert 'dir=send line="MAIL FROM:<%s>' % ALICE in log
    cred = base64.b64encode(b"\0" + RELAY_USER.encode() + b"\0" + RELAY_PW.encode()).decode()
    assert cred not in log and RELAY_PW not in log


def test_no_dialogue_without_debug(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--starttls", "yes", "--auth", "PLAIN")
    submit(t, [BOB])
    relay_got(p)
    assert "event=client_dialogue" not in t.log()


def test_xmailer_and_session_properties(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    use_relay(t, p.submission_port, "--starttls", "yes", "--auth", "LOGIN",
              "--xmailer", "Acme Notifier 2.1", "--property", "helo=notifier.example.test",
              "--property", "pipelining=no")
    submit(t, [BOB])
    (raw,) = relay_got(p)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    names = [k.lower() for k in msg.keys()]
    # the relay's Received, ours, then the X-Mailer we add, then the message's own
    assert names[:4] == ["return-path", "received", "received", "x-mailer"], names
    assert msg["X-Mailer"] == "Acme Notifier 2.1"
    assert raw.count(b"X-Mailer:") == 1
    assert b"hello" in raw
    assert b"from notifier.example.test" in raw     # helo= overrides the automatic name
    wait_queue_empty(t)


# --- a profile per sending tenant (X1) ------------------------------------------

def submit_as(t, user, rcpts):
    with smtplib.SMTP("127.0.0.1", t.submission_port, timeout=15) as s:
        s.starttls(context=client_ctx())
        s.login(user, "secret")
        s.sendmail(user, rcpts, "From: %s\r\nSubject: tenant\r\n\r\nhi\r\n" % user)


def test_profiles_by_sender_domain_and_address(tegami_new, net):
    tenant = Sink("127.0.0.3", net["port"], tmpdir=str(net["tmp"]))
    other = Sink("127.0.0.4", net["port"], tmpdir=str(net["tmp"]))
    net["stops"] += [tenant.stop, other.stop]
    t = tegami_new
    t.cli("domain", "add", "tenant.test")
    t.add_user("carol@tenant.test")
    t.add_user("boss@example.test")
    start_sender(t)
    profile(t, "set", "default", "--host", "127.0.0.4", "--port", net["port"])
    profile(t, "add", "tenant.test", "--host", "127.0.0.3", "--port", net["port"],
            "--xmailer", "tenant-mailer")
    profile(t, "add", "bosses", "--host", "127.0.0.3", "--port", net["port"],
            "--senders", "boss@example.test")
    submit_as(t, "carol@tenant.test", ["x@far.test"])     # the tenant's domain
    submit_as(t, "boss@example.test", ["y@far.test"])     # a named group of senders
    submit_as(t, ALICE, ["z@far.test"])                   # everyone else: the default
    got = tenant.wait(2)
    assert sorted(m.mail_from for m in got) == ["boss@example.test", "carol@tenant.test"]
    carol = [m for m in got if m.mail_from == "carol@tenant.test"][0]
    assert "X-Mailer: tenant-mailer" in carol.text
    (m,) = other.wait(1)
    assert m.mail_from == ALICE and "X-Mailer" not in m.text
    wait_queue_empty(t)


def test_login_without_relay_host_waits(tegami_new):
    t = start_sender(tegami_new)
    profile(t, "set", "default", "--auth", "ALL", "--account", "sysop",
            "--password-stdin", input="pw\n")
    submit(t, [BOB])
    deferred(t, "no relay host (tegami config set relay.smarthost=HOST)")
    assert len(queue_files(t)) == 1


# --- POP-before-SMTP (C4) --------------------------------------------------------

@pytest.mark.parametrize("pop_tls", ["stls", "pop3s"])
def test_pop_before_smtp(tegami_new, relay, pop_tls):
    p = relay()
    t = start_sender(tegami_new)
    port = p.pop3s_port if pop_tls == "pop3s" else p.pop3_port
    profile(t, "set", "default", "--host", "127.0.0.2", "--port", p.port,
            "--pop-host", "127.0.0.2", "--pop-port", port, "--pop-tls", pop_tls,
            "--pop-account", RELAY_USER, "--pop-password-stdin", input=RELAY_PW + "\n")
    submit(t, [BOB])
    submit(t, [BOB])
    relay_got(p, 2)
    log = p.log()
    # one POP3 login, from the same address, before the first SMTP session
    assert log.count("event=login service=pop3") == 1
    assert "user=%s" % RELAY_USER in log
    assert log.index("event=login service=pop3") < log.index("listener=smtp\n")
    assert "event=pop_before_smtp profile=default pop3=127.0.0.2:%d result=ok" % port in t.log()
    assert "auth=none" in t.log()                  # no SMTP AUTH with it
    assert "smarthost login: POP-before-SMTP to 127.0.0.2:%d" % port in \
        t.cli("status").stdout


def test_pop_before_smtp_failure_defers(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    profile(t, "set", "default", "--host", "127.0.0.2", "--port", p.port,
            "--pop-host", "127.0.0.2", "--pop-port", p.pop3_port, "--pop-tls", "stls",
            "--pop-account", RELAY_USER, "--pop-password-stdin", input="wrong\n")
    submit(t, [BOB])
    deferred(t, "POP-before-SMTP login for profile default failed")
    assert "listener=smtp\n" not in p.log()         # no SMTP session at all
    assert p.messages(BOB) == {}


# --- the seed's command, end to end ----------------------------------------------

def test_smtpauth_command_end_to_end(tegami_new, relay):
    p = relay()
    t = start_sender(tegami_new)
    t.set(relay__smarthost="127.0.0.2")
    n = t.log().count("event=reloaded")
    term = Terminal([TEGAMI, "-D", t.dir, "smtpauth", "-s", "-u", RELAY_USER, "-p",
                     p.submission_port, "-t", "STARTTLS", "-v", "TLSv1.2", "-a", "CRAM-MD5"])
    for prompt in ("Enter password : ", "Re-enter password : "):
        term.expect(prompt)
        term.type(RELAY_PW + "\n")
    rc, out, err = term.finish()
    assert rc == 0, err
    assert out.splitlines()[:2] == ["SMTP AUTH : ON", "SMTP SERVER : 127.0.0.2"]
    reload_now(t)
    submit(t, [BOB])
    (msg,) = relay_got(p)
    assert relay_protocol(msg) == "ESMTPSA" and "mech=CRAM-MD5" in p.log()
    # off: the next message goes to the relay without AUTH, which refuses it
    assert t.cli("smtpauth", "-d").stdout == "SMTP AUTH : OFF\n"
    reload_now(t)
    submit(t, [BOB], subject="after -d")
    (rep,) = reports(t)
    (g,) = status_groups(rep)
    assert g["action"] == "failed" and g["diagnostic-code"].startswith("smtp; 530")
    assert len(p.messages(BOB)) == 1
