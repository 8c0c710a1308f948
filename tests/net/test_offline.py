"""`netrepl export` and `netrepl replay` as subprocesses, on transcripts of real sessions.

A transcript is written from the events of a live in-process session against a loopback peer
(or by `--log` once netrepl has it); replaying it must show exactly what the session showed,
and exporting it must give a pcap whose segments reassemble to the bytes on the wire.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from netrepl.events import Closed, Connected, Event, Received, Sent
from netrepl.options import build_parser
from netrepl.transcript import header, to_line
from netrepl.view import View, apply_encoding, apply_view_name
from tests.core.test_pcap import check_conversation, read_pcap
from tests.net.conftest import Harness, hexdump_line, netrepl_env, run_netrepl
from tests.net.test_batch import parse_hexdump

GBK_TEXT = "你好，世界！设备说中文\r\n第二行\n"


def write_transcript(path, timed_events: list[tuple[float, Event]]) -> None:
    lines = [header(timed_events[0][0] if timed_events else 0.0)]
    lines += [line for at, event in timed_events if (line := to_line(event, at)) is not None]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def transcript_of(harness: Harness, path) -> list[Event]:
    """What a log of the harness's session would hold: every event the transcript keeps, with
    the time it carries (or a later one)."""
    events = harness.tap.snapshot()
    timed, clock = [], 1_000.0
    for event in events:
        clock = max(clock + 0.001, getattr(event, "at", 0.0))
        timed.append((clock, event))
    write_transcript(path, timed)
    return events


def live_session(make_session, make_peer, view: View) -> tuple[Harness, bytes, bytes]:
    """A batch session that receives GBK split mid-character, sends text and hex, and closes.
    Returns the harness (finished) and the bytes received and sent."""
    chunks = [GBK_TEXT.encode("gbk")[:5], GBK_TEXT.encode("gbk")[5:], bytes(range(40))]
    peer = make_peer()
    harness = make_session(view=view, batch=True)
    harness.session.connect(peer.host, peer.port)
    client = peer.wait_for_client()
    received = b""
    for chunk in chunks:
        client.send(chunk)
        received += chunk
        harness.tap.wait_received(len(received), harness.conn)
    harness.session.submit("hello device")
    harness.session.submit("/x 01 02 ff")
    client.wait_for(b"hello device\n\x01\x02\xff")
    harness.stop()
    return harness, received, b"hello device\n\x01\x02\xff"


# ---- replay ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "view_args",
    [("--view", "gbk"), ("--view", "hex"), ("--encoding", "gbk"), (), ("--view", "auto")],
)
def test_replay_shows_what_the_live_session_showed(make_session, make_peer, tmp_path, view_args):
    view = View()
    if view_args:
        name, value = view_args
        view = apply_view_name(view, value) if name == "--view" else apply_encoding(view, value)
    harness, _, _ = live_session(make_session, make_peer, view)
    path = tmp_path / "session.jsonl"
    transcript_of(harness, path)

    result = run_netrepl("replay", str(path), *view_args)

    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("utf-8") == harness.output.stdout_text()
    assert result.stderr.decode("utf-8") == harness.output.stderr_text()
    if view_args in (("--view", "gbk"), ("--encoding", "gbk")):
        assert result.stdout.decode().startswith("你好，世界！设备说中文\n第二行\n")


def test_replay_in_hex_view_prints_hexdump_lines_with_stream_offsets(tmp_path):
    path = tmp_path / "t.jsonl"
    first, second = b"0123456789abcdefXYZ", b"\x00\x01\x02 tail"
    write_transcript(
        path,
        [
            (1.0, Connected(1, "127.0.0.1:502", "127.0.0.1:40000")),
            (1.1, Received(1, first)),
            (1.2, Sent(1, b"ignored on stdout", False)),
            (1.3, Received(1, second)),
            (1.4, Closed(1, "connection closed by peer", 27, 17)),
        ],
    )
    result = run_netrepl("replay", str(path), "--view", "hex")
    assert result.returncode == 0, result.stderr
    # Each record is its own block, but offsets run over the whole stream.
    assert result.stdout.decode() == (
        hexdump_line(0, first[:16]) + hexdump_line(16, first[16:]) + hexdump_line(19, second)
    )
    assert result.stderr.decode().splitlines() == [
        "netrepl: connected to 127.0.0.1:502 from 127.0.0.1:40000",
        "netrepl: connection closed by peer (27 bytes received, 17 sent)",
    ]


def test_replay_quiet_and_raw(tmp_path):
    path = tmp_path / "t.jsonl"
    data = bytes(range(256)) + b"\x1b[2J"
    write_transcript(
        path,
        [(1.0, Connected(1, "unix:/tmp/s", "", "unix")), (1.1, Received(1, data))],
    )
    result = run_netrepl("replay", str(path), "--view", "raw", "-q")
    assert (result.returncode, result.stdout, result.stderr) == (0, data, b"")


def test_replay_of_udp_datagrams_and_stdin(tmp_path):
    path = tmp_path / "t.jsonl"
    write_transcript(
        path,
        [
            (1.0, Connected(4, "127.0.0.1:5353", "127.0.0.1:5000", "udp", accepted=True)),
            (1.1, Received(4, b"ping", datagram=True)),
        ],
    )
    result = run_netrepl("replay", "-", stdin=path.read_bytes())
    assert result.returncode == 0, result.stderr
    label, body = result.stdout.decode().split("\n", 1)
    assert "#4 127.0.0.1:5353" in label and "4 bytes" in label, "each datagram has a label"
    assert body == "ping\n"


def test_replay_speed_zero_ignores_an_hour_of_silence(tmp_path):
    path = tmp_path / "t.jsonl"
    timed = [(0.0, Connected(1, "127.0.0.1:1", "127.0.0.1:2"))]
    timed += [(3600.0 * n, Received(1, f"line {n}\n".encode())) for n in range(1, 6)]
    write_transcript(path, timed)
    started = time.monotonic()
    result = run_netrepl("replay", str(path), timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "".join(f"line {n}\n" for n in range(1, 6))
    assert time.monotonic() - started < 10


def test_replay_speed_keeps_the_pace_and_caps_each_pause(tmp_path):
    path = tmp_path / "t.jsonl"
    write_transcript(
        path,
        [
            (100.0, Connected(1, "127.0.0.1:1", "127.0.0.1:2")),
            (102.0, Received(1, b"two seconds later\n")),  # 0.2 s at --speed 10
            (36_102.0, Received(1, b"ten hours later\n")),  # 3,600 s at --speed 10: capped at 5
        ],
    )
    started = time.monotonic()
    result = run_netrepl("replay", str(path), "--speed", "10", timeout=20)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"two seconds later\nten hours later\n"
    assert 5.2 <= elapsed < 15, elapsed


# ---- export ----------------------------------------------------------------------------------


def test_export_of_a_live_session_reassembles_to_the_bytes_on_the_wire(
    make_session, make_peer, tmp_path
):
    harness, received, sent = live_session(make_session, make_peer, View())
    path, out = tmp_path / "session.jsonl", tmp_path / "session.pcap"
    events = transcript_of(harness, path)

    result = run_netrepl("export", str(path), "--pcap", str(out))

    assert result.returncode == 0, result.stderr
    packets = read_pcap(out.read_bytes())
    connected = next(e for e in events if isinstance(e, Connected))
    host, port = connected.local.rsplit(":", 1)
    streams = check_conversation(packets, (host, int(port)))
    assert streams == {"c2s": sent, "s2c": received}
    data_packets = sum(1 for e in events if isinstance(e, (Received, Sent)))
    # Handshake, one segment per record, and a four-way close at most.
    assert 3 + data_packets + 2 <= len(packets) <= 3 + data_packets + 3
    assert result.stderr.decode() == f"wrote {len(packets)} packets of 1 connection to {out}\n"
    assert result.stdout == b""


def test_export_to_stdout_from_stdin(tmp_path):
    path = tmp_path / "t.jsonl"
    write_transcript(
        path,
        [
            (1.0, Connected(1, "[::1]:7", "[::1]:40000", "udp")),
            (1.5, Sent(1, b"echo me", False)),
            (1.6, Received(1, b"echo me", datagram=True)),
        ],
    )
    result = run_netrepl("export", "-", "--pcap", "-", stdin=path.read_bytes())
    assert result.returncode == 0, result.stderr
    packets = read_pcap(result.stdout)
    assert [(p.version, p.protocol, p.payload) for p in packets] == [(6, 17, b"echo me")] * 2
    assert packets[0].at == 1.5
    assert result.stderr == b"wrote 2 packets of 1 connection to standard output\n"


def test_export_notes_a_datagram_cut_to_fit(tmp_path):
    path, out = tmp_path / "t.jsonl", tmp_path / "t.pcap"
    write_transcript(
        path,
        [
            (1.0, Connected(1, "device:7", "", "udp")),
            (1.1, Received(1, b"x" * 65_600, datagram=True)),
        ],
    )
    result = run_netrepl("export", str(path), "--pcap", str(out))
    assert result.returncode == 0
    lines = result.stderr.decode().splitlines()
    assert lines[0] == f"wrote 1 packet of 1 connection to {out}"
    # "device" is a name, not an address: that is said too.
    assert lines[1].startswith("netrepl: note: 1 connection had an end that is not an IP")
    assert lines[2].startswith("netrepl: note: 1 datagram cut to fit one packet")
    assert [len(p.payload) for p in read_pcap(out.read_bytes())] == [65_507]


# ---- errors and help -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["export", "replay"])
def test_bad_line_is_exit_2_with_its_number(tmp_path, command):
    path, out = tmp_path / "t.jsonl", tmp_path / "t.pcap"
    write_transcript(path, [(1.0, Received(1, b"shown first\n"))])
    with path.open("a", encoding="utf-8") as file:
        file.write('{"t": 2, "type": "received", "conn": 1, "data": "not base64!"}\n')
    extra = ["--pcap", str(out)] if command == "export" else []
    result = run_netrepl(command, str(path), *extra)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert lines[-1].startswith(f"netrepl: {path}: line 3: bad 'received' record")
    if command == "export":
        assert len(lines) == 1
        assert not out.exists(), "a bad transcript leaves no half-written capture"
    else:
        assert result.stdout == b"shown first\n", "what came before the bad line is shown"


@pytest.mark.parametrize("command", ["export", "replay"])
def test_not_json_and_not_utf8(tmp_path, command):
    path = tmp_path / "t.jsonl"
    extra = ["--pcap", str(tmp_path / "out.pcap")] if command == "export" else []
    path.write_bytes(header(1.0).encode() + b"\n\nhello\n")
    result = run_netrepl(command, str(path), *extra)
    assert result.returncode == 2
    assert result.stderr.decode().startswith(f"netrepl: {path}: line 3: not a transcript record")
    path.write_bytes(b'{"t": 1, "type": "x", "s": "\xff"}\n')
    result = run_netrepl(command, "-", *extra, stdin=path.read_bytes())
    assert result.returncode == 2
    assert result.stderr == b"netrepl: stdin: line 1: not UTF-8 text\n"


@pytest.mark.parametrize("command", ["export", "replay"])
def test_missing_file_is_one_line(tmp_path, command):
    missing = tmp_path / "nope.jsonl"
    extra = ["--pcap", str(tmp_path / "out.pcap")] if command == "export" else []
    result = run_netrepl(command, str(missing), *extra)
    assert result.returncode == 1
    assert result.stderr == f"netrepl: cannot read {missing}: no such file or directory\n".encode()
    assert result.stdout == b""


def test_unwritable_output_is_an_io_error(tmp_path):
    path = tmp_path / "t.jsonl"
    write_transcript(path, [(1.0, Received(1, b"x"))])
    target = tmp_path / "no" / "such" / "dir.pcap"
    result = run_netrepl("export", str(path), "--pcap", str(target))
    assert result.returncode == 1
    assert result.stderr == f"netrepl: cannot write {target}: no such file or directory\n".encode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "t.jsonl"], "the following arguments are required: --pcap"),
        (["export"], "the following arguments are required: FILE, --pcap"),
        (["replay", "t.jsonl", "--speed", "-1"], "the speed must be zero or more"),
        (["replay", "t.jsonl", "--speed", "fast"], "not a number: 'fast'"),
        (["replay", "t.jsonl", "--view", "ebcdic"], "invalid choice: 'ebcdic'"),
        (["replay", "t.jsonl", "--encoding", "klingon"], "klingon"),
        (["replay", "t.jsonl", "--view", "utf8", "--encoding", "gbk"], "conflicts"),
    ],
)
def test_usage_errors_are_exit_2(args, message):
    result = run_netrepl(*args)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netrepl: ") and message in lines[0], lines
    assert lines[0].endswith(f"(see netrepl {args[0]} --help)")


@pytest.mark.parametrize(
    ("command", "expected"),
    [("export", ["--pcap OUT", "10.0.0.1"]), ("replay", ["--speed X", "5 s", "--view"])],
)
def test_help(command, expected):
    result = run_netrepl(command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.decode().split())
    assert text.startswith(f"usage: netrepl {command} ")
    for word in expected:
        assert word in text


def test_offline_commands_do_not_import_prompt_toolkit(tmp_path):
    path = tmp_path / "t.jsonl"
    write_transcript(path, [(1.0, Received(1, b"x\n"))])
    code = (
        "import sys; from netrepl.cli import main; "
        f"assert main(['replay', {str(path)!r}]) == 0; "
        f"assert main(['export', {str(path)!r}, '--pcap', {str(tmp_path / 'o')!r}]) == 0; "
        "assert 'prompt_toolkit' not in sys.modules, 'prompt_toolkit imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=netrepl_env(), timeout=30
    )
    assert result.returncode == 0, result.stderr


# ---- with --log, once netrepl has it ---------------------------------------------------------


@pytest.mark.skipif("--log" not in build_parser().format_help(), reason="--log not implemented yet")
@pytest.mark.parametrize("view", ["hex", "gbk"])
def test_replay_of_a_logged_batch_session_equals_its_live_output(make_peer, tmp_path, view):
    peer = make_peer(
        greeting=[GBK_TEXT.encode("gbk")[:7], GBK_TEXT.encode("gbk")[7:] + bytes(range(20))],
        echo=True,
    )
    log = tmp_path / "session.jsonl"
    live = run_netrepl(
        *peer.args, "--view", view, "--log", str(log), "--linger", "0.5", stdin=b"hello\n"
    )
    assert live.returncode == 0, live.stderr

    replayed = run_netrepl("replay", str(log), "--view", view)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == live.stdout
    if view == "hex":
        received = GBK_TEXT.encode("gbk") + bytes(range(20)) + b"hello\n"
        assert parse_hexdump(replayed.stdout.decode()) == received

    capture = tmp_path / "session.pcap"
    exported = run_netrepl("export", str(log), "--pcap", str(capture))
    assert exported.returncode == 0, exported.stderr
    packets = read_pcap(capture.read_bytes())
    client = next((p.src, p.sport) for p in packets if p.dport == peer.port)
    streams = check_conversation(packets, client)
    assert streams["c2s"] == b"hello\n"
    assert streams["s2c"] == GBK_TEXT.encode("gbk") + bytes(range(20)) + b"hello\n"


# ---- an endless input -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["replay"], ["export", "--pcap", "OUT"]])
def test_an_endless_device_is_no_transcript_and_no_memory_error(tmp_path, command):
    # /dev/zero has no newline: a line read whole would grow until memory runs out.
    args = [str(tmp_path / "out.pcap") if word == "OUT" else word for word in command]
    result = run_netrepl(command[0], "/dev/zero", *args[1:], timeout=30)
    assert b"Traceback" not in result.stderr, result.stderr[-500:]
    assert result.returncode == 2
    assert result.stderr.decode() == ("netrepl: /dev/zero: line 1: over 32 MiB: not a transcript\n")
