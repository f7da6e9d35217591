"""A client that sends everything and then half-closes (shutdown(SHUT_WR),
as `printf ... | nc -N` does) still gets every reply, and its message is
delivered (S1, S5)."""
import socket


def test_half_close_gets_all_replies(tegami):
    s = socket.create_connection(("127.0.0.1", tegami.port), timeout=10)
    s.sendall(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
              b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    codes = [line[:4] for line in data.split(b"\r\n") if line]
    assert codes[0] == b"220 "
    assert b"250 2.0.0 Ok: queued as " in data
    assert codes[-1] == b"221 "
    tegami.wait_messages("alice@example.test", 1)


def test_half_close_mid_command_closes_cleanly(tegami):
    s = socket.create_connection(("127.0.0.1", tegami.port), timeout=10)
    s.sendall(b"EHLO x\r\nNOOP")   # an unfinished line, then EOF
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.count(b"\r\n250 ") == 1  # the EHLO reply's last line, nothing for "NOOP"
