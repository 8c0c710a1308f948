"""The transport kinds, each registered once: name, options, checks, endpoint, factory.

A kind (TCP, UDP, unix) is declared in its own module under `transport/kinds/` and listed in
`transport/kinds/__init__.py`; a layer (TLS) wraps the kinds that carry it. The command
line's transport options and checks, `open_transport`, `/connect` and how an endpoint names
itself all find kinds here, so a new kind touches nothing outside `transport/`. This module
holds declarations only: a kind's implementation is imported when it is opened, so `--help`
and `--completion` stay light. It never opens a socket itself.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from netrepl.cmdline import Check, Group, Option, check
from netrepl.errors import UsageError
from netrepl.records import record, replace
from netrepl.transport import Endpoint, SessionLink, format_address, parse_port

if TYPE_CHECKING:
    from netrepl.transport.base import Transport


def address_label(endpoint: Endpoint) -> str:
    """`127.0.0.1:80`, `[::1]:80`, `*:9000` (a listener on every interface)."""
    return format_address(endpoint.host or "*", endpoint.port)


@record(unsafe_hash=True)
class Kind:
    """A kind of transport, as the command line, the session and the toolbar know it."""

    name: str
    """`Endpoint.protocol` and the events' `protocol`: `tcp`, `udp`, `unix`."""
    title: str
    """How people call it: `TCP`, `UDP`, `unix` (the toolbar, status lines, errors)."""
    open: Callable[[Endpoint, SessionLink], Transport]
    """Connect or listen as the endpoint says (importing the implementation only now).
    Raises ConnectError or UsageError."""
    build: Callable[[argparse.Namespace, Endpoint], Endpoint]
    """The endpoint with this kind's own options in it, from the one the shared options
    began (the kind's name, the side, the address when it has one)."""
    heading: str
    """The title of its options in `--help`, docs/options.md and the man page."""
    selector: Option | None = None
    """The option that chooses it (`-u`, `--unix PATH`); None for the default kind."""
    options: tuple[Option, ...] = ()
    """Its own options, the selector first."""
    checks: tuple[Check, ...] = ()
    synopsis: tuple[str, str] | None = None
    """A usage line of its own: `("--unix PATH [-l]", "a unix stream socket")`."""
    services: str | None = None
    """The column of /etc/services its port names are looked up in (`tcp`, `udp`). None for
    a kind addressed otherwise (a path): it takes no HOST PORT, -4, -6 or --source."""
    listens: bool = True
    """It can listen (-l) as well as connect."""
    counts_clients: bool = True
    """Its listener's clients connect and leave (--max-clients, --once count them)."""
    layers: tuple[str, ...] = ()
    """The names of the layers it carries (`tls`)."""
    label: Callable[[Endpoint], str] = address_label
    """How an endpoint of this kind is written: `127.0.0.1:80`, `unix:/tmp/dev.sock`."""
    relay: Callable[[Endpoint, SessionLink], Transport] | None = None
    """Listen and relay each client to `endpoint.upstream` (--relay); None: it cannot."""
    upstream_kind: str | None = None
    """The kind its relay's upstream is (a unix listener relays to TCP)."""
    eol: str | None = None
    """The end of line a typed line gets unless --eol says otherwise, when this kind has
    its own (a WebSocket message is whole without one: `none`)."""
    readdressed: Callable[[Endpoint, argparse.Namespace], Endpoint] | None = None
    """What `/connect` makes of an address in its own form (read by `take_address` into
    `args`): the endpoint, already moved to its host and port, with the rest of the address
    (a URL's path, its scheme's TLS) in it."""
    take_address: Callable[[argparse.Namespace], None] | None = None
    """Reads an address written in its own form (a ws:// URL as HOST) into the options that
    mean it (its selector, HOST, PORT and its own), before any check; leaves any other
    address alone. Raises UsageError for one of its form that is bad."""
    proxies: bool = False
    """Its client connections can go through a --proxy (SOCKS, HTTP CONNECT: TCP streams)."""

    @property
    def flag(self) -> str:
        """The flag that chooses it: `-u`, `--unix`; the title for the default kind."""
        return self.selector.flags[0] if self.selector is not None else self.title

    @property
    def chooser(self) -> str:
        """How the command line asks for it: `-u`, `--unix PATH`; the title for the default."""
        if self.selector is not None and self.selector.takes_value:
            return f"{self.flag} {self.selector.value_name}"
        return self.flag

    def chosen(self, args: argparse.Namespace) -> bool:
        return self.selector is not None and self.selector.given(args)


