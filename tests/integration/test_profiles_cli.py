"""`tegami profile` (MISSION X1, X2; seed 004 SMTP server settings): list, add,
set, del, show, the connection test against a live relay and a closed port,
adding even when the test fails, export of all or selected profiles,
import as "new" (only absent IDs) or "update" (overwrite), and the default
profile's protections (never deleted, exported or imported). Secrets are
never printed nor exported."""
import json
import socket
import sqlite3

import pytest

from conftest import free_port
from test_smarthost import RELAY_PW, RELAY_USER, relay  # noqa: F401

SECRET = "pr0file-Secret"


def add(t, pid, *opts, secret=None):
    args = ["profile", "add", pid, *opts]
    if secret is not None:
        args.append("--password-stdin")
    return t.cli(*args, input=(secret + "\n") if secret is not None else None, check=False)


def rows(t):
    out = t.cli("profile", "list").stdout.splitlines()
    assert out[0].split() == ["ID", "HOST", "PORT", "DEFAULT"]
    return [line.split() for line in out[1:]]


def show(t, pid):
    r = t.cli("profile", "show", pid)
    return dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                for line in r.stdout.splitlines())


def test_list_add_show_set_del(tegami_new):
    t = tegami_new
    assert rows(t) == [["default", "-", "25", "*"]]
    r = add(t, "tenant-a.example", "--host", "smtp.tenant-a.example", "--port", "587",
            "--starttls", "yes", "--auth", "PLAIN,LOGIN", "--account", "app@tenant-a.example",
            "--xmailer", "Tenant A Mailer", "--debug", "yes", "--connect-timeout", "5000",
            "--timeout", "20000", "--property", "helo=out.tenant-a.example", secret=SECRET)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "profile tenant-a.example added: smtp.tenant-a.example:587 for " \
                       "tenant-a.example\n"
    assert rows(t) == [["default", "-", "25", "*"],
                       ["tenant-a.example", "smtp.tenant-a.example", "587"]]
    s = show(t, "tenant-a.example")
    assert s["default"] == "no" and s["starttls"] == "yes" and s["ssl"] == "no"
    assert s["login"] == "smtp-auth" and s["auth"] == "PLAIN,LOGIN"
    assert s["account"] == "app@tenant-a.example" and s["password"] == "(set)"
    assert s["xmailer"] == "Tenant A Mailer" and s["debug"] == "yes"
    assert s["connect_timeout_ms"] == "5000" and s["timeout_ms"] == "20000"
    assert s["properties"] == "helo=out.tenant-a.example"
    assert s["senders"] == "tenant-a.example"          # named after its domain
    assert s["tls_protocol"] == "TLSv1.3"
    # set: implicit TLS replaces STARTTLS; a property changed, one added, one removed
    t.cli("profile", "set", "tenant-a.example", "--ssl", "yes", "--port", "465",
          "--property", "helo=mx.tenant-a.example", "--property", "max_messages=5")
    t.cli("profile", "set", "tenant-a.example", "--property", "helo=")
    s = show(t, "tenant-a.example")
    assert s["ssl"] == "yes" and s["starttls"] == "no" and s["port"] == "465"
    assert s["properties"] == "max_messages=5"
    # a group of local users under a name of its own
    r = add(t, "billing", "--host", "10.0.0.9", "--senders", "Invoice@Example.Test,bill@example.test")
    assert r.returncode == 0, r.stderr
    assert show(t, "billing")["senders"] == "invoice@example.test,bill@example.test"
    assert t.cli("profile", "del", "billing").stdout == "profile billing deleted\n"
    assert [r[0] for r in rows(t)] == ["default", "tenant-a.example"]
    # secrets never on screen nor in the table in the clear
    for verb in ("list", "show tenant-a.example", "export --all"):
        assert SECRET not in t.cli("profile", *verb.split()).stdout
    db = sqlite3.connect(t.dir / "tegami.db")
    (sealed,) = db.execute("SELECT auth_sealed FROM smtp_profiles WHERE id = 'tenant-a.example'").fetchone()
    db.close()
    assert sealed.startswith("v1:") and SECRET not in sealed


