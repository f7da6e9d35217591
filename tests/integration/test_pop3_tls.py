"""POP3 and TLS (MISSION P1, RFC 2595): STLS, its injection rule (nothing
sent before the handshake is executed after it), POP3S, and the seed's
ALWSSL setting (pop3.alwssl = all | only | none), changed on a running
daemon. The 5,000 idle sessions target is a benchmark item (bench/), not a
test here."""
import socket
import ssl

import pytest

from test_pop3 import (ALICE, PLAIN, Pop3, b64, client_ctx, cram, deliver, numbered, session,
                       stat, wait_until)


def capa_of(port, tls=False):
    p = Pop3(port, tls=tls)
    caps = p.capa()
    p.close()
    return caps


def refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


def test_stls_then_login(tegami):
    deliver(tegami, *numbered(2))
    p = Pop3(tegami.pop3_port)
    assert p.cmd("USER " + ALICE).startswith("-ERR [AUTH]")  # not before TLS
    p.stls()
    assert p.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert p.login().startswith("+OK")
    assert stat(p)[0] == 2
    assert p.retr(1)[1].startswith(b"Return-Path: ")
    assert p.cmd("QUIT").startswith("+OK")
    assert p.closed()


def test_stls_auth_plain_and_login(tegami):
    for mech in ("PLAIN", "LOGIN"):
        p = Pop3(tegami.pop3_port)
        p.stls()
        if mech == "PLAIN":
            r = p.cmd("AUTH PLAIN " + b64("\0%s\0secret" % ALICE))
        else:
            assert p.cmd("AUTH LOGIN").startswith("+ ")
            assert p.cmd(b64(ALICE)).startswith("+ ")
            r = p.cmd(b64("secret"))
        assert r.startswith("+OK"), (mech, r)
        assert p.cmd("QUIT").startswith("+OK")
        assert p.closed()                                     # lock released (see below)
        p.close()


def test_stls_injection_is_discarded(tegami_new):
    """Commands pipelined behind STLS in the same write are thrown away,
    never answered inside TLS (RFC 2595 §4, CVE-2011-0411 class)."""
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"auth.allow_plaintext": "yes"})
    p = Pop3(tegami_new.pop3_port)
    p.send("STLS\r\nUSER %s\r\nPASS secret\r\nSTAT\r\n" % ALICE)
    assert p.line().startswith("+OK")
    assert not p.buf
    tls = client_ctx().wrap_socket(p.sock, server_hostname="localhost")
    tls.settimeout(1.0)
    try:
        early = tls.recv(4096)
    except (socket.timeout, TimeoutError):
        early = b""
    assert early == b"", "server answered injected commands: %r" % early
    tls.settimeout(10)
    p.sock = tls
    assert p.cmd("STAT").startswith("-ERR")                  # not logged in
    assert p.cmd("PASS secret").startswith("-ERR")           # and no USER pending
    assert p.login().startswith("+OK")
    p.close()


def test_user_before_stls_is_forgotten(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"auth.allow_plaintext": "yes"})
    p = Pop3(tegami_new.pop3_port)
    assert p.cmd("USER " + ALICE) == "+OK"
    p.stls()
    assert p.cmd("PASS secret").startswith("-ERR")
    p.close()


def test_stls_errors(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"auth.allow_plaintext": "yes"})
    p = Pop3(tegami_new.pop3_port)
    p.stls()
    assert p.cmd("STLS").startswith("-ERR")                  # twice
    assert p.login().startswith("+OK")
    assert p.cmd("STLS").startswith("-ERR")                  # TRANSACTION
    p.close()
    p = session(tegami_new)                                   # plaintext login
    assert p.cmd("STLS").startswith("-ERR")                  # too late for TLS
    assert p.cmd("NOOP") == "+OK"
    p.close()
    p = Pop3(tegami_new.pop3s_port, tls=True)
    assert p.cmd("STLS").startswith("-ERR")                  # already TLS (POP3S)
    p.close()


def test_pop3s(tegami):
    deliver(tegami, *numbered(1))
    p = Pop3(tegami.pop3s_port, tls=True)
    assert p.greeting.startswith("+OK")
    caps = p.capa()
    assert "USER" in caps and "SASL PLAIN LOGIN CRAM-MD5" in caps and "STLS" not in caps
    assert p.login().startswith("+OK")
    assert stat(p)[0] == 1
    assert p.cmd("DELE 1").startswith("+OK")
    assert p.cmd("QUIT").startswith("+OK")
    assert p.closed()
    assert tegami.messages(ALICE) == {}


