"""Transports own sockets and the threads that drive them, and nothing else.

A transport never renders and never writes to the terminal: its I/O thread turns what the
sockets do into events (`Received`, `Closed`, ...) and posts them, so a slow terminal can
never slow a socket or lose a byte. This module holds what every transport shares: how an
endpoint is described, addressed, and opened; the kinds themselves (TCP, UDP, unix, and
the TLS layer) are registered in `registry.py` and declared in `kinds/`.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Literal

from netrepl.codec import quote
from netrepl.errors import ConnectError, UsageError
from netrepl.records import record

if TYPE_CHECKING:
    from netrepl.events import Event
    from netrepl.proxy import ProxySettings
    from netrepl.transport.base import Transport


@record(unsafe_hash=True)
class FlowSide:
    """Relay mode: one side of a flow (`/to 2 client`), of the newest flow, or of each."""

    flow: int | Literal["newest", "all"]
    side: Literal["client", "upstream"]


Target = Literal["all", "last"] | int | tuple[str, int] | FlowSide
"""Where a send goes: every client, the last UDP sender, client #N, an address (UDP), or a
side of a relay's flows."""


@record(unsafe_hash=True)
class TlsOptions:
    """--tls and its options; the context is built from them by transport.tls."""

    cafile: str | None = None
    insecure: bool = False
    sni: str | None = None
    cert: str | None = None
    key: str | None = None
    alpn: tuple[str, ...] = ()


@record(unsafe_hash=True)
class Endpoint:
    """Where to connect or listen, and how: the transport half of the command line."""

    protocol: str = "tcp"
    """The name of its registered kind (`tcp`, `udp`, `unix`; see `registry.py`)."""
    host: str | None = None
    """None when listening: every interface."""
    port: int = 0
    path: str | None = None
    """The socket file of a unix endpoint."""
    listen: bool = False
    family: int = socket.AF_UNSPEC
    source: tuple[str, int] | None = None
    tls: TlsOptions | None = None
    broadcast: bool = False
    keepalive: bool = False
    nodelay: bool = False
    max_clients: int | None = None
    reconnect: float | None = None
    """Seconds before the first automatic reconnect; None: no automatic reconnect."""
    connect_timeout: float | None = 10.0
    rcvbuf: int | None = None
    """UDP: the receive buffer to ask the system for, in bytes; None: netrepl's default."""
    upstream: Endpoint | None = None
    """Relay mode (--relay): where each client's flow connects to; this endpoint listens."""
    proxy: ProxySettings | None = None
    """--proxy: a client connects to its HOST PORT through this proxy (a relay's upstream
    does, never a listener). `label` stays the target's address."""
    kind_settings: Hashable = None
    """What only its kind knows (a serial port's speed, say), as that kind's own hashable
    record: a new kind needs no new field here."""

    @property
    def label(self) -> str:
        """`127.0.0.1:80`, `[::1]:80`, `*:9000`, `unix:/tmp/dev.sock`, as its kind writes it."""
        from netrepl.transport.registry import kind_named

        return kind_named(self.protocol).label(self)

    @property
    def kind(self) -> str:
        """`TCP`, `TLS`, `UDP`, `unix`, `unix+TLS`: what the toolbar and status lines call it."""
        from netrepl.transport.registry import describe

        return describe(self)


# A stream's peer is "open" and a datagram sender is "udp" for as long as it is listed at all.
_ORDINARY_PEER_STATES = frozenset({"open", "udp"})


@record(unsafe_hash=True)
class PeerInfo:
    """One client of a listening transport (or the one peer of a client), for `/clients`."""

    conn: int
    address: str
    connected_for: float
    received: int
    sent: int
    state: str

    @property
    def remark(self) -> str:
        """The state when it is worth a word in `/clients` ("half-closed", "closing"), else ""."""
        return "" if self.state in _ORDINARY_PEER_STATES else self.state


@record(unsafe_hash=True)
class FlowInfo:
    """One flow of a relay, for `/flows`."""

    flow: int
    client: str
    upstream: str
    age: float
    to_upstream: int
    """Bytes the client sent (and netrepl forwarded)."""
    to_client: int
    """Bytes the upstream sent."""
    state: str
    """`open`, `connecting`, `client ended`, `upstream ended`."""
    held: int = 0
    """Bytes of it held (/hold), not yet forwarded or dropped."""


