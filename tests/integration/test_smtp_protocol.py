"""SMTP protocol conformance over real sockets (issue 2; MISSION S1, S2, S4, S5, S7).

Every test asserts the exact reply code, and the RFC 3463 enhanced status
code where the issue names one. Requirement IDs are cited per test.
"""
import re
import socket
import threading
import time

import pytest

from conftest import RawSMTP, free_port

ALICE = "alice@example.test"
BOB = "bob@example.test"
QUEUED = re.compile(r"^2\.0\.0 Ok: queued as (\S+)$")


# --- helpers ---------------------------------------------------------------

def ehlo(t, name="client.example"):
    c = t.raw()
    code, lines = c.cmd("EHLO " + name)
    assert code == 250, lines
    return c


def helo(t, name="client.example"):
    c = t.raw()
    code, lines = c.cmd("HELO " + name)
    assert code == 250, lines
    return c


def expect(c, line, code, enhanced=None):
    """Sends one command and asserts its reply code (and enhanced code)."""
    got, texts = c.cmd(line)
    assert got == code, "%r -> %d %r, expected %d" % (line, got, texts, code)
    if enhanced is not None:
        assert texts[-1].startswith(enhanced + " "), \
            "%r -> %d %r, expected %d %s" % (line, got, texts, code, enhanced)
    return texts


def transaction(c, sender, rcpts, body=b"Subject: test\r\n\r\nhello\r\n"):
    """MAIL, RCPTs, DATA, body: returns the queue id from the final 250."""
    expect(c, "MAIL FROM:<%s>" % sender if sender is not None else "MAIL FROM:<>", 250, "2.1.0")
    for r in rcpts:
        expect(c, "RCPT TO:<%s>" % r, 250, "2.1.5")
    expect(c, "DATA", 354)
    c.send(body + b".\r\n")
    code, texts = c.reply()
    assert code == 250, texts
    m = QUEUED.match(texts[-1])
    assert m, texts
    return m.group(1)


def send_one(t, rcpts, sender="sender@example.org", body=b"Subject: test\r\n\r\nhello\r\n"):
    c = ehlo(t)
    try:
        qid = transaction(c, sender, rcpts, body)
        expect(c, "QUIT", 221)
    finally:
        c.close()
    return qid


def settle(t, address, n, extra=0.3):
    """Waits for n messages, then a little longer to catch duplicates."""
    t.wait_messages(address, n)
    time.sleep(extra)
    return t.messages(address)


def poll_rcpt(t, rcpt, want, timeout=5.0):
    """Opens sessions until RCPT TO:<rcpt> gets `want` (for settings and
    directory changes the daemon picks up without a restart). Returns the
    last code seen."""
    deadline = time.time() + timeout
    code = None
    while time.time() < deadline:
        c = ehlo(t)
        try:
            expect(c, "MAIL FROM:<probe@example.org>", 250)
            code, _ = c.cmd("RCPT TO:<%s>" % rcpt)
            c.cmd("QUIT")
        finally:
            c.close()
        if code == want:
            return code
        time.sleep(0.1)
    return code


# --- greeting, EHLO/HELO (S1, S2) -------------------------------------------

def test_greeting_220(tegami):
    """S1: the server opens with 220."""
    c = RawSMTP(tegami.port)
    code, texts = c.reply()
    assert code == 220
    assert "ESMTP" in texts[0]
    c.close()


def test_ehlo_extensions(tegami):
    """S2: EHLO lists SIZE <smtp.max_message_size>, PIPELINING, 8BITMIME,
    ENHANCEDSTATUSCODES, and STARTTLS (a self-signed certificate is made at
    first start, A2); on a plaintext session AUTH offers only CRAM-MD5 (A4)."""
    size = tegami.cli("config", "get", "smtp.max_message_size").stdout.strip()
    c = tegami.raw()
    code, lines = c.cmd("EHLO client.example")
    assert code == 250
    ext = [l.upper() for l in lines[1:]]
    assert "SIZE " + size in ext
    assert "PIPELINING" in ext
    assert "8BITMIME" in ext
    assert "ENHANCEDSTATUSCODES" in ext
    assert "STARTTLS" in ext
    assert "AUTH CRAM-MD5" in ext
    c.close()


