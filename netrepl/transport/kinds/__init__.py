"""The registered transport kinds and layers, in the order `--help` shows them.

Adding a kind: its transport in `transport/`, its declaration (name, options, checks,
endpoint, factory) in a module here, and one entry below.
"""

from netrepl.transport.kinds import shared, tcp, tls, udp, unix
from netrepl.transport.registry import REGISTRY_CHECKS, Registered

REGISTERED = Registered(
    kinds=(tcp.KIND, udp.KIND, unix.KIND),
    layers=(tls.LAYER,),
    positionals=shared.POSITIONALS,
    shared=(shared.GROUP,),
    checks=(*shared.CHECKS, *REGISTRY_CHECKS),
    start=shared.start_endpoint,
)
