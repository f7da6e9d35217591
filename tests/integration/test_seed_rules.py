"""The seed rules over real sockets: a local domain bound to listen addresses
(S4, seed 002 "multiple domains"), the seed-002 authentication tab in full
(A6), postmaster/abuse/webmaster senders however they are reached (A5,
seed 003), and the RFC 4954 replies of the sender rules and of AUTH (A1)."""
import base64
import hashlib
import hmac
import sqlite3
import ssl
import time

import pytest

from conftest import RawSMTP


def b64(s):
    return base64.b64encode(s.encode()).decode()


def eventually(check, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def session(port, host="127.0.0.1"):
    c = RawSMTP(port, host=host)
    assert c.reply()[0] == 220
    code, lines = c.cmd("EHLO client.example")
    assert code == 250
    return c, [l.upper() for l in lines[1:]]


def starttls(c):
    assert c.cmd("STARTTLS")[0] == 220
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock, c.buf = ctx.wrap_socket(c.sock, server_hostname="localhost"), b""
    code, lines = c.cmd("EHLO client.example")
    assert code == 250
    return [l.upper() for l in lines[1:]]


def tls_session(t, user=None, password="secret"):
    c, _ = session(t.port)
    starttls(c)
    if user:
        code, texts = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, password)))
        assert code == 235, (code, texts)
    return c


def rcpt(port, rcpt_to, host="127.0.0.1", sender="someone@example.org"):
    """(code, text) of RCPT TO in a fresh session (MAIL must pass)."""
    c, _ = session(port, host)
    try:
        code, texts = c.cmd("MAIL FROM:<%s>" % sender)
        assert code == 250, texts
        code, texts = c.cmd("RCPT TO:<%s>" % rcpt_to)
        return code, texts[0]
    finally:
        c.close()


def mail_from(c, sender):
    code, texts = c.cmd("MAIL FROM:<%s>" % sender)
    if code == 250:
        c.cmd("RSET")
    return code, texts[0]


# --- S4: a local domain bound to listen addresses --------------------------------

def test_bound_domain_accepted_only_on_its_addresses(tegami_new):
    """Seed 002 (複数ドメイン): each domain with its interface. On another
    address its recipients get exactly what a non-local domain gets."""
    t = tegami_new
    r = t.cli("domain", "add", "bound.test", "--bind", "127.0.0.2")
    assert r.stdout == ("domain bound.test added (postmaster: postmaster@bound.test), "
                        "bound to 127.0.0.2\n")
    t.add_user("carol@bound.test")
    t.add_user("bob@example.test")
    t.start(**{"smtp.listen": "127.0.0.1:%d,127.0.0.2:%d" % (t.port, t.port)})
    assert "bound.test\tpostmaster=postmaster@bound.test\tbind=127.0.0.2\n" in \
        t.cli("domain", "list").stdout

    assert rcpt(t.port, "carol@bound.test", host="127.0.0.2")[0] == 250
    assert rcpt(t.port, "postmaster@bound.test", host="127.0.0.2")[0] == 250
    # elsewhere: the reply of a domain that is not ours, for users and non-users alike
    foreign = rcpt(t.port, "carol@example.org")
    refused = "5.7.1 <%s>: Relay access denied (RELAY REFUSED 127.0.0.1)"
    assert foreign == (550, refused % "carol@example.org")
    for addr in ("carol@bound.test", "nobody@bound.test", "Carol@BOUND.test"):
        code, text = rcpt(t.port, addr)
        assert (code, text) == (550, refused % addr)
    # unbound domains as before, on both addresses
    assert rcpt(t.port, "bob@example.test")[0] == 250
    assert rcpt(t.port, "bob@example.test", host="127.0.0.2")[0] == 250

    # rebinding and unbinding reach the running daemon
    r = t.cli("domain", "bind", "bound.test", "127.0.0.1, 127.0.0.1,127.0.0.3")
    assert r.stdout == "domain bound.test is accepted only on 127.0.0.1,127.0.0.3\n"
    assert eventually(lambda: rcpt(t.port, "carol@bound.test")[0] == 250)
    assert rcpt(t.port, "carol@bound.test", host="127.0.0.2")[0] == 550
    r = t.cli("domain", "bind", "bound.test", "--none")
    assert r.stdout == "domain bound.test is accepted on every listen address\n"
    assert eventually(lambda: rcpt(t.port, "carol@bound.test", host="127.0.0.2")[0] == 250)
    assert "bind=" not in t.cli("domain", "list").stdout


