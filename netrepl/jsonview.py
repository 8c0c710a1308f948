"""The json view's core: a JSON object or array re-indented and coloured, and a received text
stream cut into lines so that each line holding one is shown that way.

Pure: text in, `StyledText` (or text for the text view to show) out. No socket, thread, clock or
terminal. Nothing from a peer leaves here raw: every string of a document passes through
`codec.escape_text`, and what is not a document goes back to the text view, which escapes it.
"""

from __future__ import annotations

import re

from netrepl.codec import escape_text
from netrepl.styledtext import Span, StyledText

# What is re-indented at most, in characters of decoded text (a longer line or message is
# shown as the text view shows it, as it comes). Measured (`python -m benchmarks --only
# json-render`, this machine kind): re-indenting, colouring and turning a document into
# terminal text runs at ~1.1 MB/s, all of it holding the interpreter the I/O thread needs,
# and a KiB of an API reply becomes ~107 screen rows. At 256 KiB that is ~0.23 s and ~27k
# rows, once per document; a 5 MB document would take ~4.5 s and half a million rows.
JSON_MAX_CHARS = 256 * 1024
# A line that starts like a document waits this long for its end (the caller's clock; see
# render.ROW_SETTLE_SECONDS, the same wait for a hex row). Longer than a row's: a document
# cut here is shown as text for good, where a row cut early only starts a new row, and the
# segments of a long line come a round trip apart on a slow link (~0.1-0.2 s across
# continents). A document sent without a newline is shown after this silence.
JSON_SETTLE_SECONDS = 0.2
# Deep nesting makes indentation outgrow the document (`[[[[...]]]]`, 2 spaces a level on
# every line): past this many characters of output, it is shown as text.
JSON_MAX_OUTPUT = 4 * JSON_MAX_CHARS

# The tokens of a document json.loads accepted: strings, punctuation, and the rest (numbers,
# true, false, null, NaN, Infinity). What lies between them is JSON whitespace.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+')
_JSON_BLANKS = " \t\r\n"
# Where a line that may hold a document starts (blanks, then { or [), or where a line of
# blanks not yet ended may still become one.
_DOCUMENT_START = re.compile(r"^[ \t]*(?:[{\[]|\Z)", re.MULTILINE)

_VALUE_STYLES = {"t": "netrepl.json.true", "f": "netrepl.json.false", "n": "netrepl.json.null"}


def format_json(text: str, *, styles: bool = True) -> StyledText | None:
    """`text` re-indented (two spaces) and coloured when it is one JSON object or array (blanks
    around it allowed); None when it is not, or is longer than JSON_MAX_CHARS.

    The tokens are shown as they came, only the blanks between them change: numbers keep their
    digits (`1.10`, a 400-digit integer), strings their escapes (`\\u00e9` stays six
    characters), and a repeated key is shown twice, as a debugger should show them. Every
    string is escaped for the terminal (C1 controls, bidi overrides, undecodable bytes; JSON
    itself forbids raw C0 controls in strings). The result ends with a newline.
    """
    if len(text) > JSON_MAX_CHARS:
        return None
    document = text.strip(_JSON_BLANKS)
    if not document or document[0] not in "{[":
        return None
    import json  # here: every start imports this module, few use the json view

    try:
        # parse_int=str: an integer longer than Python converts (4300 digits) is still JSON.
        json.loads(document, parse_int=str)
    except (ValueError, RecursionError):
        return None
    tokens = _TOKEN.findall(document)
    parts: list[str] = []
    spans: list[Span] = []
    length = 0
    depth = 0
    indent = "\n"
    count = len(tokens)
    i = 0
    while i < count:
        token = tokens[i]
        first = token[0]
        style = ""
        if first in "{[":
            closing = "}" if first == "{" else "]"
            if i + 1 < count and tokens[i + 1] == closing:
                token += closing  # an empty one stays on its line: `{}`, `[]`
                i += 1
            else:
                depth += 1
                indent = "\n" + "  " * depth
                token += indent
        elif first in "}]":
            depth -= 1
            indent = "\n" + "  " * depth
            token = indent + token
        elif first == ",":
            token = "," + indent
        elif first == ":":
            token = ": "
        elif first == '"':
            key = i + 1 < count and tokens[i + 1] == ":"
            style = "netrepl.json.key" if key else "netrepl.json.str"
            if not token.isascii() or "\x7f" in token:
                safe = escape_text(token)
                token = safe.text
                if styles and safe.escapes:
                    spans.append(Span(length, length + len(token), style))
                    spans += [
                        Span(length + a, length + b, f"netrepl.{kind}")
                        for a, b, kind in safe.escapes
                    ]
                    style = ""
        else:
            style = _VALUE_STYLES.get(first, "netrepl.json.number")
        if styles and style:
            spans.append(Span(length, length + len(token), style))
        parts.append(token)
        length += len(token)
        if length > JSON_MAX_OUTPUT:
            return None
        i += 1
    parts.append("\n")
    return StyledText("".join(parts), spans=spans)


