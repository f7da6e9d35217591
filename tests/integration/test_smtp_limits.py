"""Limits: line lengths, message size, recipients, sessions, timeouts,
error count, storage threshold (issue 2; MISSION S3, S6)."""
import re
import socket
import time

from conftest import RawSMTP

ALICE = "alice@example.test"
BOB = "bob@example.test"
QUEUED = re.compile(r"^2\.0\.0 Ok: queued as (\S+)$")


def start(t, **settings):
    t.add_user(ALICE)
    t.add_user(BOB)
    t.start(**settings)
    return t


def ehlo(t):
    c = t.raw()
    code, lines = c.cmd("EHLO client.example")
    assert code == 250, lines
    return c


def expect(c, line, code, enhanced=None):
    got, texts = c.cmd(line)
    assert got == code, "%r -> %d %r, expected %d" % (line[:80], got, texts, code)
    if enhanced is not None:
        assert texts[-1].startswith(enhanced + " "), (line[:80], got, texts)
    return texts


def reply_is(c, code, enhanced=None):
    got, texts = c.reply()
    assert got == code, (got, texts, code)
    if enhanced is not None:
        assert texts[-1].startswith(enhanced + " "), (got, texts)
    return texts


def transaction(c, rcpts, body=b"Subject: t\r\n\r\nhello\r\n"):
    expect(c, "MAIL FROM:<sender@example.org>", 250, "2.1.0")
    for r in rcpts:
        expect(c, "RCPT TO:<%s>" % r, 250, "2.1.5")
    expect(c, "DATA", 354)
    c.send(body + b".\r\n")
    texts = reply_is(c, 250, "2.0.0")
    return QUEUED.match(texts[-1]).group(1)


def connect(port, source=None):
    """A RawSMTP, optionally from a chosen source address."""
    c = RawSMTP.__new__(RawSMTP)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(source, 0) if source else None)
    c.buf = b""
    return c


def open_ok(t, source=None, tries=40):
    """Connects until a 220 (a just-closed session may still be counted)."""
    for _ in range(tries):
        c = connect(t.port, source)
        code, texts = c.reply()
        if code == 220:
            return c
        c.close()
        time.sleep(0.05)
    raise AssertionError("no 220: last %d %r" % (code, texts))


def quiesce(t):
    """One full session that ends with the server closing: afterwards the
    start-up probe connection is surely gone from the session counts."""
    c = open_ok(t)
    expect(c, "QUIT", 221)
    assert c.closed()
    c.close()


# --- line lengths (S3) -------------------------------------------------------

def test_command_line_512_limit(tegami):
    """S3 (RFC 5321 §4.5.3.1.4): a 512-octet command line (CRLF included) is
    fine; 513 octets is 500 5.5.2 and the session continues."""
    c = ehlo(tegami)
    line = "NOOP " + "x" * (512 - 7)
    assert len(line) + 2 == 512
    expect(c, line, 250)
    expect(c, line + "x", 500, "5.5.2")
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    c.close()


def test_very_long_command_line(tegami):
    """S3: a 200 kB command line is 500 5.5.2 once (it is discarded, not
    buffered), and the session goes on with a working transaction."""
    c = ehlo(tegami)
    c.send(b"MAIL FROM:<" + b"a" * 200000 + b"@example.org>\r\n")
    reply_is(c, 500, "5.5.2")
    expect(c, "NOOP", 250, "2.0.0")
    transaction(c, [ALICE])
    c.close()
    tegami.wait_messages(ALICE, 1)


def test_long_address_in_mail_501(tegami):
    """S1: a local part over 64 octets (within 512) is 501 5.1.7."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<%s@example.org>" % ("a" * 65), 501, "5.1.7")
    c.close()


def test_data_line_1000_limit(tegami):
    """S3 (RFC 5321 §4.5.3.1.6): a 1000-octet text line (CRLF included) is
    accepted; a 1001-octet one refuses the message with 500 5.5.2, and the
    session continues."""
    c = ehlo(tegami)
    ok_line = b"y" * 998
    transaction(c, [ALICE], b"Subject: long\r\n\r\n" + ok_line + b"\r\n")
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % BOB, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: too long\r\n\r\n" + b"z" * 999 + b"\r\nafter\r\n.\r\n")
    reply_is(c, 500, "5.5.2")
    expect(c, "NOOP", 250)
    c.close()
    body = list(tegami.wait_messages(ALICE, 1).values())[0]
    assert body.endswith(b"\n\n" + ok_line + b"\n")
    time.sleep(0.1)
    assert tegami.messages(BOB) == {}


def test_data_very_long_line(tegami):
    """S3: a 100 kB text line refuses the message with 500 5.5.2; the end
    marker after it is still found and the next transaction works."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % BOB, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: huge line\r\n\r\n" + b"w" * 100000 + b"\r\n.\r\n")
    reply_is(c, 500, "5.5.2")
    transaction(c, [ALICE])
    c.close()
    tegami.wait_messages(ALICE, 1)
    assert tegami.messages(BOB) == {}


# --- message size (S3, S6) ---------------------------------------------------

def test_message_over_max_size_552(tegami_new):
    """S6: a message over smtp.max_message_size (2000) is refused with
    552 5.3.4 after DATA; the session continues and the next transaction is
    queued."""
    t = start(tegami_new, **{"smtp.max_message_size": "2000"})
    c = ehlo(t)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % BOB, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: big\r\n\r\n" + (b"b" * 70 + b"\r\n") * 40 + b".\r\n")
    reply_is(c, 552, "5.3.4")
    transaction(c, [ALICE], b"Subject: small\r\n\r\nsmall\r\n")
    expect(c, "QUIT", 221)
    c.close()
    t.wait_messages(ALICE, 1)
    time.sleep(0.1)
    assert t.messages(BOB) == {}


def _sized_message(total):
    """A message of exactly `total` octets as RFC 1870 §6.1 counts them (CRLF
    pairs included, the terminating "." line not)."""
    head = b"Subject: boundary\r\n\r\n"
    lines = []
    left = total - len(head)
    while left > 0:
        n = min(left, 900)
        if left - n in (1, 2):  # every line needs room for its CRLF
            n -= 3
        lines.append(b"s" * (n - 2) + b"\r\n")
        left -= n
    msg = head + b"".join(lines)
    assert len(msg) == total
    return msg


def test_message_size_boundary(tegami_new):
    """S6 (RFC 1870 §4, §6.1): SIZE n is "the largest message the server is
    ever willing to accept", counted as the octets the client sends (CRLF
    included): a message of exactly 2000 octets, declared SIZE=2000, is
    accepted; 2001 octets is 552 5.3.4. Our own Return-Path/Received lines
    do not count against the client."""
    t = start(tegami_new, **{"smtp.max_message_size": "2000"})
    c = ehlo(t)
    expect(c, "MAIL FROM:<sender@example.org> SIZE=2000", 250, "2.1.0")
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.send(_sized_message(2000) + b".\r\n")
    reply_is(c, 250, "2.0.0")
    expect(c, "MAIL FROM:<sender@example.org>", 250, "2.1.0")
    expect(c, "RCPT TO:<%s>" % BOB, 250)
    expect(c, "DATA", 354)
    c.send(_sized_message(2001) + b".\r\n")
    reply_is(c, 552, "5.3.4")
    c.close()
    t.wait_messages(ALICE, 1)
    time.sleep(0.1)
    assert t.messages(BOB) == {}


