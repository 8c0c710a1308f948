"""Send commands: hex frames, input mode, end of line, escapes and placeholders."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from netrepl.commands.registry import Arguments, Param, command, show_or_set
from netrepl.errors import UsageError
from netrepl.payload import EOLS, PLACEHOLDERS, parse_hex_line
from netrepl.quantity import DAY_SECONDS, MILLISECONDS, Whole, looks_like_whole
from netrepl.streaming import send_file

if TYPE_CHECKING:
    from netrepl.session import Session

CHUNK = Whole(1, 16 * 1024 * 1024, "bytes")
EVERY = Whole(10, DAY_SECONDS * 1000, "milliseconds")
REPEAT_COUNT = Whole(1, 1_000_000, "repetitions")


@command(
    "x",
    "send bytes given in hex, once",
    group="Send",
    params=[Param("HEX", rest=True)],
    details="""
Lenient: `01 03 0a`, `01030A`, `0x01,0x03`, `01:03` and `\\x01\\x03` all work. No end of line
is added. An odd digit count or a non-hex character is an error naming its column, and then
nothing is sent. Placeholders work here too: `/x 01 03 00 00 00 0A {crc16-modbus}` sends a
Modbus RTU request with its CRC (`/placeholders` lists them).
""",
)
def _x(session: Session, args: Arguments) -> None:
    session.send_built(
        lambda context: parse_hex_line(args[0], context, column=args.column(0)), as_hex=True
    )


@command(
    "input",
    "make typed lines hex or text, or show which",
    group="Send",
    setup=True,
    params=[Param("MODE", choices=("text", "hex"), optional=True)],
    details="In hex input every typed line is parsed like /x and no end of line is added.",
)
def _input(session: Session, args: Arguments) -> None:
    show_or_set(session, args, "input", session.settings.input_mode, session.set_input_mode)


@command(
    "eol",
    "set the end of line appended to typed text, or show it",
    group="Send",
    setup=True,
    params=[Param("EOL", choices=tuple(EOLS), optional=True)],
)
def _eol(session: Session, args: Arguments) -> None:
    show_or_set(session, args, "eol", session.settings.eol, session.set_eol)


@command(
    "escapes",
    "interpret \\r \\n \\t \\0 \\\\ \\xNN in typed text, or send backslashes as typed",
    group="Send",
    setup=True,
    params=[Param("STATE", choices=("on", "off"), optional=True)],
)
def _escapes(session: Session, args: Arguments) -> None:
    def apply(state: str) -> None:
        session.set_escapes(state == "on")

    show_or_set(session, args, "escapes", "on" if session.settings.escapes else "off", apply)


@command(
    "placeholders",
    "list the {placeholders} a typed line or /x can hold (checksums, counter, time, file)",
    group="Send",
    setup=True,
    details="""
A placeholder is replaced when the line is sent. A checksum covers the bytes before it on the
line (not the end of line), or a range of them counted from 0: `{crc16-modbus:2-}` skips two
header bytes, `{sum8:1-4}` sums bytes 1 to 4. `\\{` sends a brace itself; with `/escapes off`
nothing is replaced. A wrong placeholder is an error and nothing is sent.

"""
    + "\n".join(f"- `{{{name}}}`: {text}" for name, text in PLACEHOLDERS.items()),
)
def _placeholders(session: Session, args: Arguments) -> None:
    width = max(map(len, PLACEHOLDERS)) + 4
    session.note(
        "\n".join(f"  {{{name}}}".ljust(width) + text for name, text in PLACEHOLDERS.items())
    )


@command(
    "sendfile",
    "send a file in pieces, with a progress bar: /sendfile PATH [--chunk N] [--delay MS]",
    group="Send",
    params=[Param("ARGS", rest=True)],
    details=f"""
