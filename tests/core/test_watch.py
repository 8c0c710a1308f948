"""The watchers behind /expect and /when, and the script reader, without a socket.

Patterns are compiled and matched against bytes given by the test; the auto-replies answer
through a recording function instead of a transport, so every reply can be compared, in order,
however the stream was cut into reads.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.errors import ConnectError, ExitStatus, NetreplError, SendError, UsageError
from netrepl.events import Received, Sent
from netrepl.payload import SendContext, build_payload, parse_hex_line
from netrepl.script import ScriptError, read_script
from netrepl.watch import (
    WHEN_LIMIT_PER_SECOND,
    WINDOW,
    AutoReplies,
    ExpectBuffer,
    ExpectTimeout,
    Unmatched,
    compile_hex_pattern,
    compile_text_pattern,
    expand_reply,
)

# ---- compile_text_pattern -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "wire"),
    [("utf-8", "中文".encode()), ("gbk", "中文".encode("gbk")), ("gb18030", "中文".encode("gbk"))],
)
def test_text_pattern_is_encoded_in_the_session_encoding(encoding, wire):
    pattern = compile_text_pattern("温度 中文!", encoding)
    data = "温度 ".encode(encoding) + wire + b"!"
    assert pattern.search(b"<" + data + b">").group() == data
    # The same characters in another encoding are other bytes: no match.
    other = "gbk" if encoding == "utf-8" else "utf-8"
    assert pattern.search("温度 中文!".encode(other)) is None


def test_text_pattern_backslash_x_matches_a_byte():
    pattern = compile_text_pattern(r"^\xff\x00OK\r\n", "utf-8")
    assert pattern.search(b"\xff\x00OK\r\n")
    assert pattern.search(b"\xc3\xbf\x00OK\r\n") is None  # not the UTF-8 of U+00FF


def test_text_pattern_is_a_regular_expression_over_bytes():
    pattern = compile_text_pattern(r"\+PONG|-ERR (\w+)", "utf-8")
    assert pattern.search(b"-ERR unknown\r\n").group(1) == b"unknown"
    assert pattern.search(b"+PONG\r\n").group() == b"+PONG"
    assert pattern.search(b"PONG") is None


def test_a_surrogate_escaped_byte_in_a_pattern_is_that_byte():
    # A script line read with surrogateescape keeps a raw 0xff as U+DCFF.
    assert compile_text_pattern("a\udcffb", "utf-8").search(b"a\xffb")


@pytest.mark.parametrize(
    ("text", "encoding", "words"),
    [
        ("(unclosed", "utf-8", "missing )"),
        ("a{2,1}", "utf-8", "bad pattern"),
        ("*x", "utf-8", "nothing to repeat"),
        ("中文", "latin-1", "bad pattern '中文'"),
        ("x", "no-such-codec", "bad pattern 'x'"),
    ],
)
def test_bad_text_pattern_is_a_usage_error(text, encoding, words):
    with pytest.raises(UsageError, match=re.escape(words)):
        compile_text_pattern(text, encoding)


# ---- compile_hex_pattern --------------------------------------------------------------------


def test_hex_pattern_wildcard_matches_any_byte_including_newline():
    pattern = compile_hex_pattern("01 03 ?? 0a")
    for middle in (0x00, 0x0A, 0x2E, 0xFF):
        assert pattern.search(b"\x99\x01\x03" + bytes([middle]) + b"\x0a").group() == (
            b"\x01\x03" + bytes([middle]) + b"\x0a"
        )
    assert pattern.search(b"\x01\x03\x0a") is None  # ?? is exactly one byte
    assert pattern.search(b"\x01\x04\x00\x0a") is None


@pytest.mark.parametrize(
    "text",
    [
        "01 03 ff",
        "01,03,ff",
        "0103ff",
        "01 03FF",
        "0x01 0x03 0xff",
        "\\x01\\x03\\xff",
        " 01  03 ff ",
    ],
)
def test_hex_pattern_separators(text):
    assert compile_hex_pattern(text).search(b"\x00\x01\x03\xff").group() == b"\x01\x03\xff"


def test_hex_pattern_bytes_are_literal_not_regex():
    # 2e is '.', 2a is '*', 5c is '\\': each matches only itself.
    pattern = compile_hex_pattern("2e 2a 5c")
    assert pattern.search(b".*\\")
    assert pattern.search(b"a*\\") is None
    assert pattern.search(b".\\") is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no hex bytes given"),
        ("  ,  ", "no hex bytes given"),
        ("zz", "not a hex digit 'z'"),
        ("01 0", "odd number of hex digits"),
        ("01??", "not a hex digit '?'"),
        ("01 ? 02", "not a hex digit '?'"),
    ],
)
def test_bad_hex_pattern_is_a_usage_error(text, words):
    with pytest.raises(UsageError, match=re.escape(words)):
        compile_hex_pattern(text)


# ---- expand_reply ---------------------------------------------------------------------------


def match_of(pattern: bytes, data: bytes) -> re.Match[bytes]:
    found = re.compile(pattern, re.DOTALL).search(data)
    assert found is not None
    return found


def test_reply_groups_as_text():
    found = match_of(rb"PING (\d+) (\w+)", b"PING 42 abc\n")
    assert expand_reply(r"PONG \1 \2 \1", found, hex=False) == "PONG 42 abc 42"
    assert expand_reply("no groups used", found, hex=False) == "no groups used"


def test_reply_text_escapes_what_would_not_be_sent_as_it_came():
    found = match_of(rb"<(.*)>", b"<a\r\n\x00\xff\x7f\\{x} ~>")
    expanded = expand_reply(r"got \1", found, hex=False)
    assert expanded == r"got a\x0d\x0a\x00\xff\x7f\x5c\x7bx\x7d ~"
    assert expanded.isprintable() and expanded.isascii()


def test_reply_groups_as_hex():
    found = match_of(rb"\x01\x03(..)(.)", b"\x01\x03\x00\x2a\xff")
    assert expand_reply(r"01 03 \1 \2", found, hex=True) == "01 03 00 2a ff"


def test_unmatched_or_empty_group_is_nothing():
    found = match_of(rb"A(x)?(y*)B", b"AB")
    assert expand_reply(r"[\1][\2]", found, hex=False) == "[][]"
    assert expand_reply(r"[\1][\2]", found, hex=True) == "[][]"


@pytest.mark.parametrize(("pattern", "reply", "groups"), [(b"A", r"\1", 0), (b"(A)(B)", r"\3", 2)])
def test_group_beyond_the_pattern_is_a_usage_error(pattern, reply, groups):
    found = match_of(pattern, b"AB")
    with pytest.raises(UsageError, match=re.escape(f"\\{reply[1]} in the reply, but the pattern")):
        expand_reply(reply, found, hex=False)
    with pytest.raises(UsageError, match=f"has {groups} groups"):
        expand_reply(reply, found, hex=True)


def context() -> SendContext:
    return SendContext(counter=1, read_file=lambda path: b"")


@given(st.binary(min_size=1, max_size=64))
def test_a_text_reply_sends_the_group_byte_for_byte(value):
    found = match_of(b"<(.*)>", b"<" + value + b">")
    line = expand_reply(r"\1", found, hex=False)
    sent = build_payload(
        line, input_mode="text", encoding="utf-8", escapes=True, eol="none", context=context()
    )
    assert sent == value


@given(st.binary(min_size=1, max_size=64))
def test_a_hex_reply_sends_the_group_byte_for_byte(value):
    found = match_of(b"<(.*)>", b"<" + value + b">")
    assert parse_hex_line(expand_reply(r"\1", found, hex=True), context()) == value


# ---- ExpectBuffer ---------------------------------------------------------------------------


def waiting(buffer: ExpectBuffer, pattern: str, timeout: float = 5.0) -> bytes:
    """Wait for `pattern` (as /expect compiles it); what it matched."""
    compiled = compile_text_pattern(pattern, "utf-8")
    return buffer.wait(compiled, timeout, threading.Event(), pattern).group()


def test_expect_matches_and_uses_up_what_it_matched():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"+PONG\r\n+PONG\r\n"))
    assert waiting(buffer, r"\+PO\w+") == b"+PONG"
    # The second /expect needs a second answer; the first one is used up, with what preceded.
    assert waiting(buffer, r"\+PONG") == b"+PONG"
    with pytest.raises(ExpectTimeout):
        waiting(buffer, r"\+PONG", timeout=0.05)
    assert waiting(buffer, r"\r\n") == b"\r\n"
    with pytest.raises(ExpectTimeout):
        waiting(buffer, r"\n", timeout=0.05)


def test_the_match_returned_holds_what_it_matched_and_its_groups():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"temp=21.5C\r\n"))
    found = buffer.wait(compile_text_pattern(r"temp=([\d.]+)", "utf-8"), 1, threading.Event(), "")
    assert (found.group(), found.group(1)) == (b"temp=21.5", b"21.5")
    buffer.observe(Received(1, b"temp=22.0C\r\n"))
    assert found.group(1) == b"21.5", "a later arrival does not change an earlier match"


def test_caret_and_dollar_are_line_start_and_end():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"NOT OK\nOK\n"))
    assert waiting(buffer, r"^OK$") == b"OK"
    buffer.observe(Received(1, b"xOK\nOK\n"))
    assert waiting(buffer, r"^\w+$") == b"xOK"
    assert waiting(buffer, r"^OK$") == b"OK"


def test_caret_after_a_match_that_ended_mid_line_is_not_a_line_start():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"abcdef\ndef\n"))
    assert waiting(buffer, "abc") == b"abc"
    # `def` right after the match is mid-line: ^def finds the next line's.
    assert waiting(buffer, "^def\n") == b"def\n"
    with pytest.raises(ExpectTimeout):
        waiting(buffer, "def", timeout=0.05)


def test_caret_matches_at_the_start_of_what_arrived_after_a_send():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"prompt> "))
    buffer.observe(Sent(1, b"get\n", as_hex=False))
    buffer.observe(Received(1, b"value\n"))
    assert waiting(buffer, "^value$") == b"value"


def test_expect_sees_all_connections():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"from one "))
    buffer.observe(Received(2, b"from two"))
    assert waiting(buffer, "one from two") == b"one from two"


def test_a_send_clears_what_arrived_before_it():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"OLD answer\n"))
    buffer.observe(Sent(1, b"again\n", as_hex=False))
    with pytest.raises(ExpectTimeout):
        waiting(buffer, "answer", timeout=0.05)
    buffer.observe(Received(1, b"NEW answer\n"))
    assert waiting(buffer, r"\w+ answer") == b"NEW answer"


def test_copies_of_a_send_to_further_clients_do_not_clear():
    buffer = ExpectBuffer()
    buffer.observe(Sent(1, b"hi\n", as_hex=False))
    buffer.observe(Received(1, b"reply from 1\n"))
    # The same send's copy to client 2, announced after client 1 already answered.
    buffer.observe(Sent(2, b"hi\n", as_hex=False, echo=False))
    assert waiting(buffer, r"reply from \d") == b"reply from 1"


def test_data_arriving_while_waiting_wakes_the_wait():
    buffer = ExpectBuffer()
    result: list[bytes] = []
    waiter = threading.Thread(target=lambda: result.append(waiting(buffer, "do+ne")))
    waiter.start()
    for piece in (b"d", b"oo", b"o", b"ne\n"):
        buffer.observe(Received(1, piece))
    waiter.join(5)
    assert not waiter.is_alive() and result == [b"dooone"]
    assert waiting(buffer, "^$") == b""


def test_timeout_names_the_pattern_and_takes_the_timeout():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"something else"))
    started = time.monotonic()
    with pytest.raises(ExpectTimeout, match=r"^expect timed out after 0\.2 s: OK\\r\\n$") as info:
        buffer.wait(re.compile(rb"OK\r\n"), 0.2, threading.Event(), r"OK\r\n")
    assert 0.2 <= time.monotonic() - started < 3
    assert info.value.status == ExitStatus.EXPECT


def test_cancel_interrupts_a_wait_at_once():
    buffer = ExpectBuffer()
    cancel = threading.Event()
    errors: list[NetreplError] = []

    def wait() -> None:
        try:
            buffer.wait(re.compile(b"never"), 60, cancel, "never")
        except NetreplError as error:
            errors.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    started = time.monotonic()
    cancel.set()
    waiter.join(5)
    assert not waiter.is_alive()
    assert time.monotonic() - started < 1.0
    assert [str(error) for error in errors] == ["expect never: interrupted"]
    assert not isinstance(errors[0], ExpectTimeout)


def test_a_match_already_there_wins_over_cancel():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"ready"))
    cancel = threading.Event()
    cancel.set()
    assert buffer.wait(re.compile(b"ready"), 1, cancel, "ready").group() == b"ready"


def test_window_is_bounded_keeping_the_newest_bytes():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"START"))
    for _ in range(4):
        buffer.observe(Received(1, b"x" * (WINDOW // 4)))
    buffer.observe(Received(1, b"END\n"))
    with pytest.raises(ExpectTimeout):
        waiting(buffer, "START", timeout=0.01)
    # At least the newest WINDOW bytes are kept (whole reads: no copying to trim them).
    assert waiting(buffer, f"x{{{WINDOW}}}END$") == b"x" * WINDOW + b"END"


# ---- AutoReplies ----------------------------------------------------------------------------


class Recorder:
    """The answer function of an AutoReplies: records (conn, line, hex), may be told to fail."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, str, bool]] = []
        self.reports: list[str] = []
        self.fail: NetreplError | None = None

    def answer(self, conn: int, line: str, hex: bool) -> None:
        if self.fail is not None:
            raise self.fail
        self.answers.append((conn, line, hex))

    def replies(self) -> AutoReplies:
        return AutoReplies(self.answer, self.reports.append)


