"""UDP as a transport kind: `-u HOST PORT` sends datagrams to one address, `-u -l PORT`
hears anyone, `-u -l PORT --relay HOST:PORT` relays each sender to HOST:PORT; `--broadcast`,
`--rcvbuf` and `--relay-idle` are its own options.

Declarations only; `transport/udp.py` (the datagram transport) and `transport/udp_relay.py`
are imported when an endpoint is opened.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from netrepl.cmdline import check, option, typed
from netrepl.errors import UsageError
from netrepl.quantity import WAIT
from netrepl.records import record, replace
from netrepl.transport import Endpoint, SessionLink
from netrepl.transport.registry import Kind

if TYPE_CHECKING:
    from netrepl.transport.base import Transport

# --rcvbuf: from a page to what no system grants (Linux caps it at net.core.rmem_max).
RCVBUF_RANGE = (4096, 1 << 30)
_SIZE_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_rcvbuf(text: str) -> int:
    """Bytes, or with a K, M or G suffix (binary: 4M is 4,194,304), within RCVBUF_RANGE."""
    low, high = RCVBUF_RANGE
    number, unit = text.strip(), 1
    if number[-1:].upper() in _SIZE_SUFFIXES:
        number, unit = number[:-1], _SIZE_SUFFIXES[number[-1].upper()]
    if not (number.isascii() and number.isdigit()):
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (say 4194304 or 4M)")
    size = int(number) * unit
    if not low <= size <= high:
        raise argparse.ArgumentTypeError(f"{text} is out of range (4K to 1G)")
    return size


UDP = option("-u", "--udp", action="store_true", help="UDP datagrams, not TCP")
BROADCAST = option(
    "--broadcast", action="store_true", help="UDP: allow sending to a broadcast address"
)
RCVBUF = option(
    "--rcvbuf",
    type=parse_rcvbuf,
    metavar="BYTES",
    help="UDP: the socket's receive buffer, what a burst can queue while netrepl reads"
    " (4K to 1G, default 4M; the system may grant less)",
)

# UDP has no close: a relay's flow ends when neither side has sent for this long. Two minutes
# is what a NAT must keep a UDP mapping at least (RFC 4787, REQ-5), so a device that a NAT
# would still reach is not cut off by netrepl first.
DEFAULT_RELAY_IDLE = 120.0
RELAY_IDLE = option(
    "--relay-idle",
    type=typed(WAIT.parse),
    metavar="S",
    help="UDP relay: end a flow after S seconds with no datagram either way"
    f" ({WAIT.range}; 0: never; default {DEFAULT_RELAY_IDLE:g})",
    details="UDP has no close, so a sender's flow (its own socket toward the upstream) lives"
    " until it has been quiet both ways for S seconds, /kick ends it, or the relay stops; each"
    " leg's end is one status line. A datagram from the same address afterwards starts a new"
    " flow.",
)


@record(unsafe_hash=True)
class UdpRelaySettings:
    """A UDP relay's own settings (`Endpoint.kind_settings` of its listener)."""

    idle: float = DEFAULT_RELAY_IDLE
    """Seconds a flow may be quiet both ways before it ends; 0: never."""


@check("-u", "--tls", "--unix")
def _udp_carries_neither_tls_nor_unix(args: argparse.Namespace) -> None:
    """-u (UDP) goes with neither --tls nor --unix."""
    if args.udp and (args.tls or args.unix):
        raise UsageError("-u (UDP) goes with neither --tls nor --unix")


@check("--broadcast", "-u")
def _broadcast_is_for_udp(args: argparse.Namespace) -> None:
    """--broadcast is for UDP (-u)."""
    if args.broadcast and not args.udp:
        raise UsageError("--broadcast is for UDP (-u)")


@check("--rcvbuf", "-u")
def _rcvbuf_is_for_udp(args: argparse.Namespace) -> None:
    """--rcvbuf is for UDP (-u): streams size their buffers themselves."""
    if args.rcvbuf is not None and not args.udp:
        raise UsageError("--rcvbuf is for UDP (-u): streams size their buffers themselves")


@check("--relay-idle", "-u", "--relay")
def _relay_idle_is_for_a_udp_relay(args: argparse.Namespace) -> None:
    """--relay-idle is for a UDP relay (-u -l PORT --relay HOST:PORT): streams close."""
    if args.relay_idle is not None and not (args.udp and args.relay):
        raise UsageError("--relay-idle is for a UDP relay (-u -l PORT --relay HOST:PORT)")


def _open(endpoint: Endpoint, link: SessionLink) -> Transport:
    from netrepl.transport.udp import DatagramTransport

    return DatagramTransport.open(endpoint, link)


def _open_relay(endpoint: Endpoint, link: SessionLink) -> Transport:
    from netrepl.transport.udp_relay import DatagramRelay

    return DatagramRelay.open(endpoint, link)


def _build(args: argparse.Namespace, endpoint: Endpoint) -> Endpoint:
    endpoint = replace(endpoint, broadcast=args.broadcast, rcvbuf=args.rcvbuf)
    if endpoint.upstream is not None:
        idle = DEFAULT_RELAY_IDLE if args.relay_idle is None else args.relay_idle
        endpoint = replace(endpoint, kind_settings=UdpRelaySettings(idle))
    return endpoint


KIND = Kind(
    name="udp",
    title="UDP",
    open=_open,
    build=_build,
    heading="UDP (-u)",
    selector=UDP,
    options=(UDP, BROADCAST, RCVBUF, RELAY_IDLE),
    checks=(
        _udp_carries_neither_tls_nor_unix,
        _broadcast_is_for_udp,
        _rcvbuf_is_for_udp,
        _relay_idle_is_for_a_udp_relay,
    ),
    services="udp",
    # UDP senders never connect or leave: there is nothing to count or wait for.
    counts_clients=False,
    relay=_open_relay,
    upstream_kind="udp",
)
