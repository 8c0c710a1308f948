"""The one writer to the terminal: a thread that drains events, renders, and writes frames.

Everything the user sees passes through here in event order: received data, echoes, status
and errors. Transport threads only post events, so they never wait on the terminal. Rendering
happens in batches (one write per frame) because many small writes make the prompt flicker.
Nothing here imports prompt_toolkit; the interactive sink gets its output stream and a
repaint callback from the REPL.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from itertools import pairwise
from operator import itemgetter
from typing import TYPE_CHECKING, Literal, Protocol, TextIO

from netrepl.events import Event, Received, Skipped
from netrepl.records import record, replace
from netrepl.render import STYLES, Output, Renderer
from netrepl.styledtext import Span, StyledText

if TYPE_CHECKING:
    from rich.color import ColorSystem
    from rich.console import Console
    from rich.style import Style

# A received line with no newline is shown anyway (committed to the scrollback, the rest
# going on as a new open line) once it takes more than OPEN_LINE_SCREEN_PART of the screen's
# rows above the prompt, or more than OPEN_LINE_LIMIT cells: one endless line can neither
# grow the prompt area past the screen nor hide data. The prompt redraws the open line
# through prompt_toolkit, whose parsing and layout keep small objects per character of it:
# a 4,096-character open line held ~170,000 more 64-byte blocks, 10 - 12 MiB (issue 14: one
# 50 MB line peaked at 1.52x idle RSS; a third of a 40x120 screen: 1.2x).
OPEN_LINE_LIMIT = 4096
OPEN_LINE_SCREEN_PART = 3
# Interactive: a frame renders at most this much received data (rich turns ~12k hexdump
# lines a second into terminal text; 4 KiB is 256 lines) and for this long at most, so keys
# still echo in a flood; what is left waits for the next frame, FRAME_INTERVAL later.
FRAME_BYTES_HEX = 4 * 1024
FRAME_BYTES_TEXT = 16 * 1024
FRAME_SECONDS = 0.03
FRAME_INTERVAL = 0.04
# Interactive: received data waiting to be shown beyond this is skipped, oldest first: the
# screen is never more than a few seconds behind.
BACKLOG_LIMIT = 64 * 1024
# When leaving, at most this much is still drawn; the rest is said in one line.
STOP_BACKLOG_LIMIT = 16 * 1024
# Data queued for the display thread beyond this: the poster waits (batch), which bounds
# memory however fast the peer sends.
QUEUE_LIMIT = 8 * 1024 * 1024
# Interactive, beyond this it is skipped at once: a frame shows 4-16 KiB and the backlog
# keeps 64 KiB, so more only held memory (with 8 MiB, a flood peaked at 1.8x idle RSS).
KEEP_UP_QUEUE_LIMIT = 1024 * 1024
# Datagrams never make the poster wait: UDP has no flow control, so a wait only moves the
# loss into the kernel, where the log loses them too. Batch mode queues a burst this big
# (each event counted with its overhead) and skips beyond it, saying so.
DATAGRAM_QUEUE_LIMIT = 64 * 1024 * 1024
EVENT_OVERHEAD = 128
# While datagrams arrive back to back, the display gives the interpreter to the I/O thread:
# rendering beside it, each of its per-datagram system calls would wait up to the 5 ms
# switch interval to get the GIL back (a convoy: hex view kept ~2,700 of 20,000 datagrams
# of a 0.2 s burst). Once datagrams have come within DATAGRAM_RECENT, it renders at most
# DATAGRAM_SLICE at a time, then waits at least DATAGRAM_RECENT (so it never takes more
# than a fifth of the time), until the I/O thread has caught up (it posts datagrams within
# DATAGRAM_CAUGHT_UP_LAG of reading them, or has posted them all and nothing more came),
# or DATAGRAM_WAIT_MAX passed (so a flood beyond what the I/O thread can post, or a stall
# of that thread, still shows something).
DATAGRAM_SLICE = 0.005
DATAGRAM_RECENT = 0.02
DATAGRAM_CAUGHT_UP_LAG = 0.001
DATAGRAM_WAIT_MAX = 0.2
DATAGRAM_WAIT_STEP = 0.005
# Batch mode: a frame ends after this much received data (interactive frames end sooner).
# Rendering a 20 MB backlog of datagrams as one frame held ~90 MB of text until its write,
# which the collector walked again and again (pauses up to 185 ms, every thread stopped,
# the I/O thread too).
BATCH_FRAME_BYTES = 256 * 1024
# Having shown all that was queued, the display rests this long before it looks again: data
# that comes as many small reads (a relay's request and reply, again and again) is then
# shown a batch at a time, instead of each read waking this thread to take the interpreter
# from the I/O thread just as the next read comes in (~90 us of each relayed round trip,
# benchmarks/relaying.py). Nobody sees 2 ms. Not after a big batch: a flood keeps the queue
# full, and a resting display would only make the posters wait.
CAUGHT_UP_PAUSE = 0.002
SMALL_BATCH = 64 * 1024
# Interactive: a message that data pushes off the screen within this time of being shown is
# kept in view above the prompt until it is this old (an answer to a command in a flood). The
# promise is 3 s: the half second more covers a terminal that draws the frame late.
PIN_SECONDS = 3.5
# Rows the prompt itself takes below the last line written (the input line and the toolbar,
# and a row of slack): a message closer to the top than this is already out of view.
PROMPT_ROWS = 3


class Sink(Protocol):
    def write(self, outputs: list[Output]) -> None: ...

    def close(self) -> None: ...


class AnsiFormatter:
    """`StyledText` -> a string with SGR codes for a terminal (or none when colour is off).

    What rich's `Console.print` shows for the text (each styled run opens its SGR codes and
    resets after itself, newlines unstyled, tabs expanded), but worked out here from the
    spans: rich's console path took ~5 ms per 256 hexdump lines, holding the GIL the socket
    thread needs in a flood; this takes ~0.3 ms. Rich stays the authority on what a style
    means: it resolves and combines styles and renders their codes.
    """

    def __init__(self, color_system: Literal["auto"] | None = "auto") -> None:
        # rich's console is made only for rich_format (no colours, and the tests' reference):
        # resolving and rendering a style needs only rich.style, and importing the console
        # cost the first prompt ~60 M instructions, 7% of it (issue 14). A pipe imports
        # neither: its output is `plain`.
        from rich.default_styles import DEFAULT_STYLES
        from rich.style import Style

        self._requested = color_system
        self._color_system = terminal_color_system(os.environ) if color_system else None
        self._console: Console | None = None
        # What rich's console with `Theme(STYLES)` knows by name: its defaults, then netrepl's.
        self._theme = DEFAULT_STYLES | {name: Style.parse(style) for name, style in STYLES.items()}
        self._styles: dict[tuple[str, ...], tuple[str, str]] = {}

    def __call__(self, text: StyledText) -> str:
        if self._color_system is None:
            return self.rich_format(text)
        if "\t" in text.plain:
            expanded = text.to_rich()
            expanded.expand_tabs(TAB_SIZE)
            spans = [Span(start, end, str(style)) for start, end, style in expanded.spans]
            text = StyledText(expanded.plain, text.style, spans=spans)
        runs = self._runs_in_order(text)
        return "".join(runs if runs is not None else self._runs_by_edges(text))

    def _runs_in_order(self, text: StyledText) -> list[str] | None:
        """The usual text: spans one after another (escapes, hexdump offsets); None when
        spans overlap."""
        plain, base = text.plain, text.style
        outside = self._sgr((base,))
        runs = []
        position = 0
        for start, end, style in text.spans:
            if end <= start:
                continue  # styles nothing
            if start < position:
                return None
            runs.append(self._styled(plain[position:start], outside))
            runs.append(self._styled(plain[start:end], self._sgr((base, style))))
            position = end
        runs.append(self._styled(plain[position:], outside))
        return runs

    def _runs_by_edges(self, text: StyledText) -> list[str]:
        """Any spans, combined where they overlap as rich combines them: the text's own style
        first, then the spans in the order they were added."""
        plain, spans = text.plain, text.spans
        edges = [(0, False, 0), (len(plain), True, 0)]
        edges += [(span.start, False, index) for index, span in enumerate(spans, 1)]
        edges += [(span.end, True, index) for index, span in enumerate(spans, 1)]
        edges.sort(key=_EDGE_ORDER)
        names = [text.style, *(span.style for span in spans)]
        active: list[int] = []
        runs = []
        for (offset, leaving, index), (next_offset, _, _) in pairwise(edges):
            if leaving:
                active.remove(index)
            else:
                active.append(index)
            if next_offset > offset:
                sgr = self._sgr(tuple(names[i] for i in sorted(active)))
                runs.append(self._styled(plain[offset:next_offset], sgr))
        return runs

    def rich_format(self, text: StyledText) -> str:
        """The same through rich's console: the reference the fast path is tested against."""
        if self._console is None:
            from rich.console import Console
            from rich.theme import Theme

            self._console = Console(
                file=io.StringIO(),
                force_terminal=True,
                color_system=self._requested,
                theme=Theme(STYLES),
                soft_wrap=True,  # the terminal wraps; rich must not insert newlines of its own
                highlight=False,
                markup=False,
                emoji=False,
                tab_size=TAB_SIZE,
            )
        with self._console.capture() as capture:
            self._console.print(text.to_rich(), end="")
        return capture.get()

    def _sgr(self, styles: tuple[str, ...]) -> tuple[str, str]:
        """The codes that open and close a run in these styles combined ("" when plain)."""
        codes = self._styles.get(styles)
        if codes is None:
            from rich.style import Style

            style = Style.combine(self._style(name) for name in styles)
            opened, marker, closed = style.render("\0", color_system=self._color_system).partition(
                "\0"
            )
            codes = self._styles[styles] = (opened, closed) if marker else ("", "")
        return codes

    def _style(self, name: str) -> Style:
        """A style by name, as rich's console resolves it: the theme's, or the name read as a
        definition (`bold red`), or no style for a name that is neither."""
        from rich.errors import StyleSyntaxError
        from rich.style import Style

        style = self._theme.get(name)
        if style is None:
            try:
                style = Style.parse(name)
            except StyleSyntaxError:
                style = Style.null()
        return style

    @staticmethod
    def _styled(run: str, sgr: tuple[str, str]) -> str:
        opened, closed = sgr
        if not opened or not run:
            return run
        if "\n" not in run:
            return opened + run + closed
        return "\n".join(opened + line + closed if line else "" for line in run.split("\n"))


