"""A stream client: one TCP or unix connection, optionally TLS, reconnecting if asked.

Connecting (name lookup, connect, TLS handshake) is done on the caller's thread, or on a
reconnect thread, with a deadline; the connected socket is then handed to the I/O loop.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import CertificateInfo, Connected, Event, Noticed
from netrepl.proxy import ProxyError, ProxySettings, open_handshake
from netrepl.records import replace
from netrepl.transport import (
    Endpoint,
    PeerInfo,
    SessionLink,
    Target,
    describe_os_error,
    format_address,
    format_sockaddr,
    resolve,
    wait_ready,
)
from netrepl.transport.base import Transport
from netrepl.transport.delivery import ChannelDelivery
from netrepl.transport.loop import IOLoop
from netrepl.transport.stream import RelayLeg, StreamChannel

if TYPE_CHECKING:
    import ssl

    from netrepl.transport.tls import TlsLayer

# Automatic reconnects wait longer after each failure, up to this (or the first delay, if
# that is longer), so a peer that is down for the night is not hammered.
RECONNECT_CAP = 30.0
RECONNECT_FLOOR = 0.1


def apply_socket_options(sock: socket.socket, endpoint: Endpoint) -> None:
    """--keepalive and --nodelay, on a TCP socket (unix sockets have neither)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if endpoint.nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if endpoint.keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # Linux waits two hours before the first probe by default: far too long to notice a
        # device that lost power. Probe after 60 s idle, every 10 s, give up after 6 misses.
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _connect(
    sock: socket.socket, address: object, deadline: float | None, cancel: threading.Event, what: str
) -> None:
    # Non-blocking, so Ctrl-C can stop a connect to a host that never answers.
    sock.setblocking(False)
    code = sock.connect_ex(address)  # type: ignore[arg-type]
    if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        wait_ready(sock, write=True, deadline=deadline, cancel=cancel, what=what)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))
    sock.setblocking(True)


def connect_stream(
    endpoint: Endpoint, deadline: float | None, cancel: threading.Event
) -> tuple[socket.socket, bytes]:
    """A connected blocking socket for a TCP or unix endpoint, through its --proxy when it
    has one, and what the peer already sent: a proxy's success reply may arrive with the
    target's first bytes, which belong to the connection. Raises ConnectError."""
    if endpoint.proxy is not None:
        return _connect_through_proxy(endpoint, endpoint.proxy, deadline, cancel)
    return _connect_direct(endpoint, deadline, cancel, f"cannot connect to {endpoint.label}"), b""


def _connect_direct(
    endpoint: Endpoint, deadline: float | None, cancel: threading.Event, what: str
) -> socket.socket:
    def fail(reason: str) -> ConnectError:
        return ConnectError(f"{what}: {reason}")

    if endpoint.protocol == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _connect(sock, endpoint.path or "", deadline, cancel, what)
        except ConnectError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            raise fail(_connect_reason(error, endpoint)) from None
        return sock
    assert endpoint.host is not None
    try:
        addresses = resolve(endpoint.host, endpoint.port, endpoint.family, socket.SOCK_STREAM)
    except OSError as error:
        raise fail(describe_os_error(error)) from None
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            if endpoint.source is not None:
                bind_source(sock, endpoint.source)
            apply_socket_options(sock, endpoint)
            _connect(sock, address, deadline, cancel, what)
            return sock
        except ConnectError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            last = error
    assert last is not None
    raise fail(_connect_reason(last, endpoint)) from None