def test_ehlo_size_follows_setting(tegami_new):
    """S2, S6: the SIZE keyword advertises the configured smtp.max_message_size."""
    tegami_new.start(**{"smtp.max_message_size": "123456"})
    c = tegami_new.raw()
    code, lines = c.cmd("EHLO client.example")
    assert code == 250
    assert "SIZE 123456" in lines[1:]
    c.close()


def test_helo_250(tegami):
    """S1: HELO gets a plain 250 (no extension list)."""
    c = tegami.raw()
    code, lines = c.cmd("HELO client.example")
    assert code == 250
    assert len(lines) == 1
    c.close()


def test_helo_without_argument_501(tegami):
    """S1: EHLO/HELO without a domain is 501 5.5.4."""
    c = tegami.raw()
    for verb in ("EHLO", "HELO"):
        expect(c, verb, 501, "5.5.4")
        expect(c, verb + " ", 501, "5.5.4")
    c.close()


# --- command order (S1: 503 5.5.1) -----------------------------------------

def test_mail_before_helo_503(tegami):
    """S1: MAIL before HELO/EHLO is 503 5.5.1."""
    c = tegami.raw()
    expect(c, "MAIL FROM:<a@example.org>", 503, "5.5.1")
    c.close()


def test_nested_mail_503(tegami):
    """S1: a second MAIL inside a transaction is 503 5.5.1."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250, "2.1.0")
    expect(c, "MAIL FROM:<b@example.org>", 503, "5.5.1")
    c.close()


def test_rcpt_before_mail_503(tegami):
    """S1: RCPT without MAIL is 503 5.5.1."""
    c = ehlo(tegami)
    expect(c, "RCPT TO:<%s>" % ALICE, 503, "5.5.1")
    c.close()


def test_data_before_rcpt_503(tegami):
    """S1: DATA without MAIL, and DATA without an accepted RCPT, are 503 5.5.1."""
    c = ehlo(tegami)
    expect(c, "DATA", 503, "5.5.1")
    expect(c, "MAIL FROM:<a@example.org>", 250, "2.1.0")
    expect(c, "DATA", 503, "5.5.1")
    expect(c, "RCPT TO:<nobody@example.test>", 550, "5.1.1")
    expect(c, "DATA", 503, "5.5.1")
    c.close()


def test_data_with_argument_501(tegami):
    """S1: DATA takes no argument: 501."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA now", 501, "5.5.4")
    # The transaction is intact: a correct DATA still works.
    expect(c, "DATA", 354)
    c.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    code, _ = c.reply()
    assert code == 250
    c.close()


# --- other commands (S1) -----------------------------------------------------

def test_unknown_command_500(tegami):
    """S1: an unknown verb is 500 5.5.2."""
    c = tegami.raw()
    expect(c, "FROBNICATE now", 500, "5.5.2")
    expect(c, "XYZZY", 500, "5.5.2")
    c.close()


def test_obsolete_commands_502(tegami):
    """S1: EXPN, SAML, SEND, SOML, TURN are answered 502 5.5.1."""
    c = ehlo(tegami)
    for line in ["EXPN staff", "SAML FROM:<a@example.org>", "SEND FROM:<a@example.org>",
                 "SOML FROM:<a@example.org>", "TURN"]:
        expect(c, line, 502, "5.5.1")
    c.close()


def test_vrfy_252_and_501(tegami):
    """S1: VRFY answers 252 (never reveals users) for known and unknown
    addresses alike; VRFY without an argument is 501."""
    c = ehlo(tegami)
    expect(c, "VRFY alice", 252)
    expect(c, "VRFY nobody@example.test", 252)
    expect(c, "VRFY", 501)
    c.close()


def test_help_214(tegami):
    """S1: HELP is 214."""
    c = tegami.raw()
    expect(c, "HELP", 214)
    c.close()


def test_noop_250(tegami):
    """S1: NOOP is 250, before and after HELO."""
    c = tegami.raw()
    expect(c, "NOOP", 250)
    expect(c, "EHLO client.example", 250)
    expect(c, "NOOP", 250)
    c.close()


