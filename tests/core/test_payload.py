"""payload: lenient hex reads back what format_hex writes; escapes and encodings give exact bytes;
every mistake is a one-line UsageError naming the column where it is, and sends nothing."""

from __future__ import annotations

import codecs
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.errors import UsageError
from netrepl.payload import EOLS, build_payload, encode_text, format_hex, parse_hex


def error_column(error: pytest.ExceptionInfo[UsageError]) -> int:
    message = str(error.value)
    assert "\n" not in message
    found = re.search(r"at column (\d+)", message)
    assert found, message
    return int(found.group(1))


# ---- Hex ----------------------------------------------------------------------------------


@given(st.binary(min_size=1))
def test_parse_hex_reads_back_format_hex(data):
    assert parse_hex(format_hex(data)) == data


def test_format_hex_is_spaced_lowercase_pairs():
    assert format_hex(b"\x01\x03\n\xff") == "01 03 0a ff"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01 03 0a", b"\x01\x03\x0a"),
        ("01030A", b"\x01\x03\x0a"),
        ("0x01,0x03", b"\x01\x03"),
        ("0X0a 0xFF", b"\x0a\xff"),
        ("0x0103", b"\x01\x03"),
        ("01:03", b"\x01\x03"),
        ("\\x01\\x03", b"\x01\x03"),
        ("01-02;03", b"\x01\x02\x03"),
        ("  01 ,\t0x02;03:\\x04\\x05 - 0607  ", b"\x01\x02\x03\x04\x05\x06\x07"),
        ("de AD bE ef", b"\xde\xad\xbe\xef"),
    ],
)
def test_parse_hex_is_lenient(text, expected):
    assert parse_hex(text) == expected


@pytest.mark.parametrize(
    ("text", "column", "expected_column", "words"),
    [
        ("013", 1, 1, "odd number of hex digits in '013'"),
        ("01 023", 1, 4, "odd number of hex digits in '023'"),
        ("01 023", 4, 7, "odd number of hex digits in '023'"),
        ("0x123", 1, 3, "odd number of hex digits in '123'"),
        ("01 \\x0", 1, 6, "odd number of hex digits in '0'"),
        ("\\x01\\x023", 10, 16, "odd number of hex digits in '023'"),
        ("0g", 1, 2, "not a hex digit 'g'"),
        ("01 02 zz", 1, 7, "not a hex digit 'z'"),
        ("01 02 zz", 4, 10, "not a hex digit 'z'"),
        ("0x0g", 1, 4, "not a hex digit 'g'"),
        ("\\x01zz", 1, 5, "not a hex digit 'z'"),
        ("01 中", 1, 4, "not a hex digit '中'"),
        ("01 0x", 1, 4, "hex prefix without digits"),
        ("\\x", 3, 3, "hex prefix without digits"),
    ],
)
def test_parse_hex_errors_name_the_column(text, column, expected_column, words):
    with pytest.raises(UsageError) as error:
        parse_hex(text, column=column)
    assert words in str(error.value)
    assert error_column(error) == expected_column


@pytest.mark.parametrize("text", ["", "   ", ", : ;", "\t"])
def test_parse_hex_without_bytes_is_an_error(text):
    with pytest.raises(UsageError, match="no hex bytes given"):
        parse_hex(text)


# ---- Text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "encoding", "expected"),
    [
        ("hello", "utf-8", b"hello"),
        ("a\\r\\nb", "utf-8", b"a\r\nb"),
        ("\\t\\0\\\\", "utf-8", b"\t\x00\\"),
        ("\\x00\\x7f\\xFF", "utf-8", b"\x00\x7f\xff"),
        ("中\\xff", "gbk", b"\xd6\xd0\xff"),
        ("\\xd6\\xd0", "gbk", b"\xd6\xd0"),
        ("中\\n", "utf-8", b"\xe4\xb8\xad\n"),
        ("中", "auto", b"\xe4\xb8\xad"),
        ("é\\x80", "latin-1", b"\xe9\x80"),
        ("\\\\x41", "utf-8", b"\\x41"),
    ],
)
def test_encode_text_turns_escapes_into_bytes(line, encoding, expected):
    assert encode_text(line, encoding) == expected


