"""POP3 server protocol (MISSION P1-P3, issue 4): RFC 1939 commands, states
and every -ERR case, RFC 2449 CAPA and response codes, RFC 5034 AUTH through
the shared SASL module, the Maildir it serves (new/ -> cur/, stable UIDLs,
arrival order, deletions only in UPDATE), the per-mailbox lock, failed-login
delay and the dynamic screen. Raw sockets: what is asserted is exactly what
the server put on the wire.

The Pop3 client and the helpers here are imported by test_pop3_clients.py and
test_pop3_tls.py."""
import base64
import hashlib
import hmac
import re
import smtplib
import socket
import ssl
import time

import pytest

from conftest import LineSocket

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "x@example.org"

# Plaintext USER/PASS allowed, no failure delay, no screening: for the tests
# that are about the protocol, not about the login policy.
PLAIN = {"auth.allow_plaintext": "yes", "auth.fail_delay_max": "0",
         "screen.auth_failures": "1000"}

BASE_CAPA = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
             "EXPIRE NEVER", "LOGIN-DELAY 0"]


def client_ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def wait_until(check, timeout=5.0, interval=0.05):
    deadline = time.time() + timeout
    while True:
        if check():
            return True
        if time.time() >= deadline:
            return False
        time.sleep(interval)


class Pop3(LineSocket):
    """A byte-exact POP3 client over a real socket."""

    def __init__(self, port, tls=False, timeout=10, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = client_ctx().wrap_socket(self.sock, server_hostname="localhost")
        self.buf = bytearray()
        self.greeting = self.line()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed; buffered: %r" % bytes(self.buf[:200]))
        self.buf += chunk

    def rawline(self):
        start = 0
        while True:
            i = self.buf.find(b"\r\n", start)
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                assert b"\n" not in line and b"\r" not in line, line
                return line
            start = max(0, len(self.buf) - 1)
            self._fill()

    def line(self):
        return self.rawline().decode("utf-8", "replace")

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def multi_raw(self):
        """The rest of a multi-line response as sent: up to and without the
        terminating ".CRLF", dot-stuffing removed. Returns bytes in which
        every line ends in CRLF."""
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                end = 0
                break
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                end = i + 2
                break
            start = max(0, len(self.buf) - 4)
            self._fill()
        body = bytes(self.buf[:end])
        del self.buf[:end + 3]
        out = []
        for l in body.split(b"\r\n")[:-1]:
            assert b"\n" not in l, "bare LF on the wire: %r" % l[:80]
            if l.startswith(b"."):
                # The server stuffs every line that starts with ".".
                assert l.startswith(b".."), "unstuffed line: %r" % l[:80]
                l = l[1:]
            out.append(l + b"\r\n")
        return b"".join(out)

    def multi(self):
        data = self.multi_raw()
        return [l.decode("utf-8", "replace") for l in data.split(b"\r\n")[:-1]]

    def cmd_multi(self, line):
        """(first line, [lines]) for a +OK; (first line, None) for -ERR."""
        first = self.cmd(line)
        if not first.startswith("+OK"):
            return first, None
        return first, self.multi()

    def retr(self, n, command="RETR"):
        first = self.cmd("%s %s" % (command, n))
        assert first.startswith("+OK"), first
        return first, self.multi_raw()

    def capa(self):
        first, lines = self.cmd_multi("CAPA")
        assert first.startswith("+OK"), first
        return lines

    def login(self, user=ALICE, password="secret"):
        r = self.cmd("USER " + user)
        assert r == "+OK", r
        return self.cmd("PASS " + password)

    def stls(self):
        r = self.cmd("STLS")
        assert r.startswith("+OK"), r
        assert not self.buf
        self.sock = client_ctx().wrap_socket(self.sock, server_hostname="localhost")
        return r



def greets(port):
    """True when a new connection gets the +OK greeting."""
    try:
        p = Pop3(port)
    except (OSError, ConnectionError):
        return False
    ok = p.greeting.startswith("+OK")
    p.close()
    return ok


def session(t, user=ALICE, password="secret", port=None, tls=False):
    """A logged-in Pop3 (USER/PASS; plaintext must be allowed unless tls)."""
    p = Pop3(port or t.pop3_port, tls=tls)
    assert p.greeting.startswith("+OK")
    r = p.login(user, password)
    assert r.startswith("+OK"), r
    return p


def session_when_free(t, user=ALICE, timeout=10):
    """Logs in, retrying while an earlier session still holds the lock."""
    deadline = time.time() + timeout
    while True:
        p = Pop3(t.pop3_port)
        r = p.login(user)
        if r.startswith("+OK"):
            return p
        p.close()
        assert r.startswith("-ERR [IN-USE]"), r
        assert time.time() < deadline, "mailbox still locked"
        time.sleep(0.05)


def deliver(t, *messages, rcpt=ALICE, sender=SENDER, opts=()):
    """Delivers each message (bytes) over SMTP; waits until all are in the
    Maildir. Returns nothing: the Maildir commit precedes the 250."""
    before = len(t.messages(rcpt))
    with smtplib.SMTP("127.0.0.1", t.port, timeout=60) as s:
        for m in messages:
            s.sendmail(sender, [rcpt], m, mail_options=list(opts))
    t.wait_messages(rcpt, before + len(messages))


def numbered(n, prefix="m"):
    return [("Subject: %s%d\r\n\r\nbody of %s%d\r\n" % (prefix, i, prefix, i)).encode()
            for i in range(n)]


def uidl_map(p):
    first, lines = p.cmd_multi("UIDL")
    assert first.startswith("+OK"), first
    return {int(l.split(" ")[0]): l.split(" ", 1)[1] for l in lines}


def list_map(p):
    first, lines = p.cmd_multi("LIST")
    assert first.startswith("+OK"), first
    return {int(l.split(" ")[0]): int(l.split(" ")[1]) for l in lines}


def stat(p):
    r = p.cmd("STAT")
    m = re.fullmatch(r"\+OK (\d+) (\d+)", r)
    assert m, r
    return int(m.group(1)), int(m.group(2))


def subject(msg):
    m = re.search(rb"^Subject: (.*?)\r\n", msg, re.M)
    return m.group(1).decode() if m else None


def maildir_files(t, sub, user=ALICE):
    d = t.maildir(user) / sub
    return sorted(f.name for f in d.iterdir()) if d.is_dir() else []


@pytest.fixture
def pop(tegami_new):
    """A started daemon whose POP3 accepts USER/PASS without TLS."""
    tegami_new.add_user(ALICE)
    tegami_new.add_user(BOB)
    return tegami_new.start(**PLAIN)


# --- greeting and CAPA ------------------------------------------------------

def test_greeting_has_no_apop_timestamp(tegami):
    p = Pop3(tegami.pop3_port)
    assert p.greeting.startswith("+OK ")
    assert not re.search(r"<[^>]*@[^>]*>", p.greeting)
    assert p.cmd("QUIT").startswith("+OK")
    assert p.closed()


def test_capa_default_plaintext_session(tegami):
    """Default policy: no USER, SASL CRAM-MD5 only, STLS offered (A4)."""
    p = Pop3(tegami.pop3_port)
    caps = p.capa()
    assert set(BASE_CAPA) <= set(caps)
    assert "USER" not in caps
    assert "SASL CRAM-MD5" in caps
    assert "STLS" in caps
    impl = [c for c in caps if c.startswith("IMPLEMENTATION ")]
    assert len(impl) == 1
    assert len(caps) == len(BASE_CAPA) + 3
    p.close()


def test_capa_plaintext_allowed_and_transaction_state(pop):
    deliver(pop, *numbered(1))
    p = Pop3(pop.pop3_port)
    caps = p.capa()
    assert sorted(caps) == sorted(BASE_CAPA + ["USER", "SASL PLAIN LOGIN CRAM-MD5", "STLS"] +
                                  [c for c in caps if c.startswith("IMPLEMENTATION ")])
    assert p.login().startswith("+OK")
    caps = p.capa()                                           # TRANSACTION state
    assert set(BASE_CAPA) <= set(caps)
    assert not [c for c in caps if c in ("USER", "STLS") or c.startswith("SASL")]
    assert len(caps) == len(BASE_CAPA) + 1
    assert [c for c in caps if c.startswith("IMPLEMENTATION ")]
    assert p.cmd("QUIT").startswith("+OK")
    p.close()


def test_capa_under_tls_offers_user(tegami):
    p = Pop3(tegami.pop3_port)
    p.stls()
    caps = p.capa()
    assert "USER" in caps and "SASL PLAIN LOGIN CRAM-MD5" in caps and "STLS" not in caps
    p.close()


# --- USER / PASS ------------------------------------------------------------

def test_user_pass(pop):
    deliver(pop, *numbered(2))
    p = Pop3(pop.pop3_port)
    assert p.cmd("PASS secret").startswith("-ERR")           # PASS before USER
    assert p.cmd("USER").startswith("-ERR")                   # no name
    assert p.cmd("USER " + ALICE) == "+OK"
    assert p.cmd("PASS wrong").startswith("-ERR [AUTH]")
    assert p.cmd("PASS secret").startswith("-ERR")            # USER again first
    assert p.cmd("USER nobody@example.test") == "+OK"
    assert p.cmd("PASS secret").startswith("-ERR [AUTH]")     # unknown user
    assert p.cmd("USER " + ALICE) == "+OK"
    r = p.cmd("PASS secret")
    assert r.startswith("+OK"), r
    assert stat(p) == (2, sum(list_map(p).values()))
    assert p.cmd("QUIT").startswith("+OK")
    assert p.closed()


def test_plaintext_login_refused_without_tls_by_default(tegami):
    p = Pop3(tegami.pop3_port)
    assert p.cmd("USER " + ALICE).startswith("-ERR [AUTH]")
    assert p.cmd("PASS secret").startswith("-ERR")
    assert p.cmd("AUTH PLAIN " + b64("\0%s\0secret" % ALICE)).startswith("-ERR [AUTH]")
    assert p.cmd("AUTH LOGIN").startswith("-ERR [AUTH]")
    assert p.cmd("STAT").startswith("-ERR")                   # still not logged in
    p.close()


# --- -ERR cases of RFC 1939 -------------------------------------------------

def test_commands_in_the_wrong_state(pop):
    deliver(pop, *numbered(1))
    p = Pop3(pop.pop3_port)
    for c in ("STAT", "LIST", "LIST 1", "UIDL", "UIDL 1", "RETR 1", "TOP 1 0", "DELE 1",
              "RSET", "NOOP"):
        assert p.cmd(c).startswith("-ERR"), c
    assert p.login().startswith("+OK")
    for c in ("USER " + ALICE, "PASS secret", "AUTH PLAIN " + b64("\0%s\0secret" % ALICE),
              "AUTH", "STLS", "APOP %s 0123456789abcdef0123456789abcdef" % ALICE):
        assert p.cmd(c).startswith("-ERR"), c
    assert p.cmd("NOOP") == "+OK"                             # still in TRANSACTION
    assert stat(p) == (1, list_map(p)[1])
    assert p.cmd("QUIT").startswith("+OK")
    p.close()


def test_unknown_commands_and_rpop(pop):
    p = Pop3(pop.pop3_port)
    for c in ("XYZZY", "RPOP " + ALICE, "", "LAST", "HELO x", "STATX"):
        r = p.cmd(c)
        assert r.startswith("-ERR"), (c, r)
    assert "unknown" in p.cmd("RPOP " + ALICE).lower()
    assert p.cmd("NOOP " + "x" * 300).startswith("-ERR")     # RFC 2449: 255 octets
    assert p.login().startswith("+OK")                        # still usable
    assert p.cmd("XYZZY").startswith("-ERR")
    assert p.cmd("rpop x").startswith("-ERR")
    assert p.cmd("noop") == "+OK"                             # keywords are case-insensitive
    assert p.cmd("stat").startswith("+OK")
    p.close()


def test_apop_refused(tegami):
    p = Pop3(tegami.pop3_port)
    assert p.cmd("APOP %s 0123456789abcdef0123456789abcdef" % ALICE).startswith("-ERR")
    assert p.cmd("APOP").startswith("-ERR")
    caps = p.capa()                                           # the session goes on
    assert "STLS" in caps
    p.close()


def test_bad_message_numbers(pop):
    deliver(pop, *numbered(2))
    p = session(pop)
    for arg in ("0", "3", "4294967297", "99999999999999999999999", "-1", "+1", "abc",
                "1x", ""):
        for c in ("RETR", "LIST", "UIDL", "DELE"):
            if arg == "" and c in ("LIST", "UIDL"):
                continue                                      # the listing forms
            r = p.cmd(("%s %s" % (c, arg)).rstrip())
            assert r.startswith("-ERR"), (c, arg, r)
        r = p.cmd("TOP %s 1" % arg)
        assert r.startswith("-ERR"), ("TOP", arg, r)
    assert stat(p)[0] == 2                                    # nothing was deleted
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    p = session_when_free(pop)
    assert stat(p)[0] == 2
    p.close()


def test_top_syntax(pop):
    body = b"Subject: top\r\nX-A: 1\r\n\r\nl1\r\n.l2\r\nl3\r\n"
    deliver(pop, body)
    p = session(pop)
    for c in ("TOP", "TOP 1", "TOP 1 x", "TOP 1 -1", "TOP x 1", "TOP 1 1 1"):
        assert p.cmd(c).startswith("-ERR"), c
    _, full = p.retr(1)
    head = full.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert p.retr("1 0", "TOP")[1] == head
    assert p.retr("1 1", "TOP")[1] == head + b"l1\r\n"
    assert p.retr("1 2", "TOP")[1] == head + b"l1\r\n.l2\r\n"
    assert p.retr("1 3", "TOP")[1] == full
    assert p.retr("1 1000", "TOP")[1] == full
    assert p.cmd("NOOP") == "+OK"
    p.close()


def test_deleted_message_access(pop):
    deliver(pop, *numbered(3))
    p = session(pop)
    sizes = list_map(p)
    uidls = uidl_map(p)
    assert p.cmd("DELE 2").startswith("+OK")
    for c in ("RETR 2", "LIST 2", "UIDL 2", "TOP 2 0", "DELE 2"):
        assert p.cmd(c).startswith("-ERR"), c
    assert list_map(p) == {1: sizes[1], 3: sizes[3]}
    assert uidl_map(p) == {1: uidls[1], 3: uidls[3]}
    assert stat(p) == (2, sizes[1] + sizes[3])
    assert p.cmd("LIST 3") == "+OK 3 %d" % sizes[3]          # numbers do not shift
    assert p.cmd("RSET").startswith("+OK")
    assert list_map(p) == sizes and uidl_map(p) == uidls
    assert stat(p) == (3, sum(sizes.values()))
    assert p.retr(2)[0].startswith("+OK")
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    p = session_when_free(pop)
    assert uidl_map(p) == uidls                               # RSET undid the DELE
    p.close()


def test_stat_list_uidl_consistency(pop):
    deliver(pop, b"Subject: a\r\n\r\nshort\r\n", b"Subject: b\r\n\r\n" + b"y" * 500 + b"\r\n",
            b"Subject: c\r\n\r\n" + b".\r\n" * 40)
    p = session(pop)
    n, total = stat(p)
    sizes = list_map(p)
    uidls = uidl_map(p)
    assert n == 3 and sorted(sizes) == [1, 2, 3] and sorted(uidls) == [1, 2, 3]
    assert total == sum(sizes.values())
    assert len(set(uidls.values())) == 3
    for i in (1, 2, 3):
        assert p.cmd("LIST %d" % i) == "+OK %d %d" % (i, sizes[i])
        assert p.cmd("UIDL %d" % i) == "+OK %d %s" % (i, uidls[i])
        assert re.fullmatch(r"[\x21-\x7e]{1,70}", uidls[i]), uidls[i]
        first, msg = p.retr(i)
        assert first == "+OK %d octets" % sizes[i]
        assert len(msg) == sizes[i]
    p.close()


# --- UPDATE state, dropped connections, Maildir -----------------------------

def test_deletions_applied_only_after_quit(pop):
    deliver(pop, *numbered(3))
    p = session(pop)
    uidls = uidl_map(p)
    kept = p.retr(2)[1]
    # The new/ -> cur/ moves run after the login reply, on a worker.
    assert wait_until(lambda: len(maildir_files(pop, "cur")) == 3, timeout=10)
    before = maildir_files(pop, "cur")
    assert p.cmd("DELE 1").startswith("+OK")
    assert p.cmd("DELE 3").startswith("+OK")
    assert maildir_files(pop, "cur") == before                # not yet
    assert p.cmd("QUIT").startswith("+OK")
    assert p.closed()
    after = maildir_files(pop, "cur")
    assert len(after) == 1 and after[0].startswith(uidls[2])
    p = session_when_free(pop)
    assert uidl_map(p) == {1: uidls[2]}
    assert p.retr(1)[1] == kept
    p.close()


def test_quit_with_many_deletions(pop):
    """P2: QUIT after DELE of every message of a large maildrop: the unlinks
    run off the event loop (another user's session keeps being answered while
    they run), every file is gone before +OK, and the mailbox is free at once;
    a client that drops right after QUIT still has its deletions applied."""
    n = 400
    deliver(pop, *numbered(n))
    deliver(pop, *numbered(2, "b"), rcpt=BOB)
    other = session(pop, BOB)
    p = session(pop)
    for i in range(1, n + 1):
        p.send("DELE %d\r\n" % i)
    for i in range(1, n + 1):
        assert p.line() == "+OK Message %d deleted" % i
    p.send("QUIT\r\n")
    assert other.cmd("STAT") == "+OK 2 %d" % stat(other)[1]
    assert p.line() == "+OK Bye"
    assert p.closed()
    assert pop.messages(ALICE) == {}
    q = session(pop)                                           # not [IN-USE]
    assert stat(q) == (0, 0)
    assert q.cmd("QUIT") == "+OK Bye"
    assert other.cmd("QUIT") == "+OK Bye"
    # QUIT sent, connection dropped before the reply: UPDATE still happens.
    deliver(pop, *numbered(30, "c"))
    p = session_when_free(pop)
    p.send("".join("DELE %d\r\n" % i for i in range(1, 31)) + "QUIT\r\n")
    p.close()
    # (File names only: the unlinks may still be running while we look.)
    assert wait_until(lambda: maildir_files(pop, "cur") == maildir_files(pop, "new") == [])
    assert stat(session_when_free(pop)) == (0, 0)


def test_quit_in_authorization_deletes_nothing(pop):
    deliver(pop, *numbered(1))
    p = Pop3(pop.pop3_port)
    assert p.cmd("QUIT").startswith("+OK")
    assert p.closed()
    assert len(pop.messages(ALICE)) == 1


def test_dropped_connection_deletes_nothing(pop):
    deliver(pop, *numbered(2))
    p = session(pop)
    assert p.cmd("DELE 1").startswith("+OK")
    assert p.cmd("DELE 2").startswith("+OK")
    p.close()                                                 # no QUIT
    p = session_when_free(pop)
    assert stat(p)[0] == 2
    assert p.cmd("DELE 1").startswith("+OK")
    p.send("DELE 2\r\n")                                      # and drop mid-command
    p.close()
    p = session_when_free(pop)
    assert stat(p)[0] == 2
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    assert len(pop.messages(ALICE)) == 2


def test_new_moves_to_cur_and_later_mail_waits(pop):
    deliver(pop, *numbered(2))
    new = maildir_files(pop, "new")
    assert len(new) == 2 and maildir_files(pop, "cur") == []
    p = session(pop)
    # Maildir spec: a reader moves new/ to cur/ and appends the ":2," info
    # (after the login reply, while the session goes on).
    assert wait_until(lambda: maildir_files(pop, "new") == [])
    assert maildir_files(pop, "cur") == sorted(n + ":2," for n in new)
    uidls = uidl_map(p)
    deliver(pop, *numbered(1, "late"))
    assert len(maildir_files(pop, "new")) == 1
    assert stat(p)[0] == 2                                    # not in this session
    assert uidl_map(p) == uidls
    assert p.cmd("LIST 3").startswith("-ERR")
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    p = session_when_free(pop)
    assert stat(p)[0] == 3
    assert sorted(subject(p.retr(i)[1]) for i in (1, 2, 3)) == ["late0", "m0", "m1"]
    assert set(uidls.values()) < set(uidl_map(p).values())
    assert wait_until(lambda: maildir_files(pop, "new") == [])
    p.close()


def test_uidl_stable_across_sessions_and_restart(pop):
    deliver(pop, *numbered(4))
    p = session(pop)
    uidls = uidl_map(p)
    assert len(set(uidls.values())) == 4
    # Derived from the Maildir unique name (the file name before ":"). The
    # new/ -> cur/ moves run after the login reply, on a worker.
    assert wait_until(lambda: len(maildir_files(pop, "cur")) == 4, timeout=10)
    assert sorted(uidls.values()) == sorted(n.split(":")[0] for n in maildir_files(pop, "cur"))
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    p = session_when_free(pop)
    assert uidl_map(p) == uidls
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    pop.stop()
    pop.start()
    p = session_when_free(pop)
    assert uidl_map(p) == uidls
    assert p.cmd("DELE 2").startswith("+OK")
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    p = session_when_free(pop)
    assert uidl_map(p) == {1: uidls[1], 2: uidls[3], 3: uidls[4]}
    p.close()


def test_messages_ordered_by_arrival(pop):
    """Each message is acknowledged (250) before the next is sent, so the
    POP3 numbering must follow that order, also within one second."""
    deliver(pop, *numbered(12, "order"))
    p = session(pop)
    got = [subject(p.retr(i)[1]) for i in range(1, 13)]
    assert got == ["order%d" % i for i in range(12)]
    p.close()


def test_one_session_per_mailbox(pop):
    deliver(pop, *numbered(1))
    a = session(pop)
    b = Pop3(pop.pop3_port)
    r = b.login()
    assert r.startswith("-ERR [IN-USE]"), r
    assert b.cmd("STAT").startswith("-ERR")                   # still AUTHORIZATION
    assert b.login(BOB).startswith("+OK")                     # another mailbox is free
    assert stat(a)[0] == 1
    assert a.cmd("QUIT").startswith("+OK")
    a.close()
    c = session_when_free(pop)
    assert stat(c)[0] == 1
    c.close()
    b.close()


def test_lock_of_a_killed_daemon_does_not_block(pop):
    deliver(pop, *numbered(2))
    a = session(pop)
    assert a.cmd("DELE 1").startswith("+OK")
    pop.kill()
    a.close()
    pop.start()
    p = Pop3(pop.pop3_port)
    r = p.login()
    assert r.startswith("+OK"), r
    assert stat(p)[0] == 2                                    # no UPDATE happened
    p.close()


def test_max_sessions_per_ip(tegami_new):
    # This host's addresses are exempt by default (server.per_ip_exceptions).
    tegami_new.add_user(ALICE)
    tegami_new.start(**PLAIN, **{"pop3.max_sessions_per_ip": "2",
                                 "server.per_ip_exceptions": ""})
    a, b = Pop3(tegami_new.pop3_port), Pop3(tegami_new.pop3_port)
    s = socket.create_connection(("127.0.0.1", tegami_new.pop3_port), timeout=5)
    data = s.recv(4096)
    assert data.startswith(b"-ERR [SYS/TEMP]") and data.endswith(b"\r\n")
    assert s.recv(4096) == b""
    s.close()
    a.cmd("QUIT")
    a.close()
    assert wait_until(lambda: greets(tegami_new.pop3_port))
    b.close()


# --- PIPELINING -------------------------------------------------------------

def test_pipelining(pop):
    deliver(pop, b"Subject: p1\r\n\r\n.one\r\n", b"Subject: p2\r\n\r\ntwo\r\n")
    p = Pop3(pop.pop3_port)
    p.send("CAPA\r\nUSER %s\r\nPASS wrong\r\nUSER %s\r\nPASS secret\r\nSTAT\r\nLIST\r\n"
           "RETR 1\r\nXYZZY\r\nTOP 2 0\r\nUIDL 2\r\nDELE 1\r\nRETR 1\r\nRSET\r\nNOOP\r\n"
           "QUIT\r\n" % (ALICE, ALICE))
    assert p.line().startswith("+OK")
    assert "PIPELINING" in p.multi()
    assert p.line() == "+OK"
    assert p.line().startswith("-ERR [AUTH]")
    assert p.line() == "+OK"
    assert p.line().startswith("+OK")
    n, total = map(int, p.line().split()[1:3])
    assert n == 2
    assert p.line() == "+OK"
    sizes = {int(a): int(b) for a, b in (l.split() for l in p.multi())}
    assert sum(sizes.values()) == total
    assert p.line() == "+OK %d octets" % sizes[1]
    m1 = p.multi_raw()
    assert len(m1) == sizes[1]
    # (Which one is number 1 is test_messages_ordered_by_arrival's business.)
    bodies = [b"Subject: p1\r\n\r\n.one\r\n", b"Subject: p2\r\n\r\ntwo\r\n"]
    assert m1.endswith(bodies[0]) or m1.endswith(bodies[1])
    other = bodies[1] if m1.endswith(bodies[0]) else bodies[0]
    assert p.line().startswith("-ERR")
    assert p.line() == "+OK"
    assert p.multi_raw().endswith(other[:15])
    assert re.fullmatch(r"\+OK 2 \S+", p.line())
    assert p.line().startswith("+OK")
    assert p.line().startswith("-ERR")
    assert p.line().startswith("+OK")
    assert p.line() == "+OK"
    assert p.line().startswith("+OK")
    assert p.closed()
    assert len(pop.messages(ALICE)) == 2                      # RSET undid the DELE


# --- AUTH (RFC 5034) --------------------------------------------------------

def test_auth_without_argument_lists_mechanisms(tegami):
    p = Pop3(tegami.pop3_port)
    first, mechs = p.cmd_multi("AUTH")
    assert first.startswith("+OK") and mechs == ["CRAM-MD5"]
    p.stls()
    first, mechs = p.cmd_multi("AUTH")
    assert first.startswith("+OK") and mechs == ["PLAIN", "LOGIN", "CRAM-MD5"]
    p.close()


def test_auth_plain(pop):
    p = Pop3(pop.pop3_port)
    assert p.cmd("AUTH PLAIN " + b64("\0%s\0wrong" % ALICE)).startswith("-ERR [AUTH]")
    assert p.cmd("AUTH PLAIN " + b64("%s\0%s\0secret" % (BOB, ALICE))).startswith("-ERR [AUTH]")
    assert p.cmd("AUTH PLAIN") == "+ "                        # empty challenge
    assert p.cmd(b64("\0%s\0wrong" % ALICE)).startswith("-ERR [AUTH]")
    assert p.cmd("AUTH PLAIN") == "+ "
    assert p.cmd(b64("\0%s\0secret" % ALICE)).startswith("+OK")
    assert p.cmd("STAT") == "+OK 0 0"
    p.close()
    p = Pop3(pop.pop3_port)
    r = p.cmd("AUTH PLAIN " + b64("%s\0%s\0secret" % (BOB, BOB)))
    assert r.startswith("+OK"), r
    p.close()


def test_auth_login(pop):
    p = Pop3(pop.pop3_port)
    r = p.cmd("AUTH LOGIN")
    assert r.startswith("+ ") and base64.b64decode(r[2:]) == b"Username:"
    r = p.cmd(b64(ALICE))
    assert r.startswith("+ ") and base64.b64decode(r[2:]) == b"Password:"
    assert p.cmd(b64("wrong")).startswith("-ERR [AUTH]")
    r = p.cmd("AUTH LOGIN " + b64(ALICE))                     # initial response
    assert r.startswith("+ ") and base64.b64decode(r[2:]) == b"Password:"
    assert p.cmd(b64("secret")).startswith("+OK")
    assert p.cmd("STAT") == "+OK 0 0"
    p.close()


def cram(p, user, password):
    r = p.cmd("AUTH CRAM-MD5")
    assert r.startswith("+ "), r
    challenge = base64.b64decode(r[2:])
    assert re.fullmatch(rb"<[^<>@]+@[^<>]+>", challenge), challenge
    digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    return p.cmd(b64("%s %s" % (user, digest)))


def test_auth_cram_md5_without_tls(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"auth.fail_delay_max": "0"})
    p = Pop3(tegami_new.pop3_port)
    assert cram(p, ALICE, "wrong").startswith("-ERR [AUTH]")
    assert cram(p, "nobody@example.test", "secret").startswith("-ERR [AUTH]")
    assert p.cmd("AUTH CRAM-MD5 " + b64("x")).startswith("-ERR")   # server speaks first
    r = cram(p, ALICE, "secret")
    assert r.startswith("+OK"), r
    assert p.cmd("STAT") == "+OK 0 0"
    p.close()


