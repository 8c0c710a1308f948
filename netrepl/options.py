"""The command line of `netrepl`, declared once: its options (each transport kind declares
its own, in transport/kinds/), the checks between them, and `parse_options`, which turns a
checked command line into an `Options` record.

The parser, `--help`, docs/options.md, the man page and shell completion all come from these
declarations (`cmdline.py`, `manual.py`). `cli.main` imports this only once it knows the
command line is not `--version`; nothing here imports rich or prompt_toolkit.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from netrepl import __version__
from netrepl.cmdline import Group, Program, check, option, typed
from netrepl.errors import UsageError
from netrepl.payload import EOLS
from netrepl.quantity import WAIT
from netrepl.records import record, replace
from netrepl.transport import registry
from netrepl.view import VIEW_NAMES, View, apply_encoding, apply_view_name

if TYPE_CHECKING:
    from netrepl.transport import Endpoint

SUMMARY = "talk to a socket by hand: type to send, watch replies in hex, UTF-8 or GBK"

EXAMPLES = (
    ("netrepl --demo", "try every view against the built-in demo peer"),
    ("netrepl 127.0.0.1 6379", "talk to Redis (type PING)"),
    ("netrepl example.com 80 --eol crlf", "type an HTTP request by hand"),
    ("netrepl example.com 443 --tls --eol crlf", "the same over TLS (certificate checked)"),
    ("netrepl 192.168.1.7 502 --view hex", "a Modbus/TCP device, shown as a hexdump"),
    ("netrepl 10.0.0.5 9000 --view gbk", "a device that talks GBK"),
    ("netrepl wss://example.com/ws", "a WebSocket: each line one message (/json, /ping)"),
    ("netrepl -l 9000", "wait for devices to connect to port 9000"),
    ("netrepl -u -l 5000 --view hex", "receive UDP datagrams on port 5000"),
    ("printf 'PING\\n' | netrepl 127.0.0.1 6379", "batch: prints +PONG and exits"),
    ("netrepl 10.0.0.5 9000 --log s.jsonl", "keep every byte in a transcript, then:"),
    ("netrepl replay s.jsonl --view hex", "show it again (netrepl replay --help)"),
    (
        "netrepl export s.jsonl --pcap s.pcap",
        "make a capture for Wireshark (netrepl export --help)",
    ),
    ('eval "$(netrepl --completion bash)"', "complete options in bash (zsh and fish likewise)"),
)
"""(command, what it does): the end of `--help`, docs/options.md and the man page."""

CLOSING = (
    "Inside, type /help for the commands. Every option and the rules between them:\n"
    "docs/options.md, or the man page docs/netrepl.1 (man -l docs/netrepl.1)."
)


def _epilog() -> str:
    width = max(len(command) for command, _ in EXAMPLES if len(command) < 40)
    lines = [f"  {command:<{width}}  {what}" for command, what in EXAMPLES]
    return "\n".join(["examples:", *lines, "", CLOSING, ""])


SHELLS = ("bash", "zsh", "fish")
"""What `--completion` writes a script for."""


@record(unsafe_hash=True)
class Startup:
    """What the command line asks the session for once, before the first connection."""

    log: str | None = None
    capture: str | None = None
    script: str | None = None
    on_connect: str | None = None
    presets: tuple[tuple[str, str], ...] = ()


@record
class Options:
    """The parsed command line: what cli.py hands to the front end."""

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


class _PrintCompletion(argparse.Action):
    """`--completion SHELL`: print the completion script and exit, as `--version` does."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from netrepl.manual import completion_script

        sys.stdout.write(completion_script(str(values)))
        parser.exit()


# ---- the options that are not the transport's

SHOWING = Group(
    "showing and sending",
    (
        option(
            "--view",
            choices=VIEW_NAMES,
            help="how received bytes are shown (default utf8; raw: bytes unchanged, batch only)",
        ),
        option(
            "--encoding",
            metavar="NAME",
            help="text encoding for showing and sending text: any Python codec (default utf-8)",
        ),
        option(
            "--time",
            choices=("off", "on", "delta"),
            help="time received and sent blocks: on (clock), delta (since the last), off"
            " (the default; /time changes it)",
        ),
        option("--eol", choices=tuple(EOLS), help="end of line added to typed text (default lf)"),
        option(
            "--config",
            metavar="FILE",
            completes="file",
            help="read defaults and /p presets from FILE (default ~/.config/netrepl/config.toml)",
        ),
    ),
)
KEEPING = Group(
    "keeping what happens",
    (
        option(
            "--log",
            metavar="FILE",
            completes="file",
            help="write every event to FILE (JSON Lines, the bytes in FILE.data; netrepl replay)",
        ),
        option(
            "--capture",
            metavar="FILE",
            completes="file",
            help="write the received bytes, raw, to FILE",
        ),
    ),
)
SCRIPTS = Group(
    "scripts",
    (
        option(
            "--script",
            metavar="FILE",
            completes="file",
            help="run FILE (lines as typed, # comments) after connecting; in batch mode before"
            " stdin, and a failing /expect exits 3",
        ),
        option(
            "--on-connect",
            metavar="FILE",
            completes="file",
            help="run FILE after every connect and reconnect (a login, an auth preamble)",
        ),
    ),
)
BATCH = Group(
    "batch mode (stdin not a terminal)",
    (
        option(
            "--linger",
            type=typed(WAIT.parse),
            default=1.0,
            metavar="S",
            help="after stdin ends (and its half-close), read until S seconds pass with nothing"
            f" received or the peer closes ({WAIT.range}; default 1.0)",
        ),
        option(
            "--stdin",
            choices=("commands", "raw"),
            default="commands",
            help="commands (default): each stdin line as if typed (the end of line is --eol's);"
            " raw: stdin's bytes sent exactly as they are",
        ),
        option(
            "--no-shutdown",
            action="store_true",
            help="keep the write side open at the end of stdin (by default it is half-closed,"
            " as nc -N does, so a peer that answers at end of stream answers)",
        ),
        option("-q", "--quiet", action="store_true", help="no status lines on stderr, only errors"),
    ),
)
DEMO = option(
    "--demo",
    action="store_true",
    help="start the built-in demo peer and connect to it (with --ws, over WebSocket)",
)
GENERAL = Group(
    "general",
    (
        DEMO,
        option(
            "--completion",
            metavar="SHELL",
            choices=SHELLS,
            action=_PrintCompletion,
            help="print the completion script for SHELL (bash, zsh or fish) and exit",
        ),
        option(
            "--version",
            action="version",
            version=f"netrepl {__version__}",
            help="print the version and exit",
        ),
        option("-h", "--help", action="help", help="show this help and exit"),
    ),
)


