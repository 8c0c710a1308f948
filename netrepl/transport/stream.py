"""One connected stream socket (TCP or unix), optionally under TLS, driven by an IOLoop.

The loop thread reads, decrypts, counts and posts `Received`; it writes queued payloads in
order as the socket accepts them. Other threads only queue work (`send`, `send_eof`,
`close`). A payload is queued whole or refused whole, so nothing is sent by halves.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import termios
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from netrepl.errors import SendError
from netrepl.events import Closed, Event, HalfClosed, Received, Sent, TlsEstablished
from netrepl.transport import CANCEL_POLL_SECONDS, describe_os_error
from netrepl.transport.loop import READ, WRITE, IOLoop

if TYPE_CHECKING:
    from netrepl.transport.delivery import Delivery
    from netrepl.transport.tls import TlsLayer


def keep_read_pages() -> None:
    """Fix glibc's mmap and trim thresholds for the process (see READ_SIZE), once: called
    at a stream's first full read, so a session that never floods never loads ctypes. Does
    nothing where there is no glibc `mallopt`."""
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


# 1 MiB per read: a flood costs few Python calls (and thread wake-ups) per megabyte; with
# 256 KiB, batch mode to a file reached ~0.8x of what it does with 1 MiB, with 64 KiB ~0.5x
# (benchmarks/). Read with recv, not recv_into a buffer: the new bytes object is the
# event's data, with no second copy. A read asks for what the socket holds (FIONREAD), up
# to READ_SIZE, not READ_SIZE each time: recv allocates what it asks for and shrinks it to
# what came, and in a flood two reads in three are partial (64 - 960 KiB). Each left the
# rest of a 1 MiB block free behind a short read that the display or /save still held, a
# hole too small for the next 1 MiB request: the I/O thread's heap grew to ~13 MiB for ~3
# MiB of live reads (benchmarks' flood, utf8 view); asking for the exact size, to ~7 MiB.
# The ioctl costs ~0.7 us a read, so only a read in a flood asks (StreamChannel._read).
READ_SIZE = 1024 * 1024
# What a read asks for when nothing says more is waiting: a wake's first read, and the read
# after one that emptied the socket (it finds the end of stream, an error or nothing). It
# needs no 1 MiB block; if it comes back full, the next read asks for what is waiting.
EMPTY_READ_SIZE = 64 * 1024
# glibc's allocator and those reads: each is a fresh 1 MiB object, freed by another thread once
# logged and shown. glibc serves it from mmap, or from the heap once its dynamic threshold has
# risen, and gives a freed heap top of more than twice that threshold back to the system; so
# whether a flood faulted in fresh pages for its reads depended on how many reads were held at
# once: 9,000 - 28,000 page faults per 500 MB in batch raw, run by run; with these fixed
# thresholds ~4,500, every run (tests/net/test_read_pages.py). Fixed, they
# keep the pages of freed reads for the next ones: up to TRIM_THRESHOLD stays mapped (more
# than the 8 MiB a batch display or a log writer may hold), nothing is mapped that was not used.
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_allocator_tuned = False
# Reads per readiness before other sockets and queued sends get a turn.
READS_PER_WAKE = 8
# A sender waits while more than this is queued and unsent, so a peer that stops reading
# cannot make netrepl buffer without bound.
HIGH_WATER = 4 * 1024 * 1024
# A relay stops reading one leg while this much is queued for the other, and reads again
# once it is down to the low mark: a slow reader slows the writer, memory stays bounded.
RELAY_HIGH_WATER = 1024 * 1024
RELAY_LOW_WATER = 256 * 1024
# How long a send waits for a peer that is not reading before it gives up (not queued).
SEND_WAIT_SECONDS = 10.0
# How long a close waits for queued data to drain before it gives up on it.
CLOSE_FLUSH_SECONDS = 2.0

ChannelState = Literal["handshaking", "open", "half-closed", "closing", "closed"]


class SendInterrupted(SendError):
    """The user's Ctrl-C stopped a send that was waiting for the peer to read."""


