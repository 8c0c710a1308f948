"""A listening stream transport: TCP or unix, optionally TLS, with many clients at once.

The listener and every client are driven by one I/O loop. Each client gets a short id (#1,
#2) for `/to`, `/clients` and `/kick`; a client that resets, half-closes or vanishes only
ends its own connection, never the listener.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import time
from typing import TYPE_CHECKING, Any

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import CertificateInfo, Connected, Listening, Noticed
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
from netrepl.transport.client import apply_socket_options
from netrepl.transport.delivery import ChannelDelivery
from netrepl.transport.loop import READ
from netrepl.transport.registry import kind_named
from netrepl.transport.stream import RelayLeg, StreamChannel

if TYPE_CHECKING:
    import ssl

    from netrepl.transport.tls import TlsLayer

ACCEPTS_PER_WAKE = 64


def listening_socket(endpoint: Endpoint, kind: socket.SocketKind) -> socket.socket:
    """A bound socket (listening, for streams) for -l. Raises ConnectError with one line."""
    label = endpoint.label
    try:
        if endpoint.protocol == "unix":
            return _unix_listener(endpoint.path or "")
        if endpoint.host is None:
            # All interfaces, like nc -l: IPv6 and IPv4 on one socket where the OS allows.
            if endpoint.family == socket.AF_INET or not socket.has_dualstack_ipv6():
                family, address = socket.AF_INET, ("0.0.0.0", endpoint.port)
            else:
                family, address = socket.AF_INET6, ("::", endpoint.port)
            dualstack = family == socket.AF_INET6 and endpoint.family != socket.AF_INET6
        else:
            info = resolve(endpoint.host, endpoint.port, endpoint.family, kind, socket.AI_PASSIVE)[
                0
            ]
            family, address, dualstack = info[0], info[4][:2], False
        if kind == socket.SOCK_STREAM:
            return socket.create_server(address, family=family, dualstack_ipv6=dualstack)
        sock = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dualstack else 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        return sock
    except OSError as error:
        raise ConnectError(f"cannot listen on {label}: {describe_os_error(error)}") from None


def _unix_listener(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode) and _is_stale_socket(path):
            os.unlink(path)  # left behind by a process that died: nobody is listening
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def _is_stale_socket(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def bound_label(endpoint: Endpoint, sock: socket.socket) -> str:
    """What we listen on, with the real port when port 0 was asked for."""
    if endpoint.protocol == "unix":
        return endpoint.label
    port = sock.getsockname()[1]
    return format_address(endpoint.host or "*", port)


def _unix_peer_label(sock: socket.socket) -> str:
    # Unix clients are usually unnamed; the peer's process id is what identifies them.
    option = getattr(socket, "SO_PEERCRED", None)
    if option is not None:
        with contextlib.suppress(OSError):
            pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
            return f"unix:pid {pid}"
    return "unix:(unnamed)"


class StreamServer(Transport):
    """A stream listener (TCP or unix, optionally TLS) and its clients, each a StreamChannel
    with an id (#1, #2) for /to, /clients and /kick.

    The loop thread accepts (refusing clients beyond --max-clients, with a line), starts each
    client's channel, and forgets a client once it has closed; `clients` is changed only
    there. The session's thread calls `send` and `deliver` (to the clients its target names),
    `send_eof`, `kick`, `chain` and `close`. A client that resets or leaves ends only its own
    connection.
    """

    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        super().__init__(endpoint, link)
        self.clients: dict[int, StreamChannel] = {}
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._context: ssl.SSLContext | None = None
        self._earlier_received = 0
        self._earlier_sent = 0
        self._last_activity = self.started_at

    def _open(self) -> None:
        endpoint = self.endpoint
        if endpoint.tls is not None:
            # ssl is loaded when TLS is asked for, never for plain TCP (issue 14).
            from netrepl.transport.tls import server_context

            self._context = server_context(endpoint.tls)
        listener = listening_socket(endpoint, socket.SOCK_STREAM)
        listener.setblocking(False)
        self._listener = listener
        self._address = bound_label(endpoint, listener)
        self.loop.start()
        self.loop.call_soon(lambda: self.loop.register(listener, READ, self._on_accept))
        title = kind_named(endpoint.protocol).title
        upstream = endpoint.upstream.label if endpoint.upstream is not None else ""
        if endpoint.upstream is not None and endpoint.upstream.proxy is not None:
            upstream += f" via {endpoint.upstream.proxy.label}"
        tls = endpoint.tls is not None
        self.post(Listening(self.address, endpoint.protocol, tls, title, upstream))

    # ---- state

    def _open_clients(self) -> list[StreamChannel]:
        return [channel for channel in list(self.clients.values()) if channel.is_open]

    @property
    def state(self) -> str:
        if self._listener is None:
            return "closed"
        count = len(self._open_clients())
        return f"listening, {count} client{'s' if count != 1 else ''}"

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    @property
    def can_send(self) -> bool:
        return any(channel.can_send for channel in self._open_clients())

    @property
    def received(self) -> int:
        return self._earlier_received + sum(c.received for c in self._open_clients())

    @property
    def sent(self) -> int:
        return self._earlier_sent + sum(c.sent for c in self._open_clients())

    @property
    def last_activity(self) -> float:
        return max([self._last_activity, *(c.last_activity for c in self._open_clients())])

    def peers(self) -> list[PeerInfo]:
        now = time.monotonic()
        return [
            PeerInfo(c.id, c.peer, now - c.opened_at, c.received, c.sent, c.state)
            for c in self._open_clients()
        ]

    # ---- actions

    def _targets(self, target: Target) -> list[StreamChannel]:
        if isinstance(target, tuple):
            raise UsageError("/to HOST:PORT is for UDP; for a TCP client use /to N (/clients)")
        if isinstance(target, int):
            channel = self.clients.get(target)
            if channel is None or not channel.is_open:
                raise SendError(f"no client #{target} (/clients lists them; /to all)")
            return [channel]
        clients = self._open_clients()
        if not clients:
            raise SendError(f"no client connected yet (listening on {self.address})")
        return clients

    def send(self, data: bytes, target: Target, *, as_hex: bool) -> None:
        delivery = self.deliver(target)
        delivery.write(data, as_hex=as_hex, settle=True)
        # Some took it, some could not: say who did not, since they differ from now on.
        for recipient in delivery.recipients:
            if recipient.stopped is not None:
                text = f"{recipient.label} did not get it: {recipient.stopped}"
                self.post(Noticed(text, "error"))

    def deliver(self, target: Target, *, whole: bool = False) -> ChannelDelivery:
        channels = [c for c in self._targets(target) if c.can_send]
        if not channels:
            raise SendError("every target client is half-closed: nothing can be sent")
        return self._delivery([(c, f"#{c.id}") for c in channels], whole)

    def _delivery(self, channels: list[tuple[StreamChannel, str]], whole: bool) -> ChannelDelivery:
        """A send to these clients (a kind carrying messages makes a file one message)."""
        return ChannelDelivery(channels, self.cancel)

    def send_eof(self, target: Target) -> None:
        channels = self._targets(target)
        open_ones = [channel for channel in channels if channel.can_send]
        if not open_ones:
            channels[0].send_eof()  # raises, saying why (already half-closed)
        for channel in open_ones:
            channel.send_eof()

    def kick(self, conn: int) -> None:
        channel = self.clients.get(conn)
        if channel is None or not channel.is_open:
            raise UsageError(f"/kick: no client #{conn} (/clients lists them)")
        channel.close()

    def chain(self, conn: int | None) -> tuple[CertificateInfo, ...]:
        if self.endpoint.tls is None:
            raise UsageError("/cert: this listener does not use TLS (see --tls)")
        if conn is None:
            clients = self._open_clients()
            if len(clients) != 1:
                raise UsageError("/cert N: which client? (/clients lists them)")
            conn = clients[0].id
        channel = self.clients.get(conn)
        if channel is None or channel.tls_info is None:
            raise UsageError(f"/cert: no TLS client #{conn}")
        if not channel.tls_info.chain:
            raise UsageError(f"/cert: client #{conn} sent no certificate")
        return channel.tls_info.chain

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            self.loop.call_soon(lambda: self._close_listener(listener))
        for channel in self._open_clients():
            channel.close()
        self.loop.stop()
        if listener is not None:
            listener.close()  # the loop has stopped: closing here cannot race a select
            if self.endpoint.protocol == "unix" and self.endpoint.path:
                with contextlib.suppress(OSError):
                    os.unlink(self.endpoint.path)
            self.post(Noticed(f"stopped listening on {self.address}", "status"))

    # ---- loop thread

    def _close_listener(self, listener: socket.socket) -> None:
        self.loop.unregister(listener)

    def _on_accept(self, mask: int) -> None:
        listener = self._listener
        if listener is None:
            return
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                return
            except OSError as error:  # out of file descriptors, say: the listener goes on
                self.post(Noticed(f"accept failed: {describe_os_error(error)}", "error"))
                return
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: object) -> None:
        endpoint = self.endpoint
        unix = endpoint.protocol == "unix"
        peer = _unix_peer_label(sock) if unix else format_sockaddr(address)
        limit = endpoint.max_clients
        if limit is not None and len(self._open_clients()) >= limit:
            sock.close()
            self.post(
                Noticed(
                    f"refused {peer}: already {limit} client{'s' if limit != 1 else ''}"
                    f" (--max-clients {limit})",
                    "error",
                )
            )
            return
        apply_socket_options(sock, endpoint)
        layer = None
        if self._context is not None:
            from netrepl.transport.tls import TlsLayer  # loaded by _open with the context

            layer = TlsLayer(self._context, server_side=True, server_hostname=None)
        local = self.address if unix else format_sockaddr(sock.getsockname())
        channel = self._channel(sock, next(self._ids), peer, local, layer)
        self.clients[channel.id] = channel
        self.accepted += 1
        self._welcome(channel)

    def _channel(
        self, sock: socket.socket, conn: int, peer: str, local: str, layer: TlsLayer | None
    ) -> StreamChannel:
        """The channel of an accepted client (not started yet)."""
        return self._new_channel(
            self.loop,
            sock,
            conn,
            self.post,
            peer=peer,
            local=local,
            tls=layer,
            on_closed=self._client_closed,
            cancel=self.cancel,
            relay=self._relay_leg(),
        )

    def _new_channel(self, *args: Any, **kwargs: Any) -> StreamChannel:
        """A client's channel (a kind carrying messages makes its own), as the client's is."""
        return StreamChannel(*args, **kwargs)

    def _relay_leg(self) -> RelayLeg | None:
        """What a client's data is handed to besides the session (a relay joins each client
        to a connection of its own); None: nothing."""
        return None

    def _welcome(self, channel: StreamChannel) -> None:
        """Announce an accepted client and start reading it."""
        protocol = self.endpoint.protocol
        self.post(Connected(channel.id, channel.peer, channel.local, protocol, True, time.time()))
        channel.start()

    def _client_closed(self, channel: StreamChannel) -> None:
        self.clients.pop(channel.id, None)
        self._earlier_received += channel.received
        self._earlier_sent += channel.sent
        self._last_activity = max(self._last_activity, channel.last_activity)
        self._finished += 1
        self.notify()
