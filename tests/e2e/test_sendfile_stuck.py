"""In the real REPL: /sendfile to a peer that stopped reading keeps drawing its bar, Ctrl-C
stops it at once, and the final line counts what the toolbar counts (bytes handed to the
socket)."""

from __future__ import annotations

import os
import re
import socket
import time

from tests.e2e.test_interactive import enter
from tests.net.conftest import WAIT


def test_ctrl_c_stops_a_stuck_sendfile_and_its_count_agrees_with_the_toolbar(spawn, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(40_000_000))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(WAIT)
        terminal = spawn("127.0.0.1", str(listener.getsockname()[1]))
        peer, _ = listener.accept()  # and never reads
        with peer:
            enter(terminal, f"/sendfile {path}")
            bar = r"(?m)^sendfile big\.bin ━{30} +\d+%  ([\d,]+) bytes of 40,000,000 "
            terminal.expect_screen(bar)
            # Stuck: the bar stays while the count stops moving.
            terminal.expect_screen(r"sendfile big\.bin \d+%  ")  # the toolbar
            first = re.search(bar, terminal.screen_text())
            assert first is not None
            pressed = time.monotonic()
            terminal.type("\x03")
            status = r"(?m)^sendfile big\.bin: interrupted, ([\d,]+) bytes of 40,000,000 in"
            terminal.expect_screen(status, timeout=5)
            took = time.monotonic() - pressed
            done = re.search(status, terminal.screen_text())
            assert done is not None
            count = done.group(1)
            terminal.expect_screen(rf"tx {count} B")
            assert took < 2.0, f"Ctrl-C took {took:.2f} s to stop the send"
