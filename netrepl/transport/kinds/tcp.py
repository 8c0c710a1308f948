"""TCP, the default transport kind: `HOST PORT` connects, `-l [HOST] PORT` listens, and
`--keepalive` and `--nodelay` set what only TCP sockets have.

Declarations only; the stream client and server are imported when an endpoint is opened.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from netrepl.cmdline import check, option
from netrepl.errors import UsageError
from netrepl.records import replace
from netrepl.transport import Endpoint, SessionLink
from netrepl.transport.registry import Kind, chosen_kind

if TYPE_CHECKING:
    from netrepl.transport.base import Transport

KEEPALIVE = option(
    "--keepalive",
    action="store_true",
    help="TCP keepalive probes (60 s idle, every 10 s)",
    details="A device that lost power is then noticed in about two minutes (six probes"
    " unanswered) instead of the kernel's two hours.",
)
NODELAY = option(
    "--nodelay",
    action="store_true",
    help="TCP_NODELAY: no Nagle delay between small back-to-back sends",
    details="Off by default, as in nc and socat: netrepl writes each line or frame in one"
    " call, so Nagle's algorithm neither splits it nor delays a lone frame; it only holds back"
    " a small write while an earlier one is unacknowledged. Turn it on to send small frames"
    " back to back when timing matters, or each frame must travel in a segment of its own.",
)


@check("--keepalive", "--nodelay")
def _tcp_socket_options_need_tcp(args: argparse.Namespace) -> None:
    """--keepalive and --nodelay are for TCP connections."""
    if chosen_kind(args).services != "tcp":
        for name, value in (("--keepalive", args.keepalive), ("--nodelay", args.nodelay)):
            if value:
                raise UsageError(f"{name} is for TCP connections")


def open_stream(endpoint: Endpoint, link: SessionLink) -> Transport:
    """A stream listener (-l) or client, for TCP and unix alike."""
    if endpoint.listen:
        from netrepl.transport.server import StreamServer

        return StreamServer.open(endpoint, link)
    from netrepl.transport.client import StreamClient

    return StreamClient.open(endpoint, link)


def open_relay(endpoint: Endpoint, link: SessionLink) -> Transport:
    """A stream listener relaying each client to `endpoint.upstream` (TCP, unix)."""
    from netrepl.transport.relay import StreamRelay

    return StreamRelay.open(endpoint, link)


def _build(args: argparse.Namespace, endpoint: Endpoint) -> Endpoint:
    return replace(endpoint, keepalive=args.keepalive, nodelay=args.nodelay)


KIND = Kind(
    name="tcp",
    title="TCP",
    open=open_stream,
    build=_build,
    heading="TCP (the default)",
    options=(KEEPALIVE, NODELAY),
    checks=(_tcp_socket_options_need_tcp,),
    services="tcp",
    layers=("tls",),
    relay=open_relay,
    upstream_kind="tcp",
    proxies=True,
)
