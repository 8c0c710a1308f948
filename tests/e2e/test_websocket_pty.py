"""A WebSocket session in a real pty, typed as a person types, against a `websockets` peer:
messages above the prompt, a view switch, a ping, a bad command that leaves the prompt
running, a hostile message shown escaped, a refused upgrade and /quit."""

from __future__ import annotations

import re

from tests.e2e.test_interactive import rows
from tests.terminal import Terminal
from tests.ws_peers import echo, greet_then_echo, running


def toolbar(url: str, state: str = "connected") -> str:
    return rf"(?m)^ WebSocket {re.escape(url)}  {state}  │  "


def ready(terminal: Terminal, url: str) -> None:
    terminal.expect_screen(toolbar(url) + r"view .*  tx [\d,]+ B$")


def enter(terminal: Terminal, url: str, line: str) -> None:
    ready(terminal, url)
    terminal.enter(line)


def test_type_a_message_see_the_reply_switch_view_ping_and_quit(spawn):
    with running(greet_then_echo) as peer:
        url = peer.url("/chat")
        terminal = spawn(url)
        terminal.expect_screen(rows("upgraded to WebSocket: /chat"))
        terminal.expect_screen(rows("── ← text message, 7 bytes", "welcome"))

        enter(terminal, url, "hello")
        terminal.expect_screen(rows("> hello", "── ← text message, 5 bytes", "hello", ">"))
        peer.seen.wait(lambda s: s.messages == ["hello"], "hello, without an end of line")

        enter(terminal, url, "/hex")
        enter(terminal, url, "/x 00 41")
        terminal.expect_screen(r"(?m)^> /x 00 41\n00000000  00 41 +\|\.A\|$")
        terminal.expect_screen(r"(?m)^── ← binary message, 2 bytes\n00000000  00 41 +\|\.A\|$")

        enter(terminal, url, "/close 1006")
        terminal.expect_screen(r"(?m)^/close: close code 1006 cannot be sent: use 1000-1003")
        enter(terminal, url, "/ping hi")
        terminal.expect_screen(r"(?m)^pong 'hi' in [\d.,]+ ms$")

        enter(terminal, url, "/quit")
        assert terminal.wait_exit() == 0


def test_a_hostile_message_never_reaches_the_terminal_raw(spawn):
    with running(echo) as peer:
        url = peer.url()
        terminal = spawn(url)
        enter(terminal, url, "\\x1b]0;owned\\x07\\x1b[2J red")
        terminal.expect_screen(
            rows("── ← text message, 18 bytes", "\\x1b]0;owned\\x07\\x1b[2J red")
        )
        assert b"\x1b]0;owned" not in terminal.raw
        enter(terminal, url, "/quit")
        assert terminal.wait_exit() == 0


def test_a_refused_upgrade_at_connect_shows_the_answer_and_a_reconnect_stays(spawn):
    refuse = (401, "log in first\n", {"WWW-Authenticate": "Bearer"})
    with running(echo, refuse=refuse) as peer:
        url = peer.url("/private")
        terminal = spawn(url, "--reconnect", "30")
        terminal.expect_screen(
            r"(?m)^cannot connect to .* the server refused the WebSocket upgrade:"
        )
        terminal.expect_screen(rows("  HTTP/1.1 401 Unauthorized"))
        terminal.expect_screen(r"(?m)^  WWW-Authenticate: Bearer$")
        terminal.expect_screen(toolbar(url, "reconnecting"))
        terminal.enter("/close")
        terminal.expect_screen(toolbar(url, "closed"))
        terminal.enter("/quit")
        assert terminal.wait_exit() == 0
