"""`netrepl export` and `netrepl replay`: a saved transcript as a pcap file, or shown again.

The I/O shell around the pure `transcript.py` and `pcap.py`: reads the transcript, writes the
capture, or feeds a batch Display exactly as a live batch session does. It opens no socket
and must not import prompt_toolkit; export does not import rich either.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from netrepl.cmdline import Group, Program, option
from netrepl.errors import ExitStatus, UsageError
from netrepl.framing import parse_framing
from netrepl.options import apply_view_options
from netrepl.records import replace
from netrepl.transcript import Entry, TranscriptError, data_file_of, header_of, parse_line
from netrepl.view import VIEW_NAMES, View

MAX_PAUSE = 5.0
"""Seconds replay waits between two records at most, whatever the transcript's gap."""
MAX_LINE = 32 * 1024 * 1024
"""A transcript line holds one event: its data in base64, a 16 MiB send at most (22 MiB).
Longer is no transcript (/dev/zero), and would grow memory without end."""


class _InputError(Exception):
    """The transcript could not be read (exit 1); bad content is a TranscriptError (exit 2)."""


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"the speed must be zero or more, got {text}")
    return value


HELP = option("-h", "--help", action="help", help="show this help and exit")
FILE = Group(
    "", (option("file", metavar="FILE", completes="file", help="the transcript (- for stdin)"),)
)

EXPORT = Program(
    prog="netrepl export",
    summary="turn a --log transcript into a pcap file",
    description="Write a transcript's connections as a pcap file for Wireshark or tcpdump:"
    " synthetic IPv4/IPv6 packets (link type RAW) with real TCP handshakes, sequence"
    " numbers and checksums. A WebSocket connection is its upgrade request and response,"
    " then its messages, pings, pongs and closes as frames, as on the wire (the client's"
    " masked), so Wireshark dissects it as WebSocket. Ends that are not IP addresses (unix"
    " sockets, host names) get fake ones: 10.0.0.1 for this side, 10.0.0.2 for the peer.",
    synopsis=(("FILE --pcap OUT", ""),),
    groups=(
        FILE,
        Group(
            "options",
            (
                HELP,
                option(
                    "--pcap",
                    metavar="OUT",
                    required=True,
                    completes="file",
                    help="the pcap file to write (- for stdout)",
                ),
            ),
        ),
    ),
)

REPLAY = Program(
    prog="netrepl replay",
    summary="show a saved --log transcript again",
    description="Show a transcript's events as batch mode showed them live: received data"
    " on stdout in the chosen view, status lines on stderr.",
    synopsis=(("FILE [--view V]", ""),),
    groups=(
        FILE,
        Group(
            "options",
            (
                HELP,
                option(
                    "--view",
                    choices=VIEW_NAMES,
                    help="how received bytes are shown (default utf8; raw: bytes unchanged,"
                    " not to a terminal)",
                ),
                option(
                    "--encoding",
                    metavar="NAME",
                    help="text encoding: any Python codec (default utf-8)",
                ),
                option(
                    "--time",
                    choices=("on", "delta"),
                    help="a timestamp on each block (as /time): the clock, or the time since"
                    " the previous",
                ),
                option(
                    "--frame",
                    metavar="MODE",
                    help="cut received data into frames as /frame does: 'idle 20', line,"
                    " 'len 8', 'delim 0a'",
                ),
                option(
                    "--speed",
                    type=_speed,
                    default=0.0,
                    metavar="X",
                    help="0 (default): as fast as possible; 1: with the original pauses between"
                    f" records, each cut to {MAX_PAUSE:g} s at most; 2: twice as fast, and so on",
                ),
                option(
                    "-q",
                    "--quiet",
                    action="store_true",
                    help="no status lines on stderr, only errors",
                ),
            ),
        ),
    ),
)


def run_offline(name: str, argv: list[str]) -> int:
    """Run `netrepl NAME ARGV` for NAME in `export`, `replay`; return the exit status."""
    commands: dict[str, tuple[Program, Callable[..., int]]] = {
        "export": (EXPORT, _export),
        "replay": (REPLAY, _replay),
    }
    if name not in commands:
        _error(f"unknown command {name!r} (choose from {', '.join(commands)})")
        return ExitStatus.USAGE
    program, run = commands[name]
    try:
        args = program.parser().parse_args(argv)
        return run(args)
    except UsageError as error:
        _error(f"{error} (see netrepl {name} --help)")
        return ExitStatus.USAGE
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED


# ---- export --------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from netrepl.pcap import MAX_SEGMENT, PcapExport, file_header

    # Read it all first: a bad line then leaves OUT untouched rather than half written.
    try:
        entries = list(_entries(args.file))
    except _InputError as error:
        _error(str(error))
        return ExitStatus.CONNECTION
    except TranscriptError as error:
        _error(f"{_name(args.file)}: {error}")
        return ExitStatus.USAGE
    export = PcapExport()
    target = "standard output" if args.pcap == "-" else args.pcap
    try:
        with _output(args.pcap) as out:
            out.write(file_header())
            for entry in entries:
                out.write(export.feed(entry))
    except OSError as error:
        _error(f"cannot write {target}: {_reason(error)}")
        return ExitStatus.CONNECTION
    packets = _count(export.packets, "packet")
    print(
        f"wrote {packets} of {_count(export.connections, 'connection')} to {target}",
        file=sys.stderr,
    )
    if export.midway:
        _error(
            f"note: {_count(export.midway, 'connection')} had no `connected` record (the log"
            " began mid-connection): their addresses and ports are made up (10.0.0.1 for"
            " this side, 10.0.0.2 for the peer), and their handshakes are not shown"
        )
    if export.made_up:
        _error(
            f"note: {_count(export.made_up, 'connection')} had an end that is not an IP"
            " address (a unix socket, a host name): made-up addresses stand in for it"
        )
    if export.after_end:
        _error(
            "note: relayed data that arrived after the other side had ended was never passed"
            f" on ({_count(export.after_end, 'byte')}): it is in the log, not in the capture"
        )
    if export.truncated:
        _error(
            f"note: {_count(export.truncated, 'datagram')} cut to fit one packet"
            f" (a TCP segment holds {MAX_SEGMENT:,} bytes; a datagram cannot be split)"
        )
    return ExitStatus.OK


