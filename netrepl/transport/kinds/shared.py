"""What transport kinds share on the command line: the side (`-l`), an IP address (HOST PORT,
`-4`/`-6`, `--source`), a client's connecting (`--connect-timeout`, `--reconnect`, `--proxy`)
and a listener's clients (`--max-clients`, `--once`), with their checks.

The checks ask the registry what each kind can do (has it an address? do its listener's
clients connect and leave?) rather than naming kinds, so a new kind is checked here as it
declares itself. Declarations only: nothing here opens a socket.
"""

from __future__ import annotations

import argparse
import socket

from netrepl.cmdline import Group, check, option, typed
from netrepl.errors import UsageError
from netrepl.proxy import DEFAULT_PORTS, ProxySettings, parse_proxy_url
from netrepl.quantity import CONNECT_TIMEOUT, WAIT, Whole
from netrepl.records import replace
from netrepl.transport import Endpoint, parse_host, parse_host_port, parse_port
from netrepl.transport.registry import Kind, chosen_kind, kind_named, kinds, titles

MAX_CLIENTS = Whole(1, 1_000_000, "clients")


def _listen_help() -> str:
    others = [
        kind.chooser for kind in kinds() if kind.listens and kind.services is None and kind.selector
    ]
    return "listen: [HOST] PORT" + "".join(f", or {form}" for form in others)


HOST = option("host", nargs="?", metavar="HOST", help="name, IPv4 or IPv6 address")
PORT = option("port", nargs="?", metavar="PORT", help="port number or service name")
POSITIONALS = Group("", (HOST, PORT))

LISTEN = option("-l", "--listen", action="store_true", help=_listen_help)
IPV4 = option(
    "-4",
    dest="family",
    action="store_const",
    const=socket.AF_INET,
    exclusive="family",
    help="IPv4 only",
    details="For a name that has both IPv4 and IPv6 addresses. An address is written as it is"
    " (::1 and [::1] both work as HOST).",
)
IPV6 = option(
    "-6",
    dest="family",
    action="store_const",
    const=socket.AF_INET6,
    exclusive="family",
    help="IPv6 only",
    details="As -4, for IPv6. A name with no address of the family asked for is refused with"
    " one line saying which addresses it has.",
)
SOURCE = option(
    "--source",
    metavar="ADDR[:PORT]",
    help="bind the local end to ADDR (and PORT)",
    details="For a device that only answers a known address or port, as nc -s and -p do.",
)
CONNECT_TIMEOUT_OPTION = option(
    "--connect-timeout",
    type=typed(CONNECT_TIMEOUT.parse),
    default=10.0,
    metavar="S",
    help=f"give up connecting after S seconds ({CONNECT_TIMEOUT.range}; default 10)",
    details="It bounds the connect and the TLS handshake together. Ctrl-C stops a connect"
    " that hangs, or a send to a peer that stopped reading, at any time.",
)
RECONNECT = option(
    "--reconnect",
    type=typed(WAIT.parse),
    nargs="?",
    const=1.0,
    metavar="S",
    help="reconnect automatically when the connection ends or fails, first after S"
    f" seconds ({WAIT.range}; default 1), then backing off to 30",
    details="The delay doubles after each failed attempt, up to 30 s, with a status line per"
    " attempt; /close stops it. It also keeps trying when the first connection fails.",
)
PROXY = option(
    "--proxy",
    metavar="URL",
    help="connect through a proxy: socks5://, socks5h://, socks4://, socks4a:// or http://"
    " (CONNECT), [USER:PASSWORD@]HOST[:PORT] (default port"
    f" {DEFAULT_PORTS['socks5']} for socks, {DEFAULT_PORTS['http']} for http)",
    details="Every TCP client connection goes through it: plain, TLS (which still checks the"
    " TARGET's name, not the proxy's), /connect, --reconnect, and a relay's upstream legs"
    " (-l PORT --relay HOST:PORT --proxy URL). socks5:// and socks4:// look the target's name"
    " up here and send its address; socks5h://, socks4a:// and http:// send the name for the"
    " proxy to look up (a name only the proxy's network knows). Credentials are"
    " percent-decoded (p%40ss is p@ss); SOCKS4 takes a user id only. -4, -6 and --source"
    " apply to the connection to the proxy, and --connect-timeout bounds the proxy's"
    " handshake too. An error names the hop that failed: the proxy itself (down, refusing our"
    " credentials, speaking something else) or the target, as the proxy's reply code says.",
)
MAX_CLIENTS_OPTION = option(
    "--max-clients",
    type=typed(MAX_CLIENTS.parse),
    metavar="N",
    help=f"listen: refuse clients beyond N ({MAX_CLIENTS.range})",
)
ONCE = option(
    "--once", action="store_true", help="listen, batch: exit when the first client leaves"
)

GROUP = Group(
    "transport",
    (
        LISTEN,
        IPV4,
        IPV6,
        SOURCE,
        CONNECT_TIMEOUT_OPTION,
        RECONNECT,
        PROXY,
        MAX_CLIENTS_OPTION,
        ONCE,
    ),
)


# ---- checks: options that do not go together


@check("-l")
def _listen_needs_a_kind_that_listens(args: argparse.Namespace) -> None:
    """-l is for the kinds that can listen (all but a device, say)."""
    kind = chosen_kind(args)
    if args.listen and not kind.listens:
        raise UsageError(f"{kind.flag} cannot listen (-l)")


@check("--max-clients", "--once", "-l")
def _listener_options_need_listen(args: argparse.Namespace) -> None:
    """--max-clients and --once are for listen mode (-l)."""
    if not args.listen:
        for name, value in (("--max-clients", args.max_clients), ("--once", args.once)):
            if value:
                raise UsageError(f"{name} is for listen mode (-l)")