Piece = str | StyledText
"""What `JsonLines` gives: a document, indented (`StyledText`), or text for the text view (`str`,
not yet escaped)."""


class JsonLines:
    """One direction of one connection's decoded text, line by line: a line holding one JSON
    object or array is shown indented; every other line as the text view shows it, as it comes
    (a prompt that never ends its line too).

    Only a line that starts like a document (blanks, then `{` or `[`) and has not ended is held
    back: for its end (a newline; a document split across reads is one document), for
    `release` (the caller's clock says the peer went quiet: a document sent without a newline
    is shown then), or until it outgrows JSON_MAX_CHARS, when it is shown as text, as is the
    rest of its line.
    """

    def __init__(self, *, styles: bool = True, mid_line: bool = False) -> None:
        self.styles = styles
        self._held: list[str] = []
        self._held_size = 0
        self._held_blank = True  # what is held is blanks so far: it may still start a document
        self._in_text = mid_line
        """The line going on is text (it started as text, or was released as text)."""
        self._ended_early = False
        """A document ended by silence was given a newline: the peer's own, if next, is dropped."""

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def feed(self, text: str, *, whole: bool = False) -> list[Piece]:
        """What `text`, the next decoded text of the stream, shows. `whole`: `text` is a block
        of its own (a frame, a datagram, a message), shown entirely now: a document if the
        block is one, else line by line."""
        if self._ended_early and text:
            self._ended_early = False
            if text[0] == "\n":
                text = text[1:]
        if whole and not self._held and not self._in_text:
            if len(text) > JSON_MAX_CHARS:
                # Bounded as one document is: a block of many small ones costs as much.
                return [text]
            document = format_json(text, styles=self.styles)
            if document is not None:
                return [document]
        pieces: list[Piece] = []
        position, size = 0, len(text)
        while position < size:
            if self._in_text:
                end = text.find("\n", position) + 1 or size
                pieces.append(text[position:end])
                self._in_text = end == size and not text.endswith("\n")
                position = end
            elif not self._held:
                # Lines of text, up to one that may hold a document, go as one piece.
                found = _DOCUMENT_START.search(text, position)
                start = found.start() if found is not None else size
                if start > position:
                    pieces.append(text[position:start])
                    self._in_text = start == size and not text.endswith("\n")
                    position = start
                else:
                    position = self._line(text, position, pieces)
            else:
                position = self._line(text, position, pieces)
        if whole:
            pieces += self.release()
            self._in_text = self._ended_early = False
        return pieces

    def release(self) -> list[Piece]:
        """The line held back, shown now: the peer went quiet, the stream ended, or the view
        changes. A document if it is one; else text, and the rest of its line with it."""
        if not self._held:
            return []
        line = self._take()
        document = format_json(line, styles=self.styles)
        if document is not None:
            self._ended_early = True
            return [document]
        self._in_text = True
        return [line]

    def _line(self, text: str, position: int, pieces: list[Piece]) -> int:
        """From `position`, the start of a line (or the rest of the one held): the line
        shown if it ends in `text`, else held. Returns where the next line starts."""
        end = text.find("\n", position)
        if end < 0:
            self._hold(text[position:], pieces)
            return len(text)
        line = self._take() + text[position:end]
        document = format_json(line, styles=self.styles)
        pieces.append(document if document is not None else line + "\n")
        return end + 1

    def _hold(self, part: str, pieces: list[Piece]) -> None:
        self._held.append(part)
        self._held_size += len(part)
        if self._held_blank:
            lead = part.lstrip(" \t")
            if lead:
                self._held_blank = False
                if lead[0] not in "{[":
                    self._in_text = True
                    pieces.append(self._take())
                    return
        if self._held_size > JSON_MAX_CHARS:
            self._in_text = True
            pieces.append(self._take())

    def _take(self) -> str:
        line = "".join(self._held)
        self._held, self._held_size, self._held_blank = [], 0, True
        return line