@contextlib.contextmanager
def _output(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with open(path, "wb") as out:
        yield out


# ---- replay --------------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    view = _view(args)
    if view.mode == "raw" and sys.stdout.isatty():
        # Peer bytes written unchanged to a terminal could drive it (escape sequences).
        raise UsageError("--view raw writes bytes unchanged: redirect stdout to a file or pipe")
    try:
        source = _open_input(args.file)
    except _InputError as error:
        _error(str(error))
        return ExitStatus.CONNECTION

    from netrepl.display import AnsiFormatter, Display, StreamSink, plain
    from netrepl.render import Renderer

    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    sink = StreamSink(
        sys.stdout,
        sys.stderr,
        data_format=AnsiFormatter() if sys.stdout.isatty() else plain,
        message_format=AnsiFormatter() if sys.stderr.isatty() else plain,
        quiet=args.quiet,
    )
    renderer = Renderer(view)
    # Idle frames end by the transcript's own time, not by how fast the replay runs.
    display = Display(renderer, sink, clock=lambda: renderer.latest_at, live=False)
    display.start()
    failure: tuple[str, int] | None = None
    try:
        previous: float | None = None
        for entry in _entries_from(source, args.file):
            if args.speed > 0 and previous is not None:
                pause = min((entry.at - previous) / args.speed, MAX_PAUSE)
                if pause > 0:
                    time.sleep(pause)  # the pause is the feature: the session's own pace
            previous = entry.at
            display.post(entry.event)
            if display.output_failed:
                break  # stdout was closed (`| head`): nobody is reading any more
    except _InputError as error:
        failure = (str(error), ExitStatus.CONNECTION)
    except TranscriptError as error:
        failure = (f"{_name(args.file)}: {error}", ExitStatus.USAGE)
    finally:
        display.stop()
        if source is not sys.stdin.buffer:
            source.close()
    if failure is not None:
        # After the display has stopped, so the error follows what the good lines showed.
        _error(failure[0])
        return failure[1]
    return ExitStatus.OK


def _view(args: argparse.Namespace) -> View:
    """--encoding and --view as the main command line combines them, then --time, --frame."""
    view = View()
    try:
        view = apply_view_options(view, args.encoding, args.view)
        if args.time is not None:
            view = replace(view, timestamps=args.time)
        if args.frame is not None:
            view = replace(view, framing=parse_framing(args.frame.split()))
    except ValueError as error:
        raise UsageError(str(error)) from None
    return view


# ---- reading transcripts -----------------------------------------------------------------------


def _open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # closed by whoever reads it
    except OSError as error:
        raise _InputError(f"cannot read {path}: {_reason(error)}") from None


def _entries(path: str) -> Iterator[Entry]:
    source = _open_input(path)
    try:
        yield from _entries_from(source, path)
    finally:
        if source is not sys.stdin.buffer:
            source.close()


def _entries_from(source: BinaryIO, path: str) -> Iterator[Entry]:
    """The entries of a transcript, lazily, its data file's bytes included (version 2).
    Raises TranscriptError or _InputError."""
    number = 0
    data: _DataFile | None = None
    try:
        while True:
            try:
                raw = source.readline(MAX_LINE + 1)
            except OSError as error:
                raise _InputError(f"cannot read {_name(path)}: {_reason(error)}") from None
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE:
                raise TranscriptError(f"line {number}: over {MAX_LINE >> 20} MiB: not a transcript")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise TranscriptError(f"line {number}: not UTF-8 text") from None
            if header_of(line) is not None:
                # Each transcript of several appended to one file has its own data file.
                if data is not None:
                    data.close()
                name = data_file_of(line, number)
                data = None if name is None else _DataFile(path, name)
            entry = parse_line(line, number, None if data is None else data.read)
            if entry is not None:
                yield entry
    finally:
        if data is not None:
            data.close()


class _DataFile:
    """A version 2 transcript's data file, read where its records point (in order, so
    nearly always where the last read ended)."""

    def __init__(self, path: str, name: str) -> None:
        directory = os.path.dirname(path) if path != "-" else ""
        self.path = os.path.join(directory, name)
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 (closed by close)
        except OSError as error:
            raise _InputError(
                f"cannot read {self.path}, the data file of {_name(path)}: {_reason(error)}"
            ) from None
        self._position = 0

    def read(self, offset: int, length: int) -> bytes:
        try:
            if offset != self._position:
                self._file.seek(offset)
            data = self._file.read(length)
        except OSError as error:
            raise _InputError(f"cannot read {self.path}: {_reason(error)}") from None
        self._position = offset + len(data)
        return data

    def close(self) -> None:
        self._file.close()


# ---- messages ------------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"netrepl: {message}", file=sys.stderr)


def _name(path: str) -> str:
    return "stdin" if path == "-" else path


def _reason(error: OSError) -> str:
    """`no such file or directory`: strerror in lower case, as the other errors read."""
    text = os.strerror(error.errno) if error.errno else (error.strerror or str(error))
    if not text and error.errno is not None:
        text = errno.errorcode.get(error.errno, str(error.errno))
    return text[:1].lower() + text[1:]


def _count(number: int, noun: str) -> str:
    """`1 packet`, `2,048 packets`: render.count, without importing rich for export."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"
