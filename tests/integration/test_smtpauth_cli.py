"""`tegami smtpauth` (and its seed name, mpaossmtpauth) exactly as seed 000
describes the command (MISSION C1, C2, C4, C5): every example's output byte
for byte, the password asked on the terminal only (no echo, an empty entry
asks again, at most 64 bytes, asked twice), every wrong combination one
error line plus the usage and a non-zero exit, the password stored sealed."""
import os
import sqlite3
import stat
import subprocess

import pytest

from conftest import TEGAMI
from ptyrun import Terminal

PASSWORD = "Tr0ub4dor&3"


@pytest.fixture
def t(tegami_new):
    """A data directory whose outbound relay (the seed's SMTP server) is set."""
    tegami_new.set(relay__smarthost="smtp.example.com")
    return tegami_new


def smtpauth_tty(t, *args, name=None, env=None):
    argv = [TEGAMI, "-D", t.dir, "smtpauth", *args] if name is None else [name, *args]
    return Terminal(argv, env=env)


def enter_password(term, first=PASSWORD, second=PASSWORD):
    term.expect("Enter password : ")
    term.type(first + "\n")
    term.expect("Re-enter password : ")
    term.type(second + "\n")


# --- the seed's examples, byte for byte ---------------------------------------

def test_seed_example_plain_on_port_25(t):
    term = smtpauth_tty(t, "-s", "-u", "sysop", "-p", "25", "-a", "PLAIN")
    enter_password(term)
    rc, out, err = term.finish()
    assert rc == 0, err
    assert out == ("SMTP AUTH : ON\n"
                   "SMTP SERVER : smtp.example.com\n"
                   "PORT : 25\n"
                   "SSL : OFF\n"
                   "AUTH : PLAIN\n"
                   "ACCOUNT : sysop\n")
    assert err == ""
    # the terminal showed the two prompts, and not one character typed
    assert term.shown == "Enter password : \nRe-enter password : \n"
    assert PASSWORD not in term.shown


def test_seed_example_cram_md5_over_smtps(t):
    term = smtpauth_tty(t, "-s", "-u", "sysop", "-p", "465", "-t", "SMTPS", "-a", "CRAM-MD5")
    enter_password(term)
    rc, out, err = term.finish()
    assert rc == 0, err
    assert out == ("SMTP AUTH : ON\n"
                   "SMTP SERVER : smtp.example.com\n"
                   "PORT : 465\n"
                   "SSL : SMTPS\n"
                   "SSLPROTOCOL : TLSv1.3\n"
                   "AUTH : CRAM-MD5\n"
                   "ACCOUNT : sysop\n")


def test_seed_example_off(t):
    enter_password(term := smtpauth_tty(t, "-s", "-u", "sysop"))
    assert term.finish()[0] == 0
    r = t.cli("smtpauth", "-d")
    assert (r.returncode, r.stdout, r.stderr) == (0, "SMTP AUTH : OFF\n", "")
    r = t.cli("smtpauth", "-i")
    assert r.stdout == "SMTP AUTH : OFF\n"
    # off twice is still off, and still success
    assert t.cli("smtpauth", "-d").stdout == "SMTP AUTH : OFF\n"


def test_seed_example_info(t):
    term = smtpauth_tty(t, "-s", "-u", "sysop", "-p", "465", "-t", "SMTPS")
    enter_password(term)
    assert term.finish()[0] == 0
    r = t.cli("smtpauth", "-i")
    assert r.returncode == 0
    # -a omitted: ALL; the password is never shown
    assert r.stdout == ("SMTP AUTH : ON\n"
                        "SMTP SERVER : smtp.example.com\n"
                        "PORT : 465\n"
                        "SSL : SMTPS\n"
                        "SSLPROTOCOL : TLSv1.3\n"
                        "AUTH : ALL\n"
                        "ACCOUNT : sysop\n")
    assert PASSWORD not in r.stdout + r.stderr


def test_defaults_starttls_version_and_method_list(t):
    term = smtpauth_tty(t, "-s", "-u", "relay-user@example.com", "-t", "STARTTLS", "-v",
                        "TLSv1.2", "-a", "CRAM-MD5,LOGIN")
    enter_password(term)
    rc, out, _ = term.finish()
    assert rc == 0
    assert out == ("SMTP AUTH : ON\n"
                   "SMTP SERVER : smtp.example.com\n"
                   "PORT : 25\n"                       # -p omitted: 25
                   "SSL : STARTTLS\n"
                   "SSLPROTOCOL : TLSv1.2\n"
                   "AUTH : CRAM-MD5,LOGIN\n"
                   "ACCOUNT : relay-user@example.com\n")


