"""Durability of the spool and of Maildir delivery (MISSION S5).

1. Crash test: many sessions flood tegamid, which is killed with SIGKILL in
   the middle; after a restart every message that got "250 ... queued as QID"
   is in each of its recipients' Maildirs exactly once, and nothing (whether
   acknowledged or not) is ever half-written.
2. A queue file written by hand in the documented format (queue/spool.h) is
   delivered at start-up and removed; a QID.tmp file is removed, never
   delivered.
3. Recovery is idempotent: a recipient whose file (ARRIVAL.Q<qid>_<index>.)
   already landed in new/ or cur/ does not get a second copy.
4. SIGTERM with sessions open stops tegamid quickly with status 0.
"""
import random
import re
import threading
import time
import uuid

from conftest import SANITIZED, RawSMTP

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
QID_RE = re.compile(r"^[0-9A-F]{20}$")
NAME_RE = re.compile(r"^(\d+)\.Q([0-9A-F]{20})_(\d+)\.([^/]+),S=(\d+),W=(\d+)(:2,[A-Za-z]*)?$")
QUEUED_RE = re.compile(r"^2\.0\.0 Ok: queued as ([0-9A-F]{20})$")


def committed(t):
    """Committed queue files (QID names) in DIR/queue."""
    q = t.dir / "queue"
    return sorted(f.name for f in q.iterdir() if QID_RE.match(f.name)) if q.is_dir() else []