@record(unsafe_hash=True)
class Layer:
    """What wraps the byte stream of the kinds that carry it (TLS), whatever their address.

    Not a kind: it changes neither how a peer is addressed nor who reads the socket, and
    every stream kind may carry it, so `--tls` combines with each instead of doubling them
    (TCP+TLS, unix+TLS, later a WebSocket's wss)."""

    name: str
    title: str
    selector: Option
    options: tuple[Option, ...]
    """Its own options, the selector first."""
    build: Callable[[argparse.Namespace, Endpoint], Endpoint]
    """The endpoint with the layer's settings in it (only when its selector is given)."""
    applied: Callable[[Endpoint], bool]
    """Whether an endpoint uses it."""
    title_over: Callable[[Kind], str]
    """How a kind carrying it is called: `TLS` (over TCP), `unix+TLS`."""
    heading: str
    checks: tuple[Check, ...] = ()

    def chosen(self, args: argparse.Namespace) -> bool:
        return self.selector.given(args)


@record(unsafe_hash=True)
class Registered:
    """Everything registered, as transport/kinds/__init__.py lists it."""

    kinds: tuple[Kind, ...]
    layers: tuple[Layer, ...]
    positionals: Group
    """HOST and PORT."""
    shared: tuple[Group, ...]
    """The options kinds share (the side, the address, a client's and a listener's)."""
    checks: tuple[Check, ...]
    """The checks of the shared options and of the registry itself."""
    start: Callable[[argparse.Namespace, Kind], Endpoint]
    """The endpoint the shared options make for a kind, before the kind's own build."""


@functools.cache
def registered() -> Registered:
    from netrepl.transport.kinds import REGISTERED  # the declarations import this module

    return REGISTERED


def kinds() -> tuple[Kind, ...]:
    return registered().kinds


def layers() -> tuple[Layer, ...]:
    return registered().layers


def kind_named(name: str) -> Kind:
    for kind in kinds():
        if kind.name == name:
            return kind
    raise ValueError(f"no transport kind {name!r}")


def default_kind() -> Kind:
    """The kind a command line without a selector means (TCP)."""
    return next(kind for kind in kinds() if kind.selector is None)


def chosen_kinds(args: argparse.Namespace) -> list[Kind]:
    return [kind for kind in kinds() if kind.chosen(args)]


def chosen_kind(args: argparse.Namespace) -> Kind:
    """The kind the command line asks for (the first, should it ask for two)."""
    chosen = chosen_kinds(args)
    return chosen[0] if chosen else default_kind()


def titles(chosen: list[Kind]) -> str:
    """`TCP and UDP`, `TCP, unix and ws`."""
    names = [kind.title for kind in chosen]
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def describe(endpoint: Endpoint) -> str:
    """`TCP`, `TLS`, `UDP`, `unix`, `unix+TLS`: what the toolbar and status lines call it."""
    kind = kind_named(endpoint.protocol)
    for layer in layers():
        if layer.applied(endpoint):
            return layer.title_over(kind)
    return kind.title


def groups() -> tuple[Group, ...]:
    """Every transport option, grouped for `--help`: the shared ones, each kind's, each
    layer's."""
    found = registered()
    own = [Group(kind.heading, kind.options) for kind in found.kinds if kind.options]
    own += [Group(layer.heading, layer.options) for layer in found.layers]
    return (*found.shared, *own)


