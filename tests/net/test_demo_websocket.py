"""The demo peer's WebSocket endpoint: the same port answers an upgrade request with a
WebSocket peer (checked with the `websockets` library, not the wsproto netrepl uses) and stays
the TCP demo for everyone else; `netrepl --demo --ws` talks to it in batch mode."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from netrepl.demo import (
    BINARY_FRAME,
    GBK_LINE,
    HELP,
    OPENING,
    UPGRADE_WAIT,
    WS_GREETING,
    WS_HELP,
    WS_HOSTILE,
    WS_JSON,
    WS_MESSAGE_LIMIT,
    WS_SPLIT,
    DemoPeer,
    is_websocket_upgrade,
)
from tests.net.conftest import WAIT, run_netrepl
from tests.net.test_demo_peer import ANNOUNCED, DemoProcess, read_exactly

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def ws_demo():
    """The demo peer as `netrepl --demo --ws` runs it: waiting for the client's first words."""
    with DemoPeer(upgrade_wait=None) as peer:
        yield peer


@contextlib.contextmanager
def open_client(peer: DemoPeer) -> Iterator[ClientConnection]:
    """A `websockets` client, past the peer's greeting."""
    with connect(f"ws://127.0.0.1:{peer.port}/", open_timeout=WAIT, max_size=None) as client:
        assert client.recv(timeout=WAIT) == WS_GREETING.decode()
        yield client


