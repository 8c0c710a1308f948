"""hexdump: lines in exact `hexdump -C` layout (checked by hand and against the real binary when
installed), offsets from the stream position, no `*` squeezing, and a gutter of printable ASCII.
The block formatter builds many lines at once, so it is checked against the one-line formatter
at every size, stream offset and offset width (8 digits, more from 4 GiB on)."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.text import Span

from netrepl import hexdump
from netrepl.hexdump import format_hexdump, format_hexdump_line, offset_spans
from netrepl.render import hexdump_text

HEXDUMP = shutil.which("hexdump")
needs_hexdump = pytest.mark.skipif(HEXDUMP is None, reason="hexdump binary not installed")

# The bytes the block formatter builds at once: sizes around it cross from one run to the next.
RUN = hexdump._RUN_LINES * hexdump.BYTES_PER_LINE


def expected_line(offset: int, chunk: bytes) -> str:
    """hexdump -C's layout spelled out: 8 hex bytes, a gap, 8 more, padded to 60 columns."""
    hexes = [f"{b:02x}" for b in chunk]
    columns = " ".join(hexes[:8])
    if len(hexes) > 8:
        columns += "  " + " ".join(hexes[8:])
    gutter = "".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in chunk)
    return f"{offset:08x}  " + columns.ljust(48) + f"  |{gutter}|"


def line_by_line(data: bytes, offset: int) -> str:
    """What format_hexdump must give: the one-line formatter on each 16 bytes."""
    return "".join(
        format_hexdump_line(offset + start, data[start : start + 16]) + "\n"
        for start in range(0, len(data), 16)
    )


def searched_spans(text: str) -> list[tuple[int, int]]:
    """Where each line's offset is in `text`, found by looking."""
    spans = []
    position = 0
    for line in text.splitlines(keepends=True):
        spans.append((position, position + line.index(" ")))
        position += len(line)
    return spans


