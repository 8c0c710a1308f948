"""codec: decoding any split of a stream equals decoding it whole (utf-8, gbk, gb18030, latin-1,
auto); output never holds a raw control, and escape spans mark exactly the `\\xNN`/`\\uNNNN`
escapes; line ends are normalised across reads; encoding names resolve or fail cleanly."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.codec import (
    AUTO,
    SafeText,
    TextDecoder,
    decode_whole,
    encoding_for_sending,
    escape_text,
    resolve_encoding,
)

ENCODINGS = ["utf-8", "gbk", "gb18030", "latin-1", AUTO]

# One escape as codec writes it; a span may cover a run of adjacent escapes of one kind.
ESCAPE = re.compile(r"\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8}")
ESCAPE_RUN = re.compile(r"(?:\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8})+")

BIDI_AND_SEPARATORS = {0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F)}
BIDI_AND_SEPARATORS |= set(range(0x2066, 0x206A))
# Format characters a terminal draws as nothing (soft hyphen, zero-width space, joiners, word
# joiner, invisible operators, BOM, annotation marks, tags): they must not pass for nothing.
INVISIBLE = {0x00AD, 0x180E, 0x200B, 0x200C, 0x200D, *range(0x2060, 0x2066)}
INVISIBLE |= {*range(0x206A, 0x2070), 0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB}
INVISIBLE |= {0xE0001, *range(0xE0020, 0xE0080)}


def is_unsafe(char: str) -> bool:
    """What must never reach a terminal raw (written out here, independent of codec's regex)."""
    code = ord(char)
    return (
        (code < 0x20 and char not in "\t\n")
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or code in BIDI_AND_SEPARATORS
        or code in INVISIBLE
    )


def split_escapes(safe: SafeText) -> list[tuple[int, int, str]]:
    """Every single escape as (start, end, kind), with runs inside one span taken apart."""
    singles = []
    for start, end, kind in safe.escapes:
        for match in ESCAPE.finditer(safe.text, start, end):
            singles.append((match.start(), match.end(), kind))
    return singles


def decode_in_chunks(data: bytes, cuts: list[int], encoding: str) -> SafeText:
    """Feed `data` cut at `cuts` to one TextDecoder, then final; join texts and shift spans."""
    decoder = TextDecoder(encoding)
    bounds = [0, *sorted(cuts), len(data)]
    pieces = [decoder.decode(data[a:b]) for a, b in itertools.pairwise(bounds)]
    pieces.append(decoder.decode(b"", final=True))
    text, spans = "", []
    for piece in pieces:
        spans += [(start + len(text), end + len(text), kind) for start, end, kind in piece.escapes]
        text += piece.text
    return SafeText(text, tuple(spans))


def unescape(safe: SafeText) -> str:
    """Undo escape_text using its spans (and only its spans)."""
    out, last = [], 0
    for start, end, kind in safe.escapes:
        out.append(safe.text[last:start])
        for match in ESCAPE.finditer(safe.text, start, end):
            code = int(match.group()[2:], 16)
            is_byte = match.group().startswith("\\x")
            out.append(chr(0xDC00 + code) if kind == "invalid" and is_byte else chr(code))
        last = end
    out.append(safe.text[last:])
    return "".join(out)


# ---- Strategies ---------------------------------------------------------------------------

SPECIAL_TEXT = st.sampled_from(["\r\n", "\r", "\n", "\t", "\x1b[31m", "中文", "é", "\u202e", "€"])
SPECIAL_BYTES = st.sampled_from([b"\r", b"\n", b"\r\n", b"\x1b", b"\xff", b"\x80", b"\xe4\xb8"])


def _encoded_text(encoding: str) -> st.SearchStrategy[bytes]:
    targets = ["utf-8", "gbk"] if encoding == AUTO else [encoding]
    text = st.lists(st.one_of(st.characters(), SPECIAL_TEXT), max_size=12).map("".join)
    return st.tuples(text, st.sampled_from(targets)).map(
        lambda pair: pair[0].encode(pair[1], errors="ignore")
    )


@st.composite
def stream_and_cuts(draw, encoding: str) -> tuple[bytes, list[int]]:
    pieces = st.one_of(_encoded_text(encoding), st.binary(max_size=6), SPECIAL_BYTES)
    data = b"".join(draw(st.lists(pieces, max_size=8)))
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=10))
    return data, cuts


any_text = st.text(
    st.one_of(
        st.characters(),
        st.integers(0, 0x9F).map(chr),
        st.integers(0xD800, 0xDFFF).map(chr),
        st.sampled_from(sorted(map(chr, BIDI_AND_SEPARATORS))),
        st.sampled_from(sorted(map(chr, INVISIBLE))),
        st.just("\\"),
    )
)


