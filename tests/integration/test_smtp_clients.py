"""Real clients against tegamid: swaks, Python smtplib, and raw pipelining
(issue 2 "Done when"; MISSION S1, S2, S4, S5)."""
import re
import shutil
import smtplib
import socket
import subprocess
import time

import pytest

ALICE = "alice@example.test"
BOB = "bob@example.test"
QUEUED = re.compile(r"^2\.0\.0 Ok: queued as (\S+)$")
SWAKS = shutil.which("swaks")

needs_swaks = pytest.mark.skipif(SWAKS is None, reason="swaks is not installed")


def swaks(t, *args):
    r = subprocess.run([SWAKS, "--server", "127.0.0.1", "--port", str(t.port),
                        "--helo", "swaks.example", "--from", "sender@example.org",
                        "--timeout", "10", *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "swaks failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr)
    return r.stdout


def only(msgs):
    assert len(msgs) == 1, list(msgs)
    return list(msgs.values())[0]


# --- swaks -------------------------------------------------------------------

@needs_swaks
def test_swaks_delivers_to_local_user(tegami):
    """S1, S5: swaks delivers to a local user; the 250 carries a queue id."""
    out = swaks(tegami, "--to", ALICE, "--header", "Subject: swaks one",
                "--body", "hello from swaks")
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as \S+", out), out
    body = only(tegami.wait_messages(ALICE, 1))
    assert b"Subject: swaks one" in body
    assert b"hello from swaks" in body
    assert b"Received: from swaks.example" in body


@needs_swaks
def test_swaks_several_recipients(tegami):
    """S4: swaks --to a,b delivers one copy to each recipient in one transaction."""
    out = swaks(tegami, "--to", "%s,%s" % (ALICE, BOB), "--header", "Subject: swaks two",
                "--body", "to both")
    assert out.count("queued as") == 1, out
    for who in (ALICE, BOB):
        assert b"to both" in only(tegami.wait_messages(who, 1))


@needs_swaks
def test_swaks_pipeline(tegami):
    """S2 (RFC 2920): swaks --pipeline works (PIPELINING is advertised and
    the pipelined group is answered in order)."""
    out = swaks(tegami, "--pipeline", "--to", "%s,%s" % (ALICE, BOB),
                "--header", "Subject: piped", "--body", "pipelined")
    assert "queued as" in out, out
    # swaks really pipelined: four commands sent before the first reply,
    # then their four replies in order.
    assert re.search(r" -> MAIL FROM:<sender@example.org>\n -> RCPT TO:<alice@example.test>\n"
                     r" -> RCPT TO:<bob@example.test>\n -> DATA\n<-  250 2\.1\.0 Ok\n"
                     r"<-  250 2\.1\.5 Ok\n<-  250 2\.1\.5 Ok\n<-  354 ", out), out
    for who in (ALICE, BOB):
        assert b"pipelined" in only(tegami.wait_messages(who, 1))


@needs_swaks
def test_swaks_alias(tegami):
    """S4: swaks to an alias reaches every target."""
    tegami.cli("alias", "add", "team@example.test", ALICE, BOB)
    # The daemon picks directory changes up without a restart (within ~1 s);
    # swaks fails on a 550, so retry briefly.
    deadline = time.time() + 5
    while True:
        r = subprocess.run([SWAKS, "--server", "127.0.0.1", "--port", str(tegami.port),
                            "--from", "sender@example.org", "--to", "team@example.test",
                            "--body", "to the team", "--timeout", "10"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert r.returncode == 0, r.stdout + r.stderr
    for who in (ALICE, BOB):
        assert b"to the team" in only(tegami.wait_messages(who, 1))


# --- smtplib -----------------------------------------------------------------

def test_smtplib_several_recipients(tegami):
    """S1, S4: smtplib sendmail to several recipients delivers to each."""
    with smtplib.SMTP("127.0.0.1", tegami.port, timeout=10) as s:
        s.ehlo("smtplib.example")
        assert s.has_extn("pipelining") and s.has_extn("8bitmime")
        refused = s.sendmail("sender@example.org", [ALICE, BOB],
                             b"Subject: many\r\n\r\nto many\r\n")
        assert refused == {}
    for who in (ALICE, BOB):
        assert b"to many" in only(tegami.wait_messages(who, 1))


def test_smtplib_partial_refusal(tegami):
    """S4: one unknown recipient among good ones: smtplib reports it refused
    with 550, the others get the message."""
    with smtplib.SMTP("127.0.0.1", tegami.port, timeout=10) as s:
        refused = s.sendmail("sender@example.org", [ALICE, "nobody@example.test", BOB],
                             b"Subject: partial\r\n\r\npartial\r\n")
    assert list(refused) == ["nobody@example.test"]
    code, text = refused["nobody@example.test"]
    assert code == 550 and text.startswith(b"5.1.1 ")
    for who in (ALICE, BOB):
        only(tegami.wait_messages(who, 1))


def test_smtplib_all_refused(tegami):
    """S4: every recipient refused: smtplib raises SMTPRecipientsRefused."""
    with smtplib.SMTP("127.0.0.1", tegami.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as ei:
            s.sendmail("sender@example.org", ["x@elsewhere.example"], b"Subject: no\r\n\r\nno\r\n")
    assert ei.value.recipients["x@elsewhere.example"][0] == 550


def test_smtplib_8bitmime_and_size(tegami):
    """S2: smtplib with BODY=8BITMIME and SIZE= delivers 8-bit text intact."""
    text = "Subject: 8bit\r\n\r\nこんにちは、世界\r\n".encode("utf-8")
    with smtplib.SMTP("127.0.0.1", tegami.port, timeout=10) as s:
        s.ehlo("smtplib.example")
        s.sendmail("sender@example.org", [ALICE], text,
                   mail_options=["BODY=8BITMIME", "SIZE=%d" % len(text)])
    body = only(tegami.wait_messages(ALICE, 1))
    assert "こんにちは、世界\n".encode("utf-8") in body


def test_smtplib_several_messages_one_session(tegami):
    """S1: several transactions in one session, with RSET in between."""
    with smtplib.SMTP("127.0.0.1", tegami.port, timeout=10) as s:
        for i in range(5):
            s.sendmail("sender@example.org", [ALICE], b"Subject: n%d\r\n\r\nnumber %d\r\n" % (i, i))
            s.rset()
    msgs = tegami.wait_messages(ALICE, 5)
    assert len(msgs) == 5


# --- raw pipelining (S2, RFC 2920) -------------------------------------------

def test_pipelined_group_in_one_write(tegami):
    """S2: EHLO, MAIL, RCPT, RCPT, DATA in ONE write get their replies in order."""
    c = tegami.raw()
    c.send(b"EHLO pipe.example\r\nMAIL FROM:<sender@example.org>\r\n"
           b"RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    code, lines = c.reply()
    assert code == 250 and "PIPELINING" in lines
    assert c.reply() == (250, ["2.1.0 Ok"])
    assert c.reply() == (250, ["2.1.5 Ok"])
    assert c.reply() == (250, ["2.1.5 Ok"])
    assert c.reply()[0] == 354
    c.send(b"Subject: piped\r\n\r\none write\r\n.\r\nQUIT\r\n")
    code, texts = c.reply()
    assert code == 250 and QUEUED.match(texts[-1]), texts
    assert c.reply()[0] == 221
    assert c.closed()
    c.close()
    for who in (ALICE, BOB):
        assert b"one write" in only(tegami.wait_messages(who, 1))


def test_pipelined_with_refused_rcpt(tegami):
    """S2: a refused RCPT in the middle of a pipelined group is answered in
    its place (550 5.1.1) and the rest goes on."""
    c = tegami.raw()
    c.send(b"EHLO pipe.example\r\nMAIL FROM:<sender@example.org>\r\n"
           b"RCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\n"
           b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
    codes = [c.reply() for _ in range(6)]
    assert [x[0] for x in codes] == [250, 250, 250, 550, 250, 354]
    assert codes[3][1][-1].startswith("5.1.1 ")
    c.send(b"Subject: piped\r\n\r\nsome refused\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    for who in (ALICE, BOB):
        only(tegami.wait_messages(who, 1))


def test_two_transactions_pipelined_in_one_write(tegami):
    """S2, S5: two complete transactions (with bodies) and QUIT in one write:
    every reply comes in order and both messages are queued."""
    c = tegami.raw()
    c.send(b"EHLO pipe.example\r\n"
           b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
           b"Subject: first\r\n\r\nfirst message\r\n.\r\n"
           b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
           b"Subject: second\r\n\r\nsecond message\r\n.\r\n"
           b"QUIT\r\n")
    assert c.reply()[0] == 250  # EHLO
    qids = []
    for _ in range(2):
        assert c.reply() == (250, ["2.1.0 Ok"])
        assert c.reply() == (250, ["2.1.5 Ok"])
        assert c.reply()[0] == 354
        code, texts = c.reply()
        m = QUEUED.match(texts[-1])
        assert code == 250 and m, texts
        qids.append(m.group(1))
    assert qids[0] != qids[1]
    assert c.reply()[0] == 221
    assert c.closed()
    c.close()
    a = only(tegami.wait_messages(ALICE, 1))
    b = only(tegami.wait_messages(BOB, 1))
    assert b"first message" in a and qids[0].encode() in a
    assert b"second message" in b and qids[1].encode() in b


def test_many_transactions_pipelined(tegami):
    """S2, S5: twenty transactions in one write: twenty distinct queue ids,
    in order, and twenty messages in the mailbox."""
    n = 20
    batch = b"EHLO pipe.example\r\n"
    for i in range(n):
        batch += (b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
                  b"DATA\r\nSubject: m%d\r\n\r\nmessage %d\r\n.\r\nNOOP\r\n" % (i, i))
    batch += b"QUIT\r\n"
    c = tegami.raw()
    c.send(batch)
    assert c.reply()[0] == 250
    qids = []
    for _ in range(n):
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        code, texts = c.reply()
        assert code == 250, texts
        qids.append(QUEUED.match(texts[-1]).group(1))
        assert c.reply() == (250, ["2.0.0 Ok"])
    assert c.reply()[0] == 221
    c.close()
    assert len(set(qids)) == n
    msgs = tegami.wait_messages(ALICE, n)
    assert len(msgs) == n


def test_half_closed_client_gets_every_reply(tegami):
    """S1, S5: a client that writes a whole pipelined session and then
    half-closes (shutdown SHUT_WR) still gets every reply, and the message
    acknowledged with 250 is delivered."""
    c = tegami.raw()
    c.send(b"EHLO half.example\r\nMAIL FROM:<sender@example.org>\r\n"
           b"RCPT TO:<alice@example.test>\r\nDATA\r\n"
           b"Subject: half\r\n\r\nhalf closed\r\n.\r\nQUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.reply()[0] == 250
    assert c.reply() == (250, ["2.1.0 Ok"])
    assert c.reply() == (250, ["2.1.5 Ok"])
    assert c.reply()[0] == 354
    code, texts = c.reply()
    assert code == 250 and QUEUED.match(texts[-1]), texts
    assert c.reply()[0] == 221
    assert c.closed()
    c.close()
    assert b"half closed" in only(tegami.wait_messages(ALICE, 1))
