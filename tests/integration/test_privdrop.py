"""Privilege drop (STYLE "Process and privilege"; secure by default).

tegamid started as root binds its ports and reads its TLS key as root, then
runs as the user that owns the data directory, every thread of it; only the
event-loop thread keeps CAP_NET_BIND_SERVICE, so that a reload can still bind
a port below 1024. The admin command started as root acts as that owner too,
so the database and its WAL keep one owner. These tests need root (CI is
root) and use the system's "nobody" as the owner."""
import os
import pathlib
import poplib
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import SANITIZED, TEGAMI, TEGAMID, Tegami

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")

ALICE = "alice@example.test"
CAP_NET_BIND_SERVICE = 1 << 10


def nobody():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def chown_tree(root, uid, gid):
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, uid, gid)
        for n in filenames:
            os.chown(os.path.join(dirpath, n), uid, gid)


def owners(root):
    """{(uid, gid)} of every file and directory under root."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        out.add((os.stat(dirpath).st_uid, os.stat(dirpath).st_gid))
        for n in filenames:
            st = os.stat(os.path.join(dirpath, n))
            out.add((st.st_uid, st.st_gid))
    return out


def threads(pid):
    """[(real, effective, saved uid), CapPrm, CapEff] for every thread."""
    rows = []
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.split()
        rows.append((tuple(int(x) for x in fields["Uid"][:3]),
                     int(fields["CapPrm"][0], 16), int(fields["CapEff"][0], 16), tid == str(pid)))
    return rows


@pytest.fixture
def owned():
    """A Tegami whose data directory belongs to nobody, in a directory nobody
    can reach (pytest's own temp dirs are root's, mode 0700)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="tegami-privdrop-", dir="/tmp"))
    os.chmod(base, 0o755)
    t = Tegami(base)
    t.cli("config", "set", "auth.allow_plaintext=yes", "storage.min_free=0")
    t.add_user(ALICE)
    uid, gid = nobody()
    chown_tree(t.dir, uid, gid)
    yield t
    rc = t.stop() if t.proc is not None else None
    if SANITIZED:
        t.check_sanitizers()
        assert rc in (None, 0), t.log()[-4000:]
    shutil.rmtree(base, ignore_errors=True)


def test_daemon_runs_as_the_data_directory_owner(owned):
    t = owned.start()
    uid, gid = nobody()
    rows = threads(t.proc.pid)
    assert len(rows) > 1                                   # the loop and its workers
    for ids, prm, eff, main in rows:
        assert ids == (uid, uid, uid)
        # Only the loop thread may still bind a low port, and nothing else.
        assert (prm, eff) == ((CAP_NET_BIND_SERVICE,) * 2 if main else (0, 0))
    with open("/proc/%d/status" % t.proc.pid) as f:
        status = f.read()
    assert "\nGid:\t%d\t%d\t%d\t%d\n" % ((gid,) * 4) in status
    assert "event=privileges_dropped user=nobody uid=%d gid=%d" % (uid, gid) in t.log()
    # What it writes from here on is nobody's: the Maildir, the state file,
    # the self-signed certificate it made at start.
    with smtplib.SMTP("127.0.0.1", t.port) as s:
        s.sendmail("x@example.org", [ALICE], b"Subject: dropped\r\n\r\nhello\r\n")
    t.wait_messages(ALICE, 1)
    assert owners(t.dir) == {(uid, gid)}
    assert (t.dir / "tls" / "self-signed.key").stat().st_mode & 0o077 == 0
    p = poplib.POP3("127.0.0.1", t.pop3_port, timeout=10)
    p.user(ALICE)
    p.pass_("secret")
    assert p.stat()[0] == 1
    assert b"hello" in b"\n".join(p.retr(1)[1])
    p.quit()


def test_admin_command_as_root_keeps_one_owner(owned):
    """tegami run as root while the daemon runs: the user it adds is seen by
    the daemon (same database, same WAL), and no file becomes root's."""
    t = owned.start()
    t.add_user("carol@example.test", "carol-pw")
    deadline = time.time() + 10
    while True:
        try:
            p = poplib.POP3("127.0.0.1", t.pop3_port, timeout=10)
            p.user("carol@example.test")
            p.pass_("carol-pw")
            break
        except poplib.error_proto:
            assert time.time() < deadline, "the daemon never saw the new user"
            time.sleep(0.2)
    p.quit()
    assert owners(t.dir) == {nobody()}
    r = t.cli("status")
    assert "running (pid %d)" % t.proc.pid in r.stdout