@record(unsafe_hash=True)
class SessionLink:
    """What ties a transport to its session: where its events go, where connection ids come
    from (never reused across transports), and the flag Ctrl-C sets to stop what blocks."""

    post: Callable[[Event], None]
    ids: Iterator[int]
    cancel: threading.Event
    flows_wait: bool = False
    """A relay's flows wait for the transport's `flow_starter` (a --script sets up first)."""


def open_transport(
    endpoint: Endpoint,
    post: Callable[[Event], None],
    ids: Iterator[int],
    cancel: threading.Event | None = None,
    *,
    flows_wait: bool = False,
) -> Transport:
    """Connect or start listening as `endpoint` says. Raises ConnectError or UsageError.

    Setting `cancel` (Ctrl-C) interrupts what blocks: a connect, a handshake, a send that
    waits for a peer that is not reading. With `flows_wait`, a relay starts no flow until
    its `flow_starter()` is called.
    """
    from netrepl.transport.registry import kind_named

    link = SessionLink(post, ids, cancel or threading.Event(), flows_wait)
    kind = kind_named(endpoint.protocol)
    if endpoint.upstream is not None and kind.relay is not None:
        return kind.relay(endpoint, link)
    return kind.open(endpoint, link)


def format_address(host: str, port: int) -> str:
    """`127.0.0.1:80`, `[::1]:80`: an address the way people write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_sockaddr(address: object) -> str:
    """A socket address from getpeername/recvfrom as people write it (unix paths too)."""
    if isinstance(address, tuple) and len(address) >= 2:
        # An IPv4 peer of a dual-stack socket arrives as ::ffff:a.b.c.d: show it as IPv4.
        return format_address(str(address[0]).removeprefix("::ffff:"), int(address[1]))
    if isinstance(address, bytes):
        address = address.decode("utf-8", "backslashreplace")
    return f"unix:{address}" if address else "unix:(unnamed)"


class NoAddressInFamily(socket.gaierror):
    """A -4 or -6 lookup found nothing, but the name has addresses of the other family."""


def resolve(
    host: str, port: int, family: int, kind: int, flags: int = 0
) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]]:
    """socket.getaddrinfo, for every transport. When a lookup limited to one family fails
    for a name that has addresses of the other (`-6 localhost`), the error says so
    (NoAddressInFamily) instead of calling the host unknown."""
    try:
        return socket.getaddrinfo(host, port, family, kind, 0, flags)  # type: ignore[return-value]
    except socket.gaierror as error:
        if family == socket.AF_UNSPEC:
            raise
        try:
            found = socket.getaddrinfo(host, port, socket.AF_UNSPEC, kind, 0, flags)
        except OSError:
            raise error from None
        others = list(dict.fromkeys(info[4][0] for info in found if info[0] != family))
        if not others:
            raise
        names = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}
        wanted, other = names.get(family, "such"), names.get(found[0][0], "other")
        if others == [host]:
            reason = f"{host} is an {other} address, not {wanted}"
        else:
            reason = f"{host} has no {wanted} address, only {other} ({', '.join(others[:3])})"
        raise NoAddressInFamily(error.errno, reason) from None


def points_at_itself(listener: Endpoint, family: int, upstream: tuple[str, int]) -> bool:
    """A relay's upstream `upstream` (resolved, of `family`) is where `listener` is about to
    listen (same port, and the same host, or one of this machine's under a wildcard
    listener): each flow would come back to the relay as a new flow, without end."""
    if listener.port == 0 or listener.port != upstream[1]:
        return False
    upstream_host = _ip(upstream[0])
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            # Toward one of this machine's own addresses, the source is that address.
            probe.connect(upstream)
            source = _ip(probe.getsockname()[0])
        except OSError:
            return False
    if upstream_host is None or (source != upstream_host and not upstream_host.is_loopback):
        return False  # elsewhere
    if listener.host is None:
        return True
    try:
        found = resolve(
            listener.host, listener.port, listener.family, socket.SOCK_DGRAM, socket.AI_PASSIVE
        )
    except OSError:
        return False
    listen_host = _ip(found[0][4][0])
    return listen_host is not None and (listen_host.is_unspecified or listen_host == upstream_host)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as a value (`::ffff:127.0.0.1` as 127.0.0.1); None for what is none."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def describe_os_error(error: OSError) -> str:
    """A short lower-case reason: `connection refused`, `unknown host`, `timed out`."""
    if isinstance(error, NoAddressInFamily):
        return error.strerror or "no address of the family asked for"
    if isinstance(error, socket.gaierror):
        detail = (error.strerror or "").lower()
        return f"unknown host ({detail})" if detail else "unknown host"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionResetError):
        return "connection reset by peer"
    # os.strerror, not error.strerror: create_server appends its own detail to the latter.
    text = os.strerror(error.errno) if error.errno else error.strerror
    if text:
        return text[0].lower() + text[1:]
    if error.errno is not None:
        return errno.errorcode.get(error.errno, str(error.errno)).lower()
    return str(error) or type(error).__name__


def parse_port(text: str, protocol: str = "tcp") -> int:
    """A port number (1-65535) or a service name from /etc/services (`http`, `smtp`)."""
    if text.isascii() and text.isdigit():
        port = int(text) if len(text) <= 5 else 0
        if 1 <= port <= 65535:
            return port
        raise UsageError(f"port {quote(text)} is out of range (1-65535)")
    _check_typed(text, "port")
    try:
        return socket.getservbyname(text, protocol)
    except (OSError, UnicodeError):
        raise UsageError(f"unknown port {quote(text)}: give a number or a service name") from None


_IDNA_REASON = re.compile(r"\(UnicodeError: (.*)\)$")


def parse_host(text: str, what: str = "host") -> str:
    """A host name or address as typed (`[::1]` too), checked as the name lookup and TLS will
    see it: every path that takes a host (the command line, /connect, /to, --source, --sni)
    comes through here, so no transport ever meets one the IDNA codec or OpenSSL rejects
    with an exception of its own. `what` names it in the error (`--sni`)."""
    host = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if not host:
        raise UsageError(f"bad {what} {quote(text)}: it is empty")
    _check_typed(host, what)
    if any(char < " " or char == "\x7f" for char in host):
        raise UsageError(f"bad {what} {quote(text)}: it holds a control character")
    try:
        host.encode("idna")
    except UnicodeError as error:
        found = _IDNA_REASON.search(str(error))
        reason = found.group(1) if found else str(error)
        if "label" in reason:
            reason = "each dot-separated part of a name must be 1 to 63 characters"
        raise UsageError(f"bad {what} {quote(text)}: {reason}") from None
    return host


def _check_typed(text: str, what: str) -> None:
    """Text from the command line or stdin that was not valid UTF-8 carries its bytes as
    lone surrogates (surrogateescape); no name or number is made of them."""
    if any("\udc80" <= char <= "\udcff" for char in text):
        raise UsageError(f"bad {what} {quote(text)}: not valid UTF-8")


def parse_host_port(
    text: str, *, port_optional: bool = False, what: str = "host"
) -> tuple[str, int]:
    """`10.0.0.1:502`, `[::1]:502`, `host:http`; `10.0.0.1` alone when `port_optional` (port 0).
    `what` names the host in an error (`--source`)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise UsageError(f"bad address {quote(text)}: write [IPv6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""  # a bare IPv4 address, a name, or a bare IPv6 address
    if not host:
        raise UsageError(f"bad address {quote(text)}: no host")
    host = parse_host(host, what)
    if not port_text:
        if port_optional:
            return host, 0
        raise UsageError(f"bad address {quote(text)}: give HOST:PORT")
    return host, parse_port(port_text)


# How often a blocking step (connect, handshake) looks at the cancel flag (Ctrl-C).
CANCEL_POLL_SECONDS = 0.05


class Interrupted(ConnectError):
    """The user interrupted a connect or handshake (Ctrl-C)."""


def wait_ready(
    sock: socket.socket,
    *,
    write: bool,
    deadline: float | None,
    cancel: threading.Event,
    what: str,
) -> None:
    """Wait until `sock` is readable (or writable), in short slices that notice `cancel`."""
    while True:
        if cancel.is_set():
            raise Interrupted(f"{what}: interrupted")
        wait = CANCEL_POLL_SECONDS
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            wait = min(wait, left)
        ready = (
            select.select([], [sock], [], wait)[1]
            if write
            else select.select([sock], [], [], wait)[0]
        )
        if ready:
            return
