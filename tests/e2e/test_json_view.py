"""The json view in the real REPL, in a pty: /json, then a document from the peer is drawn
indented and coloured above the prompt, a hostile string in it escaped, and a prompt with no
newline still seen at once."""

from __future__ import annotations

from tests.e2e.test_interactive import keys, ready, rows, start, toolbar


def test_json_shows_an_indented_coloured_object_above_the_prompt(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    keys(terminal, "/js")
    terminal.expect_screen(r"(?m)^\s+/json\s+show each received line or message that is a JSON")
    keys(terminal, "\t")
    terminal.expect_screen(rows("> /json"))
    terminal.enter()
    terminal.expect_screen(rows("> /json", ">"))
    terminal.expect_screen(toolbar(peer) + r"view json \(utf-8\)")
    ready(terminal)
    # Two reads; the string holds a raw C1 CSI and a bidi override.
    client.send(b'{"op":"pong","n":42,')
    client.send('"note":"\u009b\u202e","ok":true}\r\n'.encode())
    terminal.expect_screen(
        rows(
            "{",
            '  "op": "pong",',
            '  "n": 42,',
            '  "note": "\\x9b\\u202e",',
            '  "ok": true',
            "}",
            ">",
        )
    )
    assert "\u009b" not in bytes(terminal.raw).decode("utf-8", "replace")
    assert "\u202e" not in bytes(terminal.raw).decode("utf-8", "replace")
    lines = terminal.screen_lines()
    y = lines.index('  "op": "pong",')
    buffer = terminal.screen.buffer
    key, string = buffer[y][2], buffer[y][9]
    assert (key.data, key.fg, key.bold) == ('"', "blue", True)
    assert (string.data, string.fg) == ("p", "green")
    number = buffer[y + 1][2 + len('"n": ')]
    assert (number.data, number.fg) == ("4", "cyan")

    # Text is text, at once: a prompt without a newline is not held back.
    ready(terminal)
    client.send(b"Password: ")
    terminal.expect_screen(rows("}", "Password:", ">"))
