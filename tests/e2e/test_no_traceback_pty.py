"""The interactive REPL in a real pty: a hostile line is one error line that names it, and the
REPL keeps running (no `internal error`, nothing sent by the bad line); what the peer sends in
invisible characters is shown as escapes, so `PO\\u200bNG` never passes for PONG."""

from __future__ import annotations

import pytest

from tests.e2e.test_interactive import enter, rows, start

# (typed line, the error line on the screen)
HOSTILE = [
    ("/sleep inf", "/sleep: 'inf' is not a number of seconds from 0 to 86,400"),
    ("/sleep 1e10", "/sleep: '1e10' is not a number of seconds from 0 to 86,400"),
    (
        "/every 99999999999999999999999 x",
        "/every: '99999999999999999999999' is not a whole number of milliseconds from 10 to"
        " 86,400,000",
    ),
    (
        "/frame idle 1e30",
        "/frame: idle: '1e30' is not a whole number of milliseconds from 1 to 60,000",
    ),
    ("/expect a{99999999999}", "bad pattern 'a{99999999999}': the repetition number is too large"),
    (
        "/when a{99999999999} -> x",
        "bad pattern 'a{99999999999}': the repetition number is too large",
    ),
    ("/expect-hex 01 nan", "not a hex digit 'n' at column 16"),
    (
        "/connect a..b 80",
        "bad host 'a..b': each dot-separated part of a name must be 1 to 63 characters",
    ),
    ("/run /dev/zero", "/dev/zero:1: a line over 1,048,576 bytes: not a script of typed lines"),
    ("/record /dev/full", "cannot write /dev/full: No space left on device"),
]


@pytest.mark.parametrize("auto", [False, True], ids=["utf8 view", "auto view"])
def test_hostile_lines_leave_the_repl_running(spawn, make_peer, auto):
    peer = make_peer(echo=True)
    terminal, client = start(spawn, peer, *(["--view", "auto"] if auto else []))
    for line, error in HOSTILE:
        enter(terminal, line)
        terminal.expect_screen(rows(f"> {line}", error, ">"))
    enter(terminal, "PING")
    terminal.expect_screen(rows("> PING", "PING", ">"))
    # The auto view's /expect used to be a LookupError: it must match like any other.
    enter(terminal, "PING")
    enter(terminal, "/expect PING")
    terminal.expect_screen(rows("> /expect PING", "expect matched: 'PING'", ">"))
    assert "internal error" not in terminal.plain
    assert client.wait_for(b"PING\nPING\n") == b"PING\nPING\n", "bad lines sent nothing"


def test_invisible_characters_from_the_peer_are_shown_as_escapes(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    client.send("PO\u200bNG co\u00adop \ufeffx\u2060y\r\n".encode())
    terminal.expect_screen(rows("PO\\u200bNG co\\u00adop \\ufeffx\\u2060y"))
    for char in "\u200b\u00ad\ufeff\u2060":
        assert char.encode() not in bytes(terminal.raw), f"U+{ord(char):04X} reached the terminal"
