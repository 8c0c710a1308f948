"""What a relay does to a frame on its way through: forward it, hold it, drop it, rewrite it.

Pure, like h11's state machine: the relay (transport/relay.py) tells an `Interceptor` what
arrived on which side of which flow, and when a side ended its sending, and gets back actions
to carry out (`Forward`, `Tell`, `PauseReading`, `PassEnd`). It never touches a socket, a
clock or the terminal, so every rule is tested with bytes alone.

While no rule concerns a side, its data goes straight through unframed (`busy` is False) and
costs nothing here. Once one does, that side's data is cut into frames by the current /frame
mode, so a pattern split across reads is still found and a held request is one frame. Order
is never changed: while a direction has frames held, whatever follows waits behind them, and
so does its end of stream.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from netrepl.errors import UsageError
from netrepl.events import SIDES, Side
from netrepl.framing import RAW, Framer, Framing
from netrepl.records import field, record
from netrepl.traffic import count

# Held bytes per direction of a flow before that side's reads pause (TCP then holds the
# rest in the sender's buffers): a held flood cannot take netrepl's memory.
HELD_LIMIT = 16 * 1024 * 1024
# How much of a rewritten frame its line shows.
PREVIEW = 48

Replacement = Callable[[re.Match[bytes], bytes], bytes]
"""A rewrite rule's replacement: the bytes for one match, given the rewritten frame so far
(its checksum placeholders cover those). Raises UsageError when it cannot be built."""


def other_side(side: Side) -> Side:
    return "upstream" if side == "client" else "client"


def direction_name(flow: int, side: Side) -> str:
    """`#1 client → upstream`: the data `side` of flow 1 sends."""
    return f"#{flow} {side} → {other_side(side)}"


@record(slots=True, unsafe_hash=True)
class Forward:
    """Send `data`, which `side` of `flow` sent, on to the other side."""

    flow: int
    side: Side
    data: bytes


@record(slots=True, unsafe_hash=True)
class Tell:
    """A line for the user."""

    text: str
    level: Literal["status", "error"] = "status"


@record(slots=True, unsafe_hash=True)
class PauseReading:
    """Stop (or, `paused` False, resume) reading `side` of `flow`: too much of it is held."""

    flow: int
    side: Side
    paused: bool


@record(slots=True, unsafe_hash=True)
class PassEnd:
    """`side` of `flow` ended its sending and nothing of it is held: half-close the other."""

    flow: int
    side: Side


Action = Forward | Tell | PauseReading | PassEnd


@record(unsafe_hash=True)
class Rewrite:
    """`/rewrite SIDE PATTERN -> REPLACEMENT`: change what `side` sends, frame by frame."""

    number: int
    side: Side
    pattern: re.Pattern[bytes]
    replacement: Replacement
    shown: str
    """The rule as typed after the side: `PATTERN -> REPLACEMENT`."""
    hex: bool = False

    def describe(self) -> str:
        return f"rule {self.number}: /rewrite{'-hex' if self.hex else ''} {self.side} {self.shown}"

    def apply(self, frame: bytes) -> bytes:
        """The frame with every match replaced, left to right. Raises UsageError."""
        out = bytearray()
        last = 0
        for match in self.pattern.finditer(frame):
            out += frame[last : match.start()]
            out += self.replacement(match, bytes(out))
            last = match.end()
        if last == 0 and not out:
            return frame  # no match: the same object, so the caller sees nothing changed
        out += frame[last:]
        return bytes(out)


@record(slots=True, unsafe_hash=True)
class HeldFrame:
    """A frame a relay holds (/hold) until /forward or /drop."""

    number: int
    flow: int
    side: Side
    data: bytes


@record
class _Direction:
    """What one side of one flow has in flight here."""

    framer: Framer
    held: int = 0
    """Bytes of it held."""
    ended: bool = False
    """It sent its end of stream, not yet passed on (frames of it are still held)."""
    paused: bool = False


@record
class Interceptor:
    """A relay's holds, held frames and rewrite rules, for every flow. One thread only (the
    relay's loop): commands reach it through the loop."""

    framing: Framing = RAW
    holding: frozenset[Side] = frozenset()
    rewrites: list[Rewrite] = field(default_factory=list)
    held: dict[int, HeldFrame] = field(default_factory=dict)
    """Held frames by number, in the order they arrived."""
    _directions: dict[tuple[int, Side], _Direction] = field(default_factory=dict)
    _frame_numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _rule_numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _concerned: frozenset[Side] = frozenset()
    _held_by_flow: dict[int, int] = field(default_factory=dict)

    # ---- the data path

    def held_of(self, flow: int) -> int:
        """Bytes of `flow` held, for /flows: any thread may ask (one dict lookup)."""
        return self._held_by_flow.get(flow, 0)

    def busy(self, flow: int, side: Side) -> bool:
        """Whether data of this direction must pass through `arrived`; if not, the relay
        forwards it at once."""
        return side in self._concerned or (flow, side) in self._directions

    def arrived(self, flow: int, side: Side, data: bytes, now: float) -> list[Action]:
        """`side` of `flow` sent `data` at `now` (any clock, the same for `due` and `tick`)."""
        direction = self._direction(flow, side)
        actions: list[Action] = []
        for frame in direction.framer.feed(data, now):
            actions += self._frame(flow, side, direction, frame.data)
        return actions + self._settle(flow, side)

    def ended(self, flow: int, side: Side) -> list[Action]:
        """`side` of `flow` sent its end of stream: its last frame goes first, and the end
        is passed on once nothing of that side is held."""
        direction = self._directions.get((flow, side))
        if direction is None:
            return [PassEnd(flow, side)]
        actions: list[Action] = []
        for frame in direction.framer.flush():
            actions += self._frame(flow, side, direction, frame.data)
        direction.ended = True
        return actions + self._settle(flow, side)

    def forget(self, flow: int) -> list[Action]:
        """The flow is over: what it had held is lost, and said so."""
        lost = [frame for frame in self.held.values() if frame.flow == flow]
        for frame in lost:
            del self.held[frame.number]
        for side in SIDES:
            self._directions.pop((flow, side), None)
        self._held_by_flow.pop(flow, None)
        if not lost:
            return []
        size = sum(len(frame.data) for frame in lost)
        text = f"#{flow} ended with {_frames(lost)} held ({count(size, 'byte')}): never forwarded"
        return [Tell(text, "error")]

    def due(self, now: float) -> float | None:
        """Seconds until `tick` ends an idle frame by itself; None when nothing waits."""
        waits = [w for d in self._directions.values() if (w := d.framer.due(now)) is not None]
        return min(waits) if waits else None

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for (flow, side), direction in list(self._directions.items()):
            if direction.framer.due(now) == 0:
                for frame in direction.framer.flush():
                    actions += self._frame(flow, side, direction, frame.data)
                actions += self._settle(flow, side)
        return actions

    # ---- what the user changes

    def set_framing(self, framing: Framing) -> list[Action]:
        """A new /frame mode: what is framed so far under the old one goes on first."""
        actions: list[Action] = []
        for (flow, side), direction in list(self._directions.items()):
            for frame in direction.framer.flush():
                actions += self._frame(flow, side, direction, frame.data)
            direction.framer = Framer(framing)
            actions += self._settle(flow, side)
        self.framing = framing
        return actions

    def hold(self, sides: Iterable[Side]) -> list[Action]:
        """Hold exactly these sides from now on; a side no longer held lets its frames go."""
        self.holding = frozenset(sides)
        self._recount()
        released = [f for f in self.held.values() if f.side not in self.holding]
        return self._release(released, forward=True)

    def forward(self, which: str | None) -> list[Action]:
        """`/forward N`: frame N and those held before it in its direction; `all`; none
        given: the oldest held frame."""
        chosen = self._chosen(which, "/forward")
        if which not in (None, "all"):
            last = chosen[0]
            chosen = [
                f
                for f in self.held.values()
                if f.flow == last.flow and f.side == last.side and f.number <= last.number
            ]
        return self._release(chosen, forward=True)

    def drop(self, which: str | None) -> list[Action]:
        """`/drop N`: frame N only (what follows it keeps its order); `all`; none: the oldest."""
        return self._release(self._chosen(which, "/drop"), forward=False)

    def add_rewrite(
        self,
        side: Side,
        pattern: re.Pattern[bytes],
        replacement: Replacement,
        shown: str,
        hex: bool,
    ) -> Rewrite:
        rule = Rewrite(next(self._rule_numbers), side, pattern, replacement, shown, hex)
        self.rewrites.append(rule)
        self._recount()
        return rule

    def remove_rewrites(self, which: str) -> list[Rewrite]:
        """`/unrewrite N` or `all`: the rules removed. Raises UsageError."""
        if which == "all":
            removed, self.rewrites = self.rewrites, []
        else:
            number = int(which) if which.isascii() and which.isdigit() else None
            removed = [rule for rule in self.rewrites if rule.number == number]
            if not removed:
                known = ", ".join(str(r.number) for r in self.rewrites) or "none"
                raise UsageError(f"/unrewrite: no rule {which!r} (rules: {known})")
            self.rewrites = [rule for rule in self.rewrites if rule.number != number]
        self._recount()
        return removed

    # ---- inside

    def _direction(self, flow: int, side: Side) -> _Direction:
        direction = self._directions.get((flow, side))
        if direction is None:
            direction = self._directions[flow, side] = _Direction(Framer(self.framing))
        return direction

    def _recount(self) -> None:
        self._concerned = self.holding | {rule.side for rule in self.rewrites}

    def _frame(self, flow: int, side: Side, direction: _Direction, data: bytes) -> list[Action]:
        actions: list[Action] = []
        for rule in self.rewrites:
            if rule.side != side:
                continue
            try:
                changed = rule.apply(data)
            except UsageError as error:
                actions.append(
                    Tell(f"{direction_name(flow, side)}: rule {rule.number}: {error}", "error")
                )
                continue
            if changed is not data:
                where = f"{direction_name(flow, side)}: rule {rule.number}"
                if changed:
                    sizes = f"{len(data):,} → {count(len(changed), 'byte')}"
                    text = f"{where} rewrote a frame ({sizes}): {_preview(changed)}"
                else:
                    text = f"{where} deleted a frame ({count(len(data), 'byte')})"
                actions.append(Tell(text))
                data = changed
        if side in self.holding or direction.held:
            number = next(self._frame_numbers)
            self.held[number] = HeldFrame(number, flow, side, data)
            direction.held += len(data)
            self._held_by_flow[flow] = self._held_by_flow.get(flow, 0) + len(data)
            text = (
                f"held {number}: {direction_name(flow, side)}, {count(len(data), 'byte')}"
                f" (/forward {number}, /drop {number})"
            )
            actions.append(Tell(text))
            if direction.held >= HELD_LIMIT and not direction.paused:
                direction.paused = True
                actions.append(PauseReading(flow, side, True))
                actions.append(
                    Tell(
                        f"{direction_name(flow, side)}: {count(direction.held, 'byte')} held;"
                        f" not reading the {side} until /forward or /drop",
                        "error",
                    )
                )
            return actions
        if data:
            actions.append(Forward(flow, side, data))
        return actions

    def _settle(self, flow: int, side: Side) -> list[Action]:
        """Pass an end of stream on once nothing is held; forget an idle direction that no
        rule concerns, so its data takes the fast path again."""
        direction = self._directions.get((flow, side))
        if direction is None or direction.held:
            return []
        actions: list[Action] = []
        if direction.paused:
            direction.paused = False
            actions.append(PauseReading(flow, side, False))
        if direction.ended:
            actions.append(PassEnd(flow, side))
            direction.ended = False
        if side not in self._concerned and not direction.framer.pending:
            del self._directions[flow, side]
        return actions

    def _chosen(self, which: str | None, name: str) -> list[HeldFrame]:
        if not self.held:
            raise UsageError(f"{name}: nothing is held (/hold client|upstream|both holds)")
        if which is None:
            return [next(iter(self.held.values()))]
        if which == "all":
            return list(self.held.values())
        number = int(which.removeprefix("#")) if which.removeprefix("#").isdigit() else None
        if number is None or number not in self.held:
            numbers = ", ".join(str(n) for n in self.held)
            raise UsageError(f"{name}: no held frame {which!r} (held: {numbers})")
        return [self.held[number]]

    def _release(self, frames: list[HeldFrame], *, forward: bool) -> list[Action]:
        actions: list[Action] = []
        for frame in frames:
            del self.held[frame.number]
            self._held_by_flow[frame.flow] -= len(frame.data)
            direction = self._directions.get((frame.flow, frame.side))
            if direction is not None:
                direction.held -= len(frame.data)
            if forward:
                actions.append(Forward(frame.flow, frame.side, frame.data))
        if frames:
            size = sum(len(frame.data) for frame in frames)
            if forward:
                text = f"forwarded {_frames(frames)} ({count(size, 'byte')})"
            else:
                flows = sorted({(f.flow, other_side(f.side)) for f in frames})
                never = ", ".join(f"#{flow} {side}" for flow, side in flows)
                text = f"dropped {_frames(frames)} ({count(size, 'byte')}): never seen by {never}"
            actions.append(Tell(text))
        for flow, side in dict.fromkeys((f.flow, f.side) for f in frames):
            actions += self._settle(flow, side)
        return actions


