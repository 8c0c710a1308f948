"""Blocks are shown in the order of the wire and /time delta never goes negative: a send ends
the frames being received (idle, line and delim framing; fixed-length records are not cut),
and a block that began before the one above it follows it at +0.000s."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from netrepl.events import Connected, Received, Sent, Skipped, Submitted
from netrepl.framing import Framing
from netrepl.render import Output, Renderer
from netrepl.view import View

T = 1_700_000_000.0


def connected(view: View) -> Renderer:
    renderer = Renderer(view, styles=False)
    renderer.render(Connected(1, "127.0.0.1:7", "127.0.0.1:50000"))
    return renderer


def headers(outputs: list[Output]) -> list[str]:
    text = "".join(out.text.plain for out in outputs if out.text is not None)
    return re.findall(r"(?m)^── .*$", text)


def test_a_send_ends_the_idle_frame_being_received():
    renderer = connected(View("text", timestamps="delta", framing=Framing("idle", idle_ms=50)))
    outputs = renderer.render(Received(1, b"status: ", at=T))
    outputs += renderer.render(Sent(1, b"GO\n", as_hex=False, at=T + 0.033))
    outputs += renderer.render(Received(1, b"OK\n", at=T + 0.040))
    outputs += renderer.tick(T + 0.2)
    assert headers(outputs) == [
        "── +0.000s ← 8 bytes",
        "── +0.033s → 3 bytes",
        "── +0.007s ← 3 bytes",
    ]


def test_a_send_ends_a_line_frame_left_open_by_a_prompt():
    renderer = connected(View("text", timestamps="delta", framing=Framing("line")))
    outputs = renderer.render(Received(1, b"login: ", at=T))
    outputs += renderer.render(Sent(1, b"root\n", as_hex=False, at=T + 1.5))
    outputs += renderer.render(Received(1, b"Password:\n", at=T + 1.6))
    text = "".join(out.text.plain for out in outputs if out.text is not None)
    assert headers(outputs) == [
        "── +0.000s ← 7 bytes",
        "── +1.500s → 5 bytes",
        "── +0.100s ← 10 bytes",
    ]
    assert text.index("login: ") < text.index("root") < text.index("Password:")


def test_fixed_length_records_are_not_cut_and_their_delta_is_not_negative():
    renderer = connected(View("hex", timestamps="delta", framing=Framing("len", length=4)))
    outputs = renderer.render(Received(1, b"ab", at=T))
    outputs += renderer.render(Sent(1, b"\x01", as_hex=True, at=T + 0.5))
    outputs += renderer.render(Received(1, b"cd", at=T + 0.6))
    assert headers(outputs) == ["── +0.000s → 1 byte", "── +0.000s ← 4 bytes"]


FRAMINGS = st.sampled_from(
    [
        Framing(),
        Framing("idle", idle_ms=20),
        Framing("line"),
        Framing("delim", delimiter=b";"),
        Framing("len", length=3),
    ]
)


@given(
    framing=FRAMINGS,
    steps=st.lists(
        st.tuples(
            st.sampled_from(["recv", "send", "tick"]), st.binary(max_size=6), st.floats(0, 0.1)
        ),
        max_size=20,
    ),
)
def test_deltas_are_never_negative_and_clock_times_follow_the_wire(framing, steps):
    renderer = connected(View("text", timestamps="delta", framing=framing))
    outputs: list[Output] = []
    at = T
    for kind, data, gap in steps:
        at += gap
        if kind == "recv":
            outputs += renderer.render(Received(1, data, at=at))
        elif kind == "send" and data:
            outputs += renderer.render(Sent(1, data, as_hex=False, at=at))
        else:
            outputs += renderer.tick(at)
    for header in headers(outputs):
        delta = re.match(r"── \+(-?\d+\.\d+)s", header)
        assert delta is not None and float(delta.group(1)) >= 0, header


def test_an_echo_is_shown_below_a_hex_row_that_arrived_before_it():
    renderer = connected(View("hex"))
    outputs = renderer.render(Received(1, b"ABCDEFGHIJKLMNOPQRST", at=T))
    outputs += renderer.render(Submitted("> ", "/eol crlf"))
    outputs += renderer.tick(T + 0.05)
    text = "".join(out.text.plain for out in outputs if out.text is not None)
    assert text.index("|QRST|") < text.index("> /eol crlf"), text


def test_a_display_that_stops_in_a_flood_still_says_what_it_skipped():
    renderer = connected(View("text"))
    renderer.render(Skipped(1, 5_000_000, 5, at=T))
    assert renderer.tick(T + 0.1) == []  # said every 2 s while it lasts: not yet
    text = "".join(out.text.plain for out in renderer.finish() if out.text is not None)
    assert "skipped 5,000,000 bytes in 5 reads to keep up" in text
