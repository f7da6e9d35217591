"""POP3 with real clients (issue 4 tests): Python poplib, fetchmail and
getmail6 fetching into a local Maildir, curl pop3:// and pop3s://, and the
byte-exact path SMTP DATA -> Maildir -> RETR (dots, 8-bit, empty, 20 MB).

fetchmail and getmail6 come from Debian (`apt-get install fetchmail
getmail6`); the tests that need them are skipped when they are missing.
getmail6 (6.18) has no STLS: it is driven over POP3S and over plaintext POP3
with auth.allow_plaintext=yes."""
import getpass
import os
import pathlib
import poplib
import shutil
import ssl
import subprocess
import sys
import tempfile

import pytest

from test_pop3 import (ALICE, BOB, PLAIN, SENDER, Pop3, client_ctx, deliver, list_map,
                       stat)

TWO = [b"From: x@example.org\r\nSubject: first\r\n\r\nhello\r\n.dotted line\r\n..two dots\r\n",
       b"From: x@example.org\r\nSubject: second\r\n\r\nworld\r\n"]

DELIVER_PY = r"""
import os, sys, time
d = sys.argv[1]
data = sys.stdin.buffer.read()
name = "%d.P%d.test" % (time.time_ns(), os.getpid())
with open(os.path.join(d, "tmp", name), "wb") as f:
    f.write(data)
os.rename(os.path.join(d, "tmp", name), os.path.join(d, "new", name))
"""


@pytest.fixture
def pop(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.add_user(BOB)
    return tegami_new.start(**PLAIN)


def local_maildir(tmp_path):
    md = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    return md


def local_messages(md):
    return sorted((md / "new").iterdir()) + sorted((md / "cur").iterdir())


def lf(b):
    return b.replace(b"\r\n", b"\n")


def cert(t):
    return t.dir / "tls" / "self-signed.crt"


def cert_cn(t):
    subject = ssl._ssl._test_decode_cert(str(cert(t)))["subject"]
    return dict(x[0] for x in subject)["commonName"]


def as_crlf(file_bytes):
    """What RETR must send for a Maildir file: every LF as CRLF."""
    assert b"\r" not in file_bytes
    return file_bytes.replace(b"\n", b"\r\n")


# --- poplib -----------------------------------------------------------------

def test_poplib_user_pass(pop):
    deliver(pop, *TWO)
    files = pop.messages(ALICE)
    m = poplib.POP3("127.0.0.1", pop.pop3_port, timeout=10)
    assert m.getwelcome().startswith(b"+OK")
    caps = m.capa()
    assert "USER" in caps and "STLS" in caps and caps["SASL"] == ["PLAIN", "LOGIN", "CRAM-MD5"]
    assert m.user(ALICE).startswith(b"+OK")
    assert m.pass_("secret").startswith(b"+OK")
    count, size = m.stat()
    assert count == 2
    resp, listing, _ = m.list()
    sizes = {int(l.split()[0]): int(l.split()[1]) for l in listing}
    assert sum(sizes.values()) == size
    _, uidls, _ = m.uidl()
    assert len({l.split()[1] for l in uidls}) == 2
    got = []
    for i in (1, 2):
        resp, lines, octets = m.retr(i)
        assert octets == sizes[i] and resp == b"+OK %d octets" % sizes[i]
        got.append(b"\r\n".join(lines) + b"\r\n")
    expected = sorted(as_crlf(f) for f in pop.messages(ALICE).values())
    assert sorted(got) == expected
    _, top, _ = m.top(1, 0)
    assert top[-1] == b"" and top[0].startswith(b"Return-Path: ")
    assert m.dele(1).startswith(b"+OK")
    assert m.quit().startswith(b"+OK")
    assert len(pop.messages(ALICE)) == 1 and len(files) == 2


def test_poplib_stls(tegami):
    deliver(tegami, *TWO)
    m = poplib.POP3("127.0.0.1", tegami.pop3_port, timeout=10)
    caps = m.capa()
    assert "USER" not in caps and caps["SASL"] == ["CRAM-MD5"]
    with pytest.raises(poplib.error_proto) as e:
        m.user(ALICE)                                         # A4: not in clear text
    assert e.value.args[0].startswith(b"-ERR [AUTH]")
    assert m.stls(context=client_ctx()).startswith(b"+OK")
    caps = m.capa()
    assert "USER" in caps and "STLS" not in caps
    m.user(ALICE)
    m.pass_("secret")
    assert m.stat()[0] == 2
    resp, lines, octets = m.retr(1)
    assert octets == len(b"\r\n".join(lines) + b"\r\n")
    m.quit()


def test_poplib_pop3_ssl(tegami):
    deliver(tegami, *TWO)
    ctx = ssl.create_default_context(cafile=str(cert(tegami)))
    ctx.check_hostname = False                                # CN is the host name
    m = poplib.POP3_SSL("127.0.0.1", tegami.pop3s_port, context=ctx, timeout=10)
    assert m.getwelcome().startswith(b"+OK")
    caps = m.capa()
    assert "STLS" not in caps and "USER" in caps
    m.user(ALICE)
    m.pass_("secret")
    assert m.stat()[0] == 2
    assert m.dele(2).startswith(b"+OK")
    assert m.rset().startswith(b"+OK")
    m.quit()
    assert len(tegami.messages(ALICE)) == 2


def test_poplib_apop_refused_cleanly_and_rpop_absent(tegami):
    m = poplib.POP3("127.0.0.1", tegami.pop3_port, timeout=10)
    with pytest.raises(poplib.error_proto) as e:
        m.apop(ALICE, "secret")                               # no timestamp: refused
    assert "APOP" in str(e.value)                             # by poplib itself
    with pytest.raises(poplib.error_proto) as e:              # and by the server
        m._shortcmd("APOP %s 0123456789abcdef0123456789abcdef" % ALICE)
    assert e.value.args[0].startswith(b"-ERR")
    with pytest.raises(poplib.error_proto) as e:
        m.rpop(ALICE)
    assert e.value.args[0].startswith(b"-ERR")
    assert "STLS" in m.capa()                                 # still talking
    m.stls(context=client_ctx())
    m.user(ALICE)
    m.pass_("secret")
    assert m.quit().startswith(b"+OK")


# --- fetchmail --------------------------------------------------------------

@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
@pytest.mark.parametrize("mode", ["stls", "pop3s"])
@pytest.mark.parametrize("keep", [True, False], ids=["keep", "nokeep"])
def test_fetchmail(tegami, tmp_path, mode, keep):
    deliver(tegami, *TWO)
    md = local_maildir(tmp_path)
    mda = tmp_path / "deliver.py"
    mda.write_text(DELIVER_PY)
    port = tegami.pop3_port if mode == "stls" else tegami.pop3s_port
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\nset no spambounce\n"
        "poll 127.0.0.1 service %d protocol pop3 auth password:\n"
        "  user \"%s\" there with password \"secret\" is \"%s\" here\n"
        "  options fetchall %s no rewrite\n"
        "  %s sslproto 'TLS1.2+' sslcertck sslcertfile \"%s\" sslcommonname \"%s\"\n"
        "  mda \"%s %s %s\"\n"
        % (port, ALICE, getpass.getuser(), "keep" if keep else "no keep",
           "ssl" if mode == "pop3s" else "", cert(tegami), cert_cn(tegami),
           sys.executable, mda, md))
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "-v", "--nosyslog", "--idfile",
                        str(tmp_path / "ids"), "--pidfile", str(tmp_path / "pid")],
                       capture_output=True, text=True, timeout=60, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    if mode == "stls":
        assert "POP3> STLS" in out, out
    got = [lf(f.read_bytes()) for f in local_messages(md)]
    assert len(got) == 2, out
    for orig in TWO:
        assert sum(g.endswith(lf(orig)) for g in got) == 1, (orig, got)
    assert len(tegami.messages(ALICE)) == (2 if keep else 0)


