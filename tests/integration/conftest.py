"""Integration-test harness: a real tegamid on a free loopback port in a
temporary data directory, driven by real clients.

Fixtures:
  tegami      a started daemon (function scope); tegami.cli(...) runs the
              admin command on the same data directory.
  tegami_new  an unstarted instance, for tests that set things up first.

When the binaries are built with sanitizers (TEGAMI_SANITIZED=1), every
daemon's stderr is checked at teardown for AddressSanitizer / UBSan /
LeakSanitizer reports, and a non-zero exit after SIGTERM fails the test.
"""
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TEGAMI_BUILD") or ROOT / "build")
TEGAMID = BUILD / "tegamid"
TEGAMI = BUILD / "tegami"
SANITIZED = os.environ.get("TEGAMI_SANITIZED") == "1"
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer")


_handed_out = set()


def _port_range():
    """TEGAMI_TEST_PORTS=LOW-HIGH: the ports this run hands out (`make test`
    gives the plain and the sanitized run, which go side by side, one half
    each, so that neither can take a port the other has handed out)."""
    spec = os.environ.get("TEGAMI_TEST_PORTS", "20000-32000")
    low, _, high = spec.partition("-")
    low, high = int(low), int(high)
    assert 1024 < low < high <= 32768, "TEGAMI_TEST_PORTS=%s" % spec
    return low, high


def free_port():
    """A free port below the kernel's ephemeral range (32768-60999 by
    default), so that the many client connections of a test run (or anything
    else on the machine) cannot take it between this check and the daemon's
    bind. Ports are not handed out twice within one run."""
    import random
    low, high = _port_range()
    for _ in range(1000):
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port in %d-%d" % (low, high))


class LineSocket:
    """What the byte-exact protocol clients share: raw sends, and telling
    whether the server closed the connection. Subclasses set self.sock and
    self.buf (bytes or bytearray) and parse replies their own way."""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def closed(self, timeout=5):
        """True when the server closes the connection (after any pending data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class RawSMTP(LineSocket):
    """A byte-exact SMTP client: what we send is exactly what goes on the wire."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed; buffered: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """Reads one (possibly multi-line) reply: (code, [texts])."""
        lines = []
        while True:
            line = self._line()
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()



class Tegami:
    def __init__(self, tmp_path):
        self.dir = tmp_path / "data"
        self.port = free_port()
        self.submission_port = free_port()
        self.smtps_port = free_port()
        self.pop3_port = free_port()
        self.pop3s_port = free_port()
        self.proc = None
        self.logfile = tmp_path / "tegamid.log"
        self._logs = []

    # --- admin command -------------------------------------------------
    def cli(self, *args, input=None, check=True, env=None):
        r = subprocess.run([str(TEGAMI), "-D", str(self.dir), *map(str, args)],
                           input=input, capture_output=True, text=True, timeout=60,
                           env=env)
        if check and r.returncode != 0:
            raise AssertionError("tegami %s failed (%d): %s%s" %
                                 (" ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
        return r

    def set(self, **settings):
        pairs = ["%s=%s" % (k.replace("__", "."), v) for k, v in settings.items()]
        return self.cli("config", "set", *pairs)

    def add_user(self, address, password="secret"):
        self.cli("user", "add", address, "--password-stdin", input=password + "\n")

    # --- daemon --------------------------------------------------------
    def start(self, wait=True, env=None, **settings):
        """Sets the listen addresses (and settings) and starts tegamid; env
        adds variables to its environment."""
        base = {"smtp.listen": "127.0.0.1:%d" % self.port,
                "submission.listen": "127.0.0.1:%d" % self.submission_port,
                "smtps.listen": "127.0.0.1:%d" % self.smtps_port,
                "pop3.listen": "127.0.0.1:%d" % self.pop3_port,
                "pop3s.listen": "127.0.0.1:%d" % self.pop3s_port,
                "storage.min_free": "0"}
        base.update({k.replace("__", "."): v for k, v in settings.items()})
        self.cli("config", "set", *["%s=%s" % kv for kv in base.items()])
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([str(TEGAMID), "-D", str(self.dir)],
                                     stdout=log, stderr=log,
                                     env=None if env is None else {**os.environ, **env})
        log.close()
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout=15):
        """Waits for DIR/tegamid.state naming this process: the daemon writes
        it once its listeners are bound. No probe connection is made, so no
        session slot is used."""
        state = self.dir / "tegamid.state"
        want = "pid: %d\n" % self.proc.pid
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("tegamid exited (%d):\n%s" % (self.proc.returncode, self.log()))
            try:
                if state.read_text().startswith(want):
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise AssertionError("tegamid did not start on %d:\n%s" % (self.port, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("tegamid did not stop on signal %d" % sig)
        finally:
            self.proc = None
        return rc

    def kill(self):
        """SIGKILL: the crash the durability tests need."""
        return self.stop(signal.SIGKILL)

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def check_sanitizers(self):
        text = self.log()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, "sanitizer report in tegamid log:\n" + text[-6000:]

    # --- clients and mailboxes -----------------------------------------
    def raw(self):
        c = RawSMTP(self.port)
        code, _ = c.reply()
        assert code == 220
        return c

    def maildir(self, address):
        local, domain = address.lower().rsplit("@", 1)
        return self.dir / "mail" / domain / local

    def messages(self, address):
        """Contents (bytes) of every message in new/ and cur/, by file name."""
        md = self.maildir(address)
        out = {}
        for sub in ("new", "cur"):
            d = md / sub
            if d.is_dir():
                for f in sorted(d.iterdir()):
                    out[f.name] = f.read_bytes()
        return out

    def wait_messages(self, address, n, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            msgs = self.messages(address)
            if len(msgs) >= n:
                return msgs
            time.sleep(0.05)
        raise AssertionError("%s has %d message(s), expected %d" %
                             (address, len(self.messages(address)), n))


@pytest.fixture
def tegami_new(tmp_path):
    t = Tegami(tmp_path)
    yield t
    rc = None
    if t.proc is not None:
        rc = t.stop()
    if SANITIZED:
        t.check_sanitizers()
        assert rc in (None, 0), "tegamid exit status %s under sanitizers:\n%s" % (rc, t.log()[-6000:])


@pytest.fixture
def tegami(tegami_new):
    tegami_new.add_user("alice@example.test")
    tegami_new.add_user("bob@example.test")
    tegami_new.start()
    return tegami_new
