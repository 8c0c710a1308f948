"""traffic: /stats counts bytes and reads (or sends) each way from the events' own times, keeps
the busiest second, and knows which connections are open since when. The report's lines are
checked whole; rates and ages are formatted as people read them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.events import Closed, Connected, Noticed, Received, Sent
from netrepl.traffic import Direction, TrafficStats, format_age, format_rate


def as_bytes_per_second(rate: str) -> float:
    number, unit = rate.split()
    return float(number) * {"B/s": 1, "KiB/s": 1024, "MiB/s": 1024**2, "GiB/s": 1024**3}[unit]


def observed(*events) -> TrafficStats:
    stats = TrafficStats()
    for event in events:
        stats.observe(event)
    return stats


# ---- counting ------------------------------------------------------------------------------


def test_counts_each_direction_apart():
    stats = observed(
        Received(1, b"abc", at=10.0),
        Sent(1, b"hello\n", False, at=10.1),
        Received(1, b"de", at=10.2),
        Sent(1, b"\x01", True, at=10.3),
        Sent(2, b"\x01", True, echo=False, at=10.3),
    )
    assert (stats.received.bytes, stats.received.chunks) == (5, 2)
    assert (stats.received.first_at, stats.received.last_at) == (10.0, 10.2)
    # A copy of one send to another client is still bytes on the wire.
    assert (stats.sent.bytes, stats.sent.chunks) == (8, 3)
    assert (stats.sent.first_at, stats.sent.last_at) == (10.1, 10.3)
    assert stats.received.frames == stats.sent.frames == 0, "frames are the display's to count"


def test_datagrams_count_one_read_each():
    stats = observed(Received(1, b"x" * 100, datagram=True, at=1.0), Received(1, b"", True, at=2.0))
    assert (stats.received.bytes, stats.received.chunks) == (100, 2)


def test_other_events_count_nothing():
    stats = observed(Noticed("hello"), Received(1, b"a", at=1.0))
    assert stats.received.bytes == 1 and stats.sent.bytes == 0


def test_peak_is_the_busiest_calendar_second():
    direction = Direction()
    for size, at in [(100, 10.9), (50, 11.0), (70, 11.99), (10, 12.0), (500, 14.5), (1, 14.6)]:
        direction.add(size, at)
    assert direction.peak_per_second == 501
    assert direction.bytes == 731 and direction.chunks == 6


def test_peak_of_a_single_read():
    direction = Direction()
    direction.add(4096, 5.5)
    assert direction.peak_per_second == 4096


@given(st.lists(st.tuples(st.integers(0, 5000), st.floats(0, 50)), max_size=40))
def test_peak_is_the_largest_sum_of_one_second_in_time_order(reads):
    reads.sort(key=lambda read: read[1])
    direction = Direction()
    per_second: dict[int, int] = {}
    for size, at in reads:
        direction.add(size, at)
        per_second[int(at)] = per_second.get(int(at), 0) + size
    assert direction.peak_per_second == max(per_second.values(), default=0)
    assert direction.bytes == sum(per_second.values())


def test_connections_open_and_close():
    stats = observed(
        Connected(1, "10.0.0.1:4001", "0.0.0.0:9000", accepted=True, at=100.0),
        Connected(2, "10.0.0.2:4002", "0.0.0.0:9000", accepted=True, at=101.0),
        Closed(1, "closed by peer", 0, 0),
        Closed(7, "never seen", 0, 0),
    )
    assert stats.open_since == {2: ("10.0.0.2:4002", 101.0)}
    assert stats.connections == 2


# ---- the report ----------------------------------------------------------------------------


def test_report_of_a_session_with_traffic_both_ways():
    stats = observed(
        Connected(1, "127.0.0.1:7", "127.0.0.1:50000", at=100.0),
        Received(1, b"x" * 1000, at=100.2),
        Sent(1, b"hi\n", False, at=100.5),
        Received(1, b"y" * 2000, at=100.7),
        Received(1, b"z" * 500, at=101.1),
        Sent(1, b"hello\n", False, at=101.5),
    )
    stats.received.frames = 4  # as the display counted them under some framing
    stats.sent.frames = 2
    assert stats.report(102.0).splitlines() == [
        # 3,500 B over the 1.8 s since the first read; 3,000 B in second 100.
        "received 3,500 bytes in 3 reads, 4 frames; 1.9 KiB/s on average, peak 2.9 KiB/s",
        "sent     9 bytes in 2 sends, 2 frames; 6 B/s on average, peak 6 B/s",
        "#1 127.0.0.1:7: connected for 2s",
    ]


def test_report_of_nothing_yet():
    assert TrafficStats().report(5.0).splitlines() == [
        "received 0 bytes in 0 reads",
        "sent     0 bytes in 0 sends",
        "no open connection (0 so far)",
    ]


def test_report_lists_open_connections_by_id_with_their_age():
    stats = observed(
        Connected(3, "[::1]:7003", "[::1]:9000", accepted=True, at=0.0),
        Connected(1, "10.0.0.1:4001", "0.0.0.0:9000", accepted=True, at=3600.0 - 185),
        Connected(2, "10.0.0.2:4002", "0.0.0.0:9000", accepted=True, at=3600.0 - 3661),
        Closed(2, "closed", 0, 0),
    )
    assert stats.report(3600.0).splitlines()[2:] == [
        "#1 10.0.0.1:4001: connected for 3m05s",
        "#3 [::1]:7003: connected for 1h00m",
    ]


def test_report_after_every_connection_closed_counts_them():
    stats = observed(
        Connected(1, "a", "b", at=1.0),
        Received(1, b"q", at=1.5),
        Closed(1, "closed by peer", 1, 0),
        Connected(2, "a", "b", at=2.0),
        Closed(2, "closed by peer", 0, 0),
    )
    assert stats.report(3.0).splitlines()[2] == "no open connection (2 so far)"


def test_report_right_after_the_first_read_does_not_divide_by_zero():
    stats = observed(Received(1, b"x" * 6, at=50.0), Received(1, b"y" * 4, at=50.0))
    line = stats.report(50.0).splitlines()[0]
    assert re.fullmatch(
        r"received 10 bytes in 2 reads; [\d.]+ [KMG]?i?B/s on average, peak 10 B/s", line
    )


def test_the_average_is_never_above_the_peak():
    stats = observed(Received(1, b"x" * 6, at=50.0), Sent(1, b"y" * 6, False, at=50.0))
    for line in stats.report(50.25).splitlines()[:2]:
        average, peak = re.search(r"; (.+) on average, peak (.+)$", line).groups()
        assert as_bytes_per_second(average) <= as_bytes_per_second(peak), line


def test_report_uses_thousands_separators():
    stats = TrafficStats()
    for index in range(1234):
        stats.observe(Received(1, b"x" * 1000, at=1000.0 + index))
    stats.received.frames = 1234
    assert stats.report(2234.0).splitlines()[0] == (
        "received 1,234,000 bytes in 1,234 reads, 1,234 frames; 1000 B/s on average, peak 1000 B/s"
    )


def test_report_of_one_byte_one_read_one_frame_is_singular():
    stats = observed(Received(1, b"x", at=10.0), Sent(1, b"y", False, at=10.0))
    stats.received.frames = stats.sent.frames = 1
    assert stats.report(11.0).splitlines()[:2] == [
        "received 1 byte in 1 read, 1 frame; 1 B/s on average, peak 1 B/s",
        "sent     1 byte in 1 send, 1 frame; 1 B/s on average, peak 1 B/s",
    ]


# ---- formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (0, "0 B/s"),
        (1, "1 B/s"),
        (812.4, "812 B/s"),
        (1023, "1023 B/s"),
        (1024, "1.0 KiB/s"),
        (3.4 * 1024, "3.4 KiB/s"),
        (1000 * 1024, "1000.0 KiB/s"),
        (1024**2, "1.0 MiB/s"),
        (5.5 * 1024**2, "5.5 MiB/s"),
        (1024**3, "1.00 GiB/s"),
        (1.2 * 1024**3, "1.20 GiB/s"),
        (3000 * 1024**3, "3000.00 GiB/s"),
    ],
)
def test_format_rate(rate, text):
    assert format_rate(rate) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (1023.4, "1023 B/s"),
        (1023.6, "1.0 KiB/s"),
        (1024**2 - 1, "1.0 MiB/s"),
        (1024**3 - 1, "1.00 GiB/s"),
    ],
)
def test_format_rate_just_under_a_unit_reads_in_the_next_unit(rate, text):
    assert format_rate(rate) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0s"),
        (0, "0s"),
        (0.99, "0s"),
        (42, "42s"),
        (59.99, "59s"),
        (60, "1m00s"),
        (185, "3m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7265, "2h01m"),
        (2 * 86400 + 60, "48h01m"),
        (90000, "25h00m"),
    ],
)
def test_format_age(seconds, text):
    assert format_age(seconds) == text
