"""render in the json view: on a stream each line that is a JSON object or array is indented,
every other line shown as the text view shows it (a split changes nothing); a possible document
not yet ended is held for its end or a silence; datagrams and frames are looked at whole."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text

from netrepl.codec import escape_text
from netrepl.events import Closed, Connected, PauseChanged, Received, Sent, ViewChanged
from netrepl.framing import Framing
from netrepl.jsonview import JSON_SETTLE_SECONDS
from netrepl.render import ROW_SETTLE_SECONDS, Output, Renderer
from netrepl.view import View
from tests.core.test_jsonview import CONTAINERS
from tests.core.test_render import data_text, is_unsafe, style_at

T = 1_700_000_000.0
JSON = View("json")


def connected(view: View = JSON, *, styles: bool = True) -> Renderer:
    renderer = Renderer(view, styles=styles)
    renderer.render(Connected(1, "127.0.0.1:7", "127.0.0.1:50000"))
    return renderer


def char_styles(outputs: list[Output]) -> list[tuple[str, tuple[str, ...]]]:
    """Each character shown, with the styles over it: equal however the pieces were cut."""
    chars: list[tuple[str, tuple[str, ...]]] = []
    for out in outputs:
        if out.channel != "data" or out.text is None:
            continue
        text: Text = out.text
        for index, char in enumerate(text.plain):
            over = tuple(str(s.style) for s in text.spans if s.start <= index < s.end)
            chars.append((char, over))
    return chars


TEXT_LINES = st.text(
    st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12
).filter(lambda line: line.lstrip(" \t")[:1] not in ("{", "["))
LINES = st.one_of(CONTAINERS.map(lambda v: ("doc", v)), TEXT_LINES.map(lambda t: ("text", t)))


@settings(deadline=None)  # a few large documents take a while on a loaded machine
@given(
    lines=st.lists(st.tuples(LINES, st.sampled_from(["\n", "\r\n"])), max_size=6),
    tail=TEXT_LINES,
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
def test_any_split_of_a_stream_of_json_lines_is_shown_as_the_whole(lines, tail, cuts):
    # ensure_ascii=False: multi-byte characters (split across reads too) and raw C1
    # controls and bidi overrides in the strings.
    sent, expected = [], []
    for (kind, value), end in lines:
        if kind == "doc":
            sent.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + end)
            expected.append(escape_text(json.dumps(value, ensure_ascii=False, indent=2)).text)
        else:
            sent.append(value + end)
            expected.append(escape_text(value).text)
        expected.append("\n")
    data = ("".join(sent) + tail).encode()
    expected.append(escape_text(tail).text + ("\n" if tail else ""))

    def render(bounds: list[int]) -> list[Output]:
        renderer = connected()
        outputs = []
        for a, b in itertools.pairwise(bounds):
            outputs += renderer.render(Received(1, data[a:b], at=T))
        return outputs + renderer.render(Closed(1, "closed", len(data), 0))

    whole = render([0, len(data)])
    split = render([0, *sorted(c for c in cuts if c <= len(data)), len(data)])
    assert data_text(whole) == "".join(expected)
    assert char_styles(split) == char_styles(whole)
    assert not [char for char in data_text(split) if is_unsafe(char)]


def test_a_prompt_is_shown_at_once_and_a_document_without_a_newline_after_a_silence():
    renderer = connected()
    assert data_text(renderer.render(Received(1, b"Password: ", at=T))) == "Password: "
    assert renderer.next_due(T) is None
    assert data_text(renderer.render(Received(1, b'ok\n{"a":1}', at=T + 1))) == "ok\n"
    assert renderer.next_due(T + 1) == pytest.approx(JSON_SETTLE_SECONDS)
    # Later than a hex row or a character would wait: a document's rest may be a round
    # trip behind.
    assert data_text(renderer.tick(T + 1 + ROW_SETTLE_SECONDS)) == ""
    assert data_text(renderer.tick(T + 1 + JSON_SETTLE_SECONDS)) == '{\n  "a": 1\n}\n'
    assert renderer.next_due(T + 2) is None
    # The newline that comes late adds no empty line.
    assert data_text(renderer.render(Received(1, b"\r\nnext\n", at=T + 3))) == "next\n"


def test_a_document_split_by_a_short_pause_is_still_one_document():
    renderer = connected()
    outputs = renderer.render(Received(1, b'{"a":', at=T))
    outputs += renderer.render(Received(1, b'"\xe4\xb8', at=T + JSON_SETTLE_SECONDS / 2))
    outputs += renderer.render(Received(1, b'\xad"}\n', at=T + JSON_SETTLE_SECONDS))
    assert data_text(outputs) == '{\n  "a": "中"\n}\n'


def test_a_display_catching_up_judges_the_silence_by_the_receive_times():
    renderer = connected()
    outputs = renderer.render(Received(1, b'{"a":', at=T))
    outputs += renderer.render(Received(1, b"1}\n", at=T + 2 * JSON_SETTLE_SECONDS))
    assert data_text(outputs) == '{"a":1}\n'


def test_colours_and_escapes_in_a_stream():
    renderer = connected()
    outputs = renderer.render(Received(1, b'{"k": "\xc2\x9b\x1b", "n": 7}\n', at=T))
    # A raw ESC makes it invalid JSON: shown as text, escaped.
    assert data_text(outputs) == '{"k": "\\x9b\\x1b", "n": 7}\n'
    outputs = renderer.render(Received(1, b'{"k": "\xc2\x9b\\u001b", "n": 7}\n', at=T))
    text = outputs[0].text
    assert text.plain == '{\n  "k": "\\x9b\\u001b",\n  "n": 7\n}\n'
    assert style_at(text, text.plain.index('"k"')).color.name == "blue"
    assert style_at(text, text.plain.index("\\x9b")).color.name == "magenta"
    assert style_at(text, text.plain.index("7")).color.name == "cyan"


def test_the_views_encoding_decodes_documents():
    renderer = connected(View("json", "gbk"))
    data = '{"状态": "正常"}\n'.encode("gbk")
    assert data_text(renderer.render(Received(1, data, at=T))) == '{\n  "状态": "正常"\n}\n'
    datagram = '["温度", 21.5]'.encode("gbk")
    outputs = renderer.render(Received(1, datagram, datagram=True, at=T))
    assert data_text(outputs).splitlines()[1:] == ["[", '  "温度",', "  21.5", "]"]


def test_without_styles_nothing_is_coloured():
    renderer = connected(styles=False)
    outputs = renderer.render(Received(1, b'{"a": [true, null]}\nplain \x1b\n', at=T))
    assert data_text(outputs) == '{\n  "a": [\n    true,\n    null\n  ]\n}\nplain \\x1b\n'
    assert all(not out.text.spans for out in outputs)


# ---- blocks: datagrams, frames, sends ------------------------------------------------------


def test_each_datagram_that_is_a_document_is_indented():
    renderer = connected()
    outputs = renderer.render(Received(1, b'{"op":"pong","t":[1,2]}', datagram=True, at=T))
    assert data_text(outputs).splitlines()[1:] == [
        "{",
        '  "op": "pong",',
        '  "t": [',
        "    1,",
        "    2",
        "  ]",
        "}",
    ]
    outputs = renderer.render(Received(1, b"not json \x1b", datagram=True, at=T))
    assert data_text(outputs).splitlines()[1:] == ["not json \\x1b"]
    # A datagram of JSON lines: each line on its own.
    outputs = renderer.render(Received(1, b'[1]\n{"a":', datagram=True, at=T))
    assert data_text(outputs).splitlines()[1:] == ["[", "  1", "]", '{"a":']


def test_a_frame_that_is_a_document_is_indented_even_across_lines():
    renderer = connected(View("json", framing=Framing("idle", idle_ms=20)))
    assert data_text(renderer.render(Received(1, b'{\n"a"', at=T))) == ""
    assert data_text(renderer.render(Received(1, b": 1}", at=T + 0.01))) == ""
    outputs = renderer.tick(T + 0.05)
    assert data_text(outputs).splitlines()[1:] == ["{", '  "a": 1', "}"]


def test_line_framing_shows_each_line_as_a_block():
    renderer = connected(View("json", framing=Framing("line")))
    outputs = renderer.render(Received(1, b'[1]\r\nhi\n{"b"', at=T))
    outputs += renderer.render(Received(1, b":2}\n", at=T))
    assert [line for line in data_text(outputs).splitlines() if not line.startswith("──")] == [
        "[",
        "  1",
        "]",
        "hi",
        "{",
        '  "b": 2',
        "}",
    ]


def test_a_sent_document_is_indented_in_the_sent_colour():
    renderer = connected(View("json", timestamps="on"))
    outputs = renderer.render(Sent(1, b'{"op":"ping"}\n', as_hex=False, at=T))
    body = outputs[-1].text
    assert body.plain == '{\n  "op": "ping"\n}\n'
    assert style_at(body, body.plain.index("ping")).color.name == "cyan"


# ---- switches, pauses, the end -------------------------------------------------------------


def test_a_text_line_left_open_goes_on_as_text_after_a_switch_to_json():
    renderer = connected(View("text"))
    outputs = renderer.render(Received(1, b"abc", at=T))
    outputs += renderer.render(ViewChanged(JSON))
    outputs += renderer.render(Received(1, b' {"a":1}\n[1]\n', at=T))
    assert data_text(outputs) == 'abc {"a":1}\n[\n  1\n]\n'


def test_a_held_line_is_shown_in_the_json_view_before_a_switch_away():
    renderer = connected()
    outputs = renderer.render(Received(1, b'{"a":1}', at=T))
    outputs += renderer.render(ViewChanged(View("hex")))
    outputs += renderer.render(Received(1, b"\n", at=T))
    outputs += renderer.render(Closed(1, "closed", 8, 0))
    assert data_text(outputs).startswith('{\n  "a": 1\n}\n00000007  0a')


def test_a_character_split_across_a_switch_to_json_is_kept_whole():
    renderer = connected(View("text"))
    outputs = renderer.render(Received(1, b'["\xe4', at=T))
    outputs += renderer.render(ViewChanged(JSON))
    outputs += renderer.render(Received(1, b'\xb8\xad"]\n', at=T))
    # The line began in the text view: it stays text.
    assert data_text(outputs) == '["中"]\n'


def test_pause_and_close_show_what_is_held():
    renderer = connected()
    outputs = renderer.render(Received(1, b'{"a":1}', at=T))
    outputs += renderer.render(PauseChanged(True, at=T))
    assert data_text(outputs) == '{\n  "a": 1\n}\n'
    renderer = connected()
    outputs = renderer.render(Received(1, b'[1, "unfinished', at=T))
    outputs += renderer.render(Closed(1, "closed", 15, 0))
    assert data_text(outputs) == '[1, "unfinished\n'
