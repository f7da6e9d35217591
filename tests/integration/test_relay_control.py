"""Relay control and connection restrictions (MISSION R1-R4, P3; seed 002
中継制限 / 接続制限): the six relay modes against every kind of client, the
address forms that have been used to slip past relay checks, refused
addresses, OVERRJTCNN, the POP-before-SMTP record across a restart, and the
admin commands reaching a running daemon. Every client is a real socket;
the client address is varied by binding to 127.0.0.x. The DNSBL tests are
in test_dnsbl.py."""
import base64
import hmac
import socket
import sqlite3
import ssl
import time

import pytest

from conftest import RawSMTP

ALICE = "alice@example.test"
REMOTE = "bob@remote.test"
NEAR = "carol@near.test"

AUTHED = "127.0.0.20"     # logs in with AUTH (no POP login)
POP_IN = "127.0.0.21"     # logged in over POP3 just now
POP_OLD = "127.0.0.22"    # a POP login 20 minutes ago (window: 15 minutes)
LISTED = "127.0.0.23"     # on the address relay list
UNLISTED = "127.0.0.24"   # nothing
POP_RESTORED = "127.0.0.25"  # a POP login 10 minutes ago, read back at start


class Client(RawSMTP):
    """RawSMTP from a chosen source address."""

    def __init__(self, port, src, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(src, 0))
        self.buf = b""


def connect(t, src, port=None):
    c = Client(port or t.port, src)
    code, text = c.reply()
    assert code == 220, (src, code, text)
    return c


def cram_md5(c, user, password="secret"):
    code, text = c.cmd("AUTH CRAM-MD5")
    assert code == 334, text
    challenge = base64.b64decode(text[0])
    digest = hmac.new(password.encode(), challenge, "md5").hexdigest()
    code, text = c.cmd(base64.b64encode(("%s %s" % (user, digest)).encode()).decode())
    assert code == 235, text


