"""Fixtures for the transport tests: transports that are always closed, and raw loopback peers.

Raw sockets play the other side, bound to 127.0.0.1 or ::1 only. Every wait has a timeout and
every loop a deadline, so a hang fails the test instead of blocking the run.
"""

from __future__ import annotations

import itertools
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from netrepl.events import Noticed
from netrepl.transport import Endpoint, open_transport, parse_host_port
from netrepl.transport.base import Transport
from tests.net.conftest import WAIT, EventTap


def payload(size: int, seed: int = 0) -> bytes:
    """`size` bytes that are not periodic, so a lost, doubled or reordered chunk shows."""
    return random.Random(seed).randbytes(size)


def port_of(address: str) -> int:
    """The port of a listening transport's `.address` (`127.0.0.1:4321`, `*:4321`, `[::1]:1`)."""
    return parse_host_port(address)[1]


def noticed(tap: EventTap, text: str) -> list[Noticed]:
    return [event for event in tap.of_type(Noticed) if text in event.text]


def wait_noticed(tap: EventTap, text: str, timeout: float = WAIT) -> Noticed:
    tap.wait_until(lambda: bool(noticed(tap, text)), f"a notice containing {text!r}", timeout)
    return noticed(tap, text)[0]


class Transports:
    """Opens transports with their own tap and ids; closes every one at teardown."""

    def __init__(self) -> None:
        self.opened: list[Transport] = []

    def open(
        self, endpoint: Endpoint, tap: EventTap | None = None, ids: Iterator[int] | None = None
    ) -> tuple[Transport, EventTap]:
        tap = tap if tap is not None else EventTap()
        transport = open_transport(endpoint, tap, ids if ids is not None else itertools.count(1))
        self.opened.append(transport)
        return transport, tap

    def close_all(self) -> None:
        for transport in reversed(self.opened):
            transport.close()
        for transport in self.opened:
            transport.loop.thread.join(WAIT)
            assert not transport.loop.thread.is_alive(), "the I/O thread outlived close()"


@pytest.fixture
def transports() -> Iterator[Transports]:
    opened = Transports()
    yield opened
    opened.close_all()


class RawSockets:
    """Plain sockets for the peer's side, each with a timeout; all closed at teardown."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    def track(self, sock: socket.socket) -> socket.socket:
        sock.settimeout(WAIT)
        self.sockets.append(sock)
        return sock

    def listener(self, host: str = "127.0.0.1", port: int = 0) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # create_server sets SO_REUSEADDR, so a port just closed can be bound again.
        return self.track(socket.create_server((host, port), family=family))

    def accept(self, listener: socket.socket) -> socket.socket:
        sock, _ = listener.accept()
        return self.track(sock)

    def tcp(self, host: str, port: int) -> socket.socket:
        return self.track(socket.create_connection((host, port), timeout=WAIT))

    def udp(self, host: str = "127.0.0.1") -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = self.track(socket.socket(family, socket.SOCK_DGRAM))
        sock.bind((host, 0))
        return sock

    def close_all(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def raw() -> Iterator[RawSockets]:
    sockets = RawSockets()
    yield sockets
    sockets.close_all()


def recv_exact(sock: socket.socket, size: int, timeout: float = WAIT) -> bytes:
    """Exactly `size` bytes from a stream socket; fails on EOF or after `timeout`."""
    end = time.monotonic() + timeout
    data = bytearray()
    while len(data) < size:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(data)} of {size} bytes in {timeout} s")
        sock.settimeout(left)
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise AssertionError(f"end of stream after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def recv_until_eof(sock: socket.socket, timeout: float = WAIT) -> bytes:
    """Everything until end of stream (a reset counts as the end); fails after `timeout`."""
    end = time.monotonic() + timeout
    data = bytearray()
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no end of stream within {timeout} s; got {bytes(data)!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


def reset(sock: socket.socket) -> None:
    """Abort with a TCP RST (SO_LINGER 0), as a crashing device would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `call` in a daemon thread; the list gets its result or the exception it raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # handed to the test, which asserts on it
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome
