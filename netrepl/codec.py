"""Incremental decoding of a byte stream into text that is safe to show on a terminal.

Pure: bytes in, text plus escape spans out. Decoders keep state between calls so that a
character split across two reads is shown whole. Nothing here may import socket, threading or
a terminal library, or touch a file. Control characters and undecodable bytes never leave this
module raw: they become visible escapes (`\\x1b`, `\\xff`) marked by a span.
"""

from __future__ import annotations

import codecs
import functools
import re
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

AUTO = "auto"
"""Pseudo-encoding: UTF-8 and GBK told apart as the bytes come (AutoDecoder), else escapes."""

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
    except (LookupError, UnicodeError):  # UnicodeError: a name typed in bytes that are not UTF-8
        raise ValueError(f"unknown encoding {quote(name)}") from None
    # Byte-to-byte codecs (hex, base64, zlib) cannot show or encode text.
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"{name!r} is not a text encoding")
    return info.name


def encoding_for_sending(encoding: str) -> str:
    """The encoding used for typed text: auto sends UTF-8, the seed of its fallback order."""
    return "utf-8" if encoding == AUTO else encoding


def make_encoder(encoding: str) -> codecs.IncrementalEncoder:
    """An incremental encoder for typed text in a view's encoding (`auto` too). A character
    that arrived undecodable (stdin is read with surrogateescape) goes out as its byte."""
    return codecs.getincrementalencoder(encoding_for_sending(encoding))(errors="surrogateescape")


def encode_for_sending(text: str, encoding: str) -> bytes:
    """`text` as a typed line sends it in a view's encoding (`auto` too), all at once.
    Raises UnicodeEncodeError for a character the encoding has no bytes for."""
    return text.encode(encoding_for_sending(encoding), "surrogateescape")


def decode_complete(data: bytes, encoding: str) -> str:
    """Complete bytes as text in a view's encoding (`auto` too): an undecodable byte becomes
    U+DC00+byte, as in the incremental decoders. Not yet safe to show: see `quote`."""
    return make_decoder(encoding, fast=False).decode(data, final=True)


# A lone surrogate in repr() output, after an even number of backslashes (so not a typed one).
_REPR_UNDECODABLE = re.compile(r"(?<!\\)((?:\\\\)*)\\udc([0-9a-f]{2})")


def quote(text: str) -> str:
    """`text` quoted for a message, as repr() writes it (controls escaped), except that an
    undecodable byte (U+DC00+byte, from surrogateescape or these decoders) is shown as
    the byte it was: `'caf\\xe9'`, not `'caf\\udce9'`."""
    return _REPR_UNDECODABLE.sub(r"\1\\x\2", repr(text))