def wait_queue_empty(t, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not committed(t):
            return True
        time.sleep(0.05)
    return not committed(t)


def maildir_files(t, address):
    """(sub, name, bytes) of every file in new/ and cur/."""
    out = []
    for sub in ("new", "cur"):
        d = t.maildir(address) / sub
        if d.is_dir():
            for f in sorted(d.iterdir()):
                out.append((sub, f.name, f.read_bytes()))
    return out


def check_name(name, data):
    """A Maildir name as maildir.h documents it, with S= and W= that match
    the content: a file that got its name is complete."""
    m = NAME_RE.match(name)
    assert m, "unexpected file name in Maildir: %r" % name
    assert int(m.group(5)) == len(data), "S= does not match the size of %s" % name
    assert int(m.group(6)) == len(data) + data.count(b"\n"), "W= wrong in %s" % name
    return m


def queue_file(qid, arrival, sender, rcpts, message):
    env = "tegami-queue 1\nI %s\nT %d\nS %s\n" % (qid, arrival, sender)
    env += "".join("R %s\t%s\n" % (r, r) for r in rcpts)
    return env.encode() + b"\n" + message


# --- 1. the crash test --------------------------------------------------------------

MAX_MESSAGES = 2000
CLIENTS = 20
FLOOD_SECONDS = 1.5


def flood_message(token, rnd):
    lines = ["From: <flood@example.org>", "To: <%s>" % ALICE, "Subject: flood %s" % token,
             "Message-ID: <%s@flood.example>" % token, ""]
    # 0.5 to ~24 KB, so that some messages are in flight while the kill lands
    for i in range(rnd.randint(5, 300)):
        lines.append("%s line %04d %s" % (token, i, "x" * 70))
    lines.append("END-%s" % token)
    crlf = ("\r\n".join(lines) + "\r\n").encode()
    return crlf, crlf.replace(b"\r\n", b"\n")


def test_sigkill_mid_flood_loses_no_acknowledged_message(tegami):
    t = tegami
    lock = threading.Lock()
    sent = {}       # token -> (rcpts, stored LF form): the end of DATA went out
    acked = {}      # token -> qid: "250 2.0.0 Ok: queued as QID" came back
    budget = [MAX_MESSAGES]
    killed = threading.Event()
    deadline = time.time() + FLOOD_SECONDS + 20
    errors = []

    def client(n):
        rnd = random.Random(n)
        while not killed.is_set() and time.time() < deadline:
            c = None
            try:
                c = RawSMTP(t.port, timeout=10)
                if c.reply()[0] != 220 or c.cmd("EHLO flood%d.example" % n)[0] != 250:
                    continue
                while not killed.is_set() and time.time() < deadline:
                    with lock:
                        if budget[0] <= 0:
                            return
                        budget[0] -= 1
                    token = uuid.uuid4().hex
                    rcpts = [ALICE, BOB] if rnd.random() < 0.3 else [ALICE]
                    crlf, lf = flood_message(token, rnd)
                    if c.cmd("MAIL FROM:<flood@example.org>")[0] != 250:
                        break
                    if any(c.cmd("RCPT TO:<%s>" % r)[0] != 250 for r in rcpts):
                        break
                    if c.cmd("DATA")[0] != 354:
                        break
                    with lock:
                        sent[token] = (rcpts, lf)
                    c.send(crlf + b".\r\n")
                    code, text = c.reply()
                    if code == 250:
                        m = QUEUED_RE.match(text[0])
                        if not m:
                            errors.append("250 without a queue id: %r" % text)
                            return
                        with lock:
                            acked[token] = m.group(1)
                    elif not killed.is_set():
                        errors.append("DATA refused before the kill: %d %r" % (code, text))
                        return
            except (OSError, ConnectionError):
                if not killed.is_set():
                    time.sleep(0.01)
            finally:
                if c is not None:
                    c.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for th in threads:
        th.start()
    # Kill after FLOOD_SECONDS, or earlier once most of the budget is used, so
    # that the kill always lands while the clients are still sending.
    flood_end = time.time() + FLOOD_SECONDS
    while time.time() < flood_end:
        with lock:
            if len(acked) >= MAX_MESSAGES * 6 // 10:
                break
        time.sleep(0.01)
    with lock:
        left_at_kill = budget[0]
    t.kill()
    killed.set()
    for th in threads:
        th.join(20)
    assert not any(th.is_alive() for th in threads), "client threads did not finish"
    assert not errors, errors
    with lock:
        sent, acked = dict(sent), dict(acked)
    assert len(acked) >= CLIENTS, "too few messages acknowledged before the kill: %d" % len(acked)
    assert left_at_kill > 0, "the flood had ended before the kill"

    t.start()
    assert wait_queue_empty(t, 30 if SANITIZED else 15), \
        "queue not drained after restart: %r\n%s" % (committed(t)[:10], t.log()[-3000:])
    assert not [f.name for f in (t.dir / "queue").iterdir()], "left in the queue directory"

    found = {}  # (token, address) -> [(qid, index)]
    token_re = re.compile(rb"\nSubject: flood ([0-9a-f]{32})\n")
    for address in (ALICE, BOB):
        for sub, name, data in maildir_files(t, address):
            assert not name.startswith("."), name
            m = check_name(name, data)
            tm = token_re.search(data)
            assert tm, "a file without a flood token (partial?): %s/%s" % (sub, name)
            token = tm.group(1).decode()
            assert token in sent, "a message nobody finished sending: %s" % name
            rcpts, lf = sent[token]
            assert address in rcpts, "%s delivered to %s, not a recipient" % (token, address)
            # complete: the whole message as sent, ending with its trailer line
            assert data.endswith(lf), "partial message %s/%s" % (sub, name)
            assert data.endswith(b"END-%s\n" % token.encode())
            assert data.startswith(b"Return-Path: <flood@example.org>\nReceived: from ")
            # the Received header names the queue id the file is named after
            assert b" id %s" % m.group(2).encode() in data.split(b"\n\n", 1)[0]
            found.setdefault((token, address), []).append((m.group(2), int(m.group(3))))

    for token, qid in acked.items():
        rcpts, lf = sent[token]
        for index, address in enumerate(rcpts):
            got = found.get((token, address), [])
            assert len(got) == 1, "acknowledged %s (qid %s) is in %s %d times" % (
                token, qid, address, len(got))
            assert got[0] == (qid, index), (token, address, got, qid, index)
    for (token, address), got in found.items():
        assert len(got) == 1, "%s is in %s %d times" % (token, address, len(got))
    # new/ holds only finished messages: nothing of tmp/ shows through
    for address in (ALICE, BOB):
        for sub in ("new", "cur"):
            d = t.maildir(address) / sub
            if d.is_dir():
                assert all(NAME_RE.match(f.name) for f in d.iterdir())
    # bounded and meaningful
    assert len(sent) <= MAX_MESSAGES
    unacked_present = {tok for (tok, _a) in found if tok not in acked}
    print("flood: %d sent, %d acknowledged, %d un-acknowledged but delivered" % (
        len(sent), len(acked), len(unacked_present)))
    # the restarted daemon serves as usual
    c = t.raw()
    assert c.cmd("EHLO after.example")[0] == 250
    c.close()


# --- 2. a queue file written by hand ---------------------------------------------------

def test_hand_written_queue_file_is_delivered_and_tmp_removed(tegami):
    t = tegami
    assert t.stop() == 0
    qid, tmp_qid = "0000000AB00000000001", "0000000AB00000000002"
    message = (b"Received: from hand.example (unknown [192.0.2.7])\n\tby test (tegami) with ESMTP"
               b" id 0000000AB0000001; Tue, 14 Nov 2023 22:13:20 +0000\n"
               b"Subject: written by hand\n\nhello from the queue\nEND-HAND\n")
    (t.dir / "queue" / qid).write_bytes(
        queue_file(qid, 1700000000, "sender@example.org", [ALICE], message))
    tmp = t.dir / "queue" / (tmp_qid + ".tmp")
    tmp.write_bytes(queue_file(tmp_qid, 1700000000, "sender@example.org", [ALICE],
                               b"Subject: never\n\nNEVER-DELIVERED\n"))
    r = t.cli("status", check=False)
    assert r.returncode == 3 and "queue: 1 message(s)" in r.stdout

    t.start()
    msgs = t.wait_messages(ALICE, 1)
    assert wait_queue_empty(t, 10), committed(t)
    assert not tmp.exists(), "the .tmp queue file was not removed at start-up"
    time.sleep(0.5)
    msgs = t.messages(ALICE)
    assert len(msgs) == 1, list(msgs)
    (name, data), = msgs.items()
    assert name.startswith("1700000000.Q%s_0." % qid), name
    check_name(name, data)
    assert data == b"Return-Path: <sender@example.org>\n" + message
    assert not t.messages(BOB)
    assert "queue: 0 message(s)" in t.cli("status").stdout
    assert "NEVER-DELIVERED" not in "".join(m.decode() for m in t.messages(ALICE).values())


def test_hand_written_queue_file_null_sender_two_recipients(tegami):
    t = tegami
    assert t.stop() == 0
    qid = "0000000AB00000000003"
    message = b"Subject: bounce-like\n\nnull sender\n"
    (t.dir / "queue" / qid).write_bytes(queue_file(qid, 1700000100, "", [ALICE, BOB], message))
    t.start()
    a = t.wait_messages(ALICE, 1)
    b = t.wait_messages(BOB, 1)
    assert wait_queue_empty(t, 10)
    (an, ad), = a.items()
    (bn, bd), = b.items()
    assert an.startswith("1700000100.Q%s_0." % qid) and bn.startswith("1700000100.Q%s_1." % qid)
    assert ad == bd == b"Return-Path: <>\n" + message


def test_unusable_queue_file_is_left_for_the_admin(tegami):
    t = tegami
    assert t.stop() == 0
    qid = "0000000AB00000000004"
    bad = t.dir / "queue" / qid
    bad.write_bytes(b"this is not a queue file\n")
    t.start()
    deadline = time.time() + 5
    while time.time() < deadline and "queue_file_unusable" not in t.log():
        time.sleep(0.05)
    assert "qid=%s" % qid in t.log()
    assert bad.exists() and bad.read_bytes() == b"this is not a queue file\n"
    assert not t.messages(ALICE)
    c = t.raw()
    assert c.cmd("NOOP")[0] == 250
    c.close()


# --- 3. recovery does not deliver twice ------------------------------------------------

def test_recovery_skips_recipients_already_delivered(tegami):
    t = tegami
    t.add_user(CAROL)
    assert t.stop() == 0
    qid1, qid2 = "0000000AB00000000011", "0000000AB00000000012"
    msg1 = b"Subject: partly delivered\n\nbody one\nEND-ONE\n"
    msg2 = b"Subject: partly delivered, read already\n\nbody two\nEND-TWO\n"
    # qid1: alice (0) already has it in new/; bob (1) and carol (2) do not
    (t.dir / "queue" / qid1).write_bytes(
        queue_file(qid1, 1700000200, "s@example.org", [ALICE, BOB, CAROL], msg1))
    # qid2: bob (0) already read it (moved to cur/ with flags); carol (1) has it; alice (2) not
    (t.dir / "queue" / qid2).write_bytes(
        queue_file(qid2, 1700000300, "s@example.org", [BOB, CAROL, ALICE], msg2))
    pre = {
        ALICE: ("new", "1700000200.Q%s_0.otherhost,S=9,W=10" % qid1, b"ALREADY-1"),
        BOB: ("cur", "1700000300.Q%s_0.otherhost,S=9,W=10:2,S" % qid2, b"ALREADY-2"),
        CAROL: ("new", "1700000300.Q%s_1.otherhost,S=9,W=10" % qid2, b"ALREADY-3"),
    }
    for address, (sub, name, data) in pre.items():
        for s in ("tmp", "new", "cur"):
            (t.maildir(address) / s).mkdir(parents=True, exist_ok=True)
        (t.maildir(address) / sub / name).write_bytes(data)

    t.start()
    assert wait_queue_empty(t, 10), committed(t)
    time.sleep(0.3)
    box = {a: t.messages(a) for a in (ALICE, BOB, CAROL)}

    def by_prefix(address, prefix):
        return {n: d for n, d in box[address].items() if n.startswith(prefix)}

    p1 = lambda i: "1700000200.Q%s_%d." % (qid1, i)
    p2 = lambda i: "1700000300.Q%s_%d." % (qid2, i)
    # the copies that were there stay untouched, and none is added beside them
    assert by_prefix(ALICE, p1(0)) == {pre[ALICE][1]: b"ALREADY-1"}
    assert by_prefix(BOB, p2(0)) == {pre[BOB][1]: b"ALREADY-2"}
    assert by_prefix(CAROL, p2(1)) == {pre[CAROL][1]: b"ALREADY-3"}
    # the missing ones are delivered once each
    for address, prefix, msg in ((BOB, p1(1), msg1), (CAROL, p1(2), msg1), (ALICE, p2(2), msg2)):
        got = by_prefix(address, prefix)
        assert len(got) == 1, (address, prefix, list(box[address]))
        (name, data), = got.items()
        check_name(name, data)
        assert data == b"Return-Path: <s@example.org>\n" + msg
    assert len(box[ALICE]) == 2 and len(box[BOB]) == 2 and len(box[CAROL]) == 2, box


def test_recovery_when_everything_landed_just_removes_the_queue_file(tegami):
    t = tegami
    assert t.stop() == 0
    qid = "0000000AB00000000021"
    (t.dir / "queue" / qid).write_bytes(
        queue_file(qid, 1700000400, "s@example.org", [ALICE], b"Subject: x\n\nx\n"))
    md = t.maildir(ALICE)
    for s in ("tmp", "new", "cur"):
        (md / s).mkdir(parents=True, exist_ok=True)
    (md / "new" / ("1700000400.Q%s_0.h,S=1,W=2" % qid)).write_bytes(b"X")
    t.start()
    assert wait_queue_empty(t, 10)
    time.sleep(0.3)
    assert t.messages(ALICE) == {"1700000400.Q%s_0.h,S=1,W=2" % qid: b"X"}


# --- 4. graceful stop -------------------------------------------------------------------

def test_sigterm_with_open_sessions_exits_zero_quickly(tegami):
    t = tegami
    sessions = []
    idle = t.raw()
    sessions.append(idle)
    ehlo = t.raw()
    assert ehlo.cmd("EHLO a.example")[0] == 250
    sessions.append(ehlo)
    txn = t.raw()
    assert txn.cmd("EHLO b.example")[0] == 250
    assert txn.cmd("MAIL FROM:<s@example.org>")[0] == 250
    assert txn.cmd("RCPT TO:<%s>" % ALICE)[0] == 250
    sessions.append(txn)
    data = t.raw()
    assert data.cmd("EHLO c.example")[0] == 250
    assert data.cmd("MAIL FROM:<s@example.org>")[0] == 250
    assert data.cmd("RCPT TO:<%s>" % ALICE)[0] == 250
    assert data.cmd("DATA")[0] == 354
    data.send("Subject: interrupted\r\n\r\nhalf a message" + "y" * 5000 + "\r\n")
    sessions.append(data)
    unread = RawSMTP(t.port)  # greeting never read
    sessions.append(unread)
    time.sleep(0.2)

    start = time.time()
    rc = t.stop(timeout=15)
    took = time.time() - start
    assert rc == 0, "tegamid exit status %r after SIGTERM\n%s" % (rc, t.log()[-3000:])
    assert took < 5, "SIGTERM took %.1f s" % took
    for c in sessions:
        assert c.closed(timeout=5), "a session stayed open after tegamid stopped"
        c.close()
    assert "event=stopped" in t.log()
    assert not (t.dir / "tegamid.pid").exists()
    r = t.cli("status", check=False)
    assert r.returncode == 3
    # the message cut off in DATA was never acknowledged: not queued, not delivered
    assert committed(t) == []
    assert not t.messages(ALICE)
    # and the data directory starts again cleanly
    t.start()
    c = t.raw()
    assert c.cmd("NOOP")[0] == 250
    c.close()


def test_sigterm_right_after_acknowledgement_keeps_the_message(tegami):
    """A message acknowledged just before SIGTERM is delivered now or on the
    next start; never lost."""
    t = tegami
    c = t.raw()
    assert c.cmd("EHLO d.example")[0] == 250
    assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % ALICE)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % BOB)[0] == 250
    assert c.cmd("DATA")[0] == 354
    code, text = c.cmd("Subject: last one\r\n\r\nEND-LAST\r\n.")
    assert code == 250
    qid = QUEUED_RE.match(text[0]).group(1)
    assert t.stop() == 0
    c.close()
    t.start()
    for address in (ALICE, BOB):
        msgs = t.wait_messages(address, 1)
        assert len(msgs) == 1
        (name, data), = msgs.items()
        assert ".Q%s_" % qid in name and data.endswith(b"END-LAST\n")
    assert wait_queue_empty(t, 10)


