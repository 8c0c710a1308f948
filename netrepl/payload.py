"""Turn a typed line into the exact bytes to send: escapes, lenient hex, end of line.

Pure: strings in, bytes out, or a UsageError naming the column of the first mistake. A line is
converted whole before anything is sent, so a bad line sends nothing at all.
"""

from __future__ import annotations

import codecs
import re
from typing import Literal

from netrepl.codec import encoding_for_sending
from netrepl.errors import UsageError

EOLS: dict[str, bytes] = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r", "none": b""}
InputMode = Literal["text", "hex"]

_SIMPLE_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\x00", "\\": b"\\"}
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
        self.encoding = encoding
        # surrogateescape: bytes that arrived undecodable on stdin (batch) go out unchanged.
        self._encoder = codecs.getincrementalencoder(encoding)(errors="surrogateescape")

    def encode(self, text: str, column: int, final: bool = False) -> bytes:
        try:
            return self._encoder.encode(text, final)
        except UnicodeEncodeError as error:
            char = text[error.start]
            raise UsageError(
                f"cannot encode {char!r} at column {column + error.start} in {self.encoding}"
            ) from None


def encode_text(line: str, encoding: str, *, escapes: bool = True) -> bytes:
    """Encode `line` in `encoding`, turning `\\r \\n \\t \\0 \\\\ \\xNN` into their bytes.

    `\\xNN` is a raw byte, not a character, so any byte can be sent whatever the encoding.
    """
    encoder = _LineEncoder(encoding_for_sending(encoding))
    if not escapes or "\\" not in line:
        return encoder.encode(line, 1, final=True)
    out = bytearray()
    start = 0
    while (slash := line.find("\\", start)) != -1:
        out += encoder.encode(line[start:slash], start + 1)
        code = line[slash + 1 : slash + 2]
        if code in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[code]
            start = slash + 2
        elif code == "x" and _is_hex_byte(digits := line[slash + 2 : slash + 4]):
            out += bytes.fromhex(digits)
            start = slash + 4
        else:
            shown = line[slash : slash + 4] if code == "x" else line[slash : slash + 2]
            raise UsageError(
                f"bad escape {shown!r} at column {slash + 1}"
                " (known: \\r \\n \\t \\0 \\\\ \\xNN; /escapes off sends backslashes as typed)"
            )
    out += encoder.encode(line[start:], start + 1, final=True)
    return bytes(out)


def build_payload(
    line: str, *, input_mode: InputMode, encoding: str, escapes: bool, eol: str
) -> bytes:
    """The bytes a typed data line sends: hex as is, or text plus the end of line."""
    if input_mode == "hex":
        return parse_hex(line)
    return encode_text(line, encoding, escapes=escapes) + EOLS[eol]
