"""framing: where one received frame ends. Each mode on its own; for line, len and delim, any
split of a stream into reads gives the frames of the whole, and no byte is lost or doubled;
idle frames end by a gap measured on the arrival times given, never on a clock; /frame's
arguments parse to a Framing or fail with the reason, and a Framing's label reads back."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.framing import (
    FRAME_MODES,
    MAX_FRAME,
    RAW,
    Frame,
    Framer,
    Framing,
    parse_framing,
)

LINE = Framing("line")
CRLF = Framing("delim", delimiter=b"\r\n")


def feed_all(framer: Framer, reads: list[tuple[bytes, float]]) -> list[Frame]:
    frames: list[Frame] = []
    for data, at in reads:
        frames += framer.feed(data, at)
    return frames


def datas(frames: list[Frame]) -> list[bytes]:
    return [frame.data for frame in frames]


# ---- raw -----------------------------------------------------------------------------------


def test_raw_keeps_each_read_as_a_frame_with_its_time():
    framer = Framer(RAW)
    assert framer.feed(b"ab\ncd", 1.5) == [Frame(b"ab\ncd", 1.5)]
    assert framer.feed(b"e", 2.0) == [Frame(b"e", 2.0)]
    assert framer.pending == 0
    assert framer.flush() == []


def test_raw_ignores_an_empty_read():
    framer = Framer(RAW)
    assert framer.feed(b"", 1.0) == []


def test_raw_never_asks_for_a_wake_up():
    framer = Framer(RAW)
    framer.feed(b"x", 1.0)
    assert framer.due(1.0) is None


# ---- line ----------------------------------------------------------------------------------


def test_line_ends_a_frame_after_each_newline():
    framer = Framer(LINE)
    assert framer.feed(b"one\ntwo\nthr", 1.0) == [Frame(b"one\n", 1.0), Frame(b"two\n", 1.0)]
    assert framer.pending == 3
    assert framer.feed(b"ee\n", 2.0) == [Frame(b"three\n", 1.0)]
    assert framer.pending == 0


def test_line_frame_time_is_the_arrival_of_its_first_byte():
    framer = Framer(LINE)
    assert framer.feed(b"a", 1.0) == []
    assert framer.feed(b"b", 2.0) == []
    # The rest of the read starts the next frame: it arrived at 3.0.
    assert framer.feed(b"c\nd", 3.0) == [Frame(b"abc\n", 1.0)]
    assert framer.feed(b"\n", 4.0) == [Frame(b"d\n", 3.0)]


def test_line_keeps_a_cr_lf_whole_and_a_lone_cr_inside():
    framer = Framer(LINE)
    assert datas(framer.feed(b"a\r", 1.0)) == []
    assert datas(framer.feed(b"\nb\rc\n", 2.0)) == [b"a\r\n", b"b\rc\n"]


def test_line_flush_gives_the_unfinished_line():
    framer = Framer(LINE)
    framer.feed(b"x\nlogin: ", 1.0)
    assert framer.flush() == [Frame(b"login: ", 1.0)]
    assert framer.pending == 0
    assert framer.flush() == []


# ---- len -----------------------------------------------------------------------------------


def test_len_cuts_every_n_bytes():
    framer = Framer(Framing("len", length=4))
    assert datas(framer.feed(b"0123456789", 1.0)) == [b"0123", b"4567"]
    assert framer.pending == 2
    assert datas(framer.feed(b"ab", 2.0)) == [b"89ab"]
    assert framer.pending == 0


def test_len_one_is_a_frame_per_byte():
    framer = Framer(Framing("len", length=1))
    assert datas(framer.feed(b"abc", 1.0)) == [b"a", b"b", b"c"]


# ---- delim ---------------------------------------------------------------------------------


def test_delim_ends_a_frame_after_the_delimiter():
    framer = Framer(CRLF)
    assert datas(framer.feed(b"+OK\r\n-ERR x\r\n$3", 1.0)) == [b"+OK\r\n", b"-ERR x\r\n"]
    assert framer.pending == 2


def test_delim_split_across_reads_is_found():
    framer = Framer(CRLF)
    assert framer.feed(b"abc\r", 1.0) == []
    assert framer.feed(b"\n", 2.0) == [Frame(b"abc\r\n", 1.0)]


def test_delim_a_lone_lf_does_not_end_a_crlf_frame():
    framer = Framer(CRLF)
    assert framer.feed(b"a\nb\r\n", 1.0) == [Frame(b"a\nb\r\n", 1.0)]


def test_delim_a_frame_that_is_only_the_delimiter():
    framer = Framer(Framing("delim", delimiter=b"\x7e"))
    assert datas(framer.feed(b"\x7e\x7eab\x7e", 1.0)) == [b"\x7e", b"\x7e", b"ab\x7e"]


# ---- the property: any split gives the frames of the whole ---------------------------------

SPLIT_FRAMINGS = st.one_of(
    st.just(LINE),
    st.integers(1, 9).map(lambda n: Framing("len", length=n)),
    st.sampled_from([b"\n", b"\r\n", b"\x00", b"ab", b"aab", b"\xff\xfe\xfd"]).map(
        lambda d: Framing("delim", delimiter=d)
    ),
)
# Bytes rich in what the framings look for, so frames actually end.
STREAMS = st.lists(
    st.one_of(st.sampled_from([b"\n", b"\r\n", b"\x00", b"a", b"b", b"\xff\xfe\xfd"]), st.binary()),
    max_size=20,
).map(b"".join)


@given(framing=SPLIT_FRAMINGS, data=STREAMS, cuts=st.lists(st.integers(0, 400), max_size=12))
def test_any_split_gives_the_frames_of_the_whole(framing, data, cuts):
    whole = Framer(framing)
    whole_frames = datas(whole.feed(data, 0.0))

    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    reads = [(data[a:b], float(i)) for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    split = Framer(framing)
    split_frames = feed_all(split, reads)

    assert datas(split_frames) == whole_frames
    assert split.pending == whole.pending
    assert b"".join(whole_frames) + data[len(data) - whole.pending :] == data
    assert datas(split.flush()) == datas(whole.flush())
    # Each frame carries the time of the read that brought its first byte.
    starts = list(itertools.accumulate(len(f) for f in datas(split_frames)))
    for frame, start in zip(split_frames, [0, *starts], strict=False):
        read = next(i for i, (a, b) in enumerate(itertools.pairwise(bounds)) if a <= start < b)
        assert frame.at == float(read)


@given(framing=SPLIT_FRAMINGS, data=STREAMS)
def test_every_frame_but_the_flushed_one_is_complete(framing, data):
    framer = Framer(framing)
    frames = datas(framer.feed(data, 0.0))
    for frame in frames:
        if framing.mode == "line":
            assert frame.endswith(b"\n") and frame.count(b"\n") == 1
        elif framing.mode == "len":
            assert len(frame) == framing.length
        else:
            # The delimiter's first occurrence is the frame's end.
            assert frame.find(framing.delimiter) == len(frame) - len(framing.delimiter)


# ---- idle ----------------------------------------------------------------------------------

IDLE_20 = Framing("idle", idle_ms=20)


def test_idle_joins_reads_closer_than_the_gap():
    framer = Framer(IDLE_20)
    assert framer.feed(b"ab", 10.000) == []
    assert framer.feed(b"cd", 10.015) == []
    assert framer.pending == 4


def test_idle_a_gap_of_at_least_idle_ends_the_frame_on_the_next_read():
    framer = Framer(IDLE_20)
    framer.feed(b"ab", 10.000)
    framer.feed(b"cd", 10.010)
    # Measured from the last byte (10.010), not the first.
    assert framer.feed(b"ef", 10.025) == []
    assert framer.feed(b"gh", 10.050) == [Frame(b"abcdef", 10.000)]
    assert framer.pending == 2
    assert framer.flush() == [Frame(b"gh", 10.050)]


def test_idle_a_gap_of_exactly_idle_is_enough():
    framer = Framer(Framing("idle", idle_ms=500))
    framer.feed(b"a", 10.0)
    assert framer.feed(b"b", 10.5) == [Frame(b"a", 10.0)]


def test_idle_an_empty_read_after_the_gap_ends_the_frame():
    framer = Framer(IDLE_20)
    framer.feed(b"ab", 10.0)
    assert framer.feed(b"", 10.005) == []
    assert framer.feed(b"", 10.5) == [Frame(b"ab", 10.0)]
    assert framer.pending == 0


def test_idle_due_counts_down_from_the_last_byte():
    framer = Framer(IDLE_20)
    assert framer.due(10.0) is None, "nothing pending, nothing due"
    framer.feed(b"ab", 10.000)
    assert framer.due(10.000) == pytest.approx(0.020)
    assert framer.due(10.005) == pytest.approx(0.015)
    framer.feed(b"cd", 10.010)
    assert framer.due(10.015) == pytest.approx(0.015)
    assert framer.due(10.030) == 0.0
    assert framer.due(99.0) == 0.0, "never negative"
    assert framer.flush() == [Frame(b"abcd", 10.000)]
    assert framer.due(99.0) is None


@pytest.mark.parametrize("framing", [LINE, Framing("len", length=2), CRLF])
def test_only_idle_framing_has_a_due_time(framing):
    framer = Framer(framing)
    framer.feed(b"x", 1.0)
    assert framer.pending == 1
    assert framer.due(100.0) is None


@given(
    # Not exactly 20 ms: a difference of float seconds lands a hair either side of it.
    gaps=st.lists(st.integers(0, 60).filter(lambda ms: ms != 20), min_size=1, max_size=20),
    sizes=st.lists(st.integers(1, 5), min_size=20, max_size=20),
)
def test_idle_frames_end_exactly_at_gaps_of_at_least_idle(gaps, sizes):
    """Reads at whole milliseconds: a frame ends before each read that comes more than 20 ms
    after the previous one, and nowhere else."""
    framer = Framer(IDLE_20)
    at_ms, reads, expected, current = 1_000_000, [], [], b""
    for index, gap in enumerate(gaps):
        at_ms += gap
        data = bytes([65 + index]) * sizes[index]
        if index and gap >= 20:
            expected.append(current)
            current = b""
        current += data
        reads.append((data, at_ms / 1000))
    frames = feed_all(framer, reads)
    assert datas(frames) + datas(framer.flush()) == [*expected, current]


# ---- MAX_FRAME -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "framing",
    [LINE, Framing("idle", idle_ms=60_000), CRLF, Framing("len", length=2 * MAX_FRAME)],
)
def test_a_frame_that_never_ends_is_cut_at_max_frame(framing):
    framer = Framer(framing)
    frames = framer.feed(b"x" * (MAX_FRAME - 1), 1.0)
    assert frames == []
    frames = framer.feed(b"yz", 2.0)
    assert [len(f.data) for f in frames] == [MAX_FRAME]
    assert frames[0].at == 1.0
    assert frames[0].data.endswith(b"xy")
    assert framer.pending == 1
    assert framer.flush() == [Frame(b"z", 2.0)]


def test_one_huge_read_is_cut_into_max_frames():
    framer = Framer(LINE)
    frames = framer.feed(b"x" * (2 * MAX_FRAME + 10), 1.0)
    assert [len(f.data) for f in frames] == [MAX_FRAME, MAX_FRAME]
    assert framer.pending == 10


def test_no_frame_is_longer_than_max_frame_however_the_bytes_arrive():
    data = b"x" * (MAX_FRAME + 10) + b"\n"
    whole = Framer(LINE)
    whole_frames = datas(whole.feed(data, 1.0))
    split = Framer(LINE)
    split_frames = datas(split.feed(data[:MAX_FRAME], 1.0) + split.feed(data[MAX_FRAME:], 2.0))
    assert split_frames == [data[:MAX_FRAME], data[MAX_FRAME:]]
    assert max(len(f) for f in whole_frames) <= MAX_FRAME
    assert whole_frames == split_frames


# ---- parse_framing and labels --------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "framing"),
    [
        (["raw"], RAW),
        (["line"], LINE),
        (["idle", "20"], Framing("idle", idle_ms=20)),
        (["idle", "007"], Framing("idle", idle_ms=7)),
        (["len", "8"], Framing("len", length=8)),
        (["len", "1"], Framing("len", length=1)),
        (["delim", "0d", "0a"], CRLF),
        (["delim", "0d0a"], CRLF),
        (["delim", "0x0d,0x0a"], CRLF),
        (["delim", "7e"], Framing("delim", delimiter=b"~")),
    ],
)
def test_parse_framing(words, framing):
    assert parse_framing(words) == framing


IDLE_RANGE = "is not a whole number of milliseconds from 1 to 60,000"
LEN_RANGE = "is not a whole number of bytes from 1 to 1,048,576"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "give a mode: raw, idle, line, len, delim"),
        (["raw", "x"], "raw takes nothing more"),
        (["line", "10"], "line takes nothing more"),
        (["idle"], "idle takes one whole number MS (milliseconds of silence), 1 to 60,000"),
        (["idle", "0"], f"idle: '0' {IDLE_RANGE}"),
        (["idle", "-5"], f"idle: '-5' {IDLE_RANGE}"),
        (["idle", "2.5"], f"idle: '2.5' {IDLE_RANGE}"),
        (["idle", "²"], f"idle: '²' {IDLE_RANGE}"),
        (["idle", "60001"], f"idle: '60001' {IDLE_RANGE}"),
        (["idle", "1e30"], f"idle: '1e30' {IDLE_RANGE}"),
        (["idle", "99999999999999999999"], f"idle: '99999999999999999999' {IDLE_RANGE}"),
        (
            ["idle", "20", "30"],
            "idle takes one whole number MS (milliseconds of silence), 1 to 60,000",
        ),
        (["len"], "len takes one whole number N (bytes per frame), 1 to 1,048,576"),
        (["len", "0"], f"len: '0' {LEN_RANGE}"),
        (["len", "eight"], f"len: 'eight' {LEN_RANGE}"),
        (["len", "1048577"], f"len: '1048577' {LEN_RANGE}"),
        (["delim"], "delim takes the delimiter in hex, like 0d 0a"),
        (["lines"], "unknown frame mode 'lines' (choose from raw, idle, line, len, delim)"),
        (["RAW"], "unknown frame mode 'RAW' (choose from raw, idle, line, len, delim)"),
    ],
)
def test_parse_framing_errors_say_why(words, message):
    with pytest.raises(ValueError) as caught:
        parse_framing(words)
    assert str(caught.value) == message


@pytest.mark.parametrize("hex_words", [["zz"], ["0x"], [","], ["0d", "0"]])
def test_a_bad_delimiter_is_a_value_error(hex_words):
    with pytest.raises(ValueError, match=r"hex"):
        parse_framing(["delim", *hex_words])


@pytest.mark.parametrize(
    ("framing", "label"),
    [
        (RAW, "raw"),
        (LINE, "line"),
        (Framing("idle", idle_ms=20), "idle 20 ms"),
        (Framing("len", length=8), "len 8"),
        (CRLF, "delim 0d 0a"),
        (Framing("delim", delimiter=b"\x7e"), "delim 7e"),
    ],
)
def test_label(framing, label):
    assert framing.label == label


@pytest.mark.parametrize(
    "framing",
    [RAW, LINE, Framing("idle", idle_ms=250), Framing("len", length=3), CRLF],
)
def test_a_label_parses_back_to_its_framing(framing):
    # /frame shows the label; typing it back (without the unit) gives the same framing.
    words = framing.label.removesuffix(" ms").split()
    assert parse_framing(words) == framing


def test_every_mode_has_a_label_and_parses():
    examples = {"raw": [], "line": [], "idle": ["5"], "len": ["5"], "delim": ["0a"]}
    assert set(examples) == set(FRAME_MODES)
    for mode, rest in examples.items():
        assert parse_framing([mode, *rest]).mode == mode
