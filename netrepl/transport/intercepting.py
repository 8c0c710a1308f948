"""What every relay (stream or datagram) does with its `Interceptor`: the relay commands'
controls, run on the relay's loop between reads, and the interceptor's actions carried out
there. A relay mixes `Intercepting` in and says how to forward, pause and end one side of one
of its flows; the rules themselves are `netrepl.interception`'s.
"""

from __future__ import annotations

import re
import time
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from netrepl.events import Event, Noticed, Side
from netrepl.interception import (
    Action,
    Forward,
    HeldFrame,
    Interceptor,
    PassEnd,
    PauseReading,
    Replacement,
    Rewrite,
    Tell,
)

if TYPE_CHECKING:
    from netrepl.transport.loop import IOLoop


class Intercepting:
    """Holds and rewrites for a relay. `interceptor` is used on the loop thread only: the
    controls below (any thread) reach it through `loop.call`, and wait for it."""

    loop: IOLoop
    interceptor: Interceptor
    _tick_due: float | None
    post: Callable[[Event], None]
    """The transport's own (Transport.post)."""

    def _start_intercepting(self) -> None:
        self.interceptor = Interceptor()
        self._tick_due = None

    # ---- what each relay says (loop thread)

    @abstractmethod
    def _forward_frame(self, flow: int, side: Side, data: bytes) -> None:
        """Send `data`, which `side` of `flow` sent, on to the other side (if it is there)."""

    def _pause_side(self, flow: int, side: Side, paused: bool) -> None:
        """Stop (or resume) reading `side` of `flow`: too much of it is held."""
        return  # a datagram relay reads on: what the bound refuses is dropped by the rules

    def _pass_end(self, flow: int, side: Side) -> None:
        """`side` of `flow` ended its sending: half-close the other side."""
        return  # datagrams have no end of stream

    # ---- the controls (any thread)

    def relay_controls(self) -> Intercepting:
        return self

    def hold(self, sides: tuple[Side, ...]) -> None:
        self._intercept(lambda: self.interceptor.hold(sides))

    def forward_held(self, which: str | None) -> None:
        self._intercept(lambda: self.interceptor.forward(which))

    def drop_held(self, which: str | None) -> None:
        self._intercept(lambda: self.interceptor.drop(which))

    def add_rewrite(
        self,
        side: Side,
        pattern: re.Pattern[bytes],
        replacement: Replacement,
        shown: str,
        hex: bool,
    ) -> Rewrite:
        return self.loop.call(
            lambda: self.interceptor.add_rewrite(side, pattern, replacement, shown, hex)
        )

    def remove_rewrites(self, which: str) -> list[Rewrite]:
        return self.loop.call(lambda: self.interceptor.remove_rewrites(which))

    def rewrites(self) -> list[Rewrite]:
        return self.loop.call(lambda: list(self.interceptor.rewrites))

    def holding(self) -> tuple[frozenset[Side], list[HeldFrame]]:
        return self.loop.call(
            lambda: (self.interceptor.holding, list(self.interceptor.held.values()))
        )

    def _intercept(self, change: Callable[[], list[Action]]) -> None:
        self.loop.call(lambda: self._carry_out(change()))

    # ---- loop thread

    def _carry_out(self, actions: list[Action], notes: list[Event] | None = None) -> None:
        """Carry `actions` out; their lines go to `notes` when given (to be posted after the
        data they are about), else are posted now."""
        for action in actions:
            match action:
                case Forward(flow, side, data):
                    self._forward_frame(flow, side, data)
                case Tell(text, level):
                    if notes is None:
                        self.post(Noticed(text, level))
                    else:
                        notes.append(Noticed(text, level))
                case PauseReading(flow, side, paused):
                    self._pause_side(flow, side, paused)
                case PassEnd(flow, side):
                    self._pass_end(flow, side)
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        """Idle framing ends a frame after a silence: look again when the first is due."""
        now = time.monotonic()
        wait = self.interceptor.due(now)
        if wait is None or (self._tick_due is not None and self._tick_due <= now + wait):
            return
        self._tick_due = now + wait
        self.loop.call_later(wait, self._tick)

    def _intercept_data(self, flow: int, side: Side, data: bytes) -> list[Event]:
        """Data a rule concerns: the lines it gave, to be posted after the data's event."""
        notes: list[Event] = []
        self._carry_out(self.interceptor.arrived(flow, side, data, time.monotonic()), notes)
        return notes

    def _tick(self) -> None:
        self._tick_due = None
        self._carry_out(self.interceptor.tick(time.monotonic()))
