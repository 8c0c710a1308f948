"""The prompt and the toolbar under a flood, as a terminal shows them: netrepl in a pty whose
output a terminal emulator (pyte) draws, while a flooder sends at full rate; every 50 ms the
emulated screen is sampled, once everything that had arrived is drawn, and a sample counts
when both the prompt and the toolbar are on it. One row per view (utf-8, hex, auto, gbk).

pyte draws ~180 KB/s, slower than any real terminal: the worst case for a frame being caught
half drawn. The reference is the number of samples taken; the target is the issue's, 95%.
"""

from __future__ import annotations

import re
import time

import pyte

from benchmarks.bench import Bench
from benchmarks.processes import COLUMNS, ROWS, BenchmarkError, Processes, Pty
from benchmarks.results import Quantity, Row

SAMPLE_SECONDS = 0.05
TARGET = 0.95
VIEWS = (("utf8", "lines"), ("hex", "binary"), ("auto", "lines"), ("gbk", "lines"))
TOOLBAR = re.compile(r"^ \S+ \S+  connected  .*│  rx [\d,]+ B(?:  tx [\d,]+ B)?$")
PROMPT = re.compile(r"^(?:\S+ )?>(?: |$)")


class _AnsweringScreen(pyte.Screen):
    """A pyte screen that answers cursor position requests through the pty, as a terminal
    does (prompt_toolkit draws its toolbar only once it has an answer)."""

    pty: Pty

    def write_process_input(self, data: str) -> None:
        self.pty.send(data.encode())


class EmulatedTerminal:
    """A pty drawn by pyte: `pump` reads and draws what arrived; `lines` is the screen."""

    def __init__(self, pty: Pty) -> None:
        self.pty = pty
        self.screen = _AnsweringScreen(COLUMNS, ROWS)
        self.screen.pty = pty
        self._stream = pyte.ByteStream(self.screen)

    def pump(self, timeout: float) -> bool:
        data = self.pty.read(timeout)
        if data:
            self._stream.feed(data)
        return bool(data)

    def drain(self, limit: float = 0.5) -> None:
        """Draw everything that has arrived (reading for at most `limit` s)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.pump(0):
            pass

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_for(self, pattern: str, timeout: float, what: str) -> None:
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while not regex.search("\n".join(self.lines())):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchmarkError(f"timed out after {timeout:g} s waiting for {what}")
            if not self.pump(min(remaining, 0.2)) and self.pty.eof:
                raise BenchmarkError(f"netrepl exited while waiting for {what}")


def prompt_and_toolbar_shown(lines: list[str]) -> bool:
    toolbars = [i for i, line in enumerate(lines) if TOOLBAR.match(line)]
    prompts = [i for i, line in enumerate(lines) if PROMPT.match(line)]
    return bool(toolbars) and bool(prompts) and min(prompts) < max(toolbars)


def sample(terminal: EmulatedTerminal, count: int) -> int:
    """Of `count` samples SAMPLE_SECONDS apart, how many show the prompt and the toolbar."""
    shown = 0
    next_at = time.monotonic() + SAMPLE_SECONDS
    for _ in range(count):
        while (left := next_at - time.monotonic()) > 0:
            terminal.pump(left)
        next_at += SAMPLE_SECONDS
        terminal.drain()
        shown += prompt_and_toolbar_shown(terminal.lines())
    return shown


def quit_netrepl(terminal: EmulatedTerminal, timeout: float = 20.0) -> int:
    terminal.pty.send(b"/quit\r")
    deadline = time.monotonic() + timeout
    process = terminal.pty.process
    while process.poll() is None and time.monotonic() < deadline:
        terminal.pty.read(0.1)  # read without drawing: only the exit matters now
    if process.poll() is None:
        raise BenchmarkError(f"netrepl did not exit within {timeout:g} s of /quit")
    return process.returncode


def prompt_visible(bench: Bench) -> list[Row]:
    seconds = 1.0 if bench.quick else 4.0
    count = int(seconds / SAMPLE_SECONDS)
    rows = []
    for view, pattern in VIEWS:
        row = Row(
            f"prompt and toolbar on screen under flood ({view} view, {count} samples 50 ms"
            " apart, pyte)",
            "ratio_min",
            TARGET,
            reference_name="samples taken",
        )
        with Processes(bench.state_dir) as procs:
            flooder = procs.peer(
                "flood", "--seconds", str(seconds + 10), "--wait-line", "--pattern", pattern
            )
            terminal = EmulatedTerminal(procs.pty(["--view", view, "127.0.0.1", str(flooder.port)]))
            terminal.wait_for(r"^ \S+ \S+  connected  │  view .*tx 0 B$", 30, "the first prompt")
            terminal.pty.send(b"go\r")
            first_row = r"^[0-9a-f]{8}  [0-9a-f]{2} " if view == "hex" else r"^\d{8} "
            terminal.wait_for(first_row, 10, "the flood on screen")
            shown = sample(terminal, count)
            status = quit_netrepl(terminal)
        row.netrepl = Quantity(shown, "samples")
        row.reference = Quantity(count, "samples")
        row.details = {"view": view, "pattern": pattern, "netrepl_exit_status": status}
        if status != 0:
            row.check_failed = True
            row.note = f"netrepl exited {status} after /quit"
        rows.append(row)
    return rows