def add_text(replies: AutoReplies, pattern: str, reply: str):
    return replies.add(compile_text_pattern(pattern, "utf-8"), reply, hex=False, shown=pattern)


def test_a_rule_fires_for_each_match_across_reads():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"PING", "PONG")
    for piece in (b"PI", b"NG x PIN", b"G\nPINGPING", b"\n"):
        replies.observe(Received(1, piece))
    assert recorder.answers == [(1, "PONG", False)] * 4
    assert replies.rules()[0].fired == 4


def test_a_hex_rule_answers_in_hex():
    recorder = Recorder()
    replies = recorder.replies()
    replies.add(
        compile_hex_pattern("01 03 ?? ??"), "01 03 02 00 2a {crc16-modbus}", hex=True, shown=""
    )
    replies.observe(Received(3, b"\x01\x03\x00"))
    replies.observe(Received(3, b"\x0a"))
    assert recorder.answers == [(3, "01 03 02 00 2a {crc16-modbus}", True)]


def test_each_connection_has_its_own_buffer():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"PING\n", "PONG")
    replies.observe(Received(1, b"PI"))
    replies.observe(Received(2, b"NG\n"))  # not a PING: the two halves are different streams
    assert recorder.answers == []
    replies.observe(Received(2, b"PING\n"))
    replies.observe(Received(1, b"NG\n"))
    assert recorder.answers == [(2, "PONG", False), (1, "PONG", False)]


