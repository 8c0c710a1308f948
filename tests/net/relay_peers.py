"""Both ends of a relay for tests: an upstream listener the test drives by hand, clients, and
netrepl started with `--relay` between them, its port read from its status line.

Each flow is a pair of plain sockets (the client's, and the upstream's accepted one), so a
test can half-close, reset or stop reading either end. Loopback only; every wait and every
loop has a timeout, so a hang fails the test instead of blocking the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.net.conftest import WAIT, RunningNetrepl, WatchedStderr, netrepl_env

# The longest a Pour may go on, whatever happens: a test fails rather than hang.
POUR_SECONDS = 120.0

RELAYING = rb"relaying (?:127\.0\.0\.1|\[::1\]):(\d+) \(TCP(?:\+TLS)?\) to "


def relaying_port(netrepl: RunningNetrepl) -> int:
    """The port of the `relaying 127.0.0.1:PORT (TCP) to ...` status line."""
    return int(netrepl.wait_stderr_match(RELAYING).group(1))


class Upstream:
    """A loopback TCP listener standing for the device; under TLS when given a `context`.

    `accept` hands the test each connection netrepl opens (TLS handshake done), with a
    timeout on every operation.
    """

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(WAIT)
        self.port: int = self._listener.getsockname()[1]
        self._context = context
        self.accepted: list[socket.socket] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def accept(self, timeout: float = WAIT) -> socket.socket:
        self._listener.settimeout(timeout)
        sock, _ = self._listener.accept()
        sock.settimeout(WAIT)
        if self._context is not None:
            sock = self._context.wrap_socket(sock, server_side=True)
        self.accepted.append(sock)
        return sock

    def close(self) -> None:
        self._listener.close()
        for sock in self.accepted:
            with contextlib.suppress(OSError):
                sock.close()


@dataclass
class Flow:
    """One relayed flow as its two ends see it: the client's socket and the upstream's."""

    client: socket.socket
    upstream: socket.socket


class Relay:
    """netrepl relaying from its listening `port` to `upstream`; `connect` makes flows."""

    def __init__(self, netrepl: RunningNetrepl | NetreplToFile, upstream: Upstream) -> None:
        self.netrepl = netrepl
        self.upstream = upstream
        self.port = relaying_port(netrepl)
        self.clients: list[socket.socket] = []
        self.flows = 0

    def connect_client(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        self.clients.append(sock)
        return sock

    def connect(self) -> Flow:
        """A new client, and the upstream connection netrepl opened for it, once netrepl
        has said so (the upstream's accept can come before netrepl's side of it)."""
        client = self.connect_client()
        upstream = self.upstream.accept()
        self.flows += 1
        self.netrepl.wait_stderr(self.leg_connected(self.flows))
        return Flow(client, upstream)

    def leg_connected(self, flow: int) -> bytes:
        """The start of flow `flow`'s `#N upstream ADDRESS connected` status line."""
        return f"#{flow} upstream {self.upstream.address} connected".encode()

    def close(self) -> None:
        for sock in self.clients:
            with contextlib.suppress(OSError):
                sock.close()


# ---- moving bytes ----------------------------------------------------------------------------


def read_to_end(sock: socket.socket, timeout: float = WAIT) -> bytes:
    """Everything until a clean end of stream (a reset raises); fails after `timeout`."""
    end = time.monotonic() + timeout
    data = bytearray()
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no end of stream within {timeout} s; got {bytes(data)!r}")
        sock.settimeout(left)
        chunk = sock.recv(1 << 20)
        if not chunk:
            return bytes(data)
        data += chunk


def digest_of_stream(sock: socket.socket, size: int, timeout: float) -> str:
    """Read exactly `size` bytes and return their sha256, without keeping them all."""
    end = time.monotonic() + timeout
    digest = hashlib.sha256()
    got = 0
    while got < size:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {got:,} of {size:,} bytes in {timeout} s")
        sock.settimeout(left)
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            raise AssertionError(f"end of stream after {got:,} of {size:,} bytes")
        digest.update(chunk)
        got += len(chunk)
    return digest.hexdigest()


