"""The `tegami` admin command and how tegamid starts (MISSION D1-D3, S4).

Every subcommand is run for its success output and exit status 0, and every
invalid use is checked for its exit status (2: bad usage or value, 1: the
operation failed) and for the one line on stderr that says what is wrong.
Passwords: hashed with yescrypt, never stored, printed or logged in clear; the
interactive prompt is driven through a pseudo-terminal. Settings round-trip
through export/import, changes are atomic, and they reach a running daemon
without a restart.
"""
import json
import os
import pty
import select
import signal
import socket
import sqlite3
import subprocess
import termios
import time
import warnings

import pytest

from conftest import SANITIZED, SANITIZER_MARKERS, TEGAMI, TEGAMID, RawSMTP, free_port

def _setting_keys():
    """The settings table as the program prints it (`tegami config doc`), so
    this list never goes stale when a setting is added."""
    import re
    import subprocess
    import tempfile
    from conftest import TEGAMI
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([str(TEGAMI), "-D", d, "config", "doc"], capture_output=True,
                             text=True, check=True).stdout
    return tuple(re.findall(r"^\| `([a-z0-9_.]+)` \|", out, re.M))


SETTING_KEYS = _setting_keys()
# config export also carries the relay-control lists, one line each (R1, R2)
LIST_KEYS = ("list.relay-domains", "list.relay-networks", "list.refused")

COMMANDS = (
    "domain add", "domain list", "domain del",
    "user add", "user list", "user del", "user passwd",
    "alias add", "alias list", "alias del",
    "config get", "config set", "config show", "config export", "config import",
    "config doc", "backup", "restore", "status", "reload",
)


# --- helpers -----------------------------------------------------------------

def fails(r, code, *needles):
    """An invalid use: exit status `code`, nothing on stdout, and exactly one
    line on stderr ("tegami: ...") that contains every needle."""
    assert r.returncode == code, "exit %d, expected %d\nstdout: %r\nstderr: %r" % (
        r.returncode, code, r.stdout, r.stderr)
    assert r.stdout == "", "stdout on error: %r" % r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1, "expected one line on stderr, got %r" % r.stderr
    assert lines[0].startswith("tegami: "), lines[0]
    for n in needles:
        assert n.lower() in lines[0].lower(), "%r not in %r" % (n, lines[0])
    return lines[0]


def run(cmd, env_extra=None, input=None, cwd=None, timeout=30, **kw):
    env = dict(os.environ)
    env.pop("TEGAMI_DATA", None)
    env.update(env_extra or {})
    return subprocess.run([str(c) for c in cmd], input=input, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd, **kw)


def no_sanitizer_reports(logfile):
    """For daemons a test starts by itself (the fixtures check their own)."""
    if SANITIZED:
        text = logfile.read_text(errors="replace")
        for marker in SANITIZER_MARKERS:
            assert marker not in text, "sanitizer report in %s:\n%s" % (logfile, text[-6000:])


