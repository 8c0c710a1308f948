"""--log, --capture, /log, /capture and /save on real sessions against loopback peers.

A transcript holds every wire event in the order the session posted it, whatever the display
does: while it is paused, and while it is too slow to keep up. The raw capture holds exactly
the received bytes. /save writes what `netrepl replay` shows as the live session showed it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import subprocess
import sys
import threading

import pytest

from netrepl.demo import BINARY_FRAME, BINARY_INTRO, GBK_LINE, GREETING, flood_bytes
from netrepl.display import Display
from netrepl.errors import UsageError
from netrepl.events import Closed, Connected, PauseChanged, Received, Sent
from netrepl.framing import Framing
from netrepl.log import SessionMemory
from netrepl.options import Startup
from netrepl.render import Output, Renderer, clock
from netrepl.session import Session, Settings
from netrepl.transcript import header, parse_line, to_line
from netrepl.transport import Endpoint
from netrepl.view import View
from tests.net.conftest import WAIT, EventTap, Harness, netrepl_env, run_netrepl
from tests.net.test_batch import parse_hexdump
from tests.net.test_session import connect, push
from tests.transcripts import entries, records

DEMO_START = GREETING + GBK_LINE + BINARY_INTRO + BINARY_FRAME + b"\r\n"
"""What the demo peer sends on its own as soon as a client connects."""


def data_of(recs: list[dict], kind: str) -> list[bytes]:
    return [base64.b64decode(r["data"]) for r in recs if r["type"] == kind]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def finish(harness: Harness) -> None:
    """Stop the session and close its files, as the front ends do when they leave."""
    harness.stop()
    harness.session.files.close()


# ---- --log and --capture in batch mode -------------------------------------------------------


def test_log_of_a_2mb_flood_in_hex_view_is_complete_and_in_order(tmp_path):
    size = 2_000_000
    log = tmp_path / "flood.jsonl"
    result = run_netrepl(
        "--demo",
        "--view",
        "hex",
        "--log",
        str(log),
        "-q",
        "--linger",
        "30",
        stdin=f"flood {size}\nclose\n".encode(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-500:]

    recs = records(log)
    assert recs[0]["type"] == "connected" and recs[-1]["type"] == "closed"
    received = b"".join(data_of(recs, "received"))
    # Whatever the demo sent before the flood, then the flood, then its goodbye.
    start = received.index(b"netrepl demo flood")
    assert received[:start] == DEMO_START
    assert sha(received) == sha(received[:start] + flood_bytes(size) + b"bye\r\n")
    assert len(received) == start + size + len(b"bye\r\n")
    assert data_of(recs, "sent") == [b"flood 2000000\n", b"close\n"]
    assert (recs[-1]["received"], recs[-1]["sent"]) == (len(received), 20)

    # In order: no flood byte before the line that asked for it; reads in time order.
    first_sent = next(i for i, r in enumerate(recs) if r["type"] == "sent")
    before = b"".join(data_of(recs[:first_sent], "received"))
    assert len(before) <= start
    times = [r["t"] for r in recs if r["type"] == "received"]
    assert times == sorted(times)
    # The display showed every byte too (batch mode never skips), as hexdump lines.
    assert sha(parse_hexdump(result.stdout.decode("ascii"))) == sha(received)


def test_capture_holds_exactly_the_received_bytes(tmp_path):
    log, capture = tmp_path / "s.jsonl", tmp_path / "s.bin"
    result = run_netrepl(
        "--demo",
        "--log",
        str(log),
        "--capture",
        str(capture),
        "-q",
        "--linger",
        "30",
        stdin=b"binary\nhello\nclose\n",
    )
    assert result.returncode == 0, result.stderr
    assert capture.read_bytes() == DEMO_START + BINARY_FRAME + b"hello\n" + b"bye\r\n"
    assert capture.read_bytes() == b"".join(data_of(records(log), "received"))


def read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n") and len(line) < 1000:  # each recv times out (WAIT)
        data = sock.recv(100)
        assert data, f"closed after {line!r}"
        line += data
    return line


def test_capture_holds_every_client_of_a_listener_and_nothing_sent(make_session, tmp_path):
    capture = tmp_path / "all.bin"
    harness = make_session()
    harness.session.begin(Startup(capture=str(capture)))
    harness.session.open(Endpoint(host="127.0.0.1", port=0, listen=True))
    stderr = harness.output.wait_stderr(" (TCP)\n")
    port = int(re.search(r"listening on 127\.0\.0\.1:(\d+) \(TCP\)", stderr)[1])

    received = b""
    for index, data in enumerate([b"first client\n", b"\x00\xffsecond\n"]):
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(data)
            received += data
            harness.tap.wait_received(len(received))
            harness.session.submit(f"reply {index}")
            assert read_line(sock) == f"reply {index}\n".encode()
        harness.tap.wait_until(
            lambda n=index + 1: sum(isinstance(e, Closed) for e in harness.tap.events) == n,
            f"client {index + 1} leaving",
        )
    harness.session.submit("/capture off")
    harness.output.wait_stderr(f"stopped capturing to {capture}")
    harness.stop()
    assert capture.read_bytes() == received


# ---- /log and /log off -----------------------------------------------------------------------


def test_log_on_and_off_covers_exactly_the_events_in_between(make_session, make_peer, tmp_path):
    path = tmp_path / "middle.jsonl"
    peer = make_peer()
    harness = make_session()
    client = connect(harness, peer)
    push(harness, client, b"before\n")

    harness.session.submit(f"/log {path}")
    first = len(harness.tap.snapshot())
    push(harness, client, b"during\xe4\n")
    harness.session.submit("typed")
    harness.session.submit("/x 01 02")
    client.wait_for(b"typed\n\x01\x02")
    harness.session.submit("/log")
    harness.session.submit("/log off")
    last = len(harness.tap.snapshot())
    push(harness, client, b"after\n")
    harness.session.submit("not logged")
    client.wait_for(b"not logged\n")
    harness.stop()

    conn = harness.conn
    wire = [e for e in harness.tap.snapshot()[first:last] if isinstance(e, Received | Sent)]
    expected = [
        {"t": e.at, "type": "received" if isinstance(e, Received) else "sent"}
        | {"conn": conn, "data": base64.b64encode(e.data).decode()}
        | ({"hex": True} if isinstance(e, Sent) and e.as_hex else {})
        for e in wire
    ]
    # First who is connected (the log began mid-connection), then exactly what happened.
    (connected,) = harness.tap.of_type(Connected)
    opened = {"t": connected.at, "type": "connected", "conn": conn, "peer": connected.peer}
    opened |= {"local": connected.local, "protocol": "tcp", "accepted": False}
    assert records(path) == [opened, *expected]
    assert b"".join(data_of(expected, "received")) == b"during\xe4\n"
    assert data_of(expected, "sent") == [b"typed\n", b"\x01\x02"]
    stderr = harness.output.stderr_text().splitlines()
    started = f"logging to {path}, its bytes to {path}.data"
    assert stderr[1:4] == [started, started, f"stopped logging to {path}"]


def test_a_new_log_closes_the_old_one_complete(make_session, make_peer, tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    peer = make_peer()
    harness = make_session()
    client = connect(harness, peer)
    harness.session.submit(f"/log {one}")
    push(harness, client, b"one\n")
    harness.session.submit(f"/log {two}")
    push(harness, client, b"two\n")
    finish(harness)
    assert data_of(records(one), "received") == [b"one\n"]
    recs = records(two)
    assert data_of(recs, "received") == [b"two\n"]
    assert recs[-1]["type"] == "closed", "the log stays open until the session closes it"


def test_log_off_when_not_logging_says_so(make_session):
    harness = make_session()
    harness.session.submit("/log off")
    harness.session.submit("/log")
    harness.session.submit("/capture")
    harness.output.wait_stderr("not capturing")
    assert harness.output.stderr_text().splitlines() == [
        "was not logging",
        "not logging",
        "not capturing",
    ]


# ---- /save and replay ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("view", "replay_args"),
    [
        (View("hex"), ["--view", "hex"]),
        (View("text", framing=Framing("line")), ["--frame", "line"]),
        (View("hex", framing=Framing("len", length=5)), ["--view", "hex", "--frame", "len 5"]),
        (
            View("text", "gbk", framing=Framing("delim", delimiter=b"\r\n")),
            ["--view", "gbk", "--frame", "delim 0d 0a"],
        ),
    ],
)
def test_save_writes_what_replay_shows_as_the_live_session_did(
    make_session, make_peer, tmp_path, view, replay_args
):
    text = "你好，设备\r\n第二行\r\nno end".encode("gbk")
    peer = make_peer()
    harness = make_session(view=view, batch=True)
    client = connect(harness, peer)
    for piece in (text[:3], text[3:11], text[11:]):
        push(harness, client, piece)
    harness.session.submit("hello device")
    harness.session.submit("/x 01 02 ff")
    client.wait_for(b"hello device\n\x01\x02\xff")
    push(harness, client, bytes(range(20)))
    harness.stop()
    live = harness.output.stdout_text()
    assert live, "the live session showed something"

    path = tmp_path / "saved.jsonl"
    harness.session.submit(f"/save {path}")  # after the close: the transcript ends with it
    recs = records(path)
    assert (recs[0]["type"], recs[-1]["type"]) == ("connected", "closed")

    replayed = run_netrepl("replay", str(path), *replay_args)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.decode("utf-8") == live
    assert replayed.stderr.decode("utf-8") == harness.output.stderr_text()


def test_save_says_how_many_events_and_what_memory_dropped(make_session, make_peer, tmp_path):
    peer = make_peer()
    harness = make_session()
    harness.session.memory = SessionMemory(limit=10)
    client = connect(harness, peer)
    for piece in (b"0123456", b"789", b"ab"):
        push(harness, client, piece)
    path = tmp_path / "s.jsonl"
    harness.session.submit(f"/save {path}")
    # The first read no longer fits in 10 bytes: dropped whole, the Connected before it too.
    harness.output.wait_stderr(
        f"saved 2 events to {path} (the oldest 7 bytes were no longer in memory)\n"
    )
    assert data_of(records(path), "received") == [b"789", b"ab"]


def test_a_replayed_clock_matches_the_live_one():
    at = 1_700_000_000.2499996
    replayed = parse_line(to_line(Received(1, b"x", at=at), at))
    assert replayed is not None
    assert clock(replayed.event.at) == clock(at)


# ---- unwritable paths ------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--log", "--capture"])
def test_an_unwritable_path_on_the_command_line_is_one_line_and_exit_2(make_peer, tmp_path, option):
    peer = make_peer(greeting=b"hello\n")
    path = tmp_path / "no" / "such" / "dir" / "file"
    result = run_netrepl(*peer.args, option, str(path), stdin=b"line\n")
    assert result.returncode == 2
    assert result.stderr.decode() == f"netrepl: cannot write {path}: No such file or directory\n"
    assert result.stdout == b""
    assert peer.clients == [], "nothing is opened when a file cannot be"


def test_a_directory_as_the_capture_is_one_line_and_exit_2(make_peer, tmp_path):
    peer = make_peer()
    log = tmp_path / "ok.jsonl"
    result = run_netrepl(*peer.args, "--log", str(log), "--capture", str(tmp_path), stdin=b"")
    assert result.returncode == 2
    assert result.stderr.decode() == f"netrepl: cannot write {tmp_path}: Is a directory\n"


@pytest.mark.parametrize("command", ["/log", "/capture", "/save"])
def test_an_unwritable_path_in_a_batch_script_stops_it_with_exit_2(make_peer, tmp_path, command):
    peer = make_peer()
    path = tmp_path / "missing" / "f"
    result = run_netrepl(*peer.args, "-q", stdin=f"{command} {path}\nsent?\n".encode())
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"netrepl: stdin line 1: cannot write {path}: No such file or directory\n"
    )
    client = peer.wait_for_client()
    assert client.wait_closed() == b"", "the line after the error was not sent"


@pytest.mark.parametrize("command", ["/log", "/capture", "/save"])
def test_an_unwritable_path_in_a_session_is_an_error_and_keeps_the_current_log(
    make_session, make_peer, tmp_path, command
):
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "missing" / "f"
    peer = make_peer()
    harness = make_session()
    client = connect(harness, peer)
    harness.session.submit(f"/log {good}")
    with pytest.raises(UsageError) as caught:
        harness.session.submit(f"{command} {bad}")
    assert str(caught.value) == f"cannot write {bad}: No such file or directory"
    push(harness, client, b"still logged\n")
    finish(harness)
    assert data_of(records(good), "received") == [b"still logged\n"]
    assert not bad.parent.exists()


# ---- the log while the display is paused or slow ---------------------------------------------


def test_log_keeps_every_byte_while_paused(make_session, make_peer, tmp_path):
    path = tmp_path / "paused.jsonl"
    peer = make_peer()
    harness = make_session()
    harness.session.begin(Startup(log=str(path)))
    client = connect(harness, peer)
    push(harness, client, b"shown before\n")

    harness.session.submit("/pause")
    hidden = [b"hidden one\n", b"\x1b[2J hidden two", b" and three\n"]
    for piece in hidden:
        push(harness, client, piece)
    harness.session.submit("/resume")
    push(harness, client, b"shown after\n")
    finish(harness)

    events = harness.tap.snapshot()
    paused = next(i for i, e in enumerate(events) if isinstance(e, PauseChanged) and e.paused)
    resumed = next(i for i, e in enumerate(events) if isinstance(e, PauseChanged) and not e.paused)
    reads = sum(isinstance(e, Received) for e in events[paused:resumed])
    size = len(b"".join(hidden))
    summary = (
        f"not shown meanwhile: {size} bytes received in {reads} read{'s' * (reads != 1)},"
        f" 0 bytes sent (all of it is in {path})\n"
    )
    assert summary in harness.output.stderr_text()
    assert harness.output.stdout_text() == "shown before\nshown after\n"
    assert b"".join(data_of(records(path), "received")) == (
        b"shown before\n" + b"".join(hidden) + b"shown after\n"
    )


class BlockedSink:
    """A sink whose first write waits until released: a terminal that stopped reading."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.writes = 0

    def write(self, outputs: list[Output]) -> None:
        self.writes += 1
        self.entered.set()
        if not self.release.wait(WAIT * 3):
            raise AssertionError("the sink was never released")

    def close(self) -> None:
        pass


