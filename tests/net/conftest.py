"""Fixtures for tests/net: scripted loopback servers, an event tap, an in-process session.

Everything waits on a condition with a timeout (never a sleep): the tap wakes on every event a
connection posts, the captured output wakes on every frame the display writes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from netrepl.display import Display, StreamSink
from netrepl.events import Closed, Event, Received
from netrepl.render import Output, Renderer
from netrepl.session import Session, Settings
from netrepl.view import View

WAIT = 10.0
"""Seconds any single wait may take before the test fails (a hang is a failure, not a block)."""


# ---- events --------------------------------------------------------------------------------


class EventTap:
    """A `post` callable: forwards each event (to a display, say), records it, wakes waiters."""

    def __init__(self, forward: Callable[[Event], None] | None = None) -> None:
        self.events: list[Event] = []
        self._forward = forward
        self._changed = threading.Condition()

    def __call__(self, event: Event) -> None:
        # Forward first: once a waiter sees the event, the display has it queued already, so
        # anything the test posts next is rendered after it.
        if self._forward is not None:
            self._forward(event)
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def snapshot(self) -> list[Event]:
        with self._changed:
            return list(self.events)

    def of_type(self, kind: type) -> list:
        return [event for event in self.snapshot() if isinstance(event, kind)]

    def received_bytes(self, conn: int | None = None) -> bytes:
        return b"".join(
            event.data for event in self.of_type(Received) if conn is None or event.conn == conn
        )

    def wait_until(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(f"timed out waiting for {what}; events: {self.events!r}")

    def wait_received(self, size: int, conn: int | None = None, timeout: float = WAIT) -> bytes:
        """Wait until `size` bytes in all have been posted as Received; return them."""

        def enough() -> bool:
            return (
                sum(
                    len(e.data)
                    for e in self.events
                    if isinstance(e, Received) and (conn is None or e.conn == conn)
                )
                >= size
            )

        self.wait_until(enough, f"{size} received bytes", timeout)
        return self.received_bytes(conn)

    def wait_closed(self, conn: int | None = None, timeout: float = WAIT) -> Closed:
        def closed() -> bool:
            return any(
                isinstance(e, Closed) and (conn is None or e.conn == conn) for e in self.events
            )

        self.wait_until(closed, f"Closed of connection {conn}", timeout)
        return next(e for e in self.of_type(Closed) if conn is None or e.conn == conn)


# ---- scripted servers ----------------------------------------------------------------------


class ScriptedServer:
    """A loopback server that runs `script(sock, record)` in a thread for each client.

    `record` is the bytearray of everything that client sent, filled by the script (use
    `read_line`); `wait_for` waits on it like PeerClient.wait_for.
    """

    def __init__(self, script: Callable[[ScriptedServer, socket.socket], None]) -> None:
        self._script = script
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self.received = bytearray()
        self.accepted = 0
        self.finished = threading.Event()
        self._changed = threading.Condition()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def args(self) -> list[str]:
        return [self.host, str(self.port)]

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(sock)
            with self._changed:
                self.accepted += 1
                self._changed.notify_all()
            threading.Thread(target=self._run, args=(sock,), daemon=True).start()

    def _run(self, sock: socket.socket) -> None:
        try:
            self._script(self, sock)
        except OSError:
            pass  # the client went away: what it sent is in `received`
        finally:
            self.finished.set()
            with self._changed:
                self._changed.notify_all()

    def recv(self, sock: socket.socket) -> bytes:
        data = sock.recv(65536)
        with self._changed:
            self.received += data
            self._changed.notify_all()
        return data

    def read_line(self, sock: socket.socket, pending: bytearray) -> bytes | None:
        """The next line (with its newline) from `sock`, or None at end of stream."""
        while b"\n" not in pending:
            data = self.recv(sock)
            if not data:
                return None
            pending += data
        line, _, rest = bytes(pending).partition(b"\n")
        pending[:] = rest
        return line + b"\n"

    def wait_for(self, expected: bytes, timeout: float = WAIT) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: expected in self.received, timeout):
                raise AssertionError(f"server never received {expected!r}: {self.received!r}")
            return bytes(self.received)

    def wait_finished(self, timeout: float = WAIT) -> bytes:
        """Wait until a client's script has ended; return all bytes received."""
        if not self.finished.wait(timeout):
            raise AssertionError("the server script never finished")
        with self._changed:
            return bytes(self.received)


