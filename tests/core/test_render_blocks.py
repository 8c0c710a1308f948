"""render in block mode (/time on or delta, or any /frame but raw): each received frame and each
send is a header line (time or delta, arrow, who in listen mode, size) and then its body. Idle
frames end on tick(now); a framing switch ends the frames begun under the old one; /pause
counts what it hides and /resume sums it up; /stats and /clear answer in order. No block ever
holds a raw control character."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netrepl.events import (
    ClearRequested,
    Closed,
    Connected,
    PauseChanged,
    Received,
    Sent,
    StatsRequested,
    ViewChanged,
)
from netrepl.framing import Framing
from netrepl.render import Output, Renderer
from netrepl.view import View
from tests.core.test_render import connected, data_text, hexline, is_unsafe, shown
from tests.core.test_render_peers import PEERS, server
from tests.net.test_batch import parse_hexdump

T0 = 1_700_000_000.25
"""22:13:20.250 UTC."""
LINE = Framing("line")
TIMED = View("text", timestamps="on")
DELTA = View("text", timestamps="delta")
HEX_LINES = View("hex", framing=LINE)


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def blocks(outputs: list[Output]) -> list[str]:
    """The data text cut into blocks: each starts at a header line."""
    text = data_text(outputs)
    starts = [m.start() for m in re.finditer(r"(?m)^── ", text)]
    assert not starts or starts[0] == 0, f"data before the first header: {text!r}"
    return [text[a:b] for a, b in itertools.pairwise([*starts, len(text)])]


# ---- headers -------------------------------------------------------------------------------


def test_time_on_puts_a_header_with_the_clock_above_each_frame(utc):
    renderer = connected(TIMED)
    assert shown(renderer.render(Received(1, b"hello\n", at=T0))) == [
        ("data", "── 22:13:20.250 ← 6 bytes\n"),
        ("data", "hello\n"),
    ]
    assert data_text(renderer.render(Received(1, b"x\n", at=T0 + 61.009))) == (
        "── 22:14:21.259 ← 2 bytes\nx\n"
    )


def test_the_clock_is_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "XYZ-8")  # POSIX: eight hours east of UTC, no tz database needed
    time.tzset()
    try:
        renderer = connected(TIMED)
        header = data_text(renderer.render(Received(1, b"a", at=T0))).splitlines()[0]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert header == "── 06:13:20.250 ← 1 byte"


def test_the_header_is_styled_as_a_label(utc):
    header = connected(TIMED).render(Received(1, b"a", at=T0))[0]
    assert header.text.style == "netrepl.label"
    assert {span.style for span in header.text.spans} <= {"netrepl.label"}


def test_delta_headers_show_the_time_since_the_previous_block_either_way():
    renderer = connected(DELTA)
    outputs = renderer.render(Received(1, b"PING\r\n", at=100.0))
    outputs += renderer.render(Sent(1, b"+PONG\r\n", False, at=100.012))
    outputs += renderer.render(Received(1, b"later\n", at=102.5))
    outputs += renderer.render(Received(1, b"same time\n", at=102.5))
    assert [block.splitlines()[0] for block in blocks(outputs)] == [
        "── +0.000s ← 6 bytes",
        "── +0.012s → 7 bytes",
        "── +2.488s ← 6 bytes",
        "── +0.000s ← 10 bytes",
    ]


def test_timestamps_off_with_framing_still_makes_blocks():
    renderer = connected(View("text", framing=LINE))
    assert data_text(renderer.render(Received(1, b"a\nbc\n", at=1.0))) == (
        "── ← 2 bytes\na\n── ← 3 bytes\nbc\n"
    )


def test_sizes_are_counted_with_separators_and_the_singular():
    renderer = connected(View("hex", timestamps="delta"))
    headers = [
        data_text(renderer.render(Received(1, data, at=1.0))).splitlines()[0]
        for data in (b"x", b"x" * 1234)
    ]
    assert headers == ["── +0.000s ← 1 byte", "── +0.000s ← 1,234 bytes"]


def test_who_is_named_in_listen_mode_only(utc):
    client = connected(TIMED)
    listener = server(TIMED, conns=(1,))
    assert data_text(client.render(Received(1, b"hi\n", at=T0))).splitlines()[0] == (
        "── 22:13:20.250 ← 3 bytes"
    )
    assert data_text(listener.render(Received(1, b"hi\n", at=T0))).splitlines()[0] == (
        f"── 22:13:20.250 ← #1 {PEERS[1]} · 3 bytes"
    )
    assert data_text(listener.render(Sent(1, b"ok\n", False, at=T0))).splitlines()[0] == (
        f"── 22:13:20.250 → #1 {PEERS[1]} · 3 bytes"
    )


def test_blocks_of_several_clients_need_no_label_lines():
    renderer = server(DELTA, conns=(1, 2))
    outputs = renderer.render(Received(1, b"one\n", at=1.0))
    outputs += renderer.render(Received(2, b"two\n", at=1.5))
    outputs += renderer.render(Received(1, b"three\n", at=2.0))
    assert data_text(outputs) == (
        f"── +0.000s ← #1 {PEERS[1]} · 4 bytes\none\n"
        f"── +0.500s ← #2 {PEERS[2]} · 4 bytes\ntwo\n"
        f"── +0.500s ← #1 {PEERS[1]} · 6 bytes\nthree\n"
    )


def test_a_hostile_peer_address_in_a_header_is_escaped():
    renderer = Renderer(DELTA)
    renderer.render(Connected(1, "evil\x1b[2J:1", "0.0.0.0:9", accepted=True))
    header = data_text(renderer.render(Received(1, b"x", at=1.0))).splitlines()[0]
    assert header == "── +0.000s ← #1 evil\\x1b[2J:1 · 1 byte"


# ---- bodies --------------------------------------------------------------------------------


def test_a_text_frame_without_a_newline_still_ends_its_line():
    renderer = connected(DELTA)
    outputs = renderer.render(Received(1, b"login: ", at=1.0))
    assert shown(outputs) == [
        ("data", "── +0.000s ← 7 bytes\n"),
        ("data", "login: "),
        ("data", "\n"),
    ]
    assert data_text(renderer.render(Received(1, b"root\n", at=2.0))) == (
        "── +1.000s ← 5 bytes\nroot\n"
    )


def test_a_cr_lf_is_one_line_end_in_a_block():
    renderer = connected(DELTA)
    assert data_text(renderer.render(Received(1, b"+OK\r\n", at=1.0))) == (
        "── +0.000s ← 5 bytes\n+OK\n"
    )


def test_a_character_split_across_frames_is_shown_whole_in_the_later_block():
    renderer = connected(View("text", framing=Framing("len", length=2)))
    outputs = renderer.render(Received(1, "中x".encode(), at=1.0))
    assert data_text(outputs) == "── ← 2 bytes\n── ← 2 bytes\n中x\n"


def test_the_first_block_ends_a_text_line_left_open_before_blocks_began():
    renderer = connected()
    assert data_text(renderer.render(Received(1, b"login: ", at=1.0))) == "login: "
    outputs = renderer.render(ViewChanged(DELTA))
    outputs += renderer.render(Received(1, b"x", at=2.0))
    assert data_text(outputs) == "\n── +0.000s ← 1 byte\nx\n"


def test_hex_offsets_run_on_across_frames():
    renderer = connected(HEX_LINES)
    outputs = renderer.render(Received(1, b"ab\ncd", at=1.0))
    outputs += renderer.render(Received(1, b"e\n", at=2.0))
    assert data_text(outputs) == (
        "── ← 3 bytes\n"
        + hexline(0, "61 62 0a", "ab.")
        + "\n── ← 4 bytes\n"
        + hexline(3, "63 64 65 0a", "cde.")
        + "\n"
    )


def test_hex_offsets_run_on_across_a_switch_into_blocks():
    renderer = connected(View("hex"))
    renderer.render(Received(1, b"0123456789abcdefg", at=1.0))
    renderer.render(ViewChanged(View("hex", timestamps="delta")))
    assert data_text(renderer.render(Received(1, b"Z", at=2.0))) == (
        "── +0.000s ← 1 byte\n" + hexline(17, "5a", "Z") + "\n"
    )


def test_line_framing_joins_reads_into_lines():
    renderer = connected(View("text", timestamps="delta", framing=LINE))
    outputs = renderer.render(Received(1, b"he", at=10.0))
    assert outputs == []
    outputs += renderer.render(Received(1, b"llo\nwor", at=10.25))
    outputs += renderer.render(Received(1, b"ld\n", at=10.5))
    # Each frame's time is its first byte's: 10.0 and 10.25.
    assert blocks(outputs) == ["── +0.000s ← 6 bytes\nhello\n", "── +0.250s ← 6 bytes\nworld\n"]


def test_a_stream_ending_shows_the_unfinished_frame():
    renderer = connected(View("text", framing=LINE))
    renderer.render(Received(1, b"a\nlogin: ", at=1.0))
    outputs = renderer.render(Closed(1, "connection closed by peer", 9, 0))
    assert shown(outputs) == [
        ("data", "── ← 7 bytes\n"),
        ("data", "login: "),
        ("data", "\n"),
        ("status", "connection closed by peer (9 bytes received, 0 sent)"),
    ]


def test_a_partial_character_at_the_end_stays_in_its_block():
    renderer = connected(DELTA)
    outputs = renderer.render(Received(1, b"a\xe4", at=1.0))
    outputs += renderer.render(Closed(1, "closed", 2, 0))
    assert data_text(outputs) == "── +0.000s ← 2 bytes\na\\xe4\n"


def test_hex_view_shows_each_frame_once_however_it_is_framed():
    data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(40))
    renderer = connected(View("hex", framing=Framing("delim", delimiter=b"\r\n")))
    outputs = []
    for index, piece in enumerate([data[:5], data[5:30], data[30:]]):
        outputs += renderer.render(Received(1, piece, at=float(index)))
    outputs += renderer.render(Closed(1, "closed", len(data), 0))
    parts = blocks(outputs)
    sizes = [int(re.match(r"── ← ([\d,]+) byte", part)[1]) for part in parts]
    assert sizes == [16, 9, 2, 40]
    assert parse_hexdump("".join(part.split("\n", 1)[1] for part in parts)) == data


# ---- idle framing on the display's clock -----------------------------------------------------


def test_an_idle_frame_ends_on_tick_once_the_silence_is_long_enough():
    renderer = connected(View("text", timestamps="delta", framing=Framing("idle", idle_ms=20)))
    assert renderer.next_due(100.0) is None, "nothing pending"
    assert renderer.render(Received(1, b"ab", at=100.000)) == []
    assert renderer.next_due(100.005) == pytest.approx(0.015)
    assert renderer.tick(100.010) == []
    assert renderer.render(Received(1, b"cd", at=100.015)) == []
    assert renderer.next_due(100.020) == pytest.approx(0.015)
    assert renderer.tick(100.030) == []
    assert data_text(renderer.tick(100.040)) == "── +0.000s ← 4 bytes\nabcd\n"
    assert renderer.next_due(100.040) is None
    assert renderer.tick(200.0) == []


def test_a_read_after_the_silence_ends_the_idle_frame_itself():
    renderer = connected(View("hex", framing=Framing("idle", idle_ms=20)))
    renderer.render(Received(1, b"ab", at=5.0))
    assert data_text(renderer.render(Received(1, b"cd", at=5.5))) == (
        "── ← 2 bytes\n" + hexline(0, "61 62", "ab") + "\n"
    )
    assert data_text(renderer.tick(5.6)) == "── ← 2 bytes\n" + hexline(2, "63 64", "cd") + "\n"


def test_next_due_is_the_soonest_of_all_connections():
    renderer = server(View("text", framing=Framing("idle", idle_ms=100)), conns=(1, 2))
    renderer.render(Received(1, b"x", at=10.00))
    renderer.render(Received(2, b"y", at=10.05))
    assert renderer.next_due(10.06) == pytest.approx(0.04)
    first = data_text(renderer.tick(10.11))
    assert first == f"── ← #1 {PEERS[1]} · 1 byte\nx\n"
    assert renderer.next_due(10.11) == pytest.approx(0.04)
    assert data_text(renderer.tick(10.2)) == f"── ← #2 {PEERS[2]} · 1 byte\ny\n"


def test_no_due_time_without_idle_framing():
    renderer = connected(View("text", framing=LINE))
    renderer.render(Received(1, b"pending", at=1.0))
    assert renderer.next_due(1.0) is None
    assert renderer.tick(1000.0) == []


# ---- switching framing ---------------------------------------------------------------------


def test_switching_framing_ends_the_frame_begun_under_the_old_one():
    renderer = connected(View("text", framing=LINE))
    assert renderer.render(Received(1, b"ab", at=1.0)) == []
    outputs = renderer.render(ViewChanged(View("text", framing=Framing("len", length=3))))
    assert data_text(outputs) == "── ← 2 bytes\nab\n"
    outputs = renderer.render(Received(1, b"cdef", at=2.0))
    assert data_text(outputs) == "── ← 3 bytes\ncde\n"
    # Back to raw: the pending byte is a last block, then bytes stream as they come.
    assert data_text(renderer.render(ViewChanged(View("text")))) == "── ← 1 byte\nf\n"
    assert shown(renderer.render(Received(1, b"gh", at=3.0))) == [("data", "gh")]


def test_switching_framing_flushes_every_connection():
    renderer = server(View("text", framing=LINE), conns=(1, 2))
    renderer.render(Received(1, b"one", at=1.0))
    renderer.render(Received(2, b"two", at=1.0))
    outputs = renderer.render(ViewChanged(View("text", framing=Framing("idle", idle_ms=5))))
    assert data_text(outputs) == (
        f"── ← #1 {PEERS[1]} · 3 bytes\none\n── ← #2 {PEERS[2]} · 3 bytes\ntwo\n"
    )


def test_turning_timestamps_on_keeps_the_pending_frame(utc):
    renderer = connected(View("text", framing=LINE))
    renderer.render(Received(1, b"ab", at=T0))
    assert renderer.render(ViewChanged(View("text", timestamps="on", framing=LINE))) == []
    assert data_text(renderer.render(Received(1, b"c\n", at=T0 + 1))) == (
        "── 22:13:20.250 ← 4 bytes\nabc\n"
    )


def test_a_view_switch_between_frames_keeps_hex_offsets_true():
    renderer = connected(View("text", framing=LINE))
    renderer.render(Received(1, b"ab\nc", at=1.0))
    renderer.render(ViewChanged(HEX_LINES))
    assert data_text(renderer.render(Received(1, b"d\n", at=2.0))) == (
        "── ← 3 bytes\n" + hexline(3, "63 64 0a", "cd.") + "\n"
    )


# ---- sent blocks ---------------------------------------------------------------------------


def test_a_send_is_a_block_with_its_body(utc):
    renderer = connected(TIMED)
    outputs = renderer.render(Sent(1, b"hello\n", False, at=T0))
    assert shown(outputs) == [("data", "── 22:13:20.250 → 6 bytes\n"), ("data", "hello\n")]
    assert {span.style for span in outputs[1].text.spans} == {"netrepl.sent"}


def test_a_sent_body_without_a_newline_ends_its_line_and_escapes_controls():
    renderer = connected(DELTA)
    assert data_text(renderer.render(Sent(1, b"AT\r", False, at=1.0))) == (
        "── +0.000s → 3 bytes\nAT\n"
    )
    assert data_text(renderer.render(Sent(1, b"\x1b[2J", False, at=1.0))) == (
        "── +0.000s → 4 bytes\n\\x1b[2J\n"
    )


def test_sent_blocks_in_hex_run_at_the_sent_offset():
    renderer = connected(View("hex", timestamps="delta"))
    renderer.render(Received(1, b"greeting", at=1.0))
    outputs = renderer.render(Sent(1, b"\x01\x03", True, at=2.0))
    outputs += renderer.render(Sent(1, b"\x05", True, at=2.0))
    assert data_text(outputs) == (
        "── +1.000s → 2 bytes\n"
        + hexline(0, "01 03", "..")
        + "\n── +0.000s → 1 byte\n"
        + hexline(2, "05", ".")
        + "\n"
    )


def test_one_send_to_all_clients_shows_its_body_once_and_each_copy_as_a_header():
    renderer = server(View("hex", timestamps="delta"), conns=(1, 2))
    renderer.render(Sent(2, b"zz", True, at=1.0))
    outputs = renderer.render(Sent(1, b"hi", False, at=2.0))
    outputs += renderer.render(Sent(2, b"hi", False, echo=False, at=2.0))
    assert data_text(outputs) == (
        f"── +1.000s → #1 {PEERS[1]} · 2 bytes\n"
        + hexline(0, "68 69", "hi")
        + f"\n── +0.000s → #2 {PEERS[2]} · 2 bytes\n"
    )
    # The copy's bytes still count in its client's stream.
    assert data_text(renderer.render(Sent(2, b"!", False, at=3.0))).endswith(
        hexline(4, "21", "!") + "\n"
    )


def test_a_hex_send_in_a_text_view_block_is_a_hexdump():
    renderer = connected(DELTA)
    assert data_text(renderer.render(Sent(1, b"\x01\x03\x00", True, at=1.0))) == (
        "── +0.000s → 3 bytes\n" + hexline(0, "01 03 00", "...") + "\n"
    )


def test_a_send_in_raw_view_is_no_block():
    renderer = connected(View("raw", timestamps="on"))
    # Only a hex send's echo, which batch mode does not write to stdout.
    outputs = renderer.render(Sent(1, b"x", False, at=1.0))
    outputs += renderer.render(Sent(1, b"\x01", True, at=1.0))
    assert [out.channel for out in outputs] == ["echo"]


# ---- pause and resume ----------------------------------------------------------------------


def test_pause_hides_received_data_and_resume_sums_it_up():
    renderer = connected(DELTA)
    assert shown(renderer.render(PauseChanged(True, 10.0))) == [
        ("status", "paused: received data is counted, not shown (/resume)")
    ]
    assert renderer.render(Received(1, b"secret", at=11.0)) == []
    assert renderer.render(Received(1, b"\n", at=11.5)) == []
    assert renderer.render(Sent(1, b"abc", False, at=11.7)) == []
    assert shown(renderer.render(PauseChanged(False, 12.5))) == [
        (
            "status",
            "resumed after 2.5 s; not shown meanwhile: 7 bytes received in 2 reads, 3 bytes sent",
        )
    ]
    assert data_text(renderer.render(Received(1, b"shown\n", at=13.0))) == (
        "── +0.000s ← 6 bytes\nshown\n"
    )


def test_the_summary_names_the_log_and_the_connections():
    renderer = server(View("text"), conns=(1, 2))
    renderer.render(PauseChanged(True, 0.0))
    renderer.render(Received(1, b"x", at=0.1))
    renderer.render(Received(2, b"y", at=0.2))
    assert shown(renderer.render(PauseChanged(False, 0.04, kept_in="/tmp/s.jsonl"))) == [
        (
            "status",
            "resumed after 0.0 s; not shown meanwhile: 2 bytes received in 2 reads from 2"
            " connections, 0 bytes sent (all of it is in /tmp/s.jsonl)",
        )
    ]


def test_the_summary_names_no_log_when_nothing_was_hidden():
    renderer = connected()
    renderer.render(PauseChanged(True, 0.0))
    assert shown(renderer.render(PauseChanged(False, 1.0, kept_in="s.jsonl"))) == [
        (
            "status",
            "resumed after 1.0 s; not shown meanwhile: 0 bytes received in 0 reads, 0 bytes sent",
        )
    ]


def test_one_byte_one_read_is_singular_in_the_summary():
    renderer = connected()
    renderer.render(PauseChanged(True, 0.0))
    renderer.render(Received(1, b"x", at=0.5))
    renderer.render(Sent(1, b"y", False, at=0.5))
    assert shown(renderer.render(PauseChanged(False, 1.0)))[0][1].endswith(
        "1 byte received in 1 read, 1 byte sent"
    )


def test_pausing_twice_and_resuming_unpaused_are_errors():
    renderer = connected()
    assert shown(renderer.render(PauseChanged(False, 0.0))) == [("error", "not paused")]
    renderer.render(PauseChanged(True, 0.0))
    renderer.render(Received(1, b"ab", at=0.5))
    assert shown(renderer.render(PauseChanged(True, 1.0))) == [
        ("error", "already paused (/resume shows again)")
    ]
    # The second /pause did not start the count again.
    assert "2 bytes received in 1 read" in shown(renderer.render(PauseChanged(False, 2.0)))[0][1]


def test_pause_ends_an_open_line_before_its_notice():
    renderer = connected()
    renderer.render(Received(1, b"login: ", at=0.0))
    assert shown(renderer.render(PauseChanged(True, 1.0)))[0] == ("data", "\n")


def test_each_pause_counts_afresh():
    renderer = connected()
    renderer.render(PauseChanged(True, 0.0))
    renderer.render(Received(1, b"abc", at=0.1))
    renderer.render(PauseChanged(False, 1.0))
    renderer.render(PauseChanged(True, 2.0))
    renderer.render(Received(1, b"d", at=2.1))
    assert "1 byte received in 1 read" in shown(renderer.render(PauseChanged(False, 3.0)))[0][1]


def test_hex_offsets_run_on_over_what_the_pause_hid():
    renderer = connected(View("hex", timestamps="delta"))
    renderer.render(Received(1, b"0123", at=1.0))
    renderer.render(PauseChanged(True, 2.0))
    renderer.render(Received(1, b"45678", at=3.0))
    renderer.render(Sent(1, b"sent", False, at=3.0))
    renderer.render(PauseChanged(False, 4.0))
    assert data_text(renderer.render(Received(1, b"9a", at=5.0))) == (
        "── +4.000s ← 2 bytes\n" + hexline(9, "39 61", "9a") + "\n"
    )
    assert data_text(renderer.render(Sent(1, b"!", False, at=5.0))).endswith(
        hexline(4, "21", "!") + "\n"
    )


def test_a_character_cut_by_the_pause_is_not_glued_together():
    renderer = connected(DELTA)
    renderer.render(Received(1, b"ok\n", at=0.0))
    renderer.render(PauseChanged(True, 1.0))
    renderer.render(Received(1, "中".encode()[:1], at=1.5))
    renderer.render(PauseChanged(False, 2.0))
    outputs = renderer.render(Received(1, "中".encode()[1:] + b"!", at=3.0))
    # The rest of the character is two invalid bytes, not 中 made of hidden and shown bytes.
    assert data_text(outputs) == "── +3.000s ← 3 bytes\n\\xb8\\xad!\n"


def test_the_pause_hides_frames_but_stats_count_every_byte():
    renderer = connected(View("text", framing=LINE))
    renderer.render(PauseChanged(True, 0.0))
    renderer.render(Received(1, b"a\nb\n", at=0.5))
    renderer.render(PauseChanged(False, 1.0))
    assert renderer.stats.received.bytes == 4
    assert renderer.stats.received.chunks == 1


def test_hex_offsets_stay_true_over_a_frame_cut_by_the_pause():
    renderer = connected(HEX_LINES)
    renderer.render(Received(1, b"ab", at=1.0))
    renderer.render(PauseChanged(True, 2.0))
    renderer.render(Received(1, b"cd\n", at=3.0))
    renderer.render(PauseChanged(False, 4.0))
    outputs = renderer.render(Received(1, b"ef\n", at=5.0))
    assert data_text(outputs).splitlines()[-1] == hexline(5, "65 66 0a", "ef.")


@pytest.mark.parametrize(
    ("view", "before", "expected"),
    [(HEX_LINES, b"ab", "61 62"), (View("text"), b"x\xe4", "\\xe4")],
)
def test_what_arrived_before_the_pause_is_shown_or_counted(view, before, expected):
    renderer = connected(view)
    outputs = renderer.render(Received(1, before, at=1.0))
    outputs += renderer.render(PauseChanged(True, 2.0))
    outputs += renderer.render(Received(1, b"\n", at=3.0))
    resumed = renderer.render(PauseChanged(False, 4.0))
    summary = shown(resumed)[-1][1]
    hidden = re.search(r"([\d,]+) bytes? received", summary)
    counted = hidden is not None and int(hidden[1]) > 1  # more than the one byte after it
    assert expected in data_text(outputs + resumed) or counted, (data_text(outputs), summary)


# ---- /stats and /clear ---------------------------------------------------------------------


def test_stats_answer_in_order_with_frames_as_the_display_cut_them():
    renderer = Renderer(View("text", framing=LINE))
    renderer.render(Connected(1, "127.0.0.1:7", "127.0.0.1:50000", at=100.0))
    renderer.render(Received(1, b"a\nb", at=100.5))
    renderer.render(Received(1, b"\nc\n", at=101.0))
    renderer.render(Sent(1, b"q\n", False, at=101.0))
    renderer.render(Sent(1, b"r\n", False, at=101.25))
    assert shown(renderer.render(StatsRequested(101.5))) == [
        (
            "info",
            "received 6 bytes in 2 reads, 3 frames; 6 B/s on average, peak 3 B/s\n"
            "sent     4 bytes in 2 sends, 2 frames; 4 B/s on average, peak 4 B/s\n"
            "#1 127.0.0.1:7: connected for 1s",
        )
    ]


def test_stats_count_what_the_pause_hid():
    renderer = connected()
    renderer.render(PauseChanged(True, 0.0))
    renderer.render(Received(1, b"x" * 2000, at=0.5))
    renderer.render(Received(1, b"y" * 48, at=0.6))
    report = shown(renderer.render(StatsRequested(1.5)))[0][1]
    assert report.startswith("received 2,048 bytes in 2 reads;")


def test_clear_asks_the_sink_to_clear():
    assert connected().render(ClearRequested()) == [Output("clear")]


# ---- latest_at -----------------------------------------------------------------------------


def test_latest_at_is_the_newest_data_event_time():
    renderer = Renderer(DELTA)
    assert renderer.latest_at == 0.0
    renderer.render(Connected(1, "a", "b", at=500.0))
    assert renderer.latest_at == 0.0, "only data moves the replay clock"
    renderer.render(Received(1, b"x", at=10.0))
    renderer.render(Sent(1, b"y", False, at=12.0))
    renderer.render(Received(1, b"z", at=11.0))
    assert renderer.latest_at == 12.0
    renderer.render(PauseChanged(True, 20.0))
    renderer.render(Received(1, b"hidden", at=30.0))
    assert renderer.latest_at == 30.0


# ---- properties ----------------------------------------------------------------------------

FRAMINGS = st.sampled_from(
    [
        Framing(),
        LINE,
        Framing("idle", idle_ms=20),
        Framing("len", length=3),
        Framing("delim", delimiter=b"\r\n"),
        Framing("delim", delimiter=b"\x1b"),
    ]
)
BLOCK_VIEWS = st.builds(
    View,
    st.sampled_from(["text", "hex"]),
    st.sampled_from(["utf-8", "gbk", "auto", "iso8859-1"]),
    st.sampled_from(["off", "on", "delta"]),
    FRAMINGS,
)
CHUNKS = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"\x1b[2J", b"\r", b"\n", b"\xe4", b"\xb8\xad", b"\xc2\x9b", b"\x9b6n"]),
)
TIMES = st.floats(0, 2e9, allow_nan=False)
CONNS = st.integers(1, 2)
STEPS = st.one_of(
    st.builds(Received, CONNS, CHUNKS, st.booleans(), TIMES),
    st.builds(Sent, CONNS, CHUNKS, st.booleans(), st.booleans(), TIMES),
    BLOCK_VIEWS.map(ViewChanged),
    st.builds(PauseChanged, st.booleans(), TIMES, st.sampled_from([None, "log\x1b.jsonl"])),
    st.builds(StatsRequested, TIMES),
    TIMES.map(lambda now: ("tick", now)),
)
NAMES = st.text(st.one_of(st.characters(), st.integers(0, 0x9F).map(chr)), max_size=10)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    view=BLOCK_VIEWS,
    accepted=st.booleans(),
    names=st.lists(NAMES, min_size=2, max_size=2),
    steps=st.lists(STEPS, max_size=25),
)
def test_no_block_output_holds_a_raw_control_character(view, accepted, names, steps):
    renderer = Renderer(view)
    events: list = [
        Connected(conn, name, "0.0.0.0:1", accepted=accepted) for conn, name in enumerate(names, 1)
    ]
    events += [*steps, Closed(1, "closed", 0, 0), Closed(2, "reset\x07", 0, 0, True)]
    for event in events:
        outputs = renderer.tick(event[1]) if isinstance(event, tuple) else renderer.render(event)
        for out in outputs:
            assert out.raw == b""
            if out.channel == "clear":
                continue
            assert out.text is not None
            assert not [char for char in out.text.plain if is_unsafe(char)], out.text.plain


@settings(deadline=None)
@given(
    framing=FRAMINGS,
    timestamps=st.sampled_from(["off", "on", "delta"]),
    data=st.binary(max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=6),
    gaps=st.lists(st.sampled_from([0.001, 0.05]), min_size=8, max_size=8),
)
def test_hex_blocks_show_every_byte_once_at_its_offset(framing, timestamps, data, cuts, gaps):
    view = View("hex", timestamps=timestamps, framing=framing)
    if not view.blocks:
        view = View("hex", timestamps="delta", framing=framing)
    renderer = connected(view)
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    outputs, at = [], 1000.0
    for (a, b), gap in zip(itertools.pairwise(bounds), gaps, strict=False):
        at += gap
        outputs += renderer.render(Received(1, data[a:b], at=at))
        outputs += renderer.tick(at)
    outputs += renderer.render(Closed(1, "closed", len(data), 0))
    parts = blocks(outputs)
    sizes = [int(re.search(r"← ([\d,]+) bytes?\n", part)[1].replace(",", "")) for part in parts]
    assert sum(sizes) == len(data)
    assert all(sizes), "no empty frame"
    assert parse_hexdump("".join(part.split("\n", 1)[1] for part in parts)) == data
