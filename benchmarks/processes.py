"""Child processes for the benchmarks: peers, netrepl in a pipe or in a pty, and their clean-up.

Every process is started through a `Processes` registry, which kills whatever is still alive
when the figure ends, however it ends; every wait has a timeout. Loopback only: the peers bind
127.0.0.1 and netrepl is pointed at them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ROWS, COLUMNS = 40, 120
TAIL_BYTES = 64 * 1024
# CSI, OSC and two-byte escape sequences: what a terminal consumes rather than shows.
ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


class BenchmarkError(RuntimeError):
    """A measurement could not be made (a peer failed, a wait timed out, netrepl died)."""


def netrepl_command() -> list[str]:
    """The installed `netrepl` console script next to this interpreter, as a user runs it."""
    script = Path(PYTHON).parent / "netrepl"
    return [str(script)] if script.exists() else [PYTHON, "-m", "netrepl"]


def child_env(state_dir: Path, *, term: bool = False) -> dict[str, str]:
    """An environment with private state and config (no history or config of the user's)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NO_COLOR", "COLUMNS", "LINES"))
    }
    env.update(
        XDG_STATE_HOME=str(state_dir),
        XDG_CONFIG_HOME=str(state_dir),
        PYTHONUNBUFFERED="1",
    )
    if term:
        env["TERM"] = "xterm-256color"
    return env


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (KiB) of a live process, from /proc/PID/status."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    if len(values) != 2:
        raise BenchmarkError(f"no VmRSS/VmHWM for pid {pid}")
    return values


def _take_controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Pty:
    """A child on a pseudo-terminal: send keys, and read its output (the caller must keep
    reading, as a terminal does, or the child blocks on its writes)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        try:
            self.process = subprocess.Popen(
                list(argv),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=cwd,
                start_new_session=True,
                # The pty becomes the child's controlling terminal, as in a real terminal:
                # Ctrl-C typed while prompt_toolkit is in cooked mode then arrives as SIGINT.
                preexec_fn=_take_controlling_terminal,
                close_fds=True,
            )
        finally:
            os.close(slave)
        self.fd = master
        self.eof = False
        self.tail = bytearray()
        """The last TAIL_BYTES of output, for a report when something goes wrong."""
        # NETREPL_BENCH_PTY_LOG=DIR keeps each pty's whole output (to reproduce a hang).
        log_dir = os.environ.get("NETREPL_BENCH_PTY_LOG")
        self._log = (
            open(Path(log_dir) / f"pty-{self.process.pid}.raw", "wb") if log_dir else None  # noqa: SIM115
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self, timeout: float) -> bytes:
        """What the child wrote, waiting up to `timeout` s for something; b"" if nothing."""
        if self.eof:
            return b""
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError:  # EIO: the child closed the terminal (it exited)
            data = b""
        if not data:
            self.eof = True
        self.tail += data
        if self._log is not None:
            self._log.write(data)
        if len(self.tail) > TAIL_BYTES:
            del self.tail[: len(self.tail) - TAIL_BYTES]
        return data

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def close(self) -> None:
        kill(self.process)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if self._log is not None:
            self._log.close()


CURSOR_POSITION_REQUEST = b"\x1b[6n"
# The answer of a terminal whose screen is full (as it is during a flood): the cursor is on
# the bottom row. prompt_toolkit shows its bottom toolbar only once it has an answer.
CURSOR_POSITION_REPORT = b"\x1b[%d;1R" % ROWS
HIDE_CURSOR, SHOW_CURSOR = b"\x1b[?25l", b"\x1b[?25h"


class Screen:
    """The output of a pty as plain text (escape sequences removed), read incrementally: a
    sequence cut between two reads is held back until it is whole. It answers cursor position
    requests, as a terminal does.

    It also tells apart text written inside one of prompt_toolkit's redraws (which hide the
    cursor first and show it last) from the rest: a typed key shown by netrepl appears inside
    a redraw, while the tty's own echo (cooked mode, during a write above the prompt) does not.
    """

    def __init__(self, pty: Pty) -> None:
        self.pty = pty
        self._held = b""
        self._in_redraw = False
        self.redrawn = ""
        """The text of the last read that was written inside a redraw."""
        self.outside = ""
        """The text of the last read that was written outside any redraw."""

    def read(self, timeout: float) -> str:
        data = self.pty.read(timeout)
        if not data:
            self.redrawn = self.outside = ""
            return ""
        buf = self._held + data
        cut = buf.rfind(b"\x1b")
        if cut != -1 and len(buf) - cut < 256 and not ESCAPES.match(buf, cut):
            buf, self._held = buf[:cut], buf[cut:]
        else:
            self._held = b""
        for _ in range(buf.count(CURSOR_POSITION_REQUEST)):
            self.pty.send(CURSOR_POSITION_REPORT)
        inside: list[bytes] = []
        outside: list[bytes] = []
        position = 0
        for match in ESCAPES.finditer(buf):
            (inside if self._in_redraw else outside).append(buf[position : match.start()])
            position = match.end()
            if match.group() == HIDE_CURSOR:
                self._in_redraw = True
            elif match.group() == SHOW_CURSOR:
                self._in_redraw = False
        (inside if self._in_redraw else outside).append(buf[position:])
        self.redrawn = b"".join(inside).decode("utf-8", "replace")
        self.outside = b"".join(outside).decode("utf-8", "replace")
        return ESCAPES.sub(b"", buf).decode("utf-8", "replace")

    def wait_for(
        self, found: Callable[[str], bool], timeout: float, what: str, *, keep: int = 4096
    ) -> float:
        """Read until `found(text)` is true for the text of a read, with up to `keep`
        characters read before it (a match may straddle two reads); return the time it was
        seen (monotonic)."""
        deadline = time.monotonic() + timeout
        recent = ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchmarkError(f"timed out after {timeout:g} s waiting for {what}")
            chunk = self.read(min(remaining, 0.2))
            if chunk:
                # Searched whole before it is cut: one read can hold far more than `keep`.
                if found(recent + chunk):
                    return time.monotonic()
                recent = (recent + chunk)[-keep:]
            elif self.pty.eof or self.pty.process.poll() is not None:
                raise BenchmarkError(
                    f"netrepl exited (status {self.pty.process.poll()}) while waiting for {what};"
                    f" last output: {recent[-300:]!r}"
                )

    def drain(self, seconds: float) -> None:
        """Keep reading for `seconds` (pacing between keys; a terminal never stops reading)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self.pty.eof:
            self.read(remaining)

    def drain_until_quiet(self, quiet: float, timeout: float) -> None:
        """Read until nothing arrived for `quiet` s (or `timeout` s passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.pty.eof:
            if not self.pty.read(min(quiet, deadline - time.monotonic())):
                return


def wait_exit(process: subprocess.Popen[Any], timeout: float) -> bool:
    """Wait up to `timeout` s for `process` to exit; True if it did. The exit is noticed when
    it happens: `Popen.wait(timeout)` polls with sleeps of up to 50 ms, too coarse to time a
    start-up, so this waits on a pidfd (or, without one, blocks in waitpid under a timer)."""
    if process.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            kill(process)

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            process.wait()
        finally:
            timer.cancel()
        return not expired.is_set()
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        return False
    process.wait()
    return True


def kill(process: subprocess.Popen[Any]) -> None:
    """End a child and its process group, if still alive, and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