def free_low_port():
    for port in range(1023, 600, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


def test_reload_binds_a_port_below_1024_after_the_drop(owned):
    t = owned.start()
    low = free_low_port()
    t.set(**{"smtp.listen": "127.0.0.1:%d" % low})
    t.cli("reload")
    state = t.dir / "tegamid.state"
    deadline = time.time() + 10
    while "127.0.0.1:%d" % low not in state.read_text():
        assert time.time() < deadline, t.log()[-2000:]
        time.sleep(0.05)
    with smtplib.SMTP("127.0.0.1", low, timeout=10) as s:
        assert s.noop()[0] == 250
    assert "listen_failed" not in t.log()


def test_sighup_rereads_the_certificate_as_the_owner(owned):
    t = owned.start()
    t.proc.send_signal(1)                                   # SIGHUP: TLS is read again
    deadline = time.time() + 10
    while "event=reloaded reason=sighup" not in t.log():
        assert time.time() < deadline
        time.sleep(0.05)
    assert "tls_failed" not in t.log()
    with smtplib.SMTP("127.0.0.1", t.port, timeout=10) as s:
        s.starttls()
        assert s.noop()[0] == 250


def test_root_owned_data_directory_runs_as_root_and_says_so(tegami):
    uids = {ids for ids, _, _, _ in threads(tegami.proc.pid)}
    assert uids == {(0, 0, 0)}
    assert "event=running_as_root" in tegami.log()
    assert "chown -R" in tegami.log()


def test_data_directory_that_is_a_file(tmp_path):
    f = tmp_path / "notadir"
    f.write_text("x")
    r = subprocess.run([str(TEGAMID), "-D", str(f)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    # One line for the admin (besides the log line, also on stderr).
    said = [l for l in r.stderr.splitlines() if l.startswith("tegamid: ")]
    assert said == ["tegamid: data directory: %s: not a directory" % f]


def test_backup_and_restore_as_root_outside_the_data_directory(owned, tmp_path):
    """D3 with the privilege drop: root's backup lands where root writes (a
    0700 root directory the owner cannot enter) and is root's; the restore
    reads it from there; the data directory stays the owner's."""
    t = owned.start()
    vault = tmp_path / "vault"                             # root's, 0700
    vault.mkdir(mode=0o700)
    backup = vault / "tegami.db"
    r = t.cli("backup", backup)
    assert r.stdout.startswith("backup written to")
    st = backup.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
    t.add_user("dave@example.test")
    t.stop()
    t.cli("restore", backup)
    assert "dave@example.test" not in t.cli("user", "list").stdout
    assert ALICE in t.cli("user", "list").stdout
    assert owners(t.dir) == {nobody()}


def test_root_only_key_is_read_at_start_and_kept_at_reload(owned, tmp_path):
    """A key only root can read: read as root at start; a reload after the
    drop cannot read it again, says why in the log, and keeps serving TLS
    with the certificate it has."""
    keys = tmp_path / "private"                              # root's, 0700
    keys.mkdir(mode=0o700)
    cert, key = keys / "cert.pem", keys / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=mail.example.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    t = owned.start(**{"tls.cert_file": str(cert), "tls.key_file": str(key)})
    t.proc.send_signal(1)
    deadline = time.time() + 10
    while "event=reloaded reason=sighup" not in t.log():
        assert time.time() < deadline
        time.sleep(0.05)
    assert "event=tls_failed" in t.log()
    assert "tegamid now runs as nobody: the certificate and key must be readable by nobody" \
        in t.log()
    with smtplib.SMTP("127.0.0.1", t.port, timeout=10) as s:
        s.starttls()
        assert b"mail.example.test" in s.sock.getpeercert(binary_form=True)  # the same one
        assert s.noop()[0] == 250


def hold_pid_file(t, pid):
    """Makes DATA/tegamid.pid say pid, locked as a running daemon's would be
    (the owner of the data directory can do this)."""
    import fcntl
    f = open(t.dir / "tegamid.pid", "w")
    f.write("%d\n" % pid)
    f.flush()
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def test_reload_cannot_signal_a_root_process(owned):
    """tegami run as root acts as the owner with its real uid too: a pid file
    the owner controls cannot make it signal a process of root's."""
    victim = subprocess.Popen(["sleep", "60"])
    lock = hold_pid_file(owned, victim.pid)
    try:
        r = owned.cli("reload", check=False)
        assert r.returncode == 1
        assert "cannot signal tegamid (pid %d)" % victim.pid in r.stderr
        assert "Operation not permitted" in r.stderr
        time.sleep(0.2)
        assert victim.poll() is None                        # still alive
    finally:
        lock.close()
        victim.kill()
        victim.wait()


def test_status_reads_as_the_owner_not_with_roots_groups(owned):
    """A symlink the owner plants in the data directory gives tegami (run as
    root, in root's group) no more access than the owner has."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="tegami-secret-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        secret = base / "secret"
        secret.write_text("pid: 1\nTOP-SECRET\n")
        os.chown(secret, 0, 0)
        os.chmod(secret, 0o640)                              # root's group may read
        (owned.dir / "tegamid.state").symlink_to(secret)
        lock = hold_pid_file(owned, os.getpid())
        try:
            r = subprocess.run(["setpriv", "--groups", "0", "--", str(TEGAMI), "-D",
                                str(owned.dir), "status"], capture_output=True, text=True,
                               timeout=60)
            assert "running (pid %d)" % os.getpid() in r.stdout, r.stdout + r.stderr
            assert "TOP-SECRET" not in r.stdout + r.stderr
        finally:
            lock.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
