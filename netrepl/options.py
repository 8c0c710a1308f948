"""The command line, declared once: one argparse parser, mapped to an `Options` dataclass.

`cli.main` imports this only once it knows the command line is not `--version`: building the
parser needs argparse, dataclasses and the transport's address parsing, which together cost
more than the interpreter's own start. Nothing here imports rich or prompt_toolkit.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from netrepl import __version__
from netrepl.codec import quote
from netrepl.errors import UsageError
from netrepl.quantity import CONNECT_TIMEOUT, WAIT, Whole

if TYPE_CHECKING:
    from netrepl.transport import Endpoint
    from netrepl.view import View

USAGE = """\
netrepl [options] HOST PORT              connect (TCP; -u UDP; --tls TLS)
       netrepl [options] -l [HOST] PORT         listen for clients (all interfaces by default)
       netrepl [options] --unix PATH [-l]       a unix stream socket
       netrepl --demo                           try it against the built-in demo peer
       netrepl replay FILE [--view V]           show a saved --log transcript again
       netrepl export FILE --pcap OUT           turn a --log transcript into a pcap file"""

EXAMPLES = """\
examples:
  netrepl --demo                       try every view against the built-in demo peer
  netrepl 127.0.0.1 6379               talk to Redis (type PING)
  netrepl example.com 80 --eol crlf    type an HTTP request by hand
  netrepl example.com 443 --tls --eol crlf    the same over TLS (certificate checked)
  netrepl 192.168.1.7 502 --view hex   a Modbus/TCP device, shown as a hexdump
  netrepl 10.0.0.5 9000 --view gbk     a device that talks GBK
  netrepl -l 9000                      wait for devices to connect to port 9000
  netrepl -u -l 5000 --view hex        receive UDP datagrams on port 5000
  printf 'PING\\n' | netrepl 127.0.0.1 6379       batch: prints +PONG and exits
  netrepl 10.0.0.5 9000 --log s.jsonl keep every byte in a transcript, then:
  netrepl replay s.jsonl --view hex    show it again (netrepl replay --help)
  netrepl export s.jsonl --pcap s.pcap make a capture for Wireshark (netrepl export --help)

Inside, type /help for the commands.
"""


_T = TypeVar("_T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


@dataclass(frozen=True)
class Startup:
    """What the command line asks the session for once, before the first connection."""

    log: str | None = None
    capture: str | None = None
    script: str | None = None
    on_connect: str | None = None
    presets: tuple[tuple[str, str], ...] = ()


@dataclass
class Options:
    endpoint: Endpoint
    view: View
    eol: str
    input_mode: str
    escapes: bool
    linger: float
    demo: bool
    quiet: bool
    once: bool
    startup: Startup
    stdin: str = "commands"
    """`commands`: each stdin line as if typed; `raw`: stdin's bytes as they are."""
    shutdown: bool = True
    """Half-close the write side at the end of stdin (batch mode)."""


