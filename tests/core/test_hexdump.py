"""hexdump: lines in exact `hexdump -C` layout (checked by hand and against the real binary when
installed), offsets from the stream position, no `*` squeezing, and a gutter of printable ASCII."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.hexdump import format_hexdump, format_hexdump_line

HEXDUMP = shutil.which("hexdump")
needs_hexdump = pytest.mark.skipif(HEXDUMP is None, reason="hexdump binary not installed")


def expected_line(offset: int, chunk: bytes) -> str:
    """hexdump -C's layout spelled out: 8 hex bytes, a gap, 8 more, padded to 60 columns."""
    hexes = [f"{b:02x}" for b in chunk]
    columns = " ".join(hexes[:8])
    if len(hexes) > 8:
        columns += "  " + " ".join(hexes[8:])
    gutter = "".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in chunk)
    return f"{offset:08x}  " + columns.ljust(48) + f"  |{gutter}|"


def hexdump_c(data: bytes, tmp_path, skip: int = 0) -> list[str]:
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
    lines = result.stdout.splitlines()
    if not lines:
        return []
    assert lines[-1] == f"{len(data):08x}", "hexdump -C ends with the total length"
    return lines[:-1]


ALL_BYTES = bytes(range(256))


def test_all_byte_values_in_hexdump_c_layout():
    lines = format_hexdump(ALL_BYTES)
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
    assert format_hexdump(chunk) == [line]


def test_offsets_continue_from_the_stream_offset():
    lines = format_hexdump(b"A" * 20, offset=0x1234)
    assert lines == [
        "00001234  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|",
        "00001244  41 41 41 41                                       |AAAA|",
    ]


def test_offsets_past_four_gib_widen_like_hexdump():
    assert format_hexdump(b"z", offset=2**32)[0].startswith("100000000  7a  ")


def test_repeated_lines_are_never_squeezed():
    lines = format_hexdump(bytes(64))
    assert len(lines) == 4
    assert "*" not in "".join(lines)
    assert [line[:8] for line in lines] == ["00000000", "00000010", "00000020", "00000030"]


def test_empty_data_has_no_lines():
    assert format_hexdump(b"") == []
    assert format_hexdump(b"", offset=99) == []


@given(data=st.binary(max_size=80), offset=st.integers(0, 2**40))
def test_every_character_is_printable_ascii(data, offset):
    for line in format_hexdump(data, offset):
        assert all(0x20 <= ord(char) <= 0x7E for char in line), line


# Offsets stay below 2**32 here, where the offset field is exactly 8 digits wide.
@given(data=st.binary(max_size=80), offset=st.integers(0, 2**32 - 96))
def test_lines_read_back_to_the_bytes_at_their_offsets(data, offset):
    lines = format_hexdump(data, offset)
    assert len(lines) == (len(data) + 15) // 16
    for row, line in enumerate(lines):
        chunk = data[row * 16 : row * 16 + 16]
        assert int(line[:8], 16) == offset + row * 16
        assert bytes.fromhex(line[10:58]) == chunk
        assert line[60:] == "|" + "".join(chr(b) if 32 <= b < 127 else "." for b in chunk) + "|"
        assert line == expected_line(offset + row * 16, chunk)


@needs_hexdump
def test_all_byte_values_match_the_hexdump_binary(tmp_path):
    assert format_hexdump(ALL_BYTES) == hexdump_c(ALL_BYTES, tmp_path)


@needs_hexdump
@pytest.mark.parametrize("length", [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100])
def test_partial_lines_match_the_hexdump_binary(tmp_path, length):
    data = bytes((i * 37 + 11) % 256 for i in range(length))
    assert format_hexdump(data) == hexdump_c(data, tmp_path)


@needs_hexdump
@pytest.mark.parametrize("skip", [1, 3, 16, 21])
def test_stream_offsets_match_the_hexdump_binary_skipping(tmp_path, skip):
    data = ALL_BYTES[:70] + bytes(40)  # the zeros would be squeezed to `*` without -v
    assert format_hexdump(data[skip:], offset=skip) == hexdump_c(data, tmp_path, skip=skip)
