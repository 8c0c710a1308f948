"""render: events in, outputs out. View switches apply to later bytes only, held-back bytes carry
over, hexdump offsets run over each connection's stream, Closed flushes and ends the line, and no
output (but the raw view's) ever holds a raw control character or interprets rich markup."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Span, Text
from rich.theme import Theme

from netrepl.codec import decode_whole, escape_text
from netrepl.events import (
    Closed,
    Connected,
    Noticed,
    Received,
    Sent,
    Skipped,
    Submitted,
    ViewChanged,
)
from netrepl.hexdump import format_hexdump
from netrepl.render import STYLES, Output, Renderer
from netrepl.styledtext import StyledText
from netrepl.view import View
from tests.core.renderers import ReadByRead

HEX = View("hex")
RAW = View("raw")
UTF8 = View("text", "utf-8")


def hexline(offset: int, hexes: str, gutter: str) -> str:
    """One `hexdump -C` line, hexes given as typed in the 48-column field."""
    return f"{offset:08x}  {hexes:<48}  |{gutter}|"


def connected(view: View = UTF8, conn: int = 1) -> Renderer:
    renderer = ReadByRead(view)
    renderer.render(Connected(conn, "127.0.0.1:7", "127.0.0.1:50000"))
    return renderer


def shown(outputs: list[Output]) -> list[tuple[str, str]]:
    """(channel, plain text) of each output; fails on a raw one."""
    assert all(out.text is not None for out in outputs)
    return [(out.channel, out.text.plain) for out in outputs]


def data_text(outputs: list[Output]) -> str:
    return "".join(out.text.plain for out in outputs if out.channel == "data")


def style_at(text, offset: int):
    """The style a terminal would show at `offset`, with netrepl's theme."""
    console = Console(file=io.StringIO(), color_system="standard", theme=Theme(STYLES))
    return text.to_rich().get_style_at_offset(console, offset)


def is_unsafe(char: str) -> bool:
    code = ord(char)
    return (
        (code < 0x20 and char not in "\t\n")
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or code in (0x061C, 0x200E, 0x200F)
        or 0x2028 <= code <= 0x202E
        or 0x2066 <= code <= 0x2069
    )


# ---- View switches ------------------------------------------------------------------------


def test_view_switch_applies_only_to_later_bytes():
    renderer = connected()
    assert shown(renderer.render(Received(1, b"ab"))) == [("data", "ab")]
    assert renderer.render(ViewChanged(HEX)) == []
    assert shown(renderer.render(Received(1, b"cd"))) == [
        ("data", "\n" + hexline(2, "63 64", "cd") + "\n")
    ]
    assert renderer.render(ViewChanged(UTF8)) == []
    assert shown(renderer.render(Received(1, b"e\x1b"))) == [("data", "e\\x1b")]


def test_partial_character_carries_into_a_new_text_decoder():
    renderer = connected()
    assert shown(renderer.render(Received(1, b"x\xe4\xb8"))) == [("data", "x")]
    assert renderer.render(ViewChanged(View("text", "auto"))) == []
    assert shown(renderer.render(Received(1, b"\xad"))) == [("data", "中")]


def test_gbk_lead_byte_carries_into_gb18030():
    renderer = connected(View("text", "gbk"))
    assert renderer.render(Received(1, b"\xd6")) == []
    assert renderer.render(ViewChanged(View("text", "gb18030"))) == []
    assert shown(renderer.render(Received(1, b"\xd0"))) == [("data", "中")]


def test_partial_character_carries_into_hex_at_its_offset():
    renderer = connected()
    assert shown(renderer.render(Received(1, b"abc\xe4\xb8"))) == [("data", "abc")]
    assert shown(renderer.render(ViewChanged(HEX))) == [
        ("data", "\n" + hexline(3, "e4 b8", "..") + "\n")
    ]
    assert shown(renderer.render(Received(1, b"\xad"))) == [("data", hexline(5, "ad", ".") + "\n")]


