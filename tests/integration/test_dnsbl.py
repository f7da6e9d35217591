"""DNS blocklists at connect (MISSION R2, R4; seed 002 接続制限, RBL): zones
served on loopback by dnsmasq (listed with and without TXT, an answer that is
not a listing, NXDOMAIN, answers cached by their TTL) and by a small DNS
server of our own that answers late (a slow list: 2 s), and 1,000 sessions
arriving while a list answers slowly: other addresses still get their
banner at once. The client address is varied by binding to 127.0.0.x."""
import re
import resource
import socket
import time

import pytest

from conftest import RawSMTP
from peers import Dns, TinyDns

ALICE = "alice@example.test"


class Client(RawSMTP):
    def __init__(self, port, src, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(src, 0))
        self.buf = b""


def greeting(t, src):
    """(code, text, seconds) of the greeting a client at src gets."""
    start = time.monotonic()
    c = Client(t.port, src)
    try:
        code, text = c.reply()
        took = time.monotonic() - start
        if code == 220:
            c.cmd("QUIT")
        return code, text[0], took
    finally:
        c.close()


def rev(ip):
    return ".".join(reversed(ip.split(".")))


def dnsmasq_queries(dns, name):
    """How many times dnsmasq was asked name (its --log-queries log)."""
    try:
        with open(dns.log) as f:
            return len(re.findall(r"query\[A\] %s from" % re.escape(name), f.read()))
    except FileNotFoundError:
        return 0


@pytest.fixture
def bl(tmp_path):
    """bl.test and bl2.test on dnsmasq; records live 2 s (--local-ttl)."""
    recs = ["--local-ttl=2",
            "--host-record=%s.bl.test,127.0.0.2" % rev("127.0.0.2"),
            "--txt-record=%s.bl.test,Listed: see https://bl.test/q?127.0.0.2" % rev("127.0.0.2"),
            "--host-record=%s.bl.test,127.0.0.10" % rev("127.0.0.5"),          # no TXT
            "--host-record=%s.bl.test,127.255.255.254" % rev("127.0.0.6"),     # an error code
            "--host-record=%s.bl2.test,127.0.0.3" % rev("127.0.0.7"),
            "--txt-record=%s.bl2.test,second list" % rev("127.0.0.7")]
    dns = Dns(recs, str(tmp_path))
    yield dns
    dns.stop()


def start(t, dns_server, zones, **settings):
    t.add_user(ALICE)
    base = {"dns.servers": dns_server, "smtp.dnsbl_zones": zones, "smtp.max_sessions": "3000"}
    base.update(settings)
    t.start(**base)
    return t


def test_listed_not_listed_nxdomain(tegami_new, bl):
    t = start(tegami_new, bl.server, "bl.test,bl2.test")
    code, text, _ = greeting(t, "127.0.0.2")
    assert (code, text) == (554, "5.7.1 CONNECTION REFUSED 127.0.0.2 (listed by bl.test: "
                                 "Listed: see https://bl.test/q?127.0.0.2)")
    code, text, _ = greeting(t, "127.0.0.5")
    assert (code, text) == (554, "5.7.1 CONNECTION REFUSED 127.0.0.5 (listed by bl.test, "
                                 "127.0.0.10)")
    code, text, _ = greeting(t, "127.0.0.7")          # the second zone lists it
    assert (code, text) == (554, "5.7.1 CONNECTION REFUSED 127.0.0.7 (listed by bl2.test: "
                                 "second list)")
    assert greeting(t, "127.0.0.6")[0] == 220         # 127.255.255.254 is not a listing
    assert greeting(t, "127.0.0.3")[0] == 220         # NXDOMAIN in both zones
    log = t.log()
    assert ("event=connection_refused journal=9S session=" in log and
            "client=127.0.0.2 reason=dnsbl zone=bl.test answer=127.0.0.2" in log)
    assert "event=dnsbl_odd_answer zone=bl.test" in log
    # a listed client that keeps the connection open gets nothing more
    c = Client(t.port, "127.0.0.2")
    assert c.reply()[0] == 554
    assert c.closed()


def test_pop_client_overrides_dnsbl(tegami_new, bl):
    """R3: OVERRJTCNN covers the DNSBLs too: a POP-before-SMTP client that a
    zone lists connects and relays once smtp.pop_overrides_refused is on
    (with relay mode pop_clients); without it, it is refused."""
    from test_relay_control import pop_login, rcpt_code
    t = start(tegami_new, bl.server, "bl.test", **{"smtp.relay_mode": "pop_clients"})
    pop_login(t, "127.0.0.2")
    assert greeting(t, "127.0.0.2")[0] == 554
    mark = len(t.log())
    t.cli("refuse", "override", "yes")
    deadline = time.time() + 3
    while "event=reloaded" not in t.log()[mark:]:
        assert time.time() < deadline
        time.sleep(0.05)
    assert greeting(t, "127.0.0.2")[0] == 220
    assert rcpt_code(t, "127.0.0.2", "bob@remote.test")[0] == 250
    assert greeting(t, "127.0.0.5")[0] == 554       # listed, no POP login


def test_answers_cached_by_ttl(tegami_new, bl):
    t = start(tegami_new, bl.server, "bl.test")
    listed = "%s.bl.test" % rev("127.0.0.2")
    clean = "%s.bl.test" % rev("127.0.0.3")
    for _ in range(5):
        assert greeting(t, "127.0.0.2")[0] == 554
        assert greeting(t, "127.0.0.3")[0] == 220
    assert dnsmasq_queries(bl, listed) == 1
    assert dnsmasq_queries(bl, clean) == 1     # NXDOMAIN without a SOA: kept 60 s
    time.sleep(2.5)                            # the listing's TTL (2 s) runs out
    assert greeting(t, "127.0.0.2")[0] == 554
    assert dnsmasq_queries(bl, listed) == 2
    assert greeting(t, "127.0.0.3")[0] == 220
    assert dnsmasq_queries(bl, clean) == 1