def test_other_events_are_ignored():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"PING", "PONG")
    replies.observe(Sent(1, b"PING\n", as_hex=False))
    assert recorder.answers == []


def test_rules_answer_in_the_order_they_were_added():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"A", "first")
    add_text(replies, r"A", "second")
    replies.observe(Received(1, b"A"))
    assert [line for _, line, _ in recorder.answers] == ["first", "second"]


def test_an_answer_that_fails_is_reported_and_the_rule_goes_on():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"PING", "PONG")
    recorder.fail = SendError("not connected")
    replies.observe(Received(1, b"PING"))
    assert recorder.reports == ["/when 1: not connected"]
    recorder.fail = None
    replies.observe(Received(1, b"PING"))
    assert recorder.answers == [(1, "PONG", False)]


def test_a_reply_naming_a_missing_group_is_reported_not_raised():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"PING", r"PONG \1")
    replies.observe(Received(1, b"PING"))
    assert recorder.answers == []
    assert recorder.reports == [r"/when 1: \1 in the reply, but the pattern has 0 groups"]


def test_a_reply_gets_the_groups_of_its_match():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"PING (\d+)", r"PONG \1")
    replies.observe(Received(1, b"PING 7\n"))
    replies.observe(Received(1, b"PING 12345\nPING 99\n"))
    assert [line for _, line, _ in recorder.answers] == ["PONG 7", "PONG 12345", "PONG 99"]


def test_a_caret_rule_answers_every_line_that_starts_with_the_pattern():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"^PING (\d+)", r"PONG \1")
    replies.observe(Received(1, b"PING 1\n"))
    replies.observe(Received(1, b"PING 2\nxPING 9\n"))
    replies.observe(Received(2, b"hello\nPING 3\nPING"))
    replies.observe(Received(2, b" 4\n"))
    assert recorder.answers == [
        (1, "PONG 1", False),
        (1, "PONG 2", False),
        (2, "PONG 3", False),
        (2, "PONG 4", False),
    ]


def test_dollar_waits_for_the_end_of_the_line():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"^PING (\d+)$", r"PONG \1")
    replies.observe(Received(1, b"PING 12"))
    replies.observe(Received(1, b"3\n"))
    assert recorder.answers == [(1, "PONG 123", False)]


# A stream of lines: pings (which the rule answers) among other text.
lines = st.lists(
    st.one_of(
        st.integers(0, 10**6).map(lambda n: b"PING %d\n" % n),
        st.binary(max_size=12),
        st.sampled_from([b"PING", b"PING \n", b"PIN", b"PING x\n", b"\n"]),
    ),
    max_size=12,
)


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if b > a]


def answers_for(
    reads: list[bytes], reply: str, pattern: str = r"PING (\d+)\n"
) -> list[tuple[int, str, bool]]:
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, pattern, reply)
    for data in reads:
        replies.observe(Received(1, data))
    assert recorder.reports == []
    return recorder.answers


