"""Events -> styled text (rich `Text`) in the current view, keeping per-connection stream state.

Pure: no terminal, no socket, no thread. Only the display calls it, from its one thread, in
event order, so a view switch applies exactly to the bytes that arrive after it. Every string
that came from outside (peer bytes, typed lines, addresses) passes through `codec.escape_text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Span, Text

from netrepl.codec import SafeText, TextDecoder, escape_text
from netrepl.events import (
    Closed,
    Connected,
    Event,
    Noticed,
    Received,
    Sent,
    Submitted,
    ViewChanged,
)
from netrepl.hexdump import format_hexdump
from netrepl.view import View

Channel = Literal["data", "echo", "status", "info", "error"]
"""`data` is the received stream (stdout in batch mode); the rest are messages for the user."""

STYLES: dict[str, str] = {
    "netrepl.control": "bold magenta",
    "netrepl.invalid": "bold red",
    "netrepl.offset": "dim",
    "netrepl.sent": "cyan",
    "netrepl.prompt": "bold",
    "netrepl.echo": "",
    "netrepl.status": "dim",
    "netrepl.info": "",
    "netrepl.error": "bold red",
}


@dataclass(frozen=True, slots=True)
class Output:
    """One piece for the display: styled text, or for the raw view the bytes themselves."""

    channel: Channel
    text: Text | None = None
    raw: bytes = b""


def styled(safe: SafeText, style: str = "") -> Text:
    """Styled `Text` for already escaped text: escapes get the style of their kind."""
    spans = [Span(start, end, f"netrepl.{kind}") for start, end, kind in safe.escapes]
    return Text(safe.text, style=style, spans=spans, end="")


def safe_text(text: str, style: str = "") -> Text:
    """`text` with every unsafe character escaped and the escapes styled."""
    return styled(escape_text(text), style)


def hexdump_text(data: bytes, offset: int, style: str = "") -> Text:
    """A block of `hexdump -C` lines, each ending in a newline, with the offsets dimmed."""
    lines = format_hexdump(data, offset)
    spans = []
    position = 0
    for line in lines:
        spans.append(Span(position, position + line.index(" "), "netrepl.offset"))
        position += len(line) + 1
    return Text("\n".join(lines) + "\n", style=style, spans=spans, end="")


def count(number: int, noun: str) -> str:
    """`1 byte`, `2,048 bytes`."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


class _ReceivedStream:
    """What one connection's received bytes look like so far, in the current view."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.offset = 0  # bytes of this stream fed so far
        self.decoder = TextDecoder(view.encoding) if view.mode == "text" else None
        self.mid_line = False  # the last text shown did not end with a newline

    def feed(self, data: bytes, final: bool = False) -> list[Output]:
        start = self.offset - (len(self.decoder.pending()) if self.decoder else 0)
        self.offset += len(data)
        if self.decoder is not None:
            return self._text(self.decoder.decode(data, final))
        return self._bytes(data, start)

    def _text(self, decoded: SafeText) -> list[Output]:
        text = styled(decoded)
        if not text.plain:
            return []
        self.mid_line = not text.plain.endswith("\n")
        return [Output("data", text)]

    def _bytes(self, data: bytes, start: int) -> list[Output]:
        if not data:
            return []
        if self.view.mode == "raw":
            return [Output("data", raw=data)]
        block = hexdump_text(data, start)
        if self.mid_line:
            # The hexdump must start at column 0 even after a text line left open.
            block = Text("\n", end="") + block
            self.mid_line = False
        return [Output("data", block)]

    def switch(self, view: View) -> list[Output]:
        """Change view; bytes held back for an incomplete character carry over."""
        old = self.decoder
        pending = old.pending() if old else b""
        self.view = view
        if view.mode == "text":
            self.decoder = TextDecoder(view.encoding, after_cr=old.after_cr if old else False)
            return self._text(self.decoder.decode(pending))
        self.decoder = None
        return self._bytes(pending, self.offset - len(pending))

    def finish(self) -> list[Output]:
        """Flush what is held back when the stream ends, and end an open text line."""
        outputs = self.feed(b"", final=True)
        if self.mid_line and self.view.mode == "text":
            outputs.append(Output("data", Text("\n", end="")))
            self.mid_line = False
        return outputs


class Renderer:
    """Turns events into outputs. One instance per session, used by the display thread only."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._received: dict[int, _ReceivedStream] = {}
        self._sent_offsets: dict[int, int] = {}

    def render(self, event: Event) -> list[Output]:
        match event:
            case Received(conn, data):
                return self._stream(conn).feed(data)
            case Sent(conn, data, as_hex):
                offset = self._sent_offsets.get(conn, 0)
                self._sent_offsets[conn] = offset + len(data)
                if not as_hex:
                    return []
                return [Output("echo", hexdump_text(data, offset, "netrepl.sent"))]
            case Connected(conn, peer, local):
                self._received[conn] = _ReceivedStream(self.view)
                self._sent_offsets[conn] = 0
                return [self._notice(f"connected to {peer} from {local}", "status")]
            case Closed(conn, reason, received, sent, failed):
                stream = self._received.pop(conn, None)
                self._sent_offsets.pop(conn, None)
                outputs = stream.finish() if stream else []
                summary = f"{reason} ({count(received, 'byte')} received, {sent:,} sent)"
                outputs.append(self._notice(summary, "error" if failed else "status"))
                return outputs
            case Submitted(prompt, line):
                text = Text(prompt, style="netrepl.prompt", end="")
                text.append_text(safe_text(line, "netrepl.echo"))
                return [Output("echo", text)]
            case Noticed(text, level):
                return [self._notice(text, level)]
            case ViewChanged(view):
                self.view = view
                return [out for stream in self._received.values() for out in stream.switch(view)]
        raise TypeError(f"not an event: {event!r}")

    def _stream(self, conn: int) -> _ReceivedStream:
        stream = self._received.get(conn)
        if stream is None:  # data for a connection announced before this renderer existed
            stream = self._received[conn] = _ReceivedStream(self.view)
        return stream

    @staticmethod
    def _notice(text: str, level: Channel) -> Output:
        return Output(level, safe_text(text, f"netrepl.{level}"))