def test_auth_cancel_and_bad_base64(pop):
    p = Pop3(pop.pop3_port)
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
        assert p.cmd("AUTH " + mech).startswith("+ ")
        assert p.cmd("*").startswith("-ERR"), mech
    assert p.cmd("AUTH LOGIN " + b64(ALICE)).startswith("+ ")
    assert p.cmd("*").startswith("-ERR")
    assert p.cmd("AUTH PLAIN *").startswith("-ERR")
    assert p.cmd("AUTH PLAIN !!notbase64!!").startswith("-ERR")
    assert p.cmd("AUTH PLAIN") == "+ "
    assert p.cmd("%%%%").startswith("-ERR")
    assert p.cmd("AUTH CRAM-MD5").startswith("+ ")
    assert p.cmd("not base64 at all").startswith("-ERR")
    assert p.cmd("AUTH PLAIN " + b64("no nuls here")).startswith("-ERR")
    assert p.cmd("AUTH GSSAPI").startswith("-ERR")
    assert p.cmd("AUTH XOAUTH2 abc").startswith("-ERR")
    assert p.cmd("STAT").startswith("-ERR")                   # none of that logged in
    assert p.cmd("AUTH PLAIN " + b64("\0%s\0secret" % ALICE)).startswith("+OK")
    p.close()


