"""Smoke test: smtplib delivers one message to a local user (S1, S5)."""
import smtplib


def test_smtplib_delivers_to_local_user(tegami):
    with smtplib.SMTP("127.0.0.1", tegami.port, timeout=10) as s:
        s.ehlo("client.example")
        s.sendmail("sender@example.org", ["alice@example.test"],
                   b"Subject: hi\r\n\r\nhello\r\n")
    msgs = tegami.wait_messages("alice@example.test", 1)
    body = list(msgs.values())[0]
    assert body.startswith(b"Return-Path: <sender@example.org>\nReceived: from client.example")
    assert body.endswith(b"Subject: hi\n\nhello\n")