def test_installed_as_mpaossmtpauth(t):
    link = TEGAMI.parent / "mpaossmtpauth"
    assert link.is_symlink() and os.readlink(link) == "tegami"
    env = dict(os.environ, TEGAMI_DATA=str(t.dir))
    term = Terminal([link, "-s", "-u", "sysop", "-p", "587", "-t", "STARTTLS"], env=env)
    enter_password(term)
    rc, out, err = term.finish()
    assert rc == 0, err
    assert out.startswith("SMTP AUTH : ON\nSMTP SERVER : smtp.example.com\nPORT : 587\n")
    r = subprocess.run([link, "-i"], env=env, capture_output=True, text=True)
    assert r.stdout == out
    r = subprocess.run([link, "-v"], env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("mpaossmtpauth: ")
    assert "usage: mpaossmtpauth -s -u ACCOUNT" in r.stderr


# --- the password: terminal only, no echo, asked again, 64 bytes ---------------

def test_empty_entry_asks_again(t):
    term = smtpauth_tty(t, "-s", "-u", "sysop")
    term.expect("Enter password : ")
    term.type("\n")
    term.expect("Enter password : \r\nEnter password : ")
    term.type("\n")
    term.expect("Enter password : \r\nEnter password : \r\nEnter password : ")
    term.type(PASSWORD + "\n")
    term.expect("Re-enter password : ")
    term.type("\n")                                   # empty again: asked again
    term.expect("Re-enter password : \r\nRe-enter password : ")
    term.type(PASSWORD + "\n")
    rc, out, err = term.finish()
    assert rc == 0, err
    assert out.startswith("SMTP AUTH : ON\n")
    assert term.count("Enter password : ") == 3
    assert term.count("Re-enter password : ") == 2
    assert PASSWORD not in term.shown


def test_64_bytes_is_the_limit(t):
    term = smtpauth_tty(t, "-s", "-u", "sysop")
    term.expect("Enter password : ")
    term.type("x" * 65 + "\n")
    term.expect("Enter password : \r\nEnter password : ")   # refused, asked again
    term.type("y" * 64 + "\n")
    term.expect("Re-enter password : ")
    term.type("y" * 64 + "\n")
    rc, out, err = term.finish()
    assert rc == 0
    assert "longer than 64 bytes" in err
    assert out.startswith("SMTP AUTH : ON\n")
    assert "x" * 10 not in term.shown and "y" * 10 not in term.shown


def test_passwords_that_differ_change_nothing(t):
    term = smtpauth_tty(t, "-s", "-u", "sysop")
    enter_password(term, PASSWORD, PASSWORD + "!")
    rc, out, err = term.finish()
    assert rc == 1
    assert out == ""
    assert "do not match" in err
    assert t.cli("smtpauth", "-i").stdout == "SMTP AUTH : OFF\n"


def test_end_of_input_changes_nothing(t):
    term = smtpauth_tty(t, "-s", "-u", "sysop")
    term.expect("Enter password : ")
    term.type("\x04")                                 # Ctrl-D
    rc, out, err = term.finish()
    assert rc == 1 and out == ""
    assert t.cli("smtpauth", "-i").stdout == "SMTP AUTH : OFF\n"


def test_no_terminal_no_password(t):
    # Only interactively (C2): standard input is not read.
    r = subprocess.run([TEGAMI, "-D", t.dir, "smtpauth", "-s", "-u", "sysop"],
                       input=PASSWORD + "\n" + PASSWORD + "\n", capture_output=True, text=True,
                       start_new_session=True)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "terminal" in r.stderr
    assert t.cli("smtpauth", "-i").stdout == "SMTP AUTH : OFF\n"


def test_password_sealed_at_rest(t):
    term = smtpauth_tty(t, "-s", "-u", "sysop")
    enter_password(term)
    assert term.finish()[0] == 0
    key = t.dir / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.stat().st_size == 32
    db = sqlite3.connect(t.dir / "tegami.db")
    (secret,) = db.execute("SELECT auth_sealed FROM smtp_profiles WHERE id = 'default'").fetchone()
    db.close()
    assert secret.startswith("v1:") and PASSWORD not in secret
    for f in t.dir.iterdir():
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f
    # -d forgets it
    t.cli("smtpauth", "-d")
    db = sqlite3.connect(t.dir / "tegami.db")
    assert db.execute("SELECT auth_sealed FROM smtp_profiles WHERE id = 'default'").fetchone() == (None,)
    db.close()


# --- every wrong combination: one line, the usage, exit 2, nothing changed -----

BAD = [
    ([], "one of -s, -d or -i is required"),
    (["-x"], "unknown option '-x'"),
    (["--silly"], "unknown option '--silly'"),
    (["-s"], "-s needs -u ACCOUNT"),
    (["-s", "-u"], "option -u needs a value"),
    (["-s", "-u", ""], "the account name is empty"),
    (["-s", "-u", "a" * 257], "longer than 256 bytes"),
    (["-s", "-u", "a\tb"], "control character"),
    (["-s", "-u", "sysop", "-v", "TLSv1.2"], "-v needs -t"),
    (["-s", "-u", "sysop", "-t", "SSL"], "-t: 'SSL' is not SMTPS or STARTTLS"),
    (["-s", "-u", "sysop", "-t", "SMTPS", "-v", "SSLv3"], "-v: 'SSLv3' is not"),
    (["-s", "-u", "sysop", "-a", "DIGEST-MD5"], "-a: 'DIGEST-MD5' is not"),
    (["-s", "-u", "sysop", "-a", "PLAIN,"], "-a: 'PLAIN,' is not"),
    (["-s", "-u", "sysop", "-a", "XOAUTH2"], "-a: 'XOAUTH2' is not"),
    (["-s", "-u", "sysop", "-p", "0"], "-p: '0' is not a port number"),
    (["-s", "-u", "sysop", "-p", "65536"], "-p: '65536' is not a port number"),
    (["-s", "-u", "sysop", "-p", "25x"], "-p: '25x' is not a port number"),
    (["-s", "-d"], "-s, -d and -i cannot be combined"),
    (["-d", "-i"], "-s, -d and -i cannot be combined"),
    (["-s", "-u", "a", "-s"], "option -s given twice"),
    (["-s", "-u", "a", "-u", "b"], "option -u given twice"),
    (["-d", "-u", "sysop"], "-u, -p, -t, -v and -a go with -s only"),
    (["-i", "-p", "25"], "-u, -p, -t, -v and -a go with -s only"),
    (["-i", "extra"], "unexpected argument 'extra'"),
    (["-sd"], "unknown option '-sd'"),
]


@pytest.mark.parametrize("args,why", BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_bad_usage(t, args, why):
    r = t.cli("smtpauth", *args, check=False)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].startswith("tegami smtpauth: ") and why in lines[0], r.stderr
    assert lines[1].startswith("usage: tegami smtpauth -s -u ACCOUNT [-p PORT] "
                               "[-t SMTPS|STARTTLS [-v TLSv1|TLSv1.1|TLSv1.2|TLSv1.3]] "
                               "[-a METHODS]")
    assert lines[2] == "       tegami smtpauth -d" and lines[3] == "       tegami smtpauth -i"
    assert t.cli("smtpauth", "-i").stdout == "SMTP AUTH : OFF\n"


def test_help(t):
    r = t.cli("smtpauth", "--help")
    assert r.returncode == 0 and "tegami smtpauth -s -u ACCOUNT [-p PORT]" in r.stdout
    r = subprocess.run([TEGAMI.parent / "mpaossmtpauth", "--help"], capture_output=True,
                       text=True, env=dict(os.environ, TEGAMI_DATA=str(t.dir)))
    assert r.returncode == 0 and r.stdout.startswith("usage: mpaossmtpauth -s -u ACCOUNT")


# --- SMTP AUTH and POP-before-SMTP exclude each other (C4) ---------------------

def test_smtpauth_turns_pop_before_smtp_off_and_back(t):
    t.cli("profile", "set", "default", "--pop-host", "pop.example.com", "--pop-account", "sysop",
          "--pop-password-stdin", input="poppw\n")
    assert t.cli("smtpauth", "-i").stdout == ("SMTP AUTH : OFF\n"
                                              "POP BEFORE SMTP : ON\n"
                                              "SMTP SERVER : smtp.example.com\n"
                                              "POP3 SERVER : pop.example.com\n"
                                              "ACCOUNT : sysop\n")
    assert "smarthost login: POP-before-SMTP to pop.example.com:110 as sysop" in \
        t.cli("status", check=False).stdout
    term = smtpauth_tty(t, "-s", "-u", "sysop")
    enter_password(term)
    rc, out, err = term.finish()
    assert rc == 0 and out.startswith("SMTP AUTH : ON\n")
    assert "POP-before-SMTP is no longer used" in err          # the seed's warning
    assert "smarthost login: SMTP AUTH (ALL) as sysop" in t.cli("status", check=False).stdout
    # configuring POP-before-SMTP again turns SMTP AUTH off
    r = t.cli("profile", "set", "default", "--pop-host", "pop.example.com")
    assert "login: pop-before-smtp (was smtp-auth)" in r.stdout
    assert t.cli("smtpauth", "-i").stdout.startswith("SMTP AUTH : OFF\nPOP BEFORE SMTP : ON\n")


def test_without_smtp_server_says_so(tegami_new):
    term = smtpauth_tty(tegami_new, "-s", "-u", "sysop")
    enter_password(term)
    rc, out, err = term.finish()
    assert rc == 0
    assert "SMTP SERVER : \n" in out
    assert "relay.smarthost" in err
    assert "(not set: mail waits)" in tegami_new.cli("status", check=False).stdout