# --- getmail6 ---------------------------------------------------------------

@pytest.mark.skipif(shutil.which("getmail") is None, reason="getmail6 not installed")
@pytest.mark.parametrize("mode,keep", [("pop3s", True), ("pop3s", False), ("plain", False)])
def test_getmail6(pop, tmp_path, mode, keep):
    deliver(pop, *TWO)
    rc = tmp_path / "getmailrc"
    if mode == "pop3s":
        retriever = ("type = SimplePOP3SSLRetriever\nport = %d\nca_certs = %s\n"
                     "ssl_cert_hostname = %s\n" % (pop.pop3s_port, cert(pop), cert_cn(pop)))
    else:
        retriever = "type = SimplePOP3Retriever\nport = %d\n" % pop.pop3_port
    user = ""
    if os.geteuid() == 0:
        # getmail refuses to write a Maildir as root: it delivers as nobody,
        # into a Maildir outside pytest's root-only temporary tree.
        top = pathlib.Path(tempfile.mkdtemp(prefix="tegami-getmail-"))
        md = local_maildir(top)
        for d in (top, md, md / "tmp", md / "new", md / "cur"):
            shutil.chown(d, "nobody")
        user = "user = nobody\n"
    else:
        top = None
        md = local_maildir(tmp_path)
    rc.write_text("[retriever]\n%sserver = 127.0.0.1\nusername = %s\npassword = secret\n\n"
                  "[destination]\ntype = Maildir\npath = %s/\n%s\n"
                  "[options]\ndelete = %s\nread_all = true\nverbose = 2\n"
                  % (retriever, ALICE, md, user, "false" if keep else "true"))
    try:
        r = subprocess.run(["getmail", "--getmaildir", str(tmp_path), "--rcfile", str(rc)],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, HOME=str(tmp_path)))
        got = [lf(f.read_bytes()) for f in local_messages(md)]
    finally:
        if top is not None:
            shutil.rmtree(top)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert len(got) == 2, out
    for orig in TWO:
        assert sum(g.endswith(lf(orig)) for g in got) == 1, (orig, got)
    assert len(pop.messages(ALICE)) == (2 if keep else 0)


