"""A renderer for tests that show reads one at a time, each after a silence."""

from __future__ import annotations

from netrepl.events import Event, Received
from netrepl.render import ROW_SETTLE_SECONDS, Output, Renderer


class ReadByRead(Renderer):
    """Every read is followed by a silence: a hexdump row it leaves unfinished is shown
    at once (with the live display, after ROW_SETTLE_SECONDS), so each read's bytes are
    on screen before the next event, as when a person watches a device answer."""

    def render(self, event: Event) -> list[Output]:
        outputs = super().render(event)
        # Only hex rows: tests of a character split across reads mean reads close in time
        # (tests/core/test_render_held.py covers a character whose rest never comes).
        if isinstance(event, Received) and self.view.mode == "hex" and not self.view.blocks:
            outputs += self.tick(event.at + ROW_SETTLE_SECONDS)
        return outputs
