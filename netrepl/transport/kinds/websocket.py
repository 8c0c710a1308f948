"""WebSocket: `netrepl ws://HOST[:PORT]/PATH` (or `wss://`, over TLS) connects, `-l [HOST]
PORT --ws` accepts WebSocket clients; the handshake's headers, subprotocols and origin, the
message bound and pings.

Declarations only; `transport/websocket.py` is imported when an endpoint is opened.
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import TYPE_CHECKING

from netrepl.cmdline import check, option, typed
from netrepl.codec import quote
from netrepl.errors import UsageError
from netrepl.quantity import Seconds, Whole
from netrepl.records import record, replace
from netrepl.transport import Endpoint, SessionLink, TlsOptions, format_address
from netrepl.transport.registry import Kind

if TYPE_CHECKING:
    from netrepl.transport.base import Transport

SCHEMES = {"ws": 80, "wss": 443}
MAX_MESSAGE = Whole(1, 1 << 30, "bytes")
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024
PING_INTERVAL = Seconds(low=0.01)
PING_TIMEOUT = Seconds(low=0.01)
DEFAULT_PING_TIMEOUT = 20.0


@record(unsafe_hash=True)
class WebSocketSettings:
    """What only a WebSocket endpoint knows (its `Endpoint.kind_settings`)."""

    target: str = "/"
    """The request's path and query (`/chat?room=1`)."""
    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    """A client offers these, in order; a server accepts the first of these a client offers."""
    origin: str | None = None
    max_message: int = DEFAULT_MAX_MESSAGE
    ping_interval: float | None = None
    ping_timeout: float = DEFAULT_PING_TIMEOUT


WS = option(
    "--ws",
    action="store_true",
    help="WebSocket: -l PORT --ws accepts WebSocket clients; a client gives a ws:// or wss://"
    " URL as its address (or --ws HOST PORT for the path /)",
    details="netrepl ws://HOST[:PORT]/PATH connects (port 80 by default); wss://"
    " connects over TLS (port 443), verified as --tls is, and takes --cafile, --insecure,"
    " --sni, --cert, --key and --alpn. Each typed line is one text message (no end of line"
    " unless /eol says so); /x and hex input send binary messages, and so does a line that"
    " is not UTF-8. Each message received is one block, labelled text or binary.",
)
HEADER = option(
    "-H",
    "--header",
    metavar="'NAME: VALUE'",
    action="append",
    help="WebSocket client: add this header to the upgrade request (repeatable)",
)
SUBPROTOCOL = option(
    "--subprotocol",
    metavar="NAME",
    action="append",
    help="WebSocket: offer this subprotocol (a client), or accept it (a server); repeatable",
    details="A client offers them in the order given and shows the one the server chose; a"
    " server chooses the first of its own that the client offered.",
)
ORIGIN = option("--origin", metavar="URL", help="WebSocket client: the Origin header to send")
MAX_MESSAGE_OPTION = option(
    "--max-message",
    type=typed(MAX_MESSAGE.parse),
    metavar="BYTES",
    help="WebSocket: show a received message whole up to BYTES"
    f" ({MAX_MESSAGE.range}; default {DEFAULT_MAX_MESSAGE:,})",
    details="A larger message is shown truncated, with its full size, and kept whole in"
    " --log (in pieces of about BYTES, so memory stays bounded).",
)
PING_INTERVAL_OPTION = option(
    "--ping-interval",
    type=typed(PING_INTERVAL.parse),
    metavar="S",
    help=f"WebSocket: send a ping every S seconds ({PING_INTERVAL.range}); each pong is shown"
    " dim with its round-trip time",
)
PING_TIMEOUT_OPTION = option(
    "--ping-timeout",
    type=typed(PING_TIMEOUT.parse),
    metavar="S",
    help="WebSocket: close the connection when a ping is not answered within S seconds"
    f" ({PING_TIMEOUT.range}; default {DEFAULT_PING_TIMEOUT:g})",
)
OPTIONS = (
    WS,
    HEADER,
    SUBPROTOCOL,
    ORIGIN,
    MAX_MESSAGE_OPTION,
    PING_INTERVAL_OPTION,
    PING_TIMEOUT_OPTION,
)


def is_url(text: str | None) -> bool:
    return text is not None and text.partition("://")[0].lower() in SCHEMES and "://" in text


def take_url(args: argparse.Namespace) -> None:
    """A ws:// or wss:// URL as the address: --ws with its host, port and path (wss: --tls
    too). Raises UsageError for a URL that cannot be one."""
    if not is_url(args.host):
        return
    url = args.host
    if args.port is not None:
        raise UsageError(f"{quote(url)} carries its port: give no PORT after a URL")
    if args.listen:
        raise UsageError("a URL is what a client connects to: listen with -l [HOST] PORT --ws")
    if any(char < " " or char == "\x7f" for char in url):
        raise UsageError(f"bad URL {quote(url)}: it holds a control character")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UsageError(f"bad URL {quote(url)}: {error}") from None
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"bad URL {quote(url)}: credentials go in a header (-H 'Authorization: ...')"
        )
    if not parts.hostname:
        raise UsageError(f"bad URL {quote(url)}: it names no host")
    if parts.fragment:
        raise UsageError(f"bad URL {quote(url)}: a WebSocket URL has no #fragment")
    scheme = parts.scheme.lower()
    args.ws = True
    args.ws_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The host as written (urlsplit lowers it and drops an IPv6 address's brackets).
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):
        host = host[: host.index("]") + 1]
    elif ":" in host:
        host = host.rpartition(":")[0]
    args.host = host
    args.port = str(port if port is not None else SCHEMES[scheme])
    if scheme == "wss":
        args.tls = True


