"""Incremental decoding of a byte stream into text that is safe to show on a terminal.

Pure: bytes in, text plus escape spans out. Decoders keep state between calls so that a
character split across two reads is shown whole. Nothing here may import socket, threading or
a terminal library, or touch a file. Control characters and undecodable bytes never leave this
module raw: they become visible escapes (`\\x1b`, `\\xff`) marked by a span.
"""

from __future__ import annotations

import codecs
import re
from typing import Literal, Protocol

AUTO = "auto"
"""Pseudo-encoding: UTF-8 where the bytes are valid UTF-8, GBK where not, escapes where neither."""

EscapeKind = Literal["control", "invalid"]

_ESCAPE_ERRORS = "netrepl-escape"


def _escape_undecodable(error: UnicodeError) -> tuple[str, int]:
    # Each undecodable byte becomes a lone surrogate U+DC00+byte. Real decoding never yields
    # lone surrogates, so escape_text can tell them apart and show them as \xNN.
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(chr(0xDC00 + b) for b in bad), error.end


codecs.register_error(_ESCAPE_ERRORS, _escape_undecodable)


class IncrementalDecoder(Protocol):
    def decode(self, data: bytes, final: bool = False) -> str: ...

    def getstate(self) -> tuple[bytes, int]: ...


def resolve_encoding(name: str) -> str:
    """Return the canonical name of a text encoding (`utf8` -> `utf-8`) or raise ValueError."""
    if name.lower() == AUTO:
        return AUTO
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    # Byte-to-byte codecs (hex, base64, zlib) cannot show or encode text.
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"{name!r} is not a text encoding")
    return info.name


def encoding_for_sending(encoding: str) -> str:
    """The encoding used for typed text: auto sends UTF-8, the seed of its fallback order."""
    return "utf-8" if encoding == AUTO else encoding


# One valid UTF-8 character, or a run of them (RFC 3629 table 3-7: no overlongs, no surrogates).
_UTF8_CHAR = (
    rb"[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_UTF8_RUN = re.compile(b"(?:" + _UTF8_CHAR + b")+")
# A proper prefix of a valid UTF-8 character: more bytes could still complete it.
_UTF8_PREFIX = re.compile(
    rb"[\xc2-\xdf]|\xe0[\xa0-\xbf]?|[\xe1-\xec\xee\xef][\x80-\xbf]?|\xed[\x80-\x9f]?"
    rb"|\xf0(?:[\x90-\xbf][\x80-\xbf]?)?|[\xf1-\xf3](?:[\x80-\xbf][\x80-\xbf]?)?"
    rb"|\xf4(?:[\x80-\x8f][\x80-\xbf]?)?"
)
_GBK_PAIR = re.compile(rb"[\x81-\xfe][\x40-\x7e\x80-\xfe]")


class AutoDecoder:
    """Incremental decoder for the `auto` view, decided character by character.

    Valid UTF-8 wins; otherwise a GBK pair; otherwise the byte is undecodable. When the bytes
    at the end of a read could still become a UTF-8 or GBK character, they wait for the next
    read (or for `final`).
    """

    def __init__(self) -> None:
        self._pending = b""

    def decode(self, data: bytes, final: bool = False) -> str:
        buf = self._pending + data
        out: list[str] = []
        i, n = 0, len(buf)
        while i < n:
            run = _UTF8_RUN.match(buf, i)
            if run:
                out.append(buf[i : run.end()].decode("utf-8"))
                i = run.end()
                continue
            if not final and self._may_complete(buf, i):
                break
            if _GBK_PAIR.match(buf, i):
                try:
                    out.append(buf[i : i + 2].decode("gbk"))
                    i += 2
                    continue
                except UnicodeDecodeError:
                    pass  # a GBK-shaped pair with no character assigned
            out.append(chr(0xDC00 + buf[i]))
            i += 1
        self._pending = buf[i:]
        return "".join(out)

    @staticmethod
    def _may_complete(buf: bytes, i: int) -> bool:
        tail = buf[i:]
        if len(tail) == 1 and 0x81 <= tail[0] <= 0xFE:
            return True  # a GBK lead byte (or UTF-8 lead) waiting for its partner
        return _UTF8_PREFIX.fullmatch(tail) is not None

    def getstate(self) -> tuple[bytes, int]:
        return self._pending, 0


def make_decoder(encoding: str, *, fast: bool = True) -> IncrementalDecoder:
    """A fresh incremental decoder for `encoding` that turns bad bytes into U+DC00+byte.

    `fast` uses Python's own surrogateescape handler, which does exactly that in C for bytes
    0x80-0xFF (a Python error handler costs a call per bad byte: GBK shown as UTF-8 decoded
    at 2 MB/s). It cannot escape a bad byte below 0x80 (UTF-16, say): TextDecoder then falls
    back to the slow handler.
    """
    if encoding == AUTO:
        return AutoDecoder()
    errors = "surrogateescape" if fast else _ESCAPE_ERRORS
    return codecs.getincrementaldecoder(encoding)(errors=errors)


class SafeText:
    """Text with no raw control character but tab and newline; `escapes` marks the escapes.

    The marks are worked out only when asked for (to colour what is shown): a flood written to
    a file never needs them, and finding them costs a step per escape.
    """

    __slots__ = ("_escapes", "_source", "text")

    def __init__(
        self,
        text: str,
        escapes: tuple[tuple[int, int, EscapeKind], ...] = (),
        *,
        source: str | None = None,
    ) -> None:
        self.text = text
        self._escapes = tuple(escapes) if source is None else None
        self._source = source

    @property
    def escapes(self) -> tuple[tuple[int, int, EscapeKind], ...]:
        if self._escapes is None:
            self._escapes = _escape_spans(self._source or "")
        return self._escapes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SafeText):
            return NotImplemented
        return self.text == other.text and self.escapes == other.escapes

    def __hash__(self) -> int:
        return hash((self.text, self.escapes))

    def __repr__(self) -> str:
        return f"SafeText({self.text!r}, {self.escapes!r})"