def pop_login(t, src, user=ALICE, password="secret"):
    """A POP3S login from src (P3: recorded for POP-before-SMTP)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", t.pop3s_port), timeout=10,
                                   source_address=(src, 0))
    s = ctx.wrap_socket(raw)
    f = s.makefile("rwb")

    def cmd(line):
        if line is not None:
            f.write(line.encode() + b"\r\n")
            f.flush()
        return f.readline().decode()

    assert cmd(None).startswith("+OK")
    assert cmd("USER " + user).startswith("+OK")
    assert cmd("PASS " + password).startswith("+OK")
    assert cmd("QUIT").startswith("+OK")
    s.close()


def rcpt_code(t, src, rcpt, auth=False, sender="someone@elsewhere.test"):
    """One session from src: (code, text) of RCPT TO:<rcpt>."""
    c = connect(t, src)
    try:
        assert c.cmd("EHLO client.test")[0] == 250
        if auth:
            cram_md5(c, ALICE)
            sender = ALICE
        assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
        code, text = c.cmd("RCPT TO:<%s>" % rcpt)
        c.cmd("QUIT")
        return code, text[-1]
    finally:
        c.close()


def wait_log(t, needle, timeout=5.0, after=0):
    """Waits until the daemon's log (from offset after) holds needle;
    returns the seconds it took."""
    start = time.time()
    while time.time() - start < timeout:
        if needle in t.log()[after:]:
            return time.time() - start
        time.sleep(0.02)
    raise AssertionError("no %r in the log:\n%s" % (needle, t.log()[-3000:]))


def set_mode(t, mode):
    """tegami relay set MODE, and wait for the running daemon to apply it."""
    mark = len(t.log())
    t.cli("relay", "set", mode)
    return wait_log(t, "event=relay_lists mode=%s " % mode, after=mark)


def seed_pop_record(t, rows):
    """Writes POP logins (ip, seconds ago) into DATA/poplogins.db before
    tegamid starts: the record it reads back (outside/inside the window)."""
    t.dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(t.dir / "poplogins.db"))
    db.execute("CREATE TABLE IF NOT EXISTS pop_logins(ip TEXT PRIMARY KEY, at INTEGER NOT NULL)")
    now = int(time.time())
    db.executemany("INSERT OR REPLACE INTO pop_logins VALUES(?, ?)",
                   [(ip, now - ago) for ip, ago in rows])
    db.commit()
    db.close()


@pytest.fixture
def relay_t(tegami_new):
    t = tegami_new
    t.add_user(ALICE)
    seed_pop_record(t, [(POP_OLD, 20 * 60), (POP_RESTORED, 10 * 60)])
    t.cli("relay", "add", "domain", "near.test")
    t.cli("relay", "add", "network", LISTED)
    t.start(**{"smtp.pop_before_smtp_minutes": "15"})
    pop_login(t, POP_IN)
    return t


# --- R1: the six modes x the five kinds of client, exact replies ----------------

KINDS = ["authenticated", "pop_inside", "pop_outside", "listed", "unlisted"]
SRC = {"authenticated": AUTHED, "pop_inside": POP_IN, "pop_outside": POP_OLD,
       "listed": LISTED, "unlisted": UNLISTED}

# mode -> (replies to a remote recipient, replies to a near-domain recipient)
MATRIX = {
    "allow_all":    ([250, 250, 250, 250, 250], [250, 250, 250, 250, 250]),
    "block_all":    ([550, 550, 550, 550, 550], [550, 550, 550, 550, 550]),
    "near_domains": ([250, 550, 550, 550, 550], [250, 250, 250, 250, 250]),
    "address_list": ([250, 550, 550, 250, 550], [250, 550, 550, 250, 550]),
    "both_lists":   ([250, 550, 550, 250, 550], [250, 250, 250, 250, 250]),
    "pop_clients":  ([250, 250, 550, 550, 550], [250, 250, 550, 550, 550]),
}


def test_relay_modes_matrix(relay_t):
    t = relay_t
    for mode, (remote, near) in MATRIX.items():
        assert set_mode(t, mode) < 1.5        # tegami relay set reaches the daemon
        got_remote, got_near = [], []
        for kind in KINDS:
            for rcpt, got in ((REMOTE, got_remote), (NEAR, got_near)):
                code, text = rcpt_code(t, SRC[kind], rcpt, auth=kind == "authenticated")
                got.append(code)
                if code == 550:
                    assert text == "5.7.1 <%s>: Relay access denied (RELAY REFUSED %s)" % (
                        rcpt, SRC[kind]), (mode, kind, text)
                else:
                    assert text == "2.1.5 Ok", (mode, kind, text)
        assert (got_remote, got_near) == (remote, near), mode
    # R4: refused relays are logged with the client address and code 9V.
    log = t.log()
    assert "event=relay_refused journal=9V" in log
    assert "client=%s rcpt=<%s> mode=block_all user=alice@example.test reason=block_all" % (
        AUTHED, REMOTE) in log
    assert "client=%s rcpt=<%s> mode=address_list user=- reason=not_permitted" % (
        UNLISTED, REMOTE) in log


def test_local_mail_in_every_mode(relay_t):
    """Relay rules are about relaying: local recipients stay reachable."""
    t = relay_t
    for mode in MATRIX:
        set_mode(t, mode)
        assert rcpt_code(t, UNLISTED, ALICE)[0] == 250, mode


def test_window_restored_from_disk_and_minutes_checked(relay_t):
    """The record read back at start: 10 minutes ago is inside a 15-minute
    window, 20 minutes ago outside; a 30-minute window takes both."""
    t = relay_t
    set_mode(t, "pop_clients")
    assert rcpt_code(t, POP_RESTORED, REMOTE)[0] == 250
    assert rcpt_code(t, POP_OLD, REMOTE)[0] == 550
    mark = len(t.log())
    t.cli("relay", "set", "pop_clients", "--minutes", "30")
    wait_log(t, "event=reloaded", after=mark)
    assert rcpt_code(t, POP_OLD, REMOTE)[0] == 250
    r = t.cli("relay", "set", "pop_clients", "--minutes", "14", check=False)
    assert r.returncode == 2 and "out of range" in r.stderr
    r = t.cli("relay", "set", "pop_clients", "--minutes", "65536", check=False)
    assert r.returncode == 2


def test_authenticated_need_pop_when_skip_is_off(relay_t):
    """A5 auth.skip_pop_before_smtp=no: in pop_clients mode an authenticated
    session relays only from an address inside the POP window."""
    t = relay_t
    set_mode(t, "pop_clients")
    assert rcpt_code(t, AUTHED, REMOTE, auth=True)[0] == 250
    mark = len(t.log())
    t.set(**{"auth.skip_pop_before_smtp": "no"})
    wait_log(t, "event=reloaded", after=mark)
    code, text = rcpt_code(t, AUTHED, REMOTE, auth=True)
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert "reason=pop_before_smtp_required" in t.log()
    assert rcpt_code(t, POP_IN, REMOTE, auth=True)[0] == 250
    # other modes: AUTH alone still relays
    set_mode(t, "address_list")
    assert rcpt_code(t, AUTHED, REMOTE, auth=True)[0] == 250


def test_auth_mode_relay_only_takes_effect(relay_t):
    """A6 auth.mode=relay_only: relaying needs TLS and AUTH whatever the
    mode says (530 5.7.0); local mail does not."""
    t = relay_t
    set_mode(t, "allow_all")
    mark = len(t.log())
    t.set(**{"auth.mode": "relay_only"})
    wait_log(t, "event=reloaded", after=mark)
    code, text = rcpt_code(t, UNLISTED, REMOTE)
    assert (code, text.split()[0]) == (530, "5.7.0")
    assert rcpt_code(t, LISTED, REMOTE)[0] == 530
    assert rcpt_code(t, UNLISTED, ALICE)[0] == 250
    # AUTH under TLS relays
    c = connect(t, AUTHED)
    c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS")[0] == 220
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock = ctx.wrap_socket(c.sock)
    c.buf = b""
    c.cmd("EHLO client.test")
    cram_md5(c, ALICE)
    assert c.cmd("MAIL FROM:<%s>" % ALICE)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % REMOTE)[0] == 250
    c.close()


def test_loopback_is_not_trusted_to_relay(tegami):
    """Trusted networks default to none: a client on loopback (this host)
    may not relay in the default mode; the submission listener is no
    exception without AUTH."""
    assert tegami.cli("config", "get", "smtp.relay_mode").stdout.strip() == "address_list"
    code, text = rcpt_code(tegami, "127.0.0.1", REMOTE)
    assert code == 550 and text.startswith("5.7.1 ")
    tegami.set(**{"submission.auth_anonymous": "yes"})
    time.sleep(1.5)
    c = Client(tegami.submission_port, "127.0.0.1")
    assert c.reply()[0] == 220
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<someone@elsewhere.test>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % REMOTE)[0] == 550
    c.close()


def _own_non_loopback_ipv4():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))    # no packet is sent
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


@pytest.mark.parametrize("src", ["127.0.0.1", "own"])
def test_own_address_does_not_make_plaintext_auth_secure(tegami, src):
    """A client on this host's own address (loopback, or an interface
    address) over plaintext gets no PLAIN or LOGIN: 538 5.7.11."""
    if src == "own":
        src = _own_non_loopback_ipv4()
        if src is None:
            pytest.skip("no non-loopback IPv4 address on this host")
    c = connect(tegami, src)
    code, lines = c.cmd("EHLO client.test")
    auth = [l for l in lines if l.upper().startswith("AUTH")]
    assert auth == ["AUTH CRAM-MD5"], lines
    code, text = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0alice@example.test\0secret").decode())
    assert (code, text[0][:6]) == (538, "5.7.11")
    c.close()


# --- address forms used to slip past relay checks --------------------------------

FORMS_REFUSED = [
    "alice%evil.test@example.test",          # % hack
    "bob%evil.test@example.test",
    "evil.test!alice@example.test",          # bang path
    "evil.test!bob@near.test",
    "@example.test:bob@evil.test",           # source route to a remote mailbox
    "@example.test,@near.test:bob@evil.test",
    '"alice@evil.test"@example.test',        # quoted local part holding @
    '"bob@evil.test"@near.test',
    "bob@[192.0.2.1]",                       # address literal of a non-local host
    "bob@[IPv6:2001:db8::1]",
    "bob@[127.0.0.1]",                       # ... or of this host: no way in either
    "alice@example.test.evil",               # local domain as a subdomain
    "alice@example.testevil.test",
]
FORMS_SYNTAX = [
    "alice@evil.test@example.test",          # u@d@d
    "bob@evil.test.",                        # trailing dots
    "alice@example.test.",
    "alice@example.test..",
]


@pytest.mark.parametrize("mode", ["address_list", "near_domains"])
def test_address_forms_refused(relay_t, mode):
    t = relay_t
    set_mode(t, mode)
    t.set(**{"route.mailhub": "127.0.0.1:9"})   # unknown users would go to a hub
    c = connect(t, UNLISTED)
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<someone@elsewhere.test>")[0] == 250
    for rcpt in FORMS_REFUSED:
        code, text = c.cmd("RCPT TO:<%s>" % rcpt)
        assert (code, text[-1][:6]) == (550, "5.7.1 "), (rcpt, code, text)
        assert "Relay access denied (RELAY REFUSED %s)" % UNLISTED in text[-1]
    for rcpt in FORMS_SYNTAX:
        code, text = c.cmd("RCPT TO:<%s>" % rcpt)
        assert (code, text[-1][:6]) == (501, "5.1.3 "), (rcpt, code, text)
    c.close()
    assert "reason=route_in_local_part" in t.log()


def test_address_forms_that_stay_local(relay_t):
    """Mixed case of the local domain is the local domain; a source route
    ending in a local mailbox is ignored (RFC 5321 Appendix C) and the mail
    is delivered here, not relayed."""
    t = relay_t
    c = connect(t, UNLISTED)
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<someone@elsewhere.test>")[0] == 250
    for rcpt in ("alice@EXAMPLE.TEST", "alice@Example.Test", "ALICE@example.test",
                 "@evil.test:alice@example.test"):
        code, text = c.cmd("RCPT TO:<%s>" % rcpt)
        assert code == 250, (rcpt, text)
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: forms\r\n\r\nlocal after all\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    msgs = t.wait_messages(ALICE, 1)
    assert len(msgs) == 1 and b"local after all" in list(msgs.values())[0]


def test_near_domain_matching(relay_t):
    t = relay_t
    set_mode(t, "near_domains")
    for rcpt, want in (("x@near.test", 250), ("x@mail.near.test", 250), ("x@NEAR.TEST", 250),
                       ("x@xnear.test", 550), ("x@near.test.evil", 550),
                       ("x@near.testevil", 550)):
        assert rcpt_code(t, UNLISTED, rcpt)[0] == want, rcpt


def test_percent_routing_on(relay_t):
    """S4 with smtp.percent_routing=yes: user%host@local is user@host, and
    relaying to that host follows the relay rules (the near domain passes,
    anything else is refused); a relay client's user%host mail goes to host."""
    t = relay_t
    set_mode(t, "near_domains")
    mark = len(t.log())
    t.set(**{"smtp.percent_routing": "yes"})
    wait_log(t, "event=reloaded", after=mark)
    assert rcpt_code(t, UNLISTED, "alice%example.test@example.test")[0] == 250
    assert rcpt_code(t, UNLISTED, "bob%evil.test@example.test")[0] == 550
    assert rcpt_code(t, UNLISTED, "bob%near.test@example.test")[0] == 250
    assert rcpt_code(t, UNLISTED, "bob%-bad-@example.test")[0] == 501
    assert rcpt_code(t, UNLISTED, "bob!evil.test@example.test")[0] == 550