def test_a_display_that_does_not_keep_up_never_costs_the_log_a_byte(demo_peer, tmp_path):
    size = 2_000_000
    log, capture = tmp_path / "slow.jsonl", tmp_path / "slow.bin"
    sink = BlockedSink()
    display = Display(Renderer(View("hex")), sink)
    tap = EventTap(display.post)
    session = Session(Settings(view=View("hex"), batch=True), tap)
    display.start()
    try:
        session.begin(Startup(log=str(log), capture=str(capture)))
        session.connect(demo_peer.host, demo_peer.port)
        assert sink.entered.wait(WAIT), "the display never tried to write"
        session.submit(f"flood {size}")
        tap.wait_received(len(DEMO_START) + size, timeout=30)
        # All of it logged while the display is still stuck in its first write.
        assert sink.writes == 1 and not sink.release.is_set()
        session.files.close()
    finally:
        sink.release.set()
        session.close()
        display.stop()
    expected = DEMO_START + flood_bytes(size)
    assert sha(capture.read_bytes()) == sha(expected)
    recs = records(log)
    assert sha(b"".join(data_of(recs, "received"))) == sha(expected)
    assert data_of(recs, "sent") == [f"flood {size}\n".encode()]
    assert recs[0]["type"] == "connected"


def test_memory_keeps_every_event_for_save_while_the_display_is_stuck(demo_peer, tmp_path):
    sink = BlockedSink()
    display = Display(Renderer(View()), sink)
    session = Session(Settings(view=View()), tap := EventTap(display.post))
    display.start()
    path = tmp_path / "saved.jsonl"
    try:
        session.connect(demo_peer.host, demo_peer.port)
        session.submit("binary")
        tap.wait_received(len(DEMO_START + BINARY_FRAME))
        session.submit(f"/save {path}")
    finally:
        sink.release.set()
        session.close()
        display.stop()
    recs = records(path)
    assert recs[0]["type"] == "connected"
    assert b"".join(data_of(recs, "received")) == DEMO_START + BINARY_FRAME