# Everything that could drive a terminal or mislead the eye: C0 (but tab and newline), DEL, C1,
# line/paragraph separators, bidirectional overrides, and lone surrogates (undecodable bytes).
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_UNSAFE_RUN = re.compile(f"[{_CONTROLS}\ud800-\udfff]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(f"[{_CONTROLS}]")
# Runs of one kind, so a run of undecodable bytes is one span, not one per byte.
_UNSAFE_KIND = re.compile(f"(?P<invalid>[\ud800-\udfff]+)|(?P<control>[{_CONTROLS}]+)")


def _escape_char(ch: str) -> tuple[str, EscapeKind]:
    code = ord(ch)
    if 0xDC00 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}", "invalid"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}", "invalid"
    if code < 0x100:
        return f"\\x{code:02x}", "control"
    return f"\\u{code:04x}", "control"


def _escape_table() -> dict[int, str]:
    ranges = [(0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0x061C, 0x061C), (0x200E, 0x200F)]
    ranges += [(0x2028, 0x202E), (0x2066, 0x2069), (0xD800, 0xDFFF)]
    return {
        code: _escape_char(chr(code))[0] for low, high in ranges for code in range(low, high + 1)
    }


# One str.translate per run: escaping is done in C, at the speed of plain decoding.
_ESCAPES = _escape_table()


def escape_text(text: str) -> SafeText:
    """Replace every unsafe character of `text` with a visible escape (`\\x1b`, `\\xff`)."""
    if _UNSAFE_RUN.search(text) is None:
        return SafeText(text)
    escaped = text
    if _SURROGATE.search(text) is not None and "\\udc" not in text:
        # Undecodable bytes are lone surrogates: the UTF-8 encoder writes them as `\\udcff`
        # in C, seven times faster than a translate table (GBK shown as UTF-8 is mostly
        # escapes). Unless the text itself holds `\\udc`, which must stay as it came.
        escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
        escaped = escaped.replace("\\udc", "\\x")
    if escaped is text or _CONTROL.search(escaped) is not None:
        escaped = escaped.translate(_ESCAPES)
    return SafeText(escaped, source=text)


def _escape_spans(source: str) -> tuple[tuple[int, int, EscapeKind], ...]:
    """Where the escapes of `escape_text(source)` are, and of which kind, runs merged."""
    spans: list[tuple[int, int, EscapeKind]] = []
    length = 0
    last = 0
    for match in _UNSAFE_KIND.finditer(source):
        length += match.start() - last
        escaped = len(match.group().translate(_ESCAPES))
        kind: EscapeKind = "invalid" if match.lastgroup == "invalid" else "control"
        if spans and spans[-1][1] == length and spans[-1][2] == kind:
            spans[-1] = (spans[-1][0], length + escaped, kind)
        else:
            spans.append((length, length + escaped, kind))
        length += escaped
        last = match.end()
    return tuple(spans)


class TextDecoder:
    """Bytes of one direction of one connection -> SafeText, keeping state across reads.

    Line ends are normalised: CR LF, a lone LF and a lone CR each become one newline, even when
    the CR and LF arrive in different reads.
    """

    def __init__(self, encoding: str, after_cr: bool = False) -> None:
        self.encoding = encoding
        self._decoder = make_decoder(encoding)
        self.after_cr = after_cr

    def decode(self, data: bytes, final: bool = False) -> SafeText:
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError:
            # A bad byte below 0x80, which surrogateescape cannot carry: from here on, the
            # slow handler that can (what this decoder held back is decoded with it too).
            held = self.pending()
            self._decoder = make_decoder(self.encoding, fast=False)
            text = self._decoder.decode(held + data, final)
        if not text:
            return SafeText("")
        if self.after_cr and text[0] == "\n":
            text = text[1:]
        self.after_cr = text.endswith("\r")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return escape_text(text)

    def pending(self) -> bytes:
        """Bytes received but held back because they may start a character not yet complete."""
        return self._decoder.getstate()[0]


def decode_whole(data: bytes, encoding: str) -> SafeText:
    """Decode a complete byte string at once (tests and one-shot rendering)."""
    return TextDecoder(encoding).decode(data, final=True)
