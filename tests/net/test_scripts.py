"""Scripts, waits, automatic replies, recordings, presets and long sends, over real loopback.

Batch runs (`--script`, `--on-connect`, `--config`) are the real program in a subprocess; the
finer checks (what each reply carried, when a periodic send stopped) drive an in-process
session with a real display. Every wait is on bytes arriving, with a timeout; "nothing more
came" is proved by a marker sent afterwards on the same ordered stream.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from netrepl.demo import BINARY_FRAME
from netrepl.errors import NetreplError, UsageError
from netrepl.events import Connected, Event, Noticed, Progress, Sent
from netrepl.session import Session, Settings
from netrepl.transport import Endpoint
from netrepl.view import View
from netrepl.watch import WHEN_LIMIT_PER_SECOND
from tests.net.conftest import WAIT, Harness, ScriptedServer, hexdump_line, run_netrepl
from tests.peers import Peer, PeerClient, free_port


def crc16_modbus(data: bytes) -> bytes:
    """CRC-16/MODBUS, low byte first, written out here rather than taken from netrepl."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def test_crc_helper_knows_a_published_frame():
    assert crc16_modbus(bytes.fromhex("01 03 00 00 00 0a")) == bytes.fromhex("c5 cd")


def write_script(directory: Path, name: str, *lines: str) -> str:
    path = directory / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def stderr_of(result) -> str:
    return result.stderr.decode()


@pytest.fixture
def harness(make_session) -> Harness:
    return make_session()


def connect(harness: Harness, peer: Peer) -> PeerClient:
    clients = len(peer.clients)
    harness.session.connect(peer.host, peer.port)
    return peer.wait_for_client(clients + 1)


def errors(harness: Harness) -> list[str]:
    return [e.text for e in harness.tap.of_type(Noticed) if e.level == "error"]


# ---- batch --script: exit statuses ------------------------------------------------------------


def test_script_whose_expects_match_exits_0(redis_peer, tmp_path):
    path = write_script(
        tmp_path,
        "ping.nrs",
        "# Redis answers each PING",
        "PING",
        r"/expect ^\+PONG\r\n 5",
        "PING",
        r"/expect \+PONG 5",
        "QUIT",
        r"/expect ^\+OK",
    )
    result = run_netrepl(*redis_peer.args, "--script", path, "--linger", "30", stdin=b"")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"+PONG\n+PONG\n+OK\n"
    assert stderr_of(result).count("netrepl: expect matched: ") == 3
    assert redis_peer.wait_finished() == b"PING\nPING\nQUIT\n"


def test_expect_status_line_shows_what_matched(redis_peer, tmp_path):
    path = write_script(tmp_path, "ping.nrs", "PING", r"/expect \+PO\w+ 5", "/quit")
    result = run_netrepl(*redis_peer.args, "--script", path, stdin=b"")
    assert "netrepl: expect matched: '+PONG'\n" in stderr_of(result)


def test_expect_timeout_exits_3_naming_file_line_and_pattern(redis_peer, tmp_path):
    path = write_script(
        tmp_path, "poll.nrs", "PING", r"/expect \+PONG", "PING", "/expect ^-ERR 0.3", "AFTER"
    )
    started = time.monotonic()
    result = run_netrepl(*redis_peer.args, "--script", path, "--linger", "30", stdin=b"LATER\n")
    assert result.returncode == 3, result.stderr
    assert f"netrepl: {path}:4: expect timed out after 0.3 s: ^-ERR\n" in stderr_of(result)
    # The script stops there: neither its next line nor stdin runs, and no linger.
    assert redis_peer.wait_finished() == b"PING\nPING\n"
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/nosuch", "unknown command /nosuch"),
        ("/expect (", "bad pattern '('"),
        ("/expect-hex 01 zz", "not a hex digit 'z'"),
        ("/sleep soon", "/sleep: 'soon' is not a number of seconds from 0 to 86,400"),
        ("/when PING PONG", "/when: write PATTERN -> REPLY"),
        (
            "/every 5 tick",
            "/every: '5' is not a whole number of milliseconds from 10 to 86,400,000",
        ),
        ("/repeat 0 x", "/repeat COUNT: '0' is not a whole number of repetitions from 1 to"),
        ("/sendfile", "/sendfile: missing ARGS"),
        ("/run", "/run: missing FILE"),
        ("/p nothing", "/p: no preset 'nothing'"),
        ("/x 0", "odd number of hex digits"),
        ("bad \\q escape", "bad escape"),
    ],
)
def test_a_usage_mistake_in_a_script_exits_2_with_its_line(make_peer, tmp_path, line, message):
    peer = make_peer()
    path = write_script(tmp_path, "bad.nrs", "# first", "one", line, "three")
    result = run_netrepl(*peer.args, "--script", path, "--linger", "30", stdin=b"four\n")
    assert result.returncode == 2, result.stderr
    named = [x for x in stderr_of(result).splitlines() if f"{path}:" in x]
    assert len(named) == 1 and named[0].startswith(f"netrepl: {path}:3: "), named
    assert message in named[0]
    assert peer.wait_for_client().wait_closed() == b"one\n"


def test_a_missing_run_file_is_a_usage_error_naming_both(make_peer, tmp_path):
    peer = make_peer()
    missing = tmp_path / "missing.nrs"
    path = write_script(tmp_path, "main.nrs", "one", f"/run {missing}", "two")
    result = run_netrepl(*peer.args, "--script", path, stdin=b"")
    assert result.returncode == 2
    assert f"netrepl: {path}:2: cannot read {missing}: No such file" in stderr_of(result)
    assert peer.wait_for_client().wait_closed() == b"one\n"


def drain(server: ScriptedServer, sock: socket.socket) -> None:
    """Record what the client sends until it closes."""
    while server.recv(sock):
        pass


def test_script_lines_crlf_and_blank_lines(make_server, tmp_path):
    server = make_server(drain)
    path = tmp_path / "http.nrs"
    path.write_bytes(b"# an HTTP request\r\nGET / HTTP/1.0\r\nHost: x\r\n\r\n/quit")
    result = run_netrepl(*server.args, "--eol", "crlf", "--script", str(path), stdin=b"")
    assert result.returncode == 0, result.stderr
    assert server.wait_finished() == b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (["hello", "/quit"], 0),
        (["hello", "/close", "after the close"], 1),
        (["hello", "/bogus"], 2),
        (["hello", "/expect never 0.2"], 3),
    ],
    ids=["ok", "connection", "usage", "expect"],
)
def test_batch_exit_status_of_each_failure(make_peer, tmp_path, lines, status):
    peer = make_peer()
    path = write_script(tmp_path, "s.nrs", *lines)
    result = run_netrepl(*peer.args, "--script", path, "--linger", "30", stdin=b"")
    assert result.returncode == status, result.stderr
    if status:
        assert f"netrepl: {path}:{len(lines)}: " in stderr_of(result)
    assert peer.wait_for_client().wait_closed() == b"hello\n"


def test_a_script_cannot_connect_exits_1(tmp_path):
    path = write_script(tmp_path, "s.nrs", "hello")
    result = run_netrepl("127.0.0.1", str(free_port()), "--script", path, stdin=b"")
    assert result.returncode == 1
    assert "connection refused" in stderr_of(result)


@pytest.mark.parametrize("option", ["--script", "--on-connect"])
def test_a_missing_script_file_exits_2_before_connecting(make_peer, tmp_path, option):
    peer = make_peer()
    missing = tmp_path / "nope.nrs"
    result = run_netrepl(*peer.args, option, str(missing), stdin=b"hello\n")
    assert result.returncode == 2
    assert stderr_of(result) == f"netrepl: cannot read {missing}: No such file or directory\n"
    assert peer.clients == []  # the listener's accept would have been recorded by now


# ---- /run: nesting ------------------------------------------------------------------------------


def test_run_nested_scripts_in_order(make_peer, tmp_path):
    peer = make_peer(echo=True)
    inner = write_script(tmp_path, "inner.nrs", "B", "/expect ^B\\n$ 5")
    outer = write_script(tmp_path, "outer.nrs", "A", "/expect A 5", f"/run {inner}", "C", "/quit")
    result = run_netrepl(*peer.args, "--script", outer, stdin=b"")
    assert result.returncode == 0, result.stderr
    assert peer.wait_for_client().wait_closed() == b"A\nB\nC\n"


def test_a_failure_in_a_nested_script_names_both_lines_and_keeps_its_status(make_peer, tmp_path):
    peer = make_peer()
    inner = write_script(tmp_path, "inner.nrs", "B", "/expect never 0.2")
    outer = write_script(tmp_path, "outer.nrs", "A", f"/run {inner}", "C")
    result = run_netrepl(*peer.args, "--script", outer, stdin=b"")
    assert result.returncode == 3
    assert f"netrepl: {outer}:2: {inner}:2: expect timed out after 0.2 s: never\n" in stderr_of(
        result
    )
    assert peer.wait_for_client().wait_closed() == b"A\nB\n"


def chain(directory: Path, depth: int) -> str:
    """Scripts level1 .. levelN, each sending its level and running the next."""
    for level in range(depth, 0, -1):
        then = [f"/run {directory / f'level{level + 1}.nrs'}"] if level < depth else []
        write_script(directory, f"level{level}.nrs", f"level {level}", *then)
    return str(directory / "level1.nrs")


def test_scripts_nest_eight_deep(make_peer, tmp_path):
    peer = make_peer()
    result = run_netrepl(*peer.args, "--script", chain(tmp_path, 8), "--linger", "0.1")
    assert result.returncode == 0, result.stderr
    sent = b"".join(b"level %d\n" % n for n in range(1, 9))
    assert peer.wait_for_client().wait_closed() == sent


