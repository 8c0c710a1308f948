"""interception: a relay's holds, held frames and rewrites, with bytes alone (no sockets):
order is kept, an end of stream waits behind held frames, what is held is bounded, rewrites
see whole frames and recompute checksums, and a direction no rule concerns goes straight
through."""

from __future__ import annotations

import re

import pytest

from netrepl.errors import UsageError
from netrepl.framing import Framing
from netrepl.interception import (
    HELD_LIMIT,
    Forward,
    Interceptor,
    PassEnd,
    PauseReading,
    Tell,
)
from netrepl.payload import SendContext, build_payload
from netrepl.watch import compile_hex_pattern, compile_text_pattern, expand_reply

LINE = Framing("line")


def forwarded(actions):
    return [(a.flow, a.side, a.data) for a in actions if isinstance(a, Forward)]


def told(actions):
    return [a.text for a in actions if isinstance(a, Tell)]


def text_replacement(text, hex=False):
    def replace(match, before):
        return build_payload(
            expand_reply(text, match, hex=hex),
            input_mode="hex" if hex else "text",
            encoding="utf-8",
            escapes=True,
            eol="none",
            context=SendContext(before=before),
        )

    return replace


def test_a_side_no_rule_concerns_takes_the_fast_path():
    interceptor = Interceptor(LINE)
    assert not interceptor.busy(1, "client")
    interceptor.hold(["client"])
    assert interceptor.busy(1, "client") and interceptor.busy(7, "client")
    assert not interceptor.busy(1, "upstream")


def test_held_frames_are_numbered_in_arrival_order_and_forwarded_up_to_n_in_order():
    interceptor = Interceptor(LINE)
    interceptor.hold(["client"])
    actions = interceptor.arrived(1, "client", b"one\ntwo\nthr", 0.0)
    assert forwarded(actions) == []
    assert [n for n in interceptor.held] == [1, 2]
    assert "held 1: #1 client → upstream, 4 bytes (/forward 1, /drop 1)" in told(actions)
    interceptor.arrived(1, "client", b"ee\n", 0.1)
    actions = interceptor.forward("2")  # 2 and what was held before it in its direction
    assert forwarded(actions) == [(1, "client", b"one\n"), (1, "client", b"two\n")]
    assert told(actions) == ["forwarded frames 1-2 (8 bytes)"]
    assert list(interceptor.held) == [3]


def test_forward_n_takes_only_its_own_direction():
    interceptor = Interceptor(LINE)
    interceptor.hold(["client", "upstream"])
    interceptor.arrived(1, "client", b"a\n", 0.0)  # 1
    interceptor.arrived(1, "upstream", b"b\n", 0.0)  # 2
    interceptor.arrived(2, "client", b"c\n", 0.0)  # 3
    interceptor.arrived(1, "client", b"d\n", 0.0)  # 4
    actions = interceptor.forward("4")
    assert forwarded(actions) == [(1, "client", b"a\n"), (1, "client", b"d\n")]
    assert list(interceptor.held) == [2, 3]


def test_forward_without_a_number_steps_through_the_oldest():
    interceptor = Interceptor(LINE)
    interceptor.hold(["upstream"])
    interceptor.arrived(3, "upstream", b"x\ny\n", 0.0)
    assert forwarded(interceptor.forward(None)) == [(3, "upstream", b"x\n")]
    assert forwarded(interceptor.forward(None)) == [(3, "upstream", b"y\n")]
    with pytest.raises(UsageError, match="nothing is held"):
        interceptor.forward(None)


def test_drop_discards_one_frame_and_says_who_never_sees_it():
    interceptor = Interceptor(LINE)
    interceptor.hold(["client"])
    interceptor.arrived(1, "client", b"a\nb\n", 0.0)
    actions = interceptor.drop("1")
    assert forwarded(actions) == []
    assert told(actions) == ["dropped frame 1 (2 bytes): never seen by #1 upstream"]
    assert list(interceptor.held) == [2]


@pytest.mark.parametrize("which", ["9", "x", "-1", ""])
def test_forwarding_or_dropping_a_frame_not_held_is_one_line(which):
    interceptor = Interceptor(LINE)
    interceptor.hold(["client"])
    interceptor.arrived(1, "client", b"a\n", 0.0)
    for release in (interceptor.forward, interceptor.drop):
        with pytest.raises(UsageError, match="no held frame"):
            release(which)
    assert list(interceptor.held) == [1]


def test_what_follows_a_held_frame_waits_behind_it_even_after_hold_off_for_that_side():
    interceptor = Interceptor(LINE)
    interceptor.hold(["client", "upstream"])
    interceptor.arrived(1, "client", b"first\n", 0.0)
    actions = interceptor.hold(["upstream"])  # the client's frames go, in order
    assert forwarded(actions) == [(1, "client", b"first\n")]
    interceptor.arrived(1, "upstream", b"u1\n", 0.0)
    interceptor.hold([])  # every side released
    assert forwarded(interceptor.arrived(1, "upstream", b"u2\n", 0.0)) == [(1, "upstream", b"u2\n")]


def test_a_frame_arriving_while_others_wait_is_held_too_so_the_stream_keeps_its_order():
    interceptor = Interceptor(LINE)
    interceptor.hold(["client"])
    interceptor.arrived(1, "client", b"a\n", 0.0)
    interceptor.hold([])  # releases frame 1
    interceptor.hold(["client"])
    interceptor.arrived(1, "client", b"b\n", 0.0)  # held as 2
    interceptor.holding = frozenset()  # a rule change that did not release (as a race would)
    actions = interceptor.arrived(1, "client", b"c\n", 0.0)
    assert forwarded(actions) == []  # c waits behind b
    assert forwarded(interceptor.forward("all")) == [(1, "client", b"b\n"), (1, "client", b"c\n")]


def test_an_end_of_stream_waits_until_nothing_of_its_side_is_held():
    interceptor = Interceptor(LINE)
    interceptor.hold(["client"])
    interceptor.arrived(1, "client", b"req\npartial", 0.0)
    actions = interceptor.ended(1, "client")
    # The unfinished line is a last frame, held too; the end is not passed on yet.
    assert [a for a in actions if isinstance(a, PassEnd)] == []
    assert list(interceptor.held) == [1, 2]
    actions = interceptor.forward("all")
    assert forwarded(actions) == [(1, "client", b"req\n"), (1, "client", b"partial")]
    assert actions[-1] == PassEnd(1, "client")


def test_an_end_of_stream_with_nothing_held_is_passed_on_at_once():
    assert Interceptor(LINE).ended(4, "upstream") == [PassEnd(4, "upstream")]


def test_held_bytes_are_bounded_reading_that_side_pauses_and_resumes():
    interceptor = Interceptor(Framing("len", length=1024 * 1024))
    interceptor.hold(["upstream"])
    chunk = b"\0" * (1024 * 1024)
    pauses = []
    for index in range(HELD_LIMIT // len(chunk)):
        pauses += [
            a
            for a in interceptor.arrived(1, "upstream", chunk, index)
            if isinstance(a, PauseReading)
        ]
    assert pauses == [PauseReading(1, "upstream", True)]
    actions = interceptor.drop("all")
    assert PauseReading(1, "upstream", False) in actions


def test_a_flow_that_ends_with_frames_held_says_they_were_never_forwarded():
    interceptor = Interceptor(LINE)
    interceptor.hold(["client"])
    interceptor.arrived(2, "client", b"a\nb\n", 0.0)
    assert told(interceptor.forget(2)) == [
        "#2 ended with frames 1-2 held (4 bytes): never forwarded"
    ]
    assert interceptor.held == {}


def test_idle_framing_ends_a_held_frame_after_the_silence():
    interceptor = Interceptor(Framing("idle", idle_ms=50))
    interceptor.hold(["client"])
    assert interceptor.arrived(1, "client", b"ab", 10.0) == []
    assert interceptor.due(10.02) == pytest.approx(0.03)
    assert told(interceptor.tick(10.06)) == [
        "held 1: #1 client → upstream, 2 bytes (/forward 1, /drop 1)"
    ]
    assert interceptor.due(10.1) is None


def test_a_rewrite_sees_a_match_split_across_reads_when_framing_by_line():
    interceptor = Interceptor(LINE)
    pattern = compile_text_pattern("GET /old", "utf-8")
    interceptor.add_rewrite(
        "client", pattern, text_replacement("GET /new"), "GET /old -> GET /new", False
    )
    assert forwarded(interceptor.arrived(1, "client", b"GET /o", 0.0)) == []
    actions = interceptor.arrived(1, "client", b"ld HTTP/1.0\r\n", 0.0)
    assert forwarded(actions) == [(1, "client", b"GET /new HTTP/1.0\r\n")]
    assert told(actions) == [
        "#1 client → upstream: rule 1 rewrote a frame (19 → 19 bytes): b'GET /new HTTP/1.0\\r\\n'"
    ]


def test_a_rewrite_recomputes_a_checksum_over_the_rewritten_frame():
    interceptor = Interceptor(Framing("len", length=8))
    request = bytes.fromhex("01 03 00 00 00 0a c5 cd")  # read 10 registers, CRC ok
    pattern = compile_hex_pattern("01 03 00 00 00 0a ?? ??")
    replacement = text_replacement("01 03 00 00 00 05 {crc16-modbus}", hex=True)
    interceptor.add_rewrite("client", pattern, replacement, "...", True)
    [(_, _, rewritten)] = forwarded(interceptor.arrived(1, "client", request, 0.0))
    assert rewritten == bytes.fromhex("01 03 00 00 00 05 85 c9")


def test_a_rewrite_uses_groups_and_keeps_what_is_around_the_match():
    interceptor = Interceptor()
    pattern = compile_text_pattern(r"id=(\d+)", "utf-8")
    interceptor.add_rewrite("upstream", pattern, text_replacement(r"id=9\1"), "", False)
    actions = interceptor.arrived(1, "upstream", b"a id=4 b id=5\n", 0.0)
    assert forwarded(actions) == [(1, "upstream", b"a id=94 b id=95\n")]
    assert not interceptor.busy(1, "client")  # the client's data is not this rule's
    assert forwarded(interceptor.arrived(1, "client", b"id=4", 0.0)) == [(1, "client", b"id=4")]


def test_a_frame_that_does_not_match_goes_on_unchanged_and_unsaid():
    interceptor = Interceptor()
    pattern = compile_text_pattern("x", "utf-8")
    interceptor.add_rewrite("client", pattern, text_replacement("y"), "", False)
    actions = interceptor.arrived(1, "client", b"abc", 0.0)
    assert actions == [Forward(1, "client", b"abc")]


def test_a_rewrite_that_cannot_be_built_says_so_and_forwards_the_frame_as_it_was():
    def failing(match, before):
        raise UsageError("{time:x}: no such format")

    interceptor = Interceptor()
    interceptor.add_rewrite("client", re.compile(b"a"), failing, "", False)
    actions = interceptor.arrived(1, "client", b"abc", 0.0)
    assert forwarded(actions) == [(1, "client", b"abc")]
    assert told(actions) == ["#1 client → upstream: rule 1: {time:x}: no such format"]


def test_a_rewritten_frame_is_held_as_rewritten():
    interceptor = Interceptor(LINE)
    interceptor.add_rewrite("client", re.compile(b"a"), text_replacement("b"), "", False)
    interceptor.hold(["client"])
    interceptor.arrived(1, "client", b"aa\n", 0.0)
    assert interceptor.held[1].data == b"bb\n"


def test_unrewrite_removes_by_number_or_all_and_refuses_others():
    interceptor = Interceptor()
    for _ in range(3):
        interceptor.add_rewrite("client", re.compile(b"a"), text_replacement("b"), "", False)
    assert [r.number for r in interceptor.remove_rewrites("2")] == [2]
    with pytest.raises(UsageError, match=r"no rule '2' \(rules: 1, 3\)"):
        interceptor.remove_rewrites("2")
    assert [r.number for r in interceptor.remove_rewrites("all")] == [1, 3]
    assert not interceptor.busy(1, "client")


def test_a_new_frame_mode_flushes_what_the_old_one_had_begun():
    interceptor = Interceptor(LINE)
    interceptor.add_rewrite("client", re.compile(b"q"), text_replacement("Q"), "", False)
    assert forwarded(interceptor.arrived(1, "client", b"unfinished q", 0.0)) == []
    actions = interceptor.set_framing(Framing())
    assert forwarded(actions) == [(1, "client", b"unfinished Q")]


def test_a_rewrite_that_leaves_nothing_says_it_deleted_the_frame():
    interceptor = Interceptor(LINE)
    interceptor.add_rewrite("client", re.compile(b"^temp\\n"), text_replacement(""), "", False)
    actions = interceptor.arrived(1, "client", b"temp\n", 0.0)
    assert forwarded(actions) == []
    assert told(actions) == ["#1 client → upstream: rule 1 deleted a frame (5 bytes)"]


def test_what_a_flow_holds_is_counted_for_flows():
    interceptor = Interceptor(LINE)
    interceptor.hold(["client"])
    interceptor.arrived(1, "client", b"ab\ncd\n", 0.0)
    interceptor.arrived(2, "client", b"e\n", 0.0)
    assert (interceptor.held_of(1), interceptor.held_of(2), interceptor.held_of(3)) == (6, 2, 0)
    interceptor.forward("1")
    interceptor.drop("3")
    assert (interceptor.held_of(1), interceptor.held_of(2)) == (3, 0)
    interceptor.forget(1)
    assert interceptor.held_of(1) == 0
