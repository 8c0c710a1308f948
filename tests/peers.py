"""Small real TCP peers for tests, on loopback only, each on a free port (bind to port 0).

A `Peer` accepts any number of clients. For each it can send a greeting, echo what arrives,
or hang up; it records every byte each client sent, and a test can push bytes to a client at
any moment (`client.send`) or wait for what the client sent (`client.wait_for`). Waits take a
timeout and wake on arrival: no sleeps.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

DEFAULT_TIMEOUT = 10.0


class PeerClient:
    """One accepted connection, as seen from the peer's side."""

    def __init__(self, sock: socket.socket, on_data: Callable[[PeerClient, bytes], None]) -> None:
        self.sock = sock
        self.address = sock.getpeername()
        self.received = bytearray()
        self.closed_by_client = threading.Event()
        self._on_data = on_data
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read_loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _read_loop(self) -> None:
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                with self._changed:
                    self.received += data
                    self._changed.notify_all()
                self._on_data(self, data)
        except OSError:
            pass  # reset, or closed by the test: the wait_* methods report what arrived
        finally:
            self.closed_by_client.set()
            with self._changed:
                self._changed.notify_all()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_for(self, expected: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Wait until the client has sent `expected` (anywhere in its stream); return all."""
        with self._changed:
            if (
                not self._changed.wait_for(
                    lambda: expected in self.received or self.closed_by_client.is_set(), timeout
                )
                or expected not in self.received
            ):
                raise AssertionError(
                    f"peer never received {expected!r}; got {bytes(self.received)!r}"
                )
            return bytes(self.received)

    def wait_for_size(self, size: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= size, timeout):
                raise AssertionError(f"peer got {len(self.received)} of {size} bytes")
            return bytes(self.received)

    def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Wait until the client closes its side; return everything it sent."""
        if not self.closed_by_client.wait(timeout):
            raise AssertionError("the client never closed the connection")
        return bytes(self.received)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), as a crashing device would."""
        # Linux defers close() while our reader sits in recv(): stop the reader first.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)
        self._thread.join(DEFAULT_TIMEOUT)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class Peer:
    """A loopback TCP server: greet, then echo and/or hang up, recording each client."""

    def __init__(
        self,
        *,
        greeting: bytes | Sequence[bytes] = b"",
        echo: bool = False,
        close_after_greeting: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.greeting = [greeting] if isinstance(greeting, bytes) else list(greeting)
        self.echo = echo
        self.close_after_greeting = close_after_greeting
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family)
        self.host, self.port = self._listener.getsockname()[:2]
        self.clients: list[PeerClient] = []
        self._accepted = threading.Condition()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def args(self) -> list[str]:
        """HOST PORT as netrepl's command line takes them."""
        return [self.host, str(self.port)]

    def start(self) -> Peer:
        self._thread.start()
        return self

    def __enter__(self) -> Peer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._listener.close()
        for client in list(self.clients):
            client.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            client = PeerClient(sock, self._on_data)
            try:
                for chunk in self.greeting:
                    client.send(chunk)
                if self.close_after_greeting:
                    client.close()
            except OSError:
                pass  # the client left during the greeting
            client.start()
            with self._accepted:
                self.clients.append(client)
                self._accepted.notify_all()

    def _on_data(self, client: PeerClient, data: bytes) -> None:
        if self.echo:
            with contextlib.suppress(OSError):
                client.send(data)

    def wait_for_client(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> PeerClient:
        """Wait until `count` clients have connected; return the latest."""
        with self._accepted:
            if not self._accepted.wait_for(lambda: len(self.clients) >= count, timeout):
                raise AssertionError(f"{len(self.clients)} of {count} clients connected")
            return self.clients[count - 1]


def free_port() -> int:
    """A loopback port with nothing listening on it (connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def deadline(seconds: float) -> Callable[[], float]:
    """Seconds left until a deadline `seconds` from now (for bounded loops in tests)."""
    end = time.monotonic() + seconds
    return lambda: end - time.monotonic()