def test_message_size_counts_crlf(tegami_new):
    """S6 (RFC 1870 §6.1): the size counts CRLF pairs as sent, so 2400
    octets of short lines are over a 2000-octet limit (552 5.3.4) even though
    they shrink when stored with LF endings."""
    t = start(tegami_new, **{"smtp.max_message_size": "2000"})
    c = ehlo(t)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % BOB, 250)
    expect(c, "DATA", 354)
    msg = b"Subject: short lines\r\n\r\n" + b"x\r\n" * 792
    assert len(msg) == 2400
    c.send(msg + b".\r\n")
    reply_is(c, 552, "5.3.4")
    c.close()
    time.sleep(0.1)
    assert t.messages(BOB) == {}


def test_message_far_over_max_size_streamed(tegami_new):
    """S3, S6: 4 MB against a 2000-octet limit is read and dropped while
    streaming: one 552 5.3.4 at the end marker, and the session works."""
    t = start(tegami_new, **{"smtp.max_message_size": "2000"})
    c = ehlo(t)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % BOB, 250)
    expect(c, "DATA", 354)
    chunk = (b"c" * 98 + b"\r\n") * 1000
    for _ in range(40):
        c.send(chunk)
    c.send(b".\r\n")
    reply_is(c, 552, "5.3.4")
    expect(c, "NOOP", 250)
    c.close()


# --- recipients (S6) ---------------------------------------------------------

def test_max_recipients_452(tegami_new):
    """S6: with smtp.max_recipients=2 the third RCPT is 452 4.5.3; the
    message still goes to the two accepted recipients."""
    t = start(tegami_new, **{"smtp.max_recipients": "2"})
    t.add_user("carol@example.test")
    c = ehlo(t)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250, "2.1.5")
    expect(c, "RCPT TO:<%s>" % BOB, 250, "2.1.5")
    expect(c, "RCPT TO:<carol@example.test>", 452, "4.5.3")
    expect(c, "DATA", 354)
    c.send(b"Subject: two\r\n\r\ntwo of three\r\n.\r\n")
    reply_is(c, 250, "2.0.0")
    c.close()
    t.wait_messages(ALICE, 1)
    t.wait_messages(BOB, 1)
    time.sleep(0.1)
    assert t.messages("carol@example.test") == {}


# --- sessions (S6) -----------------------------------------------------------

def test_max_sessions_421(tegami_new):
    """S6: with smtp.max_sessions=2 a third connection gets 421 4.7.0 and is
    closed; once one session ends a new one is served."""
    t = start(tegami_new, **{"smtp.max_sessions": "2"})
    quiesce(t)
    c1 = open_ok(t)
    c2 = open_ok(t)
    c3 = connect(t.port)
    reply_is(c3, 421, "4.7.0")
    assert c3.closed()
    c3.close()
    # The two admitted sessions work.
    expect(c1, "EHLO one.example", 250)
    expect(c2, "EHLO two.example", 250)
    expect(c1, "QUIT", 221)
    assert c1.closed()
    c1.close()
    c4 = open_ok(t)
    expect(c4, "NOOP", 250)
    c4.close()
    c2.close()


def test_max_sessions_per_ip_421(tegami_new):
    """S6: with smtp.max_sessions_per_ip=1 a second connection from
    127.0.0.1 gets 421 4.7.0 and is closed, while one from 127.0.0.2 (another
    client IP) is served: the limit is per IP. (This host's addresses are
    exempt by default: server.per_ip_exceptions is emptied here.)"""
    t = start(tegami_new, **{"smtp.max_sessions_per_ip": "1", "server.per_ip_exceptions": ""})
    quiesce(t)
    c1 = open_ok(t, "127.0.0.1")
    c2 = connect(t.port, "127.0.0.1")
    reply_is(c2, 421, "4.7.0")
    assert c2.closed()
    c2.close()
    other = open_ok(t, "127.0.0.2")
    code, lines = other.cmd("EHLO other.example")
    assert code == 250
    assert "[127.0.0.2]" in lines[0]
    # Ending the first session frees the slot for 127.0.0.1.
    expect(c1, "QUIT", 221)
    assert c1.closed()
    c1.close()
    c3 = open_ok(t, "127.0.0.1")
    expect(c3, "NOOP", 250)
    c3.close()
    other.close()