_EDGE_ORDER = itemgetter(0, 1)
TAB_SIZE = 8  # rich's console's, which the terminal's tab stops match


def terminal_color_system(environ: Mapping[str, str]) -> ColorSystem | None:
    """The colours a terminal shows, from its environment, as rich's console detects them
    (`Console._detect_color_system`, not on Windows): None with NO_COLOR set or a dumb
    terminal, 24-bit with COLORTERM=truecolor, 256 colours for a TERM of `*-256color` or
    `*-kitty`, else the standard 16."""
    from rich.color import ColorSystem

    if environ.get("NO_COLOR", "") != "" or environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    if environ.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return ColorSystem.TRUECOLOR
    colors = environ.get("TERM", "").strip().lower().rpartition("-")[2]
    if colors in ("256color", "kitty"):
        return ColorSystem.EIGHT_BIT
    return ColorSystem.STANDARD


def plain(text: StyledText) -> str:
    return text.plain


# The styles AnsiFormatter writes: all that a formatted line holds besides its text.
_SGR = re.compile(r"\x1b\[[0-9;]*m")
# A gap of two spaces or more inside a line: a table's columns (/help, /stats).
_COLUMN_GAP = re.compile(r"(?<=\S) {2,}(?=\S)")


def text_width(line: str) -> int:
    """Terminal cells of one line of plain text (wide characters take two)."""
    if line.isascii():
        return len(line)
    # rich knows the widths; imported here, as a pipe never asks.
    from rich.cells import cell_len, get_character_cell_size

    if "\u200d" in line or "\ufe0f" in line:
        return cell_len(line)  # rich's rules for joined emoji: rare lines
    # Character by character, not through rich's `cell_len`, which keeps every line shorter
    # than 512 characters it measures (the last 4,096): received lines, each frame's. That
    # held 0.7 MiB of the benchmarks' flood of short CJK lines, 9 MiB of 511-emoji lines.
    return sum(map(get_character_cell_size, line))