def test_pop3s_port_never_speaks_plaintext(tegami):
    s = socket.create_connection(("127.0.0.1", tegami.pop3s_port), timeout=3)
    s.sendall(b"CAPA\r\nUSER x\r\n")
    try:
        data = s.recv(4096)
    except (socket.timeout, ConnectionResetError):
        data = b""
    s.close()
    assert b"+OK" not in data and b"-ERR" not in data


def test_alwssl_only(tegami_new):
    tegami_new.add_user(ALICE)
    # Even with plaintext allowed, "secure only" means no login before TLS.
    tegami_new.start(**{"auth.allow_plaintext": "yes", "auth.fail_delay_max": "0"})
    assert "USER" in capa_of(tegami_new.pop3_port)
    tegami_new.set(**{"pop3.alwssl": "only"})
    assert wait_until(lambda: "USER" not in capa_of(tegami_new.pop3_port))
    caps = capa_of(tegami_new.pop3_port)
    assert "STLS" in caps
    assert not [c for c in caps if c.startswith("SASL") and ("PLAIN" in c or "LOGIN" in c)]
    p = Pop3(tegami_new.pop3_port)
    assert p.cmd("USER " + ALICE).startswith("-ERR [AUTH]")
    assert p.cmd("PASS secret").startswith("-ERR")
    assert p.cmd("AUTH PLAIN " + b64("\0%s\0secret" % ALICE)).startswith("-ERR [AUTH]")
    assert p.cmd("AUTH LOGIN").startswith("-ERR [AUTH]")
    assert p.cmd("AUTH CRAM-MD5").startswith("-ERR")
    assert p.cmd("STAT").startswith("-ERR")
    p.stls()
    caps = p.capa()
    assert "USER" in caps and "SASL PLAIN LOGIN CRAM-MD5" in caps
    assert p.login().startswith("+OK")
    p.close()
    p = Pop3(tegami_new.pop3s_port, tls=True)
    assert cram(p, ALICE, "secret").startswith("+OK")
    p.close()


def test_alwssl_none(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"auth.fail_delay_max": "0"})
    assert not refused(tegami_new.pop3s_port)
    tegami_new.set(**{"pop3.alwssl": "none"})
    assert wait_until(lambda: "STLS" not in capa_of(tegami_new.pop3_port))
    p = Pop3(tegami_new.pop3_port)
    assert p.cmd("STLS").startswith("-ERR")
    assert p.cmd("CAPA").startswith("+OK")                    # still plaintext, in sync
    assert "STLS" not in p.multi()
    assert p.cmd("USER " + ALICE).startswith("-ERR [AUTH]")  # plaintext still not allowed
    assert cram(p, ALICE, "secret").startswith("+OK")
    p.close()
    assert wait_until(lambda: refused(tegami_new.pop3s_port))
    tegami_new.set(**{"pop3.alwssl": "all"})
    assert wait_until(lambda: not refused(tegami_new.pop3s_port))
    assert "STLS" in capa_of(tegami_new.pop3_port)
    assert "USER" in capa_of(tegami_new.pop3s_port, tls=True)


def test_tls_min_protocol_applies_to_pop3(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"tls.min_protocol": "TLSv1.3"})
    ctx = client_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    s = socket.create_connection(("127.0.0.1", tegami_new.pop3s_port), timeout=5)
    try:
        ctx.wrap_socket(s, server_hostname="localhost").recv(100)
        ok = True
    except (ssl.SSLError, ConnectionResetError):
        ok = False
    s.close()
    assert not ok
    p = Pop3(tegami_new.pop3s_port, tls=True)
    assert p.sock.version() == "TLSv1.3"
    p.close()


def open_session(t, mode):
    p = Pop3(t.pop3s_port if mode == "pop3s" else t.pop3_port, tls=mode == "pop3s")
    if mode == "stls":
        p.stls()
    return p


@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_mailbox_free_once_quit_is_answered(tegami_new, mode):
    """RFC 1939 §6: the +OK to QUIT ends the session (UPDATE done). A client
    that logs in again as soon as it has that answer must not be told its
    own finished session still holds the mailbox (-ERR [IN-USE])."""
    tegami_new.add_user(ALICE)
    tegami_new.start(**PLAIN)
    for i in range(10):
        p = open_session(tegami_new, mode)
        assert p.login().startswith("+OK")
        assert p.cmd("QUIT").startswith("+OK")
        q = open_session(tegami_new, mode)
        r = q.login()
        assert r.startswith("+OK"), (i, r)
        assert q.cmd("QUIT").startswith("+OK")
        assert q.closed() and p.closed()
        p.close()
        q.close()
