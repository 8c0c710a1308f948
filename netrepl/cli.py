"""The command line: one declarative argparse parser, mapped to settings, and exit codes.

Exit codes: 0 ok (the peer closing included), 1 connection error, 2 usage error, 3 expect
timeout (reserved). Errors are one line on stderr. `--version` and `--help` import neither
prompt_toolkit nor rich; those are imported only by the front end that is about to run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from netrepl import __version__
from netrepl.errors import ConnectError, UsageError
from netrepl.payload import EOLS
from netrepl.transport import parse_port
from netrepl.view import VIEW_NAMES, View, apply_encoding, apply_view_name

EXIT_OK, EXIT_CONNECTION, EXIT_USAGE = 0, 1, 2

EXAMPLES = """\
examples:
  netrepl --demo                       try every view against the built-in demo peer
  netrepl 127.0.0.1 6379               talk to Redis (type PING)
  netrepl example.com 80 --eol crlf    type an HTTP request by hand
  netrepl 192.168.1.7 502 --view hex   a Modbus/TCP device, shown as a hexdump
  netrepl 10.0.0.5 9000 --view gbk     a device that talks GBK
  printf 'PING\\r\\n' | netrepl 127.0.0.1 6379     batch: prints +PONG and exits

Inside, type /help for the commands.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


@dataclass
class Options:
    host: str
    port: int
    view: View
    eol: str
    connect_timeout: float
    linger: float
    demo: bool
    quiet: bool


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"seconds must be zero or more, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="netrepl",
        description="Talk to a TCP peer by hand: type to send, watch replies in hex, UTF-8 or GBK.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="name, IPv4 or IPv6 address")
    parser.add_argument("port", nargs="?", metavar="PORT", help="port number or service name")
    parser.add_argument(
        "--view",
        choices=VIEW_NAMES,
        help="how received bytes are shown (default utf8; raw: bytes unchanged, batch only)",
    )
    parser.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding for showing and sending text: any Python codec (default utf-8)",
    )
    parser.add_argument(
        "--eol", choices=tuple(EOLS), default="lf", help="end of line added to typed text"
    )
    parser.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="give up connecting after S seconds (default 10)",
    )
    parser.add_argument(
        "--linger",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="batch: after stdin ends, wait until S seconds pass with nothing received "
        "or the peer closes (default 1.0)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="start the built-in demo peer and connect to it"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="batch: no status lines on stderr, only errors"
    )
    parser.add_argument("--version", action="version", version=f"netrepl {__version__}")
    return parser


def parse_options(argv: Sequence[str] | None) -> Options:
    """Parse and check the command line; raise UsageError with a one-line reason."""
    args = build_parser().parse_args(argv)
    if args.demo:
        if args.host is not None:
            raise UsageError("--demo starts its own peer: give no HOST or PORT")
        host, port = "127.0.0.1", 0
    elif args.host is None or args.port is None:
        raise UsageError("give HOST and PORT (or --demo)")
    else:
        host, port = args.host.removeprefix("[").removesuffix("]"), parse_port(args.port)
    view = View()
    try:
        if args.encoding is not None:
            view = apply_encoding(view, args.encoding)
        if args.view is not None:
            named = apply_view_name(view, args.view)
            if args.encoding is not None and named.encoding != view.encoding:
                raise UsageError(f"--view {args.view} conflicts with --encoding {args.encoding}")
            view = named
    except ValueError as error:
        raise UsageError(str(error)) from None
    return Options(
        host=host,
        port=port,
        view=view,
        eol=args.eol,
        connect_timeout=args.connect_timeout,
        linger=args.linger,
        demo=args.demo,
        quiet=args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse_options(argv)
    except UsageError as error:
        print(f"netrepl: {error} (see netrepl --help)", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version
        return int(done.code or 0)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive and options.view.mode == "raw":
        print("netrepl: --view raw is for batch mode (stdin not a terminal)", file=sys.stderr)
        return EXIT_USAGE

    from netrepl.session import Settings

    settings = Settings(
        view=options.view,
        eol=options.eol,
        connect_timeout=options.connect_timeout,
        batch=not interactive,
    )
    demo = None
    banner = None
    host, port = options.host, options.port
    if options.demo:
        from netrepl.demo import DemoPeer

        demo = DemoPeer().start()
        host, port = demo.host, demo.port
        banner = (
            f"demo peer on {demo.address}: type help and press Enter, "
            "then try /hex, /gbk, /auto and /help"
        )
    try:
        if interactive:
            from netrepl.repl import run_interactive

            return run_interactive(host, port, settings, banner)
        from netrepl.batch import run_batch

        return run_batch(
            host, port, settings, linger=options.linger, quiet=options.quiet, banner=banner
        )
    except ConnectError as error:
        print(f"netrepl: {error}", file=sys.stderr)
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        return 130
    finally:
        if demo is not None:
            demo.stop()