def test_bound_domain_over_ipv6_and_percent_routing(tegami_new):
    t = tegami_new
    t.cli("domain", "add", "six.test", "--bind", "0:0::1")
    t.add_user("dan@six.test")
    t.start(**{"smtp.listen": "127.0.0.1:%d,[::1]:%d" % (t.port, t.port),
               "smtp.percent_routing": "yes"})
    assert "\tbind=::1\n" in t.cli("domain", "list").stdout
    assert rcpt(t.port, "dan@six.test", host="::1")[0] == 250
    assert rcpt(t.port, "dan@six.test")[0] == 550
    # routed through an unbound local domain to the bound one: still refused here
    assert rcpt(t.port, "dan%six.test@example.test")[0] == 550
    assert rcpt(t.port, "dan%six.test@example.test", host="::1")[0] == 250


def test_domain_bind_errors(tegami_new):
    t = tegami_new

    def fails(r, code, needle):
        assert r.returncode == code and r.stdout == "", (r.returncode, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    fails(t.cli("domain", "add", "x.test", "--bind", "10.0.0.0/8", check=False), 2,
          "not an IP address")
    fails(t.cli("domain", "add", "x.test", "--bind", "1.2.3.4,", check=False), 2, "--bind")
    fails(t.cli("domain", "add", "x.test", "--bind", check=False), 2, "usage")
    fails(t.cli("domain", "add", "x.test", "--bind", "1.2.3.4", "--bind", "1.2.3.5",
                check=False), 2, "usage")
    fails(t.cli("domain", "bind", "x.test", check=False), 2, "usage")
    fails(t.cli("domain", "bind", "nosuch.test", "127.0.0.1", check=False), 1, "no such domain")
    fails(t.cli("domain", "bind", "example.test", "host.example", check=False), 2,
          "not an IP address")
    assert "x.test" not in t.cli("domain", "list").stdout     # nothing half-made
    r = t.cli("domain", "add", "x.test", "--postmaster", "boss@example.test", "--bind", "::1")
    assert r.returncode == 0
    assert "x.test\tpostmaster=boss@example.test\tbind=::1" in t.cli("domain", "list").stdout


def test_binding_survives_backup_restore_and_old_backups_upgrade(tegami_new, tmp_path):
    from conftest import Tegami
    t = tegami_new
    t.cli("domain", "add", "bound.test", "--bind", "127.0.0.2,::1")
    backup = tmp_path / "b.db"
    t.cli("backup", backup)
    other = Tegami(tmp_path / "other")
    other.cli("restore", backup)
    assert "bound.test\tpostmaster=postmaster@bound.test\tbind=127.0.0.2,::1\n" in \
        other.cli("domain", "list").stdout
    # A backup from before bindings existed (schema 4) is brought up to date.
    old = tmp_path / "old.db"
    old.write_bytes(backup.read_bytes())
    with sqlite3.connect(old) as db:
        db.execute("ALTER TABLE domains DROP COLUMN bind")
        db.execute("PRAGMA user_version = 4")
    db.close()
    other.cli("restore", old)
    out = other.cli("domain", "list").stdout
    assert "bound.test\tpostmaster=postmaster@bound.test\n" in out and "bind=" not in out
    other.cli("domain", "bind", "bound.test", "127.0.0.2")
    assert "bind=127.0.0.2" in other.cli("domain", "list").stdout


# --- A6: the authentication tab ----------------------------------------------------

def test_verify_ids_local_only_smtp_users_may_authenticate(tegami):
    """Seed 002 「ローカル配信で ID を検査」: only users on the list of those
    allowed to log on to SMTP may authenticate; others get 535, counted as a
    failed login by the dynamic screen. Mail without AUTH is not affected."""
    tegami.set(**{"auth.verify_ids_local": "yes", "auth.fail_delay_max": "0",
                  "screen.auth_failures": "3"})
    tegami.cli("list", "add", "smtp-users", "Alice@Example.Test")
    assert "smtp-users\talice@example.test\n" in tegami.cli("list", "show", "smtp-users").stdout

    def auth(user):
        c = tls_session(tegami)
        code, texts = c.cmd("AUTH PLAIN " + b64("\0%s\0secret" % user))
        c.close()
        return code, texts[0]
    assert eventually(lambda: auth("bob@example.test")[0] == 535)
    assert auth("alice@example.test")[0] == 235
    # local delivery without AUTH still works (the setting is about logging on)
    assert rcpt(tegami.port, "bob@example.test")[0] == 250
    # bob's right password counts as a failed login: the third one bans the IP
    code, text = auth("bob@example.test")
    assert (code, text[:5]) == (535, "5.7.8") and "smtp-users" in text
    code, text = auth("bob@example.test")
    assert (code, text[:5]) == (421, "4.7.0")
    assert "failed AUTH" in tegami.cli("screen", "list").stdout


def test_verify_mail_from_must_match_authenticated_user(tegami):
    """Seed 002 「ユーザーからのメールを検査」: the sender must be in the
    directory and match; the accept list is exempt (not_accept_list)."""
    tegami.set(**{"auth.verify_mail_from": "all", "auth.match_return_path": "no"})
    time.sleep(1.5)
    c = tls_session(tegami, user="alice@example.test")
    code, text = mail_from(c, "bob@example.test")
    assert (code, text[:5]) == (553, "5.7.1") and "authenticated user" in text
    assert mail_from(c, "someone@example.org")[0] == 553
    assert mail_from(c, "ALICE@example.test")[0] == 250
    assert mail_from(c, "")[0] == 250               # the null reverse-path is no identity
    c.close()
    tegami.set(**{"auth.verify_mail_from": "not_accept_list"})
    tegami.cli("list", "add", "accept", "bob@example.test")
    time.sleep(1.5)
    c = tls_session(tegami, user="alice@example.test")
    assert mail_from(c, "bob@example.test")[0] == 250
    assert mail_from(c, "someone@example.org")[0] == 553
    c.close()


@pytest.mark.parametrize("mode", ["local_and_relay", "relay_only"])
def test_require_tls_modes_offer_auth_only_under_tls(tegami, mode):
    """Seed 002 "Require TLS/SSL and authenticate ...": with either choice,
    no AUTH before STARTTLS, in EHLO or as a command, and the replies say so."""
    tegami.set(**{"auth.mode": mode})

    def ehlo_plain():
        c, ext = session(tegami.port)
        c.close()
        return ext
    assert eventually(lambda: not any(e.startswith("AUTH") for e in ehlo_plain()))
    assert "STARTTLS" in ehlo_plain()
    c, _ = session(tegami.port)
    code, texts = c.cmd("AUTH CRAM-MD5")
    assert (code, texts[0][:5]) == (530, "5.7.0") and "STARTTLS" in texts[0]
    if mode == "relay_only":
        assert c.cmd("MAIL FROM:<someone@example.org>")[0] == 250
        code, texts = c.cmd("RCPT TO:<x@example.net>")
        assert (code, texts[0][:5]) == (530, "5.7.0") and "STARTTLS" in texts[0]
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250   # local delivery: no AUTH
    else:
        code, texts = c.cmd("MAIL FROM:<someone@example.org>")
        assert (code, texts[0][:5]) == (530, "5.7.0") and "STARTTLS" in texts[0]
    c.close()
    c, _ = session(tegami.port)
    ext = starttls(c)
    assert "AUTH PLAIN LOGIN CRAM-MD5" in ext
    if mode == "relay_only":
        assert c.cmd("MAIL FROM:<someone@example.org>")[0] == 250
        code, texts = c.cmd("RCPT TO:<x@example.net>")
        assert (code, texts[0][:5]) == (530, "5.7.0") and "authentication" in texts[0]
        c.cmd("RSET")
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))[0] == 235
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    c.close()