# ---- the two files of a log: records, and the bytes beside them ---------------------------


def demo_log(tmp_path, size: int = 300_000):
    """A batch session against the demo peer logged to `tmp_path/s.jsonl`: (the log, its
    netrepl run). The demo sends its greeting, a flood of `size`, and bye."""
    log = tmp_path / "s.jsonl"
    result = run_netrepl(
        "--demo", "--log", str(log), "-q", stdin=f"flood {size}\nclose\n".encode(), timeout=60
    )
    assert result.returncode == 0, result.stderr[-500:]
    return log, result


def test_a_log_keeps_its_bytes_raw_in_a_data_file_beside_it_and_replays_as_the_old_layout(
    tmp_path,
):
    log, _ = demo_log(tmp_path)
    data_file = tmp_path / "s.jsonl.data"
    first = json.loads(log.read_text(encoding="utf-8").splitlines()[0])
    assert (first["version"], first["data_file"]) == (2, "s.jsonl.data")
    recs = records(log)  # checks that the records cover the data file, in order
    received, sent = b"".join(data_of(recs, "received")), b"".join(data_of(recs, "sent"))
    assert flood_bytes(300_000) in received and sent == b"flood 300000\nclose\n"
    assert data_file.stat().st_size == len(received) + len(sent)
    assert log.stat().st_size < 10_000, "no data in the records"

    # The same session in the old one-file layout (base64 in each line), as netrepl wrote it
    # before: replay and export read both alike.
    old = tmp_path / "old.jsonl"
    lines = [header(1.0)] + [to_line(entry.event, entry.at) for entry in entries(log)]
    old.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert all("data" in json.loads(line) for line in lines if '"type": "received"' in line)
    for args in (["replay", "--view", "hex"], ["export", "--pcap", "-"]):
        new_run, old_run = (
            run_netrepl(*args[:1], str(log), *args[1:]),
            run_netrepl(*args[:1], str(old), *args[1:]),
        )
        assert new_run.returncode == old_run.returncode == 0, new_run.stderr
        assert new_run.stdout == old_run.stdout and len(new_run.stdout) > len(received)
        assert new_run.stderr == old_run.stderr.replace(b"old.jsonl", b"s.jsonl")


