"""SMTP smuggling defence (issue 2; MISSION S3).

The published payloads (SEC Consult, 2023) end a message with a fake end
marker that a lenient server takes for CRLF.CRLF, then hide a second
MAIL/RCPT/DATA after it. tegami ends a message at CRLF "." CRLF only; with
smtp.allow_bare_lf off (the default) a bare LF or CR anywhere refuses the
whole message (550 5.5.2). Either way no hidden transaction may ever run.
"""
import socket
import time

import pytest

ALICE = "alice@example.test"
BOB = "bob@example.test"

# Fake end markers from the published SMTP smuggling research.
FAKE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n.\n",
             b"\n.\r", b"\r.\n"]
HIDDEN = (b"MAIL FROM:<x@evil.example>\r\n"
          b"RCPT TO:<bob@example.test>\r\n"
          b"DATA\r\n"
          b"From: x@evil.example\r\n"
          b"Subject: smuggled\r\n"
          b"\r\n"
          b"smuggled text")
REAL_END = b"\r\n.\r\n"


def payload(fake):
    return b"Subject: legit\r\n\r\nhello" + fake + HIDDEN + REAL_END


def ehlo(t):
    c = t.raw()
    code, lines = c.cmd("EHLO client.example")
    assert code == 250, lines
    return c


def expect(c, line, code, enhanced=None):
    got, texts = c.cmd(line)
    assert got == code, "%r -> %d %r, expected %d" % (line, got, texts, code)
    if enhanced is not None:
        assert texts[-1].startswith(enhanced + " "), (line, got, texts)
    return texts


def assert_silent(c, wait=0.05):
    """Nothing more comes from the server: no stray (second) reply. Any
    reply still in flight would arrive before HELP's unique 214."""
    assert c.buf == b"", "unexpected extra reply data: %r" % c.buf
    c.sock.settimeout(wait)
    try:
        data = c.sock.recv(65536)
    except (socket.timeout, TimeoutError):
        data = None
    finally:
        c.sock.settimeout(10)
    assert data is None, "unexpected extra reply: %r" % data
    code, texts = c.cmd("HELP")
    assert code == 214, "expected HELP's 214, got a stray reply: %d %r" % (code, texts)