# --- A5: postmaster, abuse, webmaster -----------------------------------------------

def test_postmaster_rule_covers_every_domain_and_aliases(tegami):
    """Seed 003: AUTH for mail from postmaster@, abuse@, webmaster@ "of the
    alias or real address": every local domain, and local addresses that an
    alias maps to one of them."""
    tegami.cli("domain", "add", "other.test")
    tegami.cli("alias", "add", "hostmaster@example.test", "postmaster@other.test")
    tegami.cli("alias", "add", "security@other.test", "desk@example.test")
    tegami.cli("alias", "add", "desk@example.test", "Abuse@example.test")
    tegami.cli("alias", "add", "team@example.test", "alice@example.test")
    time.sleep(1.5)
    c, _ = session(tegami.port)
    for sender in ("postmaster@other.test", "WEBMASTER@other.test", "abuse@example.test",
                   "hostmaster@example.test", "security@other.test", "desk@example.test"):
        code, text = mail_from(c, sender)
        assert (code, text[:5]) == (530, "5.7.0"), sender
        assert "postmaster, abuse and webmaster" in text
    for sender in ("team@example.test", "postmaster@example.org", "ghost@other.test"):
        assert mail_from(c, sender)[0] == 250, sender
    c.close()
    tegami.set(**{"auth.require_for_postmaster": "no"})
    time.sleep(1.5)
    c, _ = session(tegami.port)
    assert mail_from(c, "hostmaster@example.test")[0] == 250
    c.close()


