"""Framing: where one received frame ends and the next begins, as GUI debug tools split packets.

Pure: bytes and their arrival times in, frames out. `raw` keeps each read as a frame, `idle`
ends a frame after a silence (the caller asks with `due(now)`), `line` after a newline, `len`
every N bytes, `delim` after a byte sequence. Nothing here reads a clock or a socket.
"""

from __future__ import annotations

from typing import Literal

from netrepl.errors import UsageError
from netrepl.payload import parse_hex
from netrepl.quantity import Whole
from netrepl.records import record

FrameMode = Literal["raw", "idle", "line", "len", "delim"]

FRAME_MODES: tuple[FrameMode, ...] = ("raw", "idle", "line", "len", "delim")

# A frame that never ends (no delimiter, no silence) is cut here so memory stays bounded.
MAX_FRAME = 1024 * 1024
IDLE_MS = Whole(1, 60_000, "milliseconds")
"""`idle MS`: a silence of up to a minute ends a frame; longer would hide data for longer."""
FRAME_LENGTH = Whole(1, MAX_FRAME, "bytes")


@record(unsafe_hash=True)
class Framing:
    """How a received stream is cut into frames (/frame): the mode and its one setting."""

    mode: FrameMode = "raw"
    idle_ms: int = 0
    length: int = 0
    delimiter: bytes = b""

    @property
    def ends_at_send(self) -> bool:
        """A send ends the frame being received, so blocks stay in the order of the wire:
        what came before the send is one block, the answer another. Not for `len`: fixed
        records cut short would shift every record after them."""
        return self.mode != "len"

    @property
    def label(self) -> str:
        """`raw`, `idle 20 ms`, `line`, `len 8`, `delim 0d 0a`: as /frame takes it."""
        if self.mode == "idle":
            return f"idle {self.idle_ms} ms"
        if self.mode == "len":
            return f"len {self.length}"
        if self.mode == "delim":
            return f"delim {self.delimiter.hex(' ')}"
        return self.mode


RAW = Framing()
"""Each read is a frame: the default."""


@record(slots=True, unsafe_hash=True)
class Frame:
    """One frame of a received stream: its bytes and when it began."""

    data: bytes
    at: float
    """When its first byte arrived."""


class Framer:
    """Cuts one connection's received stream into frames."""

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self._pending = bytearray()
        self._started = 0.0  # arrival of the pending frame's first byte
        self._last = 0.0  # arrival of the last byte

    @property
    def pending(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes, at: float) -> list[Frame]:
        """Frames completed by `data`, which arrived at `at`."""
        framing = self.framing
        if framing.mode == "raw":
            return [Frame(data, at)] if data else []
        frames: list[Frame] = []
        if framing.mode == "idle" and self._pending and at - self._last >= framing.idle_ms / 1000:
            frames.append(self._take(len(self._pending)))
        if not data:
            return frames
        if not self._pending:
            self._started = at
        self._last = at
        self._pending += data
        while (end := self._frame_end()) is not None:
            frames.append(self._take(end))
            if self._pending:
                self._started = at
        return frames

    def due(self, now: float) -> float | None:
        """For idle framing: how long until the pending frame ends if nothing more comes."""
        if self.framing.mode != "idle" or not self._pending:
            return None
        return max(0.0, self._last + self.framing.idle_ms / 1000 - now)

    def flush(self) -> list[Frame]:
        """The pending bytes as a last frame (the stream ended, or the idle time passed)."""
        return [self._take(len(self._pending))] if self._pending else []

    def _frame_end(self) -> int | None:
        framing, pending = self.framing, self._pending
        if framing.mode == "line":
            end = pending.find(b"\n")
            found = None if end < 0 else end + 1
        elif framing.mode == "len":
            found = framing.length if len(pending) >= framing.length else None
        elif framing.mode == "delim":
            end = pending.find(framing.delimiter)
            found = None if end < 0 else end + len(framing.delimiter)
        else:
            found = None
        if (found is None and len(pending) >= MAX_FRAME) or (found or 0) > MAX_FRAME:
            return MAX_FRAME
        return found

    def _take(self, size: int) -> Frame:
        frame = Frame(bytes(self._pending[:size]), self._started)
        del self._pending[:size]
        return frame


def parse_framing(words: list[str]) -> Framing:
    """`/frame` arguments -> Framing; ValueError with the reason."""
    if not words:
        raise ValueError("give a mode: " + ", ".join(FRAME_MODES))
    mode, rest = words[0], words[1:]
    if mode in ("raw", "line"):
        if rest:
            raise ValueError(f"{mode} takes nothing more")
        return Framing(mode)  # type: ignore[arg-type]
    if mode in ("idle", "len"):
        quantity = IDLE_MS if mode == "idle" else FRAME_LENGTH
        if len(rest) != 1:
            what = "MS (milliseconds of silence)" if mode == "idle" else "N (bytes per frame)"
            raise ValueError(f"{mode} takes one whole number {what}, {quantity.range}")
        try:
            number = quantity.parse(rest[0], mode)
        except UsageError as error:
            raise ValueError(str(error)) from None
        return Framing("idle", idle_ms=number) if mode == "idle" else Framing("len", length=number)
    if mode == "delim":
        if not rest:
            raise ValueError("delim takes the delimiter in hex, like 0d 0a")
        try:
            return Framing("delim", delimiter=parse_hex(" ".join(rest)))
        except UsageError as error:
            raise ValueError(f"delim takes the delimiter in hex: {error}") from None
    raise ValueError(f"unknown frame mode {mode!r} (choose from {', '.join(FRAME_MODES)})")
