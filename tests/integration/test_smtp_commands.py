"""The SMTP command table (issue 10, fix 8; MISSION S1, S2, S6, A2-A4).

Each command carries where it may run (states), whether it needs EHLO or may
run before STARTTLS where the session must be encrypted, its line limit,
whether it ends a pipelined group (RFC 2920 §3.1) and whether it is a "junk"
command (moves no mail). The dispatcher enforces all of it in one place, and
HELP lists exactly the commands available to this session now.
"""
import re
import socket
import ssl
import time

import pytest

from conftest import RawSMTP
from test_auth import b64, ctx, tls_raw, wait_setting

ALICE = "alice@example.test"
BOB = "bob@example.test"


def expect(c, line, code, enhanced=None):
    got, texts = c.cmd(line)
    assert got == code, "%r -> %d %r, expected %d" % (line, got, texts, code)
    if enhanced is not None:
        assert texts[-1].startswith(enhanced + " "), (line, got, texts)
    return texts


def helped(c):
    """The verbs HELP lists."""
    code, texts = c.cmd("HELP")
    assert code == 214, texts
    verbs = set()
    for t in texts:
        m = re.match(r"2\.0\.0 +(.*)$", t)
        if m and re.fullmatch(r"[A-Z ]+", m.group(1).strip()):
            verbs.update(m.group(1).split())
    return verbs


def start(t, **settings):
    t.add_user(ALICE)
    t.add_user(BOB)
    return t.start(**settings)


# --- HELP follows the session -------------------------------------------------

def test_help_before_and_after_ehlo(tegami):
    """Before EHLO only what may run there; after EHLO on the plain port
    MAIL, STARTTLS and AUTH (CRAM-MD5 is offered in plaintext); never the
    commands we answer 502."""
    c = tegami.raw()
    assert helped(c) == {"EHLO", "HELO", "RSET", "NOOP", "QUIT", "VRFY", "HELP"}
    expect(c, "EHLO client.example", 250)
    assert helped(c) == {"EHLO", "HELO", "MAIL", "RSET", "NOOP", "QUIT", "VRFY", "HELP",
                         "STARTTLS", "AUTH", "ETRN"}
    expect(c, "MAIL FROM:<a@example.org>", 250)
    assert "RCPT" in helped(c) and "MAIL" not in helped(c)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    h = helped(c)
    assert {"RCPT", "DATA"} <= h and not h & {"MAIL", "AUTH", "STARTTLS", "ETRN"}
    expect(c, "ETRN example.test", 503, "5.5.1")               # not in a transaction
    c.close()


def test_help_after_helo_has_no_auth(tegami):
    """AUTH is an ESMTP extension (RFC 4954 §4): not after HELO."""
    c = tegami.raw()
    expect(c, "HELO client.example", 250)
    h = helped(c)
    assert "AUTH" not in h and "MAIL" in h
    expect(c, "AUTH CRAM-MD5", 503, "5.5.1")
    c.close()


def test_help_under_tls_has_no_starttls(tegami):
    """After STARTTLS: no STARTTLS (503 if tried); after AUTH: no AUTH."""
    c, ext = tls_raw(tegami)
    h = helped(c)
    assert "STARTTLS" not in h and "AUTH" in h
    expect(c, "STARTTLS", 503, "5.5.1")
    expect(c, "AUTH PLAIN " + b64("\0alice@example.test\0secret"), 235)
    assert "AUTH" not in helped(c)
    c.close()


def test_help_on_smtps_has_no_starttls(tegami):
    raw = socket.create_connection(("127.0.0.1", tegami.smtps_port), timeout=10)
    c = RawSMTP.__new__(RawSMTP)
    c.sock = ctx().wrap_socket(raw, server_hostname="localhost")
    c.buf = b""
    assert c.reply()[0] == 220
    expect(c, "EHLO client.example", 250)
    h = helped(c)
    assert "STARTTLS" not in h and "AUTH" in h
    c.close()