# --- RFC 4954 replies, and the null reverse-path -------------------------------------

def test_null_reverse_path_from_an_authenticated_client(tegami):
    """RFC 5321 §4.5.5: bounces and DSNs have MAIL FROM:<>; the return-path
    rule compares real addresses only."""
    c = tls_session(tegami, user="alice@example.test")
    assert c.cmd("MAIL FROM:<>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("From: alice@example.test\r\nSubject: receipt\r\n\r\nread\r\n.\r\n")
    assert c.reply()[0] == 250
    code, texts = c.cmd("MAIL FROM:<bob@example.test>")
    assert code == 553                                     # real addresses still compared
    c.close()
    tegami.wait_messages("bob@example.test", 1)


def test_policy_rules_that_want_auth_reply_530(tegami):
    """RFC 4954 §6: 530 5.7.0 where policy requires authentication."""
    code, text = rcpt(tegami.port, "bob@example.test", sender="alice@example.test")
    assert (code, text[:5]) == (530, "5.7.0") and "local sender" in text
    c, _ = session(tegami.port)
    code, text = mail_from(c, "postmaster@example.test")
    assert (code, text[:5]) == (530, "5.7.0")
    c.close()
    tegami.set(**{"auth.local_networks": "127.0.0.0/8"})
    tegami.cli("list", "del", "trusted", "127.0.0.0/8")

    def local_ip_code():
        c, _ = session(tegami.port)
        code, text = mail_from(c, "someone@example.org")
        c.close()
        return code, text[:5]
    assert eventually(lambda: local_ip_code() == (530, "5.7.0"))


def cram_auth(t, user, password="secret"):
    c, _ = session(t.port)
    code, texts = c.cmd("AUTH CRAM-MD5")
    assert code == 334
    d = hmac.new(password.encode(), base64.b64decode(texts[0]), hashlib.md5).hexdigest()
    code, texts = c.cmd(b64("%s %s" % (user, d)))
    c.close()
    return code, texts[0]


def test_cram_md5_off_for_the_user_is_534(tegami):
    tegami.cli("user", "cram-md5", "alice@example.test", "off")
    assert eventually(lambda: cram_auth(tegami, "alice@example.test")[0] == 534)
    assert cram_auth(tegami, "alice@example.test")[1].startswith("5.7.9")
    assert cram_auth(tegami, "bob@example.test")[0] == 235
    assert cram_auth(tegami, "bob@example.test", "wrong")[0] == 535


def test_directory_failure_during_auth_is_454(tegami):
    """A temporary failure to read the directory is not the client's fault:
    454 4.7.0, and the client may try again (no failed login counted)."""
    tegami.set(**{"screen.auth_failures": "1"})
    time.sleep(1.5)
    c = tls_session(tegami)
    db = sqlite3.connect(str(tegami.dir / "tegami.db"), timeout=10)
    db.execute("ALTER TABLE users RENAME TO users_away")
    db.commit()
    try:
        code, texts = c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))
        assert (code, texts[0][:5]) == (454, "4.7.0"), (code, texts)
    finally:
        db.execute("ALTER TABLE users_away RENAME TO users")
        db.commit()
        db.close()
    code, texts = c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))
    assert code == 235, (code, texts)
    c.close()
    assert tegami.cli("screen", "list").stdout == ""
