"""Turn a typed line into the exact bytes to send: escapes, lenient hex, placeholders, EOL.

Pure: strings in, bytes out, or a UsageError naming the column of the first mistake. A line is
converted whole before anything is sent, so a bad line sends nothing at all. Placeholders
(`{crc16-modbus}`, `{counter}`, `{file:PATH}`) get what they need from a `SendContext`; the
file reader in it is the caller's, so nothing here touches a file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Literal

from netrepl.checksum import CHECKSUMS
from netrepl.codec import encoding_for_sending, make_encoder
from netrepl.errors import UsageError
from netrepl.quantity import whole_or_none
from netrepl.records import record

EOLS: dict[str, bytes] = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r", "none": b""}
InputMode = Literal["text", "hex"]

_SIMPLE_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\x00", "\\": b"\\"}
# `\{` and `\}` are the braces themselves, so `\{crc32}` sends the text, not a checksum.
_LITERAL_ESCAPES = {"{": "{", "}": "}"}
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9-]*)(?::([^{}]*))?\}")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Separators people paste between hex bytes: spaces, commas, colons (Wireshark), dashes, semicolons.
_HEX_TOKEN = re.compile(r"[^\s,:;\-]+")


def format_hex(data: bytes) -> str:
    """`01 03 0a`: the form parse_hex reads back and the sent-data echo shows."""
    return data.hex(" ")


def parse_hex(text: str, column: int = 1) -> bytes:
    """Read lenient hex (`01 03 0a`, `01030A`, `0x01,0x03`, `01:03`, `\\x01\\x03`).

    `column` is where `text` starts in the typed line, so errors point into what was typed.
    """
    out = bytearray()
    for token in _HEX_TOKEN.finditer(text):
        for position, digits in _hex_groups(token.group(), token.start()):
            for offset, char in enumerate(digits):
                if char not in _HEX_DIGITS:
                    raise UsageError(
                        f"not a hex digit {char!r} at column {column + position + offset}"
                    )
            if not digits or len(digits) % 2:
                raise UsageError(
                    f"odd number of hex digits in {digits!r} at column {column + position}"
                    if digits
                    else f"hex prefix without digits at column {column + position - 2}"
                )
            out += bytes.fromhex(digits)
    if not out:
        raise UsageError("no hex bytes given")
    return bytes(out)


def _hex_groups(token: str, position: int) -> list[tuple[int, str]]:
    """Split one token into (position, digits) groups: `\\x01\\x03`, `0x0103` or `0103`."""
    if token.startswith("\\x"):
        groups = []
        for digits in token.split("\\x")[1:]:
            position += 2
            groups.append((position, digits))
            position += len(digits)
        return groups
    if token[:2] in ("0x", "0X"):
        return [(position + 2, token[2:])]
    return [(position, token)]


def _is_hex_byte(text: str) -> bool:
    return len(text) == 2 and set(text) <= _HEX_DIGITS


class _LineEncoder:
    """Encodes the literal pieces of one line as one text, so a BOM (utf-8-sig, utf-16) is
    written once at the start and stateful encodings keep their state between pieces."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding_for_sending(encoding)
        self._encoder = make_encoder(encoding)

    def encode(self, text: str, column: int, final: bool = False) -> bytes:
        try:
            return self._encoder.encode(text, final)
        except UnicodeEncodeError as error:
            char = text[error.start]
            raise UsageError(
                f"cannot encode {char!r} at column {column + error.start} in {self.encoding}"
            ) from None


def encode_text(
    line: str, encoding: str, *, escapes: bool = True, context: SendContext | None = None
) -> bytes:
    """Encode `line` in `encoding`, turning `\\r \\n \\t \\0 \\\\ \\xNN` into their bytes,
    and, given a context, `{placeholders}` into theirs.

    `\\xNN` is a raw byte, not a character, so any byte can be sent whatever the encoding.
    """
    encoder = _LineEncoder(encoding)
    if not escapes or ("\\" not in line and (context is None or "{" not in line)):
        return encoder.encode(line, 1, final=True)
    out = bytearray()
    start = index = 0
    while index < len(line):
        char = line[index]
        if char == "\\":
            out += encoder.encode(line[start:index], start + 1)
            index = start = index + _escape(line, index, out, encoder)
            continue
        if char == "{" and context is not None and (match := _PLACEHOLDER.match(line, index)):
            out += encoder.encode(line[start:index], start + 1)
            out += expand_placeholder(
                match.group(1), match.group(2), context.before + bytes(out), context, index + 1
            )
            index = start = match.end()
            continue
        index += 1
    out += encoder.encode(line[start:], start + 1, final=True)
    return bytes(out)


def _escape(line: str, slash: int, out: bytearray, encoder: _LineEncoder) -> int:
    """Append the bytes of the escape at `slash`; return how many characters it took."""
    code = line[slash + 1 : slash + 2]
    if code in _SIMPLE_ESCAPES:
        out += _SIMPLE_ESCAPES[code]
        return 2
    if code in _LITERAL_ESCAPES:
        out += encoder.encode(_LITERAL_ESCAPES[code], slash + 2)
        return 2
    if code == "x" and _is_hex_byte(digits := line[slash + 2 : slash + 4]):
        out += bytes.fromhex(digits)
        return 4
    shown = line[slash : slash + 4] if code == "x" else line[slash : slash + 2]
    raise UsageError(
        f"bad escape {shown!r} at column {slash + 1}"
        " (known: \\r \\n \\t \\0 \\\\ \\xNN \\{ \\}; /escapes off sends backslashes as typed)"
    )