# --- failed logins: delay and screen ----------------------------------------

def test_failed_login_is_delayed(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"auth.allow_plaintext": "yes", "auth.fail_delay_max": "1"})
    p = Pop3(tegami_new.pop3_port)
    for _ in range(2):
        assert p.cmd("USER " + ALICE) == "+OK"
        start = time.time()
        assert p.cmd("PASS wrong").startswith("-ERR [AUTH]")
        assert 0.9 <= time.time() - start < 2.5               # capped at fail_delay_max
    # What is pipelined behind a failure waits for it and keeps its order.
    start = time.time()
    p.send("AUTH PLAIN %s\r\nSTAT\r\nUSER %s\r\nPASS secret\r\nSTAT\r\n" %
           (b64("\0%s\0bad" % ALICE), ALICE))
    assert p.line().startswith("-ERR [AUTH]")
    assert time.time() - start >= 0.9
    assert p.line().startswith("-ERR")
    assert p.line() == "+OK"
    assert p.line().startswith("+OK")
    assert p.line() == "+OK 0 0"
    p.close()


def test_failed_logins_are_screened(tegami_new):
    tegami_new.add_user(ALICE)
    tegami_new.start(**{"auth.allow_plaintext": "yes", "auth.fail_delay_max": "0",
                        "screen.auth_failures": "3", "screen.ban_time": "60"})
    p = Pop3(tegami_new.pop3_port)
    assert p.login(password="bad1").startswith("-ERR [AUTH]")
    assert p.cmd("AUTH PLAIN " + b64("\0%s\0bad2" % ALICE)).startswith("-ERR [AUTH]")
    assert cram(p, ALICE, "bad3").startswith("-ERR [AUTH]")
    assert p.closed()
    s = socket.create_connection(("127.0.0.1", tegami_new.pop3_port), timeout=5)
    data = s.recv(4096)
    assert data.startswith(b"-ERR [SYS/TEMP]") and data.endswith(b"\r\n"), data
    assert s.recv(4096) == b""
    s.close()
    out = tegami_new.cli("screen", "list").stdout
    assert out.startswith("127.0.0.1\t")
    tegami_new.cli("screen", "del", "127.0.0.1")
    assert wait_until(lambda: greets(tegami_new.pop3_port))


# --- inactivity timeout -----------------------------------------------------

def test_inactivity_timeout(tegami_new):
    """pop3.timeout has a floor of 30 s: one idle session, about 31 s. RFC
    1939 §3: the autologout closes without UPDATE (nothing deleted)."""
    tegami_new.add_user(ALICE)
    tegami_new.start(**PLAIN, **{"pop3.timeout": "30"})
    deliver(tegami_new, *numbered(1))
    r = tegami_new.cli("config", "set", "pop3.timeout=29", check=False)
    assert r.returncode != 0                                  # below the minimum
    p = session(tegami_new)
    idle = Pop3(tegami_new.pop3_port)                         # AUTHORIZATION state too
    assert p.cmd("DELE 1").startswith("+OK")
    start = time.time()
    assert not p.closed(timeout=27)
    assert p.closed(timeout=10)
    assert 28 <= time.time() - start <= 37
    assert p.buf == b""                                       # closed without a reply
    assert idle.closed(timeout=3)
    p = session_when_free(tegami_new)
    assert stat(p)[0] == 1
    p.close()
