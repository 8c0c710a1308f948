"""A relay in a real pty, as a person runs it: netrepl between a Python client and a Python
upstream, the labelled blocks of both directions above the prompt, a typed line injected into
the upstream and marked so, /flows, a bad /to, and /quit ending both legs. Waits are on the
screen or the output stream, with a timeout."""

from __future__ import annotations

import re
import socket

from tests.e2e.test_interactive import rows
from tests.e2e.test_listen import enter
from tests.net.conftest import WAIT
from tests.net.relay_peers import Upstream, read_to_end
from tests.net.transport_helpers import recv_exact


def test_a_relay_shows_both_directions_and_injects_what_is_typed(spawn):
    upstream = Upstream()
    try:
        terminal = spawn("-l", "127.0.0.1", "0", "--relay", upstream.address)
        port = int(terminal.expect(r"relaying 127\.0\.0\.1:(\d+) \(TCP\) to ").group(1))
        client = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        up = upstream.accept()
        terminal.expect(rf"#1 upstream {re.escape(upstream.address)} connected from ")
        client_address = f"127.0.0.1:{client.getsockname()[1]}"

        # A peer's bytes never reach the terminal raw: an OSC title change is shown escaped.
        client.sendall(b"hello upstream \x1b]0;pwned\x07\n")
        assert recv_exact(up, 26) == b"hello upstream \x1b]0;pwned\x07\n"
        up.sendall(b"hello client\n")
        assert recv_exact(client, 13) == b"hello client\n"
        terminal.expect_screen(r"(?m)^hello client$")
        assert b"\x1b]0;pwned" not in terminal.raw

        enter(terminal, "typed line")
        assert recv_exact(up, 11) == b"typed line\n"
        terminal.expect_screen(rows("── #1 netrepl → upstream · 11 bytes injected", "typed line"))
        lines = terminal.screen_lines()
        labels = [
            lines.index("── #1 client → upstream"),
            lines.index("── #1 upstream → client"),
            lines.index("hello client"),
            lines.index("── #1 netrepl → upstream · 11 bytes injected"),
        ]
        assert labels == sorted(labels), terminal.screen_text()
        assert lines[labels[0] + 1].startswith("hello upstream "), terminal.screen_text()
        prompt = max(i for i, line in enumerate(lines) if line == ">" or line.startswith("> "))
        assert labels[-1] < prompt, "the blocks are above the prompt"

        enter(terminal, "/flows")
        terminal.expect_screen(
            rf"(?m)^\s+#1\s+{re.escape(client_address)}\s+{re.escape(upstream.address)}"
            r"\s+\d+s\s+26\s+13$"
        )
        enter(terminal, "/to 9")
        terminal.expect_screen(r"(?m)^/to: no flow #9 \(/flows lists them\)$")

        enter(terminal, "/quit")
        assert terminal.wait_exit() == 0
        assert read_to_end(client) == b""
        assert read_to_end(up) == b""
        client.close()
    finally:
        upstream.close()
