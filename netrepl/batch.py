"""Batch mode: stdin is not a terminal, so each stdin line is handled exactly as if typed
(or, with `--stdin raw`, stdin's bytes are sent as they are).

Received data goes to stdout in the current view (no colour unless stdout is a terminal),
messages to stderr. At the end of stdin the write side is half-closed (unless
`--no-shutdown`), and netrepl reads until the peer closes or nothing arrives for `linger`
seconds. Stdin is read on a thread of its own, so a client that leaves (`--once`) or a display
that fails ends the run even while stdin stays open. This module must not import
prompt_toolkit: scripts start faster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from netrepl.display import QUEUE_LIMIT, AnsiFormatter, Display, StreamSink, plain
from netrepl.errors import ExitStatus, NetreplError
from netrepl.events import Closed, Connected, Event, Noticed
from netrepl.options import Startup
from netrepl.render import Renderer
from netrepl.script import run_script
from netrepl.session import Session, Settings
from netrepl.streaming import send_stream
from netrepl.transport import Endpoint

# A stdin line longer than this (no newline in sight: `< /dev/zero`) stops the run, rather
# than grow without bound.
MAX_LINE = 1024 * 1024
# --stdin raw reads at most this much at a time: over UDP each read is one datagram, and
# this is the most a datagram carries (65,535 less the UDP and IPv4 headers).
RAW_READ = 65507
# The main thread waits in slices of this: a signal's handler (SIGINT's KeyboardInterrupt, a
# relay's SIGTERM) runs only when it next runs Python code, and a signal that another thread
# took, or that came just before it blocked, wakes no one.
SIGNAL_SLICE_SECONDS = 0.1


# A relay has forwarded what its display still has to show: what waits there is memory held
# for nothing, so it may be less than a reader's (a relay's legs queue 1 MiB each).
RELAY_DISPLAY_QUEUE = 1024 * 1024


class Stopped(Exception):
    """The run must end now: the display failed, or (--once) the client left."""


class StdinReader:
    """Stdin read on a thread of its own into a queue, so the run can wait for the next line
    and for anything else that ends it (`poke`), whichever comes first.

    It reads the file descriptor itself, not `sys.stdin.buffer`: a daemon thread blocked in a
    buffered read holds the buffer's lock, and the interpreter's exit, which flushes stdin,
    then aborts (SIGABRT) when the run ends before stdin does (--once, a failed display)."""

    def __init__(self, fd: int, *, raw: bool) -> None:
        self._fd = fd
        self._raw = raw
        self._items: deque[bytes] = deque()
        self._ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, name="netrepl-stdin", daemon=True).start()

    def _read(self) -> None:
        pending = b""
        try:
            while chunk := os.read(self._fd, RAW_READ):
                if self._raw:
                    self._add([chunk])
                    continue
                *lines, pending = (pending + chunk).split(b"\n")
                items = [line + b"\n" for line in lines]
                if len(pending) > MAX_LINE:  # too long to be a line: it fails at its turn
                    items.append(pending)
                    pending = b""
                self._add(items)
        except OSError:
            pass  # stdin closed or unreadable: the same as its end
        finally:
            with self._changed:
                if pending:
                    self._items.append(pending)
                self._ended = True
                self._changed.notify_all()

    def _add(self, items: list[bytes]) -> None:
        if items:
            with self._changed:
                self._items.extend(items)
                self._changed.notify_all()

    def poke(self) -> None:
        """Something that may end the run happened: wake whoever waits for input."""
        with self._changed:
            self._changed.notify_all()

    def next(self, stop: Callable[[], bool]) -> bytes | None:
        """The next line (or raw read); None at the end of stdin. Raises Stopped once
        `stop()` holds."""
        with self._changed:
            wait_noticing_signals(
                lambda seconds: self._changed.wait_for(
                    lambda: self._items or self._ended or stop(), seconds
                )
            )
            if stop():
                raise Stopped
            return self._items.popleft() if self._items else None


class BatchRun:
    """One batch run: the session, its display, stdin, and how it ends."""

    def __init__(
        self, session: Session, display: Display, *, once: bool, raw: bool, stdin: int
    ) -> None:
        self.session = session
        self.display = display
        self.once = once
        self.raw = raw
        self._stdin = stdin
        self.reader: StdinReader | None = None
        self._wakeups: list[Callable[[], None]] = []
        session.watchers.add(self._observe)

    def _observe(self, event: Event) -> None:
        if isinstance(event, Closed | Connected):  # what --once and the end of input wait on
            self.poke()

    def stopping(self) -> bool:
        """The run must end now, whatever is left on stdin."""
        return (
            self.display.failure is not None
            or self.session.quit_requested
            or (self.once and first_client_gone(self.session))
        )

    def poke(self) -> None:
        """Something that may end the run happened: wake whatever the run waits on."""
        for wake in self._wakeups:
            wake()

    def fail(self) -> None:
        """The display failed: stop waiting for stdin, a peer or a reply."""
        self.session.cancel.set()
        self.poke()

    def read_stdin(self) -> StdinReader:
        self.reader = StdinReader(self._stdin, raw=self.raw)
        self._wakeups.append(self.reader.poke)
        return self.reader

    def feed_lines(self) -> int:
        """Submit each stdin line as if typed; stop at the first one that fails, with its
        exit status."""
        reader = self.read_stdin()
        number = 0
        while (raw := reader.next(self.stopping)) is not None:
            number += 1
            if len(raw) > MAX_LINE:
                self.session.error(f"stdin line {number} is over {MAX_LINE:,} bytes")
                return ExitStatus.USAGE
            line = raw.decode("utf-8", "surrogateescape")
            line = line.removesuffix("\n").removesuffix("\r")
            self.session.on_connect.wait()
            try:
                self.session.submit_typed(line)
            except NetreplError as error:
                if self.stopping():
                    raise Stopped from None
                self.session.error(f"stdin line {number}: {error}")
                return error.status
            if self.session.quit_requested:
                break
        return ExitStatus.OK

    def feed_raw(self) -> int:
        """--stdin raw: stdin's bytes, exactly, as one payload to the current target."""
        reader = self.read_stdin()

        def pieces() -> Iterator[bytes]:
            while (piece := reader.next(self.stopping)) is not None:
                yield piece

        self.session.on_connect.wait()
        try:
            send_stream(self.session, pieces(), "stdin", None)
        except NetreplError as error:
            self.session.error(f"stdin: {error}")
            return error.status
        return ExitStatus.OK

    def end_of_input(self, *, shutdown: bool, linger: float) -> None:
        """Stdin has ended: half-close (unless `shutdown` is False), then read until the
        peer closes, every client has left, or nothing arrives for `linger` seconds; with
        --once, until the first client leaves."""
        session, transport = self.session, self.session.transport
        if transport is None:
            return
        self._wakeups.append(transport.notify)
        if session.listening and not isinstance(session.current_target, tuple):
            # Like nc -l: a listener has its first client (or datagram) before it is done
            # (unless it was told where to send: /to HOST:PORT).
            wait_noticing_signals(
                lambda seconds: transport.wait_for(
                    lambda: not transport.awaiting_peer or transport.finished or self.stopping(),
                    seconds,
                )
            )
        session.on_connect.wait()  # a login script still talking must not be cut off
        if transport.runs_by_itself:
            # A relay: stdin was for commands; the traffic goes on until a signal (or --once).
            wait_noticing_signals(
                lambda seconds: transport.wait_for(
                    lambda: (self.once and first_client_gone(session)) or self.stopping(), seconds
                )
            )
            return
        if shutdown and transport.can_send:
            # A datagram transport has no half-close; a peer that is closing needs none.
            with contextlib.suppress(NetreplError, OSError):
                session.send_eof()
        if self.once:
            wait_noticing_signals(
                lambda seconds: transport.wait_for(
                    lambda: first_client_gone(session) or self.stopping(), seconds
                )
            )
            return
        quiet_since = time.monotonic()
        while transport.peers() and not self.stopping():
            idle = time.monotonic() - max(transport.last_activity, quiet_since)
            if idle >= linger:
                return
            transport.wait_for(lambda: not transport.peers() or self.stopping(), linger - idle)