def test_hex_block_after_a_finished_text_line_adds_no_blank_line():
    renderer = connected()
    renderer.render(Received(1, b"ok\r\n"))
    renderer.render(ViewChanged(HEX))
    assert data_text(renderer.render(Received(1, b"Z"))) == hexline(4, "5a", "Z") + "\n"


def test_cr_lf_split_across_a_text_view_switch_is_one_line_end():
    renderer = connected()
    assert data_text(renderer.render(Received(1, b"a\r"))) == "a\n"
    renderer.render(ViewChanged(View("text", "gbk")))
    assert data_text(renderer.render(Received(1, b"\nb"))) == "b"


def test_view_change_reaches_every_open_connection():
    renderer = connected()
    renderer.render(Connected(2, "127.0.0.1:8", "127.0.0.1:50001"))
    renderer.render(Received(1, b"\xe4"))
    renderer.render(Received(2, b"\xe4\xb8"))
    switched = shown(renderer.render(ViewChanged(HEX)))
    assert switched == [
        ("data", hexline(0, "e4", ".") + "\n"),
        ("data", hexline(0, "e4 b8", "..") + "\n"),
    ]


def test_connection_opened_after_a_switch_starts_in_the_new_view():
    renderer = ReadByRead(UTF8)
    renderer.render(ViewChanged(HEX))
    renderer.render(Connected(1, "p", "l"))
    assert data_text(renderer.render(Received(1, b"A"))) == hexline(0, "41", "A") + "\n"


# ---- Hex offsets and echo -----------------------------------------------------------------


def test_hexdump_offsets_run_over_the_stream_and_restart_per_connection():
    renderer = connected(HEX)
    assert data_text(renderer.render(Received(1, b"A" * 20))) == (
        hexline(0, "41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41", "A" * 16)
        + "\n"
        + hexline(0x10, "41 41 41 41", "AAAA")
        + "\n"
    )
    assert data_text(renderer.render(Received(1, b"BBB"))) == (
        hexline(0x14, "42 42 42", "BBB") + "\n"
    )
    renderer.render(Closed(1, "closed by peer", 23, 0))
    renderer.render(Connected(1, "127.0.0.1:7", "127.0.0.1:50002"))
    assert data_text(renderer.render(Received(1, b"C"))) == hexline(0, "43", "C") + "\n"
    renderer.render(Connected(2, "127.0.0.1:8", "127.0.0.1:50003"))
    assert data_text(renderer.render(Received(2, b"D"))) == hexline(0, "44", "D") + "\n"
    assert data_text(renderer.render(Received(1, b"E"))) == hexline(1, "45", "E") + "\n"


def test_sent_hex_is_echoed_as_a_hexdump_at_the_sent_offset():
    renderer = connected()
    assert renderer.render(Sent(1, b"hello\n", as_hex=False)) == []
    outputs = renderer.render(Sent(1, b"\x01\x03\x00", as_hex=True))
    assert shown(outputs) == [("echo", hexline(6, "01 03 00", "...") + "\n")]
    assert outputs[0].text.style == "netrepl.sent"
    # Received bytes have their own offsets.
    renderer.render(ViewChanged(HEX))
    assert data_text(renderer.render(Received(1, b"r"))) == hexline(0, "72", "r") + "\n"
    renderer.render(Connected(1, "p", "l"))
    assert shown(renderer.render(Sent(1, b"\xff", as_hex=True))) == [
        ("echo", hexline(0, "ff", ".") + "\n")
    ]


# ---- Closing ------------------------------------------------------------------------------


def test_closed_flushes_a_partial_character_and_ends_the_line():
    renderer = connected()
    assert data_text(renderer.render(Received(1, b"ok\xe4\xb8"))) == "ok"
    outputs = renderer.render(Closed(1, "closed by peer", 5, 1))
    assert shown(outputs) == [
        ("data", "\\xe4\\xb8"),
        ("data", "\n"),
        ("status", "closed by peer (5 bytes received, 1 sent)"),
    ]
    assert [(s.start, s.end, s.style) for s in outputs[0].text.spans] == [(0, 8, "netrepl.invalid")]


