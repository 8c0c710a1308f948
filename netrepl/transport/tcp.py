"""A TCP client connection: connect, one reader thread, thread-safe whole-buffer sends.

The reader thread only calls `recv_into`, counts, and posts events; it never blocks on
anything but the socket. Sends come from the REPL thread and are serialised by a lock so two
payloads never interleave on the wire.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from netrepl.errors import ConnectError, SendError
from netrepl.events import Closed, Connected, Event, Received
from netrepl.transport import describe_os_error, format_address

# 256 KiB per read: large enough that a flood costs few Python calls per megabyte, small
# enough that a burst still reaches the display in pieces a person can follow.
READ_SIZE = 256 * 1024


class TcpConnection:
    """One connected TCP socket and its reader thread."""

    def __init__(self, sock: socket.socket, conn_id: int, post: Callable[[Event], None]) -> None:
        self.id = conn_id
        self._sock = sock
        self._post = post
        self.peer = format_address(*sock.getpeername()[:2])
        self.local = format_address(*sock.getsockname()[:2])
        self.received = 0
        self.sent = 0
        self.failure: str | None = None
        """Why the connection failed (reset, error); None while open or after a clean close."""
        self.last_activity = time.monotonic()
        self._send_lock = threading.Lock()
        self._closing = False
        self._closed = threading.Event()
        self._reader = threading.Thread(
            target=self._read_loop, name=f"netrepl-reader-{conn_id}", daemon=True
        )

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        conn_id: int,
        post: Callable[[Event], None],
        timeout: float | None = 10.0,
    ) -> TcpConnection:
        """Connect, post `Connected`, start reading. Raises ConnectError with a one-line reason."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as error:
            reason = describe_os_error(error)
            if isinstance(error, TimeoutError) and timeout is not None:
                reason = f"timed out after {timeout:g} s"
            raise ConnectError(
                f"cannot connect to {format_address(host, port)}: {reason}"
            ) from None
        sock.settimeout(None)
        connection = cls(sock, conn_id, post)
        post(Connected(conn_id, connection.peer, connection.local))
        connection._reader.start()
        return connection

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    def send(self, data: bytes) -> None:
        """Send all of `data` or raise SendError; payloads from two threads never interleave."""
        with self._send_lock:
            if self._closing or self._closed.is_set():
                raise SendError("not connected (/reconnect or /connect HOST PORT)")
            try:
                self._sock.sendall(data)
            except OSError as error:
                if self._closed.is_set():
                    raise SendError("not connected: the connection closed while sending") from None
                raise SendError(f"send failed: {describe_os_error(error)}") from None
            self.sent += len(data)
            self.last_activity = time.monotonic()

    def close(self, timeout: float = 2.0) -> None:
        """Close from our side; the reader posts `Closed` once it has stopped."""
        self._closing = not self._closed.is_set()
        self._shutdown()
        self._closed.wait(timeout)
        with self._send_lock:
            self._sock.close()

    def _shutdown(self) -> None:
        with contextlib.suppress(OSError):  # already shut down, or reset: nothing to stop
            self._sock.shutdown(socket.SHUT_RDWR)

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._closed.wait(timeout)

    def _read_loop(self) -> None:
        buffer = bytearray(READ_SIZE)
        view = memoryview(buffer)
        reason, failed = "connection closed by peer", False
        try:
            while True:
                count = self._sock.recv_into(buffer)
                if count == 0:
                    break
                self.received += count
                self.last_activity = time.monotonic()
                self._post(Received(self.id, bytes(view[:count])))
        except OSError as error:
            if not self._closing:
                reason, failed = describe_os_error(error), True
                self.failure = reason
        finally:
            if self._closing:
                reason, failed = "connection closed", False
            # Shut down rather than close: a send blocked in another thread then fails at once,
            # and the descriptor cannot be reused under it. close() releases it.
            self._shutdown()
            with self._send_lock:  # a send that completed is counted before we report totals
                sent = self.sent
            # Closed goes out before is_open turns False, so whoever waits for the close and
            # then stops the display is sure to see it.
            self._post(Closed(self.id, reason, self.received, sent, failed))
            self._closed.set()