def run_batch(
    endpoint: Endpoint,
    settings: Settings,
    *,
    linger: float,
    quiet: bool = False,
    once: bool = False,
    startup: Startup,
    banner: str | None = None,
    stdin_mode: str = "commands",
    shutdown: bool = True,
) -> int:
    """Run --script, then stdin, through a session; return the exit status (3 for an expect
    that timed out, 4 when netrepl itself failed). Raises ConnectError if the first
    connection fails."""
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    sink = StreamSink(
        sys.stdout,
        sys.stderr,
        data_format=AnsiFormatter() if sys.stdout.isatty() else plain,
        message_format=AnsiFormatter() if sys.stderr.isatty() else plain,
        quiet=quiet,
    )
    run: BatchRun | None = None

    def display_failed(reason: str) -> None:
        print(f"netrepl: {reason}", file=sys.stderr, flush=True)
        if run is not None:
            run.fail()

    display = Display(
        Renderer(settings.view, styles=sys.stdout.isatty()),
        sink,
        on_failure=display_failed,
        batch_queue_limit=RELAY_DISPLAY_QUEUE if endpoint.upstream is not None else QUEUE_LIMIT,
    )
    session = Session(settings, display.post)
    run = BatchRun(session, display, once=once, raw=stdin_mode == "raw", stdin=sys.stdin.fileno())
    display.start()
    try:
        if banner:
            display.post(Noticed(banner, "info"))
        session.begin(startup)
        # A relay runs until a signal: from before it listens, so no SIGTERM finds it
        # without the handler that ends it in order.
        by_itself = endpoint.upstream is not None
        if by_itself:
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            session.open(endpoint)
        except NetreplError:
            if display.failure is None:
                raise
            return ExitStatus.INTERNAL  # the failure interrupted the connect, and is said already
        except KeyboardInterrupt:
            if not by_itself:
                raise
            return ExitStatus.OK  # stopped as it began: the summary below says what it did
        transport = session.transport
        try:
            status = run_startup_script(session, startup.script)
            if status == ExitStatus.OK and not session.quit_requested:
                status = run.feed_raw() if run.raw else run.feed_lines()
            if status == ExitStatus.OK and not session.quit_requested:
                run.end_of_input(shutdown=shutdown, linger=linger)
        except Stopped:
            status = ExitStatus.OK
        except KeyboardInterrupt:
            if not by_itself:
                raise
            status = ExitStatus.OK  # how a relay is meant to end: said below, exit 0
        if status == ExitStatus.OK and transport is not None and transport.failure:
            status = ExitStatus.CONNECTION
        session.on_connect.wait()
        if status == ExitStatus.OK and session.on_connect.failure is not None:
            status = session.on_connect.failure.status
    finally:
        session.close_all()
        transport = session.transport
        if transport is not None and transport.runs_by_itself:
            display.post(Noticed(transport.summary(), "status"))  # the last line of a relay
        display.stop()
    if display.failure is not None:
        return ExitStatus.INTERNAL
    return status


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends a relay as Ctrl-C does: the wait is interrupted, the run ends in order."""
    raise KeyboardInterrupt


def run_startup_script(session: Session, script: str | None) -> int:
    """--script FILE, before stdin: 0, or the exit status of the line that failed."""
    if script is None:
        return ExitStatus.OK
    try:
        run_script(session, script, session.take_startup_hold())
    except NetreplError as error:
        session.error(str(error))
        return error.status
    return ExitStatus.OK


def wait_noticing_signals(wait: Callable[[float], bool]) -> None:
    """Call `wait(seconds)` again and again until it returns True, so the main thread runs
    Python code at least every SIGNAL_SLICE_SECONDS and a signal's handler is never left
    waiting (see SIGNAL_SLICE_SECONDS)."""
    while not wait(SIGNAL_SLICE_SECONDS):
        pass


def first_client_gone(session: Session) -> bool:
    """--once: the first client of a listener has come and gone (or the listener closed)."""
    transport = session.transport
    return transport is None or transport.finished >= 1 or not transport.is_open