@pytest.mark.parametrize(
    ("line", "shown", "expected_column"),
    [
        ("ab\\q", "\\q", 3),
        ("\\", "\\", 1),
        ("ab\\x4", "\\x4", 3),
        ("ab\\xzz1", "\\xzz", 3),
        ("\\x41\\x", "\\x", 5),
        ("中文\\u4e2d", "\\u", 3),
    ],
)
def test_bad_escape_is_an_error_naming_its_column(line, shown, expected_column):
    with pytest.raises(UsageError) as error:
        encode_text(line, "utf-8")
    assert f"bad escape {shown!r}" in str(error.value)
    assert error_column(error) == expected_column


@pytest.mark.parametrize("line", ["a\\nb", "\\x41\\q", "C:\\path\\", "\\"])
def test_escapes_off_sends_backslashes_verbatim(line):
    assert encode_text(line, "utf-8", escapes=False) == line.encode()


@pytest.mark.parametrize(
    ("line", "encoding", "expected_column", "escapes"),
    [
        ("中", "latin-1", 1, True),
        ("ab中", "latin-1", 3, True),
        ("a\\n中", "latin-1", 4, True),
        ("\\x41\\r\\nxyz😀", "gbk", 12, True),
        ("a\\n中", "latin-1", 4, False),
        ("é", "ascii", 1, True),
    ],
)
def test_unencodable_character_is_an_error_naming_its_column(
    line, encoding, expected_column, escapes
):
    with pytest.raises(UsageError) as error:
        encode_text(line, encoding, escapes=escapes)
    assert f"cannot encode {line[expected_column - 1]!r}" in str(error.value)
    assert encoding in str(error.value)
    assert error_column(error) == expected_column


def test_stdin_bytes_that_were_undecodable_go_out_unchanged():
    line = b"ab\xff\xfe".decode("utf-8", errors="surrogateescape")
    assert encode_text(line, "utf-8") == b"ab\xff\xfe"


# ---- Whole payload ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eol", "tail"), [("lf", b"\n"), ("crlf", b"\r\n"), ("cr", b"\r"), ("none", b"")]
)
def test_text_payload_ends_with_the_eol(eol, tail):
    payload = build_payload("PING\\t1", input_mode="text", encoding="utf-8", escapes=True, eol=eol)
    assert payload == b"PING\t1" + tail


def test_eols_are_the_four_documented_ones():
    assert EOLS == {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r", "none": b""}


@pytest.mark.parametrize("eol", ["lf", "crlf", "cr", "none"])
def test_hex_payload_gets_no_eol(eol):
    payload = build_payload("01 03 00 00", input_mode="hex", encoding="gbk", escapes=True, eol=eol)
    assert payload == b"\x01\x03\x00\x00"


def test_hex_payload_errors_count_columns_from_the_line_start():
    with pytest.raises(UsageError) as error:
        build_payload("01 0z", input_mode="hex", encoding="utf-8", escapes=True, eol="lf")
    assert error_column(error) == 5


def test_auto_encoding_sends_utf8():
    payload = build_payload("中文", input_mode="text", encoding="auto", escapes=True, eol="crlf")
    assert payload == "中文".encode() + b"\r\n"


def test_gbk_encoding_sends_gbk_with_raw_bytes_kept():
    payload = build_payload("中\\x80", input_mode="text", encoding="gbk", escapes=True, eol="lf")
    assert payload == b"\xd6\xd0\x80\n"


def test_escapes_off_payload_keeps_backslashes_and_adds_eol():
    payload = build_payload("a\\r", input_mode="text", encoding="utf-8", escapes=False, eol="lf")
    assert payload == b"a\\r\n"


@given(st.text(st.characters(codec="utf-8", exclude_characters="\\")))
def test_text_without_backslashes_is_just_encoded(line):
    assert encode_text(line, "utf-8") == line.encode("utf-8")


@pytest.mark.parametrize(
    ("encoding", "bom"), [("utf-8-sig", codecs.BOM_UTF8), ("utf-16", codecs.BOM_UTF16)]
)
def test_an_escape_does_not_restart_a_bom_encoding(encoding, bom):
    assert encode_text("a\\tb\\x00c", encoding).count(bom) == 1