# --- timeouts (S6, RFC 5321 §4.5.3.2) ----------------------------------------

def test_command_timeout_421(tegami_new):
    """S6: with smtp.timeout_command=1 an idle session gets 421 4.4.2 after
    about a second and is closed."""
    t = start(tegami_new, **{"smtp.timeout_command": "1"})
    c = ehlo(t)
    t0 = time.time()
    c.sock.settimeout(6)
    reply_is(c, 421, "4.4.2")
    elapsed = time.time() - t0
    assert 0.5 <= elapsed < 4, elapsed
    assert c.closed()
    c.close()


def test_data_timeout_421(tegami_new):
    """S6: with smtp.timeout_data=1 a stalled DATA gets 421 4.4.2, the
    connection is closed and the partial message is not delivered."""
    t = start(tegami_new, **{"smtp.timeout_data": "1", "smtp.timeout_command": "30"})
    c = ehlo(t)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: stalled\r\n\r\npartial")
    t0 = time.time()
    c.sock.settimeout(6)
    reply_is(c, 421, "4.4.2")
    elapsed = time.time() - t0
    assert 0.5 <= elapsed < 4, elapsed
    assert c.closed()
    c.close()
    time.sleep(0.1)
    assert t.messages(ALICE) == {}


# --- error count (S6) --------------------------------------------------------

def test_max_errors_421(tegami_new):
    """S6: with smtp.max_errors=3 the third error is answered, then 421 4.7.0
    and the connection is closed."""
    t = start(tegami_new, **{"smtp.max_errors": "3"})
    c = t.raw()
    expect(c, "FOO", 500, "5.5.2")
    expect(c, "MAIL FROM:<a@example.org>", 503, "5.5.1")
    expect(c, "NOOP", 250)  # a good command in between does not reset the count
    expect(c, "BAR", 500, "5.5.2")
    reply_is(c, 421, "4.7.0")
    assert c.closed()
    c.close()


# --- storage threshold (S6) --------------------------------------------------

def _mail_code(t):
    c = ehlo(t)
    try:
        code, texts = c.cmd("MAIL FROM:<sender@example.org>")
        c.cmd("QUIT")
    finally:
        c.close()
    return code, texts


def _poll_mail_code(t, want, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        code, texts = _mail_code(t)
        if code == want or time.time() > deadline:
            return code, texts
        time.sleep(0.1)


def test_storage_threshold_452(tegami):
    """S6: with storage.min_free above the free disk space MAIL gets
    452 4.3.1 and mail already delivered is untouched; set back to 0, MAIL
    works again and new mail is delivered."""
    c = ehlo(tegami)
    transaction(c, [ALICE], b"Subject: before\r\n\r\nqueued before\r\n")
    c.close()
    before = tegami.wait_messages(ALICE, 1)

    tegami.set(**{"storage.min_free": "1000000G"})
    code, texts = _poll_mail_code(tegami, 452)
    assert code == 452, texts
    assert texts[-1].startswith("4.3.1 "), texts
    # Twice in one session: a 452 leaves the session usable.
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<sender@example.org>", 452, "4.3.1")
    expect(c, "RCPT TO:<%s>" % ALICE, 503, "5.5.1")
    expect(c, "NOOP", 250)
    c.close()
    assert tegami.messages(ALICE) == before

    tegami.set(**{"storage.min_free": "0"})
    code, texts = _poll_mail_code(tegami, 250)
    assert code == 250, texts
    c = ehlo(tegami)
    transaction(c, [ALICE], b"Subject: after\r\n\r\nqueued after\r\n")
    c.close()
    msgs = tegami.wait_messages(ALICE, 2)
    assert len(msgs) == 2
    for name, data in before.items():
        assert msgs[name] == data
