"""Styled text: the characters netrepl shows and the named styles on runs of them, as the
renderer makes them and the display writes them.

It is the part of rich's `Text` that netrepl uses (append, append_text, `+`, stylize, slices,
copy), with the same meaning, so that making output needs no rich at all: a one-shot pipe
writes plain text, and importing `rich.text` (with `rich.style`, `rich.segment`, ...) cost it
~60 M instructions, a fifth of its run (issue 14). Style names are resolved, combined and
turned into terminal codes by the display (`AnsiFormatter`), which asks rich; `to_rich` makes
the equal rich `Text` where rich's console itself must print it.

What it must never do: hold terminal codes, or make text safe. What is put in must already
be safe to show (escaped by `codec`); unlike rich it strips nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from rich.text import Text


class Span(NamedTuple):
    """A style name on characters [start, end) of a text."""

    start: int
    end: int
    style: str


class StyledText:
    """Characters with a base style (`style`, on all of them) and spans of named styles added
    in order (a later span wins where they overlap, as in rich). `end` is what a printer
    writes after it (rich's meaning; netrepl's own texts carry their newlines and end "")."""

    __slots__ = ("_length", "_parts", "end", "spans", "style")

    def __init__(
        self, text: str = "", style: str = "", *, end: str = "", spans: list[Span] | None = None
    ) -> None:
        self._parts = [text]
        self._length = len(text)
        self.style = style
        self.spans: list[Span] = spans if spans is not None else []
        self.end = end

    @property
    def plain(self) -> str:
        parts = self._parts
        if len(parts) != 1:
            parts[:] = ["".join(parts)]
        return parts[0]

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    def __str__(self) -> str:
        return self.plain

    def __repr__(self) -> str:
        return f"<styled {self.plain!r} {self.spans!r} {self.style!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StyledText):
            return NotImplemented
        return self.plain == other.plain and self.spans == other.spans

    __hash__ = None  # type: ignore[assignment]  # changes as it is built

    def __add__(self, other: StyledText | str) -> StyledText:
        joined = self.copy()
        joined.append(other)
        return joined

    def __getitem__(self, where: slice) -> StyledText:
        """Characters [start, stop) with the styles on them, and this text's base style."""
        start, stop, step = where.indices(self._length)
        if step != 1:
            raise ValueError("a styled text is sliced in steps of 1")
        spans = [
            Span(max(first, start) - start, min(last, stop) - start, name)
            for first, last, name in self.spans
            if first < stop and last > start
        ]
        return StyledText(self.plain[start:stop], self.style, end=self.end, spans=spans)

    def copy(self) -> StyledText:
        return StyledText(self.plain, self.style, end=self.end, spans=list(self.spans))

    def append(self, text: StyledText | str, style: str = "") -> StyledText:
        """Add text at the end: a string in `style`, or a styled text with its styles."""
        if isinstance(text, StyledText):
            if style:
                raise ValueError("a styled text brings its own styles")
            return self.append_text(text)
        if text:
            if style:
                self.spans.append(Span(self._length, self._length + len(text), style))
            self._parts.append(text)
            self._length += len(text)
        return self

    def append_text(self, text: StyledText) -> StyledText:
        """Add a styled text at the end: its base style becomes a span over it."""
        offset = self._length
        if text.style:
            self.spans.append(Span(offset, offset + text._length, text.style))
        self.spans.extend(
            Span(start + offset, end + offset, name) for start, end, name in text.spans
        )
        self._parts.append(text.plain)
        self._length += text._length
        return self

    def stylize(self, style: str, start: int = 0, end: int | None = None) -> None:
        """Put `style` on characters [start, end) (all of them by default); negative offsets
        count from the end. (rich keeps a span that starts before the text, which its
        `divide` never gets past.)"""
        length = self._length
        if not style:
            return
        start = max(0, length + start) if start < 0 else start
        end = length if end is None else (length + end if end < 0 else end)
        if start < length and end > start:
            self.spans.append(Span(start, min(length, end), style))

    def to_rich(self) -> Text:
        """The rich `Text` that is the same text, for rich's console."""
        from rich.text import Span as RichSpan
        from rich.text import Text

        spans = [RichSpan(*span) for span in self.spans]
        return Text(self.plain, self.style, end=self.end, spans=spans)
