"""In the real REPL: the last byte of an echoed frame that could start a UTF-8 character is
on screen (as an escape) within moments, not held back until more data comes."""

from __future__ import annotations

from tests.e2e.test_interactive import enter, start


def test_a_trailing_lead_byte_is_shown_once_the_peer_is_quiet(spawn, echo_peer):
    terminal, client = start(spawn, echo_peer)
    enter(terminal, "/x 41 42 e1")
    client.wait_for(b"AB\xe1")
    terminal.expect_screen(r"(?m)^AB\\xe1$")
    assert terminal.child.isalive()