@pytest.mark.parametrize("command", ["export", "replay"])
def test_a_log_without_its_data_file_is_one_line_and_exit_1(tmp_path, command):
    log, _ = demo_log(tmp_path, 1000)
    (tmp_path / "s.jsonl.data").unlink()
    extra = ["--pcap", str(tmp_path / "out.pcap")] if command == "export" else []
    result = run_netrepl(command, str(log), *extra)
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"netrepl: cannot read {log}.data, the data file of {log}: no such file or directory\n"
    )
    assert result.stdout == b""
    assert not (tmp_path / "out.pcap").exists()


def test_a_data_file_cut_short_is_one_line_naming_the_record(tmp_path):
    log, _ = demo_log(tmp_path, 1000)
    data_file = tmp_path / "s.jsonl.data"
    data_file.write_bytes(data_file.read_bytes()[:-1])
    result = run_netrepl("export", str(log), "--pcap", str(tmp_path / "out.pcap"))
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert re.fullmatch(
        rf"netrepl: {re.escape(str(log))}: line \d+: bad 'received' record "
        r"\(the data file ends at byte [\d,]+, before its bytes\)",
        line,
    ), line


def test_a_data_file_that_cannot_be_created_is_one_line_and_exit_2(make_peer, tmp_path):
    peer = make_peer(greeting=b"hello\n")
    log = tmp_path / "s.jsonl"
    (tmp_path / "s.jsonl.data").mkdir()
    result = run_netrepl(*peer.args, "--log", str(log), stdin=b"line\n")
    assert result.returncode == 2
    assert result.stderr.decode() == f"netrepl: cannot write {log}.data: Is a directory\n"
    assert peer.clients == [], "nothing is opened when a file cannot be"


