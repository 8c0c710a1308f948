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
from netrepl.errors import NetreplError
from netrepl.events import Noticed
from netrepl.options import Startup
from netrepl.render import Renderer
from netrepl.script import run_script, status_of
from netrepl.session import Session, Settings
from netrepl.transport import Endpoint

EXIT_OK, EXIT_CONNECTION, EXIT_USAGE = 0, 1, 2


def run_batch(
    endpoint: Endpoint,
    settings: Settings,
    *,
    linger: float,
    quiet: bool = False,
    once: bool = False,
    startup: Startup,
    banner: str | None = None,
) -> int:
    """Run --script, then stdin, through a session; return the exit status (3 for an expect
    that timed out). Raises ConnectError if the first connection fails."""
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    sink = StreamSink(
        sys.stdout,
        sys.stderr,
        data_format=AnsiFormatter() if sys.stdout.isatty() else plain,
        message_format=AnsiFormatter() if sys.stderr.isatty() else plain,
        quiet=quiet,
    )
    display = Display(Renderer(settings.view, styles=sys.stdout.isatty()), sink)
    session = Session(settings, display.post)
    display.start()
    try:
        if banner:
            display.post(Noticed(banner, "info"))
        session.begin(startup)
        session.open(endpoint)
        wait_until_ready(session)
        status = run_startup_script(session, startup.script)
        if status == EXIT_OK and not session.quit_requested:
            status = feed_lines(session, sys.stdin.buffer, once=once)
        if status == EXIT_OK and not session.quit_requested:
            if once:
                wait_first_client_gone(session)
            else:
                linger_until_quiet(session, linger)
        transport = session.transport
        if status == EXIT_OK and transport is not None and transport.failure:
            status = EXIT_CONNECTION
        session.wait_on_connect()
        if status == EXIT_OK and session.on_connect_failure is not None:
            status = status_of(session.on_connect_failure)
    finally:
        session.close_all()
        display.stop()
    return status


def run_startup_script(session: Session, script: str | None) -> int:
    """--script FILE, before stdin: 0, or the exit status of the line that failed."""
    if script is None:
        return EXIT_OK
    try:
        run_script(session, script)
    except NetreplError as error:
        session.error(str(error))
        return status_of(error)
    return EXIT_OK


def wait_until_ready(session: Session) -> None:
    """A listener waits for its first client (or datagram), a reconnecting client for its
    connection, and both for an --on-connect script to finish, before a line is sent: a
    script's lines have someone to go to, after the login."""
    transport = session.transport
    if transport is not None:
        transport.wait_for(lambda: transport.can_send or not transport.is_open, None)
    session.wait_on_connect()


def _first_client_gone(session: Session) -> bool:
    transport = session.transport
    return transport is None or getattr(transport, "finished", 0) >= 1 or not transport.is_open


def feed_lines(session: Session, stdin: BinaryIO, *, once: bool = False) -> int:
    """Submit each line; stop at the first one that fails, with its exit status."""
    for number, raw in enumerate(stdin, 1):
        if once and _first_client_gone(session):
            break  # --once: the client this script was for has left
        line = raw.decode("utf-8", "surrogateescape")
        line = line.removesuffix("\n").removesuffix("\r")
        if not line.startswith("/") or line.startswith("//"):
            # A reconnecting client, or a listener between clients: the line waits for
            # someone to go to, as the first line did.
            wait_until_ready(session)
        try:
            session.submit_typed(line)
        except NetreplError as error:
            session.error(f"stdin line {number}: {error}")
            return status_of(error)
        if session.quit_requested:
            break
    return EXIT_OK


def wait_first_client_gone(session: Session) -> None:
    transport = session.transport
    if transport is not None:
        transport.wait_for(lambda: _first_client_gone(session), None)


def linger_until_quiet(session: Session, linger: float) -> None:
    """Wait until nobody is left to talk to, or nothing was sent or received for `linger` s."""
    transport = session.transport
    if transport is None:
        return
    quiet_since = time.monotonic()
    while transport.can_send:
        idle = time.monotonic() - max(transport.last_activity, quiet_since)
        if idle >= linger:
            return
        transport.wait_for(lambda: not transport.can_send, linger - idle)