# ---- the checks that are not the transport's


DEMO_KINDS = ("ws",)
"""Kinds the demo peer speaks besides TCP, on the same port: `--demo --ws`."""


def _demo_refuses() -> list[str]:
    """The kind flags --demo refuses (`-u`, `--unix`)."""
    return [
        kind.flag
        for kind in registry.kinds()
        if kind.selector is not None and kind.name not in DEMO_KINDS
    ]


@check(lambda: ("--demo", "host", "port", "-l", *registry.selector_flags()))
def _demo_starts_its_own_peer(args: argparse.Namespace) -> None:
    """--demo starts its own peer: it takes no HOST, PORT or -l, and no transport kind
    (such as -u) but those the peer speaks (--ws)."""
    refused = [kind for kind in registry.chosen_kinds(args) if kind.name not in DEMO_KINDS]
    if args.demo and (args.host is not None or args.listen or refused):
        words = ["HOST", "PORT", "-l", *_demo_refuses()]
        raise UsageError(
            f"--demo starts its own peer: give no {', '.join(words[:-1])} or {words[-1]}"
        )


@check(lambda: ("--demo", *(layer.selector.name for layer in registry.layers())))
def _demo_speaks_plain_tcp(args: argparse.Namespace) -> None:
    """--demo speaks plain TCP (or WebSocket, --ws): it takes no layer (such as --tls)."""
    for layer in registry.layers():
        if args.demo and layer.chosen(args):
            raise UsageError(f"--demo speaks plain TCP (or --ws): drop {layer.selector.name}")


@check("--demo", "--proxy")
def _demo_connects_directly(args: argparse.Namespace) -> None:
    """--demo connects to its own peer on this machine directly: no --proxy."""
    if args.demo and args.proxy is not None:
        raise UsageError("--demo connects to its own peer directly: drop --proxy")


def _connect_synopsis() -> str:
    """`connect (TCP; -u UDP; --tls TLS)`: the kinds addressed by HOST PORT, and the layers."""
    kinds = [kind for kind in registry.kinds() if kind.services is not None]
    ways = [
        kind.title if kind.selector is None else f"{kind.chooser} {kind.title}" for kind in kinds
    ]
    ways += [f"{layer.selector.name} {layer.title}" for layer in registry.layers()]
    return f"connect ({'; '.join(ways)})"


@functools.cache
def program() -> Program:
    """The whole command line of `netrepl`, with its subcommands."""
    from netrepl.offline import EXPORT, REPLAY  # offline imports this module

    found = registry.registered()
    own = [kind.synopsis for kind in found.kinds if kind.synopsis is not None]
    return Program(
        prog="netrepl",
        summary=SUMMARY,
        description=f"{SUMMARY[0].upper()}{SUMMARY[1:]}.",
        groups=(found.positionals, SHOWING, *registry.groups(), KEEPING, SCRIPTS, BATCH, GENERAL),
        synopsis=(
            ("[options] HOST PORT", _connect_synopsis()),
            ("[options] -l [HOST] PORT", "listen for clients (all interfaces by default)"),
            *own,
            ("--demo", "try it against the built-in demo peer"),
        ),
        epilog=_epilog(),
        checks=(
            _demo_starts_its_own_peer,
            _demo_speaks_plain_tcp,
            _demo_connects_directly,
            *registry.checks(),
        ),
        subcommands=(REPLAY, EXPORT),
    )


def build_parser() -> argparse.ArgumentParser:
    return program().parser()


def apply_view_options(view: View, encoding: str | None, name: str | None) -> View:
    """`--encoding` and then `--view` over `view`, as every command line combines them.
    ValueError for an unknown name; UsageError when the two disagree (`--view gbk
    --encoding utf-8`)."""
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
    netrepl = program()
    words = list(sys.argv[1:] if argv is None else argv)
    args = netrepl.parser().parse_args(netrepl.with_optional_values(words))
    registry.take_addresses(args)
    netrepl.check(args, "together")
    if args.demo:
        # The demo's address is known only once it runs: check the rest as for any client.
        args.host, args.port = "127.0.0.1", "1"
    netrepl.check(args, "complete")
    endpoint = registry.build_endpoint(args)
    if args.demo:
        endpoint = replace(endpoint, port=0)
    from netrepl.config import load_config  # tomllib: only when about to run

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
        if args.time is not None:
            view = replace(view, timestamps=args.time)
    except ValueError as error:
        raise UsageError(f"{error} (in {config.source})" if config.source else str(error)) from None
    return Options(
        endpoint=endpoint,
        view=view,
        # A kind with an end of line of its own (a WebSocket's none) is more particular than
        # the config file's default for every connection.
        eol=args.eol or registry.chosen_kind(args).eol or str(defaults.get("eol", "lf")),
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
