"""Per-client-address session limits and the networks they exempt (issue 10,
fix 9; MISSION S6, P1).

A web application or a relay on the same host opens many parallel sessions
from one address. server.per_ip_exceptions lists the client networks that
smtp.max_sessions_per_ip and pop3.max_sessions_per_ip do not apply to
(Postfix: smtpd_client_event_limit_exceptions); its default, `host`, is this
host's own addresses (loopback and those of its interfaces). It is not relay
trust: an exempt client still may not relay.
"""
import socket

from test_pop3 import PLAIN

ALICE = "alice@example.test"
N = 200


def connect_many(port, n, source="127.0.0.1"):
    """n connections held open at once; returns (socket, first line) pairs."""
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=(source, 0))
        out.append(s)
    lines = []
    for s in out:
        buf = b""
        while not buf.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        lines.append(buf)
    return out, lines


def close_all(socks):
    for s in socks:
        s.close()


def start(t, **settings):
    t.add_user(ALICE)
    return t.start(**settings)


def test_200_parallel_smtp_sessions_from_this_host_are_served(tegami_new):
    """S6: with the defaults (50 per address, exceptions `host`), 200
    parallel sessions from 127.0.0.1 all get 220 (before: 150 got 421)."""
    t = start(tegami_new)
    socks, lines = connect_many(t.port, N)
    try:
        refused = [l for l in lines if not l.startswith(b"220 ")]
        assert refused == [], "%d of %d refused: %r" % (len(refused), N, refused[:2])
        # And they are real sessions: every one answers.
        for s in socks[::20]:
            s.sendall(b"NOOP\r\n")
            assert s.recv(4096).startswith(b"250 ")
    finally:
        close_all(socks)


def test_200_parallel_pop3_sessions_from_this_host_are_served(tegami_new):
    """P1: the same for POP3 (pop3.max_sessions_per_ip=50 by default)."""
    t = start(tegami_new, **PLAIN)
    socks, lines = connect_many(t.pop3_port, N)
    try:
        refused = [l for l in lines if not l.startswith(b"+OK")]
        assert refused == [], "%d of %d refused: %r" % (len(refused), N, refused[:2])
    finally:
        close_all(socks)


def test_without_exceptions_the_limit_holds(tegami_new):
    """S6: server.per_ip_exceptions empty: 127.0.0.1 is limited again, for
    SMTP (421 4.7.0) and POP3 (-ERR [SYS/TEMP])."""
    t = start(tegami_new, **PLAIN, **{"server.per_ip_exceptions": "",
                                      "smtp.max_sessions_per_ip": "3",
                                      "pop3.max_sessions_per_ip": "3"})
    socks, lines = connect_many(t.port, 5)
    try:
        assert [l[:4] for l in lines] == [b"220 "] * 3 + [b"421 "] * 2, lines
        assert all(b" 4.7.0 " in l for l in lines[3:])
    finally:
        close_all(socks)
    socks, lines = connect_many(t.pop3_port, 5)
    try:
        assert [l[:4] for l in lines[:3]] == [b"+OK "] * 3, lines
        assert all(l.startswith(b"-ERR [SYS/TEMP]") for l in lines[3:]), lines
    finally:
        close_all(socks)


def test_listed_networks_are_exempt_others_are_not(tegami_new):
    """Only the listed network is exempt: 127.0.0.2 (listed) opens 6
    sessions with a limit of 2, 127.0.0.1 (not listed) gets 421 on its
    third."""
    t = start(tegami_new, **{"server.per_ip_exceptions": "127.0.0.2/32,2001:db8::/32",
                             "smtp.max_sessions_per_ip": "2"})
    socks, lines = connect_many(t.port, 6, source="127.0.0.2")
    try:
        assert all(l.startswith(b"220 ") for l in lines), lines
    finally:
        close_all(socks)
    socks, lines = connect_many(t.port, 3, source="127.0.0.1")
    try:
        assert [l[:4] for l in lines] == [b"220 ", b"220 ", b"421 "], lines
    finally:
        close_all(socks)


def test_exempt_client_still_may_not_relay(tegami_new):
    """Exempt from the session limit is not relay trust: 550 5.7.1."""
    t = start(tegami_new)
    c = t.raw()
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<someone@example.org>")[0] == 250
    code, texts = c.cmd("RCPT TO:<someone@example.net>")
    assert code == 550 and texts[-1].startswith("5.7.1 "), texts
    c.close()


def test_setting_validation(tegami_new):
    t = tegami_new
    assert t.cli("config", "get", "server.per_ip_exceptions").stdout.strip() == "host"
    for good in ("", "host", "host,10.0.0.0/8", "192.0.2.1,::1", "2001:db8::/32"):
        assert t.cli("config", "set", "server.per_ip_exceptions=" + good,
                     check=False).returncode == 0, good
    for bad in ("hosts", "10.0.0.0/33", "host,,::1", "example.org", "host,"):
        r = t.cli("config", "set", "server.per_ip_exceptions=" + bad, check=False)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
    # The word belongs to this setting only.
    r = t.cli("config", "set", "auth.local_networks=host", check=False)
    assert r.returncode == 2