# ---- Any split decodes like the whole -------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(data=st.data())
def test_any_split_decodes_like_the_whole(encoding, data):
    stream, cuts = data.draw(stream_and_cuts(encoding))
    chunked = decode_in_chunks(stream, cuts, encoding)
    whole = decode_whole(stream, encoding)
    assert chunked.text == whole.text
    assert split_escapes(chunked) == split_escapes(whole)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(stream=st.binary(max_size=64), cuts=st.lists(st.integers(0, 64), max_size=8))
def test_arbitrary_bytes_decode_to_safe_text(encoding, stream, cuts):
    safe = decode_in_chunks(stream, [c for c in cuts if c <= len(stream)], encoding)
    assert not [char for char in safe.text if is_unsafe(char)]


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8", "héllo, 中文 ☃ 😀"),
        ("gbk", "中文汉字，你好"),
        ("gb18030", "中文 😀 €"),
        ("latin-1", "café ÿ"),
    ],
)
def test_each_character_split_at_every_byte_is_kept_whole(encoding, text):
    data = text.encode(encoding)
    for cut in range(len(data) + 1):
        for second in range(cut, len(data) + 1):
            assert decode_in_chunks(data, [cut, second], encoding).text == text


# ---- Escaping -----------------------------------------------------------------------------


@given(any_text)
def test_escape_text_leaves_nothing_unsafe(text):
    safe = escape_text(text)
    assert not [char for char in safe.text if is_unsafe(char)]


@given(any_text)
def test_escape_spans_cover_exactly_the_escapes(text):
    safe = escape_text(text)
    previous_end = 0
    for start, end, kind in safe.escapes:
        assert previous_end <= start < end <= len(safe.text)
        assert ESCAPE_RUN.fullmatch(safe.text, start, end), safe.text[start:end]
        assert kind in ("control", "invalid")
        previous_end = end
    # Spans lose nothing: undoing exactly the marked escapes gives back the input.
    assert unescape(safe) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain\ttab\n", SafeText("plain\ttab\n")),
        ("a\x1b[2Jb", SafeText("a\\x1b[2Jb", ((1, 5, "control"),))),
        ("\x00\x07", SafeText("\\x00\\x07", ((0, 8, "control"),))),
        ("del\x7f", SafeText("del\\x7f", ((3, 7, "control"),))),
        ("c1\x85\x9b", SafeText("c1\\x85\\x9b", ((2, 10, "control"),))),
        ("x\u2028y\u2029", SafeText("x\\u2028y\\u2029", ((1, 7, "control"), (8, 14, "control")))),
        ("\u202eevil", SafeText("\\u202eevil", ((0, 6, "control"),))),
        ("\u2066i\u2069", SafeText("\\u2066i\\u2069", ((0, 6, "control"), (7, 13, "control")))),
        ("\udcff", SafeText("\\xff", ((0, 4, "invalid"),))),
        ("\ud800", SafeText("\\ud800", ((0, 6, "invalid"),))),
        ("\x1b\udc80", SafeText("\\x1b\\x80", ((0, 4, "control"), (4, 8, "invalid")))),
        ("\\x1b typed", SafeText("\\x1b typed")),
        ("\r", SafeText("\\x0d", ((0, 4, "control"),))),
    ],
)
def test_escape_text_exact(text, expected):
    assert escape_text(text) == expected


def reference_escape(text: str) -> str:
    """escape_text's format, one character at a time (independent of codec's fast paths)."""
    out = []
    for char in text:
        code = ord(char)
        if not is_unsafe(char):
            out.append(char)
        elif 0xDC00 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x100 and code != 0xAD:  # C0, DEL, C1: a byte's worth
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


# Text as a device sends it, with escapes' look-alikes typed literally.
mixed_text = st.lists(
    st.one_of(
        any_text,
        st.sampled_from(["中文", "设备状态", "\\udc", "\\udcff", "\\x1b", "\\u202e", "\\", "\n"]),
    ),
    max_size=12,
).map("".join)


@given(mixed_text)
def test_escape_text_matches_a_character_by_character_reference(text):
    safe = escape_text(text)
    assert safe.text == reference_escape(text)
    assert unescape(safe) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "中\x1b[1m文\udcff\udc80\u202e尾\x07\ud800",
            SafeText(
                "中\\x1b[1m文\\xff\\x80\\u202e尾\\x07\\ud800",
                (
                    (1, 5, "control"),
                    (9, 17, "invalid"),
                    (17, 23, "control"),
                    (24, 28, "control"),
                    (28, 34, "invalid"),
                ),
            ),
        ),
        ("\\udcff", SafeText("\\udcff")),  # typed, not an undecodable byte
        ("\\udc41 \udc41", SafeText("\\udc41 \\x41", ((7, 11, "invalid"),))),
        ("a\\udc\udcff\x1b", SafeText("a\\udc\\xff\\x1b", ((5, 9, "invalid"), (9, 13, "control")))),
        ("状态\x85\x9b\u2066", SafeText("状态\\x85\\x9b\\u2066", ((2, 16, "control"),))),
    ],
)
def test_escape_text_mixing_cjk_controls_and_undecodable_bytes(text, expected):
    assert escape_text(text) == expected