def test_closed_ends_an_open_prompt_line():
    renderer = connected()
    renderer.render(Received(1, b"login: "))
    assert shown(renderer.render(Closed(1, "closed by peer", 7, 0))) == [
        ("data", "\n"),
        ("status", "closed by peer (7 bytes received, 0 sent)"),
    ]


def test_closed_after_a_finished_line_adds_no_newline():
    renderer = connected()
    renderer.render(Received(1, b"bye\n"))
    assert shown(renderer.render(Closed(1, "closed by peer", 1, 2048))) == [
        ("status", "closed by peer (1 byte received, 2,048 sent)")
    ]


def test_closed_in_hex_view_adds_no_data():
    renderer = connected(HEX)
    renderer.render(Received(1, b"x"))
    assert shown(renderer.render(Closed(1, "closed", 1, 0))) == [
        ("status", "closed (1 byte received, 0 sent)")
    ]


def test_failed_close_is_an_error():
    renderer = connected()
    assert shown(renderer.render(Closed(1, "connection reset", 0, 0, failed=True))) == [
        ("error", "connection reset (0 bytes received, 0 sent)")
    ]


def test_closed_ends_a_text_line_left_open_before_a_switch_to_hex():
    renderer = connected()
    renderer.render(Received(1, b"login: "))
    renderer.render(ViewChanged(HEX))
    assert data_text(renderer.render(Closed(1, "closed by peer", 7, 0))) == "\n"


# ---- Safety and other events --------------------------------------------------------------

VIEWS = st.sampled_from(
    [
        UTF8,
        HEX,
        View("text", "gbk"),
        View("text", "gb18030"),
        View("text", "iso8859-1"),
        View("text", "auto"),
        View("hex", "gbk"),
        View("json"),
        View("json", "gbk"),
        View("json", timestamps="on"),
    ]
)
CHUNKS = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"\x1b[2J", b"\r", b"\n", b"\xe4", b"\xb8\xad", b"\xc2\x9b", b"\xe2\x80\xae"]),
    # JSON whose strings hold C1 controls, bidi overrides and undecodable bytes.
    st.sampled_from([b'{"a": "', b'"}\n', b'["\xc2\x9b\xe2\x80\xae\xff\x7f"]\n', b"[1,", b"2]"]),
)


OUTSIDE_TEXT = st.text(
    st.one_of(st.characters(), st.integers(0, 0x9F).map(chr), st.integers(0xD800, 0xDFFF).map(chr))
)
STEPS = st.one_of(
    CHUNKS.map(lambda b: Received(1, b)),
    VIEWS.map(ViewChanged),
    CHUNKS.map(lambda b: Sent(1, b, as_hex=True)),
    OUTSIDE_TEXT.map(lambda t: Submitted("> ", t)),
    OUTSIDE_TEXT.map(Noticed),
)


@given(start=VIEWS, steps=st.lists(STEPS), reason=OUTSIDE_TEXT)
def test_no_output_ever_holds_a_raw_control_character(start, steps, reason):
    renderer = connected(start)
    for event in [*steps, Closed(1, reason, 0, 0)]:
        for out in renderer.render(event):
            assert out.text is not None and out.raw == b""
            assert not [char for char in out.text.plain if is_unsafe(char)], out.text.plain


@pytest.mark.parametrize("encoding", ["utf-8", "gbk", "auto"])
@given(data=st.binary(max_size=64), cuts=st.lists(st.integers(0, 64), max_size=6))
def test_text_view_shows_any_split_as_the_whole(encoding, data, cuts):
    renderer = connected(View("text", encoding))
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    outputs = []
    for a, b in itertools.pairwise(bounds):
        outputs += renderer.render(Received(1, data[a:b]))
    outputs += renderer.render(Closed(1, "closed", len(data), 0))
    whole = decode_whole(data, encoding).text
    if whole and not whole.endswith("\n"):
        whole += "\n"
    assert data_text(outputs) == whole


