"""In the real REPL with /time delta and /frame idle: what the peer had started sending before
a typed line is shown above that line's block, and no delta on screen is negative."""

from __future__ import annotations

import re

from tests.e2e.test_interactive import enter, start


def test_a_frame_begun_before_a_send_is_shown_before_it(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/time delta")
    enter(terminal, "/frame idle 2000")
    enter(terminal, "/frame")
    terminal.expect_screen(r"(?m)^frame idle 2000 ms$")  # applied: the peer may speak
    client.send(b"status: ")
    # The frame is not shown yet (it waits for 2 s of silence), but it has been received.
    terminal.expect_screen(r"rx 8 B")
    enter(terminal, "GO")
    client.wait_for(b"GO\n")
    client.send(b"OK\n")
    terminal.expect_screen(r"(?m)^── \+\d+\.\d{3}s ← 3 bytes\nOK$", timeout=10)
    screen = terminal.screen_text()
    received = screen.index("← 8 bytes")
    sent = screen.index("→ 3 bytes")
    answer = screen.index("← 3 bytes")
    assert received < sent < answer, screen
    assert not re.search(r"\+-", screen), screen