def _connect_through_proxy(
    endpoint: Endpoint, proxy: ProxySettings, deadline: float | None, cancel: threading.Event
) -> tuple[socket.socket, bytes]:
    """Connect to the proxy, then run its handshake (proxy.py) toward the endpoint's address,
    on this thread with the connect's deadline and Ctrl-C."""
    assert endpoint.host is not None
    what = f"cannot connect to {endpoint.label}: via {proxy.label}"
    host = endpoint.host if proxy.resolves_names else _resolve_target(endpoint, proxy)
    hop = replace(endpoint, host=proxy.host, port=proxy.port, proxy=None, tls=None)
    sock = _connect_direct(hop, deadline, cancel, f"cannot connect to the {proxy.label}")
    handshake = open_handshake(proxy, host, endpoint.port)
    try:
        sock.sendall(handshake.start())
        while not handshake.done:
            wait_ready(sock, write=False, deadline=deadline, cancel=cancel, what=what)
            data = sock.recv(65536)
            if not data:
                raise ProxyError(handshake.closed())
            reply = handshake.receive(data)
            if reply:
                sock.sendall(reply)
    except ConnectError:
        sock.close()
        raise
    except ProxyError as error:
        sock.close()
        raise ConnectError(f"{what}: {error}") from None
    except TimeoutError:
        sock.close()
        waited = _connect_reason(TimeoutError(), endpoint)
        if handshake.answered:
            raise ConnectError(f"{what}: the handshake {waited}") from None
        raise ConnectError(f"{what}: no answer from the proxy ({waited})") from None
    except OSError as error:
        sock.close()
        raise ConnectError(f"{what}: {describe_os_error(error)}") from None
    return sock, handshake.early


def _resolve_target(endpoint: Endpoint, proxy: ProxySettings) -> str:
    """The target's address for a proxy that takes addresses, not names (socks5, socks4)."""
    assert endpoint.host is not None
    # SOCKS4 carries IPv4 addresses only.
    family = socket.AF_INET if proxy.protocol == "socks4" else endpoint.family
    try:
        found = resolve(endpoint.host, endpoint.port, family, socket.SOCK_STREAM)
    except OSError as error:
        remote = {"socks5": "socks5h", "socks4": "socks4a"}[proxy.scheme]
        hint = f" ({remote}:// lets the proxy look it up)"
        raise ConnectError(
            f"cannot connect to {endpoint.label}: {describe_os_error(error)}{hint}"
        ) from None
    return str(found[0][4][0])


def _connect_reason(error: OSError, endpoint: Endpoint) -> str:
    if isinstance(error, TimeoutError) and endpoint.connect_timeout is not None:
        return f"timed out after {endpoint.connect_timeout:g} s"
    return describe_os_error(error)


def bind_source(sock: socket.socket, source: tuple[str, int]) -> None:
    """Bind the local end (--source) in the socket's own family. Raises ConnectError."""
    host, port = source
    try:
        infos = resolve(host, port, sock.family, sock.type, socket.AI_PASSIVE)
        sock.bind(infos[0][4])
    except OSError as error:
        raise ConnectError(
            f"cannot bind the local end to {format_address(host, port)}: {describe_os_error(error)}"
        ) from None


def open_connection(
    endpoint: Endpoint,
    deadline: float | None,
    cancel: threading.Event,
    context: ssl.SSLContext | None = None,
) -> tuple[socket.socket, TlsLayer | None, bytes]:
    """Connect to a stream endpoint and, with TLS, finish the handshake (with `context`,
    or one built from the endpoint's options): the socket (blocking, no timeout), its TLS
    layer, and what the server sent with its last handshake message. Raises ConnectError."""
    sock, early = connect_stream(endpoint, deadline, cancel)
    layer = None
    try:
        if endpoint.tls is not None:
            layer, early = _handshake(endpoint, sock, deadline, cancel, context, early)
    except ConnectError:
        sock.close()
        raise
    sock.settimeout(None)
    return sock, layer, early


def _handshake(
    endpoint: Endpoint,
    sock: socket.socket,
    deadline: float | None,
    cancel: threading.Event,
    context: ssl.SSLContext | None,
    received: bytes,
) -> tuple[TlsLayer, bytes]:
    # ssl is loaded when TLS is asked for, never for plain TCP (+43 M instructions a start).
    from netrepl.transport.tls import TlsLayer, client_context, client_handshake

    assert endpoint.tls is not None
    context = context or client_context(endpoint.tls)
    hostname = endpoint.tls.sni or (endpoint.host if endpoint.protocol != "unix" else None)
    if hostname is None and context.check_hostname:
        raise ConnectError(
            "TLS over a unix socket needs --sni NAME to check the certificate's name"
            " (or --insecure)"
        )
    layer = TlsLayer(context, server_side=False, server_hostname=hostname)
    early = client_handshake(
        sock, layer, deadline, cancel, endpoint.label, endpoint.connect_timeout, received
    )
    return layer, early