class _Outgoing:
    """Bytes queued for the socket: a payload (its plaintext kept for `Sent`, its bytes
    counted as they are handed over), or a TLS record of our own (plain 0, data None)."""

    __slots__ = ("as_hex", "data", "delivery", "echo", "handed", "plain", "view")

    def __init__(
        self,
        view: memoryview,
        plain: int,
        data: bytes | None = None,
        as_hex: bool = False,
        echo: bool = True,
        delivery: Delivery | None = None,
    ) -> None:
        self.view = view
        self.plain = plain
        self.data = data
        self.as_hex = as_hex
        self.echo = echo
        self.delivery = delivery
        self.handed = 0
        """Plaintext bytes of it handed to the socket so far."""


class RelayLeg(Protocol):
    """What a relay leg's channel tells its relay, on the loop thread."""

    def leg_received(self, channel: StreamChannel, data: bytes) -> Sequence[Event]:
        """`data` arrived (and is posted next): forward or hold it. Returns the lines about
        it (`held 3: ...`), to be posted after it."""

    def leg_ended(self, channel: StreamChannel) -> None:
        """The peer sent its end of stream (and the channel stays open for writing)."""


class StreamChannel:
    """One connected stream socket (TCP or unix), optionally under TLS.

    Arguments: the `loop` that drives it, the connected `sock` (its own from now on), its
    connection id, `post` for its events, the `peer` and `local` addresses as shown, a
    `tls` layer (a server's handshake begins at `start`; a client's is done already, with
    `early_data` it read meanwhile), `on_closed` (called on the loop thread once it has
    closed), and the session's `cancel` flag (Ctrl-C stops a waiting `send`).

    It owns the socket, its write queue and, under TLS, the SSL object. The loop thread does
    every read, write, handshake step and close, and posts `Received`, `Sent` (when bytes
    reach the socket), `HalfClosed` and `Closed`. Any other thread may call `start`, `send`
    (which may wait while the peer is not reading), `send_eof`, `withdraw`, `close` and the
    read-only properties; none of them touches the socket.

    A relay leg (`relay`) hands what it reads to its `RelayLeg` before posting it, and on the
    peer's end of stream stays open for writing; the relay, on the loop thread, calls
    `forward`, `end_writing`, `pause_reading`, `resume_reading`, `when_drained` and `reset`.
    """

    frames_payloads = False
    """What goes on the wire for a payload is not its bytes (a WebSocket frames it): a
    payload is counted sent once all of it went, as under TLS."""

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
        relay: RelayLeg | None = None,
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
        self._wrapped = tls is not None or self.frames_payloads
        self._loop = loop
        self._sock = sock
        self._post = post
        self._on_closed = on_closed
        self._cancel = cancel or threading.Event()
        # What is still to be written, in order: payloads, and TLS records of our own.
        self._out: deque[_Outgoing] = deque()
        self._held: list[_Outgoing] = []  # payloads queued before the TLS handshake finished
        self._early_data = early_data  # arrived with the TLS handshake, before the loop
        self._fd = -1  # the socket's, once the loop has it
        self._waiting = array("i", [0])  # loop thread: FIONREAD's answer (see READ_SIZE)
        self._flooding = False  # loop thread: see _read
        self._started = False
        self._want_write = False
        self._eof_requested = False  # any thread: refuse further sends
        self._eof_due = False  # loop thread: every earlier write is queued, shut down after
        self._queued = 0
        self._queue_changed = threading.Condition()
        # Threads waiting on it: a read forwarded by a relay notifies only when one waits (a
        # notify costs microseconds, and a relay's round trip is made of a few of them).
        self._queue_waiters = 0
        self._closed = threading.Event()
        self._relay = relay
        self._pauses: set[str] = set()  # loop thread: why reads are paused (a relay's reasons)
        self.peer_ended = False
        """The peer sent its end of stream and this (relay leg) still writes."""
        self._on_drained: Callable[[], None] | None = None

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
        as_hex: bool = False,
        echo: bool = True,
        delivery: Delivery | None = None,
        timeout: float = SEND_WAIT_SECONDS,
        waiting: Callable[[], None] | None = None,
        settle: bool = False,
    ) -> None:
        """Queue all of `data`, or raise SendError and queue none of it.

        While a lot is queued already (the peer is not reading), wait up to `timeout` for it
        to drain, in slices that notice Ctrl-C (SendInterrupted) and call `waiting` (a
        progress bar that must keep moving). The `Sent` event is posted by the loop thread
        once the bytes are handed to the socket: it is true to the wire, and it is always
        ahead of the reply it provokes, which that same thread reads later. `settle`: return
        only once the loop has tried to write it (a typed line, not a piece of a file).
        """
        deadline = time.monotonic() + timeout
        with self._queue_changed:
            # The loop thread itself must never wait here: it is what drains the queue.
            while not self._loop.in_loop() and self._queued >= HIGH_WATER and self.can_send:
                if self._cancel.is_set():
                    raise SendInterrupted("interrupted: nothing of this send was queued")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SendError(
                        f"{self.peer} is not reading: {self._queued:,} bytes still queued;"
                        " this send was not queued"
                    )
                self._queue_waiters += 1
                try:
                    self._queue_changed.wait(min(left, CANCEL_POLL_SECONDS))
                finally:
                    self._queue_waiters -= 1
                if waiting is not None:
                    waiting()
            if not self.can_send:
                raise SendError(self._not_sendable())
            self._queued += len(data)
        item = _Outgoing(memoryview(data), len(data), data, as_hex, echo, delivery)
        if not settle or self._loop.in_loop():
            self._loop.call_soon(lambda: self._write(item))
            return
        taken = threading.Event()

        def write() -> None:
            try:
                self._write(item)
            finally:
                taken.set()

        self._loop.call_soon(write)
        # Until the loop has tried the socket: what can go at once has gone, and its `Sent`
        # is posted, before the next command (/log off, /expect, /save) runs.
        while not taken.wait(CANCEL_POLL_SECONDS) and self._loop.thread.is_alive():
            pass

    @property
    def has_room(self) -> bool:
        """A send now would be queued at once, without waiting for the peer to read."""
        return self._queued < HIGH_WATER

    def withdraw(self, delivery: Delivery, timeout: float = CLOSE_FLUSH_SECONDS) -> None:
        """Take back what `delivery` queued that has not reached the socket (an interrupted
        send): counts then stay what was really handed over. A piece already begun goes on
        only over TLS, whose records cannot be cut."""
        if self._loop.in_loop():
            self._withdraw(delivery)
            return
        done = threading.Event()

        def withdraw() -> None:
            self._withdraw(delivery)
            done.set()

        self._loop.call_soon(withdraw)
        while not done.wait(CANCEL_POLL_SECONDS) and not self._closed.is_set():
            timeout -= CANCEL_POLL_SECONDS
            if timeout <= 0:
                return

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until everything queued has been written (or the channel is closed)."""
        with self._queue_changed:
            self._queue_waiters += 1
            try:
                return self._queue_changed.wait_for(
                    lambda: self._queued == 0 or self._closed.is_set(), timeout
                )
            finally:
                self._queue_waiters -= 1

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
        if self.state == "closed":
            return  # closed before the loop got here: a relay stopping as this leg joined
        self._sock.setblocking(False)
        self._fd = self._sock.fileno()
        self._started = True
        self._watch()
        if self._early_data:
            data, self._early_data = self._early_data, b""
            self._arrived(data)
        if self.state == "handshaking":
            self._advance_handshake(b"")
        self._flush()

    def _on_ready(self, mask: int) -> None:
        if mask & READ:
            self._read()
        if mask & WRITE and self.state != "closed":
            self._flush()

    def _read(self) -> None:
        # A wake in a flood (its last wake started with a read of EMPTY_READ_SIZE or more)
        # asks what is waiting at once; any other starts small: a line, a reply.
        size = self._waiting_size() if self._flooding else EMPTY_READ_SIZE
        for index in range(READS_PER_WAKE):
            try:
                data = self._sock.recv(size)
            except BlockingIOError:
                return
            except OSError as error:
                self._finish(describe_os_error(error), failed=True)
                return
            got = len(data)  # off the wire: TLS makes fewer bytes of it below
            if got == READ_SIZE and not _allocator_tuned:
                keep_read_pages()
            if not data:
                if self.state == "handshaking":
                    self._finish("the peer closed during the TLS handshake", failed=True)
                else:
                    self._peer_sent_eof("connection closed by peer")
                return
            if self.tls is not None:
                if self.state == "handshaking":
                    data = self._advance_handshake(data)
                else:
                    data = self._decrypt(data)
                if self.state == "closed":
                    return
            if data:
                self._arrived(data)
                if self.state == "closed":
                    return
            if self.tls is not None and self.tls.peer_closed:
                self._peer_sent_eof("connection closed by peer (TLS close_notify)")
                return
            if not self._reading or self.state == "closed":  # a relay paused it meanwhile
                return
            if index == 0:
                self._flooding = got >= EMPTY_READ_SIZE
            # A read that got all it asked for may have left more: the next asks for what
            # the socket holds. One that got less emptied it: asking costs a system call,
            # ~4 us on a relay's one-byte round trip (four reads, each followed by another).
            size = self._waiting_size() if got == size else EMPTY_READ_SIZE

    def _waiting_size(self) -> int:
        """What the socket holds, at most READ_SIZE (EMPTY_READ_SIZE when it holds none;
        READ_SIZE when the count cannot be had)."""
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, self._waiting, True)
        except OSError:
            return READ_SIZE
        waiting = self._waiting[0]
        return min(waiting, READ_SIZE) if waiting > 0 else EMPTY_READ_SIZE

    def _arrived(self, data: bytes) -> None:
        """The peer's bytes (decrypted): count them and post them (a relay leg hands them to
        its relay first). A channel that carries messages over the stream overrides it."""
        self.received += len(data)
        self.last_activity = time.monotonic()
        notes: Sequence[Event] = ()
        if self._relay is not None:
            # The relay decides first (forward, hold): whoever the event wakes (an /expect,
            # then a /forward) finds that decision made.
            notes = self._relay.leg_received(self, data)
        self._post(Received(self.id, data, at=time.time()))
        for note in notes:
            self._post(note)

    def _decrypt(self, ciphertext: bytes) -> bytes:
        """The plaintext of the peer's bytes once the handshake is done (maybe none); on a
        TLS error the channel is finished."""
        assert self.tls is not None
        # A channel with a TLS layer: whoever made the layer loaded ssl (never a plain one).
        import ssl

        from netrepl.transport.tls import describe_ssl_error

        try:
            plaintext = self.tls.feed(ciphertext)
        except ssl.SSLError as error:
            self._finish(f"TLS error: {describe_ssl_error(error)}", failed=True)
            return b""
        self._queue_tls_output()
        return plaintext

    def _advance_handshake(self, ciphertext: bytes) -> bytes:
        assert self.tls is not None
        import ssl  # as in _decrypt

        from netrepl.transport.tls import describe_ssl_error

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
            self._release_held()
        self._flush()
        return plaintext

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for item in held:
            self._write(item)

    def _queue_tls_output(self) -> None:
        assert self.tls is not None
        if ciphertext := self.tls.take_outgoing():
            self._out.append(_Outgoing(memoryview(ciphertext), 0))

    @property
    def _holding(self) -> bool:
        """Payloads wait (in `_held`) until the handshake that must come first is done."""
        return self.state == "handshaking"

    def _framed(self, item: _Outgoing) -> memoryview:
        """What goes on the wire for a payload (a channel carrying messages frames it)."""
        return item.view

    def _write(self, item: _Outgoing) -> None:
        if self.state in ("closing", "closed"):
            self._dequeued(item.plain)
            return
        if self._holding:
            self._held.append(item)
            return
        item.view = self._framed(item)
        if self.tls is not None:
            self.tls.encrypt(item.view)
            item.view = memoryview(self.tls.take_outgoing())
        self._out.append(item)
        self._flush()

    def _flush(self) -> None:
        if not self._started:
            return  # sends queued before the socket was registered: _start flushes them
        while self._out:
            item = self._out[0]
            try:
                written = self._sock.send(item.view)
            except BlockingIOError:
                break
            except OSError as error:
                self._finish(describe_os_error(error), failed=True)
                return
            item.view = item.view[written:]
            # Plaintext counts each byte as it goes; a TLS payload (or a framed message) once
            # all its records went.
            counted = written if not self._wrapped else 0 if item.view else item.plain
            item.handed += counted
            if not item.view:
                self._out.popleft()
                self._announce(item)  # before the count, which tells a sender it is done
            if counted:
                self._counted(item, counted)
            if item.view:
                break
        if not self._out and not self._held:
            if self._eof_due and self.state in ("open", "handshaking"):
                self._shut_write()
            elif self.state == "closing" and self._closing_done():
                self._finish(self._closing_reason())
                return
        self._interest(bool(self._out))

    def _counted(self, item: _Outgoing, size: int) -> None:
        self.sent += size
        self.last_activity = time.monotonic()
        if item.delivery is not None:
            item.delivery.count(self.id, size)
        self._dequeued(size)

    def _announce(self, item: _Outgoing) -> None:
        if item.data is not None and item.handed:
            data = item.data if item.handed == len(item.data) else item.data[: item.handed]
            self._post(self._sent_event(item, data))

    def _sent_event(self, item: _Outgoing, data: bytes) -> Sent:
        """What is said of a payload that went (a channel carrying messages says which)."""
        injected = self._relay is not None
        return Sent(self.id, data, item.as_hex, item.echo, time.time(), injected)

    def _closing_done(self) -> bool:
        """Closing, with nothing left to write: may the socket close now? (A WebSocket
        waits for the peer's answer to its close frame.)"""
        return True

    def _closing_reason(self) -> str:
        return "connection closed"

    def _withdraw(self, delivery: Delivery) -> None:
        withdrawn = 0
        kept: deque[_Outgoing] = deque()
        for index, item in enumerate(self._out):
            if item.delivery is not delivery:
                kept.append(item)
            elif index == 0 and item.handed and self.tls is not None:
                kept.append(item)  # a TLS record half written must be finished
            else:
                withdrawn += item.plain - item.handed
                self._announce(item)  # what of it did go out
        self._out = kept
        held = [item for item in self._held if item.delivery is delivery]
        self._held = [item for item in self._held if item.delivery is not delivery]
        withdrawn += sum(item.plain for item in held)
        if withdrawn:
            self._dequeued(withdrawn)
        self._flush()

    def _shut_write(self) -> None:
        if self.tls is not None:
            self.tls.close_notify()
            ciphertext = self.tls.take_outgoing()
            with contextlib.suppress(OSError):  # best effort: the peer may be gone already
                self._sock.send(ciphertext)
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as error:
            # Usually "not connected": the peer reset or closed first. Reading says which,
            # and takes what it sent before that.
            self._read()
            self._finish(describe_os_error(error), failed=True)
            return
        self.state = "half-closed"
        self._post(HalfClosed(self.id))
        if self.peer_ended:
            self._finish("connection closed")

    def _interest(self, want_write: bool) -> None:
        if want_write != self._want_write and self.state != "closed":
            self._want_write = want_write
            self._watch()

    def _watch(self) -> None:
        mask = (READ if self._reading else 0) | (WRITE if self._want_write else 0)
        if mask:
            self._loop.modify(self._sock, mask, self._on_ready)
        else:
            self._loop.unregister(self._sock)

    def _peer_sent_eof(self, reason: str) -> None:
        if self._relay is None or self.state == "half-closed":
            self._finish(reason)
            return
        # A relay leg passes the half-close on and goes on writing what the other side says.
        self.peer_ended = True
        self._watch()
        self._post(HalfClosed(self.id, by_peer=True))
        self._relay.leg_ended(self)

    # ---- loop thread: what a relay does with its legs

    def forward(self, data: bytes) -> None:
        """Write or queue `data` from the other leg (no `Sent`: it was posted as received
        there)."""
        if self.state in ("half-closed", "closing", "closed") or self._eof_requested:
            return
        if not self._out and self.state == "open" and self.tls is None and self._started:
            # Nothing queued before it: straight to the socket, as most of a relay's small
            # reads go (queueing cost a round trip as much as the rest of its forwarding).
            try:
                written = self._sock.send(data)
            except BlockingIOError:
                written = 0
            except OSError as error:
                self._finish(describe_os_error(error), failed=True)
                return
            if written:
                self.sent += written
                self.last_activity = time.monotonic()
                if written == len(data):
                    return
                data = data[written:]
        with self._queue_changed:
            self._queued += len(data)
        self._write(_Outgoing(memoryview(data), len(data)))

    @property
    def backed_up(self) -> bool:
        """More is queued than a relay lets pile up: the other leg should stop reading."""
        return self._queued >= RELAY_HIGH_WATER

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the queue is down to RELAY_LOW_WATER (or the leg closed)."""
        self._on_drained = callback
        self._check_drained()

    def _check_drained(self) -> None:
        callback = self._on_drained
        if callback is not None and (self._queued <= RELAY_LOW_WATER or self.state == "closed"):
            self._on_drained = None
            callback()

    @property
    def _reading(self) -> bool:
        return not self._pauses and not self.peer_ended

    def pause_reading(self, reason: str = "backpressure") -> None:
        """Stop reading until every reason given is taken back (`resume_reading`)."""
        was_reading = self._reading
        self._pauses.add(reason)
        if was_reading and self._started and self.state != "closed":
            self._watch()

    def resume_reading(self, reason: str = "backpressure") -> None:
        was_reading = self._reading
        self._pauses.discard(reason)
        if not was_reading and self._reading and self._started and self.state != "closed":
            self._watch()

    def end_writing(self) -> None:
        """Half-close once what is queued is written (the other leg's peer half-closed)."""
        if self.state in ("open", "handshaking") and not self._eof_requested:
            self._eof_requested = True
            self._eof_due = True
            self._flush()

    def reset(self, reason: str) -> None:
        """Close with a reset, so the peer sees one (the other leg was reset)."""
        if self.state == "closed":
            return
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._out.clear()
        self._held.clear()
        self._finish(reason, failed=True, abort=True)

    def _dequeued(self, size: int) -> None:
        with self._queue_changed:
            self._queued -= size
            if self._queue_waiters:
                self._queue_changed.notify_all()
        if self._on_drained is not None and self._loop.in_loop():
            self._check_drained()

    def _begin_close(self) -> None:
        if self.state == "closed":
            return
        if not self._out or self.state == "handshaking":
            self._finish("connection closed")
            return
        self.state = "closing"
        self._loop.call_later(CLOSE_FLUSH_SECONDS, lambda: self._finish("connection closed"))

    def _finish(self, reason: str, *, failed: bool = False, abort: bool = False) -> None:
        """Close the socket and post `Closed`, once. `abort`: a reset, with no FIN before."""
        if self.state == "closed":
            return
        if failed:
            self.failure = reason
        elif self.tls is not None and self.tls.handshake_done:
            self.tls.close_notify()
            with contextlib.suppress(OSError):  # a courtesy: the peer may be gone already
                self._sock.send(self.tls.take_outgoing())
        unsent = sum(item.plain - item.handed for item in (*self._out, *self._held))
        if unsent:
            reason += f"; {unsent:,} queued bytes not sent"
        self.state = "closed"
        self._loop.unregister(self._sock)
        if not abort:
            with contextlib.suppress(OSError):  # already shut down or reset: nothing to stop
                self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._out.clear()
        self._held.clear()
        with self._queue_changed:
            self._queued = 0
            self._queue_changed.notify_all()
        self._check_drained()
        # Closed goes out before is_open turns False, so whoever waits for the close and
        # then stops the display is sure to see it.
        self._post(Closed(self.id, reason, self.received, self.sent, failed))
        self._closed.set()
        if self._on_closed is not None:
            self._on_closed(self)
