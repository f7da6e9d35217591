"""tegamid under a service manager (D2): the sd_notify protocol spoken on
$NOTIFY_SOCKET (READY=1 once listening, RELOADING=1/READY=1 around a reload,
STOPPING=1, STATUS= with sessions and queue). The socket here plays
systemd's part: a datagram socket the test binds."""
import os
import re
import signal
import socket
import time

import pytest


class Manager:
    """The service manager's end of the notify socket."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(15)
        self.seen = []

    def next(self):
        """The next datagram as {KEY: VALUE}."""
        data = self.sock.recv(4096).decode()
        self.seen.append(data)
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def wait_for(self, key, value=None, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = self.next()
            if key in msg and (value is None or msg[key] == value):
                return msg
        raise AssertionError("no %s=%s among %r" % (key, value, self.seen))

    def close(self):
        self.sock.close()


@pytest.fixture
def manager(tmp_path):
    m = Manager(str(tmp_path / "notify"))
    yield m
    m.close()


def test_ready_only_once_listening_then_status(tegami_new, manager, tmp_path):
    t = tegami_new
    t.add_user("alice@example.test")
    t.start(wait=False, env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    msg = manager.next()
    # The first word from tegamid is READY=1, and by then it listens.
    assert msg.get("READY") == "1", manager.seen
    assert (t.dir / "tegamid.state").read_text().startswith("pid: %d\n" % t.proc.pid)
    with socket.create_connection(("127.0.0.1", t.port), timeout=5):
        pass
    assert msg["STATUS"] == "sessions: smtp 0, pop3 0; queue: 0"
    # A session shows in the status line within the poll second.
    c = t.raw()
    assert manager.wait_for("STATUS", "sessions: smtp 1, pop3 0; queue: 0")
    p = socket.create_connection(("127.0.0.1", t.pop3_port), timeout=5)
    assert p.recv(512).startswith(b"+OK")
    assert manager.wait_for("STATUS", "sessions: smtp 1, pop3 1; queue: 0")
    c.cmd("QUIT")
    c.close()
    p.close()
    assert manager.wait_for("STATUS", "sessions: smtp 0, pop3 0; queue: 0")


def test_reload_and_stop(tegami_new, manager, tmp_path):
    t = tegami_new.start(wait=False, env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert manager.wait_for("READY", "1")
    for how in ("signal", "cli"):
        before = time.monotonic_ns() // 1000
        if how == "signal":
            t.proc.send_signal(signal.SIGHUP)
        else:
            t.cli("reload")
        msg = manager.next()
        assert msg.get("RELOADING") == "1", manager.seen
        # MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds, taken at the reload.
        assert before <= int(msg["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
        msg = manager.next()
        assert msg.get("READY") == "1" and msg["STATUS"].startswith("sessions:"), manager.seen
    assert "event=reloaded reason=sighup" in t.log()
    t.proc.send_signal(signal.SIGTERM)
    assert manager.wait_for("STOPPING", "1")
    assert t.proc.wait(timeout=30) == 0
    t.proc = None


def test_abstract_socket(tegami_new):
    name = "@tegami-test-%d-%d" % (os.getpid(), time.monotonic_ns())
    m = Manager("\0" + name[1:])
    try:
        tegami_new.start(wait=False, env={"NOTIFY_SOCKET": name})
        assert m.wait_for("READY", "1")
    finally:
        m.close()


def test_unusable_notify_socket_is_logged_and_ignored(tegami_new):
    t = tegami_new.start(env={"NOTIFY_SOCKET": "not/absolute"})
    assert re.search(r"level=warn event=notify_unusable error=\".*not/absolute", t.log())
