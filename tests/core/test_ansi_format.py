"""The terminal formatter: `StyledText` to SGR codes without rich's console. On screen it
must be exactly what rich's console writes for the same text: the same characters, each in
the same style; for what the renderer makes, byte for byte the same."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from netrepl.codec import decode_whole
from netrepl.display import AnsiFormatter, terminal_color_system
from netrepl.render import STYLES, hexdump_text, safe_text, styled
from netrepl.styledtext import Span, StyledText

# netrepl's own style names, and the style definitions rich also reads as names.
STYLE_NAMES = [
    *STYLES,
    "",
    "bold",
    "dim red",
    "red on white",
    "italic underline",
    "bold not bold",
    "no-such-style",
]
STYLE_VALUES = st.sampled_from(STYLE_NAMES)
PLAIN = st.lists(st.sampled_from([*"ab \n\t中文é\u0301x-|", "\\x1b"]), max_size=40).map("".join)


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def cells(formatted: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each character shown, with the SGR parameters in force for it."""
    shown: list[tuple[str, tuple[str, ...]]] = []
    state: tuple[str, ...] = ()
    position = 0
    for code in SGR.finditer(formatted):
        shown += [(char, state) for char in formatted[position : code.start()]]
        params = tuple(code.group(1).split(";"))
        state = () if params in (("0",), ("",)) else state + params
        position = code.end()
    shown += [(char, state) for char in formatted[position:]]
    return shown


@st.composite
def texts(draw: st.DrawFn) -> StyledText:
    plain = draw(PLAIN)
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        start = draw(st.integers(0, len(plain)))
        end = draw(st.integers(start, len(plain)))
        spans.append(Span(start, end, draw(STYLE_VALUES)))
    return StyledText(plain, draw(STYLE_VALUES), spans=spans)


# One colour system per process, as in netrepl: rich caches a style's codes for the first
# colour system that renders it, so two systems in one process disagree with themselves.
FORMATTER = AnsiFormatter()


@settings(max_examples=500, deadline=None)
@given(text=texts())
def test_any_text_formats_as_rich_formats_it(text):
    formatter = FORMATTER
    ours = formatter(text)
    assert cells(ours) == cells(formatter.rich_format(text))
    assert all(not state for char, state in cells(ours) if char == "\n")


@pytest.mark.parametrize(
    "text",
    [
        hexdump_text(bytes(range(256)), 0x1234),
        hexdump_text(b"\x00" * 5, 0, "netrepl.sent"),
        styled(decode_whole(b"ab\x1b[31mx\xff\xfe\n\tend\r\n", "utf-8")),
        styled(decode_whole("温度 23.5°C\r\n".encode() + "设备".encode("gbk"), "auto")),
        safe_text("hello\x07 world\n", "netrepl.error"),
        StyledText(""),
        StyledText("\n\n", "bold"),
        StyledText("tab\tin\tline\nnext\tone", "netrepl.label"),
    ],
)
def test_what_the_renderer_makes_formats_as_rich_formats_it(text):
    assert FORMATTER(text) == FORMATTER.rich_format(text)


def test_newlines_stay_outside_the_styled_runs():
    # The terminal sink cuts lines in the formatted string: a newline must never sit between
    # an SGR code and its reset.
    formatted = FORMATTER(StyledText("one\ntwo\n", "bold"))
    assert formatted == "\x1b[1mone\x1b[0m\n\x1b[1mtwo\x1b[0m\n"


def test_without_colours_the_formatter_is_rich_itself():
    formatter = AnsiFormatter(None)
    text = safe_text("x\x1b", "netrepl.error")
    assert formatter(text) == formatter.rich_format(text) == "x\\x1b"


@pytest.mark.parametrize(
    "term",
    ["", "xterm", "xterm-256color", "screen-16color", "xterm-kitty", "dumb", "Unknown", " linux "],
)
@pytest.mark.parametrize("colorterm", ["", "truecolor", " 24BIT ", "yes"])
@pytest.mark.parametrize("no_color", ["", "1"])
def test_the_color_system_is_the_one_rich_detects(term, colorterm, no_color):
    environ = {"TERM": term, "COLORTERM": colorterm, "NO_COLOR": no_color}
    console = Console(
        file=io.StringIO(), force_terminal=True, color_system="auto", _environ=environ
    )
    expected = None if console.no_color else console._color_system
    assert terminal_color_system(environ) == expected


def test_the_first_prompt_path_does_not_import_rich_console():
    code = (
        "import sys\n"
        "from netrepl.display import AnsiFormatter\n"
        "from netrepl.render import safe_text\n"
        "AnsiFormatter()(safe_text('x\\x1b', 'netrepl.error'))\n"
        "print('rich.console' in sys.modules)"
    )
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.strip() == "False", done.stderr
