"""Checksums against published check values, and placeholders expanded in typed lines."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.checksum import CHECKSUMS
from netrepl.errors import UsageError
from netrepl.payload import SendContext, build_payload, parse_hex_line

# The "check" value of each algorithm: its CRC of the ASCII bytes 123456789 (the CRC catalogue
# by Greg Cook), and the plain arithmetic for the sums.
CHECK = b"123456789"


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("crc16-modbus", "374b"),  # 0x4B37, sent low byte first
        ("crc16-ccitt", "29b1"),
        ("crc16-xmodem", "31c3"),
        ("crc32", "cbf43926"),
        ("crc32-le", "2639f4cb"),
        ("sum8", "dd"),  # 0x31+...+0x39 = 477 = 0x1DD
        ("xor8", "31"),
        ("lrc", "23"),  # -0xDD mod 256
    ],
)
def test_check_values(name, wire):
    assert CHECKSUMS[name].digest(CHECK).hex() == wire


def test_modbus_rtu_request_from_the_issue():
    frame = parse_hex_line("01 03 00 00 00 0A {crc16-modbus}", SendContext())
    assert frame == bytes.fromhex("01 03 00 00 00 0A C5 CD")


@given(st.binary(max_size=64))
def test_crc32_matches_zlib(data):
    assert CHECKSUMS["crc32"].digest(data) == binascii.crc32(data).to_bytes(4, "big")


@given(st.binary(min_size=1, max_size=64))
def test_modbus_crc_appended_makes_the_frame_check_to_zero(data):
    # A property of CRC-16/MODBUS: the CRC of a frame followed by its own CRC is 0.
    framed = data + CHECKSUMS["crc16-modbus"].digest(data)
    assert CHECKSUMS["crc16-modbus"].digest(framed) == b"\0\0"


@given(st.binary(max_size=64))
def test_lrc_plus_sum_is_zero(data):
    assert (sum(data) + CHECKSUMS["lrc"].digest(data)[0]) & 0xFF == 0


def text(line: str, context: SendContext | None = None, eol: str = "lf") -> bytes:
    return build_payload(
        line,
        input_mode="text",
        encoding="utf-8",
        escapes=True,
        eol=eol,
        context=context or SendContext(counter=7, now=86400 + 3661),
    )


def hexline(line: str, context: SendContext | None = None) -> bytes:
    return build_payload(
        line,
        input_mode="hex",
        encoding="utf-8",
        escapes=True,
        eol="lf",
        context=context or SendContext(counter=7),
    )


def test_checksum_covers_the_text_before_it_not_the_eol():
    assert text("AT{xor8}", eol="crlf") == b"AT" + bytes([ord("A") ^ ord("T")]) + b"\r\n"


def test_checksum_covers_escapes_and_hex_before_it():
    assert (
        text("\\x02DATA\\x03{xor8}")
        == b"\x02DATA\x03" + bytes([0x02 ^ 0x03 ^ 0x44 ^ 0x41 ^ 0x54 ^ 0x41]) + b"\n"
    )


@pytest.mark.parametrize(
    ("line", "covered"),
    [
        ("68 01 02 03 {sum8:1-}", "01 02 03"),
        ("68 01 02 03 {sum8:1-2}", "01 02"),
        ("68 01 02 03 {sum8:-1}", "68 01"),
        ("68 01 02 03 {sum8:-}", "68 01 02 03"),
    ],
)
def test_byte_ranges_count_from_zero_and_include_the_end(line, covered):
    assert hexline(line)[-1] == sum(bytes.fromhex(covered)) & 0xFF


def test_two_checksums_the_second_covers_the_first():
    frame = hexline("01 02 {sum8} {xor8}")
    assert frame == bytes([1, 2, 3, 1 ^ 2 ^ 3])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("n={counter}", b"n=7\n"),
        ("{counter:u8}", b"\x07\n"),
        ("{counter:u16}", b"\x00\x07\n"),
        ("{counter:u16le}", b"\x07\x00\n"),
        ("{counter:u32}", b"\x00\x00\x00\x07\n"),
        ("{counter:u32le}", b"\x07\x00\x00\x00\n"),
        ("{time:unix}", b"90061\n"),
        ("{time:ms}", b"90061000\n"),
        ("{time:u32}", (90061).to_bytes(4, "big") + b"\n"),
        ("a{hex:01 ff}b", b"a\x01\xffb\n"),
        ("\\{crc32}", b"{crc32}\n"),
        ('{"json": 1}', b'{"json": 1}\n'),
        ("{ not a placeholder }", b"{ not a placeholder }\n"),
    ],
)
def test_text_placeholders(line, expected):
    assert text(line) == expected


def test_time_text_is_a_clock_time():
    assert len(text("{time}", eol="none")) == len(b"HH:MM:SS")


def test_counter_wraps_in_its_width():
    assert text("{counter:u8}", SendContext(counter=257), eol="none") == b"\x01"


def test_file_placeholder_uses_the_given_reader():
    read = {"frame.bin": b"\x10\x20"}.__getitem__
    assert hexline("AA {file:frame.bin} {sum8}", SendContext(read_file=read)) == b"\xaa\x10\x20\xda"


def test_placeholders_are_literal_with_escapes_off():
    line = "AT{xor8}"
    assert (
        build_payload(
            line,
            input_mode="text",
            encoding="utf-8",
            escapes=False,
            eol="none",
            context=SendContext(),
        )
        == line.encode()
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ab{nope}", "unknown placeholder {nope} at column 3"),
        ("{crc32:5-}", "outside the 0 bytes before it"),
        ("ab{sum8:x}", "a byte range is START-END"),
        ("{counter:u9}", "counter takes u8"),
        ("{time:year}", "time takes unix, ms or u32"),
        ("{hex:0}", "odd number of hex digits"),
        ("{hex:}", "give the bytes"),
        ("{file:}", "give a path"),
    ],
)
def test_a_wrong_placeholder_is_an_error(line, message):
    with pytest.raises(UsageError, match=message.replace("{", "\\{").replace("}", "\\}")):
        text(line)


def test_file_placeholder_without_a_reader_is_an_error():
    with pytest.raises(UsageError, match="files cannot be read"):
        text("{file:x}", SendContext())


def test_hex_placeholders_between_bytes_and_errors_name_columns():
    assert hexline("{counter:u8}01") == b"\x07\x01"
    with pytest.raises(UsageError, match="column 4"):
        hexline("01 0 {crc32}")
