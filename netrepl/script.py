"""Scripts (files of lines exactly as typed, `#` comments) and periodic sends (/every).

A script runs its lines one after another through `Session.submit`, so every command works
in it as typed; the first failing line stops it, named by file and line number, with the
exit status batch mode uses (3 for an /expect that timed out). Periodic jobs run on a timer
thread of their own; nothing here prints.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netrepl.errors import NetreplError, UsageError
from netrepl.transport.loop import IOLoop
from netrepl.watch import ExpectTimeout

if TYPE_CHECKING:
    from netrepl.session import Session

# Scripts may run scripts (/run in a script); this deep at most, so a script that runs
# itself stops with an error instead of exhausting the stack.
MAX_DEPTH = 8
EXIT_CONNECTION, EXIT_USAGE, EXIT_EXPECT = 1, 2, 3


class ScriptError(NetreplError):
    """A script line failed: the message names the file and line; `status` is the exit code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def status_of(error: NetreplError) -> int:
    """The batch exit status for an error: 3 expect timeout, 2 usage, 1 connection."""
    if isinstance(error, ScriptError):
        return error.status
    if isinstance(error, ExpectTimeout):
        return EXIT_EXPECT
    if isinstance(error, UsageError):
        return EXIT_USAGE
    return EXIT_CONNECTION


def read_script(path: str) -> list[tuple[int, str]]:
    """The numbered lines of a script to run: comments (`#` first) left out, blank lines
    kept (a blank typed line sends the end of line, which HTTP needs)."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8", errors="surrogateescape") as file:
            text = file.read()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no line of its own
    return [
        (number, line.removesuffix("\r"))
        for number, line in enumerate(lines, 1)
        if not line.lstrip().startswith("#")
    ]


def run_script(
    session: Session, path: str, release_watchers: Callable[[], None] | None = None
) -> None:
    """Run `path` line by line. Raises ScriptError at the first line that fails.

    `release_watchers` (see Session.hold_watchers) is called before the first line that may
    send or wait, and at the end: the settings and rules at the top of a script are in place
    before /expect and /when see any byte."""
    from netrepl.commands import REGISTRY

    if session.script_depth >= MAX_DEPTH:
        raise UsageError(f"/run {path}: scripts nested more than {MAX_DEPTH} deep")
    lines = read_script(path)
    session.script_depth += 1
    try:
        for number, line in lines:
            if release_watchers is not None and not REGISTRY.is_setup(line):
                release_watchers()
            try:
                session.submit(line)
            except NetreplError as error:
                raise ScriptError(f"{path}:{number}: {error}", status_of(error)) from None
            if session.quit_requested:
                return
    finally:
        session.script_depth -= 1
        if release_watchers is not None:
            release_watchers()


@dataclass
class Job:
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
            job = self._jobs.pop(int(which), None) if which.isdigit() else None
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