class Background:
    """`call` on a daemon thread; `result()` waits for it and re-raises what it raised."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._call = call
        self._outcome: list[object] = []
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome.append(self._call())
        except BaseException as error:  # handed to the test by result()
            self._failure.append(error)

    def result(self, timeout: float = WAIT) -> object:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"still running after {timeout} s")
        if self._failure:
            raise self._failure[0]
        return self._outcome[0]


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (the peak so far) of process `pid`, in KiB (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def loopback_buffers() -> int:
    """The most one loopback TCP connection's two sockets can hold between them: a sender's
    largest send buffer and a receiver's largest (autotuned) receive buffer."""
    try:
        with (
            open("/proc/sys/net/ipv4/tcp_rmem", encoding="ascii") as rmem,
            open("/proc/sys/net/ipv4/tcp_wmem", encoding="ascii") as wmem,
        ):
            return int(rmem.read().split()[2]) + int(wmem.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 16 * 1024 * 1024


class Pour:
    """Sends `size` bytes on `sock` from a thread of its own: seeded random data made a MiB
    at a time (a test moving 300 MB holds none of it), hashed as it goes. It counts what the
    socket took, and a stall each time the socket takes nothing for `stall` seconds (the
    other end stopped reading)."""

    CHUNK = 1 << 20

    def __init__(self, sock: socket.socket, size: int, *, seed: int = 0, stall: float = 1.0):
        self.size = size
        self.sent = 0
        self.stalls = 0
        self.sent_at_first_stall: int | None = None
        self.error: OSError | None = None
        self._digest = hashlib.sha256()
        self._sock, self._seed, self._stall = sock, seed, stall
        self._done = threading.Event()
        self._changed = threading.Condition()
        threading.Thread(target=self._run, name="test-pour", daemon=True).start()

    def _run(self) -> None:
        generator = random.Random(self._seed)
        deadline = time.monotonic() + POUR_SECONDS
        try:
            while self.sent < self.size and time.monotonic() < deadline:
                chunk = generator.randbytes(min(self.CHUNK, self.size - self.sent))
                self._digest.update(chunk)
                view = memoryview(chunk)
                while view and time.monotonic() < deadline:
                    _, writable, _ = select.select([], [self._sock], [], self._stall)
                    if not writable:
                        with self._changed:
                            self.stalls += 1
                            if self.sent_at_first_stall is None:
                                self.sent_at_first_stall = self.sent
                            self._changed.notify_all()
                        continue
                    taken = self._sock.send(view)
                    view = view[taken:]
                    with self._changed:
                        self.sent += taken
        except OSError as error:
            self.error = error
        finally:
            with self._changed:
                self._done.set()
                self._changed.notify_all()

    def wait_stall(self, timeout: float = WAIT) -> int:
        """Wait for the first stall (failing if all was sent first); bytes sent before it."""
        with self._changed:
            self._changed.wait_for(lambda: self.stalls or self._done.is_set(), timeout)
            if self.sent_at_first_stall is None:
                raise AssertionError(
                    f"no stall: {self.sent:,} of {self.size:,} bytes sent, error {self.error}"
                )
            return self.sent_at_first_stall

    def digest(self, timeout: float = WAIT) -> str:
        """The sha256 of all it sent, once it has sent all."""
        if not self._done.wait(timeout) or self.sent < self.size:
            raise AssertionError(f"sent {self.sent:,} of {self.size:,} bytes ({self.error})")
        return self._digest.hexdigest()


def wait_reset(sock: socket.socket, timeout: float = WAIT) -> bytes:
    """Read until the connection is reset; return what came before. A clean end of stream
    fails: the point is that the peer sees a reset, not a close."""
    end = time.monotonic() + timeout
    data = bytearray()
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no reset within {timeout} s; got {bytes(data)!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return bytes(data)
        if not chunk:
            raise AssertionError(f"a clean end of stream, not a reset, after {bytes(data)!r}")
        data += chunk


def wait_exit(netrepl: RunningNetrepl, timeout: float = WAIT) -> subprocess.CompletedProcess[bytes]:
    """Wait for netrepl to exit by itself (stdin left open); return everything it wrote."""
    try:
        netrepl.process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"netrepl still running after {timeout} s") from None
    return netrepl.finish(timeout)


def stop_with(
    netrepl: RunningNetrepl, signum: int, timeout: float = WAIT
) -> subprocess.CompletedProcess[bytes]:
    """Send `signum` (SIGTERM, SIGINT), wait for the exit; return everything it wrote."""
    netrepl.process.send_signal(signum)
    return wait_exit(netrepl, timeout)


class NetreplToFile(WatchedStderr):
    """`python -m netrepl ARGS` as a logging relay runs: stdin from /dev/null, stdout to a
    file (or /dev/null: a test that moves hundreds of megabytes keeps none of it), stderr
    read by a thread that wakes waiters (the same waits as RunningNetrepl's)."""

    def __init__(
        self,
        *args: str,
        stdout: str | None = None,
        launcher: tuple[str, ...] = ("-m", "netrepl"),
        stdin_open: bool = False,
    ) -> None:
        """`launcher`: how Python starts it (`-c SCRIPT` for a variant); `stdin_open`: a pipe
        left open instead of /dev/null (netrepl still waits for commands)."""
        self._stdout_file = open(stdout or os.devnull, "wb")  # noqa: SIM115 (closed in finish)
        self.process = subprocess.Popen(
            [sys.executable, *launcher, *args],
            stdin=subprocess.PIPE if stdin_open else subprocess.DEVNULL,
            stdout=self._stdout_file,
            stderr=subprocess.PIPE,
            env=netrepl_env(),
        )
        self._stderr = bytearray()
        self._changed = threading.Condition()
        self._reader = threading.Thread(
            target=self._drain, args=(self.process.stderr, self._stderr), daemon=True
        )
        self._reader.start()

    def finish(self, timeout: float = WAIT) -> subprocess.CompletedProcess[bytes]:
        """Wait for the exit; return the stderr (stdout is in the file)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"netrepl still running after {timeout} s") from None
        self._reader.join(WAIT)
        self._stdout_file.close()
        with self._changed:
            return subprocess.CompletedProcess(
                self.process.args, self.process.returncode, b"", bytes(self._stderr)
            )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        self._reader.join(WAIT)  # it reads to the end of stderr, which the exit closed
        self._stdout_file.close()
        for pipe in (self.process.stdin, self.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