def connected_channel(
    loop: IOLoop,
    sock: socket.socket,
    conn: int,
    post: Callable[[Event], None],
    label: str,
    layer: TlsLayer | None,
    early: bytes,
    *,
    on_closed: Callable[[StreamChannel], None],
    cancel: threading.Event,
    relay: RelayLeg | None = None,
    proxied: bool = False,
    factory: Callable[..., StreamChannel] = StreamChannel,
) -> StreamChannel:
    """The channel of a socket this side connected (`open_connection`'s), not started yet:
    its peer as the socket names it (`label` for a unix socket, whose peer is unnamed, and
    when `proxied`: the socket's peer is then the proxy), and its TLS facts when it has a
    layer. `factory` makes the channel (a StreamChannel's subclass that carries messages,
    say)."""
    unix = sock.family == socket.AF_UNIX
    peer = label if unix or proxied else format_sockaddr(sock.getpeername())
    local = "" if unix else format_sockaddr(sock.getsockname())  # unix clients are unnamed
    channel = factory(
        loop,
        sock,
        conn,
        post,
        peer=peer,
        local=local,
        tls=layer,
        early_data=early,
        on_closed=on_closed,
        cancel=cancel,
        relay=relay,
    )
    if layer is not None:
        channel.tls_info = layer.established(conn)
    return channel


