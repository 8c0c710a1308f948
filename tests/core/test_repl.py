"""repl.py's pure parts: the toolbar fitted to the width, the prompt's text, and an entered
or pasted text cut into the lines each handled as typed."""

from __future__ import annotations

from netrepl.repl import Field, entered_lines, fit_toolbar, shorten


def test_toolbar_leaves_out_the_least_important_fields_whole():
    groups = [
        [Field("TCP 127.0.0.1:7000", 6), Field("connected", 2)],
        [Field("view utf-8", 4), Field("input text", 8), Field("eol lf", 9)],
        [Field("rx 6 B", 3), Field("tx 0 B", 7)],
    ]
    full = " TCP 127.0.0.1:7000  connected  │  view utf-8  input text  eol lf  │  rx 6 B  tx 0 B "
    assert fit_toolbar(groups, 120) == full
    assert fit_toolbar(groups, 60) == " TCP 127.0.0.1:7000  connected  │  view utf-8  │  rx 6 B "
    assert fit_toolbar(groups, 30) == " connected  │  rx 6 B "
    assert fit_toolbar(groups, 8) == " conne… "


def test_shorten_cuts_at_a_space():
    assert shorten("busy: /sendfile firmware.bin", 20) == "busy: /sendfile…"
    assert shorten("short", 20) == "short"


def test_entered_text_is_one_line_per_line_end_of_any_kind():
    assert entered_lines("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == [
        "GET / HTTP/1.1",
        "Host: x",
        "",
        "",
    ]
    assert entered_lines("/hex\r/stats") == ["/hex", "/stats"]
    assert entered_lines("one") == ["one"]