class RelayControls(Protocol):
    """What the relay commands (/hold, /forward, /drop, /rewrite) ask of a relay, from the
    session's thread; each change happens on the relay's loop, between reads."""

    def hold(self, sides: tuple[Side, ...]) -> None: ...

    def forward_held(self, which: str | None) -> None: ...

    def drop_held(self, which: str | None) -> None: ...

    def add_rewrite(
        self,
        side: Side,
        pattern: re.Pattern[bytes],
        replacement: Replacement,
        shown: str,
        hex: bool,
    ) -> Rewrite: ...

    def remove_rewrites(self, which: str) -> list[Rewrite]: ...

    def rewrites(self) -> list[Rewrite]: ...

    def holding(self) -> tuple[frozenset[Side], list[HeldFrame]]: ...


def _preview(data: bytes) -> str:
    """`b'GET /new'`: what a rewrite made, escaped, cut after PREVIEW bytes."""
    return repr(data[:PREVIEW]) + ("..." if len(data) > PREVIEW else "")


def _frames(frames: list[HeldFrame]) -> str:
    numbers = [frame.number for frame in frames]
    if len(numbers) == 1:
        return f"frame {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"frames {numbers[0]}-{numbers[-1]}"
    return "frames " + ", ".join(str(n) for n in numbers)