def test_rset_resets_transaction(tegami):
    """S1: RSET is 250 and drops the transaction (RCPT after it is 503)."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "RSET", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 503, "5.5.1")
    expect(c, "DATA", 503, "5.5.1")
    # A new transaction is allowed after RSET.
    expect(c, "MAIL FROM:<a@example.org>", 250)
    c.close()


def test_quit_221_and_close(tegami):
    """S1: QUIT is 221 and the server closes the connection."""
    c = ehlo(tegami)
    expect(c, "QUIT", 221, "2.0.0")
    assert c.closed(timeout=5)
    c.close()


def test_commands_case_insensitive(tegami):
    """S1 (RFC 5321 §2.4): verbs and FROM:/TO: are case-insensitive."""
    c = tegami.raw()
    expect(c, "ehlo client.example", 250)
    expect(c, "mail from:<a@example.org>", 250, "2.1.0")
    expect(c, "Rcpt To:<%s>" % ALICE, 250, "2.1.5")
    expect(c, "data", 354)
    c.send(b"Subject: lc\r\n\r\nlower\r\n.\r\n")
    assert c.reply()[0] == 250
    expect(c, "quit", 221)
    c.close()
    tegami.wait_messages(ALICE, 1)


def test_ehlo_address_literal(tegami):
    """S1: EHLO with an address literal is accepted."""
    c = tegami.raw()
    expect(c, "EHLO [127.0.0.1]", 250)
    c.close()


def test_ehlo_resets_transaction(tegami):
    """S1 (RFC 5321 §4.1.4): EHLO in the middle of a transaction drops it."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "EHLO again.example", 250)
    expect(c, "DATA", 503, "5.5.1")
    expect(c, "RCPT TO:<%s>" % ALICE, 503, "5.5.1")
    c.close()


def test_rset_with_argument_501(tegami):
    """S1: RSET takes no argument: 501 5.5.4."""
    c = ehlo(tegami)
    expect(c, "RSET now", 501, "5.5.4")
    c.close()


def test_nul_in_command_500(tegami):
    """S1: a NUL octet in a command line is 500 5.5.2, not executed."""
    c = ehlo(tegami)
    c.send(b"QUIT\x00\r\n")
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (500, "5.5.2 "), texts
    expect(c, "NOOP", 250)
    c.close()


def test_empty_message(tegami):
    """S1: DATA followed at once by the end marker is an empty message, queued."""
    c = ehlo(tegami)
    qid = transaction(c, "a@example.org", [ALICE], b"")
    c.close()
    body = list(tegami.wait_messages(ALICE, 1).values())[0]
    assert body.startswith(b"Return-Path: <a@example.org>\nReceived: ")
    assert qid.encode() in body


# --- MAIL / RCPT syntax (S1, RFC 5321 §4.1.2) -------------------------------

def test_mail_syntax_501(tegami):
    """S1: MAIL without FROM: or without angle brackets is 501 5.5.4."""
    for line in ["MAIL", "MAIL <a@example.org>", "MAIL TO:<a@example.org>",
                 "MAIL FROM:a@example.org", "MAIL FROM:", "MAIL FROM:<a@example.org>junk"]:
        c = ehlo(tegami)
        expect(c, line, 501, "5.5.4")
        c.close()


def test_mail_bad_address_501_517(tegami):
    """S1: a malformed reverse-path is 501 5.1.7."""
    for addr in ["a@", "@example.org", "a b@example.org", "a@-bad-.example",
                 "a..b@example.org", "a@example..org", ".a@example.org"]:
        c = ehlo(tegami)
        expect(c, "MAIL FROM:<%s>" % addr, 501, "5.1.7")
        c.close()


def test_rcpt_bad_address_501_513(tegami):
    """S1: a malformed forward-path (including <>) is 501 5.1.3."""
    for addr in ["alice@", "@example.test", "al ice@example.test", "alice@example..test", ""]:
        c = ehlo(tegami)
        expect(c, "MAIL FROM:<a@example.org>", 250)
        expect(c, "RCPT TO:<%s>" % addr, 501, "5.1.3")
        c.close()


