"""UDP bursts: every datagram that reached netrepl's socket is read and logged, whatever the
display is doing; and `--rcvbuf`, the receive buffer that holds a burst meanwhile.

UDP has no flow control: a datagram the kernel cannot queue is dropped, silently. The burst
test makes the kernel's part deterministic: the sender waits until netrepl's socket queue is
empty (read from /proc/net/udp) after each small window, so the kernel never holds more than
a window, while the burst as a whole is far more than any buffer along the way can hold.
"""

from __future__ import annotations

import base64
import re
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netrepl import display as display_module
from netrepl.display import Display
from netrepl.events import Noticed, Received
from netrepl.render import Output, Renderer
from netrepl.transport import Endpoint
from netrepl.transport.udp import DEFAULT_RCVBUF
from netrepl.view import View
from tests.net import transport_helpers
from tests.net.conftest import WAIT, netrepl_env, run_netrepl
from tests.net.transport_helpers import port_of
from tests.transcripts import records

transports = transport_helpers.transports

linux_only = pytest.mark.skipif(
    not Path("/proc/net/udp").exists(), reason="reads the socket queue from /proc/net/udp"
)

DATAGRAMS = 10_000
SIZE = 1000
WINDOW = 16
"""Datagrams sent back to back: ~37 KB of kernel memory, a fifth of Linux's default buffer."""


def burst_datagram(number: int) -> bytes:
    head = b"%06d " % number
    return head + bytes([0x41 + number % 26]) * (SIZE - len(head))


def udp_socket_queue(port: int) -> tuple[int, int] | None:
    """(bytes queued, datagrams dropped) of the IPv4 UDP socket bound to `port`, or None."""
    with open("/proc/net/udp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == port:
                rx_queue = int(fields[4].split(":")[1], 16)
                return rx_queue, int(fields[-1])
    return None


def wait_read_out(port: int, sent: int) -> None:
    """Wait until netrepl's socket has nothing queued: it read every datagram sent so far."""
    deadline = time.monotonic() + WAIT
    while (queue := udp_socket_queue(port)) is not None and queue[0] > 0:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"netrepl stopped reading its socket: {queue[0]:,} bytes still queued"
                f" after {sent:,} datagrams"
            )
        time.sleep(0.0005)  # pacing: the sender waits for the receiver's queue to empty


@pytest.fixture
def stalled_netrepl():
    """stalled_netrepl(*args) -> (process, port): a UDP listener in batch mode whose stdout
    nobody reads until `communicate`; killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], int]:
        process = subprocess.Popen(
            [sys.executable, "-m", "netrepl", "-u", "-l", "127.0.0.1", "0", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=netrepl_env(),
        )
        started.append(process)
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], WAIT)
        line = process.stderr.readline().decode() if ready else ""
        match = re.fullmatch(r"netrepl: listening on 127\.0\.0\.1:(\d+) \(UDP\)\n", line)
        assert match, f"no listening line: {line!r}"
        return process, int(match.group(1))

    yield start
    for process in started:
        process.kill()
        process.communicate()


@linux_only
def test_a_burst_with_the_display_stalled_is_logged_whole(stalled_netrepl, tmp_path):
    """10 MB of datagrams while nothing reads netrepl's stdout: the display is stuck on a
    full pipe from the first 64 KiB, yet the socket is read on, every datagram reaches the
    log, and stdout gets every one in order once it is read. (Before, the I/O thread waited
    for the display once 8 MiB were queued, and the kernel dropped what came next.)"""
    log = tmp_path / "burst.jsonl"
    process, port = stalled_netrepl("--view", "raw", "--log", str(log), "--linger", "0.2")
    datagrams = [burst_datagram(n) for n in range(DATAGRAMS)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.connect(("127.0.0.1", port))
        for first in range(0, DATAGRAMS, WINDOW):
            for data in datagrams[first : first + WINDOW]:
                sender.send(data)
            wait_read_out(port, first + WINDOW)
        queue = udp_socket_queue(port)
        assert queue is not None and queue[1] == 0, "the kernel dropped datagrams"
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert stdout == b"".join(datagrams), "shown whole and in order (batch never skips)"
    logged = [
        base64.b64decode(record["data"])
        for record in records(log)
        if record.get("type") == "received"
    ]
    assert logged == datagrams


# ---- the display's queue: a live datagram is never made to wait ---------------------------------


class GatedSink:
    """A sink whose writes wait until `gate` is set: a terminal or pipe that stopped."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.outputs: list[Output] = []
        self._changed = threading.Condition()

    def write(self, outputs: list[Output]) -> None:
        self.writing.set()
        self.gate.wait(3 * WAIT)  # longer than any wait of the test: the stall outlasts it
        with self._changed:
            self.outputs += outputs
            self._changed.notify_all()

    def wait_for_line(self, channel: str, text: str) -> str:
        with self._changed:
            assert self._changed.wait_for(
                lambda: any(text in line for line in self.lines(channel)), WAIT
            ), f"no {channel} line with {text!r}: {self.outputs!r}"
        return next(line for line in self.lines(channel) if text in line)

    def close(self) -> None:
        pass

    def lines(self, channel: str) -> list[str]:
        return [o.text.plain for o in self.outputs if o.channel == channel and o.text is not None]


def datagram(number: int) -> Received:
    return Received(1, b"%04d" % number + b"." * 996, True, time.time())


def post_from_a_thread(display: Display, events: list[Received]) -> threading.Thread:
    poster = threading.Thread(target=lambda: [display.post(e) for e in events], daemon=True)
    poster.start()
    return poster


