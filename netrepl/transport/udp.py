"""UDP: a client that sends datagrams to one address, or a listener that hears anyone.

Each typed line is one datagram and each received datagram is one `Received(datagram=True)`,
so boundaries survive to the display. Senders get short ids (#1, #2) like TCP clients, for
`/to` and `/clients`; an address only sent to (`/to HOST:PORT`) is a destination, never
announced or counted as a sender until a datagram comes from it. A refused datagram (ICMP
port unreachable) is reported, never fatal. UDP has no flow control: whatever the loop does
not read in time the kernel drops, so the loop never waits on anything but its socket.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import Closed, Connected, Event, Listening, Noticed, Received, Sent
from netrepl.records import record
from netrepl.transport import (
    Endpoint,
    PeerInfo,
    SessionLink,
    Target,
    describe_os_error,
    format_address,
    format_sockaddr,
    resolve,
)
from netrepl.transport.base import Transport
from netrepl.transport.client import bind_source
from netrepl.transport.loop import READ
from netrepl.transport.registry import kind_named
from netrepl.transport.server import bound_label, listening_socket

# The largest UDP payload: 65,535 minus the 8-byte UDP and 20-byte IPv4 headers.
MAX_DATAGRAM = 65507
RECEIVE_SIZE = 65536  # more than any datagram (an IPv6 jumbogram aside)
# A turn of the loop reads until the socket is empty (or this many datagrams, so other
# calls queued for the loop still run in an endless flood), then posts POSTS_PER_TURN of
# them: ~0.5 ms of work, against the ~1 ms of a 100 MB/s burst that the kernel's default
# buffer holds. What is read and not yet posted waits in memory, up to PENDING_LIMIT
# (each datagram counted with PENDING_OVERHEAD).
DATAGRAMS_PER_WAKE = 4096
POSTS_PER_TURN = 32
PENDING_LIMIT = 32 * 1024 * 1024
PENDING_OVERHEAD = 128
# The receive buffer asked for by default (`--rcvbuf`): the kernel's default (~208 KiB)
# holds only 92 datagrams of 1 KB, 1 ms of a 100 MB/s burst. Linux doubles what is asked
# (for its bookkeeping) and caps it at net.core.rmem_max; 4 MiB is a common rmem_max.
DEFAULT_RCVBUF = 4 * 1024 * 1024


@record
class Sender:
    """A peer of the socket: a sender (or a destination) of a listener, a client's peer."""

    conn: int
    address: tuple  # type: ignore[type-arg]
    label: str
    first_seen: float
    received: int = 0
    sent: int = 0


