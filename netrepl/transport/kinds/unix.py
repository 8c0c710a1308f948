"""Unix stream sockets: `--unix PATH` connects to a socket file, `--unix PATH -l` listens on
one; TLS may ride on them as on TCP.

Declarations only; the stream client and server are imported when an endpoint is opened.
"""

from __future__ import annotations

import argparse

from netrepl.cmdline import option
from netrepl.records import replace
from netrepl.transport import Endpoint
from netrepl.transport.kinds.tcp import open_relay, open_stream
from netrepl.transport.registry import Kind

UNIX = option(
    "--unix", metavar="PATH", completes="file", help="a unix stream socket instead of TCP"
)


def _build(args: argparse.Namespace, endpoint: Endpoint) -> Endpoint:
    return replace(endpoint, path=args.unix)


def _label(endpoint: Endpoint) -> str:
    return f"unix:{endpoint.path}"


KIND = Kind(
    name="unix",
    title="unix",
    open=open_stream,
    build=_build,
    heading="unix sockets",
    selector=UNIX,
    options=(UNIX,),
    synopsis=("[options] --unix PATH [-l]", "a unix stream socket"),
    layers=("tls",),
    label=_label,
    relay=open_relay,
    upstream_kind="tcp",
)
