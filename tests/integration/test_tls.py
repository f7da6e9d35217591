"""STARTTLS (RFC 3207) and implicit TLS on the SMTPS listener (MISSION A2).

Clients: Python smtplib/ssl, swaks, curl and openssl s_client, all over real
loopback sockets. The server's certificate is the self-signed one tegamid
makes in DATA/tls/ at first start, unless a test configures its own."""
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import RawSMTP


def client_ctx(minimum=None, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def received_header(msg):
    head = msg.split(b"\n\n", 1)[0].decode()
    lines = head.split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("Received:"))
    out = [lines[start]]
    for l in lines[start + 1:]:
        if not l.startswith("\t"):
            break
        out.append(l)
    return "\n".join(out)


def test_selfsigned_certificate_made_at_first_start(tegami):
    """A2: with no tls.cert_file, the first start writes a self-signed pair."""
    assert (tegami.dir / "tls" / "self-signed.crt").is_file()
    key = tegami.dir / "tls" / "self-signed.key"
    assert key.is_file() and (key.stat().st_mode & 0o077) == 0
    assert "event=tls_selfsigned" in tegami.log()
    assert "tls: on" in tegami.cli("status").stdout


def test_smtplib_starttls_delivers_and_received_names_tls(tegami):
    with smtplib.SMTP("127.0.0.1", tegami.port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        s.starttls(context=client_ctx())
        s.ehlo("client.example")
        assert not s.has_extn("starttls")   # not offered twice
        s.sendmail("a@example.org", ["alice@example.test"], b"Subject: tls\r\n\r\nsecret\r\n")
    msg = list(tegami.wait_messages("alice@example.test", 1).values())[0]
    rec = received_header(msg)
    assert "(using TLSv1.3 " in rec
    assert "with ESMTPS id" in rec


def test_starttls_on_submission_listener(tegami):
    """A3: submission accepts mail only after AUTH (submission.auth_anonymous=no)."""
    with smtplib.SMTP("127.0.0.1", tegami.submission_port, timeout=10) as s:
        s.ehlo("client.example")
        s.starttls(context=client_ctx())
        s.ehlo("client.example")
        s.login("alice@example.test", "secret")
        s.sendmail("alice@example.test", ["bob@example.test"],
                   b"From: alice@example.test\r\nSubject: sub\r\n\r\nx\r\n")
    tegami.wait_messages("bob@example.test", 1)


def test_smtps_implicit_tls(tegami):
    with smtplib.SMTP_SSL("127.0.0.1", tegami.smtps_port, timeout=10,
                          context=client_ctx()) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert not s.has_extn("starttls")
        s.login("alice@example.test", "secret")
        s.sendmail("alice@example.test", ["alice@example.test"],
                   b"From: Alice <alice@example.test>\r\nSubject: smtps\r\n\r\nx\r\n")
    msg = list(tegami.wait_messages("alice@example.test", 1).values())[0]
    assert "with ESMTPSA id" in received_header(msg)


def test_smtps_port_never_speaks_plaintext(tegami):
    s = socket.create_connection(("127.0.0.1", tegami.smtps_port), timeout=3)
    s.sendall(b"EHLO plain\r\n")
    try:
        data = s.recv(4096)
    except (socket.timeout, ConnectionResetError):
        data = b""
    s.close()
    assert not data.startswith(b"220") and b"250" not in data


def test_starttls_injection_is_discarded(tegami):
    """A2, CVE-2011-0411: commands sent after STARTTLS in the same packet are
    thrown away, never answered inside TLS."""
    c = tegami.raw()
    assert c.cmd("EHLO client.example")[0] == 250
    c.send(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<evil@example.org>\r\n")
    code, texts = c.reply()
    assert (code, texts[0][:5]) == (220, "2.0.0")
    assert c.buf == b""
    tls = client_ctx().wrap_socket(c.sock, server_hostname="localhost")
    tls.settimeout(1.0)
    try:
        early = tls.recv(4096)
    except (socket.timeout, TimeoutError):
        early = b""
    assert early == b"", "server answered injected commands: %r" % early
    # The session was reset: MAIL before a new EHLO is out of order.
    tls.settimeout(10)
    c.sock, c.buf = tls, b""
    code, texts = c.cmd("MAIL FROM:<a@example.org>")
    assert code == 503 and texts[0].startswith("5.5.1")
    code, lines = c.cmd("EHLO again.example")
    assert code == 250 and "STARTTLS" not in [l.upper() for l in lines]
    code, texts = c.cmd("STARTTLS")
    assert code == 503 and texts[0].startswith("5.5.1")
    c.close()


def test_starttls_errors(tegami):
    c = tegami.raw()
    assert c.cmd("STARTTLS")[0] == 503          # before EHLO
    c.cmd("EHLO client.example")
    code, texts = c.cmd("STARTTLS now")
    assert code == 501 and texts[0].startswith("5.5.4")
    c.close()


def test_min_protocol_refuses_older_clients(tegami):
    """A2: TLSv1.2 is the default minimum; TLSv1.3 can be required."""
    raw = socket.create_connection(("127.0.0.1", tegami.smtps_port), timeout=5)
    with pytest.raises(ssl.SSLError):
        client_ctx(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1).wrap_socket(raw)
    raw.close()
    ok = client_ctx(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2).wrap_socket(
        socket.create_connection(("127.0.0.1", tegami.smtps_port), timeout=5))
    assert ok.version() == "TLSv1.2"
    ok.close()
    tegami.set(**{"tls.min_protocol": "TLSv1.3"})
    deadline = time.time() + 5
    refused = False
    while time.time() < deadline and not refused:
        raw = socket.create_connection(("127.0.0.1", tegami.smtps_port), timeout=5)
        try:
            client_ctx(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2).wrap_socket(raw).close()
            time.sleep(0.2)
        except ssl.SSLError:
            refused = True
        raw.close()
    assert refused, "TLSv1.2 still accepted after tls.min_protocol=TLSv1.3"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_s_client_tls11_refused(tegami):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tegami.port,
                        "-starttls", "smtp", "-tls1_1"], input="", capture_output=True,
                       text=True, timeout=20)
    assert r.returncode != 0
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tegami.port,
                        "-starttls", "smtp", "-tls1_2"], input="QUIT\n", capture_output=True,
                       text=True, timeout=20)
    assert "Protocol  : TLSv1.2" in r.stdout or "TLSv1.2" in r.stdout