# --- R2: refused addresses; R3: OVERRJTCNN ---------------------------------------

def refused_line(port, src, family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect((host, port))
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def poll_refused(t, src, want_refused, timeout=5.0):
    """Connects from src until the greeting is (not) a refusal; returns the
    seconds it took."""
    start = time.time()
    while time.time() - start < timeout:
        c = Client(t.port, src)
        code, _ = c.reply()
        c.close()
        if (code == 554) == want_refused:
            return time.time() - start
        time.sleep(0.05)
    raise AssertionError("%s: refused=%s not reached" % (src, want_refused))


def _have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_refused_addresses(tegami_new):
    t = tegami_new
    t.add_user(ALICE)
    t.cli("refuse", "add", "127.0.0.30")
    t.cli("refuse", "add", "127.0.1.0/24")
    v6 = _have_ipv6_loopback()
    settings = {}
    if v6:
        t.cli("refuse", "add", "::/64")
        settings["smtp.listen"] = "127.0.0.1:%d,[::1]:%d" % (t.port, t.port)
    t.start(**settings)
    for src in ("127.0.0.30", "127.0.1.5"):
        data = refused_line(t.port, src)
        assert data == ("554 5.7.1 CONNECTION REFUSED %s (refused by the connection "
                        "restrictions)\r\n" % src).encode(), data
    if v6:
        data = refused_line(t.port, "::1", socket.AF_INET6, "::1")
        assert data.startswith(b"554 5.7.1 CONNECTION REFUSED ::1 "), data
    assert rcpt_code(t, "127.0.0.31", ALICE)[0] == 250
    assert rcpt_code(t, "127.0.2.5", ALICE)[0] == 250
    log = t.log()
    assert "event=connection_refused journal=9S client=127.0.0.30 reason=refused_address" in log
    assert "event=connection_refused journal=9S client=127.0.1.5 reason=refused_address" in log
    # on the implicit-TLS port the 554 comes inside TLS
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", t.smtps_port), timeout=10,
                                   source_address=("127.0.0.30", 0))
    s = ctx.wrap_socket(raw)
    assert s.recv(4096).startswith(b"554 5.7.1 CONNECTION REFUSED 127.0.0.30")
    s.close()
    # admin changes reach the running daemon within a second
    took = [None, None]
    t.cli("refuse", "add", "127.0.0.32")
    took[0] = poll_refused(t, "127.0.0.32", True)
    t.cli("refuse", "del", "127.0.0.30")
    took[1] = poll_refused(t, "127.0.0.30", False)
    assert max(took) < 1.5, took
    out = t.cli("refuse", "list").stdout
    assert "127.0.0.32" in out and "127.0.1.0/24" in out and "127.0.0.30" not in out
    r = t.cli("refuse", "add", "not-an-ip", check=False)
    assert r.returncode == 2 and "not an IP address" in r.stderr
    r = t.cli("refuse", "del", "192.0.2.99", check=False)
    assert r.returncode == 1