def open_line_cells(columns: int, rows: int) -> int:
    """The cells an unfinished received line may take above the prompt before it is
    committed to the scrollback (a part of the screen, OPEN_LINE_LIMIT at most)."""
    return min(OPEN_LINE_LIMIT, max(columns, 1) * max(rows // OPEN_LINE_SCREEN_PART, 1))


def screen_rows(text: str, columns: int) -> int:
    """How many rows `text` (lines each ending in a newline, SGR codes in them) takes on a
    terminal `columns` wide: a line wider than that wraps onto more rows."""
    rows = 0
    for line in _SGR.sub("", text).split("\n")[:-1]:
        rows += max(1, -(-text_width(line) // columns))
    return rows


def hanging_indent(line: str, width: int) -> int:
    """Where the continuation rows of `line` start: under a table's last column when the line
    has columns (the summaries of /help), else two cells in from the line's own indent."""
    indent = len(line) - len(line.lstrip(" "))
    gaps = list(_COLUMN_GAP.finditer(line, indent))
    column = text_width(line[: gaps[-1].end()]) if gaps else indent + 2
    return column if column <= width // 2 else min(indent + 2, width // 2)


def wrap_message(text: StyledText, width: int) -> StyledText:
    """`text` with every line wider than `width` cells broken at spaces onto more rows, each
    continuation starting at the line's hanging indent (further left for a word that would
    not fit after it); a word wider than a row is cut. The
    styles stay on their characters. Lines that fit are returned as they are."""
    plain = text.plain
    if width < 8 or all(text_width(line) <= width for line in plain.split("\n")):
        return text
    wrapped = StyledText(end=text.end, style=text.style)
    start = 0
    for line in plain.split("\n"):
        end = start + len(line)
        indent = hanging_indent(line, width)
        position, room = start, width
        while True:
            cut = _row_end(plain, position, end, room)
            wrapped.append_text(text[position:cut])
            position = cut
            while position < end and plain[position] == " ":
                position += 1
            if position >= end:
                break
            # A word that fits a row but not after the indent starts further left, whole.
            word_end = plain.find(" ", position, end)
            word = text_width(plain[position : end if word_end < 0 else word_end])
            row_indent = width - word if width - indent < word <= width else indent
            wrapped.append("\n" + " " * row_indent)
            room = width - row_indent
        if end < len(plain):
            wrapped.append("\n")
        start = end + 1
    return wrapped


def _row_end(plain: str, start: int, end: int, room: int) -> int:
    """Where the row that starts at `start` ends: after the last word that fits in `room`
    cells, or, for a word wider than that, after the characters that fit."""
    if text_width(plain[start:end]) <= room:
        return end
    fits = start
    while fits < end and text_width(plain[start : fits + 1]) <= room:
        fits += 1
    space = plain.rfind(" ", start + 1, fits + 1)
    return space if space > start else max(fits, start + 1)


@record
class _Shown:
    """A message written above the prompt, while it may still be pinned there."""

    lines: list[str]
    at: float
    rows_after: int = 0
    """Rows written below it since."""
    pushed: bool = False
    """Received data was written below it since (not only more messages)."""
    pinned: bool = False


class TerminalSink:
    """Interactive output: complete lines go above the prompt; an unfinished received line
    (a device's `login: `) is kept in `open_line_ansi` for the prompt to show until it ends.

    Messages (status, info, errors) are wrapped at spaces to the terminal's width, with a
    hanging indent, so no word is broken by the terminal's own wrapping. A message that
    received data pushes off the screen within PIN_SECONDS of being shown (an answer to a
    command during a flood) is kept in view just above the prompt (`pinned_ansi`, which the
    REPL writes below each frame) until it is that old; it stays in the scrollback too.

    Lines are cut in the formatted string, never by slicing the styled text and formatting
    each piece again (with rich's `Text`, whose slices are re-scanned for control codes, that
    cost more than the rest of a text frame). A cut at a newline is safe there: formatting
    keeps newlines outside the styled runs.
    """

    def __init__(
        self,
        out: TextIO,
        formatter: Callable[[StyledText], str],
        repaint: Callable[[], None],
        clear: Callable[[], None] | None = None,
        size: Callable[[], tuple[int, int]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`size` gives the terminal's (columns, rows), asked at each frame (a window can
        be resized at any time); `clear` clears the screen (/clear)."""
        self._out = out
        self._format = formatter
        self._repaint = repaint
        self._clear = clear
        self._size = size
        self._clock = clock
        self.open_line_ansi = ""
        self._open_cells = 0  # terminal cells of the open line, without its styles
        self.progress_ansi = ""
        """A long send's progress bar, redrawn in place above the prompt."""
        # A message ended an unfinished received line early; the newline that would have
        # ended it is then not shown again as an empty line.
        self._line_ended_early = False
        self._shown: deque[_Shown] = deque(maxlen=64)
        self._pinned: tuple[tuple[float, str], ...] = ()

    @property
    def screen_size(self) -> tuple[int, int]:
        return self._size() if self._size is not None else (80, 24)

    def frame_bytes(self, hex_view: bool) -> int:
        """Received bytes one frame shows: what the screen can show. More would scroll by
        unseen, and a terminal slower than the data spends its time drawing past the
        prompt; the display skips the rest, and says so."""
        columns, rows = self.screen_size
        if hex_view:
            return max(rows, 1) * 16  # one hexdump row for each row of the screen
        # Half a screen's cells: lines are mostly shorter than the width, and escapes of
        # undecodable bytes take four cells and their colour codes.
        return max(rows * columns // 2, 256)

    @property
    def pinned_ansi(self) -> str:
        """The pinned messages still fresh, for the REPL to keep just above the prompt (""
        if none). Called from the prompt's thread: it reads one tuple, swapped whole."""
        now = self._clock()
        return "".join(lines for until, lines in self._pinned if until > now)

    def write(self, outputs: list[Output]) -> None:
        parts: list[str] = []
        data: set[int] = set()  # the indices of parts that are received data
        messages: list[tuple[int, _Shown]] = []
        open_before = self.open_line_ansi, self.progress_ansi
        columns, rows = self.screen_size
        for output in outputs:
            if output.channel == "progress":
                assert output.text is not None
                self.progress_ansi = self._format(output.text) if output.text else ""
                continue
            if output.channel == "clear":
                self._flush(parts)
                messages.clear()
                self.open_line_ansi, self._open_cells = "", 0
                self._shown.clear()
                self._pinned = ()
                if self._clear is not None:
                    self._clear()
                continue
            assert output.text is not None, "the raw view exists in batch mode only"
            if output.channel == "data":
                first = len(parts)
                self._add_data(output.text, parts, open_line_cells(columns, rows))
                data.update(range(first, len(parts)))
                continue
            if self.open_line_ansi:
                data.add(len(parts))
            parts.extend(self._commit_open_line())
            text = output.text if output.channel == "echo" else wrap_message(output.text, columns)
            message = self._format(text)
            parts.append(message if text.plain.endswith("\n") else message + "\n")
            if output.channel != "echo":
                messages.append((len(parts), _Shown(parts[-1].splitlines(keepends=True), 0.0)))
        self._pin(parts, data, messages, columns, rows)
        self._flush(parts)
        # Fresh from when they are on the screen: the write waits for the terminal.
        now = self._clock()
        for _, shown in messages:
            shown.at = now
        if (self.open_line_ansi, self.progress_ansi) != open_before:
            self._repaint()

    def _pin(
        self,
        parts: list[str],
        data: set[int],
        messages: list[tuple[int, _Shown]],
        columns: int,
        rows: int,
    ) -> None:
        """Count the rows written below each recent message, and pin the ones that received
        data pushed out of view while fresh (not a message longer than the screen by
        itself). Runs before the frame is written, so the prompt drawn with the frame
        already shows what it pins."""
        now = self._clock()
        while self._shown and now - self._shown[0].at >= PIN_SECONDS:
            self._shown.popleft()
        if not self._shown and not messages:
            self._pinned = ()
            return
        part_rows = [screen_rows(part, columns) for part in parts]
        written = sum(part_rows)
        for shown in self._shown:
            shown.rows_after += written
            shown.pushed = shown.pushed or bool(data)
        for index, shown in messages:
            shown.at = now
            shown.rows_after = sum(part_rows[index:])
            shown.pushed = any(i >= index for i in data)
            self._shown.append(shown)
        # Rows data scrolls in: below them the prompt, and what is pinned already.
        visible = max(rows - PROMPT_ROWS - sum(kept.count("\n") for _, kept in self._pinned), 1)
        # The newest first, in a third of the screen at most: of a long answer (/help), its
        # end.
        room = max(rows // 3, 2)
        kept: list[tuple[float, str]] = []
        for shown in reversed(self._shown):
            shown.pinned = shown.pinned or (
                shown.pushed and shown.rows_after + len(shown.lines) > visible
            )
            if not shown.pinned or room <= 0:
                continue
            lines = shown.lines[-room:]
            room -= len(lines)
            kept.append((shown.at + PIN_SECONDS, "".join(lines)))
        self._pinned = tuple(reversed(kept))

    def _add_data(self, text: StyledText, parts: list[str], limit: int) -> None:
        plain, ansi = text.plain, self._format(text)
        if self._line_ended_early and plain:
            self._line_ended_early = False
            if plain.startswith("\n"):
                plain, ansi = plain[1:], ansi[1:]
        line = self.open_line_ansi + ansi
        cut = line.rfind("\n") + 1
        if cut:
            parts.append(line[:cut])
            line = line[cut:]
            self._open_cells = text_width(plain[plain.rfind("\n") + 1 :])
        else:
            self._open_cells += text_width(plain)
        if self._open_cells > limit:
            parts.append(line + "\n")
            line, self._open_cells = "", 0
        self.open_line_ansi = line

    def _flush(self, parts: list[str]) -> None:
        if parts:
            self._out.write("".join(parts))
            self._out.flush()
            parts.clear()

    def _commit_open_line(self) -> list[str]:
        if not self.open_line_ansi:
            return []
        line, self.open_line_ansi, self._open_cells = self.open_line_ansi, "", 0
        self._line_ended_early = True
        return [line + "\n"]

    def close(self) -> None:
        parts = self._commit_open_line()
        if parts:
            self._out.write("".join(parts))
            self._out.flush()


class StreamSink:
    """Batch output: received data to stdout, complete and in order; messages to stderr."""

    def __init__(
        self,
        stdout: TextIO,
        stderr: TextIO,
        *,
        data_format: Callable[[StyledText], str] = plain,
        message_format: Callable[[StyledText], str] = plain,
        quiet: bool = False,
    ) -> None:
        self._stdout = stdout
        self._stderr = stderr
        self._data_format = data_format
        self._message_format = message_format
        self._quiet = quiet

    def write(self, outputs: list[Output]) -> None:
        data: list[str] = []
        for output in outputs:
            if output.channel == "data":
                if output.text is not None:
                    data.append(self._data_format(output.text))
                else:
                    self._write_data(data)
                    self._stdout.flush()
                    self._stdout.buffer.write(output.raw)
            elif output.channel in ("echo", "clear", "progress") or (
                self._quiet and output.channel == "status"
            ):
                continue
            else:
                self._write_data(data)
                assert output.text is not None
                prefix = "" if output.channel == "info" else "netrepl: "
                message = self._message_format(output.text)
                end = "" if output.text.plain.endswith("\n") else "\n"
                self._stderr.write(prefix + message + end)
                self._stderr.flush()
        self._write_data(data)
        self._stdout.flush()

    def _write_data(self, data: list[str]) -> None:
        if data:
            self._stdout.write("".join(data))
            data.clear()

    def close(self) -> None:
        self._stdout.flush()


class Display:
    """Owns the event queue and the thread that turns events into frames on a sink.

    Interactive (`keep_up=True`), the terminal must stay usable whatever arrives: each frame
    renders for a bounded time, and when received data piles up beyond what a person can
    follow, the oldest of it is skipped (counted, and said in one line) so the screen shows
    the newest. In batch mode every byte is shown, in order; a poster then waits while too
    much is queued, which slows the socket instead of growing memory.
    """

    _STOP = object()

    def __init__(
        self,
        renderer: Renderer,
        sink: Sink,
        clock: Callable[[], float] = time.time,
        *,
        keep_up: bool = False,
        live: bool = True,
        on_failure: Callable[[str], None] | None = None,
        frame_bytes: Callable[[bool], int] | None = None,
        batch_queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        """`frame_bytes(hex_view)`: interactive, what one frame may show of received data
        (the screen's size; FRAME_BYTES_HEX or FRAME_BYTES_TEXT bound it either way).
        `batch_queue_limit`: batch, the data waiting to be shown before posters wait."""
        self.renderer = renderer
        self.sink = sink
        self._frame_bytes = frame_bytes
        self._clock = clock
        """What ends an idle frame: the wall clock, or a replayed transcript's own time."""
        self._keep_up = keep_up
        self._queue_limit = KEEP_UP_QUEUE_LIMIT if keep_up else batch_queue_limit
        self._queue: deque[object] = deque()
        self._queued_bytes = 0
        self._changed = threading.Condition()
        self._backlog: deque[object] = deque()  # the display thread's own: drained, not shown
        self._backlog_bytes = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="netrepl-display", daemon=True)
        self.output_failed = False
        self.failure: str | None = None
        """Why the display thread died (a bug): nothing more can be shown, so the session
        must end, with this in one line and a non-zero status."""
        self._on_failure = on_failure
        self._live = live
        """Events come from sockets as they happen (not from a transcript being replayed):
        datagrams never wait for room, and the display gives way while they arrive."""
        self._datagram_at = float("-inf")
        """When the last datagram was posted (monotonic), and how long after it was read."""
        self._datagram_lag = 0.0
        self._rendering_since = 0.0
        """When the display last began to render after waiting (for events or datagrams)."""

    def post(self, event: Event) -> None:
        """Thread-safe. Interactive, it never blocks (data beyond KEEP_UP_QUEUE_LIMIT is
        skipped); in batch mode it waits while more than QUEUE_LIMIT bytes of data are
        waiting to be shown, except for datagrams, which never wait (beyond
        DATAGRAM_QUEUE_LIMIT they are skipped)."""
        if isinstance(event, Received) and event.datagram and self._live:
            self._post_datagram(event)
            return
        size = len(event.data) if isinstance(event, Received) else 0
        with self._changed:
            if self.failure is not None:
                return  # nobody will ever take it: a poster must never wait on a dead display
            if size and self._queued_bytes >= self._queue_limit and self._keep_up:
                # The display is far behind: this data will never be shown anyway.
                self._queue_skipped(event)  # type: ignore[arg-type]
                self._changed.notify()
                return
            if size and not self._keep_up and threading.current_thread() is not self._thread:
                # Batch: all that waits to be shown counts, queued or taken into the backlog
                # (which drains a frame at a time): a slow stdout slows the socket instead.
                self._changed.wait_for(
                    lambda: (
                        self._queued_bytes + self._backlog_bytes < self._queue_limit
                        or self.failure is not None
                    )
                )
            self._queue.append(event)
            self._queued_bytes += size
            self._changed.notify()

    def _post_datagram(self, event: Received) -> None:
        now = time.monotonic()
        with self._changed:
            if self.failure is not None:
                return
            self._datagram_at = now
            self._datagram_lag = time.time() - event.at
            limit = self._queue_limit if self._keep_up else DATAGRAM_QUEUE_LIMIT
            waiting = self._queued_bytes + EVENT_OVERHEAD * len(self._queue)
            if not self._keep_up:
                waiting += self._backlog_bytes  # taken, not yet shown: memory all the same
            if waiting >= limit:
                self._queue_skipped(event)
            else:
                self._queue.append(event)
                self._queued_bytes += len(event.data)
            self._changed.notify()

    def _queue_skipped(self, event: Received) -> None:
        last = self._queue[-1] if self._queue else None
        if isinstance(last, Skipped) and last.conn == event.conn:
            self._queue[-1] = last.plus(len(event.data), event.at)
        else:
            self._queue.append(Skipped(event.conn, len(event.data), 1, event.at))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Show everything posted so far (interactive: what there is time for, and a line
        for the rest), then stop the thread."""
        with self._changed:
            self._stopping = True
            self._queue.append(self._STOP)
            self._changed.notify()
        self._thread.join(timeout)

    def _take(self) -> bool:
        """Move what is queued into the backlog, waiting for something if there is nothing
        to do; False when the wait ended for an idle frame instead."""
        with self._changed:
            if not self._backlog:
                timeout = self.renderer.next_due(self._clock())
                if not self._changed.wait_for(lambda: bool(self._queue), timeout):
                    return False
                self._rendering_since = time.monotonic()
            self._backlog.extend(self._queue)
            self._backlog_bytes += self._queued_bytes
            self._queue.clear()
            self._queued_bytes = 0
            self._changed.notify_all()  # batch posters waiting for room
        return True

    def _run(self) -> None:
        try:
            self._show_until_stopped()
        except BaseException as error:
            with self._changed:
                self.failure = f"the display failed: {error!r}"
                self._queue.clear()
                self._queued_bytes = 0
                self._changed.notify_all()  # batch posters waiting for room
            if self._on_failure is not None:
                self._on_failure(self.failure)

    def _show_until_stopped(self) -> None:
        stopping = False
        while not stopping:
            if not self._take():
                self._write(self._guarded(lambda: self.renderer.tick(self._clock())))
                continue
            if self._datagrams_arriving():
                self._give_way_to_datagrams()
            if self._keep_up:
                # Leaving (/quit in a flood) must not wait for a backlog to be drawn.
                self._skip_oldest(STOP_BACKLOG_LIMIT if self._stopping else BACKLOG_LIMIT)
            outputs: list[Output] = []
            started = time.monotonic()
            shown = 0
            budget = self._frame_budget()
            while self._backlog:
                if self._keep_up and (
                    shown >= budget or time.monotonic() - started > FRAME_SECONDS
                ):
                    break  # the rest waits for the next frame (or is skipped by then)
                if shown >= BATCH_FRAME_BYTES:
                    break  # written now: a frame's text is all alive until it is written
                if self._datagrams_arriving():
                    break  # what is rendered is written; the rest waits (see DATAGRAM_SLICE)
                event = self._backlog.popleft()
                if event is self._STOP:
                    stopping = True
                    break
                if isinstance(event, Received):
                    if self._keep_up and not event.datagram and len(event.data) > budget - shown:
                        # Show what fits in this frame; the rest of the read waits its turn.
                        fits = max(budget - shown, 1)
                        self._backlog.appendleft(replace(event, data=event.data[fits:]))
                        event = replace(event, data=event.data[:fits])
                    self._backlog_bytes -= len(event.data)
                    shown += len(event.data)
                outputs += self._guarded(lambda e=event: self.renderer.render(e))  # type: ignore[misc]
            outputs += self._guarded(lambda: self.renderer.tick(self._clock(), idle=False))
            self._write(outputs)
            if not self._backlog and shown < SMALL_BATCH and not stopping and not self._stopping:
                time.sleep(CAUGHT_UP_PAUSE)
            if self._keep_up and self._backlog and not self._stopping:
                # Frames at a human pace leave the prompt and the sockets their share of the
                # interpreter: keys echo while a flood is shown.
                time.sleep(max(0.0, FRAME_INTERVAL - (time.monotonic() - started)))
        self._write(self._guarded(self.renderer.finish))
        self._write(None)

    def _datagrams_arriving(self) -> bool:
        """Datagrams came while this thread has rendered for a slice already."""
        now = time.monotonic()
        since = self._rendering_since
        return since < self._datagram_at > now - DATAGRAM_RECENT and now - since >= DATAGRAM_SLICE

    def _give_way_to_datagrams(self) -> None:
        """Sleep (the I/O thread has the interpreter) until it has caught up with the
        datagrams, or DATAGRAM_WAIT_MAX passes."""
        began = time.monotonic()
        while not self._stopping:
            time.sleep(DATAGRAM_WAIT_STEP)  # pacing: polling one number is all it does
            waited = time.monotonic() - began
            if waited >= DATAGRAM_WAIT_MAX or (
                waited >= DATAGRAM_RECENT and self._datagram_lag < DATAGRAM_CAUGHT_UP_LAG
            ):
                break
        self._rendering_since = time.monotonic()

    def _frame_budget(self) -> int:
        """Received bytes the next frame may show."""
        hex_view = self.renderer.view.mode == "hex"
        budget = FRAME_BYTES_HEX if hex_view else FRAME_BYTES_TEXT
        if self._frame_bytes is not None:
            budget = min(budget, self._frame_bytes(hex_view))
        return budget

    def _skip_oldest(self, limit: int) -> None:
        """Turn the oldest received data of the backlog into counts until `limit` is left."""
        if self._backlog_bytes <= limit:
            return
        kept: deque[object] = deque()
        excess = self._backlog_bytes - limit
        for event in self._backlog:
            if excess > 0 and isinstance(event, Received):
                cut = len(event.data) if event.datagram else min(excess, len(event.data))
                excess -= cut
                self._backlog_bytes -= cut
                last = kept[-1] if kept else None
                if isinstance(last, Skipped) and last.conn == event.conn:
                    kept[-1] = last.plus(cut, event.at)
                else:
                    kept.append(Skipped(event.conn, cut, 1, event.at))
                if cut < len(event.data):  # the newest bytes of a long read are still shown
                    kept.append(replace(event, data=event.data[cut:]))
            else:
                kept.append(event)
        self._backlog = kept

    @staticmethod
    def _guarded(render: Callable[[], list[Output]]) -> list[Output]:
        try:
            return render()
        except Exception as error:  # a rendering bug must not silence the display
            return [Output("error", StyledText(f"display error: {error!r}"))]

    def _write(self, outputs: list[Output] | None) -> None:
        if not self._keep_up:
            with self._changed:
                self._changed.notify_all()  # the backlog shrank: batch posters have room
        if self.output_failed:
            return  # stdout is gone (a closed pipe): keep draining, stop writing
        try:
            if outputs is None:
                self.sink.close()
            elif outputs:
                self.sink.write(outputs)
        except (BrokenPipeError, ValueError):
            self.output_failed = True