def test_rcpt_syntax_501(tegami):
    """S1: RCPT without TO: or without brackets is 501 5.5.4."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT %s" % ALICE, 501, "5.5.4")
    expect(c, "RCPT TO:%s" % ALICE, 501, "5.5.4")
    c.close()


def test_null_sender_accepted(tegami):
    """S1: the null reverse-path <> is accepted; Return-Path: <> is stored."""
    c = ehlo(tegami)
    transaction(c, None, [ALICE])
    c.close()
    body = list(tegami.wait_messages(ALICE, 1).values())[0]
    assert body.startswith(b"Return-Path: <>\n")


def test_quoted_local_part(tegami):
    """S1: quoted local parts parse (RFC 5321 §4.1.2): a quoted sender with a
    space is kept quoted; "alice"@example.test is alice."""
    c = ehlo(tegami)
    expect(c, 'MAIL FROM:<"john doe"@example.org>', 250, "2.1.0")
    expect(c, 'RCPT TO:<"alice"@example.test>', 250, "2.1.5")
    expect(c, "DATA", 354)
    c.send(b"Subject: q\r\n\r\nquoted\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    body = list(tegami.wait_messages(ALICE, 1).values())[0]
    assert body.startswith(b'Return-Path: <"john doe"@example.org>\n')


def test_source_route_ignored(tegami):
    """S1: a source route (@relay:user@domain) is ignored (RFC 5321 App. C)."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<@a.example,@b.example:sender@example.org>", 250, "2.1.0")
    expect(c, "RCPT TO:<@relay.example:%s>" % ALICE, 250, "2.1.5")
    expect(c, "DATA", 354)
    c.send(b"Subject: sr\r\n\r\nrouted\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    body = list(tegami.wait_messages(ALICE, 1).values())[0]
    assert body.startswith(b"Return-Path: <sender@example.org>\n")
    assert b"for <alice@example.test>" in body


def test_rcpt_param_555(tegami):
    """S1, S2: RCPT parameters other than DSN's NOTIFY and ORCPT (RFC 3461)
    are refused with 555 5.5.4; with dsn.enabled=no, those too."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<%s> FOO=BAR" % ALICE, 555, "5.5.4")
    expect(c, "RCPT TO:<%s> NOTIFY=NEVER" % ALICE, 250, "2.1.5")
    c.close()
    tegami.set(**{"dsn.enabled": "no"})
    tegami.cli("reload")
    time.sleep(0.3)
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<%s> NOTIFY=NEVER" % ALICE, 555, "5.5.4")
    expect(c, "RCPT TO:<%s>" % ALICE, 250, "2.1.5")
    c.close()


# --- MAIL parameters (S1, S2) ------------------------------------------------

def test_size_param_over_limit_552(tegami_new):
    """S2, S6: MAIL SIZE= above smtp.max_message_size is 552 5.3.4; at the
    limit it is accepted."""
    tegami_new.start(**{"smtp.max_message_size": "5000"})
    c = ehlo(tegami_new)
    expect(c, "MAIL FROM:<a@example.org> SIZE=5001", 552, "5.3.4")
    expect(c, "MAIL FROM:<a@example.org> SIZE=5000", 250, "2.1.0")
    expect(c, "RSET", 250)
    expect(c, "MAIL FROM:<a@example.org> SIZE=99999999999999999999", 501, "5.5.4")
    c.close()


def test_body_param_ok(tegami):
    """S2: BODY=8BITMIME / 7BIT are accepted (RFC 6152)."""
    c = ehlo(tegami)
    for body in ["8BITMIME", "7BIT", "8bitmime"]:
        expect(c, "MAIL FROM:<a@example.org> BODY=%s" % body, 250, "2.1.0")
        expect(c, "RSET", 250)
    c.close()


def test_body_param_bad_501(tegami):
    """S2: BODY=foo is 501."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org> BODY=foo", 501, "5.5.4")
    c.close()


def test_unknown_mail_param_555(tegami):
    """S1: an unknown MAIL parameter is 555 5.5.4."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org> FOO=bar", 555, "5.5.4")
    expect(c, "MAIL FROM:<a@example.org> SMTPUTF8X", 555, "5.5.4")
    c.close()


def test_params_after_helo_555(tegami):
    """S1: MAIL parameters need EHLO; after HELO they are 555 5.5.4."""
    c = helo(tegami)
    expect(c, "MAIL FROM:<a@example.org> SIZE=100", 555, "5.5.4")
    expect(c, "MAIL FROM:<a@example.org> BODY=8BITMIME", 555, "5.5.4")
    expect(c, "MAIL FROM:<a@example.org>", 250, "2.1.0")
    c.close()


# --- recipients (S4) ---------------------------------------------------------

def test_relay_denied_550_571(tegami):
    """S4: a non-local recipient is 550 5.7.1 (no open relay)."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<someone@elsewhere.example>", 550, "5.7.1")
    expect(c, "RCPT TO:<someone@[192.0.2.1]>", 550, "5.7.1")
    c.close()