def test_help_without_auth_on_the_listener(tegami):
    """A3: with smtp.auth_password=no AUTH is neither in EHLO nor in HELP,
    and is answered 502."""
    tegami.set(**{"smtp.auth_password": "no"})

    def gone():
        c = tegami.raw()
        _, lines = c.cmd("EHLO x")
        h = helped(c)
        c.close()
        return not any(l.upper().startswith("AUTH") for l in lines) and "AUTH" not in h
    assert wait_setting(tegami, gone)
    c = tegami.raw()
    expect(c, "EHLO x", 250)
    expect(c, "AUTH CRAM-MD5", 502, "5.5.1")
    c.close()


def test_help_with_auth_disallowed_on_port_25(tegami):
    """A5: smtp.auth_disallow=yes: AUTH does not exist on the MTA port (500)."""
    tegami.set(**{"smtp.auth_disallow": "yes"})

    def gone():
        c = tegami.raw()
        c.cmd("EHLO x")
        h = helped(c)
        c.close()
        return "AUTH" not in h
    assert wait_setting(tegami, gone)
    c = tegami.raw()
    expect(c, "EHLO x", 250)
    expect(c, "AUTH CRAM-MD5", 500, "5.5.2")
    c.close()


# --- states -------------------------------------------------------------------

def test_starttls_not_in_a_mail_transaction(tegami):
    """STARTTLS runs between transactions only (503 5.5.1 inside one)."""
    c = tegami.raw()
    expect(c, "EHLO x", 250)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "STARTTLS", 503, "5.5.1")
    expect(c, "RSET", 250)
    expect(c, "STARTTLS", 220)
    c.close()


# --- TLS first where the session must be encrypted (auth.mode) ---------------

def test_local_and_relay_only_pre_tls_commands_before_starttls(tegami):
    """A6 auth.mode=local_and_relay: TLS and AUTH for all mail. Before
    STARTTLS only EHLO, HELO, STARTTLS, NOOP, RSET, HELP and QUIT run; the
    others get 530 5.7.0 (Postfix's PRE_TLS rule), and HELP lists no more."""
    tegami.set(**{"auth.mode": "local_and_relay"})

    def refused():
        c = tegami.raw()
        c.cmd("EHLO x")
        code, _ = c.cmd("VRFY alice")
        c.close()
        return code == 530
    assert wait_setting(tegami, refused)
    c = tegami.raw()
    expect(c, "EHLO x", 250)
    for line in ("MAIL FROM:<a@example.org>", "VRFY alice", "AUTH CRAM-MD5"):
        texts = expect(c, line, 530, "5.7.0")
        assert "STARTTLS" in texts[-1]
    assert helped(c) == {"EHLO", "HELO", "RSET", "NOOP", "QUIT", "HELP", "STARTTLS"}
    expect(c, "NOOP", 250)
    expect(c, "RSET", 250)
    c.close()
    c, _ = tls_raw(tegami)
    expect(c, "VRFY alice", 252)
    expect(c, "AUTH PLAIN " + b64("\0alice@example.test\0secret"), 235)
    expect(c, "MAIL FROM:<alice@example.test>", 250)
    c.close()


# --- line limits ----------------------------------------------------------------

def test_line_limit_per_command(tegami):
    """S3: 512 octets for most commands, 1012 for MAIL (RFC 4954 §5: room
    for AUTH=), 12290 for AUTH (RFC 4954 §4); longer: 500 5.5.2, not run."""
    c = tegami.raw()
    expect(c, "EHLO x", 250)
    mail = "MAIL FROM:<%s@example.org> AUTH=%s" % ("a" * 60, "x" * 900)
    assert 512 < len(mail) + 2 <= 1012
    expect(c, mail, 250)
    expect(c, "RSET", 250)
    rcpt = "RCPT TO:<%s>" % ALICE + " " * (513 - 2 - len("RCPT TO:<%s>" % ALICE))
    assert len(rcpt) + 2 == 513
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, rcpt, 500, "5.5.2")
    expect(c, "MAIL FROM:<a@example.org> AUTH=" + "x" * 1000, 500, "5.5.2")
    expect(c, "RCPT TO:<%s>" % ALICE, 250)                      # the transaction is intact
    c.close()


# --- pipelined groups (RFC 2920 §3.1) ---------------------------------------------

HIDDEN = (b"MAIL FROM:<x@evil.example>\r\n"
          b"RCPT TO:<bob@example.test>\r\n"
          b"DATA\r\n"
          b"Subject: hidden\r\n\r\nhidden text\r\n.\r\n")


