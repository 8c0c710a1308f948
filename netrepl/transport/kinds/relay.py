"""Relay mode on the command line: `-l [HOST] PORT --relay HOST:PORT` and the upstream's TLS
(`--relay-tls` and its options), with their checks and the upstream endpoint they make.

Not a kind: a relay is a listener of a kind that can relay (it says which kind its upstream
is), joined to an upstream endpoint of that kind. The listening side keeps its own options
(`--tls --cert --key` end the clients' TLS at netrepl); the upstream's are `--relay-*`.
Declarations only: `transport/relay.py` does the relaying.
"""

from __future__ import annotations

import argparse

from netrepl.cmdline import Group, check, option
from netrepl.errors import UsageError
from netrepl.records import replace
from netrepl.transport import Endpoint, TlsOptions, parse_host, parse_host_port
from netrepl.transport.kinds.shared import proxy_settings
from netrepl.transport.registry import Kind, chosen_kind, kind_named, kinds, titles

RELAY = option(
    "--relay",
    metavar="HOST:PORT",
    help="listen (-l) and relay each client to HOST:PORT, showing both directions",
    details="Each client (each sender, over UDP) gets a connection (a socket) of its own to"
    " HOST:PORT (IPv6 as [::1]:502): the pair is a flow (#1, #2). Bytes are forwarded both"
    " ways as they arrive, shown in the current view with their flow and direction, and"
    " logged. What you type goes to the upstream of the newest flow (/to client, /to"
    " upstream, /to N [client|upstream]); /flows lists the flows. A half-close, a reset or"
    " a slow reader on one side is passed on to the other.",
)
RELAY_TLS = option(
    "--relay-tls", action="store_true", help="TLS toward the upstream (verified by default)"
)
RELAY_CAFILE = option(
    "--relay-cafile",
    metavar="FILE",
    completes="file",
    help="trust these CA certificates (PEM) for the upstream",
)
RELAY_INSECURE = option(
    "--relay-insecure",
    action="store_true",
    help="do not verify the upstream's certificate (warned per flow)",
)
RELAY_SNI = option(
    "--relay-sni", metavar="NAME", help="server name to send the upstream and check (default HOST)"
)
RELAY_CERT = option(
    "--relay-cert",
    metavar="FILE",
    completes="file",
    help="client certificate chain (PEM) to show the upstream",
)
RELAY_KEY = option(
    "--relay-key", metavar="FILE", completes="file", help="private key for --relay-cert"
)
OPTIONS = (RELAY, RELAY_TLS, RELAY_CAFILE, RELAY_INSECURE, RELAY_SNI, RELAY_CERT, RELAY_KEY)
GROUP = Group("relay", OPTIONS)


@check("--relay", "-l")
def _relay_listens(args: argparse.Namespace) -> None:
    """--relay is for listen mode: -l [HOST] PORT --relay HOST:PORT."""
    if args.relay and not args.listen:
        raise UsageError("--relay needs -l: netrepl -l [HOST] PORT --relay HOST:PORT")


@check("--relay", "-l")
def _relay_needs_a_kind_that_relays(args: argparse.Namespace) -> None:
    """--relay is for the kinds whose listener can relay."""
    kind = chosen_kind(args)
    if args.relay and kind.upstream_kind is None:
        relaying = titles([k for k in kinds() if k.upstream_kind is not None])
        raise UsageError(f"--relay is for {relaying} listeners, not {kind.title}")


@check(*(declared.name for declared in OPTIONS[1:]))
def _relay_options_need_relay(args: argparse.Namespace) -> None:
    """The upstream's options (--relay-tls and the rest) need --relay, its TLS ones --relay-tls."""
    for declared in OPTIONS[1:]:
        if declared.given(args) and not args.relay:
            raise UsageError(f"{declared.name} needs --relay HOST:PORT")
    for declared in OPTIONS[2:]:
        if declared.given(args) and not args.relay_tls:
            raise UsageError(f"{declared.name} needs --relay-tls")


@check("--relay-tls", "--relay")
def _relay_tls_needs_an_upstream_that_carries_it(args: argparse.Namespace) -> None:
    """--relay-tls goes over the upstreams that carry TLS (a UDP relay's upstream is UDP)."""
    kind = chosen_kind(args)
    if args.relay_tls and kind.upstream_kind is not None:
        upstream = kind_named(kind.upstream_kind)
        if "tls" not in upstream.layers:
            names = {k.upstream_kind for k in kinds() if k.upstream_kind is not None}
            carriers = titles([k for k in kinds() if k.name in names and "tls" in k.layers])
            raise UsageError(
                f"--relay-tls goes over {carriers}, not {upstream.title} (a {kind.title}"
                f" relay's upstream is {upstream.title})"
            )


@check("--relay-tls", "--relay-cert", "--relay-key")
def _relay_key_needs_cert(args: argparse.Namespace) -> None:
    """--relay-key goes with --relay-cert."""
    if args.relay_key and not args.relay_cert:
        raise UsageError("--relay-key goes with --relay-cert FILE")


CHECKS = (
    _relay_listens,
    _relay_needs_a_kind_that_relays,
    _relay_options_need_relay,
    _relay_tls_needs_an_upstream_that_carries_it,
    _relay_key_needs_cert,
)


def with_upstream(args: argparse.Namespace, kind: Kind, endpoint: Endpoint) -> Endpoint:
    """`endpoint` with its relay's upstream, when --relay is given. Raises UsageError."""
    if not args.relay or kind.upstream_kind is None:
        return endpoint
    upstream_kind = kind_named(kind.upstream_kind)
    host, port = parse_host_port(args.relay, what="--relay")
    if port == 0:
        raise UsageError(f"--relay {args.relay}: port 0 is not a port to connect to")
    tls = None
    if args.relay_tls:
        sni = parse_host(args.relay_sni, "--relay-sni") if args.relay_sni else None
        tls = TlsOptions(
            cafile=args.relay_cafile,
            insecure=args.relay_insecure,
            sni=sni,
            cert=args.relay_cert,
            key=args.relay_key,
        )
    upstream = Endpoint(
        protocol=upstream_kind.name,
        host=host,
        port=port,
        family=endpoint.family,
        tls=tls,
        connect_timeout=endpoint.connect_timeout,
        proxy=proxy_settings(args),
    )
    return replace(endpoint, upstream=upstream)
