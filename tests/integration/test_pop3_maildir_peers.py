"""Sharing a Maildir with other programs (issue 4: "Maildir new/ -> cur/ moves
and flags follow the Maildir spec so mutt and Dovecot can share the same
mailbox"; MISSION P2).

The other program here is Python's own Maildir implementation (the standard
library's `mailbox.Maildir`), acting as a local delivery agent and as a mail
reader: messages it adds, with its own unique names, and flags it sets, are
served and kept; after a POP3 session it still reads every message, with the
flags a reader set, and sees exactly the deletions POP3 made."""
import mailbox
import os

from test_pop3 import (ALICE, PLAIN, deliver, session, session_when_free, stat, subject,
                       uidl_map, wait_until)

import pytest


@pytest.fixture
def pop(tegami_new):
    tegami_new.add_user(ALICE)
    return tegami_new.start(**PLAIN)


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_messages_and_flags_of_another_maildir_program(pop):
    deliver(pop, b"Subject: smtp1\r\n\r\none\r\n", b"Subject: smtp2\r\n\r\n.two\r\n")
    md = mailbox.Maildir(str(pop.maildir(ALICE)), factory=None, create=False)
    # A local delivery agent's message (into new/, its own unique name) ...
    added = md.add(b"Subject: mda\nFrom: x@example.org\n\nfrom another MDA\n.dot\n")
    # ... and one a reader already saw and flagged (cur/, "2,FS").
    seen = mailbox.MaildirMessage(b"Subject: flagged\n\nread and flagged\n")
    seen.set_subdir("cur")
    seen.set_flags("FS")
    flagged = md.add(seen)
    assert len(md) == 4

    p = session(pop)
    n, total = stat(p)
    assert n == 4
    uidls = uidl_map(p)
    assert len(set(uidls.values())) == 4
    assert any(u.startswith(added) for u in uidls.values())        # from its base name
    got = {}
    for i in range(1, 5):
        first, body = p.retr(i)
        assert first == "+OK %d octets" % len(body)
        got[subject(body)] = body
    assert sum(map(len, got.values())) == total
    assert got["mda"] == b"Subject: mda\r\nFrom: x@example.org\r\n\r\nfrom another MDA\r\n.dot\r\n"
    assert got["flagged"] == b"Subject: flagged\r\n\r\nread and flagged\r\n"
    # The reader moves new/ to cur/ while the session goes on.
    assert wait_until(lambda: not os.listdir(pop.maildir(ALICE) / "new"))
    mda_index = next(i for i, u in uidls.items() if u.startswith(added))
    assert p.cmd("DELE %d" % mda_index).startswith("+OK")
    assert p.cmd("QUIT") == "+OK Bye"
    p.close()

    # The other program reads the mailbox after the session.
    md = mailbox.Maildir(str(pop.maildir(ALICE)), factory=None, create=False)
    assert added not in md.keys()                                 # POP3's DELE
    assert len(md) == 3
    assert md.get_message(flagged).get_flags() == "FS"              # a reader's flags stay
    for key in md.keys():
        m = md.get_message(key)
        assert m.get_subdir() == "cur"                              # moved by the POP3 reader
        assert got[m["Subject"]] == crlf(m.as_bytes()), m["Subject"]
    # UIDLs are the same in the next session.
    p = session_when_free(pop)
    assert set(uidl_map(p).values()) == set(uidls.values()) - {uidls[mda_index]}
    assert p.cmd("QUIT") == "+OK Bye"