def test_scripts_nested_nine_deep_stop_with_a_usage_error(make_peer, tmp_path):
    peer = make_peer()
    result = run_netrepl(*peer.args, "--script", chain(tmp_path, 9), "--linger", "30")
    assert result.returncode == 2
    assert "/run " + str(tmp_path / "level9.nrs") + ": scripts nested more than 8 deep" in (
        stderr_of(result)
    )
    sent = b"".join(b"level %d\n" % n for n in range(1, 9))
    assert peer.wait_for_client().wait_closed() == sent


def test_a_script_that_runs_itself_stops(make_peer, tmp_path):
    peer = make_peer()
    path = tmp_path / "self.nrs"
    write_script(tmp_path, "self.nrs", "again", f"/run {path}")
    result = run_netrepl(*peer.args, "--script", str(path), "--linger", "30", timeout=20)
    assert result.returncode == 2
    assert "scripts nested more than 8 deep" in stderr_of(result)
    assert peer.wait_for_client().wait_closed() == b"again\n" * 8


# ---- /expect-hex against binary ----------------------------------------------------------------


def modbus_device(server: ScriptedServer, sock: socket.socket) -> None:
    """Answer one 8-byte Modbus RTU request with BINARY_FRAME, in two writes."""
    request = b""
    while len(request) < 8:
        piece = server.recv(sock)
        if not piece:
            return
        request += piece
    sock.sendall(BINARY_FRAME[:3])
    sock.sendall(BINARY_FRAME[3:])
    while server.recv(sock):
        pass


def test_expect_hex_matches_a_binary_reply(make_server, tmp_path):
    server = make_server(modbus_device)
    path = write_script(
        tmp_path,
        "modbus.nrs",
        "/x 01 03 00 00 00 02 {crc16-modbus}",
        "/expect-hex 01 03 04 ?? ?? ?? ?? da 6b 5",
        "/quit",
    )
    result = run_netrepl(*server.args, "--view", "hex", "--script", path, stdin=b"")
    assert result.returncode == 0, result.stderr
    # Each read is a hexdump of its own, with offsets running over the stream.
    shown = result.stdout.decode().splitlines(keepends=True)
    offsets = [int(line[:8], 16) for line in shown]
    cuts = [*offsets[1:], len(BINARY_FRAME)]
    assert shown == [hexdump_line(a, BINARY_FRAME[a:b]) for a, b in zip(offsets, cuts, strict=True)]
    assert offsets[0] == 0
    request = bytes.fromhex("01 03 00 00 00 02")
    assert server.wait_finished() == request + crc16_modbus(request)


def test_expect_hex_that_does_not_match_exits_3(make_server, tmp_path):
    server = make_server(modbus_device)
    path = write_script(
        tmp_path,
        "modbus.nrs",
        "/x 01 03 00 00 00 02 {crc16-modbus}",
        "/expect-hex 01 03 04 00 2b 0.5",
    )
    result = run_netrepl(*server.args, "--view", "hex", "--script", path, stdin=b"")
    assert result.returncode == 3
    assert f"netrepl: {path}:2: expect timed out after 0.5 s: 01 03 04 00 2b\n" in (
        stderr_of(result)
    )


# ---- /when ---------------------------------------------------------------------------------------


def test_when_answers_a_ping_with_its_number(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit(r"/when ^PING (\d+) -> PONG \1")
    client.send(b"PING 7\n")
    assert client.wait_for(b"\n") == b"PONG 7\n"
    # Not at a line start: no answer; the next line's ping is answered.
    client.send(b"xPING 8\nPING 12345\n")
    assert client.wait_for(b"PONG 12345\n") == b"PONG 7\nPONG 12345\n"


def test_when_answers_each_match_on_the_connection(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/when PING -> PONG {counter}")
    assert harness.output.wait_stderr("rule 1: when PING -> PONG {counter}")
    client.send(b"PING\n")
    client.wait_for(b"PONG 1\n")
    # One read with two pings, and one ping cut across two reads.
    client.send(b"PING PING\nPI")
    client.wait_for(b"PONG 3\n")
    harness.tap.wait_received(len(b"PING\nPING PING\nPI"))
    client.send(b"NG\n")
    assert client.wait_for(b"PONG 4\n") == b"PONG 1\nPONG 2\nPONG 3\nPONG 4\n"
    harness.session.submit("/when")
    harness.output.wait_stderr("1: /when PING -> PONG {counter} (fired 4x)")


def test_when_with_a_caret_answers_every_ping_line(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/when ^PING -> PONG")
    harness.session.submit("/when SYNC -> SYNCED")
    client.send(b"PING\n")
    client.wait_for(b"PONG\n")
    client.send(b"PING\n")
    client.send(b"SYNC\n")
    # Rules answer in order on the one stream: a PONG for the second ping comes before SYNCED.
    assert client.wait_for(b"SYNCED\n") == b"PONG\nPONG\nSYNCED\n"


def test_when_reply_naming_a_missing_group_is_a_usage_error(harness):
    with pytest.raises(UsageError, match=r"\\1"):
        harness.session.submit(r"/when PING -> PONG \1")


class RawClient:
    """A plain loopback client of a netrepl listener: everything it received, so far."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.received = bytearray()

    def read_until(self, expected: bytes, timeout: float = WAIT) -> bytes:
        """Read until `expected` has arrived (bounded by `timeout`); return all received."""
        deadline = time.monotonic() + timeout
        while expected not in self.received:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never received {expected!r}; got {bytes(self.received)!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed before {expected!r}; got {bytes(self.received)!r}")
            self.received += chunk
        return bytes(self.received)


def test_when_in_listen_mode_answers_only_the_client_that_matched(harness):
    session = harness.session
    session.open(Endpoint(listen=True, host="127.0.0.1", port=0))
    port = int(session.transport.address.rsplit(":", 1)[1])
    session.submit(r"/when ^PING (\d+) -> PONG \1")
    session.submit("/when SYNC -> SYNCED")
    first, second = RawClient(port), RawClient(port)
    harness.tap.wait_until(
        lambda: len([e for e in harness.tap.events if isinstance(e, Connected)]) == 2,
        "two clients",
    )
    first.sock.sendall(b"PING 1\n")
    assert first.read_until(b"PONG 1\n") == b"PONG 1\n"
    second.sock.sendall(b"SYNC\n")
    # The second client got nothing of the first one's answer, only its own.
    assert second.read_until(b"SYNCED\n") == b"SYNCED\n"
    second.sock.sendall(b"PING 2\n")
    assert second.read_until(b"PONG 2\n") == b"SYNCED\nPONG 2\n"
    first.sock.sendall(b"SYNC\n")
    assert first.read_until(b"SYNCED\n") == b"PONG 1\nSYNCED\n"
    for client in (first, second):
        client.sock.close()


def test_when_hex_answers_a_modbus_read_with_its_crc(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/when-hex 01 03 ?? ?? ?? ?? ?? ?? -> 01 03 02 00 2a {crc16-modbus}")
    reply = bytes.fromhex("01 03 02 00 2a") + crc16_modbus(bytes.fromhex("01 03 02 00 2a"))
    client.send(bytes.fromhex("01 03 00 00 00 0a c5 cd"))
    assert client.wait_for_size(len(reply)) == reply  # no end of line after a hex reply
    # A second request, cut across reads.
    client.send(bytes.fromhex("01 03 00 10"))
    harness.tap.wait_received(12)
    client.send(bytes.fromhex("00 01 85 cf"))
    assert client.wait_for_size(2 * len(reply)) == reply * 2
    # Sent is posted once the bytes are handed to the socket, which the peer may see first.
    harness.tap.wait_until(lambda: len(harness.tap.of_type(Sent)) == 2, "two replies sent")
    assert [e.as_hex for e in harness.tap.of_type(Sent)] == [True, True]


def test_when_loop_between_two_rules_is_stopped_by_the_guard(harness, echo_peer):
    client = connect(harness, echo_peer)
    harness.session.submit("/when ping -> pong")
    harness.session.submit("/when pong -> ping")
    harness.session.submit("ping")
    harness.output.wait_stderr("times in a second (a loop?); /unwhen removes it")
    # Nothing of the loop is in flight once a rule has stopped: a marker sent now, once
    # echoed, is the last thing either side sees.
    harness.session.submit("MARK")
    harness.tap.wait_until(lambda: b"MARK\n" in harness.tap.received_bytes(), "the marker")
    seen = client.wait_for(b"MARK\n")
    assert seen.endswith(b"ping\nMARK\n")
    lines = seen.splitlines()[:-1]
    assert set(lines) == {b"ping", b"pong"}
    limit = WHEN_LIMIT_PER_SECOND
    assert 2 * limit <= len(lines) <= 2 * limit + 2, len(lines)
    stopped = [text for text in errors(harness) if "stopped" in text]
    assert len(stopped) == 1, stopped
    assert re.fullmatch(
        rf"/when [12] stopped: fired more than {limit} times in a second \(a loop\?\); "
        r"/unwhen removes it",
        stopped[0],
    )
    rules = harness.session.replies.rules()
    assert sum(rule.stopped is not None for rule in rules) == 1
    # /unwhen all removes them; the echo of a new ping is then left alone.
    harness.session.submit("/unwhen all")
    harness.output.wait_stderr("removed rule 1, rule 2")
    harness.session.submit("ping")
    harness.session.submit("END")
    assert client.wait_for(b"END\n").endswith(b"MARK\nping\nEND\n")


# ---- /record and replay --------------------------------------------------------------------------


def test_record_writes_the_typed_lines_and_run_replays_them(make_peer, tmp_path):
    recording = tmp_path / "poll.nrs"
    first = make_peer()
    stdin = (
        f"before\n/record {recording}\nline one\n/x 01 02 ff\n/eol crlf\ncrlf line\n\n"
        "/record off\nafter\n"
    ).encode()
    result = run_netrepl(*first.args, "--linger", "0.2", stdin=stdin)
    assert result.returncode == 0, result.stderr
    recorded = b"line one\n\x01\x02\xffcrlf line\r\n\r\n"
    assert first.wait_for_client().wait_closed() == b"before\n" + recorded + b"after\r\n"
    assert recording.read_text(encoding="utf-8") == (
        f"# recorded by netrepl, to replay with /run {recording}\n"
        "line one\n/x 01 02 ff\n/eol crlf\ncrlf line\n\n"
    )

    second = make_peer()
    result = run_netrepl(*second.args, "--linger", "0.2", stdin=f"/run {recording}\n".encode())
    assert result.returncode == 0, result.stderr
    assert second.wait_for_client().wait_closed() == recorded


def test_record_reports_its_state(harness, tmp_path):
    path = tmp_path / "r.nrs"
    harness.session.submit_typed("/record")
    harness.output.wait_stderr("not recording")
    harness.session.submit_typed(f"/record {path}")
    harness.session.submit_typed("/record")
    harness.output.wait_stderr(f"recording to {path}")
    harness.session.submit_typed("/record off")
    harness.output.wait_stderr(f"stopped recording to {path}")
    harness.session.submit_typed("/record off")
    harness.output.wait_stderr("was not recording")
    assert path.read_text(encoding="utf-8").count("\n") == 1  # the header line only


# ---- --on-connect -------------------------------------------------------------------------------


def test_on_connect_runs_after_connect_and_after_each_reconnect(make_peer, start_netrepl, tmp_path):
    peer = make_peer()
    login = write_script(tmp_path, "login.nrs", "/expect login: 5", "LOGIN secret")
    netrepl = start_netrepl(
        *peer.args, "--on-connect", login, "--reconnect", "0.1", "--linger", "0.2"
    )
    first = peer.wait_for_client(1)
    first.send(b"login: ")
    assert first.wait_for(b"LOGIN secret\n") == b"LOGIN secret\n"
    first.close()
    second = peer.wait_for_client(2)
    second.send(b"login: ")
    assert second.wait_for(b"LOGIN secret\n") == b"LOGIN secret\n"
    netrepl.write(b"typed\n")
    assert second.wait_for(b"typed\n") == b"LOGIN secret\ntyped\n"
    result = netrepl.finish()
    assert result.returncode == 0, result.stderr
    assert first.received == b"LOGIN secret\n", "the script ran once per connection"
    assert "--on-connect" not in stderr_of(result)
    assert stderr_of(result).count("netrepl: connected to ") == 2


def test_on_connect_failure_is_reported_with_its_line(make_peer, start_netrepl, tmp_path):
    peer = make_peer(greeting=b"Password: ")
    login = write_script(tmp_path, "login.nrs", "/expect login: 0.2", "LOGIN secret")
    netrepl = start_netrepl(*peer.args, "--on-connect", login, "--linger", "0.2")
    netrepl.wait_stderr(f"netrepl: --on-connect {login}:1: expect timed out".encode())
    netrepl.finish()
    assert peer.wait_for_client().wait_closed() == b""


def test_on_connect_can_send_its_first_line_at_once(make_peer, tmp_path):
    peer = make_peer()
    login = write_script(tmp_path, "login.nrs", "LOGIN secret")
    seen: list[Event] = []
    changed = threading.Condition()

    def post(event: Event) -> None:
        with changed:
            seen.append(event)
            changed.notify_all()
        if isinstance(event, Connected):
            # A busy machine: the thread that connected is slow to come back from here, and
            # the script has tried its line before it does.
            with changed:
                changed.wait_for(lambda: any(isinstance(e, (Sent, Noticed)) for e in seen), 2)

    session = Session(Settings(view=View()), post)
    session.on_connect.path = login
    try:
        session.connect(peer.host, peer.port)
        client = peer.wait_for_client()
        with changed:
            changed.wait_for(lambda: any(isinstance(e, (Sent, Noticed)) for e in seen), WAIT)
        assert [e.text for e in seen if isinstance(e, Noticed)] == []
        assert client.wait_for(b"LOGIN secret\n") == b"LOGIN secret\n"
    finally:
        session.close_all()


def login_device(server: ScriptedServer, sock: socket.socket) -> None:
    """Greet with `login: ` only after half a second, recording whatever came before it: a
    client that waits for the prompt sends nothing in that time."""
    sock.settimeout(0.5)
    try:
        early = server.recv(sock)
    except TimeoutError:
        early = b""
    sock.settimeout(WAIT)
    if early:
        server.early = early  # type: ignore[attr-defined]
    sock.sendall(b"login: ")
    drain(server, sock)


def test_on_connect_finishes_before_the_first_line(make_server, tmp_path):
    server = make_server(login_device)
    login = write_script(tmp_path, "login.nrs", "/expect login: 5", "LOGIN secret")
    result = run_netrepl(*server.args, "--on-connect", login, "--linger", "1", stdin=b"PING\n")
    assert result.returncode == 0, result.stderr
    assert server.wait_finished() == b"LOGIN secret\nPING\n"


# ---- /sendfile ----------------------------------------------------------------------------------


def finished(harness: Harness) -> Progress:
    harness.tap.wait_until(
        lambda: any(isinstance(e, Progress) and e.finished for e in harness.tap.events),
        "the end of the send",
    )
    (done,) = [e for e in harness.tap.of_type(Progress) if e.finished]
    return done


def test_sendfile_of_5_mb_arrives_whole(harness, make_peer, tmp_path):
    data = os.urandom(5 * 1024 * 1024)
    path = tmp_path / "firmware.bin"
    path.write_bytes(data)
    client = connect(harness, make_peer())
    harness.session.submit(f"/sendfile {path}")

    received = client.wait_for_size(len(data), timeout=30)
    assert len(received) == len(data)
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest()
    end = finished(harness)
    assert (end.outcome, end.done, end.total) == ("sent", len(data), len(data))
    harness.output.wait_stderr(
        f"netrepl: sendfile firmware.bin: sent, {len(data):,} bytes of {len(data):,} in "
    )
    pieces = [e.data for e in harness.tap.of_type(Sent)]
    assert b"".join(pieces) == data and max(map(len, pieces)) == 64 * 1024
    # Sending a file is not a line: {counter} still numbers the next line 1.
    harness.session.submit("n={counter}")
    assert client.wait_for(b"n=1\n")[len(data) :] == b"n=1\n"


def test_sendfile_in_batch_reports_the_total(make_peer, tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 7)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    peer = make_peer()
    result = run_netrepl(*peer.args, "--linger", "0.2", stdin=f"/sendfile {path}\n".encode())
    assert result.returncode == 0, result.stderr
    received = peer.wait_for_client().wait_closed()
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    assert re.search(
        rf"^netrepl: sendfile big\.bin: sent, {len(data):,} bytes of {len(data):,} in "
        r"\d+\.\d s \(.+/s\)$",
        stderr_of(result),
        re.MULTILINE,
    ), stderr_of(result)


def test_sendfile_chunk_and_delay(harness, make_peer, tmp_path):
    data = os.urandom(20_000)
    path = tmp_path / "with space.bin"
    path.write_bytes(data)
    client = connect(harness, make_peer())
    started = time.monotonic()
    harness.session.submit(f'/sendfile "{path}" --chunk 1000 --delay 5')
    elapsed = time.monotonic() - started
    assert client.wait_for_size(len(data)) == data
    pieces = [e.data for e in harness.tap.of_type(Sent)]
    assert [len(p) for p in pieces] == [1000] * 20
    assert elapsed >= 19 * 0.005
    end = finished(harness)
    assert (end.outcome, end.done) == ("sent", 20_000)
    harness.output.wait_stderr("sendfile with space.bin: sent, 20,000 bytes of 20,000 in")


def test_sendfile_last_piece_is_the_rest(harness, make_peer, tmp_path):
    path = tmp_path / "odd.bin"
    path.write_bytes(b"0123456789")
    client = connect(harness, make_peer())
    harness.session.submit(f"/sendfile {path} --chunk 4")
    assert client.wait_for_size(10) == b"0123456789"
    assert [e.data for e in harness.tap.of_type(Sent)] == [b"0123", b"4567", b"89"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{path} --chunk 0", "/sendfile --chunk: '0' is not a whole number of bytes from 1 to"),
        ("{path} --chunk", "/sendfile: --chunk takes a whole number"),
        ("{path} --delay 1.5", "/sendfile --delay: '1.5' is not a whole number of milliseconds"),
        ("{path} extra", "/sendfile: unexpected 'extra'"),
        ('"{path}', "/sendfile: No closing quotation"),
        ("--chunk 10", "/sendfile: give the PATH of the file"),
        ("{path}.missing", "cannot read {path}.missing: No such file"),
    ],
)
def test_sendfile_mistakes_send_nothing(harness, make_peer, tmp_path, arguments, message):
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    client = connect(harness, make_peer())
    with pytest.raises(UsageError, match=re.escape(message.format(path=path))):
        harness.session.submit("/sendfile " + arguments.format(path=path))
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == b"MARK\n"


def test_sendfile_interrupted_sends_a_prefix_and_says_so(harness, make_peer, tmp_path):
    data = os.urandom(2_000_000)
    path = tmp_path / "slow.bin"
    path.write_bytes(data)
    client = connect(harness, make_peer())

    def interrupt() -> None:
        client.wait_for_size(50_000)
        harness.session.cancel.set()

    interrupter = threading.Thread(target=interrupt, daemon=True)
    interrupter.start()
    harness.session.submit(f"/sendfile {path} --chunk 4096 --delay 2")
    interrupter.join(WAIT)
    harness.session.cancel.clear()

    end = finished(harness)
    assert end.outcome == "interrupted"
    assert 50_000 <= end.done < len(data) and end.done % 4096 == 0
    harness.output.wait_stderr(
        f"netrepl: sendfile slow.bin: interrupted, {end.done:,} bytes of {len(data):,} in "
    )
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == data[: end.done] + b"MARK\n"


# ---- /every, /stop ------------------------------------------------------------------------------


def test_every_sends_until_stop(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/every 20 tick")
    client.wait_for(b"tick\n" * 3)
    harness.session.submit("/every")
    harness.output.wait_stderr("1: every 20 ms: tick (")
    harness.session.submit("/stop 1")
    harness.output.wait_stderr("stopped job 1")
    harness.session.submit("MARK")
    # The timer thread keeps running for another job: had job 1 survived /stop, one of its
    # ticks would fall between these three tocks or after the marker.
    harness.session.submit("/every 20 tock")
    received = client.wait_for(b"tock\n" * 3)
    harness.session.submit("/stop all")
    before, after = received.split(b"MARK\n")
    assert set(before.splitlines()) == {b"tick"} and len(before.splitlines()) >= 3
    assert b"tick" not in after
    harness.session.submit("/every")
    harness.output.wait_stderr("nothing runs")


def test_every_counter_increments(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("x={counter}")
    harness.session.submit("/every 20 n={counter}")
    client.wait_for(b"n=4\n")
    harness.session.submit("/stop 1")
    harness.session.submit("/every 20 END")
    typed, *ticks = client.wait_for(b"END\n").split(b"END\n")[0].splitlines()
    harness.session.submit("/stop all")
    # The counter numbers every send: the typed line was 1, the job's sends follow on.
    assert typed == b"x=1"
    assert len(ticks) >= 3 and ticks == [b"n=%d" % n for n in range(2, len(ticks) + 2)]


class UnreadPeer:
    """A listener whose one client is not read until `go` is set (a tiny receive buffer, so
    what netrepl sends piles up in its own queue); then everything is read into `got`."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.go = threading.Event()
        self.got = bytearray()
        self._changed = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        sock, _ = self.listener.accept()
        with sock:
            self.go.wait(WAIT)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            while data := sock.recv(1 << 20):
                with self._changed:
                    self.got += data
                    self._changed.notify_all()

    def wait_size(self, size: int) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.got) >= size, WAIT):
                raise AssertionError(f"the peer got {len(self.got)} of {size} bytes")
            return bytes(self.got)

    def close(self) -> None:
        self.listener.close()


def test_lines_sent_at_the_same_time_get_different_counters(harness, tmp_path, monkeypatch):
    peer = UnreadPeer()
    session = harness.session
    session.connect("127.0.0.1", peer.port)
    # 16 MiB the peer does not read yet: every further send waits for room in the queue.
    fill = tmp_path / "fill.bin"
    size = 16 * 1024 * 1024
    fill.write_bytes(bytes(size))
    session.submit(f"/x {{file:{fill}}}")
    counted = threading.Semaphore(0)
    context = session.send_context

    def counting_context():
        made = context()
        counted.release()
        return made

    monkeypatch.setattr(session, "send_context", counting_context)
    senders = [
        threading.Thread(target=session.submit, args=(f"{name}={{counter}}",), daemon=True)
        for name in ("a", "b")
    ]
    for sender in senders:
        sender.start()
    # Both lines have their number (or the second waits its turn, if sends are serialised).
    counted.acquire(timeout=WAIT)
    counted.acquire(timeout=2)
    peer.go.set()
    for sender in senders:
        sender.join(WAIT)
    lines = sorted(peer.wait_size(size + 8)[size:].splitlines())
    peer.close()
    assert [line[2:] for line in lines] == [b"2", b"3"], lines


def wait_count(client: PeerClient, needle: bytes, count: int) -> bytes:
    """Wait until `needle` occurs `count` times in what the client sent; return all of it."""
    with client._changed:
        if not client._changed.wait_for(lambda: client.received.count(needle) >= count, WAIT):
            raise AssertionError(f"{needle!r} never {count} times: {bytes(client.received)!r}")
        return bytes(client.received)


def test_every_runs_commands_and_each_job_on_its_own(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/every 15 /x 01")
    harness.session.submit("/every 15 /x 02")
    wait_count(client, b"\x02", 2)
    harness.session.submit("/stop 2")
    harness.session.submit("/x ff")
    harness.session.submit("/every 15 /x 03")
    received = wait_count(client, b"\x03", 3)
    harness.session.submit("/stop all")
    before, after = received.split(b"\xff")
    assert set(before) == {1, 2}
    # Job 1 went on beside job 3; job 2 sent nothing after it was stopped.
    assert set(after) == {1, 3}


def test_stop_of_an_unknown_job(harness):
    with pytest.raises(UsageError, match=re.escape("/stop: no job 3 (/every lists them)")):
        harness.session.submit("/stop 3")


def test_every_keeps_trying_through_a_reconnect_and_says_so_once(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("/every 10 tick")
    client.wait_for(b"tick\n")
    harness.session.close()
    harness.output.wait_stderr("netrepl: /every 1: not connected")
    assert harness.output.wait_stderr("(still trying; /stop 1)")
    harness.session.reconnect()
    again = peer.wait_for_client(2)
    again.wait_for(b"tick\ntick\n")
    harness.session.submit("/stop all")
    # Said once for the whole time it failed, not at every tick.
    assert sum("still trying" in text for text in errors(harness)) == 1


# ---- /repeat ------------------------------------------------------------------------------------


def test_repeat_sends_exactly_count_times(harness, make_peer):
    client = connect(harness, make_peer())
    started = time.monotonic()
    harness.session.submit("/repeat 3 10 R")
    assert time.monotonic() - started >= 2 * 0.010
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == b"R\nR\nR\nMARK\n"


@pytest.mark.parametrize(
    ("line", "sent"),
    [
        ("/repeat 2 X", b"X\nX\n"),
        ("/repeat 3 10 #{counter}", b"#1\n#2\n#3\n"),
        ("/repeat 2 /x 01 02", b"\x01\x02\x01\x02"),
        ("/repeat 2 10 20 words", b"20 words\n20 words\n"),
        ("/repeat 1 5", b"5\n"),
    ],
)
def test_repeat_forms(harness, make_peer, line, sent):
    client = connect(harness, make_peer())
    harness.session.submit(line)
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == sent + b"MARK\n"


def test_repeat_is_stopped_by_cancel(harness, make_peer):
    client = connect(harness, make_peer())

    def interrupt() -> None:
        client.wait_for(b"R\nR\n")
        harness.session.cancel.set()

    interrupter = threading.Thread(target=interrupt, daemon=True)
    interrupter.start()
    with pytest.raises(NetreplError, match=r"^/repeat interrupted after (\d+) of 1000$") as info:
        harness.session.submit("/repeat 1000 10 R")
    interrupter.join(WAIT)
    harness.session.cancel.clear()
    count = int(re.search(r"after (\d+)", str(info.value)).group(1))
    assert 2 <= count < 1000
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == b"R\n" * count + b"MARK\n"


# ---- /p presets from the config file ------------------------------------------------------------


def write_config(tmp_path: Path) -> str:
    path = tmp_path / "netrepl.toml"
    path.write_text(
        '[defaults]\neol = "crlf"\n\n[presets]\n'
        'hello = "HELLO {counter}"\n'
        'read = "/x 01 03 00 00 00 0a {crc16-modbus}"\n'
        'both = "/repeat 2 /p hello"\n',
        encoding="utf-8",
    )
    return str(path)


def test_p_sends_presets_from_the_config_file(make_peer, tmp_path):
    peer = make_peer()
    stdin = b"/p hello\n/p read\n/p both\n/p\n"
    result = run_netrepl(
        *peer.args, "--config", write_config(tmp_path), "--linger", "0.2", stdin=stdin
    )
    assert result.returncode == 0, result.stderr
    read = bytes.fromhex("01 03 00 00 00 0a c5 cd")
    assert peer.wait_for_client().wait_closed() == (
        b"HELLO 1\r\n" + read + b"HELLO 3\r\nHELLO 4\r\n"
    )
    listing = stderr_of(result)
    assert "  both   /repeat 2 /p hello\n" in listing
    assert "  hello  HELLO {counter}\n" in listing


def test_p_unknown_preset_exits_2_listing_the_known(make_peer, tmp_path):
    peer = make_peer()
    result = run_netrepl(
        *peer.args, "--config", write_config(tmp_path), stdin=b"/p hello\n/p nope\nlater\n"
    )
    assert result.returncode == 2
    assert "netrepl: stdin line 2: /p: no preset 'nope' (known: both, hello, read)\n" in stderr_of(
        result
    )
    assert peer.wait_for_client().wait_closed() == b"HELLO 1\r\n"


@pytest.mark.parametrize(
    ("config", "message"),
    [(None, "no such file"), ('[defaults]\nview = "raw"\n', "[defaults] view = 'raw'")],
)
def test_a_bad_config_exits_2_before_connecting(make_peer, tmp_path, config, message):
    peer = make_peer()
    path = tmp_path / "c.toml"
    if config is not None:
        path.write_text(config, encoding="utf-8")
    result = run_netrepl(*peer.args, "--config", str(path), stdin=b"hello\n")
    assert result.returncode == 2
    lines = stderr_of(result).splitlines()
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], lines
