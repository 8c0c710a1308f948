"""Relay interception end to end: a real relay between a real client and a real upstream,
holding, forwarding, dropping and rewriting what passes, typed on stdin or run from a
--script (a fault-injection test is a file)."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from tests.net.conftest import WAIT

pytestmark = pytest.mark.timeout(60)


class ReplyingUpstream:
    """A loopback server that answers each line `N` with `reply N`, recording what it got."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.received = bytearray()
        self._changed = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            sock, _ = self._listener.accept()
            with sock:
                pending = b""
                while data := sock.recv(65536):
                    with self._changed:
                        self.received += data
                        self._changed.notify_all()
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        if line.isdigit():
                            sock.sendall(b"reply " + line + b"\n")

    def wait_received(self, expected: bytes) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: expected in self.received, WAIT):
                raise AssertionError(f"upstream never got {expected!r}: {bytes(self.received)!r}")
            return bytes(self.received)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def upstream():
    server = ReplyingUpstream()
    yield server
    server.close()


def relay_port(process) -> int:
    match = process.wait_stderr_match(rb"relaying 127\.0\.0\.1:(\d+) \(TCP\)")
    return int(match.group(1))


def read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def test_a_script_drops_the_devices_third_reply(tmp_path, start_netrepl, upstream):
    script = tmp_path / "fault.txt"
    script.write_text(
        "/frame line\n/hold upstream\n"
        "/expect ^reply.1\n/forward\n"
        "/expect ^reply.2\n/forward\n"
        "/expect ^reply.3\n/drop\n/hold off\n"
    )
    relay = start_netrepl(
        "-l", "127.0.0.1", "0", "--relay", f"127.0.0.1:{upstream.port}", "--once",
        "--script", str(script),
    )  # fmt: skip
    relay.close_stdin()
    with socket.create_connection(("127.0.0.1", relay_port(relay)), timeout=WAIT) as client:
        for number in (1, 2):
            client.sendall(b"%d\n" % number)
            assert read_line(client) == b"reply %d\n" % number
        client.sendall(b"3\n")
        relay.wait_stderr(b"dropped frame 3 (8 bytes): never seen by #1 client")
        client.sendall(b"4\n")
        assert read_line(client) == b"reply 4\n"  # never reply 3
    result = relay.finish()
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == (
        b"netrepl: relayed 1 flow: 8 bytes from the clients, 32 from the upstream"
    )


def test_held_frames_wait_and_go_on_in_order_or_are_dropped(start_netrepl, upstream):
    relay = start_netrepl("-l", "127.0.0.1", "0", "--relay", f"127.0.0.1:{upstream.port}")
    with socket.create_connection(("127.0.0.1", relay_port(relay)), timeout=WAIT) as client:
        relay.write(b"/frame line\n/hold client\n")
        relay.wait_stderr(b"holding what the client sends")
        client.sendall(b"a\nb\nc\n")
        relay.wait_stderr(b"held 3: #1 client \xe2\x86\x92 upstream, 2 bytes (/forward 3, /drop 3)")
        assert bytes(upstream.received) == b""  # nothing of it went on
        relay.write(b"/flows\n")
        relay.wait_stderr_match(rb"(?m)^ +#1 .* 6 +0  6 bytes held$")
        relay.write(b"/forward 2\n")  # frame 2 and frame 1 before it
        assert upstream.wait_received(b"a\nb\n") == b"a\nb\n"
        relay.write(b"/drop\n")  # the oldest: c
        relay.wait_stderr(b"dropped frame 3 (2 bytes): never seen by #1 upstream")
        relay.write(b"/hold off\n")
        relay.wait_stderr(b"holding nothing any more")
        client.sendall(b"d\n")
        assert upstream.wait_received(b"d\n") == b"a\nb\nd\n"
    relay.kill()


def test_an_end_of_stream_waits_behind_held_frames(start_netrepl, upstream):
    relay = start_netrepl("-l", "127.0.0.1", "0", "--relay", f"127.0.0.1:{upstream.port}")
    with socket.create_connection(("127.0.0.1", relay_port(relay)), timeout=WAIT) as client:
        relay.write(b"/frame line\n/hold client\n")
        relay.wait_stderr(b"holding what the client sends")
        client.sendall(b"7\n")
        client.shutdown(socket.SHUT_WR)
        relay.wait_stderr(b"#1 client sent end of stream (half-close): passed on")
        relay.write(b"/forward all\n")
        # The request goes first, then the half-close: the upstream still answers it.
        assert read_line(client) == b"reply 7\n"
    relay.kill()


def test_a_rewrite_finds_a_match_split_across_reads_when_framing_by_line(start_netrepl, upstream):
    relay = start_netrepl("-l", "127.0.0.1", "0", "--relay", f"127.0.0.1:{upstream.port}")
    with socket.create_connection(("127.0.0.1", relay_port(relay)), timeout=WAIT) as client:
        relay.write(b"/frame line\n/rewrite client GET /old -> GET /new\n")
        relay.wait_stderr(b"rule 1: /rewrite client GET /old -> GET /new")
        client.sendall(b"GET /o")
        relay.write(b"/expect GET /o\n")  # the first read is in (the display waits for the line)
        relay.wait_stderr(b"expect matched")
        client.sendall(b"ld HTTP/1.0\r\n")
        assert upstream.wait_received(b"\r\n") == b"GET /new HTTP/1.0\r\n"
        relay.wait_stderr(
            "rule 1 rewrote a frame (19 → 19 bytes): b'GET /new HTTP/1.0\\r\\n'".encode()
        )
    relay.kill()


