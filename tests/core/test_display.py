"""display.py: the display thread's clock and its sinks, wrapping messages to the terminal's
width, the rows a frame takes, and what happens when the display thread dies or the output
is slow: posters never wait on a dead display, and batch posters wait while the queue and the
backlog together hold QUEUE_LIMIT."""

from __future__ import annotations

import io
import sys
import threading

from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from netrepl.display import (
    QUEUE_LIMIT,
    Display,
    StreamSink,
    TerminalSink,
    plain,
    screen_rows,
    text_width,
    wrap_message,
)
from netrepl.events import Noticed, Received
from netrepl.framing import Framing
from netrepl.render import Output, Renderer
from netrepl.styledtext import StyledText
from netrepl.view import View
from tests.net.conftest import WAIT, CapturedOutput

words = st.text(st.sampled_from("abcxyz设备-/()"), min_size=1, max_size=12)
lines = st.lists(words, min_size=1, max_size=30).map(" ".join)


# ---- the display's clock and its sinks ----------------------------------------------------


def test_idle_frames_end_by_the_displays_clock_not_the_wall_clock():
    """What replay relies on: its clock is the transcript's time, however fast it runs."""
    now = [1000.0]
    output = CapturedOutput()
    renderer = Renderer(View("text", framing=Framing("idle", idle_ms=3_600_000)))
    display = Display(renderer, output, clock=lambda: now[0])
    display.start()
    try:
        display.post(Received(1, b"frame", at=1000.0))
        display.post(Noticed("first"))
        output.wait_stderr("first\n")
        assert output.stdout_text() == "", "an hour has not passed on the display's clock"
        now[0] += 3600
        display.post(Noticed("second"))
        output.wait_stdout("frame\n")
    finally:
        display.stop()
    assert output.stdout_text() == "── ← 5 bytes\nframe\n"


def test_the_terminal_sink_clears_and_drops_the_open_line():
    out, cleared = io.StringIO(), []
    sink = TerminalSink(out, plain, lambda: None, clear=lambda: cleared.append(out.getvalue()))
    sink.write([Output("data", Text("done\nlogin: ", end=""))])
    assert sink.open_line_ansi == "login: "
    sink.write([Output("clear"), Output("data", Text("after\n", end=""))])
    assert cleared == ["done\n"], "what came before is written before the screen clears"
    assert out.getvalue() == "done\nafter\n"
    assert sink.open_line_ansi == ""


def test_an_endless_line_takes_a_third_of_the_screen_above_the_prompt_and_loses_nothing():
    """The prompt redraws the open line through prompt_toolkit, which keeps a tuple per
    character of it: an open line of 4,096 characters made one 50 MB line peak at 1.52x idle
    RSS, and at 80 columns wrapped over more rows than a 24-row screen has."""
    out = io.StringIO()
    sink = TerminalSink(out, plain, lambda: None, size=lambda: (80, 24))
    text = "设备 数据 line\t" * 500  # wide characters, spaces and tabs, no newline
    for start in range(0, len(text), 97):
        sink.write([Output("data", StyledText(text[start : start + 97]))])
        assert screen_rows(sink.open_line_ansi + "\n", 80) <= 24 // 3
    assert out.getvalue(), "the line was committed to the scrollback on its way"
    assert (out.getvalue() + sink.open_line_ansi).replace("\n", "") == text


def test_the_stream_sink_ignores_clear():
    stdout, stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    sink = StreamSink(stdout, stderr)
    sink.write([Output("data", Text("a\n", end="")), Output("clear")])
    stdout.seek(0)
    assert stdout.read() == "a\n" and stderr.getvalue() == ""


# ---- fitting messages to the terminal --------------------------------------------------------


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


def test_measuring_a_line_keeps_no_reference_to_it():
    # Each frame's received lines are measured (screen_rows): a cache of them would hold
    # thousands of lines of a flood (rich's `cell_len` keeps 4,096).
    line = "".join(["设备 reading ", str(id(object())), " 温度"])
    held = sys.getrefcount(line)
    assert text_width(line) == len(line) + 4
    assert screen_rows(line + "\n", 80) == 1
    assert sys.getrefcount(line) == held


# ---- a display that fails, a sink that is slow ----------------------------------------------


class GoneTerminal:
    """A sink whose terminal has gone away (EIO): not a closed pipe, which is expected."""

    def write(self, outputs: list[Output]) -> None:
        raise OSError(5, "Input/output error")

    def close(self) -> None:
        pass


def test_a_display_that_dies_says_so_and_never_holds_a_poster():
    failures: list[str] = []
    display = Display(Renderer(View()), GoneTerminal(), on_failure=failures.append)
    display.start()
    display.post(Noticed("boom"))
    display._thread.join(WAIT)
    assert failures == ["the display failed: OSError(5, 'Input/output error')"]
    assert display.failure == failures[0]
    # A batch poster would wait for room beyond QUEUE_LIMIT; on a dead display it never does.
    poster = threading.Thread(
        target=lambda: [display.post(Received(1, b"x" * 1_000_000)) for _ in range(20)]
    )
    poster.start()
    poster.join(WAIT)
    assert not poster.is_alive()


class SlowSink:
    """A sink whose writes wait until the test lets them go."""

    def __init__(self) -> None:
        self.written = 0
        self.go = threading.Event()

    def write(self, outputs: list[Output]) -> None:
        self.go.wait(WAIT)
        self.written += sum(len(out.raw) for out in outputs)

    def close(self) -> None:
        pass


def test_batch_posters_wait_while_the_queue_and_the_backlog_hold_the_limit():
    sink = SlowSink()
    display = Display(Renderer(View("raw")), sink)
    display.start()
    piece = b"x" * (1 << 20)
    posted = []

    def post_many() -> None:
        for _ in range(3 * QUEUE_LIMIT // len(piece)):
            display.post(Received(1, piece))
            posted.append(len(piece))

    poster = threading.Thread(target=post_many, daemon=True)
    poster.start()
    poster.join(0.5)
    # The first frame's write waits on the sink: what waits to be shown stays bounded.
    assert poster.is_alive(), "the poster was never made to wait"
    assert sum(posted) <= QUEUE_LIMIT + len(piece)
    sink.go.set()
    poster.join(WAIT)
    display.stop()
    assert sink.written == sum(posted) == 3 * QUEUE_LIMIT // len(piece) * len(piece)


def test_a_word_too_wide_for_the_indent_but_not_the_row_starts_further_left_whole():
    # Found by hypothesis: 19 cells after a 2-cell indent do not fit 20 cells.
    wrapped = wrap_message(Text("a aaa备备备备备备备备"), 20).plain
    assert wrapped == "a\n aaa备备备备备备备备"