def test_unknown_local_user_550_511(tegami):
    """S4: an unknown user in a local domain is 550 5.1.1 at RCPT time."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<nobody@example.test>", 550, "5.1.1")
    c.close()


def test_domain_and_local_part_case(tegami):
    """S4: the domain is case-insensitive (ALICE@EXAMPLE.TEST reaches alice)."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<alice@EXAMPLE.TEST>", 250, "2.1.5")
    c.close()


def test_postmaster_any_case_without_user_row(tegami):
    """S4 (RFC 5321 §4.5.1): postmaster@<local domain> is accepted in any case
    although no user row exists, and the message lands in its mailbox."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<PostMaster@EXAMPLE.TEST>", 250, "2.1.5")
    expect(c, "DATA", 354)
    c.send(b"Subject: pm\r\n\r\nfor the postmaster\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    msgs = tegami.wait_messages("postmaster@example.test", 1)
    assert b"for the postmaster" in list(msgs.values())[0]


def test_bare_postmaster_accepted(tegami):
    """S4 (RFC 5321 §4.5.1): RCPT TO:<Postmaster> without a domain must be
    accepted, queued, and delivered to a local domain's postmaster."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<Postmaster>", 250, "2.1.5")
    expect(c, "DATA", 354)
    c.send(b"Subject: pm\r\n\r\nbare postmaster\r\n.\r\n")
    code, texts = c.reply()
    assert code == 250, texts
    c.close()
    # The only local domain is example.test: its postmaster gets it.
    msgs = tegami.wait_messages("postmaster@example.test", 1)
    assert b"bare postmaster" in list(msgs.values())[0]


def test_alias_delivers_one_copy_to_each_target(tegami):
    """S4: an alias with several targets delivers one copy to each target."""
    tegami.cli("alias", "add", "team@example.test", ALICE, BOB)
    assert poll_rcpt(tegami, "team@example.test", 250) == 250
    send_one(tegami, ["team@example.test"], body=b"Subject: team\r\n\r\nto the team\r\n")
    for who in (ALICE, BOB):
        msgs = settle(tegami, who, 1)
        assert len(msgs) == 1, (who, list(msgs))
        assert b"to the team" in list(msgs.values())[0]


def test_several_rcpts_deliver_to_each(tegami):
    """S4, S5: one transaction with several RCPTs reaches each mailbox once."""
    send_one(tegami, [ALICE, BOB], body=b"Subject: both\r\n\r\nto both\r\n")
    for who in (ALICE, BOB):
        msgs = settle(tegami, who, 1)
        assert len(msgs) == 1, (who, list(msgs))
        assert b"to both" in list(msgs.values())[0]


def test_same_mailbox_twice_one_copy(tegami):
    """S4: alice named directly, again in another case, and via an alias gets
    one copy; bob (via the alias only) gets one."""
    tegami.cli("alias", "add", "team@example.test", ALICE, BOB)
    assert poll_rcpt(tegami, "team@example.test", 250) == 250
    send_one(tegami, [ALICE, "team@example.test", "Alice@Example.Test"],
             body=b"Subject: dup\r\n\r\nonce only\r\n")
    for who in (ALICE, BOB):
        msgs = settle(tegami, who, 1, extra=0.5)
        assert len(msgs) == 1, (who, list(msgs))


# --- stored message: headers, transparency, queue id (S5) --------------------

