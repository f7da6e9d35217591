"""SMTP AUTH (RFC 4954) with PLAIN, LOGIN and CRAM-MD5 (A1), plaintext
mechanisms only under TLS (A4), per-listener policy (A3), stored secrets
(A8) and the dynamic screen (A7). Real clients: smtplib, swaks, curl, msmtp."""
import base64
import hashlib
import hmac
import shutil
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import time

import pytest

from conftest import RawSMTP


def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def tls_raw(t, port=None):
    """A RawSMTP session after EHLO + STARTTLS + EHLO."""
    c = RawSMTP(port or t.port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("STARTTLS")[0] == 220
    c.sock = ctx().wrap_socket(c.sock, server_hostname="localhost")
    c.buf = b""
    code, lines = c.cmd("EHLO client.example")
    assert code == 250
    return c, [l.upper() for l in lines[1:]]


def wait_setting(t, check, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_mechanisms_offered(tegami):
    """A4: plaintext session offers CRAM-MD5 only; TLS offers all three."""
    c = tegami.raw()
    code, lines = c.cmd("EHLO x")
    assert "AUTH CRAM-MD5" in [l.upper() for l in lines]
    c.close()
    c, ext = tls_raw(tegami)
    assert "AUTH PLAIN LOGIN CRAM-MD5" in ext
    c.close()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_smtplib_each_mechanism(tegami, mech):
    with smtplib.SMTP("127.0.0.1", tegami.port, timeout=10) as s:
        s.ehlo("client.example")
        s.starttls(context=ctx())
        s.ehlo("client.example")
        s.user, s.password = "alice@example.test", "secret"
        method = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
        code, _ = s.auth(mech, method, initial_response_ok=True)
        assert code == 235
        s.sendmail("alice@example.test", ["bob@example.test"],
                   b"From: alice@example.test\r\nSubject: a\r\n\r\nx\r\n")
    msg = list(tegami.wait_messages("bob@example.test", 1).values())[0]
    assert b"with ESMTPSA id" in msg


def test_plain_initial_response_and_challenge_forms(tegami):
    c, _ = tls_raw(tegami)
    code, texts = c.cmd("AUTH PLAIN")
    assert code == 334 and texts == [""]
    code, texts = c.cmd(b64("\0alice@example.test\0secret"))
    assert (code, texts[0][:5]) == (235, "2.7.0")
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))[0] == 503  # twice
    c.close()
    c, _ = tls_raw(tegami)
    code, texts = c.cmd("AUTH LOGIN " + b64("bob@example.test"))
    assert code == 334 and base64.b64decode(texts[0]) == b"Password:"
    assert c.cmd(b64("secret"))[0] == 235
    c.close()


def test_error_codes(tegami):
    c = tegami.raw()
    assert c.cmd("AUTH CRAM-MD5")[0] == 503                     # before EHLO
    c.cmd("EHLO x")
    code, t = c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))
    assert (code, t[0][:6]) == (538, "5.7.11")                  # needs TLS
    code, t = c.cmd("AUTH LOGIN")
    assert (code, t[0][:6]) == (538, "5.7.11")
    code, t = c.cmd("AUTH GSSAPI")
    assert (code, t[0][:5]) == (504, "5.5.4")
    code, t = c.cmd("AUTH")
    assert (code, t[0][:5]) == (501, "5.5.4")
    code, t = c.cmd("AUTH CRAM-MD5 " + b64("x"))                # no initial response allowed
    assert code == 501
    code, _ = c.cmd("AUTH CRAM-MD5")
    assert code == 334
    code, t = c.cmd("*")
    assert (code, t[0][:5]) == (501, "5.0.0")
    code, _ = c.cmd("AUTH CRAM-MD5")
    code, t = c.cmd("not base64!")
    assert (code, t[0][:5]) == (501, "5.5.2")
    assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
    code, t = c.cmd("AUTH CRAM-MD5")
    assert (code, t[0][:5]) == (503, "5.5.1")                   # in a transaction
    c.close()


