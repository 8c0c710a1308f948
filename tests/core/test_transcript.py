"""The transcript's fast writer: the pieces a log writes join into exactly the line `to_line`
makes, for every event and every size of data, and read back to the same event."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netrepl.events import Closed, Connected, HalfClosed, Listening, Noticed, Received, Sent
from netrepl.transcript import (
    BASE64_PIECE,
    TranscriptError,
    data_file_of,
    header,
    parse_line,
    to_data_line,
    to_line,
    to_pieces,
)

TIMES = st.floats(min_value=0, max_value=4e9, allow_nan=False)
DATA = st.binary(max_size=300)

EVENTS = st.one_of(
    st.builds(Received, st.integers(1, 99), DATA, st.booleans()),
    st.builds(Sent, st.integers(1, 99), DATA, st.booleans(), st.booleans()),
    st.builds(Connected, st.integers(1, 99), st.text(max_size=20), st.text(max_size=20)),
    st.builds(Closed, st.integers(1, 9), st.text(max_size=30), st.integers(0), st.integers(0)),
    st.builds(HalfClosed, st.integers(1, 9)),
    st.builds(Listening, st.text(max_size=20)),
)


def written(event, at) -> bytes:
    return b"".join(to_pieces(event, at))


@settings(max_examples=300)
@given(event=EVENTS, at=TIMES)
def test_the_pieces_make_the_line(event, at):
    assert written(event, at) == (to_line(event, at) + "\n").encode()


@pytest.mark.parametrize(
    "size",
    [0, 1, 2, 3, BASE64_PIECE - 1, BASE64_PIECE, BASE64_PIECE + 1, 3 * BASE64_PIECE + 2, 1 << 20],
)
def test_data_of_any_size_reads_back_whole(size):
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    event = Received(7, data, at=1764031200.25)
    line = written(event, event.at)
    assert line == (to_line(event, event.at) + "\n").encode()
    entry = parse_line(line.decode())
    assert entry is not None and entry.event == event and entry.at == event.at


def test_the_pieces_of_a_large_read_are_small():
    # The reason for the pieces: no allocation per read large enough to be a fresh mmap.
    pieces = list(to_pieces(Received(1, b"\x00" * (1 << 20)), 1.0))
    assert max(len(piece) for piece in pieces) <= BASE64_PIECE * 4 // 3


def test_events_a_transcript_does_not_keep_write_nothing():
    assert written(Noticed("hello", "status"), 1.0) == b""


def test_a_datagram_kind_other_than_udp_keeps_its_flag_and_udp_logs_read_as_before():
    multicast = Connected(4, "239.1.1.1:5000", "0.0.0.0:5000", "multicast", True, 1.0, True)
    line = to_line(multicast, 1.0)
    assert line is not None and '"datagram": true' in line
    assert parse_line(line).event.datagrams
    udp = to_line(Connected(5, "1.2.3.4:5", "0.0.0.0:9", "udp", True, 1.0, True), 1.0)
    assert udp is not None and "datagram" not in udp
    assert parse_line(udp).event.datagrams


def test_an_injected_send_keeps_its_mark_through_a_transcript():
    from netrepl.events import Sent
    from netrepl.transcript import parse_line, to_line, to_pieces

    event = Sent(4, b"PING\r\n", False, True, 12.5, injected=True)
    line = to_line(event, 12.5)
    assert line is not None and '"injected": true' in line
    entry = parse_line(line)
    assert entry is not None and entry.event.injected
    assert b"".join(to_pieces(event, 12.5)).decode() == line + "\n"
    plain = Sent(4, b"PING\r\n", False, True, 12.5)
    assert "injected" not in (to_line(plain, 12.5) or "")


def test_a_connection_through_a_proxy_keeps_its_proxy_in_the_log():
    from netrepl.events import Connected
    from netrepl.transcript import parse_line, to_line

    event = Connected(1, "127.0.0.1:7000", "127.0.0.1:5000", via="socks5 proxy 127.0.0.1:1080")
    line = to_line(event, 1.5)
    assert '"via": "socks5 proxy 127.0.0.1:1080"' in line
    entry = parse_line(line)
    assert entry is not None and entry.event.via == "socks5 proxy 127.0.0.1:1080"


# ---- version 2: the bytes in a data file ------------------------------------------------------

DATA_EVENTS = st.one_of(
    st.builds(Received, st.integers(1, 99), DATA, st.booleans()),
    st.builds(
        Received,
        st.integers(1, 99),
        DATA,
        message=st.sampled_from(["", "text", "binary"]),
        offset=st.integers(0, 10**9),
        more=st.booleans(),
    ),
    st.builds(
        Sent,
        st.integers(1, 99),
        DATA,
        st.booleans(),
        st.booleans(),
        injected=st.booleans(),
        message=st.sampled_from(["", "text", "binary"]),
        more=st.booleans(),
    ),
)


@settings(max_examples=300)
@given(event=DATA_EVENTS, at=TIMES, offset=st.integers(0, 1 << 50))
def test_a_version_2_record_points_at_its_bytes_and_reads_back_the_same_event(event, at, offset):
    line = to_data_line(event, at, offset)
    assert line == (to_line(event, at, offset) + "\n").encode()
    record = json.loads(line)
    assert "data" not in record
    assert (record["data_offset"], record["data_length"]) == (offset, len(event.data))
    asked = []

    def read(where: int, length: int) -> bytes:
        asked.append((where, length))
        return event.data

    entry = parse_line(line.decode(), 3, read)
    assert entry is not None and entry.event == event and entry.at == at
    assert asked == [(offset, len(event.data))]


def test_a_version_2_record_is_an_error_without_its_data_file_or_past_its_end():
    line = to_data_line(Received(1, b"abcdef"), 1.0, 10)
    with pytest.raises(
        TranscriptError, match=r"line 4: bad 'received' record .*the header names none"
    ):
        parse_line(line.decode(), 4)
    with pytest.raises(TranscriptError, match=r"line 5: .*data file ends at byte 13,"):
        parse_line(line.decode(), 5, lambda offset, length: b"abc")


def test_the_header_names_the_data_file_and_only_a_file_name():
    assert json.loads(header(1.0))["version"] == 1
    assert data_file_of(header(1.0)) is None
    assert json.loads(header(1.0, "s.jsonl.data"))["version"] == 2
    assert data_file_of(header(1.0, "s.jsonl.data")) == "s.jsonl.data"
    assert data_file_of(to_line(Received(1, b"x"), 1.0)) is None
    for name in ("../secret", "/etc/passwd", "", ".."):
        with pytest.raises(TranscriptError, match=r"line 1: data_file .* is not a file name"):
            data_file_of(header(1.0, name))