@given(lines, st.lists(st.integers(0, 200), max_size=20))
def test_any_split_of_the_stream_fires_the_same_number_of_replies(items, cuts):
    stream = b"".join(items)
    whole = answers_for([stream], "PONG")
    assert len(whole) == len(re.findall(rb"PING \d+\n", stream))
    assert answers_for(cut(stream, cuts), "PONG") == whole
    assert answers_for([bytes([b]) for b in stream], "PONG") == whole


@given(lines, st.lists(st.integers(0, 200), max_size=20))
def test_any_split_of_the_stream_fires_the_same_replies_in_the_same_order(items, cuts):
    stream = b"".join(items)
    expected = [(1, f"PONG {n.decode()}", False) for n in re.findall(rb"PING (\d+)\n", stream)]
    assert answers_for([stream], r"PONG \1") == expected
    assert answers_for(cut(stream, cuts), r"PONG \1") == expected
    assert answers_for([bytes([b]) for b in stream], r"PONG \1") == expected


@given(lines, st.lists(st.integers(0, 200), max_size=20))
def test_any_split_of_the_stream_fires_the_same_line_anchored_replies(items, cuts):
    stream = b"".join(items)
    found = re.findall(rb"(?m)^PING (\d+)\n", stream)
    expected = [(1, f"PONG {n.decode()}", False) for n in found]
    assert answers_for([stream], r"PONG \1", r"^PING (\d+)\n") == expected
    assert answers_for(cut(stream, cuts), r"PONG \1", r"^PING (\d+)\n") == expected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The loop guard's clock, moved by the test (the rate is per second of this clock)."""
    fake = Clock()
    monkeypatch.setattr("netrepl.watch.time", fake)
    return fake