# A valid UTF-8 character of three or four bytes (RFC 3629 table 3-7: no overlongs, no
# surrogates): CJK and most symbols, which GBK text almost never forms by chance.
_UTF8_WIDE = (
    rb"\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
# A proper prefix of a UTF-8 character of three or four bytes: more bytes could complete it.
_UTF8_WIDE_PREFIX = (
    rb"\xe0[\xa0-\xbf]?|[\xe1-\xec\xee\xef][\x80-\xbf]?|\xed[\x80-\x9f]?"
    rb"|\xf0(?:[\x90-\xbf][\x80-\xbf]?)?|[\xf1-\xf3](?:[\x80-\xbf][\x80-\xbf]?)?"
    rb"|\xf4(?:[\x80-\x8f][\x80-\xbf]?)?"
)
# What GBK mode reads at once: ASCII, and GBK pairs (lead, trail; the codec knows which are
# assigned) up to one that starts a wide UTF-8 character, which only leads e0-f4 can. Before
# the final read, also up to one that the next read could make a wide UTF-8 character.
_GBK_TRAIL = rb"[\x40-\x7e\x80-\xfe]"
_GBK_READS = rb"(?:[\x00-\x7f]++|[\x81-\xdf\xf5-\xfe]%b|(?!%b)[\xe0-\xf4]%b)*+"
_UTF8_WIDE_SOON = _UTF8_WIDE + rb"|(?:" + _UTF8_WIDE_PREFIX + rb")\Z"


# The auto view's patterns and the GBK codec are built by the first auto decoder, not at every
# start: a run that never decodes in the auto view (a one-shot pipe) never compiles them.
@functools.cache
def _utf8_prefix() -> re.Pattern[bytes]:
    return re.compile(rb"[\xc2-\xdf]|" + _UTF8_WIDE_PREFIX)


@functools.cache
def _gbk_reads() -> tuple[re.Pattern[bytes], re.Pattern[bytes], Callable[[bytes], tuple[str, int]]]:
    """(the GBK run read at the final read, the run read before it, the GBK decode)."""
    run = re.compile(_GBK_READS % (_GBK_TRAIL, _UTF8_WIDE, _GBK_TRAIL))
    run_held = re.compile(_GBK_READS % (_GBK_TRAIL, _UTF8_WIDE_SOON, _GBK_TRAIL))
    return run, run_held, codecs.lookup("gbk").decode


def _read(gbk: bool, buf: bytes, i: int, final: bool) -> tuple[str, int]:
    """Decode `buf` from `i` in one mode, as far as that mode reads: the text and the end."""
    if gbk:
        run, run_held, _gbk_decode = _gbk_reads()
        end = (run if final else run_held).match(buf, i).end()
        try:
            text, used = _gbk_decode(buf[i:end])
        except UnicodeDecodeError as error:  # a GBK-shaped pair with no character assigned
            text, used = _gbk_decode(buf[i : i + error.start])
    else:
        # The C decoder takes everything up to the first invalid byte.
        try:
            text, used = codecs.utf_8_decode(buf[i:], "strict", final)
        except UnicodeDecodeError as error:
            text, used = codecs.utf_8_decode(buf[i : i + error.start], "strict", True)
    return text, i + used


class AutoDecoder:
    """Incremental decoder for the `auto` view: UTF-8 and GBK told apart as the bytes come.

    A valid UTF-8 character of three or four bytes (CJK, most symbols) is UTF-8: GBK text
    almost never forms one. Any other non-ASCII character is read in the mode, the encoding of
    the last non-ASCII character, if that can read it; else in the other encoding, which
    becomes the mode; else it is an undecodable byte. ASCII keeps the mode; the first mode is
    UTF-8. So GBK pairs that are also valid two-byte UTF-8 (`状态` is d7 b4 cc ac) stay GBK in
    GBK text, and a UTF-8 line after GBK lines is UTF-8 again from its first CJK character.
    Bytes at the end of a read that could still complete a character wait for the next read
    (or for `final`).
    """

    def __init__(self) -> None:
        self._pending = b""
        self._gbk = False

    def decode(self, data: bytes, final: bool = False) -> str:
        buf = self._pending + data
        n = len(buf)
        text, i = _read(self._gbk, buf, 0, final)
        out = [text]
        while i < n:
            # The mode stops at i: a character not complete yet, the other encoding, or an
            # undecodable byte.
            if not final and n - i < 4 and self._may_complete(buf[i:]):
                break
            text, j = _read(not self._gbk, buf, i, final)
            if j > i:
                self._gbk = not self._gbk
            else:
                out.append(chr(0xDC00 + buf[i]))
                text, j = _read(self._gbk, buf, i + 1, final)
            out.append(text)
            i = j
        self._pending = buf[i:]
        return "".join(out)

    @staticmethod
    def _may_complete(tail: bytes) -> bool:
        if len(tail) == 1 and 0x81 <= tail[0] <= 0xFE:
            return True  # a GBK lead byte (or UTF-8 lead) waiting for its partner
        return _utf8_prefix().fullmatch(tail) is not None

    def getstate(self) -> tuple[bytes, int]:
        return self._pending, int(self._gbk)


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
_CONTROL_RANGES = [(0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0x061C, 0x061C), (0x200E, 0x200F)]
_CONTROL_RANGES += [(0x2028, 0x202E), (0x2066, 0x2069)]
# And the format characters a terminal draws as nothing, so `PO\u200bNG` would pass for PONG:
# the soft hyphen, the Mongolian vowel separator, zero-width space, non-joiner and joiner,
# word joiner, the invisible operators and the rest of U+2060-U+206F (deprecated shaping
# controls, one unassigned), the BOM / zero-width no-break space, the interlinear
# annotation marks, and the tag characters (U+E0001, U+E0020-U+E007F), which can carry a
# whole hidden text. A joiner inside an emoji sequence is escaped too: bytes over beauty.
_INVISIBLE_RANGES = [(0x00AD, 0x00AD), (0x180E, 0x180E), (0x200B, 0x200D), (0x2060, 0x2065)]
_INVISIBLE_RANGES += [(0x206A, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB)]
_INVISIBLE_RANGES += [(0xE0001, 0xE0001), (0xE0020, 0xE007F)]
_CONTROL_RANGES += _INVISIBLE_RANGES
_CONTROL_CHARS = [chr(code) for low, high in _CONTROL_RANGES for code in range(low, high + 1)]
_CONTROLS = "".join(
    f"{re.escape(chr(low))}-{re.escape(chr(high))}" for low, high in _CONTROL_RANGES
)
# The bytes that stand for themselves in Latin-1 text: deleting them leaves the unsafe ones.
_SAFE_LATIN1 = bytes(range(0x100)).translate(
    None, bytes(ord(char) for char in _CONTROL_CHARS if ord(char) < 0x100)
)
_LATIN1_LEAD = "\x80".encode()[:1]
_C0_BYTES = [char.encode() for char in _CONTROL_CHARS if ord(char) < 0x80]

# The tables below serve text that holds something unsafe, or any non-ASCII at all: each is
# built the first time it is needed, not at every start (~40 M instructions of a one-shot
# pipe's ~480 M, issue 14), and kept for the process.


@functools.cache
def _unsafe_run() -> re.Pattern[str]:
    return re.compile(f"[{_CONTROLS}\ud800-\udfff]+")


@functools.cache
def _unsafe_kind() -> re.Pattern[str]:
    """Runs of one kind, so a run of undecodable bytes is one span, not one per byte."""
    return re.compile(f"(?P<invalid>[\ud800-\udfff]+)|(?P<control>[{_CONTROLS}]+)")


@functools.cache
def _wide_by_lead() -> list[tuple[bytes, list[str], re.Pattern[bytes]]]:
    """The unsafe characters wider than Latin-1 by the first byte of their UTF-8 form (D8,
    E1, E2, EF or F3), with a pattern finding them all. Where a lead byte starts many of them
    (E2: 28, F3: 97), their UTF-8 forms are searched for in the bytes at once (the regex
    engine skips to the lead byte): ~2 µs on 4 KiB of text that holds dashes and quotes,
    against ~0.5 µs for each `in`."""
    by_lead: dict[bytes, list[str]] = {}
    for char in _CONTROL_CHARS:
        if ord(char) >= 0x80:
            by_lead.setdefault(char.encode()[:1], []).append(char)
    return [
        (lead, chars, re.compile(b"|".join(re.escape(char.encode()) for char in chars)))
        for lead, chars in by_lead.items()
        if lead != _LATIN1_LEAD
    ]


def _escape_char(ch: str) -> tuple[str, EscapeKind]:
    code = ord(ch)
    if 0xDC00 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}", "invalid"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}", "invalid"
    if code < 0x100 and code != 0xAD:  # C0, DEL, C1: a byte's worth
        return f"\\x{code:02x}", "control"
    if code <= 0xFFFF:
        # The soft hyphen too: `\\xad` would read as the undecodable byte AD.
        return f"\\u{code:04x}", "control"
    return f"\\U{code:08x}", "control"


