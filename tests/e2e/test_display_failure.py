"""A display thread that dies (a bug) ends the interactive session with a line and status 4,
rather than leaving a prompt that never shows what arrives. The failure is injected the way
it happened (the display's own wait raised OverflowError) by a sitecustomize module that the
child netrepl imports at start."""

from __future__ import annotations

from tests.peers import Peer
from tests.terminal import Terminal, terminal_env

BREAK_THE_DISPLAY = """\
from netrepl import render

_due = render.Renderer.next_due


def _broken(self, now):
    if self.latest_at:  # once something was shown
        raise OverflowError("timeout value is too large")
    return _due(self, now)


render.Renderer.next_due = _broken
"""


def test_a_display_that_dies_ends_the_session_with_a_line_and_status_4(
    make_peer, private_state, tmp_path
):
    (tmp_path / "sitecustomize.py").write_text(BREAK_THE_DISPLAY)
    env = terminal_env(str(private_state)) | {"PYTHONPATH": str(tmp_path)}
    peer: Peer = make_peer(greeting=b"hello\n")
    terminal = Terminal(peer.args, env)
    try:
        terminal.expect("hello")
        status = terminal.wait_exit()
        assert status == 4, terminal.plain[-1000:]
        assert "the display failed: OverflowError('timeout value is too large')" in terminal.plain
        assert "Traceback" not in terminal.plain
    finally:
        terminal.close()