def test_overrjtcnn(tegami_new):
    """R3: a POP client inside a refused range connects and relays once
    smtp.pop_overrides_refused is on (and only with relay mode pop_clients,
    the seed's order); other addresses of the range stay refused."""
    t = tegami_new
    t.add_user(ALICE)
    t.cli("refuse", "add", "127.0.3.0/24")
    t.cli("relay", "set", "pop_clients")
    t.start()
    pop_login(t, "127.0.3.1")           # POP3 itself is not restricted
    assert refused_line(t.port, "127.0.3.1").startswith(b"554 5.7.1")
    t.cli("refuse", "override", "yes")
    poll_refused(t, "127.0.3.1", False)
    assert rcpt_code(t, "127.0.3.1", REMOTE)[0] == 250
    assert refused_line(t.port, "127.0.3.2").startswith(b"554 5.7.1")
    assert "event=connection_allowed client=127.0.3.1 reason=pop_before_smtp" in t.log()
    # another mode: the override does not apply
    t.cli("relay", "set", "allow_all")
    poll_refused(t, "127.0.3.1", True)
    t.cli("relay", "set", "pop_clients")
    poll_refused(t, "127.0.3.1", False)
    t.cli("refuse", "override", "no")
    poll_refused(t, "127.0.3.1", True)


# --- P3: the POP-before-SMTP record survives a restart ----------------------------

@pytest.mark.parametrize("how", ["stop", "kill"])
def test_pop_record_survives_restart(tegami_new, how):
    t = tegami_new
    t.add_user(ALICE)
    t.cli("relay", "set", "pop_clients")
    t.start()
    pop_login(t, "127.0.0.40")
    assert rcpt_code(t, "127.0.0.40", REMOTE)[0] == 250
    assert rcpt_code(t, "127.0.0.41", REMOTE)[0] == 550
    if how == "kill":
        time.sleep(2.5)      # written within a second, by a worker
        t.kill()
    else:
        t.stop()             # a stop writes what is pending
    t.start()
    assert "event=poplog_loaded logins=1" in t.log()
    assert rcpt_code(t, "127.0.0.40", REMOTE)[0] == 250
    assert rcpt_code(t, "127.0.0.41", REMOTE)[0] == 550
    out = t.cli("relay", "show").stdout
    assert "pop clients within the window: 1" in out


def test_unreadable_pop_record_does_not_stop_tegamid(tegami_new):
    """The record is runtime state: a damaged file is logged, POP-before-SMTP
    goes on from memory."""
    t = tegami_new
    t.add_user(ALICE)
    t.cli("relay", "set", "pop_clients")
    t.dir.mkdir(parents=True, exist_ok=True)
    (t.dir / "poplogins.db").write_bytes(b"this is not a database" * 100)
    t.start()
    assert "event=poplog_unusable" in t.log()
    pop_login(t, "127.0.0.42")
    assert rcpt_code(t, "127.0.0.42", REMOTE)[0] == 250


# --- admin ------------------------------------------------------------------------