# --- curl -------------------------------------------------------------------

def curl(*args):
    r = subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize("scheme", ["pop3", "pop3s"])
def test_curl_list_retr_dele(tegami, scheme):
    deliver(tegami, *TWO)
    port = tegami.pop3_port if scheme == "pop3" else tegami.pop3s_port
    base = ["--cacert", str(cert(tegami)), "-k", "-u", ALICE + ":secret"]
    if scheme == "pop3":
        base.append("--ssl-reqd")                             # STLS, then login
    url = "%s://127.0.0.1:%d/" % (scheme, port)
    listing = curl(*base, url)
    lines = listing.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == 3
    sizes = {int(l.split()[0]): int(l.split()[1]) for l in lines[:-1]}
    files = tegami.messages(ALICE)
    got = [curl(*base, url + "1"), curl(*base, url + "2")]
    assert sorted(got) == sorted(as_crlf(f) for f in files.values())
    assert [len(g) for g in got] == [sizes[1], sizes[2]]
    curl(*base, "-X", "DELE 1", "-I", url)
    assert len(tegami.messages(ALICE)) == 1
    assert curl(*base, url) == b"1 %d\r\n" % sizes[2]
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
        assert curl(*base, "--login-options", "AUTH=" + mech, url + "1") == got[1]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_wrong_password_fails(tegami):
    r = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd", "-u", ALICE + ":wrong",
                        "pop3://127.0.0.1:%d/" % tegami.pop3_port], capture_output=True,
                       timeout=60)
    assert r.returncode == 67                                 # CURLE_LOGIN_DENIED


# --- byte-exact: SMTP DATA -> Maildir -> RETR ---------------------------------

def smtp_data(t, message, rcpt=ALICE, body8=False):
    """Sends message (the octets the server must receive) with exact DATA
    framing; dot-stuffing is ours."""
    c = t.raw()
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<%s>%s" % (SENDER, " BODY=8BITMIME" if body8 else ""))[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354
    assert message == b"" or message.endswith(b"\r\n")
    stuffed = b"".join((b"." + l if l.startswith(b".") else l)
                       for l in message.splitlines(keepends=True))
    c.send(stuffed + b".\r\n")
    code, texts = c.reply()
    assert code == 250, texts
    assert c.cmd("QUIT")[0] == 221
    c.close()


def check_retr(t, message, index=1, timeout=10):
    """RETR (and LIST/STAT) agree with the Maildir file and with what SMTP
    received, octet for octet."""
    files = list(t.messages(ALICE).values())
    assert len(files) == 1
    wire = as_crlf(files[0])
    p = Pop3(t.pop3_port, timeout=timeout)
    assert p.login().startswith("+OK")
    n, total = stat(p)
    assert (n, total) == (1, len(wire))
    assert list_map(p) == {1: len(wire)}
    first, got = p.retr(index)
    assert first == "+OK %d octets" % len(wire)
    assert got == wire
    # The Maildir file is our trace headers, then exactly what SMTP received.
    assert got.endswith(message)
    trace = got[:len(got) - len(message)]
    tl = trace.split(b"\r\n")[:-1]
    assert tl[0] == b"Return-Path: <%s>" % SENDER.encode()
    assert tl[1].startswith(b"Received: ") and all(l.startswith(b"\t") for l in tl[2:])
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    return got


CASES = {
    "dots": b"Subject: dots\r\n\r\n.\r\n..\r\n...\r\n. x\r\n.a.b.\r\nx.\r\n.\r\n",
    "eightbit": "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n手紙です。\r\n".encode()
                + bytes(range(0x80, 0x100)) + b"\r\n.\xe3\x81\x82\r\n",
    "empty_body": b"Subject: empty body\r\nFrom: x@example.org\r\n\r\n",
    "headers_only": b"Subject: no separator\r\n",
    "blank_lines": b"Subject: blanks\r\n\r\n\r\n\r\n \r\n\t\r\n\r\n",
    "long_line": b"Subject: long\r\n\r\n" + b"x" * 998 + b"\r\n." + b"y" * 996 + b"\r\n",
    "empty_message": b"",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_retr_byte_exact(pop, name):
    message = CASES[name]
    smtp_data(pop, message, body8=name == "eightbit")
    check_retr(pop, message)


def test_retr_20mb_byte_exact(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.start(**PLAIN, **{"smtp.max_message_size": "32M"})
    line = (b"0123456789abcdefghijklmnopqrstuvwxyz\xe6\x89\x8b\xe7\xb4\x99 "
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n")
    block = line * 63 + b"." + line + b".\r\n" + b"\r\n"
    message = b"Subject: big\r\n\r\n" + block * (20 * 1024 * 1024 // len(block) + 1)
    assert len(message) > 20 * 1024 * 1024
    smtp_data(tegami_new, message, body8=True)
    check_retr(tegami_new, message, timeout=120)