@check("--reconnect", "-l")
def _reconnect_is_for_clients(args: argparse.Namespace) -> None:
    """--reconnect is for clients, not listen mode (-l)."""
    if args.listen and args.reconnect is not None:
        raise UsageError("--reconnect is for clients, not listen mode (-l)")


@check("--proxy", "-l", "--relay")
def _proxy_is_for_clients(args: argparse.Namespace) -> None:
    """--proxy is for clients, and for a relay's upstream legs (-l PORT --relay HOST:PORT)."""
    if args.proxy is not None and args.listen and not args.relay:
        raise UsageError(
            "--proxy is for clients and a relay's upstream (-l PORT --relay HOST:PORT --proxy URL)"
        )


@check("--proxy", "-u", "--unix", "--relay")
def _proxy_needs_a_kind_it_carries(args: argparse.Namespace) -> None:
    """--proxy carries the kinds that say so (TCP streams): not UDP, not a unix socket."""
    if args.proxy is None:
        return
    kind = chosen_kind(args)
    connecting = kind_named(kind.upstream_kind) if args.listen and kind.upstream_kind else kind
    if not connecting.proxies:
        carried = titles([k for k in kinds() if k.proxies])
        why = f" (a {kind.title} relay's upstream is {connecting.title})" if args.listen else ""
        raise UsageError(f"--proxy is for {carried} connections, not {connecting.title}{why}")


@check("--source", "-l")
def _source_is_for_clients(args: argparse.Namespace) -> None:
    """--source is for clients: a listener binds the HOST it is given."""
    if args.listen and args.source:
        raise UsageError("--source is for clients: a listener binds the HOST it is given")


@check("--max-clients", "--once", "-l")
def _only_connecting_clients_are_counted(args: argparse.Namespace) -> None:
    """--max-clients and --once count clients that connect and leave (not UDP senders)."""
    kind = chosen_kind(args)
    if args.listen and not kind.counts_clients:
        counting = titles([k for k in kinds() if k.counts_clients])
        for name, value in (("--max-clients", args.max_clients), ("--once", args.once)):
            if value:
                raise UsageError(f"{name} is for {counting} listeners, not {kind.title}")


@check("host", "port")
def _a_path_takes_no_host_or_port(args: argparse.Namespace) -> None:
    """A kind addressed otherwise (such as --unix PATH) takes no HOST or PORT."""
    kind = chosen_kind(args)
    if kind.services is None and args.host is not None:
        raise UsageError(f"{kind.chooser} takes no HOST or PORT")


@check("--source", "-4", "-6")
def _source_and_family_need_an_ip_address(args: argparse.Namespace) -> None:
    """--source, -4 and -6 are for kinds addressed by HOST PORT."""
    kind = chosen_kind(args)
    if kind.services is None and (args.source or args.family):
        addressed = titles([k for k in kinds() if k.services is not None])
        raise UsageError(f"--source, -4 and -6 are for {addressed}, not {kind.flag}")


# ---- checks: what a valid combination still needs


@check("-l", "host", "port", stage="complete")
def _listener_needs_a_port(args: argparse.Namespace) -> None:
    """A listener needs the PORT to listen on (-l [HOST] PORT)."""
    if chosen_kind(args).services and args.listen and args.host is None:
        raise UsageError("give the PORT to listen on (-l [HOST] PORT)")


@check("host", "port", stage="complete")
def _client_needs_host_and_port(args: argparse.Namespace) -> None:
    """A client needs HOST and PORT."""
    if chosen_kind(args).services and not args.listen and args.port is None:
        raise UsageError("give HOST and PORT (or --demo; -l PORT to listen)")


CHECKS = (
    _listen_needs_a_kind_that_listens,
    _listener_options_need_listen,
    _reconnect_is_for_clients,
    _proxy_is_for_clients,
    _proxy_needs_a_kind_it_carries,
    _source_is_for_clients,
    _only_connecting_clients_are_counted,
    _a_path_takes_no_host_or_port,
    _source_and_family_need_an_ip_address,
    _listener_needs_a_port,
    _client_needs_host_and_port,
)


def start_endpoint(args: argparse.Namespace, kind: Kind) -> Endpoint:
    """The endpoint the shared options make for `kind`: its side, its client's and its
    listener's settings, and its address when it has one."""
    endpoint = Endpoint(
        protocol=kind.name,
        listen=args.listen,
        family=args.family or socket.AF_UNSPEC,
        reconnect=args.reconnect,
        connect_timeout=args.connect_timeout,
        max_clients=args.max_clients,
    )
    if not args.listen:
        endpoint = replace(endpoint, proxy=proxy_settings(args))
    if kind.services is None:
        return endpoint
    if args.listen and args.port is None:
        host, port_text = None, args.host  # `-l PORT`: the one positional is the port, like nc
    else:
        host, port_text = args.host, args.port
    if host is not None:
        host = parse_host(host)
    # Listening on port 0 takes a free port, printed when listening starts.
    port = 0 if args.listen and port_text == "0" else parse_port(port_text, kind.services)
    source = (
        parse_host_port(args.source, port_optional=True, what="--source") if args.source else None
    )
    return replace(endpoint, host=host, port=port, source=source)


def proxy_settings(args: argparse.Namespace) -> ProxySettings | None:
    """--proxy as settings, for a client or a relay's upstream. Raises UsageError."""
    return parse_proxy_url(args.proxy) if args.proxy is not None else None
