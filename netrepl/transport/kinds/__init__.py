"""The registered transport kinds and layers, in the order `--help` shows them.

Adding a kind: its transport in `transport/`, its declaration (name, options, checks,
endpoint, factory) in a module here, and one entry below.
"""

import argparse

from netrepl.transport import Endpoint
from netrepl.transport.kinds import relay, shared, tcp, tls, udp, unix, websocket
from netrepl.transport.registry import REGISTRY_CHECKS, Kind, Registered


def _start(args: argparse.Namespace, kind: Kind) -> Endpoint:
    """The endpoint the shared options make, with a relay's upstream when --relay asks."""
    return relay.with_upstream(args, kind, shared.start_endpoint(args, kind))


REGISTERED = Registered(
    kinds=(tcp.KIND, udp.KIND, unix.KIND, websocket.KIND),
    layers=(tls.LAYER,),
    positionals=shared.POSITIONALS,
    shared=(shared.GROUP, relay.GROUP),
    checks=(*shared.CHECKS, *relay.CHECKS, *REGISTRY_CHECKS),
    start=_start,
)