class DatagramTransport(Transport):
    """UDP: a client that sends to one address, or a listener that hears anyone.

    It owns one socket and the table of senders (each with an id, as a client of a stream
    listener has) and destinations (addresses sent to, not yet heard from). Its loop thread
    reads the socket empty into memory, then posts the datagrams as `Received(datagram=True)`
    a few at a time, announcing a new sender first. `send` is called from the session's
    thread and sends at once (a datagram either goes whole or not at all), posting `Sent`;
    the sender table is guarded by a lock, since both threads use it.
    """

    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        super().__init__(endpoint, link)
        self._sock: socket.socket | None = None
        self._connected = False
        """A client socket connect()ed to its peer: it hears only that peer, and ICMP errors."""
        self._peer: Sender | None = None
        self._senders: dict[tuple, Sender] = {}  # type: ignore[type-arg]
        """Who sent us a datagram, by (host, port); written under the lock, read without."""
        self._by_id: dict[int, Sender] = {}
        self._destinations: dict[tuple, Sender] = {}  # type: ignore[type-arg]
        """Addresses sent to (/to HOST:PORT) that have not sent anything yet."""
        self._last_sender: Sender | None = None
        self._senders_lock = threading.Lock()
        self._pending: deque[tuple[bytes, tuple, float]] = deque()  # type: ignore[type-arg]
        """Datagrams read and not yet posted: (data, sender address, time read)."""
        self._pending_size = 0
        self._pump_due = False
        self._closing = False
        self._received = 0
        self._sent = 0
        self._last_activity = self.started_at
        self.receive_buffer = 0
        """The socket's receive buffer as the system granted it, in bytes."""

    def _open(self) -> None:
        endpoint = self.endpoint
        if endpoint.listen:
            sock = listening_socket(endpoint, socket.SOCK_DGRAM)
            self._address = bound_label(endpoint, sock)
        else:
            sock = self._client_socket()
        if endpoint.broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.receive_buffer = set_receive_buffer(sock, endpoint.rcvbuf or DEFAULT_RCVBUF)
        sock.setblocking(False)
        self._sock = sock
        self.loop.start()
        self.loop.call_soon(lambda: self.loop.register(sock, READ, self._on_readable))
        if endpoint.listen:
            upstream = endpoint.upstream.label if endpoint.upstream is not None else ""
            self.post(
                Listening(self.address, "udp", title=kind_named("udp").title, upstream=upstream)
            )
        else:
            assert self._peer is not None
            local = format_sockaddr(sock.getsockname())
            self.post(
                Connected(
                    self._peer.conn, self._peer.label, local, "udp", at=time.time(), datagram=True
                )
            )
        granted = self.receive_buffer
        if endpoint.rcvbuf is not None and granted < endpoint.rcvbuf:
            hint = " (raise net.core.rmem_max for more)" if sys.platform == "linux" else ""
            text = f"--rcvbuf {endpoint.rcvbuf:,}: the system allows {granted:,} bytes{hint}"
            self.post(Noticed(text, "status"))

    def _client_socket(self) -> socket.socket:
        endpoint = self.endpoint
        assert endpoint.host is not None
        try:
            family, kind, proto, _, address = resolve(
                endpoint.host, endpoint.port, endpoint.family, socket.SOCK_DGRAM
            )[0]
        except OSError as error:
            raise ConnectError(
                f"cannot send to {endpoint.label}: {describe_os_error(error)}"
            ) from None
        sock = socket.socket(family, kind, proto)
        try:
            if endpoint.source is not None:
                bind_source(sock, endpoint.source)
            if endpoint.broadcast:
                # Replies to a broadcast come from each host's own address, which a
                # connected socket would filter out: stay unconnected and use sendto.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            else:
                sock.connect(address)
                self._connected = True
        except ConnectError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            hint = " (a broadcast address needs --broadcast)" if error.errno == errno.EACCES else ""
            raise ConnectError(
                f"cannot send to {endpoint.label}: {describe_os_error(error)}{hint}"
            ) from None
        self._peer = self._new_sender(address)
        return sock

    # ---- state

    @property
    def state(self) -> str:
        if self._sock is None:
            return "closed"
        if self.endpoint.listen:
            count = len(self._by_id)
            return f"listening, {count} sender{'s' if count != 1 else ''}"
        return "ready"

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    @property
    def can_send(self) -> bool:
        return self._sock is not None and (self._peer is not None or bool(self._by_id))

    @property
    def received(self) -> int:
        return self._received

    @property
    def sent(self) -> int:
        return self._sent

    @property
    def last_activity(self) -> float:
        return self._last_activity

    def default_target(self) -> Target:
        return "last" if self.endpoint.listen else "all"

    def check_target(self, target: Target) -> None:
        pass  # any address: a datagram goes wherever it is sent

    def peers(self) -> list[PeerInfo]:
        now = time.monotonic()
        with self._senders_lock:
            senders = list(self._by_id.values())
        return [
            PeerInfo(s.conn, s.label, now - s.first_seen, s.received, s.sent, "udp")
            for s in senders
        ]

    # ---- actions

    def send(self, data: bytes, target: Target, *, as_hex: bool) -> None:
        if self._sock is None:
            raise SendError("not open (/reconnect or /connect HOST PORT)")
        if len(data) > MAX_DATAGRAM:
            raise SendError(
                f"a datagram of {len(data):,} bytes is too large (UDP carries at most"
                f" {MAX_DATAGRAM:,})"
            )
        for index, sender in enumerate(self._recipients(target)):
            self._send_one(sender, data)
            self.post(Sent(sender.conn, data, as_hex, echo=index == 0, at=time.time()))

    def _recipients(self, target: Target) -> list[Sender]:
        if not self.endpoint.listen:
            assert self._peer is not None
            return [self._peer]
        if isinstance(target, tuple):
            return [self._resolve(*target)]
        with self._senders_lock:
            if target == "last":
                if self._last_sender is None:
                    raise SendError(
                        "no datagram received yet, so no one to reply to (/to HOST:PORT)"
                    )
                return [self._last_sender]
            if target == "all":
                if not self._by_id:
                    raise SendError("no sender known yet (/to HOST:PORT)")
                return list(self._by_id.values())
            sender = self._by_id.get(target)
        if sender is None:
            raise SendError(f"no sender #{target} (/clients lists them)")
        return [sender]

    def _resolve(self, host: str, port: int) -> Sender:
        """The sender at HOST:PORT, or else a destination: sending to an address does not
        make it a sender (nothing came from it), so it is neither announced nor counted."""
        assert self._sock is not None
        flags = socket.AI_V4MAPPED if self._sock.family == socket.AF_INET6 else 0
        try:
            address = resolve(host, port, self._sock.family, socket.SOCK_DGRAM, flags)[0][4]
        except OSError as error:
            raise UsageError(
                f"cannot send to {format_address(host, port)}: {describe_os_error(error)}"
            ) from None
        key = address[:2]
        with self._senders_lock:
            known = self._senders.get(key) or self._destinations.get(key)
            if known is not None:
                return known
            destination = self._destinations[key] = self._new_sender(address)
        self.post(
            Noticed(
                f"sending datagrams to {destination.label}"
                " (a sender once a datagram comes from it)",
                "status",
            )
        )
        return destination

    def _send_one(self, sender: Sender, data: bytes) -> None:
        sock, connected = self._socket_for(sender)
        for attempt in range(3):
            try:
                if connected:
                    sock.send(data)
                else:
                    sock.sendto(data, sender.address)
                break
            except ConnectionRefusedError:
                # The refusal of an earlier datagram, reported now; this one was not sent.
                self._report_unreachable(sender)
            except BlockingIOError:
                select.select([], [sock], [], 1.0)
            except OSError as error:
                hint = (
                    " (a broadcast address needs --broadcast)"
                    if error.errno == errno.EACCES
                    else ""
                )
                raise SendError(
                    f"send to {sender.label} failed: {describe_os_error(error)}{hint}"
                ) from None
            if attempt == 2:
                raise SendError(f"send to {sender.label} failed: the socket stayed busy")
        self._sent += len(data)
        sender.sent += len(data)
        self._last_activity = time.monotonic()

    def _socket_for(self, sender: Sender) -> tuple[socket.socket, bool]:
        """The socket a datagram to `sender` goes out on, and whether it is connected to
        `sender` (a relay's upstream legs have sockets of their own). Raises SendError."""
        sock = self._sock
        assert sock is not None
        return sock, self._connected

    def close(self) -> None:
        sock = self._sock
        if sock is None or self._closing:
            return
        self._closing = True
        self.loop.call_soon(lambda: self.loop.unregister(sock))
        self.loop.stop()
        # The loop has stopped: what arrived before the close is still posted (and logged),
        # from the socket's queue and from what was read but not yet posted.
        self._read_all()
        self._post_pending(None)
        self._closing_sockets()
        self._sock = None
        sock.close()
        if self._peer is not None:
            self.post(Closed(self._peer.conn, "closed", self._received, self._sent))
        else:
            self.post(Noticed(f"stopped listening on {self.address}", "status"))

    def _closing_sockets(self) -> None:
        """The loop has stopped and what the socket held is posted; it is still open (a
        relay ends its flows here)."""

    # ---- senders

    def _new_sender(self, address: tuple) -> Sender:  # type: ignore[type-arg]
        return Sender(next(self._ids), address, format_sockaddr(address), time.monotonic())

    def _first_datagram_from(self, address: tuple, at: float) -> Sender:  # type: ignore[type-arg]
        """A new sender (a destination we sent to keeps its id), announced as of `at`, when
        its first datagram was read."""
        key = address[:2]
        with self._senders_lock:
            sender = self._destinations.pop(key, None)
            if sender is None:
                sender = self._new_sender(address)
            else:
                sender.first_seen = time.monotonic()
            self._senders[key] = sender
            self._by_id[sender.conn] = sender
        sock = self._sock
        local = format_sockaddr(sock.getsockname()) if sock is not None else "?"
        self._welcome(sender, local, at)
        return sender

    def _welcome(self, sender: Sender, local: str, at: float) -> None:
        """Announce a new sender, heard on `local` (on the loop thread, or in `close` once
        the loop has stopped)."""
        self._post_event(
            Connected(sender.conn, sender.label, local, "udp", accepted=True, at=at, datagram=True)
        )

    def _forget(self, sender: Sender) -> None:
        """Take a sender out of the tables: its next datagram makes it a new sender (a
        relay whose flow ended)."""
        with self._senders_lock:
            self._senders.pop(sender.address[:2], None)
            self._by_id.pop(sender.conn, None)
            if self._last_sender is sender:
                self._last_sender = None

    # ---- loop thread

    def _on_readable(self, mask: int) -> None:
        self._pump()

    def _pump(self) -> None:
        """Empty the socket into memory, then post a few of the datagrams read, and come
        back soon while some are left. Reading costs ~2 us a datagram, posting one (the
        log, the watchers, the display queue) several times that: a burst faster than
        posting waits here, in memory, rather than overflowing the kernel's buffer."""
        self._pump_due = False
        self._read_all()
        self._post_pending(POSTS_PER_TURN)
        if self._pending and not self._pump_due and self._sock is not None:
            self._pump_due = True
            self.loop.call_soon(self._pump)

    def _read_all(self) -> None:
        sock = self._sock
        if sock is None:
            return
        receive, pending, clock = sock.recvfrom, self._pending, time.time
        for _ in range(DATAGRAMS_PER_WAKE):
            if self._pending_size >= PENDING_LIMIT:
                return  # the kernel's buffer takes what comes next, then drops
            try:
                data, address = receive(RECEIVE_SIZE)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                self._report_unreachable()
                continue
            except OSError as error:
                if self._sock is not None:  # not closed under us
                    self.post(Noticed(f"receive failed: {describe_os_error(error)}", "error"))
                return
            pending.append((data, address, clock()))
            self._pending_size += len(data) + PENDING_OVERHEAD

    def _post_pending(self, limit: int | None) -> None:
        """Post up to `limit` datagrams read (all with None), in the order they came; wake
        waiters once."""
        pending, post, senders = self._pending, self._post_event, self._senders
        arrived = self._arrived
        count = len(pending) if limit is None else min(limit, len(pending))
        if not count:
            return
        sender = self._peer
        received = 0
        for _ in range(count):
            data, address, at = pending.popleft()
            self._pending_size -= len(data) + PENDING_OVERHEAD
            if not self._connected:
                sender = senders.get(address[:2]) or self._first_datagram_from(address, at)
            assert sender is not None
            received += len(data)
            sender.received += len(data)
            notes = arrived(sender, data)  # a relay decides first (forward, hold), then posts
            post(Received(sender.conn, data, True, at))
            for note in notes:
                post(note)
        self._received += received
        self._last_activity = time.monotonic()
        with self._senders_lock:
            self._last_sender = sender
        self.notify()

    def _arrived(self, sender: Sender, data: bytes) -> Sequence[Event]:
        """A datagram from `sender`, about to be posted (a relay forwards it here); returns
        the lines about it, posted after it."""
        return ()

    def _report_unreachable(self, sender: Sender | None = None) -> None:
        """An ICMP port unreachable came back, for a datagram sent to `sender` (None: to
        the peer of a connected socket)."""
        peer = sender or self._peer
        label = peer.label if peer is not None else "the peer"
        self.post(
            Noticed(
                f"port unreachable: nothing listens on {label} (ICMP); that datagram was dropped",
                "error",
            )
        )


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a receive buffer of `size` bytes; return what the system granted (Linux
    reports twice what it counts as data, since it counts its bookkeeping too: halved here,
    so an uncapped request reads back as itself)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return granted // 2 if sys.platform == "linux" else granted
