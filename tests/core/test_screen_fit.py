"""The pure parts of fitting text to the terminal: messages wrapped at spaces with a hanging
indent (display.wrap_message), rows a frame takes (display.screen_rows), and the toolbar
fitted by leaving out whole fields (repl.fit_toolbar)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from netrepl.display import screen_rows, text_width, wrap_message
from netrepl.repl import Field, fit_toolbar

words = st.text(st.sampled_from("abcxyz设备-/()"), min_size=1, max_size=12)
lines = st.lists(words, min_size=1, max_size=30).map(" ".join)


@given(st.lists(lines, min_size=1, max_size=4).map("\n".join), st.integers(20, 120))
def test_wrapping_keeps_every_word_whole_and_every_row_in_the_width(message, width):
    wrapped = wrap_message(Text(message), width).plain
    assert wrapped.split() == message.split()  # the same words, in order, none cut
    assert all(text_width(row) <= width for row in wrapped.split("\n"))
    assert wrapped.count("\n") >= message.count("\n")


def test_a_table_row_continues_under_its_last_column():
    row = "  /to [TARGET]      choose where typed data goes in listen mode: all, last, client N"
    wrapped = wrap_message(Text(row), 60).plain.split("\n")
    column = row.index("choose")
    assert wrapped[0] == "  /to [TARGET]      choose where typed data goes in listen"
    assert all(line.startswith(" " * column) and line[column] != " " for line in wrapped[1:])


def test_styles_stay_on_their_characters():
    text = Text("error: ", end="")
    text.append("x" * 30, style="bold")
    wrapped = wrap_message(text, 20)
    assert wrapped.plain == "error:\n  " + "x" * 18 + "\n  " + "x" * 12
    assert "".join(wrapped.plain[s.start : s.end] for s in wrapped.spans) == "x" * 30


def test_lines_that_fit_are_not_touched():
    text = Text("short line\nanother")
    assert wrap_message(text, 80) is text


def test_screen_rows_counts_wrapped_and_wide_lines():
    assert screen_rows("a\n" + "b" * 120 + "\n" + "c" * 121 + "\n", 120) == 4
    assert screen_rows("\x1b[1m设备\x1b[0m\n", 3) == 2
    assert screen_rows("", 80) == 0


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