def test_wrong_password_535_and_cram_wrong_digest(tegami):
    c, _ = tls_raw(tegami)
    code, t = c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong"))
    assert (code, t[0][:5]) == (535, "5.7.8")
    code, t = c.cmd("AUTH PLAIN " + b64("\0nobody@example.test\0secret"))
    assert (code, t[0][:5]) == (535, "5.7.8")
    code, t = c.cmd("AUTH PLAIN " + b64("bob@example.test\0alice@example.test\0secret"))
    assert code == 535                                          # acting for someone else
    code, texts = c.cmd("AUTH CRAM-MD5")
    challenge = base64.b64decode(texts[0])
    assert challenge.startswith(b"<") and challenge.endswith(b">")
    digest = hmac.new(b"wrong", challenge, hashlib.md5).hexdigest()
    assert c.cmd(b64("alice@example.test " + digest))[0] == 535
    code, texts = c.cmd("AUTH CRAM-MD5")
    digest = hmac.new(b"secret", base64.b64decode(texts[0]), hashlib.md5).hexdigest()
    assert c.cmd(b64("alice@example.test " + digest))[0] == 235
    c.close()


def test_failed_auth_is_delayed(tegami):
    c, _ = tls_raw(tegami)
    start = time.time()
    c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong1"))
    c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong2"))
    assert time.time() - start >= 2.5   # 1 s, then 2 s: the delay grows per IP (A7)
    c.close()


def test_allow_plaintext(tegami):
    tegami.set(**{"auth.allow_plaintext": "yes"})

    def offered():
        c = tegami.raw()
        _, lines = c.cmd("EHLO x")
        c.close()
        return "AUTH PLAIN LOGIN CRAM-MD5" in [l.upper() for l in lines]
    assert wait_setting(tegami, offered)
    c = tegami.raw()
    c.cmd("EHLO x")
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))[0] == 235
    c.close()


def test_listener_without_auth_and_tls_port_decides_starttls(tegami):
    """A3 / seed 001: smtp.auth_password=no → no AUTH on the plain session
    (502), but after STARTTLS the TLS listener's setting decides."""
    tegami.set(**{"smtp.auth_password": "no"})

    def gone():
        c = tegami.raw()
        _, lines = c.cmd("EHLO x")
        c.close()
        return not any(l.upper().startswith("AUTH") for l in lines)
    assert wait_setting(tegami, gone)
    c = tegami.raw()
    c.cmd("EHLO x")
    code, t = c.cmd("AUTH CRAM-MD5")
    assert (code, t[0][:5]) == (502, "5.5.1")
    c.close()
    c, ext = tls_raw(tegami)
    assert "AUTH PLAIN LOGIN CRAM-MD5" in ext
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))[0] == 235
    c.close()
    tegami.set(**{"smtp.auth_password": "yes", "smtps.auth_password": "no",
                  "smtps.auth_anonymous": "yes"})
    assert wait_setting(tegami, lambda: not gone())
    c, ext = tls_raw(tegami)
    assert not any(e.startswith("AUTH") for e in ext)
    c.close()


def test_saving_listener_without_auth_option_is_refused(tegami):
    r = tegami.cli("config", "set", "smtp.auth_password=no", "smtp.auth_anonymous=no",
                   check=False)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "smtp" in r.stderr and "auth_anonymous" in r.stderr
    assert tegami.cli("config", "get", "smtp.auth_password").stdout == "yes\n"
    r = tegami.cli("config", "set", "smtps.enforce_access=yes", "smtps.auth_password=no",
                   "smtps.auth_anonymous=yes", check=False)
    assert r.returncode == 2 and "enforce_access" in r.stderr
    assert tegami.cli("config", "set", "smtp.enabled=no", "smtp.auth_password=no",
                      "smtp.auth_anonymous=no").returncode == 0