@check(
    "--ws", "-H", "--subprotocol", "--origin", "--max-message", "--ping-interval", "--ping-timeout"
)
def _websocket_options_need_ws(args: argparse.Namespace) -> None:
    """-H, --subprotocol, --origin, --max-message, --ping-interval and --ping-timeout are for
    WebSocket (a ws:// URL, or -l PORT --ws)."""
    if not args.ws:
        for declared in OPTIONS[1:]:
            if declared.given(args):
                raise UsageError(f"{declared.name} is for WebSocket (a ws:// URL, or -l PORT --ws)")


@check("-H", "--origin", "-l")
def _request_options_are_for_clients(args: argparse.Namespace) -> None:
    """-H and --origin go in a client's upgrade request, not a listener's."""
    if args.listen:
        for declared in (HEADER, ORIGIN):
            if declared.given(args):
                raise UsageError(f"{declared.name} is for a WebSocket client's request, not -l")


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name:
        raise UsageError(f"-H {quote(text)}: write a header as 'Name: value'")
    if not all(33 <= ord(char) <= 126 and char not in '()<>@,;:\\"/[]?={} ' for char in name):
        raise UsageError(f"-H {quote(text)}: {quote(name)} is not a header name")
    if any((ord(char) < 32 and char != "\t") or ord(char) == 127 for char in value):
        raise UsageError(f"-H {quote(text)}: a header value holds no control character")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise UsageError(f"-H {quote(text)}: a header value is ASCII (or Latin-1)") from None
    return name, value


def _subprotocol(name: str) -> str:
    if not name or not all(33 <= ord(c) <= 126 and c not in '()<>@,;:\\"/[]?={} ' for c in name):
        raise UsageError(f"--subprotocol {quote(name)}: not a subprotocol name (like chat)")
    return name


def _build(args: argparse.Namespace, endpoint: Endpoint) -> Endpoint:
    settings = WebSocketSettings(
        target=getattr(args, "ws_target", "/"),
        headers=tuple(_header(text) for text in args.header or ()),
        subprotocols=tuple(_subprotocol(name) for name in args.subprotocol or ()),
        origin=_header(f"Origin: {args.origin}")[1] if args.origin is not None else None,
        max_message=args.max_message or DEFAULT_MAX_MESSAGE,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout if args.ping_timeout is not None else DEFAULT_PING_TIMEOUT,
    )
    return replace(endpoint, kind_settings=settings)


def settings_of(endpoint: Endpoint) -> WebSocketSettings:
    settings = endpoint.kind_settings
    return settings if isinstance(settings, WebSocketSettings) else WebSocketSettings()


def _label(endpoint: Endpoint) -> str:
    """`ws://127.0.0.1:8765/chat`, `wss://example.com/`, `ws://*:8765` (a listener)."""
    scheme = "wss" if endpoint.tls is not None else "ws"
    address = format_address(endpoint.host or "*", endpoint.port)
    if endpoint.port == SCHEMES[scheme] and endpoint.host is not None:
        address = format_address(endpoint.host, 0).rpartition(":")[0]
    target = settings_of(endpoint).target if not endpoint.listen else ""
    return f"{scheme}://{address}{target}"


def _readdressed(endpoint: Endpoint, args: argparse.Namespace) -> Endpoint:
    """/connect ws://HOST/PATH: the URL's path, TLS for wss:// only (verified by default);
    the handshake's other settings stay."""
    settings = replace(settings_of(endpoint), target=args.ws_target)
    tls = (endpoint.tls or TlsOptions()) if args.tls else None
    return replace(endpoint, kind_settings=settings, tls=tls)


def _open(endpoint: Endpoint, link: SessionLink) -> Transport:
    from netrepl.transport.websocket import WebSocketClient, WebSocketServer

    if endpoint.listen:
        return WebSocketServer.open(endpoint, link)
    return WebSocketClient.open(endpoint, link)


KIND = Kind(
    name="ws",
    title="WebSocket",
    open=_open,
    build=_build,
    heading="WebSocket",
    selector=WS,
    options=OPTIONS,
    checks=(_websocket_options_need_ws, _request_options_are_for_clients),
    synopsis=("[options] ws[s]://HOST[:PORT]/PATH", "a WebSocket client (-l PORT --ws: a server)"),
    services="tcp",
    layers=("tls",),
    label=_label,
    proxies=True,
    eol="none",
    take_address=take_url,
    readdressed=_readdressed,
)