def test_default_profile_protections(tegami_new):
    t = tegami_new
    r = t.cli("profile", "del", "default", check=False)
    assert r.returncode == 1 and "cannot be deleted" in r.stderr
    r = add(t, "default", "--host", "x.example")
    assert r.returncode == 2 and "built in" in r.stderr
    r = t.cli("profile", "export", "default", check=False)
    assert r.returncode == 1 and "cannot be exported" in r.stderr and r.stdout == ""
    # --all leaves it out too
    doc = json.loads(t.cli("profile", "export", "--all").stdout)
    assert doc["profiles"] == []
    # it has no sender list: it serves every other sender
    r = t.cli("profile", "set", "default", "--senders", "a.example", check=False)
    assert r.returncode == 2 and "no sender list" in r.stderr
    # its host is the setting relay.smarthost
    t.cli("profile", "set", "default", "--host", "smtp.example.com")
    assert t.cli("config", "get", "relay.smarthost").stdout == "smtp.example.com\n"
    t.set(relay__smarthost="other.example.com")
    assert show(t, "default")["host"] == "other.example.com (relay.smarthost)"
    assert rows(t)[0] == ["default", "other.example.com", "25", "*"]


BAD = [
    (["--host", "not a host"], "is not a host name"),
    (["--port", "0"], "--port: '0' is not a number"),
    (["--ssl", "yes", "--starttls", "yes"], "exclude each other"),
    (["--ssl", "maybe"], "is not yes or no"),
    (["--tls-protocol", "SSLv3"], "--tls-protocol"),
    (["--auth", "DIGEST-MD5"], "--auth"),
    (["--auth", "PLAIN", "--pop-host", "pop.example"], "exclude each other"),
    (["--auth", "PLAIN"], "SMTP AUTH needs an account"),
    (["--xmailer", "a\nBcc: evil@example"], "control characters"),
    (["--property", "colour=blue"], "unknown property"),
    (["--timeout", "-1"], "--timeout"),
    (["--senders", "not a domain"], "--senders"),
    (["--bogus", "1"], "unknown option"),
    (["--pop-host", "pop.example"], "POP-before-SMTP needs a POP3 server and an account"),
]