def test_text_after_a_refused_data_is_never_run(tegami):
    """DATA ends a group: a client that sends the text without waiting for
    354 and gets 503 is out of step. What it sent behind DATA was meant as
    message text; running it as commands would let the text inject a
    transaction. Instead: the refusal, then 554 5.5.0 and the close."""
    c = tegami.raw()
    expect(c, "EHLO x", 250)
    c.send(b"DATA\r\n" + HIDDEN)
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (503, "5.5.1 "), texts
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (554, "5.5.0 "), texts
    assert c.closed()
    c.close()
    time.sleep(0.3)
    assert tegami.messages(BOB) == {}
    assert "event=improper_pipelining" in tegami.log()


def test_commands_after_a_refused_ehlo_are_not_run(tegami):
    """EHLO ends a group: after a refused EHLO the pipelined MAIL is not run."""
    c = tegami.raw()
    c.send(b"EHLO\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.test>\r\n")
    code, _ = c.reply()
    assert code == 501
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (554, "5.5.0 "), texts
    assert c.closed()
    c.close()


def test_pipelining_after_a_successful_last_command_goes_on(tegami):
    """A LAST command that succeeds: what follows it runs (logged once as
    improper pipelining); the whole transaction in one write delivers."""
    c = tegami.raw()
    c.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
           b"DATA\r\nSubject: one write\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
    codes = [c.reply()[0] for _ in range(7)]
    assert codes == [250, 250, 250, 354, 250, 250, 221]
    c.close()
    tegami.wait_messages(ALICE, 1)
    assert tegami.log().count("event=improper_pipelining") == 1


def test_pipelining_within_a_group_is_fine(tegami):
    """MAIL, RCPT, RSET may be anywhere in a group (RFC 2920 §3.1): a
    rejected RCPT inside the group changes nothing, DATA ends the group."""
    c = tegami.raw()
    expect(c, "EHLO x", 250)
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<nobody@example.test>\r\n"
           b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(4)] == [250, 550, 250, 354]
    c.send(b"Subject: x\r\n\r\ny\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    assert "event=improper_pipelining" not in tegami.log()


# --- junk commands (S6) --------------------------------------------------------------

def test_junk_commands_count_as_errors_past_the_limit(tegami_new):
    """S6 (Postfix smtpd_junk_command_limit): past smtp.junk_command_limit,
    each command that moves no mail counts as an error; at smtp.max_errors
    the session ends with 421 4.7.0."""
    t = start(tegami_new, **{"smtp.junk_command_limit": "5", "smtp.max_errors": "3"})
    c = t.raw()
    expect(c, "EHLO x", 250)                 # 1
    for _ in range(4):                       # 2..5
        expect(c, "NOOP", 250)
    expect(c, "RSET", 250)                   # 6: one error
    expect(c, "VRFY alice", 252)             # 7: two
    expect(c, "HELP", 214)                   # 8: three -> 421
    code, texts = c.reply()
    assert (code, texts[-1][:6]) == (421, "4.7.0 "), texts
    assert c.closed()
    c.close()


def test_junk_count_restarts_after_a_message(tegami_new):
    """The junk count restarts once a message is accepted."""
    t = start(tegami_new, **{"smtp.junk_command_limit": "3", "smtp.max_errors": "1"})
    c = t.raw()
    expect(c, "EHLO x", 250)
    expect(c, "NOOP", 250)
    expect(c, "NOOP", 250)
    expect(c, "MAIL FROM:<a@example.org>", 250)
    expect(c, "RCPT TO:<%s>" % ALICE, 250)
    expect(c, "DATA", 354)
    c.send(b"Subject: x\r\n\r\ny\r\n.\r\n")
    assert c.reply()[0] == 250
    for _ in range(3):
        expect(c, "NOOP", 250)
    expect(c, "QUIT", 221)
    c.close()


def test_junk_command_limit_setting_is_validated(tegami_new):
    r = tegami_new.cli("config", "set", "smtp.junk_command_limit=0", check=False)
    assert r.returncode == 2
    assert tegami_new.cli("config", "get", "smtp.junk_command_limit").stdout.strip() == "100"
