"""Drive the real netrepl in a pseudo-terminal, as a person would, and read what they'd see.

`Terminal` wraps pexpect for the pty and pyte for the screen: tests type keys, wait (with a
timeout, never a sleep) for text to appear in the output stream or on the emulated screen, and
can inspect the raw bytes the program wrote, to prove that no peer byte reached them raw.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Sequence

import pexpect
import pyte

ROWS, COLUMNS = 30, 120
# CSI, OSC and two-byte escape sequences: what a terminal consumes rather than shows.
_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_escapes(raw: bytes) -> str:
    """The output with the terminal's control sequences removed, as text."""
    return _ESCAPES.sub(b"", raw).replace(b"\r", b"").decode("utf-8", "replace")


class _AnsweringScreen(pyte.Screen):
    """A screen that answers the program's queries (cursor position) like a real terminal."""

    child: pexpect.spawn

    def write_process_input(self, data: str) -> None:
        self.child.send(data.encode())


class Terminal:
    def __init__(self, args: Sequence[str], env: dict[str, str], timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.raw = bytearray()
        self._searched = 0  # position in the plain text after the last expect()
        self.screen = _AnsweringScreen(COLUMNS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self.child = self.screen.child = pexpect.spawn(
            sys.executable,
            ["-m", "netrepl", *args],
            env=env,
            dimensions=(ROWS, COLUMNS),
            timeout=timeout,
        )

    # ---- reading

    def _pump(self, wait: float) -> bool:
        """Read what is available (waiting up to `wait` s for the first byte)."""
        try:
            data = self.child.read_nonblocking(65536, timeout=wait)
        except pexpect.TIMEOUT:
            return False
        except pexpect.EOF:
            return False
        self.raw += data
        self._stream.feed(data)
        return True

    @property
    def plain(self) -> str:
        return strip_escapes(bytes(self.raw))

    def _wait(self, found: Callable[[], bool], what: str, timeout: float | None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not found():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out waiting for {what}\n--- screen ---\n{self.screen_text()}"
                    f"\n--- output (plain, last 2000) ---\n{self.plain[-2000:]}"
                )
            if not self._pump(min(remaining, 0.2)) and not self.child.isalive():
                self._pump(0)
                if not found():
                    raise AssertionError(
                        f"netrepl exited while waiting for {what}\n{self.plain[-2000:]}"
                    )

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
        """Wait until `pattern` (a regex) appears in the output after the previous match."""
        regex = re.compile(pattern)
        match: re.Match[str] | None = None

        def found() -> bool:
            nonlocal match
            match = regex.search(self.plain, self._searched)
            return match is not None

        self._wait(found, repr(pattern), timeout)
        assert match is not None
        self._searched = match.end()
        return match

    def expect_screen(self, pattern: str, timeout: float | None = None) -> None:
        """Wait until `pattern` (a regex) is on the emulated screen."""
        regex = re.compile(pattern)
        self._wait(lambda: regex.search(self.screen_text()) is not None, repr(pattern), timeout)

    def screen_lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def screen_text(self) -> str:
        return "\n".join(self.screen_lines())

    def expect_prompt(self, timeout: float | None = None) -> None:
        """Wait for the toolbar, which prompt_toolkit draws with every prompt."""
        self.expect(r"view \S+", timeout)

    # ---- typing

    def type(self, keys: str) -> None:
        self.child.send(keys.encode())

    def enter(self, line: str = "") -> None:
        self.type(line + "\r")

    # ---- ending

    def wait_exit(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self.child.isalive() and time.monotonic() < deadline:
            self._pump(0.1)
        self._pump(0)
        if self.child.isalive():
            raise AssertionError(f"netrepl did not exit\n{self.plain[-2000:]}")
        self.child.close()
        return self.child.exitstatus if self.child.exitstatus is not None else -1

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def terminal_env(state_dir: str) -> dict[str, str]:
    """An environment for a child netrepl: a known terminal and private state."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NO_COLOR", "COLUMNS", "LINES"))
    }
    env.update(
        TERM="xterm-256color",
        XDG_STATE_HOME=state_dir,
        PYTHONUNBUFFERED="1",
    )
    return env
