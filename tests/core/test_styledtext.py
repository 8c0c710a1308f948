"""StyledText means what rich's `Text` means: the same operations on both give the same
characters and the same spans, so the display (and rich's console, through `to_rich`) shows
what it showed when the renderer made rich `Text`."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text
from rich.theme import Theme

from netrepl.render import STYLES
from netrepl.styledtext import Span, StyledText

# Safe text only (what netrepl puts in): rich would strip BEL, BS, VT, FF and CR; StyledText
# trusts its caller.
CHARACTERS = st.lists(st.sampled_from([*"ab \n\t中é-", "\\x1b"]), max_size=12).map("".join)
STYLE_NAMES = st.sampled_from(["", "netrepl.label", "netrepl.sent", "bold", "netrepl.offset"])


@st.composite
def operations(draw: st.DrawFn) -> list[tuple]:
    steps = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["append", "append_text", "add", "stylize", "slice"]))
        if kind in ("append", "append_text", "add"):
            steps.append((kind, draw(CHARACTERS), draw(STYLE_NAMES), draw(STYLE_NAMES)))
        elif kind == "stylize":
            steps.append(
                (
                    kind,
                    draw(STYLE_NAMES),
                    # Not before the text's start: rich keeps such a span, and then its
                    # slicing loops for ever. (StyledText clips it; tested below.)
                    draw(st.integers(0, 20)),
                    draw(st.one_of(st.none(), st.integers(-20, 20))),
                )
            )
        else:
            steps.append((kind, draw(st.integers(-20, 20)), draw(st.integers(-20, 20))))
    return steps


def apply(make, steps, text):
    for step in steps:
        kind = step[0]
        if kind == "append":
            text.append(step[1], step[2])
        elif kind == "append_text":
            text.append_text(make(step[1], step[3]))
        elif kind == "add":
            text = text + make(step[1], step[3])
        elif kind == "stylize":
            text.stylize(step[1], step[2], step[3])
        else:
            start, stop = step[1], step[2]
            if start >= 0 and stop >= 0 and start <= stop:  # rich's slices as netrepl uses them
                text = text[start:stop]
    return text


def ours(plain: str, style: str) -> StyledText:
    return StyledText(plain, style)


def richs(plain: str, style: str) -> Text:
    return Text(plain, style=style, end="")


def visible_spans(text) -> list[tuple[int, int, str]]:
    """The spans as they style characters: rich keeps some that style none (touching a cut,
    or starting before the text)."""
    clipped = [(max(s.start, 0), min(s.end, len(text)), str(s.style)) for s in text.spans]
    return [(start, end, style) for start, end, style in clipped if end > start]


@settings(max_examples=400, deadline=None)
@given(CHARACTERS, STYLE_NAMES, operations())
def test_the_same_operations_make_the_same_text_as_rich(plain, style, steps):
    made = apply(ours, steps, ours(plain, style))
    expected = apply(richs, steps, richs(plain, style))
    assert made.plain == expected.plain
    assert len(made) == len(expected)
    assert made.style == expected.style
    assert visible_spans(made) == visible_spans(expected)
    assert all(0 <= span.start <= span.end <= len(made) for span in made.spans)
    assert made.to_rich().spans == made.spans


def printed(text: Text) -> str:
    console = Console(file=io.StringIO(), color_system="standard", theme=Theme(STYLES))
    console.print(text, end="")
    return console.file.getvalue()


def test_rich_prints_a_built_text_as_it_prints_its_own():
    made = StyledText("── ", "netrepl.label")
    made.append("#1 peer", "netrepl.sent")
    made = made + StyledText(" · 3 bytes\n", "netrepl.label")
    made.stylize("bold", 3, 5)
    expected = Text("── ", style="netrepl.label", end="")
    expected.append("#1 peer", "netrepl.sent")
    expected = expected + Text(" · 3 bytes\n", style="netrepl.label", end="")
    expected.stylize("bold", 3, 5)
    assert printed(made.to_rich()) == printed(expected)
    assert printed(made[2:9].to_rich()) == printed(expected[2:9])


def test_a_span_never_starts_before_the_text():
    text = StyledText("ab")
    text.stylize("bold", -5)
    text.stylize("dim", -1)
    assert text.spans == [Span(0, 2, "bold"), Span(1, 2, "dim")]
    assert StyledText("").spans == [] and not StyledText("")


def test_appending_a_styled_text_with_a_style_is_refused():
    with pytest.raises(ValueError):
        StyledText("a").append(StyledText("b"), "bold")


def test_a_slice_in_steps_is_refused():
    with pytest.raises(ValueError):
        StyledText("abc")[::2]


def test_equal_texts_have_equal_characters_and_spans():
    first = StyledText("ab", spans=[Span(0, 1, "bold")])
    assert first == StyledText("ab", spans=[Span(0, 1, "bold")])
    assert first != StyledText("ab")
    assert first != "ab"
    with pytest.raises(TypeError):
        hash(first)


def test_the_text_is_joined_once_however_it_was_built():
    text = StyledText("a")
    for piece in "bcd":
        text.append(piece)
    assert text.plain == "abcd"
    assert text.plain is text.plain


def test_importing_it_does_not_import_rich():
    code = (
        "import sys, netrepl.styledtext, netrepl.render\n"
        "print(any(m.startswith('rich') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr
