"""Batch mode: stdin is not a terminal, so each stdin line is handled exactly as if typed.

Received data goes to stdout in the current view (no colour unless stdout is a terminal),
messages to stderr. At the end of stdin it keeps reading until the peer closes or stays
quiet for `linger` seconds. This module must not import prompt_toolkit: scripts start faster.
"""

from __future__ import annotations

import sys
import time
from typing import BinaryIO

from netrepl.display import AnsiFormatter, Display, StreamSink, plain
from netrepl.errors import NetreplError, UsageError
from netrepl.events import Noticed
from netrepl.render import Renderer
from netrepl.session import Session, Settings

EXIT_OK, EXIT_CONNECTION, EXIT_USAGE = 0, 1, 2


def run_batch(
    host: str,
    port: int,
    settings: Settings,
    *,
    linger: float,
    quiet: bool = False,
    banner: str | None = None,
) -> int:
    """Run stdin through a session. Raises ConnectError if the first connection fails."""
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    sink = StreamSink(
        sys.stdout,
        sys.stderr,
        data_format=AnsiFormatter() if sys.stdout.isatty() else plain,
        message_format=AnsiFormatter() if sys.stderr.isatty() else plain,
        quiet=quiet,
    )
    display = Display(Renderer(settings.view), sink)
    session = Session(settings, display.post)
    display.start()
    try:
        if banner:
            display.post(Noticed(banner, "info"))
        session.connect(host, port)
        status = feed_lines(session, sys.stdin.buffer)
        if status == EXIT_OK and not session.quit_requested:
            linger_until_quiet(session, linger)
        connection = session.connection
        if status == EXIT_OK and connection is not None and connection.failure:
            status = EXIT_CONNECTION
    finally:
        session.close()
        display.stop()
    return status


def feed_lines(session: Session, stdin: BinaryIO) -> int:
    """Submit each line; stop at the first one that fails, with its exit status."""
    for number, raw in enumerate(stdin, 1):
        line = raw.decode("utf-8", "surrogateescape")
        line = line.removesuffix("\n").removesuffix("\r")
        try:
            session.submit(line)
        except NetreplError as error:
            session.post(Noticed(f"stdin line {number}: {error}", "error"))
            return EXIT_USAGE if isinstance(error, UsageError) else EXIT_CONNECTION
        if session.quit_requested:
            break
    return EXIT_OK


def linger_until_quiet(session: Session, linger: float) -> None:
    """Wait until the peer closes, or nothing has been sent or received for `linger` s."""
    connection = session.connection
    if connection is None:
        return
    quiet_since = time.monotonic()
    while connection.is_open:
        idle = time.monotonic() - max(connection.last_activity, quiet_since)
        if idle >= linger or connection.wait_closed(linger - idle):
            return
