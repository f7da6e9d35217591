"""POP3 replies that bypass the event loop's write pass, and the one-message
read-ahead of sequential RETRs (issue 4, performance; MISSION P1).

After RETR n the server reads message n+1 while the client is still taking
in message n, and replies go straight onto the socket when nothing is queued
before them. Neither may change a single octet of what RFC 1939 says is
sent, whatever order the client asks in, whatever it deleted, however slowly
it reads. Raw sockets: what is asserted is exactly what was on the wire."""
import os
import re
import socket
import time

import pytest

from test_pop3 import ALICE, PLAIN, Pop3, deliver, list_map, subject, wait_until

# Sizes around the read-ahead limit (64 KiB on the wire) and the socket's
# buffers: small, just under, just over, large.
SIZES = [300, 4000, 65000, 66000, 300, 200000, 1200, 5, 70000, 900]


def message(i, size):
    head = b"Subject: ra%02d\r\nFrom: x@example.org\r\n\r\n" % i
    line = b".%02d dot-stuffed line of message %02d..........................\r\n" % (i, i)
    body = (line * (size // len(line) + 1))[:max(size, 2)]
    return head + body[:-2] + b"\r\n"


@pytest.fixture
def box(tegami_new):
    """A daemon with ALICE holding the SIZES messages; returns (t, {subject: bytes})."""
    tegami_new.add_user(ALICE)
    t = tegami_new.start(**PLAIN)
    msgs = {("ra%02d" % i): message(i, n) for i, n in enumerate(SIZES)}
    deliver(t, *msgs.values())
    return t, msgs


def login(t):
    p = Pop3(t.pop3_port, timeout=30)
    r = p.login()
    assert r.startswith("+OK"), r
    return p


def check(p, n, msgs, sizes):
    """RETR n: +OK with the LIST size, then exactly the delivered message after
    the trace headers."""
    first, got = p.retr(n)
    assert first == "+OK %d octets" % sizes[n], (n, first)
    assert len(got) == sizes[n]
    assert got.endswith(msgs[subject(got)]), n
    return subject(got)


def test_sequential_retr_across_the_read_ahead_limit(box):
    t, msgs = box
    p = login(t)
    sizes = list_map(p)
    seen = [check(p, n, msgs, sizes) for n in sorted(sizes)]
    assert sorted(seen) == sorted(msgs)                 # each message once
    assert p.cmd("QUIT") == "+OK Bye"
    p.close()
    # The disconnect line counts the RETRs answered from the read-ahead: only
    # messages that follow a RETR and fit in 64 KiB qualify.
    eligible = sum(1 for n in sorted(sizes)[1:] if sizes[n] <= 64 * 1024)
    assert 0 < eligible < len(sizes) - 1

    def counts():
        m = re.findall(r"event=disconnect service=pop3 .* retrieved=(\d+) read_ahead=(\d+)",
                       t.log())
        return m[-1] if m else None
    assert wait_until(lambda: counts() is not None)
    retrieved, ahead = map(int, counts())
    assert retrieved == len(sizes)
    assert 1 <= ahead <= eligible


def test_out_of_order_and_repeated_retr(box):
    t, msgs = box
    p = login(t)
    sizes = list_map(p)
    order = [1, 3, 2, 2, 5, 4, 10, 9, 1, 7, 8, 6, 6]
    seen = {n: check(p, n, msgs, sizes) for n in order}
    assert len(set(seen.values())) == len(sizes)
    assert p.cmd("QUIT") == "+OK Bye"


def test_dele_and_rset_after_the_next_message_was_read_ahead(box):
    t, msgs = box
    p = login(t)
    sizes = list_map(p)
    check(p, 1, msgs, sizes)
    time.sleep(0.2)                                     # message 2 is read ahead by now
    assert p.cmd("DELE 2") == "+OK Message 2 deleted"
    assert p.cmd("RETR 2") == "-ERR Message 2 is deleted"
    assert p.cmd("RSET").startswith("+OK")
    s2 = check(p, 2, msgs, sizes)
    assert p.cmd("DELE 3") == "+OK Message 3 deleted"  # 3 was read ahead after RETR 2
    assert check(p, 4, msgs, sizes) != s2
    assert p.cmd("QUIT") == "+OK Bye"
    p.close()
    assert len(t.messages(ALICE)) == len(SIZES) - 1
    left = {subject(b.replace(b"\n", b"\r\n")) for b in t.messages(ALICE).values()}
    assert s2 in left and len(left) == len(SIZES) - 1


def test_top_after_retr_is_not_the_read_ahead_copy(box):
    t, msgs = box
    p = login(t)
    sizes = list_map(p)
    check(p, 1, msgs, sizes)
    time.sleep(0.2)
    first, head = p.retr("2 0", command="TOP")
    assert first == "+OK"
    assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
    assert len(head) < sizes[2]
    first, one = p.retr("2 1", command="TOP")
    assert one.startswith(head) and one.count(b"\r\n") == head.count(b"\r\n") + 1
    check(p, 2, msgs, sizes)                           # still whole after the TOPs
    assert p.cmd("QUIT") == "+OK Bye"


def test_pipelined_retr_of_all_read_slowly(box):
    """Every RETR in one packet, the replies left unread while the server
    fills the socket: what the socket does not take waits in order."""
    t, msgs = box
    p = login(t)
    sizes = list_map(p)
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    p.send("".join("RETR %d\r\n" % n for n in sorted(sizes)) + "NOOP\r\n")
    time.sleep(1.0)
    seen = []
    for n in sorted(sizes):
        assert p.line() == "+OK %d octets" % sizes[n]
        got = p.multi_raw()
        assert len(got) == sizes[n]
        assert got.endswith(msgs[subject(got)])
        seen.append(subject(got))
    assert p.line() == "+OK"
    assert sorted(seen) == sorted(msgs)
    assert p.cmd("QUIT") == "+OK Bye"


@pytest.mark.parametrize("mode", ["stls", "pop3s"])
def test_sequential_retr_under_tls(box, mode):
    t, msgs = box
    if mode == "stls":
        p = Pop3(t.pop3_port, timeout=30)
        p.stls()
    else:
        p = Pop3(t.pop3s_port, tls=True, timeout=30)
    assert p.login().startswith("+OK")
    sizes = list_map(p)
    seen = [check(p, n, msgs, sizes) for n in sorted(sizes)]
    assert sorted(seen) == sorted(msgs)
    assert p.cmd("QUIT") == "+OK Bye"


def test_message_removed_by_another_reader_after_it_was_read_ahead(box):
    """A Maildir file is never rewritten, only removed: a copy read ahead is
    still the message, and a RETR either sends it whole or says it is gone."""
    t, msgs = box
    p = login(t)
    sizes = list_map(p)
    check(p, 1, msgs, sizes)
    time.sleep(0.2)
    for f in sorted((t.maildir(ALICE) / "cur").iterdir()):
        if subject(f.read_bytes().replace(b"\n", b"\r\n")) == "ra01":
            f.unlink()
    r = p.cmd("RETR 2")
    if r.startswith("+OK"):
        got = p.multi_raw()
        assert r == "+OK %d octets" % sizes[2] and len(got) == sizes[2]
        assert got.endswith(msgs[subject(got)])
    else:
        assert r.startswith("-ERR [SYS/TEMP] Cannot read message 2"), r
    assert p.cmd("NOOP") == "+OK"
    assert p.cmd("QUIT") == "+OK Bye"


# --- the output cap ---------------------------------------------------------


def started_with_files(tegami_new, sub, names_and_bodies):
    """A started daemon whose ALICE Maildir holds the given files in sub
    (placed there as another delivery agent would); returns (t, maildir)."""
    tegami_new.add_user(ALICE)
    t = tegami_new.start(**PLAIN)
    md = t.maildir(ALICE)
    for d in ("new", "cur", "tmp"):
        (md / d).mkdir(parents=True, exist_ok=True)
    for name, body in names_and_bodies:
        (md / sub / name).write_bytes(body)
    return t, md


def read_until(sock, done, timeout=15):
    """Reads until done(buffer) or timeout; returns what arrived."""
    sock.settimeout(timeout)
    buf = bytearray()
    deadline = time.time() + timeout
    while not done(buf) and time.time() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def test_pipelined_commands_past_the_output_cap_are_all_answered(tegami_new):
    """RFC 2449 PIPELINING: USER, PASS, UIDL, LIST, STAT in one packet on an
    8,000-message maildrop, so that UIDL alone (350 KB) is past the server's
    output cap, to a client that reads as fast as replies come (a large
    receive buffer: the socket takes whatever is written). LIST and STAT must
    be answered without the client sending anything more."""
    n = 8000
    t, md = started_with_files(tegami_new, "cur", (
        ("1700000000.M%dP1.host,S=19,W=20:2," % i, b"Subject: x\n\nhi\n") for i in range(n)))
    s = socket.create_connection(("127.0.0.1", t.pop3_port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    read_until(s, lambda b: b.endswith(b"\r\n"))
    s.sendall(b"USER %s\r\nPASS secret\r\nUIDL\r\nLIST\r\nSTAT\r\n" % ALICE.encode())
    stat_line = b"\r\n+OK %d %d\r\n" % (n, 20 * n)
    got = read_until(s, lambda b: b.endswith(stat_line))
    assert got.count(b"\r\n.\r\n") == 2                 # UIDL and LIST, complete
    assert got.endswith(stat_line), got[-120:]
    s.close()


def test_tls_filter_holds_a_bounded_amount_for_a_client_that_does_not_read(tegami_new):
    """After STLS the encrypted reply waits in a bounded buffer, not whole in
    memory, while the client does not read a 48 MB message; then it arrives
    complete."""
    line = b"0123456789" * 7 + b"\n"
    body = b"Subject: big\n\n" + line * (48 * 1024 * 1024 // len(line))
    t, md = started_with_files(tegami_new, "new", [("1700000000.M1P1.bigtest", body)])
    wire = len(body) + body.count(b"\n")

    def rss_kb():
        with open("/proc/%d/status" % t.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    p = Pop3(t.pop3_port, timeout=60)
    p.stls()
    assert p.login().startswith("+OK")
    before = rss_kb()
    p.send("RETR 1\r\n")
    time.sleep(2.0)                                   # the server fills what it may
    grown = rss_kb() - before
    assert grown < 20 * 1024, "tegamid grew %d KB for a client that does not read" % grown
    first = p.line()
    assert first == "+OK %d octets" % wire
    assert len(p.multi_raw()) == wire
    assert p.cmd("QUIT") == "+OK Bye"


def test_messages_moving_from_new_to_cur_during_the_session(tegami_new):
    """P2: the new/ → cur/ moves run after the login reply, while the client
    already retrieves and deletes: every RETR finds its message (in new/ or
    in cur/), the deletions hit wherever the file is, and a QUIT in the
    middle of the moves loses and duplicates nothing (what was not moved
    waits in new/ for the next session)."""
    n = 3000
    t, md = started_with_files(tegami_new, "new", (
        ("1700000000.M%04dP1.race" % i, b"Subject: r%04d\n\nbody %04d\n" % (i, i))
        for i in range(n)))
    p = Pop3(t.pop3_port, timeout=60)
    p.send("USER %s\r\nPASS secret\r\n" % ALICE
           + "".join("RETR %d\r\n" % i for i in range(1, 201))
           + "".join("DELE %d\r\n" % i for i in range(1, 101)) + "QUIT\r\n")
    assert p.line() == "+OK"
    assert p.line().startswith("+OK Logged in, %d messages" % n)
    for i in range(1, 201):
        first = p.line()
        assert first.startswith("+OK"), (i, first)
        assert p.multi_raw() == b"Subject: r%04d\r\n\r\nbody %04d\r\n" % (i - 1, i - 1)
    for i in range(1, 101):
        assert p.line() == "+OK Message %d deleted" % i
    assert p.line() == "+OK Bye"
    p.close()
    names = os.listdir(md / "new") + os.listdir(md / "cur")
    assert len(names) == n - 100
    assert len({x.split(":")[0] for x in names}) == n - 100            # no duplicates
    q = Pop3(t.pop3_port, timeout=60)
    assert q.login() == "+OK Logged in, %d messages (%d octets)" % (
        n - 100, sum(len(b"Subject: r0000\r\n\r\nbody 0000\r\n") for _ in range(n - 100)))
    first, body = q.retr(1)
    assert body == b"Subject: r0100\r\n\r\nbody 0100\r\n"
    assert wait_until(lambda: not os.listdir(md / "new"), timeout=30)   # settled now
    assert q.cmd("QUIT") == "+OK Bye"


def test_daemon_stops_cleanly_while_messages_move(tegami_new):
    """SIGTERM right after a login on a 5,000-message new/: tegamid stops the
    moves, exits 0 (under the sanitizers: no leak), and every message is in
    new/ or cur/, once."""
    n = 5000
    t, md = started_with_files(tegami_new, "new", (
        ("1700000000.M%04dP1.stop" % i, b"Subject: s\n\nx\n") for i in range(n)))
    p = Pop3(t.pop3_port, timeout=60)
    assert p.login().startswith("+OK Logged in, %d messages" % n)
    assert t.stop() == 0
    names = os.listdir(md / "new") + os.listdir(md / "cur")
    assert len(names) == n and len({x.split(":")[0] for x in names}) == n
    p.close()