@functools.cache
def _escapes() -> dict[int, str]:
    """Each unsafe character's escape, by code point: a `str.translate` table."""
    chars = [*_CONTROL_CHARS, *map(chr, range(0xD800, 0xE000))]
    return {ord(char): _escape_char(char)[0] for char in chars}


def _controls_in(text: str, encoded: bytes) -> set[str]:
    # `encoded` is `text` in UTF-8: an unsafe character is found by the byte that starts it
    # (a memchr, ~0.2 µs on 4 KiB), and only the few that start with a byte present are looked
    # for in `text` (a `in` of one character, ~0.2 µs each). Most text holds none of these
    # bytes: CJK is E3-E9, fullwidth punctuation EF BC/BD, so only EF's four are looked for.
    if text.isascii():
        # Deleting the safe bytes leaves C0 and DEL: one C pass, cheaper than 31 memchrs.
        return set(encoded.translate(None, _SAFE_LATIN1).decode("ascii"))
    found: set[str] = set()
    if _LATIN1_LEAD in encoded:
        # C1 or the soft hyphen may be there: the Latin-1 encoder drops every wider character,
        # then deleting the safe ones leaves C0, DEL, C1 and the soft hyphen.
        latin1 = text.encode("latin-1", "ignore").translate(None, _SAFE_LATIN1)
        found.update(latin1.decode("latin-1"))
    else:
        found.update(byte.decode() for byte in _C0_BYTES if byte in encoded)
    for lead, chars, forms in _wide_by_lead():
        if lead in encoded:
            if len(chars) > 4:
                found.update(form.decode() for form in forms.findall(encoded))
            else:
                found.update(char for char in chars if char in text)
    return found


