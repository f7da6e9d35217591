"""The connection layer shared by SMTP and POP3 (src/lib/conn): refusals on
the implicit-TLS ports inside TLS, one rule for overlong lines, the AUTH
exchange ended by a line that cannot be a response (RFC 4954 §4), and total
time limits for a client that trickles bytes (S6, A1, A2, P1, P2)."""
import socket
import sqlite3
import threading
import time

import pytest

from conftest import RawSMTP
from test_pop3 import ALICE, PLAIN, Pop3, client_ctx


@pytest.fixture
def pop(tegami_new):
    """A started daemon whose POP3 accepts USER/PASS without TLS."""
    tegami_new.add_user(ALICE)
    return tegami_new.start(**PLAIN)


def tls_line(port, timeout=10):
    """Connects with TLS to an implicit-TLS port and returns the first line
    the server sends inside TLS ('' when it closes cleanly without one)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = client_ctx().wrap_socket(raw, server_hostname="localhost")
    buf = b""
    try:
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    return buf.split(b"\r\n")[0].decode()


# --- fix 3: refusals on implicit-TLS ports are readable by a TLS client ------

def test_smtps_site_not_enabled_is_refused_inside_tls(tegami_new):
    # A listener left with no authentication option (edited behind the
    # admin command's back, which refuses it).
    tegami_new.start()
    db = sqlite3.connect(tegami_new.dir / "tegami.db")
    db.execute("INSERT OR REPLACE INTO settings VALUES('smtps.auth_password', 'no')")
    db.execute("INSERT OR REPLACE INTO settings VALUES('smtps.auth_anonymous', 'no')")
    db.commit()
    db.close()
    want = "554 5.7.0 This site is not enabled on the server."
    deadline = time.time() + 10
    while time.time() < deadline:  # the daemon rereads its settings once a second
        line = tls_line(tegami_new.smtps_port)
        if line == want:
            break
        time.sleep(0.2)
    assert line == want


def test_smtps_too_many_sessions_is_refused_inside_tls(tegami_new):
    tegami_new.start(**{"smtp.max_sessions": "1"})
    held = tegami_new.raw()  # the one session slot
    try:
        line = tls_line(tegami_new.smtps_port)
        assert line.startswith("421 4.7.0 ") and "too many connections" in line, line
    finally:
        held.close()


def test_pop3s_too_many_sessions_is_refused_inside_tls(tegami_new):
    tegami_new.start(**{"pop3.max_sessions": "1"})
    held = Pop3(tegami_new.pop3_port)
    try:
        assert tls_line(tegami_new.pop3s_port) == "-ERR [SYS/TEMP] too many connections"
    finally:
        held.close()


def test_plain_port_refusal_stays_plaintext(tegami_new):
    tegami_new.start(**{"smtp.max_sessions": "1"})
    held = tegami_new.raw()
    try:
        c = RawSMTP(tegami_new.port)
        code, text = c.reply()
        assert code == 421 and "too many connections" in text[0]
        c.close()
    finally:
        held.close()


# --- fix 4: an AUTH line that cannot be a response ends the exchange ----------

def test_auth_line_too_long_is_500_556_and_ends_exchange(tegami):
    c = tegami.raw()
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("AUTH CRAM-MD5")[0] == 334
    code, text = c.cmd("A" * 13000)
    assert code == 500 and text[0].startswith("5.5.6"), (code, text)
    # The exchange is over: the next line is a command, not SASL data.
    assert c.cmd("NOOP")[0] == 250
    c.close()


@pytest.mark.parametrize("line", [b"Zm9v\n", b"Zm9v\rYmFy\r\n"])
def test_bare_line_end_inside_auth_ends_exchange(tegami, line):
    c = tegami.raw()
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("AUTH CRAM-MD5")[0] == 334
    c.send(line)
    code, text = c.reply()
    assert code == 501 and text[0].startswith("5.5.2"), (code, text)
    assert c.cmd("NOOP")[0] == 250
    c.close()


# --- one rule for an overlong line: answered once, the session goes on --------

def test_pop3_overlong_line_is_answered_and_session_goes_on(pop):
    p = Pop3(pop.pop3_port)
    p.send(b"X" * 20000)  # no line end yet: more than any buffer holds
    time.sleep(0.2)
    assert p.cmd("Y" * 100) == "-ERR Line too long"
    assert p.cmd("CAPA").startswith("+OK")
    p.close()


def test_smtp_overlong_line_is_answered_and_session_goes_on(tegami):
    c = tegami.raw()
    c.send(b"X" * 20000)
    time.sleep(0.2)
    code, _ = c.cmd("Y" * 100)
    assert code == 500
    assert c.cmd("NOOP")[0] == 250
    c.close()


# --- fix 11: a client that trickles bytes is closed within the total limit ----

def trickle(sock, data, interval, stop):
    for b in data:
        if stop.is_set():
            return
        try:
            sock.sendall(bytes([b]))
        except OSError:
            return
        time.sleep(interval)


def test_slow_command_line_gets_421_within_limit(tegami_new):
    tegami_new.start(**{"smtp.command_max_time": "2", "smtp.timeout_command": "60"})
    c = tegami_new.raw()
    stop = threading.Event()
    t0 = time.time()
    th = threading.Thread(target=trickle, args=(c.sock, b"EHLO slow.client.example.test", 0.3, stop))
    th.start()
    try:
        # Another client is served while the slow one trickles.
        other = tegami_new.raw()
        assert other.cmd("EHLO fast.test")[0] == 250
        assert other.cmd("QUIT")[0] == 221
        c.sock.settimeout(10)
        code, text = c.reply()
        elapsed = time.time() - t0
        assert code == 421 and text[0].startswith("4.4.2"), (code, text)
        assert 1.5 <= elapsed < 5, elapsed
        assert c.closed()
    finally:
        stop.set()
        th.join()


def test_slow_data_gets_421_within_limit(tegami_new):
    tegami_new.add_user("alice@example.test")
    tegami_new.start(**{"smtp.data_max_time": "2", "smtp.timeout_data": "60"})
    c = tegami_new.raw()
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    t0 = time.time()
    stop = threading.Event()
    body = b"Subject: slow\r\n\r\n" + b"line\r\n" * 200
    th = threading.Thread(target=trickle, args=(c.sock, body, 0.05, stop))
    th.start()
    try:
        c.sock.settimeout(10)
        code, text = c.reply()
        elapsed = time.time() - t0
        assert code == 421 and text[0].startswith("4.4.2"), (code, text)
        assert 1.5 <= elapsed < 5, elapsed
    finally:
        stop.set()
        th.join()
    assert tegami_new.messages("alice@example.test") == {}


def test_pop3_slow_command_line_is_closed(pop):
    pop.set(**{"pop3.command_max_time": "2"})
    time.sleep(1.5)  # the daemon rereads its settings once a second
    p = Pop3(pop.pop3_port)
    stop = threading.Event()
    th = threading.Thread(target=trickle, args=(p.sock, b"USER alice@example.test", 0.3, stop))
    t0 = time.time()
    th.start()
    try:
        assert p.closed(timeout=8)
        assert time.time() - t0 < 5
    finally:
        stop.set()
        th.join()


def test_smtps_session_still_works(tegami):
    """The SMTPS listener still serves a normal TLS session."""
    raw = socket.create_connection(("127.0.0.1", tegami.smtps_port), timeout=10)
    s = client_ctx().wrap_socket(raw, server_hostname="localhost")
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")
    s.sendall(b"EHLO x\r\n")
    while True:
        line = f.readline()
        if line[3:4] == b" ":
            break
    assert line.startswith(b"250 ")
    s.close()