def test_sigterm_while_messages_are_being_committed(tegami):
    """SIGTERM lands while spool commits are in the worker pool: tegamid
    finishes them (or drops them unacknowledged), exits 0 without touching
    freed memory, and every message that got 250 is delivered."""
    t = tegami
    t.stop()
    t.start(queue__workers="1")  # a single writer: commits queue up behind each other
    sessions = []
    for n in range(20):
        c = t.raw()
        assert c.cmd("EHLO s%d.example" % n)[0] == 250
        assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: commit %d\r\n\r\n%sEND-C%d\r\n" % (n, ("z" * 998 + "\r\n") * 300, n))
        sessions.append(c)
    time.sleep(0.2)
    for c in sessions:
        c.send(".\r\n")
    rc = t.stop()
    acked = []
    for n, c in enumerate(sessions):
        try:
            code, text = c.reply()
            if code == 250:
                acked.append((n, QUEUED_RE.match(text[0]).group(1)))
        except (OSError, ConnectionError):
            pass
        c.close()
    print("acknowledged %d of 20 before the stop" % len(acked))
    if SANITIZED:
        t.check_sanitizers()
    assert rc == 0, t.log()[-3000:]
    t.start()
    assert wait_queue_empty(t, 10)
    msgs = t.messages(ALICE)
    for n, qid in acked:
        got = [d for name, d in msgs.items() if ".Q%s_0." % qid in name]
        assert len(got) == 1 and got[0].endswith(b"END-C%d\n" % n), (n, qid, list(msgs))
    for name, data in msgs.items():
        check_name(name, data)


