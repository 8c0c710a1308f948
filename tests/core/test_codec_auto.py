"""codec, the `auto` view: GBK text stays GBK even where its pairs are also valid UTF-8, UTF-8
lines after GBK lines are UTF-8 again, and the run-based decoder gives what the rule, applied
one character at a time (written out here), gives, for any split of the stream."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.codec import AUTO, AutoDecoder, TextDecoder, decode_whole


def utf8_size(data: bytes, i: int) -> int:
    """Bytes of the valid UTF-8 character at `i`, or 0."""
    for size in (1, 2, 3, 4):
        try:
            data[i : i + size].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return size
    return 0


def is_gbk_pair(data: bytes, i: int) -> bool:
    """A GBK lead and trail byte at `i` with a character assigned."""
    pair = data[i : i + 2]
    if len(pair) < 2 or not 0x81 <= pair[0] <= 0xFE:
        return False
    if not (0x40 <= pair[1] <= 0x7E or 0x80 <= pair[1] <= 0xFE):
        return False
    try:
        pair.decode("gbk")
    except UnicodeDecodeError:
        return False
    return True


def reference_auto(data: bytes) -> str:
    """The auto rule one character at a time, over a whole stream: a UTF-8 character of 3 or 4
    bytes is UTF-8; else the mode (encoding of the last non-ASCII character) if it can read it,
    else the other one, which becomes the mode; else U+DC00+byte. ASCII keeps the mode."""
    out: list[str] = []
    gbk = False
    i = 0
    while i < len(data):
        size = utf8_size(data, i)
        if size == 1:
            out.append(chr(data[i]))
        elif size >= 3 or (size == 2 and not (gbk and is_gbk_pair(data, i))):
            out.append(data[i : i + size].decode("utf-8"))
            gbk = False
        elif is_gbk_pair(data, i):
            size = 2
            out.append(data[i : i + 2].decode("gbk"))
            gbk = True
        else:
            size = 1
            out.append(chr(0xDC00 + data[i]))
        i += size
    return "".join(out)


def auto_in_chunks(data: bytes, cuts: list[int]) -> tuple[str, list[bytes]]:
    """AutoDecoder fed `data` cut at `cuts`, then final: the text, and what each read held."""
    decoder = AutoDecoder()
    bounds = [0, *sorted(cuts), len(data)]
    texts, held = [], []
    for a, b in itertools.pairwise(bounds):
        texts.append(decoder.decode(data[a:b]))
        held.append(decoder.getstate()[0])
    texts.append(decoder.decode(b"", final=True))
    return "".join(texts), held


# ---- The rule on real text -------------------------------------------------------------------

# GBK pairs that are also valid two-byte UTF-8: the old "UTF-8 first" rule showed `״̬` and `ѹ`.
assert "状态".encode("gbk").decode("utf-8") == "״̬"
assert "压".encode("gbk").decode("utf-8") == "ѹ"


@pytest.mark.parametrize(
    "text",
    [
        "设备状态：正常，电压",
        "设备 状态 OK，电压 220V",
        "设备状态：正常\r\n状态：报警\r\n电压：220V\r\n",
        "中文，你好",
        "错误：状态",
    ],
)
def test_gbk_text_stays_gbk_where_its_pairs_are_also_utf8(text):
    assert decode_whole(text.encode("gbk"), AUTO).text == text.replace("\r\n", "\n")


def test_gbk_text_that_starts_like_utf8_is_gbk_from_its_first_gbk_only_pair():
    # No rule can know at the start; from the first pair UTF-8 cannot read, it is GBK.
    data = "状态：正常，状态".encode("gbk")
    assert decode_whole(data, AUTO).text == "״̬：正常，状态"


def test_mixed_lines_each_decode_in_their_own_encoding():
    utf8 = "温度 23.5°C, 湿度 61% — sensor ok\r\n"
    gbk = "设备状态：正常，电压 220V\r\n"
    ascii_line = "OK seq=000123 val=0x1f2e\r\n"
    control = "\x1b[31mALARM\x1b[0m \x07\r\n"
    data = ((utf8.encode() + gbk.encode("gbk") + ascii_line.encode()) * 3 + control.encode()) * 2
    expected = ((utf8 + gbk + ascii_line) * 3 + control.replace("\x1b", "\\x1b")) * 2
    expected = expected.replace("\x07", "\\x07").replace("\r\n", "\n")
    assert decode_whole(data, AUTO).text == expected
    # The same bytes in 4 KiB-like reads of every size from 1 to 97.
    for size in (1, 2, 3, 5, 7, 31, 97):
        decoder = TextDecoder(AUTO)
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        texts = [decoder.decode(chunk).text for chunk in chunks]
        assert "".join(texts) + decoder.decode(b"", final=True).text == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("文".encode("gbk") + "中".encode(), "文中"),  # a 3-byte UTF-8 character ends GBK text
        ("中".encode() + "文".encode("gbk"), "中文"),  # a GBK-only pair ends UTF-8 text
        ("中".encode() + "状态".encode("gbk"), "中״̬"),  # two-byte UTF-8 after UTF-8 is UTF-8
        ("文".encode("gbk") + "é".encode(), "文茅"),  # ... and after GBK is GBK (c3 a9)
        ("文".encode("gbk") + b"\xc2\x80", "文聙"),  # (not C1 U+0080)
        ("文".encode("gbk") + b"\xff" + "状".encode("gbk"), "文\\xff状"),  # escapes keep the mode
        ("文".encode("gbk") + b"\xf0\x9f\x98\x80", "文😀"),
        ("文".encode("gbk") + b"\x81\x7f", "文\\x81\\x7f"),  # 7f is no GBK trail but DEL
    ],
)
def test_mode_switches(data, expected):
    assert decode_whole(data, AUTO).text == expected


def test_the_mode_carries_across_reads():
    decoder = TextDecoder(AUTO)
    assert decoder.decode("设备".encode("gbk")).text == "设备"
    assert decoder.decode(b"\r\n").text == "\n"
    assert decoder.decode("状态".encode("gbk")).text == "状态"


# ---- Holding back at the end of a read ------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "shown_first", "held", "expected"),
    [
        # In GBK text, e4 b8 is a GBK pair unless the next byte makes it UTF-8 `中`.
        ("文".encode("gbk") + b"\xe4\xb8", b"\xad", "文", b"\xe4\xb8", "文中"),
        ("文".encode("gbk") + b"\xe4\xb8", b"A", "文", b"\xe4\xb8", "文涓A"),
        ("文".encode("gbk") + b"\xf0\x9f\x98", b"\x80", "文", b"\xf0\x9f\x98", "文😀"),
        ("文".encode("gbk") + b"\xd6", b"\xd0", "文", b"\xd6", "文中"),
        # A two-byte UTF-8 character cannot end GBK text: c3 a9 is GBK `茅` at once.
        ("文".encode("gbk") + b"\xc3\xa9", b"", "文茅", b"", "文茅"),
        ("中".encode() + b"\xe6\x96", b"\x87", "中", b"\xe6\x96", "中文"),
    ],
)
def test_bytes_that_could_still_change_the_reading_wait(first, second, shown_first, held, expected):
    decoder = AutoDecoder()
    assert decoder.decode(first) == shown_first
    assert decoder.getstate()[0] == held
    rest = decoder.decode(second) + decoder.decode(b"", final=True)
    assert shown_first + rest == expected


def test_held_bytes_are_shown_at_the_end_of_the_stream():
    decoder = AutoDecoder()
    assert decoder.decode("文".encode("gbk") + b"\xe4\xb8") == "文"
    assert decoder.decode(b"", final=True) == "涓"


# ---- The run-based decoder against the rule, for any split ----------------------------------

AMBIGUOUS = ["状态", "压", "正常", "电压", "设备", "中文", "，", "：", "错误", "温度"]
PIECES = st.one_of(
    st.sampled_from(AMBIGUOUS).map(lambda text: text.encode("gbk")),
    st.sampled_from([*AMBIGUOUS, "é", "°", "—", "😀", "€", "ѹ"]).map(str.encode),
    st.sampled_from([b" ", b"A", b"\r\n", b"\x1b", b"\xff", b"\x80", b"\xe4\xb8", b"\xc2\x80"]),
    st.binary(max_size=4),
)


@st.composite
def streams(draw) -> tuple[bytes, list[int]]:
    data = b"".join(draw(st.lists(PIECES, max_size=16)))
    return data, draw(st.lists(st.integers(0, len(data)), max_size=8))


@given(streams())
def test_any_split_gives_what_the_rule_gives_one_character_at_a_time(stream):
    data, cuts = stream
    text, held = auto_in_chunks(data, cuts)
    assert text == reference_auto(data)
    # Only what could still become a character waits, never more than 3 bytes.
    assert all(len(tail) <= 3 for tail in held)


@given(st.binary(max_size=48), st.lists(st.integers(0, 48), max_size=6))
def test_any_bytes_in_any_split_give_what_the_rule_gives(data, cuts):
    text, _ = auto_in_chunks(data, [cut for cut in cuts if cut <= len(data)])
    assert text == reference_auto(data)