FULL_DATA_FILE = """
import json, resource, signal, sys
from netrepl.events import Received
from netrepl.log import SessionFiles

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (2_500_000, resource.RLIM_INFINITY))
reports = []
files = SessionFiles(reports.append)
files.start_log(sys.argv[1])
for number in range(60):
    files.write(Received(1, bytes([number]) * 100_000), float(number))
files.close()
print(json.dumps(reports))
"""


def test_a_data_file_that_fills_up_stops_the_log_once_with_no_record_past_its_bytes(tmp_path):
    # A file size limit stands in for a full disk: the data file reaches it, the log does not.
    log = tmp_path / "s.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DATA_FILE, str(log)],
        capture_output=True,
        timeout=60,
        env=netrepl_env(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == [f"the log {log} stopped: File too large"]
    data = (tmp_path / "s.jsonl.data").read_bytes()
    lines = log.read_text(encoding="utf-8").splitlines()
    recs = [json.loads(line) for line in lines[1:]]
    assert 0 < len(recs) < 25, "written until the limit, then stopped"
    for number, record in enumerate(recs):
        assert (record["data_offset"], record["data_length"]) == (number * 100_000, 100_000)
        start = record["data_offset"]
        assert data[start : start + 100_000] == bytes([number]) * 100_000


def test_logs_appended_into_one_file_each_read_their_own_data_file(tmp_path):
    first, _ = demo_log(tmp_path, 1000)
    first = first.rename(tmp_path / "a.jsonl")
    (tmp_path / "s.jsonl.data").rename(tmp_path / "a.jsonl.data")
    lines = first.read_text(encoding="utf-8").splitlines()
    first.write_text(
        "\n".join([lines[0].replace("s.jsonl.data", "a.jsonl.data"), *lines[1:]]) + "\n",
        encoding="utf-8",
    )
    second, _ = demo_log(tmp_path, 2000)
    both = tmp_path / "both.jsonl"
    both.write_bytes(first.read_bytes() + second.read_bytes())
    replays = [run_netrepl("replay", "--view", "hex", str(log)) for log in (first, second, both)]
    assert [replay.returncode for replay in replays] == [0, 0, 0], replays[2].stderr
    assert replays[2].stdout == replays[0].stdout + replays[1].stdout
