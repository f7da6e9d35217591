"""The settings and the directory in text form (D3): `tegami config export
--all` / `config import --all` carry domains with their bindings, users
(their password hashes and CRAM-MD5 secrets only with --with-secrets, in a
file of mode 0600), aliases, server access lists and policy lists, as text
or JSON. An import checks everything before it changes anything, changes it
in one transaction, and says what it would change with --dry-run."""
import base64
import hashlib
import hmac
import json
import ssl

from conftest import RawSMTP


def b64(s):
    return base64.b64encode(s.encode()).decode()


def fails(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.count("\n") == 1, (r.stdout, r.stderr)
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def populate(t):
    t.cli("domain", "add", "bound.test", "--bind", "127.0.0.2,::1",
          "--postmaster", "boss@example.test")
    t.add_user("alice@example.test", "alice-pw")
    t.add_user("boss@example.test", "boss-pw")
    t.cli("user", "add", "bob@bound.test", "--password-stdin", "--no-cram-md5",
          input="bob-pw\n")
    t.cli("user", "add", "nologin@example.test", "--no-password")
    t.cli("alias", "add", "team@example.test", "alice@example.test", "bob@bound.test")
    t.cli("access", "add", "submission", "10.0.0.0/8")
    t.cli("access", "add", "submission", "boss@example.test")
    t.cli("list", "add", "smtp-users", "alice@example.test")
    t.cli("list", "add", "exempt", "boss@example.test")
    t.cli("relay", "add", "domain", "partner.test")       # R1, R2: the relay-control lists
    t.cli("relay", "add", "network", "192.0.2.0/24")
    t.cli("refuse", "add", "198.51.100.0/24")
    t.cli("config", "set", "smtp.max_recipients=42", "auth.verify_ids_local=yes")


def directory_text(t):
    """What the admin command lists, for comparing two data directories."""
    return [t.cli(*args).stdout for args in (
        ("domain", "list"), ("user", "list"), ("alias", "list"), ("access", "list"),
        ("list", "show"), ("config", "export"))]


def test_export_all_text_without_secrets(tegami_new):
    t = tegami_new
    populate(t)
    out = t.cli("config", "export", "--all").stdout
    assert out.startswith("#")
    parts = [l for l in out.splitlines() if l.startswith("[")]
    assert parts == ["[settings]", "[domains]", "[users]", "[aliases]", "[access]", "[lists]"]
    for line in ("smtp.max_recipients = 42",
                 "bound.test = postmaster=boss@example.test bind=127.0.0.2,::1",
                 "example.test =", "alice@example.test =", "nologin@example.test =",
                 "team@example.test = alice@example.test", "team@example.test = bob@bound.test",
                 "submission = 10.0.0.0/8", "submission = boss@example.test",
                 "smtp-users = alice@example.test", "trusted = 127.0.0.0/8",
                 "relay-domains = partner.test", "relay-networks = 192.0.2.0/24",
                 "refused = 198.51.100.0/24"):
        assert "\n%s\n" % line in out, line
    assert "$y$" not in out and "password" not in out.split("[users]")[1]
    r = t.cli("config", "export", "--all", "--with-secrets", check=False)
    fails(r, 2, "-o FILE", "0600")
    fails(t.cli("config", "export", "--all", "--xml", check=False), 2, "usage")


def test_round_trip_with_secrets_serves_the_same_directory(tegami_new, tmp_path):
    """Export with secrets to a 0600 file, import into an empty data
    directory: the same listings, the same logins (PLAIN and CRAM-MD5), the
    binding and the lists at work over real sockets."""
    from conftest import Tegami
    t = tegami_new
    populate(t)
    for form in ("text", "json"):
        f = tmp_path / ("all." + form)
        args = ["config", "export", "--all", "--with-secrets", "-o", f]
        r = t.cli(*(args + (["--json"] if form == "json" else [])))
        assert r.stdout.startswith("exported to %s (mode 0600)" % f)
        assert f.stat().st_mode & 0o777 == 0o600
        text = f.read_text()
        assert "$y$" in text
        if form == "json":
            obj = json.loads(text)
            assert obj["domains"]["bound.test"] == {"postmaster": "boss@example.test",
                                                    "bind": ["127.0.0.2", "::1"]}
            assert obj["users"]["nologin@example.test"] == {"password": None}
            assert set(obj["users"]["alice@example.test"]) == {"password", "cram-md5"}
            assert obj["aliases"]["team@example.test"] == ["alice@example.test",
                                                           "bob@bound.test"]
        other = Tegami(tmp_path / form)
        r = other.cli("config", "import", "--all", f)
        assert r.stdout.endswith("change(s) imported from %s\n" % f), r.stdout
        assert "+ domain bound.test (postmaster=boss@example.test bind=127.0.0.2,::1)\n" \
            in r.stdout
        assert "+ user alice@example.test: password and CRAM-MD5 secret\n" in r.stdout
        assert "$y$" not in r.stdout
        assert directory_text(other) == directory_text(t)
        again = tmp_path / ("again." + form)
        other.cli(*(["config", "export", "--all", "--with-secrets", "-o", again] +
                    (["--json"] if form == "json" else [])))
        assert again.read_text() == text
        assert other.cli("config", "import", "--all", f).stdout == \
            "%s: nothing to change\n" % f
    # the text import serves: passwords, CRAM-MD5 secret, smtp-users, binding
    other = Tegami(tmp_path / "text")
    other.start(**{"smtp.listen": "127.0.0.1:%d,127.0.0.2:%d" % (other.port, other.port)})
    try:
        serves_imported_directory(other)
    finally:
        assert other.stop() == 0
        other.check_sanitizers()


def serves_imported_directory(other):
    c = RawSMTP(other.port)
    c.reply()
    c.cmd("EHLO x")
    code, texts = c.cmd("AUTH CRAM-MD5")
    digest = hmac.new(b"alice-pw", base64.b64decode(texts[0]), hashlib.md5).hexdigest()
    assert c.cmd(b64("alice@example.test " + digest))[0] == 235
    c.close()
    c = RawSMTP(other.port)
    c.reply()
    c.cmd("EHLO x")
    c.cmd("STARTTLS")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    c.sock, c.buf = ctx.wrap_socket(c.sock, server_hostname="localhost"), b""
    c.cmd("EHLO x")
    # boss has the right password but is not on smtp-users (auth.verify_ids_local)
    assert c.cmd("AUTH PLAIN " + b64("\0boss@example.test\0boss-pw"))[0] == 535
    c.close()
    for host, want in (("127.0.0.2", 250), ("127.0.0.1", 550)):
        c = RawSMTP(other.port, host=host)
        c.reply()
        c.cmd("EHLO x")
        c.cmd("MAIL FROM:<someone@example.org>")
        assert c.cmd("RCPT TO:<bob@bound.test>")[0] == want
        c.close()


def test_import_without_secrets_keeps_passwords_and_dry_run_changes_nothing(tegami_new,
                                                                            tmp_path):
    t = tegami_new
    populate(t)
    text = t.cli("config", "export", "--all").stdout
    edited = (text.replace("nologin@example.test =\n", "carol@example.test =\n")
                  .replace("bind=127.0.0.2,::1", "bind=127.0.0.3")
                  .replace("smtp.max_recipients = 42", "smtp.max_recipients = 7")
                  .replace("team@example.test = bob@bound.test\n", "")
                  .replace("exempt = boss@example.test\n", "exempt = bob@bound.test\n"))
    f = tmp_path / "edited.txt"
    f.write_text(edited)
    before = directory_text(t)
    r = t.cli("config", "import", "--all", "--dry-run", f)
    expected = [
        "- list exempt boss@example.test",
        "- alias team@example.test -> bob@bound.test",
        "- user nologin@example.test (its Maildir stays on disk)",
        "~ setting smtp.max_recipients: 42 -> 7",
        "~ domain bound.test: postmaster=boss@example.test bind=127.0.0.2,::1 -> "
        "postmaster=boss@example.test bind=127.0.0.3",
        "+ user carol@example.test (no password: set one with tegami user passwd)",
        "+ list exempt bob@bound.test",
        "7 change(s) from %s; nothing changed (--dry-run)" % f,
    ]
    assert r.stdout.splitlines() == expected
    assert directory_text(t) == before
    r = t.cli("config", "import", "--all", f)
    assert r.stdout.splitlines() == expected[:-1] + ["7 change(s) imported from %s" % f]
    assert t.cli("config", "export", "--all").stdout == edited
    assert "carol@example.test\tno-password" in t.cli("user", "list").stdout
    # alice's password was not in the file: it is still hers
    t.start()
    c = RawSMTP(t.port)
    c.reply()
    c.cmd("EHLO x")
    code, texts = c.cmd("AUTH CRAM-MD5")
    digest = hmac.new(b"alice-pw", base64.b64decode(texts[0]), hashlib.md5).hexdigest()
    assert c.cmd(b64("alice@example.test " + digest))[0] == 235
    c.close()


def test_parts_left_out_are_untouched_and_removed_domains_take_their_aliases(tegami_new,
                                                                             tmp_path):
    t = tegami_new
    populate(t)
    t.cli("domain", "add", "old.test")
    t.cli("alias", "add", "x@old.test", "alice@example.test")
    t.cli("alias", "add", "y@example.test", "z@old.test")
    f = tmp_path / "domains.json"
    f.write_text(json.dumps({"domains": {
        "example.test": {}, "bound.test": {"postmaster": "boss@example.test",
                                           "bind": ["127.0.0.2", "::1"]}}}))
    r = t.cli("config", "import", "--all", f)
    assert r.stdout.splitlines() == [
        "- alias x@old.test -> alice@example.test",
        "- alias y@example.test -> z@old.test",
        "- domain old.test",
        "3 change(s) imported from %s" % f]
    assert "old.test" not in t.cli("domain", "list").stdout
    assert "team@example.test\tbob@bound.test" in t.cli("alias", "list").stdout
    assert "smtp-users\talice@example.test" in t.cli("list", "show").stdout
    # a settings-only file (no part header) is the settings part
    s = tmp_path / "s.txt"
    s.write_text("smtp.max_recipients = 9\n")
    assert t.cli("config", "import", "--all", s).stdout.splitlines()[0] == \
        "~ setting smtp.max_recipients: 42 -> 9"
    assert "bound.test" in t.cli("domain", "list").stdout


def test_import_checks_everything_before_changing_anything(tegami_new, tmp_path):
    t = tegami_new
    populate(t)
    good = t.cli("config", "export", "--all").stdout
    before = directory_text(t)
    cases = [
        # (text change, exit status, words of the one error line)
        (("smtp.max_recipients = 42", "smtp.max_recipients = lots"), 2, "line", "max_recipients"),
        (("[lists]", "[nonsense]"), 2, "unknown part"),
        (("alice@example.test =", "alice@example.test = password=plain"), 2, "alice@"),
        (("alice@example.test =", "alice@example.test = cram-md5=abc"), 2, "alice@"),
        (("alice@example.test =", "Bad Name@example.test ="), 2, "not a valid mailbox"),
        (("example.test =\n", "example.test = bind=10.0.0.0/8\n"), 2, "not an IP address"),
        (("example.test =\n", "example.test = color=blue\n"), 2, "postmaster="),
        (("submission = 10.0.0.0/8", "pop3 = 10.0.0.0/8"), 2, "not a listener"),
        (("smtp-users = alice@example.test", "smtp-users = 10.1.1.1"), 2, "not an address"),
        (("trusted = 127.0.0.0/8", "trusted = alice@example.test"), 2, "CIDR"),
        (("relay-domains = partner.test", "relay-domains = 192.0.2.0/24"), 2,
         "not a domain name"),
        (("refused = 198.51.100.0/24", "refused = partner.test"), 2, "CIDR"),
        (("team@example.test = alice@example.test", "team@example.test = team@example.test"),
         2, "itself"),
        (("team@example.test = alice@example.test", "team@example.test = a@elsewhere.test"),
         2, "elsewhere.test is not among the domains"),
        (("bound.test = postmaster=boss@example.test bind=127.0.0.2,::1\n", ""), 2,
         "bound.test is not among the domains"),
        (("alice@example.test =\n", "alice@example.test =\nalice@example.test =\n"), 2,
         "appears twice"),
        (("submission.auth_password = yes", "submission.auth_password = no"),
         2, "nothing changed", "submission.auth_anonymous"),
        (("[access]", "this line has no equals sign\n[access]"), 2, "KEY = VALUE"),
    ]
    for i, (change, code, *needles) in enumerate(cases):
        old, new = change
        assert old in good, old
        f = tmp_path / ("bad%d.txt" % i)
        f.write_text(good.replace(old, new, 1))
        fails(t.cli("config", "import", "--all", f, check=False), code, *needles)
        fails(t.cli("config", "import", "--all", "--dry-run", f, check=False), code, *needles)
    broken = tmp_path / "broken.json"
    broken.write_text('{"users": {"alice@example.test": {"password": 5}}}')
    fails(t.cli("config", "import", "--all", broken, check=False), 2, "alice@example.test")
    broken.write_text('{"smtp.listen": "x"}')
    fails(t.cli("config", "import", "--all", broken, check=False), 2, "unknown part")
    fails(t.cli("config", "import", "--all", tmp_path / "missing", check=False), 1,
          "cannot read")
    fails(t.cli("config", "import", "--all", check=False), 2, "usage")
    fails(t.cli("config", "import", "--all", "--bogus", "x", check=False), 2, "usage")
    full = tmp_path / "full.txt"
    full.write_text(good)
    fails(t.cli("config", "import", full, check=False), 2, "import --all")
    assert directory_text(t) == before
