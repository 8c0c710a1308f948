"""TLS as a layer over the stream kinds that carry it (TCP, unix): `--tls` and its options,
their checks, and the `TlsOptions` they make.

A layer, not a kind: TLS changes neither how the peer is addressed nor which socket is read,
so it combines with every kind that declares it carries `tls` (see `registry.Layer`).
Declarations only; `transport/tls.py` builds the SSL contexts when an endpoint is opened.
"""

from __future__ import annotations

import argparse

from netrepl.cmdline import check, option
from netrepl.codec import quote
from netrepl.errors import UsageError
from netrepl.records import replace
from netrepl.transport import Endpoint, TlsOptions, parse_host
from netrepl.transport.registry import Kind, Layer, kinds


def _tls_help() -> str:
    carriers = [kind.title for kind in kinds() if "tls" in kind.layers]
    return f"TLS over the {' or '.join(carriers)} connection"


TLS = option("--tls", action="store_true", help=_tls_help)
CAFILE = option(
    "--cafile", metavar="FILE", completes="file", help="trust these CA certificates (PEM)"
)
INSECURE = option(
    "--insecure", action="store_true", help="do not verify the certificate (warned on connect)"
)
SNI = option("--sni", metavar="NAME", help="server name to send and check (default HOST)")
CERT = option(
    "--cert",
    metavar="FILE",
    completes="file",
    help="certificate chain (PEM): the server's, or a client's",
)
KEY = option("--key", metavar="FILE", completes="file", help="private key for --cert, if not in it")
ALPN = option("--alpn", metavar="P1,P2", help="offer these ALPN protocols (h2,http/1.1)")
OPTIONS = (TLS, CAFILE, INSECURE, SNI, CERT, KEY, ALPN)


@check("--tls", "--cafile", "--insecure", "--sni", "--cert", "--key", "--alpn")
def _tls_options_need_tls(args: argparse.Namespace) -> None:
    """--cafile, --insecure, --sni, --cert, --key and --alpn need --tls."""
    if not args.tls:
        for declared in OPTIONS[1:]:
            if declared.given(args):
                raise UsageError(f"{declared.name} needs --tls")


@check("--tls", "-l", "--cert", stage="complete")
def _tls_listener_needs_cert(args: argparse.Namespace) -> None:
    """A TLS listener needs --cert FILE (and --key FILE)."""
    if args.listen and args.tls and not args.cert:
        raise UsageError("a TLS listener needs --cert FILE (and --key FILE)")


def _build(args: argparse.Namespace, endpoint: Endpoint) -> Endpoint:
    alpn = tuple(p.strip() for p in args.alpn.split(",") if p.strip()) if args.alpn else ()
    for protocol in alpn:
        if not (protocol.isascii() and protocol.isprintable()) or len(protocol) > 255:
            raise UsageError(f"--alpn: {quote(protocol)} is not a protocol name (like h2)")
    tls = TlsOptions(
        cafile=args.cafile,
        insecure=args.insecure,
        sni=parse_host(args.sni, "--sni") if args.sni else None,
        cert=args.cert,
        key=args.key,
        alpn=alpn,
    )
    return replace(endpoint, tls=tls)


def _title_over(kind: Kind) -> str:
    # TLS over TCP is what everyone means by TLS; over anything else, say what it rides on.
    return "TLS" if kind.name == "tcp" else f"{kind.title}+TLS"


LAYER = Layer(
    name="tls",
    title="TLS",
    selector=TLS,
    options=OPTIONS,
    build=_build,
    applied=lambda endpoint: endpoint.tls is not None,
    title_over=_title_over,
    heading="TLS",
    checks=(_tls_options_need_tls, _tls_listener_needs_cert),
)