def test_site_not_enabled(tegami):
    """A3: a listener left with no authentication option (edited behind the
    admin command's back) answers "This site is not enabled on the server."."""
    db = sqlite3.connect(tegami.dir / "tegami.db")
    db.execute("INSERT OR REPLACE INTO settings VALUES('smtp.auth_password', 'no')")
    db.execute("INSERT OR REPLACE INTO settings VALUES('smtp.auth_anonymous', 'no')")
    db.commit()
    db.close()

    def refused():
        s = socket.create_connection(("127.0.0.1", tegami.port), timeout=5)
        data = s.recv(4096)
        s.close()
        return data == b"554 5.7.0 This site is not enabled on the server.\r\n"
    assert wait_setting(tegami, refused)


def test_submission_requires_auth(tegami):
    c, _ = tls_raw(tegami, tegami.submission_port)
    code, t = c.cmd("MAIL FROM:<alice@example.test>")
    assert (code, t[0][:5]) == (530, "5.7.0")
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))[0] == 235
    assert c.cmd("MAIL FROM:<alice@example.test> AUTH=<>")[0] == 250
    c.close()


def test_enforce_server_access_list(tegami):
    tegami.set(**{"smtp.enforce_access": "yes"})

    def denied():
        c = tegami.raw()
        c.cmd("EHLO x")
        code, _ = c.cmd("MAIL FROM:<a@example.org>")
        c.close()
        return code == 550
    assert wait_setting(tegami, denied)
    tegami.cli("access", "add", "smtp", "127.0.0.0/8")
    assert wait_setting(tegami, lambda: not denied())
    tegami.cli("access", "del", "smtp", "127.0.0.0/8")
    tegami.cli("access", "add", "smtp", "alice@example.test")
    assert wait_setting(tegami, denied)
    c, _ = tls_raw(tegami)
    c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    c.close()
    c, _ = tls_raw(tegami)
    c.cmd("AUTH PLAIN " + b64("\0bob@example.test\0secret"))
    code, t = c.cmd("MAIL FROM:<bob@example.test>")
    assert (code, t[0][:5]) == (550, "5.7.1")
    c.close()
    assert tegami.cli("access", "list").stdout == "smtp\talice@example.test\n"
    r = tegami.cli("access", "add", "pop3", "1.2.3.4", check=False)
    assert r.returncode == 2
    r = tegami.cli("access", "add", "smtp", "1.2.3.4/99", check=False)
    assert r.returncode == 2


def test_cram_md5_secret_and_disable(tegami):
    """A8: the database holds a yescrypt hash and the HMAC-MD5 key schedule,
    never the password; CRAM-MD5 can be disabled per user and globally."""
    db = sqlite3.connect(tegami.dir / "tegami.db")
    pw, cram = db.execute("SELECT password, cram_md5 FROM users WHERE address=?",
                          ("alice@example.test",)).fetchone()
    db.close()
    assert pw.startswith("$y$") and len(cram) == 64 and "secret" not in cram
    assert b"secret" not in (tegami.dir / "tegami.db").read_bytes()

    def cram_login(user, password="secret"):
        c = tegami.raw()
        c.cmd("EHLO x")
        code, texts = c.cmd("AUTH CRAM-MD5")
        if code != 334:
            c.close()
            return code
        d = hmac.new(password.encode(), base64.b64decode(texts[0]), hashlib.md5).hexdigest()
        code, _ = c.cmd(b64("%s %s" % (user, d)))
        c.close()
        return code
    assert cram_login("alice@example.test") == 235
    tegami.cli("user", "cram-md5", "alice@example.test", "off")
    # RFC 4954 §6: the mechanism is too weak for this user
    assert wait_setting(tegami, lambda: cram_login("alice@example.test") == 534)
    r = tegami.cli("user", "cram-md5", "alice@example.test", "on", "--password-stdin",
                   input="wrong\n", check=False)
    assert r.returncode == 1 and "wrong password" in r.stderr
    tegami.cli("user", "cram-md5", "alice@example.test", "on", "--password-stdin",
               input="secret\n")
    assert cram_login("alice@example.test") == 235
    tegami.add_user("carol@example.test")
    tegami.cli("user", "passwd", "carol@example.test", "--password-stdin", "--no-cram-md5",
               input="other\n")
    assert cram_login("carol@example.test", "other") == 534
    tegami.set(**{"auth.cram_md5": "no"})
    assert wait_setting(tegami, lambda: cram_login("alice@example.test") == 504)