def sentinel(t, rcpts):
    """A clean message after the attack; once it is in every mailbox, the
    mailboxes hold everything the server ever accepted before it."""
    c = ehlo(t)
    expect(c, "MAIL FROM:<sentinel@example.org>", 250)
    for r in rcpts:
        expect(c, "RCPT TO:<%s>" % r, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: sentinel\r\n\r\nsentinel\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    for r in rcpts:
        t.wait_messages(r, 1)
    time.sleep(0.1)


def start(t, **settings):
    t.add_user(ALICE)
    t.add_user(BOB)
    t.start(**settings)
    return t


# --- default: bare LF / CR refused ---------------------------------------

@pytest.mark.parametrize("fake", FAKE_ENDS, ids=[repr(f)[2:-1] for f in FAKE_ENDS])
def test_smuggling_payload_refused(tegami, fake):
    """S3: a smuggling payload gets exactly one reply, 550 5.5.2 refusing the
    whole message; no second 250 ever; neither alice nor bob gets mail."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<sender@example.org>", 250, "2.1.0")
    expect(c, "RCPT TO:<%s>" % ALICE, 250, "2.1.5")
    expect(c, "DATA", 354)
    c.send(payload(fake))
    code, texts = c.reply()
    assert code == 550, texts
    assert texts[-1].startswith("5.5.2 "), texts
    assert_silent(c)
    # The hidden transaction is not open either.
    expect(c, "RCPT TO:<%s>" % BOB, 503, "5.5.1")
    expect(c, "NOOP", 250)
    c.close()
    sentinel(tegami, [ALICE, BOB])
    for who in (ALICE, BOB):
        msgs = tegami.messages(who)
        assert len(msgs) == 1, (who, list(msgs.values()))
        assert b"smuggled" not in list(msgs.values())[0]


@pytest.mark.parametrize("fake", [b"\n.\n", b"\n.\r\n", b"\r.\r"],
                         ids=["LF.LF", "LF.CRLF", "CR.CR"])
def test_smuggling_fully_pipelined(tegami, fake):
    """S3: the whole session including the payload in one write: replies
    EHLO 250, MAIL 250, RCPT 250, 354, then one 550 5.5.2 and nothing more."""
    c = tegami.raw()
    c.send(b"EHLO client.example\r\nMAIL FROM:<sender@example.org>\r\n"
           b"RCPT TO:<alice@example.test>\r\nDATA\r\n" + payload(fake))
    codes = [c.reply()[0] for _ in range(4)]
    assert codes == [250, 250, 250, 354]
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    assert_silent(c)
    c.close()
    sentinel(tegami, [ALICE, BOB])
    assert len(tegami.messages(ALICE)) == 1
    assert len(tegami.messages(BOB)) == 1


def test_smuggling_payload_split_across_writes(tegami):
    """S3: the payload split into small TCP writes behaves the same."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = payload(b"\n.\r\n")
    for i in range(0, len(data), 7):
        c.send(data[i:i + 7])
        time.sleep(0.005)
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    assert_silent(c)
    c.close()
    sentinel(tegami, [BOB])
    assert len(tegami.messages(BOB)) == 1


def test_bare_lf_in_message_refused(tegami):
    """S3: a message with a bare LF line (no smuggling) is refused whole with
    550 5.5.2; the session goes on and a clean message is accepted."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: lf\r\n\r\nline one\nline two\r\n.\r\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    assert_silent(c)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: ok\r\n\r\nclean\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    msgs = tegami.wait_messages(ALICE, 1)
    time.sleep(0.2)
    msgs = tegami.messages(ALICE)
    assert len(msgs) == 1
    assert b"clean" in list(msgs.values())[0]


def test_bare_cr_in_message_refused(tegami):
    """S3: a bare CR inside a DATA line refuses the message (550 5.5.2)."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: cr\r\n\r\nbefore\rafter\r\n.\r\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    assert_silent(c)
    c.close()


# --- bare LF / CR in commands ---------------------------------------------

def test_bare_lf_command_refused_not_executed(tegami):
    """S3: a command ending in a bare LF is 550 5.5.2 and not executed:
    "NOOP\\n" is refused, "QUIT\\n" does not close, "MAIL ...\\n" opens no
    transaction."""
    c = ehlo(tegami)
    c.send(b"NOOP\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    c.send(b"QUIT\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    c.send(b"MAIL FROM:<x@evil.example>\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    expect(c, "RCPT TO:<%s>" % BOB, 503, "5.5.1")
    expect(c, "NOOP", 250)
    c.close()


def test_bare_lf_pipelined_commands_refused(tegami):
    """S3: a pipelined transaction written with bare LFs gets 550 5.5.2 for
    every line and nothing is delivered."""
    c = ehlo(tegami)
    c.send(b"MAIL FROM:<x@evil.example>\nRCPT TO:<bob@example.test>\nDATA\n"
           b"Subject: smuggled\n\nsmuggled\n.\n")
    # MAIL, RCPT, DATA, 2 header/body lines, the text line and the "." line.
    for _ in range(7):
        code, texts = c.reply()
        assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    assert_silent(c)
    expect(c, "NOOP", 250)
    c.close()
    sentinel(tegami, [BOB])
    assert len(tegami.messages(BOB)) == 1


def test_bare_cr_in_command_refused(tegami):
    """S3: a bare CR inside a command line is 550 5.5.2, not executed:
    "NOOP\\rQUIT" does not close, "MAIL ...\\rRCPT ..." opens no transaction."""
    c = ehlo(tegami)
    c.send(b"NOOP\rQUIT\r\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    c.send(b"MAIL FROM:<x@evil.example>\rRCPT TO:<bob@example.test>\r\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (550, "5.5.2 "), texts
    assert_silent(c)
    expect(c, "RCPT TO:<%s>" % BOB, 503, "5.5.1")
    expect(c, "NOOP", 250)
    c.close()


# --- smtp.allow_bare_lf = yes ------------------------------------------------

def test_allow_bare_lf_accepts_lf_lines(tegami_new):
    """S3: with smtp.allow_bare_lf=yes a message with bare LF lines is
    accepted and stored with LF endings; commands ending in LF work."""
    t = start(tegami_new, **{"smtp.allow_bare_lf": "yes"})
    c = t.raw()
    c.send(b"EHLO client.example\n")
    assert c.reply()[0] == 250
    c.send(b"MAIL FROM:<sender@example.org>\n")
    assert c.reply()[0] == 250
    c.send(b"RCPT TO:<alice@example.test>\n")
    assert c.reply()[0] == 250
    c.send(b"DATA\n")
    assert c.reply()[0] == 354
    c.send(b"Subject: lf\n\nline one\nline two\r\n.\r\n")
    code, texts = c.reply()
    assert code == 250, texts
    c.close()
    body = list(t.wait_messages(ALICE, 1).values())[0]
    assert body.endswith(b"\nSubject: lf\n\nline one\nline two\n")


@pytest.mark.parametrize("fake", FAKE_ENDS, ids=[repr(f)[2:-1] for f in FAKE_ENDS])
def test_allow_bare_lf_fake_end_is_text(tegami_new, fake):
    """S3: even with smtp.allow_bare_lf=yes only CRLF.CRLF ends a message:
    the fake end and the hidden commands become text of ONE message to alice
    (one 250), and bob gets nothing."""
    t = start(tegami_new, **{"smtp.allow_bare_lf": "yes"})
    c = ehlo(t)
    expect(c, "MAIL FROM:<sender@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.send(payload(fake))
    code, texts = c.reply()
    assert code == 250, texts
    assert texts[-1].startswith("2.0.0 "), texts
    assert_silent(c)
    # No hidden transaction is open.
    expect(c, "RCPT TO:<%s>" % BOB, 503, "5.5.1")
    c.close()
    body = list(t.wait_messages(ALICE, 1).values())[0]
    assert b"MAIL FROM:<x@evil.example>\nRCPT TO:<bob@example.test>\nDATA\n" in body
    assert body.endswith(b"smuggled text\n")
    sentinel(t, [BOB])
    assert len(t.messages(BOB)) == 1
    assert len(t.messages(ALICE)) == 1