def test_received_and_return_path_single_rcpt(tegami_new):
    """S5 (RFC 5321 §4.4): Return-Path then Received (HELO name, [127.0.0.1],
    our host name, "with ESMTP id QID", "for <rcpt>" with one recipient)."""
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"server.hostname": "mx.example.test"})
    c = ehlo(tegami_new, "client.example")
    qid = transaction(c, "sender@example.org", [ALICE])
    c.close()
    body = list(tegami_new.wait_messages(ALICE, 1).values())[0].decode()
    lines = body.split("\n")
    assert lines[0] == "Return-Path: <sender@example.org>"
    assert lines[1].startswith("Received: from client.example ")
    # Unfold the Received header.
    received = lines[1]
    i = 2
    while lines[i].startswith(("\t", " ")):
        received += " " + lines[i].strip()
        i += 1
    assert "[127.0.0.1]" in received
    assert "by mx.example.test" in received
    assert "with ESMTP id %s" % qid in received
    assert "for <alice@example.test>;" in received
    assert lines[i] == "Subject: test"


def test_received_without_for_when_several_rcpts(tegami):
    """S5: "for <rcpt>" only when the message has a single recipient."""
    send_one(tegami, [ALICE, BOB])
    body = list(tegami.wait_messages(ALICE, 1).values())[0].decode()
    header = body.split("\nSubject:")[0]
    assert "Received: from client.example" in header
    assert "for <" not in header


def test_received_with_smtp_after_helo(tegami):
    """S5: a HELO session is recorded "with SMTP"."""
    c = helo(tegami, "old.example")
    qid = transaction(c, "a@example.org", [ALICE])
    c.close()
    body = list(tegami.wait_messages(ALICE, 1).values())[0].decode()
    assert "Received: from old.example" in body
    unfolded = re.sub(r"\n[ \t]+", " ", body)
    assert "with SMTP id %s" % qid in unfolded


def test_dot_unstuffing(tegami):
    """S3 (RFC 5321 §4.5.2): "..line" arrives as ".line", ".." as "."."""
    c = ehlo(tegami)
    transaction(c, "a@example.org", [ALICE],
                b"Subject: dots\r\n\r\n..line\r\n..\r\n...\r\nmid.dle\r\n")
    c.close()
    body = list(tegami.wait_messages(ALICE, 1).values())[0]
    assert body.endswith(b"\n\n.line\n.\n..\nmid.dle\n")


def test_queue_id_in_maildir_name(tegami):
    """S5: the id in "250 2.0.0 Ok: queued as QID" appears in the Maildir file name."""
    qid = send_one(tegami, [ALICE])
    msgs = tegami.wait_messages(ALICE, 1)
    name = list(msgs)[0]
    assert qid in name, (qid, name)


def test_user_added_while_running(tegami):
    """D1/S4: a user added with the CLI while tegamid runs is accepted
    within ~2 s, without a restart."""
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<carol@example.test>", 550, "5.1.1")
    c.close()
    tegami.add_user("carol@example.test")
    t0 = time.time()
    assert poll_rcpt(tegami, "carol@example.test", 250, timeout=3) == 250
    assert time.time() - t0 < 2.5
    send_one(tegami, ["carol@example.test"])
    tegami.wait_messages("carol@example.test", 1)


def test_percent_routing(tegami):
    """S4: with smtp.percent_routing off (default) alice%example.test@example.test
    is a route in the local part, refused to a client that may not relay (550
    5.7.1, R1); turned on while running, it is delivered to alice."""
    rcpt = "alice%example.test@example.test"
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % rcpt, 550, "5.7.1")
    c.close()
    tegami.set(**{"smtp.percent_routing": "yes"})
    assert poll_rcpt(tegami, rcpt, 250, timeout=5) == 250
    send_one(tegami, [rcpt], body=b"Subject: pct\r\n\r\npercent\r\n")
    msgs = tegami.wait_messages(ALICE, 1)
    assert b"percent" in list(msgs.values())[0]
    # Percent routing does not open a relay.
    c = ehlo(tegami)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<x%elsewhere.example@example.test>", 550)
    c.close()


