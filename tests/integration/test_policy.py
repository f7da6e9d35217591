"""Sender rules: the MDaemon SMTP AUTH options (A5) and the seed-002
authentication tab (A6). Every refusal names its rule in the reply text."""
import base64
import socket
import ssl
import time

from conftest import RawSMTP


def b64(s):
    return base64.b64encode(s.encode()).decode()


def tls_session(t, port=None, user=None):
    c = RawSMTP(port or t.port)
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example")
    assert c.cmd("STARTTLS")[0] == 220
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock, c.buf = ctx.wrap_socket(c.sock, server_hostname="localhost"), b""
    c.cmd("EHLO client.example")
    if user:
        assert c.cmd("AUTH PLAIN " + b64("\0%s\0secret" % user))[0] == 235
    return c


def plain_session(t):
    c = t.raw()
    c.cmd("EHLO client.example")
    return c


def eventually(check, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def mail_rcpt(t, sender, rcpt="bob@example.test", session=None):
    c = session or plain_session(t)
    code, texts = c.cmd("MAIL FROM:<%s>" % sender)
    if code == 250:
        code, texts = c.cmd("RCPT TO:<%s>" % rcpt)
    c.close()
    return code, texts[0]


def test_local_sender_needs_auth(tegami):
    code, text = mail_rcpt(tegami, "alice@example.test")
    assert code == 530 and text.startswith("5.7.0") and "local sender" in text
    assert mail_rcpt(tegami, "someone@example.org")[0] == 250
    # a local-domain sender without a mailbox here lives on another server (on by default)
    assert mail_rcpt(tegami, "ghost@example.test")[0] == 250
    tegami.set(**{"auth.local_sender_except_other_server": "no"})
    assert eventually(lambda: mail_rcpt(tegami, "ghost@example.test")[0] == 530)
    tegami.set(**{"auth.local_sender_except_local_rcpt": "yes"})
    assert eventually(lambda: mail_rcpt(tegami, "alice@example.test")[0] == 250)
    tegami.set(**{"auth.require_local_sender": "no", "auth.local_sender_except_local_rcpt": "no"})
    assert eventually(lambda: mail_rcpt(tegami, "alice@example.test")[0] == 250)


def test_postmaster_abuse_webmaster_need_auth(tegami):
    for local in ("postmaster", "Abuse", "webmaster"):
        c = plain_session(tegami)
        code, texts = c.cmd("MAIL FROM:<%s@example.test>" % local)
        assert code == 530 and "postmaster, abuse and webmaster" in texts[0]
        c.close()
    # authenticated, and exempt from the identity match: accepted
    tegami.cli("list", "add", "exempt", "postmaster@example.test")
    assert eventually(lambda: mail_rcpt(
        tegami, "postmaster@example.test", session=tls_session(
            tegami, user="alice@example.test"))[0] == 250)


def test_auth_identity_must_match_return_path(tegami):
    c = tls_session(tegami, user="alice@example.test")
    code, texts = c.cmd("MAIL FROM:<bob@example.test>")
    assert code == 553 and texts[0].startswith("5.7.1") and "authenticated user" in texts[0]
    assert c.cmd("MAIL FROM:<Alice@Example.Test>")[0] == 250
    c.close()
    tegami.cli("list", "add", "exempt", "bob@example.test")
    assert eventually(lambda: mail_rcpt(
        tegami, "bob@example.test", session=tls_session(tegami, user="alice@example.test"))[0] == 250)


def send_data(c, body):
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(body.replace("\n", "\r\n") + "\r\n.\r\n")
    return c.reply()


def test_auth_identity_must_match_from_header(tegami):
    c = tls_session(tegami, user="alice@example.test")
    code, texts = send_data(c, "From: Bob <bob@example.test>\nSubject: x\n\nbody")
    assert code == 550 and "From: header does not match" in texts[0]
    code, texts = send_data(c, "Subject: no from\n\nbody")
    assert code == 550 and "From:" in texts[0]
    code, _ = send_data(c, 'From: "Alice, A." <ALICE@example.test>\nSubject: ok\n\nbody')
    assert code == 250
    code, _ = send_data(c, "From: alice@example.test,\n bob@example.test\nSubject: two\n\nb")
    assert code == 550
    c.close()
    tegami.wait_messages("bob@example.test", 1)
    tegami.set(**{"auth.match_from_header": "no"})
    time.sleep(1.5)
    c = tls_session(tegami, user="alice@example.test")
    assert send_data(c, "From: bob@example.test\n\nbody")[0] == 250
    c.close()


def test_local_ip_rule_and_trusted_list(tegami):
    assert tegami.cli("list", "show", "trusted").stdout == "trusted\t127.0.0.0/8\ntrusted\t::1\n"
    tegami.set(**{"auth.local_networks": "127.0.0.0/8"})
    time.sleep(1.5)
    assert mail_rcpt(tegami, "someone@example.org")[0] == 250      # trusted
    tegami.cli("list", "del", "trusted", "127.0.0.0/8")

    def refused():
        c = plain_session(tegami)
        code, texts = c.cmd("MAIL FROM:<someone@example.org>")
        c.close()
        return code == 530 and "local IP" in texts[0]
    assert eventually(refused)
    c = tls_session(tegami, user="alice@example.test")
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250       # AUTH passes
    c.close()
    tegami.cli("list", "add", "trusted", "127.0.0.1")
    assert eventually(lambda: not refused())


def test_mode_local_and_relay(tegami):
    tegami.set(**{"auth.mode": "local_and_relay"})

    def code_plain():
        c = plain_session(tegami)
        code, texts = c.cmd("MAIL FROM:<someone@example.org>")
        c.close()
        return code, texts[0]
    assert eventually(lambda: code_plain()[0] == 530)
    assert "STARTTLS" in code_plain()[1]
    c = tls_session(tegami)
    code, texts = c.cmd("MAIL FROM:<someone@example.org>")
    assert code == 530 and texts[0].startswith("5.7.0")
    c.close()
    c = tls_session(tegami, user="alice@example.test")
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    c.close()


def test_mode_relay_only(tegami):
    tegami.set(**{"auth.mode": "relay_only"})
    assert eventually(lambda: mail_rcpt(tegami, "someone@example.org", "x@example.net")[0] == 530)
    assert mail_rcpt(tegami, "someone@example.org")[0] == 250       # local delivery: no AUTH
    c = tls_session(tegami, user="alice@example.test")
    c.cmd("MAIL FROM:<alice@example.test>")
    code, texts = c.cmd("RCPT TO:<x@example.net>")
    assert code == 250, texts                  # authenticated and under TLS: may relay (O1)
    c.close()


def test_verify_mail_from(tegami):
    tegami.set(**{"auth.verify_mail_from": "all", "auth.require_local_sender": "no"})

    def code(sender):
        c = plain_session(tegami)
        cd, texts = c.cmd("MAIL FROM:<%s>" % sender)
        c.close()
        return cd
    assert eventually(lambda: code("ghost@example.test") == 553)
    assert code("alice@example.test") == 250
    assert code("someone@example.org") == 250
    tegami.set(**{"auth.verify_mail_from": "not_accept_list"})
    tegami.cli("list", "add", "accept", "ghost@example.test")
    assert eventually(lambda: code("ghost@example.test") == 250)
    assert code("ghost2@example.test") == 553


def test_verify_originator(tegami):
    tegami.set(**{"auth.verify_originator": "yes"})
    time.sleep(1.5)
    c = plain_session(tegami)
    assert c.cmd("MAIL FROM:<someone@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: none\r\n\r\nx\r\n.\r\n")
    code, texts = c.reply()
    assert code == 550 and "From:" in texts[0]
    c.close()


def test_auth_disallowed_on_smtp_port(tegami):
    tegami.set(**{"smtp.auth_disallow": "yes"})

    def no_auth():
        c = plain_session(tegami)
        _, lines = c.cmd("EHLO x")
        code, texts = c.cmd("AUTH CRAM-MD5")
        c.close()
        return not any(l.upper().startswith("AUTH") for l in lines) and code == 500
    assert eventually(no_auth)
    c = tls_session(tegami, tegami.submission_port, user="alice@example.test")  # MSA still fine
    c.close()
    tegami.set(**{"smtp.auth_disallow_screen": "yes", "screen.auth_failures": "2"})
    time.sleep(1.5)
    for _ in range(2):
        c = plain_session(tegami)
        code, texts = c.cmd("AUTH CRAM-MD5")
        assert code == 421 and c.closed()
    s = socket.create_connection(("127.0.0.1", tegami.port), timeout=5)
    assert s.recv(4096).startswith(b"421 4.7.0")
    s.close()
    assert "AUTH on the SMTP port" in tegami.cli("screen", "list").stdout


def test_list_command_validation(tegami):
    for args in (["list", "add", "nope", "x@example.test"], ["list", "add", "trusted", "x@y.z"],
                 ["list", "add", "exempt", "1.2.3.4"], ["list", "show", "nope"], ["list", "add"]):
        r = tegami.cli(*args, check=False)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, args
    assert tegami.cli("list", "del", "exempt", "x@example.test", check=False).returncode == 1
    tegami.cli("list", "add", "exempt", "X@Example.Test")
    assert "exempt\tx@example.test" in tegami.cli("list", "show").stdout
    r = tegami.cli("config", "set", "auth.local_networks=10.0.0.0/33", check=False)
    assert r.returncode == 2