@record(unsafe_hash=True)
class SendContext:
    """What placeholders may use: the send counter, the time, and a way to read files."""

    counter: int = 0
    now: float | None = None
    """Seconds since the epoch; None: the current time."""
    read_file: Callable[[str], bytes] | None = None
    before: bytes = b""
    """What precedes these bytes in the frame they go into (a relay's rewrite puts them in
    the middle of one): checksum placeholders cover it too."""


PLACEHOLDERS: dict[str, str] = {
    **{name: f"{c.description}, over the bytes before it" for name, c in CHECKSUMS.items()},
    "counter": "the send number: decimal text, or u8/u16/u16le/u32/u32le binary",
    "time": "the time: HH:MM:SS text, or unix, ms, u32 (binary seconds)",
    "hex": "bytes given in hex inside a text line: {hex:01 02 ff}",
    "file": "the bytes of a file: {file:PATH}",
}
"""Every placeholder and what it gives, for /help and the docs."""

_INT_FORMATS = {"u8": (1, "big"), "u16": (2, "big"), "u16le": (2, "little"),
                "u32": (4, "big"), "u32le": (4, "little")}  # fmt: skip


def expand_placeholder(
    name: str,
    argument: str | None,
    before: bytes,
    context: SendContext,
    column: int,
    *,
    in_text: bool = True,
) -> bytes:
    """The bytes `{name:argument}` stands for, given the bytes of the line before it.
    `in_text`: the line is text, where `\\{` sends a brace itself (not so in hex)."""
    where = f"{{{name}}} at column {column}"
    if name in CHECKSUMS:
        return CHECKSUMS[name].digest(_byte_range(before, argument, where))
    if name == "counter":
        return _number(context.counter, argument, where)
    if name == "time":
        now = time.time() if context.now is None else context.now
        if argument is None:
            return time.strftime("%H:%M:%S", time.localtime(now)).encode()
        if argument == "unix":
            return str(int(now)).encode()
        if argument == "ms":
            return str(int(now * 1000)).encode()
        if argument == "u32":
            return int(now).to_bytes(4, "big")
        raise UsageError(f"{where}: time takes unix, ms or u32, not {argument!r}")
    if name == "hex":
        if not argument:
            raise UsageError(f"{where}: give the bytes, like {{hex:01 02 ff}}")
        return parse_hex(argument, column + len(name) + 2)
    if name == "file":
        if not argument:
            raise UsageError(f"{where}: give a path, like {{file:frame.bin}}")
        if context.read_file is None:
            raise UsageError(f"{where}: files cannot be read here")
        return context.read_file(argument)
    known = ", ".join(PLACEHOLDERS)
    literally = f"\\{{{name}" + (f":{argument}" if argument is not None else "") + "}"
    hint = f": write {literally} to send it as typed" if in_text else ""
    raise UsageError(f"unknown placeholder {{{name}}} at column {column}{hint} (known: {known})")


def _byte_range(before: bytes, argument: str | None, where: str) -> bytes:
    """`2-` from byte 2 (counting from 0), `2-5` bytes 2 to 5, `-4` the first 4 (0 to 3)."""
    if argument is None:
        return before
    start_text, dash, end_text = argument.partition("-")
    if not dash or not all(p.isascii() and p.isdigit() for p in (start_text, end_text) if p):
        raise UsageError(f"{where}: a byte range is START-END, START- or -END, not {argument!r}")
    # A byte index past what any line holds is out of range, however many digits it has.
    start = whole_or_none(start_text, 1 << 40) if start_text else 0
    last = whole_or_none(end_text, 1 << 40) if end_text else len(before) - 1
    end = None if last is None else last + 1
    if start is None or end is None or start >= len(before) or end > len(before) or start >= end:
        raise UsageError(f"{where}: range {argument} is outside the {len(before)} bytes before it")
    return before[start:end]


def _number(value: int, argument: str | None, where: str) -> bytes:
    if argument is None:
        return str(value).encode()
    if argument not in _INT_FORMATS:
        raise UsageError(f"{where}: counter takes {', '.join(_INT_FORMATS)}, not {argument!r}")
    size, order = _INT_FORMATS[argument]
    return (value % (1 << (8 * size))).to_bytes(size, order)  # type: ignore[arg-type]


def parse_hex_line(text: str, context: SendContext | None, column: int = 1) -> bytes:
    """Hex with placeholders between the bytes: `01 03 00 00 00 0A {crc16-modbus}`."""
    if context is None:
        return parse_hex(text, column)
    out = bytearray()
    start = 0
    for match in _PLACEHOLDER.finditer(text):
        chunk = text[start : match.start()]
        if chunk.strip(" ,:;-\t"):
            out += parse_hex(chunk, column + start)
        out += expand_placeholder(
            match.group(1),
            match.group(2),
            context.before + bytes(out),
            context,
            column + match.start(),
            in_text=False,
        )
        start = match.end()
    tail = text[start:]
    if tail.strip(" ,:;-\t") or not out:
        out += parse_hex(tail, column + start)
    return bytes(out)


def build_payload(
    line: str,
    *,
    input_mode: InputMode,
    encoding: str,
    escapes: bool,
    eol: str,
    context: SendContext | None = None,
) -> bytes:
    """The bytes a typed data line sends: hex as is, or text plus the end of line.

    Placeholders are expanded when a context is given (and, in text, escapes are on).
    """
    if input_mode == "hex":
        return parse_hex_line(line, context)
    return encode_text(line, encoding, escapes=escapes, context=context) + EOLS[eol]