def _typed(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse type from a quantity's parse: its one-line error, said by argparse."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


MAX_CLIENTS = Whole(1, 1_000_000, "clients")


# --rcvbuf: from a page to what no system grants (Linux caps it at net.core.rmem_max).
RCVBUF_RANGE = (4096, 1 << 30)
_SIZE_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _rcvbuf(text: str) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    from netrepl.payload import EOLS
    from netrepl.view import VIEW_NAMES

    parser = _Parser(
        prog="netrepl",
        usage=USAGE,
        description="Talk to a socket by hand: type to send, watch replies in hex, UTF-8 or GBK.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="name, IPv4 or IPv6 address")
    parser.add_argument("port", nargs="?", metavar="PORT", help="port number or service name")

    shown = parser.add_argument_group("showing and sending")
    shown.add_argument(
        "--view",
        choices=VIEW_NAMES,
        help="how received bytes are shown (default utf8; raw: bytes unchanged, batch only)",
    )
    shown.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding for showing and sending text: any Python codec (default utf-8)",
    )
    shown.add_argument(
        "--eol", choices=tuple(EOLS), help="end of line added to typed text (default lf)"
    )
    shown.add_argument(
        "--config",
        metavar="FILE",
        help="read defaults and /p presets from FILE (default ~/.config/netrepl/config.toml)",
    )

    transport = parser.add_argument_group("transport")
    transport.add_argument(
        "-l", "--listen", action="store_true", help="listen: [HOST] PORT, or --unix PATH"
    )
    transport.add_argument("-u", "--udp", action="store_true", help="UDP datagrams, not TCP")
    transport.add_argument("--unix", metavar="PATH", help="a unix stream socket instead of TCP")
    family = transport.add_mutually_exclusive_group()
    family.add_argument(
        "-4", dest="family", action="store_const", const=socket.AF_INET, help="IPv4 only"
    )
    family.add_argument(
        "-6", dest="family", action="store_const", const=socket.AF_INET6, help="IPv6 only"
    )
    transport.add_argument(
        "--source", metavar="ADDR[:PORT]", help="bind the local end to ADDR (and PORT)"
    )
    transport.add_argument(
        "--connect-timeout",
        type=_typed(CONNECT_TIMEOUT.parse),
        default=10.0,
        metavar="S",
        help=f"give up connecting after S seconds ({CONNECT_TIMEOUT.range}; default 10)",
    )
    transport.add_argument(
        "--reconnect",
        type=_typed(WAIT.parse),
        nargs="?",
        const=1.0,
        metavar="S",
        help="reconnect automatically when the connection ends or fails, first after S"
        f" seconds ({WAIT.range}; default 1), then backing off to 30",
    )
    transport.add_argument(
        "--max-clients",
        type=_typed(MAX_CLIENTS.parse),
        metavar="N",
        help=f"listen: refuse clients beyond N ({MAX_CLIENTS.range})",
    )
    transport.add_argument(
        "--once", action="store_true", help="listen, batch: exit when the first client leaves"
    )
    transport.add_argument(
        "--broadcast", action="store_true", help="UDP: allow sending to a broadcast address"
    )
    transport.add_argument(
        "--rcvbuf",
        type=_rcvbuf,
        metavar="BYTES",
        help="UDP: the socket's receive buffer, what a burst can queue while netrepl reads"
        " (4K to 1G, default 4M; the system may grant less)",
    )
    transport.add_argument(
        "--keepalive", action="store_true", help="TCP keepalive probes (60 s idle, every 10 s)"
    )
    transport.add_argument(
        "--nodelay",
        action="store_true",
        help="TCP_NODELAY: no Nagle delay between small back-to-back sends",
    )

    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="TLS over the TCP or unix connection")
    tls.add_argument("--cafile", metavar="FILE", help="trust these CA certificates (PEM)")
    tls.add_argument(
        "--insecure", action="store_true", help="do not verify the certificate (warned on connect)"
    )
    tls.add_argument("--sni", metavar="NAME", help="server name to send and check (default HOST)")
    tls.add_argument(
        "--cert", metavar="FILE", help="certificate chain (PEM): the server's, or a client's"
    )
    tls.add_argument("--key", metavar="FILE", help="private key for --cert, if not in it")
    tls.add_argument("--alpn", metavar="P1,P2", help="offer these ALPN protocols (h2,http/1.1)")

    keep = parser.add_argument_group("keeping what happens")
    keep.add_argument(
        "--log", metavar="FILE", help="write every event to FILE (JSON Lines; netrepl replay)"
    )
    keep.add_argument("--capture", metavar="FILE", help="write the received bytes, raw, to FILE")

    scripts = parser.add_argument_group("scripts")
    scripts.add_argument(
        "--script",
        metavar="FILE",
        help="run FILE (lines as typed, # comments) after connecting; in batch mode before"
        " stdin, and a failing /expect exits 3",
    )
    scripts.add_argument(
        "--on-connect",
        metavar="FILE",
        help="run FILE after every connect and reconnect (a login, an auth preamble)",
    )

    batch = parser.add_argument_group("batch mode (stdin not a terminal)")
    batch.add_argument(
        "--linger",
        type=_typed(WAIT.parse),
        default=1.0,
        metavar="S",
        help="after stdin ends (and its half-close), read until S seconds pass with nothing"
        f" received or the peer closes ({WAIT.range}; default 1.0)",
    )
    batch.add_argument(
        "--stdin",
        choices=("commands", "raw"),
        default="commands",
        help="commands (default): each stdin line as if typed (the end of line is --eol's);"
        " raw: stdin's bytes sent exactly as they are",
    )
    batch.add_argument(
        "--no-shutdown",
        action="store_true",
        help="keep the write side open at the end of stdin (by default it is half-closed,"
        " as nc -N does, so a peer that answers at end of stream answers)",
    )
    batch.add_argument(
        "-q", "--quiet", action="store_true", help="no status lines on stderr, only errors"
    )

    parser.add_argument(
        "--demo", action="store_true", help="start the built-in demo peer and connect to it"
    )
    parser.add_argument("--version", action="version", version=f"netrepl {__version__}")
    return parser