@pytest.mark.parametrize(
    ("encoding", "data", "expected"),
    [
        ("utf-8", b"a\xffb", SafeText("a\\xffb", ((1, 5, "invalid"),))),
        ("utf-8", b"\xc3(", SafeText("\\xc3(", ((0, 4, "invalid"),))),
        ("utf-8", b"\x1b[31mred", SafeText("\\x1b[31mred", ((0, 4, "control"),))),
        ("utf-8", b"\xc2\x9b", SafeText("\\x9b", ((0, 4, "control"),))),
        ("utf-8", b"\xe2\x80\xae", SafeText("\\u202e", ((0, 6, "control"),))),
        ("latin-1", b"\x85\xe9", SafeText("\\x85\xe9", ((0, 4, "control"),))),
        ("gbk", b"\xd6\xd0\xff", SafeText("中\\xff", ((1, 5, "invalid"),))),
        ("gbk", b"\x80", SafeText("\\x80", ((0, 4, "invalid"),))),
        (AUTO, b"\xff\x80", SafeText("\\xff\\x80", ((0, 8, "invalid"),))),
        ("utf-8", b"\\x41", SafeText("\\x41")),
        # A lone UTF-16 surrogate: its bytes include 00, which surrogateescape cannot carry.
        ("utf-16-le", b"A\x00\x00\xdcB\x00", SafeText("A\\x00\\xdcB", ((1, 9, "invalid"),))),
    ],
)
def test_invalid_bytes_and_controls_become_marked_escapes(encoding, data, expected):
    assert decode_whole(data, encoding) == expected


# ---- Line ends ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\r\nb"], "a\nb"),
        ([b"a\rb"], "a\nb"),
        ([b"a\nb"], "a\nb"),
        ([b"a\r", b"\nb"], "a\nb"),
        ([b"a\r", b"", b"\nb"], "a\nb"),
        ([b"a\r", b"\n", b"\nb"], "a\n\nb"),
        ([b"a\r\r\nb"], "a\n\nb"),
        ([b"a\n\rb"], "a\n\nb"),
        ([b"a\r", b"\r", b"\n"], "a\n\n"),
        ([b"\r\n\r\n"], "\n\n"),
        ([b"end\r"], "end\n"),
    ],
)
def test_cr_lf_lone_cr_and_lone_lf_each_become_one_newline(encoding, chunks, expected):
    decoder = TextDecoder(encoding)
    texts = [decoder.decode(chunk).text for chunk in chunks]
    texts.append(decoder.decode(b"", final=True).text)
    assert "".join(texts) == expected


def test_cr_then_held_back_bytes_then_lf_is_one_newline():
    decoder = TextDecoder("utf-8")
    assert decoder.decode(b"a\r").text == "a\n"
    assert decoder.decode(b"\xe4\xb8").text == ""  # held back: the CR is still the last char
    assert decoder.decode(b"\xad\nb").text == "中\nb"


def test_lf_after_an_invalid_byte_after_cr_is_a_second_line_end():
    decoder = TextDecoder("utf-8")
    assert decoder.decode(b"a\r").text == "a\n"
    assert decoder.decode(b"\xff\n").text == "\\xff\n"


# ---- auto ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (["héllo 中文 😀".encode()], "héllo 中文 😀"),
        (["中文，你好".encode("gbk")], "中文，你好"),
        (["中".encode() + "文".encode("gbk") + b"!"], "中文!"),
        ([b"\xe4", b"\xb8", b"\xad"], "中"),
        ([b"\xf0\x9f", b"\x98\x80"], "😀"),
        ([b"\xd6", b"\xd0"], "中"),
        ([b"a\xd6"], "a\\xd6"),
        ([b"\xe4\xb8"], "涓"),
        ([b"\xff"], "\\xff"),
        ([b"ok\x1b"], "ok\\x1b"),
    ],
)
def test_auto_prefers_utf8_then_gbk_then_escapes(chunks, expected):
    decoder = TextDecoder(AUTO)
    texts = [decoder.decode(chunk).text for chunk in chunks]
    texts.append(decoder.decode(b"", final=True).text)
    assert "".join(texts) == expected