@given(data=st.binary(max_size=64), cuts=st.lists(st.integers(0, 64), max_size=6))
def test_hex_view_shows_every_byte_once_at_its_offset(data, cuts):
    renderer = connected(HEX)
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    lines = []
    for a, b in itertools.pairwise(bounds):
        lines += data_text(renderer.render(Received(1, data[a:b]))).splitlines()
    position = 0
    for line in lines:
        assert int(line[:8], 16) == position
        chunk = bytes.fromhex(line[10:58])
        assert chunk == data[position : position + len(chunk)]
        position += len(chunk)
    assert position == len(data)


def test_hexdump_offsets_are_dimmed():
    # Two full rows, then (after the silence) the unfinished third row on its own.
    outputs = connected(HEX).render(Received(1, b"x" * 33))
    assert [[(s.start, s.end, s.style) for s in out.text.spans] for out in outputs] == [
        [(0, 8, "netrepl.offset"), (79, 87, "netrepl.offset")],
        [(0, 8, "netrepl.offset")],
    ]


def test_received_rich_markup_comes_out_literally():
    renderer = connected()
    outputs = renderer.render(Received(1, b"[bold]x[/bold] [red]y"))
    assert shown(outputs) == [("data", "[bold]x[/bold] [red]y")]
    assert outputs[0].text.spans == []
    # Printed by a console that does parse markup in strings, the Text still comes out as is.
    console = Console(file=io.StringIO(), color_system=None, theme=Theme(STYLES), markup=True)
    console.print(outputs[0].text.to_rich(), end="")
    assert console.file.getvalue() == "[bold]x[/bold] [red]y"


def test_escapes_are_styled_by_kind():
    renderer = connected()
    outputs = renderer.render(Received(1, b"a\x1bb\xff"))
    assert shown(outputs) == [("data", "a\\x1bb\\xff")]
    assert [(s.start, s.end, s.style) for s in outputs[0].text.spans] == [
        (1, 5, "netrepl.control"),
        (6, 10, "netrepl.invalid"),
    ]


def test_raw_view_passes_bytes_unchanged():
    renderer = connected(RAW)
    data = b"\x1b[2J\xff\r\n[bold]"
    assert renderer.render(Received(1, data)) == [Output("data", raw=data)]


def test_switch_to_raw_passes_held_back_bytes():
    renderer = connected()
    renderer.render(Received(1, b"a\xe4\xb8"))
    assert renderer.render(ViewChanged(RAW)) == [Output("data", raw=b"\xe4\xb8")]
    assert renderer.render(Received(1, b"\xad")) == [Output("data", raw=b"\xad")]


def test_submitted_line_is_echoed_escaped_after_the_prompt():
    renderer = ReadByRead(UTF8)
    outputs = renderer.render(Submitted("127.0.0.1:7> ", "[red]hi\x1b[2J"))
    assert shown(outputs) == [("echo", "127.0.0.1:7> [red]hi\\x1b[2J")]
    styles = [(s.start, s.end, s.style) for s in outputs[0].text.spans]
    assert (20, 24, "netrepl.control") in styles
    assert style_at(outputs[0].text, 0).bold


def test_only_the_prompt_of_an_echoed_line_is_bold():
    text = ReadByRead(UTF8).render(Submitted("p> ", "hello"))[0].text
    assert style_at(text, 0).bold
    assert not style_at(text, 3).bold


@pytest.mark.parametrize("level", ["status", "info", "error"])
def test_notices_are_escaped_on_their_channel(level):
    outputs = ReadByRead(UTF8).render(Noticed("bad\x07name\u202e", level))
    assert shown(outputs) == [(level, "bad\\x07name\\u202e")]
    assert outputs[0].text.style == f"netrepl.{level}"


def test_connected_peer_address_is_escaped():
    outputs = ReadByRead(UTF8).render(Connected(1, "evil\x1b]0;x\x07", "127.0.0.1:1"))
    assert shown(outputs) == [("status", "connected to evil\\x1b]0;x\\x07 from 127.0.0.1:1")]


def test_data_for_an_unannounced_connection_is_still_shown():
    renderer = ReadByRead(HEX)
    assert data_text(renderer.render(Received(5, b"q"))) == hexline(0, "71", "q") + "\n"


def test_unknown_event_is_a_type_error():
    with pytest.raises(TypeError):
        ReadByRead(UTF8).render("not an event")  # type: ignore[arg-type]