def test_datagrams_are_never_held_by_a_stalled_display(monkeypatch):
    """Batch mode: a poster of stream data waits while the display is behind (TCP then slows
    the peer); a poster of datagrams never does (UDP cannot be slowed: the kernel would drop
    them, log and all). Beyond its limit the display skips datagrams, and says so."""
    monkeypatch.setattr(display_module, "QUEUE_LIMIT", 4096)
    monkeypatch.setattr(display_module, "DATAGRAM_QUEUE_LIMIT", 4096, raising=False)
    sink = GatedSink()
    display = Display(Renderer(View()), sink)
    display.start()
    display.post(Noticed("first", "status"))
    assert sink.writing.wait(WAIT)  # the display thread is stuck in its write now

    poster = post_from_a_thread(display, [datagram(n) for n in range(10)])
    poster.join(WAIT)
    assert not poster.is_alive(), "a datagram's poster waited for the display"
    sink.gate.set()
    said = sink.wait_for_line("status", "skipped")
    display.stop()
    assert said.startswith("skipped 6,000 bytes in 6 reads to keep up")
    shown = [line for line in sink.lines("data") if line.endswith(".\n")]
    assert [line[:4] for line in shown] == ["0000", "0001", "0002", "0003"]


def test_a_replay_shows_every_datagram(monkeypatch):
    """`netrepl replay` reads a file: its poster may wait, and nothing is skipped."""
    monkeypatch.setattr(display_module, "QUEUE_LIMIT", 4096)
    monkeypatch.setattr(display_module, "DATAGRAM_QUEUE_LIMIT", 4096, raising=False)
    sink = GatedSink()
    display = Display(Renderer(View()), sink, live=False)
    display.start()
    display.post(Noticed("first", "status"))
    assert sink.writing.wait(WAIT)

    poster = post_from_a_thread(display, [datagram(n) for n in range(10)])
    sink.gate.set()
    poster.join(WAIT)
    display.stop()
    shown = [line for line in sink.lines("data") if line.endswith(".\n")]
    assert [line[:4] for line in shown] == [f"{n:04d}" for n in range(10)]
    assert not [line for line in sink.lines("status") if "skipped" in line]


# ---- --rcvbuf --------------------------------------------------------------------------------


def rmem_max() -> int | None:
    try:
        return int(Path("/proc/sys/net/core/rmem_max").read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.skipif(sys.platform != "linux", reason="Linux reports the buffer doubled")
def test_the_default_receive_buffer_is_4_mib_or_what_the_system_allows(transports):
    listener, _ = transports.open(Endpoint(protocol="udp", host="127.0.0.1", listen=True))
    limit = rmem_max()
    expected = DEFAULT_RCVBUF if limit is None else min(DEFAULT_RCVBUF, limit)
    assert DEFAULT_RCVBUF == 4 * 1024 * 1024
    assert listener.receive_buffer == expected


@pytest.mark.skipif(sys.platform != "linux", reason="Linux reports the buffer doubled")
def test_rcvbuf_is_asked_for_and_a_capped_one_is_said(transports):
    listener, tap = transports.open(
        Endpoint(protocol="udp", host="127.0.0.1", listen=True, rcvbuf=65536)
    )
    assert listener.receive_buffer == 65536
    assert not [e for e in tap.of_type(Noticed) if "--rcvbuf" in e.text]

    huge = 1 << 30
    limit = rmem_max()
    if limit is not None and limit >= huge:
        pytest.skip("this system grants a 1 GiB buffer")
    client, tap = transports.open(
        Endpoint(protocol="udp", host="127.0.0.1", port=port_of(listener.address), rcvbuf=huge)
    )
    assert client.receive_buffer < huge
    [notice] = [e for e in tap.of_type(Noticed) if "--rcvbuf" in e.text]
    assert notice.level == "status"
    assert notice.text.startswith(
        f"--rcvbuf 1,073,741,824: the system allows {client.receive_buffer:,} bytes"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12", "argument --rcvbuf: 12 is out of range (4K to 1G)"),
        ("2G", "argument --rcvbuf: 2G is out of range (4K to 1G)"),
        ("x", "argument --rcvbuf: not a size in bytes: 'x' (say 4194304 or 4M)"),
        ("", "argument --rcvbuf: not a size in bytes: '' (say 4194304 or 4M)"),
        ("-5", "argument --rcvbuf: not a size in bytes: '-5' (say 4194304 or 4M)"),
        ("4.5M", "argument --rcvbuf: not a size in bytes: '4.5M' (say 4194304 or 4M)"),
    ],
)
def test_a_bad_rcvbuf_is_one_line_and_exit_2(value, message):
    result = run_netrepl("-u", "127.0.0.1", "9", f"--rcvbuf={value}")
    assert result.returncode == 2
    assert result.stderr.decode() == f"netrepl: {message} (see netrepl --help)\n"


def test_rcvbuf_is_for_udp():
    result = run_netrepl("127.0.0.1", "9", "--rcvbuf", "4M")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "netrepl: --rcvbuf is for UDP (-u): streams size their buffers themselves"
        " (see netrepl --help)"
    ]


@pytest.mark.parametrize(("value", "size"), [("4096", 4096), ("8k", 8192), ("4M", 4 << 20)])
def test_rcvbuf_sizes(value, size):
    from netrepl.options import parse_options

    assert parse_options(["-u", "127.0.0.1", "9", "--rcvbuf", value]).endpoint.rcvbuf == size
