"""Scripts (files of lines exactly as typed, `#` comments) and periodic sends (/every).

A script runs its lines one after another through `Session.submit`, so every command works
in it as typed; the first failing line stops it, named by file and line number, with the
exit status batch mode uses (3 for an /expect that timed out). Periodic jobs run on a timer
thread of their own; nothing here prints.
"""

from __future__ import annotations

import itertools
import os
import select
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from netrepl.errors import ExitStatus, NetreplError, UsageError
from netrepl.events import Connected, Event
from netrepl.files import describe_path_error, is_stream, open_for_reading, shown_path
from netrepl.quantity import whole_or_none
from netrepl.records import record
from netrepl.transport.loop import IOLoop

if TYPE_CHECKING:
    from netrepl.session import Session

# Scripts may run scripts (/run in a script); this deep at most, so a script that runs
# itself stops with an error instead of exhausting the stack.
MAX_DEPTH = 8
# A script line is a typed line: one longer than this means the file is no script (and an
# endless device without newlines, /dev/zero, would otherwise grow memory without end).
MAX_LINE = 1024 * 1024


class ScriptError(NetreplError):
    """A script line failed: the message names the file and line; `status` is that of the
    line's own error (an /expect that timed out ends a batch run with 3)."""

    def __init__(self, message: str, status: ExitStatus) -> None:
        super().__init__(message)
        self.status = status


def read_script(path: str) -> list[tuple[int, str]]:
    """The numbered lines of a script to run: comments (`#` first) left out, blank lines
    kept (a blank typed line sends the end of line, which HTTP needs)."""
    return list(script_lines(path))


def script_lines(path: str, cancel: threading.Event | None = None) -> Iterator[tuple[int, str]]:
    """The numbered lines of a script, as `read_script` gives them, read as they are run: a
    FIFO or a device is read line by line as lines come (waiting on it stops when `cancel`
    is set), never slurped. Raises ScriptError for a line longer than MAX_LINE (an endless
    device such as /dev/zero ends there) and UsageError when the file cannot be read."""
    with open_for_reading(path) as file:
        read = _stream_reader(file, path, cancel) if is_stream(file) else file.readline
        number = 0
        while True:
            try:
                raw = read(MAX_LINE + 1)
            except OSError as error:
                raise UsageError(
                    f"cannot read {shown_path(path)}: {describe_path_error(error)}"
                ) from None
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                raise ScriptError(
                    f"{path}:{number}: a line over {MAX_LINE:,} bytes: not a script of typed lines",
                    ExitStatus.USAGE,
                )
            line = raw.decode("utf-8", "surrogateescape").removesuffix("\n").removesuffix("\r")
            if not line.lstrip().startswith("#"):
                yield number, line


def _stream_reader(
    file: BinaryIO, path: str, cancel: threading.Event | None
) -> Callable[[int], bytes]:
    """readline(limit) for a FIFO or a device: what has come, up to a newline, waiting in
    short slices so that `cancel` (Ctrl-C) is noticed even while nothing comes."""
    descriptor = file.fileno()
    pending = bytearray()

    def readline(limit: int) -> bytes:
        while True:
            end = pending.find(b"\n", 0, limit) + 1 or (limit if len(pending) >= limit else 0)
            if end:
                line = bytes(pending[:end])
                del pending[:end]
                return line
            if cancel is not None and cancel.is_set():
                raise NetreplError(f"/run {path}: interrupted while waiting for its next line")
            if select.select([descriptor], [], [], 0.05)[0]:
                chunk = os.read(descriptor, 65536)
                if not chunk:
                    line = bytes(pending)
                    pending.clear()
                    return line
                pending.extend(chunk)

    return readline


def run_script(
    session: Session, path: str, release_watchers: Callable[[], None] | None = None
) -> None:
    """Run `path` line by line. Raises ScriptError at the first line that fails.

    `release_watchers` (see watch.Watchers.hold) is called before the first line that may
    send or wait, and at the end: the settings and rules at the top of a script are in place
    before /expect and /when see any byte."""
    from netrepl.commands import REGISTRY

    if session.script_depth >= MAX_DEPTH:
        raise UsageError(f"/run {path}: scripts nested more than {MAX_DEPTH} deep")
    session.script_depth += 1
    try:
        for number, line in script_lines(path, session.cancel):
            if release_watchers is not None and not REGISTRY.is_setup(line):
                release_watchers()
            try:
                session.submit(line)
            except NetreplError as error:
                raise ScriptError(f"{path}:{number}: {error}", error.status) from None
            if session.quit_requested:
                return
    finally:
        session.script_depth -= 1
        if release_watchers is not None:
            release_watchers()


class ConnectScript:
    """--on-connect: a script run after every connect and reconnect of a client (not for a
    listener's clients), each run on a thread of its own, since it may wait (/expect) while
    data keeps arriving. The session's watchers hold the connection's events until the
    script's rules are in place (see run_script)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.path: str | None = None
        self.failure: NetreplError | None = None
        """The last run that failed (batch mode exits with its status)."""
        self._running = 0
        self._changed = threading.Condition()

    def observe(self, event: Event) -> None:
        """A watcher: a client's Connected starts a run."""
        path = self.path
        if path is None or not isinstance(event, Connected) or event.accepted:
            return
        with self._changed:
            self._running += 1
        # Called as the event is posted: what this connection sends next waits for the rules.
        release = self._session.watchers.hold()
        threading.Thread(
            target=self._run, args=(path, release), name="netrepl-on-connect", daemon=True
        ).start()

    def _run(self, path: str, release: Callable[[], None]) -> None:
        try:
            self._session.wait_until_open(10.0)
            run_script(self._session, path, release)
        except NetreplError as error:
            self.failure = error
            self._session.error(f"--on-connect {error}")
        finally:
            release()
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def wait(self) -> None:
        """Batch mode: let a running script finish before the next line."""
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0)


@record
class Job:
    """One /every line: how often it runs and how it went so far."""

    number: int
    interval: float
    line: str
    sent: int = 0
    failing: str | None = None

    def describe(self) -> str:
        state = f"; failing: {self.failing}" if self.failing else ""
        every = f"every {self.interval * 1000:g} ms"
        return f"{self.number}: {every}: {self.line} ({self.sent} sent{state})"


class PeriodicJobs:
    """/every: lines run again and again on a timer thread, until /stop."""

    def __init__(self, run: Callable[[str], None], report: Callable[[str], None]) -> None:
        self._run = run
        self._report = report
        self._jobs: dict[int, Job] = {}
        self._numbers = itertools.count(1)
        self._loop: IOLoop | None = None
        self._lock = threading.Lock()

    def start(self, interval: float, line: str) -> Job:
        with self._lock:
            if self._loop is None:
                self._loop = IOLoop("netrepl-every", on_error=lambda e: self._report(repr(e)))
                self._loop.start()
            job = Job(next(self._numbers), interval, line)
            self._jobs[job.number] = job
            loop = self._loop
        loop.call_soon(lambda: self._fire(job))
        return job

    def stop(self, which: str) -> list[Job]:
        """`N` or `all`; the jobs stopped."""
        with self._lock:
            if which == "all":
                stopped = list(self._jobs.values())
                self._jobs.clear()
                return stopped
            number = whole_or_none(which.removeprefix("#"), 999_999_999)
            job = self._jobs.pop(number, None) if number is not None else None
        if job is None:
            raise UsageError(f"/stop: no job {which} (/every lists them)")
        return [job]

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def close(self) -> None:
        with self._lock:
            self._jobs.clear()
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()

    def _fire(self, job: Job) -> None:
        with self._lock:
            if self._jobs.get(job.number) is not job:
                return  # stopped
            loop = self._loop
        try:
            self._run(job.line)
            job.sent += 1
            job.failing = None
        except NetreplError as error:
            # Said once, not at every tick: a periodic send to a dead peer would flood.
            if job.failing != str(error):
                job.failing = str(error)
                self._report(f"/every {job.number}: {error} (still trying; /stop {job.number})")
        if loop is not None:
            loop.call_later(job.interval, lambda: self._fire(job))
