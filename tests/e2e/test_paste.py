"""Pasting and typing ahead, in a pty: each pasted line is handled exactly as if typed (its
end of line, the input mode, commands), and a line entered while another runs is shown as
queued, runs after it, and is dropped by Ctrl-C. The peer's bytes prove what was sent."""

from __future__ import annotations

import time

from tests.e2e.test_interactive import enter, keys, ready, rows, start, toolbar
from tests.terminal import Terminal

PASTE_BEGIN, PASTE_END = "\x1b[200~", "\x1b[201~"


def paste(terminal: Terminal, text: str) -> None:
    """Paste `text` as a terminal does with bracketed paste on (newlines as CR)."""
    ready(terminal)
    terminal.type(PASTE_BEGIN + text.replace("\n", "\r") + PASTE_END)


# ---- pasting -------------------------------------------------------------------------------------


def test_pasted_lines_get_the_chosen_end_of_line(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/eol crlf")
    terminal.expect_screen(toolbar(peer) + "view utf-8  input text  eol crlf")
    paste(terminal, "GET / HTTP/1.1\nHost: x\n\n")
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert client.wait_for_size(len(request)) == request
    # Each line echoed as typed; nothing left at the prompt.
    terminal.expect_screen(rows("> GET / HTTP/1.1", "> Host: x", ">", ">"))


def test_pasted_lines_that_end_in_crlf_are_one_line_each(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    ready(terminal)
    terminal.type(PASTE_BEGIN + "one\r\ntwo\r\n" + PASTE_END)
    assert client.wait_for(b"two\n") == b"one\ntwo\n"


def test_pasted_commands_run_each(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    paste(terminal, "/hex\n/stats\n")
    terminal.expect_screen(toolbar(peer) + r"view hex \(utf-8\)")
    terminal.expect_screen(rows("> /hex", "> /stats"))
    terminal.expect_screen(r"(?m)^received 0 bytes in 0 reads")
    client.send(b"AB")
    terminal.expect_screen(r"(?m)^00000000  41 42 ")
    enter(terminal, "sent")
    assert client.wait_for(b"sent\n") == b"sent\n"  # the commands sent nothing


def test_pasted_hex_lines_follow_the_input_mode(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    paste(terminal, "/input hex\n01 02\n03 04\n")
    assert client.wait_for_size(4) == b"\x01\x02\x03\x04"
    terminal.expect_screen(rows("hex> 01 02"))


def test_a_pasted_line_without_its_end_stays_to_be_edited(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    keys(terminal, "ab")
    terminal.expect_screen(rows("> ab"))
    paste(terminal, "c\nlast")
    # The typed start and the first pasted line are one line, as if typed; the last waits.
    assert client.wait_for(b"abc\n") == b"abc\n"
    terminal.expect_screen(rows("> abc", "> last"))
    keys(terminal, " edited")
    terminal.expect_screen(rows("> last edited"))
    enter(terminal)
    assert client.wait_for(b"last edited\n") == b"abc\nlast edited\n"


def test_enter_on_a_recalled_line_with_newlines_sends_each_line(spawn, make_peer, private_state):
    # A history entry of two lines (FileHistory's format), as an older netrepl kept a paste.
    history = private_state / "netrepl" / "history"
    history.parent.mkdir(parents=True, exist_ok=True)
    history.write_text("\n# 2024-01-01 00:00:00\n+first\n+second\n", encoding="utf-8")
    history.chmod(0o600)
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/eol crlf")
    terminal.expect_screen(toolbar(peer) + "view utf-8  input text  eol crlf")
    keys(terminal, "\x1b[A\x1b[A")  # /eol crlf, then the two-line entry
    enter(terminal)
    assert client.wait_for(b"second\r\n") == b"first\r\nsecond\r\n"
    terminal.expect_screen(rows("> first", "> second"))


# ---- lines typed while one runs ------------------------------------------------------------------


def test_a_line_typed_while_one_runs_is_shown_queued_and_sent_after(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/sleep 1.5")
    terminal.expect_screen(r"(?m)^ TCP \S+  connected  busy: /sleep 1\.5  \(Ctrl-C stops it\)")
    started = time.monotonic()
    terminal.enter("typed ahead")
    terminal.expect_screen(rows("(queued) > typed ahead"))
    terminal.expect_screen(
        r"(?m)^queued behind /sleep 1\.5: lines typed now run when it ends; Ctrl-C stops it"
        r" and drops them$"
    )
    terminal.expect_screen(
        r"(?m)^ TCP \S+  connected  busy: /sleep 1\.5  \(Ctrl-C stops it\)"
        r"  \+1 queued  │"
    )
    assert client.wait_for(b"typed ahead\n") == b"typed ahead\n"
    assert time.monotonic() - started > 0.5, "sent before the running line ended"
    # Echoed again when it really went.
    terminal.expect_screen(r"(?m)^\(queued\) > typed ahead\n(?:.*\n)*> typed ahead$")


def test_ctrl_c_stops_the_running_line_and_drops_the_queued_ones(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/expect never 30")
    terminal.expect_screen(r"(?m)^ TCP \S+  connected  busy: /expect never 30")
    terminal.enter("first queued")
    terminal.expect_screen(rows("(queued) > first queued"))
    terminal.enter("/x 01")
    terminal.expect_screen(rows("(queued) > /x 01"))
    terminal.type("\x03")
    terminal.expect_screen(
        r"(?m)^interrupting… dropped 2 queued lines, not run: first queued, /x 01$", timeout=5
    )
    terminal.expect_screen(r"(?m)^expect never: interrupted$")
    enter(terminal, "after")
    assert client.wait_for(b"after\n") == b"after\n"  # nothing queued went out