def test_maildir_tmp_leftovers_swept_at_start(tegami_new):
    """Issue #10 fix 10: a crash between writing a message into tmp/ and
    linking it into new/ leaves a file there. At start-up tegamid removes
    its own leftovers (the queue redelivers whatever was acknowledged) and
    anything older than 36 hours (the Maildir rule); a fresh file of
    another program stays."""
    import os
    tegami_new.add_user("alice@example.test")
    tegami_new.start()
    tegami_new.stop()
    tmp = tegami_new.maildir("alice@example.test") / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    ours = tmp / ("1700000000.Q%s_0.host,S=10,W=11" % ("0" * 14 + "ABCDEF"))
    ours.write_bytes(b"x" * 10)
    old = tmp / "1600000000.M1P2.otherprogram"
    old.write_bytes(b"y" * 5)
    past = time.time() - 40 * 3600
    os.utime(old, (past, past))
    fresh = tmp / "1700000001.M2P3.otherprogram"
    fresh.write_bytes(b"z")
    time.sleep(1.1)  # the leftovers predate this start
    tegami_new.start()
    deadline = time.time() + 10
    while time.time() < deadline and (ours.exists() or old.exists()):
        time.sleep(0.05)
    assert not ours.exists() and not old.exists()
    assert fresh.exists()
    assert "event=maildir_tmp_swept files=2 bytes=15" in tegami_new.log()
