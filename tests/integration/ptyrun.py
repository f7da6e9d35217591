"""A command on a pseudo-terminal of its own: the terminal is its controlling
terminal (where `tegami smtpauth` asks the password, through /dev/tty), while
standard output and standard error stay on pipes, so the test sees both what
the terminal shows (prompts, echo or no echo) and the exact output."""
import fcntl
import os
import select
import subprocess
import termios
import time


class Terminal:
    def __init__(self, argv, env=None):
        self.master, slave = os.openpty()

        def controlling_tty():
            # start_new_session made us a session leader: the terminal on
            # fd 0 becomes our controlling terminal.
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([str(a) for a in argv], stdin=slave,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, preexec_fn=controlling_tty,
                                     env=env)
        os.close(slave)
        self.screen = b""

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:          # EIO: every slave end is closed
            return False
        self.screen += data
        return bool(data)

    def expect(self, text, timeout=10):
        """Waits until the terminal has shown text (after what was seen so far)."""
        text = text.encode() if isinstance(text, str) else text
        deadline = time.time() + timeout
        while text not in self.screen:
            if time.time() > deadline or (self.proc.poll() is not None and not self._read(0.1)):
                raise AssertionError("terminal never showed %r; it shows %r (stderr %r)" %
                                     (text, self.screen, self.proc.stderr.read()
                                      if self.proc.poll() is not None else b""))
            self._read(0.1)

    def count(self, text):
        return self.screen.count(text.encode())

    def type(self, text):
        os.write(self.master, text.encode() if isinstance(text, str) else text)

    def finish(self, timeout=20):
        """Waits for the exit: (status, stdout, stderr) as text."""
        out, err = self.proc.communicate(timeout=timeout)
        while self._read(0.05):
            pass
        os.close(self.master)
        return self.proc.returncode, out.decode(), err.decode()

    @property
    def shown(self):
        """The terminal's text with its CR LF line ends made LF."""
        return self.screen.decode("utf-8", "replace").replace("\r\n", "\n")
