"""/time, /pause and /resume, /stats and /frame in the real REPL, in a pty, typed as a person
types. Waits are on the emulated screen with a timeout; the raw pty bytes prove what never
reached the terminal while paused."""

from __future__ import annotations

import re
import time

from tests.e2e.test_interactive import enter, ready, rows, start, toolbar
from tests.peers import Peer

CLOCK = r"(\d\d):(\d\d):(\d\d)\.\d{3}"


def seconds_of_day(match: re.Match[str]) -> int:
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def test_time_on_puts_a_clock_header_above_sent_and_echoed_data(spawn, make_peer):
    peer: Peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/time on")
    terminal.expect_screen(rows("> /time on", ">"))

    enter(terminal, "hello")
    assert client.wait_for(b"hello\n") == b"hello\n"
    sent = rf"── {CLOCK} → 6 bytes"
    terminal.expect_screen(rf"(?m)^> hello\n{sent}\nhello\n>$")
    ready(terminal)
    client.send(b"hello\n")

    received = rf"── {CLOCK} ← 6 bytes"
    terminal.expect_screen(rf"(?m)^{sent}\nhello\n{received}\nhello\n>$")
    header = re.search(rf"(?m)^{received}$", terminal.screen_text())
    assert header is not None
    # The clock is the local time of arrival: now, give or take a test's duration.
    now = time.localtime()
    drift = abs(seconds_of_day(header) - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec))
    assert min(drift, 86400 - drift) <= 60, header.group()


def test_paused_data_is_counted_never_shown_and_summed_up_on_resume(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/pause")
    terminal.expect_screen(
        rows("> /pause", "paused: received data is counted, not shown (/resume)", ">")
    )

    secret = b"SECRET-PAYLOAD 1234\n"
    client.send(secret)
    # Received and counted (the toolbar's rx), though not shown.
    terminal.expect_screen(toolbar(peer) + rf".*│  rx {len(secret)} B  tx 0 B$")

    enter(terminal, "/resume")
    terminal.expect_screen(
        rf"(?m)^resumed after \d+\.\d s; not shown meanwhile: {len(secret)} bytes received"
        r" in \d+ reads?, 0 bytes sent$"
    )
    ready(terminal)
    client.send(b"visible again\n")
    terminal.expect_screen(rows("visible again", ">"))
    assert b"SECRET" not in terminal.raw
    assert "SECRET" not in terminal.plain


def test_stats_show_received_and_sent_lines(spawn, make_peer):
    greeting = b"hello from the peer\n"
    peer = make_peer(greeting=greeting)
    terminal, client = start(spawn, peer)
    terminal.expect_screen(rows("hello from the peer"))
    enter(terminal, "ping")
    assert client.wait_for(b"ping\n") == b"ping\n"
    terminal.expect_screen(rows("> ping", ">"))

    enter(terminal, "/stats")
    terminal.expect_screen(
        rf"(?m)^received {len(greeting)} bytes in \d+ reads?, \d+ frames?;"
        r" [\d.]+ [KMG]?i?B/s on average, peak [\d.]+ [KMG]?i?B/s\n"
        r"sent     5 bytes in 1 sends?, 1 frames?;"
        r" [\d.]+ [KMG]?i?B/s on average, peak 5 B/s\n"
        rf"#1 {re.escape(peer.host)}:{peer.port}: connected for \d+s$"
    )


def test_frame_line_cuts_one_read_into_a_block_per_line(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/frame line")
    enter(terminal, "/frame")
    terminal.expect_screen(rows("> /frame line", "> /frame", "frame line", ">"))
    ready(terminal)

    client.send(b"a\nb\n")
    terminal.expect_screen(rows("── ← 2 bytes", "a", "── ← 2 bytes", "b", ">"))


def test_frame_line_holds_an_unfinished_line_until_the_stream_ends(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/frame line")
    terminal.expect_screen(rows("> /frame line", ">"))
    ready(terminal)

    client.send(b"a\nb")
    terminal.expect_screen(rows("── ← 2 bytes", "a", ">"))
    client.close()
    terminal.expect_screen(
        rows(
            "── ← 2 bytes",
            "a",
            "── ← 1 byte",
            "b",
            "connection closed by peer (3 bytes received, 0 sent)",
        )
    )
    assert terminal.screen_text().count("── ←") == 2