def redis_script(server: ScriptedServer, sock: socket.socket) -> None:
    """Enough of Redis's inline protocol: PING -> +PONG, QUIT -> +OK and hang up; like
    Redis, it closes the connection when it reads the end of the client's stream."""
    pending = bytearray()
    while (line := server.read_line(sock, pending)) is not None:
        word = line.strip().upper()
        if word == b"PING":
            sock.sendall(b"+PONG\r\n")
        elif word == b"QUIT":
            sock.sendall(b"+OK\r\n")
            sock.shutdown(socket.SHUT_RDWR)
            return
        else:
            sock.sendall(b"-ERR unknown command '" + line.strip() + b"'\r\n")
    sock.close()


def reset_after_line_script(server: ScriptedServer, sock: socket.socket) -> None:
    """Read one line, then abort with a TCP RST, as a crashing device would."""
    pending = bytearray()
    server.read_line(sock, pending)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.fixture
def make_server() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(script: Callable[[ScriptedServer, socket.socket], None]) -> ScriptedServer:
        server = ScriptedServer(script).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def redis_peer(make_server) -> ScriptedServer:
    return make_server(redis_script)


# ---- the real program ----------------------------------------------------------------------


def run_netrepl(
    *args: str, stdin: bytes = b"", timeout: float = 20.0, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m netrepl ARGS` with piped stdin (batch mode); fail on a hang."""
    process = subprocess.Popen(
        [sys.executable, *python_flags, "-m", "netrepl", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=netrepl_env(),
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"netrepl {' '.join(args)} still running after {timeout} s;"
            f" stdout {stdout[-2000:]!r}; stderr {stderr[-2000:]!r}"
        ) from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


class WatchedStderr:
    """A netrepl process's stderr, read by a thread into `_stderr`, with waits for a line on
    it; RunningNetrepl and tests/net/relay_peers.py's NetreplToFile share it."""

    _stderr: bytearray
    _changed: threading.Condition

    def _drain(self, pipe: io.BufferedReader, buffer: bytearray) -> None:
        try:
            while chunk := pipe.read1(65536):
                with self._changed:
                    buffer += chunk
                    self._changed.notify_all()
        except (ValueError, OSError):
            return  # the fixture closed the pipe after killing the process: nothing more comes

    def wait_stderr(self, expected: bytes, timeout: float = WAIT) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: expected in self._stderr, timeout):
                raise AssertionError(f"stderr never showed {expected!r}: {self._stderr!r}")
            return bytes(self._stderr)

    def wait_stderr_match(self, pattern: bytes, timeout: float = WAIT) -> re.Match[bytes]:
        regex = re.compile(pattern)
        with self._changed:
            if not self._changed.wait_for(lambda: regex.search(self._stderr), timeout):
                raise AssertionError(f"stderr never matched {pattern!r}: {bytes(self._stderr)!r}")
            match = regex.search(self._stderr)
            assert match is not None
            return match


class RunningNetrepl(WatchedStderr):
    """`python -m netrepl ARGS` started with pipes, for tests that feed stdin step by step.

    Threads drain stdout and stderr (so a full pipe never blocks the program); a test waits
    for a stderr line before writing more stdin.
    """

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "netrepl", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=netrepl_env(),
        )
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._drain, args=(pipe, buffer), daemon=True)
            for pipe, buffer in (
                (self.process.stdout, self._stdout),
                (self.process.stderr, self._stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    def wait_stdout(self, expected: bytes, timeout: float = WAIT) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: expected in self._stdout, timeout):
                raise AssertionError(f"stdout never showed {expected!r}: {bytes(self._stdout)!r}")
            return bytes(self._stdout)

    def listening_port(self, kind: str) -> int:
        """The port of the `listening on 127.0.0.1:PORT (KIND)` status line."""
        pattern = rb"listening on (?:127\.0\.0\.1|\[::1\]):(\d+) \(" + re.escape(kind.encode())
        return int(self.wait_stderr_match(pattern + rb"\)\n").group(1))

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def finish(self, timeout: float = 20.0) -> subprocess.CompletedProcess[bytes]:
        """Close stdin, wait for the exit, and return everything it wrote."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(WAIT)
            raise AssertionError(f"netrepl still running after {timeout} s") from None
        for reader in self._readers:
            reader.join(WAIT)
        with self._changed:
            return subprocess.CompletedProcess(
                self.process.args, self.process.returncode, bytes(self._stdout), bytes(self._stderr)
            )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)


@pytest.fixture
def start_netrepl() -> Iterator[Callable[..., RunningNetrepl]]:
    running: list[RunningNetrepl] = []

    def start(*args: str) -> RunningNetrepl:
        process = RunningNetrepl(*args)
        running.append(process)
        return process

    yield start
    for process in running:
        process.kill()
        for pipe in (process.process.stdin, process.process.stdout, process.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def hexdump_line(offset: int, data: bytes) -> str:
    """One `hexdump -C` line, written out independently of netrepl.hexdump."""
    first = " ".join(f"{b:02x}" for b in data[:8])
    second = " ".join(f"{b:02x}" for b in data[8:16])
    gutter = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    return f"{offset:08x}  {first:<23}  {second:<23}  |{gutter}|\n"


def netrepl_env() -> dict[str, str]:
    env = dict(os.environ)
    # A known output encoding, whatever the machine's locale; colour must come from isatty alone.
    env["PYTHONIOENCODING"] = "utf-8"
    for name in ("FORCE_COLOR", "NO_COLOR", "PYTHONWARNINGS"):
        env.pop(name, None)
    return env


# ---- an in-process session with a real display -----------------------------------------------


class CapturedOutput:
    """A batch StreamSink writing into memory; tests wait on what it has written."""

    def __init__(self, *, quiet: bool = False) -> None:
        self._bytes = io.BytesIO()
        # strict: a lone surrogate or other unencodable character reaching the output is a bug,
        # and it shows up as display.output_failed.
        self.stdout = io.TextIOWrapper(self._bytes, encoding="utf-8", newline="\n")
        self.stderr = io.StringIO()
        self._sink = StreamSink(self.stdout, self.stderr, quiet=quiet)
        self._changed = threading.Condition()

    def write(self, outputs: list[Output]) -> None:
        with self._changed:
            try:
                self._sink.write(outputs)
            finally:
                self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._sink.close()
            self._changed.notify_all()

    def stdout_bytes(self) -> bytes:
        with self._changed:
            return self._bytes.getvalue()

    def stdout_text(self) -> str:
        return self.stdout_bytes().decode("utf-8")

    def stderr_text(self) -> str:
        with self._changed:
            return self.stderr.getvalue()

    def wait_stdout(self, expected: str, timeout: float = WAIT) -> str:
        with self._changed:
            if not self._changed.wait_for(
                lambda: expected in self._bytes.getvalue().decode("utf-8", "replace"), timeout
            ):
                raise AssertionError(
                    f"stdout never showed {expected!r}: {self._bytes.getvalue()!r}"
                )
            return self._bytes.getvalue().decode("utf-8")

    def wait_stderr(self, expected: str, timeout: float = WAIT) -> str:
        with self._changed:
            if not self._changed.wait_for(lambda: expected in self.stderr.getvalue(), timeout):
                raise AssertionError(
                    f"stderr never showed {expected!r}: {self.stderr.getvalue()!r}"
                )
            return self.stderr.getvalue()


@dataclass
class Harness:
    session: Session
    display: Display
    tap: EventTap
    output: CapturedOutput
    stopped: bool = field(default=False)

    @property
    def conn(self) -> int:
        """The id of the current client connection."""
        channel = getattr(self.session.transport, "channel", None)
        assert channel is not None
        return channel.id

    def finish(self) -> tuple[str, str]:
        """Close the connection, show everything, stop the display; return (stdout, stderr)."""
        self.stop()
        return self.output.stdout_text(), self.output.stderr_text()

    def stop(self) -> None:
        """Close the connection, show everything and stop the display."""
        if not self.stopped:
            channel = getattr(self.session.transport, "channel", None)
            self.session.close()
            if channel is not None:
                # Closed is posted by the I/O thread just before the channel reports closed:
                # wait for it so the display shows it before stopping.
                self.tap.wait_closed(channel.id)
            self.display.stop()
            self.stopped = True
        assert not self.display.output_failed, "the display could not write its output"


@pytest.fixture
def make_session() -> Iterator[Callable[..., Harness]]:
    """make_session(view=View(), batch=False, quiet=False, **settings) -> a started Harness."""
    harnesses: list[Harness] = []

    def make(
        *, view: View | None = None, batch: bool = False, quiet: bool = False, **settings: object
    ) -> Harness:
        settings_ = Settings(view=view or View(), batch=batch, **settings)  # type: ignore[arg-type]
        output = CapturedOutput(quiet=quiet)
        display = Display(Renderer(settings_.view), output)
        tap = EventTap(display.post)
        session = Session(settings_, tap)
        display.start()
        harness = Harness(session, display, tap, output)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        if not harness.stopped:
            harness.session.close()
            harness.display.stop()