def db_rows(t, sql, *args):
    con = sqlite3.connect(str(t.dir / "tegami.db"), timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def exported(t, *flags):
    return t.cli("config", "export", *flags).stdout


def wait_for(pred, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def wait_log(t, needle, timeout=5, start=0):
    return wait_for(lambda: needle in t.log()[start:], timeout)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def rcpt_replies(port, rcpts):
    """Opens a session and returns the RCPT reply codes for rcpts."""
    c = RawSMTP(port)
    try:
        assert c.reply()[0] == 220
        assert c.cmd("EHLO client.example")[0] == 250
        assert c.cmd("MAIL FROM:<sender@example.org>")[0] == 250
        codes = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        c.cmd("QUIT")
        return codes
    finally:
        c.close()


def send(port, rcpts, body):
    c = RawSMTP(port)
    try:
        assert c.reply()[0] == 220
        assert c.cmd("EHLO client.example")[0] == 250
        assert c.cmd("MAIL FROM:<sender@example.org>")[0] == 250
        for r in rcpts:
            code, text = c.cmd("RCPT TO:<%s>" % r)
            assert code == 250, (r, code, text)
        assert c.cmd("DATA")[0] == 354
        code, text = c.cmd(body.rstrip("\r\n") + "\r\n.")
        assert code == 250, text
        c.cmd("QUIT")
    finally:
        c.close()


# --- help and the grammar ------------------------------------------------------

def test_help_lists_every_command(tegami_new):
    for flag in ("--help", "-h"):
        r = tegami_new.cli(flag)
        assert r.returncode == 0
        for cmd in COMMANDS:
            assert "tegami %s" % cmd in r.stdout, (cmd, r.stdout)
        assert "-D DIR" in r.stdout


@pytest.mark.parametrize("group", ["domain", "user", "alias", "config", "backup", "restore",
                                   "status", "reload"])
def test_group_help(tegami_new, group):
    r = tegami_new.cli(group, "--help")
    assert r.returncode == 0 and r.stderr == ""
    listed = [c for c in COMMANDS if "tegami %s" % c in r.stdout]
    assert listed == [c for c in COMMANDS if c.split()[0] == group], r.stdout


def test_verb_help(tegami_new):
    r = tegami_new.cli("user", "add", "--help")
    assert r.returncode == 0
    assert "tegami user add ADDRESS" in r.stdout
    assert "--password-stdin" in r.stdout
    # --help never runs the command
    assert "nobody@example.test" not in tegami_new.cli("user", "list").stdout


def test_no_command_and_unknown_command(tegami_new):
    r = tegami_new.cli(check=False)
    assert r.returncode == 2 and "usage: tegami" in r.stderr
    fails(tegami_new.cli("frobnicate", check=False), 2, "unknown command", "frobnicate")
    r = run([TEGAMI, "--bogus-option"])
    assert r.returncode == 2 and r.stderr != ""
    r = run([TEGAMI, "--version"])
    assert r.returncode == 0 and r.stdout.startswith("tegami ")


def test_unknown_or_missing_subcommand(tegami_new):
    # The first line says what is wrong; the group's usage may follow it.
    r = tegami_new.cli("domain", "frob", check=False)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0].startswith("tegami: ")
    assert "domain frob" in r.stderr.splitlines()[0]
    r = tegami_new.cli("config", check=False)
    assert r.returncode == 2 and r.stdout == ""
    assert "needs a subcommand" in r.stderr.splitlines()[0]


# --- domains -------------------------------------------------------------------

def test_domain_add_list_del(tegami_new):
    t = tegami_new
    assert t.cli("domain", "list").stdout == "example.test\tpostmaster=postmaster@example.test\n"
    r = t.cli("domain", "add", "Example.ORG")
    assert r.stdout == "domain example.org added (postmaster: postmaster@example.org)\n"
    r = t.cli("domain", "add", "other.test", "--postmaster", "Boss@Example.Test")
    assert r.stdout == "domain other.test added (postmaster: boss@example.test)\n"
    assert t.cli("domain", "list").stdout == (
        "example.org\tpostmaster=postmaster@example.org\n"
        "example.test\tpostmaster=postmaster@example.test\n"
        "other.test\tpostmaster=boss@example.test\n")
    r = t.cli("domain", "del", "example.org")
    assert r.returncode == 0 and "example.org deleted" in r.stdout
    assert "example.org" not in t.cli("domain", "list").stdout


def test_domain_errors(tegami_new):
    t = tegami_new
    t.add_user("alice@example.test")
    fails(t.cli("domain", "add", check=False), 2, "usage")
    fails(t.cli("domain", "add", "bad_domain!", check=False), 2, "not a valid domain")
    fails(t.cli("domain", "add", "a..b", check=False), 2, "not a valid domain")
    fails(t.cli("domain", "add", "x.test", "--postmaster", "no address", check=False), 2,
          "not a valid address")
    fails(t.cli("domain", "add", "x.test", "--bogus", "y", check=False), 2, "usage")
    fails(t.cli("domain", "add", "example.test", check=False), 1, "already exists")
    fails(t.cli("domain", "add", "EXAMPLE.test", check=False), 1, "already exists")
    fails(t.cli("domain", "list", "extra", check=False), 2, "usage")
    fails(t.cli("domain", "del", check=False), 2, "usage")
    fails(t.cli("domain", "del", "nosuch.test", check=False), 1, "no such domain")
    fails(t.cli("domain", "del", "example.test", check=False), 1, "still has 1 user")
    assert "example.test" in t.cli("domain", "list").stdout
    assert "x.test" not in t.cli("domain", "list").stdout


# --- users ---------------------------------------------------------------------

def test_user_add_list_del_passwd(tegami_new):
    t = tegami_new
    r = t.cli("user", "add", "Alice@Example.TEST", "--password-stdin", input="pw-one\n")
    assert r.stdout == "user alice@example.test added\n"
    r = t.cli("user", "add", "carol@example.test", "--no-password")
    assert r.stdout == "user carol@example.test added\n"
    t.cli("domain", "add", "other.test")
    t.add_user("zed@other.test")
    assert t.cli("user", "list").stdout == (
        "alice@example.test\tpassword\n"
        "carol@example.test\tno-password\n"
        "zed@other.test\tpassword\n")
    assert t.cli("user", "list", "other.test").stdout == "zed@other.test\tpassword\n"
    assert t.cli("user", "list", "Example.Test").stdout.count("\n") == 2

    (before,), = db_rows(t, "SELECT password FROM users WHERE address = 'alice@example.test'")
    r = t.cli("user", "passwd", "alice@example.test", "--password-stdin", input="pw-two\n")
    assert r.stdout == "password of alice@example.test changed\n"
    (after,), = db_rows(t, "SELECT password FROM users WHERE address = 'alice@example.test'")
    assert before.startswith("$y$") and after.startswith("$y$") and before != after
    assert verify_hash("pw-two", after) in (True, None)
    assert verify_hash("pw-one", after) in (False, None)

    r = t.cli("user", "del", "ALICE@example.test")
    assert r.returncode == 0
    assert r.stdout.startswith("user alice@example.test deleted")
    assert "alice@" not in t.cli("user", "list").stdout


def test_user_errors(tegami_new):
    t = tegami_new
    t.add_user("alice@example.test")
    fails(t.cli("user", "add", check=False), 2, "usage")
    fails(t.cli("user", "add", "a@example.test", "b@example.test", "c", check=False), 2, "usage")
    fails(t.cli("user", "add", "not-an-address", "--password-stdin", input="x\n", check=False),
          2, "not-an-address", "not a valid address")
    fails(t.cli("user", "add", "a b@example.test", "--password-stdin", input="x\n",
                check=False), 2, "not a valid address")
    fails(t.cli("user", "add", "x@[127.0.0.1]", "--password-stdin", input="x\n", check=False),
          2, "address literal")
    fails(t.cli("user", "add", "x!y@example.test", "--password-stdin", input="x\n",
                check=False), 2, "mailbox name")
    fails(t.cli("user", "add", "x@example.test", "--bogus", check=False), 2, "unknown option")
    fails(t.cli("user", "add", "x@nonlocal.test", "--password-stdin", input="x\n", check=False),
          1, "nonlocal.test", "not a local domain")
    fails(t.cli("user", "add", "alice@example.test", "--password-stdin", input="x\n",
                check=False), 1, "already exists")
    fails(t.cli("user", "add", "Alice@EXAMPLE.test", "--password-stdin", input="x\n",
                check=False), 1, "already exists")
    fails(t.cli("user", "add", "x@example.test", "--password-stdin", input="", check=False),
          2, "no password")
    fails(t.cli("user", "add", "x@example.test", "--password-stdin", input="\n", check=False),
          2, "empty")
    fails(t.cli("user", "list", "nosuch.test", check=False), 1, "no such domain")
    fails(t.cli("user", "list", "a", "b", check=False), 2, "usage")
    fails(t.cli("user", "del", check=False), 2, "usage")
    fails(t.cli("user", "del", "nobody@example.test", check=False), 1, "no such user")
    fails(t.cli("user", "del", "not-an-address", check=False), 2, "not a valid address")
    fails(t.cli("user", "passwd", check=False), 2, "usage")
    fails(t.cli("user", "passwd", "alice@example.test", "--no-password", check=False), 2,
          "unknown option")
    fails(t.cli("user", "passwd", "nobody@example.test", "--password-stdin", input="x\n",
                check=False), 1, "no such user")
    # none of that created anything
    assert t.cli("user", "list").stdout == "alice@example.test\tpassword\n"


def verify_hash(password, hashed):
    """True/False when Python can check a yescrypt hash here, else None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
    except ImportError:
        return None
    out = crypt.crypt(password, hashed)
    if not out or out.startswith("*"):
        return None
    return out == hashed


def test_password_is_hashed_and_never_shown(tegami):
    t = tegami
    plain = "Zq7-plain-TEXT-Wk93"
    t.cli("config", "set", "log.level=debug")
    t.cli("user", "add", "dave@example.test", "--password-stdin", input=plain + "\n")
    t.cli("user", "passwd", "bob@example.test", "--password-stdin", input=plain + "\n")
    rows = db_rows(t, "SELECT address, password FROM users ORDER BY address")
    assert [a for a, _ in rows] == ["alice@example.test", "bob@example.test", "dave@example.test"]
    for address, hashed in rows:
        assert hashed.startswith("$y$"), (address, hashed)
        assert plain not in hashed
    assert verify_hash(plain, dict(rows)["dave@example.test"]) in (True, None)
    # two hashes of one password differ (salted)
    assert dict(rows)["dave@example.test"] != dict(rows)["bob@example.test"]
    listing = t.cli("user", "list").stdout
    assert plain not in listing and "$y$" not in listing
    time.sleep(1.5)  # the daemon notices the change (reload poll) and logs what it logs
    for f in t.dir.rglob("*"):
        if f.is_file():
            assert plain.encode() not in f.read_bytes(), "plaintext password in %s" % f
    assert plain not in t.log()
    # a session still works; AUTH does not exist yet, so nothing more to check there
    assert rcpt_replies(t.port, ["dave@example.test"])[0][0] == 250


# --- the interactive password prompt (pty) -----------------------------------------

class Pty:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child: pty.fork made the slave our controlling terminal
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        self.out = b""
        self.transcript = b""

    def expect(self, needle, timeout=15):
        needle = needle.encode() if isinstance(needle, str) else needle
        deadline = time.time() + timeout
        while needle not in self.out:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("did not see %r; got %r" % (needle, self.out))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError("EOF before %r; got %r" % (needle, self.out))
                self.out += chunk
        before, self.out = self.out.split(needle, 1)
        self.transcript += before + needle
        return before

    def echo_off(self, timeout=10):
        """Waits until the program has switched echo off on the terminal."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not termios.tcgetattr(self.fd)[3] & termios.ECHO:
                return True
            time.sleep(0.01)
        return False

    def type_secret(self, prompt, text):
        self.expect(prompt)
        assert self.echo_off(), "the password prompt does not turn echo off"
        os.write(self.fd, text.encode() + b"\n")

    def rest(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self.out += chunk
        self.transcript += self.out
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        os.close(self.fd)
        self.fd = None
        return os.waitstatus_to_exitcode(status), self.out

    def kill(self):
        """Cleanup after a failure: the child is ours and not reaped yet."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def test_password_prompt_on_terminal(tegami_new):
    t = tegami_new
    t.cli("domain", "list")  # initialise the directory
    p = Pty([str(TEGAMI), "-D", str(t.dir), "user", "add", "carol@example.test"])
    typed = []
    try:
        # mismatch: asked again
        for prompt, text in (("Password: ", "first-Secret1"), ("Password again: ", "other-Secret2")):
            p.type_secret(prompt, text)
            typed.append(text)
        seen = p.expect("Password: ")
        assert b"differ" in seen, seen
        # empty: asked again
        assert p.echo_off()
        os.write(p.fd, b"\n")
        p.type_secret("Password again: ", "")
        seen = p.expect("Password: ")
        assert b"empty" in seen, seen
        # matching: done
        assert p.echo_off()
        os.write(p.fd, b"good-Secret3\n")
        p.type_secret("Password again: ", "good-Secret3")
        typed.append("good-Secret3")
        rc, out = p.rest()
    finally:
        p.kill()
    assert rc == 0, out
    assert b"user carol@example.test added" in out
    for secret in typed:  # never echoed
        assert secret.encode() not in p.transcript
    (hashed,), = db_rows(t, "SELECT password FROM users WHERE address = 'carol@example.test'")
    assert hashed.startswith("$y$")
    assert verify_hash("good-Secret3", hashed) in (True, None)


def test_password_prompt_passwd_on_terminal(tegami_new):
    t = tegami_new
    t.add_user("alice@example.test", "old-pw")
    (old,), = db_rows(t, "SELECT password FROM users")
    p = Pty([str(TEGAMI), "-D", str(t.dir), "user", "passwd", "alice@example.test"])
    try:
        p.type_secret("Password: ", "new-Secret4")
        p.type_secret("Password again: ", "new-Secret4")
        rc, out = p.rest()
    finally:
        p.kill()
    assert rc == 0, out
    assert b"password of alice@example.test changed" in out
    assert b"new-Secret4" not in out
    (new,), = db_rows(t, "SELECT password FROM users")
    assert new != old and new.startswith("$y$")
    assert verify_hash("new-Secret4", new) in (True, None)


def test_password_without_terminal_fails_clearly(tegami_new):
    t = tegami_new
    r = subprocess.run([str(TEGAMI), "-D", str(t.dir), "user", "add", "carol@example.test"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                       start_new_session=True)  # no controlling terminal
    fails(r, 2, "no terminal", "--password-stdin")
    assert "carol" not in t.cli("user", "list").stdout


def test_passwd_of_unknown_user_fails_before_asking(tegami_new):
    """`user passwd` names a user that does not exist: say so at once instead
    of asking for a password first (and, without a terminal, complaining about
    the terminal)."""
    t = tegami_new
    t.add_user("alice@example.test")
    r = subprocess.run([str(TEGAMI), "-D", str(t.dir), "user", "passwd", "nobody@example.test"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                       start_new_session=True)
    fails(r, 1, "no such user", "nobody@example.test")


# --- aliases -------------------------------------------------------------------

def test_alias_add_list_del(tegami_new):
    t = tegami_new
    t.add_user("alice@example.test")
    t.add_user("bob@example.test")
    r = t.cli("alias", "add", "Team@example.test", "alice@example.test", "BOB@example.test")
    assert r.stdout == "alias team@example.test -> 2 target(s) added\n"
    t.cli("alias", "add", "info@example.test", "alice@example.test")
    assert t.cli("alias", "list").stdout == (
        "info@example.test\talice@example.test\n"
        "team@example.test\talice@example.test\n"
        "team@example.test\tbob@example.test\n")
    assert t.cli("alias", "list", "team@example.test").stdout.count("\n") == 2
    r = t.cli("alias", "del", "team@example.test", "bob@example.test")
    assert r.stdout == "alias team@example.test -> bob@example.test deleted\n"
    assert t.cli("alias", "list", "team@example.test").stdout == \
        "team@example.test\talice@example.test\n"
    r = t.cli("alias", "del", "team@example.test")
    assert r.stdout == "alias team@example.test deleted\n"
    assert t.cli("alias", "list").stdout == "info@example.test\talice@example.test\n"


def test_alias_errors(tegami_new):
    t = tegami_new
    t.add_user("alice@example.test")
    t.cli("alias", "add", "team@example.test", "alice@example.test")
    fails(t.cli("alias", "add", check=False), 2, "usage")
    fails(t.cli("alias", "add", "team@example.test", check=False), 2, "usage")
    fails(t.cli("alias", "add", "bad address", "alice@example.test", check=False), 2,
          "not a valid address")
    fails(t.cli("alias", "add", "x@example.test", "not-an-address", check=False), 2,
          "not a valid address")
    fails(t.cli("alias", "add", "x@nonlocal.test", "alice@example.test", check=False), 1,
          "not in a local domain")
    fails(t.cli("alias", "add", "x@example.test", "alice@remote.test", check=False), 1,
          "not in a local domain")
    fails(t.cli("alias", "add", "x@example.test", "x@example.test", check=False), 1, "itself")
    # one bad target: nothing added
    fails(t.cli("alias", "add", "y@example.test", "alice@example.test", "bad target",
                check=False), 2, "not a valid address")
    fails(t.cli("alias", "list", "a@example.test", "b@example.test", check=False), 2, "usage")
    fails(t.cli("alias", "list", "junk", check=False), 2, "not a valid address")
    fails(t.cli("alias", "del", check=False), 2, "usage")
    fails(t.cli("alias", "del", "nosuch@example.test", check=False), 1, "no such alias")
    fails(t.cli("alias", "del", "team@example.test", "bob@example.test", check=False), 1,
          "has no target")
    assert t.cli("alias", "list").stdout == "team@example.test\talice@example.test\n"


# --- settings ------------------------------------------------------------------

def test_config_get_set_show(tegami_new):
    t = tegami_new
    assert t.cli("config", "get", "smtp.max_recipients").stdout == "100\n"
    assert t.cli("config", "get", "smtp.listen").stdout == "127.0.0.1:2525\n"
    r = t.cli("config", "set", "smtp.max_recipients=7", "smtp.max_message_size=2M",
              "smtp.allow_bare_lf=On")
    assert r.stdout == ("smtp.max_recipients = 7\nsmtp.max_message_size = 2097152\n"
                        "smtp.allow_bare_lf = yes\n")
    assert t.cli("config", "get", "smtp.max_recipients").stdout == "7\n"
    assert t.cli("config", "get", "smtp.max_message_size").stdout == "2097152\n"
    show = t.cli("config", "show").stdout.splitlines()
    assert [l.split(" = ")[0] for l in show] == list(SETTING_KEYS)
    assert "smtp.max_recipients = 7" in show
    assert "smtp.max_sessions = 1000  # default" in show
    verbose = t.cli("config", "show", "-v").stdout
    assert "Recipients per message" in verbose and "[S6]" in verbose
    fails(t.cli("config", "show", "--bogus", check=False), 2, "usage")


def test_config_errors_and_atomic_set(tegami_new):
    t = tegami_new
    t.cli("config", "set", "smtp.max_recipients=5")
    before = exported(t)
    fails(t.cli("config", "get", check=False), 2, "usage")
    fails(t.cli("config", "get", "no.such.key", check=False), 2, "unknown setting", "no.such.key")
    fails(t.cli("config", "set", check=False), 2, "usage")
    fails(t.cli("config", "set", "smtp.max_recipients", check=False), 2, "KEY=VALUE")
    fails(t.cli("config", "set", "no.such.key=1", check=False), 2, "unknown setting",
          "no.such.key")
    for key, bad in (("smtp.max_recipients", "many"), ("smtp.max_recipients", "0"),
                     ("smtp.max_recipients", "-3"), ("smtp.max_message_size", "huge"),
                     ("smtp.allow_bare_lf", "maybe"), ("log.level", "loud"),
                     ("smtp.listen", "not-an-address"), ("smtp.listen", "127.0.0.1:99999"),
                     ("server.hostname", "bad host!"), ("queue.workers", "100000")):
        fails(t.cli("config", "set", "%s=%s" % (key, bad), check=False), 2,
              "bad value for %s" % key)
    # several pairs, the last one bad: nothing changes
    fails(t.cli("config", "set", "smtp.max_recipients=9", "log.level=debug",
                "smtp.max_sessions=lots", check=False), 2, "bad value for smtp.max_sessions")
    fails(t.cli("config", "set", "smtp.max_recipients=9", "nope=1", check=False), 2,
          "unknown setting")
    assert exported(t) == before
    assert t.cli("config", "get", "smtp.max_recipients").stdout == "5\n"


def test_config_export_import_round_trip(tegami_new, tmp_path):
    t = tegami_new
    t.cli("config", "set", "smtp.max_recipients=42", "server.hostname=mx.example.test",
          "smtp.percent_routing=yes", "smtp.listen=127.0.0.1:2526,[::1]:2526")
    text = exported(t)
    js = exported(t, "--json")
    assert text.startswith("#")
    for key in SETTING_KEYS:
        assert "\n%s = " % key in text
    obj = json.loads(js)
    assert list(obj) == list(SETTING_KEYS) + list(LIST_KEYS)
    assert obj["smtp.max_recipients"] == "42"
    assert obj["smtp.listen"] == "127.0.0.1:2526,[::1]:2526"
    fails(t.cli("config", "export", "--xml", check=False), 2, "usage")

    f_text, f_json = tmp_path / "settings.txt", tmp_path / "settings.json"
    f_text.write_text(text)
    f_json.write_text(js)
    for f in (f_text, f_json):
        t.cli("config", "set", "smtp.max_recipients=3", "server.hostname=", "log.level=warn",
              "smtp.percent_routing=no", "smtp.listen=*:2600")
        assert exported(t) != text
        r = t.cli("config", "import", f)
        assert r.stdout == "imported %d setting(s) from %s\n" % (len(SETTING_KEYS) +
                                                                 len(LIST_KEYS), f)
        assert exported(t) == text
        assert exported(t, "--json") == js

    # a fresh data directory gets exactly the same settings
    other = type(t)(tmp_path / "other")
    other.dir.parent.mkdir()
    other.cli("config", "import", f_json)
    assert exported(other) == text
    assert exported(other, "--json") == js


def test_config_import_is_atomic(tegami_new, tmp_path):
    t = tegami_new
    t.cli("config", "set", "smtp.max_recipients=5")
    before = exported(t)
    bad_text = tmp_path / "bad.txt"
    bad_text.write_text("smtp.max_recipients = 77\nlog.level = debug\n"
                        "smtp.max_sessions = twelve\nsmtp.max_errors = 3\n")
    r = t.cli("config", "import", bad_text, check=False)
    # (how the reason is worded is test_config_import_bad_value_one_line's business)
    assert r.returncode == 2 and "smtp.max_sessions" in r.stderr and r.stdout == ""
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps({"smtp.max_recipients": "77", "log.level": "nope"}))
    fails(t.cli("config", "import", bad_json, check=False), 2, "bad value for log.level")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("smtp.max_recipients = 77\nno.such = 1\n")
    r = t.cli("config", "import", unknown, check=False)
    assert r.returncode == 2 and "unknown setting" in r.stderr
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("smtp.max_recipients = 77\nthis is not a setting\n")
    fails(t.cli("config", "import", garbage, check=False), 2, "line 2")
    notjson = tmp_path / "not.json"
    notjson.write_text('{"smtp.max_recipients": 77}')
    fails(t.cli("config", "import", notjson, check=False), 2, "string")
    broken = tmp_path / "broken.json"
    broken.write_text('{"smtp.max_recipients": "77",')
    fails(t.cli("config", "import", broken, check=False), 2, "JSON")
    fails(t.cli("config", "import", tmp_path / "missing.txt", check=False), 1, "cannot read")
    fails(t.cli("config", "import", check=False), 2, "usage")
    assert exported(t) == before


def test_config_import_bad_value_one_line(tegami_new, tmp_path):
    """A bad value in an imported file is reported on one line that names
    the line number, the key and the reason."""
    t = tegami_new
    bad = tmp_path / "bad.txt"
    bad.write_text("smtp.max_recipients = 77\nsmtp.max_sessions = twelve\n")
    line = fails(t.cli("config", "import", bad, check=False), 2, "bad value for smtp.max_sessions")
    assert "line 2" in line
    assert t.cli("config", "get", "smtp.max_recipients").stdout == "100\n"


# --- status and reload -----------------------------------------------------------

def test_status_stopped(tegami_new):
    t = tegami_new
    r = t.cli("status", check=False)
    assert r.returncode == 3, r
    assert "not running" in r.stdout
    assert "queue: 0 message(s)" in r.stdout
    fails(t.cli("status", "extra", check=False), 2, "usage")


def test_status_running_and_after_stop(tegami):
    t = tegami
    r = t.cli("status")
    assert "tegamid: running (pid %d)" % t.proc.pid in r.stdout, r.stdout
    assert "smtp: 127.0.0.1:%d" % t.port in r.stdout.splitlines()
    assert "queue: 0 message(s)" in r.stdout
    assert t.stop() == 0
    r = t.cli("status", check=False)
    assert r.returncode == 3 and "not running" in r.stdout


def test_status_counts_queue(tegami_new):
    t = tegami_new
    t.cli("status", check=False)
    for i in range(3):
        (t.dir / "queue" / ("%020X" % (0xABC0 + i))).write_text("tegami-queue 1\n")
    (t.dir / "queue" / ("%020X.tmp" % 0xABCF)).write_text("x")
    r = t.cli("status", check=False)
    assert r.returncode == 3 and "queue: 3 message(s)" in r.stdout


def test_reload(tegami):
    t = tegami
    mark = len(t.log())
    r = t.cli("reload")
    assert "tegamid (pid %d) reloading" % t.proc.pid in r.stdout
    assert wait_log(t, "event=reloaded", timeout=3, start=mark), t.log()[mark:]
    fails(t.cli("reload", "now", check=False), 2, "usage")
    t.stop()
    fails(t.cli("reload", check=False), 1, "not running")


# --- changes reach the running daemon ------------------------------------------------

def test_config_set_reaches_running_daemon(tegami):
    t = tegami
    assert [c for c, _ in rcpt_replies(t.port, ["alice@example.test", "bob@example.test"])] == \
        [250, 250]
    t.cli("config", "set", "smtp.max_recipients=1")
    start = time.time()
    got = wait_for(lambda: [c for c, _ in rcpt_replies(
        t.port, ["alice@example.test", "bob@example.test"])] == [250, 452], 2.5, step=0.1)
    assert got, "max_recipients=1 not applied within 2.5 s"
    assert time.time() - start < 2.5
    codes = rcpt_replies(t.port, ["alice@example.test", "bob@example.test"])
    assert codes[1][0] == 452 and codes[1][1][0].startswith("4.5.3")


def test_listen_change_reaches_running_daemon(tegami):
    t = tegami
    new_port = free_port()
    t.cli("config", "set", "smtp.listen=127.0.0.1:%d" % new_port)
    assert wait_for(lambda: listening(new_port), 2.5, step=0.1), \
        "not listening on the new port within 2.5 s:\n" + t.log()[-2000:]
    assert wait_for(lambda: not listening(t.port), 2.5, step=0.1), "old port still open"
    old = t.port
    t.port = new_port
    c = t.raw()
    assert c.cmd("EHLO client.example")[0] == 250
    c.close()
    assert wait_for(lambda: "smtp: 127.0.0.1:%d" % new_port in t.cli("status").stdout, 2)
    assert old != new_port


def test_listener_disabled_and_enabled_while_running(tegami):
    t = tegami
    t.cli("config", "set", "smtp.listen=")
    assert wait_for(lambda: not listening(t.port), 2.5, step=0.1), "listener not closed"
    assert wait_for(lambda: "smtp: off" in t.cli("status").stdout, 2)
    assert t.proc.poll() is None
    t.cli("config", "set", "smtp.listen=127.0.0.1:%d" % t.port)
    assert wait_for(lambda: listening(t.port), 2.5, step=0.1), "listener not reopened"
    c = t.raw()
    assert c.cmd("NOOP")[0] == 250
    c.close()


def test_bad_listen_change_keeps_old_listener(tegami):
    t = tegami
    # valid syntax, but an address this host does not have: the daemon keeps serving
    t.cli("config", "set", "smtp.listen=192.0.2.1:%d" % free_port())
    assert wait_log(t, "event=listen_failed", timeout=3), t.log()[-2000:]
    assert listening(t.port)
    c = t.raw()
    assert c.cmd("NOOP")[0] == 250
    c.close()


def test_alias_and_user_changes_reach_running_daemon(tegami):
    t = tegami
    t.cli("alias", "add", "team@example.test", "alice@example.test", "bob@example.test")
    assert wait_for(lambda: rcpt_replies(t.port, ["team@example.test"])[0][0] == 250, 2.5)
    send(t.port, ["team@example.test"], "Subject: to the team\r\n\r\nhi team\r\n")
    t.wait_messages("alice@example.test", 1)
    t.wait_messages("bob@example.test", 1)
    t.add_user("carol@example.test")
    assert wait_for(lambda: rcpt_replies(t.port, ["carol@example.test"])[0][0] == 250, 2.5)


def test_user_del_stops_delivery_keeps_maildir(tegami):
    t = tegami
    send(t.port, ["bob@example.test"], "Subject: before\r\n\r\nkept after del\r\n")
    msgs = t.wait_messages("bob@example.test", 1)
    r = t.cli("user", "del", "bob@example.test")
    assert "Maildir stays on disk" in r.stdout

    def refused():
        (code, text), = rcpt_replies(t.port, ["bob@example.test"])
        return code == 550 and text[0].startswith("5.1.1")
    assert wait_for(refused, 2.5, step=0.1), rcpt_replies(t.port, ["bob@example.test"])
    assert t.messages("bob@example.test") == msgs
    assert (t.maildir("bob@example.test") / "new").is_dir()
    assert rcpt_replies(t.port, ["alice@example.test"])[0][0] == 250


# --- tegamid start-up ------------------------------------------------------------------

def test_tegamid_help_and_bad_options(tmp_path):
    r = run([TEGAMID, "--help"])
    assert r.returncode == 0 and "usage: tegamid" in r.stdout
    r = run([TEGAMID, "-h"])
    assert r.returncode == 0 and "usage: tegamid" in r.stdout
    r = run([TEGAMID, "--version"])
    assert r.returncode == 0 and r.stdout.startswith("tegamid ")
    r = run([TEGAMID, "--bogus"], cwd=tmp_path)
    assert r.returncode == 2 and "usage: tegamid" in r.stderr
    r = run([TEGAMID, "-D"], cwd=tmp_path)
    assert r.returncode == 2
    r = run([TEGAMID, "-D", tmp_path / "d", "extra"], cwd=tmp_path)
    assert r.returncode == 2 and "extra" in r.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "var").exists()


def test_tegamid_initialises_empty_directory(tmp_path):
    data = tmp_path / "empty"
    data.mkdir()
    log = open(tmp_path / "log", "wb")
    proc = subprocess.Popen([str(TEGAMID), "-D", str(data)], stdout=subprocess.PIPE, stderr=log)
    log.close()
    try:
        assert wait_for(lambda: (data / "tegami.db").exists() and (
            (data / "tegamid.state").exists() or proc.poll() is not None), 15)
        served = proc.poll() is None
        if served:  # the embedded default: SMTP 2525, submission 2587, SMTPS 2465
            assert "data in %s" % data in proc.stdout.readline().decode()
            listening = proc.stdout.readline().decode()
            for where in ("smtp: 127.0.0.1:2525", "submission: 127.0.0.1:2587",
                          "smtps: 127.0.0.1:2465"):
                assert where in listening
            assert "tegami -D %s user add" % data in proc.stdout.readline().decode()
        else:  # a default port is taken on this host; the directory must still be initialised
            assert "cannot listen" in (tmp_path / "log").read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        proc.stdout.close()
    r = run([TEGAMI, "-D", data, "domain", "list"])
    assert r.stdout == "example.test\tpostmaster=postmaster@example.test\n"
    assert (data / "queue").is_dir() and (data / "mail").is_dir()
    assert run([TEGAMI, "-D", data, "config", "get", "smtp.listen"]).stdout == "127.0.0.1:2525\n"
    assert not (data / "tegamid.pid").exists()
    no_sanitizer_reports(tmp_path / "log")


def test_second_tegamid_refused(tegami):
    t = tegami
    r = run([TEGAMID, "-D", t.dir], timeout=30)
    assert r.returncode != 0
    assert r.returncode == 1, r
    assert "already running" in r.stderr
    assert str(t.proc.pid) in r.stderr
    # the first one is unharmed
    assert t.proc.poll() is None
    assert "running (pid %d)" % t.proc.pid in t.cli("status").stdout


def test_tegami_data_environment_variable(tmp_path):
    data = tmp_path / "envdata"
    env = {"TEGAMI_DATA": str(data)}
    port = free_port()
    r = run([TEGAMI, "config", "set", "smtp.listen=127.0.0.1:%d" % port, "storage.min_free=0",
             "submission.listen=", "smtps.listen=", "pop3.listen=", "pop3s.listen="],
            env_extra=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (data / "tegami.db").exists() and not (tmp_path / "var").exists()
    r = run([TEGAMI, "user", "add", "erin@example.test", "--password-stdin"], env_extra=env,
            input="pw\n", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # -D wins over the environment
    other = tmp_path / "other"
    run([TEGAMI, "-D", other, "domain", "add", "only-other.test"], env_extra=env, cwd=tmp_path)
    assert "only-other.test" not in run([TEGAMI, "domain", "list"], env_extra=env).stdout

    log = open(tmp_path / "envlog", "wb")
    envd = dict(os.environ, TEGAMI_DATA=str(data))
    proc = subprocess.Popen([str(TEGAMID)], stdout=log, stderr=log, env=envd, cwd=str(tmp_path))
    log.close()
    try:
        assert wait_for(lambda: listening(port) or proc.poll() is not None, 15)
        assert proc.poll() is None, (tmp_path / "envlog").read_text()
        r = run([TEGAMI, "status"], env_extra=env)
        assert r.returncode == 0 and "running (pid %d)" % proc.pid in r.stdout
        assert "data: %s" % data in r.stdout
        (code, _), = rcpt_replies(port, ["erin@example.test"])
        assert code == 250
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert not (tmp_path / "var").exists()
    no_sanitizer_reports(tmp_path / "envlog")


# --- backup and restore (D3) ------------------------------------------------------

def pop3_login_ok(port, user, password):
    import poplib
    p = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        p.user(user)
        p.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        p.close()


def test_backup_while_running_and_restore_elsewhere(tegami_new, tmp_path):
    """D3: a backup taken while tegamid runs holds the settings,
    domains, users (their hashes: the same password logs in) and aliases; a
    restore into another data directory serves them; the file is 0600."""
    from conftest import Tegami
    t = tegami_new
    t.add_user("alice@example.test", "alice-pw")
    t.cli("domain", "add", "example.org")
    t.add_user("bob@example.org", "bob-pw")
    t.cli("alias", "add", "info@example.org", "bob@example.org", "alice@example.test")
    t.start(**{"auth.allow_plaintext": "yes", "smtp.max_recipients": "77"})
    backup = tmp_path / "tegami-backup.db"
    r = t.cli("backup", backup)
    assert r.stdout.startswith("backup written to %s: " % backup)
    assert "2 domain(s), 2 user(s)" in r.stdout
    assert (backup.stat().st_mode & 0o777) == 0o600
    assert not (tmp_path / "tegami-backup.db-wal").exists()       # one plain file
    fails(t.cli("backup", backup, check=False), 1, "exists")
    fails(t.cli("restore", backup, check=False), 1, "running", "stop it")
    # Restore into a fresh data directory and serve from it.
    other = Tegami(tmp_path / "other")
    r = other.cli("restore", backup)
    assert r.stdout.startswith("restored from %s: " % backup), r.stdout
    assert other.cli("config", "get", "smtp.max_recipients").stdout.strip() == "77"
    assert "bob@example.org" in other.cli("user", "list").stdout
    assert "alice@example.test" in other.cli("alias", "list", "info@example.org").stdout
    other.start(**{"auth.allow_plaintext": "yes"})
    try:
        assert pop3_login_ok(other.pop3_port, "bob@example.org", "bob-pw")
        assert not pop3_login_ok(other.pop3_port, "bob@example.org", "wrong")
    finally:
        other.stop()


def test_restore_replaces_what_was_there(tegami_new, tmp_path):
    t = tegami_new
    t.add_user("alice@example.test")
    backup = tmp_path / "b.db"
    t.cli("backup", backup)
    t.add_user("carol@example.test")
    t.cli("config", "set", "log.level=debug")
    t.cli("restore", backup)
    users = t.cli("user", "list").stdout
    assert "alice@example.test" in users and "carol@example.test" not in users
    assert t.cli("config", "get", "log.level").stdout.strip() == "info"


def test_backup_restore_errors(tegami_new, tmp_path):
    t = tegami_new
    fails(t.cli("backup", check=False), 2, "usage: tegami backup FILE")
    fails(t.cli("backup", "a", "b", check=False), 2, "usage")
    fails(t.cli("restore", check=False), 2, "usage: tegami restore FILE")
    fails(t.cli("backup", tmp_path / "no" / "such" / "dir.db", check=False), 1,
          "cannot create", "No such file or directory")
    fails(t.cli("restore", tmp_path / "missing.db", check=False), 1, "cannot read")
    junk = tmp_path / "junk.db"
    junk.write_text("not a database\n" * 100)
    fails(t.cli("restore", junk, check=False), 1, "not a tegami backup")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t(x)")
    fails(t.cli("restore", other, check=False), 1, "not a tegami backup")
    newer = tmp_path / "newer.db"
    t.cli("backup", newer)
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 99")
    fails(t.cli("restore", newer, check=False), 1, "newer tegami", "99")
    assert "example.test" in t.cli("domain", "list").stdout     # nothing was changed


def test_restore_refuses_a_file_unlike_our_schema_and_changes_nothing(tegami_new, tmp_path):
    """A backup is restored only if, brought up to date in memory, it is
    exactly our schema and undamaged; otherwise the data stays as it was."""
    t = tegami_new
    t.add_user("alice@example.test")
    good = tmp_path / "good.db"
    t.cli("backup", good)

    def variant(name, *sql):
        path = tmp_path / name
        path.write_bytes(good.read_bytes())
        with sqlite3.connect(path) as db:
            for q in sql:
                db.execute(q)
        db.close()
        return path

    missing = variant("missing.db", "ALTER TABLE users DROP COLUMN cram_md5")
    fails(t.cli("restore", missing, check=False), 1, "not a tegami backup", "tables differ")
    extra = variant("trigger.db", "CREATE TRIGGER t AFTER INSERT ON users BEGIN "
                    "DELETE FROM domains; END")
    fails(t.cli("restore", extra, check=False), 1, "tables differ")
    view = variant("view.db", "CREATE VIEW v AS SELECT * FROM users")
    fails(t.cli("restore", view, check=False), 1, "tables differ")
    # Claims schema 1 but already has what the upgrade adds: cannot be upgraded.
    old = variant("old.db", "PRAGMA user_version = 1")
    fails(t.cli("restore", old, check=False), 1, "cannot be brought up to date")
    # A damaged page in the middle of the file.
    broken = tmp_path / "broken.db"
    data = bytearray(good.read_bytes())
    for i in range(4096 + 100, min(len(data), 4096 * 3)):
        data[i] = 0x5A
    broken.write_bytes(bytes(data))
    r = t.cli("restore", broken, check=False)
    assert r.returncode == 1 and r.stderr.startswith("tegami: "), r.stderr
    # After all that, the data directory is untouched and usable.
    assert "alice@example.test" in t.cli("user", "list").stdout
    assert t.cli("config", "get", "log.level").stdout.strip() == "info"


def test_backup_leaves_no_temporary_file(tegami_new, tmp_path):
    t = tegami_new
    backup = tmp_path / "b.db"
    t.cli("backup", backup)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.db")) == ["b.db"]
    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    db.close()
