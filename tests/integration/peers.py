"""Real peers for the outbound tests, all on loopback (127.0.0.0/8):

  Dns       dnsmasq answering MX, A, AAAA and raw records for test domains
            (nothing is forwarded: every other name under .test is NXDOMAIN)
  Sink      Python's aiosmtpd in a thread, recording what it receives, with
            scripted replies (4xx then 250, 5xx, a small SIZE, STARTTLS …)
  RawServer a byte-exact SMTP server in a thread for replies split across
            packets, multi-line replies and disconnects mid-DATA

Every server binds an address of its own in 127.0.0.0/8, so several MX hosts
can share the one port tegamid connects to (relay.port)."""
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP

# _handed_out: ports given to daemons of this run, bound or not
from conftest import _handed_out, _port_range

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def free_udp_tcp_port(ip="127.0.0.1"):
    """A port free for both TCP and UDP on ip (DNS needs both)."""
    import random
    low, high = _port_range()
    for _ in range(500):
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind((ip, port))
                t.bind((ip, port))
            _handed_out.add(port)
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def port_free_on(ips, port):
    for ip in ips:
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET,
                           socket.SOCK_STREAM) as s:
            try:
                s.bind((ip, port))
            except OSError:
                return False
    return True


def common_port(ips):
    """A TCP port free on every address in ips (MX hosts share relay.port)."""
    import random
    low, high = _port_range()
    for _ in range(500):
        port = random.randrange(low, high)
        if port not in _handed_out and port_free_on(ips, port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no common free port")


class Dns:
    """dnsmasq on 127.0.0.1:port. records: list of dnsmasq options such as
    "--mx-host=remote.test,mx1.remote.test,10" or
    "--host-record=mx1.remote.test,127.0.0.2"."""

    def __init__(self, records, tmpdir):
        self.port = free_udp_tcp_port()
        self.log = os.path.join(tmpdir, "dnsmasq.log")
        args = [DNSMASQ, "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts",
                "--port=%d" % self.port, "--listen-address=127.0.0.1",
                "--bind-interfaces", "--pid-file=", "--user=root",
                "--local=/test/", "--log-queries", "--log-facility=" + self.log]
        args += list(records)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait()

    def _wait(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited: %s" % self.proc.stderr.read().decode())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dnsmasq did not start")

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Message:
    def __init__(self, envelope, peer):
        self.mail_from = envelope.mail_from
        self.mail_options = list(envelope.mail_options)
        self.rcpt_tos = list(envelope.rcpt_tos)
        self.rcpt_options = [list(o) for o in envelope.rcpt_options]
        self.content = envelope.original_content or envelope.content
        self.peer = peer

    @property
    def text(self):
        return self.content.decode("utf-8", "replace") if isinstance(self.content, bytes) \
            else self.content


class Handler:
    """Records messages. rcpt(address, n) may return a reply string (else
    250); data(envelope, n) likewise; n counts calls from 1."""

    def __init__(self, rcpt=None, data=None, mail=None):
        self.rcpt_fn = rcpt
        self.data_fn = data
        self.mail_fn = mail
        self.messages = []
        self.rcpt_calls = 0
        self.data_calls = 0
        self.mail_calls = 0
        self.sessions = 0
        self.tls_sessions = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.sessions += 1
            if session.ssl is not None:
                self.tls_sessions += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.mail_calls += 1
            n = self.mail_calls
        reply = self.mail_fn(address, n) if self.mail_fn else None
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_calls += 1
            n = self.rcpt_calls
        reply = self.rcpt_fn(address, n) if self.rcpt_fn else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.data_calls += 1
            n = self.data_calls
        reply = self.data_fn(envelope, n) if self.data_fn else None
        if reply:
            return reply
        with self.lock:
            self.messages.append(Message(envelope, session.peer))
        return "250 2.0.0 Ok: queued"

    def wait(self, n, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError("sink has %d message(s), expected %d" % (len(self.messages), n))


class _Controller(Controller):
    def __init__(self, handler, hostname, port, size, tls_context):
        self._size = size
        self._tls = tls_context
        super().__init__(handler, hostname=hostname, port=port, ready_timeout=10)

    def factory(self):
        kw = {"data_size_limit": self._size, "decode_data": False,
              "enable_SMTPUTF8": True, "ident": "aiosmtpd test sink"}
        if self._tls is not None:
            kw["tls_context"] = self._tls
        return AioSMTP(self.handler, **kw)


def self_signed(tmpdir, name="sink.test"):
    cert = os.path.join(tmpdir, name + ".crt")
    key = os.path.join(tmpdir, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + name], check=True,
                   capture_output=True)
    return cert, key


class Sink:
    """aiosmtpd on ip:port (threaded). size: SIZE to announce (0: none
    enforced, aiosmtpd's default otherwise); starttls: offer STARTTLS."""

    def __init__(self, ip, port, handler=None, size=33554432, starttls=False, tmpdir=None):
        self.ip = ip
        self.port = port
        self.handler = handler or Handler()
        ctx = None
        if starttls:
            cert, key = self_signed(tmpdir or tempfile.mkdtemp())
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
        self.controller = _Controller(self.handler, ip, port, size, ctx)
        self.controller.start()

    @property
    def messages(self):
        return self.handler.messages

    def wait(self, n, timeout=20):
        return self.handler.wait(n, timeout)

    def stop(self):
        self.controller.stop()


class RawServer:
    """A scripted SMTP server: script(conn) runs per connection in a thread
    and talks bytes with the helpers below."""

    def __init__(self, ip, port, script):
        self.ip = ip
        self.port = port
        self.script = script
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.connections = 0
        self.transcripts = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()

    def _serve(self, c):
        c.settimeout(15)
        conv = RawConn(c)
        self.transcripts.append(conv)
        try:
            self.script(conv)
        except (OSError, ConnectionError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


class RawConn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.received = []   # command lines read

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        self.received.append(line.decode("utf-8", "replace"))
        return self.received[-1]

    def data(self):
        """Reads a message up to CRLF.CRLF; returns it (dot-stuffed form)."""
        while b"\r\n.\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return msg + b"\r\n"

    def serve_basic(self, greeting=b"220 raw.test ESMTP\r\n", ehlo=b"250 raw.test\r\n"):
        """Greeting and EHLO; returns after the EHLO reply was sent."""
        self.send(greeting)
        self.line()
        self.send(ehlo)


class TinyDns:
    """A small DNS server over UDP on 127.0.0.1, written here so that an
    answer can come late: records maps a lower-case name to a dict with "a"
    (list of IPv4 addresses), "txt" (list of strings), "ttl", "delay" and
    "txt_delay" (seconds before the answer to an A or a TXT query leaves;
    other queries are answered meanwhile).
    Other names get NXDOMAIN. Every query is counted in self.queries
    {(name, type): n}."""

    def __init__(self, records=None):
        self.records = {k.lower(): v for k, v in (records or {}).items()}
        self.queries = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def count(self, name, qtype="A"):
        with self.lock:
            return self.queries.get((name.lower(), qtype), 0)

    @staticmethod
    def _parse(msg):
        qid = msg[:2]
        i, labels = 12, []
        while msg[i] != 0:
            n = msg[i]
            labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qtype = int.from_bytes(msg[i + 1:i + 3], "big")
        question = msg[12:i + 5]
        return qid, ".".join(labels).lower(), qtype, question

    def _answer(self, msg):
        import struct
        qid, name, qtype, question = self._parse(msg)
        tname = {1: "A", 16: "TXT"}.get(qtype, str(qtype))
        with self.lock:
            self.queries[(name, tname)] = self.queries.get((name, tname), 0) + 1
        rec = self.records.get(name)
        flags = 0x8180 if rec is not None else 0x8183
        rrs = b""
        n = 0
        if rec is not None:
            ttl = rec.get("ttl", 60)
            if qtype == 1:
                for ip in rec.get("a", []):
                    rrs += struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + socket.inet_aton(ip)
                    n += 1
            elif qtype == 16:
                for text in rec.get("txt", []):
                    data = text.encode()
                    rrs += struct.pack("!HHHIH", 0xC00C, 16, 1, ttl, len(data) + 1) + \
                        bytes([len(data)]) + data
                    n += 1
        header = qid + struct.pack("!HHHHH", flags, 1, n, 0, 0)
        return header + question + rrs, (rec or {}).get("txt_delay" if qtype == 16 else "delay", 0)

    def _run(self):
        import heapq
        import select
        later = []
        seq = 0
        while not self.stopping:
            timeout = 0.05
            if later:
                timeout = max(0.0, min(timeout, later[0][0] - time.monotonic()))
            r, _, _ = select.select([self.sock], [], [], timeout)
            now = time.monotonic()
            while later and later[0][0] <= now:
                _, _, data, addr = heapq.heappop(later)
                self.sock.sendto(data, addr)
            if not r:
                continue
            try:
                msg, addr = self.sock.recvfrom(4096)
                data, delay = self._answer(msg)
            except (OSError, IndexError, ValueError):
                continue
            if delay > 0:
                seq += 1
                heapq.heappush(later, (now + delay, seq, data, addr))
            else:
                self.sock.sendto(data, addr)

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()