@pytest.mark.parametrize("opts,why", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_change_nothing(tegami_new, opts, why):
    r = add(tegami_new, "t.example", "--host", "smtp.t.example", *opts)
    assert r.returncode == 2, r.stdout
    assert why in r.stderr
    assert [row[0] for row in rows(tegami_new)] == ["default"]


def test_ids_and_senders(tegami_new):
    t = tegami_new
    assert add(t, "Bad ID", "--host", "h.example").returncode == 2
    assert add(t, "x" * 65, "--host", "h.example").returncode == 2
    r = add(t, "nodomain", "--host", "h.example")       # neither a domain nor senders
    assert r.returncode == 2 and "needs the senders" in r.stderr
    assert add(t, "A.Example", "--host", "h.example").returncode == 0
    assert rows(t)[1][0] == "a.example"                 # IDs are lower case
    r = add(t, "a.example", "--host", "h.example")
    assert r.returncode == 1 and "exists" in r.stderr
    # a sender served by two profiles would be a coin toss: refused
    r = add(t, "second", "--host", "h.example", "--senders", "b.example,A.example")
    assert r.returncode == 2 and "a.example is already served by profile a.example" in r.stderr
    r = t.cli("profile", "set", "nope", "--port", "26", check=False)
    assert r.returncode == 1 and "no profile nope" in r.stderr
    r = t.cli("profile", "show", "nope", check=False)
    assert r.returncode == 1


def test_export_selected_and_all(tegami_new):
    t = tegami_new
    add(t, "a.example", "--host", "smtp.a.example", "--auth", "ALL", "--account", "u@a.example",
        secret=SECRET)
    add(t, "b.example", "--host", "smtp.b.example", "--port", "2525", "--pop-host",
        "pop.b.example", "--pop-tls", "pop3s", "--pop-port", "995", "--pop-account", "u")
    t.cli("profile", "set", "b.example", "--pop-password-stdin", input="pop-Secret\n")
    out = t.cli("profile", "export", "--all").stdout
    assert SECRET not in out and "pop-Secret" not in out and "v1:" not in out
    doc = json.loads(out)
    assert doc["format"] == "tegami-smtp-profiles" and doc["version"] == 1
    assert [p["id"] for p in doc["profiles"]] == ["a.example", "b.example"]
    a = doc["profiles"][0]
    assert a == {"id": "a.example", "host": "smtp.a.example", "port": 25, "ssl": False,
                 "starttls": False, "tls_protocol": "TLSv1.3", "tls_verify": False,
                 "login": "smtp-auth", "auth": "ALL", "account": "u@a.example", "xmailer": "",
                 "debug": False, "connect_timeout_ms": 0, "timeout_ms": 0, "properties": {},
                 "senders": ["a.example"],
                 "pop_before_smtp": {"host": "", "port": 110, "tls": "none", "account": ""}}
    assert doc["profiles"][1]["pop_before_smtp"] == {"host": "pop.b.example", "port": 995,
                                                     "tls": "pop3s", "account": "u"}
    assert doc["profiles"][1]["login"] == "pop-before-smtp"
    # no argument is --all; selected ones only
    assert json.loads(t.cli("profile", "export").stdout) == doc
    sel = json.loads(t.cli("profile", "export", "B.example").stdout)
    assert [p["id"] for p in sel["profiles"]] == ["b.example"]
    r = t.cli("profile", "export", "a.example", "zzz.example", check=False)
    assert r.returncode == 1 and "no profile zzz.example" in r.stderr and r.stdout == ""


def test_import_new_and_update(tegami_new, tmp_path):
    t = tegami_new
    add(t, "a.example", "--host", "smtp.a.example", "--auth", "ALL", "--account", "u@a.example",
        secret=SECRET)
    doc = json.loads(t.cli("profile", "export", "--all").stdout)
    a = doc["profiles"][0]
    a["port"] = 587
    a["starttls"] = True
    b = dict(a, id="b.example", host="smtp.b.example", senders=["b.example"], account="v")
    dflt = dict(a, id="default", senders=[])
    doc["profiles"] = [a, b, dflt]
    f = tmp_path / "profiles.json"
    f.write_text(json.dumps(doc))
    # new: only the absent ID goes in; the existing one and the default are left
    r = t.cli("profile", "import", "--mode", "new", f)
    assert r.stdout.splitlines() == [
        "skipped a.example (exists; --mode update overwrites)",
        "added b.example",
        "skipped default (the default profile is never imported)",
        "imported: 1 added, 0 updated, 2 skipped"]
    assert show(t, "a.example")["port"] == "25"
    assert show(t, "b.example")["password"] == "(not set)"   # secrets never travel
    # update: overwritten, and a.example keeps the password it had
    r = t.cli("profile", "import", "--mode", "update", f)
    assert r.stdout.splitlines()[:2] == ["updated a.example", "updated b.example"]
    s = show(t, "a.example")
    assert s["port"] == "587" and s["starttls"] == "yes" and s["password"] == "(set)"
    assert show(t, "default")["host"] == " (relay.smarthost)"  # untouched


def test_import_checks_everything_first(tegami_new, tmp_path):
    t = tegami_new
    doc = {"format": "tegami-smtp-profiles", "version": 1, "profiles": [
        {"id": "ok.example", "host": "smtp.ok.example", "senders": ["ok.example"]},
        {"id": "bad.example", "host": "smtp.bad.example", "senders": ["bad.example"],
         "port": 70000}]}
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    r = t.cli("profile", "import", "--mode", "update", f, check=False)
    assert r.returncode == 2 and "profile bad.example" in r.stderr
    assert [row[0] for row in rows(t)] == ["default"]             # nothing imported
    doc["profiles"][1] = {"id": "bad.example", "host": "h", "password": "x",
                          "senders": ["bad.example"]}
    f.write_text(json.dumps(doc))
    r = t.cli("profile", "import", "--mode", "new", f, check=False)
    assert r.returncode == 2 and "unknown key password" in r.stderr
    # two profiles claiming one sender
    doc["profiles"][1] = {"id": "dup", "host": "h.example", "senders": ["ok.example"]}
    f.write_text(json.dumps(doc))
    r = t.cli("profile", "import", "--mode", "new", f, check=False)
    assert r.returncode == 1 and "already served" in r.stderr and "nothing imported" in r.stderr
    assert [row[0] for row in rows(t)] == ["default"]
    f.write_text("{not json")
    assert t.cli("profile", "import", "--mode", "new", f, check=False).returncode == 2
    f.write_text(json.dumps({"profiles": []}))
    r = t.cli("profile", "import", "--mode", "new", f, check=False)
    assert r.returncode == 2 and "not a profile export" in r.stderr
    r = t.cli("profile", "import", f, check=False)
    assert r.returncode == 2 and "--mode new|update" in r.stderr
    r = t.cli("profile", "import", "--mode", "merge", f, check=False)
    assert r.returncode == 2


# --- the connection test (seed 004: 接続テスト) -----------------------------------

def test_connection_test_against_a_live_relay(tegami_new, relay):
    p = relay()
    t = tegami_new
    t.cli("profile", "set", "default", "--host", "127.0.0.2", "--port", p.submission_port,
          "--starttls", "yes", "--auth", "CRAM-MD5", "--account", RELAY_USER,
          "--password-stdin", input=RELAY_PW + "\n")
    r = t.cli("profile", "test", "default", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == ("profile default: 127.0.0.2:%d, TLS starttls (TLSv1.3 or newer), "
                        "login SMTP AUTH (CRAM-MD5) as %s" % (p.submission_port, RELAY_USER))
    want = ["* connecting to 127.0.0.2[127.0.0.2]:%d" % p.submission_port, "< 220 ",
            "> EHLO ", "< 250", "> STARTTLS", "< 220 ", "* TLS established: TLSv1.3",
            "> EHLO ", "< 250-", "> AUTH CRAM-MD5", "< 334 ", "> ****", "< 235 ",
            "* authenticated with CRAM-MD5", "> QUIT", "< 221 ", "test: OK"]
    i = 0
    for line in lines[1:]:
        if i < len(want) and line.startswith(want[i]):
            i += 1
    assert i == len(want), "missing %r in\n%s" % (want[i], r.stdout)
    assert RELAY_PW not in r.stdout + r.stderr
    # a wrong password: the relay's 535, and a failure exit
    t.cli("profile", "set", "default", "--password-stdin", input="wrong\n")
    r = t.cli("profile", "test", "default", check=False)
    assert r.returncode == 1
    assert "< 535 5.7.8" in r.stdout and r.stdout.splitlines()[-1].startswith("test: FAILED: 535")


def test_connection_test_pop_before_smtp(tegami_new, relay):
    p = relay()
    t = tegami_new
    t.cli("profile", "add", "pop.example", "--host", "127.0.0.2", "--port", p.port,
          "--pop-host", "127.0.0.2", "--pop-port", p.pop3s_port, "--pop-tls", "pop3s",
          "--pop-account", RELAY_USER, "--pop-password-stdin", input=RELAY_PW + "\n")
    r = t.cli("profile", "test", "pop.example", check=False)
    assert r.returncode == 0, r.stdout
    out = r.stdout
    assert "> USER %s" % RELAY_USER in out and "> PASS ****" in out and "* logged in" in out
    assert out.index("* logged in") < out.index("> EHLO")
    assert RELAY_PW not in out


def test_connection_test_against_a_closed_port(tegami_new):
    t = tegami_new
    port = free_port()
    r = add(t, "closed.example", "--host", "127.0.0.1", "--port", str(port), "--test")
    # the seed: registering is allowed even when the test fails
    assert r.returncode == 0
    assert "test: FAILED" in r.stdout and "connection refused" in r.stdout.lower()
    assert "saved anyway" in r.stderr
    assert rows(t)[1][:3] == ["closed.example", "127.0.0.1", str(port)]
    r = t.cli("profile", "test", "closed.example", check=False)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1].startswith("test: FAILED: 4.4.1 cannot connect to "
                                                "127.0.0.1[127.0.0.1]:%d" % port)
    # a name that does not resolve
    t.cli("profile", "set", "closed.example", "--host", "no-such-host.invalid")
    r = t.cli("profile", "test", "closed.example", check=False)
    assert r.returncode == 1 and "cannot find the address of no-such-host.invalid" in r.stdout


def test_connection_test_without_host(tegami_new):
    r = tegami_new.cli("profile", "test", "default", check=False)
    assert r.returncode == 1
    assert "relay.smarthost" in r.stdout


def test_help_lists_the_commands(tegami_new):
    out = tegami_new.cli("--help").stdout
    for verb in ("list", "add", "set", "del", "show", "test", "export", "import"):
        assert "tegami profile %s" % verb in out
    assert "tegami smtpauth -s -u ACCOUNT" in out
    r = tegami_new.cli("profile", "frob", check=False)
    assert r.returncode == 2 and "unknown subcommand 'profile frob'" in r.stderr
