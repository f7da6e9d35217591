"""NUL octets (issue 10, fix 2; MISSION S1, S3, P1).

We offer 8BITMIME, not BINARYMIME: the text of a message may not hold a NUL
(RFC 2045 §2.7-2.8, RFC 6152 §3). A message with one is refused at its end
(after CRLF.CRLF) with 554 5.6.0 and nothing is delivered; "\\r\\n\\0.\\r\\n" and
"\\r\\n.\\0\\r\\n" are text, never the end marker. A NUL in a command line is a
500-series reply and the command is not run; the same for POP3 (-ERR), where
a NUL in an AUTH exchange also ends the exchange.
"""
import base64
import time

import pytest

from test_pop3 import PLAIN, Pop3

ALICE = "alice@example.test"
BOB = "bob@example.test"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


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


def open_data(c, rcpt=BOB):
    expect(c, "MAIL FROM:<sender@example.org>", 250, "2.1.0")
    expect(c, "RCPT TO:<%s>" % rcpt, 250, "2.1.5")
    expect(c, "DATA", 354)


def sentinel(t):
    """A clean message to alice; once it is there, anything bob could have
    been sent before it is there too."""
    c = ehlo(t)
    open_data(c, ALICE)
    c.send(b"Subject: sentinel\r\n\r\nclean\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    t.wait_messages(ALICE, 1)
    time.sleep(0.1)


BODIES = {
    "in-text": b"Subject: nul\r\n\r\nbefore\0after\r\n",
    "in-header": b"Subject: n\0l\r\n\r\nbody\r\n",
    "lone-line": b"Subject: nul\r\n\r\n\0\r\n",
    # Neither of these is the end marker: both are text holding a NUL.
    "nul-dot": b"Subject: nul\r\n\r\nbody\r\n\0.\r\nmore\r\n",
    "dot-nul": b"Subject: nul\r\n\r\nbody\r\n.\0\r\nmore\r\n",
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_nul_in_message_refused_at_its_end(tegami, body):
    """A NUL anywhere in the text: one 554 5.6.0 after the real CRLF.CRLF,
    nothing delivered, and the session goes on."""
    c = ehlo(tegami)
    open_data(c)
    c.send(body + b".\r\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (554, "5.6.0 "), texts
    # The refusal came at the end marker, not before: the session is back in
    # command mode and the transaction is gone.
    expect(c, "RCPT TO:<%s>" % BOB, 503, "5.5.1")
    expect(c, "NOOP", 250)
    c.close()
    sentinel(tegami)
    assert tegami.messages(BOB) == {}


def test_nul_dot_lines_are_not_the_end(tegami):
    """"\\r\\n\\0.\\r\\n" and "\\r\\n.\\0\\r\\n" do not end the message: a MAIL
    line after them is still text, and only one reply (the refusal) comes."""
    c = ehlo(tegami)
    open_data(c)
    c.send(b"Subject: x\r\n\r\nhi\r\n\0.\r\nMAIL FROM:<evil@example.org>\r\n"
           b".\0\r\nRCPT TO:<alice@example.test>\r\n.\r\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (554, "5.6.0 "), texts
    code, texts = c.cmd("HELP")
    assert code == 214, "a stray reply came before HELP's: %d %r" % (code, texts)
    c.close()
    sentinel(tegami)
    assert tegami.messages(BOB) == {}


def test_nul_message_then_clean_message_in_one_session(tegami):
    """After the refusal the same session delivers a clean message."""
    c = ehlo(tegami)
    open_data(c)
    c.send(b"Subject: bad\r\n\r\n\0\r\n.\r\n")
    assert c.reply()[0] == 554
    open_data(c)
    c.send(b"Subject: good\r\n\r\nfine\r\n.\r\n")
    code, texts = c.reply()
    assert code == 250, texts
    c.close()
    msgs = tegami.wait_messages(BOB, 1)
    assert len(msgs) == 1
    assert b"Subject: good" in list(msgs.values())[0]


@pytest.mark.parametrize("line", [b"QUIT\0", b"NO\0OP", b"\0NOOP",
                                  b"MAIL FROM:<a\0@example.org>", b"RSET \0"])
def test_nul_in_command_line_500(tegami, line):
    """A NUL anywhere in a command line: 500 5.5.2, the command is not run
    (QUIT does not close, MAIL opens no transaction), the session goes on."""
    c = ehlo(tegami)
    c.send(line + b"\r\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (500, "5.5.2 "), texts
    expect(c, "RCPT TO:<%s>" % ALICE, 503, "5.5.1")     # no transaction opened
    expect(c, "NOOP", 250)
    c.close()


def test_nul_in_pipelined_commands(tegami):
    """Pipelined: only the line with the NUL is refused, in order."""
    c = ehlo(tegami)
    c.send(b"NOOP\r\nMAIL FROM:<a@example.org>\0\r\nNOOP\r\n")
    assert c.reply()[0] == 250
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (500, "5.5.2 "), texts
    assert c.reply()[0] == 250
    c.close()


# --- POP3 -------------------------------------------------------------------

@pytest.fixture
def pop(tegami_new):
    tegami_new.add_user(ALICE)
    return tegami_new.start(**PLAIN)


@pytest.mark.parametrize("line", [b"QUIT\0", b"NO\0OP", b"USER alice\0@example.test",
                                  b"\0CAPA"])
def test_pop3_nul_in_command_err(pop, line):
    """P1: a NUL in a POP3 command line is -ERR and the command is not run
    (QUIT does not close, USER sets nothing)."""
    p = Pop3(pop.pop3_port)
    p.send(line + b"\r\n")
    assert p.line().startswith("-ERR")
    assert p.cmd("PASS secret").startswith("-ERR")           # no USER was taken
    assert p.cmd("CAPA").startswith("+OK")
    p.multi()
    p.close()


def test_pop3_nul_in_transaction_state(pop):
    p = Pop3(pop.pop3_port)
    assert p.login().startswith("+OK")
    p.send(b"STAT\0\r\nSTAT\r\n")
    assert p.line().startswith("-ERR")
    assert p.line().startswith("+OK 0 ")
    assert p.cmd("QUIT").startswith("+OK")
    p.close()


def test_pop3_nul_in_auth_exchange_ends_it(pop):
    """P1 (RFC 5034 §4): a response line with a NUL is not base64: -ERR, and
    the exchange is over, so the next line is a command again, not SASL data."""
    p = Pop3(pop.pop3_port)
    assert p.cmd("AUTH PLAIN").startswith("+ ")
    p.send(b"AGFsaWNl\0QGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n")
    assert p.line().startswith("-ERR")
    assert p.cmd("CAPA").startswith("+OK")                    # a command, not SASL data
    p.multi()
    assert p.login().startswith("+OK")
    p.close()