def _endpoint(args: argparse.Namespace) -> Endpoint:
    """The transport options, checked against each other."""
    from netrepl.transport import Endpoint, TlsOptions, parse_host, parse_host_port, parse_port

    needs_tls = [
        name
        for name, value in (
            ("--cafile", args.cafile),
            ("--insecure", args.insecure),
            ("--sni", args.sni),
            ("--cert", args.cert),
            ("--key", args.key),
            ("--alpn", args.alpn),
        )
        if value
    ]
    if needs_tls and not args.tls:
        raise UsageError(f"{needs_tls[0]} needs --tls")
    if args.udp and (args.tls or args.unix):
        raise UsageError("-u (UDP) goes with neither --tls nor --unix")
    if args.broadcast and not args.udp:
        raise UsageError("--broadcast is for UDP (-u)")
    if args.rcvbuf is not None and not args.udp:
        raise UsageError("--rcvbuf is for UDP (-u): streams size their buffers themselves")
    if not args.listen:
        for name, value in (("--max-clients", args.max_clients), ("--once", args.once)):
            if value:
                raise UsageError(f"{name} is for listen mode (-l)")
    elif args.reconnect is not None:
        raise UsageError("--reconnect is for clients, not listen mode (-l)")
    if args.listen and args.source:
        raise UsageError("--source is for clients: a listener binds the HOST it is given")
    if args.udp or args.unix:
        for name, value in (("--keepalive", args.keepalive), ("--nodelay", args.nodelay)):
            if value:
                raise UsageError(f"{name} is for TCP connections")
    if args.listen and args.udp:
        for name, value in (("--max-clients", args.max_clients), ("--once", args.once)):
            if value:
                # UDP senders never connect or leave: there is nothing to count or wait for.
                raise UsageError(f"{name} is for TCP and unix listeners, not UDP")
    if args.listen and args.tls and not args.cert:
        raise UsageError("a TLS listener needs --cert FILE (and --key FILE)")
    tls = None
    if args.tls:
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
    common = {
        "family": args.family or socket.AF_UNSPEC,
        "tls": tls,
        "broadcast": args.broadcast,
        "keepalive": args.keepalive,
        "nodelay": args.nodelay,
        "max_clients": args.max_clients,
        "reconnect": args.reconnect,
        "connect_timeout": args.connect_timeout,
        "listen": args.listen,
        "rcvbuf": args.rcvbuf,
    }
    if args.unix is not None:
        if args.host is not None:
            raise UsageError("--unix PATH takes no HOST or PORT")
        if args.source or args.family:
            raise UsageError("--source, -4 and -6 are for TCP and UDP, not --unix")
        return Endpoint(protocol="unix", path=args.unix, **common)  # type: ignore[arg-type]
    protocol = "udp" if args.udp else "tcp"
    if args.listen and args.port is None:
        # `-l PORT`: the one positional is the port, like nc.
        if args.host is None:
            raise UsageError("give the PORT to listen on (-l [HOST] PORT)")
        host, port_text = None, args.host
    elif args.host is None or args.port is None:
        raise UsageError("give HOST and PORT (or --demo; -l PORT to listen)")
    else:
        host, port_text = args.host, args.port
    if host is not None:
        host = parse_host(host)
    # Listening on port 0 takes a free port, printed when listening starts.
    port = 0 if args.listen and port_text == "0" else parse_port(port_text, protocol)
    source = (
        parse_host_port(args.source, port_optional=True, what="--source") if args.source else None
    )
    return Endpoint(protocol=protocol, host=host, port=port, source=source, **common)  # type: ignore[arg-type]