def test_password_change_defeats_cache(tegami):
    c, _ = tls_raw(tegami)
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))[0] == 235
    c.close()
    tegami.cli("user", "passwd", "alice@example.test", "--password-stdin", input="new-pw\n")
    c, _ = tls_raw(tegami)
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0secret"))[0] == 535
    c.close()
    c, _ = tls_raw(tegami)
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0new-pw"))[0] == 235
    c.close()
    assert "new-pw" not in tegami.log() and "secret" not in tegami.log()


def test_dynamic_screen_bans_and_expires(tegami):
    tegami.set(**{"screen.auth_failures": "3", "auth.fail_delay_max": "0",
                  "screen.ban_time": "3"})
    time.sleep(1.5)  # the daemon re-reads settings once a second
    c, _ = tls_raw(tegami)
    for _ in range(2):
        assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0bad"))[0] == 535
    code, t = c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0bad"))
    assert (code, t[0][:5]) == (421, "4.7.0")
    assert c.closed()
    s = socket.create_connection(("127.0.0.1", tegami.port), timeout=5)
    assert s.recv(4096).startswith(b"421 4.7.0")
    s.close()
    out = tegami.cli("screen", "list").stdout
    assert out.startswith("127.0.0.1\tuntil ") and "failed AUTH" in out
    assert wait_setting(tegami, lambda: tegami.cli("screen", "list").stdout == "", 8)
    c = tegami.raw()                   # expired: welcome again
    c.close()


def test_screen_admin_add_del(tegami):
    tegami.cli("screen", "add", "127.0.0.1", "--minutes", "5")

    def banned():
        s = socket.create_connection(("127.0.0.1", tegami.port), timeout=5)
        data = s.recv(4096)
        s.close()
        return data.startswith(b"421 4.7.0")
    assert wait_setting(tegami, banned)
    tegami.cli("screen", "del", "127.0.0.1")
    assert wait_setting(tegami, lambda: not banned())
    for bad in (["screen", "add", "not-an-ip"], ["screen", "add", "10.0.0.0/8"],
                ["screen", "add", "1.2.3.4", "--minutes", "0"], ["screen", "del"]):
        r = tegami.cli(*bad, check=False)
        assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert tegami.cli("screen", "del", "1.2.3.4", check=False).returncode == 1


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_auth(tegami, mech):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % tegami.submission_port, "--tls",
                        "--auth", mech, "--auth-user", "alice@example.test",
                        "--auth-password", "secret", "--from", "alice@example.test",
                        "--to", "bob@example.test"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    tegami.wait_messages("bob@example.test", 1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_curl_login_options(tegami, tmp_path, mech):
    mail = tmp_path / "m.txt"
    mail.write_bytes(b"From: alice@example.test\r\nSubject: curl\r\n\r\nx\r\n")
    r = subprocess.run(["curl", "-sS", "--insecure", "--ssl-reqd",
                        "smtp://127.0.0.1:%d" % tegami.submission_port,
                        "--login-options", "AUTH=" + mech, "--user", "alice@example.test:secret",
                        "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
                        "--upload-file", str(mail)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    tegami.wait_messages("bob@example.test", 1)


@pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp not installed")
def test_msmtp(tegami, tmp_path):
    conf = tmp_path / "msmtprc"
    conf.write_text("account default\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls on\n"
                    "tls_certcheck off\nauth plain\nuser alice@example.test\npassword secret\n"
                    "from alice@example.test\n" % tegami.submission_port)
    conf.chmod(0o600)
    r = subprocess.run(["msmtp", "-C", str(conf), "bob@example.test"],
                       input=b"Subject: msmtp\r\n\r\nhello\r\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    tegami.wait_messages("bob@example.test", 1)
