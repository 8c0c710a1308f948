"""The one writer to the terminal: a thread that drains events, renders, and writes frames.

Everything the user sees passes through here in event order: received data, echoes, status
and errors. Transport threads only post events, so they never wait on the terminal. Rendering
happens in batches (one write per frame) because many small writes make the prompt flicker.
Nothing here imports prompt_toolkit; the interactive sink gets its output stream and a
repaint callback from the REPL.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from rich.console import Console
from rich.text import Text
from rich.theme import Theme

from netrepl.events import Event
from netrepl.render import STYLES, Output, Renderer

# A received line longer than this with no newline is shown anyway, so one endless line can
# neither grow the prompt area without bound nor hide data.
OPEN_LINE_LIMIT = 4096
# Events rendered per frame at most: the rest wait for the next frame, keeping frames short.
FRAME_EVENTS = 4096


class Sink(Protocol):
    def write(self, outputs: list[Output]) -> None: ...

    def close(self) -> None: ...


class AnsiFormatter:
    """Styled `Text` -> a string with SGR codes for a terminal (or none when colour is off)."""

    def __init__(self, color_system: str | None = "auto") -> None:
        self._console = Console(
            file=io.StringIO(),
            force_terminal=True,
            color_system=color_system,  # type: ignore[arg-type]
            theme=Theme(STYLES),
            soft_wrap=True,  # the terminal wraps; rich must not insert newlines of its own
            highlight=False,
            markup=False,
            emoji=False,
        )

    def __call__(self, text: Text) -> str:
        with self._console.capture() as capture:
            self._console.print(text, end="")
        return capture.get()


def plain(text: Text) -> str:
    return text.plain


class TerminalSink:
    """Interactive output: complete lines go above the prompt; an unfinished received line
    (a device's `login: `) is kept in `open_line_ansi` for the prompt to show until it ends."""

    def __init__(
        self,
        out: TextIO,
        formatter: Callable[[Text], str],
        repaint: Callable[[], None],
        clear: Callable[[], None] | None = None,
    ) -> None:
        self._out = out
        self._format = formatter
        self._repaint = repaint
        self._clear = clear
        self._open_line = Text(end="")
        self.open_line_ansi = ""
        self.progress_ansi = ""
        """A long send's progress bar, redrawn in place above the prompt."""
        # A message ended an unfinished received line early; the newline that would have
        # ended it is then not shown again as an empty line.
        self._line_ended_early = False

    def write(self, outputs: list[Output]) -> None:
        parts: list[str] = []
        open_before = self.open_line_ansi, self.progress_ansi
        for output in outputs:
            if output.channel == "progress":
                assert output.text is not None
                self.progress_ansi = self._format(output.text) if output.text else ""
                continue
            if output.channel == "clear":
                self._flush(parts)
                self._open_line = Text(end="")
                if self._clear is not None:
                    self._clear()
                continue
            assert output.text is not None, "the raw view exists in batch mode only"
            if output.channel == "data":
                text = output.text
                if self._line_ended_early and text.plain:
                    self._line_ended_early = False
                    if text.plain.startswith("\n"):
                        text = text[1:]
                line = self._open_line + text
                cut = line.plain.rfind("\n") + 1
                if cut:
                    parts.append(self._format(line[:cut]))
                    line = line[cut:]
                if len(line) > OPEN_LINE_LIMIT:
                    parts.append(self._format(line) + "\n")
                    line = Text(end="")
                self._open_line = line
            else:
                parts.extend(self._commit_open_line())
                message = self._format(output.text)
                parts.append(message if output.text.plain.endswith("\n") else message + "\n")
        self._flush(parts)
        self.open_line_ansi = self._format(self._open_line) if self._open_line else ""
        if (self.open_line_ansi, self.progress_ansi) != open_before:
            self._repaint()

    def _flush(self, parts: list[str]) -> None:
        if parts:
            self._out.write("".join(parts))
            self._out.flush()
            parts.clear()

    def _commit_open_line(self) -> list[str]:
        if not self._open_line:
            return []
        line, self._open_line = self._open_line, Text(end="")
        self._line_ended_early = True
        return [self._format(line) + "\n"]

    def close(self) -> None:
        parts = self._commit_open_line()
        self.open_line_ansi = ""
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
        data_format: Callable[[Text], str] = plain,
        message_format: Callable[[Text], str] = plain,
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
    """Owns the event queue and the thread that turns events into frames on a sink."""

    _STOP = object()

    def __init__(
        self, renderer: Renderer, sink: Sink, clock: Callable[[], float] = time.time
    ) -> None:
        self.renderer = renderer
        self.sink = sink
        self._clock = clock
        """What ends an idle frame: the wall clock, or a replayed transcript's own time."""
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="netrepl-display", daemon=True)
        self.output_failed = False

    def post(self, event: Event) -> None:
        """Thread-safe; never blocks."""
        self._queue.put(event)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Show everything posted so far, then stop the thread."""
        self._queue.put(self._STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                # Wake for an idle frame's end even when nothing else arrives.
                batch = [self._queue.get(timeout=self.renderer.next_due(self._clock()))]
            except queue.Empty:
                self._write(self._guarded(lambda: self.renderer.tick(self._clock())))
                continue
            while len(batch) < FRAME_EVENTS:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            outputs: list[Output] = []
            for event in batch:
                if event is self._STOP:
                    stopping = True
                    break
                outputs += self._guarded(lambda e=event: self.renderer.render(e))  # type: ignore[misc]
            outputs += self._guarded(lambda: self.renderer.tick(self._clock()))
            self._write(outputs)
        self._write(None)

    @staticmethod
    def _guarded(render: Callable[[], list[Output]]) -> list[Output]:
        try:
            return render()
        except Exception as error:  # a rendering bug must not silence the display
            return [Output("error", Text(f"display error: {error!r}", end=""))]

    def _write(self, outputs: list[Output] | None) -> None:
        if self.output_failed:
            return  # stdout is gone (a closed pipe): keep draining, stop writing
        try:
            if outputs is None:
                self.sink.close()
            elif outputs:
                self.sink.write(outputs)
        except (BrokenPipeError, ValueError):
            self.output_failed = True