def some_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def hexdump_c(data: bytes, tmp_path, skip: int = 0) -> str:
    """The real `hexdump -C` of `data` from byte `skip`, without its final offset line.

    `-v` turns off `*` squeezing, which netrepl never does.
    """
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    result = subprocess.run(
        [HEXDUMP, "-C", "-v", "-s", str(skip), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    if not result.stdout:
        return ""
    *lines, total = result.stdout.splitlines(keepends=True)
    assert total == f"{len(data):08x}\n", "hexdump -C ends with the total length"
    return "".join(lines)


ALL_BYTES = bytes(range(256))


def test_all_byte_values_in_hexdump_c_layout():
    text = format_hexdump(ALL_BYTES)
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 16
    assert lines[0] == (
        "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|"
    )
    assert lines[2] == (
        "00000020  20 21 22 23 24 25 26 27  28 29 2a 2b 2c 2d 2e 2f  | !\"#$%&'()*+,-./|"
    )
    assert lines[4] == (
        "00000040  40 41 42 43 44 45 46 47  48 49 4a 4b 4c 4d 4e 4f  |@ABCDEFGHIJKLMNO|"
    )
    assert lines[7] == (
        "00000070  70 71 72 73 74 75 76 77  78 79 7a 7b 7c 7d 7e 7f  |pqrstuvwxyz{|}~.|"
    )
    assert lines[15] == (
        "000000f0  f0 f1 f2 f3 f4 f5 f6 f7  f8 f9 fa fb fc fd fe ff  |................|"
    )
    assert lines == [
        expected_line(row * 16, ALL_BYTES[row * 16 : row * 16 + 16]) for row in range(16)
    ]


@pytest.mark.parametrize(
    ("chunk", "line"),
    [
        (b"a", "00000000  61                                                |a|"),
        (b"abcdefgh", "00000000  61 62 63 64 65 66 67 68                           |abcdefgh|"),
        (b"abcdefghi", "00000000  61 62 63 64 65 66 67 68  69                       |abcdefghi|"),
        (
            b"abcdefghijklmno",
            "00000000  61 62 63 64 65 66 67 68  69 6a 6b 6c 6d 6e 6f     |abcdefghijklmno|",
        ),
    ],
)
def test_partial_last_line_is_padded_like_hexdump_c(chunk, line):
    assert format_hexdump_line(0, chunk) == line
    assert format_hexdump(chunk) == line + "\n"


def test_a_partial_line_after_full_lines_is_padded_like_hexdump_c():
    assert format_hexdump(b"0123456789abcdefXYZ", offset=5) == (
        "00000005  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n"
        "00000015  58 59 5a                                          |XYZ|\n"
    )


def test_offsets_continue_from_the_stream_offset():
    assert format_hexdump(b"A" * 20, offset=0x1234) == (
        "00001234  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|\n"
        "00001244  41 41 41 41                                       |AAAA|\n"
    )


def test_offsets_past_four_gib_widen_like_hexdump():
    assert format_hexdump(b"z", offset=2**32).startswith("100000000  7a  ")


def test_offsets_widen_mid_block_line_by_line():
    text = format_hexdump(bytes(48), offset=2**32 - 20)
    assert [line.split(" ")[0] for line in text.splitlines()] == [
        "ffffffec",
        "fffffffc",
        "10000000c",
    ]
    assert text == line_by_line(bytes(48), 2**32 - 20)


def test_repeated_lines_are_never_squeezed():
    lines = format_hexdump(bytes(64)).splitlines()
    assert len(lines) == 4
    assert "*" not in "".join(lines)
    assert [line[:8] for line in lines] == ["00000000", "00000010", "00000020", "00000030"]


def test_empty_data_has_no_lines():
    assert format_hexdump(b"") == ""
    assert format_hexdump(b"", offset=99) == ""
    assert list(offset_spans(0, 99)) == []


@pytest.mark.parametrize("size", range(41))
@pytest.mark.parametrize("offset", [0, 1, 15, 16, 0x1234567, 2**32 - 17, 2**32 + 3])
def test_small_blocks_are_the_lines_one_by_one(size, offset):
    data = some_bytes(size, size)
    assert format_hexdump(data, offset) == line_by_line(data, offset)


@pytest.mark.parametrize(
    "size",
    [RUN - 17, RUN - 1, RUN, RUN + 1, RUN + 16, 2 * RUN, 2 * RUN + 15, 4095, 4096, 4097, 65541],
)
@pytest.mark.parametrize(
    "offset",
    [0, 7, 0xFFFF_FFF0 - RUN, 2**32 - 3 * RUN // 2 + 9, 2**36 - RUN - 1, 2**64 - 2 * RUN - 5],
)
def test_blocks_across_runs_are_the_lines_one_by_one(size, offset):
    data = some_bytes(size, offset)
    assert format_hexdump(data, offset) == line_by_line(data, offset)


# A run of lines ends at each 64 KiB of the stream, where the digits that count lines carry
# into those that stay the same within a run.
@pytest.mark.parametrize("size", [33, 4096 * 16, 4096 * 16 + 47, 3 * 65536 + 5])
@pytest.mark.parametrize(
    "offset", [0xFFF0, 0xFFF9, 0x1_0000 - 4095 * 16 - 1, 0xFFFF_FFF7, 2**40 - 9]
)
def test_blocks_across_64k_of_the_stream_are_the_lines_one_by_one(size, offset):
    data = some_bytes(size, offset)
    assert format_hexdump(data, offset) == line_by_line(data, offset)


def test_a_mebibyte_read_is_the_lines_one_by_one():
    data = some_bytes(1 << 20)
    assert format_hexdump(data, 3 << 20) == line_by_line(data, 3 << 20)


# Offsets near the widths' edges: 2**32 (9 digits), 2**36 (10), 2**64 (17, past any array).
OFFSETS = st.one_of(
    st.integers(0, 2**40),
    st.sampled_from([2**32, 2**36, 2**64]).flatmap(
        lambda edge: st.integers(edge - 3 * RUN, edge + RUN)
    ),
)


@given(size=st.integers(0, 3 * RUN + 40), seed=st.integers(0, 2**32), offset=OFFSETS)
def test_any_block_at_any_offset_is_the_lines_one_by_one(size, seed, offset):
    data = some_bytes(size, seed)
    text = format_hexdump(data, offset)
    assert text == line_by_line(data, offset)
    assert list(offset_spans(size, offset)) == searched_spans(text)


@given(data=st.binary(max_size=80), offset=st.integers(0, 2**40))
def test_every_character_is_printable_ascii(data, offset):
    for line in format_hexdump(data, offset).splitlines():
        assert all(0x20 <= ord(char) <= 0x7E for char in line), line


# Offsets stay below 2**32 here, where the offset field is exactly 8 digits wide.
@given(data=st.binary(max_size=80), offset=st.integers(0, 2**32 - 96))
def test_lines_read_back_to_the_bytes_at_their_offsets(data, offset):
    lines = format_hexdump(data, offset).splitlines()
    assert len(lines) == (len(data) + 15) // 16
    for row, line in enumerate(lines):
        chunk = data[row * 16 : row * 16 + 16]
        assert int(line[:8], 16) == offset + row * 16
        assert bytes.fromhex(line[10:58]) == chunk
        assert line[60:] == "|" + "".join(chr(b) if 32 <= b < 127 else "." for b in chunk) + "|"
        assert line == expected_line(offset + row * 16, chunk)


@pytest.mark.parametrize("size", [1, 16, 17, RUN + 5])
@pytest.mark.parametrize("offset", [0, 9, 2**32 - 40, 2**64 - 40])
def test_styled_offsets_cover_exactly_each_lines_offset(size, offset):
    data = some_bytes(size, size)
    text = hexdump_text(data, offset)
    assert text.plain == format_hexdump(data, offset)
    assert text.spans == [
        Span(start, end, "netrepl.offset") for start, end in searched_spans(text.plain)
    ]
    assert [text.plain[span.start : span.end] for span in text.spans] == [
        f"{line_offset:08x}" for line_offset in range(offset, offset + size, 16)
    ]


def test_unstyled_hexdump_text_is_the_plain_lines():
    data = some_bytes(RUN + 5)
    text = hexdump_text(data, 77, styles=False)
    assert text.plain == format_hexdump(data, 77)
    assert text.spans == []


@needs_hexdump
def test_all_byte_values_match_the_hexdump_binary(tmp_path):
    assert format_hexdump(ALL_BYTES) == hexdump_c(ALL_BYTES, tmp_path)


@needs_hexdump
@pytest.mark.parametrize("length", [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, RUN + 3])
def test_partial_lines_match_the_hexdump_binary(tmp_path, length):
    data = bytes((i * 37 + 11) % 256 for i in range(length))
    assert format_hexdump(data) == hexdump_c(data, tmp_path)


@needs_hexdump
@pytest.mark.parametrize("skip", [1, 3, 16, 21])
def test_stream_offsets_match_the_hexdump_binary_skipping(tmp_path, skip):
    data = ALL_BYTES[:70] + bytes(40)  # the zeros would be squeezed to `*` without -v
    assert format_hexdump(data[skip:], offset=skip) == hexdump_c(data, tmp_path, skip=skip)


@needs_hexdump
def test_runs_of_random_bytes_match_the_hexdump_binary_skipping(tmp_path):
    data = some_bytes(3 * RUN + 29)
    assert format_hexdump(data[5:], offset=5) == hexdump_c(data, tmp_path, skip=5)