def _with_optional_values(argv: Sequence[str] | None) -> list[str]:
    """`--reconnect HOST PORT` means the default delay, not a delay named HOST: argparse
    would take any next word as the optional value, so give it its default explicitly."""
    words = list(sys.argv[1:] if argv is None else argv)
    for index, word in enumerate(words):
        if word == "--":
            break
        if word == "--reconnect":
            following = words[index + 1] if index + 1 < len(words) else ""
            try:
                float(following)
            except ValueError:
                words[index] = "--reconnect=1.0"
    return words


def apply_view_options(view: View, encoding: str | None, name: str | None) -> View:
    """`--encoding` and then `--view` over `view`, as every command line combines them.
    ValueError for an unknown name; UsageError when the two disagree (`--view gbk
    --encoding utf-8`)."""
    from netrepl.view import apply_encoding, apply_view_name

    if encoding is not None:
        view = apply_encoding(view, encoding)
    if name is not None:
        named = apply_view_name(view, name)
        if encoding is not None and named.encoding != view.encoding:
            raise UsageError(f"--view {name} conflicts with --encoding {encoding}")
        view = named
    return view


def parse_options(argv: Sequence[str] | None) -> Options:
    """Parse and check the command line; raise UsageError with a one-line reason."""
    args = build_parser().parse_args(_with_optional_values(argv))
    if args.demo:
        if args.host is not None or args.listen or args.udp or args.unix:
            raise UsageError("--demo starts its own peer: give no HOST, PORT, -l, -u or --unix")
        if args.tls:
            raise UsageError("--demo speaks plain TCP: drop --tls")
        # The demo's address is known only once it runs: check the rest as for any client.
        args.host, args.port = "127.0.0.1", "1"
        endpoint = replace(_endpoint(args), port=0)
    else:
        endpoint = _endpoint(args)
    from netrepl.config import load_config  # tomllib: only when about to run
    from netrepl.view import View, apply_encoding, apply_view_name

    config = load_config(args.config)
    defaults = config.defaults
    view = View()
    try:
        # The config file's defaults first, then the command line over them.
        if "encoding" in defaults:
            view = apply_encoding(view, str(defaults["encoding"]))
        if "view" in defaults:
            view = apply_view_name(view, str(defaults["view"]))
        if "time" in defaults:
            view = replace(view, timestamps=defaults["time"])  # type: ignore[arg-type]
        view = apply_view_options(view, args.encoding, args.view)
    except ValueError as error:
        raise UsageError(f"{error} (in {config.source})" if config.source else str(error)) from None
    return Options(
        endpoint=endpoint,
        view=view,
        eol=args.eol or str(defaults.get("eol", "lf")),
        input_mode=str(defaults.get("input", "text")),
        escapes=bool(defaults.get("escapes", True)),
        linger=args.linger,
        demo=args.demo,
        quiet=args.quiet,
        once=args.once,
        stdin=args.stdin,
        shutdown=not args.no_shutdown,
        startup=Startup(
            log=args.log,
            capture=args.capture,
            script=args.script,
            on_connect=args.on_connect,
            presets=tuple(config.presets.items()),
        ),
    )