def _have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ipv6_listener_delivers(tegami_new):
    """S7: a listener on [::1] accepts and delivers mail; the Received
    header records the IPv6 client."""
    if not _have_ipv6_loopback():
        pytest.skip("no ::1 on this host")
    tegami_new.add_user(ALICE)
    port = tegami_new.port
    tegami_new.start(wait=False, **{"smtp.listen": "[::1]:%d" % port})
    deadline = time.time() + 15
    c = None
    while time.time() < deadline:
        assert tegami_new.proc.poll() is None, tegami_new.log()
        try:
            c = RawSMTP(port, host="::1")
            break
        except OSError:
            time.sleep(0.05)
    assert c is not None, "no IPv6 listener:\n" + tegami_new.log()
    assert c.reply()[0] == 220
    expect(c, "EHLO v6.example", 250)
    qid = transaction(c, "a@example.org", [ALICE])
    expect(c, "QUIT", 221)
    c.close()
    body = list(tegami_new.wait_messages(ALICE, 1).values())[0].decode()
    assert "[::1]" in body.split("\n\n")[0]
    assert qid in body
    # Only [::1] was asked for: nothing listens on 127.0.0.1:port.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_dual_listeners_ipv4_and_ipv6(tegami_new):
    """S7: two listen addresses at once (IPv4 and IPv6) both serve."""
    if not _have_ipv6_loopback():
        pytest.skip("no ::1 on this host")
    tegami_new.add_user(ALICE)
    p4, p6 = tegami_new.port, free_port()
    tegami_new.start(**{"smtp.listen": "127.0.0.1:%d,[::1]:%d" % (p4, p6)})
    for host, port in (("127.0.0.1", p4), ("::1", p6)):
        c = RawSMTP(port, host=host)
        assert c.reply()[0] == 220
        expect(c, "EHLO dual.example", 250)
        transaction(c, "a@example.org", [ALICE])
        c.close()
    tegami_new.wait_messages(ALICE, 2)


# --- replies the client does not read at once (RFC 2920 §3.1 deadlock rule) --

def test_pipelined_replies_wait_for_a_slow_reader(tegami_new):
    """S1, RFC 2920: 20,000 pipelined NOOPs whose replies (280 KB) overflow the
    socket and the server's output cap while the client reads nothing; once it
    reads, every reply arrives, in order, and the session goes on normally.
    Replies are written straight to the socket while it takes them and queued
    once it does not: the two must never reorder or drop a line. (NOOPs are
    junk commands: the limit is raised so that they all count as fine.)"""
    tegami = tegami_new
    tegami.add_user(ALICE)
    tegami.start(**{"smtp.junk_command_limit": "100000"})
    c = tegami.raw()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    n = 20000
    batch = b"EHLO client.example\r\n" + b"NOOP\r\n" * n + b"MAIL FROM:<x@example.org>\r\n"
    sender = threading.Thread(target=c.sock.sendall, args=(batch,))
    sender.start()
    time.sleep(1.0)                       # the server stalls on its full output
    code, lines = c.reply()
    assert code == 250 and "PIPELINING" in lines
    for i in range(n):
        assert c.reply() == (250, ["2.0.0 Ok"]), i
    sender.join(30)
    assert not sender.is_alive()
    assert c.reply()[0] == 250            # MAIL
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.send("Subject: after the flood\r\n\r\nok\r\n.\r\n")
    code, texts = c.reply()
    assert code == 250 and QUEUED.match(texts[-1]), texts
    expect(c, "QUIT", 221)
    assert c.closed()


def test_pipelined_replies_past_the_output_cap_to_a_fast_reader(tegami_new):
    """S1, RFC 2920: AUTH and 6,000 EHLOs in one burst (all of it buffered
    while the password is checked), so their replies (880 KB) go past the
    output cap, to a client that reads as fast as they come: every reply
    arrives without the client sending anything more. (EHLOs are junk
    commands: the limit is raised so that they all count as fine.)"""
    import base64
    t = tegami_new
    t.add_user(ALICE)
    t.start(**{"auth.allow_plaintext": "yes", "smtp.junk_command_limit": "100000"})
    c = RawSMTP(t.submission_port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO c")[0] == 250
    n = 6000
    auth = base64.b64encode(b"\0" + ALICE.encode() + b"\0secret")
    c.sock.sendall(b"AUTH PLAIN " + auth + b"\r\n" + b"EHLO c\r\n" * n + b"NOOP\r\n")
    c.sock.settimeout(15)
    buf = b""
    deadline = time.time() + 15
    while not buf.endswith(b"250 2.0.0 Ok\r\n") and time.time() < deadline:
        try:
            chunk = c.sock.recv(1 << 20)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    assert buf.startswith(b"235 ")
    assert buf.count(b"250-PIPELINING") == n
    assert buf.endswith(b"250 2.0.0 Ok\r\n")
    c.close()