def closed_with(client) -> tuple[int | None, str]:
    """Wait for the peer's close (bounded by WAIT): its code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=WAIT)
    received = closed.value.rcvd
    assert received is not None, "the peer closed without a close frame"
    return received.code, received.reason


def test_text_and_binary_messages_are_echoed_as_they_came(ws_demo):
    with open_client(ws_demo) as client:
        client.send("héllo 中文")
        assert client.recv(timeout=WAIT) == "héllo 中文"
        client.send(b"\x00\xff\x01")
        assert client.recv(timeout=WAIT) == b"\x00\xff\x01"


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("help", WS_HELP.decode()),
        ("HELP ", WS_HELP.decode()),
        ("json", WS_JSON.decode()),
        ("gbk", GBK_LINE),
        ("binary", BINARY_FRAME),
        ("hostile", WS_HOSTILE.decode()),
        ("close", "usage: close CODE [REASON] (1000-1003, 1007-1014 or 3000-4999)"),
    ],
)
def test_commands(ws_demo, typed, answer):
    with open_client(ws_demo) as client:
        client.send(typed)
        assert client.recv(timeout=WAIT) == answer


def test_the_json_sample_is_a_json_object():
    assert isinstance(json.loads(WS_JSON), dict)


@pytest.mark.parametrize(
    ("sent", "reply"),
    [
        ({"op": "ping"}, {"op": "pong"}),
        ({"op": "ping", "id": 7}, {"op": "pong", "id": 7}),
        (
            {"temp": 21.5, "id": "a"},
            {"op": "echo", "received": {"temp": 21.5, "id": "a"}, "id": "a"},
        ),
    ],
)
def test_a_json_object_gets_a_json_object_back(ws_demo, sent, reply):
    with open_client(ws_demo) as client:
        client.send(json.dumps(sent))
        assert json.loads(client.recv(timeout=WAIT)) == reply


@pytest.mark.parametrize("text", ["[1, 2]", "42", "{not json"])
def test_what_is_not_a_json_object_is_echoed(ws_demo, text):
    with open_client(ws_demo) as client:
        client.send(text)
        assert client.recv(timeout=WAIT) == text


def test_split_is_one_message_in_three_frames_cut_mid_character(ws_demo):
    with socket.create_connection(("127.0.0.1", ws_demo.port), timeout=WAIT) as sock:
        frames = RawClient(sock)
        frames.send_text(b"split")
        pieces = [frames.frame() for _ in range(3)]
    assert [(fin, opcode) for fin, opcode, _ in pieces] == [(False, 1), (False, 0), (True, 0)]
    assert b"".join(payload for _, _, payload in pieces) == WS_SPLIT
    for _, _, payload in pieces[:2]:
        with pytest.raises(UnicodeDecodeError):
            payload.decode("utf-8")


def test_ping_from_the_client_is_answered_and_ping_makes_the_peer_ping(ws_demo):
    with socket.create_connection(("127.0.0.1", ws_demo.port), timeout=WAIT) as sock:
        frames = RawClient(sock)
        frames.send(9, b"are you there")
        assert frames.frame() == (True, 10, b"are you there")
        frames.send_text(b"ping")
        assert frames.frame() == (True, 9, b"demo")


@pytest.mark.parametrize(
    ("typed", "code", "reason"),
    [
        ("bye", 1000, "bye"),
        ("close 4000 custom reason", 4000, "custom reason"),
        ("close 1001", 1001, ""),
    ],
)
def test_the_peer_closes_with_the_code_asked_for(ws_demo, typed, code, reason):
    with open_client(ws_demo) as client:
        client.send(typed)
        assert closed_with(client) == (code, reason)


def test_a_close_code_that_cannot_be_sent_is_explained(ws_demo):
    with open_client(ws_demo) as client:
        client.send("close 1006")
        assert "close code 1006 cannot be sent" in client.recv(timeout=WAIT)
        client.send("still here")
        assert client.recv(timeout=WAIT) == "still here"


def test_the_clients_close_is_answered(ws_demo):
    with open_client(ws_demo) as client:
        client.close(4001, "done")
    assert client.close_code == 4001  # the peer's answer echoes the code (RFC 6455 5.5.1)


def test_a_message_larger_than_the_bound_closes_with_1009(ws_demo):
    with open_client(ws_demo) as client:
        client.send(b"x" * (2 * WS_MESSAGE_LIMIT))
        code, reason = closed_with(client)
    assert code == 1009 and "1,048,576" in reason


def test_an_upgrade_request_without_a_key_is_answered_400(ws_demo):
    with socket.create_connection(("127.0.0.1", ws_demo.port), timeout=WAIT) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")


# ---- the same port stays the TCP demo


def test_a_plain_tcp_client_that_speaks_first_is_greeted_then_answered(ws_demo):
    with socket.create_connection(("127.0.0.1", ws_demo.port), timeout=WAIT) as sock:
        sock.sendall(b"help\n")
        assert read_exactly(sock, len(OPENING) + len(HELP)) == OPENING + HELP


def test_an_http_request_that_is_no_upgrade_gets_the_tcp_demo(ws_demo):
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", ws_demo.port), timeout=WAIT) as sock:
        sock.sendall(request)
        # Its lines are echoed as any line is.
        expected = OPENING + b"GET / HTTP/1.1\r\n" + b"Host: x\r\n" + b"\r\n"
        assert read_exactly(sock, len(expected)) == expected


def test_the_default_peer_greets_at_once_without_waiting_for_words(demo_peer):
    with socket.create_connection(("127.0.0.1", demo_peer.port), timeout=WAIT) as sock:
        assert read_exactly(sock, len(OPENING)) == OPENING


@pytest.mark.parametrize(
    ("head", "upgrade"),
    [
        (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", True),
        (b"GET /x HTTP/1.1\r\nupgrade:  WebSocket \r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", False),
        (b"POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n", False),
        (b"help\n", False),
        (b"", False),
    ],
)
def test_what_counts_as_an_upgrade_request(head, upgrade):
    assert is_websocket_upgrade(head) is upgrade


def test_the_peer_on_its_own_speaks_websocket_and_tcp_on_one_port():
    demo = DemoProcess()
    try:
        check_both_ways(demo)
    finally:
        demo.kill()


def check_both_ways(demo: DemoProcess) -> None:
    announced = ANNOUNCED.fullmatch(demo.first_line())
    assert announced is not None
    port = int(announced[1])
    assert demo.first_line() == f"WebSocket on the same port: netrepl ws://127.0.0.1:{port}/\n"
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=WAIT) as client:
        assert client.recv(timeout=WAIT) == WS_GREETING.decode()
        client.send("json")
        assert client.recv(timeout=WAIT) == WS_JSON.decode()
    # A TCP client that says nothing is greeted once UPGRADE_WAIT has passed.
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT + UPGRADE_WAIT) as sock:
        assert read_exactly(sock, len(OPENING)) == OPENING


# ---- netrepl --demo --ws


def test_demo_ws_in_batch_prints_the_help_message():
    result = run_netrepl("--demo", "--ws", "--linger", "30", stdin=b"help\nbye\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == (
        f"── ← text message, {len(WS_GREETING)} bytes\n{WS_GREETING.decode()}\n"
        f"── ← text message, {len(WS_HELP)} bytes\n{WS_HELP.decode()}\n"
    )
    stderr = result.stderr.decode()
    assert "demo peer on ws://127.0.0.1:" in stderr
    assert "upgraded to WebSocket: /" in stderr
    assert "closed by peer: 1000 normal closure: 'bye'" in stderr


def test_demo_ws_in_batch_pings_and_is_pinged():
    result = run_netrepl("--demo", "--ws", "--linger", "30", stdin=b"/ping hi\nping\nbye\n")
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert "netrepl: pong 'hi' in " in stderr, stderr
    assert "netrepl: ping 'demo' from the peer (answered)" in stderr, stderr


def test_demo_ws_prints_a_json_reply():
    result = run_netrepl("--demo", "--ws", "-q", "--linger", "30", stdin=b'{"op":"ping"}\nbye\n')
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().endswith('── ← text message, 14 bytes\n{"op": "pong"}\n')


# ---- a client written frame by frame, for what a library hides


class RawClient:
    """A WebSocket client on a socket, upgraded by hand: it sends masked frames and reads the
    peer's frames one at a time, as they came."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(1)
            assert data, f"closed during the handshake: {head!r}"
            head += data
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert self.frame() == (True, 1, WS_GREETING)

    def send(self, opcode: int, payload: bytes) -> None:
        from netrepl.websocket import encode_frame

        self.sock.sendall(encode_frame(opcode, payload, mask=b"\x01\x02\x03\x04"))

    def send_text(self, payload: bytes) -> None:
        self.send(1, payload)

    def frame(self) -> tuple[bool, int, bytes]:
        """(FIN, opcode, payload) of the next frame (the peer's are never masked)."""
        first, second = read_exactly(self.sock, 2)
        assert not second & 0x80, "a server's frame is never masked"
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(read_exactly(self.sock, 2), "big")
        elif size == 127:
            size = int.from_bytes(read_exactly(self.sock, 8), "big")
        return bool(first & 0x80), first & 0x0F, read_exactly(self.sock, size)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    for _ in range(1000):  # bounded: the peer closes after a few reads
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("the peer did not close")
