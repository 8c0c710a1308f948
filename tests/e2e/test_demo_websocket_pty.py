"""`netrepl --demo --ws` in a real pty, typed as a newcomer would: each message the demo peer
sends is a block above the prompt, labelled text or binary, and the peer's close is a line."""

from __future__ import annotations

import re

from netrepl.demo import BINARY_FRAME, WS_GREETING, WS_HELP
from tests.e2e.test_interactive import rows
from tests.terminal import Terminal

TOOLBAR = r"(?m)^ WebSocket ws://127\.0\.0\.1:\d+/  {state}  │  view {view}"


def ready(terminal: Terminal, view: str = "utf-8") -> None:
    """The prompt is drawn whole (its toolbar is up: see tests/e2e/test_interactive.py)."""
    terminal.expect_screen(TOOLBAR.format(state="connected", view=re.escape(view)))


def test_demo_ws_shows_each_message_as_a_block_above_the_prompt(spawn):
    terminal = spawn("--demo", "--ws")
    terminal.expect_screen(r"(?m)^demo peer on ws://127\.0\.0\.1:\d+/: type help and press Enter")
    greeting = WS_GREETING.decode().splitlines()
    terminal.expect_screen(rows(f"── ← text message, {len(WS_GREETING)} bytes", *greeting))
    ready(terminal)

    terminal.enter("help")
    help_block = (f"── ← text message, {len(WS_HELP)} bytes", *WS_HELP.decode().splitlines())
    terminal.expect_screen(rows("> help", *help_block))
    # The block is above the prompt, which is empty and waiting.
    lines = terminal.screen_lines()
    last = max(index for index, line in enumerate(lines) if line.startswith("anything else"))
    assert lines[last + 1] == ">"
    ready(terminal)

    terminal.enter("/hex")
    ready(terminal, "hex")
    terminal.enter("binary")
    terminal.expect_screen(
        rows(
            "> binary",
            f"── ← binary message, {len(BINARY_FRAME)} bytes",
            "00000000  01 03 04 00 2a 01 00 da  6b                       |....*...k|",
        )
    )
    ready(terminal, "hex")

    terminal.enter("bye")
    terminal.expect_screen(r"closed by peer: 1000 normal closure: 'bye'")
    terminal.enter("/quit")
    assert terminal.wait_exit() == 0
