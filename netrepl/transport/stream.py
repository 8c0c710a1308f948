"""One connected stream socket (TCP or unix), optionally under TLS, driven by an IOLoop.

The loop thread reads, decrypts, counts and posts `Received`; it writes queued payloads in
order as the socket accepts them. Other threads only queue work (`send`, `send_eof`,
`close`). A payload is queued whole or refused whole, so nothing is sent by halves.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from netrepl.errors import SendError
from netrepl.events import Closed, Event, HalfClosed, Received, TlsEstablished
from netrepl.transport import describe_os_error
from netrepl.transport.loop import READ, WRITE, IOLoop
from netrepl.transport.tls import TlsLayer, describe_ssl_error

# 1 MiB per read: a flood costs few Python calls (and thread wake-ups) per megabyte; with
# 256 KiB, batch mode to a file reached ~0.8x of what it does with 1 MiB, with 64 KiB ~0.5x
# (benchmarks/). Read with recv, not recv_into a buffer: the new bytes object is the
# event's data, with no second copy.
READ_SIZE = 1024 * 1024
# Reads per readiness before other sockets and queued sends get a turn.
READS_PER_WAKE = 8
# A sender waits while more than this is queued and unsent, so a peer that stops reading
# cannot make netrepl buffer without bound.
HIGH_WATER = 4 * 1024 * 1024
# How long a send waits for a peer that is not reading before it gives up (not queued).
SEND_WAIT_SECONDS = 10.0
# How long a close waits for queued data to drain before it gives up on it.
CLOSE_FLUSH_SECONDS = 2.0

ChannelState = Literal["handshaking", "open", "half-closed", "closing", "closed"]


class StreamChannel:
    def __init__(
        self,
        loop: IOLoop,
        sock: socket.socket,
        conn_id: int,
        post: Callable[[Event], None],
        *,
        peer: str,
        local: str,
        tls: TlsLayer | None = None,
        early_data: bytes = b"",
        on_closed: Callable[[StreamChannel], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.id = conn_id
        self.peer = peer
        self.local = local
        self.received = 0
        self.sent = 0
        self.opened_at = time.monotonic()
        self.last_activity = self.opened_at
        self.failure: str | None = None
        """Why the connection failed (reset, TLS error); None while open or after a clean close."""
        self.tls = tls
        self.tls_info: TlsEstablished | None = None
        self.state: ChannelState = "handshaking" if tls and not tls.handshake_done else "open"
        self._loop = loop
        self._sock = sock
        self._post = post
        self._on_closed = on_closed
        self._cancel = cancel or threading.Event()
        # (bytes still to write, plaintext bytes they carry): counted as sent once written.
        self._out: deque[tuple[memoryview, int]] = deque()
        self._held: list[bytes] = []  # plaintext queued before the TLS handshake finished
        self._early_data = early_data  # arrived with the TLS handshake, before the loop
        self._started = False
        self._want_write = False
        self._eof_requested = False  # any thread: refuse further sends
        self._eof_due = False  # loop thread: every earlier write is queued, shut down after
        self._queued = 0
        self._queue_changed = threading.Condition()
        self._closed = threading.Event()

    # ---- any thread

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    @property
    def can_send(self) -> bool:
        # Not the state: it turns "closed" just before Closed is posted, and no one may see
        # the connection unsendable before the event that says why is on its way.
        return (
            not self._closed.is_set()
            and self.state not in ("half-closed", "closing")
            and not self._eof_requested
        )

    def start(self) -> None:
        """Begin reading on the loop thread (a TLS server also begins its handshake)."""
        self._loop.call_soon(self._start)

    def send(
        self,
        data: bytes,
        *,
        announce: Callable[[], None] | None = None,
        timeout: float = SEND_WAIT_SECONDS,
    ) -> None:
        """Queue all of `data`, or raise SendError and queue none of it.

        While a lot is queued already (the peer is not reading), wait up to `timeout` for it
        to drain. `announce` runs once the send is certain and before any byte can go out,
        so a `Sent` event it posts is always ahead of the reply it provokes.
        """
        with self._queue_changed:
            # The loop thread itself must never wait here: it is what drains the queue.
            waited = self._loop.in_loop() or self._queue_changed.wait_for(
                lambda: self._queued < HIGH_WATER or not self.can_send or self._cancel.is_set(),
                timeout,
            )
            if self._cancel.is_set() and self._queued >= HIGH_WATER:
                raise SendError("interrupted: nothing of this send was queued")
            if not waited:
                raise SendError(
                    f"{self.peer} is not reading: {self._queued:,} bytes still queued;"
                    " this send was not queued"
                )
            if not self.can_send:
                raise SendError(self._not_sendable())
            self._queued += len(data)
        if announce is not None:
            announce()
        self._loop.call_soon(lambda: self._write(data))

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until everything queued has been written (or the channel is closed)."""
        with self._queue_changed:
            return self._queue_changed.wait_for(
                lambda: self._queued == 0 or self._closed.is_set(), timeout
            )

    def send_eof(self) -> None:
        """Half-close after what is queued: the peer reads end of stream; we keep reading."""
        if not self.can_send:
            raise SendError(self._not_sendable())
        self._eof_requested = True

        def after_queued_writes() -> None:
            self._eof_due = True
            self._flush()

        # Through the same queue as the writes, so everything sent before /eof goes first.
        self._loop.call_soon(after_queued_writes)

    def close(self, timeout: float = CLOSE_FLUSH_SECONDS + 1.0) -> None:
        """Close from our side after trying to send what is queued; wait for `Closed`."""
        if self._closed.is_set():
            return
        self._loop.call_soon(self._begin_close)
        if not self._loop.in_loop():
            self._closed.wait(timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._closed.wait(timeout)

    def _not_sendable(self) -> str:
        if self._eof_requested or self.state == "half-closed":
            return f"the connection to {self.peer} is half-closed (/eof): nothing more can be sent"
        return "not connected (/reconnect or /connect HOST PORT)"

    # ---- loop thread

    def _start(self) -> None:
        self._sock.setblocking(False)
        self._loop.register(self._sock, READ, self._on_ready)
        self._started = True
        if self._early_data:
            data, self._early_data = self._early_data, b""
            self.received += len(data)
            self._post(Received(self.id, data, at=time.time()))
        if self.state == "handshaking":
            self._advance_handshake(b"")
        self._flush()

    def _on_ready(self, mask: int) -> None:
        if mask & READ:
            self._read()
        if mask & WRITE and self.state != "closed":
            self._flush()

    def _read(self) -> None:
        for _ in range(READS_PER_WAKE):
            try:
                data = self._sock.recv(READ_SIZE)
            except BlockingIOError:
                return
            except OSError as error:
                self._finish(describe_os_error(error), failed=True)
                return
            if not data:
                if self.state == "handshaking":
                    self._finish("the peer closed during the TLS handshake", failed=True)
                else:
                    self._finish("connection closed by peer")
                return
            if self.tls is not None:
                if self.state == "handshaking":
                    data = self._advance_handshake(data)
                else:
                    try:
                        data = self.tls.feed(data)
                    except ssl.SSLError as error:
                        self._finish(f"TLS error: {describe_ssl_error(error)}", failed=True)
                        return
                    self._queue_tls_output()
                if self.state == "closed":
                    return
            if data:
                self.received += len(data)
                self.last_activity = time.monotonic()
                self._post(Received(self.id, data, at=time.time()))
            if self.tls is not None and self.tls.peer_closed:
                self._finish("connection closed by peer (TLS close_notify)")
                return

    def _advance_handshake(self, ciphertext: bytes) -> bytes:
        assert self.tls is not None
        try:
            plaintext = self.tls.feed(ciphertext)
        except ssl.SSLError as error:
            self._queue_tls_output()
            self._flush()
            self._finish(f"TLS handshake failed: {describe_ssl_error(error)}", failed=True)
            return b""
        self._queue_tls_output()
        if self.tls.handshake_done:
            self.state = "open"
            self.tls_info = self.tls.established(self.id)
            self._post(self.tls_info)
            held, self._held = self._held, []
            for data in held:
                self._write(data)
        self._flush()
        return plaintext

    def _queue_tls_output(self) -> None:
        assert self.tls is not None
        if ciphertext := self.tls.take_outgoing():
            self._out.append((memoryview(ciphertext), 0))

    def _write(self, data: bytes) -> None:
        if self.state in ("closing", "closed"):
            self._dequeued(len(data))
            return
        if self.tls is None:
            self._out.append((memoryview(data), len(data)))
        elif self.state == "handshaking":
            self._held.append(data)
            return
        else:
            self.tls.encrypt(data)
            ciphertext = self.tls.take_outgoing()
            self._out.append((memoryview(ciphertext), len(data)))
        self._flush()

    def _flush(self) -> None:
        if not self._started:
            return  # sends queued before the socket was registered: _start flushes them
        while self._out:
            view, plain = self._out[0]
            try:
                written = self._sock.send(view)
            except BlockingIOError:
                break
            except OSError as error:
                self._finish(describe_os_error(error), failed=True)
                return
            if written < len(view):
                self._out[0] = (view[written:], plain)
                break
            self._out.popleft()
            if plain:
                self.sent += plain
                self.last_activity = time.monotonic()
                self._dequeued(plain)
        if not self._out and not self._held:
            if self._eof_due and self.state in ("open", "handshaking"):
                self._shut_write()
            elif self.state == "closing":
                self._finish("connection closed")
                return
        self._interest(bool(self._out))

    def _shut_write(self) -> None:
        if self.tls is not None:
            self.tls.close_notify()
            ciphertext = self.tls.take_outgoing()
            with contextlib.suppress(OSError):  # best effort: the peer may be gone already
                self._sock.send(ciphertext)
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as error:
            self._finish(describe_os_error(error), failed=True)
            return
        self.state = "half-closed"
        self._post(HalfClosed(self.id))

    def _interest(self, want_write: bool) -> None:
        if want_write != self._want_write and self.state != "closed":
            self._want_write = want_write
            self._loop.modify(self._sock, READ | WRITE if want_write else READ, self._on_ready)

    def _dequeued(self, size: int) -> None:
        with self._queue_changed:
            self._queued -= size
            self._queue_changed.notify_all()

    def _begin_close(self) -> None:
        if self.state == "closed":
            return
        if not self._out or self.state == "handshaking":
            self._finish("connection closed")
            return
        self.state = "closing"
        self._loop.call_later(CLOSE_FLUSH_SECONDS, lambda: self._finish("connection closed"))

    def _finish(self, reason: str, *, failed: bool = False) -> None:
        """Close the socket and post `Closed`, once."""
        if self.state == "closed":
            return
        if failed:
            self.failure = reason
        elif self.tls is not None and self.tls.handshake_done:
            self.tls.close_notify()
            with contextlib.suppress(OSError):  # a courtesy: the peer may be gone already
                self._sock.send(self.tls.take_outgoing())
        unsent = sum(plain for _, plain in self._out) + sum(map(len, self._held))
        if unsent:
            reason += f"; {unsent:,} queued bytes not sent"
        self.state = "closed"
        self._loop.unregister(self._sock)
        with contextlib.suppress(OSError):  # already shut down or reset: nothing to stop
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._out.clear()
        self._held.clear()
        with self._queue_changed:
            self._queued = 0
            self._queue_changed.notify_all()
        # Closed goes out before is_open turns False, so whoever waits for the close and
        # then stops the display is sure to see it.
        self._post(Closed(self.id, reason, self.received, self.sent, failed))
        self._closed.set()
        if self._on_closed is not None:
            self._on_closed(self)