def test_a_hex_rewrite_recomputes_the_modbus_checksum_and_rewrites_the_reply_too(
    start_netrepl, upstream
):
    relay = start_netrepl("-l", "127.0.0.1", "0", "--relay", f"127.0.0.1:{upstream.port}")
    with socket.create_connection(("127.0.0.1", relay_port(relay)), timeout=WAIT) as client:
        relay.write(
            b"/frame len 8\n"
            b"/rewrite-hex client 01 03 00 00 00 0a ?? ?? -> 01 03 00 00 00 05 {crc16-modbus}\n"
        )
        relay.wait_stderr(b"rule 1: /rewrite-hex client")
        client.sendall(bytes.fromhex("01 03 00 00 00 0a c5 cd"))
        assert upstream.wait_received(b"\x85\xc9") == bytes.fromhex("01 03 00 00 00 05 85 c9")
        relay.write(b"/frame line\n/rewrite upstream ^reply (\\d+) -> answer \\1\n")
        relay.wait_stderr(b"rule 2: /rewrite upstream")
        client.sendall(b"\n5\n")  # ends the odd bytes' line; 5 gets an answer
        assert read_line(client) == b"answer 5\n"
        relay.write(b"/rewrite\n/unrewrite all\n")
        relay.wait_stderr(b"removed rule 1, rule 2")
        client.sendall(b"6\n")
        assert read_line(client) == b"reply 6\n"
    relay.kill()


@pytest.mark.parametrize(
    "line",
    ["/hold client", "/forward", "/drop 1", "/rewrite client a -> b", "/unrewrite all", "/flows"],
)
def test_relay_commands_outside_a_relay_are_one_line(line, run_netrepl_in_listen_mode):
    result = run_netrepl_in_listen_mode(line)
    lines = result.stderr.decode().splitlines()
    assert any("relay" in text for text in lines), lines
    assert "Traceback" not in result.stderr.decode()
    assert result.returncode == 2


@pytest.fixture
def run_netrepl_in_listen_mode(echo_peer):
    from tests.net.conftest import run_netrepl

    return lambda line: run_netrepl(*echo_peer.args, stdin=f"{line}\n".encode())


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/hold sideways", "/hold: 'sideways' is not one of client, upstream, both, off"),
        ("/forward 9", "/forward: nothing is held"),
        ("/rewrite client", "/rewrite: write /rewrite client|upstream PATTERN -> REPLACEMENT"),
        ("/rewrite middle a -> b", "/rewrite: say whose data to change first"),
        ("/rewrite client a(", "/rewrite: write PATTERN -> REPLACEMENT"),
        ("/rewrite client a( -> b", "bad pattern 'a('"),
        ("/rewrite client a -> \\2", "reply uses \\2, but the pattern has 0 groups"),
        ("/rewrite client a -> {file:/etc/passwd}", "{file:PATH} is not read for each frame"),
        ("/rewrite-hex client 0g -> 00", "not a hex digit 'g'"),
        ("/rewrite-hex client 01 ->", "/rewrite-hex: give the replacement bytes in hex"),
        ("/unrewrite 3", "/unrewrite: no rule '3' (rules: none)"),
    ],
)
def test_bad_relay_commands_are_one_line(start_netrepl, upstream, line, error):
    relay = start_netrepl("-l", "127.0.0.1", "0", "--relay", f"127.0.0.1:{upstream.port}")
    relay_port(relay)
    relay.write(line.encode() + b"\n")
    result = relay.finish()
    assert result.returncode == 2  # batch mode stops at a bad line, as a script does
    assert error.encode() in result.stderr
    assert b"Traceback" not in result.stderr


def test_a_tcp_relay_to_its_own_address_is_refused_in_one_line(tmp_path):
    from tests.net.conftest import run_netrepl
    from tests.peers import free_port

    port = free_port()
    result = run_netrepl("-l", "127.0.0.1", str(port), "--relay", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        f"netrepl: --relay 127.0.0.1:{port} is where this relay listens: each client would come"
        " back to it as a new flow"
    )


def test_a_rewrite_that_deletes_is_listed_as_typed(start_netrepl, upstream):
    relay = start_netrepl("-l", "127.0.0.1", "0", "--relay", f"127.0.0.1:{upstream.port}")
    relay_port(relay)
    relay.write(b"/rewrite client ^ping\\r?\\n ->\n/rewrite\n")
    # The rule as typed, with no blank where the replacement would be.
    said = b"rule 1: /rewrite client ^ping\\r?\\n -> (frames of client \xe2\x86\x92 upstream)\n"
    relay.wait_stderr(said)
    relay.wait_stderr(said + b"rule 1: /rewrite client ^ping\\r?\\n ->\n")
    relay.kill()