def checks() -> tuple[Check, ...]:
    """Every transport check, in the order they run within a stage: each layer's (options
    that need it), each kind's, then those of the shared options and of the registry."""
    found = registered()
    return (
        *(check for layer in found.layers for check in layer.checks),
        *(check for kind in found.kinds for check in kind.checks),
        *found.checks,
    )


def take_addresses(args: argparse.Namespace) -> None:
    """Let each kind read an address written in its own form (a ws:// URL)."""
    for kind in kinds():
        if kind.take_address is not None:
            kind.take_address(args)


def build_endpoint(args: argparse.Namespace) -> Endpoint:
    """The endpoint a checked command line asks for. Raises UsageError for a bad value (a
    port, a host, an ALPN name)."""
    kind = chosen_kind(args)
    endpoint = kind.build(args, registered().start(args, kind))
    for layer in layers():
        if layer.chosen(args):
            endpoint = layer.build(args, endpoint)
    return endpoint


def readdress(endpoint: Endpoint, host: str, port: int | str) -> Endpoint:
    """What `/connect HOST PORT` opens: the current endpoint's options toward another
    address, as a client (a relay's upstream stays behind). A kind addressed otherwise (a
    unix path) gives way to the default kind, TCP, keeping the rest (TLS included) but what
    only it knew (`kind_settings`)."""
    kind = kind_named(endpoint.protocol)
    if kind.services is None:
        kind = default_kind()
        endpoint = replace(endpoint, kind_settings=None)
    number = parse_port(port, kind.services or "tcp") if isinstance(port, str) else port
    return replace(
        endpoint, protocol=kind.name, host=host, port=number, path=None, listen=False, upstream=None
    )


def readdress_url(endpoint: Endpoint, address: str) -> Endpoint:
    """What `/connect ADDRESS` opens, for an address written in a kind's own form (a ws://
    URL): the current endpoint's options, as that kind. Raises UsageError for any other."""
    for kind in kinds():
        if kind.take_address is None or kind.readdressed is None:
            continue
        args = argparse.Namespace(host=address, port=None, listen=False, tls=False)
        kind.take_address(args)
        if args.host != address:  # it was in this kind's form
            if endpoint.protocol != kind.name:
                endpoint = replace(endpoint, protocol=kind.name, kind_settings=None)
            return kind.readdressed(readdress(endpoint, args.host, args.port), args)
    forms = ", ".join(
        kind.synopsis[0].split()[-1] for kind in kinds() if kind.readdressed and kind.synopsis
    )
    raise UsageError(f"/connect: give HOST PORT, or an address such as {forms}")


# ---- the registry's own checks, after those of the kinds, the layers and the shared options


def selector_flags() -> tuple[str, ...]:
    """The flags that choose a kind (`-u`, `--unix`): every kind's but the default's."""
    return tuple(kind.flag for kind in kinds() if kind.selector is not None)


def _layer_selectors() -> tuple[str, ...]:
    return tuple(layer.selector.name for layer in layers())


@check(selector_flags)
def _one_transport_kind(args: argparse.Namespace) -> None:
    """One transport kind at a time (not -u and --unix)."""
    chosen = chosen_kinds(args)
    if len(chosen) > 1:
        first, second = chosen[:2]
        raise UsageError(f"{first.flag} and {second.flag} are different transports: give one")


@check(_layer_selectors)
def _layers_need_a_kind_that_carries_them(args: argparse.Namespace) -> None:
    """A layer goes over the kinds that carry it (--tls: not over UDP)."""
    kind = chosen_kind(args)
    for layer in layers():
        if layer.chosen(args) and layer.name not in kind.layers:
            carriers = titles([k for k in kinds() if layer.name in k.layers])
            raise UsageError(f"{layer.selector.name} goes over {carriers}, not {kind.title}")


REGISTRY_CHECKS = (_one_transport_kind, _layers_need_a_kind_that_carries_them)