def escape_text(text: str) -> SafeText:
    """Replace every unsafe character of `text` with a visible escape (`\\x1b`, `\\xff`)."""
    # The UTF-8 encoder writes each lone surrogate (undecodable byte) as `\\udcff`, in C. A
    # typed `\\ud` looks the same here and costs only time; most text holds no backslash at all.
    encoded = text.encode("utf-8", "backslashreplace")
    controls = _controls_in(text, encoded)
    undecodable = b"\\" in encoded and b"\\ud" in encoded
    if not controls and not undecodable:
        return SafeText(text)
    if undecodable and "\\udc" in text:
        # The text itself holds `\\udc`, which must stay as it came: the slow, exact way.
        escapes = _escapes()
        escaped = _unsafe_run().sub(lambda run: run.group().translate(escapes), text)
    else:
        # A few C passes over the bytes; a translate table costs a dict lookup per character
        # (and building it, 2,300 entries, for the handful of characters found here).
        for char in controls:
            encoded = encoded.replace(char.encode(), _escape_char(char)[0].encode())
        if undecodable:
            encoded = encoded.replace(b"\\udc", b"\\x")  # U+DC00+byte is the byte `\\xff`
        escaped = encoded.decode("utf-8")
    return SafeText(escaped, source=text)


def _escape_spans(source: str) -> tuple[tuple[int, int, EscapeKind], ...]:
    """Where the escapes of `escape_text(source)` are, and of which kind, runs merged."""
    spans: list[tuple[int, int, EscapeKind]] = []
    length = 0
    last = 0
    escapes = _escapes()
    for match in _unsafe_kind().finditer(source):
        length += match.start() - last
        escaped = len(match.group().translate(escapes))
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
        return escape_text(self.decode_unescaped(data, final))

    def decode_unescaped(self, data: bytes, final: bool = False) -> str:
        """The same text, line ends normalised, before escaping: for a reader of its syntax
        (the json view parses it), which must escape whatever of it it shows."""
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError:
            # A bad byte below 0x80, which surrogateescape cannot carry: from here on, the
            # slow handler that can (what this decoder held back is decoded with it too).
            held = self.pending()
            self._decoder = make_decoder(self.encoding, fast=False)
            text = self._decoder.decode(held + data, final)
        if not text:
            return ""
        if self.after_cr and text[0] == "\n":
            text = text[1:]
        self.after_cr = text.endswith("\r")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    def pending(self) -> bytes:
        """Bytes received but held back because they may start a character not yet complete."""
        return self._decoder.getstate()[0]


def decode_whole(data: bytes, encoding: str) -> SafeText:
    """Decode a complete byte string at once (tests and one-shot rendering)."""
    return TextDecoder(encoding).decode(data, final=True)