def test_auto_holds_back_a_utf8_prefix_until_the_next_read():
    decoder = TextDecoder(AUTO)
    assert decoder.decode(b"x\xe4\xb8").text == "x"
    assert decoder.pending() == b"\xe4\xb8"
    assert decoder.decode(b"\xad").text == "中"
    assert decoder.pending() == b""


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"\xd6\xd0", "中"),  # \xd0 cannot continue UTF-8
        (b"\xed\xa0", "頎"),  # would be a UTF-16 surrogate in UTF-8
        (b"\xe0\x80", "鄝"),  # would be an overlong UTF-8 form
        (b"\xf4\x90", "魫"),  # would be past U+10FFFF in UTF-8
    ],
)
def test_auto_shows_gbk_at_once_when_utf8_is_impossible(data, shown):
    decoder = TextDecoder(AUTO)
    assert decoder.decode(data).text == shown
    assert decoder.pending() == b""


@pytest.mark.parametrize(
    ("encoding", "data", "text", "pending"),
    [
        ("utf-8", b"a\xe4\xb8", "a", b"\xe4\xb8"),
        ("gbk", b"a\xd6", "a", b"\xd6"),
        ("gb18030", b"a\x81\x30", "a", b"\x81\x30"),
        ("latin-1", b"a\xe4", "a\xe4", b""),
    ],
)
def test_pending_reports_held_back_bytes(encoding, data, text, pending):
    decoder = TextDecoder(encoding)
    assert decoder.decode(data).text == text
    assert decoder.pending() == pending


# ---- Encoding names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("utf8", "utf-8"),
        ("UTF-8", "utf-8"),
        ("U8", "utf-8"),
        ("GBK", "gbk"),
        ("cp936", "gbk"),
        ("GB18030", "gb18030"),
        ("latin1", "iso8859-1"),
        ("latin-1", "iso8859-1"),
        ("auto", AUTO),
        ("AUTO", AUTO),
    ],
)
def test_resolve_encoding_canonicalises_aliases(name, canonical):
    assert resolve_encoding(name) == canonical


@pytest.mark.parametrize("name", ["nope", "uft8", "", "utf-9"])
def test_resolve_encoding_rejects_unknown_names(name):
    with pytest.raises(ValueError, match="unknown encoding"):
        resolve_encoding(name)


@pytest.mark.parametrize("name", ["hex", "base64", "zlib", "rot13", "bz2", "uu"])
def test_resolve_encoding_rejects_byte_and_non_text_codecs(name):
    with pytest.raises(ValueError, match="not a text encoding"):
        resolve_encoding(name)


@pytest.mark.parametrize(
    ("encoding", "sent"), [(AUTO, "utf-8"), ("gbk", "gbk"), ("utf-8", "utf-8")]
)
def test_auto_sends_utf8(encoding, sent):
    assert encoding_for_sending(encoding) == sent


# ---- invisible format characters ------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(INVISIBLE), ids=lambda code: f"U+{code:04X}")
def test_an_invisible_format_character_is_shown_as_an_escape(code):
    char = chr(code)
    escape = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    safe = escape_text(f"PO{char}NG")
    assert safe.text == f"PO{escape}NG"
    assert safe.escapes == ((2, 2 + len(escape), "control"),)


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030", AUTO])
def test_a_zero_width_space_in_the_stream_is_seen(encoding):
    data = "PO\u200bNG 中\ufeff".encode("utf-8" if encoding == AUTO else encoding)
    assert decode_whole(data, encoding).text == "PO\\u200bNG 中\\ufeff"


def test_the_soft_hyphen_is_not_taken_for_an_undecodable_byte():
    # Latin-1 text takes the fast path, which must know U+00AD too; `\xad` would read as
    # the byte AD that UTF-8 could not decode.
    assert escape_text("co\xadop").text == "co\\u00adop"
    assert decode_whole(b"co\xadop", "latin-1").text == "co\\u00adop"
    assert decode_whole(b"co\xadop", "utf-8") == SafeText("co\\xadop", ((2, 6, "invalid"),))


# escape_text looks for an unsafe character only where the first byte of its UTF-8 form occurs,
# and for C1 only where C2 does: each one, alone and beside characters that share or do not
# share its first byte (C2 °, E2 —, EF ，, E3-E9 CJK), in every context.
UNSAFE_CHARS = [chr(code) for code in range(0x110000) if is_unsafe(chr(code))]
NEIGHBOURS = ["", "plain ascii ", "温度 23.5°C", "— sensor", "设备，状态：", "\udcff", "\t\n"]


@pytest.mark.parametrize("neighbour", NEIGHBOURS)
def test_every_unsafe_character_is_escaped_in_any_company(neighbour):
    missed = [
        char
        for char in UNSAFE_CHARS
        if escape_text(neighbour + char + neighbour).text
        != reference_escape(neighbour + char + neighbour)
    ]
    assert not missed
