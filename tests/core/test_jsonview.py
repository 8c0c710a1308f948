"""The json view's core: documents re-indented from their own tokens, coloured, escaped, bounded;
a text stream cut into lines with only a possible document held back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.jsonview import JSON_MAX_CHARS, JsonLines, format_json
from netrepl.render import pieces_text
from tests.core.test_render import is_unsafe, style_at

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
CONTAINERS = st.one_of(
    st.lists(VALUES, max_size=4), st.dictionaries(st.text(max_size=8), VALUES, max_size=4)
)


@given(CONTAINERS)
def test_a_compact_document_is_indented_as_json_dumps_indents_it(value):
    # ensure_ascii (the default) writes every non-ASCII character as an escape: the
    # tokens are then the same in both, and only the blanks between them differ.
    formatted = format_json(json.dumps(value, separators=(",", ":")))
    assert formatted is not None
    assert formatted.plain == json.dumps(value, indent=2) + "\n"


def test_tokens_are_shown_as_they_came():
    # Numbers keep their digits (json.dumps would write 1.1, inf, or refuse 5000 digits),
    # escapes stay escapes, and a repeated key is shown twice.
    document = '{"n":1.10,"e":1E400,"u":"\\u00e9","k":1,"k":2,"big":' + "9" * 5000 + "}"
    formatted = format_json(document)
    assert formatted is not None
    assert formatted.plain.splitlines() == [
        "{",
        '  "n": 1.10,',
        '  "e": 1E400,',
        '  "u": "\\u00e9",',
        '  "k": 1,',
        '  "k": 2,',
        '  "big": ' + "9" * 5000,
        "}",
    ]


def test_blanks_around_a_document_and_empty_containers():
    formatted = format_json(' \t{"a": {}, "b": [ ], "c": [[]]}\r\n ')
    assert formatted is not None
    assert formatted.plain == '{\n  "a": {},\n  "b": [],\n  "c": [\n    []\n  ]\n}\n'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "42",
        '"a string"',
        "true",
        "null",
        "hello",
        '{"a": 1',
        '{"a": 1} trailing',
        '{"a": 1}{"b": 2}',
        "[1, 2,]",
        '{"a": "raw \x1b escape"}',  # JSON itself forbids raw C0 controls in strings
        "{'single': 'quotes'}",
    ],
)
def test_what_is_not_one_object_or_array_is_not_a_document(text):
    assert format_json(text) is None


def test_keys_strings_numbers_and_literals_are_coloured():
    formatted = format_json('{"key": "str", "n": -1.5e3, "t": true, "f": false, "z": null}')
    assert formatted is not None
    plain = formatted.plain

    def style(token: str) -> str:
        return str(style_at(formatted, plain.index(token)))

    assert style('"key"') == "bold blue"
    assert style('"str"') == "not bold not italic green"
    assert style("-1.5e3") == "bold not italic cyan"
    assert style("true") == "italic bright_green"
    assert style("false") == "italic bright_red"
    assert style("null") == "italic magenta"
    assert str(style_at(formatted, plain.index(":"))) == "none"


def test_without_styles_there_are_no_spans():
    formatted = format_json('{"a": "\\u001b", "b": "\u009b"}', styles=False)
    assert formatted is not None
    assert formatted.spans == []
    assert formatted.plain == '{\n  "a": "\\u001b",\n  "b": "\\x9b"\n}\n'


HOSTILE = st.text(
    st.one_of(
        st.characters(),
        st.integers(0, 0x9F).map(chr),
        st.integers(0x2000, 0x206F).map(chr),
        st.integers(0xD800, 0xDFFF).map(chr),
        st.sampled_from(["\x1b", "\x07", "\u009b", "\u202e", "\u2066", "\ufeff", "\x7f"]),
    )
)


@given(key=HOSTILE, value=HOSTILE)
def test_a_hostile_string_never_reaches_the_terminal_raw(key, value):
    # json.dumps(ensure_ascii=False) escapes only C0 controls, quotes and backslashes: DEL,
    # C1 controls, bidi overrides and lone surrogates are left raw in the document.
    document = "{%s: [%s]}" % (  # noqa: UP031
        json.dumps(key, ensure_ascii=False),
        json.dumps(value, ensure_ascii=False),
    )
    formatted = format_json(document)
    assert formatted is not None
    assert not [char for char in formatted.plain if is_unsafe(char)], formatted.plain


def test_escapes_in_strings_are_visible_and_styled_as_escapes():
    # U+DCFF is how the decoders carry an undecodable byte FF.
    formatted = format_json('["a\u009bb", "\u202eevil", "x\udcffy", "del\x7f"]')
    assert formatted is not None
    lines = formatted.plain.splitlines()
    assert lines[1:5] == ['  "a\\x9bb",', '  "\\u202eevil",', '  "x\\xffy",', '  "del\\x7f"']
    # The escape's style over the string's: as the text view shows escapes.
    control = style_at(formatted, formatted.plain.index("\\x9b"))
    invalid = style_at(formatted, formatted.plain.index("\\xff"))
    assert (control.color.name, control.bold) == ("magenta", True)
    assert (invalid.color.name, invalid.bold) == ("red", True)
    assert style_at(formatted, formatted.plain.index("evil")).color.name == "green"


def never_parsed(*args: object, **kwargs: object) -> None:
    raise AssertionError("parsed beyond the bound")


def test_a_document_over_the_bound_is_not_even_parsed(monkeypatch):
    # 5 MB: shown as text by the caller.
    big = "[" + ",".join(['{"id": 12345, "name": "a name"}'] * 170_000) + "]"
    assert len(big) > 5_000_000
    just = "[" + "1," * ((JSON_MAX_CHARS - 3) // 2) + "1]"
    assert len(just) <= JSON_MAX_CHARS
    assert format_json(just) is not None
    monkeypatch.setattr("json.loads", never_parsed)
    assert format_json(big) is None


def test_deep_nesting_is_text_not_a_crash_nor_a_flood_of_blanks():
    assert format_json("[" * 100_000 + "]" * 100_000) is None
    # Nesting Python parses, whose indentation would outgrow the bound on the output.
    deep = "[" * 900 + "]" * 900
    formatted = format_json(deep)
    assert formatted is None or len(formatted.plain) <= 4 * JSON_MAX_CHARS


# ---- JsonLines -----------------------------------------------------------------------------


def plain(pieces) -> str:
    return pieces_text(pieces).plain


def test_text_lines_and_a_prompt_are_shown_as_they_come():
    lines = JsonLines()
    assert plain(lines.feed("220 ready\nPassword: ")) == "220 ready\nPassword: "
    assert not lines.holding
    # The rest of a text line stays text, even if it looks like a document.
    assert plain(lines.feed('{"a": 1}\n')) == '{"a": 1}\n'


def test_a_line_that_may_be_a_document_is_held_until_its_end():
    lines = JsonLines()
    assert plain(lines.feed('ok\n{"a":')) == "ok\n"
    assert lines.holding
    assert plain(lines.feed(" [1, 2]}\nnext\n")) == '{\n  "a": [\n    1,\n    2\n  ]\n}\nnext\n'
    assert not lines.holding


def test_leading_blanks_are_held_until_the_line_shows_what_it_is():
    lines = JsonLines()
    assert plain(lines.feed("  ")) == ""
    assert lines.holding
    assert plain(lines.feed("x")) == "  x"
    assert not lines.holding
    lines = JsonLines()
    assert plain(lines.feed("  ")) + plain(lines.feed("[1]\n")) == "[\n  1\n]\n"


def test_a_released_document_without_a_newline_is_shown_and_its_late_newline_dropped():
    lines = JsonLines()
    assert plain(lines.feed('{"a":1}')) == ""
    assert plain(lines.release()) == '{\n  "a": 1\n}\n'
    assert plain(lines.feed("\nmore\n")) == "more\n"


def test_a_released_fragment_is_text_and_so_is_the_rest_of_its_line():
    lines = JsonLines()
    assert plain(lines.feed('{"a":')) == ""
    assert plain(lines.release()) == '{"a":'
    assert plain(lines.feed("1}\n[2]\n")) == "1}\n[\n  2\n]\n"


def test_a_line_over_the_bound_is_shown_as_text_as_it_comes():
    lines = JsonLines()
    chunk = '{"a": "' + "x" * 4096
    shown = ""
    for _ in range(JSON_MAX_CHARS // 4096 + 2):
        shown += plain(lines.feed(chunk))
    assert not lines.holding
    assert len(shown) > JSON_MAX_CHARS
    assert plain(lines.feed("more")) == "more"


def test_a_whole_block_is_one_document_or_else_line_by_line():
    lines = JsonLines()
    assert plain(lines.feed('{\n "a": 1\n}\n', whole=True)) == '{\n  "a": 1\n}\n'
    assert plain(lines.feed('[1]\nnot json\n{"b":2}', whole=True)) == (
        '[\n  1\n]\nnot json\n{\n  "b": 2\n}\n'
    )
    assert plain(lines.feed("prompt> ", whole=True)) == "prompt> "
    # Each block stands alone: the next one is looked at afresh.
    assert plain(lines.feed("[3]", whole=True)) == "[\n  3\n]\n"


def test_a_block_over_the_bound_is_text_however_small_its_lines(monkeypatch):
    block = '{"id": 1}\n' * (JSON_MAX_CHARS // 10 + 1)
    assert plain(JsonLines().feed(block[: JSON_MAX_CHARS // 2], whole=True)).startswith(
        '{\n  "id": 1\n}\n{\n'
    )
    monkeypatch.setattr("json.loads", never_parsed)
    assert plain(JsonLines().feed(block, whole=True)) == block