def test_relay_commands(tegami):
    t = tegami
    out = t.cli("relay", "show").stdout
    assert "mode: address_list" in out
    assert "near domains: (none)" in out and "address relay list: (none)" in out
    t.cli("relay", "add", "domain", "Near.Test")
    t.cli("relay", "add", "network", "192.0.2.0/24")
    t.cli("relay", "add", "network", "2001:db8::/32")
    out = t.cli("relay", "show").stdout
    assert "near domains: near.test\n" in out
    assert "address relay list: 192.0.2.0/24 2001:db8::/32\n" in out
    t.cli("relay", "del", "network", "192.0.2.0/24")
    assert "address relay list: 2001:db8::/32\n" in t.cli("relay", "show").stdout
    for bad in (["relay", "set", "open"], ["relay", "add", "domain", "-x-"],
                ["relay", "add", "network", "300.1.1.1"], ["relay", "add", "host", "x"],
                ["dnsbl", "add", "not a zone"]):
        r = t.cli(*bad, check=False)
        assert r.returncode == 2, bad
    assert t.cli("relay", "del", "domain", "other.test", check=False).returncode == 1
    t.cli("dnsbl", "add", "bl.test")
    t.cli("dnsbl", "add", "BL2.test")
    assert t.cli("dnsbl", "add", "bl.test").stdout.startswith("bl.test is already")
    assert t.cli("config", "get", "smtp.dnsbl_zones").stdout.strip() == "bl.test,bl2.test"
    assert t.cli("dnsbl", "list").stdout.splitlines()[1:] == ["bl.test", "bl2.test"]
    t.cli("dnsbl", "del", "bl.test")
    assert t.cli("config", "get", "smtp.dnsbl_zones").stdout.strip() == "bl2.test"
    assert t.cli("dnsbl", "del", "bl.test", check=False).returncode == 1
    t.cli("refuse", "add", "198.51.100.0/24")
    t.cli("refuse", "override", "yes")
    # the same lists through tegami list, and the settings in config export
    out = t.cli("list", "show").stdout
    assert "relay-domains\tnear.test" in out and "refused\t198.51.100.0/24" in out
    exp = t.cli("config", "export").stdout
    for line in ("smtp.relay_mode = address_list", "smtp.pop_before_smtp_minutes = 240",
                 "smtp.pop_overrides_refused = yes", "smtp.dnsbl_zones = bl2.test",
                 "smtp.dnsbl_timeout = 3000", "list.relay-domains = near.test",
                 "list.relay-networks = 2001:db8::/32", "list.refused = 198.51.100.0/24"):
        assert line in exp, line


def test_config_export_import_carries_the_lists(tegami_new, tmp_path):
    """D3: config export holds the relay-control lists (list.NAME = a,b);
    import makes each list it names exactly that, text or JSON, and a bad
    entry changes nothing."""
    import json
    a = tegami_new
    a.cli("relay", "add", "domain", "near.test")
    a.cli("relay", "add", "domain", "other.test")
    a.cli("relay", "add", "network", "192.0.2.0/24")
    a.cli("refuse", "add", "198.51.100.7")
    a.cli("relay", "set", "both_lists")
    text = a.cli("config", "export").stdout
    js = a.cli("config", "export", "--json").stdout
    assert json.loads(js)["list.relay-domains"] == "near.test,other.test"
    for name, data in (("text", text), ("json", js)):
        b = Tegami_like(tmp_path / name)
        b.cli("refuse", "add", "203.0.113.9")            # replaced by the import
        f = tmp_path / ("export-" + name)
        f.write_text(data)
        b.cli("config", "import", str(f))
        out = b.cli("list", "show").stdout
        assert "relay-domains\tnear.test\nrelay-domains\tother.test" in out
        assert "relay-networks\t192.0.2.0/24" in out
        assert "refused\t198.51.100.7" in out and "203.0.113.9" not in out
        assert b.cli("config", "get", "smtp.relay_mode").stdout.strip() == "both_lists"
    bad = tmp_path / "bad"
    bad.write_text("smtp.relay_mode = allow_all\nlist.refused = 198.51.100.7,not-an-ip\n")
    b = Tegami_like(tmp_path / "text")
    r = b.cli("config", "import", str(bad), check=False)
    assert r.returncode == 2 and "list.refused" in r.stderr
    assert b.cli("config", "get", "smtp.relay_mode").stdout.strip() == "both_lists"
    assert b.cli("config", "set", "list.refused=10.0.0.0/8,10.1.0.0/16").returncode == 0
    assert "refused\t10.0.0.0/8\nrefused\t10.1.0.0/16\n" in b.cli("list", "show").stdout


class Tegami_like:
    """Just the admin command on a data directory of its own."""

    def __init__(self, path):
        from conftest import TEGAMI
        self.dir = path
        self.tegami = TEGAMI

    def cli(self, *args, check=True):
        import subprocess
        r = subprocess.run([str(self.tegami), "-D", str(self.dir), *map(str, args)],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("tegami %s: %s" % (" ".join(map(str, args)), r.stderr))
        return r