def test_swaks_tls_and_tlsc(tegami):
    for flag, port, sender, auth in (("--tls", tegami.port, "a@example.org", []),
                                     ("--tlsc", tegami.smtps_port, "alice@example.test",
                                      ["--auth", "PLAIN", "--auth-user", "alice@example.test",
                                       "--auth-password", "secret"])):
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, flag,
                            "--from", sender, "--to", "alice@example.test",
                            "--helo", "swaks.example", *auth], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    tegami.wait_messages("alice@example.test", 2)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_ssl_reqd_and_smtps(tegami, tmp_path):
    mail = tmp_path / "mail.txt"
    mail.write_bytes(b"From: alice@example.test\r\nSubject: curl\r\n\r\nvia curl\r\n")
    for url, sender, auth in (("smtp://127.0.0.1:%d" % tegami.port, "a@example.org", []),
                              ("smtps://127.0.0.1:%d" % tegami.smtps_port, "alice@example.test",
                               ["--user", "alice@example.test:secret"])):
        r = subprocess.run(["curl", "-sS", "--insecure", "--ssl-reqd", url, *auth,
                            "--mail-from", sender, "--mail-rcpt", "bob@example.test",
                            "--upload-file", str(mail)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
    tegami.wait_messages("bob@example.test", 2)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_configured_certificate_and_bad_paths(tegami, tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.configured.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    r = tegami.cli("config", "set", "tls.cert_file=%s" % (tmp_path / "nope.pem"), check=False)
    assert r.returncode == 2 and "tls.cert_file" in r.stderr
    tegami.set(**{"tls.cert_file": cert, "tls.key_file": key})
    want = ssl.PEM_cert_to_DER_cert(cert.read_text())
    deadline = time.time() + 5
    got = None
    while time.time() < deadline:
        s = client_ctx().wrap_socket(
            socket.create_connection(("127.0.0.1", tegami.smtps_port), timeout=5))
        got = s.getpeercert(binary_form=True)
        s.close()
        if got == want:
            break
        time.sleep(0.2)
    assert got == want, "the configured certificate was not picked up"
