"""Send commands: hex frames, input mode, end of line, escapes and placeholders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netrepl.commands import Arguments, Param, command, show_or_set
from netrepl.payload import EOLS, PLACEHOLDERS, parse_hex_line

if TYPE_CHECKING:
    from netrepl.session import Session


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
    data = parse_hex_line(args[0], session.send_context(), column=args.column(0))
    session.send(data, as_hex=True)


@command(
    "input",
    "make typed lines hex or text, or show which",
    group="Send",
    params=[Param("MODE", choices=("text", "hex"), optional=True)],
    details="In hex input every typed line is parsed like /x and no end of line is added.",
)
def _input(session: Session, args: Arguments) -> None:
    def apply(mode: str) -> None:
        session.settings.input_mode = mode  # type: ignore[assignment]

    show_or_set(session, args, "input", session.settings.input_mode, apply)


@command(
    "eol",
    "set the end of line appended to typed text, or show it",
    group="Send",
    params=[Param("EOL", choices=tuple(EOLS), optional=True)],
)
def _eol(session: Session, args: Arguments) -> None:
    def apply(eol: str) -> None:
        session.settings.eol = eol

    show_or_set(session, args, "eol", session.settings.eol, apply)


@command(
    "escapes",
    "interpret \\r \\n \\t \\0 \\\\ \\xNN in typed text, or send backslashes as typed",
    group="Send",
    params=[Param("STATE", choices=("on", "off"), optional=True)],
)
def _escapes(session: Session, args: Arguments) -> None:
    def apply(state: str) -> None:
        session.settings.escapes = state == "on"

    show_or_set(session, args, "escapes", "on" if session.settings.escapes else "off", apply)


@command(
    "placeholders",
    "list the {placeholders} a typed line or /x can hold (checksums, counter, time, file)",
    group="Send",
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
