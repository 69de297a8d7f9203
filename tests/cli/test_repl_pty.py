"""``sandglass repl`` in a real pseudo-terminal: random lines, commands, bytes that are not UTF-8, Ctrl-C, Ctrl-D."""

from __future__ import annotations

import os
import pty
import random
import re
import select
import signal
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.cli.runs import make_run

TIMEOUT = 60.0
CTRL_C, CTRL_D = b"\x03", b"\x04"
ESCAPE_SEQUENCE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")
PROMPT = b"> "  # after escape sequences are removed; no line the test types holds ">"
# Printable text only: the terminal and readline give control characters (Ctrl-Z, Ctrl-S, Tab …) their own meaning.
ALPHABET = (
    [chr(c) for c in range(0x20, 0x7F) if chr(c) != ">"]
    + list("äöüßéèçñ漢字かな")
    + ["😀", "🇩🇪", "שלום", "مرحبا", "e\u0301", "\u200f", "\u2028"]
)


class Terminal:
    """A child process on the slave side of a pseudo-terminal; everything it prints is collected as bytes."""

    def __init__(self, args: list[str], **variables: str) -> None:
        environment = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40", "OMP_NUM_THREADS": "1"}
        environment.update(variables)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the program, nothing else
            # As from an interactive shell: a test run started in the background (`cmd &`) ignores SIGINT, and
            # Python keeps an ignored SIGINT ignored, so Ctrl-C would never reach the REPL.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execvpe(sys.executable, [sys.executable, *args], environment)
        self.output = b""
        self.status: int | None = None
        self.reaped: int | None = None  # the raw wait status, once the child is reaped

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False once the child has closed the terminal."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the child exited
            return False
        self.output += chunk
        return bool(chunk)

    def text(self) -> bytes:
        return ESCAPE_SEQUENCE.sub(b"", self.output)

    def wait_for(self, shown: bytes, count: int = 1) -> None:
        """Wait until ``shown`` has been printed ``count`` times (escape sequences left out)."""
        deadline = time.monotonic() + TIMEOUT
        while self.text().count(shown) < count:
            if time.monotonic() > deadline or not self._read(0.1):
                self.close()
                raise AssertionError(f"{shown!r} never came; output:\n{self.text().decode(errors='replace')}")

    def wait_for_prompt(self, count: int) -> None:
        """Wait until the prompt has been shown ``count`` times."""
        self.wait_for(PROMPT, count)

    def wait_until_reading(self, timeout: float = 5.0) -> None:
        """Wait until readline has taken the terminal out of canonical mode (it reads keys itself then).

        Keys sent before that are read in canonical mode, and a Ctrl-D there would be lost in the switch.
        Without readline the terminal stays canonical, which reads typed-ahead keys correctly.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and termios.tcgetattr(self.fd)[3] & termios.ICANON:
            self._read(0.01)

    def send(self, data: bytes) -> None:
        self.wait_until_reading()
        os.write(self.fd, data)

    def exited_within(self, seconds: float) -> bool:
        """Whether the child exits within ``seconds`` (its status is kept for :meth:`wait_for_exit`)."""
        deadline = time.monotonic() + seconds
        while self.reaped is None and time.monotonic() < deadline:
            self._read(0.05)
            waited, status = os.waitpid(self.pid, os.WNOHANG)
            if waited:
                self.reaped = status
        return self.reaped is not None

    def wait_for_exit(self) -> int:
        deadline = time.monotonic() + TIMEOUT
        while self.reaped is None and time.monotonic() < deadline and self._read(0.1):
            pass
        waited, status = (self.pid, self.reaped) if self.reaped is not None else (0, 0)
        while waited == 0 and time.monotonic() < deadline:
            waited, status = os.waitpid(self.pid, os.WNOHANG)
            time.sleep(0.05)
        if waited == 0:
            self.close()
            raise AssertionError(f"the REPL did not exit; output:\n{self.text().decode(errors='replace')}")
        os.close(self.fd)
        self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            os.close(self.fd)
            self.status = -signal.SIGKILL


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "run", max_length=8)


def start_repl(run_dir: Path, **variables: str) -> Terminal:
    terminal = Terminal(["-m", "sandglass", "repl", "--checkpoint", str(run_dir), "--device", "cpu"], **variables)
    terminal.wait_for_prompt(1)
    return terminal


def random_lines(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        length = rng.choice([0, 1, 3, 10, 40, 200])
        line = "".join(rng.choice(ALPHABET) for _ in range(length))
        if line.strip().startswith(":"):
            line = "x" + line  # a command such as :q would end the session early
        lines.append(line.encode("utf-8"))
    return lines


def assert_no_crash(terminal: Terminal) -> None:
    text = terminal.text().decode("utf-8", errors="replace")
    assert "Traceback" not in text and "error:" not in text, text


# How Python decodes a terminal's input: surrogateescape in the C and C.UTF-8 locales, strict in most others.
@pytest.mark.parametrize("stdin_errors", ["surrogateescape", "strict"])
def test_random_lines_commands_and_ctrl_d_leave_cleanly(run_dir, stdin_errors):
    """Fault: the REPL fed random lines, bad bytes and commands through a terminal, then EOF (Ctrl-D)."""
    terminal = start_repl(run_dir, PYTHONIOENCODING=f"utf-8:{stdin_errors}")
    commands = [b":help", b":beam 2", b"s01 s02 s03", b":beam zero", b":frobnicate", b"", b"   ", b"s05 " * 30]
    not_utf8 = [b"\xff\xfe\xfd", b"s01 \xc3( s02", b"\xed\xa0\x80"]  # invalid bytes, a lone surrogate's encoding
    lines = commands + not_utf8 + random_lines(12, seed=7)
    for number, line in enumerate(lines, start=2):
        terminal.send(line + b"\r")
        terminal.wait_for_prompt(number)
    terminal.send(CTRL_D)
    assert terminal.wait_for_exit() == 0
    assert_no_crash(terminal)
    text = terminal.text()
    assert b":beam N" in text and b"beam size 2" in text and b"unknown command :frobnicate" in text
    assert text.count(b" ms, beam 2") >= len(not_utf8) + 2  # every sentence line was translated


def test_ctrl_c_at_the_prompt_leaves_with_status_0(run_dir):
    """Fault: Ctrl-C at the prompt, with a half-typed line, through a terminal (documented: it leaves, status 0)."""
    terminal = start_repl(run_dir)
    terminal.send(b"s01 s02\r")
    terminal.wait_for_prompt(2)
    terminal.send(b"s03 half typed")
    terminal.wait_for(b"s03 half typed")
    # Python's readline loop can miss a SIGINT that arrives while it handles a key (a CPython race, not ours),
    # more often on a busy machine: like a person, press Ctrl-C again when nothing happens.
    for _ in range(10):
        time.sleep(0.3)
        terminal.send(CTRL_C)
        if terminal.exited_within(3.0):
            break
    assert terminal.wait_for_exit() == 0
    assert_no_crash(terminal)
    assert terminal.text().count(b" ms, beam 1") == 1