# ---- hex rows across reads ---------------------------------------------------------------------


def hex_stream() -> Renderer:
    """A plain renderer (rows are held as in the live display, not settled per read)."""
    renderer = Renderer(HEX)
    renderer.render(Connected(1, "127.0.0.1:7", "127.0.0.1:50000"))
    return renderer


def test_reads_close_together_continue_one_rows_of_16():
    renderer = hex_stream()
    assert renderer.render(Received(1, b"A" * 10, at=1.000)) == []
    assert data_text(renderer.render(Received(1, b"B" * 10, at=1.010))) == (
        hexline(0, "41 41 41 41 41 41 41 41  41 41 42 42 42 42 42 42", "A" * 10 + "B" * 6) + "\n"
    )
    assert renderer.next_due(1.020) == pytest.approx(0.020)
    assert renderer.tick(1.020) == []
    assert renderer.tick(1.050, idle=False) == [], "more may be queued: the row still waits"
    assert data_text(renderer.tick(1.050)) == hexline(0x10, "42 42 42 42", "BBBB") + "\n"
    assert renderer.next_due(1.050) is None


def test_a_read_after_a_silence_starts_a_line_of_its_own():
    renderer = hex_stream()
    renderer.render(Received(1, b"\x01\x03\x02", at=1.0))
    # The display is behind: the silence is in the reads' own times, not in the clock.
    assert data_text(renderer.render(Received(1, b"\x01\x03\x04\x00", at=2.0))) == (
        hexline(0, "01 03 02", "...") + "\n"
    )
    assert data_text(renderer.tick(2.5)) == hexline(3, "01 03 04 00", "....") + "\n"


@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_a_flood_in_any_reads_is_hexdump_c_of_the_stream(data, cuts):
    renderer = hex_stream()
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    text = ""
    for number, (a, b) in enumerate(itertools.pairwise(bounds)):
        text += data_text(renderer.render(Received(1, data[a:b], at=1.0 + number * 0.001)))
    text += data_text(renderer.render(Closed(1, "closed by peer", len(data), 0)))
    assert text == format_hexdump(data, 0)


def test_what_waits_for_its_row_is_shown_before_a_skip_a_switch_and_the_end():
    renderer = hex_stream()
    renderer.render(Received(1, b"abc", at=1.0))
    assert data_text(renderer.render(Skipped(1, 1000, 1, at=1.001))) == (
        hexline(0, "61 62 63", "abc") + "\n"
    )
    renderer.render(Received(1, b"de", at=1.002))
    assert data_text(renderer.render(ViewChanged(UTF8))) == hexline(1003, "64 65", "de") + "\n"
    renderer.render(ViewChanged(HEX))
    renderer.render(Received(1, b"f", at=1.003))
    assert data_text(renderer.render(Closed(1, "closed by peer", 1006, 0))) == (
        hexline(1005, "66", "f") + "\n"
    )


@given(st.text(), st.sampled_from(["", "netrepl.sent"]))
def test_styled_text_is_the_text_rich_would_make_of_escaped_text(raw, style):
    safe = escape_text(raw)
    spans = [Span(start, end, f"netrepl.{kind}") for start, end, kind in safe.escapes]
    made = StyledText(safe.text, style, spans=spans).to_rich()
    expected = Text(safe.text, style=style, spans=spans, end="")
    assert made.plain == expected.plain
    assert len(made) == len(expected)
    assert made.spans == expected.spans
    assert made.style == expected.style
    assert made.end == expected.end
    assert made == expected


def test_styled_text_of_a_hexdump_renders_as_rich_text_does():
    dump = format_hexdump(bytes(range(256)), 0x10)
    made = StyledText(dump, "netrepl.sent")
    made.append("tail")
    expected = Text(dump, style="netrepl.sent", end="")
    expected.append("tail")
    assert made.plain == expected.plain
    assert ansi(made.to_rich()) == ansi(expected)


def ansi(text: Text) -> str:
    console = Console(file=io.StringIO(), color_system="standard", theme=Theme(STYLES))
    console.print(text)
    return console.file.getvalue()