def test_loop_guard_stops_a_rule_after_the_limit_and_reports_once(clock):
    recorder = Recorder()
    replies = recorder.replies()
    rule = add_text(replies, r"PING", "PONG")
    other = add_text(replies, r"OTHER", "fine")
    replies.observe(Received(1, b"PING" * (WHEN_LIMIT_PER_SECOND + 5)))
    assert len(recorder.answers) == WHEN_LIMIT_PER_SECOND
    assert rule.fired == WHEN_LIMIT_PER_SECOND
    assert recorder.reports == [
        f"/when 1 stopped: fired more than {WHEN_LIMIT_PER_SECOND} times in a second"
        " (a loop?); /unwhen removes it"
    ]
    # Stopped for good: later matches, even much later, neither answer nor report again.
    clock.now += 60
    replies.observe(Received(1, b"PING PING"))
    assert len(recorder.answers) == WHEN_LIMIT_PER_SECOND and len(recorder.reports) == 1
    assert rule.describe() == (
        f"1: /when PING -> PONG (stopped: fired more than {WHEN_LIMIT_PER_SECOND} times"
        " in a second)"
    )
    # The other rule is not affected.
    replies.observe(Received(1, b"OTHER"))
    assert recorder.answers[-1] == (1, "fine", False)
    assert other.describe() == "2: /when OTHER -> fine (fired 1x)"


def test_loop_guard_counts_per_second_not_in_total(clock):
    recorder = Recorder()
    replies = recorder.replies()
    rule = add_text(replies, r"PING", "PONG")
    for _ in range(5):
        for _ in range(WHEN_LIMIT_PER_SECOND):
            replies.observe(Received(1, b"PING"))
            clock.now += 0.01
        clock.now += 1.0
    assert rule.stopped is None and recorder.reports == []
    assert rule.fired == 5 * WHEN_LIMIT_PER_SECOND


def test_loop_guard_is_per_rule(clock):
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, r"A", "a")
    add_text(replies, r"B", "b")
    replies.observe(Received(1, b"AB" * WHEN_LIMIT_PER_SECOND))
    assert len(recorder.answers) == 2 * WHEN_LIMIT_PER_SECOND and recorder.reports == []


def test_remove_one_by_number_or_hash_number():
    replies = Recorder().replies()
    for letter in "ABC":
        add_text(replies, letter, letter.lower())
    assert [rule.number for rule in replies.remove("2")] == [2]
    assert [rule.number for rule in replies.remove("#3")] == [3]
    assert [rule.number for rule in replies.rules()] == [1]
    # Numbers are not reused.
    assert add_text(replies, "D", "d").number == 4


def test_remove_all():
    recorder = Recorder()
    replies = recorder.replies()
    add_text(replies, "A", "a")
    add_text(replies, "B", "b")
    assert [rule.number for rule in replies.remove("all")] == [1, 2]
    assert replies.rules() == []
    replies.observe(Received(1, b"AB"))
    assert recorder.answers == []
    assert replies.remove("all") == []


@pytest.mark.parametrize("which", ["9", "0", "x", "#", ""])
def test_remove_unknown_is_a_usage_error_and_removes_nothing(which):
    replies = Recorder().replies()
    add_text(replies, "A", "a")
    with pytest.raises(UsageError, match=re.escape(f"/unwhen: no rule {which} (/when lists")):
        replies.remove(which)
    assert len(replies.rules()) == 1


# ---- scripts --------------------------------------------------------------------------------


def test_read_script_skips_comments_and_keeps_blank_lines(tmp_path):
    path = tmp_path / "poll.nrs"
    path.write_text(
        "# a comment\n"
        "PING\n"
        "\n"
        "   # an indented comment\n"
        "/expect +PONG 2\n"
        "   \n"
        "data # not a comment\n",
        encoding="utf-8",
    )
    assert read_script(str(path)) == [
        (2, "PING"),
        (3, ""),
        (5, "/expect +PONG 2"),
        (6, "   "),
        (7, "data # not a comment"),
    ]


