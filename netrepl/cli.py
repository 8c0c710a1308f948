"""The entry point: the command line to an exit code.

Exit statuses are `errors.ExitStatus`: each error class carries its own. Errors are one line
on stderr. `--version` is answered before anything else is
imported, and `--help` imports neither prompt_toolkit nor rich; those are imported only by
the front end that is about to run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from netrepl import __version__

SUBCOMMANDS = ("export", "replay")
"""`netrepl export ...` and `netrepl replay ...` work on saved transcripts, offline."""


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if "--version" in words[: words.index("--")] if "--" in words else "--version" in words:
        # Answered before the parser is built: a version check costs an interpreter start,
        # not the import of everything the parser knows about.
        print(f"netrepl {__version__}")
        return 0  # ExitStatus.OK, without importing even that
    if words and words[0] in SUBCOMMANDS:
        from netrepl.offline import run_offline

        return run_offline(words[0], words[1:])
    from netrepl.errors import ExitStatus, NetreplError, UsageError
    from netrepl.options import parse_options
    from netrepl.records import replace

    try:
        options = parse_options(argv)
    except UsageError as error:
        print(f"netrepl: {error} (see netrepl --help)", file=sys.stderr)
        return error.status
    except SystemExit as done:  # --help and --version
        return int(done.code or 0)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive and options.view.mode == "raw":
        print("netrepl: --view raw is for batch mode (stdin not a terminal)", file=sys.stderr)
        return ExitStatus.USAGE

    from netrepl.session import Settings

    settings = Settings(
        view=options.view,
        eol=options.eol,
        input_mode=options.input_mode,  # type: ignore[arg-type]
        escapes=options.escapes,
        batch=not interactive,
    )
    demo = None
    banner = None
    endpoint = options.endpoint
    if options.demo:
        from netrepl.demo import DemoPeer

        websocket = endpoint.protocol == "ws"
        # A WebSocket client speaks first: the peer waits for its upgrade request (the
        # TCP demo greets at once).
        demo = DemoPeer(upgrade_wait=None if websocket else 0.0).start()
        endpoint = replace(endpoint, host=demo.host, port=demo.port)
        if websocket:
            banner = (
                f"demo peer on {endpoint.label}: type help and press Enter, "
                "then try json, /json and /ping"
            )
        else:
            banner = (
                f"demo peer on {demo.address}: type help and press Enter, "
                "then try /hex, /gbk, /auto and /help"
            )
    try:
        if interactive:
            from netrepl.repl import run_interactive

            _freeze_imports()
            return run_interactive(endpoint, settings, options.startup, banner)
        from netrepl.batch import run_batch

        _freeze_imports()
        return run_batch(
            endpoint,
            settings,
            linger=options.linger,
            quiet=options.quiet,
            once=options.once,
            banner=banner,
            startup=options.startup,
            stdin_mode=options.stdin,
            shutdown=options.shutdown,
        )
    except NetreplError as error:  # the first connection failed, or a file could not open
        print(f"netrepl: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    finally:
        if demo is not None:
            demo.stop()


def _freeze_imports() -> None:
    """Everything imported so far lives as long as the process: the garbage collector need
    never walk it again, and the interpreter's exit, which did (~20 ms, a tenth of a 500 MB
    batch transfer in benchmarks/), skips it too."""
    import gc

    gc.freeze()