class Peer:
    """A `benchmarks.peers` process: its first JSON line (the port) is read at start, its
    last (the report) by `report`."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        first = self._line(30.0)
        if "port" not in first:
            raise BenchmarkError(f"peer did not start: {first}")
        self.port = int(first["port"])

    def _line(self, timeout: float) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if not line:
            self.process.poll()
            raise BenchmarkError(f"peer gave no answer in {timeout:g} s")
        return json.loads(line)

    def report(self, timeout: float) -> dict[str, Any]:
        record = self._line(timeout)
        if record.get("error"):
            raise BenchmarkError(f"peer: {record['error']}")
        return record

    @property
    def stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout


class Processes:
    """Starts children and kills every one still alive on exit (`with Processes() as procs`)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._popens: list[subprocess.Popen[Any]] = []
        self._ptys: list[Pty] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for pty in self._ptys:
            pty.close()
        for process in self._popens:
            kill(process)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        kwargs.setdefault("cwd", REPO)
        kwargs.setdefault("env", child_env(self.state_dir))
        process = subprocess.Popen(list(argv), start_new_session=True, **kwargs)
        self._popens.append(process)
        return process

    def peer(self, *args: str) -> Peer:
        process = self.popen(
            [PYTHON, "-m", "benchmarks.peers", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return Peer(process)

    def pty(self, args: Sequence[str]) -> Pty:
        pty = Pty([*netrepl_command(), *args], child_env(self.state_dir, term=True), REPO)
        self._ptys.append(pty)
        return pty

    def run(self, argv: Sequence[str], timeout: float, **kwargs: Any) -> float:
        """Run to completion; return the wall time (s). Raises on timeout or failure."""
        started = time.monotonic()
        process = self.popen(argv, **kwargs)
        status = self.wait(process, timeout, Path(argv[0]).name)
        elapsed = time.monotonic() - started
        if status != 0:
            raise BenchmarkError(f"{' '.join(map(str, argv))[:80]} exited {status}")
        return elapsed

    def wait(self, process: subprocess.Popen[Any], timeout: float, what: str) -> int:
        """Wait for the exit, noticed at once (see `wait_exit`); kill it after `timeout` s."""
        if not wait_exit(process, timeout):
            kill(process)
            raise BenchmarkError(f"{what} did not finish in {timeout:g} s")
        return process.returncode


def drain_until_report(screen: Screen, peer: Peer, timeout: float) -> dict[str, Any]:
    """Keep reading the pty (as a terminal would) until the peer reports that it is done."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([screen.pty.fd, peer.stdout], [], [], min(remaining, 1.0))
        if peer.stdout in ready:
            return peer.report(5.0)
        if screen.pty.fd in ready:
            screen.read(0)
            if screen.pty.eof:
                raise BenchmarkError(
                    f"netrepl exited (status {screen.pty.process.poll()}) during the flood"
                )
    raise BenchmarkError(f"the flood did not end within {timeout:g} s")


def quit_netrepl(screen: Screen, timeout: float = 20.0) -> int:
    """Type /quit and wait for netrepl to exit, reading its output meanwhile."""
    screen.pty.send(b"/quit\r")
    deadline = time.monotonic() + timeout
    process = screen.pty.process
    while process.poll() is None and time.monotonic() < deadline:
        screen.read(0.1)
        if screen.pty.eof:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
    if process.poll() is None:
        raise BenchmarkError(f"netrepl did not exit within {timeout:g} s of /quit")
    return process.returncode