Pieces of 64 KiB by default (`--chunk N` bytes, {CHUNK.range}), back to back or `--delay MS`
apart ({MILLISECONDS.range}), for a device with a small buffer. Ctrl-C stops it at once; the
status line at the end says how many bytes reached the socket. In listen mode every client
that reads gets the whole file; one that does not read for 10 s gets a contiguous beginning,
and the line says how much each got. A device or a pipe is sent as it comes, until it ends or
Ctrl-C. Put quotes around a path with spaces.
""",
)
def _sendfile(session: Session, args: Arguments) -> None:
    try:
        words = shlex.split(args[0])
    except ValueError as error:
        raise UsageError(f"/sendfile: {error}") from None
    path, chunk, delay = None, 64 * 1024, 0.0
    while words:
        word = words.pop(0)
        if word in ("--chunk", "--delay"):
            if not words:
                raise UsageError(f"/sendfile: {word} takes a whole number")
            if word == "--chunk":
                chunk = CHUNK.parse(words.pop(0), "/sendfile --chunk")
            else:
                delay = MILLISECONDS.seconds(words.pop(0), "/sendfile --delay")
        elif path is None:
            path = word
        else:
            raise UsageError(
                f"/sendfile: unexpected {word!r} (usage: PATH [--chunk N] [--delay MS])"
            )
    if path is None:
        raise UsageError("/sendfile: give the PATH of the file")
    send_file(session, path, chunk, delay)


@command(
    "every",
    "send LINE every MS milliseconds until /stop; alone it lists what runs",
    group="Send",
    params=[Param("MS", optional=True), Param("LINE", optional=True, rest=True)],
    details=f"""
Like a GUI tool's "auto-send"; MS is {EVERY.range}. LINE is handled as if typed each time,
so `{{counter}}` and `{{time}}` change and commands work:
`/every 1000 /x 01 03 00 00 00 01 {{crc16-modbus}}`.
Several can run at once; `/stop N` or `/stop all` ends them.
""",
)
def _every(session: Session, args: Arguments) -> None:
    if not args:
        jobs = session.jobs.jobs()
        session.note("\n".join(job.describe() for job in jobs) if jobs else "nothing runs")
        return
    if len(args) < 2:
        raise UsageError("/every: give MS and the LINE to send")
    interval = EVERY.seconds(args[0], "/every")
    job = session.jobs.start(interval, args[1])
    session.note(f"job {job.number}: every {args[0]} ms: {args[1]} (/stop {job.number})")


@command(
    "stop",
    "stop the /every job N, or all",
    group="Send",
    setup=True,
    params=[Param("N", suggestions=lambda s: ["all", *(str(j.number) for j in s.jobs.jobs())])],
)
def _stop(session: Session, args: Arguments) -> None:
    stopped = session.jobs.stop(args[0])
    session.note(f"stopped {', '.join(f'job {j.number}' for j in stopped) or 'nothing'}")


@command(
    "repeat",
    "send LINE COUNT times, MS milliseconds apart (back to back without MS)",
    group="Send",
    params=[
        Param("COUNT"),
        Param("MS", optional=True, when=looks_like_whole),
        Param("LINE", rest=True),
    ],
    details=f"""
`/repeat 5 200 PING` sends PING five times, 200 ms apart; a number right after COUNT is MS
when a LINE follows it. COUNT is {REPEAT_COUNT.range}, MS {MILLISECONDS.range}. LINE is
handled as if typed each time (commands too); Ctrl-C stops.
""",
)
def _repeat(session: Session, args: Arguments) -> None:
    count = REPEAT_COUNT.parse(args[0], "/repeat COUNT")
    ms = args.get("MS")
    interval = MILLISECONDS.seconds(ms, "/repeat MS") if ms is not None else 0.0
    session.repeat(count, interval, args.get("LINE") or "")


@command(
    "p",
    "send the preset NAME from the config file; alone it lists them",
    group="Send",
    params=[Param("NAME", optional=True, suggestions=lambda s: sorted(s.presets))],
    details="""
Presets are lines (data or commands) named in the `[presets]` table of the config file
(`~/.config/netrepl/config.toml`, or `--config FILE`).
""",
)
def _p(session: Session, args: Arguments) -> None:
    if not args:
        presets = session.presets
        width = max(map(len, presets), default=0) + 2
        lines = [f"  {name:<{width}}{line}" for name, line in sorted(presets.items())]
        session.note("\n".join(lines) if lines else "no presets (see /help p)")
        return
    session.send_preset(args[0])
