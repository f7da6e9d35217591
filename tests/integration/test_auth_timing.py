"""AUTH must not tell by its timing whether a user exists (A1, A8): an
unknown user's password is checked against a dummy hash of the same cost as
the stored ones, so the failure comes as late as a known user's.

The two kinds of attempt alternate (known, unknown, unknown, known, ...) in
one session, so that whatever else loads the machine meanwhile falls on both
alike; the medians are compared, which a few slow outliers do not move."""
import base64
import statistics
import time

from conftest import RawSMTP

ROUNDS = 24  # pairs of attempts; each attempt costs one yescrypt hash


def b64(s):
    return base64.b64encode(s.encode()).decode()


def timed_auth(c, user):
    start = time.perf_counter()
    code, texts = c.cmd("AUTH PLAIN " + b64("\0%s\0wrong-password" % user))
    elapsed = time.perf_counter() - start
    assert code == 535, (user, code, texts)
    return elapsed


def test_unknown_user_answers_as_late_as_a_known_one(tegami):
    # No failure delay, no ban: what is left is the credential check itself.
    tegami.set(**{"auth.fail_delay_max": "0", "screen.enabled": "no",
                  "auth.allow_plaintext": "yes", "smtp.max_errors": "10000"})
    time.sleep(1.5)
    c = RawSMTP(tegami.port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO timing.example")[0] == 250
    for user in ("alice@example.test", "nobody@example.test"):  # warm-up
        timed_auth(c, user)
    known, unknown = [], []
    for i in range(ROUNDS):
        pair = [("alice@example.test", known), ("nobody-%d@example.test" % i, unknown)]
        for user, samples in (pair if i % 2 == 0 else pair[::-1]):
            samples.append(timed_auth(c, user))
    c.close()
    mk, mu = statistics.median(known), statistics.median(unknown)
    print("median known %.2f ms, unknown %.2f ms" % (mk * 1000, mu * 1000))
    assert abs(mk - mu) / min(mk, mu) < 0.20, (mk, mu, sorted(known), sorted(unknown))