def test_read_script_crlf_and_a_last_line_without_newline(tmp_path):
    path = tmp_path / "crlf.nrs"
    path.write_bytes(b"# comment\r\none\r\n\r\ntwo\r\nlast")
    assert read_script(str(path)) == [(2, "one"), (3, ""), (4, "two"), (5, "last")]


def test_read_script_keeps_the_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "bytes.nrs"
    path.write_bytes("中\xff\n".encode() + b"\xff\xfe\n")
    assert read_script(str(path)) == [(1, "中\xff"), (2, "\udcff\udcfe")]


def test_read_script_of_an_empty_file(tmp_path):
    path = tmp_path / "empty.nrs"
    path.write_bytes(b"")
    assert read_script(str(path)) == []
    path.write_bytes(b"\n")
    assert read_script(str(path)) == [(1, "")]


def test_read_script_missing_file_is_a_usage_error(tmp_path):
    missing = tmp_path / "missing.nrs"
    with pytest.raises(UsageError, match=re.escape(f"cannot read {missing}: No such file")):
        read_script(str(missing))


def test_read_script_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "s.nrs").write_text("hi\n", encoding="utf-8")
    assert read_script("~/s.nrs") == [(1, "hi")]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ExpectTimeout("expect timed out after 1 s: x"), ExitStatus.EXPECT),
        (UsageError("bad"), ExitStatus.USAGE),
        (SendError("not connected"), ExitStatus.CONNECTION),
        (ConnectError("refused"), ExitStatus.CONNECTION),
        (NetreplError("expect x: interrupted"), ExitStatus.CONNECTION),
        (ScriptError("a.nrs:3: expect timed out", ExitStatus.EXPECT), 3),
        (ScriptError("a.nrs:1: b.nrs:2: bad", ExitStatus.USAGE), 2),
        (ScriptError("anything", 7), 7),
    ],
)
def test_each_error_carries_its_exit_status(error, status):
    assert error.status == status


def test_exit_statuses_are_those_of_batch_mode():
    assert (ExitStatus.CONNECTION, ExitStatus.USAGE, ExitStatus.EXPECT) == (1, 2, 3)
    assert (ExitStatus.OK, ExitStatus.INTERNAL, ExitStatus.INTERRUPTED) == (0, 4, 130)


# ---- whole units: datagrams and WebSocket messages -----------------------------------------


def test_a_whole_message_ends_where_dollar_matches_and_starts_where_caret_does():
    unmatched = Unmatched()
    pattern = compile_text_pattern("^welcome$", "utf-8")
    unmatched.add(b"welcome", whole=True)
    assert unmatched.search(pattern) is not None
    # A stream's "welcome" without a line end is not yet a line: `$` waits.
    stream = Unmatched()
    stream.add(b"welcome")
    assert stream.search(pattern) is None


def test_a_pattern_never_spans_two_messages_and_a_match_uses_up_those_before():
    unmatched = Unmatched()
    unmatched.add(b"ab", whole=True)
    unmatched.add(b"cd", whole=True)
    unmatched.add(b"ef", whole=True)
    assert unmatched.search(compile_text_pattern("bc", "utf-8")) is None
    assert unmatched.search(compile_text_pattern("^cd$", "utf-8")).group() == b"cd"
    # "ab" and "cd" are used up; "ef" waits for the next pattern.
    assert unmatched.search(compile_text_pattern("ab", "utf-8")) is None
    assert unmatched.search(compile_text_pattern("f", "utf-8")).group() == b"f"


def test_expect_sees_every_message_that_came_before_it_waited():
    buffer = ExpectBuffer()
    for data in (b"pong", b"other", b"third"):
        buffer.observe(Received(1, data, message="text"))
    found = buffer.wait(compile_text_pattern("^pong$", "utf-8"), 1.0, threading.Event(), "pong")
    assert found.group() == b"pong"


def test_a_udp_datagram_is_a_whole_unit_too():
    buffer = ExpectBuffer()
    buffer.observe(Received(1, b"READY", datagram=True))
    found = buffer.wait(compile_text_pattern("^READY$", "utf-8"), 1.0, threading.Event(), "x")
    assert found.group() == b"READY"
