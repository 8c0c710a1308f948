"""Bytes held back for a character that is not complete yet are shown, as escapes, once the
peer has been quiet for ROW_SETTLE_SECONDS: a Modbus frame whose CRC ends in e1 is not left
one byte short on screen. A character completed in time is still one character."""

from __future__ import annotations

import pytest

from netrepl.events import Connected, Received, ViewChanged
from netrepl.render import ROW_SETTLE_SECONDS, Output, Renderer
from netrepl.view import View

T = 1_700_000_000.0


def connected(view: View) -> Renderer:
    renderer = Renderer(view, styles=False)
    renderer.render(Connected(1, "127.0.0.1:7", "127.0.0.1:50000"))
    return renderer


def text(outputs: list[Output]) -> str:
    return "".join(out.text.plain for out in outputs if out.text is not None)


@pytest.mark.parametrize(
    ("encoding", "tail", "shown"),
    [
        ("utf-8", b"\xe1", "\\xe1"),
        ("utf-8", b"\xe4\xb8", "\\xe4\\xb8"),
        ("gbk", b"\xd6", "\\xd6"),
        ("auto", b"\xe1", "\\xe1"),
    ],
)
def test_a_held_start_of_a_character_is_shown_after_a_quiet_moment(encoding, tail, shown):
    renderer = connected(View("text", encoding))
    assert text(renderer.render(Received(1, b"AB" + tail, at=T))) == "AB"
    assert renderer.next_due(T) == pytest.approx(ROW_SETTLE_SECONDS)
    assert text(renderer.tick(T + ROW_SETTLE_SECONDS / 2)) == ""
    assert text(renderer.tick(T + ROW_SETTLE_SECONDS)) == shown
    assert renderer.next_due(T + 1) is None
    # What comes later starts afresh: the escaped byte is not pieced together again.
    assert text(renderer.render(Received(1, b"\x80C", at=T + 1))) == "\\x80C"


def test_a_character_completed_in_time_is_one_character():
    renderer = connected(View("text", "utf-8"))
    assert text(renderer.render(Received(1, b"x\xe4", at=T))) == "x"
    assert text(renderer.tick(T + 0.01)) == ""
    assert text(renderer.render(Received(1, b"\xb8\xad", at=T + 0.02))) == "中"
    assert renderer.next_due(T + 0.02) is None


def test_a_display_catching_up_judges_the_silence_by_the_receive_times():
    # Both reads were queued before the display got to them; the second came 50 ms after
    # the first, so the device had paused: the held byte is its own.
    renderer = connected(View("text", "utf-8"))
    outputs = renderer.render(Received(1, b"A\xe1", at=T))
    outputs += renderer.render(Received(1, b"\x80\x80B", at=T + 0.05))
    assert text(outputs) == "A\\xe1\\x80\\x80B"


def test_a_view_switch_still_carries_a_held_character_over():
    renderer = connected(View("text", "utf-8"))
    assert text(renderer.render(Received(1, b"x\xe4\xb8", at=T))) == "x"
    assert text(renderer.render(ViewChanged(View("text", "auto")))) == ""
    assert text(renderer.render(Received(1, b"\xad", at=T + 0.01))) == "中"
