"""UDP: a client that sends datagrams to one address, or a listener that hears anyone.

Each typed line is one datagram and each received datagram is one `Received(datagram=True)`,
so boundaries survive to the display. Senders get short ids (#1, #2) like TCP clients, for
`/to` and `/clients`. A refused datagram (ICMP port unreachable) is reported, never fatal.
"""

from __future__ import annotations

import errno
import select
import socket
import threading
import time
from dataclasses import dataclass

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import Closed, Connected, Listening, Noticed, Received, Sent
from netrepl.transport import (
    Endpoint,
    PeerInfo,
    SessionLink,
    Target,
    describe_os_error,
    format_address,
    format_sockaddr,
)
from netrepl.transport.base import Transport
from netrepl.transport.client import bind_source
from netrepl.transport.loop import READ
from netrepl.transport.server import bound_label, listening_socket

# The largest UDP payload: 65,535 minus the 8-byte UDP and 20-byte IPv4 headers.
MAX_DATAGRAM = 65507
DATAGRAMS_PER_WAKE = 64


@dataclass
class _Sender:
    conn: int
    address: tuple  # type: ignore[type-arg]
    label: str
    first_seen: float
    received: int = 0
    sent: int = 0


class DatagramTransport(Transport):
    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        super().__init__(endpoint, link)
        self._sock: socket.socket | None = None
        self._connected = False
        """A client socket connect()ed to its peer: it hears only that peer, and ICMP errors."""
        self._peer: _Sender | None = None
        self._senders: dict[tuple, _Sender] = {}  # type: ignore[type-arg]
        self._by_id: dict[int, _Sender] = {}
        self._last_sender: _Sender | None = None
        self._senders_lock = threading.Lock()
        self._buffer = bytearray(65536)
        self._view = memoryview(self._buffer)
        self._received = 0
        self._sent = 0
        self._last_activity = self.started_at
        self.address = endpoint.label

    def _open(self) -> None:
        endpoint = self.endpoint
        if endpoint.listen:
            sock = listening_socket(endpoint, socket.SOCK_DGRAM)
            self.address = bound_label(endpoint, sock)
        else:
            sock = self._client_socket()
        if endpoint.broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setblocking(False)
        self._sock = sock
        self.loop.start()
        self.loop.call_soon(lambda: self.loop.register(sock, READ, self._on_read))
        if endpoint.listen:
            self.post(Listening(self.address, "udp"))
        else:
            assert self._peer is not None
            local = format_sockaddr(sock.getsockname())
            self.post(Connected(self._peer.conn, self._peer.label, local, "udp", at=time.time()))

    def _client_socket(self) -> socket.socket:
        endpoint = self.endpoint
        assert endpoint.host is not None
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
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
        self._peer = self._sender_for(address, announce=False)
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
        for index, sender in enumerate(self._destinations(target)):
            self._send_one(sender, data)
            self.post(Sent(sender.conn, data, as_hex, echo=index == 0, at=time.time()))

    def _destinations(self, target: Target) -> list[_Sender]:
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

    def _resolve(self, host: str, port: int) -> _Sender:
        assert self._sock is not None
        flags = socket.AI_V4MAPPED if self._sock.family == socket.AF_INET6 else 0
        try:
            address = socket.getaddrinfo(
                host, port, self._sock.family, socket.SOCK_DGRAM, 0, flags
            )[0][4]
        except OSError as error:
            raise UsageError(
                f"cannot send to {format_address(host, port)}: {describe_os_error(error)}"
            ) from None
        return self._sender_for(address, announce=True)

    def _send_one(self, sender: _Sender, data: bytes) -> None:
        sock = self._sock
        assert sock is not None
        for attempt in range(3):
            try:
                if self._connected:
                    sock.send(data)
                else:
                    sock.sendto(data, sender.address)
                break
            except ConnectionRefusedError:
                # The refusal of an earlier datagram, reported now; this one was not sent.
                self._report_unreachable()
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

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self.loop.call_soon(lambda: self.loop.unregister(sock))
        self.loop.stop()
        sock.close()
        if self._peer is not None:
            self.post(Closed(self._peer.conn, "closed", self._received, self._sent))
        else:
            self.post(Noticed(f"stopped listening on {self.address}", "status"))

    # ---- senders

    def _sender_for(self, address: tuple, *, announce: bool) -> _Sender:  # type: ignore[type-arg]
        key = address[:2]
        with self._senders_lock:
            sender = self._senders.get(key)
            if sender is not None:
                return sender
            sender = _Sender(next(self._ids), address, format_sockaddr(address), time.monotonic())
            self._senders[key] = sender
            self._by_id[sender.conn] = sender
        if announce:
            sock = self._sock
            local = format_sockaddr(sock.getsockname()) if sock is not None else "?"
            self.post(
                Connected(sender.conn, sender.label, local, "udp", accepted=True, at=time.time())
            )
        return sender

    # ---- loop thread

    def _on_read(self, mask: int) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(DATAGRAMS_PER_WAKE):
            try:
                size, address = sock.recvfrom_into(self._buffer)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                self._report_unreachable()
                continue
            except OSError as error:
                self.post(Noticed(f"receive failed: {describe_os_error(error)}", "error"))
                return
            if self._connected:
                assert self._peer is not None
                sender = self._peer
            else:
                sender = self._sender_for(address, announce=True)
            with self._senders_lock:
                self._last_sender = sender
            data = bytes(self._view[:size])
            self._received += size
            sender.received += size
            self._last_activity = time.monotonic()
            self.post(Received(sender.conn, data, datagram=True, at=time.time()))

    def _report_unreachable(self) -> None:
        label = self._peer.label if self._peer is not None else "the peer"
        self.post(
            Noticed(
                f"port unreachable: nothing listens on {label} (ICMP); that datagram was dropped",
                "error",
            )
        )
