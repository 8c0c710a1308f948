"""Scripts over real loopback: --script and /run (exit statuses, nesting), /expect-hex on
binary replies, /record, --on-connect.

Batch runs are the real program in a subprocess; the finer checks drive an in-process session
with a real display. Every wait is on bytes arriving, with a timeout; "nothing more came" is
proved by a marker sent afterwards on the same ordered stream.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from netrepl.demo import BINARY_FRAME
from netrepl.events import Connected, Event, Noticed, Sent
from netrepl.session import Session, Settings
from netrepl.view import View
from tests.net.conftest import WAIT, Harness, ScriptedServer, hexdump_line, run_netrepl
from tests.net.session_helpers import crc16_modbus, stderr_of, write_script
from tests.peers import free_port


@pytest.fixture
def harness(make_session) -> Harness:
    return make_session()


def test_crc_helper_knows_a_published_frame():
    assert crc16_modbus(bytes.fromhex("01 03 00 00 00 0a")) == bytes.fromhex("c5 cd")


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