class StreamClient(Transport):
    """A stream client: one connection at a time (a StreamChannel), and with --reconnect a
    thread of its own that connects again after the peer goes away.

    `open` connects on the caller's thread (name lookup, connect, TLS handshake, all with a
    deadline and stopped by Ctrl-C); a reconnect does the same on the reconnect thread. Each
    connected socket is handed to the I/O loop as a new channel with a new id. The session's
    thread calls `send`, `deliver`, `send_eof` and `close`; the counts add up every
    connection's.
    """

    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        super().__init__(endpoint, link)
        self.channel: StreamChannel | None = None
        self._earlier_received = 0
        self._earlier_sent = 0
        self._closed_by_user = False
        self._reconnecting = False
        self._stop_reconnecting = threading.Event()
        # A reconnect that succeeds just as the user closes must not leave a live socket.
        self._install_lock = threading.Lock()

    def _open(self) -> None:
        """Connect now. Raises ConnectError, unless --reconnect: then it keeps trying."""
        endpoint = self.endpoint
        if endpoint.tls is not None:
            from netrepl.transport.tls import client_context  # only with TLS: see _handshake

            client_context(endpoint.tls)  # a bad --cafile or --cert is a usage error, now
        self.loop.start()
        try:
            self._connect()
        except ConnectError as error:
            if endpoint.reconnect is None:
                raise
            self.post(Noticed(str(error), "error"))
            self._start_reconnecting()

    # ---- state

    @property
    def state(self) -> str:
        channel = self.channel
        if channel is not None and channel.is_open:
            return "half-closed" if channel.state == "half-closed" else "connected"
        if self._reconnecting:
            return "reconnecting"
        return "closed"

    @property
    def is_open(self) -> bool:
        channel = self.channel
        return self._reconnecting or (channel is not None and channel.is_open)

    @property
    def can_send(self) -> bool:
        channel = self.channel
        return channel is not None and channel.can_send

    @property
    def received(self) -> int:
        channel = self.channel
        return self._earlier_received + (channel.received if channel else 0)

    @property
    def sent(self) -> int:
        channel = self.channel
        return self._earlier_sent + (channel.sent if channel else 0)

    @property
    def last_activity(self) -> float:
        channel = self.channel
        return channel.last_activity if channel else self.started_at

    @property
    def failure(self) -> str | None:
        channel = self.channel
        return channel.failure if channel else None

    def peers(self) -> list[PeerInfo]:
        channel = self.channel
        if channel is None or not channel.is_open:
            return []
        return [
            PeerInfo(
                channel.id,
                channel.peer,
                time.monotonic() - channel.opened_at,
                channel.received,
                channel.sent,
                channel.state,
            )
        ]

    # ---- actions

    def send(self, data: bytes, target: Target, *, as_hex: bool) -> None:
        self.deliver(target).write(data, as_hex=as_hex, settle=True)

    def deliver(self, target: Target, *, whole: bool = False) -> ChannelDelivery:
        channel = self.channel
        if channel is None or not channel.is_open:
            if self._reconnecting:
                raise SendError("not connected: reconnecting (/close stops it)")
            raise SendError("not connected (/reconnect or /connect HOST PORT)")
        return self._delivery([(channel, channel.peer)], whole)

    def _delivery(self, channels: list[tuple[StreamChannel, str]], whole: bool) -> ChannelDelivery:
        """A send to these channels (a kind carrying messages makes a file one message)."""
        return ChannelDelivery(channels, self.cancel)

    def send_eof(self, target: Target) -> None:
        channel = self.channel
        if channel is None or not channel.is_open:
            raise SendError("not connected: nothing to half-close")
        channel.send_eof()

    def chain(self, conn: int | None) -> tuple[CertificateInfo, ...]:
        if self.endpoint.tls is None:
            raise UsageError("/cert: this connection does not use TLS (see --tls)")
        channel = self.channel
        if channel is None or channel.tls_info is None:
            raise UsageError("/cert: not connected")
        return channel.tls_info.chain

    def close(self) -> None:
        with self._install_lock:
            self._closed_by_user = True
            self._stop_reconnecting.set()
            self._reconnecting = False
            channel = self.channel
        if channel is not None:
            channel.close()
        self.loop.stop()

    # ---- connecting

    def _connect(self) -> None:
        endpoint = self.endpoint
        timeout = endpoint.connect_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        sock, layer, early = open_connection(endpoint, deadline, self.cancel)
        with self._install_lock:
            if self._closed_by_user:
                sock.close()
                return
            self._install(sock, layer, early)

    def _install(self, sock: socket.socket, layer: TlsLayer | None, early: bytes) -> None:
        endpoint = self.endpoint
        conn = next(self._ids)
        channel = connected_channel(
            self.loop,
            sock,
            conn,
            self.post,
            endpoint.label,
            layer,
            early,
            on_closed=self._channel_closed,
            cancel=self.cancel,
            proxied=endpoint.proxy is not None,
            factory=self._new_channel,
        )
        peer, local = channel.peer, channel.local
        previous, self.channel = self.channel, channel
        if previous is not None:
            self._earlier_received += previous.received
            self._earlier_sent += previous.sent
        # The channel is in place before anyone hears of it: whoever reacts to Connected
        # by sending finds it ready. Reconnecting ends here, before the channel can close.
        self._reconnecting = False
        via = endpoint.proxy.label if endpoint.proxy is not None else None
        self.post(Connected(conn, peer, local, endpoint.protocol, at=time.time(), via=via))
        if channel.tls_info is not None:
            self.post(channel.tls_info)
            if endpoint.tls is not None and endpoint.tls.insecure:
                self.post(
                    Noticed(
                        "warning: --insecure: the certificate was not verified; "
                        "anyone on the path could read and change this connection",
                        "error",
                    )
                )
        channel.start()

    def _new_channel(self, *args: Any, **kwargs: Any) -> StreamChannel:
        """The channel of a new connection (a kind carrying messages makes its own)."""
        return StreamChannel(*args, **kwargs)

    # ---- reconnecting

    def _channel_closed(self, channel: StreamChannel) -> None:
        if not self._closed_by_user and self.endpoint.reconnect is not None:
            self._start_reconnecting()

    def _start_reconnecting(self) -> None:
        if self._reconnecting:
            return
        self._reconnecting = True
        threading.Thread(target=self._reconnect_loop, name="netrepl-reconnect", daemon=True).start()

    def _reconnect_loop(self) -> None:
        assert self.endpoint.reconnect is not None
        delay = max(RECONNECT_FLOOR, self.endpoint.reconnect)
        cap = max(delay, RECONNECT_CAP)
        attempt = 0
        try:
            while not self._stop_reconnecting.is_set():
                attempt += 1
                self.post(
                    Noticed(
                        f"reconnecting to {self.endpoint.label} in {delay:g} s (attempt {attempt})",
                        "status",
                    )
                )
                if self._stop_reconnecting.wait(delay):
                    break
                try:
                    self._connect()  # on success, _install ends reconnecting
                    return
                except ConnectError as error:
                    self.post(Noticed(f"attempt {attempt}: {error}", "status"))
                delay = min(delay * 2, cap)
        except BaseException:
            self._reconnecting = False
            raise
        self._reconnecting = False
        self.notify()