def test_zones_change_while_running(tegami_new, bl):
    t = start(tegami_new, bl.server, "")
    assert greeting(t, "127.0.0.2")[0] == 220
    t.cli("dnsbl", "add", "bl.test")
    deadline = time.time() + 3
    while greeting(t, "127.0.0.2")[0] != 554:
        assert time.time() < deadline
        time.sleep(0.05)
    t.cli("dnsbl", "del", "bl.test")
    deadline = time.time() + 3
    while greeting(t, "127.0.0.2")[0] != 220:
        assert time.time() < deadline
        time.sleep(0.05)


@pytest.fixture
def slow():
    dns = TinyDns({
        "%s.slow.test" % rev("127.0.0.2"): {"a": ["127.0.0.2"], "txt": ["slowly listed"],
                                            "delay": 2.0, "ttl": 300},
        "%s.slow.test" % rev("127.0.0.4"): {"a": ["127.0.0.2"], "ttl": 300},
    })
    yield dns
    dns.stop()


def test_slow_list_timeout_means_not_listed(tegami_new, slow):
    t = start(tegami_new, slow.server, "slow.test", **{"smtp.dnsbl_timeout": "800"})
    code, _, took = greeting(t, "127.0.0.2")
    assert code == 220 and 0.7 < took < 1.8, took
    assert "event=dnsbl_unanswered" in t.log()
    # the answer came later and was kept: the next client from there is refused at once
    time.sleep(1.5)
    code, text, took = greeting(t, "127.0.0.2")
    assert code == 554 and "slowly listed" in text and took < 0.5
    assert slow.count("%s.slow.test" % rev("127.0.0.2")) == 1


def test_slow_list_within_timeout(tegami_new, slow):
    t = start(tegami_new, slow.server, "slow.test", **{"smtp.dnsbl_timeout": "5000"})
    code, text, took = greeting(t, "127.0.0.2")
    assert code == 554 and 1.8 < took < 4, took
    assert text == "5.7.1 CONNECTION REFUSED 127.0.0.2 (listed by slow.test: slowly listed)"
    assert greeting(t, "127.0.0.4")[0] == 554       # answered at once
    code, _, took = greeting(t, "127.0.0.9")          # NXDOMAIN at once
    assert code == 220 and took < 0.5


def test_client_leaves_while_waiting(tegami_new, slow):
    """A client that closes before its greeting leaves no session behind."""
    t = start(tegami_new, slow.server, "slow.test", **{"smtp.dnsbl_timeout": "5000"})
    for _ in range(20):
        c = Client(t.port, "127.0.0.2")
        c.send("EHLO early.test\r\n")
        c.close()
    time.sleep(2.5)
    assert greeting(t, "127.0.0.9")[0] == 220
    assert t.log().count("client=127.0.0.2 errors=0") == 20       # event=disconnect
    assert "client=127.0.0.2 reason=dnsbl" not in t.log()      # nobody left to refuse


def test_early_talker_waits_for_greeting(tegami_new, slow):
    """Commands sent before the greeting are read only after it: the reply
    order stays 220 (or 554), then the answers."""
    t = start(tegami_new, slow.server, "slow.test", **{"smtp.dnsbl_timeout": "5000"})
    c = Client(t.port, "127.0.0.11")
    c.send("EHLO early.test\r\nQUIT\r\n")
    assert c.reply()[0] == 220
    assert c.reply()[0] == 250
    assert c.reply()[0] == 221
    c.close()


def test_thousand_sessions_while_a_list_is_slow(tegami_new, slow):
    """R2: a look-up never stalls other sessions. 50 sessions from an
    address whose list answers after 2 s wait for it; meanwhile 1,000
    sessions from 20 other addresses arrive one after another and stay open:
    each gets its banner within 10 ms of connecting."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    t = start(tegami_new, slow.server, "slow.test", **{"smtp.dnsbl_timeout": "10000"})
    # warm the cache for the other addresses (NXDOMAIN, answered at once)
    others = ["127.0.1.%d" % i for i in range(1, 21)]
    for ip in others:
        assert greeting(t, ip)[0] == 220
    waiting = [Client(t.port, "127.0.0.2") for _ in range(50)]
    start_slow = time.monotonic()
    held, times = [], []
    try:
        for i in range(1000):
            t0 = time.monotonic()
            c = Client(t.port, others[i % len(others)])
            code, _ = c.reply()
            times.append(time.monotonic() - t0)
            assert code == 220
            held.append(c)
        assert time.monotonic() - start_slow < 2.0, "the slow answer came before the end"
        for c in waiting:
            code, text = c.reply()
            assert code == 554 and "slowly listed" in text[0]
        slow_took = time.monotonic() - start_slow
    finally:
        for c in held + waiting:
            c.close()
    times.sort()
    print("banner latency ms: median %.2f p99 %.2f max %.2f; slow clients answered after %.2f s"
          % (times[500] * 1e3, times[989] * 1e3, times[-1] * 1e3, slow_took))
    # Every greeting is sent from the accept itself; what is measured here
    # also holds the test client's own scheduling on a shared machine, so
    # five of the thousand (0.5 %) may miss 10 ms, none 50 ms.
    assert times[994] < 0.010 and times[-1] < 0.050, (times[994], times[-1])
    assert 1.5 < slow_took < 4.0
    assert slow.count("%s.slow.test" % rev("127.0.0.2")) == 1   # 50 sessions, one query
